/*
 * ops_vec.c — vector files and `.config`: open, read, write, truncate,
 * chmod/chown/utimens, unlink, rename, and the commit on close.
 *
 * Write-buffer-then-commit (SPEC §3.1). While a vector file is open, its
 * bytes live in one fsd_vfile shared by every handle of that inode (so two
 * descriptors see each other's writes, as on any filesystem). Writes,
 * truncates and attribute changes only touch the buffer. flush (close),
 * fsync and — if neither came — the last release commit the buffer as ONE
 * store call: st_vec_put (content + parsed vector + attributes + index)
 * or, for a new file that already carries xattrs, a one-row st_batch. If
 * the content does not parse the commit fails with EINVAL and the store is
 * untouched: a new file "does not appear", an old one keeps its vector.
 *
 * Read-only handles do not share the vfile's buffer: each takes a private
 * copy of the committed content at open (a vector's from the store,
 * .config's rendered text) and is served with direct I/O, so a reader sees
 * one committed version, whole, whatever writers, imports and renames do
 * meanwhile; the page cache, shared by every handle of the inode and
 * filled by writers' write-through, never serves it. stat without a handle
 * reports the committed state too (a writer's uncommitted buffer is its
 * own until close), except for a NEW file, which has nothing committed.
 *
 * vfile states
 *   NEW     created by this mount, never committed (in_store false)
 *   CLEAN   in the store, buffer equal to it (dirty false)
 *   DIRTY   buffer or attributes changed since the last commit
 *   FAILED  DIRTY whose last commit failed (failed_err < 0): release does
 *           not retry; a new write clears it
 * NEW/DIRTY -> CLEAN on a successful commit (vf_commit). Any -> gone when
 * the last handle is released.
 *
 * Invariants
 *   1. A vfile is in d->vf_buckets iff refs > 0; refs counts open handles
 *      plus short pins taken by stat/xattr calls (protected by vf_lock).
 *   2. buf holds the whole content when loaded; reads of a loaded vfile never
 *      touch the store.
 *   3. attr.size is ignored while loaded: the size is buf.len.
 *   4. pend_mask names the attribute fields set since the last commit; they
 *      are sent with the commit so a utimens before close survives the
 *      content write (cp -p, rsync, tar set times before closing).
 *   5. The commit resolves the inode's current name at commit time, so a
 *      rename while open commits under the new name, and an unlinked file
 *      commits nothing.
 *
 * The .config file exists only while the collection's config differs from
 * the defaults (a fresh collection has none) and its name is not unlinked.
 * So `cp -a` and `tar -x`, which create every file with O_CREAT|O_EXCL in
 * a directory they just made, can create it. Its mtime is its own
 * (persisted in the collection record): now when its text changes (a
 * write, the first vector fixing dim), or what utimens sets; before the
 * commit that time waits in pend_mask like a vector's. rsync's quick check
 * (size + mtime) therefore sees a copied .config as equal and a changed
 * one as different. Its owner and mode are the collection's (chmod and
 * chown on it succeed without effect).
 *
 * Locks: vf_lock (lock 1) guards the table and refs; vf->lock (lock 2)
 * guards everything else in the vfile. Store calls happen under lock 2.
 */
#include "fsd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "audit.h"
#include "format.h"
#include "names.h"

typedef struct pxattr {
    char *key;
    char *value;
    size_t len;
} pxattr;

struct fsd_vfile {
    fsd_vfile *next;      /* protected by d->vf_lock */
    fuse_ino_t ino;       /* immutable */
    unsigned refs;        /* protected by d->vf_lock */
    bool is_config;       /* immutable */
    pthread_mutex_t lock; /* lock 2: guards the fields below */
    bool loaded;
    bool in_store;
    bool dirty;
    int failed_err;
    vc_buf buf;
    st_attr attr;
    unsigned pend_mask;
    pxattr *px; /* xattrs of a NEW file, committed with it */
    size_t npx;
    bool cfg_temp;  /* rsync's ".config.XXXXXX": applied as the config */
    bool extra_pin; /* one extra ref (and inode pin) held by the file itself:
                       made by mknod (until its first release), or an
                       applied rsync config temp (until renamed/unlinked) */
    bool want_pin;  /* take extra_pin once vf->lock is dropped (lock order) */
};

typedef struct fsd_vec_fh {
    fsd_fh h;
    fsd_vfile *vf;
    fuse_ino_t ino;
    bool writable;
    bool wrote;   /* this handle changed the buffer since its last commit */
    vc_buf snap;  /* vf NULL (a read-only open): the committed content */
    st_attr attr; /* vf NULL: its attributes (size = snap.len) */
} fsd_vec_fh;

/* ------------------------------------------------------------------ */
/* The table of open vector files                                       */
/* ------------------------------------------------------------------ */

static size_t vf_bucket(fsd *d, fuse_ino_t ino)
{
    return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 32) & (d->vf_nbuckets - 1);
}

/* Finds the vfile of ino and pins it, or NULL. */
static fsd_vfile *vf_pin(fsd *d, fuse_ino_t ino)
{
    if (ino == 0)
        return NULL;
    pthread_mutex_lock(&d->vf_lock);
    fsd_vfile *vf = d->vf_buckets[vf_bucket(d, ino)];
    while (vf != NULL && vf->ino != ino)
        vf = vf->next;
    if (vf != NULL)
        vf->refs++;
    pthread_mutex_unlock(&d->vf_lock);
    return vf;
}

/* Finds or creates the vfile of ino and pins it. *created tells which.
 * 0 or -ENOMEM. */
static int vf_attach(fsd *d, fuse_ino_t ino, bool is_config, fsd_vfile **out, bool *created)
{
    *created = false;
    fsd_vfile *fresh = NULL;
    pthread_mutex_lock(&d->vf_lock);
    size_t b = vf_bucket(d, ino);
    fsd_vfile *vf = d->vf_buckets[b];
    while (vf != NULL && vf->ino != ino)
        vf = vf->next;
    if (vf == NULL) {
        pthread_mutex_unlock(&d->vf_lock);
        fresh = calloc(1, sizeof *fresh);
        if (fresh == NULL || pthread_mutex_init(&fresh->lock, NULL) != 0) {
            free(fresh);
            return -ENOMEM;
        }
        fresh->ino = ino;
        fresh->is_config = is_config;
        pthread_mutex_lock(&d->vf_lock);
        vf = d->vf_buckets[b];
        while (vf != NULL && vf->ino != ino)
            vf = vf->next;
        if (vf == NULL) {
            vf = fresh;
            fresh = NULL;
            vf->next = d->vf_buckets[b];
            d->vf_buckets[b] = vf;
            *created = true;
        }
    }
    vf->refs++;
    pthread_mutex_unlock(&d->vf_lock);
    if (fresh != NULL) {
        pthread_mutex_destroy(&fresh->lock);
        free(fresh);
    }
    *out = vf;
    return 0;
}

