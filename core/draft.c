// draft.c - a draft model's greedy drafts (draft.h).
#include "draft.h"

#include <math.h>
#include <string.h>

#include "argmax.h"

int bn_draft_run(const bn_opened *o, int32_t n_vocab, bn_draft_seq *d, const int32_t *text, int n, int max,
                 float p_min, float *row, int32_t *out, bn_error *err) {
    // The start it shares with text, short of text's last token (fed again for its row).
    int k = 0;
    const int most = d->n_past < n - 1 ? d->n_past : n - 1;
    while (k < most && d->hist[k] == text[k]) k++;
    d->n_hist = d->n_past = k;
    if (max > d->n_ctx - n + 1) max = d->n_ctx - n + 1; // the last drafted token is not fed
    if (max <= 0) return 0;
    memcpy(d->hist + k, text + k, (size_t)(n - k) * sizeof *text);
    d->n_hist = n;
    const bool argmax = p_min <= 0 && o->ops->forward_argmax;
    int drafted = 0;
    while (drafted < max) {
        const int32_t *toks = d->hist + d->n_past, *pos = d->pos + d->n_past, *seq = d->seq ? d->seq + d->n_past : NULL;
        const int m = d->n_hist - d->n_past;
        int32_t best;
        if (argmax ? o->ops->forward_argmax(o->be, toks, pos, seq, m, &best, err)
                   : o->ops->forward(o->be, toks, pos, seq, m, row, false, err))
            return -1;
        d->n_past = d->n_hist;
        if (!argmax) {
            best = bn_argmax(row, n_vocab);
            double sum = 0; // the softmax's denominator over e^(logit - max)
            for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)row[i] - row[best]);
            if (1.0 / sum < p_min) break;
        }
        out[drafted++] = best;
        d->hist[d->n_hist++] = best;
    }
    return drafted;
}

void bn_draft_missed(bn_draft_backoff *b) {
    b->idle = b->misses < 4 ? 1 << b->misses : BN_DRAFT_IDLE_MAX;
    b->misses++;
}

bool bn_draft_idles(bn_draft_backoff *b) {
    if (b->idle <= 0) return false;
    b->idle--;
    return true;
}
