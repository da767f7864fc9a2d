// gemv_crossover.h - how many tokens a bitlinear takes through the GEMV before
// the norm kernel and the tensor-core GEMM win, decided from timings taken on
// the card at create() (forward_cuda.cu bn_cuda_tune_gemv_max: an FFN's two
// bitlinears, best of three, weights from HBM), as plain C so
// tests/test_gemv_crossover.c checks the rule on any machine.
//
// The GEMV's time grows with the batch (it reads every token's codes for every
// row), the GEMM's hardly does below its tile, so the two cross once. On an H200
// (docs/cuda-performance.md) gate|up took 4.6 / 6.9 / 11.3 / 19.9 us on the GEMV at
// 1 / 2 / 4 / 8 tokens and 43-48 us on the GEMM, so there the GEMV keeps all the
// 8 tokens it can hold; a card whose GEMM is relatively faster crosses earlier.
// Both paths give the same bits (the sums are exact integers, the norm the same
// block code), so the choice changes only the time.
#ifndef BN_CUDA_GEMV_CROSSOVER_H
#define BN_CUDA_GEMV_CROSSOVER_H

#include <math.h>
#include <stdbool.h>

#define BN_CROSSOVER_SIZES 3
static const int bn_crossover_sizes[BN_CROSSOVER_SIZES] = {2, 4, 8}; // batches timed, ascending (the GEMV
                                                                     // holds at most 8: BN_GEMV_MAX_N)

// The largest batch the GEMV takes: sizes[i] for the longest run i = 0, 1, ...
// where the GEMV was no slower than the GEMM; 1 where the GEMM won already at
// sizes[0] (one token always takes the GEMV: decode, its graphs and the next
// norm are built on it). A timing that is missing (not positive, not finite)
// ends the run there; none at all (or count 0) gives `fallback`.
static inline int bn_gemv_crossover(const int *sizes, const double *gemv_us, const double *gemm_us, int count,
                                    int fallback) {
    int best = 1;
    if (count <= 0) return fallback;
    for (int i = 0; i < count; i++) {
        const bool timed = isfinite(gemv_us[i]) && isfinite(gemm_us[i]) && gemv_us[i] > 0 && gemm_us[i] > 0;
        if (!timed) return i == 0 ? fallback : best;
        if (gemv_us[i] > gemm_us[i]) break;
        best = sizes[i];
    }
    return best;
}

#endif
