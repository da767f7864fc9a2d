// synth_model.h - BitNet b1.58 models in the official GGUF layout.
//
// The writer (bn_synth_config, presets, bn_synth_model_write) is public:
// bitnet.h; with a weight file (weights_file.h) it writes trained weights, which
// is how the model in models/ was made. What only the tests need is here.
#ifndef BN_SYNTH_MODEL_H
#define BN_SYNTH_MODEL_H

#include <stdint.h>

#include "error.h"

// Size of the built-in vocabulary for a given n_vocab request (0: its natural
// size); exposed for tests.
uint32_t bn_synth_builtin_vocab_size(uint32_t n_vocab);

#endif
