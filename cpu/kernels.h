// kernels.h - the CPU compute kernels, as a table chosen once at run time.
//
// Every kernel has a plain scalar version (kernels_scalar.c) that is the oracle
// for the SIMD versions (AVX2, AVX-512 VNNI, AMX, NEON) and for the CUDA kernels. Ternary
// kernels return exact int32 sums, so SIMD must equal scalar bit for bit.
//
// The scalar reference is four files in layers, each calling only those below:
//   half.c            f16 / bf16 <-> float (half.h)
//   ggml_math.h       ggml's exp and the orders in which its sums add lanes
//   ops.c             the float ops of a step: rmsnorm, RoPE, softmax, attention (ops.h)
//   kernels_scalar.c  the scalar kernel table, bn_kernels_scalar (this header)
//
// Row ranges [row0, row1) let the thread pool split work by rows without the
// kernels knowing about threads.
#ifndef BN_CPU_KERNELS_H
#define BN_CPU_KERNELS_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/error.h"

// The SIMD files' small helpers: inlined, so their vectors stay in registers.
#define BN_ALWAYS_INLINE static inline __attribute__((always_inline))

// Per-token int8 quantization of a BitLinear input (docs/architecture.md: The model):
// s = 127 / max(max|x|, 1e-5); q = clamp(rint(x*s), -128, 127).
// Returns s; *qsum = sum(q) (the SIMD kernels need it for dot(w+1,q) - sum(q)).
// The 1e-5 floor keeps an all-zero (or tiny) input from dividing by zero; it is
// the same constant bitnet.cpp uses.
#define BN_QUANT_MIN_ABSMAX 1e-5f
float bn_quantize_i8(const float *x, int64_t n, int8_t *q, int32_t *qsum);

