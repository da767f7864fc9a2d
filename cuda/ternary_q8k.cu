// ternary_q8k.cu - the bitlinears of a model stored as TQ1_0/TQ2_0: what
// llama.cpp computes for those types, bit for bit as the CPU does (cpu/ops.c:
// bn_quantize_q8k_block, bn_ternary_rows_q8k).
//
// The loader repacks the weights to I2_S (core/ternary_repack.c), but llama.cpp
// quantizes a TQ model's activations per block of 256 (Q8_K: each block its own
// scale, from its element of largest magnitude), and its dot product converts
// eight partial integer sums a block to float and accumulates them in eight
// float lanes over the blocks. Both are reproduced here:
// - bn_rmsnorm_q8k_kernel: one block of BN_NQ_THREADS a token; the RMSNorm as
//   every other bitlinear input (norm_quant.cuh), then one warp a 256-block:
//   its max by magnitude (the first on ties, as the CPU's scan), the codes, the
//   block's scale d and the sums of its eight groups of 32 codes. The codes are
//   stored permuted (bn_q8k_code_slot) so that the 32 a lane of the product
//   kernel needs are contiguous.
// - bn_ternary_q8k_kernel: a warp takes BN_Q8K_ROWS rows for BN_Q8K_TOKENS
//   tokens; lane (row, i) owns float lane i of its row, walks the blocks in
//   order and for each adds (float)(P - bsum_i) * (d * wscale), where P is the
//   dp4a sum of the 32 (weight code, activation) pairs llama.cpp's lane i
//   holds: bytes 4i..4i+3 of both 32-byte halves of the I2_S block, each byte
//   four elements (128h + 32s + g, s < 4). Then the CPU's eight-lane tree
//   ((e0 + e4) + (e2 + e6)) + ((e1 + e5) + (e3 + e7)) by shuffles, times the
//   row's out-scale, stored or added. Every product and sum rounds as the C
//   does (__fmul_rn / __fadd_rn: no FMA contraction).
// - bn_ternary_q8k_mma_kernel (BITNET_CUDA_TQ=mma, off until a GPU has timed
//   it): the same sums with the integer part on the tensor cores. For one
//   256-block and one llama.cpp lane i, a single mma m16n8k32 (codes w + 1 as
//   u8 times the s8 activations, exact) gives P for 16 rows x 8 tokens: in both
//   operands lane i's 32 pairs are k = 16h + 4s + j (j = byte 4i + j of half
//   h, plane s), because the activation codes are stored that way
//   (bn_q8k_code_slot) and thread (g, tig)'s A registers are plane s = tig of
//   the weight words of rows g and g + 8 (PTX ISA, mma.m16n8k32 fragments: its
//   a0/a1 hold k 4tig..4tig+3, a2/a3 k 16+4tig..; b0/b1 the same k of token g).
//   Each thread then keeps all eight float lanes of its four (row, token)
//   outputs, adds the block's terms in block order and sums the lanes in the
//   CPU's tree itself: the same float operations in the same order as the
//   dp4a kernel, so the same bits.
// Neither is as fast as the I2_S path (no fused norm); a TQ model is correct
// on the GPU, and an I2_S conversion of it is the fast way.
#include "cuda_kernels.cuh"
#include "mma.cuh"
#include "norm_quant.cuh"
#include "pdl.cuh"
#include "smem.cuh"

#define BN_Q8K_ROWS 4   // rows a warp takes (8 lanes each)
#define BN_Q8K_TOKENS 8 // tokens a warp takes
#define BN_Q8K_WARPS 8  // warps a block of the product kernel
#define BN_Q8KM_WARPS 4 // warps a block of the mma kernel: 16 rows each

