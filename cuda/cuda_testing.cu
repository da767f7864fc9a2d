// cuda_testing.cu - run one kernel on host buffers (tests) or time it (bench).
//
// Each wrapper probes the device, uploads its inputs, launches the production
// launcher from cuda_kernels.cuh on the default stream, downloads and frees. A
// small list of device allocations is freed on every exit path.
#include <stdlib.h>
#include <string.h>

#include <cuda_fp16.h>

#include "cuda_check.cuh"
#include "cuda_kernels.cuh"
#include "cuda_testing.cuh"

namespace {

// Device allocations of one wrapper call, freed by the destructor.
struct dev_bufs {
    void *p[16];
    int n = 0;
    ~dev_bufs() {
        for (int i = 0; i < n; i++) (void)cudaFree(p[i]);
    }
};

// cudaMalloc + optional upload; NULL `src` leaves it zeroed.
int dev_get(dev_bufs &b, void **out, const void *src, size_t bytes, bn_error *err) {
    if (b.n == 16) return bn_errorf(err, "cuda_testing: too many buffers");
    BN_CUDA_TRY(cudaMalloc(out, bytes ? bytes : 1));
    b.p[b.n++] = *out;
    if (src)
        BN_CUDA_TRY(cudaMemcpy(*out, src, bytes, cudaMemcpyHostToDevice));
    else
        BN_CUDA_TRY(cudaMemset(*out, 0, bytes ? bytes : 1));
    return 0;
}

int finish(cudaError_t launch, void *dst, const void *src, size_t bytes, bn_error *err) {
    BN_CUDA_TRY(launch);
    BN_CUDA_TRY(cudaDeviceSynchronize());
    if (dst) BN_CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return 0;
}

bn_cuda_rowscale rowscale(const float scales[3], int r1, int r2) {
    bn_cuda_rowscale r = {r1, r2, scales[0], scales[1], scales[2]};
    return r;
}

} // namespace

#define GET(ptr, src, bytes)                                                                  \
    do {                                                                                      \
        void *p_;                                                                             \
        if (dev_get(bufs, &p_, (src), (bytes), err)) return -1;                               \
        ptr = (decltype(ptr))p_;                                                              \
    } while (0)

extern "C" int bn_cuda_test_ternary(int kernel, const uint8_t *w, int K, int M, const int8_t *q,
                                    const float *s, const int32_t *qsum, int n, const float scales[3],
                                    int r1, int r2, bool add, float *y, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    dev_bufs bufs;
    uint8_t *dw;
    int8_t *dq;
    float *ds, *dy;
    int32_t *dqs;
    GET(dw, w, (size_t)M * K / 4);
    GET(dq, q, (size_t)n * K);
    GET(ds, s, sizeof(float) * n);
    GET(dqs, qsum, sizeof(int32_t) * n);
    GET(dy, y, sizeof(float) * n * M);
    BN_CUDA_TRY(bn_cuda_i2s_sanitize(dw, (int64_t)M * K / 4, 0));
    const bn_cuda_rowscale rs = rowscale(scales, r1, r2);
    const cudaError_t e = kernel == 0 ? bn_cuda_ternary_gemv(dw, K, M, dq, ds, dqs, n, rs, add, dy, M, 0)
                                      : bn_cuda_ternary_gemm(dw, K, M, dq, ds, dqs, n, rs, add, dy, M, 0);
    return finish(e, y, dy, sizeof(float) * n * M, err);
}

extern "C" int bn_cuda_test_gemv_norm(const uint8_t *w, int K, int M, const float *x,
                                      const float *norm_w, float eps, bool glu, int n,
                                      const float scales[3], int r1, int r2, float *y, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    dev_bufs bufs;
    uint8_t *dw;
    float *dx, *dn, *dy;
    const int ldx = glu ? 2 * K : K;
    GET(dw, w, (size_t)M * K / 4);
    GET(dx, x, sizeof(float) * n * ldx);
    GET(dn, norm_w, sizeof(float) * K);
    GET(dy, NULL, sizeof(float) * n * M);
    BN_CUDA_TRY(bn_cuda_i2s_sanitize(dw, (int64_t)M * K / 4, 0));
    const cudaError_t e = bn_cuda_ternary_gemv_norm(dw, K, M, dx, ldx, dn, eps, glu, n,
                                                    rowscale(scales, r1, r2), false, dy, M, 0);
    return finish(e, y, dy, sizeof(float) * n * M, err);
}

