// test_forward_ref.c - the CPU backend's forward pass against a naive reference
// written here, straight from docs/architecture.md: I2_S, The model, on a synthetic model with
// several KV heads (grouped-query attention: 4 query heads share 2 KV heads).
//
// The reference shares nothing with cpu/: it decodes the I2_S bit layout itself,
// quantizes activations to int8 itself, and runs one token at a time with plain
// loops (double sums, so its own float error stays far below the tolerance). It
// rounds to f16 exactly where bitnet.cpp does (fixtures/README.md): Q, K, V (the
// KV cache), the softmax probabilities before they multiply V, the LM head input.
// Only the loader (core/model.h) and the f16 conversions of cpu/half.h are shared.
//
// Checks, for 1 and 2 threads and the scalar and auto kernel sets (and for the
// library's own reference backend, cpu/forward_ref.c, which test_reference.c
// holds bit for bit to the CPU backend: here it meets a second, independent oracle):
//   - a 6-token prompt fed as one batch: the last logits against the reference;
//   - 5 more tokens fed one at a time: the logits at every step (the KV cache
//     over positions and heads);
//   - the same prompt fed token by token in a fresh session matches the batch.
// Tolerance: max |diff| <= 1e-2 and mean <= 1e-4 over the logits, and the argmax
// agrees wherever the reference's top-2 margin exceeds 0.05. Both sides agree to
// ~6e-6 on this model; the bound leaves room for an int8 code that flips on a
// float summation-order difference, yet catches a missing f16 rounding of the LM
// head input (2.4e-3 max, 5.4e-4 mean), which the fixtures README's tolerance for
// bitnet.cpp (0.1 / 1e-3) would let through.
// A last test shows the comparison has teeth: a reference that maps query heads
// to the wrong KV head (h % n_kv instead of h / group) fails the tolerance.
#include "test_util.h"

#include <math.h>
#include <stdbool.h>
#include <unistd.h>

#include "bitnet.h"
#include "devtools.h"
#include "gguf.h"
#include "half.h"
#include "model.h"

#define LOGIT_MAX_DIFF 1e-2f
#define LOGIT_MEAN_DIFF 1e-4f
#define MARGIN_SLACK 0.05f // fixtures README: below this top-2 margin, ties may flip
#define N_PROMPT 6
#define N_DECODE 5
#define N_STEPS (N_PROMPT + N_DECODE)

// ---- the naive reference ---------------------------------------------------------

// One I2_S matrix decoded to codes t in {-1, 0, 1}, rows x K row-major.
typedef struct ref_matrix {
    int8_t *t;
    int64_t rows, K;
    float scale;
} ref_matrix;

typedef struct ref_layer {
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm;
    ref_matrix wq, wk, wv, wo, gate, up, down;
} ref_layer;

typedef struct ref_model {
    const bn_model *m;
    int E, F, V, n_head, n_kv, hd, n_ctx;
    ref_layer *layers;
    float *k_cache, *v_cache; // [layer][pos][n_kv * hd], already rounded to f16
    bool wrong_kv_map;        // the deliberate bug of the last test
} ref_model;

// docs/architecture.md: I2_S: byte 32*b + g of a 128-element block b holds elements g, g+32, g+64,
// g+96 in bits 7:6, 5:4, 3:2, 1:0; codes 00 -> -1, 01 -> 0, 10 -> +1, 11 -> 0.
static int8_t i2s_code(const uint8_t *data, int64_t e) {
    int64_t b = e / 128, j = e % 128;
    uint8_t byte = data[32 * b + j % 32];
    int c = (byte >> (6 - 2 * (j / 32))) & 3;
    return (int8_t)(c == 0 ? -1 : c == 2 ? 1 : 0);
}

static void ref_matrix_init(ref_matrix *r, const bn_tensor *t) {
    assert_int_equal(t->type, BN_GGML_I2_S);
    assert_int_equal(t->ne0 % 128, 0);
    r->K = (int64_t)t->ne0;
    r->rows = (int64_t)t->ne1;
    r->scale = t->scale;
    r->t = malloc((size_t)(r->rows * r->K));
    assert_non_null(r->t);
    for (int64_t e = 0; e < r->rows * r->K; e++) r->t[e] = i2s_code(t->data, e);
}

