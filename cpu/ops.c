// ops.c - scalar float ops of the forward pass (see ops.h for the contracts).
#include "ops.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "../core/gguf.h"
#include "kernels.h"

void bn_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    // ggml sums squares in double. One running sum is a chain of n dependent adds
    // (4 cycles each: ~20 us a token per layer, 3% of a prefill); eight partial
    // sums in a fixed order let them overlap. Double keeps the reordering far
    // below the float rounding of the result.
    double part[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) part[j] += (double)x[k + j] * x[k + j];
    double ss = ((part[0] + part[1]) + (part[2] + part[3])) +
                ((part[4] + part[5]) + (part[6] + part[7]));
    for (; k < n; k++) ss += (double)x[k] * x[k];
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    // ggml multiplies by the norm scale first, then by the weight (two ops).
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

// theta_i = pos * base^(-2i/n_rot), built as ggml does: one powf for the ratio,
// then a running product. The product drifts by a few ulp from a direct powf
// per pair; matching the drift keeps int8 rounding flips away in later layers.
// Pair i is (i, i + n_rot/2) for NEOX, (2i, 2i + 1) when adjacent.
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
            xh[a] = x0 * c - x1 * s;
            xh[a + half] = x0 * s + x1 * c;
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
    double part[8] = {0};
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        part[i & 7] += x[i];
    }
    // ggml scales by the reciprocal rather than dividing each element.
    const float inv = (float)(1.0 / bn_softmax_total(part));
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void bn_attention_head(const float *q, const uint16_t *k, const uint16_t *v, int64_t stride,
                       int head_dim, int n_kv, float scale, float *scores, float *out) {
    for (int j = 0; j < n_kv; j++) {
        const uint16_t *kj = k + j * stride;
        float dot = 0.0f;
        for (int d = 0; d < head_dim; d++) dot += q[d] * bn_f16_to_f32(kj[d]);
        scores[j] = dot * scale;
    }
    bn_softmax(scores, n_kv);
    // bitnet.cpp multiplies V (f16 cache) by the probabilities converted to f16.
    bn_round_f16(scores, n_kv);
    for (int d = 0; d < head_dim; d++) out[d] = 0.0f;
    for (int j = 0; j < n_kv; j++) {
        const uint16_t *vj = v + j * stride;
        const float p = scores[j];
        for (int d = 0; d < head_dim; d++) out[d] += p * bn_f16_to_f32(vj[d]);
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

void bn_ternary_rows_q8k(const uint8_t *w, int64_t K, int64_t r0, int64_t r1, const int8_t *xq,
                         const float *xd, int n, float scale, bool add, float *y, int64_t M) {
    const int64_t nb = K / 256;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w + r * (K / 4);
        for (int t = 0; t < n; t++) {
            const int8_t *x = xq + (int64_t)t * K;
            float sum = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t isum = 0;
                // two I2_S blocks of 128: byte g holds elements g, g+32, g+64, g+96
                // in bits 7:6 .. 1:0 as value + 1 (docs/architecture.md: I2_S)
                for (int h = 0; h < 2; h++) {
                    const uint8_t *c = row + (2 * b + h) * 32;
                    const int8_t *xs = x + (2 * b + h) * 128;
                    for (int g = 0; g < 32; g++)
                        for (int s = 0; s < 4; s++) {
                            const int code = (c[g] >> (6 - 2 * s)) & 3;
                            isum += (code == 3 ? 0 : code - 1) * xs[g + 32 * s];
                        }
                }
                sum += (float)isum * (xd[(int64_t)t * nb + b] * scale);
            }
            float *out = y + (int64_t)t * M + r;
            *out = add ? *out + sum : sum;
        }
    }
}

void bn_round_f16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = bn_f16_to_f32(bn_f32_to_f16(x[i]));
}

void bn_store_f16(uint16_t *dst, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = bn_f32_to_f16(x[i]);
}

void bn_load_f16(float *dst, const uint16_t *h, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = bn_f16_to_f32(h[i]);
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
