// ternary_gemm_mma.cu - prefill bitlinear on the int8 tensor cores (mma.sync m16n8k32).
//
// Design: the same sum as the dp4a GEMM (ternary_gemm.cu), sum(code * q) - qsum[t]
// with code = w + 1 in {0, 1, 2}, but each warp issues mma.sync.m16n8k32 with the
// codes as the unsigned A operand (.u8) and the activations as the signed B
// operand (.s8): decoding a code is a shift and a mask, no subtraction, and the
// "- qsum" moves to the epilogue, which is written exactly as the dp4a GEMM's so
// both produce the same floats.
// - The k order inside an mma is free as long as A and B agree. I2_S word j of a
//   row's 32-byte block, shifted by 6-2s and masked with 0x03030303, holds the
//   codes of elements 32s+4j..32s+4j+3, which is activation word 8s+j of a token.
//   So for the s-th 32-wide k step a thread's A registers are I2_S words t and
//   4+t of rows g and g+8 (t = lane % 4, g = lane / 4) shifted by 6-2s, and B
//   comes straight from the activations in their natural order with ldmatrix.
//   The weights stay 2-bit in shared memory (4 KiB per K block) and each thread
//   decodes its own fragments: a raw word feeds four k steps.
// - Block tile 128 rows x BN tokens (BN 128, 64 or 32), K advances one I2_S block
//   (128) per stage; 8 warps as 2 x 4, 4 x 2 or 8 x 1 (rows x tokens), each 32
//   tokens wide and 64, 32 or 16 rows high = 4 x 4, 2 x 4 or 1 x 4 mma tiles. With
//   128 tokens every B fragment feeds four mmas, which keeps ldmatrix traffic well
//   under the shared-memory bandwidth, and the decode (7 ALU ops per raw word)
//   stays cheap. A block computes all BN tokens whatever n is (tokens past n copy
//   the last), so a batch of a few tokens (a short prompt, a decode step of many
//   sequences) wastes most of a 128-token tile: the narrower tiles are for those
//   (bn_cuda_ternary_gemm_mma's `tile`). The sums are integers: every tile gives
//   the same result, bit for bit.
// - cp.async (16 B, L2 only) in a 4-stage ring, 4 KiB of weights + BN x 128 bytes
//   a stage (80 KiB of dynamic shared memory at BN 128: two blocks per SM on sm_80
//   and sm_90). Activation rows are 128
//   bytes with their 16-byte chunks XOR-swizzled by token % 8, weight rows are 32
//   bytes with their two chunks swapped on rows 4..7 of every 8, so ldmatrix and
//   the weight word loads are free of bank conflicts without padding.
// - Tails: rows >= M and tokens >= n are loaded as copies of the last row and
//   token, so the loop has no predicates and reads nothing outside w and q; their
//   sums are never stored.
// - PDL: the first weight stages are requested before bn_pdl_wait(); activations,
//   s, qsum and y only after it.
// CPU twin: bn_ternary_gemm_scalar.
#include <atomic>

#include "async_copy.cuh"
#include "cuda_kernels.cuh"
#include "mma.cuh"
#include "pdl.cuh"

#define BN_MMA_BM 128     // weight rows per block
#define BN_MMA_STAGES 4   // K blocks of 128 in flight
#define BN_MMA_THREADS 256
#define BN_MMA_WARP_TOKS 32
#define BN_MMA_NT (BN_MMA_WARP_TOKS / 8)  // n8 tiles per warp
#define BN_MMA_W_BYTES (BN_MMA_BM * 32)   // one K block of I2_S weights

static_assert(BN_MMA_THREADS == 2 * BN_MMA_BM, "one 16-byte weight chunk per thread");
static_assert(BN_MMA_NT % 2 == 0, "ldmatrix.x4 loads two n8 tiles");

// The tile of BN tokens (128, 64 or 32): the warp grid and the shared memory.
template <int BN> struct bn_mma_tile {
    static constexpr int WARPS_N = BN / BN_MMA_WARP_TOKS;
    static constexpr int WARPS_M = BN_MMA_THREADS / 32 / WARPS_N;
    static constexpr int WARP_ROWS = BN_MMA_BM / WARPS_M;
    static constexpr int MT = WARP_ROWS / 16; // m16 tiles per warp
    static constexpr int Q_PASSES = BN / (BN_MMA_THREADS / 8); // 16-byte activation chunks a thread loads
    static constexpr int Q_BYTES = BN * 128;                   // one K block of int8 activations
    static constexpr int STAGE_BYTES = BN_MMA_W_BYTES + Q_BYTES;
    static constexpr int SMEM = BN_MMA_STAGES * STAGE_BYTES;
    static_assert(WARPS_N * BN_MMA_WARP_TOKS == BN && WARPS_M * WARPS_N == BN_MMA_THREADS / 32, "warp grid");
    static_assert(MT >= 1 && MT * 16 * WARPS_M == BN_MMA_BM, "rows");
    static_assert(Q_PASSES * (BN_MMA_THREADS / 8) == BN, "activation chunks");
};

