// json_mask.c - bn_json_mask_row (json_mask.h). A row is 128k tokens for the
// Llama-3 vocabulary, so the common cases are cheap. Inside a string a token
// that is plain text fits without a look at its bytes. Elsewhere a token is fed
// to a copy of the automaton only when its first two significant bytes fit
// (after no or one leading blank, as in " the"): byte pairs are tried once per
// row, and only for first bytes that fit, so "the" or " for" after a colon,
// which could begin only true, false or null, cost two lookups.
#include "json_mask.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

// The states are a few KB each (json_schema.h), so they live in the vocab's
// scratch rather than on the stack of whichever thread masks.
typedef struct mask_states {
    bn_json_state from[2], after, trial;
} mask_states;

int bn_json_vocab_init(bn_json_vocab *v, const bn_engine *e, bn_error *err) {
    v->n = (int32_t)e->model->hp.n_vocab;
    const size_t n_vocab = (size_t)v->n;
    v->kind = malloc(n_vocab);
    v->first = malloc(n_vocab);
    v->blank = malloc(n_vocab);
    v->lead = malloc(n_vocab);
    v->lead2 = malloc(n_vocab);
    v->pair = malloc(2 * 256 * 256 * sizeof *v->pair);
    v->states = malloc(sizeof(mask_states));
    if (!v->kind || !v->first || !v->blank || !v->lead || !v->lead2 || !v->pair || !v->states) {
        bn_json_vocab_free(v);
        return bn_errorf(err, "out of memory");
    }
    for (int32_t t = 0; t < v->n; t++) {
        size_t n = 0;
        const char *bytes = bn_engine_token_bytes(e, t, &n);
        const bool end = bn_engine_is_eog(e, t);
        const bool never = end || !bytes || !n || bn_tokenizer_is_special(e->tok, t);
        v->kind[t] = end ? BN_JSON_END : never ? BN_JSON_NEVER
                   : bn_json_plain_string_bytes(bytes, n) ? BN_JSON_PLAIN : BN_JSON_CHECK;
        size_t k = 0;
        while (!never && k < n && bn_json_is_blank(bytes[k])) k++;
        v->first[t] = never ? 0 : (uint8_t)bytes[0];
        v->blank[t] = (uint8_t)(k < 255 ? k : 255);
        v->lead[t] = !never && k < n ? (uint8_t)bytes[k] : 0;
        v->lead2[t] = !never && k + 1 < n ? (uint8_t)bytes[k + 1] : 0;
    }
    return 0;
}

void bn_json_vocab_free(bn_json_vocab *v) {
    free(v->kind);
    free(v->first);
    free(v->blank);
    free(v->lead);
    free(v->lead2);
    free(v->pair);
    free(v->states);
    *v = (bn_json_vocab){0};
}

// Which bytes s takes next, into fits[256].
static void next_bytes(const bn_json_state *s, bool fits[256], bn_json_state *scratch) {
    for (int c = 0; c < 256; c++) {
        const char byte = (char)c;
        fits[c] = bn_json_state_fits(s, &byte, 1, scratch);
    }
}

int bn_json_mask_row(bn_json_vocab *v, const bn_engine *e, const bn_json_state *s, float *row) {
    mask_states *m = v->states;
    // from[0]: s; from[1]: s after one space. Outside a string the four blanks
    // are alike but for the newline's mark and the count of blanks in a row,
    // which only take away what may follow (the trial checks them). Where some
    // reading is in a string, an enum value or a property name, a blank there
    // is text, and from[1] takes more than any other blank would: the filters
    // below only ever let through too much.
    bn_json_state *from = m->from;
    const bool in_string = bn_json_state_in_string(s);
    const bool blanks_alike = !in_string && bn_json_state_next(s, " ", 1, &from[1]);
    const bool may_end = bn_json_state_done(s);
    bn_json_state_copy(&from[0], s);
    bool fits[2][256], paired[2][256] = {{false}};
    next_bytes(&from[0], fits[0], &m->trial);
    if (blanks_alike) next_bytes(&from[1], fits[1], &m->trial);
    int left = 0;
    for (int32_t t = 0; t < v->n; t++) {
        if (v->kind[t] == BN_JSON_END) {
            if (may_end) left++;
            else row[t] = -INFINITY;
            continue;
        }
        bool ok = v->kind[t] != BN_JSON_NEVER && fits[0][v->first[t]];
        // from[1] stands for one blank only: in an enum value or a property name
        // a blank is text, and two are not where one is.
        const int f = blanks_alike && v->blank[t] == 1;
        const uint8_t b1 = v->lead[t], b2 = v->lead2[t];
        if (ok && v->blank[t] <= 1 && (f || blanks_alike) && b1) { // outside a string: the significant bytes
            ok = fits[f][b1];
            if (ok && b2) {
                bool *pair = v->pair + ((size_t)f * 256 + b1) * 256;
                if (!paired[f][b1]) { // the pairs that begin with b1, tried once a row
                    const char c1 = (char)b1;
                    bn_json_state_next(&from[f], &c1, 1, &m->after);
                    next_bytes(&m->after, pair, &m->trial);
                    paired[f][b1] = true;
                }
                ok = pair[b2];
            }
        }
        if (ok && !(in_string && v->kind[t] == BN_JSON_PLAIN)) {
            size_t n;
            const char *bytes = bn_engine_token_bytes(e, t, &n);
            ok = bn_json_state_fits(s, bytes, n, &m->trial);
        }
        if (ok) left++;
        else row[t] = -INFINITY;
    }
    return left;
}

bool bn_json_state_feed_token(bn_json_state *s, const bn_engine *e, int32_t id) {
    size_t n;
    const char *bytes = bn_engine_token_bytes(e, id, &n);
    bn_json_state_feed(s, bytes, n);
    return bn_json_state_complete(s);
}
