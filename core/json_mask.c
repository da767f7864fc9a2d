// json_mask.c - bn_json_mask_row (json_mask.h). A row is 128k tokens for the
// Llama-3 vocabulary, so the common cases are cheap: inside a string a token
// that is plain text fits without a look at its bytes, and elsewhere a token is
// fed to a copy of the automaton only when its first byte fits (256 bytes
// tried once per row).
#include "json_mask.h"

#include <math.h>
#include <stdlib.h>

#include "engine_internal.h"

int bn_json_vocab_init(bn_json_vocab *v, const bn_engine *e, bn_error *err) {
    v->n = (int32_t)e->model->hp.n_vocab;
    v->kind = malloc((size_t)v->n);
    v->first = malloc((size_t)v->n);
    if (!v->kind || !v->first) {
        bn_json_vocab_free(v);
        return bn_errorf(err, "out of memory");
    }
    for (int32_t t = 0; t < v->n; t++) {
        size_t n = 0;
        const char *bytes = bn_engine_token_bytes(e, t, &n);
        const bool never = !bytes || !n || bn_tokenizer_is_special(e->tok, t) || bn_engine_is_eog(e, t);
        v->kind[t] = never ? BN_JSON_NEVER : bn_json_plain_string_bytes(bytes, n) ? BN_JSON_PLAIN : BN_JSON_CHECK;
        v->first[t] = never ? 0 : (uint8_t)bytes[0];
    }
    return 0;
}

void bn_json_vocab_free(bn_json_vocab *v) {
    free(v->kind);
    free(v->first);
    *v = (bn_json_vocab){0};
}

int bn_json_mask_row(const bn_json_vocab *v, const bn_engine *e, const bn_json_prefix *s, float *row) {
    bool first_fits[256];
    for (int c = 0; c < 256; c++) {
        bn_json_prefix t = *s;
        const char byte = (char)c;
        first_fits[c] = bn_json_prefix_feed(&t, &byte, 1);
    }
    const bool in_string = bn_json_prefix_in_string(s);
    int left = 0;
    for (int32_t t = 0; t < v->n; t++) {
        bool ok = v->kind[t] != BN_JSON_NEVER && first_fits[v->first[t]];
        if (ok && !(in_string && v->kind[t] == BN_JSON_PLAIN)) {
            size_t n;
            const char *bytes = bn_engine_token_bytes(e, t, &n);
            bn_json_prefix trial = *s;
            ok = bn_json_prefix_feed(&trial, bytes, n);
        }
        if (ok) left++;
        else row[t] = -INFINITY;
    }
    return left;
}
