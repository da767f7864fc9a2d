// draft.c - a draft model's drafts and their back-off (draft.h).
#include "draft.h"

#include <math.h>
#include <string.h>

#include "argmax.h"

// The probability of row's likeliest token (its softmax over all n).
static double top_probability(const float *row, int32_t n) {
    const float best = row[bn_argmax(row, n)];
    double sum = 0; // the softmax's denominator over e^(logit - best)
    for (int32_t i = 0; i < n; i++) sum += exp((double)row[i] - best);
    return 1.0 / sum;
}

// The draft itself (bn_draft_step, past the back-off and the sampler's copy):
// smp NULL picks the likeliest token.
static int draft_run(const bn_opened *o, int32_t n_vocab, bn_draft_seq *d, const int32_t *text, int n, int max,
                     float p_min, bn_sampler *smp, float *row, int32_t *out, bn_error *err) {
    // The start it shares with text, short of text's last token (fed again for its row).
    int k = 0;
    const int most = d->n_past < n - 1 ? d->n_past : n - 1;
    while (k < most && d->hist[k] == text[k]) k++;
    d->n_hist = d->n_past = k;
    if (max > d->n_ctx - n + 1) max = d->n_ctx - n + 1; // the last drafted token is not fed
    if (max <= 0) return 0;
    memcpy(d->hist + k, text + k, (size_t)(n - k) * sizeof *text);
    d->n_hist = n;
    const bool argmax = p_min <= 0 && !smp && o->ops->forward_argmax;
    const bool top = p_min <= 0 && smp && bn_sampler_takes_top(smp) && o->ops->forward_top;
    int drafted = 0;
    while (drafted < max) {
        const int32_t *toks = d->hist + d->n_past, *pos = d->pos + d->n_past, *seq = d->seq;
        const int m = d->n_hist - d->n_past;
        for (int i = 0; d->seq && i < m; i++) d->seq[i] = d->slot;
        int32_t id = -1;
        bn_top best[BN_TOP_MAX];
        if (argmax ? o->ops->forward_argmax(o->be, toks, pos, seq, m, &id, err)
            : top  ? o->ops->forward_top(o->be, toks, pos, seq, m, best, err)
                   : o->ops->forward(o->be, toks, pos, seq, m, row, false, err))
            return -1;
        d->n_past = d->n_hist;
        if (top) {
            id = bn_sampler_sample_top(smp, best, d->hist, (size_t)d->n_hist);
        } else if (!argmax) {
            if (p_min > 0 && top_probability(row, n_vocab) < p_min) break;
            id = smp ? bn_sampler_sample(smp, row, d->hist, (size_t)d->n_hist) : bn_argmax(row, n_vocab);
        }
        if (id < 0) break;
        out[drafted++] = id;
        d->hist[d->n_hist++] = id;
    }
    return drafted;
}

static void missed(bn_draft_backoff *b) {
    b->idle = b->misses < 4 ? 1 << b->misses : BN_DRAFT_IDLE_MAX;
    b->misses++;
}

void bn_draft_judge(bn_draft_backoff *b, bool gave_token) {
    if (gave_token) b->misses = 0;
    else missed(b);
}

int bn_draft_step(const bn_opened *o, int32_t n_vocab, bn_draft_seq *d, bn_draft_backoff *b, bn_sampler **copy,
                  const bn_sampler *smp, const int32_t *text, int n, int max, float p_min, float *row, int32_t *out,
                  bn_error *err) {
    if (b->idle > 0) {
        b->idle--;
        return 0;
    }
    const bool sampled = !bn_sampler_is_greedy(smp);
    if (sampled && !*copy && bn_sampler_clone(smp, copy, err)) return -1;
    if (sampled) bn_sampler_set_rng(*copy, bn_sampler_rng(smp));
    const int k = draft_run(o, n_vocab, d, text, n, max, p_min, sampled ? *copy : NULL, row, out, err);
    if (k == 0) missed(b);
    return k;
}
