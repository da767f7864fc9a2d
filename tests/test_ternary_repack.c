// test_ternary_repack.c - TQ1_0 / TQ2_0 -> I2_S (core/ternary_repack.h).
//
// Blocks come from hand-written bytes and from an encoder written here from the
// layout (not from the decoder under test). `test_ternary_repack gguf` instead
// checks the file tests/tq_reference.py wrote with gguf-py's own quantizer, named
// by BITNET_TQ_REFERENCE (CTest sets it when the Python tests are on).
#include "test_util.h"

#include <math.h>
#include <stdbool.h>

#include "gguf.h"
#include "half.h" // bn_f16_to_f32: a second half decoder, not the one under test
#include "i2s.h"
#include "ternary_repack.h"

#define ONE 0x3C00  // f16 1.0
#define HALF 0x3800 // f16 0.5

// Element of a TQ1_0 block held by trit n of byte i (i < 52); -1 for qh's
// unused fifth trit.
static int tq1_elem(int i, int n) {
    if (i < 32) return i + 32 * n;
    if (i < 48) return 160 + (i - 32) + 16 * n;
    return n < 4 ? 240 + (i - 48) + 4 * n : -1;
}

// Encodes n ternary values (n % 256 == 0), block b with f16 scale d[b].
static void tq_encode(uint32_t type, const int8_t *t, uint64_t n, const uint16_t *d, uint8_t *out) {
    const int bb = type == BN_GGML_TQ1_0 ? 54 : 66;
    for (uint64_t b = 0; b < n / BN_TQ_BLOCK; b++, t += BN_TQ_BLOCK, out += bb) {
        if (type == BN_GGML_TQ1_0) {
            for (int i = 0; i < 52; i++) {
                int v = 0; // the trits as a base-3 number, first trit most significant
                for (int k = 0; k < 5; k++) {
                    const int e = tq1_elem(i, k);
                    v = 3 * v + (e >= 0 ? t[e] + 1 : 0);
                }
                out[i] = (uint8_t)((v * 256 + 242) / 243); // the fraction v / 243, rounded up
            }
        } else {
            for (int i = 0; i < 64; i++) {
                out[i] = 0;
                for (int l = 0; l < 4; l++)
                    out[i] |= (uint8_t)((t[128 * (i / 32) + i % 32 + 32 * l] + 1) << (2 * l));
            }
        }
        out[bb - 2] = (uint8_t)d[b];
        out[bb - 1] = (uint8_t)(d[b] >> 8);
    }
}

// Repacks, expecting success; returns the I2_S buffer and checks its tail.
static uint8_t *repack_ok(uint32_t type, const uint8_t *tq, uint64_t K, uint64_t rows,
                          float *scale) {
    uint8_t *i2s = NULL;
    bn_error err = {{0}};
    if (bn_tq_to_i2s("w", type, tq, bn_tq_nbytes(type, K, rows), K, rows, &i2s, scale, &err) != 0)
        fail_msg("repack failed: %s", err.msg);
    const uint8_t *tail = i2s + K * rows / 4;
    float s;
    memcpy(&s, tail, 4);
    assert_true(s == *scale || (isnan(s) && isnan(*scale)));
    for (int k = 4; k < BN_I2S_TAIL; k++) assert_int_equal(tail[k], 0);
    return i2s;
}

// Repacks, expecting failure with a message holding every one of want[].
static void repack_fails(uint32_t type, const uint8_t *tq, uint64_t nbytes, uint64_t K,
                         uint64_t rows, const char *const *want, int n_want) {
    uint8_t *i2s = (uint8_t *)1;
    float scale = -1;
    bn_error err = {{0}};
    assert_int_equal(
        bn_tq_to_i2s("blk.7.ffn_up.weight", type, tq, nbytes, K, rows, &i2s, &scale, &err), -1);
    assert_null(i2s);
    for (int k = 0; k < n_want; k++)
        if (!strstr(err.msg, want[k])) fail_msg("error '%s' lacks '%s'", err.msg, want[k]);
}

static void expect_values(const uint8_t *i2s, const int8_t *t, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (bn_i2s_get(i2s, i) != t[i]) fail_msg("element %llu: %d, want %d", (unsigned long long)i,
                                                 bn_i2s_get(i2s, i), t[i]);
}

