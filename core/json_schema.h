// json_schema.h - whether bytes can still begin a JSON text whose value a JSON
// Schema accepts, read a byte at a time: the constraint behind a batch
// request's json_schema (OpenAI's response_format {"type": "json_schema"}) and
// json_object (the schema {"type": "object"}). json_mask.h masks every token
// whose bytes would leave no way to finish such a text.
//
// The texts accepted are those the schema accepts, written in one way where
// the schema names the bytes (so that the model cannot wander):
// - an object with "properties" has only those keys, each at most once and in
//   the order "properties" lists them, the "required" ones always; an object
//   without "properties" has any keys, with values of "additionalProperties"
//   (a schema; false: none; true or absent: any value);
// - "enum" and "const" values, and property names, are written as compact
//   JSON (cJSON's print: no blanks), each number as the first of 15, 16 or 17
//   significant digits that reads back as the same double (a whole number
//   from 2^53 on, which a double does not hold exactly, is refused);
// - an "integer" has neither a fraction nor an exponent; a number that may
//   have a fraction, with a bound (minimum, ...), has no exponent and at most
//   15 digits, a leading "0" before the '.' not counted ("0.000123" has 6,
//   "100.5" 4), so that it compares with the bounds exactly as its double does;
// - blanks between tokens as bn_json_prefix allows them (runs of at most
//   BN_JSON_MAX_SPACE with at most one newline), strings as UTF-8;
// - a string with minLength or maxLength (counted in Unicode characters) has no
//   \u escape of U+D000..U+DFFF (surrogates among them): such characters are
//   written as UTF-8;
// - a string with a "pattern" has no \u escape (its characters are written as
//   UTF-8, or with the escapes \" \\ \/ \b \f \n \r \t);
// - a string with a "format" is written as RFC 3339 says (date: 2024-02-29;
//   time: 13:05:09, an optional fraction, then Z or an offset like +01:00;
//   date-time: the two joined by T, upper case) or, for a uuid, as 8-4-4-4-12
//   hex digits, with no escapes; a date is a day of the calendar (a year from
//   0001, a day of its month, February 29 in leap years only), times without
//   leap seconds.
// Keywords: type (a name or a list), enum, const, properties, required,
// additionalProperties, items (a schema), minItems, maxItems, minLength,
// maxLength, minimum, maximum, exclusiveMinimum, exclusiveMaximum (of an
// integer, the type "integer" without "number": bounds within 2^53 - 1, and an
// integer with any bound is itself held within -(2^53 - 1) .. 2^53 - 1; of a
// number that may have a fraction: any finite bounds, held exactly as Python's
// jsonschema holds float(text) to them, with the 15 digits above),
// format (date, time, date-time and uuid, held as OpenAI's structured outputs
// hold them, where JSON Schema by default only notes them; not beside
// minLength or maxLength), pattern (a regular expression json_regex.h can
// follow, matched anywhere in the string unless anchored, as JSON Schema says;
// beside minLength and maxLength too, where no string is begun that both
// together leave no way to finish (json_regex.h: bn_regex_lengths, up to
// BN_REGEX_MAX_PAIRS pairs of a state and a length); not beside format),
// anyOf, oneOf (as anyOf: a value both alternatives accept is not refused),
// allOf of one schema, $ref to "#", "#/$defs/NAME" or "#/definitions/NAME"
// (against the nearest enclosing "$id", as JSON Schema resolves them), and
// annotations (title, description, default, examples, ...), which change
// nothing. Any other keyword (multipleOf, ...), format or pattern is refused when
// the schema is compiled, with its place in the schema, rather than silently
// broken; so is "enum" or "const" beside other keywords that shape the value,
// bounds that leave no value (on a number: none of 15 digits), a property
// named twice, a name or value that is not UTF-8 or holds a NUL (\u0000), and
// a false subschema. Where "type" is absent, object keywords make the value an
// object and array keywords an array (JSON Schema would let other types
// through). Limits: 256 KiB of schema text, BN_JSON_BUDGET for all of its
// patterns' automata, 4096
// properties an object (and names in "required"), 4096 schemas an anyOf, 65535
// enum values, 256 schemas deep counting $refs followed, 65535 items in an array
// with maxItems (more when it has none) and a minItems or minLength below that.
//
// A value the schema leaves free (true, {}, an object's values without a
// schema) is read by a bn_json_prefix. anyOf is followed by keeping every
// alternative that still fits (a "reading" each, up to BN_JSON_SCHEMA_THREADS;
// an anyOf of more alternatives is refused when compiled, and where nested
// anyOfs multiply past that the later readings are dropped, so a text can then
// be refused that the schema accepts, never the reverse). An anyOf of objects
// that all begin with the same required property, whose value is a const
// different in each (a tagged union, as OpenAI's tool calls are), is read as
// one object whose tag picks the alternative: one reading, however many
// alternatives. Schema nesting goes BN_JSON_SCHEMA_DEPTH deep, a free value's
// own nesting BN_JSON_MAX_DEPTH.
#ifndef BN_JSON_SCHEMA_H
#define BN_JSON_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "json_prefix.h"
#include "json_regex.h"

#define BN_JSON_SCHEMA_DEPTH 32
#define BN_JSON_SCHEMA_THREADS 16

typedef struct bn_json_schema bn_json_schema; // compiled; read-only, so shareable

