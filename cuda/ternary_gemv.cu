// ternary_gemv.cu - decode bitlinear: I2_S weights x int8 activations, dp4a.
//
// Design (memory bound: the weights are read once per token and nothing else
// matters much):
// - Weights stay in I2_S exactly as in the file. Bits 7:6 of four consecutive
//   bytes are four consecutive elements, so a 16-byte load of a row gives 16
//   words that each feed one __dp4a without any shuffling, and consecutive lanes
//   read consecutive 16-byte chunks of a row: fully coalesced 128-bit loads. A
//   repack buys nothing here (the GEMM reads the same layout).
// - A warp owns R = 2 rows, its 32 lanes stride over the row's 16-byte chunks
//   (K = 2560: 40 chunks, K = 6912: 108). The first U = 4 chunks of both rows
//   (up to 8 x 16 bytes a lane) are loaded *before* the prologue, so the weight
//   stream is in flight while the block normalizes and quantizes the input.
// - Activations live in shared memory (K bytes) in the order the chunks consume
//   them: sq[s*K/4 + 32*b + e] = q[128*b + 32*s + e], so for a fixed shift s the
//   lanes read consecutive 16-byte words (no bank conflicts).
// - dp4a(w+1, q) summed over the row minus sum(q) is the ternary dot product;
//   0b11 codes were rewritten to 0b01 at upload (bn_cuda_i2s_sanitize).
// - Epilogue: /s * per-row scale (Q|K|V or gate|up stacks carry 3 scales), then
//   store or add into the residual stream.
// 256 threads = 8 warps = 16 rows a block; grid.y = token.
// CPU twin: bn_ternary_gemm_scalar (n == 1), with bn_quantize_i8 for the prologue.
#include "cuda_kernels.cuh"
#include "norm_quant.cuh"

#define BN_GEMV_R 2 // rows per warp
#define BN_GEMV_U 4 // 16-byte chunks per lane per row loaded ahead

__device__ __forceinline__ int bn_dot_chunk(uint4 wv, int4 a0, int4 a1, int4 a2, int4 a3, int acc) {
    const uint32_t m = 0x03030303u;
    acc = __dp4a((int)((wv.x >> 6) & m), a0.x, acc);
    acc = __dp4a((int)((wv.x >> 4) & m), a1.x, acc);
    acc = __dp4a((int)((wv.x >> 2) & m), a2.x, acc);
    acc = __dp4a((int)(wv.x & m), a3.x, acc);
    acc = __dp4a((int)((wv.y >> 6) & m), a0.y, acc);
    acc = __dp4a((int)((wv.y >> 4) & m), a1.y, acc);
    acc = __dp4a((int)((wv.y >> 2) & m), a2.y, acc);
    acc = __dp4a((int)(wv.y & m), a3.y, acc);
    acc = __dp4a((int)((wv.z >> 6) & m), a0.z, acc);
    acc = __dp4a((int)((wv.z >> 4) & m), a1.z, acc);
    acc = __dp4a((int)((wv.z >> 2) & m), a2.z, acc);
    acc = __dp4a((int)(wv.z & m), a3.z, acc);
    acc = __dp4a((int)((wv.w >> 6) & m), a0.w, acc);
    acc = __dp4a((int)((wv.w >> 4) & m), a1.w, acc);
    acc = __dp4a((int)((wv.w >> 2) & m), a2.w, acc);
    acc = __dp4a((int)(wv.w & m), a3.w, acc);
    return acc;
}

__device__ __forceinline__ float bn_row_scale(const bn_cuda_rowscale &rs, int r) {
    return r < rs.r1 ? rs.s0 : (r < rs.r2 ? rs.s1 : rs.s2);
}

