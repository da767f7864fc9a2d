// bitnet.h - the public C API of bitnet-gpu, and its only installed header
// (with the generated bitnet_version.h). It includes no project header, so a
// program built against an installed tree sees exactly this.
//
//   bn_engine     a loaded model file and its tokenizer (read-only, mmap'd)
//   bn_session    a backend instance (weights on the device, KV cache) plus the
//                 tokens already fed; generate() continues from where it stopped,
//                 so a chat keeps its KV cache between turns.
//   bn_tokenizer  the tokenizer alone (text <-> ids without a model's weights)
//   and the streaming UTF-8 decoder, for tools that print tokens as they come.
//
// The development tools (the synthetic model writer of `make-model`, the model
// report of `inspect`) are not part of this library: devtools/devtools.h.
//
// Every function returns 0 on success and -1 on failure with a message in the
// caller's bn_error. Nothing here prints or exits. The `bitnet-gpu` CLI is
// written against this header (and devtools.h, for make-model and inspect).
#ifndef BITNET_H
#define BITNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet_version.h" // BITNET_VERSION_MAJOR/MINOR/PATCH, BITNET_VERSION_STRING

// The shared library exports these symbols and nothing else (it is built with
// hidden visibility, so internal functions cannot clash with a program's own).
#if defined(__GNUC__)
#define BN_API __attribute__((visibility("default")))
#else
#define BN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

// The library's version, "MAJOR.MINOR.PATCH": compare with BITNET_VERSION_STRING
// to catch a program built against another version's header.
BN_API const char *bn_version(void);

typedef struct bn_error {
    char msg[512];
} bn_error;

// ---- sampling ------------------------------------------------------------------
// The order follows llama.cpp: logit biases, then the penalties (each distinct
// token of the last repeat_last_n: its logit divided by repeat_penalty when
// positive, else multiplied; then count * frequency_penalty + presence_penalty
// taken off, count being its occurrences there), then greedy argmax when
// temperature is 0, else top-k, temperature, softmax, top-p, min-p, and a draw
// from a seeded RNG of our own, so a seed gives the same tokens on any machine.
typedef struct bn_logit_bias {
    int32_t token;
    float bias; // added to the token's logit (at most 1e9 in size); -INFINITY bans it
} bn_logit_bias;

typedef struct bn_sampling {
    float temperature;    // <= 0: greedy
    int top_k;            // <= 0: all tokens
    float top_p;          // >= 1: off
    float min_p;          // <= 0: off
    float repeat_penalty; // 1: off
    int repeat_last_n;    // how many recent tokens the penalties look at
    uint64_t seed;
    float frequency_penalty; // 0: off (OpenAI's and llama.cpp's frequency penalty); at most 1e9 in size
    float presence_penalty;  // 0: off; at most 1e9 in size
    // n_logit_bias entries (tokens may repeat: their biases add up). Read when
    // a generation or a batch request starts (copied then), not kept.
    const bn_logit_bias *logit_bias;
    size_t n_logit_bias;
} bn_sampling;

// llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty.
BN_API bn_sampling bn_sampling_default(void);
BN_API bn_sampling bn_sampling_greedy(void);
BN_API int bn_sampling_validate(const bn_sampling *p, bn_error *err);
// Whether p picks the argmax of the raw logits: temperature 0, no penalty, no bias.
BN_API bool bn_sampling_is_greedy(const bn_sampling *p);

// ---- engine: model + tokenizer ---------------------------------------------------
typedef struct bn_engine bn_engine;
typedef struct bn_session bn_session;

// tokenizer_json may be NULL: the tokenizer embedded in the GGUF is used.
BN_API int bn_engine_load(const char *model_path, const char *tokenizer_json, bn_engine **out,
                          bn_error *err);
BN_API void bn_engine_free(bn_engine *e);

typedef struct bn_model_info {
    const char *arch;
    int n_vocab, n_ctx_train, n_embd, n_layer, n_ff, n_head, n_head_kv;
    uint64_t file_bytes;
} bn_model_info;
BN_API bn_model_info bn_engine_info(const bn_engine *e);
BN_API double bn_engine_load_ms(const bn_engine *e);

// Text -> ids (malloc'd; free with free()). parse_special: "<|eot_id|>" in the
// text is the special token instead of plain text.
BN_API int bn_engine_tokenize(const bn_engine *e, const char *text, bool add_bos,
                              bool parse_special, int32_t **ids, size_t *n_ids, bn_error *err);
