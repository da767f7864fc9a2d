// decode_persistent.cu - every layer of a decode token in one persistent kernel.
//
// At batch 1 the kernel-per-operation decode spends its time between kernels,
// not in them: on an H200 a layer's attention and four GEMVs took 45 us in a
// step where their bytes need 4, and docs/cuda-performance.md estimates that a
// graph of six kernels a layer stays near 0.7 ms a step even with each kernel at
// its floor. Here one block per multiprocessor runs the whole stack of layers:
// - Each block owns a fixed run of rows of each of a layer's four matrices and
//   reads them as one stream of chunks through a ring of BN_PERSIST_STAGES
//   shared-memory stages (persist_plan.h), in the order the phases use them. As
//   soon as a chunk has been used, the block starts copying the chunk
//   BN_PERSIST_STAGES further on into its stage (cp.async, one group a chunk,
//   so "wait until the oldest chunk is in" is always cp.async.wait_group
//   BN_PERSIST_STAGES - 1): the weight stream runs a ring ahead of the phases
//   and never stops for a launch or a barrier.
// - Phases of a layer, separated by grid-wide barriers: Q|K|V, attention, O
//   (+= x), gate|up, down (+= x). Each bitlinear phase normalizes and quantizes
//   its whole input in every block (norm_quant.cuh, 512 threads: the codes of
//   the GEMV prologue, bit for bit) and computes its rows (gemv_block.cuh).
//   Attention takes the form the kernel-per-operation step would take at this
//   position: below short_below (BITNET_CUDA_ATTD_SHORT) one phase running
//   attention_decode_short.cu's block on n_head/qpb blocks (bn_atts_block; the
//   cache rows before pos come from global memory, prefetched into L2 during
//   the Q|K|V phase, instead of shared tiles, and the new key and value row from
//   a shared copy), else two phases running the split pair's kernels A and B
//   (attention_split.cuh) on every (head block, split), as many per block as it
//   takes. The same arithmetic in the same order, so x after the last layer is
//   bit-identical to the kernel-per-operation step's.
// - The barrier is an arrival counter (release: __threadfence before the
//   atomic; acquire: ld.acquire.gpu in the spin, which also keeps this
//   multiprocessor's L1 from serving rows other blocks have rewritten). A wait
//   past BN_PERSIST_TIMEOUT_NS traps: an error, never a hang. The launch is
//   cooperative, so every block is resident or the launch fails.
// The embedding before and the LM head after stay kernels of their own.
#include "async_copy.cuh"
#include "attention_split.cuh"
#include "cuda_kernels.cuh"
#include "gemv_block.cuh"
#include "norm_quant.cuh"
#include "rope.cuh"

#define BN_PERSIST_THREADS BN_NQ_THREADS
#define BN_PERSIST_TIMEOUT_NS 5000000000ull // 5 s: far above any phase, even under compute-sanitizer

typedef struct bn_persist_args {
    bn_persist_plan plan;
    const bn_cuda_layer *layers; // n_layer, device memory
    int n_layer;
    float eps;
    int o_mode, down_mode;  // nq_mode.h: the O projection's input (its sub-norm, or none) and the down one's (GLU)
    float *x, *qkv, *gu;
    bn_attd_args att;       // the attention's shape, pos, layer 0's cache, out (the O input), split scratch
    int64_t kv_layer;       // halves from one layer's cache to the next
    int short_below;        // positions below it take the one-block attention (<= plan.max_keys)
    unsigned *sync;         // [0] barrier arrivals, [1] blocks done; zero between launches
} bn_persist_args;

__device__ __forceinline__ unsigned long long bn_globaltimer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__device__ __forceinline__ unsigned bn_ld_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// Every block arrives before any leaves; writes before it are seen after it.
// count: arrivals this launch; target: blocks x barriers so far.
__device__ __forceinline__ void bn_grid_barrier(unsigned *count, unsigned target) {
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(count, 1u);
        const unsigned long long t0 = bn_globaltimer();
        while (bn_ld_acquire(count) < target)
            if (bn_globaltimer() - t0 > BN_PERSIST_TIMEOUT_NS) __trap();
        __threadfence();
    }
    __syncthreads();
}

