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
#include "attention_decode.cuh"
#include "pdl.cuh"
#include "reduce.cuh"
#include "rope.cuh"

#define BN_ATTD_THREADS 128
#define BN_ATTD_MIN_CHUNK 32 // keys a split gets at least
#define BN_ATTD_TILE 128     // probabilities staged in shared memory at a time

// Splits of the keys 0..L-1: *se splits of ceil(L / se) keys; this one's range.
__device__ __forceinline__ void bn_attd_split(int L, int n_split, int split, int *se, int *j0, int *j1) {
    int s = (L + BN_ATTD_MIN_CHUNK - 1) / BN_ATTD_MIN_CHUNK;
    if (s > n_split) s = n_split;
    const int chunk = (L + s - 1) / s;
    *se = s;
    *j0 = split * chunk;
    *j1 = min(L, *j0 + chunk);
}

// Halves from a.kc (a.vc) to token t's slot.
__device__ __forceinline__ int64_t bn_attd_slot(const bn_attd_args &a, int t) {
    return a.seq ? (int64_t)a.seq[t] * a.seq_stride : 0;
}

// Both kernels begin so: wait for the kernel before (pdl.cuh), then token t's
// position p and this split's keys [j0, j1) out of se; false for an idle split.
__device__ __forceinline__ bool bn_attd_start(const bn_attd_args &a, int t, int split, int *p, int *se, int *j0,
                                              int *j1) {
    bn_pdl_wait();
    bn_pdl_trigger();
    *p = a.pos[t];
    bn_attd_split(*p + 1, a.n_split, split, se, j0, j1);
    return split < *se;
}

__global__ void __launch_bounds__(BN_ATTD_THREADS) bn_attd_scores_kernel(bn_attd_args a) {
    extern __shared__ float sm[];
    __shared__ float fred[32];
    __shared__ double dred[32];
    const int t = blockIdx.z, split = blockIdx.y, hd = a.hd, qpb = a.qpb;
    const int h0 = blockIdx.x * qpb, G = a.n_head / a.n_head_kv, g = h0 / G;
    float *sq = sm;              // qpb x hd, rotated, f16-rounded
    float *kcur = sq + qpb * hd; // hd: the token's own rotated key
    float *cs = kcur + hd, *sn = cs + a.n_rot / 2;
    int p, se, j0, j1;
    if (!bn_attd_start(a, t, split, &p, &se, &j0, &j1)) return;

    bn_rope_table(p, a.n_rot / 2, a.theta_scale, cs, sn);
    __syncthreads();
    const float *row = a.qkv + t * a.ldqkv;
    const int nq = a.n_head * hd, nkv = a.n_head_kv * hd;
    const bool own = j0 <= p && p < j1;      // this split holds the token's key
    const bool writer = own && h0 % G == 0;  // one block per KV head writes it
    __half *kc = a.kc + bn_attd_slot(a, t), *vc = a.vc + bn_attd_slot(a, t);
    const int64_t crow = ((int64_t)g * a.n_ctx + p) * hd;
    bn_attd_rotate(row, nq, h0, qpb, g, hd, a.n_rot, a.neox, cs, sn, own, sq, [&](int d, __half v) {
        kcur[d] = __half2float(v);
        if (writer) kc[crow + d] = v;
    });
    if (writer)
        for (int d = threadIdx.x; d < hd; d += blockDim.x) vc[crow + d] = __float2half_rn(row[nq + nkv + g * hd + d]);
    __syncthreads();

    // Eight lanes a key (a lane takes every eighth 16-byte piece of the row), 16
    // keys at a time, the scores of all the group's heads at once.
    const float scale = 1.0f / sqrtf((float)hd);
    const __half *kbase = kc + (int64_t)g * a.n_ctx * hd;
    float *srow = a.scores + ((int64_t)t * a.n_head + h0) * a.n_ctx;
    const int sub = threadIdx.x & 7, kl = threadIdx.x >> 3, nkl = blockDim.x >> 3;
    float mx[BN_ATTD_QPB];
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++) mx[h] = -INFINITY;
    for (int jb = j0; jb < j1; jb += nkl) { // uniform: the shuffles below need every lane
        const int j = jb + kl;
        float dot[BN_ATTD_QPB];
        bn_attd_key_dots(j, j1, sub, hd, qpb, sq, [&](int c, float *kf) {
            if (j == p) { // not in the cache yet for every block
#pragma unroll
                for (int e = 0; e < 8; e++) kf[e] = kcur[8 * c + e];
            } else {
                bn_half8_to_float(reinterpret_cast<const uint4 *>(kbase + (int64_t)j * hd)[c], kf);
            }
        }, dot);
#pragma unroll
        for (int h = 0; h < BN_ATTD_QPB; h++) {
            if (h >= qpb) break;
            if (j < j1 && sub == 0) {
                const float sc = dot[h] * scale;
                srow[(int64_t)h * a.n_ctx + j] = sc;
                mx[h] = fmaxf(mx[h], sc);
            }
        }
    }
    // Per head: the split's max, then sum exp(s - max) over its keys.
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++) {
        if (h >= qpb) break; // uniform: the barriers inside are reached by all threads
        const float m = bn_block_max(mx[h], fred);
        double l = 0.0;
        for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x) l += expf(srow[(int64_t)h * a.n_ctx + j] - m);
        l = bn_block_sum(l, dred);
        if (threadIdx.x == 0) {
            const int64_t i = ((int64_t)t * a.n_head + h0 + h) * a.n_split + split;
            a.smax[i] = m;
            a.ssum[i] = l;
        }
    }
}

