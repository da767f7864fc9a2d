// test_json_schema.c - core/json_schema.c, the automaton behind json_schema
// (and json_object) requests: what each keyword lets through and refuses, read
// a byte at a time; schemas refused when compiled, with their place; the
// readings anyOf keeps; json_object's schema against json_prefix.c on Python's
// cases; and (`test_json_schema python`) texts that the `jsonschema` package
// judges (tests/json_schema_reference.py, through BITNET_JSON_SCHEMA_REFERENCE):
// every text it calls valid and writes in the automaton's one way is taken
// whole, and none it calls invalid is.
#include "test_util.h"

#include <math.h>
#include <stdlib.h>

#include "json_schema.h"
#include "json_text.h" // bn_buf

static bn_json_schema *compile(const char *schema) {
    bn_json_schema *g = NULL;
    bn_error err;
    if (bn_json_schema_compile(schema, strlen(schema), &g, &err)) fail_msg("%s: %s", schema, err.msg);
    return g;
}

// Feeds n bytes one at a time: those read before the first refusal (n: none),
// and whether the text may end there.
static size_t accepted(const bn_json_schema *g, const char *s, size_t n, bool *done) {
    bn_json_state *st = malloc(sizeof *st);
    bn_json_state_init(st, g);
    size_t i = 0;
    while (i < n && bn_json_state_feed(st, s + i, 1)) i++;
    *done = i == n && bn_json_state_done(st);
    free(st);
    return i;
}

// Each text is taken whole (want_read: strlen) or refused at byte want_read.
typedef struct text_case {
    const char *text;
    int refused_at; // -1: taken whole
} text_case;
#define WHOLE(t) {t, -1}

static void expect_texts(const char *schema, const text_case *cases, size_t n) {
    bn_json_schema *g = compile(schema);
    for (size_t i = 0; i < n; i++) {
        bool done;
        const size_t len = strlen(cases[i].text), got = accepted(g, cases[i].text, len, &done);
        const bool whole = cases[i].refused_at < 0;
        const size_t want = whole ? len : (size_t)cases[i].refused_at;
        if (got != want || (whole && !done))
            fail_msg("schema %s, text \"%s\": read %zu of %zu bytes (want %zu), done %d", schema, cases[i].text,
                     got, len, want, done);
    }
    bn_json_schema_free(g);
}
#define EXPECT(schema, ...)                                                                                  \
    do {                                                                                                     \
        const text_case cases_[] = {__VA_ARGS__};                                                            \
        expect_texts(schema, cases_, sizeof cases_ / sizeof *cases_);                                        \
    } while (0)

static void test_scalars(void **state) {
    (void)state;
    EXPECT("{\"type\": \"integer\"}", WHOLE("0"), WHOLE("-12"), WHOLE(" 7 "), {"1.5", 1}, {"1e3", 1}, {"01", 1},
           {"\"1\"", 0}, {"true", 0});
    EXPECT("{\"type\": \"number\"}", WHOLE("1.5e-3"), WHOLE("-0"), WHOLE("12E+2"), {"1.", 2}, {"null", 0});
    EXPECT("{\"type\": \"string\"}", WHOLE("\"a\\u00e9\\\"\""), WHOLE("\"\xc3\xa9\""), {"\"a\nb\"", 2}, {"1", 0});
    EXPECT("{\"type\": [\"boolean\", \"null\"]}", WHOLE("true"), WHOLE("null"), WHOLE("false"), {"0", 0},
           {"\"", 0});
    EXPECT("{\"type\": [\"integer\", \"string\"]}", WHOLE("3"), WHOLE("\"x\""), {"3.5", 1});
    EXPECT("{\"type\": [\"number\", \"integer\"]}", WHOLE("3.5"), WHOLE("3"));
}

static void test_enum_const(void **state) {
    (void)state;
    // Values that share a start: 1, 12 and 125 (a number may go on), and texts of every kind.
    static const char e[] = "{\"enum\": [\"red\", \"re\", 1, 12, 125, -3, true, null, {\"a\": [1, 2]}, [\"x\"]]}";
    EXPECT(e, WHOLE("\"red\""), WHOLE("\"re\""), WHOLE("1"), WHOLE("12"), WHOLE("125"), WHOLE(" 12 "), WHOLE("-3"),
           WHOLE("true"), WHOLE("null"), WHOLE("{\"a\":[1,2]}"), WHOLE("[\"x\"]"), {"13", 1}, {"1250", 3},
           {"\"r\"", 2}, {"{\"a\": [1,2]}", 5}, {"false", 0}, {"\"redd\"", 4});
    EXPECT("{\"const\": \"on\"}", WHOLE("\"on\""), {"\"of\"", 2});
    // Values of other types than "type" are not offered.
    EXPECT("{\"type\": \"string\", \"enum\": [\"a\", 1]}", WHOLE("\"a\""), {"1", 0});
}

static void test_objects(void **state) {
    (void)state;
    // Properties in their listed order, required ones always, optional ones anywhere.
    static const char o[] = "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": "
                            "\"string\"}, \"c\": {\"type\": \"boolean\"}, \"d\": {}}, \"required\": [\"b\", \"c\"]}";
    EXPECT(o, WHOLE("{\"b\":\"x\",\"c\":true}"), WHOLE("{\"a\":1,\"b\":\"\",\"c\":false,\"d\":[{}]}"),
           WHOLE(" { \"a\" : 1 , \"b\" : \"\" , \"c\" : true } "), {"{}", 1}, {"{\"c\"", 2}, {"{\"b\":\"x\"}", 8},
           {"{\"b\":\"x\",\"a\"", 10}, {"{\"b\":\"x\",\"c\":true,\"e\"", 19}, {"{\"a\":1,\"a\"", 8},
           {"{\"b\":\"x\",\"c\":true,\"d\":1,", 23});
    // No properties: any keys, values as additionalProperties says.
    EXPECT("{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}}", WHOLE("{}"),
           WHOLE("{\"x\":1,\"x\":2,\"\xc3\xa9\\n\":-3}"), {"{\"x\":\"1\"}", 5}, {"{\"x\":1.5}", 6});
    EXPECT("{\"type\": \"object\", \"additionalProperties\": false}", WHOLE("{}"), WHOLE("{ }"), {"{\"", 1});
    EXPECT("{\"type\": \"object\"}", WHOLE("{\"k\":{\"n\":[1,{\"m\":null}]}}"), {"[]", 0});
    // Properties without "type": an object.
    EXPECT("{\"properties\": {\"a\": {\"const\": 1}}}", WHOLE("{\"a\":1}"), WHOLE("{}"), {"1", 0});
}