static float round_f16(float x) { return bn_f16_to_f32(bn_f32_to_f16(x)); }

// rmsnorm(z, w) = w * z / sqrt(mean(z^2) + eps)
static void ref_rmsnorm(const float *z, const float *w, int n, float eps, float *out) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)z[i] * z[i];
    float inv = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = w[i] * (z[i] * inv);
}

// bitlinear: per-token absmax int8 quantization of the input (round half to even),
// an exact integer dot with the ternary codes, then / s * scale (docs/architecture.md: The model).
static void ref_bitlinear(const ref_matrix *W, const float *x, float *y) {
    float amax = 0.0f;
    for (int64_t k = 0; k < W->K; k++) amax = fmaxf(amax, fabsf(x[k]));
    float s = 127.0f / fmaxf(amax, 1e-5f);
    int8_t *q = malloc((size_t)W->K);
    assert_non_null(q);
    for (int64_t k = 0; k < W->K; k++) {
        float v = nearbyintf(x[k] * s);
        q[k] = (int8_t)(v > 127.0f ? 127 : v < -128.0f ? -128 : v);
    }
    for (int64_t r = 0; r < W->rows; r++) {
        int32_t acc = 0;
        for (int64_t k = 0; k < W->K; k++) acc += W->t[r * W->K + k] * q[k];
        y[r] = (float)acc / s * W->scale;
    }
    free(q);
}

// NeoX RoPE on one head: pairs (i, i + d/2), theta_i = pos * base^(-2i/d).
static void ref_rope_neox(float *x, int d, int pos, float base) {
    for (int i = 0; i < d / 2; i++) {
        double theta = pos * pow(base, -2.0 * i / d);
        float c = (float)cos(theta), s = (float)sin(theta);
        float a = x[i], b = x[i + d / 2];
        x[i] = a * c - b * s;
        x[i + d / 2] = a * s + b * c;
    }
}

static float *ref_cache_row(const ref_model *r, float *cache, int layer, int pos) {
    return cache + ((size_t)layer * r->n_ctx + pos) * (size_t)(r->n_kv * r->hd);
}

// GQA: query head h uses KV head h / (n_head / n_kv); the broken variant is the
// plausible bug h % n_kv (same for heads 0 and 3 of 4/2, wrong for 1 and 2).
static int ref_kv_head(const ref_model *r, int h) {
    return r->wrong_kv_map ? h % r->n_kv : h / (r->n_head / r->n_kv);
}

// softmax(q.k^T / sqrt(d), causal) . v for every query head at position pos;
// probabilities rounded to f16 before they multiply V (bitnet.cpp's f16 V).
static void ref_attention(const ref_model *r, int layer, int pos, const float *q, float *out) {
    float *p = malloc(sizeof(float) * (size_t)(pos + 1));
    assert_non_null(p);
    const int hd = r->hd;
    for (int h = 0; h < r->n_head; h++) {
        const int g = ref_kv_head(r, h);
        const float *qh = q + h * hd;
        float mx = -INFINITY;
        for (int j = 0; j <= pos; j++) {
            const float *k = ref_cache_row(r, r->k_cache, layer, j) + g * hd;
            double dot = 0.0;
            for (int i = 0; i < hd; i++) dot += (double)qh[i] * k[i];
            p[j] = (float)(dot / sqrt((double)hd));
            mx = fmaxf(mx, p[j]);
        }
        double sum = 0.0;
        for (int j = 0; j <= pos; j++) sum += p[j] = expf(p[j] - mx);
        for (int j = 0; j <= pos; j++) p[j] = round_f16((float)(p[j] / sum));
        for (int i = 0; i < hd; i++) {
            double acc = 0.0;
            for (int j = 0; j <= pos; j++)
                acc += (double)p[j] * ref_cache_row(r, r->v_cache, layer, j)[g * hd + i];
            out[h * hd + i] = (float)acc;
        }
    }
    free(p);
}

