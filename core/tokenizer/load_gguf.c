// load_gguf.c - loads the vocabulary embedded in a GGUF file
// (tokenizer.ggml.* keys, llama.cpp conventions): byte-level BPE ("gpt2") or
// SentencePiece ("llama", encoded by encode_spm.c). A loader: it builds the
// tables through vocab.h and calls no encoder.
#include <stdlib.h>
#include <string.h>

#include "split_regex.h"
#include "vocab.h"

// Optional integer key: absent -> *out keeps its default; present but not an
// in-range integer -> error.
static int opt_id(const bn_gguf *g, const char *key, int32_t n_vocab, int32_t *out, bn_error *err) {
    if (bn_gguf_find_key(g, key) < 0) return 0;
    int64_t v;
    if (bn_gguf_get_i64(g, key, &v, err)) return -1;
    if (v < 0 || v >= n_vocab)
        return bn_errorf(err, "GGUF %s = %lld is out of range [0, %d)", key, (long long)v, n_vocab);
    *out = (int32_t)v;
    return 0;
}

static int opt_bool(const bn_gguf *g, const char *key, bool *out, bn_error *err) {
    return bn_gguf_find_key(g, key) >= 0 ? bn_gguf_get_bool(g, key, out, err) : 0;
}

// Pre-tokenizer names that mean the Llama-3 split regex. llama.cpp's
// llama-vocab.cpp gives "falcon3" (tiiuae Falcon3) the same pre-tokenizer as
// "llama3" / "llama-bpe" (LLAMA_VOCAB_PRE_TYPE_LLAMA3, ignore_merges).
static bool is_llama3_pre(bn_gguf_str pre) {
    static const char *names[] = {"llama-bpe", "llama3", "llama-v3", "llama-3", "falcon3", "default"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (bn_gguf_str_eq(pre, names[i])) return true;
    return false;
}

// A new tokenizer with every token of tokenizer.ggml.tokens set, typed by
// tokenizer.ggml.token_type (NORMAL where absent). spm: a SentencePiece vocabulary.
static int read_tokens(const bn_gguf *g, bool spm, bn_tokenizer **out, bn_error *err) {
    *out = NULL;
    const bn_gguf_array *tokens, *types = NULL;
    if (bn_gguf_get_arr(g, "tokenizer.ggml.tokens", BN_GGUF_STRING, &tokens, err)) return -1;
    if (bn_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0 &&
        bn_gguf_get_arr(g, "tokenizer.ggml.token_type", BN_GGUF_TYPE_COUNT, &types, err))
        return -1;
    if (tokens->count == 0 || tokens->count > INT32_MAX)
        return bn_errorf(err, "GGUF tokenizer.ggml.tokens has %llu entries",
                         (unsigned long long)tokens->count);
    if (types && (types->count != tokens->count || types->elem_type == BN_GGUF_STRING ||
                  types->elem_type == BN_GGUF_ARRAY || types->elem_type == BN_GGUF_FLOAT32 ||
                  types->elem_type == BN_GGUF_FLOAT64 || types->elem_type == BN_GGUF_BOOL))
        return bn_errorf(err, "GGUF tokenizer.ggml.token_type must be %llu integers",
                         (unsigned long long)tokens->count);
    const int32_t n_vocab = (int32_t)tokens->count;
    bn_tokenizer *t = bn_tok_new(n_vocab, err);
    if (!t) return -1;
    t->spm = spm;
    for (int32_t id = 0; id < n_vocab; id++) {
        int64_t type = types ? bn_gguf_arr_int(types, (uint64_t)id) : BN_TOKEN_TYPE_NORMAL;
        if (type < BN_TOKEN_TYPE_NORMAL || type > BN_TOKEN_TYPE_BYTE) {
            bn_errorf(err, "GGUF token %d has unknown token_type %lld", id, (long long)type);
            goto fail;
        }
        if (bn_tok_set_token(t, id, tokens->strs[id].data, tokens->strs[id].len, (int32_t)type, err))
            goto fail;
    }
    if (bn_tok_finish_vocab(t, err)) goto fail;
    *out = t;
    return 0;
fail:
    bn_tokenizer_free(t);
    return -1;
}

// The keys both kinds share, over the caller's defaults: bos/eos/eot ids,
// add_bos_token and the chat template (which picks the chat style); then
// bn_tok_finish with regex and bpe as given.
static int finish(const bn_gguf *g, bn_tokenizer *t, int32_t bos, int32_t eos, int32_t eot,
                  const char *regex, bool bpe, bn_error *err) {
    const int32_t n_vocab = t->n_vocab;
    bool add_bos = true;
    if (opt_id(g, "tokenizer.ggml.bos_token_id", n_vocab, &bos, err) ||
        opt_id(g, "tokenizer.ggml.eos_token_id", n_vocab, &eos, err) ||
        opt_id(g, "tokenizer.ggml.eot_token_id", n_vocab, &eot, err) ||
        opt_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, err))
        return -1;
    char *tmpl = NULL;
    if (bn_gguf_find_key(g, "tokenizer.chat_template") >= 0) {
        bn_gguf_str s;
        if (bn_gguf_get_str(g, "tokenizer.chat_template", &s, err)) return -1;
        if (!(tmpl = malloc(s.len + 1))) return bn_errorf(err, "tokenizer: out of memory");
        memcpy(tmpl, s.data, s.len);
        tmpl[s.len] = 0;
    }
    int rc = bn_tok_finish(t, bos, eos, eot, add_bos, tmpl, regex, bpe, err);
    t->chat_style = bn_chat_detect_style(tmpl);
    free(tmpl);
    return rc;
}

