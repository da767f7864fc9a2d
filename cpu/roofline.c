// roofline.c - read bandwidth and int8 multiply-add peak, measured now.
#include "roofline.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/clock.h"
#include "cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#define BN_X86 1
#include <immintrin.h>
#endif

uint64_t bn_cpu_decode_bytes(const bn_model *m, bool int8_head) {
    uint64_t bytes = 0;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const bn_tensor *w[BN_LAYER_TERNARY];
        bn_layer_ternary(&m->layers[l], w);
        for (int i = 0; i < BN_LAYER_TERNARY; i++) bytes += w[i]->nbytes;
    }
    const uint64_t V = m->hp.n_vocab, E = m->hp.n_embd;
    return bytes + (int8_head ? V * E + V * sizeof(float) : m->output.nbytes);
}

static bool float_table(uint32_t type) {
    return type == BN_GGML_F16 || type == BN_GGML_BF16 || type == BN_GGML_F32;
}

int bn_cpu_check_model(const bn_model *m, const char *who, bn_error *err) {
    const bn_hparams *hp = &m->hp;
    if (hp->n_head == 0 || hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0)
        return bn_errorf(err, "%s: %u heads cannot share %u KV heads", who, hp->n_head, hp->n_head_kv);
    if ((uint64_t)hp->n_head * hp->head_dim != hp->n_embd)
        return bn_errorf(err, "%s: %u heads x %u != hidden size %u", who, hp->n_head, hp->head_dim, hp->n_embd);
    if (hp->n_embd % 128 || hp->n_ff % 128)
        return bn_errorf(err, "%s: hidden %u and ffn %u must be multiples of 128 (I2_S)", who, hp->n_embd,
                         hp->n_ff);
    if (!float_table(m->output.type))
        return bn_errorf(err, "%s: LM head type %s not supported", who, bn_ggml_type_name(m->output.type));
    if (!float_table(m->tok_embd.type))
        return bn_errorf(err, "%s: embedding type %s not supported", who, bn_ggml_type_name(m->tok_embd.type));
    return 0;
}

// ---- read bandwidth ----------------------------------------------------------

typedef struct {
    const uint64_t *buf;
    size_t n; // uint64 words
    int avx2;
    uint64_t sums[64];
} bw_job;

#ifdef BN_X86
// 32-byte loads into four independent accumulators: enough loads in flight that
// the memory system, not the core, sets the pace. (Compiled for AVX2 here only;
// called only when the CPU has it.)
__attribute__((target("avx2"))) static uint64_t sum_words_avx2(const uint64_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t s[4];
    _mm256_storeu_si256((__m256i *)s, a);
    uint64_t sum = s[0] + s[1] + s[2] + s[3];
    for (; i < n; i++) sum += p[i];
    return sum;
}
#endif

// Four independent sums: enough loads in flight (vectorized for the target's
// baseline SIMD: SSE2, NEON).
static uint64_t sum_words(const uint64_t *p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a += p[i] + p[i + 4] + p[i + 8] + p[i + 12];
        b += p[i + 1] + p[i + 5] + p[i + 9] + p[i + 13];
        c += p[i + 2] + p[i + 6] + p[i + 10] + p[i + 14];
        d += p[i + 3] + p[i + 7] + p[i + 11] + p[i + 15];
    }
    for (; i < n; i++) a += p[i];
    return a + b + c + d;
}

static void job_bw(void *ctx, int ith, int nth) {
    bw_job *j = ctx;
    const size_t chunk = (j->n / (size_t)nth) & ~(size_t)15;
    const size_t s = chunk * (size_t)ith, e = ith == nth - 1 ? j->n : s + chunk;
#ifdef BN_X86
    if (j->avx2) {
        j->sums[ith & 63] = sum_words_avx2(j->buf + s, e - s);
        return;
    }
#endif
    j->sums[ith & 63] = sum_words(j->buf + s, e - s);
}

