// logprob.h - log-probabilities from a row of logits: the log-softmax's
// denominator, as llama.cpp's perplexity tool takes it (the row's float max
// subtracted, exp in float, summed in double), for OpenAI's logprobs (batch.c)
// and `bitnet-gpu perplexity`. A leaf header, like top.h.
#ifndef BN_LOGPROB_H
#define BN_LOGPROB_H

#include <math.h>
#include <stdint.h>

// log(sum(exp(row[0..n)))), n >= 1: token i's log-probability is row[i] minus it.
static inline double bn_log_sum_exp(const float *row, int32_t n) {
    float max = row[0];
    for (int32_t i = 1; i < n; i++) max = row[i] > max ? row[i] : max;
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += expf(row[i] - max);
    return max + log(sum);
}

#endif
