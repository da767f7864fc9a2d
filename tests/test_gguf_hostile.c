// test_gguf_hostile.c - broken and hostile GGUF files must fail with a clear error,
// never crash, read out of bounds or allocate without bound. Run under ASan+UBSan
// (-DBITNET_SANITIZE=ON): every buffer handed to the reader is an exact-size heap
// copy, so one byte of overread is caught.
#include "test_util.h"

#include "gguf.h"
#include "gguf_builder.h"
#include "model.h"

// Opens a heap copy of exactly n bytes; on success also tries the model loader.
// Returns 0 if the GGUF opened, -1 if not (err filled).
static int try_open(const uint8_t *src, size_t n, bool *model_ok, bn_error *err) {
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, src, n);
    bn_gguf *g = NULL;
    int rc = bn_gguf_open_memory(copy, n, &g, err);
    if (model_ok) *model_ok = false;
    if (rc == 0) {
        bn_model *m = NULL;
        bn_error merr;
        if (bn_model_from_gguf(g, &m, &merr) == 0) {
            if (model_ok) *model_ok = true;
            bn_model_free(m); // closes g
        } else {
            assert_null(m);
            assert_true(merr.msg[0] != 0);
            bn_gguf_close(g);
        }
    } else {
        assert_null(g);
        assert_true(err->msg[0] != 0);
    }
    free(copy);
    return rc;
}

static void expect_fail(const uint8_t *buf, size_t n, const char *want) {
    bn_error err = {{0}};
    if (try_open(buf, n, NULL, &err) == 0) fail_msg("file opened; expected an error with '%s'", want);
    if (want && !strstr(err.msg, want)) fail_msg("error '%s' lacks '%s'", err.msg, want);
}

static void expect_fail_b(gb_builder *b, const char *want) {
    size_t n;
    uint8_t *buf = gb_finish(b, &n);
    expect_fail(buf, n, want);
    free(buf);
    gb_free(b);
}

static void expect_ok_b(gb_builder *b) {
    size_t n;
    uint8_t *buf = gb_finish(b, &n);
    bn_error err = {{0}};
    if (try_open(buf, n, NULL, &err) != 0) fail_msg("expected success: %s", err.msg);
    free(buf);
    gb_free(b);
}

// ---- truncation -------------------------------------------------------------------------

// Every prefix of a valid model (tensor data runs to the last byte) is invalid.
static void test_truncate_every_offset(void **state) {
    (void)state;
    gb_model_opts o = {0};
    size_t n;
    uint8_t *buf = gb_model(&o, &n);
    bool model_ok;
    bn_error err;
    assert_int_equal(try_open(buf, n, &model_ok, &err), 0);
    assert_true(model_ok);
    for (size_t len = 0; len < n; len++) {
        if (try_open(buf, len, NULL, &err) == 0) fail_msg("prefix of %zu/%zu bytes opened", len, n);
    }
    free(buf);
}

// The real fixture, cut at sampled offsets: densely through the fixed header, then
// spread over the (8 MB) vocabulary metadata and the tensor data.
static void test_truncate_fixture(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
    size_t n;
    uint8_t *buf = (uint8_t *)bn_read_file(path, &n);
    assert_non_null(buf);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t cuts[96];
    size_t nc = 0;
    for (size_t c = 0; c < 40; c++) cuts[nc++] = c * 7; // header, first keys
    while (nc < sizeof cuts / sizeof cuts[0] - 2) cuts[nc++] = (size_t)(bn_test_rand(&rng) % n);
    cuts[nc++] = n - 1;
    cuts[nc++] = n - 512; // inside the last tensor
    for (size_t i = 0; i < nc; i++) {
        bn_error err;
        if (try_open(buf, cuts[i], NULL, &err) == 0) fail_msg("fixture cut at %zu opened", cuts[i]);
    }
    free(buf);
}

// ---- header and counts --------------------------------------------------------------------

