/*
 * ops_query.c — files under `<collection>/.query/` (SPEC §3.3).
 *
 * Lifecycle of one query file (per uid; the text lives in query_table.c):
 *   create/open-for-write  -> the handle buffers what is written
 *   flush (close)          -> the text is parsed and committed to the
 *                             entry; a malformed text fails close() with
 *                             EINVAL and is remembered, so later reads fail
 *                             with EINVAL too
 *   open-for-read          -> the query runs now, once; the result is kept in
 *                             the handle and served with direct_io, so every
 *                             reader gets all of it and fstat on the handle
 *                             reports its true size
 *   read on a handle that has written (open r+, write, seek 0, read)
 *                          -> commit the text and run it, then serve
 *   idle / rmdir / unmount -> the entry is dropped (query_table.c)
 *
 * Queries run in query_run.c; batched query files (*.fvecs, *.npy) are
 * searched and formatted on the store's threads: one FUSE round trip for
 * thousands of queries.
 *
 * Invariants
 *   1. A handle's result, once generated, never changes (readers at any
 *      offset see one consistent result).
 *   2. Only the writer's uid sees an entry; querying needs read permission
 *      on the collection, never write permission.
 *   3. No lock is held while a search runs; entries are reached only
 *      through query_table.c's copying API.
 *   4. Every handler ends in exactly one reply.
 *   5. Memory is budgeted (query_table.h): a handle's charge is wbuf.len +
 *      result.len, taken before a buffer grows and given back when it
 *      shrinks or the handle goes; a committed text is charged to its
 *      entry. A text that fails to parse is not kept, only its error.
 */
#include "fsd.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "names.h"
#include "query_ioctl.h"
#include "query_parse.h"
#include "query_run.h"

typedef struct fsd_query_fh {
    fsd_fh h;
    fuse_ino_t ino;
    uid_t uid;
    gid_t gid;
    fsd_queries *q; /* the table charged for this handle's bytes */
    bool writable;
    bool batch;           /* *.fvecs / *.npy: no FSD_QUERY_TEXT_MAX cap */
    bool reload;          /* wbuf was handed to the entry at commit: a later
                             write starts again from the committed text */
    uint64_t charged;     /* bytes of wbuf + result charged to uid */
    bool dirty;           /* written since the last commit */
    bool failed;          /* the last flush's commit failed: release does not
                             retry it behind the close() that reported it */
    bool have_result;     /* result holds the generated answer */
    int result_err;       /* sticky error of the generation, if any */
    vc_buf wbuf;          /* the text being written */
    vc_buf result;        /* the answer */
    pthread_mutex_t lock; /* guards every field above: FUSE may run reads of
                             one handle in parallel */
} fsd_query_fh;

static const fsd_fh_ops qfile_fh_ops;

/* Brings h's charge to `want` bytes: growth may fail with -ENOSPC or
 * -EDQUOT (nothing changes then), shrinking always succeeds. */
static int fh_charge_to(fsd_query_fh *h, uint64_t want)
{
    if (want > h->charged) {
        int rc = fsd_queries_charge(h->q, h->uid, want - h->charged);
        if (rc < 0)
            return rc;
    } else if (want < h->charged) {
        fsd_queries_uncharge(h->q, h->uid, h->charged - want);
    }
    h->charged = want;
    return 0;
}

/* Resynchronizes the charge with what h holds now (never grows). */
static void fh_charge_sync(fsd_query_fh *h)
{
    uint64_t have = (uint64_t)h->wbuf.len + h->result.len;
    if (have < h->charged)
        (void)fh_charge_to(h, have);
}

/* Checks that the caller may query the collection (read permission). */
static int check_read(fuse_req_t req, fsd *d, const char *coll)
{
    st_attr a;
    int rc = st_coll_stat(d->store, coll, &a);
    if (rc < 0)
        return rc;
    return fsd_access_ok(req, a.mode, a.uid, a.gid, R_OK) ? 0 : -EACCES;
}

