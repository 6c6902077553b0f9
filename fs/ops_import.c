/*
 * ops_import.c — import files under `<collection>/.import/` (SPEC §3.4).
 *
 * A file created in .import/ exists only while it is open: its bytes are
 * buffered in the handle, and the first flush (close) or fsync that sees
 * data parses the whole file (import_parse.h: .fvecs, .npy, .jsonl) and inserts
 * every row in ONE store batch (st_batch_* : one LMDB transaction, then a
 * parallel index insert). Either every row is there or none is, and
 * close() reports why. Afterwards the file is gone, whatever the outcome.
 *
 * Rows of .fvecs/.npy are named "<stem>-<row>.f32" and stored with their
 * raw float32 bytes as content; .jsonl rows keep their own name, their
 * content is the vector formatted for that name's suffix (vector_format.h), and
 * their "meta" becomes user.* xattrs in the same transaction.
 *
 * Invariants
 *   1. The table lists exactly the import files with an open handle, one
 *      entry per (collection, name); a second create of a name that is being
 *      written fails with EEXIST.
 *   2. A handle is imported at most once (done); later writes fail EBADF.
 *   3. Lock order: the table lock, then a handle's lock. The table lock is
 *      never held across parsing or the store batch, and stat of an import
 *      file reads the atomic size, so it never waits for an import.
 */
#include "fsd.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "import_parse.h"
#include "alloc.h"
#include "names.h"

typedef struct fsd_ifile_fh {
    fsd_fh h;
    struct fsd_ifile_fh *next;       /* in the table; protected by the table lock */
    fuse_ino_t ino;                  /* immutable */
    char coll[ST_COLL_NAME_MAX + 1]; /* immutable */
    char name[ST_NAME_MAX + 1];      /* immutable */
    uid_t uid;                       /* immutable */
    gid_t gid;                       /* immutable */
    mode_t mode;                     /* immutable: permission bits for the rows */
    struct timespec created;         /* immutable */
    pthread_mutex_t lock;            /* guards buf, done; held for a whole import */
    vc_buf buf;
    bool done;
    _Atomic size_t size; /* buf.len as of the last write: stat reads it
                            without waiting for an import to finish */
    bool listed;         /* in the table; protected by the table lock */
    long long rows;      /* rows of the last import attempt (audit log) */
    /* Progress, for .vecfs/stats (fsd_imports_stats); written by the
     * importing thread, read without its lock. */
    _Atomic int phase;         /* import_phase */
    _Atomic size_t rows_done;  /* rows handed to the store so far */
    _Atomic size_t rows_total; /* rows the file holds, once parsed */
} fsd_ifile_fh;

/* Where an import stands. */
typedef enum import_phase {
    PHASE_RECEIVING = 0, /* bytes arriving; imported at close */
    PHASE_PARSING,
    PHASE_STORING,    /* rows going into the store's batch */
    PHASE_COMMITTING, /* the batch's commit and index build */
    PHASE_DONE,
} import_phase;

static const char *const phase_names[] = {"receiving", "parsing", "storing", "committing", "done"};

static const fsd_fh_ops ifile_fh_ops;

struct fsd_imports {
    pthread_mutex_t lock;
    fsd_ifile_fh *head; /* protected by lock */
};

int fsd_imports_create(fsd_imports **out)
{
    *out = NULL;
    fsd_imports *im = vc_calloc(1, sizeof *im);
    if (im == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&im->lock, NULL) != 0) {
        free(im);
        return -ENOMEM;
    }
    *out = im;
    return 0;
}

void fsd_imports_free(fsd_imports *im)
{
    if (im == NULL)
        return;
    pthread_mutex_destroy(&im->lock);
    free(im);
}

/* Size of the open import file (coll, name), or -ENOENT. */
static int64_t table_size(fsd_imports *im, const char *coll, const char *name, uid_t *uid,
                          gid_t *gid, mode_t *mode, struct timespec *t)
{
    int64_t size = -ENOENT;
    pthread_mutex_lock(&im->lock);
    for (fsd_ifile_fh *h = im->head; h; h = h->next) {
        if (strcmp(h->coll, coll) == 0 && strcmp(h->name, name) == 0) {
            size = (int64_t)atomic_load(&h->size);
            *uid = h->uid;
            *gid = h->gid;
            *mode = h->mode;
            *t = h->created;
            break;
        }
    }
    pthread_mutex_unlock(&im->lock);
    return size;
}

