// kernels_avx2.c - AVX2 + FMA + F16C kernels: ternary GEMV/GEMM on I2_S, f16 GEMV.
//
// Ternary design (DESIGN 2). A 32-byte block holds 128 codes; bits 7:6 of byte g
// are element g, bits 5:4 element g+32, and so on, so each of the four 2-bit
// fields of the block, taken across the 32 bytes, lines up with 32 contiguous
// activations. Per block:
//   - split the bytes into low and high nibbles (and, shift+and);
//   - map each nibble's two fields to the offset-binary code c = w+1 with vpshufb
//     lookups (4 shuffles). The lookup sends the never-written code 0b11 to 1
//     (weight 0) exactly like the scalar oracle, at no extra cost compared with
//     shift+mask extraction;
//   - vpmaddubsw(c unsigned, q signed) -> int16 pairs. c <= 2 and |q| <= 128, so
//     a pair is within [-512, 508]: no saturation. Sums of 4 groups x 8 blocks
//     stay within int16 ([-16384, 16256]); then vpmaddwd with ones widens to int32.
//   - result = dot(c, q) - sum(q).
// Register tiles of R rows x T tokens share each decoded code vector across T
// tokens and each activation load across R rows: the GEMV (n = 1) streams 4 rows
// at once to keep several loads in flight; prefill uses 2 rows x 4 tokens, which
// decodes every weight byte once per 4 tokens (see bench/bench_kernels.c).
//
// f16 GEMV: 4 rows at a time, 16 halves per row per step (two vcvtph2ps + FMA
// chains to hide FMA latency); tails (K % 16) in scalar F16C.
#include <immintrin.h>

#include "kernels.h"

#define BN_ALWAYS_INLINE static inline __attribute__((always_inline))

// Blocks summed in int16 before widening to int32 (bound above: 8 * 2048 < 32767).
#define BN_I16_BLOCKS 8

// code lookup: fields 00,01,10,11 -> c = w+1 = 0,1,2,1. `hi` reads the upper
// field of a nibble (bits 3:2), `lo` the lower (bits 1:0).
#define C4(x) ((x) == 3 ? 1 : (x))
#define LUT_HI(n) C4((n) >> 2)
#define LUT_LO(n) C4((n)&3)
#define LUT16(F)                                                                         \
    F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), F(8), F(9), F(10), F(11), F(12),    \
        F(13), F(14), F(15)

static const int8_t bn_lut_hi[32] __attribute__((aligned(32))) = {LUT16(LUT_HI),
                                                                   LUT16(LUT_HI)};
static const int8_t bn_lut_lo[32] __attribute__((aligned(32))) = {LUT16(LUT_LO),
                                                                   LUT16(LUT_LO)};

BN_ALWAYS_INLINE int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

// One R x T tile over a whole row length: rows w + i*rb (i < R), tokens q + t*K.
// R and T are compile-time constants at every call site, so the arrays below
// live in registers.
BN_ALWAYS_INLINE void ternary_tile(const uint8_t *w, int64_t rb, int64_t K, const int8_t *q,
                                   const int32_t *qsum, int R, int T, int32_t *y,
                                   int64_t ldy) {
    const __m256i lut_hi = _mm256_load_si256((const __m256i *)bn_lut_hi);
    const __m256i lut_lo = _mm256_load_si256((const __m256i *)bn_lut_lo);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc32[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc32[i][t] = _mm256_setzero_si256();

    const int64_t nb = K / 128;
    for (int64_t b0 = 0; b0 < nb; b0 += BN_I16_BLOCKS) {
        const int64_t b1 = b0 + BN_I16_BLOCKS < nb ? b0 + BN_I16_BLOCKS : nb;
        __m256i acc[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[i][t] = _mm256_setzero_si256();
        for (int64_t b = b0; b < b1; b++) {
            const int8_t *qb = q + 128 * b;
            __m256i lo[4], hi[4];
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(w + i * rb + 32 * b));
                lo[i] = _mm256_and_si256(v, m4);
                hi[i] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            }
            // groups j = 0..3 are elements 32j..32j+31 of the block: fields 7:6,
            // 5:4 (high nibble) then 3:2, 1:0 (low nibble).
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
#pragma GCC unroll 4
                for (int i = 0; i < R; i++) {
                    const __m256i nib = j < 2 ? hi[i] : lo[i];
                    const __m256i c = _mm256_shuffle_epi8((j & 1) ? lut_lo : lut_hi, nib);
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++) {
                        const __m256i qv =
                            _mm256_loadu_si256((const __m256i *)(qb + t * K + 32 * j));
                        acc[i][t] = _mm256_add_epi16(acc[i][t], _mm256_maddubs_epi16(c, qv));
                    }
                }
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
#pragma GCC unroll 4
            for (int t = 0; t < T; t++)
                acc32[i][t] = _mm256_add_epi32(acc32[i][t], _mm256_madd_epi16(acc[i][t], ones));
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + i] = hsum_i32(acc32[i][t]) - qsum[t];
}

