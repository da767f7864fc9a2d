// ternary_repack.c - TQ1_0 / TQ2_0 -> I2_S (ternary_repack.h).
#include "ternary_repack.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "i2s.h"

// Bytes per 256-element block; 0 for any other type.
static uint32_t tq_block_bytes(uint32_t type) {
    return type == BN_GGML_TQ1_0 ? 54 : type == BN_GGML_TQ2_0 ? 66 : 0;
}

uint64_t bn_tq_nbytes(uint32_t type, uint64_t K, uint64_t rows) {
    uint64_t n, bytes;
    if (!tq_block_bytes(type) || !K || !rows || K % BN_TQ_BLOCK ||
        __builtin_mul_overflow(K, rows, &n) ||
        __builtin_mul_overflow(n / BN_TQ_BLOCK, (uint64_t)tq_block_bytes(type), &bytes))
        return 0;
    return bytes;
}

// IEEE half -> float, exact. The CPU kernels have one too, but core/ does not
// depend on cpu/.
static float half_to_float(uint16_t h) {
    const int e = h >> 10 & 31, m = h & 1023;
    const float v = e == 0    ? ldexpf((float)m, -24)
                    : e == 31 ? (m ? NAN : INFINITY)
                              : ldexpf((float)(m | 1024), e - 25);
    return h & 0x8000 ? -v : v;
}

// Trit n of a TQ1_0 byte as t + 1: multiplying by 3^n (mod 256) shifts the
// fixed-point fraction left by n trits, and * 3 >> 8 reads the leading one.
static uint8_t tq1_trit(uint8_t b, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return (uint8_t)((uint8_t)(b * pow3[n]) * 3 >> 8);
}

// Block x's values as t + 1 (0, 1, 2) into u, in element order. Returns the
// element holding a TQ2_0 code 3, or -1 when there is none.
static int tq_decode_block(uint32_t type, const uint8_t *x, uint8_t u[BN_TQ_BLOCK]) {
    if (type == BN_GGML_TQ1_0) {
        for (int n = 0; n < 5; n++) {
            for (int m = 0; m < 32; m++) u[m + 32 * n] = tq1_trit(x[m], n);
            for (int m = 0; m < 16; m++) u[160 + m + 16 * n] = tq1_trit(x[32 + m], n);
        }
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 4; j++) u[240 + j + 4 * n] = tq1_trit(x[48 + j], n);
        return -1;
    }
    for (int i = 0; i < 64; i++)
        for (int l = 0; l < 4; l++) {
            const int e = 128 * (i / 32) + i % 32 + 32 * l;
            u[e] = x[i] >> (2 * l) & 3;
            if (u[e] == 3) return e;
        }
    return -1;
}

int bn_tq_to_i2s(const char *name, uint32_t type, const void *data, uint64_t nbytes, uint64_t K,
                 uint64_t rows, uint8_t **i2s, float *scale, bn_error *err) {
    *i2s = NULL;
    *scale = 0;
    const char *tname = bn_ggml_type_name(type);
    const uint32_t bb = tq_block_bytes(type);
    if (!bb) return bn_errorf(err, "%s: type %s (%u) is not TQ1_0 or TQ2_0", name, tname, type);
    if (!K || K % BN_TQ_BLOCK)
        return bn_errorf(err, "%s: %s rows of %llu elements are not whole %d-element blocks", name,
                         tname, (unsigned long long)K, BN_TQ_BLOCK);
    const uint64_t want = bn_tq_nbytes(type, K, rows);
    if (!want)
        return bn_errorf(err, "%s: %llu rows of %llu elements: empty or too large", name,
                         (unsigned long long)rows, (unsigned long long)K);
    if (nbytes != want)
        return bn_errorf(err, "%s: %s data is %llu bytes, %llu x %llu elements take %llu", name,
                         tname, (unsigned long long)nbytes, (unsigned long long)rows,
                         (unsigned long long)K, (unsigned long long)want);

    const uint64_t n = K * rows, nblk = n / BN_TQ_BLOCK, blk_per_row = K / BN_TQ_BLOCK;
    uint8_t *out = malloc(bn_i2s_nbytes(n));
    if (!out) return bn_errorf(err, "%s: out of memory for %llu I2_S bytes", name,
                               (unsigned long long)bn_i2s_nbytes(n));
    const uint8_t *x = data;
    float s = 0;
    uint64_t s_blk = 0; // the block that set s, for the error message
    for (uint64_t b = 0; b < nblk; b++, x += bb) {
        const float d = half_to_float((uint16_t)(x[bb - 2] | x[bb - 1] << 8));
        uint8_t u[BN_TQ_BLOCK];
        const int bad = tq_decode_block(type, x, u);
        if (!isfinite(d) || bad >= 0) {
            free(out);
            if (bad >= 0)
                return bn_errorf(err, "%s: %s block %llu (row %llu) element %d has code 3, "
                                 "not a ternary value", name, tname, (unsigned long long)b,
                                 (unsigned long long)(b / blk_per_row), bad);
            return bn_errorf(err, "%s: %s block %llu (row %llu) has a non-finite scale (%g)",
                             name, tname, (unsigned long long)b,
                             (unsigned long long)(b / blk_per_row), d);
        }
        bool zero = true;
        for (int i = 0; i < BN_TQ_BLOCK; i++) zero &= u[i] == 1;
        if (d == 0 || zero) {
            memset(u, 1, BN_TQ_BLOCK); // its values are 0 whatever its codes say
        } else if (s == 0) {
            s = d;
            s_blk = b;
        } else if (d != s) {
            free(out);
            return bn_errorf(err, "%s: %s block %llu (row %llu) has scale %g, block %llu has %g: "
                             "I2_S holds one scale per tensor", name, tname, (unsigned long long)b,
                             (unsigned long long)(b / blk_per_row), d, (unsigned long long)s_blk,
                             s);
        }
        // The block's two 128-element halves become two I2_S blocks.
        uint8_t *o = out + 64 * b;
        for (int i = 0; i < 64; i++) {
            const uint8_t *v = u + 128 * (i / 32) + i % 32;
            o[i] = (uint8_t)(v[0] << 6 | v[32] << 4 | v[64] << 2 | v[96]);
        }
    }
    uint8_t *tail = out + n / 4;
    memset(tail, 0, BN_I2S_TAIL);
    uint32_t sb;
    memcpy(&sb, &s, 4);
    for (int k = 0; k < 4; k++) tail[k] = (uint8_t)(sb >> (8 * k)); // little-endian, as i2s.h says
    *i2s = out;
    *scale = s;
    return 0;
}
