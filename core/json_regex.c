// json_regex.c - bn_regex (json_regex.h): a JSON Schema "pattern" compiled to
// a DFA over the UTF-8 bytes of a string.
//
// Four steps, each bounded so that a hostile pattern (they come in request
// bodies) costs little:
//   1. parse the pattern into a small tree; every character set becomes a
//      template of byte-range edges that spell exactly its characters in UTF-8;
//   2. emit the tree as a Thompson NFA over bytes (counted repeats copied out),
//      wrapped for JSON Schema's search semantics: any characters may come
//      before an alternative that does not start with "^", and after one that
//      does not end with "$";
//   3. subset construction over byte classes (runs of bytes no edge tells
//      apart), the NFA state sets kept as sorted arrays and found by hash;
//   4. cut the states from which no accepting state can be reached: a step
//      into them answers BN_REGEX_DEAD, so every state left can still end in
//      a match.
// Since the NFA's only paths are valid UTF-8, so are the DFA's: a byte that
// UTF-8 forbids where it comes always steps to BN_REGEX_DEAD.
#include "json_regex.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h" // bn_utf8_char_len

#define MAX_CP 0x10FFFF
#define MAX_COUNT 1000                // the largest n or m of {n,m}
#define MAX_GROUP_DEPTH 64            // groups inside groups
#define MAX_EDGES (8 * BN_REGEX_MAX_NFA) // NFA byte edges (a set's character ranges)
// Subset construction's work (edges scanned, NFA states visited) on one
// pattern, BN_REGEX_MAX_WORK: under 0.1 s. Patterns that fit the state limits
// need far less; only a pathological one (thousands of NFA states in every DFA
// state, over many byte classes) reaches it.
#define NONE16 UINT16_MAX // no NFA state; no DFA state (dead) in a table
#define COUNT_INF UINT16_MAX // {n,} has no maximum

// ---- sets of code points -----------------------------------------------------

typedef struct {
    uint32_t lo, hi;
} cp_range;

// Kept sorted and merged by set_normalize; never holds a surrogate.
typedef struct {
    cp_range *r;
    uint32_t n, cap;
} cp_set;

