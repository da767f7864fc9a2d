// smem.cuh - a kernel's dynamic shared memory past its default.
//
// Unless raised (cudaFuncAttributeMaxDynamicSharedMemorySize), a kernel may take
// 48 KiB of shared memory less its own static __shared__ arrays, so a launcher
// cannot compare its dynamic size with 48 KiB alone. bn_cuda_allow_smem raises
// the kernel's limit to `bytes` where the limit the kernel has (which counts its
// static arrays) is lower; it only ever raises it, as the limit is per kernel and
// process, not per backend. Call it outside graph capture: at set-up, or at a
// launcher's first use of a size, which is eager (a decode step is captured after
// an eager run of the same form).
#ifndef BN_CUDA_SMEM_CUH
#define BN_CUDA_SMEM_CUH

#include <stddef.h>

#include <cuda_runtime.h>

template <typename Kernel> cudaError_t bn_cuda_allow_smem(Kernel *kernel, size_t bytes) {
    cudaFuncAttributes a;
    const cudaError_t e = cudaFuncGetAttributes(&a, kernel);
    if (e != cudaSuccess) return e;
    if ((size_t)a.maxDynamicSharedSizeBytes >= bytes) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

#endif
