// backend.h - the one interface between the core and a compute backend.
//
// The core owns the model, the tokenizer, sampling and the generation loop. A
// backend owns the weights as it wants them laid out, the KV cache and its
// scratch memory, and runs the forward pass of DESIGN.md section 3. Backends
// never see tokenizers, samplers or the CLI; the core never includes a backend's
// headers (it gets the ops tables below, which are NULL when not compiled in).
#ifndef BN_BACKEND_H
#define BN_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "model.h"

typedef struct bn_backend bn_backend; // backend-private state

typedef struct bn_backend_config {
    int n_threads;       // CPU threads (<= 0: physical cores)
    int n_ctx;           // KV cache length in tokens (<= model context)
    int max_batch;       // tokens one pass processes at once (longer inputs are chunked); 0: the backend's default
    bool lm_head_q8;     // quantize the LM head to int8 per row at load
    const char *kernels; // CPU kernel set: NULL/"auto", "scalar", "avx2", "avx512"
} bn_backend_config;

typedef struct bn_backend_ops {
    const char *name; // "cpu", "cuda"

    // Cheap check that the backend can run here (e.g. a CUDA device is usable).
    // Returns 0, or -1 with the reason in err.
    int (*probe)(bn_error *err);

    // Prepares weights (upload/repack), KV cache and scratch for model m, which
    // must outlive the backend.
    int (*create)(const bn_model *m, const bn_backend_config *cfg, bn_backend **out,
                  bn_error *err);
    void (*destroy)(bn_backend *be);

    // Runs n_tokens tokens at positions pos[0..n) (each pos < n_ctx; a token
    // attends to cache entries 0..pos). Writes K/V for these positions.
    // logits: if all_logits, n_tokens rows of n_vocab floats, else one row for
    // the last token. logits may be NULL when only argmax is wanted.
    int (*forward)(bn_backend *be, const int32_t *tokens, const int32_t *pos, int n_tokens,
                   float *logits, bool all_logits, bn_error *err);

    // Optional (NULL = not provided): forward() for one row of logits, then the
    // argmax id of the last token computed on the backend (no logits copy).
    int (*forward_argmax)(bn_backend *be, const int32_t *tokens, const int32_t *pos,
                          int n_tokens, int32_t *argmax, bn_error *err);

    // Optional: bytes of memory the backend holds (device memory for CUDA).
    uint64_t (*memory_bytes)(const bn_backend *be);
} bn_backend_ops;

extern const bn_backend_ops bn_cpu_backend;
// The kernel set a CPU backend instance runs ("scalar", "avx2", "avx512"): a
// function of its own rather than an op, so the ops tables stay as they are.
const char *bn_cpu_backend_kernels(const bn_backend *be);
// Defined only when built with CUDA (BITNET_CUDA); use bn_backend_find().
extern const bn_backend_ops bn_cuda_backend;

// "cpu", "cuda" -> ops, or NULL if unknown or not compiled in.
const bn_backend_ops *bn_backend_find(const char *name);

#endif
