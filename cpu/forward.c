// forward.c - one forward pass on the CPU (docs/architecture.md: The model, Model families).
//
// A batch of n tokens goes through each weight matrix once (ternary GEMM with n
// columns), so prefill reads the weights once per layer, not once per token, and
// so does a decode step of many sequences (one token of each, see backend.h):
// only attention and RoPE look at a token's sequence, each token against its
// own slot of the KV cache. Every other step treats tokens independently, so a
// sequence's results are bit-identical alone or batched with others.
// Parallelism: matrix rows are split across the pool in chunks of BN_ROW_CHUNK;
// attention over (token, KV head) groups; the LM head over vocabulary rows.
// Each output element is computed by exactly one thread in a fixed order, so the
// result does not depend on the thread count. Residual adds and the gate
// activation run in the matmul jobs' epilogues; norms, quantization and RoPE need a
// whole token's row, so they are split over tokens (on the caller for decode).
// The same steps, one token at a time and without the pool, are the reference
// backend (forward_ref.c), under the same names: embedding, attention_block
// (bitlinear q|k|v, attention, bitlinear o), ffn_block (bitlinear gate|up with
// the GLU, bitlinear down), lm_head, forward_batch (forward_token there).
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "../core/argmax.h"
#include "backend_cpu.h"

// Rows per unit of work: a multiple of every SIMD kernel's row tile.
#define BN_ROW_CHUNK 16
_Static_assert(BN_ROW_CHUNK % 16 == 0, "silu_mul blocks (kernels.h) must not straddle pieces");

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// This thread's share [*r0, *r1) of `rows`, in whole chunks.
static void split_rows(int64_t rows, int ith, int nth, int64_t *r0, int64_t *r1) {
    int64_t per = (rows + nth - 1) / nth;
    per = (per + BN_ROW_CHUNK - 1) / BN_ROW_CHUNK * BN_ROW_CHUNK;
    *r0 = min64(rows, ith * per);
    *r1 = min64(rows, *r0 + per);
}

// Runs fn(ctx, t) for tokens t < n: on the pool for a batch (the per-token norms,
// quantization and RoPE of a 512-token prefill are ~10% of it if left serial), on
// the caller alone for one token, where waking the pool would cost more than the
// few microseconds of work. Tokens are independent, so results are identical.
typedef void (*token_fn)(const void *ctx, int t);
typedef struct token_job {
    token_fn fn;
    const void *ctx;
    int n;
} token_job;

static void token_worker(void *ctx, int ith, int nth) {
    const token_job *job = ctx;
    for (int t = ith; t < job->n; t += nth) job->fn(job->ctx, t);
}

static void for_each_token(bn_backend *be, int n, token_fn fn, const void *ctx) {
    if (n == 1) {
        fn(ctx, 0);
        return;
    }
    token_job job = {fn, ctx, n};
    bn_pool_run(be->pool, token_worker, &job);
}

// ---- bitlinear -----------------------------------------------------------------

// Up to three matrices that read the same input (q|k|v, gate|up) run as one job, so
// the input is quantized once and the pool is woken once. The element-wise op that
// follows a matmul runs in the job's epilogue on the rows the thread just wrote,
// while they are in cache and instead of on the caller while the workers wait:
//   BN_EPI_RESIDUAL      x += out     (wo, w_down: out is the residual stream x)
//   BN_EPI_GLU           gate = act(gate) * up, act relu(.)^2 or silu (hp.ffn_silu)
//                        (gate|up: both matrices are split by the same row range
//                        so a thread owns row r of both; ranges start at multiples
//                        of BN_ROW_CHUNK, so silu_mul's SIMD blocks and scalar tail
//                        fall where ggml's do on the whole row: kernels.h)
// Each element is computed by the same float ops as the separate pass was.
typedef enum { BN_EPI_NONE, BN_EPI_RESIDUAL, BN_EPI_GLU } bn_epilogue;

