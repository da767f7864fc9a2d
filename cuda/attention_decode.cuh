// attention_decode.cuh - what the two decode-attention kernels share: the split-KV
// pair (attention_decode.cu) and the one-kernel short-context form
// (attention_decode_short.cu).
#ifndef BN_CUDA_ATTENTION_DECODE_CUH
#define BN_CUDA_ATTENTION_DECODE_CUH

#include <cuda_fp16.h>

#include "attention_smem.h"
#include "cuda_kernels.cuh"
#include "norm_quant.cuh"
#include "reduce.cuh"
#include "rope.cuh"


// What a decode-attention kernel reads: the first block for both forms, then
// the split pair's scratch (attention_decode.cu) or the one-kernel form's
// capacity (attention_decode_short.cu).
typedef struct bn_attd_args {
    const float *qkv;
    int64_t ldqkv;
    const int32_t *pos;
    int n_head, n_head_kv, hd, n_rot, qpb, n_ctx;
    bool neox;              // RoPE pairs (rope.cuh)
    float theta_scale;
    __half *kc, *vc;        // this layer's cache, [n_head_kv][n_ctx][hd] (of slot 0 when seq is set)
    const int32_t *seq;     // NULL: every token in kc/vc; else token t's slot starts seq[t] * seq_stride later
    int64_t seq_stride;     // halves from one sequence slot's cache to the next
    float *out;             // [n_tok][n_head * hd]
    bn_cuda_next_norm nn;
    // the split pair
    int n_split;
    float *scores;           // [n_tok][n_head][n_ctx]
    float *smax;             // [n_tok][n_head][n_split]
    double *ssum;            // [n_tok][n_head][n_split]
    float *opart;            // [n_tok][n_head][n_split][hd]
    unsigned *group_counter; // [n_tok][n_head / qpb], zero between launches
    // the one-kernel form
    int max_keys; // every pos[t] is below it
} bn_attd_args;

// The first block of *a, after the checks both launchers make (the rest zero);
// false for a shape the kernels do not take.
static inline bool bn_attd_args_init(bn_attd_args *a, const float *qkv, int64_t ldqkv, const int32_t *pos,
                                     int n_head, int n_head_kv, int hd, int n_rot, bool neox, float theta_scale,
                                     int n_ctx, __half *k_cache, __half *v_cache, const int32_t *seq,
                                     int64_t seq_stride, float *out, const bn_cuda_next_norm *nn) {
    if (hd <= 0 || hd > 256 || hd % 8 || n_rot <= 0 || n_rot > hd || n_rot % 2 || n_head_kv <= 0 ||
        n_head % n_head_kv || n_ctx <= 0)
        return false;
    *a = bn_attd_args{};
    a->qkv = qkv;
    a->ldqkv = ldqkv;
    a->pos = pos;
    a->n_head = n_head;
    a->n_head_kv = n_head_kv;
    a->hd = hd;
    a->n_rot = n_rot;
    a->qpb = bn_cuda_attd_heads_per_block(n_head, n_head_kv);
    a->n_ctx = n_ctx;
    a->neox = neox;
    a->theta_scale = theta_scale;
    a->kc = k_cache;
    a->vc = v_cache;
    a->seq = seq;
    a->seq_stride = seq_stride;
    a->out = out;
    if (nn) a->nn = *nn;
    return true;
}

// The split pair's part of *a (initialized for n_tok tokens): n_split splits,
// its scratch (bn_cuda_attd_scratch_bytes) carved in that function's order, each
// piece 256-aligned, and the group counters.
static inline void bn_attd_args_split(bn_attd_args *a, int n_tok, int n_split, void *scratch, unsigned *group_counters) {
    const size_t th = (size_t)n_tok * a->n_head;
    uintptr_t p = ((uintptr_t)scratch + 255) & ~(uintptr_t)255;
    a->n_split = n_split;
    a->ssum = (double *)p;
    p += (th * n_split * sizeof(double) + 255) & ~(size_t)255;
    a->smax = (float *)p;
    p += (th * n_split * sizeof(float) + 255) & ~(size_t)255;
    a->opart = (float *)p;
    p += (th * n_split * a->hd * sizeof(float) + 255) & ~(size_t)255;
    a->scores = (float *)p;
    a->group_counter = group_counters;
}

__device__ __forceinline__ void bn_half8_to_float(uint4 u, float *f) {
    const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 v = __half22float2(h[i]);
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
    }
}

