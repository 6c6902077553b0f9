/*
 * vec_write.c — the writes of one vector inside an st_op (write_op.c):
 * put (insert or overwrite), delete, rename and setattr.
 *
 * Invariants (of the records of one collection, checked by st_check)
 *   1. VEC(name) exists iff SLOT(id) and CONTENT(id) exist for its id, and
 *      SLOT(id) carries the same name; ORDER(seq) holds namekey(name). A
 *      CONTENT_VEC (content.c) reads its vector from SLOT(id), so SLOT is
 *      rewritten only with the vector it holds (rename) or together with
 *      CONTENT (put).
 *   2. An id is either in use by exactly one VEC, or in FREE, or >= the
 *      COLL record's next_id.
 *   3. MIDX holds (hash(xname, value), id) iff XATTR(id, xname) exists with
 *      that value and xname starts with "user." (xattr.c).
 *   4. COLL.count is the number of VEC records and COLL.bytes the sum of
 *      their sizes.
 *   5. Every id whose index entry may differ from the last snapshot has a
 *      DIRTY entry (put, delete, the target of a replacing rename).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

/* Takes an id for a new vector: the lowest free one, else next_id. */
static int id_alloc(st_op *o, uint32_t *id)
{
    st_store *st = o->st;
    uint8_t pre[4];
    st_be32(pre, o->c->id);
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(o->txn, st->db[ST_DB_FREE], &cur));
    if (rc)
        return rc;
    MDB_val k = {4, pre}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0 && k.mv_size == 8 && memcmp(k.mv_data, pre, 4) == 0) {
        *id = st_get_be32((const uint8_t *)k.mv_data + 4);
        rc = st_mdb_err(mdb_cursor_del(cur, 0));
        mdb_cursor_close(cur);
        return rc;
    }
    mdb_cursor_close(cur);
    if (mrc && mrc != MDB_NOTFOUND)
        return st_mdb_err(mrc);
    if (o->rec.next_id >= UINT32_MAX - 1)
        return -ENOSPC;
    *id = o->rec.next_id++;
    return 0;
}

/* Deletes the vector whose record is r (all its records). */
static int vec_remove(st_op *o, const st_vec_rec *r)
{
    assert(o->txn && r);
    st_store *st = o->st;
    uint32_t coll = o->c->id;
    uint8_t key[ST_VEC_KEY_MAX], ik[8], sk[12];
    size_t kl = st_key_vec(st, coll, r->name, r->name_len, key);
    MDB_val k = {kl, key};
    int rc = st_mdb_err(mdb_del(o->txn, st->db[ST_DB_VECS], &k, NULL));
    st_key_id(coll, r->id, ik);
    MDB_val kid = {8, ik};
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o->txn, st->db[ST_DB_SLOTS], &kid, NULL));
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o->txn, st->db[ST_DB_CONTENT], &kid, NULL));
    st_key_seq(coll, r->seq, sk);
    MDB_val ks = {12, sk};
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o->txn, st->db[ST_DB_ORDER], &ks, NULL));
    if (rc == 0)
        rc = st_xattrs_drop(o, r->id);
    MDB_val empty = {0, NULL};
    if (rc == 0)
        rc = st_mdb_err(mdb_put(o->txn, st->db[ST_DB_FREE], &kid, &empty, 0));
    if (rc == 0)
        rc = st_oplog_mark(st, o->txn, o->c, r->id);
    if (rc == 0)
        rc = st_op_del(o, r->id);
    if (rc == 0)
        rc = st_op_name(o, r->id, NULL, 0);
    if (rc == 0) {
        o->rec.count--;
        o->rec.bytes -= r->size;
    }
    return rc;
}

int st_vec_row_check(const char *name, size_t *nl, const void *content, size_t len,
                     const float *vec, uint32_t dim)
{
    int rc = st_vec_name_arg(name, ST_NAME_NEW, nl);
    if (rc)
        return rc;
    if (!content && len)
        return -EINVAL;
    if (len > ST_CONTENT_MAX)
        return -EFBIG;
    if (!vec || dim == 0 || dim > VF_MAX_DIM || !st_values_ok(vec, dim))
        return -EINVAL;
    return 0;
}

