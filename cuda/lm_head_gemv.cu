// lm_head_gemv.cu - the LM head as a streaming GEMV: logits[t][r] = w[r, :] . x[t, :]
// for n <= 64 token rows, with the greedy argmax of the last row fused in.
//
// Why: the 2B-4T head is 128256 x 2560 (657 MB in f16, 328 MB as int8) and a
// decode step reads all of it for one token, so the head is a pure bandwidth
// problem: every weight byte must come from HBM once per step, in 16-byte
// coalesced loads, with enough of them in flight to cover the latency, and
// nothing else may cost more than that stream. (The weights are far larger than
// L2, so nothing is ever served from it: each launch runs from HBM.)
//
// f16 and int8 heads: tensor cores (mma.sync m16n8k16 f16 -> f32, m16n8k32 s8 -> s32).
// Not for speed at n = 1, where any kernel that streams the weights is enough,
// but because at n = 16 an FMA loop would need 16 FMAs per weight (5.3 GFMA a
// pass, about the time of the weight stream itself) and dp4a likewise.
// - A warp owns a tile of 16 rows. Lane (g = lane/4, tig = lane%4) loads 16 bytes
//   of row g and 16 bytes of row g+8 at byte 64*j + 16*tig of the row for k-block
//   j (64 bytes of each row: 32 halves or 64 int8): each load instruction of the
//   warp reads 8 rows x 64 contiguous bytes, whole 32-byte sectors.
// - Those registers are the A fragments as they are. In both shapes (PTX ISA
//   "Matrix Fragments for mma.m16n8k16 / m16n8k32") a thread's A registers 0
//   and 2 hold row g at a set S of logical k columns (2 + 2 halves, or 4 + 4
//   int8), registers 1 and 3 hold row g+8 at the same S, and its B registers 0
//   and 1 hold token column g at S, in the same order. A dot product does not
//   care which physical k a logical k stands for as long as A and B agree, so
//   the .x/.y words of the two rows' chunks feed one mma, .z/.w a second, and B
//   is the matching 16 bytes of x[token g] - no shuffles, no shared memory.
// - x (n <= 64 rows of K) is read through L1, where every warp of the SM finds
//   it while it fits (16 f16 rows of the 2B-4T head are 80 KB; 64 rows, 320 KB,
//   do not, and come from L2 as well); the weights bypass L1
//   (ld.global.nc.L1::no_allocate) so they do not evict it. Tokens 8i..8i+7 are n-tile i (NTILES = 1, 2, 4 or 8 of them, the
//   fewest that hold n); tokens past n get zero B fragments and their results
//   are not stored. So 64 streams read the head once a step, not 4 times.
// - Block: 256 threads = 2 row tiles (32 rows) x 4 warps splitting K (warp ks
//   takes k-blocks ks, ks+4, ...: the four warps of a tile read 256 contiguous
//   bytes of each row at a time). Each warp issues U k-blocks (U = 4 for up to
//   16 tokens: 8 x 16 bytes a lane, 4 KiB a warp) before it uses any of them.
//   The four partial tiles are summed through shared memory in a fixed order:
//   deterministic. 32 rows a block gives 4008 blocks for the 2B-4T vocabulary:
//   small units, so the block scheduler keeps every SM streaming until the end.
//   Registers and bytes in flight for each NTILES: see bn_head_u.
// - int8 epilogue: logit = (float)acc * row_scale[r] / xscale[t], in that order
//   and correctly rounded (__fmul_rn, __fdiv_rn), as cpu/forward.c lm_head_worker
//   computes it: acc is the exact int32 dot product, so the logits are
//   bit-identical to the CPU's. The f16 head accumulates in f32 (the products are
//   exact; only the summation order differs from the CPU).
// f32 heads (an F32 or widened BF16 table): no tensor-core format keeps f32
// weights exact (tf32 would round them), so FMA: a warp owns 4 rows, its lanes
// stride over 16-byte chunks (2 per row in flight, 8 loads a lane), x chunks
// from L1 reused by the 4 rows, and a warp sum per (row, token). The weights are
// twice the bytes of f16, so the same 5.3 GFMA at n = 16 take about half the
// time of their stream.
//
// PDL: the weights are constant, so the first batch of weight loads is issued
// before bn_pdl_wait(); x, the scales and every write come after it.
//
// Fused argmax (argmax != NULL): each block reduces its candidates for the last
// token row to one (value, index) in scratch[blockIdx.x]; the block that
// finishes last (threadfence + atomicAdd on *counter) reduces those, writes the
// id and puts *counter back to 0, so the launch can be replayed in a CUDA graph.
// Same rule as bn_argmax_kernel: ties to the lowest index, -1 for a row that
// holds a NaN or an infinity (reduce.cuh).
// CPU twins: bn_f16_gemv_scalar / bn_float_gemv (f16/f32), bn_i8_gemv_scalar +
// the scaling in lm_head_worker (int8), the sampler's argmax.
#include <type_traits>

