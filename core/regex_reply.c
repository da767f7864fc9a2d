// regex_reply.c - a reply held to a regular expression, whole (regex_reply.h).
#include "regex_reply.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

int bn_regex_reply_init(bn_regex_reply *r, const char *pattern, int32_t n_vocab, bn_error *err) {
    *r = (bn_regex_reply){0};
    char why[256];
    if (bn_regex_compile_whole(pattern, NULL, &r->rx, why, sizeof why)) return bn_errorf(err, "regex: %s", why);
    r->n_vocab = n_vocab;
    r->words = ((size_t)n_vocab + 63) / 64;
    r->masks = malloc(BN_REGEX_REPLY_MASKS * r->words * sizeof *r->masks);
    if (!r->masks) {
        bn_regex_reply_free(r);
        return bn_errorf(err, "out of memory");
    }
    for (int i = 0; i < BN_REGEX_REPLY_MASKS; i++) r->kept[i] = BN_REGEX_DEAD;
    return 0;
}

int bn_regex_check(const char *pattern, bn_error *err) {
    bn_regex_reply r;
    if (bn_regex_reply_init(&r, pattern, 1, err)) return -1;
    bn_regex_reply_free(&r);
    return 0;
}

void bn_regex_reply_free(bn_regex_reply *r) {
    bn_regex_free(r->rx);
    free(r->masks);
    *r = (bn_regex_reply){0};
}

int bn_regex_of_choices(const char *const *choices, size_t n, char **pattern, bn_error *err) {
    *pattern = NULL;
    if (n == 0) return bn_errorf(err, "choices: none given");
    size_t len = 1;
    for (size_t i = 0; i < n; i++) {
        for (const char *c = choices[i]; *c; c++)
            if ((unsigned char)*c < 0x20 && !strchr("\b\t\n\f\r", *c))
                return bn_errorf(err, "choice %zu has the control character U+%04X, which no reply holds", i,
                                 (unsigned)(unsigned char)*c);
        len += 2 * strlen(choices[i]) + 1;
    }
    char *p = malloc(len), *o = p;
    if (!p) return bn_errorf(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (i) *o++ = '|';
        for (const char *c = choices[i]; *c; c++) {
            if (strchr("\\^$.|?*+()[]{}/", *c)) *o++ = '\\';
            *o++ = *c;
        }
    }
    *o = 0;
    *pattern = p;
    return 0;
}

// The state after a token's bytes from s (BN_REGEX_DEAD where they lead nowhere).
static uint32_t after(const bn_regex *rx, uint32_t s, const char *bytes, size_t n) {
    for (size_t i = 0; i < n && s != BN_REGEX_DEAD; i++) s = bn_regex_step(rx, s, (unsigned char)bytes[i]);
    return s;
}

// The tokens that can continue the reply from state s, a bit each, worked out
// into bits.
static void work_out(const bn_regex_reply *r, const bn_engine *e, uint32_t s, uint64_t *bits) {
    memset(bits, 0, r->words * sizeof *bits);
    const bool may_end = bn_regex_accepts(r->rx, s);
    for (int32_t t = 0; t < r->n_vocab; t++) {
        size_t n = 0;
        const char *bytes = bn_engine_token_bytes(e, t, &n);
        const bool fits = bn_engine_is_eog(e, t) ? may_end
                        : bytes && n && !bn_tokenizer_is_special(e->tok, t) &&
                              after(r->rx, s, bytes, n) != BN_REGEX_DEAD;
        if (fits) bits[t / 64] |= 1ull << (t % 64);
    }
}

int bn_regex_reply_mask(bn_regex_reply *r, const bn_engine *e, float *row) {
    int k = 0;
    while (k < BN_REGEX_REPLY_MASKS && r->kept[k] != r->state) k++;
    if (k == BN_REGEX_REPLY_MASKS) { // not kept: worked out, in place of the oldest
        k = r->next_kept;
        r->next_kept = (k + 1) % BN_REGEX_REPLY_MASKS;
        work_out(r, e, r->state, r->masks + (size_t)k * r->words);
        r->kept[k] = r->state;
    }
    const uint64_t *bits = r->masks + (size_t)k * r->words;
    int left = 0;
    for (int32_t t = 0; t < r->n_vocab; t++) {
        if (bits[t / 64] >> (t % 64) & 1) left++;
        else row[t] = -INFINITY;
    }
    return left;
}

bool bn_regex_reply_feed(bn_regex_reply *r, const bn_engine *e, int32_t id) {
    size_t n = 0;
    const char *bytes = bn_engine_token_bytes(e, id, &n);
    if (!bn_engine_is_eog(e, id)) r->state = after(r->rx, r->state, bytes, n);
    if (r->state == BN_REGEX_DEAD) return true; // not a token the mask kept: nothing can follow
    if (!bn_regex_accepts(r->rx, r->state)) return false;
    for (int c = 0; c < 256; c++)
        if (bn_regex_step(r->rx, r->state, (unsigned char)c) != BN_REGEX_DEAD) return false;
    return true;
}
