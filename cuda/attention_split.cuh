// attention_split.cuh - the split-KV decode attention's two steps as block
// functions: kernel A (scores, per-split max and sum) and kernel B (values, the
// combine), for the pair of kernels in attention_decode.cu, whose header explains
// the method, and for the persistent decode kernel (decode_persistent.cu), which
// runs them as phases of its own.
#ifndef BN_CUDA_ATTENTION_SPLIT_CUH
#define BN_CUDA_ATTENTION_SPLIT_CUH

#include "attention_decode.cuh"

#define BN_ATTD_MIN_CHUNK 32 // keys a split gets at least

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

// Token t's position p and this split's keys [j0, j1) out of se; false for an
// idle split.
__device__ __forceinline__ bool bn_attd_start(const bn_attd_args &a, int t, int split, int *p, int *se, int *j0,
                                              int *j1) {
    *p = a.pos[t];
    bn_attd_split(*p + 1, a.n_split, split, se, j0, j1);
    return split < *se;
}

// Kernel A's work for token t, query-head block hb (heads hb*qpb..) and one
// split, by a block of at least BN_ATTD_THREADS threads (the persistent decode
// kernel's are larger: its extra threads score keys too, which changes no
// score, and stay out of the sum, whose order is the BN_ATTD_THREADS threads').
// sm: bn_attd_smem_a bytes of shared memory.
__device__ __forceinline__ void bn_attd_scores_block(const bn_attd_args &a, int t, int hb, int split, float *sm) {
    __shared__ float fred[32];
    __shared__ double dred[32];
    const int hd = a.hd, qpb = a.qpb;
    const int h0 = hb * qpb, G = a.n_head / a.n_head_kv, g = h0 / G;
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
        if (threadIdx.x < BN_ATTD_THREADS)
            for (int j = j0 + threadIdx.x; j < j1; j += BN_ATTD_THREADS) l += expf(srow[(int64_t)h * a.n_ctx + j] - m);
        l = bn_block_sum(l, dred);
        if (threadIdx.x == 0) {
            const int64_t i = ((int64_t)t * a.n_head + h0 + h) * a.n_split + split;
            a.smax[i] = m;
            a.ssum[i] = l;
        }
    }
}

// Kernel B's work for token t, query-head block hb of n_hb and one split (block
// size as bn_attd_scores_block; only BN_ATTD_THREADS threads add p.V). True in
// the block that added the group's splits, the last one in. The kernels reading
// what other blocks wrote load it through L2 (__ldcg): in the persistent kernel
// the same scratch served the layer before. sm: bn_attd_smem_b bytes.
__device__ __forceinline__ bool bn_attd_values_block(const bn_attd_args &a, int t, int hb, int n_hb, int split,
                                                     float *sm) {
    __shared__ float s_max[BN_ATTD_QPB], s_inv[BN_ATTD_QPB];
    __shared__ bool s_last;
    const int hd = a.hd, qpb = a.qpb;
    const int h0 = hb * qpb, G = a.n_head / a.n_head_kv, g = h0 / G;
    const int tpr = hd / 8, kp = BN_ATTD_THREADS / tpr; // lanes a V row, rows at a time
    float *sp = sm;                         // qpb x BN_ATTD_TILE probabilities
    float *part = sp + qpb * BN_ATTD_TILE;  // kp x qpb x hd partial sums
    int p, se, j0, j1;
    if (!bn_attd_start(a, t, split, &p, &se, &j0, &j1)) return false;

    // Global max and denominator of each head, the same in every block.
    if (threadIdx.x < qpb) {
        const int64_t base = ((int64_t)t * a.n_head + h0 + threadIdx.x) * a.n_split;
        float m = -INFINITY;
        for (int s = 0; s < se; s++) m = fmaxf(m, __ldcg(a.smax + base + s));
        double tot = 0.0;
        for (int s = 0; s < se; s++) tot += __ldcg(a.ssum + base + s) * exp((double)__ldcg(a.smax + base + s) - (double)m);
        s_max[threadIdx.x] = m;
        s_inv[threadIdx.x] = (float)(1.0 / tot);
    }
    __syncthreads();

    const float *srow = a.scores + ((int64_t)t * a.n_head + h0) * a.n_ctx;
    const __half *vbase = a.vc + bn_attd_slot(a, t) + (int64_t)g * a.n_ctx * hd;
    const int kr = threadIdx.x / tpr, dc = threadIdx.x - kr * tpr;
    const bool lane_on = kr < kp;
    float acc[BN_ATTD_QPB][8];
    bn_attd_acc_clear(acc);
    for (int tj = j0; tj < j1; tj += BN_ATTD_TILE) {
        const int n = min(BN_ATTD_TILE, j1 - tj);
        for (int i = threadIdx.x; i < qpb * BN_ATTD_TILE; i += blockDim.x) {
            const int h = i / BN_ATTD_TILE, j = i - h * BN_ATTD_TILE;
            if (j < n) {
                const float e = expf(__ldcg(srow + (int64_t)h * a.n_ctx + tj + j) - s_max[h]);
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
    unsigned *gc = a.group_counter + t * n_hb + hb;
    if (threadIdx.x == 0) s_last = atomicAdd(gc, 1u) == (unsigned)se - 1;
    __syncthreads();
    if (!s_last) return false;
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
    return true;
}

#endif
