// kernels_avx512.c - AVX-512 (F/BW/VL/DQ) + VNNI kernels: ternary GEMV/GEMM on
// I2_S, f16 GEMV.
//
// Ternary design. Each 32-byte block (128 codes) is broadcast to both halves of a
// zmm register. The low half is decoded with the "upper field" lookup and the high
// half with the "lower field" lookup, so one vpshufb on the high nibbles gives the
// codes of elements 0..63 of the block (fields 7:6 then 5:4) and one on the low
// nibbles gives elements 64..127 (fields 3:2 then 1:0). Both line up with a plain
// contiguous 64-byte activation load, so a block costs one broadcast load, three
// ALU ops to split nibbles, two shuffles and two vpdpbusd (unsigned code c = w+1
// times signed q, accumulated straight into int32: no int16 limits). The lookup
// maps the never-written code 0b11 to weight 0 like the scalar oracle.
// result = dot(c, q) - sum(q). The GEMV (n = 1) decodes in the loop, 4 rows per
// pass (several streams in flight, plus a prefetch 2 tiles ahead). Prefill
// (n > 1) decodes each 4-row K piece once into an L1 buffer and runs 4 rows x 4
// tokens (16 zmm accumulators) over it: 4 vpdpbusd per 64-byte activation load.
//
// f16 GEMV: 4 rows, 32 halves per row per step; the K tail uses masked loads.
//
// i8 GEMV (int8 LM head): vpdpbusd wants unsigned x signed, so the activations
// are offset to u = x + 128 (x ^ 0x80) and dot(u, w) - 128 * sum(w) is taken,
// sum(w) coming from a second vpdpbusd against ones. Exact for every int8 pair.
// 4 rows a pass, 64 bytes per step, masked loads for the K tail.
//
// Attention: the AVX2 kernel's arithmetic, bit for bit, on zmm (see there).
#include <immintrin.h>
#include <math.h>

#include "cpu_features.h"
#include "gemm_tiling.h"
#include "ggml_math.h" // BN_EXPF_*
#include "kernels.h"

// code lookup: fields 00,01,10,11 -> c = w+1 = 0,1,2,1; HI reads bits 3:2 of a
// nibble, LO bits 1:0. Lanes 0-1 (bytes 0..31) use HI, lanes 2-3 use LO.
#define C4(x) ((x) == 3 ? 1 : (x))
#define LUT_HI(n) C4((n) >> 2)
#define LUT_LO(n) C4((n)&3)
#define LUT16(F)                                                                         \
    F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), F(8), F(9), F(10), F(11), F(12),    \
        F(13), F(14), F(15)

static const int8_t bn_lut512[64] __attribute__((aligned(64))) = {
    LUT16(LUT_HI), LUT16(LUT_HI), LUT16(LUT_LO), LUT16(LUT_LO)};

BN_ALWAYS_INLINE void ternary_tile512(const uint8_t *w, int64_t rb, int64_t K, const int8_t *q,
                                      const int32_t *qsum, int R, int T, int32_t *y,
                                      int64_t ldy) {
    const __m512i lut = _mm512_load_si512((const void *)bn_lut512);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    // Two accumulators per (row, token) so consecutive vpdpbusd do not wait on
    // each other's latency.
    __m512i acc[4][4], acc2[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[i][t] = acc2[i][t] = _mm512_setzero_si512();

    // GEMV (T == 1, R == 4): the 4 rows are contiguous; prefetch the tile two
    // ahead at the pace this one is consumed (128 bytes per block), because rows
    // of a few hundred bytes are too short for the hardware prefetcher.
    const char *pf = (const char *)((uintptr_t)w + (uintptr_t)(2 * 4 * rb));
    const int64_t nb = K / 128;
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *qb = q + 128 * b;
        if (T == 1 && R == 4) {
            _mm_prefetch(pf + 128 * b, _MM_HINT_T0);
            _mm_prefetch(pf + 128 * b + 64, _MM_HINT_T0);
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            const __m512i v = _mm512_broadcast_i64x4(
                _mm256_loadu_si256((const __m256i *)(w + i * rb + 32 * b)));
            const __m512i c01 =
                _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
            const __m512i c23 = _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m4));
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const int8_t *qt = qb + t * K;
                acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], c01, _mm512_loadu_si512(qt));
                acc2[i][t] = _mm512_dpbusd_epi32(acc2[i][t], c23, _mm512_loadu_si512(qt + 64));
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            y[t * ldy + i] =
                _mm512_reduce_add_epi32(_mm512_add_epi32(acc[i][t], acc2[i][t])) - qsum[t];
}