/* The attributes of a query file: the caller's, mode 0600, size bytes. */
static void qfile_attr(const fsd_qinfo *info, uid_t uid, gid_t gid, fuse_ino_t ino, uint64_t size,
                       struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_uid = uid;
    st->st_gid = gid;
    st->st_size = (off_t)size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
    st->st_mtim = info->mtime;
    st->st_ctim = info->ctime;
    st->st_atim = info->mtime;
}

/* Stat of the caller's query file r: 0, or -ENOENT when the caller's uid
 * has no entry of that name (lookup, create, setattr). */
static int qfile_stat(fuse_req_t req, const fsd_ref *r, struct stat *st)
{
    fsd *d = fsd_of(req);
    const struct fuse_ctx *c = fuse_req_ctx(req);
    fsd_qinfo info;
    int rc = fsd_queries_get(d->queries, r->coll, c->uid, r->name, &info);
    if (rc < 0)
        return rc;
    uint64_t size = info.result_len ? info.result_len : (info.text ? info.text->len : 0);
    qfile_attr(&info, c->uid, c->gid, r->ino, size, st);
    fsd_qinfo_release(&info);
    return 0;
}

int fsd_qfile_getattr(fuse_req_t req, const fsd_ref *r, struct stat *st)
{
    int rc = qfile_stat(req, r, st);
    if (rc != -ENOENT)
        return rc;
    /* The kernel caches a query name for a second, so a name another uid
     * wrote can reach us as an inode, and the kernel's permission check
     * before open asks for its attributes. Answer with an empty file of
     * the caller's own: open then creates it for writing, or fails with
     * ENOENT for reading (nothing was written under this uid). */
    const struct fuse_ctx *c = fuse_req_ctx(req);
    fsd_qinfo none;
    memset(&none, 0, sizeof none);
    clock_gettime(CLOCK_REALTIME, &none.mtime);
    none.ctime = none.mtime;
    qfile_attr(&none, c->uid, c->gid, r->ino, 0, st);
    return 0;
}

/* fsd_fh_ops.stat of a query handle: the size of what it holds. */
static int qfile_fh_stat(fsd *d, fsd_fh *fh, struct stat *st)
{
    fsd_query_fh *h = (fsd_query_fh *)fh;
    fsd_ref r;
    int rc = fsd_inodes_ref(d->inodes, h->ino, &r);
    if (rc < 0)
        return rc;
    fsd_qinfo info;
    rc = fsd_queries_get(d->queries, r.coll, h->uid, r.name, &info);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&h->lock);
    uint64_t size = h->have_result ? h->result.len
                    : h->dirty     ? h->wbuf.len
                                   : (info.text ? info.text->len : 0);
    pthread_mutex_unlock(&h->lock);
    qfile_attr(&info, h->uid, h->gid, h->ino, size, st);
    fsd_qinfo_release(&info);
    return 0;
}

void fsd_qfile_lookup(fuse_req_t req, const fsd_ref *qdir, const char *name)
{
    fsd *d = fsd_of(req);
    fuse_ino_t ino = 0;
    fsd_ref r = *qdir;
    struct stat st;
    int rc = (int)strlen(name) > (int)ST_NAME_MAX ? -ENAMETOOLONG : 0;
    if (rc == 0) {
        snprintf(r.name, sizeof r.name, "%s", name);
        rc = qfile_stat(req, &r, &st);
    }
    if (rc == 0)
        rc = fsd_inodes_link(d->inodes, qdir->ino, name, FSD_K_QFILE, &ino);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_LOOKUP, rc);
        return;
    }
    fsd_reply_entry_ttl(req, ino, &st, FSD_TTL_QUERY_ENTRY, fsd_qfile_attr_ttl(d));
}

/* ------------------------------------------------------------------ */
/* Running a query                                                      */
/* ------------------------------------------------------------------ */

