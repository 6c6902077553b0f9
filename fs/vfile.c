/*
 * vfile.c — the table of open vector files, and the write-buffer-then-
 * commit of one file (SPEC §3.1).
 *
 * While a vector file (or a .config) is open for writing, its bytes live
 * in one fsd_vfile shared by every handle of that inode (so two
 * descriptors see each other's writes, as on any filesystem). Writes,
 * truncates and attribute changes only touch the buffer. flush (close),
 * fsync and — if neither came — the last release commit the buffer as ONE
 * store call (fsd_vfile_commit_locked): st_vec_put (content + parsed
 * vector + attributes + index) or, for a new file that already carries
 * xattrs, a one-row st_batch. If the content does not parse the commit
 * fails with EINVAL and the store is untouched: a new file "does not
 * appear", an old one keeps its vector.
 *
 * vfile states
 *   NEW     created by this mount, never committed (in_store false)
 *   CLEAN   in the store, buffer equal to it (dirty false)
 *   DIRTY   buffer or attributes changed since the last commit
 *   FAILED  DIRTY whose last commit failed (failed_err < 0): release does
 *           not retry; a new write clears it
 * NEW/DIRTY -> CLEAN on a successful commit (fsd_vfile_commit_locked). Any
 * -> gone when the last pin is dropped (fsd_vfile_unpin).
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
 * Locks: vf_lock (lock 1) guards the table and refs; vf->lock (lock 2)
 * guards everything else in the vfile. Store calls are made by a holder of
 * lock 2, never under lock 1; lock 1 is never taken while holding lock 2.
 * The commit's store calls (which wait for the store's group commit and
 * its fdatasync) run with lock 2 released and vf->committing set:
 * changers of the vfile take lock 2 through fsd_vfile_lock, which waits
 * for the commit to end, so the commit's view stays put, while stat and
 * reads take lock 2 directly and see the state before the commit (issue
 * 11: readers never wait for a commit).
 */
#include "vfile.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "vector_format.h"

/* ------------------------------------------------------------------ */
/* The table                                                            */
/* ------------------------------------------------------------------ */

/* The bucket of ino in d->vf_buckets. */
static size_t vf_bucket(fsd *d, fuse_ino_t ino)
{
    return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 32) & (d->vf_nbuckets - 1);
}

/* The vfile of ino in the table, or NULL. Caller holds d->vf_lock. */
static fsd_vfile *vf_find_locked(fsd *d, fuse_ino_t ino)
{
    fsd_vfile *vf = d->vf_buckets[vf_bucket(d, ino)];
    while (vf != NULL && vf->ino != ino)
        vf = vf->next;
    return vf;
}

void fsd_vfile_lock(fsd_vfile *vf)
{
    pthread_mutex_lock(&vf->lock);
    while (vf->committing)
        pthread_cond_wait(&vf->commit_cv, &vf->lock);
}

/* Marks the start of a commit's store calls and releases vf->lock (held,
 * no commit running). */
static void commit_unlock(fsd_vfile *vf)
{
    vf->committing = true;
    pthread_mutex_unlock(&vf->lock);
}

/* Takes vf->lock back after the store calls and lets changers in. */
static void commit_relock(fsd_vfile *vf)
{
    pthread_mutex_lock(&vf->lock);
    vf->committing = false;
    pthread_cond_broadcast(&vf->commit_cv);
}

fsd_vfile *fsd_vfile_pin(fsd *d, fuse_ino_t ino)
{
    if (ino == 0)
        return NULL;
    pthread_mutex_lock(&d->vf_lock);
    fsd_vfile *vf = vf_find_locked(d, ino);
    if (vf != NULL)
        vf->refs++;
    pthread_mutex_unlock(&d->vf_lock);
    return vf;
}

/* Frees a vfile no longer in the table. */
static void vf_free(fsd_vfile *vf)
{
    vc_buf_release(&vf->buf);
    fsd_vfile_xattrs_clear(vf);
    pthread_mutex_destroy(&vf->lock);
    pthread_cond_destroy(&vf->commit_cv);
    free(vf);
}

