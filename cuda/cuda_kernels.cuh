// cuda_kernels.cuh - the CUDA backend's kernel launchers (internal to cuda/).
//
// One .cu file per operation; each launcher enqueues on `st` and returns
// cudaGetLastError() so the caller can check the launch (cuda_check.cuh). All
// pointers are device pointers. Per-token arrays are token-major: row t of an
// [n, K] matrix starts at t*ld. Each op names its CPU scalar twin, which the
// tests compare it with (tests/test_cuda.c).
#ifndef BN_CUDA_KERNELS_CUH
#define BN_CUDA_KERNELS_CUH

#include "nq_mode.h"
#include "persist_plan.h"
#include "../core/top.h"
#include <stdint.h>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

// Per-row weight scale of a stack of up to three I2_S matrices sharing one input
// (Q|K|V or gate|up): rows [0,r1) use s0, [r1,r2) s1, [r2,M) s2; then the output
// scale o0/o1/o2 of each (model.h out_scale: 1 but for the bitnet family's
// `.scale` tensors), a second multiply as bitnet.cpp does it.
typedef struct bn_cuda_rowscale {
    int32_t r1, r2;
    float s0, s1, s2;
    float o0, o1, o2;
} bn_cuda_rowscale;

static inline bn_cuda_rowscale bn_cuda_rowscale_one(float s, float o) {
    bn_cuda_rowscale r = {0x7fffffff, 0x7fffffff, s, s, s, o, o, o};
    return r;
}

// Row r's weight scale and output scale.
__device__ __forceinline__ float bn_row_wscale(const bn_cuda_rowscale &rs, int r) {
    return r < rs.r1 ? rs.s0 : (r < rs.r2 ? rs.s1 : rs.s2);
}
__device__ __forceinline__ float bn_row_oscale(const bn_cuda_rowscale &rs, int r) {
    return r < rs.r1 ? rs.o0 : (r < rs.r2 ? rs.o1 : rs.o2);
}

// x (the int32 sum over the activation scale) times row r's weight scale, then
// times its output scale; each product rounded (times 1 is exact).
__device__ __forceinline__ float bn_row_scaled(const bn_cuda_rowscale &rs, int r, float x) {
    return __fmul_rn(__fmul_rn(x, bn_row_wscale(rs, r)), bn_row_oscale(rs, r));
}

// One layer's weights on the device: Q|K|V and gate|up stacked (one launch
// each), with their row scales, and the four norm weights.
typedef struct bn_cuda_layer {
    const uint8_t *wqkv, *wo, *wgu, *wdown;
    bn_cuda_rowscale rs_qkv, rs_o, rs_gu, rs_down;
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm;
} bn_cuda_layer;

// Embedding table element types (ggml numbering, see core/gguf.h). BN_CUDA_I8 is
// ggml's I8: only the int8 head input of bn_cuda_rmsnorm_cast uses it.
enum { BN_CUDA_F32 = 0, BN_CUDA_F16 = 1, BN_CUDA_I8 = 24, BN_CUDA_BF16 = 30 };

// Launchers that take `pdl` launch with programmatic dependent launch when it is
// set (pdl.cuh): the kernel may start before the previous one on the stream has
// finished, and waits for it before touching its outputs.

// embedding.cu - x[t, :] = float(table[tokens[t], :]).            CPU twin: the row copy in cpu/ops.c
// The first kernel of a step, after the host copy of the token ids: no PDL.
// With an F32 table it is also a row gather (the LM head's rows of a step of
// several sequences, forward_cuda.cu).
cudaError_t bn_cuda_embedding(const void *table, int type, const int32_t *tokens, int n_tok,
                              int n_embd, float *x, cudaStream_t st);

// rmsnorm_quant.cu - per token: h = w * x / sqrt(mean(x^2) + eps), then the
// bitlinear int8 quantization of h: q, s = 127/max|h|, qsum = sum(q); mode:
// nq_mode.h. n % 4 == 0.
//                                            CPU twin: rmsnorm + bn_quantize_i8
cudaError_t bn_cuda_rmsnorm_quant(const float *x, int64_t ldx, const float *w, int n_tok, int n,
                                  float eps, bn_nq_mode mode, int8_t *q, float *s, int32_t *qsum, bool pdl,
                                  cudaStream_t st);

