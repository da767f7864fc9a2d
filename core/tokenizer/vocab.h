// vocab.h - the tokenizer struct, its builder and what every part of the
// tokenizer shares: token lookup and the merge-pair key.
// The bottom of core/tokenizer/ (layers: token_bytes.c and split_regex.c, then
// vocab.c; the encoders encode_*.c and loaders load_*.c above it; tokenizer.c,
// the public entry points, on top). Not part of the public API: only
// core/tokenizer/*.c include it.
//
// A loader calls, in order: bn_tok_new, bn_tok_set_token for every id,
// bn_tok_finish_vocab, bn_tok_begin_merges + bn_tok_add_merge for every merge
// in rank order, then bn_tok_finish. On any failure it calls bn_tokenizer_free.
// A SentencePiece vocabulary (spm, encode_spm.c) sets t->spm right after
// bn_tok_new, fills t->score, and has no merges and no split regex (NULL).
#ifndef BN_TOKENIZER_VOCAB_H
#define BN_TOKENIZER_VOCAB_H

#include "split_regex.h"
#include "tokenizer.h"

// A growable byte pool; strings are addressed by offset so growth can realloc.
typedef struct bn_pool {
    char *data;
    size_t size, cap;
} bn_pool;

struct bn_tokenizer {
    int32_t n_vocab;
    int32_t *type;          // BN_TOKEN_TYPE_*; 0 (UNDEFINED) also marks "not set yet"
    uint32_t *text_off;     // vocabulary form, in `text`
    uint32_t *text_len;
    uint32_t *bytes_off;    // decoded bytes, in `bytes`
    uint32_t *bytes_len;
    bn_pool text, bytes;

    // vocabulary form -> id, open addressing; a slot keeps the key's hash, so
    // most probes never touch the string, and where its string is, so a hit
    // reads the slot and the string and nothing else (id -1 = empty)
    struct bn_vslot {
        uint32_t hash;
        int32_t id;
        uint32_t off, len; // the form in `text`
    } *vslot;
    size_t vmask;

    // merges: "a b" strings in rank order, and (left id, right id) -> rank/result
    size_t n_merges, merge_cap;
    uint32_t *merge_off;
    bn_pool merge_text;
    // (left, right) -> rank and result, open addressing: one slot, one cache line
    struct bn_mslot {
        uint64_t key; // (left << 32 | right) + 1; 0 = empty
        uint32_t rank;
        int32_t result;
    } *mslot;
    size_t mmask;

    int32_t byte_id[256]; // the token of each single byte (SPM: <0xXX>; -1 when absent)
    bool ignore_merges;

    // SentencePiece (tokenizer.ggml.model "llama"): BPE driven by the token
    // scores instead of merges (encode_spm.c); special holds CONTROL,
    // USER_DEFINED and UNKNOWN tokens, longest first, and no regex is compiled.
    bool spm;
    bool add_space_prefix; // a leading U+2581 before text that follows BOS / a special token
    float *score;          // per token (spm only)
    int32_t unk;

    // tokens matched in raw text before pre-tokenization, longest first within a
    // first byte: special[first_lo[c] .. first_hi[c]) (spm: all longest first)
    int32_t *special;
    size_t n_special;
    uint32_t first_lo[256], first_hi[256];

    int32_t bos, eos, eot;
    int32_t eog[4];
    int n_eog;
    bool add_bos;
    char *chat_template;
    bn_chat_style chat_style; // set by the GGUF loader; 0 (bitnet) otherwise

    pcre2_code *re;
};

bn_tokenizer *bn_tok_new(int32_t n_vocab, bn_error *err);
// Vocabulary form of token id; decoded bytes are derived from it by the
// byte-level mapping (CONTROL / USER_DEFINED tokens: the text itself).
int bn_tok_set_token(bn_tokenizer *t, int32_t id, const char *text, size_t len, int32_t type,
                     bn_error *err);
// Checks every id was set, builds the lookup table, rejects duplicate texts.
int bn_tok_finish_vocab(bn_tokenizer *t, bn_error *err);
int bn_tok_begin_merges(bn_tokenizer *t, size_t n, bn_error *err);
int bn_tok_add_merge(bn_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                     bn_error *err);
// Special ids may be -1 (absent). regex: the Split pattern in HF syntax (NULL for
// spm), compiled here (split_regex.c).
int bn_tok_finish(bn_tokenizer *t, int32_t bos, int32_t eos, int32_t eot, bool add_bos,
                  const char *chat_template, const char *regex, bool ignore_merges,
                  bn_error *err);

// Key of a merge pair in the merge table (0 marks an empty slot) and its hash.
static inline uint64_t bn_tok_pair_key(int32_t left, int32_t right) {
    return (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
}
static inline uint64_t bn_tok_pair_hash(uint64_t x) { // splitmix64 finalizer
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Vocabulary lookup of a vocabulary-form string; -1 when absent.
int32_t bn_tok_find(const bn_tokenizer *t, const char *text, size_t len);
// Whether id has been given its token (bn_tok_set_token sets a defined type).
static inline bool bn_tok_is_set(const bn_tokenizer *t, int32_t id) {
    return t->type[id] != BN_TOKEN_TYPE_UNDEFINED;
}
// Llama-3's special tokens by name (-1 when absent): the defaults that a
// loader's metadata (GGUF keys, tokenizer_config.json) may override.
void bn_tok_llama3_specials(const bn_tokenizer *t, int32_t *bos, int32_t *eos, int32_t *eot);

#endif