__device__ __forceinline__ const uint8_t *bn_persist_weights(const bn_cuda_layer &C, int i) {
    return i == BN_PERSIST_QKV ? C.wqkv : i == BN_PERSIST_O ? C.wo : i == BN_PERSIST_GU ? C.wgu : C.wdown;
}

// This block's rows [r0, r0 + n) of matrix i (n may be 0 or less for the last blocks).
__device__ __forceinline__ int bn_persist_rows(const bn_persist_plan &p, int i, int *r0) {
    *r0 = blockIdx.x * p.rows[i];
    return min(p.rows[i], p.M[i] - *r0);
}

// Chunk c of this block's rows of matrix i: rows [r0, r0 + n) (n may be 0 or less).
__device__ __forceinline__ int bn_persist_chunk_rows(const bn_persist_plan &p, int i, int c, int *r0) {
    int b0;
    const int n = bn_persist_rows(p, i, &b0);
    *r0 = b0 + c * p.chunk_rows[i];
    return min(p.chunk_rows[i], n - c * p.chunk_rows[i]);
}

__device__ __forceinline__ unsigned char *bn_persist_stage(const bn_persist_plan &p, int g, unsigned char *smem) {
    return smem + (g % BN_PERSIST_STAGES) * p.stage;
}

// Starts copying chunk g of the stream (layer g / layer_chunks, then matrix by
// matrix) into its stage, as one cp.async group (an empty one past the last
// layer: every thread commits the same groups in the same order, which the
// waits count on).
__device__ __forceinline__ void bn_persist_fetch(const bn_persist_args &a, int g, unsigned char *smem) {
    const int l = g / a.plan.layer_chunks;
    if (l < a.n_layer) {
        int i = 0, c = g % a.plan.layer_chunks;
        while (c >= a.plan.chunks[i]) c -= a.plan.chunks[i++];
        const int64_t rowb = a.plan.K[i] / 4;
        int r0;
        const int n = bn_persist_chunk_rows(a.plan, i, c, &r0);
        const int4 *src = reinterpret_cast<const int4 *>(bn_persist_weights(a.layers[l], i) + r0 * rowb);
        int4 *dst = reinterpret_cast<int4 *>(bn_persist_stage(a.plan, g, smem));
        for (int64_t k = threadIdx.x; k < n * rowb / 16; k += blockDim.x) bn_cp_async16(dst + k, src + k);
    }
    bn_cp_async_commit();
}

// Lanes that share a row of a chunk of `rows` rows: the GEMV kernel's choice,
// or more (up to a warp, and no more than the row's 16-byte pieces) until half
// the block has work. The row's sum is an integer, so any split of it gives the
// same result.
__device__ __forceinline__ int bn_persist_lanes(int K, int rows) {
    int G = bn_gemv_lanes_per_row(K);
    while (G < 32 && 2 * G <= K / 64 && rows * G < BN_PERSIST_THREADS / 2) G *= 2;
    return G;
}

