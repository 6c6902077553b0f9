/*
 * vec_read.c — reads of vectors: the st_read handle (a read txn for
 * zero-copy content), stat, get, pread, the stored float vector, and the
 * listing of a collection in creation order.
 *
 * Invariants
 *   1. Readers never take c->wlock or LMDB's writer lock: each read runs in
 *      a read txn (an MVCC snapshot), so it never waits for a writer or
 *      the disk.
 *   2. A VEC record without its CONTENT or SLOT record, or with a CONTENT
 *      length other than its size, is damage (-EIO), never "not found".
 *   3. Pointers into the map (st_read_content without a key) or into the
 *      handle's buffers (a key, or a content put together from its SLOT
 *      vector, content.c) live only until st_read_end or the next read.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

struct st_read {
    st_store *st;
    MDB_txn *txn;
    st_content_bufs content;
    vc_buf scratch2;
};

int st_read_begin(st_store *st, st_read **out)
{
    if (!st || !out)
        return -EINVAL;
    *out = NULL;
    st_read *rd = vc_calloc(1, sizeof(*rd));
    if (!rd)
        return -ENOMEM;
    rd->st = st;
    int rc = st_txn_read(st, &rd->txn);
    if (rc) {
        free(rd);
        return rc;
    }
    *out = rd;
    return 0;
}

void st_read_end(st_read *rd)
{
    if (!rd)
        return;
    if (rd->txn)
        mdb_txn_abort(rd->txn);
    st_content_bufs_release(&rd->content);
    vc_buf_release(&rd->scratch2);
    free(rd);
}

/* Finds coll's id (by name) for a reader. */
static int coll_id_of(st_store *st, const char *coll, uint32_t *id)
{
    st_coll *c;
    int rc = st_coll_lookup(st, coll, &c);
    if (rc == 0)
        *id = c->id;
    return rc;
}

int st_read_content(st_read *rd, const char *coll, const char *name, const void **data, size_t *len,
                    st_attr *attr_out)
{
    if (!rd || !data || !len)
        return -EINVAL;
    size_t nl;
    uint32_t cid;
    int rc = st_vec_name_arg(name, ST_NAME_FIND, &nl);
    if (rc == 0)
        rc = coll_id_of(rd->st, coll, &cid);
    if (rc)
        return rc;
    st_vec_rec r;
    rc = st_vec_rec_get(rd->st, rd->txn, cid, name, nl, &r, &rd->scratch2);
    if (rc)
        return rc;
    const void *p;
    size_t n;
    rc = st_content_get(rd->st, rd->txn, cid, r.id, &p, &n, &rd->content);
    if (rc == -ENOENT)
        rc = -EIO; /* a VEC without CONTENT is damage */
    if (rc == 0 && n != r.size)
        rc = -EIO;
    if (rc)
        return rc;
    *data = p;
    *len = n;
    if (attr_out)
        st_attr_from_vec(cid, &r, attr_out);
    return 0;
}

int st_vec_view_begin(st_store *st, const char *coll, const char *name, st_vec_view *v)
{
    memset(v, 0, sizeof(*v));
    size_t nl;
    int rc = st_vec_name_arg(name, ST_NAME_FIND, &nl);
    if (rc == 0)
        rc = coll_id_of(st, coll, &v->coll);
    if (rc == 0)
        rc = st_txn_read(st, &v->txn);
    if (rc == 0)
        rc = st_vec_rec_get(st, v->txn, v->coll, name, nl, &v->rec, &v->scratch);
    if (rc)
        st_vec_view_end(v);
    return rc;
}

void st_vec_view_end(st_vec_view *v)
{
    if (v->txn)
        mdb_txn_abort(v->txn);
    v->txn = NULL;
    vc_buf_release(&v->scratch);
}

int st_vec_stat(st_store *st, const char *coll, const char *name, st_attr *out)
{
    if (!out)
        return -EINVAL;
    st_vec_view v;
    int rc = st_vec_view_begin(st, coll, name, &v);
    if (rc)
        return rc;
    st_attr_from_vec(v.coll, &v.rec, out);
    st_vec_view_end(&v);
    return 0;
}