// Raw bytes of one token (may be part of a UTF-8 character); NULL if invalid.
BN_API const char *bn_engine_token_bytes(const bn_engine *e, int32_t id, size_t *len);
BN_API bool bn_engine_is_eog(const bn_engine *e, int32_t id);
BN_API bool bn_engine_add_bos(const bn_engine *e); // the vocabulary's add_bos_token
BN_API int32_t bn_engine_bos(const bn_engine *e);  // its BOS id (-1: none)
BN_API int32_t bn_engine_eos(const bn_engine *e);  // its EOS id (-1: none)
// Whether tokenizing a text puts a space before it (a SentencePiece vocabulary's
// add_space_prefix): the text's first token then begins with a space that the
// text does not have, and that bn_engine_detokenize drops from a first token.
BN_API bool bn_engine_space_prefix(const bn_engine *e);
// The chat format the engine's prompts use: "bitnet" (2B-4T's), "llama3" or
// "falcon3", as the GGUF's tokenizer.chat_template asked (a tokenizer.json's:
// "bitnet"); setting it overrides that, as llama.cpp's --chat-template NAME
// does (-1 and err for another name). Set it before generating, not during.
BN_API const char *bn_engine_chat_template(const bn_engine *e);
BN_API int bn_engine_set_chat_template(bn_engine *e, const char *name, bn_error *err);
// The Jinja chat template the model carries (the GGUF's tokenizer.chat_template,
// or a tokenizer.json's tokenizer_config.json's), for clients that render
// conversations themselves (vLLM's /tokenizer_info); NULL when there is none,
// or when the format in use is not the one it asks for (set above, or a
// tokenizer.json's vocabulary, which chats in 2B-4T's format).
BN_API const char *bn_engine_chat_template_jinja(const bn_engine *e);
// One user turn in the model's chat format (docs/architecture.md: Tokenizer and
// chat format; the style comes from the GGUF's tokenizer.chat_template: BitNet
// b1.58 2B-4T's by default, Llama-3 Instruct's or Falcon3 Instruct's), as token
// ids; for 2B-4T:
//   [<|eot_id|>]  [<|begin_of_text|> [System: SYSTEM<|eot_id|>]]  User: USER<|eot_id|>Assistant: 
// first_turn adds BOS (where the format has one) and the system prompt (may be
// NULL); close_previous ends a previous reply that stopped without its end of
// turn (<|eot_id|>; Falcon3: <|endoftext|>). The message texts are never parsed
// for special tokens, so a user cannot inject them.
BN_API int bn_engine_chat_tokens(const bn_engine *e, const char *system, const char *user,
                                 bool first_turn, bool close_previous, int32_t **ids,
                                 size_t *n_ids, bn_error *err);
// A whole conversation in that format, for callers that hold no session
// between requests (an HTTP server, the Python package); for 2B-4T: BOS, each
// message as "Role: content<|eot_id|>" (Role System, User or Assistant for role
// "system", "user" or "assistant"), then "Assistant: ". Contents are never
// parsed for special tokens. *ids is malloc'd; free with free().
typedef struct bn_chat_message {
    const char *role;
    const char *content; // NULL is ""
} bn_chat_message;
BN_API int bn_engine_chat_prompt(const bn_engine *e, const bn_chat_message *msgs, size_t n_msgs,
                                 int32_t **ids, size_t *n_ids, bn_error *err);
// Ids -> text: the tokens' bytes concatenated (special tokens as their text), as
// bn_detokenize (below). *text is malloc'd and NUL-terminated (the NUL is not
// counted in *len); fails on an id outside the vocabulary.
BN_API int bn_engine_detokenize(const bn_engine *e, const int32_t *ids, size_t n, char **text,
                                size_t *len, bn_error *err);

// ---- session: backend + KV cache + generation -------------------------------------
typedef struct bn_session_params {
    const char *backend;     // "auto" (default), "cpu", "cuda", "reference" (slow, scalar)
    int n_threads;           // CPU threads; 0 = physical cores
    int n_ctx;               // 0 = the model's context length
    bool lm_head_q8;         // int8 LM head (faster, not bit-exact with the reference)
    const char *cpu_kernels; // NULL/"auto", "scalar", "avx2", "avx512", "amx" (x86-64), "neon"
                             // (AArch64); amx on Linux asks the OS for the AMX tiles,
                             // which makes a later sigaltstack of less than ~12 KiB
                             // fail (auto asks where the CPU has AMX)
    // Start on the CPU at once while the backend named above opens on a thread,
    // and move to it between two steps once it is open (it first reads the
    // tokens so far). For a backend other than "cpu" that may be present ("auto"
    // and "cuda": a GPU device exists) where the CPU backend opens with these
    // parameters (with lm_head_q8 it quantizes its own head first, bit for bit
    // the GPU's int8 head); otherwise ignored. A named backend
    // that fails to open fails the step that finds out and every later one;
    // under "auto" the session stays on the CPU. The tokens computed before the
    // move come from the CPU's logits, which agree with a GPU's to rounding, so
    // a near tie may go the other way than on the GPU alone; false (the
    // default) keeps a session on one backend throughout.
    bool cpu_start;
} bn_session_params;

BN_API int bn_session_create(bn_engine *e, const bn_session_params *p, bn_session **out,
                             bn_error *err);
// Starts, on a thread, the part of a backend's set-up that needs no model (for
// CUDA: the device's context, about 0.3 s), so that it runs while the model
// loads and a later bn_session_create finds it done; backend as in
// bn_session_params (NULL or "auto": CUDA where compiled in). Nothing happens for
// a backend without such a part, or where it fails (session creation then
// reports why). Call bn_backend_prewarm_wait before the process exits: a CUDA
// runtime still starting on that thread must not meet its own exit handlers.
BN_API void bn_backend_prewarm(const char *backend);
BN_API void bn_backend_prewarm_wait(void);
BN_API void bn_session_free(bn_session *s);
// cpu_start: whether the session has not yet moved to the backend opening on
// a thread (it may have finished opening: the move comes at the next step;
// bn_session_free waits for the thread), and a wait for it to open and the
// move to it (0 when nothing is opening; -1 where it fails and the session's
// backend was named rather than "auto", err says why: then for good, as every
// later step, since the session never ran on what was asked for).
BN_API bool bn_session_opening(const bn_session *s);
BN_API int bn_session_wait_backend(bn_session *s, bn_error *err);
// Name of the backend in use, and why it was picked (for "auto").
BN_API const char *bn_session_backend(const bn_session *s);
BN_API const char *bn_session_backend_note(const bn_session *s);
// The CPU kernel set in use ("scalar", "avx2", "avx512", "amx", "neon"); NULL on another backend.
BN_API const char *bn_session_cpu_kernels(const bn_session *s);
BN_API int bn_session_n_ctx(const bn_session *s);
BN_API int bn_session_pos(const bn_session *s); // tokens in the KV cache
// How many prompt tokens the next bn_session_generate can take: the context less
// every token the session holds, the last sampled one (fed by that call) included.
BN_API int bn_session_room(const bn_session *s);
BN_API void bn_session_reset(bn_session *s);    // forget all tokens
// The prompt cache of a session that serves one request after another (each
// resending the whole conversation): forgets every token after the longest start
// that the tokens in its KV cache share with ids[0..n), short of ids' last token
// (fed again for its logits), and returns how many it kept, k. The next
// bn_session_generate then takes ids + k, n - k. On the CPU that gives bit for bit
// what bn_session_reset and all of ids give; on CUDA, within the fixtures'
// tolerance (the kept tokens' K/V came from other kernels, as in bn_batch's
// prompt cache; test_batch's test_session_keep_prefix_cuda, not yet run on a GPU).
BN_API int bn_session_keep_prefix(bn_session *s, const int32_t *ids, size_t n);
BN_API uint64_t bn_session_backend_bytes(const bn_session *s);
// Weight bytes one decode step reads: every ternary matrix and the LM head in the
// form the session's backend holds them (f16, or int8 with --lm-head q8). Over the
// read bandwidth below, the fastest a decode step can be (the roofline).
BN_API uint64_t bn_session_decode_bytes(const bn_session *s);
// The read bandwidth (GB/s, 1e9 bytes) of the memory the session's backend
// decodes from, measured now (the CPU: with its threads, in under a second); 0
// when the backend cannot measure it (CUDA, for now).
BN_API double bn_session_read_bandwidth_gbs(const bn_session *s);

// A token's log-probability under the model: the log-softmax of its raw logits
// (before temperature, penalties or truncation), as OpenAI's logprobs report it.
typedef struct bn_token_logprob {
    int32_t id;
    float logprob;
} bn_token_logprob;

#define BN_TOP_LOGPROBS_MAX 20 // alternatives a request may ask for per token (OpenAI's limit)

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
    BN_STOP_STRING,  // bn_batch: the text reached one of the request's stop strings
} bn_stop;

// "length", "eog", "context", "caller" or "stop".
BN_API const char *bn_stop_name(bn_stop stop);

typedef struct bn_timings {
    double backend_ms;   // the backend's opening (weights to it); after a cpu_start move, the moved-to one's
    double prefill_ms;   // prompt forward pass
    double decode_ms;    // all decode steps
    int n_prompt, n_gen; // tokens
    bn_stop stop;        // why the generation ended
} bn_timings;

// Feeds prompt[0..n_prompt) after the tokens already in the session, then
// samples up to n_predict tokens (stops early at end-of-generation tokens or
// when the context is full). A prompt that does not fit is an error. Every
// token that is fed fits in the context; the last sampled one needs no room
// until the next call feeds it, so with a context of C a prompt of C - 1 tokens
// gives 2 tokens and a prompt of C tokens gives 1 (stop: BN_STOP_CONTEXT).
BN_API int bn_session_generate(bn_session *s, const int32_t *prompt, size_t n_prompt,
                               int n_predict, const bn_sampling *sp, bn_token_fn on_token,
                               void *user, bn_timings *timings, bn_error *err);

// Holds the replies of later bn_session_generate calls to a JSON Schema (a JSON
// text; "{\"type\": \"object\"}" for JSON mode), as bn_request.json_schema holds a
// batch request's: each call's reply is one JSON value the schema accepts, read
// from the call's first generated token; a token that would leave no way to
// finish it is never picked (nor a special token), and the call ends (stop:
// BN_STOP_EOG, with no end-of-generation token) as the value closes, or where no
// token fits (BN_STOP_LENGTH). Each step then brings back its whole row of
// logits. NULL lifts it. A schema it cannot follow: -1 and err, and the one
// before stays.
BN_API int bn_session_set_json_schema(bn_session *s, const char *schema, bn_error *err);
// Holds the replies of later calls to a regular expression, as bn_request.regex
// holds a batch request's: each call's reply is one string it matches whole,
// ending (BN_STOP_EOG) where nothing can follow the match. NULL lifts it. A
// regex lifts a JSON Schema, and a schema a regex. An expression it cannot
// follow: -1 and err (naming its offset), and the one before stays.
BN_API int bn_session_set_regex(bn_session *s, const char *pattern, bn_error *err);
// Whether a pattern can hold a reply (bn_request.regex, bn_session_set_regex):
// 0, or -1 and err (what and where in it).
BN_API int bn_regex_check(const char *pattern, bn_error *err);
// The pattern that matches each of the n (>= 1) choices exactly and nothing
// else (vLLM's guided_choice): their regex characters escaped, joined by "|",
// into *pattern (malloc'd; free with free()). -1 and err for none, or a choice
// with a control character no reply can hold (U+0000..U+001F but \b \t \n
// \f \r: the regular expressions' alphabet, core/json_regex.h).
BN_API int bn_regex_of_choices(const char *const *choices, size_t n, char **pattern, bn_error *err);

// Reports log-probabilities with the tokens of later bn_session_generate calls,
// as bn_request's logprobs and top_logprobs do for a batch's: top_logprobs < 0
// turns it off (the default), 0..BN_TOP_LOGPROBS_MAX on, with that many of the
// likeliest tokens beside each. Each step then brings back its whole row of
// logits. -1 and err for a count out of range, or no memory for the row.
BN_API int bn_session_set_logprobs(bn_session *s, int top_logprobs, bn_error *err);
// Called from on_token while logprobs are on: the token last sampled (in a call
// with an id >= 0, that id; an end-of-generation token is sampled, not passed to
// on_token, before the last call): its log-probability (*logprob) and the
// likeliest tokens' (*top, most likely first, the lower id first among equals;
// valid until on_token returns). Returns how many are in *top, or -1 (*logprob
// 0, *top NULL) when logprobs are off or no token has been sampled yet.
BN_API int bn_session_token_logprobs(const bn_session *s, float *logprob, const bn_token_logprob **top);
// While logprobs are on, the id of the token last sampled, whose values
// bn_session_token_logprobs gives: after bn_session_generate returns, an
// end-of-generation token it ended with (which on_token never saw); -1 when
// none has been sampled.
BN_API int32_t bn_session_token_id(const bn_session *s);

// Prompt lookup decoding for later bn_session_generate calls (vLLM's "ngram"
// speculative decoding, llama.cpp's llama-lookup): at each step the tokens that
// followed the last earlier occurrence of the text's final 2 to 4 tokens are
// drafted, up to max_draft of them (0..32; 0, the default, turns it off), and
// fed with the pending token in one forward pass whose every row is kept; the
// sampler then reads those rows in order for as long as it picks the drafted
// tokens. The tokens are those of a step at a time wherever a pass's rows are
// bit for bit a single step's (the CPU kernel sets: test_lookup checks it), and
// a pass that verifies t tokens costs much less than t steps where the text
// repeats itself. Each pass brings back its whole rows of logits. The draft
// shrinks after a miss and grows after a hit, so a text that does not repeat
// costs little more than without. -1 and err for a count out of range or no
// memory for the rows. Turns off a draft model (bn_session_set_draft).
BN_API int bn_session_set_lookup(bn_session *s, int max_draft, bn_error *err);
// What lookup did in the last bn_session_generate call: tokens drafted, of them
// taken, and the verifying passes that fed them.
typedef struct bn_lookup_stats {
    uint64_t drafted, accepted, passes; // a batch counts them for its whole life
} bn_lookup_stats;
BN_API bn_lookup_stats bn_session_lookup_stats(const bn_session *s);

