// test_cpu_start.c - a session that starts on the CPU while its backend opens on
// a thread, and moves between two steps (bn_session_params.cpu_start).
//
// The backend opening is the reference backend (cpu/forward_ref.c) and the
// session starts on the CPU backend with its scalar kernels, which compute the
// reference's arithmetic bit for bit, for a prompt in one pass or in chunks. So
// wherever the move comes, the tokens and the logits after it must be exactly
// those of a session on the reference backend throughout; a move that lost or
// repeated a token in the new backend's cache, or fed it at the wrong
// positions, changes the logits. The opening's test switch
// (bn_opening_test_set) says at which poll the move comes: the session polls
// before each prompt chunk of BN_CPU_START_CHUNK (32) tokens and each step.
// On a GPU machine the same path runs for real in scripts/gpu-check.sh
// (generate on CUDA with and without --no-cpu-start against the golden tokens).
// Model: the trained model in models/ (always there).
#include "test_util.h"

#include <string.h>

#include "bitnet.h"
#include "engine_internal.h"

#define N_CTX 160
#define N_PROMPT 80 // chunks of 32, 32, then 16 with the first step
#define N_FIRST 8   // tokens of the first generate
#define N_MORE 4    // and of the second, on the same session

static bn_engine *engine;
static int32_t prompt[N_PROMPT];

static int setup(void **state) {
    (void)state;
    bn_error err;
    if (!(engine = bn_shipped_engine())) return -1;
    int32_t *ids;
    size_t n;
    const char *text = "It is a truth universally acknowledged, that a single man in possession of a good "
                       "fortune, must be in want of a wife. However little known the feelings or views of "
                       "such a man may be on his first entering a neighbourhood, this truth is so well fixed "
                       "in the minds of the surrounding families, that he is considered as the rightful "
                       "property of some one or other of their daughters.";
    if (bn_engine_tokenize(engine, text, true, false, &ids, &n, &err) || n < N_PROMPT) {
        fprintf(stderr, "tokenize: %s (%zu tokens)\n", err.msg, n);
        return -1;
    }
    memcpy(prompt, ids, sizeof prompt);
    free(ids);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    bn_engine_free(engine);
    bn_opening_test_set(-1, NULL);
    return 0;
}

typedef struct run {
    int32_t ids[N_FIRST + N_MORE];
    int n;
    float logits[4096];
} run;

static int collect(void *user, int32_t id, const char *text, size_t len) {
    (void)text, (void)len;
    run *r = user;
    if (id >= 0 && r->n < N_FIRST + N_MORE) r->ids[r->n++] = id;
    return 0;
}

static bn_session *open_session_q8(const char *backend, bool cpu_start, bool q8) {
    const bn_session_params p = {.backend = backend, .n_threads = 1, .n_ctx = N_CTX, .cpu_kernels = "scalar",
                                 .cpu_start = cpu_start, .lm_head_q8 = q8};
    bn_session *s;
    bn_error err;
    if (bn_session_create(engine, &p, &s, &err)) fail_msg("session: %s", err.msg);
    return s;
}

static bn_session *open_session(const char *backend, bool cpu_start) {
    return open_session_q8(backend, cpu_start, false);
}

// The first generate, then (wait: after bn_session_wait_backend) the second,
// then the logits of one more token.
static void generate(bn_session *s, run *r, bool wait) {
    bn_sampling greedy = bn_sampling_greedy();
    bn_timings t;
    bn_error err;
    if (bn_session_generate(s, prompt, N_PROMPT, N_FIRST, &greedy, collect, r, &t, &err))
        fail_msg("first generate: %s", err.msg);
    if (wait && bn_session_wait_backend(s, &err)) fail_msg("wait: %s", err.msg);
    if (bn_session_generate(s, NULL, 0, N_MORE, &greedy, collect, r, &t, &err))
        fail_msg("second generate: %s", err.msg);
    const int32_t one = 7;
    assert_true(bn_engine_info(engine).n_vocab <= 4096);
    if (bn_session_eval(s, &one, 1, r->logits, &err)) fail_msg("eval: %s", err.msg);
}

