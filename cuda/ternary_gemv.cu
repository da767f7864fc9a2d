// ternary_gemv.cu - decode bitlinear: I2_S weights x int8 activations, dp4a.
//
// At batch 1 a projection of the 2B-4T model is 1.6-8.8 MB of weights, 12-67 KB
// per SM: too little to keep HBM busy unless every SM has its whole share in
// flight at once, and too little work to hide a launch. So:
// - One block per SM (about). Each block owns a contiguous run of rows, which
//   in I2_S is one contiguous byte range, and copies all of it into shared
//   memory with cp.async *before* it waits for the previous kernel (pdl.cuh):
//   the weight stream overlaps the previous kernel's tail.
// - The input: float rows that every block normalizes and quantizes itself
//   (norm_quant.cuh) while its weights are still arriving, so the norm costs no
//   extra launch and almost no time; or int8 codes made earlier (scale s,
//   qsum = sum of codes) by the standalone rmsnorm_quant kernel or, with
//   BITNET_CUDA_NORM=last, by the last block of the kernel before.
// - Weights stay in I2_S exactly as in the file: bits 7:6 of four consecutive
//   bytes are four consecutive elements, so each 32-bit word feeds one __dp4a
//   per 2-bit plane. A plane is isolated with one AND (code << 5, 4, 2 or 0; the
//   top plane needs one shift so it stays a positive int8); each plane has its
//   own accumulator and the four are scaled back at the end, exactly.
//   dp4a(code, q) summed over the row minus qsum is the ternary dot product
//   (code = value + 1; 0b11 codes were rewritten to 0b01 at upload).
// - G lanes share a row (G = 8 for K = 2560: 5 chunks of 16 bytes a lane), so a
//   warp works on 32/G rows at once and the activation reads of its groups are
//   the same addresses (shared-memory broadcast). Activations sit in shared
//   memory in the order the chunks consume them: plane s of chunk c is int4
//   s*K/64 + c.
// - Epilogue: /s * per-row scale (Q|K|V or gate|up stacks carry 3 scales), then
//   store or add into the residual stream.
// - Next norm (optional, BITNET_CUDA_NORM=last): after its rows are written, the
//   last block to finish (threadfence + atomic counter) runs RMSNorm +
//   quantization of the whole output row (or of the GLU of gate|up, nq_mode.h)
//   with the next bitlinear's norm weight, into the codes the next GEMV reads:
//   each vector is quantized once, but one block does it while the GPU waits.
// CPU twin: bn_ternary_gemm_scalar; the next norm: rmsnorm + bn_quantize_i8.
#include "async_copy.cuh"
#include "cuda_kernels.cuh"
#include "gemv_block.cuh"
#include "norm_quant.cuh"
#include "pdl.cuh"

#define BN_GEMV_THREADS BN_NQ_THREADS
#define BN_GEMV_WEIGHT_SMEM (96 * 1024) // weight bytes a block may hold
#define BN_GEMV_ACT_SMEM (112 * 1024)   // activation bytes of one launch (tokens x K)

// What a GEMV multiplies: int8 codes (q, s, qsum), or, when x is set, float rows
// (ldx apart) that each block normalizes with norm_w (mode as in rmsnorm_quant).
typedef struct bn_gemv_in {
    const int8_t *q;
    const float *s;
    const int32_t *qsum;
    const float *x;
    int64_t ldx;
    const float *norm_w;
    float eps;
    int mode;
} bn_gemv_in;

