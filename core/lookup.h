// lookup.h - prompt lookup decoding (bitnet.h: bn_session_set_lookup): the
// tokens that followed the last earlier occurrence of the text's final few
// tokens are a cheap guess at what comes next. A session feeds the pending
// token and that guess in one forward pass, with every row of logits, and keeps
// the guessed tokens for as long as the sampler, reading those rows in order,
// picks them: the tokens are those a step at a time would give, in fewer passes
// where the text repeats itself (a quoted passage, code being edited, a list).
#ifndef BN_LOOKUP_H
#define BN_LOOKUP_H

#include <stdbool.h>
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

// A verifying pass, as a session or a batch slot follows it: row i of its rows
// of logits comes after draft[i - 1] (row 0 after the pending token it fed),
// and each later step whose pending token is the next drafted one takes the
// next row. Zeroed with len set (the first draft's length): no pass yet.
typedef struct bn_lookup_pass {
    int32_t draft[BN_LOOKUP_MAX];
    int n_drafted;
    int next_row; // the row the next step takes (0: no pass)
    int len;      // how many tokens the next draft takes
} bn_lookup_pass;

// A pass of d drafted tokens began; its row 0 is taken at once.
void bn_lookup_begin(bn_lookup_pass *p, const int32_t *draft, int d);
// Whether the step whose pending token this is takes the pass's next row.
bool bn_lookup_takes(const bn_lookup_pass *p, int32_t pending);
// How many tokens the next draft takes (at most max): after a pass, as far as
// it went (bn_lookup_next_len).
int bn_lookup_len(const bn_lookup_pass *p, int max);
// The pass is over (a step did not take its row, or none is left): no pass,
// and len for the next draft.
void bn_lookup_end(bn_lookup_pass *p, int max);

#endif
