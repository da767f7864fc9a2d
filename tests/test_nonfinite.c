// test_nonfinite.c - a model whose values are not all finite numbers (a NaN or
// an infinity in a norm, the embedding or the head, as a broken conversion
// writes them) gives one clear error, never text without meaning:
//   - a load checks the norms and names the tensor and element;
//   - bn_model_check_values (`inspect --check-tensors`) checks every F32, F16
//     and BF16 value, the embedding's too, which a load leaves out, and the CLI
//     prints its error as one line;
//   - at run time every backend (the reference, each CPU kernel set this CPU
//     runs, CUDA where a GPU is) fails a forward pass whose logits are not
//     finite, naming the token's position and slot, in each of its output
//     forms (rows, argmax, top entries), with the f16 head and the int8 one,
//     and passes the same model without the bad value.
// `test_nonfinite cuda` (CTest: test_nonfinite_cuda) runs the CUDA backend, on
// its own so that its skip without a GPU shows alone; under
// BITNET_REQUIRE_GPU=1 (scripts/gpu-check.sh) no GPU is a failure.
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "devtools.h"
#include "gguf.h"
#include "gguf_builder.h"
#include "model.h"

#include "../cpu/kernels.h"

static void expect_words(const char *msg, const char *w1, const char *w2) {
    if (w1 && !strstr(msg, w1)) fail_msg("error '%s' lacks '%s'", msg, w1);
    if (w2 && !strstr(msg, w2)) fail_msg("error '%s' lacks '%s'", msg, w2);
}

// ---- at load, and in bn_model_check_values -----------------------------------------

// Norms, in each type they come in, with a NaN, +inf or -inf: the load fails.
static void test_norms_at_load(void **state) {
    (void)state;
    const struct { bool f16, bf16; } types[] = {{false, false}, {true, false}, {false, true}};
    const struct { float v; const char *text; } values[] = {{0, "is nan"}, {INFINITY, "is inf"}, {-INFINITY, "is -inf"}};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            gb_model_opts o = {.norms_f16 = types[t].f16, .norms_bf16 = types[t].bf16,
                               .nonfinite = "blk.0.ffn_sub_norm.weight", .nonfinite_at = 100,
                               .nonfinite_value = values[v].v};
            gb_loaded b;
            bn_error err = {{0}};
            if (gb_load(&o, &b, &err) == 0) {
                gb_loaded_free(&b);
                fail_msg("a model with a norm value %s loaded", values[v].text);
            }
            expect_words(err.msg, "'blk.0.ffn_sub_norm.weight' element 100 ", values[v].text);
        }
}

