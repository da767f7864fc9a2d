// json_schema.c - bn_json_schema (json_schema.h): a JSON Schema compiled into
// nodes, and the automaton that reads a text against them, a byte at a time.
#include "json_schema.h"

#include "bitnet.h" // bn_json_schema_check
#include "json_regex.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_OBJECT = 1, T_ARRAY = 2, T_STRING = 4, T_NUMBER = 8, T_INTEGER = 16, T_BOOLEAN = 32, T_NULL = 64,
       T_ALL = 127 };

#define MAX_NODES 65535 // frame.node is 16 bits
#define MAX_COUNT 65535 // and so are frame.index and frame.offset
#define NO_BOUND UINT32_MAX // an array's max_items without a maxItems (a string's max_len too)
#define SAFE_MAX 9007199254740991LL // 2^53 - 1: an integer bound's largest magnitude
#define MAX_PROPERTIES 4096 // per object (checking "required" is quadratic)
#define MAX_DEPTH 256       // schemas in schemas, $refs followed included
#define MAX_ALTS (1 << 20)  // alternatives of all anyOfs, flattened
#define MAX_SCHEMA_BYTES (256 << 10) // bounds what a hostile schema costs to compile

// A bounded number's value, a whole number of units of 10^-15 (decimal_byte).
__extension__ typedef __int128 units;

// A property of an object node (its name is in g->texts: node.keys).
typedef struct prop {
    int32_t node;
    bool required;
} prop;

typedef struct node {
    uint8_t types;       // T_*: what the value may be
    bool any;            // no constraint: a bn_json_prefix reads the whole value
    bool alias;          // anyOf, oneOf, $ref, allOf of one: the value is one of alts'
    bool tagged;         // an anyOf of objects told apart by their first property's value
                         // (discriminate): read as one object, whose first value picks its alt
    bool free_keys;      // an object without "properties": any keys, values of node `values`
    int32_t values, items;
    uint32_t min_items, max_items;
    bool sized;          // a string's minLength or maxLength: min_len..max_len characters
    uint32_t min_len, max_len;
    bool bounded;        // an integer's minimum, maximum (or exclusive): lo..hi
    int64_t lo, hi;
    bool decimal;        // a number's (that may have a fraction): lo_u..hi_u units of 10^-15
    units lo_u, hi_u;
    uint8_t format;      // a string's "format": F_*
    const bn_regex *regex; // a string's "pattern" (g->regexes owns it), or NULL
    const bn_regex_lengths *lengths; // with minLength or maxLength beside it: the pairs that go on
    int32_t props, n_props; // into g->props; their names as compact JSON from g->texts[keys]
    int32_t keys;
    int32_t alts, n_alts;   // into g->alts: the alternatives; after compile, concrete nodes only
    int32_t texts, n_texts; // into g->texts: enum values as compact JSON
} node;

struct bn_json_schema {
    node *nodes;
    int32_t n_nodes, cap_nodes;
    prop *props;
    int32_t n_props, cap_props;
    int32_t *alts;
    int32_t n_alts, cap_alts;
    char **texts;
    int32_t n_texts, cap_texts;
    bn_regex **regexes;  // the patterns' automata
    int32_t n_regexes, cap_regexes;
    bn_regex_lengths **lengths; // and those beside a length
    int32_t n_lengths, cap_lengths;
    int32_t any;  // the node of a free value (-1: none yet)
    int32_t root; // the schema's own node
    uint64_t serial; // this compilation's, never reused: names the schema in state keys
};

// ---- bounded numbers: decimals in units of 10^-15 ------------------------------------
//
// A number that may have a fraction and has bounds is written without an
// exponent, in at most 15 digits (a leading "0" before the '.' not counted):
// "0.000123" has 6, "100.5" 4. Its value is then a whole number of units of
// 10^-15, below 10^30 in magnitude, and all is exact integer arithmetic: such
// a decimal d, read as a double (Python's float(), as jsonschema reads it; an
// integer text is read as an int, an exact double here, so the same), is
// below, at or above a bound x exactly as d is below, at or above x's shortest
// decimal x_s (the fewest digits that read back as x): two decimals of at most
// 15 significant digits never read as one double in the normal range, where
// every nonzero such d lies (>= 10^-15), so none but x_s itself (when it has
// at most 15) reads as x, and reading rounds monotonically.

#define MAX_DIGITS 15
#define E18 ((units)1000000000000000000)
static const units ten[31] = { // 10^0 .. 10^30
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000, 10000000000, 100000000000,
    1000000000000, 10000000000000, 100000000000000, 1000000000000000, 10000000000000000, 100000000000000000,
    E18, E18 * 10, E18 * 100, E18 * 1000, E18 * 10000, E18 * 100000, E18 * 1000000, E18 * 10000000,
    E18 * 100000000, E18 * 1000000000, E18 * 10000000000, E18 * 100000000000, E18 * 1000000000000};
#define BEYOND ten[30] // a bound past every value: 10^30 units, that is 10^15

// What a bounded number's reading holds in bn_json_thread.value: bit 0 a '-',
// bit 1 a digit read, bit 2 the '.', bits 3-6 the digits counted, bits 7-10
// those after the '.', from bit 11 the digits as one whole number (< 10^15).
typedef struct decimal {
    bool negative, digit, dot;
    int counted, frac;
    uint64_t digits;
} decimal;

static decimal unpack(uint64_t v) {
    return (decimal){.negative = v & 1, .digit = v >> 1 & 1, .dot = v >> 2 & 1, .counted = (int)(v >> 3 & 15),
                     .frac = (int)(v >> 7 & 15), .digits = v >> 11};
}

static uint64_t pack(decimal d) {
    return (uint64_t)d.negative | (uint64_t)d.digit << 1 | (uint64_t)d.dot << 2 | (uint64_t)d.counted << 3 |
           (uint64_t)d.frac << 7 | d.digits << 11;
}

// Bound x in units, rounded down (*below) and up (*above): x's shortest
// decimal, times 10^15. From +-10^15 on, past every value: +-BEYOND.
static void bound_units(double x, units *below, units *above) {
    if (fabs(x) >= 1e15) {
        *below = *above = x > 0 ? BEYOND : -BEYOND;
        return;
    }
    char text[40];
    int digits = 1;
    for (; digits <= 17; digits++) { // 17 always read back
        snprintf(text, sizeof text, "%.*e", digits - 1, x);
        if (strtod(text, NULL) == x) break;
    }
    int64_t m = 0; // the digits, whatever the locale's decimal point between them
    const char *p = text;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') m = m * 10 + (*p - '0');
    const int shift = atoi(p + 1) - (digits - 1) + MAX_DIGITS; // units = m * 10^shift
    units whole = 0, part = m; // whole units and a part of one (shift < -17: m < 10^17 is below one unit)
    if (shift >= 0) whole = m * ten[shift], part = 0;
    else if (shift >= -17) whole = m / ten[-shift], part = m % ten[-shift];
    if (text[0] == '-') *below = -whole - (part != 0), *above = -whole;
    else *below = whole, *above = whole + (part != 0);
}

// Whether a grid a, a + step, ... below b has a point within lo..hi (lo >= 0).
// Divides only where lo falls inside the grid (a mask tries every digit token).
static bool grid_meets(units a, units b, units step, units lo, units hi) {
    if (lo >= b || a > hi) return false;
    const units first = lo <= a ? a : a + (lo - a + step - 1) / step * step; // the first point from lo
    return first < b && first <= hi;
}

// Whether a number of n's that so far is d can still end within its bounds:
// some continuation (at most 15 digits in all, no exponent) reaches a
// magnitude its sign allows.
static bool decimal_may_end(const node *n, decimal d) {
    units lo = d.negative ? -n->hi_u : n->lo_u, hi = d.negative ? -n->lo_u : n->hi_u; // magnitudes; -0 is 0
    if (lo < 0) lo = 0;
    if (lo > hi) return false;
    const int left = MAX_DIGITS - d.counted; // digits that may still come
    if (!d.digit) { // nothing yet, or a '-': some first digit
        for (int c = 0; c <= 9; c++) {
            decimal first = d;
            first.digit = true, first.digits = (uint64_t)c, first.counted = c > 0;
            if (decimal_may_end(n, first)) return true;
        }
        return false;
    }
    if (d.dot) { // digits..digits + 1 (at 10^-frac), a grid of up to `left` more digits; one must follow a '.'
        const units unit = ten[MAX_DIGITS - d.frac];
        return (d.frac > 0 || left > 0) &&
               grid_meets(d.digits * unit, (d.digits + 1) * unit, ten[MAX_DIGITS - d.frac - left], lo, hi);
    }
    if (d.digits == 0) return lo < ten[MAX_DIGITS]; // a lone 0: 0, or "0." and 15 digits, every unit below 1
    for (int k = 0; k <= left; k++) { // k more whole digits, then left - k after a '.'
        const units a = d.digits * ten[MAX_DIGITS + k];
        if (a > hi) break;
        if (grid_meets(a, a + ten[MAX_DIGITS + k], ten[d.counted + k], lo, hi)) return true;
    }
    return false;
}

// Reads byte c of a value of node n (a bounded number) into *value. False
// where no number within the bounds begins so: an exponent, a 16th digit, a
// byte past which no value can end within them.
// The lexer has already refused what JSON does not allow: a '-' only first, a
// '.' only after a digit.
static bool decimal_byte(const node *n, uint64_t *value, unsigned char c) {
    decimal d = unpack(*value);
    const bool digit = c >= '0' && c <= '9';
    if (!d.negative && !d.digit && c != '-' && !digit) return true; // a literal or a string, not a number
    if (c == '-') {
        d.negative = true;
    } else if (c == '.') {
        d.dot = true;
    } else if (!digit || d.counted == MAX_DIGITS) { // 'e' or 'E' (no exponent); a 16th digit
        return false;
    } else {
        d.counted += d.digit || c != '0'; // a leading 0 is not counted
        d.digit = true;
        d.digits = d.digits * 10 + (uint64_t)(c - '0');
        d.frac += d.dot;
    }
    *value = pack(d);
    return decimal_may_end(n, d);
}

