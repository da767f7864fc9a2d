// http.c - HEAD, small GET and resumable download over libcurl (see http.h).
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "io.h"

int bn_http_init(bn_error *err) {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    return rc == CURLE_OK ? 0 : bn_errorf(err, "libcurl: %s", curl_easy_strerror(rc));
}

// Copies a header's value (trimmed) into dst when `line` is that header.
static bool header_value(const char *line, size_t n, const char *name, char *dst, size_t cap) {
    const size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) || line[k] != ':') return false;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    const size_t len = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(dst, v, len);
    dst[len] = 0;
    return true;
}

static size_t on_header(char *line, size_t size, size_t n, void *user) {
    bn_http_response *r = user;
    const size_t len = size * n;
    char num[32];
    if (len > 5 && !strncmp(line, "HTTP/", 5)) { // a new response (after a redirect): start over
        *r = (bn_http_response){.linked_size = -1, .content_length = -1};
        const char *sp = memchr(line, ' ', len);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    } else if (header_value(line, len, "Location", r->location, sizeof r->location) ||
               header_value(line, len, "X-Linked-Etag", r->linked_etag, sizeof r->linked_etag) ||
               header_value(line, len, "ETag", r->etag, sizeof r->etag) ||
               header_value(line, len, "X-Error-Code", r->error_code, sizeof r->error_code)) {
    } else if (header_value(line, len, "X-Linked-Size", num, sizeof num)) {
        r->linked_size = strtoll(num, NULL, 10);
    } else if (header_value(line, len, "Content-Length", num, sizeof num)) {
        r->content_length = strtoll(num, NULL, 10);
    }
    return len;
}

// A handle with what every request shares. The token goes to url's host only:
// curl does not send credentials on to another host a redirect names (the CDN).
static CURL *new_handle(const char *url, const char *token, bn_http_response *r, char *errbuf) {
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    *r = (bn_http_response){.linked_size = -1, .content_length = -1};
    errbuf[0] = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "bitnet-gpu/" BITNET_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    // A stalled transfer (under 1 KB/s for a minute) fails instead of hanging.
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (token && *token) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, token);
    }
    return h;
}

static int transfer_error(CURLcode rc, const char *errbuf, const char *url, bn_error *err) {
    return bn_errorf(err, "%s: %s", url, *errbuf ? errbuf : curl_easy_strerror(rc));
}

int bn_http_head(const char *url, const char *token, bn_http_response *r, bn_error *err) {
    char errbuf[CURL_ERROR_SIZE];
    CURL *h = new_handle(url, token, r, errbuf);
    if (!h) return bn_errorf(err, "libcurl: cannot create a handle");
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    return rc == CURLE_OK ? 0 : transfer_error(rc, errbuf, url, err);
}

static size_t to_buffer(char *data, size_t size, size_t n, void *user) {
    // Too large or out of memory: 0 fails the transfer.
    return bn_buf_append(user, data, size * n) ? 0 : size * n;
}

int bn_http_get(const char *url, const char *token, bn_http_response *r, char **body,
                bn_error *err) {
    char errbuf[CURL_ERROR_SIZE];
    bn_buf b = {.max = 16u << 20};
    *body = NULL;
    CURL *h = new_handle(url, token, r, errbuf);
    if (!h) return bn_errorf(err, "libcurl: cannot create a handle");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, to_buffer);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        free(b.data);
        return transfer_error(rc, errbuf, url, err);
    }
    *body = b.data ? b.data : calloc(1, 1);
    return *body ? 0 : bn_errorf(err, "out of memory");
}

// ---- the resumable download ---------------------------------------------------
typedef struct {
    bn_fetch *f;
    CURL *h;
    int fd;
    int write_errno; // the disk refused the data (full, over a size limit)
    bool checked;    // the response code was looked at (first body bytes)
    bool error_page; // the body is an error page, not the file
    double t0, last_draw;
    bool drew;
} fetch_ctx;

