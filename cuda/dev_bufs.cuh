// dev_bufs.cuh - the device allocations of one test or bench call, freed
// together on every exit path when the list goes out of scope.
#ifndef BN_DEV_BUFS_CUH
#define BN_DEV_BUFS_CUH

#include <cuda_runtime.h>

struct bn_dev_bufs {
    void *p[32];
    int n = 0;
    ~bn_dev_bufs() {
        for (int i = 0; i < n; i++) (void)cudaFree(p[i]);
    }
    // Zeroed device memory of `bytes` (at least 1); NULL when out of memory
    // or out of slots.
    void *alloc(size_t bytes) {
        void *q = NULL;
        if (n == 32 || cudaMalloc(&q, bytes ? bytes : 1) != cudaSuccess) return NULL;
        p[n++] = q;
        return cudaMemset(q, 0, bytes ? bytes : 1) == cudaSuccess ? q : NULL;
    }
};

#endif
