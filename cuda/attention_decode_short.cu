// attention_decode_short.cu - the decode attention of a short context in one
// kernel: one block per (GQA group, token) holds the group's whole softmax.
//
// At a short context the split-KV pair (attention_decode.cu) is all latency: two
// launches and about a dozen dependent trips to memory (scores, per-split max and
// sums, partials, the combine, block-wide reductions) for a few KB of K/V; it
// measured 18-36 us a layer at context 128 on an H200 (docs/cuda-performance.md),
// where the bytes need under 1. When the keys 0..pos of every token fit in shared
// memory (max_keys, bn_cuda_attd_short_keys), a block
// - before it waits for the QKV projection (pdl.cuh) reads pos, starts copying K
//   and V rows 0..pos-1 of its KV head into shared memory (cp.async; those rows
//   were written by earlier steps, not by that projection) and builds the RoPE
//   table;
// - then rotates the group's queries and the token's key and rounds them to f16
//   (as attention_decode.cu, as bitnet.cpp rounds Q and the cache), puts the key
//   and V row into its tiles and, one block per KV head, into cache row pos;
// - scores with eight lanes a key for every head of the group at once (the same
//   per-lane sums and shuffles as attention_decode.cu's kernel A);
// - softmax with one warp a head: max, the sum of expf(s - max) in double, then
//   p_j = f16(expf(s_j - max) * (float)(1 / sum)), the CPU's probability;
// - p.V with hd/8 lanes a V row, 8 dims a lane, straight into the output; with nn
//   the last block quantizes the output for the O projection.
// So it computes what the split pair computes with one split, except the order of
// the double sum (a warp's instead of the block's) and, where hd/8 lanes a row do
// not divide the split pair's 128-key tiles (hd 80, 96), which lane adds which
// key's p.V. CPU twin: as attention_decode.cu.
#include "async_copy.cuh"
#include "attention_decode.cuh"
#include "pdl.cuh"
#include "reduce.cuh"
#include "rope.cuh"

#define BN_ATTS_MAX_KEYS 256 // keys (context so far + the new token) a block holds at most

// Shared memory of a block, in this order: K and V tiles (max_keys x hd halves
// each), queries (qpb x hd), scores then probabilities (qpb x max_keys), RoPE
// cos and sin (n_rot/2 each), and the p.V partial sums (kp x qpb x hd floats,
// kp = key rows at a time).
static size_t atts_smem_bytes(int hd, int qpb, int n_rot, int max_keys) {
    const size_t kp = BN_ATTS_THREADS / (hd / 8);
    return 4 * (size_t)max_keys * hd +
           4 * ((size_t)qpb * hd + (size_t)qpb * max_keys + (size_t)n_rot + kp * qpb * hd);
}

__global__ void __launch_bounds__(BN_ATTS_THREADS) bn_atts_kernel(bn_attd_args a) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int t = blockIdx.z, hd = a.hd, qpb = a.qpb, K = a.max_keys;
    const int h0 = blockIdx.x * qpb, G = a.n_head / a.n_head_kv, g = h0 / G;
    __half *kt = reinterpret_cast<__half *>(smem), *vt = kt + (size_t)K * hd;
    float *sq = reinterpret_cast<float *>(vt + (size_t)K * hd);
    float *sc = sq + qpb * hd, *cs = sc + qpb * K, *sn = cs + a.n_rot / 2, *part = sn + a.n_rot / 2;

    // 1. Before the wait: the cache rows before pos.
    const int p = a.pos[t], L = p + 1;
    if (L > K) __trap(); // the caller keeps pos < max_keys; past it the tiles would overflow
    const int64_t slot = a.seq ? (int64_t)a.seq[t] * a.seq_stride : 0;
    __half *kc = a.kc + slot + (int64_t)g * a.n_ctx * hd, *vc = a.vc + slot + (int64_t)g * a.n_ctx * hd;
    for (int i = threadIdx.x; i < p * (hd / 8); i += blockDim.x) { // 16 bytes a copy
        bn_cp_async16(kt + 8 * i, kc + 8 * i);
        bn_cp_async16(vt + 8 * i, vc + 8 * i);
    }
    bn_cp_async_commit();
    bn_rope_table(p, a.n_rot / 2, a.theta_scale, cs, sn);
    bn_pdl_wait();
    bn_pdl_trigger();
    __syncthreads(); // the RoPE table

    // 2-5. Attention over the tiles, which get row p here.
    const int64_t row_p = (int64_t)p * hd;
    bn_atts_block(a, t, h0, p, cs, sn, sq, sc, K, part,
                  [&](int d, __half v, bool writer) {
                      kt[row_p + d] = v;
                      if (writer) kc[row_p + d] = v;
                  },
                  [&](int d, __half v, bool writer) {
                      vt[row_p + d] = v;
                      if (writer) vc[row_p + d] = v;
                  },
                  [&] { bn_cp_async_wait_all(); },
                  [&](int j, int c) { return reinterpret_cast<const uint4 *>(kt + (int64_t)j * hd)[c]; },
                  [&](int j, int c) { return reinterpret_cast<const uint4 *>(vt + (int64_t)j * hd)[c]; });

    // 6. The O projection's codes, by the last block.
    bn_attd_next_norm(a.nn, a.out, a.n_head * hd, reinterpret_cast<float *>(smem));
}