BN_ALWAYS_INLINE void ternary_rows512(const uint8_t *w, int64_t K, int64_t r, const int8_t *q,
                                      const int32_t *qsum, int n, int32_t *y, int64_t ldy,
                                      int R) {
    const int64_t rb = K / 4;
    const uint8_t *wr = w + r * rb;
    int t = 0;
    for (; t + 4 <= n; t += 4)
        ternary_tile512(wr, rb, K, q + t * K, qsum + t, R, 4, y + t * ldy + r, ldy);
    switch (n - t) {
    case 3: ternary_tile512(wr, rb, K, q + t * K, qsum + t, R, 3, y + t * ldy + r, ldy); break;
    case 2: ternary_tile512(wr, rb, K, q + t * K, qsum + t, R, 2, y + t * ldy + r, ldy); break;
    case 1: ternary_tile512(wr, rb, K, q + t * K, qsum + t, R, 1, y + t * ldy + r, ldy); break;
    default: break;
    }
}

// Prefill: codes of 4 rows x one K piece, decoded once into an L1 buffer in
// element order (buf[k] pairs with q[k]); the tile loop then has no decode at all.

void bn_decode_row_avx512(const uint8_t *wr, int64_t nb, uint8_t *buf) {
    const __m512i lut = _mm512_load_si512((const void *)bn_lut512);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int64_t b = 0; b < nb; b++) {
        const __m512i v =
            _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(wr + 32 * b)));
        _mm512_store_si512((void *)(buf + 128 * b),
                           _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4)));
        _mm512_store_si512((void *)(buf + 128 * b + 64),
                           _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m4)));
    }
}

// 4 row accumulators -> their 4 sums as [r0 r1 r2 r3].
BN_ALWAYS_INLINE __m128i sum4_512(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
#define BN_FOLD(a) _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1))
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(BN_FOLD(a0), BN_FOLD(a1)),
                                        _mm256_hadd_epi32(BN_FOLD(a2), BN_FOLD(a3)));
#undef BN_FOLD
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// acc += dot(c, q) per int32 lane, in place. GCC 12 compiles the intrinsic
// _mm512_dpbusd_epi32 in gemm_tile512's loop with a register copy of every one
// of the 16 accumulators per iteration (the prefill GEMM ran at 201 instead of
// 252 G MAC/s on one Xeon core, 2026-12-05); the asm keeps each in its register.
#define BN_DPBUSD(acc, c, q) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(c), "v"(q))