/* Takes h out of the table, if it is listed. */
static void table_remove(fsd_imports *im, fsd_ifile_fh *h)
{
    pthread_mutex_lock(&im->lock);
    if (h->listed) {
        fsd_ifile_fh **pp = &im->head;
        while (*pp != h)
            pp = &(*pp)->next;
        *pp = h->next;
        h->listed = false;
    }
    pthread_mutex_unlock(&im->lock);
}

/* The attributes of an import file of size bytes. */
static void fill_stat(fuse_ino_t ino, uint64_t size, uid_t uid, gid_t gid, mode_t mode,
                      const struct timespec *t, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = S_IFREG | (mode & 07777);
    st->st_nlink = 1;
    st->st_uid = uid;
    st->st_gid = gid;
    st->st_size = (off_t)size;
    st->st_blksize = 1 << 20;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
    st->st_atim = st->st_mtim = st->st_ctim = *t;
}

int fsd_ifile_stat(fsd *d, const fsd_ref *r, struct stat *st)
{
    uid_t uid;
    gid_t gid;
    mode_t mode;
    struct timespec t;
    int64_t size = table_size(d->imports, r->coll, r->name, &uid, &gid, &mode, &t);
    if (size < 0)
        return (int)size;
    fill_stat(r->ino, (uint64_t)size, uid, gid, mode, &t, st);
    return 0;
}

/* fsd_fh_ops.stat: reads the atomic size, never waits for an import. */
static int ifile_fh_stat(fsd *d, fsd_fh *fh, struct stat *st)
{
    (void)d;
    fsd_ifile_fh *h = (fsd_ifile_fh *)fh;
    uint64_t size = atomic_load(&h->size);
    fill_stat(h->ino, size, h->uid, h->gid, h->mode, &h->created, st);
    return 0;
}

void fsd_ifile_lookup(fuse_req_t req, const fsd_ref *idir, const char *name)
{
    fsd *d = fsd_of(req);
    fsd_ref r = *idir;
    struct stat st;
    fuse_ino_t ino = 0;
    int rc = strlen(name) > ST_NAME_MAX ? -ENAMETOOLONG : 0;
    if (rc == 0) {
        snprintf(r.name, sizeof r.name, "%s", name);
        rc = fsd_ifile_stat(d, &r, &st);
    }
    if (rc == 0)
        rc = fsd_inodes_link(d->inodes, idir->ino, name, FSD_K_IFILE, &ino);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_LOOKUP, rc);
        return;
    }
    fsd_reply_entry(req, ino, &st, 0.0);
}

