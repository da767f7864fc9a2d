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
#include <string.h>

#include "error.h"
#include "model.h"
#include "top.h"

typedef struct bn_backend bn_backend; // backend-private state

// The CPU backend's own options. No other backend reads them, so one config opens
// any backend: "auto" falls back from the GPU to the CPU with it, and bench runs
// every backend with the same flags.
typedef struct bn_cpu_options {
    int n_threads;       // threads (<= 0: physical cores)
    const char *kernels; // kernel set: NULL/"auto", "scalar", "avx2", "avx512", "amx", "neon"
} bn_cpu_options;

typedef struct bn_backend_config {
    int n_ctx;           // KV cache length in tokens (<= model context)
    int max_batch;       // tokens one pass processes at once (longer inputs are chunked); 0: the backend's default
    int n_seq;           // sequence slots, each with its own n_ctx positions of KV cache (<= 0: 1)
    bool lm_head_q8;     // quantize the LM head to int8 per row at load
    bn_cpu_options cpu;  // the CPU backend's own options, read by it alone
} bn_backend_config;

typedef struct bn_backend_ops {
    const char *name; // "cpu", "cuda", "reference"

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
    // row). logits may be NULL when only argmax is wanted. The input is checked
    // first, with bn_backend_check_tokens (below): callers need not check it.
    int (*forward)(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                   int n_tokens, float *logits, bool all_logits, bn_error *err);

    // Optional (NULL = not provided): forward() for the runs' rows of logits,
    // then argmax[r] = the argmax id of run r computed on the backend (no logits
    // copy), ties to the lowest id as bn_argmax (argmax.h) and the sampler break them.
    int (*forward_argmax)(bn_backend *be, const int32_t *tokens, const int32_t *pos,
                          const int32_t *seq, int n_tokens, int32_t *argmax, bn_error *err);

    // Optional: bytes of memory the backend holds (device memory for CUDA).
    uint64_t (*memory_bytes)(const bn_backend *be);

    // Bytes one decode step reads from memory: every ternary matrix and the LM
    // head, in the layout this backend holds them (its int8 head with its scales,
    // a table widened on upload). The KV cache is left out: the 2B-4T shape
    // reads 77 KB of it per position, under 1% of its weights at bench's contexts.
    uint64_t (*decode_bytes)(const bn_backend *be);

    // Optional (NULL: the backend cannot say): the read bandwidth in GB/s (1e9
    // bytes) of the memory its decode streams, measured now, as decode reads it
    // (CPU: the backend's own threads). decode_bytes over it is the roofline, the
    // fastest a decode step can be. Takes up to a second.
    double (*read_bandwidth_gbs)(const bn_backend *be);

    // Optional (NULL: nothing to start): prewarm starts the set-up that needs no
    // model on a thread of its own (bitnet.h: bn_backend_prewarm); create() waits
    // for it. prewarm_wait waits for it to end. Both may be called any number of
    // times, from any thread.
    void (*prewarm)(void);
    void (*prewarm_wait)(void);

    // Optional (NULL = not provided): forward() for the runs' rows of logits, then
    // top[r * BN_TOP_MAX ..] = the BN_TOP_MAX best entries of run r's row in
    // bn_top order (top.h), computed on the backend: a sampling step that needs
    // no more (bn_sampler_takes_top) moves 1 KB a row instead of the row. With
    // exp_sums (else NULL), exp_sums[r] = run r's softmax denominator, as
    // bn_top_exp_sum(row, n_vocab, top[r * BN_TOP_MAX].logit, INFINITY) gives it
    // (a draft's p-min test; on a GPU in another order of the adds).
    int (*forward_top)(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                       int n_tokens, bn_top *top, double *exp_sums, bn_error *err);

    // Optional (NULL: not provided): copies the K/V of positions 0..n_pos of
    // sequence slot `from` to the same positions of slot `to` (from != to), so a
    // prompt that begins as another slot's tokens need not compute them again
    // (bitnet.h: the prompt cache). Between forward calls only.
    int (*copy_kv)(bn_backend *be, int from, int to, int n_pos, bn_error *err);

    // Optional (NULL: it may): whether the backend may be able to run here, told
    // at once and without starting anything (CUDA: the driver's control device
    // exists). false means probe would fail; true means probe may still fail. A
    // session asks it before it starts on the CPU while this backend opens on a
    // thread (bn_session_params.cpu_start).
    bool (*maybe_present)(void);
} bn_backend_ops;

