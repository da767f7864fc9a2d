#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "argmax.h"
#include "top.h"

#define BN_SAMPLING_MAX_ADJUST 1e9f // the largest penalty or logit bias, in size

typedef bn_top bn_candidate; // logit: after penalty and temperature; then the probability

struct bn_sampler {
    bn_sampling p;      // p.logit_bias is the caller's: bias is the copy
    int32_t n_vocab;
    uint64_t rng;
    bn_candidate *cand; // n_vocab, allocated once
    bn_logit_bias *bias;
    size_t n_bias;
    int32_t *window; // the penalties' window, sorted
    size_t window_cap; // min(repeat_last_n, the longest history it is given)
};

bn_sampling bn_sampling_default(void) {
    return (bn_sampling){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                         .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 42};
}

bn_sampling bn_sampling_greedy(void) {
    bn_sampling p = bn_sampling_default();
    p.temperature = 0;
    return p;
}

int bn_sampling_validate(const bn_sampling *p, bn_error *err) {
    if (!isfinite(p->temperature) || p->temperature < 0)
        return bn_errorf(err, "temperature must be >= 0 (got %g)", p->temperature);
    if (!(p->top_p > 0 && p->top_p <= 1)) return bn_errorf(err, "top-p must be in (0, 1] (got %g)", p->top_p);
    if (!(p->min_p >= 0 && p->min_p < 1)) return bn_errorf(err, "min-p must be in [0, 1) (got %g)", p->min_p);
    if (!(p->repeat_penalty > 0) || !isfinite(p->repeat_penalty))
        return bn_errorf(err, "repeat penalty must be > 0 (got %g)", p->repeat_penalty);
    if (p->top_k < 0) return bn_errorf(err, "top-k must be >= 0 (got %d)", p->top_k);
    if (p->repeat_last_n < 0) return bn_errorf(err, "repeat-last-n must be >= 0");
    // Bounded, so that no penalty or bias adds up to an infinite logit.
    if (!(fabsf(p->frequency_penalty) <= BN_SAMPLING_MAX_ADJUST))
        return bn_errorf(err, "frequency penalty must be a number in [-1e9, 1e9] (got %g)", p->frequency_penalty);
    if (!(fabsf(p->presence_penalty) <= BN_SAMPLING_MAX_ADJUST))
        return bn_errorf(err, "presence penalty must be a number in [-1e9, 1e9] (got %g)", p->presence_penalty);
    if (p->n_logit_bias && !p->logit_bias)
        return bn_errorf(err, "logit bias: %zu entries but no array", p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const bn_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0) return bn_errorf(err, "logit bias: token %d is not a token id", (int)b->token);
        if (!(fabsf(b->bias) <= BN_SAMPLING_MAX_ADJUST || b->bias == -INFINITY))
            return bn_errorf(err, "logit bias of token %d must be a number in [-1e9, 1e9] or -inf (got %g)",
                             (int)b->token, b->bias);
    }
    return 0;
}

static bool has_penalties(const bn_sampling *p) {
    return p->repeat_penalty != 1.0f || p->frequency_penalty != 0 || p->presence_penalty != 0;
}

int bn_sampler_create(const bn_sampling *p, int32_t n_vocab, size_t max_history, bn_sampler **out,
                      bn_error *err) {
    *out = NULL;
    if (bn_sampling_validate(p, err)) return -1;
    if (n_vocab <= 0) return bn_errorf(err, "sampler: empty vocabulary");
    for (size_t i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].token >= n_vocab)
            return bn_errorf(err, "logit bias: token %d is outside the vocabulary (0..%d)",
                             (int)p->logit_bias[i].token, (int)n_vocab - 1);
    size_t window = has_penalties(p) ? (size_t)p->repeat_last_n : 0; // the most tokens it sorts
    if (window > max_history) window = max_history;
    bn_sampler *s = calloc(1, sizeof *s);
    if (!s || !(s->cand = malloc((size_t)n_vocab * sizeof *s->cand)) ||
        (p->n_logit_bias && !(s->bias = malloc(p->n_logit_bias * sizeof *s->bias))) ||
        (window && !(s->window = malloc(window * sizeof *s->window)))) {
        if (s) free(s->cand), free(s->bias);
        free(s);
        return bn_errorf(err, "out of memory for the sampler");
    }
    s->window_cap = window;
    s->p = *p;
    s->p.logit_bias = NULL;
    s->n_bias = p->n_logit_bias;
    if (s->n_bias) memcpy(s->bias, p->logit_bias, s->n_bias * sizeof *s->bias);
    s->n_vocab = n_vocab;
    s->rng = p->seed;
    *out = s;
    return 0;
}

void bn_sampler_free(bn_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->bias);
    free(s->window);
    free(s);
}

bool bn_sampling_is_greedy(const bn_sampling *p) {
    return p->temperature <= 0 && !has_penalties(p) && !p->n_logit_bias;
}

bool bn_sampler_is_greedy(const bn_sampler *s) { return bn_sampling_is_greedy(&s->p); }

