/*
 * open.c — opening and closing a store: the DATADIR lock, the LMDB
 * environment and its databases, the format and key check, loading every
 * collection and its index, and starting the background thread.
 *
 * States of an st_store
 *   OPENING  st_store_open: env open, format checked, indexes loaded.
 *            Only the opening thread touches the object.
 *   OPEN     every API call allowed from any thread; the background thread
 *            runs (background.c).
 *   CLOSED   st_store_close stopped the thread, wrote final snapshots,
 *            closed LMDB and freed the object.
 *
 * Invariants
 *   1. One DATADIR is opened for writing by one process at a time (flock
 *      on DATADIR/vecfs.lock); read-only openers (vecfs check) take no lock.
 *   2. st_store_open succeeds only if the FORMAT record is of this version
 *      and the supplied key (or its absence) matches it (format.c).
 *   3. A half-open store is closed as read-only: no final snapshots.
 *
 * Lock order of the whole store (outermost first): st->snap_mu -> c->wlock
 * (by ascending collection id when two are needed) -> st->group.mu
 * (group.c; never held across LMDB's writer lock or I/O) -> LMDB's writer
 * lock (a write txn: a group's, begun by its leader, or a collection op's)
 * -> st->colls_lock -> c->mu -> st->health_mu; c->names.lock is
 * innermost (a fill step takes it under c->wlock, an apply turn alone). colls_lock is only ever
 * held briefly (lookups; table changes after a commit), never across a wait for LMDB's writer lock,
 * so lookups by readers never wait behind a writer. No lock is taken while holding c->mu except
 * health_mu. Waits without a lock held: a member's wait for its group's commit, and its apply turn
 * (apply_order.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "internal.h"

#define DEFAULT_SYNC_MS 1000u
#define DEFAULT_SNAP_CHANGES 100000u
#define DEFAULT_SNAP_SECONDS 300u

void st_options_default(st_options *o)
{
    memset(o, 0, sizeof(*o));
    o->sync_interval_ms = DEFAULT_SYNC_MS;
    o->sync_mode = ST_SYNC_SAFE;
    o->snapshot_every_changes = DEFAULT_SNAP_CHANGES;
    o->snapshot_every_seconds = DEFAULT_SNAP_SECONDS;
    o->log_level = ST_LOG_INFO;
}

/* Opens (or, with create, creates) every named database of the store. */
static int open_dbs(st_store *st, MDB_txn *txn, bool create)
{
    for (int i = 1; i < ST_DB_COUNT; i++) {
        unsigned flags = create ? MDB_CREATE : 0;
        if (i == ST_DB_MIDX || i == ST_DB_VIDX)
            flags |= MDB_DUPSORT | MDB_DUPFIXED;
        int rc = mdb_dbi_open(txn, st_db_names[i], flags, &st->db[i]);
        if (rc == MDB_NOTFOUND && i == ST_DB_VIDX)
            continue; /* a read-only store from before VIDX: st_vidx_open */
        if (rc)
            return st_mdb_err(rc);
    }
    return 0;
}

