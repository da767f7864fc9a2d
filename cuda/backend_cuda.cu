// backend_cuda.cu - the CUDA backend: bn_cuda_backend (core/backend.h).
//
// create() checks the device, then uploads everything once into one device
// arena (a single cudaMalloc, carved in a fixed layout, so the size is known -
// and checked against cudaMemGetInfo - before anything is allocated):
// - weights in I2_S as in the file (see ternary_gemv.cu for why no repack), with
//   Q|K|V stacked into one matrix and gate|up into another, so one launch covers
//   each stack (they share one input quantization; each keeps its own scale);
// - f32 norm weights, the embedding table (shared with the LM head when tied),
//   the f16 KV cache [layer][n_ctx][n_head_kv*hd];
// - activations for max_batch tokens and logits for BN_LM_ROWS rows.
// Pinned host buffers carry token ids and positions in and logits/argmax out.
//
// forward() enqueues the whole step on one stream with no host synchronisation
// inside it; token ids and positions travel through device memory, so a decode
// step (n == 1) is captured once per output kind (none, logits, argmax) as a
// CUDA graph and replayed at every position. BITNET_CUDA_GRAPH=0 disables that.
//
// Per layer, decode (n <= BN_GEMV_MAX_TOKENS): 4 GEMVs with RMSNorm+quantization
// fused into their prologues (the residual add and the FFN's relu^2*up too) +
// rope_kv + attention = 6 launches. Prefill: a norm+quant kernel before each of
// the 4 tiled GEMMs.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_fp16.h>

extern "C" {
#include "backend.h"
}
#include "cuda_check.cuh"
#include "cuda_kernels.cuh"
#include "cuda_testing.cuh"

#define BN_CUDA_DEFAULT_MAX_BATCH 512 // same default as the CPU backend
#define BN_LM_ROWS 16                 // logit rows computed per LM-head pass
#define BN_GEMV_MAX_TOKENS 8          // above this the tiled GEMM wins
#define BN_CUBLAS_WS (32u << 20)      // cuBLAS workspace: fixed, so graphs can capture it
#define BN_ARENA_ALIGN 256

typedef struct bn_cuda_layer {
    const uint8_t *wqkv, *wo, *wgu, *wdown;
    bn_cuda_rowscale rs_qkv, rs_o, rs_gu, rs_down;
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm;
} bn_cuda_layer;

enum { BN_OUT_NONE = 0, BN_OUT_LOGITS = 1, BN_OUT_ARGMAX = 2, BN_OUT_KINDS = 3 };

struct bn_backend {
    const bn_model *m;
    bn_hparams hp;
    int n_ctx, max_batch;
    int nq, nkv, nqkv; // Q width, K (= V) width, Q|K|V width
    int device;
    cudaStream_t st;
    cublasHandle_t blas;
    bool use_graph;
    cudaGraphExec_t graph[BN_OUT_KINDS];

    // device arena and what is carved from it
    void *arena;
    size_t arena_bytes;
    bn_cuda_layer *layers; // host array of device pointers
    const void *embd, *head;
    int embd_type, head_type; // device types: F16 or F32 (a BF16 table is widened, see upload_table)
    const float *out_norm;
    float rope_theta_scale; // powf(base, -2/n_rot), as cpu/ops.c bn_rope_neox
    __half *kc, *vc;
    int32_t *d_tok, *d_pos, *d_argmax;
    float *x, *qkv, *att, *gu, *qs, *logits;
    __half *qh;
    int8_t *q8;
    int32_t *qsum;
    void *head_in;
    void *blas_ws;

    // pinned host staging
    int32_t *h_tok, *h_pos, *h_argmax;
    float *h_logits;

    double upload_ms;
};

// ---- device checks -----------------------------------------------------------

