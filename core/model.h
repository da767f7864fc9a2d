// model.h - a BitNet b1.58 model as mapped from GGUF (docs/architecture.md: The GGUF file, I2_S).
//
// The loader checks every shape against the hyperparameters and points into the
// map; nothing is copied except norm weights stored as F16/BF16 (converted to f32
// once, at load, so backends always see float norms).
#ifndef BN_MODEL_H
#define BN_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "gguf.h"

typedef struct bn_hparams {
    uint32_t n_vocab;
    uint32_t n_ctx_train;  // context_length
    uint32_t n_embd;       // hidden size
    uint32_t n_layer;
    uint32_t n_ff;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;     // n_embd / n_head
    uint32_t n_rot;        // rope.dimension_count (defaults to head_dim)
    float rope_base;
    float norm_eps;
} bn_hparams;

// A 2-D weight: ne0 = K (contiguous, input width), ne1 = rows (output width).
// For 1-D tensors ne1 = 1.
typedef struct bn_tensor {
    const char *name;      // NUL-terminated copy owned by the model
    uint32_t type;         // BN_GGML_*
    uint64_t ne0, ne1;
    uint64_t nbytes;
    const void *data;      // in the map
    float scale;           // I2_S: per-tensor weight scale (docs/architecture.md: I2_S); else 1
    const float *f32;      // 1-D norm weights as float (map or converted copy); else NULL
} bn_tensor;

typedef struct bn_layer {
    bn_tensor attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm; // float vectors
    bn_tensor wq, wk, wv, wo;                                   // I2_S
    bn_tensor w_gate, w_up, w_down;                             // I2_S
} bn_layer;

typedef struct bn_model {
    char arch[32];         // "bitnet-b1.58" or "bitnet-25"
    bn_hparams hp;
    bn_gguf *gguf;         // owned
    bn_tensor tok_embd;    // F16/BF16/F32 [n_embd, n_vocab]
    bn_tensor output_norm; // float [n_embd]
    bn_tensor output;      // LM head [n_embd, n_vocab]; a copy of tok_embd when tied
    bool output_tied;
    bn_layer *layers;      // n_layer
    void *owned_;          // private: converted norm buffers
} bn_model;

int bn_model_load(const char *path, bn_model **out, bn_error *err);
// Validates an already open GGUF as a model; takes ownership of g on success only.
int bn_model_from_gguf(bn_gguf *g, bn_model **out, bn_error *err);
void bn_model_free(bn_model *m);

#endif
