// rope_kv.cu - NEOX RoPE on Q and K, f16 rounding, KV-cache write.
//
// One block per token; each thread produces output elements independently (it
// reads its rotation partner i +/- n_rot/2 from the f32 projection), so there is
// no synchronisation. Q goes out as f16 (bitnet.cpp rounds Q when it meets the
// f16 K cache), K and V are written as f16 into cache row pos[t].
// The angles are built exactly as bn_rope_neox (cpu/ops.c) and ggml build them:
// theta_i = pos * ts * ts * ... (i float multiplies, left to right) with
// ts = powf(base, -2/n_rot) computed on the host. A per-pair pow (even in double)
// differs from that running product by a few ulp that grow with i and pos, and
// those flip int8 roundings in later layers. The rotation uses explicit _rn
// products so nvcc cannot contract them into FMAs the CPU does not use.
// sincosf is the accurate (non-intrinsic) version.
// CPU twin: rope_neox + the f16 KV write in cpu/ops.c.
#include "cuda_kernels.cuh"

__global__ void bn_rope_kv_kernel(const float *__restrict__ qkv, int64_t ldqkv,
                                  const int32_t *__restrict__ pos, int n_head, int n_head_kv, int hd,
                                  int n_rot, float theta_scale,
                                  __half *__restrict__ q_out, __half *__restrict__ k_cache,
                                  __half *__restrict__ v_cache) {
    const int t = blockIdx.x;
    const int64_t p = pos[t];
    const float *row = qkv + t * ldqkv;
    const int nq = n_head * hd, nkv = n_head_kv * hd, half = n_rot / 2;
    for (int e = threadIdx.x; e < nq + nkv; e += blockDim.x) {
        const bool isq = e < nq;
        const int e2 = isq ? e : e - nq;
        const int d = e2 % hd;
        const float *head = row + (isq ? 0 : nq) + (e2 - d);
        float v = head[d];
        if (d < n_rot) {
            const int i = d < half ? d : d - half;
            float theta = (float)p;
            for (int k = 0; k < i; k++) theta = __fmul_rn(theta, theta_scale);
            float sn, cs;
            sincosf(theta, &sn, &cs);
            const float x0 = head[d < half ? d : d - half], x1 = head[d < half ? d + half : d];
            v = d < half ? __fsub_rn(__fmul_rn(x0, cs), __fmul_rn(x1, sn))
                         : __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, cs));
        }
        const __half hv = __float2half_rn(v);
        if (isq)
            q_out[(int64_t)t * nq + e2] = hv;
        else
            k_cache[p * nkv + e2] = hv;
    }
    for (int e = threadIdx.x; e < nkv; e += blockDim.x)
        v_cache[p * nkv + e] = __float2half_rn(row[nq + nkv + e]);
}

cudaError_t bn_cuda_rope_kv(const float *qkv, int64_t ldqkv, const int32_t *pos, int n_tok,
                            int n_head, int n_head_kv, int hd, int n_rot, float theta_scale,
                            __half *q_out, __half *k_cache, __half *v_cache, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    bn_rope_kv_kernel<<<n_tok, 256, 0, st>>>(qkv, ldqkv, pos, n_head, n_head_kv, hd, n_rot, theta_scale,
                                             q_out, k_cache, v_cache);
    return cudaGetLastError();
}
