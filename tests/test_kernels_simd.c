// test_kernels_simd.c - the SIMD kernel tables against the scalar oracle.
//
// Ternary GEMM must equal bn_ternary_gemm_scalar bit for bit (int32 sums), on
// random weights using all four 2-bit codes (0b11 included: it must read as 0)
// and random int8 activations including -128 and 127, on odd shapes, row ranges
// that do not start at 0 and ldy > rows. The f16 GEMV must agree with the scalar
// within 1e-5 of sum|w*x| (only the summation order differs), on K with tails.
// The int8 GEMV must equal bn_i8_gemv_scalar bit for bit, -128 included. The
// attention must match bn_attention_head: probabilities (left in scores) within
// one f16 ulp - q.k is summed in another order, which can move a probability
// across an f16 rounding boundary - and each output within 1e-5 of sum|p*v| plus
// whatever such a probability step moves it by.
// The AVX2 softmax (inside the attention) must equal bn_softmax bit for bit: both
// take ggml's exp (ggml_math.h) and sum the denominator in the same order.
// silu_mul must equal its scalar twin bit for bit (NaN results: both NaN).
// The NEON set (AArch64 builds; tested under qemu by scripts/test-aarch64.sh)
// must also equal the scalar attention bit for bit, as its activations are the
// scalar set's (kernels_neon.c).
// A table this CPU cannot run, or this build lacks, is skipped with a message
// saying so; the tests of one architecture's kernels alone are built only there.
#include "test_util.h"

#include <math.h>

#include "cpu_features.h"
#include "half.h"
#include "kernels.h"
#include "ops.h"

#define SENTINEL ((int32_t)0x7eadbeef)
#if defined(__x86_64__) || defined(__i386__)
#define BN_TEST_X86 1
#endif
#if defined(BN_TEST_X86) || defined(__aarch64__)
#define BN_TEST_SIMD 1 // a build with SIMD sets (elsewhere the scalar table alone is tested)
#endif

#ifdef BN_TEST_SIMD
static const bn_cpu_kernels *table_or_skip(const char *name) {
    const bn_cpu_kernels *k = NULL;
    bn_error err = {{0}};
    if (bn_cpu_kernels_select(name, &k, &err) != 0) {
        fprintf(stderr, "SKIP: %s kernels not runnable on this CPU: %s\n", name, err.msg);
        return NULL;
    }
    assert_string_equal(k->name, name);
    return k;
}

static void fill_q(int8_t *q, int32_t *qsum, int64_t K, int n, uint64_t *rng) {
    for (int t = 0; t < n; t++) {
        int32_t s = 0;
        for (int64_t k = 0; k < K; k++) {
            const uint64_t r = bn_test_rand(rng);
            // one in 8 is an extreme, so -128/127 show up in every block
            int8_t v = (int8_t)(r >> 24);
            if ((r & 7) == 0) v = (r & 8) ? 127 : -128;
            q[t * K + k] = v;
            s += v;
        }
        qsum[t] = s;
    }
}

// Runs kernel and scalar on the same inputs; checks equality in [row0, row1) and
// that nothing outside it (or in the ldy padding) was written.
static void check_gemm(bn_ternary_gemm_fn fn, const uint8_t *w, int64_t K, int64_t rows,
                       int64_t row0, const int8_t *q, const int32_t *qsum, int n) {
    const int64_t ldy = rows + 3;
    int32_t *y = malloc(sizeof *y * (size_t)(ldy * n));
    int32_t *ref = malloc(sizeof *ref * (size_t)(ldy * n));
    assert_non_null(y);
    assert_non_null(ref);
    for (int64_t i = 0; i < ldy * n; i++) y[i] = ref[i] = SENTINEL;
    fn(w, K, row0, rows, q, qsum, n, y, ldy);
    bn_ternary_gemm_scalar(w, K, row0, rows, q, qsum, n, ref, ldy);
    for (int t = 0; t < n; t++)
        for (int64_t r = 0; r < ldy; r++) {
            const int64_t i = t * ldy + r;
            if (y[i] != ref[i])
                fail_msg("K=%lld rows=%lld row0=%lld n=%d: y[t=%d][r=%lld] = %d, scalar %d",
                         (long long)K, (long long)rows, (long long)row0, n, t, (long long)r,
                         y[i], ref[i]);
        }
    free(y);
    free(ref);
}

static void test_ternary_random(const char *name) {
    const bn_cpu_kernels *k = table_or_skip(name);
    if (!k) skip();
    static const int64_t Ks[] = {128, 128 * 3, 128 * 5, 128 * 21, 128 * 27}; // 27: 2 K pieces
    static const int64_t Rs[] = {1, 7, 16, 33, 48, 131}; // AMX: 16 and 32-row tiles, AVX-512 past them
    // 67: two token blocks (gemm_tiling.h); 16, 32: AMX's whole tiles; 130: two AMX
    // blocks, the second too short for tiles.
    static const int Ns[] = {1, 2, 3, 5, 16, 17, 32, 67, 130};
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
        for (size_t b = 0; b < sizeof Rs / sizeof *Rs; b++) {
            const int64_t K = Ks[a], rows = Rs[b];
            uint8_t *w = malloc((size_t)(rows * K / 4));
            assert_non_null(w);
            for (int64_t i = 0; i < rows * K / 4; i++) w[i] = (uint8_t)(bn_test_rand(&rng) >> 32);
            for (size_t c = 0; c < sizeof Ns / sizeof *Ns; c++) {
                const int n = Ns[c];
                int8_t *q = malloc((size_t)(K * n));
                int32_t *qsum = malloc(sizeof *qsum * (size_t)n);
                assert_non_null(q);
                assert_non_null(qsum);
                fill_q(q, qsum, K, n, &rng);
                check_gemm(k->ternary_gemm, w, K, rows, 0, q, qsum, n);
                const int64_t row0 = rows > 1 ? 1 + (int64_t)(bn_test_rand(&rng) % (uint64_t)(rows - 1)) : 0;
                check_gemm(k->ternary_gemm, w, K, rows, row0, q, qsum, n);
                free(q);
                free(qsum);
            }
            free(w);
        }
}

