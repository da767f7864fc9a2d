// attention_decode.cu - one new token per sequence against the f16 KV cache:
// split-KV (flash-decoding) with the softmax of the CPU twin, RoPE and the KV
// write folded in.
//
// The keys 0..pos of a token are cut into se splits of at most
// BN_ATTD_CHUNK keys (at most n_split of them, chosen by the backend from the
// context length); each (GQA group, split) is a block of 128 threads serving the
// group's query heads (up to BN_ATTD_QPB), so each K/V row is read once for all
// of them. At batch 1 every step is latency: a decode step cannot afford
// dependent trips to memory, so a block
// - reads pos and starts copying its first 64 K rows (and, when it will need
//   them, V rows) into shared memory with cp.async *before* it waits for the
//   QKV projection (pdl.cuh): older cache rows do not depend on it;
// - then loads its query rows and the token's own K/V row in one pass, applies
//   NEOX RoPE (angles as a running float product, as cpu/ops.c), rounds to f16
//   as bitnet.cpp does, and (one block per KV head) writes row pos of the cache;
// - scores its keys from shared memory, eight lanes a key row, every head of
//   the group at once, into shared memory; a warp per head reduces max and sum.
// One split (short contexts): the block has the whole softmax, so it finishes
// here: p_j = f16(expf(s_j - max) * (1/sum)) with the sum in double - the CPU's
// probability, f16 rounding included - then p.V (16 lanes a V row, 8 dims a
// lane) straight into the output. Kernel B then has nothing to do.
// Several splits: A leaves each split's scores, max m_s and l_s = sum
// exp(s_j - m_s) in scratch; B derives the global max M and the denominator
// sum_s l_s exp(m_s - M) (double, the same order in every block), forms the
// same p_j and its split's partial p.V; the last block of a group (atomic
// counter) adds the partials in split order.
// With BITNET_CUDA_NORM=last the block that completes the last group also
// quantizes the attention output for the O projection (as in ternary_gemv.cu).
// The only difference from the CPU is summation order (scores, partial sums,
// and the split denominator's factoring).
// CPU twin: rope_neox + f16 KV write + bn_attention_head (cpu/ops.c).
#include "async_copy.cuh"
#include "cuda_kernels.cuh"
#include "norm_quant.cuh"
#include "pdl.cuh"
#include "reduce.cuh"

#define BN_ATTD_THREADS 128
#define BN_ATTD_QPB 8    // query heads a block serves at most
#define BN_ATTD_CHUNK 64 // keys a split takes before another split starts
#define BN_ATTD_KT 64    // K or V rows staged in shared memory at a time

typedef struct bn_attd_args {
    const float *qkv;
    int64_t ldqkv;
    const int32_t *pos;
    int n_head, n_head_kv, hd, n_rot, qpb, n_ctx, n_split, cstride;
    float theta_scale;
    __half *kc, *vc;         // this layer's cache, [n_head_kv][n_ctx][hd]
    float *scores;           // [n_tok][n_head][n_ctx]
    float *smax;             // [n_tok][n_head][n_split]
    double *ssum;            // [n_tok][n_head][n_split]
    float *opart;            // [n_tok][n_head][n_split][hd]
    float *out;              // [n_tok][n_head * hd]
    unsigned *group_counter; // [n_tok][n_head / qpb], zero between launches
    bn_cuda_next_norm nn;
} bn_attd_args;

// The block's place: token t, split, its first query head h0 and KV head g,
// position p, and its keys [j0, j1) out of se splits of 0..p.
typedef struct bn_attd_block {
    int t, split, h0, g, p, se, j0, j1;
} bn_attd_block;

__device__ __forceinline__ bn_attd_block bn_attd_where(const bn_attd_args &a) {
    bn_attd_block b;
    b.t = blockIdx.z;
    b.split = blockIdx.y;
    b.h0 = blockIdx.x * a.qpb;
    b.g = b.h0 / (a.n_head / a.n_head_kv);
    b.p = a.pos[b.t];
    const int L = b.p + 1;
    int se = (L + BN_ATTD_CHUNK - 1) / BN_ATTD_CHUNK;
    if (se > a.n_split) se = a.n_split;
    const int chunk = (L + se - 1) / se;
    b.se = se;
    b.j0 = b.split * chunk;
    b.j1 = min(L, b.j0 + chunk);
    return b;
}

