// top_rows.cu - the BN_TOP_MAX best entries of each row of logits (core/top.h:
// logit down, the lower id first among equal logits, -0 equal to +0), so that a
// sampled step copies 1 KB a row to the host instead of the row.
//
// One block a row. A float's bits, with the sign bit flipped for positives and
// all bits for negatives, order as the floats do (-0 is first made +0), so the
// k-th best key is found as a radix select, eight bits at a time from the top:
// each pass counts the row's keys under the prefix found so far, 256 bins in
// shared memory, and one thread walks the bins down to the one where the count
// reaches k. Then the entries whose key is above that key (fewer than k) and,
// of those equal to it, the lowest ids (each thread owns a run of consecutive
// ids, so a prefix sum over threads ranks the equal ones in id order) go to
// shared memory, and each of the k finds its place by counting the entries
// that come before it. Exact: the order is the one bn_top_select gives.
// With sums, a last pass adds up the row's e^(x - best) in double (the terms
// under e^-BN_TOP_EXP_FLOOR left out), the softmax's denominator that a
// draft's p-min test reads: bn_top_exp_sum's terms, in a block's order.
// CPU twins: bn_top_select and bn_top_exp_sum (core/top.c).
#include "cuda_kernels.cuh"
#include "reduce.cuh"

#define BN_TOP_THREADS 1024

__device__ __forceinline__ uint32_t bn_top_key(float x) {
    const uint32_t u = __float_as_uint(x + 0.0f); // -0 -> +0
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

__global__ void __launch_bounds__(BN_TOP_THREADS)
bn_top_rows_kernel(const float *__restrict__ logits, int64_t ld, int n, bn_top *__restrict__ out,
                   double *__restrict__ sums) {
    __shared__ unsigned hist[256];
    __shared__ double s_red[32];
    __shared__ float s_best;
    __shared__ uint32_t s_prefix;
    __shared__ int s_need, s_gt;
    __shared__ int s_eq_base[BN_TOP_THREADS / 32];
    __shared__ bn_top s_top[BN_TOP_MAX];
    const float *x = logits + blockIdx.x * ld;
    const int k = n < BN_TOP_MAX ? n : BN_TOP_MAX;
    const int tid = threadIdx.x;
    if (tid == 0) {
        s_prefix = 0;
        s_need = k;
    }
    // The k-th best key, eight bits a pass: prefix holds the bits found, mask says which.
    uint32_t mask = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = tid; b < 256; b += blockDim.x) hist[b] = 0;
        __syncthreads();
        const uint32_t prefix = s_prefix;
        for (int i = tid; i < n; i += blockDim.x) {
            const uint32_t key = bn_top_key(x[i]);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            int need = s_need, b = 255;
            for (; b > 0 && (int)hist[b] < need; b--) need -= (int)hist[b];
            s_need = need; // how many of the keys in bin b are still wanted
            s_prefix = prefix | ((uint32_t)b << shift);
        }
        mask |= 255u << shift;
        __syncthreads();
    }
    const uint32_t kth = s_prefix; // the k-th best key; s_need of the entries equal to it are wanted
    const int need_eq = s_need;
    if (tid == 0) s_gt = 0;
    __syncthreads();
    // Entries above the k-th key: fewer than k, in any order for now.
    for (int i = tid; i < n; i += blockDim.x) {
        const float v = x[i];
        if (bn_top_key(v) > kth) s_top[atomicAdd(&s_gt, 1)] = bn_top{i, v};
    }
    // Entries equal to it: the need_eq lowest ids, ranked by a prefix sum over
    // threads that each own a run of consecutive ids.
    const int per = (n + blockDim.x - 1) / blockDim.x, lo = tid * per, hi = min(n, lo + per);
    int eq = 0;
    for (int i = lo; i < hi; i++) eq += bn_top_key(x[i]) == kth;
    int incl = eq; // inclusive scan within the warp, then across warps
    const int lane = tid & 31, warp = tid >> 5;
    for (int o = 1; o < 32; o <<= 1) {
        const int v = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += v;
    }
    if (lane == 31) s_eq_base[warp] = incl;
    __syncthreads();
    if (tid == 0) {
        int run = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) {
            const int c = s_eq_base[w];
            s_eq_base[w] = run;
            run += c;
        }
    }
    __syncthreads();
    int rank = s_eq_base[warp] + incl - eq; // equal entries before this thread's run
    const int gt = s_gt;                    // all entries above were counted before the barriers
    for (int i = lo; i < hi && rank < need_eq; i++)
        if (bn_top_key(x[i]) == kth) s_top[gt + rank++] = bn_top{i, x[i]};
    __syncthreads();
    // Each entry's place: how many of the k come before it, by key (the order
    // of the floats, -0 as +0), which ranks a NaN too, so that every place is
    // taken once even in a row that holds one.
    if (tid < k) {
        const bn_top e = s_top[tid];
        const uint32_t ke = bn_top_key(e.logit);
        int place = 0;
        for (int j = 0; j < k; j++) {
            const uint32_t kf = bn_top_key(s_top[j].logit);
            place += kf > ke || (kf == ke && s_top[j].id < e.id);
        }
        out[(int64_t)blockIdx.x * BN_TOP_MAX + place] = e;
        if (place == 0) s_best = e.logit;
    } else if (tid < BN_TOP_MAX) {
        out[(int64_t)blockIdx.x * BN_TOP_MAX + tid] = bn_top{-1, -INFINITY}; // a row shorter than BN_TOP_MAX
    }
    if (!sums) return; // the same for the whole block
    __syncthreads();
    const float best = s_best, floor = best - BN_TOP_EXP_FLOOR;
    double sum = 0;
    for (int i = tid; i < n; i += blockDim.x)
        if (x[i] > floor) sum += exp((double)x[i] - best);
    sum = bn_block_sum(sum, s_red);
    if (tid == 0) sums[blockIdx.x] = sum;
}

cudaError_t bn_cuda_top_rows(const float *logits, int rows, int64_t ld, int n, bn_top *out, double *sums,
                             cudaStream_t st) {
    if (n <= 0 || rows < 0 || (rows > 1 && ld < n)) return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    bn_top_rows_kernel<<<rows, BN_TOP_THREADS, 0, st>>>(logits, ld, n, out, sums);
    return cudaGetLastError();
}