// Worst cases for the int16 partial sums: every weight +1 or -1 (and 0b11) with
// every activation -128 or 127, over a K whose int16 chunk is exactly at the
// bound (2048: 64 pair sums a lane) and over a long row (the 2B-4T ffn width).
// 33 rows and 20 tokens (the 9 row and 6 token patterns repeated), so that AMX
// runs them on tiles too.
static void check_extremes(const bn_cpu_kernels *k, int64_t K) {
    const int64_t rows = 33;
    const int n = 20;
    static const uint8_t bytes[] = {0x00, 0xaa, 0x55, 0xff, 0xa0, 0x0a, 0xaa, 0x00, 0xe4};
    uint8_t *w = malloc((size_t)(rows * K / 4));
    int8_t *q = malloc((size_t)(K * n));
    int32_t qsum[20];
    assert_non_null(w);
    assert_non_null(q);
    for (int64_t r = 0; r < rows; r++) memset(w + r * K / 4, bytes[r % 9], (size_t)(K / 4));
    static const int8_t qv[6] = {-128, 127, -128, 127, 0, -1};
    for (int t = 0; t < n; t++) {
        memset(q + t * K, (uint8_t)qv[t % 6], (size_t)K);
        if (t % 6 == 2)
            for (int64_t i = 0; i < K; i += 2) q[t * K + i] = 127; // alternate signs
        qsum[t] = 0;
        for (int64_t i = 0; i < K; i++) qsum[t] += q[t * K + i];
    }
    for (int nn = 1; nn <= n; nn++) check_gemm(k->ternary_gemm, w, K, rows, 0, q, qsum, nn);
    // Spot-check the oracle itself on one known answer: all +1 against all -128.
    int32_t y = 0;
    bn_ternary_gemm_scalar(w + 1 * K / 4, K, 0, 1, q, qsum, 1, &y, 1);
    assert_int_equal(y, -128 * K);
    free(w);
    free(q);
}

static void test_ternary_extremes(const char *name) {
    const bn_cpu_kernels *k = table_or_skip(name);
    if (!k) skip();
    check_extremes(k, 2048);
    check_extremes(k, 6912);
}

