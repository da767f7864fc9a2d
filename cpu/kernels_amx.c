// kernels_amx.c - the AVX-512 set with its prefill ternary GEMM on AMX tiles
// (AMX-INT8: Xeon Sapphire Rapids and later); every other kernel is the AVX-512 set's.
//
// One tdpbusd multiplies a 16 x 64 tile of unsigned bytes by a 64 x 16 tile of
// signed bytes into 16 x 16 int32 sums, 16384 multiply-adds. Here the unsigned
// tile is 16 rows' codes c = w + 1 (the AVX-512 GEMM's decoder), the signed one
// 16 tokens' int8 activations, so y = dot(c, q) - sum(q): the same exact integers
// as every other set, whatever the order of the adds.
//
// The activations go into tiles first (bn_pack_token_amx: for each 64-wide K
// slab, tile row kk holds the 4 bytes k = 4kk .. 4kk+3 of each of 16 tokens, as
// tdpbusd pairs them): in the forward pass once per bitlinear, shared by its
// matrices and threads (ternary_gemm_packed), else once per call. Tokens go in
// blocks of BN_AMX_TOKEN_BLOCK.
// Rows go 32 at a time: their codes over the whole K are decoded once into a
// panel, and every token block runs over it, 32 tokens a pass in four accumulator
// tiles (2 row tiles x 2 token tiles), the K slabs innermost. The accumulators
// are stored and added, transposed, to y (token-major). Rows past the last 16,
// calls of fewer than BN_AMX_MIN_TOKENS tokens (decode) and a last token block
// that short take the AVX-512 GEMM.
//
// A compiler without AMX intrinsics (GCC < 11, Clang < 12) builds this file
// without them (CMakeLists.txt): the set is then never offered (bn_amx_built).
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_features.h"
#include "kernels.h"

#if defined(__AMX_TILE__) && defined(__AMX_INT8__)

#define BN_AMX_MIN_TOKENS BN_PACKED_MIN_TOKENS
#define BN_AMX_TOKEN_BLOCK 128 // its tiles: 128 x K bytes (864 KiB at K = 6912), in L2
#define BN_AMX_TILE 1024       // bytes of a 16 x 64 tile

const int bn_amx_built = 1;

static atomic_ulong tile_blocks; // gemm_block calls, for the tests (bn_amx_tile_blocks)

unsigned long bn_amx_tile_blocks(void) { return atomic_load_explicit(&tile_blocks, memory_order_relaxed); }

// ldtilecfg's 64-byte operand, palette 1: every tile 16 rows of 64 bytes (the CPU has
// them: bn_cpu_detect reads palette 1 from CPUID leaf 0x1D).
typedef struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

static void amx_configure(void) {
    amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.colsb[t] = 64, c.rows[t] = 16;
    _tile_loadconfig(&c);
}

// Token t's activations (K bytes) into the tiles: token group t / 16, K slab s
// at packed + (t / 16 * K / 64 + s) * BN_AMX_TILE, tile row kk holding the 4
// bytes k = 64 s + 4 kk .. + 4 in column t % 16 (bn_cpu_kernels.pack_token). The
// columns of a last group's missing tokens give sums that are never stored.
void bn_pack_token_amx(const int8_t *q, int64_t K, int t, int8_t *packed) {
    const int64_t slabs = K / 64;
    int8_t *column = packed + (int64_t)(t / 16) * slabs * BN_AMX_TILE + (t % 16) * 4;
    for (int64_t s = 0; s < slabs; s++)
        for (int kk = 0; kk < 16; kk++) memcpy(column + s * BN_AMX_TILE + 64 * kk, q + 64 * s + 4 * kk, 4);
}

// y[t][r0 + i] = acc[i][t] - qsum[t] for i < 16 rows, t < nt tokens.
static void store_sums(const int32_t acc[16 * 16], const int32_t *qsum, int nt, int32_t *y, int64_t ldy,
                       int64_t r0) {
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < 16; i++) y[t * ldy + r0 + i] = acc[16 * i + t] - qsum[t];
}