static void test_nbytes(void **state) {
    (void)state;
    assert_int_equal(bn_tq_nbytes(BN_GGML_TQ1_0, 256, 1), 54);
    assert_int_equal(bn_tq_nbytes(BN_GGML_TQ2_0, 256, 1), 66);
    assert_int_equal(bn_tq_nbytes(BN_GGML_TQ1_0, 2560, 37), 10 * 37 * 54);
    assert_int_equal(bn_tq_nbytes(BN_GGML_TQ2_0, 768, 3), 3 * 3 * 66);
    assert_int_equal(bn_tq_nbytes(BN_GGML_TQ1_0, 128, 2), 0);
    assert_int_equal(bn_tq_nbytes(BN_GGML_TQ2_0, 384, 1), 0);
    assert_int_equal(bn_tq_nbytes(BN_GGML_TQ1_0, 0, 1), 0);
    assert_int_equal(bn_tq_nbytes(BN_GGML_TQ1_0, 256, 0), 0);
    assert_int_equal(bn_tq_nbytes(BN_GGML_I2_S, 256, 1), 0);
    assert_int_equal(bn_tq_nbytes(BN_GGML_TQ2_0, 1ull << 62, 8), 0); // overflows
    // The GGUF reader sizes these tensors the same way.
    for (uint32_t type = BN_GGML_TQ1_0; type <= BN_GGML_TQ2_0; type++) {
        uint64_t bytes;
        assert_int_equal(bn_ggml_type_nbytes(type, 2560 * 3, &bytes), 0);
        assert_int_equal(bytes, bn_tq_nbytes(type, 2560, 3));
    }
    assert_string_equal(bn_ggml_type_name(BN_GGML_TQ1_0), "TQ1_0");
    assert_string_equal(bn_ggml_type_name(BN_GGML_TQ2_0), "TQ2_0");
}

// Bytes written by hand from the layout, one block of each type.
static void test_hand_built(void **state) {
    (void)state;
    int8_t want[BN_TQ_BLOCK] = {0};
    float scale;

    uint8_t tq2[66];
    memset(tq2, 0x55, 64); // 01 01 01 01: four zeros
    tq2[0] = 0x92;         // bits 1:0, 3:2, 5:4, 7:6 = 10 00 01 10: elements 0, 32, 64, 96
    want[0] = 1, want[32] = -1, want[64] = 0, want[96] = 1;
    tq2[37] = 0x06; // bits 1:0 .. 7:6 = 10 01 00 00: elements 133, 165, 197, 229
    want[133] = 1, want[165] = 0, want[197] = -1, want[229] = -1;
    tq2[64] = HALF & 0xff, tq2[65] = HALF >> 8;
    uint8_t *i2s = repack_ok(BN_GGML_TQ2_0, tq2, 256, 1, &scale);
    assert_true(scale == 0.5f);
    expect_values(i2s, want, BN_TQ_BLOCK);
    assert_int_equal(i2s[0], 0x86); // I2_S: elements 0, 32, 64, 96 in bits 7:6 .. 1:0
    free(i2s);

    memset(want, 0, sizeof want);
    uint8_t tq1[54];
    memset(tq1, 128, 48); // ceil(121 * 256 / 243), 121 = 11111 in base 3: five zeros
    memset(tq1 + 48, 127, 4); // ceil(120 * 256 / 243), 120 = 11110: four zeros
    tq1[3] = 187; // 177 = 20120: +1 -1 0 +1 -1 at 3, 35, 67, 99, 131
    want[3] = 1, want[35] = -1, want[67] = 0, want[99] = 1, want[131] = -1;
    tq1[39] = 0; // 00000 at 167, 183, 199, 215, 231
    want[167] = want[183] = want[199] = want[215] = want[231] = -1;
    tq1[47] = 255; // 22222 at 175, 191, 207, 223, 239
    want[175] = want[191] = want[207] = want[223] = want[239] = 1;
    tq1[50] = 253; // 240 = 22220: +1 at 242, 246, 250, 254
    want[242] = want[246] = want[250] = want[254] = 1;
    tq1[52] = ONE & 0xff, tq1[53] = ONE >> 8;
    i2s = repack_ok(BN_GGML_TQ1_0, tq1, 256, 1, &scale);
    assert_true(scale == 1.0f);
    expect_values(i2s, want, BN_TQ_BLOCK);
    free(i2s);
}

