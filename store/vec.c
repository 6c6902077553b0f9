/*
 * vec.c — vectors of a collection: put (insert/overwrite), stat, get,
 * delete, rename, setattr, listing, zero-copy reads, xattrs and batches.
 *
 * A writing operation runs as:
 *     find collection -> lock c->wlock -> write txn -> read COLL record ->
 *     records -> COLL record (count, bytes, next ids) -> commit ->
 *     apply to c->index -> unlock
 * so the index of a collection changes in commit order, and a snapshot
 * (which takes c->wlock) sees the index equal to LMDB's state.
 *
 * Invariants (of the records of one collection, checked by st_check)
 *   1. VEC(name) exists iff SLOT(id) and CONTENT(id) exist for its id, and
 *      SLOT(id) carries the same name; ORDER(seq) holds namekey(name).
 *   2. An id is either in use by exactly one VEC, or in FREE, or >= the
 *      COLL record's next_id.
 *   3. MIDX holds (hash(xname, value), id) iff XATTR(id, xname) exists with
 *      that value and xname starts with "user.".
 *   4. COLL.count is the number of VEC records and COLL.bytes the sum of
 *      their sizes.
 *   5. Every id whose index entry may differ from the last snapshot has a
 *      DIRTY entry (put, delete, the target of a replacing rename).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

#define VEC_KEY_MAX (4 + ST_NAME_MAX)
#define XATTR_KEY_MAX (8 + ST_NAME_MAX)

/* ------------------------------------------------------------------ */
/* Keys and record helpers                                              */
/* ------------------------------------------------------------------ */

static size_t vec_key(st_store *st, uint32_t coll, const char *name, size_t len, uint8_t *out)
{
    st_be32(out, coll);
    return 4 + st_name_key(&st->crypto, ST_DB_VECS, name, len, out + 4);
}

static void id_key(uint32_t coll, uint32_t id, uint8_t out[8])
{
    st_be32(out, coll);
    st_be32(out + 4, id);
}

static void seq_key(uint32_t coll, uint64_t seq, uint8_t out[12])
{
    st_be32(out, coll);
    st_be64(out + 4, seq);
}

static size_t xattr_key(st_store *st, uint32_t coll, uint32_t id, const char *xname, uint8_t *out)
{
    id_key(coll, id, out);
    return 8 + st_name_key(&st->crypto, ST_DB_XATTRS, xname, strlen(xname), out + 8);
}

static void attr_from_vec(uint32_t coll, const st_vec_rec *r, st_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->mode = (r->mode & 07777) | S_IFREG;
    a->uid = r->uid;
    a->gid = r->gid;
    a->atime = r->atime;
    a->mtime = r->mtime;
    a->ctime = r->ctime;
    a->size = r->size;
    a->id = r->id;
    a->ino = ((uint64_t)coll << 32) | ((uint64_t)r->id + 1);
}

static int vec_rec_get(st_store *st, MDB_txn *txn, uint32_t coll, const char *name, size_t len,
                       st_vec_rec *out, vc_buf *scratch)
{
    uint8_t key[VEC_KEY_MAX];
    size_t kl = vec_key(st, coll, name, len, key);
    const void *body;
    size_t blen;
    int rc = st_get(st, txn, ST_DB_VECS, key, kl, &body, &blen, scratch);
    if (rc == 0)
        rc = st_rec_vec_dec(body, blen, out);
    if (rc == 0 && (out->name_len != len || memcmp(out->name, name, len) != 0))
        rc = -EIO;
    return rc;
}

static int vec_rec_put(st_store *st, MDB_txn *txn, uint32_t coll, const st_vec_rec *r)
{
    uint8_t key[VEC_KEY_MAX];
    size_t kl = vec_key(st, coll, r->name, r->name_len, key);
    vc_buf b = VC_BUF_INIT;
    st_rec_vec_enc(&b, r);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_VECS, key, kl, b.p, b.len);
    vc_buf_release(&b);
    return rc;
}

int st_slot_name(st_store *st, MDB_txn *txn, uint32_t coll_id, uint32_t id, char *out,
                 vc_buf *scratch)
{
    uint8_t key[8];
    id_key(coll_id, id, key);
    const void *body;
    size_t blen, nl;
    const char *name;
    const uint8_t *vec;
    uint32_t dim;
    int rc = st_get(st, txn, ST_DB_SLOTS, key, 8, &body, &blen, scratch);
    if (rc == 0)
        rc = st_rec_slot_dec(body, blen, &name, &nl, &vec, &dim);
    if (rc == 0) {
        memcpy(out, name, nl);
        out[nl] = 0;
    }
    return rc;
}

bool st_values_ok(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(v[i]) <= ST_VALUE_MAX)) /* NaN fails too */
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* Operation frame                                                      */
/* ------------------------------------------------------------------ */

typedef struct op {
    st_store *st;
    st_coll *c;
    MDB_txn *txn;
    st_coll_rec rec; /* the collection record, written back at commit */
    vc_buf scratch;
    /* Index changes to apply after commit. */
    uint32_t *ins_ids;
    float *ins_vecs;
    size_t nins, cap_ins;
    uint32_t *del_ids;
    size_t ndel, cap_del;
    uint32_t dim;
    /* Name changes for c->names, applied after commit; the names point at
     * the caller's strings, which outlive the op. */
    st_name_change *names;
    size_t nnames, cap_names;
} op;

