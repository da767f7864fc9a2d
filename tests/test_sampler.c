// test_sampler.c - sampling rules checked against their definitions.
#include <limits.h>
#include <math.h>

#include "argmax.h"
#include "sampler.h"
#include "test_util.h"

#define MAX_HISTORY 4096 // the longest history a test gives a sampler

static bn_sampler *make(bn_sampling p, int32_t n_vocab) {
    bn_sampler *s = NULL;
    bn_error err;
    assert_int_equal(bn_sampler_create(&p, n_vocab, MAX_HISTORY, &s, &err), 0);
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

static int by_value_desc(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

// All tokens in the softmax (top-k 0) over a large vocabulary: only
// the head of the order can be kept, so only the head is sorted. Checked against
// the definition worked out by brute force (every probability, sorted): with
// top-p alone, then min-p alone, then both, every token drawn lies in the kept
// prefix (give or take the one at its edge, where the order of the softmax's
// sum may round differently), and both the prefix's head and its second half
// are drawn (a prefix cut short would never reach the latter).
static void test_all_tokens_head_only(void **state) {
    (void)state;
    enum { V = 32768, DRAWS = 1200 };
    float *logits = malloc(sizeof(float) * V), *x = malloc(sizeof(float) * V), *prob = malloc(sizeof(float) * V);
    float *sorted = malloc(sizeof(float) * V);
    uint64_t rng = 99;
    for (int i = 0; i < V; i++) // a long tail and a few likely tokens, as a language model's
        logits[i] = (float)((bn_test_rand(&rng) >> 40) / 16777216.0) * 8.f - (i % 211 == 0 ? 0.f : 6.f);
    const struct { float top_p, min_p; } cases[] = {{0.9f, 0}, {1.0f, 0.2f}, {0.5f, 0.05f}, {1.0f, 0}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        bn_sampling p = {.temperature = 0.8f, .top_k = 0, .top_p = cases[ci].top_p, .min_p = cases[ci].min_p,
                         .repeat_penalty = 1, .seed = 11};
        // The kept prefix by the definition: the threshold probability at its end.
        double sum = 0, max = logits[0];
        for (int i = 0; i < V; i++) max = logits[i] > max ? logits[i] : max;
        for (int i = 0; i < V; i++) sum += exp((logits[i] - max) / p.temperature);
        for (int i = 0; i < V; i++) prob[i] = (float)(exp((logits[i] - max) / p.temperature) / sum);
        memcpy(sorted, prob, sizeof(float) * V);
        qsort(sorted, V, sizeof(float), by_value_desc);
        int keep = V;
        double cum = 0;
        for (int i = 0; i < V && p.top_p < 1; i++)
            if ((cum += sorted[i]) >= p.top_p) {
                keep = i + 1;
                break;
            }
        if (p.min_p > 0) {
            int i = 1;
            while (i < keep && sorted[i] >= p.min_p * sorted[0]) i++;
            keep = i;
        }
        const float edge = sorted[keep < V ? keep : V - 1]; // the first probability left out (or the last)
        bn_sampler *s = make(p, V);
        int head = 0, n_head = keep < 5 ? keep : 5, deep = 0;
        for (int d = 0; d < DRAWS; d++) {
            memcpy(x, logits, sizeof(float) * V);
            const int32_t id = bn_sampler_sample(s, x, NULL, 0);
            assert_true(id >= 0 && id < V);
            if (keep < V && prob[id] < edge * 0.999f)
                fail_msg("top-p %g min-p %g: drew %d (p %g), below the kept prefix's edge %g", p.top_p, p.min_p, id,
                         prob[id], edge);
            head += prob[id] >= sorted[n_head - 1];
            deep += prob[id] <= sorted[keep / 2];
        }
        fprintf(stderr, "  top-p %g, min-p %g: %d tokens kept, %d of %d draws among the best %d, %d in the second half\n",
                p.top_p, p.min_p, keep, head, DRAWS, n_head, deep);
        assert_true(head > 0);
        if (keep < V) assert_true(deep > 0);
        bn_sampler_free(s);
    }
    free(logits);
    free(x);
    free(prob);
    free(sorted);
}

// The definition with top-k, written plainly: every token sorted (logit down, id
// up), the first k kept, softmax, top-p, min-p, then the draw.
typedef struct ref_cand {
    int32_t id;
    float v;
} ref_cand;

static int ref_order(const void *a, const void *b) {
    const ref_cand *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->id - y->id;
}

// Top-p, then min-p, over the n candidates (probabilities, in order), and the
// draw with splitmix64 as the sampler seeds it.
static int32_t ref_keep_and_draw(const bn_sampling *p, const ref_cand *c, int32_t n, uint64_t *rng) {
    int32_t keep = n;
    float cum = 0;
    for (int32_t i = 0; i < n && p->top_p < 1; i++)
        if ((cum += c[i].v) >= p->top_p) {
            keep = i + 1;
            break;
        }
    int32_t i = 1;
    while (p->min_p > 0 && i < keep && c[i].v >= p->min_p * c[0].v) i++;
    if (p->min_p > 0) keep = i;
    float mass = 0;
    for (int32_t j = 0; j < keep; j++) mass += c[j].v;
    uint64_t z = (*rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    const float r = (float)(z >> 40) * (1.0f / 16777216.0f) * mass;
    cum = 0;
    for (int32_t j = 0; j < keep; j++)
        if (r < (cum += c[j].v)) return c[j].id;
    return c[keep - 1].id;
}

static int32_t ref_sample(const bn_sampling *p, const float *logits, int32_t V, uint64_t *rng, ref_cand *c) {
    for (int32_t i = 0; i < V; i++) c[i] = (ref_cand){i, logits[i]};
    qsort(c, (size_t)V, sizeof *c, ref_order);
    const int32_t n = p->top_k;
    float max = c[0].v, sum = 0;
    for (int32_t i = 0; i < n; i++) sum += c[i].v = expf((c[i].v - max) / p->temperature);
    for (int32_t i = 0; i < n; i++) c[i].v /= sum;
    return ref_keep_and_draw(p, c, n, rng);
}

// The same for top-k 0 as sampler.c defines it: the softmax summed in id order,
// then the whole row sorted (probability down, id up), top-p, min-p and the
// draw; with neither top-p nor min-p the draw walks the ids in order.
static int32_t ref_sample_all(const bn_sampling *p, const float *logits, int32_t V, uint64_t *rng, ref_cand *c) {
    float max = logits[0], sum = 0;
    for (int32_t i = 1; i < V; i++) max = logits[i] > max ? logits[i] : max;
    for (int32_t i = 0; i < V; i++) sum += c[i].v = expf((logits[i] - max) / p->temperature), c[i].id = i;
    for (int32_t i = 0; i < V; i++) c[i].v /= sum;
    if (p->top_p < 1 || p->min_p > 0) qsort(c, (size_t)V, sizeof *c, ref_order);
    return ref_keep_and_draw(p, c, V, rng);
}

// Top-k 0 sorts only the head of the row: the same tokens as the definition,
// draw for draw, with top-p, min-p, both and neither; on rows of a few likely
// tokens, flat rows, and rows whose tail has probability 0 (a top-p just under 1
// that rounding never reaches: the whole row then).
static void test_all_tokens_is_the_definition(void **state) {
    (void)state;
    enum { V = 20000, DRAWS = 12 };
    float *logits = malloc(sizeof(float) * V), *x = malloc(sizeof(float) * V);
    ref_cand *c = malloc(sizeof(ref_cand) * V);
    const struct { float top_p, min_p, temperature; int shape; } cases[] = {
        {0.9f, 0, 0.8f, 0}, {1, 0.1f, 1, 0}, {0.5f, 0.05f, 0.7f, 1}, {1, 0, 1.2f, 1}, {0.95f, 0, 1, 1},
        {0.99999994f, 0, 1, 2}, {0.7f, 0, 0.5f, 2}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        bn_sampling p = {.temperature = cases[ci].temperature, .top_k = 0, .top_p = cases[ci].top_p,
                         .min_p = cases[ci].min_p, .repeat_penalty = 1, .seed = 40 + ci};
        bn_sampler *s = make(p, V);
        uint64_t rng = p.seed, lr = 9 + ci;
        for (int d = 0; d < DRAWS; d++) {
            for (int i = 0; i < V; i++) {
                const float u = (float)(bn_test_rand(&lr) % 4096) / 4096.f;
                logits[i] = cases[ci].shape == 0 ? u * 8 - (i % 211 ? 6 : 0)   // a few likely tokens
                            : cases[ci].shape == 1 ? u                         // flat
                                                   : (i % 5 ? -200.f : u * 4); // 4/5 of probability 0
            }
            memcpy(x, logits, sizeof(float) * V);
            const int32_t got = bn_sampler_sample(s, x, NULL, 0), want = ref_sample_all(&p, logits, V, &rng, c);
            if (got != want) fail_msg("case %zu, draw %d: sampled %d, the definition %d", ci, d, got, want);
        }
        bn_sampler_free(s);
    }
    free(logits);
    free(x);
    free(c);
}

// With top-k the sampler selects the k best without sorting the vocabulary (a
// running window that skips blocks holding nothing better): the same tokens as
// the definition, draw for draw, ties in the logits included.
static void test_top_k_is_the_definition(void **state) {
    (void)state;
    enum { V = 50000, DRAWS = 60 };
    float *logits = malloc(sizeof(float) * V), *x = malloc(sizeof(float) * V);
    ref_cand *c = malloc(sizeof(ref_cand) * V);
    const int ks[] = {1, 40, 1000};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        bn_sampling p = bn_sampling_default();
        p.top_k = ks[ki];
        p.seed = 77 + ki;
        bn_sampler *s = make(p, V);
        uint64_t rng = p.seed, lr = 5 + ki;
        for (int d = 0; d < DRAWS; d++) {
            for (int i = 0; i < V; i++) // coarse values: many ties
                logits[i] = (float)(bn_test_rand(&lr) % 4096) / 256.f - (float)(i % 3);
            memcpy(x, logits, sizeof(float) * V);
            const int32_t got = bn_sampler_sample(s, x, NULL, 0), want = ref_sample(&p, logits, V, &rng, c);
            if (got != want) fail_msg("top-k %d, draw %d: sampled %d, the definition %d", p.top_k, d, got, want);
        }
        bn_sampler_free(s);
    }
    free(logits);
    free(x);
    free(c);
}

// A sampler that picks among at most k tokens (a top-k, or the argmax) with no
// penalty, or a penalty above 1 over a window that leaves room for k, draws
// from a row's BN_TOP_MAX best entries (a backend's forward_top) the token it
// draws from the whole row, draw for draw: the history's tokens (repeated, and
// some not in the vocabulary) penalized among the entries as in the row. The
// others need the row.
static void test_top_entries_are_enough(void **state) {
    (void)state;
    enum { V = 5000, DRAWS = 150, HIST = 90 };
    float *logits = malloc(sizeof(float) * V), *x = malloc(sizeof(float) * V);
    bn_top top[BN_TOP_MAX];
    // Negative biases on some of the best tokens (one banned) and on tokens far below.
    const bn_logit_bias bias[] = {{0, -3.5f}, {50, -INFINITY}, {100, -0.25f}, {4001, -1.f}, {100, -1.f}};
    const struct { int top_k; float temperature, penalty, frequency, presence; int n_bias; } cases[] = {
        {1, 0.8f, 1, 0, 0, 0},       {40, 0.8f, 1, 0, 0, 0},        {BN_TOP_MAX, 1.2f, 1, 0, 0, 0},
        {40, 0.8f, 1.1f, 0, 0, 0},   {64, 0.7f, 1.5f, 0, 0, 0},     {40, 0, 1.3f, 0, 0, 0},
        {40, 0.8f, 1, 0.5f, 0, 0},   {40, 0.8f, 1, 0, 1.25f, 0},    {40, 0, 1.2f, 0.3f, 0.7f, 0},
        {1, 0.8f, 1, 0, 0, 5},       {40, 0.9f, 1, 0, 0, 5},        {40, 0.8f, 1.1f, 0.2f, 0.4f, 5}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        bn_sampling p = bn_sampling_default();
        p.top_k = cases[ci].top_k;
        p.temperature = cases[ci].temperature;
        p.repeat_penalty = cases[ci].penalty;
        p.frequency_penalty = cases[ci].frequency;
        p.presence_penalty = cases[ci].presence;
        p.logit_bias = bias;
        p.n_logit_bias = (size_t)cases[ci].n_bias;
        p.seed = 21 + ci;
        bn_sampler *a = make(p, V), *b = make(p, V);
        assert_true(bn_sampler_takes_top(b));
        uint64_t lr = 3 + ci;
        int32_t hist[HIST];
        for (int d = 0; d < DRAWS; d++) {
            for (int i = 0; i < V; i++) { // a few likely tokens, penalized or not, over a tail; ties, both signs
                const uint64_t r = bn_test_rand(&lr);
                logits[i] = i % 50 == 0 ? 8.f + (float)(r % 512) / 64.f : (float)(r % 256) / 64.f - 4.f;
            }
            // History: mostly the row's best tokens (the ones the penalty moves), repeats, ids off the vocabulary.
            bn_top_select(logits, V, BN_TOP_MAX, top);
            for (int i = 0; i < HIST; i++) {
                const uint64_t r = bn_test_rand(&lr);
                hist[i] = r % 11 == 0 ? (int32_t)V + 5 : r % 5 == 0 ? (int32_t)(r % V) : top[r % BN_TOP_MAX].id;
            }
            memcpy(x, logits, sizeof(float) * V);
            const int32_t want = bn_sampler_sample(a, x, hist, HIST), got = bn_sampler_sample_top(b, top, hist, HIST);
            if (got != want)
                fail_msg("case %zu, draw %d: %d from the entries, %d from the row", ci, d, got, want);
        }
        bn_sampler_free(a);
        bn_sampler_free(b);
    }
    const bn_logit_bias raise[] = {{7, -1.f}, {9, 0.5f}};
    const struct { int top_k; float temperature, penalty, frequency, presence; int last_n, n_bias; } refused[] = {
        {BN_TOP_MAX + 1, 0.8f, 1, 0, 0, 64, 0}, // more than the entries
        {0, 0.8f, 1, 0, 0, 64, 0},              // every token
        {40, 0.8f, 0.9f, 0, 0, 64, 0},          // a penalty below 1 raises tokens outside the entries
        {40, 0.8f, 1, -0.1f, 0, 64, 0},         // so does a negative frequency penalty
        {40, 0.8f, 1, 0, -0.1f, 64, 0},         // or presence penalty
        {40, 0.8f, 1, 0, 0, 64, 2},             // or a positive bias
        {65, 0.8f, 1.1f, 0, 0, 64, 0},          // window + top-k past BN_TOP_MAX
        {64, 0.8f, 1, 0, 0.1f, 64, 1},          // window + biases + top-k past it
        {40, 0.8f, 1.1f, 0, 0, 100, 0}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        bn_sampling p = bn_sampling_default();
        p.top_k = refused[i].top_k;
        p.temperature = refused[i].temperature;
        p.repeat_penalty = refused[i].penalty;
        p.frequency_penalty = refused[i].frequency;
        p.presence_penalty = refused[i].presence;
        p.repeat_last_n = refused[i].last_n;
        p.logit_bias = raise;
        p.n_logit_bias = (size_t)refused[i].n_bias;
        bn_sampler *s = make(p, V);
        if (bn_sampler_takes_top(s)) fail_msg("case %zu takes the entries", i);
        bn_sampler_free(s);
    }
    bn_sampler *s = make(bn_sampling_greedy(), V); // greedy: the argmax, the first entry
    assert_true(bn_sampler_takes_top(s));
    bn_sampler_free(s);
    s = make(bn_sampling_default(), 30); // a top-k as large as the vocabulary: the row itself
    assert_false(bn_sampler_takes_top(s));
    bn_sampler_free(s);
    free(logits);
    free(x);
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

// The penalties and biases against their definition (llama.cpp's logit-bias and
// penalties samplers), written out here: each bias added to its token (repeats
// add up); then each token seen c > 0 times in the window divided by the
// repeat penalty when positive, else multiplied, and c * frequency + presence
// taken off. Greedy, so the row comes back adjusted in place.
static void test_penalties_definition(void **state) {
    (void)state;
    enum { V = 300, HIST = 120, ROUNDS = 40 };
    float x[V], want[V];
    int32_t hist[HIST];
    uint64_t lr = 99;
    const bn_logit_bias bias[] = {{3, 2.5f}, {17, -100.f}, {3, -0.5f}, {299, 1.f}, {0, -INFINITY}};
    for (int round = 0; round < ROUNDS; round++) {
        bn_sampling p = bn_sampling_greedy();
        p.repeat_penalty = round % 3 == 0 ? 1.f : round % 3 == 1 ? 1.3f : 0.8f;
        p.frequency_penalty = (float)(round % 5) * 0.4f - 0.8f;
        p.presence_penalty = (float)(round % 7) * 0.3f - 0.9f;
        p.repeat_last_n = round % 4 == 0 ? 0 : round % 5 == 3 ? INT_MAX : 16 + round; // INT_MAX: all of it
        p.logit_bias = bias;
        p.n_logit_bias = round % 2 ? 5 : 0;
        for (int i = 0; i < V; i++) x[i] = (float)(bn_test_rand(&lr) % 2001) / 100.f - 10.f;
        for (int i = 0; i < HIST; i++) { // few distinct tokens, so counts above 1; some outside the vocabulary
            const uint64_t r = bn_test_rand(&lr);
            hist[i] = r % 13 == 0 ? -4 : r % 17 == 0 ? V + 1 : (int32_t)(r % 40);
        }
        memcpy(want, x, sizeof x);
        for (size_t b = 0; b < p.n_logit_bias; b++) want[bias[b].token] += bias[b].bias;
        const int first = p.repeat_last_n < HIST ? HIST - p.repeat_last_n : 0;
        int count[V] = {0};
        for (int i = first; i < HIST; i++)
            if (hist[i] >= 0 && hist[i] < V) count[hist[i]]++;
        for (int t = 0; t < V; t++) {
            if (!count[t]) continue;
            want[t] = want[t] <= 0 ? want[t] * p.repeat_penalty : want[t] / p.repeat_penalty;
            want[t] -= (float)count[t] * p.frequency_penalty + p.presence_penalty;
        }
        bn_sampler *s = make(p, V);
        assert_int_equal(bn_sampler_is_greedy(s), p.repeat_penalty == 1.f && p.frequency_penalty == 0 &&
                                                       p.presence_penalty == 0 && p.n_logit_bias == 0);
        const int32_t got = bn_sampler_sample(s, x, hist, HIST);
        for (int t = 0; t < V; t++)
            if (memcmp(&x[t], &want[t], sizeof(float)))
                fail_msg("round %d, token %d (count %d): %g, want %g", round, t, count[t], x[t], want[t]);
        assert_int_equal(got, bn_argmax(want, V));
        bn_sampler_free(s);
    }
}

// A bias of +100 makes its token the greedy pick, -inf bans it; bad biases are
// refused, a token outside the vocabulary when the sampler is made.
static void test_logit_bias(void **state) {
    (void)state;
    bn_sampling p = bn_sampling_greedy();
    bn_logit_bias force = {4, 100.f}, ban = {1, -INFINITY};
    p.logit_bias = &force;
    p.n_logit_bias = 1;
    bn_sampler *s = make(p, 6);
    float x[] = {0.1f, 9.0f, -3.0f, 1.9f, -20.0f, 0.0f};
    assert_int_equal(bn_sampler_sample(s, x, NULL, 0), 4);
    bn_sampler_free(s);
    p.logit_bias = &ban;
    s = make(p, 6);
    float y[] = {0.1f, 9.0f, -3.0f, 1.9f, -20.0f, 0.0f};
    assert_int_equal(bn_sampler_sample(s, y, NULL, 0), 3);
    bn_sampler_free(s);
    bn_error err;
    bn_sampler *none = NULL;
    const bn_logit_bias bad[] = {{2, NAN}, {2, INFINITY}, {-1, 1.f}, {2, 2e9f}, {2, -3e38f}};
    for (int i = 0; i < 5; i++) {
        p.logit_bias = &bad[i];
        assert_int_equal(bn_sampling_validate(&p, &err), -1);
        assert_non_null(strstr(err.msg, "logit bias"));
    }
    const bn_logit_bias outside = {6, 1.f};
    p.logit_bias = &outside;
    assert_int_equal(bn_sampler_create(&p, 6, MAX_HISTORY, &none, &err), -1);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    assert_null(none);
    p.logit_bias = NULL; // entries without an array
    assert_int_equal(bn_sampling_validate(&p, &err), -1);
    p = bn_sampling_default();
    p.frequency_penalty = NAN;
    assert_int_equal(bn_sampling_validate(&p, &err), -1);
    p = bn_sampling_default();
    p.presence_penalty = INFINITY;
    assert_int_equal(bn_sampling_validate(&p, &err), -1);
    p.presence_penalty = -2e9f; // finite, but enough of them add up to an infinite logit
    assert_int_equal(bn_sampling_validate(&p, &err), -1);
}

// Every token banned (-inf biases): no token, -1, whichever way it would draw
// (greedy, top-k, every token, the best entries); one left unbanned is picked.
static void test_all_banned(void **state) {
    (void)state;
    enum { V = 6 };
    bn_logit_bias ban[V];
    for (int i = 0; i < V; i++) ban[i] = (bn_logit_bias){i, -INFINITY};
    const struct { float temperature; int top_k; } ways[] = {{0, 40}, {0.8f, 2}, {0.8f, 0}};
    for (int n_ban = V; n_ban >= V - 1; n_ban--) {
        const int32_t want = n_ban == V ? -1 : V - 1; // the last token is the one left
        for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
            bn_sampling p = bn_sampling_default();
            p.temperature = ways[w].temperature;
            p.top_k = ways[w].top_k;
            p.logit_bias = ban;
            p.n_logit_bias = (size_t)n_ban;
            bn_sampler *s = make(p, V);
            float x[V] = {3, 1, 4, 1, 5, -9};
            assert_int_equal(bn_sampler_sample(s, x, NULL, 0), want);
            if (bn_sampler_takes_top(s)) {
                bn_top top[BN_TOP_MAX];
                float y[V] = {3, 1, 4, 1, 5, -9};
                bn_top_select(y, V, V, top);
                for (int e = V; e < BN_TOP_MAX; e++) top[e] = (bn_top){-1, -INFINITY}; // no more tokens
                assert_int_equal(bn_sampler_sample_top(s, top, NULL, 0), want);
            }
            bn_sampler_free(s);
        }
    }
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
        cmocka_unit_test(test_same_seed_same_tokens), cmocka_unit_test(test_top_k_is_the_definition),
        cmocka_unit_test(test_all_tokens_head_only),  cmocka_unit_test(test_all_tokens_is_the_definition),
        cmocka_unit_test(test_top_entries_are_enough),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_penalties_definition),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_all_banned),
        cmocka_unit_test(test_invalid_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
