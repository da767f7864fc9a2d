// test_model.c - the BitNet model loader on tiny-a and on builder-made broken models,
// plus `bitnet-gpu inspect --json` on the fixture.
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <unistd.h>

#include "gguf_builder.h"
#include "bitnet.h"
#include "devtools.h"
#include "model.h"

// ---- tiny-a (values from fixtures/README.md) ----------------------------------------

static void test_tiny_a(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
    bn_model *m;
    bn_error err = {{0}};
    if (bn_model_load(path, &m, &err) != 0) fail_msg("%s", err.msg);
    assert_string_equal(m->arch, "bitnet-b1.58");
    const bn_hparams *hp = &m->hp;
    assert_int_equal(hp->n_embd, 128);
    assert_int_equal(hp->n_ff, 256);
    assert_int_equal(hp->n_layer, 2);
    assert_int_equal(hp->n_head, 2);
    assert_int_equal(hp->n_head_kv, 1);
    assert_int_equal(hp->head_dim, 64);
    assert_int_equal(hp->n_rot, 64);
    assert_int_equal(hp->n_ctx_train, 512);
    assert_int_equal(hp->n_vocab, 128256);
    assert_float_equal(hp->rope_base, 500000.0f, 0.0f);
    assert_float_equal(hp->norm_eps, 1e-5f, 1e-12f);

    assert_true(m->output_tied);
    assert_ptr_equal(m->output.data, m->tok_embd.data);
    assert_int_equal(m->tok_embd.type, BN_GGML_F16);
    assert_int_equal(m->tok_embd.ne0, 128);
    assert_int_equal(m->tok_embd.ne1, 128256);
    assert_int_equal(m->output_norm.ne0, 128);
    assert_non_null(m->output_norm.f32);

    for (uint32_t il = 0; il < 2; il++) {
        const bn_layer *l = &m->layers[il];
        const bn_tensor *w[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
        for (size_t i = 0; i < 7; i++) {
            assert_int_equal(w[i]->type, BN_GGML_I2_S);
            assert_int_equal(w[i]->nbytes, w[i]->ne0 * w[i]->ne1 / 4 + 32);
            // The scale is the float right after the packed codes (docs/architecture.md: I2_S); the
            // fixture's scales are real, positive floats.
            float s;
            memcpy(&s, (const uint8_t *)w[i]->data + w[i]->ne0 * w[i]->ne1 / 4, 4);
            assert_true(s == w[i]->scale);
            assert_true(isfinite(s) && s > 0 && s != 1.0f);
            assert_non_null(strstr(w[i]->name, il ? "blk.1." : "blk.0."));
        }
        assert_int_equal(l->wk.ne1, 64);
        assert_int_equal(l->w_down.ne0, 256);
        assert_int_equal(l->ffn_sub_norm.ne0, 256);
        assert_non_null(l->attn_sub_norm.f32);
        assert_string_equal(l->w_up.name, il ? "blk.1.ffn_up.weight" : "blk.0.ffn_up.weight");
    }
    bn_model_free(m);
}

// ---- `bitnet-gpu inspect --json` -----------------------------------------------------------

static char *run_cli(const char *cli, const char *args, int *status) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>/dev/null", cli, args);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 2) out = realloc(out, cap *= 2);
    }
    out[len] = 0;
    *status = pclose(p);
    return out;
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("JSON key '%s' missing or not a number", key);
    return v->valuedouble;
}