static void test_f16(const char *name) {
    const bn_cpu_kernels *k = table_or_skip(name);
    if (!k) skip();
    static const int64_t Ks[] = {1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 2560, 2563, 6912 + 5};
    static const int64_t Rs[] = {1, 3, 5, 37};
    uint64_t rng = 0x1234567ULL;
    for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
        for (size_t b = 0; b < sizeof Rs / sizeof *Rs; b++) {
            const int64_t K = Ks[a], rows = Rs[b];
            uint16_t *w = malloc(sizeof *w * (size_t)(rows * K));
            float *x = malloc(sizeof *x * (size_t)K);
            float *y = malloc(sizeof *y * (size_t)(rows + 1));
            float *ref = malloc(sizeof *ref * (size_t)(rows + 1));
            assert_non_null(w);
            assert_non_null(x);
            assert_non_null(y);
            assert_non_null(ref);
            for (int64_t i = 0; i < rows * K; i++) {
                const float u = (float)(bn_test_rand(&rng) >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
                w[i] = bn_f32_to_f16(u * 0.125f);
            }
            for (int64_t i = 0; i < K; i++)
                x[i] = (float)(bn_test_rand(&rng) >> 40) / (float)(1 << 24) * 8.0f - 4.0f;
            const int64_t row0 = rows > 2 ? 2 : 0;
            for (int64_t r = 0; r <= rows; r++) y[r] = ref[r] = -7.0f;
            k->f16_gemv(w, K, row0, rows, x, y);
            bn_f16_gemv_scalar(w, K, row0, rows, x, ref);
            for (int64_t r = 0; r <= rows; r++) {
                if (r < row0 || r == rows) {
                    assert_true(y[r] == -7.0f); // untouched
                    continue;
                }
                double mag = 0.0;
                for (int64_t i = 0; i < K; i++)
                    mag += fabs((double)bn_f16_to_f32(w[r * K + i]) * (double)x[i]);
                const double diff = fabs((double)y[r] - (double)ref[r]);
                if (!(diff <= 1e-5 * mag + 1e-30))
                    fail_msg("K=%lld row %lld: %.9g vs scalar %.9g (diff %.3g, sum|wx| %.3g)",
                             (long long)K, (long long)r, y[r], ref[r], diff, mag);
            }
            free(w);
            free(x);
            free(y);
            free(ref);
        }
}
#endif

// f16_gemm against the same set's f16_gemv, token by token, bit for bit: n
// tokens (1-9: every group size of four and its tails, as AVX2 groups them, and
// every split into groups of up to three, as AVX-512 makes them), read through a
// shuffled index list (or none: rows 0..n-1) with a row stride, on odd widths
// and row ranges (from row 3 to 5..40: every tail of four-row tiles);
// results outside [row0, row1) untouched.
static void check_f16_gemm(const bn_cpu_kernels *k) {
    static const int64_t Ks[] = {1, 7, 8, 15, 16, 17, 24, 33, 129, 2560, 2563, 6925};
    uint64_t rng = 0x7f16ULL;
    for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
        for (int n = 1; n <= 9; n++) {
            static const int64_t ends[] = {11, 40, 9, 10, 5, 6}; // 8, 37, 6, 7, 2, 3 rows
            const int64_t K = Ks[a], rows = ends[(n + (int)a) % 6], row0 = 3, ldx = K + 5, ldy = rows + 2;
            uint16_t *w = malloc(sizeof *w * (size_t)(rows * K));
            float *x = malloc(sizeof *x * (size_t)(12 * ldx)), *y = malloc(sizeof *y * (size_t)(n * ldy));
            float *one = malloc(sizeof *one * (size_t)rows);
            int idx[9];
            assert_true(w && x && y && one);
            for (int64_t i = 0; i < rows * K; i++)
                w[i] = bn_f32_to_f16(((float)(bn_test_rand(&rng) >> 40) / (float)(1 << 24) * 2.0f - 1.0f) * 0.125f);
            for (int64_t i = 0; i < 12 * ldx; i++)
                x[i] = (float)(bn_test_rand(&rng) >> 40) / (float)(1 << 24) * 8.0f - 4.0f;
            const bool listed = (n + (int)a) % 3 != 0; // else no list: token i reads row i
            for (int i = 0; i < n; i++) idx[i] = listed ? (int)((i * 5 + 3) % 12) : i; // distinct rows of x
            for (int64_t i = 0; i < n * ldy; i++) y[i] = -7.0f;
            k->f16_gemm(w, K, row0, rows, x, ldx, listed ? idx : NULL, n, y, ldy);
            for (int i = 0; i < n; i++) {
                k->f16_gemv(w, K, row0, rows, x + idx[i] * ldx, one);
                for (int64_t r = 0; r < ldy; r++) {
                    const float got = y[i * ldy + r];
                    if (r < row0 || r >= rows) assert_true(got == -7.0f);
                    else if (memcmp(&got, &one[r], sizeof got))
                        fail_msg("%s f16_gemm K=%lld n=%d token %d row %lld: %.9g, f16_gemv %.9g", k->name,
                                 (long long)K, n, i, (long long)r, got, one[r]);
                }
            }
            free(w);
            free(x);
            free(y);
            free(one);
        }
}

static void test_f16_gemm_scalar(void **st) {
    (void)st;
    check_f16_gemm(&bn_kernels_scalar);
}

#ifdef BN_TEST_SIMD
static void test_i8(const char *name) {
    const bn_cpu_kernels *k = table_or_skip(name);
    if (!k) skip();
    static const int64_t Ks[] = {1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 2560, 2563};
    static const int64_t Rs[] = {1, 3, 4, 5, 37};
    uint64_t rng = 0xabcdef12345ULL;
    for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
        for (size_t b = 0; b < sizeof Rs / sizeof *Rs; b++) {
            const int64_t K = Ks[a], rows = Rs[b];
            int8_t *w = malloc((size_t)(rows * K));
            int8_t *x = malloc((size_t)K);
            int32_t *y = malloc(sizeof *y * (size_t)(rows + 1));
            int32_t *ref = malloc(sizeof *ref * (size_t)(rows + 1));
            assert_non_null(w);
            assert_non_null(x);
            assert_non_null(y);
            assert_non_null(ref);
            for (int round = 0; round < 3; round++) { // random, then all -128, then -128 x 127
                for (int64_t i = 0; i < rows * K; i++) {
                    const uint64_t r = bn_test_rand(&rng);
                    int8_t v = (int8_t)(r >> 24);
                    if ((r & 7) == 0) v = (r & 8) ? 127 : -128;
                    w[i] = round == 0 ? v : -128;
                }
                for (int64_t i = 0; i < K; i++) {
                    const uint64_t r = bn_test_rand(&rng);
                    int8_t v = (int8_t)(r >> 24);
                    if ((r & 7) == 0) v = (r & 8) ? 127 : -128;
                    x[i] = round == 0 ? v : round == 1 ? -128 : 127;
                }
                const int64_t row0 = rows > 2 ? 2 : 0;
                for (int64_t r = 0; r <= rows; r++) y[r] = ref[r] = SENTINEL;
                k->i8_gemv(w, K, row0, rows, x, y);
                bn_i8_gemv_scalar(w, K, row0, rows, x, ref);
                for (int64_t r = 0; r <= rows; r++)
                    if (y[r] != ref[r])
                        fail_msg("K=%lld rows=%lld round %d: y[%lld] = %d, scalar %d", (long long)K,
                                 (long long)rows, round, (long long)r, y[r], ref[r]);
                if (round == 1) assert_int_equal(ref[row0], 128 * 128 * K); // the oracle itself
            }
            free(w);
            free(x);
            free(y);
            free(ref);
        }
}

static float rand_unit(uint64_t *rng) { // uniform in [-1, 1)
    return (float)(bn_test_rand(rng) >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

// Quantization must match bn_quantize_i8 exactly: scale, codes and their sum, on
// odd lengths, with exact .5 ties after scaling, zeros, and an all-tiny input
// (the 1e-5 floor).
static void test_quantize(const char *name) {
    const bn_cpu_kernels *k = table_or_skip(name);
    if (!k) skip();
    static const int64_t Ns[] = {1, 7, 8, 31, 32, 33, 100, 2560, 6912, 6913};
    uint64_t rng = 0x7777ULL;
    for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
        for (int kind = 0; kind < 3; kind++) {
            const int64_t n = Ns[a];
            float *x = malloc(sizeof *x * (size_t)n);
            int8_t *q = malloc((size_t)n + 1), *qr = malloc((size_t)n + 1);
            assert_true(x && q && qr);
            for (int64_t i = 0; i < n; i++) {
                const float u = rand_unit(&rng);
                x[i] = kind == 0 ? u * 3.0f : kind == 1 ? 1e-7f * u : (float)(i % 5) * 0.5f - 1.0f;
            }
            if (kind == 0 && n > 3) x[n / 2] = -x[n / 3] * 1.5f; // a negative absmax
            q[n] = qr[n] = 0x55;
            int32_t qs = -1, qsr = -2;
            const float s = k->quantize_i8(x, n, q, &qs);
            const float sr = bn_quantize_i8(x, n, qr, &qsr);
            if (s != sr || qs != qsr || memcmp(q, qr, (size_t)n + 1) != 0)
                fail_msg("n=%lld kind %d: s %.9g vs %.9g, qsum %d vs %d, codes %s", (long long)n,
                         kind, s, sr, qs, qsr, memcmp(q, qr, (size_t)n + 1) ? "differ" : "equal");
            assert_true(k->quantize_i8(x, n, q, NULL) == sr); // qsum is optional
            free(x);
            free(q);
            free(qr);
        }
}

// One f16 ulp at |p| (subnormal halves: 2^-24).
static double f16_ulp(double p) {
    p = fabs(p);
    return p < 0x1p-14 ? 0x1p-24 : ldexp(1.0, ilogb(p) - 10);
}

static void test_attention(const char *name) {
    const bn_cpu_kernels *k = table_or_skip(name);
    if (!k) skip();
    static const int HDs[] = {64, 128, 68}; // 68: a head_dim tail past the 8-wide steps
    static const int NKVs[] = {1, 7, 33, 300};
    static const int NQs[] = {1, 4, 5}; // heads sharing the KV head (5: a group and a tail)
    uint64_t rng = 0x5eed5eedULL;
    int flips = 0;
    for (size_t a = 0; a < sizeof HDs / sizeof *HDs; a++)
        for (size_t b = 0; b < sizeof NKVs / sizeof *NKVs; b++)
            for (size_t c = 0; c < sizeof NQs / sizeof *NQs; c++) {
                const int hd = HDs[a], n_kv = NKVs[b], nq = NQs[c];
                const int64_t stride = 3 * hd + 5; // other heads' slices sit between rows
                const int64_t off = hd + 3;        // this head's slice starts mid-row
                const size_t cache = (size_t)(n_kv * stride + off);
                uint16_t *kc = malloc(sizeof *kc * cache), *vc = malloc(sizeof *vc * cache);
                float *q = malloc(sizeof *q * (size_t)(nq * hd));
                float *sc = malloc(sizeof *sc * (size_t)(nq * n_kv));
                float *sr = malloc(sizeof *sr * (size_t)(nq * n_kv));
                float *s1 = malloc(sizeof *s1 * (size_t)n_kv);
                float *out = malloc(sizeof *out * (size_t)(nq * hd + 1));
                float *ref = malloc(sizeof *ref * (size_t)(nq * hd + 1));
                float *one = malloc(sizeof *one * (size_t)hd);
                assert_true(kc && vc && q && sc && sr && s1 && out && ref && one);
                for (size_t i = 0; i < cache; i++) {
                    kc[i] = bn_f32_to_f16(rand_unit(&rng) * 2.0f);
                    vc[i] = bn_f32_to_f16(rand_unit(&rng));
                }
                for (int d = 0; d < nq * hd; d++)
                    q[d] = bn_f16_to_f32(bn_f32_to_f16(rand_unit(&rng) * 3.0f));
                const float scale = 1.0f / sqrtf((float)hd);
                out[nq * hd] = ref[nq * hd] = -7.0f;
                k->attention(q, nq, kc + off, vc + off, stride, hd, n_kv, scale, sc, out);
                bn_attention_scalar(q, nq, kc + off, vc + off, stride, hd, n_kv, scale, sr, ref);
                assert_true(out[nq * hd] == -7.0f); // nothing past the group's heads
                for (int h = 0; h < nq; h++) {
                    const float *ps = sc + h * n_kv, *pr = sr + h * n_kv;
                    for (int j = 0; j < n_kv; j++) {
                        const double dp = fabs((double)ps[j] - (double)pr[j]);
                        if (dp > 0) flips++;
                        if (!(dp <= f16_ulp(fmax(ps[j], pr[j]))))
                            fail_msg("hd=%d n_kv=%d nq=%d: head %d p[%d] = %.9g, scalar %.9g", hd,
                                     n_kv, nq, h, j, ps[j], pr[j]);
                    }
                    for (int d = 0; d < hd; d++) {
                        double mag = 0.0, moved = 0.0;
                        for (int j = 0; j < n_kv; j++) {
                            const double v = fabs((double)bn_f16_to_f32(vc[off + j * stride + d]));
                            mag += fabs((double)pr[j]) * v;
                            moved += fabs((double)ps[j] - (double)pr[j]) * v;
                        }
                        const float o = out[h * hd + d], r = ref[h * hd + d];
                        const double diff = fabs((double)o - (double)r);
                        if (!(diff <= 1e-5 * mag + moved + 1e-30))
                            fail_msg("hd=%d n_kv=%d nq=%d: head %d out[%d] = %.9g, scalar %.9g "
                                     "(diff %.3g, sum|pv| %.3g)", hd, n_kv, nq, h, d, o, r, diff,
                                     mag);
                    }
                    // The same head alone gives the same bits as inside the group.
                    k->attention(q + h * hd, 1, kc + off, vc + off, stride, hd, n_kv, scale, s1,
                                 one);
                    if (memcmp(one, out + h * hd, sizeof *one * (size_t)hd) != 0)
                        fail_msg("hd=%d n_kv=%d nq=%d: head %d alone differs from its group", hd,
                                 n_kv, nq, h);
                }
                free(kc);
                free(vc);
                free(q);
                free(sc);
                free(sr);
                free(s1);
                free(out);
                free(ref);
                free(one);
            }
    fprintf(stderr, "%s attention: %d probabilities one f16 ulp off the scalar's\n", name, flips);
}

// Half rows must match the scalar conversions bit for bit: every one of the
// 65536 halves (signaling NaNs aside: F16C quiets them) loaded, and floats
// around every rounding case (ties, subnormals, overflow to inf) stored and
// rounded, on lengths with tails.
static void test_half_rows(const char *name) {
    const bn_cpu_kernels *k = table_or_skip(name);
    if (!k) skip();
    const int64_t N = 65536 + 5;
    uint16_t *h = malloc(sizeof *h * (size_t)N), *hs = malloc(sizeof *hs * (size_t)N);
    uint16_t *hr = malloc(sizeof *hr * (size_t)N);
    float *f = malloc(sizeof *f * (size_t)N), *fr = malloc(sizeof *fr * (size_t)N);
    float *x = malloc(sizeof *x * (size_t)N);
    assert_true(h && hs && hr && f && fr && x);
    for (int64_t i = 0; i < N; i++) {
        uint16_t v = (uint16_t)(i & 0xffff);
        if ((v & 0x7c00) == 0x7c00 && (v & 0x3ff) && !(v & 0x200)) v |= 0x200; // quiet NaNs only
        h[i] = v;
    }
    k->half_load(f, h, N);
    bn_load_f16(fr, h, N);
    assert_memory_equal(f, fr, sizeof *f * (size_t)N);
    // Floats: each half's value, and it nudged up/down by a few float ulps and
    // by exactly half an f16 ulp (ties), so all rounding paths are taken.
    uint64_t rng = 0x4242ULL;
    for (int64_t i = 0; i < N; i++) {
        const float v = fr[i];
        if (v != v) { // NaN: keep a quiet one
            x[i] = v;
            continue;
        }
        uint32_t u;
        memcpy(&u, &v, sizeof u);
        const uint64_t r = bn_test_rand(&rng);
        switch (r % 4) {
        case 0: u += (uint32_t)(r >> 8) % 5; break;
        case 1: u -= (uint32_t)(r >> 8) % 5; break;
        case 2: u += 1u << 12; break; // half an f16 ulp for normal halves: a tie
        default: break;
        }
        memcpy(&x[i], &u, sizeof u);
    }
    for (int64_t n = N; n >= N - 7; n -= 7) { // two lengths, both with tails
        k->half_store(hs, x, n);
        bn_store_f16(hr, x, n);
        assert_memory_equal(hs, hr, sizeof *hs * (size_t)n);
        memcpy(f, x, sizeof *f * (size_t)n);
        memcpy(fr, x, sizeof *f * (size_t)n);
        k->half_round(f, n);
        bn_round_f16(fr, n);
        assert_memory_equal(f, fr, sizeof *f * (size_t)n);
    }
    free(h);
    free(hs);
    free(hr);
    free(f);
    free(fr);
    free(x);
}
#endif

#ifdef BN_TEST_X86
// bn_softmax_avx2 against bn_softmax: odd lengths (8-lane tails), scores spread
// so that some differences fall below -103.97 (where expf underflows to 0), -inf
// entries, ties, and differences at the underflow boundary itself.
static void test_softmax_avx2(void **st) {
    (void)st;
    if (!table_or_skip("avx2")) skip();
    static const int ns[] = {1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 1901};
    static const float spreads[] = {0.0f, 1.0f, 30.0f, 300.0f};
    uint64_t rng = 0x5eedf00dULL;
    float *a = malloc(sizeof *a * 1901), *b = malloc(sizeof *b * 1901);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
        for (size_t j = 0; j < sizeof spreads / sizeof *spreads; j++) {
            const int n = ns[i];
            for (int e = 0; e < n; e++) {
                const uint64_t r = bn_test_rand(&rng);
                a[e] = (float)(r >> 40) / (float)(1 << 24) * 2.0f * spreads[j] - spreads[j];
                if (r % 17 == 0) a[e] = -INFINITY;
                if (r % 19 == 0) a[e] = a[0] - 0x1.9fe368p6f; // at the underflow edge
            }
            memcpy(b, a, sizeof *a * (size_t)n);
            bn_softmax(a, n);
            bn_softmax_avx2(b, n);
            assert_memory_equal(a, b, sizeof *a * (size_t)n);
        }
    // Every float difference in [-104, 0] on a grid, through the exp: one score at
    // 0 (the max) and one at -d, for 65536 values of d.
    for (int g = 0; g < 65536; g++) {
        float x[2] = {0.0f, -104.0f * (float)g / 65535.0f}, y[2] = {x[0], x[1]};
        bn_softmax(x, 2);
        bn_softmax_avx2(y, 2);
        assert_memory_equal(x, y, sizeof x);
    }
    free(a);
    free(b);
}

#endif

#ifdef BN_TEST_SIMD
// silu_mul against its scalar twin (kernels.h: bn_silu_mul_scalar for the AVX2
// sequence, bn_silu_mul_scalar_avx512 for the AVX-512 one), bit for bit: odd
// lengths (tails through libm expf), gates over the whole float line, the branch
// edges of ggml's exp (|n| > 126 from |x| ~ 87.3, |n| > 192 from |x| ~ 133.1, and
// ±80, ±100, ±200 among random values), zeros, denormals, ±inf, NaN. NaN results
// (from a NaN gate or silu(-inf) = -inf/inf, as ggml gives) are compared as "both
// NaN": the lanes keep whichever payload x86 propagates, the scalar code's
// operand order may pick another one.
static float silu_special(uint64_t r) {
    static const float v[] = {0.0f,      -0.0f,       80.0f,       -80.0f,     100.0f,
                              -100.0f,   200.0f,      -200.0f,     87.33f,     -87.33f,
                              87.4f,     -87.4f,      133.0f,      -133.0f,    133.2f,
                              -133.2f,   88.72f,      -88.72f,     103.97f,    -103.97f,
                              1e-40f,    -1e-40f,     0x1p-149f,   -0x1p-149f, 0x1p-126f,
                              1e30f,     -1e30f,      3.4e38f,     -3.4e38f,   INFINITY,
                              -INFINITY, NAN,         -NAN,        1e-8f,      -1e-8f};
    return v[r % (sizeof v / sizeof *v)];
}

static void check_silu(bn_silu_mul_fn fn, bn_silu_mul_fn oracle, const float *g,
                       const float *u, int64_t n, float *a, float *b) {
    memcpy(a, g, sizeof *a * (size_t)n);
    memcpy(b, g, sizeof *b * (size_t)n);
    fn(a, u, n);
    oracle(b, u, n);
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) && isnan(b[i])) continue;
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
            fail_msg("n=%lld i=%lld gate=%a up=%a: simd %a, scalar %a", (long long)n,
                     (long long)i, (double)g[i], (double)u[i], (double)a[i], (double)b[i]);
    }
}