static void test_arrays(void **state) {
    (void)state;
    EXPECT("{\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"minItems\": 2, \"maxItems\": 3}",
           WHOLE("[1,2]"), WHOLE("[ 1 , 2 , 3 ]"), {"[1]", 2}, {"[1,2,3,", 6}, {"[]", 1}, {"[1,\"a\"]", 3});
    EXPECT("{\"type\": \"array\", \"maxItems\": 0}", WHOLE("[]"), {"[1]", 1});
    EXPECT("{\"type\": \"array\"}", WHOLE("[1,\"a\",[{}],null]"), WHOLE("[]"));
    EXPECT("{\"type\": \"array\", \"items\": false}", WHOLE("[]"), {"[1", 1});
}

// minLength/maxLength count characters (UTF-8 or escaped, one each); a \uD...
// escape is refused there (json_schema.h). Integer bounds refuse the first
// digit past which no integer in range can follow, and a number that ends
// short of the minimum.
static void test_bounds(void **state) {
    (void)state;
    EXPECT("{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 3}", WHOLE("\"ab\""), WHOLE("\"abc\""),
           WHOLE("\"\xc3\xa9\xe2\x82\xac\""), WHOLE("\"a\\n\\u00e9\""), WHOLE("\"ab\xf0\x9f\x98\x80\""),
           {"\"a\"", 2}, {"\"abcd\"", 4}, {"\"abc\\n\"", 4}, {"\"abc\xc3\xa9\"", 4}, {"\"ab\\ud83d\\ude00\"", 5},
           {"\"a\\uDE00\"", 4});
    EXPECT("{\"type\": \"string\", \"minLength\": 1}", WHOLE("\"a long string, longer than any bound\""),
           {"\"\"", 1});
    EXPECT("{\"type\": [\"string\", \"integer\"], \"maxLength\": 1}", WHOLE("12345"), WHOLE("\"x\""),
           {"\"xy\"", 2});
    EXPECT("{\"type\": \"string\", \"maxLength\": 0}", WHOLE("\"\""), {"\"a", 1});
    EXPECT("{\"type\": \"string\", \"maxLength\": 1e301}", WHOLE("\"abc\""));
    // Bounds of a type the value cannot have change nothing, as in JSON Schema.
    EXPECT("{\"type\": \"integer\", \"minLength\": 5, \"maxLength\": 2}", WHOLE("7"));
    EXPECT("{\"type\": \"string\", \"minimum\": 5, \"maximum\": 2}", WHOLE("\"7\""));
    EXPECT("{\"type\": \"integer\", \"minimum\": -5, \"maximum\": 120}", WHOLE("-5"), WHOLE("0"), WHOLE("-0"),
           WHOLE("120"), WHOLE(" 99 "), {"-6", 1}, {"121", 2}, {"130", 2}, {"200", 2}, {"-50", 2}, {"-", 1});
    EXPECT("{\"type\": \"integer\", \"exclusiveMinimum\": 0}", WHOLE("1"), WHOLE("9007199254740991"),
           {"0", 0}, {"-1", 0}, {"9007199254740992", 15});
    EXPECT("{\"type\": \"integer\", \"minimum\": 100, \"exclusiveMaximum\": 1000}", WHOLE("100"),
           WHOLE("999"), {"99", 2}, {"1000", 3}, {"0", 0});
    EXPECT("{\"type\": \"integer\", \"minimum\": 0.5, \"maximum\": 2.5}", WHOLE("1"), WHOLE("2"), {"0", 0},
           {"3", 0});
    EXPECT("{\"properties\": {\"n\": {\"type\": [\"integer\", \"null\"], \"minimum\": 10}}}",
           WHOLE("{\"n\":10}"), WHOLE("{\"n\":null}"), WHOLE("{\"n\":123456}"), {"{\"n\":5}", 6}, {"{\"n\":5 ", 6},
           {"{\"n\":-", 5});
    EXPECT("{\"type\": \"integer\", \"minimum\": 1, \"maximum\": 9}", WHOLE("5"), {"10", 1});
}

