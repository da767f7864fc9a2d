// test_chunk_plan.c - the CUDA backend's plan for a call of several sequences
// (cuda/chunk_plan.h), checked on random calls without a GPU: the pieces of
// each chunk are its runs, in order and whole; the decode-attention launches
// take every single-token piece once, in order, at most `group` at a time, never
// mixing the two attention forms, with room for every key they read.
#include "test_util.h"

#include "../cuda/chunk_plan.h"

#define MAX_TOKENS 400
#define MAX_SLOTS 12

// A random call as backend.h allows it: each slot in at most one run, positions
// increasing inside a run; runs of one token (decode steps) or several (prompts).
static int random_call(uint64_t *rng, int32_t *seq, int32_t *pos) {
    int slots[MAX_SLOTS];
    for (int s = 0; s < MAX_SLOTS; s++) slots[s] = s;
    for (int s = MAX_SLOTS - 1; s > 0; s--) { // the slots in a random order
        const int k = (int)(bn_test_rand(rng) % (uint64_t)(s + 1)), x = slots[s];
        slots[s] = slots[k];
        slots[k] = x;
    }
    const int runs = 1 + (int)(bn_test_rand(rng) % MAX_SLOTS);
    int n = 0;
    for (int r = 0; r < runs; r++) {
        const int len = bn_test_rand(rng) % 3 ? 1 : 1 + (int)(bn_test_rand(rng) % 30);
        int p = (int)(bn_test_rand(rng) % 300);
        for (int i = 0; i < len; i++) {
            seq[n] = slots[r];
            pos[n++] = p;
            p += 1 + (int)(bn_test_rand(rng) % 2);
        }
    }
    return n;
}

static void check_pieces(const int32_t *seq, int c0, int n, const bn_cuda_piece *piece, int n_piece) {
    assert_true(n_piece >= 1 && n_piece <= MAX_SLOTS);
    int t = 0;
    for (int i = 0; i < n_piece; i++) {
        assert_int_equal(piece[i].t0, t); // in order, no gaps
        assert_true(piece[i].n >= 1);
        for (int k = 0; k < piece[i].n; k++) assert_int_equal(seq[c0 + t + k], piece[i].seq);
        if (i > 0) assert_true(piece[i].seq != piece[i - 1].seq); // whole runs
        t += piece[i].n;
    }
    assert_int_equal(t, n);
}

// The launches attention_pieces makes for one chunk.
static void check_launches(const bn_cuda_piece *piece, int n_piece, const int32_t *pos, int group, int one_below) {
    int taken = 0, singles = 0;
    for (int i = 0; i < n_piece; i++) singles += piece[i].n == 1;
    for (int i = 0; i < n_piece;) {
        if (piece[i].n > 1) {
            i++;
            continue;
        }
        bool one;
        int keys;
        const int j = bn_decode_launch(piece, n_piece, i, pos, group, one_below, &one, &keys);
        assert_true(j > i && j - i <= group && j <= n_piece);
        int32_t max_pos = 0;
        for (int k = i; k < j; k++) {
            assert_int_equal(piece[k].n, 1);
            assert_int_equal(pos[piece[k].t0] < one_below, one); // one form a launch
            if (k > i) assert_int_equal(piece[k].t0, piece[k - 1].t0 + 1); // consecutive tokens
            if (pos[piece[k].t0] > max_pos) max_pos = pos[piece[k].t0];
        }
        if (one) {
            assert_true(keys > max_pos && keys <= one_below);
            assert_true(keys % 16 == 0 || keys == one_below);
        }
        // It stopped for a reason: the end, a prompt piece, the group's size, or the other form.
        assert_true(j == n_piece || piece[j].n > 1 || j - i == group || (pos[piece[j].t0] < one_below) != one);
        taken += j - i;
        i = j;
    }
    assert_int_equal(taken, singles);
}

static void test_random_calls(void **state) {
    (void)state;
    uint64_t rng = 2026;
    int32_t seq[MAX_TOKENS], pos[MAX_TOKENS];
    bn_cuda_piece piece[MAX_SLOTS];
    for (int rep = 0; rep < 3000; rep++) {
        const int n_tokens = random_call(&rng, seq, pos);
        const int max_batch = 1 + (int)(bn_test_rand(&rng) % 64), group = 1 + (int)(bn_test_rand(&rng) % 8);
        const int one_below = (int)(bn_test_rand(&rng) % 5) * 64 + (int)(bn_test_rand(&rng) % 2) * 7; // 0: off
        for (int c0 = 0; c0 < n_tokens; c0 += max_batch) {
            const int n = n_tokens - c0 < max_batch ? n_tokens - c0 : max_batch;
            const int n_piece = bn_chunk_pieces(seq, c0, n, piece);
            check_pieces(seq, c0, n, piece, n_piece);
            check_launches(piece, n_piece, pos + c0, group, one_below);
        }
    }
}

// A hand-made chunk: two decode tokens of the one-kernel form, a prompt, then
// three decode tokens, of which the last is past one_below.
static void test_example(void **state) {
    (void)state;
    const int32_t seq[] = {4, 1, 7, 7, 7, 2, 0, 5};
    const int32_t pos[] = {30, 5, 0, 1, 2, 60, 17, 64};
    bn_cuda_piece piece[8];
    const int n_piece = bn_chunk_pieces(seq, 0, 8, piece);
    assert_int_equal(n_piece, 6);
    assert_int_equal(piece[2].t0, 2);
    assert_int_equal(piece[2].n, 3);
    assert_int_equal(piece[2].seq, 7);
    bool one;
    int keys;
    assert_int_equal(bn_decode_launch(piece, n_piece, 0, pos, 8, 64, &one, &keys), 2);
    assert_true(one);
    assert_int_equal(keys, 32); // position 30: 31 keys, rounded up
    assert_int_equal(bn_decode_launch(piece, n_piece, 3, pos, 8, 64, &one, &keys), 5);
    assert_true(one);
    assert_int_equal(keys, 64); // position 60: 61 keys, rounded up to one_below
    assert_int_equal(bn_decode_launch(piece, n_piece, 5, pos, 8, 64, &one, &keys), 6);
    assert_false(one); // position 64 is not below 64
    assert_int_equal(bn_decode_launch(piece, n_piece, 3, pos, 1, 64, &one, &keys), 4); // a group of one
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_example), cmocka_unit_test(test_random_calls)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