static void test_inspect_cli(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
    const char *cli = getenv("BITNET_CLI");
    if (!cli || access(cli, X_OK) != 0) {
        fprintf(stderr, "SKIP: BITNET_CLI not set or not executable\n");
        skip();
    }
    char args[4200];
    snprintf(args, sizeof args, "inspect '%s' --json", path);
    int status;
    char *out = run_cli(cli, args, &status);
    assert_non_null(out);
    assert_int_equal(status, 0);
    cJSON *j = cJSON_Parse(out);
    if (!j) fail_msg("inspect --json output is not JSON: %.200s", out);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "architecture")->valuestring,
                        "bitnet-b1.58");
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(j, "hparams");
    assert_non_null(hp);
    assert_int_equal((int)jnum(hp, "n_embd"), 128);
    assert_int_equal((int)jnum(hp, "n_ff"), 256);
    assert_int_equal((int)jnum(hp, "n_layer"), 2);
    assert_int_equal((int)jnum(hp, "n_head"), 2);
    assert_int_equal((int)jnum(hp, "n_head_kv"), 1);
    assert_int_equal((int)jnum(hp, "head_dim"), 64);
    assert_int_equal((int)jnum(hp, "n_ctx_train"), 512);
    assert_int_equal((int)jnum(hp, "n_vocab"), 128256);
    assert_float_equal(jnum(hp, "rope_base"), 500000.0, 0.0);
    assert_float_equal(jnum(hp, "norm_eps"), 1e-5, 1e-9);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "output_tied")));
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(j, "tensors");
    assert_int_equal(cJSON_GetArraySize(tensors), 24);
    const cJSON *totals = cJSON_GetObjectItemCaseSensitive(j, "totals");
    assert_int_equal((int)jnum(totals, "tensor_count"), 24);
    // The fixture embeds the real Llama-3 vocabulary (fixtures README).
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "tokenizer");
    assert_true(cJSON_IsObject(tok));
    assert_int_equal((int)jnum(tok, "vocab_size"), 128256);
    assert_int_equal((int)jnum(tok, "merges"), 280147);
    assert_int_equal((int)jnum(tok, "bos_id"), 128000);
    assert_int_equal((int)jnum(tok, "eot_id"), 128009);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tok, "pre")->valuestring, "llama-bpe");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tok, "model")->valuestring, "gpt2");
    const cJSON *t0 = cJSON_GetArrayItem(tensors, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t0, "name")->valuestring,
                        "token_embd.weight");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t0, "type")->valuestring, "F16");
    assert_int_equal((int)jnum(t0, "bytes"), 128 * 128256 * 2);
    cJSON_Delete(j);
    free(out);

    // The text form names the same facts.
    snprintf(args, sizeof args, "inspect '%s'", path);
    out = run_cli(cli, args, &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "bitnet-b1.58"));
    assert_non_null(strstr(out, "blk.1.ffn_down.weight"));
    assert_non_null(strstr(out, "I2_S"));
    free(out);

    // Errors: one line on stderr and exit status 1; bad usage: 2.
    out = run_cli(cli, "inspect /nonexistent/model.gguf", &status);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    free(out);
    out = run_cli(cli, "inspect", &status);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    free(out);
}

// ---- builder-made models ---------------------------------------------------------------------

// Loading must fail, with an error that contains every one of the words.
static void expect_fail(const gb_model_opts *o, const char *w1, const char *w2) {
    gb_loaded b;
    bn_error err = {{0}};
    if (gb_load(o, &b, &err) == 0) {
        gb_loaded_free(&b);
        fail_msg("model loaded, expected an error naming '%s'", w1);
    }
    if (w1 && !strstr(err.msg, w1)) fail_msg("error '%s' lacks '%s'", err.msg, w1);
    if (w2 && !strstr(err.msg, w2)) fail_msg("error '%s' lacks '%s'", err.msg, w2);
}

