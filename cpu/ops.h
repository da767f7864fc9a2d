// ops.h - the small float operations of one BitNet forward step (docs/architecture.md: The model).
//
// Each op works on one token's vector (or one attention head) so the forward pass
// can hand them to threads in any split. They are written to round where
// bitnet.cpp rounds (f16 for Q/K/V and the softmax probabilities) and to sum
// where ggml sums (double for the rmsnorm and softmax denominators), which keeps
// the logits within ~1e-5 of the reference.
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

// In-place softmax over n floats: max-subtracted, libm expf, the denominator in
// double as 8 interleaved partial sums (element i goes to sum i % 8) combined by
// bn_softmax_total, its reciprocal rounded to float once. The fixed order lets
// a SIMD twin sum 8 lanes at a time and still match bit for bit.
void bn_softmax(float *x, int n);
static inline double bn_softmax_total(const double part[8]) {
    return ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
}

// One query head attending causally to cache rows 0..n_kv-1:
//   out = softmax(q . k_j * scale) . v_j, the probabilities rounded to f16.
// k and v point at this head's slice of row 0 of an f16 cache whose rows are
// `stride` halves apart. scores: n_kv floats of scratch.
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

// y[t][r] (r in [r0, r1), t < n; y rows M apart) of I2_S weights w (rows of K)
// times activations quantized per block of 256 (bn_quantize_q8k_block; xq rows
// K apart, xd rows K/256 apart): sum over blocks of int32 sum * (xd * scale), in
// block order, stored, or added when add.
void bn_ternary_rows_q8k(const uint8_t *w, int64_t K, int64_t r0, int64_t r1, const int8_t *xq,
                         const float *xd, int n, float scale, bool add, float *y, int64_t M);

// Round each float to the nearest f16 (ties to even) and back.
void bn_round_f16(float *x, int64_t n);
// Round to f16 and store as f16.
void bn_store_f16(uint16_t *dst, const float *x, int64_t n);
// f16 to float.
void bn_load_f16(float *dst, const uint16_t *h, int64_t n);

// Row `row` of an [n, rows] matrix of type BN_GGML_F32/F16/BF16 as floats.
// Returns -1 for any other type.
int bn_embed_row(float *out, const void *data, uint32_t type, int64_t n, int64_t row);

// y[r] = sum_k w[r][k] * x[k] for r in [row0, row1), w of type BF16 or F32
// (the f16 case is a kernel in the table). Returns -1 for any other type.
int bn_float_gemv(const void *w, uint32_t type, int64_t K, int64_t row0, int64_t row1,
                  const float *x, float *y);

#endif
