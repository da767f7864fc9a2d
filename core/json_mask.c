// json_mask.c - bn_json_mask_row (json_mask.h). A row is 128k tokens for the
// Llama-3 vocabulary, so the common cases are cheap. A state met lately gets
// its kept mask: a bit per token, set in a pass over 2k words. Otherwise,
// inside a string every plain-text token short enough fits without a look at
// its bytes (a copy of a bitset), and only the others are tried. Elsewhere
// tokens go in groups of the same first byte and first two significant bytes
// (after no or one leading blank, as in " the"): 128k tokens are about 8k
// groups. A group's tokens are tried on a copy of the automaton only when
// those bytes fit, which a table of the bytes the state takes answers once for
// the group (byte pairs tried once per row, and only for first bytes that
// fit), so "the" or " for" after a colon, which could begin only true, false
// or null, cost nothing each.
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

// A kept mask: the state's key, and a bit per token kept.
typedef struct mask_entry {
    uint64_t hash, met; // met: when last asked for (0: empty)
    uint8_t *key;
    size_t key_len;
    uint64_t *bits;     // [words]
    int left;
} mask_entry;

// The tokens by what the filters read of them (bn_json_vocab_init).
typedef struct token_groups {
    int32_t *order;     // the tokens that may fit somewhere, by group
    int32_t *group_end; // [n_groups] each group's end in order
    int32_t n_groups;
    int32_t *check;     // the BN_JSON_CHECK tokens
    int32_t n_check;
    int32_t *ends;      // the BN_JSON_END tokens
    int32_t n_ends;
    uint64_t *plain;    // [words] the BN_JSON_PLAIN tokens, a bit each
    int32_t n_plain;
    int32_t *by_chars;  // [n_plain] the plain tokens by their characters, fewest first
    int32_t *upto;      // [longest + 1] how many of them have at most so many
} token_groups;

typedef struct mask_cache {
    uint64_t clock;
    size_t words;                       // (n + 63) / 64
    uint64_t *bits;                     // [words] the row being worked out
    uint8_t key[BN_JSON_STATE_KEY_MAX]; // its state's key
    mask_entry entry[BN_JSON_MASK_CACHE];
} mask_cache;

// What groups a token: its first byte, its leading blanks (none, one, more),
// and the two bytes after them; all the filters of work_out read.
static uint32_t group_key(const bn_json_vocab *v, int32_t t) {
    const uint32_t blanks = v->blank[t] < 2 ? v->blank[t] : 2;
    return (uint32_t)v->first[t] << 24 | blanks << 16 | (uint32_t)v->lead[t] << 8 | v->lead2[t];
}