// Whether the number read into value (it ends) is within n's bounds.
static bool decimal_fits(const node *n, uint64_t value) {
    const decimal d = unpack(value);
    const units u = (units)d.digits * ten[MAX_DIGITS - d.frac], v = d.negative ? -u : u;
    return d.digit && v >= n->lo_u && v <= n->hi_u;
}

// ---- compiling ------------------------------------------------------------------

typedef struct compiler {
    bn_json_schema *g;
    struct memo {
        const cJSON *schema;
        int32_t node;
    } *memo;
    int32_t n_memo, cap_memo;
    bn_error *err;
    bool failed;
    int depth; // compile() calls open
    const cJSON *memo_next; // compile_target's schema, for compile_node to put in the memo
    bn_json_budget *budget; // what building the patterns' automata may still take
} compiler;

// Grows *p (of *cap elements of size bytes) to hold n + 1. Returns false when out of memory.
static bool grow(void **p, int32_t *cap, int32_t n, size_t size) {
    if (n < *cap) return true;
    const int32_t want = *cap ? 2 * *cap : 16;
    void *q = realloc(*p, (size_t)want * size);
    if (!q) return false;
    *p = q, *cap = want;
    return true;
}

static int32_t fail(compiler *c, const char *path, const char *what, const char *name) {
    if (!c->failed) bn_errorf(c->err, "json_schema: at %s: %s%s%s", *path ? path : "the top", name ? "'" : "",
                              name ? name : "", what);
    c->failed = true;
    return -1;
}

static int32_t new_node(compiler *c, const char *path) {
    bn_json_schema *g = c->g;
    if (g->n_nodes == MAX_NODES) return fail(c, path, "the schema has too many parts", NULL);
    if (!grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof *g->nodes))
        return fail(c, path, "out of memory", NULL);
    g->nodes[g->n_nodes] = (node){.values = -1, .items = -1, .max_items = NO_BOUND, .max_len = NO_BOUND};
    return g->n_nodes++;
}

static int32_t any_node(compiler *c, const char *path) {
    if (c->g->any >= 0) return c->g->any;
    const int32_t id = new_node(c, path);
    if (id >= 0) c->g->nodes[id].any = true, c->g->nodes[id].types = T_ALL, c->g->any = id;
    return id;
}

static bool add_text(compiler *c, const char *path, char *text) {
    bn_json_schema *g = c->g;
    if (!text || strlen(text) >= MAX_COUNT || !grow((void **)&g->texts, &g->cap_texts, g->n_texts, sizeof *g->texts)) {
        free(text);
        return fail(c, path, "an enum value or property name is too long, or memory is short", NULL), false;
    }
    g->texts[g->n_texts++] = text;
    return true;
}

static bool add_alt(compiler *c, const char *path, int32_t id) {
    bn_json_schema *g = c->g;
    if (id < 0) return false;
    if (!grow((void **)&g->alts, &g->cap_alts, g->n_alts, sizeof *g->alts)) return fail(c, path, "out of memory", NULL), false;
    g->alts[g->n_alts++] = id;
    return true;
}

// The keywords that constrain a value; from "properties" to "format" (SHAPE_FIRST
// .. SHAPE_END), those that shape it, which an enum or const cannot stand beside.
static const char *const constraints[] = {"type", "enum", "const", "properties", "required",
                                          "additionalProperties", "items", "minItems", "maxItems",
                                          "minLength", "maxLength", "minimum", "maximum",
                                          "exclusiveMinimum", "exclusiveMaximum", "format", "pattern",
                                          "anyOf", "oneOf", "allOf", "$ref"};
enum { SHAPE_FIRST = 3, SHAPE_END = 17 };
static const char *const annotations[] = {"$schema", "$id", "$defs", "definitions", "$comment", "$anchor",
                                          "title", "description", "default", "examples", "deprecated",
                                          "readOnly", "writeOnly"};

static bool listed(const char *key, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(key, names[i])) return true;
    return false;
}

// Which T_* bits a JSON value is (a whole number is both integer and number).
static uint8_t type_of(const cJSON *v) {
    if (cJSON_IsObject(v)) return T_OBJECT;
    if (cJSON_IsArray(v)) return T_ARRAY;
    if (cJSON_IsString(v)) return T_STRING;
    if (cJSON_IsBool(v)) return T_BOOLEAN;
    if (cJSON_IsNull(v)) return T_NULL;
    const double x = v->valuedouble;
    return isfinite(x) && x == floor(x) ? T_NUMBER | T_INTEGER : T_NUMBER;
}

// The string formats json_schema.h follows, as templates: a digit of a field
// ('Y' year, 'M' month, 'D' day, 'h' hour, 'm' minute, 's' second), 'x' a hex
// digit, any other character itself. A time goes on past its template: an
// optional fraction, then "Z" or an offset "+hh:mm" (format_byte).
enum { F_NONE, F_DATE, F_TIME, F_DATE_TIME, F_UUID };
static const char *const format_names[] = {NULL, "date", "time", "date-time", "uuid"};
static const char *const format_templates[] = {NULL, "YYYY-MM-DD", "hh:mm:ss", "YYYY-MM-DDThh:mm:ss",
                                               "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"};
static const uint8_t format_lens[] = {0, 10, 8, 19, 36}; // their lengths

static uint8_t format_of(const char *name) {
    for (uint8_t f = F_DATE; f <= F_UUID; f++)
        if (!strcmp(name, format_names[f])) return f;
    return F_NONE;
}

static uint8_t type_bit(const char *name) {
    static const char *const names[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(name, names[i])) return (uint8_t)(1 << i);
    return 0;
}

static bool integer_only(const node *n) { return (n->types & (T_NUMBER | T_INTEGER)) == T_INTEGER; }


static int32_t compile(compiler *c, const cJSON *s, const cJSON *root, const char *path);

// The schema a "$ref" names in the resource root (the nearest "$id", else the document).
static const cJSON *resolve(const cJSON *root, const char *ref) {
    if (!strcmp(ref, "#")) return root;
    const bool defs = !strncmp(ref, "#/$defs/", 8), definitions = !strncmp(ref, "#/definitions/", 14);
    const char *name = defs ? ref + 8 : definitions ? ref + 14 : NULL;
    if (!name || strchr(name, '/') || strchr(name, '~')) return NULL;
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, defs ? "$defs" : "definitions"),
                                            name);
}

// A $ref's target: compiled once, however many $refs name it (a recursive
// schema ends at the memo, which compile_node fills before the target's parts).
static int32_t compile_target(compiler *c, const cJSON *s, const cJSON *root, const char *path) {
    for (int32_t i = 0; i < c->n_memo; i++)
        if (c->memo[i].schema == s) return c->memo[i].node;
    c->memo_next = s;
    const int32_t id = compile(c, s, root, path);
    c->memo_next = NULL;
    return id;
}

// An alias node: the value is one of the n ids' (compiled first: compile()
// adds alts of its own, and a node's alts are contiguous).
static bool set_alias(compiler *c, int32_t id, const int32_t *ids, int n, const char *path) {
    node *nd = &c->g->nodes[id];
    nd->alias = true, nd->alts = c->g->n_alts, nd->n_alts = n;
    for (int i = 0; i < n; i++)
        if (!add_alt(c, path, ids[i])) return false;
    return true;
}

// anyOf, oneOf or allOf: the schemas of list (an array of n).
static bool compile_alias(compiler *c, int32_t id, const cJSON *list, int n, const cJSON *root, const char *path,
                          const char *key) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) return fail(c, path, "out of memory", NULL), false;
    char sub[256];
    int i = 0;
    bool ok = true;
    for (const cJSON *e = list->child; ok && e; e = e->next, i++) {
        snprintf(sub, sizeof sub, "%s/%s/%d", path, key, i);
        ok = (ids[i] = compile(c, e, root, sub)) >= 0;
    }
    ok = ok && set_alias(c, id, ids, n, path);
    free(ids);
    return ok;
}

