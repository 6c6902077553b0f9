/*
 * fuse_ops.c — the low-level FUSE entry points: resolve, dispatch, count.
 *
 * Every entry point here (1) counts the request in vecfs_fuse_ops_total,
 * (2) resolves its inode(s) to an fsd_ref copy through the inode table,
 * (3) hands the request to the handler of the node's kind, which replies.
 * Requests this layer can answer alone (unknown inode, wrong kind, a
 * read-only mount, links and symlinks) are answered here.
 *
 * Invariants
 *   1. Each entry point ends in exactly one reply: either its own
 *      fsd_reply_err or the reply of the handler it calls last.
 *   2. No lock is held when a handler is called; refs are copies.
 *   3. fi->fh is 0 or points at an fsd_fh whose type selects the handler
 *      for read/write/flush/fsync/release.
 */
#include "fsd.h"

#include "audit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Shared helpers                                                       */
/* ------------------------------------------------------------------ */

void fsd_caller_get(fuse_req_t req, fsd_caller *out)
{
    const struct fuse_ctx *c = fuse_req_ctx(req);
    out->uid = c->uid;
    out->gid = c->gid;
    out->pid = c->pid;
    out->umask = c->umask;
}

bool fsd_access_ok(fuse_req_t req, uint32_t mode, uint32_t uid, uint32_t gid, int want)
{
    const struct fuse_ctx *c = fuse_req_ctx(req);
    if (c->uid == 0) {
        if ((want & X_OK) && !S_ISDIR(mode) && (mode & 0111) == 0)
            return false;
        return true;
    }
    unsigned bits;
    if (c->uid == uid) {
        bits = (mode >> 6) & 7;
    } else {
        bool in_group = c->gid == gid;
        if (!in_group) {
            gid_t groups[64];
            int n = fuse_req_getgroups(req, 64, groups);
            for (int i = 0; i < n && i < 64; i++)
                if (groups[i] == gid)
                    in_group = true;
        }
        bits = in_group ? (mode >> 3) & 7 : mode & 7;
    }
    unsigned need =
        ((want & R_OK) ? 4u : 0u) | ((want & W_OK) ? 2u : 0u) | ((want & X_OK) ? 1u : 0u);
    return (bits & need) == need;
}

void fsd_attr_to_stat(const st_attr *a, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = a->mode;
    st->st_nlink = S_ISDIR(a->mode) ? 2 : 1;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_size = S_ISDIR(a->mode) ? (off_t)a->count : (off_t)a->size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
    st->st_atim = a->atime;
    st->st_mtim = a->mtime;
    st->st_ctim = a->ctime;
}

int fsd_reply_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st, double timeout)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    e.generation = 1;
    e.attr = *st;
    e.attr.st_ino = ino;
    e.attr_timeout = timeout;
    e.entry_timeout = timeout;
    return fuse_reply_entry(req, &e);
}

int fsd_reply_entry_ttl(fuse_req_t req, fuse_ino_t ino, const struct stat *st, double entry_ttl,
                        double attr_ttl)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    e.generation = 1;
    e.attr = *st;
    e.attr.st_ino = ino;
    e.attr_timeout = attr_ttl;
    e.entry_timeout = entry_ttl;
    return fuse_reply_entry(req, &e);
}

/* The errno of the last fsd_reply_err on this thread: 0 after a success.
 * Entry points reset it, call the handler (which replies), then read it
 * for the audit log. */
static _Thread_local int reply_errno;

void fsd_reply_err(fuse_req_t req, fsd_op op, int err)
{
    if (err < 0)
        err = -err;
    reply_errno = err;
    if (err != 0)
        fsd_metrics_error(op, err);
    fuse_reply_err(req, err);
}

bool fsd_name_reserved(const char *name)
{
    return strcmp(name, ".config") == 0 || strcmp(name, ".query") == 0 ||
           strcmp(name, ".import") == 0;
}

void fsd_fh_track(fsd *d, fsd_fh *fh)
{
    pthread_mutex_lock(&d->fh_lock);
    fh->prev = NULL;
    fh->next = d->open_fhs;
    if (d->open_fhs != NULL)
        d->open_fhs->prev = fh;
    d->open_fhs = fh;
    pthread_mutex_unlock(&d->fh_lock);
}

