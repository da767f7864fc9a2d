// ggml_math.h - ggml's float recipes, one lane at a time, as bitnet.cpp's x86
// build computes them: its vector exp (ggml_v_expf of the AVX2+FMA and of the
// AVX-512 build) and the orders in which its horizontal sums add the lanes.
//
// With half.h, the bottom of the CPU's scalar reference (kernels.h lists its
// layers): the float ops (ops.c) and the scalar kernels (kernels_scalar.c) are
// built from these, and the SIMD kernels reproduce them lane for lane. Header
// only, so that the scalar loops inline them; every fused multiply-add is an
// explicit fmaf, so the results do not depend on the compiler's contraction.
#ifndef BN_CPU_GGML_MATH_H
#define BN_CPU_GGML_MATH_H

#include <math.h>
#include <stdint.h>

#include "half.h" // bn_f32_bits, bn_bits_f32

// ---- ggml_v_expf ----------------------------------------------------------------------
// The constants of ggml_v_expf: exp(x) = 2^n * (1 + p(b)), n = round(x / ln 2) by the
// 1.5 * 2^23 shift, b = x - n * ln 2 with ln 2 split in two parts, p a degree-5
// polynomial evaluated as (c5 b + c4) b^2 + (c3 b + c2), times b^2, plus c1 b.
#define BN_EXPF_SHIFT 0x1.8p23f
#define BN_EXPF_LOG2E 0x1.715476p+0f
#define BN_EXPF_LN2_HI 0x1.62e4p-1f
#define BN_EXPF_LN2_LO 0x1.7f7d1cp-20f
#define BN_EXPF_C5 0x1.0e4020p-7f
#define BN_EXPF_C4 0x1.573e2ep-5f
#define BN_EXPF_C3 0x1.555e66p-3f
#define BN_EXPF_C2 0x1.fffdb6p-2f
#define BN_EXPF_C1 0x1.ffffecp-1f

// The range reduction both variants share: z (n in its low mantissa bits), n, b.
static inline float bn_expf_ggml_reduce(float x, float *n, float *b) {
    const float z = fmaf(x, BN_EXPF_LOG2E, BN_EXPF_SHIFT);
    *n = z - BN_EXPF_SHIFT;
    *b = fmaf(-*n, BN_EXPF_LN2_LO, fmaf(-*n, BN_EXPF_LN2_HI, x)); // fnmadd twice
    return z;
}

// ggml_v_expf of the AVX2+FMA build (also NEON and SSE+FMA), one lane.
static inline float bn_expf_ggml(float x) {
    float n, b;
    const float z = bn_expf_ggml_reduce(x, &n, &b);
    const uint32_t e = bn_f32_bits(z) << 23;      // n moved into the exponent field
    const float k = bn_bits_f32(e + 0x3f800000u); // 2^n while it is a normal number
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(BN_EXPF_C5, b, BN_EXPF_C4), u, fmaf(BN_EXPF_C3, b, BN_EXPF_C2)),
                         u, BN_EXPF_C1 * b); // p(b) - 1, without the constant term
    if (!(fabsf(n) > 126.0f)) return fmaf(k, j, k); // also NaN (ordered compare)
    // 2^n out of the normal range: the scale is split into s2 * s1.
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = bn_bits_f32(g + 0x7f000000u);
    const float s2 = bn_bits_f32(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1; // +inf for n > 0, 0 for n < 0
    return fmaf(s2, j, s2) * s1;
}

// ggml_v_expf of the AVX-512F+DQ build, one lane: the 1 is added inside the
// polynomial and the result scaled by vscalefps, j * 2^n rounded once (the product
// is exact in double, so converting it to float is that single rounding, denormals
// and overflow to inf included).
static inline float bn_expf_ggml_avx512(float x) {
    float n, b;
    (void)bn_expf_ggml_reduce(x, &n, &b);
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(BN_EXPF_C5, b, BN_EXPF_C4), u, fmaf(BN_EXPF_C3, b, BN_EXPF_C2)),
                         u, fmaf(BN_EXPF_C1, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    if (isnan(n)) return j; // NaN input: j is NaN too
    return (float)((double)j * ldexp(1.0, (int)n));
}

// ---- horizontal sums ------------------------------------------------------------------
// ((e0 + e4) + (e2 + e6)) + ((e1 + e5) + (e3 + e7)): ggml's 8-lane hsum
// (add the 128-bit halves, then movehl, then movehdup).
static inline float bn_softmax_block_sum(const float e[8]) {
    return ((e[0] + e[4]) + (e[2] + e[6])) + ((e[1] + e[5]) + (e[3] + e[7]));
}

// ggml_vec_dot_f16's reduction (AVX2 build): lane[i] holds the FMA chain of the
// elements i, i + 32, i + 64, ... (4 accumulators of 8 lanes); sum0 + sum2,
// sum1 + sum3, then their sum, then the 128-bit halves added and two hadds.
static inline float bn_dot_f16_reduce(const float lane[32]) {
    float w[8];
    for (int l = 0; l < 8; l++) w[l] = (lane[l] + lane[16 + l]) + (lane[8 + l] + lane[24 + l]);
    return ((w[0] + w[4]) + (w[1] + w[5])) + ((w[2] + w[6]) + (w[3] + w[7]));
}

#endif
