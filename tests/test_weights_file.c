// test_weights_file.c - the I2_S packer (i2s_pack.h) against the scalar ternary kernel
// that reads the format, and make-model --weights (weights_file.h): a model built
// from a weight file holds exactly its values, and bad files are refused by name.
#include "test_util.h"

#include <math.h>
#include <unistd.h>

#include "devtools.h"
#include "i2s_pack.h"
#include "kernels.h"
#include "model.h"
#include "weights_file.h"

static int8_t rand_ternary(uint64_t *s) { return (int8_t)(bn_test_rand(s) % 3) - 1; }

// Packed rows read back through the scalar GEMM with one-hot activations: the
// kernel sees exactly the values that were packed.
static void test_pack_matches_kernel(void **state) {
    (void)state;
    const int64_t K = 256, rows = 3;
    int8_t t[256 * 3];
    uint64_t s = 7;
    for (int i = 0; i < K * rows; i++) t[i] = rand_ternary(&s);
    uint8_t packed[256 * 3 / 4 + BN_I2S_TAIL];
    bn_error err;
    assert_int_equal(bn_i2s_pack(t, (uint64_t)(K * rows), 0.625f, packed, &err), 0);
    int8_t q[256];
    int32_t y[3];
    for (int64_t k = 0; k < K; k++) {
        memset(q, 0, sizeof q);
        q[k] = 1;
        bn_ternary_gemm_scalar(packed, K, 0, rows, q, NULL, 1, y, rows);
        for (int64_t r = 0; r < rows; r++) {
            assert_int_equal(y[r], t[r * K + k]);
            assert_int_equal(bn_i2s_get(packed, (uint64_t)(r * K + k)), t[r * K + k]);
        }
    }
    float scale;
    memcpy(&scale, packed + K * rows / 4, 4);
    assert_true(scale == 0.625f);
    for (int i = 4; i < BN_I2S_TAIL; i++) assert_int_equal(packed[K * rows / 4 + i], 0);

    t[5] = 2;
    assert_int_equal(bn_i2s_pack(t, (uint64_t)(K * rows), 1.0f, packed, &err), -1);
    assert_non_null(strstr(err.msg, "element 5"));
    t[5] = 0;
    assert_int_equal(bn_i2s_pack(t, 100, 1.0f, packed, &err), -1);
    assert_int_equal(bn_i2s_pack(t, 128, NAN, packed, &err), -1);
}

// ---- weight files ------------------------------------------------------------------

typedef struct wfile {
    FILE *f;
    uint64_t seed;
} wfile;

static void put_u32(FILE *f, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    fwrite(b, 1, 4, f);
}

static void put_u64(FILE *f, uint64_t v) {
    put_u32(f, (uint32_t)v);
    put_u32(f, (uint32_t)(v >> 32));
}

static void put_header(wfile *w, const char *name, uint32_t kind, uint32_t n_dims,
                       const uint64_t *ne) {
    put_u32(w->f, (uint32_t)strlen(name));
    fwrite(name, 1, strlen(name), w->f);
    put_u32(w->f, kind);
    put_u32(w->f, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) put_u64(w->f, ne[d]);
}

// Value i of a tensor, a function of (seed, i) so the test can recompute it.
static float val_f(uint64_t seed, uint64_t i) { return (float)((seed * 31 + i) % 97) / 64.0f; }
static int8_t val_t(uint64_t seed, uint64_t i) { return (int8_t)((seed + i * 7) % 3) - 1; }

static void put_tensor(wfile *w, const char *name, uint32_t kind, uint32_t n_dims,
                       const uint64_t *ne) {
    put_header(w, name, kind, n_dims, ne);
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) n *= ne[d];
    w->seed++;
    for (uint64_t i = 0; i < n; i++) {
        if (kind == BN_WEIGHTS_F32) {
            float f = val_f(w->seed, i);
            fwrite(&f, 4, 1, w->f); // this machine is little-endian, like the format
        } else if (kind == BN_WEIGHTS_F16) {
            uint16_t h = (uint16_t)(0x3c00 + (w->seed + i) % 512); // 1.0 .. 1.5
            fwrite(&h, 2, 1, w->f);
        } else {
            int8_t t = val_t(w->seed, i);
            fwrite(&t, 1, 1, w->f);
        }
    }
    if (kind == BN_WEIGHTS_TERNARY) {
        float scale = 0.5f + (float)w->seed / 1024.0f;
        fwrite(&scale, 4, 1, w->f);
    }
}

