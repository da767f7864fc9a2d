// logprob_row.h - what a generation with logprobs reports for each token it
// samples (bitnet.h: bn_request.logprobs, bn_session_set_logprobs): the token's
// log-probability and its likeliest alternatives', from the row of logits as the
// model gave it. The JSON mask and the sampler change the row in place, so the
// row is read before them, and the picked token's value looked up after, in the
// copy kept here. One definition for bn_batch and bn_session.
#ifndef BN_LOGPROB_ROW_H
#define BN_LOGPROB_ROW_H

#include <stdint.h>

#include "bitnet.h"
#include "top.h"

typedef struct bn_logprob_row {
    float *raw;     // [n_vocab] the row as the model gave it
    float max;      // its max and log-sum-exp (logprob.h)
    double log_sum;
    bn_top likeliest[BN_TOP_LOGPROBS_MAX];
} bn_logprob_row;

// Returns 0, or -1 when out of memory.
int bn_logprob_row_init(bn_logprob_row *r, int32_t n_vocab);
void bn_logprob_row_free(bn_logprob_row *r);

// Before the row is masked or sampled: keeps it, and writes the n_top
// (0..BN_TOP_LOGPROBS_MAX, at most n_vocab) likeliest tokens' log-probabilities
// into top, most likely first (top.h's order).
void bn_logprob_row_read(bn_logprob_row *r, const float *row, int32_t n_vocab, int n_top,
                         bn_token_logprob *top);

// After: the log-probability of token id in the row bn_logprob_row_read kept.
float bn_logprob_row_of(const bn_logprob_row *r, int32_t id);

// Prompt logprobs (bn_request.prompt_logprobs, bn_session_score) are read from
// forward calls of at most this many rows: 16 MB of logits for a 128256-token
// vocabulary.
#define BN_SCORE_ROWS 32

// Scoring a text: row j of rows (n_rows rows of n_vocab logits, left as they
// are, so no copy is kept) predicts next[j], whose log-probability goes to
// logprob[j] and its n_top likeliest tokens' to top[j * n_top ..].
void bn_logprob_rows_score(const float *rows, int n_rows, int32_t n_vocab, const int32_t *next, int n_top,
                           float *logprob, bn_token_logprob *top);

#endif