void fsd_ifile_create(fuse_req_t req, const fsd_ref *idir, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    const struct fuse_ctx *c = fuse_req_ctx(req);
    fsd_rows_format fmt;
    fuse_ino_t ino = 0;
    fsd_ifile_fh *h = NULL;
    int rc = strlen(name) > ST_NAME_MAX ? -ENAMETOOLONG : 0;
    if (rc == 0 && fsd_rows_format_from_name(name, strlen(name), &fmt) < 0)
        rc = -EINVAL; /* only .fvecs, .npy, .jsonl are batches */
    st_attr ca;
    if (rc == 0) {
        rc = st_coll_stat(d->store, idir->coll, &ca);
        if (rc == -EINVAL)
            rc = -ENOENT;
    }
    if (rc == 0 && !fsd_access_ok(req, ca.mode, ca.uid, ca.gid, W_OK))
        rc = -EACCES;
    if (rc == 0) {
        h = vc_calloc(1, sizeof *h);
        if (h == NULL || pthread_mutex_init(&h->lock, NULL) != 0) {
            free(h);
            h = NULL;
            rc = -ENOMEM;
        }
    }
    if (rc == 0)
        rc = fsd_inodes_link(d->inodes, idir->ino, name, FSD_K_IFILE, &ino);
    if (rc == 0) {
        h->h.ops = &ifile_fh_ops;
        h->ino = ino;
        snprintf(h->coll, sizeof h->coll, "%s", idir->coll);
        snprintf(h->name, sizeof h->name, "%s", name);
        h->uid = c->uid;
        h->gid = c->gid;
        h->mode = mode & 07777;
        clock_gettime(CLOCK_REALTIME, &h->created);
        pthread_mutex_lock(&d->imports->lock);
        for (fsd_ifile_fh *o = d->imports->head; o; o = o->next)
            if (strcmp(o->coll, h->coll) == 0 && strcmp(o->name, h->name) == 0)
                rc = -EEXIST;
        if (rc == 0) {
            h->next = d->imports->head;
            d->imports->head = h;
            h->listed = true;
        }
        pthread_mutex_unlock(&d->imports->lock);
    }
    if (rc < 0) {
        if (h != NULL) {
            pthread_mutex_destroy(&h->lock);
            free(h);
        }
        if (ino != 0)
            fsd_inodes_forget(d->inodes, ino, 1);
        fsd_reply_err(req, FSD_OP_CREATE, rc);
        return;
    }
    struct stat st;
    fill_stat(ino, 0, h->uid, h->gid, h->mode, &h->created, &st);
    fi->direct_io = 1;
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    e.generation = 1;
    e.attr = st;
    fsd_fh_reply_create(req, &e, fi, &h->h);
}

void fsd_ifile_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi)
{
    (void)r;
    (void)fi;
    /* An import file is private to the handle that writes it. */
    fsd_reply_err(req, FSD_OP_OPEN, EBUSY);
}

void fsd_ifile_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *in, int to_set,
                       struct fuse_file_info *fi)
{
    int rc = 0;
    struct stat st;
    fsd_fh *fh = fsd_fh_of(fi);
    fsd_ifile_fh *h = fh != NULL && fh->ops == &ifile_fh_ops ? (fsd_ifile_fh *)fh : NULL;
    if (to_set & FUSE_SET_ATTR_SIZE) {
        if (h == NULL) {
            rc = -EBUSY;
        } else {
            pthread_mutex_lock(&h->lock);
            rc = h->done ? -EBADF : vc_buf_resize(&h->buf, (size_t)in->st_size, FSD_BUF_MAX);
            atomic_store(&h->size, h->buf.len);
            pthread_mutex_unlock(&h->lock);
        }
    }
    fsd *d = fsd_of(req);
    if (rc == 0)
        rc = h != NULL ? ifile_fh_stat(d, &h->h, &st) : fsd_ifile_stat(d, r, &st);
    fsd_reply_attr(req, FSD_OP_SETATTR, rc, &st, r->ino, 0.0);
}

