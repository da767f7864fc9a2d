// tokenizer.c - the tokenizer's public entry points (bitnet.h, tokenizer.h):
// encoding, decoding and the token queries. The top of core/tokenizer/: it
// hands text to an encoder (encode.h) and reads the vocabulary (vocab.h); no
// file below calls it.
#include <stdlib.h>
#include <string.h>

#include "encode.h"

// ---- encoding and decoding -----------------------------------------------------
int bn_tokenize(const bn_tokenizer *t, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t **ids, size_t *n_ids, bn_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return bn_errorf(err, "tokenize: NULL text");
    bn_tok_ids out = {0};
    int rc = 0;
    if (add_bos)
        rc = t->bos < 0 ? bn_errorf(err, "tokenize: the vocabulary has no BOS token")
                        : bn_tok_push_id(&out, t->bos, err);
    if (!rc)
        rc = t->spm ? bn_tok_spm_encode(t, text, len, parse_special, &out, err)
                    : bn_tok_bpe_encode(t, text, len, parse_special, &out, err);
    if (!rc && !out.ids) rc = bn_tok_grow((void **)&out.ids, &out.cap, 1, sizeof *out.ids, err); // never NULL
    if (rc) {
        free(out.ids);
        return -1;
    }
    *ids = out.ids;
    *n_ids = out.n;
    return 0;
}

int bn_detokenize(const bn_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len,
                  bn_error *err) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return bn_errorf(err, "detokenize: token id %d out of range [0, %d)", ids[i], t->n_vocab);
        total += t->bytes_len[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out) return bn_errorf(err, "detokenize: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *b = t->bytes.data + t->bytes_off[ids[i]];
        size_t bl = t->bytes_len[ids[i]];
        // llama_detokenize (remove_special false, unparse_special true): with
        // add_space_prefix the first token, whatever it is, loses one leading
        // space (the prefix the encoder added). A BOS first ("<s>") has none to
        // lose, so text after it keeps its space, as in llama.cpp.
        if (i == 0 && t->spm && t->add_space_prefix && bl && b[0] == ' ') {
            b++;
            bl--;
        }
        memcpy(out + o, b, bl);
        o += bl;
    }
    out[o] = 0;
    *text = out;
    *len = o;
    return 0;
}

// ---- accessors ----------------------------------------------------------------
const char *bn_token_bytes(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->bytes_len[id];
    return t->bytes.data + t->bytes_off[id];
}

const char *bn_tokenizer_token_text(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->text_len[id];
    return t->text.data + t->text_off[id];
}

int32_t bn_tokenizer_token_type(const bn_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab ? t->type[id] : -1;
}

float bn_tokenizer_token_score(const bn_tokenizer *t, int32_t id) {
    return t && t->score && id >= 0 && id < t->n_vocab ? t->score[id] : 0.0f;
}
bool bn_tokenizer_is_spm(const bn_tokenizer *t) { return t && t->spm; }
bool bn_tokenizer_add_space_prefix(const bn_tokenizer *t) { return t && t->add_space_prefix; }
int32_t bn_tokenizer_unk(const bn_tokenizer *t) { return t ? t->unk : -1; }

size_t bn_tokenizer_n_merges(const bn_tokenizer *t) { return t ? t->n_merges : 0; }

const char *bn_tokenizer_merge(const bn_tokenizer *t, size_t i, size_t *len) {
    if (!t || i >= t->n_merges) return NULL;
    const char *s = t->merge_text.data + t->merge_off[i];
    if (len) *len = strlen(s); // vocabulary forms never contain NUL (byte 0 is U+0100)
    return s;
}

const char *bn_tokenizer_chat_template(const bn_tokenizer *t) { return t ? t->chat_template : NULL; }
bn_chat_style bn_tokenizer_chat_style(const bn_tokenizer *t) {
    return t ? t->chat_style : BN_CHAT_STYLE_BITNET;
}
void bn_tokenizer_set_chat_style(bn_tokenizer *t, bn_chat_style style) { t->chat_style = style; }
int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t) { return t->n_vocab; }
int32_t bn_tokenizer_bos(const bn_tokenizer *t) { return t->bos; }
int32_t bn_tokenizer_eos(const bn_tokenizer *t) { return t->eos; }
int32_t bn_tokenizer_eot(const bn_tokenizer *t) { return t->eot; }
bool bn_tokenizer_add_bos(const bn_tokenizer *t) { return t->add_bos; }

bool bn_tokenizer_is_eog(const bn_tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return true;
    return false;
}

bool bn_tokenizer_is_special(const bn_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return false;
    return t->type[id] != BN_TOKEN_TYPE_NORMAL && t->type[id] != BN_TOKEN_TYPE_BYTE;
}
