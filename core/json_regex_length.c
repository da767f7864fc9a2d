// json_regex_length.c - a pattern's automaton beside a length in characters
// (json_regex.h: bn_regex_lengths): the pairs of a state and a count of
// characters from which a string of the allowed lengths can still match.
//
// Each alone says too little: "^\d{5}$" within 4 characters, or "^(ab)+$"
// within 3 after "aba", would go on in both and end nowhere. So the pairs are
// worked out once, when the schema is compiled: a pair is live where an
// accepting pair can be reached, a character (not a byte) adding one to the
// count. The automaton knows where characters end only through its states:
// every path to a state has read the same part of a UTF-8 character, since
// the automaton takes valid UTF-8 only, so each state's place in a character
// is found once, walking from the start.
#include "json_regex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bn_regex_lengths {
    uint32_t n_states, counts; // counts: the values a count takes, 0..K
    uint64_t bits[];           // pair (s, k) live: bit s * counts + k
};

static bool get_bit(const uint64_t *b, size_t i) { return b[i / 64] >> (i % 64) & 1; }
static void set_bit(uint64_t *b, size_t i) { b[i / 64] |= 1ull << (i % 64); }

// The bytes left in the UTF-8 character after lead byte c (0: ASCII).
static int continuation_bytes(unsigned char c) { return c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3; }

// Each state's successors, without repeats, into succ (first[s]..first[s + 1]),
// and whether it lies between characters (the start does): a byte into a state
// ends a character where it is ASCII or a last continuation byte.
static bool walk(const bn_regex *r, uint32_t n, uint32_t *first, uint32_t **succ, bool *boundary) {
    int8_t *left = malloc(n); // continuation bytes still to come in each state (-1: not met)
    uint32_t *seen = calloc(n, sizeof *seen), *queue = malloc(n * sizeof *queue), cap = 4 * n, len = 0;
    *succ = malloc(cap * sizeof **succ);
    if (!left || !seen || !queue || !*succ) return free(left), free(seen), free(queue), false;
    memset(left, -1, n);
    left[0] = 0;
    uint32_t head = 0, tail = 0;
    queue[tail++] = 0;
    for (uint32_t s = 0; s < n; s++) { // successors, stamped so that each is listed once
        first[s] = len;
        for (int c = 0; c < 256; c++) {
            const uint32_t t = bn_regex_step(r, s, (unsigned char)c);
            if (t == BN_REGEX_DEAD || seen[t] == s + 1) continue;
            seen[t] = s + 1;
            if (len == cap) {
                uint32_t *grown = realloc(*succ, 2 * cap * sizeof *grown);
                if (!grown) return free(left), free(seen), free(queue), false;
                *succ = grown, cap *= 2;
            }
            (*succ)[len++] = t;
        }
    }
    first[n] = len;
    while (head < tail) { // places in a character, from the start
        const uint32_t s = queue[head++];
        for (int c = 0; c < 256; c++) {
            const uint32_t t = bn_regex_step(r, s, (unsigned char)c);
            if (t == BN_REGEX_DEAD || left[t] >= 0) continue;
            left[t] = (int8_t)(left[s] ? left[s] - 1 : continuation_bytes((unsigned char)c));
            queue[tail++] = t;
        }
    }
    for (uint32_t s = 0; s < n; s++) boundary[s] = left[s] == 0;
    free(left), free(seen), free(queue);
    return true;
}

// Steps it takes: the walk over every state's 256 bytes, each pair once, and
// each pair's predecessors (as many as the successor lists hold, per count).
static uint64_t cost(uint32_t n, uint64_t edges, uint64_t counts) { return 256ull * n + (n + edges) * counts; }

static bool too_costly(uint64_t *work, uint64_t steps, char *why, size_t n_why) {
    if (!work || steps <= *work) return false;
    snprintf(why, n_why, "with the length beside it is too costly to follow, with the schema's other patterns");
    return true;
}