static int op_begin(st_store *st, const char *coll, op *o)
{
    memset(o, 0, sizeof(*o));
    o->st = st;
    if (!st)
        return -EINVAL;
    int rc = st_coll_name_check(coll);
    if (rc)
        return rc == -ENAMETOOLONG ? -ENOENT : rc;
    if (st->opt.read_only)
        return -EROFS;
    o->c = st_coll_find(st, coll);
    if (!o->c)
        return -ENOENT;
    pthread_mutex_lock(&o->c->wlock);
    pthread_mutex_lock(&o->c->mu);
    bool gone = o->c->dropped || strcmp(o->c->name, coll) != 0;
    pthread_mutex_unlock(&o->c->mu);
    if (gone) {
        pthread_mutex_unlock(&o->c->wlock);
        o->c = NULL;
        return -ENOENT;
    }
    rc = st_txn_write(st, &o->txn);
    if (rc == 0)
        rc = st_coll_rec_get(st, o->txn, coll, &o->rec);
    if (rc) {
        if (o->txn)
            mdb_txn_abort(o->txn);
        o->txn = NULL;
        pthread_mutex_unlock(&o->c->wlock);
        o->c = NULL;
    }
    return rc;
}

static int op_ins(op *o, uint32_t id, const float *vec, uint32_t dim)
{
    if (o->nins == o->cap_ins) {
        size_t cap = o->cap_ins ? o->cap_ins * 2 : 4;
        uint32_t *ids = st_realloc(o->ins_ids, cap * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        o->ins_ids = ids;
        float *v = st_realloc(o->ins_vecs, cap * dim * sizeof(*v));
        if (!v)
            return -ENOMEM;
        o->ins_vecs = v;
        o->cap_ins = cap;
    }
    o->dim = dim;
    o->ins_ids[o->nins] = id;
    memcpy(o->ins_vecs + o->nins * dim, vec, (size_t)dim * sizeof(float));
    o->nins++;
    return 0;
}

static int op_del(op *o, uint32_t id)
{
    if (o->ndel == o->cap_del) {
        size_t cap = o->cap_del ? o->cap_del * 2 : 4;
        uint32_t *ids = st_realloc(o->del_ids, cap * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        o->del_ids = ids;
        o->cap_del = cap;
    }
    o->del_ids[o->ndel++] = id;
    return 0;
}

/* Queues "id is now called name" (name NULL: id has no vector). */
static int op_name(op *o, uint32_t id, const char *name, size_t len)
{
    if (o->nnames == o->cap_names) {
        size_t cap = o->cap_names ? o->cap_names * 2 : 4;
        st_name_change *n = st_realloc(o->names, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        o->names = n;
        o->cap_names = cap;
    }
    o->names[o->nnames++] = (st_name_change){.id = id, .name = name, .len = len};
    return 0;
}

static int cmp_pair(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return *x < *y ? -1 : *x > *y;
}

/* Applies the queued index changes: removes, then inserts (the last insert
 * of an id wins, which is what the records say). */
static int op_apply(op *o)
{
    st_coll *c = o->c;
    int rc = 0;
    if (o->nins) {
        rc = st_coll_index_ensure(o->st, c, o->dim);
        if (rc)
            return rc;
    }
    pthread_mutex_lock(&c->mu);
    vf_hnsw *h = c->index;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; h && i < o->ndel; i++) {
        bool reinserted = false;
        for (size_t j = 0; j < o->nins && !reinserted; j++)
            reinserted = o->ins_ids[j] == o->del_ids[i];
        if (!reinserted && vf_hnsw_contains(h, o->del_ids[i]))
            vf_hnsw_remove(h, o->del_ids[i]);
    }
    if (o->nins == 1) {
        rc = vf_hnsw_insert(h, o->ins_ids[0], o->ins_vecs);
    } else if (o->nins > 1) {
        /* (id << 32 | row), sorted: keep the last row of each id. */
        uint64_t *pairs = st_malloc(o->nins * sizeof(*pairs));
        uint32_t *ids = st_malloc(o->nins * sizeof(*ids));
        float *vecs = st_malloc(o->nins * o->dim * sizeof(float));
        if (!pairs || !ids || !vecs) {
            rc = -ENOMEM;
        } else {
            for (size_t i = 0; i < o->nins; i++)
                pairs[i] = ((uint64_t)o->ins_ids[i] << 32) | i;
            qsort(pairs, o->nins, sizeof(*pairs), cmp_pair);
            size_t n = 0;
            uint32_t maxid = 0;
            for (size_t i = 0; i < o->nins; i++) {
                if (i + 1 < o->nins && (pairs[i + 1] >> 32) == (pairs[i] >> 32))
                    continue;
                size_t row = (size_t)(pairs[i] & 0xffffffffu);
                ids[n] = (uint32_t)(pairs[i] >> 32);
                if (ids[n] > maxid)
                    maxid = ids[n];
                memcpy(vecs + n * o->dim, o->ins_vecs + row * o->dim, o->dim * sizeof(float));
                n++;
            }
            rc = vf_hnsw_reserve(h, (size_t)maxid + 1);
            if (rc == 0)
                rc = vf_hnsw_insert_batch(h, ids, 0, vecs, n, o->st->opt.threads);
        }
        free(pairs);
        free(ids);
        free(vecs);
    }
    return rc;
}

/* Commits (writing the COLL record back), applies the index changes and
 * releases the collection. rc is the operation's result so far. */
static int op_end(op *o, int rc)
{
    st_store *st = o->st;
    st_coll *c = o->c;
    if (rc == 0)
        rc = st_coll_rec_put(st, o->txn, &o->rec);
    if (rc == 0) {
        rc = st_txn_commit(st, o->txn);
    } else if (o->txn) {
        mdb_txn_abort(o->txn);
    }
    o->txn = NULL;
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        c->cfg = o->rec.cfg;
        c->count = o->rec.count;
        c->bytes = o->rec.bytes;
        pthread_mutex_unlock(&c->mu);
        st_names_apply(&c->names, o->names, o->nnames);
        if (o->nins || o->ndel) {
            st_coll_note_changes(c, o->nins + o->ndel);
            int arc = op_apply(o);
            if (arc) {
                /* Committed, so the call succeeded; the index catches up
                 * from the dirty entries at the next open. */
                atomic_fetch_add(&st->errors, 1);
                st_health_set(st, "index of '%s' is behind its records: %s", o->rec.name,
                              strerror(-arc));
            }
            atomic_fetch_add(&st->inserts, o->nins);
            atomic_fetch_add(&st->deletes, o->ndel);
        }
    }
    if (c)
        pthread_mutex_unlock(&c->wlock);
    vc_buf_release(&o->scratch);
    free(o->ins_ids);
    free(o->ins_vecs);
    free(o->del_ids);
    free(o->names);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Core record changes (inside an op)                                   */
/* ------------------------------------------------------------------ */

static int id_alloc(op *o, uint32_t *id)
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

/* Removes every xattr (and metadata index entry) of id. */
static int xattrs_drop(op *o, uint32_t id)
{
    st_store *st = o->st;
    uint8_t pre[8];
    id_key(o->c->id, id, pre);
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
        if (xl > 5 && memcmp(xn, "user.", 5) == 0) {
            char name[ST_XATTR_NAME_MAX + 1];
            memcpy(name, xn, xl);
            name[xl] = 0;
            uint8_t mk[20], idb[4];
            st_be32(mk, o->c->id);
            st_meta_hash(&st->crypto, name, val, vl, mk + 4);
            st_be32(idb, id);
            MDB_val mkv = {20, mk}, mdv = {4, idb};
            int d = mdb_del(o->txn, st->db[ST_DB_MIDX], &mkv, &mdv);
            if (d && d != MDB_NOTFOUND)
                rc = st_mdb_err(d);
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

/* Deletes the vector whose record is r (all its records). */
static int vec_remove(op *o, const st_vec_rec *r)
{
    st_store *st = o->st;
    uint32_t coll = o->c->id;
    uint8_t key[VEC_KEY_MAX], ik[8], sk[12];
    size_t kl = vec_key(st, coll, r->name, r->name_len, key);
    MDB_val k = {kl, key};
    int rc = st_mdb_err(mdb_del(o->txn, st->db[ST_DB_VECS], &k, NULL));
    id_key(coll, r->id, ik);
    MDB_val kid = {8, ik};
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o->txn, st->db[ST_DB_SLOTS], &kid, NULL));
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o->txn, st->db[ST_DB_CONTENT], &kid, NULL));
    seq_key(coll, r->seq, sk);
    MDB_val ks = {12, sk};
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o->txn, st->db[ST_DB_ORDER], &ks, NULL));
    if (rc == 0)
        rc = xattrs_drop(o, r->id);
    MDB_val empty = {0, NULL};
    if (rc == 0)
        rc = st_mdb_err(mdb_put(o->txn, st->db[ST_DB_FREE], &kid, &empty, 0));
    if (rc == 0)
        rc = st_dirty_mark(st, o->txn, o->c, r->id);
    if (rc == 0)
        rc = op_del(o, r->id);
    if (rc == 0)
        rc = op_name(o, r->id, NULL, 0);
    if (rc == 0) {
        o->rec.count--;
        o->rec.bytes -= r->size;
    }
    return rc;
}

