// attention_decode.cuh - what the two decode-attention kernels share: the split-KV
// pair (attention_decode.cu) and the one-kernel short-context form
// (attention_decode_short.cu).
#ifndef BN_CUDA_ATTENTION_DECODE_CUH
#define BN_CUDA_ATTENTION_DECODE_CUH

#include <cuda_fp16.h>

#include "cuda_kernels.cuh"
#include "norm_quant.cuh"

#define BN_ATTD_QPB 8 // query heads a block serves at most

__device__ __forceinline__ void bn_half8_to_float(uint4 u, float *f) {
    const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 v = __half22float2(h[i]);
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
    }
}

// Scores: dot[h] += query h (f16-rounded floats, hd apart in sq) . the key's
// elements 8c..8c+7 (kf), for the block's qpb heads.
__device__ __forceinline__ void bn_attd_dot8(const float *sq, int hd, int qpb, int c, const float *kf, float *dot) {
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++)
        if (h < qpb) {
            const float4 q0 = *reinterpret_cast<const float4 *>(sq + h * hd + 8 * c);
            const float4 q1 = *reinterpret_cast<const float4 *>(sq + h * hd + 8 * c + 4);
            dot[h] += q0.x * kf[0] + q0.y * kf[1] + q0.z * kf[2] + q0.w * kf[3] + q1.x * kf[4] + q1.y * kf[5] +
                      q1.z * kf[6] + q1.w * kf[7];
        }
}

// The eight lanes that share a key add up their parts of each head's dot
// product; every lane of the warp must call it.
__device__ __forceinline__ void bn_attd_sum8(float *dot, int qpb) {
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++) {
        if (h >= qpb) break;
        dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 4);
        dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 2);
        dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 1);
    }
}

// p.V: acc[h][e] += p[h * pstride + j] * v[e] (V row j, 8 dims) for the qpb heads.
__device__ __forceinline__ void bn_attd_pv8(const float *p, int pstride, int j, int qpb, const float *v,
                                            float (&acc)[BN_ATTD_QPB][8]) {
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++)
        if (h < qpb) {
            const float pj = p[h * pstride + j];
#pragma unroll
            for (int e = 0; e < 8; e++) acc[h][e] += pj * v[e];
        }
}

// A lane's p.V sums into the partials of its key row kr (kp rows, qpb x hd each),
// after a barrier; bn_attd_partials_sum adds element o over the rows in order.
__device__ __forceinline__ void bn_attd_store_partials(float *part, int kr, int dc, int hd, int qpb,
                                                       const float (&acc)[BN_ATTD_QPB][8]) {
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++)
        if (h < qpb)
#pragma unroll
            for (int e = 0; e < 8; e++) part[(kr * qpb + h) * hd + dc * 8 + e] = acc[h][e];
}

__device__ __forceinline__ float bn_attd_partials_sum(const float *part, int kp, int width, int o) {
    float sum = 0.f;
    for (int r = 0; r < kp; r++) sum += part[r * width + o];
    return sum;
}

// After a block has written its heads of out (nq floats a token, gridDim.z
// tokens): with nn set, the last of the gridDim.x * gridDim.z blocks that call
// this quantizes every token's row for the O projection, as ternary_gemv.cu's
// last block does; hs: nq floats of shared memory no longer in use.
__device__ __forceinline__ void bn_attd_next_norm(const bn_cuda_next_norm &nn, const float *out, int nq, float *hs) {
    __shared__ bool s_last;
    if (nn.w == NULL) return;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) s_last = atomicAdd(nn.counter, 1u) == gridDim.x * gridDim.z - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    for (int t = 0; t < (int)gridDim.z; t++) {
        int8_t *qo = nn.q + (int64_t)t * nq;
        float sc;
        int qs;
        bn_block_norm_quant(out + (int64_t)t * nq, nq, nn.w, nn.eps, nn.mode, hs, &sc, &qs,
                            [&](int i, int v) { qo[i] = (int8_t)v; });
        if (threadIdx.x == 0) {
            nn.s[t] = sc;
            nn.qsum[t] = qs;
        }
    }
    if (threadIdx.x == 0) *nn.counter = 0; // ready for the next launch (graph replay)
}

#endif