/* fsd_fh_ops.write: buffers the file; it is imported at close. */
static int ifile_fh_write(fsd *d, fsd_fh *fh, const char *buf, size_t size, off_t off)
{
    (void)d;
    fsd_ifile_fh *h = (fsd_ifile_fh *)fh;
    pthread_mutex_lock(&h->lock);
    int rc = h->done ? -EBADF : vc_buf_write_at(&h->buf, (size_t)off, buf, size, FSD_BUF_MAX);
    atomic_store(&h->size, h->buf.len);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* Adds the parsed rows to a store batch and commits it. */
static int import_rows(fsd *d, fsd_ifile_fh *h, const fsd_rows *b)
{
    st_batch *sb = NULL;
    int rc = st_batch_begin(d->store, h->coll, &sb);
    if (rc < 0)
        return rc;
    st_attr a;
    memset(&a, 0, sizeof a);
    a.mode = S_IFREG | (h->mode & 07777);
    a.uid = h->uid;
    a.gid = h->gid;
    /* Rows that replace a vector keep its owner and mode, as an overwrite
     * of the file does; new ones belong to the batch file's writer. */
    const unsigned mask = ST_SET_MODE | ST_SET_UID | ST_SET_GID | ST_SET_IF_NEW;
    size_t cap = 0;
    const char **keys = NULL;
    const void **vals = NULL;
    size_t *lens = NULL;
    char *xkeys = NULL; /* "user." + key, FSD_META_KEY_MAX + 6 bytes each */
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const fsd_row *row = &b->rows[i];
        atomic_store(&h->rows_done, i);
        if (row->n_meta > cap) {
            size_t nc = row->n_meta;
            const char **k2 = vc_realloc(keys, nc * sizeof *k2);
            if (k2 != NULL)
                keys = k2;
            const void **v2 = vc_realloc(vals, nc * sizeof *v2);
            if (v2 != NULL)
                vals = v2;
            size_t *l2 = vc_realloc(lens, nc * sizeof *l2);
            if (l2 != NULL)
                lens = l2;
            char *x2 = vc_realloc(xkeys, nc * (FSD_META_KEY_MAX + 6));
            if (x2 != NULL)
                xkeys = x2;
            if (k2 == NULL || v2 == NULL || l2 == NULL || x2 == NULL) {
                rc = -ENOMEM;
                break;
            }
            cap = nc;
        }
        for (size_t j = 0; j < row->n_meta; j++) {
            char *xk = xkeys + j * (FSD_META_KEY_MAX + 6);
            snprintf(xk, FSD_META_KEY_MAX + 6, "user.%s", row->meta[j].key);
            keys[j] = xk;
            vals[j] = row->meta[j].value;
            lens[j] = row->meta[j].value_len;
        }
        if (b->format == FSD_ROWS_JSONL) {
            char *content = NULL;
            size_t clen = 0;
            fsd_vformat vfmt = fsd_vformat_from_name(row->name, row->name_len);
            rc = fsd_vector_format(vfmt, row->vec, b->dim, &content, &clen);
            if (rc == 0)
                rc = st_batch_put(sb, row->name, content, clen, row->vec, b->dim, &a, mask,
                                  row->n_meta, keys, vals, lens);
            free(content);
        } else {
            rc = st_batch_put(sb, row->name, row->vec, (size_t)b->dim * sizeof(float), row->vec,
                              b->dim, &a, mask, 0, NULL, NULL, NULL);
        }
    }
    free(keys);
    free(vals);
    free(lens);
    free(xkeys);
    if (rc < 0) {
        st_batch_abort(sb);
        return rc;
    }
    atomic_store(&h->rows_done, b->n);
    atomic_store(&h->phase, PHASE_COMMITTING);
    return st_batch_commit(sb);
}

/* One audit line for an import attempt of h. */
static void audit_import(const fsd_caller *who, const fsd_ifile_fh *h, int rc)
{
    if (!fsd_audit_enabled())
        return;
    char path[ST_COLL_NAME_MAX + ST_NAME_MAX + 16];
    snprintf(path, sizeof path, "%s/.import/%s", h->coll, h->name);
    fsd_audit_caller(who, "import", path, rc, rc == 0 ? h->rows : 0);
}

/* Imports the handle's buffer once. Caller holds h->lock. */
static int import_locked(fsd *d, fsd_ifile_fh *h)
{
    assert(h != NULL);
    if (h->done)
        return 0;
    h->done = true;
    atomic_store(&h->phase, PHASE_PARSING);
    fsd_rows_format fmt;
    int rc = fsd_rows_format_from_name(h->name, strlen(h->name), &fmt);
    if (rc < 0)
        return rc;
    st_config cfg;
    rc = st_coll_config_get(d->store, h->coll, &cfg);
    if (rc < 0)
        return rc;
    fsd_rows *b = NULL;
    char why[200] = "";
    size_t stem = fsd_name_stem_len(h->name, strlen(h->name));
    rc = fsd_rows_parse(fmt, h->buf.p, h->buf.len, h->name, stem, cfg.dim, &b, why, sizeof why);
    if (rc < 0) {
        fsd_log(FSD_LOG_INFO, "import %s/.import/%s rejected: %s", h->coll, h->name,
                why[0] ? why : strerror(-rc));
        return rc == -EFBIG || rc == -E2BIG || rc == -ENAMETOOLONG || rc == -ENOMEM ? rc : -EINVAL;
    }
    h->rows = (long long)b->n;
    atomic_store(&h->rows_total, b->n);
    atomic_store(&h->phase, PHASE_STORING);
    rc = import_rows(d, h, b);
    atomic_store(&h->phase, PHASE_DONE);
    if (rc == 0) {
        fsd_metrics_inserts(b->n);
        fsd_log(FSD_LOG_DEBUG, "imported %zu rows into %s", b->n, h->coll);
    } else {
        fsd_log(FSD_LOG_INFO, "import %s/.import/%s failed: %s", h->coll, h->name, strerror(-rc));
    }
    fsd_rows_free(b);
    vc_buf_release(&h->buf);
    return rc;
}

