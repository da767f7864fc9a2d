// attention_prefill.cu - causal GQA attention for a batch of tokens on f16
// tensor cores (mma.sync m16n8k16), tiled flash-attention style.
//
// A block is one query head and 64 tokens of the batch (4 warps x 16 rows); it
// walks the keys 0..max(pos) in tiles of 64, staged in shared memory by cp.async
// two tiles deep, so the next tile arrives while this one is used (rows padded by
// 16 bytes, so fragment loads hit 32 different banks). Token t attends to keys
// 0..pos[t] of the cache, which rope_kv has already filled for the whole batch.
//
// The softmax has the CPU twin's shape (its exp and summation order differ:
// tests/test_cuda.c holds them within 2e-3), not the usual online one: bitnet.cpp rounds
// each probability p = exp(s - max) / sum to f16 before it meets V, and that
// rounding needs the final max and sum. So two passes over the keys:
// 1. S = Q K^T per tile (f32 accumulators), scaled and masked; running row max
//    and sum of exp (double across tiles);
// 2. S again, p = f16(expf(s - max) * (1/sum)) packed straight from the S
//    accumulators into the A fragments of P V (the m16n8 C layout of two key
//    n-tiles is the A layout of one k16 step); V's B fragments come from
//    ldmatrix.trans on the row-major V tile.
// Q and K are f16 in the CPU twin too, so the QK^T products are exact; only the
// summation order differs. Head dims 64, 80, 96, 128 (fragment arrays are sized
// at compile time); other sizes use the plain kernel in attention.cu.
// CPU twin: bn_attention_head (cpu/ops.c).
#include "async_copy.cuh"
#include "cuda_kernels.cuh"
#include "mma.cuh"
#include "pdl.cuh"

#define BN_FA_WARPS 4
#define BN_FA_BQ (16 * BN_FA_WARPS) // tokens a block
#define BN_FA_BK 64                 // keys a tile

__device__ __forceinline__ uint32_t bn_ld32(const __half *p) { return *reinterpret_cast<const uint32_t *>(p); }

// Two floats rounded to f16, the first in the low half (the smaller column).
__device__ __forceinline__ uint32_t bn_pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&h);
}

// Starts copying keys kb..kb+63 of one KV head into a padded tile (cp.async);
// rows past last are zero.
template <int HD>
__device__ __forceinline__ void bn_fa_issue_tile(__half *tile, const __half *base, int kb, int last) {
    constexpr int LDS = HD + 8, VPR = HD / 8; // 16-byte vectors a row
    for (int i = threadIdx.x; i < BN_FA_BK * VPR; i += blockDim.x) {
        const int r = i / VPR, c = i - r * VPR;
        const bool in = kb + r <= last;
        bn_cp_async16_zfill(tile + r * LDS + c * 8, base + (int64_t)(in ? kb + r : 0) * HD + c * 8, in);
    }
}

// S tile of this warp's 16 rows x 64 keys: scaled, masked to -inf past each row's position.
template <int HD>
__device__ __forceinline__ void bn_fa_scores(float (&s)[8][4], const uint32_t (&qa)[HD / 16][4],
                                             const __half *ktile, int kb, int pa, int pb, float scale) {
    constexpr int LDS = HD + 8;
    const int lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++)
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            const __half *kr = ktile + (nt * 8 + g) * LDS + ks * 16 + 2 * tq;
            bn_mma_f16(s[nt], qa[ks], bn_ld32(kr), bn_ld32(kr + 8));
        }
#pragma unroll
    for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int j = kb + nt * 8 + 2 * tq + e;
            s[nt][e] = j <= pa ? s[nt][e] * scale : -INFINITY;
            s[nt][2 + e] = j <= pb ? s[nt][2 + e] * scale : -INFINITY;
        }
}

__device__ __forceinline__ float bn_quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float bn_quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

