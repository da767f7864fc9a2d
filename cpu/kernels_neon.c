// kernels_neon.c - the AArch64 kernel set: NEON with the Armv8.2-A dot product
// (SDOT), as Graviton 2+, Ampere Altra, NVIDIA Grace and Apple M1+ have.
//
// Its activations are the scalar set's bit for bit, so it sits in the scalar
// and AVX2 sets' exact class (tools/bench_compare.h):
// - the ternary and int8 GEMVs give exact int32 sums (SDOT: 4 int8 products
//   into each 32-bit lane);
// - the quantizer takes the same absmax (a max is exact in any order), one
//   multiply, round to nearest even and a clamp;
// - f16 conversions are exact (FCVT, round to nearest even);
// - the attention computes bn_attention_head's arithmetic (ops.c): its 32 lanes
//   of fused multiply-adds are eight 4-lane registers here, reduced by the same
//   bn_dot_f16_reduce, and softmax and SiLU are the scalar set's.
// Only the f16 LM head sums in its own order (16 lanes), as the SIMD sets do.
#include <arm_neon.h>
#include <math.h>

#include "cpu_features.h"
#include "ggml_math.h"
#include "half.h"
#include "kernels.h"
#include "ops.h"

// ---- activation quantization -----------------------------------------------

// bn_quantize_i8: the absmax by the scalar's own compare, a > m (a NaN, quiet or
// signaling, never wins it; FMAXNM would let a signaling one through).
static float quantize_i8_neon(const float *x, int64_t n, int8_t *q, int32_t *qsum) {
    float32x4_t m = vdupq_n_f32(BN_QUANT_MIN_ABSMAX);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t a = vabsq_f32(vld1q_f32(x + i));
        m = vbslq_f32(vcgtq_f32(a, m), a, m);
    }
    const float s = 127.0f / bn_absmax_from(x, i, n, vmaxvq_f32(m)); // m holds no NaN
    const float32x4_t sv = vdupq_n_f32(s), lo = vdupq_n_f32(-128.0f), hi = vdupq_n_f32(127.0f);
    int32x4_t sum = vdupq_n_s32(0);
    for (i = 0; i + 8 <= n; i += 8) {
        const float32x4_t a = vminq_f32(vmaxq_f32(vrndnq_f32(vmulq_f32(vld1q_f32(x + i), sv)), lo), hi);
        const float32x4_t b = vminq_f32(vmaxq_f32(vrndnq_f32(vmulq_f32(vld1q_f32(x + i + 4), sv)), lo), hi);
        const int16x8_t h = vcombine_s16(vmovn_s32(vcvtq_s32_f32(a)), vmovn_s32(vcvtq_s32_f32(b)));
        vst1_s8(q + i, vmovn_s16(h));
        sum = vpadalq_s16(sum, h);
    }
    const int32_t total = vaddvq_s32(sum) + bn_quantize_i8_from(x, i, n, s, q);
    if (qsum) *qsum = total;
    return s;
}

// ---- halves ----------------------------------------------------------------------

static void half_store_neon(uint16_t *dst, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    if (i < n) bn_store_f16(dst + i, x + i, n - i);
}

static void half_load_neon(float *dst, const uint16_t *h, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + i))));
    if (i < n) bn_load_f16(dst + i, h + i, n - i);
}

static void half_round_neon(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    if (i < n) bn_round_f16(x + i, n - i);
}

