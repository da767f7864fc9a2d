// synth_model.h - synthetic BitNet b1.58 models in the official GGUF layout.
//
// The writer (bn_synth_config, presets, bn_synth_model_write) is public:
// bitnet.h. What only the tests need is here.
#ifndef BN_SYNTH_MODEL_H
#define BN_SYNTH_MODEL_H

#include <stdint.h>

#include "error.h"

// Size of the built-in vocabulary for a given n_vocab request (0: its natural size).
uint32_t bn_synth_builtin_vocab_size(uint32_t n_vocab);

#endif
