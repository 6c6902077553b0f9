/*
 * ops_vec.c — vector files and `.config` by name: open, create, mknod,
 * truncate, chmod/chown/utimens, unlink, rename. Reads, writes and the
 * commit on close go through the handle open made (vec_fh.c); the buffer
 * and its commit are vfile.c's; the .config text is ops_config.c's.
 *
 * Writable handles share their inode's fsd_vfile (vfile.c). Read-only
 * handles do not share the vfile's buffer: each takes a private copy of
 * the committed content at open (a vector's from the store, .config's
 * rendered text) and is served with direct I/O, so a reader sees one
 * committed version, whole, whatever writers, imports and renames do
 * meanwhile; the page cache, shared by every handle of the inode and
 * filled by writers' write-through, never serves it. stat without a handle
 * reports the committed state too (a writer's uncommitted buffer is its
 * own until close), except for a NEW file, which has nothing committed.
 *
 * Invariants
 *   1. An open hands the kernel a handle that holds one inode pin and,
 *      when writable, one vfile pin (vec_fh.c drops them).
 *   2. Every handler ends in exactly one reply.
 *
 * Locks: vf_lock (lock 1) guards the table and refs; vf->lock (lock 2)
 * guards everything else in the vfile; the handlers here change it, so
 * they take lock 2 through fsd_vfile_lock (which waits for a running
 * commit, vfile.c). Store calls are made by the holder of lock 2.
 */
#include "vfile.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

/* ------------------------------------------------------------------ */
/* Open, create                                                         */
/* ------------------------------------------------------------------ */

/* Brings a writable open's vfile to what open(2) promises: loaded, or cut
 * to nothing for O_TRUNC (then the old bytes are not needed, attributes
 * are enough). Caller holds vf->lock. */
static int open_vfile_locked(fsd *d, fsd_vfile *vf, const fsd_ref *r, bool trunc)
{
    int rc = 0;
    if (!vf->loaded && trunc && !vf->is_config) {
        st_attr a;
        rc = st_vec_stat(d->store, r->coll, r->name, &a);
        if (rc == 0) {
            vf->attr = a;
            vf->in_store = true;
            vf->loaded = true;
        }
    } else if (!vf->loaded) {
        rc = fsd_vfile_load_locked(d, vf, r);
    }
    if (rc == 0 && trunc) {
        vc_buf_reset(&vf->buf);
        vf->loaded = true;
        vf->dirty = true;
        vf->failed_err = 0;
    }
    return rc;
}

/* Makes the handle of an open of r (its inode already pinned). */
static int vec_open(fsd *d, const fsd_ref *r, struct fuse_file_info *fi, fsd_vec_fh **out)
{
    *out = NULL;
    if ((fi->flags & O_ACCMODE) == O_RDONLY) {
        /* No vfile: the handle reads its own copy (see the top). */
        fsd_vec_fh *h = fsd_vec_fh_new(NULL, r->ino, fi->flags);
        int rc = h == NULL ? -ENOMEM : fsd_vec_fh_snapshot(d, r, h);
        if (rc < 0) {
            fsd_vec_fh_free(h);
            return rc;
        }
        fi->direct_io = 1;
        *out = h;
        return 0;
    }
    fsd_vfile *vf = NULL;
    bool created;
    int rc = fsd_vfile_attach(d, r->ino, r->kind == FSD_K_CONFIG, &vf, &created);
    if (rc < 0)
        return rc;
    bool trunc = (fi->flags & O_TRUNC) != 0;
    fsd_vfile_lock(vf);
    rc = open_vfile_locked(d, vf, r, trunc);
    pthread_mutex_unlock(&vf->lock);
    fsd_vec_fh *h = rc == 0 ? fsd_vec_fh_new(vf, r->ino, fi->flags) : NULL;
    if (h == NULL) {
        fsd_vfile_unpin(d, vf);
        return rc < 0 ? rc : -ENOMEM;
    }
    h->wrote = trunc;
    fi->direct_io = 0;
    *out = h;
    return 0;
}

void fsd_vec_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    fsd_vec_fh *h = NULL;
    int rc = fsd_inodes_pin(d->inodes, r->ino);
    if (rc == 0) {
        rc = vec_open(d, r, fi, &h);
        if (rc < 0)
            fsd_inodes_unpin(d->inodes, r->ino);
    }
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_OPEN, rc);
        return;
    }
    fi->keep_cache = 0;
    fsd_fh_reply_open(req, fi, &h->h);
}