// Shared memory of both kernels, carved from one dynamic buffer.
typedef struct bn_attd_smem {
    __half *kt, *vt;  // BN_ATTD_KT rows of K / V
    float *raw;       // the qkv values of the group: qpb Q rows, then K, V
    float *sq;        // qpb rotated queries, f16-rounded
    float *kcur, *vcur;
    float *cs, *sn;   // rope angles
    float *sc;        // qpb x cstride scores, then probabilities
    float *part;      // p.V partial sums of the key lanes
} bn_attd_smem;

static size_t bn_attd_smem_floats(int hd, int qpb, int n_rot, int cstride) {
    const int kp = BN_ATTD_THREADS / (hd / 8);
    return (size_t)BN_ATTD_KT * hd + (size_t)(qpb + 2) * hd + (size_t)qpb * hd + 2 * (size_t)hd + (size_t)n_rot +
           (size_t)qpb * cstride + (size_t)kp * qpb * hd;
}

__device__ __forceinline__ bn_attd_smem bn_attd_carve(float *base, const bn_attd_args &a) {
    bn_attd_smem m;
    m.kt = reinterpret_cast<__half *>(base);
    m.vt = m.kt + BN_ATTD_KT * a.hd;
    float *f = reinterpret_cast<float *>(m.vt + BN_ATTD_KT * a.hd);
    m.raw = f;
    m.sq = m.raw + (a.qpb + 2) * a.hd;
    m.kcur = m.sq + a.qpb * a.hd;
    m.vcur = m.kcur + a.hd;
    m.cs = m.vcur + a.hd;
    m.sn = m.cs + a.n_rot / 2;
    m.sc = m.sn + a.n_rot / 2;
    m.part = m.sc + a.qpb * a.cstride;
    return m;
}

