// backend_cuda.cu - the CUDA backend: bn_cuda_backend (core/backend.h).
//
// create() checks the device and the model, then uploads everything once into
// one device arena (a single cudaMalloc, carved in a fixed layout, so the size is
// known - and checked against cudaMemGetInfo - before anything is allocated):
// - weights in I2_S as in the file (see ternary_gemv.cu for why no repack), with
//   Q|K|V stacked into one matrix and gate|up into another, so one launch covers
//   each stack (they share one input quantization; each keeps its own scale);
// - f32 norm weights, the embedding table (shared with the LM head when tied),
//   the f16 KV cache [layer][sequence slot][kv head][n_ctx][head_dim] (each
//   layer's slot is the [kv head][n_ctx][head_dim] block the kernels take);
// - activations for max_batch tokens, two sets of int8 bitlinear inputs, the
//   decode attention's scratch and the kernels' last-block counters (for up to
//   decode_group tokens of different sequences at once), and logits
//   for BN_LM_ROWS rows.
// Pinned host buffers carry token ids and positions in and logits, argmax ids or
// top entries out (the logits one made on first use, see forward_cuda.cu).
// The forward pass is in forward_cuda.cu, the upload in upload.cu.
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_cuda.cuh"
#include "clock.h"
#include "cuda_check.cuh"
#include "cuda_testing.cuh"

// Prefill chunk: bench_cuda on an H200 (2026-12-04), 4096-token prompt of the
// 2B-4T shape: 56k tok/s in one chunk of 4096, 35k in chunks of 512 (the larger
// GEMMs fill the tensor cores; fewer passes over the cache). The activations
// for 4096 tokens take about 0.5 GB.
#define BN_CUDA_DEFAULT_MAX_BATCH 4096
#define BN_ARENA_ALIGN 256

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

// Whether a device may be usable, told without loading the driver library: the
// NVIDIA kernel driver's control device exists (it does wherever a GPU is, on
// the host and in containers given one). The probe above initializes the
// driver, which is part of the start a session on the CPU overlaps.
static bool bn_cuda_maybe_present(void) { return access("/dev/nvidiactl", F_OK) == 0; }

// ---- prewarm: the context while the model loads ---------------------------------

// Creating the CUDA context takes about 0.3 s on an H200 host
// (docs/cuda-performance.md), longer than loading a 2B model from the page cache,
// and needs no model: bn_backend_prewarm starts it on a thread of its own, create() and
// bn_backend_prewarm_wait join it. A failure here is not reported: create()'s
// own probe finds it again and says why.
static pthread_mutex_t g_prewarm_lock = PTHREAD_MUTEX_INITIALIZER; // sessions may be made on any thread
static pthread_t g_prewarm;
static bool g_prewarm_running;

static void *prewarm_main(void *arg) {
    (void)arg;
    // Only a device create() would take: no context spent on one too old to run.
    int n = 0, major = 0;
    if (cudaGetDeviceCount(&n) == cudaSuccess && n > 0 &&
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess && major >= 8)
        (void)cudaFree(0); // the primary context of device 0
    return NULL;
}

static void bn_cuda_prewarm(void) {
    pthread_mutex_lock(&g_prewarm_lock);
    if (!g_prewarm_running) g_prewarm_running = pthread_create(&g_prewarm, NULL, prewarm_main, NULL) == 0;
    pthread_mutex_unlock(&g_prewarm_lock);
}

static void bn_cuda_prewarm_wait(void) {
    pthread_mutex_lock(&g_prewarm_lock);
    if (g_prewarm_running) {
        (void)pthread_join(g_prewarm, NULL);
        g_prewarm_running = false;
    }
    pthread_mutex_unlock(&g_prewarm_lock);
}

// ---- arena layout ------------------------------------------------------------

// Carves `bytes` from the arena at *off; with base == 0 it only measures.
static void *carve(uintptr_t base, size_t *off, size_t bytes) {
    void *p = (void *)(base + *off);
    *off += (bytes + BN_ARENA_ALIGN - 1) / BN_ARENA_ALIGN * BN_ARENA_ALIGN;
    return p;
}