static bool compile_object(compiler *c, int32_t id, const cJSON *s, const cJSON *root, const char *path) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *required = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    if (props && !cJSON_IsObject(props)) return fail(c, path, "' must be an object", "properties"), false;
    if (required && !cJSON_IsArray(required)) return fail(c, path, "' must be an array of names", "required"), false;
    if (extra && !cJSON_IsBool(extra) && !cJSON_IsObject(extra))
        return fail(c, path, "' must be a schema", "additionalProperties"), false;
    const int n = cJSON_GetArraySize(props);
    if (n > MAX_PROPERTIES || cJSON_GetArraySize(required) > MAX_PROPERTIES)
        return fail(c, path, "' lists more than 4096", n > MAX_PROPERTIES ? "properties" : "required"), false;
    const cJSON *r;
    cJSON_ArrayForEach(r, required) {
        if (!cJSON_IsString(r)) return fail(c, path, "' must be an array of names", "required"), false;
        if (!cJSON_GetObjectItemCaseSensitive(props, r->valuestring))
            return fail(c, path, "' names a property that 'properties' does not list", "required"), false;
    }
    char sub[256];
    if (!props) { // any keys; their values as additionalProperties says
        snprintf(sub, sizeof sub, "%s/additionalProperties", path);
        const int32_t values = cJSON_IsObject(extra) ? compile(c, extra, root, sub) : any_node(c, path);
        c->g->nodes[id].free_keys = !cJSON_IsFalse(extra);
        c->g->nodes[id].values = values;
        return values >= 0;
    }
    for (const cJSON *p = props->child; p; p = p->next) {
        if (!bn_utf8_whole(p->string, strlen(p->string))) return fail(c, path, "' has a name that is not valid UTF-8", "properties"), false;
        for (const cJSON *q = props->child; q != p; q = q->next)
            if (!strcmp(q->string, p->string)) return fail(c, path, "' names a property twice", "properties"), false;
    }
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    bool ok = ids != NULL;
    const cJSON *p = props->child;
    for (int i = 0; ok && i < n; i++, p = p->next) { // compiled first: they may add props of their own
        snprintf(sub, sizeof sub, "%s/properties/%.64s", path, p->string);
        ok = (ids[i] = compile(c, p, root, sub)) >= 0;
    }
    bn_json_schema *g = c->g;
    g->nodes[id].props = g->n_props, g->nodes[id].n_props = n, g->nodes[id].keys = g->n_texts;
    p = props->child;
    for (int i = 0; ok && i < n; i++, p = p->next) {
        cJSON *name = cJSON_CreateString(p->string);
        ok = add_text(c, path, name ? cJSON_PrintUnformatted(name) : NULL);
        cJSON_Delete(name);
        if (ok && !grow((void **)&g->props, &g->cap_props, g->n_props, sizeof *g->props))
            ok = false, fail(c, path, "out of memory", NULL);
        bool req = false;
        cJSON_ArrayForEach(r, required) req = req || !strcmp(r->valuestring, p->string);
        if (ok) g->props[g->n_props++] = (prop){ids[i], req};
    }
    if (!ids) fail(c, path, "out of memory", NULL);
    free(ids);
    return ok;
}

// A keyword's whole number >= 0 into *out (untouched when absent). False (the
// failure noted) when it is not one, or past `most`.
static bool whole_count(compiler *c, const cJSON *s, const char *word, double most, double *out, const char *path) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, word);
    if (!b) return true;
    if (!cJSON_IsNumber(b) || b->valuedouble < 0 || !(type_of(b) & T_INTEGER))
        return fail(c, path, "' must be a whole number", word), false;
    if (b->valuedouble > most) return fail(c, path, "' is too large", word), false;
    *out = b->valuedouble;
    return true;
}

static bool compile_array(compiler *c, int32_t id, const cJSON *s, const cJSON *root, const char *path) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    double v[2] = {0, NO_BOUND};
    if (!whole_count(c, s, "minItems", MAX_COUNT - 1, &v[0], path) ||
        !whole_count(c, s, "maxItems", HUGE_VAL, &v[1], path))
        return false;
    if (v[1] != NO_BOUND && v[1] > MAX_COUNT) v[1] = MAX_COUNT; // a frame counts no further
    if (v[0] > v[1]) return fail(c, path, "' is more than maxItems", "minItems"), false;
    if (cJSON_IsArray(items)) return fail(c, path, "' as an array (tuples) is not supported", "items"), false;
    if (cJSON_IsFalse(items) && v[0] > 0)
        return fail(c, path, "' needs items, which 'items': false forbids", "minItems"), false;
    if (cJSON_IsFalse(items)) v[1] = 0;
    char sub[256];
    snprintf(sub, sizeof sub, "%s/items", path);
    const int32_t item = cJSON_IsObject(items) ? compile(c, items, root, sub) : any_node(c, path);
    node *nd = &c->g->nodes[id];
    nd->items = item, nd->min_items = (uint32_t)v[0], nd->max_items = (uint32_t)v[1];
    return item >= 0;
}

// The bounds of s (minimum, maximum and their exclusive forms) as the least
// and the greatest value allowed, *lo..*hi: for an integer in whole numbers,
// within -(2^53 - 1) .. 2^53 - 1; for a number that may have a fraction in
// units of 10^-15 (decimal_byte), within +-BEYOND (an exclusive edge past
// those leaves no value, which the caller refuses). *lo_word and *hi_word: the
// keywords that set them (NULL: none); *any: whether s has one of the four.
// False, having failed, on a bound that is not such a number.
static bool read_bounds(compiler *c, const cJSON *s, bool integer, const char *path, units *lo, units *hi,
                        const char **lo_word, const char **hi_word, bool *any) {
    static const char *const ends[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    *lo = integer ? -SAFE_MAX : -BEYOND, *hi = integer ? SAFE_MAX : BEYOND;
    *lo_word = *hi_word = NULL;
    *any = false;
    for (int i = 0; i < 4; i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, ends[i]);
        if (!b) continue;
        *any = true;
        if (!cJSON_IsNumber(b)) return fail(c, path, "' must be a number", ends[i]), false;
        const double x = b->valuedouble;
        units below, above; // x rounded down and up to a value
        if (integer && !(fabs(x) <= (double)SAFE_MAX))
            return fail(c, path, "' must be within -(2^53 - 1) .. 2^53 - 1", ends[i]), false;
        if (!integer && !isfinite(x)) return fail(c, path, "' must be a finite number", ends[i]), false;
        if (integer) below = (units)floor(x), above = (units)ceil(x);
        else bound_units(x, &below, &above);
        const units edge = i == 0 ? above : i == 1 ? below + 1 : i == 2 ? below : above - 1;
        if (i < 2 && edge > *lo) *lo = edge, *lo_word = ends[i];
        if (i >= 2 && edge < *hi) *hi = edge, *hi_word = ends[i];
    }
    return true;
}

// minimum, maximum and their exclusive forms of an integer ("integer" without
// "number"): lo..hi, within -(2^53 - 1) .. 2^53 - 1.
static bool compile_integer_bounds(compiler *c, node *nd, const cJSON *s, const char *path) {
    units lo, hi;
    const char *lo_word, *hi_word;
    if (!read_bounds(c, s, true, path, &lo, &hi, &lo_word, &hi_word, &nd->bounded)) return false;
    if (lo > hi) {
        char why[160]; // a bounded integer is within -(2^53 - 1) .. 2^53 - 1 (json_schema.h)
        if (lo_word && hi_word)
            snprintf(why, sizeof why, "'%s' and '%s' leave no integer between them", lo_word, hi_word);
        else
            snprintf(why, sizeof why, "'%s' leaves no integer within -(2^53 - 1) .. 2^53 - 1",
                     lo_word ? lo_word : hi_word);
        return fail(c, path, why, NULL), false;
    }
    nd->lo = (int64_t)lo, nd->hi = (int64_t)hi;
    return true;
}

// The same of a number that may have a fraction: lo_u..hi_u units (decimal_byte),
// some value of at most 15 digits between them.
static bool compile_number_bounds(compiler *c, node *nd, const cJSON *s, const char *path) {
    const char *lo_word, *hi_word;
    if (!read_bounds(c, s, false, path, &nd->lo_u, &nd->hi_u, &lo_word, &hi_word, &nd->decimal)) return false;
    if (!nd->decimal || decimal_may_end(nd, (decimal){0}) || decimal_may_end(nd, (decimal){.negative = true}))
        return true;
    char why[200];
    if (lo_word && hi_word)
        snprintf(why, sizeof why, "'%s' and '%s' leave no number between them (of at most 15 digits, as a "
                 "bounded number is written)", lo_word, hi_word);
    else
        snprintf(why, sizeof why, "'%s' leaves no number of at most 15 digits (as a bounded number is written)",
                 lo_word ? lo_word : hi_word);
    return fail(c, path, why, NULL), false;
}

// A string's "pattern": its automaton (json_regex.h), within the schema's
// budget of automaton states and of building them. Not beside "format", which
// fixes the string's shape itself. Beside minLength or maxLength, the pairs of
// a state and a count that can still end in a match (bn_regex_lengths): each
// alone may be met where both together leave no way on ("^\\d{5}$" within 4
// characters).
static bool compile_pattern(compiler *c, node *nd, const cJSON *s, const char *path) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "pattern");
    if (!p || !(nd->types & T_STRING)) return true;
    if (!cJSON_IsString(p)) return fail(c, path, "' must be a string", "pattern"), false;
    if (cJSON_GetObjectItemCaseSensitive(s, "format"))
        return fail(c, path, "' beside 'format' is not supported", "pattern"), false;
    char why[200], what[240];
    bn_regex *r;
    if (bn_regex_compile(p->valuestring, &c->budget->work, &r, why, sizeof why)) {
        snprintf(what, sizeof what, "' cannot be followed: %s", why);
        return fail(c, path, what, "pattern"), false;
    }
    bn_json_schema *g = c->g;
    const bool big = bn_regex_states(r) > c->budget->states;
    if (big || !grow((void **)&g->regexes, &g->cap_regexes, g->n_regexes, sizeof *g->regexes)) {
        bn_regex_free(r);
        return fail(c, path, big ? "' makes the schema's patterns too complex" : "' is out of memory", "pattern"), false;
    }
    g->regexes[g->n_regexes++] = r;
    c->budget->states -= bn_regex_states(r);
    nd->regex = r;
    if (!nd->sized) return true;
    bn_regex_lengths *l = bn_regex_lengths_make(r, nd->min_len, nd->max_len, &c->budget->work, why, sizeof why);
    if (!l || !grow((void **)&g->lengths, &g->cap_lengths, g->n_lengths, sizeof *g->lengths)) {
        if (l) snprintf(why, sizeof why, "is out of memory");
        bn_regex_lengths_free(l);
        snprintf(what, sizeof what, "' %s", why);
        return fail(c, path, what, "pattern"), false;
    }
    g->lengths[g->n_lengths++] = l;
    nd->lengths = l;
    return true;
}

