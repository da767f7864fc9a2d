// top.h - the best few tokens of a row of logits, in the order the sampler keeps
// them: logit down, the lower id first among equal logits (-0 equal to +0).
// Logits are finite (a NaN has no place in this order).
//
// One definition for the places that take a top-k: the sampler (sampler.c), the
// CPU reference of a backend's forward_top (backend.h), and the CUDA kernel that
// computes it on the device (cuda/top_rows.cu), so a sampled step of a batch can
// move BN_TOP_MAX entries a row across the bus instead of the whole row, and draw
// the same token. A leaf header at the bottom floor, like argmax.h.
#ifndef BN_TOP_H
#define BN_TOP_H

#include <stdint.h>

// Entries forward_top gives a row: enough for a top-k of 64 with a repetition
// penalty over the last 64 tokens (sampler.c: bn_sampler_takes_top).
#define BN_TOP_MAX 128

typedef struct bn_top {
    int32_t id;
    float logit; // the sampler reuses the field for the probability
} bn_top;

// < 0 when x comes first, > 0 when y does (0: the same entry).
static inline int bn_top_order(const bn_top *x, const bn_top *y) {
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

// The same order as a qsort comparator.
static inline int bn_top_qsort_order(const void *x, const void *y) {
    return bn_top_order((const bn_top *)x, (const bn_top *)y);
}

// The k best of x[0..n) (0 < k <= n) into top[0..k), in that order, without
// sorting the row: a running window of k that skips blocks of 64 holding
// nothing better than its last entry.
void bn_top_select(const float *x, int32_t n, int32_t k, bn_top *top);

// The softmax's denominator for a row whose largest logit is best: the sum of
// e^(x[i] - best) in index order, in double, leaving out the terms under
// e^-BN_TOP_EXP_FLOOR (all n of them less than 1e-12 of a sum that is 1 or
// more, for any n below 235,000). It stops at the first partial sum over limit and returns it: as the
// terms are positive, the whole sum is over limit exactly when that happens, so
// the answer to "at most limit?" does not depend on where it stops. A draft's
// p-min test (core/draft.c) asks it of a row, or takes it from a backend's
// forward_top (limit INFINITY there).
#define BN_TOP_EXP_FLOOR 40
double bn_top_exp_sum(const float *x, int32_t n, float best, double limit);

#endif
