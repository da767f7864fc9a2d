// engine_internal.h - what the engine and session files share (not public).
#ifndef BN_ENGINE_INTERNAL_H
#define BN_ENGINE_INTERNAL_H

#include "backend.h"
#include "model.h"
#include "tokenizer/tokenizer.h"

struct bn_engine {
    bn_model *model;
    bn_tokenizer *tok;
    double load_ms;
};

// A backend created for an engine: what sessions and batches share.
typedef struct bn_opened {
    const bn_backend_ops *ops;
    bn_backend *be;
    char note[320]; // why this backend
    int n_ctx;      // positions per sequence slot
    double ms;      // creation time
} bn_opened;

// Checks that ids[0..n) are in the model's vocabulary (the embedding's rows).
int bn_engine_check_ids(const bn_engine *e, const int32_t *ids, size_t n, bn_error *err);

// Whether a and b have the same vocabulary: as many logit rows, and every id
// the same token (its bytes), so that one model's tokens mean the same to the
// other (a draft model's, bn_session_set_draft). 0, or -1 and err naming the
// first difference.
int bn_engine_same_vocab(const bn_engine *a, const bn_engine *b, bn_error *err);

// Picks the backend p names ("auto": a usable GPU, else the CPU, saying why)
// and creates it for e's model with n_seq sequence slots. On failure o->be is
// NULL and err says why.
int bn_backend_open(const bn_engine *e, const bn_session_params *p, int n_seq, bn_opened *o,
                    bn_error *err);
// The same choice for a session already running on the CPU (cpu_start), one
// sequence slot: where it comes to the CPU, nothing is created (o->be NULL, the
// note says why).
int bn_backend_open_beside_cpu(const bn_engine *e, const bn_session_params *p, bn_opened *o, bn_error *err);
// Whether a session with these parameters starts on the CPU while its backend
// opens on a thread: cpu_start, and a backend other than the CPU that may be
// present (a GPU backend's maybe_present; "auto" asks CUDA's).
bool bn_backend_starts_on_cpu(const bn_session_params *p);

// ---- a backend opening on a thread (opening.c) --------------------------------
typedef struct bn_opening bn_opening;
// Starts bn_backend_open_beside_cpu(e, p) on a thread of its own; p's strings are
// copied. e must outlive the opening (bn_opening_free joins the thread).
int bn_opening_start(const bn_engine *e, const bn_session_params *p, bn_opening **out, bn_error *err);
// 0: still opening; 1: done, and *o is what it opened (o->be NULL: the choice was
// the CPU, o->note says why; otherwise the caller owns o->be); -1: it failed, err
// says why. After 1 or -1 the opening has nothing more to give: free it.
int bn_opening_poll(bn_opening *op, bn_opened *o, bn_error *err);
// Waits for the thread, then as bn_opening_poll (never 0).
int bn_opening_wait(bn_opening *op, bn_opened *o, bn_error *err);
// Waits for the thread, destroys a backend it opened that was not taken, frees.
void bn_opening_free(bn_opening *op);
// Tests only: how the next openings behave. polls >= 0: bn_opening_poll says
// "still opening" to that many calls and then waits for the thread, so a test
// knows which step a session moves at (-1: as it is). fail: the opening fails
// with this message instead of opening (NULL: it opens).
void bn_opening_test_set(int polls, const char *fail);

#endif
