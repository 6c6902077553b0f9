/*
 * dispatch.c — the low-level FUSE entry points: resolve, dispatch, count.
 * This is the only file that knows every handler: the
 * fuse_lowlevel_ops table is at the bottom.
 *
 * Every entry point here (1) counts the request in vecfs_fuse_ops_total,
 * (2) resolves its inode(s) to an fsd_ref copy through the inode table,
 * (3) hands the request to the handler of the node's kind (ops_*.c), or,
 * for a request on an open file, calls the operation the handle carries
 * (fsd_fh_ops) and replies with its result. Requests this layer can
 * answer alone (unknown inode, wrong kind, a read-only mount, links and
 * symlinks) are answered here. Mutating requests are wrapped in one audit
 * line each (the op_* functions at the bottom; audit.c writes them).
 *
 * Invariants
 *   1. Each entry point ends in exactly one reply: either its own or the
 *      reply of the handler it calls last.
 *   2. No lock is held when a handler is called; refs are copies.
 *   3. fi->fh is 0 or points at an fsd_fh whose ops answer read, write,
 *      flush, fsync, release and getattr on the handle.
 */
#include "fsd.h"

#include "audit.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Resolving and refusing                                               */
/* ------------------------------------------------------------------ */

/* Counts a request of op and resolves ino into *r: 0, or -ENOENT (an
 * inode the table no longer knows, ESTALE-like). */
static int resolve(fuse_req_t req, fsd_op op, fuse_ino_t ino, fsd_ref *r)
{
    fsd_metrics_op(op);
    return fsd_inodes_ref(fsd_of(req)->inodes, ino, r) < 0 ? -ENOENT : 0;
}

/* On a --read-only mount everything is refused with EROFS except query
 * files, which are private scratch space in memory: querying a read-only
 * store must work. */
static bool ro_refused(fuse_req_t req, fsd_kind k)
{
    return fsd_of(req)->read_only && k != FSD_K_QDIR && k != FSD_K_QFILE;
}

/* As resolve, for a request that changes something: -EROFS on a
 * read-only mount. */
static int resolve_change(fuse_req_t req, fsd_op op, fuse_ino_t ino, fsd_ref *r)
{
    int rc = resolve(req, op, ino, r);
    return rc == 0 && ro_refused(req, r->kind) ? -EROFS : rc;
}

static bool is_dir_kind(fsd_kind k)
{
    return k == FSD_K_ROOT || k == FSD_K_ADMIN_DIR || k == FSD_K_COLL || k == FSD_K_QDIR ||
           k == FSD_K_IDIR;
}

/* ------------------------------------------------------------------ */
/* What each kind of node answers                                       */
/* ------------------------------------------------------------------ */

/* The handlers of one kind of node, for the requests whose handler
 * depends on the node's (or the parent's) kind. NULL: the kind does not
 * take the request, and the entry point refuses it. */
typedef struct node_ops {
    void (*lookup)(fuse_req_t req, const fsd_ref *parent, const char *name);
    void (*setattr)(fuse_req_t req, const fsd_ref *r, const struct stat *st, int to_set,
                    struct fuse_file_info *fi);
    void (*create)(fuse_req_t req, const fsd_ref *parent, const char *name, mode_t mode,
                   struct fuse_file_info *fi);
    void (*open)(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);
    void (*unlink)(fuse_req_t req, const fsd_ref *parent, const char *name);
} node_ops;

static const node_ops kinds[] = {
    [FSD_K_ROOT] = {.lookup = fsd_dir_lookup},
    [FSD_K_ADMIN_DIR] = {.lookup = fsd_dir_lookup},
    [FSD_K_ADMIN_HEALTH] = {.open = fsd_admin_open},
    [FSD_K_ADMIN_METRICS] = {.open = fsd_admin_open},
    [FSD_K_ADMIN_STATS] = {.open = fsd_admin_open},
    [FSD_K_ADMIN_FAULT] = {.open = fsd_admin_open}, /* exists in test builds only */
    [FSD_K_COLL] = {.lookup = fsd_dir_lookup,
                    .setattr = fsd_dir_setattr,
                    .create = fsd_vec_create,
                    .unlink = fsd_vec_unlink},
    [FSD_K_CONFIG] = {.setattr = fsd_vec_setattr, .open = fsd_vec_open},
    [FSD_K_VEC] = {.setattr = fsd_vec_setattr, .open = fsd_vec_open},
    [FSD_K_QDIR] = {.lookup = fsd_qfile_lookup,
                    .create = fsd_qfile_create,
                    .unlink = fsd_qfile_unlink},
    [FSD_K_QFILE] = {.setattr = fsd_qfile_setattr, .open = fsd_qfile_open},
    [FSD_K_IDIR] = {.lookup = fsd_ifile_lookup, .create = fsd_ifile_create},
    [FSD_K_IFILE] = {.setattr = fsd_ifile_setattr, .open = fsd_ifile_open},
};

/* The handlers of kind k (every kind has an entry; an unknown one answers
 * nothing). */
static const node_ops *kind_ops(fsd_kind k)
{
    static const node_ops none;
    return (size_t)k < sizeof kinds / sizeof kinds[0] ? &kinds[k] : &none;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */
/* ------------------------------------------------------------------ */

/* Negotiates the connection's capabilities. */
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
    fsd_ref p;
    int rc = resolve(req, FSD_OP_LOOKUP, parent, &p);
    if (rc == 0 && kind_ops(p.kind)->lookup == NULL)
        rc = -ENOTDIR;
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_LOOKUP, rc);
        return;
    }
    kind_ops(p.kind)->lookup(req, &p, name);
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

/* Stat of a file node r without a handle. 0 or a negative errno. */
static int file_stat(fuse_req_t req, const fsd_ref *r, struct stat *st)
{
    fsd *d = fsd_of(req);
    switch (r->kind) {
    case FSD_K_ADMIN_HEALTH:
    case FSD_K_ADMIN_METRICS:
    case FSD_K_ADMIN_STATS:
    case FSD_K_ADMIN_FAULT:
        return fsd_admin_stat(d, r->kind, r->ino, st);
    case FSD_K_CONFIG: {
        fsd_ref c;
        int rc = fsd_inodes_ref(d->inodes, r->coll_ino, &c);
        return rc == 0 ? fsd_config_stat(d, &c, r->ino, st) : rc;
    }
    case FSD_K_VEC:
        return fsd_vec_stat(d, r->ino, r->coll, r->name, st);
    case FSD_K_QFILE:
        return fsd_qfile_getattr(req, r, st);
    case FSD_K_IFILE:
        return fsd_ifile_stat(d, r, st);
    default:
        return -ENOENT;
    }
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fsd_ref r;
    struct stat st;
    int rc = resolve(req, FSD_OP_GETATTR, ino, &r);
    fsd_fh *fh = fsd_fh_of(fi);
    if (rc == 0 && fh != NULL && fh->ops->stat != NULL) {
        rc = fh->ops->stat(fsd_of(req), fh, &st);
    } else if (rc == 0 && is_dir_kind(r.kind)) {
        fsd_dir_getattr(req, &r);
        return;
    } else if (rc == 0) {
        rc = file_stat(req, &r, &st);
    }
    fsd_reply_attr(req, FSD_OP_GETATTR, rc, &st, ino,
                   rc == 0 && r.kind == FSD_K_QFILE ? fsd_qfile_attr_ttl(fsd_of(req))
                                                    : FSD_TTL_FILE);
}

/* setattr, without its audit line (op_setattr below). */
static void op_setattr_inner(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                             struct fuse_file_info *fi)
{
    fsd_ref r;
    int rc = resolve_change(req, FSD_OP_SETATTR, ino, &r);
    if (rc == 0 && kind_ops(r.kind)->setattr == NULL)
        rc = -EPERM;
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_SETATTR, rc);
        return;
    }
    kind_ops(r.kind)->setattr(req, &r, attr, to_set, fi);
}