__global__ void __launch_bounds__(BN_NQ_THREADS)
bn_rmsnorm_q8k_kernel(const float *__restrict__ x, int64_t ldx, const float *__restrict__ w, int K, float eps,
                      int mode, int8_t *__restrict__ q, float *__restrict__ d, int32_t *__restrict__ bsum) {
    extern __shared__ float hs[]; // K floats
    bn_pdl_wait();
    bn_pdl_trigger();
    const int t = blockIdx.x, nb = K / 256, lane = threadIdx.x & 31;
    const float inv = bn_block_norm_load(x + t * ldx, K, eps, mode, hs);
    for (int b = threadIdx.x >> 5; b < nb; b += blockDim.x >> 5) {
        // Element lane + 32k of the block, k < 8: group k is elements 32k .. 32k + 31.
        float h[8], amax = 0.f, mv = 0.f;
        int at = 1 << 30;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int e = b * 256 + lane + 32 * k;
            h[k] = hs[e] * inv * w[e];
            if (fabsf(h[k]) > amax) amax = fabsf(h[k]), mv = h[k], at = lane + 32 * k;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) { // the largest magnitude, the first index on ties
            const float oa = __shfl_xor_sync(0xffffffffu, amax, o), om = __shfl_xor_sync(0xffffffffu, mv, o);
            const int oi = __shfl_xor_sync(0xffffffffu, at, o);
            if (oa > amax || (oa == amax && oi < at)) amax = oa, mv = om, at = oi;
        }
        const float iscale = amax == 0.f ? 0.f : __fdiv_rn(-127.f, mv);
        int8_t *qb = q + (int64_t)t * K + b * 256;
        int32_t *sb = bsum + ((int64_t)t * nb + b) * 8;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            // A block whose largest magnitude is below 127/FLT_MAX has an infinite
            // iscale: the CPU's nearest_int makes such products code 0, where a
            // saturating conversion would give 127.
            const float p = __fmul_rn(iscale, h[k]);
            const int v = amax == 0.f || !isfinite(p) ? 0 : min(127, __float2int_rn(p));
            qb[bn_q8k_code_slot(lane + 32 * k)] = (int8_t)v;
            int s = v;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (lane == k) sb[k] = s;
        }
        if (lane == 0) d[(int64_t)t * nb + b] = amax == 0.f ? 0.f : __fdiv_rn(1.f, iscale);
    }
}

// One 4-byte word of weight codes (four elements a byte, bits 7:6 first) against
// the four activation words of the same elements, planes s = 0..3.
__device__ __forceinline__ int bn_q8k_dot_word(uint32_t w, int4 x, int acc) {
    acc = __dp4a((int)((w >> 6) & 0x03030303u), x.x, acc);
    acc = __dp4a((int)((w >> 4) & 0x03030303u), x.y, acc);
    acc = __dp4a((int)((w >> 2) & 0x03030303u), x.z, acc);
    return __dp4a((int)(w & 0x03030303u), x.w, acc);
}

// Output (token t, row) of a sum v: v times the row's output scale, stored or added.
__device__ __forceinline__ void bn_q8k_store(float *y, int64_t ldy, int t, int row, float v, float oscale, bool add) {
    float *dst = y + (int64_t)t * ldy + row;
    const float out = __fmul_rn(v, oscale);
    *dst = add ? __fadd_rn(*dst, out) : out;
}