#include "cuda_kernels.cuh"
#include "mma.cuh"
#include "pdl.cuh"
#include "reduce.cuh"

#define BN_HEAD_THREADS 256
#define BN_HEAD_KSPLIT 4                                         // warps splitting one tile's K
#define BN_HEAD_TILES (BN_HEAD_THREADS / 32 / BN_HEAD_KSPLIT)    // 16-row tiles a block
#define BN_HEAD_ROWS (16 * BN_HEAD_TILES)                        // rows a block (both kernels)
#define BN_HEAD_F32_N 16                                         // token rows a pass, f32 kernel
#define BN_HEAD_F32_R 4                                          // rows a warp, f32 kernel
#define BN_HEAD_F32_U 2                                          // chunks a lane loads ahead, each row

static_assert(BN_HEAD_ROWS == (BN_HEAD_THREADS / 32) * BN_HEAD_F32_R, "both kernels: same rows a block");

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "lm_head_gemv.cu needs sm_80 or newer (mma.sync m16n8k16 / m16n8k32)"
#endif

size_t bn_cuda_head_scratch_bytes(int V) {
    return V <= 0 ? 0 : sizeof(int2) * (size_t)((V + BN_HEAD_ROWS - 1) / BN_HEAD_ROWS);
}

// A weight chunk, or zeros when !in (then p need not be valid): read once, so it
// is not kept in L1 (x lives there); the L2 fetches the whole 256-byte segment the
// four K-split warps read together. Predicated inside the asm: no branch, so a
// batch of these issues back to back.
__device__ __forceinline__ uint4 bn_ld_stream(const void *p, bool in) {
    uint4 v;
    asm volatile("{\n\t.reg .pred p;\n\t"
                 "setp.ne.b32 p, %5, 0;\n\t"
                 "mov.b32 %0, 0;\n\tmov.b32 %1, 0;\n\tmov.b32 %2, 0;\n\tmov.b32 %3, 0;\n\t"
                 "@p ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];\n\t}"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p), "r"((int)in));
    return v;
}

// One k step on the tensor cores, chosen by the accumulator type: f16 x f16 ->
// f32 (k16) or s8 x s8 -> s32 (k32, exact).
__device__ __forceinline__ void bn_mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                       uint32_t b0, uint32_t b1) {
    const uint32_t a[4] = {a0, a1, a2, a3};
    bn_mma_f16(d, a, b0, b1);
}

__device__ __forceinline__ void bn_mma(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                       uint32_t b0, uint32_t b1) {
    const uint32_t a[4] = {a0, a1, a2, a3};
    bn_mma_s8(d, a, b0, b1);
}

