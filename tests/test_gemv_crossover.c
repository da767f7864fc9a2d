// test_gemv_crossover.c - the rule that sets the CUDA backend's GEMV batch limit
// from timings (cuda/gemv_crossover.h), on timings like the H200's and on the
// cases a measurement can go wrong.
#include "test_util.h"

#include "../cuda/gemv_crossover.h"

static const int sizes[4] = {2, 4, 8, 16}; // the rule takes any ascending sizes

static void test_crossings(void **state) {
    (void)state;
    // The H200's gate|up (docs/cuda-performance.md): GEMV 6.9 / 11.3 / 19.9 us at 2 /
    // 4 / 8 tokens, about 40 at 16; the GEMM 43-48 throughout.
    const double gemv[4] = {6.9, 11.3, 19.9, 40.1}, gemm[4] = {48, 45, 45, 43};
    assert_int_equal(bn_gemv_crossover(sizes, gemv, gemm, 4, 8), 16);
    const double gemm_fast[4] = {48, 45, 45, 39.9};
    assert_int_equal(bn_gemv_crossover(sizes, gemv, gemm_fast, 4, 8), 8);
    const double gemm_faster[4] = {7.0, 11.2, 10, 10};
    assert_int_equal(bn_gemv_crossover(sizes, gemv, gemm_faster, 4, 8), 2);
    // A tie goes to the GEMV; the GEMM ahead at every size leaves one token on the GEMV.
    const double tie[4] = {6.9, 11.3, 19.9, 40.1};
    assert_int_equal(bn_gemv_crossover(sizes, gemv, tie, 4, 8), 16);
    const double gemm_always[4] = {1, 1, 1, 1};
    assert_int_equal(bn_gemv_crossover(sizes, gemv, gemm_always, 4, 8), 1);
    // Once the GEMM has won, a later GEMV win (noise) does not count.
    const double noisy[4] = {48, 11.2, 45, 45};
    assert_int_equal(bn_gemv_crossover(sizes, gemv, noisy, 4, 8), 2);
    // Fewer sizes timed (the GEMV's shared memory caps the batch): the last one timed.
    assert_int_equal(bn_gemv_crossover(sizes, gemv, gemm, 2, 8), 4);
}

static void test_missing_timings(void **state) {
    (void)state;
    const double gemv[4] = {6.9, 11.3, 19.9, 40.1}, gemm[4] = {48, 45, 45, 43};
    assert_int_equal(bn_gemv_crossover(sizes, gemv, gemm, 0, 8), 8); // nothing timed
    const double none[4] = {0, 0, 0, 0}, nans[4] = {NAN, 1, 1, 1}, infs[4] = {6.9, 11.3, INFINITY, 40};
    assert_int_equal(bn_gemv_crossover(sizes, none, gemm, 4, 8), 8);
    assert_int_equal(bn_gemv_crossover(sizes, gemv, nans, 4, 8), 8);
    assert_int_equal(bn_gemv_crossover(sizes, infs, gemm, 4, 8), 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_crossings), cmocka_unit_test(test_missing_timings)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
