/*
 * fanout.h — the one way vecfs spreads a batch over threads: workers pull
 * items from a shared counter in the caller's context, so running on fewer
 * threads than asked (a thread that could not start) only runs slower.
 */
#ifndef VECFS_COMMON_FANOUT_H
#define VECFS_COMMON_FANOUT_H

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

#endif /* VECFS_COMMON_FANOUT_H */
