// test_gguf.c - the GGUF reader on the reference fixture and on builder-made files.
#include "test_util.h"

#include <math.h>

#include "gguf.h"
#include "gguf_builder.h"

static bn_gguf *open_buf(const uint8_t *buf, size_t n) {
    bn_gguf *g = NULL;
    bn_error err = {{0}};
    if (bn_gguf_open_memory(buf, n, &g, &err) != 0) fail_msg("open failed: %s", err.msg);
    return g;
}

static int open_fails(const uint8_t *buf, size_t n, const char *expect, bn_error *err) {
    bn_gguf *g = (bn_gguf *)1;
    int rc = bn_gguf_open_memory(buf, n, &g, err);
    if (rc == 0) {
        bn_gguf_close(g);
        return 0;
    }
    assert_null(g);
    if (expect && !strstr(err->msg, expect)) fail_msg("error '%s' lacks '%s'", err->msg, expect);
    return 1;
}

// ---- the fixture (facts from fixtures/README.md and the file size) ----------------------

static void test_fixture(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
    bn_gguf *g;
    bn_error err = {{0}};
    assert_int_equal(bn_gguf_open(path, &g, &err), 0);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->size, 41246176);
    assert_int_equal(g->n_tensors, 24);
    assert_int_equal(g->n_kv, 24);
    assert_int_equal(g->alignment, 32);
    assert_int_equal(g->data_offset % 32, 0);

    bn_gguf_str s;
    assert_int_equal(bn_gguf_get_str(g, "general.architecture", &s, &err), 0);
    assert_true(bn_gguf_str_eq(s, "bitnet-b1.58"));
    assert_int_equal(bn_gguf_get_str(g, "tokenizer.ggml.pre", &s, &err), 0);
    assert_true(bn_gguf_str_eq(s, "llama-bpe"));
    assert_int_equal(bn_gguf_get_str(g, "tokenizer.ggml.model", &s, &err), 0);
    assert_true(bn_gguf_str_eq(s, "gpt2"));

    static const struct { const char *key; uint32_t v; } u32s[] = {
        {"bitnet-b1.58.embedding_length", 128}, {"bitnet-b1.58.feed_forward_length", 256},
        {"bitnet-b1.58.block_count", 2},        {"bitnet-b1.58.attention.head_count", 2},
        {"bitnet-b1.58.attention.head_count_kv", 1}, {"bitnet-b1.58.context_length", 512},
        {"bitnet-b1.58.vocab_size", 128256},
    };
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
        uint32_t v = 0;
        if (bn_gguf_get_u32(g, u32s[i].key, &v, &err) != 0) fail_msg("%s", err.msg);
        assert_int_equal(v, u32s[i].v);
        int64_t w = 0;
        assert_int_equal(bn_gguf_get_i64(g, u32s[i].key, &w, &err), 0);
        assert_int_equal(w, u32s[i].v);
    }
    float f;
    assert_int_equal(bn_gguf_get_f32(g, "bitnet-b1.58.rope.freq_base", &f, &err), 0);
    assert_float_equal(f, 500000.0f, 0.0f);
    assert_int_equal(bn_gguf_get_f32(g, "bitnet-b1.58.attention.layer_norm_rms_epsilon", &f, &err), 0);
    assert_float_equal(f, 1e-5f, 1e-12f);
    bool b;
    assert_int_equal(bn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &err), 0);

    // The real Llama-3 vocabulary: 128256 tokens, 280147 merges (fixtures README).
    const bn_gguf_array *a;
    assert_int_equal(bn_gguf_get_arr(g, "tokenizer.ggml.tokens", BN_GGUF_STRING, &a, &err), 0);
    assert_int_equal(a->count, 128256);
    assert_true(a->strs[128000].len == strlen("<|begin_of_text|>") &&
                memcmp(a->strs[128000].data, "<|begin_of_text|>", a->strs[128000].len) == 0);
    assert_int_equal(bn_gguf_get_arr(g, "tokenizer.ggml.merges", BN_GGUF_STRING, &a, &err), 0);
    assert_int_equal(a->count, 280147);
    assert_int_equal(bn_gguf_get_arr(g, "tokenizer.ggml.token_type", BN_GGUF_TYPE_COUNT, &a, &err), 0);
    assert_int_equal(a->count, 128256);
    assert_int_equal(bn_gguf_arr_int(a, 128000), 3); // CONTROL
    assert_int_equal(bn_gguf_arr_int(a, 100), 1);    // NORMAL

    int64_t ti = bn_gguf_find_tensor(g, "token_embd.weight");
    assert_true(ti >= 0);
    const bn_gguf_tensor *t = &g->tensors[ti];
    assert_int_equal(t->type, BN_GGML_F16);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 128);
    assert_int_equal(t->ne[1], 128256);
    assert_int_equal(t->nbytes, 128ull * 128256 * 2);
    ti = bn_gguf_find_tensor(g, "blk.1.ffn_down.weight");
    assert_true(ti >= 0);
    t = &g->tensors[ti];
    assert_int_equal(t->type, BN_GGML_I2_S);
    assert_int_equal(t->ne[0], 256);
    assert_int_equal(t->ne[1], 128);
    assert_int_equal(t->nbytes, 256 * 128 / 4 + 32);
    assert_int_equal(bn_gguf_find_tensor(g, "output.weight"), -1);

    // The tensor that ends furthest ends exactly at the end of the file.
    const uint8_t *end = NULL;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const uint8_t *e = g->tensors[i].data + g->tensors[i].nbytes;
        if (e > end) end = e;
    }
    assert_ptr_equal(end, g->base + g->size);
    bn_gguf_close(g);
}

