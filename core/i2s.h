// i2s.h - the I2_S layout of ternary weights (docs/architecture.md: I2_S).
//
// What the kernels read: n values in {-1, 0, +1}, row-major, are cut into
// 128-element blocks of 32 bytes; byte 32*b + g holds elements g, g+32, g+64,
// g+96 of block b in bits 7:6, 5:4, 3:2, 1:0 as codes -1 -> 00, 0 -> 01,
// +1 -> 10. The float32 scale (little-endian) and 28 zero bytes follow. The
// runtime only reads it; the packer that writes it is a development tool
// (devtools/i2s_pack.h).
#ifndef BN_I2S_H
#define BN_I2S_H

#include <stdint.h>

#define BN_I2S_BLOCK 128 // elements per block; every row length is a multiple
#define BN_I2S_TAIL 32   // bytes after the codes: the scale, then padding

// Bytes of an I2_S tensor of n elements (n a multiple of BN_I2S_BLOCK).
static inline uint64_t bn_i2s_nbytes(uint64_t n) { return n / 4 + BN_I2S_TAIL; }

// Element i of packed I2_S codes as -1, 0 or +1 (code 11, never written, is 0).
static inline int bn_i2s_get(const uint8_t *codes, uint64_t i) {
    const uint64_t b = i / BN_I2S_BLOCK, r = i % BN_I2S_BLOCK;
    const int code = (codes[32 * b + r % 32] >> (6 - 2 * (r / 32))) & 3;
    return code == 0 ? -1 : code == 2 ? 1 : 0;
}

#endif
