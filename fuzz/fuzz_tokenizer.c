// fuzz_tokenizer.c - libFuzzer target for the byte-level BPE tokenizer: the text
// a server's /tokenize, a prompt or a chat message brings in from outside.
//
// Build and run (clang), from the repository root:
//   CC=clang cmake -S . -B build-fuzz -DBITNET_FUZZ=ON -DBITNET_CUDA=OFF
//   cmake --build build-fuzz --target fuzz_tokenizer
//   ./build-fuzz/fuzz_tokenizer -max_len=4096 fuzz/corpus-tokenizer
// tests/test_fuzz_replay.c replays fuzz/corpus-tokenizer/ through this function in
// every build.
//
// The vocabulary is the shipped model's (models/bitnet-austen-6m.gguf: Llama-3
// split regex, its own merges), found under BITNET_SOURCE_DIR or the source tree
// it was built from. Input byte 0 picks the flags (bit 0: parse_special, bit 1:
// add_bos); the rest is the text. Besides "no crash" it checks bitnet.h's promise
// for bn_tokenize: every id is in the vocabulary, BOS leads when asked for, and
// bn_detokenize gives back exactly the bytes encoded, whatever they are (invalid
// UTF-8, NUL, the text of special tokens). A broken promise aborts.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"

#ifndef BN_SOURCE_DIR
#define BN_SOURCE_DIR "."
#endif

static bn_tokenizer *tok_fuzz_vocab(void) {
    static bn_tokenizer *t;
    if (t) return t;
    const char *root = getenv("BITNET_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/models/bitnet-austen-6m.gguf", root && *root ? root : BN_SOURCE_DIR);
    bn_error err;
    if (bn_tokenizer_from_model(path, &t, &err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %s (set BITNET_SOURCE_DIR to the repository)\n", err.msg);
        abort();
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const bn_tokenizer *t = tok_fuzz_vocab();
    const bool parse_special = data[0] & 1, add_bos = data[0] & 2;
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    bn_error err;
    if (bn_tokenize(t, text, len, add_bos, parse_special, &ids, &n, &err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: bn_tokenize failed on %zu bytes: %s\n", len, err.msg);
        abort();
    }
    const int32_t bos = bn_tokenizer_bos(t), n_vocab = bn_tokenizer_n_vocab(t);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab) abort();
    const size_t skip = add_bos && bos >= 0;
    if (skip && (n == 0 || ids[0] != bos)) abort();
    char *back = NULL;
    size_t back_len = 0;
    if (bn_detokenize(t, ids + skip, n - skip, &back, &back_len, &err) != 0) abort();
    if (back_len != len || memcmp(back, text, len) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %zu bytes came back as %zu different ones\n", len, back_len);
        abort();
    }
    free(back);
    free(ids);
    return 0;
}
