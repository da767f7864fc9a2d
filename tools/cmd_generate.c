// cmd_generate.c - `bitnet-gpu generate`: stream a completion to stdout,
// timings to stderr (or everything as one JSON object with --json, and with
// --logprobs N each generated token's log-probability and N alternatives').
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "default_model.h"
#include "run.h"
#include "serve_reply.h"

#define GENERATE_FLAGS                                                                    \
    (BN_FLAGS_PROMPT | BN_FLAGS_FILE | BN_FLAGS_PREDICT | BN_FLAGS_SAMPLING |             \
     BN_FLAGS_BACKEND | BN_FLAGS_CPU_START | BN_FLAGS_CHAT | BN_FLAGS_SYSTEM |             \
     BN_FLAGS_BOS | BN_FLAGS_JSON | BN_FLAGS_JSON_SCHEMA | BN_FLAGS_LOGPROBS | BN_FLAGS_TEMPLATE | \
     BN_FLAGS_LOOKUP | BN_FLAGS_DRAFT | BN_FLAGS_REGEX)
#define GENERATE_SYNOPSIS "[-m MODEL] (-p PROMPT | -f FILE) [options]"

// A generated token's log-probabilities (--logprobs), as the session reports them.
typedef struct {
    float logprob;
    int n_top;
    bn_token_logprob top[BN_TOP_LOGPROBS_MAX];
} token_logprobs;

typedef struct {
    bool json;
    bn_buf text; // --json: the whole completion
    const bn_session *session; // --logprobs: read at each token
    int32_t *ids;
    token_logprobs *lps; // --logprobs: one per id
    size_t n_ids, cap_ids;
    // Why on_token stopped the generation: an error, not a short reply.
    bool oom;
    int write_errno; // stdout refused the text (a full disk, a closed pipe)
} collector;

static int on_token(void *user, int32_t id, const char *text, size_t len) {
    collector *c = user;
    if (id >= 0) {
        if (c->n_ids == c->cap_ids) {
            size_t cap = c->cap_ids ? 2 * c->cap_ids : 64;
            int32_t *ids = realloc(c->ids, cap * sizeof *ids);
            if (ids) c->ids = ids;
            token_logprobs *lps = c->session && ids ? realloc(c->lps, cap * sizeof *lps) : NULL;
            if (lps) c->lps = lps;
            if (!ids || (c->session && !lps)) return c->oom = true, 1;
            c->cap_ids = cap;
        }
        if (c->session) {
            token_logprobs *lp = &c->lps[c->n_ids];
            const bn_token_logprob *top;
            lp->n_top = bn_session_token_logprobs(c->session, &lp->logprob, &top);
            if (lp->n_top > 0) memcpy(lp->top, top, (size_t)lp->n_top * sizeof *top);
        }
        c->ids[c->n_ids++] = id;
    }
    if (!c->json) {
        if (bn_write_stdout(text, len) == 0) return 0;
        c->write_errno = errno ? errno : EIO;
        return 1;
    }
    if (bn_buf_append(&c->text, text, len)) return c->oom = true, 1;
    return 0;
}

// The server's chat logprobs entry, with the id.
static cJSON *logprob_json(const bn_engine *e, int32_t id, float logprob) {
    cJSON *o = bn_logprob_entry_json(e, id, logprob);
    cJSON_AddNumberToObject(o, "id", id);
    return o;
}

