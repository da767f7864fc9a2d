// tokenizer_gguf.c - loads the vocabulary embedded in a GGUF file
// (tokenizer.ggml.* keys, llama.cpp conventions). A SentencePiece ("llama")
// vocabulary is loaded by tokenizer_spm.c.
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "tokenizer_internal.h"

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

// Pre-tokenizer names that mean the Llama-3 split regex. llama.cpp's
// llama-vocab.cpp gives "falcon3" (tiiuae Falcon3) the same pre-tokenizer as
// "llama3" / "llama-bpe" (LLAMA_VOCAB_PRE_TYPE_LLAMA3, ignore_merges).
static bool is_llama3_pre(bn_gguf_str pre) {
    static const char *names[] = {"llama-bpe", "llama3", "llama-v3", "llama-3", "falcon3", "default"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (bn_gguf_str_eq(pre, names[i])) return true;
    return false;
}

int bn_tokenizer_from_gguf(const bn_gguf *g, bn_tokenizer **out, bn_error *err) {
    *out = NULL;
    bn_gguf_str s;
    if (bn_gguf_get_str(g, "tokenizer.ggml.model", &s, err)) return -1;
    if (bn_gguf_str_eq(s, "llama")) return bn_tok_spm_from_gguf(g, out, err); // SentencePiece
    if (!bn_gguf_str_eq(s, "gpt2"))
        return bn_errorf(err, "GGUF tokenizer.ggml.model is \"%.*s\"; supported are \"gpt2\" "
                              "(byte-level BPE) and \"llama\" (SentencePiece)",
                         (int)(s.len > 64 ? 64 : s.len), s.data);
    // The official 2B-4T file has no pre key: Llama-3 rules are the default.
    if (bn_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
        if (bn_gguf_get_str(g, "tokenizer.ggml.pre", &s, err)) return -1;
        if (!is_llama3_pre(s))
            return bn_errorf(err, "GGUF tokenizer.ggml.pre \"%.*s\" is not supported (Llama-3 \"llama-bpe\" is)",
                             (int)(s.len > 64 ? 64 : s.len), s.data);
    }
    const bn_gguf_array *tokens, *merges, *types = NULL;
    if (bn_gguf_get_arr(g, "tokenizer.ggml.tokens", BN_GGUF_STRING, &tokens, err)) return -1;
    if (bn_gguf_get_arr(g, "tokenizer.ggml.merges", BN_GGUF_STRING, &merges, err)) return -1;
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

    int32_t n_vocab = (int32_t)tokens->count;
    bn_tokenizer *t = bn_tok_new(n_vocab, err);
    if (!t) return -1;
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

    if (bn_tok_begin_merges(t, merges->count, err)) goto fail;
    for (uint64_t i = 0; i < merges->count; i++) {
        const char *m = merges->strs[i].data;
        size_t len = merges->strs[i].len;
        const char *sp = memchr(m, ' ', len);
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp - m) - 1)) {
            bn_errorf(err, "GGUF merge %llu \"%.*s\" is not \"a b\"", (unsigned long long)i,
                      (int)(len > 64 ? 64 : len), m);
            goto fail;
        }
        if (bn_tok_add_merge(t, m, (size_t)(sp - m), sp + 1, len - (size_t)(sp - m) - 1, err))
            goto fail;
    }

    int32_t bos, eos, eot;
    bn_tok_llama3_specials(t, &bos, &eos, &eot);
    if (opt_id(g, "tokenizer.ggml.bos_token_id", n_vocab, &bos, err) ||
        opt_id(g, "tokenizer.ggml.eos_token_id", n_vocab, &eos, err) ||
        opt_id(g, "tokenizer.ggml.eot_token_id", n_vocab, &eot, err))
        goto fail;
    bool add_bos = true;
    if (bn_gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0 &&
        bn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, err))
        goto fail;
    char *tmpl = NULL;
    if (bn_gguf_find_key(g, "tokenizer.chat_template") >= 0) {
        if (bn_gguf_get_str(g, "tokenizer.chat_template", &s, err)) goto fail;
        tmpl = malloc(s.len + 1);
        if (!tmpl) {
            bn_errorf(err, "tokenizer: out of memory");
            goto fail;
        }
        memcpy(tmpl, s.data, s.len);
        tmpl[s.len] = 0;
    }
    int rc = bn_tok_finish(t, bos, eos, eot, add_bos, tmpl, BN_LLAMA3_SPLIT_REGEX, true, err);
    t->chat_style = bn_chat_detect_style(tmpl);
    free(tmpl);
    if (rc) goto fail;
    *out = t;
    return 0;
fail:
    bn_tokenizer_free(t);
    return -1;
}

int bn_tokenizer_from_model(const char *gguf_path, bn_tokenizer **out, bn_error *err) {
    *out = NULL;
    bn_gguf *g;
    if (bn_gguf_open(gguf_path, &g, err)) return -1;
    int rc = bn_tokenizer_from_gguf(g, out, err);
    bn_gguf_close(g);
    return rc;
}
