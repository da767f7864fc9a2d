// pdl.cuh - programmatic dependent launch (PDL): a kernel starts while the one
// before it on the stream is still finishing.
//
// A decode step is a chain of short kernels, each dependent on the one before.
// Launched plainly, each waits for its predecessor to drain before its blocks
// are even scheduled. Launched with PDL (sm_90+, bn_launch(pdl = true, ...)),
// its blocks become resident as soon as every block of the predecessor has
// called bn_pdl_trigger() or exited, and they may do work that reads nothing the
// predecessor writes: the ternary GEMVs fetch their weight slices then. Then:
//
//   bn_pdl_wait()    blocks until every earlier kernel on the stream has finished
//                    and its writes are visible. A kernel must call it before it
//                    reads anything an earlier kernel wrote and before it writes
//                    anything (an earlier kernel may still be reading it).
//   bn_pdl_trigger() lets the next kernel's blocks launch. Harmless anywhere.
//
// Before its wait, a kernel may also read what kernels two or more places back
// wrote (the decode attention's one-kernel form reads pos and the older K/V rows
// then), but only where the kernel just before it triggers after its own wait:
// a kernel that triggers first (the head's norm and GEMVs do) may let its
// successor start while its own predecessor is still running.
//
// Both are no-ops before sm_90 and in kernels launched without PDL, so every
// kernel calls them unconditionally and the launch decides.
#ifndef BN_CUDA_PDL_CUH
#define BN_CUDA_PDL_CUH

#include <cuda_runtime.h>

__device__ __forceinline__ void bn_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void bn_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Launches kernel<<<grid, block, smem, st>>>(args...), with the PDL attribute
// when pdl is set, and returns the launch status.
template <typename... Params, typename... Args>
static inline cudaError_t bn_launch(bool pdl, void (*kernel)(Params...), dim3 grid, dim3 block,
                                    size_t smem, cudaStream_t st, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    if (pdl) {
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
    }
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<Params>(args)...);
}

#endif