// 4 decoded rows x T tokens (T <= 4) over kp elements; adds the sums into y.
// The accumulators are named a<token><row>.
BN_ALWAYS_INLINE void gemm_tile512(const uint8_t *c, int64_t kp, const int8_t *q, int64_t ldq,
                                   int T, int32_t *y, int64_t ldy) {
    __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00,
            a12 = a00, a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00,
            a31 = a00, a32 = a00, a33 = a00;
    for (int64_t k = 0; k < kp; k += 64) {
        const __m512i c0 = _mm512_load_si512((const void *)(c + k));
        const __m512i c1 = _mm512_load_si512((const void *)(c + BN_KPIECE + k));
        const __m512i c2 = _mm512_load_si512((const void *)(c + 2 * BN_KPIECE + k));
        const __m512i c3 = _mm512_load_si512((const void *)(c + 3 * BN_KPIECE + k));
#define BN_TOKEN(t)                                                                      \
    if (T > t) {                                                                         \
        const __m512i qt = _mm512_loadu_si512((const void *)(q + t * ldq + k));          \
        BN_DPBUSD(a##t##0, c0, qt);                                                       \
        BN_DPBUSD(a##t##1, c1, qt);                                                       \
        BN_DPBUSD(a##t##2, c2, qt);                                                       \
        BN_DPBUSD(a##t##3, c3, qt);                                                       \
    }
        BN_TOKEN(0) BN_TOKEN(1) BN_TOKEN(2) BN_TOKEN(3)
#undef BN_TOKEN
    }
    const __m128i sums[4] = {sum4_512(a00, a01, a02, a03), sum4_512(a10, a11, a12, a13),
                             sum4_512(a20, a21, a22, a23), sum4_512(a30, a31, a32, a33)};
    for (int t = 0; t < T; t++) {
        __m128i *yt = (__m128i *)(y + t * ldy);
        _mm_storeu_si128(yt, _mm_add_epi32(_mm_loadu_si128(yt), sums[t]));
    }
}

// All n tokens (row stride ldq) over one decoded 4-row group, 4 tokens a tile.
static void gemm_group512(const uint8_t *c, int64_t kp, const int8_t *q, int64_t ldq, int n,
                          int32_t *y, int64_t ldy) {
    int t = 0;
    for (; t + 4 <= n; t += 4) gemm_tile512(c, kp, q + t * ldq, ldq, 4, y + t * ldy, ldy);
    switch (n - t) {
    case 3: gemm_tile512(c, kp, q + t * ldq, ldq, 3, y + t * ldy, ldy); break;
    case 2: gemm_tile512(c, kp, q + t * ldq, ldq, 2, y + t * ldy, ldy); break;
    case 1: gemm_tile512(c, kp, q + t * ldq, ldq, 1, y + t * ldy, ldy); break;
    default: break;
    }
}

// One block of at most BN_GEMM_TOKEN_BLOCK tokens (n == 1: the decode GEMV).
static void ternary_gemm_block512(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                                  const int8_t *q, const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    int64_t r = row0;
    if (n == 1) {
        for (; r + 4 <= row1; r += 4) ternary_rows512(w, K, r, q, qsum, n, y, ldy, 4);
        for (; r < row1; r++) ternary_rows512(w, K, r, q, qsum, n, y, ldy, 1);
        return;
    }
    const int64_t r4 = row0 + (row1 - row0) / 4 * 4;
    uint8_t buf[4 * BN_KPIECE] __attribute__((aligned(64)));
    bn_gemm_groups(w, K, row0, r4, q, qsum, n, y, ldy, buf, bn_decode_row_avx512, gemm_group512);
    for (r = r4; r < row1; r++) ternary_rows512(w, K, r, q, qsum, n, y, ldy, 1);
}

void bn_ternary_gemm_avx512(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                            const int8_t *q, const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    bn_gemm_token_blocks(ternary_gemm_block512, w, K, row0, row1, q, qsum, n, y, ldy);
}

// ---- f16 GEMV ------------------------------------------------------------------

// R rows (at most 4) against T tokens (at most 3: x[t], results to y[t][0..R)),
// two accumulators each, in registers: each converted weight
// vector serves every token and each token vector all R rows. Each (row,
// token) sum is two 16-lane accumulators over alternate 16-element chunks, at
// most two masked steps into the first, their sum and the horizontal add,
// whatever R and T: so f16_gemm gives f16_gemv's (T = 1) results bit for bit.
BN_ALWAYS_INLINE void f16_tile512(const uint16_t *w, int64_t K, const float *const *x, float *const *y,
                                  int R, int T) {
    __m512 a0[4][3], a1[4][3];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) a0[i][t] = a1[i][t] = _mm512_setzero_ps();
    const char *pf = (const char *)((uintptr_t)w + (uintptr_t)(2 * 4 * K * 2)); // 2 tiles ahead: 256 bytes per 32-element step
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        if (R == 4) {
            _mm_prefetch(pf + 8 * k, _MM_HINT_T0);
            _mm_prefetch(pf + 8 * k + 64, _MM_HINT_T0);
            _mm_prefetch(pf + 8 * k + 128, _MM_HINT_T0);
            _mm_prefetch(pf + 8 * k + 192, _MM_HINT_T0);
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i * K + k)));
            const __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i * K + k + 16)));