static void print_json(const bn_run *r, const char *model, const int32_t *prompt, size_t n_prompt,
                       const collector *c, const bn_timings *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model); // the path given, or the one taken without -m
    bn_add_ids_json(o, "prompt_ids", prompt, n_prompt);
    bn_add_ids_json(o, "generated_ids", c->ids, c->n_ids);
    cJSON_AddStringToObject(o, "text", c->text.data ? c->text.data : "");
    if (c->session) { // "logprobs": [{"token", "logprob", "bytes", "id", "top_logprobs": [{... "id"}]}]
        cJSON *all = cJSON_AddArrayToObject(o, "logprobs");
        for (size_t i = 0; i < c->n_ids; i++) {
            cJSON *entry = logprob_json(r->engine, c->ids[i], c->lps[i].logprob);
            cJSON *top = cJSON_AddArrayToObject(entry, "top_logprobs");
            for (int j = 0; j < c->lps[i].n_top; j++)
                cJSON_AddItemToArray(top, logprob_json(r->engine, c->lps[i].top[j].id, c->lps[i].top[j].logprob));
            cJSON_AddItemToArray(all, entry);
        }
    }
    cJSON_AddStringToObject(o, "backend", bn_session_backend(r->session));
    cJSON_AddStringToObject(o, "backend_note", bn_session_backend_note(r->session));
    const char *kernels = bn_session_cpu_kernels(r->session);
    if (kernels) cJSON_AddStringToObject(o, "cpu_kernels", kernels);
    bn_add_timings_json(o, r, t);
    bn_print_json(o, false);
}

// The checks the flag table cannot make: exactly one prompt, --system and
// --chat-template only with --chat.
static int check_flags(const bn_run_flags *f) {
    const char *why = f->prompt && f->prompt_file    ? "-p and -f both give the prompt: use one of them"
                    : !f->prompt && !f->prompt_file  ? "generate needs a prompt: -p TEXT or -f FILE"
                    : f->system && !f->chat          ? "--system needs --chat (a plain prompt has no system part)"
                    : f->chat_template && !f->chat   ? "--chat-template needs --chat (a plain prompt has no format)"
                    : f->logprobs >= 0 && !f->json   ? "--logprobs needs --json (they are printed in its document)"
                                                     : NULL;
    if (!why) return 0;
    fprintf(stderr, "error: %s (see bitnet-gpu generate --help)\n", why);
    return 2;
}

int bn_cmd_generate(int argc, char **argv) {
    bn_run_flags f;
    bool help;
    int rc = bn_parse_run_flags("generate", GENERATE_FLAGS, GENERATE_SYNOPSIS, argc, argv, &f, &help);
    if (help || rc) return rc;
    if ((rc = check_flags(&f))) return rc;
    if (!f.model && !(f.model = bn_default_model("generate"))) return 2;
    if (f.n_predict < 0) f.n_predict = 128;
    char *file_text = NULL;
    if (f.prompt_file) {
        if (bn_read_prompt_file(f.prompt_file, &file_text)) return 1;
        f.prompt = file_text;
    }
    bn_run r;
    if (bn_run_open(&f, &r)) {
        free(file_text);
        return 1;
    }

    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    collector c = {.json = f.json, .session = f.logprobs >= 0 ? r.session : NULL};
    bn_timings t;
    bn_error err;
    rc = 1;
    if (bn_run_prompt(&r, &f, f.prompt, true, false, &prompt, &n_prompt)) goto done;
    if (f.logprobs >= 0 && bn_session_set_logprobs(r.session, f.logprobs, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        goto done;
    }
    bool failed = bn_session_generate(r.session, prompt, n_prompt, f.n_predict, &f.sampling,
                                      on_token, &c, &t, &err) != 0;
    if (c.n_ids && !f.json && !c.write_errno) putchar('\n'); // end the streamed text's line
    if (failed) fprintf(stderr, "error: %s\n", err.msg);
    else if (c.oom) fprintf(stderr, "error: out of memory collecting the generated text\n");
    else if (c.write_errno)
        fprintf(stderr, "error: writing the generated text failed: %s\n", strerror(c.write_errno));
    if (failed || c.oom || c.write_errno) goto done;
    if (f.json) print_json(&r, f.model, prompt, n_prompt, &c, &t);
    fflush(stdout); // the text before the timings, even when stdout is a pipe
    bn_print_timings(&r, &t);
    rc = 0;
done:
    free(file_text);
    free(prompt);
    free(c.text.data);
    free(c.ids);
    free(c.lps);
    bn_run_close(&r);
    return rc;
}
