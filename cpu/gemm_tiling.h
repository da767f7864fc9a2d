// gemm_tiling.h - the prefill tiling plan shared by the SIMD ternary GEMMs.
//
// Each SIMD GEMM decodes 4 rows x one K piece of weights once into an L1 stack
// buffer (row stride BN_KPIECE) and runs every token over it. K is cut into equal
// pieces of at most BN_KPIECE_TARGET elements (2560 -> one piece, 6912 -> 3 x
// 2304), so n = 64 tokens of one piece (<= 192 KiB) stay in L2.
#ifndef BN_GEMM_TILING_H
#define BN_GEMM_TILING_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BN_KPIECE 4096        // decode buffer row stride: 4 x 4 KiB on the stack
#define BN_KPIECE_TARGET 3072 // equal pieces of at most this many elements
// Tokens per GEMM pass: a piece of this many tokens' activations (64 x 3072 =
// 192 KiB) stays in L2 while every row group streams it. A longer prompt runs in
// blocks of this many; without blocks, a 512-token prefill streamed 1.5 MB from
// L3 per row group and ran at 60% of the 64-token speed.
#define BN_GEMM_TOKEN_BLOCK 64

// Length of each K piece (a multiple of 128, <= BN_KPIECE; the last may be shorter).
static inline int64_t bn_kpiece_len(int64_t K) {
    const int64_t npieces = (K + BN_KPIECE_TARGET - 1) / BN_KPIECE_TARGET;
    return (K / 128 + npieces - 1) / npieces * 128;
}

// The tiles accumulate dot(c, q) onto y, so y starts at -sum(q) (c = w + 1).
static inline void bn_gemm_init_rows(int32_t *y, int64_t ldy, int64_t row0, int64_t row1,
                                     const int32_t *qsum, int n) {
    for (int t = 0; t < n; t++)
        for (int64_t r = row0; r < row1; r++) y[t * ldy + r] = -qsum[t];
}

// Activations for the K pieces of a GEMM. With several pieces, each token's piece
// is a short run at stride K that the hardware prefetchers follow badly (ffn_down,
// K = 6912, ran 9% slower than the K = 2560 matrices), so the piece of all n
// tokens is copied into one contiguous block (row stride kp) first. The copy is
// per GEMM call in prefill only (n > 1), never per decode token; without memory
// for it the GEMM reads the activations in place.
typedef struct {
    int8_t *buf; // n x piece bytes, or NULL: read in place
} bn_gemm_qpieces;

static inline bn_gemm_qpieces bn_gemm_qpieces_alloc(int64_t K, int64_t piece, int n) {
    bn_gemm_qpieces p = {NULL};
    if (piece < K) p.buf = malloc((size_t)n * (size_t)piece);
    return p;
}

// The activations of piece [k0, k0 + kp) and their row stride.
static inline const int8_t *bn_gemm_qpiece(const bn_gemm_qpieces *p, const int8_t *q, int64_t K,
                                           int n, int64_t k0, int64_t kp, int64_t *ldq) {
    if (!p->buf) {
        *ldq = K;
        return q + k0;
    }
    for (int t = 0; t < n; t++) memcpy(p->buf + t * kp, q + t * K + k0, (size_t)kp);
    *ldq = kp;
    return p->buf;
}

// Asks for the K piece [k0, k0 + kp) of the 4 rows at w (row stride rb bytes):
// called for the next 4-row group while the current one computes, so its weights
// arrive from DRAM in the shadow of far longer compute.
static inline void bn_gemm_prefetch_group(const uint8_t *w, int64_t rb, int64_t k0, int64_t kp) {
    for (int i = 0; i < 4; i++)
        for (int64_t b = 0; b < kp / 4; b += 64) __builtin_prefetch(w + i * rb + k0 / 4 + b, 0, 3);
}

#endif
