// clock.h - a monotonic wall clock in milliseconds, for timings we report.
#ifndef BN_CLOCK_H
#define BN_CLOCK_H

#include <time.h>

static inline double bn_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

#endif
