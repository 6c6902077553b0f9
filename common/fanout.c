/*
 * fanout.c — vc_fanout and vc_threads_resolve (see fanout.h).
 *
 * Invariant: every thread vc_fanout starts is joined before it returns,
 * so the worker's arg may live on the caller's stack.
 */
#include "fanout.h"

#include <pthread.h>
#include <unistd.h>

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
    for (unsigned t = 1; t < threads; t++) {
        if (pthread_create(&tids[started], NULL, worker, arg) != 0)
            break;
        started++;
    }
    worker(arg);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    return started + 1;
}
