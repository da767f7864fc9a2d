// lm_head.cu - the pieces of the LM head around cuBLAS, and greedy argmax.
//
// rmsnorm_cast: one block per row; the final RMSNorm rounded to f16 (bitnet.cpp
// rounds the head's input to f16, and the CPU backend does so for every head
// type), stored as f16 for an f16 head or as the f16-rounded f32 for an f32 head.
// The matrix product itself is cublasGemmEx (backend_cuda.cu): f16 or f32
// inputs, f32 compute, f32 logits.
// argmax: one block of 1024 threads over a logit row, float4 loads, ties go to
// the lowest id (as a scalar loop would), so greedy decoding copies back one int.
// CPU twins: rmsnorm + bn_f32_to_f16, and the argmax of the CPU sampler.
#include "cuda_kernels.cuh"
#include "reduce.cuh"

__global__ void bn_rmsnorm_cast_kernel(const float *__restrict__ x, int64_t ldx,
                                       const float *__restrict__ w, int n, float eps, int out_type,
                                       void *__restrict__ out) {
    __shared__ double red[32];
    const int t = blockIdx.x;
    const float *xt = x + t * ldx;
    double ss = 0.0; // in double, as cpu/ops.c bn_rmsnorm (see norm_quant.cuh)
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += (double)xt[i] * xt[i];
    ss = bn_block_sum(ss, red);
    const float inv = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const __half v = __float2half_rn(xt[i] * inv * w[i]);
        const int64_t o = (int64_t)t * n + i;
        if (out_type == BN_CUDA_F16)
            static_cast<__half *>(out)[o] = v;
        else
            static_cast<float *>(out)[o] = __half2float(v);
    }
}

cudaError_t bn_cuda_rmsnorm_cast(const float *x, int64_t ldx, const float *w, int n_tok, int n,
                                 float eps, int out_type, void *out, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (out_type != BN_CUDA_F16 && out_type != BN_CUDA_F32) return cudaErrorInvalidValue;
    bn_rmsnorm_cast_kernel<<<n_tok, 256, 0, st>>>(x, ldx, w, n, eps, out_type, out);
    return cudaGetLastError();
}

#define BN_ARGMAX_THREADS 1024

__device__ __forceinline__ void bn_argmax_take(float &bv, int &bi, float v, int i) {
    if (v > bv || (v == bv && i < bi)) {
        bv = v;
        bi = i;
    }
}

__global__ void __launch_bounds__(BN_ARGMAX_THREADS)
bn_argmax_kernel(const float *__restrict__ x, int n, int32_t *__restrict__ out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    const int n4 = (reinterpret_cast<uintptr_t>(x) & 15) ? 0 : n / 4; // float4 needs 16-byte alignment
    const float4 *x4 = reinterpret_cast<const float4 *>(x);
    for (int i = threadIdx.x; i < n4; i += blockDim.x) {
        const float4 v = x4[i];
        bn_argmax_take(bv, bi, v.x, 4 * i);
        bn_argmax_take(bv, bi, v.y, 4 * i + 1);
        bn_argmax_take(bv, bi, v.z, 4 * i + 2);
        bn_argmax_take(bv, bi, v.w, 4 * i + 3);
    }
    for (int i = 4 * n4 + threadIdx.x; i < n; i += blockDim.x) bn_argmax_take(bv, bi, x[i], i);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        bn_argmax_take(bv, bi, ov, oi);
    }
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) {
        sv[wid] = bv;
        si[wid] = bi;
    }
    __syncthreads();
    if (wid == 0) {
        const int nw = blockDim.x >> 5;
        bv = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : 0x7fffffff;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            bn_argmax_take(bv, bi, ov, oi);
        }
        if (lane == 0) *out = bi == 0x7fffffff ? 0 : bi; // all NaN: say 0
    }
}

cudaError_t bn_cuda_argmax(const float *x, int n, int32_t *out, cudaStream_t st) {
    if (n <= 0) return cudaErrorInvalidValue;
    bn_argmax_kernel<<<1, BN_ARGMAX_THREADS, 0, st>>>(x, n, out);
    return cudaGetLastError();
}

cudaError_t bn_cuda_kernel_image_check(void) {
    cudaFuncAttributes a;
    return cudaFuncGetAttributes(&a, bn_argmax_kernel);
}