static void px_free(fsd_vfile *vf)
{
    for (size_t i = 0; i < vf->npx; i++) {
        free(vf->px[i].key);
        free(vf->px[i].value);
    }
    free(vf->px);
    vf->px = NULL;
    vf->npx = 0;
}

/* ------------------------------------------------------------------ */
/* Unlinked .config files                                               */
/* ------------------------------------------------------------------ */

static bool config_hidden(fsd *d, const char *coll)
{
    bool hidden = false;
    pthread_mutex_lock(&d->cfg_lock);
    for (size_t i = 0; i < d->cfg_nhidden && !hidden; i++)
        hidden = strcmp(d->cfg_hidden[i], coll) == 0;
    pthread_mutex_unlock(&d->cfg_lock);
    return hidden;
}

bool fsd_config_visible(fsd *d, const char *coll)
{
    st_config c;
    return !config_hidden(d, coll) && st_coll_config_get(d->store, coll, &c) == 0 &&
           !st_config_is_default(&c);
}

static int config_hide(fsd *d, const char *coll)
{
    if (config_hidden(d, coll))
        return 0;
    char *copy = strdup(coll);
    if (copy == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&d->cfg_lock);
    char **n = realloc(d->cfg_hidden, (d->cfg_nhidden + 1) * sizeof *n);
    if (n != NULL) {
        d->cfg_hidden = n;
        d->cfg_hidden[d->cfg_nhidden++] = copy;
        copy = NULL;
    }
    pthread_mutex_unlock(&d->cfg_lock);
    free(copy);
    return n != NULL ? 0 : -ENOMEM;
}

static void config_unhide(fsd *d, const char *coll)
{
    pthread_mutex_lock(&d->cfg_lock);
    for (size_t i = 0; i < d->cfg_nhidden; i++) {
        if (strcmp(d->cfg_hidden[i], coll) == 0) {
            free(d->cfg_hidden[i]);
            d->cfg_hidden[i] = d->cfg_hidden[--d->cfg_nhidden];
            break;
        }
    }
    pthread_mutex_unlock(&d->cfg_lock);
}

/* Drops a pin; frees the vfile at zero. */
static void vf_unpin(fsd *d, fsd_vfile *vf)
{
    if (vf == NULL)
        return;
    bool last = false;
    pthread_mutex_lock(&d->vf_lock);
    if (--vf->refs == 0) {
        fsd_vfile **pp = &d->vf_buckets[vf_bucket(d, vf->ino)];
        while (*pp != vf)
            pp = &(*pp)->next;
        *pp = vf->next;
        last = true;
    }
    pthread_mutex_unlock(&d->vf_lock);
    if (last) {
        vc_buf_release(&vf->buf);
        px_free(vf);
        pthread_mutex_destroy(&vf->lock);
        free(vf);
    }
}

/* ------------------------------------------------------------------ */
/* Attributes                                                           */
/* ------------------------------------------------------------------ */

/* The text of coll's config into out, and the attributes of .config in
 * *attr (size not set): the collection's owner and rw bits, the text's
 * own mtime. */
static int config_text(fsd *d, const char *coll, vc_buf *out, st_attr *attr)
{
    st_config c;
    struct timespec mtime;
    int rc = st_coll_config_stat(d->store, coll, &c, &mtime);
    if (rc == 0)
        rc = st_coll_stat(d->store, coll, attr);
    if (rc < 0)
        return rc == -EINVAL ? -ENOENT : rc;
    attr->mode = S_IFREG | (attr->mode & 0666);
    attr->ino = 0;
    attr->atime = attr->mtime = attr->ctime = mtime;
    size_t len = 0;
    (void)st_config_format(&c, NULL, 0, &len);
    vc_buf_reset(out);
    rc = vc_buf_grow(out, len + 1);
    if (rc < 0)
        return rc;
    rc = st_config_format(&c, out->p, len + 1, &len);
    if (rc < 0)
        return rc;
    vc_buf_setlen(out, len);
    return 0;
}

int fsd_config_stat(fsd *d, const fsd_ref *coll, fuse_ino_t ino, struct stat *st)
{
    vc_buf text = VC_BUF_INIT;
    st_attr a;
    int rc = config_text(d, coll->coll, &text, &a);
    if (rc == 0) {
        a.size = text.len;
        fsd_attr_to_stat(&a, ino, st);
    }
    vc_buf_release(&text);
    return rc;
}

/* Stat from an open vfile; false if it holds nothing to report. Caller
 * holds vf->lock. */
static bool vf_stat_locked(fsd_vfile *vf, fuse_ino_t ino, struct stat *st)
{
    if (!vf->in_store && !vf->loaded)
        return false;
    st_attr a = vf->attr;
    if (vf->loaded)
        a.size = vf->buf.len;
    fsd_attr_to_stat(&a, ino, st);
    if (a.ino != 0)
        st->st_ino = a.ino;
    return true;
}

int fsd_vec_stat(fsd *d, fuse_ino_t ino, const char *coll, const char *name, struct stat *st)
{
    fsd_vfile *vf = vf_pin(d, ino);
    if (vf != NULL) {
        pthread_mutex_lock(&vf->lock);
        bool ok = !vf->in_store && vf_stat_locked(vf, ino, st);
        pthread_mutex_unlock(&vf->lock);
        vf_unpin(d, vf);
        if (ok)
            return 0;
    }
    st_attr a;
    int rc = st_vec_stat(d->store, coll, name, &a);
    if (rc < 0)
        return rc == -EINVAL ? -ENOENT : rc;
    fsd_attr_to_stat(&a, ino, st);
    return 0;
}

