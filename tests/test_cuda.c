// test_cuda.c - the CUDA backend: each kernel against its CPU scalar twin on odd
// shapes, then the whole model on tiny-a against the golden tokens and the CPU.
//
// Without a usable GPU every GPU test skips and says why; what must work without
// one (probe and create fail cleanly, with a reason) is still checked. Integer
// kernels (the ternary GEMV/GEMM) must be bit-exact: with s = 1 and scale = 1
// their float output is the int32 sum itself (|sum| < 2^24).
#include "test_util.h"

#include <math.h>

#include "backend.h"
#include "bitnet.h"
#include "half.h"
#include "kernels.h"
#include "model.h"

#ifdef BITNET_CUDA
#include <cjson/cJSON.h>

#include "../cuda/cuda_testing.cuh"
#include "../cuda/persist_plan.h"
#include "argmax.h"
#include "devtools.h"
#include "golden_case.h"
#include "ops.h"

#define N_GEN BN_GOLDEN_GEN

// Skips without a usable GPU, or fails when BITNET_REQUIRE_GPU=1 (scripts/gpu-check.sh).
static void require_gpu(void) {
    bn_error err = {{0}};
    BN_REQUIRE_GPU(bn_cuda_probe_device(&err) != 0 ? err.msg : NULL,
                   "no usable GPU (BITNET_REQUIRE_GPU=1): %s", "SKIP: %s\n");
}

static float frand(uint64_t *s) { return (float)((bn_test_rand(s) >> 40) / 16777216.0) * 2.f - 1.f; }

static void random_i2s(uint8_t *w, size_t n, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) w[i] = (uint8_t)bn_test_rand(rng); // includes 0b11 codes
}

// ---- without a GPU ----------------------------------------------------------------

static void test_probe_and_create_fail_cleanly(void **state) {
    (void)state;
    bn_error err = {{0}};
    const bn_backend_ops *ops = bn_backend_find("cuda");
    assert_non_null(ops);
    // The context started on a thread first (bitnet.h: bn_backend_prewarm), as the
    // CLI does; waiting twice, and create() after it, are fine.
    assert_non_null(ops->prewarm);
    bn_backend_prewarm(NULL);
    bn_backend_prewarm("cpu"); // nothing to start
    bn_backend_prewarm_wait();
    bn_backend_prewarm_wait();
    if (ops->probe(&err) == 0) { // a device: create and destroy work, bad configs are refused
        BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
        bn_model *m = NULL;
        assert_int_equal(bn_model_load(path, &m, &err), 0);
        bn_backend *be = NULL;
        bn_backend_prewarm("cuda"); // create() joins it
        assert_int_equal(ops->create(m, NULL, &be, &err), 0);
        assert_non_null(be);
        assert_true(ops->memory_bytes(be) > 0);
        ops->destroy(be);
        bn_backend_config too_long = {.n_ctx = (int)m->hp.n_ctx_train + 1};
        be = (bn_backend *)0x1;
        assert_int_equal(ops->create(m, &too_long, &be, &err), -1);
        assert_null(be);
        fprintf(stderr, "  CUDA device present: create, destroy; a context past the model's: %s\n", err.msg);
        assert_non_null(strstr(err.msg, "context"));
        bn_model_free(m);
        return;
    }
    fprintf(stderr, "  probe: %s\n", err.msg);
    assert_true(strlen(err.msg) > 0);
    BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
    bn_model *m = NULL;
    assert_int_equal(bn_model_load(path, &m, &err), 0);
    bn_backend *be = (bn_backend *)0x1;
    bn_error cerr = {{0}};
    assert_int_equal(ops->create(m, NULL, &be, &cerr), -1);
    assert_null(be);
    fprintf(stderr, "  create: %s\n", cerr.msg);
    assert_true(strlen(cerr.msg) > 0);
    bn_model_free(m);
}

// ---- kernels ---------------------------------------------------------------------

static const int SHAPES[][2] = {{384, 37}, {640, 131}, {1152, 300}, {128, 1}, {2560, 200}, {6912, 67}}; // K, M
static const int NTOK[] = {1, 3, 8, 17, 70};
#define BN_GEMV_TEST_MAX_N 8 // the GEMV's batch limit for K <= 6912 (ternary_gemv.cu)
// K, M, n: the mma GEMM's 128 x 128 tiles with row and token tails at the 2B-4T
// widths (2560, 6912), a single tile, 1 and 2 K blocks (fewer than its pipeline
// stages) and K = 16384. The scalar reference costs K M n: about 1.8e9 here.
static const int SHAPES_GEMM[][3] = {{2560, 1000, 300}, {6912, 1100, 129}, {16384, 130, 5},
                                     {256, 200, 129}, {128, 128, 128}};
static const char *const TERNARY_KERNEL[] = {"gemv", "gemm", "gemm_mma", "gemm_mma (64-token tiles)",
                                            "gemm_mma (32-token tiles)"};
#define N_TERNARY_KERNELS (int)(sizeof TERNARY_KERNEL / sizeof TERNARY_KERNEL[0])

// Every ternary kernel against bn_ternary_gemm_scalar on one shape: exact sums
// with s = 1 and scale = 1, then scales, three row segments and the residual add.
static void check_ternary(int K, int M, int n, uint64_t *rng) {
    uint8_t *w = malloc((size_t)M * K / 4);
    int8_t *q = malloc((size_t)n * K);
    int32_t *qsum = calloc((size_t)n, sizeof(int32_t)), *ref = malloc(sizeof(int32_t) * n * M);
    float *s = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n * M);
    random_i2s(w, (size_t)M * K / 4, rng);
    for (int t = 0; t < n; t++) {
        s[t] = 1.f;
        for (int k = 0; k < K; k++) {
            q[(size_t)t * K + k] = (int8_t)bn_test_rand(rng);
            qsum[t] += q[(size_t)t * K + k];
        }
    }
    bn_ternary_gemm_scalar(w, K, 0, M, q, qsum, n, ref, M);
    const float ones[6] = {1.f, 1.f, 1.f, 1.f, 1.f, 1.f};
    for (int kernel = 0; kernel < N_TERNARY_KERNELS; kernel++) {
        if (kernel == 0 && n > BN_GEMV_TEST_MAX_N) continue; // the GEMV takes small batches
        bn_error err = {{0}};
        memset(y, 0, sizeof(float) * n * M);
        if (bn_cuda_test_ternary(kernel, w, K, M, q, s, qsum, n, ones, M, M, false, y, &err))
            fail_msg("%s", err.msg);
        for (int i = 0; i < n * M; i++)
            if (y[i] != (float)ref[i])
                fail_msg("%s K=%d M=%d n=%d: y[%d] = %g, scalar %d", TERNARY_KERNEL[kernel], K, M, n, i,
                         y[i], ref[i]);
    }
    const float sc[6] = {0.5f, 2.f, 3.f, 1.1f, 0.7f, 1.3f}; // weight scales, then out-scales
    const int r1 = M / 3, r2 = 2 * M / 3;
    for (int t = 0; t < n; t++) s[t] = 10.f + t;
    for (int kernel = 0; kernel < N_TERNARY_KERNELS; kernel++) {
        if (kernel == 0 && n > BN_GEMV_TEST_MAX_N) continue;
        bn_error err = {{0}};
        for (int i = 0; i < n * M; i++) y[i] = 1.f;
        if (bn_cuda_test_ternary(kernel, w, K, M, q, s, qsum, n, sc, r1, r2, true, y, &err))
            fail_msg("%s", err.msg);
        for (int t = 0; t < n; t++)
            for (int r = 0; r < M; r++) {
                const int g = r < r1 ? 0 : r < r2 ? 1 : 2;
                // As bn_bitlinear_out: v rounded, then added (volatile: no FMA
                // here either), so the kernels' epilogue must match exactly.
                const volatile float v = bn_bitlinear_out(ref[t * M + r], s[t], sc[g], sc[3 + g]);
                const float want = 1.f + v;
                if (y[t * M + r] != want)
                    fail_msg("%s add K=%d M=%d n=%d t=%d r=%d: %.9g, want %.9g", TERNARY_KERNEL[kernel], K,
                             M, n, t, r, y[t * M + r], want);
            }
    }
    free(w); free(q); free(qsum); free(ref); free(s); free(y);
}

static void test_ternary_exact(void **state) {
    (void)state;
    require_gpu();
    uint64_t rng = 42;
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++)
        for (size_t ni = 0; ni < sizeof NTOK / sizeof NTOK[0]; ni++)
            check_ternary(SHAPES[si][0], SHAPES[si][1], NTOK[ni], &rng);
    for (size_t i = 0; i < sizeof SHAPES_GEMM / sizeof SHAPES_GEMM[0]; i++)
        check_ternary(SHAPES_GEMM[i][0], SHAPES_GEMM[i][1], SHAPES_GEMM[i][2], &rng);
}

// Every input mode of the norm + quantization the families make (nq_mode.h):
// plain, the two GLUs, and without the norm (the llama family), alone and with
// the SiLU GLU.
static const int NQ_MODES[] = {0, BN_NQ_RELU2, BN_NQ_SILU, BN_NQ_NO_NORM, BN_NQ_SILU | BN_NQ_NO_NORM};
#define N_NQ_MODES (int)(sizeof NQ_MODES / sizeof NQ_MODES[0])

// CPU twin of the fused prologue: the GLU of the mode (relu^2*up or silu*up),
// rmsnorm unless BN_NQ_NO_NORM, then bn_quantize_i8.
static float cpu_norm_quant(const float *x, const float *w, int n, int mode, int8_t *q, int32_t *qs) {
    float *h = malloc(sizeof(float) * n);
    memcpy(h, x, sizeof(float) * n);
    if (mode & BN_NQ_RELU2) bn_relu_sqr_mul(h, x + n, n);
    if (mode & BN_NQ_SILU) bn_silu_mul_scalar(h, x + n, n);
    if (!(mode & BN_NQ_NO_NORM)) bn_rmsnorm(h, h, w, n, 1e-5f);
    const float s = bn_quantize_i8(h, n, q, qs);
    free(h);
    return s;
}

// Widths 128, 640, 1152 and 12288 (48 KiB of floats in shared memory beside
// the kernel's static arrays, past the 48 KiB a kernel has without asking).
static void test_rmsnorm_quant(void **state) {
    (void)state;
    require_gpu();
    uint64_t rng = 7;
    static const int widths[] = {128, 640, 1152, 12288};
    for (int mi = 0; mi < N_NQ_MODES; mi++)
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            const int n = widths[wi], mode = NQ_MODES[mi], glu = mode & BN_NQ_GLU;
            const int n_tok = 17, ld = glu ? 2 * n : n;
            float *x = malloc(sizeof(float) * n_tok * ld), *w = malloc(sizeof(float) * n);
            int8_t *q = malloc((size_t)n_tok * n), *qc = malloc((size_t)n);
            float s[17];
            int32_t qs[17];
            for (int i = 0; i < n_tok * ld; i++) x[i] = frand(&rng) * 3.f;
            for (int i = 0; i < n; i++) w[i] = mode & BN_NQ_NO_NORM ? 1.f : 0.5f + frand(&rng);
            bn_error err = {{0}};
            if (bn_cuda_test_rmsnorm_quant(x, w, n_tok, n, 1e-5f, mode, q, s, qs, &err)) fail_msg("%s", err.msg);
            for (int t = 0; t < n_tok; t++) {
                int32_t qsc, own = 0, off = 0;
                const float sc = cpu_norm_quant(x + t * ld, w, n, mode, qc, &qsc);
                assert_true(fabsf(sc - s[t]) <= 1e-5f * sc);
                for (int i = 0; i < n; i++) {
                    own += q[t * n + i];
                    const int d = abs(q[t * n + i] - qc[i]);
                    assert_true(d <= 1); // float summation order may flip a rounding
                    off += d;
                }
                assert_int_equal(own, qs[t]);
                assert_true(off <= 1 + n / 100);
            }
            free(x); free(w); free(q); free(qc);
        }
}

