// threadpool.c - persistent worker threads: spin while work is coming, then sleep.
//
// A decode step calls bn_pool_run a few hundred times (a handful per layer), each
// run lasting tens of microseconds, so waking workers through a condition variable
// every time would cost as much as the work. Workers therefore spin on a run
// counter after finishing and only fall asleep on the condition variable after a
// long quiet spell (BN_POOL_SPIN_NS), which no gap inside a forward pass reaches.
// The caller takes part as thread 0.
//
// Spinning is only right when every thread has a core. With more threads than
// CPUs this process may use (oversubscribed), a spinner would burn the time slice
// of the very thread it waits for, so it yields the core after a few polls
// instead. With threads <= CPUs the hot path never enters the kernel: sched_yield
// there showed up as ~8% of a decode step in perf.
//
// Memory ordering: fn/ctx are written before the counter is bumped (release) and
// read after it is seen (acquire); each worker's decrement of `pending` (release)
// publishes its results to the caller's acquire load. The counter bump and the
// `sleepers` check are seq_cst against the sleeper's increment and re-check, so
// either the signaller sees the sleeper or the sleeper sees the new run.
#define _GNU_SOURCE
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

// How long an idle worker spins before it sleeps: far longer than any gap
// between two runs of one forward pass (sampling and the tokenizer included),
// short enough that an idle process stops burning CPU almost at once.
#define BN_POOL_SPIN_NS 2000000
// A wait longer than this means the thread we wait for is probably not running
// (another process took its core): from then on the spinner yields between poll
// groups, so it stops burning the time slice the other thread needs. The serial
// work between two runs of a forward pass (a norm and a quantization) takes a
// few microseconds, so an uncontended decode does not get here. 20 us rather
// than 100: on a shared 2-core machine a longer pure spin lost ~10% per token.
#ifndef BN_POOL_YIELD_NS
#define BN_POOL_YIELD_NS 20000
#endif
// Polls between two clock reads while spinning (a `pause` is ~10-140 cycles).
#define BN_POOL_CLOCK_EVERY 64

struct bn_pool {
    int n; // threads including the caller
    bool oversubscribed; // more threads than CPUs we may run on
    pthread_t *threads;
    struct worker_arg *args;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    _Atomic uint64_t gen;   // bumped once per run
    _Atomic int pending;    // workers still running the current run
    _Atomic bool quit;
    _Atomic int sleepers;   // workers in (or entering) cond_wait; changed under mu
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

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Waits with `pause` while the thread(s) we wait for are likely on a core; see
// the constants above for when it yields (returns false when `limit_ns` passed).
typedef struct spin_state {
    int polls;
    int64_t t0;
} spin_state;

static inline bool wait_step(const bn_pool *p, spin_state *st, int64_t limit_ns) {
    if (p->oversubscribed) { // no core of our own: hand it over straight away
        sched_yield();
    } else {
        cpu_relax();
        if (++st->polls % BN_POOL_CLOCK_EVERY) return true;
    }
    const int64_t t = now_ns();
    if (st->t0 == 0) st->t0 = t;
    const int64_t waited = t - st->t0;
    if (waited > limit_ns) return false;
    if (!p->oversubscribed && waited > BN_POOL_YIELD_NS) sched_yield();
    return true;
}

// Spins until the run counter moves past `seen` or BN_POOL_SPIN_NS pass.
static uint64_t spin_for_run(bn_pool *p, uint64_t seen) {
    spin_state st = {0, 0};
    for (;;) {
        const uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen || !wait_step(p, &st, BN_POOL_SPIN_NS)) return g;
    }
}

static void *worker_main(void *arg) {
    struct worker_arg *a = arg;
    bn_pool *p = a->p;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = spin_for_run(p, seen);
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1); // seq_cst: see the header comment
            while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load_explicit(&p->quit, memory_order_acquire)) return NULL;
        p->fn(p->ctx, a->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

// Bumps the run counter and wakes sleepers, if any. The mutex is only taken when
// someone sleeps: a sleeper holds it from its re-check of the counter until it is
// inside cond_wait, so taking it before the broadcast closes the lost-wake window.
static void pool_signal(bn_pool *p) {
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

// CPUs this process may run on (affinity mask; online CPUs if unknown).
static int usable_cpus(void) {
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
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
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->n = 1; // threads started so far, the caller included: what destroy joins
    p->oversubscribed = n_threads > usable_cpus();
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    p->args = calloc((size_t)n_threads, sizeof *p->args);
    if (!p->threads || !p->args) {
        bn_pool_destroy(p);
        return bn_errorf(err, "threadpool: out of memory");
    }
    for (; p->n < n_threads; p->n++) {
        // Workers read p->n only when a run starts, after it has its final value.
        const int i = p->n;
        p->args[i - 1] = (struct worker_arg){p, i};
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, &p->args[i - 1]) != 0) {
            bn_pool_destroy(p);
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
    spin_state st = {0, 0};
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        (void)wait_step(p, &st, INT64_MAX);
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