int fsd_vec_fh_stat(fsd *d, fsd_fh *fh, struct stat *st)
{
    (void)d;
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    if (h->vf == NULL) {
        st_attr a = h->attr;
        a.size = h->snap.len;
        fsd_attr_to_stat(&a, h->ino, st);
        if (a.ino != 0)
            st->st_ino = a.ino;
        return 0;
    }
    pthread_mutex_lock(&h->vf->lock);
    bool ok = vf_stat_locked(h->vf, h->ino, st);
    pthread_mutex_unlock(&h->vf->lock);
    return ok ? 0 : -ENOENT;
}

/* ------------------------------------------------------------------ */
/* Loading and committing                                               */
/* ------------------------------------------------------------------ */

/* Loads the stored content into an in-store vfile. Caller holds vf->lock. */
static int vf_load_locked(fsd *d, fsd_vfile *vf, const fsd_ref *r)
{
    if (vf->loaded)
        return 0;
    if (vf->is_config) {
        int rc = config_text(d, r->coll, &vf->buf, &vf->attr);
        if (rc < 0)
            return rc;
        vf->loaded = true;
        vf->in_store = true;
        return 0;
    }
    void *data = NULL;
    size_t len = 0;
    st_attr a;
    int rc = st_vec_get(d->store, r->coll, r->name, &data, &len, &a);
    if (rc < 0)
        return rc == -EINVAL ? -ENOENT : rc;
    vc_buf_reset(&vf->buf);
    rc = vc_buf_append(&vf->buf, data, len);
    free(data);
    if (rc < 0)
        return rc;
    vf->attr = a;
    vf->loaded = true;
    vf->in_store = true;
    return 0;
}

/* Commits a config buffer. Caller holds vf->lock. */
static int commit_config(fsd *d, fsd_vfile *vf, const fsd_ref *r)
{
    st_config base, next;
    int rc = st_coll_config_get(d->store, r->coll, &base);
    if (rc < 0)
        return rc;
    char why[200] = "";
    rc = st_config_parse(vf->buf.p ? vf->buf.p : "", vf->buf.len, &base, &next, why, sizeof why);
    /* A utimens since the last write gives the text its time (cp -a, tar
     * and rsync restore the mtime before they close). */
    if (rc == 0)
        rc = st_coll_config_set(d->store, r->coll, &next,
                                (vf->pend_mask & ST_SET_MTIME) ? &vf->attr.mtime : NULL);
    if (rc < 0) {
        fsd_log(FSD_LOG_DEBUG, "%s/.config rejected: %s", r->coll, why[0] ? why : strerror(-rc));
        return rc;
    }
    config_unhide(d, r->coll);
    /* The buffer keeps what was written (a writer may still be writing at
     * its own offsets); the next open shows the effective config. */
    return 0;
}

/* The part of a file name that chooses its format. rsync writes
 * ".<name>.XXXXXX" (".<name>" itself when name starts with a dot; six
 * random letters and digits) and renames it to <name> afterwards; the
 * content is already in <name>'s format, so the temporary name is judged
 * without its random tail. Any other name is its own. */
static void format_name(const char *name, const char **out, size_t *len)
{
    size_t n = strlen(name);
    *out = name;
    *len = n;
    if (n < 9 || name[0] != '.' || name[n - 7] != '.')
        return;
    for (size_t i = n - 6; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return;
    }
    *len = n - 7;
}

/* true when two names choose the same vector format (SPEC §3.1: .f32,
 * .json, text). rsync's temporary names count as their real name, so
 * `.a.json.Xy12Ab` -> `a.json` is a same-format rename. */
static bool same_format(const char *a, const char *b)
{
    const char *fa, *fb;
    size_t la, lb;
    format_name(a, &fa, &la);
    format_name(b, &fb, &lb);
    return fsd_vformat_from_name(fa, la) == fsd_vformat_from_name(fb, lb);
}

/* Commits a vector buffer. Caller holds vf->lock. */
static int commit_vector(fsd *d, fsd_vfile *vf, const fsd_ref *r)
{
    st_config cfg;
    int rc = st_coll_config_get(d->store, r->coll, &cfg);
    if (rc < 0)
        return rc == -EINVAL ? -ENOENT : rc;
    float *vec = NULL;
    uint32_t dim = 0;
    const char *fname;
    size_t flen;
    format_name(r->name, &fname, &flen);
    fsd_vformat fmt = fsd_vformat_from_name(fname, flen);
    rc = fsd_vector_parse(fmt, vf->buf.p, vf->buf.len, cfg.dim, &vec, &dim);
    if (rc < 0)
        return rc; /* -EINVAL bad content, -EFBIG more than FSD_MAX_DIM numbers */
    unsigned mask = vf->pend_mask;
    if (!vf->in_store)
        mask |= ST_SET_MODE | ST_SET_UID | ST_SET_GID;
    if (vf->npx > 0 && !vf->in_store) {
        st_batch *b = NULL;
        rc = st_batch_begin(d->store, r->coll, &b);
        if (rc == 0) {
            const char **keys = calloc(vf->npx, sizeof *keys);
            const void **vals = calloc(vf->npx, sizeof *vals);
            size_t *lens = calloc(vf->npx, sizeof *lens);
            if (keys == NULL || vals == NULL || lens == NULL) {
                rc = -ENOMEM;
            } else {
                for (size_t i = 0; i < vf->npx; i++) {
                    keys[i] = vf->px[i].key;
                    vals[i] = vf->px[i].value;
                    lens[i] = vf->px[i].len;
                }
                rc = st_batch_put(b, r->name, vf->buf.p, vf->buf.len, vec, dim, &vf->attr, mask,
                                  vf->npx, (const char *const *)keys, (const void *const *)vals,
                                  lens);
            }
            free(keys);
            free(vals);
            free(lens);
            if (rc == 0) {
                rc = st_batch_commit(b);
                b = NULL;
            }
            st_batch_abort(b);
        }
    } else {
        rc = st_vec_put(d->store, r->coll, r->name, vf->buf.p, vf->buf.len, vec, dim, &vf->attr,
                        mask);
    }
    free(vec);
    if (rc < 0)
        return rc;
    fsd_metrics_inserts(1);
    px_free(vf);
    st_attr a;
    if (st_vec_stat(d->store, r->coll, r->name, &a) == 0)
        vf->attr = a;
    return 0;
}