int fsd_imports_stats(fsd *d, json_t *arr)
{
    int rc = 0;
    pthread_mutex_lock(&d->imports->lock);
    for (fsd_ifile_fh *h = d->imports->head; h != NULL && rc == 0; h = h->next) {
        int phase = atomic_load(&h->phase);
        if (phase == PHASE_DONE)
            continue;
        /* A file name that is not UTF-8 shows as null: JSON has no
         * other way to carry it. */
        json_t *o = json_pack("{s:o?, s:o?, s:s, s:I, s:I, s:I}", "collection",
                              json_string(h->coll), "file", json_string(h->name), "phase",
                              phase_names[phase], "bytes", (json_int_t)atomic_load(&h->size),
                              "rows_done", (json_int_t)atomic_load(&h->rows_done), "rows_total",
                              (json_int_t)atomic_load(&h->rows_total));
        rc = o != NULL && json_array_append_new(arr, o) == 0 ? 0 : -ENOMEM;
    }
    pthread_mutex_unlock(&d->imports->lock);
    return rc;
}

/* fsd_fh_ops.flush: the first close (or fsync) that sees data imports
 * the file; close() reports why an import failed. */
static int ifile_fh_flush(fsd *d, fsd_fh *fh, const fsd_caller *who, bool fsync, bool *quiet)
{
    (void)quiet;
    fsd_ifile_fh *h = (fsd_ifile_fh *)fh;
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    /* A flush before any write is a shell's close of the descriptor it
     * dup2()ed onto stdout; the data comes later through the copy. */
    bool had = !h->done && h->buf.len > 0;
    if (had) {
        rc = import_locked(d, h);
        audit_import(who, h, rc);
    }
    pthread_mutex_unlock(&h->lock);
    if (had) {
        /* The file is consumed: it is gone from .import/. */
        table_remove(d->imports, h);
        fsd_ref r;
        if (fsd_inodes_ref(d->inodes, h->ino, &r) == 0 && r.linked)
            fsd_inodes_unlink(d->inodes, r.parent, r.name);
    }
    if (rc == 0 && fsync)
        rc = st_store_sync(d->store);
    return rc;
}

/* fsd_fh_ops.discard: frees h without importing. */
static void ifile_fh_discard(fsd *d, fsd_fh *fh)
{
    fsd_ifile_fh *h = (fsd_ifile_fh *)fh;
    table_remove(d->imports, h);
    vc_buf_release(&h->buf);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* fsd_fh_ops.release: imports what no flush did, then frees. */
static void ifile_fh_release(fsd *d, fsd_fh *fh, const fsd_caller *who)
{
    fsd_ifile_fh *h = (fsd_ifile_fh *)fh;
    pthread_mutex_lock(&h->lock);
    if (!h->done) {
        int rc = import_locked(d, h);
        audit_import(who, h, rc);
        if (rc < 0)
            fsd_log(FSD_LOG_INFO, "import of %s at release: %s", h->name, strerror(-rc));
    }
    pthread_mutex_unlock(&h->lock);
    ifile_fh_discard(d, fh);
}

static const fsd_fh_ops ifile_fh_ops = {
    .write = ifile_fh_write,
    .flush = ifile_fh_flush,
    .stat = ifile_fh_stat,
    .release = ifile_fh_release,
    .discard = ifile_fh_discard,
};