// Scratch vectors of one step.
typedef struct ref_scratch {
    float *x, *h, *q, *k, *v, *a, *o, *gate, *up;
} ref_scratch;

// The attention half of a layer: x += attn_output(subnorm(attention(rope(qkv)))).
static void ref_attn_block(ref_model *r, int l, int pos, ref_scratch *s) {
    const ref_layer *L = &r->layers[l];
    const float eps = r->m->hp.norm_eps, base = r->m->hp.rope_base;
    const int kv_w = r->n_kv * r->hd;
    ref_rmsnorm(s->x, L->attn_norm, r->E, eps, s->h);
    ref_bitlinear(&L->wq, s->h, s->q);
    ref_bitlinear(&L->wk, s->h, s->k);
    ref_bitlinear(&L->wv, s->h, s->v);
    for (int h = 0; h < r->n_head; h++) ref_rope_neox(s->q + h * r->hd, r->hd, pos, base);
    for (int h = 0; h < r->n_kv; h++) ref_rope_neox(s->k + h * r->hd, r->hd, pos, base);
    for (int i = 0; i < r->E; i++) s->q[i] = round_f16(s->q[i]);
    float *kc = ref_cache_row(r, r->k_cache, l, pos), *vc = ref_cache_row(r, r->v_cache, l, pos);
    for (int i = 0; i < kv_w; i++) kc[i] = round_f16(s->k[i]), vc[i] = round_f16(s->v[i]);
    ref_attention(r, l, pos, s->q, s->a);
    ref_rmsnorm(s->a, L->attn_sub_norm, r->E, eps, s->a); // over all heads, hidden wide
    ref_bitlinear(&L->wo, s->a, s->o);
    for (int i = 0; i < r->E; i++) s->x[i] += s->o[i];
}

// The FFN half: x += down(subnorm(relu(gate)^2 * up)) - squared ReLU, not SiLU.
static void ref_ffn_block(ref_model *r, int l, ref_scratch *s) {
    const ref_layer *L = &r->layers[l];
    const float eps = r->m->hp.norm_eps;
    ref_rmsnorm(s->x, L->ffn_norm, r->E, eps, s->h);
    ref_bitlinear(&L->gate, s->h, s->gate);
    ref_bitlinear(&L->up, s->h, s->up);
    for (int i = 0; i < r->F; i++) {
        float g = fmaxf(s->gate[i], 0.0f);
        s->gate[i] = g * g * s->up[i];
    }
    ref_rmsnorm(s->gate, L->ffn_sub_norm, r->F, eps, s->gate);
    ref_bitlinear(&L->down, s->gate, s->o);
    for (int i = 0; i < r->E; i++) s->x[i] += s->o[i];
}

// Embedding row (f16 -> f32) of a token.
static void ref_embed(const ref_model *r, int32_t token, float *x) {
    const uint16_t *row = (const uint16_t *)r->m->tok_embd.data + (size_t)token * r->E;
    for (int i = 0; i < r->E; i++) x[i] = bn_f16_to_f32(row[i]);
}

// logits = f16(rmsnorm(x, output_norm)) . head^T, the head f16 [E, V].
static void ref_lm_head(const ref_model *r, const float *x, float *h, float *logits) {
    ref_rmsnorm(x, r->m->output_norm.f32, r->E, r->m->hp.norm_eps, h);
    for (int i = 0; i < r->E; i++) h[i] = round_f16(h[i]);
    const uint16_t *w = r->m->output.data;
    for (int v = 0; v < r->V; v++) {
        double acc = 0.0;
        for (int i = 0; i < r->E; i++) acc += (double)bn_f16_to_f32(w[(size_t)v * r->E + i]) * h[i];
        logits[v] = (float)acc;
    }
}