__global__ void __launch_bounds__(BN_Q8K_WARPS * 32)
bn_ternary_q8k_kernel(const uint8_t *__restrict__ w, int K, int M, const int8_t *__restrict__ q,
                      const float *__restrict__ d, const int32_t *__restrict__ bsum, int n, bn_cuda_rowscale rs,
                      bool add, float *__restrict__ y, int64_t ldy) {
    bn_pdl_wait();
    bn_pdl_trigger();
    const int lane = threadIdx.x & 31, i = lane & 7, nb = K / 256;
    // blockIdx.x: the tokens, so the blocks of one run of rows run together and
    // their weights are read from HBM once.
    const int row = (blockIdx.y * BN_Q8K_WARPS + (threadIdx.x >> 5)) * BN_Q8K_ROWS + (lane >> 3);
    const int t0 = blockIdx.x * BN_Q8K_TOKENS, nt = min(BN_Q8K_TOKENS, n - t0);
    const bool valid = row < M; // shuffles below need every lane: the others compute on row 0
    const uint8_t *wr = w + (int64_t)(valid ? row : 0) * (K / 4) + 4 * i;
    const float wscale = bn_row_wscale(rs, row), oscale = bn_row_oscale(rs, row);
    float acc[BN_Q8K_TOKENS];
#pragma unroll
    for (int t = 0; t < BN_Q8K_TOKENS; t++) acc[t] = 0.f;
    for (int b = 0; b < nb; b++) {
        const uint32_t w0 = *reinterpret_cast<const uint32_t *>(wr + (2 * b) * 32);
        const uint32_t w1 = *reinterpret_cast<const uint32_t *>(wr + (2 * b + 1) * 32);
#pragma unroll
        for (int t = 0; t < BN_Q8K_TOKENS; t++) {
            if (t < nt) {
                const int64_t tb = (int64_t)(t0 + t) * nb + b;
                // Lane i's 32 codes: halves h = 0, 1, each planes s = 0..3 of bytes 4i..4i+3.
                const int4 *xq = reinterpret_cast<const int4 *>(q + tb * 256 + 32 * i);
                const int P = bn_q8k_dot_word(w1, xq[1], bn_q8k_dot_word(w0, xq[0], 0));
                const float dd = __fmul_rn(d[tb], wscale);
                acc[t] = __fadd_rn(acc[t], __fmul_rn((float)(P - bsum[tb * 8 + i]), dd));
            }
        }
    }
#pragma unroll
    for (int t = 0; t < BN_Q8K_TOKENS; t++) {
        // The CPU's tree over lanes i = 0..7 of this row: e_i + e_(i+4), then
        // (i, i+2), then (0, 1); lane i = 0 ends with the sum.
        float v = acc[t];
        v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 4));
        v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 2));
        v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 1));
        if (valid && i == 0 && t < nt) bn_q8k_store(y, ldy, t0 + t, row, v, oscale, add);
    }
}

// The CPU's tree over the eight float lanes of one output (see the dp4a kernel).
__device__ __forceinline__ float bn_q8k_lane_tree(const float (&e)[8]) {
    return __fadd_rn(__fadd_rn(__fadd_rn(e[0], e[4]), __fadd_rn(e[2], e[6])),
                     __fadd_rn(__fadd_rn(e[1], e[5]), __fadd_rn(e[3], e[7])));
}

__device__ __forceinline__ uint32_t bn_q8k_word(const void *p) { return __ldg(static_cast<const uint32_t *>(p)); }

// A warp: 16 rows x 8 NT tokens. Outputs of thread (g, tig): rows g (e = 0, 1)
// and g + 8 (e = 2, 3), tokens 8 nt + 2 tig + (e & 1).
template <int NT>
__global__ void __launch_bounds__(BN_Q8KM_WARPS * 32)
bn_ternary_q8k_mma_kernel(const uint8_t *__restrict__ w, int K, int M, const int8_t *__restrict__ q,
                          const float *__restrict__ d, const int32_t *__restrict__ bsum, int n, bn_cuda_rowscale rs,
                          bool add, float *__restrict__ y, int64_t ldy) {
    bn_pdl_wait();
    bn_pdl_trigger();
    const int lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3, nb = K / 256;
    const int ra = (blockIdx.y * BN_Q8KM_WARPS + (threadIdx.x >> 5)) * 16 + g, rb = ra + 8;
    const int t0 = blockIdx.x * 8 * NT;
    const int64_t rowb = K / 4; // bytes a row
    // Rows past M read row 0 and tokens past n token 0 (valid memory); neither is stored.
    const uint8_t *wa = w + (ra < M ? ra : 0) * rowb, *wb = w + (rb < M ? rb : 0) * rowb;
    const float wsa = bn_row_wscale(rs, ra), wsb = bn_row_wscale(rs, rb);
    const int sh = 6 - 2 * tig; // plane tig: bits 7:6 first
    float acc[NT][4][8];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++)