// RoPE of the block's qpb queries (heads h0.., into sq as f16-rounded floats) and,
// with with_key, of the token's key of KV head g, each element rounded to f16 as
// bitnet.cpp rounds Q and the cache and handed to key(d, v). row: the token's
// Q|K|V row (nq query floats first); cs/sn: the angles (rope.cuh).
template <typename Key>
__device__ __forceinline__ void bn_attd_rotate(const float *row, int nq, int h0, int qpb, int g, int hd, int n_rot,
                                               bool neox, const float *cs, const float *sn, bool with_key, float *sq,
                                               Key key) {
    for (int e = threadIdx.x; e < (qpb + (with_key ? 1 : 0)) * hd; e += blockDim.x) {
        const int hh = e / hd, d = e - hh * hd;
        const float *head = hh < qpb ? row + (h0 + hh) * hd : row + nq + g * hd;
        const __half v = __float2half_rn(bn_rope_elem(head, d, n_rot, neox, cs, sn));
        if (hh < qpb) sq[e] = __half2float(v);
        else key(d, v);
    }
}

// Scores: dot[h] += query h (f16-rounded floats, hd apart in sq) . the key's
// elements 8c..8c+7 (kf), for the block's qpb heads.
__device__ __forceinline__ void bn_attd_dot8(const float *sq, int hd, int qpb, int c, const float *kf, float *dot) {
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++)
        if (h < qpb) {
            const float4 q0 = *reinterpret_cast<const float4 *>(sq + h * hd + 8 * c);
            const float4 q1 = *reinterpret_cast<const float4 *>(sq + h * hd + 8 * c + 4);
            dot[h] += q0.x * kf[0] + q0.y * kf[1] + q0.z * kf[2] + q0.w * kf[3] + q1.x * kf[4] + q1.y * kf[5] +
                      q1.z * kf[6] + q1.w * kf[7];
        }
}

// Key j's dot products with the qpb queries (dot[h], unscaled), eight lanes a
// key: lane `sub` takes the row's 16-byte pieces sub, sub + 8, ...; key8(c, kf)
// gives piece c as 8 floats. Every lane of the warp must call it (shuffles);
// j >= j_end gives zeros.
template <typename Key8>
__device__ __forceinline__ void bn_attd_key_dots(int j, int j_end, int sub, int hd, int qpb, const float *sq,
                                                 Key8 key8, float *dot) {
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++) dot[h] = 0.f;
    if (j < j_end)
        for (int c = sub; c < hd / 8; c += 8) {
            float kf[8];
            key8(c, kf);
            bn_attd_dot8(sq, hd, qpb, c, kf, dot);
        }
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++) {
        if (h >= qpb) break;
        dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 4);
        dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 2);
        dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 1);
    }
}

__device__ __forceinline__ void bn_attd_acc_clear(float (&acc)[BN_ATTD_QPB][8]) {
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[h][e] = 0.f;
}

// p.V: acc[h][e] += p[h * pstride + j] * v[e] (V row j, 8 dims) for the qpb heads.
__device__ __forceinline__ void bn_attd_pv8(const float *p, int pstride, int j, int qpb, const float *v,
                                            float (&acc)[BN_ATTD_QPB][8]) {
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++)
        if (h < qpb) {
            const float pj = p[h * pstride + j];
#pragma unroll
            for (int e = 0; e < 8; e++) acc[h][e] += pj * v[e];
        }
}

// A lane's p.V sums into the partials of its key row kr (kp rows, qpb x hd each),
// after a barrier; bn_attd_partials_sum adds element o over the rows in order.
__device__ __forceinline__ void bn_attd_store_partials(float *part, int kr, int dc, int hd, int qpb,
                                                       const float (&acc)[BN_ATTD_QPB][8]) {
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++)
        if (h < qpb)
#pragma unroll
            for (int e = 0; e < 8; e++) part[(kr * qpb + h) * hd + dc * 8 + e] = acc[h][e];
}

__device__ __forceinline__ float bn_attd_partials_sum(const float *part, int kp, int width, int o) {
    float sum = 0.f;
    for (int r = 0; r < kp; r++) sum += part[r * width + o];
    return sum;
}

