// backend_cuda.cuh - the CUDA backend's state, shared by its three files:
// backend_cuda.cu (device checks, memory layout, create/destroy, the ops table),
// upload.cu (weights to the device) and forward_cuda.cu (the forward pass).
#ifndef BN_BACKEND_CUDA_CUH
#define BN_BACKEND_CUDA_CUH

#include <cuda_fp16.h>

extern "C" {
#include "backend.h"
}
#include "chunk_plan.h"
#include "gemv_crossover.h"
#include "cuda_kernels.cuh"

#define BN_LM_ROWS BN_HEAD_MAX_N // logit rows computed per LM-head pass
// Batches of up to this many tokens take the GEMV path, larger ones the GEMM,
// until create() has timed the two on the card (bn_cuda_tune_gemv_max), and where
// it cannot: the crossover measured on an H200 (docs/cuda-performance.md).
#define BN_CUDA_GEMV_MAX_DEFAULT 8

// The int8 input of a bitlinear: codes (rows of the input width), scale, sum.
typedef struct bn_cuda_codes {
    int8_t *q;
    float *s;
    int32_t *qsum;
} bn_cuda_codes;

enum { BN_OUT_NONE = 0, BN_OUT_LOGITS = 1, BN_OUT_ARGMAX = 2, BN_OUT_TOP = 3, BN_OUT_TOP_SUMS = 4, BN_OUT_KINDS = 5 };
// How a decode step of one token runs, each captured as graphs of its own: the
// split-KV attention pair, the one-kernel attention, or the persistent kernel.
enum { BN_DECODE_SPLIT = 0, BN_DECODE_SHORT = 1, BN_DECODE_PERSIST = 2, BN_DECODE_FORMS = 3 };

// Per layer: the attention's next norm, the next norms of O, gate|up and down,
// then the decode attention's group counters for up to n_tok tokens.
#define BN_COUNTERS_PER_LAYER(n_head, n_tok) (4 + (n_head) * (n_tok))
// Tokens of different sequences one decode-attention launch takes at most.
#define BN_CUDA_DECODE_GROUP_MAX 256

// Events recorded after each launch of one eager step, for bench_cuda.
#define BN_PROF_MAX 1024
typedef struct bn_cuda_prof {
    cudaEvent_t ev[BN_PROF_MAX + 1];
    const char *name[BN_PROF_MAX];
    int n;
} bn_cuda_prof;

struct bn_backend {
    const bn_model *m;
    bn_hparams hp;
    int n_ctx, max_batch;
    int n_seq;         // sequence slots in the KV cache (backend.h)
    int seq;           // the slot of the run being enqueued (forward_cuda.cu)
    int decode_group;  // tokens a decode-attention launch takes: min(n_seq, max_batch, BN_CUDA_DECODE_GROUP_MAX)
    bn_cuda_piece *piece; // the chunk being enqueued, run by run (n_seq entries; several sequences only)
    int n_piece;          // 0: the chunk is one run of slot `seq`
    int nq, nkv, nqkv; // Q width, K (= V) width, Q|K|V width
    int device;
    cudaStream_t st;
    bool use_graph;       // decode steps replay CUDA graphs (BITNET_CUDA_GRAPH=0: off)
    bool use_pdl;         // programmatic dependent launch (sm_90+; BITNET_CUDA_PDL=0: off)
    bool plain_attention; // BITNET_CUDA_ATTN=plain: rope_kv + attention.cu everywhere
    bool dp4a_gemm;       // BITNET_CUDA_GEMM=dp4a: prefill on the dp4a GEMM, not the tensor cores
    int gemm_tile;        // tokens a block of the mma GEMM takes (0: by batch size; BITNET_CUDA_GEMM_TILE)
    bool norm_last;       // BITNET_CUDA_NORM=last: GEMV inputs quantized by the kernel before's last block
    bool tq;              // TQ1_0/TQ2_0 weights: every bitlinear through ternary_q8k.cu (model.h act_block)
    bool tq_mma;          // ... on its tensor-core kernel (BITNET_CUDA_TQ=mma; off until a GPU has timed it)
    bool head_q8;         // --lm-head q8: int8 head, one scale per row (as the CPU's)
    bool batch_seqs;      // several sequences share each pass (BITNET_CUDA_BATCH=0: one run after another)
    int gemv_max;         // batches up to this many tokens take the GEMV path
    int tuned_sizes;      // batches the GEMV and GEMM were timed at to choose gemv_max (0: not tuned)
    double tuned_gemv_us[BN_CROSSOVER_SIZES], tuned_gemm_us[BN_CROSSOVER_SIZES]; // an FFN, at bn_crossover_sizes
    int attd_split;       // splits of the decode attention
    int attd_short;       // decode tokens at positions below this take the one-kernel attention (0: never)
    int persist;          // decode steps of one sequence at positions below this take the persistent
                          // kernel (decode_persistent.cu; 0: never)
    bn_persist_plan persist_plan;
    bool after_persistent; // the layers just enqueued ran in the persistent kernel (forward_cuda.cu)
    cudaGraphExec_t graph[BN_DECODE_FORMS][BN_OUT_KINDS]; // [decode form][output kind]
    char graph_error[600]; // why a capture failed and graphs went off, for bench_cuda

