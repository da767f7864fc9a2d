// attention_smem.h - the decode attention's block shapes and shared-memory
// sizes, as plain C: the launchers (attention_decode.cu) and the persistent
// kernel's plan (persist_plan.h, checked on any machine by
// tests/test_persist_plan.c) size their blocks from the same numbers.
#ifndef BN_CUDA_ATTENTION_SMEM_H
#define BN_CUDA_ATTENTION_SMEM_H

#include <stddef.h>

#define BN_ATTD_QPB 8       // query heads a block serves at most
#define BN_ATTD_THREADS 128 // threads of a split-pair block (the order of its sums)
#define BN_ATTS_THREADS 128 // threads of a one-kernel block (the order of its p.V sums)
#define BN_ATTD_TILE 128    // probabilities a split-pair block stages at a time

// Kernel A of the split pair: the queries and the token's key (qpb + 1 rows of
// hd floats) and the RoPE table (n_rot floats).
static inline size_t bn_attd_smem_a(int hd, int qpb, int n_rot) {
    return 4 * ((size_t)(qpb + 1) * hd + (size_t)n_rot);
}

// Kernel B: a tile of probabilities (qpb x BN_ATTD_TILE) and the p.V partials
// (qpb x hd floats for each of the V rows BN_ATTD_THREADS threads take at once).
static inline size_t bn_attd_smem_b(int hd, int qpb) {
    return 4 * ((size_t)qpb * BN_ATTD_TILE + (size_t)(BN_ATTD_THREADS / (hd / 8)) * qpb * hd);
}

#endif
