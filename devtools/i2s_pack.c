// i2s_pack.c - ternary values -> I2_S bytes (i2s_pack.h).
#include "i2s_pack.h"

#include <math.h>
#include <string.h>

int bn_i2s_pack(const int8_t *t, uint64_t n, float scale, uint8_t *out, bn_error *err) {
    if (n % BN_I2S_BLOCK)
        return bn_errorf(err, "I2_S: %llu elements is not a multiple of %d",
                         (unsigned long long)n, BN_I2S_BLOCK);
    if (!isfinite(scale)) return bn_errorf(err, "I2_S: the scale is not finite");
    memset(out, 0, bn_i2s_nbytes(n));
    for (uint64_t i = 0; i < n; i++) {
        if (t[i] < -1 || t[i] > 1)
            return bn_errorf(err, "I2_S: element %llu is %d, not -1, 0 or 1",
                             (unsigned long long)i, t[i]);
        const uint64_t b = i / BN_I2S_BLOCK, r = i % BN_I2S_BLOCK;
        out[32 * b + r % 32] |= (uint8_t)((t[i] + 1) << (6 - 2 * (r / 32)));
    }
    uint32_t u;
    memcpy(&u, &scale, 4);
    for (int k = 0; k < 4; k++) out[n / 4 + k] = (uint8_t)(u >> (8 * k)); // little-endian
    return 0;
}
