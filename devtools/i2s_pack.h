// i2s_pack.h - packing ternary weights into the I2_S layout (core/i2s.h), for
// make-model --weights (weights_file.c) and the tests of the format.
#ifndef BN_I2S_PACK_H
#define BN_I2S_PACK_H

#include <stdint.h>

#include "error.h"
#include "i2s.h"

// Packs n ternary values (n % 128 == 0) and scale into out (bn_i2s_nbytes(n)
// bytes). Fails, naming the index, on a value outside {-1, 0, 1} or a
// non-finite scale.
int bn_i2s_pack(const int8_t *t, uint64_t n, float scale, uint8_t *out, bn_error *err);

#endif
