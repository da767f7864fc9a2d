// argmax.h - the greedy pick: the index of the largest value, the lowest index
// among equal maxima.
//
// One definition for both places that pick greedily: the sampler (temperature
// <= 0, sampler.c) and the CPU backend's forward_argmax (backend.h), so greedy
// decoding gives the same token whichever of the two picks it. A leaf header at
// the bottom floor: a backend includes it without seeing the sampler
// (docs/architecture.md: Three floors). The CUDA head breaks ties the same way
// (cuda/reduce.cuh, bn_argmax_take).
#ifndef BN_ARGMAX_H
#define BN_ARGMAX_H

#include <stdint.h>

static inline int32_t bn_argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

#endif
