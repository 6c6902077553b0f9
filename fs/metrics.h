/*
 * metrics.h — the daemon's counters and the Prometheus text they render to.
 *
 * Every counter is a relaxed atomic: recording a sample never takes a lock
 * and never allocates, so the FUSE hot paths (query, read, write) pay a few
 * atomic adds. Rendering reads the counters without stopping writers; a
 * scrape may see one counter a sample ahead of another, never a torn value.
 *
 * Labels are bounded by construction (SPEC §6): `op` is one of FSD_OP_*,
 * `errno` is below FSD_METRICS_MAX_ERRNO, and per-collection gauges are
 * rendered by ops_admin.c from the store; there are no per-path or per-user
 * labels.
 */
#ifndef VECFS_FS_METRICS_H
#define VECFS_FS_METRICS_H

#include <stdint.h>

#include "buf.h"

/* The FUSE operations counted by vecfs_fuse_ops_total{op}. */
typedef enum fsd_op {
    FSD_OP_LOOKUP,
    FSD_OP_FORGET,
    FSD_OP_GETATTR,
    FSD_OP_SETATTR,
    FSD_OP_MKNOD,
    FSD_OP_MKDIR,
    FSD_OP_UNLINK,
    FSD_OP_RMDIR,
    FSD_OP_SYMLINK,
    FSD_OP_RENAME,
    FSD_OP_LINK,
    FSD_OP_OPEN,
    FSD_OP_CREATE,
    FSD_OP_READ,
    FSD_OP_WRITE,
    FSD_OP_FLUSH,
    FSD_OP_RELEASE,
    FSD_OP_FSYNC,
    FSD_OP_OPENDIR,
    FSD_OP_READDIR,
    FSD_OP_RELEASEDIR,
    FSD_OP_STATFS,
    FSD_OP_SETXATTR,
    FSD_OP_GETXATTR,
    FSD_OP_LISTXATTR,
    FSD_OP_REMOVEXATTR,
    FSD_OP_ACCESS,
    FSD_OP_IOCTL,
    FSD_OP_COUNT
} fsd_op;

/* Errno values at or above this are counted under this value. */
#define FSD_METRICS_MAX_ERRNO 134

/* Upper bounds (seconds) of the query-duration histogram buckets. */
#define FSD_METRICS_QUERY_BUCKETS 14

/* The Prometheus name of op ("lookup", "getattr", ...). */
const char *fsd_op_name(fsd_op op);

/* Counts one call of op. */
void fsd_metrics_op(fsd_op op);

/* Counts one failed call of op with positive errno err (0 is ignored). */
void fsd_metrics_error(fsd_op op, int err);

/* Counts n vectors inserted or updated. */
void fsd_metrics_inserts(uint64_t n);

/* Counts nq queries answered in `seconds` in total (one observation of
 * seconds / nq per query, so batches weigh like their queries). */
void fsd_metrics_queries(uint64_t nq, double seconds);

/* Counts one FUSE request that came through an io_uring queue (uring.c;
 * vecfs_fuse_ring_requests_total). */
void fsd_metrics_ring_request(void);

/* Total queries so far (for stats). */
uint64_t fsd_metrics_queries_total(void);

/* Total inserts so far (for stats). */
uint64_t fsd_metrics_inserts_total(void);

/* Appends the counters (build info, inserts, queries, query histogram,
 * FUSE ops, errors) in Prometheus text exposition format to b.
 * Returns 0 or -ENOMEM (b keeps what was appended). */
int fsd_metrics_render(vc_buf *b);

#endif /* VECFS_FS_METRICS_H */
