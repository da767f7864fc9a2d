// vocab.c - the tokenizer's tables, built by the loaders (vocab.h says in
// which order): the vocabulary and its lookup, each token's bytes, the merge
// table, the special tokens, the split regex. The bottom of the tokenizer: it
// calls only the leaves token_bytes.c and split_regex.c.
#include "vocab.h"

#include <stdlib.h>
#include <string.h>

#include "token_bytes.h"

// ---- small helpers ------------------------------------------------------------
static int pool_add(bn_pool *p, const char *s, size_t len, uint32_t *off, bn_error *err) {
    if (p->size + len + 1 > UINT32_MAX) return bn_errorf(err, "tokenizer: string pool over 4 GiB");
    if (p->size + len + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 1 << 16;
        while (cap < p->size + len + 1) cap *= 2;
        char *d = realloc(p->data, cap);
        if (!d) return bn_errorf(err, "tokenizer: out of memory");
        p->data = d;
        p->cap = cap;
    }
    if (len) memcpy(p->data + p->size, s, len);
    p->data[p->size + len] = 0; // NUL after each string: handy for C callers
    *off = (uint32_t)p->size;
    p->size += len + 1;
    return 0;
}

// FNV-1a: short keys (a word), simple, no third-party code.
static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

// ---- building -----------------------------------------------------------------
bn_tokenizer *bn_tok_new(int32_t n_vocab, bn_error *err) {
    if (n_vocab <= 0) {
        bn_errorf(err, "tokenizer: empty vocabulary");
        return NULL;
    }
    bn_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        bn_errorf(err, "tokenizer: out of memory");
        return NULL;
    }
    size_t n = (size_t)n_vocab;
    t->n_vocab = n_vocab;
    t->type = calloc(n, sizeof *t->type);
    t->text_off = calloc(n, sizeof *t->text_off);
    t->text_len = calloc(n, sizeof *t->text_len);
    t->bytes_off = calloc(n, sizeof *t->bytes_off);
    t->bytes_len = calloc(n, sizeof *t->bytes_len);
    t->bos = t->eos = t->eot = t->unk = -1;
    if (!t->type || !t->text_off || !t->text_len || !t->bytes_off || !t->bytes_len) {
        bn_tokenizer_free(t);
        bn_errorf(err, "tokenizer: out of memory for %d tokens", n_vocab);
        return NULL;
    }
    return t;
}

int bn_tok_set_token(bn_tokenizer *t, int32_t id, const char *text, size_t len, int32_t type,
                     bn_error *err) {
    if (id < 0 || id >= t->n_vocab)
        return bn_errorf(err, "tokenizer: token id %d out of range [0, %d)", id, t->n_vocab);
    if (bn_tok_is_set(t, id)) return bn_errorf(err, "tokenizer: token id %d defined twice", id);
    if (type < BN_TOKEN_TYPE_NORMAL || type > BN_TOKEN_TYPE_BYTE)
        return bn_errorf(err, "tokenizer: token %d has unknown token type %d", id, type);
    if (len > (1u << 20)) return bn_errorf(err, "tokenizer: token %d is %zu bytes long", id, len);
    if (pool_add(&t->text, text, len, &t->text_off[id], err)) return -1;
    t->text_len[id] = (uint32_t)len;

    // Raw bytes: CONTROL / USER_DEFINED (added) tokens are literal text; the rest
    // are byte-level strings. A string that is not byte-level text (possible in a
    // foreign GGUF) is kept literally, as llama.cpp prints it.
    // SentencePiece tokens: U+2581 is a space, <0xHH> a byte (token_bytes.c).
    char stack[256];
    char *buf = len <= sizeof stack ? stack : malloc(len ? len : 1);
    if (!buf) return bn_errorf(err, "tokenizer: out of memory");
    long n = -1;
    if (t->spm) {
        n = bn_tok_spm_bytes(text, len, type, buf);
        if (n < 0) {
            if (buf != stack) free(buf);
            return bn_errorf(err, "tokenizer: BYTE token %d \"%.*s\" is not <0xHH>", id,
                             (int)(len > 64 ? 64 : len), text);
        }
    } else if (type != BN_TOKEN_TYPE_CONTROL && type != BN_TOKEN_TYPE_USER_DEFINED) {
        n = bn_tok_byte_level_decode(text, len, buf);
    }
    int rc = n >= 0 ? pool_add(&t->bytes, buf, (size_t)n, &t->bytes_off[id], err)
                    : pool_add(&t->bytes, text, len, &t->bytes_off[id], err);
    if (buf != stack) free(buf);
    if (rc) return -1;
    t->bytes_len[id] = n >= 0 ? (uint32_t)n : (uint32_t)len;
    t->type[id] = type;
    return 0;
}

