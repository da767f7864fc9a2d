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
#include "../core/top.h"
#include "gemv_crossover.h"
#include "nq_mode.h"

#ifdef __cplusplus
extern "C" {
#endif

struct bn_backend;

typedef struct bn_cuda_stats {
    double context_ms;     // create() up to the upload: device checks, context (what was left of its
                           // start after bn_backend_prewarm), allocations
    double upload_ms;      // create(): host-to-device copy of weights and tables
    uint64_t device_bytes; // the device arena (weights, KV cache, scratch)
    bool graphs;           // decode steps replay CUDA graphs
    bool pdl;              // kernels launch with programmatic dependent launch
    bool plain_attention;  // BITNET_CUDA_ATTN=plain (or a head_dim the fast kernels lack)
    int gemv_max;          // batches up to this many tokens take the GEMV path
    double tune_ms;        // create(): timing the GEMV against the GEMM to choose gemv_max
    int tuned_sizes;       // the batches timed (0: not tuned: BITNET_CUDA_GEMV_MAX or NORM=last, a TQ model)
    int tuned_batch[BN_CROSSOVER_SIZES]; // their sizes, and an FFN's time at each through either path
    double tuned_gemv_us[BN_CROSSOVER_SIZES], tuned_gemm_us[BN_CROSSOVER_SIZES];
    int attd_split;        // splits of the decode attention
    int attd_short;        // positions below this take the one-kernel decode attention (0: none)
    int persist;           // positions below this take the persistent decode kernel (0: none)
    int persist_ring;      // its weight ring's bytes in each block (persist_plan.h; 0: no plan)
    int persist_chunks;    // the chunks a block streams for one layer
    int gemm_tile;         // tokens a block of the mma GEMM takes (0: by batch size)
    int tq;                // a TQ model's bitlinears: 0 not TQ, 1 the dp4a kernel, 2 the tensor cores (BITNET_CUDA_TQ=mma)
    const char *graph_error; // "" or why a graph capture failed (graphs are then off)
} bn_cuda_stats;

// Sets (or, with on false, unsets) the environment switches given as n
// NAME=VALUE strings (a NULL entry ends the list early), as tests and
// bench_cuda set BITNET_CUDA_* switches around a backend's create().
void bn_cuda_switches_set(const char *const *env, int n, bool on);

// Same check as bn_cuda_backend.probe.
int bn_cuda_probe_device(bn_error *err);
void bn_cuda_backend_stats(const struct bn_backend *be, bn_cuda_stats *out);

// One decode step (token at pos, argmax output) run eagerly with an event after
// every launch: time per kernel name (summed over layers) and the step's total.
// The events serialize the kernels, so the total exceeds a graph replay's.
typedef struct bn_cuda_prof_row {
    const char *name;
    double ms;
    int calls;
} bn_cuda_prof_row;
int bn_cuda_profile_step(struct bn_backend *be, int32_t token, int32_t pos, bn_cuda_prof_row *rows,
                         int max_rows, int *n_rows, double *total_ms, bn_error *err);

// One decode step (token at pos, no head) run eagerly through the first n_layers
// layers only, as this backend runs them (the persistent kernel or not), then
// the step's buffers copied out: x (n_embd floats, the hidden state after layer
// n_layers - 1) and that layer's qkv (Q|K|V width), att (n_head * head_dim) and
// gu (2 * n_ff): so a test comparing two backends finds the first layer, and in
// it the first step, where they part. The cache rows at pos of those layers are
// written as the step writes them.
int bn_cuda_debug_step(struct bn_backend *be, int32_t token, int32_t pos, int n_layers, float *x, float *qkv,
                       float *att, float *gu, bn_error *err);

// scales: per-row weight scale, rows [0,r1) scales[0], [r1,r2) scales[1], rest
// scales[2]; scales[3..5]: the same rows' out-scales (the bitnet family's
// `.scale` tensors), applied after it as bn_bitlinear_out does.
// w: M rows of K/4 bytes (I2_S), 0b11 codes allowed (treated as 0).
// y: n rows of M floats (row stride M); read too when add.
// kernel: 0 = GEMV from int8 input, 1 = tiled dp4a GEMM, 2, 3, 4 = int8 tensor-core
// (mma) GEMM with tiles of 128, 64 and 32 tokens.
int bn_cuda_test_ternary(int kernel, const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                         const int32_t *qsum, int n, const float scales[6], int r1, int r2, bool add,
                         float *y, bn_error *err);
// mode: a bn_nq_mode (nq_mode.h); 1 (or true) is the relu^2 GLU.
// The GEMV on float rows x (n rows of K, GLU: 2K), which every block normalizes
// (norm_w, K floats) and quantizes itself: y as bn_cuda_test_ternary.
int bn_cuda_test_gemv_norm(const uint8_t *w, int K, int M, const float *x, const float *norm_w, float eps,
                           int mode, int n, const float scales[6], int r1, int r2, bool add, float *y,
                           bn_error *err);
// The decode GEMV followed by its next norm (norm_w over the M outputs, or over
// the GLU of y[:M/2] and y[M/2:] in a GLU mode): y as bn_cuda_test_ternary, and the codes
// q_out (n rows of M or M/2), s_out, qsum_out.
int bn_cuda_test_gemv_next_norm(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                const int32_t *qsum, int n, const float scales[6], int r1, int r2,
                                bool add, float *y, const float *norm_w, float eps, int mode,
                                int8_t *q_out, float *s_out, int32_t *qsum_out, bn_error *err);
// x: n_tok rows of n (GLU: 2n) floats -> q [n_tok][n], s, qsum.
int bn_cuda_test_rmsnorm_quant(const float *x, const float *w, int n_tok, int n, float eps, int mode,
                               int8_t *q, float *s, int32_t *qsum, bn_error *err);
// A TQ model's bitlinear (ternary_q8k.cu) on n rows x (K floats, 2K in a GLU
// mode): the codes q (n x K, in element order), block scales d (n x K/256) and
// group sums bsum (n x K/256 x 8) of bn_cuda_rmsnorm_q8k, then y (n x M; read
// first when add) of bn_cuda_ternary_q8k (mma: its tensor-core kernel) with row
// scales as bn_cuda_test_ternary.
int bn_cuda_test_q8k(const uint8_t *w, int K, int M, const float *x, const float *norm_w, float eps, int mode, int n,
                     const float scales[6], int r1, int r2, bool add, bool mma, float *y, int8_t *q, float *d,
                     int32_t *bsum, bn_error *err);
// qkv: n_tok rows of (n_head + 2 n_head_kv) * hd floats; caches: [n_head_kv][n_ctx][hd]
// halves (read and written back); q_out: n_tok rows of n_head*hd halves.
int bn_cuda_test_rope_kv(const float *qkv, const int32_t *pos, int n_tok, int n_head, int n_head_kv,
                         int hd, int n_rot, bool neox, float base, int n_ctx, uint16_t *q_out,
                         uint16_t *k_cache, uint16_t *v_cache, bn_error *err);
// kernel: 0 = plain (attention.cu), 1 = tensor-core prefill (attention_prefill.cu).
// Caches [n_head_kv][n_ctx][hd].
int bn_cuda_test_attention(int kernel, const uint16_t *q, const uint16_t *k_cache,
                           const uint16_t *v_cache, const int32_t *pos, int n_tok, int n_head,
                           int n_head_kv, int hd, int n_ctx, float *out, bn_error *err);
// The decode attention for one token at pos from its f32 qkv row: the caches
// (read, and row pos written back), out (n_head*hd floats) and, when norm_w is
// given, the codes of rmsnorm(out, norm_w) (q_out, *s_out, *qsum_out).
// n_split <= 0: the backend's choice for n_ctx; -1: the one-kernel form
// (attention_decode_short.cu; pos below bn_cuda_test_attd_short_keys).
// The most keys the one-kernel decode attention holds on this device for the
// shape (bn_cuda_attd_short_keys; it depends on the device's shared memory), or -1.
int bn_cuda_test_attd_short_keys(int n_head, int n_head_kv, int hd, int n_rot, bn_error *err);
int bn_cuda_test_attention_decode(const float *qkv, int32_t pos, int n_head, int n_head_kv, int hd,
                                  int n_rot, bool neox, float base, int n_ctx, int n_split, uint16_t *k_cache,
                                  uint16_t *v_cache, float *out, const float *norm_w, float eps,
                                  int8_t *q_out, float *s_out, int32_t *qsum_out, bn_error *err);
// The decode attention for n_tok tokens of different slots in one launch: token
// t's qkv row t at pos[t] in slot seq[t] of caches holding n_seq slots of
// [n_head_kv][n_ctx][hd]; out: n_tok rows. n_split as above. norm_w (may be
// NULL): the next norm fused into the launch, every token's codes into q_out
// (n_tok rows), s_out, qsum_out.
int bn_cuda_test_attention_decode_seqs(const float *qkv, const int32_t *pos, const int32_t *seq, int n_tok,
                                       int n_seq, int n_head, int n_head_kv, int hd, int n_rot, bool neox,
                                       float base, int n_ctx, int n_split, uint16_t *k_cache, uint16_t *v_cache,
                                       float *out, const float *norm_w, float eps, int8_t *q_out, float *s_out,
                                       int32_t *qsum_out, bn_error *err);
// type: 0 F32, 1 F16, 30 BF16 (ggml numbering).
int bn_cuda_test_embedding(const void *table, int type, int n_vocab, int n_embd,
                           const int32_t *tokens, int n_tok, float *x, bn_error *err);
int bn_cuda_test_rmsnorm_cast(const float *x, const float *w, int n_tok, int n, float eps,
                              int out_type, void *out, bn_error *err);
int bn_cuda_test_argmax(const float *x, int n, int32_t *out, bn_error *err);
// bn_cuda_argmax_rows over rows x n floats (packed).
int bn_cuda_test_argmax_rows(const float *x, int rows, int n, int32_t *out, bn_error *err);
// bn_cuda_top_rows over rows x n floats (packed): BN_TOP_MAX entries a row, and
// each row's softmax denominator into sums (when not NULL).
int bn_cuda_test_top_rows(const float *x, int rows, int n, bn_top *out, double *sums, bn_error *err);
// The int8 head input: codes q [n_tok][n] and xscale[n_tok] (127/max|h|).
int bn_cuda_test_rmsnorm_cast_q8(const float *x, const float *w, int n_tok, int n, float eps,
                                 int8_t *q, float *xscale, bn_error *err);
// LM head GEMV (lm_head_gemv.cu). type: 0 F32, 1 F16 (w: V rows of K, x: n rows
// of K, both in that type, n <= BN_CUDA_HEAD_MAX_N); logits: n rows of V. argmax: NULL, or the fused
// argmax of the last row. With argmax the kernel runs three times - plain, then
// plain + PDL back to back with the logits poisoned in between - and the wrapper
// fails unless the replays give the same bits and id and leave the counter at 0.
#define BN_CUDA_HEAD_MAX_N 64 // = BN_HEAD_MAX_N of cuda_kernels.cuh (checked in cuda_testing.cu)
int bn_cuda_test_head_gemv(const void *w, int type, int K, int V, const void *x, int n, float *logits,
                           int32_t *argmax, bn_error *err);
int bn_cuda_test_head_q8_quantize(const void *w, int type, int K, int V, int8_t *wq, float *row_scale,
                                  bn_error *err);
int bn_cuda_test_head_q8_gemv(const int8_t *wq, const float *row_scale, int K, int V, const int8_t *xq,
                              const float *xscale, int n, float *logits, int32_t *argmax, bn_error *err);

// Kernel timings for bench/bench_cuda.c: one op on device-resident random data
// of the given shape, `iters` launches captured in a CUDA graph and replayed;
// returns the mean time per launch in microseconds and the bytes it must move,
// or -1. Weights (and for attention the KV cache) rotate over copies that
// together exceed 4x the L2 cache, so every launch reads them from HBM as a
// decode step does.
typedef enum bn_cuda_bench_op {
    BN_CUDA_BENCH_COPY,          // cudaMemcpy device-to-device of M*K/4 bytes (bandwidth reference)
    BN_CUDA_BENCH_GEMV,          // ternary GEMV, codes precomputed (n tokens)
    BN_CUDA_BENCH_GEMV_NORM,     // ternary GEMV on float rows, normalized in every block's prologue
    BN_CUDA_BENCH_GEMV_LAST,     // ternary GEMV + the next norm in its last block (BITNET_CUDA_NORM=last)
    BN_CUDA_BENCH_GEMM,          // norm+quant + dp4a tiled GEMM for n tokens
    BN_CUDA_BENCH_GEMM_MMA,      // norm+quant + tensor-core GEMM for n tokens
    BN_CUDA_BENCH_GEMM_MMA_ONLY, // the tensor-core GEMM alone, codes precomputed
    BN_CUDA_BENCH_LM_HEAD,       // f16 cublasGemmEx, M = vocab rows of K
    BN_CUDA_BENCH_ATTN_DECODE,   // decode attention, 2B-4T heads; K = context length, M > 1: splits
    BN_CUDA_BENCH_ATTN_DECODE_NORM, // the same with the output's norm in its last block
    BN_CUDA_BENCH_ATTN_DECODE_SHORT, // its one-kernel form (attention_decode_short.cu), K keys at most 256
    BN_CUDA_BENCH_ATTN_PREFILL,  // tensor-core prefill attention, n tokens at positions 0..n-1
    BN_CUDA_BENCH_HEAD_F16,      // bn_cuda_head_gemv, f16, fused argmax, M = vocab rows of K
    BN_CUDA_BENCH_HEAD_Q8,       // bn_cuda_head_q8_gemv, fused argmax
} bn_cuda_bench_op;
typedef struct bn_cuda_bench_result {
    double us;     // per launch
    double bytes;  // device memory it must move (weights, KV, activations)
    double flops;  // arithmetic (2 per multiply-add), for the compute-bound ops
    int copies;    // rotated weight/KV copies
} bn_cuda_bench_result;
int bn_cuda_bench_kernel(bn_cuda_bench_op op, int K, int M, int n, int iters, bn_cuda_bench_result *r,
                         bn_error *err);
// Process start-up, measured first thing: the driver (cudaGetDeviceCount) and
// the context (cudaFree(0)), in ms; -1 without a device.
int bn_cuda_bench_startup(double *init_ms, double *context_ms);
// The GEMV's blocks per multiprocessor (1 in the backend), for a sweep.
void bn_cuda_bench_gemv_blocks_per_sm(int n);
// Tokens a block of the mma GEMM takes in the GEMM_MMA ops (32, 64, 128; 0: by
// n); 128 until set.
void bn_cuda_bench_gemm_tile(int tile);

#ifdef __cplusplus
}
#endif

#endif
