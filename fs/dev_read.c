/*
 * dev_read.c — how the session's worker threads wait for the next FUSE
 * request (libfuse's custom I/O; the loop itself stays libfuse's).
 *
 * Why: on a VM whose idle cores halt, a worker asleep in read(/dev/fuse)
 * costs every request the wake-up of a thread, often on a halted core: a
 * FUSE round trip is about 19 µs when the daemon's thread runs on the
 * caller's core and 100–119 µs when it must wake the other one
 * (bench/fuse-request-cost.sh). A client that asks one query after
 * another pays that on every query (docs/performance.md, "Where a
 * one-request query's time goes"). So a worker that just answered polls a
 * non-blocking clone of the session's descriptor for up to
 * FSD_DEV_POLL_US: the client's next request is read by a running thread.
 *
 * Polling beside workers asleep in the kernel is not enough: the kernel
 * wakes one thread asleep in read(/dev/fuse) for every request it queues,
 * even when a polling worker takes the request, and libfuse keeps idle
 * workers asleep there. Those wake-ups were a third of a one-at-a-time
 * client's CPU (docs/performance.md, "Fewer wake-ups per query"). So idle
 * workers that are not needed as readers wait on a condition variable of
 * this file, which no request touches, and a worker that starts polling
 * gets the sleepers out of the kernel (a signal ends their read).
 *
 * Modes, from the requests of the last FSD_DEV_POLL_US
 *   BUSY      a request was taken while another was in flight (several
 *             clients): idle workers sleep in the kernel, as libfuse's do;
 *             nobody polls (pollers would compete with the handlers).
 *   QUICK     one at a time, and the last one came within FSD_DEV_POLL_US
 *             of the answer before it (a client that asks again at once):
 *             up to QUICK_POLLERS workers poll, one a core and leaving a
 *             core for each request in flight, so the worker that
 *             takes a request leaves a polling reader behind and nobody is
 *             woken; nobody sleeps in the kernel.
 *   SLOW      one at a time, with longer pauses (polling would run out
 *             before the next request): two workers sleep in the kernel,
 *             so the one the request wakes leaves a reader behind without
 *             waking a third.
 *
 * Roles of a worker between two requests (chosen under `lock`)
 *   POLLING   non-blocking reads of poll_fd with sched_yield between them,
 *             until a request, FSD_DEV_POLL_US without a request taken or
 *             answered by any worker, BUSY, no free core, or another task
 *             that took the core.
 *   SLEEPING  a blocking read of the session's descriptor, as libfuse
 *             reads it, until a request or a worker that starts polling
 *             ends it (EVICT_SIGNAL).
 *   WAITING   on `wanted`, until a reader takes a request and leaves no
 *             reader behind.
 *   -> a request (or ENODEV at unmount) goes back to libfuse's loop.
 *
 * Invariants
 *   1. Whenever a worker is idle, one worker polls or sleeps in the kernel
 *      (a reader that takes a request and leaves none behind wakes a
 *      waiting worker; sleepers are evicted only by a worker that starts
 *      polling), so no request is left unread while one is handled.
 *   2. Polling uses a core nobody else wants: no more pollers than idle
 *      cores, and a sched_yield that came back after more than
 *      FSD_DEV_POLL_GAP_US ends the polling; an idle daemon stops polling
 *      FSD_DEV_POLL_US after its last request.
 *   3. EVICT_SIGNAL is sent, under `lock`, only to a worker registered as
 *      sleeping: it is in read(/dev/fuse) or between that read and taking
 *      `lock`, where no other system call can be interrupted by it.
 *   4. Each descriptor keeps the requests read from it (the kernel's
 *      processing queue is per descriptor): a reply is written to the
 *      descriptor its request came from. The writing thread tries the one
 *      it read its own request from; a reply sent for another thread's
 *      request that the kernel does not know there (ENOENT) is written to
 *      the other descriptor. Notifications go to either.
 *   5. libfuse cancels its workers at unmount while they read: a worker
 *      cancelled on `wanted` releases `lock`, one cancelled asleep in the
 *      kernel leaves the `sleeping` list (the cleanup handlers).
 *   6. One session per process: the state below is the process's.
 */
#include "dev_read.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Ends a sleeper's read (installed without SA_RESTART). */
#define EVICT_SIGNAL (SIGRTMIN + 1)

/* Sleepers kept while clients ask one at a time with long pauses. */
#define SLOW_SLEEPERS 2u

/* Pollers at most: requests come one at a time while workers poll, so
 * one to take the next request and one to stay behind are enough. */
#define QUICK_POLLERS 2u

typedef enum role { WAITING, POLLING, SLEEPING } role;

/* A worker asleep in the kernel, on the `sleeping` list. */
typedef struct sleeper {
    pthread_t thread;
    bool evicted; /* EVICT_SIGNAL sent */
    struct sleeper *next;
} sleeper;