__global__ void __launch_bounds__(BN_ATTD_THREADS) bn_attd_values_kernel(bn_attd_args a) {
    extern __shared__ float sm[];
    __shared__ float s_max[BN_ATTD_QPB], s_inv[BN_ATTD_QPB];
    __shared__ bool s_last;
    const int t = blockIdx.z, split = blockIdx.y, hd = a.hd, qpb = a.qpb;
    const int h0 = blockIdx.x * qpb, G = a.n_head / a.n_head_kv, g = h0 / G;
    const int tpr = hd / 8, kp = BN_ATTD_THREADS / tpr; // lanes a V row, rows at a time
    float *sp = sm;                         // qpb x BN_ATTD_TILE probabilities
    float *part = sp + qpb * BN_ATTD_TILE;  // kp x qpb x hd partial sums
    int p, se, j0, j1;
    if (!bn_attd_start(a, t, split, &p, &se, &j0, &j1)) return;

    // Global max and denominator of each head, the same in every block.
    if (threadIdx.x < qpb) {
        const int64_t base = ((int64_t)t * a.n_head + h0 + threadIdx.x) * a.n_split;
        float m = -INFINITY;
        for (int s = 0; s < se; s++) m = fmaxf(m, a.smax[base + s]);
        double tot = 0.0;
        for (int s = 0; s < se; s++) tot += a.ssum[base + s] * exp((double)a.smax[base + s] - (double)m);
        s_max[threadIdx.x] = m;
        s_inv[threadIdx.x] = (float)(1.0 / tot);
    }
    __syncthreads();

    const float *srow = a.scores + ((int64_t)t * a.n_head + h0) * a.n_ctx;
    const __half *vbase = a.vc + bn_attd_slot(a, t) + (int64_t)g * a.n_ctx * hd;
    const int kr = threadIdx.x / tpr, dc = threadIdx.x - kr * tpr;
    const bool lane_on = kr < kp;
    float acc[BN_ATTD_QPB][8];
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[h][e] = 0.f;
    for (int tj = j0; tj < j1; tj += BN_ATTD_TILE) {
        const int n = min(BN_ATTD_TILE, j1 - tj);
        for (int i = threadIdx.x; i < qpb * BN_ATTD_TILE; i += blockDim.x) {
            const int h = i / BN_ATTD_TILE, j = i - h * BN_ATTD_TILE;
            if (j < n) {
                const float e = expf(srow[(int64_t)h * a.n_ctx + tj + j] - s_max[h]);
                sp[i] = __half2float(__float2half_rn(e * s_inv[h])); // bitnet.cpp rounds p to f16
            }
        }
        __syncthreads();
        if (lane_on)
            for (int j = kr; j < n; j += kp) {
                float v[8];
                bn_half8_to_float(reinterpret_cast<const uint4 *>(vbase + (int64_t)(tj + j) * hd)[dc], v);
                bn_attd_pv8(sp, BN_ATTD_TILE, j, qpb, v, acc);
            }
        __syncthreads();
    }
    if (lane_on) bn_attd_store_partials(part, kr, dc, hd, qpb, acc);
    __syncthreads();
    for (int o = threadIdx.x; o < qpb * hd; o += blockDim.x) {
        const int h = o / hd, d = o - h * hd;
        a.opart[(((int64_t)t * a.n_head + h0 + h) * a.n_split + split) * hd + d] =
            bn_attd_partials_sum(part, kp, qpb * hd, o);
    }

    // The group's last split adds the partials, in split order.
    __threadfence();
    __syncthreads();
    unsigned *gc = a.group_counter + t * gridDim.x + blockIdx.x;
    if (threadIdx.x == 0) s_last = atomicAdd(gc, 1u) == (unsigned)se - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    const int nq = a.n_head * hd;
    for (int o = threadIdx.x; o < qpb * hd; o += blockDim.x) {
        const int h = o / hd, d = o - h * hd;
        const float *src = a.opart + ((int64_t)t * a.n_head + h0 + h) * a.n_split * hd + d;
        float sum = 0.f;
        for (int s = 0; s < se; s++) sum += __ldcg(src + (int64_t)s * hd);
        a.out[(int64_t)t * nq + (h0 + h) * hd + d] = sum;
    }
    if (threadIdx.x == 0) *gc = 0;

    // The last group quantizes every token's attention output for the O projection.
    bn_attd_next_norm(a.nn, a.out, nq, sm);
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
    a.n_split = n_split;
    // Scratch carved in the order of bn_cuda_attd_scratch_bytes, each piece 256-aligned.
    const size_t th = (size_t)n_tok * n_head;
    uintptr_t p = ((uintptr_t)scratch + 255) & ~(uintptr_t)255;
    a.ssum = (double *)p;
    p += (th * n_split * sizeof(double) + 255) & ~(size_t)255;
    a.smax = (float *)p;
    p += (th * n_split * sizeof(float) + 255) & ~(size_t)255;
    a.opart = (float *)p;
    p += (th * n_split * hd * sizeof(float) + 255) & ~(size_t)255;
    a.scores = (float *)p;
    a.group_counter = group_counters;
    const dim3 grid(n_head / a.qpb, n_split, n_tok);
    const size_t smem_a = sizeof(float) * ((size_t)(a.qpb + 1) * hd + n_rot);
    size_t smem_b = sizeof(float) * ((size_t)a.qpb * BN_ATTD_TILE + (size_t)(BN_ATTD_THREADS / (hd / 8)) * a.qpb * hd);
    if (a.nn.w && smem_b < sizeof(float) * (size_t)n_head * hd) smem_b = sizeof(float) * (size_t)n_head * hd;
    if (smem_b > 48 * 1024) return cudaErrorInvalidValue; // 2B-4T: 36 KiB
    cudaError_t e = bn_launch(pdl, bn_attd_scores_kernel, grid, dim3(BN_ATTD_THREADS), smem_a, st, a);
    if (e != cudaSuccess) return e;
    return bn_launch(pdl, bn_attd_values_kernel, grid, dim3(BN_ATTD_THREADS), smem_b, st, a);
}