// A TQ model's bitlinear (ternary_q8k.cu) against its CPU twins, on shapes up
// to the 10B's FFN width, every input mode, 1 to 17 tokens (token tiles of 8):
// - the codes per block of 256: exactly bn_quantize_q8k_block's without a norm
//   (the input is then the values themselves, or their GLU), with blocks built
//   to tie (the same magnitude with both signs: the first wins), all-zero
//   blocks and blocks too small for a finite scale; within one of them after a
//   norm (float summation order, as test_rmsnorm_quant);
// - each block's eight group sums: the sums of the kernel's own codes;
// - y: bn_ternary_rows_q8k on the kernel's codes and scales, bit for bit, with
//   three row ranges of their own weight and output scales, stored or added;
//   from the tensor-core kernel (BITNET_CUDA_TQ=mma) too, at 1 to 17 tokens
//   (one and two 8-token tiles a warp, partial ones) and rows past a 64-row block.
static void test_q8k_bitlinear(void **state) {
    (void)state;
    require_gpu();
    uint64_t rng = 1234;
    // K, M, n: n at and around the 8-token tiles the mma kernel takes (1 or 2 a warp), M past its 64-row
    // blocks; K = 12288 before any wider row, its norm's 48 KiB of floats beside the kernel's static arrays
    const int shapes[][3] = {{256, 37, 1},   {768, 300, 9},   {2560, 70, 17}, {6912, 33, 8},
                             {12288, 24, 3}, {23040, 40, 2}, {512, 130, 16}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int mi = 0; mi < N_NQ_MODES; mi++) {
            const int mode = NQ_MODES[mi], glu = mode & BN_NQ_GLU, raw = mode & BN_NQ_NO_NORM;
            const int K = shapes[si][0], M = shapes[si][1], n = shapes[si][2], ld = glu ? 2 * K : K, nb = K / 256;
            const bool add = mi % 2;
            uint8_t *w = malloc((size_t)M * K / 4);
            float *x = malloc(sizeof(float) * n * ld), *nw = malloc(sizeof(float) * K);
            float *y = malloc(sizeof(float) * n * M), *yc = malloc(sizeof(float) * n * M);
            float *d = malloc(sizeof(float) * n * nb), *h = malloc(sizeof(float) * K);
            int8_t *q = malloc((size_t)n * K), qc[256];
            int32_t *bsum = malloc(sizeof(int32_t) * n * nb * 8);
            random_i2s(w, (size_t)M * K / 4, &rng);
            for (int i = 0; i < n * ld; i++) x[i] = frand(&rng) * 3.f;
            for (int i = 0; i < K; i++) nw[i] = mode & BN_NQ_NO_NORM ? 1.f : 0.5f + frand(&rng);
            if (raw && !glu) // block 0 of each token all zeros; block 1 ties -m (first) with +m;
                for (int t = 0; t < n; t++) { // block 2 below 127/FLT_MAX (an infinite iscale)
                    memset(x + t * ld, 0, sizeof(float) * 256);
                    if (nb > 1) {
                        x[t * ld + 256 + 40 + t] = -3.5f;
                        x[t * ld + 256 + 200] = 3.5f;
                    }
                    for (int i = 0; nb > 2 && i < 256; i++) x[t * ld + 512 + i] = (i % 3 - 1) * 3e-38f * (1 + i % 7);
                }
            float *ym = malloc(sizeof(float) * n * M);
            for (int i = 0; i < n * M; i++) y[i] = yc[i] = ym[i] = frand(&rng);
            const float sc[6] = {0.7f, 1.3f, 0.9f, 1.2f, 0.8f, 1.f};
            const int r1 = M / 3, r2 = 2 * M / 3;
            bn_error err = {{0}};
            if (bn_cuda_test_q8k(w, K, M, x, nw, 1e-5f, mode, n, sc, r1, r2, add, false, y, q, d, bsum, &err))
                fail_msg("%s", err.msg);
            // The tensor-core kernel: the same bits as the dp4a one (so as the CPU's, below).
            if (bn_cuda_test_q8k(w, K, M, x, nw, 1e-5f, mode, n, sc, r1, r2, add, true, ym, q, d, bsum, &err))
                fail_msg("%s", err.msg);
            for (int i = 0; i < n * M; i++)
                if (memcmp(&y[i], &ym[i], sizeof(float)))
                    fail_msg("K %d M %d n %d mode %d: mma y[%d] %.9g, dp4a %.9g", K, M, n, mode, i, ym[i], y[i]);
            free(ym);
            int off = 0;
            for (int t = 0; t < n; t++) {
                memcpy(h, x + t * ld, sizeof(float) * K); // the CPU's input, as cpu_norm_quant makes it
                if (mode & BN_NQ_RELU2) bn_relu_sqr_mul(h, x + t * ld + K, K);
                if (mode & BN_NQ_SILU) bn_silu_mul_scalar(h, x + t * ld + K, K);
                if (!(mode & BN_NQ_NO_NORM)) bn_rmsnorm(h, h, nw, K, 1e-5f);
                for (int b = 0; b < nb; b++) {
                    const float dc = bn_quantize_q8k_block(h + b * 256, qc);
                    const int8_t *qb = q + ((int64_t)t * nb + b) * 256;
                    const float dg = d[t * nb + b];
                    if (raw) {
                        if (memcmp(&dc, &dg, sizeof dc) || memcmp(qc, qb, 256))
                            fail_msg("K %d token %d block %d: codes or scale differ (%.9g vs %.9g)", K, t, b, dg, dc);
                    } else {
                        assert_true(fabsf(dc - dg) <= 1e-5f * fabsf(dc));
                        for (int i = 0; i < 256; i++) {
                            assert_true(abs(qb[i] - qc[i]) <= 1);
                            off += qb[i] != qc[i];
                        }
                    }
                    for (int k = 0; k < 8; k++) {
                        int32_t sum = 0;
                        for (int i = 0; i < 32; i++) sum += qb[32 * k + i];
                        assert_int_equal(bsum[((int64_t)t * nb + b) * 8 + k], sum);
                    }
                }
            }
            assert_true(off <= 1 + n * K / 100);
            const int lo[3] = {0, r1, r2}, hi[3] = {r1, r2, M};
            for (int r = 0; r < 3; r++)
                bn_ternary_rows_q8k(w, K, lo[r], hi[r], q, d, n, sc[r], sc[3 + r], add, yc, M);
            if (memcmp(y, yc, sizeof(float) * n * M)) {
                int i = 0;
                while (!memcmp(&y[i], &yc[i], sizeof(float))) i++;
                fail_msg("K %d M %d n %d mode %d: y[%d] %.9g, CPU %.9g", K, M, n, mode, i, y[i], yc[i]);
            }
            free(w); free(x); free(nw); free(y); free(yc); free(d); free(h); free(q); free(bsum);
        }
}

// The GEMV's next norm (run by its last block) must give exactly the codes of
// the standalone norm kernel on the GEMV's output (same block code and size),
// and the GEMV's output must be the scalar twin's, weight and out-scales
// included; for the stacked gate|up in the GLU modes, and as the residual add
// (y += W.q) in the others.
static void test_gemv_next_norm(void **state) {
    (void)state;
    require_gpu();
    uint64_t rng = 99;
    const int shapes[][2] = {{384, 48}, {640, 264}, {2560, 2560}, {2560, 13824}, {6912, 2560}}; // K, M
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int mi = 0; mi < N_NQ_MODES; mi++) {
            const int mode = NQ_MODES[mi], glu = mode & BN_NQ_GLU;
            const int K = shapes[si][0], M = shapes[si][1], n = si < 2 ? 3 : 1, width = glu ? M / 2 : M;
            const bool add = !glu;
            uint8_t *w = malloc((size_t)M * K / 4);
            int8_t *q = malloc((size_t)n * K), *qg = malloc((size_t)n * width), *qk = malloc((size_t)n * width);
            int32_t *qsum = calloc((size_t)n, sizeof(int32_t)), *ref = malloc(sizeof(int32_t) * n * M);
            float *s = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n * M), *y0 = malloc(sizeof(float) * n * M);
            float *nw = malloc(sizeof(float) * width), sg[3], sk[3];
            int32_t qsg[3], qsk[3];
            random_i2s(w, (size_t)M * K / 4, &rng);
            for (int t = 0; t < n; t++) {
                s[t] = 40.f + t;
                for (int k = 0; k < K; k++) {
                    q[t * K + k] = (int8_t)bn_test_rand(&rng);
                    qsum[t] += q[t * K + k];
                }
            }
            for (int i = 0; i < n * M; i++) y0[i] = y[i] = add ? frand(&rng) : 0.f;
            for (int i = 0; i < width; i++) nw[i] = mode & BN_NQ_NO_NORM ? 1.f : 1.f + 0.3f * frand(&rng);
            const float sc[6] = {0.7f, 1.3f, 0.9f, 1.2f, 0.8f, 1.f}; // weight scales, then out-scales
            const int r1 = M / 2, r2 = M;
            bn_error err = {{0}};
            if (bn_cuda_test_gemv_next_norm(w, K, M, q, s, qsum, n, sc, r1, r2, add, y, nw, 1e-5f, mode, qg, sg,
                                            qsg, &err))
                fail_msg("%s", err.msg);
            bn_ternary_gemm_scalar(w, K, 0, M, q, qsum, n, ref, M);
            for (int t = 0; t < n; t++)
                for (int r = 0; r < M; r++) {
                    const int g = r < r1 ? 0 : 1;
                    const volatile float v = bn_bitlinear_out(ref[t * M + r], s[t], sc[g], sc[3 + g]);
                    const float want = add ? y0[t * M + r] + v : v;
                    if (y[t * M + r] != want)
                        fail_msg("K=%d M=%d t=%d r=%d: %.9g, want %.9g", K, M, t, r, y[t * M + r], want);
                }
            if (bn_cuda_test_rmsnorm_quant(y, nw, n, width, 1e-5f, mode, qk, sk, qsk, &err)) fail_msg("%s", err.msg);
            assert_memory_equal(qg, qk, (size_t)n * width);
            assert_memory_equal(sg, sk, sizeof(float) * n);
            assert_memory_equal(qsg, qsk, sizeof(int32_t) * n);
            free(w); free(q); free(qg); free(qk); free(qsum); free(ref); free(s); free(y); free(y0); free(nw);
        }
}

// The GEMV on float rows (each block normalizes them itself) must equal the
// standalone norm kernel followed by the GEMV on its codes, exactly: the same
// block code and size, and an exact integer product; in every input mode.
static void test_gemv_norm(void **state) {
    (void)state;
    require_gpu();
    uint64_t rng = 77;
    const int shapes[][2] = {{384, 48}, {640, 264}, {2560, 3840}, {6912, 2560}}; // K, M
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int mi = 0; mi < N_NQ_MODES; mi++) {
            const int mode = NQ_MODES[mi], glu = mode & BN_NQ_GLU;
            const int K = shapes[si][0], M = shapes[si][1], n = si % 2 ? 3 : 1, ldx = glu ? 2 * K : K;
            uint8_t *w = malloc((size_t)M * K / 4);
            float *x = malloc(sizeof(float) * n * ldx), *nw = malloc(sizeof(float) * K);
            float *y1 = malloc(sizeof(float) * n * M), *y2 = malloc(sizeof(float) * n * M);
            int8_t *q = malloc((size_t)n * K);
            float s[3];
            int32_t qs[3];
            random_i2s(w, (size_t)M * K / 4, &rng);
            for (int i = 0; i < n * ldx; i++) x[i] = frand(&rng) * 2.f;
            for (int i = 0; i < K; i++) nw[i] = mode & BN_NQ_NO_NORM ? 1.f : 1.f + 0.3f * frand(&rng);
            for (int i = 0; i < n * M; i++) y1[i] = y2[i] = frand(&rng);
            const float sc[6] = {0.7f, 1.3f, 0.9f, 1.2f, 0.8f, 1.f};
            bn_error err = {{0}};
            if (bn_cuda_test_gemv_norm(w, K, M, x, nw, 1e-5f, mode, n, sc, M / 2, M, glu == 0, y1, &err) ||
                bn_cuda_test_rmsnorm_quant(x, nw, n, K, 1e-5f, mode, q, s, qs, &err) ||
                bn_cuda_test_ternary(0, w, K, M, q, s, qs, n, sc, M / 2, M, glu == 0, y2, &err))
                fail_msg("%s", err.msg);
            assert_memory_equal(y1, y2, sizeof(float) * n * M);
            free(w); free(x); free(nw); free(y1); free(y2); free(q);
        }
}

static void test_rope_kv(void **state) {
    (void)state;
    require_gpu();
    // A position near 4096 (the 2B-4T context): angles of thousands of radians,
    // where the way theta is built (running product, cpu/ops.c) matters.
    const int n_head = 4, n_head_kv = 2, hd = 64, n_rot = 64, n_ctx = 4096, n_tok = 3;
    const int nq = n_head * hd, nkv = n_head_kv * hd, ld = nq + 2 * nkv;
    const int32_t pos[3] = {0, 17, 4093};
    int exact = 0;
    uint64_t rng = 5;
    float *qkv = malloc(sizeof(float) * n_tok * ld), *tmp = malloc(sizeof(float) * ld);
    uint16_t *qo = malloc(2 * n_tok * nq), *kc = calloc((size_t)n_ctx * nkv, 2), *vc = calloc((size_t)n_ctx * nkv, 2);
    for (int i = 0; i < n_tok * ld; i++) qkv[i] = frand(&rng) * 4.f;
    bn_error err = {{0}};
    for (int neox = 0; neox < 2; neox++) { // adjacent pairs (llama), then NEOX (BitNet)
        if (bn_cuda_test_rope_kv(qkv, pos, n_tok, n_head, n_head_kv, hd, n_rot, neox, 500000.f, n_ctx, qo, kc, vc,
                                 &err))
            fail_msg("%s", err.msg);
        for (int t = 0; t < n_tok; t++) {
            memcpy(tmp, qkv + t * ld, sizeof(float) * ld);
            void (*rope)(float *, int, int, int, int, float) = neox ? bn_rope_neox : bn_rope_pairs;
            rope(tmp, n_head, hd, n_rot, pos[t], 500000.f);
            rope(tmp + nq, n_head_kv, hd, n_rot, pos[t], 500000.f);
            for (int i = 0; i < ld; i++) {
                const int e = i < nq ? i : i < nq + nkv ? i - nq : i - nq - nkv; // within Q, K or V
                const int64_t crow = ((int64_t)(e / hd) * n_ctx + pos[t]) * hd + e % hd; // head-major cache
                const uint16_t got = i < nq ? qo[t * nq + i] : i < nq + nkv ? kc[crow] : vc[crow];
                const float g = bn_f16_to_f32(got), want = bn_f16_to_f32(bn_f32_to_f16(tmp[i]));
                assert_true(fabsf(g - want) <= 1e-3f * (1.f + fabsf(want))); // 1 f16 ulp
                exact += got == bn_f32_to_f16(tmp[i]);
            }
        }
    }
    // Same angles and no FMA contraction: only sincosf's last-ulp differences
    // from libm may flip an f16 rounding.
    fprintf(stderr, "  rope: %d of %d halves bit-exact\n", exact, 2 * n_tok * ld);
    assert_true(exact >= 2 * n_tok * ld * 99 / 100);
    free(qkv); free(tmp); free(qo); free(kc); free(vc);
}

