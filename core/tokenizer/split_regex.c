// split_regex.c - HF-syntax split regex -> PCRE2 (split_regex.h).
#include "split_regex.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

// HF compiles the split regex with Oniguruma, where \s is Unicode White_Space:
// U+0009..000D, U+0085 and categories Zs/Zl/Zp. PCRE2's \s under UCP lacks U+0085
// (NEL), so \s and \S are spelled out. Everything else (\p{L}, \p{N}, (?i:...),
// lookahead, {1,3}) means the same in both.
#define WS_SET "\\t-\\r\\x{20}\\x{85}\\p{Z}"

static int rewrite_regex(const char *in, char **out, bn_error *err) {
    size_t n = strlen(in);
    char *o = malloc(n * 24 + 1); // each 2-char escape grows to at most ~26 chars
    if (!o) return bn_errorf(err, "tokenizer: out of memory");
    size_t j = 0;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '\\' && i + 1 < n) {
            char e = in[++i];
            if (e == 's' || e == 'S') {
                if (in_class && e == 'S') {
                    free(o);
                    return bn_errorf(err, "tokenizer: \\S inside a character class is not supported");
                }
                const char *rep = in_class ? WS_SET : e == 's' ? "[" WS_SET "]" : "[^" WS_SET "]";
                size_t rl = strlen(rep);
                memcpy(o + j, rep, rl);
                j += rl;
            } else {
                o[j++] = '\\';
                o[j++] = e;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            o[j++] = c;
            // A ']' right after '[' or '[^' is a literal member, not the end.
            if (i + 1 < n && in[i + 1] == '^') o[j++] = in[++i];
            if (i + 1 < n && in[i + 1] == ']') o[j++] = in[++i];
            continue;
        }
        if (in_class && c == ']') in_class = false;
        o[j++] = c;
    }
    o[j] = 0;
    *out = o;
    return 0;
}

int bn_tok_compile_split_regex(const char *regex, pcre2_code **out, bn_error *err) {
    *out = NULL;
    char *pat;
    if (rewrite_regex(regex, &pat, err)) return -1;
    int code;
    PCRE2_SIZE at;
    // MATCH_INVALID_UTF: arbitrary bytes are allowed in the subject; invalid
    // sequences are never part of a match, so they show up as gaps between matches.
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
    free(pat);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return bn_errorf(err, "tokenizer: bad split regex at offset %zu: %s", (size_t)at,
                         (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // the interpreter still works if JIT is unavailable
    *out = re;
    return 0;
}
