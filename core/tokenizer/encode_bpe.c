// encode_bpe.c - the byte-level BPE encoder: special-token split, regex
// pre-tokenization, byte-level mapping, ignore_merges, and BPE merging.
//
// Order of work, as in HF `tokenizers`: (1) added/special tokens are cut out of
// the raw text first (leftmost, then longest); (2) each piece between them is
// split by the pre-tokenizer regex (split_regex.c, compiled by bn_tok_finish);
// (3) each pre-token is mapped to its byte-level form; with ignore_merges a
// pre-token that is itself a vocabulary entry is one token; (4) otherwise it
// starts as single bytes and the adjacent pair with the lowest merge rank (then
// leftmost) merges until none applies.
//
// (4) uses a binary heap of candidate pairs keyed by (rank, position) over a
// linked list of symbols, so a word of n bytes costs O(n log n): stale heap
// entries are detected on pop by re-checking the two symbols' current ids.
#include <stdlib.h>
#include <string.h>

#include "../heap.h"
#include "encode.h"

// ---- per-call encoder state -------------------------------------------------------
typedef struct sym {
    int32_t id;         // -1 once merged into its left neighbour
    int32_t prev, next; // -1 at the ends
} sym;

typedef struct cand {
    uint32_t rank;
    int32_t left, right;
    int32_t lid, rid, result;
} cand;

typedef struct enc {
    const bn_tokenizer *t;
    bn_error *err;
    bn_tok_ids *out;
    char *bl; // byte-level form of the current pre-token
    size_t cap_bl;
    sym *syms;
    size_t cap_syms;
    cand *heap;
    size_t n_heap, cap_heap;
} enc;

static int push_id(enc *e, int32_t id) { return bn_tok_push_id(e->out, id, e->err); }

static bool cand_less(const cand *a, const cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

BN_HEAP_DEFINE(cand_heap, cand, cand_less)

// Queues the pair (left, right) if the merge table has it. The heap has room:
// encode_word sized it for every pair a word can queue.
static void try_pair(enc *e, int32_t left, int32_t right) {
    const bn_tokenizer *t = e->t;
    int32_t l = e->syms[left].id, r = e->syms[right].id;
    uint64_t key = bn_tok_pair_key(l, r);
    uint64_t h = bn_tok_pair_hash(key);
    for (size_t i = h & t->mmask; t->mslot[i].key; i = (i + 1) & t->mmask)
        if (t->mslot[i].key == key) {
            cand_heap_push(e->heap, &e->n_heap, (cand){t->mslot[i].rank, left, right, l, r, t->mslot[i].result});
            return;
        }
}

// One pre-token (raw bytes) -> tokens.
static int encode_word(enc *e, const unsigned char *w, size_t n) {
    const bn_tokenizer *t = e->t;
    if (n == 0) return 0;
    if (n == 1) return push_id(e, t->byte_id[w[0]]);
    if (n > INT32_MAX / 2) return bn_errorf(e->err, "tokenize: pre-token of %zu bytes", n);

    if (t->ignore_merges) {
        if (bn_tok_grow((void **)&e->bl, &e->cap_bl, 2 * n, 1, e->err)) return -1;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            // Byte token texts are the byte-level UTF-8 of one byte (1 or 2 bytes).
            int32_t b = t->byte_id[w[i]];
            memcpy(e->bl + m, t->text.data + t->text_off[b], t->text_len[b]);
            m += t->text_len[b];
        }
        int32_t id = bn_tok_find(t, e->bl, m);
        if (id >= 0 && t->type[id] != BN_TOKEN_TYPE_CONTROL) return push_id(e, id);
    }

    // n - 1 pairs at first, and each of at most n - 1 merges queues 2 more.
    if (bn_tok_grow((void **)&e->syms, &e->cap_syms, n, sizeof *e->syms, e->err) ||
        bn_tok_grow((void **)&e->heap, &e->cap_heap, 3 * n, sizeof *e->heap, e->err))
        return -1;
    sym *s = e->syms;
    for (size_t i = 0; i < n; i++)
        s[i] = (sym){t->byte_id[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    e->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(e, (int32_t)i, (int32_t)i + 1);
    while (e->n_heap) {
        cand c = cand_heap_pop(e->heap, &e->n_heap);
        if (s[c.left].id != c.lid || s[c.left].next != c.right || s[c.right].id != c.rid)
            continue; // stale: one side has merged since this pair was queued
        s[c.left].id = c.result;
        s[c.left].next = s[c.right].next;
        if (s[c.right].next >= 0) s[s[c.right].next].prev = c.left;
        s[c.right].id = -1;
        if (s[c.left].prev >= 0) try_pair(e, s[c.left].prev, c.left);
        if (s[c.left].next >= 0) try_pair(e, c.left, s[c.left].next);
    }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        if (push_id(e, s[i].id)) return -1;
    return 0;
}

// Text without special tokens -> pre-tokens -> tokens.
static int encode_text(enc *e, pcre2_match_data *md, const unsigned char *s, size_t n) {
    size_t off = 0;
    while (off < n) {
        int rc = pcre2_match(e->t->re, s, n, off, 0, md, NULL);
        size_t ms = n, me = n;
        if (rc >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
        } else if (rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return bn_errorf(e->err, "tokenize: regex match failed: %s", (const char *)msg);
        }
        // Bytes no match covers are invalid UTF-8: one pre-token each, so they
        // become their byte tokens and decode back exactly.
        for (; off < ms; off++)
            if (encode_word(e, s + off, 1)) return -1;
        if (me == ms) { // an empty match (not possible with the Llama-3 regex): step one byte
            if (ms < n && encode_word(e, s + ms, 1)) return -1;
            off = ms + 1;
            continue;
        }
        if (encode_word(e, s + ms, me - ms)) return -1;
        off = me;
    }
    return 0;
}

int bn_tok_bpe_encode(const bn_tokenizer *t, const char *text, size_t len, bool parse_special,
                      bn_tok_ids *out, bn_error *err) {
    enc e = {.t = t, .err = err, .out = out};
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    int rc = md ? 0 : bn_errorf(err, "tokenize: out of memory");
    const unsigned char *s = (const unsigned char *)text;
    size_t seg = 0, i = 0;
    while (!rc && i < len) {
        unsigned c = s[i];
        int32_t hit = -1;
        for (uint32_t k = t->first_lo[c]; k < t->first_hi[c]; k++) {
            int32_t id = t->special[k];
            if (!parse_special && t->type[id] == BN_TOKEN_TYPE_CONTROL) continue;
            if (t->text_len[id] <= len - i && memcmp(s + i, t->text.data + t->text_off[id], t->text_len[id]) == 0) {
                hit = id;
                break;
            }
        }
        if (hit < 0) {
            i++;
            continue;
        }
        rc = encode_text(&e, md, s + seg, i - seg);
        if (!rc) rc = push_id(&e, hit);
        i += t->text_len[hit];
        seg = i;
    }
    if (!rc) rc = encode_text(&e, md, s + seg, len - seg);
    pcre2_match_data_free(md);
    free(e.bl);
    free(e.syms);
    free(e.heap);
    return rc;
}