// Starts copying cache rows [r0, r0 + n) of one KV head into a tile; row skip
// (the token's own, not yet written) and rows past n are left alone.
__device__ __forceinline__ void bn_attd_issue_rows(__half *tile, const __half *base, int hd, int r0, int n, int skip) {
    const int vpr = hd / 8;
    for (int i = threadIdx.x; i < n * vpr; i += blockDim.x) {
        const int r = i / vpr, c = i - r * vpr;
        if (r0 + r != skip) bn_cp_async16(tile + r * hd + c * 8, base + (int64_t)(r0 + r) * hd + c * 8);
    }
    bn_cp_async_commit();
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

// Element d of a head after NEOX RoPE (pairs i, i + n_rot/2), products rounded
// separately as cpu/ops.c bn_rope_neox computes them (no FMA).
__device__ __forceinline__ float bn_rope_elem(const float *head, int d, int n_rot, const float *cs,
                                              const float *sn) {
    const int half = n_rot / 2;
    if (d >= n_rot) return head[d];
    const int i = d < half ? d : d - half;
    const float x0 = head[i], x1 = head[i + half];
    return d < half ? __fsub_rn(__fmul_rn(x0, cs[i]), __fmul_rn(x1, sn[i]))
                    : __fadd_rn(__fmul_rn(x0, sn[i]), __fmul_rn(x1, cs[i]));
}

// p.V over the block's keys [j0, j1): probabilities sc[h * cstride + j - j0],
// V rows from the cache in tiles (the first one already in flight when
// first_issued), the token's own row from vcur. Sums of every head's hd outputs
// are passed to emit(o, value), o = h * hd + d.
template <typename Emit>
__device__ __forceinline__ void bn_attd_pv(const bn_attd_args &a, const bn_attd_block &b, const bn_attd_smem &m,
                                           bool first_issued, Emit emit) {
    const int hd = a.hd, qpb = a.qpb, tpr = hd / 8, kp = BN_ATTD_THREADS / tpr;
    const int kr = threadIdx.x / tpr, dc = threadIdx.x - kr * tpr;
    const bool lane_on = kr < kp;
    const __half *vbase = a.vc + (int64_t)b.g * a.n_ctx * hd;
    float acc[BN_ATTD_QPB][8];
#pragma unroll
    for (int h = 0; h < BN_ATTD_QPB; h++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[h][e] = 0.f;
    for (int tj = b.j0; tj < b.j1; tj += BN_ATTD_KT) {
        const int n = min(BN_ATTD_KT, b.j1 - tj);
        if (tj > b.j0 || !first_issued) bn_attd_issue_rows(m.vt, vbase, hd, tj, n, b.p);
        bn_cp_async_wait_all();
        __syncthreads();
        if (lane_on)
            for (int j = kr; j < n; j += kp) {
                float v[8];
                if (tj + j == b.p) {
#pragma unroll
                    for (int e = 0; e < 8; e++) v[e] = m.vcur[dc * 8 + e];
                } else {
                    bn_half8_to_float(*reinterpret_cast<const uint4 *>(m.vt + j * hd + dc * 8), v);
                }
#pragma unroll
                for (int h = 0; h < BN_ATTD_QPB; h++)
                    if (h < qpb) {
                        const float pj = m.sc[h * a.cstride + tj + j - b.j0];
#pragma unroll
                        for (int e = 0; e < 8; e++) acc[h][e] += pj * v[e];
                    }
            }
        __syncthreads(); // the tile is free for the next one
    }
    if (lane_on)
#pragma unroll
        for (int h = 0; h < BN_ATTD_QPB; h++)
            if (h < qpb)
#pragma unroll
                for (int e = 0; e < 8; e++) m.part[(kr * qpb + h) * hd + dc * 8 + e] = acc[h][e];
    __syncthreads();
    for (int o = threadIdx.x; o < qpb * hd; o += blockDim.x) {
        float sum = 0.f;
        for (int r = 0; r < kp; r++) sum += m.part[r * qpb * hd + o];
        emit(o, sum);
    }
}

// The last block to complete a group (of every token) quantizes the attention
// output for the O projection (BITNET_CUDA_NORM=last).
__device__ __forceinline__ void bn_attd_next_norm(const bn_attd_args &a, float *hs) {
    __shared__ bool s_last;
    if (a.nn.w == NULL) return;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) s_last = atomicAdd(a.nn.counter, 1u) == gridDim.x * gridDim.z - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    const int nq = a.n_head * a.hd;
    for (int tt = 0; tt < (int)gridDim.z; tt++) {
        int8_t *qo = a.nn.q + (int64_t)tt * nq;
        float sc;
        int qs;
        bn_block_norm_quant(a.out + (int64_t)tt * nq, nq, a.nn.w, a.nn.eps, false, hs, &sc, &qs,
                            [&](int i, int v) { qo[i] = (int8_t)v; });
        if (threadIdx.x == 0) {
            a.nn.s[tt] = sc;
            a.nn.qsum[tt] = qs;
        }
    }
    if (threadIdx.x == 0) *a.nn.counter = 0;
}

__global__ void __launch_bounds__(BN_ATTD_THREADS) bn_attd_scores_kernel(bn_attd_args a) {
    extern __shared__ float attd_smem[];
    const bn_attd_smem m = bn_attd_carve(attd_smem, a);
    const int hd = a.hd, qpb = a.qpb, half = a.n_rot / 2;
    // pos was written before the step began: every kernel triggers its dependents
    // only after its own wait, so the kernel before this one has passed its wait
    // and everything before it has finished.
    const bn_attd_block b = bn_attd_where(a);
    if (b.split >= b.se) return;
    const __half *kbase = a.kc + (int64_t)b.g * a.n_ctx * hd;
    const bool fused = b.se == 1;
    // Older cache rows do not depend on the previous kernel: start them now.
    bn_attd_issue_rows(m.kt, kbase, hd, b.j0, min(BN_ATTD_KT, b.j1 - b.j0), b.p);
    if (fused)
        bn_attd_issue_rows(m.vt, a.vc + (int64_t)b.g * a.n_ctx * hd, hd, b.j0, min(BN_ATTD_KT, b.j1 - b.j0), b.p);
    for (int i = threadIdx.x; i < half; i += blockDim.x) { // theta_i = p * ts^i, a running product
        float theta = (float)b.p;
        for (int k = 0; k < i; k++) theta = __fmul_rn(theta, a.theta_scale);
        sincosf(theta, &m.sn[i], &m.cs[i]);
    }

    bn_pdl_wait();
    bn_pdl_trigger();
    const float *row = a.qkv + b.t * a.ldqkv;
    const int nq = a.n_head * hd, nkv = a.n_head_kv * hd;
    for (int i = threadIdx.x; i < (qpb + 2) * hd / 4; i += blockDim.x) { // Q rows, K row, V row
        const int e = 4 * i, part = e < qpb * hd ? 0 : e < (qpb + 1) * hd ? 1 : 2;
        const float *src = part == 0 ? row + b.h0 * hd + e
                                     : row + nq + (part == 2 ? nkv : 0) + b.g * hd + (e - (qpb + part - 1) * hd);
        *reinterpret_cast<float4 *>(m.raw + e) = *reinterpret_cast<const float4 *>(src);
    }
    __syncthreads();
    const bool own = b.j0 <= b.p && b.p < b.j1;       // this split holds the token's key
    const bool writer = own && b.h0 % (a.n_head / a.n_head_kv) == 0; // one block per KV head writes it
    const int64_t crow = ((int64_t)b.g * a.n_ctx + b.p) * hd;
    for (int e = threadIdx.x; e < (qpb + 2) * hd; e += blockDim.x) {
        const int hh = e / hd, d = e - hh * hd;
        const float *head = m.raw + hh * hd;
        if (hh < qpb) {
            m.sq[e] = __half2float(__float2half_rn(bn_rope_elem(head, d, a.n_rot, m.cs, m.sn)));
        } else if (hh == qpb) {
            const __half k = __float2half_rn(bn_rope_elem(head, d, a.n_rot, m.cs, m.sn));
            m.kcur[d] = __half2float(k);
            if (writer) a.kc[crow + d] = k;
        } else {
            const __half v = __float2half_rn(head[d]);
            m.vcur[d] = __half2float(v);
            if (writer) a.vc[crow + d] = v;
        }
    }

    // Scores: eight lanes a key row, 16 keys at a time, all heads of the group.
    const float scale = 1.0f / sqrtf((float)hd);
    const int sub = threadIdx.x & 7, kl = threadIdx.x >> 3, nkl = blockDim.x >> 3;
    for (int tj = b.j0; tj < b.j1; tj += BN_ATTD_KT) {
        const int n = min(BN_ATTD_KT, b.j1 - tj);
        if (tj > b.j0) bn_attd_issue_rows(m.kt, kbase, hd, tj, n, b.p);
        if (fused && tj == b.j0) bn_cp_async_wait_group<1>(); // the K rows; the V rows may still come
        else bn_cp_async_wait_all();
        __syncthreads();
        for (int jb = 0; jb < n; jb += nkl) { // uniform: the shuffles below need every lane
            const int j = jb + kl;
            float dot[BN_ATTD_QPB];
#pragma unroll
            for (int h = 0; h < BN_ATTD_QPB; h++) dot[h] = 0.f;
            if (j < n)
                for (int c = sub; c < hd / 8; c += 8) {
                    float kf[8];
                    if (tj + j == b.p) {
#pragma unroll
                        for (int e = 0; e < 8; e++) kf[e] = m.kcur[8 * c + e];
                    } else {
                        bn_half8_to_float(*reinterpret_cast<const uint4 *>(m.kt + j * hd + 8 * c), kf);
                    }
#pragma unroll
                    for (int h = 0; h < BN_ATTD_QPB; h++)
                        if (h < qpb) {
                            const float4 q0 = *reinterpret_cast<const float4 *>(m.sq + h * hd + 8 * c);
                            const float4 q1 = *reinterpret_cast<const float4 *>(m.sq + h * hd + 8 * c + 4);
                            dot[h] += q0.x * kf[0] + q0.y * kf[1] + q0.z * kf[2] + q0.w * kf[3] + q1.x * kf[4] +
                                      q1.y * kf[5] + q1.z * kf[6] + q1.w * kf[7];
                        }
                }
#pragma unroll
            for (int h = 0; h < BN_ATTD_QPB; h++) {
                if (h >= qpb) break;
                dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 4);
                dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 2);
                dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 1);
                if (j < n && sub == 0) m.sc[h * a.cstride + tj + j - b.j0] = dot[h] * scale;
            }
        }
        __syncthreads(); // scores written; the K tile is free
    }

    // A warp per head: the split's max and sum of exp(s - max) (double).
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5, cn = b.j1 - b.j0;
    for (int h = warp; h < qpb; h += nw) {
        const float *sh = m.sc + h * a.cstride;
        float mx = -INFINITY;
        for (int j = lane; j < cn; j += 32) mx = fmaxf(mx, sh[j]);
        mx = bn_warp_max(mx);
        double l = 0.0;
        for (int j = lane; j < cn; j += 32) l += expf(sh[j] - mx);
        l = bn_warp_sum(l);
        if (fused) { // the whole softmax is here: probabilities in place
            const float inv = (float)(1.0 / l);
            for (int j = lane; j < cn; j += 32) m.sc[h * a.cstride + j] = __half2float(__float2half_rn(expf(sh[j] - mx) * inv));
        } else {
            const int64_t hi = (int64_t)b.t * a.n_head + b.h0 + h;
            if (lane == 0) {
                a.smax[hi * a.n_split + b.split] = mx;
                a.ssum[hi * a.n_split + b.split] = l;
            }
            for (int j = lane; j < cn; j += 32) a.scores[hi * a.n_ctx + b.j0 + j] = sh[j];
        }
    }
    if (!fused) return;
    __syncthreads();
    float *out = a.out + (int64_t)b.t * nq + b.h0 * hd;
    bn_attd_pv(a, b, m, true, [&](int o, float v) { out[o] = v; });
    bn_attd_next_norm(a, attd_smem);
}