typedef struct bitlinear_job {
    bn_backend *be;
    int n;     // tokens
    int64_t K; // input width
    bool packed; // be->xpacked holds the input too (kern->pack_token)
    int n_mat;
    bn_epilogue epi;
    struct {
        const bn_tensor *w;
        float *out;   // [n][rows]
        int32_t *acc; // [n][rows]
        int64_t rows;
        int64_t row0; // offset in the job's concatenated rows
    } mat[3];
    int64_t rows; // all matrices together
} bitlinear_job;

// Rows [lo, hi) of matrix i: the ternary GEMM, then bn_bitlinear_out (ops.h),
// stored or added to out.
static void bitlinear_rows(const bitlinear_job *job, int i, int64_t lo, int64_t hi) {
    const bn_backend *be = job->be;
    const int64_t M = job->mat[i].rows;
    if (job->mat[i].w->act_block) { // TQ weights: per-block activation scales
        be->kern->ternary_q8k(job->mat[i].w->data, job->K, lo, hi, be->xq, be->xblock, be->xbsum, job->n,
                              job->mat[i].w->scale, job->mat[i].w->out_scale, job->epi == BN_EPI_RESIDUAL,
                              job->mat[i].out, M);
        return;
    }
    const int32_t *acc = job->mat[i].acc;
    float *out = job->mat[i].out;
    if (job->packed)
        be->kern->ternary_gemm_packed(job->mat[i].w->data, job->K, lo, hi, be->xq, be->xpacked, be->xqsum, job->n,
                                      job->mat[i].acc, M);
    else
        be->kern->ternary_gemm(job->mat[i].w->data, job->K, lo, hi, be->xq, be->xqsum, job->n, job->mat[i].acc, M);
    const float wscale = job->mat[i].w->scale, os = job->mat[i].w->out_scale;
    for (int t = 0; t < job->n; t++) {
        const float xs = be->xscale[t];
        if (job->epi == BN_EPI_RESIDUAL)
            for (int64_t r = lo; r < hi; r++)
                out[t * M + r] += bn_bitlinear_out(acc[t * M + r], xs, wscale, os);
        else
            for (int64_t r = lo; r < hi; r++)
                out[t * M + r] = bn_bitlinear_out(acc[t * M + r], xs, wscale, os);
    }
}

static void bitlinear_worker(void *ctx, int ith, int nth) {
    const bitlinear_job *job = ctx;
    int64_t r0, r1;
    if (job->epi == BN_EPI_GLU) { // gate|up, same rows of both
        const int64_t F = job->mat[0].rows;
        split_rows(F, ith, nth, &r0, &r1);
        if (r0 >= r1) return;
        bitlinear_rows(job, 0, r0, r1);
        bitlinear_rows(job, 1, r0, r1);
        void (*glu)(float *restrict, const float *restrict, int64_t) =
            job->be->m->hp.ffn_silu ? job->be->kern->silu_mul : bn_relu_sqr_mul;
        for (int t = 0; t < job->n; t++)
            glu(job->mat[0].out + t * F + r0, job->mat[1].out + t * F + r0, r1 - r0);
        return;
    }
    split_rows(job->rows, ith, nth, &r0, &r1);
    for (int i = 0; i < job->n_mat; i++) {
        const int64_t lo = (r0 > job->mat[i].row0 ? r0 : job->mat[i].row0) - job->mat[i].row0;
        const int64_t hi = min64(r1, job->mat[i].row0 + job->mat[i].rows) - job->mat[i].row0;
        if (lo < hi) bitlinear_rows(job, i, lo, hi);
    }
}

// The BitLinear input of token t: xn = rmsnorm(x, norm) (in place when xn == x),
// then its int8 quantization into be->xq. norm NULL (a family without sub-norms):
// x itself is quantized, and xn must be x.
typedef struct norm_quant {
    bn_backend *be;
    const float *x;
    float *xn;
    const float *norm;
    int64_t K;
    bool per_block; // weights with act_block 256: bn_quantize_q8k_block per block
} norm_quant;

