// forward_ref.c - the reference backend: the whole model in one file, one token
// at a time, on one thread, with plain loops (docs/architecture.md: The model,
// Model families).
//
// It is the CPU backend with its scalar kernel set (`kernels = "scalar"`)
// without the batching and the thread pool: the same building blocks (ops.h,
// the scalar entries of kernels.h, half.h) called in the same order, with the
// same float operations in between, so its logits are bit for bit the CPU
// backend's (tests/test_reference.c). Read it beside cpu/forward.c and
// cuda/forward_cuda.cu: the steps have the same names in all three (embedding,
// attention_block = bitlinear q|k|v, attention, bitlinear o; ffn_block;
// lm_head; forward_token here, forward_batch there). Here the input of a
// bitlinear is made by norm_quant, once for the matrices that share it; the
// backends do it inside their bitlinear. Slow by design: `--backend reference`
// only, never "auto", and bench leaves it out.
#include <math.h>
#include <stdlib.h>

#include "../core/backend.h"
#include "half.h"
#include "kernels.h"
#include "ops.h"
#include "roofline.h" // bn_cpu_decode_bytes, bn_cpu_check_model

// E = n_embd, F = n_ff, KV = n_head_kv * head_dim, V = n_vocab.
struct bn_backend {
    const bn_model *m;
    int n_ctx, n_seq;
    int64_t kv_dim;

    // f16, one row of KV per position: [n_layer][n_seq][n_ctx][KV] (the CPU
    // backend keeps its cache head-major for speed; the values are the same).
    uint16_t *k_cache, *v_cache;

    float *x;          // [E] residual stream
    float *xn;         // [max(E,F)] normalized input of a bitlinear
    int8_t *xq;        // [max(E,F)] its int8 codes
    float xscale;      // its scale (per token)
    float *xblock;     // [max(E,F)/256] its scales per block (TQ weights, act_block 256)
    int32_t *acc;      // [max rows] int32 sums of one ternary matrix
    float *q, *k, *v;  // [E], [KV], [KV]
    float *att;        // [E] attention output, all heads
    float *gate, *up;  // [F]
    float *scores;     // [n_ctx] one head's attention scores

    int8_t *head_q;    // lm_head_q8: [V][E] int8 head, NULL otherwise
    float *head_scale; // [V] its per-row scale
    int8_t *lm_q;      // [E] int8 LM head input
    int32_t *head_acc; // [V] int32 sums of the int8 head

    uint64_t bytes;    // everything allocated here
};

// ---- bitlinear -------------------------------------------------------------------

// The input of the bitlinears that follow: rmsnorm(x, norm) (norm NULL, a family
// without sub-norms: x as it is), quantized to int8 per token, or per block of
// 256 for TQ weights (act_block; one kind per model: model.c).
static void norm_quant(bn_backend *r, const float *x, const float *norm, int64_t K, bool per_block) {
    const float *in = x;
    if (norm) {
        bn_rmsnorm(r->xn, x, norm, K, r->m->hp.norm_eps);
        in = r->xn;
    }
    if (per_block) {
        for (int64_t b = 0; b < K / 256; b++) r->xblock[b] = bn_quantize_q8k_block(in + b * 256, r->xq + b * 256);
        return;
    }
    r->xscale = bn_quantize_i8(in, K, r->xq, NULL); // the scalar GEMM needs no sum of codes
}

// out (= or += when add) the ternary matrix w times the codes of norm_quant, then
// bn_bitlinear_out (ops.h: the activation scale undone, the weight scale, the
// `.scale` out-scale).
static void bitlinear(bn_backend *r, const bn_tensor *w, float *out, bool add) {
    const int64_t K = (int64_t)w->ne0, M = (int64_t)w->ne1;
    if (w->act_block) { // TQ weights: llama.cpp's per-block sums (ops.h)
        bn_ternary_rows_q8k(w->data, K, 0, M, r->xq, r->xblock, 1, w->scale, w->out_scale, add, out, M);
        return;
    }
    bn_ternary_gemm_scalar(w->data, K, 0, M, r->xq, NULL, 1, r->acc, M);
    for (int64_t i = 0; i < M; i++) {
        const float y = bn_bitlinear_out(r->acc[i], r->xscale, w->scale, w->out_scale);
        out[i] = add ? out[i] + y : y;
    }
}