// Called by every thread of every block with its candidate (bv, bi) for the last
// token row (or (-INFINITY, BN_ARGMAX_NONE)); see the header.
__device__ __forceinline__ void bn_grid_argmax(float bv, int bi, int2 *__restrict__ scratch,
                                               unsigned *__restrict__ counter, int32_t *__restrict__ out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ bool s_last;
    bn_block_argmax(bv, bi, sv, si);
    if (threadIdx.x == 0) {
        scratch[blockIdx.x] = make_int2(__float_as_int(bv), bi);
        __threadfence(); // the entry is visible before the count says so
        s_last = atomicAdd(counter, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    bv = -INFINITY;
    bi = BN_ARGMAX_NONE;
    for (int b = threadIdx.x; b < (int)gridDim.x; b += blockDim.x) {
        const int2 e = __ldcg(scratch + b); // L2: other SMs wrote these
        bn_argmax_take(bv, bi, __int_as_float(e.x), e.y);
    }
    bn_block_argmax(bv, bi, sv, si);
    if (threadIdx.x == 0) {
        *out = bi == BN_ARGMAX_NONE ? 0 : bi; // -1: not all finite
        *counter = 0;                         // ready for the next launch / graph replay
    }
}

// Per NTILES: the k-blocks a lane loads ahead (U), and the blocks an SM must
// hold, which caps the registers (65536 / (256 * blocks)). A lane holds 4 *
// NTILES accumulators and 8 * U registers of weights in flight. Up to 2 tiles:
// U = 4 within 64 registers (4 blocks, 128 KiB in flight an SM). 4 and 8 tiles:
// U = 2 within 80 and 128 registers (3 and 2 blocks, 48 and 32 KiB in flight an
// SM: 6.3 and 4.2 MB on 132 SMs; by Little's law 4.8 TB/s at a loaded memory
// latency near 0.7 us, an estimate not measured here, needs 3.4 MB).
__host__ __device__ constexpr int bn_head_u(int ntiles) { return ntiles <= 2 ? 4 : 2; }
__host__ __device__ constexpr int bn_head_min_blocks(int ntiles) { return ntiles <= 2 ? 4 : ntiles <= 4 ? 3 : 2; }

// f16 (Q8 = false) or int8 (Q8 = true) head; rows of row_bytes = K * element
// size bytes (a multiple of 16) for both w and x. NTILES = ceil(n / 8) rounded up
// to 1, 2, 4 or 8.
template <bool Q8, int NTILES>
__global__ void __launch_bounds__(BN_HEAD_THREADS, bn_head_min_blocks(NTILES))
bn_head_mma_kernel(const uint8_t *__restrict__ w, int row_bytes, int V, const uint8_t *__restrict__ x,
                   int n, const float *__restrict__ row_scale, const float *__restrict__ xscale,
                   float *__restrict__ logits, int32_t *__restrict__ argmax, int2 *__restrict__ scratch,
                   unsigned *__restrict__ counter) {
    typedef typename std::conditional<Q8, int, float>::type acc_t;
    constexpr int U = bn_head_u(NTILES);
    __shared__ acc_t red[BN_HEAD_TILES][BN_HEAD_KSPLIT - 1][NTILES * 4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int tile = warp / BN_HEAD_KSPLIT, ks = warp % BN_HEAD_KSPLIT;
    const int g = lane >> 2, tig = lane & 3;
    const int row0 = blockIdx.x * BN_HEAD_ROWS + tile * 16;
    const bool ok_a = row0 + g < V, ok_b = row0 + g + 8 < V;
    const uint8_t *wa = w + (int64_t)(row0 + g) * row_bytes;
    const uint8_t *wb = wa + (int64_t)8 * row_bytes;
    const int nchunk = row_bytes / 16; // 16-byte chunks a row
    const int nkb = (nchunk + 3) / 4;  // 64-byte k-blocks a row
    const int my_nkb = ks < nkb ? (nkb - ks + BN_HEAD_KSPLIT - 1) / BN_HEAD_KSPLIT : 0;

    // 1. The first batch of weights goes in flight before waiting for x.
    uint4 wv[U][2];
    auto load_weights = [&](int i0) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = 4 * (ks + BN_HEAD_KSPLIT * (i0 + u)) + tig;
            const bool in = i0 + u < my_nkb && c < nchunk;
            wv[u][0] = bn_ld_stream(wa + 16 * c, in && ok_a);
            wv[u][1] = bn_ld_stream(wb + 16 * c, in && ok_b);
        }
    };
    load_weights(0);
    bn_pdl_trigger();
    bn_pdl_wait();

    // 2. The dot products; tokens 8*nt + g of the B fragments, zero past n.
    acc_t acc[NTILES][4];
#pragma unroll
    for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) acc[nt][i] = 0;
    for (int i0 = 0; i0 < my_nkb; i0 += U) {
        if (i0 > 0) load_weights(i0);
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (i0 + u >= my_nkb) break; // warp-uniform: mma.sync needs every lane
            const int c = 4 * (ks + BN_HEAD_KSPLIT * (i0 + u)) + tig;
#pragma unroll
            for (int nt = 0; nt < NTILES; nt++) {
                const int tok = 8 * nt + g;
                const uint4 xv = tok < n && c < nchunk
                                     ? __ldg(reinterpret_cast<const uint4 *>(x + (int64_t)tok * row_bytes) + c)
                                     : make_uint4(0, 0, 0, 0);
                bn_mma(acc[nt], wv[u][0].x, wv[u][1].x, wv[u][0].y, wv[u][1].y, xv.x, xv.y);
                bn_mma(acc[nt], wv[u][0].z, wv[u][1].z, wv[u][0].w, wv[u][1].w, xv.z, xv.w);
            }
        }
    }

    // 3. Sum the K-split partial tiles (fixed order), store, argmax candidates.
    // Lane (g, tig) holds rows g (i = 0, 1) and g+8 (i = 2, 3), tokens 8*nt + 2*tig + (i & 1).
    if (ks > 0)