/* Checks a row that needs no LMDB (names, sizes, vector). */
static int row_check(const char *name, size_t *nl, const void *content, size_t len,
                     const float *vec, uint32_t dim)
{
    int rc = st_vec_name_check(name, nl);
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

/* Inserts or overwrites one vector inside op. *id_out = its engine id. */
static int vec_store(op *o, const char *name, size_t nl, const void *content, size_t len,
                     const float *vec, uint32_t dim, const st_attr *attr, unsigned mask,
                     uint32_t *id_out)
{
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
    int rc = vec_rec_get(st, o->txn, coll, name, nl, &old, &o->scratch);
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
        uint8_t sk[12], nk[ST_NAME_MAX];
        seq_key(coll, r.seq, sk);
        size_t nkl = st_name_key(&st->crypto, ST_DB_VECS, name, nl, nk);
        vc_buf b = VC_BUF_INIT;
        st_rec_blob_enc(&b, ST_REC_ORDER, nk, nkl);
        rc = b.err ? b.err : st_put(st, o->txn, ST_DB_ORDER, sk, 12, b.p, b.len);
        vc_buf_release(&b);
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
    if (mask & ST_SET_MODE)
        r.mode = attr->mode & 07777;
    if (mask & ST_SET_UID)
        r.uid = attr->uid;
    if (mask & ST_SET_GID)
        r.gid = attr->gid;
    if (mask & ST_SET_ATIME)
        r.atime = attr->atime;
    if (mask & ST_SET_MTIME)
        r.mtime = attr->mtime;
    if (mask & ST_SET_CTIME)
        r.ctime = attr->ctime;
    rc = vec_rec_put(st, o->txn, coll, &r);
    if (rc)
        return rc;
    uint8_t ik[8];
    id_key(coll, r.id, ik);
    vc_buf b = VC_BUF_INIT;
    st_rec_slot_enc(&b, name, nl, vec, dim);
    rc = b.err ? b.err : st_put(st, o->txn, ST_DB_SLOTS, ik, 8, b.p, b.len);
    vc_buf_reset(&b);
    if (rc == 0) {
        st_rec_blob_enc(&b, ST_REC_CONTENT, content, len);
        rc = b.err ? b.err : st_put(st, o->txn, ST_DB_CONTENT, ik, 8, b.p, b.len);
    }
    vc_buf_release(&b);
    if (rc == 0)
        rc = st_dirty_mark(st, o->txn, o->c, r.id);
    if (rc == 0)
        rc = op_ins(o, r.id, vec, dim);
    if (rc == 0 && !exists)
        rc = op_name(o, r.id, name, nl);
    if (rc)
        return rc;
    o->rec.count = count;
    o->rec.bytes = bytes;
    if (id_out)
        *id_out = r.id;
    return 0;
}

/* Sets an xattr of id inside op (flags as st_xattr_set). */
static int xattr_store(op *o, uint32_t id, const char *xname, const void *value, size_t len,
                       int flags)
{
    st_store *st = o->st;
    uint8_t key[XATTR_KEY_MAX];
    size_t kl = xattr_key(st, o->c->id, id, xname, key);
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
    bool user = strncmp(xname, "user.", 5) == 0;
    uint8_t mk[20], idb[4];
    st_be32(mk, o->c->id);
    st_be32(idb, id);
    if (exists && user) {
        rc = st_rec_xattr_dec(body, blen, &xn, &xl, &oldv, &vl);
        if (rc)
            return rc;
        st_meta_hash(&st->crypto, xname, oldv, vl, mk + 4);
        MDB_val mkv = {20, mk}, mdv = {4, idb};
        int d = mdb_del(o->txn, st->db[ST_DB_MIDX], &mkv, &mdv);
        if (d && d != MDB_NOTFOUND)
            return st_mdb_err(d);
    }
    vc_buf b = VC_BUF_INIT;
    st_rec_xattr_enc(&b, xname, strlen(xname), value, len);
    rc = b.err ? b.err : st_put(st, o->txn, ST_DB_XATTRS, key, kl, b.p, b.len);
    vc_buf_release(&b);
    if (rc == 0 && user) {
        st_meta_hash(&st->crypto, xname, value, len, mk + 4);
        MDB_val mkv = {20, mk}, mdv = {4, idb};
        rc = st_mdb_err(mdb_put(o->txn, st->db[ST_DB_MIDX], &mkv, &mdv, 0));
    }
    return rc;
}

static int xattr_name_check(const char *xname)
{
    if (!xname)
        return -EINVAL;
    size_t n = strnlen(xname, ST_XATTR_NAME_MAX + 1);
    if (n == 0 || n > ST_XATTR_NAME_MAX)
        return -ERANGE;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Public vector operations                                             */
/* ------------------------------------------------------------------ */

int st_vec_put(st_store *st, const char *coll, const char *name, const void *content, size_t len,
               const float *vec, uint32_t dim, const st_attr *attr, unsigned mask)
{
    size_t nl;
    if (!attr && mask)
        return -EINVAL;
    int rc = row_check(name, &nl, content, len, vec, dim);
    if (rc)
        return rc;
    op o;
    rc = op_begin(st, coll, &o);
    if (rc)
        return rc;
    rc = st_space_check(st, o.txn, (uint64_t)len + (uint64_t)dim * 4 + 2 * nl + 256);
    if (rc == 0)
        rc = vec_store(&o, name, nl, content, len, vec, dim, attr, mask, NULL);
    return op_end(&o, rc);
}

int st_vec_delete(st_store *st, const char *coll, const char *name)
{
    size_t nl;
    int rc = st_vec_name_check(name, &nl);
    if (rc)
        return rc;
    op o;
    rc = op_begin(st, coll, &o);
    if (rc)
        return rc;
    st_vec_rec r;
    rc = vec_rec_get(st, o.txn, o.c->id, name, nl, &r, &o.scratch);
    if (rc == 0)
        rc = vec_remove(&o, &r);
    return op_end(&o, rc);
}

int st_vec_rename(st_store *st, const char *coll, const char *from, const char *to, unsigned flags)
{
    size_t fl, tl;
    int rc = st_vec_name_check(from, &fl);
    if (rc == 0)
        rc = st_vec_name_check(to, &tl);
    if (rc)
        return rc;
    if (flags & ~ST_RENAME_NOREPLACE)
        return -EINVAL;
    op o;
    rc = op_begin(st, coll, &o);
    if (rc)
        return rc;
    uint32_t cid = o.c->id;
    st_vec_rec r, t;
    rc = vec_rec_get(st, o.txn, cid, from, fl, &r, &o.scratch);
    if (rc || strcmp(from, to) == 0)
        return op_end(&o, rc);
    int trc = vec_rec_get(st, o.txn, cid, to, tl, &t, &o.scratch);
    if (trc == 0 && (flags & ST_RENAME_NOREPLACE))
        rc = -EEXIST;
    else if (trc == 0)
        rc = vec_remove(&o, &t);
    else if (trc != -ENOENT)
        rc = trc;
    uint8_t key[VEC_KEY_MAX];
    size_t kl = vec_key(st, cid, from, fl, key);
    MDB_val k = {kl, key};
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o.txn, st->db[ST_DB_VECS], &k, NULL));
    memcpy(r.name, to, tl);
    r.name[tl] = 0;
    r.name_len = (uint16_t)tl;
    st_now(&r.ctime);
    if (rc == 0)
        rc = vec_rec_put(st, o.txn, cid, &r);
    /* ORDER keeps the place; it now names the new key. */
    uint8_t sk[12], nk[ST_NAME_MAX];
    seq_key(cid, r.seq, sk);
    size_t nkl = st_name_key(&st->crypto, ST_DB_VECS, to, tl, nk);
    vc_buf b = VC_BUF_INIT;
    st_rec_blob_enc(&b, ST_REC_ORDER, nk, nkl);
    if (rc == 0)
        rc = b.err ? b.err : st_put(st, o.txn, ST_DB_ORDER, sk, 12, b.p, b.len);
    /* SLOT carries the name for search results: rewrite it, same vector. */
    uint8_t ik[8];
    id_key(cid, r.id, ik);
    const void *body;
    size_t blen, snl;
    const char *sname;
    const uint8_t *sv;
    uint32_t dim = 0;
    float *vec = NULL;
    if (rc == 0)
        rc = st_get(st, o.txn, ST_DB_SLOTS, ik, 8, &body, &blen, &o.scratch);
    if (rc == 0)
        rc = st_rec_slot_dec(body, blen, &sname, &snl, &sv, &dim);
    if (rc == 0) {
        vec = st_malloc((size_t)dim * sizeof(float));
        if (!vec)
            rc = -ENOMEM;
        else
            memcpy(vec, sv, (size_t)dim * sizeof(float));
    }
    vc_buf_reset(&b);
    if (rc == 0) {
        st_rec_slot_enc(&b, to, tl, vec, dim);
        rc = b.err ? b.err : st_put(st, o.txn, ST_DB_SLOTS, ik, 8, b.p, b.len);
    }
    if (rc == 0)
        rc = op_name(&o, r.id, to, tl);
    vc_buf_release(&b);
    free(vec);
    return op_end(&o, rc);
}