#pragma GCC unroll 3
            for (int t = 0; t < T; t++) {
                a0[i][t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[t] + k), a0[i][t]);
                a1[i][t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[t] + k + 16), a1[i][t]);
            }
        }
    }
    for (; k < K; k += 16) { // at most two masked steps
        const int64_t left = K - k;
        const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            const __m512 w0 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + i * K + k));
#pragma GCC unroll 3
            for (int t = 0; t < T; t++) a0[i][t] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x[t] + k), a0[i][t]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) y[t][i] = _mm512_reduce_add_ps(_mm512_add_ps(a0[i][t], a1[i][t]));
}

void bn_f16_gemv_avx512(const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                        const float *x, float *y) {
    int64_t r = row0;
    const float *xs[1] = {x};
    for (; r + 4 <= row1; r += 4) {
        float *ys[1] = {y + r};
        f16_tile512(w + r * K, K, xs, ys, 4, 1);
    }
    for (; r < row1; r++) {
        float *ys[1] = {y + r};
        f16_tile512(w + r * K, K, xs, ys, 1, 1);
    }
}

// Tokens in groups of up to 3, as even as they go, and for each group every row
// of the caller's block of the head (in L2), four rows a tile: a converted
// weight vector then serves 3 tokens (the conversion costs as much as two
// multiply-adds; 4 x 3 tiles ran a 3-token group at 5.5 ms a token over half
// the 2B-4T head on one thread here, 2-token groups at 7.4 ms, and 2 x 4 or
// 1 x 8 tiles, their token vectors loaded once per row, at 6.7-6.8 ms); a lone
// token takes f16_gemv's tiles.
void bn_f16_gemm_avx512(const uint16_t *w, int64_t K, int64_t row0, int64_t row1, const float *x,
                        int64_t ldx, const int *idx, int n, float *y, int64_t ldy) {
    const int groups = (n + 2) / 3;
    for (int i0 = 0, g = 0; i0 < n; g++) {
        const int left = n - i0, T = left / (groups - g) + (left % (groups - g) != 0);
        const float *xt[3];
        float *yt[3];
        for (int t = 0; t < T; t++) xt[t] = x + (int64_t)(idx ? idx[i0 + t] : i0 + t) * ldx;
        if (T == 1) bn_f16_gemv_avx512(w, K, row0, row1, xt[0], y + (int64_t)i0 * ldy);
        for (int64_t r = row0; T > 1 && r < row1; r += 4) {
            for (int t = 0; t < T; t++) yt[t] = y + (int64_t)(i0 + t) * ldy + r;
            const int R = row1 - r < 4 ? (int)(row1 - r) : 4;
            if (T == 2) { // a constant R and T each: the accumulators stay in registers
                switch (R) {
                case 4: f16_tile512(w + r * K, K, xt, yt, 4, 2); break;
                case 3: f16_tile512(w + r * K, K, xt, yt, 3, 2); break;
                case 2: f16_tile512(w + r * K, K, xt, yt, 2, 2); break;
                default: f16_tile512(w + r * K, K, xt, yt, 1, 2); break;
                }
            } else {
                switch (R) {
                case 4: f16_tile512(w + r * K, K, xt, yt, 4, 3); break;
                case 3: f16_tile512(w + r * K, K, xt, yt, 3, 3); break;
                case 2: f16_tile512(w + r * K, K, xt, yt, 2, 3); break;
                default: f16_tile512(w + r * K, K, xt, yt, 1, 3); break;
                }
            }
        }
        i0 += T;
    }
}

// ---- int8 GEMV -------------------------------------------------------------------

