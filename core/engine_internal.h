// engine_internal.h - what the engine and session files share (not public).
#ifndef BN_ENGINE_INTERNAL_H
#define BN_ENGINE_INTERNAL_H

#include "model.h"
#include "tokenizer.h"

struct bn_engine {
    bn_model *model;
    bn_tokenizer *tok;
    double load_ms;
};

#endif
