// session.c - a backend instance with its KV cache, and the generation loop.
//
// The session remembers every token it has been given or has produced
// (history) and how many of them are in the KV cache (n_past). The last
// sampled token is not fed until the next step needs it, so a later
// generate() call (the next chat turn) feeds it first.
//
// With cpu_start (bitnet.h) it runs on the CPU backend while the backend it
// was asked for opens on a thread (opening.c), and moves between two steps:
// the new backend first reads history[0..n_past) in one prefill, so its cache
// holds what its own steps would have put there. While on the CPU, a prompt
// goes in chunks of BN_CPU_START_CHUNK tokens, with a chance to move after
// each, so a long prompt is not left to the CPU once the GPU is ready.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bitnet.h"
#include "clock.h"
#include "draft.h"
#include "engine_internal.h"
#include "json_mask.h"
#include "logprob_row.h"
#include "lookup.h"
#include "regex_reply.h"
#include "sampler.h"

#define BN_CPU_START_CHUNK 32

struct bn_session {
    bn_engine *engine;
    bn_opened be;        // the backend, its note, context and creation time
    bn_opening *opening; // cpu_start: the backend asked for, opening (NULL: none, or moved)
    bool named;          // that backend was named, not "auto": its failure is an error
    bn_error broken;     // it failed (named): every later step fails with this (msg "": it did not)
    int32_t *history;    // n_ctx + 1: the last sampled token may not fit in the cache
    int n_hist;
    int n_past;          // history[0..n_past) is in the KV cache
    int32_t *pos;        // pos[i] = i: a call's positions are the slice at n_past
    float *logits;       // n_vocab
    bn_json_schema *json_schema; // bn_session_set_json_schema's: each reply's constraint
    bn_json_state *json;         // where the reply's text stands
    bn_json_vocab json_vocab;    // made at the first schema
    bn_regex_reply regex;        // bn_session_set_regex's (.rx NULL: none), and where the reply stands
    bool logprobs;               // bn_session_set_logprobs': report them, with
    int top_logprobs;            // this many alternatives
    bn_logprob_row lp;           // made at the first
    bool sampled;                // this call has sampled a token: its values follow
    int32_t sampled_id;
    float logprob;
    bn_token_logprob top[BN_TOP_LOGPROBS_MAX];
    // Prompt lookup decoding (lookup.h; bn_session_set_lookup): the last
    // verifying pass's rows, whose drafted tokens' K/V are in the cache past n_past.
    int lookup_max;              // tokens drafted a pass at most (0: off)
    float *rows;                 // (lookup_max + 1) rows of n_vocab
    bn_lookup_pass pass;
    bn_lookup_stats lookup;      // this generate call's
    // Speculative decoding (bn_session_set_draft): the caller's session on a
    // draft model drafts instead of bn_lookup_draft, while its likeliest token's
    // probability is at least draft_p_min.
    bn_session *draft;
    float draft_p_min;
    bn_draft_backoff backoff;
    bn_sampler *draft_smp; // a sampling generate call's sampler's copy, for the draft (bn_draft_steps)
    bn_draft_call draft_call;
    char draft_note[sizeof(bn_error) + 64]; // why the draft model stopped drafting ("": it did not)
};

