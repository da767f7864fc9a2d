// bench_concurrency.h - `bitnet-gpu bench --concurrency`: aggregate tokens/s of
// the batch API against the number of streams (bench_concurrency.c).
#ifndef BN_BENCH_CONCURRENCY_H
#define BN_BENCH_CONCURRENCY_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"
#include "cli.h"

#define BN_MAX_COUNTS 16 // stream counts one --concurrency takes

// --concurrency's "1,4,16,64" -> counts[BN_MAX_COUNTS]; 0, or prints the error
// and returns 2. The bench checks it before it loads the model.
int bn_parse_counts(const char *s, int *counts, int *n);

// Runs every count on every backend that can run; prints a table (on stderr
// with --json, which puts one JSON document on stdout). The exit status: 0, or
// 1 when no backend ran.
// schema: every stream's reply is held to it (NULL: free text). draft: the
// -md model the streams draft with (NULL: none; f->lookup for prompt lookup).
int bn_bench_concurrency(bn_engine *e, const bn_engine *draft, const bn_run_flags *f, const char *schema,
                         const int *counts, int n_counts, const int32_t *prompt, size_t n_prompt);

#endif
