// lm_head_q8.cu - the int8 LM head (--lm-head q8): the head table quantized once,
// on the device, at load.
//
// Each vocabulary row gets its own absmax scale, exactly as cpu/backend_cpu.c
// quantize_head does with bn_quantize_i8 on the row converted to float: amax =
// max(BN_QUANT_MIN_ABSMAX, max|w|), s = 127/amax, q = rint(w*s) clamped to
// [-128, 127], row_scale = 1/s. The f16 -> f32 conversion is exact and max, the
// product and the divisions are correctly rounded here as on the CPU, so codes
// and scales are bit-identical to it (a BF16 table arrives widened to F32, which
// is exact too). The GEMV that reads them is in lm_head_gemv.cu.
// One warp a row, 8 rows a block; each lane takes 4 consecutive elements at a
// time (8 or 16 bytes in, 4 bytes out), two passes over the row (max, codes):
// the row is 5-10 KiB and the second pass finds it in L1. A one-off of ~1 GB of
// traffic at load, so simple beats fast.
#include "cuda_kernels.cuh"
#include "norm_quant.cuh"

#define BN_HEADQ_THREADS 256

__device__ __forceinline__ float4 bn_headq_load4(const __half *p) {
    const uint2 u = *reinterpret_cast<const uint2 *>(p);
    const float2 a = __half22float2(*reinterpret_cast<const __half2 *>(&u.x));
    const float2 b = __half22float2(*reinterpret_cast<const __half2 *>(&u.y));
    return make_float4(a.x, a.y, b.x, b.y);
}

__device__ __forceinline__ float4 bn_headq_load4(const float *p) {
    return *reinterpret_cast<const float4 *>(p);
}

template <typename T>
__global__ void __launch_bounds__(BN_HEADQ_THREADS)
bn_head_q8_quantize_kernel(const T *__restrict__ w, int K, int V, int8_t *__restrict__ wq,
                           float *__restrict__ row_scale) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * (BN_HEADQ_THREADS / 32) + (threadIdx.x >> 5);
    if (r >= V) return; // whole warps
    const T *wr = w + (int64_t)r * K;
    float amax = 0.f;
    bool finite = true;
    for (int i = 4 * lane; i < K; i += 128) {
        const float4 v = bn_headq_load4(wr + i);
        amax = fmaxf(amax, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
        finite = finite && isfinite(v.x) && isfinite(v.y) && isfinite(v.z) && isfinite(v.w);
    }
    amax = bn_warp_max(amax);
    finite = __all_sync(0xffffffffu, finite);
    const float s = 127.0f / fmaxf(amax, BN_QUANT_MIN_ABSMAX);
    int8_t *qr = wq + (int64_t)r * K;
    for (int i = 4 * lane; i < K; i += 128) {
        const float4 v = bn_headq_load4(wr + i);
        char4 q;
        q.x = (signed char)bn_quant1(v.x, s);
        q.y = (signed char)bn_quant1(v.y, s);
        q.z = (signed char)bn_quant1(v.z, s);
        q.w = (signed char)bn_quant1(v.w, s);
        *reinterpret_cast<char4 *>(qr + i) = q;
    }
    // As quantize_head_worker: 1 / quantize_i8(...), NaN for a row that is not all
    // finite (its codes would hide it), so that its logit is NaN and reported.
    if (lane == 0) row_scale[r] = finite ? 1.0f / s : NAN;
}

cudaError_t bn_cuda_head_q8_quantize(const void *w, int type, int K, int V, int8_t *wq, float *row_scale,
                                     cudaStream_t st) {
    if (V <= 0) return cudaSuccess;
    if (K <= 0 || K % 16 || !w || !wq || !row_scale) return cudaErrorInvalidValue;
    const unsigned blocks = (unsigned)((V + BN_HEADQ_THREADS / 32 - 1) / (BN_HEADQ_THREADS / 32));
    if (type == BN_CUDA_F16)
        bn_head_q8_quantize_kernel<<<blocks, BN_HEADQ_THREADS, 0, st>>>(static_cast<const __half *>(w), K, V,
                                                                         wq, row_scale);
    else if (type == BN_CUDA_F32)
        bn_head_q8_quantize_kernel<<<blocks, BN_HEADQ_THREADS, 0, st>>>(static_cast<const float *>(w), K, V,
                                                                         wq, row_scale);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}