// splitmix64: tiny, well mixed, and identical everywhere.
static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static float next_unit(uint64_t *state) { // [0, 1) with 24 bits
    return (float)(next_u64(state) >> 40) * (1.0f / 16777216.0f);
}

// The penalties as llama.cpp's penalties sampler applies them: the CTRL
// paper's (divide positive logits, multiply negative ones), then OpenAI's
// frequency and presence penalties, once per distinct token in the window.
// The window: the last repeat_last_n tokens of a history of n.
static size_t penalty_start(const bn_sampler *s, size_t n) {
    return n > (size_t)s->p.repeat_last_n ? n - (size_t)s->p.repeat_last_n : 0;
}

static float penalized(const bn_sampler *s, float x, int count) {
    x = x > 0 ? x / s->p.repeat_penalty : x * s->p.repeat_penalty;
    return x - ((float)count * s->p.frequency_penalty + s->p.presence_penalty);
}

// A row's logits: the whole row (by id), or its best entries top[0..BN_TOP_MAX).
typedef struct logits_view {
    float *row;
    bn_top *top;
} logits_view;

// Token id's logit in v; NULL when it is not among the entries (it is then below
// all of them, and the only changes bn_sampler_takes_top allows lower it).
static float *logit_of(logits_view v, int32_t id) {
    if (v.row) return &v.row[id];
    for (int e = 0; e < BN_TOP_MAX; e++)
        if (v.top[e].id == id) return &v.top[e].logit;
    return NULL;
}

static int id_order(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

// Each distinct token of the window moved once, by its count: the window's ids
// of the vocabulary sorted, so that a request's window of thousands of tokens
// costs a sort, not a scan of the window per token. The order the tokens are
// moved in does not change any of them.
static void apply_penalties(bn_sampler *s, logits_view v, const int32_t *hist, size_t n) {
    const size_t start = penalty_start(s, n), first = n - start > s->window_cap ? n - s->window_cap : start;
    size_t m = 0;
    for (size_t i = first; i < n; i++)
        if (hist[i] >= 0 && hist[i] < s->n_vocab) s->window[m++] = hist[i];
    if (m > 1) qsort(s->window, m, sizeof *s->window, id_order);
    for (size_t i = 0, j; i < m; i = j) {
        for (j = i + 1; j < m && s->window[j] == s->window[i]; j++) {}
        float *x = logit_of(v, s->window[i]);
        if (x) *x = penalized(s, *x, (int)(j - i));
    }
}

// The logit biases, then the penalties.
static void adjust_logits(bn_sampler *s, logits_view v, const int32_t *hist, size_t n) {
    for (size_t i = 0; i < s->n_bias; i++) {
        float *x = logit_of(v, s->bias[i].token);
        if (x) *x += s->bias[i].bias;
    }
    if (has_penalties(&s->p) && hist) apply_penalties(s, v, hist, n);
}

// The draw from the first `keep` candidates (probabilities, best first).
static int32_t draw(bn_sampler *s, const bn_candidate *c, int32_t keep) {
    float mass = 0;
    for (int32_t i = 0; i < keep; i++) mass += c[i].logit;
    float r = next_unit(&s->rng) * mass, cum = 0;
    for (int32_t i = 0; i < keep; i++) {
        cum += c[i].logit;
        if (r < cum) return c[i].id;
    }
    return c[keep - 1].id; // rounding left r just past the end
}

// Top-p, then min-p, over n candidates sorted best first (probabilities): how
// many survive. Top-p keeps the smallest prefix whose mass reaches top_p; min-p
// drops those below min_p times the best. Both keep at least one. *reached:
// whether the prefix's mass reached top_p among these n.
static int32_t keep_top_p_min_p(const bn_sampler *s, const bn_candidate *c, int32_t n, bool *reached) {
    int32_t keep = n;
    *reached = s->p.top_p >= 1.0f;
    if (s->p.top_p < 1.0f) {
        float cum = 0;
        for (int32_t i = 0; i < n; i++) {
            cum += c[i].logit;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                *reached = true;
                break;
            }
        }
    }
    if (s->p.min_p > 0) {
        const float floor_p = s->p.min_p * c[0].logit;
        int32_t i = 1;
        while (i < keep && c[i].logit >= floor_p) i++;
        keep = i;
    }
    return keep;
}

