// threadpool.c - persistent worker threads: spin briefly, then sleep.
//
// A decode step calls bn_pool_run a few hundred times (a handful per layer), each
// run lasting tens of microseconds, so waking workers through a condition variable
// every time would cost as much as the work. Workers therefore spin on a run
// counter for a short while after finishing and only fall asleep on the condition
// variable when nothing arrives. The caller takes part as thread 0.
//
// Memory ordering: fn/ctx are written before the counter is bumped (release) and
// read after it is seen (acquire); each worker's decrement of `pending` (release)
// publishes its results to the caller's acquire load.
#define _GNU_SOURCE
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

// Polls before a worker sleeps (~0.1 ms): longer than the gap between two runs of
// one forward pass, much shorter than the gap between tokens.
#define BN_POOL_SPIN 20000
// Polls with `pause` before a spinning thread starts calling sched_yield: with more
// threads than cores, a spinner must give its core to the thread it waits for.
#define BN_POOL_PAUSES 256

struct bn_pool {
    int n; // threads including the caller
    pthread_t *threads;
    struct worker_arg *args;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    _Atomic uint64_t gen;   // bumped once per run
    _Atomic int pending;    // workers still running the current run
    _Atomic bool quit;
    int sleepers;           // guarded by mu
    bn_pool_fn fn;
    void *ctx;
};

struct worker_arg {
    bn_pool *p;
    int ith;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *worker_main(void *arg) {
    struct worker_arg *a = arg;
    bn_pool *p = a->p;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int s = 0; g == seen && s < BN_POOL_SPIN; s++) {
            if (s < BN_POOL_PAUSES) cpu_relax();
            else sched_yield();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load_explicit(&p->quit, memory_order_acquire)) return NULL;
        p->fn(p->ctx, a->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

// Bumps the run counter and wakes sleepers. Under the mutex, so a worker that has
// just checked the counter cannot miss the wake-up.
static void pool_signal(bn_pool *p) {
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (p->sleepers > 0) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

static void pool_join(bn_pool *p, int started) {
    atomic_store_explicit(&p->quit, true, memory_order_release);
    pool_signal(p);
    for (int i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
}

int bn_pool_create(int n_threads, bn_pool **out, bn_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return bn_errorf(err, "threadpool: bad thread count %d (1..1024)", n_threads);
    bn_pool *p = calloc(1, sizeof *p);
    if (!p) return bn_errorf(err, "threadpool: out of memory");
    p->n = n_threads;
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    p->args = calloc((size_t)n_threads, sizeof *p->args);
    if (!p->threads || !p->args) {
        free(p->threads);
        free(p->args);
        free(p);
        return bn_errorf(err, "threadpool: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int i = 1; i < n_threads; i++) {
        p->args[i - 1] = (struct worker_arg){p, i};
        int rc = pthread_create(&p->threads[i - 1], NULL, worker_main, &p->args[i - 1]);
        if (rc != 0) {
            pool_join(p, i - 1);
            pthread_cond_destroy(&p->wake);
            pthread_mutex_destroy(&p->mu);
            free(p->threads);
            free(p->args);
            free(p);
            return bn_errorf(err, "threadpool: cannot start thread %d of %d", i, n_threads);
        }
    }
    *out = p;
    return 0;
}

void bn_pool_destroy(bn_pool *p) {
    if (!p) return;
    pool_join(p, p->n - 1);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p->args);
    free(p);
}

void bn_pool_run(bn_pool *p, bn_pool_fn fn, void *ctx) {
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    pool_signal(p);
    fn(ctx, 0, p->n);
    for (int s = 0; atomic_load_explicit(&p->pending, memory_order_acquire) != 0; s++) {
        if (s < BN_POOL_PAUSES) cpu_relax();
        else sched_yield();
    }
}

int bn_pool_size(const bn_pool *p) { return p->n; }

// Counts CPUs that are the first of their hyper-thread sibling list.
int bn_physical_cores(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1) online = 1;
    int cores = 0;
    for (long i = 0; i < online; i++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/thread_siblings_list",
                 i);
        FILE *f = fopen(path, "r");
        if (!f) return (int)online;
        long first = -1;
        int ok = fscanf(f, "%ld", &first);
        fclose(f);
        if (ok != 1) return (int)online;
        if (first == i) cores++;
    }
    return cores > 0 ? cores : (int)online;
}