static void test_bad_header(void **state) {
    (void)state;
    expect_fail((const uint8_t *)"", 0, "truncated");
    expect_fail((const uint8_t *)"GGU", 3, "truncated");
    expect_fail((const uint8_t *)"GGML\3\0\0\0", 8, "magic");
    gb_builder b;
    gb_init(&b, 0);
    expect_fail_b(&b, "version 0");
    gb_init(&b, 0x03000000u); // a v3 file written big-endian
    expect_fail_b(&b, "big-endian");
    gb_init(&b, 1);
    expect_fail_b(&b, "version 1");
}

static void test_huge_counts(void **state) {
    (void)state;
    const uint64_t counts[] = {UINT64_MAX - 1, 1ull << 62, 1ull << 40, 100000};
    for (size_t i = 0; i < 4; i++) {
        gb_builder b;
        gb_init(&b, 3);
        gb_kv_u32(&b, "a", 1);
        b.n_kv_override = counts[i];
        expect_fail_b(&b, i < 3 ? "key count" : NULL);
        gb_init(&b, 3);
        gb_kv_u32(&b, "a", 1);
        b.n_tensors_override = counts[i];
        expect_fail_b(&b, i < 3 ? "tensor count" : NULL);
    }
    // One more key than present: the parser runs off the end cleanly.
    gb_builder b;
    gb_init(&b, 3);
    gb_kv_u32(&b, "a", 1);
    b.n_kv_override = 2;
    expect_fail_b(&b, NULL);
    // Arrays claiming more elements than bytes left, of every element size.
    const uint32_t elem[] = {BN_GGUF_UINT8, BN_GGUF_INT64, BN_GGUF_STRING, BN_GGUF_ARRAY, BN_GGUF_BOOL};
    for (size_t i = 0; i < 5; i++) {
        gb_init(&b, 3);
        gb_kv_arr(&b, "arr", elem[i], 1ull << 61);
        gb_put_u64(&b.kv, 0);
        expect_fail_b(&b, "does not fit");
        gb_init(&b, 3);
        gb_kv_arr(&b, "arr", elem[i], UINT64_MAX);
        expect_fail_b(&b, "does not fit");
    }
}

static void test_string_lengths(void **state) {
    (void)state;
    gb_builder b;
    // Key length past the end.
    gb_init(&b, 3);
    gb_put_u64(&b.kv, 1000);
    gb_put(&b.kv, "abc-and-some-padding", 20);
    b.n_kv = 1;
    expect_fail_b(&b, "past the end");
    gb_init(&b, 3);
    gb_put_u64(&b.kv, UINT64_MAX);
    gb_put(&b.kv, "padding-padding", 15);
    b.n_kv = 1;
    expect_fail_b(&b, "past the end");
    // String value longer than the file.
    gb_init(&b, 3);
    gb_key(&b, "s", BN_GGUF_STRING);
    gb_put_u64(&b.kv, 1ull << 63);
    gb_put(&b.kv, "xyz", 3);
    expect_fail_b(&b, "past the end");
    // A string inside an array.
    gb_init(&b, 3);
    gb_kv_arr(&b, "tokens", BN_GGUF_STRING, 2);
    gb_put_str(&b.kv, "ok");
    gb_put_u64(&b.kv, 99);
    gb_put(&b.kv, "short", 5);
    expect_fail_b(&b, "past the end");
    // Tensor name.
    gb_init(&b, 3);
    gb_put_u64(&b.ti, 1ull << 40);
    b.n_tensors = 1;
    gb_put(&b.ti, "name-and-some-padding-to-pass-the-count-check", 45);
    expect_fail_b(&b, "past the end");
    // Empty key and empty tensor name.
    gb_init(&b, 3);
    gb_kv_u32(&b, "", 1);
    expect_fail_b(&b, "empty");
    gb_init(&b, 3);
    gb_tensor(&b, "", BN_GGML_F32, 1, (uint64_t[]){1}, NULL, 4);
    expect_fail_b(&b, "empty");
}