static void norm_quant_token(const void *ctx, int t) {
    const norm_quant *c = ctx;
    bn_backend *be = c->be;
    float *xn = c->xn + t * c->K;
    if (c->norm) bn_rmsnorm(xn, c->x + t * c->K, c->norm, c->K, be->m->hp.norm_eps);
    if (c->per_block) {
        for (int64_t b = 0; b < c->K / 256; b++) {
            const int64_t tb = t * (c->K / 256) + b;
            be->xblock[tb] = bn_quantize_q8k_block(xn + b * 256, be->xq + t * c->K + b * 256);
            bn_q8k_group_sums(be->xq + t * c->K + b * 256, be->xbsum + tb * 8);
        }
        return;
    }
    be->xscale[t] = be->kern->quantize_i8(xn, c->K, be->xq + t * c->K, &be->xqsum[t]);
}

// A kernel set that wants its own layout of the activations (AMX's tiles) gets it
// once per bitlinear, from whole groups of 16 tokens per thread: tokens side by
// side in one tile row, so two threads packing neighbours would share its lines.
typedef struct pack_job {
    bn_backend *be;
    int n;
    int64_t K;
} pack_job;

static void pack_worker(void *ctx, int ith, int nth) {
    const pack_job *job = ctx;
    const bn_backend *be = job->be;
    for (int g = ith; g < (job->n + 15) / 16; g += nth)
        for (int t = 16 * g; t < job->n && t < 16 * g + 16; t++)
            be->kern->pack_token(be->xq + t * job->K, job->K, t, be->xpacked);
}

// out[i] = bitlinear(rmsnorm(x, norm), w[i]) * w[i]->out_scale for n tokens of K
// floats (docs/architecture.md: The model), then `epi`. The normalized input is left
// in xn (which may be x; must be without a norm).
static void bitlinear(bn_backend *be, const float *x, float *xn, const float *norm, int n,
                      int64_t K, int n_mat, const bn_tensor *const w[], float *const out[],
                      bn_epilogue epi) {
    const norm_quant nq = {be, x, xn, norm, K, w[0]->act_block != 0}; // one kind a layer: model.c
    for_each_token(be, n, norm_quant_token, &nq);
    const bool packed = be->kern->pack_token && n >= BN_PACKED_MIN_TOKENS && !nq.per_block;
    if (packed) {
        pack_job pj = {be, n, K};
        bn_pool_run(be->pool, pack_worker, &pj);
    }
    bitlinear_job job = {.be = be, .n = n, .K = K, .n_mat = n_mat, .epi = epi, .packed = packed};
    int32_t *acc = be->acc;
    for (int i = 0; i < n_mat; i++) {
        const int64_t rows = (int64_t)w[i]->ne1;
        job.mat[i].w = w[i];
        job.mat[i].out = out[i];
        job.mat[i].acc = acc;
        job.mat[i].rows = rows;
        job.mat[i].row0 = job.rows;
        job.rows += rows;
        acc += (int64_t)n * rows;
    }
    bn_pool_run(be->pool, bitlinear_worker, &job);
}

// ---- attention -------------------------------------------------------------------

// Where (layer, sequence, KV head, position) starts in the head-major KV cache.
static inline int64_t kv_cache_offset(const bn_backend *be, int layer, int seq, int kv_head,
                                      int pos) {
    const int64_t n_head_kv = be->m->hp.n_head_kv;
    const int64_t slot = (int64_t)layer * be->n_seq + seq;
    return ((slot * n_head_kv + kv_head) * be->n_ctx + pos) * be->m->hp.head_dim;
}