static int ascending(const void *a, const void *b) {
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

// v->groups from v's tables and chars (each plain token's characters).
// Returns -1 when out of memory.
static int group_tokens(bn_json_vocab *v, const uint16_t *chars) {
    token_groups *g = v->groups = calloc(1, sizeof *g);
    if (!g) return -1;
    const size_t n = (size_t)v->n, words = (n + 63) / 64;
    g->order = malloc(n * sizeof *g->order);
    g->group_end = malloc(n * sizeof *g->group_end);
    g->check = malloc(n * sizeof *g->check);
    g->ends = malloc(n * sizeof *g->ends);
    g->plain = calloc(words, sizeof *g->plain);
    uint64_t *keyed = malloc(n * sizeof *keyed); // a group's key, then the token
    g->by_chars = malloc(n * sizeof *g->by_chars);
    g->upto = calloc((size_t)v->longest + 1, sizeof *g->upto);
    if (!g->order || !g->group_end || !g->check || !g->ends || !g->plain || !keyed || !g->by_chars || !g->upto) {
        free(keyed);
        return -1;
    }
    int32_t n_order = 0;
    for (int32_t t = 0; t < v->n; t++) {
        switch (v->kind[t]) {
        case BN_JSON_END: g->ends[g->n_ends++] = t; continue;
        case BN_JSON_NEVER: continue;
        case BN_JSON_PLAIN: g->plain[t / 64] |= 1ull << (t % 64), g->n_plain++; break;
        default: g->check[g->n_check++] = t; break;
        }
        keyed[n_order++] = (uint64_t)group_key(v, t) << 32 | (uint32_t)t;
    }
    qsort(keyed, (size_t)n_order, sizeof *keyed, ascending);
    for (int32_t i = 0; i < n_order; i++) {
        g->order[i] = (int32_t)(uint32_t)keyed[i];
        if (i > 0 && keyed[i] >> 32 != keyed[i - 1] >> 32) g->group_end[g->n_groups++] = i;
    }
    if (n_order) g->group_end[g->n_groups++] = n_order;
    // The plain tokens by characters: a counting sort (a character's bytes are
    // at least one, so at most `longest`).
    for (int32_t t = 0; t < v->n; t++)
        if (v->kind[t] == BN_JSON_PLAIN) g->upto[chars[t]]++;
    for (uint32_t c = 1; c <= v->longest; c++) g->upto[c] += g->upto[c - 1];
    for (int32_t t = v->n - 1; t >= 0; t--)
        if (v->kind[t] == BN_JSON_PLAIN) g->by_chars[--g->upto[chars[t]]] = t;
    for (uint32_t c = 0; c < v->longest; c++) g->upto[c] = g->upto[c + 1];
    g->upto[v->longest] = g->n_plain;
    free(keyed);
    return 0;
}

int bn_json_vocab_init(bn_json_vocab *v, const bn_engine *e, bn_error *err) {
    *v = (bn_json_vocab){.n = (int32_t)e->model->hp.n_vocab};
    const size_t n_vocab = (size_t)v->n;
    v->kind = malloc(n_vocab);
    v->first = malloc(n_vocab);
    v->blank = malloc(n_vocab);
    v->lead = malloc(n_vocab);
    v->lead2 = malloc(n_vocab);
    uint16_t *chars = calloc(n_vocab, sizeof *chars); // only grouping reads them
    v->pair = malloc(2 * 256 * 256 * sizeof *v->pair);
    v->states = malloc(sizeof(mask_states));
    mask_cache *c = v->cache = calloc(1, sizeof *c);
    if (c) c->words = (n_vocab + 63) / 64, c->bits = malloc(c->words * sizeof *c->bits);
    if (!v->kind || !v->first || !v->blank || !v->lead || !v->lead2 || !chars || !v->pair || !v->states || !c ||
        !c->bits) {
        free(chars);
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
        if (!never && n > v->longest) v->longest = (uint32_t)n;
        for (size_t i = 0; v->kind[t] == BN_JSON_PLAIN && i < n && chars[t] < UINT16_MAX; i++)
            chars[t] += ((uint8_t)bytes[i] & 0xC0) != 0x80; // each character's first byte
    }
    const int grouped = group_tokens(v, chars);
    free(chars);
    if (grouped) {
        bn_json_vocab_free(v);
        return bn_errorf(err, "out of memory");
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
    token_groups *g = v->groups;
    if (g) {
        free(g->order);
        free(g->group_end);
        free(g->check);
        free(g->ends);
        free(g->plain);
        free(g->by_chars);
        free(g->upto);
    }
    free(g);
    mask_cache *c = v->cache;
    for (int i = 0; c && i < BN_JSON_MASK_CACHE; i++) {
        free(c->entry[i].key);
        free(c->entry[i].bits);
    }
    if (c) free(c->bits);
    free(c);
    *v = (bn_json_vocab){0};
}

// Which bytes s takes next, into fits[256].
static void next_bytes(const bn_json_state *s, bool fits[256], bn_json_state *scratch) {
    for (int c = 0; c < 256; c++) {
        const char byte = (char)c;
        fits[c] = bn_json_state_fits(s, &byte, 1, scratch);
    }
}

// Works out which tokens s takes, a bit each into bits (all words written).
static int work_out(bn_json_vocab *v, const bn_engine *e, const bn_json_state *s, uint64_t *bits) {
    mask_states *m = v->states;
    // from[0]: s; from[1]: s after one space. Outside a string the four blanks
    // are alike but for the newline's mark and the count of blanks in a row,
    // which only take away what may follow (the trial checks them). Where some
    // reading is in a string, an enum value or a property name, a blank there
    // is text, and from[1] takes more than any other blank would: the filters
    // below only ever let through too much.
    bn_json_state *from = m->from;
    const uint32_t room = bn_json_state_string_room(s); // the characters a plain token may have
    const bool in_string = room > 0;
    const bool blanks_alike = !in_string && bn_json_state_next(s, " ", 1, &from[1]);
    const bool may_end = bn_json_state_done(s);
    bn_json_state_copy(&from[0], s);
    bool fits[2][256], paired[2][256] = {{false}};
    next_bytes(&from[0], fits[0], &m->trial);
    if (blanks_alike) next_bytes(&from[1], fits[1], &m->trial);
    const token_groups *g = v->groups;
    const size_t words = ((size_t)v->n + 63) / 64;
    int left = 0;
    memset(bits, 0, words * sizeof *bits);
    for (int32_t i = 0; i < g->n_ends && may_end; i++) bits[g->ends[i] / 64] |= 1ull << (g->ends[i] % 64), left++;
    if (in_string) { // every plain token short enough fits; the others are tried
        if (room >= v->longest) {
            for (size_t w = 0; w < words; w++) bits[w] |= g->plain[w];
            left += g->n_plain;
        } else {
            for (int32_t i = 0; i < g->upto[room]; i++) bits[g->by_chars[i] / 64] |= 1ull << (g->by_chars[i] % 64);
            left += g->upto[room];
        }
        for (int32_t i = 0; i < g->n_check; i++) {
            const int32_t t = g->check[i];
            size_t n;
            const char *bytes = bn_engine_token_bytes(e, t, &n);
            if (fits[0][v->first[t]] && bn_json_state_fits(s, bytes, n, &m->trial))
                bits[t / 64] |= 1ull << (t % 64), left++;
        }
        return left;
    }
    for (int32_t k = 0, start = 0; k < g->n_groups; start = g->group_end[k++]) {
        const int32_t t0 = g->order[start]; // the group's bytes, as every token of it has them
        bool ok = fits[0][v->first[t0]];
        // from[1] stands for one blank only: in an enum value or a property name
        // a blank is text, and two are not where one is.
        const int f = blanks_alike && v->blank[t0] == 1;
        const uint8_t b1 = v->lead[t0], b2 = v->lead2[t0];
        if (ok && v->blank[t0] <= 1 && blanks_alike && b1) { // the significant bytes
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
        for (int32_t i = start; ok && i < g->group_end[k]; i++) {
            const int32_t t = g->order[i];
            size_t n;
            const char *bytes = bn_engine_token_bytes(e, t, &n);
            if (bn_json_state_fits(s, bytes, n, &m->trial)) bits[t / 64] |= 1ull << (t % 64), left++;
        }
    }
    return left;
}

// Gives -inf to the tokens of row[0..n) whose bits are clear.
static void apply(const uint64_t *bits, int32_t n, float *row) {
    for (int32_t w = 0; (int64_t)w * 64 < n; w++) {
        float *r = row + (size_t)w * 64;
        uint64_t masked = ~bits[w];
        if (n - w * 64 < 64) {
            masked &= (1ull << (n - w * 64)) - 1;
        } else if (masked == ~0ull) { // most words, outside a string: a plain store
            for (int k = 0; k < 64; k++) r[k] = -INFINITY;
            continue;
        }
        for (; masked; masked &= masked - 1) r[__builtin_ctzll(masked)] = -INFINITY;
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

// Keeps c->bits as the mask of the state of key c->key, in place of the one
// met longest ago (nothing is kept when out of memory: the row is right anyway).
static void keep(mask_cache *c, uint64_t hash, size_t key_len, int left) {
    mask_entry *e = &c->entry[0];
    for (int i = 1; i < BN_JSON_MASK_CACHE && e->met; i++)
        if (c->entry[i].met < e->met) e = &c->entry[i];
    e->met = 0;
    if (!e->bits && !(e->bits = malloc(c->words * sizeof *e->bits))) return;
    uint8_t *key = realloc(e->key, key_len);
    if (!key) return;
    e->key = key;
    memcpy(e->key, c->key, key_len);
    memcpy(e->bits, c->bits, c->words * sizeof *e->bits);
    *e = (mask_entry){.hash = hash, .met = ++c->clock, .key = e->key, .key_len = key_len, .bits = e->bits,
                      .left = left};
}

int bn_json_mask_row(bn_json_vocab *v, const bn_engine *e, const bn_json_state *s, float *row) {
    mask_cache *c = v->cache;
    const size_t key_len = bn_json_state_key(s, v->longest, c->key);
    const uint64_t hash = fnv1a(c->key, key_len);
    for (int i = 0; i < BN_JSON_MASK_CACHE; i++) {
        mask_entry *k = &c->entry[i];
        if (k->met && k->hash == hash && k->key_len == key_len && !memcmp(k->key, c->key, key_len)) {
            k->met = ++c->clock;
            v->hits++;
            apply(k->bits, v->n, row);
            return k->left;
        }
    }
    v->misses++;
    const int left = work_out(v, e, s, c->bits);
    keep(c, hash, key_len, left);
    apply(c->bits, v->n, row);
    return left;
}

void bn_json_mask_forget(bn_json_vocab *v) {
    mask_cache *c = v->cache;
    for (int i = 0; c && i < BN_JSON_MASK_CACHE; i++) c->entry[i].met = 0;
}

bool bn_json_state_feed_token(bn_json_state *s, const bn_engine *e, int32_t id) {
    size_t n;
    const char *bytes = bn_engine_token_bytes(e, id, &n);
    bn_json_state_feed(s, bytes, n);
    return bn_json_state_complete(s);
}
