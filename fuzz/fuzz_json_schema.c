// fuzz_json_schema.c - libFuzzer target for core/json_schema.c: the JSON Schema
// compiler, which reads what anyone who can reach the server sends in
// response_format or tools, and the automaton that reads a reply against it.
//
// Build and run (clang), from the repository root:
//   CC=clang cmake -S . -B build-fuzz -DBITNET_FUZZ=ON -DBITNET_CUDA=OFF
//   cmake --build build-fuzz --target fuzz_json_schema
//   ./build-fuzz/fuzz_json_schema -max_len=4096 fuzz/corpus-schema
// tests/test_fuzz_replay.c replays fuzz/corpus-schema/ through this function in
// every build.
//
// The input is a schema, a NUL byte, then a text. A schema that compiles reads
// the text a byte at a time. Besides "no crash, no leak, no hang", it checks the
// automaton's promises: a complete value is done; the readings stay within
// BN_JSON_SCHEMA_THREADS; a state copied reads on as the original does, to the
// same state key; bytes read at once end where they end read one at a time,
// state key and all (the mask cache's key: json_mask.h).
#include <stdlib.h>
#include <string.h>

#include "json_schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define EXACT (1u << 30) // a key horizon no count reaches: keys compare whole states

// Whether a and b have the same state key (key, other: BN_JSON_STATE_KEY_MAX bytes each).
static bool same_key(const bn_json_state *a, const bn_json_state *b, uint8_t *key, uint8_t *other) {
    const size_t len = bn_json_state_key(a, EXACT, key);
    return bn_json_state_key(b, EXACT, other) == len && !memcmp(key, other, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    const size_t schema_len = nul ? (size_t)(nul - data) : size;
    bn_json_schema *g;
    bn_error err;
    if (bn_json_schema_compile((const char *)data, schema_len, &g, &err)) return 0;
    bn_json_state *s = malloc(sizeof *s), *copy = malloc(sizeof *copy), *next = malloc(sizeof *next);
    uint8_t *key = malloc(BN_JSON_STATE_KEY_MAX), *other = malloc(BN_JSON_STATE_KEY_MAX);
    if (!s || !copy || !next || !key || !other) abort();
    bn_json_state_init(s, g);
    const char *text = nul ? (const char *)nul + 1 : "";
    const size_t n = nul ? size - schema_len - 1 : 0;
    bool all = true; // every byte taken
    for (size_t i = 0; i < n; i++) {
        bn_json_state_copy(copy, s);
        const bool via_copy = bn_json_state_next(copy, text + i, 1, next);
        const bool fed = bn_json_state_feed(s, text + i, 1);
        if (fed != via_copy || (fed && next->n != s->n)) abort();
        if (!(all = fed)) break;
        if (!same_key(s, next, key, other)) abort();
        if (s->n < 1 || s->n > BN_JSON_SCHEMA_THREADS) abort();
        if (bn_json_state_complete(s) && !bn_json_state_done(s)) abort();
    }
    // The same bytes at once (whole runs inside a string go through the lexer alone).
    if (all && n > 0) {
        bn_json_state_init(copy, g);
        const bool whole = bn_json_state_next(copy, text, n, next);
        if (!whole || next->n != s->n || bn_json_state_done(next) != bn_json_state_done(s) ||
            !same_key(s, next, key, other))
            abort();
    }
    free(key);
    free(other);
    free(s);
    free(copy);
    free(next);
    bn_json_schema_free(g);
    return 0;
}