static void test_bad_values(void **state) {
    (void)state;
    gb_builder b;
    gb_init(&b, 3);
    gb_key(&b, "x", 13); // one past FLOAT64
    gb_put_u64(&b.kv, 0);
    expect_fail_b(&b, "unknown value type 13");
    gb_init(&b, 3);
    gb_key(&b, "x", 0xffffffffu);
    gb_put_u64(&b.kv, 0);
    expect_fail_b(&b, "unknown value type");
    gb_init(&b, 3);
    gb_kv_arr(&b, "x", 77, 1);
    gb_put_u64(&b.kv, 0);
    expect_fail_b(&b, "unknown value type 77");
    gb_init(&b, 3);
    gb_kv_u32(&b, "dup", 1);
    gb_kv_str(&b, "other", "o");
    gb_kv_str(&b, "dup", "again");
    expect_fail_b(&b, "duplicate key 'dup'");
}

// Nested arrays: 8 levels are fine, 9 are refused, and a 100000-deep chain fails
// without recursing that deep.
static void put_nested(gb_builder *b, int levels) {
    gb_kv_arr(b, "deep", levels > 1 ? BN_GGUF_ARRAY : BN_GGUF_UINT8, 1);
    for (int i = 1; i < levels; i++) {
        gb_put_u32(&b->kv, i + 1 < levels ? BN_GGUF_ARRAY : BN_GGUF_UINT8);
        gb_put_u64(&b->kv, 1);
    }
    gb_put_u8(&b->kv, 7);
}

static void test_nesting_depth(void **state) {
    (void)state;
    gb_builder b;
    gb_init(&b, 3);
    put_nested(&b, 8);
    expect_ok_b(&b);
    gb_init(&b, 3);
    put_nested(&b, 9);
    expect_fail_b(&b, "nested deeper");
    gb_init(&b, 3);
    put_nested(&b, 100000);
    expect_fail_b(&b, "nested deeper");
}

// ---- alignment ------------------------------------------------------------------------------

static void test_bad_alignment(void **state) {
    (void)state;
    const uint32_t bad[] = {0, 3, 48, 0x80000000u};
    for (size_t i = 0; i < 4; i++) {
        gb_builder b;
        gb_init(&b, 3);
        gb_kv_u32(&b, "general.alignment", bad[i]);
        expect_fail_b(&b, "general.alignment");
    }
    gb_builder b;
    gb_init(&b, 3);
    gb_kv_str(&b, "general.alignment", "32");
    expect_fail_b(&b, "general.alignment");
    gb_init(&b, 3);
    gb_kv_i32(&b, "general.alignment", -32);
    expect_fail_b(&b, "general.alignment");
    // Alignment 1 is legal: tensors may then start anywhere.
    gb_init(&b, 3);
    b.alignment = 1;
    gb_kv_u32(&b, "general.alignment", 1);
    gb_tensor(&b, "a", 24 /* I8 */, 1, (uint64_t[]){3}, NULL, 3);
    gb_tensor(&b, "b", BN_GGML_F32, 1, (uint64_t[]){3}, NULL, 12);
    expect_ok_b(&b);
}

// ---- tensor infos ---------------------------------------------------------------------------