// One block per (position, sign): every element of both layouts lands in place.
static void test_every_position(void **state) {
    (void)state;
    const uint64_t rows = 2 * BN_TQ_BLOCK, n = rows * BN_TQ_BLOCK;
    int8_t *t = calloc(n, 1);
    uint16_t *d = malloc(rows * sizeof *d);
    uint8_t *tq = malloc(rows * 66);
    for (uint64_t r = 0; r < rows; r++) {
        t[r * BN_TQ_BLOCK + r / 2] = r % 2 ? 1 : -1;
        d[r] = ONE;
    }
    for (uint32_t type = BN_GGML_TQ1_0; type <= BN_GGML_TQ2_0; type++) {
        tq_encode(type, t, n, d, tq);
        float scale;
        uint8_t *i2s = repack_ok(type, tq, BN_TQ_BLOCK, rows, &scale);
        assert_true(scale == 1.0f);
        expect_values(i2s, t, n);
        free(i2s);
    }
    free(t), free(d), free(tq);
}

// Blocks whose values are all 0 may carry any scale, or 0; so may blocks with
// d = 0 whatever their codes, which become zeros.
static void test_zero_blocks(void **state) {
    (void)state;
    uint64_t seed = 7;
    int8_t t[4 * BN_TQ_BLOCK] = {0}, want[4 * BN_TQ_BLOCK] = {0};
    for (int i = 0; i < 4 * BN_TQ_BLOCK; i++)
        if (i / BN_TQ_BLOCK % 2) t[i] = (int8_t)(bn_test_rand(&seed) % 3) - 1;
    memcpy(want + BN_TQ_BLOCK, t + BN_TQ_BLOCK, BN_TQ_BLOCK); // block 1 kept
    memset(t + 2 * BN_TQ_BLOCK, 1, BN_TQ_BLOCK);             // block 2: +1s, but d = 0
    memcpy(want + 3 * BN_TQ_BLOCK, t + 3 * BN_TQ_BLOCK, BN_TQ_BLOCK);
    const uint16_t d[4] = {0x4000 /* 2.0 */, HALF, 0x0000, HALF};
    uint8_t tq[4 * 66];
    for (uint32_t type = BN_GGML_TQ1_0; type <= BN_GGML_TQ2_0; type++) {
        tq_encode(type, t, 4 * BN_TQ_BLOCK, d, tq);
        float scale;
        uint8_t *i2s = repack_ok(type, tq, 2 * BN_TQ_BLOCK, 2, &scale);
        assert_true(scale == 0.5f);
        expect_values(i2s, want, 4 * BN_TQ_BLOCK);
        free(i2s);
        // All blocks zero: the scale is 0.
        const int8_t zeros[2 * BN_TQ_BLOCK] = {0};
        const uint16_t dz[2] = {ONE, 0x8000 /* -0 */};
        tq_encode(type, zeros, 2 * BN_TQ_BLOCK, dz, tq);
        i2s = repack_ok(type, tq, BN_TQ_BLOCK, 2, &scale);
        assert_true(scale == 0.0f);
        expect_values(i2s, zeros, 2 * BN_TQ_BLOCK);
        free(i2s);
    }
}

static void test_mixed_scales(void **state) {
    (void)state;
    int8_t t[3 * BN_TQ_BLOCK] = {0};
    t[5] = 1, t[2 * BN_TQ_BLOCK + 9] = -1; // block 1 is all zero
    const uint16_t d[3] = {HALF, ONE, 0x3400 /* 0.25 */};
    uint8_t tq[3 * 66];
    for (uint32_t type = BN_GGML_TQ1_0; type <= BN_GGML_TQ2_0; type++) {
        tq_encode(type, t, 3 * BN_TQ_BLOCK, d, tq);
        const char *want[] = {"blk.7.ffn_up.weight", bn_ggml_type_name(type), "block 2 (row 2)",
                              "0.25", "block 0 has 0.5", "one scale per tensor"};
        repack_fails(type, tq, bn_tq_nbytes(type, 256, 3), 256, 3, want, 6);
    }
}

