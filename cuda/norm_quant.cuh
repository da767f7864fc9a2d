// norm_quant.cuh - RMSNorm + bitlinear int8 quantization of one row, by one block.
//
// Used by the standalone kernel (rmsnorm_quant.cu: prefill), by the decode GEMV's
// prologue (ternary_gemv.cu: each block quantizes its input while its weights
// are still arriving) and, with BITNET_CUDA_NORM=last, by the last block of the
// kernel that produced the row. The first two launch BN_NQ_THREADS threads, so
// they reduce in the same order and give bit-identical codes; the last-block
// case reduces with its own kernel's block size, in another order. The row is read from global
// memory once (with __ldcg, L2: in the last-block case other blocks of the same
// kernel have just written it) into a shared-memory copy `hs` of n floats, which
// the max and code passes then reuse: three dependent trips to L2 cost more
// than the arithmetic.
#ifndef BN_CUDA_NORM_QUANT_CUH
#define BN_CUDA_NORM_QUANT_CUH

#include "reduce.cuh"

#define BN_NQ_THREADS 512

// bn_quantize_i8's floor on max|h| (BN_QUANT_MIN_ABSMAX in cpu/kernels_scalar.c):
// an all-zero row gets s = 127/1e-5 and zero codes instead of a division by zero.
#define BN_QUANT_MIN_ABSMAX 1e-5f

// Four consecutive inputs at i (n % 4 == 0). glu: x = [gate(n) | up(n)] and the
// input is relu(gate)^2 * up (the FFN activation).
__device__ __forceinline__ float4 bn_nq_load4(const float *__restrict__ x, int i, int n, bool glu) {
    float4 v = __ldcg(reinterpret_cast<const float4 *>(x + i));
    if (glu) {
        const float4 u = __ldcg(reinterpret_cast<const float4 *>(x + n + i));
        v.x = fmaxf(v.x, 0.f); v.y = fmaxf(v.y, 0.f); v.z = fmaxf(v.z, 0.f); v.w = fmaxf(v.w, 0.f);
        v.x = v.x * v.x * u.x; v.y = v.y * v.y * u.y; v.z = v.z * v.z * u.z; v.w = v.w * v.w * u.w;
    }
    return v;
}

__device__ __forceinline__ int bn_quant1(float h, float sc) {
    return min(127, max(-128, __float2int_rn(h * sc))); // round half to even, like rintf
}

// Normalizes row x (n floats, n % 4 == 0) with weight w (global or shared
// memory), quantizes it, calls store(i, code) for every element and returns
// s = 127/max|h| and sum(codes) to every thread. hs: n floats of shared memory.
// Must be called by all threads of the block.
template <typename Store>
__device__ __forceinline__ void bn_block_norm_quant(const float *__restrict__ x, int n,
                                                    const float *__restrict__ w, float eps, bool glu,
                                                    float *hs, float *s_out, int *qsum_out, Store store) {
    __shared__ float fred[32];
    __shared__ int ired[32];
    __shared__ double dred[32];
    const int stride = blockDim.x * 4;
    // Sum of squares in double, scale as cpu/ops.c bn_rmsnorm (and ggml) compute
    // it: every float square is exact in double, so the float scale matches the
    // CPU's whatever the summation order, and no int8 rounding flips on it.
    double ss = 0.0;
#pragma unroll 4
    for (int i = threadIdx.x * 4; i < n; i += stride) { // the loads of several iterations in flight
        const float4 v = bn_nq_load4(x, i, n, glu);
        *reinterpret_cast<float4 *>(hs + i) = v;
        ss += (double)v.x * v.x + (double)v.y * v.y + (double)v.z * v.z + (double)v.w * v.w;
    }
    ss = bn_block_sum(ss, dred); // its barriers also publish hs
    const float inv = 1.0f / sqrtf((float)(ss / (double)n) + eps);

    float amax = 0.f;
    for (int i = threadIdx.x * 4; i < n; i += stride) {
        const float4 v = *reinterpret_cast<const float4 *>(hs + i);
        const float4 g = *reinterpret_cast<const float4 *>(w + i);
        amax = fmaxf(amax, fmaxf(fmaxf(fabsf(v.x * inv * g.x), fabsf(v.y * inv * g.y)),
                                 fmaxf(fabsf(v.z * inv * g.z), fabsf(v.w * inv * g.w))));
    }
    amax = bn_block_max(amax, fred);
    const float sc = 127.0f / fmaxf(amax, BN_QUANT_MIN_ABSMAX);

    int qs = 0;
    for (int i = threadIdx.x * 4; i < n; i += stride) {
        const float4 v = *reinterpret_cast<const float4 *>(hs + i);
        const float4 g = *reinterpret_cast<const float4 *>(w + i);
        const int a = bn_quant1(v.x * inv * g.x, sc), b = bn_quant1(v.y * inv * g.y, sc);
        const int c = bn_quant1(v.z * inv * g.z, sc), d = bn_quant1(v.w * inv * g.w, sc);
        store(i, a); store(i + 1, b); store(i + 2, c); store(i + 3, d);
        qs += a + b + c + d;
    }
    qs = bn_block_sum(qs, ired);
    *s_out = sc;
    *qsum_out = qs;
}

#endif
