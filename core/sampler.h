// sampler.h - turns a row of logits into the next token id.
//
// The sampling parameters (bn_sampling) and the order of the steps are public
// (bitnet.h). The RNG is ours (splitmix64), so the same seed gives the same
// tokens on any machine and any libc.
#ifndef BN_SAMPLER_H
#define BN_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "top.h"

typedef struct bn_sampler bn_sampler;

// max_history: the most tokens a history given to it holds (the penalties'
// window is sorted in memory allocated here, so that sampling allocates nothing).
int bn_sampler_create(const bn_sampling *p, int32_t n_vocab, size_t max_history, bn_sampler **out,
                      bn_error *err);
void bn_sampler_free(bn_sampler *s);
// No penalty and temperature <= 0: the pick is bn_argmax (argmax.h), which a
// backend's forward_argmax computes too.
bool bn_sampler_is_greedy(const bn_sampler *s);

// Picks a token from logits[n_vocab] (modified in place). history holds the
// tokens seen so far, for the penalties. -1 when no token is left with a logit
// above -inf (logit biases of -inf, or a JSON mask, took every one).
int32_t bn_sampler_sample(bn_sampler *s, float *logits, const int32_t *history, size_t n_history);

// A new sampler with s's settings (logit biases copied: the caller's list may
// be gone) and random state. 0, or -1 and err (no memory).
int bn_sampler_clone(const bn_sampler *s, bn_sampler **out, bn_error *err);
// The sampler's random state. A draft model's sampler (draft.h), a clone given
// this state, draws the numbers this one will, token for token: one draw per
// token sampled with a temperature, none for a greedy pick.
uint64_t bn_sampler_rng(const bn_sampler *s);
void bn_sampler_set_rng(bn_sampler *s, uint64_t rng);

// A sampler needs only the row's best BN_TOP_MAX tokens (top.h), as a
// backend's forward_top gives them, when it picks among at most k of them (a
// top-k below the vocabulary, or the argmax: k = 1) and its logit biases and
// penalties can only lower logits, of at most BN_TOP_MAX - k tokens (the
// biased ones and the penalties' window, repeat_last_n).
bool bn_sampler_takes_top(const bn_sampler *s);
// For such a sampler: the token bn_sampler_sample would pick from the whole row
// (history as there), drawn from its best entries top[0..BN_TOP_MAX) in bn_top
// order (modified); -1 as there.
int32_t bn_sampler_sample_top(bn_sampler *s, bn_top *top, const int32_t *history, size_t n_history);

#endif