extern const bn_backend_ops bn_cpu_backend;
// The readable one-token-at-a-time forward pass (cpu/forward_ref.c): the CPU
// backend's scalar arithmetic bit for bit, single-threaded; never chosen by "auto".
extern const bn_backend_ops bn_reference_backend;
// The kernel set a CPU backend instance runs ("scalar", "avx2", "avx512", "amx",
// "neon"): a function of its own rather than an op, so the ops tables stay as they are.
const char *bn_cpu_backend_kernels(const bn_backend *be);
// The names of the CPU kernel sets this build has, scalar first (x86-64: scalar,
// avx2, avx512, amx; AArch64: scalar, neon), NULL-terminated; this CPU may lack
// some (cpu/kernels_select.c).
extern const char *const bn_cpu_kernel_sets[];
// Defined only when built with CUDA (BITNET_CUDA); use bn_backend_find().
extern const bn_backend_ops bn_cuda_backend;

// Every backend there is, whether or not this build has it: the one list of
// names, as X(name, ops). bn_backend_find (core/backend.c) and the CLI's
// --backend choices (tools/cli.c, through BN_BACKEND_CHOICES) are made from it;
// ops is only expanded in backend.c.
#define BN_BACKENDS(X) X("cpu", &bn_cpu_backend) X("cuda", BN_CUDA_OPS) X("reference", &bn_reference_backend)
#define BN_BACKEND_CHOICE_(name, ops) "|" name
// "auto|cpu|cuda|reference": a string literal, for static tables.
#define BN_BACKEND_CHOICES ("auto" BN_BACKENDS(BN_BACKEND_CHOICE_))

// "cpu", "cuda", "reference" -> ops, or NULL if unknown or not compiled in.
const bn_backend_ops *bn_backend_find(const char *name);

// The one check of forward()'s input, made first by every backend's forward()
// and forward_argmax() (who: the backend's name, for the message): n_tokens >= 1, ids in
// the vocabulary, seq[i] < n_seq, pos[i] < n_ctx, each slot in one run at
// increasing positions. Every caller (sessions, batches, bench's comparison,
// tests) goes through it, so nothing else checks what forward() is given, and
// the code past it assumes valid input. (The core's bn_engine_check_ids is
// another check: a prompt is refused before it enters a session's history or a
// batch slot, so a bad id fails its own request, not a later step that carries
// other slots' tokens.) Returns the number of runs, or -1 with err set.
int bn_backend_check_tokens(const char *who, const int32_t *tokens, const int32_t *pos,
                            const int32_t *seq, int n_tokens, uint32_t n_vocab, int n_ctx,
                            int n_seq, bn_error *err);
// Whether x[0..n) holds no NaN and no infinity, as every row of logits a
// backend computes must: a NaN has no place in the sampler's order (top.h), and
// a row with one gives text without meaning, so a backend reports it with
// bn_backend_nonfinite instead. A float is not finite when its eight exponent
// bits are all ones; a loop over the bits with no early exit vectorizes, and it
// runs over every row an LM head computes.
static inline bool bn_all_finite(const float *x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}
// The error for a row of logits that is not finite: that of the token at
// position pos of slot seq. Returns -1.
int bn_backend_nonfinite(const char *who, int32_t pos, int32_t seq, bn_error *err);
// seq[i] with NULL standing for all zeros.
static inline int32_t bn_seq_of(const int32_t *seq, int i) { return seq ? seq[i] : 0; }
// Whether token i ends its run: the last token, or the next one is another slot's.
static inline bool bn_run_ends(const int32_t *seq, int i, int n_tokens) {
    return i + 1 == n_tokens || bn_seq_of(seq, i + 1) != bn_seq_of(seq, i);
}

#endif
