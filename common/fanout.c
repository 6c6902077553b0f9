/*
 * fanout.c — vc_fanout and vc_threads_resolve (see fanout.h).
 *
 * Invariant: every thread vc_fanout starts is joined before it returns,
 * so the worker's arg may live on the caller's stack.
 */
#include "fanout.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

/* Written once, then published by the flag: a fan-out already running in
 * another thread (a store's background rebuild) reads either no set or
 * the whole one. */
static cpu_set_t fanout_cpus;
static atomic_bool fanout_cpus_set;

void vc_fanout_set_cpus(const cpu_set_t *cpus)
{
    fanout_cpus = *cpus;
    atomic_store_explicit(&fanout_cpus_set, true, memory_order_release);
}

unsigned vc_threads_resolve(unsigned threads)
{
    if (threads == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        threads = online > 0 ? (unsigned)online : 1;
    }
    return threads > VC_THREADS_MAX ? VC_THREADS_MAX : threads;
}

unsigned vc_fanout(unsigned threads, void *(*worker)(void *), void *arg)
{
    pthread_t tids[VC_THREADS_MAX];
    unsigned started = 0;
    if (threads > VC_THREADS_MAX)
        threads = VC_THREADS_MAX;
    pthread_attr_t attr;
    pthread_attr_t *ap = NULL;
    if (threads > 1 && atomic_load_explicit(&fanout_cpus_set, memory_order_acquire) &&
        pthread_attr_init(&attr) == 0) {
        ap = &attr;
        (void)pthread_attr_setaffinity_np(ap, sizeof fanout_cpus, &fanout_cpus);
    }
    for (unsigned t = 1; t < threads; t++) {
        if (pthread_create(&tids[started], ap, worker, arg) != 0)
            break;
        started++;
    }
    if (ap)
        pthread_attr_destroy(ap);
    worker(arg);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    return started + 1;
}
