#include "run.h"

#include "error.h"
#include "io.h"
#include "json_schema.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *bn_json_schema_arg(const char *arg) {
    char *text = NULL;
    size_t n = strlen(arg);
    if (arg[0] == '@' && bn_read_input(arg + 1, &text, &n)) return NULL;
    if (!text && !(text = strdup(arg))) return NULL;
    bn_error err;
    const char *why = memchr(text, 0, n) ? "the file has a NUL byte: it is no JSON text"
                    : bn_json_schema_check(text, n, &err) ? bn_json_schema_reason(err.msg)
                                                          : NULL;
    if (!why) return text;
    fprintf(stderr, "error: --json-schema: %s\n", why);
    free(text);
    return NULL;
}

int bn_run_prepare_engine(const bn_run_flags *f, bn_engine *e, bn_error *err) {
    if (f->chat_template && bn_engine_set_chat_template(e, f->chat_template, err)) return -1;
    const int n_vocab = bn_engine_info(e).n_vocab;
    for (size_t i = 0; i < f->sampling.n_logit_bias; i++)
        if (f->sampling.logit_bias[i].token >= n_vocab)
            return bn_errorf(err, "--logit-bias: token %d is outside the vocabulary (0..%d)",
                             (int)f->sampling.logit_bias[i].token, n_vocab - 1);
    bn_error why;
    if (f->chat && !bn_run_can_chat(e, &why))
        return f->chat_template
                   ? bn_errorf(err, "%s: --chat-template %s: %s", f->model, f->chat_template, why.msg)
                   : bn_errorf(err, "%s: %s; it is a text model: `bitnet-gpu generate -m %s -p TEXT` continues a "
                                    "text", f->model, why.msg, f->model);
    return 0;
}

// -md: the draft model, its session on the same backend flags and context as
// the main one (or its own, where that is shorter: drafts stop at its end),
// and the main session drafting from it.
static int open_draft(const bn_run_flags *f, bn_run *r, bn_error *err) {
    bn_session_params p = f->session;
    if (bn_engine_load(f->model_draft, f->tokenizer, &r->draft_engine, err)) return -1;
    const int n_ctx = bn_session_n_ctx(r->session), n_ctx_draft = bn_engine_info(r->draft_engine).n_ctx_train;
    p.n_ctx = n_ctx_draft > 0 && n_ctx_draft < n_ctx ? n_ctx_draft : n_ctx;
    if (bn_session_create(r->draft_engine, &p, &r->draft_session, err) ||
        bn_session_set_draft(r->session, r->draft_session, f->draft, f->draft_p_min, err))
        return -1;
    bn_model_info info = bn_engine_info(r->draft_engine);
    fprintf(stderr, "draft model: %s, %s, %d layers, hidden %d (%.0f ms), up to %d tokens a pass, p-min %g\n",
            f->model_draft, info.arch, info.n_layer, info.n_embd, bn_engine_load_ms(r->draft_engine), f->draft,
            (double)f->draft_p_min);
    return 0;
}

int bn_run_open(const bn_run_flags *f, bn_run *r) {
    *r = (bn_run){0};
    snprintf(r->asked, sizeof r->asked, "%s", f->session.backend ? f->session.backend : "auto");
    bn_error err;
    if (f->json_schema && f->regex) {
        fprintf(stderr, "error: --regex beside --json-schema: give one\n");
        return -1;
    }
    char *schema = f->json_schema ? bn_json_schema_arg(f->json_schema) : NULL;
    if (f->json_schema && !schema) return -1;
    bn_backend_prewarm(f->session.backend); // the GPU's context starts while the model loads
    const char *failed = bn_engine_load(f->model, f->tokenizer, &r->engine, &err)                ? ""
                       : bn_run_prepare_engine(f, r->engine, &err)                               ? ""
                       : bn_session_create(r->engine, &f->session, &r->session, &err)            ? ""
                       : schema && bn_session_set_json_schema(r->session, schema, &err) ? "--json-schema: "
                       : f->regex && bn_session_set_regex(r->session, f->regex, &err)  ? "--regex "
                       : bn_session_set_lookup(r->session, f->lookup, &err)             ? "--lookup: "
                       : f->model_draft && open_draft(f, r, &err)                       ? "--model-draft: "
                                                                                        : NULL;
    free(schema);
    if (failed) {
        fprintf(stderr, "error: %s%s\n", failed, err.msg);
        bn_run_close(r);
        return -1;
    }
    bn_model_info info = bn_engine_info(r->engine);
    fprintf(stderr, "model: %s, %s, %d layers, hidden %d, vocab %d%s%s (%.0f ms)\n", f->model, info.arch,
            info.n_layer, info.n_embd, info.n_vocab, f->chat ? ", chat format " : "",
            f->chat ? bn_engine_chat_template(r->engine) : "", bn_engine_load_ms(r->engine));
    const char *kernels = bn_session_cpu_kernels(r->session);
    fprintf(stderr, "backend: %s (%s), context %d%s%s\n", bn_session_backend(r->session),
            bn_session_backend_note(r->session), bn_session_n_ctx(r->session),
            kernels ? ", CPU kernels " : "", kernels ? kernels : "");
    r->opening = bn_session_opening(r->session);
    r->lookup = f->lookup > 0 || f->model_draft;
    return 0;
}

static bool g_left_open;

