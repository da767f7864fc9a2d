// ops.c - scalar float ops of the forward pass (see ops.h for the contracts).
#include "ops.h"

#include <math.h>

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

void bn_rope_neox(float *x, int n_head, int head_dim, int n_rot, int pos, float base) {
    const int half = n_rot / 2;
    // theta_i = pos * base^(-2i/n_rot), built as ggml does: one powf for the ratio,
    // then a running product. The product drifts by a few ulp from a direct powf
    // per pair; matching the drift keeps int8 rounding flips away in later layers.
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < half; i++, theta *= theta_scale) {
        const float c = cosf(theta), s = sinf(theta);
        for (int h = 0; h < n_head; h++) {
            float *xh = x + (int64_t)h * head_dim;
            const float x0 = xh[i], x1 = xh[i + half];
            xh[i] = x0 * c - x1 * s;
            xh[i + half] = x0 * s + x1 * c;
        }
    }
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