#pragma unroll
            for (int i = 0; i < 8; i++) acc[nt][e][i] = 0.f;
    for (int b = 0; b < nb; b++) {
        float dd[NT][4]; // the block's scale times the row's weight scale, as the dp4a kernel rounds it
        int tok[NT][2], tb[NT];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const int tg = t0 + 8 * nt + g; // token g of the B fragment
            tb[nt] = (tg < n ? tg : 0) * nb + b;
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const int t = t0 + 8 * nt + 2 * tig + c;
                tok[nt][c] = t < n ? t * nb + b : -1;
                const float db = t < n ? d[tok[nt][c]] : 0.f;
                dd[nt][c] = __fmul_rn(db, wsa);
                dd[nt][2 + c] = __fmul_rn(db, wsb);
            }
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int64_t o = (int64_t)b * 64 + 4 * i; // bytes 4i..4i+3 of half 0; half 1 is 32 further
            const uint32_t a[4] = {(bn_q8k_word(wa + o) >> sh) & 0x03030303u, (bn_q8k_word(wb + o) >> sh) & 0x03030303u,
                                   (bn_q8k_word(wa + o + 32) >> sh) & 0x03030303u,
                                   (bn_q8k_word(wb + o + 32) >> sh) & 0x03030303u};
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const int8_t *xq = q + (int64_t)tb[nt] * 256 + 32 * i;
                int c[4] = {0, 0, 0, 0};
                bn_mma_u8s8(c, a, bn_q8k_word(xq + 4 * tig), bn_q8k_word(xq + 16 + 4 * tig));
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int tk = tok[nt][e & 1];
                    if (tk >= 0)
                        acc[nt][e][i] = __fadd_rn(acc[nt][e][i], __fmul_rn((float)(c[e] - bsum[(int64_t)tk * 8 + i]),
                                                                          dd[nt][e]));
                }
            }
        }
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int row = e < 2 ? ra : rb, t = t0 + 8 * nt + 2 * tig + (e & 1);
            if (row < M && t < n) bn_q8k_store(y, ldy, t, row, bn_q8k_lane_tree(acc[nt][e]), bn_row_oscale(rs, row), add);
        }
}

cudaError_t bn_cuda_rmsnorm_q8k(const float *x, int64_t ldx, const float *w, int n_tok, int K, float eps,
                                bn_nq_mode mode, int8_t *q, float *d, int32_t *bsum, bool pdl, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (K <= 0 || K % 256) return cudaErrorInvalidValue;
    const size_t smem = sizeof(float) * (size_t)K;
    static size_t allowed = 0; // the widest row allowed so far (smem.cuh)
    if (smem > allowed) {
        const cudaError_t e = bn_cuda_allow_smem(bn_rmsnorm_q8k_kernel, smem);
        if (e != cudaSuccess) return e;
        allowed = smem;
    }
    return bn_launch(pdl, bn_rmsnorm_q8k_kernel, dim3(n_tok), dim3(BN_NQ_THREADS), smem, st, x, ldx, w, K, eps,
                     (int)mode, q, d, bsum);
}

cudaError_t bn_cuda_ternary_q8k(const uint8_t *w, int K, int M, const int8_t *q, const float *d, const int32_t *bsum,
                                int n, bn_cuda_rowscale rs, bool add, float *y, int64_t ldy, bool mma, bool pdl,
                                cudaStream_t st) {
    if (n <= 0 || M <= 0) return cudaSuccess;
    if (mma) {
        const int row_blocks = (M + 16 * BN_Q8KM_WARPS - 1) / (16 * BN_Q8KM_WARPS);
        if (K <= 0 || K % 256 || row_blocks > 65535) return cudaErrorInvalidValue;
        const dim3 block(BN_Q8KM_WARPS * 32);
        if (n <= 8)
            return bn_launch(pdl, bn_ternary_q8k_mma_kernel<1>, dim3(1, row_blocks), block, 0, st, w, K, M, q, d,
                             bsum, n, rs, add, y, ldy);
        return bn_launch(pdl, bn_ternary_q8k_mma_kernel<2>, dim3((n + 15) / 16, row_blocks), block, 0, st, w, K, M,
                         q, d, bsum, n, rs, add, y, ldy);
    }
    const int rows_a_block = BN_Q8K_WARPS * BN_Q8K_ROWS, row_blocks = (M + rows_a_block - 1) / rows_a_block;
    if (K <= 0 || K % 256 || row_blocks > 65535) return cudaErrorInvalidValue;
    const dim3 grid((n + BN_Q8K_TOKENS - 1) / BN_Q8K_TOKENS, row_blocks);
    return bn_launch(pdl, bn_ternary_q8k_kernel, grid, dim3(BN_Q8K_WARPS * 32), 0, st, w, K, M, q, d, bsum, n, rs,
                     add, y, ldy);
}
