// backend_cpu.h - private state of the CPU backend, shared by backend_cpu.c
// (create/destroy) and forward.c (the forward pass). Not for the core.
#ifndef BN_BACKEND_CPU_H
#define BN_BACKEND_CPU_H

#include <stdint.h>

#include "../core/backend.h"
#include "kernels.h"
#include "ops.h"
#include "threadpool.h"

// B = max_batch tokens; E = n_embd, F = n_ff, KV = n_head_kv * head_dim.
struct bn_backend {
    const bn_model *m;
    const bn_cpu_kernels *kern;
    bn_pool *pool;
    int n_ctx;         // positions per sequence slot
    int n_seq;         // sequence slots
    int max_batch;
    int64_t kv_dim;

    // f16, head-major: [n_layer][n_seq][n_head_kv][n_ctx][head_dim]. One KV head's keys
    // are then one contiguous run, which attention streams; position-major rows
    // ([n_ctx][KV], as bitnet.cpp keeps them) made it read 256 bytes every 1280,
    // and long-context decode ran at half the speed.
    uint16_t *k_cache, *v_cache;

    float *x;          // [B][E] residual stream
    float *xn;         // [B][max(E,F)] input of the next bitlinear
    int8_t *xq;        // [B][max(E,F)] its int8 quantization
    int8_t *xpacked;   // the same in the kernel set's own layout (kern->pack_token), or NULL
    float *xscale;     // [B] quantization scale per token
    int32_t *xqsum;    // [B] sum of the int8 codes per token
    float *xblock;     // [B][max(E,F)/256] per-block scales (weights with act_block 256)
    int32_t *xbsum;    // [B][max(E,F)/256][8] their group sums (bn_q8k_group_sums)
    int32_t *acc;      // [B][rows of a fused bitlinear] int32 sums
    float *q, *k, *v;  // [B][E], [B][KV], [B][KV]
    float *att;        // [B][E] attention output (all heads)
    float *gate, *up;  // [B][F]
    float *scores;     // [n_threads][n_head / n_head_kv][n_ctx] attention scores
    float *lm_in;      // [B][E] LM head input (f16-rounded)
    int *head_rows;    // [B] the tokens of a chunk that get a row of logits
    float *logits;     // [n_seq][n_vocab] for forward_argmax (one row per run)

    int8_t *head_q;    // lm_head_q8: [n_vocab][E] int8 head, NULL otherwise
    float *head_scale; // [n_vocab] per-row scale
    int8_t *lm_q;      // [B][E] int8 LM input

    uint64_t bytes;    // everything allocated here
};

// Row `row` of a float table (embedding, LM head) of n floats per row. F16 goes
// through the kernel table (F16C when available, same bits as the scalar path).
static inline void bn_cpu_table_row(const bn_backend *be, const bn_tensor *t, int64_t n,
                                    int64_t row, float *out) {
    if (t->type == BN_GGML_F16)
        be->kern->half_load(out, (const uint16_t *)t->data + row * n, n);
    else
        bn_embed_row(out, t->data, t->type, n, row); // type checked at create
}

int bn_cpu_forward(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                   int n_tokens, float *logits, bool all_logits, bn_error *err);
int bn_cpu_forward_argmax(bn_backend *be, const int32_t *tokens, const int32_t *pos,
                          const int32_t *seq, int n_tokens, int32_t *argmax, bn_error *err);
int bn_cpu_forward_top(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n_tokens,
                       bn_top *top, double *exp_sums, bn_error *err);
// backend.h's copy_kv: plain copies in the head-major KV cache (forward.c).
int bn_cpu_copy_kv(bn_backend *be, int from, int to, int n_pos, bn_error *err);

#endif
