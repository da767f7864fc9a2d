// test_persist_plan.c - the persistent decode kernel's shared-memory plan
// (cuda/persist_plan.h), checked without a GPU: on random shapes every matrix's
// rows are covered, the regions are aligned, apart and inside the limit, the
// working region holds a bitlinear's input, the one-block attention's scratch
// for max_keys and the split pair's steps, and max_keys is the largest multiple
// of 16 that fits; on the 2B-4T shape and an H200's 132 multiprocessors, the
// sizes worked out by hand.
#include "test_util.h"

#include "../cuda/persist_plan.h"

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

static void check_plan(const bn_persist_plan *p, size_t limit, int E, int F, int nq, int nkv, int hd, int qpb,
                       int n_rot, int n_ctx, int wanted) {
    const bool groups_fit = (int64_t)p->blocks * qpb * hd >= nq; // a block for each group of query heads
    const int M[4] = {nq + 2 * nkv, E, 2 * F, E}, K[4] = {E, nq, E, F};
    for (int i = 0; i < BN_PERSIST_MATS; i++) {
        assert_int_equal(p->K[i], K[i]);
        assert_int_equal(p->M[i], M[i]);
        assert_true((int64_t)p->rows[i] * p->blocks >= M[i]);        // every row has a block
        assert_true((int64_t)(p->rows[i] - 1) * p->blocks < M[i]);   // and no block more than it needs
        assert_int_equal(p->off[i] % 16, 0);
        const size_t end = p->off[i] + (size_t)p->rows[i] * (size_t)(K[i] / 4);
        assert_true(end <= (i + 1 < BN_PERSIST_MATS ? p->off[i + 1] : p->work)); // regions apart
    }
    const size_t kmax = max3((size_t)E, (size_t)F, (size_t)nq);
    assert_int_equal(p->work % 16, 0);
    assert_true(p->codes_bytes >= kmax && p->codes_bytes % 16 == 0);
    assert_true(p->work + p->codes_bytes + 4 * kmax <= p->smem);                            // the norm's input
    assert_true(p->work + bn_persist_split_bytes(hd, qpb, n_rot) <= p->smem);              // the attention's, either
    if (p->max_keys) assert_true(p->work + bn_persist_att_bytes(hd, qpb, n_rot, p->max_keys) <= p->smem); // form
    assert_true(p->smem <= limit);
    assert_true(p->max_keys >= 0 && p->max_keys % 16 == 0);
    assert_true(p->max_keys <= wanted && p->max_keys <= n_ctx);
    if (p->max_keys) assert_true(groups_fit);
    // 16 keys more would not fit, unless the keys asked for, the context or the blocks stop it first.
    if (p->max_keys + 16 <= wanted && p->max_keys + 16 <= n_ctx && groups_fit)
        assert_true(p->work + bn_persist_round(bn_persist_att_bytes(hd, qpb, n_rot, p->max_keys + 16)) > limit);
}

// 2B-4T (hidden 2560, FFN 6912, 20/5 heads of 128, 4 query heads a group) on
// 132 multiprocessors: rows a block 30 of Q|K|V (3840 x 640 B), 20 of O (640 B),
// 105 of gate|up (13824 x 640 B), 20 of down (1728 B): 19200 + 12800 + 67200 +
// 34560 = 133760 bytes of weights. The attention: 4 x 128 query floats, 4 x keys
// scores, 128 RoPE floats, 8 x 4 x 128 partials and 2 x 128 halves = 19456 + 16
// keys bytes; a bitlinear's input: 6912 codes + 6912 floats = 34560.
static void test_2b4t_on_h200(void **state) {
    (void)state;
    bn_persist_plan p;
    const size_t limit = 232448 - 2048; // the H200's opt-in shared memory less the static arrays
    assert_true(bn_persist_plan_make(&p, 132, limit, 2560, 6912, 2560, 640, 128, 4, 128, 4096, 256));
    assert_int_equal(p.rows[BN_PERSIST_QKV], 30);
    assert_int_equal(p.rows[BN_PERSIST_O], 20);
    assert_int_equal(p.rows[BN_PERSIST_GU], 105);
    assert_int_equal(p.rows[BN_PERSIST_DOWN], 20);
    assert_int_equal(p.work, 133760);
    assert_int_equal(p.max_keys, 256);
    assert_int_equal(p.smem, 133760 + 34560); // 256 keys: 23552 bytes of attention, less than the input's
    check_plan(&p, limit, 2560, 6912, 2560, 640, 128, 4, 128, 4096, 256);
    // All 4096 positions: 19456 + 65536 = 84992 bytes of attention.
    assert_true(bn_persist_plan_make(&p, 132, limit, 2560, 6912, 2560, 640, 128, 4, 128, 4096, 4096));
    assert_int_equal(p.max_keys, 4096);
    assert_int_equal(p.smem, 133760 + 84992);
    // One byte short of 4096 keys: 16 fewer.
    assert_true(bn_persist_plan_make(&p, 132, 133760 + 84992 - 1, 2560, 6912, 2560, 640, 128, 4, 128, 4096, 4096));
    assert_int_equal(p.max_keys, 4080);
    // A context of 100 tokens: keys up to 96.
    assert_true(bn_persist_plan_make(&p, 132, limit, 2560, 6912, 2560, 640, 128, 4, 128, 100, 4096));
    assert_int_equal(p.max_keys, 96);
}

