/*
 * query_ioctl.c — one request per query: an ioctl on a kept-open query
 * file carries the query in and the result out (SPEC §3.3; layout in
 * contrib/vecfs_query.h, prose in docs/filesystem.md "One-request
 * queries").
 *
 * It exists for clients that query one vector at a time: the file path
 * costs two FUSE requests per query on a kept-open handle (pwrite, pread)
 * and more for `echo > q; cat q`; this costs one.
 *
 * Invariants
 *   1. The ioctl changes nothing: not the query file's text, its result,
 *      its settings, nor the handle, so it needs no lock of the handle
 *      and any number run at once.
 *   2. Settings apply in this order: the request's field when its flag is
 *      set, else the query file's xattr (user.k, user.ef, user.filter of
 *      the opener's uid), else the default (k 10, the collection's ef,
 *      no filter). The metric is always the collection's.
 *   3. Every error but -ENOTTY comes with a result that carries its
 *      message (the client reads it with the errno).
 *   4. Only the opener's uid's query file settings are read; the result
 *      goes back to the caller alone (nothing is kept).
 */
#include "query_ioctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "query_parse.h"
#include "query_wire.h"

/* Hits kept on the stack; a bigger k allocates. */
#define HITS_ON_STACK 32u

/* A monotonic clock in seconds, for the query histogram. */
static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The resolved settings of one request. */
typedef struct settings {
    uint32_t k, ef;
    st_filter *filter;
} settings;

/* Merges the request's fields over the query file's settings (invariant
 * 2). On error writes the reply message. */
static int settings_get(fsd *d, const fsd_ref *r, uid_t uid, const fsd_qwire_req *req, settings *s,
                        void *out, size_t cap, size_t *out_len)
{
    fsd_qinfo info;
    memset(&info, 0, sizeof info);
    /* A query file dropped while idle has no settings left: defaults. */
    int rc = fsd_queries_get(d->queries, r->coll, uid, r->name, &info);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    s->k = req->flags & VECFS_QREQ_K ? req->k : info.k ? info.k : FSD_QUERY_DEFAULT_K;
    s->ef = req->flags & VECFS_QREQ_EF ? req->ef : info.ef;
    const char *ftext = info.filter;
    size_t flen = info.filter != NULL ? strlen(info.filter) : 0;
    if (req->flags & VECFS_QREQ_FILTER) {
        ftext = req->filter;
        flen = req->filter_len;
    }
    char why[ST_FILTER_ERR_MAX];
    rc = st_filter_parse(ftext, flen, &s->filter, why, sizeof why);
    if (rc == -EINVAL || rc == -E2BIG) {
        rc = -EINVAL;
        *out_len = fsd_qwire_error(out, cap, rc, 0, "bad filter %s(%s)",
                                   req->flags & VECFS_QREQ_FILTER ? "" : "in user.filter ", why);
    }
    fsd_qinfo_release(&info);
    return rc;
}

/* Searches and writes the result (or its error) into out. */
static int search(fsd *d, const fsd_ref *r, const float *vec, uint32_t dim, const settings *s,
                  void *out, size_t cap, size_t *out_len)
{
    st_hit local[HITS_ON_STACK];
    st_hit *hits = s->k <= HITS_ON_STACK ? local : vc_malloc(s->k * sizeof *hits);
    if (hits == NULL)
        return -ENOMEM;
    size_t n = 0;
    double t0 = now_seconds();
    st_search_opts o = {.filter = s->filter};
    int rc = st_search_opt(d->store, r->coll, vec, dim, s->k, s->ef, &o, hits, &n);
    if (rc == 0)
        fsd_metrics_queries(1, now_seconds() - t0);
    fsd_qwire_result res;
    fsd_qwire_result_start(&res, out, cap);
    for (size_t j = 0; rc == 0 && j < n; j++)
        rc = fsd_qwire_result_add(&res, hits[j].name, strlen(hits[j].name), hits[j].distance);
    if (rc == 0)
        *out_len = fsd_qwire_result_finish(&res);
    else if (rc == -E2BIG)
        *out_len = fsd_qwire_error(out, cap, rc, res.need,
                                   "the result needs %zu bytes, the buffer holds %zu: use the "
                                   "16K command or the file",
                                   res.need, cap);
    if (hits != local)
        free(hits);
    return rc == 0 ? (int)n : rc;
}

/* The reply message of an error that has none yet. */
static void search_error(fsd *d, const fsd_ref *r, uint32_t dim, int rc, void *out, size_t cap,
                         size_t *out_len)
{
    st_config cfg;
    if (rc == -EINVAL && st_coll_config_get(d->store, r->coll, &cfg) == 0 && cfg.dim != dim)
        *out_len = fsd_qwire_error(out, cap, rc, 0, "dim %u does not match the collection's %u",
                                   dim, cfg.dim);
    else if (rc == -EINVAL)
        *out_len =
            fsd_qwire_error(out, cap, rc, 0, "the query cannot run (k or values out of range)");
    else if (rc == -ENOENT)
        *out_len = fsd_qwire_error(out, cap, rc, 0, "the collection is gone");
    else
        *out_len = fsd_qwire_error(out, cap, rc, 0, "%s", strerror(-rc));
}

int fsd_query_ioctl(fsd *d, fuse_ino_t ino, uid_t uid, unsigned int cmd, const void *in,
                    size_t in_len, void *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    size_t size = fsd_qwire_cmd_size(cmd);
    if (size == 0)
        return -ENOTTY;
    if (in_len != size || cap < size)
        return -EINVAL; /* the kernel sizes both from cmd: not a restricted ioctl */
    float vec[VECFS_QWIRE_MAX_DIM_16K];
    fsd_qwire_req req;
    const char *why = NULL;
    int rc = fsd_qwire_parse(in, in_len, vec, VECFS_QWIRE_MAX_DIM_16K, &req, &why);
    if (rc < 0) {
        *out_len = fsd_qwire_error(out, cap, rc, 0, "%s", why);
        return rc;
    }
    fsd_ref r;
    if (fsd_inodes_ref(d->inodes, ino, &r) < 0) {
        *out_len = fsd_qwire_error(out, cap, -ENOENT, 0, "the query file is gone");
        return -ENOENT;
    }
    settings s = {0};
    rc = settings_get(d, &r, uid, &req, &s, out, cap, out_len);
    if (rc == 0)
        rc = search(d, &r, vec, req.dim, &s, out, cap, out_len);
    if (rc < 0 && *out_len == 0)
        search_error(d, &r, req.dim, rc, out, cap, out_len);
    st_filter_free(s.filter);
    return rc;
}