int st_vec_store(st_op *o, const char *name, size_t nl, const void *content, size_t len,
                 const float *vec, uint32_t dim, const st_attr *attr, unsigned mask,
                 uint32_t *id_out, st_vec_rec *held)
{
    assert(o->txn && name && nl > 0 && (attr || !mask));
    st_store *st = o->st;
    uint32_t coll = o->c->id;
    if (o->rec.cfg.dim == 0) {
        o->rec.cfg.dim = dim;
        st_now(&o->rec.cfg_mtime); /* .config's text changed */
    } else if (o->rec.cfg.dim != dim) {
        return -EINVAL;
    }
    if (o->rec.cfg.max_bytes && len > o->rec.cfg.max_bytes)
        return -EFBIG;
    st_vec_rec r, old;
    int rc = st_vec_rec_get(st, o->txn, coll, name, nl, &old, &o->scratch);
    bool exists = rc == 0;
    if (rc && rc != -ENOENT)
        return rc;
    uint64_t count = o->rec.count + (exists ? 0 : 1);
    uint64_t bytes = o->rec.bytes - (exists ? old.size : 0) + len;
    if ((o->rec.cfg.max_vectors && count > o->rec.cfg.max_vectors && !exists) ||
        (o->rec.cfg.max_bytes && bytes > o->rec.cfg.max_bytes && bytes > o->rec.bytes))
        return -EDQUOT;
    struct timespec now;
    st_now(&now);
    if (exists) {
        r = old;
    } else {
        memset(&r, 0, sizeof(r));
        r.mode = 0644;
        r.atime = now;
        rc = id_alloc(o, &r.id);
        if (rc)
            return rc;
        r.seq = o->rec.next_seq++;
        rc = st_order_put(st, o->txn, coll, r.seq, name, nl);
        if (rc)
            return rc;
        memcpy(r.name, name, nl);
        r.name[nl] = 0;
        r.name_len = (uint16_t)nl;
    }
    r.mtime = r.ctime = now;
    r.size = len;
    if (exists && (mask & ST_SET_IF_NEW))
        mask = 0;
    st_attr_apply(attr, mask, ST_ATTR_REF(r));
    if (held)
        *held = r;
    else
        rc = st_vec_rec_put(st, o->txn, coll, &r);
    if (rc == 0)
        rc = st_slot_put(st, o->txn, coll, r.id, name, nl, vec, dim);
    if (rc == 0)
        rc = st_content_put(st, o->txn, coll, r.id, content, len, vec, dim);
    if (rc == 0)
        rc = st_oplog_mark(st, o->txn, o->c, r.id);
    if (rc == 0)
        rc = st_op_ins(o, r.id, vec, dim);
    if (rc == 0 && !exists)
        rc = st_op_name(o, r.id, name, nl);
    if (rc)
        return rc;
    o->rec.count = count;
    o->rec.bytes = bytes;
    o->bytes += len + (uint64_t)dim * sizeof(float) + nl;
    if (id_out)
        *id_out = r.id;
    return 0;
}

int st_vec_put(st_store *st, const char *coll, const char *name, const void *content, size_t len,
               const float *vec, uint32_t dim, const st_attr *attr, unsigned mask)
{
    size_t nl;
    if (!attr && mask)
        return -EINVAL;
    int rc = st_vec_row_check(name, &nl, content, len, vec, dim);
    if (rc)
        return rc;
    st_log_op lo = {.kind = ST_LOG_PUT,
                    .coll = coll,
                    .name = name,
                    .data = content,
                    .len = len,
                    .vec = vec,
                    .dim = dim,
                    .attr = attr ? *attr : (st_attr){0},
                    .mask = mask};
    rc = st_log_route(st, &lo);
    if (rc != ST_LOG_LOCAL)
        return rc;
    mask &= ~ST_PUT_NEW;
    st_op o;
    rc = st_op_begin(st, coll, &o);
    if (rc)
        return rc;
    rc = st_space_check(st, o.txn, (uint64_t)len + (uint64_t)dim * 4 + 2 * nl + 256);
    if (rc == 0)
        rc = st_vec_store(&o, name, nl, content, len, vec, dim, attr, mask, NULL, NULL);
    return st_op_end(&o, rc);
}

