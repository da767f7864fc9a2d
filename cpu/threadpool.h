// threadpool.h - a persistent pool of worker threads for the CPU backend.
//
// Threads are created once with the backend; a forward pass only wakes them.
// bn_pool_run calls fn(ctx, i, n) on every thread i in [0, n) - the caller is
// thread 0 - and returns when all have finished. Work is split by the callee
// (usually rows of a weight matrix), so no allocation happens per call.
#ifndef BN_THREADPOOL_H
#define BN_THREADPOOL_H

#include "../core/error.h"

typedef struct bn_pool bn_pool;
typedef void (*bn_pool_fn)(void *ctx, int ith, int nth);

int bn_pool_create(int n_threads, bn_pool **out, bn_error *err);
void bn_pool_destroy(bn_pool *p);
void bn_pool_run(bn_pool *p, bn_pool_fn fn, void *ctx);
int bn_pool_size(const bn_pool *p);

// Physical cores of this machine (falls back to online CPUs).
int bn_physical_cores(void);

#endif
