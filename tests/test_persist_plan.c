// test_persist_plan.c - the persistent decode kernel's shared-memory plan
// (cuda/persist_plan.h), checked without a GPU: on random shapes every chunk
// fits its stage, a block's chunks cover its rows with as few chunks as the
// stage allows, the ring and the working region are aligned and inside the
// limit, the working region holds a bitlinear's input, the one-block
// attention's scratch for max_keys and the split pair's steps, and max_keys is
// the largest multiple of 16 that fits; on the 2B-4T and Falcon3-10B shapes and
// an H200's 132 multiprocessors, the sizes worked out by hand.
#include "test_util.h"

#include "../cuda/persist_plan.h"

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

static void check_plan(const bn_persist_plan *p, size_t limit, int E, int F, int nq, int nkv, int hd, int qpb,
                       int n_rot, int n_ctx, int wanted) {
    const bool groups_fit = (int64_t)p->blocks * qpb * hd >= nq; // a block for each group of query heads
    const int M[4] = {nq + 2 * nkv, E, 2 * F, E}, K[4] = {E, nq, E, F};
    int layer_chunks = 0;
    assert_int_equal(p->stage % 16, 0);
    for (int i = 0; i < BN_PERSIST_MATS; i++) {
        const size_t rowb = (size_t)K[i] / 4;
        assert_int_equal(p->K[i], K[i]);
        assert_int_equal(p->M[i], M[i]);
        assert_true((int64_t)p->rows[i] * p->blocks >= M[i]);      // every row has a block
        assert_true((int64_t)(p->rows[i] - 1) * p->blocks < M[i]); // and no block more than it needs
        assert_true(p->chunk_rows[i] >= 1 && (size_t)p->chunk_rows[i] * rowb <= p->stage); // a chunk fits its stage
        assert_true((int64_t)p->chunks[i] * p->chunk_rows[i] >= p->rows[i]);               // the chunks cover the rows
        assert_true((int64_t)(p->chunks[i] - 1) * p->chunk_rows[i] < p->rows[i]);          // none is empty in block 0
        const int fit = (int)(p->stage / rowb), fewest = (p->rows[i] + fit - 1) / fit;
        assert_int_equal(p->chunks[i], fewest); // as few chunks as the stage allows
        layer_chunks += p->chunks[i];
    }
    assert_int_equal(p->layer_chunks, layer_chunks);
    const size_t kmax = max3((size_t)E, (size_t)F, (size_t)nq);
    assert_int_equal(p->work, BN_PERSIST_STAGES * p->stage); // the working region right after the ring
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

// A plan's rows a block, rows a chunk and chunks of each matrix, worked out by
// hand, and its stages of `stage` bytes, the working region right after them.
static void expect_chunks(const bn_persist_plan *p, const int rows[4], const int chunk_rows[4], const int chunks[4],
                          size_t stage) {
    int layer_chunks = 0;
    for (int i = 0; i < BN_PERSIST_MATS; i++) {
        assert_int_equal(p->rows[i], rows[i]);
        assert_int_equal(p->chunk_rows[i], chunk_rows[i]);
        assert_int_equal(p->chunks[i], chunks[i]);
        layer_chunks += chunks[i];
    }
    assert_int_equal(p->layer_chunks, layer_chunks);
    assert_int_equal(p->stage, stage);
    assert_int_equal(p->work, BN_PERSIST_STAGES * stage);
}

// 2B-4T (hidden 2560, FFN 6912, 20/5 heads of 128, 4 query heads a group) on
// 132 multiprocessors: rows a block 30 of Q|K|V (3840 x 640 B), 20 of O (640 B),
// 105 of gate|up (13824 x 640 B), 20 of down (1728 B): 19200 + 12800 + 67200 +
// 34560 = 133760 bytes a layer. An eighth of that, 16720 bytes, holds 26 rows of
// 640 B or 9 of 1728 B: 2 + 1 + 5 + 3 = 11 chunks. The smallest stage that takes
// a layer in 8 is 19200 bytes (Q|K|V whole, else 9 chunks): Q|K|V in 1 chunk of
// 30 rows, O in 1 of 20, gate|up in 4 of 27, down in 2 of 10. The attention: 4 x
// 128 query floats, 4 x keys scores, 128 RoPE floats, 8 x 4 x 128 partials and 2
// x 128 halves = 19456 + 16 keys bytes; a bitlinear's input: 6912 codes + 6912
// floats = 34560.
#define SHAPE_2B4T 2560, 6912, 2560, 640, 128, 4, 128

static void test_2b4t_on_h200(void **state) {
    (void)state;
    bn_persist_plan p;
    const size_t limit = 232448 - 2048; // the H200's opt-in shared memory less the static arrays
    assert_true(bn_persist_plan_make(&p, 132, limit, SHAPE_2B4T, 4096, 256, 0));
    expect_chunks(&p, (const int[]){30, 20, 105, 20}, (const int[]){30, 20, 27, 10}, (const int[]){1, 1, 4, 2}, 19200);
    assert_int_equal(p.max_keys, 256);
    assert_int_equal(p.smem, 153600 + 34560); // 256 keys: 23552 bytes of attention, less than the input's
    check_plan(&p, limit, SHAPE_2B4T, 4096, 256);
    // All 4096 positions would need 19456 + 65536 = 84992 bytes of attention; 76800
    // are left: 3584 keys.
    assert_true(bn_persist_plan_make(&p, 132, limit, SHAPE_2B4T, 4096, 4096, 0));
    assert_int_equal(p.max_keys, 3584);
    assert_int_equal(p.smem, 153600 + 76800);
    // With room for them, all 4096; one byte less, 16 fewer.
    assert_true(bn_persist_plan_make(&p, 132, 153600 + 84992, SHAPE_2B4T, 4096, 4096, 0));
    assert_int_equal(p.max_keys, 4096);
    assert_true(bn_persist_plan_make(&p, 132, 153600 + 84992 - 1, SHAPE_2B4T, 4096, 4096, 0));
    assert_int_equal(p.max_keys, 4080);
    assert_int_equal(p.stage, 19200);
    // A context of 100 tokens: keys up to 96.
    assert_true(bn_persist_plan_make(&p, 132, limit, SHAPE_2B4T, 100, 4096, 0));
    assert_int_equal(p.max_keys, 96);
}

// Falcon3-10B (hidden 3072, FFN 23040, 12/4 heads of 256) on 132
// multiprocessors: a block's layer is 39 rows of Q|K|V, 24 of O and 350 of
// gate|up (768 B each) and 24 of down (5760 B), 455424 bytes, far more than
// fits. A bitlinear's input is the largest working space, 23040 codes + 23040
// floats = 115200 bytes, so the ring gets the other 115200: stages of 14400
// bytes, 18 rows of 768 B or 2 of 5760 B. Q|K|V in 3 chunks of 13 rows, O in 2
// of 12, gate|up in 20 of 18, down in 12 of 2. The one-block attention for 256
// keys (17408 + 12 x 256 bytes) fits in the input's room.
static void test_10b_on_h200(void **state) {
    (void)state;
    bn_persist_plan p;
    assert_true(bn_persist_plan_make(&p, 132, 230400, 3072, 23040, 3072, 1024, 256, 3, 256, 4096, 256, 0));
    expect_chunks(&p, (const int[]){39, 24, 350, 24}, (const int[]){13, 12, 18, 2}, (const int[]){3, 2, 20, 12},
                  14400);
    assert_int_equal(p.max_keys, 256);
    assert_int_equal(p.smem, 230400);
    check_plan(&p, 230400, 3072, 23040, 3072, 1024, 256, 3, 256, 4096, 256);
}

// Less room shrinks the ring down to stages of one row of the widest matrix
// (the 2B-4T's down, 1728 bytes: 8 x 1728 + 34560 = 48384 bytes in all); below
// that, no plan. A cap on the ring does the same with room to spare.
static void test_small_ring(void **state) {
    (void)state;
    bn_persist_plan p;
    assert_true(bn_persist_plan_make(&p, 132, 48384, SHAPE_2B4T, 4096, 256, 0));
    assert_int_equal(p.stage, 1728);
    assert_int_equal(p.chunk_rows[BN_PERSIST_DOWN], 1);
    assert_int_equal(p.chunks[BN_PERSIST_DOWN], 20);
    assert_int_equal(p.chunk_rows[BN_PERSIST_GU], 2);
    assert_int_equal(p.chunks[BN_PERSIST_GU], 53);
    assert_int_equal(p.max_keys, 256); // in the input's room
    check_plan(&p, 48384, SHAPE_2B4T, 4096, 256);
    assert_false(bn_persist_plan_make(&p, 132, 48383, SHAPE_2B4T, 4096, 256, 0));
    const size_t limit = 232448 - 2048;
    assert_true(bn_persist_plan_make(&p, 132, limit, SHAPE_2B4T, 4096, 256, 1));
    assert_int_equal(p.stage, 1728);
    check_plan(&p, limit, SHAPE_2B4T, 4096, 256);
    assert_true(bn_persist_plan_make(&p, 132, limit, SHAPE_2B4T, 4096, 256, 8 * 4000));
    assert_int_equal(p.stage, 4000);
    check_plan(&p, limit, SHAPE_2B4T, 4096, 256);
}

// Shapes the kernel cannot take get no plan. Without room for 16 keys, or a
// block for every group of query heads, the plan keeps only the split attention
// (max_keys 0).
static void test_no_plan_or_no_keys(void **state) {
    (void)state;
    bn_persist_plan p;
    assert_false(bn_persist_plan_make(&p, 0, 230400, SHAPE_2B4T, 4096, 256, 0));
    assert_false(bn_persist_plan_make(&p, 132, 230400, 2560, 6900, 2560, 640, 128, 4, 128, 4096, 256, 0)); // K % 128
    // What the decode attention refuses (bn_attd_args_init): head dim over 256, more
    // rotated dims than the head has, an odd count of them.
    assert_false(bn_persist_plan_make(&p, 132, 230400, 2560, 6912, 2560, 640, 512, 1, 128, 4096, 256, 0));
    assert_false(bn_persist_plan_make(&p, 132, 230400, 2560, 6912, 2560, 640, 128, 4, 136, 4096, 256, 0));
    assert_false(bn_persist_plan_make(&p, 132, 230400, 2560, 6912, 2560, 640, 128, 4, 127, 4096, 256, 0));
    // A context of 8 tokens: no 16 keys.
    assert_true(bn_persist_plan_make(&p, 132, 230400, SHAPE_2B4T, 8, 256, 0));
    assert_int_equal(p.max_keys, 0);
    // 16 heads of 64 without GQA (one head a group) on 12 multiprocessors.
    assert_true(bn_persist_plan_make(&p, 12, 230400, 1024, 1024, 1024, 1024, 64, 1, 64, 4096, 256, 0));
    assert_int_equal(p.max_keys, 0);
    check_plan(&p, 230400, 1024, 1024, 1024, 1024, 64, 1, 64, 4096, 256);
    // Room for the 2B-4T's layer in eighths and a bitlinear's input, 168320 bytes:
    // no room for the 19200-byte stages, so the 11 chunks of 16720, and the 23552
    // bytes of 256 keys' attention fit in the input's room.
    assert_true(bn_persist_plan_make(&p, 132, 133760 + 34560, SHAPE_2B4T, 4096, 256, 0));
    assert_int_equal(p.max_keys, 256);
    assert_int_equal(p.stage, 16720);
    assert_int_equal(p.layer_chunks, 11);
}

static void test_random_shapes(void **state) {
    (void)state;
    uint64_t rng = 0x5eed;
    int planned = 0, with_keys = 0, capped = 0, fits_in_ring = 0;
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
        const size_t cap = bn_test_rand(&rng) % 4 ? 0 : bn_test_rand(&rng) % (200 * 1024);
        bn_persist_plan p;
        if (nq % 128) continue;
        if (!bn_persist_plan_make(&p, blocks, limit, E, F, nq, nkv, hd, qpb, n_rot, n_ctx, wanted, cap)) continue;
        planned++;
        with_keys += p.max_keys > 0;
        check_plan(&p, limit, E, F, nq, nkv, hd, qpb, n_rot, n_ctx, wanted);
        // The ring is no smaller than it may be (a layer, the room the working
        // region leaves, or the cap, less the rounding to equal 16-byte stages),
        // and no larger than that room, or stages of one widest row.
        const int M[4] = {nq + 2 * nkv, E, 2 * F, E}, K[4] = {E, nq, E, F};
        size_t layer = 0;
        for (int i = 0; i < BN_PERSIST_MATS; i++) layer += (size_t)((M[i] + blocks - 1) / blocks) * (size_t)(K[i] / 4);
        const size_t kmax = max3((size_t)E, (size_t)F, (size_t)nq), norm = p.codes_bytes + 4 * kmax;
        const size_t split = bn_persist_split_bytes(hd, qpb, n_rot);
        size_t room = limit - bn_persist_round(norm > split ? norm : split);
        if (cap && room > cap) room = cap;
        assert_true(p.work + BN_PERSIST_STAGES * BN_PERSIST_ALIGN > (room < layer ? room : layer));
        const size_t one_row = BN_PERSIST_STAGES * bn_persist_round(kmax / 4);
        assert_true(p.work <= (room > one_row ? room : one_row));
        // Where the largest stages take a layer in BN_PERSIST_STAGES chunks, the plan does too.
        bn_persist_plan q = p;
        const size_t largest = room / BN_PERSIST_STAGES / BN_PERSIST_ALIGN * BN_PERSIST_ALIGN;
        if (largest >= kmax / 4 && bn_persist_chunk(&q, largest) <= BN_PERSIST_STAGES) {
            assert_true(p.layer_chunks <= BN_PERSIST_STAGES);
            fits_in_ring++;
        }
        capped += cap && cap < layer;
    }
    fprintf(stderr, "  %d random shapes had a plan, %d with the one-block attention, %d with a capped ring, %d with a "
            "layer in the ring\n", planned, with_keys, capped, fits_in_ring);
    assert_true(planned > 100 && with_keys > 100 && with_keys < planned && capped > 100 && fits_in_ring > 100);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_2b4t_on_h200), cmocka_unit_test(test_10b_on_h200),
                                       cmocka_unit_test(test_small_ring), cmocka_unit_test(test_no_plan_or_no_keys),
                                       cmocka_unit_test(test_random_shapes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