// The device's shared memory a block may opt into, less the kernel's static
// arrays; raised for the kernel once per process, outside any graph capture (the
// backend calls bn_cuda_attd_short_keys when it is created).
static int g_smem_limit = 0;

static cudaError_t atts_setup(void) {
    if (g_smem_limit > 0) return cudaSuccess;
    int optin = 0;
    cudaError_t e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
    if (e != cudaSuccess) return e;
    const int limit = optin - 1024;
    if ((e = cudaFuncSetAttribute(bn_atts_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, limit)) != cudaSuccess)
        return e;
    g_smem_limit = limit;
    return cudaSuccess;
}

static size_t atts_launch_smem(int n_head, int hd, int qpb, int n_rot, int max_keys, bool nn) {
    const size_t s = atts_smem_bytes(hd, qpb, n_rot, max_keys), norm = 4 * (size_t)n_head * hd;
    return nn && norm > s ? norm : s;
}

int bn_cuda_attd_short_keys(int n_head, int n_head_kv, int hd, int n_rot) {
    if (hd <= 0 || hd > 256 || hd % 8 || n_head_kv <= 0 || n_head % n_head_kv) return 0;
    if (atts_setup() != cudaSuccess) {
        (void)cudaGetLastError(); // no one-kernel form: not an error for the next launch to report
        return 0;
    }
    const int qpb = bn_cuda_attd_heads_per_block(n_head, n_head_kv);
    int keys = BN_ATTS_MAX_KEYS;
    while (keys >= 16 && atts_launch_smem(n_head, hd, qpb, n_rot, keys, true) > (size_t)g_smem_limit) keys -= 16;
    return keys >= 16 ? keys : 0;
}

cudaError_t bn_cuda_attention_decode_short(const float *qkv, int64_t ldqkv, const int32_t *pos, int n_tok,
                                           int n_head, int n_head_kv, int hd, int n_rot, bool neox,
                                           float theta_scale, int n_ctx, int max_keys, __half *k_cache,
                                           __half *v_cache, const int32_t *seq, int64_t seq_stride, float *out,
                                           const bn_cuda_next_norm *nn, bool pdl, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    bn_attd_args a;
    if (max_keys <= 0 || max_keys > BN_ATTS_MAX_KEYS ||
        !bn_attd_args_init(&a, qkv, ldqkv, pos, n_head, n_head_kv, hd, n_rot, neox, theta_scale, n_ctx, k_cache,
                           v_cache, seq, seq_stride, out, nn))
        return cudaErrorInvalidValue;
    a.max_keys = max_keys;
    cudaError_t e = atts_setup();
    if (e != cudaSuccess) return e;
    const size_t smem = atts_launch_smem(n_head, hd, a.qpb, n_rot, max_keys, a.nn.w != NULL);
    if (smem > (size_t)g_smem_limit) return cudaErrorInvalidValue;
    return bn_launch(pdl, bn_atts_kernel, dim3(n_head / a.qpb, 1, n_tok), dim3(BN_ATTS_THREADS), smem, st, a);
}