int32_t bn_tok_find(const bn_tokenizer *t, const char *text, size_t len) {
    if (!t->vslot) return -1;
    uint64_t h = hash_bytes(text, len);
    uint32_t h32 = (uint32_t)(h >> 32);
    for (size_t i = h & t->vmask;; i = (i + 1) & t->vmask) {
        const struct bn_vslot *s = &t->vslot[i];
        if (s->id < 0) return -1;
        if (s->hash == h32 && s->len == len && memcmp(t->text.data + s->off, text, len) == 0) return s->id;
    }
}

void bn_tok_llama3_specials(const bn_tokenizer *t, int32_t *bos, int32_t *eos, int32_t *eot) {
    *bos = bn_tok_find(t, "<|begin_of_text|>", 17);
    *eos = bn_tok_find(t, "<|end_of_text|>", 15);
    *eot = bn_tok_find(t, "<|eot_id|>", 10);
}

int bn_tok_finish_vocab(bn_tokenizer *t, bn_error *err) {
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (!bn_tok_is_set(t, id)) return bn_errorf(err, "tokenizer: no token with id %d (gap in ids)", id);
    size_t cap = pow2_at_least((size_t)t->n_vocab * 2);
    t->vslot = malloc(cap * sizeof *t->vslot);
    if (!t->vslot) return bn_errorf(err, "tokenizer: out of memory");
    for (size_t i = 0; i < cap; i++) t->vslot[i] = (struct bn_vslot){0, -1, 0, 0};
    t->vmask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->text.data + t->text_off[id];
        size_t len = t->text_len[id];
        uint64_t h = hash_bytes(s, len);
        uint32_t h32 = (uint32_t)(h >> 32);
        size_t i = h & t->vmask;
        for (; t->vslot[i].id >= 0; i = (i + 1) & t->vmask) {
            int32_t o = t->vslot[i].id;
            if (t->vslot[i].hash == h32 && t->text_len[o] == len &&
                memcmp(t->text.data + t->text_off[o], s, len) == 0)
                return bn_errorf(err, "tokenizer: duplicate token \"%.*s\" (ids %d and %d)",
                                 (int)(len > 64 ? 64 : len), s, o, id);
        }
        t->vslot[i] = (struct bn_vslot){h32, id, t->text_off[id], (uint32_t)len};
    }
    if (t->spm) { // byte fallback tokens; a missing one fails only when text needs it
        for (int b = 0; b < 256; b++) {
            // llama_byte_to_token_impl: "<0xXX>", else the byte itself
            char s[6];
            bn_tok_spm_byte_text(b, s);
            int32_t id = bn_tok_find(t, s, sizeof s);
            if (id < 0) {
                char c = (char)b;
                id = bn_tok_find(t, &c, 1);
            }
            t->byte_id[b] = id;
        }
        return 0;
    }
    // Every byte must have its own token, so BPE can start from single bytes.
    for (int b = 0; b < 256; b++) {
        char u[2];
        t->byte_id[b] = bn_tok_find(t, u, bn_tok_byte_level_text(b, u));
        if (t->byte_id[b] < 0)
            return bn_errorf(err, "tokenizer: vocabulary has no token for byte 0x%02x", b);
    }
    return 0;
}

int bn_tok_begin_merges(bn_tokenizer *t, size_t n, bn_error *err) {
    if (n > (size_t)INT32_MAX) return bn_errorf(err, "tokenizer: %zu merges is too many", n);
    size_t cap = pow2_at_least(n * 2 + 1);
    t->merge_cap = n;
    t->merge_off = malloc((n ? n : 1) * sizeof *t->merge_off);
    t->mslot = calloc(cap, sizeof *t->mslot);
    if (!t->merge_off || !t->mslot)
        return bn_errorf(err, "tokenizer: out of memory for %zu merges", n);
    t->mmask = cap - 1;
    return 0;
}

int bn_tok_add_merge(bn_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                     bn_error *err) {
    size_t rank = t->n_merges;
    if (rank >= t->merge_cap) return bn_errorf(err, "tokenizer: more merges than announced");
    int32_t l = bn_tok_find(t, a, alen), r = bn_tok_find(t, b, blen);
    char stack[512];
    char *ab = alen + blen + 1 <= sizeof stack ? stack : malloc(alen + blen + 1);
    if (!ab) return bn_errorf(err, "tokenizer: out of memory");
    memcpy(ab, a, alen);
    memcpy(ab + alen, b, blen);
    int32_t res = bn_tok_find(t, ab, alen + blen);
    int rc = 0;
    if (l < 0 || r < 0 || res < 0) {
        const char *what = l < 0 ? "left part" : r < 0 ? "right part" : "result";
        rc = bn_errorf(err, "tokenizer: merge %zu \"%.*s %.*s\": %s not in the vocabulary", rank,
                       (int)(alen > 48 ? 48 : alen), a, (int)(blen > 48 ? 48 : blen), b, what);
    } else {
        ab[alen] = ' ';
        memcpy(ab + alen + 1, b, blen);
        rc = pool_add(&t->merge_text, ab, alen + 1 + blen, &t->merge_off[rank], err);
    }
    if (ab != stack) free(ab);
    if (rc) return -1;
    t->n_merges++;

    uint64_t key = bn_tok_pair_key(l, r);
    size_t i = bn_tok_pair_hash(key) & t->mmask;
    for (; t->mslot[i].key; i = (i + 1) & t->mmask)
        if (t->mslot[i].key == key) return 0; // a repeated pair keeps its first (best) rank
    t->mslot[i] = (struct bn_mslot){key, (uint32_t)rank, res};
    return 0;
}