// The embedding (and an untied head) load, as a start reads none of them; the
// check of every value finds the first one that is not finite.
static void test_check_values(void **state) {
    (void)state;
    const struct { gb_model_opts o; const char *words; } cases[] = {
        {{.nonfinite = "token_embd.weight", .nonfinite_at = GB_EMBD + 2},
         "'token_embd.weight' element 130 (row 1, column 2) is nan"},
        {{.with_output = true, .nonfinite = "output.weight", .nonfinite_at = 5, .nonfinite_value = INFINITY},
         "'output.weight' element 5 (row 0, column 5) is inf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gb_loaded b;
        bn_error err = {{0}};
        if (gb_load(&cases[i].o, &b, &err)) fail_msg("%s", err.msg);
        assert_int_equal(bn_model_check_values(b.m, &err), -1);
        expect_words(err.msg, cases[i].words, NULL);
        gb_loaded_free(&b);
    }
    gb_model_opts clean = {.n_layer = 2, .with_output = true, .norms_bf16 = true};
    gb_loaded b;
    bn_error err = {{0}};
    if (gb_load(&clean, &b, &err) || bn_model_check_values(b.m, &err)) fail_msg("%s", err.msg);
    gb_loaded_free(&b);
}

// `inspect --check-tensors` (bn_inspect_report with check_values): the file's
// first value that is not finite as one error, or the report saying all are.
static void test_inspect(void **state) {
    (void)state;
    char bad[] = "/tmp/bn_test_nonfinite_XXXXXX", good[] = "/tmp/bn_test_nonfinite_XXXXXX";
    gb_model_opts o = {.nonfinite = "token_embd.weight", .nonfinite_at = 9}, clean = {0};
    char *paths[] = {bad, good};
    const gb_model_opts *opts[] = {&o, &clean};
    for (int i = 0; i < 2; i++) {
        size_t n;
        uint8_t *buf = gb_model(opts[i], &n);
        int fd = mkstemp(paths[i]);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, n), (ssize_t)n);
        close(fd);
        free(buf);
    }
    bn_error err = {{0}};
    char *r = bn_inspect_report(bad, 1, false, &err); // not asked: not checked
    if (!r) fail_msg("%s", err.msg);
    assert_null(strstr(r, "values_finite"));
    free(r);
    assert_null(bn_inspect_report(bad, 0, true, &err));
    expect_words(err.msg, bad, "'token_embd.weight' element 9 (row 0, column 9) is nan");
    r = bn_inspect_report(good, 1, true, &err);
    if (!r) fail_msg("%s", err.msg);
    cJSON *j = cJSON_Parse(r);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "totals"),
                                                              "values_finite")));
    cJSON_Delete(j);
    free(r);
    r = bn_inspect_report(good, 0, true, &err);
    assert_non_null(r);
    assert_non_null(strstr(r, "every F32, F16 and BF16 value is finite"));
    free(r);
    const char *cli = getenv("BITNET_CLI");
    if (cli && access(cli, X_OK) == 0) { // one line on stderr, exit 1
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' inspect --check-tensors '%s' 2>&1", cli, bad);
        FILE *p = popen(cmd, "r");
        char line[1024] = {0}, extra[16];
        assert_non_null(fgets(line, sizeof line, p));
        assert_null(fgets(extra, sizeof extra, p));
        const int status = pclose(p);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        expect_words(line, "error: ", "is nan, not a finite number");
    }
    unlink(bad);
    unlink(good);
}

// ---- at run time -------------------------------------------------------------------------

// The forms a backend gives its output in: rows of logits, argmax ids, top entries.
typedef enum { ROWS, ARGMAX, TOP } out_form;
static const char *const form_names[] = {"rows", "argmax", "top"};

// One forward pass of n tokens, all rows wanted in the ROWS form (else each run's
// last); 1 when the backend lacks the form.
static int forward(const bn_backend_ops *ops, bn_backend *be, out_form form, const int32_t *tok,
                   const int32_t *pos, const int32_t *seq, int n, bn_error *err) {
    float logits[4 * GB_VOCAB];
    int32_t argmax[4];
    bn_top top[4 * BN_TOP_MAX];
    if (form == ARGMAX) return ops->forward_argmax ? ops->forward_argmax(be, tok, pos, seq, n, argmax, err) : 1;
    if (form == TOP) return ops->forward_top ? ops->forward_top(be, tok, pos, seq, n, top, NULL, err) : 1;
    return ops->forward(be, tok, pos, seq, n, logits, true, err);
}

// Each form of output, with the f16 head and the int8 one (whose codes would
// hide a NaN), on a fresh backend each time: -1 with both words in the error
// (NULL words: 0, the pass succeeds).
static void expect_forward(const bn_backend_ops *ops, const char *kernels, const bn_model *m,
                           const int32_t *tok, const int32_t *pos, const int32_t *seq, int n, const char *w1,
                           const char *w2) {
    for (int f = 0; f < 2 * (TOP + 1); f++) {
        bn_backend_config cfg = {.n_ctx = 16, .n_seq = 2, .lm_head_q8 = f > TOP,
                                 .cpu = {.n_threads = 2, .kernels = kernels}};
        bn_backend *be;
        bn_error err = {{0}};
        if (ops->create(m, &cfg, &be, &err)) fail_msg("%s: %s", ops->name, err.msg);
        const int rc = forward(ops, be, (out_form)(f % (TOP + 1)), tok, pos, seq, n, &err);
        ops->destroy(be);
        if (rc == 1) continue;
        const char *head = cfg.lm_head_q8 ? "int8 head" : "f16 head";
        if (!w1 && rc)
            fail_msg("%s %s, %s, %s: %s", ops->name, kernels ? kernels : "", form_names[f % (TOP + 1)], head, err.msg);
        if (!w1) continue;
        if (rc != -1)
            fail_msg("%s %s, %s, %s: logits that are not finite went through", ops->name, kernels ? kernels : "",
                     form_names[f % (TOP + 1)], head);
        expect_words(err.msg, w1, w2);
        expect_words(err.msg, ops->name, "NaN or an infinity");
    }
}

