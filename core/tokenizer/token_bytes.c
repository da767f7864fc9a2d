// token_bytes.c - token text <-> bytes for both vocabulary kinds (token_bytes.h).
#include "token_bytes.h"

#include <string.h>

#include "tokenizer.h"

// ---- GPT-2 byte-level mapping ---------------------------------------------------
// bytes_to_unicode(): printable Latin-1 bytes (33..126, 161..172, 174..255) stand
// for themselves; the other 68 bytes map, in order, to U+0100 and up. A vocabulary
// entry is the UTF-8 of those code points.
static int byte_to_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    int n = 0; // count of unprintable bytes below b
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) n++;
    return 256 + n;
}

// Inverse map over code points 0..323; -1 where no byte maps there.
static int cp_to_byte(uint32_t cp) {
    static int table[324];
    static int ready; // benign race: every thread writes the same values
    if (!ready) {
        for (int i = 0; i < 324; i++) table[i] = -1;
        for (int b = 0; b < 256; b++) table[byte_to_cp(b)] = b;
        ready = 1;
    }
    return cp < 324 ? table[cp] : -1;
}

long bn_tok_byte_level_decode(const char *s, size_t len, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t cp;
        if (p[i] < 0x80) {
            cp = p[i++];
        } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
            cp = ((uint32_t)(p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1; // every mapped code point is below U+0800
        }
        int b = cp_to_byte(cp);
        if (b < 0) return -1;
        out[n++] = (char)b;
    }
    return (long)n;
}

size_t bn_tok_byte_level_text(int b, char out[2]) {
    int cp = byte_to_cp(b);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

// ---- SentencePiece ----------------------------------------------------------------
static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

long bn_tok_spm_bytes(const char *text, size_t len, int32_t type, char *out) {
    switch (type) {
    case BN_TOKEN_TYPE_CONTROL:
    case BN_TOKEN_TYPE_UNKNOWN:
    case BN_TOKEN_TYPE_USER_DEFINED:
        if (len) memcpy(out, text, len);
        return (long)len;
    case BN_TOKEN_TYPE_BYTE: {
        int hi = len == 6 ? hex_digit(text[3]) : -1, lo = len == 6 ? hex_digit(text[4]) : -1;
        if (hi < 0 || lo < 0 || memcmp(text, "<0x", 3) != 0 || text[5] != '>') return -1;
        out[0] = (char)(hi << 4 | lo);
        return 1;
    }
    case BN_TOKEN_TYPE_NORMAL: {
        size_t n = 0;
        for (size_t i = 0; i < len;) {
            if (len - i >= BN_SPM_SPACE_LEN &&
                memcmp(text + i, BN_SPM_SPACE, BN_SPM_SPACE_LEN) == 0) {
                out[n++] = ' ';
                i += BN_SPM_SPACE_LEN;
            } else {
                out[n++] = text[i++];
            }
        }
        return (long)n;
    }
    default: // UNUSED: llama.cpp's token_to_piece gives nothing
        return 0;
    }
}

void bn_tok_spm_byte_text(int b, char out[6]) {
    static const char hex[] = "0123456789ABCDEF";
    out[0] = '<';
    out[1] = '0';
    out[2] = 'x';
    out[3] = hex[b >> 4];
    out[4] = hex[b & 15];
    out[5] = '>';
}