static int bn_cuda_probe(bn_error *err) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0))
        return bn_errorf(err, "no CUDA device");
    if (e == cudaErrorInsufficientDriver) {
        int drv = 0, rt = 0;
        (void)cudaDriverGetVersion(&drv);
        (void)cudaRuntimeGetVersion(&rt);
        if (drv == 0)
            return bn_errorf(err, "no CUDA device: no NVIDIA driver is installed (libcuda not found)");
        return bn_errorf(err,
                              "CUDA driver too old: it supports CUDA %d.%d, this build needs %d.%d",
                              drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
    }
    if (e != cudaSuccess) return bn_errorf(err, "CUDA unavailable: %s", cudaGetErrorString(e));
    int major = 0, minor = 0;
    BN_CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
    BN_CUDA_TRY(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
    if (major < 8)
        return bn_errorf(err, "CUDA device 0 has compute capability %d.%d; bitnet-gpu needs 8.0+",
                              major, minor);
    const cudaError_t ke = bn_cuda_kernel_image_check();
    if (ke != cudaSuccess)
        return bn_errorf(err, "no usable kernels for compute capability %d.%d (%s): rebuild with "
                              "CMAKE_CUDA_ARCHITECTURES including %d%d",
                              major, minor, cudaGetErrorString(ke), major, minor);
    return 0;
}

// ---- arena layout ------------------------------------------------------------

// Carves `bytes` from the arena at *off; with base == 0 it only measures.
static void *carve(uintptr_t base, size_t *off, size_t bytes) {
    void *p = (void *)(base + *off);
    *off += (bytes + BN_ARENA_ALIGN - 1) / BN_ARENA_ALIGN * BN_ARENA_ALIGN;
    return p;
}

static size_t type_size(int type) { return type == BN_CUDA_F32 ? 4 : 2; }

static size_t i2s_bytes(const bn_tensor *t) { return (size_t)(t->ne0 * t->ne1 / 4); }

// Assigns every device pointer from base and returns the arena size.
static size_t layout(bn_backend *be, uintptr_t base) {
    const bn_hparams *hp = &be->hp;
    const bn_model *m = be->m;
    const size_t B = (size_t)be->max_batch, E = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    size_t off = 0;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        bn_cuda_layer *C = &be->layers[l];
        C->wqkv = (const uint8_t *)carve(base, &off, i2s_bytes(&L->wq) + i2s_bytes(&L->wk) + i2s_bytes(&L->wv));
        C->wo = (const uint8_t *)carve(base, &off, i2s_bytes(&L->wo));
        C->wgu = (const uint8_t *)carve(base, &off, i2s_bytes(&L->w_gate) + i2s_bytes(&L->w_up));
        C->wdown = (const uint8_t *)carve(base, &off, i2s_bytes(&L->w_down));
        C->attn_norm = (const float *)carve(base, &off, E * 4);
        C->attn_sub_norm = (const float *)carve(base, &off, (size_t)be->nq * 4);
        C->ffn_norm = (const float *)carve(base, &off, E * 4);
        C->ffn_sub_norm = (const float *)carve(base, &off, F * 4);
    }
    be->embd = carve(base, &off, V * E * type_size(be->embd_type));
    be->head = m->output_tied ? be->embd : carve(base, &off, V * E * type_size(be->head_type));
    be->out_norm = (const float *)carve(base, &off, E * 4);
    const size_t kv = (size_t)hp->n_layer * (size_t)be->n_ctx * (size_t)be->nkv * sizeof(__half);
    be->kc = (__half *)carve(base, &off, kv);
    be->vc = (__half *)carve(base, &off, kv);
    be->d_tok = (int32_t *)carve(base, &off, B * 4);
    be->d_pos = (int32_t *)carve(base, &off, B * 4);
    be->d_argmax = (int32_t *)carve(base, &off, 4);
    be->x = (float *)carve(base, &off, B * E * 4);
    be->qkv = (float *)carve(base, &off, B * (size_t)be->nqkv * 4);
    be->att = (float *)carve(base, &off, B * (size_t)be->nq * 4);
    be->gu = (float *)carve(base, &off, B * 2 * F * 4);
    be->qh = (__half *)carve(base, &off, B * (size_t)be->nq * sizeof(__half));
    be->q8 = (int8_t *)carve(base, &off, B * (E > F ? E : F));
    be->qs = (float *)carve(base, &off, B * 4);
    be->qsum = (int32_t *)carve(base, &off, B * 4);
    be->head_in = carve(base, &off, BN_LM_ROWS * E * type_size(be->head_type));
    be->logits = (float *)carve(base, &off, BN_LM_ROWS * V * 4);
    be->blas_ws = carve(base, &off, BN_CUBLAS_WS);
    return off;
}

// ---- create / destroy ----------------------------------------------------------

static const char *type_name(uint32_t t) {
    switch (t) {
    case BN_GGML_F32: return "F32";
    case BN_GGML_F16: return "F16";
    case BN_GGML_BF16: return "BF16";
    case BN_GGML_I2_S: return "I2_S";
    default: return "an unsupported type";
    }
}

