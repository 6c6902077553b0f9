/*
 * write_priority.c — a thread that changes the store runs ahead of the
 * threads that only search.
 *
 * Why: on a machine whose cores the queries keep busy, a write is a chain
 * of hand-overs (the collection's writer lock, the commit group, the
 * leader's commit and fdatasync, the wake-up after it, the apply turn),
 * and each hand-over waits for a core behind every runnable query. The
 * kernel also holds the directory's lock across an unlink until it
 * returns, so one slow commit stalls every create and unlink of that
 * collection. A write's own CPU work is small; raising the priority of the
 * thread while it writes (nice ST_WRITE_NICE) makes its waits end when its
 * I/O ends. The queries give up the CPU the writes waited for: on the
 * quiet load test writes went 2.2x and queries -19 % (docs/performance.md,
 * "Writers ahead of searches"; docs/tuning.md).
 *
 * Linux applies setpriority(PRIO_PROCESS, tid) to that one thread. A
 * lower nice needs CAP_SYS_NICE (the daemon runs as root, or RLIMIT_NICE
 * allows it); without it the call fails and writes run at the daemon's
 * own priority, as before: nothing else depends on it.
 */
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"

/* The nice value of a thread while it writes: ahead of searches (nice
 * 0), not of the kernel's or other daemons' real-time work. */
#define ST_WRITE_NICE (-10)

int st_write_priority_raise(void)
{
    errno = 0;
    int prev = getpriority(PRIO_PROCESS, (id_t)gettid());
    if (prev == -1 && errno != 0)
        return ST_PRIORITY_UNCHANGED;
    if (prev <= ST_WRITE_NICE)
        return ST_PRIORITY_UNCHANGED;
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), ST_WRITE_NICE) != 0)
        return ST_PRIORITY_UNCHANGED;
    return prev;
}

void st_write_priority_restore(int prev)
{
    if (prev != ST_PRIORITY_UNCHANGED)
        (void)setpriority(PRIO_PROCESS, (id_t)gettid(), prev);
}