int st_vec_setattr(st_store *st, const char *coll, const char *name, const st_attr *attr,
                   unsigned mask)
{
    size_t nl;
    if (!attr && mask)
        return -EINVAL;
    int rc = st_vec_name_check(name, &nl);
    if (rc)
        return rc;
    op o;
    rc = op_begin(st, coll, &o);
    if (rc)
        return rc;
    st_vec_rec r;
    rc = vec_rec_get(st, o.txn, o.c->id, name, nl, &r, &o.scratch);
    if (rc == 0) {
        if (mask & ST_SET_MODE)
            r.mode = attr->mode & 07777;
        if (mask & ST_SET_UID)
            r.uid = attr->uid;
        if (mask & ST_SET_GID)
            r.gid = attr->gid;
        if (mask & ST_SET_ATIME)
            r.atime = attr->atime;
        if (mask & ST_SET_MTIME)
            r.mtime = attr->mtime;
        if (mask & ST_SET_CTIME)
            r.ctime = attr->ctime;
        else
            st_now(&r.ctime);
        rc = vec_rec_put(st, o.txn, o.c->id, &r);
    }
    return op_end(&o, rc);
}

/* ------------------------------------------------------------------ */
/* Reads                                                                */
/* ------------------------------------------------------------------ */

struct st_read {
    st_store *st;
    MDB_txn *txn;
    vc_buf scratch;
    vc_buf scratch2;
};