static void test_getter_errors(void **state) {
    (void)state;
    gb_builder b;
    gb_init(&b, 3);
    gb_kv_str(&b, "s", "hello");
    gb_kv_u32(&b, "u", 7);
    gb_kv_i32(&b, "neg", -3);
    gb_kv_u64(&b, "big", 1ull << 40);
    gb_kv_u64(&b, "huge", UINT64_MAX);
    gb_kv_f32(&b, "f", 2.5f);
    gb_kv_bool(&b, "flag", true);
    gb_kv_arr_i32(&b, "ints", (const int32_t[]){1, -2, 3}, 3);
    size_t n;
    uint8_t *buf = gb_finish(&b, &n);
    bn_gguf *g = open_buf(buf, n);
    bn_error err = {{0}};
    uint32_t u;
    int64_t i64;
    float f;
    bool bl;
    bn_gguf_str s;
    const bn_gguf_array *a;

    assert_int_equal(bn_gguf_get_u32(g, "missing.key", &u, &err), -1);
    assert_non_null(strstr(err.msg, "missing.key"));
    assert_int_equal(bn_gguf_get_u32(g, "s", &u, &err), -1);
    assert_non_null(strstr(err.msg, "'s'"));
    assert_non_null(strstr(err.msg, "string"));
    assert_int_equal(bn_gguf_get_u32(g, "neg", &u, &err), -1);
    assert_int_equal(bn_gguf_get_u32(g, "big", &u, &err), -1);
    assert_non_null(strstr(err.msg, "big"));
    assert_int_equal(bn_gguf_get_i64(g, "big", &i64, &err), 0);
    assert_int_equal(i64, 1ll << 40);
    assert_int_equal(bn_gguf_get_i64(g, "huge", &i64, &err), -1);
    assert_int_equal(bn_gguf_get_i64(g, "neg", &i64, &err), 0);
    assert_int_equal(i64, -3);
    assert_int_equal(bn_gguf_get_f32(g, "u", &f, &err), -1);
    assert_non_null(strstr(err.msg, "'u'"));
    assert_int_equal(bn_gguf_get_f32(g, "f", &f, &err), 0);
    assert_float_equal(f, 2.5f, 0.0f);
    assert_int_equal(bn_gguf_get_bool(g, "u", &bl, &err), -1);
    assert_int_equal(bn_gguf_get_bool(g, "flag", &bl, &err), 0);
    assert_true(bl);
    assert_int_equal(bn_gguf_get_str(g, "f", &s, &err), -1);
    assert_int_equal(bn_gguf_get_str(g, "missing", &s, &err), -1);
    assert_int_equal(bn_gguf_get_arr(g, "s", BN_GGUF_TYPE_COUNT, &a, &err), -1);
    assert_int_equal(bn_gguf_get_arr(g, "ints", BN_GGUF_STRING, &a, &err), -1);
    assert_non_null(strstr(err.msg, "ints"));
    assert_int_equal(bn_gguf_get_arr(g, "ints", BN_GGUF_INT32, &a, &err), 0);
    assert_int_equal(a->count, 3);
    assert_int_equal(bn_gguf_arr_int(a, 1), -2);
    assert_int_equal(bn_gguf_find_key(g, "flag"), 6);
    assert_int_equal(bn_gguf_find_key(g, "fla"), -1);
    bn_gguf_close(g);
    free(buf);
    gb_free(&b);
}