// Assigns every device pointer from base and returns the arena size.
static size_t layout(bn_backend *be, uintptr_t base) {
    const bn_hparams *hp = &be->hp;
    const bn_model *m = be->m;
    const size_t B = (size_t)be->max_batch, E = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    size_t off = 0;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        bn_cuda_layer *C = &be->layers[l];
        C->wqkv = (const uint8_t *)carve(base, &off, bn_i2s_code_bytes(&L->wq) + bn_i2s_code_bytes(&L->wk) + bn_i2s_code_bytes(&L->wv));
        C->wo = (const uint8_t *)carve(base, &off, bn_i2s_code_bytes(&L->wo));
        C->wgu = (const uint8_t *)carve(base, &off, bn_i2s_code_bytes(&L->w_gate) + bn_i2s_code_bytes(&L->w_up));
        C->wdown = (const uint8_t *)carve(base, &off, bn_i2s_code_bytes(&L->w_down));
        C->attn_norm = (const float *)carve(base, &off, E * 4);
        C->attn_sub_norm = (const float *)carve(base, &off, (size_t)be->nq * 4);
        C->ffn_norm = (const float *)carve(base, &off, E * 4);
        C->ffn_sub_norm = (const float *)carve(base, &off, F * 4);
        // Per-row weight scales of the stacks: Q|K|V, and gate|up (rows [0,F) gate, [F,2F) up).
        C->rs_qkv = bn_cuda_rowscale{be->nq, be->nq + be->nkv, L->wq.scale, L->wk.scale, L->wv.scale,
                                     L->wq.out_scale, L->wk.out_scale, L->wv.out_scale};
        C->rs_o = bn_cuda_rowscale_one(L->wo.scale, L->wo.out_scale);
        C->rs_gu = bn_cuda_rowscale{(int32_t)F, 2 * (int32_t)F, L->w_gate.scale, L->w_up.scale, L->w_up.scale,
                                    L->w_gate.out_scale, L->w_up.out_scale, L->w_up.out_scale};
        C->rs_down = bn_cuda_rowscale_one(L->w_down.scale, L->w_down.out_scale);
    }
    be->embd = carve(base, &off, V * E * bn_cuda_type_size(be->embd_type));
    be->head = m->output_tied ? be->embd : carve(base, &off, V * E * bn_cuda_type_size(be->head_type));
    be->out_norm = (const float *)carve(base, &off, E * 4);
    be->kv_bytes = (size_t)hp->n_layer * (size_t)be->n_seq * (size_t)be->n_ctx * (size_t)be->nkv * sizeof(__half);
    be->kc = (__half *)carve(base, &off, be->kv_bytes);
    be->vc = (__half *)carve(base, &off, be->kv_bytes);
    be->d_tok = (int32_t *)carve(base, &off, B * 4);
    be->d_pos = (int32_t *)carve(base, &off, B * 4);
    be->d_seq = (int32_t *)carve(base, &off, B * 4);
    be->d_rows = (int32_t *)carve(base, &off, B * 4);
    be->d_argmax = (int32_t *)carve(base, &off, B * 4);
    be->d_top = (bn_top *)carve(base, &off, B * BN_TOP_MAX * sizeof(bn_top));
    be->d_top_sums = (double *)carve(base, &off, B * sizeof(double));
    be->x = (float *)carve(base, &off, B * E * 4);
    be->qkv = (float *)carve(base, &off, B * (size_t)be->nqkv * 4);
    be->att = (float *)carve(base, &off, B * (size_t)be->nq * 4);
    be->gu = (float *)carve(base, &off, B * 2 * F * 4);
    be->qh = (__half *)carve(base, &off, B * (size_t)be->nq * sizeof(__half));
    for (int i = 0; i < 2; i++) {
        be->codes[i].q = (int8_t *)carve(base, &off, B * (E > F ? E : F));
        be->codes[i].s = (float *)carve(base, &off, B * 4);
        be->codes[i].qsum = (int32_t *)carve(base, &off, B * 4);
    }
    be->q8k_d = be->tq ? (float *)carve(base, &off, B * ((E > F ? E : F) / 256) * 4) : NULL;
    be->q8k_bsum = be->tq ? (int32_t *)carve(base, &off, B * ((E > F ? E : F) / 32) * 4) : NULL;
    be->attd_scratch = carve(base, &off, bn_cuda_attd_scratch_bytes(be->decode_group, (int)hp->n_head,
                                                                   (int)hp->head_dim, be->n_ctx, be->attd_split));
    be->counter_bytes = sizeof(unsigned) * hp->n_layer * BN_COUNTERS_PER_LAYER(hp->n_head, be->decode_group);
    be->counters = (unsigned *)carve(base, &off, be->counter_bytes);
    be->d_layers = (bn_cuda_layer *)carve(base, &off, sizeof(bn_cuda_layer) * (hp->n_layer ? hp->n_layer : 1));
    be->persist_sync = (unsigned *)carve(base, &off, 2 * sizeof(unsigned));
    be->head_x = be->n_seq > 1 ? (float *)carve(base, &off, BN_LM_ROWS * E * 4) : NULL;
    be->head_in = carve(base, &off, BN_LM_ROWS * E * bn_cuda_type_size(be->head_type));
    be->head_xscale = (float *)carve(base, &off, BN_LM_ROWS * 4);
    be->head_q = be->head_q8 ? (int8_t *)carve(base, &off, V * E) : NULL;
    be->head_rs = be->head_q8 ? (float *)carve(base, &off, V * 4) : NULL;
    be->head_scratch = (float *)carve(base, &off, bn_cuda_head_scratch_bytes((int)V));
    be->head_counter = (unsigned *)carve(base, &off, sizeof(unsigned));
    be->logits = (float *)carve(base, &off, BN_LM_ROWS * V * 4);
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
    // TQ1_0/TQ2_0 weights keep llama.cpp's activations per block of 256 (model.h),
    // which the loader's repack has already required of their widths.
    if (hp->n_layer && m->layers[0].wq.act_block && (E % 256 || F % 256))
        return bn_errorf(err, "cuda: TQ weights need widths that are multiples of 256 (n_embd %u, n_ff %u)",
                         hp->n_embd, hp->n_ff);
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
            check_vec(&L->ffn_norm, E, err) ||
            (hp->sub_norms && (check_vec(&L->attn_sub_norm, nq, err) || check_vec(&L->ffn_sub_norm, F, err))))
            return -1;
    }
    return 0;
}