static void test_bad_input(void **state) {
    (void)state;
    int8_t t[2 * BN_TQ_BLOCK] = {0};
    t[0] = 1;
    const uint16_t d[2] = {ONE, ONE};
    uint8_t tq[2 * 66];
    for (uint32_t type = BN_GGML_TQ1_0; type <= BN_GGML_TQ2_0; type++) {
        const uint64_t nb = bn_tq_nbytes(type, 256, 2), bb = nb / 2;
        tq_encode(type, t, 2 * BN_TQ_BLOCK, d, tq);
        const char *k128[] = {"blk.7.ffn_up.weight", "128 elements", "256-element blocks"};
        repack_fails(type, tq, nb, 128, 4, k128, 3);
        const char *k384[] = {"384 elements"};
        repack_fails(type, tq, nb, 384, 1, k384, 1);
        const char *k0[] = {"0 elements"};
        repack_fails(type, tq, nb, 0, 1, k0, 1);
        const char *size[] = {"blk.7.ffn_up.weight", "is 131 bytes", "take 132"};
        if (type == BN_GGML_TQ1_0) size[1] = "is 107 bytes", size[2] = "take 108";
        repack_fails(type, tq, nb - 1, 256, 2, size, 3);
        const char *empty[] = {"empty or too large"};
        repack_fails(type, tq, nb, 256, 0, empty, 1);
        tq[2 * bb - 1] = 0x7E; // block 1's d: NaN
        const char *nan[] = {"block 1 (row 1)", "non-finite scale"};
        repack_fails(type, tq, nb, 256, 2, nan, 2);
        tq[2 * bb - 2] = 0, tq[2 * bb - 1] = 0x7C; // infinity
        repack_fails(type, tq, nb, 256, 2, nan, 2);
    }
    // TQ2_0's fourth code (ggml would read it as +2) is refused.
    tq_encode(BN_GGML_TQ2_0, t, 2 * BN_TQ_BLOCK, d, tq);
    tq[66 + 33] |= 3 << 4; // block 1, byte 33: element 128 + 1 + 64
    const char *code3[] = {"TQ2_0 block 1 (row 0)", "element 193", "code 3"};
    repack_fails(BN_GGML_TQ2_0, tq, 132, 512, 1, code3, 3);
    const char *wrong_type[] = {"blk.7.ffn_up.weight", "I2_S (36) is not TQ1_0 or TQ2_0"};
    repack_fails(BN_GGML_I2_S, tq, 132, 512, 1, wrong_type, 2);
}

// Random tensors of odd shapes through the encoder here and back, including
// blocks that are all zero (any d) and blocks with d = 0.
static void test_random_roundtrip(void **state) {
    (void)state;
    static const uint64_t Ks[] = {256, 768, 2560}, Rs[] = {1, 3, 37};
    uint64_t seed = 0x5eed;
    for (uint32_t type = BN_GGML_TQ1_0; type <= BN_GGML_TQ2_0; type++)
        for (int ki = 0; ki < 3; ki++)
            for (int ri = 0; ri < 3; ri++) {
                const uint64_t K = Ks[ki], rows = Rs[ri], n = K * rows, nblk = n / BN_TQ_BLOCK;
                // a normal f16 above 0
                const uint16_t d0 = (uint16_t)(0x2000 + bn_test_rand(&seed) % 0x3000);
                int8_t *t = malloc(n), *want = malloc(n);
                uint16_t *d = malloc(nblk * sizeof *d);
                uint8_t *tq = malloc(bn_tq_nbytes(type, K, rows));
                for (uint64_t i = 0; i < n; i++) t[i] = (int8_t)(bn_test_rand(&seed) % 3) - 1;
                memcpy(want, t, n);
                for (uint64_t b = 0; b < nblk; b++) {
                    const uint64_t r = bn_test_rand(&seed) % 8;
                    d[b] = r == 0 ? 0 : d0;
                    if (r == 0) memset(want + b * BN_TQ_BLOCK, 0, BN_TQ_BLOCK);
                    if (r == 1) { // all zero, another scale
                        memset(t + b * BN_TQ_BLOCK, 0, BN_TQ_BLOCK);
                        memset(want + b * BN_TQ_BLOCK, 0, BN_TQ_BLOCK);
                        d[b] = ONE;
                    }
                }
                tq_encode(type, t, n, d, tq);
                float scale;
                uint8_t *i2s = repack_ok(type, tq, K, rows, &scale);
                bool any = false;
                for (uint64_t i = 0; i < n; i++) any |= want[i] != 0;
                assert_true(scale == (any ? bn_f16_to_f32(d0) : 0.0f));
                expect_values(i2s, want, n);
                free(t), free(want), free(d), free(tq), free(i2s);
            }
}

