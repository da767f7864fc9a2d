// test_top.c - bn_top_select (core/top.h) against its definition: sort the whole
// row by bn_top_order and take the first k. Rows of every length around the
// 64-element blocks it skips, coarse values (many ties, the lower id first),
// -0 beside +0, infinities, and k from 1 to the row. bn_top_exp_sum against
// the softmax's denominator summed here in long double (within 1e-12), and its
// answer to "at most limit?" the same whether it stops early or not, at limits
// around the sum.
#include "test_util.h"

#include <math.h>

#include "top.h"

static void test_select_is_sorting(void **state) {
    (void)state;
    uint64_t rng = 17;
    int cases = 0;
    for (int it = 0; it < 3000; it++) {
        const int32_t n = 1 + (int32_t)(bn_test_rand(&rng) % (it % 10 == 0 ? 70000 : 300));
        const int32_t k = 1 + (int32_t)(bn_test_rand(&rng) % (uint64_t)(n < 130 ? n : 130));
        const int levels = 1 + (int)(bn_test_rand(&rng) % 5000);
        float *x = malloc(sizeof(float) * n);
        bn_top *all = malloc(sizeof(bn_top) * n), *got = malloc(sizeof(bn_top) * k);
        for (int32_t i = 0; i < n; i++) {
            const uint64_t r = bn_test_rand(&rng);
            x[i] = r % 97 == 0 ? (r & 1 ? -0.0f : 0.0f) : r % 89 == 0 ? (r & 1 ? INFINITY : -INFINITY)
                                                          : (float)(r % (uint64_t)levels) / 7.f - 100.f;
            all[i] = (bn_top){i, x[i]};
        }
        qsort(all, (size_t)n, sizeof *all, bn_top_qsort_order);
        bn_top_select(x, n, k, got);
        for (int32_t i = 0; i < k; i++)
            if (got[i].id != all[i].id || memcmp(&got[i].logit, &all[i].logit, sizeof(float)))
                fail_msg("n %d k %d: entry %d is %d (%g), sorting gives %d (%g)", n, k, i, got[i].id, got[i].logit,
                         all[i].id, all[i].logit);
        cases++;
        free(x);
        free(all);
        free(got);
    }
    assert_int_equal(cases, 3000);
}

static void test_exp_sum(void **state) {
    (void)state;
    uint64_t rng = 5;
    for (int it = 0; it < 400; it++) {
        const int32_t n = 1 + (int32_t)(bn_test_rand(&rng) % (it % 20 == 0 ? 130000 : 500));
        const float spread = (float)(1 + bn_test_rand(&rng) % 60); // up to past the e^-40 floor
        float *x = malloc(sizeof(float) * n), best = -INFINITY;
        for (int32_t i = 0; i < n; i++) {
            x[i] = spread * ((float)(bn_test_rand(&rng) >> 40) / (float)(1 << 24)) - spread / 2;
            best = x[i] > best ? x[i] : best;
        }
        long double want = 0;
        for (int32_t i = 0; i < n; i++) want += expl((long double)x[i] - best);
        const double sum = bn_top_exp_sum(x, n, best, INFINITY);
        if (!(fabsl((long double)sum - want) <= 1e-12L * want))
            fail_msg("n %d, spread %g: %.17g, in long double %.17Lg", n, (double)spread, sum, want);
        for (int k = 0; k < 5; k++) { // limits under, at and over the sum
            const double limit = sum * (double[]){0.5, 0.999999, 1.0, 1.000001, 2.0}[k];
            const double stopped = bn_top_exp_sum(x, n, best, limit);
            assert_int_equal(stopped <= limit, sum <= limit);
            assert_true(stopped <= sum);
        }
        free(x);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_select_is_sorting), cmocka_unit_test(test_exp_sum)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
