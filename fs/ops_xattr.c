/*
 * ops_xattr.c — extended attributes: `user.*` on vector files are their
 * metadata (SPEC §3.1); on query files they are the batch parameters
 * user.k / user.ef / user.filter (SPEC §3.3).
 *
 * Invariants
 *   1. Only the "user." namespace is stored. Setting another namespace is
 *      EOPNOTSUPP; getting one is ENODATA (so ls, cp -a, rsync -X, tar
 *      --xattrs, which probe for ACLs and security labels, carry on).
 *   2. Values are at most 64 KiB (E2BIG beyond, as Linux reports) and
 *      well-formed UTF-8 (EINVAL otherwise).
 *   3. A new vector file not yet committed keeps its xattrs in its open
 *      state (ops_vec.c) and commits them with its content.
 *   4. Directories, .config, admin and import files carry no xattrs.
 *   5. Every handler ends in exactly one reply.
 */
#include "fsd.h"

#include "names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool user_ns(const char *name)
{
    return strncmp(name, "user.", 5) == 0 && name[5] != '\0';
}

/* Replies to a get/list whose result is rc bytes (>= 0) in buf, or an
 * error. size 0 is the size query. */
static void reply_sized(fuse_req_t req, fsd_op op, int rc, const char *buf, size_t size)
{
    if (rc < 0) {
        fsd_reply_err(req, op, rc);
        return;
    }
    if (size == 0)
        fuse_reply_xattr(req, (size_t)rc);
    else
        fuse_reply_buf(req, buf, (size_t)rc);
}

void fsd_xattr_set(fuse_req_t req, const fsd_ref *r, const char *name, const char *value,
                   size_t size, int flags)
{
    fsd *d = fsd_of(req);
    int rc;
    if (!user_ns(name)) {
        rc = -EOPNOTSUPP;
    } else if (size > ST_XATTR_VALUE_MAX) {
        rc = -E2BIG;
    } else if (strlen(name) > ST_XATTR_NAME_MAX) {
        rc = -ERANGE;
    } else if (!fsd_utf8_valid(value, size)) {
        fsd_reply_err(req, FSD_OP_SETXATTR, EINVAL); /* SPEC §3.1: UTF-8 values */
        return;
    } else if (r->kind == FSD_K_VEC) {
        if (fsd_vfile_xattr(d, r->ino, FSD_XOP_SET, name, value, size, flags, NULL, 0, &rc) == 0)
            rc = st_xattr_set(d->store, r->coll, r->name, name, value, size, flags);
    } else if (r->kind == FSD_K_QFILE) {
        rc = fsd_queries_xattr_set(d->queries, r->coll, fuse_req_ctx(req)->uid, r->name, name,
                                   value, size, flags);
    } else {
        rc = -EOPNOTSUPP;
    }
    fsd_reply_err(req, FSD_OP_SETXATTR, rc == -EINVAL && r->kind == FSD_K_VEC ? ENOENT : rc);
}

void fsd_xattr_get(fuse_req_t req, const fsd_ref *r, const char *name, size_t size)
{
    fsd *d = fsd_of(req);
    char *buf = NULL;
    int rc;
    if (size > 0) {
        buf = malloc(size);
        if (buf == NULL) {
            fsd_reply_err(req, FSD_OP_GETXATTR, ENOMEM);
            return;
        }
    }
    if (!user_ns(name)) {
        rc = -ENODATA;
    } else if (r->kind == FSD_K_VEC) {
        if (fsd_vfile_xattr(d, r->ino, FSD_XOP_GET, name, NULL, 0, 0, buf, size, &rc) == 0) {
            size_t len = 0;
            rc = st_xattr_get(d->store, r->coll, r->name, name, buf, size, &len);
            if (rc == 0)
                rc = (int)len;
            else if (rc == -EINVAL)
                rc = -ENOENT;
        }
    } else if (r->kind == FSD_K_QFILE) {
        rc = fsd_queries_xattr_get(d->queries, r->coll, fuse_req_ctx(req)->uid, r->name, name, buf,
                                   size);
    } else {
        rc = -ENODATA;
    }
    reply_sized(req, FSD_OP_GETXATTR, rc, buf, size);
    free(buf);
}

void fsd_xattr_list(fuse_req_t req, const fsd_ref *r, size_t size)
{
    fsd *d = fsd_of(req);
    char *buf = NULL;
    int rc;
    if (size > 0) {
        buf = malloc(size);
        if (buf == NULL) {
            fsd_reply_err(req, FSD_OP_LISTXATTR, ENOMEM);
            return;
        }
    }
    if (r->kind == FSD_K_VEC) {
        if (fsd_vfile_xattr(d, r->ino, FSD_XOP_LIST, NULL, NULL, 0, 0, buf, size, &rc) == 0) {
            size_t len = 0;
            rc = st_xattr_list(d->store, r->coll, r->name, buf, size, &len);
            if (rc == 0)
                rc = (int)len;
            else if (rc == -EINVAL)
                rc = -ENOENT;
        }
    } else if (r->kind == FSD_K_QFILE) {
        rc =
            fsd_queries_xattr_list(d->queries, r->coll, fuse_req_ctx(req)->uid, r->name, buf, size);
    } else {
        rc = 0;
    }
    reply_sized(req, FSD_OP_LISTXATTR, rc, buf, size);
    free(buf);
}

void fsd_xattr_remove(fuse_req_t req, const fsd_ref *r, const char *name)
{
    fsd *d = fsd_of(req);
    int rc;
    if (!user_ns(name)) {
        rc = -ENODATA;
    } else if (r->kind == FSD_K_VEC) {
        if (fsd_vfile_xattr(d, r->ino, FSD_XOP_REMOVE, name, NULL, 0, 0, NULL, 0, &rc) == 0) {
            rc = st_xattr_remove(d->store, r->coll, r->name, name);
            if (rc == -EINVAL)
                rc = -ENOENT;
        }
    } else if (r->kind == FSD_K_QFILE) {
        rc = fsd_queries_xattr_remove(d->queries, r->coll, fuse_req_ctx(req)->uid, r->name, name);
    } else {
        rc = -ENODATA;
    }
    fsd_reply_err(req, FSD_OP_REMOVEXATTR, rc);
}