// minLength and maxLength (of a string, in characters); minimum, maximum and
// their exclusive forms (of an integer, or of a number that may have a
// fraction); pattern and format (of a string). Bounds of a type the node
// cannot be (minLength of an integer, minimum of a string) change nothing, as
// in JSON Schema.
static bool compile_bounds(compiler *c, int32_t id, const cJSON *s, const char *path) {
    node *nd = &c->g->nodes[id];
    double len[2] = {0, NO_BOUND};
    if (!whole_count(c, s, "minLength", MAX_COUNT - 1, &len[0], path) ||
        !whole_count(c, s, "maxLength", HUGE_VAL, &len[1], path))
        return false;
    const bool has_max = cJSON_GetObjectItemCaseSensitive(s, "maxLength") != NULL;
    if ((nd->types & T_STRING) && len[0] > len[1])
        return fail(c, path, "' is more than maxLength", "minLength"), false;
    nd->sized = (nd->types & T_STRING) && (len[0] > 0 || has_max);
    nd->min_len = (uint32_t)len[0];
    nd->max_len = !has_max ? NO_BOUND : len[1] < NO_BOUND - 1 ? (uint32_t)len[1] : NO_BOUND - 1; // 4G: never reached
    if (nd->types & (T_NUMBER | T_INTEGER)) {
        const bool ok = integer_only(nd) ? compile_integer_bounds(c, nd, s, path)
                                         : compile_number_bounds(c, nd, s, path);
        if (!ok) return false;
    }
    if (!compile_pattern(c, nd, s, path)) return false;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(s, "format");
    if (!format || !(nd->types & T_STRING)) return true;
    if (!cJSON_IsString(format) || !(nd->format = format_of(format->valuestring))) {
        char why[160];
        snprintf(why, sizeof why, "' is not supported for %s%.60s%s (date, time, date-time and uuid are)",
                 cJSON_IsString(format) ? "\"" : "a value that is not a string",
                 cJSON_IsString(format) ? format->valuestring : "", cJSON_IsString(format) ? "\"" : "");
        return fail(c, path, why, "format"), false;
    }
    if (nd->sized) return fail(c, path, "' beside minLength or maxLength is not supported", "format"), false;
    return true;
}

// v (a copy, changed) with every number replaced by the shortest text that
// reads back as the same double, where cJSON would print 15 digits of one that
// round-trips only nearly (0.30000000000000004 as 0.3: another number). False
// for a number past 1e308 and, when whole_exact, for a whole number past 2^53,
// which the double no longer holds exactly.
static bool exact_numbers(cJSON *v, bool whole_exact) {
    for (cJSON *e = v->child; e; e = e->next)
        if (!exact_numbers(e, whole_exact)) return false;
    if (!cJSON_IsNumber(v)) return true;
    const double x = v->valuedouble;
    if (!isfinite(x) || (whole_exact && (type_of(v) & T_INTEGER) && fabs(x) >= 9007199254740992.0)) return false;
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, x);
        if (strtod(text, NULL) == x) break;
    }
    // A number item becomes raw text (cJSON prints it as it is); the item keeps its key and place.
    v->type = cJSON_Raw;
    return (v->valuestring = strdup(text)) != NULL;
}

// v as compact JSON, its numbers as exact_numbers writes them (malloc'd; NULL
// where it refuses one, *refused then set, or out of memory).
static char *print_exact(const cJSON *v, bool whole_exact, bool *refused) {
    cJSON *copy = cJSON_Duplicate(v, true);
    *refused = copy && !exact_numbers(copy, whole_exact);
    char *text = copy && !*refused ? cJSON_PrintUnformatted(copy) : NULL;
    cJSON_Delete(copy);
    return text;
}

// v as the compact JSON text the model must write for it (malloc'd), or NULL
// with the reason (why) when it has none.
static char *value_text(const cJSON *v, const char **why) {
    bool refused;
    char *text = print_exact(v, true, &refused);
    *why = refused ? "' has a number a double does not hold exactly (a whole number from 2^53 on, or past 1e308)"
                   : "': out of memory";
    if (text && !bn_utf8_whole(text, strlen(text))) *why = "' is not valid UTF-8", free(text), text = NULL;
    return text;
}

char *bn_json_print_exact(const cJSON *v) {
    bool refused;
    return print_exact(v, false, &refused);
}

static int compare_texts(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// enum or const: the values of the node's types, as compact JSON, sorted and
// without repeats: where one value begins another (the numbers 1 and 12),
// the shorter comes first, as matching (step, P_ENUM) needs.
static bool compile_enum(compiler *c, int32_t id, const cJSON *values, bool one, const char *path) {
    const uint8_t types = c->g->nodes[id].types;
    const int32_t first = c->g->n_texts;
    const int n = one ? 1 : cJSON_GetArraySize(values);
    if (!one && !cJSON_IsArray(values)) return fail(c, path, "' must be an array", "enum"), false;
    if (n > MAX_COUNT) return fail(c, path, "' has more than 65535 values", "enum"), false;
    for (const cJSON *v = one ? values : values->child; v; v = one ? NULL : v->next) {
        if (!(type_of(v) & types)) continue;
        const char *why;
        char *text = value_text(v, &why);
        if (!text) return fail(c, path, why, one ? "const" : "enum"), false;
        if (!add_text(c, path, text)) return false;
    }
    bn_json_schema *g = c->g;
    if (g->n_texts > first) qsort(g->texts + first, (size_t)(g->n_texts - first), sizeof *g->texts, compare_texts);
    int32_t kept = first;
    for (int32_t i = first; i < g->n_texts; i++) {
        if (kept > first && !strcmp(g->texts[kept - 1], g->texts[i])) free(g->texts[i]);
        else g->texts[kept++] = g->texts[i];
    }
    g->n_texts = kept;
    node *nd = &g->nodes[id];
    nd->texts = first, nd->n_texts = kept - first;
    if (!nd->n_texts) return fail(c, path, "no value of 'enum' or 'const' has the schema's type", NULL), false;
    return true;
}

static int32_t compile_node(compiler *c, const cJSON *s, const cJSON *root, const char *path);

static int32_t compile(compiler *c, const cJSON *s, const cJSON *root, const char *path) {
    if (c->failed) return -1;
    if (c->depth == MAX_DEPTH) return fail(c, path, "the schema nests deeper than 256 (its $refs followed)", NULL);
    c->depth++;
    const int32_t id = compile_node(c, s, root, path);
    c->depth--;
    return id;
}

static int32_t compile_node(compiler *c, const cJSON *s, const cJSON *root, const char *path) {
    if (cJSON_IsTrue(s)) return any_node(c, path);
    if (!cJSON_IsObject(s)) return fail(c, path, "a schema must be an object or true", NULL);
    const cJSON *k;
    bool constrained = false;
    cJSON_ArrayForEach(k, s) {
        if (listed(k->string, constraints, sizeof constraints / sizeof *constraints)) constrained = true;
        else if (!listed(k->string, annotations, sizeof annotations / sizeof *annotations))
            return fail(c, path, "' is not supported", k->string);
    }
    if (!constrained) return any_node(c, path);
    const int32_t id = new_node(c, path);
    if (id < 0) return -1;
    if (c->memo_next == s) { // a $ref's target (compile_target)
        if (!grow((void **)&c->memo, &c->cap_memo, c->n_memo, sizeof *c->memo)) return fail(c, path, "out of memory", NULL);
        c->memo[c->n_memo++] = (struct memo){s, id};
        c->memo_next = NULL;
    }
    if (cJSON_GetObjectItemCaseSensitive(s, "$id")) root = s;

    // A combinator stands alone (beside annotations).
    static const char *const alone[] = {"$ref", "anyOf", "oneOf", "allOf"};
    for (size_t i = 0; i < sizeof alone / sizeof *alone; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, alone[i]);
        if (!v) continue;
        cJSON_ArrayForEach(k, s)
            if (listed(k->string, constraints, sizeof constraints / sizeof *constraints) && strcmp(k->string, alone[i]))
                return fail(c, path, "' beside other constraints is not supported", alone[i]);
        if (i == 0) {
            const cJSON *target = cJSON_IsString(v) ? resolve(root, v->valuestring) : NULL;
            if (!target) return fail(c, path, "' must be \"#\", \"#/$defs/NAME\" or \"#/definitions/NAME\" of this schema", "$ref");
            char sub[256];
            snprintf(sub, sizeof sub, "%s/$ref", path);
            const int32_t to = compile_target(c, target, root, sub);
            return to >= 0 && set_alias(c, id, &to, 1, path) ? id : -1;
        }
        const int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
        if (n < 1 || (i == 3 && n != 1))
            return fail(c, path, i == 3 ? "' is supported with one schema only" : "' must be a non-empty array", alone[i]);
        if (n > MAX_PROPERTIES) return fail(c, path, "' has more than 4096 schemas", alone[i]);
        return compile_alias(c, id, v, n, root, path, alone[i]) ? id : -1;
    }

    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    uint8_t types = 0;
    bool bad_type = type && !cJSON_IsString(type) && !(cJSON_IsArray(type) && type->child);
    if (cJSON_IsString(type)) bad_type = !(types = type_bit(type->valuestring));
    if (cJSON_IsArray(type)) {
        for (k = type->child; k; k = k->next) {
            const uint8_t bit = cJSON_IsString(k) ? type_bit(k->valuestring) : 0;
            bad_type = bad_type || !bit;
            types |= bit;
        }
    }
    if (bad_type)
        return fail(c, path, "' must name JSON types (object, array, string, number, integer, boolean, null)", "type");
    if (types & T_NUMBER) types |= T_INTEGER;
    if (!type) { // what the other keywords say
        static const char *const object_words[] = {"properties", "required", "additionalProperties"};
        static const char *const array_words[] = {"items", "minItems", "maxItems"};
        for (size_t i = 0; i < 3; i++) {
            if (cJSON_GetObjectItemCaseSensitive(s, object_words[i])) types |= T_OBJECT;
            if (cJSON_GetObjectItemCaseSensitive(s, array_words[i])) types |= T_ARRAY;
        }
        if (!types) types = T_ALL;
    }
    c->g->nodes[id].types = types;
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(s, "enum"), *one = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (values && one) return fail(c, path, "' beside 'enum' is not supported", "const");
    for (size_t i = SHAPE_FIRST; (values || one) && i < SHAPE_END; i++)
        if (cJSON_GetObjectItemCaseSensitive(s, constraints[i]))
            return fail(c, path, "' beside 'enum' or 'const' is not supported", constraints[i]);
    if (values || one) return compile_enum(c, id, values ? values : one, one != NULL, path) ? id : -1;
    if ((types & T_OBJECT) && !compile_object(c, id, s, root, path)) return -1;
    if ((types & T_ARRAY) && !compile_array(c, id, s, root, path)) return -1;
    return compile_bounds(c, id, s, path) ? id : -1;
}

