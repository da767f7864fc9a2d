// kernels_scalar.c - plain C reference kernels: the oracle for AVX2, AVX-512 and CUDA.
//
// The top of the CPU's scalar reference (kernels.h lists its layers): the
// scalar kernel table, built from the float ops (ops.c), the half conversions
// (half.c) and ggml's exp (ggml_math.h); nothing below calls back into it.
// Written for clarity, not speed: one output element at a time, in a fixed order,
// so results never depend on how rows are split across threads. Ternary sums are
// exact int32; every faster kernel must reproduce them bit for bit.
#include <math.h>

#include "ggml_math.h"
#include "half.h"
#include "kernels.h"
#include "ops.h"

// ---- activation quantization -----------------------------------------------

float bn_quantize_i8(const float *x, int64_t n, int8_t *q, int32_t *qsum) {
    const float s = 127.0f / bn_absmax_from(x, 0, n, BN_QUANT_MIN_ABSMAX);
    const int32_t sum = bn_quantize_i8_from(x, 0, n, s, q);
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

void bn_f16_gemm_by_token(bn_half_gemv_fn gemv, const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                          const float *x, int64_t ldx, const int *idx, int n, float *y, int64_t ldy) {
    for (int i = 0; i < n; i++) gemv(w, K, row0, row1, x + (int64_t)(idx ? idx[i] : i) * ldx, y + i * ldy);
}

static void f16_gemm_scalar(const uint16_t *w, int64_t K, int64_t row0, int64_t row1, const float *x, int64_t ldx,
                            const int *idx, int n, float *y, int64_t ldy) {
    bn_f16_gemm_by_token(bn_f16_gemv_scalar, w, K, row0, row1, x, ldx, idx, n, y, ldy);
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
    SILU_MUL_BODY(8, bn_expf_ggml);
}

void bn_silu_mul_scalar_avx512(float *restrict gate, const float *restrict up, int64_t n) {
    SILU_MUL_BODY(16, bn_expf_ggml_avx512);
}

// ---- attention -------------------------------------------------------------------

void bn_attention_scalar(const float *q, int n_q, const uint16_t *k, const uint16_t *v,
                         int64_t stride, int head_dim, int n_kv, float scale, float *scores,
                         float *out) {
    for (int i = 0; i < n_q; i++)
        bn_attention_head(q + (int64_t)i * head_dim, k, v, stride, head_dim, n_kv, scale,
                          scores + (int64_t)i * n_kv, out + (int64_t)i * head_dim);
}

// The scalar twin recomputes each row's group sums itself (ops.c).
void bn_ternary_q8k_scalar(const uint8_t *w, int64_t K, int64_t r0, int64_t r1, const int8_t *xq, const float *xd,
                           const int32_t *xbsum, int n, float scale, float out_scale, bool add, float *y, int64_t M) {
    (void)xbsum;
    bn_ternary_rows_q8k(w, K, r0, r1, xq, xd, n, scale, out_scale, add, y, M);
}

const bn_cpu_kernels bn_kernels_scalar = {
    .name = "scalar",
    .quantize_i8 = bn_quantize_i8,
    .half_store = bn_store_f16,
    .half_load = bn_load_f16,
    .half_round = bn_round_f16,
    .ternary_gemm = bn_ternary_gemm_scalar,
    .f16_gemv = bn_f16_gemv_scalar,
    .f16_gemm = f16_gemm_scalar,
    .attention = bn_attention_scalar,
    .i8_gemv = bn_i8_gemv_scalar,
    .silu_mul = bn_silu_mul_scalar,
    .ternary_q8k = bn_ternary_q8k_scalar,
};
