// test_threadpool.c - the persistent pool runs every thread index exactly once per
// run, publishes the workers' writes to the caller, and starts/stops cleanly.
#include "test_util.h"

#include <stdatomic.h>
#include <time.h>

#include "threadpool.h"

#define N_ELEMS 1003 // odd, so the split never comes out even

typedef struct {
    _Atomic int calls[8];   // calls per thread index
    _Atomic int bad_nth;    // calls that saw the wrong nth
    int expect_nth;
    int elems[N_ELEMS];     // plain ints: visibility comes from the pool's ordering
} counts;

static void count_fn(void *ctx, int ith, int nth) {
    counts *c = ctx;
    if (nth != c->expect_nth) atomic_fetch_add(&c->bad_nth, 1);
    atomic_fetch_add(&c->calls[ith], 1);
    // Each thread owns a contiguous slice of the array, like matrix rows.
    int per = (N_ELEMS + nth - 1) / nth;
    int lo = ith * per, hi = lo + per < N_ELEMS ? lo + per : N_ELEMS;
    for (int i = lo; i < hi; i++) c->elems[i]++;
}

static void test_every_index_once(void **state) {
    (void)state;
    for (int nth = 1; nth <= 5; nth++) {
        bn_pool *p;
        bn_error err;
        assert_int_equal(bn_pool_create(nth, &p, &err), 0);
        assert_int_equal(bn_pool_size(p), nth);
        static counts c;
        memset(&c, 0, sizeof c);
        c.expect_nth = nth;
        const int runs = 2000;
        for (int r = 0; r < runs; r++) {
            bn_pool_run(p, count_fn, &c);
            // After each run every element must already show this run's write.
            assert_int_equal(c.elems[0], r + 1);
            assert_int_equal(c.elems[N_ELEMS - 1], r + 1);
        }
        for (int i = 0; i < nth; i++) assert_int_equal(atomic_load(&c.calls[i]), runs);
        for (int i = nth; i < 8; i++) assert_int_equal(atomic_load(&c.calls[i]), 0);
        for (int i = 0; i < N_ELEMS; i++) assert_int_equal(c.elems[i], runs);
        assert_int_equal(atomic_load(&c.bad_nth), 0);
        bn_pool_destroy(p);
    }
}

static void test_runs_after_sleep(void **state) {
    (void)state;
    // Workers fall asleep between runs after their spin; a later run must wake them.
    bn_pool *p;
    assert_int_equal(bn_pool_create(3, &p, NULL), 0);
    static counts c;
    memset(&c, 0, sizeof c);
    c.expect_nth = 3;
    for (int r = 0; r < 5; r++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        bn_pool_run(p, count_fn, &c);
    }
    for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&c.calls[i]), 5);
    bn_pool_destroy(p);
}

static void test_create_destroy_repeatedly(void **state) {
    (void)state;
    for (int i = 0; i < 200; i++) {
        int nth = 1 + i % 5;
        bn_pool *p;
        assert_int_equal(bn_pool_create(nth, &p, NULL), 0);
        if (i % 2) { // half of them never run anything
            static counts c;
            memset(&c, 0, sizeof c);
            c.expect_nth = nth;
            bn_pool_run(p, count_fn, &c);
            for (int j = 0; j < nth; j++) assert_int_equal(atomic_load(&c.calls[j]), 1);
        }
        bn_pool_destroy(p);
    }
    bn_pool_destroy(NULL);
}

static void test_bad_thread_count(void **state) {
    (void)state;
    bn_pool *p = (bn_pool *)1;
    bn_error err = {{0}};
    assert_int_equal(bn_pool_create(0, &p, &err), -1);
    assert_null(p);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(bn_pool_create(-3, &p, &err), -1);
}

static void test_physical_cores(void **state) {
    (void)state;
    int n = bn_physical_cores();
    assert_true(n >= 1 && n <= 4096);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_index_once),
        cmocka_unit_test(test_runs_after_sleep),
        cmocka_unit_test(test_create_destroy_repeatedly),
        cmocka_unit_test(test_bad_thread_count),
        cmocka_unit_test(test_physical_cores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
