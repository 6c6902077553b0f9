/*
 * rados_resync.c — a running node whose place in the log was trimmed
 * away (paused or cut off for longer than two checkpoints) reloads the
 * newest checkpoint without stopping (docs/scale-out.md §7). The node
 * cannot swap its store for the checkpoint's (open files, inode numbers
 * and the kernel's caches refer to it), so it changes its store into the
 * checkpoint's: it downloads the checkpoint into CACHEDIR/resync, opens
 * it without indexes, and through the store's own writes deletes what
 * the checkpoint lacks and puts what differs (content, vector, mode,
 * owner, times, xattrs, a collection's config and attributes). Then it
 * follows the log from the checkpoint's seq.
 *
 *     fetch into resync/ -> collections the checkpoint lacks dropped ->
 *     per collection: config, vectors deleted / put / xattrs, attributes
 *     -> applied = S (one transaction) -> resync/ removed
 *
 * Invariants
 *   1. Every write of the reload commits the node's old applied seq (the
 *      thread "applies" it, so nothing goes to the log): a crash part way
 *      leaves a cache still behind the trim, which the next start
 *      discards and loads whole (rados_node.c). Only the last transaction
 *      records S, once the store holds the checkpoint's state.
 *   2. The caller holds the node's apply lock: no entry is applied and no
 *      write of this node appended meanwhile. Readers are served all
 *      along, from a state moving from the old one to the checkpoint's
 *      (a query may see part of each: the deviation scale-out.md §7
 *      states).
 *   3. A vector that is the same in both (content, mode, uid, gid, times,
 *      xattrs) is not written: the reload costs what changed, plus one
 *      read of each vector.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "internal.h"
#include "le.h"

#define RESYNC_DIR "resync"

typedef struct resync {
    st_store *local, *ck;
    uint64_t puts, deletes;
} resync;

/* st_list_fn: appends each name, NUL-terminated, to a vc_buf. */
static int name_collect(void *ctx, const char *name, const st_attr *attr, uint64_t next)
{
    (void)attr;
    (void)next;
    return vc_buf_append(ctx, name, strlen(name) + 1);
}

/* The names of coll's vectors (coll NULL: the collections) in st. */
static int names_of(st_store *st, const char *coll, vc_buf *out)
{
    vc_buf_reset(out);
    return coll ? st_vec_list(st, coll, 0, name_collect, out)
                : st_coll_list(st, 0, name_collect, out);
}

/* A vector's xattrs as one comparable string: name NUL, length, value. */
static int xattrs_of(st_store *st, const char *coll, const char *name, vc_buf *out)
{
    vc_buf_reset(out);
    size_t len;
    int rc = st_xattr_list(st, coll, name, NULL, 0, &len);
    if (rc || len == 0)
        return rc;
    char *list = vc_malloc(len);
    if (!list)
        return -ENOMEM;
    rc = st_xattr_list(st, coll, name, list, len, &len);
    for (size_t at = 0; rc == 0 && at < len; at += strlen(list + at) + 1) {
        size_t vl;
        rc = st_xattr_get(st, coll, name, list + at, NULL, 0, &vl);
        char *v = rc == 0 ? vc_malloc(vl + 1) : NULL;
        if (rc == 0 && !v)
            rc = -ENOMEM;
        if (rc == 0)
            rc = st_xattr_get(st, coll, name, list + at, v, vl, &vl);
        if (rc == 0)
            rc = vc_buf_append(out, list + at, strlen(list + at) + 1);
        if (rc == 0)
            rc = vc_buf_append_le64(out, vl);
        if (rc == 0)
            rc = vc_buf_append(out, v, vl);
        free(v);
    }
    free(list);
    return rc;
}

/* Makes local's xattrs of coll/name those described by want (xattrs_of's
 * string): removes the others, sets every wanted one. */
