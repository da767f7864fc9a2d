// logprob.h - log-probabilities from a row of logits: the log-softmax's
// denominator, as llama.cpp's perplexity tool takes it (the row's float max
// subtracted, exp in float, summed in double), for OpenAI's logprobs (batch.c)
// and `bitnet-gpu perplexity`. A leaf header, like top.h.
#ifndef BN_LOGPROB_H
#define BN_LOGPROB_H

#include <math.h>
#include <stdint.h>

// The row's max (into *max) and log(sum(exp(row[0..n) - max))), n >= 1: token
// i's log-probability is (row[i] - *max) - that, the difference taken in float
// and the rest in double, as llama.cpp's perplexity takes it (bn_logprob).
static inline double bn_log_sum_exp(const float *row, int32_t n, float *max) {
    float m = row[0];
    for (int32_t i = 1; i < n; i++) m = row[i] > m ? row[i] : m;
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += expf(row[i] - m);
    *max = m;
    return log(sum);
}

// Token i's log-probability from bn_log_sum_exp's two numbers.
static inline double bn_logprob(const float *row, int32_t i, float max, double log_sum) {
    return (double)(row[i] - max) - log_sum;
}

#endif