void fsd_fh_untrack(fsd *d, fsd_fh *fh)
{
    pthread_mutex_lock(&d->fh_lock);
    if (fh->prev != NULL)
        fh->prev->next = fh->next;
    else if (d->open_fhs == fh)
        d->open_fhs = fh->next;
    if (fh->next != NULL)
        fh->next->prev = fh->prev;
    fh->prev = fh->next = NULL;
    pthread_mutex_unlock(&d->fh_lock);
}

void fsd_fh_discard_all(fsd *d)
{
    for (;;) {
        pthread_mutex_lock(&d->fh_lock);
        fsd_fh *fh = d->open_fhs;
        pthread_mutex_unlock(&d->fh_lock);
        if (fh == NULL)
            break;
        fsd_fh_untrack(d, fh);
        switch (fh->type) {
        case FSD_FH_VEC:
            fsd_vec_fh_discard(d, fh);
            break;
        case FSD_FH_QUERY:
            fsd_qfile_fh_discard(fh);
            break;
        case FSD_FH_IMPORT:
            fsd_ifile_fh_discard(d, fh);
            break;
        case FSD_FH_BUFFER:
            vc_buf_release(&((fsd_buf_fh *)fh)->content);
            free(fh);
            break;
        default:
            free(fh);
            break;
        }
    }
    fsd_vfiles_discard(d);
}

/* The path of a node relative to the mount ("c1/doc.f32", "c1"). */
static void ref_path(const fsd_ref *r, char *buf, size_t cap)
{
    switch (r->kind) {
    case FSD_K_ROOT:
        snprintf(buf, cap, "%s", "");
        break;
    case FSD_K_COLL:
        snprintf(buf, cap, "%s", r->coll);
        break;
    case FSD_K_QDIR:
        snprintf(buf, cap, "%s/.query", r->coll);
        break;
    case FSD_K_IDIR:
        snprintf(buf, cap, "%s/.import", r->coll);
        break;
    case FSD_K_ADMIN_DIR:
        snprintf(buf, cap, "%s", ".vecfs");
        break;
    default:
        if (r->coll[0] != '\0')
            snprintf(buf, cap, "%s/%s", r->coll, r->name);
        else
            snprintf(buf, cap, "%s", r->name);
        break;
    }
}

/* A mutating request being audited: who asked, captured before the
 * handler replies (the request is gone afterwards). */
typedef struct audit_rec {
    bool on;
    fsd_caller who;
    char path[2 * (FSD_COLL_NAME_MAX + FSD_NAME_MAX + 16)];
    char new_path[2 * (FSD_COLL_NAME_MAX + FSD_NAME_MAX + 16)];
} audit_rec;

/* Starts an audit record for (parent, name) or for a node (name NULL).
 * Query files are not audited. */
static void audit_begin(fuse_req_t req, audit_rec *a, const fsd_ref *p, const char *name)
{
    a->on = fsd_audit_enabled() && p->kind != FSD_K_QDIR && p->kind != FSD_K_QFILE;
    a->new_path[0] = '\0';
    reply_errno = 0;
    if (!a->on)
        return;
    fsd_caller_get(req, &a->who);
    char base[FSD_COLL_NAME_MAX + FSD_NAME_MAX + 16];
    ref_path(p, base, sizeof base);
    if (name == NULL)
        snprintf(a->path, sizeof a->path, "%s", base);
    else if (base[0] == '\0')
        snprintf(a->path, sizeof a->path, "%s", name);
    else
        snprintf(a->path, sizeof a->path, "%s/%s", base, name);
}

static void audit_end(const audit_rec *a, const char *op)
{
    if (a->on)
        fsd_audit_log(a->who.uid, a->who.gid, a->who.pid, op, a->path,
                      a->new_path[0] ? a->new_path : NULL, reply_errno, -1);
}

/* audit_begin for an inode number (parent directory or the node itself). */
static void audit_prepare(fuse_req_t req, audit_rec *a, fuse_ino_t ino, const char *name)
{
    a->on = false;
    reply_errno = 0;
    fsd_ref r;
    if (!fsd_audit_enabled() || fsd_inodes_ref(fsd_of(req)->inodes, ino, &r) < 0)
        return;
    audit_begin(req, a, &r, name);
}

/* Resolves ino or replies ESTALE-like ENOENT. Returns false if replied. */
static bool resolve(fuse_req_t req, fsd_op op, fuse_ino_t ino, fsd_ref *r)
{
    if (fsd_inodes_ref(fsd_of(req)->inodes, ino, r) < 0) {
        fsd_reply_err(req, op, ENOENT);
        return false;
    }
    return true;
}