BN_ALWAYS_INLINE void i8_tile512(const int8_t *w, int64_t K, const int8_t *x, int32_t *y, int R) {
    const __m512i bias = _mm512_set1_epi8((char)0x80), ones = _mm512_set1_epi8(1);
    __m512i dot[4], wsum[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) dot[i] = wsum[i] = _mm512_setzero_si512();
    // R = 4 rows are contiguous: prefetch the tile 2 ahead, 256 bytes per step.
    const char *pf = (const char *)((uintptr_t)w + (uintptr_t)(2 * 4 * K));
    for (int64_t k = 0; k < K; k += 64) {
        if (R == 4)
            for (int j = 0; j < 4; j++) _mm_prefetch(pf + 4 * k + 64 * j, _MM_HINT_T0);
        const int64_t left = K - k;
        const __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
        // masked-off lanes load 0 for w, so they add nothing to either sum
        const __m512i u = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + k), bias);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            const __m512i wv = _mm512_maskz_loadu_epi8(m, w + i * K + k);
            dot[i] = _mm512_dpbusd_epi32(dot[i], u, wv);
            wsum[i] = _mm512_dpbusd_epi32(wsum[i], ones, wv);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
        y[i] = _mm512_reduce_add_epi32(_mm512_sub_epi32(dot[i], _mm512_slli_epi32(wsum[i], 7)));
}

void bn_i8_gemv_avx512(const int8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *x,
                       int32_t *y) {
    int64_t r = row0;
    for (; r + 4 <= row1; r += 4) i8_tile512(w + r * K, K, x, y + r, 4);
    for (; r < row1; r++) i8_tile512(w + r * K, K, x, y + r, 1);
}

// ---- SiLU GLU ----------------------------------------------------------------------

// ggml_v_expf of a bitnet.cpp AVX-512F+DQ build, 16 lanes. Not the AVX2 sequence:
// the polynomial ends in fma(c1, b, 1) (the 1 inside) and 2^n is applied by
// vscalefps, one rounding, instead of k + k*j with a split scale past |n| > 126;
// |n| > 192 gives +inf (n > 0) or 0. Scalar twin: bn_expf_ggml_avx512 (ggml_math.h).
static inline __attribute__((always_inline)) __m512 exp16_ggml(__m512 x) {
    const __m512 shift = _mm512_set1_ps(BN_EXPF_SHIFT);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(BN_EXPF_LOG2E), shift);
    const __m512 n = _mm512_sub_ps(z, shift);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(BN_EXPF_LN2_LO),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(BN_EXPF_LN2_HI), x));
    const __mmask16 huge =
        _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 hi = _mm512_fmadd_ps(_mm512_set1_ps(BN_EXPF_C5), b,
                                      _mm512_set1_ps(BN_EXPF_C4));
    const __m512 lo = _mm512_fmadd_ps(_mm512_set1_ps(BN_EXPF_C3), b,
                                      _mm512_set1_ps(BN_EXPF_C2));
    const __m512 j = _mm512_fmadd_ps(_mm512_fmadd_ps(hi, u, lo), u,
                                     _mm512_fmadd_ps(_mm512_set1_ps(BN_EXPF_C1), b,
                                                     _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (!huge) return res;
    const __mmask16 nonpos = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ);
    const __m512 limit =
        _mm512_mask_blend_ps(nonpos, _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(huge, res, limit);
}

void bn_silu_mul_avx512(float *restrict gate, const float *restrict up, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(gate + i);
        const __m512 ex = exp16_ggml(_mm512_sub_ps(_mm512_setzero_ps(), x));
        const __m512 s = _mm512_div_ps(x, _mm512_add_ps(one, ex));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
    }
    bn_silu_mul_tail(gate, up, i, n);
}

// ---- attention -------------------------------------------------------------------

// The AVX2 kernel's arithmetic (bn_attention_avx2: bitnet.cpp's AVX2 build, the
// build the goldens come from) in zmm registers, bit for bit, in half the FMAs.
// ggml_vec_dot_f16 keeps 4 accumulators of 8 lanes over head_dim; here they sit
// two to a zmm (c0|c1, c2|c3), each lane adding the same products in the same
// order. The weighted sum over V takes 16 dimensions of a row per FMA where the
// AVX2 kernel takes 8: each dimension is its own 32-lane sum either way.
// No FMA contraction beyond the explicit ones, as in kernels_avx2.c.
#if defined(__clang__)
#pragma clang fp contract(off)
#define BN_NO_FP_CONTRACT
#else
#define BN_NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
#endif

#define BN_ATT_GROUP512 4 // heads of a GQA group done together, as the AVX2 kernel

BN_ALWAYS_INLINE __m512 load_h16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

