// test_make_model.c - the streaming GGUF writer and the synthetic model generator,
// checked through the independent reader (bn_gguf_open), the model loader, the
// tokenizer, and the I2_S format facts of docs/architecture.md: I2_S.
#include "test_util.h"

#include <math.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bitnet.h"
#include "devtools.h"
#include "gguf.h"
#include "gguf_write.h"
#include "model.h"
#include "tokenizer/tokenizer.h"

// The default tiny preset (seed 1, built-in vocabulary): size and FNV-1a of its
// bytes, pinned so a change in generation on any machine shows up.
#define TINY_SIZE 696480
#define TINY_FNV 0x41b7cf312b6031f2ull

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static float rd_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// ---- the writer ----------------------------------------------------------------

static void write_all_kinds(const char *path, uint32_t alignment) {
    bn_error err = {{0}};
    bn_gguf_writer *w;
    assert_int_equal(bn_gguf_writer_open(path, alignment, &w, &err), 0);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -5000000000ll;
    double f64 = 3.25;
    assert_int_equal(bn_gguf_writer_kv(w, "t.u8", BN_GGUF_UINT8, &u8, &err), 0);
    assert_int_equal(bn_gguf_writer_kv(w, "t.i8", BN_GGUF_INT8, &i8, &err), 0);
    assert_int_equal(bn_gguf_writer_kv(w, "t.u16", BN_GGUF_UINT16, &u16, &err), 0);
    assert_int_equal(bn_gguf_writer_kv(w, "t.i16", BN_GGUF_INT16, &i16, &err), 0);
    assert_int_equal(bn_gguf_writer_kv_u32(w, "t.u32", 4000000000u, &err), 0);
    assert_int_equal(bn_gguf_writer_kv_i32(w, "t.i32", -2000000000, &err), 0);
    assert_int_equal(bn_gguf_writer_kv_u64(w, "t.u64", 1ull << 40, &err), 0);
    assert_int_equal(bn_gguf_writer_kv(w, "t.i64", BN_GGUF_INT64, &i64, &err), 0);
    assert_int_equal(bn_gguf_writer_kv_f32(w, "t.f32", 1e-5f, &err), 0);
    assert_int_equal(bn_gguf_writer_kv(w, "t.f64", BN_GGUF_FLOAT64, &f64, &err), 0);
    assert_int_equal(bn_gguf_writer_kv_bool(w, "t.bool", true, &err), 0);
    assert_int_equal(bn_gguf_writer_kv_str(w, "t.str", "h\xC3\xA9llo", &err), 0);
    assert_int_equal(bn_gguf_writer_kv_strn(w, "t.empty", "", 0, &err), 0);
    int32_t ints[5] = {-1, 0, 1, 2147483647, -2147483647 - 1};
    assert_int_equal(bn_gguf_writer_kv_array(w, "t.ints", BN_GGUF_INT32, ints, 5, &err), 0);
    float fl[3] = {0.5f, -2.0f, 1e30f};
    assert_int_equal(bn_gguf_writer_kv_array(w, "t.floats", BN_GGUF_FLOAT32, fl, 3, &err), 0);
    bool bs[3] = {true, false, true};
    assert_int_equal(bn_gguf_writer_kv_array(w, "t.bools", BN_GGUF_BOOL, bs, 3, &err), 0);
    assert_int_equal(bn_gguf_writer_begin_array(w, "t.strs", BN_GGUF_STRING, 3, &err), 0);
    assert_int_equal(bn_gguf_writer_array_str(w, "a b", 3, &err), 0);
    assert_int_equal(bn_gguf_writer_array_str(w, "", 0, &err), 0);
    assert_int_equal(bn_gguf_writer_array_str(w, "x\0y", 3, &err), 0); // embedded NUL
    assert_int_equal(bn_gguf_writer_begin_array(w, "t.none", BN_GGUF_UINT8, 0, &err), 0);

    // odd sizes so the padding between tensors matters
    assert_int_equal(bn_gguf_writer_add_tensor(w, "a", 1, (uint64_t[]){3}, BN_GGML_F32, &err), 0);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "b", 2, (uint64_t[]){128, 2}, BN_GGML_I2_S, &err), 0);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "c", 3, (uint64_t[]){5, 1, 3}, BN_GGML_F16, &err), 0);
    uint64_t expect_size = bn_gguf_writer_file_size(w);

    const char *name;
    uint64_t nbytes, left;
    assert_int_equal(bn_gguf_writer_next_tensor(w, &name, &nbytes, &left), 0);
    assert_string_equal(name, "a");
    assert_int_equal(nbytes, 12);
    // stream all tensors' bytes (12 + 96 + 30) as a counting pattern in odd chunks
    uint8_t data[138];
    for (int i = 0; i < 138; i++) data[i] = (uint8_t)(i + 1);
    assert_int_equal(bn_gguf_writer_write(w, data, 5, &err), 0);
    assert_int_equal(bn_gguf_writer_write(w, data + 5, 50, &err), 0); // crosses a -> b
    assert_int_equal(bn_gguf_writer_next_tensor(w, &name, NULL, &left), 1);
    assert_int_equal(left, 96 - 43);
    assert_int_equal(bn_gguf_writer_write(w, data + 55, 83, &err), 0);
    assert_int_equal(bn_gguf_writer_next_tensor(w, NULL, NULL, NULL), -1);
    assert_int_equal(bn_gguf_writer_close(w, &err), 0);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, expect_size);
}

