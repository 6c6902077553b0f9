/*
 * write_op.c — the frame of every operation that changes a collection's
 * vectors (st_op): it locks the collection, takes a place in a commit
 * group (group.c) with a nested txn of its own, reads and writes the COLL
 * record, queues the index and name changes, and at the end waits for the
 * group's commit and applies them in commit order.
 *
 * A writing operation runs as:
 *     find collection -> lock c->wlock -> join a group (nested txn) ->
 *     read COLL record -> records -> COLL record (count, bytes, next ids)
 *     -> end the nested txn, take an apply ticket -> unlock c->wlock ->
 *     wait for the group's commit -> in the ticket's turn, apply to the
 *     counters, c->names and c->index
 * Releasing the wlock before the commit lets the next operation of the
 * same collection join the same group (and see this one's records in the
 * group's txn); the tickets keep the memory changing in commit order.
 *
 * States of an st_op
 *   OPEN   st_op_begin returned 0: c->wlock held, nested txn open, rec read.
 *   ENDED  st_op_end ended the nested txn (committed into the group or
 *          aborted), waited for the group and applied; it runs exactly
 *          once per OPEN op, whatever the result.
 *
 * Invariants
 *   1. Every change to a collection's vectors is applied to c->index and
 *      c->names in commit order, before st_op_end returns, and only if its
 *      group committed. While the wlock is held settled
 *      (st_coll_lock_settled: snapshots, trims, fills, config and
 *      collection ops) the memory equals the committed records.
 *   2. Whatever the store needs to apply the index changes is allocated
 *      before the commit (op_prepare), so an out-of-memory fails the call
 *      with nothing changed. Only the engine's own allocations can still
 *      fail after the commit; the call then succeeds (the records are the
 *      truth) and the index is brought to the records from the op log at
 *      once (op_catch_up); if that fails too it is counted, reported in
 *      health, and the index catches up at the next open.
 *   3. An op that fails before its group commits aborts its nested txn:
 *      nothing of it is committed, and the other members are unaffected.
 *
 * Lock order: c->wlock -> st->group.mu (group.c) and LMDB's writer lock
 * (a leader begins the group's txn) -> c->mu. The wait for the group and
 * the apply turn hold no lock (the turn takes c->mu and c->names.lock
 * alone).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

/* Ops that change more vectors than this apply them at normal priority. */
#define ST_WRITE_PRIORITY_MAX_CHANGES 64

int st_op_begin(st_store *st, const char *coll, st_op *o)
{
    memset(o, 0, sizeof(*o));
    o->st = st;
    if (!st)
        return -EINVAL;
    int rc = st_coll_name_arg(coll, ST_NAME_FIND);
    if (rc)
        return rc == -ENAMETOOLONG ? -ENOENT : rc;
    if (st->opt.read_only)
        return -EROFS;
    o->c = st_coll_find(st, coll);
    if (!o->c)
        return -ENOENT;
    o->prio = st_write_priority_raise();
    st_group_announce(st); /* the open group waits for us while we wait here */
    pthread_mutex_lock(&o->c->wlock);
    pthread_mutex_lock(&o->c->mu);
    bool gone = o->c->dropped || strcmp(o->c->name, coll) != 0;
    pthread_mutex_unlock(&o->c->mu);
    if (gone) {
        st_group_withdraw(st);
        pthread_mutex_unlock(&o->c->wlock);
        st_write_priority_restore(o->prio);
        o->c = NULL;
        return -ENOENT;
    }
    rc = st_group_join(st, &o->gm);
    if (rc) {
        pthread_mutex_unlock(&o->c->wlock);
        st_write_priority_restore(o->prio);
        o->c = NULL;
        return rc;
    }
    o->txn = o->gm.txn;
    rc = st_coll_rec_get(st, o->txn, coll, &o->rec);
    if (rc) {
        st_group_finish(st, &o->gm, rc, 0);
        o->txn = NULL;
        pthread_mutex_unlock(&o->c->wlock);
        (void)st_group_wait(st, &o->gm);
        st_write_priority_restore(o->prio);
        o->c = NULL;
    }
    return rc;
}

