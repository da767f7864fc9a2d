// persist_plan.h - how the persistent decode kernel (decode_persistent.cu) lays
// out one multiprocessor's shared memory, as plain C with no CUDA in it, so
// tests/test_persist_plan.c checks it on any machine.
//
// The kernel runs one block per multiprocessor for all layers of a decode step.
// Each block owns a fixed run of rows of each of a layer's four bitlinears
// (Q|K|V, O, gate|up, down) and reads them as a stream of chunks through a ring
// of BN_PERSIST_STAGES equal stages: a chunk is some of the block's rows of one
// matrix, the stream runs matrix by matrix and layer by layer in the order the
// phases use them, and as soon as a chunk has been used the one BN_PERSIST_STAGES
// further on starts copying into its stage. So the weight stream runs ahead of
// the phases by the whole ring, across the grid barriers between them, and a
// model of any size fits: where a layer's rows fit, the ring holds one layer
// (every byte then has about a layer's time to arrive); where they do not (the
// 10B shape), it holds what the shared memory has room for. After the ring
// comes the working space of one phase at a time: a bitlinear's input codes and
// the row being normalized, or the attention's: for the one-block form the
// queries, scores, RoPE table, p.V partials and the new key and value row, for
// the split pair's steps what their kernels hold (attention_smem.h).
#ifndef BN_CUDA_PERSIST_PLAN_H
#define BN_CUDA_PERSIST_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attention_smem.h"

enum { BN_PERSIST_QKV = 0, BN_PERSIST_O = 1, BN_PERSIST_GU = 2, BN_PERSIST_DOWN = 3, BN_PERSIST_MATS = 4 };

#define BN_PERSIST_ALIGN 16
#define BN_PERSIST_STAGES 8 // chunks in flight (a constant: cp.async.wait_group takes an immediate)