static void test_writer_roundtrip(void **state) {
    (void)state;
    uint32_t aligns[2] = {32, 64};
    for (int a = 0; a < 2; a++) {
        char path[64];
        bn_tmp_path(path, sizeof path, "mm");
        write_all_kinds(path, aligns[a]);
        bn_gguf *g;
        bn_error err = {{0}};
        int rc = bn_gguf_open(path, &g, &err);
        if (rc) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, 0);
        assert_int_equal(g->version, 3);
        assert_int_equal(g->alignment, aligns[a]);
        assert_int_equal(g->n_kv, 18 + (aligns[a] != 32));
        assert_int_equal(bn_gguf_find_key(g, "general.alignment") >= 0, aligns[a] != 32);

        int64_t i64;
        uint32_t u32;
        float f;
        bool b;
        bn_gguf_str s;
        struct { const char *k; int64_t v; bn_gguf_type t; } ints[] = {
            {"t.u8", 200, BN_GGUF_UINT8},        {"t.i8", -100, BN_GGUF_INT8},
            {"t.u16", 60000, BN_GGUF_UINT16},    {"t.i16", -30000, BN_GGUF_INT16},
            {"t.u32", 4000000000ll, BN_GGUF_UINT32}, {"t.i32", -2000000000, BN_GGUF_INT32},
            {"t.u64", 1ll << 40, BN_GGUF_UINT64}, {"t.i64", -5000000000ll, BN_GGUF_INT64},
        };
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
            int64_t k = bn_gguf_find_key(g, ints[i].k);
            assert_true(k >= 0);
            assert_int_equal(g->kv[k].value.type, ints[i].t);
            assert_int_equal(bn_gguf_get_i64(g, ints[i].k, &i64, &err), 0);
            assert_int_equal(i64, ints[i].v);
        }
        assert_int_equal(bn_gguf_get_u32(g, "t.u32", &u32, &err), 0);
        assert_int_equal(u32, 4000000000u);
        assert_int_equal(bn_gguf_get_f32(g, "t.f32", &f, &err), 0);
        assert_true(f == 1e-5f);
        assert_true(g->kv[bn_gguf_find_key(g, "t.f64")].value.f64 == 3.25);
        assert_int_equal(g->kv[bn_gguf_find_key(g, "t.f64")].value.type, BN_GGUF_FLOAT64);
        assert_int_equal(bn_gguf_get_bool(g, "t.bool", &b, &err), 0);
        assert_true(b);
        assert_int_equal(bn_gguf_get_str(g, "t.str", &s, &err), 0);
        assert_true(bn_gguf_str_eq(s, "h\xC3\xA9llo"));
        assert_int_equal(bn_gguf_get_str(g, "t.empty", &s, &err), 0);
        assert_int_equal(s.len, 0);

        const bn_gguf_array *arr;
        assert_int_equal(bn_gguf_get_arr(g, "t.ints", BN_GGUF_INT32, &arr, &err), 0);
        assert_int_equal(arr->count, 5);
        assert_int_equal(bn_gguf_arr_int(arr, 0), -1);
        assert_int_equal(bn_gguf_arr_int(arr, 3), 2147483647);
        assert_int_equal(bn_gguf_arr_int(arr, 4), -2147483647 - 1);
        assert_int_equal(bn_gguf_get_arr(g, "t.floats", BN_GGUF_FLOAT32, &arr, &err), 0);
        assert_true(rd_f32((const uint8_t *)arr->data + 4) == -2.0f);
        assert_true(rd_f32((const uint8_t *)arr->data + 8) == 1e30f);
        assert_int_equal(bn_gguf_get_arr(g, "t.bools", BN_GGUF_BOOL, &arr, &err), 0);
        assert_memory_equal(arr->data, "\1\0\1", 3);
        assert_int_equal(bn_gguf_get_arr(g, "t.strs", BN_GGUF_STRING, &arr, &err), 0);
        assert_int_equal(arr->count, 3);
        assert_true(bn_gguf_str_eq(arr->strs[0], "a b"));
        assert_int_equal(arr->strs[1].len, 0);
        assert_int_equal(arr->strs[2].len, 3);
        assert_memory_equal(arr->strs[2].data, "x\0y", 3);
        assert_int_equal(bn_gguf_get_arr(g, "t.none", BN_GGUF_UINT8, &arr, &err), 0);
        assert_int_equal(arr->count, 0);

        assert_int_equal(g->n_tensors, 3);
        const char *names[3] = {"a", "b", "c"};
        uint64_t sizes[3] = {12, 128 * 2 / 4 + 32, 30}, off = 0;
        for (int i = 0; i < 3; i++) {
            const bn_gguf_tensor *t = &g->tensors[i];
            assert_true(bn_gguf_str_eq(t->name, names[i]));
            assert_int_equal(t->nbytes, sizes[i]);
            assert_int_equal(t->offset % aligns[a], 0);
            assert_int_equal((g->data_offset + t->offset) % aligns[a], 0);
            for (uint64_t j = 0; j < t->nbytes; j++) assert_int_equal(t->data[j], (uint8_t)(off + j + 1));
            off += t->nbytes;
        }
        assert_int_equal(g->tensors[2].n_dims, 3);
        assert_int_equal(g->tensors[2].ne[0], 5);
        assert_int_equal(g->tensors[2].ne[2], 3);
        assert_int_equal(g->tensors[1].type, BN_GGML_I2_S);
        bn_gguf_close(g);
        remove(path);
    }
}