extern "C" int bn_cuda_test_rmsnorm_quant(const float *x, const float *w, int n_tok, int n, float eps,
                                          bool glu, int8_t *q, float *s, int32_t *qsum, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    dev_bufs bufs;
    float *dx, *dw, *ds;
    int8_t *dq;
    int32_t *dqs;
    const int ldx = glu ? 2 * n : n;
    GET(dx, x, sizeof(float) * n_tok * ldx);
    GET(dw, w, sizeof(float) * n);
    GET(dq, NULL, (size_t)n_tok * n);
    GET(ds, NULL, sizeof(float) * n_tok);
    GET(dqs, NULL, sizeof(int32_t) * n_tok);
    if (finish(bn_cuda_rmsnorm_quant(dx, ldx, dw, n_tok, n, eps, glu, dq, ds, dqs, 0), q, dq,
               (size_t)n_tok * n, err))
        return -1;
    BN_CUDA_TRY(cudaMemcpy(s, ds, sizeof(float) * n_tok, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(qsum, dqs, sizeof(int32_t) * n_tok, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int bn_cuda_test_rope_kv(const float *qkv, const int32_t *pos, int n_tok, int n_head,
                                    int n_head_kv, int hd, int n_rot, float base, int n_ctx,
                                    uint16_t *q_out, uint16_t *k_cache, uint16_t *v_cache,
                                    bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    for (int t = 0; t < n_tok; t++)
        if (pos[t] < 0 || pos[t] >= n_ctx) return bn_errorf(err, "cuda_testing: bad position");
    dev_bufs bufs;
    const int nq = n_head * hd, nkv = n_head_kv * hd, ld = nq + 2 * nkv;
    float *dqkv;
    int32_t *dpos;
    __half *dq, *dk, *dv;
    if (n_rot <= 0 || n_rot % 2 || n_rot > hd) return bn_errorf(err, "cuda_testing: bad n_rot");
    const float theta_scale = powf(base, -2.0f / (float)n_rot); // as cpu/ops.c bn_rope_neox
    GET(dqkv, qkv, sizeof(float) * n_tok * ld);
    GET(dpos, pos, sizeof(int32_t) * n_tok);
    GET(dq, NULL, sizeof(__half) * n_tok * nq);
    GET(dk, k_cache, sizeof(__half) * n_ctx * nkv);
    GET(dv, v_cache, sizeof(__half) * n_ctx * nkv);
    if (finish(bn_cuda_rope_kv(dqkv, ld, dpos, n_tok, n_head, n_head_kv, hd, n_rot, theta_scale, dq, dk, dv, 0),
               q_out, dq, sizeof(__half) * n_tok * nq, err))
        return -1;
    BN_CUDA_TRY(cudaMemcpy(k_cache, dk, sizeof(__half) * n_ctx * nkv, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(v_cache, dv, sizeof(__half) * n_ctx * nkv, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int bn_cuda_test_attention(const uint16_t *q, const uint16_t *k_cache,
                                      const uint16_t *v_cache, const int32_t *pos, int n_tok,
                                      int n_head, int n_head_kv, int hd, int n_ctx, float *out,
                                      bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    for (int t = 0; t < n_tok; t++)
        if (pos[t] < 0 || pos[t] >= n_ctx) return bn_errorf(err, "cuda_testing: bad position");
    dev_bufs bufs;
    const int nq = n_head * hd, nkv = n_head_kv * hd;
    __half *dq, *dk, *dv;
    int32_t *dpos;
    float *dout;
    GET(dq, q, sizeof(__half) * n_tok * nq);
    GET(dk, k_cache, sizeof(__half) * n_ctx * nkv);
    GET(dv, v_cache, sizeof(__half) * n_ctx * nkv);
    GET(dpos, pos, sizeof(int32_t) * n_tok);
    GET(dout, NULL, sizeof(float) * n_tok * nq);
    BN_CUDA_TRY(bn_cuda_attention_setup(hd, n_ctx));
    return finish(bn_cuda_attention(dq, dk, dv, dpos, n_tok, n_head, n_head_kv, hd, n_ctx, dout, 0), out,
                  dout, sizeof(float) * n_tok * nq, err);
}

extern "C" int bn_cuda_test_embedding(const void *table, int type, int n_vocab, int n_embd,
                                      const int32_t *tokens, int n_tok, float *x, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    for (int t = 0; t < n_tok; t++)
        if (tokens[t] < 0 || tokens[t] >= n_vocab) return bn_errorf(err, "cuda_testing: bad token");
    dev_bufs bufs;
    void *dt;
    int32_t *dtok;
    float *dx;
    GET(dt, table, (size_t)n_vocab * n_embd * (type == BN_CUDA_F32 ? 4 : 2));
    GET(dtok, tokens, sizeof(int32_t) * n_tok);
    GET(dx, NULL, sizeof(float) * n_tok * n_embd);
    return finish(bn_cuda_embedding(dt, type, dtok, n_tok, n_embd, dx, 0), x, dx,
                  sizeof(float) * n_tok * n_embd, err);
}

extern "C" int bn_cuda_test_rmsnorm_cast(const float *x, const float *w, int n_tok, int n, float eps,
                                         int out_type, void *out, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    dev_bufs bufs;
    float *dx, *dw;
    void *dout;
    const size_t osz = (size_t)n_tok * n * (out_type == BN_CUDA_F32 ? 4 : 2);
    GET(dx, x, sizeof(float) * n_tok * n);
    GET(dw, w, sizeof(float) * n);
    GET(dout, NULL, osz);
    return finish(bn_cuda_rmsnorm_cast(dx, n, dw, n_tok, n, eps, out_type, dout, 0), out, dout, osz, err);
}

extern "C" int bn_cuda_test_argmax(const float *x, int n, int32_t *out, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    dev_bufs bufs;
    float *dx;
    int32_t *dout;
    GET(dx, x, sizeof(float) * n);
    GET(dout, NULL, sizeof(int32_t));
    return finish(bn_cuda_argmax(dx, n, dout, 0), out, dout, sizeof(int32_t), err);
}

extern "C" int bn_cuda_test_rmsnorm_cast_q8(const float *x, const float *w, int n_tok, int n, float eps,
                                            int8_t *q, float *xscale, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    dev_bufs bufs;
    float *dx, *dw, *ds;
    int8_t *dq;
    GET(dx, x, sizeof(float) * n_tok * n);
    GET(dw, w, sizeof(float) * n);
    GET(dq, NULL, (size_t)n_tok * n);
    GET(ds, NULL, sizeof(float) * n_tok);
    if (finish(bn_cuda_rmsnorm_cast(dx, n, dw, n_tok, n, eps, BN_CUDA_I8, dq, ds, false, 0), q, dq,
               (size_t)n_tok * n, err))
        return -1;
    BN_CUDA_TRY(cudaMemcpy(xscale, ds, sizeof(float) * n_tok, cudaMemcpyDeviceToHost));
    return 0;
}

namespace {

// Runs a head GEMV launch(pdl) once into logits (and argmax). With argmax, then
// poisons the outputs and runs it twice back to back, the second with PDL (its
// weight loads overlap the first run): the replays must give the same bits and
// id, and the last block of each run must have put the counter back to 0.
template <typename Launch>
int head_run(Launch launch, float *dl, int32_t *dam, unsigned *dcnt, size_t n_logits, float *logits,
             int32_t *argmax, bn_error *err) {
    const size_t bytes = sizeof(float) * n_logits;
    if (finish(launch(false), logits, dl, bytes, err)) return -1;
    if (!argmax) return 0;
    BN_CUDA_TRY(cudaMemcpy(argmax, dam, sizeof(int32_t), cudaMemcpyDeviceToHost));
    unsigned cnt = 1;
    BN_CUDA_TRY(cudaMemcpy(&cnt, dcnt, sizeof cnt, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemset(dl, 0xff, bytes)); // NaN everywhere
    BN_CUDA_TRY(cudaMemset(dam, 0xff, sizeof(int32_t)));
    BN_CUDA_TRY(launch(false));
    BN_CUDA_TRY(launch(true));
    BN_CUDA_TRY(cudaDeviceSynchronize());
    float *again = (float *)malloc(bytes ? bytes : 1);
    if (!again) return bn_errorf(err, "cuda_testing: out of memory");
    int32_t id = -1;
    unsigned cnt2 = 1;
    cudaError_t e = cudaMemcpy(again, dl, bytes, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(&id, dam, sizeof id, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(&cnt2, dcnt, sizeof cnt2, cudaMemcpyDeviceToHost);
    const bool same = e == cudaSuccess && memcmp(again, logits, bytes) == 0;
    free(again);
    BN_CUDA_TRY(e);
    if (!same) return bn_errorf(err, "cuda_testing: head GEMV replay gave different logits");
    if (id != *argmax) return bn_errorf(err, "cuda_testing: head GEMV replay argmax %d, first run %d", id, *argmax);
    if (cnt != 0 || cnt2 != 0)
        return bn_errorf(err, "cuda_testing: head GEMV left its counter at %u / %u, not 0", cnt, cnt2);
    return 0;
}

} // namespace

extern "C" int bn_cuda_test_head_gemv(const void *w, int type, int K, int V, const void *x, int n,
                                      float *logits, int32_t *argmax, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if ((type != BN_CUDA_F16 && type != BN_CUDA_F32) || K <= 0 || V <= 0 || n <= 0)
        return bn_errorf(err, "cuda_testing: bad head GEMV arguments");
    dev_bufs bufs;
    const size_t esz = type == BN_CUDA_F32 ? 4 : 2;
    void *dw, *dx;
    float *dl, *dsc;
    int32_t *dam;
    unsigned *dcnt;
    GET(dw, w, (size_t)V * K * esz);
    GET(dx, x, (size_t)n * K * esz);
    GET(dl, NULL, sizeof(float) * n * V);
    GET(dsc, NULL, bn_cuda_head_scratch_bytes(V));
    GET(dam, NULL, sizeof(int32_t));
    GET(dcnt, NULL, sizeof(unsigned));
    auto launch = [&](bool pdl) {
        return bn_cuda_head_gemv(dw, type, K, V, dx, n, dl, argmax ? dam : NULL, dsc, dcnt, pdl, 0);
    };
    return head_run(launch, dl, dam, dcnt, (size_t)n * V, logits, argmax, err);
}

extern "C" int bn_cuda_test_head_q8_quantize(const void *w, int type, int K, int V, int8_t *wq,
                                             float *row_scale, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if ((type != BN_CUDA_F16 && type != BN_CUDA_F32) || K <= 0 || V <= 0)
        return bn_errorf(err, "cuda_testing: bad head quantize arguments");
    dev_bufs bufs;
    void *dw;
    int8_t *dq;
    float *ds;
    GET(dw, w, (size_t)V * K * (type == BN_CUDA_F32 ? 4 : 2));
    GET(dq, NULL, (size_t)V * K);
    GET(ds, NULL, sizeof(float) * V);
    if (finish(bn_cuda_head_q8_quantize(dw, type, K, V, dq, ds, 0), wq, dq, (size_t)V * K, err)) return -1;
    BN_CUDA_TRY(cudaMemcpy(row_scale, ds, sizeof(float) * V, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int bn_cuda_test_head_q8_gemv(const int8_t *wq, const float *row_scale, int K, int V,
                                         const int8_t *xq, const float *xscale, int n, float *logits,
                                         int32_t *argmax, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if (K <= 0 || V <= 0 || n <= 0) return bn_errorf(err, "cuda_testing: bad head GEMV arguments");
    dev_bufs bufs;
    int8_t *dw, *dx;
    float *drs, *dxs, *dl, *dsc;
    int32_t *dam;
    unsigned *dcnt;
    GET(dw, wq, (size_t)V * K);
    GET(drs, row_scale, sizeof(float) * V);
    GET(dx, xq, (size_t)n * K);
    GET(dxs, xscale, sizeof(float) * n);
    GET(dl, NULL, sizeof(float) * n * V);
    GET(dsc, NULL, bn_cuda_head_scratch_bytes(V));
    GET(dam, NULL, sizeof(int32_t));
    GET(dcnt, NULL, sizeof(unsigned));
    auto launch = [&](bool pdl) {
        return bn_cuda_head_q8_gemv(dw, drs, K, V, dx, dxs, n, dl, argmax ? dam : NULL, dsc, dcnt, pdl, 0);
    };
    return head_run(launch, dl, dam, dcnt, (size_t)n * V, logits, argmax, err);
}

// ---- benchmark support -----------------------------------------------------------

__global__ void bn_bench_fill_kernel(uint32_t *p, size_t nwords, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < nwords;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 2654435761u ^ seed;
        x ^= x >> 13;
        x *= 0x5bd1e995u;
        x ^= x >> 15;
        p[i] = x;
    }
}

// Random bytes; the f32 buffers of the norm path get small finite values instead.
static cudaError_t fill(void *p, size_t bytes, uint32_t seed) {
    bn_bench_fill_kernel<<<1024, 256, 0>>>((uint32_t *)p, bytes / 4, seed);
    return cudaGetLastError();
}

__global__ void bn_bench_fill_float_kernel(float *p, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = (float)((i * 7919u) % 1000u) / 500.0f - 1.0f;
}

extern "C" int bn_cuda_bench_kernel(bn_cuda_bench_op op, int K, int M, int n, int iters, double *us,
                                    double *bytes, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if (K <= 0 || K % 128 || M <= 0 || n <= 0 || iters <= 0)
        return bn_errorf(err, "cuda bench: bad shape");
    dev_bufs bufs;
    // The head ops read 657 MB (f16) / 328 MB (int8) at the 2B-4T shape, far more
    // than L2 holds, so every timed launch streams its weights from HBM.
    const bool head = op == BN_CUDA_BENCH_HEAD_F16 || op == BN_CUDA_BENCH_HEAD_Q8;
    const size_t wbytes = op == BN_CUDA_BENCH_LM_HEAD || op == BN_CUDA_BENCH_HEAD_F16 ? (size_t)M * K * 2
                          : op == BN_CUDA_BENCH_HEAD_Q8                           ? (size_t)M * K
                                                                                  : (size_t)M * K / 4;
    uint8_t *dw, *dw2;
    int8_t *dq;
    float *dx, *ds, *dy, *dn;
    int32_t *dqs;
    GET(dw, NULL, wbytes);
    GET(dw2, NULL, op == BN_CUDA_BENCH_COPY ? wbytes : 16);
    GET(dq, NULL, (size_t)n * K * 2);
    GET(dx, NULL, sizeof(float) * n * K * 2);
    GET(dn, NULL, sizeof(float) * K);
    GET(ds, NULL, sizeof(float) * n);
    GET(dqs, NULL, sizeof(int32_t) * n);
    GET(dy, NULL, sizeof(float) * n * M);
    BN_CUDA_TRY(fill(dw, wbytes, 1));
    BN_CUDA_TRY(fill(dq, (size_t)n * K, 2));
    bn_bench_fill_float_kernel<<<256, 256>>>(dx, (size_t)n * K * 2);
    BN_CUDA_TRY(cudaGetLastError());
    bn_bench_fill_float_kernel<<<64, 256>>>(dn, (size_t)K);
    BN_CUDA_TRY(cudaGetLastError());
    bn_bench_fill_float_kernel<<<1, 256>>>(ds, (size_t)n);
    BN_CUDA_TRY(cudaGetLastError());
    if (op == BN_CUDA_BENCH_LM_HEAD || op == BN_CUDA_BENCH_HEAD_F16)
        bn_bench_fill_float_kernel<<<1024, 256>>>((float *)dw, wbytes / 4);
    BN_CUDA_TRY(cudaGetLastError());
    // head GEMVs: x is dq (n*K halves or codes), xscale is ds; fused argmax.
    float *drs = NULL, *dsc = NULL;
    int32_t *dam = NULL;
    unsigned *dcnt = NULL;
    if (head) {
        GET(drs, NULL, sizeof(float) * M);
        GET(dsc, NULL, bn_cuda_head_scratch_bytes(M));
        GET(dam, NULL, sizeof(int32_t));
        GET(dcnt, NULL, sizeof(unsigned));
        bn_bench_fill_float_kernel<<<256, 256>>>(drs, (size_t)M);
        BN_CUDA_TRY(cudaGetLastError());
    }
    BN_CUDA_TRY(cudaDeviceSynchronize());
    for (int i = 0; i < n; i++) { // keep the scales sane: s = 1 is fine for timing
        const float one = 1.0f;
        BN_CUDA_TRY(cudaMemcpy(ds + i, &one, sizeof one, cudaMemcpyHostToDevice));
    }

    cublasHandle_t blas = NULL;
    __half *dh = NULL;
    if (op == BN_CUDA_BENCH_LM_HEAD) {
        GET(dh, NULL, sizeof(__half) * n * K);
        BN_CUBLAS_TRY(cublasCreate(&blas));
    }
    const bn_cuda_rowscale rs = bn_cuda_rowscale_one(1.0f);
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = -1;
    float ms = 0.f;
    const float one = 1.f, zero = 0.f;
    cudaError_t ce = cudaEventCreate(&e0);
    if (ce == cudaSuccess) ce = cudaEventCreate(&e1);
    for (int it = -2; ce == cudaSuccess && it < iters; it++) { // two warm-up runs
        if (it == 0) ce = cudaEventRecord(e0, 0);
        if (ce != cudaSuccess) break;
        switch (op) {
        case BN_CUDA_BENCH_COPY: ce = cudaMemcpyAsync(dw2, dw, wbytes, cudaMemcpyDeviceToDevice, 0); break;
        case BN_CUDA_BENCH_GEMV: ce = bn_cuda_ternary_gemv(dw, K, M, dq, ds, dqs, n, rs, false, dy, M, 0); break;
        case BN_CUDA_BENCH_GEMV_NORM:
            ce = bn_cuda_ternary_gemv_norm(dw, K, M, dx, K, dn, 1e-5f, false, n, rs, false, dy, M, 0);
            break;
        case BN_CUDA_BENCH_GEMM:
            ce = bn_cuda_rmsnorm_quant(dx, K, dn, n, K, 1e-5f, false, dq, ds, dqs, 0);
            if (ce == cudaSuccess) ce = bn_cuda_ternary_gemm(dw, K, M, dq, ds, dqs, n, rs, false, dy, M, 0);
            break;
        case BN_CUDA_BENCH_HEAD_F16:
            ce = bn_cuda_head_gemv(dw, BN_CUDA_F16, K, M, dq, n, dy, dam, dsc, dcnt, false, 0);
            break;
        case BN_CUDA_BENCH_HEAD_Q8:
            ce = bn_cuda_head_q8_gemv((const int8_t *)dw, drs, K, M, dq, ds, n, dy, dam, dsc, dcnt, false, 0);
            break;
        case BN_CUDA_BENCH_LM_HEAD: {
            const cublasStatus_t bs = cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, M, n, K, &one, dw,
                                                   CUDA_R_16F, K, dh, CUDA_R_16F, K, &zero, dy,
                                                   CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            if (bs != CUBLAS_STATUS_SUCCESS) {
                bn_errorf(err, "cuBLAS: cublasGemmEx failed: %s", bn_cublas_status_name(bs));
                goto done;
            }
            break;
        }
        }
    }
    if (ce == cudaSuccess) ce = cudaEventRecord(e1, 0);
    if (ce == cudaSuccess) ce = cudaEventSynchronize(e1);
    if (ce == cudaSuccess) ce = cudaEventElapsedTime(&ms, e0, e1);
    if (ce != cudaSuccess) {
        bn_errorf(err, "CUDA: benchmark of op %d failed: %s", (int)op, cudaGetErrorString(ce));
        goto done;
    }
    *us = (double)ms * 1e3 / iters;
    switch (op) {
    case BN_CUDA_BENCH_COPY: *bytes = 2.0 * (double)wbytes; break; // read + write
    case BN_CUDA_BENCH_LM_HEAD: *bytes = (double)wbytes + 4.0 * n * M; break;
    case BN_CUDA_BENCH_HEAD_F16: *bytes = (double)wbytes + 2.0 * n * K + 4.0 * n * M; break;
    case BN_CUDA_BENCH_HEAD_Q8: *bytes = (double)wbytes + (double)n * K + 4.0 * M + 4.0 * n * M; break;
    default: *bytes = (double)wbytes + (double)n * K + 4.0 * n * M; break;
    }
    rc = 0;
done:
    if (e0) (void)cudaEventDestroy(e0);
    if (e1) (void)cudaEventDestroy(e1);
    if (blas) (void)cublasDestroy(blas);
    return rc;
}