// dot_f16_reduce of kernels_avx2.c on c01 = c0|c1, c23 = c2|c3: c01 + c23 holds
// c0 + c2 and c1 + c3, whose halves added give (c0 + c2) + (c1 + c3); then the
// same 128-bit halves and two hadds.
BN_ALWAYS_INLINE float dot_f16_reduce512(__m512 c01, __m512 c23) {
    const __m512 t = _mm512_add_ps(c01, c23);
    const __m256 x = _mm256_add_ps(_mm512_castps512_ps256(t), _mm512_extractf32x8_ps(t, 1));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

// dot_f16_reduce512 of the 8 (head, key) sums of a full group and two keys at
// once, each with the same adds in the same order: x = (c0 + c2) + (c1 + c3) per
// sum; its 128-bit halves added (t); two hadds in 128-bit lanes pair t's
// elements (t0 + t1, t2 + t3) and then those, giving (t0 + t1) + (t2 + t3) as
// the one-sum hadds do. Then, hd having no tail past 32 lanes, the float times
// scale (the double round trip of the one-sum path is exact for a float).
BN_ALWAYS_INLINE __m256 halves_of(__m512 c01, __m512 c23) {
    const __m512 t = _mm512_add_ps(c01, c23);
    return _mm256_add_ps(_mm512_castps512_ps256(t), _mm512_extractf32x8_ps(t, 1));
}

BN_ALWAYS_INLINE void store_scores8(__m512 a[2][BN_ATT_GROUP512], __m512 b[2][BN_ATT_GROUP512], float scale,
                                    float *s, int64_t s_stride) {
    __m256 x[8]; // (head i, key 0) at 2i, (head i, key 1) at 2i + 1
    for (int i = 0; i < BN_ATT_GROUP512; i++) {
        x[2 * i] = halves_of(a[0][i], a[1][i]);
        x[2 * i + 1] = halves_of(b[0][i], b[1][i]);
    }
    __m256 t[4]; // t[m] = [t of x[m] | t of x[m + 4]]
    for (int m = 0; m < 4; m++)
        t[m] = _mm256_add_ps(_mm256_permute2f128_ps(x[m], x[m + 4], 0x20),
                             _mm256_permute2f128_ps(x[m], x[m + 4], 0x31));
    const __m256 r = _mm256_hadd_ps(_mm256_hadd_ps(t[0], t[1]), _mm256_hadd_ps(t[2], t[3]));
    // r = sums of x[0..3] | x[4..7]: heads 0, 1 (keys 0, 1) then heads 2, 3.
    const __m256 sc = _mm256_mul_ps(r, _mm256_set1_ps(scale));
    const __m128 lo = _mm256_castps256_ps128(sc), hi = _mm256_extractf128_ps(sc, 1);
    _mm_storel_pi((__m64 *)s, lo);
    _mm_storeh_pi((__m64 *)(s + s_stride), lo);
    _mm_storel_pi((__m64 *)(s + 2 * s_stride), hi);
    _mm_storeh_pi((__m64 *)(s + 3 * s_stride), hi);
}

// qk_group of kernels_avx2.c: scores of key rows kj and kj + stride (two) for G
// heads; the hd % 32 tail in double.
BN_NO_FP_CONTRACT BN_ALWAYS_INLINE void qk_group512(const float *q, int G, const uint16_t *kj,
                                                    int64_t stride, int two, int hd, float scale,
                                                    float *s, int64_t s_stride) {
    __m512 a[2][BN_ATT_GROUP512], b[2][BN_ATT_GROUP512];
    const int np = hd & ~31;
#pragma GCC unroll 4
    for (int i = 0; i < BN_ATT_GROUP512; i++) a[0][i] = a[1][i] = b[0][i] = b[1][i] = _mm512_setzero_ps();
    for (int d = 0; d < np; d += 32) {
        const __m512 ka0 = load_h16(kj + d), ka1 = load_h16(kj + d + 16);
        const __m512 kb0 = two ? load_h16(kj + stride + d) : ka0;
        const __m512 kb1 = two ? load_h16(kj + stride + d + 16) : ka1;
#pragma GCC unroll 4
        for (int i = 0; i < BN_ATT_GROUP512; i++) {
            if (i >= G) break;
            const __m512 q0 = _mm512_loadu_ps(q + i * hd + d), q1 = _mm512_loadu_ps(q + i * hd + d + 16);
            a[0][i] = _mm512_fmadd_ps(ka0, q0, a[0][i]);
            a[1][i] = _mm512_fmadd_ps(ka1, q1, a[1][i]);
            if (two) {
                b[0][i] = _mm512_fmadd_ps(kb0, q0, b[0][i]);
                b[1][i] = _mm512_fmadd_ps(kb1, q1, b[1][i]);
            }
        }
    }
    if (G == BN_ATT_GROUP512 && two && np == hd) { // the common case: 8 sums at once, no tail
        store_scores8(a, b, scale, s, s_stride);
        return;
    }
    for (int key = 0; key <= two; key++) {
        __m512(*acc)[BN_ATT_GROUP512] = key ? b : a;
        const uint16_t *kk = kj + key * stride;
        for (int i = 0; i < G; i++) {
            double dot = dot_f16_reduce512(acc[0][i], acc[1][i]);
            for (int d = np; d < hd; d++) dot += (double)(q[i * hd + d] * _cvtsh_ss(kk[d]));
            s[i * s_stride + key] = (float)dot * scale;
        }
    }
}

// pv_group of kernels_avx2.c, 16 dimensions a column: out_i[d0 .. d0 + 16 nv) =
// sum_j p_ij v_j[..] for G heads, key j in lane j % 32, j ascending, the lanes
// reduced in bn_dot_f16_reduce's tree. n_dims (<= 16 nv) cuts the last column
// short with masked loads and stores (the lanes past it stay 0, unused).
#define BN_PV_COLS512 2 // 16-float columns per pass: G * BN_PV_COLS512 accumulators
BN_NO_FP_CONTRACT BN_ALWAYS_INLINE void pv_group512(const float *p, int64_t n_kv, int G, const uint16_t *v,
                                                    int64_t stride, int nv, int n_dims, float *out, int hd) {
    __m512 lane[BN_ATT_GROUP512][BN_PV_COLS512][32];
    const __mmask16 last = (__mmask16)((1u << (n_dims - 16 * (nv - 1))) - 1);
    for (int r = 0; r < 32; r++) {
        __m512 acc[BN_ATT_GROUP512][BN_PV_COLS512];
#pragma GCC unroll 4
        for (int i = 0; i < BN_ATT_GROUP512; i++)
#pragma GCC unroll 2
            for (int c = 0; c < BN_PV_COLS512; c++) acc[i][c] = _mm512_setzero_ps();
        for (int64_t j = r; j < n_kv; j += 32) {
            const uint16_t *vj = v + j * stride;
            __m512 vc[BN_PV_COLS512];
#pragma GCC unroll 2
            for (int c = 0; c < BN_PV_COLS512; c++)
                vc[c] = c + 1 < nv ? load_h16(vj + 16 * c)
                      : c + 1 == nv ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(last, vj + 16 * c))
                                    : _mm512_setzero_ps();
#pragma GCC unroll 4
            for (int i = 0; i < BN_ATT_GROUP512; i++) {
                if (i >= G) break;
                const __m512 pj = _mm512_set1_ps(p[i * n_kv + j]);
#pragma GCC unroll 2
                for (int c = 0; c < BN_PV_COLS512; c++) acc[i][c] = _mm512_fmadd_ps(vc[c], pj, acc[i][c]);
            }
        }
        for (int i = 0; i < G; i++)
            for (int c = 0; c < nv; c++) lane[i][c][r] = acc[i][c];
    }
    for (int i = 0; i < G; i++)
        for (int c = 0; c < nv; c++) {
            const __m512 *L = lane[i][c];
            __m512 w[8];
            for (int l = 0; l < 8; l++)
                w[l] = _mm512_add_ps(_mm512_add_ps(L[l], L[16 + l]), _mm512_add_ps(L[8 + l], L[24 + l]));
            const __m512 t = _mm512_add_ps(
                _mm512_add_ps(_mm512_add_ps(w[0], w[4]), _mm512_add_ps(w[1], w[5])),
                _mm512_add_ps(_mm512_add_ps(w[2], w[6]), _mm512_add_ps(w[3], w[7])));
            _mm512_mask_storeu_ps(out + i * hd + 16 * c, c + 1 < nv ? (__mmask16)0xffff : last, t);
        }
}