// ternary_q8k.cu - the bitlinears of TQ1_0/TQ2_0 models (model.h act_block):
// activations quantized per block of 256 (llama.cpp's Q8_K) and llama.cpp's
// per-block float sums, bit for bit.
//                  CPU twins: bn_quantize_q8k_block, bn_ternary_rows_q8k (cpu/ops.h)
// bn_cuda_rmsnorm_q8k: rows x[t] (ldx apart, mode as in rmsnorm_quant; K % 256
// == 0) into codes q[t*K + b*256 + bn_q8k_code_slot(e)] (element e of block b),
// scales d[t*K/256 + b] and group sums bsum[(t*K/256 + b)*8 + k] (codes 32k ..
// 32k+31 of the block). bn_cuda_ternary_q8k: y (=|+=) the I2_S rows times them,
// on the dp4a kernel or (mma) the tensor-core one: the same bits either way.
cudaError_t bn_cuda_rmsnorm_q8k(const float *x, int64_t ldx, const float *w, int n_tok, int K, float eps,
                                bn_nq_mode mode, int8_t *q, float *d, int32_t *bsum, bool pdl, cudaStream_t st);
cudaError_t bn_cuda_ternary_q8k(const uint8_t *w, int K, int M, const int8_t *q, const float *d, const int32_t *bsum,
                                int n, bn_cuda_rowscale rs, bool add, float *y, int64_t ldy, bool mma, bool pdl,
                                cudaStream_t st);
// Where element e (0..255) of a block goes among its 256 codes: element 128h +
// 32s + g to 32(g/4) + 16h + 4s + g%4, so the 32 codes lane g/4 of the product
// kernel multiplies (bytes 4i..4i+3 of both I2_S halves, every plane) are one
// run of 32 bytes.
__host__ __device__ static inline int bn_q8k_code_slot(int e) {
    const int h = e >> 7, s = (e >> 5) & 3, g = e & 31;
    return 32 * (g >> 2) + 16 * h + 4 * s + (g & 3);
}

// I2_S weights whose rare 0b11 codes (never written by bitnet.cpp, "treat as 0")
// are rewritten to 0b01 once after upload, so the dp4a kernels can use w+1 as is.
cudaError_t bn_cuda_i2s_sanitize(uint8_t *w, int64_t nbytes, cudaStream_t st);

// The norm of the next bitlinear, run once by the last block of the kernel that
// produces its input (ternary_gemv.cu, attention_decode.cu): rmsnorm_quant of
// every output row (mode: of the GLU of gate|up, the output) into
// q/s/qsum. counter is 0 between launches; the last block resets it.
typedef struct bn_cuda_next_norm {
    const float *w; // norm weight; NULL: no next norm
    bn_nq_mode mode;
    float eps;
    int8_t *q;      // n rows of the normed width
    float *s;
    int32_t *qsum;
    unsigned *counter;
} bn_cuda_next_norm;

// ternary_gemv.cu / ternary_gemm.cu / ternary_gemm_mma.cu - bitlinear on I2_S
// weights w (M rows of K/4 bytes, K % 128 == 0) and int8 activations q[t, :]
// (quantization scale s[t], qsum[t] = sum(q[t, :])), for rows r < M, tokens t < n:
//     v = (sum_k code(w[r,k]) q[t,k]) / s[t] * scale(r);   y[t*ldy + r] = v  (add: += v)
// The GEMV (decode, n <= bn_cuda_gemv_max_tokens(K)) holds each block's weight
// slice in shared memory and runs nn (may be NULL) after it; the dp4a GEMM
// reuses each weight tile across 64 tokens (the reference for the next); the mma
// GEMM (prefill) does the same sum on the int8 tensor cores, 128 rows x 128
// tokens a block, with bit-identical results.
//                                            CPU twin: bn_ternary_gemm_scalar
#define BN_GEMV_MAX_N 8
int bn_cuda_gemv_max_tokens(int K);
void bn_cuda_gemv_set_blocks_per_sm(int n); // default 1; bench_cuda sweeps it
cudaError_t bn_cuda_ternary_gemv(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                 const int32_t *qsum, int n, bn_cuda_rowscale rs, bool add,
                                 float *y, int64_t ldy, const bn_cuda_next_norm *nn, bool pdl,
                                 cudaStream_t st);
