// test_reference.c - the reference backend (cpu/forward_ref.c) against the CPU
// backend, logits compared bit for bit (memcmp).
//
// Models: the tiny presets of every family (make-model's writer: "tiny",
// "tiny-bitnet" with its `.scale` tensors, "tiny-llama" without sub-norms and
// with an untied head), "tiny" and "tiny-bitnet" as TQ1_0 / TQ2_0 (per-block
// activation scales, ops.h), and the tiny-a fixture when present.
// Each runs a 6-token prompt and 4 decode tokens through the reference, then
// through the CPU backend with 1 and 2 threads, the prompt as one batch
// (every row of logits) and token by token:
//   - kernels "scalar": bit-identical, f16 head and int8 head (lm_head_q8);
//   - the auto set (AVX2 / AVX-512 here): bit-identical with the int8 head,
//     which shows every layer is; with the f16 head within HEAD_TOL, because
//     the SIMD f16 GEMV adds the products of a row in another order than the
//     scalar one (kernels.h; test_kernels_simd.c checks it to a tolerance too).
//     Where its silu_mul is the AVX-512 one (another exp polynomial, kernels.h),
//     the SiLU families get test_forward_ref's bound, SILU_TOL, which leaves room
//     for an int8 code flipped by an ulp (not measured: this was written on a
//     machine without AVX-512).
// And several sequences: the reference with two slots, their tokens interleaved
// in shared calls, gives each sequence's logits bit for bit as alone; the CPU
// backend fed the same calls gives the same bits.
#include "test_util.h"

#include <math.h>
#include <stdbool.h>
#include <unistd.h>

#include "backend.h"
#include "devtools.h"
#include "kernels.h"
#include "model.h"

#define N_PROMPT 6
#define N_DECODE 4
#define N_STEPS (N_PROMPT + N_DECODE)
// |diff| bound of the f16 head's SIMD sum order: a few float ulps of logits of
// size ~10 over E <= 2560 products (measured: at most 1.4e-5 on these models).
#define HEAD_TOL 1e-3f
#define SILU_TOL 1e-2f

typedef struct case_model {
    const char *label;
    const char *preset;
    uint32_t weight_type; // 0 I2_S, 34 TQ1_0, 35 TQ2_0
    bool untied_head;
} case_model;

static const case_model synth_models[] = {
    {"tiny (bitnet-b1.58)", "tiny", 0, false},
    {"tiny-bitnet (.scale)", "tiny-bitnet", 0, false},
    {"tiny-llama (untied head)", "tiny-llama", 0, true},
    {"tiny TQ1_0", "tiny", 34, false},
    {"tiny TQ2_0", "tiny", 35, false},
    {"tiny-bitnet TQ2_0", "tiny-bitnet", 35, false},
};

// ---- models ------------------------------------------------------------------------

static bn_model *write_and_load(const case_model *c, char *path, size_t n) {
    bn_synth_config cfg;
    bn_error err = {{0}};
    if (bn_synth_preset(c->preset, &cfg, &err)) fail_msg("preset %s: %s", c->preset, err.msg);
    cfg.weight_type = c->weight_type;
    cfg.untied_head = c->untied_head;
    bn_tmp_path(path, n, "reference");
    bn_model *m = NULL;
    if (bn_synth_model_write(&cfg, path, &err) || bn_model_load(path, &m, &err))
        fail_msg("%s: %s", c->label, err.msg);
    return m;
}

// The tokens of a run: ordinary ids spread over the vocabulary.
static void make_tokens(const bn_model *m, int salt, int32_t *tokens, int n) {
    const uint32_t V = m->hp.n_vocab;
    for (int i = 0; i < n; i++) tokens[i] = (int32_t)((7u + 131u * (uint32_t)(i + salt)) % (V - 1));
}

static const int32_t positions[N_STEPS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};

// ---- backends ------------------------------------------------------------------------

typedef struct opened {
    const bn_backend_ops *ops;
    bn_backend *be;
} opened;

static opened open_backend(const bn_model *m, const char *name, int n_seq, int n_threads,
                           const char *kernels, bool head_q8) {
    opened o = {bn_backend_find(name), NULL};
    assert_non_null(o.ops);
    bn_backend_config cfg = {.n_ctx = N_STEPS, .n_seq = n_seq, .lm_head_q8 = head_q8,
                             .cpu = {.n_threads = n_threads, .kernels = kernels}};
    bn_error err = {{0}};
    if (o.ops->create(m, &cfg, &o.be, &err)) fail_msg("%s: %s", name, err.msg);
    return o;
}

static void close_backend(opened *o) { o->ops->destroy(o->be); }

static void forward(opened *o, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n,
                    float *logits, bool all) {
    bn_error err = {{0}};
    if (o->ops->forward(o->be, tokens, pos, seq, n, logits, all, &err)) fail_msg("forward: %s", err.msg);
}

