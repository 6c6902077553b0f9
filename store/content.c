/*
 * content.c — a vector's content (the bytes a read of its file returns),
 * stored once: when those bytes end with the vector itself, as float32 in
 * the order the SLOT record holds it (.f32 files, .import/ rows of .fvecs
 * and .npy, a .fvecs or .npy file of one row), the CONTENT record keeps
 * only the bytes before it (CONTENT_VEC: prefix + dim) and a read puts the
 * SLOT's floats after them. Any other content (text, JSON, bytes that
 * differ from the parsed vector in one bit) is kept as written (CONTENT).
 *
 * Invariants
 *   1. Read-back is byte-exact: CONTENT_VEC is chosen only when the tail of
 *      the content is bit-for-bit the vector given with it, and the SLOT
 *      record of that id is written with that same vector, by the same put
 *      (a rename rewrites SLOT with the floats it read).
 *   2. Both kinds of record are read, whatever the store's format version:
 *      a format 1 store holds only CONTENT.
 *   3. A CONTENT_VEC whose dim differs from its SLOT's, or whose length
 *      differs from the VEC record's size, is damage (-EIO).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* Length of the bytes before the vector when content (len bytes) ends
 * with vec (dim floats, as stored), else -1. */
static long vec_prefix_len(const void *content, size_t len, const float *vec, uint32_t dim)
{
    size_t vb = (size_t)dim * sizeof(float);
    if (len < vb || len - vb > ST_CONTENT_PREFIX_MAX)
        return -1;
    if (memcmp((const uint8_t *)content + (len - vb), vec, vb) != 0)
        return -1;
    return (long)(len - vb);
}

int st_content_put(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const void *content,
                   size_t len, const float *vec, uint32_t dim)
{
    uint8_t key[8];
    st_key_id(coll, id, key);
    vc_buf b = VC_BUF_INIT;
    long pl = vec_prefix_len(content, len, vec, dim);
    if (pl >= 0)
        st_rec_content_vec_enc(&b, content, (size_t)pl, dim);
    else
        st_rec_blob_enc(&b, ST_REC_CONTENT, content, len);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_CONTENT, key, sizeof(key), b.p, b.len);
    vc_buf_release(&b);
    return rc;
}

int st_content_dec(const void *body, size_t blen, st_content_rec *out)
{
    memset(out, 0, sizeof(*out));
    if (blen >= 3 && ((const uint8_t *)body)[2] == ST_REC_CONTENT_VEC) {
        out->of_vec = true;
        return st_rec_content_vec_dec(body, blen, &out->bytes, &out->len, &out->dim);
    }
    return st_rec_blob_dec(body, blen, ST_REC_CONTENT, &out->bytes, &out->len);
}

size_t st_content_size(const st_content_rec *r)
{
    return r->len + (r->of_vec ? (size_t)r->dim * sizeof(float) : 0);
}

int st_content_get(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const void **data,
                   size_t *len, st_content_bufs *bufs)
{
    uint8_t key[8];
    st_key_id(coll, id, key);
    const void *body;
    size_t blen;
    st_content_rec r;
    int rc = st_get(st, txn, ST_DB_CONTENT, key, sizeof(key), &body, &blen, &bufs->record);
    if (rc == 0)
        rc = st_content_dec(body, blen, &r);
    if (rc)
        return rc;
    if (!r.of_vec) {
        *data = r.bytes;
        *len = r.len;
        return 0;
    }
    const char *name;
    size_t nl;
    const uint8_t *vec;
    uint32_t dim;
    rc = st_slot_get(st, txn, coll, id, &name, &nl, &vec, &dim, &bufs->slot);
    if (rc == -ENOENT || (rc == 0 && dim != r.dim))
        rc = -EIO; /* a CONTENT_VEC without its vector is damage */
    if (rc)
        return rc;
    vc_buf *out = &bufs->built;
    vc_buf_reset(out);
    vc_buf_append(out, r.bytes, r.len);
    vc_buf_append(out, vec, (size_t)dim * sizeof(float));
    if (out->err)
        return out->err;
    *data = out->p;
    *len = out->len;
    return 0;
}

void st_content_bufs_release(st_content_bufs *bufs)
{
    vc_buf_release(&bufs->record);
    vc_buf_release(&bufs->slot);
    vc_buf_release(&bufs->built);
}
