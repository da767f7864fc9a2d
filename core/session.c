// session.c - a backend instance with its KV cache, and the generation loop.
//
// The session remembers every token it has been given or has produced
// (history) and how many of them are in the KV cache (n_past). The last
// sampled token is not fed until the next step needs it, so a later
// generate() call (the next chat turn) feeds it first.
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bitnet.h"
#include "clock.h"
#include "engine_internal.h"
#include "sampler.h"

struct bn_session {
    bn_engine *engine;
    bn_opened be;     // the backend, its note, context and creation time
    int32_t *history; // n_ctx + 1: the last sampled token may not fit in the cache
    int n_hist;
    int n_past;       // history[0..n_past) is in the KV cache
    int32_t *pos;     // pos[i] = i: a call's positions are the slice at n_past
    float *logits;    // n_vocab
};

int bn_session_create(bn_engine *e, const bn_session_params *p, bn_session **out, bn_error *err) {
    *out = NULL;
    const int32_t n_vocab = (int32_t)e->model->hp.n_vocab;
    bn_session *s = calloc(1, sizeof *s);
    if (!s) return bn_errorf(err, "out of memory");
    s->engine = e;
    if (bn_backend_open(e, p, 1, &s->be, err)) goto fail;
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
    if (s->be.be) s->be.ops->destroy(s->be.be);
    free(s->history);
    free(s->pos);
    free(s->logits);
    free(s);
}

const char *bn_session_backend(const bn_session *s) { return s->be.ops->name; }
const char *bn_session_backend_note(const bn_session *s) { return s->be.note; }
const char *bn_session_cpu_kernels(const bn_session *s) {
    return s->be.ops == &bn_cpu_backend ? bn_cpu_backend_kernels(s->be.be) : NULL;
}
int bn_session_n_ctx(const bn_session *s) { return s->be.n_ctx; }
int bn_session_pos(const bn_session *s) { return s->n_past; }
int bn_session_room(const bn_session *s) {
    return s->n_hist < s->be.n_ctx ? s->be.n_ctx - s->n_hist : 0;
}
void bn_session_reset(bn_session *s) { s->n_hist = s->n_past = 0; }

uint64_t bn_session_backend_bytes(const bn_session *s) {
    return s->be.ops->memory_bytes ? s->be.ops->memory_bytes(s->be.be) : 0;
}

uint64_t bn_session_decode_bytes(const bn_session *s) { return s->be.ops->decode_bytes(s->be.be); }

double bn_session_read_bandwidth_gbs(const bn_session *s) {
    return s->be.ops->read_bandwidth_gbs ? s->be.ops->read_bandwidth_gbs(s->be.be) : 0;
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

// Feeds history[n_past..n_hist) and picks the next token from the last row: the
// backend's argmax for a greedy sampler, its best entries for one that needs no
// more (top.h), else the row (the same token each way; the first two leave the
// row on a GPU).
static int feed_and_pick(bn_session *s, bn_sampler *smp, int32_t *next, bn_error *err) {
    const int32_t *toks = s->history + s->n_past;
    const int32_t *pos = s->pos + s->n_past;
    int n = s->n_hist - s->n_past;
    int rc;
    if (bn_sampler_is_greedy(smp) && s->be.ops->forward_argmax) {
        rc = s->be.ops->forward_argmax(s->be.be, toks, pos, NULL, n, next, err);
    } else if (bn_sampler_takes_top(smp) && s->be.ops->forward_top) {
        bn_top top[BN_TOP_MAX];
        rc = s->be.ops->forward_top(s->be.be, toks, pos, NULL, n, top, err);
        if (rc == 0) *next = bn_sampler_sample_top(smp, top, s->history, (size_t)s->n_hist);
    } else {
        rc = s->be.ops->forward(s->be.be, toks, pos, NULL, n, s->logits, false, err);
        if (rc == 0) *next = bn_sampler_sample(smp, s->logits, s->history, (size_t)s->n_hist);
    }
    if (rc == 0) s->n_past = s->n_hist;
    return rc;
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
    bn_timings t = {.backend_ms = s->be.ms};
    bn_sampler *smp = NULL;
    bn_sampling greedy = bn_sampling_greedy();
    if (bn_sampler_create(sp ? sp : &greedy, (int32_t)s->engine->model->hp.n_vocab, &smp, err))
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
    double t0 = bn_now_ms();
    if (feed_and_pick(s, smp, &next, err)) goto done;
    t.prefill_ms = bn_now_ms() - t0;

    t0 = bn_now_ms();
    t.stop = BN_STOP_LENGTH;
    for (int i = 0; i < n_predict; i++) {
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
        if (i + 1 == n_predict) break;
        // The pending token goes to position n_hist - 1, which must be in the cache.
        if (s->n_hist > s->be.n_ctx) {
            t.stop = BN_STOP_CONTEXT;
            break;
        }
        if (feed_and_pick(s, smp, &next, err)) goto done;
    }
    t.decode_ms = bn_now_ms() - t0;
    char tail[8];
    size_t n_tail = bn_utf8_stream_flush(&utf8, tail);
    if (on_token && n_tail) on_token(user, -1, tail, n_tail);
    rc = 0;
done:
    if (timings) *timings = t;
    bn_sampler_free(smp);
    return rc;
}

int bn_session_eval(bn_session *s, const int32_t *tokens, size_t n, float *logits, bn_error *err) {
    if (append_tokens(s, tokens, n, err)) return -1;
    int m = s->n_hist - s->n_past;
    if (m == 0) return bn_errorf(err, "nothing to evaluate");
    if (s->be.ops->forward(s->be.be, s->history + s->n_past, s->pos + s->n_past, NULL, m, logits,
                           false, err))
        return -1;
    s->n_past = s->n_hist;
    return 0;
}