// Compiles the JSON Schema in text (len bytes). On error *out is NULL and err
// says what and where ("at /properties/name: 'pattern' is not supported").
int bn_json_schema_compile(const char *text, size_t len, bn_json_schema **out, bn_error *err);
// What building the automata of patterns (json_regex.h) may take: of one
// schema, or of several compilations that together may cost what one may
// (OpenAI's tools: each function's arguments).
typedef struct bn_json_budget {
    uint64_t work;   // steps (json_regex.h), of the automata and of the lengths beside them
    uint32_t states; // automaton states, which hold memory as long as the schema
} bn_json_budget;
#define BN_JSON_BUDGET ((bn_json_budget){2 * (uint64_t)BN_REGEX_MAX_WORK, 8 * BN_REGEX_MAX_DFA})
// bn_json_schema_compile, its patterns drawing on *budget (what they took comes
// off it; one past it is refused as too complex).
int bn_json_schema_compile_within(const char *text, size_t len, bn_json_budget *budget, bn_json_schema **out,
                                  bn_error *err);
// An error message of bn_json_schema_compile without its "json_schema: " (for
// callers that name the schema themselves).
const char *bn_json_schema_reason(const char *msg);
void bn_json_schema_free(bn_json_schema *g);
// v as compact JSON (malloc'd; NULL when out of memory or v holds a number past
// 1e308) with each number written exactly: the shortest of 15, 16 or 17 digits
// that reads back as the same double. cJSON's own print writes 15 digits of a
// number that reads back only nearly (a maximum of 99.99999999999999 as 100),
// which would change a schema printed to be compiled.
struct cJSON;
char *bn_json_print_exact(const struct cJSON *v);

// Where one reading of the text stands: a stack of the schema's values open.
typedef struct bn_json_frame {
    uint16_t node;   // the schema node (json_schema.c)
    uint8_t phase;   // where in its value
    uint8_t unused;  // zero (frames compare as bytes)
    uint16_t index;  // an object: its first property that may still come; an array: items so
                     // far, counted only as far as minItems/maxItems tell them apart
    uint16_t cand;   // an enum value or property name being matched, or the property being read
    uint16_t offset; // bytes of it matched
} bn_json_frame;

typedef struct bn_json_thread {
    uint8_t depth;      // frames open (0: the value is whole)
    uint8_t space;      // blanks in a row (bn_json_blank)
    bn_json_prefix lex; // the string, number, literal or free value being read
    uint64_t value;     // what lex has read of a counted value (json_schema.c: count_byte):
                        // a sized string's characters, a bounded integer's magnitude and
                        // sign, a bounded number's (bit 0 a '-', 1 a digit, 2 the '.',
                        // 3-6 the digits counted, 7-10 those after the '.', from 11 the
                        // digits as one whole number: json_schema.c, decimal), a
                        // formatted string's place in its template with the field's
                        // digits, year and month, a patterned string's state in its
                        // pattern's automaton (json_regex.h) in the high 32 bits, its
                        // characters counted in the low ones (0 for other values)
    bn_json_frame frame[BN_JSON_SCHEMA_DEPTH];
} bn_json_thread;

typedef struct bn_json_state {
    const bn_json_schema *schema;
    int n; // readings still alive (0: no text begins so)
    bn_json_thread thread[BN_JSON_SCHEMA_THREADS];
} bn_json_state;

// An empty text (the schema must outlive the state).
void bn_json_state_init(bn_json_state *s, const bn_json_schema *g);
void bn_json_state_copy(bn_json_state *to, const bn_json_state *from);
// to = from after n bytes (to may not be from). Returns whether some text the
// schema accepts begins with them.
bool bn_json_state_next(const bn_json_state *from, const char *bytes, size_t n, bn_json_state *to);
// Whether they fit, that is bn_json_state_next's answer, with scratch (not s)
// for a state it may need (a mask's trial: mostly no state is made).
bool bn_json_state_fits(const bn_json_state *s, const char *bytes, size_t n, bn_json_state *scratch);
// The same in place; s is then undefined when it returns false.
bool bn_json_state_feed(bn_json_state *s, const char *bytes, size_t n);
// Whether the text may end here (a top-level number may also go on).
bool bn_json_state_done(const bn_json_state *s);
// Whether the value is whole and closed: nothing but blanks may follow.
bool bn_json_state_complete(const bn_json_state *s);
// A canonical image of s, into key; returns its length. States of equal keys
// take the same runs of up to `horizon` bytes (their readings are alike, in
// the same order, but for a sized string's count where no such run can tell
// the counts apart: the mask of a token as long as the longest one is the
// same); the key names the compilation of the schema, not its address, so it
// never matches a state of another schema (json_mask.c caches token masks by it).
#define BN_JSON_STATE_KEY_MAX \
    (8 + 1 + BN_JSON_SCHEMA_THREADS * (2 + BN_JSON_SCHEMA_DEPTH * sizeof(bn_json_frame) + 8 + 7 + 8))
size_t bn_json_state_key(const bn_json_state *s, uint32_t horizon, uint8_t key[BN_JSON_STATE_KEY_MAX]);
// Where every reading is inside a string between characters, without a
// format: how many characters a plain token (bn_json_plain_string_bytes) may
// have and fit some reading (UINT32_MAX in a free string; a maxLength leaves
// fewer). 0 elsewhere.
uint32_t bn_json_state_string_room(const bn_json_state *s);

#endif
