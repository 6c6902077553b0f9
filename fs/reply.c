/*
 * reply.c — what every handler needs at its end: the caller's identity,
 * access checks, store attributes as a struct stat, and the replies that
 * count errors.
 *
 * Handlers end in exactly one reply (STYLE rule 5). The error reply is
 * always fsd_reply_err (or fsd_reply_attr with rc < 0), which counts the
 * error in vecfs_fuse_errors_total and remembers its errno for the audit
 * line dispatch.c writes after the handler returned.
 *
 * Invariants
 *   1. Nothing here takes a lock or calls the store: these are the bottom
 *      of the handlers, callable from any of them.
 *   2. reply_errno is per thread: a request is handled on one thread from
 *      its entry point to its reply.
 */
#include "fsd.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

void fsd_caller_get(fuse_req_t req, fsd_caller *out)
{
    assert(out != NULL);
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
    assert(a != NULL && st != NULL);
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

unsigned fsd_setattr_mask(const struct stat *st, int to_set, st_attr *a)
{
    assert(st != NULL && a != NULL);
    unsigned mask = 0;
    memset(a, 0, sizeof *a);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (to_set & FUSE_SET_ATTR_MODE) {
        a->mode = st->st_mode & 07777;
        mask |= ST_SET_MODE;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        a->uid = st->st_uid;
        mask |= ST_SET_UID;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        a->gid = st->st_gid;
        mask |= ST_SET_GID;
    }
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
        a->atime = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now : st->st_atim;
        mask |= ST_SET_ATIME;
    }
    if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
        a->mtime = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now : st->st_mtim;
        mask |= ST_SET_MTIME;
    }
    if (to_set & FUSE_SET_ATTR_CTIME) {
        a->ctime = st->st_ctim;
        mask |= ST_SET_CTIME;
    }
    return mask;
}

int fsd_reply_entry_ttl(fuse_req_t req, fuse_ino_t ino, const struct stat *st, double entry_ttl,
                        double attr_ttl)
{
    assert(st != NULL);
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

int fsd_reply_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st, double timeout)
{
    return fsd_reply_entry_ttl(req, ino, st, timeout, timeout);
}

/* The errno of the last fsd_reply_err on this thread: 0 after a success.
 * Entry points reset it, call the handler (which replies), then read it
 * for the audit log. */
static _Thread_local int reply_errno;

int fsd_reply_errno(void)
{
    return reply_errno;
}

void fsd_reply_errno_reset(void)
{
    reply_errno = 0;
}

void fsd_reply_err(fuse_req_t req, fsd_op op, int err)
{
    if (err < 0)
        err = -err;
    reply_errno = err;
    if (err != 0)
        fsd_metrics_error(op, err);
    fuse_reply_err(req, err);
}

void fsd_reply_attr(fuse_req_t req, fsd_op op, int rc, struct stat *st, fuse_ino_t ino, double ttl)
{
    if (rc < 0) {
        fsd_reply_err(req, op, rc);
        return;
    }
    st->st_ino = ino;
    fuse_reply_attr(req, st, ttl);
}

int fsd_copy_range(const vc_buf *src, size_t size, off_t off, char **out, size_t *n)
{
    assert(src != NULL && off >= 0);
    *out = NULL;
    *n = 0;
    if ((uint64_t)off >= src->len)
        return 0;
    size_t len = src->len - (size_t)off;
    if (len > size)
        len = size;
    if (len == 0)
        return 0;
    char *copy = vc_malloc(len);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, src->p + off, len);
    *out = copy;
    *n = len;
    return 0;
}