int st_read_begin(st_store *st, st_read **out)
{
    if (!st || !out)
        return -EINVAL;
    *out = NULL;
    st_read *rd = st_calloc(1, sizeof(*rd));
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
    vc_buf_release(&rd->scratch);
    vc_buf_release(&rd->scratch2);
    free(rd);
}

/* Finds coll's id (by name) for a reader. */
static int coll_id_of(st_store *st, const char *coll, uint32_t *id)
{
    if (!st)
        return -EINVAL;
    int rc = st_coll_name_check(coll);
    if (rc)
        return rc == -ENAMETOOLONG ? -ENOENT : rc;
    st_coll *c = st_coll_find(st, coll);
    if (!c)
        return -ENOENT;
    *id = c->id;
    return 0;
}

int st_read_content(st_read *rd, const char *coll, const char *name, const void **data, size_t *len,
                    st_attr *attr_out)
{
    if (!rd || !data || !len)
        return -EINVAL;
    size_t nl;
    uint32_t cid;
    int rc = st_vec_name_check(name, &nl);
    if (rc == 0)
        rc = coll_id_of(rd->st, coll, &cid);
    if (rc)
        return rc;
    st_vec_rec r;
    rc = vec_rec_get(rd->st, rd->txn, cid, name, nl, &r, &rd->scratch2);
    if (rc)
        return rc;
    uint8_t ik[8];
    id_key(cid, r.id, ik);
    const void *body;
    size_t blen;
    const uint8_t *p;
    size_t n;
    rc = st_get(rd->st, rd->txn, ST_DB_CONTENT, ik, 8, &body, &blen, &rd->scratch);
    if (rc == -ENOENT)
        rc = -EIO; /* a VEC without CONTENT is damage */
    if (rc == 0)
        rc = st_rec_blob_dec(body, blen, ST_REC_CONTENT, &p, &n);
    if (rc == 0 && n != r.size)
        rc = -EIO;
    if (rc)
        return rc;
    *data = p;
    *len = n;
    if (attr_out)
        attr_from_vec(cid, &r, attr_out);
    return 0;
}