/* Commits vf if dirty. Caller holds vf->lock. 0 or a negative errno. */
static int vf_commit_locked(fsd *d, fsd_vfile *vf)
{
    if (!vf->dirty)
        return 0;
    fsd_ref r;
    int rc = fsd_inodes_ref(d->inodes, vf->ino, &r);
    if (rc < 0 || !r.linked) {
        /* Unlinked while open: its content goes with it. */
        vf->dirty = false;
        vf->failed_err = 0;
        return 0;
    }
    const char *fname;
    size_t flen;
    format_name(r.name, &fname, &flen);
    if (!vf->is_config && flen == 7 && memcmp(fname, ".config", 7) == 0) {
        /* rsync's temporary copy of .config: apply it now; the rename onto
         * .config that follows only drops the temporary name. */
        rc = commit_config(d, vf, &r);
        if (rc < 0) {
            vf->failed_err = rc;
            return rc;
        }
        if (!vf->cfg_temp && !vf->extra_pin)
            vf->want_pin = true; /* rsync stats and renames it after close */
        vf->cfg_temp = true;
        vf->dirty = false;
        vf->failed_err = 0;
        return 0;
    }
    rc = vf->is_config ? commit_config(d, vf, &r) : commit_vector(d, vf, &r);
    if (rc < 0) {
        vf->failed_err = rc;
        return rc;
    }
    vf->dirty = false;
    vf->failed_err = 0;
    vf->in_store = true;
    vf->pend_mask = 0;
    return 0;
}

/* Takes the extra pin a commit asked for (vf->want_pin); called without
 * vf->lock because the pin takes lock 1. */
static void vf_take_wanted_pin(fsd *d, fsd_vfile *vf)
{
    pthread_mutex_lock(&vf->lock);
    bool want = vf->want_pin;
    vf->want_pin = false;
    if (want)
        vf->extra_pin = true;
    pthread_mutex_unlock(&vf->lock);
    if (!want)
        return;
    pthread_mutex_lock(&d->vf_lock);
    vf->refs++;
    pthread_mutex_unlock(&d->vf_lock);
    (void)fsd_inodes_pin(d->inodes, vf->ino);
}

/* ------------------------------------------------------------------ */
/* Open, create                                                         */
/* ------------------------------------------------------------------ */

static int fh_new(fsd_vfile *vf, fuse_ino_t ino, int flags, fsd_vec_fh **out)
{
    fsd_vec_fh *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    h->h.type = FSD_FH_VEC;
    h->vf = vf;
    h->ino = ino;
    h->writable = (flags & O_ACCMODE) != O_RDONLY;
    h->snap = (vc_buf)VC_BUF_INIT;
    *out = h;
    return 0;
}

static void fh_free(fsd_vec_fh *h)
{
    if (h == NULL)
        return;
    vc_buf_release(&h->snap);
    free(h);
}

/* Fills a read-only handle's private copy of the committed content. A
 * file still being created has none: -ENOENT (it appears at its commit). */
static int fh_snapshot(fsd *d, const fsd_ref *r, fsd_vec_fh *h)
{
    if (r->kind == FSD_K_CONFIG)
        return config_text(d, r->coll, &h->snap, &h->attr);
    void *data = NULL;
    size_t len = 0;
    int rc = st_vec_get(d->store, r->coll, r->name, &data, &len, &h->attr);
    if (rc < 0)
        return rc == -EINVAL ? -ENOENT : rc;
    rc = vc_buf_append(&h->snap, data, len);
    free(data);
    return rc;
}

void fsd_vec_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    fsd_vfile *vf = NULL;
    fsd_vec_fh *h = NULL;
    bool created;
    bool pinned = false;
    int rc = fsd_inodes_pin(d->inodes, r->ino);
    if (rc < 0)
        goto fail;
    pinned = true;
    if ((fi->flags & O_ACCMODE) == O_RDONLY) {
        /* No vfile: the handle reads its own copy (see the top). */
        rc = fh_new(NULL, r->ino, fi->flags, &h);
        if (rc == 0)
            rc = fh_snapshot(d, r, h);
        if (rc < 0)
            goto fail;
        fi->direct_io = 1;
        goto opened;
    }
    rc = vf_attach(d, r->ino, r->kind == FSD_K_CONFIG, &vf, &created);
    if (rc < 0)
        goto fail;
    pthread_mutex_lock(&vf->lock);
    bool trunc = (fi->flags & O_TRUNC) != 0;
    if (!vf->loaded && trunc && !vf->is_config) {
        /* O_TRUNC: attributes are enough, the old bytes are not needed. */
        st_attr a;
        rc = st_vec_stat(d->store, r->coll, r->name, &a);
        if (rc == 0) {
            vf->attr = a;
            vf->in_store = true;
            vf->loaded = true;
        }
    } else if (!vf->loaded) {
        rc = vf_load_locked(d, vf, r);
    }
    if (rc == 0 && trunc) {
        vc_buf_reset(&vf->buf);
        vf->loaded = true;
        vf->dirty = true;
        vf->failed_err = 0;
    }
    pthread_mutex_unlock(&vf->lock);
    if (rc == 0)
        rc = fh_new(vf, r->ino, fi->flags, &h);
    if (rc < 0)
        goto fail;
    if (trunc)
        h->wrote = true;
    fi->direct_io = 0;
opened:
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->keep_cache = 0;
    fsd_fh_track(d, &h->h);
    if (fuse_reply_open(req, fi) == -ENOENT) {
        /* The opener was interrupted: undo. */
        fsd_fh_untrack(d, &h->h);
        fh_free(h);
        vf_unpin(d, vf);
        fsd_inodes_unpin(d->inodes, r->ino);
    }
    return;
fail:
    fh_free(h);
    vf_unpin(d, vf);
    if (pinned)
        fsd_inodes_unpin(d->inodes, r->ino);
    fsd_reply_err(req, FSD_OP_OPEN, rc == -EINVAL ? ENOENT : rc);
}

