/*
 * xattr.c — extended attributes of vectors (their metadata) and the
 * metadata index (MIDX) that answers filters.
 *
 * MIDX key: u32be coll | 16-byte hash("user.KEY" NUL value) (crypto.c,
 * st_meta_hash); values: u32be ids (DUPSORT|DUPFIXED), so the ids of one
 * (key, value) pair come back sorted, many at a time (search.c).
 *
 * Invariants
 *   1. MIDX holds (hash(xname, value), id) iff XATTR(id, xname) exists with
 *      that value and xname starts with "user.": every change of a user
 *      xattr removes the old pair and adds the new one in the same txn.
 *   2. Setting or removing an xattr sets the vector's ctime.
 *   3. Deleting a vector drops all its xattrs and their MIDX pairs
 *      (st_xattrs_drop).
 *   4. VIDX (vidx.c) changes with MIDX, in midx_change: the same pairs.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* xname (xl bytes) is a "user." xattr, indexed in MIDX (invariant 1). */
static bool is_user(const char *xn, size_t xl)
{
    return xl >= 5 && memcmp(xn, "user.", 5) == 0;
}

/* Adds (add) or removes the MIDX pair of (xname, value) for id of o's
 * collection, and its VIDX entries (vidx.c). Removing a pair that is not
 * there is not an error. */
static int midx_change(st_op *o, uint32_t id, const char *xname, const void *val, size_t vl,
                       bool add)
{
    uint8_t mk[20], idb[4];
    st_be32(mk, o->c->id);
    st_meta_hash(&o->st->crypto, xname, val, vl, mk + 4);
    st_be32(idb, id);
    MDB_val mkv = {20, mk}, mdv = {4, idb};
    MDB_dbi db = o->st->db[ST_DB_MIDX];
    int d = add ? mdb_put(o->txn, db, &mkv, &mdv, 0) : mdb_del(o->txn, db, &mkv, &mdv);
    int rc = d == MDB_NOTFOUND && !add ? 0 : st_mdb_err(d);
    return rc ? rc
              : st_vidx_change(o->st, o->txn, o->c->id, id, xname, strlen(xname), val, vl, add);
}

int st_xattrs_drop(st_op *o, uint32_t id)
{
    assert(o->txn);
    st_store *st = o->st;
    uint8_t pre[8];
    st_key_id(o->c->id, id, pre);
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(o->txn, st->db[ST_DB_XATTRS], &cur));
    if (rc)
        return rc;
    MDB_val k = {8, pre}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && k.mv_size > 8 && memcmp(k.mv_data, pre, 8) == 0) {
        const void *body;
        size_t blen, xl, vl;
        const char *xn;
        const uint8_t *val;
        rc = st_env_open_buf(&st->crypto, ST_DB_XATTRS, k.mv_data, k.mv_size, v.mv_data, v.mv_size,
                             &o->scratch, &body, &blen);
        if (rc == -ENOMEM)
            break;
        if (rc == 0)
            rc = st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl);
        if (rc)
            break;
        if (is_user(xn, xl)) {
            char name[ST_XATTR_NAME_MAX + 1];
            memcpy(name, xn, xl);
            name[xl] = 0;
            rc = midx_change(o, id, name, val, vl, false);
        }
        if (rc == 0)
            rc = st_mdb_err(mdb_cursor_del(cur, 0));
        if (rc == 0)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (mrc == MDB_NOTFOUND || mrc == EINVAL) {
            k.mv_size = 8;
            k.mv_data = pre;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        }
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc && mrc != MDB_NOTFOUND)
        rc = st_mdb_err(mrc);
    return rc;
}