/* ------------------------------------------------------------------ */
/* Directory changes                                                    */
/* ------------------------------------------------------------------ */

/* mknod, without its audit line (op_mknod below). A regular file made
 * without opening it (tar --xattrs does this to set xattrs before the
 * data); device nodes, fifos and sockets have no meaning here. */
static void op_mknod_inner(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    fsd_ref p;
    int rc = resolve_change(req, FSD_OP_MKNOD, parent, &p);
    if (rc == 0 && (!S_ISREG(mode) || p.kind != FSD_K_COLL))
        rc = -EPERM;
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_MKNOD, rc);
        return;
    }
    fsd_vec_mknod(req, &p, name, mode);
}

/* mkdir, without its audit line (op_mkdir below). */
static void op_mkdir_inner(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    fsd_ref p;
    int rc = resolve_change(req, FSD_OP_MKDIR, parent, &p);
    if (rc == 0 && p.kind != FSD_K_ROOT)
        rc = -EPERM;
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_MKDIR, rc);
        return;
    }
    fsd_dir_mkdir(req, &p, name, mode);
}

/* unlink, without its audit line (op_unlink below). */
static void op_unlink_inner(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fsd_ref p;
    int rc = resolve_change(req, FSD_OP_UNLINK, parent, &p);
    if (rc == 0 && kind_ops(p.kind)->unlink == NULL)
        rc = p.kind == FSD_K_ROOT ? -EISDIR : -EPERM;
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_UNLINK, rc);
        return;
    }
    kind_ops(p.kind)->unlink(req, &p, name);
}

/* rmdir, without its audit line (op_rmdir below). */
static void op_rmdir_inner(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fsd_ref p;
    int rc = resolve_change(req, FSD_OP_RMDIR, parent, &p);
    if (rc == 0 && p.kind != FSD_K_ROOT) {
        bool special =
            p.kind == FSD_K_COLL && (strcmp(name, ".query") == 0 || strcmp(name, ".import") == 0);
        rc = special ? -EPERM : -ENOTDIR;
    }
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_RMDIR, rc);
        return;
    }
    fsd_dir_rmdir(req, &p, name);
}

/* Symlinks and hard links: not supported (SPEC §3.1). */
static void op_link_refused(fuse_req_t req, fsd_op op)
{
    fsd_metrics_op(op);
    fsd_reply_err(req, op, fsd_of(req)->read_only ? EROFS : EPERM);
}

/* rename, without its audit line (op_rename below). */
static void op_rename_inner(fuse_req_t req, fuse_ino_t parent, const char *name,
                            fuse_ino_t newparent, const char *newname, unsigned int flags)
{
    fsd_ref p, np;
    int rc = resolve(req, FSD_OP_RENAME, parent, &p);
    if (rc == 0 && fsd_inodes_ref(fsd_of(req)->inodes, newparent, &np) < 0)
        rc = -ENOENT;
    if (rc == 0 && ro_refused(req, p.kind))
        rc = -EROFS;
    if (rc == 0 && (flags & ~(unsigned)RENAME_NOREPLACE))
        rc = -EINVAL;
    if (rc == 0 && p.kind == FSD_K_COLL && np.kind == FSD_K_COLL && p.ino != np.ino)
        rc = -EXDEV; /* mv falls back to copy + unlink across collections. */
    if (rc == 0 && p.kind == FSD_K_ROOT && np.kind == FSD_K_ROOT) {
        fsd_dir_rename(req, &p, name, &np, newname, flags);
        return;
    }
    if (rc == 0 && p.kind == FSD_K_COLL && np.kind == FSD_K_COLL) {
        fsd_vec_rename(req, &p, name, newname, flags);
        return;
    }
    if (rc == 0 && p.kind == FSD_K_QDIR && np.kind == FSD_K_QDIR && p.ino == np.ino) {
        fsd_qfile_rename(req, &p, name, newname);
        return;
    }
    /* A vector into .query or .import: not EXDEV, or mv would fall back to
     * copy + unlink and turn a vector into a private query (or a batch)
     * and delete it. */
    if (rc == 0)
        rc = p.kind == FSD_K_COLL && (np.kind == FSD_K_QDIR || np.kind == FSD_K_IDIR) ? -EINVAL
                                                                                      : -EXDEV;
    fsd_reply_err(req, FSD_OP_RENAME, rc);
}

