/*
 * vec_rec.c — the LMDB keys of a collection's records and the records of
 * one vector inside a transaction: VEC by name, SLOT (name + vector) and
 * ORDER (listing place) by id and sequence number; and st_slot_walk, the
 * one loop over all of a collection's SLOT records (index rebuilds, the
 * record scan while one runs).
 *
 * Keys (big-endian, so LMDB's byte order is numeric order)
 *   VECS    u32 coll | namekey(name)            st_key_vec
 *   SLOTS, CONTENT, FREE, DIRTY
 *           u32 coll | u32 id                   st_key_id
 *   ORDER   u32 coll | u64 seq                  st_key_seq
 *   XATTRS  u32 coll | u32 id | namekey(xname)  st_key_xattr
 *
 * Invariants
 *   1. A VEC record found under a name's key carries that very name;
 *      anything else is damage (-EIO).
 *   2. Record bodies found here are never trusted: they are decoded by
 *      record.c, which checks every length.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

size_t st_key_vec(st_store *st, uint32_t coll, const char *name, size_t len, uint8_t *out)
{
    st_be32(out, coll);
    return 4 + st_name_key(&st->crypto, ST_DB_VECS, name, len, out + 4);
}

void st_key_id(uint32_t coll, uint32_t id, uint8_t out[8])
{
    st_be32(out, coll);
    st_be32(out + 4, id);
}

void st_key_seq(uint32_t coll, uint64_t seq, uint8_t out[12])
{
    st_be32(out, coll);
    st_be64(out + 4, seq);
}

size_t st_key_xattr(st_store *st, uint32_t coll, uint32_t id, const char *xname, uint8_t *out)
{
    st_key_id(coll, id, out);
    return 8 + st_name_key(&st->crypto, ST_DB_XATTRS, xname, strlen(xname), out + 8);
}

int st_vec_rec_get(st_store *st, MDB_txn *txn, uint32_t coll, const char *name, size_t len,
                   st_vec_rec *out, vc_buf *scratch)
{
    assert(txn && name && len > 0 && len <= ST_NAME_MAX);
    uint8_t key[ST_VEC_KEY_MAX];
    size_t kl = st_key_vec(st, coll, name, len, key);
    const void *body;
    size_t blen;
    int rc = st_get(st, txn, ST_DB_VECS, key, kl, &body, &blen, scratch);
    if (rc == 0)
        rc = st_rec_vec_dec(body, blen, st->crypto.on ? NULL : name, len, out);
    if (rc == 0 && (out->name_len != len || memcmp(out->name, name, len) != 0))
        rc = -EIO;
    return rc;
}

int st_vec_rec_put(st_store *st, MDB_txn *txn, uint32_t coll, const st_vec_rec *r)
{
    assert(txn && r->name_len > 0 && r->name_len <= ST_NAME_MAX);
    uint8_t key[ST_VEC_KEY_MAX];
    size_t kl = st_key_vec(st, coll, r->name, r->name_len, key);
    vc_buf b = VC_BUF_INIT;
    st_rec_vec_enc(&b, r, !st->crypto.on);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_VECS, key, kl, b.p, b.len);
    vc_buf_release(&b);
    return rc;
}

int st_slot_get(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const char **name,
                size_t *name_len, const uint8_t **vec, uint32_t *dim, vc_buf *scratch)
{
    uint8_t key[8];
    st_key_id(coll, id, key);
    const void *body;
    size_t blen;
    int rc = st_get(st, txn, ST_DB_SLOTS, key, sizeof(key), &body, &blen, scratch);
    if (rc == 0)
        rc = st_rec_slot_dec(body, blen, name, name_len, vec, dim);
    return rc;
}

int st_slot_walk(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t dim, st_slot_fn fn, void *ctx)
{
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_SLOTS], &cur));
    if (rc)
        return rc;
    /* The records' floats may sit unaligned in the map: copied here. */
    float *vec = vc_malloc((dim ? dim : 1) * sizeof(float));
    vc_buf scratch = VC_BUF_INIT;
    uint8_t pre[4];
    st_be32(pre, coll);
    MDB_val k = {4, pre}, v;
    int mrc = vec ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
    if (!vec)
        rc = -ENOMEM;
    for (; rc == 0 && mrc == 0 && k.mv_size == 8 && memcmp(k.mv_data, pre, 4) == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint32_t id = st_get_be32((const uint8_t *)k.mv_data + 4);
        const void *body;
        size_t blen, nl;
        const char *name;
        const uint8_t *sv;
        uint32_t d;
        rc = st_env_open_buf(&st->crypto, ST_DB_SLOTS, k.mv_data, 8, v.mv_data, v.mv_size, &scratch,
                             &body, &blen);
        if (rc == -ENOMEM)
            break;
        if (rc == 0)
            rc = st_rec_slot_dec(body, blen, &name, &nl, &sv, &d);
        if (rc == 0 && d != dim)
            rc = -EIO;
        if (rc) {
            st_log(st, ST_LOG_ERROR, "collection %" PRIu32 ": slot %" PRIu32 " is damaged", coll,
                   id);
            rc = -EIO;
            break;
        }
        memcpy(vec, sv, (size_t)dim * sizeof(float));
        rc = fn(ctx, id, vec);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = st_mdb_err(mrc);
    mdb_cursor_close(cur);
    vc_buf_release(&scratch);
    free(vec);
    return rc;
}