int bn_cpu_copy_kv(bn_backend *be, int from, int to, int n_pos, bn_error *err) {
    (void)err;
    const bn_hparams *hp = &be->m->hp;
    const size_t bytes = (size_t)n_pos * hp->head_dim * sizeof *be->k_cache; // one head's positions
    for (int l = 0; l < (int)hp->n_layer; l++)
        for (int h = 0; h < (int)hp->n_head_kv; h++) {
            const int64_t src = kv_cache_offset(be, l, from, h, 0), dst = kv_cache_offset(be, l, to, h, 0);
            memcpy(be->k_cache + dst, be->k_cache + src, bytes);
            memcpy(be->v_cache + dst, be->v_cache + src, bytes);
        }
    return 0;
}

typedef struct attention_job {
    bn_backend *be;
    int layer;
    int n;
    const int32_t *pos, *seq; // seq NULL: all in slot 0
} attention_job;

// Work items are (token, KV head) pairs, each the GQA group of query heads that
// read that KV head, so a kernel converts each K/V row once per group. When that
// leaves too few items to balance the threads (decode: 5 KV heads on 2 threads),
// items may be smaller slices of a group. Results are the same either way (the
// kernel computes each head the same way whatever it is grouped with).
//
// Heads per item: the divisor of the group that minimizes the busiest thread's
// work, an item of `per` heads costing about (BN_ATT_ITEM_COST + per) head-units:
// the K/V reads and conversions are paid once per item. (Measured, decode at 1900
// keys on 2 threads: whole groups, 3 items against 2, beat pairs, 5 against 5, by
// 16%: a pair costs 0.72 of a group, so 3 is the cost of the shared part.)
#define BN_ATT_ITEM_COST 3

static int heads_per_item(int group, int n_head, int n_tokens, int nth) {
    int best = group;
    long best_cost = -1;
    for (int per = group; per >= 1; per--) {
        if (group % per) continue;
        const long items = (long)n_tokens * (n_head / per);
        const long cost = (items + nth - 1) / nth * (BN_ATT_ITEM_COST + per);
        if (best_cost < 0 || cost < best_cost) best = per, best_cost = cost;
    }
    return best;
}

static void attention_worker(void *ctx, int ith, int nth) {
    const attention_job *job = ctx;
    const bn_backend *be = job->be;
    const bn_hparams *hp = &be->m->hp;
    const int hd = (int)hp->head_dim;
    const int group = (int)(hp->n_head / hp->n_head_kv); // GQA: q heads per kv head
    const int per = heads_per_item(group, (int)hp->n_head, job->n, nth);
    const int items_per_token = (int)hp->n_head / per;
    const float scale = 1.0f / sqrtf((float)hd);
    float *scores = be->scores + (int64_t)ith * group * be->n_ctx;
    // Items in head-major order: a thread stays on one KV head for many tokens,
    // whose K/V rows (1 MB at 2k tokens of context) then stay in its L2 instead
    // of all the heads' passing through it (a 2000-token prompt on 2 threads of
    // a 2 MB-L2 Xeon: 84-95 tokens/s before this order and the AVX-512 q.k sums,
    // 90-100 with the sums alone, 104-105 with both). Interleaved, they balance
    // the causal lengths across threads.
    for (int p = ith; p < job->n * items_per_token; p += nth) {
        const int t = p % job->n, h = p / job->n * per; // first q head
        const int64_t kv_off = kv_cache_offset(be, job->layer, bn_seq_of(job->seq, t), h / group, 0);
        const int64_t q_off = (int64_t)t * hp->n_embd + (int64_t)h * hd;
        be->kern->attention(be->q + q_off, per, be->k_cache + kv_off, be->v_cache + kv_off, hd,
                            hd, job->pos[t] + 1, scale, scores, be->att + q_off);
    }
}

// ---- layers --------------------------------------------------------------------

// RoPE on token t's q and k, then f16: the KV cache is f16 and bitnet.cpp also
// feeds Q to the f16 attention matmul, so both are rounded after rotation.
typedef struct rope_store {
    bn_backend *be;
    int layer;
    const int32_t *pos, *seq;
} rope_store;

