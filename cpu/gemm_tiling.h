// gemm_tiling.h - the prefill tiling plan shared by the SIMD ternary GEMMs.
//
// Each SIMD GEMM decodes 4 rows x one K piece of weights once into an L1 stack
// buffer (row stride BN_KPIECE) and runs every token over it. K is cut into equal
// pieces of at most BN_KPIECE_TARGET elements (2560 -> one piece, 6912 -> 3 x
// 2304), and tokens into blocks of BN_GEMM_TOKEN_BLOCK, so a block's activations
// for one piece (<= 192 KiB) stay in L2. The loops are bn_gemm_token_blocks and
// bn_gemm_groups; a kernel set supplies only its row decoder and group kernel.
#ifndef BN_GEMM_TILING_H
#define BN_GEMM_TILING_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

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

// The activations of piece [k0, k0 + kp) and their row stride. With several
// pieces, each token's piece is a short run at stride K that the hardware
// prefetchers follow badly (ffn_down, K = 6912, ran 9% slower than the K = 2560
// matrices), so the piece of all n tokens is copied into one contiguous block
// (pack: n x kp bytes, row stride kp) first. Without memory for it (pack NULL),
// the GEMM reads the activations in place.
static inline const int8_t *bn_gemm_qpiece(int8_t *pack, const int8_t *q, int64_t K, int n,
                                           int64_t k0, int64_t kp, int64_t *ldq) {
    if (!pack || kp == K) {
        *ldq = K;
        return q + k0;
    }
    for (int t = 0; t < n; t++) memcpy(pack + t * kp, q + t * K + k0, (size_t)kp);
    *ldq = kp;
    return pack;
}

// Asks for the K piece [k0, k0 + kp) of the 4 rows at w (row stride rb bytes):
// called for the next 4-row group while the current one computes, so its weights
// arrive from DRAM in the shadow of far longer compute.
static inline void bn_gemm_prefetch_group(const uint8_t *w, int64_t rb, int64_t k0, int64_t kp) {
    for (int i = 0; i < 4; i++)
        for (int64_t b = 0; b < kp / 4; b += 64) __builtin_prefetch(w + i * rb + k0 / 4 + b, 0, 3);
}

// What a SIMD kernel set supplies to the plan: decode nb blocks of a row into codes
// c = w + 1 in element order, and run n tokens (row stride ldq) over a decoded
// 4-row group of kp elements, adding to the 4 outputs y + t * ldy.
typedef void (*bn_decode_row_fn)(const uint8_t *wr, int64_t nb, uint8_t *buf);
typedef void (*bn_gemm_group_fn)(const uint8_t *c, int64_t kp, const int8_t *q, int64_t ldq,
                                 int n, int32_t *y, int64_t ldy);

// The plan for rows [row0, r4) (whole 4-row groups) and n <= BN_GEMM_TOKEN_BLOCK
// tokens: K pieces outermost; per group, decode its piece into buf (4 rows,
// stride BN_KPIECE), prefetch the next group's, run every token over it. The
// function pointers are constants at each (inlined) call, so they become direct
// calls.
static inline void bn_gemm_groups(const uint8_t *w, int64_t K, int64_t row0, int64_t r4,
                                  const int8_t *q, const int32_t *qsum, int n, int32_t *y,
                                  int64_t ldy, uint8_t *buf, bn_decode_row_fn decode_row,
                                  bn_gemm_group_fn group) {
    const int64_t rb = K / 4, piece = bn_kpiece_len(K);
    bn_gemm_init_rows(y, ldy, row0, r4, qsum, n);
    int8_t *pack = piece < K ? malloc((size_t)n * (size_t)piece) : NULL;
    for (int64_t k0 = 0; k0 < K; k0 += piece) {
        const int64_t kp = K - k0 < piece ? K - k0 : piece;
        int64_t ldq;
        const int8_t *qk = bn_gemm_qpiece(pack, q, K, n, k0, kp, &ldq);
        for (int64_t r = row0; r < r4; r += 4) {
            for (int i = 0; i < 4; i++)
                decode_row(w + (r + i) * rb + k0 / 4, kp / 128, buf + i * BN_KPIECE);
            if (r + 8 <= r4) bn_gemm_prefetch_group(w + (r + 4) * rb, rb, k0, kp);
            group(buf, kp, qk, ldq, n, y + r, ldy);
        }
    }
    free(pack);
}

// A GEMM over n tokens as blocks of at most BN_GEMM_TOKEN_BLOCK (see above).
static inline void bn_gemm_token_blocks(bn_ternary_gemm_fn block, const uint8_t *w, int64_t K,
                                        int64_t row0, int64_t row1, const int8_t *q,
                                        const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    for (int t0 = 0; t0 < n; t0 += BN_GEMM_TOKEN_BLOCK) {
        const int nb = n - t0 < BN_GEMM_TOKEN_BLOCK ? n - t0 : BN_GEMM_TOKEN_BLOCK;
        block(w, K, row0, row1, q + t0 * K, qsum + t0, nb, y + t0 * ldy, ldy);
    }
}

#endif