/* Applies the batch parameters of the entry's xattrs. */
static int apply_xattrs(fsd_query *q, const fsd_qinfo *info)
{
    char num[24];
    int rc = 0;
    if (info->k) {
        int n = snprintf(num, sizeof num, "%u", info->k);
        rc = fsd_query_param_set(q, "k", num, (size_t)n);
    }
    if (rc == 0 && info->ef) {
        int n = snprintf(num, sizeof num, "%u", info->ef);
        rc = fsd_query_param_set(q, "ef", num, (size_t)n);
    }
    if (rc == 0 && info->filter != NULL)
        rc = fsd_query_param_set(q, "filter", info->filter, strlen(info->filter));
    if (rc == 0 && info->max_distance != NULL)
        rc = fsd_query_param_set(q, "max_distance", info->max_distance, strlen(info->max_distance));
    if (rc == 0 && info->explain != NULL)
        rc = fsd_query_param_set(q, "explain", info->explain, strlen(info->explain));
    return rc;
}

/* Keeps why the query file's last query failed in its xattr user.error
 * (getfattr -n user.error), or drops it once one succeeds: close() and
 * read() can only say EINVAL. */
static void note_error(fsd *d, const char *coll, uid_t uid, const char *name, const fsd_query *q,
                       int rc)
{
    if (rc == 0) {
        (void)fsd_queries_xattr_remove(d->queries, coll, uid, name, "user.error");
        return;
    }
    if (rc != -EINVAL)
        return;
    const char *why = q->error[0] ? q->error : "malformed query";
    (void)fsd_queries_xattr_set(d->queries, coll, uid, name, "user.error", why, strlen(why), 0);
}

/* Runs a parsed query and puts its result into out (replacing what out
 * held). 0 or a negative errno. */
static int run_query(fsd *d, const char *coll, const fsd_query *q, uid_t uid, vc_buf *out)
{
    char *bytes = NULL;
    size_t len = 0;
    int rc = fsd_query_run(d->store, coll, q, d->queries, uid, &bytes, &len);
    if (rc < 0)
        return rc;
    vc_buf_attach(out, bytes, len);
    return 0;
}

/* Parses text of the query file `name`. */
static int parse_text(const char *name, const fsd_qtext *text, fsd_query *q)
{
    fsd_qkind kind = fsd_qkind_from_name(name, strlen(name));
    if (text == NULL || text->len == 0)
        return -EINVAL;
    int rc = fsd_query_parse(kind, text->data, text->len, q);
    return rc == -EFBIG || rc == -E2BIG ? -EINVAL : rc;
}

/* Drops the kernel's cached attributes of query file ino (cached only on
 * single-user mounts), so the next stat, on a handle or not, asks again
 * and gets the size of the result just generated. Only attributes go
 * (offset -1), which takes no lock an opener or reader holds. */
static void drop_cached_attrs(fsd *d, fuse_ino_t ino)
{
    if (d->single_user && d->se != NULL)
        (void)fuse_lowlevel_notify_inval_inode(d->se, ino, -1, 0);
}

/* Generates the result of the committed entry into h->result. Caller
 * holds h->lock. */
static int generate(fsd *d, fsd_query_fh *h, const fsd_ref *r)
{
    assert(h != NULL && r != NULL);
    fsd_qinfo info;
    int rc = fsd_queries_get(d->queries, r->coll, h->uid, r->name, &info);
    if (rc < 0)
        return rc;
    if (info.parse_err < 0) {
        rc = info.parse_err;
        goto out;
    }
    fsd_query q = FSD_QUERY_INIT;
    rc = parse_text(r->name, info.text, &q);
    if (rc == 0 && fsd_qkind_is_batch(q.kind))
        rc = apply_xattrs(&q, &info);
    if (rc == 0)
        rc = run_query(d, r->coll, &q, h->uid, &h->result);
    note_error(d, r->coll, h->uid, r->name, &q, rc);
    fsd_query_release(&q);
    if (rc == 0) {
        rc = fh_charge_to(h, (uint64_t)h->wbuf.len + h->result.len);
        if (rc < 0)
            vc_buf_release(&h->result);
    }
    if (rc == 0) {
        h->have_result = true;
        fsd_queries_set_result_len(d->queries, r->coll, h->uid, r->name, h->result.len);
        drop_cached_attrs(d, h->ino); /* the size changed */
    }
out:
    fsd_qinfo_release(&info);
    return rc;
}

