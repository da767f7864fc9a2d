// encode_spm.c - the LLaMA SentencePiece encoder (GGUF tokenizer.ggml.model
// "llama"), as llama.cpp's llm_tokenizer_spm (src/llama-vocab.cpp, the copy
// vendored by bitnet.cpp): docs/architecture.md, Tokenizer and chat format.
//
// Encoding, llama_tokenize_internal's LLAMA_VOCAB_TYPE_SPM case:
//  1. Special tokens are cut out of the raw text first, one token at a time,
//     longest first, each at every leftmost non-overlapping occurrence in the
//     text fragments left so far. USER_DEFINED tokens always; CONTROL and
//     UNKNOWN ("<unk>") only with parse_special.
//  2. Each text fragment that starts the text or follows a special token
//     (BOS included) gets a leading space when add_space_prefix; then every
//     space becomes U+2581 "▁" (nothing else is normalized).
//  3. The fragment is split into characters by the UTF-8 lead byte alone
//     (llama.cpp's unicode_len_utf8: no check of the continuation bytes), and
//     adjacent symbols merge while some pair's concatenation is a vocabulary
//     token: the pair whose token has the highest score first, then the
//     leftmost. Any token text counts, whatever its type, as in llama.cpp.
//  4. Each final symbol is its token, or (no token has that text) one byte
//     token <0xXX> per byte: the byte fallback.
//
// Decoding: a token's bytes are set when the vocabulary is built (token_bytes.c:
// U+2581 back to a space, <0xXX> to its byte, special tokens as their text);
// bn_detokenize (tokenizer.c) drops one leading space of the first token when
// add_space_prefix (llama_detokenize).
#include <stdlib.h>
#include <string.h>

#include "../heap.h"
#include "encode.h"
#include "token_bytes.h"

// ---- encoding -------------------------------------------------------------------------
typedef struct sym {
    size_t off, n;      // bytes in the escaped text; n == 0 once merged into its left
    int32_t prev, next; // -1 at the ends
} sym;

typedef struct bigram {
    float score;
    int32_t left, right;
    size_t size; // n of left + right when queued: a later mismatch means stale
} bigram;

typedef struct frag {
    int32_t tok; // -1: text [off, off + len)
    size_t off, len;
} frag;

typedef struct spm_enc {
    const bn_tokenizer *t;
    bn_error *err;
    bn_tok_ids *out;
    char *buf; // the escaped fragment
    size_t cap_buf;
    sym *syms;
    size_t cap_syms;
    bigram *heap;
    size_t n_heap, cap_heap;
} spm_enc;

static int push_id(spm_enc *e, int32_t id) { return bn_tok_push_id(e->out, id, e->err); }

