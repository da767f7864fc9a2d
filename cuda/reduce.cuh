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

#endif
