// split_regex.h - the byte-level BPE pre-tokenizer's split regex: written in
// the syntax of HF `tokenizers` (Rust regex, Oniguruma's meaning of \s),
// compiled for PCRE2. A leaf of the tokenizer: no tokenizer state.
#ifndef BN_SPLIT_REGEX_H
#define BN_SPLIT_REGEX_H

#define PCRE2_CODE_UNIT_WIDTH 8 // UTF-8 text
#include <pcre2.h>

#include "../error.h"

// The Llama-3 pre-tokenizer (tokenizer.json `pre_tokenizer` Split regex), in
// the syntax of HF `tokenizers` (Rust regex). bn_tok_compile_split_regex rewrites
// the few constructs whose meaning differs in PCRE2 (split_regex.c).
#define BN_LLAMA3_SPLIT_REGEX                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "            \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

// *out: the compiled regex (JIT-compiled where PCRE2 can), free with pcre2_code_free.
int bn_tok_compile_split_regex(const char *regex, pcre2_code **out, bn_error *err);

#endif