// The GEMV on float rows x[t] (ldx apart, mode as in rmsnorm_quant): every block
// normalizes and quantizes them (norm_w) while its weights arrive.
cudaError_t bn_cuda_ternary_gemv_norm(const uint8_t *w, int K, int M, const float *x, int64_t ldx,
                                      const float *norm_w, float eps, bn_nq_mode mode, int n, bn_cuda_rowscale rs,
                                      bool add, float *y, int64_t ldy, bool pdl, cudaStream_t st);
cudaError_t bn_cuda_ternary_gemm(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                 const int32_t *qsum, int n, bn_cuda_rowscale rs, bool add,
                                 float *y, int64_t ldy, cudaStream_t st);
// tile: tokens a block of the mma GEMM takes (32, 64 or 128; 0: the smallest of
// those that holds n, bn_cuda_gemm_mma_tile). Every tile gives the same sums.
int bn_cuda_gemm_mma_tile(int n);
cudaError_t bn_cuda_ternary_gemm_mma(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                     const int32_t *qsum, int n, bn_cuda_rowscale rs, bool add,
                                     float *y, int64_t ldy, int tile, cudaStream_t st);

// rope_kv.cu - for each token t at position pos[t], from row t of qkv
// ([n_head*hd | n_head_kv*hd | n_head_kv*hd] floats, ld = ldqkv): RoPE of Q and K
// (neox: pairs i, i + n_rot/2; else adjacent pairs), rounding to f16, Q to
// q_out[t] (n_head*hd halves) and K, V into cache row pos[t] of their head
// (cache: [n_head_kv][n_ctx][hd] halves). theta_scale = powf(base, -2.0f/n_rot)
// on the host; pair i rotates by pos*theta_scale^i (rope.cuh).
//                                CPU twin: bn_rope_neox / bn_rope_pairs + f16 KV write
cudaError_t bn_cuda_rope_kv(const float *qkv, int64_t ldqkv, const int32_t *pos, int n_tok,
                            int n_head, int n_head_kv, int hd, int n_rot, bool neox, float theta_scale,
                            int n_ctx, __half *q_out, __half *k_cache, __half *v_cache, bool pdl,
                            cudaStream_t st);

// Causal GQA attention: token t (query n_head*hd, f16) attends to cache rows
// 0..pos[t] of its KV head; out[t] = n_head*hd floats. Softmax in f32 with the
// denominator in double; probabilities rounded to f16 before they weigh V
// (bitnet.cpp does the same). Caches [n_head_kv][n_ctx][hd] f16.
//                                            CPU twin: bn_attention_head in cpu/ops.c
// attention.cu - the plain kernel: any even hd <= 256; n_ctx floats of shared
// memory, raised once by bn_cuda_attention_setup.
cudaError_t bn_cuda_attention(const __half *q, const __half *k_cache, const __half *v_cache,
                              const int32_t *pos, int n_tok, int n_head, int n_head_kv, int hd,
                              int n_ctx, float *out, bool pdl, cudaStream_t st);
size_t bn_cuda_attention_smem(int hd, int n_ctx);
cudaError_t bn_cuda_attention_setup(int hd, int n_ctx);
// attention_prefill.cu - tensor cores, any context; hd in {64, 80, 96, 128}.
bool bn_cuda_attention_prefill_supported(int hd);
cudaError_t bn_cuda_attention_prefill(const __half *q, const __half *k_cache, const __half *v_cache,
                                      const int32_t *pos, int n_tok, int n_head, int n_head_kv, int hd,
                                      int n_ctx, float *out, bool pdl, cudaStream_t st);
// attention_decode.cu - one token per sequence, from the f32 qkv row: RoPE, the
// K/V write of position pos[t], split-KV attention over n_split splits
// (bn_cuda_attd_splits(n_ctx)), then nn (may be NULL) on out. hd % 8 == 0.
// seq NULL: every token in k_cache/v_cache (one sequence: n_tok 1); else token t
// uses the cache seq[t] * seq_stride halves further (distinct slots).
// scratch: bn_cuda_attd_scratch_bytes; group_counters: n_tok * n_head /
// bn_cuda_attd_heads_per_block unsigned, zero between launches.
int bn_cuda_attd_splits(int n_ctx);
int bn_cuda_attd_heads_per_block(int n_head, int n_head_kv);
size_t bn_cuda_attd_scratch_bytes(int n_tok, int n_head, int hd, int n_ctx, int n_split);
cudaError_t bn_cuda_attention_decode(const float *qkv, int64_t ldqkv, const int32_t *pos, int n_tok,
                                     int n_head, int n_head_kv, int hd, int n_rot, bool neox,
                                     float theta_scale, int n_ctx, int n_split, __half *k_cache,
                                     __half *v_cache, const int32_t *seq, int64_t seq_stride, void *scratch,
                                     unsigned *group_counters, float *out, const bn_cuda_next_norm *nn,
                                     bool pdl, cudaStream_t st);
