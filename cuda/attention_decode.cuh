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
