// test_cpu_ops.c - the scalar CPU kernels and float ops against independent
// references: hand-built I2_S bytes, a dense int matmul, IEEE half bit patterns,
// and double-precision formulas. Kernel tests also run on the table that
// bn_cpu_kernels_select picks here (AVX2 / AVX-512 when present), which must
// agree with the dense reference exactly.
#include "test_util.h"

#include <math.h>

#include "gguf.h"
#include "half.h"
#include "kernels.h"
#include "ops.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static float rand_unit(void) { // [-1, 1)
    return (float)((bn_test_rand(&rng) >> 40) * (2.0 / (1ull << 24)) - 1.0);
}

static const bn_cpu_kernels *kernel_sets[2];
static int n_kernel_sets;

static int setup(void **state) {
    (void)state;
    kernel_sets[0] = &bn_kernels_scalar;
    n_kernel_sets = 1;
    const bn_cpu_kernels *best = NULL;
    if (bn_cpu_kernels_select("auto", &best, NULL) == 0 && best != &bn_kernels_scalar)
        kernel_sets[n_kernel_sets++] = best;
    fprintf(stderr, "kernel sets under test: scalar%s%s\n", n_kernel_sets > 1 ? ", " : "",
            n_kernel_sets > 1 ? kernel_sets[1]->name : "");
    return 0;
}

// ---- quantization ------------------------------------------------------------

static void test_quantize_ties_round_half_even(void **state) {
    (void)state;
    // max|x| = 127 makes s = 1, so x*s is exactly x and .5 cases are exact ties.
    const float x[] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49f, -126.5f, 125.5f};
    const int8_t want[] = {127, 0, 2, 2, 0, -2, -2, 3, -126, 126};
    int8_t q[10];
    int32_t qsum = 0;
    float s = bn_quantize_i8(x, 10, q, &qsum);
    assert_true(s == 1.0f);
    int32_t sum = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(q[i], want[i]);
        sum += want[i];
    }
    assert_int_equal(qsum, sum);
}

static void test_quantize_scale_and_range(void **state) {
    (void)state;
    enum { N = 301 };
    float x[N];
    int8_t q[N];
    for (int i = 0; i < N; i++) x[i] = 3.7f * rand_unit();
    x[123] = -4.25f; // the absmax, negative
    int32_t qsum;
    float s = bn_quantize_i8(x, N, q, &qsum);
    assert_true(s == 127.0f / 4.25f);
    assert_int_equal(q[123], -127);
    int32_t sum = 0;
    for (int i = 0; i < N; i++) {
        double want = nearbyint((double)(x[i] * s));
        assert_int_equal(q[i], (int)want);
        assert_true(q[i] >= -127 && q[i] <= 127);
        sum += q[i];
    }
    assert_int_equal(qsum, sum);
}

static void test_quantize_floor(void **state) {
    (void)state;
    float zero[7] = {0};
    int8_t q[7];
    int32_t qsum = 99;
    float s = bn_quantize_i8(zero, 7, q, &qsum);
    assert_true(isfinite(s));
    assert_true(s == 127.0f / 1e-5f); // the 1e-5 floor on max|x|
    for (int i = 0; i < 7; i++) assert_int_equal(q[i], 0);
    assert_int_equal(qsum, 0);
    // Below the floor the scale stays put: 4e-6 * 127/1e-5 = 50.8 -> 51.
    float tiny[2] = {4e-6f, -1e-7f};
    s = bn_quantize_i8(tiny, 2, q, NULL);
    assert_true(s == 127.0f / 1e-5f);
    assert_int_equal(q[0], 51);
    assert_int_equal(q[1], -1);
}

// ---- I2_S ----------------------------------------------------------------------

// Independent encoder from docs/architecture.md: I2_S: element k of a row lives in byte 32*(k/128) +
// (k%32), at bit pair 3 - (k%128)/32 counted from the low end (bits 7:6 first).
static void i2s_encode_row(const int8_t *t, int64_t K, uint8_t *row) {
    memset(row, 0, (size_t)K / 4);
    for (int64_t k = 0; k < K; k++) {
        const int64_t blk = k / 128, within = k % 128;
        const int shift = 6 - 2 * (int)(within / 32);
        const uint8_t code = t[k] < 0 ? 0 : t[k] == 0 ? 1 : 2;
        row[32 * blk + within % 32] |= (uint8_t)(code << shift);
    }
}

