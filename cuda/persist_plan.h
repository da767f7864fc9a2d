// persist_plan.h - how the persistent decode kernel (decode_persistent.cu) lays
// out one multiprocessor's shared memory, as plain C with no CUDA in it, so
// tests/test_persist_plan.c checks it on any machine.
//
// The kernel runs one block per multiprocessor for all layers of a decode step.
// Each of a layer's four bitlinears (Q|K|V, O, gate|up, down) has its own
// region holding this block's rows of that matrix, so the next layer's slice of
// a matrix can stream in as soon as this layer's has been used: every weight
// byte has about a layer's time to arrive. A fifth region is the working space
// of one phase at a time: a bitlinear's input codes and the row being
// normalized, or the attention's: for the one-block form the queries, scores,
// RoPE table, p.V partials and the new key and value row, for the split pair's
// steps what their kernels hold (attention_smem.h). Where the four slices do not fit (a large model on
// few multiprocessors), there is no plan and decode takes the kernel-per-
// operation path.
#ifndef BN_CUDA_PERSIST_PLAN_H
#define BN_CUDA_PERSIST_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attention_smem.h"

enum { BN_PERSIST_QKV = 0, BN_PERSIST_O = 1, BN_PERSIST_GU = 2, BN_PERSIST_DOWN = 3, BN_PERSIST_MATS = 4 };

#define BN_PERSIST_ALIGN 16

typedef struct bn_persist_plan {
    int blocks;                  // one per multiprocessor
    int K[BN_PERSIST_MATS];      // input width of each matrix
    int M[BN_PERSIST_MATS];      // rows
    int rows[BN_PERSIST_MATS];   // rows a block owns (the last blocks may own fewer, or none)
    size_t off[BN_PERSIST_MATS]; // byte offset of each weight region
    size_t work;                 // byte offset of the working region
    size_t codes_bytes;          // in it: the input codes, then the row being normalized (floats)
    int max_keys;                // positions below it may take the one-block attention (a multiple of
                                 // 16; 0: that form is out, too few blocks or too little room)
    size_t smem;                 // dynamic shared memory a block uses
} bn_persist_plan;

static inline size_t bn_persist_round(size_t n) { return (n + BN_PERSIST_ALIGN - 1) / BN_PERSIST_ALIGN * BN_PERSIST_ALIGN; }

// Bytes of the one-block attention's working space for qpb heads of hd dims
// holding max_keys scores each: the new K and V rows (hd halves each), queries
// (qpb x hd floats), scores (qpb x max_keys), the RoPE table (n_rot floats) and
// the p.V partials (kp x qpb x hd floats, kp = the V rows BN_ATTS_THREADS
// threads take at once).
static inline size_t bn_persist_att_bytes(int hd, int qpb, int n_rot, int max_keys) {
    const size_t kp = BN_ATTS_THREADS / (hd / 8);
    return 4 * (size_t)hd + 4 * ((size_t)qpb * hd + (size_t)qpb * max_keys + (size_t)n_rot + kp * qpb * hd);
}

// Bytes of the split pair's steps, the larger of the two.
static inline size_t bn_persist_split_bytes(int hd, int qpb, int n_rot) {
    const size_t a = bn_attd_smem_a(hd, qpb, n_rot), b = bn_attd_smem_b(hd, qpb);
    return a > b ? a : b;
}

// The plan for `blocks` multiprocessors of `smem_limit` usable bytes each, a
// model of hidden width E, FFN width F, nq query and nkv key widths, heads of
// hd dims (qpb served by one attention block, n_rot rotated) and a context of
// n_ctx; keys_wanted: the largest max_keys asked for. False when the four
// weight slices and a bitlinear's input or the split pair's steps do not fit.
// The one-block attention needs a block for each of the nq / hd / qpb head
// groups.
static inline bool bn_persist_plan_make(bn_persist_plan *p, int blocks, size_t smem_limit, int E, int F, int nq,
                                        int nkv, int hd, int qpb, int n_rot, int n_ctx, int keys_wanted) {
    if (blocks <= 0 || E <= 0 || F <= 0 || nq <= 0 || nkv <= 0 || hd <= 0 || hd % 8 || hd / 8 > BN_ATTS_THREADS ||
        hd / 8 > BN_ATTD_THREADS || qpb <= 0 || qpb > BN_ATTD_QPB || n_rot <= 0 || n_ctx <= 0)
        return false;
    const int K[BN_PERSIST_MATS] = {E, nq, E, F}, M[BN_PERSIST_MATS] = {nq + 2 * nkv, E, 2 * F, E};
    size_t off = 0;
    p->blocks = blocks;
    for (int i = 0; i < BN_PERSIST_MATS; i++) {
        if (K[i] % 128) return false;
        p->K[i] = K[i];
        p->M[i] = M[i];
        p->rows[i] = (M[i] + blocks - 1) / blocks;
        p->off[i] = off;
        off += bn_persist_round((size_t)p->rows[i] * (size_t)(K[i] / 4));
    }
    const int kmax = F > E ? (F > nq ? F : nq) : (E > nq ? E : nq);
    p->work = off;
    p->codes_bytes = bn_persist_round((size_t)kmax);
    const size_t norm_bytes = p->codes_bytes + 4 * (size_t)kmax, split = bn_persist_split_bytes(hd, qpb, n_rot);
    const size_t fixed = norm_bytes > split ? norm_bytes : split; // what every step but the one-block form needs
    p->max_keys = 0;
    p->smem = off + bn_persist_round(fixed);
    if (p->smem > smem_limit) return false;
    int keys = keys_wanted < n_ctx ? keys_wanted : n_ctx;
    keys -= keys % 16;
    if ((int64_t)blocks * qpb * hd < nq) keys = 0;
    for (; keys >= 16; keys -= 16) {
        const size_t att = bn_persist_att_bytes(hd, qpb, n_rot, keys);
        const size_t total = off + bn_persist_round(att > fixed ? att : fixed);
        if (total <= smem_limit) {
            p->max_keys = keys;
            p->smem = total;
            break;
        }
    }
    return true;
}

#endif