/* What a parsed query must agree with in its collection: the vector's dim
 * (once the collection has one) and the existence of a `like` vector. A
 * query that cannot run is malformed, so close() reports it. */
static int check_against(fsd *d, const char *coll, fsd_query *q)
{
    if (q->like != NULL) {
        st_attr a;
        int rc = st_vec_stat(d->store, coll, q->like, &a);
        if (rc == -ENOENT)
            snprintf(q->error, sizeof q->error, "like: no vector '%.64s'", q->like);
        return rc == -ENOENT ? -EINVAL : rc;
    }
    st_config cfg;
    int rc = st_coll_config_get(d->store, coll, &cfg);
    if (rc < 0)
        return rc;
    if (cfg.dim != 0 && q->dim != cfg.dim) {
        snprintf(q->error, sizeof q->error, "the vector has %u values, the collection %u", q->dim,
                 cfg.dim);
        return -EINVAL;
    }
    return 0;
}

/* Commits the handle's written text to the entry. Caller holds h->lock. */
static int commit(fsd *d, fsd_query_fh *h, const fsd_ref *r)
{
    assert(h != NULL && r != NULL);
    fsd_qtext *t = fsd_qtext_new(h->wbuf.p, h->wbuf.len);
    if (t == NULL)
        return -ENOMEM;
    fsd_query q = FSD_QUERY_INIT;
    int perr = parse_text(r->name, t, &q);
    if (perr == 0)
        perr = check_against(d, r->coll, &q);
    if (perr == -ENOMEM) {
        fsd_query_release(&q);
        fsd_qtext_unref(t);
        return perr;
    }
    if (perr < 0) {
        /* Only the verdict is kept (invariant 5): reads fail with it. */
        fsd_qtext_unref(t);
        t = fsd_qtext_new("", 0);
        if (t == NULL)
            return -ENOMEM;
    }
    /* The entry takes over the text: the handle's copy goes first so the
     * same bytes are not charged twice. */
    vc_buf_release(&h->wbuf);
    vc_buf_release(&h->result);
    fh_charge_sync(h);
    h->reload = true;
    h->dirty = false;
    h->have_result = false;
    int rc = fsd_queries_put(d->queries, r->coll, h->uid, r->name, t, perr);
    fsd_qtext_unref(t);
    if (rc == 0)
        note_error(d, r->coll, h->uid, r->name, &q, perr);
    fsd_query_release(&q);
    if (rc < 0)
        return rc;
    return perr;
}

/* Before a handle that committed writes again: its buffer starts from the
 * committed text, as at open (partial writes). Caller holds h->lock. */
