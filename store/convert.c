/*
 * convert.c — converting a non-empty collection's index to the
 * quantization its committed config asks for (none <-> int8), in the
 * background, so that the .config write returns at once and searches go
 * on with the old index meanwhile.
 *
 * st_coll_config_set commits the new config first (the setting is durable
 * from then on), sets c->converting and kicks the converter. The converter
 * thread of the store takes each such collection in turn, under its writer
 * lock taken settled (its writers wait; searches do not):
 *   - builds a new index with the committed config from the SLOT records
 *     of one read txn (st_index_rebuild: the same vectors the old index
 *     holds, since no writer runs);
 *   - swaps it in under c->mu (the old one is retired, not freed: searches
 *     may hold it) and clears c->converting;
 *   - writes its snapshot at once, so the next open loads it.
 * A crash before that snapshot leaves the old snapshot, whose quantization
 * differs from the committed config: the next open sees it stale and
 * rebuilds with the committed config (coll_index.c invariant 1). So after
 * any crash the index honours the setting.
 *
 * Drift: st_convert_relearn_due, called by the background thread each
 * round, re-learns an int8 index's quantizer from the SLOT records when
 * the engine reports drift (docs/quantization.md: the data moved out of
 * the clip ranges, the encoding error grew, or the quantizer was learned
 * from fewer than 256 vectors, e.g. by a first single insert), under the
 * writer lock taken settled, as vf_hnsw_quant_relearn requires.
 *
 * Invariants
 *   1. c->converting is set only by st_coll_config_set and cleared only
 *      here, both under c->wlock, once the index's quantization equals the
 *      config's, or the collection was dropped, or it was emptied meanwhile
 *      (its index is then retired: the next insert creates one with the
 *      config).
 *   2. One converter thread per store at most; st_convert_stop (close)
 *      waits for the conversion in progress and leaves the rest to the
 *      next open (invariant of coll_index.c: a stale snapshot rebuilds).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* Whether h's quantization is what cfg asks for. */
static bool quant_matches(const vf_hnsw *h, const st_config *cfg)
{
    vf_hnsw_params p;
    vf_hnsw_params_get(h, &p);
    return p.quantization == (cfg->quantization == ST_QUANT_INT8 ? VF_QUANT_INT8 : VF_QUANT_NONE);
}

/* Converts c if it waits for it. 0, or an error (in the log and health;
 * c->converting stays set until a later kick or the next open). */
static int convert_one(st_store *st, st_coll *c)
{
    st_coll_lock_settled(c);
    pthread_mutex_lock(&c->mu);
    st_config cfg = c->cfg;
    vf_hnsw *old = c->index;
    bool due = atomic_load(&c->converting) && !c->dropped && !atomic_load(&c->rebuilding) && old &&
               !quant_matches(old, &cfg);
    uint64_t count = c->count;
    char name[ST_COLL_NAME_MAX + 1];
    memcpy(name, c->name, sizeof name);
    pthread_mutex_unlock(&c->mu);
    struct timespec t0, t1;
    st_mono_now(&t0);
    vf_hnsw *h = NULL;
    int rc = 0;
    if (due) {
        rc = st_coll_retire_reserve(c);
        /* Emptied meanwhile: no index until the next insert creates one
         * with the config, as for an empty collection's change. */
        if (rc == 0 && count > 0)
            rc = st_index_rebuild_locked(st, c, &cfg, &h);
    }
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        if (due) {
            c->retired[c->nretired++] = c->index;
            c->index = h;
            c->auto_ef = 0; /* retuned on the new index by the background thread */
        }
        if (h)
            vf_hnsw_set_ef_search(h, cfg.ef_search);
        atomic_store(&c->converting, false);
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&c->wlock);
    if (rc) {
        atomic_fetch_add(&st->errors, 1);
        st_health_set(st, "collection '%s': index conversion to quantization %s failed: %s", name,
                      st_quant_name(cfg.quantization), strerror(-rc));
        st_log(st, ST_LOG_ERROR, "collection '%s': index conversion to quantization %s failed: %s",
               name, st_quant_name(cfg.quantization), strerror(-rc));
        return rc;
    }
    if (!h)
        return 0;
    char prefix[ST_COLL_NAME_MAX + 64];
    snprintf(prefix, sizeof prefix, "collection '%s': index conversion", name);
    st_health_clear(st, prefix);
    st_coll_note_changes(c, count);  /* the snapshot on disk is of the old index */
    st_snap_write_background(st, c); /* a failure: the background thread retries */
    st_mono_now(&t1);
    st_log(st, ST_LOG_INFO,
           "collection '%s': index converted to quantization %s in %.3f s (%" PRIu64 " vectors)",
           name, st_quant_name(cfg.quantization), st_ts_diff(&t1, &t0), count);
    return 0;
}

