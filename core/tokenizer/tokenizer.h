// tokenizer.h - the Llama-3 byte-level BPE tokenizer and the LLaMA SentencePiece
// tokenizer (docs/architecture.md: Tokenizer and chat format).
//
// One tokenizer struct, loaders for the vocabulary embedded in a GGUF file
// (tokenizer.ggml.*) and a HuggingFace tokenizer.json. Byte-level BPE
// ("gpt2") encoding is exact Llama-3 / HF `tokenizers` behaviour: the Llama-3
// split regex, the GPT-2 byte-to-unicode mapping, ignore_merges, then
// rank-ordered BPE merges. SentencePiece ("llama", GGUF only) is exact
// llama.cpp llm_tokenizer_spm behaviour: spaces as U+2581, a space prefix,
// pairs merged by token score, byte fallback to <0xXX> (encode_spm.c).
//
// Loading, encoding and the token queries are public (bitnet.h). Here: loading
// from an open GGUF, and the vocabulary accessors that the synthetic model
// writer and the tests use.
//
// Thread safety: a loaded tokenizer is immutable. Every function taking a
// `const bn_tokenizer *` may be called from several threads at once (per-call
// scratch, including PCRE2 match data, is allocated inside bn_tokenize).
#ifndef BN_TOKENIZER_H
#define BN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../error.h"
#include "../gguf.h"

// GGUF token_type numbering (llama.cpp's llama_token_type).
enum {
    BN_TOKEN_TYPE_UNDEFINED = 0,
    BN_TOKEN_TYPE_NORMAL = 1,
    BN_TOKEN_TYPE_UNKNOWN = 2,
    BN_TOKEN_TYPE_CONTROL = 3,      // special: matched in text only with parse_special
    BN_TOKEN_TYPE_USER_DEFINED = 4, // added token: always matched in text (HF special=false)
    BN_TOKEN_TYPE_UNUSED = 5,
    BN_TOKEN_TYPE_BYTE = 6,
};

// On failure *out is NULL and err holds one line saying why.
// tokenizer.ggml.model "gpt2": tokenizer.ggml.pre absent or a name that means
// the Llama-3 split regex ("llama-bpe", "llama3", "falcon3", ...).
// tokenizer.ggml.model "llama": SentencePiece, with tokenizer.ggml.scores,
// token_type, bos/eos/unk ids (defaults 1/2/0), add_bos_token (default true)
// and add_space_prefix (default true). Any other model is an error. The chat
// style comes from tokenizer.chat_template (bn_chat_detect_style, below).
// The bn_gguf may be closed after.
int bn_tokenizer_from_gguf(const bn_gguf *g, bn_tokenizer **out, bn_error *err);

// The model family's chat format (formats in chat.h).
typedef enum bn_chat_style {
    BN_CHAT_STYLE_BITNET = 0, // BitNet b1.58 2B-4T "Role: content<|eot_id|>" (the default)
    BN_CHAT_STYLE_LLAMA3,     // Llama-3 Instruct headers, <|eot_id|>
    BN_CHAT_STYLE_FALCON3,    // Falcon3 Instruct <|user|>\n..., <|endoftext|>
} bn_chat_style;
// From the GGUF's tokenizer.chat_template; a tokenizer.json one: BN_CHAT_STYLE_BITNET.
bn_chat_style bn_tokenizer_chat_style(const bn_tokenizer *t);
// The style a chat template (Jinja text) asks for, from distinctive substrings
// as llama.cpp's llm_chat_detect_template does; the bare names "bitnet",
// "llama3" and "falcon3" also work. NULL or unrecognised: BN_CHAT_STYLE_BITNET
// (chat_style.c).
bn_chat_style bn_chat_detect_style(const char *tmpl);
// Whether a Jinja template is recognisably that style's (the 2B-4T one too, which
// detection only falls back to): unlike detection, an unknown template is none.
bool bn_chat_template_is(const char *tmpl, bn_chat_style style);
const char *bn_chat_style_name(bn_chat_style style); // "bitnet", "llama3", "falcon3"
// A style by its name (bn_chat_style_name's): 0, or -1 for another name.
int bn_chat_style_from_name(const char *name, bn_chat_style *out);
// Overrides the style the loader picked (a user's --chat-template).
void bn_tokenizer_set_chat_style(bn_tokenizer *t, bn_chat_style style);

// Accessors for copying a vocabulary into a new GGUF file.
// Vocabulary form of a token (byte-level "Ġthe" string, SentencePiece "▁the";
// special tokens: their text).
const char *bn_tokenizer_token_text(const bn_tokenizer *t, int32_t id, size_t *len);
int32_t bn_tokenizer_token_type(const bn_tokenizer *t, int32_t id); // BN_TOKEN_TYPE_*, -1 out of range
float bn_tokenizer_token_score(const bn_tokenizer *t, int32_t id);  // SentencePiece score; 0 otherwise
bool bn_tokenizer_is_spm(const bn_tokenizer *t);                    // tokenizer.ggml.model "llama"
bool bn_tokenizer_add_space_prefix(const bn_tokenizer *t);          // spm only
int32_t bn_tokenizer_unk(const bn_tokenizer *t);                    // spm: the unknown token; else -1
size_t bn_tokenizer_n_merges(const bn_tokenizer *t);
// Merge i in rank order as "left right" (vocabulary form); NULL when out of range.
const char *bn_tokenizer_merge(const bn_tokenizer *t, size_t i, size_t *len);
const char *bn_tokenizer_chat_template(const bn_tokenizer *t); // may be NULL

#endif