// attention_decode_short.cu - the same for tokens whose keys 0..pos[t] all fit in
// one block's shared memory (every pos[t] < max_keys <= bn_cuda_attd_short_keys):
// one kernel, one block per group of query heads and token, no scratch; the
// arithmetic of bn_cuda_attention_decode with one split. bn_cuda_attd_short_keys:
// the most keys this device holds for the shape (a multiple of 16, 0: none); it
// also raises the kernel's shared-memory limit, so call it before any capture.
int bn_cuda_attd_short_keys(int n_head, int n_head_kv, int hd, int n_rot);
cudaError_t bn_cuda_attention_decode_short(const float *qkv, int64_t ldqkv, const int32_t *pos, int n_tok,
                                           int n_head, int n_head_kv, int hd, int n_rot, bool neox,
                                           float theta_scale, int n_ctx, int max_keys, __half *k_cache,
                                           __half *v_cache, const int32_t *seq, int64_t seq_stride, float *out,
                                           const bn_cuda_next_norm *nn, bool pdl, cudaStream_t st);

// decode_persistent.cu - every layer of one decode token (one sequence) in one
// persistent kernel, one block per multiprocessor, the phases separated by
// grid-wide barriers: per layer the Q|K|V GEMV, the attention (below position
// short_below the one-kernel form's arithmetic, else the split pair's, with
// n_split splits, attd_scratch and group_counters as bn_cuda_attention_decode
// takes them; RoPE and the write of cache row pos[0] inside), then the O,
// gate|up and down GEMVs, each block normalizing and quantizing the whole input
// itself (as the GEMV's prologue does) while the weights stream through a ring
// of shared-memory stages a ring ahead of the phases. Each bitlinear's output, and so the hidden
// state left in x, is bit-identical to the kernel-per-operation decode's.
// bn_cuda_persist_plan: the plan for this device and shape, with the one-kernel
// form for up to keys_wanted keys and a ring of at most ring_cap bytes (0: as
// much as fits; never less than stages of one row; false: no plan fits;
// persist_plan.h); it
// also raises the kernel's shared-memory limit, so call it before any capture.
// layers: device array of n_layer; glu: the FFN's GLU mode, sub: 0 with sub-norms
// or BN_NQ_NO_NORM (nq_mode.h); kv_layer: halves from one layer's cache to the
// next; short_below <= plan->max_keys; sync: two unsigned, zero between launches.
//                                  CPU twin: the layers of cpu/forward_ref.c
bool bn_cuda_persist_plan(bn_persist_plan *p, int E, int F, int n_head, int n_head_kv, int hd, int n_rot, int n_ctx,
                          int keys_wanted, size_t ring_cap);
cudaError_t bn_cuda_decode_persistent(const bn_persist_plan *plan, const bn_cuda_layer *layers, int n_layer,
                                      float eps, bn_nq_mode glu, bn_nq_mode sub, float *x, float *qkv, float *att,
                                      float *gu, const int32_t *pos, int n_head, int n_head_kv, int hd, int n_rot,
                                      bool neox, float theta_scale, int n_ctx, __half *k_cache, __half *v_cache,
                                      int64_t kv_layer, int short_below, int n_split, void *attd_scratch,
                                      unsigned *group_counters, unsigned *sync, cudaStream_t st);

// lm_head.cu - rmsnorm of each row rounded to f16 (as bitnet.cpp and the CPU
// backend round the head's input), stored as out_type: BN_CUDA_F16 (halves),
// BN_CUDA_F32 (the rounded floats), or BN_CUDA_I8 for the int8 head: out gets
// n_tok rows of n int8 codes and xscale[t] = 127/max|h| of the rounded row t,
// bit-identical to bn_quantize_i8 on it (cpu/forward.c lm_head). xscale is only
// written for BN_CUDA_I8. pdl: launch with programmatic dependent launch
// (pdl.cuh).
//                                            CPU twin: rmsnorm + bn_f32_to_f16 (+ bn_quantize_i8)
cudaError_t bn_cuda_rmsnorm_cast(const float *x, int64_t ldx, const float *w, int n_tok, int n,
                                 float eps, int out_type, void *out, float *xscale, bool pdl,
                                 cudaStream_t st);