static bn_cuda_rowscale rowscale3(int r1, int r2, float s0, float s1, float s2) {
    bn_cuda_rowscale r = {r1, r2, s0, s1, s2};
    return r;
}

static int check_i2s(const bn_tensor *t, uint64_t K, uint64_t rows, bn_error *err) {
    if (t->type != BN_GGML_I2_S)
        return bn_errorf(err, "cuda: %s has type %s, expected I2_S", t->name,
                              type_name(t->type));
    if (t->ne0 != K || t->ne1 != rows || K % 128 != 0)
        return bn_errorf(err, "cuda: %s is [%llu, %llu], expected [%llu, %llu] (K %% 128 == 0)",
                              t->name, (unsigned long long)t->ne0, (unsigned long long)t->ne1,
                              (unsigned long long)K, (unsigned long long)rows);
    if (t->nbytes < K * rows / 4 || !t->data)
        return bn_errorf(err, "cuda: %s holds %llu bytes, needs %llu", t->name,
                              (unsigned long long)t->nbytes, (unsigned long long)(K * rows / 4));
    return 0;
}

static int check_vec(const bn_tensor *t, uint64_t n, bn_error *err) {
    if (!t->f32 || t->ne0 != n)
        return bn_errorf(err, "cuda: norm %s is missing or not %llu floats",
                              t->name ? t->name : "?", (unsigned long long)n);
    return 0;
}

static int check_model(const bn_model *m, bn_error *err) {
    const bn_hparams *hp = &m->hp;
    const uint64_t E = hp->n_embd, F = hp->n_ff, nq = (uint64_t)hp->n_head * hp->head_dim,
                   nkv = (uint64_t)hp->n_head_kv * hp->head_dim;
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv || hp->head_dim % 2 || hp->head_dim > 256 ||
        hp->n_rot > hp->head_dim || hp->n_rot % 2 || nq != E || E % 128 || F % 128)
        return bn_errorf(err, "cuda: unsupported shape (n_embd %u, n_ff %u, heads %u/%u, head_dim %u, "
                              "n_rot %u)", hp->n_embd, hp->n_ff, hp->n_head, hp->n_head_kv,
                              hp->head_dim, hp->n_rot);
    const uint32_t et = m->tok_embd.type, ht = m->output.type;
    if ((et != BN_GGML_F16 && et != BN_GGML_BF16 && et != BN_GGML_F32) ||
        (ht != BN_GGML_F16 && ht != BN_GGML_BF16 && ht != BN_GGML_F32))
        return bn_errorf(err, "cuda: embedding/output type %s/%s not supported",
                              type_name(et), type_name(ht));
    if (m->tok_embd.ne0 != E || m->tok_embd.ne1 != hp->n_vocab || m->output.ne0 != E ||
        m->output.ne1 != hp->n_vocab)
        return bn_errorf(err, "cuda: embedding/output shape does not match n_embd x n_vocab");
    if (check_vec(&m->output_norm, E, err)) return -1;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        if (check_i2s(&L->wq, E, nq, err) || check_i2s(&L->wk, E, nkv, err) ||
            check_i2s(&L->wv, E, nkv, err) || check_i2s(&L->wo, nq, E, err) ||
            check_i2s(&L->w_gate, E, F, err) || check_i2s(&L->w_up, E, F, err) ||
            check_i2s(&L->w_down, F, E, err) || check_vec(&L->attn_norm, E, err) ||
            check_vec(&L->attn_sub_norm, nq, err) || check_vec(&L->ffn_norm, E, err) ||
            check_vec(&L->ffn_sub_norm, F, err))
            return -1;
    }
    return 0;
}

static void bn_cuda_destroy(bn_backend *be) {
    if (!be) return;
    for (int k = 0; k < BN_OUT_KINDS; k++)
        if (be->graph[k]) (void)cudaGraphExecDestroy(be->graph[k]);
    if (be->blas) (void)cublasDestroy(be->blas);
    if (be->st) (void)cudaStreamDestroy(be->st);
    if (be->arena) (void)cudaFree(be->arena);
    if (be->h_tok) (void)cudaFreeHost(be->h_tok);
    if (be->h_pos) (void)cudaFreeHost(be->h_pos);
    if (be->h_argmax) (void)cudaFreeHost(be->h_argmax);
    if (be->h_logits) (void)cudaFreeHost(be->h_logits);
    free(be->layers);
    free(be);
}

