// kernels_avx2.c - AVX2 + FMA + F16C kernels: ternary GEMV/GEMM on I2_S, f16 GEMV.
//
// Ternary design (docs/architecture.md: I2_S). A 32-byte block holds 128 codes; bits 7:6 of byte g
// are element g, bits 5:4 element g+32, and so on, so each of the four 2-bit
// fields of the block, taken across the 32 bytes, lines up with 32 contiguous
// activations. Per block:
//   - split the bytes into low and high nibbles (and, shift+and);
//   - map each nibble's two fields to the offset-binary code c = w+1 with vpshufb
//     lookups (4 shuffles). The lookup sends the never-written code 0b11 to 1
//     (weight 0) exactly like the scalar oracle, at no extra cost compared with
//     shift+mask extraction;
//   - vpmaddubsw(c unsigned, q signed) -> int16 pairs. c <= 2 and |q| <= 128, so
//     a pair is within [-512, 508]: no saturation. Sums of 4 groups x 8 blocks
//     stay within int16 ([-16384, 16256]); then vpmaddwd with ones widens to int32.
//   - result = dot(c, q) - sum(q).
// Decode GEMV (n = 1, memory-bound): 4 rows per pass decode each block straight
// from memory, sharing the 4 activation loads; 4 independent streams plus a
// software prefetch of the tiles 2 ahead keep DRAM busy. ~15 vector ops a block.
// Prefill GEMM (n > 1, compute-bound), in blocks of 64 tokens: each 4-row group
// decodes a K piece once into an L1 buffer of codes in element order, then every
// token pair runs over it: 8 vpmaddubsw + 8 vpaddw per 32 elements x 4 rows x 2
// tokens, no decode in the loop (inner loop in asm, see gemm_chunk2). K pieces
// are the outer loop so the block's activations for one piece (copied into one
// contiguous run when K has several pieces) stay in L2; the next group's weights
// are prefetched while the current one computes (gemm_tiling.h). On Zen 3
// vpmaddubsw issues 2 a cycle but, paired with the vpaddw it needs, about 1.6:
// that, not memory, is the ceiling here (bench_kernels reports the achieved rate).
//
// f16 GEMV: 4 rows at a time, 16 halves per row per step (two vcvtph2ps + FMA
// chains to hide FMA latency); tails (K % 16) in scalar F16C. f16 GEMM (the head
// of a batch): one row against four tokens, each converted vector used four
// times, every (row, token) sum in the GEMV's order.
//
// Attention, up to 4 query heads of one GQA group at a time, so each K and V row
// is loaded and converted (vcvtph2ps) once for the group, computed as bitnet.cpp's
// ggml does for a decoded token (bn_attention_head in ops.h, its scalar twin, bit
// for bit): q.k_j as ggml_vec_dot_f16 (4 FMA accumulators of 8 lanes over 32
// elements a step, its reduction tree, a double tail); softmax with ggml_v_expf
// and ggml's per-8 float sums; probabilities rounded with vcvtps2ph (IEEE
// nearest-even, = bn_f32_to_f16); p.V as ggml_vec_dot_f16 over the keys (lane
// j % 32), 16 output floats x 4 heads per pass, each lane's chain in registers.
// i8 GEMV (int8 LM head): both operands sign-extended to int16 (vpmovsxbw) and
// multiplied by vpmaddwd straight into int32 pairs: exact for every int8 value,
// -128 included (a pair is at most 2 * 128 * 128 = 32768, which int32 holds). The
// vpmaddubsw route needs |w| as u8 with the sign moved onto x and breaks on
// w = x = -128; it would save a few uops a row, but this GEMV is memory-bound
// either way. 4 rows a pass share the 16 extended activations of each step.
#include <immintrin.h>
#include <math.h>

#include "gemm_tiling.h"
#include "ggml_math.h"
#include "kernels.h"

// Blocks summed in int16 before widening to int32 (bound above: 8 * 2048 < 32767).
#define BN_I16_BLOCKS 8
// The prefill GEMM goes to the exact limit to halve its widening overhead: 16
// blocks = 64 pair sums a lane, within [64 * -512, 64 * 508] = [-32768, 32512].
// (tests/test_kernels_simd.c hits -32768 exactly: all +1 weights, all -128.)
#define BN_GEMM_I16_BLOCKS 16
// The asm needs the decode buffer's row offsets as literals (gemm_tiling.h).
#define BN_KPIECE2 8192  // 2 * BN_KPIECE
#define BN_KPIECE3 12288 // 3 * BN_KPIECE
_Static_assert(BN_KPIECE2 == 2 * BN_KPIECE && BN_KPIECE3 == 3 * BN_KPIECE, "asm offsets");
#define BN_STR_(x) #x
#define BN_STR(x) BN_STR_(x)
// GEMV software prefetch: how many 4-row tiles ahead. Rows of 640 bytes (K =
// 2560) are too short for the hardware prefetcher to ramp up on each stream.
#ifndef BN_PF_TILES
#define BN_PF_TILES 2
#endif

// code lookup: fields 00,01,10,11 -> c = w+1 = 0,1,2,1. `hi` reads the upper
// field of a nibble (bits 3:2), `lo` the lower (bits 1:0).
#define C4(x) ((x) == 3 ? 1 : (x))
#define LUT_HI(n) C4((n) >> 2)
#define LUT_LO(n) C4((n)&3)
#define LUT16(F)                                                                         \
    F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), F(8), F(9), F(10), F(11), F(12),    \
        F(13), F(14), F(15)

static const int8_t bn_lut_hi[32] __attribute__((aligned(32))) = {LUT16(LUT_HI),
                                                                   LUT16(LUT_HI)};