// Every token's row of logits for the N_STEPS tokens: the prompt as one call
// (batch) or one token per call, then the decode tokens one per call.
static void run_steps(opened *o, const int32_t *tokens, bool batch, float *rows, int64_t V) {
    int t = 0;
    if (batch) {
        forward(o, tokens, positions, NULL, N_PROMPT, rows, true);
        t = N_PROMPT;
    }
    for (; t < N_STEPS; t++) forward(o, tokens + t, positions + t, NULL, 1, rows + t * V, false);
}

// ---- comparison ------------------------------------------------------------------------

// A NaN on either side counts as infinitely far (fmaxf would drop it).
static float max_abs_diff(const float *a, const float *b, int64_t n) {
    float d = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float e = fabsf(a[i] - b[i]);
        if (isnan(e)) e = INFINITY;
        if (e > d) d = e;
    }
    return d;
}

// The CPU backend in one configuration against the reference's rows: bit for bit
// when tol is 0, else within tol (and never NaN).
static void compare_cpu(const bn_model *m, const char *label, const int32_t *tokens, const float *ref,
                        int n_threads, const char *kernels, bool head_q8, bool batch, float tol) {
    const int64_t V = m->hp.n_vocab;
    float *rows = malloc(sizeof(float) * (size_t)(N_STEPS * V));
    assert_non_null(rows);
    opened cpu = open_backend(m, "cpu", 1, n_threads, kernels, head_q8);
    const char *set = bn_cpu_backend_kernels(cpu.be);
    run_steps(&cpu, tokens, batch, rows, V);
    close_backend(&cpu);
    const bool same = memcmp(rows, ref, sizeof(float) * (size_t)(N_STEPS * V)) == 0;
    const float d = max_abs_diff(rows, ref, N_STEPS * V);
    fprintf(stderr, "  %-26s cpu/%-6s %d thread(s) %-14s %s head: %s (max |diff| %.3g)\n", label, set,
            n_threads, batch ? "batch prompt" : "token by token", head_q8 ? "int8" : "f16 ",
            same ? "bit-identical" : "differs", (double)d);
    if (tol == 0.0f && !same) fail_msg("%s: cpu/%s differs from the reference", label, set);
    if (!(d <= tol)) fail_msg("%s: cpu/%s differs by %g > %g", label, set, (double)d, (double)tol);
    free(rows);
}

// How close the auto kernel set must come to the scalar one (0: bit for bit):
// every entry is exact but the f16 head GEMV and the AVX-512 SiLU (kernels.h).
static float auto_set_tolerance(const bn_model *m, bool head_q8) {
    const bn_cpu_kernels *k;
    bn_error err = {{0}};
    assert_int_equal(bn_cpu_kernels_select("auto", &k, &err), 0);
    if (!strcmp(k->name, "scalar")) return 0.0f;
    if (m->hp.ffn_silu && strcmp(k->name, "avx2")) return SILU_TOL; // the AVX-512 SiLU
    return head_q8 ? 0.0f : HEAD_TOL;
}

static void check_model(const bn_model *m, const char *label) {
    const int64_t V = m->hp.n_vocab;
    int32_t tokens[N_STEPS];
    make_tokens(m, 0, tokens, N_STEPS);
    float *ref = malloc(sizeof(float) * (size_t)(N_STEPS * V));
    assert_non_null(ref);
    for (int q8 = 0; q8 <= 1; q8++) {
        opened r = open_backend(m, "reference", 1, 0, NULL, q8);
        run_steps(&r, tokens, true, ref, V);
        close_backend(&r);
        // Something to compare: finite logits that change from token to token.
        for (int64_t i = 0; i < N_STEPS * V; i++) assert_true(isfinite(ref[i]));
        assert_true(memcmp(ref, ref + (N_STEPS - 1) * V, sizeof(float) * (size_t)V) != 0);
        for (int batch = 1; batch >= 0; batch--)
            for (int t = 1; t <= 2; t++) {
                compare_cpu(m, label, tokens, ref, t, "scalar", q8, batch, 0.0f);
                compare_cpu(m, label, tokens, ref, t, "auto", q8, batch, auto_set_tolerance(m, q8));
            }
    }
    free(ref);
}

static void test_synthetic_models(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof synth_models / sizeof synth_models[0]; i++) {
        char path[64];
        bn_model *m = write_and_load(&synth_models[i], path, sizeof path);
        check_model(m, synth_models[i].label);
        bn_model_free(m);
        remove(path);
    }
}

static void test_fixture_tiny_a(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
    bn_model *m = NULL;
    bn_error err = {{0}};
    if (bn_model_load(path, &m, &err)) fail_msg("tiny-a: %s", err.msg);
    check_model(m, "tiny-a (fixture)");
    bn_model_free(m);
}

// ---- several sequences ---------------------------------------------------------------

// Sequence A (4 prompt tokens, then 3 decode tokens) and B (3 + 3) in slots 0 and
// 1 of one backend: the prompts as two runs of one call, then each decode step
// one call with B's token first. Returns the rows: one per run, in call order.
#define A_PROMPT 4
#define B_PROMPT 3
#define N_DEC 3
#define N_ROWS (2 + 2 * N_DEC)

