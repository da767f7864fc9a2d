// attention.cu - causal GQA attention over the f16 KV cache, the plain way.
//
// The fallback for head dims the tensor-core kernel (attention_prefill.cu) is not
// built for, and the simplest statement of what both fast kernels compute. One
// block of 256 threads per (query head, token); all scores in shared memory
// (n_ctx floats, which caps the context). The cache is head-major
// ([kv head][n_ctx][hd]). Three phases:
// 1. scores: a warp per cache row, lanes split head_dim in half2 loads, q in smem;
// 2. softmax: block max, exp, block sum (double); p = f16(exp(s - max) * (1/sum)), the f16
//    rounding bitnet.cpp applies when p meets the f16 V;
// 3. p.V: 256/hd groups of hd threads, each group a strided share of the rows,
//    a thread one output dimension (coalesced V rows), groups summed in smem.
// K/V of the whole batch are written first (rope_kv), and token t reads rows
// 0..pos[t]. CPU twin: bn_attention_head (cpu/ops.c).
#include "cuda_kernels.cuh"
#include "pdl.cuh"
#include "reduce.cuh"
#include "smem.cuh"

#define BN_ATT_THREADS 256

__global__ void __launch_bounds__(BN_ATT_THREADS)
bn_attention_kernel(const __half *__restrict__ q, const __half *__restrict__ k_cache,
                    const __half *__restrict__ v_cache, const int32_t *__restrict__ pos, int n_head,
                    int n_head_kv, int hd, int n_ctx, float *__restrict__ out) {
    extern __shared__ float smem[];
    __shared__ float red[32];
    __shared__ double dred[32];
    bn_pdl_wait();
    bn_pdl_trigger();
    const int h = blockIdx.x, t = blockIdx.y;
    const int L = pos[t] + 1;
    const int kvh = h / (n_head / n_head_kv);
    const int64_t kvstride = hd;
    const int groups = BN_ATT_THREADS / hd;
    float *sq = smem;                  // hd
    float *part = sq + hd;             // groups * hd
    float *sc = part + groups * hd;    // L scores / probabilities
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = BN_ATT_THREADS / 32;

    const __half *qh = q + ((int64_t)t * n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += BN_ATT_THREADS) sq[d] = __half2float(qh[d]);
    __syncthreads();

    const float scale = 1.0f / sqrtf((float)hd);
    const __half *kbase = k_cache + (int64_t)kvh * n_ctx * hd;
    for (int j = warp; j < L; j += nwarp) {
        const __half2 *kr = reinterpret_cast<const __half2 *>(kbase + j * kvstride);
        float dot = 0.f;
        for (int d2 = lane; d2 < hd / 2; d2 += 32) {
            const float2 k2 = __half22float2(kr[d2]);
            dot += k2.x * sq[2 * d2] + k2.y * sq[2 * d2 + 1];
        }
        dot = bn_warp_sum(dot);
        if (lane == 0) sc[j] = dot * scale;
    }
    __syncthreads();

    float mx = -INFINITY;
    for (int j = threadIdx.x; j < L; j += BN_ATT_THREADS) mx = fmaxf(mx, sc[j]);
    mx = bn_block_max(mx, red);
    // The denominator in double and its reciprocal rounded once, as cpu/ops.c
    // bn_softmax (and ggml) do.
    double sum = 0.0;
    for (int j = threadIdx.x; j < L; j += BN_ATT_THREADS) {
        const float e = expf(sc[j] - mx);
        sc[j] = e;
        sum += e;
    }
    sum = bn_block_sum(sum, dred); // its barriers also publish sc[]
    const float inv = (float)(1.0 / sum);
    for (int j = threadIdx.x; j < L; j += BN_ATT_THREADS)
        sc[j] = __half2float(__float2half_rn(sc[j] * inv));
    __syncthreads();

    const int g = threadIdx.x / hd, d = threadIdx.x % hd;
    if (g < groups) {
        const __half *vb = v_cache + (int64_t)kvh * n_ctx * hd + d;
        float acc = 0.f;
        for (int j = g; j < L; j += groups) acc += sc[j] * __half2float(vb[j * kvstride]);
        part[g * hd + d] = acc;
    }
    __syncthreads();
    if (threadIdx.x < hd) {
        float acc = 0.f;
        for (int gg = 0; gg < groups; gg++) acc += part[gg * hd + threadIdx.x];
        out[((int64_t)t * n_head + h) * hd + threadIdx.x] = acc;
    }
}

size_t bn_cuda_attention_smem(int hd, int n_ctx) {
    const int groups = BN_ATT_THREADS / hd;
    return sizeof(float) * ((size_t)hd * (1 + groups) + (size_t)n_ctx);
}

cudaError_t bn_cuda_attention_setup(int hd, int n_ctx) {
    return bn_cuda_allow_smem(bn_attention_kernel, bn_cuda_attention_smem(hd, n_ctx));
}

cudaError_t bn_cuda_attention(const __half *q, const __half *k_cache, const __half *v_cache,
                              const int32_t *pos, int n_tok, int n_head, int n_head_kv, int hd,
                              int n_ctx, float *out, bool pdl, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (hd <= 0 || hd > BN_ATT_THREADS || hd % 2 || n_head_kv <= 0 || n_head % n_head_kv)
        return cudaErrorInvalidValue;
    const dim3 grid(n_head, n_tok);
    return bn_launch(pdl, bn_attention_kernel, grid, dim3(BN_ATT_THREADS), bn_cuda_attention_smem(hd, n_ctx),
                     st, q, k_cache, v_cache, pos, n_head, n_head_kv, hd, n_ctx, out);
}