int st_xattr_store(st_op *o, uint32_t id, const char *xname, const void *value, size_t len,
                   int flags)
{
    assert(o->txn && xname);
    st_store *st = o->st;
    o->bytes += len;
    uint8_t key[ST_XATTR_KEY_MAX];
    size_t kl = st_key_xattr(st, o->c->id, id, xname, key);
    const void *body;
    size_t blen, xl, vl;
    const char *xn;
    const uint8_t *oldv;
    int rc = st_get(st, o->txn, ST_DB_XATTRS, key, kl, &body, &blen, &o->scratch);
    bool exists = rc == 0;
    if (rc && rc != -ENOENT)
        return rc;
    if (exists && (flags & ST_XATTR_CREATE))
        return -EEXIST;
    if (!exists && (flags & ST_XATTR_REPLACE))
        return -ENODATA;
    bool user = is_user(xname, strlen(xname));
    if (exists && user) {
        rc = st_rec_xattr_dec(body, blen, &xn, &xl, &oldv, &vl);
        if (rc == 0)
            rc = midx_change(o, id, xname, oldv, vl, false);
        if (rc)
            return rc;
    }
    vc_buf b = VC_BUF_INIT;
    st_rec_xattr_enc(&b, xname, strlen(xname), value, len);
    rc = b.err ? b.err : st_put(st, o->txn, ST_DB_XATTRS, key, kl, b.p, b.len);
    vc_buf_release(&b);
    if (rc == 0 && user)
        rc = midx_change(o, id, xname, value, len, true);
    return rc;
}

/* Removes xattr xname of id inside o, with its MIDX pair. 0, -ENODATA. */
static int xattr_delete(st_op *o, uint32_t id, const char *xname)
{
    st_store *st = o->st;
    uint8_t key[ST_XATTR_KEY_MAX];
    size_t kl = st_key_xattr(st, o->c->id, id, xname, key);
    const void *body;
    size_t blen, xl, vl;
    const char *xn;
    const uint8_t *val;
    int rc = st_get(st, o->txn, ST_DB_XATTRS, key, kl, &body, &blen, &o->scratch);
    if (rc == -ENOENT)
        rc = -ENODATA;
    if (rc == 0)
        rc = st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl);
    if (rc == 0 && is_user(xname, strlen(xname)))
        rc = midx_change(o, id, xname, val, vl, false);
    MDB_val k = {kl, key};
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o->txn, st->db[ST_DB_XATTRS], &k, NULL));
    return rc;
}

/* The frame of set and remove: one op on vector name (nl bytes) that sets
 * xname (or removes it, when remove) and the vector's ctime. */
static int xattr_change(st_store *st, const char *coll, const char *name, size_t nl,
                        const char *xname, const void *value, size_t len, int flags, bool remove)
{
    st_op o;
    int rc = st_op_begin(st, coll, &o);
    if (rc)
        return rc;
    st_vec_rec r;
    rc = st_vec_rec_get(st, o.txn, o.c->id, name, nl, &r, &o.scratch);
    if (rc == 0)
        rc = remove ? xattr_delete(&o, r.id, xname)
                    : st_xattr_store(&o, r.id, xname, value, len, flags);
    if (rc == 0) {
        st_now(&r.ctime);
        rc = st_vec_rec_put(st, o.txn, o.c->id, &r);
    }
    return st_op_end(&o, rc);
}

int st_xattr_set(st_store *st, const char *coll, const char *name, const char *xname,
                 const void *value, size_t len, int flags)
{
    size_t nl;
    int rc = st_vec_name_arg(name, ST_NAME_FIND, &nl);
    if (rc)
        return rc;
    rc = st_xattr_name_arg(xname, NULL);
    if (rc)
        return rc;
    if (len > ST_XATTR_VALUE_MAX)
        return -E2BIG;
    if ((!value && len) || (flags & ~(ST_XATTR_CREATE | ST_XATTR_REPLACE)) ||
        flags == (ST_XATTR_CREATE | ST_XATTR_REPLACE))
        return -EINVAL;
    rc = st_log_route(st, &(st_log_op){.kind = ST_LOG_XATTR_SET,
                                       .coll = coll,
                                       .name = name,
                                       .to = xname,
                                       .data = value,
                                       .len = len,
                                       .flags = (unsigned)flags});
    if (rc != ST_LOG_LOCAL)
        return rc;
    return xattr_change(st, coll, name, nl, xname, value, len, flags, false);
}