/* Creates and opens the LMDB environment of st->dir (space.c sizes it). */
static int env_open(st_store *st)
{
    int rc = st_mdb_err(mdb_env_create(&st->env));
    if (rc)
        return rc;
    mdb_env_set_maxdbs(st->env, 16);
    mdb_env_set_maxreaders(st->env, 1022);
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (st->opt.read_only)
        flags |= MDB_RDONLY;
    else if (st->opt.sync_mode == ST_SYNC_SAFE)
        flags |= MDB_NOMETASYNC;
    else if (st->opt.sync_mode == ST_SYNC_FAST)
        flags |= MDB_NOSYNC;
    /* With a bound, LMDB gets a reserve above it (st_space_check keeps
     * inserts below the bound), so deletes and renames still find pages
     * when the store is full. */
    uint64_t map = st_space_map_size(st->opt.max_size);
    for (;;) {
        mdb_env_set_mapsize(st->env, (size_t)map);
        rc = mdb_env_open(st->env, st->dir, flags, 0600);
        if (rc == ENOMEM && !st->opt.max_size && map > ((uint64_t)1 << 32)) {
            /* Not enough address space for the unbounded map: ask for less. */
            mdb_env_close(st->env);
            st->env = NULL;
            map /= 2;
            if ((rc = st_mdb_err(mdb_env_create(&st->env))))
                return rc;
            mdb_env_set_maxdbs(st->env, 16);
            mdb_env_set_maxreaders(st->env, 1022);
            continue;
        }
        break;
    }
    if (rc) {
        mdb_env_close(st->env);
        st->env = NULL;
        return st_mdb_err(rc);
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    st->map_size = info.me_mapsize;
    return 0;
}

/* Loads every collection record and its index. */
static int colls_load(st_store *st)
{
    MDB_txn *txn;
    int rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    st_coll_rec *recs = NULL;
    size_t n = 0, cap = 0;
    MDB_cursor *cur = NULL;
    vc_buf scratch = VC_BUF_INIT;
    rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_COLLS], &cur));
    MDB_val k, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && mrc == 0) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            st_coll_rec *r = vc_realloc(recs, cap * sizeof(*r));
            if (!r) {
                rc = -ENOMEM;
                break;
            }
            recs = r;
        }
        const void *body;
        size_t blen;
        rc = st_env_open_buf(&st->crypto, ST_DB_COLLS, k.mv_data, k.mv_size, v.mv_data, v.mv_size,
                             &scratch, &body, &blen);
        if (rc == -ENOMEM)
            break;
        if (rc == 0)
            rc = st_rec_coll_dec(body, blen, &recs[n]);
        if (rc) {
            st_errbuf_set(&st->opt, "%s: a collection record is damaged", st->dir);
            break;
        }
        n++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != MDB_NOTFOUND && mrc != 0)
        rc = st_mdb_err(mrc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    vc_buf_release(&scratch);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        st_coll *c = st_coll_new(&recs[i]);
        if (!c) {
            rc = -ENOMEM;
            break;
        }
        rc = st_colls_add(st, c);
        if (rc) {
            st_coll_free(c);
            break;
        }
        bool rebuilt = false;
        if (st->no_index)
            continue;
        rc = st_coll_index_load(st, c, &recs[i], &rebuilt);
        if (rc)
            st_errbuf_set(&st->opt, "%s: cannot load collection '%s': %s", st->dir, c->name,
                          strerror(-rc));
    }
    free(recs);
    return rc;
}

/* Opens datadir; no_index: without loading indexes or the thread (check). */
static int store_open(const char *datadir, const st_options *opt, bool no_index, st_store **out);

int st_store_open(const char *datadir, const st_options *opt, st_store **out)
{
    return store_open(datadir, opt, false, out);
}

int st_store_open_noindex(const char *datadir, const st_options *opt, st_store **out)
{
    return store_open(datadir, opt, true, out);
}