typedef struct tagged_alt {
    const char *tag;
    int32_t alt;
} tagged_alt;

static int compare_tagged(const void *a, const void *b) {
    return strcmp(((const tagged_alt *)a)->tag, ((const tagged_alt *)b)->tag);
}

// An anyOf whose alternatives are all objects that begin with the same required
// property, whose value is one const, different in each: OpenAI's tool calls
// ({"name": {"const": F}, "arguments": ...}) and other tagged unions. Node id
// becomes one object of that one property, whose value is the union of the
// consts (a new enum node); value_end then puts the alternative it picked in
// the frame's place. One reading instead of one per alternative. Returns 1
// when it did, 0 when the alternatives do not have that shape, -1 on error.
static int discriminate(compiler *c, int32_t id, const int32_t *flat, int32_t n) {
    bn_json_schema *g = c->g;
    if (n < 2) return 0;
    for (int32_t i = 0; i < n; i++) {
        const node *a = &g->nodes[flat[i]], *a0 = &g->nodes[flat[0]];
        if (a->types != T_OBJECT || a->free_keys || a->n_props < 1 || !g->props[a->props].required ||
            strcmp(g->texts[a->keys], g->texts[a0->keys]))
            return 0;
        const node *tag = &g->nodes[g->props[a->props].node];
        if (tag->alias || tag->n_texts != 1) return 0;
    }
    // The tags sorted, as compile_enum sorts an enum's values (a tag that
    // begins another comes first), and the alternatives in their order.
    tagged_alt *order = malloc((size_t)n * sizeof *order);
    if (!order) return -1;
    for (int32_t i = 0; i < n; i++) {
        const node *tag = &g->nodes[g->props[g->nodes[flat[i]].props].node];
        order[i] = (tagged_alt){g->texts[tag->texts], flat[i]};
    }
    qsort(order, (size_t)n, sizeof *order, compare_tagged);
    for (int32_t i = 1; i < n; i++) // two alternatives with one tag: not told apart by it
        if (!strcmp(order[i - 1].tag, order[i].tag)) return free(order), 0;
    const int32_t tags = new_node(c, "");
    bool ok = tags >= 0 && grow((void **)&g->props, &g->cap_props, g->n_props, sizeof *g->props);
    const int32_t first_text = g->n_texts;
    for (int32_t i = 0; i < n && ok; i++) {
        g->alts[g->nodes[id].alts + i] = order[i].alt;
        ok = add_text(c, "", strdup(order[i].tag)); // order[i].tag stays: add_text moves the array, not the texts
    }
    free(order);
    if (!ok) return -1;
    g->nodes[tags].types = T_ALL, g->nodes[tags].texts = first_text, g->nodes[tags].n_texts = n;
    node *nd = &g->nodes[id];
    nd->alias = false, nd->tagged = true, nd->types = T_OBJECT;
    nd->props = g->n_props, nd->n_props = 1, nd->keys = g->nodes[flat[0]].keys;
    g->props[g->n_props++] = (prop){tags, true};
    return 1;
}

// Alias id's alternatives, flattened to nodes that are not aliases
// (deduplicated, in order), in g->alts; its aliases are flattened first, each
// once (state 2: done), so that shared $defs cost their size once, not once per
// path to them. A chain of aliases back to itself would read no byte: refused.
typedef struct flattening {
    uint8_t *state;  // [n_nodes] 0, 1: being flattened, 2: done
    uint32_t *stamp; // [n_nodes] the alias that last listed the node (dedupe)
} flattening;

static bool flatten(compiler *c, flattening *fl, int32_t id, int depth) {
    bn_json_schema *g = c->g;
    if (fl->state[id] == 2) return true;
    if (fl->state[id] == 1) return fail(c, "", "a $ref or anyOf leads back to itself before any value begins", NULL), false;
    if (depth == MAX_DEPTH) return fail(c, "", "a chain of $refs and anyOfs is longer than 256", NULL), false;
    fl->state[id] = 1;
    const int32_t raw = g->nodes[id].alts, n_raw = g->nodes[id].n_alts;
    int32_t total = 0;
    for (int32_t i = 0; i < n_raw; i++) {
        const int32_t a = g->alts[raw + i];
        if (g->nodes[a].alias && !flatten(c, fl, a, depth + 1)) return false;
        total += g->nodes[a].alias ? g->nodes[a].n_alts : 1;
    }
    if ((int64_t)g->n_alts + total > MAX_ALTS) return fail(c, "", "the anyOfs have too many alternatives", NULL), false;
    int32_t *flat = malloc(((size_t)total + 1) * sizeof *flat), n = 0;
    if (!flat) return fail(c, "", "out of memory", NULL), false;
    for (int32_t i = 0; i < n_raw; i++) {
        const int32_t a = g->alts[raw + i];
        const bool alias = g->nodes[a].alias;
        for (int32_t j = 0, m = alias ? g->nodes[a].n_alts : 1; j < m; j++) {
            const int32_t x = alias ? g->alts[g->nodes[a].alts + j] : a;
            if (fl->stamp[x] != (uint32_t)id + 1) fl->stamp[x] = (uint32_t)id + 1, flat[n++] = x;
        }
    }
    const int32_t first = g->n_alts;
    bool ok = true;
    for (int32_t i = 0; ok && i < n; i++) ok = add_alt(c, "", flat[i]);
    if (ok) g->nodes[id].alts = first, g->nodes[id].n_alts = n;
    const int tagged = ok ? discriminate(c, id, flat, n) : 0;
    free(flat);
    if (tagged < 0) return fail(c, "", "out of memory", NULL), false;
    if (ok && !tagged && n > BN_JSON_SCHEMA_THREADS)
        return fail(c, "", "an anyOf has more than 16 alternatives (unless they are objects told apart by the "
                           "const value of their first property)", NULL), false;
    fl->state[id] = 2;
    return ok;
}

static bool flatten_aliases(compiler *c) {
    const int32_t n_nodes = c->g->n_nodes; // discriminate adds nodes, which are no aliases
    flattening fl = {calloc((size_t)n_nodes, 1), calloc((size_t)n_nodes, sizeof *fl.stamp)};
    bool ok = fl.state && fl.stamp;
    if (!ok) fail(c, "", "out of memory", NULL);
    for (int32_t id = 0; ok && id < n_nodes; id++)
        if (c->g->nodes[id].alias) ok = flatten(c, &fl, id, 0);
    free(fl.state);
    free(fl.stamp);
    return ok;
}

int bn_json_schema_compile(const char *text, size_t len, bn_json_schema **out, bn_error *err) {
    bn_json_budget budget = BN_JSON_BUDGET;
    return bn_json_schema_compile_within(text, len, &budget, out, err);
}