static void test_silu_mul(const char *name, bn_silu_mul_fn oracle) {
    const bn_cpu_kernels *k = table_or_skip(name);
    if (!k) skip();
    static const int64_t ns[] = {1, 7, 8, 9, 15, 16, 17, 31, 127, 128, 6912, 23040};
    enum { NMAX = 1 << 16 };
    float *g = malloc(sizeof *g * NMAX), *u = malloc(sizeof *u * NMAX);
    float *a = malloc(sizeof *a * NMAX), *b = malloc(sizeof *b * NMAX);
    assert_true(g && u && a && b);
    uint64_t rng = 0x51105eedULL;
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++)
        for (int rep = 0; rep < 4; rep++) {
            const int64_t n = ns[t];
            const float spread = rep == 0 ? 8.0f : rep == 1 ? 20.0f : rep == 2 ? 120.0f : 250.0f;
            for (int64_t i = 0; i < n; i++) {
                const uint64_t r = bn_test_rand(&rng);
                g[i] = rand_unit(&rng) * spread;
                if (r % 7 == 0) g[i] = silu_special(r >> 8);
                u[i] = rand_unit(&rng) * 2.0f;
                if (r % 53 == 0) u[i] = 0.0f;
            }
            check_silu(k->silu_mul, oracle, g, u, n, a, b);
        }
    // The float line: every 65537th bit pattern (all exponents, both signs, NaNs),
    // then a dense grid over [-140, 140] where every branch of the exp lives.
    for (int64_t i = 0; i < NMAX; i++) u[i] = 1.0f;
    for (uint64_t base = 0; base < (1ull << 32); base += (uint64_t)NMAX * 65537) {
        int64_t n = 0;
        for (uint64_t bits = base; n < NMAX && bits < (1ull << 32); bits += 65537, n++) {
            const uint32_t b32 = (uint32_t)bits;
            memcpy(&g[n], &b32, sizeof b32);
        }
        check_silu(k->silu_mul, oracle, g, u, n, a, b);
    }
    for (int pass = 0; pass < 16; pass++) {
        for (int64_t i = 0; i < NMAX; i++)
            g[i] = -140.0f + 280.0f * (float)(pass * NMAX + i) / (float)(16 * NMAX);
        check_silu(k->silu_mul, oracle, g, u, NMAX, a, b);
    }
    free(g);
    free(u);
    free(a);
    free(b);
}
#endif

