/*
 * coll_ops.c — the operations on collections as directories: create,
 * drop, rename, stat, setattr and listing.
 *
 * Invariants
 *   1. A collection's records and its object change together: create adds
 *      the object after its COLL record commits, drop and a replacing
 *      rename bury it (coll.c) after theirs.
 *   2. Dropping a collection deletes every record under its id prefix in
 *      the same txn as its COLL record, and then its snapshot file.
 *   3. colls_lock is not held across a transaction: lookups by readers
 *      never wait behind LMDB's writer lock.
 *
 * Lock order: c->wlock (by ascending collection id when two are needed)
 * -> LMDB's writer lock -> st->colls_lock -> c->mu.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

/* Deletes every key of db that starts with the 4-byte collection prefix. */
static int del_prefix(st_store *st, MDB_txn *txn, int db, uint32_t coll_id)
{
    uint8_t pre[4];
    st_be32(pre, coll_id);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->db[db], &cur);
    if (rc)
        return st_mdb_err(rc);
    MDB_val k = {4, pre}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 4 && memcmp(k.mv_data, pre, 4) == 0) {
        rc = mdb_cursor_del(cur, db == ST_DB_MIDX || db == ST_DB_VIDX ? MDB_NODUPDATA : 0);
        if (rc)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc == MDB_NOTFOUND || rc == EINVAL)
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : st_mdb_err(rc);
}

/* Deletes every record of collection coll_id but its COLL record. */
static int records_drop(st_store *st, MDB_txn *txn, uint32_t coll_id)
{
    int rc = 0;
    for (int db = ST_DB_VECS; rc == 0 && db < ST_DB_COUNT; db++)
        rc = del_prefix(st, txn, db, coll_id);
    return rc;
}

int st_coll_create(st_store *st, const char *name, const st_attr *attr, const st_config *cfg)
{
    if (!st)
        return -EINVAL;
    int rc = st_coll_name_arg(name, ST_NAME_NEW);
    if (rc)
        return rc;
    st_config def;
    if (!cfg) {
        st_config_default(&def);
        cfg = &def;
    }
    if (st_config_validate(cfg) != 0)
        return -EINVAL;
    rc = cfg == &def ? 0 : st_log_refuse(st); /* a config is not logged yet */
    if (rc)
        return rc;
    rc = st_log_route(st, &(st_log_op){.kind = ST_LOG_COLL_CREATE,
                                       .coll = name,
                                       .attr = attr ? *attr : (st_attr){.mode = 0755},
                                       .mask = ST_SET_MODE | ST_SET_UID | ST_SET_GID});
    if (rc != ST_LOG_LOCAL)
        return rc;
    st_coll_rec r;
    memset(&r, 0, sizeof(r));
    r.cfg = *cfg;
    r.mode = attr ? (attr->mode & 07777) : 0755;
    r.uid = attr ? attr->uid : 0;
    r.gid = attr ? attr->gid : 0;
    st_now(&r.atime);
    r.mtime = r.ctime = r.cfg_mtime = r.atime;
    r.next_seq = 1;
    snprintf(r.name, sizeof(r.name), "%s", name);
    rc = st_random(&r.uuid, sizeof(r.uuid));
    if (rc)
        return rc;

    /* colls_lock is not held across the transaction: lookups by readers
     * must never wait behind LMDB's writer lock. */
    MDB_txn *txn = NULL;
    st_coll *c = NULL;
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    st_coll_rec old;
    rc = st_coll_rec_get(st, txn, name, &old);
    if (rc == 0) {
        rc = -EEXIST;
        goto out;
    }
    if (rc != -ENOENT)
        goto out;
    uint64_t next;
    rc = st_meta_counter_get(st, txn, "nextcoll", &next);
    if (rc)
        goto out;
    if (next >= UINT32_MAX) {
        rc = -ENOSPC;
        goto out;
    }
    r.coll_id = (uint32_t)next;
    rc = st_meta_counter_put(st, txn, "nextcoll", next + 1);
    if (rc == 0)
        rc = st_coll_rec_put(st, txn, &r);
    if (rc)
        goto out;
    c = st_coll_new(&r);
    if (!c) {
        rc = -ENOMEM;
        goto out;
    }
    /* Room in the table first: once committed, the collection must be in
     * it. Creators are serialized by LMDB's writer lock (txn is open), so
     * the room is still there after the commit. */
    pthread_rwlock_wrlock(&st->colls_lock);
    rc = st_colls_reserve(st);
    pthread_rwlock_unlock(&st->colls_lock);
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
    if (rc)
        goto out;
    pthread_rwlock_wrlock(&st->colls_lock);
    rc = st_colls_add(st, c);
    pthread_rwlock_unlock(&st->colls_lock);
    assert(rc == 0); /* reserved above */
    c = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    st_coll_free(c);
    return rc;
}