static void bn_cuda_destroy(bn_backend *be) {
    if (!be) return;
    // The caller's thread may have another device current (or none yet): the
    // frees below act on the current one.
    (void)cudaSetDevice(be->device);
    for (int r = 0; r < BN_DECODE_FORMS; r++)
        for (int k = 0; k < BN_OUT_KINDS; k++)
            if (be->graph[r][k]) (void)cudaGraphExecDestroy(be->graph[r][k]);
    if (be->st) (void)cudaStreamDestroy(be->st);
    if (be->arena) (void)cudaFree(be->arena);
    if (be->h_tok) (void)cudaFreeHost(be->h_tok);
    if (be->h_pos) (void)cudaFreeHost(be->h_pos);
    if (be->h_seq) (void)cudaFreeHost(be->h_seq);
    if (be->h_rows) (void)cudaFreeHost(be->h_rows);
    if (be->h_argmax) (void)cudaFreeHost(be->h_argmax);
    if (be->h_top) (void)cudaFreeHost(be->h_top);
    if (be->h_top_sums) (void)cudaFreeHost(be->h_top_sums);
    if (be->h_logits) (void)cudaFreeHost(be->h_logits);
    free(be->layers);
    free(be->piece);
    free(be);
}

// Device type of an embedding/head table. BF16 is widened to F32 (exact): the
// CPU oracle computes the head as f32(bf16 w) * f16-rounded input in f32, which
// the f32 head GEMV (lm_head_gemv.cu) computes too.
static int device_table_type(uint32_t host_type) {
    return host_type == BN_GGML_BF16 ? BN_CUDA_F32 : (int)host_type;
}

static bool env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

// Below which position a decode token takes the one-kernel attention
// (attention_decode_short.cu): BITNET_CUDA_ATTD_SHORT=N asks for N keys (0 or
// unset: never), capped by what the device's shared memory holds for the shape.
// Off by default until a GPU run has measured it against the split pair.
static int choose_attd_short(const bn_hparams *hp, int n_ctx) {
    const char *v = getenv("BITNET_CUDA_ATTD_SHORT");
    int n = v ? atoi(v) : 0;
    if (n <= 0) return 0;
    const int cap = bn_cuda_attd_short_keys((int)hp->n_head, (int)hp->n_head_kv, (int)hp->head_dim, (int)hp->n_rot);
    if (n > cap) n = cap;
    return n < n_ctx ? n : n_ctx;
}