// Host-to-device copy ordered on be->st. A plain cudaMemcpy runs on the legacy
// default stream, which a cudaStreamNonBlocking stream does not wait for, and for
// pageable memory it may return before the DMA lands: the sanitize kernels and
// memsets enqueued on be->st right after could then run on half-copied weights.
// From pageable memory cudaMemcpyAsync stages the data before returning, so the
// source may be reused at once; upload_weights synchronises be->st at the end.
static int upload(bn_backend *be, void *dst, const void *src, size_t bytes, bn_error *err) {
    BN_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, be->st));
    return 0;
}

// Device type of an embedding/head table. BF16 is widened to F32 (exact): the
// CPU oracle computes the head as f32(bf16 w) * f16-rounded input in f32, and
// cublasGemmEx needs A and B of one type, so a BF16 GEMM would have to round the
// input to bf16 (8 mantissa bits) instead of f16. An F32 GEMM with the
// f16-rounded input in f32 computes what the CPU does.
static int device_table_type(uint32_t host_type) {
    return host_type == BN_GGML_BF16 ? BN_CUDA_F32 : (int)host_type;
}

// Uploads an n-element embedding/head table in its device type.
static int upload_table(bn_backend *be, void *dst, const bn_tensor *t, size_t n, bn_error *err) {
    if (t->type != BN_GGML_BF16)
        return upload(be, dst, t->data, n * type_size(device_table_type(t->type)), err);
    const size_t chunk = (size_t)1 << 20;
    float *tmp = (float *)malloc(sizeof(float) * chunk);
    if (!tmp) return bn_errorf(err, "cuda: out of host memory");
    const uint16_t *src = (const uint16_t *)t->data;
    int rc = 0;
    for (size_t i0 = 0; i0 < n && rc == 0; i0 += chunk) {
        const size_t c = n - i0 < chunk ? n - i0 : chunk;
        for (size_t i = 0; i < c; i++) {
            const uint32_t u = (uint32_t)src[i0 + i] << 16; // bf16 is the top half of an f32
            memcpy(&tmp[i], &u, sizeof u);
        }
        // Pageable source: cudaMemcpyAsync stages it before returning, so tmp
        // may be refilled at once.
        rc = upload(be, (float *)dst + i0, tmp, sizeof(float) * c, err);
    }
    free(tmp);
    return rc;
}

static int upload_weights(bn_backend *be, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const bn_model *m = be->m;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        bn_cuda_layer *C = &be->layers[l];
        uint8_t *qkv = (uint8_t *)C->wqkv, *gu = (uint8_t *)C->wgu;
        const size_t bq = i2s_bytes(&L->wq), bk = i2s_bytes(&L->wk), bv = i2s_bytes(&L->wv);
        const size_t bgt = i2s_bytes(&L->w_gate), bup = i2s_bytes(&L->w_up);
        if (upload(be, qkv, L->wq.data, bq, err) || upload(be, qkv + bq, L->wk.data, bk, err) ||
            upload(be, qkv + bq + bk, L->wv.data, bv, err) ||
            upload(be, (void *)C->wo, L->wo.data, i2s_bytes(&L->wo), err) ||
            upload(be, gu, L->w_gate.data, bgt, err) || upload(be, gu + bgt, L->w_up.data, bup, err) ||
            upload(be, (void *)C->wdown, L->w_down.data, i2s_bytes(&L->w_down), err) ||
            upload(be, (void *)C->attn_norm, L->attn_norm.f32, hp->n_embd * 4, err) ||
            upload(be, (void *)C->attn_sub_norm, L->attn_sub_norm.f32, (size_t)be->nq * 4, err) ||
            upload(be, (void *)C->ffn_norm, L->ffn_norm.f32, hp->n_embd * 4, err) ||
            upload(be, (void *)C->ffn_sub_norm, L->ffn_sub_norm.f32, hp->n_ff * 4, err))
            return -1;
        BN_CUDA_TRY(bn_cuda_i2s_sanitize(qkv, (int64_t)(bq + bk + bv), be->st));
        BN_CUDA_TRY(bn_cuda_i2s_sanitize((uint8_t *)C->wo, (int64_t)i2s_bytes(&L->wo), be->st));
        BN_CUDA_TRY(bn_cuda_i2s_sanitize(gu, (int64_t)(bgt + bup), be->st));
        BN_CUDA_TRY(bn_cuda_i2s_sanitize((uint8_t *)C->wdown, (int64_t)i2s_bytes(&L->w_down), be->st));
        const int F = (int)hp->n_ff;
        C->rs_qkv = rowscale3(be->nq, be->nq + be->nkv, L->wq.scale, L->wk.scale, L->wv.scale);
        C->rs_o = bn_cuda_rowscale_one(L->wo.scale);
        C->rs_gu = rowscale3(F, 2 * F, L->w_gate.scale, L->w_up.scale, L->w_up.scale);
        C->rs_down = bn_cuda_rowscale_one(L->w_down.scale);
    }
    const size_t V = hp->n_vocab, E = hp->n_embd;
    if (upload_table(be, (void *)be->embd, &m->tok_embd, V * E, err)) return -1;
    if (!m->output_tied && upload_table(be, (void *)be->head, &m->output, V * E, err)) return -1;
    if (upload(be, (void *)be->out_norm, m->output_norm.f32, E * 4, err)) return -1;
    const size_t kv = (size_t)hp->n_layer * (size_t)be->n_ctx * (size_t)be->nkv * sizeof(__half);
    BN_CUDA_TRY(cudaMemsetAsync(be->kc, 0, kv, be->st));
    BN_CUDA_TRY(cudaMemsetAsync(be->vc, 0, kv, be->st));
    BN_CUDA_TRY(cudaStreamSynchronize(be->st));
    return 0;
}