static const int8_t bn_lut_lo[32] __attribute__((aligned(32))) = {LUT16(LUT_LO),
                                                                   LUT16(LUT_LO)};

// Sums of 4 rows' int16 partials, widened and packed as [r0 r1 r2 r3] in each
// 128-bit lane (the caller adds the two lanes at the end).
BN_ALWAYS_INLINE __m256i pack4_i16(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i h01 = _mm256_hadd_epi32(_mm256_madd_epi16(a0, ones), _mm256_madd_epi16(a1, ones));
    const __m256i h23 = _mm256_hadd_epi32(_mm256_madd_epi16(a2, ones), _mm256_madd_epi16(a3, ones));
    return _mm256_hadd_epi32(h01, h23);
}

BN_ALWAYS_INLINE __m128i fold_lanes(__m256i v) {
    return _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

BN_ALWAYS_INLINE int32_t hsum_i16(__m256i a) {
    __m128i s = fold_lanes(_mm256_madd_epi16(a, _mm256_set1_epi16(1)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

// dot(c, q) of one 128-element block, as int16 partials: codes decoded from the
// 32 weight bytes at wp, activations q0..q3 (elements 0-31, 32-63, 64-95, 96-127).
BN_ALWAYS_INLINE __m256i block_dot(const uint8_t *wp, __m256i q0, __m256i q1, __m256i q2,
                                   __m256i q3, __m256i lut_hi, __m256i lut_lo, __m256i m4) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)wp);
    const __m256i lo = _mm256_and_si256(v, m4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    const __m256i p0 = _mm256_maddubs_epi16(_mm256_shuffle_epi8(lut_hi, hi), q0);
    const __m256i p1 = _mm256_maddubs_epi16(_mm256_shuffle_epi8(lut_lo, hi), q1);
    const __m256i p2 = _mm256_maddubs_epi16(_mm256_shuffle_epi8(lut_hi, lo), q2);
    const __m256i p3 = _mm256_maddubs_epi16(_mm256_shuffle_epi8(lut_lo, lo), q3);
    return _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3));
}

#define LOADQ(p) _mm256_loadu_si256((const __m256i *)(p))

// GEMV, 4 rows from wr (row stride rb): four independent weight streams.
static void gemv_rows4(const uint8_t *wr, int64_t rb, int64_t K, const int8_t *q,
                       int32_t qsum, int32_t *y) {
    const __m256i lut_hi = _mm256_load_si256((const __m256i *)bn_lut_hi);
    const __m256i lut_lo = _mm256_load_si256((const __m256i *)bn_lut_lo);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const uint8_t *w0 = wr, *w1 = wr + rb, *w2 = wr + 2 * rb, *w3 = wr + 3 * rb;
    // Prefetching past the matrix end is harmless: prefetches never fault. The
    // address is formed as an integer so no out-of-object pointer is created.
    const char *pf = (const char *)((uintptr_t)wr + (uintptr_t)(BN_PF_TILES * 4 * rb));
    __m256i acc = _mm256_setzero_si256();
    const int64_t nb = K / 128;
    for (int64_t b0 = 0; b0 < nb; b0 += BN_I16_BLOCKS) {
        const int64_t b1 = b0 + BN_I16_BLOCKS < nb ? b0 + BN_I16_BLOCKS : nb;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t b = b0; b < b1; b++) {
            const int8_t *qb = q + 128 * b;
            const __m256i q0 = LOADQ(qb), q1 = LOADQ(qb + 32), q2 = LOADQ(qb + 64),
                          q3 = LOADQ(qb + 96);
            // The 4 rows are contiguous: prefetch the tile BN_PF_TILES ahead at the
            // same pace we consume this one (128 bytes per block step).
            _mm_prefetch((const char *)(pf + 128 * b), _MM_HINT_T0);
            _mm_prefetch((const char *)(pf + 128 * b + 64), _MM_HINT_T0);
            a0 = _mm256_add_epi16(a0, block_dot(w0 + 32 * b, q0, q1, q2, q3, lut_hi, lut_lo, m4));
            a1 = _mm256_add_epi16(a1, block_dot(w1 + 32 * b, q0, q1, q2, q3, lut_hi, lut_lo, m4));
            a2 = _mm256_add_epi16(a2, block_dot(w2 + 32 * b, q0, q1, q2, q3, lut_hi, lut_lo, m4));
            a3 = _mm256_add_epi16(a3, block_dot(w3 + 32 * b, q0, q1, q2, q3, lut_hi, lut_lo, m4));
        }
        acc = _mm256_add_epi32(acc, pack4_i16(a0, a1, a2, a3));
    }
    _mm_storeu_si128((__m128i *)y, _mm_sub_epi32(fold_lanes(acc), _mm_set1_epi32(qsum)));
}

static int32_t gemv_row1(const uint8_t *wr, int64_t K, const int8_t *q, int32_t qsum) {
    const __m256i lut_hi = _mm256_load_si256((const __m256i *)bn_lut_hi);
    const __m256i lut_lo = _mm256_load_si256((const __m256i *)bn_lut_lo);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    int32_t sum = 0;
    const int64_t nb = K / 128;
    for (int64_t b0 = 0; b0 < nb; b0 += BN_I16_BLOCKS) {
        const int64_t b1 = b0 + BN_I16_BLOCKS < nb ? b0 + BN_I16_BLOCKS : nb;
        __m256i a = _mm256_setzero_si256();
        for (int64_t b = b0; b < b1; b++) {
            const int8_t *qb = q + 128 * b;
            a = _mm256_add_epi16(a, block_dot(wr + 32 * b, LOADQ(qb), LOADQ(qb + 32),
                                              LOADQ(qb + 64), LOADQ(qb + 96), lut_hi, lut_lo, m4));
        }
        sum += hsum_i16(a);
    }
    return sum - qsum;
}

// Decodes `nb` blocks of a row into offset-binary codes in element order, so that
// buf[k] pairs with q[k] (one vpmaddubsw per 32 elements, no decode in the GEMM).
static void decode_row(const uint8_t *wr, int64_t nb, uint8_t *buf) {
    const __m256i lut_hi = _mm256_load_si256((const __m256i *)bn_lut_hi);
    const __m256i lut_lo = _mm256_load_si256((const __m256i *)bn_lut_lo);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < nb; b++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(wr + 32 * b));
        const __m256i lo = _mm256_and_si256(v, m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        __m256i *o = (__m256i *)(buf + 128 * b);
        _mm256_store_si256(o + 0, _mm256_shuffle_epi8(lut_hi, hi));
        _mm256_store_si256(o + 1, _mm256_shuffle_epi8(lut_lo, hi));
        _mm256_store_si256(o + 2, _mm256_shuffle_epi8(lut_hi, lo));
        _mm256_store_si256(o + 3, _mm256_shuffle_epi8(lut_lo, lo));
    }
}

// int16 chunks of one K piece (in 32-element steps): as few as the int16 bound
// allows, of equal length (80 steps -> 2 x 40 rather than 64 + 16: a short chunk
// costs a whole loop start and widening for little work), and even, for the
// 2x-unrolled loop (steps is a multiple of 4: K pieces are whole blocks).
static int64_t gemm_chunk_steps(int64_t steps) {
    const int64_t max_steps = 128 * BN_GEMM_I16_BLOCKS / 32;
    const int64_t nchunks = (steps + max_steps - 1) / max_steps;
    return ((steps + nchunks - 1) / nchunks + 1) / 2 * 2;
}

// One 32-element step of gemm_chunk2 at byte offset OFF: load both tokens'
// activations, then per row load its codes and multiply-accumulate both tokens.
#define GEMM_ROW(ROWOFF, A, B)                                                             \
    "vmovdqa " ROWOFF "(%[c],%[i]), %%ymm12\n\t"                                           \
    "vpmaddubsw %%ymm14, %%ymm12, %%ymm13\n\t"                                             \
    "vpaddw %%ymm13, %[" A "], %[" A "]\n\t"                                               \
    "vpmaddubsw %%ymm15, %%ymm12, %%ymm13\n\t"                                             \
    "vpaddw %%ymm13, %[" B "], %[" B "]\n\t"
#define GEMM_STEP(OFF)                                                                     \
    "vmovdqu " OFF "(%[qa],%[i]), %%ymm14\n\t"                                             \
    "vmovdqu " OFF "(%[qb],%[i]), %%ymm15\n\t"                                             \
    GEMM_ROW(OFF, "a0", "b0") GEMM_ROW(BN_STR(BN_KPIECE) "+" OFF, "a1", "b1")            \
    GEMM_ROW(BN_STR(BN_KPIECE2) "+" OFF, "a2", "b2") GEMM_ROW(BN_STR(BN_KPIECE3) "+" OFF, "a3", "b3")

// 4 decoded rows (c, row stride BN_KPIECE) x 2 tokens (qa, qb) over `steps` x 32
// elements, adding the 4 row sums of each token to sa, sb (packed by pack4_i16).
BN_ALWAYS_INLINE void gemm_chunk2(const uint8_t *c, const int8_t *qa, const int8_t *qb,
                                  int64_t steps, __m256i *sa, __m256i *sb) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    __m256i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    // gcc keeps shuffling these eight accumulators between registers when this
    // loop is written with intrinsics (~35 instructions for 8 multiplies; the
    // front end, not vpmaddubsw, then sets the pace), so it is spelled out and
    // unrolled twice: per 32 elements, 6 loads, 8 vpmaddubsw, 8 vpaddw; 3 loop
    // instructions per 64. steps is even and >= 2.
    int64_t i = 0;
    const int64_t nbytes = 32 * steps;
    __asm__(".p2align 6\n1:\n\t" // a fixed alignment: it moved the speed by ~4% between builds
            GEMM_STEP("0") GEMM_STEP("32")
            "add $64, %[i]\n\t"
            "cmp %[n], %[i]\n\t"
            "jl 1b\n\t"
            : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [b0] "+x"(b0),
              [b1] "+x"(b1), [b2] "+x"(b2), [b3] "+x"(b3), [i] "+r"(i)
            : [c] "r"(c), [qa] "r"(qa), [qb] "r"(qb), [n] "r"(nbytes)
            : "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
    *sa = _mm256_add_epi32(*sa, pack4_i16(a0, a1, a2, a3));
    *sb = _mm256_add_epi32(*sb, pack4_i16(b0, b1, b2, b3));
}

// The same for one token (odd n).
BN_ALWAYS_INLINE void gemm_chunk1(const uint8_t *c, const int8_t *q, int64_t steps,
                                  __m256i *sa) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < 32 * steps; k += 32) {
        const __m256i u = LOADQ(q + k);
        a0 = _mm256_add_epi16(a0, _mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(c + k)), u));
        a1 = _mm256_add_epi16(a1, _mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(c + BN_KPIECE + k)), u));
        a2 = _mm256_add_epi16(a2, _mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(c + 2 * BN_KPIECE + k)), u));
        a3 = _mm256_add_epi16(a3, _mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(c + 3 * BN_KPIECE + k)), u));
    }
    *sa = _mm256_add_epi32(*sa, pack4_i16(a0, a1, a2, a3));
}

BN_ALWAYS_INLINE void add_row4(int32_t *y, __m256i s) {
    _mm_storeu_si128((__m128i *)y, _mm_add_epi32(_mm_loadu_si128((const __m128i *)y), fold_lanes(s)));
}

// Runs all n tokens (activations q + t * ldq, piece of kp elements) over one
// decoded 4-row group c, adding to the 4 outputs y + t * ldy. One call per group,
// not per token pair: the call and its vzeroupper were ~5% of the prefill.
__attribute__((noinline)) static void gemm_group(const uint8_t *c, int64_t kp, const int8_t *q,
                                                 int64_t ldq, int n, int32_t *y, int64_t ldy) {
    const int64_t steps = kp / 32, chunk = gemm_chunk_steps(steps);
    int t = 0;
    for (; t + 2 <= n; t += 2) {
        const int8_t *qa = q + t * ldq, *qb = qa + ldq;
        __m256i sa = _mm256_setzero_si256(), sb = sa;
        for (int64_t s0 = 0; s0 < steps; s0 += chunk) {
            const int64_t ns = steps - s0 < chunk ? steps - s0 : chunk;
            gemm_chunk2(c + 32 * s0, qa + 32 * s0, qb + 32 * s0, ns, &sa, &sb);
        }
        add_row4(y + t * ldy, sa);
        add_row4(y + (t + 1) * ldy, sb);
    }
    if (t < n) {
        __m256i sa = _mm256_setzero_si256();
        for (int64_t s0 = 0; s0 < steps; s0 += chunk) {
            const int64_t ns = steps - s0 < chunk ? steps - s0 : chunk;
            gemm_chunk1(c + 32 * s0, q + t * ldq + 32 * s0, ns, &sa);
        }
        add_row4(y + t * ldy, sa);
    }
}

// One block of at most BN_GEMM_TOKEN_BLOCK tokens (n == 1: the decode GEMV).
static void ternary_gemm_block(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                               const int8_t *q, const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    const int64_t rb = K / 4;
    int64_t r = row0;
    if (n == 1) {
        // Decode GEMV: memory-bound, 4 independent row streams per pass.
        for (; r + 4 <= row1; r += 4) gemv_rows4(w + r * rb, rb, K, q, qsum[0], y + r);
        for (; r < row1; r++) y[r] = gemv_row1(w + r * rb, K, q, qsum[0]);
        return;
    }
    // Prefill GEMM: the shared plan (gemm_tiling.h) over whole 4-row groups.
    const int64_t r4 = row0 + (row1 - row0) / 4 * 4;
    uint8_t buf[4 * BN_KPIECE] __attribute__((aligned(32)));
    bn_gemm_groups(w, K, row0, r4, q, qsum, n, y, ldy, buf, decode_row, gemm_group);
    r = r4;
    for (; r < row1; r++)
        for (int t = 0; t < n; t++) y[t * ldy + r] = gemv_row1(w + r * rb, K, q + t * K, qsum[t]);
}

void bn_ternary_gemm_avx2(const uint8_t *w, int64_t K, int64_t row0, int64_t row1,
                          const int8_t *q, const int32_t *qsum, int n, int32_t *y, int64_t ldy) {
    bn_gemm_token_blocks(ternary_gemm_block, w, K, row0, row1, q, qsum, n, y, ldy);
}

// ---- f16 GEMV ------------------------------------------------------------------

BN_ALWAYS_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

BN_ALWAYS_INLINE __m256 load_h8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

BN_ALWAYS_INLINE void f16_tile(const uint16_t *w, int64_t K, const float *x, float *y, int R) {
    __m256 a0[4], a1[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) a0[i] = a1[i] = _mm256_setzero_ps();
    // R = 4 rows are contiguous: prefetch the tile BN_PF_TILES ahead, 128 bytes
    // per 16-element step (4 rows x 32 bytes), i.e. at the pace we consume this one.
    const char *pf = (const char *)((uintptr_t)w + (uintptr_t)(BN_PF_TILES * 4 * K * 2));
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        if (R == 4) {
            _mm_prefetch(pf + 8 * k, _MM_HINT_T0);
            _mm_prefetch(pf + 8 * k + 64, _MM_HINT_T0);
        }
        const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            a0[i] = _mm256_fmadd_ps(load_h8(w + i * K + k), x0, a0[i]);
            a1[i] = _mm256_fmadd_ps(load_h8(w + i * K + k + 8), x1, a1[i]);
        }
    }
    if (k + 8 <= K) {
        const __m256 x0 = _mm256_loadu_ps(x + k);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) a0[i] = _mm256_fmadd_ps(load_h8(w + i * K + k), x0, a0[i]);
        k += 8;
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        float s = hsum_ps(_mm256_add_ps(a0[i], a1[i]));
        for (int64_t kk = k; kk < K; kk++) s += _cvtsh_ss(w[i * K + kk]) * x[kk];
        y[i] = s;
    }
}

void bn_f16_gemv_avx2(const uint16_t *w, int64_t K, int64_t row0, int64_t row1,
                      const float *x, float *y) {
    int64_t r = row0;
    for (; r + 4 <= row1; r += 4) f16_tile(w + r * K, K, x, y + r, 4);
    for (; r < row1; r++) f16_tile(w + r * K, K, x, y + r, 1);
}

// f16_gemm: one row against T tokens (x[t], results to *y[t]). Each converted
// weight vector serves every token, and each (row, token) sum runs exactly as
// f16_tile's does for that row (two 8-lane accumulators over alternate 8-element
// chunks, their sum, the horizontal add, then the tail), so the results are
// f16_gemv's bit for bit.
BN_ALWAYS_INLINE void f16_row_tokens(const uint16_t *w, int64_t K, const float *const *x, float *const *y, int T) {
    __m256 a0[4], a1[4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) a0[t] = a1[t] = _mm256_setzero_ps();
    const char *pf = (const char *)((uintptr_t)w + (uintptr_t)(4 * K * 2)); // the row 4 ahead
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        _mm_prefetch(pf + 2 * k, _MM_HINT_T0);
        const __m256 w0 = load_h8(w + k), w1 = load_h8(w + k + 8);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + k), a0[t]);
            a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + k + 8), a1[t]);
        }
    }
    if (k + 8 <= K) {
        const __m256 w0 = load_h8(w + k);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + k), a0[t]);
        k += 8;
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        float s = hsum_ps(_mm256_add_ps(a0[t], a1[t]));
        for (int64_t kk = k; kk < K; kk++) s += _cvtsh_ss(w[kk]) * x[t][kk];
        *y[t] = s;
    }
}

// Tokens four at a time, and for each group every row (a caller's block of the
// head, in L2); a lone token takes f16_gemv's four-row tiles.
static void f16_gemm_avx2(const uint16_t *w, int64_t K, int64_t row0, int64_t row1, const float *x, int64_t ldx,
                          const int *idx, int n, float *y, int64_t ldy) {
    for (int i0 = 0; i0 < n; i0 += 4) {
        const int T = n - i0 < 4 ? n - i0 : 4;
        const float *xt[4];
        float *yt[4];
        for (int t = 0; t < T; t++) xt[t] = x + (int64_t)(idx ? idx[i0 + t] : i0 + t) * ldx;
        if (T == 1) {
            bn_f16_gemv_avx2(w, K, row0, row1, xt[0], y + (int64_t)i0 * ldy);
            continue;
        }
        for (int64_t r = row0; r < row1; r++) {
            for (int t = 0; t < T; t++) yt[t] = y + (int64_t)(i0 + t) * ldy + r;
            const uint16_t *wr = w + r * K;
            switch (T) {
            case 4: f16_row_tokens(wr, K, xt, yt, 4); break;
            case 3: f16_row_tokens(wr, K, xt, yt, 3); break;
            default: f16_row_tokens(wr, K, xt, yt, 2); break;
            }
        }
    }
}

// ---- int8 GEMV -------------------------------------------------------------------

BN_ALWAYS_INLINE __m256i load_i8x16(const int8_t *p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
}

BN_ALWAYS_INLINE void i8_tile(const int8_t *w, int64_t K, const int8_t *x, int32_t *y, int R) {
    __m256i acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) acc[i] = _mm256_setzero_si256();
    // R = 4 rows are contiguous: prefetch the tile BN_PF_TILES ahead, 64 bytes per
    // 16-element step (4 rows x 16 bytes), the pace at which this one is read.
    const char *pf = (const char *)((uintptr_t)w + (uintptr_t)(BN_PF_TILES * 4 * K));
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        if (R == 4) _mm_prefetch(pf + 4 * k, _MM_HINT_T0);
        const __m256i xv = load_i8x16(x + k);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(load_i8x16(w + i * K + k), xv));
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        __m128i s = fold_lanes(acc[i]);
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
        int32_t t = _mm_cvtsi128_si32(s);
        for (int64_t kk = k; kk < K; kk++) t += (int32_t)w[i * K + kk] * x[kk];
        y[i] = t;
    }
}

void bn_i8_gemv_avx2(const int8_t *w, int64_t K, int64_t row0, int64_t row1, const int8_t *x,
                     int32_t *y) {
    int64_t r = row0;
    for (; r + 4 <= row1; r += 4) i8_tile(w + r * K, K, x, y + r, 4);
    for (; r < row1; r++) i8_tile(w + r * K, K, x, y + r, 1);
}

// ---- attention -------------------------------------------------------------------

// No FMA contraction beyond the explicit ones (the reductions' adds must round
// as the scalar twin's do): gcc contracts across intrinsics under gnu11 unless
// told not to per function; clang only within an expression, switched off here
// for the rest of the file.
#if defined(__clang__)
#pragma clang fp contract(off)
#define BN_NO_FP_CONTRACT
#else
#define BN_NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
#endif

// Heads of a GQA group done together (the 2B-4T model has 4 per KV head).
#define BN_ATT_GROUP 4

// ---- softmax ---------------------------------------------------------------------

// ggml_v_expf of a bitnet.cpp AVX2+FMA build, 8 lanes (kernels.h: bn_silu_mul_fn;
// the scalar twin bn_expf_ggml in ggml_math.h spells out each step).
BN_ALWAYS_INLINE __m256 exp8_ggml(__m256 x) {
    const __m256 shift = _mm256_set1_ps(BN_EXPF_SHIFT);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(BN_EXPF_LOG2E), shift);
    const __m256 n = _mm256_sub_ps(z, shift);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(BN_EXPF_LN2_LO),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(BN_EXPF_LN2_HI), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(0x3f800000)));
    const __m256 absn = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(absn, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 hi = _mm256_fmadd_ps(_mm256_set1_ps(BN_EXPF_C5), b,
                                      _mm256_set1_ps(BN_EXPF_C4));
    const __m256 lo = _mm256_fmadd_ps(_mm256_set1_ps(BN_EXPF_C3), b,
                                      _mm256_set1_ps(BN_EXPF_C2));
    const __m256 j = _mm256_fmadd_ps(_mm256_fmadd_ps(hi, u, lo), u,
                                     _mm256_mul_ps(_mm256_set1_ps(BN_EXPF_C1), b));
    const __m256 normal = _mm256_fmadd_ps(k, j, k);
    if (!_mm256_movemask_ps(big)) return normal;
    // |n| > 126: 2^n split as s2 * s1; |n| > 192: s1 * s1 (+inf or 0).
    const __m256i g = _mm256_and_si256(
        _mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
        _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 huge = _mm256_cmp_ps(absn, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    return _mm256_blendv_ps(_mm256_blendv_ps(normal, scaled, big), _mm256_mul_ps(s1, s1), huge);
}

// ggml_vec_soft_max_f32 (AVX2+FMA build), as bn_softmax: ggml_v_expf 8 lanes at a
// time (the tail padded with -inf, exp +0), each block summed in float in ggml's
// tree (bn_softmax_block_sum), the block sums accumulated in double.
BN_NO_FP_CONTRACT void bn_softmax_avx2(float *x, int n) {
    __m256 m8 = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) m8 = _mm256_max_ps(_mm256_loadu_ps(x + i), m8);
    float lanes[8];
    _mm256_storeu_ps(lanes, m8);
    float max = -INFINITY;
    for (int l = 0; l < 8; l++) max = lanes[l] > max ? lanes[l] : max;
    for (; i < n; i++) max = x[i] > max ? x[i] : max;

    const __m256 vmax = _mm256_set1_ps(max);
    double sum = 0.0;
    for (i = 0; i < n; i += 8) {
        float *xi = x + i, tail[8];
        if (n - i < 8) {
            for (int l = 0; l < 8; l++) tail[l] = l < n - i ? xi[l] : -INFINITY;
            xi = tail;
        }
        const __m256 e = exp8_ggml(_mm256_sub_ps(_mm256_loadu_ps(xi), vmax));
        _mm256_storeu_ps(xi, e);
        __m128 h = _mm_add_ps(_mm256_extractf128_ps(e, 1), _mm256_castps256_ps128(e));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        sum += (double)_mm_cvtss_f32(h);
        if (xi == tail)
            for (int l = 0; l < n - i; l++) x[i + l] = tail[l];
    }
    const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= _mm256_cvtss_f32(inv);
}

// ggml_vec_dot_f16's reduction of its 4 accumulators (bn_dot_f16_reduce):
// (s0 + s2) + (s1 + s3), the 128-bit halves added, two hadds.
BN_ALWAYS_INLINE float dot_f16_reduce(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    const __m256 x = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

// Scores of key rows kj and kj + stride for G heads (q rows hd apart), each as
// ggml_vec_dot_f16: accumulator c (of 4) takes the 8 elements at 32 m + 8 c, by
// FMA, m ascending; dot_f16_reduce; the hd % 32 tail in double. One conversion of
// each 8 halves of K serves all G heads; two keys give 2G independent chains.
BN_NO_FP_CONTRACT BN_ALWAYS_INLINE void qk_group(const float *q, int G, const uint16_t *kj,
                                                 int64_t stride, int two, int hd, float scale,
                                                 float *s, int64_t s_stride) {
    __m256 a[4][BN_ATT_GROUP], b[4][BN_ATT_GROUP];
    const int np = hd & ~31;
    for (int c = 0; c < 4; c++) {
#pragma GCC unroll 4
        for (int i = 0; i < BN_ATT_GROUP; i++) a[c][i] = b[c][i] = _mm256_setzero_ps();
        for (int d = 8 * c; d < np; d += 32) {
            const __m256 ka = load_h8(kj + d);
            const __m256 kb = two ? load_h8(kj + stride + d) : ka;
#pragma GCC unroll 4
            for (int i = 0; i < BN_ATT_GROUP; i++) {
                if (i >= G) break;
                const __m256 qi = _mm256_loadu_ps(q + i * hd + d);
                a[c][i] = _mm256_fmadd_ps(ka, qi, a[c][i]);
                if (two) b[c][i] = _mm256_fmadd_ps(kb, qi, b[c][i]);
            }
        }
    }
    for (int key = 0; key <= two; key++) {
        __m256(*acc)[BN_ATT_GROUP] = key ? b : a;
        const uint16_t *kk = kj + key * stride;
        for (int i = 0; i < G; i++) {
            double dot = dot_f16_reduce(acc[0][i], acc[1][i], acc[2][i], acc[3][i]);
            for (int d = np; d < hd; d++) dot += (double)(q[i * hd + d] * _cvtsh_ss(kk[d]));
            s[i * s_stride + key] = (float)dot * scale;
        }
    }
}

// out_i[d0 .. d0+8*nv) = sum_j p_ij v_j[..] for G heads, as ggml_vec_dot_f16 over
// the keys (bitnet.cpp's V cache is transposed: one row per dimension): key j goes
// to lane j % 32, by FMA, j ascending; the lanes reduced as bn_dot_f16_reduce (the
// row is padded to a multiple of 32 with probabilities 0: no tail). Lane r's chain
// runs in registers over keys r, r + 32, ...; each V conversion serves G heads.
#define BN_PV_COLS 2 // 8-float columns per pass: G * BN_PV_COLS accumulators
BN_NO_FP_CONTRACT BN_ALWAYS_INLINE void pv_group(const float *p, int64_t n_kv, int G,
                                                 const uint16_t *v, int64_t stride, int nv,
                                                 float *out, int hd) {
    __m256 lane[BN_ATT_GROUP][BN_PV_COLS][32];
    for (int r = 0; r < 32; r++) {
        __m256 acc[BN_ATT_GROUP][BN_PV_COLS];
#pragma GCC unroll 4
        for (int i = 0; i < BN_ATT_GROUP; i++)
#pragma GCC unroll 2
            for (int c = 0; c < BN_PV_COLS; c++) acc[i][c] = _mm256_setzero_ps();
        for (int64_t j = r; j < n_kv; j += 32) {
            const uint16_t *vj = v + j * stride;
            __m256 vc[BN_PV_COLS];
#pragma GCC unroll 2
            for (int c = 0; c < BN_PV_COLS; c++) vc[c] = c < nv ? load_h8(vj + 8 * c) : _mm256_setzero_ps();
#pragma GCC unroll 4
            for (int i = 0; i < BN_ATT_GROUP; i++) {
                if (i >= G) break;
                const __m256 pj = _mm256_broadcast_ss(p + i * n_kv + j);
#pragma GCC unroll 2
                for (int c = 0; c < BN_PV_COLS; c++) acc[i][c] = _mm256_fmadd_ps(vc[c], pj, acc[i][c]);
            }
        }
        for (int i = 0; i < G; i++)
            for (int c = 0; c < nv; c++) lane[i][c][r] = acc[i][c];
    }
    for (int i = 0; i < G; i++)
        for (int c = 0; c < nv; c++) {
            const __m256 *L = lane[i][c];
            __m256 w[8];
            for (int l = 0; l < 8; l++)
                w[l] = _mm256_add_ps(_mm256_add_ps(L[l], L[16 + l]), _mm256_add_ps(L[8 + l], L[24 + l]));
            const __m256 t = _mm256_add_ps(
                _mm256_add_ps(_mm256_add_ps(w[0], w[4]), _mm256_add_ps(w[1], w[5])),
                _mm256_add_ps(_mm256_add_ps(w[2], w[6]), _mm256_add_ps(w[3], w[7])));
            _mm256_storeu_ps(out + i * hd + 8 * c, t);
        }
}

// Up to BN_ATT_GROUP heads of one KV head; see the contract in kernels.h. Inlined
// into one copy per constant G, so the accumulators stay in registers.
BN_NO_FP_CONTRACT BN_ALWAYS_INLINE void attention_group(const float *q, int G, const uint16_t *k,
                                              const uint16_t *v, int64_t stride, int hd,
                                              int n_kv, float scale, float *scores, float *out) {
    // V is read by pv_group in 32 interleaved passes (key j in lane j % 32), each
    // jumping 32 rows: too far for the hardware prefetchers at a long context,
    // where V comes from DRAM. So V is asked for here, row by row, as the keys
    // stream past, and pv_group finds it in cache.
    int j2 = 0;
    for (; j2 + 2 <= n_kv; j2 += 2) {
        for (int r = j2; r < j2 + 2; r++)
            for (int b = 0; b < hd * (int)sizeof *v; b += 64)
                _mm_prefetch((const char *)(v + r * stride) + b, _MM_HINT_T1);
        qk_group(q, G, k + j2 * stride, stride, 1, hd, scale, scores + j2, n_kv);
    }
    if (j2 < n_kv) qk_group(q, G, k + j2 * stride, stride, 0, hd, scale, scores + j2, n_kv);
    for (int i = 0; i < G; i++) {
        float *s = scores + (int64_t)i * n_kv;
        bn_softmax_avx2(s, n_kv);
        // Round the probabilities to f16 and back (bitnet.cpp's f16 V matmul).
        int j = 0;
        for (; j + 8 <= n_kv; j += 8) {
            const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(s + j), _MM_FROUND_TO_NEAREST_INT);
            _mm256_storeu_ps(s + j, _mm256_cvtph_ps(h));
        }
        for (; j < n_kv; j++) s[j] = _cvtsh_ss(_cvtss_sh(s[j], _MM_FROUND_TO_NEAREST_INT));
    }
    const int hd8 = hd & ~7;
    for (int d0 = 0; d0 < hd8; d0 += 8 * BN_PV_COLS) {
        const int nv = (hd8 - d0) / 8 < BN_PV_COLS ? (hd8 - d0) / 8 : BN_PV_COLS;
        pv_group(scores, n_kv, G, v + d0, stride, nv, out + d0, hd);
    }
    for (int i = 0; i < G; i++)
        for (int d = hd8; d < hd; d++) {
            float lane[32] = {0};
            for (int j = 0; j < n_kv; j++)
                lane[j & 31] = fmaf(_cvtsh_ss(v[j * stride + d]), scores[(int64_t)i * n_kv + j], lane[j & 31]);
            out[i * hd + d] = bn_dot_f16_reduce(lane);
        }
}

BN_NO_FP_CONTRACT void bn_attention_avx2(const float *q, int n_q, const uint16_t *k,
                                         const uint16_t *v, int64_t stride, int head_dim,
                                         int n_kv, float scale, float *scores, float *out) {
    for (int i = 0; i < n_q; i += BN_ATT_GROUP) {
        const float *qi = q + (int64_t)i * head_dim;
        float *si = scores + (int64_t)i * n_kv, *oi = out + (int64_t)i * head_dim;
        switch (n_q - i < BN_ATT_GROUP ? n_q - i : BN_ATT_GROUP) {
        case 4: attention_group(qi, 4, k, v, stride, head_dim, n_kv, scale, si, oi); break;
        case 3: attention_group(qi, 3, k, v, stride, head_dim, n_kv, scale, si, oi); break;
        case 2: attention_group(qi, 2, k, v, stride, head_dim, n_kv, scale, si, oi); break;
        default: attention_group(qi, 1, k, v, stride, head_dim, n_kv, scale, si, oi); break;
        }
    }
}

// ---- half-precision rows ------------------------------------------------------------

// vcvtps2ph with nearest-even is IEEE conversion, as bn_f32_to_f16 (overflow to
// inf, subnormals, ties); tails go through the scalar-width F16C forms.
void bn_half_store_avx2(uint16_t *dst, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

void bn_half_load_avx2(float *dst, const uint16_t *h, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_h8(h + i));
    for (; i < n; i++) dst[i] = _cvtsh_ss(h[i]);
}

void bn_half_round_avx2(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                                                _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) x[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

// ---- activation quantization -------------------------------------------------------

// bn_quantize_i8, 32 floats a step: absmax by vmaxps on |x|, then rint(x * s) with
// vroundps (nearest even, like rintf), clamped, narrowed with saturating packs.
float bn_quantize_i8_avx2(const float *x, int64_t n, int8_t *q, int32_t *qsum) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_set1_ps(BN_QUANT_MIN_ABSMAX);
    int64_t i = 0;
    // max(|x|, m): vmaxps returns its second operand when either is NaN, so a NaN
    // is skipped exactly as the scalar's `a > amax` skips it.
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), absmask), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float s = 127.0f / bn_absmax_from(x, i, n, _mm_cvtss_f32(m4));
    const __m256 vs = _mm256_set1_ps(s), lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); // undo the packs' lane split
    __m256i sum = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi8(1);
    i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i v[4];
        for (int j = 0; j < 4; j++) {
            __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), vs),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v[j] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
        }
        const __m256i w = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]),
                                             _mm256_packs_epi32(v[2], v[3]));
        const __m256i b = _mm256_permutevar8x32_epi32(w, perm);
        _mm256_storeu_si256((__m256i *)(q + i), b);
        // int8 -> int16 pair sums (ones x q), then int32: exact
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, b),
                                                      _mm256_set1_epi16(1)));
    }
    __m128i s4 = fold_lanes(sum);
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
    const int32_t total = _mm_cvtsi128_si32(s4) + bn_quantize_i8_from(x, i, n, s, q);
    if (qsum) *qsum = total;
    return s;
}