int st_op_ins(st_op *o, uint32_t id, const float *vec, uint32_t dim)
{
    assert(o->txn && vec && dim > 0 && (o->nins == 0 || dim == o->dim));
    if (o->nins == o->cap_ins) {
        size_t cap = o->cap_ins ? o->cap_ins * 2 : 4;
        uint32_t *ids = vc_realloc(o->ins_ids, cap * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        o->ins_ids = ids;
        float *v = vc_realloc(o->ins_vecs, cap * dim * sizeof(*v));
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

int st_op_del(st_op *o, uint32_t id)
{
    assert(o->txn);
    if (o->ndel == o->cap_del) {
        size_t cap = o->cap_del ? o->cap_del * 2 : 4;
        uint32_t *ids = vc_realloc(o->del_ids, cap * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        o->del_ids = ids;
        o->cap_del = cap;
    }
    o->del_ids[o->ndel++] = id;
    return 0;
}

/* Queues "id is now called name" (name NULL: id has no vector). */
int st_op_name(st_op *o, uint32_t id, const char *name, size_t len)
{
    assert(o->txn && (name || len == 0));
    if (o->nnames == o->cap_names) {
        size_t cap = o->cap_names ? o->cap_names * 2 : 4;
        st_name_change *n = vc_realloc(o->names, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        o->names = n;
        o->cap_names = cap;
    }
    o->names[o->nnames++] = (st_name_change){.id = id, .name = name, .len = len};
    return 0;
}

/* qsort order of (id << 32 | row) pairs. */
static int cmp_pair(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return *x < *y ? -1 : *x > *y;
}

/* Everything applying the queued index changes needs that can fail in the
 * store, done before the commit: the index (created aside when the
 * collection has none; installed only once committed), the inserts with one
 * row per id (the last row of an id wins, which is what the records say),
 * and room in the index for the largest id. */
static int op_prepare(st_op *o)
{
    st_coll *c = o->c;
    pthread_mutex_lock(&c->mu);
    vf_hnsw *h = c->index;
    st_config cfg = c->cfg;
    pthread_mutex_unlock(&c->mu);
    if (o->nins == 0)
        return 0;
    if (!h) {
        int rc = st_coll_index_new(c, &cfg, o->dim, &o->new_index);
        if (rc)
            return rc;
        h = o->new_index;
    }
    uint64_t *pairs = vc_malloc(o->nins * sizeof(*pairs));
    o->apply_ids = vc_malloc(o->nins * sizeof(*o->apply_ids));
    o->apply_vecs = vc_malloc(o->nins * o->dim * sizeof(float));
    if (!pairs || !o->apply_ids || !o->apply_vecs) {
        free(pairs);
        return -ENOMEM;
    }
    /* (id << 32 | row), sorted: keep the last row of each id. */
    for (size_t i = 0; i < o->nins; i++)
        pairs[i] = ((uint64_t)o->ins_ids[i] << 32) | i;
    qsort(pairs, o->nins, sizeof(*pairs), cmp_pair);
    uint32_t maxid = 0;
    for (size_t i = 0; i < o->nins; i++) {
        if (i + 1 < o->nins && (pairs[i + 1] >> 32) == (pairs[i] >> 32))
            continue;
        size_t row = (size_t)(pairs[i] & 0xffffffffu);
        uint32_t id = (uint32_t)(pairs[i] >> 32);
        o->apply_ids[o->napply] = id;
        if (id > maxid)
            maxid = id;
        memcpy(o->apply_vecs + o->napply * o->dim, o->ins_vecs + row * o->dim,
               o->dim * sizeof(float));
        o->napply++;
    }
    free(pairs);
    return vf_hnsw_reserve(h, (size_t)maxid + 1);
}

/* Applies the queued index changes after the commit: removes, then the
 * prepared inserts. What can still fail is the engine's own memory (its
 * scratch, a new node's upper lists); st_op_end handles that. */
static int op_apply(st_op *o)
{
    st_coll *c = o->c;
    pthread_mutex_lock(&c->mu);
    if (o->new_index && !c->index) {
        c->index = o->new_index;
        o->new_index = NULL;
    }
    vf_hnsw *h = c->index;
    pthread_mutex_unlock(&c->mu);
    st_rebuild_touch(c, o->del_ids, o->ndel, o->apply_ids, o->napply);
    for (size_t i = 0; h && i < o->ndel; i++) {
        bool reinserted = false;
        for (size_t j = 0; j < o->nins && !reinserted; j++)
            reinserted = o->ins_ids[j] == o->del_ids[i];
        if (!reinserted && vf_hnsw_contains(h, o->del_ids[i]))
            vf_hnsw_remove(h, o->del_ids[i]);
    }
    if (o->napply == 1)
        return vf_hnsw_insert(h, o->apply_ids[0], o->apply_vecs);
    if (o->napply > 1)
        return vf_hnsw_insert_batch(h, o->apply_ids, 0, o->apply_vecs, o->napply,
                                    o->st->opt.threads);
    return 0;
}

/* After an index update failed post-commit: the records are the truth, so
 * bring the index to them now from the op log (idempotent; it holds every
 * id changed since the last snapshot) rather than at the next open. */
static int op_catch_up(st_op *o)
{
    st_store *st = o->st;
    st_coll *c = o->c;
    pthread_mutex_lock(&c->mu);
    vf_hnsw *h = c->index;
    pthread_mutex_unlock(&c->mu);
    if (!h)
        return -ENOMEM;
    MDB_txn *txn;
    int rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    size_t n_dirty;
    uint64_t max_gen;
    rc = st_oplog_replay(st, txn, c->id, h, &n_dirty, &max_gen);
    mdb_txn_abort(txn);
    return rc;
}

/* The memory side of a committed op, in its apply turn: counters, names,
 * then the index. */
static void op_apply_committed(st_op *o)
{
    st_store *st = o->st;
    st_coll *c = o->c;
    pthread_mutex_lock(&c->mu);
    c->cfg = o->rec.cfg;
    c->count = o->rec.count;
    c->bytes = o->rec.bytes;
    pthread_mutex_unlock(&c->mu);
    st_names_apply(&c->names, o->names, o->nnames);
    if (o->nins == 0 && o->ndel == 0)
        return;
    st_coll_note_changes(c, o->nins + o->ndel);
    int arc = op_apply(o);
    if (arc)
        arc = op_catch_up(o);
    if (arc) {
        /* Committed, so the call succeeded; the index catches up from the
         * dirty entries at the next open. */
        atomic_fetch_add(&st->errors, 1);
        st_health_set(st, "index of '%s' is behind its records: %s", o->rec.name, strerror(-arc));
    }
    atomic_fetch_add(&st->inserts, o->nins);
    atomic_fetch_add(&st->deletes, o->ndel);
}

/* Ends the op's part of its commit group (writing the COLL record back),
 * releases the collection so the next op can join the same group, waits
 * for the group's commit, then applies the changes in commit order. rc is
 * the operation's result so far. */
int st_op_end(st_op *o, int rc)
{
    assert(o->c && o->txn);
    st_store *st = o->st;
    st_coll *c = o->c;
    if (rc == 0)
        rc = st_coll_rec_put(st, o->txn, &o->rec);
    if (rc == 0)
        rc = op_prepare(o);
    st_group_finish(st, &o->gm, rc, o->bytes);
    o->txn = NULL;
    bool joined = o->gm.result == 0;
    uint64_t ticket = joined ? st_apply_ticket(c) : 0;
    pthread_mutex_unlock(&c->wlock);
    rc = st_group_wait(st, &o->gm);
    /* A large batch's index build goes at the queries' priority: readers
     * never wait for an import (issue 11). */
    if (o->nins + o->ndel > ST_WRITE_PRIORITY_MAX_CHANGES) {
        st_write_priority_restore(o->prio);
        o->prio = ST_PRIORITY_UNCHANGED;
    }
    if (joined) {
        st_apply_turn(c, ticket);
        if (rc == 0)
            op_apply_committed(o);
        st_apply_turn_end(c);
    }
    vc_buf_release(&o->scratch);
    free(o->ins_ids);
    free(o->ins_vecs);
    free(o->del_ids);
    free(o->names);
    free(o->apply_ids);
    free(o->apply_vecs);
    vf_hnsw_free(o->new_index);
    st_write_priority_restore(o->prio);
    return rc;
}
