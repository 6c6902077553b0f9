/*
 * vec_fh.c — the handle of an open vector file or .config (fsd_vec_fh,
 * vfile.h) and its operations (fsd_fh_ops): read, write, the commit at
 * close and fsync, and release.
 *
 * A writable handle reads and writes its inode's shared fsd_vfile
 * (vfile.c). A read-only handle has no vfile: it holds a private copy of
 * the committed content taken at open (snap), served with direct I/O, so
 * a reader sees one committed version, whole (see ops_vec.c).
 *
 * Invariants
 *   1. A handle holds one inode pin and, when vf is set, one vfile pin;
 *      release and discard drop both.
 *   2. wrote is set only on writable handles; flush commits when this
 *      handle wrote or the vfile is dirty, and reports another handle's
 *      failed commit rather than retrying it.
 *   3. The operations never reply (dispatch.c does).
 *
 * Locks: vf->lock (lock 2) around every use of the vfile. Changes take it
 * through fsd_vfile_lock (waits for a running commit); stat and read take
 * it directly and never wait for a commit, whose store call runs with
 * lock 2 released (vfile.c).
 */
#include "vfile.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "audit.h"

static const fsd_fh_ops vec_fh_ops;

fsd_vec_fh *fsd_vec_fh_new(fsd_vfile *vf, fuse_ino_t ino, int flags)
{
    assert(ino != 0);
    fsd_vec_fh *h = vc_calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->h.ops = &vec_fh_ops;
    h->vf = vf;
    h->ino = ino;
    h->writable = (flags & O_ACCMODE) != O_RDONLY;
    h->snap = (vc_buf)VC_BUF_INIT;
    return h;
}

void fsd_vec_fh_free(fsd_vec_fh *h)
{
    if (h == NULL)
        return;
    vc_buf_release(&h->snap);
    free(h);
}

int fsd_vec_fh_snapshot(fsd *d, const fsd_ref *r, fsd_vec_fh *h)
{
    assert(h != NULL && h->vf == NULL); /* read-only handles only */
    if (r->kind == FSD_K_CONFIG)
        return fsd_config_text(d, r->coll, &h->snap, &h->attr);
    void *data = NULL;
    size_t len = 0;
    int rc = st_vec_get(d->store, r->coll, r->name, &data, &len, &h->attr);
    if (rc < 0)
        return rc;
    rc = vc_buf_append(&h->snap, data, len);
    free(data);
    return rc;
}

/* One audit line for a commit of a vector file or .config. */
static void audit_commit(fsd *d, const fsd_caller *who, fuse_ino_t ino, int rc)
{
    fsd_ref r;
    if (!fsd_audit_enabled() || fsd_inodes_ref(d->inodes, ino, &r) < 0)
        return;
    char path[ST_COLL_NAME_MAX + ST_NAME_MAX + 2];
    snprintf(path, sizeof path, "%s/%s", r.coll, r.name);
    fsd_audit_caller(who, "write", path, rc, -1);
}

/* fsd_fh_ops.stat of a vector handle. */
static int vec_fh_stat(fsd *d, fsd_fh *fh, struct stat *st)
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
    bool ok = fsd_vfile_stat_locked(h->vf, h->ino, st);
    pthread_mutex_unlock(&h->vf->lock);
    return ok ? 0 : -ENOENT;
}

/* fsd_fh_ops.read: from the shared buffer, or the read-only snapshot. A
 * read-only handle's snap never changes, but it is freed by release,
 * which the kernel may send as soon as it has this reply's bytes, while
 * fuse_reply_buf has not returned yet: reply from a copy either way. */
static int vec_fh_read(fsd *d, fsd_fh *fh, size_t size, off_t off, char **out, size_t *n)
{
    (void)d;
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fsd_vfile *vf = h->vf;
    if (vf == NULL)
        return fsd_copy_range(&h->snap, size, off, out, n);
    pthread_mutex_lock(&vf->lock);
    int rc = fsd_copy_range(&vf->buf, size, off, out, n);
    pthread_mutex_unlock(&vf->lock);
    return rc;
}

