// cuda_testing.cuh - the CUDA backend's C-callable surface beyond backend.h.
//
// Plain C (the tests and the benchmark include it): each bn_cuda_test_* runs one
// kernel on host buffers - upload, launch, download, free - so every kernel can
// be checked against its CPU scalar twin from a cmocka test. They return 0, or
// -1 with the reason in err (including "no CUDA device"). Not for the hot path.
#ifndef BN_CUDA_TESTING_CUH
#define BN_CUDA_TESTING_CUH

#include <stdbool.h>
#include <stdint.h>

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct bn_backend;

typedef struct bn_cuda_stats {
    double upload_ms;      // create(): host-to-device copy of weights and tables
    uint64_t device_bytes; // the device arena (weights, KV cache, scratch)
    bool graphs;           // decode steps replay CUDA graphs
} bn_cuda_stats;

// Same check as bn_cuda_backend.probe.
int bn_cuda_probe_device(bn_error *err);
void bn_cuda_backend_stats(const struct bn_backend *be, bn_cuda_stats *out);

// scales: per-row weight scale, rows [0,r1) scales[0], [r1,r2) scales[1], rest scales[2].
// w: M rows of K/4 bytes (I2_S), 0b11 codes allowed (treated as 0).
// y: n rows of M floats (row stride M); read too when add.
// kernel: 0 = GEMV from int8 input, 1 = tiled GEMM.
int bn_cuda_test_ternary(int kernel, const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                         const int32_t *qsum, int n, const float scales[3], int r1, int r2, bool add,
                         float *y, bn_error *err);
// The decode GEMV with its fused RMSNorm+quant prologue; x: n rows of K (glu: 2K) floats.
int bn_cuda_test_gemv_norm(const uint8_t *w, int K, int M, const float *x, const float *norm_w,
                           float eps, bool glu, int n, const float scales[3], int r1, int r2,
                           float *y, bn_error *err);
// x: n_tok rows of n (glu: 2n) floats -> q [n_tok][n], s, qsum.
int bn_cuda_test_rmsnorm_quant(const float *x, const float *w, int n_tok, int n, float eps, bool glu,
                               int8_t *q, float *s, int32_t *qsum, bn_error *err);
// qkv: n_tok rows of (n_head + 2 n_head_kv) * hd floats; caches: n_ctx rows of
// n_head_kv*hd halves (read and written back); q_out: n_tok rows of n_head*hd halves.
int bn_cuda_test_rope_kv(const float *qkv, const int32_t *pos, int n_tok, int n_head, int n_head_kv,
                         int hd, int n_rot, float base, int n_ctx, uint16_t *q_out,
                         uint16_t *k_cache, uint16_t *v_cache, bn_error *err);
int bn_cuda_test_attention(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache,
                           const int32_t *pos, int n_tok, int n_head, int n_head_kv, int hd,
                           int n_ctx, float *out, bn_error *err);
// type: 0 F32, 1 F16, 30 BF16 (ggml numbering).
int bn_cuda_test_embedding(const void *table, int type, int n_vocab, int n_embd,
                           const int32_t *tokens, int n_tok, float *x, bn_error *err);
int bn_cuda_test_rmsnorm_cast(const float *x, const float *w, int n_tok, int n, float eps,
                              int out_type, void *out, bn_error *err);
int bn_cuda_test_argmax(const float *x, int n, int32_t *out, bn_error *err);
// The int8 head input: codes q [n_tok][n] and xscale[n_tok] (127/max|h|).
int bn_cuda_test_rmsnorm_cast_q8(const float *x, const float *w, int n_tok, int n, float eps,
                                 int8_t *q, float *xscale, bn_error *err);
// LM head GEMV (lm_head_gemv.cu). type: 0 F32, 1 F16 (w: V rows of K, x: n rows
// of K, both in that type); logits: n rows of V. argmax: NULL, or the fused
// argmax of the last row. With argmax the kernel runs three times - plain, then
// plain + PDL back to back with the logits poisoned in between - and the wrapper
// fails unless the replays give the same bits and id and leave the counter at 0.
int bn_cuda_test_head_gemv(const void *w, int type, int K, int V, const void *x, int n, float *logits,
                           int32_t *argmax, bn_error *err);
int bn_cuda_test_head_q8_quantize(const void *w, int type, int K, int V, int8_t *wq, float *row_scale,
                                  bn_error *err);
int bn_cuda_test_head_q8_gemv(const int8_t *wq, const float *row_scale, int K, int V, const int8_t *xq,
                              const float *xscale, int n, float *logits, int32_t *argmax, bn_error *err);

// Kernel timings for bench/bench_cuda.c: runs `iters` launches of one op on
// device-resident random data of the given shape and returns the mean time per
// launch in microseconds (and the bytes it must move) or -1.
typedef enum bn_cuda_bench_op {
    BN_CUDA_BENCH_COPY,      // cudaMemcpy device-to-device of M*K/4 bytes (bandwidth reference)
    BN_CUDA_BENCH_GEMV,      // ternary GEMV, q precomputed
    BN_CUDA_BENCH_GEMV_NORM, // ternary GEMV with the fused norm+quant prologue
    BN_CUDA_BENCH_GEMM,      // norm+quant + tiled GEMM for n tokens
    BN_CUDA_BENCH_LM_HEAD,   // f16 cublasGemmEx, M = vocab rows of K
    BN_CUDA_BENCH_HEAD_F16,  // bn_cuda_head_gemv, f16, fused argmax, M = vocab rows of K
    BN_CUDA_BENCH_HEAD_Q8,   // bn_cuda_head_q8_gemv, fused argmax
} bn_cuda_bench_op;
int bn_cuda_bench_kernel(bn_cuda_bench_op op, int K, int M, int n, int iters, double *us,
                         double *bytes, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif
