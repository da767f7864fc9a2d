// utf8.c - the streaming UTF-8 decoder (bitnet.h states the contract).
#include <string.h>

#include "bitnet.h"

// Length of the character a lead byte starts; 0 when it cannot start one
// (continuation bytes, overlong leads C0/C1, F5..FF beyond U+10FFFF).
static int seq_len(unsigned char b) {
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0;
}

// Whether b may follow the bytes already in s (RFC 3629 table: the second byte
// range depends on the lead, to exclude overlongs, surrogates and > U+10FFFF).
static int continues(const bn_utf8_stream *s, unsigned char b) {
    unsigned char lo = 0x80, hi = 0xBF;
    if (s->n == 1) {
        switch (s->pending[0]) {
        case 0xE0: lo = 0xA0; break;
        case 0xED: hi = 0x9F; break;
        case 0xF0: lo = 0x90; break;
        case 0xF4: hi = 0x8F; break;
        default: break;
        }
    }
    return b >= lo && b <= hi;
}

size_t bn_utf8_stream_push(bn_utf8_stream *s, const char *in, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)in[i];
        if (s->n > 0) {
            if (continues(s, b)) {
                s->pending[s->n++] = b;
                if (s->n == seq_len(s->pending[0])) { // complete character
                    memcpy(out + o, s->pending, (size_t)s->n);
                    o += (size_t)s->n;
                    s->n = 0;
                }
                continue;
            }
            // The held bytes can never complete: pass them through and let b start afresh.
            memcpy(out + o, s->pending, (size_t)s->n);
            o += (size_t)s->n;
            s->n = 0;
        }
        int len = seq_len(b);
        if (len <= 1) {
            out[o++] = (char)b; // ASCII, or an invalid byte passed through
        } else {
            s->pending[0] = b;
            s->n = 1;
        }
    }
    return o;
}

size_t bn_utf8_stream_flush(bn_utf8_stream *s, char *out) {
    size_t o = (size_t)s->n;
    memcpy(out, s->pending, o);
    s->n = 0;
    return o;
}

bool bn_utf8_whole(const char *s, size_t n) {
    for (size_t i = 0, c; i < n; i += c)
        if (!(c = bn_utf8_char_len(s + i, n - i)) || !s[i]) return false;
    return true;
}

size_t bn_utf8_char_len(const char *s, size_t n) {
    if (n == 0) return 0;
    int len = seq_len((unsigned char)s[0]);
    if (len == 0 || (size_t)len > n) return 0;
    bn_utf8_stream st = {{(unsigned char)s[0]}, 1};
    for (int i = 1; i < len; i++) {
        if (!continues(&st, (unsigned char)s[i])) return 0;
        st.pending[st.n++] = (unsigned char)s[i];
    }
    return (size_t)len;
}
