/*
 * group.c — group commit: the writing operations that arrive while a
 * commit is in flight share the next LMDB write transaction, and so one
 * commit and one fdatasync.
 *
 * A group is one top-level LMDB write txn (the parent). The thread that
 * finds no group open becomes its leader: it begins the parent, runs its
 * own operation, lets every operation that queued meanwhile run, then
 * commits the parent and tells every member the result. Each member runs
 * in a nested txn of its own (a child of the parent): a member that fails
 * aborts its child, which undoes exactly its own changes, so one failing
 * operation fails only its own caller. Members run one at a time (the
 * baton); LMDB allows one active child per parent, and the child sees
 * what the members before it wrote.
 *
 * The leader begins and commits the parent on its own thread: LMDB's
 * writer lock belongs to the thread that began the txn. Members use the
 * parent only to begin, commit or abort their child, one at a time under
 * g->mu's baton, so each hand-over is ordered by the mutex.
 *
 * Bounds of a group: at most ST_GROUP_MAX_OPS members and
 * ST_GROUP_MAX_BYTES of payload (a single larger member runs alone), and
 * the leader stops admitting members ST_GROUP_MAX_WAIT_MS after it began
 * the parent. A member that finds the group full waits for the next one.
 * The leader admits the operations waiting for the baton and those
 * announced (st_group_announce: on their way, e.g. waiting for their
 * collection's wlock, which the previous member of that collection just
 * released); it never waits for operations that have not started.
 *
 * States of the group (g->mu)
 *   IDLE      no parent: the next joiner becomes leader.
 *   OPEN      parent begun; members take the baton in turn.
 *   CLOSED    the leader stopped admitting (no one waiting, or a bound hit)
 *             and commits; g->open is false again, so the next joiner
 *             becomes the next leader and begins its parent, which LMDB
 *             lets start once this commit is done.
 *
 * Invariants
 *   1. A member is told its result only after the parent holding its
 *      changes committed (0) or failed (the commit's error), or, when its
 *      own child failed, its own error; never before.
 *   2. The parent has no active child when it commits.
 *   3. Groups commit in the order they opened (LMDB's writer lock).
 *
 * Lock order: a collection's wlock (held by st_op across its child) ->
 * g->mu -> LMDB's writer lock is never taken under g->mu.
 */
#include <errno.h>

#include "internal.h"

#define ST_GROUP_MAX_OPS 64u
#define ST_GROUP_MAX_BYTES (16u << 20)
#define ST_GROUP_MAX_WAIT_MS 4

void st_group_init(st_group *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->turn_cv, NULL);
    pthread_cond_init(&g->done_cv, NULL);
    pthread_cond_init(&g->leader_cv, NULL);
}

void st_group_destroy(st_group *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->turn_cv);
    pthread_cond_destroy(&g->done_cv);
    pthread_cond_destroy(&g->leader_cv);
}

/* True when the open group takes no more members. g->mu held. */
static bool group_full(const st_group *g)
{
    struct timespec now;
    st_mono_now(&now);
    return g->nmembers >= ST_GROUP_MAX_OPS || g->bytes >= ST_GROUP_MAX_BYTES ||
           st_ts_diff(&now, &g->opened) * 1000.0 >= ST_GROUP_MAX_WAIT_MS;
}

/* Becomes the leader of a new group: begins its parent with g->mu
 * released (LMDB may make us wait for the previous group's commit).
 * Called with g->mu held and g->open false; returns with it held. */
static int group_open(st_store *st, st_group *g, st_group_member *m)
{
    g->open = true;
    g->closed = false;
    g->busy = true; /* the leader holds the baton from the start */
    g->nmembers = 0;
    g->bytes = 0;
    g->head = g->tail = NULL;
    pthread_mutex_unlock(&g->mu);
    MDB_txn *parent;
    int rc = st_txn_write(st, &parent);
    pthread_mutex_lock(&g->mu);
    if (rc) {
        g->open = false;
        g->busy = false;
        pthread_cond_broadcast(&g->turn_cv);
        return rc;
    }
    g->parent = parent;
    st_mono_now(&g->opened);
    m->leader = true;
    return 0;
}

void st_group_announce(st_store *st)
{
    atomic_fetch_add(&st->group.arriving, 1);
}

void st_group_withdraw(st_store *st)
{
    atomic_fetch_sub(&st->group.arriving, 1);
}

