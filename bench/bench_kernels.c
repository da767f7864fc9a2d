// bench_kernels.c - CPU kernel roofline for the BitNet b1.58 2B-4T shapes.
//
// In one run:
//   1. the machine's read bandwidth: a sum over a 1 GiB buffer, 1 thread and -t N;
//   2. each decode GEMV (n = 1) of the 2B-4T shapes with random weights: time,
//      GB/s and % of the measured bandwidth. Every call reads weights nobody read
//      just before (the shapes are cut from a 521 MB pool in turn), so the numbers
//      are DRAM streaming, not a cached 2 MB matrix;
//   3. the decode step: bytes per token / bandwidth (the roofline) against the sum
//      of those GEMV times over 30 layers + the f16 LM head, and against one timed
//      run of the whole step in model order;
//   3c. the opt-in int8 LM head (--lm-head q8): the i8 GEMV over a 128256x2560 int8
//      matrix, and the decode step it implies against the f16 roofline;
//   3d. attention: one token's 20 query heads (5 KV groups of 4) over a 512-row f16
//      KV cache, as the kernel is called in prefill (whole groups), in us;
//   4. prefill: the 7 ternary GEMMs of a layer at n = 64 tokens, in GOPS (int8
//      MACs/s) and the tok/s that implies for 30 layers (LM head and attention not
//      counted), against the machine's int8 multiply-add peak measured here: the
//      kernel set's instruction (vpmaddubsw; vpdpbusd on AVX-512 VNNI, tdpbusd
//      on AMX, sdot on NEON) issued
//      back to back on every thread, operands in registers.
// Kernel sets: every one this CPU runs (scalar, avx2, avx512, amx; on AArch64
// scalar, neon), or -k NAME.
// Usage: bench_kernels [-t THREADS] [-k scalar|avx2|avx512|amx|neon] [--json]
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "clock.h"
#include "cpu_features.h"
#include "half.h"
#include "kernels.h"
#include "roofline.h"
#include "threadpool.h"

// 2B-4T shapes (docs/architecture.md). Hard-coded here on purpose: this bench is about that model.
#define HID 2560
#define FFN 6912
#define KV 640 // 5 kv heads x 128
#define LAYERS 30
#define VOCAB 128256
#define PREFILL_N 64

typedef struct {
    const char *name;
    int64_t rows, K;
    int per_layer; // how many matrices of this shape per layer
} shape;

static const shape shapes[] = {
    {"attn_q/o 2560x2560", HID, HID, 2},
    {"attn_k/v 640x2560", KV, HID, 2},
    {"ffn_gate/up 6912x2560", FFN, HID, 2},
    {"ffn_down 2560x6912", HID, FFN, 1},
};
#define N_SHAPES (int)(sizeof shapes / sizeof *shapes)

// ---- work split over the pool ------------------------------------------------

typedef struct {
    const bn_cpu_kernels *k;
    const uint8_t *w;
    const uint16_t *wh;
    int64_t K, rows;
    const int8_t *q;
    const int32_t *qsum;
    const float *x;
    const int8_t *wi; // int8 LM head
    int n;
    int32_t *y;
    float *yf;
} job;

// Rows in multiples of 4 so every thread keeps the kernels' 4-row tiles.
static void split(int64_t rows, int ith, int nth, int64_t *r0, int64_t *r1) {
    const int64_t chunk = ((rows + nth - 1) / nth + 3) & ~(int64_t)3;
    *r0 = chunk * ith < rows ? chunk * ith : rows;
    *r1 = *r0 + chunk < rows ? *r0 + chunk : rows;
}

static void job_ternary(void *ctx, int ith, int nth) {
    job *j = ctx;
    int64_t r0, r1;
    split(j->rows, ith, nth, &r0, &r1);
    if (r0 < r1) j->k->ternary_gemm(j->w, j->K, r0, r1, j->q, j->qsum, j->n, j->y, j->rows);
}