static void test_moves_anywhere_exactly(void **state) {
    (void)state;
    static run want, got;
    bn_session *s = open_session("reference", false);
    assert_false(bn_session_opening(s));
    generate(s, &want, false);
    bn_session_free(s);
    assert_int_equal(want.n, N_FIRST + N_MORE);

    // Poll k + 1 moves: the tokens in the cache then, as the header says.
    static const struct { int polls, moved_after; } cases[] = {
        {0, 0}, {1, 32}, {2, 64}, {3, 80}, {4, 81}, {9, 86}, {1000, -1}};
    const int n_vocab = bn_engine_info(engine).n_vocab;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bn_opening_test_set(cases[i].polls, NULL);
        s = open_session("reference", true);
        assert_string_equal(bn_session_backend(s), "cpu");
        assert_true(bn_session_opening(s));
        assert_non_null(strstr(bn_session_backend_note(s), "starting here while reference opens"));
        memset(&got, 0, sizeof got);
        generate(s, &got, cases[i].moved_after < 0);
        assert_string_equal(bn_session_backend(s), "reference");
        assert_false(bn_session_opening(s));
        char note[64];
        snprintf(note, sizeof note, "moved after %d tokens",
                 cases[i].moved_after < 0 ? N_PROMPT + N_FIRST - 1 : cases[i].moved_after);
        if (!strstr(bn_session_backend_note(s), note))
            fail_msg("polls %d: note '%s', want '%s'", cases[i].polls, bn_session_backend_note(s), note);
        assert_int_equal(got.n, want.n);
        assert_memory_equal(got.ids, want.ids, sizeof want.ids);
        if (memcmp(got.logits, want.logits, sizeof(float) * (size_t)n_vocab))
            fail_msg("polls %d: the logits after the move differ from the reference's", cases[i].polls);
        bn_session_free(s);
    }
    bn_opening_test_set(-1, NULL);
}

// With the int8 head (--lm-head q8) the CPU quantizes its own, which the
// reference's equals bit for bit: a move mid-prompt and one mid-decode keep
// the tokens and logits exact.
static void test_moves_with_int8_head(void **state) {
    (void)state;
    static run want, got;
    bn_session *s = open_session_q8("reference", false, true);
    generate(s, &want, false);
    bn_session_free(s);
    const int n_vocab = bn_engine_info(engine).n_vocab;
    static const int polls[] = {1, 5};
    for (size_t i = 0; i < sizeof polls / sizeof polls[0]; i++) {
        bn_opening_test_set(polls[i], NULL);
        s = open_session_q8("reference", true, true);
        assert_true(bn_session_opening(s));
        memset(&got, 0, sizeof got);
        generate(s, &got, false);
        assert_string_equal(bn_session_backend(s), "reference");
        assert_memory_equal(got.ids, want.ids, sizeof want.ids);
        if (memcmp(got.logits, want.logits, sizeof(float) * (size_t)n_vocab))
            fail_msg("polls %d: the int8 head's logits after the move differ", polls[i]);
        bn_session_free(s);
    }
    bn_opening_test_set(-1, NULL);
}

