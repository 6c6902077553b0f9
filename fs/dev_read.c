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
 * one-request query's time goes"). So when no request is in flight, the
 * worker that just answered polls a non-blocking clone of the session's
 * descriptor for FSD_DEV_POLL_US before it sleeps: the client's next
 * request is read by a running thread, and the kernel's wake-up of a
 * sleeping reader (which still happens) lands on a core that is awake.
 *
 * States of one call
 *   POLLING (only one worker at a time, only while no request is in
 *   flight: non-blocking reads of poll_fd with sched_yield between them,
 *   until the time is up or another task took the core) -> SLEEPING (a blocking read of the
 * session's descriptor, as libfuse reads it; every idle worker waits here) -> a request (or ENODEV
 * at unmount) goes back to libfuse's loop.
 *
 * Invariants
 *   1. At most one worker polls, and only while no worker handles a
 *      request and no other task waits for its core (a sched_yield that
 *      came back after more than FSD_DEV_POLL_GAP_US ends the polling):
 *      polling uses a core nobody else wants, never one a request or
 *      another program could use, and an idle daemon sleeps at most
 *      FSD_DEV_POLL_US after its last answer.
 *   2. Each descriptor keeps the requests read from it (the kernel's
 *      processing queue is per descriptor): a reply is written to the
 *      descriptor its request came from. The writing thread tries the one
 *      it read its own request from; a reply sent for another thread's
 *      request that the kernel does not know there (ENOENT) is written to
 *      the other descriptor. Notifications go to either.
 *   3. Sleeping workers block in the kernel exactly as without this file,
 *      so requests are never left unread while one is handled.
 *   4. One session per process: the state below is the process's.
 */
#include "dev_read.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int poll_fd = -1;           /* set by install, closed by release: the clone */
static atomic_bool polling;        /* a worker polls poll_fd */
static atomic_uint in_flight;      /* requests read and not yet handled */
static atomic_bool poll_on = true; /* fsd_dev_read_set_polling */
/* This thread returned a request and has not come back for the next. */
static _Thread_local bool handling;
/* The descriptor this thread's last request came from (invariant 2). */
static _Thread_local int request_fd = -1;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* POLLING: reads poll_fd until a request, an error other than EAGAIN,
 * a request in flight elsewhere, another task that kept this core longer
 * than FSD_DEV_POLL_GAP_US, or the end of the time. */
static ssize_t poll_read(void *buf, size_t len)
{
    uint64_t last = now_us(), until = last + FSD_DEV_POLL_US;
    ssize_t n;
    for (;;) {
        n = read(poll_fd, buf, len);
        if (n >= 0 || errno != EAGAIN)
            return n;
        sched_yield(); /* a client woken on this core runs first */
        uint64_t t = now_us();
        if (atomic_load(&in_flight) != 0 || t >= until || t - last > FSD_DEV_POLL_GAP_US) {
            errno = EAGAIN;
            return n;
        }
        last = t;
    }
}

/* fuse_custom_io.read: the next request into buf, as read(2) returns it. */
ssize_t fsd_dev_read(int fd, void *buf, size_t len, void *userdata)
{
    (void)userdata;
    if (handling) {
        atomic_fetch_sub(&in_flight, 1);
        handling = false;
    }
    ssize_t n = -1;
    int err = EAGAIN;
    bool no = false;
    if (atomic_load(&poll_on) && atomic_load(&in_flight) == 0 &&
        atomic_compare_exchange_strong(&polling, &no, true)) {
        n = poll_read(buf, len);
        err = errno;
        atomic_store(&polling, false);
        request_fd = poll_fd;
    }
    if (n < 0 && err == EAGAIN) {
        n = read(fd, buf, len);
        err = errno;
        request_fd = fd;
    }
    if (n >= 0) {
        atomic_fetch_add(&in_flight, 1);
        handling = true;
    }
    errno = err;
    return n;
}

/* fuse_custom_io.writev: a reply or a notification (invariant 2). */
ssize_t fsd_dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    (void)userdata;
    int first = request_fd >= 0 ? request_fd : fd;
    ssize_t n = writev(first, iov, count);
    if (n < 0 && errno == ENOENT && poll_fd >= 0)
        n = writev(first == poll_fd ? fd : poll_fd, iov, count);
    return n;
}

int fsd_dev_read_install(struct fuse_session *se, const struct fuse_custom_io *io)
{
    int fd = fuse_session_fd(se);
    if (fd < 0 || poll_fd >= 0)
        return -EINVAL;
    int clone = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (clone < 0)
        return -errno;
    uint32_t session_fd = (uint32_t)fd;
    if (ioctl(clone, FUSE_DEV_IOC_CLONE, &session_fd) < 0) {
        int rc = -errno;
        close(clone);
        return rc;
    }
    static const struct fuse_custom_io own = {.writev = fsd_dev_writev, .read = fsd_dev_read};
    int rc = fuse_session_custom_io(se, io != NULL ? io : &own, fd);
    if (rc < 0) {
        close(clone);
        return rc;
    }
    poll_fd = clone;
    return 0;
}

void fsd_dev_read_set_polling(bool on)
{
    atomic_store(&poll_on, on);
}

void fsd_dev_read_release(void)
{
    if (poll_fd >= 0)
        close(poll_fd);
    poll_fd = -1;
}
