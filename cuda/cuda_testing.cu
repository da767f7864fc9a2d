// cuda_testing.cu - run one kernel on host buffers (tests) or time it (bench).
//
// Each wrapper probes the device, uploads its inputs, launches the production
// launcher from cuda_kernels.cuh on the default stream (without PDL),
// downloads and frees. A small list of device allocations is freed on every
// exit path.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_fp16.h>

#include "cuda_check.cuh"
#include "cuda_kernels.cuh"
#include "cuda_testing.cuh"
#include "dev_bufs.cuh"

static_assert(BN_CUDA_HEAD_MAX_N == BN_HEAD_MAX_N, "cuda_testing.cuh states the head's row limit");

namespace {

// Device memory freed with b, holding `src` (or zeroed when src is NULL).
int dev_get(bn_dev_bufs &b, void **out, const void *src, size_t bytes, bn_error *err) {
    *out = b.alloc(bytes);
    if (!*out) return bn_errorf(err, "cuda_testing: cannot allocate %zu device bytes", bytes);
    if (src) BN_CUDA_TRY(cudaMemcpy(*out, src, bytes, cudaMemcpyHostToDevice));
    return 0;
}

int finish(cudaError_t launch, void *dst, const void *src, size_t bytes, bn_error *err) {
    BN_CUDA_TRY(launch);
    BN_CUDA_TRY(cudaDeviceSynchronize());
    if (dst) BN_CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return 0;
}

bn_cuda_rowscale rowscale(const float scales[6], int r1, int r2) {
    bn_cuda_rowscale r = {r1, r2, scales[0], scales[1], scales[2], scales[3], scales[4], scales[5]};
    return r;
}

} // namespace

#define GET(ptr, src, bytes)                                                                  \
    do {                                                                                      \
        void *p_;                                                                             \
        if (dev_get(bufs, &p_, (src), (bytes), err)) return -1;                               \
        ptr = (decltype(ptr))p_;                                                              \
    } while (0)

extern "C" void bn_cuda_switches_set(const char *const *env, int n, bool on) {
    for (int i = 0; i < n && env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        if (!eq) continue;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
        if (on) setenv(name, eq + 1, 1);
        else unsetenv(name);
    }
}

extern "C" int bn_cuda_test_ternary(int kernel, const uint8_t *w, int K, int M, const int8_t *q,
                                    const float *s, const int32_t *qsum, int n, const float scales[6],
                                    int r1, int r2, bool add, float *y, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    bn_dev_bufs bufs;
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
    if (kernel == 0 && n > bn_cuda_gemv_max_tokens(K)) return bn_errorf(err, "cuda_testing: too many tokens");
    cudaError_t e;
    switch (kernel) {
    case 0: e = bn_cuda_ternary_gemv(dw, K, M, dq, ds, dqs, n, rs, add, dy, M, NULL, false, 0); break;
    case 1: e = bn_cuda_ternary_gemm(dw, K, M, dq, ds, dqs, n, rs, add, dy, M, 0); break;
    case 2: e = bn_cuda_ternary_gemm_mma(dw, K, M, dq, ds, dqs, n, rs, add, dy, M, 128, 0); break;
    case 3: e = bn_cuda_ternary_gemm_mma(dw, K, M, dq, ds, dqs, n, rs, add, dy, M, 64, 0); break;
    case 4: e = bn_cuda_ternary_gemm_mma(dw, K, M, dq, ds, dqs, n, rs, add, dy, M, 32, 0); break;
    default: return bn_errorf(err, "cuda_testing: no ternary kernel %d", kernel);
    }
    return finish(e, y, dy, sizeof(float) * n * M, err);
}

extern "C" int bn_cuda_test_gemv_norm(const uint8_t *w, int K, int M, const float *x, const float *norm_w,
                                      float eps, bn_nq_mode mode, int n, const float scales[6], int r1, int r2, bool add,
                                      float *y, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if (n > bn_cuda_gemv_max_tokens(K)) return bn_errorf(err, "cuda_testing: too many tokens");
    bn_dev_bufs bufs;
    uint8_t *dw;
    float *dx, *dn, *dy;
    const int ldx = mode & BN_NQ_GLU ? 2 * K : K;
    GET(dw, w, (size_t)M * K / 4);
    GET(dx, x, sizeof(float) * n * ldx);
    GET(dn, norm_w, sizeof(float) * K);
    GET(dy, y, sizeof(float) * n * M);
    BN_CUDA_TRY(bn_cuda_i2s_sanitize(dw, (int64_t)M * K / 4, 0));
    return finish(bn_cuda_ternary_gemv_norm(dw, K, M, dx, ldx, dn, eps, mode, n, rowscale(scales, r1, r2), add, dy, M,
                                            false, 0),
                  y, dy, sizeof(float) * n * M, err);
}

