// devtools.h - the development tools: what `bitnet-gpu make-model` and
// `bitnet-gpu inspect` are made of, and what the tests build their models with.
//
// Built as libbitnet_devtools.a on top of libbitnet (CMake target bitnet_devtools),
// linked by the CLI and the tests, and never installed: a program that runs
// models needs none of it, so libbitnet.so does not carry it. The code here may
// use the library's internal headers (core/); the library never uses this.
//
// The same conventions as bitnet.h: 0 on success, -1 with a message in err.
#ifndef BN_DEVTOOLS_H
#define BN_DEVTOOLS_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet.h"

// ---- model report (`bitnet-gpu inspect`) ------------------------------------------------
// Loads path as a BitNet model (every check of the loader) and its embedded
// vocabulary, then describes it: architecture, hyperparameters, tokenizer
// summary, tensor table and totals. json != 0: the JSON document of
// docs/inspect.md; else aligned text. check_values: first also every F32, F16
// and BF16 value (bn_model_check_values). Returns a malloc'd NUL-terminated
// report, or NULL with err set.
char *bn_inspect_report(const char *path, int json, bool check_values, bn_error *err);

// ---- synthetic models (`bitnet-gpu make-model`) -----------------------------------------
// Writes a file the runtime loads as it loads the published models of each family
// (by default exactly the layout of microsoft/bitnet-b1.58-2B-4T-gguf: same keys,
// tensor names, types and shapes, I2_S projections, F16 embedding tied to the LM
// head; the fields below choose the family, weight type and head). The weights are
// random but deterministic (same config and seed -> the same bytes on any machine)
// and scaled so activations stay sane.
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
    // NULL: random weights. Else a weight file (train/export.py writes it) holding
    // every tensor, in file order, with exactly this config's shapes.
    const char *weights_path;
    // The model family (docs/architecture.md: Model families): NULL or
    // "bitnet-b1.58"; "bitnet" (SiLU gate, a `.scale` tensor beside each weight);
    // "llama" (no sub-norms, SiLU gate, pairwise RoPE).
    const char *arch;
    bool untied_head;    // write output.weight (F16) instead of tying it to token_embd
    uint32_t weight_type; // 0: I2_S; 34: TQ1_0; 35: TQ2_0 (llama.cpp's ternary types)
    // Damp the residual branches: the O and down projections' scales times 2^-k
    // (about rms(embedding)/50 per branch), the codes unchanged. A random model
    // is chaotic at full depth (one int8 rounding flip grows through the layers);
    // a calm one is not, so backends can be compared on it closely.
    // Written as the key BN_SYNTH_CALM_KEY (true), so `bench` knows the model is calm.
    bool calm;
} bn_synth_config;

#define BN_SYNTH_CALM_KEY "bitnet-gpu.synthetic.calm"

// Fills cfg with a named preset: "tiny" (hidden 256, ffn 768, 2 layers, 4/2 heads,
// ctx 512, vocab 0 = the vocabulary's size), "tiny-bitnet" and "tiny-llama" (the
// same shape in those families), or the real shape of a published model:
// "2b-4t", "bitnet-0.7b", "falcon3-1b", "falcon3-3b", "falcon3-7b", "falcon3-10b",
// "llama3-8b-1.58". seed 1, no vocab file.
int bn_synth_preset(const char *preset, bn_synth_config *cfg, bn_error *err);
// Checks a config: shapes the runtime can run (hidden and ffn multiples of 128,
// heads dividing hidden with an even head_dim, kv heads dividing heads, ...).
int bn_synth_validate(const bn_synth_config *cfg, bn_error *err);
// Writes the model to path in one streaming pass; memory stays at a few MB plus
// the vocabulary, whatever the model size. On failure the partial file is removed.
int bn_synth_model_write(const bn_synth_config *cfg, const char *path, bn_error *err);
// Size of the built-in vocabulary for an n_vocab request (0: its natural size);
// the tests size their expectations with it.
uint32_t bn_synth_builtin_vocab_size(uint32_t n_vocab);

#endif