// llama.cpp's llm_bigram_spm::comparator, as "a comes out of the queue first".
static bool bigram_first(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

BN_HEAP_DEFINE(bigram_heap, bigram, bigram_first)

// try_add_bigram: queues (left, right) when their text together is a token. The
// heap has room: encode_fragment sized it for every pair a fragment can queue.
static void try_pair(spm_enc *e, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const sym *s = e->syms;
    size_t size = s[left].n + s[right].n;
    int32_t id = bn_tok_find(e->t, e->buf + s[left].off, size);
    if (id >= 0) bigram_heap_push(e->heap, &e->n_heap, (bigram){e->t->score[id], left, right, size});
}

// Lead-byte length as llama.cpp's unicode_len_utf8 (by the high nibble). Not
// bn_utf8_char_len: on invalid UTF-8 that one rejects what llama.cpp groups,
// and the grouping decides which symbols exist.
static size_t lead_len(unsigned char c) {
    static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

// llm_tokenizer_spm_session::tokenize on one text fragment.
static int encode_fragment(spm_enc *e, const char *s, size_t n, bool prefix) {
    const bn_tokenizer *t = e->t;
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    size_t m = (prefix ? BN_SPM_SPACE_LEN : 0) + n + spaces * (BN_SPM_SPACE_LEN - 1);
    if (m == 0) return 0;
    if (m > (size_t)INT32_MAX) return bn_errorf(e->err, "tokenize: text of %zu bytes", n);
    if (bn_tok_grow((void **)&e->buf, &e->cap_buf, m, 1, e->err)) return -1;
    char *b = e->buf;
    size_t o = 0;
    if (prefix) {
        memcpy(b, BN_SPM_SPACE, BN_SPM_SPACE_LEN);
        o = BN_SPM_SPACE_LEN;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(b + o, BN_SPM_SPACE, BN_SPM_SPACE_LEN);
            o += BN_SPM_SPACE_LEN;
        } else {
            b[o++] = s[i];
        }
    }

    // one symbol per character (at most m); the heap: m - 1 pairs at first, and
    // each of at most m - 1 merges queues 2 more
    if (bn_tok_grow((void **)&e->syms, &e->cap_syms, m, sizeof *e->syms, e->err) ||
        bn_tok_grow((void **)&e->heap, &e->cap_heap, 3 * m, sizeof *e->heap, e->err))
        return -1;
    sym *sy = e->syms;
    int32_t count = 0;
    for (size_t off = 0; off < m; count++) {
        size_t len = lead_len((unsigned char)b[off]);
        if (len > m - off) len = m - off;
        sy[count] = (sym){off, len, count - 1, off + len == m ? -1 : count + 1};
        off += len;
    }
    e->n_heap = 0;
    for (int32_t i = 1; i < count; i++) try_pair(e, i - 1, i);
    while (e->n_heap) {
        bigram g = bigram_heap_pop(e->heap, &e->n_heap);
        sym *l = &sy[g.left], *r = &sy[g.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != g.size) continue; // stale
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sy[r->next].prev = g.left;
        try_pair(e, l->prev, g.left);
        try_pair(e, g.left, l->next);
    }

    // resegment: the symbol's token, else its bytes as byte tokens
    for (int32_t i = 0; i != -1; i = sy[i].next) {
        int32_t id = bn_tok_find(t, b + sy[i].off, sy[i].n);
        if (id >= 0) {
            if (push_id(e, id)) return -1;
            continue;
        }
        for (size_t k = 0; k < sy[i].n; k++) {
            unsigned char c = (unsigned char)b[sy[i].off + k];
            if (t->byte_id[c] < 0)
                return bn_errorf(e->err, "tokenize: the vocabulary has no byte token <0x%02X> "
                                         "for a character it has no token for", c);
            if (push_id(e, t->byte_id[c])) return -1;
        }
    }
    return 0;
}

// First occurrence of needle (nl > 0 bytes) within hay[0, hl), or -1.
static long find_in(const char *hay, size_t hl, const char *needle, size_t nl) {
    if (nl > hl) return -1;
    const char *p = hay, *end = hay + (hl - nl) + 1;
    while (p < end && (p = memchr(p, needle[0], (size_t)(end - p))) != NULL) {
        if (memcmp(p, needle, nl) == 0) return (long)(p - hay);
        p++;
    }
    return -1;
}

// tokenizer_st_partition: the text as fragments of text and special tokens.
static int partition(const bn_tokenizer *t, const char *s, size_t len, bool parse_special,
                     frag **out, size_t *n_out, bn_error *err) {
    frag *cur = NULL, *next = NULL;
    size_t n_cur = 0, cap_cur = 0, cap_next = 0;
    if (len) {
        if (bn_tok_grow((void **)&cur, &cap_cur, 1, sizeof *cur, err)) return -1;
        cur[n_cur++] = (frag){-1, 0, len};
    }
    for (size_t k = 0; k < t->n_special && n_cur; k++) {
        int32_t id = t->special[k];
        int32_t ty = t->type[id];
        if (!parse_special && (ty == BN_TOKEN_TYPE_CONTROL || ty == BN_TOKEN_TYPE_UNKNOWN)) continue;
        const char *st = t->text.data + t->text_off[id];
        size_t sl = t->text_len[id];
        size_t n_next = 0;
        for (size_t f = 0; f < n_cur; f++) {
            // at most 2 pieces per match, plus the rest
            size_t pos = cur[f].off, end = cur[f].off + cur[f].len;
            for (;;) {
                long m = cur[f].tok < 0 ? find_in(s + pos, end - pos, st, sl) : -1;
                if (bn_tok_grow((void **)&next, &cap_next, n_next + 2, sizeof *next, err)) goto fail;
                if (m < 0) {
                    if (cur[f].tok >= 0) next[n_next++] = cur[f];
                    else if (end > pos) next[n_next++] = (frag){-1, pos, end - pos};
                    break;
                }
                if (m > 0) next[n_next++] = (frag){-1, pos, (size_t)m};
                next[n_next++] = (frag){id, 0, 0};
                pos += (size_t)m + sl;
            }
        }
        frag *tmp = cur;
        cur = next;
        next = tmp;
        size_t c = cap_cur;
        cap_cur = cap_next;
        cap_next = c;
        n_cur = n_next;
    }
    free(next);
    *out = cur;
    *n_out = n_cur;
    return 0;
fail:
    free(cur);
    free(next);
    return -1;
}

int bn_tok_spm_encode(const bn_tokenizer *t, const char *text, size_t len, bool parse_special,
                      bn_tok_ids *out, bn_error *err) {
    spm_enc e = {.t = t, .err = err, .out = out};
    frag *fr = NULL;
    size_t n_fr = 0;
    int rc = partition(t, text, len, parse_special, &fr, &n_fr, err);
    bool prev_special = true; // the text's start counts as following a special token
    for (size_t i = 0; !rc && i < n_fr; i++) {
        if (fr[i].tok >= 0) {
            rc = push_id(&e, fr[i].tok);
            prev_special = true;
        } else {
            rc = encode_fragment(&e, text + fr[i].off, fr[i].len, t->add_space_prefix && prev_special);
            prev_special = false;
        }
    }
    free(fr);
    free(e.buf);
    free(e.syms);
    free(e.heap);
    return rc;
}