int st_vec_get(st_store *st, const char *coll, const char *name, void **data, size_t *len,
               st_attr *attr_out)
{
    if (!data || !len)
        return -EINVAL;
    *data = NULL;
    st_read *rd;
    int rc = st_read_begin(st, &rd);
    if (rc)
        return rc;
    const void *p;
    size_t n;
    rc = st_read_content(rd, coll, name, &p, &n, attr_out);
    if (rc == 0) {
        void *copy = vc_malloc(n);
        if (!copy) {
            rc = -ENOMEM;
        } else {
            if (n)
                memcpy(copy, p, n);
            *data = copy;
            *len = n;
        }
    }
    st_read_end(rd);
    return rc;
}

int st_vec_pread(st_store *st, const char *coll, const char *name, void *buf, size_t size,
                 uint64_t offset, size_t *n_out)
{
    if ((!buf && size) || !n_out)
        return -EINVAL;
    *n_out = 0;
    st_read *rd;
    int rc = st_read_begin(st, &rd);
    if (rc)
        return rc;
    const void *p;
    size_t n;
    rc = st_read_content(rd, coll, name, &p, &n, NULL);
    if (rc == 0 && offset < n) {
        size_t c = n - (size_t)offset < size ? n - (size_t)offset : size;
        memcpy(buf, (const uint8_t *)p + offset, c);
        *n_out = c;
    }
    st_read_end(rd);
    return rc;
}

int st_vec_vector(st_store *st, const char *coll, const char *name, float *out, size_t cap,
                  uint32_t *dim_out)
{
    if (!dim_out || (!out && cap))
        return -EINVAL;
    st_vec_view v;
    int rc = st_vec_view_begin(st, coll, name, &v);
    if (rc)
        return rc;
    vc_buf scratch = VC_BUF_INIT;
    const char *sname;
    size_t snl;
    const uint8_t *sv;
    uint32_t dim = 0;
    rc = st_slot_get(st, v.txn, v.coll, v.rec.id, &sname, &snl, &sv, &dim, &scratch);
    if (rc == -ENOENT)
        rc = -EIO; /* a VEC without SLOT is damage */
    if (rc == 0) {
        *dim_out = dim;
        if (cap < dim)
            rc = -ERANGE;
        else
            memcpy(out, sv, (size_t)dim * sizeof(float));
    }
    st_vec_view_end(&v);
    vc_buf_release(&scratch);
    return rc;
}

int st_vec_list(st_store *st, const char *coll, uint64_t offset, st_list_fn fn, void *ctx)
{
    uint32_t cid;
    if (!fn)
        return -EINVAL;
    int rc = coll_id_of(st, coll, &cid);
    if (rc)
        return rc;
    MDB_txn *txn;
    rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    MDB_cursor *cur = NULL;
    vc_buf s1 = VC_BUF_INIT, s2 = VC_BUF_INIT;
    rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_ORDER], &cur));
    uint8_t sk[12];
    st_key_seq(cid, offset, sk);
    MDB_val k = {12, sk}, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && k.mv_size == 12 && st_get_be32(k.mv_data) == cid) {
        uint64_t seq = st_get_be64((const uint8_t *)k.mv_data + 4);
        const void *body;
        size_t blen, nkl;
        const uint8_t *nk;
        rc = st_env_open_buf(&st->crypto, ST_DB_ORDER, k.mv_data, 12, v.mv_data, v.mv_size, &s1,
                             &body, &blen);
        if (rc == -ENOMEM)
            break;
        if (rc == 0)
            rc = st_rec_blob_dec(body, blen, ST_REC_ORDER, &nk, &nkl);
        if (rc == 0 && (nkl == 0 || nkl > ST_NAME_MAX))
            rc = -EIO;
        if (rc)
            break;
        uint8_t vk[ST_VEC_KEY_MAX];
        st_be32(vk, cid);
        memcpy(vk + 4, nk, nkl);
        const void *vb;
        size_t vbl;
        st_vec_rec r;
        rc = st_get(st, txn, ST_DB_VECS, vk, 4 + nkl, &vb, &vbl, &s2);
        if (rc == -ENOENT)
            rc = -EIO;
        if (rc == 0)
            rc = st_rec_vec_dec(vb, vbl, st->crypto.on ? NULL : nk, nkl, &r);
        if (rc == 0 && r.seq != seq)
            rc = -EIO;
        if (rc)
            break;
        st_attr a;
        st_attr_from_vec(cid, &r, &a);
        if (fn(ctx, r.name, &a, seq + 1) != 0)
            break;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc && mrc != MDB_NOTFOUND)
        rc = st_mdb_err(mrc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    vc_buf_release(&s1);
    vc_buf_release(&s2);
    return rc;
}
