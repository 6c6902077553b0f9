/*
 * query_ioctl.h — one request per query (SPEC §3.3): the ioctl on a
 * kept-open query file that carries a query in and its result out. The
 * bytes are query_wire.h's; this runs them against the store.
 */
#ifndef VECFS_FS_QUERY_IOCTL_H
#define VECFS_FS_QUERY_IOCTL_H

#include <stddef.h>
#include <sys/types.h>

#include "fsd.h"

/*
 * Answers one ioctl on a query file.
 *   ino         the query file's inode (its collection and name give the
 *               query file's settings: user.k, user.ef, user.filter)
 *   uid         the uid that opened the handle (whose settings apply)
 *   cmd         the ioctl command (VECFS_IOC_QUERY_4K / _16K)
 *   in, in_len  the request buffer the kernel copied in
 *   out, cap    the reply buffer; *out_len gets the bytes to send back
 *               (0 when nothing is to be sent: then reply with the error
 *               alone)
 * Returns the ioctl's result: the number of neighbours (>= 0), or a
 * negative errno (vecfs_query.h "Errors"); for errors other than -ENOTTY
 * out holds a result with the message. Counts the query in the metrics.
 * Takes no lock of the caller's; runs in parallel with reads and other
 * ioctls of the same handle.
 */
int fsd_query_ioctl(fsd *d, fuse_ino_t ino, uid_t uid, unsigned int cmd, const void *in,
                    size_t in_len, void *out, size_t cap, size_t *out_len);

#endif /* VECFS_FS_QUERY_IOCTL_H */