// One bitlinear phase: y (+)= W_i . quant(norm(x)) on this block's rows, chunk
// by chunk from the ring (*g: the stream's next chunk, the same in every
// thread), each used chunk's stage refilled at once.
__device__ __forceinline__ void bn_persist_bitlinear(const bn_persist_args &a, int i, const float *x,
                                                     const float *norm_w, int mode, const bn_cuda_rowscale &rs,
                                                     bool add, float *y, unsigned char *smem, int *g) {
    __shared__ float s_sc;
    __shared__ int s_qs;
    const int K = a.plan.K[i];
    int8_t *codes = reinterpret_cast<int8_t *>(smem + a.plan.work);
    float *hs = reinterpret_cast<float *>(smem + a.plan.work + a.plan.codes_bytes);
    float sc;
    int qs;
    bn_block_norm_quant(x, K, norm_w, a.eps, mode, hs, &sc, &qs,
                        [&](int k, int v) { codes[bn_gemv_code_slot(k, K)] = (int8_t)v; });
    if (threadIdx.x == 0) {
        s_sc = sc;
        s_qs = qs;
    }
    const int4 *q = reinterpret_cast<const int4 *>(codes);
    const int G = bn_persist_lanes(K, a.plan.chunk_rows[i]);
    for (int c = 0; c < a.plan.chunks[i]; c++, ++*g) {
        bn_cp_async_wait_group<BN_PERSIST_STAGES - 1>(); // chunk *g: the oldest group in flight
        __syncthreads(); // every thread's copies (and, the first time, the codes) seen by all
        int r0;
        const int n = bn_persist_chunk_rows(a.plan, i, c, &r0);
        const int4 *w = reinterpret_cast<const int4 *>(bn_persist_stage(a.plan, *g, smem));
        switch (G) {
        case 32: bn_gemv_rows<32>(w, K, r0, n, q, 1, &s_sc, &s_qs, rs, add, y, 0); break;
        case 16: bn_gemv_rows<16>(w, K, r0, n, q, 1, &s_sc, &s_qs, rs, add, y, 0); break;
        case 8: bn_gemv_rows<8>(w, K, r0, n, q, 1, &s_sc, &s_qs, rs, add, y, 0); break;
        case 4: bn_gemv_rows<4>(w, K, r0, n, q, 1, &s_sc, &s_qs, rs, add, y, 0); break;
        default: bn_gemv_rows<2>(w, K, r0, n, q, 1, &s_sc, &s_qs, rs, add, y, 0); break;
        }
        __syncthreads(); // the stage is read: the chunk a ring further on may replace it
        bn_persist_fetch(a, *g + BN_PERSIST_STAGES, smem);
    }
}

// The cache rows before pos that layer l's attention (al: its cache) will read, into L2.
__device__ __forceinline__ void bn_persist_prefetch_kv(const bn_attd_args &al, int p) {
    const int G = al.n_head / al.n_head_kv;
    for (int hb = blockIdx.x; hb * al.qpb < al.n_head; hb += gridDim.x) {
        const int64_t base = (int64_t)(hb * al.qpb / G) * al.n_ctx * al.hd, bytes = (int64_t)p * al.hd * 2;
        const char *k = reinterpret_cast<const char *>(al.kc + base), *v = reinterpret_cast<const char *>(al.vc + base);
        for (int64_t o = threadIdx.x * 128; o < bytes; o += blockDim.x * 128) {
            asm volatile("prefetch.global.L2 [%0];" ::"l"(k + o));
            asm volatile("prefetch.global.L2 [%0];" ::"l"(v + o));
        }
    }
}

// The one-block attention at position p (< plan.max_keys) on blocks 0 ..
// n_head/qpb - 1, one group of query heads each; al: this layer's cache.
__device__ __forceinline__ void bn_persist_attention_one(const bn_persist_args &a, const bn_attd_args &al, int p,
                                                         unsigned char *smem) {
    const int h0 = blockIdx.x * al.qpb;
    if (h0 >= al.n_head) return; // uniform across the block
    const int hd = al.hd, qpb = al.qpb, K = a.plan.max_keys;
    if (p >= K) __trap(); // the backend keeps short_below <= max_keys: past it the scores would overflow
    const int64_t base = (int64_t)(h0 / (al.n_head / al.n_head_kv)) * al.n_ctx * hd, row_p = (int64_t)p * hd;
    __half *kc = al.kc + base, *vc = al.vc + base;
    // The working region, as bn_persist_att_bytes counts it (the K and V rows first: 16-byte aligned).
    __half *krow = reinterpret_cast<__half *>(smem + a.plan.work), *vrow = krow + hd;
    float *sq = reinterpret_cast<float *>(vrow + hd);
    float *sc = sq + qpb * hd, *cs = sc + qpb * K, *sn = cs + al.n_rot / 2, *part = sn + al.n_rot / 2;
    bn_rope_table(p, al.n_rot / 2, al.theta_scale, cs, sn);
    __syncthreads();
    bn_atts_block(
        al, 0, h0, p, cs, sn, sq, sc, K, part,
        [&](int d, __half v, bool writer) {
            krow[d] = v;
            if (writer) kc[row_p + d] = v;
        },
        [&](int d, __half v, bool writer) {
            vrow[d] = v;
            if (writer) vc[row_p + d] = v;
        },
        [] {},
        [&](int j, int c) {
            return reinterpret_cast<const uint4 *>(j == p ? krow : kc + (int64_t)j * hd)[c];
        },
        [&](int j, int c) {
            return reinterpret_cast<const uint4 *>(j == p ? vrow : vc + (int64_t)j * hd)[c];
        });
}

