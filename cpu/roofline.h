// roofline.h - what this machine can do at most, measured now: read bandwidth
// and the int8 multiply-add rate of a kernel set's instruction. Benchmarks report
// achieved speed as a fraction of these, taken in the same run: on a shared VM
// both move by 10-30% from one minute to the next.
#ifndef BN_ROOFLINE_H
#define BN_ROOFLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/model.h"
#include "threadpool.h"

// The bytes one decode step reads on the CPU (the CPU and reference backends'
// decode_bytes): the ternary matrices in place, as the file holds them, and the
// LM head as stored, or with int8_head one int8 per weight plus one float scale
// per vocabulary row. The KV cache is left out (core/backend.h says why).
uint64_t bn_cpu_decode_bytes(const bn_model *m, bool int8_head);

// The model shapes and table types the CPU's kernels take (the CPU and reference
// backends' create check); who prefixes the error ("cpu", "reference").
int bn_cpu_check_model(const bn_model *m, const char *who, bn_error *err);

// Read bandwidth in GB/s (1e9 bytes) over all threads of `pool`: the best of
// `reps` passes summing a freshly allocated `bytes` buffer (make it much larger
// than the last-level cache). 0 if the buffer cannot be allocated.
double bn_read_bandwidth_gbs(bn_pool *pool, size_t bytes, int reps);

// int8 multiply-adds per second (1e9 units) over all threads of `pool`: the
// kernel set's instruction issued back to back, operands in registers.
// kernels: "avx2" (vpmaddubsw), "avx512" (vpdpbusd), "amx" (tdpbusd) or "neon"
// (sdot); 0 for anything else or a CPU without that instruction set.
double bn_int8_mac_peak_gops(bn_pool *pool, const char *kernels);

#endif
