// kernels_scalar.c - plain C reference kernels: the oracle for AVX2, AVX-512 and CUDA.
//
// Written for clarity, not speed: one output element at a time, in a fixed order,
// so results never depend on how rows are split across threads. Ternary sums are
// exact int32; every faster kernel must reproduce them bit for bit.
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "ops.h"

// ---- half precision --------------------------------------------------------

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float bn_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu; // exponent and mantissa
    if (em >= 0x7c00u)               // inf / NaN: keep the payload
        return bits_f32(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
    // Shifting the f16 bits into the f32 position gives the same value scaled by
    // 2^-112 (the bias difference 127-15); one exact multiply fixes the exponent,
    // and handles f16 subnormals for free (they become f32 denormals first).
    return bits_f32(sign | f32_bits(bits_f32(em << 13) * 0x1p112f));
}

// Rounds the bits that fall off (below bit `shift`) to nearest, ties to even.
static inline uint32_t round_shift_rne(uint32_t m, int shift) {
    const uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    return r + (rem > half || (rem == half && (r & 1u)));
}

uint16_t bn_f32_to_f16(float f) {
    const uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) // NaN: keep it quiet and keep the top payload bits
        return sign | 0x7e00u | (uint16_t)((ax >> 13) & 0x1ffu);
    if (ax >= 0x477ff000u) // >= 65520 (halfway past the largest half, 65504) -> inf
        return sign | 0x7c00u;
    if (ax >= 0x38800000u) // normal half (>= 2^-14): rebias 127 -> 15, round 13 bits
        return sign | (uint16_t)round_shift_rne(ax - 0x38000000u, 13);
    if (ax <= 0x33000000u) // <= 2^-25, half of the smallest subnormal: ties to 0
        return sign;
    // Subnormal half: value = m * 2^(e-150), in units of 2^-24 -> shift by 126-e.
    // Rounding up may carry into 0x400, the smallest normal, which is correct.
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    return sign | (uint16_t)round_shift_rne(m, (int)(126 - e));
}

float bn_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16); // bf16 is the top half of an f32
}

// ---- activation quantization -----------------------------------------------

// The 1e-5 floor keeps an all-zero (or tiny) input from dividing by zero; it is
// the same constant bitnet.cpp uses.
#define BN_QUANT_MIN_ABSMAX 1e-5f

float bn_quantize_i8(const float *x, int64_t n, int8_t *q, int32_t *qsum) {
    float amax = BN_QUANT_MIN_ABSMAX;
    for (int64_t i = 0; i < n; i++) { // a plain compare: fmaxf is a libm call here
        const float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    const float s = 127.0f / amax;
    int32_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = rintf(x[i] * s); // round half to even (default rounding mode)
        v = v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v;
        q[i] = (int8_t)v;
        sum += q[i];
    }
    if (qsum) *qsum = sum;
    return s;
}

// ---- ternary GEMM on I2_S ----------------------------------------------------

// 2-bit code -> ternary value (docs/architecture.md: I2_S): 00 -> -1, 01 -> 0, 10 -> +1, 11 -> 0.
static const int8_t bn_i2_value[4] = {-1, 0, 1, 0};

// Byte 32*b + g of a row holds elements g, g+32, g+64, g+96 of block b, in bits
// 7:6, 5:4, 3:2, 1:0.
static int32_t ternary_dot_row(const uint8_t *wrow, int64_t K, const int8_t *q) {
    int32_t acc = 0;
    for (int64_t b = 0; b < K / 128; b++) {
        const uint8_t *wb = wrow + 32 * b;
        const int8_t *qb = q + 128 * b;
        for (int g = 0; g < 32; g++) {
            const uint8_t byte = wb[g];
            for (int j = 0; j < 4; j++)
                acc += bn_i2_value[(byte >> (6 - 2 * j)) & 3] * qb[g + 32 * j];
        }
    }
    return acc;
}

void bn_ternary_gemm_scalar(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                            const int8_t *q, const int32_t *qsum, int n, int32_t *y,
                            int64_t ldy) {
    (void)qsum; // only the offset-binary SIMD kernels need it
    for (int64_t r = row0; r < row1; r++) {
        const uint8_t *wrow = w + r * (K / 4);
        for (int t = 0; t < n; t++) y[t * ldy + r] = ternary_dot_row(wrow, K, q + t * K);
    }
}

// ---- half-precision GEMV (LM head) -----------------------------------------

void bn_f16_gemv_scalar(const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                        const float *x, float *y) {
    for (int64_t r = row0; r < row1; r++) {
        const uint16_t *wr = w + r * K;
        float acc = 0.0f;
        for (int64_t k = 0; k < K; k++) acc += bn_f16_to_f32(wr[k]) * x[k];
        y[r] = acc;
    }
}

// ---- int8 GEMV (int8 LM head) -----------------------------------------------

void bn_i8_gemv_scalar(const int8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *x,
                       int32_t *y) {
    for (int64_t r = row0; r < row1; r++) {
        const int8_t *wr = w + r * K;
        int32_t acc = 0;
        for (int64_t k = 0; k < K; k++) acc += (int32_t)wr[k] * x[k];
        y[r] = acc;
    }
}

// ---- SiLU (ggml's vectorized exp, one lane at a time) -------------------------------