#ifdef BN_TEST_X86 // the x86 sets (wrappers of the tests above)
static void test_silu_mul_avx2(void **st) {
    (void)st;
    test_silu_mul("avx2", bn_silu_mul_scalar);
}
static void test_silu_mul_avx512(void **st) {
    (void)st;
    test_silu_mul("avx512", bn_silu_mul_scalar_avx512);
}

static void test_half_rows_avx2(void **st) {
    (void)st;
    test_half_rows("avx2");
}
static void test_half_rows_avx512(void **st) {
    (void)st;
    test_half_rows("avx512");
}
static void test_quantize_avx2(void **st) {
    (void)st;
    test_quantize("avx2");
}
static void test_quantize_avx512(void **st) {
    (void)st;
    test_quantize("avx512");
}
static void test_i8_avx2(void **st) {
    (void)st;
    test_i8("avx2");
}
static void test_attention_avx2(void **st) {
    (void)st;
    test_attention("avx2");
}
static void test_i8_avx512(void **st) {
    (void)st;
    test_i8("avx512");
}
static void test_attention_avx512(void **st) {
    (void)st;
    test_attention("avx512");
}
#endif

#if defined(BN_TEST_X86) || defined(__aarch64__)
// k's attention against an oracle of the same arithmetic, bit for bit: scores,
// probabilities and outputs, on odd shapes (head dims HDs: tails past the
// vectors' lanes; keys past the 32 lanes and the two-key steps; 1-5 heads, whole
// and partial GQA groups), the 2B-4T's (128 x 4 heads) among them.
static void check_attention_bits(const bn_cpu_kernels *k, bn_attention_fn oracle, const char *what, const int *HDs,
                                 size_t n_hds, uint64_t rng) {
    static const int NKVs[] = {1, 2, 3, 33, 64, 301, 1000};
    for (size_t a = 0; a < n_hds; a++)
        for (size_t b = 0; b < sizeof NKVs / sizeof *NKVs; b++)
            for (int nq = 1; nq <= 5; nq++) {
                const int hd = HDs[a], n_kv = NKVs[b];
                const int64_t stride = 5 * hd + 3, off = 2 * hd + 1;
                const size_t cache = (size_t)(n_kv * stride + off);
                uint16_t *kc = malloc(sizeof *kc * cache), *vc = malloc(sizeof *vc * cache);
                float *q = malloc(sizeof *q * (size_t)(nq * hd));
                float *sr = malloc(sizeof *sr * (size_t)(nq * n_kv)), *sk = malloc(sizeof *sk * (size_t)(nq * n_kv));
                float *or = malloc(sizeof *or * (size_t)(nq * hd + 1)), *ok = malloc(sizeof *ok * (size_t)(nq * hd + 1));
                assert_true(kc && vc && q && sr && sk && or && ok);
                for (size_t i = 0; i < cache; i++) {
                    kc[i] = bn_f32_to_f16(rand_unit(&rng) * 2.0f);
                    vc[i] = bn_f32_to_f16(rand_unit(&rng) * 4.0f);
                }
                for (int d = 0; d < nq * hd; d++) q[d] = bn_f16_to_f32(bn_f32_to_f16(rand_unit(&rng) * 3.0f));
                const float scale = 1.0f / sqrtf((float)hd);
                ok[nq * hd] = -7.0f;
                oracle(q, nq, kc + off, vc + off, stride, hd, n_kv, scale, sr, or);
                k->attention(q, nq, kc + off, vc + off, stride, hd, n_kv, scale, sk, ok);
                assert_true(ok[nq * hd] == -7.0f); // nothing past the group's heads
                if (memcmp(sr, sk, sizeof *sr * (size_t)(nq * n_kv)) || memcmp(or, ok, sizeof *or * (size_t)(nq * hd)))
                    fail_msg("hd=%d n_kv=%d nq=%d: the %s attention differs from %s", hd, n_kv, nq, k->name, what);
                free(kc);
                free(vc);
                free(q);
                free(sr);
                free(sk);
                free(or);
                free(ok);
            }
}
#endif