int bn_json_schema_compile_within(const char *text, size_t len, bn_json_budget *budget, bn_json_schema **out,
                                  bn_error *err) {
    *out = NULL;
    if (len > MAX_SCHEMA_BYTES) return bn_errorf(err, "json_schema: the schema is larger than 256 KiB");
    if (bn_json_has_nul_escape(text, len))
        return bn_errorf(err, "json_schema: the schema has a \\u0000 escape (a NUL), which its strings cannot carry");
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, false);
    while (doc && end < text + len && bn_json_is_blank(*end)) end++;
    if (!doc || end != text + len) {
        cJSON_Delete(doc);
        return bn_errorf(err, "json_schema: the schema is not valid JSON%s", doc ? " (text follows it)" : "");
    }
    bn_json_schema *g = calloc(1, sizeof *g);
    compiler c = {.g = g, .err = err, .budget = budget};
    if (!g) {
        cJSON_Delete(doc);
        return bn_errorf(err, "out of memory");
    }
    static _Atomic uint64_t compiled;
    g->any = -1;
    g->serial = atomic_fetch_add(&compiled, 1) + 1;
    const bool ok = (g->root = compile(&c, doc, doc, "")) >= 0 && !c.failed && flatten_aliases(&c);
    free(c.memo);
    cJSON_Delete(doc);
    if (!ok) {
        bn_json_schema_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

const char *bn_json_schema_reason(const char *msg) {
    static const char prefix[] = "json_schema: ";
    return strncmp(msg, prefix, sizeof prefix - 1) ? msg : msg + sizeof prefix - 1;
}

int bn_json_schema_check(const char *schema, size_t n, bn_error *err) {
    bn_json_schema *g;
    if (bn_json_schema_compile(schema, n, &g, err)) return -1;
    bn_json_schema_free(g);
    return 0;
}

void bn_json_schema_free(bn_json_schema *g) {
    if (!g) return;
    for (int32_t i = 0; i < g->n_texts; i++) free(g->texts[i]);
    for (int32_t i = 0; i < g->n_regexes; i++) bn_regex_free(g->regexes[i]);
    for (int32_t i = 0; i < g->n_lengths; i++) bn_regex_lengths_free(g->lengths[i]);
    free(g->regexes);
    free(g->lengths);
    free(g->nodes);
    free(g->props);
    free(g->alts);
    free(g->texts);
    free(g);
}

// ---- reading a text ---------------------------------------------------------------

enum {
    P_VALUE,     // a value must come (blanks first)
    P_LEX,       // t->lex reads a string, number, literal or free value
    P_ENUM,      // matching enum value cand, offset bytes in
    P_OBJ_FIRST, // after '{': a key or '}'
    P_OBJ_KEY,   // after ',': a key
    P_KEY_MATCH, // matching property name cand
    P_KEY_LEX,   // t->lex reads a free key
    P_COLON,     // ':' after a key
    P_OBJ_VALUE, // a property's value is open above (property cand)
    P_OBJ_AFTER, // ',' or '}'
    P_ARR_FIRST, // after '[': a value or ']'
    P_ARR_VALUE, // an item is open above
    P_ARR_AFTER, // ',' or ']'
};

static bool same_lex(const bn_json_prefix *a, const bn_json_prefix *b) {
    return a->objects == b->objects && a->depth == b->depth && a->state == b->state && a->left == b->left &&
           a->literal == b->literal && a->space == b->space && a->key == b->key && a->object_only == b->object_only;
}

_Static_assert(sizeof(bn_json_frame) == 10, "frames compare and hash as bytes: no padding");

// Whether t's lexer is reading: elsewhere it holds nothing of t's.
static bool lex_open(const bn_json_thread *t) {
    const uint8_t top = t->depth ? t->frame[t->depth - 1].phase : P_VALUE;
    return top == P_LEX || top == P_KEY_LEX;
}

static bool same_thread(const bn_json_thread *a, const bn_json_thread *b) {
    if (a->depth != b->depth || a->space != b->space) return false;
    if (a->depth && memcmp(a->frame, b->frame, a->depth * sizeof *a->frame)) return false;
    return !lex_open(a) || (same_lex(&a->lex, &b->lex) && a->value == b->value);
}

static void copy_thread(bn_json_thread *to, const bn_json_thread *from) {
    to->depth = from->depth, to->space = from->space, to->lex = from->lex, to->value = from->value;
    memcpy(to->frame, from->frame, from->depth * sizeof *from->frame);
}

// Adds t to out's readings unless out has it already (or is full: json_schema.h).
static void emit(bn_json_state *out, const bn_json_thread *t) {
    for (int i = 0; i < out->n; i++)
        if (same_thread(&out->thread[i], t)) return;
    if (out->n < BN_JSON_SCHEMA_THREADS) copy_thread(&out->thread[out->n++], t);
}

static bool push(bn_json_thread *t, int32_t child, uint8_t parent_phase) {
    if (t->depth == BN_JSON_SCHEMA_DEPTH) return false;
    t->frame[t->depth - 1].phase = parent_phase;
    t->frame[t->depth++] = (bn_json_frame){.node = (uint16_t)child, .phase = P_VALUE};
    return true;
}

// The top frame's value is whole: its parent goes on after it. A tagged
// object's first value (its tag) names the alternative the object is read as
// from then on.
static void value_end(const bn_json_schema *g, bn_json_thread *t) {
    if (--t->depth == 0) return;
    bn_json_frame *f = &t->frame[t->depth - 1];
    if (f->phase == P_OBJ_VALUE) {
        const node *n = &g->nodes[f->node];
        if (n->tagged) f->node = (uint16_t)g->alts[n->alts + t->frame[t->depth].cand];
        f->phase = P_OBJ_AFTER, f->index = (uint16_t)(f->cand + 1), f->cand = 0;
    } else { // items counted only as far as the bounds tell them apart, so that states repeat
        const node *n = &g->nodes[f->node];
        const uint32_t enough = n->max_items != NO_BOUND ? n->max_items : n->min_items;
        f->phase = P_ARR_AFTER, f->index = (uint16_t)(f->index < enough ? f->index + 1 : f->index);
    }
}

// Whether a property from the i-th on must still come.
static bool required_from(const bn_json_schema *g, const node *n, int i) {
    for (; i < n->n_props; i++)
        if (g->props[n->props + i].required) return true;
    return false;
}

static bool is_number_text(const char *s) { return *s == '-' || (*s >= '0' && *s <= '9'); }

// How text t stands against cur's first `offset` bytes and then c, in strcmp's
// order over t's first offset + 1 bytes (t ending first sorts first).
static int prefix_cmp(const char *t, const char *cur, int offset, unsigned char c) {
    const int d = strncmp(t, cur, (size_t)offset);
    return d ? d : (int)(unsigned char)t[offset] - (int)c;
}

// Of texts[first .. last], the first that matches cur's first `offset` bytes
// and then c (-1: none; a NUL byte, which would match a text's end, never fits).
// Sorted texts (an enum's) are searched by halves: 65535 values cost 16 looks.
static int match(char *const *texts, int first, int last, bool sorted, const char *cur, int offset,
                 unsigned char c) {
    if (c == 0) return -1;
    if (sorted) {
        int lo = first, hi = last + 1;
        while (lo < hi) {
            const int mid = lo + (hi - lo) / 2;
            if (prefix_cmp(texts[mid], cur, offset, c) < 0) lo = mid + 1;
            else hi = mid;
        }
        return lo <= last && !prefix_cmp(texts[lo], cur, offset, c) ? lo : -1;
    }
    for (int j = first; j <= last; j++)
        if (!prefix_cmp(texts[j], cur, offset, c)) return j;
    return -1;
}

// ---- bounded strings, integers and numbers, formatted and patterned strings (t->value) ----

// Whether t->value counts what the lexer reads of a value of n: count_byte
// reads each byte of it, and of the shortcuts only next_in_lexer's takes such
// a value, a sized or patterned string, which it reads as count_byte would.
static bool counted(const node *n) { return n->sized || n->bounded || n->decimal || n->format || n->regex; }

static int days_in(int year, int month) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    return month == 2 && leap ? 29 : days[month - 1];
}

// Whether digit d may come at index i of field f (format_templates) whose
// digits so far make acc: each field refused at the first digit past which it
// cannot be whole (a month 1..12, a day of the month before it, hours 0..23,
// minutes and seconds 0..59, a year from 0001).
static bool field_digit(char f, int i, int acc, int d, int year, int month) {
    const int v = acc * 10 + d;
    switch (f) {
    case 'Y': return i < 3 || v > 0;
    case 'M': return i == 0 ? d <= 1 : v >= 1 && v <= 12;
    case 'D': return i == 0 ? d * 10 <= days_in(year, month) : v >= 1 && v <= days_in(year, month);
    case 'h': return i == 0 ? d <= 2 : v <= 23;
    default: return i == 0 ? d <= 5 : true; // 'm', 's'
    }
}

// t->value of a formatted string: where it is (bits 0-7: a place in the
// template, or past it in a time's tail), the digits of the field so far
// (8-21), the year (22-35) and month (36-39) for the day.
enum { TAIL, FRAC_FIRST, FRAC, ZONE, END = ZONE + 5 }; // a time's places past "hh:mm:ss"

static bool timed(uint8_t format) { return format == F_TIME || format == F_DATE_TIME; }
static int format_end(uint8_t format) {
    const int len = format_lens[format];
    return timed(format) ? len + END : len;
}

// Reads byte c of a string of format `format` into *value; false where no
// string of the format begins so.
static bool format_byte(uint8_t format, uint64_t *value, unsigned char c) {
    const char *tpl = format_templates[format];
    const int len = format_lens[format];
    int pos = (int)(*value & 0xff), acc = (int)(*value >> 8 & 0x3fff);
    int year = (int)(*value >> 22 & 0x3fff), month = (int)(*value >> 36 & 0xf);
    const char *field = NULL; // the template the place is in, and the place in it
    int at = 0;
    if (pos < len) {
        field = tpl, at = pos;
    } else if (timed(format) && pos - len >= ZONE && pos - len < END) {
        field = "hh:mm", at = pos - len - ZONE;
    } else if (timed(format) && pos - len <= FRAC) {
        const int k = pos - len;
        const bool digit = c >= '0' && c <= '9';
        if (k == TAIL && c == '.') pos = len + FRAC_FIRST;
        else if (k != TAIL && digit) pos = len + FRAC;
        else if (k != FRAC_FIRST && c == 'Z') pos = len + END;
        else if (k != FRAC_FIRST && (c == '+' || c == '-')) pos = len + ZONE;
        else return false;
        *value = (*value & ~0xffull) | (uint64_t)pos;
        return true;
    } else {
        return false; // whole: only the closing quote
    }
    const char want = field[at];
    int i = 0; // the digit's index in its field
    while (i < at && field[at - i - 1] == want) i++;
    if (want == 'x') {
        if (!isxdigit(c)) return false;
    } else if (strchr("YMDhms", want)) {
        if (c < '0' || c > '9' || !field_digit(want, i, acc, c - '0', year, month)) return false;
        acc = i == 0 ? c - '0' : acc * 10 + (c - '0');
        if (want == 'Y' && i == 3) year = acc;
        if (want == 'M' && i == 1) month = acc;
    } else if (c != (unsigned char)want) {
        return false;
    }
    pos++;
    *value = (uint64_t)pos | (uint64_t)acc << 8 | (uint64_t)year << 22 | (uint64_t)month << 36;
    return true;
}