static void test_bad_dims(void **state) {
    (void)state;
    gb_builder b;
    gb_init(&b, 3);
    gb_tensor_info(&b, "t", BN_GGML_F32, 2, (uint64_t[]){1ull << 32, 1ull << 32}, 0);
    expect_fail_b(&b, "overflows");
    gb_init(&b, 3);
    gb_tensor_info(&b, "t", 24 /* I8 */, 4, (uint64_t[]){1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20}, 0);
    expect_fail_b(&b, "overflows");
    gb_init(&b, 3);
    gb_tensor_info(&b, "t", 24 /* I8 */, 1, (uint64_t[]){UINT64_MAX}, 0);
    expect_fail_b(&b, "overflows");
    // Fits in int64 elements, but the byte count of F64 does not.
    gb_init(&b, 3);
    gb_tensor_info(&b, "t", 28, 1, (uint64_t[]){1ull << 62}, 0);
    expect_fail_b(&b, "not a valid size");
    gb_init(&b, 3);
    gb_tensor_info(&b, "t", BN_GGML_F32, 5, (uint64_t[]){1, 1, 1, 1, 1}, 0);
    expect_fail_b(&b, "5 dimensions");
    gb_init(&b, 3);
    gb_tensor_info(&b, "t", BN_GGML_F32, 0, NULL, 0);
    gb_put(&b.ti, "padpadpadpad", 12);
    expect_fail_b(&b, "0 dimensions");
    gb_init(&b, 3);
    gb_tensor_info(&b, "t", BN_GGML_F32, 2, (uint64_t[]){4, 0}, 0);
    expect_fail_b(&b, "zero dimension");
    // Huge but unallocated: a 2^40-element tensor with no data behind it.
    gb_init(&b, 3);
    gb_tensor_info(&b, "t", BN_GGML_F32, 2, (uint64_t[]){1ull << 20, 1ull << 20}, 0);
    expect_fail_b(&b, "past the end");
}

static void test_bad_types(void **state) {
    (void)state;
    const uint32_t unknown[] = {4, 5, 31, 32, 33, 37, 40, 1000, 0xffffffffu};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        gb_builder b;
        gb_init(&b, 3);
        gb_tensor(&b, "t", unknown[i], 1, (uint64_t[]){256}, NULL, 1024);
        expect_fail_b(&b, "unknown ggml type");
    }
    gb_builder b;
    gb_init(&b, 3);
    gb_tensor(&b, "q", 2 /* Q4_0 */, 2, (uint64_t[]){33, 2}, NULL, 1024);
    expect_fail_b(&b, "block size");
    gb_init(&b, 3);
    gb_tensor(&b, "q", 12 /* Q4_K */, 1, (uint64_t[]){128}, NULL, 1024);
    expect_fail_b(&b, "block size");
    gb_init(&b, 3);
    gb_tensor(&b, "i2s", BN_GGML_I2_S, 1, (uint64_t[]){6}, NULL, 64);
    expect_fail_b(&b, "not a valid size");
}

static void test_bad_offsets(void **state) {
    (void)state;
    gb_builder b;
    gb_init(&b, 3);
    gb_tensor_info(&b, "a", BN_GGML_F32, 1, (uint64_t[]){4}, 4); // not a multiple of 32
    gb_put(&b.data, (uint8_t[64]){0}, 64);
    expect_fail_b(&b, "alignment");
    gb_init(&b, 3);
    gb_tensor_info(&b, "a", BN_GGML_F32, 1, (uint64_t[]){16}, 0);
    gb_tensor_info(&b, "b", BN_GGML_F32, 1, (uint64_t[]){16}, 32); // a covers 0..64
    gb_put(&b.data, (uint8_t[128]){0}, 128);
    expect_fail_b(&b, "overlap");
    gb_init(&b, 3);
    gb_tensor_info(&b, "a", BN_GGML_F32, 1, (uint64_t[]){8}, 32);
    gb_tensor_info(&b, "b", BN_GGML_F32, 1, (uint64_t[]){8}, 32); // same bytes
    gb_put(&b.data, (uint8_t[64]){0}, 64);
    expect_fail_b(&b, "overlap");
    gb_init(&b, 3);
    gb_tensor_info(&b, "a", BN_GGML_F32, 1, (uint64_t[]){8}, 0);
    gb_put(&b.data, (uint8_t[31]){0}, 31); // one byte short
    expect_fail_b(&b, "past the end");
    gb_init(&b, 3);
    gb_tensor_info(&b, "a", BN_GGML_F32, 1, (uint64_t[]){8}, UINT64_MAX - 31); // aligned, wraps
    gb_put(&b.data, (uint8_t[64]){0}, 64);
    expect_fail_b(&b, "past the end");
    gb_init(&b, 3);
    gb_tensor(&b, "same", BN_GGML_F32, 1, (uint64_t[]){2}, NULL, 8);
    gb_tensor(&b, "other", BN_GGML_F32, 1, (uint64_t[]){2}, NULL, 8);
    gb_tensor(&b, "same", BN_GGML_F32, 1, (uint64_t[]){2}, NULL, 8);
    expect_fail_b(&b, "duplicate tensor name 'same'");
    // Adjacent, non-overlapping tensors are fine.
    gb_init(&b, 3);
    gb_tensor_info(&b, "a", BN_GGML_F32, 1, (uint64_t[]){8}, 32);
    gb_tensor_info(&b, "b", BN_GGML_F32, 1, (uint64_t[]){8}, 0);
    gb_put(&b.data, (uint8_t[64]){0}, 64);
    expect_ok_b(&b);
}