// Speculative decoding with a draft model (llama.cpp's llama-speculative, vLLM's
// draft-model speculation) for later bn_session_generate calls: draft, the
// caller's session on a smaller model with the same vocabulary (every id the same
// token), drafts up to max_draft tokens (1..32) at each step, stopping before a
// step where its likeliest token's probability is below p_min (0..1; 0: no stop;
// instead of whole rows the draft's backend brings back its argmax where the
// sampler is greedy and p_min 0, else its best entries where the sampler needs no
// more, with their row's softmax denominator where p_min is above 0), and s
// verifies them as it verifies lookup's (above): one pass, the same tokens as a
// step at a time, the draft's length following its hits and misses. The draft
// picks as the generation does: greedily, or sampling with a copy of the
// generation's sampler and its random state, so that where the two models agree it
// draws the token s will (a model drafting for itself has every draft taken,
// sampled or not, but in a JSON reply, whose mask the draft does not apply). The
// draft session keeps its own KV cache, in step with s's history (what s did not
// take is dropped from it at the next draft); it must outlive its use by s, and s
// never frees it. bn_session_lookup_stats counts its drafts. This replaces prompt
// lookup, and bn_session_set_lookup replaces it; draft NULL or max_draft 0 turns
// both off. -1 and err for different vocabularies, draft == s, or a count or p_min
// out of range, and s then drafts nothing.
BN_API int bn_session_set_draft(bn_session *s, bn_session *draft, int max_draft, float p_min, bn_error *err);
// NULL, or why the draft model stopped drafting: it failed in a generation
// (its backend, or logits that are not finite), which went on without drafts,
// as later ones do; the tokens are those without drafts. bn_session_set_draft
// clears it.
BN_API const char *bn_session_draft_note(const bn_session *s);

// Logits after feeding tokens (for tests and tools): runs the forward pass for
// them after the tokens already in the session and copies the last row.
BN_API int bn_session_eval(bn_session *s, const int32_t *tokens, size_t n, float *logits,
                           bn_error *err);
// The same with every fed token's row: logits holds n rows of n_vocab floats
// (row i follows tokens[i]), as a perplexity needs them.
BN_API int bn_session_eval_all(bn_session *s, const int32_t *tokens, size_t n, float *logits,
                               bn_error *err);
// Scores a text, as an evaluation (lm-evaluation-harness) does: the session
// forgets what it holds and is fed tokens[0..n) (n >= 1; its cache then holds
// them, as a generation's prompt, for bn_session_keep_prefix), and for each
// token i >= 1 logprob[i] = log P(tokens[i] | tokens[0..i)), the log-softmax of
// the raw logits, and its top_logprobs (0..BN_TOP_LOGPROBS_MAX, at most the
// vocabulary's size) likeliest tokens' at top[i * top_logprobs ..] (most likely
// first; top may be NULL when top_logprobs is 0). logprob[0] is NaN: nothing
// precedes it. A text that does not fit the context is refused first, leaving
// the session as it was.
BN_API int bn_session_score(bn_session *s, const int32_t *tokens, size_t n, int top_logprobs, float *logprob,
                            bn_token_logprob *top, bn_error *err);

// ---- batch: many sequences on one backend (continuous batching) -----------------------
// A batch is one backend whose KV cache has n_slots sequence slots of n_ctx
// positions each. A request (prompt ids, sampling, limits, stop strings) goes into
// a free slot; each bn_batch_step runs one forward pass over every active slot
// together - the next chunk of each new prompt and one token of every slot that
// is generating - so a step reads the weights once for all of them. Between steps
// the caller adds requests and removes finished or cancelled ones, so requests
// join and leave while others run. One thread owns a batch (no locking inside).
//
// Prompt cache: a freed slot keeps the K/V of the tokens it was fed. A request
// goes to the free slot that holds the longest start of its prompt, if that is
// at least half of it (else, and among equals, to the one that has been free
// longest, so that the recent conversations keep their caches), and only the
// rest is fed: the next turn of a conversation costs its new tokens, not the
// whole history. Where another slot, free or running, holds a longer start of
// the prompt (a system prompt many requests share, the same prompt sampled n
// times), the backend copies those K/V into the request's slot instead of
// computing them again (bn_batch_shares_prompts). The prompt's last token is
// always fed again (its logits give the first token). On the CPU the result is
// bit for bit that of feeding the whole prompt; on CUDA the cached tokens were
// computed by other kernels (decode steps, other chunks), so it is within the
// fixtures' tolerance (bn_request.no_prefix_cache: none of it).
//
//   for (;;) {
//       while (queued && bn_batch_n_free(b)) bn_batch_add(b, &req, &err);
//       bn_batch_step(b, &ev, &n, &err);
//       for (i < n) { use ev[i].text; if (ev[i].done) bn_batch_remove(b, ev[i].slot); }
//   }
typedef struct bn_batch bn_batch;

typedef struct bn_batch_params {
    bn_session_params session; // backend, threads, n_ctx (per slot), LM head, CPU kernels
    int n_slots;               // sequences at once (<= 0: 1)
    int step_tokens;           // tokens one step feeds, decode and prompt chunks (<= 0: 512)
} bn_batch_params;

