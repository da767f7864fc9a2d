// cuda_bench.cu - kernel timings for bench/bench_cuda.c (bn_cuda_bench_kernel).
//
// Every op runs on device-resident random data: `iters` launches captured in one
// CUDA graph (launch gaps as in a decode step, PDL where the backend uses it)
// and replayed, best of 3 replays after a warm-up. Weights, and for the decode
// attention the KV cache, rotate over enough copies to exceed 4x the L2 cache,
// so each launch reads them from HBM as a real decode step does (timing
// back-to-back launches on one buffer would measure the L2). The prefill ops are
// compute-bound and use one copy. cuBLAS is linked here only, for the f16 head
// row the backend's own head GEMV is compared with.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_fp16.h>

#include "clock.h"
#include "cuda_check.cuh"
#include "cuda_kernels.cuh"
#include "cuda_testing.cuh"
#include "dev_bufs.cuh"

// The 2B-4T attention shape, which the attention ops time.
#define BENCH_HEADS 20
#define BENCH_KV_HEADS 5
#define BENCH_HD 128
#define BENCH_MAX_ROTATE ((size_t)3 << 30)

__global__ void bn_bench_fill_kernel(uint32_t *p, size_t nwords, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < nwords; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 2654435761u ^ seed;
        x ^= x >> 13;
        x *= 0x5bd1e995u;
        x ^= x >> 15;
        p[i] = x;
    }
}

// Finite values in [-1, 1): f32 (half = false) or f16.
__global__ void bn_bench_fill_real_kernel(void *p, size_t n, bool half, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 2246822519u ^ seed;
        x ^= x >> 15;
        x *= 0x2c1b3c6du;
        x ^= x >> 12;
        const float v = (float)(x >> 8) / 8388608.0f - 1.0f;
        if (half) static_cast<__half *>(p)[i] = __float2half_rn(v);
        else static_cast<float *>(p)[i] = v;
    }
}

__global__ void bn_bench_iota_kernel(int32_t *p, int n, int first) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = first + i;
}

namespace {

cudaError_t fill_bytes(void *p, size_t bytes, uint32_t seed) {
    bn_bench_fill_kernel<<<1024, 256>>>((uint32_t *)p, bytes / 4, seed);
    return cudaGetLastError();
}

cudaError_t fill_real(void *p, size_t n, bool half, uint32_t seed) {
    bn_bench_fill_real_kernel<<<1024, 256>>>(p, n, half, seed);
    return cudaGetLastError();
}

size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

int g_gemm_tile = 128; // bn_cuda_bench_gemm_tile

} // namespace