// Bounds on a number that may have a fraction: no exponent, at most 15
// digits (a leading "0" before the '.' not counted), each byte refused where
// no such number within the bounds can follow, and a number that ends outside
// them; compared as jsonschema compares float(text) with the bound's double.
static void test_number_bounds(void **state) {
    (void)state;
    EXPECT("{\"type\": \"number\", \"minimum\": 0, \"maximum\": 1}", WHOLE("0"), WHOLE("1"), WHOLE("0.5"),
           WHOLE("0.999999999999999"), WHOLE("1.0"), WHOLE("1.00"), WHOLE("-0"), WHOLE("-0.0"), WHOLE(" 1 "),
           WHOLE("0.000000000000001"), {"1.01", 3}, {"-0.1", 3}, {"2", 0}, {"1e0", 1}, {"0.5e", 3}, {"0.5E1", 3},
           {"1.5", 2}, {"10", 1}, {"0.9999999999999999", 17}, {"1.000000000000000", 16},
           {"0.0000000000000010", 17});
    // 0.1's double is a little above 0.1, and 0.3's a little below 0.3: float("0.1") is the first.
    EXPECT("{\"type\": \"number\", \"minimum\": 0.1, \"exclusiveMaximum\": 0.3}", WHOLE("0.1"), WHOLE("0.2"),
           WHOLE("0.1000"), WHOLE("0.25"), WHOLE("0.29999999999999"), WHOLE("0.299999999999999"), {"0.3", 2},
           {"0.09", 2}, {"0.099999999999999", 2}, {"1", 0}, {"-0", 0}, {"0 ", 1}, {"0.2999999999999999", 17});
    EXPECT("{\"type\": \"number\", \"exclusiveMinimum\": 0}", WHOLE("0.000000000000001"), WHOLE("1"),
           WHOLE("999999999999999"), WHOLE("123456.789"), {"0 ", 1}, {"0.0 ", 3}, {"-", 0},
           {"0.000000000000000", 16}, {"1e5", 1}, {"1000000000000000", 15}, {"999999999999999.5", 15});
    EXPECT("{\"type\": \"number\", \"minimum\": -2.5, \"maximum\": -1.25}", WHOLE("-2.5"), WHOLE("-1.25"),
           WHOLE("-2"), WHOLE("-1.3"), WHOLE("-2.49999"), WHOLE("-1.250"), WHOLE("-2.000000000000"), {"-2.6", 3},
           {"-1.2 ", 4}, {"-1.24", 4}, {"-3", 1}, {"1", 0}, {"-0", 1}, {"-2.50000000000001", 16},
           {"-2.500000000000000", 17});
    // Bounds finer than the 15 digits, and past them.
    EXPECT("{\"type\": \"number\", \"exclusiveMinimum\": 1e-20, \"maximum\": 1}", WHOLE("0.000000000000001"),
           WHOLE("1"), {"0 ", 1}, {"0.000000000000000", 16});
    EXPECT("{\"type\": \"number\", \"maximum\": 1e-20}", WHOLE("0"), WHOLE("0.0"), WHOLE("-5"),
           WHOLE("-0.000000000000001"), {"0.000000000000001", 16}, {"1", 0});
    EXPECT("{\"type\": \"number\", \"minimum\": -1e-20}", WHOLE("0"), {"-0.000000000000001", 17});
    EXPECT("{\"type\": \"number\", \"maximum\": 1e300}", WHOLE("999999999999999"), WHOLE("-999999999999999"),
           WHOLE("0.5"), {"123456789012345.6", 15}, {"1e400", 1}, {"9999999999999999", 15});
    EXPECT("{\"type\": \"number\", \"minimum\": -1e300, \"exclusiveMaximum\": 1e15}", WHOLE("999999999999999"),
           WHOLE("-999999999999999"));
    // A bound of 16 digits (its double a little below 99.99999999999999), and one of 15.
    EXPECT("{\"type\": \"number\", \"maximum\": 99.99999999999999}", WHOLE("99.9999999999999"), WHOLE("99"),
           WHOLE("-5"), {"100", 2}, {"99.99999999999999", 16});
    EXPECT("{\"type\": \"number\", \"minimum\": 123456789.123456}", WHOLE("123456789.123456"),
           WHOLE("123456789.123457"), WHOLE("123456790"), WHOLE("999999999999999"), {"123456789.12345 ", 15},
           {"123456789.123455", 15}, {"123456789 ", 9}, {"12345678 ", 8}, {"1 ", 1}, {"123456789.1234561", 16});
    // Whole bounds on a number, and bounds without a type: the value may have a
    // fraction; a literal's 'e' is no exponent, nor a string's.
    EXPECT("{\"type\": \"number\", \"minimum\": 0}", WHOLE("0.5"), WHOLE("0"), WHOLE("12"), {"-0.5", 3},
           {"1e3", 1});
    EXPECT("{\"exclusiveMaximum\": 3}", WHOLE("2.5"), WHOLE("-1000"), WHOLE("\"x\""), WHOLE("true"), WHOLE("false"),
           WHOLE("null"), WHOLE("[1e5]"), WHOLE("2.9999"), {"3", 0}, {"2e1", 1}, {"2.9999999999999999", 16});
    EXPECT("{\"type\": [\"number\", \"string\"], \"minLength\": 2, \"minimum\": 10}", WHOLE("\"1e\""),
           WHOLE("10.5"), WHOLE("\"ab\""), {"\"a\"", 2}, {"9 ", 1});
    // As pydantic writes `score: float = Field(ge=0, le=1)` and `price: confloat(gt=0)`.
    EXPECT("{\"type\": \"object\", \"properties\": {\"score\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1}, "
           "\"price\": {\"type\": \"number\", \"exclusiveMinimum\": 0}}, \"required\": [\"score\", \"price\"]}",
           WHOLE("{\"score\":0.5,\"price\":19.99}"), WHOLE("{\"score\":1,\"price\":0.01}"),
           WHOLE("{ \"score\" : 0 , \"price\" : 1 }"), {"{\"score\":1.5", 11}, {"{\"score\":0.5,\"price\":0}", 22},
           {"{\"score\":0.5,\"price\":-", 21});
}

// ---- bounded numbers against strtod, on random bounds ----

static uint64_t next_random(uint64_t *x) { // xorshift64*
    *x ^= *x >> 12, *x ^= *x << 25, *x ^= *x >> 27;
    return *x * 2685821657736338717ull;
}

// A bound: 0, a small whole number, or 1 to 17 random digits at a random scale.
static double random_bound(uint64_t *rng) {
    const uint64_t kind = next_random(rng) % 6;
    if (kind == 0) return 0;
    if (kind == 1) return (double)(int)(next_random(rng) % 2001) - 1000;
    char text[64];
    int len = snprintf(text, sizeof text, "%s", next_random(rng) % 2 ? "-" : "");
    const int digits = 1 + (int)(next_random(rng) % 17);
    for (int i = 0; i < digits; i++) text[len++] = (char)('0' + next_random(rng) % 10);
    snprintf(text + len, sizeof text - (size_t)len, "e%d", (int)(next_random(rng) % 37) - 20 - digits + 1);
    return strtod(text, NULL);
}

// The text of m * 10^-frac (negative: with a '-'), and how many digits it counts.
static int decimal_text(char *text, bool negative, uint64_t m, int frac) {
    uint64_t scale = 1;
    for (int i = 0; i < frac; i++) scale *= 10;
    const uint64_t whole = m / scale;
    int len = sprintf(text, "%s%llu", negative ? "-" : "", (unsigned long long)whole);
    if (frac) len += sprintf(text + len, ".%0*llu", frac, (unsigned long long)(m % scale));
    return (whole ? len - negative - (frac ? frac + 1 : 0) : 0) + frac;
}

// What jsonschema says of a text with at most 15 digits: float(text) against
// each bound (ends: minimum, exclusiveMinimum, maximum, exclusiveMaximum).
static bool within(const char *text, const bool *has, const double *x) {
    const double v = strtod(text, NULL);
    return (!has[0] || v >= x[0]) && (!has[1] || v > x[1]) && (!has[2] || v <= x[2]) && (!has[3] || v < x[3]);
}

// Whether some bytes from s end a number the schema takes (a few tries a byte:
// where no prefix is a dead end, the first byte that fits leads on).
static bool completes(const bn_json_state *s, int depth, int *budget) {
    if (bn_json_state_done(s)) return true;
    if (depth == 0 || --*budget < 0) return false;
    bn_json_state *next = malloc(sizeof *next);
    bool found = false;
    for (const char *c = "0123456789.-"; *c && !found; c++)
        found = bn_json_state_next(s, c, 1, next) && completes(next, depth - 1, budget);
    free(next);
    return found;
}