/* Makes vf a NEW, empty file of the caller's with mode. Caller holds
 * vf->lock. */
static void new_file_locked(fsd_vfile *vf, mode_t mode, const fsd_caller *c)
{
    memset(&vf->attr, 0, sizeof vf->attr);
    vf->attr.mode = S_IFREG | (mode & 07777);
    vf->attr.uid = c->uid;
    vf->attr.gid = c->gid;
    clock_gettime(CLOCK_REALTIME, &vf->attr.mtime);
    vf->attr.atime = vf->attr.ctime = vf->attr.mtime;
    vf->in_store = false;
    vf->loaded = true;
    vf->dirty = true;
}

/* Sets up vf for a create of p/name (see fsd_vec_create). exists: the
 * vector is in the store with attributes *existing. Caller holds
 * vf->lock. */
static int create_vfile_locked(fsd *d, fsd_vfile *vf, const fsd_ref *p, const char *name,
                               bool is_cfg, const st_attr *existing, mode_t mode,
                               const fsd_caller *c, int flags)
{
    int rc = 0;
    if (is_cfg) {
        rc = fsd_config_text(d, p->coll, &vf->buf, &vf->attr);
        if (rc == 0) {
            vc_buf_reset(&vf->buf);
            vf->loaded = true;
            vf->in_store = true;
            vf->dirty = true;
        }
    } else if (existing != NULL && !vf->loaded) {
        /* Raced with a create of an existing name: behave like open. */
        vf->attr = *existing;
        vf->in_store = true;
        if (flags & O_TRUNC) {
            vc_buf_reset(&vf->buf);
            vf->loaded = true;
            vf->dirty = true;
        } else {
            fsd_ref r = *p;
            snprintf(r.name, sizeof r.name, "%s", name);
            rc = fsd_vfile_load_locked(d, vf, &r);
        }
    } else if (existing == NULL && !vf->loaded) {
        new_file_locked(vf, mode, c);
        vf->created_excl = (flags & O_EXCL) != 0;
        vf->failed_err = 0;
        vc_buf_reset(&vf->buf);
    } else if (flags & O_TRUNC) {
        vc_buf_reset(&vf->buf);
        vf->dirty = true;
    }
    return rc;
}

/* Checks a name for create and mknod: 0, or the errno to reply (a
 * reserved name: EEXIST for .config, EPERM for the others). */
static int check_new_name(const char *name)
{
    int rc = fsd_vecname_check(name, strlen(name));
    if (rc < 0 && st_name_is_reserved(name, strlen(name)))
        rc = strcmp(name, ".config") == 0 ? -EEXIST : -EPERM;
    return rc;
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
    int rc = is_cfg ? 0 : check_new_name(name);
    st_attr ca, existing;
    if (rc == 0) {
        rc = st_coll_stat(d->store, p->coll, &ca);
        if (rc == -EINVAL)
            rc = -ENOENT;
    }
    bool exists = rc == 0 && !is_cfg && st_vec_stat(d->store, p->coll, name, &existing) == 0;
    if (exists && (fi->flags & O_EXCL))
        rc = -EEXIST;
    fuse_ino_t ino = 0;
    fsd_vfile *vf = NULL;
    fsd_vec_fh *h = NULL;
    bool created = false, pinned = false;
    if (rc < 0)
        goto fail;
    rc = fsd_inodes_link(d->inodes, p->ino, name, is_cfg ? FSD_K_CONFIG : FSD_K_VEC, &ino);
    if (rc < 0)
        goto fail;
    rc = fsd_inodes_pin(d->inodes, ino);
    if (rc < 0)
        goto fail;
    pinned = true;
    rc = fsd_vfile_attach(d, ino, is_cfg, &vf, &created);
    if (rc < 0)
        goto fail;
    fsd_vfile_lock(vf);
    rc =
        create_vfile_locked(d, vf, p, name, is_cfg, exists ? &existing : NULL, mode, &c, fi->flags);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    if (rc == 0 && !fsd_vfile_stat_locked(vf, ino, &e.attr))
        rc = -ENOENT;
    pthread_mutex_unlock(&vf->lock);
    if (rc == 0 && (h = fsd_vec_fh_new(vf, ino, fi->flags)) == NULL)
        rc = -ENOMEM;
    if (rc < 0)
        goto fail;
    h->wrote = true;
    fi->keep_cache = 0;
    fi->direct_io = 0;
    e.ino = ino;
    e.generation = 1;
    e.attr_timeout = FSD_TTL_FILE;
    e.entry_timeout = FSD_TTL_FILE;
    fsd_fh_reply_create(req, &e, fi, &h->h);
    return;
fail:
    fsd_vfile_unpin(d, vf);
    if (pinned)
        fsd_inodes_unpin(d->inodes, ino);
    if (ino != 0)
        fsd_inodes_forget(d->inodes, ino, 1);
    fsd_reply_err(req, FSD_OP_CREATE, rc);
}