template <int G>
__global__ void __launch_bounds__(BN_GEMV_THREADS)
bn_ternary_gemv_kernel(const uint8_t *__restrict__ w, int K, int M, int rows_per_block, bn_gemv_in in, int n,
                       bn_cuda_rowscale rs, bool add, float *__restrict__ y, int64_t ldy, bn_cuda_next_norm nn) {
    extern __shared__ int4 smem[];
    const int64_t rowb = K / 4;             // bytes a row
    const int rowv = (int)(rowb / 16);      // 16-byte chunks a row
    const int r0 = blockIdx.x * rows_per_block;
    const int nrows = min(rows_per_block, M - r0);
    int4 *wsm = smem;                       // nrows x rowv
    int4 *qsm = smem + rows_per_block * rowv; // n x K/16, permuted
    float *hs = reinterpret_cast<float *>(qsm + n * (K / 16)); // K floats: the row being normalized

    // 1. This block's weights, in flight before anything else (constant data).
    const int4 *wsrc = reinterpret_cast<const int4 *>(w + r0 * rowb);
    for (int i = threadIdx.x; i < nrows * rowv; i += blockDim.x) bn_cp_async16(wsm + i, wsrc + i);
    bn_cp_async_commit();

    bn_pdl_wait();
    bn_pdl_trigger();

    // 2. Activations of every token, permuted by plane.
    __shared__ float s_sc[BN_GEMV_MAX_N];
    __shared__ int s_qs[BN_GEMV_MAX_N];
    const int kv = K / 16, plane = K / 64;
    if (in.x) {
        int8_t *qb = reinterpret_cast<int8_t *>(qsm);
        for (int t = 0; t < n; t++) {
            int8_t *qt = qb + (int64_t)t * K;
            float sc;
            int qs;
            bn_block_norm_quant(in.x + t * in.ldx, K, in.norm_w, in.eps, in.mode, hs, &sc, &qs, [&](int i, int v) {
                qt[bn_gemv_code_slot(i, K)] = (int8_t)v;
            });
            if (threadIdx.x == 0) {
                s_sc[t] = sc;
                s_qs[t] = qs;
            }
        }
    } else {
        for (int m = threadIdx.x; m < n * kv; m += blockDim.x) {
            const int t = m / kv, i = m - t * kv;
            qsm[t * kv + ((i & 7) >> 1) * plane + 2 * (i >> 3) + (i & 1)] =
                reinterpret_cast<const int4 *>(in.q + (int64_t)t * K)[i];
        }
        if (threadIdx.x < n) {
            s_sc[threadIdx.x] = in.s[threadIdx.x];
            s_qs[threadIdx.x] = in.qsum[threadIdx.x];
        }
    }
    bn_cp_async_wait_all();
    __syncthreads();

    // 3. Dot products.
    bn_gemv_rows<G>(wsm, K, r0, nrows, qsm, n, s_sc, s_qs, rs, add, y, ldy);

    // 4. The next bitlinear's input, quantized once, by the last block.
    if (nn.w == NULL) return;
    __shared__ bool s_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) s_last = atomicAdd(nn.counter, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    const int width = nn.mode & BN_NQ_GLU ? M / 2 : M;
    for (int t = 0; t < n; t++) {
        int8_t *qo = nn.q + (int64_t)t * width;
        float sc;
        int qs;
        bn_block_norm_quant(y + t * ldy, width, nn.w, nn.eps, nn.mode, reinterpret_cast<float *>(smem), &sc, &qs,
                            [&](int i, int v) { qo[i] = (int8_t)v; });
        if (threadIdx.x == 0) {
            nn.s[t] = sc;
            nn.qsum[t] = qs;
        }
    }
    if (threadIdx.x == 0) *nn.counter = 0; // ready for the next launch (graph replay)
}

// Blocks the rows are cut into: blocks_per_sm per multiprocessor (one device per
// process: backend_cuda.cu uses device 0).
static int g_blocks_per_sm = 1;

void bn_cuda_gemv_set_blocks_per_sm(int n) { g_blocks_per_sm = n < 1 ? 1 : n > 8 ? 8 : n; }

static int block_count(void) {
    static int n = 0;
    if (n == 0 && cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess) n = 1;
    return (n > 0 ? n : 1) * g_blocks_per_sm;
}

// Dynamic shared memory a GEMV block may use: the device's opt-in limit less
// room for the kernel's static arrays, capped by what the two budgets need.
static int g_smem_limit = 0;

template <int G> static cudaError_t raise_smem_limit(int bytes) {
    return cudaFuncSetAttribute(bn_ternary_gemv_kernel<G>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                bytes);
}

// Once per process, before the first launch (never inside a graph capture: the
// backend's first decode step runs eagerly).
static cudaError_t gemv_setup(void) {
    if (g_smem_limit > 0) return cudaSuccess;
    int optin = 0;
    cudaError_t e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
    if (e != cudaSuccess) return e;
    int limit = optin - 2048;
    if (limit > BN_GEMV_WEIGHT_SMEM + BN_GEMV_ACT_SMEM) limit = BN_GEMV_WEIGHT_SMEM + BN_GEMV_ACT_SMEM;
    if (limit < 48 * 1024) limit = 48 * 1024;
    if ((e = raise_smem_limit<8>(limit)) != cudaSuccess || (e = raise_smem_limit<4>(limit)) != cudaSuccess ||
        (e = raise_smem_limit<2>(limit)) != cudaSuccess)
        return e;
    g_smem_limit = limit;
    return cudaSuccess;
}