#pragma unroll
        for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) red[tile][ks - 1][nt * 4 + i][lane] = acc[nt][i];
    __syncthreads();
    float bv = -INFINITY;
    int bi = BN_ARGMAX_NONE;
    if (ks == 0) {
#pragma unroll
        for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                acc_t sum = acc[nt][i];
#pragma unroll
                for (int k = 0; k < BN_HEAD_KSPLIT - 1; k++) sum += red[tile][k][nt * 4 + i][lane];
                const int row = row0 + g + (i >= 2 ? 8 : 0);
                const int tok = 8 * nt + 2 * tig + (i & 1);
                if (row < V && tok < n) {
                    float v;
                    if constexpr (Q8) // as lm_head_worker: (float)acc * head_scale[r] / xscale[t]
                        v = __fdiv_rn(__fmul_rn(__int2float_rn((int)sum), row_scale[row]), xscale[tok]);
                    else
                        v = (float)sum;
                    logits[(int64_t)tok * V + row] = v;
                    if (tok == n - 1) bn_argmax_take(bv, bi, v, row);
                }
            }
    }
    if (argmax) bn_grid_argmax(bv, bi, scratch, counter, argmax);
}

// f32 head: a warp owns BN_HEAD_F32_R rows; NT >= n token rows of accumulators.
template <int NT>
__global__ void __launch_bounds__(BN_HEAD_THREADS)
bn_head_f32_kernel(const float *__restrict__ w, int K, int V, const float *__restrict__ x, int n,
                   float *__restrict__ logits, int32_t *__restrict__ argmax, int2 *__restrict__ scratch,
                   unsigned *__restrict__ counter) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row0 = blockIdx.x * BN_HEAD_ROWS + warp * BN_HEAD_F32_R;
    const int nchunk = K / 4; // 16-byte chunks a row

    float4 wv[BN_HEAD_F32_U][BN_HEAD_F32_R];
    auto load_weights = [&](int c0) {
#pragma unroll
        for (int u = 0; u < BN_HEAD_F32_U; u++)
#pragma unroll
            for (int r = 0; r < BN_HEAD_F32_R; r++) {
                const int c = c0 + lane + 32 * u;
                const uint4 v = bn_ld_stream(w + (int64_t)(row0 + r) * K + 4 * c, c < nchunk && row0 + r < V);
                wv[u][r] = make_float4(__uint_as_float(v.x), __uint_as_float(v.y), __uint_as_float(v.z),
                                       __uint_as_float(v.w));
            }
    };
    load_weights(0);
    bn_pdl_trigger();
    bn_pdl_wait();

    float acc[BN_HEAD_F32_R][NT];
