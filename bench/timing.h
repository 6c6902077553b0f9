/*
 * timing.h — the clocks and the sort order of the benchmarks' timings.
 */
#ifndef VECFS_BENCH_TIMING_H
#define VECFS_BENCH_TIMING_H

#include <time.h>

/* Seconds on `clock` (CLOCK_MONOTONIC for wall time,
 * CLOCK_THREAD_CPUTIME_ID for the calling thread's CPU time). */
double bench_clock_seconds(clockid_t clock);

/* Wall time in seconds, CLOCK_MONOTONIC. */
double bench_now_seconds(void);

/* qsort comparator of doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);

#endif /* VECFS_BENCH_TIMING_H */