// A weight file for a 1-layer, hidden 128, ffn 256, 2/1 heads, vocab v model.
// break_at: the tensor index to corrupt (-1: none); how: what to do there.
typedef enum { OK, WRONG_NAME, WRONG_SHAPE, WRONG_KIND, BAD_VALUE, TRUNCATE, EXTRA } damage;

static void write_weights(const char *path, uint32_t vocab, int break_at, damage how) {
    const uint64_t E = 128, F = 256, KV = 64;
    struct {
        const char *name;
        uint32_t kind, n_dims;
        uint64_t ne0, ne1;
    } t[] = {
        {"token_embd.weight", BN_WEIGHTS_F16, 2, E, vocab},
        {"blk.0.attn_norm.weight", BN_WEIGHTS_F32, 1, E, 0},
        {"blk.0.attn_q.weight", BN_WEIGHTS_TERNARY, 2, E, E},
        {"blk.0.attn_k.weight", BN_WEIGHTS_TERNARY, 2, E, KV},
        {"blk.0.attn_v.weight", BN_WEIGHTS_TERNARY, 2, E, KV},
        {"blk.0.attn_output.weight", BN_WEIGHTS_TERNARY, 2, E, E},
        {"blk.0.attn_sub_norm.weight", BN_WEIGHTS_F32, 1, E, 0},
        {"blk.0.ffn_norm.weight", BN_WEIGHTS_F32, 1, E, 0},
        {"blk.0.ffn_gate.weight", BN_WEIGHTS_TERNARY, 2, E, F},
        {"blk.0.ffn_up.weight", BN_WEIGHTS_TERNARY, 2, E, F},
        {"blk.0.ffn_down.weight", BN_WEIGHTS_TERNARY, 2, F, E},
        {"blk.0.ffn_sub_norm.weight", BN_WEIGHTS_F32, 1, F, 0},
        {"output_norm.weight", BN_WEIGHTS_F32, 1, E, 0},
    };
    const int n = (int)(sizeof t / sizeof t[0]);
    wfile w = {fopen(path, "wb"), 0};
    assert_non_null(w.f);
    fwrite("BNWEIGHT", 1, 8, w.f);
    put_u32(w.f, 1);
    put_u32(w.f, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        uint64_t ne[2] = {t[i].ne0, t[i].ne1};
        if (i == break_at && how == WRONG_NAME) {
            put_tensor(&w, "blk.0.attn_x.weight", t[i].kind, t[i].n_dims, ne);
        } else if (i == break_at && how == WRONG_SHAPE) {
            ne[0] += 128;
            put_tensor(&w, t[i].name, t[i].kind, t[i].n_dims, ne);
        } else if (i == break_at && how == WRONG_KIND) {
            put_tensor(&w, t[i].name, BN_WEIGHTS_F32, t[i].n_dims, ne);
        } else if (i == break_at && how == BAD_VALUE) {
            put_header(&w, t[i].name, t[i].kind, t[i].n_dims, ne);
            for (uint64_t k = 0; k < ne[0] * ne[1]; k++) fputc(k == 300 ? 3 : 0, w.f);
            fwrite(&(float){1.0f}, 4, 1, w.f);
        } else if (i == break_at && how == TRUNCATE) {
            put_header(&w, t[i].name, t[i].kind, t[i].n_dims, ne);
            fwrite("abc", 1, 3, w.f);
            break;
        } else {
            put_tensor(&w, t[i].name, t[i].kind, t[i].n_dims, ne);
        }
    }
    if (how == EXTRA) fputc(0, w.f);
    fclose(w.f);
}

static bn_synth_config tiny_config(const char *weights) {
    bn_synth_config c;
    bn_error err;
    assert_int_equal(bn_synth_preset("tiny", &c, &err), 0);
    c.n_embd = 128, c.n_ff = 256, c.n_layer = 1, c.n_head = 2, c.n_head_kv = 1;
    c.weights_path = weights;
    c.name = "weights-file-test";
    return c;
}