static void rope_store_token(const void *ctx, int t) {
    const rope_store *c = ctx;
    bn_backend *be = c->be;
    const bn_hparams *hp = &be->m->hp;
    const int64_t E = hp->n_embd, KV = be->kv_dim, hd = hp->head_dim;
    float *q = be->q + t * E, *k = be->k + t * KV, *v = be->v + t * KV;
    void (*rope)(float *, int, int, int, int, float) = hp->rope_neox ? bn_rope_neox : bn_rope_pairs;
    rope(q, (int)hp->n_head, (int)hp->head_dim, (int)hp->n_rot, c->pos[t], hp->rope_base);
    rope(k, (int)hp->n_head_kv, (int)hp->head_dim, (int)hp->n_rot, c->pos[t], hp->rope_base);
    be->kern->half_round(q, E);
    for (uint32_t h = 0; h < hp->n_head_kv; h++) {
        const int64_t row = kv_cache_offset(be, c->layer, bn_seq_of(c->seq, t), (int)h, c->pos[t]);
        be->kern->half_store(be->k_cache + row, k + h * hd, hd);
        be->kern->half_store(be->v_cache + row, v + h * hd, hd);
    }
}

// RoPE, the f16 KV write and every head's attention of layer il, into be->att.
static void attention(bn_backend *be, int il, const int32_t *pos, const int32_t *seq, int n) {
    const rope_store rs = {be, il, pos, seq};
    for_each_token(be, n, rope_store_token, &rs);
    attention_job job = {.be = be, .layer = il, .n = n, .pos = pos, .seq = seq};
    bn_pool_run(be->pool, attention_worker, &job);
}

static void attention_block(bn_backend *be, int il, const int32_t *pos, const int32_t *seq, int n) {
    const bn_layer *L = &be->m->layers[il];
    const int64_t E = be->m->hp.n_embd;

    bitlinear(be, be->x, be->xn, L->attn_norm.f32, n, E, 3,
              (const bn_tensor *const[]){&L->wq, &L->wk, &L->wv},
              (float *const[]){be->q, be->k, be->v}, BN_EPI_NONE);
    attention(be, il, pos, seq, n);
    bitlinear(be, be->att, be->att, L->attn_sub_norm.f32, n, E, 1,
              (const bn_tensor *const[]){&L->wo}, (float *const[]){be->x}, BN_EPI_RESIDUAL);
}

static void ffn_block(bn_backend *be, int il, int n) {
    const bn_layer *L = &be->m->layers[il];
    const int64_t E = be->m->hp.n_embd, F = be->m->hp.n_ff;

    bitlinear(be, be->x, be->xn, L->ffn_norm.f32, n, E, 2,
              (const bn_tensor *const[]){&L->w_gate, &L->w_up},
              (float *const[]){be->gate, be->up}, BN_EPI_GLU);
    bitlinear(be, be->gate, be->gate, L->ffn_sub_norm.f32, n, F, 1,
              (const bn_tensor *const[]){&L->w_down}, (float *const[]){be->x}, BN_EPI_RESIDUAL);
}

// ---- embedding and LM head -----------------------------------------------------

static void embedding(bn_backend *be, const int32_t *tokens, int n) {
    const int64_t E = be->m->hp.n_embd;
    for (int t = 0; t < n; t++) bn_cpu_table_row(be, &be->m->tok_embd, E, tokens[t], be->x + t * E);
}

typedef struct lm_head_job {
    bn_backend *be;
    const int *rows; // the tokens of lm_in that get a row of out, in order
    int n_rows;
    float *out;      // n_rows rows of n_vocab
    atomic_bool nonfinite; // some row holds a NaN or an infinity (bn_all_finite)
} lm_head_job;

