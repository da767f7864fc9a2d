// test_sampler.c - sampling rules checked against their definitions.
#include <math.h>

#include "argmax.h"
#include "sampler.h"
#include "test_util.h"

static bn_sampler *make(bn_sampling p, int32_t n_vocab) {
    bn_sampler *s = NULL;
    bn_error err;
    assert_int_equal(bn_sampler_create(&p, n_vocab, &s, &err), 0);
    return s;
}

static void test_argmax_ties_lowest(void **state) {
    (void)state;
    float x[] = {1, 3, 3, -1};
    assert_int_equal(bn_argmax(x, 4), 1);
}

static void test_greedy_is_argmax(void **state) {
    (void)state;
    bn_sampler *s = make(bn_sampling_greedy(), 5);
    float x[] = {0.1f, 2.0f, -3.0f, 1.9f, 0.0f};
    assert_true(bn_sampler_is_greedy(s));
    assert_int_equal(bn_sampler_sample(s, x, NULL, 0), 1);
    bn_sampler_free(s);
}

static void test_top_k_one_is_argmax(void **state) {
    (void)state;
    bn_sampling p = bn_sampling_default();
    p.top_k = 1;
    p.temperature = 5.0f;
    bn_sampler *s = make(p, 6);
    for (int i = 0; i < 100; i++) {
        float x[] = {0, 1, 2, 5, 4, 3};
        assert_int_equal(bn_sampler_sample(s, x, NULL, 0), 3);
    }
    bn_sampler_free(s);
}

// With temperature 1 and no truncation, frequencies follow softmax(logits).
static void test_frequencies_follow_softmax(void **state) {
    (void)state;
    bn_sampling p = {.temperature = 1, .top_k = 0, .top_p = 1, .min_p = 0, .repeat_penalty = 1,
                     .seed = 7};
    bn_sampler *s = make(p, 2);
    int count1 = 0, n = 20000;
    for (int i = 0; i < n; i++) {
        float x[] = {logf(0.25f), logf(0.75f)};
        count1 += bn_sampler_sample(s, x, NULL, 0) == 1;
    }
    // 0.75 +- 5 standard deviations of a binomial with n = 20000.
    assert_true(fabs((double)count1 / n - 0.75) < 5 * sqrt(0.75 * 0.25 / n));
    bn_sampler_free(s);
}

static void test_top_p_cuts_tail(void **state) {
    (void)state;
    bn_sampling p = {.temperature = 1, .top_k = 0, .top_p = 0.6f, .min_p = 0, .repeat_penalty = 1,
                     .seed = 3};
    bn_sampler *s = make(p, 3);
    int seen[3] = {0};
    for (int i = 0; i < 3000; i++) {
        float x[] = {logf(0.5f), logf(0.3f), logf(0.2f)};
        seen[bn_sampler_sample(s, x, NULL, 0)]++;
    }
    // 0.5 < 0.6 <= 0.8: tokens 0 and 1 survive, token 2 never appears.
    assert_true(seen[0] > 0 && seen[1] > 0);
    assert_int_equal(seen[2], 0);
    bn_sampler_free(s);
}

static void test_min_p_cuts_unlikely(void **state) {
    (void)state;
    bn_sampling p = {.temperature = 1, .top_k = 0, .top_p = 1, .min_p = 0.3f, .repeat_penalty = 1,
                     .seed = 5};
    bn_sampler *s = make(p, 3);
    int seen[3] = {0};
    for (int i = 0; i < 3000; i++) {
        float x[] = {logf(0.6f), logf(0.3f), logf(0.1f)}; // 0.1 < 0.3 * 0.6
        seen[bn_sampler_sample(s, x, NULL, 0)]++;
    }
    assert_true(seen[0] > 0 && seen[1] > 0);
    assert_int_equal(seen[2], 0);
    bn_sampler_free(s);
}

static void test_same_seed_same_tokens(void **state) {
    (void)state;
    bn_sampling p = bn_sampling_default();
    p.top_k = 0;
    p.seed = 1234;
    bn_sampler *a = make(p, 50), *b = make(p, 50);
    for (int i = 0; i < 200; i++) {
        float x[50], y[50];
        for (int k = 0; k < 50; k++) x[k] = y[k] = sinf((float)(k * 7 + i));
        assert_int_equal(bn_sampler_sample(a, x, NULL, 0), bn_sampler_sample(b, y, NULL, 0));
    }
    bn_sampler_free(a);
    bn_sampler_free(b);
}

static void test_repeat_penalty(void **state) {
    (void)state;
    bn_sampling p = bn_sampling_greedy();
    p.repeat_penalty = 2.0f;
    bn_sampler *s = make(p, 3);
    assert_false(bn_sampler_is_greedy(s));
    // Token 0 (logit 3) was seen twice: penalised once, to 1.5 < 2 -> token 1 wins.
    float x[] = {3.0f, 2.0f, -1.0f};
    int32_t hist[] = {0, 0, 2};
    assert_int_equal(bn_sampler_sample(s, x, hist, 3), 1);
    assert_true(x[0] == 1.5f && x[2] == -2.0f);
    bn_sampler_free(s);
}

static void test_invalid_params(void **state) {
    (void)state;
    bn_error err;
    bn_sampling p = bn_sampling_default();
    p.top_p = 0;
    assert_int_equal(bn_sampling_validate(&p, &err), -1);
    assert_non_null(strstr(err.msg, "top-p"));
    p = bn_sampling_default();
    p.temperature = -1;
    assert_int_equal(bn_sampling_validate(&p, &err), -1);
    p = bn_sampling_default();
    p.temperature = NAN;
    assert_int_equal(bn_sampling_validate(&p, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argmax_ties_lowest),    cmocka_unit_test(test_greedy_is_argmax),
        cmocka_unit_test(test_top_k_one_is_argmax),   cmocka_unit_test(test_frequencies_follow_softmax),
        cmocka_unit_test(test_top_p_cuts_tail),       cmocka_unit_test(test_min_p_cuts_unlikely),
        cmocka_unit_test(test_same_seed_same_tokens), cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_invalid_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
