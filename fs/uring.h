/*
 * uring.h — FUSE requests through io_uring queues (vecfs --io-uring):
 * the kernel hands each request to a thread of the queue of the CPU its
 * caller runs on, and takes the reply with the fetch of the next (uring.c
 * has the why and the states).
 */
#ifndef FSD_URING_H
#define FSD_URING_H

#include "inode.h" /* defines FUSE_USE_VERSION and includes fuse_lowlevel.h */

/* Installs the transport on the mounted session se instead of
 * fsd_dev_read_install(se, NULL): threads threads shared evenly by the
 * queues of the possible CPUs (at least one each), each with its own
 * io_uring and entry, waiting for INIT.
 * INIT, FORGET and INTERRUPT keep coming through /dev/fuse (dev_read.c);
 * the INIT reply asks the kernel for the queues when the kernel offers
 * them, and every other request then comes through a queue. When the
 * kernel does not offer them, one warning is logged and the threads end:
 * the mount works through /dev/fuse. Call once, after fuse_session_mount
 * and before the session loop. Returns 0, or a negative errno (no
 * io_uring, no memory, no threads) with nothing installed: the caller
 * falls back to fsd_dev_read_install. */
int fsd_uring_install(struct fuse_session *se, unsigned threads);

/* Ends the queues' threads (each finishes the request it handles) and
 * frees them: after the session loop returned, before
 * fuse_session_unmount and the store's close. No-op when nothing was
 * installed. */
void fsd_uring_stop(void);

#endif
