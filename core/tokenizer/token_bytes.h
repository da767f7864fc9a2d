// token_bytes.h - what bytes a token's vocabulary text stands for, in the two
// vocabulary kinds: byte-level BPE (GPT-2's bytes_to_unicode) and SentencePiece
// (U+2581 for a space, <0xHH> for a byte). Pure functions of the text: the
// bottom of the tokenizer (docs/architecture.md: Tokenizer and chat format).
#ifndef BN_TOKEN_BYTES_H
#define BN_TOKEN_BYTES_H

#include <stddef.h>
#include <stdint.h>

#define BN_SPM_SPACE "\xE2\x96\x81" // U+2581, SentencePiece's visible space
#define BN_SPM_SPACE_LEN 3

// Decodes a byte-level vocabulary string into raw bytes (out has room for len
// bytes: every code point is at least one UTF-8 byte). Returns the byte count,
// or -1 when the string is not valid byte-level text.
long bn_tok_byte_level_decode(const char *s, size_t len, char *out);
// The byte-level text of byte b (the UTF-8 of its code point): 1 or 2 bytes in out.
size_t bn_tok_byte_level_text(int b, char out[2]);

// The bytes SentencePiece token `text` of `type` stands for, as llama.cpp's
// token_to_piece (special = true): NORMAL with U+2581 as space, BYTE "<0xHH>" as
// that byte, CONTROL / UNKNOWN / USER_DEFINED as their text, UNUSED as nothing.
// out has room for len bytes. Returns the count, or -1 for a BYTE token not "<0xHH>".
long bn_tok_spm_bytes(const char *text, size_t len, int32_t type, char *out);
// The text of byte b's SentencePiece byte token, "<0xXX>" (upper case, as
// llama.cpp's llama_byte_to_token_impl).
void bn_tok_spm_byte_text(int b, char out[6]);

#endif