// ---- gguf-py's quantizer (tests/tq_reference.py; its docstring has the format) ----

static uint64_t rd(const uint8_t **p, int bytes) {
    uint64_t v = 0;
    for (int k = 0; k < bytes; k++) v |= (uint64_t)(*p)[k] << (8 * k);
    *p += bytes;
    return v;
}

static void test_gguf_reference(void **state) {
    (void)state;
    const char *path = getenv("BITNET_TQ_REFERENCE");
    if (!path || !*path) {
        fprintf(stderr, "SKIP: BITNET_TQ_REFERENCE is not set (CTest sets it when the Python tests "
                        "are on: -DBITNET_PYTHON_TESTS=ON in a build with the shared library)\n");
        skip();
    }
    size_t len;
    uint8_t *file = (uint8_t *)bn_read_file(path, &len);
    if (!file) fail_msg("cannot read %s (written by tests/tq_reference.py)", path);
    assert_true(len >= 12 && !memcmp(file, "BNTQREF1", 8));
    const uint8_t *p = file + 8, *end = file + len;
    const uint32_t count = (uint32_t)rd(&p, 4);
    int seen[2] = {0, 0};
    for (uint32_t k = 0; k < count; k++) {
        assert_true(end - p >= 24);
        const uint32_t type = (uint32_t)rd(&p, 4), K = (uint32_t)rd(&p, 4);
        const uint32_t rows = (uint32_t)rd(&p, 4), sbits = (uint32_t)rd(&p, 4);
        const uint64_t nbytes = rd(&p, 8), n = (uint64_t)K * rows;
        float s;
        memcpy(&s, &sbits, 4);
        assert_true(type == BN_GGML_TQ1_0 || type == BN_GGML_TQ2_0);
        assert_true((uint64_t)(end - p) >= nbytes + n);
        uint8_t *i2s = NULL;
        float scale;
        bn_error err = {{0}};
        if (bn_tq_to_i2s("ref", type, p, nbytes, K, rows, &i2s, &scale, &err) != 0)
            fail_msg("tensor %u (%s %u x %u): %s", k, bn_ggml_type_name(type), rows, K, err.msg);
        const int8_t *t = (const int8_t *)(p + nbytes);
        expect_values(i2s, t, n);
        // f16 keeps 11 significant bits: s is rounded by at most half a unit of 2^-10.
        if (fabsf(scale - s) > fabsf(s) * 0x1p-11f)
            fail_msg("tensor %u: scale %.9g, gguf-py's values were %.9g", k, scale, s);
        free(i2s);
        seen[type - BN_GGML_TQ1_0]++;
        p += nbytes + n;
    }
    assert_true(p == end);
    assert_true(seen[0] > 0 && seen[1] > 0);
    fprintf(stderr, "%d TQ1_0 and %d TQ2_0 tensors of gguf-py match\n", seen[0], seen[1]);
    free(file);
}

int main(int argc, char **argv) {
    const struct CMUnitTest gguf[] = {cmocka_unit_test(test_gguf_reference)};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nbytes),         cmocka_unit_test(test_hand_built),
        cmocka_unit_test(test_every_position), cmocka_unit_test(test_zero_blocks),
        cmocka_unit_test(test_mixed_scales),   cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_random_roundtrip),
    };
    if (argc > 1 && !strcmp(argv[1], "gguf")) return cmocka_run_group_tests(gguf, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