// ---- attention -------------------------------------------------------------------

// Row (layer, sequence, position) of the KV cache.
static int64_t kv_row(const bn_backend *r, int layer, int seq, int pos) {
    return (((int64_t)layer * r->n_seq + seq) * r->n_ctx + pos) * r->kv_dim;
}

// q, k, v of the token at `pos` of slot `seq` -> att, over positions 0..pos of
// that slot (the earlier ones' K/V are in the cache).
static void attention(bn_backend *r, int il, int pos, int seq) {
    const bn_hparams *hp = &r->m->hp;
    const int64_t E = hp->n_embd, hd = hp->head_dim;

    // RoPE on q and k, then f16: the cache is f16, and bitnet.cpp feeds Q to its
    // f16 attention matmul, so Q is rounded too.
    void (*rope)(float *, int, int, int, int, float) = hp->rope_neox ? bn_rope_neox : bn_rope_pairs;
    rope(r->q, (int)hp->n_head, (int)hd, (int)hp->n_rot, pos, hp->rope_base);
    rope(r->k, (int)hp->n_head_kv, (int)hd, (int)hp->n_rot, pos, hp->rope_base);
    bn_round_f16(r->q, E);
    bn_store_f16(r->k_cache + kv_row(r, il, seq, pos), r->k, r->kv_dim);
    bn_store_f16(r->v_cache + kv_row(r, il, seq, pos), r->v, r->kv_dim);

    // Each query head against its KV head (GQA: a group of query heads shares one).
    const int64_t group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t h = 0; h < hp->n_head; h++) {
        const int64_t kv_head = (h / group) * hd;
        bn_attention_head(r->q + h * hd, r->k_cache + kv_row(r, il, seq, 0) + kv_head,
                          r->v_cache + kv_row(r, il, seq, 0) + kv_head, r->kv_dim, (int)hd, pos + 1,
                          scale, r->scores, r->att + h * hd);
    }
}

// x += Wo . attention(Wq|Wk|Wv . rmsnorm(x, attn_norm)).
static void attention_block(bn_backend *r, int il, int pos, int seq) {
    const bn_layer *L = &r->m->layers[il];
    const int64_t E = r->m->hp.n_embd;

    norm_quant(r, r->x, L->attn_norm.f32, E, L->wq.act_block != 0);
    bitlinear(r, &L->wq, r->q, false);
    bitlinear(r, &L->wk, r->k, false);
    bitlinear(r, &L->wv, r->v, false);
    attention(r, il, pos, seq);

    norm_quant(r, r->att, L->attn_sub_norm.f32, E, L->wo.act_block != 0);
    bitlinear(r, &L->wo, r->x, true);
}

// ---- feed-forward ----------------------------------------------------------------

// x += Wdown . glu(Wgate . h, Wup . h), h = rmsnorm(x, ffn_norm); the GLU is
// relu(g)^2 * u (bitnet-b1.58) or silu(g) * u (bitnet, llama: hp.ffn_silu).
static void ffn_block(bn_backend *r, int il) {
    const bn_hparams *hp = &r->m->hp;
    const bn_layer *L = &r->m->layers[il];
    const int64_t E = hp->n_embd, F = hp->n_ff;

    norm_quant(r, r->x, L->ffn_norm.f32, E, L->w_gate.act_block != 0);
    bitlinear(r, &L->w_gate, r->gate, false);
    bitlinear(r, &L->w_up, r->up, false);
    if (hp->ffn_silu) bn_silu_mul_scalar(r->gate, r->up, F);
    else bn_relu_sqr_mul(r->gate, r->up, F);

    norm_quant(r, r->gate, L->ffn_sub_norm.f32, F, L->w_down.act_block != 0);
    bitlinear(r, &L->w_down, r->x, true);
}

// ---- embedding and LM head -------------------------------------------------------

