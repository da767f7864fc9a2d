// utf8.h - a streaming UTF-8 decoder for printing tokens as they are generated.
//
// A token may end in the middle of a character (e.g. one emoji over three byte
// tokens). Push each token's bytes; out receives only whole characters, and a
// started character is held back until its last byte arrives.
//
// Invalid input (a stray continuation byte, an overlong or surrogate lead, a
// sequence cut short by a byte that cannot continue it) is passed through
// unchanged as soon as it is known to be invalid, never replaced: output never
// stalls, and the concatenation of all outputs (with the final flush) is exactly
// the concatenation of all inputs.
#ifndef BN_UTF8_H
#define BN_UTF8_H

#include <stddef.h>

// Zero-initialise ({0}) to start a stream.
typedef struct bn_utf8_stream {
    unsigned char pending[4]; // the started, still-valid character
    int n;                    // bytes in pending (0..3)
} bn_utf8_stream;

// Feeds n bytes; writes the complete output to out (room for n + 4 bytes) and
// returns its length.
size_t bn_utf8_stream_push(bn_utf8_stream *s, const char *in, size_t n, char *out);
// End of stream: writes any held (incomplete) bytes as they are; out needs 4 bytes.
size_t bn_utf8_stream_flush(bn_utf8_stream *s, char *out);

// Length (1..4) of the valid UTF-8 character at the start of s (n bytes), or
// 0 when s does not start with one (also for n == 0).
size_t bn_utf8_char_len(const char *s, size_t n);

#endif
