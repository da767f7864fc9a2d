// serve_http.c - libmicrohttpd glue (serve_http.h).
//
// Thread per connection: a handler may block while its job runs (waiting in
// slices of WAIT_MS on the job), and between slices it looks at the socket, so
// a client that hangs up cancels its job and frees its slot before the next
// step. While a job runs the connection has no idle timeout (the client is
// waiting for us, not the other way round); the request-completed callback puts
// it back and releases the job, whatever way the request ended.
#define _GNU_SOURCE // POLLRDHUP
#include "serve_http.h"

#include "error.h"
#include "io.h"

#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_MS 50            // how often a waiting handler looks at its client
#define STREAM_BLOCK 16384    // bytes MHD asks a stream for at a time

struct bn_server {
    const bn_api *api;
    bn_server_config cfg;
    struct MHD_Daemon *d;
};

// One request on a connection (MHD's con_cls), freed when it completes.
typedef struct request {
    bn_server *srv;
    struct MHD_Connection *conn;
    bn_buf body;    // received so far
    bool answered;  // a reply went out before the body was read
    bn_api_reply r; // the endpoint's answer; r.job while generating
    bn_job_output got[BN_JOB_MAX_CHOICES]; // each choice's output not yet sent (stream) or all of it
    bn_job_state st;
    char *out; // stream: the event being sent, from out_off
    size_t out_len, out_off;
    bool first, ended;
} request;

static enum MHD_Result reply(struct MHD_Connection *c, int status, char *body, const char *content_type) {
    if (!body) body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}");
    if (!body) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) return free(body), MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type ? content_type : "application/json");
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    const enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result reply_error(request *q, int status, const char *msg, const char *code) {
    q->answered = true;
    return reply(q->conn, status, bn_api_error_json(status, msg, code), NULL);
}

// Whether the client has closed its end (or the socket failed).
static bool client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!i) return false;
    struct pollfd p = {.fd = i->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
    char b;
    return recv(p.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0; // readable at end of file
}

// Constant-time comparison, so the key cannot be guessed byte by byte from timings.
static bool authorized(struct MHD_Connection *c, const char *key) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    h += 7;
    const size_t n = strlen(key);
    if (strlen(h) != n) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(h[i] ^ key[i]);
    return diff == 0;
}

// ---- a generation: waited for, or streamed ---------------------------------------

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    request *q = cls;
    while (q->out_off == q->out_len) {
        if (q->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        if (bn_job_wait(q->r.job, WAIT_MS, q->got, &q->st)) return MHD_CONTENT_READER_END_WITH_ERROR;
        free(q->out);
        q->out = bn_api_event(q->srv->api, &q->r, q->got, &q->st, q->first);
        if (!q->out) return MHD_CONTENT_READER_END_WITH_ERROR;
        q->out_len = strlen(q->out);
        q->out_off = 0;
        q->first = false;
        q->ended = q->st.done;
        if (!q->out_len && client_gone(q->conn)) return bn_job_cancel(q->r.job), MHD_CONTENT_READER_END_WITH_ERROR;
    }
    const size_t n = q->out_len - q->out_off < max ? q->out_len - q->out_off : max;
    memcpy(buf, q->out + q->out_off, n);
    q->out_off += n;
    return (ssize_t)n;
}

static enum MHD_Result start_stream(request *q) {
    q->first = true;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, q, NULL);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    const enum MHD_Result ok = MHD_queue_response(q->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ok;
}

// Waits for the whole completion; a client that leaves meanwhile cancels it.
static enum MHD_Result await_job(request *q) {
    do {
        if (bn_job_wait(q->r.job, WAIT_MS, q->got, &q->st)) return reply_error(q, 500, "out of memory", NULL);
        if (!q->st.done && client_gone(q->conn)) {
            bn_job_cancel(q->r.job);
            return MHD_NO; // closes the connection
        }
    } while (!q->st.done);
    bn_api_finish(q->srv->api, &q->r, q->got, &q->st);
    const int status = q->r.status;
    char *body = q->r.body;
    q->r.body = NULL;
    return reply(q->conn, status, body, NULL);
}

// ---- MHD callbacks -----------------------------------------------------------

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    bn_server *s = cls;
    request *q = *con_cls;
    if (!q) { // the headers are in: check what needs no body
        if (!(q = calloc(1, sizeof *q))) return MHD_NO;
        *con_cls = q;
        q->srv = s;
        q->conn = c;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (s->cfg.api_key && !authorized(c, s->cfg.api_key))
            return reply_error(q, 401, "a valid API key is needed (Authorization: Bearer KEY)", "invalid_api_key");
        if (cl && strtoull(cl, NULL, 10) > BN_SERVE_MAX_BODY)
            return reply_error(q, 413, "the request body is larger than 1 MiB", "body_too_large");
        return MHD_YES;
    }
    if (q->answered) { // the rest of the body is not read
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (q->body.len + *upload_size > BN_SERVE_MAX_BODY) return MHD_NO; // a chunked body too large: hang up
        if (bn_buf_append(&q->body, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    bn_api_handle(s->api, method, url, q->body.data ? q->body.data : "", q->body.len, &q->r);
    if (!q->r.job) {
        char *body = q->r.body;
        q->r.body = NULL;
        return reply(c, q->r.status, body, q->r.content_type);
    }
    // A generation may take longer than the idle timeout: the client waits on
    // us now, and the handler watches its socket instead.
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    return q->r.stream ? start_stream(q) : await_job(q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    (void)why;
    bn_server *s = cls;
    request *q = *con_cls;
    if (!q) return;
    if (q->r.job) {
        bn_job_cancel(q->r.job); // frees the slot if it still runs (the client left)
        bn_job_release(q->r.job);
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->cfg.timeout_s);
    }
    free(q->r.body);
    free(q->body.data);
    for (int i = 0; i < BN_JOB_MAX_CHOICES; i++) {
        free(q->got[i].text.data);
        free(q->got[i].logprobs.data);
    }
    free(q->out);
    free(q);
    *con_cls = NULL;
}

int bn_server_start(const bn_api *api, const bn_server_config *c, bn_server **out, int *bound_port,
                    bn_error *err) {
    *out = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai;
    const int gai = getaddrinfo(c->host, port, &hints, &ai);
    if (gai) return bn_errorf(err, "cannot use address %s: %s", c->host, gai_strerror(gai));
    bn_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return bn_errorf(err, "out of memory");
    }
    s->api = api;
    s->cfg = *c;
    const unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                           (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)c->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)BN_SERVE_MAX_CONNECTIONS, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        free(s);
        return bn_errorf(err, "cannot listen on %s port %d (is the port in use?)", c->host, c->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : c->port;
    *out = s;
    return 0;
}

void bn_server_quiesce(bn_server *s) {
    const MHD_socket fd = MHD_quiesce_daemon(s->d); // the listening socket is ours to close now
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void bn_server_stop(bn_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    free(s);
}