typedef struct bn_request {
    const int32_t *prompt; // n_prompt >= 1 ids, copied; must fit in the slot's context
    size_t n_prompt;
    int max_tokens;        // tokens to generate at most (<= 0: until the context is full)
    bn_sampling sampling;  // the slot's own sampler and seed
    const char *const *stop; // n_stop stop strings (copied): the text ends before the first match
    size_t n_stop;
    void *user;            // handed back in the slot's events
    bool no_prefix_cache;  // feed the whole prompt, reusing no slot's cached K/V
    bool logprobs;         // report each sampled token's log-probability (a step with
    int top_logprobs;      // such a slot brings back whole rows of logits) and the
                           // top_logprobs (0..BN_TOP_LOGPROBS_MAX) likeliest tokens
    bool prompt_logprobs;  // with logprobs, the prompt's tokens' too (each but the
                           // first; bn_batch_event.prompt_logprob), as an evaluation
                           // (lm-evaluation-harness) scores a text: the prompt is fed
                           // in forward calls of its own that bring back a row of
                           // logits per token, and takes nothing from the prompt cache
    bool json_object;      // JSON mode: the text is one JSON object. A token whose bytes
                           // would leave no way to finish it is never picked (nor a
                           // special token); the request ends (stop: BN_STOP_EOG) as the
                           // object closes. From whole rows of logits, as logprobs.
    const char *json_schema; // JSON Schema mode: as json_object, but the text's value is
                           // one this schema (a JSON text) accepts, within what
                           // json_schema.h supports; bn_batch_add fails with the
                           // schema's error otherwise. An end-of-generation token is
                           // taken only where the value may end (a top-level number).
                           // With both set, the schema is what holds.
    const char *regex;     // the text is one string this regular expression matches from
                           // its first byte to its last (vLLM's guided_regex; an
                           // ECMA-262 expression of the subset core/json_regex.h
                           // names): masked as json_object is, ending (stop:
                           // BN_STOP_EOG) where nothing can follow the match;
                           // bn_batch_add fails with the expression's error, or
                           // beside json_object or json_schema
} bn_request;

// What one step did for one slot: a sampled token, released text, the end.
typedef struct bn_batch_event {
    int slot;
    void *user;          // the request's
    int32_t token;       // the token sampled in this step (-1: none, a JSON request that
                         // no token could continue, which ends with BN_STOP_LENGTH)
    bool eog;            // token is an end-of-generation token (it has no text)
    const char *text;    // whole UTF-8 characters released by this step (valid until the
    size_t len;          // next step or remove); text that may begin a stop string waits
    bool done;           // finished: read it, then bn_batch_remove(slot)
    bn_stop stop;        // why, when done: BN_STOP_LENGTH, _EOG, _CONTEXT or _STRING
    int n_prompt, n_gen; // tokens so far (n_gen counts an end-of-generation token)
    int n_cached;        // of the n_prompt, those whose K/V came from a cache (the slot's, or
                         // copied from another slot's)
    // With the request's logprobs: the token's, and the n_top likeliest tokens'
    // (most likely first, the lower id first among equals; valid until the next
    // step or remove). Else logprob 0 and n_top 0.
    float logprob;
    int n_top;
    const bn_token_logprob *top;
    // With the request's prompt_logprobs: prompt token i's log-probability given
    // the tokens before it, prompt_logprob[i] for 1 <= i < n_prompt ([0] is NaN:
    // nothing precedes it), and its n_top likeliest tokens' at prompt_top[i *
    // n_top ..] (as top). Valid until remove. Else both NULL.
    const float *prompt_logprob;
    const bn_token_logprob *prompt_top;
} bn_batch_event;