static void test_i2s_decode_hand_built(void **state) {
    (void)state;
    // Two rows of K = 256 (two blocks each) and a single nonzero weight. Each q
    // vector is unique per element (qa is zero only at 128, qb only at 127), so
    // the product tells which element index the bit pair was read as.
    enum { K = 256 };
    int8_t qa[K], qb[K];
    int32_t suma = 0, sumb = 0;
    for (int k = 0; k < K; k++) {
        qa[k] = (int8_t)(k - 128);
        qb[k] = (int8_t)(127 - k);
        suma += qa[k];
        sumb += qb[k];
    }
    const int8_t code_value[4] = {-1, 0, 1, 0};
    uint8_t w[2 * K / 4];
    for (int ks = 0; ks < n_kernel_sets; ks++)
        for (int row = 0; row < 2; row++)
            for (int byte = 0; byte < K / 4; byte++)
                for (int pair = 0; pair < 4; pair++)
                    for (int code = 0; code < 4; code++) {
                        memset(w, 0x55, sizeof w); // code 01 = 0 everywhere
                        uint8_t *b = &w[row * K / 4 + byte];
                        const int shift = 6 - 2 * pair;
                        *b = (uint8_t)((*b & ~(3u << shift)) | ((unsigned)code << shift));
                        const int elem = 128 * (byte / 32) + byte % 32 + 32 * pair;
                        int32_t y[2] = {12345, 12345};
                        kernel_sets[ks]->ternary_gemm(w, K, 0, 2, qa, &suma, 1, y, 2);
                        assert_int_equal(y[row], code_value[code] * qa[elem]);
                        assert_int_equal(y[1 - row], 0);
                        kernel_sets[ks]->ternary_gemm(w, K, 0, 2, qb, &sumb, 1, y, 2);
                        assert_int_equal(y[row], code_value[code] * qb[elem]);
                        assert_int_equal(y[1 - row], 0);
                    }
}

static void test_ternary_gemm_random(void **state) {
    (void)state;
    const int Ks[] = {128, 384, 640};
    const int Ms[] = {1, 7, 33};
    const int ns[] = {1, 3, 17};
    for (int ki = 0; ki < 3; ki++)
        for (int mi = 0; mi < 3; mi++)
            for (int ni = 0; ni < 3; ni++) {
                const int K = Ks[ki], M = Ms[mi], n = ns[ni];
                const int ldy = M + 3;
                int8_t *t = malloc((size_t)M * K);
                uint8_t *w = malloc((size_t)M * K / 4);
                int8_t *q = malloc((size_t)n * K);
                int32_t *qsum = calloc((size_t)n, sizeof *qsum);
                int32_t *want = calloc((size_t)n * ldy, sizeof *want);
                int32_t *y = malloc((size_t)n * ldy * sizeof *y);
                for (int i = 0; i < M * K; i++) t[i] = (int8_t)(bn_test_rand(&rng) % 3) - 1;
                for (int r = 0; r < M; r++) i2s_encode_row(t + (int64_t)r * K, K, w + (int64_t)r * K / 4);
                for (int i = 0; i < n * K; i++) q[i] = (int8_t)(bn_test_rand(&rng) & 0xff);
                q[0] = -128; // the one value rint never produces, but kernels must take it
                for (int j = 0; j < n; j++)
                    for (int k = 0; k < K; k++) qsum[j] += q[j * K + k];
                for (int j = 0; j < n; j++)
                    for (int r = 0; r < M; r++) {
                        int32_t acc = 0;
                        for (int k = 0; k < K; k++) acc += t[r * K + k] * q[j * K + k];
                        want[j * ldy + r] = acc;
                    }
                for (int ks = 0; ks < n_kernel_sets; ks++) {
                    for (int i = 0; i < n * ldy; i++) y[i] = -7;
                    // Two calls over split row ranges, as two threads would do.
                    const int mid = M / 2;
                    kernel_sets[ks]->ternary_gemm(w, K, 0, mid, q, qsum, n, y, ldy);
                    kernel_sets[ks]->ternary_gemm(w, K, mid, M, q, qsum, n, y, ldy);
                    for (int j = 0; j < n; j++) {
                        for (int r = 0; r < M; r++) assert_int_equal(y[j * ldy + r], want[j * ldy + r]);
                        for (int r = M; r < ldy; r++) assert_int_equal(y[j * ldy + r], -7);
                    }
                }
                free(t);
                free(w);
                free(q);
                free(qsum);
                free(want);
                free(y);
            }
}

