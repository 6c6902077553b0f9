/*
 * dev_read.h — how the session's worker threads wait for the next FUSE
 * request: when nothing is in flight, the worker that just answered
 * polls for a short while before it sleeps (dev_read.c has the why).
 */
#ifndef FSD_DEV_READ_H
#define FSD_DEV_READ_H

#include "inode.h" /* defines FUSE_USE_VERSION and includes fuse_lowlevel.h */

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

/* How long the worker that just answered polls for the next request, in
 * microseconds: longer than a client's turnaround between an answer and
 * its next query (its wake-up included), as the kernel's guest halt
 * polling waits 200 µs before it halts an idle core. */
#define FSD_DEV_POLL_US 200u

/* Polling stops when a sched_yield comes back after longer than this, in
 * microseconds: another task used the core (a client's turnaround on the
 * same core is shorter), so the daemon sleeps instead of taking a share
 * of a busy machine. */
#define FSD_DEV_POLL_GAP_US 50u

/* Installs the polling read on the mounted session se: opens a clone of
 * its /dev/fuse descriptor (FUSE_DEV_IOC_CLONE, non-blocking) and sets
 * libfuse's custom I/O (fuse_session_custom_io) to io, or to fsd_dev_read
 * and fsd_dev_writev when io is NULL (a transport that wraps them, as
 * uring.c does, passes its own io that calls them). Call once, after
 * fuse_session_mount and before the session loop; one session per
 * process. Returns 0, or a negative errno: -EINVAL (se has no descriptor,
 * or already installed), the errno of open or of the clone ioctl, or
 * libfuse's; on error the session is left as it was and reads as libfuse
 * does. */
int fsd_dev_read_install(struct fuse_session *se, const struct fuse_custom_io *io);

/* The read and writev of the custom I/O this file installs (the contract
 * of struct fuse_custom_io's members). */
ssize_t fsd_dev_read(int fd, void *buf, size_t len, void *userdata);
ssize_t fsd_dev_writev(int fd, struct iovec *iov, int count, void *userdata);

/* Turns the polling off (on is the default): once requests come through
 * io_uring queues (uring.c), /dev/fuse carries only FORGET and INTERRUPT,
 * and a worker polling after those would only take a core from the
 * queues' threads. */
void fsd_dev_read_set_polling(bool on);

/* Closes the clone; call after fuse_session_destroy. No-op when nothing
 * was installed. */
void fsd_dev_read_release(void);

#endif