// Rows r0 .. r0 + 16 * row_tiles (1 or 2 tiles) of a decoded panel (row stride
// K) times n packed tokens.
static void gemm_panel(const uint8_t *panel, int64_t K, int row_tiles, const int8_t *tiles, int n,
                       const int32_t *qsum, int32_t *y, int64_t ldy, int64_t r0) {
    const int64_t slabs = K / 64;
    int32_t acc[16 * 16] __attribute__((aligned(64)));
    for (int t0 = 0; t0 < n; t0 += 32) {
        const int two = n - t0 > 16;
        const int8_t *b0 = tiles + (int64_t)(t0 / 16) * slabs * BN_AMX_TILE, *b1 = b0 + slabs * BN_AMX_TILE;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t s = 0; s < slabs; s++) {
            _tile_loadd(4, panel + 64 * s, K);
            _tile_loadd(6, b0 + s * BN_AMX_TILE, 64);
            _tile_dpbusd(0, 4, 6);
            if (two) {
                _tile_loadd(7, b1 + s * BN_AMX_TILE, 64);
                _tile_dpbusd(1, 4, 7);
            }
            if (row_tiles == 2) {
                _tile_loadd(5, panel + 16 * K + 64 * s, K);
                _tile_dpbusd(2, 5, 6);
                if (two) _tile_dpbusd(3, 5, 7);
            }
        }
        const int n0 = two ? 16 : n - t0, n1 = n - t0 - 16;
        _tile_stored(0, acc, 64);
        store_sums(acc, qsum + t0, n0, y + t0 * ldy, ldy, r0);
        if (two) {
            _tile_stored(1, acc, 64);
            store_sums(acc, qsum + t0 + 16, n1 < 16 ? n1 : 16, y + (t0 + 16) * ldy, ldy, r0);
        }
        if (row_tiles == 2) {
            _tile_stored(2, acc, 64);
            store_sums(acc, qsum + t0, n0, y + t0 * ldy, ldy, r0 + 16);
            if (two) {
                _tile_stored(3, acc, 64);
                store_sums(acc, qsum + t0 + 16, n1 < 16 ? n1 : 16, y + (t0 + 16) * ldy, ldy, r0 + 16);
            }
        }
    }
}

// One block of at most BN_AMX_TOKEN_BLOCK tokens, packed at tiles; panel: 32 x K
// bytes, 64-byte aligned.
static void gemm_block(const uint8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *q,
                       const int8_t *tiles, const int32_t *qsum, int n, int32_t *y, int64_t ldy, uint8_t *panel) {
    const int64_t rb = K / 4, r16 = row0 + (row1 - row0) / 16 * 16;
    atomic_fetch_add_explicit(&tile_blocks, 1, memory_order_relaxed);
    for (int64_t r = row0; r < r16; r += 32) {
        const int row_tiles = r16 - r >= 32 ? 2 : 1;
        for (int i = 0; i < 16 * row_tiles; i++) bn_decode_row_avx512(w + (r + i) * rb, K / 128, panel + i * K);
        gemm_panel(panel, K, row_tiles, tiles, n, qsum, y, ldy, r);
    }
    if (r16 < row1) bn_ternary_gemm_avx512(w, K, r16, row1, q, qsum, n, y, ldy);
}