static void test_ternary_code_11_is_zero(void **state) {
    (void)state;
    uint8_t w[32];
    memset(w, 0xff, sizeof w); // 0b11 everywhere: never written, read as 0
    int8_t q[128];
    for (int i = 0; i < 128; i++) q[i] = (int8_t)(i - 64);
    int32_t qsum = -64, y = 1;
    for (int ks = 0; ks < n_kernel_sets; ks++) {
        kernel_sets[ks]->ternary_gemm(w, 128, 0, 1, q, &qsum, 1, &y, 1);
        assert_int_equal(y, 0);
    }
}

// ---- half precision ------------------------------------------------------------

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_f16_to_f32_known(void **state) {
    (void)state;
    assert_true(bn_f16_to_f32(0x3c00) == 1.0f);
    assert_true(bn_f16_to_f32(0xc000) == -2.0f);
    assert_true(bn_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(bn_f16_to_f32(0x0400) == 0x1p-14f);        // smallest normal
    assert_true(bn_f16_to_f32(0x0001) == 0x1p-24f);        // smallest subnormal
    assert_true(bn_f16_to_f32(0x03ff) == 1023 * 0x1p-24f); // largest subnormal
    assert_true(bn_f16_to_f32(0x8001) == -0x1p-24f);
    assert_true(bn_f16_to_f32(0x3555) == 0x1.554p-2f);
    assert_int_equal(bits(bn_f16_to_f32(0x8000)), 0x80000000u); // -0
    assert_true(isinf(bn_f16_to_f32(0x7c00)) && bn_f16_to_f32(0x7c00) > 0);
    assert_true(isinf(bn_f16_to_f32(0xfc00)) && bn_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(bn_f16_to_f32(0x7e00)));
    assert_true(isnan(bn_f16_to_f32(0x7c01)));
}

static void test_f32_to_f16_known(void **state) {
    (void)state;
    assert_int_equal(bn_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(bn_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(bn_f32_to_f16(0.0f), 0x0000);
    assert_int_equal(bn_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(bn_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(bn_f32_to_f16(65519.996f), 0x7bff); // just below the halfway point
    assert_int_equal(bn_f32_to_f16(65520.0f), 0x7c00);   // halfway to 65536: to inf (even)
    assert_int_equal(bn_f32_to_f16(1e9f), 0x7c00);
    assert_int_equal(bn_f32_to_f16(-INFINITY), 0xfc00);
    const uint16_t nan = bn_f32_to_f16(NAN);
    assert_true((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0);
    // Ties to even among normals: 1 + 2^-11 is halfway between 0x3c00 and 0x3c01.
    assert_int_equal(bn_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    assert_int_equal(bn_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    assert_int_equal(bn_f32_to_f16(1.0f + 0x1p-11f + 0x1p-23f), 0x3c01); // past the tie
    // Subnormals and their ties.
    assert_int_equal(bn_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(bn_f32_to_f16(0x1p-25f), 0x0000);                // tie -> even (0)
    assert_int_equal(bn_f32_to_f16(0x1.000002p-25f), 0x0001);         // just past the tie
    assert_int_equal(bn_f32_to_f16(3 * 0x1p-25f), 0x0002);            // tie 1|2 -> 2
    assert_int_equal(bn_f32_to_f16(5 * 0x1p-25f), 0x0002);            // tie 2|3 -> 2
    assert_int_equal(bn_f32_to_f16(-0x1p-30f), 0x8000);               // underflow keeps sign
    assert_int_equal(bn_f32_to_f16(0x1p-14f - 0x1p-26f), 0x0400);     // rounds up to normal
    assert_int_equal(bn_f32_to_f16(1023 * 0x1p-24f), 0x03ff);
}

static void test_f16_roundtrip_all(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        const float f = bn_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            assert_true(isnan(bn_f16_to_f32(bn_f32_to_f16(f))));
            continue;
        }
        assert_int_equal(bn_f32_to_f16(f), h);
        // The midpoint to the next half up rounds to whichever of the two is even.
        if ((h & 0x7fff) < 0x7bff) {
            const float next = bn_f16_to_f32((uint16_t)(h + 1));
            const double mid = ((double)f + (double)next) / 2;
            const uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            assert_int_equal(bn_f32_to_f16((float)mid), want);
        }
    }
}

static void test_bf16(void **state) {
    (void)state;
    assert_true(bn_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(bn_bf16_to_f32(0xc040) == -3.0f);
    assert_true(bn_bf16_to_f32(0x0001) == 0x1p-133f); // subnormal
    assert_true(isinf(bn_bf16_to_f32(0x7f80)));
    assert_true(isnan(bn_bf16_to_f32(0x7fc0)));
}

// ---- float ops -------------------------------------------------------------------

static void test_rmsnorm(void **state) {
    (void)state;
    enum { N = 67 };
    float x[N], w[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = 5.0f * rand_unit();
        w[i] = rand_unit();
    }
    double ss = 0;
    for (int i = 0; i < N; i++) ss += (double)x[i] * x[i];
    const double r = 1.0 / sqrt(ss / N + 1e-5);
    bn_rmsnorm(y, x, w, N, 1e-5f);
    for (int i = 0; i < N; i++) assert_true(fabs(y[i] - w[i] * x[i] * r) < 1e-6 * (1 + fabs(w[i] * x[i] * r)));
    bn_rmsnorm(x, x, w, N, 1e-5f); // in place
    assert_memory_equal(x, y, sizeof y);
}

static void test_rope_neox(void **state) {
    (void)state;
    enum { HD = 64, NH = 3 };
    const int rots[] = {64, 32};
    const int poss[] = {0, 1, 17, 511};
    const float base = 500000.0f;
    for (int ri = 0; ri < 2; ri++)
        for (int pi = 0; pi < 4; pi++) {
            const int n_rot = rots[ri], pos = poss[pi];
            float x[NH * HD], y[NH * HD];
            for (int i = 0; i < NH * HD; i++) x[i] = y[i] = rand_unit();
            bn_rope_neox(y, NH, HD, n_rot, pos, base);
            for (int h = 0; h < NH; h++) {
                const float *xh = x + h * HD, *yh = y + h * HD;
                for (int i = 0; i < n_rot / 2; i++) {
                    const double th = pos * pow(base, -2.0 * i / n_rot);
                    const double a = xh[i], b = xh[i + n_rot / 2];
                    // float theta is accurate to a few ulp of pos*theta_i (<= 511 rad)
                    const double tol = 1e-6 + 4e-7 * pos;
                    assert_true(fabs(yh[i] - (a * cos(th) - b * sin(th))) < tol);
                    assert_true(fabs(yh[i + n_rot / 2] - (a * sin(th) + b * cos(th))) < tol);
                }
                for (int i = n_rot; i < HD; i++) assert_true(yh[i] == xh[i]); // not rotated
            }
            if (pos == 0) assert_memory_equal(x, y, sizeof x);
        }
}

static void test_softmax(void **state) {
    (void)state;
    float x[9] = {1000.0f, 999.0f, -5.0f, 0.0f, 3.0f, 1000.0f, -INFINITY, 2.0f, 1.0f};
    double e[9], sum = 0;
    for (int i = 0; i < 9; i++) sum += e[i] = exp((double)x[i] - 1000.0);
    bn_softmax(x, 9);
    for (int i = 0; i < 9; i++) assert_true(fabs(x[i] - e[i] / sum) < 1e-6);
    assert_true(x[6] == 0.0f);
}

static void test_attention_head(void **state) {
    (void)state;
    enum { HD = 64, NKV_HEADS = 3, MAXKV = 37 };
    const int stride = NKV_HEADS * HD;
    uint16_t k[MAXKV * NKV_HEADS * HD], v[MAXKV * NKV_HEADS * HD];
    for (int i = 0; i < MAXKV * stride; i++) {
        k[i] = bn_f32_to_f16(2.0f * rand_unit());
        v[i] = bn_f32_to_f16(rand_unit());
    }
    float q[HD];
    for (int d = 0; d < HD; d++) q[d] = bn_f16_to_f32(bn_f32_to_f16(2.0f * rand_unit()));
    const float scale = 1.0f / sqrtf(HD);
    const int n_kvs[] = {1, 5, 37};
    for (int ni = 0; ni < 3; ni++)
        for (int kvh = 0; kvh < NKV_HEADS; kvh++) {
            const int n_kv = n_kvs[ni];
            float scores[MAXKV], out[HD];
            bn_attention_head(q, k + kvh * HD, v + kvh * HD, stride, HD, n_kv, scale, scores, out);
            // Naive: two loops, double precision, then the f16 probabilities.
            double s[MAXKV], max = -INFINITY, sum = 0;
            for (int j = 0; j < n_kv; j++) {
                s[j] = 0;
                for (int d = 0; d < HD; d++)
                    s[j] += (double)q[d] * bn_f16_to_f32(k[j * stride + kvh * HD + d]);
                s[j] *= scale;
                if (s[j] > max) max = s[j];
            }
            for (int j = 0; j < n_kv; j++) sum += s[j] = exp(s[j] - max);
            for (int d = 0; d < HD; d++) {
                double o = 0;
                for (int j = 0; j < n_kv; j++)
                    o += bn_f16_to_f32(bn_f32_to_f16((float)(s[j] / sum))) *
                         (double)bn_f16_to_f32(v[j * stride + kvh * HD + d]);
                // one f16 ulp of a probability (2^-11 relative) may differ at a tie
                assert_true(fabs(out[d] - o) < 1e-3);
            }
            if (n_kv == 1)
                for (int d = 0; d < HD; d++)
                    assert_true(out[d] == bn_f16_to_f32(v[kvh * HD + d]));
        }
}

static void test_relu_sqr_mul(void **state) {
    (void)state;
    float g[5] = {-2.0f, 0.0f, 0.5f, 3.0f, -0.0f};
    const float up[5] = {7.0f, 7.0f, 2.0f, -1.0f, 1.0f};
    bn_relu_sqr_mul(g, up, 5);
    const float want[5] = {0.0f, 0.0f, 0.5f, -9.0f, 0.0f};
    for (int i = 0; i < 5; i++) assert_true(g[i] == want[i]);
}

// Distance in units in the last place between two finite floats of any sign.
static int64_t ulp_distance(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    const int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia; // monotonic in the value
    const int64_t ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return oa > ob ? oa - ob : ob - oa;
}

// The scalar silu_mul (ggml's polynomial exp in whole blocks of 8, libm's expf in
// the tail) against the definition x / (1 + expf(-x)): within 4 ulp over a sweep
// of [-20, 20] and at the extremes (±80, ±100, ±200 reach ggml's |n| > 126 and
// > 192 branches), exact at zeros, infinities and NaN; the tail is the libm
// formula bit for bit.
static void test_silu_mul_scalar(void **state) {
    (void)state;
    enum { N = 1 << 16 }; // a multiple of 8: every element goes through the polynomial
    float *g = malloc(sizeof *g * N), *up = malloc(sizeof *up * N);
    assert_true(g && up);
    for (int i = 0; i < N; i++) g[i] = -20.0f + 40.0f * (float)i / (float)(N - 1), up[i] = 1.0f;
    bn_silu_mul_scalar(g, up, N);
    int64_t worst = 0;
    for (int i = 0; i < N; i++) {
        const float x = -20.0f + 40.0f * (float)i / (float)(N - 1);
        const float want = x / (1.0f + expf(-x));
        const int64_t d = ulp_distance(g[i], want);
        if (d > 4) fail_msg("silu(%a) = %a, libm %a (%lld ulp)", (double)x, (double)g[i],
                            (double)want, (long long)d);
        if (d > worst) worst = d;
    }
    assert_true(worst >= 1); // it is not libm's expf (that would be the tail's job)

    static const float ext[16] = {80.0f, -80.0f,  100.0f,   -100.0f,  200.0f, -200.0f,
                                  87.5f, -87.5f,  133.5f,   -133.5f,  1e-30f, -1e-30f,
                                  1e-40f, -1e-40f, 3.4e38f, -3.4e38f};
    float e[16];
    memcpy(e, ext, sizeof e);
    bn_silu_mul_scalar(e, up, 16);
    for (int i = 0; i < 16; i++) {
        const float want = ext[i] / (1.0f + expf(-ext[i]));
        if (ulp_distance(e[i], want) > 4 || signbit(e[i]) != signbit(want))
            fail_msg("silu(%a) = %a, libm %a", (double)ext[i], (double)e[i], (double)want);
    }
    float sp[8] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f, 2.0f, -3.0f};
    const float upsp[8] = {3.0f, 3.0f, 2.0f, 1.0f, 1.0f, 0.0f, -1.0f, 0.5f};
    bn_silu_mul_scalar(sp, upsp, 8);
    assert_true(sp[0] == 0.0f && !signbit(sp[0]));
    assert_true(sp[1] == 0.0f && signbit(sp[1]));
    assert_true(sp[2] == INFINITY);
    assert_true(isnan(sp[3])); // -inf / (1 + inf), as in ggml and libm
    assert_true(isnan(sp[4]));
    assert_true(sp[5] == 0.0f);
    assert_true(ulp_distance(sp[6], -2.0f / (1.0f + expf(-2.0f))) <= 4);

    // A tail (n % 8 elements after the blocks) is exactly the libm formula.
    float t[13], tu[13];
    for (int i = 0; i < 13; i++) t[i] = -6.0f + 0.93f * (float)i, tu[i] = 0.25f + 0.1f * (float)i;
    bn_silu_mul_scalar(t, tu, 13);
    for (int i = 8; i < 13; i++) {
        const float x = -6.0f + 0.93f * (float)i;
        const float s = x / (1.0f + expf(-x));
        assert_true(t[i] == s * tu[i]);
    }
    free(g);
    free(up);
}

static void test_embed_rows_and_gemv(void **state) {
    (void)state;
    enum { K = 131, ROWS = 9 };
    float f32[ROWS * K], x[K];
    uint16_t f16[ROWS * K], bf16[ROWS * K];
    for (int i = 0; i < ROWS * K; i++) {
        f32[i] = rand_unit();
        f16[i] = bn_f32_to_f16(f32[i]);
        bf16[i] = (uint16_t)(bits(f32[i]) >> 16); // truncation is fine for a test input
    }
    for (int k = 0; k < K; k++) x[k] = rand_unit();
    float row[K];
    assert_int_equal(bn_embed_row(row, f32, BN_GGML_F32, K, 4), 0);
    assert_memory_equal(row, f32 + 4 * K, sizeof row);
    assert_int_equal(bn_embed_row(row, f16, BN_GGML_F16, K, 8), 0);
    for (int k = 0; k < K; k++) assert_true(row[k] == bn_f16_to_f32(f16[8 * K + k]));
    assert_int_equal(bn_embed_row(row, bf16, BN_GGML_BF16, K, 0), 0);
    for (int k = 0; k < K; k++) assert_int_equal(bits(row[k]), (uint32_t)bf16[k] << 16);
    assert_int_equal(bn_embed_row(row, f32, BN_GGML_I2_S, K, 0), -1);

    float y[ROWS];
    for (int r = 0; r < ROWS; r++) y[r] = -1234.0f;
    for (int ks = 0; ks < n_kernel_sets; ks++) {
        kernel_sets[ks]->f16_gemv(f16, K, 2, 7, x, y);
        for (int r = 0; r < ROWS; r++) {
            if (r < 2 || r >= 7) {
                assert_true(y[r] == -1234.0f);
                continue;
            }
            double want = 0;
            for (int k = 0; k < K; k++) want += (double)bn_f16_to_f32(f16[r * K + k]) * x[k];
            assert_true(fabs(y[r] - want) < 1e-4);
        }
    }
    assert_int_equal(bn_float_gemv(f32, BN_GGML_F32, K, 0, ROWS, x, y), 0);
    for (int r = 0; r < ROWS; r++) {
        double want = 0;
        for (int k = 0; k < K; k++) want += (double)f32[r * K + k] * x[k];
        assert_true(fabs(y[r] - want) < 1e-4);
    }
    assert_int_equal(bn_float_gemv(bf16, BN_GGML_BF16, K, 0, ROWS, x, y), 0);
    for (int r = 0; r < ROWS; r++) {
        double want = 0;
        for (int k = 0; k < K; k++) want += (double)bn_bf16_to_f32(bf16[r * K + k]) * x[k];
        assert_true(fabs(y[r] - want) < 1e-4);
    }
    assert_int_equal(bn_float_gemv(f16, BN_GGML_F16, K, 0, ROWS, x, y), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_ties_round_half_even),
        cmocka_unit_test(test_quantize_scale_and_range),
        cmocka_unit_test(test_quantize_floor),
        cmocka_unit_test(test_i2s_decode_hand_built),
        cmocka_unit_test(test_ternary_gemm_random),
        cmocka_unit_test(test_ternary_code_11_is_zero),
        cmocka_unit_test(test_f16_to_f32_known),
        cmocka_unit_test(test_f32_to_f16_known),
        cmocka_unit_test(test_f16_roundtrip_all),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope_neox),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_attention_head),
        cmocka_unit_test(test_relu_sqr_mul),
        cmocka_unit_test(test_silu_mul_scalar),
        cmocka_unit_test(test_embed_rows_and_gemv),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
