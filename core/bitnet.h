// bitnet.h - the public C API of bitnet-gpu.
//
//   bn_engine   a loaded model file and its tokenizer (read-only, mmap'd)
//   bn_session  a backend instance (weights on the device, KV cache) plus the
//               tokens already fed; generate() continues from where it stopped,
//               so a chat keeps its KV cache between turns.
//
// Every function returns 0 on success and -1 on failure with a message in the
// caller's bn_error. Nothing here prints or exits. The `bitnet-gpu` CLI is
// written against this header only.
#ifndef BITNET_H
#define BITNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { // the project headers below are plain C
#endif

#include "error.h"
#include "sampler.h"

// The lower-level pieces are public too, for tools that need only one of them:
// the tokenizer (text <-> ids without a model's weights), the streaming UTF-8
// decoder, the validating model report, and the synthetic model writer.
#include "inspect.h"
#include "synth_model.h"
#include "tokenizer.h"
#include "utf8.h"

typedef struct bn_engine bn_engine;
typedef struct bn_session bn_session;

// ---- engine: model + tokenizer ------------------------------------------------
// tokenizer_json may be NULL: the tokenizer embedded in the GGUF is used.
int bn_engine_load(const char *model_path, const char *tokenizer_json, bn_engine **out,
                   bn_error *err);
void bn_engine_free(bn_engine *e);

typedef struct bn_model_info {
    const char *arch;
    int n_vocab, n_ctx_train, n_embd, n_layer, n_ff, n_head, n_head_kv;
    uint64_t file_bytes;
} bn_model_info;
bn_model_info bn_engine_info(const bn_engine *e);
double bn_engine_load_ms(const bn_engine *e);

// Text -> ids (malloc'd; free with free()). parse_special: "<|eot_id|>" in the
// text is the special token instead of plain text.
int bn_engine_tokenize(const bn_engine *e, const char *text, bool add_bos, bool parse_special,
                       int32_t **ids, size_t *n_ids, bn_error *err);
// Raw bytes of one token (may be part of a UTF-8 character); NULL if invalid.
const char *bn_engine_token_bytes(const bn_engine *e, int32_t id, size_t *len);
bool bn_engine_is_eog(const bn_engine *e, int32_t id);
bool bn_engine_add_bos(const bn_engine *e); // the vocabulary's add_bos_token
// One user turn in the 2B-4T chat format (DESIGN 4), as token ids:
//   [<|eot_id|>]  [<|begin_of_text|> [System: SYSTEM<|eot_id|>]]  User: USER<|eot_id|>Assistant: 
// first_turn adds BOS and the system prompt (may be NULL); close_previous ends
// a previous reply that stopped without its <|eot_id|>. The message texts are
// never parsed for special tokens, so a user cannot inject them.
int bn_engine_chat_tokens(const bn_engine *e, const char *system, const char *user, bool first_turn,
                          bool close_previous, int32_t **ids, size_t *n_ids, bn_error *err);

// ---- session: backend + KV cache + generation ---------------------------------
typedef struct bn_session_params {
    const char *backend;     // "auto" (default), "cpu", "cuda"
    int n_threads;           // CPU threads; 0 = physical cores
    int n_ctx;               // 0 = the model's context length
    bool lm_head_q8;         // int8 LM head (faster, not bit-exact with the reference)
    const char *cpu_kernels; // NULL/"auto", "scalar", "avx2", "avx512"
} bn_session_params;

int bn_session_create(bn_engine *e, const bn_session_params *p, bn_session **out, bn_error *err);
void bn_session_free(bn_session *s);
// Optional: starts the device of a GPU backend ("cuda", or "auto"/NULL when a
// GPU backend is compiled in) in the background, so that its start-up overlaps
// loading the model; call it before bn_engine_load. Does nothing for "cpu".
void bn_backend_warmup(const char *backend);
// Name of the backend in use, and why it was picked (for "auto").
const char *bn_session_backend(const bn_session *s);
const char *bn_session_backend_note(const bn_session *s);
int bn_session_n_ctx(const bn_session *s);
int bn_session_pos(const bn_session *s); // tokens in the KV cache
void bn_session_reset(bn_session *s);    // forget all tokens
uint64_t bn_session_backend_bytes(const bn_session *s);
// Weight bytes one decode step reads: every ternary matrix and the LM head in the
// form this session uses (f16, or int8 with --lm-head q8). Over the machine's
// read bandwidth, the fastest a decode step can be (the roofline).
uint64_t bn_session_decode_bytes(const bn_session *s);

// Called for each generated token (end-of-generation tokens excepted) with its id
// and the complete UTF-8 text it finished (possibly empty while a character is
// split over tokens). A long token's text may come in several calls, the later
// ones with id -1; a last call with id -1 flushes an incomplete character at the
// end. Return nonzero to stop.
typedef int (*bn_token_fn)(void *user, int32_t id, const char *text, size_t len);

// Why bn_session_generate stopped.
typedef enum bn_stop {
    BN_STOP_LENGTH,  // n_predict tokens generated
    BN_STOP_EOG,     // an end-of-generation token (counted in n_gen, not passed to on_token)
    BN_STOP_CONTEXT, // the context is full
    BN_STOP_CALLER,  // on_token returned nonzero
} bn_stop;

// "length", "eog", "context" or "caller".
const char *bn_stop_name(bn_stop stop);

typedef struct bn_timings {
    double backend_ms;   // session creation (weights to the backend)
    double prefill_ms;   // prompt forward pass
    double decode_ms;    // all decode steps
    int n_prompt, n_gen; // tokens
    bn_stop stop;        // why the generation ended
} bn_timings;

// Feeds prompt[0..n_prompt) after the tokens already in the session, then
// samples up to n_predict tokens (stops early at end-of-generation tokens or
// when the context is full). A prompt that does not fit is an error.
int bn_session_generate(bn_session *s, const int32_t *prompt, size_t n_prompt, int n_predict,
                        const bn_sampling *sp, bn_token_fn on_token, void *user,
                        bn_timings *timings, bn_error *err);

// Logits after feeding tokens (for tests and tools): runs the forward pass for
// them after the tokens already in the session and copies the last row.
int bn_session_eval(bn_session *s, const int32_t *tokens, size_t n, float *logits, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif
