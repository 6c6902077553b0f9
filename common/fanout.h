/*
 * fanout.h — the one way vecfs spreads a batch over threads: workers pull
 * items from a shared counter in the caller's context, so running on fewer
 * threads than asked (a thread that could not start) only runs slower.
 */
#ifndef VECFS_COMMON_FANOUT_H
#define VECFS_COMMON_FANOUT_H

#include <sched.h>

/* More threads than this never help a 2..64-core machine and would make
 * per-call thread arrays large. */
#define VC_THREADS_MAX 256u

/* `threads`, or the number of online cores when it is 0; 1..VC_THREADS_MAX. */
unsigned vc_threads_resolve(unsigned threads);

/* Runs worker(arg) on `threads` threads (1..VC_THREADS_MAX), one of them
 * the caller's, and returns when all have returned. A thread that cannot
 * be started is skipped: the worker must take its items from a shared
 * counter so the others finish the work. Returns the number that ran. */
unsigned vc_fanout(unsigned threads, void *(*worker)(void *), void *arg);

/* The CPUs the threads vc_fanout starts may run on, set once by a
 * program whose callers run narrower than the process (fs/uring.c pins
 * each of its threads to one CPU, and a new thread inherits its creator's
 * affinity: a batch fanned out from there would run on that one CPU).
 * Without it the started threads inherit the caller's affinity. */
void vc_fanout_set_cpus(const cpu_set_t *cpus);

#endif /* VECFS_COMMON_FANOUT_H */
