// json_regex.h - a JSON Schema "pattern" as a deterministic automaton over the
// UTF-8 bytes of a string, read a byte at a time: whether some string the
// pattern accepts begins with the bytes so far, and whether they are one.
// json_schema.c steps it through a string value's characters.
//
// A pattern is an ECMA-262 regular expression, and a string matches it where
// the expression matches anywhere in it (JSON Schema's rule: "^" and "$"
// anchor it). The strings are valid UTF-8 without the surrogates and without
// the control characters JSON writes only as \u escapes (U+0000..U+001F but
// \b \t \n \f \r), since a patterned string has none (json_schema.h): a
// character set holds none of those, and a pattern that needs one matches
// nothing.
// Supported: literal characters; escapes of any ASCII punctuation (\\ \/ \. \@ ...),
// \n \r \t \f \v \0, \cX, \xHH, \uHHHH (not a lone surrogate: a pair such as
// \uD83D\uDE00 is the one character it spells) and \u{H...}; the classes \d \D
// \w \W \s \S (ECMA-262's: \d is [0-9], \w is [A-Za-z0-9_], \s the Unicode
// blanks and line ends); "." (any character but \n, \r, U+2028 and U+2029);
// character sets [...] and [^...] of characters, ranges and those classes ([]
// matches no character, [^] any, [\b] the backspace); groups (...), (?:...) and
// (?<name>...); alternation |; the quantifiers * + ? {n} {n,} {n,m} (n, m up to
// 1000), greedy or lazy (the same strings match); "^" at the start and "$" at
// the end of a top-level alternative. As with ECMA-262's u flag, an escaped
// letter without a meaning (\a, \q) and a lone {, } or ] are errors. Anything
// else (backreferences, lookaround, \b, \p{...}, flags, "^" or "$" elsewhere,
// groups nested over 64 deep) is refused with the reason and its byte offset,
// as is a pattern whose automaton would pass the limits below or take over
// about 0.1 s to build, and one that no string matches.
#ifndef BN_JSON_REGEX_H
#define BN_JSON_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_REGEX_DEAD UINT32_MAX // no string the pattern accepts begins so
#define BN_REGEX_MAX_NFA 4096    // states while compiling (counted repeats copied out)
#define BN_REGEX_MAX_DFA 2048    // states of one automaton
#define BN_REGEX_MAX_WORK (1u << 25) // steps to build one (about 0.1 s at worst)

typedef struct bn_regex bn_regex; // read-only once compiled

// Compiles the NUL-terminated pattern: 0, or -1 on error, where *out is NULL
// and why (n_why bytes) says what and where, e.g. "lookahead (?= at offset 3
// is not supported". work (NULL: none) is what the caller still allows of the
// automaton's building (steps; one pattern takes at most BN_REGEX_MAX_WORK):
// what this one took comes off it, so that many patterns together stay within
// what one may cost.
int bn_regex_compile(const char *pattern, uint64_t *work, bn_regex **out, char *why, size_t n_why);
// The same for whole strings (regex_reply.h: a reply held to it): every
// top-level alternative is anchored at both ends, whether or not it writes its
// "^" and "$".
int bn_regex_compile_whole(const char *pattern, uint64_t *work, bn_regex **out, char *why, size_t n_why);
void bn_regex_free(bn_regex *r);
// The automaton's states (for a caller's budget over many patterns).
uint32_t bn_regex_states(const bn_regex *r);
// The state after byte c from state s (the empty string's state is 0), or
// BN_REGEX_DEAD when no string the pattern accepts begins with the bytes so far.
// A state that is not dead always has some continuation, in whole UTF-8
// characters, that the pattern accepts.
uint32_t bn_regex_step(const bn_regex *r, uint32_t s, unsigned char c);
// Whether the bytes that led to state s are a string the pattern accepts.
bool bn_regex_accepts(const bn_regex *r, uint32_t s);

// A pattern with a length in characters beside it (JSON Schema's minLength
// and maxLength): which pairs of a state and the characters read so far can
// still end in a string of min_len..max_len characters that the pattern
// accepts (json_regex_length.c). Without a maximum (max_len UINT32_MAX) the
// count stops at min_len: past it, only the pattern matters.
typedef struct bn_regex_lengths bn_regex_lengths;
#define BN_REGEX_MAX_PAIRS (1u << 18) // states x (counts), bits of the table
// NULL, with why, where no string of those lengths matches, the table would
// pass BN_REGEX_MAX_PAIRS, or working it out would take more than *work steps
// (as bn_regex_compile's: what it took comes off; NULL: no such bound), or
// memory is short.
bn_regex_lengths *bn_regex_lengths_make(const bn_regex *r, uint32_t min_len, uint32_t max_len, uint64_t *work,
                                        char *why, size_t n_why);
void bn_regex_lengths_free(bn_regex_lengths *l);
// Whether state s after `chars` characters (counted as above: at most
// max_len, or min_len where there is no maximum) can still end in a match.
bool bn_regex_lengths_live(const bn_regex_lengths *l, uint32_t s, uint64_t chars);

#endif
