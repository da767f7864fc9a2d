// rope_kv.cu - RoPE on Q and K of a batch of tokens (rope.cuh: NEOX or adjacent
// pairs), f16 rounding, KV-cache write (the prefill path; a decode step does this
// inside attention_decode.cu).
//
// One block per token. Its n_rot/2 rotation angles are computed once into
// shared memory, then each thread produces output elements independently (it
// reads its rotation partner from the f32 projection). Q goes out as f16
// (bitnet.cpp rounds Q when it meets the f16 K cache); K and V are written as
// f16 into cache row pos[t] of their head ([kv head][n_ctx][hd]). sincosf is the
// accurate (non-intrinsic) version.
// CPU twin: the RoPE + f16 KV write in cpu/forward.c (rope_store_token).
#include "cuda_kernels.cuh"
#include "pdl.cuh"
#include "rope.cuh"

#define BN_ROPE_THREADS 256
#define BN_ROPE_MAX_HALF 256 // n_rot <= hd <= 512

__global__ void __launch_bounds__(BN_ROPE_THREADS)
bn_rope_kv_kernel(const float *__restrict__ qkv, int64_t ldqkv, const int32_t *__restrict__ pos,
                  int n_head, int n_head_kv, int hd, int n_rot, bool neox, float theta_scale, int n_ctx,
                  __half *__restrict__ q_out, __half *__restrict__ k_cache, __half *__restrict__ v_cache) {
    __shared__ float cs[BN_ROPE_MAX_HALF], sn[BN_ROPE_MAX_HALF];
    bn_pdl_wait();
    bn_pdl_trigger();
    const int t = blockIdx.x;
    const int p = pos[t], half = n_rot / 2;
    bn_rope_table(p, half, theta_scale, cs, sn);
    __syncthreads();
    const float *row = qkv + t * ldqkv;
    const int nq = n_head * hd, nkv = n_head_kv * hd;
    for (int e = threadIdx.x; e < nq + 2 * nkv; e += blockDim.x) {
        const int part = e < nq ? 0 : e < nq + nkv ? 1 : 2; // Q, K, V
        const int e2 = e - (part == 0 ? 0 : part == 1 ? nq : nq + nkv);
        const int hh = e2 / hd, d = e2 - hh * hd;
        const float *head = row + e - d;
        const float v = part < 2 ? bn_rope_elem(head, d, n_rot, neox, cs, sn) : head[d];
        const __half hv = __float2half_rn(v);
        const int64_t crow = ((int64_t)hh * n_ctx + p) * hd + d;
        if (part == 0)
            q_out[(int64_t)t * nq + e2] = hv;
        else if (part == 1)
            k_cache[crow] = hv;
        else
            v_cache[crow] = hv;
    }
}

cudaError_t bn_cuda_rope_kv(const float *qkv, int64_t ldqkv, const int32_t *pos, int n_tok,
                            int n_head, int n_head_kv, int hd, int n_rot, bool neox, float theta_scale,
                            int n_ctx, __half *q_out, __half *k_cache, __half *v_cache, bool pdl,
                            cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (n_rot <= 0 || n_rot % 2 || n_rot > hd || n_rot / 2 > BN_ROPE_MAX_HALF) return cudaErrorInvalidValue;
    return bn_launch(pdl, bn_rope_kv_kernel, dim3(n_tok), dim3(BN_ROPE_THREADS), 0, st, qkv, ldqkv, pos,
                     n_head, n_head_kv, hd, n_rot, neox, theta_scale, n_ctx, q_out, k_cache, v_cache);
}