static int poll_fd = -1; /* set by install, closed by release: the clone */
static unsigned cores;   /* online cores, set by install */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wanted = PTHREAD_COND_INITIALIZER; /* a reader is needed */
static sleeper *sleeping;                                /* under lock */
static unsigned sleepers;                                /* under lock: the length of `sleeping` */
static atomic_uint in_flight;                            /* requests read and not yet handled */
static atomic_uint pollers;                              /* workers POLLING (changed under lock) */
/* now_us when a worker last took a request or came back from one. */
static _Atomic uint64_t last_busy_us;
/* now_us when a request was last taken while another was in flight. */
static _Atomic uint64_t last_overlap_us;
/* The last request came within FSD_DEV_POLL_US of the one before. */
static atomic_bool quick;
/* Bit c: a worker polls on core c. */
static _Atomic uint64_t polled_cores;
/* This thread returned a request and has not come back for the next. */
static _Thread_local bool handling;
/* The descriptor this thread's last request came from (invariant 4). */
static _Thread_local int request_fd = -1;
static _Thread_local sleeper self;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Whether requests overlapped in the last FSD_DEV_POLL_US (BUSY). */
static bool busy_mode(void)
{
    return now_us() - atomic_load(&last_overlap_us) <= FSD_DEV_POLL_US;
}

/* Whether one more than `polling` pollers may poll: fewer than
 * QUICK_POLLERS, a core free (invariant 2), requests one at a time. */
static bool poll_room(unsigned polling)
{
    return polling < QUICK_POLLERS && polling + atomic_load(&in_flight) < cores && !busy_mode();
}

static void evict_handler(int sig)
{
    (void)sig; /* only interrupts the read */
}

/* Gets every sleeper out of the kernel, under lock (invariant 3). */
static void evict_sleepers(void)
{
    for (sleeper *s = sleeping; s != NULL; s = s->next)
        if (!s->evicted) {
            s->evicted = true;
            pthread_kill(s->thread, EVICT_SIGNAL);
        }
}

static void sleeping_add(void)
{
    self = (sleeper){.thread = pthread_self(), .next = sleeping};
    sleeping = &self;
    sleepers++;
}

static void sleeping_remove(void)
{
    sleeper **at = &sleeping;
    while (*at != &self)
        at = &(*at)->next;
    *at = self.next;
    sleepers--;
}

/* The role of an idle worker, taken under lock (the modes are in the
 * header comment); ran_out: this worker's polling just ran out, so it
 * does not poll again at once. */
static role role_take(bool ran_out)
{
    unsigned polling = atomic_load(&pollers);
    if (!ran_out && atomic_load(&quick) && poll_room(polling)) {
        atomic_fetch_add(&pollers, 1);
        evict_sleepers();
        return POLLING;
    }
    bool more = polling == 0 && sleepers == 0; /* the only reader */
    if (!more && busy_mode())
        more = polling == 0;
    else if (!more)
        more = sleepers < SLOW_SLEEPERS && !atomic_load(&quick);
    if (more || (ran_out && sleepers < SLOW_SLEEPERS)) {
        sleeping_add();
        return SLEEPING;
    }
    return WAITING;
}

static void unlock_on_cancel(void *unused)
{
    (void)unused;
    pthread_mutex_unlock(&lock);
}

/* Waits on `wanted` (under lock) until role_take gives *r a role. */
static void wait_for_role(role *r)
{
    do
        pthread_cond_wait(&wanted, &lock);
    while ((*r = role_take(false)) == WAITING);
}

/* Role r (from role_take, under lock), or if it is WAITING the role the
 * worker gets after waiting for one. */
static role role_wait(role r)
{
    if (r == WAITING) {
        pthread_cleanup_push(unlock_on_cancel, NULL);
        wait_for_role(&r);
        pthread_cleanup_pop(0);
    }
    return r;
}

/* Leaves role r under lock; returns whether no reader is left. */
static bool role_leave(role r)
{
    if (r == POLLING)
        atomic_fetch_sub(&pollers, 1);
    else
        sleeping_remove();
    return atomic_load(&pollers) == 0 && sleepers == 0;
}

/* Claims core `cpu` for this poller (one poller a core: two on one core
 * only yield to each other); cores past 63 are not tracked. */
static bool core_claim(int cpu)
{
    if (cpu < 0 || cpu >= 64)
        return true;
    uint64_t bit = (uint64_t)1 << cpu;
    return !(atomic_fetch_or(&polled_cores, bit) & bit);
}

static void core_release(int cpu)
{
    if (cpu >= 0 && cpu < 64)
        atomic_fetch_and(&polled_cores, ~((uint64_t)1 << cpu));
}

/* POLLING: reads poll_fd until a request, an error other than EAGAIN,
 * or the end of the polling (the role's list above); *shared: it ended
 * because another poller polls on this core. */