void fsd_vec_create(fuse_req_t req, const fsd_ref *p, const char *name, mode_t mode,
                    struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    fsd_caller c;
    fsd_caller_get(req, &c);
    /* .config can be created while it does not exist (all defaults, or
     * unlinked: tar removes a file before extracting it); the file then
     * holds the new config text. */
    bool is_cfg = strcmp(name, ".config") == 0 && !fsd_config_visible(d, p->coll);
    int rc = is_cfg ? 0 : fsd_vecname_check(name, strlen(name));
    if (rc < 0) {
        if (fsd_name_is_reserved(name, strlen(name)))
            rc = strcmp(name, ".config") == 0 ? -EEXIST : -EPERM;
        fsd_reply_err(req, FSD_OP_CREATE, rc);
        return;
    }
    st_attr ca;
    rc = st_coll_stat(d->store, p->coll, &ca);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_CREATE, rc == -EINVAL ? ENOENT : rc);
        return;
    }
    st_attr existing;
    bool exists = !is_cfg && st_vec_stat(d->store, p->coll, name, &existing) == 0;
    if (exists && (fi->flags & O_EXCL)) {
        fsd_reply_err(req, FSD_OP_CREATE, EEXIST);
        return;
    }
    fuse_ino_t ino = 0;
    fsd_vfile *vf = NULL;
    fsd_vec_fh *h = NULL;
    bool created = false, pinned = false;
    rc = fsd_inodes_link(d->inodes, p->ino, name, is_cfg ? FSD_K_CONFIG : FSD_K_VEC, &ino);
    if (rc < 0)
        goto fail;
    rc = fsd_inodes_pin(d->inodes, ino);
    if (rc < 0)
        goto fail;
    pinned = true;
    rc = vf_attach(d, ino, is_cfg, &vf, &created);
    if (rc < 0)
        goto fail;
    pthread_mutex_lock(&vf->lock);
    if (is_cfg) {
        rc = config_text(d, p->coll, &vf->buf, &vf->attr);
        if (rc == 0) {
            vc_buf_reset(&vf->buf);
            vf->loaded = true;
            vf->in_store = true;
            vf->dirty = true;
        }
    } else if (exists && !vf->loaded) {
        /* Raced with a create of an existing name: behave like open. */
        vf->attr = existing;
        vf->in_store = true;
        if (fi->flags & O_TRUNC) {
            vc_buf_reset(&vf->buf);
            vf->loaded = true;
            vf->dirty = true;
        } else {
            fsd_ref r = *p;
            snprintf(r.name, sizeof r.name, "%s", name);
            rc = vf_load_locked(d, vf, &r);
        }
    } else if (!exists && !vf->loaded) {
        memset(&vf->attr, 0, sizeof vf->attr);
        vf->attr.mode = S_IFREG | (mode & 07777);
        vf->attr.uid = c.uid;
        vf->attr.gid = c.gid;
        clock_gettime(CLOCK_REALTIME, &vf->attr.mtime);
        vf->attr.atime = vf->attr.ctime = vf->attr.mtime;
        vf->in_store = false;
        vf->loaded = true;
        vf->dirty = true;
        vf->failed_err = 0;
        vc_buf_reset(&vf->buf);
    } else if (fi->flags & O_TRUNC) {
        vc_buf_reset(&vf->buf);
        vf->dirty = true;
    }
    struct stat st;
    if (rc == 0 && !vf_stat_locked(vf, ino, &st))
        rc = -ENOENT;
    pthread_mutex_unlock(&vf->lock);
    if (rc == 0)
        rc = fh_new(vf, ino, fi->flags, &h);
    if (rc < 0)
        goto fail;
    h->wrote = true;
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->keep_cache = 0;
    fi->direct_io = 0;
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    e.generation = 1;
    e.attr = st;
    e.attr_timeout = FSD_TTL_FILE;
    e.entry_timeout = FSD_TTL_FILE;
    fsd_fh_track(d, &h->h);
    if (fuse_reply_create(req, &e, fi) == -ENOENT) {
        fsd_fh_untrack(d, &h->h);
        fh_free(h);
        vf_unpin(d, vf);
        fsd_inodes_unpin(d->inodes, ino);
        fsd_inodes_forget(d->inodes, ino, 1);
    }
    return;
fail:
    fh_free(h);
    vf_unpin(d, vf);
    if (pinned)
        fsd_inodes_unpin(d->inodes, ino);
    if (ino != 0)
        fsd_inodes_forget(d->inodes, ino, 1);
    fsd_reply_err(req, FSD_OP_CREATE, rc);
}

/* ------------------------------------------------------------------ */
/* Read, write, flush, release                                          */
/* ------------------------------------------------------------------ */

void fsd_vec_read(fuse_req_t req, fsd_fh *fh, size_t size, off_t off)
{
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fsd_vfile *vf = h->vf;
    /* A read-only handle's snap never changes, but it is freed by release,
     * which the kernel may send as soon as it has this reply's bytes, while
     * fuse_reply_buf has not returned yet: reply from a copy either way. */
    const vc_buf *src = vf != NULL ? &vf->buf : &h->snap;
    char *copy = NULL;
    size_t n = 0;
    if (vf != NULL)
        pthread_mutex_lock(&vf->lock);
    if ((uint64_t)off < src->len) {
        n = src->len - (size_t)off;
        if (n > size)
            n = size;
        copy = malloc(n);
        if (copy != NULL)
            memcpy(copy, src->p + off, n);
    }
    if (vf != NULL)
        pthread_mutex_unlock(&vf->lock);
    if (n > 0 && copy == NULL) {
        fsd_reply_err(req, FSD_OP_READ, ENOMEM);
        return;
    }
    fuse_reply_buf(req, copy, n);
    free(copy);
}

void fsd_vec_write(fuse_req_t req, fsd_fh *fh, const char *buf, size_t size, off_t off)
{
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fsd_vfile *vf = h->vf;
    if (!h->writable) {
        fsd_reply_err(req, FSD_OP_WRITE, EBADF);
        return;
    }
    size_t max = vf->is_config ? 65536 : ST_CONTENT_MAX;
    pthread_mutex_lock(&vf->lock);
    int rc = vc_buf_write_at(&vf->buf, (size_t)off, buf, size, max);
    if (rc == 0) {
        vf->dirty = true;
        vf->failed_err = 0;
        h->wrote = true;
        vf->pend_mask &= ~(unsigned)(ST_SET_MTIME | ST_SET_CTIME);
        clock_gettime(CLOCK_REALTIME, &vf->attr.mtime);
        vf->attr.ctime = vf->attr.mtime;
    }
    pthread_mutex_unlock(&vf->lock);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_WRITE, rc);
        return;
    }
    fuse_reply_write(req, size);
}

