#include "sampler.h"

#include <math.h>
#include <stdlib.h>

#include "argmax.h"

typedef struct bn_candidate {
    int32_t id;
    float logit; // after penalty and temperature; then the probability
} bn_candidate;

struct bn_sampler {
    bn_sampling p;
    int32_t n_vocab;
    uint64_t rng;
    bn_candidate *cand; // n_vocab, allocated once
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
    return 0;
}

int bn_sampler_create(const bn_sampling *p, int32_t n_vocab, bn_sampler **out, bn_error *err) {
    *out = NULL;
    if (bn_sampling_validate(p, err)) return -1;
    if (n_vocab <= 0) return bn_errorf(err, "sampler: empty vocabulary");
    bn_sampler *s = calloc(1, sizeof *s);
    if (!s || !(s->cand = malloc((size_t)n_vocab * sizeof *s->cand))) {
        free(s);
        return bn_errorf(err, "out of memory for the sampler");
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed;
    *out = s;
    return 0;
}

void bn_sampler_free(bn_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s);
}

bool bn_sampler_is_greedy(const bn_sampler *s) {
    return s->p.temperature <= 0 && s->p.repeat_penalty == 1.0f;
}

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

// The CTRL-paper penalty as llama.cpp applies it: divide positive logits,
// multiply negative ones, once per distinct token in the window.
static void apply_repeat_penalty(bn_sampler *s, float *logits, const int32_t *hist, size_t n) {
    float pen = s->p.repeat_penalty;
    size_t start = n > (size_t)s->p.repeat_last_n ? n - (size_t)s->p.repeat_last_n : 0;
    for (size_t i = start; i < n; i++) {
        int32_t id = hist[i];
        if (id < 0 || id >= s->n_vocab) continue;
        bool seen = false; // a token repeated in the window is penalised once
        for (size_t j = start; j < i && !seen; j++) seen = hist[j] == id;
        if (seen) continue;
        logits[id] = logits[id] > 0 ? logits[id] / pen : logits[id] * pen;
    }
}

static int by_logit_desc(const void *a, const void *b) {
    const bn_candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id; // stable order for equal logits: determinism across libcs
}

// Keeps the k best candidates (sorted, best first) out of n; returns the count.
static int32_t keep_top_k(bn_candidate *c, int32_t n, int32_t k) {
    if (k <= 0 || k > n) k = n;
    if (k < n) {
        // Partial selection: a running sorted window of k (k is small in practice).
        qsort(c, (size_t)k, sizeof *c, by_logit_desc);
        for (int32_t i = k; i < n; i++) {
            if (by_logit_desc(&c[i], &c[k - 1]) >= 0) continue;
            int32_t j = k - 1;
            bn_candidate x = c[i];
            while (j > 0 && by_logit_desc(&x, &c[j - 1]) < 0) {
                c[j] = c[j - 1];
                j--;
            }
            c[j] = x;
        }
        return k;
    }
    qsort(c, (size_t)n, sizeof *c, by_logit_desc);
    return n;
}

int32_t bn_sampler_sample(bn_sampler *s, float *logits, const int32_t *history, size_t n_history) {
    if (s->p.repeat_penalty != 1.0f && history) apply_repeat_penalty(s, logits, history, n_history);
    if (s->p.temperature <= 0) return bn_argmax(logits, s->n_vocab);

    bn_candidate *c = s->cand;
    for (int32_t i = 0; i < s->n_vocab; i++) c[i] = (bn_candidate){i, logits[i]};
    int32_t n = keep_top_k(c, s->n_vocab, s->p.top_k);

    // Softmax over the survivors at the given temperature (c[0] is the max).
    float max = c[0].logit, sum = 0;
    for (int32_t i = 0; i < n; i++) {
        c[i].logit = expf((c[i].logit - max) / s->p.temperature);
        sum += c[i].logit;
    }
    for (int32_t i = 0; i < n; i++) c[i].logit /= sum;

    // Top-p: the smallest prefix whose mass reaches top_p. Min-p: drop tokens
    // below min_p times the best probability. Both keep at least one token.
    int32_t keep = n;
    if (s->p.top_p < 1.0f) {
        float cum = 0;
        for (int32_t i = 0; i < n; i++) {
            cum += c[i].logit;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0) {
        float floor_p = s->p.min_p * c[0].logit;
        int32_t i = 1;
        while (i < keep && c[i].logit >= floor_p) i++;
        keep = i;
    }

    float mass = 0;
    for (int32_t i = 0; i < keep; i++) mass += c[i].logit;
    float r = next_unit(&s->rng) * mass, cum = 0;
    for (int32_t i = 0; i < keep; i++) {
        cum += c[i].logit;
        if (r < cum) return c[i].id;
    }
    return c[keep - 1].id; // rounding left r just past the end
}