// The CPU twin on a head-major cache: token t's head h against rows 0..pos.
static void cpu_attention(const uint16_t *q, const uint16_t *kc, const uint16_t *vc, int H, int Hkv, int hd,
                          int n_ctx, int h, int pos, float *scores, float *out) {
    float qf[256];
    const int kvh = h / (H / Hkv);
    for (int d = 0; d < hd; d++) qf[d] = bn_f16_to_f32(q[h * hd + d]);
    bn_attention_head(qf, kc + (size_t)kvh * n_ctx * hd, vc + (size_t)kvh * n_ctx * hd, hd, hd, pos + 1,
                      1.f / sqrtf((float)hd), scores, out);
}

// Both batch kernels (plain, tensor-core prefill) against the CPU twin: a few
// scattered positions, then 70 consecutive ones (a prefill chunk after 230 tokens).
static void test_attention(void **state) {
    (void)state;
    require_gpu();
    const int n_ctx = 300;
    const int cfgs[][3] = {{4, 2, 64}, {20, 5, 128}, {3, 3, 80}, {16, 2, 96}}; // heads, kv heads, head_dim
    uint64_t rng = 11;
    for (int c = 0; c < 4; c++)
        for (int batch = 0; batch < 2; batch++) {
            const int H = cfgs[c][0], Hkv = cfgs[c][1], hd = cfgs[c][2], nq = H * hd, nkv = Hkv * hd;
            const int n_tok = batch ? 70 : 3;
            int32_t pos[70] = {0, 130, 299};
            if (batch)
                for (int t = 0; t < n_tok; t++) pos[t] = 230 + t;
            uint16_t *q = malloc(2 * n_tok * nq), *kc = malloc(2 * n_ctx * nkv), *vc = malloc(2 * n_ctx * nkv);
            float *out = malloc(sizeof(float) * n_tok * nq), *ref = malloc(sizeof(float) * hd);
            float *scores = malloc(sizeof(float) * n_ctx);
            for (int i = 0; i < n_tok * nq; i++) q[i] = bn_f32_to_f16(frand(&rng) * 2.f);
            for (int i = 0; i < n_ctx * nkv; i++) {
                kc[i] = bn_f32_to_f16(frand(&rng) * 2.f);
                vc[i] = bn_f32_to_f16(frand(&rng));
            }
            for (int kernel = 0; kernel < 2; kernel++) {
                bn_error err = {{0}};
                if (bn_cuda_test_attention(kernel, q, kc, vc, pos, n_tok, H, Hkv, hd, n_ctx, out, &err))
                    fail_msg("%s", err.msg);
                double worst = 0;
                for (int t = 0; t < n_tok; t++)
                    for (int h = 0; h < H; h++) {
                        cpu_attention(q + (size_t)t * nq, kc, vc, H, Hkv, hd, n_ctx, h, pos[t], scores, ref);
                        for (int d = 0; d < hd; d++) {
                            const float got = out[t * nq + h * hd + d], e = fabsf(got - ref[d]);
                            if (!(e <= 2e-3f))
                                fail_msg("attention kernel %d cfg %d t %d h %d d %d: %g vs %g", kernel, c, t, h, d,
                                         got, ref[d]);
                            worst = e > worst ? e : worst;
                        }
                    }
                fprintf(stderr, "  attention kernel %d, %d/%d heads x %d, %d tokens: max |diff| %.2e\n", kernel,
                        H, Hkv, hd, n_tok, worst);
            }
            free(q); free(kc); free(vc); free(out); free(ref); free(scores);
        }
}

static int min_int(int a, int b) { return a < b ? a : b; }

// The keys the one-kernel decode attention holds for the shape on this device.
static int short_keys(int H, int Hkv, int hd, int n_rot) {
    bn_error err = {{0}};
    const int k = bn_cuda_test_attd_short_keys(H, Hkv, hd, n_rot, &err);
    if (k < 16) fail_msg("the one-kernel decode attention holds %d keys for %d/%d heads x %d: %s", k, H, Hkv, hd,
                         err.msg);
    return k;
}

// The decode attention (RoPE, KV write, split-KV softmax, next norm) against the
// CPU twin: the RoPE of the case on the qkv row, the f16 cache row, bn_attention_head.
// n_split -1: its one-kernel form for short contexts, the position lowered to
// the most keys it holds on this device where that is fewer (an H200 holds 256
// for most shapes here and 192 at head_dim 256; a GPU with less shared memory fewer).
static void test_attention_decode(void **state) {
    (void)state;
    require_gpu();
    // heads, kv heads, head_dim, n_rot, n_ctx, position, n_split (0: the backend's)
    const int cases[][7] = {{20, 5, 128, 128, 4096, 4093, 0}, {20, 5, 128, 128, 4096, 127, 0},
                            {20, 5, 128, 128, 300, 0, 0},     {2, 1, 64, 64, 512, 33, 0},
                            {4, 2, 64, 32, 300, 299, 7},      {3, 3, 80, 80, 200, 150, 1},
                            {24, 2, 64, 64, 1000, 640, 0},    {16, 2, 96, 96, 2048, 1999, 64},
                            {20, 5, 128, 128, 4096, 127, -1}, {20, 5, 128, 128, 300, 0, -1},
                            {20, 5, 128, 128, 4096, 255, -1}, {2, 1, 64, 64, 512, 33, -1},
                            {4, 2, 64, 32, 300, 200, -1},     {3, 3, 80, 80, 200, 150, -1},
                            {16, 2, 96, 96, 2048, 250, -1},   {12, 4, 256, 256, 1000, 191, -1},
                            {24, 2, 64, 64, 1000, 200, -1}}; // 12 heads a KV head: 2 blocks share one
    uint64_t rng = 21;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int H = cases[c][0], Hkv = cases[c][1], hd = cases[c][2], n_rot = cases[c][3];
        const int n_ctx = cases[c][4], n_split = cases[c][6];
        const int pos = n_split == -1 ? min_int(cases[c][5], short_keys(H, Hkv, hd, n_rot) - 1) : cases[c][5];
        const int nq = H * hd, nkv = Hkv * hd, ld = nq + 2 * nkv;
        const size_t cache = (size_t)n_ctx * nkv;
        float *qkv = malloc(sizeof(float) * ld), *rot = malloc(sizeof(float) * ld);
        uint16_t *kc = malloc(2 * cache), *vc = malloc(2 * cache), *kc0 = malloc(2 * cache), *vc0 = malloc(2 * cache);
        uint16_t *qh = malloc(2 * nq);
        float *out = malloc(sizeof(float) * nq), *ref = malloc(sizeof(float) * hd), *scores = malloc(sizeof(float) * n_ctx);
        float *nw = malloc(sizeof(float) * nq), *h = malloc(sizeof(float) * nq);
        int8_t *qg = malloc((size_t)nq), *qc = malloc((size_t)nq);
        for (int i = 0; i < ld; i++) qkv[i] = frand(&rng) * 2.f;
        for (size_t i = 0; i < cache; i++) {
            kc0[i] = kc[i] = bn_f32_to_f16(frand(&rng) * 2.f);
            vc0[i] = vc[i] = bn_f32_to_f16(frand(&rng));
        }
        for (int i = 0; i < nq; i++) nw[i] = 1.f + 0.3f * frand(&rng);
        float sg;
        int32_t qsg;
        bn_error err = {{0}};
        const bool neox = c % 4 != 3; // every fourth case with adjacent pairs (llama)
        if (bn_cuda_test_attention_decode(qkv, pos, H, Hkv, hd, n_rot, neox, 500000.f, n_ctx, n_split, kc, vc, out,
                                          nw, 1e-5f, qg, &sg, &qsg, &err))
            fail_msg("%s", err.msg);
        // CPU: rotate Q and K, round to f16, write row pos of the cache copies.
        memcpy(rot, qkv, sizeof(float) * ld);
        void (*rope)(float *, int, int, int, int, float) = neox ? bn_rope_neox : bn_rope_pairs;
        rope(rot, H, hd, n_rot, pos, 500000.f);
        rope(rot + nq, Hkv, hd, n_rot, pos, 500000.f);
        for (int i = 0; i < nq; i++) qh[i] = bn_f32_to_f16(rot[i]);
        int k_exact = 0;
        for (int g = 0; g < Hkv; g++)
            for (int d = 0; d < hd; d++) {
                const size_t at = ((size_t)g * n_ctx + pos) * hd + d;
                const uint16_t kw = bn_f32_to_f16(rot[nq + g * hd + d]);
                assert_true(fabsf(bn_f16_to_f32(kc[at]) - bn_f16_to_f32(kw)) <= 1e-3f * (1.f + fabsf(bn_f16_to_f32(kw))));
                k_exact += kc[at] == kw;
                assert_int_equal(vc[at], bn_f32_to_f16(rot[nq + nkv + g * hd + d]));
                kc0[at] = kc[at]; // the GPU's own key: only sincosf's last ulp may differ
                vc0[at] = vc[at];
            }
        assert_true(k_exact >= nkv * 99 / 100);
        assert_memory_equal(kc, kc0, 2 * cache); // no other row was touched
        assert_memory_equal(vc, vc0, 2 * cache);
        double worst = 0;
        for (int hh = 0; hh < H; hh++) {
            cpu_attention(qh, kc, vc, H, Hkv, hd, n_ctx, hh, pos, scores, ref);
            for (int d = 0; d < hd; d++) {
                const float e = fabsf(out[hh * hd + d] - ref[d]);
                if (!(e <= 2e-3f))
                    fail_msg("decode attention case %zu h %d d %d: %g vs %g", c, hh, d, out[hh * hd + d], ref[d]);
                worst = e > worst ? e : worst;
            }
        }
        // The next norm: the CPU's codes of the GPU's output, +-1 where a float sum order flips a rounding.
        int32_t qsc, own = 0;
        bn_rmsnorm(h, out, nw, nq, 1e-5f);
        const float sc = bn_quantize_i8(h, nq, qc, &qsc);
        assert_true(fabsf(sc - sg) <= 1e-5f * sc);
        for (int i = 0; i < nq; i++) {
            assert_true(abs(qg[i] - qc[i]) <= 1);
            own += qg[i];
        }
        assert_int_equal(own, qsg);
        fprintf(stderr, "  decode attention %d/%d heads x %d, ctx %d at %d, splits %d: max |diff| %.2e\n", H, Hkv,
                hd, n_ctx, pos, n_split, worst);
        free(qkv); free(rot); free(kc); free(vc); free(kc0); free(vc0); free(qh); free(out); free(ref);
        free(scores); free(nw); free(h); free(qg); free(qc);
    }
}