static const cp_range digit_ranges[] = {{'0', '9'}};
static const cp_range word_ranges[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
static const cp_range space_ranges[] = {{0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680},
                                        {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                                        {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
static const cp_range line_end_ranges[] = {{0x0A, 0x0A}, {0x0D, 0x0D}, {0x2028, 0x2029}}; // "." is the rest

static bool set_push(cp_set *s, uint32_t lo, uint32_t hi) {
    if (s->n == s->cap) {
        const uint32_t cap = s->cap ? 2 * s->cap : 16;
        cp_range *r = realloc(s->r, cap * sizeof *r);
        if (!r) return false;
        s->r = r, s->cap = cap;
    }
    s->r[s->n++] = (cp_range){lo, hi};
    return true;
}

// What no string here holds (sorted): the control characters JSON writes only
// as \u escapes (all of U+0000..U+001F but \b \t \n \f \r), which a patterned
// string has none of (json_schema.h), and the surrogates, which are no
// characters. No state may count on them to reach a match.
static const cp_range holes[] = {{0x00, 0x07}, {0x0B, 0x0B}, {0x0E, 0x1F}, {0xD800, 0xDFFF}};

// Adds lo..hi less the holes.
static bool set_add(cp_set *s, uint32_t lo, uint32_t hi) {
    for (size_t i = 0; i < sizeof holes / sizeof *holes && lo <= hi && hi >= holes[i].lo; i++) {
        if (lo < holes[i].lo && !set_push(s, lo, holes[i].lo - 1)) return false;
        if (lo <= holes[i].hi) lo = holes[i].hi + 1;
    }
    return lo > hi || set_push(s, lo, hi);
}

// Adds the sorted ranges t[0..n), or with negate every character outside them.
static bool set_add_table(cp_set *s, const cp_range *t, size_t n, bool negate) {
    uint32_t next = 0; // the first character not yet considered
    for (size_t i = 0; i < n; i++) {
        if (!negate && !set_add(s, t[i].lo, t[i].hi)) return false;
        if (negate && t[i].lo > next && !set_add(s, next, t[i].lo - 1)) return false;
        next = t[i].hi + 1;
    }
    return !negate || next > MAX_CP || set_add(s, next, MAX_CP);
}

// \d \D \w \W \s \S.
static bool set_add_class(cp_set *s, char kind) {
    const bool negate = kind >= 'A' && kind <= 'Z';
    switch (kind | 0x20) {
    case 'd': return set_add_table(s, digit_ranges, 1, negate);
    case 'w': return set_add_table(s, word_ranges, sizeof word_ranges / sizeof *word_ranges, negate);
    default: return set_add_table(s, space_ranges, sizeof space_ranges / sizeof *space_ranges, negate);
    }
}

static int compare_ranges(const void *a, const void *b) {
    const cp_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void set_normalize(cp_set *s) {
    if (!s->n) return;
    qsort(s->r, s->n, sizeof *s->r, compare_ranges);
    uint32_t n = 1;
    for (uint32_t i = 1; i < s->n; i++) {
        if (s->r[i].lo <= s->r[n - 1].hi + 1) {
            if (s->r[i].hi > s->r[n - 1].hi) s->r[n - 1].hi = s->r[i].hi;
        } else {
            s->r[n++] = s->r[i];
        }
    }
    s->n = n;
}

// The characters not in s (normalized), in place.
static bool set_negate(cp_set *s) {
    cp_set out = {0};
    if (!set_add_table(&out, s->r, s->n, true)) return free(out.r), false;
    free(s->r);
    *s = out;
    return true;
}

// ---- code points as UTF-8 byte ranges ------------------------------------------

// A sequence of byte ranges: the strings b[0] b[1] ... with lo[i] <= b[i] <= hi[i].
typedef struct {
    int n;
    uint8_t lo[4], hi[4];
} utf8_seq;

#define MAX_SEQS 24 // one code point range needs at most 1 + 3 + 5 + 7

static int utf8_encode(uint32_t c, uint8_t *b) {
    if (c < 0x80) return b[0] = (uint8_t)c, 1;
    if (c < 0x800) return b[0] = (uint8_t)(0xC0 | c >> 6), b[1] = (uint8_t)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000) {
        b[0] = (uint8_t)(0xE0 | c >> 12), b[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), b[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    b[0] = (uint8_t)(0xF0 | c >> 18), b[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    b[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), b[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

// The byte-range sequences that spell exactly the characters lo..hi, in
// ascending order (RE2's splitting): cut where the encoded length changes,
// then where a trailing byte would not sweep its whole 80..BF, so that each
// piece is a product of byte ranges. Returns how many (at most MAX_SEQS).
static int utf8_sequences(uint32_t lo, uint32_t hi, utf8_seq *out) {
    static const uint32_t length_ends[] = {0x7F, 0x7FF, 0xFFFF};
    cp_range todo[MAX_SEQS]; // the upper pieces still to split
    int n_todo = 0, n = 0;
    todo[n_todo++] = (cp_range){lo, hi};
    while (n_todo) {
        cp_range r = todo[--n_todo];
    split:
        for (int i = 0; i < 3; i++) {
            if (r.lo <= length_ends[i] && r.hi > length_ends[i]) {
                todo[n_todo++] = (cp_range){length_ends[i] + 1, r.hi};
                r.hi = length_ends[i];
                goto split;
            }
        }
        for (int i = 1; i < 4 && r.hi > 0x7F; i++) {
            const uint32_t m = (1u << 6 * i) - 1; // the bits of the last i bytes
            if ((r.lo & ~m) == (r.hi & ~m)) continue;
            if (r.lo & m) {
                todo[n_todo++] = (cp_range){(r.lo | m) + 1, r.hi};
                r.hi = r.lo | m;
                goto split;
            }
            if ((r.hi & m) != m) {
                todo[n_todo++] = (cp_range){r.hi & ~m, r.hi};
                r.hi = (r.hi & ~m) - 1;
                goto split;
            }
        }
        uint8_t a[4], b[4];
        utf8_seq *s = &out[n++];
        s->n = utf8_encode(r.lo, a);
        utf8_encode(r.hi, b);
        for (int i = 0; i < s->n; i++) s->lo[i] = a[i], s->hi[i] = b[i];
    }
    return n;
}

// ---- the pattern's tree ----------------------------------------------------------

enum { NODE_EMPTY, NODE_SET, NODE_CAT, NODE_ALT, NODE_REPEAT };

typedef struct {
    uint8_t kind;
    uint16_t min, max; // NODE_REPEAT: the count (max COUNT_INF: no bound)
    // NODE_SET: its template's edges, tpl[first .. first + count);
    // NODE_CAT, NODE_ALT: its children, kids[first .. first + count);
    // NODE_REPEAT: the node repeated (first).
    uint32_t first, count;
    uint32_t states; // the NFA states it emits, at most BN_REGEX_MAX_NFA + 1
} node;

// A character set compiles to a template: local states 0..states-1, the last
// one its entry, and byte edges between them or to TPL_OUT (what follows the
// set). Emitting the set copies the template.
#define TPL_OUT (UINT16_MAX - 1) // (NONE16 is an error)
typedef struct {
    uint16_t from, to;
    uint8_t lo, hi;
} tpl_edge;

// One top-level alternative and its anchors.
typedef struct {
    uint32_t node;
    bool at_start, at_end; // "^" before it, "$" after it
    uint16_t entry;        // its NFA entry, once emitted
} branch;

// The NFA: a state has byte edges, or up to two empty moves, or is the match.
typedef struct {
    uint8_t lo, hi;
    uint16_t to;
} nfa_edge;

typedef struct {
    uint32_t edge, n_edges; // edges[edge .. edge + n_edges)
    uint16_t eps[2];        // NONE16 where absent
    bool match;
} nfa_state;

// A cache slot of a set's shared tails: the local state for (lo, hi, to).
typedef struct {
    uint32_t key, gen;
    uint16_t state;
} tail_slot;
#define TAIL_SLOTS (2 * BN_REGEX_MAX_NFA) // a set has at most BN_REGEX_MAX_NFA tails

typedef struct {
    const char *pat;
    size_t len, pos;
    bool whole; // bn_regex_compile_whole: every top-level alternative anchored at both ends
    char *why;
    size_t n_why;
    bool failed;

    node *nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t *kids, n_kids, cap_kids;    // the children of CAT and ALT nodes
    uint32_t *stack, n_stack, cap_stack; // children being gathered (nested groups above)
    tpl_edge *tpl;
    uint32_t n_tpl, cap_tpl;
    tpl_edge *heads; // a template's entry edges while it is built
    uint32_t n_heads, cap_heads;
    tail_slot *tails;
    uint32_t tail_gen;
    cp_set set; // the set being parsed
    branch *branches;
    uint32_t n_branches, cap_branches;

    nfa_state *nfa;
    uint32_t n_nfa;
    nfa_edge *edges;
    uint32_t n_edges;
    uint16_t universal; // the NFA state after which any string matches (NONE16: none)
    uint16_t tail_entry; // the entry of "any characters, then the match"
} compiler;

static bool fail(compiler *c, const char *fmt, ...) {
    if (!c->failed && c->n_why) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, c->n_why, fmt, ap);
        va_end(ap);
    }
    c->failed = true;
    return false;
}

static bool out_of_memory(compiler *c) { return fail(c, "out of memory"); }

static bool too_complex(compiler *c) {
    return fail(c, "the pattern is too complex: its automaton would pass %d NFA states", BN_REGEX_MAX_NFA);
}

// Room for one more of *n items of size bytes in *p.
static bool grow(compiler *c, void **p, uint32_t *cap, uint32_t n, size_t size) {
    if (n < *cap) return true;
    const uint32_t new_cap = *cap ? 2 * *cap : 32;
    void *q = realloc(*p, (size_t)new_cap * size);
    if (!q) return out_of_memory(c);
    *p = q, *cap = new_cap;
    return true;
}
#define GROW(c, arr, n, cap) grow(c, (void **)&(arr), &(cap), n, sizeof *(arr))

#define NO_NODE UINT32_MAX

static uint32_t saturate(uint64_t states) {
    return states > BN_REGEX_MAX_NFA ? BN_REGEX_MAX_NFA + 1 : (uint32_t)states;
}

static uint32_t new_node(compiler *c, node nd) {
    if (!GROW(c, c->nodes, c->n_nodes, c->cap_nodes)) return NO_NODE;
    c->nodes[c->n_nodes] = nd;
    return c->n_nodes++;
}

// ---- character set templates -----------------------------------------------------

// The local state with the one edge lo..hi to `to`: shared by all the set's
// sequences that end the same way (the continuation bytes 80..BF, mostly).
static uint16_t tail_state(compiler *c, uint16_t *n_states, uint8_t lo, uint8_t hi, uint16_t to) {
    const uint32_t key = (uint32_t)lo | (uint32_t)hi << 8 | (uint32_t)to << 16;
    uint32_t i = (key * 2654435761u) % TAIL_SLOTS;
    for (; c->tails[i].gen == c->tail_gen; i = (i + 1) % TAIL_SLOTS)
        if (c->tails[i].key == key) return c->tails[i].state;
    if (*n_states >= BN_REGEX_MAX_NFA) return too_complex(c), NONE16;
    if (!GROW(c, c->tpl, c->n_tpl, c->cap_tpl)) return NONE16;
    c->tpl[c->n_tpl++] = (tpl_edge){*n_states, to, lo, hi};
    c->tails[i] = (tail_slot){key, c->tail_gen, *n_states};
    return (*n_states)++;
}

// c->set (normalized) as a NODE_SET: each UTF-8 sequence is a chain of tail
// states behind one edge of the entry state.
static uint32_t set_node(compiler *c) {
    c->tail_gen++;
    c->n_heads = 0;
    const uint32_t first = c->n_tpl;
    uint16_t n_states = 0;
    for (uint32_t r = 0; r < c->set.n; r++) {
        utf8_seq seq[MAX_SEQS];
        const int n = utf8_sequences(c->set.r[r].lo, c->set.r[r].hi, seq);
        for (int k = 0; k < n; k++) {
            uint16_t to = TPL_OUT;
            for (int i = seq[k].n - 1; i > 0 && to != NONE16; i--)
                to = tail_state(c, &n_states, seq[k].lo[i], seq[k].hi[i], to);
            if (to == NONE16 || !GROW(c, c->heads, c->n_heads, c->cap_heads)) return NO_NODE;
            c->heads[c->n_heads++] = (tpl_edge){0, to, seq[k].lo[0], seq[k].hi[0]};
        }
    }
    // (All the sets' templates together: no more edges than the NFA may hold.)
    if (n_states >= BN_REGEX_MAX_NFA || c->n_tpl + c->n_heads > MAX_EDGES) return too_complex(c), NO_NODE;
    for (uint32_t i = 0; i < c->n_heads; i++) { // the entry's edges come last, as it does
        if (!GROW(c, c->tpl, c->n_tpl, c->cap_tpl)) return NO_NODE;
        c->tpl[c->n_tpl] = c->heads[i];
        c->tpl[c->n_tpl++].from = n_states;
    }
    return new_node(c, (node){.kind = NODE_SET, .first = first, .count = c->n_tpl - first, .states = n_states + 1u});
}

static uint32_t table_node(compiler *c, const cp_range *t, size_t n, bool negate) {
    c->set.n = 0;
    if (!set_add_table(&c->set, t, n, negate)) return out_of_memory(c), NO_NODE;
    return set_node(c);
}

static uint32_t char_node(compiler *c, uint32_t cp) { return table_node(c, &(cp_range){cp, cp}, 1, false); }

// ---- parsing -------------------------------------------------------------------

static int peek(const compiler *c) { return c->pos < c->len ? (unsigned char)c->pat[c->pos] : -1; }
static int peek_at(const compiler *c, size_t k) {
    return c->pos + k < c->len ? (unsigned char)c->pat[c->pos + k] : -1;
}
static bool is_digit(int ch) { return ch >= '0' && ch <= '9'; }

static int hex_value(int ch) {
    if (is_digit(ch)) return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') return (ch | 0x20) - 'a' + 10;
    return -1;
}

// The UTF-8 character at c->pos, consumed.
static bool read_char(compiler *c, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)c->pat + c->pos;
    const size_t n = bn_utf8_char_len((const char *)s, c->len - c->pos);
    if (!n) return fail(c, "invalid UTF-8 at offset %zu", c->pos);
    static const unsigned char lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    *cp = s[0] & lead_mask[n];
    for (size_t i = 1; i < n; i++) *cp = *cp << 6 | (s[i] & 0x3F);
    c->pos += n;
    return true;
}

// n hex digits at c->pos, consumed; -1 when they are not there.
static int32_t read_hex(compiler *c, int n) {
    int32_t v = 0;
    for (int i = 0; i < n; i++) {
        const int h = hex_value(peek_at(c, (size_t)i));
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    c->pos += (size_t)n;
    return v;
}

// \u after its "\u": HHHH, a surrogate pair \uHHHH\uHHHH (one character, as
// with ECMA-262's u flag), or {H...}. at: the backslash's offset.
static bool read_unicode_escape(compiler *c, size_t at, uint32_t *cp) {
    if (peek(c) == '{') {
        c->pos++;
        uint32_t v = 0;
        int digits = 0;
        for (int h; (h = hex_value(peek(c))) >= 0; c->pos++, digits++)
            if ((v = v << 4 | (uint32_t)h) > MAX_CP) return fail(c, "\\u{...} at offset %zu is past U+10FFFF", at);
        if (!digits || peek(c) != '}') return fail(c, "\\u{ at offset %zu needs hex digits and }", at);
        c->pos++;
        *cp = v;
    } else {
        const int32_t v = read_hex(c, 4);
        if (v < 0) return fail(c, "\\u at offset %zu needs four hex digits", at);
        *cp = (uint32_t)v;
        if (*cp >= 0xD800 && *cp <= 0xDBFF && peek(c) == '\\' && peek_at(c, 1) == 'u') {
            const size_t back = c->pos;
            c->pos += 2;
            const int32_t low = read_hex(c, 4);
            if (low >= 0xDC00 && low <= 0xDFFF) *cp = 0x10000 + ((*cp - 0xD800) << 10) + (uint32_t)(low - 0xDC00);
            else c->pos = back;
        }
    }
    if (*cp >= 0xD800 && *cp <= 0xDFFF)
        return fail(c, "\\u%04X at offset %zu is a lone surrogate, not a character", (unsigned)*cp, at);
    return true;
}

// An escape, c->pos just past its backslash: a character (returns 'c', *cp
// set), a class letter (d D w W s S), or 0 on error. In a set [...] \b is
// the backspace, as in ECMA-262.
static int read_escape(compiler *c, bool in_set, uint32_t *cp) {
    const size_t at = c->pos - 1;
    const int ch = peek(c);
    if (ch < 0) return fail(c, "\\ at the end of the pattern"), 0;
    c->pos++;
    switch (ch) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S': return ch;
    case 'n': *cp = '\n'; return 'c';
    case 'r': *cp = '\r'; return 'c';
    case 't': *cp = '\t'; return 'c';
    case 'f': *cp = '\f'; return 'c';
    case 'v': *cp = '\v'; return 'c';
    case '0':
        if (is_digit(peek(c))) return fail(c, "octal escape \\0%c at offset %zu is not supported", peek(c), at), 0;
        *cp = 0;
        return 'c';
    case 'x': {
        const int32_t v = read_hex(c, 2);
        if (v < 0) return fail(c, "\\x at offset %zu needs two hex digits", at), 0;
        *cp = (uint32_t)v;
        return 'c';
    }
    case 'u': return read_unicode_escape(c, at, cp) ? 'c' : 0;
    case 'c':
        if ((peek(c) | 0x20) < 'a' || (peek(c) | 0x20) > 'z') return fail(c, "\\c at offset %zu needs a letter", at), 0;
        *cp = (uint32_t)(c->pat[c->pos++] & 0x1F);
        return 'c';
    case 'b':
        if (in_set) return *cp = '\b', 'c';
        return fail(c, "word boundary \\b at offset %zu is not supported", at), 0;
    case 'B': return fail(c, "word boundary \\B at offset %zu is not supported", at), 0;
    case 'k': return fail(c, "named backreference \\k at offset %zu is not supported", at), 0;
    case 'p': case 'P': return fail(c, "Unicode property \\%c at offset %zu is not supported", ch, at), 0;
    default: break;
    }
    if (ch >= '1' && ch <= '9') return fail(c, "backreference \\%c at offset %zu is not supported", ch, at), 0;
    // Any other ASCII punctuation stands for itself, as in Python and in ECMA-262
    // without its u flag (\@, \#, \: are common in schemas).
    if (ch < 0x80 && !isalnum(ch)) return *cp = (uint32_t)ch, 'c';
    if (ch < 0x80) return fail(c, "unknown escape \\%c at offset %zu", ch, at), 0;
    const size_t n = bn_utf8_char_len(c->pat + at + 1, c->len - at - 1); // whole, or the byte as hex
    if (!n) return fail(c, "unknown escape \\ and byte 0x%02x at offset %zu", ch, at), 0;
    return fail(c, "unknown escape \\%.*s at offset %zu", (int)n, c->pat + at + 1, at), 0;
}

// One member of a set [...]: a character ('c', *cp) or a class letter; 0 on error.
static int read_set_atom(compiler *c, uint32_t *cp) {
    if (peek(c) == '\\') return c->pos++, read_escape(c, true, cp);
    return read_char(c, cp) ? 'c' : 0;
}

// [...] or [^...], c->pos at the '['. "[]" matches nothing and "[^]" any
// character, as in ECMA-262.
static uint32_t parse_set(compiler *c) {
    const size_t open = c->pos++;
    const bool negate = peek(c) == '^';
    c->pos += negate;
    c->set.n = 0;
    while (peek(c) != ']') {
        if (peek(c) < 0) return fail(c, "missing ] for the set at offset %zu", open), NO_NODE;
        const size_t at = c->pos;
        uint32_t lo = 0, hi = 0;
        const int a = read_set_atom(c, &lo);
        if (!a) return NO_NODE;
        if (peek(c) == '-' && peek_at(c, 1) != ']' && peek_at(c, 1) >= 0) {
            c->pos++;
            const int b = read_set_atom(c, &hi);
            if (!b) return NO_NODE;
            if (a != 'c' || b != 'c')
                return fail(c, "the range at offset %zu has a class (\\d, \\w, \\s...) for an end", at), NO_NODE;
            if (lo > hi) return fail(c, "the range at offset %zu is reversed", at), NO_NODE;
            if (!set_add(&c->set, lo, hi)) return out_of_memory(c), NO_NODE;
        } else if (!(a == 'c' ? set_add(&c->set, lo, lo) : set_add_class(&c->set, (char)a))) {
            return out_of_memory(c), NO_NODE;
        }
    }
    c->pos++;
    set_normalize(&c->set);
    if (negate && !set_negate(&c->set)) return out_of_memory(c), NO_NODE;
    return set_node(c);
}

// A NODE_CAT or NODE_ALT of the children gathered on the stack since base
// (one child stands alone).
static uint32_t gathered_node(compiler *c, uint32_t base, uint8_t kind) {
    const uint32_t n = c->n_stack - base;
    if (n == 1) return c->n_stack = base, c->stack[base];
    uint64_t states = kind == NODE_ALT ? n - 1 : 0; // an alternation's splits
    const uint32_t first = c->n_kids;
    for (uint32_t i = 0; i < n; i++) {
        if (!GROW(c, c->kids, c->n_kids, c->cap_kids)) return NO_NODE;
        c->kids[c->n_kids++] = c->stack[base + i];
        states += c->nodes[c->stack[base + i]].states;
    }
    c->n_stack = base;
    return new_node(c, (node){.kind = n ? kind : NODE_EMPTY, .first = first, .count = n, .states = saturate(states)});
}

static bool push_child(compiler *c, uint32_t id) {
    if (id == NO_NODE || !GROW(c, c->stack, c->n_stack, c->cap_stack)) return false;
    c->stack[c->n_stack++] = id;
    return true;
}

static uint32_t parse_alternation(compiler *c, int depth);

// A group name's characters: ASCII letters, $, _, digits but first, and any
// non-ASCII character (ECMA-262's ID_Start and ID_Continue, loosely).
static bool is_name_char(int ch, bool first) {
    return ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || ch == '_' || ch == '$' || ch >= 0x80 ||
           (!first && is_digit(ch));
}

// (...), (?:...) or (?<name>...), c->pos at the '('.
static uint32_t parse_group(compiler *c, int depth) {
    const size_t open = c->pos++;
    if (depth >= MAX_GROUP_DEPTH)
        return fail(c, "the group at offset %zu is nested deeper than %d groups", open, MAX_GROUP_DEPTH), NO_NODE;
    if (peek(c) == '?') {
        const int a = peek_at(c, 1), b = peek_at(c, 2);
        if (a == ':') {
            c->pos += 2;
        } else if (a == '=' || a == '!') {
            return fail(c, "%slookahead (?%c at offset %zu is not supported", a == '!' ? "negative " : "", a, open),
                   NO_NODE;
        } else if (a == '<' && (b == '=' || b == '!')) {
            return fail(c, "%slookbehind (?<%c at offset %zu is not supported", b == '!' ? "negative " : "", b, open),
                   NO_NODE;
        } else if (a == '<') {
            c->pos += 2;
            const size_t name = c->pos;
            while (is_name_char(peek(c), c->pos == name)) c->pos++;
            if (c->pos == name || peek(c) != '>')
                return fail(c, "the group name at offset %zu is not a name followed by >", name), NO_NODE;
            c->pos++;
        } else {
            const size_t n = a < 0 ? 0 : a < 0x80 ? 1 : bn_utf8_char_len(c->pat + open + 2, c->len - open - 2);
            return fail(c, "group modifier (?%.*s at offset %zu is not supported", (int)n, c->pat + open + 2, open),
                   NO_NODE;
        }
    }
    const uint32_t inner = parse_alternation(c, depth + 1);
    if (inner == NO_NODE) return NO_NODE;
    if (peek(c) != ')') return fail(c, "missing ) for the group at offset %zu", open), NO_NODE;
    c->pos++;
    return inner;
}

// A decimal count of {n,m}, at most MAX_COUNT; -1 when no digit comes.
static int32_t read_count(compiler *c, size_t at) {
    if (!is_digit(peek(c))) return -1;
    int32_t v = 0;
    for (; is_digit(peek(c)); c->pos++)
        if ((v = v * 10 + (peek(c) - '0')) > MAX_COUNT)
            return fail(c, "the count at offset %zu is above %d", at, MAX_COUNT), -2;
    return v;
}

// {n}, {n,} or {n,m} at c->pos: true and the counts, consumed; false and
// nothing consumed when the text there is not one (or on error: c->failed).
static bool read_braces(compiler *c, int32_t *min, int32_t *max) {
    const size_t at = c->pos++;
    if ((*min = read_count(c, at)) < 0) return c->pos = at, false;
    *max = *min;
    if (peek(c) == ',') {
        c->pos++;
        *max = peek(c) == '}' ? COUNT_INF : read_count(c, at);
        if (*max == -2) return false;
    }
    if (*max < 0 || peek(c) != '}') return c->pos = at, false;
    c->pos++;
    if (*min > *max) return fail(c, "{%d,%d} at offset %zu has its minimum above its maximum", *min, *max, at);
    return true;
}

// The quantifier after an atom, if any: the atom repeated. A lazy quantifier
// (a trailing '?') matches the same strings as the greedy one.
static uint32_t parse_quantifier(compiler *c, uint32_t atom) {
    int32_t min, max;
    switch (peek(c)) {
    case '*': min = 0, max = COUNT_INF, c->pos++; break;
    case '+': min = 1, max = COUNT_INF, c->pos++; break;
    case '?': min = 0, max = 1, c->pos++; break;
    case '{':
        if (read_braces(c, &min, &max)) break;
        return c->failed ? NO_NODE : atom; // not a quantifier: parse_atom refuses the '{'
    default: return atom;
    }
    if (peek(c) == '?') c->pos++;
    const node *x = &c->nodes[atom];
    if (max == 0 || x->states == 0) return new_node(c, (node){.kind = NODE_EMPTY}); // x{0}, or ()*
    if (min == 1 && max == 1) return atom;
    // min copies, then a loop or (max - min) optional copies, each behind a split.
    const uint64_t states = max == COUNT_INF ? (uint64_t)x->states * (min ? (uint32_t)min : 1u) + 1
                                             : (uint64_t)x->states * (uint32_t)min +
                                                   ((uint64_t)x->states + 1) * (uint32_t)(max - min);
    if (states > BN_REGEX_MAX_NFA) return too_complex(c), NO_NODE; // before any copy is made
    return new_node(c, (node){.kind = NODE_REPEAT, .min = (uint16_t)min, .max = (uint16_t)max, .first = atom,
                              .states = (uint32_t)states});
}

// One atom: a character, an escape, ".", a set or a group.
static uint32_t parse_atom(compiler *c, int depth) {
    const size_t at = c->pos;
    const int ch = peek(c);
    switch (ch) {
    case '(': return parse_group(c, depth);
    case '[': return parse_set(c);
    case '.': return c->pos++, table_node(c, line_end_ranges, sizeof line_end_ranges / sizeof *line_end_ranges, true);
    case '*': case '+': case '?': return fail(c, "nothing to repeat at offset %zu (%c)", at, ch), NO_NODE;
    case '{': { // ECMA-262 with the u flag: a '{' is a quantifier or an error
        int32_t min, max;
        if (read_braces(c, &min, &max)) return fail(c, "nothing to repeat at offset %zu ({)", at), NO_NODE;
        if (c->failed) return NO_NODE;
        return fail(c, "{ at offset %zu is not a quantifier (write \\{ for the character)", at), NO_NODE;
    }
    case '}': case ']':
        return fail(c, "lone %c at offset %zu (write \\%c for the character)", ch, at, ch), NO_NODE;
    case '^': return fail(c, "^ at offset %zu is not at the start of a top-level alternative", at), NO_NODE;
    case '\\': {
        c->pos++;
        uint32_t cp = 0;
        const int e = read_escape(c, false, &cp);
        if (!e) return NO_NODE;
        if (e == 'c') return char_node(c, cp);
        c->set.n = 0;
        if (!set_add_class(&c->set, (char)e)) return out_of_memory(c), NO_NODE;
        return set_node(c);
    }
    default: {
        uint32_t cp = 0;
        return read_char(c, &cp) ? char_node(c, cp) : NO_NODE;
    }
    }
}

// Atoms and their quantifiers up to '|', ')' or the end. At the top level
// (depth 0) a "$" may end it: *at_end.
static uint32_t parse_sequence(compiler *c, int depth, bool *at_end) {
    const uint32_t base = c->n_stack;
    uint64_t states = 0; // refuse a long pattern as soon as it is too large
    for (int ch; (ch = peek(c)) >= 0 && ch != '|' && ch != ')';) {
        if (ch == '$') {
            const int next = peek_at(c, 1);
            if (depth > 0 || (next >= 0 && next != '|'))
                return fail(c, "$ at offset %zu is not at the end of a top-level alternative", c->pos), NO_NODE;
            c->pos++;
            *at_end = true;
            break;
        }
        const uint32_t atom = parse_atom(c, depth);
        if (atom == NO_NODE) return NO_NODE;
        const uint32_t id = parse_quantifier(c, atom);
        if (!push_child(c, id)) return NO_NODE;
        if ((states += c->nodes[id].states) > BN_REGEX_MAX_NFA) return too_complex(c), NO_NODE;
    }
    return gathered_node(c, base, NODE_CAT);
}

// Alternatives inside a group.
static uint32_t parse_alternation(compiler *c, int depth) {
    const uint32_t base = c->n_stack;
    for (;;) {
        bool at_end = false;
        if (!push_child(c, parse_sequence(c, depth, &at_end))) return NO_NODE;
        if (peek(c) != '|') break;
        c->pos++;
    }
    const uint32_t id = gathered_node(c, base, NODE_ALT);
    if (id != NO_NODE && c->nodes[id].states > BN_REGEX_MAX_NFA) return too_complex(c), NO_NODE;
    return id;
}

// The whole pattern: its top-level alternatives into c->branches.
static bool parse_pattern(compiler *c) {
    uint64_t states = 0;
    for (;;) {
        branch b = {.at_start = peek(c) == '^'};
        c->pos += b.at_start;
        if ((b.node = parse_sequence(c, 0, &b.at_end)) == NO_NODE) return false;
        if (c->whole) b.at_start = b.at_end = true;
        if (!GROW(c, c->branches, c->n_branches, c->cap_branches)) return false;
        c->branches[c->n_branches++] = b;
        if ((states += c->nodes[b.node].states + 1) > BN_REGEX_MAX_NFA) return too_complex(c);
        if (peek(c) == ')') return fail(c, "unmatched ) at offset %zu", c->pos);
        if (peek(c) != '|') return true;
        c->pos++;
    }
}

// ---- the NFA -------------------------------------------------------------------

static uint16_t new_state(compiler *c) {
    if (c->n_nfa >= BN_REGEX_MAX_NFA) return too_complex(c), NONE16;
    c->nfa[c->n_nfa] = (nfa_state){.eps = {NONE16, NONE16}};
    return (uint16_t)c->n_nfa++;
}

static uint16_t new_split(compiler *c, uint16_t a, uint16_t b) {
    const uint16_t s = new_state(c);
    if (s != NONE16) c->nfa[s].eps[0] = a, c->nfa[s].eps[1] = b;
    return s;
}

// A copy of the set's template, leaving to out; returns its entry.
static uint16_t emit_set(compiler *c, const node *nd, uint16_t out) {
    const uint32_t base = c->n_nfa;
    for (uint32_t i = 0; i < nd->states; i++)
        if (new_state(c) == NONE16) return NONE16;
    if (c->n_edges + nd->count > MAX_EDGES) return too_complex(c), NONE16;
    for (uint32_t i = 0; i < nd->count; i++) { // the template's edges come grouped by state
        const tpl_edge *t = &c->tpl[nd->first + i];
        nfa_state *s = &c->nfa[base + t->from];
        if (!s->n_edges) s->edge = c->n_edges;
        s->n_edges++;
        c->edges[c->n_edges++] = (nfa_edge){t->lo, t->hi, t->to == TPL_OUT ? out : (uint16_t)(base + t->to)};
    }
    return (uint16_t)(base + nd->states - 1);
}

static uint16_t emit(compiler *c, uint32_t id, uint16_t out);

// x* (loop: enter x or leave), x+ (x, then that loop), x{n,m}: n copies, then
// (x(x(x)?)?)? for the m - n optional ones, built back to front.
static uint16_t emit_repeat(compiler *c, const node *nd, uint16_t out) {
    uint32_t copies = nd->min;
    if (nd->max == COUNT_INF) {
        const uint16_t loop = new_split(c, NONE16, out);
        if (loop == NONE16) return NONE16;
        const uint16_t body = emit(c, nd->first, loop);
        if (body == NONE16) return NONE16;
        c->nfa[loop].eps[0] = body;
        out = nd->min ? body : loop;
        copies = nd->min ? nd->min - 1u : 0;
    } else {
        const uint16_t after = out;
        for (uint32_t i = nd->min; i < nd->max && out != NONE16; i++) {
            const uint16_t body = emit(c, nd->first, out);
            out = body == NONE16 ? NONE16 : new_split(c, body, after);
        }
    }
    for (uint32_t i = 0; i < copies && out != NONE16; i++) out = emit(c, nd->first, out);
    return out;
}

// Node id's states, leaving to out; returns its entry (out itself for an
// empty node), or NONE16 on error. Every node of states > 0 makes a state,
// so the copies stop at the state limit.
static uint16_t emit(compiler *c, uint32_t id, uint16_t out) {
    const node *nd = &c->nodes[id];
    switch (nd->kind) {
    case NODE_SET: return emit_set(c, nd, out);
    case NODE_CAT:
        for (uint32_t i = nd->count; i-- > 0 && out != NONE16;) out = emit(c, c->kids[nd->first + i], out);
        return out;
    case NODE_ALT: {
        uint16_t entry = emit(c, c->kids[nd->first + nd->count - 1], out);
        for (uint32_t i = nd->count - 1; i-- > 0 && entry != NONE16;) {
            const uint16_t e = emit(c, c->kids[nd->first + i], out);
            entry = e == NONE16 ? NONE16 : new_split(c, e, entry);
        }
        return entry;
    }
    case NODE_REPEAT: return emit_repeat(c, nd, out);
    default: return out;
    }
}

// "Any characters, then out": a loop around a copy of the any-character set.
// *body: the set's entry.
static uint16_t emit_any_loop(compiler *c, uint32_t any, uint16_t out, uint16_t *body) {
    const uint16_t loop = new_split(c, NONE16, out);
    if (loop == NONE16 || (*body = emit_set(c, &c->nodes[any], loop)) == NONE16) return NONE16;
    c->nfa[loop].eps[0] = *body;
    return loop;
}

// The branches wrapped for search: (any)* before the ones without "^", (any)*
// then the match after the ones without "$". Returns the start.
static uint16_t emit_pattern(compiler *c, uint32_t any) {
    const uint16_t match = new_state(c);
    if (match == NONE16) return NONE16;
    c->nfa[match].match = true;
    c->universal = c->tail_entry = NONE16;
    bool open_end = false, open_start = false;
    for (uint32_t i = 0; i < c->n_branches; i++)
        open_end |= !c->branches[i].at_end, open_start |= !c->branches[i].at_start;
    if (open_end && (c->tail_entry = emit_any_loop(c, any, match, &c->universal)) == NONE16) return NONE16;
    for (uint32_t i = 0; i < c->n_branches; i++) {
        branch *b = &c->branches[i];
        if ((b->entry = emit(c, b->node, b->at_end ? match : c->tail_entry)) == NONE16) return NONE16;
    }
    // Back to front: the split chains of the unanchored branches, then of all.
    uint16_t start = NONE16, unanchored = NONE16, body;
    for (uint32_t i = c->n_branches; i-- > 0;) {
        const branch *b = &c->branches[i];
        if (b->at_start) continue;
        unanchored = unanchored == NONE16 ? b->entry : new_split(c, b->entry, unanchored);
        if (unanchored == NONE16) return NONE16;
    }
    if (open_start && (start = emit_any_loop(c, any, unanchored, &body)) == NONE16) return NONE16;
    for (uint32_t i = c->n_branches; i-- > 0;) {
        const branch *b = &c->branches[i];
        if (!b->at_start) continue;
        start = start == NONE16 ? b->entry : new_split(c, b->entry, start);
        if (start == NONE16) return NONE16;
    }
    return start;
}

// ---- subset construction -----------------------------------------------------------

typedef struct {
    compiler *c;
    uint32_t n_classes;
    uint8_t class_of[256], class_byte[256]; // a byte's class; a class's first byte
    uint32_t n_dfa;
    uint16_t *next;    // BN_REGEX_MAX_DFA x n_classes, NONE16: dead
    uint32_t *set_at;  // a DFA state's NFA states: pool[set_at[s] .. set_at[s + 1])
    uint16_t *pool;    // the sets, each sorted
    size_t n_pool, cap_pool;
    uint32_t *slots;   // hash table of DFA states (index + 1; 0: empty)
    uint64_t *marks;   // the closure being built, a bit per NFA state
    uint16_t *todo;    // its stack
    uint16_t *set;     // the closure, sorted
    uint32_t n_set;
    uint16_t *any_set; // the closure after `universal` (any string matches)
    uint32_t n_any_set;
    bool *accepting;   // BN_REGEX_MAX_DFA: whether a state's set holds the match
    uint64_t work, max_work; // steps taken, and allowed
} dfa_builder;

#define HASH_SLOTS (4 * BN_REGEX_MAX_DFA) // a power of two

// The byte classes: runs of bytes where no edge starts or ends.
static void byte_classes(dfa_builder *d) {
    bool cut[257] = {[0] = true};
    for (uint32_t i = 0; i < d->c->n_edges; i++) cut[d->c->edges[i].lo] = cut[d->c->edges[i].hi + 1] = true;
    d->n_classes = 0;
    for (int b = 0; b < 256; b++) {
        if (cut[b]) d->class_byte[d->n_classes++] = (uint8_t)b;
        d->class_of[b] = (uint8_t)(d->n_classes - 1);
    }
}

static void push_state(dfa_builder *d, uint32_t *n, uint16_t q) {
    if (q == NONE16 || d->marks[q / 64] >> q % 64 & 1) return;
    d->marks[q / 64] |= 1ull << q % 64;
    d->todo[(*n)++] = q;
}

// d->set: the states the todo stack's (n) reach by empty moves, those with
// byte edges or the match only, sorted; the marks are cleared again. A set
// holding `universal` accepts any continuation: it becomes any_set, so all
// such sets are one DFA state.
static void close_set(dfa_builder *d, uint32_t n) {
    const compiler *c = d->c;
    while (n) {
        const nfa_state *s = &c->nfa[d->todo[--n]];
        d->work++;
        push_state(d, &n, s->eps[0]);
        push_state(d, &n, s->eps[1]);
    }
    d->n_set = 0;
    bool universal = false;
    for (uint32_t w = 0; w < (c->n_nfa + 63) / 64; w++) {
        for (uint64_t bits = d->marks[w]; bits; bits &= bits - 1) {
            const uint16_t q = (uint16_t)(w * 64 + (uint32_t)__builtin_ctzll(bits));
            if (c->nfa[q].n_edges || c->nfa[q].match) d->set[d->n_set++] = q;
            universal |= q == c->universal;
        }
        d->marks[w] = 0;
    }
    d->work += c->n_nfa / 64;
    // Only `loop` moves to `universal`, and it moves to the match too.
    if (universal && d->any_set) memcpy(d->set, d->any_set, (d->n_set = d->n_any_set) * sizeof *d->set);
}

static uint32_t hash_set(const uint16_t *set, uint32_t n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) h = (h ^ set[i]) * 16777619u;
    return h;
}

// The DFA state of d->set, added when new; NONE16 for the empty set (dead)
// and on error.
static uint16_t dfa_state(dfa_builder *d) {
    if (!d->n_set) return NONE16;
    uint32_t i = hash_set(d->set, d->n_set) & (HASH_SLOTS - 1);
    d->work += d->n_set;
    for (; d->slots[i]; i = (i + 1) & (HASH_SLOTS - 1)) {
        const uint32_t s = d->slots[i] - 1, n = d->set_at[s + 1] - d->set_at[s];
        if (n == d->n_set && !memcmp(d->pool + d->set_at[s], d->set, n * sizeof *d->set)) return (uint16_t)s;
    }
    if (d->n_dfa >= BN_REGEX_MAX_DFA)
        return fail(d->c, "the pattern is too complex: its automaton would pass %d states", BN_REGEX_MAX_DFA), NONE16;
    if (d->n_pool + d->n_set > d->cap_pool) {
        size_t cap = d->cap_pool ? 2 * d->cap_pool : 4096;
        while (cap < d->n_pool + d->n_set) cap *= 2;
        uint16_t *p = realloc(d->pool, cap * sizeof *p);
        if (!p) return out_of_memory(d->c), NONE16;
        d->pool = p, d->cap_pool = cap;
    }
    memcpy(d->pool + d->n_pool, d->set, d->n_set * sizeof *d->set);
    d->n_pool += d->n_set;
    d->accepting[d->n_dfa] = false;
    for (uint32_t k = 0; k < d->n_set; k++) d->accepting[d->n_dfa] |= d->c->nfa[d->set[k]].match;
    d->set_at[d->n_dfa + 1] = (uint32_t)d->n_pool;
    memset(d->next + (size_t)d->n_dfa * d->n_classes, 0xFF, d->n_classes * sizeof *d->next);
    d->slots[i] = d->n_dfa + 1;
    return (uint16_t)d->n_dfa++;
}

// State s's row: for each class, the closure of the edges that its first
// byte takes from s's NFA states.
static bool expand(dfa_builder *d, uint32_t s) {
    const compiler *c = d->c;
    for (uint32_t k = 0; k < d->n_classes; k++) {
        const uint8_t b = d->class_byte[k];
        uint32_t n = 0;
        for (uint32_t i = d->set_at[s]; i < d->set_at[s + 1]; i++) {
            const nfa_state *q = &c->nfa[d->pool[i]];
            d->work += q->n_edges;
            for (uint32_t e = q->edge; e < q->edge + q->n_edges; e++)
                if (c->edges[e].lo <= b && b <= c->edges[e].hi) push_state(d, &n, c->edges[e].to);
        }
        close_set(d, n);
        const uint16_t t = dfa_state(d);
        if (d->c->failed) return false;
        d->next[(size_t)s * d->n_classes + k] = t;
        if (d->work > d->max_work)
            return fail(d->c, "the pattern is too complex: its automaton takes too long to build");
    }
    return true;
}

// The DFA from the NFA's start, each state's row in turn.
static bool build_dfa(dfa_builder *d, uint16_t start) {
    compiler *c = d->c;
    byte_classes(d);
    const uint32_t words = (c->n_nfa + 63) / 64;
    d->next = malloc((size_t)BN_REGEX_MAX_DFA * d->n_classes * sizeof *d->next);
    d->set_at = calloc(BN_REGEX_MAX_DFA + 1, sizeof *d->set_at);
    d->slots = calloc(HASH_SLOTS, sizeof *d->slots);
    d->marks = calloc(words, sizeof *d->marks);
    d->todo = malloc(c->n_nfa * sizeof *d->todo);
    d->set = malloc(c->n_nfa * sizeof *d->set);
    d->accepting = malloc(BN_REGEX_MAX_DFA * sizeof *d->accepting);
    if (!d->next || !d->set_at || !d->slots || !d->marks || !d->todo || !d->set || !d->accepting)
        return out_of_memory(c);
    uint32_t n = 0;
    if (c->tail_entry != NONE16) { // the set every match ends in
        push_state(d, &n, c->tail_entry);
        close_set(d, n);
        if (!(d->any_set = malloc(d->n_set * sizeof *d->any_set))) return out_of_memory(c);
        memcpy(d->any_set, d->set, (d->n_any_set = d->n_set) * sizeof *d->set);
        n = 0;
    }
    push_state(d, &n, start);
    close_set(d, n);
    if (dfa_state(d) != 0) return c->failed ? false : fail(c, "no string matches the pattern");
    for (uint32_t s = 0; s < d->n_dfa; s++)
        if (!expand(d, s)) return false;
    return true;
}

static void dfa_free(dfa_builder *d) {
    free(d->next), free(d->set_at), free(d->pool), free(d->slots), free(d->marks), free(d->todo), free(d->set);
    free(d->any_set), free(d->accepting);
}

// ---- the automaton: live states only --------------------------------------------

struct bn_regex {
    uint32_t n_states, n_classes;
    uint8_t class_of[256];
    const uint16_t *next;    // n_states x n_classes, NONE16: dead
    const uint8_t *accepts;  // n_states
};

// live[s]: whether an accepting state is reachable from s, found backwards
// from the accepting states over the reversed edges.
static bool mark_live(const dfa_builder *d, bool *live) {
    const uint32_t n = d->n_dfa, k = d->n_classes;
    uint32_t *in_at = calloc(n + 1, sizeof *in_at), *in = malloc((size_t)n * k * sizeof *in);
    uint32_t *queue = malloc(n * sizeof *queue);
    if (!in_at || !in || !queue) return free(in_at), free(in), free(queue), false;
    for (size_t e = 0; e < (size_t)n * k; e++)
        if (d->next[e] != NONE16) in_at[d->next[e] + 1]++;
    for (uint32_t s = 0; s < n; s++) in_at[s + 1] += in_at[s];
    for (size_t e = 0; e < (size_t)n * k; e++) // counting sort by target; in_at[t] ends at t's end
        if (d->next[e] != NONE16) in[in_at[d->next[e]]++] = (uint32_t)(e / k);
    uint32_t head = 0, tail = 0;
    for (uint32_t s = 0; s < n; s++)
        if ((live[s] = d->accepting[s])) queue[tail++] = s;
    while (head < tail) {
        const uint32_t t = queue[head++];
        for (uint32_t i = t ? in_at[t - 1] : 0; i < in_at[t]; i++)
            if (!live[in[i]]) live[in[i]] = true, queue[tail++] = in[i];
    }
    free(in_at), free(in), free(queue);
    return true;
}

// The live states renumbered in order (0 stays the start), edges to the dead
// ones cut.
static bn_regex *finish(dfa_builder *d) {
    const uint32_t n = d->n_dfa, k = d->n_classes;
    bool *live = malloc(n * sizeof *live);
    uint16_t *renumber = malloc(n * sizeof *renumber);
    if (!live || !renumber || !mark_live(d, live)) {
        free(live), free(renumber);
        return out_of_memory(d->c), NULL;
    }
    uint32_t n_live = 0;
    for (uint32_t s = 0; s < n; s++) renumber[s] = live[s] ? (uint16_t)n_live++ : NONE16;
    bn_regex *r = NULL;
    if (!live[0]) {
        fail(d->c, "no string matches the pattern");
    } else if (!(r = malloc(sizeof *r + (size_t)n_live * k * sizeof *r->next + n_live))) {
        out_of_memory(d->c);
    } else {
        uint16_t *next = (uint16_t *)(r + 1);
        uint8_t *accepts = (uint8_t *)(next + (size_t)n_live * k);
        *r = (bn_regex){.n_states = n_live, .n_classes = k, .next = next, .accepts = accepts};
        memcpy(r->class_of, d->class_of, sizeof r->class_of);
        for (uint32_t s = 0; s < n; s++) {
            if (!live[s]) continue;
            for (uint32_t j = 0; j < k; j++) {
                const uint16_t t = d->next[(size_t)s * k + j];
                next[(size_t)renumber[s] * k + j] = t == NONE16 ? NONE16 : renumber[t];
            }
            accepts[renumber[s]] = d->accepting[s];
        }
    }
    free(live), free(renumber);
    return r;
}

// ---- the API ---------------------------------------------------------------------

static void compiler_free(compiler *c) {
    free(c->nodes), free(c->kids), free(c->stack), free(c->tpl), free(c->heads), free(c->tails), free(c->set.r);
    free(c->branches), free(c->nfa), free(c->edges);
}

static int compile(const char *pattern, bool whole, uint64_t *work, bn_regex **out, char *why, size_t n_why) {
    *out = NULL;
    if (n_why) why[0] = 0;
    compiler c = {.pat = pattern, .len = pattern ? strlen(pattern) : 0, .whole = whole, .why = why, .n_why = n_why};
    c.tails = calloc(TAIL_SLOTS, sizeof *c.tails);
    c.nfa = malloc(BN_REGEX_MAX_NFA * sizeof *c.nfa);
    c.edges = malloc(MAX_EDGES * sizeof *c.edges);
    dfa_builder d = {.c = &c, .max_work = work && *work < BN_REGEX_MAX_WORK ? *work : BN_REGEX_MAX_WORK};
    uint32_t any;
    uint16_t start;
    if (!pattern) {
        fail(&c, "no pattern");
    } else if (!c.tails || !c.nfa || !c.edges) {
        out_of_memory(&c);
    } else if (parse_pattern(&c) &&
               (any = table_node(&c, NULL, 0, true)) != NO_NODE && // every character
               (start = emit_pattern(&c, any)) != NONE16 && build_dfa(&d, start)) {
        *out = finish(&d);
    }
    if (work) *work -= d.work < *work ? d.work : *work;
    dfa_free(&d);
    compiler_free(&c);
    return *out ? 0 : -1;
}

int bn_regex_compile(const char *pattern, uint64_t *work, bn_regex **out, char *why, size_t n_why) {
    return compile(pattern, false, work, out, why, n_why);
}

int bn_regex_compile_whole(const char *pattern, uint64_t *work, bn_regex **out, char *why, size_t n_why) {
    return compile(pattern, true, work, out, why, n_why);
}

void bn_regex_free(bn_regex *r) { free(r); }

uint32_t bn_regex_states(const bn_regex *r) { return r->n_states; }

uint32_t bn_regex_step(const bn_regex *r, uint32_t s, unsigned char c) {
    if (s >= r->n_states) return BN_REGEX_DEAD;
    const uint16_t t = r->next[(size_t)s * r->n_classes + r->class_of[c]];
    return t == NONE16 ? BN_REGEX_DEAD : t;
}

bool bn_regex_accepts(const bn_regex *r, uint32_t s) { return s < r->n_states && r->accepts[s]; }
