/*
 * threads.h — how many worker threads an engine batch call uses.
 * Internal to the engine.
 */
#ifndef VECFS_ENGINE_THREADS_H
#define VECFS_ENGINE_THREADS_H

#include <unistd.h>

/* More threads than this never help a 2..64-core machine and would make
 * per-call thread arrays large. */
#define VF_THREADS_MAX 256u

/* `threads`, or the number of online cores when it is 0; 1..VF_THREADS_MAX. */
static inline unsigned vf_threads_resolve(unsigned threads)
{
    if (threads == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        threads = online > 0 ? (unsigned)online : 1;
    }
    return threads > VF_THREADS_MAX ? VF_THREADS_MAX : threads;
}

#endif /* VECFS_ENGINE_THREADS_H */