int st_coll_drop(st_store *st, const char *name)
{
    if (!st)
        return -EINVAL;
    st_coll *c;
    int rc = st_coll_named(st, name, &c);
    if (rc)
        return rc;
    rc = st_log_route(st, &(st_log_op){.kind = ST_LOG_COLL_DROP, .coll = name});
    if (rc != ST_LOG_LOCAL)
        return rc;
    st_coll_lock_settled(c);
    MDB_txn *txn = NULL;
    pthread_mutex_lock(&c->mu);
    bool gone = c->dropped || strcmp(c->name, name) != 0;
    pthread_mutex_unlock(&c->mu);
    if (gone) {
        rc = -ENOENT;
        goto out;
    }
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    st_coll_rec r;
    rc = st_coll_rec_get(st, txn, name, &r);
    if (rc)
        goto out;
    if (r.count > 0) {
        rc = -ENOTEMPTY;
        goto out;
    }
    rc = st_coll_rec_del(st, txn, name);
    if (rc == 0)
        rc = records_drop(st, txn, c->id);
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
    if (rc)
        goto out;
    pthread_mutex_lock(&c->mu);
    c->dropped = true;
    pthread_mutex_unlock(&c->mu);
    st_names_clear(&c->names);
    st_qsample_reset(&c->qsample);
    pthread_rwlock_wrlock(&st->colls_lock);
    st_colls_bury(st, c);
    pthread_rwlock_unlock(&st->colls_lock);
    st_snap_remove(st, c->id);
out:
    if (txn)
        mdb_txn_abort(txn);
    pthread_mutex_unlock(&c->wlock);
    return rc;
}

int st_coll_rename(st_store *st, const char *from, const char *to, unsigned flags)
{
    if (!st)
        return -EINVAL;
    int rc = st_coll_name_arg(from, ST_NAME_FIND);
    if (rc == 0)
        rc = st_coll_name_arg(to, ST_NAME_NEW);
    if (rc)
        return rc;
    if (flags & ~ST_RENAME_NOREPLACE)
        return -EINVAL;
    rc = st_log_route(
        st, &(st_log_op){.kind = ST_LOG_COLL_RENAME, .coll = from, .to = to, .flags = flags});
    if (rc != ST_LOG_LOCAL)
        return rc;
    st_coll *c = st_coll_find(st, from);
    if (!c)
        return -ENOENT;
    if (strcmp(from, to) == 0)
        return 0;
    st_coll *t = st_coll_find(st, to);
    if (t && (flags & ST_RENAME_NOREPLACE))
        return -EEXIST;
    st_coll *first = c, *second = t;
    if (t && t->id < c->id) {
        first = t;
        second = c;
    }
    st_coll_lock_settled(first);
    if (second)
        st_coll_lock_settled(second);
    MDB_txn *txn = NULL;
    pthread_rwlock_rdlock(&st->colls_lock);
    bool raced = c->dropped || strcmp(c->name, from) != 0 || st_coll_find_locked(st, to) != t;
    pthread_rwlock_unlock(&st->colls_lock);
    if (raced) {
        rc = -EAGAIN; /* raced with another rename/drop: the caller may retry */
        goto out;
    }
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    st_coll_rec r, tr;
    rc = st_coll_rec_get(st, txn, from, &r);
    if (rc)
        goto out;
    if (!t && st_coll_rec_get(st, txn, to, &tr) == 0) {
        rc = -EAGAIN; /* created meanwhile */
        goto out;
    }
    if (t) {
        rc = st_coll_rec_get(st, txn, to, &tr);
        if (rc)
            goto out;
        if (tr.count > 0) {
            rc = -ENOTEMPTY;
            goto out;
        }
        rc = records_drop(st, txn, t->id);
    }
    if (rc == 0)
        rc = st_coll_rec_del(st, txn, from);
    snprintf(r.name, sizeof(r.name), "%s", to);
    st_now(&r.ctime);
    if (rc == 0)
        rc = st_coll_rec_put(st, txn, &r); /* replaces to's record */
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
    if (rc)
        goto out;
    pthread_rwlock_wrlock(&st->colls_lock);
    if (t) {
        pthread_mutex_lock(&t->mu);
        t->dropped = true;
        pthread_mutex_unlock(&t->mu);
        st_qsample_reset(&t->qsample);
        st_colls_bury(st, t);
    }
    pthread_mutex_lock(&c->mu);
    snprintf(c->name, sizeof(c->name), "%s", to);
    pthread_mutex_unlock(&c->mu);
    pthread_rwlock_unlock(&st->colls_lock);
    if (t)
        st_snap_remove(st, t->id);
out:
    if (txn)
        mdb_txn_abort(txn);
    if (second)
        pthread_mutex_unlock(&second->wlock);
    pthread_mutex_unlock(&first->wlock);
    return rc;
}

