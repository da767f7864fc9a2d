// backend.h - the one interface between the core and a compute backend.
//
// The core owns the model, the tokenizer, sampling and the generation loop. A
// backend owns the weights as it wants them laid out, the KV cache and its
// scratch memory, and runs the forward pass of docs/architecture.md: The model. Backends
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
    int n_seq;           // sequence slots, each with its own n_ctx positions of KV cache (<= 0: 1)
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

    // Runs n_tokens tokens: token i is in sequence slot seq[i] (seq NULL: every
    // token in slot 0) at position pos[i] < n_ctx of that slot; it writes its K/V
    // there and attends to entries 0..pos[i] of its own slot only. The tokens of a
    // slot come as one run of consecutive entries at increasing positions (a chunk
    // of a prompt, or one decode token); different slots' runs go through each
    // weight matrix together. A slot is reused by writing from position 0 again:
    // entries past a token's position are never read, so nothing is cleared.
    // logits: if all_logits, n_tokens rows of n_vocab floats, else one row per
    // run, for its last token, in call order (one sequence: the last token's
    // row). logits may be NULL when only argmax is wanted.
    int (*forward)(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                   int n_tokens, float *logits, bool all_logits, bn_error *err);

    // Optional (NULL = not provided): forward() for the runs' rows of logits,
    // then argmax[r] = the argmax id of run r computed on the backend (no logits
    // copy), ties to the lowest id as bn_argmax (argmax.h) and the sampler break them.
    int (*forward_argmax)(bn_backend *be, const int32_t *tokens, const int32_t *pos,
                          const int32_t *seq, int n_tokens, int32_t *argmax, bn_error *err);

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

// The checks every forward() makes on its input (who: "cpu", "cuda" for the
// message): n_tokens >= 1, ids in the vocabulary, seq[i] < n_seq, pos[i] < n_ctx,
// each slot in one run at increasing positions. Returns the number of runs, or
// -1 with err set.
int bn_backend_check_tokens(const char *who, const int32_t *tokens, const int32_t *pos,
                            const int32_t *seq, int n_tokens, uint32_t n_vocab, int n_ctx,
                            int n_seq, bn_error *err);
// seq[i] with NULL standing for all zeros.
static inline int32_t bn_seq_of(const int32_t *seq, int i) { return seq ? seq[i] : 0; }
// Whether token i ends its run: the last token, or the next one is another slot's.
static inline bool bn_run_ends(const int32_t *seq, int i, int n_tokens) {
    return i + 1 == n_tokens || bn_seq_of(seq, i + 1) != bn_seq_of(seq, i);
}

#endif