int bn_cuda_gemv_max_tokens(int K) {
    if (K <= 0 || gemv_setup() != cudaSuccess) return 0;
    const int n = g_smem_limit / 2 / K; // activations take at most half
    return n < BN_GEMV_MAX_N ? n : BN_GEMV_MAX_N;
}

static cudaError_t gemv_launch(const uint8_t *w, int K, int M, const bn_gemv_in &in, int n, bn_cuda_rowscale rs,
                               bool add, float *y, int64_t ldy, const bn_cuda_next_norm *nn, bool pdl,
                               cudaStream_t st) {
    if (n <= 0 || M <= 0) return cudaSuccess;
    if (K <= 0 || K % 128 != 0 || n > bn_cuda_gemv_max_tokens(K)) return cudaErrorInvalidValue;
    const bool next = nn && nn->w;
    const bool glu = next && (nn->mode & BN_NQ_GLU);
    const int width = next ? (glu ? M / 2 : M) : 0;
    if (next && (glu ? M % 8 : M % 4)) return cudaErrorInvalidValue; // float4 rows
    const int64_t rowb = K / 4;
    const int64_t fixed = (int64_t)n * K + (in.x ? 4 * (int64_t)K : 0); // codes, and the row being normalized
    int rpb = (M + block_count() - 1) / block_count();
    const int64_t budget = g_smem_limit - fixed; // set up by bn_cuda_gemv_max_tokens
    const int64_t cap = (budget < BN_GEMV_WEIGHT_SMEM ? budget : BN_GEMV_WEIGHT_SMEM) / rowb;
    if (cap < 1 || 4 * (int64_t)width > g_smem_limit) return cudaErrorInvalidValue;
    if (rpb > cap) rpb = (int)cap;
    const int blocks = (M + rpb - 1) / rpb;
    size_t smem = (size_t)(rpb * rowb + fixed);
    if (smem < 4 * (size_t)width) smem = 4 * (size_t)width; // the last block's copy of the output row
    bn_cuda_next_norm none = {};
    const bn_cuda_next_norm nnv = next ? *nn : none;
    switch (bn_gemv_lanes_per_row(K)) {
    case 8:
        return bn_launch(pdl, bn_ternary_gemv_kernel<8>, dim3(blocks), dim3(BN_GEMV_THREADS), smem, st, w, K, M, rpb,
                         in, n, rs, add, y, ldy, nnv);
    case 4:
        return bn_launch(pdl, bn_ternary_gemv_kernel<4>, dim3(blocks), dim3(BN_GEMV_THREADS), smem, st, w, K, M, rpb,
                         in, n, rs, add, y, ldy, nnv);
    default:
        return bn_launch(pdl, bn_ternary_gemv_kernel<2>, dim3(blocks), dim3(BN_GEMV_THREADS), smem, st, w, K, M, rpb,
                         in, n, rs, add, y, ldy, nnv);
    }
}

cudaError_t bn_cuda_ternary_gemv(const uint8_t *w, int K, int M, const int8_t *q, const float *s,
                                 const int32_t *qsum, int n, bn_cuda_rowscale rs, bool add,
                                 float *y, int64_t ldy, const bn_cuda_next_norm *nn, bool pdl,
                                 cudaStream_t st) {
    bn_gemv_in in = {};
    in.q = q;
    in.s = s;
    in.qsum = qsum;
    return gemv_launch(w, K, M, in, n, rs, add, y, ldy, nn, pdl, st);
}

cudaError_t bn_cuda_ternary_gemv_norm(const uint8_t *w, int K, int M, const float *x, int64_t ldx,
                                      const float *norm_w, float eps, bn_nq_mode mode, int n, bn_cuda_rowscale rs,
                                      bool add, float *y, int64_t ldy, bool pdl, cudaStream_t st) {
    if (!x || !norm_w) return cudaErrorInvalidValue;
    bn_gemv_in in = {};
    in.x = x;
    in.ldx = ldx;
    in.norm_w = norm_w;
    in.eps = eps;
    in.mode = mode;
    return gemv_launch(w, K, M, in, n, rs, add, y, ldy, NULL, pdl, st);
}
