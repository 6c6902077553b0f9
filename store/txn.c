/*
 * txn.c — LMDB transactions and single-record access: begin/commit with
 * LMDB's return codes mapped to negative errnos, and st_get/st_put, which
 * open and seal the envelope (crypto.c) of one value.
 *
 * Invariants
 *   1. Every LMDB return code leaves store/ as a negative errno through
 *      st_mdb_err: callers never see an MDB_* code.
 *   2. A successful commit sets st->unsynced, so the background thread
 *      knows there is something to sync.
 *   3. st_put writes the sealed value in place (MDB_RESERVE): the body is
 *      never copied twice. It appends when the key comes last (full pages
 *      for sequential keys) and inserts otherwise: the same result.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "le.h"

const char *const st_db_names[ST_DB_COUNT] = {NULL,    "meta",    "colls", "vecs",
                                              "slots", "content", "order", "xattrs",
                                              "midx",  "free",    "dirty", "vidx"};

int st_mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_MAP_FULL:
        return -ENOSPC;
    case MDB_TXN_FULL:
        return -EFBIG; /* one transaction changed more pages than LMDB allows */
    case MDB_READERS_FULL:
        return -EAGAIN;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_BAD_TXN:
    case MDB_PANIC:
        return -EIO;
    case MDB_VERSION_MISMATCH:
        return -EPROTO;
    case MDB_BAD_VALSIZE:
        return -EINVAL;
    case MDB_MAP_RESIZED:
    case MDB_TLS_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
    case MDB_DBS_FULL:
    case MDB_INCOMPATIBLE:
    case MDB_BAD_RSLOT:
    case MDB_BAD_DBI:
        return -EIO;
    default:
        return rc > 0 ? -rc : -EIO;
    }
}

int st_txn_write(st_store *st, MDB_txn **out)
{
    *out = NULL;
    if (st->opt.read_only)
        return -EROFS;
    return st_mdb_err(mdb_txn_begin(st->env, NULL, 0, out));
}

int st_txn_read(st_store *st, MDB_txn **out)
{
    *out = NULL;
    return st_mdb_err(mdb_txn_begin(st->env, NULL, MDB_RDONLY, out));
}

#define APPLIED_KEY "applied"

int st_txn_commit(st_store *st, MDB_txn *txn)
{
    if (st_log_applying()) {
        uint8_t seq[8];
        vc_le_put64(seq, st_log_apply_seq());
        int rc = st_put(st, txn, ST_DB_META, APPLIED_KEY, strlen(APPLIED_KEY), seq, 8);
        if (rc) {
            mdb_txn_abort(txn);
            return rc;
        }
    }
    int rc = st_mdb_err(mdb_txn_commit(txn));
    if (rc == 0)
        atomic_store(&st->unsynced, true);
    return rc;
}

int st_get(st_store *st, MDB_txn *txn, int db, const void *key, size_t klen, const void **body,
           size_t *blen, vc_buf *scratch)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, st->db[db], &k, &v);
    if (rc)
        return st_mdb_err(rc);
    return st_env_open_buf(&st->crypto, (uint8_t)db, key, klen, v.mv_data, v.mv_size, scratch, body,
                           blen);
}

int st_put(st_store *st, MDB_txn *txn, int db, const void *key, size_t klen, const void *body,
           size_t blen)
{
    MDB_val k = {klen, (void *)key};
    MDB_val v = {blen + st_env_overhead(&st->crypto), NULL};
    /* Keys of new records mostly sort after every key of their database
     * (new ids, sequence numbers, an import's numbered names): appended,
     * LMDB fills the last page and starts a new one, where an insert would
     * split it in half and leave the pages of a sequential load half
     * empty. MDB_KEYEXIST says the key is not past the last one (nothing
     * was changed): then it is an ordinary put. */
    int rc = mdb_put(txn, st->db[db], &k, &v, MDB_RESERVE | MDB_APPEND);
    if (rc == MDB_KEYEXIST) {
        v = (MDB_val){blen + st_env_overhead(&st->crypto), NULL};
        rc = mdb_put(txn, st->db[db], &k, &v, MDB_RESERVE);
    }
    if (rc)
        return st_mdb_err(rc);
    return st_env_seal(&st->crypto, (uint8_t)db, key, klen, body, blen, v.mv_data);
}

int st_log_applied_get(st_store *st, uint64_t *seq)
{
    MDB_txn *txn;
    int rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    const void *body;
    size_t blen;
    vc_buf scratch = VC_BUF_INIT;
    rc = st_get(st, txn, ST_DB_META, APPLIED_KEY, strlen(APPLIED_KEY), &body, &blen, &scratch);
    *seq = 0;
    if (rc == 0 && blen == 8)
        *seq = vc_le_get64(body);
    else if (rc == 0)
        rc = -EIO;
    else if (rc == -ENOENT)
        rc = 0;
    vc_buf_release(&scratch);
    mdb_txn_abort(txn);
    return rc;
}

int st_log_applied_commit(st_store *st)
{
    MDB_txn *txn;
    int rc = st_txn_write(st, &txn);
    return rc ? rc : st_txn_commit(st, txn);
}
