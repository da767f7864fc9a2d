// synth_model.h - BitNet b1.58 models in the official GGUF layout.
//
// Writes a file the runtime loads exactly like microsoft/bitnet-b1.58-2B-4T-gguf
// (DESIGN.md sections 1-2): same keys and key types, same tensor names, types and
// shapes, I2_S projections, F16 embedding tied to the LM head. The weights are
// random but deterministic (same config and seed -> the same bytes on any
// machine) and scaled so activations stay sane through every layer, which makes
// these files realistic benchmarks and test inputs without downloading a model.
// Or they are trained weights from a weight file (weights_file.h): the same
// writer then makes the trained model that ships in models/.
#ifndef BN_SYNTH_MODEL_H
#define BN_SYNTH_MODEL_H

#include <stdint.h>

#include "error.h"

typedef struct bn_synth_config {
    uint32_t n_vocab;   // 0: the vocabulary's own size
    uint32_t n_ctx;     // context_length
    uint32_t n_embd;    // hidden size, multiple of 128
    uint32_t n_layer;
    uint32_t n_ff;      // multiple of 128
    uint32_t n_head;
    uint32_t n_head_kv;
    float rope_base;
    float norm_eps;
    uint64_t seed;
    // NULL: a built-in byte-level vocabulary (256 byte tokens, a few merges, the
    // Llama-3 special tokens in the last 256 ids, CONTROL fillers in between).
    // Else a HuggingFace tokenizer.json or a .gguf holding tokenizer.ggml.*; its
    // tokens, types, merges, bos/eos, add_bos and chat template are copied.
    const char *vocab_path;
    const char *name;   // general.name; NULL: derived from the shape and seed
    // NULL: random weights. Else a weight file (weights_file.h) holding every
    // tensor, in file order, with exactly this config's shapes.
    const char *weights_path;
} bn_synth_config;

// Fills cfg with a named preset: "tiny" (hidden 256, ffn 768, 2 layers, 4/2 heads,
// ctx 512, vocab 0 = the vocabulary's size) or "2b-4t" (the BitNet b1.58 2B-4T
// shape, vocab 128256). seed 1, no vocab file.
int bn_synth_preset(const char *preset, bn_synth_config *cfg, bn_error *err);

// Checks a config: shapes the runtime can run (hidden and ffn multiples of 128,
// heads dividing hidden with an even head_dim, kv heads dividing heads, ...).
int bn_synth_validate(const bn_synth_config *cfg, bn_error *err);

// Writes the model to path in one streaming pass; memory stays at a few MB plus
// the vocabulary, whatever the model size. On failure the partial file is removed.
int bn_synth_model_write(const bn_synth_config *cfg, const char *path, bn_error *err);

// Size of the built-in vocabulary for a given n_vocab request (0: its natural
// size); exposed for tests.
uint32_t bn_synth_builtin_vocab_size(uint32_t n_vocab);

#endif