// One token at position pos (all earlier positions already in the caches).
static void ref_step(ref_model *r, int32_t token, int pos, float *logits) {
    ref_scratch s;
    float *buf = malloc(sizeof(float) * (size_t)(7 * r->E + 2 * r->F));
    assert_non_null(buf);
    s.x = buf, s.h = s.x + r->E, s.q = s.h + r->E, s.k = s.q + r->E, s.v = s.k + r->E;
    s.a = s.v + r->E, s.o = s.a + r->E, s.gate = s.o + r->E, s.up = s.gate + r->F;
    ref_embed(r, token, s.x);
    for (int l = 0; l < (int)r->m->hp.n_layer; l++) {
        ref_attn_block(r, l, pos, &s);
        ref_ffn_block(r, l, &s);
    }
    ref_lm_head(r, s.x, s.h, logits);
    free(buf);
}

static void ref_init(ref_model *r, const bn_model *m) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->E = (int)m->hp.n_embd, r->F = (int)m->hp.n_ff, r->V = (int)m->hp.n_vocab;
    r->n_head = (int)m->hp.n_head, r->n_kv = (int)m->hp.n_head_kv;
    r->hd = (int)m->hp.head_dim, r->n_ctx = N_STEPS;
    assert_int_equal(m->hp.n_rot, m->hp.head_dim); // full-width rope, as in 2B-4T
    assert_int_equal(m->tok_embd.type, BN_GGML_F16);
    assert_int_equal(m->output.type, BN_GGML_F16);
    r->layers = calloc(m->hp.n_layer, sizeof *r->layers);
    assert_non_null(r->layers);
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const bn_layer *B = &m->layers[l];
        ref_layer *L = &r->layers[l];
        L->attn_norm = B->attn_norm.f32, L->attn_sub_norm = B->attn_sub_norm.f32;
        L->ffn_norm = B->ffn_norm.f32, L->ffn_sub_norm = B->ffn_sub_norm.f32;
        ref_matrix_init(&L->wq, &B->wq), ref_matrix_init(&L->wk, &B->wk);
        ref_matrix_init(&L->wv, &B->wv), ref_matrix_init(&L->wo, &B->wo);
        ref_matrix_init(&L->gate, &B->w_gate), ref_matrix_init(&L->up, &B->w_up);
        ref_matrix_init(&L->down, &B->w_down);
    }
    size_t cache = (size_t)m->hp.n_layer * r->n_ctx * r->n_kv * r->hd;
    r->k_cache = calloc(cache, sizeof(float));
    r->v_cache = calloc(cache, sizeof(float));
    assert_true(r->k_cache && r->v_cache);
}

static void ref_free(ref_model *r) {
    for (uint32_t l = 0; r->layers && l < r->m->hp.n_layer; l++) {
        ref_matrix *ms[] = {&r->layers[l].wq, &r->layers[l].wk, &r->layers[l].wv,
                            &r->layers[l].wo, &r->layers[l].gate, &r->layers[l].up,
                            &r->layers[l].down};
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) free(ms[i]->t);
    }
    free(r->layers);
    free(r->k_cache);
    free(r->v_cache);
}

// ---- fixture: the synthetic model, its reference logits ---------------------------

typedef struct fixture {
    char path[64];
    bn_model *model;
    bn_engine *engine;
    int32_t tokens[N_STEPS]; // the prompt, then the decode tokens
    int V;
    float *ref_logits;       // N_STEPS rows of V: the reference after each token
} fixture;

static fixture fx;

// hidden 256, 4 query heads / 2 KV heads (head_dim 64, GQA group 2), ffn 384, two
// layers. rope base 10000 (not 2B-4T's 500000) so the rotation is large over a few
// positions and a wrong rope shows.
static int write_model(const char *path) {
    bn_synth_config c = {.n_ctx = 64, .n_embd = 256, .n_layer = 2, .n_ff = 384, .n_head = 4,
                         .n_head_kv = 2, .rope_base = 10000.0f, .norm_eps = 1e-5f, .seed = 20250};
    bn_error err = {{0}};
    if (bn_synth_model_write(&c, path, &err) != 0) {
        fprintf(stderr, "synth model: %s\n", err.msg);
        return -1;
    }
    return 0;
}