/* One audit line for a commit of a vector file or .config. */
static void audit_commit(fuse_req_t req, fsd *d, fuse_ino_t ino, int rc)
{
    if (!fsd_audit_enabled())
        return;
    fsd_ref r;
    if (fsd_inodes_ref(d->inodes, ino, &r) < 0)
        return;
    char path[FSD_COLL_NAME_MAX + FSD_NAME_MAX + 2];
    snprintf(path, sizeof path, "%s/%s", r.coll, r.name);
    const struct fuse_ctx *c = fuse_req_ctx(req);
    fsd_audit_log(c->uid, c->gid, c->pid, "write", path, NULL, rc, -1);
}

void fsd_vec_flush(fuse_req_t req, fsd_fh *fh, bool datasync, fsd_op op)
{
    (void)datasync;
    fsd *d = fsd_of(req);
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fsd_vfile *vf = h->vf;
    int rc = 0;
    bool committed = false;
    if (vf == NULL) { /* a read-only handle: nothing to commit */
        fsd_reply_err(req, op, op == FSD_OP_FSYNC ? st_store_sync(d->store) : 0);
        return;
    }
    pthread_mutex_lock(&vf->lock);
    if (op == FSD_OP_FLUSH && h->writable && vf->dirty && !vf->is_config && vf->buf.len == 0) {
        /* Empty content never parses, so nothing is committed. A shell
         * running `echo x > v` closes its first descriptor of the new file
         * before writing through the dup'ed one: that close sees EINVAL
         * (the verdict on the bytes so far; shells ignore it) but is no
         * failed commit, so it is neither audited nor counted. The release
         * does not retry; the next write clears the verdict. */
        vf->failed_err = -EINVAL;
        pthread_mutex_unlock(&vf->lock);
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (h->writable && (h->wrote || vf->dirty)) {
        committed = vf->dirty;
        if (vf->dirty && vf->failed_err < 0 && !h->wrote)
            rc = vf->failed_err; /* another handle's content failed: report it */
        else
            rc = vf_commit_locked(d, vf);
        if (rc == 0)
            h->wrote = false;
    }
    pthread_mutex_unlock(&vf->lock);
    vf_take_wanted_pin(d, vf);
    if (committed)
        audit_commit(req, d, h->ino, rc);
    if (rc == 0 && op == FSD_OP_FSYNC)
        rc = st_store_sync(d->store);
    fsd_reply_err(req, op, rc);
}

void fsd_vec_fh_discard(fsd *d, fsd_fh *fh)
{
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fuse_ino_t ino = h->ino;
    fsd_vfile *vf = h->vf;
    fh_free(h);
    vf_unpin(d, vf);
    fsd_inodes_unpin(d->inodes, ino);
}

void fsd_vfiles_discard(fsd *d)
{
    for (size_t b = 0; b < d->vf_nbuckets; b++) {
        fsd_vfile *vf = d->vf_buckets[b];
        while (vf != NULL) {
            fsd_vfile *next = vf->next;
            vc_buf_release(&vf->buf);
            px_free(vf);
            pthread_mutex_destroy(&vf->lock);
            free(vf);
            vf = next;
        }
        d->vf_buckets[b] = NULL;
    }
}

void fsd_vec_release(fuse_req_t req, fsd_fh *fh)
{
    fsd *d = fsd_of(req);
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fsd_vfile *vf = h->vf;
    fsd_fh_untrack(d, fh);
    if (vf == NULL) {
        fsd_inodes_unpin(d->inodes, h->ino);
        fh_free(h);
        fuse_reply_err(req, 0);
        return;
    }
    pthread_mutex_lock(&vf->lock);
    if (h->writable && h->wrote && vf->dirty && vf->failed_err == 0) {
        int rc = vf_commit_locked(d, vf);
        audit_commit(req, d, h->ino, rc);
        if (rc < 0)
            fsd_log(FSD_LOG_DEBUG, "commit at release of inode %llu: %s",
                    (unsigned long long)h->ino, strerror(-rc));
    }
    bool drop = vf->extra_pin && !vf->cfg_temp;
    if (drop)
        vf->extra_pin = false;
    pthread_mutex_unlock(&vf->lock);
    vf_take_wanted_pin(d, vf);
    fuse_ino_t ino = h->ino;
    fh_free(h);
    if (drop) {
        vf_unpin(d, vf);
        fsd_inodes_unpin(d->inodes, ino);
    }
    vf_unpin(d, vf);
    fsd_inodes_unpin(d->inodes, ino);
    fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------------ */
/* setattr, unlink, rename                                              */
/* ------------------------------------------------------------------ */

void fsd_vec_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *in, int to_set,
                     struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    st_attr a;
    unsigned mask = fsd_setattr_mask(in, to_set, &a);
    bool truncate = (to_set & FUSE_SET_ATTR_SIZE) != 0;
    struct stat st;
    int rc = 0;
    fsd_vfile *vf = NULL;
    bool temp = false;
    (void)fi;

    /* .config's owner and mode are its collection's: chmod and chown on it
     * succeed without effect, so cp -a, rsync and tar can restore it. Its
     * mtime is its own (see the top). */
    vf = vf_pin(d, r->ino);
    if (vf == NULL && truncate) {
        /* truncate(2) by path: load, cut, commit as one transaction. */
        bool created;
        rc = vf_attach(d, r->ino, r->kind == FSD_K_CONFIG, &vf, &created);
        if (rc < 0)
            goto reply;
        temp = true;
    }
    if (vf != NULL) {
        pthread_mutex_lock(&vf->lock);
        if (!vf->loaded)
            rc = vf_load_locked(d, vf, r);
        if (rc == 0 && truncate) {
            if ((uint64_t)in->st_size > (vf->is_config ? 65536u : ST_CONTENT_MAX))
                rc = -EFBIG;
            else
                rc = vc_buf_resize(&vf->buf, (size_t)in->st_size, FSD_BUF_MAX);
            if (rc == 0) {
                vf->dirty = true;
                vf->failed_err = 0;
                clock_gettime(CLOCK_REALTIME, &vf->attr.mtime);
                vf->attr.ctime = vf->attr.mtime;
                vf->pend_mask &= ~(unsigned)(ST_SET_MTIME | ST_SET_CTIME);
            }
        }
        if (rc == 0 && (mask & ST_SET_MTIME) && vf->is_config) {
            vf->attr.mtime = a.mtime;
            if (vf->dirty)
                vf->pend_mask |= ST_SET_MTIME; /* for the commit */
            else
                rc = st_coll_config_touch(d->store, r->coll, &a.mtime);
        }
        if (rc == 0 && mask != 0 && !vf->is_config) {
            if (mask & ST_SET_MODE)
                vf->attr.mode = S_IFREG | a.mode;
            if (mask & ST_SET_UID)
                vf->attr.uid = a.uid;
            if (mask & ST_SET_GID)
                vf->attr.gid = a.gid;
            if (mask & ST_SET_ATIME)
                vf->attr.atime = a.atime;
            if (mask & ST_SET_MTIME)
                vf->attr.mtime = a.mtime;
            if (mask & ST_SET_CTIME)
                vf->attr.ctime = a.ctime;
            else
                clock_gettime(CLOCK_REALTIME, &vf->attr.ctime);
            if (vf->dirty || !vf->in_store)
                vf->pend_mask |= mask;
            if (vf->in_store)
                rc = st_vec_setattr(d->store, r->coll, r->name, &a, mask);
        }
        if (rc == 0 && temp)
            rc = vf_commit_locked(d, vf);
        if (rc == 0 && !vf_stat_locked(vf, r->ino, &st))
            rc = -ENOENT;
        pthread_mutex_unlock(&vf->lock);
        vf_unpin(d, vf);
        goto reply;
    }
    if (r->kind == FSD_K_CONFIG) {
        fsd_ref c;
        rc = fsd_inodes_ref(d->inodes, r->coll_ino, &c);
        if (rc == 0 && (mask & ST_SET_MTIME))
            rc = st_coll_config_touch(d->store, c.coll, &a.mtime);
        if (rc == 0)
            rc = fsd_config_stat(d, &c, r->ino, &st);
        goto reply;
    }
    if (mask != 0)
        rc = st_vec_setattr(d->store, r->coll, r->name, &a, mask);
    if (rc == 0)
        rc = fsd_vec_stat(d, 0, r->coll, r->name, &st);
reply:
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_SETATTR, rc == -EINVAL && !truncate ? ENOENT : rc);
        return;
    }
    st.st_ino = r->ino;
    fuse_reply_attr(req, &st, FSD_TTL_FILE);
}