static size_t to_file(char *data, size_t size, size_t n, void *user) {
    fetch_ctx *c = user;
    const size_t len = size * n;
    if (!c->checked) {
        c->checked = true;
        long code = 0;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
        c->error_page = code != 200 && code != 206;
        if (code == 200 && c->f->start > 0) { // the server ignored the Range: start over
            if (ftruncate(c->fd, 0)) return c->write_errno = errno, 0;
            c->f->start = 0;
        }
    }
    if (c->error_page) return len;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(c->fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return c->write_errno = w < 0 ? errno : EIO, 0;
        off += (size_t)w;
        c->f->got += w;
    }
    return len;
}

static void draw_progress(fetch_ctx *c, bool last) {
    const double now = bn_now_ms();
    if (!last && now - c->last_draw < 250) return;
    c->last_draw = now;
    const int64_t done = c->f->start + c->f->got;
    const double secs = (now - c->t0) / 1e3, rate = secs > 0 ? c->f->got / secs : 0;
    char a[32], b[32], r[32];
    bn_format_bytes((double)done, a, sizeof a);
    bn_format_bytes((double)c->f->total, b, sizeof b);
    bn_format_bytes(rate, r, sizeof r);
    fprintf(stderr, "\r  %s / %s  %s/s", a, c->f->total >= 0 ? b : "?", r);
    if (c->f->total > done && rate > 0) {
        const long eta = (long)((c->f->total - done) / rate);
        fprintf(stderr, "  ETA %ld:%02ld:%02ld", eta / 3600, eta / 60 % 60, eta % 60);
    }
    fputs("   ", stderr); // wipes the end of a longer previous line
    c->drew = true;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    fetch_ctx *c = user;
    if (!c->error_page) draw_progress(c, false);
    return 0;
}

// Opens path for appending, locked so two downloads cannot interleave in it.
static int open_part(bn_fetch *f, bn_error *err) {
    int fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return bn_errorf(err, "%s: %s", f->path, strerror(errno)), -1;
    struct stat st;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        return bn_errorf(err, "%s is being written by another download", f->path), -1;
    }
    if (fstat(fd, &st)) {
        close(fd);
        return bn_errorf(err, "%s: %s", f->path, strerror(errno)), -1;
    }
    f->start = st.st_size;
    return fd;
}

int bn_http_fetch(bn_fetch *f, bn_error *err) {
    f->got = 0;
    f->retry = false;
    fetch_ctx c = {.f = f, .t0 = bn_now_ms()};
    if ((c.fd = open_part(f, err)) < 0) return -1;
    bn_http_response r;
    char errbuf[CURL_ERROR_SIZE], range[48];
    c.h = new_handle(f->url, f->token, &r, errbuf);
    if (!c.h) {
        close(c.fd);
        return bn_errorf(err, "libcurl: cannot create a handle");
    }
    snprintf(range, sizeof range, "%lld-", (long long)f->start);
    if (f->start > 0) curl_easy_setopt(c.h, CURLOPT_RANGE, range);
    curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c.h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, to_file);
    curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &c);
    if (f->progress) {
        curl_easy_setopt(c.h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c.h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c.h, CURLOPT_XFERINFODATA, &c);
    }
    CURLcode rc = curl_easy_perform(c.h);
    curl_easy_cleanup(c.h);
    if (c.drew) {
        draw_progress(&c, true);
        fputc('\n', stderr);
    }
    // Data on disk before the rename: a crash must not leave a short file that
    // a later run takes for a finished prefix.
    if (r.status == 416 && ftruncate(c.fd, 0) == 0) f->start = 0; // a bad .part: start over
    if (!c.write_errno && fsync(c.fd)) c.write_errno = errno;
    if (close(c.fd) && !c.write_errno) c.write_errno = errno;
    char got[32];
    bn_format_bytes((double)f->got, got, sizeof got);
    if (c.write_errno)
        return bn_errorf(err, "writing %s: %s", f->path, strerror(c.write_errno));
    if (rc != CURLE_OK) {
        f->retry = true;
        return bn_errorf(err, "the download stopped after %s: %s", got,
                         *errbuf ? errbuf : curl_easy_strerror(rc));
    }
    if (r.status == 200 || r.status == 206) return 0;
    f->retry = r.status >= 500 || r.status == 416;
    return bn_errorf(err, "%s: HTTP %ld", f->url, r.status);
}