// Runs the reference over all N_STEPS tokens (wrong_kv_map: the broken variant).
static float *ref_run(bool wrong_kv_map) {
    ref_model r;
    ref_init(&r, fx.model);
    r.wrong_kv_map = wrong_kv_map;
    float *logits = malloc(sizeof(float) * (size_t)fx.V * N_STEPS);
    assert_non_null(logits);
    for (int p = 0; p < N_STEPS; p++) ref_step(&r, fx.tokens[p], p, logits + (size_t)p * fx.V);
    ref_free(&r);
    return logits;
}

static int setup(void **state) {
    (void)state;
    memset(&fx, 0, sizeof fx);
    snprintf(fx.path, sizeof fx.path, "/tmp/bn_test_fwdref_%d_XXXXXX", (int)getpid());
    int fd = mkstemp(fx.path);
    if (fd < 0) return -1;
    close(fd);
    bn_error err = {{0}};
    if (write_model(fx.path) || bn_model_load(fx.path, &fx.model, &err) ||
        bn_engine_load(fx.path, NULL, &fx.engine, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    fx.V = (int)fx.model->hp.n_vocab;
    // BOS, then bytes of "Hello" and " world": ordinary ids of the byte vocabulary.
    const int32_t ids[N_STEPS] = {fx.V - 256, 'H', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l'};
    memcpy(fx.tokens, ids, sizeof ids);
    fx.ref_logits = ref_run(false);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(fx.ref_logits);
    bn_engine_free(fx.engine);
    bn_model_free(fx.model);
    if (fx.path[0]) remove(fx.path);
    return 0;
}

// ---- comparison ------------------------------------------------------------------

typedef struct diff_stats {
    float max, mean;
} diff_stats;

static diff_stats logit_diff(const float *ours, const float *ref, int n) {
    diff_stats d = {0};
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        float e = fabsf(ours[i] - ref[i]);
        sum += e;
        d.max = fmaxf(d.max, e);
    }
    d.mean = (float)(sum / n);
    return d;
}

// Index of the largest logit, and the gap to the runner-up.
static int top1(const float *x, int n, float *margin) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    float second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != best) second = fmaxf(second, x[i]);
    if (margin) *margin = x[best] - second;
    return best;
}

// Within the fixtures README tolerance, and the same argmax where it is clear.
static bool close_to_ref(const float *ours, const float *ref, int n, diff_stats *d) {
    *d = logit_diff(ours, ref, n);
    float margin;
    int want = top1(ref, n, &margin);
    bool argmax_ok = margin <= MARGIN_SLACK || top1(ours, n, NULL) == want;
    return d->max <= LOGIT_MAX_DIFF && d->mean <= LOGIT_MEAN_DIFF && argmax_ok;
}

static bn_session *open_session(const char *backend, int n_threads, const char *kernels) {
    bn_session_params p = {.backend = backend, .n_threads = n_threads, .n_ctx = N_STEPS + 4,
                           .cpu_kernels = kernels};
    bn_session *s = NULL;
    bn_error err = {{0}};
    if (bn_session_create(fx.engine, &p, &s, &err) != 0) fail_msg("session: %s", err.msg);
    return s;
}

