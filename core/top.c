// top.c - bn_top_select and bn_top_exp_sum (top.h).
#include "top.h"

#include <math.h>
#include <stdlib.h>

void bn_top_select(const float *x, int32_t n, int32_t k, bn_top *top) {
    for (int32_t i = 0; i < k; i++) top[i] = (bn_top){i, x[i]};
    qsort(top, (size_t)k, sizeof *top, bn_top_qsort_order);
    for (int32_t i = k; i < n; i++) {
        // Most blocks of 64 hold nothing better than the window: one max over the
        // block (eight lanes, which the compiler keeps in vector registers) skips them.
        if (i % 64 == 0 && i + 64 <= n) {
            float m[8];
            for (int l = 0; l < 8; l++) m[l] = x[i + l];
            for (int32_t j = 8; j < 64; j += 8)
                for (int l = 0; l < 8; l++) m[l] = x[i + j + l] > m[l] ? x[i + j + l] : m[l];
            float mx = m[0];
            for (int l = 1; l < 8; l++) mx = m[l] > mx ? m[l] : mx;
            if (mx <= top[k - 1].logit) {
                i += 63;
                continue;
            }
        }
        // Not better than the last entry (an equal logit has a higher id): out.
        if (x[i] <= top[k - 1].logit) continue;
        const bn_top e = {i, x[i]};
        int32_t j = k - 1;
        while (j > 0 && bn_top_order(&e, &top[j - 1]) < 0) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = e;
    }
}

double bn_top_exp_sum(const float *x, int32_t n, float best, double limit) {
    const float floor = best - BN_TOP_EXP_FLOOR;
    double sum = 0;
    for (int32_t i = 0; i < n && sum <= limit; i++)
        if (x[i] > floor) sum += exp((double)x[i] - best);
    return sum;
}