/* ------------------------------------------------------------------ */
/* setattr, unlink, rename                                              */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* setattr, unlink, rename, mknod                                       */
/* ------------------------------------------------------------------ */

/* Applies a setattr (a, mask; a truncate to size when truncate) to an open
 * file's vfile, committing at once if temp (a truncate(2) by path). The
 * result's attributes into *st. Caller holds vf->lock. */
static int setattr_vfile_locked(fsd *d, fsd_vfile *vf, const fsd_ref *r, const st_attr *a,
                                unsigned mask, bool truncate, off_t size, bool temp,
                                struct stat *st)
{
    int rc = 0;
    if (!vf->loaded)
        rc = fsd_vfile_load_locked(d, vf, r);
    if (rc == 0 && truncate) {
        if ((uint64_t)size > fsd_vfile_max(vf))
            rc = -EFBIG;
        else
            rc = vc_buf_resize(&vf->buf, (size_t)size, FSD_BUF_MAX);
        if (rc == 0) {
            vf->dirty = true;
            vf->failed_err = 0;
            clock_gettime(CLOCK_REALTIME, &vf->attr.mtime);
            vf->attr.ctime = vf->attr.mtime;
            vf->pend_mask &= ~(unsigned)(ST_SET_MTIME | ST_SET_CTIME);
        }
    }
    if (rc == 0 && (mask & ST_SET_MTIME) && vf->is_config) {
        vf->attr.mtime = a->mtime;
        if (vf->dirty)
            vf->pend_mask |= ST_SET_MTIME; /* for the commit */
        else
            rc = st_coll_config_touch(d->store, r->coll, &a->mtime);
    }
    if (rc == 0 && mask != 0 && !vf->is_config) {
        if (mask & ST_SET_MODE)
            vf->attr.mode = S_IFREG | a->mode;
        if (mask & ST_SET_UID)
            vf->attr.uid = a->uid;
        if (mask & ST_SET_GID)
            vf->attr.gid = a->gid;
        if (mask & ST_SET_ATIME)
            vf->attr.atime = a->atime;
        if (mask & ST_SET_MTIME)
            vf->attr.mtime = a->mtime;
        if (mask & ST_SET_CTIME)
            vf->attr.ctime = a->ctime;
        else
            clock_gettime(CLOCK_REALTIME, &vf->attr.ctime);
        if (vf->dirty || !vf->in_store)
            vf->pend_mask |= mask;
        if (vf->in_store)
            rc = st_vec_setattr(d->store, r->coll, r->name, a, mask);
    }
    if (rc == 0 && temp)
        rc = fsd_vfile_commit_locked(d, vf);
    if (rc == 0 && !fsd_vfile_stat_locked(vf, r->ino, st))
        rc = -ENOENT;
    return rc;
}

/* A setattr of a file nobody has open: straight to the store. .config's
 * owner and mode are its collection's (chmod and chown on it succeed
 * without effect); its mtime is its own (ops_config.c). */
static int setattr_closed(fsd *d, const fsd_ref *r, const st_attr *a, unsigned mask,
                          struct stat *st)
{
    int rc = 0;
    if (r->kind == FSD_K_CONFIG) {
        fsd_ref c;
        rc = fsd_inodes_ref(d->inodes, r->coll_ino, &c);
        if (rc == 0 && (mask & ST_SET_MTIME))
            rc = st_coll_config_touch(d->store, c.coll, &a->mtime);
        return rc == 0 ? fsd_config_stat(d, &c, r->ino, st) : rc;
    }
    if (mask != 0)
        rc = st_vec_setattr(d->store, r->coll, r->name, a, mask);
    return rc == 0 ? fsd_vec_stat(d, 0, r->coll, r->name, st) : rc;
}