/* The start of every read of one vector: checks the name, finds the
 * collection and opens a read txn (*txn, to be aborted by the caller).
 * Returns 0, -EINVAL/-ENAMETOOLONG (name), -ENOENT, or the txn error. */
static int vec_read_begin(st_store *st, const char *coll, const char *name, size_t *nl,
                          uint32_t *cid, MDB_txn **txn)
{
    int rc = st_vec_name_check(name, nl);
    if (rc == 0)
        rc = coll_id_of(st, coll, cid);
    if (rc == 0)
        rc = st_txn_read(st, txn);
    return rc;
}

int st_vec_stat(st_store *st, const char *coll, const char *name, st_attr *out)
{
    size_t nl;
    uint32_t cid;
    if (!out)
        return -EINVAL;
    MDB_txn *txn;
    int rc = vec_read_begin(st, coll, name, &nl, &cid, &txn);
    if (rc)
        return rc;
    vc_buf scratch = VC_BUF_INIT;
    st_vec_rec r;
    rc = vec_rec_get(st, txn, cid, name, nl, &r, &scratch);
    mdb_txn_abort(txn);
    vc_buf_release(&scratch);
    if (rc == 0)
        attr_from_vec(cid, &r, out);
    return rc;
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
        void *copy = st_malloc(n);
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
    size_t nl;
    uint32_t cid;
    if (!dim_out || (!out && cap))
        return -EINVAL;
    MDB_txn *txn;
    int rc = vec_read_begin(st, coll, name, &nl, &cid, &txn);
    if (rc)
        return rc;
    vc_buf s1 = VC_BUF_INIT, s2 = VC_BUF_INIT;
    st_vec_rec r;
    rc = vec_rec_get(st, txn, cid, name, nl, &r, &s1);
    uint8_t ik[8];
    id_key(cid, r.id, ik);
    const void *body;
    size_t blen, snl;
    const char *sname;
    const uint8_t *sv;
    uint32_t dim = 0;
    if (rc == 0)
        rc = st_get(st, txn, ST_DB_SLOTS, ik, 8, &body, &blen, &s2);
    if (rc == -ENOENT)
        rc = -EIO;
    if (rc == 0)
        rc = st_rec_slot_dec(body, blen, &sname, &snl, &sv, &dim);
    if (rc == 0) {
        *dim_out = dim;
        if (cap < dim)
            rc = -ERANGE;
        else
            memcpy(out, sv, (size_t)dim * sizeof(float));
    }
    mdb_txn_abort(txn);
    vc_buf_release(&s1);
    vc_buf_release(&s2);
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
    seq_key(cid, offset, sk);
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
        uint8_t vk[VEC_KEY_MAX];
        st_be32(vk, cid);
        memcpy(vk + 4, nk, nkl);
        const void *vb;
        size_t vbl;
        st_vec_rec r;
        rc = st_get(st, txn, ST_DB_VECS, vk, 4 + nkl, &vb, &vbl, &s2);
        if (rc == -ENOENT)
            rc = -EIO;
        if (rc == 0)
            rc = st_rec_vec_dec(vb, vbl, &r);
        if (rc == 0 && r.seq != seq)
            rc = -EIO;
        if (rc)
            break;
        st_attr a;
        attr_from_vec(cid, &r, &a);
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

/* ------------------------------------------------------------------ */
/* Extended attributes                                                  */
/* ------------------------------------------------------------------ */

int st_xattr_set(st_store *st, const char *coll, const char *name, const char *xname,
                 const void *value, size_t len, int flags)
{
    size_t nl;
    int rc = st_vec_name_check(name, &nl);
    if (rc)
        return rc;
    rc = xattr_name_check(xname);
    if (rc)
        return rc;
    if (len > ST_XATTR_VALUE_MAX)
        return -E2BIG;
    if ((!value && len) || (flags & ~(ST_XATTR_CREATE | ST_XATTR_REPLACE)) ||
        flags == (ST_XATTR_CREATE | ST_XATTR_REPLACE))
        return -EINVAL;
    op o;
    rc = op_begin(st, coll, &o);
    if (rc)
        return rc;
    st_vec_rec r;
    rc = vec_rec_get(st, o.txn, o.c->id, name, nl, &r, &o.scratch);
    if (rc == 0)
        rc = xattr_store(&o, r.id, xname, value, len, flags);
    if (rc == 0) {
        st_now(&r.ctime);
        rc = vec_rec_put(st, o.txn, o.c->id, &r);
    }
    return op_end(&o, rc);
}

int st_xattr_remove(st_store *st, const char *coll, const char *name, const char *xname)
{
    size_t nl;
    int rc = st_vec_name_check(name, &nl);
    if (rc)
        return rc;
    rc = xattr_name_check(xname);
    if (rc)
        return rc == -ERANGE ? -ENODATA : rc;
    op o;
    rc = op_begin(st, coll, &o);
    if (rc)
        return rc;
    st_vec_rec r;
    rc = vec_rec_get(st, o.txn, o.c->id, name, nl, &r, &o.scratch);
    uint8_t key[XATTR_KEY_MAX];
    size_t kl = rc ? 0 : xattr_key(st, o.c->id, r.id, xname, key);
    const void *body;
    size_t blen, xl, vl;
    const char *xn;
    const uint8_t *val;
    if (rc == 0) {
        rc = st_get(st, o.txn, ST_DB_XATTRS, key, kl, &body, &blen, &o.scratch);
        if (rc == -ENOENT)
            rc = -ENODATA;
    }
    if (rc == 0)
        rc = st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl);
    if (rc == 0 && strncmp(xname, "user.", 5) == 0) {
        uint8_t mk[20], idb[4];
        st_be32(mk, o.c->id);
        st_meta_hash(&st->crypto, xname, val, vl, mk + 4);
        st_be32(idb, r.id);
        MDB_val mkv = {20, mk}, mdv = {4, idb};
        int d = mdb_del(o.txn, st->db[ST_DB_MIDX], &mkv, &mdv);
        if (d && d != MDB_NOTFOUND)
            rc = st_mdb_err(d);
    }
    MDB_val k = {kl, key};
    if (rc == 0)
        rc = st_mdb_err(mdb_del(o.txn, st->db[ST_DB_XATTRS], &k, NULL));
    if (rc == 0) {
        st_now(&r.ctime);
        rc = vec_rec_put(st, o.txn, o.c->id, &r);
    }
    return op_end(&o, rc);
}