static void embedding(bn_backend *r, int32_t token) {
    bn_embed_row(r->x, r->m->tok_embd.data, r->m->tok_embd.type, r->m->hp.n_embd, token); // type checked at create
}

// logits = head . f16(rmsnorm(x, output_norm)): bitnet.cpp's head is an f16
// matmul, so its input is rounded to f16. With the int8 head, that input is
// quantized like a bitlinear's and each row's int32 sum scaled back.
static void lm_head(bn_backend *r, float *logits) {
    const bn_hparams *hp = &r->m->hp;
    const bn_tensor *head = &r->m->output;
    const int64_t E = hp->n_embd, V = hp->n_vocab;
    bn_rmsnorm(r->xn, r->x, r->m->output_norm.f32, E, hp->norm_eps);
    bn_round_f16(r->xn, E);
    if (r->head_q) {
        // NaN for an input that is not all finite, whose codes would hide it.
        const float xs = bn_all_finite(r->xn, E) ? bn_quantize_i8(r->xn, E, r->lm_q, NULL) : NAN;
        bn_i8_gemv_scalar(r->head_q, E, 0, V, r->lm_q, r->head_acc);
        for (int64_t i = 0; i < V; i++) logits[i] = bn_head_q8_out(r->head_acc[i], r->head_scale[i], xs);
    } else if (head->type == BN_GGML_F16) {
        bn_f16_gemv_scalar(head->data, E, 0, V, r->xn, logits);
    } else { // BF16, F32: type checked at create
        bn_float_gemv(head->data, head->type, E, 0, V, r->xn, logits);
    }
}

// ---- forward ---------------------------------------------------------------------

// One token at position pos of slot seq; logits (NULL: none wanted) gets its row.
static void forward_token(bn_backend *r, int32_t token, int pos, int seq, float *logits) {
    embedding(r, token);
    for (int il = 0; il < (int)r->m->hp.n_layer; il++) {
        attention_block(r, il, pos, seq);
        ffn_block(r, il);
    }
    if (logits) lm_head(r, logits);
}

// backend.h's contract, a token at a time: a row of logits for every token
// (all_logits) or for the last token of each run.
static int ref_forward(bn_backend *r, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                       int n_tokens, float *logits, bool all_logits, bn_error *err) {
    if (bn_backend_check_tokens("reference", tokens, pos, seq, n_tokens, r->m->hp.n_vocab, r->n_ctx,
                                r->n_seq, err) < 0)
        return -1;
    float *row = logits;
    for (int t = 0; t < n_tokens; t++) {
        const bool wanted = logits && (all_logits || bn_run_ends(seq, t, n_tokens));
        forward_token(r, tokens[t], pos[t], bn_seq_of(seq, t), wanted ? row : NULL);
        if (wanted && !bn_all_finite(row, r->m->hp.n_vocab))
            return bn_backend_nonfinite("reference", pos[t], bn_seq_of(seq, t), err);
        if (wanted) row += r->m->hp.n_vocab;
    }
    return 0;
}

// ---- create / destroy ------------------------------------------------------------

static int ref_probe(bn_error *err) {
    (void)err;
    return 0; // plain C: runs wherever the library does
}

static void ref_destroy(bn_backend *r) {
    if (!r) return;
    void *bufs[] = {r->k_cache, r->v_cache, r->x,    r->xn,   r->xq,     r->xblock,     r->acc,
                    r->q,       r->k,       r->v,    r->att,  r->gate,   r->up,         r->scores,
                    r->head_q,  r->head_scale, r->lm_q, r->head_acc};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(r);
}

static void *scratch(bn_backend *r, size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (p) r->bytes += (uint64_t)n * size;
    return p;
}