void fsd_vec_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *in, int to_set,
                     struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    st_attr a;
    unsigned mask = fsd_setattr_mask(in, to_set, &a);
    bool truncate = (to_set & FUSE_SET_ATTR_SIZE) != 0;
    struct stat st;
    int rc = 0;
    bool temp = false;
    fsd_vfile *vf = fsd_vfile_pin(d, r->ino);
    if (vf == NULL && truncate) {
        /* truncate(2) by path: load, cut, commit as one transaction. */
        bool created;
        rc = fsd_vfile_attach(d, r->ino, r->kind == FSD_K_CONFIG, &vf, &created);
        temp = true;
    }
    if (rc == 0 && vf != NULL) {
        fsd_vfile_lock(vf);
        /* truncate(2) by path is a whole change on its own also while
         * handles with nothing left to commit pin the file, as one whose
         * RELEASE trails its close() (under --io-uring another thread may
         * take this request first). Refused, it leaves the store's content
         * for the next reader. */
        bool whole = !temp && truncate && fi == NULL && vf->in_store && !vf->dirty;
        rc = setattr_vfile_locked(d, vf, r, &a, mask, truncate, in->st_size, temp || whole, &st);
        if (rc < 0 && whole) {
            vf->loaded = false; /* reloaded from the store when next used */
            vf->dirty = false;
            vf->failed_err = 0;
        }
        pthread_mutex_unlock(&vf->lock);
        fsd_vfile_unpin(d, vf);
    } else if (rc == 0) {
        rc = setattr_closed(d, r, &a, mask, &st);
    }
    fsd_reply_attr(req, FSD_OP_SETATTR, rc, &st, r->ino, FSD_TTL_FILE);
}

/* Takes back a NEW file (created here, not committed) that is unlinked:
 * true if ino was one. */
static bool unlink_pending(fsd *d, fuse_ino_t ino)
{
    fsd_vfile *vf = fsd_vfile_pin(d, ino);
    if (vf == NULL)
        return false;
    bool pending = false, drop = false;
    fsd_vfile_lock(vf);
    if (!vf->in_store) {
        pending = true;
        drop = vf->extra_pin;
        vf->extra_pin = false;
    }
    pthread_mutex_unlock(&vf->lock);
    fsd_vfile_drop_extra(d, vf, drop);
    fsd_vfile_unpin(d, vf);
    return pending;
}

void fsd_vec_unlink(fuse_req_t req, const fsd_ref *p, const char *name)
{
    fsd *d = fsd_of(req);
    int rc;
    if (strcmp(name, ".config") == 0) {
        /* The config stays in force; the name disappears until .config is
         * written again (tar unlinks before it extracts). */
        rc = fsd_config_hide(d, p->coll);
    } else if (st_name_is_reserved(name, strlen(name))) {
        rc = -EPERM;
    } else {
        rc = st_vec_delete(d->store, p->coll, name);
        fuse_ino_t ino = fsd_inodes_find(d->inodes, p->ino, name);
        /* A file created here and not committed yet is still a file. */
        if (rc == -ENOENT && ino != 0 && unlink_pending(d, ino))
            rc = 0;
        if (rc == -EINVAL)
            rc = -ENOENT;
    }
    if (rc == 0)
        fsd_inodes_unlink(d->inodes, p->ino, name);
    fsd_reply_err(req, FSD_OP_UNLINK, rc);
}

/* The rename of rsync's temporary config (already applied at its close)
 * onto .config: only the name goes, and the times rsync set on it after
 * the close. Anything else cannot become the config: -EINVAL. */
