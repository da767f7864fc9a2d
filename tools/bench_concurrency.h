// bench_concurrency.h - `bitnet-gpu bench --concurrency`: aggregate tokens/s of
// the batch API against the number of streams (bench_concurrency.c).
#ifndef BN_BENCH_CONCURRENCY_H
#define BN_BENCH_CONCURRENCY_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"
#include "cli.h"

// Runs every count of f->concurrency on every backend that can run; prints a
// table (on stderr with --json, which puts one JSON document on stdout). The
// exit status: 0, 1 (no backend ran), 2 (a bad --concurrency).
int bn_bench_concurrency(bn_engine *e, const bn_run_flags *f, const int32_t *prompt, size_t n_prompt);

#endif
