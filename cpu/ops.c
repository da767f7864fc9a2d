// ops.c - scalar float ops of the forward pass (see ops.h for the contracts),
// built on half.h and ggml_math.h only.
#include "ops.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "../core/gguf.h"
#include "ggml_math.h"
#include "half.h"

void bn_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    // ggml_compute_forward_rms_norm_f32: sum += (ggml_float)(x[i] * x[i]), i.e. each
    // square rounded to float, then added in double. (A double product, exact, gives
    // a slightly different sum and flips the float mean's last bit now and then.)
    // One running sum is a chain of n dependent adds (4 cycles each: ~20 us a token
    // per layer, 3% of a prefill); eight partial sums in a fixed order let them
    // overlap. Adding the same float squares in double in another order gives the
    // same double unless a partial sum needs more than 53 bits, and then differs by
    // an ulp of a double, 2^-29 of the float mean's ulp.
    double part[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) part[j] += (double)(x[k + j] * x[k + j]);
    double ss = ((part[0] + part[1]) + (part[2] + part[3])) +
                ((part[4] + part[5]) + (part[6] + part[7]));
    for (; k < n; k++) ss += (double)(x[k] * x[k]);
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    // ggml multiplies by the norm scale first, then by the weight (two ops).
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

// theta_i = pos * base^(-2i/n_rot), built as ggml does: one powf for the ratio,
// then a running product. The product drifts by a few ulp from a direct powf
// per pair; matching the drift keeps int8 rounding flips away in later layers.
// Pair i is (i, i + n_rot/2) for NEOX, (2i, 2i + 1) when adjacent.
// ggml_compute_forward_rope_f32 writes x0*cos - x1*sin and x0*sin + x1*cos, and
// bitnet.cpp's clang build contracts each (-ffp-contract=on, FMA from -march=native)
// into one product rounded and one fused: fma(x0, cos, -(x1*sin)) and
// fma(x0, sin, x1*cos) (vfmsub231ss / vfmadd231ss in its libggml.so, both modes).
// Unfused, ~15% of the rotated floats were an ulp or more off.
static void rope(float *x, int n_head, int head_dim, int n_rot, int pos, float base, bool adjacent) {
    const int half = adjacent ? 1 : n_rot / 2; // from a pair's first element to its second
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++, theta *= theta_scale) {
        const float c = cosf(theta), s = sinf(theta);
        const int a = adjacent ? 2 * i : i;
        for (int h = 0; h < n_head; h++) {
            float *xh = x + (int64_t)h * head_dim;
            const float x0 = xh[a], x1 = xh[a + half];
            xh[a] = fmaf(x0, c, -(x1 * s));
            xh[a + half] = fmaf(x0, s, x1 * c);
        }
    }
}

void bn_rope_neox(float *x, int n_head, int head_dim, int n_rot, int pos, float base) {
    rope(x, n_head, head_dim, n_rot, pos, base, false);
}

void bn_rope_pairs(float *x, int n_head, int head_dim, int n_rot, int pos, float base) {
    rope(x, n_head, head_dim, n_rot, pos, base, true);
}

void bn_softmax(float *x, int n) {
    float max = -INFINITY;
    // A compare, not fmaxf (a libm call per element here); same result, NaN included.
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int i = 0; i < n; i += 8) {
        float e[8];
        for (int l = 0; l < 8; l++) e[l] = i + l < n ? bn_expf_ggml(x[i + l] - max) : 0.0f;
        for (int l = 0; l < 8 && i + l < n; l++) x[i + l] = e[l];
        sum += (double)bn_softmax_block_sum(e);
    }
    // ggml scales by the reciprocal rather than dividing each element.
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void bn_attention_head(const float *q, const uint16_t *k, const uint16_t *v, int64_t stride,
                       int head_dim, int n_kv, float scale, float *scores, float *out) {
    const int np = head_dim & ~31;
    for (int j = 0; j < n_kv; j++) {
        const uint16_t *kj = k + j * stride;
        float lane[32] = {0};
        for (int d = 0; d < np; d++) lane[d & 31] = fmaf(bn_f16_to_f32(kj[d]), q[d], lane[d & 31]);
        double dot = bn_dot_f16_reduce(lane);
        for (int d = np; d < head_dim; d++) dot += (double)(bn_f16_to_f32(kj[d]) * q[d]);
        scores[j] = (float)dot * scale;
    }
    bn_softmax(scores, n_kv);
    // bitnet.cpp multiplies V (f16 cache) by the probabilities converted to f16.
    bn_round_f16(scores, n_kv);
    for (int d = 0; d < head_dim; d++) {
        float lane[32] = {0};
        for (int j = 0; j < n_kv; j++)
            lane[j & 31] = fmaf(bn_f16_to_f32(v[j * stride + d]), scores[j], lane[j & 31]);
        out[d] = bn_dot_f16_reduce(lane);
    }
}

