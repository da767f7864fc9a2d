// half.h - IEEE half (f16) and bfloat16 <-> float, one value or a row at a time.
//
// The bottom of the CPU's scalar reference (kernels.h says which files make it
// up): exact, portable C that the ops (ops.c), the scalar kernel table
// (kernels_scalar.c) and the tests use. IEEE conversions (round to nearest
// even), so the F16C kernels (vcvtps2ph, vcvtph2ps) equal them bit for bit on
// everything but signaling-NaN payloads.
#ifndef BN_CPU_HALF_H
#define BN_CPU_HALF_H

#include <stdint.h>
#include <string.h>

// A float's bits and back (memcpy: no aliasing questions).
static inline uint32_t bn_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bn_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float bn_f16_to_f32(uint16_t h);
uint16_t bn_f32_to_f16(float f); // round to nearest even
float bn_bf16_to_f32(uint16_t h);

// Rows: round each float to the nearest f16 (ties to even) and back, in place;
// round to f16 and store as f16; f16 to float. The scalar entries half_round,
// half_store and half_load of the kernel table.
void bn_round_f16(float *x, int64_t n);
void bn_store_f16(uint16_t *dst, const float *x, int64_t n);
void bn_load_f16(float *dst, const uint16_t *h, int64_t n);

#endif