// attention_group of kernels_avx2.c: V prefetched as the keys stream past (see
// there), the scores, bn_softmax_avx2 and the f16 rounding of each head, then V.
BN_NO_FP_CONTRACT BN_ALWAYS_INLINE void attention_group512(const float *q, int G, const uint16_t *k,
                                                           const uint16_t *v, int64_t stride, int hd,
                                                           int n_kv, float scale, float *scores, float *out) {
    int j2 = 0;
    for (; j2 + 2 <= n_kv; j2 += 2) {
        for (int r = j2; r < j2 + 2; r++)
            for (int b = 0; b < hd * (int)sizeof *v; b += 64)
                _mm_prefetch((const char *)(v + r * stride) + b, _MM_HINT_T1);
        qk_group512(q, G, k + j2 * stride, stride, 1, hd, scale, scores + j2, n_kv);
    }
    if (j2 < n_kv) qk_group512(q, G, k + j2 * stride, stride, 0, hd, scale, scores + j2, n_kv);
    for (int i = 0; i < G; i++) {
        float *s = scores + (int64_t)i * n_kv;
        bn_softmax_avx2(s, n_kv);
        for (int j = 0; j < n_kv; j += 16) { // probabilities to f16 and back
            const __mmask16 m = n_kv - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n_kv - j)) - 1);
            const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, s + j), _MM_FROUND_TO_NEAREST_INT);
            _mm512_mask_storeu_ps(s + j, m, _mm512_cvtph_ps(h));
        }
    }
    for (int d0 = 0; d0 < hd; d0 += 16 * BN_PV_COLS512) {
        const int n_dims = hd - d0 < 16 * BN_PV_COLS512 ? hd - d0 : 16 * BN_PV_COLS512;
        pv_group512(scores, n_kv, G, v + d0, stride, (n_dims + 15) / 16, n_dims, out + d0, hd);
    }
}

