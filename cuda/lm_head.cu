// lm_head.cu - the pieces of the LM head around its matrix product, and greedy argmax.
//
// rmsnorm_cast: one block per row; the final RMSNorm rounded to f16 (bitnet.cpp
// rounds the head's input to f16, and the CPU backend does so for every head
// type), stored as f16 for an f16 head, as the f16-rounded f32 for an f32 head,
// or - for the int8 head (--lm-head q8) - quantized from those f16-rounded values
// exactly as cpu/forward.c lm_head does (bn_quantize_i8: s = 127/max|h|, q =
// rint(h*s)), codes and scale from the same kernel, so no extra launch. The
// rounded values are recomputed for each pass over the row (max, then codes)
// rather than kept: the row is a few KiB and stays in L1.
// The matrix product is the streaming GEMV of lm_head_gemv.cu, which also fuses
// the argmax.
// argmax: one block of 1024 threads over a logit row, float4 loads, ties go to
// the lowest id (as a scalar loop would), -1 for a row that is not all finite. Decoding uses the argmax fused into
// the head GEMV (same block reduction, bn_block_argmax); this standalone kernel
// is what the tests compare with the CPU's, and the kernel-image probe.
// CPU twins: rmsnorm + bn_f32_to_f16 (+ bn_quantize_i8), and the argmax of the
// CPU sampler.
#include "cuda_kernels.cuh"
#include "norm_quant.cuh"
#include "pdl.cuh"

#define BN_CAST_THREADS 256

__global__ void __launch_bounds__(BN_CAST_THREADS)
bn_rmsnorm_cast_kernel(const float *__restrict__ x, int64_t ldx, const float *__restrict__ w, int n,
                       float eps, int out_type, void *__restrict__ out, float *__restrict__ xscale) {
    __shared__ double red[32];
    __shared__ float fred[32];
    bn_pdl_trigger();
    bn_pdl_wait(); // x is the previous kernel's output, and out may still be read by it
    const int t = blockIdx.x;
    const float *xt = x + t * ldx;
    double ss = 0.0; // in double, as cpu/ops.c bn_rmsnorm (see norm_quant.cuh)
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += (double)__fmul_rn(xt[i], xt[i]); // as bn_rmsnorm
    ss = bn_block_sum(ss, red);
    const float inv = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    if (out_type != BN_CUDA_I8) {
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const __half v = __float2half_rn(xt[i] * inv * w[i]);
            const int64_t o = (int64_t)t * n + i;
            if (out_type == BN_CUDA_F16)
                static_cast<__half *>(out)[o] = v;
            else
                static_cast<float *>(out)[o] = __half2float(v);
        }
        return;
    }
    // int8: bn_quantize_i8 of the f16-rounded row (amax floor, s = 127/amax, rint, clamp).
    float amax = 0.f;
    bool finite = true;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float h = __half2float(__float2half_rn(xt[i] * inv * w[i]));
        amax = fmaxf(amax, fabsf(h));
        finite = finite && isfinite(h);
    }
    amax = bn_block_max(amax, fred);
    finite = __syncthreads_and(finite);
    const float s = 127.0f / fmaxf(amax, BN_QUANT_MIN_ABSMAX);
    int8_t *q = static_cast<int8_t *>(out) + (int64_t)t * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        q[i] = (int8_t)bn_quant1(__half2float(__float2half_rn(xt[i] * inv * w[i])), s);
    // NaN for a row that is not all finite, whose codes would hide it: its
    // logits are then NaN, and reported (as cpu/forward.c lm_head does).
    if (threadIdx.x == 0) xscale[t] = finite ? s : NAN;
}

cudaError_t bn_cuda_rmsnorm_cast(const float *x, int64_t ldx, const float *w, int n_tok, int n,
                                 float eps, int out_type, void *out, float *xscale, bool pdl,
                                 cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (out_type != BN_CUDA_F16 && out_type != BN_CUDA_F32 && out_type != BN_CUDA_I8)
        return cudaErrorInvalidValue;
    if (out_type == BN_CUDA_I8 && !xscale) return cudaErrorInvalidValue;
    return bn_launch(pdl, bn_rmsnorm_cast_kernel, dim3(n_tok), dim3(BN_CAST_THREADS), 0, st, x, ldx, w,
                     n, eps, out_type, out, xscale);
}

#define BN_ARGMAX_THREADS 1024

// One block a row (blockIdx.x): row r of x starts r * ld floats in, out[r] its argmax.
__global__ void __launch_bounds__(BN_ARGMAX_THREADS)
bn_argmax_kernel(const float *__restrict__ x, int64_t ld, int n, int32_t *__restrict__ out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    x += (int64_t)blockIdx.x * ld;
    float bv = -INFINITY;
    int bi = BN_ARGMAX_NONE;
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
    bn_block_argmax(bv, bi, sv, si);
    if (threadIdx.x == 0) out[blockIdx.x] = bi == BN_ARGMAX_NONE ? 0 : bi; // -1: not all finite
}

cudaError_t bn_cuda_argmax_rows(const float *x, int rows, int64_t ld, int n, int32_t *out, cudaStream_t st) {
    if (n <= 0 || rows < 0 || (rows > 1 && ld < n)) return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    bn_argmax_kernel<<<rows, BN_ARGMAX_THREADS, 0, st>>>(x, ld, n, out);
    return cudaGetLastError();
}

cudaError_t bn_cuda_argmax(const float *x, int n, int32_t *out, cudaStream_t st) {
    return bn_cuda_argmax_rows(x, 1, n, n, out, st);
}

cudaError_t bn_cuda_kernel_image_check(void) {
    cudaFuncAttributes a;
    return cudaFuncGetAttributes(&a, bn_argmax_kernel);
}