BN_API int bn_batch_create(bn_engine *e, const bn_batch_params *p, bn_batch **out, bn_error *err);
BN_API void bn_batch_free(bn_batch *b);
BN_API const char *bn_batch_backend(const bn_batch *b);
BN_API const char *bn_batch_backend_note(const bn_batch *b);
BN_API int bn_batch_n_ctx(const bn_batch *b);   // positions per slot
BN_API int bn_batch_n_slots(const bn_batch *b);
BN_API int bn_batch_n_free(const bn_batch *b);  // slots bn_batch_add can fill
BN_API int bn_batch_n_active(const bn_batch *b); // slots with a request that has not finished
// Whether a request can take the start of its prompt from another slot's cache,
// a running one's too (the backend copies K/V between slots, as the CPU and CUDA
// backends do). A caller with n requests of one prompt then feeds the prompt
// once: it adds one, and the others once that one has begun generating.
BN_API bool bn_batch_shares_prompts(const bn_batch *b);
// Puts r into a free slot (the prompt cache above says which) and returns the
// slot (>= 0), or -1 with err (no free slot, an empty prompt or one that does
// not fit, bad ids or sampling), or -2 with err where the backend failed to
// copy cached K/V between slots (a fault of the backend, not of the request).
BN_API int bn_batch_add(bn_batch *b, const bn_request *r, bn_error *err);
// Whether bn_request.json_schema can take this schema (a JSON text, n bytes):
// 0, or -1 with what it cannot follow and where in err (bn_batch_add would
// fail with the same error).
BN_API int bn_json_schema_check(const char *schema, size_t n, bn_error *err);
// Frees a slot at once, finished or not (a cancelled request). Out-of-range or
// free slots are ignored.
BN_API void bn_batch_remove(bn_batch *b, int slot);
// One forward pass over the active slots. *events (owned by the batch, valid
// until the next step) gets one entry per slot that sampled a token this step;
// *n_events may be 0 (only prompt chunks were fed, or nothing is active). On
// failure (-1) the slots are as before the call.
BN_API int bn_batch_step(bn_batch *b, const bn_batch_event **events, int *n_events, bn_error *err);
// Prompt lookup decoding for the batch's generating slots, as
// bn_session_set_lookup for a session (max_draft 0..32, 0 the default: off):
// a slot may draft after its pending token, the step's forward call of
// generating slots then brings back every token's row (its prompt chunks go in
// a second call, a row a run), and the
// rows after the drafted tokens wait (64 rows at most, all slots together) for
// the steps whose pending tokens are those drafted: there the slot samples
// from its row without a run in the call, and a step in which every slot does
// makes no forward call. Each step still gives each generating slot one token,
// the one it gives without lookup wherever a pass's rows are a step's bit for
// bit (the CPU kernel sets). Between steps; -1 and err for a count out of range
// or no memory for the rows. bn_batch_lookup_stats: what it did since the
// batch was made (accepted: tokens taken from rows ahead).
BN_API int bn_batch_set_lookup(bn_batch *b, int max_draft, bn_error *err);
BN_API bn_lookup_stats bn_batch_lookup_stats(const bn_batch *b);
// Speculative decoding with a draft model for the batch's generating slots, as
// bn_session_set_draft for a session, in the steps where bn_batch_set_lookup's
// slots would draft: the batch opens one backend on draft (an engine with the
// same vocabulary, which must outlive the batch's use of it), with p's
// backend, threads and kernels and a sequence slot for each of the batch's
// (p->n_ctx 0: the batch's context, or the draft model's where shorter), and
// each slot drafts up to max_draft tokens (1..32) from its own sequence there,
// picking as its request does (bn_session_set_draft), stopping before a step
// whose likeliest token is below p_min (0..1). The slots draft together: a
// call of the draft model feeds each what it lacks, then each further call
// drafts a token for each slot still drafting (16 slots a call at most).
// It replaces prompt lookup, and bn_batch_set_lookup replaces it; draft NULL or
// max_draft 0 turns both off (p NULL: the defaults). Between steps; -1 and err
// for different vocabularies, counts or p_min out of range, or a backend that
// cannot open, and the batch then drafts nothing.
BN_API int bn_batch_set_draft(bn_batch *b, const bn_engine *draft, const bn_session_params *p, int max_draft,
                              float p_min, bn_error *err);
// NULL, or why the draft model stopped drafting: it failed in a step (its
// backend, or logits that are not finite), which went on without drafts, as
// does every later one; the requests lose nothing but the speed-up.
// bn_batch_set_draft clears it.
BN_API const char *bn_batch_draft_note(const bn_batch *b);

// ---- OpenAI function calling ("tools") -------------------------------------------
// For models not trained for it, as `bitnet-gpu serve` does it (README: Structured
// replies and tool calls): the tools are listed in the system message, and the
// reply is held to a JSON Schema whose values are
// {"tool_calls": [{"name", "arguments"}, ...]} or {"response": ...}.

// From a chat request body (JSON text: "messages", "tools", "tool_choice",
// "parallel_tool_calls", and "stop", which tools refuse): *messages_json, the
// conversation as the model reads it (a JSON array of {"role", "content"} for
// bn_engine_chat_prompt: content parts joined, "developer" as "system", tool
// results and earlier calls as text, the tools in the system message), and
// *reply_schema, the schema for bn_request.json_schema (NULL when no tool may be
// called: no tools, or tool_choice "none"). response_schema: the JSON Schema an
// answer that calls no tool is held to (a response_format's; NULL: free text).
// Both are malloc'd (free with free()). Returns 0, or -1 with the reason (naming
// the field) in err and both NULL; a request with a \u0000 escape is refused.
BN_API int bn_tools_chat_request(const char *request_json, const char *response_schema,
                                 char **messages_json, char **reply_schema, bn_error *err);