// Vocabulary rows per pass over the tokens: every token's row of logits is
// computed from a block of the head while it is in cache (f16: 32 rows of 2560
// = 160 KiB; int8: 64 rows), so many tokens (a decode step of many sequences)
// read the head once, not once each; the f16 head goes through f16_gemm, which
// also converts each weight once for several tokens. Multiples of the kernels'
// 4-row tiles, so each row is computed exactly as in one call over the thread's
// whole range.
#define BN_HEAD_F16_ROWS 32
#define BN_HEAD_Q8_ROWS 64

// Vocabulary rows c0..c1 of every token's logits, a token at a time: the int8
// head, or an F32/BF16 one (type checked at create).
static void head_block(const bn_backend *be, lm_head_job *job, int64_t c0, int64_t c1) {
    const int64_t E = be->m->hp.n_embd, V = be->m->hp.n_vocab;
    for (int i = 0; i < job->n_rows; i++) {
        const int t = job->rows[i];
        float *y = job->out + (int64_t)i * V;
        if (be->head_q) {
            int32_t acc[BN_HEAD_Q8_ROWS]; // int32 sums, scaled into the float logits
            be->kern->i8_gemv(be->head_q + c0 * E, E, 0, c1 - c0, be->lm_q + t * E, acc);
            for (int64_t r = c0; r < c1; r++)
                y[r] = bn_head_q8_out(acc[r - c0], be->head_scale[r], be->xscale[t]);
        } else {
            bn_float_gemv(be->m->output.data, be->m->output.type, E, c0, c1, be->lm_in + t * E, y);
        }
    }
}

static void lm_head_worker(void *ctx, int ith, int nth) {
    lm_head_job *job = ctx;
    const bn_backend *be = job->be;
    const bn_tensor *head = &be->m->output;
    const int64_t E = be->m->hp.n_embd, V = be->m->hp.n_vocab;
    const int64_t step = be->head_q ? BN_HEAD_Q8_ROWS : BN_HEAD_F16_ROWS;
    int64_t r0, r1;
    split_rows(V, ith, nth, &r0, &r1);
    for (int64_t c0 = r0; c0 < r1; c0 += step) {
        const int64_t c1 = min64(r1, c0 + step);
        if (!be->head_q && head->type == BN_GGML_F16) // every token against the block, each weight converted once
            be->kern->f16_gemm(head->data, E, c0, c1, be->lm_in, E, job->rows, job->n_rows, job->out, V);
        else
            head_block(be, job, c0, c1);
        // Checked while the block is in cache; the caller finds which row.
        bool finite = true;
        for (int i = 0; i < job->n_rows; i++) finite &= bn_all_finite(job->out + i * V + c0, c1 - c0);
        if (!finite) atomic_store_explicit(&job->nonfinite, true, memory_order_relaxed);
    }
}

// Logits of the listed tokens: rmsnorm(x, output_norm), rounded to f16 (the head
// is an f16 matmul in bitnet.cpp), dotted with every vocabulary row. Returns
// whether every logit is finite.
static bool lm_head(bn_backend *be, const int *rows, int n_rows, float *out) {
    const bn_hparams *hp = &be->m->hp;
    const int64_t E = hp->n_embd;
    for (int i = 0; i < n_rows; i++) {
        const int t = rows[i];
        float *x = be->lm_in + t * E;
        bn_rmsnorm(x, be->x + t * E, be->m->output_norm.f32, E, hp->norm_eps);
        be->kern->half_round(x, E);
        // The int8 head: NaN for an input that is not all finite, whose codes
        // would hide it, so that its logits are NaN and reported.
        if (be->head_q)
            be->xscale[t] = bn_all_finite(x, E) ? be->kern->quantize_i8(x, E, be->lm_q + t * E, NULL) : NAN;
    }
    lm_head_job job = {.be = be, .rows = rows, .n_rows = n_rows, .out = out};
    atomic_init(&job.nonfinite, false);
    bn_pool_run(be->pool, lm_head_worker, &job);
    return !atomic_load(&job.nonfinite);
}

// ---- forward -------------------------------------------------------------------