// Special tokens sort by first byte, then longest first, so matching can try the
// candidates for one first byte in order and take the first hit.
typedef struct special_key {
    unsigned char first;
    uint32_t len;
    int32_t id;
} special_key;

static int cmp_special(const void *pa, const void *pb) {
    const special_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

// SentencePiece: llama.cpp's cache_special_tokens order, longest first (its
// std::sort leaves ties unordered; here lower id first).
static int cmp_special_spm(const void *pa, const void *pb) {
    const special_key *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

// Tokens cut out of raw text before encoding (llama.cpp adds UNKNOWN for spm).
static bool is_split_special(const bn_tokenizer *t, int32_t id) {
    int32_t ty = t->type[id];
    return t->text_len[id] > 0 &&
           (ty == BN_TOKEN_TYPE_CONTROL || ty == BN_TOKEN_TYPE_USER_DEFINED ||
            (t->spm && ty == BN_TOKEN_TYPE_UNKNOWN));
}

int bn_tok_finish(bn_tokenizer *t, int32_t bos, int32_t eos, int32_t eot, bool add_bos,
                  const char *chat_template, const char *regex, bool ignore_merges,
                  bn_error *err) {
    int32_t ids[3] = {bos, eos, eot};
    for (int i = 0; i < 3; i++)
        if (ids[i] < -1 || ids[i] >= t->n_vocab)
            return bn_errorf(err, "tokenizer: special token id %d out of range [0, %d)", ids[i],
                             t->n_vocab);
    t->bos = bos;
    t->eos = eos;
    t->eot = eot;
    t->add_bos = add_bos;
    t->ignore_merges = ignore_merges;
    // End of generation: eos, eot, and Llama-3's two stop tokens when present
    // (2B-4T stops at either, docs/architecture.md: Tokenizer and chat format).
    int32_t cand[4] = {eos, eot, bn_tok_find(t, "<|eot_id|>", 10), bn_tok_find(t, "<|end_of_text|>", 15)};
    for (int i = 0; i < 4; i++) {
        bool seen = cand[i] < 0;
        for (int j = 0; j < t->n_eog && !seen; j++) seen = t->eog[j] == cand[i];
        if (!seen) t->eog[t->n_eog++] = cand[i];
    }
    if (chat_template && !(t->chat_template = strdup(chat_template)))
        return bn_errorf(err, "tokenizer: out of memory");

    size_t ns = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (is_split_special(t, id)) ns++;
    special_key *keys = malloc((ns ? ns : 1) * sizeof *keys);
    t->special = malloc((ns ? ns : 1) * sizeof *t->special);
    if (!keys || !t->special) {
        free(keys);
        return bn_errorf(err, "tokenizer: out of memory");
    }
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (is_split_special(t, id))
            keys[t->n_special++] = (special_key){
                (unsigned char)t->text.data[t->text_off[id]], t->text_len[id], id};
    qsort(keys, t->n_special, sizeof *keys, t->spm ? cmp_special_spm : cmp_special);
    for (size_t i = 0; i < t->n_special; i++) t->special[i] = keys[i].id;
    free(keys);
    for (size_t i = 0; i < t->n_special; i++) {
        unsigned char c = (unsigned char)t->text.data[t->text_off[t->special[i]]];
        if (t->first_hi[c] == 0) t->first_lo[c] = (uint32_t)i;
        t->first_hi[c] = (uint32_t)i + 1;
    }
    return regex ? bn_tok_compile_split_regex(regex, &t->re, err) : 0;
}

void bn_tokenizer_free(bn_tokenizer *t) {
    if (!t) return;
    free(t->type);
    free(t->text_off);
    free(t->text_len);
    free(t->bytes_off);
    free(t->bytes_len);
    free(t->text.data);
    free(t->bytes.data);
    free(t->vslot);
    free(t->merge_off);
    free(t->merge_text.data);
    free(t->mslot);
    free(t->special);
    free(t->chat_template);
    free(t->score);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}