extern "C" int bn_cuda_test_q8k(const uint8_t *w, int K, int M, const float *x, const float *norm_w, float eps,
                                int mode, int n, const float scales[6], int r1, int r2, bool add, bool mma, float *y,
                                int8_t *q, float *d, int32_t *bsum, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if (K <= 0 || K % 256) return bn_errorf(err, "cuda_testing: K %d is not a multiple of 256", K);
    bn_dev_bufs bufs;
    uint8_t *dw;
    int8_t *dq;
    float *dx, *dn, *dd, *dy;
    int32_t *dbs;
    const int ldx = mode & BN_NQ_GLU ? 2 * K : K, nb = K / 256;
    GET(dw, w, (size_t)M * K / 4);
    GET(dx, x, sizeof(float) * n * ldx);
    GET(dn, norm_w, sizeof(float) * K);
    GET(dy, y, sizeof(float) * n * M);
    GET(dq, NULL, (size_t)n * K);
    GET(dd, NULL, sizeof(float) * n * nb);
    GET(dbs, NULL, sizeof(int32_t) * n * nb * 8);
    BN_CUDA_TRY(bn_cuda_i2s_sanitize(dw, (int64_t)M * K / 4, 0));
    BN_CUDA_TRY(bn_cuda_rmsnorm_q8k(dx, ldx, dn, n, K, eps, (bn_nq_mode)mode, dq, dd, dbs, false, 0));
    if (finish(bn_cuda_ternary_q8k(dw, K, M, dq, dd, dbs, n, rowscale(scales, r1, r2), add, dy, M, mma, false, 0),
               y, dy, sizeof(float) * n * M, err))
        return -1;
    int8_t *slots = (int8_t *)malloc((size_t)n * K);
    if (!slots) return bn_errorf(err, "cuda_testing: out of memory");
    const cudaError_t e = cudaMemcpy(slots, dq, (size_t)n * K, cudaMemcpyDeviceToHost);
    for (int64_t blk = 0; e == cudaSuccess && blk < (int64_t)n * nb; blk++) // back to element order
        for (int i = 0; i < 256; i++) q[blk * 256 + i] = slots[blk * 256 + bn_q8k_code_slot(i)];
    free(slots);
    BN_CUDA_TRY(e);
    BN_CUDA_TRY(cudaMemcpy(d, dd, sizeof(float) * n * nb, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(bsum, dbs, sizeof(int32_t) * n * nb * 8, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int bn_cuda_test_gemv_next_norm(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                           const int32_t *qsum, int n, const float scales[6], int r1, int r2,
                                           bool add, float *y, const float *norm_w, float eps, bn_nq_mode mode,
                                           int8_t *q_out, float *s_out, int32_t *qsum_out, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if (n > bn_cuda_gemv_max_tokens(K)) return bn_errorf(err, "cuda_testing: too many tokens");
    bn_dev_bufs bufs;
    uint8_t *dw;
    int8_t *dq, *dqo;
    float *ds, *dy, *dn, *dso;
    int32_t *dqs, *dqso;
    unsigned *dcnt;
    const int width = mode & BN_NQ_GLU ? M / 2 : M;
    GET(dw, w, (size_t)M * K / 4);
    GET(dq, q, (size_t)n * K);
    GET(ds, s, sizeof(float) * n);
    GET(dqs, qsum, sizeof(int32_t) * n);
    GET(dy, y, sizeof(float) * n * M);
    GET(dn, norm_w, sizeof(float) * width);
    GET(dqo, NULL, (size_t)n * width);
    GET(dso, NULL, sizeof(float) * n);
    GET(dqso, NULL, sizeof(int32_t) * n);
    GET(dcnt, NULL, sizeof(unsigned));
    BN_CUDA_TRY(bn_cuda_i2s_sanitize(dw, (int64_t)M * K / 4, 0));
    const bn_cuda_next_norm nn = {dn, mode, eps, dqo, dso, dqso, dcnt};
    for (int rep = 0; rep < 2; rep++) { // the second run checks that the counter was reset
        if (add) BN_CUDA_TRY(cudaMemcpy(dy, y, sizeof(float) * n * M, cudaMemcpyHostToDevice));
        BN_CUDA_TRY(cudaMemset(dqo, 0x55, (size_t)n * width)); // poison: every code must be written
        if (finish(bn_cuda_ternary_gemv(dw, K, M, dq, ds, dqs, n, rowscale(scales, r1, r2), add, dy, M, &nn, false, 0),
                   NULL, NULL, 0, err))
            return -1;
    }
    unsigned cnt = 1;
    BN_CUDA_TRY(cudaMemcpy(&cnt, dcnt, sizeof cnt, cudaMemcpyDeviceToHost));
    if (cnt != 0) return bn_errorf(err, "cuda_testing: the GEMV left its counter at %u", cnt);
    BN_CUDA_TRY(cudaMemcpy(y, dy, sizeof(float) * n * M, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(q_out, dqo, (size_t)n * width, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(s_out, dso, sizeof(float) * n, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(qsum_out, dqso, sizeof(int32_t) * n, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int bn_cuda_test_rmsnorm_quant(const float *x, const float *w, int n_tok, int n, float eps,
                                          bn_nq_mode mode, int8_t *q, float *s, int32_t *qsum, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    bn_dev_bufs bufs;
    float *dx, *dw, *ds;
    int8_t *dq;
    int32_t *dqs;
    const int ldx = mode & BN_NQ_GLU ? 2 * n : n;
    GET(dx, x, sizeof(float) * n_tok * ldx);
    GET(dw, w, sizeof(float) * n);
    GET(dq, NULL, (size_t)n_tok * n);
    GET(ds, NULL, sizeof(float) * n_tok);
    GET(dqs, NULL, sizeof(int32_t) * n_tok);
    if (finish(bn_cuda_rmsnorm_quant(dx, ldx, dw, n_tok, n, eps, mode, dq, ds, dqs, false, 0), q, dq,
               (size_t)n_tok * n, err))
        return -1;
    BN_CUDA_TRY(cudaMemcpy(s, ds, sizeof(float) * n_tok, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(qsum, dqs, sizeof(int32_t) * n_tok, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int bn_cuda_test_rope_kv(const float *qkv, const int32_t *pos, int n_tok, int n_head,
                                    int n_head_kv, int hd, int n_rot, bool neox, float base, int n_ctx,
                                    uint16_t *q_out, uint16_t *k_cache, uint16_t *v_cache,
                                    bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    for (int t = 0; t < n_tok; t++)
        if (pos[t] < 0 || pos[t] >= n_ctx) return bn_errorf(err, "cuda_testing: bad position");
    bn_dev_bufs bufs;
    const int nq = n_head * hd, nkv = n_head_kv * hd, ld = nq + 2 * nkv;
    float *dqkv;
    int32_t *dpos;
    __half *dq, *dk, *dv;
    if (n_rot <= 0 || n_rot % 2 || n_rot > hd) return bn_errorf(err, "cuda_testing: bad n_rot");
    const float theta_scale = powf(base, -2.0f / (float)n_rot); // as cpu/ops.c rope
    GET(dqkv, qkv, sizeof(float) * n_tok * ld);
    GET(dpos, pos, sizeof(int32_t) * n_tok);
    GET(dq, NULL, sizeof(__half) * n_tok * nq);
    GET(dk, k_cache, sizeof(__half) * n_ctx * nkv);
    GET(dv, v_cache, sizeof(__half) * n_ctx * nkv);
    if (finish(bn_cuda_rope_kv(dqkv, ld, dpos, n_tok, n_head, n_head_kv, hd, n_rot, neox, theta_scale, n_ctx, dq, dk,
                               dv, false, 0),
               q_out, dq, sizeof(__half) * n_tok * nq, err))
        return -1;
    BN_CUDA_TRY(cudaMemcpy(k_cache, dk, sizeof(__half) * n_ctx * nkv, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(v_cache, dv, sizeof(__half) * n_ctx * nkv, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int bn_cuda_test_attention(int kernel, const uint16_t *q, const uint16_t *k_cache,
                                      const uint16_t *v_cache, const int32_t *pos, int n_tok, int n_head,
                                      int n_head_kv, int hd, int n_ctx, float *out, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    for (int t = 0; t < n_tok; t++)
        if (pos[t] < 0 || pos[t] >= n_ctx) return bn_errorf(err, "cuda_testing: bad position");
    bn_dev_bufs bufs;
    const int nq = n_head * hd, nkv = n_head_kv * hd;
    __half *dq, *dk, *dv;
    int32_t *dpos;
    float *dout;
    GET(dq, q, sizeof(__half) * n_tok * nq);
    GET(dk, k_cache, sizeof(__half) * n_ctx * nkv);
    GET(dv, v_cache, sizeof(__half) * n_ctx * nkv);
    GET(dpos, pos, sizeof(int32_t) * n_tok);
    GET(dout, NULL, sizeof(float) * n_tok * nq);
    BN_CUDA_TRY(cudaMemset(dout, 0xff, sizeof(float) * n_tok * nq)); // NaN: every output must be written
    cudaError_t e;
    if (kernel == 0) {
        BN_CUDA_TRY(bn_cuda_attention_setup(hd, n_ctx));
        e = bn_cuda_attention(dq, dk, dv, dpos, n_tok, n_head, n_head_kv, hd, n_ctx, dout, false, 0);
    } else {
        e = bn_cuda_attention_prefill(dq, dk, dv, dpos, n_tok, n_head, n_head_kv, hd, n_ctx, dout, false, 0);
    }
    return finish(e, out, dout, sizeof(float) * n_tok * nq, err);
}

// n_split -1 asks for the one-kernel decode attention: *keys = the keys it is
// launched for (the device's limit for the shape, at most n_ctx), which every
// position must be below; else *keys = 0.
static int short_attention_keys(int n_split, int n_head, int n_head_kv, int hd, int n_rot, int n_ctx,
                                const int32_t *pos, int n_tok, int *keys, bn_error *err) {
    *keys = 0;
    if (n_split != -1) return 0;
    int k = bn_cuda_attd_short_keys(n_head, n_head_kv, hd, n_rot);
    if (k > n_ctx) k = n_ctx;
    for (int t = 0; t < n_tok; t++)
        if (pos[t] >= k)
            return bn_errorf(err, "cuda_testing: position %d is past the %d keys of the one-kernel attention", pos[t],
                             k);
    *keys = k;
    return 0;
}

extern "C" int bn_cuda_test_attd_short_keys(int n_head, int n_head_kv, int hd, int n_rot, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    return bn_cuda_attd_short_keys(n_head, n_head_kv, hd, n_rot);
}

// The decode attention of n_tok tokens (rows of qkv at pos[t]), in slot seq[t]
// of caches holding n_seq slots, or (seq NULL, n_tok 1) the one cache; launched
// reps times (a second launch checks that the counters were put back), then the
// outputs, the caches and (norm_w) the next norm's codes are read back. Both
// harnesses below are this.
static int decode_attention(const float *qkv, const int32_t *pos, const int32_t *seq, int n_tok, int n_seq, int n_head,
                            int n_head_kv, int hd, int n_rot, bool neox, float base, int n_ctx, int n_split, int reps,
                            uint16_t *k_cache, uint16_t *v_cache, float *out, const float *norm_w, float eps,
                            int8_t *q_out, float *s_out, int32_t *qsum_out, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if (n_tok <= 0 || n_tok > n_seq || (!seq && n_tok != 1)) return bn_errorf(err, "cuda_testing: bad token count");
    if (n_rot <= 0 || n_rot % 2 || n_rot > hd) return bn_errorf(err, "cuda_testing: bad n_rot");
    for (int t = 0; t < n_tok; t++)
        if (pos[t] < 0 || pos[t] >= n_ctx || (seq && (seq[t] < 0 || seq[t] >= n_seq)))
            return bn_errorf(err, "cuda_testing: bad position or slot");
    int short_keys = 0;
    if (short_attention_keys(n_split, n_head, n_head_kv, hd, n_rot, n_ctx, pos, n_tok, &short_keys, err)) return -1;
    if (n_split <= 0) n_split = bn_cuda_attd_splits(n_ctx);
    bn_dev_bufs bufs;
    const int nq = n_head * hd, nkv = n_head_kv * hd, ld = nq + 2 * nkv;
    const size_t slot = (size_t)n_ctx * nkv, n_cnt = (size_t)n_tok * n_head + 1; // group counters, then nn's
    float *dqkv, *dout, *dn = NULL, *dso;
    __half *dk, *dv;
    int32_t *dpos, *dseq = NULL, *dqso;
    int8_t *dqo;
    void *scratch;
    unsigned *dcnt;
    GET(dqkv, qkv, sizeof(float) * ld * n_tok);
    GET(dpos, pos, sizeof(int32_t) * n_tok);
    if (seq) GET(dseq, seq, sizeof(int32_t) * n_tok);
    GET(dk, k_cache, sizeof(__half) * slot * n_seq);
    GET(dv, v_cache, sizeof(__half) * slot * n_seq);
    GET(dout, NULL, sizeof(float) * nq * n_tok);
    GET(scratch, NULL, bn_cuda_attd_scratch_bytes(n_tok, n_head, hd, n_ctx, n_split));
    GET(dcnt, NULL, sizeof(unsigned) * n_cnt);
    GET(dqo, NULL, (size_t)nq * n_tok);
    GET(dso, NULL, sizeof(float) * n_tok);
    GET(dqso, NULL, sizeof(int32_t) * n_tok);
    if (norm_w) GET(dn, norm_w, sizeof(float) * nq);
    const bn_cuda_next_norm nn = {dn, 0, eps, dqo, dso, dqso, dcnt + n_cnt - 1};
    const float theta_scale = powf(base, -2.0f / (float)n_rot); // as cpu/ops.c rope
    const int64_t stride = seq ? (int64_t)slot : 0;
    for (int rep = 0; rep < reps; rep++) {
        BN_CUDA_TRY(cudaMemset(dout, 0xff, sizeof(float) * nq * n_tok)); // NaN: every output must be written
        const cudaError_t e =
            short_keys ? bn_cuda_attention_decode_short(dqkv, ld, dpos, n_tok, n_head, n_head_kv, hd, n_rot, neox,
                                                        theta_scale, n_ctx, short_keys, dk, dv, dseq, stride, dout,
                                                        &nn, false, 0)
                       : bn_cuda_attention_decode(dqkv, ld, dpos, n_tok, n_head, n_head_kv, hd, n_rot, neox,
                                                  theta_scale, n_ctx, n_split, dk, dv, dseq, stride, scratch, dcnt,
                                                  dout, &nn, false, 0);
        if (finish(e, NULL, NULL, 0, err)) return -1;
    }
    unsigned *cnt = (unsigned *)malloc(sizeof(unsigned) * n_cnt);
    if (!cnt) return bn_errorf(err, "cuda_testing: out of host memory");
    const cudaError_t e = cudaMemcpy(cnt, dcnt, sizeof(unsigned) * n_cnt, cudaMemcpyDeviceToHost);
    size_t set = n_cnt; // the first counter left set; n_cnt: none
    for (size_t i = 0; e == cudaSuccess && i < n_cnt; i++)
        if (cnt[i]) {
            set = i;
            break;
        }
    free(cnt);
    BN_CUDA_TRY(e);
    if (set != n_cnt) return bn_errorf(err, "cuda_testing: decode attention left counter %zu set", set);
    BN_CUDA_TRY(cudaMemcpy(out, dout, sizeof(float) * nq * n_tok, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(k_cache, dk, sizeof(__half) * slot * n_seq, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(v_cache, dv, sizeof(__half) * slot * n_seq, cudaMemcpyDeviceToHost));
    if (norm_w) {
        BN_CUDA_TRY(cudaMemcpy(q_out, dqo, (size_t)nq * n_tok, cudaMemcpyDeviceToHost));
        BN_CUDA_TRY(cudaMemcpy(s_out, dso, sizeof(float) * n_tok, cudaMemcpyDeviceToHost));
        BN_CUDA_TRY(cudaMemcpy(qsum_out, dqso, sizeof(int32_t) * n_tok, cudaMemcpyDeviceToHost));
    }
    return 0;
}

extern "C" int bn_cuda_test_attention_decode(const float *qkv, int32_t pos, int n_head, int n_head_kv, int hd,
                                             int n_rot, bool neox, float base, int n_ctx, int n_split, uint16_t *k_cache,
                                             uint16_t *v_cache, float *out, const float *norm_w, float eps,
                                             int8_t *q_out, float *s_out, int32_t *qsum_out, bn_error *err) {
    return decode_attention(qkv, &pos, NULL, 1, 1, n_head, n_head_kv, hd, n_rot, neox, base, n_ctx, n_split, 2,
                            k_cache, v_cache, out, norm_w, eps, q_out, s_out, qsum_out, err);
}

extern "C" int bn_cuda_test_attention_decode_seqs(const float *qkv, const int32_t *pos, const int32_t *seq, int n_tok,
                                                  int n_seq, int n_head, int n_head_kv, int hd, int n_rot, bool neox,
                                                  float base, int n_ctx, int n_split, uint16_t *k_cache,
                                                  uint16_t *v_cache, float *out, const float *norm_w, float eps,
                                                  int8_t *q_out, float *s_out, int32_t *qsum_out, bn_error *err) {
    return decode_attention(qkv, pos, seq, n_tok, n_seq, n_head, n_head_kv, hd, n_rot, neox, base, n_ctx, n_split, 1,
                            k_cache, v_cache, out, norm_w, eps, q_out, s_out, qsum_out, err);
}

extern "C" int bn_cuda_test_argmax_rows(const float *x, int rows, int n, int32_t *out, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if (rows <= 0 || n <= 0) return bn_errorf(err, "cuda_testing: bad argmax shape");
    bn_dev_bufs bufs;
    float *dx;
    int32_t *dout;
    GET(dx, x, sizeof(float) * (size_t)rows * n);
    GET(dout, NULL, sizeof(int32_t) * rows);
    return finish(bn_cuda_argmax_rows(dx, rows, n, n, dout, 0), out, dout, sizeof(int32_t) * rows, err);
}

extern "C" int bn_cuda_test_top_rows(const float *x, int rows, int n, bn_top *out, double *sums, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    if (rows <= 0 || n <= 0) return bn_errorf(err, "cuda_testing: bad top shape");
    bn_dev_bufs bufs;
    float *dx;
    bn_top *dout;
    double *dsums = NULL;
    GET(dx, x, sizeof(float) * (size_t)rows * n);
    GET(dout, NULL, sizeof(bn_top) * BN_TOP_MAX * rows);
    if (sums) GET(dsums, NULL, sizeof(double) * rows);
    if (finish(bn_cuda_top_rows(dx, rows, n, n, dout, dsums, 0), out, dout, sizeof(bn_top) * BN_TOP_MAX * rows, err))
        return -1;
    return finish(cudaSuccess, sums, dsums, sizeof(double) * rows, err);
}

extern "C" int bn_cuda_test_embedding(const void *table, int type, int n_vocab, int n_embd,
                                      const int32_t *tokens, int n_tok, float *x, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    for (int t = 0; t < n_tok; t++)
        if (tokens[t] < 0 || tokens[t] >= n_vocab) return bn_errorf(err, "cuda_testing: bad token");
    bn_dev_bufs bufs;
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
    bn_dev_bufs bufs;
    float *dx, *dw;
    void *dout;
    const size_t osz = (size_t)n_tok * n * (out_type == BN_CUDA_F32 ? 4 : 2);
    GET(dx, x, sizeof(float) * n_tok * n);
    GET(dw, w, sizeof(float) * n);
    GET(dout, NULL, osz);
    return finish(bn_cuda_rmsnorm_cast(dx, n, dw, n_tok, n, eps, out_type, dout, NULL, false, 0), out, dout, osz, err);
}

extern "C" int bn_cuda_test_argmax(const float *x, int n, int32_t *out, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    bn_dev_bufs bufs;
    float *dx;
    int32_t *dout;
    GET(dx, x, sizeof(float) * n);
    GET(dout, NULL, sizeof(int32_t));
    return finish(bn_cuda_argmax(dx, n, dout, 0), out, dout, sizeof(int32_t), err);
}

extern "C" int bn_cuda_test_rmsnorm_cast_q8(const float *x, const float *w, int n_tok, int n, float eps,
                                            int8_t *q, float *xscale, bn_error *err) {
    if (bn_cuda_probe_device(err)) return -1;
    bn_dev_bufs bufs;
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
    bn_dev_bufs bufs;
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
    bn_dev_bufs bufs;
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
    bn_dev_bufs bufs;
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