// The decode attention of a step of several sequences (one launch, each token in
// its own slot) against the same tokens one at a time: outputs and caches
// bit-identical, no slot but a token's own written. The single-token kernel is
// checked against the CPU above.
static void test_attention_decode_seqs(void **state) {
    (void)state;
    require_gpu();
    // heads, kv heads, head_dim, n_ctx, slots, tokens
    // ...; n_split as in test_attention_decode (-1: the one-kernel form, every position below 256)
    // (with -1, n_ctx is lowered to the keys the device holds, so every position fits)
    const int cases[][7] = {{20, 5, 128, 512, 6, 5, 0},  {4, 2, 64, 300, 3, 3, 0},   {16, 2, 96, 2048, 9, 9, 0},
                            {20, 5, 128, 256, 6, 5, -1}, {4, 2, 64, 200, 3, 3, -1},  {16, 2, 96, 256, 9, 9, -1},
                            {24, 2, 64, 256, 4, 4, -1}};
    uint64_t rng = 77;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int H = cases[c][0], Hkv = cases[c][1], hd = cases[c][2], n_split = cases[c][6];
        const int n_ctx = n_split == -1 ? min_int(cases[c][3], short_keys(H, Hkv, hd, hd)) : cases[c][3];
        const int n_seq = cases[c][4], n_tok = cases[c][5];
        const int nq = H * hd, nkv = Hkv * hd, ld = nq + 2 * nkv;
        const size_t slot = (size_t)n_ctx * nkv, all = slot * n_seq;
        float *qkv = malloc(sizeof(float) * ld * n_tok), *out = malloc(sizeof(float) * nq * n_tok);
        float *one = malloc(sizeof(float) * nq), *nw = malloc(sizeof(float) * nq), s_all[16], s_one;
        int8_t *q_all = malloc((size_t)nq * n_tok), *q_one = malloc((size_t)nq);
        int32_t qs_all[16], qs_one;
        uint16_t *kc = malloc(2 * all), *vc = malloc(2 * all), *kc1 = malloc(2 * all), *vc1 = malloc(2 * all);
        int32_t pos[16], seq[16];
        for (int i = 0; i < ld * n_tok; i++) qkv[i] = frand(&rng) * 2.f;
        for (int i = 0; i < nq; i++) nw[i] = 1.f + 0.3f * frand(&rng);
        for (size_t i = 0; i < all; i++) {
            kc1[i] = kc[i] = bn_f32_to_f16(frand(&rng) * 2.f);
            vc1[i] = vc[i] = bn_f32_to_f16(frand(&rng));
        }
        for (int t = 0; t < n_tok; t++) { // distinct slots, out of order; positions near 0 and near the end
            seq[t] = (int32_t)((t * 5 + 2) % n_seq);
            pos[t] = t % 3 == 0 ? t : n_ctx - 1 - (int32_t)(bn_test_rand(&rng) % (uint64_t)(n_ctx / 2));
        }
        bn_error err = {{0}};
        if (bn_cuda_test_attention_decode_seqs(qkv, pos, seq, n_tok, n_seq, H, Hkv, hd, hd, true, 500000.f, n_ctx,
                                               n_split, kc, vc, out, nw, 1e-5f, q_all, s_all, qs_all, &err))
            fail_msg("%s", err.msg);
        for (int t = 0; t < n_tok; t++) {
            const size_t at = (size_t)seq[t] * slot;
            if (bn_cuda_test_attention_decode(qkv + (size_t)t * ld, pos[t], H, Hkv, hd, hd, true, 500000.f, n_ctx,
                                              n_split, kc1 + at, vc1 + at, one, nw, 1e-5f, q_one, &s_one, &qs_one,
                                              &err))
                fail_msg("%s", err.msg);
            // The output and its next norm's codes (the last block quantizes every token's row).
            if (memcmp(one, out + (size_t)t * nq, sizeof(float) * nq) || memcmp(q_one, q_all + (size_t)t * nq, nq) ||
                s_one != s_all[t] || qs_one != qs_all[t])
                fail_msg("case %zu: token %d (slot %d, position %d) differs from the token alone", c, t, seq[t],
                         pos[t]);
        }
        assert_memory_equal(kc, kc1, 2 * all); // each token wrote its own slot's row, nothing else
        assert_memory_equal(vc, vc1, 2 * all);
        fprintf(stderr, "  decode attention%s, %d sequences in one launch (%d/%d heads x %d, ctx %d): identical\n",
                n_split < 0 ? " (one kernel)" : "", n_tok, H, Hkv, hd, n_ctx);
        free(qkv); free(out); free(one); free(nw); free(q_all); free(q_one); free(kc); free(vc); free(kc1); free(vc1);
    }
}

// The argmax of many rows in one launch against the sampler's, ties included;
// -1 for a row that holds a NaN or an infinity (cuda/reduce.cuh).
static void test_argmax_rows(void **state) {
    (void)state;
    require_gpu();
    const int rows = 19, n = 128257; // the 2B-4T vocabulary + 1: rows not 16-byte aligned
    uint64_t rng = 5;
    float *x = malloc(sizeof(float) * rows * n);
    for (size_t i = 0; i < (size_t)rows * n; i++) x[i] = frand(&rng);
    x[3 * (size_t)n + 10] = x[3 * (size_t)n + 20] = 9.f; // a tie: the lower id wins
    x[7 * (size_t)n + n - 1] = 9.f;                      // the last element
    x[11 * (size_t)n + 5000] = NAN;
    x[12 * (size_t)n + n - 1] = -NAN;
    x[13 * (size_t)n + 77] = -INFINITY;
    x[14 * (size_t)n] = INFINITY;
    int32_t got[19];
    bn_error err = {{0}};
    if (bn_cuda_test_argmax_rows(x, rows, n, got, &err)) fail_msg("%s", err.msg);
    for (int r = 0; r < rows; r++)
        assert_int_equal(got[r], r >= 11 && r <= 14 ? -1 : bn_argmax(x + (size_t)r * n, n));
    assert_int_equal(got[3], 10);
    assert_int_equal(got[7], n - 1);
    free(x);
}

// The model that ships with the project (models/), loaded.
static bn_model *shipped_model(void) {
    char buf[4096];
    bn_error err = {{0}};
    bn_model *m = NULL;
    if (bn_model_load(bn_shipped_path("models/bitnet-austen-6m.gguf", buf, sizeof buf), &m, &err))
        fail_msg("%s", err.msg);
    return m;
}

// The best BN_TOP_MAX entries of many rows in one launch against bn_top_select
// (core/top.h), bit for bit: rows of coarse values (thousands of ties, where the
// lower id goes first), -0 beside +0, rows shorter than BN_TOP_MAX (padded with
// {-1, -inf}), and the 2B-4T vocabulary + 1. The rows' softmax denominators
// against bn_top_exp_sum's, within 1e-12 (the same terms, added in another
// order), with and without terms under its floor (row 1's 1e9).
static void test_top_rows(void **state) {
    (void)state;
    require_gpu();
    const int lens[] = {1, 7, 64, BN_TOP_MAX, BN_TOP_MAX + 1, 1000, 128257};
    uint64_t rng = 8;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li], rows = n > 100000 ? 3 : 17, k = n < BN_TOP_MAX ? n : BN_TOP_MAX;
        float *x = malloc(sizeof(float) * rows * n);
        bn_top *got = malloc(sizeof(bn_top) * BN_TOP_MAX * rows), want[BN_TOP_MAX];
        double sums[17];
        for (size_t i = 0; i < (size_t)rows * n; i++) // row 0 all ties; the others 64 levels or finer
            x[i] = i < (size_t)n ? 0.5f : (float)(bn_test_rand(&rng) % (li % 2 ? 64 : 100000)) / 16.f - 2.f;
        if (n > 3) x[n + 1] = -0.0f, x[n + 2] = 0.0f, x[n + 3] = 1e9f; // row 1: a best one and signed zeros
        if (n >= BN_TOP_MAX + 27) // row 2: BN_TOP_MAX - 1 ones, then -0 (a lower id) and +0 tie for the last entry
            for (int i = 0; i < n; i++)
                x[2 * (size_t)n + i] = i < BN_TOP_MAX - 1        ? 1.f
                                       : i == BN_TOP_MAX + 6  ? -0.0f
                                       : i == BN_TOP_MAX + 26 ? 0.0f
                                                              : -1.f;
        bn_error err = {{0}};
        if (bn_cuda_test_top_rows(x, rows, n, got, li % 2 ? NULL : sums, &err)) fail_msg("%s", err.msg);
        for (int r = 0; r < rows; r++) {
            bn_top_select(x + (size_t)r * n, n, k, want);
            for (int i = k; i < BN_TOP_MAX; i++) want[i] = (bn_top){-1, -INFINITY};
            for (int i = 0; i < BN_TOP_MAX; i++)
                if (got[r * BN_TOP_MAX + i].id != want[i].id ||
                    memcmp(&got[r * BN_TOP_MAX + i].logit, &want[i].logit, sizeof(float)))
                    fail_msg("n %d row %d entry %d: id %d (%g), bn_top_select %d (%g)", n, r, i,
                             got[r * BN_TOP_MAX + i].id, got[r * BN_TOP_MAX + i].logit, want[i].id, want[i].logit);
            const double sum = bn_top_exp_sum(x + (size_t)r * n, n, want[0].logit, INFINITY);
            if (li % 2 == 0 && !(fabs(sums[r] - sum) <= 1e-12 * sum))
                fail_msg("n %d row %d: exp sum %.17g, bn_top_exp_sum %.17g", n, r, sums[r], sum);
        }
        free(x);
        free(got);
    }
}

// forward_top against forward on one sequence: its entries are the best of the
// row forward gives, for a prompt chunk and for decode steps (the first of them
// eager, the rest graph replays), every other call with the rows' softmax
// denominators (a graph of its own), within 1e-12 of bn_top_exp_sum's; then on
// 70 sequences in one call (two passes of the head), the decode step's with them.
static void test_forward_top(void **state) {
    (void)state;
    require_gpu();
    bn_error err = {{0}};
    bn_model *m = shipped_model();
    const bn_backend_ops *cuda = bn_backend_find("cuda");
    const bn_backend_config cfg = {.max_batch = 32, .n_ctx = 128, .n_seq = 1};
    bn_backend *bl = NULL, *bt = NULL;
    if (cuda->create(m, &cfg, &bl, &err) || cuda->create(m, &cfg, &bt, &err)) fail_msg("%s", err.msg);
    const int V = (int)m->hp.n_vocab;
    float *logits = malloc(sizeof(float) * V);
    bn_top got[BN_TOP_MAX], want[BN_TOP_MAX];
    int32_t tok[8], pos[8];
    uint64_t rng = 4;
    for (int p0 = 0, n = 8, call = 0; p0 < 40; p0 += n, n = 1, call++) {
        for (int i = 0; i < n; i++) tok[i] = (int32_t)(bn_test_rand(&rng) % (uint64_t)V), pos[i] = p0 + i;
        double sum = -1;
        if (cuda->forward(bl, tok, pos, NULL, n, logits, false, &err) ||
            cuda->forward_top(bt, tok, pos, NULL, n, got, call % 2 ? &sum : NULL, &err))
            fail_msg("%s", err.msg);
        bn_top_select(logits, V, BN_TOP_MAX, want);
        if (memcmp(got, want, sizeof want)) fail_msg("position %d: forward_top's entries differ", p0 + n - 1);
        const double ref = bn_top_exp_sum(logits, V, want[0].logit, INFINITY);
        if (call % 2 && !(fabs(sum - ref) <= 1e-12 * ref))
            fail_msg("position %d: exp sum %.17g, bn_top_exp_sum %.17g", p0 + n - 1, sum, ref);
    }
    bn_cuda_stats st;
    bn_cuda_backend_stats(bt, &st);
    if (!st.graphs) fail_msg("graph capture failed: %s", st.graph_error);
    free(logits);
    cuda->destroy(bl);
    cuda->destroy(bt);
    // More sequences in one call than one head pass takes (BN_LM_ROWS): the
    // decode step's first chunk of 64 tokens fills a pass, the next takes 6.
    enum { S = BN_CUDA_HEAD_MAX_N + 6 };
    const bn_backend_config many = {.max_batch = 64, .n_ctx = 32, .n_seq = S};
    if (cuda->create(m, &many, &bl, &err) || cuda->create(m, &many, &bt, &err)) fail_msg("%s", err.msg);
    float *rows = malloc(sizeof(float) * S * V);
    bn_top *tops = malloc(sizeof(bn_top) * S * BN_TOP_MAX);
    double sums[S]; // the decode step's: its rows' denominators over two head passes
    int32_t stok[2 * S], spos[2 * S], sseq[2 * S];
    for (int step = 0; step < 2; step++) {
        const int n = step ? S : 2 * S; // two prompt tokens each, then one decode token each
        for (int i = 0; i < n; i++) {
            stok[i] = (int32_t)(bn_test_rand(&rng) % (uint64_t)V);
            sseq[i] = step ? S - 1 - i : i / 2;
            spos[i] = step ? 2 : i % 2;
        }
        if (cuda->forward(bl, stok, spos, sseq, n, rows, false, &err) ||
            cuda->forward_top(bt, stok, spos, sseq, n, tops, step ? sums : NULL, &err))
            fail_msg("%s", err.msg);
        for (int r = 0; r < S; r++) {
            bn_top_select(rows + (size_t)r * V, V, BN_TOP_MAX, want);
            if (memcmp(tops + r * BN_TOP_MAX, want, sizeof want))
                fail_msg("%d sequences, step %d: row %d's entries differ", S, step, r);
            const double ref = bn_top_exp_sum(rows + (size_t)r * V, V, want[0].logit, INFINITY);
            if (step && !(fabs(sums[r] - ref) <= 1e-12 * ref))
                fail_msg("%d sequences: row %d's exp sum %.17g, bn_top_exp_sum %.17g", S, r, sums[r], ref);
        }
    }
    free(rows);
    free(tops);
    cuda->destroy(bl);
    cuda->destroy(bt);
    bn_model_free(m);
}

