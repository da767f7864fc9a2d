// test_fuzz_replay.c - replays every file in fuzz/corpus/, fuzz/corpus-tokenizer/,
// fuzz/corpus-serve/ and fuzz/corpus-schema/ through their fuzz targets' own functions (fuzz/*.c are
// included below), so the seeds and every crash input saved there are
// regression tests in every build, not only with libFuzzer.
//
// The corpus directories are found next to this source file (CMake compiles with
// absolute paths), or through BITNET_FUZZ_CORPUS (the GGUF one).
//
// Regenerate the builder-made GGUF seeds (after a format change):
//   BITNET_WRITE_CORPUS=fuzz/corpus ./build/test_fuzz_replay
#include "test_util.h"

#include <dirent.h>

#define LLVMFuzzerTestOneInput fuzz_gguf_one
#include "../fuzz/fuzz_gguf.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_one
#include "../fuzz/fuzz_tokenizer.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_serve_api_one
#include "../fuzz/fuzz_serve_api.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_json_schema_one
#include "../fuzz/fuzz_json_schema.c"
#undef LLVMFuzzerTestOneInput
#include "gguf_builder.h"

// fuzz/NAME next to this file's directory.
static const char *fuzz_dir(const char *name, char *buf, size_t n) {
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    int dir_len = slash ? (int)(slash - file) : 1;
    snprintf(buf, n, "%.*s/../fuzz/%s", dir_len, slash ? file : ".", name);
    return buf;
}

static const char *corpus_dir(char *buf, size_t n) {
    const char *env = getenv("BITNET_FUZZ_CORPUS");
    if (env && *env) return env;
    return fuzz_dir("corpus", buf, n);
}

static int replay_dir(const char *dir, int (*one)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        size_t len = 0;
        char *buf = bn_read_file(path, &len);
        if (!buf) continue;
        // An exact-size copy, so an overread is caught by ASan as it is by libFuzzer.
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        free(buf);
        one(exact, len);
        free(exact);
        n++;
    }
    closedir(d);
    return n;
}

static void test_replay_corpus(void **state) {
    (void)state;
    char buf[4096];
    const char *dir = corpus_dir(buf, sizeof buf);
    int n = replay_dir(dir, fuzz_gguf_one);
    if (n < 0) fail_msg("cannot open the fuzz corpus at %s (set BITNET_FUZZ_CORPUS)", dir);
    assert_true(n >= 3);
}

// fuzz/NAME through one, at least `min` inputs.
static void replay_named(const char *name, int (*one)(const uint8_t *, size_t), int min) {
    char buf[4096];
    const char *dir = fuzz_dir(name, buf, sizeof buf);
    const int n = replay_dir(dir, one);
    if (n < 0) fail_msg("cannot open the fuzz corpus at %s", dir);
    assert_true(n >= min);
}

// The tokenizer's corpus: each input's ids in range and its bytes back exactly
// (the target aborts otherwise).
static void test_replay_tokenizer_corpus(void **state) {
    (void)state;
    replay_named("corpus-tokenizer", fuzz_tokenizer_one, 5);
}

// The server's corpus: every answer a JSON reply (an error an OpenAI error
// object) or a job, cancelled at once (the target aborts otherwise).
static void test_replay_serve_corpus(void **state) {
    (void)state;
    replay_named("corpus-serve", fuzz_serve_api_one, 9);
}

// The JSON Schema corpus: schema, NUL, text; the automaton's promises checked.
static void test_replay_schema_corpus(void **state) {
    (void)state;
    replay_named("corpus-schema", fuzz_json_schema_one, 6);
}

// The seeds are valid files: a model must load, the others must at least open.
static void test_seeds_are_valid(void **state) {
    (void)state;
    char buf[4096], path[4200];
    const char *dir = corpus_dir(buf, sizeof buf);
    static const char *const seeds[] = {"seed-model.bin", "seed-kv-types.bin",
                                        "seed-v2-tensors.bin"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, seeds[i]);
        size_t len;
        char *data = bn_read_file(path, &len);
        if (!data) fail_msg("missing seed %s", path);
        bn_gguf *g;
        bn_error err;
        if (bn_gguf_open_memory(data, len, &g, &err) != 0) fail_msg("%s: %s", path, err.msg);
        if (i == 0) {
            bn_model *m;
            if (bn_model_from_gguf(g, &m, &err) != 0) fail_msg("%s: %s", path, err.msg);
            bn_model_free(m);
        } else {
            bn_gguf_close(g);
        }
        free(data);
    }
}