// Every case on one backend (kernels: a CPU kernel set, else NULL).
static void check_backend(const bn_backend_ops *ops, const char *kernels) {
    const int32_t one[] = {0}, pos0[] = {0};
    // A NaN in row 1 of the tied embedding: logit 1 of every token.
    gb_loaded b;
    bn_error err = {{0}};
    gb_model_opts tied = {.nonfinite = "token_embd.weight", .nonfinite_at = GB_EMBD + 2};
    if (gb_load(&tied, &b, &err)) fail_msg("%s", err.msg);
    expect_forward(ops, kernels, b.m, one, pos0, NULL, 1, "position 0 (slot 0)", NULL);
    gb_loaded_free(&b);

    // +inf in row 0 of an untied head: logit 0 of every token.
    gb_model_opts head = {.with_output = true, .nonfinite = "output.weight", .nonfinite_at = 5,
                          .nonfinite_value = INFINITY};
    if (gb_load(&head, &b, &err)) fail_msg("%s", err.msg);
    expect_forward(ops, kernels, b.m, one, pos0, NULL, 1, "position 0 (slot 0)", NULL);
    gb_loaded_free(&b);

    // A NaN in row 3 of the embedding, the head untied and finite: only token
    // 3's logits, and those of what attends to it, are not finite.
    gb_model_opts input = {.with_output = true, .nonfinite = "token_embd.weight", .nonfinite_at = 3 * GB_EMBD + 7};
    if (gb_load(&input, &b, &err)) fail_msg("%s", err.msg);
    const int32_t prompt[] = {0, 2, 3}, prompt_pos[] = {0, 1, 2};
    expect_forward(ops, kernels, b.m, prompt, prompt_pos, NULL, 2, NULL, NULL); // tokens 0 and 2: fine
    expect_forward(ops, kernels, b.m, prompt, prompt_pos, NULL, 3, "position 2 (slot 0)", NULL);
    const int32_t two[] = {0, 3}, two_pos[] = {0, 0}, two_seq[] = {0, 1};
    expect_forward(ops, kernels, b.m, two, two_pos, two_seq, 2, "position 0 (slot 1)", NULL);
    gb_loaded_free(&b);
}

static void test_cpu_and_reference(void **state) {
    (void)state;
    check_backend(bn_backend_find("reference"), NULL);
    for (size_t k = 0; bn_cpu_kernel_sets[k]; k++) {
        const bn_cpu_kernels *kern;
        bn_error err = {{0}};
        if (bn_cpu_kernels_select(bn_cpu_kernel_sets[k], &kern, &err)) {
            fprintf(stderr, "  %s: not run here: %s\n", bn_cpu_kernel_sets[k], err.msg);
            continue;
        }
        check_backend(bn_backend_find("cpu"), bn_cpu_kernel_sets[k]);
    }
}

static void test_cuda(void **state) {
    (void)state;
    const bn_backend_ops *cuda = bn_backend_find("cuda");
    bn_error err = {{0}};
    BN_REQUIRE_GPU(!cuda ? "built without CUDA" : cuda->probe(&err) ? err.msg : NULL,
                   "no usable GPU (BITNET_REQUIRE_GPU=1): %s", "SKIP: cuda: %s\n");
    check_backend(cuda, NULL);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norms_at_load),
        cmocka_unit_test(test_check_values),
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_cpu_and_reference),
    };
    const struct CMUnitTest cuda[] = {cmocka_unit_test(test_cuda)};
    if (argc > 1 && !strcmp(argv[1], "cuda")) return cmocka_run_group_tests(cuda, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