#ifdef BN_TEST_X86
// The AVX-512 attention is the AVX2 one on zmm (kernels_avx512.c).
static void test_attention_avx512_is_avx2(void **st) {
    (void)st;
    const bn_cpu_kernels *k = table_or_skip("avx512");
    if (!k) skip();
    static const int HDs[] = {128, 64, 68, 100, 40, 8};
    check_attention_bits(k, bn_attention_avx2, "the AVX2 one", HDs, sizeof HDs / sizeof *HDs, 0xa77e5eedULL);
}
#endif

#ifdef __aarch64__
// The NEON attention is bn_attention_head's arithmetic (kernels_neon.c), head dims
// that are not a multiple of 4 included.
static void test_attention_neon_is_scalar(void **st) {
    (void)st;
    const bn_cpu_kernels *k = table_or_skip("neon");
    if (!k) skip();
    static const int HDs[] = {128, 64, 68, 100, 40, 8, 6};
    check_attention_bits(k, bn_attention_scalar, "the scalar one", HDs, sizeof HDs / sizeof *HDs, 0x7e0e5eedULL);
}
#endif

static void test_i8_scalar_table(void **st) { // the scalar table's entries are the oracles
    (void)st;
    assert_ptr_equal(bn_kernels_scalar.i8_gemv, bn_i8_gemv_scalar);
    assert_ptr_equal(bn_kernels_scalar.attention, bn_attention_scalar);
    assert_ptr_equal(bn_kernels_scalar.quantize_i8, bn_quantize_i8);
    assert_ptr_equal(bn_kernels_scalar.half_store, bn_store_f16);
    assert_ptr_equal(bn_kernels_scalar.half_load, bn_load_f16);
    assert_ptr_equal(bn_kernels_scalar.half_round, bn_round_f16);
    assert_ptr_equal(bn_kernels_scalar.silu_mul, bn_silu_mul_scalar);
    assert_ptr_equal(bn_kernels_scalar.ternary_q8k, bn_ternary_q8k_scalar);
}