// Every scalar type, read back through the value union.
static void test_all_value_types(void **state) {
    (void)state;
    gb_builder b;
    gb_init(&b, 3);
    gb_kv_u8(&b, "u8", 200);
    gb_kv_i8(&b, "i8", -100);
    gb_kv_u16(&b, "u16", 60000);
    gb_kv_i16(&b, "i16", -30000);
    gb_kv_u32(&b, "u32", 4000000000u);
    gb_kv_i32(&b, "i32", -2000000000);
    gb_kv_f32(&b, "f32", -1.25f);
    gb_kv_bool(&b, "bool", false);
    gb_kv_str(&b, "str", "ünïcode");
    gb_kv_u64(&b, "u64", 0xfedcba9876543210ull);
    gb_kv_i64(&b, "i64", INT64_MIN);
    gb_kv_f64(&b, "f64", 1e300);
    gb_kv_str(&b, "empty", "");
    size_t n;
    uint8_t *buf = gb_finish(&b, &n);
    bn_gguf *g = open_buf(buf, n);
    assert_int_equal(g->n_kv, 13);
    const bn_gguf_kv *kv = g->kv;
    for (int i = 0; i < 12; i++) assert_int_equal(kv[i].value.type, i < 9 ? i : i + 1);
    assert_int_equal(kv[0].value.u64, 200);
    assert_int_equal(kv[1].value.i64, -100);
    assert_int_equal(kv[2].value.u64, 60000);
    assert_int_equal(kv[3].value.i64, -30000);
    assert_int_equal(kv[4].value.u64, 4000000000u);
    assert_int_equal(kv[5].value.i64, -2000000000);
    assert_true(kv[6].value.f64 == -1.25);
    assert_false(kv[7].value.b);
    assert_true(bn_gguf_str_eq(kv[8].value.str, "ünïcode"));
    assert_true(kv[9].value.u64 == 0xfedcba9876543210ull);
    assert_true(kv[10].value.i64 == INT64_MIN);
    assert_true(kv[11].value.f64 == 1e300);
    assert_int_equal(kv[12].value.str.len, 0);
    uint32_t u;
    bn_error err;
    assert_int_equal(bn_gguf_get_u32(g, "u8", &u, &err), 0);
    assert_int_equal(u, 200);
    assert_int_equal(bn_gguf_get_u32(g, "i8", &u, &err), -1);
    bn_gguf_close(g);
    free(buf);
    gb_free(&b);
}