static void test_writer_errors(void **state) {
    (void)state;
    bn_error err = {{0}};
    bn_gguf_writer *w;
    char path[64];
    bn_tmp_path(path, sizeof path, "mm");

    assert_int_equal(bn_gguf_writer_open("/nonexistent-dir/x.gguf", 32, &w, &err), -1);
    assert_null(w);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.gguf"));
    assert_int_equal(bn_gguf_writer_open(path, 48, &w, &err), -1); // not a power of two

    // more data than declared
    assert_int_equal(bn_gguf_writer_open(path, 32, &w, &err), 0);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "a", 1, (uint64_t[]){4}, BN_GGML_F32, &err), 0);
    uint8_t buf[32] = {0};
    assert_int_equal(bn_gguf_writer_write(w, buf, 17, &err), -1);
    assert_non_null(strstr(err.msg, "more tensor data"));
    assert_int_equal(bn_gguf_writer_close(w, &err), -1);

    // missing data at close
    assert_int_equal(bn_gguf_writer_open(path, 32, &w, &err), 0);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "a", 1, (uint64_t[]){4}, BN_GGML_F32, &err), 0);
    assert_int_equal(bn_gguf_writer_write(w, buf, 10, &err), 0);
    assert_int_equal(bn_gguf_writer_close(w, &err), -1);
    assert_non_null(strstr(err.msg, "missing 6 of 16"));

    // metadata after data started; duplicate tensor; bad shapes; unfinished array
    assert_int_equal(bn_gguf_writer_open(path, 32, &w, &err), 0);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "a", 1, (uint64_t[]){4}, BN_GGML_F32, &err), 0);
    assert_int_equal(bn_gguf_writer_write(w, buf, 4, &err), 0);
    assert_int_equal(bn_gguf_writer_kv_u32(w, "late", 1, &err), -1);
    assert_non_null(strstr(err.msg, "after tensor data"));
    bn_gguf_writer_close(w, NULL);

    struct { uint32_t n_dims; uint64_t ne[4]; uint32_t type; } bad[] = {
        {1, {6}, BN_GGML_I2_S},   // I2_S needs n % 4 == 0
        {1, {0}, BN_GGML_F32},    // empty dimension
        {5, {1}, BN_GGML_F32},    // too many dims
        {1, {4}, 99},             // unknown type
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(bn_gguf_writer_open(path, 32, &w, &err), 0);
        assert_int_equal(bn_gguf_writer_add_tensor(w, "t", bad[i].n_dims, bad[i].ne, bad[i].type, &err), -1);
        assert_int_equal(bn_gguf_writer_close(w, NULL), -1);
    }
    assert_int_equal(bn_gguf_writer_open(path, 32, &w, &err), 0);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "t", 1, (uint64_t[]){4}, BN_GGML_F32, &err), 0);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "t", 1, (uint64_t[]){4}, BN_GGML_F32, &err), -1);
    assert_non_null(strstr(err.msg, "duplicate"));
    bn_gguf_writer_close(w, NULL);

    assert_int_equal(bn_gguf_writer_open(path, 32, &w, &err), 0);
    assert_int_equal(bn_gguf_writer_begin_array(w, "s", BN_GGUF_STRING, 2, &err), 0);
    assert_int_equal(bn_gguf_writer_array_str(w, "x", 1, &err), 0);
    assert_int_equal(bn_gguf_writer_array_elem(w, &(uint32_t){1}, &err), -1); // wrong type
    bn_gguf_writer_close(w, NULL);
    assert_int_equal(bn_gguf_writer_open(path, 32, &w, &err), 0);
    assert_int_equal(bn_gguf_writer_begin_array(w, "s", BN_GGUF_STRING, 2, &err), 0);
    assert_int_equal(bn_gguf_writer_array_str(w, "x", 1, &err), 0);
    assert_int_equal(bn_gguf_writer_kv_u32(w, "k", 1, &err), -1); // array not complete
    bn_gguf_writer_close(w, NULL);
    assert_int_equal(bn_gguf_writer_open(path, 32, &w, &err), 0);
    assert_int_equal(bn_gguf_writer_begin_array(w, "s", BN_GGUF_ARRAY, 1, &err), -1); // nested
    bn_gguf_writer_close(w, NULL);
    assert_int_equal(bn_gguf_writer_close(NULL, &err), 0);
    remove(path);
}

// ---- the generator ---------------------------------------------------------------

static bn_synth_config small_config(void) {
    bn_synth_config c;
    bn_error err = {{0}};
    assert_int_equal(bn_synth_preset("tiny", &c, &err), 0);
    // odd on purpose: 3 layers, 6 heads of 64 over 3 kv heads, ffn 640 (5 blocks)
    c.n_embd = 384, c.n_ff = 640, c.n_layer = 3, c.n_head = 6, c.n_head_kv = 2;
    c.n_ctx = 256, c.seed = 7;
    return c;
}