static void job_f16(void *ctx, int ith, int nth) {
    job *j = ctx;
    int64_t r0, r1;
    split(j->rows, ith, nth, &r0, &r1);
    if (r0 < r1) j->k->f16_gemv(j->wh, j->K, r0, r1, j->x, j->yf);
}

static void job_i8(void *ctx, int ith, int nth) {
    job *j = ctx;
    int64_t r0, r1;
    split(j->rows, ith, nth, &r0, &r1);
    if (r0 < r1) j->k->i8_gemv(j->wi, j->K, r0, r1, j->q, j->y);
}

// ---- helpers -----------------------------------------------------------------

static void fill_random(void *p, size_t bytes, uint64_t seed) {
    uint64_t s = seed | 1, *w = p;
    for (size_t i = 0; i < bytes / 8; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        w[i] = s * 0x2545F4914F6CDD1DULL;
    }
}

static void *xmalloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n) != 0) {
        fprintf(stderr, "bench_kernels: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

typedef struct {
    const char *kernels;
    double gemv_ms[N_SHAPES], gemv_gbs[N_SHAPES];
    double head_ms, head_gbs;
    double head_q8_ms, head_q8_gbs; // int8 LM head
    double att_us;                  // 20 heads x 512 keys
    double sum_ms, step_ms, roofline_ms;
    double prefill_gops, prefill_tps;
    double mac_peak_gops; // int8 multiply-add peak of this kernel set's instruction (0: scalar)
    double cached_tern_gbs, cached_f16_gbs; // same GEMV on cache-resident weights
} result;

int main(int argc, char **argv) {
    int threads = 1, json = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: %s [-t THREADS] [-k scalar|avx2|avx512|amx|neon] [--json]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "bench_kernels: -t must be 1..64\n");
        return 2;
    }
    const bn_cpu_kernels *sets[8];
    int n_sets = 0;
    bn_error err;
    for (const char *const *name = bn_cpu_kernel_sets; *name && n_sets < 8; name++) {
        if (only && strcmp(only, *name) != 0) continue;
        if (bn_cpu_kernels_select(*name, &sets[n_sets], &err) == 0) n_sets++;
        else if (only) {
            fprintf(stderr, "bench_kernels: %s\n", err.msg);
            return 1;
        }
    }
    if (only && n_sets == 0) {
        fprintf(stderr, "bench_kernels: unknown kernel set '%s'\n", only);
        return 1;
    }

    bn_pool *pool1 = NULL, *pool = NULL;
    if (bn_pool_create(1, &pool1, &err) != 0 || bn_pool_create(threads, &pool, &err) != 0) {
        fprintf(stderr, "bench_kernels: %s\n", err.msg);
        return 1;
    }

    // 1. read bandwidth
    const double bw1 = bn_read_bandwidth_gbs(pool1, (size_t)1 << 30, 4);
    const double bwn = bn_read_bandwidth_gbs(pool, (size_t)1 << 30, 4);
    if (bw1 <= 0 || bwn <= 0) {
        fprintf(stderr, "bench_kernels: out of memory for the 1 GiB bandwidth buffer\n");
        return 1;
    }

    // Weights: all ternary matrices of the model as one pool (I2_S rows are just
    // bytes, so any window of it is a valid matrix) plus the f16 LM head.
    int64_t tern_bytes = 0;
    for (int s = 0; s < N_SHAPES; s++)
        tern_bytes += shapes[s].per_layer * shapes[s].rows * shapes[s].K / 4;
    const int64_t layer_bytes = tern_bytes;
    tern_bytes *= LAYERS;
    const int64_t head_bytes = (int64_t)VOCAB * HID * 2;
    uint8_t *tern = xmalloc((size_t)tern_bytes);
    uint16_t *head = xmalloc((size_t)head_bytes);
    fill_random(tern, (size_t)tern_bytes, 1);
    // Random f16 in [-1, 1): finite values, so the FMAs run at normal speed.
    for (int64_t i = 0; i < (int64_t)VOCAB * HID; i++)
        head[i] = (uint16_t)(0x3800u | ((uint32_t)(i * 2654435761u) >> 22) | ((i & 1) << 15));

    int8_t *q = xmalloc((size_t)FFN * PREFILL_N);
    int32_t qsum[PREFILL_N];
    fill_random(q, (size_t)FFN * PREFILL_N, 7);
    for (int t = 0; t < PREFILL_N; t++) {
        qsum[t] = 0;
        for (int k = 0; k < FFN; k++) qsum[t] += q[t * FFN + k];
    }
    float *x = xmalloc(sizeof(float) * HID);
    for (int i = 0; i < HID; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    int32_t *y = xmalloc(sizeof(int32_t) * (size_t)(FFN * PREFILL_N > VOCAB ? FFN * PREFILL_N : VOCAB));
    const int64_t head_q8_bytes = (int64_t)VOCAB * HID;
    int8_t *head_q8 = xmalloc((size_t)head_q8_bytes);
    fill_random(head_q8, (size_t)head_q8_bytes, 3);
    float *yf = xmalloc(sizeof(float) * VOCAB);

    const double step_bytes = (double)tern_bytes + (double)head_bytes;
    result res[sizeof sets / sizeof *sets];
    for (int si = 0; si < n_sets; si++) {
        const bn_cpu_kernels *k = sets[si];
        result *R = &res[si];
        memset(R, 0, sizeof *R);
        R->kernels = k->name;
        const int slow = !strcmp(k->name, "scalar");

        // 2. GEMVs. A pass walks the whole 521 MB pool in windows of the shape, so
        // each call streams weights from DRAM; GB/s = bytes / time of the pass.
        // Best of 3 passes, like the bandwidth, so both see the same kind of window.
        for (int s = 0; s < N_SHAPES; s++) {
            const int64_t mb = shapes[s].rows * shapes[s].K / 4;
            const int64_t calls = slow ? 8 : tern_bytes / mb;
            double best = 1e30;
            for (int pass = 0; pass < (slow ? 1 : 3); pass++) {
                const double t0 = bn_now_ms();
                for (int64_t c = 0; c < calls; c++) {
                    job j = {.k = k, .w = tern + c * mb, .K = shapes[s].K, .rows = shapes[s].rows,
                             .q = q, .qsum = qsum, .n = 1, .y = y};
                    bn_pool_run(pool, job_ternary, &j);
                }
                const double dt = (bn_now_ms() - t0) / (double)calls;
                if (dt < best) best = dt;
            }
            R->gemv_ms[s] = best;
            R->gemv_gbs[s] = (double)mb / (best * 1e-3) / 1e9;
        }
        {
            job j = {.k = k, .wh = head, .K = HID, .rows = VOCAB, .x = x, .yf = yf};
            double best = 1e30;
            for (int c = 0; c < (slow ? 1 : 3); c++) {
                const double t0 = bn_now_ms();
                bn_pool_run(pool, job_f16, &j);
                const double dt = bn_now_ms() - t0;
                if (dt < best) best = dt;
            }
            R->head_ms = best;
            R->head_gbs = (double)head_bytes / (best * 1e-3) / 1e9;
        }

        {
            job j = {.k = k, .wi = head_q8, .K = HID, .rows = VOCAB, .q = q, .y = y};
            double best = 1e30;
            for (int c = 0; c < (slow ? 1 : 3); c++) {
                const double t0 = bn_now_ms();
                bn_pool_run(pool, job_i8, &j);
                const double dt = bn_now_ms() - t0;
                if (dt < best) best = dt;
            }
            R->head_q8_ms = best;
            R->head_q8_gbs = (double)head_q8_bytes / (best * 1e-3) / 1e9;
        }

        {
            // 5 KV heads x 128 dims per cache row, as in the 2B-4T model.
            enum { ATT_KV = 512, ATT_HD = 128, ATT_GROUP = 4, ATT_KVH = 5 };
            uint16_t *kc = xmalloc(sizeof(uint16_t) * ATT_KV * KV);
            uint16_t *vc = xmalloc(sizeof(uint16_t) * ATT_KV * KV);
            float *aq = xmalloc(sizeof(float) * HID), *ao = xmalloc(sizeof(float) * HID);
            float *sc = xmalloc(sizeof(float) * ATT_GROUP * ATT_KV);
            for (int i = 0; i < ATT_KV * KV; i++) {
                kc[i] = bn_f32_to_f16((float)((i * 37) % 101) / 101.0f - 0.5f);
                vc[i] = bn_f32_to_f16((float)((i * 53) % 97) / 97.0f - 0.5f);
            }
            for (int i = 0; i < HID; i++) aq[i] = (float)((i * 29) % 31) / 31.0f - 0.5f;
            double best = 1e30;
            for (int rep = 0; rep < (slow ? 3 : 50); rep++) {
                const double t0 = bn_now_ms();
                for (int g = 0; g < ATT_KVH; g++)
                    k->attention(aq + g * ATT_GROUP * ATT_HD, ATT_GROUP, kc + g * ATT_HD,
                                 vc + g * ATT_HD, KV, ATT_HD, ATT_KV, 0.088f, sc,
                                 ao + g * ATT_GROUP * ATT_HD);
                const double dt = bn_now_ms() - t0;
                if (dt < best) best = dt;
            }
            R->att_us = best * 1e3;
            free(kc);
            free(vc);
            free(aq);
            free(ao);
            free(sc);
        }

        // 3. decode step: the sum of the parts, and the whole step in model order.
        R->sum_ms = R->head_ms;
        for (int s = 0; s < N_SHAPES; s++) R->sum_ms += LAYERS * shapes[s].per_layer * R->gemv_ms[s];
        R->roofline_ms = step_bytes / (bwn * 1e9) * 1e3;
        {
            double best = 1e30;
            for (int rep = 0; rep < (slow ? 1 : 3); rep++) {
                const double t0 = bn_now_ms();
                int64_t o = 0;
                for (int l = 0; l < LAYERS; l++)
                    for (int s = 0; s < N_SHAPES; s++)
                        for (int m = 0; m < shapes[s].per_layer; m++) {
                            const int64_t mb = shapes[s].rows * shapes[s].K / 4;
                            job j = {.k = k, .w = tern + o, .K = shapes[s].K,
                                     .rows = shapes[s].rows, .q = q, .qsum = qsum, .n = 1,
                                     .y = y};
                            o += mb;
                            bn_pool_run(pool, job_ternary, &j);
                        }
                job j = {.k = k, .wh = head, .K = HID, .rows = VOCAB, .x = x, .yf = yf};
                bn_pool_run(pool, job_f16, &j);
                const double dt = bn_now_ms() - t0;
                if (dt < best) best = dt;
            }
            R->step_ms = best;
        }

        // 3b. the same GEMVs on weights that stay in cache (a 2560x2560 ternary matrix,
        // 1.6 MB; 512 rows of the LM head, 2.6 MB): the kernels' compute ceiling,
        // i.e. how much faster DRAM they could keep up with.
        {
            double best = 1e30;
            job j = {.k = k, .w = tern, .K = HID, .rows = HID, .q = q, .qsum = qsum, .n = 1, .y = y};
            for (int c = 0; c < (slow ? 3 : 300); c++) {
                const double t0 = bn_now_ms();
                bn_pool_run(pool, job_ternary, &j);
                const double dt = bn_now_ms() - t0;
                if (dt < best) best = dt;
            }
            R->cached_tern_gbs = (double)HID * HID / 4 / (best * 1e-3) / 1e9;
            best = 1e30;
            job h = {.k = k, .wh = head, .K = HID, .rows = 512, .x = x, .yf = yf};
            for (int c = 0; c < (slow ? 3 : 300); c++) {
                const double t0 = bn_now_ms();
                bn_pool_run(pool, job_f16, &h);
                const double dt = bn_now_ms() - t0;
                if (dt < best) best = dt;
            }
            R->cached_f16_gbs = 512.0 * HID * 2 / (best * 1e-3) / 1e9;
        }

        // 4. prefill: one layer's 7 ternary GEMMs at n = 64 (compute-bound); each
        // layer (distinct weights) is one sample, best of 3 (scalar: 1).
        {
            const int layers = slow ? 1 : 3;
            const double layer_macs = (double)layer_bytes * 4.0 * PREFILL_N;
            double best = 1e30;
            int64_t o = 0;
            for (int l = 0; l < layers; l++) {
                const double t0 = bn_now_ms();
                for (int s = 0; s < N_SHAPES; s++)
                    for (int m = 0; m < shapes[s].per_layer; m++) {
                        const int64_t mb = shapes[s].rows * shapes[s].K / 4;
                        job j = {.k = k, .w = tern + o, .K = shapes[s].K,
                                 .rows = shapes[s].rows, .q = q, .qsum = qsum, .n = PREFILL_N,
                                 .y = y};
                        o += mb;
                        bn_pool_run(pool, job_ternary, &j);
                    }
                const double dt = (bn_now_ms() - t0) * 1e-3;
                if (dt < best) best = dt;
            }
            R->prefill_gops = layer_macs / best / 1e9;
            if (strcmp(k->name, "scalar") != 0)
                R->mac_peak_gops = bn_int8_mac_peak_gops(pool, k->name);
            // tokens/s for the ternary layers only: 64 tokens per 30 layers' time
            R->prefill_tps = PREFILL_N / (best * LAYERS);
        }
    }

    if (json) {
        printf("{\"threads\": %d, \"read_gbs_1t\": %.2f, \"read_gbs\": %.2f, "
               "\"step_bytes\": %.0f, \"layer_ternary_bytes\": %lld, \"kernels\": [",
               threads, bw1, bwn, step_bytes, (long long)layer_bytes);
        for (int si = 0; si < n_sets; si++) {
            const result *R = &res[si];
            printf("%s{\"name\": \"%s\", \"gemv\": [", si ? ", " : "", R->kernels);
            for (int s = 0; s < N_SHAPES; s++)
                printf("%s{\"shape\": \"%s\", \"ms\": %.4f, \"gbs\": %.2f, \"pct_bw\": %.1f}",
                       s ? ", " : "", shapes[s].name, R->gemv_ms[s], R->gemv_gbs[s],
                       100.0 * R->gemv_gbs[s] / bwn);
            printf("], \"lm_head_ms\": %.3f, \"lm_head_gbs\": %.2f, \"decode_sum_ms\": %.3f, "
                   "\"decode_step_ms\": %.3f, \"roofline_ms\": %.3f, \"pct_roofline\": %.1f, "
                   "\"prefill_gops\": %.2f, \"prefill_tok_s\": %.1f, \"int8_mac_peak_gops\": %.1f, "
                   "\"cached_ternary_gbs\": %.2f, \"cached_f16_gbs\": %.2f, "
                   "\"lm_head_q8_ms\": %.3f, \"lm_head_q8_gbs\": %.2f, \"decode_sum_q8_ms\": %.3f, "
                   "\"attention_us\": %.1f}",
                   R->head_ms, R->head_gbs, R->sum_ms, R->step_ms, R->roofline_ms,
                   100.0 * R->roofline_ms / R->step_ms, R->prefill_gops, R->prefill_tps,
                   R->mac_peak_gops, R->cached_tern_gbs, R->cached_f16_gbs, R->head_q8_ms, R->head_q8_gbs,
                   R->sum_ms - R->head_ms + R->head_q8_ms, R->att_us);
        }
        printf("]}\n");
    } else {
        printf("read bandwidth (1 GiB sum): 1 thread %.1f GB/s, %d threads %.1f GB/s\n", bw1,
               threads, bwn);
        printf("decode bytes/token: %.0f MB ternary + %.0f MB f16 LM head = %.0f MB; "
               "roofline %.2f ms/token at %d threads\n\n",
               (double)tern_bytes / 1e6, (double)head_bytes / 1e6, step_bytes / 1e6,
               step_bytes / (bwn * 1e9) * 1e3, threads);
        for (int si = 0; si < n_sets; si++) {
            const result *R = &res[si];
            printf("kernels %-7s threads %d\n", R->kernels, threads);
            printf("  %-26s %10s %8s %8s\n", "GEMV (n=1)", "ms", "GB/s", "% bw");
            for (int s = 0; s < N_SHAPES; s++)
                printf("  %-26s %10.4f %8.2f %7.1f%%\n", shapes[s].name, R->gemv_ms[s],
                       R->gemv_gbs[s], 100.0 * R->gemv_gbs[s] / bwn);
            printf("  %-26s %10.3f %8.2f %7.1f%%\n", "lm_head f16 128256x2560", R->head_ms,
                   R->head_gbs, 100.0 * R->head_gbs / bwn);
            printf("  %-26s %10.3f %8.2f %7.1f%%\n", "lm_head i8 128256x2560", R->head_q8_ms,
                   R->head_q8_gbs, 100.0 * R->head_q8_gbs / bwn);
            printf("  decode step: roofline %.2f ms, sum of GEMVs %.2f ms (%.1f%%), "
                   "whole step %.2f ms (%.1f%%) -> %.2f tok/s\n",
                   R->roofline_ms, R->sum_ms, 100.0 * R->roofline_ms / R->sum_ms, R->step_ms,
                   100.0 * R->roofline_ms / R->step_ms, 1e3 / R->step_ms);
            const double q8_sum = R->sum_ms - R->head_ms + R->head_q8_ms;
            printf("  decode step, int8 head: sum of GEMVs %.2f ms = %.0f%% of the f16 roofline "
                   "(%.2f ms for %.0f MB)\n",
                   q8_sum, 100.0 * R->roofline_ms / q8_sum,
                   (step_bytes - head_bytes + head_q8_bytes) / (bwn * 1e9) * 1e3,
                   (step_bytes - head_bytes + head_q8_bytes) / 1e6);
            printf("  attention, 20 heads x 512 keys (one thread): %.1f us\n", R->att_us);
            printf("  prefill n=%d: %.1f GOPS (int8 MAC/s) -> %.1f tok/s (ternary layers only)\n",
                   PREFILL_N, R->prefill_gops, R->prefill_tps);
            if (R->mac_peak_gops > 0)
                printf("  int8 MAC peak (%s, operands in registers): %.1f G/s -> prefill GEMM at "
                       "%.0f%% of it\n",
                       !strcmp(R->kernels, "amx")      ? "tdpbusd"
                       : !strcmp(R->kernels, "avx512") ? "vpdpbusd"
                       : !strcmp(R->kernels, "neon")   ? "sdot"
                                                         : "vpmaddubsw",
                       R->mac_peak_gops,
                       100.0 * R->prefill_gops / R->mac_peak_gops);
            printf("  compute ceiling (weights in cache): ternary GEMV %.1f GB/s, f16 GEMV %.1f GB/s\n\n",
                   R->cached_tern_gbs, R->cached_f16_gbs);
        }
    }
    free(tern);
    free(head);
    free(head_q8);
    free(q);
    free(x);
    free(y);
    free(yf);
    bn_pool_destroy(pool1);
    bn_pool_destroy(pool);
    return 0;
}