// Below which position a decode step of one sequence runs as the persistent
// kernel (decode_persistent.cu): BITNET_CUDA_PERSIST=N (0 or unset: never), up
// to the context; never where its plan for this device and shape does not fit
// (persist_plan.h). The plan holds the one-kernel attention for up to attd_short
// keys where it can (call after attd_short is chosen). Its weight ring takes
// what fits, or at most BITNET_CUDA_PERSIST_RING bytes (for the tests, which
// force chunks of a row, and for timing how deep the ring must be). Off by
// default until a GPU run has measured it.
static int choose_persist(bn_backend *be) {
    const bn_hparams *hp = &be->hp;
    const char *v = getenv("BITNET_CUDA_PERSIST"), *ring = getenv("BITNET_CUDA_PERSIST_RING");
    const int n = v ? atoi(v) : 0;
    const unsigned long long ring_cap = ring ? strtoull(ring, NULL, 10) : 0; // 0 (or junk): no cap
    // TQ: the kernels only. BITNET_CUDA_NORM=last: the kernels' steps quantize the
    // O input on 128 threads, the persistent kernel on 512 (another order of adds).
    if (n <= 0 || be->plain_attention || be->tq || be->norm_last || hp->n_layer == 0) return 0;
    if (!bn_cuda_persist_plan(&be->persist_plan, (int)hp->n_embd, (int)hp->n_ff, (int)hp->n_head, (int)hp->n_head_kv,
                              (int)hp->head_dim, (int)hp->n_rot, be->n_ctx, be->attd_short, (size_t)ring_cap))
        return 0;
    return n < be->n_ctx ? n : be->n_ctx;
}

// Tokens a block of the mma GEMM takes: BITNET_CUDA_GEMM_TILE=32, 64 or 128, or
// "auto" (0: the narrowest tile that holds the batch, bn_cuda_gemm_mma_tile).
// 128, the tile every prefill figure in docs/cuda-performance.md was measured
// with, until a GPU run has timed the narrower ones on small batches.
static int choose_gemm_tile(void) {
    const char *v = getenv("BITNET_CUDA_GEMM_TILE");
    if (v && !strcmp(v, "auto")) return 0;
    const int t = v ? atoi(v) : 128;
    return t == 32 || t == 64 ? t : 128;
}

// The most tokens the GEMV can take: what its shared memory holds at the widest
// input, and no more than a chunk.
static int gemv_cap(const bn_backend *be) {
    const bn_hparams *hp = &be->hp;
    const int cap = bn_cuda_gemv_max_tokens((int)(hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd));
    return cap < be->max_batch ? cap : be->max_batch;
}

// How many tokens the GEMV path takes: BITNET_CUDA_GEMV_MAX (for bench_cuda's
// sweep), else the default until create() has timed the GEMV against the GEMM
// on this card (bn_cuda_tune_gemv_max); never more than gemv_cap.
static int choose_gemv_max(const bn_backend *be) {
    const int cap = gemv_cap(be);
    const char *v = getenv("BITNET_CUDA_GEMV_MAX");
    int n = v ? atoi(v) : BN_CUDA_GEMV_MAX_DEFAULT;
    if (n < 0) n = 0;
    return n < cap ? n : cap;
}