static void write_model(const bn_synth_config *c, const char *path) {
    bn_error err = {{0}};
    int rc = bn_synth_model_write(c, path, &err);
    if (rc) fprintf(stderr, "bn_synth_model_write: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void expect_u32(const bn_gguf *g, const char *key, uint32_t v) {
    int64_t k = bn_gguf_find_key(g, key);
    assert_true(k >= 0);
    assert_int_equal(g->kv[k].value.type, BN_GGUF_UINT32); // as in the official files
    assert_int_equal(g->kv[k].value.u64, v);
}

static void expect_f32(const bn_gguf *g, const char *key, float v) {
    int64_t k = bn_gguf_find_key(g, key);
    assert_true(k >= 0);
    assert_int_equal(g->kv[k].value.type, BN_GGUF_FLOAT32);
    assert_true((float)g->kv[k].value.f64 == v);
}

// Every I2_S fact of docs/architecture.md: I2_S on one tensor.
static void check_i2s(const bn_gguf_tensor *t) {
    uint64_t n = t->ne[0] * t->ne[1];
    assert_int_equal(t->type, BN_GGML_I2_S);
    assert_int_equal(t->ne[0] % 128, 0);
    assert_int_equal(t->nbytes, n / 4 + 32);
    uint64_t count[4] = {0};
    for (uint64_t i = 0; i < n / 4; i++)
        for (int s = 0; s < 8; s += 2) count[(t->data[i] >> s) & 3]++;
    assert_int_equal(count[3], 0); // 0b11 is never written
    // -1/0/+1 about a third each
    for (int c = 0; c < 3; c++) assert_true(fabs((double)count[c] / (double)n - 1.0 / 3) < 0.02);
    float scale = rd_f32(t->data + n / 4);
    float base = 1.0f / sqrtf(2.0f * (float)t->ne[0] / 3.0f);
    assert_true(scale >= base * 0.87f && scale <= base * 1.13f);
    for (int i = 4; i < 32; i++) assert_int_equal(t->data[n / 4 + i], 0); // padding
}

static void test_synth_structure(void **state) {
    (void)state;
    bn_synth_config c = small_config();
    char path[64];
    bn_tmp_path(path, sizeof path, "mm");
    write_model(&c, path);

    bn_error err = {{0}};
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(path, &g, &err), 0);
    bn_gguf_str s;
    assert_int_equal(bn_gguf_get_str(g, "general.architecture", &s, &err), 0);
    assert_true(bn_gguf_str_eq(s, "bitnet-b1.58"));
    uint32_t n_vocab = bn_synth_builtin_vocab_size(0);
    expect_u32(g, "bitnet-b1.58.vocab_size", n_vocab);
    expect_u32(g, "bitnet-b1.58.context_length", 256);
    expect_u32(g, "bitnet-b1.58.embedding_length", 384);
    expect_u32(g, "bitnet-b1.58.block_count", 3);
    expect_u32(g, "bitnet-b1.58.feed_forward_length", 640);
    expect_u32(g, "bitnet-b1.58.attention.head_count", 6);
    expect_u32(g, "bitnet-b1.58.attention.head_count_kv", 2);
    expect_u32(g, "bitnet-b1.58.rope.dimension_count", 64);
    expect_u32(g, "general.file_type", 40);
    expect_f32(g, "bitnet-b1.58.rope.freq_base", 500000.0f);
    expect_f32(g, "bitnet-b1.58.attention.layer_norm_rms_epsilon", 1e-5f);
    assert_int_equal(g->alignment, 32);

    // docs/architecture.md: The GGUF file: token_embd + output_norm + 11 per layer, no output.weight
    assert_int_equal(g->n_tensors, 2 + 11 * 3);
    assert_true(bn_gguf_find_tensor(g, "output.weight") < 0);
    const bn_gguf_tensor *e = &g->tensors[bn_gguf_find_tensor(g, "token_embd.weight")];
    assert_int_equal(e->type, BN_GGML_F16);
    assert_int_equal(e->ne[0], 384);
    assert_int_equal(e->ne[1], n_vocab);
    // embedding ~ N(0, 3/sqrt(hidden)): check mean and std from the f16 bits
    double sum = 0, sum2 = 0;
    uint64_t ne = e->ne[0] * e->ne[1];
    for (uint64_t i = 0; i < ne; i++) {
        uint16_t h = (uint16_t)(e->data[2 * i] | e->data[2 * i + 1] << 8);
        int ex = (h >> 10) & 31, m = h & 1023;
        assert_true(ex != 31); // finite
        double v = ex ? ldexp(1024 + m, ex - 25) : ldexp(m, -24);
        if (h & 0x8000) v = -v;
        sum += v, sum2 += v * v;
    }
    double want = 3.0 / sqrt(384.0);
    assert_true(fabs(sum / (double)ne) < 0.01 * want);
    assert_true(fabs(sqrt(sum2 / (double)ne) / want - 1.0) < 0.02);

    const char *i2s[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    const uint64_t i2s_ne[][2] = {{384, 384}, {384, 128}, {384, 128}, {384, 384},
                                  {384, 640}, {384, 640}, {640, 384}};
    const char *norms[] = {"attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"};
    const uint64_t norm_ne[] = {384, 384, 384, 640};
    for (int l = 0; l < 3; l++) {
        char name[64];
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, i2s[i]);
            int64_t k = bn_gguf_find_tensor(g, name);
            assert_true(k >= 0);
            assert_int_equal(g->tensors[k].n_dims, 2);
            assert_int_equal(g->tensors[k].ne[0], i2s_ne[i][0]);
            assert_int_equal(g->tensors[k].ne[1], i2s_ne[i][1]);
            check_i2s(&g->tensors[k]);
        }
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, norms[i]);
            int64_t k = bn_gguf_find_tensor(g, name);
            assert_true(k >= 0);
            const bn_gguf_tensor *t = &g->tensors[k];
            assert_int_equal(t->type, BN_GGML_F32);
            assert_int_equal(t->n_dims, 1);
            assert_int_equal(t->ne[0], norm_ne[i]);
            for (uint64_t j = 0; j < t->ne[0]; j++) {
                float v = rd_f32(t->data + 4 * j);
                assert_true(v >= 0.899f && v <= 1.101f);
            }
        }
    }
    // tensors that differ only by name get different streams
    const bn_gguf_tensor *q0 = &g->tensors[bn_gguf_find_tensor(g, "blk.0.attn_q.weight")];
    const bn_gguf_tensor *q1 = &g->tensors[bn_gguf_find_tensor(g, "blk.1.attn_q.weight")];
    assert_true(memcmp(q0->data, q1->data, q0->nbytes) != 0);

    // the built-in vocabulary loads and behaves like a byte-level BPE vocabulary
    bn_tokenizer *tok;
    int rc = bn_tokenizer_from_gguf(g, &tok, &err);
    if (rc) fprintf(stderr, "tokenizer: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(bn_tokenizer_n_vocab(tok), (int32_t)n_vocab);
    assert_int_equal(bn_tokenizer_bos(tok), (int32_t)n_vocab - 256);
    assert_int_equal(bn_tokenizer_eos(tok), (int32_t)n_vocab - 255);
    assert_int_equal(bn_tokenizer_eot(tok), (int32_t)n_vocab - 247);
    assert_true(bn_tokenizer_add_bos(tok));
    size_t len;
    const char *txt = bn_tokenizer_token_text(tok, bn_tokenizer_eot(tok), &len);
    assert_int_equal(len, 10);
    assert_memory_equal(txt, "<|eot_id|>", 10);
    const char *text = "the cat\xE2\x82\xAC\n2+2=";
    int32_t *ids;
    size_t n_ids;
    assert_int_equal(bn_tokenize(tok, text, strlen(text), true, false, &ids, &n_ids, &err), 0);
    assert_int_equal(ids[0], bn_tokenizer_bos(tok));
    // "the" -> "t"+"he" merge, " cat" -> Ġc + a + t, then single bytes
    assert_true(n_ids < strlen(text) + 1);
    char *back;
    assert_int_equal(bn_detokenize(tok, ids + 1, n_ids - 1, &back, &len, &err), 0);
    assert_string_equal(back, text);
    free(back);
    free(ids);
    bn_tokenizer_free(tok);
    bn_gguf_close(g);

    // the model loader accepts it and reads the same hyperparameters
    bn_model *m;
    rc = bn_model_load(path, &m, &err);
    if (rc) fprintf(stderr, "bn_model_load: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_string_equal(m->arch, "bitnet-b1.58");
    assert_int_equal(m->hp.n_vocab, n_vocab);
    assert_int_equal(m->hp.n_embd, 384);
    assert_int_equal(m->hp.n_ff, 640);
    assert_int_equal(m->hp.n_layer, 3);
    assert_int_equal(m->hp.n_head, 6);
    assert_int_equal(m->hp.n_head_kv, 2);
    assert_int_equal(m->hp.head_dim, 64);
    assert_int_equal(m->hp.n_ctx_train, 256);
    assert_true(m->output_tied);
    assert_true(m->layers[2].w_down.scale > 0);
    bn_model_free(m);
    remove(path);
}

static void test_synth_determinism(void **state) {
    (void)state;
    bn_synth_config c = small_config();
    c.n_layer = 1;
    char p1[64], p2[64], p3[64];
    bn_tmp_path(p1, sizeof p1, "mm");
    bn_tmp_path(p2, sizeof p2, "mm");
    bn_tmp_path(p3, sizeof p3, "mm");
    write_model(&c, p1);
    write_model(&c, p2);
    c.seed = 8;
    write_model(&c, p3);
    size_t n1 = 0, n2 = 0, n3 = 0;
    char *a = bn_read_file(p1, &n1), *b = bn_read_file(p2, &n2), *d = bn_read_file(p3, &n3);
    assert_non_null(a), assert_non_null(b), assert_non_null(d);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    // a different seed changes the weights (and general.name), not the layout
    assert_int_equal(n1, n3);
    assert_true(memcmp(a, d, n1) != 0);
    free(a), free(b), free(d);

    // golden hash of the default tiny preset: the same bytes on every machine
    // (integer-only generation; update only on a deliberate format change)
    bn_synth_config t;
    bn_error err = {{0}};
    assert_int_equal(bn_synth_preset("tiny", &t, &err), 0);
    write_model(&t, p1);
    a = bn_read_file(p1, &n1);
    assert_non_null(a);
    fprintf(stderr, "tiny preset: %zu bytes, fnv1a %016llx\n", n1,
            (unsigned long long)fnv1a((const uint8_t *)a, n1));
    assert_int_equal(n1, TINY_SIZE);
    assert_int_equal(fnv1a((const uint8_t *)a, n1), TINY_FNV);
    free(a);
    remove(p1), remove(p2), remove(p3);
}

// --calm: the same codes and tensors, the O and down projections' scales times
// one power of two (2^-8 at this hidden 384, 2^-10 at 2560: 9 * 4^k >= 1024 hidden),
// the key that tells bench, and a refusal with trained weights.
static void test_synth_calm(void **state) {
    (void)state;
    bn_synth_config c = small_config();
    char p1[64], p2[64];
    bn_tmp_path(p1, sizeof p1, "mm");
    bn_tmp_path(p2, sizeof p2, "mm");
    write_model(&c, p1);
    c.calm = true;
    write_model(&c, p2);
    bn_model *a = NULL, *b = NULL;
    bn_error err = {{0}};
    assert_int_equal(bn_model_load(p1, &a, &err), 0);
    assert_int_equal(bn_model_load(p2, &b, &err), 0);
    assert_int_equal(c.n_embd, 384);
    const float f = 1.0f / 256; // 2^-8: 9 * 4^8 >= 1024 * 384 > 9 * 4^7
    assert_true(f < 1.0f / 16);
    bool v = false;
    assert_int_equal(bn_gguf_get_bool(b->gguf, BN_SYNTH_CALM_KEY, &v, &err), 0);
    assert_true(v);
    assert_true(bn_gguf_find_key(a->gguf, BN_SYNTH_CALM_KEY) < 0);
    for (uint32_t l = 0; l < c.n_layer; l++) {
        const bn_layer *x = &a->layers[l], *y = &b->layers[l];
        assert_true(y->wo.scale == x->wo.scale * f && y->w_down.scale == x->w_down.scale * f);
        assert_true(y->wq.scale == x->wq.scale && y->w_gate.scale == x->w_gate.scale);
        assert_memory_equal(y->wo.data, x->wo.data, (size_t)(x->wo.ne0 * x->wo.ne1 / 4));
        assert_memory_equal(y->w_down.data, x->w_down.data, (size_t)(x->w_down.ne0 * x->w_down.ne1 / 4));
    }
    bn_model_free(a);
    bn_model_free(b);
    c.weights_path = p1; // any path: refused before it is opened
    assert_int_equal(bn_synth_validate(&c, &err), -1);
    assert_non_null(strstr(err.msg, "calm"));
    remove(p1), remove(p2);
}

static void test_synth_validation(void **state) {
    (void)state;
    bn_error err = {{0}};
    bn_synth_config c;
    assert_int_equal(bn_synth_preset("2b-4t", &c, &err), 0);
    assert_int_equal(c.n_embd, 2560);
    assert_int_equal(c.n_ff, 6912);
    assert_int_equal(c.n_layer, 30);
    assert_int_equal(c.n_head, 20);
    assert_int_equal(c.n_head_kv, 5);
    assert_int_equal(c.n_ctx, 4096);
    assert_int_equal(c.n_vocab, 128256);
    assert_int_equal(bn_synth_validate(&c, &err), 0);
    assert_int_equal(bn_synth_preset("huge", &c, &err), -1);

    struct { const char *what; bn_synth_config c; } bad[8];
    for (int i = 0; i < 8; i++) bad[i].c = small_config();
    bad[0].what = "multiple of 128", bad[0].c.n_embd = 200;
    bad[1].what = "multiple of 128", bad[1].c.n_ff = 700;
    bad[2].what = "divide", bad[2].c.n_head = 5;              // 384 % 5
    bad[3].what = "divide", bad[3].c.n_head_kv = 4;           // 6 % 4
    bad[4].what = "even", bad[4].c.n_embd = 384, bad[4].c.n_head = 128; // head_dim 3
    bad[5].what = "layer", bad[5].c.n_layer = 0;
    bad[6].what = "context", bad[6].c.n_ctx = 0;
    bad[7].what = "below", bad[7].c.n_vocab = 300;             // smaller than the vocabulary
    char path[64];
    bn_tmp_path(path, sizeof path, "mm");
    for (int i = 0; i < 8; i++) {
        err.msg[0] = 0;
        assert_int_equal(bn_synth_model_write(&bad[i].c, path, &err), -1);
        if (!strstr(err.msg, bad[i].what)) fprintf(stderr, "case %d: %s\n", i, err.msg);
        assert_non_null(strstr(err.msg, bad[i].what));
    }
    // a vocabulary file that is not there: error, and no file left behind
    bn_synth_config v = small_config();
    v.vocab_path = "/nonexistent/tokenizer.json";
    remove(path);
    assert_int_equal(bn_synth_model_write(&v, path, &err), -1);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    v.vocab_path = NULL;
    assert_int_equal(bn_synth_model_write(&v, "/nonexistent-dir/m.gguf", &err), -1);
}

// A built-in vocabulary padded to a requested size keeps the specials at the end.
static void test_synth_vocab_padding(void **state) {
    (void)state;
    bn_synth_config c = small_config();
    c.n_layer = 1;
    c.n_vocab = 1000;
    char path[64];
    bn_tmp_path(path, sizeof path, "mm");
    write_model(&c, path);
    bn_error err = {{0}};
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(path, &g, &err), 0);
    bn_tokenizer *tok;
    assert_int_equal(bn_tokenizer_from_gguf(g, &tok, &err), 0);
    assert_int_equal(bn_tokenizer_n_vocab(tok), 1000);
    assert_int_equal(bn_tokenizer_bos(tok), 744);
    assert_int_equal(bn_tokenizer_token_type(tok, 500), BN_TOKEN_TYPE_CONTROL);
    assert_int_equal(bn_tokenizer_token_type(tok, 'a'), BN_TOKEN_TYPE_NORMAL);
    assert_true(bn_tokenizer_is_special(tok, 999));
    bn_tokenizer_free(tok);
    bn_gguf_close(g);
    remove(path);
}