template <int HD>
__global__ void __launch_bounds__(BN_FA_WARPS * 32)
bn_flash_prefill_kernel(const __half *__restrict__ q, const __half *__restrict__ k_cache,
                        const __half *__restrict__ v_cache, const int32_t *__restrict__ pos, int n_tok,
                        int n_head, int n_head_kv, int n_ctx, float *__restrict__ out) {
    constexpr int LDS = HD + 8, TILE = BN_FA_BK * LDS;
    extern __shared__ __align__(16) __half fa_smem[]; // K tiles [2], then V tiles [2]
    __half *ktile = fa_smem, *vtile = fa_smem + 2 * TILE;
    __shared__ int spos[BN_FA_BQ];
    const int h = blockIdx.y, t0 = blockIdx.x * BN_FA_BQ;
    const int kvh = h / (n_head / n_head_kv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;

    bn_pdl_wait();
    bn_pdl_trigger();
    for (int i = threadIdx.x; i < BN_FA_BQ; i += blockDim.x) spos[i] = t0 + i < n_tok ? pos[t0 + i] : -1;
    __syncthreads();
    int pmax = -1; // keys the block needs: 0..pmax
    for (int i = 0; i < BN_FA_BQ; i++) pmax = max(pmax, spos[i]);
    const int ra = warp * 16 + g, rb = ra + 8; // this lane's two rows
    const int pa = spos[ra], pb = spos[rb];
    int wmax = max(pa, pb);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) wmax = max(wmax, __shfl_xor_sync(0xffffffffu, wmax, o));

    uint32_t qa[HD / 16][4];
    const __half *qra = q + ((int64_t)(t0 + ra) * n_head + h) * HD + 2 * tq;
    const __half *qrb = q + ((int64_t)(t0 + rb) * n_head + h) * HD + 2 * tq;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) {
        qa[ks][0] = pa >= 0 ? bn_ld32(qra + ks * 16) : 0u;
        qa[ks][1] = pb >= 0 ? bn_ld32(qrb + ks * 16) : 0u;
        qa[ks][2] = pa >= 0 ? bn_ld32(qra + ks * 16 + 8) : 0u;
        qa[ks][3] = pb >= 0 ? bn_ld32(qrb + ks * 16 + 8) : 0u;
    }
    const float scale = 1.0f / sqrtf((float)HD);
    const __half *kbase = k_cache + (int64_t)kvh * n_ctx * HD;
    const __half *vbase = v_cache + (int64_t)kvh * n_ctx * HD;

    // Pass 1: row max and sum of exp.
    float ma = -INFINITY, mb = -INFINITY;
    double la = 0.0, lb = 0.0;
    float s[8][4];
    const int n_tiles = pmax / BN_FA_BK + 1;
    bn_fa_issue_tile<HD>(ktile, kbase, 0, pmax);
    bn_cp_async_commit();
    for (int it = 0; it < n_tiles; it++) {
        const int kb = it * BN_FA_BK;
        if (it + 1 < n_tiles) bn_fa_issue_tile<HD>(ktile + ((it + 1) & 1) * TILE, kbase, kb + BN_FA_BK, pmax);
        bn_cp_async_commit();
        bn_cp_async_wait_group<1>(); // tile it has landed (this thread's part)
        __syncthreads();
        if (kb <= wmax) { // else every key of the tile is masked for this warp
            bn_fa_scores<HD>(s, qa, ktile + (it & 1) * TILE, kb, pa, pb, scale);
            float ta = -INFINITY, tb = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                ta = fmaxf(ta, fmaxf(s[nt][0], s[nt][1]));
                tb = fmaxf(tb, fmaxf(s[nt][2], s[nt][3]));
            }
            const float na = fmaxf(ma, bn_quad_max(ta)), nb = fmaxf(mb, bn_quad_max(tb));
            float ea = 0.f, eb = 0.f;
#pragma unroll
            for (int nt = 0; nt < 8; nt++) { // masked scores give expf(-inf) = 0
                if (na != -INFINITY) ea += expf(s[nt][0] - na) + expf(s[nt][1] - na);
                if (nb != -INFINITY) eb += expf(s[nt][2] - nb) + expf(s[nt][3] - nb);
            }
            ea = bn_quad_sum(ea);
            eb = bn_quad_sum(eb);
            if (na != -INFINITY) la = (ma == -INFINITY ? 0.0 : la * exp((double)ma - (double)na)) + ea;
            if (nb != -INFINITY) lb = (mb == -INFINITY ? 0.0 : lb * exp((double)mb - (double)nb)) + eb;
            ma = na;
            mb = nb;
        }
        __syncthreads(); // everyone is done with this stage before it is refilled
    }
    const float ia = la > 0.0 ? (float)(1.0 / la) : 0.f, ib = lb > 0.0 ? (float)(1.0 / lb) : 0.f;

    // Pass 2: P (f16) V.
    float o[HD / 8][4];