static int reload_text(fsd *d, fsd_query_fh *h)
{
    if (!h->reload)
        return 0;
    fsd_ref r;
    int rc = fsd_inodes_ref(d->inodes, h->ino, &r);
    fsd_qinfo info;
    if (rc == 0)
        rc = fsd_queries_get(d->queries, r.coll, h->uid, r.name, &info);
    if (rc < 0)
        return rc;
    size_t n = info.text != NULL ? info.text->len : 0;
    rc = fh_charge_to(h, (uint64_t)h->result.len + n);
    if (rc == 0 && n > 0)
        rc = vc_buf_append(&h->wbuf, info.text->data, n);
    fsd_qinfo_release(&info);
    if (rc < 0) {
        fh_charge_sync(h);
        return rc;
    }
    h->reload = false;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Handlers                                                             */
/* ------------------------------------------------------------------ */

/* A new handle of the caller's on query file ino called name. NULL:
 * ENOMEM. */
static fsd_query_fh *fh_new(fuse_req_t req, fuse_ino_t ino, const char *name, int flags)
{
    fsd_query_fh *h = vc_calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return NULL;
    }
    const struct fuse_ctx *c = fuse_req_ctx(req);
    h->h.ops = &qfile_fh_ops;
    h->q = fsd_of(req)->queries;
    h->batch = fsd_qkind_is_batch(fsd_qkind_from_name(name, strlen(name)));
    h->ino = ino;
    h->uid = c->uid;
    h->gid = c->gid;
    h->writable = (flags & O_ACCMODE) != O_RDONLY;
    return h;
}