static int create_impl(bn_backend *be, const bn_backend_config *cfg, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    if (bn_cuda_probe(err)) return -1;
    if (check_model(be->m, err)) return -1;
    be->device = 0;
    BN_CUDA_TRY(cudaSetDevice(be->device));

    be->n_ctx = cfg && cfg->n_ctx > 0 ? cfg->n_ctx : (int)hp->n_ctx_train;
    if ((uint32_t)be->n_ctx > hp->n_ctx_train)
        return bn_errorf(err, "cuda: context %d is longer than the model's %u", be->n_ctx,
                              hp->n_ctx_train);
    be->max_batch = cfg && cfg->max_batch > 0 ? cfg->max_batch : BN_CUDA_DEFAULT_MAX_BATCH;
    if (be->max_batch > be->n_ctx) be->max_batch = be->n_ctx;
    be->nq = (int)(hp->n_head * hp->head_dim);
    be->nkv = (int)(hp->n_head_kv * hp->head_dim);
    be->nqkv = be->nq + 2 * be->nkv;
    be->rope_theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    be->embd_type = device_table_type(be->m->tok_embd.type);
    be->head_type = device_table_type(be->m->output.type);
    const char *g = getenv("BITNET_CUDA_GRAPH");
    be->use_graph = !(g && strcmp(g, "0") == 0);

    be->layers = (bn_cuda_layer *)calloc(hp->n_layer ? hp->n_layer : 1, sizeof *be->layers);
    if (!be->layers) return bn_errorf(err, "cuda: out of host memory");
    be->arena_bytes = layout(be, 0);

    int max_smem = 0;
    BN_CUDA_TRY(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, be->device));
    // + 1 KiB: the kernel's static shared memory (reduction scratch) counts too.
    if (bn_cuda_attention_smem((int)hp->head_dim, be->n_ctx) + 1024 > (size_t)max_smem)
        return bn_errorf(err, "cuda: context %d needs %zu bytes of shared memory for attention, "
                              "the device has %d", be->n_ctx,
                              bn_cuda_attention_smem((int)hp->head_dim, be->n_ctx), max_smem);
    BN_CUDA_TRY(bn_cuda_attention_setup((int)hp->head_dim, be->n_ctx));

    size_t free_b = 0, total_b = 0;
    BN_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
    if (be->arena_bytes > free_b)
        return bn_errorf(err, "not enough device memory: need %zu MiB, have %zu MiB (of %zu MiB)",
                              (be->arena_bytes + (1u << 20) - 1) >> 20, free_b >> 20, total_b >> 20);

    BN_CUDA_TRY(cudaStreamCreateWithFlags(&be->st, cudaStreamNonBlocking));
    BN_CUDA_TRY(cudaMalloc(&be->arena, be->arena_bytes));
    layout(be, (uintptr_t)be->arena);
    BN_CUDA_TRY(cudaMallocHost((void **)&be->h_tok, sizeof(int32_t) * (size_t)be->max_batch));
    BN_CUDA_TRY(cudaMallocHost((void **)&be->h_pos, sizeof(int32_t) * (size_t)be->max_batch));
    BN_CUDA_TRY(cudaMallocHost((void **)&be->h_argmax, sizeof(int32_t)));
    BN_CUDA_TRY(cudaMallocHost((void **)&be->h_logits, sizeof(float) * BN_LM_ROWS * hp->n_vocab));
    BN_CUBLAS_TRY(cublasCreate(&be->blas));
    BN_CUBLAS_TRY(cublasSetStream(be->blas, be->st));
    BN_CUBLAS_TRY(cublasSetWorkspace(be->blas, be->blas_ws, BN_CUBLAS_WS));

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (upload_weights(be, err)) return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    be->upload_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    return 0;
}