// Tiles of R rows over all n tokens, T tokens at a time (tail tokens one by one).
BN_ALWAYS_INLINE void ternary_rows(const uint8_t *w, int64_t K, int64_t r, const int8_t *q,
                                   const int32_t *qsum, int n, int32_t *y, int64_t ldy, int R) {
    const int64_t rb = K / 4;
    const uint8_t *wr = w + r * rb;
    int t = 0;
    for (; t + 4 <= n; t += 4)
        ternary_tile(wr, rb, K, q + t * K, qsum + t, R, 4, y + t * ldy + r, ldy);
    switch (n - t) {
    case 3: ternary_tile(wr, rb, K, q + t * K, qsum + t, R, 3, y + t * ldy + r, ldy); break;
    case 2: ternary_tile(wr, rb, K, q + t * K, qsum + t, R, 2, y + t * ldy + r, ldy); break;
    case 1: ternary_tile(wr, rb, K, q + t * K, qsum + t, R, 1, y + t * ldy + r, ldy); break;
    default: break;
    }
}

void bn_ternary_gemm_avx2(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                          const int8_t *q, const int32_t *qsum, int n, int32_t *y,
                          int64_t ldy) {
    int64_t r = row0;
    if (n == 1) {
        // Decode GEMV: memory-bound, 4 independent row streams per pass.
        for (; r + 4 <= row1; r += 4) ternary_tile(w + r * (K / 4), K / 4, K, q, qsum, 4, 1, y + r, ldy);
        for (; r < row1; r++) ternary_tile(w + r * (K / 4), K / 4, K, q, qsum, 1, 1, y + r, ldy);
        return;
    }
    for (; r + 2 <= row1; r += 2) ternary_rows(w, K, r, q, qsum, n, y, ldy, 2);
    for (; r < row1; r++) ternary_rows(w, K, r, q, qsum, n, y, ldy, 1);
}

// ---- f16 GEMV ------------------------------------------------------------------

BN_ALWAYS_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

BN_ALWAYS_INLINE __m256 load_h8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

BN_ALWAYS_INLINE void f16_tile(const uint16_t *w, int64_t K, const float *x, float *y, int R) {
    __m256 a0[4], a1[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) a0[i] = a1[i] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            a0[i] = _mm256_fmadd_ps(load_h8(w + i * K + k), x0, a0[i]);
            a1[i] = _mm256_fmadd_ps(load_h8(w + i * K + k + 8), x1, a1[i]);
        }
    }
    if (k + 8 <= K) {
        const __m256 x0 = _mm256_loadu_ps(x + k);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) a0[i] = _mm256_fmadd_ps(load_h8(w + i * K + k), x0, a0[i]);
        k += 8;
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        float s = hsum_ps(_mm256_add_ps(a0[i], a1[i]));
        for (int64_t kk = k; kk < K; kk++) s += _cvtsh_ss(w[i * K + kk]) * x[kk];
        y[i] = s;
    }
}

void bn_f16_gemv_avx2(const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                      const float *x, float *y) {
    int64_t r = row0;
    for (; r + 4 <= row1; r += 4) f16_tile(w + r * K, K, x, y + r, 4);
    for (; r < row1; r++) f16_tile(w + r * K, K, x, y + r, 1);
}

const bn_cpu_kernels bn_kernels_avx2 = {
    .name = "avx2",
    .ternary_gemm = bn_ternary_gemm_avx2,
    .f16_gemv = bn_f16_gemv_avx2,
};