// The greedy id of each of `rows` rows of n floats, row r at x + r * ld, into
// out[r]: ties to the lowest index, -1 for a row that holds a NaN or an
// infinity (reduce.cuh). bn_cuda_argmax:
// one row.                                       CPU twin: the sampler's bn_argmax
cudaError_t bn_cuda_argmax_rows(const float *x, int rows, int64_t ld, int n, int32_t *out, cudaStream_t st);
// top_rows.cu - out[r * BN_TOP_MAX ..] = the BN_TOP_MAX best entries of row r of x
// (rows of n floats, ld apart), in bn_top order (core/top.h; a row shorter than
// BN_TOP_MAX ends with {-1, -inf}), and, where sums is not NULL, sums[r] = row
// r's softmax denominator.               CPU twins: bn_top_select, bn_top_exp_sum
cudaError_t bn_cuda_top_rows(const float *x, int rows, int64_t ld, int n, bn_top *out, double *sums,
                             cudaStream_t st);
cudaError_t bn_cuda_argmax(const float *x, int n, int32_t *out, cudaStream_t st);

// lm_head_gemv.cu - the LM head as a streaming GEMV (design in the file): for the
// n (1..BN_HEAD_MAX_N) token rows of x, logits[t*V + r] = sum_k w[r][k] * x[t][k].
#define BN_HEAD_MAX_N 64
// w: V rows of K in `type` (BN_CUDA_F16, K % 8 == 0; or BN_CUDA_F32, K % 4 == 0);
// x: n rows of K in the same type (the f16-rounded head input, bn_cuda_rmsnorm_cast);
// w and x 16-byte aligned. f32 accumulation.
// argmax: NULL, or it receives the argmax of the last row (logits row n-1): ties
// to the lowest index, -1 for a row not all finite, as bn_cuda_argmax. It needs `scratch`
// (bn_cuda_head_scratch_bytes(V) bytes, 8-byte aligned, no initial contents) and
// `counter` (one unsigned, zero before the first launch; every launch leaves it
// zero, so graph replays need nothing more). One launch at a time per
// scratch/counter pair. pdl: launched with programmatic dependent launch; the
// weight loads start before the previous kernel has finished.
//                  CPU twin: bn_f16_gemv_scalar / bn_float_gemv, the sampler's argmax
cudaError_t bn_cuda_head_gemv(const void *w, int type, int K, int V, const void *x, int n, float *logits,
                              int32_t *argmax, float *scratch, unsigned *counter, bool pdl,
                              cudaStream_t st);
// The int8 head (--lm-head q8): wq V rows of K int8 (K % 16 == 0), row_scale[r],
// from bn_cuda_head_q8_quantize; xq n rows of K codes and xscale[t] from
// bn_cuda_rmsnorm_cast(BN_CUDA_I8). logits[t*V + r] = (float)acc * row_scale[r] /
// xscale[t], acc the exact int32 dot product: bit-identical to the CPU. argmax,
// scratch, counter, pdl: as bn_cuda_head_gemv.
//                  CPU twin: bn_i8_gemv_scalar + the scaling in cpu/forward.c lm_head_worker
cudaError_t bn_cuda_head_q8_gemv(const int8_t *wq, const float *row_scale, int K, int V, const int8_t *xq,
                                 const float *xscale, int n, float *logits, int32_t *argmax, float *scratch,
                                 unsigned *counter, bool pdl, cudaStream_t st);
// Bytes of `scratch` a fused-argmax head GEMV over V rows needs (any type, any n).
size_t bn_cuda_head_scratch_bytes(int V);

// lm_head_q8.cu - quantizes the head (V rows of K, BN_CUDA_F16 or BN_CUDA_F32, K %
// 16 == 0) row by row into wq (V*K int8) and row_scale (V floats) = 1/s,
// bit-identical to cpu/backend_cpu.c quantize_head. Once, at load.
//                  CPU twin: bn_quantize_i8 on each row converted to float
cudaError_t bn_cuda_head_q8_quantize(const void *w, int type, int K, int V, int8_t *wq, float *row_scale,
                                     cudaStream_t st);

// cudaSuccess when this build has a kernel image the current device can run.
cudaError_t bn_cuda_kernel_image_check(void);

#endif