// The constants of ggml_v_expf: exp(x) = 2^n * (1 + p(b)), n = round(x / ln 2) by the
// 1.5 * 2^23 shift, b = x - n * ln 2 with ln 2 split in two parts, p a degree-5
// polynomial evaluated as (c5 b + c4) b^2 + (c3 b + c2), times b^2, plus c1 b.
#define SILU_SHIFT 0x1.8p23f
#define SILU_LOG2E 0x1.715476p+0f
#define SILU_LN2_HI 0x1.62e4p-1f
#define SILU_LN2_LO 0x1.7f7d1cp-20f
#define SILU_C5 0x1.0e4020p-7f
#define SILU_C4 0x1.573e2ep-5f
#define SILU_C3 0x1.555e66p-3f
#define SILU_C2 0x1.fffdb6p-2f
#define SILU_C1 0x1.ffffecp-1f

// The range reduction both variants share: z (n in its low mantissa bits), n, b.
static inline float expf_reduce(float x, float *n, float *b) {
    const float z = fmaf(x, SILU_LOG2E, SILU_SHIFT);
    *n = z - SILU_SHIFT;
    *b = fmaf(-*n, SILU_LN2_LO, fmaf(-*n, SILU_LN2_HI, x)); // fnmadd twice
    return z;
}

// ggml_v_expf of the AVX2+FMA build (also NEON and SSE+FMA), one lane.
static inline float expf_ggml_fma(float x) {
    float n, b;
    const float z = expf_reduce(x, &n, &b);
    const uint32_t e = f32_bits(z) << 23;    // n moved into the exponent field
    const float k = bits_f32(e + 0x3f800000u); // 2^n while it is a normal number
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(SILU_C5, b, SILU_C4), u, fmaf(SILU_C3, b, SILU_C2)), u,
                         SILU_C1 * b); // p(b) - 1, without the constant term
    if (!(fabsf(n) > 126.0f)) return fmaf(k, j, k); // also NaN (ordered compare)
    // 2^n out of the normal range: the scale is split into s2 * s1.
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = bits_f32(g + 0x7f000000u);
    const float s2 = bits_f32(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1; // +inf for n > 0, 0 for n < 0
    return fmaf(s2, j, s2) * s1;
}

float bn_expf_ggml(float x) { return expf_ggml_fma(x); }

// ggml_v_expf of the AVX-512F+DQ build, one lane: the 1 is added inside the
// polynomial and the result scaled by vscalefps, j * 2^n rounded once (the product
// is exact in double, so converting it to float is that single rounding, denormals
// and overflow to inf included).
static inline float expf_ggml_avx512(float x) {
    float n, b;
    (void)expf_reduce(x, &n, &b);
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(SILU_C5, b, SILU_C4), u, fmaf(SILU_C3, b, SILU_C2)), u,
                         fmaf(SILU_C1, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    if (isnan(n)) return j; // NaN input: j is NaN too
    return (float)((double)j * ldexp(1.0, (int)n));
}

// gate / (1 + e) * up with e from exp_fn(0 - gate) for the first n - n % W
// elements (ggml's vector blocks), libm's expf(-gate) for the rest (its scalar
// tail, ggml_silu_f32), then the separate multiply by up (ggml_vec_mul_f32).
#define SILU_MUL_BODY(W, exp_fn)                                                          \
    do {                                                                                \
        const int64_t nv = n - n % (W);                                                 \
        for (int64_t i = 0; i < nv; i++) {                                              \
            const float g = gate[i];                                                    \
            const float s = g / (1.0f + exp_fn(0.0f - g));                              \
            gate[i] = s * up[i];                                                        \
        }                                                                               \
        bn_silu_mul_tail(gate, up, nv, n);                                              \
    } while (0)

void bn_silu_mul_tail(float *restrict gate, const float *restrict up, int64_t i, int64_t n) {
    for (; i < n; i++) {
        const float s = gate[i] / (1.0f + expf(-gate[i]));
        gate[i] = s * up[i];
    }
}

void bn_silu_mul_scalar(float *restrict gate, const float *restrict up, int64_t n) {
    SILU_MUL_BODY(8, expf_ggml_fma);
}

void bn_silu_mul_scalar_avx512(float *restrict gate, const float *restrict up, int64_t n) {
    SILU_MUL_BODY(16, expf_ggml_avx512);
}

// ---- attention -------------------------------------------------------------------

void bn_attention_scalar(const float *q, int n_q, const uint16_t *k, const uint16_t *v,
                         int64_t stride, int head_dim, int n_kv, float scale, float *scores,
                         float *out) {
    for (int i = 0; i < n_q; i++)
        bn_attention_head(q + (int64_t)i * head_dim, k, v, stride, head_dim, n_kv, scale,
                          scores + (int64_t)i * n_kv, out + (int64_t)i * head_dim);
}

const bn_cpu_kernels bn_kernels_scalar = {
    .name = "scalar",
    .quantize_i8 = bn_quantize_i8,
    .half_store = bn_store_f16,
    .half_load = bn_load_f16,
    .half_round = bn_round_f16,
    .ternary_gemm = bn_ternary_gemm_scalar,
    .f16_gemv = bn_f16_gemv_scalar,
    .attention = bn_attention_scalar,
    .i8_gemv = bn_i8_gemv_scalar,
    .silu_mul = bn_silu_mul_scalar,
};