#pragma unroll
    for (int nd = 0; nd < HD / 8; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.f;
    bn_fa_issue_tile<HD>(ktile, kbase, 0, pmax);
    bn_fa_issue_tile<HD>(vtile, vbase, 0, pmax);
    bn_cp_async_commit();
    for (int it = 0; it < n_tiles; it++) {
        const int kb = it * BN_FA_BK, nx = (it + 1) & 1;
        if (it + 1 < n_tiles) {
            bn_fa_issue_tile<HD>(ktile + nx * TILE, kbase, kb + BN_FA_BK, pmax);
            bn_fa_issue_tile<HD>(vtile + nx * TILE, vbase, kb + BN_FA_BK, pmax);
        }
        bn_cp_async_commit();
        bn_cp_async_wait_group<1>();
        __syncthreads();
        if (kb <= wmax) {
            bn_fa_scores<HD>(s, qa, ktile + (it & 1) * TILE, kb, pa, pb, scale);
#pragma unroll
            for (int nt = 0; nt < 8; nt++) { // exp(-inf) = 0 for masked keys and empty rows
                s[nt][0] = ma == -INFINITY ? 0.f : expf(s[nt][0] - ma) * ia;
                s[nt][1] = ma == -INFINITY ? 0.f : expf(s[nt][1] - ma) * ia;
                s[nt][2] = mb == -INFINITY ? 0.f : expf(s[nt][2] - mb) * ib;
                s[nt][3] = mb == -INFINITY ? 0.f : expf(s[nt][3] - mb) * ib;
            }
            const __half *vt = vtile + (it & 1) * TILE;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                const uint32_t pa4[4] = {bn_pack_half2(s[2 * kk][0], s[2 * kk][1]),
                                         bn_pack_half2(s[2 * kk][2], s[2 * kk][3]),
                                         bn_pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                         bn_pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
                const __half *vr = vt + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + (lane >> 4) * 8;
#pragma unroll
                for (int nd = 0; nd < HD / 8; nd += 2) {
                    uint32_t b[4];
                    bn_ldmatrix_x4_trans(b, (uint32_t)__cvta_generic_to_shared(vr + nd * 8));
                    bn_mma_f16(o[nd], pa4, b[0], b[1]);
                    bn_mma_f16(o[nd + 1], pa4, b[2], b[3]);
                }
            }
        }
        __syncthreads();
    }

    const int64_t nq = (int64_t)n_head * HD;
#pragma unroll
    for (int nd = 0; nd < HD / 8; nd++) {
        const int d = nd * 8 + 2 * tq;
        if (pa >= 0) *reinterpret_cast<float2 *>(out + (t0 + ra) * nq + h * HD + d) = make_float2(o[nd][0], o[nd][1]);
        if (pb >= 0) *reinterpret_cast<float2 *>(out + (t0 + rb) * nq + h * HD + d) = make_float2(o[nd][2], o[nd][3]);
    }
}

bool bn_cuda_attention_prefill_supported(int hd) { return hd == 64 || hd == 80 || hd == 96 || hd == 128; }

// Two K and two V tiles of padded rows.
static size_t fa_smem_bytes(int hd) { return 4 * (size_t)BN_FA_BK * (hd + 8) * sizeof(__half); }

template <int HD>
static cudaError_t fa_launch(const __half *q, const __half *k_cache, const __half *v_cache, const int32_t *pos,
                             int n_tok, int n_head, int n_head_kv, int n_ctx, float *out, bool pdl, cudaStream_t st) {
    static bool raised = false; // at the first (eager, never captured) use
    if (!raised) {
        const cudaError_t e = cudaFuncSetAttribute(bn_flash_prefill_kernel<HD>,
                                                   cudaFuncAttributeMaxDynamicSharedMemorySize, (int)fa_smem_bytes(HD));
        if (e != cudaSuccess) return e;
        raised = true;
    }
    const dim3 grid((n_tok + BN_FA_BQ - 1) / BN_FA_BQ, n_head), block(BN_FA_WARPS * 32);
    return bn_launch(pdl, bn_flash_prefill_kernel<HD>, grid, block, fa_smem_bytes(HD), st, q, k_cache, v_cache, pos, n_tok,
                     n_head, n_head_kv, n_ctx, out);
}

cudaError_t bn_cuda_attention_prefill(const __half *q, const __half *k_cache, const __half *v_cache,
                                      const int32_t *pos, int n_tok, int n_head, int n_head_kv, int hd,
                                      int n_ctx, float *out, bool pdl, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (n_head_kv <= 0 || n_head % n_head_kv || !bn_cuda_attention_prefill_supported(hd))
        return cudaErrorInvalidValue;
    switch (hd) {
    case 64: return fa_launch<64>(q, k_cache, v_cache, pos, n_tok, n_head, n_head_kv, n_ctx, out, pdl, st);
    case 80: return fa_launch<80>(q, k_cache, v_cache, pos, n_tok, n_head, n_head_kv, n_ctx, out, pdl, st);
    case 96: return fa_launch<96>(q, k_cache, v_cache, pos, n_tok, n_head, n_head_kv, n_ctx, out, pdl, st);
    default: return fa_launch<128>(q, k_cache, v_cache, pos, n_tok, n_head, n_head_kv, n_ctx, out, pdl, st);
    }
}