static void test_model_from_weights(void **state) {
    (void)state;
    char wpath[128], mpath[128];
    bn_tmp_path(wpath, sizeof wpath, "wf_w");
    bn_tmp_path(mpath, sizeof mpath, "wf_m");
    const uint32_t vocab = bn_synth_builtin_vocab_size(0);
    write_weights(wpath, vocab, -1, OK);
    bn_synth_config c = tiny_config(wpath);
    bn_error err;
    if (bn_synth_model_write(&c, mpath, &err)) fail_msg("%s", err.msg);
    bn_model *m;
    if (bn_model_load(mpath, &m, &err)) fail_msg("%s", err.msg);
    // Tensors are numbered from seed 1 in file order: 1 embedding, 2 attn_norm, 3 q ...
    const uint16_t *emb = m->tok_embd.data;
    for (uint64_t i = 0; i < 128ull * vocab; i++) assert_int_equal(emb[i], 0x3c00 + (1 + i) % 512);
    const bn_layer *L = &m->layers[0];
    for (uint64_t i = 0; i < 128; i++) assert_true(L->attn_norm.f32[i] == val_f(2, i));
    const bn_tensor *tern[] = {&L->wq, &L->wk, &L->wv, &L->wo};
    for (int k = 0; k < 4; k++) {
        const uint64_t seed = 3 + (uint64_t)k;
        for (uint64_t i = 0; i < tern[k]->ne0 * tern[k]->ne1; i++)
            assert_int_equal(bn_i2s_get(tern[k]->data, i), val_t(seed, i));
        assert_true(tern[k]->scale == 0.5f + (float)seed / 1024.0f);
    }
    for (uint64_t i = 0; i < 256 * 128; i++)
        assert_int_equal(bn_i2s_get(L->w_down.data, i), val_t(11, i));
    for (uint64_t i = 0; i < 128; i++) assert_true(m->output_norm.f32[i] == val_f(13, i));
    bn_model_free(m);
    remove(wpath);
    remove(mpath);
}

static void test_bad_weight_files(void **state) {
    (void)state;
    char wpath[128], mpath[128];
    bn_tmp_path(wpath, sizeof wpath, "wf_w");
    bn_tmp_path(mpath, sizeof mpath, "wf_m");
    const uint32_t vocab = bn_synth_builtin_vocab_size(0);
    struct {
        int at;
        damage how;
        const char *msg;
    } cases[] = {
        {3, WRONG_NAME, "the model expects 'blk.0.attn_k.weight'"},
        {8, WRONG_SHAPE, "ne[0] = 256, expected 128"},
        {9, WRONG_KIND, "has kind 0, expected 2"},
        {10, BAD_VALUE, "element 300 is 3"},
        {4, TRUNCATE, "truncated"},
        {-1, EXTRA, "data after the last tensor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_weights(wpath, vocab, cases[i].at, cases[i].how);
        bn_synth_config c = tiny_config(wpath);
        bn_error err = {{0}};
        assert_int_equal(bn_synth_model_write(&c, mpath, &err), -1);
        if (!strstr(err.msg, cases[i].msg)) fail_msg("case %zu: '%s'", i, err.msg);
        assert_int_equal(access(mpath, F_OK), -1); // no half-written model left behind
    }
    // a vocabulary of another size: the embedding's shape says so
    write_weights(wpath, vocab + 1, -1, OK);
    bn_synth_config c = tiny_config(wpath);
    bn_error err = {{0}};
    assert_int_equal(bn_synth_model_write(&c, mpath, &err), -1);
    assert_non_null(strstr(err.msg, "token_embd.weight"));
    FILE *f = fopen(wpath, "wb");
    fputs("GGUF", f);
    fclose(f);
    assert_int_equal(bn_synth_model_write(&c, mpath, &err), -1);
    assert_non_null(strstr(err.msg, "not a weight file"));
    remove(wpath);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_matches_kernel),
        cmocka_unit_test(test_model_from_weights),
        cmocka_unit_test(test_bad_weight_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