// Arrays of arrays: [[1,2,3],[],[-7]] of int32 and [["a","bc"],["def"]] of strings.
static void test_nested_arrays(void **state) {
    (void)state;
    gb_builder b;
    gb_init(&b, 3);
    gb_kv_arr(&b, "nested.ints", BN_GGUF_ARRAY, 3);
    gb_put_u32(&b.kv, BN_GGUF_INT32); gb_put_u64(&b.kv, 3);
    gb_put_u32(&b.kv, 1); gb_put_u32(&b.kv, 2); gb_put_u32(&b.kv, 3);
    gb_put_u32(&b.kv, BN_GGUF_INT32); gb_put_u64(&b.kv, 0);
    gb_put_u32(&b.kv, BN_GGUF_INT32); gb_put_u64(&b.kv, 1);
    gb_put_u32(&b.kv, (uint32_t)-7);
    gb_kv_arr(&b, "nested.strs", BN_GGUF_ARRAY, 2);
    gb_put_u32(&b.kv, BN_GGUF_STRING); gb_put_u64(&b.kv, 2);
    gb_put_str(&b.kv, "a"); gb_put_str(&b.kv, "bc");
    gb_put_u32(&b.kv, BN_GGUF_STRING); gb_put_u64(&b.kv, 1);
    gb_put_str(&b.kv, "def");
    // Three levels: [[[5]]] of uint8.
    gb_kv_arr(&b, "nested.deep", BN_GGUF_ARRAY, 1);
    gb_put_u32(&b.kv, BN_GGUF_ARRAY); gb_put_u64(&b.kv, 1);
    gb_put_u32(&b.kv, BN_GGUF_UINT8); gb_put_u64(&b.kv, 1); gb_put_u8(&b.kv, 5);
    gb_kv_u32(&b, "after", 42); // parsing resumes at the right place
    size_t n;
    uint8_t *buf = gb_finish(&b, &n);
    bn_gguf *g = open_buf(buf, n);
    bn_error err;
    const bn_gguf_array *a;
    assert_int_equal(bn_gguf_get_arr(g, "nested.ints", BN_GGUF_ARRAY, &a, &err), 0);
    assert_int_equal(a->count, 3);
    assert_int_equal(a->items[0].type, BN_GGUF_ARRAY);
    assert_int_equal(a->items[0].arr.elem_type, BN_GGUF_INT32);
    assert_int_equal(a->items[0].arr.count, 3);
    assert_int_equal(bn_gguf_arr_int(&a->items[0].arr, 2), 3);
    assert_int_equal(a->items[1].arr.count, 0);
    assert_int_equal(bn_gguf_arr_int(&a->items[2].arr, 0), -7);
    assert_int_equal(bn_gguf_get_arr(g, "nested.strs", BN_GGUF_ARRAY, &a, &err), 0);
    assert_int_equal(a->items[0].arr.count, 2);
    assert_true(bn_gguf_str_eq(a->items[0].arr.strs[1], "bc"));
    assert_true(bn_gguf_str_eq(a->items[1].arr.strs[0], "def"));
    assert_int_equal(bn_gguf_get_arr(g, "nested.deep", BN_GGUF_ARRAY, &a, &err), 0);
    assert_int_equal(bn_gguf_arr_int(&a->items[0].arr.items[0].arr, 0), 5);
    uint32_t u;
    assert_int_equal(bn_gguf_get_u32(g, "after", &u, &err), 0);
    assert_int_equal(u, 42);
    bn_gguf_close(g);
    free(buf);
    gb_free(&b);
}

// v2 has the same layout as v3; v1 (32-bit counts) is refused by name.
static void test_versions(void **state) {
    (void)state;
    for (uint32_t v = 1; v <= 4; v++) {
        gb_builder b;
        gb_init(&b, v);
        gb_kv_str(&b, "general.architecture", "x");
        float w[3] = {1, 2, 3};
        gb_tensor(&b, "w", BN_GGML_F32, 1, (uint64_t[]){3}, w, sizeof w);
        size_t n;
        uint8_t *buf = gb_finish(&b, &n);
        bn_error err;
        if (v == 2 || v == 3) {
            bn_gguf *g = open_buf(buf, n);
            assert_int_equal(g->version, v);
            assert_int_equal(g->n_tensors, 1);
            float got[3];
            memcpy(got, g->tensors[0].data, sizeof got);
            assert_true(got[0] == 1 && got[2] == 3);
            bn_gguf_close(g);
        } else {
            assert_true(open_fails(buf, n, v == 1 ? "version 1" : "version 4", &err));
        }
        free(buf);
        gb_free(&b);
    }
}