BN_ALWAYS_INLINE float32x4_t load_h4(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

// ---- ternary GEMM on I2_S ---------------------------------------------------------

// Byte 32b + g of a row holds elements g, g+32, g+64, g+96 of block b in bits
// 7:6, 5:4, 3:2, 1:0 (kernels_scalar.c); a table lookup turns each 2-bit code
// into its value (00 -1, 01 0, 10 +1, 11 0), so SDOT multiplies the values and
// the activations directly. The eight vectors of a block, in element order:
BN_ALWAYS_INLINE void decode_block(const uint8_t *wb, int8x16_t v[8]) {
    const int8x16_t lut = {-1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8x16_t b0 = vld1q_u8(wb), b1 = vld1q_u8(wb + 16), three = vdupq_n_u8(3);
    v[0] = vqtbl1q_s8(lut, vshrq_n_u8(b0, 6));
    v[1] = vqtbl1q_s8(lut, vshrq_n_u8(b1, 6));
    v[2] = vqtbl1q_s8(lut, vandq_u8(vshrq_n_u8(b0, 4), three));
    v[3] = vqtbl1q_s8(lut, vandq_u8(vshrq_n_u8(b1, 4), three));
    v[4] = vqtbl1q_s8(lut, vandq_u8(vshrq_n_u8(b0, 2), three));
    v[5] = vqtbl1q_s8(lut, vandq_u8(vshrq_n_u8(b1, 2), three));
    v[6] = vqtbl1q_s8(lut, vandq_u8(b0, three));
    v[7] = vqtbl1q_s8(lut, vandq_u8(b1, three));
}

// One block's 128 products into two accumulators (two dependency chains).
BN_ALWAYS_INLINE void dot_block(const int8x16_t v[8], const int8_t *q, int32x4_t *a, int32x4_t *b) {
    for (int i = 0; i < 8; i += 2) {
        *a = vdotq_s32(*a, v[i], vld1q_s8(q + 16 * i));
        *b = vdotq_s32(*b, v[i + 1], vld1q_s8(q + 16 * i + 16));
    }
}

#define BN_NEON_TOKENS 4 // tokens per pass over a row: each block decoded once for them

// y[t*ldy + r] = sum_k w[r][k] * q[t*K + k], exact. Decode steps (n = 1) take
// two rows at a time, so that four dot chains overlap.
static void ternary_gemm_neon(const uint8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *q,
                              const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    (void)qsum; // the values are signed: no offset to take back
    const int64_t rb = K / 4, nb = K / 128;
    int64_t r = row0;
    if (n == 1)
        for (; r + 2 <= row1; r += 2) {
            int32x4_t a0 = vdupq_n_s32(0), b0 = a0, a1 = a0, b1 = a0;
            int8x16_t v[8];
            for (int64_t b = 0; b < nb; b++) {
                decode_block(w + r * rb + 32 * b, v);
                dot_block(v, q + 128 * b, &a0, &b0);
                decode_block(w + (r + 1) * rb + 32 * b, v);
                dot_block(v, q + 128 * b, &a1, &b1);
            }
            y[r] = vaddvq_s32(vaddq_s32(a0, b0));
            y[r + 1] = vaddvq_s32(vaddq_s32(a1, b1));
        }
    for (; r < row1; r++)
        for (int t0 = 0; t0 < n; t0 += BN_NEON_TOKENS) {
            const int nt = n - t0 < BN_NEON_TOKENS ? n - t0 : BN_NEON_TOKENS;
            int32x4_t a[BN_NEON_TOKENS], b[BN_NEON_TOKENS];
            for (int t = 0; t < BN_NEON_TOKENS; t++) a[t] = b[t] = vdupq_n_s32(0);
            int8x16_t v[8];
            for (int64_t blk = 0; blk < nb; blk++) {
                decode_block(w + r * rb + 32 * blk, v);
                for (int t = 0; t < nt; t++) dot_block(v, q + (t0 + t) * K + 128 * blk, &a[t], &b[t]);
            }
            for (int t = 0; t < nt; t++) y[(t0 + t) * ldy + r] = vaddvq_s32(vaddq_s32(a[t], b[t]));
        }
}

// ---- int8 GEMV (int8 LM head) --------------------------------------------------

static void i8_gemv_neon(const int8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *x, int32_t *y) {
    for (int64_t r = row0; r < row1; r++) {
        const int8_t *wr = w + r * K;
        int32x4_t a = vdupq_n_s32(0), b = a;
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            a = vdotq_s32(a, vld1q_s8(wr + k), vld1q_s8(x + k));
            b = vdotq_s32(b, vld1q_s8(wr + k + 16), vld1q_s8(x + k + 16));
        }
        int32_t acc = vaddvq_s32(vaddq_s32(a, b));
        for (; k < K; k++) acc += (int32_t)wr[k] * x[k];
        y[r] = acc;
    }
}

// ---- f16 GEMV (LM head) -----------------------------------------------------------

// Sixteen lanes of fused multiply-adds over k, then their sum; the tail in order.
static void f16_gemv_neon(const uint16_t *w, int64_t K, int64_t row0, int64_t row1, const float *x, float *y) {
    for (int64_t r = row0; r < row1; r++) {
        const uint16_t *wr = w + r * K;
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            a0 = vfmaq_f32(a0, load_h4(wr + k), vld1q_f32(x + k));
            a1 = vfmaq_f32(a1, load_h4(wr + k + 4), vld1q_f32(x + k + 4));
            a2 = vfmaq_f32(a2, load_h4(wr + k + 8), vld1q_f32(x + k + 8));
            a3 = vfmaq_f32(a3, load_h4(wr + k + 12), vld1q_f32(x + k + 12));
        }
        float acc = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
        for (; k < K; k++) acc += bn_f16_to_f32(wr[k]) * x[k];
        y[r] = acc;
    }
}

static void f16_gemm_neon(const uint16_t *w, int64_t K, int64_t row0, int64_t row1, const float *x, int64_t ldx,
                          const int *idx, int n, float *y, int64_t ldy) {
    bn_f16_gemm_by_token(f16_gemv_neon, w, K, row0, row1, x, ldx, idx, n, y, ldy);
}

// ---- attention --------------------------------------------------------------------

