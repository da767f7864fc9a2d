// cmd_generate.c - `bitnet-gpu generate`: stream a completion to stdout,
// timings to stderr (or everything as one JSON object with --json).
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "run.h"

#define GENERATE_FLAGS                                                                    \
    (BN_FLAGS_PROMPT | BN_FLAGS_FILE | BN_FLAGS_PREDICT | BN_FLAGS_SAMPLING |             \
     BN_FLAGS_BACKEND | BN_FLAGS_CPU_START | BN_FLAGS_CHAT | BN_FLAGS_SYSTEM |             \
     BN_FLAGS_BOS | BN_FLAGS_JSON | BN_FLAGS_JSON_SCHEMA)
#define GENERATE_SYNOPSIS "-m MODEL (-p PROMPT | -f FILE) [options]"

typedef struct {
    bool json;
    bn_buf text; // --json: the whole completion
    int32_t *ids;
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
            if (!ids) return c->oom = true, 1;
            c->ids = ids;
            c->cap_ids = cap;
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

static void print_json(const bn_run *r, const int32_t *prompt, size_t n_prompt, const collector *c,
                       const bn_timings *t) {
    cJSON *o = cJSON_CreateObject();
    bn_add_ids_json(o, "prompt_ids", prompt, n_prompt);
    bn_add_ids_json(o, "generated_ids", c->ids, c->n_ids);
    cJSON_AddStringToObject(o, "text", c->text.data ? c->text.data : "");
    cJSON_AddStringToObject(o, "backend", bn_session_backend(r->session));
    cJSON_AddStringToObject(o, "backend_note", bn_session_backend_note(r->session));
    const char *kernels = bn_session_cpu_kernels(r->session);
    if (kernels) cJSON_AddStringToObject(o, "cpu_kernels", kernels);
    bn_add_timings_json(o, r, t);
    bn_print_json(o, false);
}

// The checks the flag table cannot make: exactly one prompt, --system only with --chat.
static int check_flags(const bn_run_flags *f) {
    const char *why = !f->model                      ? "generate needs -m MODEL"
                    : f->prompt && f->prompt_file    ? "-p and -f both give the prompt: use one of them"
                    : !f->prompt && !f->prompt_file  ? "generate needs a prompt: -p TEXT or -f FILE"
                    : f->system && !f->chat          ? "--system needs --chat (a plain prompt has no system part)"
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
    collector c = {.json = f.json};
    bn_timings t;
    bn_error err;
    rc = 1;
    if (bn_run_prompt(&r, &f, f.prompt, true, false, &prompt, &n_prompt)) goto done;
    bool failed = bn_session_generate(r.session, prompt, n_prompt, f.n_predict, &f.sampling,
                                      on_token, &c, &t, &err) != 0;
    if (c.n_ids && !f.json && !c.write_errno) putchar('\n'); // end the streamed text's line
    if (failed) fprintf(stderr, "error: %s\n", err.msg);
    else if (c.oom) fprintf(stderr, "error: out of memory collecting the generated text\n");
    else if (c.write_errno)
        fprintf(stderr, "error: writing the generated text failed: %s\n", strerror(c.write_errno));
    if (failed || c.oom || c.write_errno) goto done;
    if (f.json) print_json(&r, prompt, n_prompt, &c, &t);
    fflush(stdout); // the text before the timings, even when stdout is a pipe
    bn_print_timings(&r, &t);
    rc = 0;
done:
    free(file_text);
    free(prompt);
    free(c.text.data);
    free(c.ids);
    bn_run_close(&r);
    return rc;
}