// Its two loops from element i on, element by element: what a SIMD quantizer
// does with the elements past its last whole vector. The absmax of x[i..n) and
// amax (a NaN skipped, as a plain compare skips it)...
static inline float bn_absmax_from(const float *x, int64_t i, int64_t n, float amax) {
    for (; i < n; i++) { // a plain compare: fmaxf is a libm call here
        const float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    return amax;
}

// ...and q[i..n) = clamp(rint(x*s), -128, 127) (round half to even, the default
// rounding mode), returning their sum.
static inline int32_t bn_quantize_i8_from(const float *x, int64_t i, int64_t n, float s, int8_t *q) {
    int32_t sum = 0;
    for (; i < n; i++) {
        float v = rintf(x[i] * s);
        v = v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v;
        q[i] = (int8_t)v;
        sum += q[i];
    }
    return sum;
}

// Ternary GEMM on I2_S weights w (rows of K elements, K % 128 == 0, K/4 bytes a
// row): for tokens t < n and rows r in [row0, row1):
//     y[t*ldy + r] = sum_k code(w[r][k]) * q[t*K + k]     with code in {-1,0,1}
// qsum[t] = sum_k q[t*K + k]. n == 1 is the decode GEMV.
typedef void (*bn_ternary_gemm_fn)(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                                   const int8_t *q, const int32_t *qsum, int n, int32_t *y,
                                   int64_t ldy);

// Float GEMV over a half-precision matrix (the LM head): for rows r in
// [row0, row1): y[r] = sum_k w[r*K + k] * x[k], w in IEEE f16 (or bf16 below).
typedef void (*bn_half_gemv_fn)(const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                                const float *x, float *y);

// The same for n tokens (the LM head of a decode step of many sequences): token
// i's input at x + (idx ? idx[i] : i) * ldx, its results at y + i * ldy (y[i*ldy
// + r], r in [row0, row1)). Each token's results equal the set's f16_gemv's bit
// for bit, so a token's logits do not depend on its batch; a set may convert
// each weight once for several tokens.
typedef void (*bn_half_gemm_fn)(const uint16_t *w, int64_t K, int64_t row0, int64_t row1, const float *x,
                                int64_t ldx, const int *idx, int n, float *y, int64_t ldy);

// n_q query heads that share one KV head (GQA), attending to f16 cache rows
// 0..n_kv-1: for each head i (q + i*head_dim, out + i*head_dim, scores + i*n_kv)
// the contract of bn_attention_head in ops.h: scores = q.k_j * scale, softmax,
// probabilities rounded to f16 (left in scores), out = sum_j p_j * v_j. Taking
// the group at once lets a kernel load and convert each K/V row once, not n_q
// times. The scalar twin is bn_attention_scalar (bn_attention_head per head).
typedef void (*bn_attention_fn)(const float *q, int n_q, const uint16_t *k, const uint16_t *v,
                                int64_t stride, int head_dim, int n_kv, float scale,
                                float *scores, float *out);

// int8 GEMV (the opt-in int8 LM head): for rows r in [row0, row1):
//     y[r] = sum_k w[r*K + k] * x[k]    exact int32, any K >= 1.
typedef void (*bn_i8_gemv_fn)(const int8_t *w, int64_t K, int64_t row0, int64_t row1,
                              const int8_t *x, int32_t *y);

// bn_quantize_i8 as a table entry: the same s, q and qsum bit for bit (absmax,
// one multiply, round-to-nearest-even and a clamp are exact in any lane order).
typedef float (*bn_quantize_fn)(const float *x, int64_t n, int8_t *q, int32_t *qsum);

// Rows of halves: store floats as f16 (round to nearest even), load f16 as
// floats, round floats to f16 precision in place. Exact conversions, so SIMD
// (F16C) equals the scalar twins in half.c (bn_store_f16, bn_load_f16,
// bn_round_f16) bit for bit on everything but signaling-NaN payloads.
typedef void (*bn_half_store_fn)(uint16_t *dst, const float *x, int64_t n);
typedef void (*bn_half_load_fn)(float *dst, const uint16_t *h, int64_t n);
typedef void (*bn_half_round_fn)(float *x, int64_t n);

// The SiLU GLU of the bitnet and llama families: for i < n,
//     gate[i] = silu(gate[i]) * up[i],    silu(x) = x / (1 + exp(-x)),
// computed exactly as bitnet.cpp's ggml computes it on x86: ggml_vec_silu_f32 on
// the gate row, then ggml_vec_mul_f32 (one float multiply by up). ggml's SiLU takes
// the first n - n % W elements in W-lane blocks through ggml_v_silu,
//     x / (1 + ggml_v_expf(0 - x)),
// where ggml_v_expf is ARM's polynomial exp (a round-to-integer range reduction,
// a degree-5 polynomial in fused multiply-adds, then a scale by 2^n; ~1.5 ulp),
// and the last n % W elements through x / (1 + expf(-x)) with libm's expf.
// The vector routine differs by build, so there are two scalar twins, each written
// with fmaf for every fused multiply-add and bit-identical to its SIMD kernel:
//   bn_silu_mul_scalar        the AVX2+FMA sequence, W = 8 (the build the goldens
//                             in tests/golden/ come from). ggml's NEON and SSE+FMA
//                             versions perform the same per-lane operations with
//                             W = 4, so they agree whenever n % 8 == 0.
//   bn_silu_mul_scalar_avx512 the AVX-512F+DQ sequence, W = 16: its polynomial
//                             adds the 1 inside (fma(c1, b, 1)) and scales with
//                             vscalefps (one rounding, exact denormals) where the
//                             AVX2 one computes k + k*j and splits the scale in two
//                             for |n| > 126, so the results differ by an ulp at times.
// Callers that split a row across threads must start every piece at a multiple of
// 16 elements, so that the blocks and the tail fall where ggml's do on the row.
// Special values as ggml: silu(±0) = ±0, silu(+inf) = +inf, silu(-inf) = NaN
// (-inf / inf), NaN stays NaN; denormal gates give gate / 2 (no flush to zero).
typedef void (*bn_silu_mul_fn)(float *restrict gate, const float *restrict up, int64_t n);

// The bitlinear of TQ1_0/TQ2_0 weights (repacked to I2_S) as llama.cpp computes
// it: bn_ternary_rows_q8k (ops.h), its contract and its float sums, bit for bit.
// xbsum: per token and 256-block the eight sums of 32 codes (bn_q8k_group_sums),
// which every row subtracts; the scalar twin recomputes them.
typedef void (*bn_ternary_q8k_fn)(const uint8_t *w, int64_t K, int64_t r0, int64_t r1, const int8_t *xq,
                                  const float *xd, const int32_t *xbsum, int n, float scale, float out_scale,
                                  bool add, float *y, int64_t M);

// A prefill GEMM whose activations a set wants in its own layout (AMX's tiles):
// pack_token puts token t's K int8 activations q there (a buffer of
// bn_packed_bytes(K, n) bytes for n tokens, each token's part written by its own
// call, so the threads that quantize the tokens pack them), and ternary_gemm_packed
// is ternary_gemm with them (q and qsum too, for the paths that fall back).
// The forward pass packs only a batch of at least BN_PACKED_MIN_TOKENS tokens.
#define BN_PACKED_MIN_TOKENS 16
static inline int64_t bn_packed_bytes(int64_t K, int n) { return (int64_t)(n + 15) / 16 * 16 * K; }
typedef void (*bn_pack_token_fn)(const int8_t *q, int64_t K, int t, int8_t *packed);
typedef void (*bn_ternary_gemm_packed_fn)(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                                          const int8_t *q, const int8_t *packed, const int32_t *qsum, int n,
                                          int32_t *y, int64_t ldy);

typedef struct bn_cpu_kernels {
    const char *name; // "scalar", "avx2", "avx512", "amx", "neon"
    bn_quantize_fn quantize_i8;
    bn_half_store_fn half_store;
    bn_half_load_fn half_load;
    bn_half_round_fn half_round;
    bn_ternary_gemm_fn ternary_gemm;
    bn_half_gemv_fn f16_gemv;
    bn_half_gemm_fn f16_gemm;
    bn_attention_fn attention;
    bn_i8_gemv_fn i8_gemv;
    bn_silu_mul_fn silu_mul;
    bn_ternary_q8k_fn ternary_q8k;
    bn_pack_token_fn pack_token;                   // NULL: ternary_gemm reads q as it is
    bn_ternary_gemm_packed_fn ternary_gemm_packed; // with pack_token
} bn_cpu_kernels;

extern const bn_cpu_kernels bn_kernels_scalar;

// name NULL or "auto": the best set this CPU supports (CPUID). Otherwise the
// named set, or -1 with a reason if unknown or unsupported here. The environment
// variable BITNET_CPU_KERNELS overrides "auto".
int bn_cpu_kernels_select(const char *name, const bn_cpu_kernels **out, bn_error *err);

// Scalar references (also the fallback).
void bn_ternary_gemm_scalar(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                            const int8_t *q, const int32_t *qsum, int n, int32_t *y,
                            int64_t ldy);
void bn_f16_gemv_scalar(const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                        const float *x, float *y);
// f16_gemm as one f16_gemv call per token (the scalar and AVX-512 sets).
void bn_f16_gemm_by_token(bn_half_gemv_fn gemv, const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                          const float *x, int64_t ldx, const int *idx, int n, float *y, int64_t ldy);
void bn_i8_gemv_scalar(const int8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *x,
                       int32_t *y);
void bn_half_store_avx2(uint16_t *dst, const float *x, int64_t n);
void bn_half_load_avx2(float *dst, const uint16_t *h, int64_t n);
void bn_half_round_avx2(float *x, int64_t n);
float bn_quantize_i8_avx2(const float *x, int64_t n, int8_t *q, int32_t *qsum);
void bn_i8_gemv_avx2(const int8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *x,
                     int32_t *y);
void bn_silu_mul_scalar(float *restrict gate, const float *restrict up, int64_t n);
void bn_ternary_q8k_scalar(const uint8_t *w, int64_t K, int64_t r0, int64_t r1, const int8_t *xq, const float *xd,
                           const int32_t *xbsum, int n, float scale, float out_scale, bool add, float *y, int64_t M);
// The AVX2 one also serves the AVX-512 table (its lanes are llama.cpp's AVX2 eight).
void bn_ternary_q8k_avx2(const uint8_t *w, int64_t K, int64_t r0, int64_t r1, const int8_t *xq, const float *xd,
                         const int32_t *xbsum, int n, float scale, float out_scale, bool add, float *y, int64_t M);
void bn_silu_mul_scalar_avx512(float *restrict gate, const float *restrict up, int64_t n);
void bn_silu_mul_avx2(float *restrict gate, const float *restrict up, int64_t n);
// Elements [i, n) the way ggml's scalar tail (ggml_silu_f32, libm expf) does them:
// every silu_mul kernel ends with it.
void bn_silu_mul_tail(float *restrict gate, const float *restrict up, int64_t i, int64_t n);
void bn_silu_mul_avx512(float *restrict gate, const float *restrict up, int64_t n);
void bn_attention_scalar(const float *q, int n_q, const uint16_t *k, const uint16_t *v,
                         int64_t stride, int head_dim, int n_kv, float scale, float *scores,
                         float *out);

// bitnet.cpp's AVX2 attention arithmetic (the goldens' build); the AVX-512 kernel
// computes the same, bit for bit, two of its 8-lane accumulators to a zmm.
void bn_attention_avx2(const float *q, int n_q, const uint16_t *k, const uint16_t *v,
                       int64_t stride, int head_dim, int n_kv, float scale, float *scores,
                       float *out);
void bn_attention_avx512(const float *q, int n_q, const uint16_t *k, const uint16_t *v,
                         int64_t stride, int head_dim, int n_kv, float scale, float *scores,
                         float *out);

#endif
