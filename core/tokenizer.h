// tokenizer.h - the Llama-3 byte-level BPE tokenizer (DESIGN.md section 4).
//
// One tokenizer struct, two loaders: the vocabulary embedded in a GGUF file
// (tokenizer.ggml.*) and a HuggingFace tokenizer.json. Encoding is exact
// Llama-3 / HF `tokenizers` behaviour: the Llama-3 split regex, the GPT-2
// byte-to-unicode mapping, ignore_merges, then rank-ordered BPE merges.
//
// Thread safety: a loaded tokenizer is immutable. Every function taking a
// `const bn_tokenizer *` may be called from several threads at once (per-call
// scratch, including PCRE2 match data, is allocated inside bn_tokenize).
#ifndef BN_TOKENIZER_H
#define BN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "gguf.h"

typedef struct bn_tokenizer bn_tokenizer;

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

// Loaders. On failure *out is NULL and err holds one line saying why.
// from_gguf: tokenizer.ggml.model must be "gpt2"; tokenizer.ggml.pre absent or
// a Llama-3 name ("llama-bpe", "llama3", ...). The bn_gguf may be closed after.
int bn_tokenizer_from_gguf(const bn_gguf *g, bn_tokenizer **out, bn_error *err);
// from_json: a HuggingFace tokenizer.json (model.type "BPE"). If a
// tokenizer_config.json sits in the same directory, bos/eos/add_bos and
// chat_template are read from it.
int bn_tokenizer_from_json(const char *tokenizer_json_path, bn_tokenizer **out, bn_error *err);
void bn_tokenizer_free(bn_tokenizer *t);

// Encodes len bytes of text (any bytes: invalid UTF-8 and NUL are fine and
// round-trip through bn_detokenize). add_bos prepends BOS. parse_special: the
// text of CONTROL tokens (e.g. "<|eot_id|>") becomes that token; otherwise it
// is encoded as plain text. *ids is malloc'd (never NULL on success), caller frees.
int bn_tokenize(const bn_tokenizer *t, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t **ids, size_t *n_ids, bn_error *err);

// The raw bytes a token stands for (special tokens: their text); not
// NUL-terminated. NULL when id is out of range.
const char *bn_token_bytes(const bn_tokenizer *t, int32_t id, size_t *len);

// Concatenates bn_token_bytes of ids; *text is malloc'd and NUL-terminated
// (the NUL is not counted in *len). Fails on an out-of-range id.
int bn_detokenize(const bn_tokenizer *t, const int32_t *ids, size_t n, char **text,
                  size_t *len, bn_error *err);

int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t);
int32_t bn_tokenizer_bos(const bn_tokenizer *t); // -1 when the vocabulary has none
int32_t bn_tokenizer_eos(const bn_tokenizer *t);
int32_t bn_tokenizer_eot(const bn_tokenizer *t);
bool bn_tokenizer_add_bos(const bn_tokenizer *t);
bool bn_tokenizer_is_eog(const bn_tokenizer *t, int32_t id); // eos or eot: end of generation
bool bn_tokenizer_is_special(const bn_tokenizer *t, int32_t id); // CONTROL / USER_DEFINED / ...

// Accessors for copying a vocabulary into a new GGUF file.
// Vocabulary form of a token (byte-level "Ġthe" string; special tokens: their text).
const char *bn_tokenizer_token_text(const bn_tokenizer *t, int32_t id, size_t *len);
int32_t bn_tokenizer_token_type(const bn_tokenizer *t, int32_t id); // BN_TOKEN_TYPE_*, -1 out of range
size_t bn_tokenizer_n_merges(const bn_tokenizer *t);
// Merge i in rank order as "left right" (vocabulary form); NULL when out of range.
const char *bn_tokenizer_merge(const bn_tokenizer *t, size_t i, size_t *len);
const char *bn_tokenizer_chat_template(const bn_tokenizer *t); // may be NULL

#endif