// The int8 LM head (lm_head_q8), as the CPU backend makes it: each row quantized
// like a bitlinear input, its scale kept as 1 / s.
static int quantize_head(bn_backend *r, bn_error *err) {
    const bn_model *m = r->m;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab;
    r->head_q = scratch(r, (size_t)(V * E), 1);
    r->head_scale = scratch(r, (size_t)V, sizeof(float));
    r->lm_q = scratch(r, (size_t)E, 1);
    r->head_acc = scratch(r, (size_t)V, sizeof(int32_t));
    float *row = malloc((size_t)E * sizeof(float));
    if (!r->head_q || !r->head_scale || !r->lm_q || !r->head_acc || !row) {
        free(row);
        return bn_errorf(err, "reference: out of memory for the int8 LM head");
    }
    for (int64_t i = 0; i < V; i++) {
        bn_embed_row(row, m->output.data, m->output.type, E, i);
        const float s = bn_quantize_i8(row, E, r->head_q + i * E, NULL);
        r->head_scale[i] = bn_all_finite(row, E) ? 1.0f / s : NAN; // as quantize_head_worker
    }
    free(row);
    return 0;
}

static int ref_create(const bn_model *m, const bn_backend_config *cfg_in, bn_backend **out, bn_error *err) {
    *out = NULL;
    const bn_backend_config defaults = {0};
    const bn_backend_config *cfg = cfg_in ? cfg_in : &defaults;
    const bn_hparams *hp = &m->hp;
    if (bn_cpu_check_model(m, "reference", err)) return -1;
    const int n_ctx = cfg->n_ctx > 0 ? cfg->n_ctx : (int)hp->n_ctx_train;
    if ((uint32_t)n_ctx > hp->n_ctx_train)
        return bn_errorf(err, "reference: context %d is longer than the model's %u", n_ctx, hp->n_ctx_train);

    bn_backend *r = calloc(1, sizeof *r);
    if (!r) return bn_errorf(err, "reference: out of memory");
    r->m = m;
    r->bytes = sizeof *r;
    r->n_ctx = n_ctx;
    r->n_seq = cfg->n_seq > 0 ? cfg->n_seq : 1;
    r->kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    const size_t E = hp->n_embd, F = hp->n_ff, KV = (size_t)r->kv_dim;
    const size_t wide = F > E ? F : E; // also the most rows of one matrix (q: E, gate/up: F, k/v: KV <= E)
    const size_t cache = (size_t)hp->n_layer * (size_t)r->n_seq * (size_t)n_ctx * KV;
    r->k_cache = scratch(r, cache, sizeof(uint16_t));
    r->v_cache = scratch(r, cache, sizeof(uint16_t));
    r->x = scratch(r, E, sizeof(float));
    r->xn = scratch(r, wide, sizeof(float));
    r->xq = scratch(r, wide, 1);
    r->xblock = scratch(r, wide / 256 + 1, sizeof(float));
    r->acc = scratch(r, wide, sizeof(int32_t));
    r->q = scratch(r, E, sizeof(float));
    r->k = scratch(r, KV, sizeof(float));
    r->v = scratch(r, KV, sizeof(float));
    r->att = scratch(r, E, sizeof(float));
    r->gate = scratch(r, F, sizeof(float));
    r->up = scratch(r, F, sizeof(float));
    r->scores = scratch(r, (size_t)n_ctx, sizeof(float));
    if (!r->k_cache || !r->v_cache || !r->x || !r->xn || !r->xq || !r->xblock || !r->acc || !r->q || !r->k ||
        !r->v || !r->att || !r->gate || !r->up || !r->scores) {
        ref_destroy(r);
        return bn_errorf(err, "reference: out of memory for the KV cache (%d x %d positions)", r->n_seq, n_ctx);
    }
    if (cfg->lm_head_q8 && quantize_head(r, err) != 0) {
        ref_destroy(r);
        return -1;
    }
    *out = r;
    return 0;
}

static uint64_t ref_memory_bytes(const bn_backend *r) { return r->bytes; }

// What one token reads, as the CPU backend counts it.
static uint64_t ref_decode_bytes(const bn_backend *r) { return bn_cpu_decode_bytes(r->m, r->head_q != NULL); }

const bn_backend_ops bn_reference_backend = {
    .name = "reference",
    .probe = ref_probe,
    .create = ref_create,
    .destroy = ref_destroy,
    .forward = ref_forward,
    .memory_bytes = ref_memory_bytes,
    .decode_bytes = ref_decode_bytes,
};