// Reads text against schema g (NULL: refused when compiled) a byte at a time
// (s, next: scratch); fails unless it is taken whole exactly when want is
// true, or where the bytes it took lead nowhere. Returns whether it was taken.
static bool check_number(const bn_json_schema *g, const char *schema, const char *text, bool want,
                         bn_json_state *s, bn_json_state *next) {
    size_t read = 0;
    if (g) {
        bn_json_state_init(s, g);
        for (; text[read] && bn_json_state_next(s, text + read, 1, next); read++) bn_json_state_copy(s, next);
        int budget = 1000;
        if (!completes(s, 20, &budget)) fail_msg("%s, text %s: a dead end after %zu bytes", schema, text, read);
    }
    const bool got = g && !text[read] && bn_json_state_done(s);
    if (got != want) fail_msg("%s, text %s: want %s, read %zu bytes", schema, text, want ? "taken" : "refused", read);
    return got;
}

// Random bounds, and texts of either sign at and next to them (the last digit
// one either way) with 0 to 16 digits after the '.': the automaton takes a
// text whole exactly where strtod and the 15-digit rule do, and leaves no dead
// end (every prefix it takes goes on to a number it takes). A schema it
// refuses leaves no text taken.
static void test_number_bounds_random(void **state) {
    (void)state;
    static const char *const ends[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    bn_json_state *s = malloc(sizeof *s), *next = malloc(sizeof *next);
    int schemas = 0, refused = 0, texts = 0, taken = 0;
    for (int round = 0; round < 2000; round++) {
        double lo = random_bound(&rng), hi = random_bound(&rng);
        if (lo > hi) {
            const double t = lo;
            lo = hi, hi = t;
        }
        if (next_random(&rng) % 3 == 0) hi = lo + fabs(lo) * pow(10, -(double)(next_random(&rng) % 17)); // narrow
        bool has[4] = {false};
        double x[4] = {0};
        const uint64_t which = 1 + next_random(&rng) % 3; // 1: a lower bound, 2: an upper one, 3: both
        if (which & 1) {
            const int i = (int)(next_random(&rng) % 2);
            has[i] = true, x[i] = lo;
        }
        if (which & 2) {
            const int i = 2 + (int)(next_random(&rng) % 2);
            has[i] = true, x[i] = hi;
        }
        char schema[256];
        int len = sprintf(schema, "{\"type\": \"number\"");
        for (int i = 0; i < 4; i++)
            if (has[i]) len += sprintf(schema + len, ", \"%s\": %.17g", ends[i], x[i]);
        sprintf(schema + len, "}");
        bn_json_schema *g = NULL;
        bn_error err;
        if (bn_json_schema_compile(schema, strlen(schema), &g, &err) && !strstr(err.msg, "leave"))
            fail_msg("%s: %s", schema, err.msg);
        schemas++, refused += !g;
        int budget = 1000;
        if (g) bn_json_state_init(s, g);
        if (g && !completes(s, 20, &budget)) fail_msg("%s: no number is taken", schema);
        for (int b = 0; b < 2; b++) {
            const double edge = fabs(b ? hi : lo);
            for (int frac = 0; frac <= 16 && floor(edge * pow(10, frac)) < 1e17; frac++) {
                const int64_t m = (int64_t)floor(edge * pow(10, frac));
                for (int64_t d = m ? -1 : 0; d <= 1; d++) {
                    for (int negative = 0; negative < 2; negative++) {
                        char text[64];
                        const int counted = decimal_text(text, negative, (uint64_t)(m + d), frac);
                        const bool want = counted <= 15 && within(text, has, x);
                        taken += check_number(g, schema, text, want, s, next);
                        texts++;
                    }
                }
            }
        }
        bn_json_schema_free(g);
    }
    free(s);
    free(next);
    fprintf(stderr, "%d schemas (%d refused), %d texts (%d taken) agree with strtod\n", schemas, refused, texts, taken);
}

// Formats: each field refused at its first digit that cannot begin it; the
// day by its month and year; a time's fraction and zone; no escapes.
static void test_formats(void **state) {
    (void)state;
    EXPECT("{\"type\": \"string\", \"format\": \"date\"}", WHOLE("\"2024-02-29\""), WHOLE("\"0001-12-31\""),
           WHOLE("\"2000-02-29\""), {"\"2023-02-29\"", 10}, {"\"1900-02-29\"", 10}, {"\"0000", 4},
           {"\"2024-13", 7}, {"\"2024-00", 7}, {"\"2024-2", 6}, {"\"2024-04-31\"", 10}, {"\"2024-04-4", 9},
           {"\"2024-01-00", 10}, {"\"2024-01-01T", 11}, {"\"2024\\u002d", 5}, {"\"2024-01-0\"", 10});
    EXPECT("{\"type\": \"string\", \"format\": \"time\"}", WHOLE("\"13:05:09Z\""), WHOLE("\"00:00:00.5+01:00\""),
           WHOLE("\"23:59:59.123456789-23:59\""), {"\"24", 2}, {"\"13:60", 4}, {"\"13:05:09\"", 9},
           {"\"13:05:09.Z", 10}, {"\"13:05:09z", 9}, {"\"13:05:09+24", 11}, {"\"13:05:09+01:00:", 15});
    EXPECT("{\"type\": \"string\", \"format\": \"date-time\"}", WHOLE("\"2024-02-29T13:05:09Z\""),
           WHOLE("\"1999-12-31T23:59:59.9+05:30\""), {"\"2024-02-29t", 11}, {"\"2024-02-29 ", 11},
           {"\"2024-02-29T13:05:09\"", 20});
    EXPECT("{\"type\": \"string\", \"format\": \"uuid\"}", WHOLE("\"123e4567-e89b-12d3-a456-426614174000\""),
           WHOLE("\"123E4567-E89B-12D3-A456-426614174000\""), {"\"123e4567e", 9}, {"\"123g", 4},
           {"\"123e4567-e89b-12d3-a456-42661417400\"", 36});
    // Where the value may be of another type, or the format is of no type it can be.
    EXPECT("{\"type\": [\"string\", \"null\"], \"format\": \"date\"}", WHOLE("null"), WHOLE("\"2024-01-01\""),
           {"\"x", 1});
    EXPECT("{\"type\": \"integer\", \"format\": \"date\"}", WHOLE("12"));
}

static void test_any_of_and_refs(void **state) {
    (void)state;
    // Two objects that differ only after their first key: both readings live until then.
    static const char u[] = "{\"anyOf\": [{\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"integer\"}}, "
                            "\"required\": [\"x\"]}, {\"type\": \"object\", \"properties\": {\"y\": {\"type\": "
                            "\"string\"}}, \"required\": [\"y\"]}, {\"type\": \"null\"}]}";
    EXPECT(u, WHOLE("{\"x\":1}"), WHOLE("{\"y\":\"s\"}"), WHOLE("null"), {"{\"x\":\"s\"", 5}, {"{\"z\"", 2},
           {"{}", 1});
    bn_json_schema *g = compile(u);
    bn_json_state *st = malloc(sizeof *st);
    bn_json_state_init(st, g);
    assert_true(bn_json_state_feed(st, "{", 1));
    assert_int_equal(st->n, 2);
    assert_true(bn_json_state_feed(st, "\"x", 2));
    assert_int_equal(st->n, 1);
    free(st);
    bn_json_schema_free(g);
    // A recursive tree, $defs and definitions, allOf of one, a resource of its own ($id).
    static const char tree[] = "{\"type\": \"object\", \"properties\": {\"v\": {\"type\": \"integer\"}, \"kids\": "
                               "{\"type\": \"array\", \"items\": {\"$ref\": \"#\"}}}, \"required\": [\"v\"]}";
    EXPECT(tree, WHOLE("{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[{\"v\":4}]}]}"), {"{\"v\":1,\"kids\":[{}", 16});
    static const char defs[] =
        "{\"$defs\": {\"P\": {\"type\": \"object\", \"properties\": {\"n\": {\"$ref\": \"#/definitions/N\"}}, "
        "\"required\": [\"n\"]}}, \"definitions\": {\"N\": {\"type\": \"string\"}}, \"type\": \"object\", "
        "\"properties\": {\"p\": {\"anyOf\": [{\"$ref\": \"#/$defs/P\"}, {\"type\": \"null\"}]}, \"q\": {\"allOf\": "
        "[{\"$ref\": \"#/$defs/P\"}]}, \"r\": {\"$id\": \"urn:inner\", \"$defs\": {\"P\": {\"type\": \"integer\"}}, "
        "\"$ref\": \"#/$defs/P\"}}}";
    EXPECT(defs, WHOLE("{\"p\":{\"n\":\"a\"},\"q\":{\"n\":\"b\"},\"r\":5}"), WHOLE("{\"p\":null}"),
           {"{\"r\":{", 5});
}

// An anyOf of objects told apart by their first property's const (OpenAI's tool
// calls) is read as one object: one reading however many alternatives, each
// alternative's own properties after its tag.
static void test_tagged_union(void **state) {
    (void)state;
    enum { N = 40 };
    char *schema = malloc(N * 200 + 100), *text = malloc(200);
    size_t len = (size_t)sprintf(schema, "{\"anyOf\": [");
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(schema + len, "%s{\"type\": \"object\", \"properties\": {\"name\": {\"const\": \"f%d\"}, "
                                             "\"arguments\": {\"type\": \"object\", \"properties\": {\"x%d\": "
                                             "{\"type\": \"integer\"}}, \"required\": [\"x%d\"]}}, \"required\": "
                                             "[\"name\", \"arguments\"]}", i ? ", " : "", i, i, i);
    sprintf(schema + len, "]}");
    bn_json_schema *g = compile(schema);
    bn_json_state *st = malloc(sizeof *st);
    for (int i = 0; i < N; i++) {
        bn_json_state_init(st, g);
        const int n = sprintf(text, "{\"name\":\"f%d\", \"arguments\": {\"x%d\": %d}}", i, i, i);
        for (int k = 0; k < n; k++) {
            assert_true(bn_json_state_feed(st, text + k, 1));
            assert_int_equal(st->n, 1);
        }
        assert_true(bn_json_state_complete(st));
        // Another alternative's property after this one's tag: refused.
        bn_json_state_init(st, g);
        sprintf(text, "{\"name\":\"f%d\",\"arguments\":{\"x%d\"", i, (i + 1) % N);
        assert_false(bn_json_state_feed(st, text, strlen(text)));
    }
    bn_json_state_init(st, g);
    assert_false(bn_json_state_feed(st, "{\"name\":\"f40\"", 15));
    free(st);
    bn_json_schema_free(g);
    // The same anyOf without the tags is more readings than the automaton keeps: refused when compiled.
    len = (size_t)sprintf(schema, "{\"anyOf\": [");
    for (int i = 0; i < 17; i++) len += (size_t)sprintf(schema + len, "%s{\"type\": \"array\", \"maxItems\": %d}", i ? ", " : "", i);
    sprintf(schema + len, "]}");
    bn_json_schema *none = (bn_json_schema *)1;
    bn_error err;
    assert_int_equal(bn_json_schema_compile(schema, strlen(schema), &none, &err), -1);
    assert_non_null(strstr(err.msg, "more than 16 alternatives"));
    free(schema);
    free(text);
}

// What review found, each kept: numbers in enum and const exactly (cJSON
// prints 15 digits where they round-trip only nearly), a value listed after a
// longer one it begins (12, 1), huge numbers without undefined casts, enum
// beside object keywords refused (the enum alone would let through what they
// forbid), schemas that would take exponential time or the whole stack.
static void test_review_cases(void **state) {
    (void)state;
    EXPECT("{\"const\": 0.30000000000000004}", WHOLE("0.30000000000000004"), {"0.3", 3});
    EXPECT("{\"const\": 1.0000000000000002}", WHOLE("1.0000000000000002"), {"1 ", 1});
    EXPECT("{\"enum\": [1.5, 9007199254740991, -0.0]}", WHOLE("1.5"), WHOLE("9007199254740991"), WHOLE("-0"));
    EXPECT("{\"enum\": [12, 1]}", WHOLE("1"), WHOLE("1 "), WHOLE("12"), {"13", 1});
    EXPECT("{\"type\": \"array\", \"items\": {\"enum\": [12, 1]}}", WHOLE("[1,12,1]"));
    EXPECT("{\"anyOf\": [{\"type\": \"object\", \"properties\": {\"k\": {\"const\": 12}, \"a\": {\"type\": \"string\"}}, "
           "\"required\": [\"k\"]}, {\"type\": \"object\", \"properties\": {\"k\": {\"const\": 1}, \"b\": {\"type\": \"null\"}}, "
           "\"required\": [\"k\"]}]}",
           WHOLE("{\"k\":1,\"b\":null}"), WHOLE("{\"k\":12,\"a\":\"\"}"), {"{\"k\":1,\"a\"", 8});
    EXPECT("{\"type\": \"array\", \"maxItems\": 1e30}", WHOLE("[1,2]"));
    // An escaped backslash before "u0000" is no NUL: such a schema stands.
    EXPECT("{\"description\": \"C:\\\\u0000\", \"type\": \"integer\"}", WHOLE("1"));
    static const struct {
        const char *schema, *says;
    } refused[] = {
        {"{\"enum\": [12345678901234567890]}", "'enum' has a number a double does not hold exactly"},
        {"{\"type\": \"integer\", \"const\": 1e300}", "'const' has a number a double does not hold exactly"},
        {"{\"const\": 9007199254740993}", "'const' has a number a double does not hold exactly"},
        {"{\"const\": \"a\\u0000b\"}", "\\u0000 escape"},
        {"{\"properties\": {\"k\\u0000\": {}}}", "\\u0000 escape"},
        {"{\"enum\": [[1, 2, 3]], \"maxItems\": 2}", "'maxItems' beside 'enum' or 'const'"},
        {"{\"const\": {\"b\": 1}, \"properties\": {\"a\": {}}}", "'properties' beside 'enum' or 'const'"},
        {"{\"enum\": [\"a\xff\"]}", "'enum' is not valid UTF-8"},
        {"{\"properties\": {\"a\": {}, \"a\": {\"type\": \"string\"}}}", "names a property twice"},
        {"{\"type\": \"string\"} trailing", "text follows it"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        bn_json_schema *g;
        bn_error err;
        assert_int_equal(bn_json_schema_compile(refused[i].schema, strlen(refused[i].schema), &g, &err), -1);
        if (!strstr(err.msg, refused[i].says)) fail_msg("%s: \"%s\", want \"%s\"", refused[i].schema, err.msg, refused[i].says);
    }
    // 65,537 enum values (in 400 KB, then in 131 KB); a diamond of 40 anyOfs (2^40 paths);
    // a chain of 300 $refs (12,000 overflowed the stack before there was a limit).
    enum { BIG = 65537, LEVELS = 40, LINKS = 300 };
    char *text = malloc((size_t)BIG * 12 + 64);
    size_t len = (size_t)sprintf(text, "{\"enum\": [");
    for (int i = 0; i < BIG; i++) len += (size_t)sprintf(text + len, "%s%d", i ? "," : "", i);
    sprintf(text + len, "]}");
    bn_json_schema *g;
    bn_error err;
    assert_int_equal(bn_json_schema_compile(text, strlen(text), &g, &err), -1);
    assert_non_null(strstr(err.msg, "larger than 256 KiB")); // 65537 values take 400 KB
    len = (size_t)sprintf(text, "{\"enum\": [");
    for (int i = 0; i < BIG; i++) len += (size_t)sprintf(text + len, "%s%d", i ? "," : "", i % 10);
    sprintf(text + len, "]}");
    assert_int_equal(bn_json_schema_compile(text, strlen(text), &g, &err), -1);
    assert_non_null(strstr(err.msg, "more than 65535 values"));
    len = (size_t)sprintf(text, "{\"$defs\": {");
    for (int i = 0; i < LEVELS; i++)
        len += (size_t)sprintf(text + len, "\"a%d\": {\"anyOf\": [{\"$ref\": \"#/$defs/a%d\"}, {\"$ref\": \"#/$defs/a%d\"}]}, ",
                               i, i + 1, i + 1);
    sprintf(text + len, "\"a%d\": {\"type\": \"integer\"}}, \"$ref\": \"#/$defs/a0\"}", LEVELS);
    g = compile(text);
    bool done;
    assert_int_equal(accepted(g, "7", 1, &done), 1);
    assert_true(done);
    bn_json_schema_free(g);
    free(text);
    text = malloc((size_t)LINKS * 48 + 64);
    len = (size_t)sprintf(text, "{\"$defs\": {");
    for (int i = 0; i < LINKS; i++) len += (size_t)sprintf(text + len, "\"a%d\": {\"$ref\": \"#/$defs/a%d\"}, ", i, i + 1);
    sprintf(text + len, "\"a%d\": {}}, \"$ref\": \"#/$defs/a0\"}", LINKS);
    assert_int_equal(bn_json_schema_compile(text, strlen(text), &g, &err), -1);
    assert_non_null(strstr(err.msg, "nests deeper than 256"));
    free(text);
}

static void test_blanks_and_end(void **state) {
    (void)state;
    char many[40];
    snprintf(many, sizeof many, "[%17s1]", "");
    EXPECT("{\"type\": \"array\"}", WHOLE("[                1]"), {many, 17});
    // A top-level number may end with the text, or go on; an object is complete at its '}'.
    bn_json_schema *g = compile("{\"type\": \"integer\"}");
    bn_json_state *st = malloc(sizeof *st);
    bn_json_state_init(st, g);
    assert_false(bn_json_state_done(st));
    assert_true(bn_json_state_feed(st, "12", 2));
    assert_true(bn_json_state_done(st));
    assert_false(bn_json_state_complete(st));
    assert_true(bn_json_state_feed(st, " ", 1));
    assert_true(bn_json_state_complete(st));
    assert_false(bn_json_state_feed(st, "3", 1));
    bn_json_schema_free(g);
    g = compile("{\"type\": \"object\", \"properties\": {\"s\": {\"type\": \"string\"}, \"m\": {\"type\": "
                "\"string\", \"maxLength\": 3}, \"d\": {\"type\": \"string\", \"format\": \"date\"}}}");
    bn_json_state_init(st, g);
    assert_true(bn_json_state_feed(st, "{\"s\":\"a", 7));
    assert_int_equal(bn_json_state_string_room(st), UINT32_MAX); // any plain token fits
    assert_true(bn_json_state_feed(st, "\"", 1));
    assert_int_equal(bn_json_state_string_room(st), 0);
    bn_json_state *at = malloc(sizeof *at);
    assert_true(bn_json_state_next(st, ",\"m\":\"\xc3\xa9", 8, at)); // 1 of 3 characters
    assert_int_equal(bn_json_state_string_room(at), 2);
    assert_true(bn_json_state_next(st, ",\"d\":\"2", 7, at)); // a format: no plain token goes
    assert_int_equal(bn_json_state_string_room(at), 0);
    free(at);
    assert_false(bn_json_state_done(st));
    assert_true(bn_json_state_feed(st, "}", 1));
    assert_true(bn_json_state_complete(st));
    bn_json_schema_free(g);
    free(st);
}

// pattern: matched anywhere in the string unless anchored (JSON Schema's
// rule), a character at a time in whatever bytes and escapes write it, refused
// at the first byte no matching string goes on with, and at a closing quote
// before the string matches.
static void test_patterns(void **state) {
    (void)state;
    EXPECT("{\"type\": \"string\", \"pattern\": \"^[A-Z]{2}-\\\\d{3}$\"}", WHOLE("\"AB-123\""),
           {"\"Z\\u005a", 2}, {"\"ab", 1}, {"\"AB-12\"", 6}, {"\"AB-1234", 7}, {"\"AB-123\\n", 7});
    // A backslash only where some escaped character may come: none of the eight
    // may follow a lower-case letter here, so the text cannot begin an escape.
    EXPECT("{\"type\": \"string\", \"pattern\": \"^[a-z]+$\"}", WHOLE("\"ab\""), {"\"ab\\", 3});
    EXPECT("{\"type\": \"string\", \"pattern\": \"^[a-z]+\\\\n?$\"}", WHOLE("\"ab\\n\""), {"\"ab\\t", 4});
    // A character JSON writes only as a \\u escape is none a string here holds.
    EXPECT("{\"type\": \"string\", \"pattern\": \"^a\\\\x01?$\"}", WHOLE("\"a\""), {"\"a\\", 2});
    EXPECT("{\"type\": \"string\", \"pattern\": \"cat|dog\"}", WHOLE("\"a cat\""), WHOLE("\"hotdogs\""),
           WHOLE("\"cat\\n\\\"x\""), {"\"a cow\"", 6}, {"\"\"", 1});
    // Escapes stand for their characters; a \u escape is refused (json_schema.h).
    EXPECT("{\"type\": \"string\", \"pattern\": \"^a\\\\n\\\"/\\\\\\\\$\"}", WHOLE("\"a\\n\\\"\\/\\\\\""),
           WHOLE("\"a\\n\\\"/\\\\\""), {"\"a\\t", 3}, {"\"a\\u000a", 3});
    // Beside a length: no string is begun that both together leave no way to finish.
    EXPECT("{\"type\": \"string\", \"pattern\": \"^(ab)+$\", \"maxLength\": 5}", WHOLE("\"abab\""), WHOLE("\"ab\""),
           {"\"ababa", 5}, {"\"aba\"", 4});
    EXPECT("{\"type\": \"string\", \"pattern\": \"^.+@.+\\\\..+$\", \"maxLength\": 5}", WHOLE("\"a@b.c\""),
           {"\"ab", 2}, {"\"a@bc", 4});
    EXPECT("{\"type\": \"string\", \"pattern\": \"^[a-z]+\\\\n?$\", \"minLength\": 3, \"maxLength\": 3}",
           WHOLE("\"abc\""), WHOLE("\"ab\\n\""), {"\"a\\", 2}, {"\"ab\"", 3}, {"\"abcd", 4});
    EXPECT("{\"type\": \"string\", \"pattern\": \"^é+x?$\", \"minLength\": 2}", WHOLE("\"éé\""), WHOLE("\"éx\""),
           WHOLE("\"ééééx\""), {"\"x", 1}, {"\"é\"", 3});
    // Non-ASCII characters, byte by byte; "." is one character, not one byte.
    EXPECT("{\"type\": \"string\", \"pattern\": \"^.é.$\"}", WHOLE("\"xéy\""), WHOLE("\"😀é€\""),
           {"\"xey", 2}, {"\"xé\"", 4});
    // Inside objects and arrays, and in an anyOf beside other readings.
    EXPECT("{\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"string\", \"pattern\": \"^u[0-9]+$\"}},"
           " \"required\": [\"id\"]}", WHOLE("{\"id\": \"u42\"}"), {"{\"id\": \"x", 8}, {"{\"id\": \"u\"", 9});
    EXPECT("{\"type\": \"array\", \"items\": {\"anyOf\": [{\"type\": \"string\", \"pattern\": \"^x\"},"
           " {\"type\": \"string\", \"pattern\": \"y$\"}]}}", WHOLE("[\"xa\", \"ay\", \"xy\"]"), {"[\"ab\"", 4});
}

// A schema's patterns, and the lengths beside them, draw on one budget: 200
// strings of up to 262,143 characters, each table within its own limit, are
// refused together (a hostile schema, quickly), where 20 of them fit.
static void test_pattern_budget(void **state) {
    (void)state;
    for (int n = 20; n <= 200; n += 180) {
        bn_buf text = {0};
        bn_buf_printf(&text, "{\"type\": \"object\", \"properties\": {");
        for (int i = 0; i < n; i++)
            bn_buf_printf(&text, "%s\"p%d\": {\"type\": \"string\", \"pattern\": \"^a*$\", \"maxLength\": 262143}",
                          i ? ", " : "", i);
        bn_buf_printf(&text, "}}");
        bn_json_schema *g = NULL;
        bn_error err;
        const int rc = bn_json_schema_compile(text.data, text.len, &g, &err);
        if (n == 20 && rc) fail_msg("%s", err.msg);
        if (n == 200 && (rc != -1 || !strstr(err.msg, "too costly to follow"))) fail_msg("200 strings: %d %s", rc, err.msg);
        bn_json_schema_free(g);
        free(text.data);
    }
}

// What cannot be followed is refused when compiled, naming the keyword and where.
static void test_refused_schemas(void **state) {
    (void)state;
    static const struct {
        const char *schema, *says;
    } cases[] = {
        {"{\"type\": \"integer\", \"multipleOf\": 3}", "at the top: 'multipleOf' is not supported"},
        {"{\"type\": \"string\", \"pattern\": \"a(?=b)\"}", "at the top: 'pattern' cannot be followed: "},
        {"{\"properties\": {\"p\": {\"type\": \"string\", \"pattern\": \"(a\"}}}",
         "at /properties/p: 'pattern' cannot be followed: "},
        {"{\"type\": \"string\", \"pattern\": 5}", "'pattern' must be a string"},
        {"{\"type\": \"string\", \"pattern\": \"^a\", \"format\": \"date\"}", "'pattern' beside 'format'"},
        // No string of these lengths matches.
        {"{\"type\": \"string\", \"pattern\": \"^\\\\d{5}$\", \"maxLength\": 4}", "'pattern' and the length beside it leave no string"},
        {"{\"type\": \"string\", \"pattern\": \"^a?$\", \"minLength\": 2}", "'pattern' and the length beside it leave no string"},
        {"{\"type\": \"string\", \"pattern\": \"^[a-z]{1,20}$\", \"maxLength\": 20000}",
         "'pattern' with a length of up to 20000 characters is too large"},
        {"{\"type\": \"string\", \"pattern\": \"^\\\\x01$\"}", "'pattern' cannot be followed: no string matches"},
        {"{\"enum\": [\"a\"], \"pattern\": \"a\"}", "'pattern' beside 'enum' or 'const'"},
        {"{\"properties\": {\"when\": {\"type\": \"string\", \"format\": \"email\"}}}",
         "at /properties/when: 'format' is not supported for \"email\" (date, time, date-time and uuid are)"},

        {"{\"type\": \"string\", \"format\": \"date\", \"maxLength\": 10}", "'format' beside minLength"},
        {"{\"type\": \"strange\"}", "'type' must name JSON types"},
        {"{\"type\": [\"string\", 3]}", "'type' must name JSON types"},
        {"{\"$ref\": \"#/$defs/missing\"}", "'$ref' must be"},
        {"{\"$ref\": \"http://example.com/s.json\"}", "'$ref' must be"},
        {"{\"anyOf\": []}", "'anyOf' must be a non-empty array"},
        {"{\"allOf\": [{}, {}]}", "'allOf' is supported with one schema only"},
        {"{\"type\": \"object\", \"anyOf\": [{}]}", "'anyOf' beside other constraints"},
        {"{\"properties\": {\"a\": {}}, \"required\": [\"b\"]}", "'required' names a property"},
        {"{\"type\": \"array\", \"items\": [{}]}", "'items' as an array"},
        {"{\"type\": \"array\", \"minItems\": 3, \"maxItems\": 2}", "'minItems' is more than maxItems"},
        {"{\"type\": \"array\", \"minItems\": -1}", "'minItems' must be a whole number"},
        {"{\"type\": \"string\", \"enum\": [1, 2]}", "no value of 'enum' or 'const'"},
        {"{\"$defs\": {\"A\": {\"$ref\": \"#/$defs/A\"}}, \"$ref\": \"#/$defs/A\"}", "leads back to itself"},
        {"{\"anyOf\": [{\"$ref\": \"#\"}, {\"type\": \"null\"}]}", "leads back to itself"},
        {"false", "a schema must be an object or true"},
        {"{\"type\": ", "not valid JSON"},
        {"{\"type\": \"number\", \"minimum\": 1, \"maximum\": 0.5}",
         "'minimum' and 'maximum' leave no number between them"},
        // Numbers between them, but none of 15 digits (in 1..10, a step of 10^-14).
        {"{\"type\": \"number\", \"minimum\": 1.000000000000011, \"maximum\": 1.000000000000019}",
         "'minimum' and 'maximum' leave no number between them (of at most 15 digits"},
        {"{\"type\": \"number\", \"minimum\": 1e300}", "'minimum' leaves no number of at most 15 digits"},
        {"{\"exclusiveMaximum\": -1e15}", "'exclusiveMaximum' leaves no number"},
        {"{\"type\": \"number\", \"minimum\": \"0\"}", "'minimum' must be a number"},
        {"{\"type\": \"number\", \"exclusiveMinimum\": true}", "'exclusiveMinimum' must be a number"},
        {"{\"type\": \"number\", \"maximum\": 1e400}", "'maximum' must be a finite number"},
        {"{\"type\": \"integer\", \"maximum\": 1e300}", "'maximum' must be within"},
        {"{\"type\": \"integer\", \"minimum\": \"1\"}", "'minimum' must be a number"},
        {"{\"type\": \"integer\", \"minimum\": 5, \"exclusiveMaximum\": 5}",
         "'minimum' and 'exclusiveMaximum' leave no integer between them"},
        {"{\"type\": \"integer\", \"exclusiveMaximum\": -9007199254740991}",
         "'exclusiveMaximum' leaves no integer within -(2^53 - 1) .. 2^53 - 1"},
        {"{\"type\": \"string\", \"format\": true}", "'format' is not supported for a value that is not a string"},
        {"{\"type\": \"string\", \"minLength\": 3, \"maxLength\": 2}", "'minLength' is more than maxLength"},
        {"{\"type\": \"string\", \"maxLength\": 1.5}", "'maxLength' must be a whole number"},
        {"{\"type\": \"string\", \"minLength\": 70000}", "'minLength' is too large"},
        {"{\"enum\": [\"a\"], \"maxLength\": 3}", "'maxLength' beside 'enum' or 'const'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bn_json_schema *g = (bn_json_schema *)1;
        bn_error err = {0};
        assert_int_equal(bn_json_schema_compile(cases[i].schema, strlen(cases[i].schema), &g, &err), -1);
        assert_null(g);
        if (!strstr(err.msg, cases[i].says)) fail_msg("%s: \"%s\", want \"%s\"", cases[i].schema, err.msg, cases[i].says);
    }
    // Annotations change nothing.
    EXPECT("{\"title\": \"T\", \"description\": \"d\", \"default\": 1, \"examples\": [2], \"$schema\": "
           "\"https://json-schema.org/draft/2020-12/schema\", \"type\": \"integer\"}", WHOLE("3"));
}

// ---- the jsonschema package (tests/json_schema_reference.py writes the cases) ----

static void test_python_reference(void **state) {
    (void)state;
    bn_reference ref;
    bn_reference_open(&ref, "BITNET_JSON_SCHEMA_REFERENCE", "json_schema_reference.py", 16384);
    char *schema = malloc(ref.max + 1);
    bn_json_schema *g = NULL;
    int schemas = 0, valid = 0, invalid = 0;
    while (bn_reference_next(&ref)) {
        if (ref.kind == 'S') {
            bn_json_schema_free(g);
            memcpy(schema, ref.bytes, ref.n + 1);
            g = compile(schema);
            schemas++;
            continue;
        }
        assert_true(g && (ref.kind == '0' || ref.kind == '1'));
        bool done;
        const size_t read = accepted(g, ref.bytes, ref.n, &done);
        const bool want = ref.kind == '1', got = read == ref.n && done;
        if (got != want)
            fail_msg("schema %s, text \"%.*s\": jsonschema %s, the automaton read %zu of %zu bytes, done %d", schema,
                     (int)ref.n, ref.bytes, want ? "takes it (written in the one way)" : "refuses it", read, ref.n,
                     done);
        valid += want, invalid += !want;
    }
    bn_reference_close(&ref);
    bn_json_schema_free(g);
    free(schema);
    assert_true(schemas >= 20 && valid >= 2000 && invalid >= 2000);
    fprintf(stderr, "%d schemas: %d valid and %d invalid texts agree with jsonschema\n", schemas, valid, invalid);
}

int main(int argc, char **argv) {
    const struct CMUnitTest python[] = {cmocka_unit_test(test_python_reference)};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),         cmocka_unit_test(test_enum_const),
        cmocka_unit_test(test_objects),         cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_any_of_and_refs), cmocka_unit_test(test_tagged_union),
        cmocka_unit_test(test_review_cases),    cmocka_unit_test(test_blanks_and_end),
        cmocka_unit_test(test_refused_schemas),
        cmocka_unit_test(test_bounds),          cmocka_unit_test(test_number_bounds),
        cmocka_unit_test(test_number_bounds_random),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_patterns),        cmocka_unit_test(test_pattern_budget),
    };
    if (argc > 1 && !strcmp(argv[1], "python")) return cmocka_run_group_tests(python, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