// The one-kernel form's attention of token t for query heads h0 .. h0+qpb-1
// (GQA group g = h0 / (n_head / n_head_kv)) at position p, once the RoPE table
// (cs, sn) is built and the cache rows before p are on their way:
// - the queries and the token's key, rotated and rounded to f16 (queries into
//   sq, qpb x hd floats), the key and V row handed to put_k / put_v(d, v,
//   writer), writer being true in the one block per KV head that writes the
//   cache row;
// - wait_rows(), then a barrier: after it key8(j, c) / val8(j, c) give 16-byte
//   piece c of K / V row j, for every j <= p;
// - scores with eight lanes a key (sc: qpb rows of sc_stride floats), the
//   softmax with one warp a head (the probabilities replace the scores), p.V
//   with hd/8 lanes a V row on BN_ATTS_THREADS threads (part: their partial
//   sums), and the heads' output rows into a.out.
// Called by every thread of the block (blockDim.x a multiple of 32, at least
// BN_ATTS_THREADS).
template <typename PutK, typename PutV, typename Wait, typename Key8, typename Val8>
__device__ __forceinline__ void bn_atts_block(const bn_attd_args &a, int t, int h0, int p, const float *cs,
                                              const float *sn, float *sq, float *sc, int sc_stride, float *part,
                                              PutK put_k, PutV put_v, Wait wait_rows, Key8 key8, Val8 val8) {
    const int hd = a.hd, qpb = a.qpb, L = p + 1, G = a.n_head / a.n_head_kv, g = h0 / G;
    // 1. The group's queries and the token's key, rotated and rounded to f16; its V row.
    const float *row = a.qkv + t * a.ldqkv;
    const int nq = a.n_head * hd, nkv = a.n_head_kv * hd;
    const bool writer = h0 % G == 0;
    bn_attd_rotate(row, nq, h0, qpb, g, hd, a.n_rot, a.neox, cs, sn, true, sq,
                   [&](int d, __half v) { put_k(d, v, writer); });
    for (int d = threadIdx.x; d < hd; d += blockDim.x) put_v(d, __float2half_rn(row[nq + nkv + g * hd + d]), writer);
    wait_rows();
    __syncthreads();

    // 2. Scores: eight lanes a key, blockDim/8 keys at a time, every head of the group.
    const float scale = 1.0f / sqrtf((float)hd);
    const int sub = threadIdx.x & 7, kl = threadIdx.x >> 3, nkl = blockDim.x >> 3;
    for (int jb = 0; jb < L; jb += nkl) { // uniform: the shuffles below need every lane
        const int j = jb + kl;
        float dot[BN_ATTD_QPB];
        bn_attd_key_dots(j, L, sub, hd, qpb, sq,
                         [&](int c, float *kf) { bn_half8_to_float(key8(j, c), kf); }, dot);
#pragma unroll
        for (int h = 0; h < BN_ATTD_QPB; h++)
            if (h < qpb && j < L && sub == 0) sc[h * sc_stride + j] = dot[h] * scale;
    }
    __syncthreads();

    // 3. Softmax, one warp a head: the probabilities replace the scores.
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
    for (int h = warp; h < qpb; h += nwarp) {
        float *s = sc + h * sc_stride;
        float m = -INFINITY;
        for (int j = lane; j < L; j += 32) m = fmaxf(m, s[j]);
        m = bn_warp_max(m);
        double l = 0.0;
        for (int j = lane; j < L; j += 32) l += expf(s[j] - m);
        const float inv = (float)(1.0 / bn_warp_sum(l));
        for (int j = lane; j < L; j += 32) s[j] = __half2float(__float2half_rn(expf(s[j] - m) * inv));
    }
    __syncthreads();

    // 4. p.V: hd/8 lanes a V row, kp rows at a time; the rows' partial sums added in order.
    const int tpr = hd / 8, kp = BN_ATTS_THREADS / tpr;
    const int kr = threadIdx.x / tpr, dc = threadIdx.x - kr * tpr;
    if (kr < kp) {
        float acc[BN_ATTD_QPB][8];
        bn_attd_acc_clear(acc);
        for (int j = kr; j < L; j += kp) {
            float v[8];
            bn_half8_to_float(val8(j, dc), v);
            bn_attd_pv8(sc, sc_stride, j, qpb, v, acc);
        }
        bn_attd_store_partials(part, kr, dc, hd, qpb, acc);
    }
    __syncthreads();
    float *out = a.out + (int64_t)t * nq + (int64_t)h0 * hd;
    for (int o = threadIdx.x; o < qpb * hd; o += blockDim.x) out[o] = bn_attd_partials_sum(part, kp, qpb * hd, o);
}

// After a block has written its heads of out (nq floats a token, gridDim.z
// tokens): with nn set, the last of the gridDim.x * gridDim.z blocks that call
// this quantizes every token's row for the O projection, as ternary_gemv.cu's
// last block does; hs: nq floats of shared memory no longer in use.
__device__ __forceinline__ void bn_attd_next_norm(const bn_cuda_next_norm &nn, const float *out, int nq, float *hs) {
    __shared__ bool s_last;
    if (nn.w == NULL) return;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) s_last = atomicAdd(nn.counter, 1u) == gridDim.x * gridDim.z - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    for (int t = 0; t < (int)gridDim.z; t++) {
        int8_t *qo = nn.q + (int64_t)t * nq;
        float sc;
        int qs;
        bn_block_norm_quant(out + (int64_t)t * nq, nq, nn.w, nn.eps, nn.mode, hs, &sc, &qs,
                            [&](int i, int v) { qo[i] = (int8_t)v; });
        if (threadIdx.x == 0) {
            nn.s[t] = sc;
            nn.qsum[t] = qs;
        }
    }
    if (threadIdx.x == 0) *nn.counter = 0; // ready for the next launch (graph replay)
}

#endif
