// cuda_check.cuh - every CUDA and cuBLAS status becomes a bn_error line.
//
// Library code never prints or exits (STYLE.md): a failing call returns -1 from
// the enclosing function after writing "what failed: why (file:line)" into the
// bn_error* named `err` in scope. Host code in cuda/ checks every runtime and
// cuBLAS call with these macros, and every kernel launch through the
// cudaGetLastError() the launchers return.
//
// The message is formatted here rather than with core's bn_errorf because
// libbitnet_cuda.a sits after libbitnet.a on the link line: a symbol it needs
// from libbitnet.a would only resolve if something else had pulled it in first.
#ifndef BN_CUDA_CHECK_CUH
#define BN_CUDA_CHECK_CUH

#include <stdio.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "error.h"

static inline const char *bn_cublas_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "unknown status";
    }
}

#define BN_CUDA_TRY(call)                                                                   \
    do {                                                                                    \
        cudaError_t bn_e_ = (call);                                                         \
        if (bn_e_ != cudaSuccess)                                                           \
            return bn_errorf(err, "CUDA: %s failed: %s (%s:%d)", #call,                \
                                  cudaGetErrorString(bn_e_), __FILE__, __LINE__);           \
    } while (0)

#define BN_CUBLAS_TRY(call)                                                                 \
    do {                                                                                    \
        cublasStatus_t bn_s_ = (call);                                                      \
        if (bn_s_ != CUBLAS_STATUS_SUCCESS)                                                 \
            return bn_errorf(err, "cuBLAS: %s failed: %s (%s:%d)", #call,              \
                                  bn_cublas_status_name(bn_s_), __FILE__, __LINE__);        \
    } while (0)

#endif
