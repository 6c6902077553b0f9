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
 *      state (its fsd_vfile, vfile.h) and commits them with its content.
 *   4. Directories, .config, admin and import files carry no xattrs.
 *   5. Every handler ends in exactly one reply.
 */
#include "vfile.h"

#include <sys/xattr.h>

#include "alloc.h"
#include "names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* true for a name in the user. namespace with a non-empty rest. */
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

/* ------------------------------------------------------------------ */
/* Xattrs of a new vector file                                          */
/* ------------------------------------------------------------------ */

/* What pending_xattr does. */
enum { XOP_SET = 1, XOP_GET, XOP_LIST, XOP_REMOVE };

/* The xattrs of a NEW vector file wait in its vfile (vfile.h) and are
 * committed with its content. Returns 1 if the open file took the call
 * (its result in *rc: as the store's xattr calls), 0 if the vector is in
 * the store and the store should be asked. */
static int pending_xattr(fsd *d, fuse_ino_t ino, int op, const char *xname, const void *value,
                         size_t size, int flags, void *out, size_t cap, int *rc)
{
    fsd_vfile *vf = fsd_vfile_pin(d, ino);
    if (vf == NULL)
        return 0;
    int took = 1;
    fsd_vfile_lock(vf);
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
    case XOP_SET: {
        if (found && (flags & XATTR_CREATE)) {
            *rc = -EEXIST;
            break;
        }
        if (!found && (flags & XATTR_REPLACE)) {
            *rc = -ENODATA;
            break;
        }
        char *v = vc_malloc(size + 1);
        if (v == NULL) {
            *rc = -ENOMEM;
            break;
        }
        if (size)
            memcpy(v, value, size);
        v[size] = '\0';
        if (!found) {
            fsd_pxattr *np = vc_realloc(vf->px, (vf->npx + 1) * sizeof *np);
            char *k = vc_strdup(xname);
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
    case XOP_GET:
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
    case XOP_LIST: {
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
    case XOP_REMOVE:
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
    fsd_vfile_unpin(d, vf);
    return took;
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
        rc = -EINVAL; /* SPEC §3.1: UTF-8 values */
    } else if (r->kind == FSD_K_VEC) {
        if (pending_xattr(d, r->ino, XOP_SET, name, value, size, flags, NULL, 0, &rc) == 0)
            rc = st_xattr_set(d->store, r->coll, r->name, name, value, size, flags);
    } else if (r->kind == FSD_K_QFILE) {
        rc = fsd_queries_xattr_set(d->queries, r->coll, fuse_req_ctx(req)->uid, r->name, name,
                                   value, size, flags);
    } else {
        rc = -EOPNOTSUPP;
    }
    fsd_reply_err(req, FSD_OP_SETXATTR, rc);
}

void fsd_xattr_get(fuse_req_t req, const fsd_ref *r, const char *name, size_t size)
{
    fsd *d = fsd_of(req);
    char *buf = NULL;
    int rc;
    if (size > 0 && (buf = vc_malloc(size)) == NULL) {
        rc = -ENOMEM;
    } else if (!user_ns(name)) {
        rc = -ENODATA;
    } else if (r->kind == FSD_K_VEC) {
        if (pending_xattr(d, r->ino, XOP_GET, name, NULL, 0, 0, buf, size, &rc) == 0) {
            size_t len = 0;
            rc = st_xattr_get(d->store, r->coll, r->name, name, buf, size, &len);
            if (rc == 0)
                rc = (int)len;
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
    if (size > 0 && (buf = vc_malloc(size)) == NULL) {
        rc = -ENOMEM;
    } else if (r->kind == FSD_K_VEC) {
        if (pending_xattr(d, r->ino, XOP_LIST, NULL, NULL, 0, 0, buf, size, &rc) == 0) {
            size_t len = 0;
            rc = st_xattr_list(d->store, r->coll, r->name, buf, size, &len);
            if (rc == 0)
                rc = (int)len;
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
        if (pending_xattr(d, r->ino, XOP_REMOVE, name, NULL, 0, 0, NULL, 0, &rc) == 0) {
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