static void run_interleaved(opened *o, const int32_t *a, const int32_t *b, float *rows, int64_t V) {
    int32_t tok[A_PROMPT + B_PROMPT], pos[A_PROMPT + B_PROMPT], seq[A_PROMPT + B_PROMPT];
    for (int i = 0; i < A_PROMPT; i++) tok[i] = a[i], pos[i] = i, seq[i] = 0;
    for (int i = 0; i < B_PROMPT; i++) tok[A_PROMPT + i] = b[i], pos[A_PROMPT + i] = i, seq[A_PROMPT + i] = 1;
    forward(o, tok, pos, seq, A_PROMPT + B_PROMPT, rows, false); // rows 0 (A), 1 (B)
    for (int s = 0; s < N_DEC; s++) {
        const int32_t t2[2] = {b[B_PROMPT + s], a[A_PROMPT + s]}, p2[2] = {B_PROMPT + s, A_PROMPT + s},
                      s2[2] = {1, 0};
        forward(o, t2, p2, s2, 2, rows + (2 + 2 * s) * V, false); // B, then A
    }
}

// One sequence alone in a fresh one-slot reference: its rows after the prompt and
// after each decode token.
static void run_alone(const bn_model *m, const int32_t *tokens, int n_prompt, float *rows) {
    const int64_t V = m->hp.n_vocab;
    opened r = open_backend(m, "reference", 1, 0, NULL, false);
    forward(&r, tokens, positions, NULL, n_prompt, rows, false);
    for (int s = 0; s < N_DEC; s++)
        forward(&r, tokens + n_prompt + s, positions + n_prompt + s, NULL, 1, rows + (1 + s) * V, false);
    close_backend(&r);
}

static void test_two_sequences(void **state) {
    (void)state;
    char path[64];
    bn_model *m = write_and_load(&synth_models[0], path, sizeof path);
    const int64_t V = m->hp.n_vocab;
    int32_t a[A_PROMPT + N_DEC], b[B_PROMPT + N_DEC];
    make_tokens(m, 3, a, A_PROMPT + N_DEC);
    make_tokens(m, 11, b, B_PROMPT + N_DEC);
    float *alone_a = malloc(sizeof(float) * (size_t)((1 + N_DEC) * V));
    float *alone_b = malloc(sizeof(float) * (size_t)((1 + N_DEC) * V));
    float *mixed = malloc(sizeof(float) * (size_t)(N_ROWS * V));
    float *cpu_rows = malloc(sizeof(float) * (size_t)(N_ROWS * V));
    assert_true(alone_a && alone_b && mixed && cpu_rows);
    run_alone(m, a, A_PROMPT, alone_a);
    run_alone(m, b, B_PROMPT, alone_b);

    opened r = open_backend(m, "reference", 2, 0, NULL, false);
    run_interleaved(&r, a, b, mixed, V);
    close_backend(&r);
    const size_t row = sizeof(float) * (size_t)V;
    assert_memory_equal(mixed, alone_a, row); // the prompts' rows
    assert_memory_equal(mixed + V, alone_b, row);
    for (int s = 0; s < N_DEC; s++) {
        assert_memory_equal(mixed + (2 + 2 * s) * V, alone_b + (1 + s) * V, row);
        assert_memory_equal(mixed + (3 + 2 * s) * V, alone_a + (1 + s) * V, row);
    }
    // The interleaving matters: B's rows are not A's.
    assert_true(memcmp(mixed, mixed + V, row) != 0);

    opened cpu = open_backend(m, "cpu", 2, 2, "scalar", false);
    run_interleaved(&cpu, a, b, cpu_rows, V);
    close_backend(&cpu);
    assert_memory_equal(cpu_rows, mixed, row * N_ROWS);
    fprintf(stderr, "  two slots interleaved: each sequence bit-identical to alone; cpu/scalar "
                    "(2 slots, 2 threads) bit-identical to the reference\n");
    free(alone_a);
    free(alone_b);
    free(mixed);
    free(cpu_rows);
    bn_model_free(m);
    remove(path);
}

// The reference checks its input like every backend, and is never "auto".
static void test_input_checks(void **state) {
    (void)state;
    char path[64];
    bn_model *m = write_and_load(&synth_models[0], path, sizeof path);
    opened r = open_backend(m, "reference", 1, 0, NULL, false);
    bn_error err = {{0}};
    const int32_t bad_tok = (int32_t)m->hp.n_vocab, ok_tok = 1, far = N_STEPS;
    assert_int_equal(r.ops->forward(r.be, &bad_tok, positions, NULL, 1, NULL, false, &err), -1);
    assert_non_null(strstr(err.msg, "reference: token id"));
    assert_int_equal(r.ops->forward(r.be, &ok_tok, &far, NULL, 1, NULL, false, &err), -1);
    assert_non_null(strstr(err.msg, "position"));
    assert_int_equal(r.ops->forward(r.be, &ok_tok, positions, NULL, 1, NULL, false, &err), 0);
    assert_null(r.ops->forward_argmax); // optional: the session samples from the logits
    close_backend(&r);
    bn_model_free(m);
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synthetic_models),
        cmocka_unit_test(test_two_sequences),
        cmocka_unit_test(test_input_checks),
        cmocka_unit_test(test_fixture_tiny_a),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