// The AVX2 kernel's contract and results (kernels.h: bn_attention_fn).
BN_NO_FP_CONTRACT void bn_attention_avx512(const float *q, int n_q, const uint16_t *k, const uint16_t *v,
                                           int64_t stride, int head_dim, int n_kv, float scale, float *scores,
                                           float *out) {
    for (int i = 0; i < n_q; i += BN_ATT_GROUP512) {
        const float *qi = q + (int64_t)i * head_dim;
        float *si = scores + (int64_t)i * n_kv, *oi = out + (int64_t)i * head_dim;
        switch (n_q - i < BN_ATT_GROUP512 ? n_q - i : BN_ATT_GROUP512) {
        case 4: attention_group512(qi, 4, k, v, stride, head_dim, n_kv, scale, si, oi); break;
        case 3: attention_group512(qi, 3, k, v, stride, head_dim, n_kv, scale, si, oi); break;
        case 2: attention_group512(qi, 2, k, v, stride, head_dim, n_kv, scale, si, oi); break;
        default: attention_group512(qi, 1, k, v, stride, head_dim, n_kv, scale, si, oi); break;
        }
    }
}

const bn_cpu_kernels bn_kernels_avx512 = {
    .name = "avx512",
    .quantize_i8 = bn_quantize_i8_avx2,
    .half_store = bn_half_store_avx2,
    .half_load = bn_half_load_avx2,
    .half_round = bn_half_round_avx2,
    .ternary_gemm = bn_ternary_gemm_avx512,
    .f16_gemv = bn_f16_gemv_avx512,
    .f16_gemm = bn_f16_gemm_avx512,
    .attention = bn_attention_avx512,
    .i8_gemv = bn_i8_gemv_avx512,
    .silu_mul = bn_silu_mul_avx512,
    .ternary_q8k = bn_ternary_q8k_avx2,
};