double bn_read_bandwidth_gbs(bn_pool *pool, size_t bytes, int reps) {
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    memset(buf, 1, bytes); // fault the pages in
    bw_job j = {.buf = buf, .n = bytes / 8, .avx2 = bn_cpu_detect().avx2};
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = bn_now_ms();
        bn_pool_run(pool, job_bw, &j);
        const double dt = bn_now_ms() - t0;
        if (dt < best) best = dt;
    }
    volatile uint64_t sink = j.sums[0]; // keep the sums alive
    (void)sink;
    free(buf);
    return (double)bytes / (best * 1e-3) / 1e9;
}

// ---- int8 multiply-add peak -----------------------------------------------------

// Independent chains of the int8 instruction (more than its latency x issue
// rate), so only the issue rate counts. Returns int8 MACs done; `acc` keeps them
// alive. vpmaddubsw: 32 u8 x s8 products summed in pairs; vpdpbusd zmm: 64;
// sdot (NEON): 16.
#define PEAK_ITERS 20000000L
#ifdef BN_X86
__attribute__((target("avx2"))) static double macs_maddubs(int32_t *acc) {
    __m256i a[8];
    const __m256i b = _mm256_set1_epi8(1);
    for (int i = 0; i < 8; i++) a[i] = _mm256_set1_epi8((char)(i + 1));
    for (long it = 0; it < PEAK_ITERS; it++)
        for (int i = 0; i < 8; i++) a[i] = _mm256_maddubs_epi16(a[i], b);
    for (int i = 1; i < 8; i++) a[0] = _mm256_add_epi16(a[0], a[i]);
    *acc = _mm256_extract_epi32(a[0], 0);
    return 32.0 * 8 * PEAK_ITERS;
}

__attribute__((target("avx512f,avx512vnni"))) static double macs_dpbusd(int32_t *acc) {
    __m512i a[12];
    const __m512i b = _mm512_set1_epi8(1);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi32(i);
    for (long it = 0; it < PEAK_ITERS; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm512_dpbusd_epi32(a[i], b, b);
    for (int i = 1; i < 12; i++) a[0] = _mm512_add_epi32(a[0], a[i]);
    *acc = _mm512_reduce_add_epi32(a[0]);
    return 64.0 * 12 * PEAK_ITERS;
}

#endif

typedef struct {
    int vnni, amx;
    double macs[64];
    int32_t acc[64];
} peak_job;

static void job_peak(void *ctx, int ith, int nth) {
    (void)nth;
    peak_job *j = ctx;
    int32_t *acc = &j->acc[ith & 63];
#ifdef BN_X86
    // A tdpbusd does 16384 MACs (256 zmm vpdpbusd's) in about 16 cycles.
    j->macs[ith & 63] = j->amx ? bn_amx_peak_macs(PEAK_ITERS / 4, acc)
                      : j->vnni ? macs_dpbusd(acc)
                                : macs_maddubs(acc);
#elif defined(__aarch64__)
    j->macs[ith & 63] = bn_neon_peak_macs(PEAK_ITERS, acc);
#else
    *acc = 0;
    j->macs[ith & 63] = 0;
#endif
}

// Whether this CPU runs the instruction of `kernels` (bn_int8_mac_peak_gops).
static bool peak_runs(const char *kernels) {
    const bn_cpu_features feat = bn_cpu_detect();
#ifdef BN_X86
    if (!strcmp(kernels, "amx")) return feat.amx && bn_cpu_amx_permit();
    if (!strcmp(kernels, "avx512")) return feat.avx512;
    return !strcmp(kernels, "avx2") && feat.avx2;
#else
    return !strcmp(kernels, "neon") && feat.neon;
#endif
}

double bn_int8_mac_peak_gops(bn_pool *pool, const char *kernels) {
    if (!peak_runs(kernels)) return 0;
    peak_job j = {.vnni = !strcmp(kernels, "avx512"), .amx = !strcmp(kernels, "amx")};
    // Best of 5: on a shared VM one pass in a few loses a core to the host.
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        const double t0 = bn_now_ms();
        bn_pool_run(pool, job_peak, &j);
        const double dt = bn_now_ms() - t0;
        if (dt < best) best = dt;
    }
    double macs = 0;
    for (int i = 0; i < bn_pool_size(pool) && i < 64; i++) macs += j.macs[i];
    return macs / (best * 1e-3) / 1e9;
}
