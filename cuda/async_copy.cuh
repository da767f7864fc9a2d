// async_copy.cuh - cp.async (sm_80+): 16-byte global -> shared copies that run
// in the background while the thread goes on.
//
// The decode GEMVs issue their whole weight slice this way before they wait for
// the previous kernel (pdl.cuh), so the weight stream overlaps that kernel's
// tail instead of starting after it. .cg: cached in L2 only, the data is read once.
#ifndef BN_CUDA_ASYNC_COPY_CUH
#define BN_CUDA_ASYNC_COPY_CUH

#include <stdint.h>

#include <cuda_runtime.h>

// dst: a shared-memory address (__cvta_generic_to_shared).
__device__ __forceinline__ void bn_cp_async16(uint32_t dst, const void *gmem_src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(gmem_src) : "memory");
}

__device__ __forceinline__ void bn_cp_async16(void *smem_dst, const void *gmem_src) {
    bn_cp_async16((uint32_t)__cvta_generic_to_shared(smem_dst), gmem_src);
}

// The same, or 16 zero bytes when !full (nothing is read then).
__device__ __forceinline__ void bn_cp_async16_zfill(void *smem_dst, const void *gmem_src, bool full) {
    const unsigned dst = (unsigned)__cvta_generic_to_shared(smem_dst);
    const int n = full ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(gmem_src), "r"(n) : "memory");
}

__device__ __forceinline__ void bn_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

// Waits for all of this thread's copies; a __syncthreads() after it publishes
// every thread's copies to the block.
__device__ __forceinline__ void bn_cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// Waits until at most N of this thread's committed groups are still in flight.
template <int N> __device__ __forceinline__ void bn_cp_async_wait_group() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

#endif