int bn_session_create(bn_engine *e, const bn_session_params *p, bn_session **out, bn_error *err) {
    *out = NULL;
    const int32_t n_vocab = (int32_t)e->model->hp.n_vocab;
    bn_session *s = calloc(1, sizeof *s);
    if (!s) return bn_errorf(err, "out of memory");
    s->engine = e;
    bool on_cpu = false;
    if (bn_backend_starts_on_cpu(p)) { // where the CPU cannot open (say its kernel set), as without
        bn_session_params cpu = *p;
        bn_error why;
        cpu.backend = "cpu";
        on_cpu = bn_backend_open(e, &cpu, 1, &s->be, &why) == 0;
    }
    if (on_cpu) {
        if (bn_opening_start(e, p, &s->opening, err)) goto fail;
        s->named = p->backend && *p->backend && strcmp(p->backend, "auto");
        snprintf(s->be.note, sizeof s->be.note, "starting here while %.60s opens on a thread",
                 s->named ? p->backend : "auto");
    } else if (bn_backend_open(e, p, 1, &s->be, err)) {
        goto fail;
    }
    s->history = malloc(((size_t)s->be.n_ctx + 1) * sizeof *s->history);
    s->pos = malloc((size_t)s->be.n_ctx * sizeof *s->pos);
    s->logits = malloc((size_t)n_vocab * sizeof *s->logits);
    if (!s->history || !s->pos || !s->logits) {
        bn_errorf(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->be.n_ctx; i++) s->pos[i] = i;
    *out = s;
    return 0;
fail:
    bn_session_free(s);
    return -1;
}

void bn_session_free(bn_session *s) {
    if (!s) return;
    bn_opening_free(s->opening);
    if (s->be.be) s->be.ops->destroy(s->be.be);
    free(s->history);
    free(s->pos);
    free(s->logits);
    free(s->rows);
    bn_draft_call_free(&s->draft_call);
    bn_json_schema_free(s->json_schema);
    free(s->json);
    bn_json_vocab_free(&s->json_vocab);
    bn_regex_reply_free(&s->regex);
    bn_logprob_row_free(&s->lp);
    free(s);
}

int bn_session_set_json_schema(bn_session *s, const char *schema, bn_error *err) {
    bn_json_schema *g = NULL;
    if (schema && bn_json_schema_compile(schema, strlen(schema), &g, err)) return -1;
    if (g && !s->json_vocab.kind && bn_json_vocab_init(&s->json_vocab, s->engine, err)) {
        bn_json_schema_free(g);
        return -1;
    }
    if (g && !s->json && !(s->json = malloc(sizeof *s->json))) {
        bn_json_schema_free(g);
        return bn_errorf(err, "out of memory");
    }
    bn_json_schema_free(s->json_schema);
    s->json_schema = g;
    if (g) bn_regex_reply_free(&s->regex); // one constraint at a time
    return 0;
}

int bn_session_set_regex(bn_session *s, const char *pattern, bn_error *err) {
    bn_regex_reply r = {0};
    if (pattern && bn_regex_reply_init(&r, pattern, (int32_t)s->engine->model->hp.n_vocab, err)) return -1;
    bn_regex_reply_free(&s->regex);
    s->regex = r;
    if (pattern) { // one constraint at a time
        bn_json_schema_free(s->json_schema);
        s->json_schema = NULL;
    }
    return 0;
}

int bn_session_set_logprobs(bn_session *s, int top_logprobs, bn_error *err) {
    if (top_logprobs > BN_TOP_LOGPROBS_MAX)
        return bn_errorf(err, "top_logprobs must be in 0..%d (got %d)", BN_TOP_LOGPROBS_MAX, top_logprobs);
    const int32_t n_vocab = (int32_t)s->engine->model->hp.n_vocab;
    if (top_logprobs >= 0 && !s->lp.raw && bn_logprob_row_init(&s->lp, n_vocab))
        return bn_errorf(err, "out of memory");
    s->logprobs = top_logprobs >= 0;
    s->top_logprobs = top_logprobs < n_vocab ? top_logprobs : n_vocab;
    return 0;
}

int bn_session_set_lookup(bn_session *s, int max_draft, bn_error *err) {
    if (max_draft < 0 || max_draft > BN_LOOKUP_MAX)
        return bn_errorf(err, "lookup drafts 0..%d tokens a pass (got %d)", BN_LOOKUP_MAX, max_draft);
    if (max_draft > s->lookup_max) {
        const size_t n = ((size_t)max_draft + 1) * s->engine->model->hp.n_vocab;
        float *rows = realloc(s->rows, n * sizeof *rows);
        if (!rows) return bn_errorf(err, "out of memory for %d rows of logits", max_draft + 1);
        s->rows = rows;
    }
    s->lookup_max = max_draft;
    s->draft = NULL;
    return 0;
}

int bn_session_set_draft(bn_session *s, bn_session *draft, int max_draft, float p_min, bn_error *err) {
    bn_session_set_lookup(s, 0, err); // whatever comes next, nothing drafts until it succeeds
    s->draft_note[0] = 0;
    if (!draft || max_draft == 0) return 0;
    if (max_draft < 0 || max_draft > BN_LOOKUP_MAX)
        return bn_errorf(err, "a draft model drafts 0..%d tokens a pass (got %d)", BN_LOOKUP_MAX, max_draft);
    if (draft == s) return bn_errorf(err, "a session cannot draft for itself");
    if (!(p_min >= 0 && p_min <= 1)) return bn_errorf(err, "p_min must be in 0..1 (got %g)", (double)p_min);
    if (bn_engine_same_vocab(s->engine, draft->engine, err)) return -1;
    if (bn_session_set_lookup(s, max_draft, err)) return -1;
    s->draft = draft;
    s->draft_p_min = p_min;
    s->backoff = (bn_draft_backoff){0};
    return 0;
}

bn_lookup_stats bn_session_lookup_stats(const bn_session *s) { return s->lookup; }

int32_t bn_session_token_id(const bn_session *s) { return s->logprobs && s->sampled ? s->sampled_id : -1; }

int bn_session_token_logprobs(const bn_session *s, float *logprob, const bn_token_logprob **top) {
    const bool have = s->logprobs && s->sampled;
    *logprob = have ? s->logprob : 0;
    *top = have ? s->top : NULL;
    return have ? s->top_logprobs : -1;
}

const char *bn_session_backend(const bn_session *s) { return s->be.ops->name; }
const char *bn_session_backend_note(const bn_session *s) { return s->be.note; }
const char *bn_session_draft_note(const bn_session *s) { return s->draft_note[0] ? s->draft_note : NULL; }
const char *bn_session_cpu_kernels(const bn_session *s) {
    return s->be.ops == &bn_cpu_backend ? bn_cpu_backend_kernels(s->be.be) : NULL;
}
int bn_session_n_ctx(const bn_session *s) { return s->be.n_ctx; }
int bn_session_pos(const bn_session *s) { return s->n_past; }
int bn_session_room(const bn_session *s) {
    return s->n_hist < s->be.n_ctx ? s->be.n_ctx - s->n_hist : 0;
}
void bn_session_reset(bn_session *s) { s->n_hist = s->n_past = 0; }

int bn_session_keep_prefix(bn_session *s, const int32_t *ids, size_t n) {
    const size_t most = n == 0 ? 0 : (size_t)s->n_past < n - 1 ? (size_t)s->n_past : n - 1;
    size_t k = 0;
    while (k < most && s->history[k] == ids[k]) k++;
    s->n_hist = s->n_past = (int)k;
    return (int)k;
}

uint64_t bn_session_backend_bytes(const bn_session *s) {
    return s->be.ops->memory_bytes ? s->be.ops->memory_bytes(s->be.be) : 0;
}

uint64_t bn_session_decode_bytes(const bn_session *s) { return s->be.ops->decode_bytes(s->be.be); }

double bn_session_read_bandwidth_gbs(const bn_session *s) {
    return s->be.ops->read_bandwidth_gbs ? s->be.ops->read_bandwidth_gbs(s->be.be) : 0;
}

// With a backend opening (cpu_start): once it is open (wait: wait for it), the
// move to it. A failure is the caller's error where the backend was named, at
// this step and every later one (the session never ran on what was asked for);
// under "auto" the session stays on the CPU, saying why.
static int settle_opening(bn_session *s, bool wait, bn_error *err) {
    if (s->broken.msg[0]) return bn_errorf(err, "%s", s->broken.msg);
    if (!s->opening) return 0;
    bn_opened o;
    bn_error why = {{0}};
    int r = wait ? bn_opening_wait(s->opening, &o, &why) : bn_opening_poll(s->opening, &o, &why);
    if (r == 0) return 0;
    bn_opening_free(s->opening);
    s->opening = NULL;
    if (r > 0 && !o.be) { // the choice was the CPU, where the session is
        memcpy(s->be.note, o.note, sizeof s->be.note);
        return 0;
    }
    if (r > 0 && s->n_past > 0 &&
        o.ops->forward(o.be, s->history, s->pos, NULL, s->n_past, NULL, false, &why)) {
        char msg[sizeof why.msg];
        snprintf(msg, sizeof msg, "%s backend: %.400s", o.ops->name, why.msg);
        o.ops->destroy(o.be);
        snprintf(why.msg, sizeof why.msg, "%s", msg);
        r = -1;
    }
    if (r < 0) {
        if (s->named) {
            s->broken = why;
            snprintf(s->be.note, sizeof s->be.note, "the backend asked for failed to open: %.240s", why.msg);
            return bn_errorf(err, "%s", why.msg);
        }
        snprintf(s->be.note, sizeof s->be.note, "auto: using the CPU (%.240s)", why.msg);
        return 0;
    }
    s->be.ops->destroy(s->be.be);
    char note[sizeof o.note];
    snprintf(note, sizeof note, "%.240s; started on the CPU, moved after %d tokens", o.note, s->n_past);
    s->be = o;
    memcpy(s->be.note, note, sizeof note);
    return 0;
}

bool bn_session_opening(const bn_session *s) { return s->opening != NULL; }

int bn_session_wait_backend(bn_session *s, bn_error *err) { return settle_opening(s, true, err); }

// While the session may still move: feeds history[n_past..n_hist) a chunk at a
// time, moving between chunks once the backend asked for is open, and leaves
// the last chunk (1..BN_CPU_START_CHUNK tokens) to the caller's step.
static int feed_while_opening(bn_session *s, bn_error *err) {
    if (settle_opening(s, false, err)) return -1;
    while (s->opening && s->n_hist - s->n_past > BN_CPU_START_CHUNK) {
        if (s->be.ops->forward(s->be.be, s->history + s->n_past, s->pos + s->n_past, NULL, BN_CPU_START_CHUNK,
                               NULL, false, err))
            return -1;
        s->n_past += BN_CPU_START_CHUNK;
        if (settle_opening(s, false, err)) return -1;
    }
    return 0;
}

// Appends tokens to the history, checking they fit in the context.
static int append_tokens(bn_session *s, const int32_t *ids, size_t n, bn_error *err) {
    if ((long long)n > (long long)s->be.n_ctx - s->n_hist)
        return bn_errorf(err, "prompt of %zu tokens does not fit in the context (%d tokens, %d used)",
                         n, s->be.n_ctx, s->n_hist);
    if (bn_engine_check_ids(s->engine, ids, n, err)) return -1;
    if (n) memcpy(s->history + s->n_hist, ids, n * sizeof *ids);
    s->n_hist += (int)n;
    return 0;
}

// The next token from a whole row of logits: its log-probabilities read first
// (logprobs), then the JSON or regex mask and the sampler, which change the row in place;
// -1 when no token fits (the mask, or -inf logit biases).
static int32_t pick_from_row(bn_session *s, bn_sampler *smp, float *row) {
    if (s->logprobs)
        bn_logprob_row_read(&s->lp, row, (int32_t)s->engine->model->hp.n_vocab, s->top_logprobs, s->top);
    if (s->json_schema && !bn_json_mask_row(&s->json_vocab, s->engine, s->json, row)) return -1;
    if (s->regex.rx && !bn_regex_reply_mask(&s->regex, s->engine, row)) return -1;
    const int32_t id = bn_sampler_sample(smp, row, s->history, (size_t)s->n_hist);
    if (s->logprobs && id >= 0) s->logprob = bn_logprob_row_of(&s->lp, id), s->sampled = true, s->sampled_id = id;
    return id;
}

// Feeds history[n_past..n_hist) and picks the next token from the last row: the
// backend's argmax for a greedy sampler, its best entries for one that needs no
// more (top.h), else the row (also for a JSON reply or logprobs, which need it
// whole); the same token each way, and the first two leave the row on a GPU.
static int feed_and_pick(bn_session *s, bn_sampler *smp, int32_t *next, bn_error *err) {
    if (feed_while_opening(s, err)) return -1;
    const int32_t *toks = s->history + s->n_past;
    const int32_t *pos = s->pos + s->n_past;
    int n = s->n_hist - s->n_past;
    const bool rows = s->json_schema || s->regex.rx || s->logprobs;
    int rc;
    if (!rows && bn_sampler_is_greedy(smp) && s->be.ops->forward_argmax) {
        rc = s->be.ops->forward_argmax(s->be.be, toks, pos, NULL, n, next, err);
    } else if (!rows && bn_sampler_takes_top(smp) && s->be.ops->forward_top) {
        bn_top top[BN_TOP_MAX];
        rc = s->be.ops->forward_top(s->be.be, toks, pos, NULL, n, top, NULL, err);
        if (rc == 0) *next = bn_sampler_sample_top(smp, top, s->history, (size_t)s->n_hist);
    } else {
        rc = s->be.ops->forward(s->be.be, toks, pos, NULL, n, s->logits, false, err);
        if (rc == 0) *next = pick_from_row(s, smp, s->logits);
    }
    if (rc == 0) s->n_past = s->n_hist;
    return rc;
}

// Up to max tokens drafted by s's draft session after s's history, for the
// sampler smp: bn_draft_steps on the draft session's backend, history and KV cache.
static int draft_tokens(bn_session *s, const bn_sampler *smp, int max, int32_t *out, bn_error *err) {
    bn_session *d = s->draft;
    if (settle_opening(d, false, err)) return -1;
    if (s->draft_call.cap < d->be.n_ctx) { // the draft session's context, as its backend opened
        bn_draft_call_free(&s->draft_call);
        if (bn_draft_call_init(&s->draft_call, d->be.n_ctx, 1, false, err)) return -1;
    }
    bn_draft_seq q = {.hist = d->history, .n_hist = d->n_hist, .n_past = d->n_past, .n_ctx = d->be.n_ctx};
    bn_draft_job job = {.seq = &q, .backoff = &s->backoff, .copy = &s->draft_smp, .smp = smp, .text = s->history,
                        .n = s->n_hist, .max = max, .out = out};
    const int rc = bn_draft_steps(&d->be, (int32_t)d->engine->model->hp.n_vocab, &s->draft_call, &job, 1,
                                  s->draft_p_min, d->logits, err);
    d->n_hist = q.n_hist, d->n_past = q.n_past;
    return rc ? -1 : job.got;
}

// A draft model that fails (its backend, or logits that are not finite) costs
// the generation its drafts only: drafting stops for good, as
// bn_session_set_lookup(s, 0) stops it, and the step goes on without a draft.
// bn_session_draft_note says why. Returns 0, the tokens drafted.
static int draft_failed(bn_session *s, const bn_error *why) {
    snprintf(s->draft_note, sizeof s->draft_note, "the draft model failed, and drafts no more: %s", why->msg);
    bn_error ignored;
    bn_session_set_lookup(s, 0, &ignored); // turning drafts off cannot fail
    return 0;
}

// The step after the pending token (history[n_hist - 1], not yet fed) with
// lookup (or a draft model) on: the next row of the last verifying pass where
// the pending token is the one it drafted there (its K/V are in the cache
// already), else a new pass over the pending token and a new draft of up to
// max_draft tokens (0 where nothing matches, or the draft model idles:
// feed_and_pick). Each row is read by the same pick_from_row, in order, with
// the history up to it, so the tokens are feed_and_pick's.
static int lookup_step(bn_session *s, bn_sampler *smp, int max_draft, int32_t *next, bn_error *err) {
    const size_t V = s->engine->model->hp.n_vocab;
    const int32_t pending = s->history[s->n_hist - 1];
    if (bn_lookup_takes(&s->pass, pending)) {
        s->n_past = s->n_hist;
        s->lookup.accepted++;
        *next = pick_from_row(s, smp, s->rows + (size_t)s->pass.next_row++ * V);
        return 0;
    }
    if (s->draft && s->pass.next_row) bn_draft_judge(&s->backoff, s->pass.next_row > 1); // a draft model's pass ends
    bn_lookup_end(&s->pass, s->lookup_max);
    if (max_draft > s->pass.len) max_draft = s->pass.len;
    int32_t toks[BN_LOOKUP_MAX + 1];
    bn_error why = {{0}};
    int k = max_draft <= 0 ? 0
          : s->draft   ? draft_tokens(s, smp, max_draft, toks + 1, &why)
                       : bn_lookup_draft(s->history, s->n_hist, max_draft, toks + 1);
    if (k < 0) k = draft_failed(s, &why);
    if (k == 0) return feed_and_pick(s, smp, next, err);
    if (settle_opening(s, false, err)) return -1; // a move (cpu_start) comes between passes only
    toks[0] = pending;
    if (s->be.ops->forward(s->be.be, toks, s->pos + s->n_past, NULL, k + 1, s->rows, true, err)) return -1;
    bn_lookup_begin(&s->pass, toks + 1, k);
    s->n_past = s->n_hist;
    s->lookup.drafted += k;
    s->lookup.passes++;
    *next = pick_from_row(s, smp, s->rows);
    return 0;
}

// Streams a token's bytes to the callback as complete UTF-8 text, in chunks so
// that a hostile vocabulary with huge tokens needs no allocation here. The id
// goes with the first chunk, -1 with the rest. Returns nonzero to stop.
static int emit_token(bn_session *s, bn_utf8_stream *u, int32_t id, bn_token_fn on_token,
                      void *user) {
    enum { CHUNK = 256 };
    char text[CHUNK + 8];
    size_t len = 0, off = 0;
    const char *bytes = bn_engine_token_bytes(s->engine, id, &len);
    if (!on_token || !bytes) return 0;
    do {
        size_t m = len - off < CHUNK ? len - off : CHUNK;
        size_t n = bn_utf8_stream_push(u, bytes + off, m, text);
        if (on_token(user, off == 0 ? id : -1, text, n)) return 1;
        off += m;
    } while (off < len);
    return 0;
}

const char *bn_stop_name(bn_stop stop) {
    switch (stop) {
    case BN_STOP_LENGTH: return "length";
    case BN_STOP_EOG: return "eog";
    case BN_STOP_CONTEXT: return "context";
    case BN_STOP_CALLER: return "caller";
    case BN_STOP_STRING: return "stop";
    }
    return "unknown";
}

int bn_session_generate(bn_session *s, const int32_t *prompt, size_t n_prompt, int n_predict,
                        const bn_sampling *sp, bn_token_fn on_token, void *user,
                        bn_timings *timings, bn_error *err) {
    bn_timings t = {0};
    bn_sampler *smp = NULL;
    bn_sampling greedy = bn_sampling_greedy();
    if (bn_sampler_create(sp ? sp : &greedy, (int32_t)s->engine->model->hp.n_vocab, (size_t)s->be.n_ctx + 1, &smp,
                          err))
        return -1;
    int rc = -1;
    if (append_tokens(s, prompt, n_prompt, err)) goto done;
    t.n_prompt = s->n_hist - s->n_past;
    if (t.n_prompt == 0) {
        bn_errorf(err, "nothing to generate from: the prompt is empty");
        goto done;
    }

    bn_utf8_stream utf8 = {0};
    int32_t next;
    s->sampled = false;
    s->lookup = (bn_lookup_stats){0};
    s->pass = (bn_lookup_pass){.len = s->lookup_max};
    s->backoff = (bn_draft_backoff){0};
    if (s->json_schema) bn_json_state_init(s->json, s->json_schema);
    if (s->regex.rx) bn_regex_reply_restart(&s->regex);
    double t0 = bn_now_ms();
    if (feed_and_pick(s, smp, &next, err)) goto done;
    t.prefill_ms = bn_now_ms() - t0;

    t0 = bn_now_ms();
    t.stop = BN_STOP_LENGTH;
    for (int i = 0; i < n_predict && next >= 0; i++) { // next < 0: no token fits (a JSON reply, bans)
        s->history[s->n_hist++] = next; // pending: fed by the next step or the next call
        t.n_gen++;
        if (bn_engine_is_eog(s->engine, next)) {
            t.stop = BN_STOP_EOG;
            break;
        }
        if (emit_token(s, &utf8, next, on_token, user)) {
            t.stop = BN_STOP_CALLER;
            break;
        }
        if (s->json_schema && bn_json_state_feed_token(s->json, s->engine, next)) {
            t.stop = BN_STOP_EOG; // the JSON value closed: the reply is whole
            break;
        }
        if (s->regex.rx && bn_regex_reply_feed(&s->regex, s->engine, next)) {
            t.stop = BN_STOP_EOG; // nothing can follow the match: the reply is whole
            break;
        }
        if (i + 1 == n_predict) break;
        // The pending token goes to position n_hist - 1, which must be in the cache.
        if (s->n_hist > s->be.n_ctx) {
            t.stop = BN_STOP_CONTEXT;
            break;
        }
        if (s->lookup_max) { // a pass gives up to 1 + k tokens; it feeds k + 1 from position n_hist - 1
            const int room = s->be.n_ctx - s->n_hist, left = n_predict - i - 2;
            if (lookup_step(s, smp, room < left ? room : left, &next, err)) goto done;
        } else if (feed_and_pick(s, smp, &next, err)) {
            goto done;
        }
    }
    t.decode_ms = bn_now_ms() - t0;
    char tail[8];
    size_t n_tail = bn_utf8_stream_flush(&utf8, tail);
    if (on_token && n_tail) on_token(user, -1, tail, n_tail);
    rc = 0;
done:
    t.backend_ms = s->be.ms; // after a move (cpu_start), the opening of the backend moved to
    if (timings) *timings = t;
    bn_sampler_free(smp);
    bn_sampler_free(s->draft_smp);
    s->draft_smp = NULL;
    return rc;
}

// Feeds tokens after those in the session: the last row, or every row of them.
// On failure the tokens are not in the session.
static int eval(bn_session *s, const int32_t *tokens, size_t n, float *logits, bool all, bn_error *err) {
    const int n_hist = s->n_hist;
    if (append_tokens(s, tokens, n, err)) return -1;
    if (s->n_hist == s->n_past) return bn_errorf(err, "nothing to evaluate");
    if (all && s->n_hist - s->n_past != (int)n) { // a generation's pending token would take row 0
        s->n_hist = n_hist;
        return bn_errorf(err, "the session has a pending sampled token: every row needs it fed first");
    }
    // Every row comes from one backend: the session moves (cpu_start) before, not between chunks.
    if (all ? settle_opening(s, false, err) : feed_while_opening(s, err)) goto fail;
    const int m = s->n_hist - s->n_past;
    if (s->be.ops->forward(s->be.be, s->history + s->n_past, s->pos + s->n_past, NULL, m, logits, all, err))
        goto fail;
    s->n_past = s->n_hist;
    return 0;
fail:
    s->n_hist = s->n_past > n_hist ? s->n_past : n_hist; // chunks fed before the failure stay
    return -1;
}

int bn_session_eval(bn_session *s, const int32_t *tokens, size_t n, float *logits, bn_error *err) {
    return eval(s, tokens, n, logits, false, err);
}

int bn_session_eval_all(bn_session *s, const int32_t *tokens, size_t n, float *logits, bn_error *err) {
    return eval(s, tokens, n, logits, true, err);
}

// From position 0, BN_SCORE_ROWS tokens a forward call, each with its row.
int bn_session_score(bn_session *s, const int32_t *tokens, size_t n, int top_logprobs, float *logprob,
                     bn_token_logprob *top, bn_error *err) {
    const int32_t V = (int32_t)s->engine->model->hp.n_vocab;
    if (n < 1) return bn_errorf(err, "nothing to score");
    if (top_logprobs < 0 || top_logprobs > BN_TOP_LOGPROBS_MAX || top_logprobs > V)
        return bn_errorf(err, "top_logprobs must be in 0..%d (got %d)", BN_TOP_LOGPROBS_MAX < V ? BN_TOP_LOGPROBS_MAX : V,
                         top_logprobs);
    if (n > (size_t)s->be.n_ctx) // before the reset: a text refused leaves the session as it was
        return bn_errorf(err, "%zu tokens to score do not fit in the context (%d tokens)", n, s->be.n_ctx);
    if (bn_engine_check_ids(s->engine, tokens, n, err)) return -1;
    float *rows = malloc((size_t)BN_SCORE_ROWS * V * sizeof *rows);
    if (!rows) return bn_errorf(err, "out of memory for %d rows of logits", BN_SCORE_ROWS);
    bn_session_reset(s);
    int rc = append_tokens(s, tokens, n, err) || settle_opening(s, false, err) ? -1 : 0;
    logprob[0] = NAN;
    if (top_logprobs) memset(top, 0, (size_t)top_logprobs * sizeof *top);
    while (rc == 0 && s->n_past < s->n_hist) {
        const int m = s->n_hist - s->n_past < BN_SCORE_ROWS ? s->n_hist - s->n_past : BN_SCORE_ROWS;
        rc = s->be.ops->forward(s->be.be, s->history + s->n_past, s->pos + s->n_past, NULL, m, rows, true, err);
        if (rc) break;
        // Row j predicts token n_past + j + 1; the last token's row predicts nothing here.
        const int i = s->n_past + 1, scored = i + m <= (int)n ? m : m - 1;
        bn_logprob_rows_score(rows, scored, V, tokens + i, top_logprobs, logprob + i,
                              top_logprobs ? top + (size_t)i * top_logprobs : top);
        s->n_past += m;
    }
    if (rc) s->n_hist = s->n_past; // the chunks fed before the failure stay
    free(rows);
    return rc;
}
