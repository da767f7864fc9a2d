// json_prefix.h - whether bytes can still begin a JSON text (RFC 8259), read a
// byte at a time: the constraint behind a batch request's json_object (OpenAI's
// response_format {"type": "json_object"}), which masks every token whose bytes
// would leave no way to finish the text as JSON.
//
// The state is a small plain struct, copied to try a token and kept if it
// fits. Strings must be UTF-8 (a character may be split over tokens), control
// characters in them escaped; numbers, true/false/null and nesting as the RFC
// says, up to BN_JSON_MAX_DEPTH open containers. Whitespace between tokens is
// allowed in runs of at most BN_JSON_MAX_SPACE bytes with at most one newline
// among them (enough for compact and spaced JSON, and indentation of up to 15
// blanks), so that a model cannot spend its tokens on blanks (after the
// top-level value, too).
#ifndef BN_JSON_PREFIX_H
#define BN_JSON_PREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_JSON_MAX_DEPTH 64
#define BN_JSON_MAX_SPACE 16

// JSON's four whitespace bytes.
static inline bool bn_json_is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Counts blank c into *run, the blanks in a row between tokens (bits 0-6; bit
// 7: a newline among them). False past BN_JSON_MAX_SPACE or a second newline.
static inline bool bn_json_blank(uint8_t *run, char c) {
    if (c == '\n') {
        if (*run & 0x80) return false;
        *run |= 0x80;
    }
    return (++*run & 0x7f) <= BN_JSON_MAX_SPACE;
}

typedef struct bn_json_prefix {
    uint64_t objects; // bit d: the container at depth d+1 is an object (else an array)
    uint8_t depth;    // containers open
    uint8_t state;    // what may come next (json_prefix.c)
    uint8_t left;     // a literal's bytes matched, \u hex digits or UTF-8 continuation bytes to come
    uint8_t literal;  // true, false or null; in a string, a UTF-8 lead byte whose next byte is to come
    uint8_t space;    // whitespace bytes in a row (bn_json_blank)
    bool key;         // the string being read is an object's key
    bool object_only; // the top-level value must be an object
} bn_json_prefix;

// An empty text; object_only: its value must be an object (json_object).
void bn_json_prefix_init(bn_json_prefix *s, bool object_only);
// Reads n bytes. Returns false (s is then undefined) when no JSON text begins
// with what has been read.
bool bn_json_prefix_feed(bn_json_prefix *s, const char *bytes, size_t n);
// Whether what has been read is a whole JSON text (a top-level number counts
// once something could end it: it is whole at the end of the text too).
bool bn_json_prefix_done(const bn_json_prefix *s);
// Whether the value is whole and closed: only blanks may follow (a top-level
// number is done but not complete: more digits may follow).
bool bn_json_prefix_complete(const bn_json_prefix *s);
// Whether a token of these bytes goes anywhere a string's characters go: no
// quote, backslash or control character, whole UTF-8 characters (a fast path
// for masking: such a token fits wherever the text is inside a string).
bool bn_json_plain_string_bytes(const char *bytes, size_t n);
// Whether a JSON text (len bytes) has the escape \u0000 in it. cJSON's strings
// end at a NUL, so a name or value with one would be read cut short: the JSON
// Schema compiler and the server refuse such a text rather than act on the cut one.
bool bn_json_has_nul_escape(const char *text, size_t len);
// Whether the text is inside a string, between characters (where a plain token fits).
bool bn_json_prefix_in_string(const bn_json_prefix *s);
// Whether it is inside a string anywhere: between characters, in an escape or
// in a UTF-8 character.
bool bn_json_prefix_in_text(const bn_json_prefix *s);
// Whether the next byte is an escape's letter (the one after a '\' in a string).
bool bn_json_prefix_in_escape(const bn_json_prefix *s);
// In a \uXXXX escape, the hex digits still to come (0: not in one).
int bn_json_prefix_hex_left(const bn_json_prefix *s);
// s with the fields its state does not read cleared (left over from a literal,
// a key, a closed container), so that two states that go on alike compare
// alike (a mask cache's key: json_schema.h).
bn_json_prefix bn_json_prefix_canonical(const bn_json_prefix *s);

#endif