// --vocab with the real Llama-3 tokenizer.json: the file's vocabulary equals it.
static void test_synth_llama3_vocab(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(json, "llama3/tokenizer.json");
    bn_synth_config c = small_config();
    c.n_embd = 128, c.n_ff = 256, c.n_layer = 1, c.n_head = 2, c.n_head_kv = 1; // tiny-a shape
    c.vocab_path = json;
    char path[64];
    bn_tmp_path(path, sizeof path, "mm");
    write_model(&c, path);

    bn_error err = {{0}};
    bn_tokenizer *ref, *tok;
    assert_int_equal(bn_tokenizer_from_json(json, &ref, &err), 0);
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(path, &g, &err), 0);
    expect_u32(g, "bitnet-b1.58.vocab_size", 128256);
    assert_int_equal(g->tensors[bn_gguf_find_tensor(g, "token_embd.weight")].ne[1], 128256);
    int rc = bn_tokenizer_from_gguf(g, &tok, &err);
    if (rc) fprintf(stderr, "tokenizer: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(bn_tokenizer_n_vocab(tok), 128256);
    assert_int_equal(bn_tokenizer_n_merges(tok), bn_tokenizer_n_merges(ref));
    assert_int_equal(bn_tokenizer_bos(tok), 128000);
    assert_int_equal(bn_tokenizer_eos(tok), bn_tokenizer_eos(ref));
    assert_int_equal(bn_tokenizer_eot(tok), 128009);
    for (int32_t id = 0; id < 128256; id += 97) {
        size_t l1, l2;
        const char *a = bn_tokenizer_token_text(ref, id, &l1), *b = bn_tokenizer_token_text(tok, id, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(a, b, l1);
        assert_int_equal(bn_tokenizer_token_type(ref, id), bn_tokenizer_token_type(tok, id));
    }
    const char *text = "Hello world! 2+2=4, isn't it?\n\n  \xE4\xBD\xA0\xE5\xA5\xBD";
    int32_t *i1, *i2;
    size_t n1, n2;
    assert_int_equal(bn_tokenize(ref, text, strlen(text), true, false, &i1, &n1, &err), 0);
    assert_int_equal(bn_tokenize(tok, text, strlen(text), true, false, &i2, &n2, &err), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(i1, i2, n1 * sizeof *i1);
    free(i1), free(i2);
    bn_tokenizer_free(tok);
    bn_gguf_close(g);

    // and a .gguf vocabulary source gives the same vocabulary again
    char path2[64];
    bn_tmp_path(path2, sizeof path2, "mm");
    c.vocab_path = path;
    c.seed = 3;
    write_model(&c, path2);
    assert_int_equal(bn_gguf_open(path2, &g, &err), 0);
    assert_int_equal(bn_tokenizer_from_gguf(g, &tok, &err), 0);
    assert_int_equal(bn_tokenizer_n_vocab(tok), 128256);
    assert_int_equal(bn_tokenizer_n_merges(tok), bn_tokenizer_n_merges(ref));
    bn_tokenizer_free(tok);
    bn_gguf_close(g);
    bn_tokenizer_free(ref);
    remove(path), remove(path2);
}

// With tiny-a's shape and vocabulary (copied from tiny-a.gguf, an official-format
// file written by bitnet.cpp's tools), the generated file has the same keys with
// the same types, and the same tensors with the same types, shapes and offsets.
static void test_synth_mirrors_official_layout(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(ref_path, "tiny-a/tiny-a.gguf");
    bn_synth_config c = small_config();
    c.n_embd = 128, c.n_ff = 256, c.n_layer = 2, c.n_head = 2, c.n_head_kv = 1, c.n_ctx = 512;
    c.vocab_path = ref_path;
    char path[64];
    bn_tmp_path(path, sizeof path, "mm");
    write_model(&c, path);
    bn_error err = {{0}};
    bn_gguf *ref, *g;
    assert_int_equal(bn_gguf_open(ref_path, &ref, &err), 0);
    assert_int_equal(bn_gguf_open(path, &g, &err), 0);
    for (uint64_t i = 0; i < ref->n_kv; i++) {
        const bn_gguf_kv *a = &ref->kv[i];
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)a->key.len, a->key.data);
        int64_t k = bn_gguf_find_key(g, key);
        if (k < 0) fprintf(stderr, "missing key %s\n", key);
        assert_true(k >= 0);
        const bn_gguf_value *b = &g->kv[k].value;
        assert_int_equal(b->type, a->value.type);
        if (a->value.type == BN_GGUF_ARRAY) {
            assert_int_equal(b->arr.elem_type, a->value.arr.elem_type);
            assert_int_equal(b->arr.count, a->value.arr.count);
            for (uint64_t j = 0; a->value.arr.elem_type == BN_GGUF_STRING && j < b->arr.count; j++) {
                assert_int_equal(b->arr.strs[j].len, a->value.arr.strs[j].len);
                assert_memory_equal(b->arr.strs[j].data, a->value.arr.strs[j].data, b->arr.strs[j].len);
            }
            for (uint64_t j = 0; a->value.arr.elem_type == BN_GGUF_INT32 && j < b->arr.count; j++)
                assert_int_equal(bn_gguf_arr_int(&b->arr, j), bn_gguf_arr_int(&a->value.arr, j));
        } else if (a->value.type != BN_GGUF_STRING || strcmp(key, "general.name") != 0) {
            if (a->value.type == BN_GGUF_STRING) {
                assert_int_equal(b->str.len, a->value.str.len);
                assert_memory_equal(b->str.data, a->value.str.data, b->str.len);
            } else if (a->value.type == BN_GGUF_FLOAT32) {
                assert_true(b->f64 == a->value.f64);
            } else {
                assert_int_equal(b->u64, a->value.u64);
            }
        }
    }
    assert_int_equal(g->n_tensors, ref->n_tensors);
    for (uint64_t i = 0; i < ref->n_tensors; i++) {
        const bn_gguf_tensor *a = &ref->tensors[i], *b = &g->tensors[i];
        assert_int_equal(b->name.len, a->name.len);
        assert_memory_equal(b->name.data, a->name.data, a->name.len);
        assert_int_equal(b->type, a->type);
        assert_int_equal(b->n_dims, a->n_dims);
        assert_memory_equal(b->ne, a->ne, sizeof a->ne);
        assert_int_equal(b->nbytes, a->nbytes);
        assert_int_equal(b->offset, a->offset);
    }
    bn_gguf_close(ref);
    bn_gguf_close(g);
    remove(path);
}