#pragma unroll
    for (int r = 0; r < BN_HEAD_F32_R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.f;
    for (int c0 = 0; c0 < nchunk; c0 += 32 * BN_HEAD_F32_U) {
        if (c0 > 0) load_weights(c0);
#pragma unroll
        for (int u = 0; u < BN_HEAD_F32_U; u++) {
            const int c = c0 + lane + 32 * u;
            if (c >= nchunk) break;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= n) break;
                const float4 xv = __ldg(reinterpret_cast<const float4 *>(x + (int64_t)t * K) + c);
#pragma unroll
                for (int r = 0; r < BN_HEAD_F32_R; r++) {
                    float a = acc[r][t];
                    a = fmaf(wv[u][r].x, xv.x, a);
                    a = fmaf(wv[u][r].y, xv.y, a);
                    a = fmaf(wv[u][r].z, xv.z, a);
                    a = fmaf(wv[u][r].w, xv.w, a);
                    acc[r][t] = a;
                }
            }
        }
    }

    // Warp sums (every lane gets the same bits: each butterfly step adds the same
    // two values in either order); lane (r*NT + t) % 32 stores (row r, token t).
    float bv = -INFINITY;
    int bi = BN_ARGMAX_NONE;
#pragma unroll
    for (int r = 0; r < BN_HEAD_F32_R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float v = bn_warp_sum(acc[r][t]);
            const int row = row0 + r;
            if (lane == ((r * NT + t) & 31) && row < V && t < n) {
                logits[(int64_t)t * V + row] = v;
                if (t == n - 1) bn_argmax_take(bv, bi, v, row);
            }
        }
    if (argmax) bn_grid_argmax(bv, bi, scratch, counter, argmax);
}

static bool bn_head_args_ok(const void *w, const void *x, int V, int n, const float *logits,
                            const int32_t *argmax, const float *scratch, const unsigned *counter) {
    if (V <= 0 || n < 1 || n > BN_HEAD_MAX_N || !w || !x || !logits) return false;
    if ((reinterpret_cast<uintptr_t>(w) | reinterpret_cast<uintptr_t>(x)) & 15) return false;
    if (argmax && (!scratch || !counter || (reinterpret_cast<uintptr_t>(scratch) & 7))) return false;
    return true;
}

// The mma kernel with the fewest token tiles that hold n (n <= 64).
template <bool Q8>
static cudaError_t launch_head_mma(bool pdl, dim3 grid, dim3 block, cudaStream_t st, const uint8_t *w,
                                   int row_bytes, int V, const uint8_t *x, int n, const float *row_scale,
                                   const float *xscale, float *logits, int32_t *argmax, int2 *sc,
                                   unsigned *counter) {
    if (n <= 8)
        return bn_launch(pdl, bn_head_mma_kernel<Q8, 1>, grid, block, 0, st, w, row_bytes, V, x, n, row_scale,
                         xscale, logits, argmax, sc, counter);
    if (n <= 16)
        return bn_launch(pdl, bn_head_mma_kernel<Q8, 2>, grid, block, 0, st, w, row_bytes, V, x, n, row_scale,
                         xscale, logits, argmax, sc, counter);
    if (n <= 32)
        return bn_launch(pdl, bn_head_mma_kernel<Q8, 4>, grid, block, 0, st, w, row_bytes, V, x, n, row_scale,
                         xscale, logits, argmax, sc, counter);
    return bn_launch(pdl, bn_head_mma_kernel<Q8, 8>, grid, block, 0, st, w, row_bytes, V, x, n, row_scale,
                     xscale, logits, argmax, sc, counter);
}