int fsd_vfile_attach(fsd *d, fuse_ino_t ino, bool is_config, fsd_vfile **out, bool *created)
{
    assert(ino != 0 && out != NULL && created != NULL);
    *created = false;
    fsd_vfile *fresh = NULL;
    pthread_mutex_lock(&d->vf_lock);
    fsd_vfile *vf = vf_find_locked(d, ino);
    if (vf == NULL) {
        pthread_mutex_unlock(&d->vf_lock);
        fresh = vc_calloc(1, sizeof *fresh);
        if (fresh == NULL || pthread_mutex_init(&fresh->lock, NULL) != 0) {
            free(fresh);
            return -ENOMEM;
        }
        if (pthread_cond_init(&fresh->commit_cv, NULL) != 0) {
            pthread_mutex_destroy(&fresh->lock);
            free(fresh);
            return -ENOMEM;
        }
        fresh->ino = ino;
        fresh->is_config = is_config;
        pthread_mutex_lock(&d->vf_lock);
        vf = vf_find_locked(d, ino);
        if (vf == NULL) {
            size_t b = vf_bucket(d, ino);
            vf = fresh;
            fresh = NULL;
            vf->next = d->vf_buckets[b];
            d->vf_buckets[b] = vf;
            *created = true;
        }
    }
    vf->refs++;
    pthread_mutex_unlock(&d->vf_lock);
    if (fresh != NULL)
        vf_free(fresh);
    *out = vf;
    return 0;
}

void fsd_vfile_unpin(fsd *d, fsd_vfile *vf)
{
    if (vf == NULL)
        return;
    bool last = false;
    pthread_mutex_lock(&d->vf_lock);
    assert(vf->refs > 0);
    if (--vf->refs == 0) {
        fsd_vfile **pp = &d->vf_buckets[vf_bucket(d, vf->ino)];
        while (*pp != vf)
            pp = &(*pp)->next;
        *pp = vf->next;
        last = true;
    }
    pthread_mutex_unlock(&d->vf_lock);
    if (last)
        vf_free(vf);
}

void fsd_vfile_drop_extra(fsd *d, fsd_vfile *vf, bool drop)
{
    if (!drop)
        return;
    fuse_ino_t ino = vf->ino;
    fsd_vfile_unpin(d, vf);
    fsd_inodes_unpin(d->inodes, ino);
}

void fsd_vfiles_discard(fsd *d)
{
    for (size_t b = 0; b < d->vf_nbuckets; b++) {
        fsd_vfile *vf = d->vf_buckets[b];
        while (vf != NULL) {
            fsd_vfile *next = vf->next;
            vf_free(vf);
            vf = next;
        }
        d->vf_buckets[b] = NULL;
    }
}

void fsd_vfile_xattrs_clear(fsd_vfile *vf)
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
/* Attributes                                                           */
/* ------------------------------------------------------------------ */

