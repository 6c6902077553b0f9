/*
 * oplog.c — the op log: the DIRTY database, (collection, id) -> generation
 * of the last change to that id not yet covered by a snapshot. Writers
 * mark ids, open replays them onto a loaded snapshot, and a snapshot
 * trims what it covers.
 *
 * Replay re-applies the current record of every dirty id (insert its SLOT
 * vector, or remove it when it has no SLOT), so it is idempotent and
 * correct however many times it runs.
 *
 * Invariants
 *   1. Every change to a collection's vectors is committed together with a
 *      DIRTY entry for each engine id it touched, at c->cur_gen
 *      (st_oplog_mark, called with c->wlock held).
 *   2. DIRTY entries with gen <= g are deleted only after the snapshot of
 *      generation g is durably in place, in the txn that sets the COLL
 *      record's snap_gen = g (st_oplog_trim, snapshot.c invariant 1).
 *   3. A damaged DIRTY entry is never trimmed: replay treats it as dirty.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

int st_oplog_mark(st_store *st, MDB_txn *txn, st_coll *c, uint32_t id)
{
    assert(txn && c);
    uint8_t key[8];
    st_be32(key, c->id);
    st_be32(key + 4, id);
    vc_buf b = VC_BUF_INIT;
    st_rec_counter_enc(&b, c->cur_gen);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_DIRTY, key, sizeof(key), b.p, b.len);
    vc_buf_release(&b);
    return rc;
}

int st_oplog_trim(st_store *st, st_coll *c, uint64_t g)
{
    st_coll_lock_settled(c);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    vc_buf scratch = VC_BUF_INIT;
    char name[ST_COLL_NAME_MAX + 1];
    pthread_mutex_lock(&c->mu);
    memcpy(name, c->name, sizeof(name));
    bool dropped = c->dropped;
    pthread_mutex_unlock(&c->mu);
    int rc = dropped ? -ENOENT : st_txn_write(st, &txn);
    if (rc)
        goto out;
    st_coll_rec r;
    rc = st_coll_rec_get(st, txn, name, &r);
    if (rc)
        goto out;
    rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_DIRTY], &cur));
    if (rc)
        goto out;
    uint8_t pre[4];
    st_be32(pre, c->id);
    MDB_val k = {4, pre}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == 0 && k.mv_size == 8 && memcmp(k.mv_data, pre, 4) == 0) {
        const void *body;
        size_t blen;
        uint64_t gen = UINT64_MAX;
        /* A damaged entry stays (replay treats it as dirty). */
        int orc = st_env_open_buf(&st->crypto, ST_DB_DIRTY, k.mv_data, 8, v.mv_data, v.mv_size,
                                  &scratch, &body, &blen);
        if (orc == -ENOMEM) {
            rc = orc;
            goto out;
        }
        if (orc == 0 && st_rec_counter_dec(body, blen, &gen) == 0 && gen <= g) {
            rc = st_mdb_err(mdb_cursor_del(cur, 0));
            if (rc)
                goto out;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
            if (mrc == 0)
                continue;
            k.mv_size = 4;
            k.mv_data = pre;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            continue;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = st_mdb_err(mrc);
        goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    r.snap_gen = g;
    rc = st_coll_rec_put(st, txn, &r);
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    vc_buf_release(&scratch);
    pthread_mutex_unlock(&c->wlock);
    return rc;
}

/* True when h holds id with exactly vec (normalized first for cosine,
 * as the index stores unit vectors). scratch holds 2 * dim floats. */
static bool replay_same(const vf_hnsw *h, const vf_hnsw_params *p, uint32_t id, const float *vec,
                        float *scratch)
{
    if (!vf_hnsw_contains(h, id) || vf_hnsw_get(h, id, scratch) != 0)
        return false;
    float *want = scratch + p->dim;
    if (p->metric == VF_METRIC_COSINE)
        vf_normalize(vec, want, p->dim);
    else
        memcpy(want, vec, (size_t)p->dim * sizeof(float));
    return memcmp(scratch, want, (size_t)p->dim * sizeof(float)) == 0;
}

int st_oplog_replay(st_store *st, MDB_txn *txn, uint32_t coll_id, vf_hnsw *h, size_t *n_dirty,
                    uint64_t *max_gen)
{
    assert(txn && n_dirty && max_gen);
    MDB_cursor *cur;
    vc_buf s1 = VC_BUF_INIT, s2 = VC_BUF_INIT;
    *n_dirty = 0;
    *max_gen = 0;
    vf_hnsw_params p = {.dim = 1};
    if (h)
        vf_hnsw_params_get(h, &p);
    int rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_DIRTY], &cur));
    if (rc)
        return rc;
    uint8_t pre[4];
    st_be32(pre, coll_id);
    MDB_val k = {4, pre}, v;
    float *vec = vc_malloc((size_t)p.dim * sizeof(float));
    float *cmp = vc_malloc((size_t)p.dim * sizeof(float) * 2);
    if (!cmp) {
        free(vec);
        vec = NULL;
    }
    int mrc = vec ? st_mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
    if (!vec)
        rc = -ENOMEM;
    while (rc == 0 && mrc == 0 && k.mv_size == 8 && memcmp(k.mv_data, pre, 4) == 0) {
        uint32_t id = st_get_be32((const uint8_t *)k.mv_data + 4);
        const void *body;
        size_t blen;
        uint64_t gen;
        int orc = st_env_open_buf(&st->crypto, ST_DB_DIRTY, k.mv_data, 8, v.mv_data, v.mv_size, &s1,
                                  &body, &blen);
        if (orc == -ENOMEM) {
            rc = orc;
            break;
        }
        if (orc == 0 && st_rec_counter_dec(body, blen, &gen) == 0 && gen > *max_gen &&
            gen != UINT64_MAX)
            *max_gen = gen;
        (*n_dirty)++;
        if (!h) {
            mrc = st_mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        uint8_t ik[8];
        st_be32(ik, coll_id);
        st_be32(ik + 4, id);
        const char *name;
        size_t nl;
        const uint8_t *sv;
        uint32_t dim;
        int g = st_get(st, txn, ST_DB_SLOTS, ik, 8, &body, &blen, &s2);
        if (g == 0)
            g = st_rec_slot_dec(body, blen, &name, &nl, &sv, &dim);
        if (g == 0) {
            if (dim != p.dim) {
                rc = -EIO;
                break;
            }
            memcpy(vec, sv, (size_t)dim * sizeof(float));
            /* An id whose vector the snapshot already holds is left alone:
             * an update would relink it for nothing. */
            if (!replay_same(h, &p, id, vec, cmp))
                rc = vf_hnsw_insert(h, id, vec);
        } else if (g == -ENOENT) {
            if (vf_hnsw_contains(h, id))
                rc = vf_hnsw_remove(h, id);
        } else {
            rc = g;
        }
        if (rc == 0)
            mrc = st_mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc && mrc != MDB_NOTFOUND)
        rc = st_mdb_err(mrc);
    mdb_cursor_close(cur);
    free(vec);
    free(cmp);
    vc_buf_release(&s1);
    vc_buf_release(&s2);
    return rc;
}
