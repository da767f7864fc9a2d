// reduce.cuh - warp and block reductions shared by the kernels.
//
// block_sum/block_max give every thread the total, reduced in the same order in
// every warp, so a value computed twice (fused GEMV prologue and the standalone
// norm kernel) is bit-identical as long as the block size is the same.
#ifndef BN_CUDA_REDUCE_CUH
#define BN_CUDA_REDUCE_CUH

template <typename T> __device__ __forceinline__ T bn_warp_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float bn_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// red: caller's __shared__ array of at least 32 T. The leading barrier makes it
// safe to call back to back with the same buffer.
template <typename T> __device__ __forceinline__ T bn_block_sum(T v, T *red) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = bn_warp_sum(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : T(0);
    return bn_warp_sum(v);
}

__device__ __forceinline__ float bn_block_max(float v, float *red) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = bn_warp_max(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    return bn_warp_max(v);
}

// ---- argmax ------------------------------------------------------------------------
// (bv, bi) is the best (value, index) seen so far, starting from (-INFINITY,
// BN_ARGMAX_NONE), which is no candidate. v at index i replaces it when larger,
// or equal with a lower index: ties go to the lowest index, as a scalar loop
// would. A value that is not finite (a NaN or an infinity) counts as (+INFINITY,
// -1), above every number, so the id is -1 exactly when the row holds one, and
// the host reports that instead of a token (forward_cuda.cu: check_output). This
// is a total order on the candidates, so any reduction order gives the same
// winner.
#define BN_ARGMAX_NONE 0x7fffffff

__device__ __forceinline__ void bn_argmax_take(float &bv, int &bi, float v, int i) {
    if (!isfinite(v) && i != BN_ARGMAX_NONE) {
        v = INFINITY;
        i = -1;
    }
    if (v > bv || (v == bv && i < bi)) {
        bv = v;
        bi = i;
    }
}

__device__ __forceinline__ void bn_warp_argmax(float &bv, int &bi) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        bn_argmax_take(bv, bi, ov, oi);
    }
}

// The block's best (value, index), valid in thread 0. sv, si: caller's __shared__
// arrays of 32; the leading barrier makes back-to-back calls safe.
__device__ __forceinline__ void bn_block_argmax(float &bv, int &bi, float *sv, int *si) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    bn_warp_argmax(bv, bi);
    __syncthreads();
    if (lane == 0) {
        sv[wid] = bv;
        si[wid] = bi;
    }
    __syncthreads();
    if (wid == 0) {
        bv = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : BN_ARGMAX_NONE;
        bn_warp_argmax(bv, bi);
    }
}

#endif