int st_xattr_remove(st_store *st, const char *coll, const char *name, const char *xname)
{
    size_t nl;
    int rc = st_vec_name_arg(name, ST_NAME_FIND, &nl);
    if (rc)
        return rc;
    rc = st_xattr_name_arg(xname, NULL);
    if (rc)
        return rc == -ERANGE ? -ENODATA : rc;
    rc = st_log_route(
        st, &(st_log_op){.kind = ST_LOG_XATTR_REMOVE, .coll = coll, .name = name, .to = xname});
    if (rc != ST_LOG_LOCAL)
        return rc;
    return xattr_change(st, coll, name, nl, xname, NULL, 0, 0, true);
}

int st_xattr_get(st_store *st, const char *coll, const char *name, const char *xname, void *buf,
                 size_t cap, size_t *len_out)
{
    if (!len_out || (!buf && cap))
        return -EINVAL;
    st_vec_view w;
    int rc = st_vec_view_begin(st, coll, name, &w);
    if (rc)
        return rc;
    size_t xnl;
    uint8_t key[ST_XATTR_KEY_MAX];
    const void *body;
    size_t blen, xl, vl;
    const char *xn;
    const uint8_t *val;
    rc = st_xattr_name_arg(xname, &xnl) == 0 ? 0 : -ENODATA;
    if (rc == 0) {
        size_t kl = st_key_xattr(st, w.coll, w.rec.id, xname, key);
        rc = st_get(st, w.txn, ST_DB_XATTRS, key, kl, &body, &blen, &w.scratch);
        if (rc == -ENOENT)
            rc = -ENODATA;
    }
    if (rc == 0)
        rc = st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl);
    if (rc == 0 && (xl != xnl || memcmp(xn, xname, xl) != 0))
        rc = -EIO;
    if (rc == 0) {
        *len_out = vl;
        if (cap > 0 && cap < vl)
            rc = -ERANGE;
        else if (cap > 0 && vl)
            memcpy(buf, val, vl);
    }
    st_vec_view_end(&w);
    return rc;
}

int st_xattr_list(st_store *st, const char *coll, const char *name, char *buf, size_t cap,
                  size_t *len_out)
{
    if (!len_out || (!buf && cap))
        return -EINVAL;
    st_vec_view w;
    int rc = st_vec_view_begin(st, coll, name, &w);
    if (rc)
        return rc;
    MDB_cursor *cur = NULL;
    size_t total = 0;
    rc = st_mdb_err(mdb_cursor_open(w.txn, st->db[ST_DB_XATTRS], &cur));
    uint8_t pre[8];
    st_key_id(w.coll, w.rec.id, pre);
    MDB_val k = {8, pre}, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && k.mv_size > 8 && memcmp(k.mv_data, pre, 8) == 0) {
        const void *body;
        size_t blen, xl, vl;
        const char *xn;
        const uint8_t *val;
        rc = st_env_open_buf(&st->crypto, ST_DB_XATTRS, k.mv_data, k.mv_size, v.mv_data, v.mv_size,
                             &w.scratch, &body, &blen);
        if (rc == -ENOMEM)
            break;
        if (rc == 0)
            rc = st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl);
        if (rc)
            break;
        if (cap > 0) {
            if (total + xl + 1 > cap) {
                rc = -ERANGE;
                break;
            }
            memcpy(buf + total, xn, xl);
            buf[total + xl] = 0;
        }
        total += xl + 1;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc && mrc != MDB_NOTFOUND)
        rc = st_mdb_err(mrc);
    if (rc == 0)
        *len_out = total;
    if (cur)
        mdb_cursor_close(cur);
    st_vec_view_end(&w);
    return rc;
}