// The f32 kernel for n <= BN_HEAD_F32_N rows: accumulators for the fewest of 1,
// 2, 4, 8, 16 that hold n.
static cudaError_t launch_head_f32(bool pdl, dim3 grid, dim3 block, cudaStream_t st, const float *w, int K, int V,
                                   const float *x, int n, float *logits, int32_t *argmax, int2 *sc,
                                   unsigned *counter) {
    if (n == 1)
        return bn_launch(pdl, bn_head_f32_kernel<1>, grid, block, 0, st, w, K, V, x, n, logits, argmax, sc,
                         counter);
    if (n <= 2)
        return bn_launch(pdl, bn_head_f32_kernel<2>, grid, block, 0, st, w, K, V, x, n, logits, argmax, sc,
                         counter);
    if (n <= 4)
        return bn_launch(pdl, bn_head_f32_kernel<4>, grid, block, 0, st, w, K, V, x, n, logits, argmax, sc,
                         counter);
    if (n <= 8)
        return bn_launch(pdl, bn_head_f32_kernel<8>, grid, block, 0, st, w, K, V, x, n, logits, argmax, sc,
                         counter);
    return bn_launch(pdl, bn_head_f32_kernel<16>, grid, block, 0, st, w, K, V, x, n, logits, argmax, sc, counter);
}

cudaError_t bn_cuda_head_gemv(const void *w, int type, int K, int V, const void *x, int n, float *logits,
                              int32_t *argmax, float *scratch, unsigned *counter, bool pdl,
                              cudaStream_t st) {
    if (!bn_head_args_ok(w, x, V, n, logits, argmax, scratch, counter) || K <= 0)
        return cudaErrorInvalidValue;
    const dim3 grid((unsigned)((V + BN_HEAD_ROWS - 1) / BN_HEAD_ROWS)), block(BN_HEAD_THREADS);
    int2 *sc = reinterpret_cast<int2 *>(scratch);
    if (type == BN_CUDA_F16) {
        if (K % 8) return cudaErrorInvalidValue;
        const float *none = NULL;
        return launch_head_mma<false>(pdl, grid, block, st, static_cast<const uint8_t *>(w), 2 * K, V,
                                      static_cast<const uint8_t *>(x), n, none, none, logits, argmax, sc, counter);
    }
    if (type == BN_CUDA_F32) {
        if (K % 4) return cudaErrorInvalidValue;
        // f32 accumulators for 64 tokens would not fit in registers: passes of
        // BN_HEAD_F32_N token rows, the fused argmax (last row) in the last one.
        // f32 heads are the rare widened BF16/F32 tables, not the shipped models.
        const float *wf = static_cast<const float *>(w), *xf = static_cast<const float *>(x);
        for (int t0 = 0; t0 < n; t0 += BN_HEAD_F32_N) {
            const int rows = n - t0 < BN_HEAD_F32_N ? n - t0 : BN_HEAD_F32_N;
            const bool last = t0 + rows == n;
            const cudaError_t e = launch_head_f32(pdl, grid, block, st, wf, K, V, xf + (int64_t)t0 * K, rows,
                                                  logits + (int64_t)t0 * V, last ? argmax : NULL, sc, counter);
            if (e != cudaSuccess) return e;
        }
        return cudaSuccess;
    }
    return cudaErrorInvalidValue;
}

cudaError_t bn_cuda_head_q8_gemv(const int8_t *wq, const float *row_scale, int K, int V, const int8_t *xq,
                                 const float *xscale, int n, float *logits, int32_t *argmax, float *scratch,
                                 unsigned *counter, bool pdl, cudaStream_t st) {
    if (!bn_head_args_ok(wq, xq, V, n, logits, argmax, scratch, counter) || K <= 0 || K % 16 ||
        !row_scale || !xscale)
        return cudaErrorInvalidValue;
    const dim3 grid((unsigned)((V + BN_HEAD_ROWS - 1) / BN_HEAD_ROWS)), block(BN_HEAD_THREADS);
    return launch_head_mma<true>(pdl, grid, block, st, reinterpret_cast<const uint8_t *>(wq), K, V,
                                 reinterpret_cast<const uint8_t *>(xq), n, row_scale, xscale, logits, argmax,
                                 reinterpret_cast<int2 *>(scratch), counter);
}