static void test_builder_model(void **state) {
    (void)state;
    gb_model_opts o = {.n_layer = 2, .i2s_scale = 0.75f};
    gb_loaded b;
    bn_error err = {{0}};
    if (gb_load(&o, &b, &err) != 0) fail_msg("%s", err.msg);
    const bn_model *m = b.m;
    assert_int_equal(m->hp.n_layer, 2);
    assert_int_equal(m->hp.n_vocab, GB_VOCAB);
    assert_int_equal(m->hp.head_dim, 64);
    assert_true(m->output_tied);
    assert_true(m->layers[1].w_down.scale == 0.75f);
    assert_int_equal(m->layers[1].w_down.ne0, GB_FF);
    // F32 norms point into the file.
    assert_ptr_equal(m->layers[0].attn_norm.f32, m->layers[0].attn_norm.data);
    assert_true(m->layers[0].attn_norm.f32[3] == 1.0f + 3.0f / 8.0f);
    gb_loaded_free(&b);

    // bitnet-25 is the same graph under another name; output.weight unties the head.
    o = (gb_model_opts){.arch = "bitnet-25", .with_output = true, .norms_f16 = true};
    if (gb_load(&o, &b, &err) != 0) fail_msg("%s", err.msg);
    assert_string_equal(b.m->arch, "bitnet-25");
    assert_false(b.m->output_tied);
    assert_int_equal(b.m->output.type, BN_GGML_F32);
    assert_ptr_not_equal(b.m->output.data, b.m->tok_embd.data);
    // F16 norms are converted to float once at load.
    const float *f = b.m->layers[0].ffn_sub_norm.f32;
    assert_non_null(f);
    for (int i = 0; i < GB_FF; i++) assert_true(f[i] == 1.0f + (float)(i % 7) / 8.0f);
    assert_true(b.m->output_norm.f32[6] == 1.75f);
    gb_loaded_free(&b);

    // BF16 norms too.
    o = (gb_model_opts){.norms_bf16 = true};
    if (gb_load(&o, &b, &err) != 0) fail_msg("%s", err.msg);
    f = b.m->layers[0].attn_sub_norm.f32;
    for (int i = 0; i < GB_EMBD; i++) assert_true(f[i] == 1.0f + (float)(i % 7) / 8.0f);
    gb_loaded_free(&b);

    // Without vocab_size the vocabulary comes from token_embd.
    o = (gb_model_opts){.omit_key = "vocab_size"};
    if (gb_load(&o, &b, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(b.m->hp.n_vocab, GB_VOCAB);
    gb_loaded_free(&b);
    // Optional keys take their defaults.
    o = (gb_model_opts){.omit_key = "rope.dimension_count"};
    if (gb_load(&o, &b, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(b.m->hp.n_rot, 64);
    gb_loaded_free(&b);
}

static const char *const tensor_names[] = {
    "token_embd.weight",           "output_norm.weight",
    "blk.0.attn_norm.weight",      "blk.0.attn_sub_norm.weight",
    "blk.0.ffn_norm.weight",       "blk.0.ffn_sub_norm.weight",
    "blk.0.attn_q.weight",         "blk.0.attn_k.weight",
    "blk.0.attn_v.weight",         "blk.0.attn_output.weight",
    "blk.0.ffn_gate.weight",       "blk.0.ffn_up.weight",
    "blk.0.ffn_down.weight",       "blk.1.ffn_down.weight",
    "blk.1.attn_sub_norm.weight",
};

static void test_missing_tensor(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof tensor_names / sizeof tensor_names[0]; i++) {
        gb_model_opts o = {.n_layer = 2, .omit = tensor_names[i]};
        expect_fail(&o, tensor_names[i], "missing");
    }
}

static void test_wrong_shape(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof tensor_names / sizeof tensor_names[0]; i++) {
        gb_model_opts o = {.n_layer = 2, .wrong_shape = tensor_names[i]};
        expect_fail(&o, tensor_names[i], "shape");
    }
    gb_model_opts o = {.with_output = true, .wrong_shape = "output.weight"};
    expect_fail(&o, "output.weight", "shape");
}

static void test_wrong_type(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof tensor_names / sizeof tensor_names[0]; i++) {
        gb_model_opts o = {.n_layer = 2, .wrong_type = tensor_names[i]};
        expect_fail(&o, tensor_names[i], "Q8_0");
    }
}

static void test_wrong_arch(void **state) {
    (void)state;
    gb_model_opts o = {.arch = "gpt2"}; // llama, bitnet: families of their own (test_families)
    expect_fail(&o, "gpt2", "architecture");
    o = (gb_model_opts){.arch = "bitnet-b1.58-extra"};
    expect_fail(&o, "bitnet-b1.58-extra", NULL);
}

static void test_bad_hparams(void **state) {
    (void)state;
    static const struct { const char *key; uint32_t v; const char *w; } cases[] = {
        {"embedding_length", 0, "embedding_length"},
        {"attention.head_count", 3, "head_count"},        // does not divide 128
        {"attention.head_count_kv", 2, NULL},             // shapes of attn_k then disagree
        {"attention.head_count_kv", 3, "head_count_kv"},  // does not divide 2
        {"attention.head_count", 128, "odd"},             // head_dim 1
        {"rope.dimension_count", 66, "rope.dimension_count"},
        {"rope.dimension_count", 63, "rope.dimension_count"},
        {"feed_forward_length", 200, "128"},              // not whole I2_S blocks
        {"block_count", 0, "block_count"},
        {"block_count", 2, "blk.1."},                     // layer 1 missing
        {"context_length", 0, "context_length"},
        {"vocab_size", 9, "token_embd.weight"},
        {"attention.layer_norm_rms_epsilon", 1, "layer_norm_rms_epsilon"}, // uint32, not float
        {"block_count", 100000, "block_count"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gb_model_opts o = {.set_key = cases[i].key, .set_value = cases[i].v};
        expect_fail(&o, cases[i].w, NULL);
    }
    gb_model_opts o = {.omit_key = "embedding_length"};
    expect_fail(&o, "embedding_length", "missing");
    o = (gb_model_opts){.omit_key = "attention.layer_norm_rms_epsilon"};
    expect_fail(&o, "layer_norm_rms_epsilon", NULL);
}

// bn_inspect_report on builder-made files: no vocabulary -> tokenizer null; a
// truncated file -> NULL with the loader's error; the CLI prints it as one line.
static void test_inspect_builder(void **state) {
    (void)state;
    gb_model_opts o = {.n_layer = 2};
    size_t n;
    uint8_t *buf = gb_model(&o, &n);
    char path[] = "/tmp/bn_test_inspect_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    close(fd);
    bn_error err = {{0}};
    char *r = bn_inspect_report(path, 1, false, &err);
    if (!r) fail_msg("%s", err.msg);
    cJSON *j = cJSON_Parse(r);
    assert_non_null(j);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "tokenizer")));
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(j, "hparams");
    assert_int_equal((int)jnum(hp, "n_vocab"), GB_VOCAB);
    assert_int_equal((int)jnum(hp, "n_layer"), 2);
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "tensors"), 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t, "type")->valuestring, "I2_S");
    assert_float_equal(jnum(t, "scale"), 0.5, 0.0);
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(j, "totals");
    assert_int_equal((int)jnum(tot, "tensor_count"), 2 + 2 * 11);
    cJSON_Delete(j);
    free(r);
    r = bn_inspect_report(path, 0, false, &err);
    assert_non_null(r);
    assert_non_null(strstr(r, "none embedded"));
    free(r);

    // Truncated by one byte.
    assert_int_equal(truncate(path, (off_t)n - 1), 0);
    assert_null(bn_inspect_report(path, 1, false, &err));
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "past the end"));
    const char *cli = getenv("BITNET_CLI");
    if (cli && access(cli, X_OK) == 0) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' inspect '%s' 2>&1", cli, path);
        FILE *p = popen(cmd, "r");
        char line[1024] = {0}, extra[16];
        assert_non_null(fgets(line, sizeof line, p));
        assert_null(fgets(extra, sizeof extra, p)); // exactly one line
        int status = pclose(p);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        assert_int_equal(strncmp(line, "error: ", 7), 0);
    }
    unlink(path);
    free(buf);
}

static void test_missing_model_file(void **state) {
    (void)state;
    bn_model *m = (bn_model *)1;
    bn_error err;
    assert_int_equal(bn_model_load("/nonexistent/x.gguf", &m, &err), -1);
    assert_null(m);
    assert_non_null(strstr(err.msg, "/nonexistent/x.gguf"));
    bn_model_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_a),          cmocka_unit_test(test_inspect_cli),
        cmocka_unit_test(test_builder_model),   cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_wrong_shape),     cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_wrong_arch),      cmocka_unit_test(test_bad_hparams),
        cmocka_unit_test(test_inspect_builder), cmocka_unit_test(test_missing_model_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
