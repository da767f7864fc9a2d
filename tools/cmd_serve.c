// cmd_serve.c - `bitnet-gpu serve`: an OpenAI-compatible HTTP server.
//
// Threads: libmicrohttpd's, one per connection (serve_http.c), parse requests
// and wait for or stream their jobs; one scheduler thread (serve_sched.c) owns
// the bn_batch and runs its steps, every running request one slot of it; this
// thread waits for SIGINT/SIGTERM, which every other thread has blocked. Then it
// stops accepting connections, lets running requests finish for GRACE_MS (queued
// ones and those still running after it get 503), closes the connections and
// exits 0.
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "default_model.h"
#include "run.h"
#include "serve_api.h"
#include "serve_http.h"
#include "serve_sched.h"

#define SERVE_FLAGS /* sampling and -n: a request's defaults */ \
    (BN_FLAGS_BACKEND | BN_FLAGS_SERVE | BN_FLAGS_SAMPLING | BN_FLAGS_TEMPLATE | BN_FLAGS_PREDICT | BN_FLAGS_LOOKUP | \
     BN_FLAGS_DRAFT)
#define SERVE_SYNOPSIS                                                                                     \
    "[-m MODEL] [--host 127.0.0.1] [--port 8080] [--parallel N] [-c CTX] [--api-key KEY] [--alias NAME] "   \
    "[-n N] [--temp T ...] [--lookup N | -md FILE [--draft-max N]]"
#define GRACE_MS 5000

static const char *basename_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

// The server, once the model is loaded and the batch made: until a signal.
static int serve(const bn_run_flags *f, bn_engine *e, bn_batch *b, const sigset_t *stop_signals) {
    bn_error err;
    bn_sched *sched;
    if (bn_sched_start(b, &sched, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    const bn_api api = {.engine = e, .sched = sched, .model_id = f->alias ? f->alias : basename_of(f->model),
                        .n_ctx = bn_batch_n_ctx(b), .created = (long)time(NULL), .sampling = f->sampling,
                        .seed_given = f->seed_given, .max_tokens = f->n_predict};
    const bn_server_config cfg = {.host = f->host, .port = f->port, .api_key = f->api_key,
                                  .timeout_s = f->timeout};
    bn_server *srv;
    int port, rc = 0;
    if (bn_server_start(&api, &cfg, &srv, &port, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = 1;
    } else {
        const bool v6 = strchr(f->host, ':') != NULL;
        fprintf(stderr, "serve: listening on http://%s%s%s:%d/v1 (%s, %d slots of %d tokens%s)\n",
                v6 ? "[" : "", f->host, v6 ? "]" : "", port, api.model_id, bn_batch_n_slots(b),
                bn_batch_n_ctx(b), f->api_key ? ", API key required" : "");
        if (!bn_run_can_chat(e, &err))
            fprintf(stderr, "note: %s; /v1/chat/completions answers 400, /v1/completions continues a text\n",
                    err.msg);
        int sig = 0;
        sigwait(stop_signals, &sig);
        fprintf(stderr, "serve: %s: no new connections; running requests get %d s to finish\n",
                strsignal(sig), GRACE_MS / 1000);
        bn_server_quiesce(srv);
    }
    bn_sched_stop(sched, rc ? 0 : GRACE_MS);
    bn_server_stop(srv); // every handler has its answer now: the connections close
    bn_sched_free(sched);
    if (!rc) fprintf(stderr, "serve: stopped\n");
    return rc;
}

int bn_cmd_serve(int argc, char **argv) {
    bn_run_flags f;
    bool help;
    int rc = bn_parse_run_flags("serve", SERVE_FLAGS, SERVE_SYNOPSIS, argc, argv, &f, &help);
    if (help || rc) return rc;
    if (!f.model && !(f.model = bn_default_model("serve"))) return 2;

    // Every thread started from here on inherits the blocked stop signals, so
    // only sigwait() in serve() sees them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN); // a client gone mid-write is an error return, not a death

    bn_engine *e = NULL, *draft = NULL;
    bn_batch *b = NULL;
    bn_error err;
    bn_batch_params bp = {.session = f.session, .n_slots = f.parallel};
    bn_session_params draft_params = f.session;
    draft_params.n_ctx = 0; // the batch's context (-c), or the draft model's where shorter
    const char *failed = bn_engine_load(f.model, f.tokenizer, &e, &err) || bn_run_prepare_engine(&f, e, &err) ||
                                 bn_batch_create(e, &bp, &b, &err) || bn_batch_set_lookup(b, f.lookup, &err)
                             ? ""
                         : f.model_draft && (bn_engine_load(f.model_draft, f.tokenizer, &draft, &err) ||
                                             bn_batch_set_draft(b, draft, &draft_params, f.draft, f.draft_p_min, &err))
                             ? "--model-draft: "
                             : NULL;
    if (!failed) {
        fprintf(stderr, "backend: %s (%s)\n", bn_batch_backend(b), bn_batch_backend_note(b));
        if (draft)
            fprintf(stderr, "draft model: %s, up to %d tokens a pass, p-min %g\n", f.model_draft, f.draft,
                    (double)f.draft_p_min);
        rc = serve(&f, e, b, &stop_signals);
    } else {
        fprintf(stderr, "error: %s%s\n", failed, err.msg);
        rc = 1;
    }
    bn_batch_free(b);
    bn_engine_free(draft);
    bn_engine_free(e);
    return rc;
}