typedef struct bn_persist_plan {
    int blocks;                  // one per multiprocessor
    int K[BN_PERSIST_MATS];      // input width of each matrix
    int M[BN_PERSIST_MATS];      // rows
    int rows[BN_PERSIST_MATS];   // rows a block owns (the last blocks may own fewer, or none)
    int chunk_rows[BN_PERSIST_MATS]; // rows of one chunk (a block's last chunks may hold fewer, or none)
    int chunks[BN_PERSIST_MATS]; // chunks of a block's rows, the same count in every block
    int layer_chunks;            // chunks of one layer, the four matrices'
    size_t stage;                // bytes of one stage; the ring is BN_PERSIST_STAGES of them from offset 0
    size_t work;                 // byte offset of the working region (the ring's end)
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

// Cuts each matrix's rows of a block (p->K, p->rows) into chunks of stages of
// `stage` bytes: as many rows a chunk as a stage holds, then evened out over the
// chunks that takes. Returns the chunks of a layer.
static inline int bn_persist_chunk(bn_persist_plan *p, size_t stage) {
    int total = 0;
    for (int i = 0; i < BN_PERSIST_MATS; i++) {
        const int fit = (int)(stage / (size_t)(p->K[i] / 4)), n = fit < p->rows[i] ? fit : p->rows[i];
        p->chunks[i] = (p->rows[i] + n - 1) / n;
        p->chunk_rows[i] = (p->rows[i] + p->chunks[i] - 1) / p->chunks[i];
        total += p->chunks[i];
    }
    return total;
}

// The plan for `blocks` multiprocessors of `smem_limit` usable bytes each, a
// model of hidden width E, FFN width F, nq query and nkv key widths, heads of
// hd dims (qpb served by one attention block, n_rot rotated) and a context of
// n_ctx; keys_wanted: the largest max_keys asked for; ring_cap: the most bytes
// the ring may take (0: no cap; tests use it to force a small ring), raised to
// stages of one row of the widest matrix, the least the kernel can stream.
// False when a bitlinear's input or the split pair's steps leave no room for
// that. The ring takes one layer's rows where they fit, else all the room the
// working region leaves; the one-block attention takes what is left after that
// (it needs a block for each of the nq / hd / qpb head groups).
static inline bool bn_persist_plan_make(bn_persist_plan *p, int blocks, size_t smem_limit, int E, int F, int nq,
                                        int nkv, int hd, int qpb, int n_rot, int n_ctx, int keys_wanted,
                                        size_t ring_cap) {
    // The attention's own limits (bn_attd_args_init): a shape it refuses gets no
    // plan, so its steps run on the kernels, which refuse it once, in create().
    if (blocks <= 0 || E <= 0 || F <= 0 || nq <= 0 || nkv <= 0 || hd <= 0 || hd > 256 || hd % 8 ||
        hd / 8 > BN_ATTS_THREADS || hd / 8 > BN_ATTD_THREADS || qpb <= 0 || qpb > BN_ATTD_QPB || n_rot <= 0 ||
        n_rot > hd || n_rot % 2 || n_ctx <= 0)
        return false;
    const int K[BN_PERSIST_MATS] = {E, nq, E, F}, M[BN_PERSIST_MATS] = {nq + 2 * nkv, E, 2 * F, E};
    size_t layer = 0, widest = 0; // a block's bytes of one layer; the longest row
    p->blocks = blocks;
    for (int i = 0; i < BN_PERSIST_MATS; i++) {
        if (K[i] % 128) return false;
        p->K[i] = K[i];
        p->M[i] = M[i];
        p->rows[i] = (M[i] + blocks - 1) / blocks;
        layer += (size_t)p->rows[i] * (size_t)(K[i] / 4);
        if ((size_t)(K[i] / 4) > widest) widest = (size_t)(K[i] / 4);
    }
    const int kmax = F > E ? (F > nq ? F : nq) : (E > nq ? E : nq);
    p->codes_bytes = bn_persist_round((size_t)kmax);
    const size_t norm_bytes = p->codes_bytes + 4 * (size_t)kmax, split = bn_persist_split_bytes(hd, qpb, n_rot);
    const size_t fixed = bn_persist_round(norm_bytes > split ? norm_bytes : split); // every phase but the one-block form
    if (smem_limit < fixed) return false;
    size_t room = smem_limit - fixed; // for the ring
    if (ring_cap && room > ring_cap) room = ring_cap;
    // A layer in BN_PERSIST_STAGES chunks where the room allows it: the smallest
    // stage from an eighth of a layer up that takes no more (rows do not pack
    // stages evenly, so an eighth alone may take a ninth chunk, and then only
    // eight of them are ever in flight); else the most the room holds.
    p->stage = room / BN_PERSIST_STAGES / BN_PERSIST_ALIGN * BN_PERSIST_ALIGN;
    for (size_t st = bn_persist_round(layer / BN_PERSIST_STAGES); st * BN_PERSIST_STAGES <= room;
         st += BN_PERSIST_ALIGN)
        if (st >= widest && bn_persist_chunk(p, st) <= BN_PERSIST_STAGES) {
            p->stage = st;
            break;
        }
    if (p->stage < widest) p->stage = bn_persist_round(widest); // a stage holds a row of every matrix
    p->work = BN_PERSIST_STAGES * p->stage;
    p->smem = p->work + fixed;
    if (p->smem > smem_limit) return false;
    p->layer_chunks = bn_persist_chunk(p, p->stage);
    p->max_keys = 0;
    int keys = keys_wanted < n_ctx ? keys_wanted : n_ctx;
    keys -= keys % 16;
    if ((int64_t)blocks * qpb * hd < nq) keys = 0;
    for (; keys >= 16; keys -= 16) {
        const size_t att = bn_persist_round(bn_persist_att_bytes(hd, qpb, n_rot, keys));
        const size_t total = p->work + (att > fixed ? att : fixed);
        if (total <= smem_limit) {
            p->max_keys = keys;
            p->smem = total;
            break;
        }
    }
    return true;
}

#endif
