// ternary_repack.h - llama.cpp's ternary tensor types, TQ1_0 and TQ2_0, repacked
// into I2_S (i2s.h) at load time, so a GGUF converted by llama.cpp runs on our
// kernels unchanged.
//
// Both types cut a tensor into 256-element blocks, each with its own f16 scale d
// (value = d * t, t in {-1, 0, +1}); I2_S has one float scale per tensor, so the
// repack only succeeds when the blocks agree on d (see bn_tq_to_i2s). Layouts,
// little-endian, elements numbered within the block:
//   TQ1_0, 54 bytes: qs[48], qh[4], d. A byte holds trits u0..u4 (u = t + 1) as
//     b = ceil(v * 256 / 243), v = sum u_n * 3^(4-n): a fixed-point fraction
//     whose trit n is ((uint8_t)(b * 3^n) * 3) >> 8. qs[m], m < 32: elements
//     m + 32n (n < 5); qs[32 + m], m < 16: 160 + m + 16n (n < 5); qh[j], j < 4:
//     240 + j + 4n (n < 4; u4 = 0).
//   TQ2_0, 66 bytes: qs[64], d. qs[32c + m] holds element 128c + m + 32l in bits
//     2l+1:2l (l < 4) as t + 1; code 3 is no ternary value and is refused.
#ifndef BN_TERNARY_REPACK_H
#define BN_TERNARY_REPACK_H

#include <stdint.h>

#include "error.h"

#define BN_TQ_BLOCK 256 // elements per TQ1_0 / TQ2_0 block

// Bytes of a TQ1_0 / TQ2_0 tensor of rows x K elements (K a multiple of the
// 256-element block); 0 for other types, K or rows 0, K not a multiple, overflow.
uint64_t bn_tq_nbytes(uint32_t type, uint64_t K, uint64_t rows);

// Repacks rows x K ternary weights stored as TQ1_0 or TQ2_0 (type is the ggml
// type number) into a malloc'd I2_S buffer *i2s of bn_i2s_nbytes(rows * K) bytes,
// scale in its tail, and returns the scale in *scale. A block whose d is 0, or
// whose values are all 0, is written as zeros whatever its d; every other block
// must carry the same d, which becomes the scale (0 when no block has one).
// Fails, naming the tensor (name), on another type, K % 256 != 0, nbytes not
// bn_tq_nbytes, a non-finite d, a TQ2_0 code 3, or two blocks with different
// scales (naming the block, its row and both scales). On failure *i2s is NULL.
int bn_tq_to_i2s(const char *name, uint32_t type, const void *data, uint64_t nbytes, uint64_t K,
                 uint64_t rows, uint8_t **i2s, float *scale, bn_error *err);

#endif
