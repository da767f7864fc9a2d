// json_prefix.c - bn_json_prefix (json_prefix.h): a pushdown automaton over
// bytes, one state for each place in RFC 8259's grammar a text can stop at.
#include "json_prefix.h"

#include <string.h>

#include "bitnet.h" // bn_utf8_char_len

enum {
    VALUE,       // a value must come (the top level's, after ':' or an array's ',')
    ARRAY_FIRST, // a value or ']' (just after '[')
    OBJECT_FIRST, // a key or '}' (just after '{')
    KEY,         // a key must come (after an object's ',')
    COLON,       // ':' after a key
    AFTER,       // ',' or the container's closer
    DONE,        // the top-level value is whole
    STRING,      // inside a string (key or value)
    ESCAPE,      // after '\' in a string
    UNICODE,     // in \uXXXX, `left` hex digits to come
    NUM_MINUS,   // '-': a digit must come
    NUM_ZERO,    // a leading 0: '.', 'e' or the end
    NUM_INT,     // integer digits
    NUM_DOT,     // '.': a digit must come
    NUM_FRAC,    // fraction digits
    NUM_E,       // 'e': a sign or a digit must come
    NUM_E_SIGN,  // its sign: a digit must come
    NUM_EXP,     // exponent digits
    LITERAL,     // in true / false / null, `left` bytes matched
};

static const char *const literals[] = {"true", "false", "null"};

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static bool in_object(const bn_json_prefix *s) { return s->objects >> (s->depth - 1) & 1; }

void bn_json_prefix_init(bn_json_prefix *s, bool object_only) {
    *s = (bn_json_prefix){.state = VALUE, .object_only = object_only};
}

// A value has ended: the top level is whole, or its container goes on.
static void value_done(bn_json_prefix *s) { s->state = s->depth ? AFTER : DONE; }

static bool open_container(bn_json_prefix *s, bool object) {
    if (s->depth == BN_JSON_MAX_DEPTH) return false;
    s->objects = (s->objects & ~(1ull << s->depth)) | (uint64_t)object << s->depth;
    s->depth++;
    s->state = object ? OBJECT_FIRST : ARRAY_FIRST;
    return true;
}

static bool close_container(bn_json_prefix *s) {
    s->depth--;
    value_done(s);
    return true;
}

static bool begin_value(bn_json_prefix *s, char c) {
    if (s->object_only && s->depth == 0 && c != '{') return false;
    switch (c) {
    case '{': return open_container(s, true);
    case '[': return open_container(s, false);
    case '"': s->state = STRING, s->key = false, s->left = 0; return true;
    case '-': s->state = NUM_MINUS; return true;
    case '0': s->state = NUM_ZERO; return true;
    case 't': case 'f': case 'n':
        s->state = LITERAL, s->literal = c == 't' ? 0 : c == 'f' ? 1 : 2, s->left = 1;
        return true;
    default:
        if (c >= '1' && c <= '9') return s->state = NUM_INT, true;
        return false;
    }
}

static bool feed_byte(bn_json_prefix *s, char c);

// A number has ended at c, which belongs to what follows it.
static bool end_number(bn_json_prefix *s, char c) {
    value_done(s);
    return feed_byte(s, c);
}

static bool in_string(bn_json_prefix *s, unsigned char c) {
    if (s->left) { // a UTF-8 character's continuation byte; the first one's range
        unsigned char lo = 0x80, hi = 0xBF; // depends on the lead (no overlong
        switch (s->literal) {               // forms, surrogates or code points
        case 0xE0: lo = 0xA0; break;        // past U+10FFFF)
        case 0xED: hi = 0x9F; break;
        case 0xF0: lo = 0x90; break;
        case 0xF4: hi = 0x8F; break;
        }
        if (c < lo || c > hi) return false;
        s->literal = 0;
        s->left--;
        return true;
    }
    if (c == '"') {
        if (s->key) s->state = COLON;
        else value_done(s);
        return true;
    }
    if (c == '\\') return s->state = ESCAPE, true;
    if (c < 0x20) return false; // a control character must be escaped
    if (c < 0x80) return true;
    s->left = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
    s->literal = c; // the lead, for its first continuation byte's range
    return s->left != 0;
}