// ---- seed generation -------------------------------------------------------------------

static uint8_t *seed_kv_types(size_t *n) {
    gb_builder b;
    gb_init(&b, 3);
    gb_kv_str(&b, "general.architecture", "bitnet-b1.58");
    gb_kv_u8(&b, "u8", 1);
    gb_kv_i8(&b, "i8", -1);
    gb_kv_u16(&b, "u16", 2);
    gb_kv_i16(&b, "i16", -2);
    gb_kv_u32(&b, "bitnet-b1.58.embedding_length", 128);
    gb_kv_i32(&b, "i32", -3);
    gb_kv_f32(&b, "bitnet-b1.58.rope.freq_base", 10000.0f);
    gb_kv_bool(&b, "tokenizer.ggml.add_bos_token", true);
    gb_kv_u64(&b, "u64", 4);
    gb_kv_i64(&b, "i64", -4);
    gb_kv_f64(&b, "f64", 0.5);
    static const char *const toks[] = {"a", "b", "ab", "<|begin_of_text|>"};
    gb_kv_arr_str(&b, "tokenizer.ggml.tokens", toks, 4);
    gb_kv_arr_i32(&b, "tokenizer.ggml.token_type", (const int32_t[]){1, 1, 1, 3}, 4);
    gb_kv_arr(&b, "nested", BN_GGUF_ARRAY, 2);
    gb_put_u32(&b.kv, BN_GGUF_STRING); gb_put_u64(&b.kv, 1); gb_put_str(&b.kv, "x");
    gb_put_u32(&b.kv, BN_GGUF_UINT16); gb_put_u64(&b.kv, 2); gb_put_u16(&b.kv, 1); gb_put_u16(&b.kv, 2);
    gb_tensor(&b, "f32", BN_GGML_F32, 1, (uint64_t[]){8}, NULL, 32);
    gb_tensor(&b, "f16", BN_GGML_F16, 2, (uint64_t[]){4, 2}, NULL, 16);
    gb_tensor(&b, "bf16", BN_GGML_BF16, 3, (uint64_t[]){2, 2, 2}, NULL, 16);
    gb_tensor(&b, "q8", 8, 4, (uint64_t[]){32, 1, 1, 2}, NULL, 68);
    gb_tensor(&b, "i2s", BN_GGML_I2_S, 2, (uint64_t[]){128, 2}, NULL, 96);
    uint8_t *f = gb_finish(&b, n);
    gb_free(&b);
    return f;
}

static uint8_t *seed_v2_tensors(size_t *n) {
    gb_builder b;
    gb_init(&b, 2);
    b.alignment = 64;
    gb_kv_u32(&b, "general.alignment", 64);
    gb_kv_str(&b, "general.name", "v2 seed");
    gb_tensor(&b, "tq2", 35, 1, (uint64_t[]){256}, NULL, 66);
    gb_tensor(&b, "q4k", 12, 2, (uint64_t[]){256, 2}, NULL, 288);
    gb_tensor(&b, "tq1", 34, 1, (uint64_t[]){256}, NULL, 54);
    uint8_t *f = gb_finish(&b, n);
    gb_free(&b);
    return f;
}

static int write_seeds(const char *dir) {
    struct { const char *name; uint8_t *data; size_t n; } s[3];
    gb_model_opts o = {.norms_f16 = true};
    s[0].name = "seed-model.bin";
    s[0].data = gb_model(&o, &s[0].n);
    s[1].name = "seed-kv-types.bin";
    s[1].data = seed_kv_types(&s[1].n);
    s[2].name = "seed-v2-tensors.bin";
    s[2].data = seed_v2_tensors(&s[2].n);
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, s[i].name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(s[i].data, 1, s[i].n, f) != s[i].n) rc = -1;
        if (f) fclose(f);
        fprintf(stderr, "wrote %s (%zu bytes)\n", path, s[i].n);
        free(s[i].data);
    }
    return rc;
}

int main(void) {
    const char *out = getenv("BITNET_WRITE_CORPUS");
    if (out && *out) return write_seeds(out) == 0 ? 0 : 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_corpus),
        cmocka_unit_test(test_replay_tokenizer_corpus),
        cmocka_unit_test(test_replay_serve_corpus),
        cmocka_unit_test(test_replay_schema_corpus),
        cmocka_unit_test(test_seeds_are_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