bn_regex_lengths *bn_regex_lengths_make(const bn_regex *r, uint32_t min_len, uint32_t max_len, uint64_t *work,
                                        char *why, size_t n_why) {
    const uint32_t n = bn_regex_states(r);
    const uint64_t k_top = max_len != UINT32_MAX ? max_len : min_len, pairs = (uint64_t)n * (k_top + 1);
    if (too_costly(work, cost(n, 0, k_top + 1), why, n_why)) return NULL; // before any of it
    if (pairs > BN_REGEX_MAX_PAIRS) {
        snprintf(why, n_why, "with a length of up to %llu characters is too large to follow (%llu pairs of a "
                 "state and a length; at most %u)", (unsigned long long)k_top, (unsigned long long)pairs,
                 BN_REGEX_MAX_PAIRS);
        return NULL;
    }
    const uint32_t counts = (uint32_t)k_top + 1;
    bn_regex_lengths *l = calloc(1, sizeof *l + (pairs + 63) / 64 * sizeof(uint64_t));
    uint32_t *first = malloc((n + 1) * sizeof *first), *succ = NULL;
    bool *boundary = malloc(n);
    uint32_t *queue = malloc(pairs * sizeof *queue);
    bool ok = l && first && boundary && queue && walk(r, n, first, &succ, boundary);
    if (ok && too_costly(work, cost(n, first[n], counts), why, n_why)) {
        free(first), free(succ), free(boundary), free(queue), free(l);
        return NULL;
    }
    if (ok && work) *work -= cost(n, first[n], counts);
    if (ok) {
        l->n_states = n, l->counts = counts;
        // Predecessors, from the successors: (t, k') comes from (s, k) where k' is
        // k, or k + 1 (at most k_top) where t ends a character.
        uint32_t *pfirst = calloc(n + 1, sizeof *pfirst), *pred = malloc((first[n] + 1) * sizeof *pred);
        ok = pfirst && pred;
        for (uint32_t s = 0; ok && s < n; s++)
            for (uint32_t e = first[s]; e < first[s + 1]; e++) pfirst[succ[e] + 1]++;
        for (uint32_t t = 0; ok && t < n; t++) pfirst[t + 1] += pfirst[t];
        uint32_t *fill = ok ? malloc(n * sizeof *fill) : NULL;
        ok = ok && fill;
        if (ok) memcpy(fill, pfirst, n * sizeof *fill);
        for (uint32_t s = 0; ok && s < n; s++)
            for (uint32_t e = first[s]; e < first[s + 1]; e++) pred[fill[succ[e]]++] = s;
        // Backwards from the accepting pairs: a string of min_len..k_top characters.
        uint32_t head = 0, tail = 0;
        for (uint32_t s = 0; ok && s < n; s++)
            for (uint32_t k = min_len; bn_regex_accepts(r, s) && k <= k_top; k++)
                set_bit(l->bits, (size_t)s * counts + k), queue[tail++] = s * counts + k;
        while (ok && head < tail) {
            const uint32_t t = queue[head] / counts, k2 = queue[head] % counts;
            head++;
            for (uint32_t e = pfirst[t]; e < pfirst[t + 1]; e++) {
                const uint32_t s = pred[e];
                // The counts k that step to k2 into t: k2 itself inside a character;
                // k2 - 1 where t ends one, and k_top too where the count stops there.
                uint32_t from[2], m = 0;
                if (!boundary[t]) from[m++] = k2;
                else if (k2 > 0) from[m++] = k2 - 1;
                if (boundary[t] && k2 == k_top && max_len == UINT32_MAX) from[m++] = k_top;
                for (uint32_t i = 0; i < m; i++) {
                    const size_t bit = (size_t)s * counts + from[i];
                    if (get_bit(l->bits, bit)) continue;
                    set_bit(l->bits, bit);
                    queue[tail++] = (uint32_t)bit;
                }
            }
        }
        free(pfirst), free(pred), free(fill);
    }
    free(first), free(succ), free(boundary), free(queue);
    if (!ok) {
        snprintf(why, n_why, "is out of memory");
        return free(l), NULL;
    }
    if (!get_bit(l->bits, 0)) {
        char most[24] = "";
        if (max_len != UINT32_MAX) snprintf(most, sizeof most, "%u", max_len);
        snprintf(why, n_why, "and the length beside it leave no string (none of %u..%s characters matches)",
                 min_len, most);
        return free(l), NULL;
    }
    return l;
}

void bn_regex_lengths_free(bn_regex_lengths *l) { free(l); }

bool bn_regex_lengths_live(const bn_regex_lengths *l, uint32_t s, uint64_t chars) {
    return s < l->n_states && chars < l->counts && get_bit(l->bits, (size_t)s * l->counts + chars);
}
