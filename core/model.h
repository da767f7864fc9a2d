// model.h - a ternary model as mapped from GGUF (docs/architecture.md: The GGUF file, I2_S,
// Model families).
//
// The loader checks every shape against the hyperparameters and points into the
// map. It copies only what backends cannot read in place: norm weights stored as
// F16/BF16 (converted to f32 once, so backends always see float norms) and
// TQ1_0/TQ2_0 projections (repacked to I2_S, core/ternary_repack.c).
#ifndef BN_MODEL_H
#define BN_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "gguf.h"

// The graph families bitnet.cpp runs, chosen by general.architecture. They differ
// in three places only, so backends read these flags, never the family name:
//   bitnet-b1.58, bitnet-25  sub-norms, relu(gate)^2 * up, NEOX RoPE, tied head
//   bitnet                   sub-norms, silu(gate) * up,   NEOX RoPE, tied head
//   llama                    no sub-norms, silu(gate) * up, pairwise RoPE, own head
typedef enum { BN_FAMILY_BITNET_B158, BN_FAMILY_BITNET, BN_FAMILY_LLAMA } bn_family;

// A general.architecture name and what it means; the one list of them (model.c).
typedef struct bn_family_info {
    const char *arch;
    bn_family family;
    bool sub_norms, ffn_silu, rope_neox;
} bn_family_info;

// The family named arch (len bytes, not NUL-terminated), or NULL.
const bn_family_info *bn_family_find(const char *arch, size_t len);
// The names bn_family_find knows, for error messages: "bitnet-b1.58, ..., llama"
// into buf (64 bytes hold them); returns buf.
const char *bn_family_names(char *buf, size_t n);

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
    bool sub_norms;        // rmsnorm before wo and w_down (attn_sub_norm, ffn_sub_norm)
    bool ffn_silu;         // gate activation: silu(g) * up; else relu(g)^2 * up
    bool rope_neox;        // RoPE pairs (i, i + n_rot/2); else (2i, 2i + 1)
} bn_hparams;

// A 2-D weight: ne0 = K (contiguous, input width), ne1 = rows (output width).
// For 1-D tensors ne1 = 1.
typedef struct bn_tensor {
    const char *name;      // NUL-terminated copy owned by the model
    uint32_t type;         // BN_GGML_*
    uint64_t ne0, ne1;
    uint64_t nbytes;
    const void *data;      // in the map, or the loader's I2_S repack of a TQ tensor
    float scale;           // ternary: per-tensor weight scale (docs/architecture.md: I2_S); else 1
    float out_scale;       // the bitnet family's `<name>.scale` tensor, else 1: multiplies the
                           // matmul's output after `scale`, as bitnet.cpp's separate ggml_mul
    const float *f32;      // 1-D norm weights as float (map or converted copy); else NULL
    uint32_t act_block;    // ternary: 0, the input is quantized to int8 per token (I2_S);
                           // 256, per block of 256 with a scale each, as llama.cpp's
                           // TQ1_0/TQ2_0 kernels do (its Q8_K), so a TQ model computes
                           // what it computes there
} bn_tensor;

typedef struct bn_layer {
    bn_tensor attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm; // float vectors (sub-norms:
                                                                // f32 NULL without hp.sub_norms)
    bn_tensor wq, wk, wv, wo;                                   // I2_S (TQ1_0/TQ2_0 repacked)
    bn_tensor w_gate, w_up, w_down;                             // I2_S (TQ1_0/TQ2_0 repacked)
} bn_layer;

// A layer's ternary weights, the one list of them (the loader's checks, the
// bytes a decode step reads): wq, wk, wv, wo, w_gate, w_up, w_down.
#define BN_LAYER_TERNARY 7
static inline void bn_layer_ternary(const bn_layer *L, const bn_tensor *w[BN_LAYER_TERNARY]) {
    w[0] = &L->wq, w[1] = &L->wk, w[2] = &L->wv, w[3] = &L->wo;
    w[4] = &L->w_gate, w[5] = &L->w_up, w[6] = &L->w_down;
}

typedef struct bn_model {
    char arch[32];         // general.architecture: "bitnet-b1.58", "bitnet-25", "bitnet", "llama"
    bn_family family;
    bn_hparams hp;
    bn_gguf *gguf;         // owned
    bn_tensor tok_embd;    // F16/BF16/F32 [n_embd, n_vocab]
    bn_tensor output_norm; // float [n_embd]
    bn_tensor output;      // LM head [n_embd, n_vocab]; a copy of tok_embd when tied
    bool output_tied;
    bn_layer *layers;      // n_layer
    void *owned_;          // private: converted norms, repacked TQ tensors, names
} bn_model;

int bn_model_load(const char *path, bn_model **out, bn_error *err);
// Validates an already open GGUF as a model; takes ownership of g on success only.
int bn_model_from_gguf(bn_gguf *g, bn_model **out, bn_error *err);
void bn_model_free(bn_model *m);
// Whether every F32, F16 and BF16 value in the file is finite (`inspect
// --check-tensors`): a pass over all of them, the embedding included, which a
// load leaves out to start quickly (it checks the norms). 0, or -1 with err
// naming the first tensor and element that is not.
int bn_model_check_values(const bn_model *m, bn_error *err);

#endif