int st_group_join(st_store *st, st_group_member *m)
{
    st_group *g = &st->group;
    *m = (st_group_member){0};
    pthread_mutex_lock(&g->mu);
    atomic_fetch_sub(&g->arriving, 1); /* now counted as waiting or in */
    if (st->opt.read_only) {
        pthread_mutex_unlock(&g->mu);
        return -EROFS;
    }
    int rc = 0;
    for (;;) {
        if (!g->open) {
            rc = group_open(st, g, m);
            break;
        }
        if (!g->closed && !g->busy && !group_full(g)) {
            g->busy = true;
            break;
        }
        g->nwaiting++;
        pthread_cond_broadcast(&g->leader_cv);
        pthread_cond_wait(&g->turn_cv, &g->mu);
        g->nwaiting--;
    }
    MDB_txn *parent = g->parent;
    pthread_mutex_unlock(&g->mu);
    if (rc == 0)
        rc = st_mdb_err(mdb_txn_begin(st->env, parent, 0, &m->txn));
    if (rc == 0)
        return 0;
    m->txn = NULL;
    if (m->leader) {
        /* The leader keeps the group: it commits what others add. */
        st_group_finish(st, m, rc, 0);
        return st_group_wait(st, m);
    }
    if (parent) {
        pthread_mutex_lock(&g->mu);
        g->busy = false;
        pthread_cond_broadcast(&g->turn_cv);
        pthread_cond_broadcast(&g->leader_cv);
        pthread_mutex_unlock(&g->mu);
    }
    return rc;
}

void st_group_finish(st_store *st, st_group_member *m, int rc, size_t bytes)
{
    st_group *g = &st->group;
    if (m->txn) {
        if (rc == 0)
            rc = st_mdb_err(mdb_txn_commit(m->txn));
        else
            mdb_txn_abort(m->txn);
        m->txn = NULL;
    }
    pthread_mutex_lock(&g->mu);
    m->result = rc;
    if (rc == 0) {
        m->next = NULL;
        if (g->tail)
            g->tail->next = m;
        else
            g->head = m;
        g->tail = m;
        g->nmembers++;
        g->bytes += bytes;
    }
    g->busy = false;
    pthread_cond_broadcast(&g->turn_cv);
    pthread_cond_broadcast(&g->leader_cv);
    pthread_mutex_unlock(&g->mu);
}

/* The leader's part: admits queued and announced members until none is
 * left or a bound is hit, then commits the parent and reports to every
 * member. */
static int group_lead(st_store *st, st_group *g, st_group_member *self)
{
    pthread_mutex_lock(&g->mu);
    for (;;) {
        bool full = group_full(g);
        bool more = g->nwaiting > 0 || atomic_load(&g->arriving) > 0;
        if (!g->busy && (!more || full))
            break;
        if (full) {
            g->closed = true; /* let the member at work finish, admit no more */
            pthread_cond_wait(&g->leader_cv, &g->mu);
            continue;
        }
        /* Woken by a member that queued or finished; an announced one that
         * withdrew does not wake us, so wait at most a millisecond. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->leader_cv, &g->mu, &until);
    }
    MDB_txn *parent = g->parent;
    st_group_member *head = g->head;
    size_t n = g->nmembers;
    g->parent = NULL;
    g->head = g->tail = NULL;
    g->open = false;
    g->closed = false;
    pthread_cond_broadcast(&g->turn_cv); /* the next joiner leads the next group */
    pthread_mutex_unlock(&g->mu);

    int rc = 0;
    if (n == 0) {
        mdb_txn_abort(parent);
    } else {
        /* Timed so an operator can tell a slow disk (or a commit thread
         * that waits for a CPU between its writes and its fdatasync) from
         * operations waiting for their turn: commit_seconds_total. */
        struct timespec t0, t1;
        st_mono_now(&t0);
        rc = st_txn_commit(st, parent);
        st_mono_now(&t1);
        atomic_fetch_add(&st->group_commits, 1);
        atomic_fetch_add(&st->group_ops, n);
        atomic_fetch_add(&st->group_commit_ns, (uint64_t)(st_ts_diff(&t1, &t0) * 1e9));
    }
    pthread_mutex_lock(&g->mu);
    for (st_group_member *m = head; m; m = m->next) {
        if (m->result == 0)
            m->result = rc;
        m->done = true;
    }
    self->done = true;
    pthread_cond_broadcast(&g->done_cv);
    pthread_mutex_unlock(&g->mu);
    return self->result;
}

int st_group_wait(st_store *st, st_group_member *m)
{
    st_group *g = &st->group;
    if (m->leader)
        return group_lead(st, g, m);
    pthread_mutex_lock(&g->mu);
    /* A member whose own child failed is not in the group: done at once. */
    while (m->result == 0 && !m->done)
        pthread_cond_wait(&g->done_cv, &g->mu);
    int rc = m->result;
    pthread_mutex_unlock(&g->mu);
    return rc;
}