// gcc only vectorizes the select below when FP exceptions need not be preserved
// (the values are the same either way; nothing here reads the exception flags).
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-trapping-math")))
#endif
void bn_relu_sqr_mul(float *restrict gate, const float *restrict up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float r = gate[i] > 0.0f ? gate[i] : 0.0f;
        gate[i] = r * r * up[i];
    }
}

// ggml's nearest_int: round half to even through the float's mantissa.
static int nearest_int(float f) {
    const float v = f + 12582912.0f; // 1.5 * 2^23
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

float bn_quantize_q8k_block(const float *x, int8_t *q) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < 256; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    if (amax == 0.0f) {
        memset(q, 0, 256);
        return 0.0f;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < 256; j++) {
        const int v = nearest_int(iscale * x[j]);
        q[j] = (int8_t)(v < 127 ? v : 127);
    }
    return 1.0f / iscale;
}

void bn_q8k_group_sums(const int8_t *q, int32_t sums[8]) {
    for (int i = 0; i < 8; i++) {
        sums[i] = 0;
        for (int e = 32 * i; e < 32 * i + 32; e++) sums[i] += q[e];
    }
}

// ggml_vec_dot_tq1_0_q8_K and ggml_vec_dot_tq2_0_q8_K of the AVX2 build (both the
// same way): per block, 8 int32 lanes, lane i holding code * y over the elements e
// with (e % 32) / 4 == i (code = value + 1, the bytes of its 32-byte vectors)
// minus bsums 2i and 2i + 1 (y[32i .. 32i + 31]); each lane converted to float and
// times d = y.d * x.d, accumulated per lane over the blocks (multiply, then add);
// the 8 lanes summed as hsum_float_8. The sum is the same integer as
// sum (value * y), but the float lanes round differently from one sum a block.
void bn_ternary_rows_q8k(const uint8_t *w, int64_t K, int64_t r0, int64_t r1, const int8_t *xq,
                         const float *xd, int n, float scale, float out_scale, bool add, float *y,
                         int64_t M) {
    const int64_t nb = K / 256;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w + r * (K / 4);
        for (int t = 0; t < n; t++) {
            const int8_t *x = xq + (int64_t)t * K;
            float lane[8] = {0};
            for (int64_t b = 0; b < nb; b++) {
                const int8_t *xb = x + b * 256;
                int32_t isum[8] = {0};
                // two I2_S blocks of 128: byte g holds elements g, g+32, g+64, g+96
                // in bits 7:6 .. 1:0 as value + 1 (docs/architecture.md: I2_S)
                for (int h = 0; h < 2; h++) {
                    const uint8_t *c = row + (2 * b + h) * 32;
                    for (int g = 0; g < 32; g++)
                        for (int s = 0; s < 4; s++) {
                            const int code = (c[g] >> (6 - 2 * s)) & 3;
                            isum[g / 4] += (code == 3 ? 1 : code) * xb[128 * h + 32 * s + g];
                        }
                }
                const float d = xd[(int64_t)t * nb + b] * scale;
                for (int i = 0; i < 8; i++) {
                    for (int e = 32 * i; e < 32 * i + 32; e++) isum[i] -= xb[e];
                    lane[i] += (float)isum[i] * d;
                }
            }
            float sum = bn_softmax_block_sum(lane); // the same 8-lane tree
            sum *= out_scale;
            float *out = y + (int64_t)t * M + r;
            *out = add ? *out + sum : sum;
        }
    }
}

int bn_embed_row(float *out, const void *data, uint32_t type, int64_t n, int64_t row) {
    switch (type) {
    case BN_GGML_F32: {
        const float *src = (const float *)data + row * n;
        for (int64_t i = 0; i < n; i++) out[i] = src[i];
        return 0;
    }
    case BN_GGML_F16:
        bn_load_f16(out, (const uint16_t *)data + row * n, n);
        return 0;
    case BN_GGML_BF16: {
        const uint16_t *src = (const uint16_t *)data + row * n;
        for (int64_t i = 0; i < n; i++) out[i] = bn_bf16_to_f32(src[i]);
        return 0;
    }
    default:
        return -1;
    }
}

int bn_float_gemv(const void *w, uint32_t type, int64_t K, int64_t row0, int64_t row1,
                  const float *x, float *y) {
    if (type != BN_GGML_F32 && type != BN_GGML_BF16) return -1;
    for (int64_t r = row0; r < row1; r++) {
        float acc = 0.0f;
        if (type == BN_GGML_F32) {
            const float *wr = (const float *)w + r * K;
            for (int64_t k = 0; k < K; k++) acc += wr[k] * x[k];
        } else {
            const uint16_t *wr = (const uint16_t *)w + r * K;
            for (int64_t k = 0; k < K; k++) acc += bn_bf16_to_f32(wr[k]) * x[k];
        }
        y[r] = acc;
    }
    return 0;
}