/* fsd_fh_ops.write: into the shared buffer; the commit comes at close. */
static int vec_fh_write(fsd *d, fsd_fh *fh, const char *buf, size_t size, off_t off)
{
    (void)d;
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fsd_vfile *vf = h->vf;
    if (!h->writable)
        return -EBADF;
    fsd_vfile_lock(vf);
    int rc = vc_buf_write_at(&vf->buf, (size_t)off, buf, size, fsd_vfile_max(vf));
    if (rc == 0) {
        vf->dirty = true;
        vf->failed_err = 0;
        h->wrote = true;
        vf->pend_mask &= ~(unsigned)(ST_SET_MTIME | ST_SET_CTIME);
        clock_gettime(CLOCK_REALTIME, &vf->attr.mtime);
        vf->attr.ctime = vf->attr.mtime;
    }
    pthread_mutex_unlock(&vf->lock);
    return rc;
}

/* fsd_fh_ops.flush: close() and fsync commit what this handle wrote. */
static int vec_fh_flush(fsd *d, fsd_fh *fh, const fsd_caller *who, bool fsync, bool *quiet)
{
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fsd_vfile *vf = h->vf;
    int rc = 0;
    bool committed = false;
    if (vf == NULL) /* a read-only handle: nothing to commit */
        return fsync ? st_store_sync(d->store) : 0;
    fsd_vfile_lock(vf);
    if (!fsync && h->writable && vf->dirty && !vf->is_config && vf->buf.len == 0) {
        /* Empty content never parses, so nothing is committed. A shell
         * running `echo x > v` closes its first descriptor of the new file
         * before writing through the dup'ed one: that close sees EINVAL
         * (the verdict on the bytes so far; shells ignore it) but is no
         * failed commit, so it is neither audited nor counted. The release
         * does not retry; the next write clears the verdict. */
        vf->failed_err = -EINVAL;
        pthread_mutex_unlock(&vf->lock);
        *quiet = true;
        return -EINVAL;
    }
    if (h->writable && (h->wrote || vf->dirty)) {
        committed = vf->dirty;
        if (vf->dirty && vf->failed_err < 0 && !h->wrote)
            rc = vf->failed_err; /* another handle's content failed: report it */
        else
            rc = fsd_vfile_commit_locked(d, vf);
        if (rc == 0)
            h->wrote = false;
    }
    pthread_mutex_unlock(&vf->lock);
    fsd_vfile_take_wanted_pin(d, vf);
    if (committed)
        audit_commit(d, who, h->ino, rc);
    if (rc == 0 && fsync)
        rc = st_store_sync(d->store);
    return rc;
}

/* fsd_fh_ops.discard: frees h and drops its pins, committing nothing. */
static void vec_fh_discard(fsd *d, fsd_fh *fh)
{
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fuse_ino_t ino = h->ino;
    fsd_vfile *vf = h->vf;
    fsd_vec_fh_free(h);
    fsd_vfile_unpin(d, vf);
    fsd_inodes_unpin(d->inodes, ino);
}

/* fsd_fh_ops.release: commits what no flush committed, then discards. */
static void vec_fh_release(fsd *d, fsd_fh *fh, const fsd_caller *who)
{
    fsd_vec_fh *h = (fsd_vec_fh *)fh;
    fsd_vfile *vf = h->vf;
    if (vf != NULL) {
        fsd_vfile_lock(vf);
        if (h->writable && h->wrote && vf->dirty && vf->failed_err == 0) {
            int rc = fsd_vfile_commit_locked(d, vf);
            audit_commit(d, who, h->ino, rc);
            if (rc < 0)
                fsd_log(FSD_LOG_DEBUG, "commit at release of inode %llu: %s",
                        (unsigned long long)h->ino, strerror(-rc));
        }
        bool drop = vf->extra_pin && !vf->cfg_temp;
        if (drop)
            vf->extra_pin = false;
        pthread_mutex_unlock(&vf->lock);
        fsd_vfile_take_wanted_pin(d, vf);
        fsd_vfile_drop_extra(d, vf, drop);
    }
    vec_fh_discard(d, fh);
}

static const fsd_fh_ops vec_fh_ops = {
    .read = vec_fh_read,
    .write = vec_fh_write,
    .flush = vec_fh_flush,
    .stat = vec_fh_stat,
    .release = vec_fh_release,
    .discard = vec_fh_discard,
};