static void test_embedding_argmax_cast(void **state) {
    (void)state;
    require_gpu();
    const int V = 50, E = 96, n_tok = 3;
    const int32_t tok[3] = {0, 49, 17};
    uint64_t rng = 3;
    uint16_t *t16 = malloc(2 * V * E), *tb16 = malloc(2 * V * E);
    float *t32 = malloc(sizeof(float) * V * E), *x = malloc(sizeof(float) * n_tok * E);
    for (int i = 0; i < V * E; i++) {
        t32[i] = frand(&rng);
        t16[i] = bn_f32_to_f16(t32[i]);
        tb16[i] = (uint16_t)(bn_test_rand(&rng) & 0x7f7f); // finite bf16
    }
    bn_error err = {{0}};
    const void *tables[3] = {t32, t16, tb16};
    const int types[3] = {BN_GGML_F32, BN_GGML_F16, BN_GGML_BF16};
    for (int k = 0; k < 3; k++) {
        if (bn_cuda_test_embedding(tables[k], types[k], V, E, tok, n_tok, x, &err)) fail_msg("%s", err.msg);
        float row[96];
        for (int t = 0; t < n_tok; t++) {
            assert_int_equal(bn_embed_row(row, tables[k], (uint32_t)types[k], E, tok[t]), 0);
            assert_memory_equal(row, x + t * E, sizeof(float) * E);
        }
    }
    // argmax: ties go to the lowest index, odd length
    const int n = 128257;
    float *l = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) l[i] = frand(&rng);
    l[777] = 5.f;
    l[90001] = 5.f;
    int32_t id = -1;
    if (bn_cuda_test_argmax(l, n, &id, &err)) fail_msg("%s", err.msg);
    assert_int_equal(id, 777);
    l[n - 1] = 6.f;
    if (bn_cuda_test_argmax(l, n, &id, &err)) fail_msg("%s", err.msg);
    assert_int_equal(id, n - 1);
    // LM head input: rmsnorm rounded to f16
    float w[96], ref[96];
    uint16_t h[3 * 96];
    for (int i = 0; i < E; i++) w[i] = 1.f + 0.2f * frand(&rng);
    if (bn_cuda_test_rmsnorm_cast(t32, w, n_tok, E, 1e-5f, BN_GGML_F16, h, &err)) fail_msg("%s", err.msg);
    for (int t = 0; t < n_tok; t++) {
        bn_rmsnorm(ref, t32 + t * E, w, E, 1e-5f);
        for (int i = 0; i < E; i++)
            assert_true(fabsf(bn_f16_to_f32(h[t * E + i]) - ref[i]) <= 1e-3f * (1.f + fabsf(ref[i])));
    }
    // An f32 head gets the same f16-rounded input, stored as f32 (as the CPU does).
    float h32[3 * 96];
    if (bn_cuda_test_rmsnorm_cast(t32, w, n_tok, E, 1e-5f, BN_GGML_F32, h32, &err)) fail_msg("%s", err.msg);
    for (int i = 0; i < n_tok * E; i++) assert_true(h32[i] == bn_f16_to_f32(h[i]));
    free(t16); free(tb16); free(t32); free(x); free(l);
}

// ---- LM head: streaming GEMVs (f16, f32, int8) with the fused argmax ----------------

static float f16_round(float v) { return bn_f16_to_f32(bn_f32_to_f16(v)); }

// The fused argmax's rule on the host: first maximum; -1 when a value is not finite.
static int32_t argmax_first(const float *x, int n) {
    int32_t b = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) return -1;
        if (x[i] > x[b]) b = i;
    }
    return b;
}

// Head weights in the device type (type 1 = F16, 0 = F32: ggml numbering).
static void *head_alloc(int type, int K, int V) {
    void *w = malloc((size_t)V * K * (type == BN_GGML_F32 ? 4 : 2));
    assert_non_null(w);
    return w;
}

static void head_set(void *w, int type, size_t i, float v) {
    if (type == BN_GGML_F32)
        ((float *)w)[i] = v;
    else
        ((uint16_t *)w)[i] = bn_f32_to_f16(v);
}

// Row r as the floats the kernel multiplies.
static void head_row(const void *w, int type, int K, int r, float *out) {
    for (int k = 0; k < K; k++)
        out[k] = type == BN_GGML_F32 ? ((const float *)w)[(size_t)r * K + k]
                                     : bn_f16_to_f32(((const uint16_t *)w)[(size_t)r * K + k]);
}

// x: n rows of K f16-rounded values, in the device type (xw) and as floats (xf).
static void head_x(int type, const float *xf, int n, int K, void *xw) {
    for (int i = 0; i < n * K; i++) {
        if (type == BN_GGML_F32)
            ((float *)xw)[i] = xf[i];
        else
            ((uint16_t *)xw)[i] = bn_f32_to_f16(xf[i]);
    }
}

static void test_head_gemv(void **state) {
    (void)state;
    require_gpu();
    // K, V, n, types (bit 0: F32, bit 1: F16). The full 2B-4T-sized case (+1 row)
    // runs once per type to keep host time and memory down. n covers each count
    // of 8-token tiles (1, 2, 4, 8), a partial tile in each, and for f32 the
    // passes of 16 rows (17, 33, 64).
    static const int cases[][4] = {{96, 1001, 1, 3},    {96, 1001, 3, 3},    {96, 1001, 16, 3},
                                   {96, 1001, 17, 3},   {96, 1001, 33, 3},   {96, 1001, 64, 3},
                                   {2560, 1001, 1, 3},  {2560, 1001, 3, 3},  {2560, 1001, 16, 3},
                                   {2560, 1001, 29, 3}, {2560, 1001, 64, 3}, {96, 128257, 1, 3},
                                   {96, 128257, 16, 3}, {96, 128257, 64, 3}, {2560, 128257, 3, 2},
                                   {2560, 128257, 1, 1}};
    uint64_t rng = 1234;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int type = 0; type <= 1; type++) {
            if (!(cases[ci][3] & (1 << type))) continue;
            const int K = cases[ci][0], V = cases[ci][1], n = cases[ci][2];
            void *w = head_alloc(type, K, V);
            for (size_t i = 0; i < (size_t)V * K; i++) head_set(w, type, i, frand(&rng));
            float *xf = malloc(sizeof(float) * n * K), *y = malloc(sizeof(float) * (size_t)n * V);
            float *wr = malloc(sizeof(float) * K);
            void *xw = malloc((size_t)n * K * 4);
            for (int i = 0; i < n * K; i++) xf[i] = f16_round(frand(&rng) * 2.f);
            head_x(type, xf, n, K, xw);
            bn_error err = {{0}};
            int32_t id = -1;
            if (bn_cuda_test_head_gemv(w, type, K, V, xw, n, y, &id, &err)) fail_msg("%s", err.msg);
            double worst = 0;
            for (int r = 0; r < V; r++) {
                head_row(w, type, K, r, wr);
                for (int t = 0; t < n; t++) {
                    double s = 0, a = 0;
                    for (int k = 0; k < K; k++) {
                        const double p = (double)wr[k] * xf[t * K + k];
                        s += p;
                        a += fabs(p);
                    }
                    const double d = fabs((double)y[(size_t)t * V + r] - s);
                    if (!(d <= 1e-5 * a))
                        fail_msg("head %s K=%d V=%d n=%d: logit[%d][%d] = %.9g, want %.9g (sum|p| %.3g)",
                                 type ? "f16" : "f32", K, V, n, t, r, y[(size_t)t * V + r], s, a);
                    if (a > 0 && d / a > worst) worst = d / a;
                }
            }
            const int32_t want = argmax_first(y + (size_t)(n - 1) * V, V);
            fprintf(stderr, "  head %s K=%d V=%d n=%d: max |err|/sum|p| %.2e, argmax %d\n",
                    type ? "f16" : "f32", K, V, n, worst, id);
            assert_int_equal(id, want);
            // Without the fused argmax: the same logits.
            float *y2 = malloc(sizeof(float) * (size_t)n * V);
            if (bn_cuda_test_head_gemv(w, type, K, V, xw, n, y2, NULL, &err)) fail_msg("%s", err.msg);
            assert_memory_equal(y, y2, sizeof(float) * (size_t)n * V);
            free(y2); free(w); free(wr); free(xf); free(y); free(xw);
        }
    // Shapes the kernels cannot stream are refused, not computed wrongly.
    bn_error err = {{0}};
    // (Buffers sized for every row the calls name: the wrapper uploads them first.)
    enum { N_OVER = BN_CUDA_HEAD_MAX_N + 1 };
    static uint16_t w16[8 * 100], x16[N_OVER * 100];
    static float y[N_OVER * 8];
    assert_int_equal(bn_cuda_test_head_gemv(w16, BN_GGML_F16, 100, 8, x16, 1, y, NULL, &err), -1);
    assert_int_equal(bn_cuda_test_head_gemv(w16, BN_GGML_F16, 96, 8, x16, N_OVER, y, NULL, &err), -1);
}

// Fused argmax: ties go to the lowest index (within a thread, across tiles, across
// blocks), an all-NaN row gives -1. Row sums of ones are exact in any order.
static void test_head_argmax_ties(void **state) {
    (void)state;
    require_gpu();
    const int K = 96, n = 3;
    static const int Vs[2] = {1001, 128257};
    uint64_t rng = 77;
    for (int vi = 0; vi < 2; vi++)
        for (int type = 0; type <= 1; type++) {
            const int V = Vs[vi];
            void *w = head_alloc(type, K, V);
            for (size_t i = 0; i < (size_t)V * K; i++) head_set(w, type, i, 0.5f * frand(&rng));
            float xf[3 * 96], xw[3 * 96], *y = malloc(sizeof(float) * (size_t)n * V);
            for (int i = 0; i < n * K; i++) xf[i] = i < (n - 1) * K ? f16_round(frand(&rng)) : 1.f;
            head_x(type, xf, n, K, xw);
            // (rows with value v everywhere, expected winner): each step adds a higher tie.
            static const int steps[4][3] = {{700, -2, 700}, {9, 1, 1}, {21, 5, 5}, {-1, 64, 64}};
            static const float vals[4] = {1.f, 2.f, 3.f, 4.f};
            bn_error err = {{0}};
            for (int s = 0; s < 4; s++) {
                const int ra = steps[s][0] < 0 ? V + steps[s][0] : steps[s][0];
                const int rb = steps[s][1] < 0 ? V + steps[s][1] : steps[s][1];
                for (int k = 0; k < K; k++) {
                    head_set(w, type, (size_t)ra * K + k, vals[s]);
                    head_set(w, type, (size_t)rb * K + k, vals[s]);
                }
                int32_t id = -1;
                if (bn_cuda_test_head_gemv(w, type, K, V, xw, n, y, &id, &err)) fail_msg("%s", err.msg);
                const float *last = y + (size_t)(n - 1) * V;
                assert_true(last[ra] == vals[s] * K && last[rb] == vals[s] * K);
                assert_int_equal(argmax_first(last, V), steps[s][2]);
                assert_int_equal(id, steps[s][2]);
            }
            // The last row all NaN: id -1; the other rows are unaffected.
            for (int k = 0; k < K; k++) xf[(n - 1) * K + k] = NAN;
            head_x(type, xf, n, K, xw);
            int32_t id = -1;
            if (bn_cuda_test_head_gemv(w, type, K, V, xw, n, y, &id, &err)) fail_msg("%s", err.msg);
            assert_true(isnan(y[(size_t)(n - 1) * V + 3]) && !isnan(y[3]));
            assert_int_equal(id, -1);
            free(w); free(y);
        }
}

// int8 head, part 1: the device quantizer gives bn_quantize_i8's codes and 1/s
// bit for bit, on random rows and on rows that test the floor and rint's ties.
static void test_head_q8_quantize(void **state) {
    (void)state;
    require_gpu();
    static const int cases[][3] = {{96, 1001, 3}, {2560, 1001, 3}, {96, 128257, 3}, {2560, 128257, 2}};
    uint64_t rng = 555;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int type = 0; type <= 1; type++) {
            if (!(cases[ci][2] & (1 << type))) continue;
            const int K = cases[ci][0], V = cases[ci][1];
            void *w = head_alloc(type, K, V);
            for (size_t i = 0; i < (size_t)V * K; i++) head_set(w, type, i, frand(&rng) * 0.1f);
            for (int k = 0; k < K; k++) {
                head_set(w, type, k, 0.f);                                              // row 0: zero
                head_set(w, type, (size_t)K + k, k ? (float)(k % 9 - 4) + 0.5f : 127.f); // s = 1
                head_set(w, type, (size_t)2 * K + k, 1e-7f * (float)(k % 3));            // < floor
            }
            int8_t *q = malloc((size_t)V * K), *qc = malloc((size_t)K);
            float *rs = malloc(sizeof(float) * V), *row = malloc(sizeof(float) * K);
            bn_error err = {{0}};
            if (bn_cuda_test_head_q8_quantize(w, type, K, V, q, rs, &err)) fail_msg("%s", err.msg);
            for (int r = 0; r < V; r++) {
                head_row(w, type, K, r, row);
                const volatile float s = bn_quantize_i8(row, K, qc, NULL);
                const volatile float want = 1.0f / s;
                if (memcmp(q + (size_t)r * K, qc, (size_t)K) != 0 || rs[r] != want)
                    fail_msg("q8 quantize %s K=%d V=%d row %d: scale %.9g want %.9g, codes %s",
                             type ? "f16" : "f32", K, V, r, rs[r], want,
                             memcmp(q + (size_t)r * K, qc, (size_t)K) ? "differ" : "equal");
            }
            // row 1 has s = 1: rint's ties go to even (rounding half away would give -3, 1, 3)
            assert_int_equal(q[K + 1], -2); // -2.5
            assert_int_equal(q[K + 4], 0);  // 0.5
            assert_int_equal(q[K + 6], 2);  // 2.5
            assert_int_equal(q[K + 9], -4); // -3.5
            free(w); free(row); free(q); free(qc); free(rs);
        }
    bn_error err = {{0}};
    uint16_t w16[4 * 40] = {0};
    int8_t q[4 * 40];
    float rs[4];
    assert_int_equal(bn_cuda_test_head_q8_quantize(w16, BN_GGML_F16, 40, 4, q, rs, &err), -1); // K % 16
}