int st_coll_stat(st_store *st, const char *name, st_attr *out)
{
    if (!st || !out)
        return -EINVAL;
    st_coll_rec r;
    int rc = st_coll_rec_read(st, name, &r);
    if (rc == 0)
        st_attr_from_coll(&r, out);
    return rc;
}

int st_coll_attr_update(st_store *st, const char *name, const st_attr *attr, unsigned mask,
                        const struct timespec *cfg_mtime)
{
    assert(st && (attr || !mask));
    int rc =
        st_log_route(st, &(st_log_op){.kind = ST_LOG_COLL_ATTR,
                                      .coll = name,
                                      .attr = attr ? *attr : (st_attr){0},
                                      .mask = mask,
                                      .flags = cfg_mtime ? ST_LOG_CFG_MTIME : 0,
                                      .cfg_mtime = cfg_mtime ? *cfg_mtime : (struct timespec){0}});
    if (rc != ST_LOG_LOCAL)
        return rc;
    st_coll *c;
    rc = st_coll_named(st, name, &c);
    if (rc)
        return rc;
    st_coll_lock_settled(c);
    MDB_txn *txn = NULL;
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    st_coll_rec r;
    rc = st_coll_rec_get(st, txn, name, &r);
    if (rc)
        goto out;
    if (!st_attr_apply(attr, mask, ST_ATTR_REF(r)) && (mask || !cfg_mtime))
        st_now(&r.ctime);
    if (cfg_mtime)
        r.cfg_mtime = *cfg_mtime;
    rc = st_coll_rec_put(st, txn, &r);
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    pthread_mutex_unlock(&c->wlock);
    return rc;
}

int st_coll_setattr(st_store *st, const char *name, const st_attr *attr, unsigned mask)
{
    if (!st || (!attr && mask))
        return -EINVAL;
    return st_coll_attr_update(st, name, attr, mask, NULL);
}

int st_coll_list(st_store *st, uint64_t offset, st_list_fn fn, void *ctx)
{
    if (!st || !fn)
        return -EINVAL;
    pthread_rwlock_rdlock(&st->colls_lock);
    size_t n = st->ncolls;
    char(*names)[ST_COLL_NAME_MAX + 1] = vc_malloc(n * sizeof(*names) + 1);
    uint32_t *ids = vc_malloc(n * sizeof(*ids) + 1);
    if (names && ids)
        for (size_t i = 0; i < n; i++) {
            memcpy(names[i], st->colls[i]->name, sizeof(names[i]));
            ids[i] = st->colls[i]->id;
        }
    pthread_rwlock_unlock(&st->colls_lock);
    int rc = (names && ids) ? 0 : -ENOMEM;
    MDB_txn *txn = NULL;
    if (rc == 0)
        rc = st_txn_read(st, &txn);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((uint64_t)ids[i] + 1 <= offset)
            continue;
        st_coll_rec r;
        int g = st_coll_rec_get(st, txn, names[i], &r);
        if (g == -ENOENT)
            continue; /* dropped or renamed since the copy */
        if (g) {
            rc = g;
            break;
        }
        st_attr a;
        st_attr_from_coll(&r, &a);
        if (fn(ctx, names[i], &a, (uint64_t)ids[i] + 1) != 0)
            break;
    }
    if (txn)
        mdb_txn_abort(txn);
    free(names);
    free(ids);
    return rc;
}
