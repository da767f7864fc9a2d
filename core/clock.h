// clock.h - a monotonic wall clock in milliseconds, for timings we report and
// deadlines.
#ifndef BN_CLOCK_H
#define BN_CLOCK_H

#include <time.h>

static inline double bn_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

// The CLOCK_MONOTONIC time ms (>= 0) milliseconds from now, for the waits that
// take an absolute time (pthread_cond_timedwait on a condition of that clock).
static inline struct timespec bn_monotonic_after_ms(long ms) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    const long ns = t.tv_nsec + ms % 1000 * 1000000L;
    t.tv_sec += ms / 1000 + ns / 1000000000L;
    t.tv_nsec = ns % 1000000000L;
    return t;
}

#endif