// Whether an integer of n's that so far is a sign (negative) and, when digits,
// the magnitude m can still end within n->lo .. n->hi: whether some m * 10^k +
// r (0 <= r < 10^k, k >= 0; k = 0 only after a lone 0) is a magnitude that
// sign allows. Whole: only k = 0 (the integer ends here).
static bool may_reach(const node *n, bool negative, uint64_t m, bool digits, bool whole) {
    const int64_t a0 = negative ? -n->hi : n->lo, b = negative ? -n->lo : n->hi;
    const int64_t a = a0 > 0 ? a0 : 0; // the magnitudes allowed: a .. b
    if (b < a) return false;
    if (!digits) return true;          // a lone '-': any magnitude may follow
    if (m == 0 || whole) return m >= (uint64_t)a && m <= (uint64_t)b;
    for (uint64_t low = m, span = 1; low <= (uint64_t)b; low *= 10, span *= 10) {
        if (low + span - 1 >= (uint64_t)a) return true;
        if (low > (uint64_t)b / 10) break;
    }
    return false;
}

// Where a sized string's count of characters stops: at maxLength, or without
// one at minLength, past which the count tells nothing more.
static uint32_t count_top(const node *n) { return n->max_len != NO_BOUND ? n->max_len : n->min_len; }

// Counts byte c of a sized string of n, which the lexer took (before -> after),
// into *chars; false past maxLength, short of minLength at the closing quote,
// or at a \uD... escape.
static bool count_char(const node *n, uint64_t *chars, const bn_json_prefix *before, const bn_json_prefix *after,
                       unsigned char c) {
    if (bn_json_prefix_hex_left(before) == 4 && (c == 'd' || c == 'D')) return false;
    const bool between = bn_json_prefix_in_string(before);
    if (between && c == '"') return *chars >= n->min_len; // the closing quote
    if (between && *chars >= n->max_len) return false;    // a character more
    if (bn_json_prefix_in_string(after) && *chars < count_top(n)) ++*chars; // a character whole
    return true;
}

// The escapes a patterned string may have, and the characters they stand for
// (json_schema.h: no \u escape).
static const char escape_letter[] = "\"\\/bfnrt", escaped[] = "\"\\/\b\f\n\r\t";

// Steps byte c of a patterned string (the lexer before it: before) through
// n's automaton, from *state: a character's UTF-8 bytes as they are, an escape
// as the character it stands for. chars: a sized string's characters, this
// byte's counted (count_char). False where no string n accepts begins so (at a
// backslash: where none of the escaped characters may come), or at the closing
// quote of one the pattern does not accept.
static bool pattern_byte(const node *n, uint32_t *state, uint64_t chars, const bn_json_prefix *before,
                         unsigned char c) {
    const uint32_t s = *state;
    if (bn_json_prefix_in_string(before) && c == '"') return bn_regex_accepts(n->regex, s);
    if (bn_json_prefix_in_string(before) && c == '\\') { // the letter says which character
        const uint64_t next = chars < count_top(n) ? chars + 1 : chars; // with the escape's character
        for (size_t i = 0; i < sizeof escaped - 1; i++) {
            const uint32_t t = bn_regex_step(n->regex, s, (unsigned char)escaped[i]);
            if (t != BN_REGEX_DEAD && (!n->lengths || bn_regex_lengths_live(n->lengths, t, next))) return true;
        }
        return false;
    }
    if (bn_json_prefix_in_escape(before)) {
        const char *at = memchr(escape_letter, c, sizeof escape_letter - 1);
        if (!at) return false; // \u
        c = (unsigned char)escaped[at - escape_letter];
    }
    const uint32_t t = bn_regex_step(n->regex, s, c);
    if (t == BN_REGEX_DEAD || (n->lengths && !bn_regex_lengths_live(n->lengths, t, chars))) return false;
    *state = t;
    return true;
}

// Byte c inside string n (the lexer took it: before -> after) into value: a
// sized string's characters in the low 32 bits, a patterned string's state in
// its automaton in the high ones. False where no string n accepts begins so.
static bool text_byte(const node *n, uint64_t *value, const bn_json_prefix *before, const bn_json_prefix *after,
                      unsigned char c) {
    uint64_t chars = *value & 0xffffffff;
    uint32_t state = (uint32_t)(*value >> 32);
    if (n->sized && !count_char(n, &chars, before, after, c)) return false;
    if (n->regex && !pattern_byte(n, &state, chars, before, c)) return false;
    *value = (uint64_t)state << 32 | chars;
    return true;
}

// Counts byte c, which the lexer took (before -> after), into t->value for a
// sized or patterned string, a formatted string, a bounded integer or number
// of node n. False where no value n accepts begins so: a character past
// maxLength, a closing quote short of minLength, a \uD... escape
// (json_schema.h), a byte its pattern or format does not take there, a number
// past its bounds (or its 15 digits, or an exponent: decimal_byte).
static bool count_byte(const node *n, bn_json_thread *t, const bn_json_prefix *before, const bn_json_prefix *after,
                       unsigned char c) {
    if (bn_json_prefix_in_text(before) && n->format) { // no format has an escape or a non-ASCII character
        if (!bn_json_prefix_in_string(before)) return false;
        return c == '"' ? (int)(t->value & 0xff) == format_end(n->format) : format_byte(n->format, &t->value, c);
    }
    if (bn_json_prefix_in_text(before)) return text_byte(n, &t->value, before, after, c);
    if (n->decimal) return decimal_byte(n, &t->value, c);
    if (!n->bounded || !(c == '-' || (c >= '0' && c <= '9'))) return true;
    if (c == '-') return t->value = 1, may_reach(n, true, 0, false, false);
    const bool negative = t->value & 1;
    uint64_t m = (t->value >> 1) * 10 + (uint64_t)(c - '0');
    if (m > (uint64_t)SAFE_MAX + 1) m = (uint64_t)SAFE_MAX + 1; // past every bound already
    t->value = m << 1 | negative;
    return may_reach(n, negative, m, true, false);
}

// Whether the number t's lexer has read is one n's bounds allow (it ends).
static bool number_fits(const node *n, const bn_json_thread *t) {
    if (n->decimal) return decimal_fits(n, t->value);
    return !n->bounded || may_reach(n, t->value & 1, t->value >> 1, true, true);
}

// Whether a value of node n may begin with c (blanks aside).
static bool may_begin(const node *n, unsigned char c) {
    if (n->any) return true;
    switch (c) {
    case '{': return n->types & T_OBJECT;
    case '[': return n->types & T_ARRAY;
    case '"': return n->types & T_STRING;
    case 't': case 'f': return n->types & T_BOOLEAN;
    case 'n': return n->types & T_NULL;
    default: return (c == '-' || (c >= '0' && c <= '9')) && (n->types & (T_NUMBER | T_INTEGER));
    }
}

// t (a scratch copy, changed) after byte c, into out: none, one or (at an
// anyOf) several readings.
static void step(const bn_json_schema *g, bn_json_thread *t, unsigned char c, bn_json_state *out) {
    if (t->depth == 0) { // after the value: blanks only
        if (bn_json_is_blank((char)c) && bn_json_blank(&t->space, (char)c)) emit(out, t);
        return;
    }
    bn_json_frame *f = &t->frame[t->depth - 1];
    const node *n = &g->nodes[f->node];
    switch (f->phase) {
    case P_LEX: case P_KEY_LEX: {
        bn_json_prefix lex = t->lex;
        const char byte = (char)c;
        // A number is whole here, so c may follow it instead (',', '}', a blank).
        const bool open_number = f->phase == P_LEX && bn_json_prefix_done(&lex) && !bn_json_prefix_complete(&lex);
        const bool fits = bn_json_prefix_feed(&lex, &byte, 1) &&
                          !(open_number && integer_only(n) && (c == '.' || c == 'e' || c == 'E'));
        if (open_number && (!fits || bn_json_prefix_complete(&lex))) {
            if (!number_fits(n, t)) return;
            value_end(g, t);
            step(g, t, c, out);
            return;
        }
        if (!fits) return;
        if (f->phase == P_LEX && counted(n) && !count_byte(n, t, &t->lex, &lex, c)) return;
        t->lex = lex;
        if (bn_json_prefix_complete(&lex)) {
            if (f->phase == P_KEY_LEX) f->phase = P_COLON;
            else value_end(g, t);
        }
        emit(out, t);
        return;
    }
    case P_ENUM: case P_KEY_MATCH: {
        const bool key = f->phase == P_KEY_MATCH;
        char *const *texts = g->texts + (key ? n->keys : n->texts);
        int last = n->n_texts - 1;
        if (key) { // the names of the properties that may come next: up to the first required one
            last = f->index;
            while (last < n->n_props - 1 && !g->props[n->props + last].required) last++;
        }
        const char *cur = texts[f->cand];
        const int j = match(texts, f->cand, last, !key, cur, f->offset, c);
        if (j < 0) {
            if (!key && !cur[f->offset]) { // a whole number, and c follows it
                value_end(g, t);
                step(g, t, c, out);
            }
            return;
        }
        const char *text = texts[j];
        f->cand = (uint16_t)j, f->offset++;
        if (!text[f->offset]) {
            if (key) f->phase = P_COLON, f->offset = 0;
            else if (!is_number_text(text)) value_end(g, t);
        }
        emit(out, t);
        return;
    }
    default: break;
    }
    // The places between tokens, where blanks may come.
    if (bn_json_is_blank((char)c)) {
        if (bn_json_blank(&t->space, (char)c)) emit(out, t);
        return;
    }
    t->space = 0;
    switch (f->phase) {
    case P_VALUE:
        if (n->alias) { // one reading per alternative
            for (int32_t i = 0; i < n->n_alts; i++) {
                bn_json_thread u;
                copy_thread(&u, t);
                u.frame[u.depth - 1].node = (uint16_t)g->alts[n->alts + i];
                step(g, &u, c, out);
            }
            return;
        }
        if (!may_begin(n, c)) return;
        if (n->n_texts) {
            f->phase = P_ENUM, f->cand = 0, f->offset = 0;
        } else if (n->any || (c != '{' && c != '[')) {
            bn_json_prefix_init(&t->lex, false);
            t->value = 0;
            f->phase = P_LEX;
        } else {
            f->phase = c == '{' ? P_OBJ_FIRST : P_ARR_FIRST, f->index = 0;
            emit(out, t);
            return;
        }
        step(g, t, c, out);
        return;
    case P_OBJ_FIRST:
        if (c == '}') {
            if (n->free_keys || !required_from(g, n, 0)) value_end(g, t), emit(out, t);
            return;
        }
        /* fall through */
    case P_OBJ_KEY:
        if (c != '"') return;
        if (n->free_keys) {
            bn_json_prefix_init(&t->lex, false);
            bn_json_prefix_feed(&t->lex, "\"", 1);
            t->value = 0;
            f->phase = P_KEY_LEX;
        } else if (f->index < n->n_props) {
            f->phase = P_KEY_MATCH, f->cand = f->index, f->offset = 1; // every name begins with '"'
        } else {
            return;
        }
        emit(out, t);
        return;
    case P_COLON:
        if (c == ':' && push(t, n->free_keys ? n->values : g->props[n->props + f->cand].node, P_OBJ_VALUE))
            emit(out, t);
        return;
    case P_OBJ_AFTER:
        if (c == ',' && (n->free_keys || f->index < n->n_props)) f->phase = P_OBJ_KEY, emit(out, t);
        else if (c == '}' && (n->free_keys || !required_from(g, n, f->index))) value_end(g, t), emit(out, t);
        return;
    case P_ARR_FIRST:
        if (c == ']') {
            if (n->min_items == 0) value_end(g, t), emit(out, t);
            return;
        }
        if (n->max_items > 0 && push(t, n->items, P_ARR_VALUE)) step(g, t, c, out);
        return;
    case P_ARR_AFTER:
        if (c == ',' && f->index < n->max_items) {
            if (push(t, n->items, P_ARR_VALUE)) emit(out, t);
        } else if (c == ']' && f->index >= n->min_items) {
            value_end(g, t), emit(out, t);
        }
        return;
    }
}