bool fsd_vfile_stat_locked(const fsd_vfile *vf, fuse_ino_t ino, struct stat *st)
{
    assert(vf != NULL && st != NULL);
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
    fsd_vfile *vf = fsd_vfile_pin(d, ino);
    if (vf != NULL) {
        pthread_mutex_lock(&vf->lock);
        /* A NEW file whose commit failed does not appear: its close()
         * returned the error, and the kernel's release, which drops the
         * vfile, comes after close() returns. Shown meanwhile, it was a
         * name that stat found and a read-only open (committed content
         * only) did not. A write through a descriptor still open clears
         * the failure and shows it again. */
        bool ok = !vf->in_store && vf->failed_err == 0 && fsd_vfile_stat_locked(vf, ino, st);
        pthread_mutex_unlock(&vf->lock);
        fsd_vfile_unpin(d, vf);
        if (ok)
            return 0;
    }
    st_attr a;
    int rc = st_vec_stat(d->store, coll, name, &a);
    if (rc < 0)
        return rc;
    fsd_attr_to_stat(&a, ino, st);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Loading and committing                                               */
/* ------------------------------------------------------------------ */

int fsd_vfile_load_locked(fsd *d, fsd_vfile *vf, const fsd_ref *r)
{
    assert(vf != NULL && r != NULL);
    if (vf->loaded)
        return 0;
    if (vf->is_config) {
        int rc = fsd_config_text(d, r->coll, &vf->buf, &vf->attr);
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
        return rc;
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

/* `.a.json.Xy12Ab` -> `a.json` is a same-format rename (see format_name). */
bool fsd_vec_same_format(const char *a, const char *b)
{
    const char *fa, *fb;
    size_t la, lb;
    format_name(a, &fa, &la);
    format_name(b, &fb, &lb);
    return fsd_vformat_from_name(fa, la) == fsd_vformat_from_name(fb, lb);
}

/* Commits a .config buffer. A utimens since the last write gives the text
 * its time (cp -a, tar and rsync restore the mtime before they close). The
 * buffer keeps what was written (a writer may still be writing at its own
 * offsets); the next open shows the effective config. Caller holds
 * vf->lock; the store call runs without it. */
static int commit_config(fsd *d, fsd_vfile *vf, const fsd_ref *r)
{
    commit_unlock(vf);
    int rc = fsd_config_commit(d, r->coll, &vf->buf,
                               (vf->pend_mask & ST_SET_MTIME) ? &vf->attr.mtime : NULL);
    commit_relock(vf);
    return rc;
}

/* Stores a NEW vector with its pending xattrs as a one-row store batch. */
static int put_with_xattrs(fsd *d, fsd_vfile *vf, const fsd_ref *r, const float *vec, uint32_t dim,
                           unsigned mask)
{
    st_batch *b = NULL;
    int rc = st_batch_begin(d->store, r->coll, &b);
    if (rc < 0)
        return rc;
    const char **keys = vc_calloc(vf->npx, sizeof *keys);
    const void **vals = vc_calloc(vf->npx, sizeof *vals);
    size_t *lens = vc_calloc(vf->npx, sizeof *lens);
    if (keys == NULL || vals == NULL || lens == NULL) {
        rc = -ENOMEM;
    } else {
        for (size_t i = 0; i < vf->npx; i++) {
            keys[i] = vf->px[i].key;
            vals[i] = vf->px[i].value;
            lens[i] = vf->px[i].len;
        }
        rc = st_batch_put(b, r->name, vf->buf.p, vf->buf.len, vec, dim, &vf->attr, mask, vf->npx,
                          (const char *const *)keys, (const void *const *)vals, lens);
    }
    free(keys);
    free(vals);
    free(lens);
    if (rc == 0) {
        rc = st_batch_commit(b);
        b = NULL;
    }
    st_batch_abort(b);
    return rc;
}

/* Commits a vector buffer. Caller holds vf->lock; the store calls run
 * without it. */
static int commit_vector(fsd *d, fsd_vfile *vf, const fsd_ref *r)
{
    st_config cfg;
    int rc = st_coll_config_get(d->store, r->coll, &cfg);
    if (rc < 0)
        return rc;
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
        mask |= ST_SET_MODE | ST_SET_UID | ST_SET_GID | (vf->created_excl ? ST_PUT_NEW : 0);
    commit_unlock(vf);
    if (vf->npx > 0 && !vf->in_store)
        rc = put_with_xattrs(d, vf, r, vec, dim, mask);
    else
        rc = st_vec_put(d->store, r->coll, r->name, vf->buf.p, vf->buf.len, vec, dim, &vf->attr,
                        mask);
    st_attr a;
    bool stored = rc == 0 && st_vec_stat(d->store, r->coll, r->name, &a) == 0;
    commit_relock(vf);
    free(vec);
    if (rc < 0)
        return rc;
    fsd_metrics_inserts(1);
    fsd_vfile_xattrs_clear(vf);
    if (stored)
        vf->attr = a;
    return 0;
}

int fsd_vfile_commit_locked(fsd *d, fsd_vfile *vf)
{
    assert(vf != NULL && !vf->committing);
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

void fsd_vfile_take_wanted_pin(fsd *d, fsd_vfile *vf)
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