/* On a --read-only mount everything is refused with EROFS except query
 * files, which are private scratch space in memory: querying a read-only
 * store must work. */
static bool ro_refused(fuse_req_t req, fsd_kind k)
{
    return fsd_of(req)->read_only && k != FSD_K_QDIR && k != FSD_K_QFILE;
}

static bool is_dir_kind(fsd_kind k)
{
    return k == FSD_K_ROOT || k == FSD_K_ADMIN_DIR || k == FSD_K_COLL || k == FSD_K_QDIR ||
           k == FSD_K_IDIR;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */
/* ------------------------------------------------------------------ */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Large writes make .import and batched queries cheap per byte. */
    conn->max_write = 1u << 20;
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    conn->want &= ~(unsigned)FUSE_CAP_POSIX_LOCKS;
    conn->want &= ~(unsigned)FUSE_CAP_FLOCK_LOCKS;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
        conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    /* vecfs keeps no set-id or capability bits to kill on write; saying so
     * spares every write a getxattr("security.capability") round trip. */
    if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV)
        conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
}

/* ------------------------------------------------------------------ */
/* Names                                                                */
/* ------------------------------------------------------------------ */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fsd_metrics_op(FSD_OP_LOOKUP);
    fsd_ref p;
    if (!resolve(req, FSD_OP_LOOKUP, parent, &p))
        return;
    switch (p.kind) {
    case FSD_K_QDIR:
        fsd_qfile_lookup(req, &p, name);
        return;
    case FSD_K_IDIR:
        fsd_ifile_lookup(req, &p, name);
        return;
    default:
        if (!is_dir_kind(p.kind)) {
            fsd_reply_err(req, FSD_OP_LOOKUP, ENOTDIR);
            return;
        }
        fsd_dir_lookup(req, &p, name);
        return;
    }
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    fsd_metrics_op(FSD_OP_FORGET);
    fsd_inodes_forget(fsd_of(req)->inodes, ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    fsd_metrics_op(FSD_OP_FORGET);
    for (size_t i = 0; i < count; i++)
        fsd_inodes_forget(fsd_of(req)->inodes, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

/* ------------------------------------------------------------------ */
/* Attributes                                                           */
/* ------------------------------------------------------------------ */

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fsd_metrics_op(FSD_OP_GETATTR);
    fsd *d = fsd_of(req);
    fsd_ref r;
    if (!resolve(req, FSD_OP_GETATTR, ino, &r))
        return;
    struct stat st;
    int rc;
    double ttl = FSD_TTL_FILE;
    fsd_fh *fh = fi != NULL ? (fsd_fh *)(uintptr_t)fi->fh : NULL;
    if (fh != NULL && fh->type == FSD_FH_VEC) {
        rc = fsd_vec_fh_stat(d, fh, &st);
    } else if (fh != NULL && fh->type == FSD_FH_QUERY) {
        rc = fsd_qfile_fh_stat(req, fh, &st);
    } else if (fh != NULL && fh->type == FSD_FH_IMPORT) {
        rc = fsd_ifile_fh_stat(req, fh, &st);
    } else {
        switch (r.kind) {
        case FSD_K_ROOT:
        case FSD_K_COLL:
        case FSD_K_QDIR:
        case FSD_K_IDIR:
        case FSD_K_ADMIN_DIR:
            fsd_dir_getattr(req, &r);
            return;
        case FSD_K_ADMIN_HEALTH:
        case FSD_K_ADMIN_METRICS:
        case FSD_K_ADMIN_STATS:
            rc = fsd_admin_stat(d, r.kind, r.ino, &st);
            break;
        case FSD_K_CONFIG: {
            fsd_ref c;
            rc = fsd_inodes_ref(d->inodes, r.coll_ino, &c);
            if (rc == 0)
                rc = fsd_config_stat(d, &c, r.ino, &st);
            break;
        }
        case FSD_K_VEC:
            rc = fsd_vec_stat(d, r.ino, r.coll, r.name, &st);
            break;
        case FSD_K_QFILE:
            rc = fsd_qfile_getattr(req, &r, &st);
            break;
        case FSD_K_IFILE:
            rc = fsd_ifile_stat(req, &r, &st);
            break;
        default:
            rc = -ENOENT;
            break;
        }
    }
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_GETATTR, rc);
        return;
    }
    st.st_ino = ino;
    fuse_reply_attr(req, &st, ttl);
}