template <int BN>
__global__ void __launch_bounds__(BN_MMA_THREADS, 2)
bn_ternary_gemm_mma_kernel(const uint8_t *__restrict__ w, int K, int M, const int8_t *__restrict__ q,
                           const float *__restrict__ s, const int32_t *__restrict__ qsum, int n,
                           bn_cuda_rowscale rs, bool add, float *__restrict__ y, int64_t ldy) {
    using T = bn_mma_tile<BN>;
    extern __shared__ __align__(128) uint8_t smem[];
    const uint32_t smem0 = (uint32_t)__cvta_generic_to_shared(smem);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, tq = lane & 3;
    const int warp_row = (warp % T::WARPS_M) * T::WARP_ROWS;
    const int warp_tok = (warp / T::WARPS_M) * BN_MMA_WARP_TOKS;
    const int m0 = blockIdx.x * BN_MMA_BM, n0 = blockIdx.y * BN;
    const int64_t row_bytes = K / 4;
    const int nkb = K / 128;

    // Loads: thread -> 16-byte chunk `w_chunk` of weight row `w_row`, and chunk
    // `q_chunk` of token rows q_tok + 32 l (l < Q_PASSES). Rows past M or n load the last
    // row instead: every read stays inside w and q, no load needs a predicate, and
    // the sums of those rows land in tile rows and columns that are never stored.
    const int w_row = tid >> 1, w_chunk = tid & 1;
    const uint8_t *w_src = w + (int64_t)min(m0 + w_row, M - 1) * row_bytes + 16 * w_chunk;
    const uint32_t w_dst = w_row * 32 + ((w_chunk ^ ((w_row >> 2) & 1)) << 4);
    const int q_chunk = tid & 7, q_tok = tid >> 3, q_last = n - 1 - n0;
    const int8_t *q_blk = q + (int64_t)n0 * K;
    const uint32_t q_dst = BN_MMA_W_BYTES + q_tok * 128 + ((q_chunk ^ (q_tok & 7)) << 4);
    auto load_w = [&](int kb) {
        bn_cp_async16(smem0 + (kb % BN_MMA_STAGES) * T::STAGE_BYTES + w_dst, w_src + 32 * kb);
    };
    auto load_q = [&](int kb) {
        const uint32_t dst = smem0 + (kb % BN_MMA_STAGES) * T::STAGE_BYTES + q_dst;
#pragma unroll
        for (int l = 0; l < T::Q_PASSES; l++) { // offset < 128 K: an int is enough
            const int row = min(q_tok + 32 * l, q_last);
            bn_cp_async16(dst + l * 32 * 128, q_blk + (row * K + 16 * q_chunk + 128 * kb));
        }
    };

    // Fragment reads. Weights: rows warp_row + 16 i + g (+8), chunk 0 (word tq)
    // and chunk 1 (word 4 + tq); the chunk swap depends on g only.
    const int w_swap = (g >> 2) & 1;
    const uint32_t w_frag = (warp_row + g) * 32 + 4 * tq;
    const uint32_t w_lo = w_frag + (w_swap << 4), w_hi = w_frag + ((w_swap ^ 1) << 4);
    // Activations, ldmatrix.x4: lanes 8m..8m+7 address matrix m = rows (tokens)
    // of n8 tile 2p + m/2, chunk 2s + m%2 of the k step s; +2048 bytes per pair p.
    const int ld_mat = lane >> 3;
    const uint32_t q_frag = BN_MMA_W_BYTES + (warp_tok + 8 * (ld_mat >> 1) + (lane & 7)) * 128;
    const uint32_t q_swz = ((ld_mat & 1) ^ (lane & 7)) << 4; // chunk 2s + m%2 lands at q_swz ^ 32 s

    int acc[T::MT][BN_MMA_NT][4];
#pragma unroll
    for (int i = 0; i < T::MT; i++)
#pragma unroll
        for (int j = 0; j < BN_MMA_NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0;

    // Weights do not depend on the previous kernel: request them before waiting.
#pragma unroll
    for (int kb = 0; kb < BN_MMA_STAGES - 1; kb++)
        if (kb < nkb) load_w(kb);
    bn_pdl_wait();
#pragma unroll
    for (int kb = 0; kb < BN_MMA_STAGES - 1; kb++) {
        if (kb < nkb) load_q(kb);
        bn_cp_async_commit(); // one group per stage, empty or not, keeps the count
    }

    for (int kb = 0; kb < nkb; kb++) {
        bn_cp_async_wait_group<BN_MMA_STAGES - 2>(); // stage kb has landed (this thread's part)
        __syncthreads(); // ... everyone's; and stage kb - 1 is no longer read
        const int next = kb + BN_MMA_STAGES - 1;
        if (next < nkb) {
            load_w(next);
            load_q(next);
        }
        bn_cp_async_commit();

        const uint32_t stage = smem0 + (kb % BN_MMA_STAGES) * T::STAGE_BYTES;
        const uint8_t *ws = smem + (kb % BN_MMA_STAGES) * T::STAGE_BYTES;
        uint32_t raw[T::MT][4]; // A register order: (g, tq), (g+8, tq), (g, 4+tq), (g+8, 4+tq)
#pragma unroll
        for (int i = 0; i < T::MT; i++) {
            raw[i][0] = *reinterpret_cast<const uint32_t *>(ws + w_lo + 512 * i);
            raw[i][1] = *reinterpret_cast<const uint32_t *>(ws + w_lo + 512 * i + 256);
            raw[i][2] = *reinterpret_cast<const uint32_t *>(ws + w_hi + 512 * i);
            raw[i][3] = *reinterpret_cast<const uint32_t *>(ws + w_hi + 512 * i + 256);
        }
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            uint32_t b[BN_MMA_NT][2];
#pragma unroll
            for (int p = 0; p < BN_MMA_NT / 2; p++)
            {
                uint32_t r[4];
                bn_ldmatrix_x4(r, stage + q_frag + 2048 * p + (q_swz ^ (32 * ks)));
                b[2 * p][0] = r[0];
                b[2 * p][1] = r[1];
                b[2 * p + 1][0] = r[2];
                b[2 * p + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < T::MT; i++) {
                uint32_t a[4];
#pragma unroll
                for (int e = 0; e < 4; e++) a[e] = (raw[i][e] >> (6 - 2 * ks)) & 0x03030303u;
#pragma unroll
                for (int j = 0; j < BN_MMA_NT; j++) bn_mma_u8s8(acc[i][j], a, b[j][0], b[j][1]);
            }
        }
    }
    bn_pdl_trigger(); // only the epilogue is left

    // acc[i][j]: rows r0 + 16 i + g (+8 for elements 2, 3), tokens t0 + 8 j + 2 tq (+1).
    const int r0 = m0 + warp_row + g, t0 = n0 + warp_tok + 2 * tq;
#pragma unroll
    for (int j = 0; j < BN_MMA_NT; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int t = t0 + 8 * j + e;
            if (t >= n) continue;
            const float st = s[t];
            const int qs = qsum[t];
            float *yt = y + t * ldy;
#pragma unroll
            for (int i = 0; i < T::MT; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int r = r0 + 16 * i + 8 * h;
                    if (r >= M) continue;
                    const float v = bn_row_scaled(rs, r, (float)(acc[i][j][2 * h + e] - qs) / st);
                    yt[r] = add ? __fadd_rn(yt[r], v) : v; // no FMA contraction, as the dp4a GEMM
                }
        }
}

// The 128-token tile needs more than the default 48 KiB of dynamic shared
// memory; the limit is per device and per kernel, so each tile's is raised once
// on each device.
template <int BN> static cudaError_t bn_gemm_mma_smem_setup(void) {
    static std::atomic<uint64_t> done{0}; // bit d: device d
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    const uint64_t bit = dev < 64 ? 1ull << dev : 0;
    if (bit & done.load(std::memory_order_relaxed)) return cudaSuccess;
    e = cudaFuncSetAttribute(bn_ternary_gemm_mma_kernel<BN>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             bn_mma_tile<BN>::SMEM);
    if (e == cudaSuccess) done.fetch_or(bit, std::memory_order_relaxed);
    return e;
}

template <int BN>
static cudaError_t gemm_mma_launch(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                   const int32_t *qsum, int n, bn_cuda_rowscale rs, bool add, float *y, int64_t ldy,
                                   cudaStream_t st) {
    const cudaError_t e = bn_gemm_mma_smem_setup<BN>();
    if (e != cudaSuccess) return e;
    const dim3 grid((M + BN_MMA_BM - 1) / BN_MMA_BM, (n + BN - 1) / BN);
    return bn_launch(false, bn_ternary_gemm_mma_kernel<BN>, grid, dim3(BN_MMA_THREADS), bn_mma_tile<BN>::SMEM, st,
                     w, K, M, q, s, qsum, n, rs, add, y, ldy);
}

int bn_cuda_gemm_mma_tile(int n) { return n <= 32 ? 32 : n <= 64 ? 64 : 128; }

cudaError_t bn_cuda_ternary_gemm_mma(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                     const int32_t *qsum, int n, bn_cuda_rowscale rs, bool add,
                                     float *y, int64_t ldy, int tile, cudaStream_t st) {
    if (n <= 0 || M <= 0) return cudaSuccess;
    if (K <= 0 || K % 128 != 0) return cudaErrorInvalidValue;
    switch (tile ? tile : bn_cuda_gemm_mma_tile(n)) {
    case 32: return gemm_mma_launch<32>(w, K, M, q, s, qsum, n, rs, add, y, ldy, st);
    case 64: return gemm_mma_launch<64>(w, K, M, q, s, qsum, n, rs, add, y, ldy, st);
    case 128: return gemm_mma_launch<128>(w, K, M, q, s, qsum, n, rs, add, y, ldy, st);
    default: return cudaErrorInvalidValue;
    }
}