#ifdef BN_TEST_SIMD
// The TQ bitlinear (llama.cpp's per-block sums) against its scalar twin, bit for
// bit: K from one block to the 10B model's FFN width, 1 to 9 tokens, row ranges
// that start and end anywhere, stored and added, weights with every code
// including 0b11 (read as 0), activations with -128/127 in every block, and real
// Q8_K scales from bn_quantize_q8k_block.
static void test_ternary_q8k(const char *name) {
    const bn_cpu_kernels *k = table_or_skip(name);
    if (!k) skip();
    uint64_t rng = 31;
    const int64_t Ks[] = {256, 768, 2560, 6912, 23040};
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
        for (int n = 1; n <= 9; n += 4) {
            const int64_t K = Ks[ki], nb = K / 256, M = 37, r0 = (int64_t)(ki % 3), r1 = M - (int64_t)(ki % 5);
            uint8_t *w = malloc((size_t)(M * K / 4));
            float *x = malloc(sizeof(float) * 256), *xd = malloc(sizeof(float) * (size_t)(n * nb));
            int8_t *q = malloc((size_t)(n * K));
            int32_t *qsum = malloc(sizeof(int32_t) * (size_t)n), *bs = malloc(sizeof(int32_t) * (size_t)(n * nb * 8));
            float *y = malloc(sizeof(float) * (size_t)(n * M)), *ref = malloc(sizeof(float) * (size_t)(n * M));
            for (int64_t i = 0; i < M * K / 4; i++) w[i] = (uint8_t)bn_test_rand(&rng);
            fill_q(q, qsum, K, n, &rng);
            for (int64_t tb = 0; tb < n * nb; tb++) { // a real block's scale; the codes stay fill_q's
                for (int i = 0; i < 256; i++) x[i] = (float)(int64_t)(bn_test_rand(&rng) % 2001 - 1000) / 77.f;
                int8_t scratch[256];
                xd[tb] = bn_quantize_q8k_block(x, scratch);
                bn_q8k_group_sums(q + tb * 256, bs + tb * 8);
            }
            for (int add = 0; add < 2; add++) {
                for (int64_t i = 0; i < n * M; i++) y[i] = ref[i] = (float)i;
                k->ternary_q8k(w, K, r0, r1, q, xd, bs, n, 0.37f, 1.5f, add, y, M);
                bn_ternary_q8k_scalar(w, K, r0, r1, q, xd, bs, n, 0.37f, 1.5f, add, ref, M);
                for (int64_t i = 0; i < n * M; i++)
                    if (memcmp(&y[i], &ref[i], sizeof(float)))
                        fail_msg("%s: K=%lld n=%d add=%d: y[%lld] = %.9g, scalar %.9g", name, (long long)K, n, add,
                                 (long long)i, y[i], ref[i]);
            }
            free(w); free(x); free(xd); free(q); free(qsum); free(bs); free(y); free(ref);
        }
}
#endif

#ifdef BN_TEST_X86
static void test_ternary_q8k_avx2(void **st) {
    (void)st;
    test_ternary_q8k("avx2");
}
static void test_ternary_q8k_avx512(void **st) {
    (void)st;
    test_ternary_q8k("avx512");
}

static void test_ternary_random_avx2(void **st) {
    (void)st;
    test_ternary_random("avx2");
}
static void test_ternary_extremes_avx2(void **st) {
    (void)st;
    test_ternary_extremes("avx2");
}
static void test_f16_avx2(void **st) {
    (void)st;
    test_f16("avx2");
    check_f16_gemm(table_or_skip("avx2"));
}
// The same integers come out of the AVX-512 GEMM it falls back to, so these also
// check that the tiles ran.
static void test_ternary_random_amx(void **st) {
    (void)st;
    const unsigned long before = bn_amx_tile_blocks();
    test_ternary_random("amx");
    assert_true(bn_amx_tile_blocks() > before);
}
static void test_ternary_extremes_amx(void **st) {
    (void)st;
    const unsigned long before = bn_amx_tile_blocks();
    test_ternary_extremes("amx");
    assert_true(bn_amx_tile_blocks() > before);
}
static void test_ternary_random_avx512(void **st) {
    (void)st;
    test_ternary_random("avx512");
}
static void test_ternary_extremes_avx512(void **st) {
    (void)st;
    test_ternary_extremes("avx512");
}
static void test_f16_avx512(void **st) {
    (void)st;
    test_f16("avx512");
    check_f16_gemm(table_or_skip("avx512"));
}
#endif

#ifdef __aarch64__
static void test_ternary_random_neon(void **st) {
    (void)st;
    test_ternary_random("neon");
}
static void test_ternary_extremes_neon(void **st) {
    (void)st;
    test_ternary_extremes("neon");
}
static void test_f16_neon(void **st) {
    (void)st;
    test_f16("neon");
    check_f16_gemm(table_or_skip("neon"));
}
static void test_i8_neon(void **st) {
    (void)st;
    test_i8("neon");
}
static void test_quantize_neon(void **st) {
    (void)st;
    test_quantize("neon");
}
static void test_half_rows_neon(void **st) {
    (void)st;
    test_half_rows("neon");
}
static void test_attention_neon(void **st) {
    (void)st;
    test_attention("neon");
}
static void test_silu_mul_neon(void **st) {
    (void)st;
    test_silu_mul("neon", bn_silu_mul_scalar);
}
static void test_ternary_q8k_neon(void **st) {
    (void)st;
    test_ternary_q8k("neon");
}
#endif