// The CPU's int8 logit from the same codes (cpu/forward.c lm_head_worker).
static float q8_logit(const int8_t *w, const int8_t *x, int K, float row_scale, float xscale) {
    int32_t acc = 0;
    for (int k = 0; k < K; k++) acc += (int32_t)w[k] * x[k];
    const volatile float p = (float)acc * row_scale; // two roundings, no FMA
    return p / xscale;
}

// int8 head, part 2: the GEMV's logits are bit-identical to the CPU formula.
static void test_head_q8_gemv(void **state) {
    (void)state;
    require_gpu();
    static const int cases[][3] = {{96, 1001, 1},     {96, 1001, 3},      {96, 1001, 16},    {2560, 1001, 16},
                                   {96, 1001, 25},    {2560, 1001, 64},   {96, 128257, 1},   {96, 128257, 16},
                                   {96, 128257, 57},  {2560, 128257, 1},  {2560, 128257, 3}};
    uint64_t rng = 4321;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int K = cases[ci][0], V = cases[ci][1], n = cases[ci][2];
        int8_t *w = malloc((size_t)V * K), *x = malloc((size_t)n * K);
        float *rs = malloc(sizeof(float) * V), xs[BN_CUDA_HEAD_MAX_N], *y = malloc(sizeof(float) * (size_t)n * V);
        for (size_t i = 0; i < (size_t)V * K; i++) w[i] = (int8_t)bn_test_rand(&rng); // -128..127
        for (int i = 0; i < n * K; i++) x[i] = (int8_t)bn_test_rand(&rng);
        for (int r = 0; r < V; r++) rs[r] = (0.5f + 0.5f * frand(&rng)) * 0.01f;
        for (int t = 0; t < n; t++) xs[t] = 10.f + 1000.f * fabsf(frand(&rng));
        bn_error err = {{0}};
        int32_t id = -1;
        if (bn_cuda_test_head_q8_gemv(w, rs, K, V, x, xs, n, y, &id, &err)) fail_msg("%s", err.msg);
        for (int t = 0; t < n; t++)
            for (int r = 0; r < V; r++) {
                const float want = q8_logit(w + (size_t)r * K, x + (size_t)t * K, K, rs[r], xs[t]);
                if (memcmp(&y[(size_t)t * V + r], &want, sizeof want) != 0)
                    fail_msg("q8 K=%d V=%d n=%d: logit[%d][%d] = %.9g, want %.9g", K, V, n, t, r,
                             y[(size_t)t * V + r], want);
            }
        assert_int_equal(id, argmax_first(y + (size_t)(n - 1) * V, V));
        // Ties: two identical rows with the largest scale, lowest index wins; then
        // an all-zero last input row makes every logit 0: id 0.
        const int ra = 700, rb = V - 2;
        for (int k = 0; k < K; k++) {
            w[(size_t)ra * K + k] = w[(size_t)rb * K + k] = 127;
            x[(size_t)(n - 1) * K + k] = 127;
        }
        rs[ra] = rs[rb] = 1.f;
        if (bn_cuda_test_head_q8_gemv(w, rs, K, V, x, xs, n, y, &id, &err)) fail_msg("%s", err.msg);
        assert_true(y[(size_t)(n - 1) * V + ra] == y[(size_t)(n - 1) * V + rb]);
        assert_int_equal(id, ra);
        memset(x + (size_t)(n - 1) * K, 0, (size_t)K);
        if (bn_cuda_test_head_q8_gemv(w, rs, K, V, x, xs, n, y, &id, &err)) fail_msg("%s", err.msg);
        assert_true(y[(size_t)(n - 1) * V + 5] == 0.f);
        assert_int_equal(id, 0);
        fprintf(stderr, "  head q8 K=%d V=%d n=%d: bit-exact\n", K, V, n);
        free(w); free(x); free(rs); free(y);
    }
}

// The int8 head input: rmsnorm_cast's int8 option equals bn_quantize_i8 of the
// f16-rounded row the f16 option writes (same kernel, same rounding: exact), and
// the whole host path (bn_rmsnorm, f16 rounding, bn_quantize_i8) up to the
// float-summation flips test_rmsnorm_quant allows.
static void test_rmsnorm_cast_q8(void **state) {
    (void)state;
    require_gpu();
    uint64_t rng = 31;
    for (int n = 96; n <= 2560; n += 2464) {
        const int n_tok = 4; // the last row is zero: the amax floor
        float *x = calloc((size_t)n_tok * n, sizeof(float)), *w = malloc(sizeof(float) * n);
        float *hf = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
        uint16_t *h16 = malloc(2 * (size_t)n_tok * n);
        int8_t *q = malloc((size_t)n_tok * n), *qc = malloc((size_t)n);
        float xs[4];
        for (int i = 0; i < (n_tok - 1) * n; i++) x[i] = frand(&rng) * 3.f;
        for (int i = 0; i < n; i++) w[i] = 1.f + 0.2f * frand(&rng);
        bn_error err = {{0}};
        if (bn_cuda_test_rmsnorm_cast(x, w, n_tok, n, 1e-5f, BN_GGML_F16, h16, &err) ||
            bn_cuda_test_rmsnorm_cast_q8(x, w, n_tok, n, 1e-5f, q, xs, &err))
            fail_msg("%s", err.msg);
        for (int t = 0; t < n_tok; t++) {
            // exact: from the device's own f16-rounded row
            for (int i = 0; i < n; i++) hf[i] = bn_f16_to_f32(h16[(size_t)t * n + i]);
            const float s = bn_quantize_i8(hf, n, qc, NULL);
            assert_memory_equal(&xs[t], &s, sizeof s);
            assert_memory_equal(q + (size_t)t * n, qc, (size_t)n);
            // the whole host path
            bn_rmsnorm(ref, x + (size_t)t * n, w, n, 1e-5f);
            bn_round_f16(ref, n);
            int32_t qsum_host, qsum_dev = 0, off = 0;
            const float sh = bn_quantize_i8(ref, n, qc, &qsum_host);
            assert_true(fabsf(xs[t] - sh) <= 1e-3f * sh); // at most one f16 ulp of max|h| apart
            for (int i = 0; i < n; i++) {
                const int d = abs(q[(size_t)t * n + i] - qc[i]);
                assert_true(d <= 1);
                off += d;
                qsum_dev += q[(size_t)t * n + i];
            }
            assert_true(off <= 1 + n / 100);
            assert_true(abs(qsum_dev - qsum_host) <= off);
        }
        assert_true(xs[n_tok - 1] == 127.0f / 1e-5f); // zero row: the floor, zero codes
        free(x); free(w); free(hf); free(ref); free(h16); free(q); free(qc);
    }
}

// ---- whole model on tiny-a -----------------------------------------------------------

// A tiny-a golden case and the files of its reference logits.
typedef struct golden {
    bn_golden_case c;
    char logits0[256], logits1[256];
} golden;

// The golden cases beside tiny-a.gguf (which the caller required): a missing,
// unreadable or malformed file fails the test rather than leaving nothing to compare.
static int load_golden(golden *g, int max) {
    char buf[4096];
    const char *p = bn_fixture_path("tiny-a/tiny-a.golden.json", buf, sizeof buf);
    char *text = p ? bn_read_file(p, NULL) : NULL;
    cJSON *js = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!js) fail_msg("tiny-a/tiny-a.golden.json is missing or not JSON beside tiny-a.gguf");
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(js, "cases")) {
        if (n == max) break;
        golden *G = &g[n++];
        if (bn_golden_read_case(c, &G->c)) fail_msg("tiny-a/tiny-a.golden.json: case %d is malformed", n - 1);
        G->c.prompt = NULL; // it lives in js
        snprintf(G->logits0, sizeof G->logits0, "tiny-a/%s", cJSON_GetStringValue(cJSON_GetObjectItem(c, "logits_f32")));
        snprintf(G->logits1, sizeof G->logits1, "tiny-a/%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(c, "logits_gen1_f32")));
    }
    cJSON_Delete(js);
    if (n == 0) fail_msg("tiny-a/tiny-a.golden.json has no cases");
    return n;
}

// Greedy ids after the prompt: decode one token per step (forward_argmax).
static void run_greedy(const bn_backend_ops *ops, bn_backend *be, const golden *G, int32_t *out) {
    bn_error err = {{0}};
    int32_t pos = 0, id = -1;
    for (int i = 0; i < G->c.n_prompt; i++, pos++)
        if (ops->forward_argmax(be, &G->c.prompt_ids[i], &pos, NULL, 1, &id, &err)) fail_msg("%s", err.msg);
    for (int k = 0; k < N_GEN; k++) {
        out[k] = id;
        if (k + 1 < N_GEN) {
            if (ops->forward_argmax(be, &id, &pos, NULL, 1, &id, &err)) fail_msg("%s", err.msg);
            pos++;
        }
    }
}

// Compares ids with the golden ones; a mismatch is allowed only where the
// reference margin is below 0.05 (fixtures README), and ends the comparison.
static void check_ids(const char *what, const golden *G, const int32_t *ids, int n) {
    for (int k = 0; k < n; k++) {
        if (ids[k] == G->c.gen_ids[k]) continue;
        if (G->c.step[k].margin < 0.05f) return;
        fail_msg("%s: step %d id %d, reference %d (margin %.3f)", what, k, ids[k], G->c.gen_ids[k], G->c.step[k].margin);
    }
}

