// serve_sched.h - the server's scheduler: one thread owns the bn_batch and runs
// its steps; HTTP handler threads submit jobs and wait for their text.
//
// A job is a generation request: n choices (OpenAI's "n") of each of its
// prompts (a completion may give several), each a sequence of its own in a slot
// of the batch. Choices enter slots as they free up, in the order their jobs
// came, except that a prompt's later choices wait for its first to begin
// generating (serve_sched.c), letting the jobs behind pass. The handler that submitted it and the scheduler each
// hold a reference; the last bn_job_release frees it. All job state is guarded
// by the scheduler's one mutex; each job has its own condition variable,
// signalled when new text arrives for any choice or one ends.
#ifndef BN_SERVE_SCHED_H
#define BN_SERVE_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"
#include "io.h"

typedef struct bn_sched bn_sched;
typedef struct bn_job bn_job;

#define BN_JOB_MAX_CHOICES 128 // OpenAI's most

// One prompt of a job.
typedef struct bn_job_prompt {
    int32_t *ids;    // malloc'd
    size_t n;
    char *echo;      // with echo, malloc'd: the prompt's text, which its choices' text begins with
    bool added_bos;  // ids[0] is a BOS the server put before a text prompt: not in that text
    uint8_t *prefixed; // with echo, malloc'd or NULL (none): prefixed[i], ids[i] begins with a
                     // space the tokenizer put before a piece of the text (bn_engine_space_prefix),
                     // which the text does not have
} bn_job_prompt;

// What a job generates from. bn_sched_submit takes the malloc'd prompts and stop
// strings over (they are freed with the job, also on failure).
typedef struct bn_job_params {
    bn_job_prompt *prompts; // n_prompts of them, malloc'd
    int n_prompts;
    int max_tokens;
    bn_sampling sampling;
    char **stop; // n_stop malloc'd strings, in a malloc'd array
    size_t n_stop;
    bool no_prefix_cache; // bn_request's: feed the whole prompt
    bool logprobs;        // bn_request's: each generated token's log-probability
    int top_logprobs;     // and its likeliest alternatives'
    bool json_object;     // bn_request's: the text is one JSON object
    char *json_schema;    // bn_request's (malloc'd): its value is one this schema accepts
    char *regex;          // bn_request's (malloc'd): the text is one string it matches whole
    bn_logit_bias *logit_bias; // malloc'd, the request's: sampling.logit_bias points here, or
                               // (none given) into serve's flags (bn_api.sampling), alive as long
    size_t n_logit_bias;
    int n;                // choices per prompt (OpenAI's n; 0: 1): choice c is prompt c / n's,
                          // sampled with sampling.seed + c % n (so choice 0 of each is its n = 1 reply)
    int n_choices;        // n_prompts * n, at most BN_JOB_MAX_CHOICES (set by bn_sched_submit)
    bool echo;            // each choice's text begins with its prompt's echo, and with logprobs its
                          // logprobs with the prompt's tokens' (bn_request.prompt_logprobs)
    bool score_only;      // with echo, max_tokens 0: the prompt alone (the one token the batch
                          // samples after it is dropped)
} bn_job_params;

// Frees the prompt, stop strings, schema and logit biases and zeroes p.
void bn_job_params_free(bn_job_params *p);

// With logprobs, one per generated token (an end-of-generation token has none
// but with echo), after one per prompt token with echo.
typedef struct bn_job_logprob {
    int32_t id;
    float logprob;
    int n_top;
    bn_token_logprob top[BN_TOP_LOGPROBS_MAX];
    bool first;  // the prompt's first token: nothing precedes it, so no log-probability
    bool unseen; // not in the text: a BOS the server added (bn_job_prompt.added_bos), or an
                 // end-of-generation token
    bool prefixed; // its first byte (a space) is not in the text either (bn_job_prompt.prefixed)
} bn_job_logprob;

// What a choice produced: its text, and with logprobs the tokens' bn_job_logprob
// entries (an array in a byte buffer).
typedef struct bn_job_output {
    bn_buf text;
    bn_buf logprobs;
} bn_job_output;

// How one choice stands.
typedef struct bn_choice_state {
    bool done;
    bn_stop stop; // when done without error
    int n_gen;    // tokens generated
    int n_cached; // of the prompt's, those taken from the slot's cache
} bn_choice_state;

// How a job stands.
typedef struct bn_job_state {
    bool done;       // every choice
    int n_prompt;    // tokens of all its prompts
    char error[512]; // set when a choice failed: the request failed (its other choices are
    int status;      // cancelled); the HTTP status it calls for (400, 503, 500)
    int n_choices;
    bn_choice_state choice[BN_JOB_MAX_CHOICES];
} bn_job_state;

int bn_sched_start(bn_batch *b, bn_sched **out, bn_error *err);
// Stops admitting jobs (queued ones end with 503), lets running ones finish for
// up to grace_ms, ends the rest with 503, then joins the thread.
void bn_sched_stop(bn_sched *s, int grace_ms);
// After bn_sched_stop, once no handler holds a job any more.
void bn_sched_free(bn_sched *s);

// Queues a job and returns it (a reference for the caller), or NULL when the
// scheduler is stopping (the params are freed either way).
bn_job *bn_sched_submit(bn_sched *s, bn_job_params *p);

// Waits up to timeout_ms for new output or the end, then appends each choice's
// new output to out[choice] (n_choices of them) and fills *st. Returns -1 when
// out of memory.
int bn_job_wait(bn_job *j, int timeout_ms, bn_job_output *out, bn_job_state *st);
// The client went away: the scheduler frees the job's slots before its next step.
void bn_job_cancel(bn_job *j);
void bn_job_release(bn_job *j);

// Slots in all, slots generating, jobs waiting for a slot (for /health).
void bn_sched_counts(bn_sched *s, int *slots, int *busy, int *queued);

// How the requests have gone since the start (for /metrics).
enum { BN_ENDED_STOP, BN_ENDED_LENGTH, BN_ENDED_CANCELLED, BN_ENDED_ERROR, BN_ENDED_N };
typedef struct bn_sched_stats {
    uint64_t ended[BN_ENDED_N]; // choices (a request's n count n times) ended by how: stop: end
                                // of turn or stop string; length: max_tokens or the context;
                                // cancelled: the client left or the server stopped
    uint64_t prompt_tokens, cached_tokens, generated_tokens; // of the ended choices
    uint64_t steps;             // batch steps (bn_batch_step; with lookup, some make no forward pass)
    double step_seconds;        // spent in them
    uint64_t first_tokens;      // requests that got a first token, and the seconds from
    double first_token_seconds; // their arrival to it, summed
    double request_seconds;     // arrival to end, summed over the ended choices
    uint64_t json_rows_cached;  // rows of JSON requests masked from the mask cache,
    uint64_t json_rows_worked;  // and worked out (json_mask.h)
    bn_lookup_stats lookup;     // --lookup: drafted tokens, those taken, the passes (bn_batch_lookup_stats)
} bn_sched_stats;
void bn_sched_stats_read(bn_sched *s, bn_sched_stats *out);

#endif
