// ternary_gemm.cu - prefill bitlinear: many tokens per pass over the I2_S weights.
//
// Design: a shared-memory tiled dp4a GEMM. A block of 256 threads computes a
// 64-row x 64-token tile; each thread holds 4 rows x 4 tokens of int32
// accumulators. K advances one I2_S block (128 elements) at a time:
// - weights: 64 rows x 32 bytes (one uint4 per thread for half the block) land
//   in Ws as raw words; word j of a row, shifted by 6-2s and masked, gives w+1 of
//   elements 32s+4j..32s+4j+3 - exactly activation word 8s+j of the token, so
//   the activations need no permutation (Qs holds each token's 128 codes as 32
//   words). Rows are padded (9 and 33 words) so neither tile conflicts on banks.
// - the next K block is fetched into registers while the current one is used.
// - epilogue as the GEMV: (acc - qsum[t]) / s[t] * scale(row), store or add.
// Each weight byte is read from DRAM once per 64 tokens, so prefill is compute
// bound on dp4a; ternary_gemm_mma.cu computes the same sums on the int8 tensor cores.
// CPU twin: bn_ternary_gemm_scalar.
#include "cuda_kernels.cuh"

#define BN_GEMM_BM 64
#define BN_GEMM_BN 64
#define BN_GEMM_THREADS 256

__global__ void __launch_bounds__(BN_GEMM_THREADS)
bn_ternary_gemm_kernel(const uint8_t *__restrict__ w, int K, int M, const int8_t *__restrict__ q,
                       const float *__restrict__ s, const int32_t *__restrict__ qsum, int n,
                       bn_cuda_rowscale rs, bool add, float *__restrict__ y, int64_t ldy) {
    __shared__ uint32_t Ws[BN_GEMM_BM][9];
    __shared__ int32_t Qs[BN_GEMM_BN][33];
    const int tid = threadIdx.x;
    const int tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.x * BN_GEMM_BM, n0 = blockIdx.y * BN_GEMM_BN;
    const int64_t rowb = K / 4;
    const int nkb = K / 128;

    // Loader assignment: thread < 128 fetches half a row's 32-byte block; every
    // thread fetches two 16-byte pieces of token codes.
    const int wrow = tid >> 1, whalf = tid & 1;
    const bool wload = tid < 2 * BN_GEMM_BM && m0 + wrow < M;
    const uint8_t *wsrc = w + (int64_t)(m0 + wrow) * rowb + 16 * whalf;
    int qtok[2], qpart[2];
    bool qload[2];
    const int8_t *qsrc[2];
#pragma unroll
    for (int l = 0; l < 2; l++) {
        const int idx = tid + BN_GEMM_THREADS * l;
        qtok[l] = idx >> 3;
        qpart[l] = idx & 7;
        qload[l] = n0 + qtok[l] < n;
        qsrc[l] = q + (int64_t)(n0 + qtok[l]) * K + 16 * qpart[l];
    }

    uint4 wreg = make_uint4(0, 0, 0, 0);
    int4 qreg[2] = {make_int4(0, 0, 0, 0), make_int4(0, 0, 0, 0)};
    auto fetch = [&](int kb) {
        if (wload) wreg = __ldg(reinterpret_cast<const uint4 *>(wsrc + 32 * (int64_t)kb));
#pragma unroll
        for (int l = 0; l < 2; l++)
            if (qload[l]) qreg[l] = __ldg(reinterpret_cast<const int4 *>(qsrc[l] + 128 * (int64_t)kb));
    };

    int acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0;

    fetch(0);
    for (int kb = 0; kb < nkb; kb++) {
        __syncthreads(); // the previous tile is no longer being read
        if (tid < 2 * BN_GEMM_BM) {
            uint32_t *d = &Ws[wrow][4 * whalf];
            d[0] = wreg.x; d[1] = wreg.y; d[2] = wreg.z; d[3] = wreg.w;
        }
#pragma unroll
        for (int l = 0; l < 2; l++) {
            int32_t *d = &Qs[qtok[l]][4 * qpart[l]];
            d[0] = qreg[l].x; d[1] = qreg[l].y; d[2] = qreg[l].z; d[3] = qreg[l].w;
        }
        __syncthreads();
        if (kb + 1 < nkb) fetch(kb + 1);

#pragma unroll
        for (int j = 0; j < 8; j++) {
            uint32_t wv[4];
#pragma unroll
            for (int i = 0; i < 4; i++) wv[i] = Ws[ty * 4 + i][j];
#pragma unroll
            for (int sh = 0; sh < 4; sh++) {
                int qv[4];
#pragma unroll
                for (int jt = 0; jt < 4; jt++) qv[jt] = Qs[tx + 16 * jt][8 * sh + j];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int c = (int)((wv[i] >> (6 - 2 * sh)) & 0x03030303u);
#pragma unroll
                    for (int jt = 0; jt < 4; jt++) acc[i][jt] = __dp4a(c, qv[jt], acc[i][jt]);
                }
            }
        }
    }

#pragma unroll
    for (int jt = 0; jt < 4; jt++) {
        const int t = n0 + tx + 16 * jt;
        if (t >= n) continue;
        const float st = s[t];
        const int qs = qsum[t];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = m0 + ty * 4 + i;
            if (r >= M) continue;
            const float v = bn_row_scaled(rs, r, (float)(acc[i][jt] - qs) / st);
            float *dst = y + t * ldy + r;
            *dst = add ? __fadd_rn(*dst, v) : v; // no FMA contraction, as the GEMV
        }
    }
}

cudaError_t bn_cuda_ternary_gemm(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                 const int32_t *qsum, int n, bn_cuda_rowscale rs, bool add,
                                 float *y, int64_t ldy, cudaStream_t st) {
    if (n <= 0 || M <= 0) return cudaSuccess;
    if (K <= 0 || K % 128 != 0) return cudaErrorInvalidValue;
    const dim3 grid((M + BN_GEMM_BM - 1) / BN_GEMM_BM, (n + BN_GEMM_BN - 1) / BN_GEMM_BN);
    bn_ternary_gemm_kernel<<<grid, BN_GEMM_THREADS, 0, st>>>(w, K, M, q, s, qsum, n, rs, add, y, ldy);
    return cudaGetLastError();
}
