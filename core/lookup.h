// lookup.h - prompt lookup decoding (bitnet.h: bn_session_set_lookup): the
// tokens that followed the last earlier occurrence of the text's final few
// tokens are a cheap guess at what comes next. A session feeds the pending
// token and that guess in one forward pass, with every row of logits, and keeps
// the guessed tokens for as long as the sampler, reading those rows in order,
// picks them: the tokens are those a step at a time would give, in fewer passes
// where the text repeats itself (a quoted passage, code being edited, a list).
#ifndef BN_LOOKUP_H
#define BN_LOOKUP_H

#include <stdint.h>

#define BN_LOOKUP_MAX 32      // tokens drafted in one pass at most
#define BN_LOOKUP_NGRAM_MAX 4 // the longest final n-gram looked up
#define BN_LOOKUP_NGRAM_MIN 2 // the shortest: one token alone matches too often

// Up to max_draft tokens (<= BN_LOOKUP_MAX) into draft: the continuation of the
// most recent earlier occurrence of hist's final BN_LOOKUP_NGRAM_MAX tokens, or
// failing that of fewer, down to BN_LOOKUP_NGRAM_MIN. A continuation that runs
// into the end of hist goes on with the draft itself, so a loop is drafted for
// max_draft tokens. Returns how many were drafted (0: no earlier occurrence).
int bn_lookup_draft(const int32_t *hist, int n_hist, int max_draft, int32_t *draft);

// How many tokens to draft next: all of a draft taken doubles it (up to max),
// a draft cut short at its a-th token drafts a + 1 next. A pass costs more
// with each token it takes (on a CPU, a drafted token costs a sixth of a step
// or more: bench's lookup figures), so guesses that keep failing cost one
// token a pass, not max.
int bn_lookup_next_len(int cur, int max, int drafted, int accepted);

#endif
