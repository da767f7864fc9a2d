// cuda_check.cuh - every CUDA status becomes a bn_error line.
//
// Library code never prints or exits: a failing call returns -1 from the
// enclosing function after writing "what failed: why (file:line)" into the
// bn_error* named `err` in scope (bn_errorf, core/error.h). Host code in cuda/
// checks every runtime call with BN_CUDA_TRY, and every kernel launch through
// the status the launchers return.
#ifndef BN_CUDA_CHECK_CUH
#define BN_CUDA_CHECK_CUH

#include <stdio.h>

#include <cuda_runtime.h>

#include "error.h"

#define BN_CUDA_TRY(call)                                                                   \
    do {                                                                                    \
        cudaError_t bn_e_ = (call);                                                         \
        if (bn_e_ != cudaSuccess)                                                           \
            return bn_errorf(err, "CUDA: %s failed: %s (%s:%d)", #call,                \
                                  cudaGetErrorString(bn_e_), __FILE__, __LINE__);           \
    } while (0)

#endif
