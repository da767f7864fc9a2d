// attention_decode.cu - one new token per sequence against the f16 KV cache:
// split-KV (flash-decoding) with the softmax of the CPU twin, RoPE and the KV
// write folded in.
//
// At batch 1 attention is a few hundred KB of K/V per layer at long context and
// almost nothing at short context; one block per head (the old kernel) used 20
// of 132 SMs and grew 14 us per 1000 tokens of context. Here the keys 0..pos of
// a token are cut into splits of at least BN_ATTD_MIN_CHUNK keys (at most
// n_split of them, chosen by the backend from the context length) and each
// (head group, split) is a block. A block serves the query heads of one GQA
// group (up to BN_ATTD_QPB of them), so each K/V row is read once for all of
// them. Two kernels:
//
// A  scores: RoPE of the group's queries (rounded to f16, as the CPU and
//    bitnet.cpp round Q) and of the token's own key; the split that holds the
//    token's position writes its K and V rows to the cache (head-major
//    [kv head][n_ctx][hd]) and uses the rotated key from shared memory. Eight
//    lanes share a key row (16-byte loads) and compute its score for every head
//    of the group. Per head and split: the max m_s and l_s = sum exp(s_j - m_s)
//    (double).
// B  values: every block derives the global max M and the denominator
//    sum_s l_s exp(m_s - M) (double, the same order in every block), so
//    p_j = f16(expf(s_j - M) / sum), rounded to f16 as the CPU and bitnet.cpp
//    round it (the CPU's exp is ggml's and its sum runs in blocks of 8 floats:
//    tests/test_cuda.c holds the two within 2e-3); then its split's partial p.V
//    (16 lanes a V row, 8 dims a lane).
//    The last block of a group (atomic counter) adds the splits' partials in
//    split order; with BITNET_CUDA_NORM=last the last of those quantizes the
//    whole attention output for the O projection (as in ternary_gemv.cu).
// Tokens are the grid's z: one token each of up to n_tok sequences, each in its
// own slot of the cache when seq is given (a decode step of many sequences; no
// two tokens of one sequence, whose keys would race). A token's arithmetic does
// not depend on the others, so it is bit-identical alone or in a batch.
// The only difference from the CPU is summation order (scores, partial sums).
// CPU twin: RoPE (rope.cuh) + f16 KV write + bn_attention_head (cpu/ops.c).
#include "attention_split.cuh"
#include "pdl.cuh"
#include "reduce.cuh"
#include "rope.cuh"
#include "smem.cuh"

__global__ void __launch_bounds__(BN_ATTD_THREADS) bn_attd_scores_kernel(bn_attd_args a) {
    extern __shared__ float sm[];
    bn_pdl_wait();
    bn_pdl_trigger();
    bn_attd_scores_block(a, blockIdx.z, blockIdx.x, blockIdx.y, sm);
}

__global__ void __launch_bounds__(BN_ATTD_THREADS) bn_attd_values_kernel(bn_attd_args a) {
    extern __shared__ float sm[];
    bn_pdl_wait();
    bn_pdl_trigger();
    // The last group quantizes every token's attention output for the O projection.
    if (bn_attd_values_block(a, blockIdx.z, blockIdx.x, gridDim.x, blockIdx.y, sm))
        bn_attd_next_norm(a.nn, a.out, a.n_head * a.hd, sm);
}

int bn_cuda_attd_heads_per_block(int n_head, int n_head_kv) {
    const int G = n_head / n_head_kv;
    int qpb = G < BN_ATTD_QPB ? G : BN_ATTD_QPB;
    while (G % qpb) qpb--;
    return qpb;
}

int bn_cuda_attd_splits(int n_ctx) {
    const int s = (n_ctx + 127) / 128;
    return s < 1 ? 1 : s > 64 ? 64 : s;
}

size_t bn_cuda_attd_scratch_bytes(int n_tok, int n_head, int hd, int n_ctx, int n_split) {
    const size_t th = (size_t)n_tok * n_head;
    return th * n_ctx * sizeof(float) + th * n_split * (sizeof(float) + sizeof(double)) +
           th * n_split * hd * sizeof(float) + 4 * 256;
}

cudaError_t bn_cuda_attention_decode(const float *qkv, int64_t ldqkv, const int32_t *pos, int n_tok,
                                     int n_head, int n_head_kv, int hd, int n_rot, bool neox,
                                     float theta_scale, int n_ctx, int n_split, __half *k_cache,
                                     __half *v_cache, const int32_t *seq, int64_t seq_stride, void *scratch,
                                     unsigned *group_counters, float *out, const bn_cuda_next_norm *nn,
                                     bool pdl, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    bn_attd_args a;
    if (n_split <= 0 || !bn_attd_args_init(&a, qkv, ldqkv, pos, n_head, n_head_kv, hd, n_rot, neox, theta_scale, n_ctx,
                                           k_cache, v_cache, seq, seq_stride, out, nn))
        return cudaErrorInvalidValue;
    bn_attd_args_split(&a, n_tok, n_split, scratch, group_counters);
    const dim3 grid(n_head / a.qpb, n_split, n_tok);
    const size_t smem_a = bn_attd_smem_a(hd, a.qpb, n_rot);
    size_t smem_b = bn_attd_smem_b(hd, a.qpb);
    if (a.nn.w && smem_b < sizeof(float) * (size_t)n_head * hd) smem_b = sizeof(float) * (size_t)n_head * hd;
    // With BITNET_CUDA_NORM=last the second kernel holds n_head x head_dim floats
    // for the O projection's codes: past 48 KiB at 12288 (smem.cuh).
    static size_t allowed_a = 0, allowed_b = 0; // the largest sizes allowed so far
    cudaError_t e;
    if (smem_a > allowed_a) {
        if ((e = bn_cuda_allow_smem(bn_attd_scores_kernel, smem_a)) != cudaSuccess) return e;
        allowed_a = smem_a;
    }
    if (smem_b > allowed_b) {
        if ((e = bn_cuda_allow_smem(bn_attd_values_kernel, smem_b)) != cudaSuccess) return e;
        allowed_b = smem_b;
    }
    e = bn_launch(pdl, bn_attd_scores_kernel, grid, dim3(BN_ATTD_THREADS), smem_a, st, a);
    if (e != cudaSuccess) return e;
    return bn_launch(pdl, bn_attd_values_kernel, grid, dim3(BN_ATTD_THREADS), smem_b, st, a);
}