int st_convert_relearn_due(st_store *st, st_coll *c)
{
    pthread_mutex_lock(&c->mu);
    vf_hnsw *h = c->index;
    uint32_t dim = c->cfg.dim;
    bool skip = !h || c->dropped || atomic_load(&c->rebuilding) || atomic_load(&c->converting);
    char name[ST_COLL_NAME_MAX + 1];
    memcpy(name, c->name, sizeof name);
    pthread_mutex_unlock(&c->mu);
    vf_quant_stats qs;
    if (!skip)
        vf_hnsw_quant_stats(h, &qs);
    if (skip || qs.kind != VF_QUANT_INT8 || !qs.drifted)
        return 0;
    /* The engine wants writers quiesced for the call; searches go on. */
    st_coll_lock_settled(c);
    pthread_mutex_lock(&c->mu);
    bool same = c->index == h && !c->dropped;
    pthread_mutex_unlock(&c->mu);
    MDB_txn *txn = NULL;
    int rc = same ? st_txn_read(st, &txn) : 0;
    if (same && rc == 0) {
        st_slot_source slots;
        vf_vec_source src = st_slot_source_begin(&slots, st, txn, c->id, dim);
        rc = vf_hnsw_quant_relearn(h, &src);
        if (rc == 0)
            rc = slots.err;
        st_slot_source_end(&slots);
        mdb_txn_abort(txn);
    }
    pthread_mutex_unlock(&c->wlock);
    if (rc) {
        st_log(st, ST_LOG_ERROR, "collection '%s': re-learning the int8 quantizer failed: %s", name,
               strerror(-rc));
        return rc;
    }
    if (!same)
        return 0;
    st_coll_note_changes(c, 1); /* the codes changed: the next snapshot saves them */
    st_log(st, ST_LOG_INFO,
           "collection '%s': int8 quantizer re-learned (learned from %" PRIu64
           " vectors; recent clipped share %.4f, error %.5f)",
           name, qs.trained_on, qs.recent_clip_share, qs.recent_error);
    return 0;
}

/* The thread: converts every collection marked converting, until a round
 * finds no new kick. */
static void *convert_main(void *arg)
{
    st_store *st = arg;
    for (;;) {
        pthread_mutex_lock(&st->convert_mu);
        bool go = st->convert_kicked && !st->convert_stop;
        st->convert_kicked = false;
        if (!go)
            st->convert_running = false;
        pthread_mutex_unlock(&st->convert_mu);
        if (!go)
            return NULL;
        size_t n;
        st_coll **list = st_colls_copy(st, &n);
        for (size_t i = 0; list && i < n; i++) {
            pthread_mutex_lock(&st->convert_mu);
            bool stop = st->convert_stop;
            pthread_mutex_unlock(&st->convert_mu);
            if (stop)
                break;
            if (atomic_load(&list[i]->converting))
                (void)convert_one(st, list[i]); /* a failure is in health */
        }
        free(list);
    }
}

int st_convert_kick(st_store *st)
{
    int rc = 0;
    pthread_mutex_lock(&st->convert_mu);
    st->convert_kicked = true;
    if (!st->convert_running && !st->convert_stop) {
        /* A thread that ran out of work ended: reap it before the next. */
        if (st->convert_joinable)
            pthread_join(st->converter, NULL);
        st->convert_joinable = pthread_create(&st->converter, NULL, convert_main, st) == 0;
        st->convert_running = st->convert_joinable;
        rc = st->convert_joinable ? 0 : -EAGAIN;
    }
    pthread_mutex_unlock(&st->convert_mu);
    return rc;
}

void st_convert_stop(st_store *st)
{
    pthread_mutex_lock(&st->convert_mu);
    st->convert_stop = true;
    bool join = st->convert_joinable;
    st->convert_joinable = false;
    pthread_mutex_unlock(&st->convert_mu);
    if (join)
        pthread_join(st->converter, NULL);
}
