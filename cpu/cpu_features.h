// cpu_features.h - which SIMD kernel sets this CPU (and its OS) can run.
//
// An instruction set is usable only when CPUID reports it AND the OS saves the
// wider registers on context switches (XGETBV, XCR0); a hypervisor can hide the
// latter, so both are checked.
#ifndef BN_CPU_FEATURES_H
#define BN_CPU_FEATURES_H

#include "kernels.h"

typedef struct bn_cpu_features {
    int avx2;   // AVX2 + FMA + F16C, OS saves ymm
    int avx512; // AVX-512 F/BW/VL/DQ + VNNI, OS saves zmm and opmask registers
    int amx;    // avx512 + AMX-TILE/INT8 whose palette 1 has 8 tiles of 16 x 64 bytes, the
                // OS saves the tiles, and this build has the kernels; Linux must still
                // grant the process the tiles: bn_cpu_amx_permit
    int neon;   // AArch64 with the dot product instructions (SDOT: Armv8.2-A's DotProd)
} bn_cpu_features;

// Asks the OS, once per process, for the AMX tile state; 1 when it is granted.
// Called only where the amx set is chosen: on Linux the grant cannot be taken
// back, and it makes every later sigaltstack of less than ~12 KiB fail.
int bn_cpu_amx_permit(void);

// Detected once; cheap to call again.
bn_cpu_features bn_cpu_detect(void);

// The SIMD tables (kernels_avx2.c, kernels_avx512.c). Call them only on a CPU that
// supports them: use bn_cpu_kernels_select, which checks.
extern const bn_cpu_kernels bn_kernels_avx2;
extern const bn_cpu_kernels bn_kernels_avx512;
extern const bn_cpu_kernels bn_kernels_amx;
extern const bn_cpu_kernels bn_kernels_neon; // kernels_neon.c (AArch64 builds)

void bn_ternary_gemm_avx2(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                          const int8_t *q, const int32_t *qsum, int n, int32_t *y,
                          int64_t ldy);
void bn_f16_gemv_avx2(const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                      const float *x, float *y);
void bn_softmax_avx2(float *x, int n); // bn_softmax (ops.h), 8 lanes at a time
void bn_ternary_gemm_avx512(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                            const int8_t *q, const int32_t *qsum, int n, int32_t *y,
                            int64_t ldy);
void bn_f16_gemv_avx512(const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                        const float *x, float *y);
void bn_f16_gemm_avx512(const uint16_t *w, int64_t K, int64_t row0, int64_t row1, const float *x,
                        int64_t ldx, const int *idx, int n, float *y, int64_t ldy);
void bn_i8_gemv_avx512(const int8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *x,
                       int32_t *y);
// nb blocks of 128 I2_S codes of one row as bytes c = w + 1, in element order, to
// buf (64-byte aligned): the decoder of the AVX-512 prefill GEMM, shared with AMX's.
void bn_decode_row_avx512(const uint8_t *wr, int64_t nb, uint8_t *buf);
void bn_ternary_gemm_amx(const uint8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *q,
                         const int32_t *qsum, int n, int32_t *y, int64_t ldy);
void bn_pack_token_amx(const int8_t *q, int64_t K, int t, int8_t *packed);
void bn_ternary_gemm_amx_packed(const uint8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *q,
                                const int8_t *packed, const int32_t *qsum, int n, int32_t *y, int64_t ldy);
// tdpbusd issued back to back on 4 accumulator tiles, `iters` times: the int8
// multiply-adds done (the AMX peak for roofline.c; *acc keeps the work alive).
double bn_amx_peak_macs(long iters, int32_t *acc);
// sdot issued back to back on 12 accumulators, `iters` times (kernels_neon.c,
// AArch64 builds): the int8 multiply-adds done, as bn_amx_peak_macs.
double bn_neon_peak_macs(long iters, int32_t *acc);
extern const int bn_amx_built;          // this compiler built the AMX kernels
unsigned long bn_amx_tile_blocks(void); // token blocks run on tiles so far (tests; 0 off x86)

#endif