void fsd_vec_unlink(fuse_req_t req, const fsd_ref *p, const char *name)
{
    fsd *d = fsd_of(req);
    if (strcmp(name, ".config") == 0) {
        /* The config stays in force; the name disappears until .config is
         * written again (tar unlinks before it extracts). */
        int rc = fsd_config_visible(d, p->coll) ? config_hide(d, p->coll) : -ENOENT;
        if (rc == 0)
            fsd_inodes_unlink(d->inodes, p->ino, name);
        fsd_reply_err(req, FSD_OP_UNLINK, rc);
        return;
    }
    if (fsd_name_is_reserved(name, strlen(name))) {
        fsd_reply_err(req, FSD_OP_UNLINK, EPERM);
        return;
    }
    int rc = st_vec_delete(d->store, p->coll, name);
    fuse_ino_t ino = fsd_inodes_find(d->inodes, p->ino, name);
    if (rc == -ENOENT && ino != 0) {
        /* A file created here and not committed yet is still a file. */
        fsd_vfile *vf = vf_pin(d, ino);
        if (vf != NULL) {
            bool drop = false;
            pthread_mutex_lock(&vf->lock);
            if (!vf->in_store) {
                rc = 0;
                drop = vf->extra_pin;
                vf->extra_pin = false;
            }
            pthread_mutex_unlock(&vf->lock);
            if (drop) {
                vf_unpin(d, vf);
                fsd_inodes_unpin(d->inodes, ino);
            }
            vf_unpin(d, vf);
        }
    }
    if (rc == -EINVAL)
        rc = -ENOENT;
    if (rc == 0)
        fsd_inodes_unlink(d->inodes, p->ino, name);
    fsd_reply_err(req, FSD_OP_UNLINK, rc);
}

void fsd_vec_rename(fuse_req_t req, const fsd_ref *p, const char *name, const char *newname,
                    unsigned flags)
{
    fsd *d = fsd_of(req);
    int rc = fsd_vecname_check(newname, strlen(newname));
    if (strcmp(newname, ".config") == 0) {
        /* Only rsync's temporary config, already applied, may land here. */
        fuse_ino_t ino = fsd_inodes_find(d->inodes, p->ino, name);
        fsd_vfile *vf = vf_pin(d, ino);
        rc = -EINVAL; /* a vector cannot become the config */
        bool drop = false;
        if (vf != NULL) {
            pthread_mutex_lock(&vf->lock);
            if (vf->cfg_temp && !vf->dirty) {
                /* rsync set the temporary's times after its close. */
                rc = (vf->pend_mask & ST_SET_MTIME)
                         ? st_coll_config_touch(d->store, p->coll, &vf->attr.mtime)
                         : 0;
                drop = rc == 0 && vf->extra_pin;
                if (drop)
                    vf->extra_pin = false;
            }
            pthread_mutex_unlock(&vf->lock);
            if (drop) {
                vf_unpin(d, vf);
                fsd_inodes_unpin(d->inodes, ino);
            }
            vf_unpin(d, vf);
        }
        if (rc == 0) {
            fsd_inodes_unlink(d->inodes, p->ino, name);
            config_unhide(d, p->coll);
        }
        fsd_reply_err(req, FSD_OP_RENAME, rc);
        return;
    }
    if (fsd_name_is_reserved(newname, strlen(newname)))
        rc = -EINVAL; /* .query and .import are not vector names */
    if (fsd_name_is_reserved(name, strlen(name)))
        rc = -EPERM;
    if (rc == 0 && !same_format(name, newname))
        rc = -EINVAL; /* the bytes are in the old name's format */
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_RENAME, rc);
        return;
    }
    rc = st_vec_rename(d->store, p->coll, name, newname,
                       (flags & RENAME_NOREPLACE) ? ST_RENAME_NOREPLACE : 0);
    if (rc == -ENOENT) {
        /* The source may be a new file still being written. */
        fuse_ino_t ino = fsd_inodes_find(d->inodes, p->ino, name);
        fsd_vfile *vf = vf_pin(d, ino);
        if (vf != NULL) {
            pthread_mutex_lock(&vf->lock);
            bool pending = !vf->in_store;
            pthread_mutex_unlock(&vf->lock);
            vf_unpin(d, vf);
            if (pending) {
                st_attr t;
                if ((flags & RENAME_NOREPLACE) && st_vec_stat(d->store, p->coll, newname, &t) == 0)
                    rc = -EEXIST;
                else
                    rc = st_vec_delete(d->store, p->coll, newname);
                if (rc == -ENOENT)
                    rc = 0;
            }
        }
    }
    if (rc == 0 && strcmp(name, newname) != 0)
        (void)fsd_inodes_rename(d->inodes, p->ino, name, p->ino, newname);
    fsd_reply_err(req, FSD_OP_RENAME, rc == -EINVAL ? ENOENT : rc);
}