// The weight scales keep activations sane: through the CPU backend, the logits
// of the tiny preset are finite with a standard deviation near the designed 3.
static void test_synth_activations_sane(void **state) {
    (void)state;
    bn_synth_config c;
    bn_error err = {{0}};
    assert_int_equal(bn_synth_preset("tiny", &c, &err), 0);
    c.n_layer = 4;
    char path[64];
    bn_tmp_path(path, sizeof path, "mm");
    write_model(&c, path);
    bn_engine *e;
    bn_session *s;
    int rc = bn_engine_load(path, NULL, &e, &err);
    if (rc) fprintf(stderr, "bn_engine_load: %s\n", err.msg);
    assert_int_equal(rc, 0);
    bn_session_params p = {.backend = "cpu", .n_threads = 1};
    rc = bn_session_create(e, &p, &s, &err);
    if (rc) fprintf(stderr, "bn_session_create: %s\n", err.msg);
    assert_int_equal(rc, 0);
    int n_vocab = bn_engine_info(e).n_vocab;
    int32_t *ids;
    size_t n;
    assert_int_equal(bn_engine_tokenize(e, "The quick brown fox, 2+2=", true, false, &ids, &n, &err), 0);
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    assert_non_null(logits);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(bn_session_eval(s, &ids[i], 1, logits, &err), 0);
        double sum = 0, sum2 = 0;
        for (int v = 0; v < n_vocab; v++) {
            assert_true(isfinite(logits[v]));
            sum += logits[v], sum2 += (double)logits[v] * logits[v];
        }
        double mean = sum / n_vocab, sd = sqrt(sum2 / n_vocab - mean * mean);
        assert_true(fabs(mean) < 1.0);
        assert_true(sd > 1.5 && sd < 6.0);
    }
    free(logits);
    free(ids);
    bn_session_free(s);
    bn_engine_free(e);
    remove(path);
}