// The backend asked for fails to open: an error where it was named (the tokens
// before it stand), at the step that finds out and every later one.
static void test_named_backend_failure_is_an_error(void **state) {
    (void)state;
    bn_opening_test_set(2, "reference backend: made to fail");
    bn_session *s = open_session("reference", true);
    run r = {.n = 0};
    bn_sampling greedy = bn_sampling_greedy();
    bn_error err = {{0}};
    assert_int_equal(bn_session_generate(s, prompt, N_PROMPT, N_FIRST, &greedy, collect, &r, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "made to fail"));
    assert_false(bn_session_opening(s));
    // and every later step: the session never ran on what was asked for
    bn_error again = {{0}};
    float logits[4096];
    assert_int_equal(bn_session_generate(s, prompt, 3, 2, &greedy, collect, &r, NULL, &again), -1);
    assert_string_equal(again.msg, err.msg);
    assert_int_equal(bn_session_eval(s, prompt, 1, logits, &again), -1);
    assert_string_equal(again.msg, err.msg);
    bn_session_free(s);
    // And through a wait.
    bn_opening_test_set(1000, "reference backend: made to fail");
    s = open_session("reference", true);
    assert_int_equal(bn_session_wait_backend(s, &err), -1);
    assert_non_null(strstr(err.msg, "made to fail"));
    bn_session_free(s);
    bn_opening_test_set(-1, NULL);
}

// Freed while opening, before any step or after some: no leak, no hang (the
// sanitizer build runs this).
static void test_free_while_opening(void **state) {
    (void)state;
    bn_opening_test_set(1000, NULL);
    bn_session *s = open_session("reference", true);
    bn_session_free(s);
    s = open_session("reference", true);
    run r = {.n = 0};
    bn_sampling greedy = bn_sampling_greedy();
    bn_error err;
    if (bn_session_generate(s, prompt, 5, 3, &greedy, collect, &r, NULL, &err)) fail_msg("%s", err.msg);
    assert_true(bn_session_opening(s));
    bn_session_free(s);
    bn_opening_test_set(-1, NULL);
}

// bn_session_eval of a long input moves between its chunks too: after the
// first 32 tokens (poll 2), the rest on the reference backend, its logits
// exactly the reference's for the whole input.
static void test_eval_moves_between_chunks(void **state) {
    (void)state;
    static float want[4096], got[4096];
    assert_true(bn_engine_info(engine).n_vocab <= 4096);
    bn_error err;
    bn_session *s = open_session("reference", false);
    if (bn_session_eval(s, prompt, N_PROMPT, want, &err)) fail_msg("%s", err.msg);
    bn_session_free(s);
    bn_opening_test_set(1, NULL);
    s = open_session("reference", true);
    if (bn_session_eval(s, prompt, N_PROMPT, got, &err)) fail_msg("%s", err.msg);
    assert_string_equal(bn_session_backend(s), "reference");
    assert_non_null(strstr(bn_session_backend_note(s), "moved after 32 tokens"));
    assert_memory_equal(got, want, sizeof(float) * (size_t)bn_engine_info(engine).n_vocab);
    bn_session_free(s);
    bn_opening_test_set(-1, NULL);
}

// Where it does not apply, a session opens its backend as without it.
static void test_not_applied(void **state) {
    (void)state;
    const bn_session_params cases[] = {
        {.backend = "cpu", .cpu_start = true},                     // already the CPU
        {.backend = "reference", .cpu_start = false},
        // the CPU cannot open with these (the reference backend reads no kernel set)
        {.backend = "reference", .cpu_start = true, .cpu_kernels = "bogus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bn_session_params p = cases[i];
        p.n_ctx = N_CTX;
        p.n_threads = 1;
        bn_session *s;
        bn_error err;
        if (bn_session_create(engine, &p, &s, &err)) fail_msg("case %zu: %s", i, err.msg);
        assert_false(bn_session_opening(s));
        assert_string_equal(bn_session_backend(s), p.backend);
        assert_int_equal(bn_session_wait_backend(s, &err), 0); // nothing to wait for
        bn_session_free(s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moves_anywhere_exactly),
        cmocka_unit_test(test_moves_with_int8_head),
        cmocka_unit_test(test_named_backend_failure_is_an_error),
        cmocka_unit_test(test_free_while_opening),
        cmocka_unit_test(test_eval_moves_between_chunks),
        cmocka_unit_test(test_not_applied),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