void bn_ternary_gemm_amx_packed(const uint8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *q,
                                const int8_t *packed, const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    uint8_t *panel = n >= BN_AMX_MIN_TOKENS ? aligned_alloc(64, (size_t)(32 * K)) : NULL;
    if (!panel) { // decode, or no memory for the panel: the AVX-512 GEMM
        bn_ternary_gemm_avx512(w, K, row0, row1, q, qsum, n, y, ldy);
        return;
    }
    amx_configure();
    for (int t0 = 0; t0 < n; t0 += BN_AMX_TOKEN_BLOCK) {
        const int nb = n - t0 < BN_AMX_TOKEN_BLOCK ? n - t0 : BN_AMX_TOKEN_BLOCK;
        if (nb >= BN_AMX_MIN_TOKENS)
            gemm_block(w, K, row0, row1, q + t0 * K, packed + t0 / 16 * (K / 64) * BN_AMX_TILE, qsum + t0, nb,
                       y + t0 * ldy, ldy, panel);
        else
            bn_ternary_gemm_avx512(w, K, row0, row1, q + t0 * K, qsum + t0, nb, y + t0 * ldy, ldy);
    }
    _tile_release();
    free(panel);
}

// ternary_gemm for callers that did not pack the tokens: packs them, then the above.
void bn_ternary_gemm_amx(const uint8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *q,
                         const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    int8_t *packed = n >= BN_AMX_MIN_TOKENS ? aligned_alloc(64, (size_t)bn_packed_bytes(K, n)) : NULL;
    if (!packed) {
        bn_ternary_gemm_avx512(w, K, row0, row1, q, qsum, n, y, ldy);
        return;
    }
    if (n % 16) // a last group's missing tokens: zeros, though their sums are never stored
        memset(packed + n / 16 * 16 * K, 0, (size_t)(16 * K));
    for (int t = 0; t < n; t++) bn_pack_token_amx(q + (int64_t)t * K, K, t, packed);
    bn_ternary_gemm_amx_packed(w, K, row0, row1, q, packed, qsum, n, y, ldy);
    free(packed);
}

double bn_amx_peak_macs(long iters, int32_t *acc) {
    uint8_t ones[BN_AMX_TILE] __attribute__((aligned(64)));
    int32_t sums[16 * 16] __attribute__((aligned(64)));
    memset(ones, 1, sizeof ones);
    amx_configure();
    _tile_loadd(4, ones, 64);
    _tile_loadd(6, ones, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long it = 0; it < iters; it++) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 6);
        _tile_dpbusd(2, 4, 6);
        _tile_dpbusd(3, 4, 6);
    }
    _tile_stored(0, sums, 64);
    _tile_release();
    *acc = sums[0];
    return 4.0 * 16 * 16 * 64 * (double)iters;
}

#else // no AMX intrinsics in this compiler: never selected (cpu_features.c)

const int bn_amx_built = 0;

unsigned long bn_amx_tile_blocks(void) { return 0; }

void bn_pack_token_amx(const int8_t *q, int64_t K, int t, int8_t *packed) {
    (void)q, (void)K, (void)t, (void)packed;
}

void bn_ternary_gemm_amx_packed(const uint8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *q,
                                const int8_t *packed, const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    (void)packed;
    bn_ternary_gemm_avx512(w, K, row0, row1, q, qsum, n, y, ldy);
}

void bn_ternary_gemm_amx(const uint8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *q,
                         const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    bn_ternary_gemm_avx512(w, K, row0, row1, q, qsum, n, y, ldy);
}

double bn_amx_peak_macs(long iters, int32_t *acc) {
    (void)iters;
    *acc = 0;
    return 0;
}

#endif

const bn_cpu_kernels bn_kernels_amx = {
    .name = "amx",
    .quantize_i8 = bn_quantize_i8_avx2,
    .half_store = bn_half_store_avx2,
    .half_load = bn_half_load_avx2,
    .half_round = bn_half_round_avx2,
    .ternary_gemm = bn_ternary_gemm_amx,
    .f16_gemv = bn_f16_gemv_avx512,
    .f16_gemm = bn_f16_gemm_avx512,
    .attention = bn_attention_avx512,
    .i8_gemv = bn_i8_gemv_avx512,
    .silu_mul = bn_silu_mul_avx512,
    .ternary_q8k = bn_ternary_q8k_avx2,
    .pack_token = bn_pack_token_amx,
    .ternary_gemm_packed = bn_ternary_gemm_amx_packed,
};