static int store_open(const char *datadir, const st_options *opt, bool no_index, st_store **out)
{
    st_options defaults;
    if (!opt) {
        st_options_default(&defaults);
        opt = &defaults;
    }
    if (!out || !datadir)
        return -EINVAL;
    *out = NULL;
    if (opt->key && opt->key_len == 0) {
        st_errbuf_set(opt, "empty key");
        return -EINVAL;
    }
    if (opt->key && !opt->key_is_passphrase && opt->key_len != ST_KEY_LEN) {
        st_errbuf_set(opt, "a raw key must be %u bytes", ST_KEY_LEN);
        return -EINVAL;
    }
    struct stat sb;
    if (stat(datadir, &sb) != 0) {
        int e = errno;
        st_errbuf_set(opt, "%s: %s", datadir, strerror(e));
        return -e;
    }
    if (!S_ISDIR(sb.st_mode)) {
        st_errbuf_set(opt, "%s: not a directory", datadir);
        return -ENOTDIR;
    }
    struct timespec t0, t1;
    st_mono_now(&t0);
    int rc = -ENOMEM;
    st_store *st = vc_calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->lock_fd = -1;
    st->opt = *opt;
    st->no_index = no_index;
    if (st->opt.sync_interval_ms == 0)
        st->opt.sync_interval_ms = DEFAULT_SYNC_MS;
    if (st->opt.snapshot_every_changes == 0)
        st->opt.snapshot_every_changes = DEFAULT_SNAP_CHANGES;
    if (st->opt.snapshot_every_seconds == 0)
        st->opt.snapshot_every_seconds = DEFAULT_SNAP_SECONDS;
    pthread_rwlock_init(&st->colls_lock, NULL);
    pthread_mutex_init(&st->bg_mu, NULL);
    pthread_cond_init(&st->bg_cv, NULL);
    pthread_mutex_init(&st->snap_mu, NULL);
    pthread_mutex_init(&st->convert_mu, NULL);
    pthread_mutex_init(&st->health_mu, NULL);
    st_group_init(&st->group);
    st->dir = st_memdup(datadir, strlen(datadir) + 1);
    st->opt.key = NULL;
    if (opt->key) {
        void *k = vc_malloc(opt->key_len);
        if (!k)
            goto out;
        memcpy(k, opt->key, opt->key_len);
        st->opt.key = k;
    }
    if (!st->dir)
        goto out;

    if (!st->opt.read_only) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/vecfs.lock", st->dir);
        st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (st->lock_fd < 0) {
            rc = -errno;
            st_errbuf_set(opt, "%s: %s", path, strerror(-rc));
            goto out;
        }
        if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
            st_errbuf_set(opt, "%s is in use by another vecfs process", st->dir);
            goto out;
        }
    }
    rc = env_open(st);
    if (rc) {
        if (rc == -ENOENT && st->opt.read_only)
            st_errbuf_set(opt, "%s holds no vecfs store", st->dir);
        else
            st_errbuf_set(opt, "%s: cannot open the LMDB environment: %s", st->dir, strerror(-rc));
        goto out;
    }
    st_readers_clear(st);
    MDB_txn *txn = NULL;
    rc = st->opt.read_only ? st_txn_read(st, &txn)
                           : st_mdb_err(mdb_txn_begin(st->env, NULL, 0, &txn));
    if (rc)
        goto out;
    rc = open_dbs(st, txn, !st->opt.read_only);
    if (rc == -ENOENT) {
        mdb_txn_abort(txn);
        st_errbuf_set(opt, "%s holds no vecfs store", st->dir);
        goto out;
    }
    MDB_val fk = {6, (void *)"format"}, fv;
    int mrc = rc ? 0 : mdb_get(txn, st->db[ST_DB_META], &fk, &fv);
    if (rc == 0 && mrc == MDB_NOTFOUND) {
        if (st->opt.read_only) {
            rc = -ENOENT;
            st_errbuf_set(opt, "%s holds no vecfs store", st->dir);
        } else {
            rc = st_format_init(st, txn);
        }
    } else if (rc == 0 && mrc) {
        rc = st_mdb_err(mrc);
    } else if (rc == 0) {
        rc = st_format_check(st, txn, &fv);
    }
    if (rc == 0)
        rc = st_vidx_open(st, txn);
    if (rc) {
        mdb_txn_abort(txn);
        goto out;
    }
    rc = st_mdb_err(mdb_txn_commit(txn));
    if (rc)
        goto out;
    rc = colls_load(st);
    if (rc)
        goto out;
    /* Read-only stores run it too, for the name tables alone. */
    if (!st->no_index) {
        rc = st_bg_start(st);
        if (rc == 0)
            rc = st_rebuild_start(st);
        if (rc)
            goto out;
    }
    st_mono_now(&t1);
    st->open_seconds = st_ts_diff(&t1, &t0);
    st_log(st, ST_LOG_INFO, "opened %s in %.3f s (%zu collections%s)", st->dir, st->open_seconds,
           st->ncolls, st->crypto.on ? ", encrypted" : "");
    *out = st;
    return 0;
out:
    st->opt.read_only = true; /* no final snapshots of a half-open store */
    st_store_close(st);
    return rc;
}

int st_store_close(st_store *st)
{
    if (!st)
        return 0;
    int first = 0;
    st_log_stop(st);
    st_convert_stop(st);
    st_rebuild_stop(st);
    st_bg_stop(st);
    if (st->env && !st->opt.read_only) {
        pthread_mutex_lock(&st->snap_mu);
        for (size_t i = 0; i < st->ncolls; i++) {
            int rc = st_snap_write(st, st->colls[i], false);
            if (rc && !first)
                first = rc;
        }
        pthread_mutex_unlock(&st->snap_mu);
        int rc = st_mdb_err(mdb_env_sync(st->env, 1));
        if (rc && !first)
            first = rc;
    }
    /* Only a cache synced whole is marked closed (a torn one is thrown
     * away after a reboot, rados_cache_id.c). */
    if (st->cache_id && first == 0 && st_cache_id_write(st->dir, st->cache_id, true) != 0)
        st_log(st, ST_LOG_WARN, "rados: cannot mark the cache %s closed cleanly", st->dir);
    free(st->cache_id);
    for (size_t i = 0; i < st->ncolls; i++)
        st_coll_free(st->colls[i]);
    for (size_t i = 0; i < st->ngraveyard; i++)
        st_coll_free(st->graveyard[i]);
    free(st->colls);
    free(st->graveyard);
    if (st->env)
        mdb_env_close(st->env);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    if (st->opt.key) {
        OPENSSL_cleanse((void *)st->opt.key, st->opt.key_len);
        free((void *)st->opt.key);
    }
    st_crypto_wipe(&st->crypto);
    pthread_rwlock_destroy(&st->colls_lock);
    pthread_mutex_destroy(&st->bg_mu);
    pthread_cond_destroy(&st->bg_cv);
    pthread_mutex_destroy(&st->snap_mu);
    pthread_mutex_destroy(&st->convert_mu);
    pthread_mutex_destroy(&st->health_mu);
    st_group_destroy(&st->group);
    free(st->dir);
    free(st);
    return first;
}