// The assistant's message for the whole text of a reply held to *reply_schema: a
// JSON object (malloc'd; NULL when memory is short) with the "content" of an
// answer, or "tool_calls" and a null "content". Call ids are
// "call_<reply_id after its first '-'>_<i>" (reply_id "chatcmpl-abc": call_abc_0,
// ...). With delta, each call has its "index", as a stream's chunk carries them.
// *called: whether it calls tools (finish_reason "tool_calls"). A text cut short
// (max_tokens) is not the schema's JSON: it is the content. reply_id and called
// must not be NULL.
BN_API char *bn_tools_chat_reply(const char *text, size_t len, const char *reply_id, int delta, int *called);

// ---- the tokenizer alone (docs/architecture.md: Tokenizer and chat format) --------------
// Byte-level BPE (Llama-3, Falcon3; GGUF tokenizer.ggml.model "gpt2") or LLaMA
// SentencePiece (1bitLLM; "llama"), each as llama.cpp tokenizes.
// A loaded tokenizer is immutable: any number of threads may use it at once.
typedef struct bn_tokenizer bn_tokenizer;

// From a HuggingFace tokenizer.json (model.type "BPE"); a tokenizer_config.json in
// the same directory supplies bos/eos/add_bos and the chat template.
BN_API int bn_tokenizer_from_json(const char *tokenizer_json_path, bn_tokenizer **out,
                                  bn_error *err);
// From the vocabulary embedded in a GGUF model file (tokenizer.ggml.*).
BN_API int bn_tokenizer_from_model(const char *gguf_path, bn_tokenizer **out, bn_error *err);
BN_API void bn_tokenizer_free(bn_tokenizer *t);

// Encodes len bytes of text (any bytes: invalid UTF-8 and NUL are fine and
// round-trip through bn_detokenize, but for a SentencePiece vocabulary's space
// prefix). add_bos prepends BOS. parse_special: the
// text of special tokens (e.g. "<|eot_id|>") becomes that token; otherwise it
// is encoded as plain text. *ids is malloc'd (never NULL on success), caller frees.
BN_API int bn_tokenize(const bn_tokenizer *t, const char *text, size_t len, bool add_bos,
                       bool parse_special, int32_t **ids, size_t *n_ids, bn_error *err);
// The raw bytes a token stands for (special tokens: their text); not
// NUL-terminated. NULL when id is out of range.
BN_API const char *bn_token_bytes(const bn_tokenizer *t, int32_t id, size_t *len);
// Concatenates bn_token_bytes of ids (a SentencePiece vocabulary: less the
// first token's leading space, as llama.cpp's llama_detokenize); *text is
// malloc'd and NUL-terminated (the NUL is not counted in *len). Fails on an
// out-of-range id.
BN_API int bn_detokenize(const bn_tokenizer *t, const int32_t *ids, size_t n, char **text,
                         size_t *len, bn_error *err);

BN_API int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t);
BN_API int32_t bn_tokenizer_bos(const bn_tokenizer *t); // -1 when the vocabulary has none
BN_API int32_t bn_tokenizer_eos(const bn_tokenizer *t);
BN_API int32_t bn_tokenizer_eot(const bn_tokenizer *t);
BN_API bool bn_tokenizer_add_bos(const bn_tokenizer *t);
BN_API bool bn_tokenizer_is_eog(const bn_tokenizer *t, int32_t id); // end of generation
BN_API bool bn_tokenizer_is_special(const bn_tokenizer *t, int32_t id);

// ---- streaming UTF-8: print tokens as they come --------------------------------------
// A token may end in the middle of a character (one emoji over three byte
// tokens). Push each token's bytes; out receives only whole characters, and a
// started character is held back until its last byte arrives. Invalid input is
// passed through unchanged as soon as it is known to be invalid, never replaced:
// output never stalls, and all outputs (with the final flush) concatenate to
// exactly the input.
typedef struct bn_utf8_stream { // zero-initialise ({0}) to start a stream
    unsigned char pending[4];   // the started, still-valid character
    int n;                      // bytes in pending (0..3)
} bn_utf8_stream;

// Feeds n bytes; writes the complete output to out (room for n + 4 bytes) and
// returns its length.
BN_API size_t bn_utf8_stream_push(bn_utf8_stream *s, const char *in, size_t n, char *out);
// End of stream: writes any held (incomplete) bytes as they are; out needs 4 bytes.
BN_API size_t bn_utf8_stream_flush(bn_utf8_stream *s, char *out);
// Length (1..4) of the valid UTF-8 character at the start of s (n bytes), or
// 0 when s does not start with one (also for n == 0).
BN_API size_t bn_utf8_char_len(const char *s, size_t n);
// Whether s (n bytes) is whole valid UTF-8 characters, none of them NUL.
BN_API bool bn_utf8_whole(const char *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif
