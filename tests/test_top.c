// test_top.c - bn_top_select (core/top.h) against its definition: sort the whole
// row by bn_top_order and take the first k. Rows of every length around the
// 64-element blocks it skips, coarse values (many ties, the lower id first),
// -0 beside +0, infinities, and k from 1 to the row.
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

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_select_is_sorting)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
