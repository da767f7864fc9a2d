// draft.h - a draft model's drafts for speculative decoding (bitnet.h:
// bn_session_set_draft, bn_batch_set_draft): a smaller model with the same
// vocabulary guesses the next tokens, picking as the generation does, and the
// main model verifies them in one pass as it verifies prompt lookup's (lookup.h).
#ifndef BN_DRAFT_H
#define BN_DRAFT_H

#include <stdint.h>

#include "engine_internal.h"
#include "sampler.h"
#include "top.h"

// One sequence of the draft model: the tokens it was fed and last drafted,
// and how many of them are in its KV cache.
typedef struct bn_draft_seq {
    int32_t *hist;      // n_ctx + 1
    int n_hist, n_past; // hist[0..n_past) in the KV cache
    int slot;           // its sequence slot in the draft model's backend
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

// One sequence's draft in a step (bn_draft_steps): up to max tokens into out,
// after text[0..n) of the main model's sequence, whose last token is the one
// pending, for smp, that sequence's sampler (max is lowered to what the
// sequence's context leaves). With feed_only, the sequence is only fed
// text[0..n) (a prompt as far as the main model has fed it), so that its
// first draft has only the rest to feed; backoff, copy, smp, max and out unused.
typedef struct bn_draft_job {
    bn_draft_seq *seq;
    bool feed_only;
    bn_draft_backoff *backoff;
    bn_sampler **copy; // smp's clone for the draft (made at the first sampled draft; the caller frees it)
    const bn_sampler *smp;
    const int32_t *text;
    int n, max;
    int32_t *out;
    int got; // set: how many tokens were drafted into out
    // bn_draft_steps' own
    bn_sampler *picker; // *copy, or NULL: the likeliest token
    bool tried, drafting;
} bn_draft_job;

// The draft model's calls: room for cap tokens (the longest sequence it feeds
// at once: its n_ctx) and max_runs sequences (at most BN_DRAFT_CALL_RUNS: a
// call's rows of logits take 8 MB at a 128k vocabulary), with sequence ids
// where its backend has several sequences (several_seqs), else seq NULL.
#define BN_DRAFT_CALL_RUNS 16
typedef struct bn_draft_call {
    int cap, max_runs;
    int32_t *tok, *pos, *seq;
    int32_t *run_job, *argmax; // [max_runs]
    bn_top *top;               // [max_runs * BN_TOP_MAX]
    double *exp_sums;          // [max_runs]: with p_min, the rows' softmax denominators
} bn_draft_call;
int bn_draft_call_init(bn_draft_call *c, int cap, int max_runs, bool several_seqs, bn_error *err);
void bn_draft_call_free(bn_draft_call *c);

// The step's drafts of jobs[0..n_jobs), each a different sequence of backend o
// (the draft model), drafted together: a call feeds every drafting sequence
// what it lacks, then each further call one token each. A job whose back-off
// idles drafts nothing; one that drafts no token counts a miss (a feed_only
// job is fed in the first call, and neither drafts nor counts).
// Each sequence keeps the start of its KV cache that its text shares (a
// refused draft is dropped there), feeds the rest, then drafts a token a call
// while its likeliest token's probability is at least p_min. The token is its
// likeliest where the job's sampler is greedy; else what *copy samples from
// its row with the text so far: a clone of smp given smp's random state now,
// so that where the two models agree the draft draws what the main model will.
// Rows come back only where needed: the backend's argmax where every job is
// greedy and p_min is 0; else its best entries where every sampler takes them
// (bn_sampler_takes_top), with each row's softmax denominator where p_min is
// above 0 (all the p-min test needs; a GPU adds it up in another order than the
// host, so a row within rounding of p_min may draft there and not here: a draft
// is only a proposal); else whole rows, into rows (c->max_runs rows of n_vocab
// floats). A sequence stops at the end of its context, or where its sampler
// finds no token. Returns 0, or -1 and err.
int bn_draft_steps(const bn_opened *o, int32_t n_vocab, bn_draft_call *c, bn_draft_job *jobs, int n_jobs,
                   float p_min, float *rows, bn_error *err);

#endif