static void test_select(void **st) {
    (void)st;
    const bn_cpu_features f = bn_cpu_detect();
#ifdef BN_TEST_X86
    const char *best = f.amx && bn_cpu_amx_permit() ? "amx" : f.avx512 ? "avx512" : f.avx2 ? "avx2" : "scalar";
#elif defined(__aarch64__)
    const char *best = f.neon ? "neon" : "scalar";
#else
    (void)f;
    const char *best = "scalar";
#endif
    const bn_cpu_kernels *k = NULL;
    bn_error err = {{0}};

    unsetenv("BITNET_CPU_KERNELS");
    assert_int_equal(bn_cpu_kernels_select(NULL, &k, &err), 0);
    assert_string_equal(k->name, best);
    assert_int_equal(bn_cpu_kernels_select("auto", &k, &err), 0);
    assert_string_equal(k->name, best);
    assert_int_equal(bn_cpu_kernels_select("scalar", &k, &err), 0);
    assert_ptr_equal(k, &bn_kernels_scalar);

    // The environment overrides "auto" but not an explicit name.
    setenv("BITNET_CPU_KERNELS", "scalar", 1);
    assert_int_equal(bn_cpu_kernels_select("auto", &k, &err), 0);
    assert_string_equal(k->name, "scalar");
    assert_int_equal(bn_cpu_kernels_select(NULL, &k, &err), 0);
    assert_string_equal(k->name, "scalar");
#ifdef BN_TEST_X86
    if (f.avx2) {
        assert_int_equal(bn_cpu_kernels_select("avx2", &k, &err), 0);
        assert_string_equal(k->name, "avx2");
        setenv("BITNET_CPU_KERNELS", "avx2", 1);
        assert_int_equal(bn_cpu_kernels_select(NULL, &k, &err), 0);
        assert_string_equal(k->name, "avx2");
    }
    if (!f.avx512) {
        k = NULL;
        assert_int_equal(bn_cpu_kernels_select("avx512", &k, &err), -1);
        assert_null(k);
        assert_non_null(strstr(err.msg, "not supported"));
        setenv("BITNET_CPU_KERNELS", "avx512", 1);
        assert_int_equal(bn_cpu_kernels_select("auto", &k, &err), -1);
        assert_non_null(strstr(err.msg, "avx512"));
    }
    if (f.amx && bn_cpu_amx_permit()) { // amx is avx512 with the prefill GEMM on tiles: the rest is the same
        assert_int_equal(bn_cpu_kernels_select("amx", &k, &err), 0);
        assert_ptr_equal(k, &bn_kernels_amx);
        assert_ptr_equal(k->attention, bn_kernels_avx512.attention);
        assert_ptr_equal(k->f16_gemv, bn_kernels_avx512.f16_gemv);
    } else {
        k = NULL;
        assert_int_equal(bn_cpu_kernels_select("amx", &k, &err), -1);
        assert_null(k);
        assert_non_null(strstr(err.msg, "'amx'"));
    }
    // Another architecture's set: not built here, and said so.
    assert_int_equal(bn_cpu_kernels_select("neon", &k, &err), -1);
    assert_non_null(strstr(err.msg, "not built for this CPU architecture"));
#elif defined(__aarch64__)
    if (f.neon) {
        assert_int_equal(bn_cpu_kernels_select("neon", &k, &err), 0);
        assert_ptr_equal(k, &bn_kernels_neon);
        assert_ptr_equal(k->silu_mul, bn_silu_mul_scalar); // the scalar (and AVX2) class's SiLU
    } else {
        assert_int_equal(bn_cpu_kernels_select("neon", &k, &err), -1);
        assert_non_null(strstr(err.msg, "SDOT"));
    }
    assert_int_equal(bn_cpu_kernels_select("avx2", &k, &err), -1);
    assert_non_null(strstr(err.msg, "not built for this CPU architecture"));
#endif
    setenv("BITNET_CPU_KERNELS", "sse9", 1);
    assert_int_equal(bn_cpu_kernels_select(NULL, &k, &err), -1);
    assert_non_null(strstr(err.msg, "sse9"));
    assert_non_null(strstr(err.msg, "unknown"));
    unsetenv("BITNET_CPU_KERNELS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_f16_gemm_scalar),
        cmocka_unit_test(test_i8_scalar_table),
#ifdef BN_TEST_X86
        cmocka_unit_test(test_softmax_avx2),
        cmocka_unit_test(test_ternary_random_avx2),
        cmocka_unit_test(test_ternary_extremes_avx2),
        cmocka_unit_test(test_f16_avx2),
        cmocka_unit_test(test_ternary_random_avx512),
        cmocka_unit_test(test_ternary_extremes_avx512),
        cmocka_unit_test(test_ternary_random_amx),
        cmocka_unit_test(test_ternary_extremes_amx),
        cmocka_unit_test(test_f16_avx512),
        cmocka_unit_test(test_half_rows_avx2),
        cmocka_unit_test(test_half_rows_avx512),
        cmocka_unit_test(test_quantize_avx2),
        cmocka_unit_test(test_quantize_avx512),
        cmocka_unit_test(test_i8_avx2),
        cmocka_unit_test(test_attention_avx2),
        cmocka_unit_test(test_i8_avx512),
        cmocka_unit_test(test_attention_avx512),
        cmocka_unit_test(test_attention_avx512_is_avx2),
        cmocka_unit_test(test_silu_mul_avx2),
        cmocka_unit_test(test_silu_mul_avx512),
        cmocka_unit_test(test_ternary_q8k_avx2),
        cmocka_unit_test(test_ternary_q8k_avx512),
#elif defined(__aarch64__)
        cmocka_unit_test(test_ternary_random_neon),
        cmocka_unit_test(test_ternary_extremes_neon),
        cmocka_unit_test(test_f16_neon),
        cmocka_unit_test(test_i8_neon),
        cmocka_unit_test(test_quantize_neon),
        cmocka_unit_test(test_half_rows_neon),
        cmocka_unit_test(test_attention_neon),
        cmocka_unit_test(test_attention_neon_is_scalar),
        cmocka_unit_test(test_silu_mul_neon),
        cmocka_unit_test(test_ternary_q8k_neon),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