/* vf_vec_source.get over SLOT records (st_slot_source). */
static const float *slot_source_get(void *ctx, uint32_t id, float *buf)
{
    st_slot_source *s = ctx;
    const char *name;
    size_t nl;
    const uint8_t *vec;
    uint32_t dim;
    int rc = st_slot_get(s->st, s->txn, s->coll, id, &name, &nl, &vec, &dim, &s->scratch);
    /* Absent or damaged: the engine loads that id as missing. */
    if (rc && rc != -ENOENT && rc != -EIO && !s->err)
        s->err = rc;
    if (rc || dim != s->dim)
        return NULL;
    if (!s->st->crypto.on && (uintptr_t)vec % _Alignof(float) == 0)
        return (const float *)(const void *)vec;
    memcpy(buf, vec, (size_t)dim * sizeof(float));
    return buf;
}

vf_vec_source st_slot_source_begin(st_slot_source *s, st_store *st, MDB_txn *txn, uint32_t coll,
                                   uint32_t dim)
{
    *s = (st_slot_source){.st = st, .txn = txn, .coll = coll, .dim = dim, .scratch = VC_BUF_INIT};
    return st_slot_source_vec(s);
}

vf_vec_source st_slot_source_vec(st_slot_source *s)
{
    return (vf_vec_source){.get = slot_source_get, .ctx = s};
}

void st_slot_source_end(st_slot_source *s)
{
    vc_buf_release(&s->scratch);
}

int st_slot_put(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const char *name, size_t nl,
                const float *vec, uint32_t dim)
{
    uint8_t key[8];
    st_key_id(coll, id, key);
    vc_buf b = VC_BUF_INIT;
    st_rec_slot_enc(&b, name, nl, vec, dim);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_SLOTS, key, sizeof(key), b.p, b.len);
    vc_buf_release(&b);
    return rc;
}

int st_slot_name(st_store *st, MDB_txn *txn, uint32_t coll_id, uint32_t id, char *out,
                 vc_buf *scratch)
{
    const char *name;
    size_t nl;
    const uint8_t *vec;
    uint32_t dim;
    int rc = st_slot_get(st, txn, coll_id, id, &name, &nl, &vec, &dim, scratch);
    if (rc == 0) {
        memcpy(out, name, nl);
        out[nl] = 0;
    }
    return rc;
}

int st_order_put(st_store *st, MDB_txn *txn, uint32_t coll, uint64_t seq, const char *name,
                 size_t nl)
{
    uint8_t key[12], nk[ST_NAME_MAX];
    st_key_seq(coll, seq, key);
    size_t nkl = st_name_key(&st->crypto, ST_DB_VECS, name, nl, nk);
    vc_buf b = VC_BUF_INIT;
    st_rec_blob_enc(&b, ST_REC_ORDER, nk, nkl);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_ORDER, key, sizeof(key), b.p, b.len);
    vc_buf_release(&b);
    return rc;
}