static void test_alignment(void **state) {
    (void)state;
    gb_builder b;
    gb_init(&b, 3);
    b.alignment = 256;
    gb_kv_u32(&b, "general.alignment", 256);
    gb_tensor(&b, "a", BN_GGML_F32, 1, (uint64_t[]){5}, NULL, 20);
    gb_tensor(&b, "b", BN_GGML_F16, 2, (uint64_t[]){3, 7}, NULL, 42);
    size_t n;
    uint8_t *buf = gb_finish(&b, &n);
    bn_gguf *g = open_buf(buf, n);
    assert_int_equal(g->alignment, 256);
    assert_int_equal(g->data_offset % 256, 0);
    assert_int_equal(g->tensors[1].offset, 256);
    assert_ptr_equal(g->tensors[1].data, buf + g->data_offset + 256);
    assert_int_equal(g->tensors[1].ne[2], 1);
    assert_int_equal(g->tensors[1].ne[3], 1);
    bn_gguf_close(g);
    free(buf);
    gb_free(&b);
}

// Block sizes from ggml's type_traits; I2_S is n/4 + 32 (docs/architecture.md: I2_S).
static void test_type_sizes(void **state) {
    (void)state;
    static const struct { uint32_t type; uint64_t n, bytes; const char *name; } cases[] = {
        {0, 10, 40, "F32"},        {1, 10, 20, "F16"},       {30, 10, 20, "BF16"},
        {2, 64, 36, "Q4_0"},       {8, 32, 34, "Q8_0"},      {10, 256, 84, "Q2_K"},
        {12, 512, 288, "Q4_K"},    {14, 256, 210, "Q6_K"},   {34, 256, 54, "TQ1_0"},
        {35, 256, 66, "TQ2_0"},    {36, 128 * 128, 4128, "I2_S"}, {28, 3, 24, "F64"},
        {23, 256, 136, "IQ4_XS"},  {29, 256, 56, "IQ1_M"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t bytes = 0;
        assert_int_equal(bn_ggml_type_nbytes(cases[i].type, cases[i].n, &bytes), 0);
        assert_int_equal(bytes, cases[i].bytes);
        assert_string_equal(bn_ggml_type_name(cases[i].type), cases[i].name);
    }
    uint64_t bytes;
    assert_int_equal(bn_ggml_type_nbytes(2, 33, &bytes), -1);  // not whole blocks
    assert_int_equal(bn_ggml_type_nbytes(4, 32, &bytes), -1);  // removed Q4_2
    assert_int_equal(bn_ggml_type_nbytes(99, 32, &bytes), -1);
    assert_string_equal(bn_ggml_type_name(99), "unknown");
    assert_string_equal(bn_gguf_type_name(BN_GGUF_FLOAT64), "float64");
}

static void test_missing_file(void **state) {
    (void)state;
    bn_gguf *g = (bn_gguf *)1;
    bn_error err;
    assert_int_equal(bn_gguf_open("/nonexistent/dir/model.gguf", &g, &err), -1);
    assert_null(g);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/model.gguf"));
    assert_int_equal(bn_gguf_open("/", &g, &err), -1); // a directory
    // NULL err is allowed everywhere.
    assert_int_equal(bn_gguf_open("/nonexistent", &g, NULL), -1);
}

static void test_no_tensors(void **state) {
    (void)state;
    gb_builder b;
    gb_init(&b, 3);
    gb_kv_str(&b, "general.architecture", "none");
    size_t n;
    uint8_t *buf = gb_finish(&b, &n);
    bn_gguf *g = open_buf(buf, n);
    assert_int_equal(g->n_tensors, 0);
    bn_gguf_close(g);
    free(buf);
    gb_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture),       cmocka_unit_test(test_getter_errors),
        cmocka_unit_test(test_all_value_types), cmocka_unit_test(test_nested_arrays),
        cmocka_unit_test(test_versions),      cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_type_sizes),    cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_no_tensors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