// ---- the model layer on hostile values ------------------------------------------------------

static void test_model_hostile(void **state) {
    (void)state;
    // general.architecture of the wrong type, and absent.
    gb_builder b;
    gb_init(&b, 3);
    gb_kv_u32(&b, "general.architecture", 5);
    size_t n;
    uint8_t *buf = gb_finish(&b, &n);
    bn_gguf *g;
    bn_error err;
    bn_model *m;
    assert_int_equal(bn_gguf_open_memory(buf, n, &g, &err), 0);
    assert_int_equal(bn_model_from_gguf(g, &m, &err), -1);
    assert_non_null(strstr(err.msg, "general.architecture"));
    bn_gguf_close(g);
    free(buf);
    gb_free(&b);

    // A non-finite I2_S scale is refused by name.
    gb_model_opts o = {.i2s_scale = __builtin_inff()};
    buf = gb_model(&o, &n);
    assert_int_equal(bn_gguf_open_memory(buf, n, &g, &err), 0);
    assert_int_equal(bn_model_from_gguf(g, &m, &err), -1);
    assert_non_null(strstr(err.msg, "scale"));
    assert_non_null(strstr(err.msg, ".weight"));
    bn_gguf_close(g);
    free(buf);
}

// Deterministic mutations of a valid model: flipped bytes, overwritten counts and
// lengths. Any outcome but a crash or a sanitizer report is fine.
static void test_random_mutations(void **state) {
    (void)state;
    gb_model_opts o = {0};
    size_t n;
    uint8_t *orig = gb_model(&o, &n);
    uint8_t *buf = malloc(n);
    uint64_t rng = 12345;
    int opened = 0;
    // Mutate mostly the metadata (first ~2 KB), where the structure lives.
    size_t meta = 2048 < n ? 2048 : n;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, orig, n);
        int edits = 1 + (int)(bn_test_rand(&rng) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(bn_test_rand(&rng) % meta);
            switch (bn_test_rand(&rng) % 4) {
            case 0: buf[at] ^= (uint8_t)(1u << (bn_test_rand(&rng) % 8)); break;
            case 1: buf[at] = (uint8_t)bn_test_rand(&rng); break;
            case 2: if (at + 8 <= n) { uint64_t v = bn_test_rand(&rng) >> (bn_test_rand(&rng) % 64); memcpy(buf + at, &v, 8); } break;
            default: buf[at] = 0xff; break;
            }
        }
        size_t len = (bn_test_rand(&rng) % 8) ? n : (size_t)(bn_test_rand(&rng) % n);
        bn_error err;
        if (try_open(buf, len, NULL, &err) == 0) opened++;
    }
    // Some mutations (e.g. in string payloads) leave the file valid.
    assert_true(opened > 0);
    free(buf);
    free(orig);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncate_every_offset), cmocka_unit_test(test_truncate_fixture),
        cmocka_unit_test(test_bad_header),            cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_string_lengths),        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_nesting_depth),         cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_bad_dims),              cmocka_unit_test(test_bad_types),
        cmocka_unit_test(test_bad_offsets),           cmocka_unit_test(test_model_hostile),
        cmocka_unit_test(test_random_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
