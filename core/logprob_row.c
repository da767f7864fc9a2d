// logprob_row.c - a sampled token's log-probabilities (logprob_row.h).
#include "logprob_row.h"

#include <stdlib.h>
#include <string.h>

#include "logprob.h"

int bn_logprob_row_init(bn_logprob_row *r, int32_t n_vocab) {
    *r = (bn_logprob_row){0};
    r->raw = malloc((size_t)n_vocab * sizeof *r->raw);
    return r->raw ? 0 : -1;
}

void bn_logprob_row_free(bn_logprob_row *r) {
    free(r->raw);
    r->raw = NULL;
}

// The row's max and log-sum-exp into r, and its n_top likeliest tokens' log-probabilities.
static void read_row(bn_logprob_row *r, const float *row, int32_t n_vocab, int n_top, bn_token_logprob *top) {
    r->log_sum = bn_log_sum_exp(row, n_vocab, &r->max);
    if (n_top) bn_top_select(row, n_vocab, n_top, r->likeliest);
    for (int i = 0; i < n_top; i++) {
        const int32_t id = r->likeliest[i].id;
        top[i] = (bn_token_logprob){id, (float)bn_logprob(row, id, r->max, r->log_sum)};
    }
}

void bn_logprob_row_read(bn_logprob_row *r, const float *row, int32_t n_vocab, int n_top,
                         bn_token_logprob *top) {
    read_row(r, row, n_vocab, n_top, top);
    memcpy(r->raw, row, (size_t)n_vocab * sizeof *row);
}

float bn_logprob_row_of(const bn_logprob_row *r, int32_t id) {
    return (float)bn_logprob(r->raw, id, r->max, r->log_sum);
}

void bn_logprob_rows_score(const float *rows, int n_rows, int32_t n_vocab, const int32_t *next, int n_top,
                           float *logprob, bn_token_logprob *top) {
    bn_logprob_row r = {0}; // its raw copy stays unmade: the rows are read where they are
    for (int j = 0; j < n_rows; j++) {
        const float *row = rows + (size_t)j * n_vocab;
        read_row(&r, row, n_vocab, n_top, n_top ? top + (size_t)j * n_top : top);
        logprob[j] = (float)bn_logprob(row, next[j], r.max, r.log_sum);
    }
}
