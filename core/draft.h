// draft.h - a draft model's drafts for speculative decoding (bitnet.h:
// bn_session_set_draft, bn_batch_set_draft): a smaller model with the same
// vocabulary guesses the next tokens, picking as the generation does, and the
// main model verifies them in one pass as it verifies prompt lookup's (lookup.h).
#ifndef BN_DRAFT_H
#define BN_DRAFT_H

#include <stdint.h>

#include "engine_internal.h"
#include "sampler.h"

// One sequence of the draft model: the tokens it was fed and last drafted,
// and how many of them are in its KV cache.
typedef struct bn_draft_seq {
    int32_t *hist;      // n_ctx + 1
    int n_hist, n_past; // hist[0..n_past) in the KV cache
    const int32_t *pos; // pos[i] = i, n_ctx of them
    int32_t *seq;       // room for n_ctx sequence ids, filled with slot for each call (NULL: the backend's only one)
    int slot;
    int n_ctx;
} bn_draft_seq;

// A draft costs the draft model's steps: after a draft that gave no token
// (refused, or none above p_min) the next 1, 2, 4, ... BN_DRAFT_IDLE_MAX steps go
// without one, until one gives a token again.
#define BN_DRAFT_IDLE_MAX 16
typedef struct bn_draft_backoff {
    int misses; // drafts in a row that gave no token
    int idle;   // steps left to go without a draft
} bn_draft_backoff;
// A verifying pass of drafted tokens ended: whether it gave a token (took one
// or more of them) resets the misses, or counts one.
void bn_draft_judge(bn_draft_backoff *b, bool gave_token);

// A step's draft for a sequence of the main model: up to max tokens into out,
// drafted by backend o (the draft model) after text[0..n), whose last token is
// the one pending; none while the back-off b idles, and a draft of no token
// counts a miss. The sequence keeps the start of its KV cache that text shares
// (a refused draft is dropped there), feeds the rest in one call, then drafts a
// token a step at a time while its likeliest token's probability is at least
// p_min. The token is its likeliest where smp, the main model's sampler, is
// greedy; else what *copy samples from its row with the text so far: a clone of
// smp (made at the first such draft; the caller frees it) given smp's random
// state now, so that where the two models agree the draft draws what the main
// model will. Rows come back only where needed: with p_min 0 the backend's
// argmax, or its best entries for a sampler that takes them
// (bn_sampler_takes_top); else into row (n_vocab floats). Stops at the end of
// its context, or where the sampler finds no token. Returns how many, or -1
// and err.
int bn_draft_step(const bn_opened *o, int32_t n_vocab, bn_draft_seq *d, bn_draft_backoff *b, bn_sampler **copy,
                  const bn_sampler *smp, const int32_t *text, int n, int max, float p_min, float *row, int32_t *out,
                  bn_error *err);

#endif