static int bn_cuda_create(const bn_model *m, const bn_backend_config *cfg, bn_backend **out,
                          bn_error *err) {
    *out = NULL;
    // Refused rather than ignored: a silently exact head would make `bench` see the
    // CPU (int8 head) and CUDA disagree. With --backend auto the CPU takes over.
    if (cfg && cfg->lm_head_q8)
        return bn_errorf(err, "--lm-head q8 is CPU-only (the CUDA LM head is exact f16)");
    bn_backend *be = (bn_backend *)calloc(1, sizeof *be);
    if (!be) return bn_errorf(err, "cuda: out of host memory");
    be->m = m;
    be->hp = m->hp;
    if (create_impl(be, cfg, err)) {
        bn_cuda_destroy(be);
        return -1;
    }
    *out = be;
    return 0;
}

// ---- the forward pass ----------------------------------------------------------

// One bitlinear: y (=|+=) W . quant(rmsnorm(x, norm_w)), glu as in rmsnorm_quant.
static int bitlinear(bn_backend *be, const uint8_t *w, int K, int M, const float *x, int64_t ldx,
                     const float *norm_w, bool glu, int n, bn_cuda_rowscale rs, bool add, float *y,
                     int64_t ldy, bn_error *err) {
    const float eps = be->hp.norm_eps;
    if (n <= BN_GEMV_MAX_TOKENS) {
        BN_CUDA_TRY(bn_cuda_ternary_gemv_norm(w, K, M, x, ldx, norm_w, eps, glu, n, rs, add, y, ldy, be->st));
    } else {
        BN_CUDA_TRY(bn_cuda_rmsnorm_quant(x, ldx, norm_w, n, K, eps, glu, be->q8, be->qs, be->qsum, be->st));
        BN_CUDA_TRY(bn_cuda_ternary_gemm(w, K, M, be->q8, be->qs, be->qsum, n, rs, add, y, ldy, be->st));
    }
    return 0;
}

// Tokens/positions of this chunk are already in h_tok/h_pos. Leaves the final
// hidden states in be->x.
static int enqueue_layers(bn_backend *be, int n, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const int E = (int)hp->n_embd, F = (int)hp->n_ff;
    BN_CUDA_TRY(cudaMemcpyAsync(be->d_tok, be->h_tok, sizeof(int32_t) * (size_t)n,
                                cudaMemcpyHostToDevice, be->st));
    BN_CUDA_TRY(cudaMemcpyAsync(be->d_pos, be->h_pos, sizeof(int32_t) * (size_t)n,
                                cudaMemcpyHostToDevice, be->st));
    BN_CUDA_TRY(bn_cuda_embedding(be->embd, be->embd_type, be->d_tok, n, E, be->x, be->st));
    const size_t kv_layer = (size_t)be->n_ctx * (size_t)be->nkv;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const bn_cuda_layer *C = &be->layers[l];
        __half *kc = be->kc + l * kv_layer, *vc = be->vc + l * kv_layer;
        // attention block
        if (bitlinear(be, C->wqkv, E, be->nqkv, be->x, E, C->attn_norm, false, n, C->rs_qkv, false,
                      be->qkv, be->nqkv, err))
            return -1;
        BN_CUDA_TRY(bn_cuda_rope_kv(be->qkv, be->nqkv, be->d_pos, n, (int)hp->n_head, (int)hp->n_head_kv,
                                    (int)hp->head_dim, (int)hp->n_rot, be->rope_theta_scale, be->qh, kc, vc,
                                    be->st));
        BN_CUDA_TRY(bn_cuda_attention(be->qh, kc, vc, be->d_pos, n, (int)hp->n_head, (int)hp->n_head_kv,
                                      (int)hp->head_dim, be->n_ctx, be->att, be->st));
        if (bitlinear(be, C->wo, be->nq, E, be->att, be->nq, C->attn_sub_norm, false, n, C->rs_o, true,
                      be->x, E, err))
            return -1;
        // feed-forward block: gate|up, then relu(gate)^2*up fused into the sub-norm
        if (bitlinear(be, C->wgu, E, 2 * F, be->x, E, C->ffn_norm, false, n, C->rs_gu, false, be->gu,
                      2 * F, err))
            return -1;
        if (bitlinear(be, C->wdown, F, E, be->gu, 2 * F, C->ffn_sub_norm, true, n, C->rs_down, true,
                      be->x, E, err))
            return -1;
    }
    return 0;
}