static void tiny_a_run(void) {
    BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
    bn_error err = {{0}};
    bn_model *m = NULL;
    assert_int_equal(bn_model_load(path, &m, &err), 0);
    const bn_backend_ops *cuda = bn_backend_find("cuda"), *cpu = bn_backend_find("cpu");
    bn_backend_config cfg = {.max_batch = 32, .cpu.n_threads = 1};
    bn_backend *be = NULL, *bc = NULL;
    if (cuda->create(m, &cfg, &be, &err)) fail_msg("%s", err.msg);
    if (cpu->create(m, &cfg, &bc, &err)) fail_msg("%s", err.msg);
    bn_cuda_stats st;
    bn_cuda_backend_stats(be, &st);
    fprintf(stderr, "  upload %.1f ms, device memory %.1f MiB, graphs %s\n", st.upload_ms,
            st.device_bytes / 1048576.0, st.graphs ? "on" : "off");
    assert_int_equal(cuda->memory_bytes(be), st.device_bytes);

    golden g[8];
    const int n_cases = load_golden(g, 8);
    assert_true(n_cases > 0);
    const int V = (int)m->hp.n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)V * 64);
    for (int c = 0; c < n_cases; c++) {
        const golden *G = &g[c];
        int32_t ids[N_GEN], cpu_ids[N_GEN];
        run_greedy(cuda, be, G, ids);
        check_ids("cuda decode", G, ids, N_GEN);
        run_greedy(cpu, bc, G, cpu_ids);
        // Same tokens as the CPU wherever both follow the reference with a clear margin.
        for (int k = 0; k < N_GEN && cpu_ids[k] == G->c.gen_ids[k] && G->c.step[k].margin >= 0.05f; k++)
            assert_int_equal(ids[k], cpu_ids[k]);

        // Batched prefill of prompt + generated ids (> 8 tokens: the GEMM path),
        // all logits: row n_prompt-1+k must pick gen[k].
        int32_t toks[64], pos[64];
        const int n = G->c.n_prompt + N_GEN - 1;
        for (int i = 0; i < n; i++) {
            toks[i] = i < G->c.n_prompt ? G->c.prompt_ids[i] : G->c.gen_ids[i - G->c.n_prompt];
            pos[i] = i;
        }
        if (cuda->forward(be, toks, pos, NULL, n, logits, true, &err)) fail_msg("%s", err.msg);
        int32_t pre[N_GEN];
        for (int k = 0; k < N_GEN; k++) pre[k] = bn_argmax(logits + (size_t)(G->c.n_prompt - 1 + k) * V, V);
        check_ids("cuda batched prefill", G, pre, N_GEN);

        // The same prefill in chunks of 10 (max_batch): GEMM, GEMM, then a GEMV
        // chunk, each reading the K/V the earlier chunks left in the cache.
        {
            bn_backend_config c10 = cfg;
            c10.max_batch = 10;
            bn_backend *b10 = NULL;
            float *l10 = malloc(sizeof(float) * (size_t)V * 64);
            if (cuda->create(m, &c10, &b10, &err)) fail_msg("%s", err.msg);
            if (cuda->forward(b10, toks, pos, NULL, n, l10, true, &err)) fail_msg("%s", err.msg);
            double mx = 0;
            for (size_t i = 0; i < (size_t)n * V; i++) {
                const double d = fabs((double)l10[i] - logits[i]);
                mx = d > mx ? d : mx;
            }
            fprintf(stderr, "  case %d: chunked prefill vs one batch: max |diff| %.2e\n", c, mx);
            assert_true(mx <= 1e-2); // same codes; the chunks' kernels sum floats in another order
            cuda->destroy(b10);
            free(l10);
        }

        // Full logits after the prompt, and after feeding gen[0] (decode, n = 1:
        // the first such step runs eagerly, the second replays the captured
        // LOGITS graph), against the reference files.
        for (int which = 0; which < 2; which++) {
            char buf[4096];
            const char *lp = bn_fixture_path(which ? G->logits1 : G->logits0, buf, sizeof buf);
            size_t len = 0;
            float *ref = lp ? (float *)bn_read_file(lp, &len) : NULL;
            if (!ref || len != sizeof(float) * (size_t)V)
                fail_msg("reference logits %s: missing or not %d floats", which ? G->logits1 : G->logits0, V);
            {
                for (int rep = 0; rep < (which ? 2 : 1); rep++) {
                    if (which == 0) {
                        if (cuda->forward(be, G->c.prompt_ids, pos, NULL, G->c.n_prompt, logits, false, &err))
                            fail_msg("%s", err.msg);
                    } else if (cuda->forward(be, &G->c.gen_ids[0], &pos[G->c.n_prompt], NULL, 1, logits, false, &err)) {
                        fail_msg("%s", err.msg);
                    }
                    double mx = 0, mean = 0;
                    for (int i = 0; i < V; i++) {
                        const double d = fabs((double)logits[i] - ref[i]);
                        mx = d > mx ? d : mx;
                        mean += d / V;
                    }
                    fprintf(stderr, "  case %d: logits%s max |diff| %.4f, mean %.6f\n", c,
                            which ? (rep ? " gen1 (graph)" : " gen1 (eager)") : "", mx, mean);
                    assert_true(mx <= 0.1 && mean <= 1e-3);
                }
            }
            free(ref);
        }
    }
    // Capture failures fall back to eager runs silently; here they must not happen.
    bn_cuda_backend_stats(be, &st);
    const char *genv = getenv("BITNET_CUDA_GRAPH");
    if (!(genv && strcmp(genv, "0") == 0) && !st.graphs) fail_msg("graph capture failed: %s", st.graph_error);
    // Bad input is an error, not a crash.
    int32_t bad_tok = V, p0 = 0, id;
    assert_int_equal(cuda->forward_argmax(be, &bad_tok, &p0, NULL, 1, &id, &err), -1);
    int32_t tok = 1, bad_pos = (int32_t)m->hp.n_ctx_train;
    assert_int_equal(cuda->forward_argmax(be, &tok, &bad_pos, NULL, 1, &id, &err), -1);
    free(logits);
    cpu->destroy(bc);
    cuda->destroy(be);
    bn_model_free(m);
}

// The whole model as the backend runs it, and again with each fast path switched
// off in turn (the switches bench_cuda uses to compare them).
static void test_tiny_a_model(void **state) {
    (void)state;
    require_gpu();
    static const char *variants[][2] = {{NULL, NULL},
                                        {"BITNET_CUDA_GRAPH", "0"},
                                        {"BITNET_CUDA_PDL", "0"},
                                        {"BITNET_CUDA_ATTN", "plain"},
                                        {"BITNET_CUDA_GEMM", "dp4a"},
                                        {"BITNET_CUDA_NORM", "last"},
                                        {"BITNET_CUDA_GEMV_MAX", "0"},
                                        {"BITNET_CUDA_GEMM_TILE", "auto"}, // tiles of 32 and 64 tokens
                                        // the one-kernel decode attention: everywhere, and up to position
                                        // 15 (the split pair after it: both graphs of a step)
                                        {"BITNET_CUDA_ATTD_SHORT", "256"},
                                        {"BITNET_CUDA_ATTD_SHORT", "16"},
                                        // the persistent decode kernel: everywhere, and up to position 15
                                        {"BITNET_CUDA_PERSIST", "256"},
                                        {"BITNET_CUDA_PERSIST", "16"}};
    // BITNET_TEST_QUICK=1 (gpu-check.sh's memcheck run): the default only.
    const char *quick = getenv("BITNET_TEST_QUICK");
    const size_t n_variants = quick && strcmp(quick, "1") == 0 ? 1 : sizeof variants / sizeof variants[0];
    for (size_t i = 0; i < n_variants; i++) {
        const char *name = variants[i][0];
        fprintf(stderr, "  -- %s%s%s\n", name ? name : "default", name ? "=" : "", name ? variants[i][1] : "");
        if (name) setenv(name, variants[i][1], 1);
        tiny_a_run();
        if (name) unsetenv(name);
    }
}

// A CUDA backend made with the switches that pick the decode path set as
// env[0..n) says (NAME=VALUE) and the others unset; the caller's values are
// back afterwards.
static bn_backend *create_with(const bn_model *m, const bn_backend_config *cfg, const char *const *env, int n) {
    static const char *const names[] = {"BITNET_CUDA_PERSIST", "BITNET_CUDA_ATTD_SHORT", "BITNET_CUDA_GRAPH",
                                        "BITNET_CUDA_PDL", "BITNET_CUDA_ATTN", "BITNET_CUDA_NORM",
                                        "BITNET_CUDA_GEMV_MAX", "BITNET_CUDA_PERSIST_RING"};
    enum { N_NAMES = sizeof names / sizeof names[0] };
    char *saved[N_NAMES];
    for (int k = 0; k < N_NAMES; k++) {
        const char *v = getenv(names[k]);
        saved[k] = v ? strdup(v) : NULL;
        unsetenv(names[k]);
    }
    bn_cuda_switches_set(env, n, true);
    bn_error err = {{0}};
    bn_backend *be = NULL;
    const int rc = bn_backend_find("cuda")->create(m, cfg, &be, &err);
    for (int k = 0; k < N_NAMES; k++) {
        if (saved[k]) setenv(names[k], saved[k], 1);
        else unsetenv(names[k]);
        free(saved[k]);
    }
    if (rc) fail_msg("create with %s: %s", n ? env[0] : "defaults", err.msg);
    return be;
}

// Where two backends part on a decode step of token at pos (a position both
// have already run, so rerunning it rewrites its cache rows with the same
// values): the step through the first k layers for every k, the hidden state and
// the last layer's step buffers compared bit for bit; the first that differs
// names the phase.
static void compare_layers(bn_backend *a, bn_backend *b, const bn_model *m, int32_t token, int32_t pos) {
    const bn_hparams *hp = &m->hp;
    const size_t E = hp->n_embd, nq = (size_t)hp->n_head * hp->head_dim, nkv = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t widths[4] = {nq + 2 * nkv, nq, 2 * (size_t)hp->n_ff, E}, total = widths[0] + widths[1] + widths[2] + widths[3];
    static const char *const what[4] = {"Q|K|V (its GEMV)", "the attention output", "gate|up (the O or gate|up GEMV)",
                                        "the hidden state (the down GEMV)"};
    float *ba = malloc(sizeof(float) * total), *bb = malloc(sizeof(float) * total);
    bn_error err = {{0}};
    for (int k = 1; k <= (int)hp->n_layer; k++) {
        float *pa[4], *pb[4];
        for (int i = 0, o = 0; i < 4; o += (int)widths[i], i++) {
            pa[i] = ba + o;
            pb[i] = bb + o;
        }
        if (bn_cuda_debug_step(a, token, pos, k, pa[3], pa[0], pa[1], pa[2], &err) ||
            bn_cuda_debug_step(b, token, pos, k, pb[3], pb[0], pb[1], pb[2], &err))
            fail_msg("%s", err.msg);
        for (int i = 0; i < 4; i++)
            for (size_t j = 0; j < widths[i]; j++)
                if (memcmp(&pa[i][j], &pb[i][j], sizeof(float)))
                    fail_msg("position %d, layer %d: %s differs first, at %zu (%.9g vs %.9g)", pos, k - 1, what[i],
                             j, pa[i][j], pb[i][j]);
    }
    free(ba);
    free(bb);
}

// The persistent decode kernel must compute what the kernel-per-operation step
// computes, bit for bit (decode_persistent.cu), with the same attention form:
// the split pair everywhere (short "0"), or the one-kernel form below position
// `short` and the split pair from there. The same tokens into both: a prompt,
// teacher-forced decode steps of random tokens at positions 7-59 (the first of
// each output kind eager, the rest graph replays), a second prompt chunk up to
// position 199, then decode steps at 200-229, where the keys take several
// splits (n_ctx 512: 4; 1024: 8). Logits and greedy ids compared.
// n_seq 2: the sequence in slot 1 (no graphs then), so the slot's stride counts.
// ring: NULL, or BITNET_CUDA_PERSIST_RING's bytes, to force small chunks ("1":
// stages of one row of the widest matrix).
static void persistent_vs_kernels(const char *path, const char *short_keys, int n_ctx, int n_seq, const char *ring) {
    enum { N_TOK = 230, PROMPT = 7, JUMP_FROM = 60, JUMP_TO = 200 };
    bn_error err = {{0}};
    bn_model *m = NULL;
    assert_int_equal(bn_model_load(path, &m, &err), 0);
    const bn_backend_ops *cuda = bn_backend_find("cuda");
    const bn_backend_config cfg = {.max_batch = 32, .n_ctx = n_ctx, .n_seq = n_seq};
    char att[64], persist[64], ring_env[64];
    snprintf(att, sizeof att, "BITNET_CUDA_ATTD_SHORT=%s", short_keys);
    snprintf(persist, sizeof persist, "BITNET_CUDA_PERSIST=%d", n_ctx);
    snprintf(ring_env, sizeof ring_env, "BITNET_CUDA_PERSIST_RING=%s", ring ? ring : "");
    const char *persist_env[] = {persist, att, ring_env};
    bn_backend *bp = create_with(m, &cfg, persist_env, ring ? 3 : 2), *bk = create_with(m, &cfg, persist_env + 1, 1);
    bn_cuda_stats sp, sk;
    bn_cuda_backend_stats(bp, &sp);
    bn_cuda_backend_stats(bk, &sk);
    if (sp.persist != n_ctx) fail_msg("no persistent plan on this device (%d)", sp.persist);
    assert_int_equal(sk.persist, 0);
    // Ring "1": stages of one row of the widest matrix, and so more chunks than
    // the eight a plan of this model takes when a layer fits.
    const bn_hparams *hp = &m->hp;
    const uint32_t nq = hp->n_head * hp->head_dim, kff = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    const uint32_t widest = (kff > nq ? kff : nq) / 4;
    if (ring && !strcmp(ring, "1") && (size_t)sp.persist_ring != BN_PERSIST_STAGES * bn_persist_round(widest))
        fail_msg("ring 1: %d bytes, not %d stages of one %u-byte row", sp.persist_ring, BN_PERSIST_STAGES, widest);
    if (ring && sp.persist_chunks <= BN_PERSIST_STAGES)
        fail_msg("ring %s: %d chunks a layer, no more than the ring's stages", ring, sp.persist_chunks);
    assert_int_equal(sp.attd_short, atoi(short_keys));
    assert_int_equal(sk.attd_short, atoi(short_keys));
    const int V = (int)m->hp.n_vocab;
    float *lp = malloc(sizeof(float) * V), *lk = malloc(sizeof(float) * V);
    int32_t tok[N_TOK], pos[N_TOK], slot[N_TOK];
    const int32_t *seq = n_seq > 1 ? slot : NULL;
    uint64_t rng = 77;
    for (int i = 0; i < N_TOK; i++) {
        tok[i] = (int32_t)(bn_test_rand(&rng) % (uint64_t)V);
        pos[i] = i;
        slot[i] = n_seq - 1;
    }
    int logit_steps = 0, argmax_steps = 0;
    for (int i = 0; i < N_TOK;) {
        const bool prompt = i == 0 || i == JUMP_FROM;
        const int n = i == 0 ? PROMPT : i == JUMP_FROM ? JUMP_TO - JUMP_FROM : 1;
        const int32_t *sq = seq ? &seq[i] : NULL;
        if (!prompt && i % 3 == 2) { // the argmax graphs
            int32_t ip = -1, ik = -2;
            if (cuda->forward_argmax(bp, &tok[i], &pos[i], sq, 1, &ip, &err) ||
                cuda->forward_argmax(bk, &tok[i], &pos[i], sq, 1, &ik, &err))
                fail_msg("%s", err.msg);
            if (ip != ik) fail_msg("position %d: persistent argmax %d, kernels %d", i, ip, ik);
            argmax_steps++;
        } else {
            if (cuda->forward(bp, &tok[i], &pos[i], sq, n, lp, false, &err) ||
                cuda->forward(bk, &tok[i], &pos[i], sq, n, lk, false, &err))
                fail_msg("%s", err.msg);
            if (memcmp(lp, lk, sizeof(float) * V)) {
                int first = 0;
                while (lp[first] == lk[first]) first++;
                fprintf(stderr, "  position %d: logits differ from index %d (%.9g vs %.9g)\n", i + n - 1, first,
                        lp[first], lk[first]);
                if (n == 1 && n_seq == 1) compare_layers(bp, bk, m, tok[i], pos[i]); // names the phase
                fail_msg("position %d: the persistent kernel's logits differ", i + n - 1);
            }
            logit_steps += !prompt;
        }
        i += n;
    }
    bn_cuda_backend_stats(bp, &sp);
    if (n_seq == 1 && !sp.graphs) fail_msg("graph capture failed: %s", sp.graph_error);
    // Layer by layer too, at a position of each attention form.
    if (n_seq == 1) {
        compare_layers(bp, bk, m, tok[30], 30);
        compare_layers(bp, bk, m, tok[N_TOK - 1], N_TOK - 1);
    }
    fprintf(stderr, "  %s, one-kernel attention below %s, context %d, slot %d, ring %d bytes (%d chunks a layer): %d "
            "decode steps with logits and %d with argmax identical\n", path, short_keys, n_ctx, n_seq - 1,
            sp.persist_ring, sp.persist_chunks, logit_steps, argmax_steps);
    free(lp);
    free(lk);
    cuda->destroy(bp);
    cuda->destroy(bk);
    bn_model_free(m);
}