/* ------------------------------------------------------------------ */
/* Files                                                                */
/* ------------------------------------------------------------------ */

/* create, without its audit line (op_create below). */
static void op_create_inner(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                            struct fuse_file_info *fi)
{
    fsd_ref p;
    int rc = resolve_change(req, FSD_OP_CREATE, parent, &p);
    if (rc == 0 && (!S_ISREG(mode) || kind_ops(p.kind)->create == NULL))
        rc = -EPERM;
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_CREATE, rc);
        return;
    }
    kind_ops(p.kind)->create(req, &p, name, mode, fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fsd_ref r;
    int rc = resolve(req, FSD_OP_OPEN, ino, &r);
    if (rc == 0 && ro_refused(req, r.kind) && (fi->flags & O_ACCMODE) != O_RDONLY)
        rc = -EROFS;
    if (rc == 0 && kind_ops(r.kind)->open == NULL)
        rc = -EISDIR;
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_OPEN, rc);
        return;
    }
    kind_ops(r.kind)->open(req, &r, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_READ);
    fsd_fh *fh = fsd_fh_of(fi);
    int rc = fh == NULL ? -EBADF : off < 0 ? -EINVAL : fh->ops->read == NULL ? -EBADF : 0;
    char *copy = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = fh->ops->read(fsd_of(req), fh, size, off, &copy, &n);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_READ, rc);
        return;
    }
    fuse_reply_buf(req, copy, n);
    free(copy);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_WRITE);
    fsd_fh *fh = fsd_fh_of(fi);
    int rc = fh == NULL ? -EBADF : off < 0 ? -EINVAL : fh->ops->write == NULL ? -EBADF : 0;
    if (rc == 0)
        rc = fh->ops->write(fsd_of(req), fh, buf, size, off);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_WRITE, rc);
        return;
    }
    fuse_reply_write(req, size);
}

/* flush (close) and fsync of an open file: the handle's flush decides. */
static void flush_fh(fuse_req_t req, fsd_op op, struct fuse_file_info *fi)
{
    fsd_metrics_op(op);
    fsd_fh *fh = fsd_fh_of(fi);
    int rc = 0;
    bool quiet = false;
    if (fh != NULL && fh->ops->flush != NULL) {
        fsd_caller who;
        fsd_caller_get(req, &who);
        rc = fh->ops->flush(fsd_of(req), fh, &who, op == FSD_OP_FSYNC, &quiet);
    }
    if (quiet)
        fuse_reply_err(req, -rc); /* a verdict, not a failure: not counted */
    else
        fsd_reply_err(req, op, rc);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    flush_fh(req, FSD_OP_FLUSH, fi);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    flush_fh(req, FSD_OP_FSYNC, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fsd_metrics_op(FSD_OP_RELEASE);
    fsd_fh *fh = fsd_fh_of(fi);
    if (fh != NULL) {
        fsd_caller who;
        fsd_caller_get(req, &who);
        fsd_fh_untrack(fsd_of(req), fh);
        fh->ops->release(fsd_of(req), fh, &who);
    }
    fuse_reply_err(req, 0);
}

/* A restricted ioctl on an open file (the kernel copied in_bufsz bytes in
 * and takes up to out_bufsz back; both come from cmd). A handle's result
 * goes back with its bytes, also when it is an error, so the caller gets
 * the errno and the message the bytes carry. */
static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
                     struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
                     size_t out_bufsz)
{
    (void)ino;
    (void)arg;
    fsd_metrics_op(FSD_OP_IOCTL);
    fsd_fh *fh = fsd_fh_of(fi);
    unsigned char out[FSD_IOCTL_MAX];
    size_t n = 0;
    int rc = -ENOTTY;
    if (fh != NULL && fh->ops->ioctl != NULL && !(flags & FUSE_IOCTL_DIR))
        rc = out_bufsz > sizeof out
                 ? -EINVAL
                 : fh->ops->ioctl(fsd_of(req), fh, cmd, in_buf, in_bufsz, out, out_bufsz, &n);
    if (rc < 0 && n == 0) {
        fsd_reply_err(req, FSD_OP_IOCTL, rc);
        return;
    }
    if (rc < 0)
        fsd_metrics_error(FSD_OP_IOCTL, -rc);
    fuse_reply_ioctl(req, rc, out, n);
}