void fsd_vec_mknod(fuse_req_t req, const fsd_ref *p, const char *name, mode_t mode)
{
    fsd *d = fsd_of(req);
    fsd_caller c;
    fsd_caller_get(req, &c);
    int rc = fsd_vecname_check(name, strlen(name));
    if (rc < 0) {
        if (fsd_name_is_reserved(name, strlen(name)))
            rc = strcmp(name, ".config") == 0 ? -EEXIST : -EPERM;
        fsd_reply_err(req, FSD_OP_MKNOD, rc);
        return;
    }
    st_attr a;
    rc = st_coll_stat(d->store, p->coll, &a);
    if (rc == 0 && st_vec_stat(d->store, p->coll, name, &a) == 0)
        rc = -EEXIST;
    fuse_ino_t ino = 0;
    fsd_vfile *vf = NULL;
    bool created = false, pinned = false;
    struct stat st;
    if (rc == 0)
        rc = fsd_inodes_link(d->inodes, p->ino, name, FSD_K_VEC, &ino);
    if (rc == 0 && (rc = fsd_inodes_pin(d->inodes, ino)) == 0)
        pinned = true;
    if (rc == 0)
        rc = vf_attach(d, ino, false, &vf, &created);
    if (rc < 0)
        goto fail;
    pthread_mutex_lock(&vf->lock);
    if (vf->loaded) {
        rc = -EEXIST; /* someone is writing this name right now */
    } else {
        memset(&vf->attr, 0, sizeof vf->attr);
        vf->attr.mode = S_IFREG | (mode & 07777);
        vf->attr.uid = c.uid;
        vf->attr.gid = c.gid;
        clock_gettime(CLOCK_REALTIME, &vf->attr.mtime);
        vf->attr.atime = vf->attr.ctime = vf->attr.mtime;
        vf->loaded = true;
        vf->dirty = true;
        vf->extra_pin = true; /* keeps vf and the inode until the first release */
        (void)vf_stat_locked(vf, ino, &st);
    }
    pthread_mutex_unlock(&vf->lock);
    if (rc < 0)
        goto fail;
    fsd_reply_entry(req, ino, &st, FSD_TTL_FILE);
    return;
fail:
    vf_unpin(d, vf);
    if (pinned)
        fsd_inodes_unpin(d->inodes, ino);
    if (ino != 0)
        fsd_inodes_forget(d->inodes, ino, 1);
    fsd_reply_err(req, FSD_OP_MKNOD, rc == -EINVAL ? ENOENT : rc);
}

/* ------------------------------------------------------------------ */
/* Pending xattrs of new files                                          */
/* ------------------------------------------------------------------ */

int fsd_vfile_xattr(fsd *d, fuse_ino_t ino, int op, const char *xname, const void *value,
                    size_t size, int flags, void *out, size_t cap, int *rc)
{
    fsd_vfile *vf = vf_pin(d, ino);
    if (vf == NULL)
        return 0;
    int took = 1;
    pthread_mutex_lock(&vf->lock);
    if (vf->in_store) {
        took = 0;
        goto out;
    }
    size_t i = 0;
    if (xname != NULL)
        for (i = 0; i < vf->npx && strcmp(vf->px[i].key, xname) != 0; i++)
            ;
    bool found = xname != NULL && i < vf->npx;
    switch (op) {
    case FSD_XOP_SET: {
        if (found && (flags & XATTR_CREATE)) {
            *rc = -EEXIST;
            break;
        }
        if (!found && (flags & XATTR_REPLACE)) {
            *rc = -ENODATA;
            break;
        }
        char *v = malloc(size + 1);
        if (v == NULL) {
            *rc = -ENOMEM;
            break;
        }
        if (size)
            memcpy(v, value, size);
        v[size] = '\0';
        if (!found) {
            pxattr *np = realloc(vf->px, (vf->npx + 1) * sizeof *np);
            char *k = strdup(xname);
            if (np == NULL || k == NULL) {
                if (np != NULL)
                    vf->px = np;
                free(k);
                free(v);
                *rc = -ENOMEM;
                break;
            }
            vf->px = np;
            vf->px[vf->npx].key = k;
            vf->px[vf->npx].value = NULL;
            i = vf->npx++;
        }
        free(vf->px[i].value);
        vf->px[i].value = v;
        vf->px[i].len = size;
        *rc = 0;
        break;
    }
    case FSD_XOP_GET:
        if (!found)
            *rc = -ENODATA;
        else if (cap == 0)
            *rc = (int)vf->px[i].len;
        else if (cap < vf->px[i].len)
            *rc = -ERANGE;
        else {
            memcpy(out, vf->px[i].value, vf->px[i].len);
            *rc = (int)vf->px[i].len;
        }
        break;
    case FSD_XOP_LIST: {
        size_t total = 0;
        for (size_t j = 0; j < vf->npx; j++)
            total += strlen(vf->px[j].key) + 1;
        if (cap == 0) {
            *rc = (int)total;
        } else if (cap < total) {
            *rc = -ERANGE;
        } else {
            size_t off = 0;
            for (size_t j = 0; j < vf->npx; j++) {
                size_t kl = strlen(vf->px[j].key) + 1;
                memcpy((char *)out + off, vf->px[j].key, kl);
                off += kl;
            }
            *rc = (int)total;
        }
        break;
    }
    case FSD_XOP_REMOVE:
        if (!found) {
            *rc = -ENODATA;
        } else {
            free(vf->px[i].key);
            free(vf->px[i].value);
            vf->px[i] = vf->px[--vf->npx];
            *rc = 0;
        }
        break;
    default:
        *rc = -EINVAL;
        break;
    }
out:
    pthread_mutex_unlock(&vf->lock);
    vf_unpin(d, vf);
    return took;
}