static int xattrs_set(st_store *st, const char *coll, const char *name, const vc_buf *have,
                      const vc_buf *want)
{
    int rc = 0;
    const char *h = have->p, *w = want->p;
    for (size_t at = 0; rc == 0 && at < have->len;) {
        const char *x = h + at;
        size_t xl = strlen(x) + 1;
        uint64_t vl = vc_le_get64((const uint8_t *)x + xl);
        bool kept = false;
        for (size_t wt = 0; !kept && wt < want->len;) {
            const char *y = w + wt;
            size_t yl = strlen(y) + 1;
            kept = strcmp(x, y) == 0;
            wt += yl + 8 + vc_le_get64((const uint8_t *)y + yl);
        }
        if (!kept)
            rc = st_xattr_remove(st, coll, name, x);
        at += xl + 8 + vl;
    }
    for (size_t wt = 0; rc == 0 && wt < want->len;) {
        const char *y = w + wt;
        size_t yl = strlen(y) + 1;
        uint64_t vl = vc_le_get64((const uint8_t *)y + yl);
        rc = st_xattr_set(st, coll, name, y, y + yl + 8, vl, 0);
        wt += yl + 8 + vl;
    }
    return rc;
}

static bool ts_eq(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool attr_eq(const st_attr *a, const st_attr *b)
{
    return a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
           ts_eq(&a->mtime, &b->mtime) && ts_eq(&a->ctime, &b->ctime);
}

/* Makes local's coll/name the checkpoint's; vec has room for dim floats. */
static int vec_sync(resync *s, const char *coll, const char *name, float *vec, uint32_t dim)
{
    void *want = NULL, *have = NULL;
    size_t wlen, hlen = 0;
    st_attr wa, ha;
    vc_buf wx = VC_BUF_INIT, hx = VC_BUF_INIT;
    int rc = st_vec_get(s->ck, coll, name, &want, &wlen, &wa);
    if (rc == 0)
        rc = xattrs_of(s->ck, coll, name, &wx);
    int hrc = rc ? rc : st_vec_get(s->local, coll, name, &have, &hlen, &ha);
    if (hrc == 0)
        hrc = xattrs_of(s->local, coll, name, &hx);
    if (rc == 0 && hrc != 0 && hrc != -ENOENT)
        rc = hrc;
    bool same_content = hrc == 0 && hlen == wlen && memcmp(have, want, wlen) == 0;
    bool same =
        same_content && attr_eq(&wa, &ha) && hx.len == wx.len && memcmp(hx.p, wx.p, wx.len) == 0;
    if (rc == 0 && !same) {
        uint32_t got = 0;
        if (!same_content) {
            rc = st_vec_vector(s->ck, coll, name, vec, dim, &got);
            if (rc == 0)
                rc = st_vec_put(s->local, coll, name, want, wlen, vec, got, &wa, ST_SET_ALL);
            if (rc == 0 && hrc == -ENOENT)
                vc_buf_reset(&hx); /* a new vector has none */
        }
        if (rc == 0)
            rc = xattrs_set(s->local, coll, name, &hx, &wx);
        if (rc == 0) /* the times the xattr writes moved */
            rc = st_vec_setattr(s->local, coll, name, &wa, ST_SET_ALL);
        s->puts += rc == 0;
    }
    free(want);
    free(have);
    vc_buf_release(&wx);
    vc_buf_release(&hx);
    return rc;
}

/* Deletes local's vectors of coll that `keep` (NULL: none) lacks. */
static int vecs_prune(resync *s, const char *coll, st_store *keep)
{
    vc_buf names = VC_BUF_INIT;
    int rc = names_of(s->local, coll, &names);
    for (size_t at = 0; rc == 0 && at < names.len; at += strlen(names.p + at) + 1) {
        st_attr a;
        const char *name = names.p + at;
        if (keep && st_vec_stat(keep, coll, name, &a) == 0)
            continue;
        rc = st_vec_delete(s->local, coll, name);
        s->deletes += rc == 0;
    }
    vc_buf_release(&names);
    return rc;
}

static bool config_eq(const st_config *a, const st_config *b)
{
    char ta[1024], tb[1024];
    size_t la, lb;
    return st_config_format(a, ta, sizeof(ta), &la) == 0 &&
           st_config_format(b, tb, sizeof(tb), &lb) == 0 && la == lb && memcmp(ta, tb, la) == 0;
}

/* Makes local's collection coll the checkpoint's. */
static int coll_sync(resync *s, const char *coll)
{
    st_config want, have;
    struct timespec cfg_mtime;
    st_attr wa, ha;
    int rc = st_coll_config_stat(s->ck, coll, &want, &cfg_mtime);
    if (rc == 0)
        rc = st_coll_stat(s->ck, coll, &wa);
    if (rc)
        return rc;
    if (st_coll_stat(s->local, coll, &ha) != 0) {
        rc = st_coll_create(s->local, coll, &wa, &want);
    } else if ((rc = st_coll_config_get(s->local, coll, &have)) == 0 && !config_eq(&want, &have)) {
        /* A dim that changed means the collection was emptied meanwhile. */
        if (have.dim && have.dim != want.dim)
            rc = vecs_prune(s, coll, NULL);
        if (rc == 0)
            rc = st_coll_config_set(s->local, coll, &want, &cfg_mtime);
    }
    if (rc == 0)
        rc = vecs_prune(s, coll, s->ck);
    vc_buf names = VC_BUF_INIT;
    float *vec = want.dim ? vc_malloc(want.dim * sizeof(float)) : NULL;
    if (rc == 0 && want.dim && !vec)
        rc = -ENOMEM;
    if (rc == 0)
        rc = names_of(s->ck, coll, &names);
    for (size_t at = 0; rc == 0 && at < names.len; at += strlen(names.p + at) + 1)
        rc = vec_sync(s, coll, names.p + at, vec, want.dim);
    free(vec);
    vc_buf_release(&names);
    if (rc == 0)
        rc = st_coll_config_touch(s->local, coll, &cfg_mtime);
    if (rc == 0)
        rc = st_coll_setattr(s->local, coll, &wa, ST_SET_ALL);
    return rc;
}

/* Makes local's collections the checkpoint's. */
static int store_sync(resync *s)
{
    vc_buf names = VC_BUF_INIT;
    int rc = names_of(s->local, NULL, &names);
    for (size_t at = 0; rc == 0 && at < names.len; at += strlen(names.p + at) + 1) {
        st_attr a;
        const char *coll = names.p + at;
        if (st_coll_stat(s->ck, coll, &a) == 0)
            continue;
        rc = vecs_prune(s, coll, NULL);
        if (rc == 0)
            rc = st_coll_drop(s->local, coll);
    }
    if (rc == 0)
        rc = names_of(s->ck, NULL, &names);
    for (size_t at = 0; rc == 0 && at < names.len; at += strlen(names.p + at) + 1)
        rc = coll_sync(s, names.p + at);
    vc_buf_release(&names);
    return rc;
}

int st_resync(st_store *local, st_rados *r, uint64_t applied, uint64_t *seq)
{
    char dir[4096], note[1024];
    snprintf(dir, sizeof(dir), "%s/" RESYNC_DIR, local->dir);
    st_ckpt_local_remove(dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    struct timespec t0, t1;
    st_mono_now(&t0);
    int rc = st_ckpt_fetch(r, dir, seq, note, sizeof(note));
    if (rc == 0 && *seq == 0)
        rc = -ENOENT; /* trimmed with no checkpoint: cannot be */
    resync s = {.local = local};
    if (rc == 0) {
        st_options o = local->opt;
        o.read_only = true;
        o.errbuf = NULL;
        rc = st_store_open_noindex(dir, &o, &s.ck);
    }
    if (rc == 0) {
        st_log(local, ST_LOG_WARN,
               "rados: applied %" PRIu64 " is behind the log's trim: reloading checkpoint %" PRIu64
               " while serving",
               applied, *seq);
        struct timespec now;
        st_now(&now);
        st_log_apply_begin(applied, &now);
        rc = store_sync(&s);
        st_log_apply_end();
    }
    if (rc == 0) {
        struct timespec now;
        st_now(&now);
        st_log_apply_begin(*seq, &now);
        rc = st_log_applied_commit(local);
        st_log_apply_end();
    }
    st_store_close(s.ck);
    st_ckpt_local_remove(dir);
    rmdir(dir);
    st_mono_now(&t1);
    if (rc == 0)
        st_log(local, ST_LOG_INFO,
               "rados: reloaded checkpoint %" PRIu64 " in %.3f s (%" PRIu64
               " vectors written, %" PRIu64 " deleted); following the log",
               *seq, st_ts_diff(&t1, &t0), s.puts, s.deletes);
    return rc;
}
