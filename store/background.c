/*
 * background.c — the background thread of an open store: it fills the
 * collections' name tables (name_cache.c) first, then syncs LMDB every
 * sync_interval_ms, auto-tunes ef_search, re-learns drifted int8
 * quantizers (convert.c) and writes due snapshots (a
 * read-only store only fills name tables), and once a minute frees the
 * reader slots of dead processes (readers.c). st_store_sync is the same sync
 * on demand.
 *
 * States of the thread
 *   NONE     before st_bg_start, or a store opened without indexes.
 *   RUNNING  st_bg_start created it; it sleeps on bg_cv between rounds.
 *   STOPPED  st_bg_stop set bg_stop, woke and joined it.
 *
 * Invariants
 *   1. A name-table fill runs a chunk at a time for at most NAMES_SLICE_MS
 *      per round, so syncs and snapshots keep their schedule.
 *   2. A failed sync leaves st->unsynced set (the next round retries) and a
 *      health line, cleared by the next successful sync.
 *
 * Lock: st->bg_mu protects bg_stop; it is never held while the thread
 * works. Snapshots take st->snap_mu (snapshot.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* mdb_env_sync of everything committed so far: always with force, else
 * only if something is unsynced. A failure leaves it unsynced and reports
 * it in health (invariant 2). */
static int env_sync(st_store *st, bool force)
{
    if (!atomic_exchange(&st->unsynced, false) && !force)
        return 0;
    int rc = st_mdb_err(mdb_env_sync(st->env, 1));
    if (rc) {
        atomic_store(&st->unsynced, true);
        st_health_set(st, "sync failed: %s", strerror(-rc));
        return rc;
    }
    st_health_clear(st, "sync failed");
    return 0;
}

int st_store_sync(st_store *st)
{
    if (!st)
        return -EINVAL;
    int rc = st_log_barrier(st);
    if (rc || st->opt.read_only)
        return rc;
    return env_sync(st, true);
}

/* Auto-tunes each collection and writes the snapshots that are due. */
static void bg_snapshots(st_store *st)
{
    size_t n;
    st_coll **list = st_colls_copy(st, &n);
    if (!list)
        return;
    struct timespec now;
    st_mono_now(&now);
    for (size_t i = 0; i < n; i++) {
        st_coll *c = list[i];
        if (st_coll_autotune(st, c, false) != 0 || st_convert_relearn_due(st, c) != 0)
            atomic_fetch_add(&st->errors, 1);
        pthread_mutex_lock(&c->mu);
        bool due = !c->dropped && c->changes > 0 &&
                   (c->changes >= st->opt.snapshot_every_changes ||
                    (st->opt.snapshot_every_seconds != UINT32_MAX &&
                     st_ts_diff(&now, &c->first_change) >= st->opt.snapshot_every_seconds));
        pthread_mutex_unlock(&c->mu);
        if (!due)
            continue;
        st_snap_write_background(st, c);
    }
    free(list);
}

/* Fills the name tables that are not filled yet, a chunk at a time (each
 * chunk holds only that collection's writers back), for at most
 * NAMES_SLICE_MS so syncs and snapshots keep their schedule. Returns true
 * while some table is still filling. */
#define NAMES_SLICE_MS 100
static bool bg_names(st_store *st)
{
    size_t n;
    st_coll **list = st_colls_copy(st, &n);
    if (!list)
        return true;
    struct timespec t0, now;
    st_mono_now(&t0);
    bool pending = false;
    for (size_t i = 0; i < n; i++) {
        bool done = false;
        while (!done) {
            st_mono_now(&now);
            pthread_mutex_lock(&st->bg_mu);
            bool stop = st->bg_stop;
            pthread_mutex_unlock(&st->bg_mu);
            if (stop || st_ts_diff(&now, &t0) * 1000.0 >= NAMES_SLICE_MS)
                break;
            int rc = st_names_fill_step(st, list[i], &done);
            if (rc) {
                atomic_fetch_add(&st->errors, 1);
                st_log(st, ST_LOG_ERROR, "names of collection %" PRIu32 ": %s", list[i]->id,
                       strerror(-rc));
                break;
            }
        }
        pending |= !done;
    }
    free(list);
    return pending;
}

/* How often dead processes' reader slots are looked for (readers.c). */
#define READERS_CHECK_SECONDS 60.0

/* The thread: a round every min(sync_interval_ms, 200 ms) until stopped. */
static void *bg_main(void *arg)
{
    st_store *st = arg;
    struct timespec last_sync, last_readers;
    st_mono_now(&last_sync);
    last_readers = last_sync;
    bool names_pending = true;
    pthread_mutex_lock(&st->bg_mu);
    while (!st->bg_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        unsigned ms = st->opt.sync_interval_ms < 200 ? st->opt.sync_interval_ms : 200;
        until.tv_nsec += (long)ms * 1000000L;
        while (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        /* While a name table is filling, the next slice follows at once. */
        if (!names_pending)
            pthread_cond_timedwait(&st->bg_cv, &st->bg_mu, &until);
        if (st->bg_stop)
            break;
        pthread_mutex_unlock(&st->bg_mu);
        names_pending = bg_names(st);
        struct timespec now;
        st_mono_now(&now);
        if (!st->opt.read_only &&
            st_ts_diff(&now, &last_sync) * 1000.0 >= st->opt.sync_interval_ms) {
            last_sync = now;
            if (env_sync(st, false) != 0)
                atomic_fetch_add(&st->errors, 1);
            bg_snapshots(st);
        }
        if (st_ts_diff(&now, &last_readers) >= READERS_CHECK_SECONDS) {
            last_readers = now;
            st_readers_clear(st);
        }
        pthread_mutex_lock(&st->bg_mu);
    }
    pthread_mutex_unlock(&st->bg_mu);
    return NULL;
}

int st_bg_start(st_store *st)
{
    if (pthread_create(&st->bg, NULL, bg_main, st) != 0)
        return -EAGAIN;
    st->bg_running = true;
    return 0;
}

void st_bg_stop(st_store *st)
{
    if (!st->bg_running)
        return;
    pthread_mutex_lock(&st->bg_mu);
    st->bg_stop = true;
    pthread_cond_signal(&st->bg_cv);
    pthread_mutex_unlock(&st->bg_mu);
    pthread_join(st->bg, NULL);
    st->bg_running = false;
}