static int create_impl(bn_backend *be, const bn_backend_config *cfg, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const double t0 = bn_now_ms();
    bn_cuda_prewarm_wait();
    if (bn_cuda_probe(err)) return -1;
    if (check_model(be->m, err)) return -1;
    be->device = 0;
    BN_CUDA_TRY(cudaSetDevice(be->device));

    be->n_ctx = cfg && cfg->n_ctx > 0 ? cfg->n_ctx : (int)hp->n_ctx_train;
    if ((uint32_t)be->n_ctx > hp->n_ctx_train)
        return bn_errorf(err, "cuda: context %d is longer than the model's %u", be->n_ctx,
                              hp->n_ctx_train);
    be->n_seq = cfg && cfg->n_seq > 0 ? cfg->n_seq : 1;
    be->max_batch = cfg && cfg->max_batch > 0 ? cfg->max_batch : BN_CUDA_DEFAULT_MAX_BATCH;
    if (be->max_batch > be->n_ctx) be->max_batch = be->n_ctx;
    be->nq = (int)(hp->n_head * hp->head_dim);
    be->nkv = (int)(hp->n_head_kv * hp->head_dim);
    be->nqkv = be->nq + 2 * be->nkv;
    be->rope_theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    be->embd_type = device_table_type(be->m->tok_embd.type);
    be->head_type = device_table_type(be->m->output.type);
    // A decode graph bakes in its slot's KV pointers, so graphs serve one slot only.
    be->use_graph = !env_is("BITNET_CUDA_GRAPH", "0") && be->n_seq == 1;
    int major = 0;
    BN_CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, be->device));
    be->use_pdl = major >= 9 && !env_is("BITNET_CUDA_PDL", "0");
    // The decode kernel reads K/V rows in 16-byte pieces (head_dim % 8 == 0).
    be->plain_attention = env_is("BITNET_CUDA_ATTN", "plain") || hp->head_dim % 8 != 0;
    be->dp4a_gemm = env_is("BITNET_CUDA_GEMM", "dp4a");
    be->gemm_tile = choose_gemm_tile();
    be->tq = hp->n_layer && be->m->layers[0].wq.act_block != 0;
    be->tq_mma = be->tq && env_is("BITNET_CUDA_TQ", "mma");
    be->norm_last = env_is("BITNET_CUDA_NORM", "last") && !be->tq; // a TQ bitlinear quantizes its own input
    be->head_q8 = cfg && cfg->lm_head_q8;
    be->gemv_max = choose_gemv_max(be);
    be->attd_split = bn_cuda_attd_splits(be->n_ctx);
    be->attd_short = be->plain_attention ? 0 : choose_attd_short(hp, be->n_ctx);
    be->persist = choose_persist(be);
    be->batch_seqs = be->n_seq > 1 && !env_is("BITNET_CUDA_BATCH", "0");
    be->decode_group = be->batch_seqs ? be->n_seq : 1;
    if (be->decode_group > be->max_batch) be->decode_group = be->max_batch;
    if (be->decode_group > BN_CUDA_DECODE_GROUP_MAX) be->decode_group = BN_CUDA_DECODE_GROUP_MAX;

    be->layers = (bn_cuda_layer *)calloc(hp->n_layer ? hp->n_layer : 1, sizeof *be->layers);
    be->piece = (bn_cuda_piece *)calloc((size_t)be->n_seq, sizeof *be->piece);
    if (!be->layers || !be->piece) return bn_errorf(err, "cuda: out of host memory");
    be->arena_bytes = layout(be, 0);

    // The plain attention kernel keeps a row of scores in shared memory.
    if (be->plain_attention || !bn_cuda_attention_prefill_supported((int)hp->head_dim)) {
        int max_smem = 0;
        BN_CUDA_TRY(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, be->device));
        // + 1 KiB: the kernel's static shared memory (reduction scratch) counts too.
        if (bn_cuda_attention_smem((int)hp->head_dim, be->n_ctx) + 1024 > (size_t)max_smem)
            return bn_errorf(err, "cuda: context %d needs %zu bytes of shared memory for attention "
                                  "with head_dim %u, the device has %d", be->n_ctx,
                                  bn_cuda_attention_smem((int)hp->head_dim, be->n_ctx), hp->head_dim,
                                  max_smem);
        BN_CUDA_TRY(bn_cuda_attention_setup((int)hp->head_dim, be->n_ctx));
    }

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
    BN_CUDA_TRY(cudaMallocHost((void **)&be->h_seq, sizeof(int32_t) * (size_t)be->max_batch));
    BN_CUDA_TRY(cudaMallocHost((void **)&be->h_rows, sizeof(int32_t) * (size_t)be->max_batch));
    BN_CUDA_TRY(cudaMallocHost((void **)&be->h_argmax, sizeof(int32_t) * (size_t)be->max_batch));
    BN_CUDA_TRY(cudaMallocHost((void **)&be->h_top, sizeof(bn_top) * BN_TOP_MAX * (size_t)be->max_batch));
    BN_CUDA_TRY(cudaMallocHost((void **)&be->h_top_sums, sizeof(double) * (size_t)be->max_batch));
    be->context_ms = bn_now_ms() - t0;

    const double t1 = bn_now_ms();
    if (bn_cuda_upload_model(be, err)) return -1;
    be->upload_ms = bn_now_ms() - t1;
    // Where the GEMV stops paying on this card, unless BITNET_CUDA_GEMV_MAX says
    // (or BITNET_CUDA_NORM=last, whose results depend on which path a batch takes:
    // the attention's own norm quantizes the O input of a GEMV batch).
    const double t2 = bn_now_ms();
    if (!getenv("BITNET_CUDA_GEMV_MAX") && !be->norm_last && bn_cuda_tune_gemv_max(be, gemv_cap(be), err)) return -1;
    be->tune_ms = bn_now_ms() - t2;
    return 0;
}