// The split pair's two steps, each (head block, split) on block (its index)
// mod gridDim.x, with a grid barrier between them; al: this layer's cache.
__device__ __forceinline__ void bn_persist_attention_split(const bn_persist_args &a, const bn_attd_args &al,
                                                           unsigned char *smem, unsigned *passed) {
    float *sm = reinterpret_cast<float *>(smem + a.plan.work);
    const int n_hb = al.n_head / al.qpb, nv = n_hb * al.n_split;
    for (int v = blockIdx.x; v < nv; v += gridDim.x) { // uniform across the block
        bn_attd_scores_block(al, 0, v % n_hb, v / n_hb, sm);
        __syncthreads(); // sm is the next one's
    }
    bn_grid_barrier(a.sync, ++*passed * gridDim.x);
    for (int v = blockIdx.x; v < nv; v += gridDim.x) {
        bn_attd_values_block(al, 0, v % n_hb, n_hb, v / n_hb, sm);
        __syncthreads();
    }
}

__global__ void __launch_bounds__(BN_PERSIST_THREADS, 1) bn_persist_kernel(bn_persist_args a) {
    extern __shared__ __align__(16) unsigned char smem[];
    for (int g = 0; g < BN_PERSIST_STAGES; g++) bn_persist_fetch(a, g, smem);
    const unsigned nb = gridDim.x;
    const int p = a.att.pos[0]; // the same in every block: every block takes the same phases
    unsigned passed = 0;
    int g = 0; // the weight stream's next chunk
    for (int l = 0; l < a.n_layer; l++) {
        const bn_cuda_layer &C = a.layers[l];
        bn_attd_args al = a.att; // layer l's cache
        al.kc += l * a.kv_layer;
        al.vc += l * a.kv_layer;
        bn_persist_prefetch_kv(al, p);
        bn_persist_bitlinear(a, BN_PERSIST_QKV, a.x, C.attn_norm, 0, C.rs_qkv, false, a.qkv, smem, &g);
        bn_grid_barrier(a.sync, ++passed * nb);
        if (p < a.short_below) bn_persist_attention_one(a, al, p, smem);
        else bn_persist_attention_split(a, al, smem, &passed);
        bn_grid_barrier(a.sync, ++passed * nb);
        bn_persist_bitlinear(a, BN_PERSIST_O, a.att.out, C.attn_sub_norm, a.o_mode, C.rs_o, true, a.x, smem, &g);
        bn_grid_barrier(a.sync, ++passed * nb);
        bn_persist_bitlinear(a, BN_PERSIST_GU, a.x, C.ffn_norm, 0, C.rs_gu, false, a.gu, smem, &g);
        bn_grid_barrier(a.sync, ++passed * nb);
        bn_persist_bitlinear(a, BN_PERSIST_DOWN, a.gu, C.ffn_sub_norm, a.down_mode, C.rs_down, true, a.x, smem,
                             &g);
        if (l + 1 < a.n_layer) bn_grid_barrier(a.sync, ++passed * nb);
    }
    // The last block out resets the counters for the next launch: every block
    // has passed every barrier by then, so none still reads them.
    bn_cp_async_wait_all(); // only empty groups are left
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        if (atomicAdd(&a.sync[1], 1u) == nb - 1) {
            a.sync[0] = 0;
            a.sync[1] = 0;
        }
    }
}