static ssize_t poll_read(void *buf, size_t len, bool *shared)
{
    uint64_t start = now_us(), last = start;
    int cpu = sched_getcpu();
    *shared = !core_claim(cpu);
    ssize_t n = -1;
    errno = EAGAIN;
    while (!*shared) {
        n = read(poll_fd, buf, len);
        if (n >= 0 || errno != EAGAIN)
            break;
        sched_yield(); /* a client woken on this core runs first */
        uint64_t t = now_us(), busy = atomic_load(&last_busy_us);
        uint64_t until = (busy > start ? busy : start) + FSD_DEV_POLL_US;
        if (!poll_room(atomic_load(&pollers) - 1) || t >= until || t - last > FSD_DEV_POLL_GAP_US) {
            errno = EAGAIN;
            break;
        }
        last = t;
        int now_cpu = sched_getcpu();
        if (now_cpu != cpu) { /* moved: claim the new core */
            core_release(cpu);
            cpu = now_cpu;
            *shared = !core_claim(cpu);
        }
    }
    int err = errno;
    if (!*shared)
        core_release(cpu);
    errno = err;
    return n;
}

static void unlist_on_cancel(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&lock);
    sleeping_remove();
    pthread_mutex_unlock(&lock);
}

/* SLEEPING: the blocking read, into *n. A worker cancelled in it leaves
 * the list first (its node is its own thread's; invariant 5). */
static void sleep_read(int fd, void *buf, size_t len, ssize_t *n)
{
    pthread_cleanup_push(unlist_on_cancel, NULL);
    *n = read(fd, buf, len);
    pthread_cleanup_pop(0);
}

/* Notes a request taken at `now`, under lock: the modes' clocks. */
static void request_taken(uint64_t now)
{
    atomic_store(&quick, now - atomic_load(&last_busy_us) <= FSD_DEV_POLL_US);
    atomic_store(&last_busy_us, now);
    if (atomic_fetch_add(&in_flight, 1) > 0)
        atomic_store(&last_overlap_us, now);
}

/* fuse_custom_io.read: the next request into buf, as read(2) returns it. */
static ssize_t dev_read(int fd, void *buf, size_t len, void *userdata)
{
    (void)userdata;
    pthread_mutex_lock(&lock);
    if (handling) {
        atomic_store(&last_busy_us, now_us());
        atomic_fetch_sub(&in_flight, 1);
        handling = false;
    }
    role r = role_wait(role_take(false));
    ssize_t n;
    int err;
    bool none_left;
    for (;;) {
        pthread_mutex_unlock(&lock);
        request_fd = r == POLLING ? poll_fd : fd;
        bool shared = false;
        if (r == POLLING)
            n = poll_read(buf, len, &shared);
        else
            sleep_read(fd, buf, len, &n);
        err = errno;
        pthread_mutex_lock(&lock);
        if (n >= 0)
            request_taken(now_us());
        bool evicted = r == SLEEPING && self.evicted && n < 0 && err == EINTR;
        none_left = role_leave(r);
        if (n >= 0 || (err != EAGAIN && !evicted))
            break;
        /* The polling ran out (sleep, or wait while another worker polls
         * on this core), or the sleeper was evicted (poll, or wait). */
        r = role_wait(shared && !none_left ? WAITING : role_take(r == POLLING));
    }
    pthread_mutex_unlock(&lock);
    if (none_left)
        pthread_cond_signal(&wanted);
    handling = n >= 0;
    errno = err;
    return n;
}

/* fuse_custom_io.writev: a reply or a notification (invariant 4). */
static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    (void)userdata;
    int first = request_fd >= 0 ? request_fd : fd;
    ssize_t n = writev(first, iov, count);
    if (n < 0 && errno == ENOENT && poll_fd >= 0)
        n = writev(first == poll_fd ? fd : poll_fd, iov, count);
    return n;
}

int fsd_dev_read_install(struct fuse_session *se)
{
    int fd = fuse_session_fd(se);
    if (fd < 0 || poll_fd >= 0)
        return -EINVAL;
    int clone = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (clone < 0)
        return -errno;
    struct sigaction evict = {.sa_handler = evict_handler}; /* no SA_RESTART */
    sigemptyset(&evict.sa_mask);
    if (sigaction(EVICT_SIGNAL, &evict, NULL) < 0) {
        int rc = -errno;
        close(clone);
        return rc;
    }
    uint32_t session_fd = (uint32_t)fd;
    if (ioctl(clone, FUSE_DEV_IOC_CLONE, &session_fd) < 0) {
        int rc = -errno;
        close(clone);
        return rc;
    }
    static const struct fuse_custom_io io = {.writev = dev_writev, .read = dev_read};
    int rc = fuse_session_custom_io(se, &io, fd);
    if (rc < 0) {
        close(clone);
        return rc;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cores = online > 1 ? (unsigned)online : 1u;
    poll_fd = clone;
    return 0;
}

void fsd_dev_read_release(void)
{
    if (poll_fd >= 0)
        close(poll_fd);
    poll_fd = -1;
}