// ---- SiLU GLU ----------------------------------------------------------------------

void bn_silu_mul_avx2(float *restrict gate, const float *restrict up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(gate + i);
        const __m256 ex = exp8_ggml(_mm256_sub_ps(_mm256_setzero_ps(), x));
        const __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, ex));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    bn_silu_mul_tail(gate, up, i, n);
}

// ---- TQ1_0/TQ2_0 bitlinear (llama.cpp's per-block sums) ----------------------------

// One row against one token's codes, as bn_ternary_rows_q8k (ops.c) sums it: for
// each 256-block, eight int32 lanes where lane i holds the codes (w + 1) times the
// activations of bytes 4i..4i+3 of both 32-byte halves and all four bit planes,
// which is exactly what _mm256_maddubs_epi16 + _mm256_madd_epi16 put in 32-bit
// lane i, less the block's group sum i; then (float)lane * (xd * scale) added to
// eight float lanes, each product and sum rounded as the scalar code rounds them
// (BN_NO_FP_CONTRACT, as the whole C build: nothing fuses them); last, the same
// eight-lane tree.
BN_NO_FP_CONTRACT BN_ALWAYS_INLINE float tq_row_token(const uint8_t *row, int64_t nb, const int8_t *x, const float *xd,
                                     const int32_t *bsum, float scale) {
    const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1), ones = _mm256_set1_epi16(1);
    __m256 lane = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *xb = x + b * 256;
        __m256i p16 = _mm256_setzero_si256(); // eight products of at most 2 x 128 a pair: no s16 overflow
        for (int h = 0; h < 2; h++) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(row + (2 * b + h) * 32));
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                __m256i c = _mm256_and_si256(_mm256_srli_epi16(wv, 6 - 2 * s), m3);
                // Code 3 counts as 1, as the scalar code reads it.
                const __m256i three = _mm256_and_si256(_mm256_and_si256(_mm256_srli_epi16(c, 1), c), m1);
                c = _mm256_sub_epi8(c, _mm256_add_epi8(three, three));
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(xb + 128 * h + 32 * s));
                p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(c, xv));
            }
        }
        const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(p16, ones),
                                              _mm256_loadu_si256((const __m256i *)(bsum + 8 * b)));
        const __m256 d = _mm256_set1_ps(xd[b] * scale);
        lane = _mm256_add_ps(lane, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), d));
    }
    float e[8];
    _mm256_storeu_ps(e, lane);
    return bn_softmax_block_sum(e);
}

