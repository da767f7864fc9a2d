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

#include "cuda_kernels.cuh"
#include "reduce.cuh"

#define BN_NQ_THREADS 512

// bn_quantize_i8's floor on max|h| (BN_QUANT_MIN_ABSMAX in cpu/kernels_scalar.c):
// an all-zero row gets s = 127/1e-5 and zero codes instead of a division by zero.
#define BN_QUANT_MIN_ABSMAX 1e-5f

// silu(g) = g / (1 + e^-g) with e^-g as ggml's SIMD expf computes it (a range
// reduction and a degree-5 polynomial, every step one rounding or one fused
// multiply-add), so it equals the CPU's silu_mul kernels bit for bit
// (cpu/kernels_scalar.c bn_silu_mul_scalar: the same sequence with fmaf).
__device__ __forceinline__ float bn_silu(float g) {
    const float t = __fsub_rn(0.f, g);
    const float r = 0x1.8p23f;
    const float z = __fmaf_rn(t, 0x1.715476p+0f, r);
    const float n = __fsub_rn(z, r);
    const float b = __fmaf_rn(-n, 0x1.7f7d1cp-20f, __fmaf_rn(-n, 0x1.62e4p-1f, t));
    const unsigned e = __float_as_uint(z) << 23;
    const float k = __uint_as_float(e + 0x3f800000u);
    const float u = __fmul_rn(b, b);
    const float j = __fmaf_rn(__fmaf_rn(__fmaf_rn(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                        __fmaf_rn(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                              u, __fmul_rn(0x1.ffffecp-1f, b));
    float ex;
    if (!(fabsf(n) > 126.f)) {
        ex = __fmaf_rn(k, j, k);
    } else {
        const unsigned gb = n <= 0.f ? 0x82000000u : 0u;
        const float s1 = __uint_as_float(gb + 0x7f000000u), s2 = __uint_as_float(e - gb);
        ex = fabsf(n) > 192.f ? __fmul_rn(s1, s1) : __fmul_rn(__fmaf_rn(s2, j, s2), s1);
    }
    return __fdiv_rn(g, __fadd_rn(1.f, ex));
}

__device__ __forceinline__ float bn_glu1(float g, float u, int mode) {
    if (mode & BN_NQ_SILU) return __fmul_rn(bn_silu(g), u);
    const float r = fmaxf(g, 0.f);
    return r * r * u;
}

// Four consecutive inputs at i (n % 4 == 0). A GLU mode: x = [gate(n) | up(n)]
// and the input is the FFN activation (nq_mode.h: bn_nq_mode).
__device__ __forceinline__ float4 bn_nq_load4(const float *__restrict__ x, int i, int n, int mode) {
    float4 v = __ldcg(reinterpret_cast<const float4 *>(x + i));
    if (mode & BN_NQ_GLU) {
        const float4 u = __ldcg(reinterpret_cast<const float4 *>(x + n + i));
        v.x = bn_glu1(v.x, u.x, mode); v.y = bn_glu1(v.y, u.y, mode);
        v.z = bn_glu1(v.z, u.z, mode); v.w = bn_glu1(v.w, u.w, mode);
    }
    return v;
}

__device__ __forceinline__ int bn_quant1(float h, float sc) {
    return min(127, max(-128, __float2int_rn(h * sc))); // round half to even, like rintf
}

// The first pass over row x (n floats, n % 4 == 0): its inputs (after the GLU
// of a GLU mode) into hs (n floats of shared memory, published to the block by
// the reduction's barriers), and returns the RMSNorm's 1/rms to every thread
// (1 under BN_NQ_NO_NORM). An element's normalized value is then hs[i] * inv *
// w[i], rounded in that order. Must be called by all threads of the block.
__device__ __forceinline__ float bn_block_norm_load(const float *__restrict__ x, int n, float eps, int mode,
                                                    float *hs) {
    __shared__ double dred[32];
    const int stride = blockDim.x * 4;
    // Sum of squares as cpu/ops.c bn_rmsnorm (and ggml) compute it: each square
    // rounded to float, the sum in double, where the order of the adds changes
    // the double only in its last bits, far below the float scale's ulp.
    double ss = 0.0;
#pragma unroll 4
    for (int i = threadIdx.x * 4; i < n; i += stride) { // the loads of several iterations in flight
        const float4 v = bn_nq_load4(x, i, n, mode);
        *reinterpret_cast<float4 *>(hs + i) = v;
        ss += (double)__fmul_rn(v.x, v.x) + (double)__fmul_rn(v.y, v.y) + (double)__fmul_rn(v.z, v.z) +
              (double)__fmul_rn(v.w, v.w);
    }
    ss = bn_block_sum(ss, dred); // its barriers also publish hs
    // BN_NQ_NO_NORM: inv 1 and an all-ones w leave every value exactly as it is.
    return mode & BN_NQ_NO_NORM ? 1.0f : 1.0f / sqrtf((float)(ss / (double)n) + eps);
}

// Normalizes row x (n floats, n % 4 == 0) with weight w (global or shared
// memory), quantizes it, calls store(i, code) for every element and returns
// s = 127/max|h| and sum(codes) to every thread. hs: n floats of shared memory.
// Must be called by all threads of the block.
template <typename Store>
__device__ __forceinline__ void bn_block_norm_quant(const float *__restrict__ x, int n,
                                                    const float *__restrict__ w, float eps, int mode,
                                                    float *hs, float *s_out, int *qsum_out, Store store) {
    __shared__ float fred[32];
    __shared__ int ired[32];
    const int stride = blockDim.x * 4;
    const float inv = bn_block_norm_load(x, n, eps, mode, hs);

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