int st_xattr_get(st_store *st, const char *coll, const char *name, const char *xname, void *buf,
                 size_t cap, size_t *len_out)
{
    size_t nl;
    uint32_t cid;
    if (!len_out || (!buf && cap))
        return -EINVAL;
    MDB_txn *txn;
    int rc = vec_read_begin(st, coll, name, &nl, &cid, &txn);
    if (rc)
        return rc;
    if (xattr_name_check(xname) != 0) {
        mdb_txn_abort(txn);
        return -ENODATA;
    }
    vc_buf s1 = VC_BUF_INIT;
    st_vec_rec r;
    rc = vec_rec_get(st, txn, cid, name, nl, &r, &s1);
    uint8_t key[XATTR_KEY_MAX];
    size_t kl = rc ? 0 : xattr_key(st, cid, r.id, xname, key);
    const void *body;
    size_t blen, xl, vl;
    const char *xn;
    const uint8_t *val;
    if (rc == 0) {
        rc = st_get(st, txn, ST_DB_XATTRS, key, kl, &body, &blen, &s1);
        if (rc == -ENOENT)
            rc = -ENODATA;
    }
    if (rc == 0)
        rc = st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl);
    if (rc == 0 && (xl != strlen(xname) || memcmp(xn, xname, xl) != 0))
        rc = -EIO;
    if (rc == 0) {
        *len_out = vl;
        if (cap > 0 && cap < vl)
            rc = -ERANGE;
        else if (cap > 0 && vl)
            memcpy(buf, val, vl);
    }
    mdb_txn_abort(txn);
    vc_buf_release(&s1);
    return rc;
}

