// half.c - f16 / bf16 <-> float (half.h).
#include "half.h"

float bn_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu; // exponent and mantissa
    if (em >= 0x7c00u)               // inf / NaN: keep the payload
        return bn_bits_f32(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
    // Shifting the f16 bits into the f32 position gives the same value scaled by
    // 2^-112 (the bias difference 127-15); one exact multiply fixes the exponent,
    // and handles f16 subnormals for free (they become f32 denormals first).
    return bn_bits_f32(sign | bn_f32_bits(bn_bits_f32(em << 13) * 0x1p112f));
}

// Rounds the bits that fall off (below bit `shift`) to nearest, ties to even.
static inline uint32_t round_shift_rne(uint32_t m, int shift) {
    const uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    return r + (rem > half || (rem == half && (r & 1u)));
}

uint16_t bn_f32_to_f16(float f) {
    const uint32_t x = bn_f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) // NaN: keep it quiet and keep the top payload bits
        return sign | 0x7e00u | (uint16_t)((ax >> 13) & 0x1ffu);
    if (ax >= 0x477ff000u) // >= 65520 (halfway past the largest half, 65504) -> inf
        return sign | 0x7c00u;
    if (ax >= 0x38800000u) // normal half (>= 2^-14): rebias 127 -> 15, round 13 bits
        return sign | (uint16_t)round_shift_rne(ax - 0x38000000u, 13);
    if (ax <= 0x33000000u) // <= 2^-25, half of the smallest subnormal: ties to 0
        return sign;
    // Subnormal half: value = m * 2^(e-150), in units of 2^-24 -> shift by 126-e.
    // Rounding up may carry into 0x400, the smallest normal, which is correct.
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    return sign | (uint16_t)round_shift_rne(m, (int)(126 - e));
}

float bn_bf16_to_f32(uint16_t h) {
    return bn_bits_f32((uint32_t)h << 16); // bf16 is the top half of an f32
}

void bn_round_f16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = bn_f16_to_f32(bn_f32_to_f16(x[i]));
}

void bn_store_f16(uint16_t *dst, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = bn_f32_to_f16(x[i]);
}

void bn_load_f16(float *dst, const uint16_t *h, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = bn_f16_to_f32(h[i]);
}
