// encode.h - the two encoders bn_tokenize (tokenizer.c) hands text to: the
// middle layer of the tokenizer, between the vocabulary (vocab.h) they read and
// the public entry points. Each appends the ids of text to out, after whatever
// out holds already (bn_tokenize puts the BOS there).
#ifndef BN_TOKENIZER_ENCODE_H
#define BN_TOKENIZER_ENCODE_H

#include <stdlib.h>

#include "vocab.h"

// Grows *p (*cap elements of elem bytes) to hold need, doubling from 64; the
// encoders' scratch arrays.
static inline int bn_tok_grow(void **p, size_t *cap, size_t need, size_t elem, bn_error *err) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return bn_errorf(err, "tokenize: out of memory");
    *p = q;
    *cap = c;
    return 0;
}

// The ids an encoder appends to (bn_tokenize owns the list and hands it over).
typedef struct bn_tok_ids {
    int32_t *ids;
    size_t n, cap;
} bn_tok_ids;

static inline int bn_tok_push_id(bn_tok_ids *o, int32_t id, bn_error *err) {
    if (bn_tok_grow((void **)&o->ids, &o->cap, o->n + 1, sizeof *o->ids, err)) return -1;
    o->ids[o->n++] = id;
    return 0;
}

// Byte-level BPE (encode_bpe.c): special tokens found by their first byte, the
// text between them split by the regex and merged by rank.
int bn_tok_bpe_encode(const bn_tokenizer *t, const char *text, size_t len, bool parse_special,
                      bn_tok_ids *out, bn_error *err);

// SentencePiece (encode_spm.c), llama.cpp's llm_tokenizer_spm.
int bn_tok_spm_encode(const bn_tokenizer *t, const char *text, size_t len, bool parse_special,
                      bn_tok_ids *out, bn_error *err);

#endif