// A random model of a preset's family and layers, with hidden width, heads, KV
// heads and context set where not 0, written to path.
static void write_model(char *path, size_t n, const char *preset, uint32_t embd, uint32_t heads, uint32_t kv,
                        uint32_t ctx) {
    bn_synth_config cfg;
    bn_error err = {{0}};
    assert_int_equal(bn_synth_preset(preset, &cfg, &err), 0);
    if (embd) cfg.n_embd = embd;
    if (heads) cfg.n_head = heads;
    if (kv) cfg.n_head_kv = kv;
    if (ctx) cfg.n_ctx = ctx;
    bn_tmp_path(path, n, "persist");
    if (bn_synth_model_write(&cfg, path, &err)) fail_msg("%s", err.msg);
}

static void test_persistent_decode(void **state) {
    (void)state;
    require_gpu();
    char buf[4096];
    const char *trained = bn_shipped_path("models/bitnet-austen-6m.gguf", buf, sizeof buf);
    // The other families (SiLU; no sub-norms, adjacent-pair RoPE), head dims 128
    // and 256, 12 query heads a KV head (two blocks a group: one writes the cache
    // row, the other only reads), and 32 heads without GQA at context 1024 (32
    // head blocks x 8 splits: more than the multiprocessors, so blocks take
    // several). ring: where a ring of one-row stages streams a layer in more
    // chunks than the plan would take (hidden 768 and more; the smaller models'
    // plans are of one-row stages already).
    static const struct {
        const char *preset;
        uint32_t embd, heads, kv, ctx;
        bool ring;
    } shapes[] = {{"tiny", 768, 12, 1, 0, true},        {"tiny-bitnet", 0, 0, 0, 0, false},
                  {"tiny-llama", 0, 0, 0, 0, false},    {"tiny", 256, 2, 1, 0, false},
                  {"tiny", 512, 2, 1, 0, false},        {"tiny", 2048, 32, 32, 1024, true}};
    // BITNET_TEST_QUICK=1 (gpu-check.sh's memcheck run): the trained model and the first shape only.
    const char *quick_env = getenv("BITNET_TEST_QUICK");
    const bool quick = quick_env && strcmp(quick_env, "1") == 0;
    persistent_vs_kernels(trained, "48", 512, 1, NULL);
    if (!quick) {
        persistent_vs_kernels(trained, "0", 512, 1, NULL);
        persistent_vs_kernels(trained, "48", 512, 2, NULL);
    }
    for (size_t i = 0; i < (quick ? 1 : sizeof shapes / sizeof shapes[0]); i++) {
        char path[256];
        write_model(path, sizeof path, shapes[i].preset, shapes[i].embd, shapes[i].heads, shapes[i].kv,
                    shapes[i].ctx);
        const int n_ctx = shapes[i].ctx ? (int)shapes[i].ctx : 512;
        if (!quick) {
            persistent_vs_kernels(path, "0", n_ctx, 1, NULL);
            persistent_vs_kernels(path, "48", n_ctx, 1, NULL);
        }
        if (shapes[i].ring) persistent_vs_kernels(path, "0", n_ctx, 1, "1");
        unlink(path);
    }
    if (quick) return;
    BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
    persistent_vs_kernels(path, "0", 512, 1, NULL);
    persistent_vs_kernels(path, "48", 512, 1, NULL);
}

// The GEMV's batch limit chosen at create() from timings on this card
// (gemv_crossover.h): some batches timed, each time positive, the limit between 1
// and the most the GEMV holds (8). The choice must not change a result: batches
// of 1 to 16 tokens (prompt chunks, then decode steps) give the same logits, bit
// for bit, as with the GEMV up to 8 tokens and with every batch on the GEMM.
static void test_gemv_limit_tuned(void **state) {
    (void)state;
    require_gpu();
    bn_error err = {{0}};
    bn_model *m = shipped_model();
    const bn_backend_ops *cuda = bn_backend_find("cuda");
    const bn_backend_config cfg = {.max_batch = 32, .n_ctx = 256, .n_seq = 1};
    const char *const all_gemv[] = {"BITNET_CUDA_GEMV_MAX=8"}, *const all_gemm[] = {"BITNET_CUDA_GEMV_MAX=0"};
    bn_backend *bt = create_with(m, &cfg, NULL, 0), *bv = create_with(m, &cfg, all_gemv, 1),
               *bg = create_with(m, &cfg, all_gemm, 1);
    bn_cuda_stats st, sv;
    bn_cuda_backend_stats(bt, &st);
    bn_cuda_backend_stats(bv, &sv);
    if (st.tuned_sizes < 1) fail_msg("the GEMV limit was not timed");
    assert_true(st.gemv_max >= 1 && st.gemv_max <= 8);
    if (sv.gemv_max != 8) fail_msg("this device's GEMV holds %d tokens of the model, not 8", sv.gemv_max);
    assert_int_equal(sv.tuned_sizes, 0); // BITNET_CUDA_GEMV_MAX set: not timed
    fprintf(stderr, "  GEMV up to %d tokens, timed in %.1f ms:", st.gemv_max, st.tune_ms);
    for (int i = 0; i < st.tuned_sizes; i++) {
        assert_true(st.tuned_gemv_us[i] > 0 && st.tuned_gemm_us[i] > 0);
        fprintf(stderr, " %d: %.1f / %.1f us", st.tuned_batch[i], st.tuned_gemv_us[i], st.tuned_gemm_us[i]);
    }
    fprintf(stderr, "\n");
    const int V = (int)m->hp.n_vocab, N = 16 * 17 / 2 + 8;
    float *lt = malloc(sizeof(float) * 16 * V), *lv = malloc(sizeof(float) * 16 * V), *lg = malloc(sizeof(float) * 16 * V);
    int32_t tok[16], pos[16];
    uint64_t rng = 5;
    for (int p0 = 0, n = 1; p0 < N; p0 += n, n = n < 16 ? n + 1 : 1) {
        for (int i = 0; i < n; i++) {
            tok[i] = (int32_t)(bn_test_rand(&rng) % (uint64_t)V);
            pos[i] = p0 + i;
        }
        if (cuda->forward(bt, tok, pos, NULL, n, lt, true, &err) || cuda->forward(bv, tok, pos, NULL, n, lv, true, &err) ||
            cuda->forward(bg, tok, pos, NULL, n, lg, true, &err))
            fail_msg("%s", err.msg);
        if (memcmp(lt, lv, sizeof(float) * n * V) || memcmp(lt, lg, sizeof(float) * n * V))
            fail_msg("a batch of %d tokens at position %d: the GEMV and GEMM paths differ", n, p0);
    }
    free(lt); free(lv); free(lg);
    cuda->destroy(bt); cuda->destroy(bv); cuda->destroy(bg);
    bn_model_free(m);
}

// --lm-head q8 on both backends: the same int8 head (rows quantized the same
// way, bit for bit), so from the same prompt the logits differ only where the
// hidden states differ (attention summation order) enough to flip an input code.
static void test_tiny_a_q8_head(void **state) {
    (void)state;
    require_gpu();
    BN_REQUIRE_FIXTURE(path, "tiny-a/tiny-a.gguf");
    bn_error err = {{0}};
    bn_model *m = NULL;
    assert_int_equal(bn_model_load(path, &m, &err), 0);
    const bn_backend_ops *cuda = bn_backend_find("cuda"), *cpu = bn_backend_find("cpu");
    bn_backend_config cfg = {.max_batch = 32, .lm_head_q8 = true, .cpu.n_threads = 1};
    bn_backend *be = NULL, *bc = NULL;
    if (cuda->create(m, &cfg, &be, &err) || cpu->create(m, &cfg, &bc, &err)) fail_msg("%s", err.msg);
    golden g[8];
    const int n_cases = load_golden(g, 8);
    const int V = (int)m->hp.n_vocab;
    float *lg = malloc(sizeof(float) * V), *lc = malloc(sizeof(float) * V);
    for (int c = 0; c < n_cases; c++) {
        int32_t pos[64];
        for (int i = 0; i < g[c].c.n_prompt; i++) pos[i] = i;
        if (cuda->forward(be, g[c].c.prompt_ids, pos, NULL, g[c].c.n_prompt, lg, false, &err) ||
            cpu->forward(bc, g[c].c.prompt_ids, pos, NULL, g[c].c.n_prompt, lc, false, &err))
            fail_msg("%s", err.msg);
        double mx = 0, mean = 0;
        for (int i = 0; i < V; i++) {
            const double d = fabs((double)lg[i] - lc[i]);
            mx = fmax(mx, d);
            mean += d / V;
        }
        fprintf(stderr, "  case %d: q8 head logits, cuda vs cpu: max |diff| %.2e, mean %.2e\n", c, mx, mean);
        assert_true(mx <= 0.1 && mean <= 1e-3); // the fixtures' tolerance
        int32_t id_g = -1, p = g[c].c.n_prompt;
        if (cuda->forward_argmax(be, &g[c].c.gen_ids[0], &p, NULL, 1, &id_g, &err)) fail_msg("%s", err.msg);
        if (cpu->forward(bc, &g[c].c.gen_ids[0], &p, NULL, 1, lc, false, &err)) fail_msg("%s", err.msg);
        assert_int_equal(id_g, bn_argmax(lc, V)); // the fused argmax of the q8 GEMV
    }
    free(lg); free(lc);
    cpu->destroy(bc);
    cuda->destroy(be);
    bn_model_free(m);
}
#endif // BITNET_CUDA

// The registry lists the CUDA backend exactly when it is compiled in.
static void test_registry(void **state) {
    (void)state;
#ifdef BITNET_CUDA
    const bn_backend_ops *ops = bn_backend_find("cuda");
    assert_non_null(ops);
    assert_string_equal(ops->name, "cuda");
    assert_non_null(ops->forward_argmax);
    assert_non_null(ops->memory_bytes);
#else
    assert_null(bn_backend_find("cuda"));
    fprintf(stderr, "SKIP: built without CUDA\n");
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
#ifdef BITNET_CUDA
        cmocka_unit_test(test_probe_and_create_fail_cleanly),
        cmocka_unit_test(test_ternary_exact),
        cmocka_unit_test(test_rmsnorm_quant),
        cmocka_unit_test(test_gemv_next_norm),
        cmocka_unit_test(test_q8k_bitlinear),
        cmocka_unit_test(test_gemv_norm),
        cmocka_unit_test(test_rope_kv),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_decode),
        cmocka_unit_test(test_attention_decode_seqs),
        cmocka_unit_test(test_argmax_rows),
        cmocka_unit_test(test_embedding_argmax_cast),
        cmocka_unit_test(test_head_gemv),
        cmocka_unit_test(test_head_argmax_ties),
        cmocka_unit_test(test_head_q8_quantize),
        cmocka_unit_test(test_head_q8_gemv),
        cmocka_unit_test(test_rmsnorm_cast_q8),
        cmocka_unit_test(test_tiny_a_model),
        cmocka_unit_test(test_persistent_decode),
        cmocka_unit_test(test_gemv_limit_tuned),
        cmocka_unit_test(test_top_rows),
        cmocka_unit_test(test_forward_top),
        cmocka_unit_test(test_tiny_a_q8_head),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL); // BITNET_TEST_FILTER: test_util.h
}
