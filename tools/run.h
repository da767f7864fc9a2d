// run.h - what generate, chat and bench share: open a model on a backend,
// build a prompt, report timings.
#ifndef BN_RUN_H
#define BN_RUN_H

#include <cjson/cJSON.h>

#include "bitnet.h"
#include "cli.h"

typedef struct bn_run {
    bn_engine *engine;
    bn_session *session;
    bool opening;       // the session's backend was still opening when last said (cpu_start)
    char asked[16];     // the backend the flags asked for ("auto" unless named)
    bool lookup;        // --lookup or -md: the timings say what it drafted
    bool draft_warned;  // the draft model's failure was said (bn_session_draft_note)
    bn_engine *draft_engine;   // -md: the draft model
    bn_session *draft_session; // and its session, on the same backend flags
} bn_run;

// The flags that act on the model alone, before a backend starts: sets
// --chat-template, and refuses --logit-bias ids outside the vocabulary and
// --chat with a text model. 0, or -1 and err.
int bn_run_prepare_engine(const bn_run_flags *f, bn_engine *e, bn_error *err);
// Loads the model and creates the session; prints what it chose on stderr.
// On failure prints one `error:` line and returns -1 (r is then empty).
int bn_run_open(const bn_run_flags *f, bn_run *r);
// --json-schema: the schema's text, or @FILE's (malloc'd), checked before the
// model loads so that a schema the library cannot follow fails at once; NULL
// when it cannot (the error printed).
char *bn_json_schema_arg(const char *arg);
// Frees the run, except a session whose backend is still opening on a thread
// (the job ended on the CPU before the GPU was ready): freeing would wait for
// the GPU's start, so it is left to the process's end (bn_run_left_open). A
// note on stderr says so where that backend was named (--backend cuda).
void bn_run_close(bn_run *r);
// Whether a run was left open: the process should then end with _exit once its
// output is out, neither waiting for that start nor running the CUDA runtime's
// exit handlers beside it.
bool bn_run_left_open(void);

// Tokenizes one user prompt: with --chat, in the 2B-4T chat format (first_turn
// adds BOS and the system prompt); else plain text, BOS unless --no-bos.
int bn_run_prompt(const bn_run *r, const bn_run_flags *f, const char *text, bool first_turn,
                  bool close_previous, int32_t **ids, size_t *n);

// Whether the model has a chat format (an instruct model's, not a text model's):
// true, or false with the reason in err.
bool bn_run_can_chat(const bn_engine *e, bn_error *err);

// Decode steps of a generation: the first generated token comes from the prefill,
// each later one costs a step. Rates are 0 when nothing was timed.
int bn_decode_steps(const bn_timings *t);
double bn_ms_per_token(const bn_timings *t);
double bn_per_second(int n, double ms);

// Adds key: [ids] to o (an empty array when n is 0).
void bn_add_ids_json(cJSON *o, const char *key, const int32_t *ids, size_t n);

// One summary line on stderr: load, prompt and decode speed; and, once, where the
// session went since it opened on the CPU (cpu_start): the backend it moved to,
// or why it stayed.
void bn_print_timings(bn_run *r, const bn_timings *t);
void bn_add_timings_json(cJSON *o, const bn_run *r, const bn_timings *t);

#endif