void bn_ternary_q8k_avx2(const uint8_t *w, int64_t K, int64_t r0, int64_t r1, const int8_t *xq, const float *xd,
                         const int32_t *xbsum, int n, float scale, float out_scale, bool add, float *y, int64_t M) {
    const int64_t nb = K / 256;
    for (int64_t r = r0; r < r1; r++)
        for (int t = 0; t < n; t++) {
            float sum = tq_row_token(w + r * (K / 4), nb, xq + (int64_t)t * K, xd + (int64_t)t * nb,
                                     xbsum + (int64_t)t * nb * 8, scale);
            sum *= out_scale;
            float *out = y + (int64_t)t * M + r;
            *out = add ? *out + sum : sum;
        }
}

const bn_cpu_kernels bn_kernels_avx2 = {
    .name = "avx2",
    .quantize_i8 = bn_quantize_i8_avx2,
    .half_store = bn_half_store_avx2,
    .half_load = bn_half_load_avx2,
    .half_round = bn_half_round_avx2,
    .ternary_gemm = bn_ternary_gemm_avx2,
    .f16_gemv = bn_f16_gemv_avx2,
    .f16_gemm = f16_gemm_avx2,
    .attention = bn_attention_avx2,
    .i8_gemv = bn_i8_gemv_avx2,
    .silu_mul = bn_silu_mul_avx2,
    .ternary_q8k = bn_ternary_q8k_avx2,
};