// n <= max_batch tokens; out (NULL: no logits) gets the rows of the n_rows
// tokens listed in be->head_rows. Returns whether those rows are finite.
static bool forward_batch(bn_backend *be, const int32_t *tokens, const int32_t *pos,
                          const int32_t *seq, int n, float *out, int n_rows) {
    const bn_model *m = be->m;
    embedding(be, tokens, n);
    for (int il = 0; il < (int)m->hp.n_layer; il++) {
        attention_block(be, il, pos, seq, n);
        ffn_block(be, il, n);
    }
    return !out || !n_rows || lm_head(be, be->head_rows, n_rows, out);
}

int bn_cpu_forward(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                   int n_tokens, float *logits, bool all_logits, bn_error *err) {
    const int64_t V = be->m->hp.n_vocab;
    if (bn_backend_check_tokens("cpu", tokens, pos, seq, n_tokens, (uint32_t)V, be->n_ctx,
                                be->n_seq, err) < 0)
        return -1;
    // Batches larger than the scratch run as consecutive chunks: later chunks see
    // the earlier ones' K/V in the cache, so the result is the same. A token gets
    // a row of logits when all are wanted or when it ends its run.
    int64_t row = 0; // rows written so far
    for (int c0 = 0; c0 < n_tokens; c0 += be->max_batch) {
        const int n = n_tokens - c0 < be->max_batch ? n_tokens - c0 : be->max_batch;
        int n_rows = 0;
        for (int t = 0; logits && t < n; t++)
            if (all_logits || bn_run_ends(seq ? seq + c0 : NULL, t, n_tokens - c0))
                be->head_rows[n_rows++] = t;
        float *out = logits ? logits + row * V : NULL;
        if (!forward_batch(be, tokens + c0, pos + c0, seq ? seq + c0 : NULL, n, out, n_rows))
            for (int r = 0; r < n_rows; r++)
                if (!bn_all_finite(out + r * V, V)) {
                    const int t = c0 + be->head_rows[r];
                    return bn_backend_nonfinite("cpu", pos[t], bn_seq_of(seq, t), err);
                }
        row += n_rows;
    }
    return 0;
}

int bn_cpu_forward_argmax(bn_backend *be, const int32_t *tokens, const int32_t *pos,
                          const int32_t *seq, int n_tokens, int32_t *argmax, bn_error *err) {
    // One row per run, and a slot has one run: at most n_seq rows fit be->logits.
    if (bn_cpu_forward(be, tokens, pos, seq, n_tokens, be->logits, false, err) != 0) return -1;
    const int64_t V = be->m->hp.n_vocab;
    for (int t = 0, r = 0; t < n_tokens; t++)
        if (bn_run_ends(seq, t, n_tokens)) argmax[r] = bn_argmax(be->logits + r * V, (int32_t)V), r++;
    return 0;
}

// The rows are on the host already, so this saves no copy; it is the definition
// the CUDA backend's forward_top is held to, and it runs a batch's sampling
// through the same path on every machine (tests/test_batch.c).
int bn_cpu_forward_top(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n_tokens,
                       bn_top *top, double *exp_sums, bn_error *err) {
    if (bn_cpu_forward(be, tokens, pos, seq, n_tokens, be->logits, false, err) != 0) return -1;
    const int64_t V = be->m->hp.n_vocab;
    const int32_t k = V < BN_TOP_MAX ? (int32_t)V : BN_TOP_MAX;
    for (int t = 0, r = 0; t < n_tokens; t++)
        if (bn_run_ends(seq, t, n_tokens)) {
            bn_top *row = top + (int64_t)r * BN_TOP_MAX;
            bn_top_select(be->logits + r * V, (int32_t)V, k, row);
            for (int32_t i = k; i < BN_TOP_MAX; i++) row[i] = (bn_top){-1, -INFINITY};
            if (exp_sums) exp_sums[r] = bn_top_exp_sum(be->logits + r * V, (int32_t)V, row[0].logit, INFINITY);
            r++;
        }
    return 0;
}