static cudaDataType_t head_dtype(int type) { return type == BN_CUDA_F16 ? CUDA_R_16F : CUDA_R_32F; }

// Logits of hidden rows [row0, row0 + rows) into be->logits, then the output
// kind's copy back to pinned memory.
static int enqueue_head(bn_backend *be, int row0, int rows, int kind, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const int E = (int)hp->n_embd, V = (int)hp->n_vocab;
    BN_CUDA_TRY(bn_cuda_rmsnorm_cast(be->x + (size_t)row0 * E, E, be->out_norm, rows, E, hp->norm_eps,
                                     be->head_type, be->head_in, be->st));
    const float one = 1.f, zero = 0.f;
    const cudaDataType_t dt = head_dtype(be->head_type);
    BN_CUBLAS_TRY(cublasGemmEx(be->blas, CUBLAS_OP_T, CUBLAS_OP_N, V, rows, E, &one, be->head, dt, E,
                               be->head_in, dt, E, &zero, be->logits, CUDA_R_32F, V,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (kind == BN_OUT_ARGMAX) {
        BN_CUDA_TRY(bn_cuda_argmax(be->logits + (size_t)(rows - 1) * V, V, be->d_argmax, be->st));
        BN_CUDA_TRY(cudaMemcpyAsync(be->h_argmax, be->d_argmax, sizeof(int32_t), cudaMemcpyDeviceToHost,
                                    be->st));
    } else {
        BN_CUDA_TRY(cudaMemcpyAsync(be->h_logits, be->logits, sizeof(float) * (size_t)rows * V,
                                    cudaMemcpyDeviceToHost, be->st));
    }
    return 0;
}

// A decode step of one token with output `kind`, enqueued on the stream.
static int enqueue_decode(bn_backend *be, int kind, bn_error *err) {
    if (enqueue_layers(be, 1, err)) return -1;
    return kind == BN_OUT_NONE ? 0 : enqueue_head(be, 0, 1, kind, err);
}

// Captures enqueue_decode once as a graph (after one eager run of the same step,
// see forward_impl). On failure the stream leaves capture mode and graphs are
// switched off for this backend: every step then runs eagerly.
static void capture_decode(bn_backend *be, int kind) {
    bn_error cerr;
    cudaGraph_t graph = NULL;
    if (cudaStreamBeginCapture(be->st, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        be->use_graph = false;
        (void)cudaGetLastError();
        return;
    }
    const int rc = enqueue_decode(be, kind, &cerr);
    const cudaError_t e = cudaStreamEndCapture(be->st, &graph);
    if (rc == 0 && e == cudaSuccess && graph &&
        cudaGraphInstantiate(&be->graph[kind], graph, 0) == cudaSuccess) {
        (void)cudaGraphDestroy(graph);
        return;
    }
    if (graph) (void)cudaGraphDestroy(graph);
    be->graph[kind] = NULL;
    be->use_graph = false;
    (void)cudaGetLastError(); // the eager run reports any real error itself
}

static int forward_impl(bn_backend *be, const int32_t *tokens, const int32_t *pos, int n_tokens,
                        float *logits, bool all_logits, int32_t *argmax, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const int V = (int)hp->n_vocab;
    if (n_tokens <= 0 || !tokens || !pos)
        return bn_errorf(err, "cuda: forward needs at least one token and its position");
    for (int i = 0; i < n_tokens; i++) {
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
            return bn_errorf(err, "cuda: token id %d out of range [0, %u)", tokens[i], hp->n_vocab);
        if (pos[i] < 0 || pos[i] >= be->n_ctx)
            return bn_errorf(err, "cuda: position %d out of range [0, %d)", pos[i], be->n_ctx);
    }
    BN_CUDA_TRY(cudaSetDevice(be->device));
    const int kind = argmax ? BN_OUT_ARGMAX : (logits ? BN_OUT_LOGITS : BN_OUT_NONE);

    if (n_tokens == 1 && be->use_graph && be->graph[kind]) {
        be->h_tok[0] = tokens[0];
        be->h_pos[0] = pos[0];
        BN_CUDA_TRY(cudaGraphLaunch(be->graph[kind], be->st));
        BN_CUDA_TRY(cudaStreamSynchronize(be->st));
        if (kind == BN_OUT_ARGMAX) *argmax = be->h_argmax[0];
        if (kind == BN_OUT_LOGITS) memcpy(logits, be->h_logits, sizeof(float) * (size_t)V);
        return 0;
    }

    // Eager path: chunks of max_batch tokens; K/V of earlier chunks are in the cache.
    for (int c0 = 0; c0 < n_tokens; c0 += be->max_batch) {
        const int n = n_tokens - c0 < be->max_batch ? n_tokens - c0 : be->max_batch;
        const bool last = c0 + n == n_tokens;
        // The previous chunk's copies out of h_tok/h_pos finished at its synchronise.
        memcpy(be->h_tok, tokens + c0, sizeof(int32_t) * (size_t)n);
        memcpy(be->h_pos, pos + c0, sizeof(int32_t) * (size_t)n);
        if (enqueue_layers(be, n, err)) return -1;
        if (kind == BN_OUT_LOGITS && all_logits) {
            for (int r0 = 0; r0 < n; r0 += BN_LM_ROWS) {
                const int rows = n - r0 < BN_LM_ROWS ? n - r0 : BN_LM_ROWS;
                if (enqueue_head(be, r0, rows, kind, err)) return -1;
                BN_CUDA_TRY(cudaStreamSynchronize(be->st));
                memcpy(logits + (size_t)(c0 + r0) * V, be->h_logits, sizeof(float) * (size_t)rows * V);
            }
        } else if (kind != BN_OUT_NONE && last) {
            if (enqueue_head(be, n - 1, 1, kind, err)) return -1;
            BN_CUDA_TRY(cudaStreamSynchronize(be->st));
            if (kind == BN_OUT_ARGMAX) *argmax = be->h_argmax[0];
            else memcpy(logits, be->h_logits, sizeof(float) * (size_t)V);
        } else {
            BN_CUDA_TRY(cudaStreamSynchronize(be->st));
        }
    }
    // The first decode step of each output kind ran eagerly above; capture it now
    // for the next ones. Capturing before any eager run would put first-use work
    // inside the capture: lazy loading of this module's kernels (the CUDA 12
    // default) and cuBLAS's first-call setup for the head GEMM, either of which
    // can make capture fail or, worse, silently drop graphs for the session.
    // Capture executes nothing, so h_tok/h_pos need no particular content.
    if (n_tokens == 1 && be->use_graph && !be->graph[kind]) capture_decode(be, kind);
    return 0;
}

static int bn_cuda_forward(bn_backend *be, const int32_t *tokens, const int32_t *pos, int n_tokens,
                           float *logits, bool all_logits, bn_error *err) {
    return forward_impl(be, tokens, pos, n_tokens, logits, all_logits, NULL, err);
}

static int bn_cuda_forward_argmax(bn_backend *be, const int32_t *tokens, const int32_t *pos,
                                  int n_tokens, int32_t *argmax, bn_error *err) {
    if (!argmax) return bn_errorf(err, "cuda: forward_argmax needs an output");
    return forward_impl(be, tokens, pos, n_tokens, NULL, false, argmax, err);
}

static uint64_t bn_cuda_memory_bytes(const bn_backend *be) { return be ? be->arena_bytes : 0; }

// ---- C-callable extras (cuda_testing.cuh) ------------------------------------------

extern "C" int bn_cuda_probe_device(bn_error *err) { return bn_cuda_probe(err); }

extern "C" void bn_cuda_backend_stats(const bn_backend *be, bn_cuda_stats *out) {
    memset(out, 0, sizeof *out);
    if (!be) return;
    out->upload_ms = be->upload_ms;
    out->device_bytes = be->arena_bytes;
    out->graphs = be->use_graph;
}

extern "C" const bn_backend_ops bn_cuda_backend = {
    "cuda",
    bn_cuda_probe,
    bn_cuda_create,
    bn_cuda_destroy,
    bn_cuda_forward,
    bn_cuda_forward_argmax,
    bn_cuda_memory_bytes,
};
