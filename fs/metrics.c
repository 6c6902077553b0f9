/*
 * metrics.c — lock-free counters behind vecfs_* Prometheus metrics.
 *
 * Invariants
 *   1. Every counter is a C11 atomic updated with relaxed order; counters
 *      only grow (they are Prometheus counters, never reset while running).
 *   2. Label sets are bounded: ops[FSD_OP_COUNT] and
 *      errors[FSD_OP_COUNT][FSD_METRICS_MAX_ERRNO + 1]; an errno above the
 *      table is counted in its last slot.
 *   3. The query histogram keeps per-bucket (non-cumulative) counts; the
 *      renderer sums them into Prometheus' cumulative `le` buckets, so
 *      `+Inf` equals `_count` in every scrape that saw no concurrent update.
 *
 * There is no lock: the state is process-global and lives as long as the
 * process.
 */
#include "metrics.h"

#include <errno.h>
#include <stdatomic.h>

static const char *const op_names[FSD_OP_COUNT] = {
    [FSD_OP_LOOKUP] = "lookup",
    [FSD_OP_FORGET] = "forget",
    [FSD_OP_GETATTR] = "getattr",
    [FSD_OP_SETATTR] = "setattr",
    [FSD_OP_MKNOD] = "mknod",
    [FSD_OP_MKDIR] = "mkdir",
    [FSD_OP_UNLINK] = "unlink",
    [FSD_OP_RMDIR] = "rmdir",
    [FSD_OP_SYMLINK] = "symlink",
    [FSD_OP_RENAME] = "rename",
    [FSD_OP_LINK] = "link",
    [FSD_OP_OPEN] = "open",
    [FSD_OP_CREATE] = "create",
    [FSD_OP_READ] = "read",
    [FSD_OP_WRITE] = "write",
    [FSD_OP_FLUSH] = "flush",
    [FSD_OP_RELEASE] = "release",
    [FSD_OP_FSYNC] = "fsync",
    [FSD_OP_OPENDIR] = "opendir",
    [FSD_OP_READDIR] = "readdir",
    [FSD_OP_RELEASEDIR] = "releasedir",
    [FSD_OP_STATFS] = "statfs",
    [FSD_OP_SETXATTR] = "setxattr",
    [FSD_OP_GETXATTR] = "getxattr",
    [FSD_OP_LISTXATTR] = "listxattr",
    [FSD_OP_REMOVEXATTR] = "removexattr",
    [FSD_OP_ACCESS] = "access",
    [FSD_OP_IOCTL] = "ioctl",
};

static const double bucket_le[FSD_METRICS_QUERY_BUCKETS] = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.0025,  0.005,    0.01,    0.025,  0.1,     1.0,    10.0,
};

static atomic_uint_fast64_t ops[FSD_OP_COUNT];
static atomic_uint_fast64_t errors[FSD_OP_COUNT][FSD_METRICS_MAX_ERRNO + 1];
static atomic_uint_fast64_t inserts;
static atomic_uint_fast64_t queries;
static atomic_uint_fast64_t ring_requests;
static atomic_uint_fast64_t buckets[FSD_METRICS_QUERY_BUCKETS + 1]; /* last = +Inf only */
static atomic_uint_fast64_t query_ns;                               /* sum, nanoseconds */

const char *fsd_op_name(fsd_op op)
{
    if ((unsigned)op >= FSD_OP_COUNT)
        return "unknown";
    return op_names[op];
}

void fsd_metrics_op(fsd_op op)
{
    if ((unsigned)op < FSD_OP_COUNT)
        atomic_fetch_add_explicit(&ops[op], 1, memory_order_relaxed);
}

void fsd_metrics_error(fsd_op op, int err)
{
    if ((unsigned)op >= FSD_OP_COUNT || err <= 0)
        return;
    if (err > FSD_METRICS_MAX_ERRNO)
        err = FSD_METRICS_MAX_ERRNO;
    atomic_fetch_add_explicit(&errors[op][err], 1, memory_order_relaxed);
}

void fsd_metrics_inserts(uint64_t n)
{
    atomic_fetch_add_explicit(&inserts, n, memory_order_relaxed);
}