// Byte-level BPE ("gpt2"): the merges, Llama-3's split regex and specials.
static int load_bpe(const bn_gguf *g, bn_tokenizer *t, bn_error *err) {
    const bn_gguf_array *merges;
    if (bn_gguf_get_arr(g, "tokenizer.ggml.merges", BN_GGUF_STRING, &merges, err) ||
        bn_tok_begin_merges(t, merges->count, err))
        return -1;
    for (uint64_t i = 0; i < merges->count; i++) {
        const char *m = merges->strs[i].data;
        size_t len = merges->strs[i].len;
        const char *sp = memchr(m, ' ', len);
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp - m) - 1))
            return bn_errorf(err, "GGUF merge %llu \"%.*s\" is not \"a b\"", (unsigned long long)i,
                             (int)(len > 64 ? 64 : len), m);
        if (bn_tok_add_merge(t, m, (size_t)(sp - m), sp + 1, len - (size_t)(sp - m) - 1, err))
            return -1;
    }
    int32_t bos, eos, eot;
    bn_tok_llama3_specials(t, &bos, &eos, &eot);
    return finish(g, t, bos, eos, eot, BN_LLAMA3_SPLIT_REGEX, true, err);
}

// SentencePiece ("llama"): the token scores, the unknown token and the space
// prefix, with llama.cpp's defaults (bos 1, eos 2, unk 0, add_space_prefix).
static int load_spm(const bn_gguf *g, bn_tokenizer *t, bn_error *err) {
    const int32_t n_vocab = t->n_vocab;
    t->score = calloc((size_t)n_vocab, sizeof *t->score); // missing scores: 0, as llama.cpp
    if (!t->score) return bn_errorf(err, "tokenizer: out of memory");
    if (bn_gguf_find_key(g, "tokenizer.ggml.scores") >= 0) {
        const bn_gguf_array *scores;
        if (bn_gguf_get_arr(g, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, &scores, err)) return -1;
        if (scores->count != (uint64_t)n_vocab)
            return bn_errorf(err, "GGUF tokenizer.ggml.scores has %llu entries for %d tokens",
                             (unsigned long long)scores->count, n_vocab);
        memcpy(t->score, scores->data, sizeof *t->score * (size_t)n_vocab);
    }
    int32_t unk = 0;
    bool add_space_prefix = true;
    if (opt_id(g, "tokenizer.ggml.unknown_token_id", n_vocab, &unk, err) ||
        opt_bool(g, "tokenizer.ggml.add_space_prefix", &add_space_prefix, err))
        return -1;
    t->unk = unk;
    t->add_space_prefix = add_space_prefix;
    return finish(g, t, n_vocab > 1 ? 1 : -1, n_vocab > 2 ? 2 : -1, -1, NULL, false, err);
}

int bn_tokenizer_from_gguf(const bn_gguf *g, bn_tokenizer **out, bn_error *err) {
    *out = NULL;
    bn_gguf_str s;
    if (bn_gguf_get_str(g, "tokenizer.ggml.model", &s, err)) return -1;
    const bool spm = bn_gguf_str_eq(s, "llama");
    if (!spm && !bn_gguf_str_eq(s, "gpt2"))
        return bn_errorf(err, "GGUF tokenizer.ggml.model is \"%.*s\"; supported are \"gpt2\" "
                              "(byte-level BPE) and \"llama\" (SentencePiece)",
                         (int)(s.len > 64 ? 64 : s.len), s.data);
    // The official 2B-4T file has no pre key: Llama-3 rules are the default.
    if (!spm && bn_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
        if (bn_gguf_get_str(g, "tokenizer.ggml.pre", &s, err)) return -1;
        if (!is_llama3_pre(s))
            return bn_errorf(err, "GGUF tokenizer.ggml.pre \"%.*s\" is not supported (Llama-3 \"llama-bpe\" is)",
                             (int)(s.len > 64 ? 64 : s.len), s.data);
    }
    bn_tokenizer *t;
    if (read_tokens(g, spm, &t, err)) return -1;
    if (spm ? load_spm(g, t, err) : load_bpe(g, t, err)) {
        bn_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int bn_tokenizer_from_model(const char *gguf_path, bn_tokenizer **out, bn_error *err) {
    *out = NULL;
    bn_gguf *g;
    if (bn_gguf_open(gguf_path, &g, err)) return -1;
    int rc = bn_tokenizer_from_gguf(g, out, err);
    bn_gguf_close(g);
    return rc;
}