template <bool NORM>
__global__ void __launch_bounds__(BN_NQ_THREADS)
bn_ternary_gemv_kernel(const uint8_t *__restrict__ w, int K, int M, const int8_t *__restrict__ q,
                       const float *__restrict__ s, const int32_t *__restrict__ qsum,
                       const float *__restrict__ x, int64_t ldx, const float *__restrict__ norm_w,
                       float eps, bool glu, bn_cuda_rowscale rs, bool add, float *__restrict__ y,
                       int64_t ldy) {
    extern __shared__ int4 sq4[]; // K bytes, permuted (see header)
    const int t = blockIdx.y;
    const int lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * BN_GEMV_R;
    const int nchunk = K / 64; // 16-byte chunks a row
    const int64_t rowb = K / 4;

    // 1. The first chunks of this warp's rows go in flight now.
    uint4 wv[BN_GEMV_U][BN_GEMV_R];
#pragma unroll
    for (int u = 0; u < BN_GEMV_U; u++)
#pragma unroll
        for (int r = 0; r < BN_GEMV_R; r++) {
            const int c = lane + 32 * u;
            wv[u][r] = (c < nchunk && row0 + r < M)
                           ? __ldg(reinterpret_cast<const uint4 *>(w + (row0 + r) * rowb) + c)
                           : make_uint4(0, 0, 0, 0);
        }

    // 2. Activations into shared memory (every thread takes part: no early exit above).
    __shared__ float s_sc;
    __shared__ int s_qs;
    const int kq = K / 4; // bytes per shift plane
    if (NORM) {
        int8_t *sq = reinterpret_cast<int8_t *>(sq4);
        float sc;
        int qs;
        bn_block_norm_quant(x + t * ldx, K, norm_w, eps, glu, &sc, &qs, [&](int i, int v) {
            sq[((i >> 5) & 3) * kq + ((i >> 7) << 5) + (i & 31)] = (int8_t)v;
        });
        if (threadIdx.x == 0) {
            s_sc = sc;
            s_qs = qs;
        }
    } else {
        const int4 *qt = reinterpret_cast<const int4 *>(q + (int64_t)t * K);
        for (int m = threadIdx.x; m < K / 16; m += blockDim.x)
            sq4[((m & 7) >> 1) * (K / 64) + 2 * (m >> 3) + (m & 1)] = __ldg(qt + m);
        if (threadIdx.x == 0) {
            s_sc = s[t];
            s_qs = qsum[t];
        }
    }
    __syncthreads();
    if (row0 >= M) return;

    // 3. Dot products, U chunks a lane at a time.
    int acc[BN_GEMV_R];
#pragma unroll
    for (int r = 0; r < BN_GEMV_R; r++) acc[r] = 0;
    const int plane = K / 64; // int4 per shift plane
    for (int c0 = 0; c0 < nchunk; c0 += 32 * BN_GEMV_U) {
        if (c0 > 0) {
#pragma unroll
            for (int u = 0; u < BN_GEMV_U; u++)
#pragma unroll
                for (int r = 0; r < BN_GEMV_R; r++) {
                    const int c = c0 + lane + 32 * u;
                    wv[u][r] = (c < nchunk && row0 + r < M)
                                   ? __ldg(reinterpret_cast<const uint4 *>(w + (row0 + r) * rowb) + c)
                                   : make_uint4(0, 0, 0, 0);
                }
        }
#pragma unroll
        for (int u = 0; u < BN_GEMV_U; u++) {
            const int c = c0 + lane + 32 * u;
            if (c < nchunk) {
                const int4 a0 = sq4[c], a1 = sq4[plane + c], a2 = sq4[2 * plane + c],
                           a3 = sq4[3 * plane + c];
#pragma unroll
                for (int r = 0; r < BN_GEMV_R; r++) acc[r] = bn_dot_chunk(wv[u][r], a0, a1, a2, a3, acc[r]);
            }
        }
    }

    // 4. Epilogue: lane r finishes row row0 + r.
#pragma unroll
    for (int r = 0; r < BN_GEMV_R; r++) {
        const int tot = bn_warp_sum(acc[r]);
        const int row = row0 + r;
        if (lane == r && row < M) {
            const float v = (float)(tot - s_qs) / s_sc * bn_row_scale(rs, row);
            float *dst = y + t * ldy + row;
            // __fadd_rn: a plain + lets nvcc contract the scale product into an FMA,
            // which rounds the residual differently from the CPU (x += v, no FMA).
            *dst = add ? __fadd_rn(*dst, v) : v;
        }
    }
}

static cudaError_t bn_gemv_launch(bool norm, const uint8_t *w, int K, int M, const int8_t *q,
                                  const float *s, const int32_t *qsum, const float *x, int64_t ldx,
                                  const float *norm_w, float eps, bool glu, int n,
                                  bn_cuda_rowscale rs, bool add, float *y, int64_t ldy,
                                  cudaStream_t st) {
    if (n <= 0 || M <= 0) return cudaSuccess;
    if (K <= 0 || K % 128 != 0) return cudaErrorInvalidValue;
    const int rows_per_block = (BN_NQ_THREADS / 32) * BN_GEMV_R;
    const dim3 grid((M + rows_per_block - 1) / rows_per_block, n);
    if (norm)
        bn_ternary_gemv_kernel<true><<<grid, BN_NQ_THREADS, K, st>>>(w, K, M, q, s, qsum, x, ldx, norm_w,
                                                                    eps, glu, rs, add, y, ldy);
    else
        bn_ternary_gemv_kernel<false><<<grid, BN_NQ_THREADS, K, st>>>(w, K, M, q, s, qsum, x, ldx, norm_w,
                                                                     eps, glu, rs, add, y, ldy);
    return cudaGetLastError();
}

cudaError_t bn_cuda_ternary_gemv(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                 const int32_t *qsum, int n, bn_cuda_rowscale rs, bool add,
                                 float *y, int64_t ldy, cudaStream_t st) {
    return bn_gemv_launch(false, w, K, M, q, s, qsum, NULL, 0, NULL, 0.f, false, n, rs, add, y, ldy,
                          st);
}

cudaError_t bn_cuda_ternary_gemv_norm(const uint8_t *w, int K, int M, const float *x, int64_t ldx,
                                      const float *norm_w, float eps, bool glu, int n,
                                      bn_cuda_rowscale rs, bool add, float *y, int64_t ldy,
                                      cudaStream_t st) {
    return bn_gemv_launch(true, w, K, M, NULL, NULL, NULL, x, ldx, norm_w, eps, glu, n, rs, add, y,
                          ldy, st);
}