void fsd_metrics_queries(uint64_t nq, double seconds)
{
    if (nq == 0)
        return;
    if (seconds < 0)
        seconds = 0;
    double per = seconds / (double)nq;
    unsigned i = 0;
    while (i < FSD_METRICS_QUERY_BUCKETS && per > bucket_le[i])
        i++;
    atomic_fetch_add_explicit(&buckets[i], nq, memory_order_relaxed);
    atomic_fetch_add_explicit(&queries, nq, memory_order_relaxed);
    atomic_fetch_add_explicit(&query_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
}

void fsd_metrics_ring_request(void)
{
    atomic_fetch_add_explicit(&ring_requests, 1, memory_order_relaxed);
}

uint64_t fsd_metrics_queries_total(void)
{
    return atomic_load_explicit(&queries, memory_order_relaxed);
}

uint64_t fsd_metrics_inserts_total(void)
{
    return atomic_load_explicit(&inserts, memory_order_relaxed);
}

static const char *errno_name(int e)
{
    switch (e) {
    case EPERM:
        return "EPERM";
    case ENOENT:
        return "ENOENT";
    case EIO:
        return "EIO";
    case E2BIG:
        return "E2BIG";
    case EBADF:
        return "EBADF";
    case ENOMEM:
        return "ENOMEM";
    case EACCES:
        return "EACCES";
    case EBUSY:
        return "EBUSY";
    case EEXIST:
        return "EEXIST";
    case EXDEV:
        return "EXDEV";
    case ENOTDIR:
        return "ENOTDIR";
    case EISDIR:
        return "EISDIR";
    case EINVAL:
        return "EINVAL";
    case EFBIG:
        return "EFBIG";
    case ENOSPC:
        return "ENOSPC";
    case EROFS:
        return "EROFS";
    case ERANGE:
        return "ERANGE";
    case ENAMETOOLONG:
        return "ENAMETOOLONG";
    case ENOSYS:
        return "ENOSYS";
    case ENOTEMPTY:
        return "ENOTEMPTY";
    case ENODATA:
        return "ENODATA";
    case EOPNOTSUPP:
        return "EOPNOTSUPP";
    case EDQUOT:
        return "EDQUOT";
    default:
        return NULL;
    }
}

int fsd_metrics_render(vc_buf *b)
{
    int rc = 0;
    rc = rc ? rc
            : vc_buf_printf(b,
                            "# HELP vecfs_build_info Build information.\n"
                            "# TYPE vecfs_build_info gauge\n"
                            "vecfs_build_info{version=\"%s\"} 1\n",
                            VECFS_VERSION);
    rc = rc ? rc
            : vc_buf_printf(b,
                            "# HELP vecfs_inserts_total Vectors inserted or updated.\n"
                            "# TYPE vecfs_inserts_total counter\n"
                            "vecfs_inserts_total %llu\n",
                            (unsigned long long)fsd_metrics_inserts_total());
    rc = rc ? rc
            : vc_buf_printf(b,
                            "# HELP vecfs_queries_total Query vectors answered.\n"
                            "# TYPE vecfs_queries_total counter\n"
                            "vecfs_queries_total %llu\n",
                            (unsigned long long)fsd_metrics_queries_total());
    rc = rc ? rc
            : vc_buf_printf(b, "# HELP vecfs_query_duration_seconds Time per query vector.\n"
                               "# TYPE vecfs_query_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (unsigned i = 0; i < FSD_METRICS_QUERY_BUCKETS && rc == 0; i++) {
        cum += atomic_load_explicit(&buckets[i], memory_order_relaxed);
        rc = vc_buf_printf(b, "vecfs_query_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_le[i],
                           (unsigned long long)cum);
    }
    cum += atomic_load_explicit(&buckets[FSD_METRICS_QUERY_BUCKETS], memory_order_relaxed);
    rc = rc ? rc
            : vc_buf_printf(b,
                            "vecfs_query_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                            "vecfs_query_duration_seconds_sum %.9f\n"
                            "vecfs_query_duration_seconds_count %llu\n",
                            (unsigned long long)cum,
                            (double)atomic_load_explicit(&query_ns, memory_order_relaxed) / 1e9,
                            (unsigned long long)cum);
    rc = rc ? rc
            : vc_buf_printf(b, "# HELP vecfs_fuse_ops_total FUSE requests by operation.\n"
                               "# TYPE vecfs_fuse_ops_total counter\n");
    for (unsigned op = 0; op < FSD_OP_COUNT && rc == 0; op++)
        rc =
            vc_buf_printf(b, "vecfs_fuse_ops_total{op=\"%s\"} %llu\n", op_names[op],
                          (unsigned long long)atomic_load_explicit(&ops[op], memory_order_relaxed));
    rc = rc ? rc
            : vc_buf_printf(
                  b,
                  "# HELP vecfs_fuse_ring_requests_total FUSE requests that came "
                  "through the io_uring queues (--io-uring).\n"
                  "# TYPE vecfs_fuse_ring_requests_total counter\n"
                  "vecfs_fuse_ring_requests_total %llu\n",
                  (unsigned long long)atomic_load_explicit(&ring_requests, memory_order_relaxed));
    rc = rc ? rc
            : vc_buf_printf(b, "# HELP vecfs_errors_total FUSE requests that failed.\n"
                               "# TYPE vecfs_errors_total counter\n");
    for (unsigned op = 0; op < FSD_OP_COUNT && rc == 0; op++) {
        for (int e = 1; e <= FSD_METRICS_MAX_ERRNO && rc == 0; e++) {
            uint64_t n = atomic_load_explicit(&errors[op][e], memory_order_relaxed);
            if (n == 0)
                continue;
            const char *en = errno_name(e);
            if (en != NULL)
                rc = vc_buf_printf(b, "vecfs_errors_total{op=\"%s\",errno=\"%s\"} %llu\n",
                                   op_names[op], en, (unsigned long long)n);
            else
                rc = vc_buf_printf(b, "vecfs_errors_total{op=\"%s\",errno=\"%d\"} %llu\n",
                                   op_names[op], e, (unsigned long long)n);
        }
    }
    return rc;
}
