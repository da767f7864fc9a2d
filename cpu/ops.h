// ops.h - the small float operations of one BitNet forward step (docs/architecture.md: The model).
//
// Each op works on one token's vector (or one attention head) so the forward pass
// can hand them to threads in any split. They are written to round where
// bitnet.cpp rounds (f16 for Q/K/V and the softmax probabilities) and to sum
// where ggml sums (double for the rmsnorm and softmax denominators), which keeps
// the logits within ~1e-5 of the reference.
//
// The middle layer of the CPU's scalar reference (kernels.h lists its layers):
// built on half.h (f16 rounding) and ggml_math.h (ggml's exp and sum orders);
// the scalar kernel table (kernels_scalar.c) is built on these ops.
#ifndef BN_CPU_OPS_H
#define BN_CPU_OPS_H

#include <stdbool.h>
#include <stdint.h>

// out = w * x / sqrt(mean(x^2) + eps). out may alias x.
void bn_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

// NEOX rotary embedding, in place, on n_head heads of head_dim floats: in each
// head, pairs (i, i + n_rot/2) for i < n_rot/2 rotate by pos * base^(-2i/n_rot);
// dimensions n_rot..head_dim-1 are left as they are.
void bn_rope_neox(float *x, int n_head, int head_dim, int n_rot, int pos, float base);
// The same rotation on adjacent pairs (2i, 2i + 1), ggml's "normal" RoPE (llama family).
void bn_rope_pairs(float *x, int n_head, int head_dim, int n_rot, int pos, float base);

// In-place softmax over n floats, as bitnet.cpp's ggml (AVX2+FMA build) computes
// the attention's soft_max on its KV row padded to a multiple of 32 with -inf:
// max-subtracted, ggml_v_expf (bn_expf_ggml) in blocks of 8 (the tail padded with
// -inf, whose exp is +0), each block's 8 values summed in float in the tree of
// ggml_vec_soft_max_f32 (bn_softmax_block_sum), the block sums accumulated in
// double, the reciprocal rounded to float once (ggml_math.h has both recipes).
void bn_softmax(float *x, int n);

// One query head attending causally to cache rows 0..n_kv-1:
//   out = softmax(q . k_j * scale) . v_j, the probabilities rounded to f16.
// k and v point at this head's slice of row 0 of an f16 cache whose rows are
// `stride` halves apart. scores: n_kv floats of scratch. Bit for bit what
// bitnet.cpp computes for one decoded token (1 thread, f16 KV cache, no flash
// attention): both matmuls go through ggml_vec_dot_f16 (q is f16 already), i.e.
// FMA chains in 32 lanes reduced by bn_dot_f16_reduce (ggml_math.h), the
// head_dim % 32 tail added in double; the KV row is padded to a multiple of 32
// whose extra probabilities are 0, so p.V has no tail; softmax as bn_softmax.
void bn_attention_head(const float *q, const uint16_t *k, const uint16_t *v, int64_t stride,
                       int head_dim, int n_kv, float scale, float *scores, float *out);

// gate = relu(gate)^2 * up  (BitNet b1.58's squared-ReLU GLU). No overlap.
void bn_relu_sqr_mul(float *restrict gate, const float *restrict up, int64_t n);
// gate = silu(gate) * up (bitnet and llama families) is a kernel-table entry,
// silu_mul in kernels.h, because it reproduces ggml's SIMD exp bit for bit.

// llama.cpp's Q8_K quantization of one block of 256 floats (what its TQ1_0/TQ2_0
// kernels multiply with): q = round(x * -127 / m), m the element of largest
// magnitude (with its sign), ties to even, capped at 127; returns the scale
// -m / 127 (0 and all-zero codes for an all-zero block).
float bn_quantize_q8k_block(const float *x, int8_t *q);
// The eight sums of a 256-block's codes, 32 at a time (what llama.cpp's TQ dot
// products take from Q8_K's bsums): sums[i] = q[32i] + ... + q[32i + 31].
void bn_q8k_group_sums(const int8_t *q, int32_t sums[8]);

// A bitlinear output from its exact int32 sum acc: / xs (undo the activation
// scale), * wscale (the weight's), then * os, the bitnet family's `.scale`
// tensor (a separate multiply, as bitnet.cpp's ggml_mul; 1 otherwise, which is
// exact). The CPU and reference backends both take it from here, in this order.
static inline float bn_bitlinear_out(int32_t acc, float xs, float wscale, float os) {
    return ((float)acc / xs * wscale) * os;
}

// One logit of the int8 LM head (lm_head_q8): the int32 sum times the row's
// scale, then / the input's scale xs, in that order (the CUDA head rounds the
// same two steps). The CPU and reference backends both take it from here.
static inline float bn_head_q8_out(int32_t acc, float row_scale, float xs) {
    return (float)acc * row_scale / xs;
}

// y[t][r] (r in [r0, r1), t < n; y rows M apart) of I2_S weights w (rows of K)
// times activations quantized per block of 256 (bn_quantize_q8k_block; xq rows
// K apart, xd rows K/256 apart) as llama.cpp's TQ1_0/TQ2_0 AVX2 dot products sum
// them (8 float lanes, ops.c), times out_scale (a `.scale` tensor, ggml_mul after the matmul; 1
// if none), stored, or added when add.
void bn_ternary_rows_q8k(const uint8_t *w, int64_t K, int64_t r0, int64_t r1, const int8_t *xq,
                         const float *xd, int n, float scale, float out_scale, bool add, float *y,
                         int64_t M);

// Rows of halves (round, store, load) are in half.h.

// Row `row` of an [n, rows] matrix of type BN_GGML_F32/F16/BF16 as floats.
// Returns -1 for any other type.
int bn_embed_row(float *out, const void *data, uint32_t type, int64_t n, int64_t row);

// y[r] = sum_k w[r][k] * x[k] for r in [row0, row1), w of type BF16 or F32
// (the f16 case is a kernel in the table). Returns -1 for any other type.
int bn_float_gemv(const void *w, uint32_t type, int64_t K, int64_t row0, int64_t row1,
                  const float *x, float *y);

#endif