extern "C" int bn_cuda_bench_kernel(bn_cuda_bench_op op, int K, int M, int n, int iters, bn_cuda_bench_result *r,
                                    bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if (K <= 0 || M <= 0 || n <= 0 || iters <= 0) return bn_errorf(err, "cuda bench: bad shape");
    const bool gemm = op == BN_CUDA_BENCH_GEMM || op == BN_CUDA_BENCH_GEMM_MMA || op == BN_CUDA_BENCH_GEMM_MMA_ONLY;
    const bool gemv = op == BN_CUDA_BENCH_GEMV || op == BN_CUDA_BENCH_GEMV_NORM || op == BN_CUDA_BENCH_GEMV_LAST;
    const bool ternary = gemv || gemm;
    if (ternary && K % 128) return bn_errorf(err, "cuda bench: K must be a multiple of 128");
    if (gemv && n > bn_cuda_gemv_max_tokens(K))
        return bn_errorf(err, "cuda bench: %d tokens are too many for the GEMV", n);
    memset(r, 0, sizeof *r);
    int l2 = 0;
    BN_CUDA_TRY(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));

    const int H = BENCH_HEADS, Hkv = BENCH_KV_HEADS, hd = BENCH_HD;
    const bool attd = op == BN_CUDA_BENCH_ATTN_DECODE || op == BN_CUDA_BENCH_ATTN_DECODE_NORM ||
                      op == BN_CUDA_BENCH_ATTN_DECODE_SHORT;
    const size_t kv_half = (size_t)Hkv * (attd ? K : n) * hd; // halves a cache
    size_t wb; // bytes a launch reads from the rotated buffer
    switch (op) {
    case BN_CUDA_BENCH_COPY: wb = (size_t)M * K / 4; break;
    case BN_CUDA_BENCH_LM_HEAD:
    case BN_CUDA_BENCH_HEAD_F16: wb = (size_t)M * K * 2; break;
    case BN_CUDA_BENCH_HEAD_Q8: wb = (size_t)M * K; break;
    case BN_CUDA_BENCH_ATTN_DECODE:
    case BN_CUDA_BENCH_ATTN_DECODE_NORM:
    case BN_CUDA_BENCH_ATTN_DECODE_SHORT:
    case BN_CUDA_BENCH_ATTN_PREFILL: wb = 2 * kv_half * sizeof(__half); break;
    default: wb = (size_t)M * K / 4; break;
    }
    const bool rotate = op != BN_CUDA_BENCH_COPY && !gemm && op != BN_CUDA_BENCH_ATTN_PREFILL;
    size_t copies = rotate ? (4 * (size_t)l2 + wb - 1) / wb : 1;
    if (copies < 1) copies = 1;
    if (copies * align256(wb) > BENCH_MAX_ROTATE) copies = BENCH_MAX_ROTATE / align256(wb);
    if (copies < 1) return bn_errorf(err, "cuda bench: %zu bytes a launch is too much", wb);
    r->copies = (int)copies;

    bn_dev_bufs mem;
    const size_t stride = align256(wb);
    uint8_t *big = (uint8_t *)mem.alloc(copies * stride);
    uint8_t *dst = op == BN_CUDA_BENCH_COPY ? (uint8_t *)mem.alloc(wb) : NULL;
    const int width = M; // GEMV_NORM: the next norm's width
    int8_t *q = (int8_t *)mem.alloc((size_t)n * (K > M ? K : M) * 2);
    const size_t nx = (size_t)n * (K * 2 > (H + 2 * Hkv) * hd ? K * 2 : (H + 2 * Hkv) * hd); // x, or a qkv row
    float *s = (float *)mem.alloc(sizeof(float) * n), *x = (float *)mem.alloc(sizeof(float) * nx);
    float *y = (float *)mem.alloc(sizeof(float) * (size_t)n * (M > H * hd ? M : H * hd) * 2);
    float *nw = (float *)mem.alloc(sizeof(float) * (K > M ? K : M) * 2);
    int32_t *qsum = (int32_t *)mem.alloc(sizeof(int32_t) * n);
    int8_t *q2 = (int8_t *)mem.alloc((size_t)n * (K > M ? K : M) * 2);
    float *s2 = (float *)mem.alloc(sizeof(float) * n);
    int32_t *qsum2 = (int32_t *)mem.alloc(sizeof(int32_t) * n);
    unsigned *cnt = (unsigned *)mem.alloc(sizeof(unsigned) * (H + 1));
    int32_t *pos = (int32_t *)mem.alloc(sizeof(int32_t) * (n > 1 ? n : 1));
    __half *qh = (__half *)mem.alloc(sizeof(__half) * n * H * hd);
    const int n_split = M > 1 ? M : bn_cuda_attd_splits(K);
    void *scratch = attd ? mem.alloc(bn_cuda_attd_scratch_bytes(1, H, hd, K, n_split)) : mem.alloc(16);
    __half *head_in = (__half *)mem.alloc(sizeof(__half) * n * K);
    void *ws = op == BN_CUDA_BENCH_LM_HEAD ? mem.alloc(32u << 20) : mem.alloc(16);
    if (!big || (op == BN_CUDA_BENCH_COPY && !dst) || !q || !s || !x || !y || !nw || !qsum || !q2 || !s2 ||
        !qsum2 || !cnt || !pos || !qh || !scratch || !head_in || !ws)
        return bn_errorf(err, "cuda bench: out of device memory");

    // Inputs: random weights / caches, codes and floats; scales of 1 keep sums sane.
    const bool head = op == BN_CUDA_BENCH_LM_HEAD || op == BN_CUDA_BENCH_HEAD_F16 || op == BN_CUDA_BENCH_HEAD_Q8;
    float *row_scale = head ? (float *)mem.alloc(sizeof(float) * M) : NULL;
    void *head_scratch = head ? mem.alloc(bn_cuda_head_scratch_bytes(M)) : NULL;
    int32_t *argmax = head ? (int32_t *)mem.alloc(sizeof(int32_t)) : NULL;
    unsigned *head_cnt = head ? (unsigned *)mem.alloc(sizeof(unsigned)) : NULL;
    if (head && (!row_scale || !head_scratch || !argmax || !head_cnt))
        return bn_errorf(err, "cuda bench: out of device memory");
    if (head) BN_CUDA_TRY(fill_real(row_scale, M, false, 8));
    if (attd || op == BN_CUDA_BENCH_ATTN_PREFILL || op == BN_CUDA_BENCH_LM_HEAD ||
        op == BN_CUDA_BENCH_HEAD_F16)
        BN_CUDA_TRY(fill_real(big, copies * stride / 2, true, 1));
    else
        BN_CUDA_TRY(fill_bytes(big, copies * stride, 1));
    BN_CUDA_TRY(fill_bytes(q, (size_t)n * K, 2));
    BN_CUDA_TRY(fill_real(x, nx, false, 3));
    BN_CUDA_TRY(fill_real(y, (size_t)n * (M > H * hd ? M : H * hd) * 2, false, 4));
    BN_CUDA_TRY(fill_real(nw, (size_t)(K > M ? K : M) * 2, false, 5));
    BN_CUDA_TRY(fill_real(qh, (size_t)n * H * hd, true, 6));
    BN_CUDA_TRY(fill_real(head_in, (size_t)n * K, true, 7));
    bn_bench_iota_kernel<<<64, 256>>>(pos, n, attd ? K - 1 : 0);
    BN_CUDA_TRY(cudaGetLastError());
    BN_CUDA_TRY(cudaDeviceSynchronize());
    for (int i = 0; i < n; i++) {
        const float one = 1.0f;
        BN_CUDA_TRY(cudaMemcpy(s + i, &one, sizeof one, cudaMemcpyHostToDevice));
    }

    cublasHandle_t blas = NULL;
    cudaStream_t st = NULL;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = -1;
    const bn_cuda_rowscale rs = bn_cuda_rowscale_one(1.0f, 1.0f);
    const bn_cuda_next_norm nn_gemv = {nw, false, 1e-5f, q2, s2, qsum2, cnt};
    const bn_cuda_next_norm nn_att = {nw, false, 1e-5f, q2, s2, qsum2, cnt + H};
    const float one = 1.f, zero = 0.f;
    const float theta_scale = powf(500000.0f, -2.0f / hd);
    cudaError_t ce = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    if (ce == cudaSuccess && op == BN_CUDA_BENCH_LM_HEAD) {
        if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(blas, st) != CUBLAS_STATUS_SUCCESS ||
            cublasSetWorkspace(blas, ws, 32u << 20) != CUBLAS_STATUS_SUCCESS)
            return bn_errorf(err, "cuda bench: cuBLAS setup failed");
    }
    // One launch of the op on copy i (rotating), on stream st.
    auto launch = [&](int i) -> cudaError_t {
        uint8_t *w = big + (size_t)(i % (int)copies) * stride;
        __half *kc = (__half *)w, *vc = kc + kv_half;
        switch (op) {
        case BN_CUDA_BENCH_COPY: return cudaMemcpyAsync(dst, w, wb, cudaMemcpyDeviceToDevice, st);
        case BN_CUDA_BENCH_GEMV:
            return bn_cuda_ternary_gemv(w, K, M, q, s, qsum, n, rs, false, y, M, NULL, true, st);
        case BN_CUDA_BENCH_GEMV_NORM:
            return bn_cuda_ternary_gemv_norm(w, K, M, x, K, nw, 1e-5f, false, n, rs, false, y, M, true, st);
        case BN_CUDA_BENCH_GEMV_LAST:
            return bn_cuda_ternary_gemv(w, K, M, q, s, qsum, n, rs, false, y, width, &nn_gemv, true, st);
        case BN_CUDA_BENCH_GEMM: {
            const cudaError_t e = bn_cuda_rmsnorm_quant(x, K, nw, n, K, 1e-5f, false, q, s, qsum, false, st);
            return e != cudaSuccess ? e : bn_cuda_ternary_gemm(w, K, M, q, s, qsum, n, rs, false, y, M, st);
        }
        case BN_CUDA_BENCH_GEMM_MMA: {
            const cudaError_t e = bn_cuda_rmsnorm_quant(x, K, nw, n, K, 1e-5f, false, q, s, qsum, false, st);
            return e != cudaSuccess ? e : bn_cuda_ternary_gemm_mma(w, K, M, q, s, qsum, n, rs, false, y, M, g_gemm_tile, st);
        }
        case BN_CUDA_BENCH_GEMM_MMA_ONLY:
            return bn_cuda_ternary_gemm_mma(w, K, M, q, s, qsum, n, rs, false, y, M, g_gemm_tile, st);
        case BN_CUDA_BENCH_HEAD_F16:
            return bn_cuda_head_gemv(w, BN_CUDA_F16, K, M, head_in, n, y, argmax, (float *)head_scratch, head_cnt,
                                     true, st);
        case BN_CUDA_BENCH_HEAD_Q8:
            return bn_cuda_head_q8_gemv((const int8_t *)w, row_scale, K, M, q, s, n, y, argmax,
                                        (float *)head_scratch, head_cnt, true, st);
        case BN_CUDA_BENCH_LM_HEAD:
            return cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, M, n, K, &one, w, CUDA_R_16F, K, head_in,
                                CUDA_R_16F, K, &zero, y, CUDA_R_32F, M, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS
                       ? cudaSuccess : cudaErrorUnknown;
        case BN_CUDA_BENCH_ATTN_DECODE:
        case BN_CUDA_BENCH_ATTN_DECODE_NORM:
            return bn_cuda_attention_decode(x, (H + 2 * Hkv) * hd, pos, 1, H, Hkv, hd, hd, true, theta_scale, K, n_split,
                                            kc, vc, NULL, 0, scratch, cnt, y,
                                            op == BN_CUDA_BENCH_ATTN_DECODE_NORM ? &nn_att : NULL, true, st);
        case BN_CUDA_BENCH_ATTN_DECODE_SHORT:
            return bn_cuda_attention_decode_short(x, (H + 2 * Hkv) * hd, pos, 1, H, Hkv, hd, hd, true, theta_scale, K,
                                                  K, kc, vc, NULL, 0, y, NULL, true, st);
        case BN_CUDA_BENCH_ATTN_PREFILL:
            return bn_cuda_attention_prefill(qh, kc, vc, pos, n, H, Hkv, hd, n, y, true, st);
        }
        return cudaErrorInvalidValue;
    };
    // Warm-up outside the capture: module loading, cuBLAS's first call, shared-memory limits.
    for (int i = 0; ce == cudaSuccess && i < 2; i++) ce = launch(i);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(st);
    if (ce == cudaSuccess) ce = cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal);
    if (ce == cudaSuccess) {
        cudaError_t le = cudaSuccess;
        for (int i = 0; le == cudaSuccess && i < iters; i++) le = launch(i);
        ce = cudaStreamEndCapture(st, &graph);
        if (le != cudaSuccess) ce = le;
    }
    if (ce == cudaSuccess) ce = cudaGraphInstantiate(&exec, graph, 0);
    if (ce == cudaSuccess) ce = cudaEventCreate(&e0);
    if (ce == cudaSuccess) ce = cudaEventCreate(&e1);
    if (ce == cudaSuccess) ce = cudaGraphLaunch(exec, st); // warm-up replay
    float best = 0.f;
    for (int rep = 0; ce == cudaSuccess && rep < 3; rep++) {
        float ms = 0.f;
        ce = cudaEventRecord(e0, st);
        if (ce == cudaSuccess) ce = cudaGraphLaunch(exec, st);
        if (ce == cudaSuccess) ce = cudaEventRecord(e1, st);
        if (ce == cudaSuccess) ce = cudaEventSynchronize(e1);
        if (ce == cudaSuccess) ce = cudaEventElapsedTime(&ms, e0, e1);
        if (ce == cudaSuccess && (rep == 0 || ms < best)) best = ms;
    }
    if (ce != cudaSuccess) {
        bn_errorf(err, "CUDA: benchmark of op %d failed: %s", (int)op, cudaGetErrorString(ce));
    } else {
        r->us = (double)best * 1e3 / iters;
        const double hd2 = (double)hd;
        switch (op) {
        case BN_CUDA_BENCH_COPY: r->bytes = 2.0 * (double)wb; break; // read + write
        case BN_CUDA_BENCH_LM_HEAD:
        case BN_CUDA_BENCH_HEAD_F16:
        case BN_CUDA_BENCH_HEAD_Q8: r->bytes = (double)wb + 4.0 * n * M; r->flops = 2.0 * M * K * n; break;
        case BN_CUDA_BENCH_ATTN_DECODE:
        case BN_CUDA_BENCH_ATTN_DECODE_NORM:
        case BN_CUDA_BENCH_ATTN_DECODE_SHORT: r->bytes = (double)wb; r->flops = 4.0 * H * hd2 * K; break;
        case BN_CUDA_BENCH_ATTN_PREFILL: r->bytes = (double)wb; r->flops = 4.0 * H * hd2 * n * (n + 1.0) / 2; break;
        default: r->bytes = (double)wb + (double)n * K + 4.0 * n * M; r->flops = 2.0 * M * K * (double)n; break;
        }
        rc = 0;
    }
    (void)cudaGetLastError();
    if (e0) (void)cudaEventDestroy(e0);
    if (e1) (void)cudaEventDestroy(e1);
    if (exec) (void)cudaGraphExecDestroy(exec);
    if (graph) (void)cudaGraphDestroy(graph);
    if (blas) (void)cublasDestroy(blas);
    if (st) (void)cudaStreamDestroy(st);
    return rc;
}

extern "C" void bn_cuda_bench_gemv_blocks_per_sm(int n) { bn_cuda_gemv_set_blocks_per_sm(n); }

extern "C" void bn_cuda_bench_gemm_tile(int tile) { g_gemm_tile = tile; }

extern "C" int bn_cuda_bench_startup(double *init_ms, double *context_ms) {
    const double t0 = bn_now_ms();
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) return -1;
    const double t1 = bn_now_ms();
    if (cudaSetDevice(0) != cudaSuccess || cudaFree(0) != cudaSuccess) return -1;
    *init_ms = t1 - t0;
    *context_ms = bn_now_ms() - t1;
    return 0;
}