static bool feed_byte(bn_json_prefix *s, char c) {
    switch (s->state) {
    case VALUE: case ARRAY_FIRST: case OBJECT_FIRST: case KEY: case COLON: case AFTER: case DONE:
        if (bn_json_is_blank(c)) return bn_json_blank(&s->space, c);
        s->space = 0;
        switch (s->state) {
        case VALUE: return begin_value(s, c);
        case ARRAY_FIRST: return c == ']' ? close_container(s) : begin_value(s, c);
        case OBJECT_FIRST:
            if (c == '}') return close_container(s);
            /* fall through */
        case KEY:
            if (c != '"') return false;
            s->state = STRING, s->key = true, s->left = 0;
            return true;
        case COLON: return c == ':' && (s->state = VALUE, true);
        case AFTER:
            if (c == ',') return s->state = in_object(s) ? KEY : VALUE, true;
            if (c == (in_object(s) ? '}' : ']')) return close_container(s);
            return false;
        default: return false; // DONE: nothing after the value but whitespace
        }
    case STRING: return in_string(s, (unsigned char)c);
    case ESCAPE:
        if (c == 'u') return s->state = UNICODE, s->left = 4, true;
        for (const char *e = "\"\\/bfnrt"; *e; e++)
            if (c == *e) return s->state = STRING, true;
        return false;
    case UNICODE:
        if (!is_hex(c)) return false;
        if (--s->left == 0) s->state = STRING;
        return true;
    case NUM_MINUS:
        if (c == '0') return s->state = NUM_ZERO, true;
        return is_digit(c) && (s->state = NUM_INT, true);
    case NUM_ZERO:
    case NUM_INT:
    case NUM_FRAC:
        if (is_digit(c) && s->state != NUM_ZERO) return true;
        if (c == '.' && s->state != NUM_FRAC) return s->state = NUM_DOT, true;
        if (c == 'e' || c == 'E') return s->state = NUM_E, true;
        return end_number(s, c);
    case NUM_DOT: return is_digit(c) && (s->state = NUM_FRAC, true);
    case NUM_E:
        if (c == '+' || c == '-') return s->state = NUM_E_SIGN, true;
        /* fall through */
    case NUM_E_SIGN: return is_digit(c) && (s->state = NUM_EXP, true);
    case NUM_EXP: return is_digit(c) || end_number(s, c);
    case LITERAL: {
        const char *lit = literals[s->literal];
        if (c != lit[s->left]) return false;
        if (lit[++s->left] == 0) value_done(s);
        return true;
    }
    }
    return false;
}

bool bn_json_prefix_feed(bn_json_prefix *s, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!feed_byte(s, bytes[i])) return false;
    return true;
}

bool bn_json_prefix_done(const bn_json_prefix *s) {
    if (s->state == DONE) return true;
    // A top-level number ends with the text.
    return s->depth == 0 && (s->state == NUM_ZERO || s->state == NUM_INT || s->state == NUM_FRAC ||
                             s->state == NUM_EXP);
}

bool bn_json_prefix_complete(const bn_json_prefix *s) { return s->state == DONE; }

bool bn_json_prefix_in_string(const bn_json_prefix *s) { return s->state == STRING && s->left == 0; }

bool bn_json_prefix_in_text(const bn_json_prefix *s) {
    return s->state == STRING || s->state == ESCAPE || s->state == UNICODE;
}

bool bn_json_prefix_in_escape(const bn_json_prefix *s) { return s->state == ESCAPE; }

int bn_json_prefix_hex_left(const bn_json_prefix *s) { return s->state == UNICODE ? s->left : 0; }

bn_json_prefix bn_json_prefix_canonical(const bn_json_prefix *s) {
    bn_json_prefix c = *s;
    c.objects &= s->depth >= 64 ? ~0ull : (1ull << s->depth) - 1; // in_object reads the open ones
    const bool utf8 = s->state == STRING && s->left; // in a character: its lead and bytes to come
    if (!bn_json_prefix_in_text(s)) c.key = false;
    if (s->state != LITERAL && s->state != UNICODE && !utf8) c.left = 0;
    if (s->state != LITERAL && !utf8) c.literal = 0;
    return c;
}

bool bn_json_plain_string_bytes(const char *bytes, size_t n) {
    for (size_t i = 0, k; i < n; i += k) {
        const unsigned char c = (unsigned char)bytes[i];
        if (c == '"' || c == '\\' || c < 0x20 || !(k = bn_utf8_char_len(bytes + i, n - i))) return false;
    }
    return n > 0;
}

bool bn_json_has_nul_escape(const char *text, size_t len) {
    for (size_t i = 0; i + 5 < len; i++) {
        if (text[i] != '\\') continue;
        size_t run = 1; // a run of backslashes: pairs are escaped backslashes
        while (i + run < len && text[i + run] == '\\') run++;
        i += run - 1;
        if (run % 2 && i + 5 < len && !memcmp(text + i + 1, "u0000", 5)) return true;
    }
    return false;
}
