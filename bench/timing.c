/*
 * timing.c — bench_clock_seconds, bench_now_seconds, bench_cmp_double
 * (timing.h). No state.
 */
#include "timing.h"

double bench_clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_now_seconds(void)
{
    return bench_clock_seconds(CLOCK_MONOTONIC);
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
