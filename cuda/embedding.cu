// embedding.cu - token embedding rows to f32 activations.
//
// One block per token, threads stride over the row (coalesced 2- or 4-byte
// loads). Token ids are validated on the host before they reach the device.
// CPU twin: bn_embed_row in cpu/ops.c (bn_f16_to_f32 / bn_bf16_to_f32, cpu/half.c).
#include <cuda_bf16.h>

#include "cuda_kernels.cuh"
#include "pdl.cuh"

__global__ void bn_embedding_kernel(const void *__restrict__ table, int type,
                                    const int32_t *__restrict__ tokens, int n_embd,
                                    float *__restrict__ x) {
    bn_pdl_wait();
    bn_pdl_trigger();
    const int t = blockIdx.x;
    const int64_t row = (int64_t)tokens[t] * n_embd;
    float *xt = x + (int64_t)t * n_embd;
    for (int i = threadIdx.x; i < n_embd; i += blockDim.x) {
        float v;
        if (type == BN_CUDA_F16)
            v = __half2float(static_cast<const __half *>(table)[row + i]);
        else if (type == BN_CUDA_BF16)
            v = __bfloat162float(static_cast<const __nv_bfloat16 *>(table)[row + i]);
        else
            v = static_cast<const float *>(table)[row + i];
        xt[i] = v;
    }
}

cudaError_t bn_cuda_embedding(const void *table, int type, const int32_t *tokens, int n_tok,
                              int n_embd, float *x, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    return bn_launch(false, bn_embedding_kernel, dim3(n_tok), dim3(256), 0, st, table, type, tokens, n_embd, x);
}