__global__ void __launch_bounds__(BN_ATTD_THREADS) bn_attd_values_kernel(bn_attd_args a) {
    extern __shared__ float attd_smem[];
    const bn_attd_smem m = bn_attd_carve(attd_smem, a);
    __shared__ float s_max[BN_ATTD_QPB], s_inv[BN_ATTD_QPB];
    __shared__ bool s_last;
    const int hd = a.hd, qpb = a.qpb;
    const bn_attd_block b = bn_attd_where(a); // pos: see bn_attd_scores_kernel
    if (b.se == 1 || b.split >= b.se) return; // one split: A has finished the job
    const __half *vbase = a.vc + (int64_t)b.g * a.n_ctx * hd;
    bn_attd_issue_rows(m.vt, vbase, hd, b.j0, min(BN_ATTD_KT, b.j1 - b.j0), b.p);

    bn_pdl_wait();
    bn_pdl_trigger();
    // A warp per head: global max and denominator, the same in every block.
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5, cn = b.j1 - b.j0;
    for (int h = warp; h < qpb; h += nw) {
        const int64_t base = ((int64_t)b.t * a.n_head + b.h0 + h) * a.n_split;
        float mx = -INFINITY;
        for (int s = lane; s < b.se; s += 32) mx = fmaxf(mx, a.smax[base + s]);
        mx = bn_warp_max(mx);
        double tot = 0.0;
        for (int s = lane; s < b.se; s += 32) tot += a.ssum[base + s] * exp((double)a.smax[base + s] - (double)mx);
        tot = bn_warp_sum(tot);
        if (lane == 0) {
            s_max[h] = mx;
            s_inv[h] = (float)(1.0 / tot);
        }
    }
    __syncthreads();
    const float *srow = a.scores + ((int64_t)b.t * a.n_head + b.h0) * a.n_ctx + b.j0;
    for (int i = threadIdx.x; i < qpb * cn; i += blockDim.x) {
        const int h = i / cn, j = i - h * cn;
        const float e = expf(srow[(int64_t)h * a.n_ctx + j] - s_max[h]);
        m.sc[h * a.cstride + j] = __half2float(__float2half_rn(e * s_inv[h])); // bitnet.cpp rounds p to f16
    }
    if (b.j0 <= b.p && b.p < b.j1) // the token's own V row, written by A
        for (int d = threadIdx.x; d < hd; d += blockDim.x) m.vcur[d] = __half2float(vbase[(int64_t)b.p * hd + d]);
    __syncthreads();
    float *op = a.opart + ((int64_t)b.t * a.n_head + b.h0) * a.n_split * hd;
    bn_attd_pv(a, b, m, true, [&](int o, float v) {
        const int h = o / hd;
        op[((int64_t)h * a.n_split + b.split) * hd + (o - h * hd)] = v;
    });

    // The group's last split adds the partials, in split order.
    __threadfence();
    __syncthreads();
    unsigned *gc = a.group_counter + b.t * gridDim.x + blockIdx.x;
    if (threadIdx.x == 0) s_last = atomicAdd(gc, 1u) == (unsigned)b.se - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    float *out = a.out + (int64_t)b.t * a.n_head * hd + b.h0 * hd;
    for (int o = threadIdx.x; o < qpb * hd; o += blockDim.x) {
        const int h = o / hd;
        const float *src = op + (int64_t)h * a.n_split * hd + (o - h * hd);
        float sum = 0.f;
        for (int s = 0; s < b.se; s++) sum += __ldcg(src + (int64_t)s * hd);
        out[o] = sum;
    }
    if (threadIdx.x == 0) *gc = 0;
    bn_attd_next_norm(a, attd_smem);
}

