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

// Picks the backend p names ("auto": a usable GPU, else the CPU, saying why)
// and creates it for e's model with n_seq sequence slots. On failure o->be is
// NULL and err says why.
int bn_backend_open(const bn_engine *e, const bn_session_params *p, int n_seq, bn_opened *o,
                    bn_error *err);

#endif
