// bench_concurrency.h - `bitnet-gpu bench --concurrency`: aggregate tokens/s of
// the batch API against the number of streams (bench_concurrency.c).
#ifndef BN_BENCH_CONCURRENCY_H
#define BN_BENCH_CONCURRENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "cli.h"

#define BN_MAX_COUNTS 16 // stream counts one --concurrency takes

// BITNET_REQUIRE_GPU=1 (scripts/gpu-check.sh, as for the tests): bench fails,
// saying why, where the CUDA backend did not run, instead of listing it as
// skipped, so that a GPU machine cannot pass a bench that never used its GPU.
static inline bool bn_bench_gpu_required(void) {
    const char *v = getenv("BITNET_REQUIRE_GPU");
    return v && strcmp(v, "1") == 0;
}

// --concurrency's "1,4,16,64" -> counts[BN_MAX_COUNTS]; 0, or prints the error
// and returns 2. The bench checks it before it loads the model.
int bn_parse_counts(const char *s, int *counts, int *n);

// Runs every count on every backend that can run; prints a table (on stderr
// with --json, which puts one JSON document on stdout). The exit status: 0, or
// 1 when no backend ran (or, with bn_bench_gpu_required, a CUDA point did not).
// schema: every stream's reply is held to it (NULL: free text). draft: the
// -md model the streams draft with (NULL: none; f->lookup for prompt lookup).
int bn_bench_concurrency(bn_engine *e, const bn_engine *draft, const bn_run_flags *f, const char *schema,
                         const int *counts, int n_counts, const int32_t *prompt, size_t n_prompt);

#endif