int st_xattr_list(st_store *st, const char *coll, const char *name, char *buf, size_t cap,
                  size_t *len_out)
{
    size_t nl;
    uint32_t cid;
    if (!len_out || (!buf && cap))
        return -EINVAL;
    MDB_txn *txn;
    int rc = vec_read_begin(st, coll, name, &nl, &cid, &txn);
    if (rc)
        return rc;
    vc_buf s1 = VC_BUF_INIT;
    st_vec_rec r;
    MDB_cursor *cur = NULL;
    size_t total = 0;
    rc = vec_rec_get(st, txn, cid, name, nl, &r, &s1);
    if (rc == 0)
        rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_XATTRS], &cur));
    uint8_t pre[8];
    id_key(cid, r.id, pre);
    MDB_val k = {8, pre}, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && k.mv_size > 8 && memcmp(k.mv_data, pre, 8) == 0) {
        const void *body;
        size_t blen, xl, vl;
        const char *xn;
        const uint8_t *val;
        rc = st_env_open_buf(&st->crypto, ST_DB_XATTRS, k.mv_data, k.mv_size, v.mv_data, v.mv_size,
                             &s1, &body, &blen);
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
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    vc_buf_release(&s1);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Batches                                                              */
/* ------------------------------------------------------------------ */

typedef struct batch_row {
    char name[ST_NAME_MAX + 1];
    size_t name_len;
    void *content;
    size_t len;
    size_t vec_off; /* row index into b->vecs */
    st_attr attr;
    unsigned mask;
    size_t nmeta;
    char **meta_keys;
    void **meta_vals;
    size_t *meta_lens;
} batch_row;

struct st_batch {
    st_store *st;
    char coll[ST_COLL_NAME_MAX + 1];
    uint32_t dim;
    batch_row *rows;
    size_t n, cap;
    float *vecs;
};

int st_batch_begin(st_store *st, const char *coll, st_batch **out)
{
    if (!st || !out)
        return -EINVAL;
    *out = NULL;
    int rc = st_coll_name_check(coll);
    if (rc)
        return rc == -ENAMETOOLONG ? -ENOENT : rc;
    st_coll *c = st_coll_find(st, coll);
    if (!c)
        return -ENOENT;
    st_batch *b = st_calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->st = st;
    snprintf(b->coll, sizeof(b->coll), "%s", coll);
    pthread_mutex_lock(&c->mu);
    b->dim = c->cfg.dim;
    pthread_mutex_unlock(&c->mu);
    *out = b;
    return 0;
}

size_t st_batch_count(const st_batch *b)
{
    return b ? b->n : 0;
}

static void row_free(batch_row *r)
{
    free(r->content);
    for (size_t i = 0; i < r->nmeta; i++) {
        free(r->meta_keys[i]);
        free(r->meta_vals[i]);
    }
    free(r->meta_keys);
    free(r->meta_vals);
    free(r->meta_lens);
}

int st_batch_put(st_batch *b, const char *name, const void *content, size_t len, const float *vec,
                 uint32_t dim, const st_attr *attr, unsigned mask, size_t nmeta,
                 const char *const *meta_keys, const void *const *meta_vals,
                 const size_t *meta_lens)
{
    if (!b || (!attr && mask) || (nmeta && (!meta_keys || !meta_vals || !meta_lens)))
        return -EINVAL;
    size_t nl;
    int rc = row_check(name, &nl, content, len, vec, dim);
    if (rc)
        return rc;
    if (b->dim && dim != b->dim)
        return -EINVAL;
    for (size_t i = 0; i < nmeta; i++) {
        rc = xattr_name_check(meta_keys[i]);
        if (rc)
            return rc;
        if (meta_lens[i] > ST_XATTR_VALUE_MAX)
            return -E2BIG;
        if (!meta_vals[i] && meta_lens[i])
            return -EINVAL;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        batch_row *rows = st_realloc(b->rows, cap * sizeof(*rows));
        if (!rows)
            return -ENOMEM;
        b->rows = rows;
        float *v = st_realloc(b->vecs, cap * (size_t)dim * sizeof(float));
        if (!v)
            return -ENOMEM;
        b->vecs = v;
        b->cap = cap;
    }
    batch_row *r = &b->rows[b->n];
    memset(r, 0, sizeof(*r));
    memcpy(r->name, name, nl);
    r->name_len = nl;
    r->content = st_malloc(len);
    rc = r->content ? 0 : -ENOMEM;
    if (rc == 0 && len)
        memcpy(r->content, content, len);
    r->len = len;
    r->vec_off = b->n;
    if (attr)
        r->attr = *attr;
    r->mask = mask;
    if (rc == 0 && nmeta) {
        r->meta_keys = st_calloc(nmeta, sizeof(char *));
        r->meta_vals = st_calloc(nmeta, sizeof(void *));
        r->meta_lens = st_calloc(nmeta, sizeof(size_t));
        if (!r->meta_keys || !r->meta_vals || !r->meta_lens)
            rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < nmeta; i++) {
            r->meta_keys[i] = strdup(meta_keys[i]);
            r->meta_vals[i] = st_malloc(meta_lens[i]);
            r->nmeta = i + 1;
            if (!r->meta_keys[i] || !r->meta_vals[i]) {
                rc = -ENOMEM;
                break;
            }
            if (meta_lens[i])
                memcpy(r->meta_vals[i], meta_vals[i], meta_lens[i]);
            r->meta_lens[i] = meta_lens[i];
        }
    }
    if (rc) {
        row_free(r);
        return rc;
    }
    memcpy(b->vecs + b->n * (size_t)dim, vec, (size_t)dim * sizeof(float));
    b->dim = dim;
    b->n++;
    return 0;
}

void st_batch_abort(st_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        row_free(&b->rows[i]);
    free(b->rows);
    free(b->vecs);
    free(b);
}

int st_batch_commit(st_batch *b)
{
    if (!b)
        return -EINVAL;
    if (b->n == 0) {
        st_batch_abort(b);
        return 0;
    }
    op o;
    int rc = op_begin(b->st, b->coll, &o);
    if (rc) {
        st_batch_abort(b);
        return rc;
    }
    uint64_t need = 0;
    for (size_t i = 0; i < b->n; i++) {
        need += (uint64_t)b->rows[i].len + (uint64_t)b->dim * 4 + 2 * b->rows[i].name_len + 256;
        for (size_t j = 0; j < b->rows[i].nmeta; j++)
            need += b->rows[i].meta_lens[j] + 128;
    }
    rc = st_space_check(b->st, o.txn, need);
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        batch_row *r = &b->rows[i];

        uint32_t id;
        rc = vec_store(&o, r->name, r->name_len, r->content, r->len, b->vecs + r->vec_off * b->dim,
                       b->dim, &r->attr, r->mask, &id);
        for (size_t j = 0; rc == 0 && j < r->nmeta; j++)
            rc = xattr_store(&o, id, r->meta_keys[j], r->meta_vals[j], r->meta_lens[j], 0);
    }
    rc = op_end(&o, rc);
    st_batch_abort(b);
    return rc;
}