    // device arena and what is carved from it
    void *arena;
    size_t arena_bytes;
    bn_cuda_layer *layers; // host array of device pointers
    bn_cuda_layer *d_layers; // the same array in device memory (the persistent kernel reads it)
    unsigned *persist_sync;  // the persistent kernel's two barrier counters
    const void *embd, *head;
    int embd_type, head_type; // device types: F16 or F32 (a BF16 table is widened, see upload.cu)
    const float *out_norm;
    float rope_theta_scale; // powf(base, -2/n_rot), as cpu/ops.c rope
    __half *kc, *vc;        // [layer][seq][n_head_kv][n_ctx][head_dim]
    size_t kv_bytes;        // of kc (and of vc)
    size_t counter_bytes;   // of counters
    int32_t *d_tok, *d_pos, *d_seq, *d_rows, *d_argmax; // d_argmax: max_batch ids
    bn_top *d_top;          // max_batch rows of BN_TOP_MAX entries (forward_top)
    double *d_top_sums;     // max_batch rows' softmax denominators (forward_top's exp_sums)
    float *x, *qkv, *att, *gu, *logits;
    float *head_x;          // BN_LM_ROWS hidden rows gathered for the head (several sequences)
    __half *qh;
    bn_cuda_codes codes[2]; // ping-pong: one bitlinear reads one while the next is written
    float *q8k_d;           // tq: each 256-block's activation scale (codes[0].q holds the codes)
    int32_t *q8k_bsum;      // tq: each block's 8 sums of 32 codes
    void *attd_scratch;
    unsigned *counters; // BN_COUNTERS_PER_LAYER(n_head, decode_group) per layer
    void *head_in;        // BN_LM_ROWS rows of the head's input: f16/f32, or int8 codes
    float *head_xscale;   // q8: the input codes' scales
    int8_t *head_q;       // q8: V x E codes
    float *head_rs;       // q8: per-row 1/s
    float *head_scratch;  // the fused argmax's per-block results
    unsigned *head_counter;

    // pinned host staging, max_batch entries each
    int32_t *h_tok, *h_pos, *h_seq, *h_rows, *h_argmax;
    bn_top *h_top;
    double *h_top_sums;
    float *h_logits; // BN_LM_ROWS rows, made by the first call that wants logits

    double context_ms, upload_ms, tune_ms;
    bn_cuda_prof *prof; // NULL except while bench_cuda profiles a step
};

// Bytes of a device table of `type` elements, and of an I2_S tensor's codes.
static inline size_t bn_cuda_type_size(int type) { return type == BN_CUDA_F32 ? 4 : 2; }
static inline size_t bn_i2s_code_bytes(const bn_tensor *t) { return (size_t)(t->ne0 * t->ne1 / 4); }

// upload.cu: every weight, norm and table to its place in the arena; then the
// I2_S sanitize pass and a zeroed KV cache. Synchronous.
int bn_cuda_upload_model(bn_backend *be, bn_error *err);

// forward_cuda.cu
int bn_cuda_forward(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                    int n_tokens, float *logits, bool all_logits, bn_error *err);
int bn_cuda_forward_argmax(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                           int n_tokens, int32_t *argmax, bn_error *err);
int bn_cuda_forward_top(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n_tokens,
                        bn_top *top, double *exp_sums, bn_error *err);
int bn_cuda_copy_kv(bn_backend *be, int from, int to, int n_pos, bn_error *err);
// Times an FFN's bitlinears through the GEMVs and through the norm kernels and
// GEMMs at bn_crossover_sizes (up to `cap` tokens) and sets be->gemv_max where
// they cross (gemv_crossover.h). Call after the upload, before any forward; it
// leaves x, gu, att and the codes holding junk.
int bn_cuda_tune_gemv_max(bn_backend *be, int cap, bn_error *err);

#endif