int st_vec_delete(st_store *st, const char *coll, const char *name)
{
    size_t nl;
    int rc = st_vec_name_arg(name, ST_NAME_FIND, &nl);
    if (rc)
        return rc;
    rc = st_log_route(st, &(st_log_op){.kind = ST_LOG_DELETE, .coll = coll, .name = name});
    if (rc != ST_LOG_LOCAL)
        return rc;
    st_op o;
    rc = st_op_begin(st, coll, &o);
    if (rc)
        return rc;
    st_vec_rec r;
    rc = st_vec_rec_get(st, o.txn, o.c->id, name, nl, &r, &o.scratch);
    if (rc == 0)
        rc = vec_remove(&o, &r);
    return st_op_end(&o, rc);
}

int st_vec_rename(st_store *st, const char *coll, const char *from, const char *to, unsigned flags)
{
    size_t fl, tl;
    int rc = st_vec_name_arg(from, ST_NAME_FIND, &fl);
    if (rc == 0)
        rc = st_vec_name_arg(to, ST_NAME_NEW, &tl);
    if (rc)
        return rc;
    if (flags & ~ST_RENAME_NOREPLACE)
        return -EINVAL;
    rc = st_log_route(
        st,
        &(st_log_op){.kind = ST_LOG_RENAME, .coll = coll, .name = from, .to = to, .flags = flags});
    if (rc != ST_LOG_LOCAL)
        return rc;
    st_op o;
    rc = st_op_begin(st, coll, &o);
    if (rc)
        return rc;
    uint32_t cid = o.c->id;
    st_vec_rec r, t;
    rc = st_vec_rec_get(st, o.txn, cid, from, fl, &r, &o.scratch);
    if (rc || strcmp(from, to) == 0)
        return st_op_end(&o, rc);
    int trc = st_vec_rec_get(st, o.txn, cid, to, tl, &t, &o.scratch);
    if (trc == 0 && (flags & ST_RENAME_NOREPLACE))
        rc = -EEXIST;
    else if (trc == 0)
        rc = vec_remove(&o, &t);
    else if (trc != -ENOENT)
        rc = trc;
    uint8_t key[ST_VEC_KEY_MAX];
    size_t kl = st_key_vec(st, cid, from, fl, key);
    MDB_val k = {kl, key};
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o.txn, st->db[ST_DB_VECS], &k, NULL));
    memcpy(r.name, to, tl);
    r.name[tl] = 0;
    r.name_len = (uint16_t)tl;
    st_now(&r.ctime);
    if (rc == 0)
        rc = st_vec_rec_put(st, o.txn, cid, &r);
    /* ORDER keeps the place; it now names the new key. */
    if (rc == 0)
        rc = st_order_put(st, o.txn, cid, r.seq, to, tl);
    /* SLOT carries the name for search results: rewrite it, same vector
     * (copied out first: the put may move the page it points into). */
    const char *sname;
    size_t snl;
    const uint8_t *sv;
    uint32_t dim = 0;
    float *vec = NULL;
    if (rc == 0)
        rc = st_slot_get(st, o.txn, cid, r.id, &sname, &snl, &sv, &dim, &o.scratch);
    if (rc == 0) {
        vec = st_memdup(sv, (size_t)dim * sizeof(float));
        rc = vec ? 0 : -ENOMEM;
    }
    if (rc == 0)
        rc = st_slot_put(st, o.txn, cid, r.id, to, tl, vec, dim);
    if (rc == 0)
        rc = st_op_name(&o, r.id, to, tl);
    free(vec);
    return st_op_end(&o, rc);
}

int st_vec_setattr(st_store *st, const char *coll, const char *name, const st_attr *attr,
                   unsigned mask)
{
    size_t nl;
    if (!attr && mask)
        return -EINVAL;
    int rc = st_vec_name_arg(name, ST_NAME_FIND, &nl);
    if (rc)
        return rc;
    rc = st_log_route(st, &(st_log_op){.kind = ST_LOG_SETATTR,
                                       .coll = coll,
                                       .name = name,
                                       .attr = attr ? *attr : (st_attr){0},
                                       .mask = mask});
    if (rc != ST_LOG_LOCAL)
        return rc;
    st_op o;
    rc = st_op_begin(st, coll, &o);
    if (rc)
        return rc;
    st_vec_rec r;
    rc = st_vec_rec_get(st, o.txn, o.c->id, name, nl, &r, &o.scratch);
    if (rc == 0) {
        if (!st_attr_apply(attr, mask, ST_ATTR_REF(r)))
            st_now(&r.ctime);
        rc = st_vec_rec_put(st, o.txn, o.c->id, &r);
    }
    return st_op_end(&o, rc);
}