int bn_cuda_attd_heads_per_block(int n_head, int n_head_kv) {
    const int G = n_head / n_head_kv;
    int qpb = G < BN_ATTD_QPB ? G : BN_ATTD_QPB;
    while (G % qpb) qpb--;
    return qpb;
}

int bn_cuda_attd_splits(int n_ctx) {
    const int s = (n_ctx + BN_ATTD_CHUNK - 1) / BN_ATTD_CHUNK;
    return s < 1 ? 1 : s > 256 ? 256 : s;
}

// Keys a split holds at most: BN_ATTD_CHUNK, or more when n_split caps the splits.
static int chunk_cap(int n_ctx, int n_split) {
    const int c = (n_ctx + n_split - 1) / n_split;
    return c > BN_ATTD_CHUNK ? c : BN_ATTD_CHUNK;
}

size_t bn_cuda_attd_scratch_bytes(int n_tok, int n_head, int hd, int n_ctx, int n_split) {
    const size_t th = (size_t)n_tok * n_head;
    return th * n_ctx * sizeof(float) + th * n_split * (sizeof(float) + sizeof(double)) +
           th * n_split * hd * sizeof(float) + 4 * 256;
}

cudaError_t bn_cuda_attention_decode(const float *qkv, int64_t ldqkv, const int32_t *pos, int n_tok,
                                     int n_head, int n_head_kv, int hd, int n_rot,
                                     float theta_scale, int n_ctx, int n_split, __half *k_cache,
                                     __half *v_cache, void *scratch, unsigned *group_counters,
                                     float *out, const bn_cuda_next_norm *nn, bool pdl,
                                     cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (hd <= 0 || hd > 256 || hd % 8 || n_rot <= 0 || n_rot > hd || n_rot % 2 || n_head_kv <= 0 ||
        n_head % n_head_kv || n_split <= 0 || n_ctx <= 0)
        return cudaErrorInvalidValue;
    bn_attd_args a;
    a.qkv = qkv;
    a.ldqkv = ldqkv;
    a.pos = pos;
    a.n_head = n_head;
    a.n_head_kv = n_head_kv;
    a.hd = hd;
    a.n_rot = n_rot;
    a.qpb = bn_cuda_attd_heads_per_block(n_head, n_head_kv);
    a.n_ctx = n_ctx;
    a.n_split = n_split;
    a.cstride = chunk_cap(n_ctx, n_split);
    a.theta_scale = theta_scale;
    a.kc = k_cache;
    a.vc = v_cache;
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
    a.out = out;
    a.group_counter = group_counters;
    bn_cuda_next_norm none = {};
    a.nn = nn ? *nn : none;
    size_t smem = sizeof(float) * bn_attd_smem_floats(hd, a.qpb, n_rot, a.cstride);
    if (a.nn.w && smem < sizeof(float) * (size_t)n_head * hd) smem = sizeof(float) * (size_t)n_head * hd;
    // Raised once per size (the first use is eager, never inside a graph capture).
    static size_t raised = 48 * 1024;
    if (smem > raised) {
        cudaError_t e = cudaFuncSetAttribute(bn_attd_scores_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e == cudaSuccess)
            e = cudaFuncSetAttribute(bn_attd_values_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        raised = smem;
    }
    const dim3 grid(n_head / a.qpb, n_split, n_tok);
    cudaError_t e = bn_launch(pdl, bn_attd_scores_kernel, grid, dim3(BN_ATTD_THREADS), smem, st, a);
    if (e != cudaSuccess) return e;
    return bn_launch(pdl, bn_attd_values_kernel, grid, dim3(BN_ATTD_THREADS), smem, st, a);
}