static bool persist_plan(bn_persist_plan *p, int E, int F, int n_head, int n_head_kv, int hd, int n_rot, int n_ctx,
                         int keys_wanted, size_t ring_cap) {
    int sms = 0, optin = 0, coop = 0, dev = 0;
    if (n_head_kv <= 0 || n_head % n_head_kv || cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev) != cudaSuccess || !coop)
        return false;
    // 2 KiB for the kernel's static shared memory (reduction scratch, the input's
    // scale). The kernel's limit is the device's, the same for every backend of the
    // process, so one backend's plan cannot shrink another's.
    const int qpb = bn_cuda_attd_heads_per_block(n_head, n_head_kv), limit = optin - 2048;
    if (!bn_persist_plan_make(p, sms, (size_t)limit, E, F, n_head * hd, n_head_kv * hd, hd, qpb, n_rot, n_ctx,
                              keys_wanted, ring_cap) ||
        cudaFuncSetAttribute(bn_persist_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, limit) != cudaSuccess)
        return false;
    int per_sm = 0; // a cooperative launch needs every block resident at once
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, bn_persist_kernel, BN_PERSIST_THREADS, p->smem) ==
               cudaSuccess &&
           per_sm >= 1;
}

bool bn_cuda_persist_plan(bn_persist_plan *p, int E, int F, int n_head, int n_head_kv, int hd, int n_rot, int n_ctx,
                          int keys_wanted, size_t ring_cap) {
    if (persist_plan(p, E, F, n_head, n_head_kv, hd, n_rot, n_ctx, keys_wanted, ring_cap)) return true;
    // No plan: the kernels run the step. A query that failed on the way leaves its
    // error behind, which the next launch's check would report as its own.
    (void)cudaGetLastError();
    return false;
}

cudaError_t bn_cuda_decode_persistent(const bn_persist_plan *plan, const bn_cuda_layer *layers, int n_layer,
                                      float eps, bn_nq_mode glu, bn_nq_mode sub, float *x, float *qkv, float *att,
                                      float *gu, const int32_t *pos, int n_head, int n_head_kv, int hd, int n_rot,
                                      bool neox, float theta_scale, int n_ctx, __half *k_cache, __half *v_cache,
                                      int64_t kv_layer, int short_below, int n_split, void *attd_scratch,
                                      unsigned *group_counters, unsigned *sync, cudaStream_t st) {
    bn_persist_args a = {};
    const int nq = n_head * hd, nkv = n_head_kv * hd;
    if (!plan || n_layer <= 0 || n_split <= 0 || short_below > plan->max_keys ||
        !bn_attd_args_init(&a.att, qkv, nq + 2 * nkv, pos, n_head, n_head_kv, hd, n_rot, neox, theta_scale, n_ctx,
                           k_cache, v_cache, NULL, 0, att, NULL) ||
        plan->K[BN_PERSIST_O] != nq || plan->M[BN_PERSIST_QKV] != nq + 2 * nkv)
        return cudaErrorInvalidValue;
    a.att.max_keys = plan->max_keys;
    bn_attd_args_split(&a.att, 1, n_split, attd_scratch, group_counters);
    a.short_below = short_below;
    a.plan = *plan;
    a.layers = layers;
    a.n_layer = n_layer;
    a.eps = eps;
    a.o_mode = sub;
    a.down_mode = glu | sub;
    a.x = x;
    a.qkv = qkv;
    a.gu = gu;
    a.kv_layer = kv_layer;
    a.sync = sync;
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeCooperative;
    attr[0].val.cooperative = 1;
    cfg.gridDim = dim3(plan->blocks);
    cfg.blockDim = dim3(BN_PERSIST_THREADS);
    cfg.dynamicSmemBytes = plan->smem;
    cfg.stream = st;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, bn_persist_kernel, a);
}