// One runtime configuration: batched prompt, then token-by-token decode, each step
// against the reference; worst diffs accumulate into *worst.
static void check_config(const char *backend, int n_threads, const char *kernels, diff_stats *worst) {
    bn_session *s = open_session(backend, n_threads, kernels);
    float *logits = malloc(sizeof(float) * (size_t)fx.V);
    assert_non_null(logits);
    bn_error err = {{0}};
    for (int p = N_PROMPT - 1; p < N_STEPS; p++) {
        // the whole prompt as one batch, then one token per call
        const int32_t *toks = p < N_PROMPT ? fx.tokens : &fx.tokens[p];
        size_t n = p < N_PROMPT ? N_PROMPT : 1;
        assert_int_equal(bn_session_eval(s, toks, n, logits, &err), 0);
        assert_int_equal(bn_session_pos(s), p + 1);
        diff_stats d;
        bool ok = close_to_ref(logits, fx.ref_logits + (size_t)p * fx.V, fx.V, &d);
        if (!ok || p == N_PROMPT - 1 || p == N_STEPS - 1)
            fprintf(stderr, "  %-9s %d thread(s), %-6s pos %2d%s: max |diff| %.3g, mean %.3g%s\n",
                    backend, n_threads, kernels, p, p == N_PROMPT - 1 ? " (batch)" : "", (double)d.max,
                    (double)d.mean, ok ? "" : "  <-- FAIL");
        worst->max = fmaxf(worst->max, d.max);
        worst->mean = fmaxf(worst->mean, d.mean);
        if (!ok) fail_msg("logits at position %d differ from the reference", p);
    }
    free(logits);
    bn_session_free(s);
}

static void test_cpu_matches_reference(void **state) {
    (void)state;
    const char *kernels[] = {"scalar", "auto"};
    diff_stats worst = {0};
    for (int t = 1; t <= 2; t++)
        for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++)
            check_config("cpu", t, kernels[k], &worst);
    fprintf(stderr, "  worst over 4 configs x %d positions: max |diff| %.3g, mean %.3g\n",
            N_DECODE + 1, (double)worst.max, (double)worst.mean);
}

// The library's reference backend (one thread, its own scalar path) against the
// naive one: the same tolerance as the CPU backend's.
static void test_library_reference_matches_naive(void **state) {
    (void)state;
    diff_stats worst = {0};
    check_config("reference", 1, "scalar", &worst);
}

// The prompt fed one token per call in a fresh session gives the batch's logits
// (the batched prefill and the decode path agree), for every configuration.
static void test_token_by_token_matches_batch(void **state) {
    (void)state;
    float *batch = malloc(sizeof(float) * (size_t)fx.V);
    float *step = malloc(sizeof(float) * (size_t)fx.V);
    assert_true(batch && step);
    bn_error err = {{0}};
    const char *kernels[] = {"scalar", "auto"};
    for (int t = 1; t <= 2; t++) {
        for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
            bn_session *s = open_session("cpu", t, kernels[k]);
            assert_int_equal(bn_session_eval(s, fx.tokens, N_PROMPT, batch, &err), 0);
            bn_session_reset(s);
            for (int p = 0; p < N_PROMPT; p++)
                assert_int_equal(bn_session_eval(s, &fx.tokens[p], 1, step, &err), 0);
            diff_stats d;
            bool ok = close_to_ref(step, batch, fx.V, &d);
            fprintf(stderr, "  %d thread(s), %-6s token-by-token vs batch: max |diff| %.3g, "
                    "mean %.3g\n", t, kernels[k], (double)d.max, (double)d.mean);
            assert_true(ok);
            bn_session_free(s);
        }
    }
    free(batch);
    free(step);
}

// The comparison can fail: a reference with the wrong query -> KV head map is
// far outside the tolerance against the runtime at every decode step.
static void test_wrong_gqa_map_is_caught(void **state) {
    (void)state;
    float *broken = ref_run(true);
    bn_session *s = open_session("cpu", 1, "scalar");
    float *logits = malloc(sizeof(float) * (size_t)fx.V);
    assert_non_null(logits);
    bn_error err = {{0}};
    assert_int_equal(bn_session_eval(s, fx.tokens, N_PROMPT, logits, &err), 0);
    diff_stats d;
    assert_false(close_to_ref(logits, broken + (size_t)(N_PROMPT - 1) * fx.V, fx.V, &d));
    fprintf(stderr, "  wrong KV head map in the reference: max |diff| %.3g, mean %.3g "
            "(rejected, as it must be)\n", (double)d.max, (double)d.mean);
    free(logits);
    bn_session_free(s);
    free(broken);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_matches_reference),
        cmocka_unit_test(test_library_reference_matches_naive),
        cmocka_unit_test(test_token_by_token_matches_batch),
        cmocka_unit_test(test_wrong_gqa_map_is_caught),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