static int bn_cuda_create(const bn_model *m, const bn_backend_config *cfg, bn_backend **out,
                          bn_error *err) {
    *out = NULL;
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

static uint64_t bn_cuda_memory_bytes(const bn_backend *be) { return be ? be->arena_bytes : 0; }

// The I2_S codes (their scales are launch parameters) and the LM head as the
// device holds it: int8 with a float scale per row, or the table (BF16 widened to F32).
static uint64_t bn_cuda_decode_bytes(const bn_backend *be) {
    uint64_t bytes = 0;
    for (uint32_t l = 0; l < be->hp.n_layer; l++) {
        const bn_tensor *w[BN_LAYER_TERNARY];
        bn_layer_ternary(&be->m->layers[l], w);
        for (int i = 0; i < BN_LAYER_TERNARY; i++) bytes += bn_i2s_code_bytes(w[i]);
    }
    const uint64_t V = be->hp.n_vocab, E = be->hp.n_embd;
    return bytes + (be->head_q8 ? V * E + V * sizeof(float) : V * E * bn_cuda_type_size(be->head_type));
}

// ---- C-callable extras (cuda_testing.cuh) ------------------------------------------

extern "C" int bn_cuda_probe_device(bn_error *err) { return bn_cuda_probe(err); }

extern "C" void bn_cuda_backend_stats(const bn_backend *be, bn_cuda_stats *out) {
    memset(out, 0, sizeof *out);
    if (!be) return;
    out->context_ms = be->context_ms;
    out->upload_ms = be->upload_ms;
    out->device_bytes = be->arena_bytes;
    out->graphs = be->use_graph;
    out->pdl = be->use_pdl;
    out->plain_attention = be->plain_attention;
    out->gemv_max = be->gemv_max;
    out->tune_ms = be->tune_ms;
    out->tuned_sizes = be->tuned_sizes;
    for (int i = 0; i < be->tuned_sizes; i++) {
        out->tuned_batch[i] = bn_crossover_sizes[i];
        out->tuned_gemv_us[i] = be->tuned_gemv_us[i];
        out->tuned_gemm_us[i] = be->tuned_gemm_us[i];
    }
    out->attd_split = be->attd_split;
    out->attd_short = be->attd_short;
    out->persist = be->persist;
    out->persist_ring = be->persist ? (int)be->persist_plan.work : 0;
    out->persist_chunks = be->persist ? be->persist_plan.layer_chunks : 0;
    out->gemm_tile = be->gemm_tile;
    out->tq = be->tq ? (be->tq_mma ? 2 : 1) : 0;
    out->graph_error = be->graph_error;
}

extern "C" const bn_backend_ops bn_cuda_backend = {
    "cuda",
    bn_cuda_probe,
    bn_cuda_create,
    bn_cuda_destroy,
    bn_cuda_forward,
    bn_cuda_forward_argmax,
    bn_cuda_memory_bytes,
    bn_cuda_decode_bytes,
    NULL, // read_bandwidth_gbs: not measured in the backend (bench_cuda measures a device copy)
    bn_cuda_prewarm,
    bn_cuda_prewarm_wait,
    bn_cuda_forward_top,
    bn_cuda_copy_kv,
    bn_cuda_maybe_present,
};