/* Frees h and gives back its charge. NULL is a no-op. */
static void fh_free(fsd_query_fh *h)
{
    if (h == NULL)
        return;
    vc_buf_release(&h->wbuf);
    vc_buf_release(&h->result);
    fh_charge_sync(h);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void fsd_qfile_create(fuse_req_t req, const fsd_ref *qdir, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    (void)mode;
    fsd *d = fsd_of(req);
    const struct fuse_ctx *c = fuse_req_ctx(req);
    fuse_ino_t ino = 0;
    fsd_query_fh *h = NULL;
    int rc = fsd_vecname_check(name, strlen(name));
    if (rc == -EINVAL && st_name_is_reserved(name, strlen(name)))
        rc = 0; /* any file name is a fine query name */
    if (rc == 0)
        rc = check_read(req, d, qdir->coll);
    if (rc == 0)
        rc = fsd_inodes_link(d->inodes, qdir->ino, name, FSD_K_QFILE, &ino);
    if (rc == 0 && (h = fh_new(req, ino, name, fi->flags)) == NULL)
        rc = -ENOMEM;
    /* The entry last: a create that fails leaves no (empty) query file. */
    if (rc == 0)
        rc = fsd_queries_touch(d->queries, qdir->coll, c->uid, name, true);
    struct stat st;
    fsd_ref r = *qdir;
    snprintf(r.name, sizeof r.name, "%s", name);
    r.ino = ino;
    if (rc == 0)
        rc = qfile_stat(req, &r, &st);
    if (rc < 0) {
        fh_free(h);
        if (ino != 0)
            fsd_inodes_forget(d->inodes, ino, 1);
        fsd_reply_err(req, FSD_OP_CREATE, rc);
        return;
    }
    fi->direct_io = 1;
    fi->keep_cache = 0;
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    e.generation = 1;
    e.attr = st;
    e.entry_timeout = FSD_TTL_QUERY_ENTRY;
    e.attr_timeout = fsd_qfile_attr_ttl(d);
    fsd_fh_reply_create(req, &e, fi, &h->h);
}

void fsd_qfile_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    fsd_query_fh *h = NULL;
    int rc = check_read(req, d, r->coll);
    bool trunc = (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;
    fsd_qinfo info;
    memset(&info, 0, sizeof info);
    if (rc == 0) {
        rc = fsd_queries_get(d->queries, r->coll, fuse_req_ctx(req)->uid, r->name, &info);
        if (rc == -ENOENT && (fi->flags & O_ACCMODE) != O_RDONLY) {
            /* The kernel kept another uid's (or an expired) entry for this
             * name and sent open instead of create: writing makes the file. */
            rc = fsd_queries_touch(d->queries, r->coll, fuse_req_ctx(req)->uid, r->name, true);
            trunc = true;
        }
    }
    if (rc == 0 && (h = fh_new(req, r->ino, r->name, fi->flags)) == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        if (trunc) {
            rc = fsd_queries_touch(d->queries, r->coll, h->uid, r->name, true);
        } else if (h->writable) {
            /* Partial writes start from the committed text. */
            if (info.text != NULL) {
                rc = fh_charge_to(h, info.text->len);
                if (rc == 0)
                    rc = vc_buf_append(&h->wbuf, info.text->data, info.text->len);
            }
        } else {
            /* Read-only: generate now, so fstat and every read agree. */
            pthread_mutex_lock(&h->lock);
            rc = generate(d, h, r);
            pthread_mutex_unlock(&h->lock);
        }
    }
    fsd_qinfo_release(&info);
    if (rc < 0) {
        fh_free(h);
        fsd_reply_err(req, FSD_OP_OPEN, rc);
        return;
    }
    fi->direct_io = 1;
    fi->keep_cache = 0;
    /* A read-only handle has nothing to commit at close: spare the
     * per-query FLUSH round trip. */
    fi->noflush = !h->writable;
    fsd_fh_reply_open(req, fi, &h->h);
}

/* fsd_fh_ops.discard of a query handle. */
static void qfile_fh_discard(fsd *d, fsd_fh *fh)
{
    (void)d;
    fh_free((fsd_query_fh *)fh);
}

/* fsd_fh_ops.read: the result, generated now if this handle wrote (open
 * r+, write, seek 0, read) or has none yet. Copied under the lock (see
 * fsd_copy_range). */
static int qfile_fh_read(fsd *d, fsd_fh *fh, size_t size, off_t off, char **out, size_t *n)
{
    fsd_query_fh *h = (fsd_query_fh *)fh;
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    if (!h->have_result) {
        fsd_ref r;
        rc = fsd_inodes_ref(d->inodes, h->ino, &r);
        if (rc == 0 && h->dirty)
            rc = commit(d, h, &r);
        if (rc == 0)
            rc = generate(d, h, &r);
    }
    if (rc == 0)
        rc = fsd_copy_range(&h->result, size, off, out, n);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* fsd_fh_ops.write: into the handle's text, within the memory budget. */
static int qfile_fh_write(fsd *d, fsd_fh *fh, const char *buf, size_t size, off_t off)
{
    fsd_query_fh *h = (fsd_query_fh *)fh;
    if (!h->writable)
        return -EBADF;
    size_t max = h->batch ? FSD_BUF_MAX : FSD_QUERY_TEXT_MAX;
    pthread_mutex_lock(&h->lock);
    int rc = reload_text(d, h);
    if (rc == 0 && ((uint64_t)off > max || size > max - (uint64_t)off))
        rc = -EFBIG;
    if (rc == 0 && h->have_result) {
        /* The result of an earlier read is stale now: give it back first. */
        vc_buf_release(&h->result);
        h->have_result = false;
        fh_charge_sync(h);
    }
    if (rc == 0) {
        size_t end = (size_t)off + size;
        uint64_t want = (uint64_t)(end > h->wbuf.len ? end : h->wbuf.len) + h->result.len;
        rc = fh_charge_to(h, want);
    }
    if (rc == 0)
        rc = vc_buf_write_at(&h->wbuf, (size_t)off, buf, size, max);
    fh_charge_sync(h);
    if (rc == 0) {
        h->dirty = true;
        h->failed = false;
        h->have_result = false;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* fsd_fh_ops.flush: commits the written text (close() reports a malformed
 * query). */
static int qfile_fh_flush(fsd *d, fsd_fh *fh, const fsd_caller *who, bool fsync, bool *quiet)
{
    (void)who;
    (void)fsync;
    (void)quiet;
    fsd_query_fh *h = (fsd_query_fh *)fh;
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    if (h->dirty) {
        fsd_ref r;
        rc = fsd_inodes_ref(d->inodes, h->ino, &r);
        if (rc == 0)
            rc = commit(d, h, &r);
        h->failed = rc < 0;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* fsd_fh_ops.release: commits what no flush did (nor failed to), then
 * frees. */
static void qfile_fh_release(fsd *d, fsd_fh *fh, const fsd_caller *who)
{
    (void)who;
    fsd_query_fh *h = (fsd_query_fh *)fh;
    if (h->dirty && !h->failed) {
        fsd_ref r;
        if (fsd_inodes_ref(d->inodes, h->ino, &r) == 0)
            (void)commit(d, h, &r);
    }
    fh_free(h);
}

/* fsd_fh_ops.ioctl: one request per query (query_ioctl.c); the opener's
 * settings apply and the handle itself is not touched, so no lock. */
static int qfile_fh_ioctl(fsd *d, fsd_fh *fh, unsigned int cmd, const void *in, size_t in_len,
                          void *out, size_t cap, size_t *out_len)
{
    const fsd_query_fh *h = (const fsd_query_fh *)fh;
    return fsd_query_ioctl(d, h->ino, h->uid, cmd, in, in_len, out, cap, out_len);
}

static const fsd_fh_ops qfile_fh_ops = {
    .read = qfile_fh_read,
    .ioctl = qfile_fh_ioctl,
    .write = qfile_fh_write,
    .flush = qfile_fh_flush,
    .stat = qfile_fh_stat,
    .release = qfile_fh_release,
    .discard = qfile_fh_discard,
};

void fsd_qfile_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *in, int to_set,
                       struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    int rc = 0;
    if (to_set & FUSE_SET_ATTR_SIZE) {
        fsd_query_fh *h = fi != NULL ? (fsd_query_fh *)(uintptr_t)fi->fh : NULL;
        if (h != NULL && h->h.ops == &qfile_fh_ops) {
            size_t max = h->batch ? FSD_BUF_MAX : FSD_QUERY_TEXT_MAX;
            pthread_mutex_lock(&h->lock);
            rc = in->st_size == 0 ? 0 : reload_text(d, h);
            if (rc == 0)
                h->reload = false;
            if (rc == 0 && (uint64_t)in->st_size > max)
                rc = -EFBIG;
            if (rc == 0) {
                vc_buf_release(&h->result);
                h->have_result = false;
                rc = fh_charge_to(h, (uint64_t)in->st_size);
            }
            if (rc == 0)
                rc = vc_buf_resize(&h->wbuf, (size_t)in->st_size, FSD_BUF_MAX);
            fh_charge_sync(h);
            if (rc == 0) {
                h->dirty = true;
                h->failed = false;
                h->have_result = false;
            }
            pthread_mutex_unlock(&h->lock);
        } else if (in->st_size == 0) {
            rc = fsd_queries_touch(d->queries, r->coll, fuse_req_ctx(req)->uid, r->name, true);
        } else {
            rc = -EINVAL;
        }
    }
    struct stat st;
    if (rc == 0)
        rc = qfile_stat(req, r, &st);
    /* Not cached, as before attributes were: the text a truncating
     * handle holds is not the entry's yet. */
    fsd_reply_attr(req, FSD_OP_SETATTR, rc, &st, r->ino, 0.0);
}

void fsd_qfile_unlink(fuse_req_t req, const fsd_ref *qdir, const char *name)
{
    fsd *d = fsd_of(req);
    int rc = fsd_queries_remove(d->queries, qdir->coll, fuse_req_ctx(req)->uid, name);
    if (rc == 0)
        fsd_inodes_unlink(d->inodes, qdir->ino, name);
    fsd_reply_err(req, FSD_OP_UNLINK, rc);
}

void fsd_qfile_rename(fuse_req_t req, const fsd_ref *qdir, const char *name, const char *newname)
{
    fsd *d = fsd_of(req);
    int rc = fsd_queries_rename(d->queries, qdir->coll, fuse_req_ctx(req)->uid, name, newname);
    if (rc == 0)
        (void)fsd_inodes_rename(d->inodes, qdir->ino, name, qdir->ino, newname);
    fsd_reply_err(req, FSD_OP_RENAME, rc);
}