// top_k == 0: every token takes part in the softmax, but only its head can be
// kept, so only the head is sorted. The sum runs over the tokens in id order.
// The candidates with probability at least theta, sorted, are a prefix of the
// full order; theta starts at min-p's floor (nothing below it is kept) or half
// the best, and halves (down to the next probability there is) until the
// prefix's mass reaches top_p, or a quarter of the vocabulary or every token of
// positive probability is in (then all of it). With neither top-p nor min-p
// every token is kept and the draw walks them in id order.
static int32_t sample_all(bn_sampler *s, const float *logits) {
    const int32_t V = s->n_vocab;
    const float T = s->p.temperature;
    float max = logits[0];
    for (int32_t i = 1; i < V; i++)
        if (logits[i] > max) max = logits[i];
    if (max == -INFINITY) return -1; // every token banned
    bn_candidate *c = s->cand;
    float sum = 0;
    for (int32_t i = 0; i < V; i++) {
        c[i] = (bn_candidate){i, expf((logits[i] - max) / T)};
        sum += c[i].logit;
    }
    for (int32_t i = 0; i < V; i++) c[i].logit /= sum;
    if (s->p.top_p >= 1.0f && s->p.min_p <= 0) return draw(s, c, V);
    const float best = 1.0f / sum; // expf(0) / sum
    float theta = s->p.min_p > 0 ? s->p.min_p * best : 0.5f * best;
    for (;;) {
        int32_t n = 0; // the candidates at or above theta to the front
        float below = 0; // the largest probability left behind
        for (int32_t i = 0; i < V; i++) {
            if (c[i].logit >= theta) {
                const bn_candidate x = c[i];
                c[i] = c[n];
                c[n++] = x;
            } else if (c[i].logit > below) {
                below = c[i].logit;
            }
        }
        const bool all = n > V / 4 || s->p.min_p > 0 || below == 0;
        if (all && s->p.min_p <= 0) n = V;
        qsort(c, (size_t)n, sizeof *c, bn_top_qsort_order);
        bool reached;
        const int32_t keep = keep_top_p_min_p(s, c, n, &reached);
        if (reached || all) return draw(s, c, keep);
        theta = 0.5f * theta < below ? 0.5f * theta : below; // at least one more token next time
    }
}

// Softmax over the n best, sorted (c[0] the max), at the temperature; then
// top-p, min-p and the draw.
static int32_t sample_sorted(bn_sampler *s, bn_candidate *c, int32_t n) {
    float max = c[0].logit, sum = 0;
    for (int32_t i = 0; i < n; i++) {
        c[i].logit = expf((c[i].logit - max) / s->p.temperature);
        sum += c[i].logit;
    }
    for (int32_t i = 0; i < n; i++) c[i].logit /= sum;
    bool reached;
    return draw(s, c, keep_top_p_min_p(s, c, n, &reached));
}

int bn_sampler_clone(const bn_sampler *s, bn_sampler **out, bn_error *err) {
    bn_sampling p = s->p;
    p.logit_bias = s->bias, p.n_logit_bias = s->n_bias;
    if (bn_sampler_create(&p, s->n_vocab, s->window_cap, out, err)) return -1;
    (*out)->rng = s->rng;
    return 0;
}

uint64_t bn_sampler_rng(const bn_sampler *s) { return s->rng; }
void bn_sampler_set_rng(bn_sampler *s, uint64_t rng) { s->rng = rng; }

int32_t bn_sampler_sample(bn_sampler *s, float *logits, const int32_t *history, size_t n_history) {
    adjust_logits(s, (logits_view){logits, NULL}, history, n_history);
    // Each way checks the best logit it finds: -inf means every token is banned.
    if (s->p.temperature <= 0) {
        const int32_t best = bn_argmax(logits, s->n_vocab);
        return logits[best] == -INFINITY ? -1 : best;
    }
    if (s->p.top_k <= 0 || s->p.top_k >= s->n_vocab) return sample_all(s, logits);
    bn_top_select(logits, s->n_vocab, s->p.top_k, s->cand);
    return s->cand[0].logit == -INFINITY ? -1 : sample_sorted(s, s->cand, s->p.top_k);
}

// The k tokens a draw picks from (the top-k, or the argmax) are among a row's
// BN_TOP_MAX best when the biases and penalties only lower logits (biases <= 0,
// repeat penalty >= 1, frequency and presence penalties >= 0) and touch at most
// BN_TOP_MAX - k of them (the biased tokens and the window's distinct ones):
// the rest of the best then stay ahead of every token outside them, whose
// logits never rise.
bool bn_sampler_takes_top(const bn_sampler *s) {
    const int32_t k = s->p.temperature > 0 ? s->p.top_k : 1;
    if (k <= 0 || k >= s->n_vocab) return false;
    if (s->p.repeat_penalty < 1.0f || s->p.frequency_penalty < 0 || s->p.presence_penalty < 0) return false;
    int64_t lowered = has_penalties(&s->p) ? s->p.repeat_last_n : 0;
    for (size_t i = 0; i < s->n_bias; i++, lowered++)
        if (s->bias[i].bias > 0) return false;
    return lowered + k <= BN_TOP_MAX;
}

int32_t bn_sampler_sample_top(bn_sampler *s, bn_top *top, const int32_t *history, size_t n_history) {
    if (s->n_bias || (has_penalties(&s->p) && history)) { // on the entries, then their order again
        adjust_logits(s, (logits_view){NULL, top}, history, n_history);
        qsort(top, BN_TOP_MAX, sizeof *top, bn_top_qsort_order);
        if (top[0].logit == -INFINITY) return -1; // every entry banned, and so every token below them
    }
    if (s->p.temperature <= 0) return top[0].id; // bn_argmax's pick: the first of the largest
    return sample_sorted(s, top, s->p.top_k);
}