/* ------------------------------------------------------------------ */
/* Directories                                                          */
/* ------------------------------------------------------------------ */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fsd_ref r;
    int rc = resolve(req, FSD_OP_OPENDIR, ino, &r);
    if (rc == 0 && !is_dir_kind(r.kind))
        rc = -ENOTDIR;
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_OPENDIR, rc);
        return;
    }
    fsd_dir_opendir(req, &r, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    fsd_ref r;
    int rc = resolve(req, FSD_OP_READDIR, ino, &r);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_READDIR, rc);
        return;
    }
    fsd_dir_readdir(req, &r, size, off, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fsd_metrics_op(FSD_OP_RELEASEDIR);
    fuse_reply_err(req, 0); /* opendir keeps no state */
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

/* setxattr, without its audit line (op_setxattr below). */
static void op_setxattr_inner(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                              size_t size, int flags)
{
    fsd_ref r;
    int rc = resolve_change(req, FSD_OP_SETXATTR, ino, &r);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_SETXATTR, rc);
        return;
    }
    fsd_xattr_set(req, &r, name, value, size, flags);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    fsd_ref r;
    int rc = resolve(req, FSD_OP_GETXATTR, ino, &r);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_GETXATTR, rc);
        return;
    }
    fsd_xattr_get(req, &r, name, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    fsd_ref r;
    int rc = resolve(req, FSD_OP_LISTXATTR, ino, &r);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_LISTXATTR, rc);
        return;
    }
    fsd_xattr_list(req, &r, size);
}

/* removexattr, without its audit line (op_removexattr below). */
static void op_removexattr_inner(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    fsd_ref r;
    int rc = resolve_change(req, FSD_OP_REMOVEXATTR, ino, &r);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_REMOVEXATTR, rc);
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
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, ino, NULL);
    op_setattr_inner(req, ino, attr, to_set, fi);
    fsd_audit_end(&a, "setattr");
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)rdev;
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, parent, name);
    op_mknod_inner(req, parent, name, mode);
    fsd_audit_end(&a, "mknod");
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, parent, name);
    op_mkdir_inner(req, parent, name, mode);
    fsd_audit_end(&a, "mkdir");
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, parent, name);
    op_unlink_inner(req, parent, name);
    fsd_audit_end(&a, "unlink");
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, parent, name);
    op_rmdir_inner(req, parent, name);
    fsd_audit_end(&a, "rmdir");
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link;
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, parent, name);
    op_link_refused(req, FSD_OP_SYMLINK);
    fsd_audit_end(&a, "symlink");
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino;
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, newparent, newname);
    op_link_refused(req, FSD_OP_LINK);
    fsd_audit_end(&a, "link");
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    fsd_audit_rec a, b;
    fsd_audit_begin(req, &a, parent, name);
    fsd_audit_begin(req, &b, newparent, newname);
    fsd_audit_rename(&a, &b);
    op_rename_inner(req, parent, name, newparent, newname, flags);
    fsd_audit_end(&a, "rename");
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, parent, name);
    op_create_inner(req, parent, name, mode, fi);
    fsd_audit_end(&a, "create");
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, ino, NULL);
    op_setxattr_inner(req, ino, name, value, size, flags);
    fsd_audit_end(&a, "setxattr");
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    fsd_audit_rec a;
    fsd_audit_begin(req, &a, ino, NULL);
    op_removexattr_inner(req, ino, name);
    fsd_audit_end(&a, "removexattr");
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
    .ioctl = op_ioctl,
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