// Shapes whose slices do not fit get no plan: Falcon3-10B's gate|up alone is 350
// rows of 768 bytes a block on 132 multiprocessors (268800 bytes). Without room
// for 16 keys, or a block for every group of query heads, the plan keeps only
// the split attention (max_keys 0).
static void test_too_big(void **state) {
    (void)state;
    bn_persist_plan p;
    assert_false(bn_persist_plan_make(&p, 132, 230400, 3072, 23040, 3072, 1024, 256, 3, 256, 4096, 256));
    assert_false(bn_persist_plan_make(&p, 0, 230400, 2560, 6912, 2560, 640, 128, 4, 128, 4096, 256));
    assert_false(bn_persist_plan_make(&p, 132, 230400, 2560, 6900, 2560, 640, 128, 4, 128, 4096, 256)); // K % 128
    // A context of 8 tokens: no 16 keys.
    assert_true(bn_persist_plan_make(&p, 132, 230400, 2560, 6912, 2560, 640, 128, 4, 128, 8, 256));
    assert_int_equal(p.max_keys, 0);
    // 16 heads of 64 without GQA (one head a group) on 12 multiprocessors.
    assert_true(bn_persist_plan_make(&p, 12, 230400, 1024, 1024, 1024, 1024, 64, 1, 64, 4096, 256));
    assert_int_equal(p.max_keys, 0);
    check_plan(&p, 230400, 1024, 1024, 1024, 1024, 64, 1, 64, 4096, 256);
    // Room for the 2B-4T's weights and a bitlinear's input, 168320 bytes: the 23552
    // bytes of 256 keys' attention fit in the input's room; one byte less, nothing.
    assert_true(bn_persist_plan_make(&p, 132, 133760 + 34560, 2560, 6912, 2560, 640, 128, 4, 128, 4096, 256));
    assert_int_equal(p.max_keys, 256);
    assert_false(bn_persist_plan_make(&p, 132, 133760 + 34560 - 1, 2560, 6912, 2560, 640, 128, 4, 128, 4096, 256));
}

static void test_random_shapes(void **state) {
    (void)state;
    uint64_t rng = 0x5eed;
    int planned = 0, with_keys = 0;
    for (int it = 0; it < 20000; it++) {
        const int blocks = 1 + (int)(bn_test_rand(&rng) % 160);
        const int hd = 8 * (1 + (int)(bn_test_rand(&rng) % 32));
        const int kv = 1 + (int)(bn_test_rand(&rng) % 8), group = 1 + (int)(bn_test_rand(&rng) % 8);
        const int qpb = 1 + (int)(bn_test_rand(&rng) % group);
        const int nq = kv * group * hd, nkv = kv * hd;
        const int E = 128 * (1 + (int)(bn_test_rand(&rng) % 40)), F = 128 * (1 + (int)(bn_test_rand(&rng) % 120));
        const int n_rot = 2 * (1 + (int)(bn_test_rand(&rng) % (hd / 2)));
        const int n_ctx = 1 + (int)(bn_test_rand(&rng) % 8192), wanted = (int)(bn_test_rand(&rng) % 5000);
        const size_t limit = 48 * 1024 + bn_test_rand(&rng) % (200 * 1024);
        bn_persist_plan p;
        if (nq % 128) continue;
        if (!bn_persist_plan_make(&p, blocks, limit, E, F, nq, nkv, hd, qpb, n_rot, n_ctx, wanted)) continue;
        planned++;
        with_keys += p.max_keys > 0;
        check_plan(&p, limit, E, F, nq, nkv, hd, qpb, n_rot, n_ctx, wanted);
    }
    fprintf(stderr, "  %d random shapes had a plan, %d with the one-block attention\n", planned, with_keys);
    assert_true(planned > 100 && with_keys > 100 && with_keys < planned);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_2b4t_on_h200), cmocka_unit_test(test_too_big),
                                       cmocka_unit_test(test_random_shapes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