void bn_run_close(bn_run *r) {
    const bool main_opening = r->session && bn_session_opening(r->session);
    if (main_opening || (r->draft_session && bn_session_opening(r->draft_session))) {
        if (main_opening && strcmp(r->asked, "auto")) // a named backend that this run never used
            fprintf(stderr, "note: the run ended on the CPU before moving to %s, which was not checked "
                            "(--no-cpu-start waits for it)\n",
                    r->asked);
        g_left_open = true;
        return;
    }
    bn_session_free(r->session);
    bn_engine_free(r->engine);
    bn_session_free(r->draft_session);
    bn_engine_free(r->draft_engine);
    *r = (bn_run){0};
}

bool bn_run_left_open(void) { return g_left_open; }

bool bn_run_can_chat(const bn_engine *e, bn_error *err) {
    int32_t *ids;
    size_t n;
    if (bn_engine_chat_tokens(e, NULL, "", true, false, &ids, &n, err)) return false;
    free(ids);
    return true;
}

int bn_run_prompt(const bn_run *r, const bn_run_flags *f, const char *text, bool first_turn,
                  bool close_previous, int32_t **ids, size_t *n) {
    bn_error err;
    int rc;
    if (f->chat) {
        rc = bn_engine_chat_tokens(r->engine, f->system, text, first_turn, close_previous, ids, n,
                                   &err);
    } else {
        bool bos = !f->no_bos && first_turn && bn_engine_add_bos(r->engine);
        rc = bn_engine_tokenize(r->engine, text, bos, false, ids, n, &err);
    }
    if (rc) fprintf(stderr, "error: %s\n", err.msg);
    return rc;
}

double bn_per_second(int n, double ms) { return ms > 0 ? 1e3 * n / ms : 0; }

int bn_decode_steps(const bn_timings *t) { return t->n_gen > 1 ? t->n_gen - 1 : 0; }

double bn_ms_per_token(const bn_timings *t) {
    const int n_steps = bn_decode_steps(t);
    return n_steps ? t->decode_ms / n_steps : 0;
}

void bn_add_ids_json(cJSON *o, const char *key, const int32_t *ids, size_t n) {
    // cJSON_CreateIntArray gives NULL for NULL ids, which an empty collection may have.
    cJSON_AddItemToObject(o, key, n ? cJSON_CreateIntArray(ids, (int)n) : cJSON_CreateArray());
}

void bn_print_timings(bn_run *r, const bn_timings *t) {
    const int n_steps = bn_decode_steps(t);
    fprintf(stderr,
            "timings: load %.0f ms + backend %.0f ms | prompt %d tokens, %.1f ms (%.1f tok/s) | "
            "generated %d tokens, %.2f ms/token (%.1f tok/s) [%s]\n",
            bn_engine_load_ms(r->engine), t->backend_ms, t->n_prompt, t->prefill_ms,
            bn_per_second(t->n_prompt, t->prefill_ms), t->n_gen, bn_ms_per_token(t),
            bn_per_second(n_steps, t->decode_ms), bn_session_backend(r->session));
    if (r->lookup) {
        const bn_lookup_stats l = bn_session_lookup_stats(r->session);
        fprintf(stderr, "%s: %" PRIu64 " tokens drafted in %" PRIu64 " passes, %" PRIu64 " taken (%.0f%%)\n",
                r->draft_session ? "draft" : "lookup", l.drafted, l.passes, l.accepted,
                l.drafted ? 100.0 * (double)l.accepted / (double)l.drafted : 0.0);
    }
    const char *draft_note = bn_session_draft_note(r->session);
    if (draft_note && !r->draft_warned) { // said once, as below
        fprintf(stderr, "warning: %s\n", draft_note);
        r->draft_warned = true;
    }
    if (r->opening && !bn_session_opening(r->session)) { // said once (chat prints every turn)
        fprintf(stderr, "backend: now %s (%s)\n", bn_session_backend(r->session),
                bn_session_backend_note(r->session));
        r->opening = false;
    }
    if (t->stop == BN_STOP_CONTEXT)
        fprintf(stderr, "note: stopped after %d tokens: the context (%d tokens) is full; -c sets "
                        "a larger one\n",
                t->n_gen, bn_session_n_ctx(r->session));
}

void bn_add_timings_json(cJSON *o, const bn_run *r, const bn_timings *t) {
    cJSON *j = cJSON_AddObjectToObject(o, "timings");
    cJSON_AddNumberToObject(j, "load_ms", bn_engine_load_ms(r->engine));
    cJSON_AddNumberToObject(j, "backend_ms", t->backend_ms);
    cJSON_AddNumberToObject(j, "prefill_ms", t->prefill_ms);
    cJSON_AddNumberToObject(j, "prompt_tokens", t->n_prompt);
    cJSON_AddNumberToObject(j, "prompt_tok_s", bn_per_second(t->n_prompt, t->prefill_ms));
    cJSON_AddNumberToObject(j, "decode_ms", t->decode_ms);
    cJSON_AddNumberToObject(j, "generated_tokens", t->n_gen);
    cJSON_AddNumberToObject(j, "ms_per_token", bn_ms_per_token(t));
    cJSON_AddNumberToObject(j, "decode_tok_s", bn_per_second(bn_decode_steps(t), t->decode_ms));
    if (r->lookup) {
        const bn_lookup_stats l = bn_session_lookup_stats(r->session);
        cJSON_AddNumberToObject(j, "lookup_drafted", l.drafted);
        cJSON_AddNumberToObject(j, "lookup_accepted", l.accepted);
        cJSON_AddNumberToObject(j, "lookup_passes", l.passes);
        const char *draft_note = bn_session_draft_note(r->session);
        if (draft_note) cJSON_AddStringToObject(j, "draft_failed", draft_note);
    }
    cJSON_AddStringToObject(o, "stop", bn_stop_name(t->stop));
}