// bn_attention_head's q.k: lane l (of 32) is the fused chain of dims l, l + 32,
// ...; here lane l is element l % 4 of register l / 4.
BN_ALWAYS_INLINE float qk_dot(const float *q, const uint16_t *kj, int hd, int np, float scale) {
    float32x4_t acc[8];
    for (int i = 0; i < 8; i++) acc[i] = vdupq_n_f32(0.0f);
    for (int d = 0; d < np; d += 32)
        for (int i = 0; i < 8; i++) acc[i] = vfmaq_f32(acc[i], load_h4(kj + d + 4 * i), vld1q_f32(q + d + 4 * i));
    float lane[32];
    for (int i = 0; i < 8; i++) vst1q_f32(lane + 4 * i, acc[i]);
    double dot = bn_dot_f16_reduce(lane);
    for (int d = np; d < hd; d++) dot += (double)(bn_f16_to_f32(kj[d]) * q[d]);
    return (float)dot * scale;
}

// bn_attention_head's p.V for dims d0 .. d0 + 4 * nv (nv <= 4): lane r of dim d
// is the fused chain over the keys j = r, r + 32, ... of v_j[d] * p_j, here for
// four dims per register; then bn_dot_f16_reduce's adds, four dims at a time.
BN_ALWAYS_INLINE void pv_dims(const float *p, int n_kv, const uint16_t *v, int64_t stride, int nv, float *out) {
    float32x4_t lane[32][4];
    for (int r = 0; r < 32; r++) {
        float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
        for (int j = r; j < n_kv; j += 32)
            for (int c = 0; c < nv; c++) acc[c] = vfmaq_n_f32(acc[c], load_h4(v + j * stride + 4 * c), p[j]);
        for (int c = 0; c < nv; c++) lane[r][c] = acc[c];
    }
    for (int c = 0; c < nv; c++) {
        float32x4_t w[8];
        for (int l = 0; l < 8; l++)
            w[l] = vaddq_f32(vaddq_f32(lane[l][c], lane[16 + l][c]), vaddq_f32(lane[8 + l][c], lane[24 + l][c]));
        const float32x4_t t = vaddq_f32(vaddq_f32(vaddq_f32(w[0], w[4]), vaddq_f32(w[1], w[5])),
                                        vaddq_f32(vaddq_f32(w[2], w[6]), vaddq_f32(w[3], w[7])));
        vst1q_f32(out + 4 * c, t);
    }
}

static void attention_head_neon(const float *q, const uint16_t *k, const uint16_t *v, int64_t stride, int hd,
                                int n_kv, float scale, float *scores, float *out) {
    const int np = hd & ~31;
    for (int j = 0; j < n_kv; j++) scores[j] = qk_dot(q, k + j * stride, hd, np, scale);
    bn_softmax(scores, n_kv);
    half_round_neon(scores, n_kv); // bitnet.cpp multiplies V by the probabilities as f16
    const int d4 = hd & ~3;
    for (int d = 0; d < d4; d += 16) {
        const int nv = (d4 - d < 16 ? d4 - d : 16) / 4;
        pv_dims(scores, n_kv, v + d, stride, nv, out + d);
    }
    for (int d = d4; d < hd; d++) { // a head dim that is not a multiple of 4: bn_attention_head's own loop
        float lane[32] = {0};
        for (int j = 0; j < n_kv; j++) lane[j & 31] = fmaf(bn_f16_to_f32(v[j * stride + d]), scores[j], lane[j & 31]);
        out[d] = bn_dot_f16_reduce(lane);
    }
}

static void attention_neon(const float *q, int n_q, const uint16_t *k, const uint16_t *v, int64_t stride,
                           int head_dim, int n_kv, float scale, float *scores, float *out) {
    for (int i = 0; i < n_q; i++)
        attention_head_neon(q + (int64_t)i * head_dim, k, v, stride, head_dim, n_kv, scale,
                            scores + (int64_t)i * n_kv, out + (int64_t)i * head_dim);
}

double bn_neon_peak_macs(long iters, int32_t *acc) {
    int32x4_t a[12];
    const int8x16_t b = vdupq_n_s8(1);
    for (int i = 0; i < 12; i++) a[i] = vdupq_n_s32(i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = vdotq_s32(a[i], b, b);
    for (int i = 1; i < 12; i++) a[0] = vaddq_s32(a[0], a[i]);
    *acc = vaddvq_s32(a[0]);
    return 16.0 * 12 * (double)iters;
}

const bn_cpu_kernels bn_kernels_neon = {
    .name = "neon",
    .quantize_i8 = quantize_i8_neon,
    .half_store = half_store_neon,
    .half_load = half_load_neon,
    .half_round = half_round_neon,
    .ternary_gemm = ternary_gemm_neon,
    .f16_gemv = f16_gemv_neon,
    .f16_gemm = f16_gemm_neon,
    .attention = attention_neon,
    .i8_gemv = i8_gemv_neon,
    .silu_mul = bn_silu_mul_scalar,       // ggml's exp, as the AVX2 set's (kernels_scalar.c)
    .ternary_q8k = bn_ternary_q8k_scalar, // llama.cpp's per-block float sums, in its order
};
