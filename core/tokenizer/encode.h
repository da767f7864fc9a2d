// encode.h - the two encoders bn_tokenize (tokenizer.c) hands text to: the
// middle layer of the tokenizer, between the vocabulary (vocab.h) they read and
// the public entry points. Each appends the ids of text to out, after whatever
// out holds already (bn_tokenize puts the BOS there).
#ifndef BN_TOKENIZER_ENCODE_H
#define BN_TOKENIZER_ENCODE_H

#include "vocab.h"

// Byte-level BPE (encode_bpe.c): special tokens found by their first byte, the
// text between them split by the regex and merged by rank.
int bn_tok_bpe_encode(const bn_tokenizer *t, const char *text, size_t len, bool parse_special,
                      bn_tok_ids *out, bn_error *err);

// SentencePiece (encode_spm.c), llama.cpp's llm_tokenizer_spm.
int bn_tok_spm_encode(const bn_tokenizer *t, const char *text, size_t len, bool parse_special,
                      bn_tok_ids *out, bn_error *err);

#endif