void bn_json_state_init(bn_json_state *s, const bn_json_schema *g) {
    s->schema = g;
    s->n = 1;
    s->thread[0] = (bn_json_thread){.depth = 1};
    s->thread[0].frame[0] = (bn_json_frame){.node = (uint16_t)g->root, .phase = P_VALUE};
}

void bn_json_state_copy(bn_json_state *to, const bn_json_state *from) {
    to->schema = from->schema;
    to->n = from->n;
    for (int i = 0; i < from->n; i++) copy_thread(&to->thread[i], &from->thread[i]);
}

static void next_byte(const bn_json_state *from, unsigned char c, bn_json_state *to) {
    to->schema = from->schema;
    to->n = 0;
    for (int i = 0; i < from->n; i++) {
        bn_json_thread t;
        copy_thread(&t, &from->thread[i]);
        step(from->schema, &t, c, to);
    }
}

// The common case made cheap (a mask tries thousands of tokens a row): one
// reading in the middle of a string, number, literal or free value, whose
// frames stay as they are until the lexer's value ends, so only the lexer is
// fed. 1: done (to filled, unless NULL); 0: refused; -1: the value may end
// within the bytes, or is a number that may end here: the general path decides.
static int next_in_lexer(const bn_json_state *from, const char *bytes, size_t n, bn_json_state *to) {
    const bn_json_thread *t = &from->thread[0];
    const uint8_t phase = from->n == 1 && t->depth ? t->frame[t->depth - 1].phase : P_VALUE;
    if (phase != P_LEX && phase != P_KEY_LEX) return -1;
    const node *leaf = &from->schema->nodes[t->frame[t->depth - 1].node];
    const bool text = phase == P_LEX && (leaf->sized || leaf->regex) && bn_json_prefix_in_text(&t->lex);
    if (phase == P_LEX && counted(leaf) && !text) return -1; // short values: the general path
    bn_json_prefix lex = t->lex;
    uint64_t value = t->value; // of a sized or patterned string, as count_byte keeps it
    for (size_t i = 0; i < n; i++) {
        if (bn_json_prefix_done(&lex)) return -1;
        const bn_json_prefix before = lex;
        if (!bn_json_prefix_feed(&lex, bytes + i, 1)) return 0;
        const unsigned char c = (unsigned char)bytes[i];
        if (text && bn_json_prefix_in_text(&before) && !text_byte(leaf, &value, &before, &lex, c)) return 0;
    }
    if (bn_json_prefix_done(&lex)) return -1;
    if (!to) return 1;
    to->schema = from->schema;
    to->n = 1;
    copy_thread(&to->thread[0], t);
    to->thread[0].lex = lex;
    to->thread[0].value = value;
    return 1;
}

bool bn_json_state_next(const bn_json_state *from, const char *bytes, size_t n, bn_json_state *to) {
    bn_json_state tmp;
    bn_json_state *bufs[2] = {to, &tmp}; // written in turn; cur is the state so far
    const bn_json_state *cur = from;
    for (size_t i = 0, k = 0; i < n && cur->n; i++, k ^= 1) {
        const int fast = next_in_lexer(cur, bytes + i, n - i, bufs[k]);
        if (fast >= 0) { // the rest of the bytes, or none of them
            cur = bufs[k];
            if (!fast) bufs[k]->schema = from->schema, bufs[k]->n = 0;
            break;
        }
        next_byte(cur, (unsigned char)bytes[i], bufs[k]);
        cur = bufs[k];
    }
    if (cur != to) bn_json_state_copy(to, cur);
    return to->n > 0;
}

bool bn_json_state_fits(const bn_json_state *s, const char *bytes, size_t n, bn_json_state *scratch) {
    const int fast = next_in_lexer(s, bytes, n, NULL);
    return fast >= 0 ? fast : bn_json_state_next(s, bytes, n, scratch);
}

bool bn_json_state_feed(bn_json_state *s, const char *bytes, size_t n) {
    bn_json_state next;
    if (!bn_json_state_next(s, bytes, n, &next)) return s->n = 0, false;
    bn_json_state_copy(s, &next);
    return true;
}

bool bn_json_state_complete(const bn_json_state *s) {
    for (int i = 0; i < s->n; i++)
        if (s->thread[i].depth == 0) return true;
    return false;
}

bool bn_json_state_done(const bn_json_state *s) {
    for (int i = 0; i < s->n; i++) {
        const bn_json_thread *t = &s->thread[i];
        if (t->depth == 0) return true;
        if (t->depth > 1) continue;
        const bn_json_frame *f = &t->frame[0];
        const node *n = &s->schema->nodes[f->node];
        if (f->phase == P_LEX && bn_json_prefix_done(&t->lex) && number_fits(n, t)) return true; // a top-level number
        if (f->phase == P_ENUM && !s->schema->texts[n->texts + f->cand][f->offset]) return true;
    }
    return false;
}

uint32_t bn_json_state_string_room(const bn_json_state *s) {
    uint32_t room = 0; // the most any reading leaves: a token fits if it fits one
    for (int i = 0; i < s->n; i++) {
        const bn_json_thread *t = &s->thread[i];
        const uint8_t phase = t->depth ? t->frame[t->depth - 1].phase : P_VALUE;
        if ((phase != P_LEX && phase != P_KEY_LEX) || !bn_json_prefix_in_string(&t->lex)) return 0;
        const node *n = &s->schema->nodes[t->frame[t->depth - 1].node];
        if (phase == P_LEX && (n->format || n->regex)) return 0;
        const bool sized = phase == P_LEX && n->sized && n->max_len != NO_BOUND;
        const uint32_t left = sized ? (uint32_t)(n->max_len - t->value) : UINT32_MAX;
        if (left > room) room = left;
    }
    return room;
}

size_t bn_json_state_key(const bn_json_state *s, uint32_t horizon, uint8_t key[BN_JSON_STATE_KEY_MAX]) {
    uint8_t *k = key;
    memcpy(k, &s->schema->serial, sizeof s->schema->serial), k += sizeof s->schema->serial;
    *k++ = (uint8_t)s->n;
    // What same_thread compares, field by field (no padding), the lexer as
    // bn_json_prefix_canonical leaves it.
    for (int i = 0; i < s->n; i++) {
        const bn_json_thread *t = &s->thread[i];
        *k++ = t->depth, *k++ = t->space;
        memcpy(k, t->frame, t->depth * sizeof *t->frame), k += t->depth * sizeof *t->frame;
        if (!lex_open(t)) continue;
        uint64_t value = t->value;
        const node *n = &s->schema->nodes[t->frame[t->depth - 1].node];
        if (t->frame[t->depth - 1].phase == P_LEX && n->sized && !n->regex && bn_json_prefix_in_text(&t->lex)) {
            // Within `horizon` bytes only the characters short of minLength and
            // left before maxLength matter, each up to horizon + 1 (beside a
            // pattern, the count itself: how far a match may still go).
            const uint64_t cap = (uint64_t)horizon + 1;
            const uint64_t short_of = value < n->min_len ? n->min_len - value : 0;
            const uint64_t left = n->max_len == NO_BOUND ? cap : n->max_len - value;
            value = (short_of < cap ? short_of : cap) << 32 | (left < cap ? left : cap);
        }
        memcpy(k, &value, sizeof value), k += sizeof value;
        const bn_json_prefix x = bn_json_prefix_canonical(&t->lex);
        memcpy(k, &x.objects, sizeof x.objects), k += sizeof x.objects;
        *k++ = x.depth, *k++ = x.state, *k++ = x.left, *k++ = x.literal, *k++ = x.space;
        *k++ = x.key, *k++ = x.object_only;
    }
    return (size_t)(k - key);
}