static int rename_onto_config(fsd *d, const fsd_ref *p, const char *name)
{
    fuse_ino_t ino = fsd_inodes_find(d->inodes, p->ino, name);
    fsd_vfile *vf = fsd_vfile_pin(d, ino);
    int rc = -EINVAL; /* a vector cannot become the config */
    if (vf != NULL) {
        bool drop = false;
        fsd_vfile_lock(vf);
        if (vf->cfg_temp && !vf->dirty) {
            rc = (vf->pend_mask & ST_SET_MTIME)
                     ? st_coll_config_touch(d->store, p->coll, &vf->attr.mtime)
                     : 0;
            drop = rc == 0 && vf->extra_pin;
            if (drop)
                vf->extra_pin = false;
        }
        pthread_mutex_unlock(&vf->lock);
        fsd_vfile_drop_extra(d, vf, drop);
        fsd_vfile_unpin(d, vf);
    }
    if (rc == 0) {
        fsd_inodes_unlink(d->inodes, p->ino, name);
        fsd_config_unhide(d, p->coll);
    }
    return rc;
}

/* The store's rename found no source: if it is a NEW file still being
 * written, the rename only moves the name (replacing newname's vector as
 * a rename over it would). */
static int rename_pending(fsd *d, const fsd_ref *p, const char *name, const char *newname,
                          unsigned flags)
{
    fuse_ino_t ino = fsd_inodes_find(d->inodes, p->ino, name);
    fsd_vfile *vf = fsd_vfile_pin(d, ino);
    if (vf == NULL)
        return -ENOENT;
    fsd_vfile_lock(vf);
    bool pending = !vf->in_store;
    pthread_mutex_unlock(&vf->lock);
    fsd_vfile_unpin(d, vf);
    if (!pending)
        return -ENOENT;
    st_attr t;
    int rc;
    if ((flags & RENAME_NOREPLACE) && st_vec_stat(d->store, p->coll, newname, &t) == 0)
        rc = -EEXIST;
    else
        rc = st_vec_delete(d->store, p->coll, newname);
    return rc == -ENOENT ? 0 : rc;
}

void fsd_vec_rename(fuse_req_t req, const fsd_ref *p, const char *name, const char *newname,
                    unsigned flags)
{
    fsd *d = fsd_of(req);
    if (strcmp(newname, ".config") == 0) {
        fsd_reply_err(req, FSD_OP_RENAME, rename_onto_config(d, p, name));
        return;
    }
    int rc = fsd_vecname_check(newname, strlen(newname));
    if (st_name_is_reserved(newname, strlen(newname)))
        rc = -EINVAL; /* .query and .import are not vector names */
    if (st_name_is_reserved(name, strlen(name)))
        rc = -EPERM;
    if (rc == 0 && !fsd_vec_same_format(name, newname))
        rc = -EINVAL; /* the bytes are in the old name's format */
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_RENAME, rc);
        return;
    }
    rc = st_vec_rename(d->store, p->coll, name, newname,
                       (flags & RENAME_NOREPLACE) ? ST_RENAME_NOREPLACE : 0);
    if (rc == -ENOENT)
        rc = rename_pending(d, p, name, newname, flags);
    if (rc == 0 && strcmp(name, newname) != 0)
        (void)fsd_inodes_rename(d->inodes, p->ino, name, p->ino, newname);
    fsd_reply_err(req, FSD_OP_RENAME, rc);
}

void fsd_vec_mknod(fuse_req_t req, const fsd_ref *p, const char *name, mode_t mode)
{
    fsd *d = fsd_of(req);
    fsd_caller c;
    fsd_caller_get(req, &c);
    int rc = check_new_name(name);
    if (rc < 0) {
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
        rc = fsd_vfile_attach(d, ino, false, &vf, &created);
    if (rc < 0)
        goto fail;
    fsd_vfile_lock(vf);
    if (vf->loaded) {
        rc = -EEXIST; /* someone is writing this name right now */
    } else {
        new_file_locked(vf, mode, &c);
        vf->extra_pin = true; /* keeps vf and the inode until the first release */
        (void)fsd_vfile_stat_locked(vf, ino, &st);
    }
    pthread_mutex_unlock(&vf->lock);
    if (rc < 0)
        goto fail;
    fsd_reply_entry(req, ino, &st, FSD_TTL_FILE);
    return;
fail:
    fsd_vfile_unpin(d, vf);
    if (pinned)
        fsd_inodes_unpin(d->inodes, ino);
    if (ino != 0)
        fsd_inodes_forget(d->inodes, ino, 1);
    fsd_reply_err(req, FSD_OP_MKNOD, rc);
}
