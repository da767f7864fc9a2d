// gemv_block.cuh - one block's share of a decode bitlinear: its rows of I2_S
// weights (in shared memory) against int8 activations (in shared memory,
// permuted by plane). Used by the GEMV kernel (ternary_gemv.cu, whose header
// explains the layout) and by the persistent decode kernel (decode_persistent.cu).
#ifndef BN_CUDA_GEMV_BLOCK_CUH
#define BN_CUDA_GEMV_BLOCK_CUH

#include "cuda_kernels.cuh"

// One 16-byte chunk of a row (64 weights) against its four activation planes.
__device__ __forceinline__ void bn_dot_chunk(uint4 w, int4 x0, int4 x1, int4 x2, int4 x3, int &a5,
                                             int &a4, int &a2, int &a0) {
    const uint32_t w4[4] = {w.x, w.y, w.z, w.w};
    const int p0[4] = {x0.x, x0.y, x0.z, x0.w}, p1[4] = {x1.x, x1.y, x1.z, x1.w};
    const int p2[4] = {x2.x, x2.y, x2.z, x2.w}, p3[4] = {x3.x, x3.y, x3.z, x3.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        a5 = __dp4a((int)((w4[i] >> 1) & 0x60606060u), p0[i], a5); // bits 7:6 -> code << 5
        a4 = __dp4a((int)(w4[i] & 0x30303030u), p1[i], a4);        // bits 5:4 -> code << 4
        a2 = __dp4a((int)(w4[i] & 0x0C0C0C0Cu), p2[i], a2);        // bits 3:2 -> code << 2
        a0 = __dp4a((int)(w4[i] & 0x03030303u), p3[i], a0);        // bits 1:0 -> code
    }
}

// Where code i of a K-wide input goes in the permuted layout: plane (i/32)%4,
// 128-element block i/128, element i%32 (byte offset from the token's start).
__device__ __forceinline__ int bn_gemv_code_slot(int i, int K) {
    return ((i >> 5) & 3) * (K / 4) + ((i >> 7) << 5) + (i & 31);
}

// Rows r0 .. r0+nrows-1 (weights wsm: nrows x K/4 bytes) against the n tokens'
// permuted codes qsm (K bytes each; scale s_sc[t], code sum s_qs[t]):
// y[t*ldy + row] = (or +=, add) the bitlinear output. A warp takes 32/G rows at a
// time, G lanes a row (G a power of two up to 32; where it does not divide K/64,
// the row's sum is still whole: lanes past its last chunk add nothing).
template <int G>
__device__ __forceinline__ void bn_gemv_rows(const int4 *wsm, int K, int r0, int nrows, const int4 *qsm, int n,
                                             const float *s_sc, const int *s_qs, const bn_cuda_rowscale &rs,
                                             bool add, float *y, int64_t ldy) {
    constexpr int RPW = 32 / G;
    const int rowv = K / 64, kv = K / 16, plane = K / 64; // 16-byte chunks: of a row, of a token's codes, of a plane
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
    const int grp = lane / G, sub = lane % G;
    for (int rb = warp * RPW; rb < nrows; rb += nwarp * RPW) { // uniform across the warp
        const int rl = rb + grp;
        const bool valid = rl < nrows;
        for (int t = 0; t < n; t++) {
            const int4 *qt = qsm + t * kv;
            int a5 = 0, a4 = 0, a2 = 0, a0 = 0;
            if (valid)
                for (int c = sub; c < plane; c += G) {
                    const int4 wv = wsm[rl * rowv + c];
                    bn_dot_chunk(make_uint4(wv.x, wv.y, wv.z, wv.w), qt[c], qt[plane + c],
                                 qt[2 * plane + c], qt[3 * plane + c], a5, a4, a2, a0);
                }
            // Each accumulator is an exact multiple of its plane's scale.
            int tot = (a5 >> 5) + (a4 >> 4) + (a2 >> 2) + a0;
#pragma unroll
            for (int o = G / 2; o > 0; o >>= 1) tot += __shfl_xor_sync(0xffffffffu, tot, o);
            if (valid && sub == 0) {
                const int row = r0 + rl;
                const float v = bn_row_scaled(rs, row, (float)(tot - s_qs[t]) / s_sc[t]);
                float *dst = y + t * ldy + row;
                // __fadd_rn: a plain + lets nvcc contract the scale product into an FMA,
                // which rounds the residual differently from the CPU (x += v, no FMA).
                // __ldcg: in the persistent kernel another block may have written the
                // row since this multiprocessor last cached it.
                *dst = add ? __fadd_rn(__ldcg(dst), v) : v;
            }
        }
    }
}

// Lanes that share a row: the largest power of two up to 8 dividing the row's
// 16-byte chunk count (K % 128 == 0, so at least 2), so no lane idles.
__host__ __device__ static inline int bn_gemv_lanes_per_row(int K) {
    const int chunks = K / 64;
    return chunks % 8 == 0 ? 8 : chunks % 4 == 0 ? 4 : 2;
}

#endif