static void op_setattr_inner(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                             struct fuse_file_info *fi)
{
    fsd_metrics_op(FSD_OP_SETATTR);
    fsd_ref r;
    if (!resolve(req, FSD_OP_SETATTR, ino, &r))
        return;
    if (ro_refused(req, r.kind)) {
        fsd_reply_err(req, FSD_OP_SETATTR, EROFS);
        return;
    }
    switch (r.kind) {
    case FSD_K_COLL:
        fsd_dir_setattr(req, &r, attr, to_set);
        return;
    case FSD_K_VEC:
    case FSD_K_CONFIG:
        fsd_vec_setattr(req, &r, attr, to_set, fi);
        return;
    case FSD_K_QFILE:
        fsd_qfile_setattr(req, &r, attr, to_set, fi);
        return;
    case FSD_K_IFILE:
        fsd_ifile_setattr(req, &r, attr, to_set, fi);
        return;
    default:
        fsd_reply_err(req, FSD_OP_SETATTR, EPERM);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* Directory changes                                                    */
/* ------------------------------------------------------------------ */

static void op_mknod_inner(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                           dev_t rdev)
{
    (void)rdev;
    fsd_metrics_op(FSD_OP_MKNOD);
    fsd_ref p;
    if (!resolve(req, FSD_OP_MKNOD, parent, &p))
        return;
    if (ro_refused(req, p.kind)) {
        fsd_reply_err(req, FSD_OP_MKNOD, EROFS);
        return;
    }
    /* A regular file made without opening it (tar --xattrs does this to set
     * xattrs before the data); device nodes, fifos and sockets have no
     * meaning here. */
    if (!S_ISREG(mode) || p.kind != FSD_K_COLL) {
        fsd_reply_err(req, FSD_OP_MKNOD, EPERM);
        return;
    }
    fsd_vec_mknod(req, &p, name, mode);
}

static void op_mkdir_inner(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    fsd_metrics_op(FSD_OP_MKDIR);
    fsd_ref p;
    if (!resolve(req, FSD_OP_MKDIR, parent, &p))
        return;
    if (ro_refused(req, p.kind)) {
        fsd_reply_err(req, FSD_OP_MKDIR, EROFS);
        return;
    }
    if (p.kind != FSD_K_ROOT) {
        fsd_reply_err(req, FSD_OP_MKDIR, EPERM);
        return;
    }
    fsd_dir_mkdir(req, &p, name, mode);
}

static void op_unlink_inner(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fsd_metrics_op(FSD_OP_UNLINK);
    fsd_ref p;
    if (!resolve(req, FSD_OP_UNLINK, parent, &p))
        return;
    if (ro_refused(req, p.kind)) {
        fsd_reply_err(req, FSD_OP_UNLINK, EROFS);
        return;
    }
    switch (p.kind) {
    case FSD_K_COLL:
        fsd_vec_unlink(req, &p, name);
        return;
    case FSD_K_QDIR:
        fsd_qfile_unlink(req, &p, name);
        return;
    default:
        fsd_reply_err(req, FSD_OP_UNLINK, p.kind == FSD_K_ROOT ? EISDIR : EPERM);
        return;
    }
}

static void op_rmdir_inner(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fsd_metrics_op(FSD_OP_RMDIR);
    fsd_ref p;
    if (!resolve(req, FSD_OP_RMDIR, parent, &p))
        return;
    if (ro_refused(req, p.kind)) {
        fsd_reply_err(req, FSD_OP_RMDIR, EROFS);
        return;
    }
    if (p.kind != FSD_K_ROOT) {
        bool special =
            p.kind == FSD_K_COLL && (strcmp(name, ".query") == 0 || strcmp(name, ".import") == 0);
        fsd_reply_err(req, FSD_OP_RMDIR, special ? EPERM : ENOTDIR);
        return;
    }
    fsd_dir_rmdir(req, &p, name);
}

static void op_symlink_inner(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link;
    (void)parent;
    (void)name;
    fsd_metrics_op(FSD_OP_SYMLINK);
    fsd_reply_err(req, FSD_OP_SYMLINK, fsd_of(req)->read_only ? EROFS : EPERM);
}

static void op_link_inner(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino;
    (void)newparent;
    (void)newname;
    fsd_metrics_op(FSD_OP_LINK);
    fsd_reply_err(req, FSD_OP_LINK, fsd_of(req)->read_only ? EROFS : EPERM);
}

static void op_rename_inner(fuse_req_t req, fuse_ino_t parent, const char *name,
                            fuse_ino_t newparent, const char *newname, unsigned int flags)
{
    fsd_metrics_op(FSD_OP_RENAME);
    fsd_ref p, np;
    if (!resolve(req, FSD_OP_RENAME, parent, &p) || !resolve(req, FSD_OP_RENAME, newparent, &np))
        return;
    if (ro_refused(req, p.kind)) {
        fsd_reply_err(req, FSD_OP_RENAME, EROFS);
        return;
    }
    if (flags & ~(unsigned)RENAME_NOREPLACE) {
        fsd_reply_err(req, FSD_OP_RENAME, EINVAL);
        return;
    }
    if (p.kind == FSD_K_ROOT && np.kind == FSD_K_ROOT) {
        fsd_dir_rename(req, &p, name, &np, newname, flags);
        return;
    }
    if (p.kind == FSD_K_COLL && np.kind == FSD_K_COLL) {
        if (p.ino != np.ino) {
            /* mv falls back to copy + unlink across collections. */
            fsd_reply_err(req, FSD_OP_RENAME, EXDEV);
            return;
        }
        fsd_vec_rename(req, &p, name, newname, flags);
        return;
    }
    if (p.kind == FSD_K_QDIR && np.kind == FSD_K_QDIR && p.ino == np.ino) {
        fsd_qfile_rename(req, &p, name, newname);
        return;
    }
    if (p.kind == FSD_K_COLL && (np.kind == FSD_K_QDIR || np.kind == FSD_K_IDIR)) {
        /* Not EXDEV: mv would fall back to copy + unlink and turn a vector
         * into a private query (or a batch) and delete it. */
        fsd_reply_err(req, FSD_OP_RENAME, EINVAL);
        return;
    }
    fsd_reply_err(req, FSD_OP_RENAME, EXDEV);
}

/* ------------------------------------------------------------------ */
/* Files                                                                */
/* ------------------------------------------------------------------ */

static void op_create_inner(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                            struct fuse_file_info *fi)
{
    fsd_metrics_op(FSD_OP_CREATE);
    fsd_ref p;
    if (!resolve(req, FSD_OP_CREATE, parent, &p))
        return;
    if (ro_refused(req, p.kind)) {
        fsd_reply_err(req, FSD_OP_CREATE, EROFS);
        return;
    }
    if (!S_ISREG(mode)) {
        fsd_reply_err(req, FSD_OP_CREATE, EPERM);
        return;
    }
    switch (p.kind) {
    case FSD_K_COLL:
        fsd_vec_create(req, &p, name, mode, fi);
        return;
    case FSD_K_QDIR:
        fsd_qfile_create(req, &p, name, mode, fi);
        return;
    case FSD_K_IDIR:
        fsd_ifile_create(req, &p, name, mode, fi);
        return;
    default:
        fsd_reply_err(req, FSD_OP_CREATE, EPERM);
        return;
    }
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fsd_metrics_op(FSD_OP_OPEN);
    fsd_ref r;
    if (!resolve(req, FSD_OP_OPEN, ino, &r))
        return;
    if (ro_refused(req, r.kind) && (fi->flags & O_ACCMODE) != O_RDONLY) {
        fsd_reply_err(req, FSD_OP_OPEN, EROFS);
        return;
    }
    switch (r.kind) {
    case FSD_K_VEC:
    case FSD_K_CONFIG:
        fsd_vec_open(req, &r, fi);
        return;
    case FSD_K_QFILE:
        fsd_qfile_open(req, &r, fi);
        return;
    case FSD_K_IFILE:
        fsd_ifile_open(req, &r, fi);
        return;
    case FSD_K_ADMIN_HEALTH:
    case FSD_K_ADMIN_METRICS:
    case FSD_K_ADMIN_STATS:
        fsd_admin_open(req, &r, fi);
        return;
    default:
        fsd_reply_err(req, FSD_OP_OPEN, EISDIR);
        return;
    }
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_READ);
    fsd_fh *fh = (fsd_fh *)(uintptr_t)fi->fh;
    if (fh == NULL || off < 0) {
        fsd_reply_err(req, FSD_OP_READ, fh == NULL ? EBADF : EINVAL);
        return;
    }
    switch (fh->type) {
    case FSD_FH_VEC:
        fsd_vec_read(req, fh, size, off);
        return;
    case FSD_FH_QUERY:
        fsd_qfile_read(req, fh, size, off);
        return;
    case FSD_FH_BUFFER: {
        /* Reply from a copy: the kernel may complete the read, let the
         * reader close and deliver the release before writev() returns
         * here, so the reply must not point into memory release frees. */
        fsd_buf_fh *b = (fsd_buf_fh *)fh;
        size_t o = (size_t)off;
        size_t n = o >= b->content.len ? 0 : b->content.len - o;
        if (n > size)
            n = size;
        char *copy = n ? malloc(n) : NULL;
        if (n && copy == NULL) {
            fsd_reply_err(req, FSD_OP_READ, ENOMEM);
            return;
        }
        if (n)
            memcpy(copy, b->content.p + o, n);
        fuse_reply_buf(req, copy, n);
        free(copy);
        return;
    }
    default:
        fsd_reply_err(req, FSD_OP_READ, EBADF);
        return;
    }
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_WRITE);
    fsd_fh *fh = (fsd_fh *)(uintptr_t)fi->fh;
    if (fh == NULL || off < 0) {
        fsd_reply_err(req, FSD_OP_WRITE, fh == NULL ? EBADF : EINVAL);
        return;
    }
    switch (fh->type) {
    case FSD_FH_VEC:
        fsd_vec_write(req, fh, buf, size, off);
        return;
    case FSD_FH_QUERY:
        fsd_qfile_write(req, fh, buf, size, off);
        return;
    case FSD_FH_IMPORT:
        fsd_ifile_write(req, fh, buf, size, off);
        return;
    default:
        fsd_reply_err(req, FSD_OP_WRITE, EBADF);
        return;
    }
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_FLUSH);
    fsd_fh *fh = (fsd_fh *)(uintptr_t)fi->fh;
    if (fh == NULL) {
        fsd_reply_err(req, FSD_OP_FLUSH, 0);
        return;
    }
    switch (fh->type) {
    case FSD_FH_VEC:
        fsd_vec_flush(req, fh, false, FSD_OP_FLUSH);
        return;
    case FSD_FH_QUERY:
        fsd_qfile_flush(req, fh, FSD_OP_FLUSH);
        return;
    case FSD_FH_IMPORT:
        fsd_ifile_flush(req, fh, FSD_OP_FLUSH);
        return;
    default:
        fsd_reply_err(req, FSD_OP_FLUSH, 0);
        return;
    }
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_FSYNC);
    fsd_fh *fh = (fsd_fh *)(uintptr_t)fi->fh;
    if (fh != NULL && fh->type == FSD_FH_VEC) {
        fsd_vec_flush(req, fh, datasync != 0, FSD_OP_FSYNC);
        return;
    }
    if (fh != NULL && fh->type == FSD_FH_QUERY) {
        fsd_qfile_flush(req, fh, FSD_OP_FSYNC);
        return;
    }
    if (fh != NULL && fh->type == FSD_FH_IMPORT) {
        fsd_ifile_flush(req, fh, FSD_OP_FSYNC);
        return;
    }
    fsd_reply_err(req, FSD_OP_FSYNC, 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_RELEASE);
    fsd_fh *fh = (fsd_fh *)(uintptr_t)fi->fh;
    if (fh == NULL) {
        fuse_reply_err(req, 0);
        return;
    }
    switch (fh->type) {
    case FSD_FH_VEC:
        fsd_vec_release(req, fh);
        return;
    case FSD_FH_QUERY:
        fsd_qfile_release(req, fh);
        return;
    case FSD_FH_IMPORT:
        fsd_ifile_release(req, fh);
        return;
    case FSD_FH_BUFFER: {
        fsd_buf_fh *b = (fsd_buf_fh *)fh;
        fsd_fh_untrack(fsd_of(req), fh);
        vc_buf_release(&b->content);
        free(b);
        fuse_reply_err(req, 0);
        return;
    }
    default:
        fuse_reply_err(req, 0);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* Directories                                                          */
/* ------------------------------------------------------------------ */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fsd_metrics_op(FSD_OP_OPENDIR);
    fsd_ref r;
    if (!resolve(req, FSD_OP_OPENDIR, ino, &r))
        return;
    if (!is_dir_kind(r.kind)) {
        fsd_reply_err(req, FSD_OP_OPENDIR, ENOTDIR);
        return;
    }
    fsd_dir_opendir(req, &r, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    fsd_metrics_op(FSD_OP_READDIR);
    fsd_ref r;
    if (!resolve(req, FSD_OP_READDIR, ino, &r))
        return;
    fsd_dir_readdir(req, &r, size, off, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_RELEASEDIR);
    fsd_dir_releasedir(req, fi);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    (void)fi;
    fsd_metrics_op(FSD_OP_FSYNC);
    int rc = st_store_sync(fsd_of(req)->store);
    fsd_reply_err(req, FSD_OP_FSYNC, rc);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_STATFS);
    fsd_dir_statfs(req);
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                  */
/* ------------------------------------------------------------------ */

static void op_setxattr_inner(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                              size_t size, int flags)
{
    fsd_metrics_op(FSD_OP_SETXATTR);
    fsd_ref r;
    if (!resolve(req, FSD_OP_SETXATTR, ino, &r))
        return;
    if (ro_refused(req, r.kind)) {
        fsd_reply_err(req, FSD_OP_SETXATTR, EROFS);
        return;
    }
    fsd_xattr_set(req, &r, name, value, size, flags);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    fsd_metrics_op(FSD_OP_GETXATTR);
    fsd_ref r;
    if (!resolve(req, FSD_OP_GETXATTR, ino, &r))
        return;
    fsd_xattr_get(req, &r, name, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    fsd_metrics_op(FSD_OP_LISTXATTR);
    fsd_ref r;
    if (!resolve(req, FSD_OP_LISTXATTR, ino, &r))
        return;
    fsd_xattr_list(req, &r, size);
}

static void op_removexattr_inner(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    fsd_metrics_op(FSD_OP_REMOVEXATTR);
    fsd_ref r;
    if (!resolve(req, FSD_OP_REMOVEXATTR, ino, &r))
        return;
    if (ro_refused(req, r.kind)) {
        fsd_reply_err(req, FSD_OP_REMOVEXATTR, EROFS);
        return;
    }
    fsd_xattr_remove(req, &r, name);
}

/* ------------------------------------------------------------------ */
/* Audited entry points: one audit line per mutating request            */
/* ------------------------------------------------------------------ */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    audit_rec a;
    audit_prepare(req, &a, ino, NULL);
    op_setattr_inner(req, ino, attr, to_set, fi);
    audit_end(&a, "setattr");
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    audit_rec a;
    audit_prepare(req, &a, parent, name);
    op_mknod_inner(req, parent, name, mode, rdev);
    audit_end(&a, "mknod");
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    audit_rec a;
    audit_prepare(req, &a, parent, name);
    op_mkdir_inner(req, parent, name, mode);
    audit_end(&a, "mkdir");
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    audit_rec a;
    audit_prepare(req, &a, parent, name);
    op_unlink_inner(req, parent, name);
    audit_end(&a, "unlink");
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    audit_rec a;
    audit_prepare(req, &a, parent, name);
    op_rmdir_inner(req, parent, name);
    audit_end(&a, "rmdir");
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    audit_rec a;
    audit_prepare(req, &a, parent, name);
    op_symlink_inner(req, link, parent, name);
    audit_end(&a, "symlink");
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    audit_rec a;
    audit_prepare(req, &a, newparent, newname);
    op_link_inner(req, ino, newparent, newname);
    audit_end(&a, "link");
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    audit_rec a, b;
    audit_prepare(req, &a, parent, name);
    audit_prepare(req, &b, newparent, newname);
    if (a.on && b.on)
        snprintf(a.new_path, sizeof a.new_path, "%s", b.path);
    op_rename_inner(req, parent, name, newparent, newname, flags);
    audit_end(&a, "rename");
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    audit_rec a;
    audit_prepare(req, &a, parent, name);
    op_create_inner(req, parent, name, mode, fi);
    audit_end(&a, "create");
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    audit_rec a;
    audit_prepare(req, &a, ino, NULL);
    op_setxattr_inner(req, ino, name, value, size, flags);
    audit_end(&a, "setxattr");
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    audit_rec a;
    audit_prepare(req, &a, ino, NULL);
    op_removexattr_inner(req, ino, name);
    audit_end(&a, "removexattr");
}

const struct fuse_lowlevel_ops fsd_ll_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .link = op_link,
    .rename = op_rename,
    .create = op_create,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
};