// ---- the CLI ---------------------------------------------------------------------

static int run_cli(const char *args) {
    const char *cli = getenv("BITNET_CLI");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' make-model %s 2>/dev/null", cli, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **state) {
    (void)state;
    const char *cli = getenv("BITNET_CLI");
    if (!cli || access(cli, X_OK) != 0) {
        fprintf(stderr, "SKIP: BITNET_CLI not set or not executable\n");
        skip();
    }
    char path[64], args[256];
    bn_tmp_path(path, sizeof path, "mm");
    snprintf(args, sizeof args, "-o %s --layers 1 --seed 5", path);
    assert_int_equal(run_cli(args), 0);
    bn_error err = {{0}};
    bn_model *m;
    assert_int_equal(bn_model_load(path, &m, &err), 0);
    assert_int_equal(m->hp.n_embd, 256); // the tiny preset
    assert_int_equal(m->hp.n_layer, 1);
    bn_model_free(m);

    const char *usage_errors[] = {
        "",                                    // no -o
        "-o /tmp/x.gguf --hidden",             // missing value
        "-o /tmp/x.gguf --bogus 1",            // unknown flag
        "-o /tmp/x.gguf --hidden abc",         // not a number
        "-o /tmp/x.gguf --hidden -128",        // negative
        "-o /tmp/x.gguf --hidden 200",         // not a multiple of 128
        "-o /tmp/x.gguf --heads 3",            // does not divide 256
        "-o /tmp/x.gguf --kv-heads 3",         // does not divide 4 heads
        "-o /tmp/x.gguf --preset nope",
    };
    for (size_t i = 0; i < sizeof usage_errors / sizeof usage_errors[0]; i++) {
        if (run_cli(usage_errors[i]) != 2) fprintf(stderr, "case: %s\n", usage_errors[i]);
        assert_int_equal(run_cli(usage_errors[i]), 2);
    }
    assert_int_equal(run_cli("-o /nonexistent-dir/m.gguf"), 1);
    assert_int_equal(run_cli("-o /tmp/x.gguf --vocab /nonexistent/tokenizer.json"), 1);
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_roundtrip),   cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_synth_structure),    cmocka_unit_test(test_synth_determinism),
        cmocka_unit_test(test_synth_validation),   cmocka_unit_test(test_synth_vocab_padding),
        cmocka_unit_test(test_synth_llama3_vocab), cmocka_unit_test(test_synth_mirrors_official_layout),
        cmocka_unit_test(test_synth_activations_sane), cmocka_unit_test(test_cli),
        cmocka_unit_test(test_synth_calm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
