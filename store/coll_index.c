/*
 * coll_index.c — a collection's in-memory HNSW index: created at its
 * first vector, loaded at open (its snapshot plus the op log, or a rebuild
 * from the SLOT records), rebuilt for a config change, and its ef_search
 * auto-tuned in the background.
 *
 * Invariants
 *   1. A snapshot is used at open only if its header CRC, engine CRC (or GCM
 *      tag) and lengths check, its collection id and uuid match, gen >=
 *      snap_gen, its txn id <= LMDB's, its parameters (dim, metric, m,
 *      ef_construction, quantization) match the config, and after replay
 *      its count equals the COLL record's. Otherwise the index is rebuilt
 *      from the SLOT records ("never trusted"). Parameters differ by
 *      design after a config change that the next snapshot has not caught
 *      up with yet (st_coll_config_set on an emptied collection, one that
 *      rebuilt the index, or a quantization change whose background
 *      conversion had not written its snapshot): such a snapshot is
 *      stale, not damaged, and the rebuild applies the committed config.
 *   2. c->index changes only under c->mu; once set it is freed only at
 *      close (a replaced index goes to c->retired), so a search that read
 *      the pointer under c->mu may keep using it.
 *   3. c->cur_gen after a load is above every generation in the op log, so
 *      new changes are never trimmed by an older snapshot.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

/* Calibration queries a tuning measures at least: users' queries, filled
 * up with perturbed held-out vectors while fewer were sampled. */
#define TUNE_QUERIES 200u
/* The largest ef tuning tries. */
#define TUNE_MAX_EF 1024u
/* A sample renewed by this many queries (or by as many as the last tuning
 * used, when more) is worth a new tuning. */
#define TUNE_FRESH_MIN 32u
/* A tuning waits at least this many times the last one's duration after
 * it (but see tune_due): tuning takes at most 1/TUNE_DUTY of one core. */
#define TUNE_DUTY 10.0

/* The ef ladder by target recall, used until a tuning has run. */
static uint32_t ef_ladder(double recall)
{
    return recall >= 0.99   ? 256
           : recall >= 0.97 ? 128
           : recall >= 0.95 ? 64
           : recall >= 0.9  ? 32
                            : 16;
}

uint32_t st_coll_auto_ef(const st_config *cfg, uint32_t tuned, size_t k)
{
    /* The tuned ef holds for k 10; scaled for other k. */
    size_t ef = tuned == 0 ? ef_ladder(cfg->target_recall)
                : k <= 10  ? tuned
                           : (size_t)tuned * k / 10;
    if (ef < k)
        ef = k;
    return ef > UINT32_MAX ? UINT32_MAX : (uint32_t)ef;
}

/* Whether c's ef is due for a tuning (see st_coll_autotune). Under c->mu. */
static bool tune_due(st_coll *c, bool force)
{
    if (!c->cfg.ef_auto || !c->index || c->dropped || atomic_load(&c->rebuilding) ||
        c->count <= ST_EXACT_MAX)
        return false;
    if (force || c->auto_ef == 0)
        return true;
    /* The first users' queries after a tuning without any skip the wait:
     * the switch to real queries is the retune that matters most, and it
     * happens once per tuning state (open, config change). */
    bool first_users = c->tuning.user_queries == 0 && st_qsample_fresh(&c->qsample) > 0;
    struct timespec now;
    st_mono_now(&now);
    if (!first_users && st_ts_diff(&now, &c->tune_end) < TUNE_DUTY * c->tuning.seconds)
        return false;
    uint64_t grown = c->count / 10 > 1000 ? c->count / 10 : 1000;
    uint64_t renew =
        c->tuning.user_queries > TUNE_FRESH_MIN ? c->tuning.user_queries : TUNE_FRESH_MIN;
    return c->tune_changes > grown || st_qsample_fresh(&c->qsample) >= renew;
}

int st_coll_autotune(st_store *st, st_coll *c, bool force)
{
    pthread_mutex_lock(&c->mu);
    vf_hnsw *h = c->index;
    bool due = tune_due(c, force);
    vf_tune_spec spec = {.k = 10,
                         .target_recall = c->cfg.target_recall,
                         .max_ef = TUNE_MAX_EF,
                         .seed = c->uuid ^ c->count};
    uint32_t dim = c->cfg.dim;
    if (due)
        c->tune_changes = 0;
    pthread_mutex_unlock(&c->mu);
    if (!due)
        return 0;
    float *queries = NULL;
    int rc = st_qsample_take(&c->qsample, dim, &queries, &spec.nqueries);
    if (rc)
        return rc;
    spec.queries = queries;
    spec.held_out = spec.nqueries < TUNE_QUERIES ? TUNE_QUERIES - spec.nqueries : 0;
    struct timespec t0, t1;
    st_mono_now(&t0);
    vf_tune_result r;
    rc = vf_hnsw_tune(h, &spec, &r);
    st_qsample_free_copy(queries, spec.nqueries, dim);
    if (rc)
        return rc;
    st_mono_now(&t1);
    pthread_mutex_lock(&c->mu);
    /* A config change meanwhile (another target, a new index) asked for a
     * new tuning: this one answers the old question. */
    if (c->index == h && c->cfg.ef_auto && c->cfg.target_recall == spec.target_recall) {
        c->auto_ef = r.ef;
        c->tuning = (st_tuning){.ef_in_use = r.ef,
                                .tuned = true,
                                .recall = r.recall,
                                .recall_low = r.recall_low,
                                .queries = r.queries,
                                .user_queries = r.user_queries,
                                .seconds = st_ts_diff(&t1, &t0)};
        st_now(&c->tuning.tuned_at);
        c->tune_end = t1;
    }
    pthread_mutex_unlock(&c->mu);
    st_log(st, ST_LOG_DEBUG,
           "collection %" PRIu32 ": ef_search auto = %" PRIu32
           " (recall@10 %.4f, lower bound %.4f, %zu queries of which %zu sent by users, %.2f s)",
           c->id, r.ef, r.recall, r.recall_low, r.queries, r.user_queries, st_ts_diff(&t1, &t0));
    return 0;
}

int st_coll_tuning(st_store *st, const char *name, st_tuning *out)
{
    memset(out, 0, sizeof(*out));
    st_coll *c;
    int rc = st_coll_lookup(st, name, &c);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    if (c->cfg.ef_auto && c->auto_ef)
        *out = c->tuning;
    else if (c->count > ST_EXACT_MAX)
        out->ef_in_use = c->cfg.ef_auto ? st_coll_auto_ef(&c->cfg, 0, 10) : c->cfg.ef_search;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int st_coll_index_new(const st_coll *c, const st_config *cfg, uint32_t dim, vf_hnsw **out)
{
    vf_hnsw_params p;
    st_config_hnsw(cfg, dim, &p);
    p.seed = c->uuid;
    return vf_hnsw_create(&p, out);
}

int st_coll_retire_reserve(st_coll *c)
{
    pthread_mutex_lock(&c->mu);
    vf_hnsw **rt = vc_realloc(c->retired, (c->nretired + 1) * sizeof(*rt));
    if (rt)
        c->retired = rt;
    pthread_mutex_unlock(&c->mu);
    return rt ? 0 : -ENOMEM;
}

bool st_snap_params_match(const vf_hnsw *h, const st_config *cfg)
{
    vf_hnsw_params p;
    vf_hnsw_params_get(h, &p);
    vf_quant_kind q = cfg->quantization == ST_QUANT_INT8 ? VF_QUANT_INT8 : VF_QUANT_NONE;
    return p.dim == cfg->dim && p.metric == cfg->metric && p.m == cfg->m &&
           p.ef_construction == cfg->ef_construction && p.quantization == q;
}

/* Every vector of a collection, gathered for one batch insert. */
typedef struct gathered {
    uint32_t *ids;
    float *vecs;
    size_t n, cap;
    uint32_t dim, maxid;
} gathered;

/* st_slot_fn: appends a record to the gathered rows. */
static int gather_row(void *ctx, uint32_t id, const float *vec)
{
    gathered *g = ctx;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 1024;
        uint32_t *ni = vc_realloc(g->ids, cap * sizeof(*ni));
        if (!ni)
            return -ENOMEM;
        g->ids = ni;
        float *nv = vc_realloc(g->vecs, cap * (size_t)g->dim * sizeof(float));
        if (!nv)
            return -ENOMEM;
        g->vecs = nv;
        g->cap = cap;
    }
    g->ids[g->n] = id;
    if (id > g->maxid)
        g->maxid = id;
    memcpy(g->vecs + g->n * (size_t)g->dim, vec, (size_t)g->dim * sizeof(float));
    g->n++;
    return 0;
}

int st_index_rebuild(st_store *st, MDB_txn *txn, st_coll *c, const st_config *cfg, vf_hnsw **out)
{
    *out = NULL;
    uint32_t dim = cfg->dim;
    gathered g = {.dim = dim};
    int rc = st_slot_walk(st, txn, c->id, dim, gather_row, &g);
    uint32_t *ids = g.ids, maxid = g.maxid;
    float *vecs = g.vecs;
    size_t n = g.n;
    vf_hnsw *h = NULL;
    if (rc == 0 && dim) {
        vf_hnsw_params p;
        st_config_hnsw(cfg, dim, &p);
        p.seed = c->uuid;
        rc = vf_hnsw_create(&p, &h);
        if (rc == 0 && n)
            rc = vf_hnsw_reserve(h, (size_t)maxid + 1);
        if (rc == 0 && n)
            rc = vf_hnsw_insert_batch(h, ids, 0, vecs, n, st->opt.threads);
    }
    free(ids);
    free(vecs);
    if (rc) {
        vf_hnsw_free(h);
        return rc;
    }
    atomic_fetch_add(&st->rebuilds, 1);
    *out = h;
    return 0;
}

int st_index_rebuild_locked(st_store *st, st_coll *c, const st_config *cfg, vf_hnsw **out)
{
    MDB_txn *txn;
    int rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    rc = st_index_rebuild(st, txn, c, cfg, out);
    mdb_txn_abort(txn);
    return rc;
}

/* Vectors a snapshot load could not take from their slot records
 * (vf_hnsw_missing) and the replay did not rewrite: each is inserted again
 * from its slot when that reads now, else (a damaged slot) left out of the
 * index, counted in *dropped. 0 or -ENOMEM. */
static int missing_settle(st_store *st, MDB_txn *txn, st_coll *c, const st_coll_rec *rec,
                          vf_hnsw *h, size_t *dropped)
{
    *dropped = 0;
    size_t n = vf_hnsw_missing(h);
    if (n == 0)
        return 0;
    uint32_t *ids = vc_malloc(n * sizeof(uint32_t));
    float *buf = vc_malloc((size_t)rec->cfg.dim * sizeof(float));
    int rc = ids && buf ? 0 : -ENOMEM;
    st_slot_source slots;
    vf_vec_source src = st_slot_source_begin(&slots, st, txn, c->id, rec->cfg.dim);
    n = rc ? 0 : vf_hnsw_missing_list(h, ids, n);
    for (size_t i = 0; i < n && !rc; i++) {
        const float *x = src.get(src.ctx, ids[i], buf);
        if (x) {
            rc = vf_hnsw_insert(h, ids[i], x);
        } else {
            rc = vf_hnsw_remove(h, ids[i]);
            (*dropped)++;
        }
    }
    if (!rc)
        rc = slots.err;
    st_slot_source_end(&slots);
    if (*dropped)
        st_log(st, ST_LOG_WARN,
               "collection '%s': %zu vectors of the snapshot have no readable slot record, left "
               "out of the index (see vecfs check)",
               rec->name, *dropped);
    free(ids);
    free(buf);
    return rc;
}

int st_coll_index_load(st_store *st, st_coll *c, const st_coll_rec *rec, bool *rebuilt)
{
    assert(c && rec && rebuilt && !c->index); /* at open, once */
    *rebuilt = false;
    MDB_txn *txn;
    int rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    uint64_t cur_txnid = (uint64_t)mdb_txn_id(txn);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vf_hnsw *h = NULL;
    uint64_t gen = 0, txnid = 0, max_gen = 0;
    size_t n_dirty = 0;
    const char *why = NULL;
    st_slot_source slots;
    st_slot_source_begin(&slots, st, txn, c->id, rec->cfg.dim);
    int src = st_snap_read(st, rec, &slots, &h, &gen, &txnid);
    st_slot_source_end(&slots);
    if (src == 0 && slots.err) {
        vf_hnsw_free(h);
        h = NULL;
        src = slots.err;
    }
    if (src == -ENOENT) {
        why = rec->count ? "no snapshot" : NULL;
    } else if (src == -EILSEQ) {
        why = "snapshot damaged";
    } else if (src == -ESTALE) {
        why = "snapshot belongs to another collection";
    } else if (src) {
        why = "snapshot unreadable";
    } else if (gen < rec->snap_gen || txnid > cur_txnid) {
        why = "snapshot stale";
    } else {
        if (!st_snap_params_match(h, &rec->cfg))
            why = "snapshot parameters differ from the config";
    }
    if (h && why) {
        vf_hnsw_free(h);
        h = NULL;
    }
    if (h) {
        /* A long op log replays one insert at a time; past a quarter of
         * the collection a parallel rebuild is faster. */
        size_t pending = 0;
        uint64_t mg0 = 0;
        if (st_oplog_replay(st, txn, c->id, NULL, &pending, &mg0) == 0 && pending > 10000 &&
            pending > rec->count / 4)
            why = "op log longer than a quarter of the collection";
    }
    if (h && why) {
        vf_hnsw_free(h);
        h = NULL;
    }
    if (h) {
        rc = st_oplog_replay(st, txn, c->id, h, &n_dirty, &max_gen);
        size_t dropped = 0;
        if (rc == 0)
            rc = missing_settle(st, txn, c, rec, h, &dropped);
        if (rc == 0 && vf_hnsw_count(h) + dropped != rec->count)
            why = "snapshot does not match the records";
        if (rc || why) {
            vf_hnsw_free(h);
            h = NULL;
            if (!why)
                why = "replay failed";
            rc = 0;
        }
    }
    if (!h && why && rec->cfg.dim && rec->count >= st_rebuild_background_min(st)) {
        /* Large: an empty index now, filled by rebuild.c while queries
         * scan the records (its header). */
        st_log(st, ST_LOG_WARN,
               "collection '%s': %s, rebuilding its index from %" PRIu64
               " records in the background",
               rec->name, why, rec->count);
        rc = st_coll_index_new(c, &rec->cfg, rec->cfg.dim, &h);
        if (rc == 0) {
            st_rebuild_mark(st, c, rec->name, rec->count);
            *rebuilt = true;
            size_t nd;
            uint64_t mg;
            if (st_oplog_replay(st, txn, c->id, NULL, &nd, &mg) == 0)
                max_gen = mg;
        }
    } else if (!h && rec->cfg.dim && (why || rec->count)) {
        if (why)
            st_log(st, ST_LOG_WARN,
                   "collection '%s': %s, rebuilding its index from %" PRIu64 " records", rec->name,
                   why, rec->count);
        rc = st_index_rebuild(st, txn, c, &rec->cfg, &h);
        if (rc == 0) {
            *rebuilt = true;
            size_t nd;
            uint64_t mg;
            /* Only to learn the largest dirty generation (h NULL: no apply). */
            if (st_oplog_replay(st, txn, c->id, NULL, &nd, &mg) == 0)
                max_gen = mg;
        }
    }
    mdb_txn_abort(txn);
    if (rc)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    c->index = h;
    c->cur_gen = (max_gen > rec->snap_gen ? max_gen : rec->snap_gen) + 1;
    if (*rebuilt || n_dirty) {
        c->changes = n_dirty ? n_dirty : 1;
        clock_gettime(CLOCK_MONOTONIC, &c->first_change);
    }
    if (h)
        vf_hnsw_set_ef_search(h, rec->cfg.ef_search);
    if (!atomic_load(&c->rebuilding))
        st_log(st, ST_LOG_INFO, "collection '%s': %s %zu vectors in %.3f s (%zu replayed)",
               rec->name, *rebuilt ? "rebuilt" : "loaded snapshot of",
               h ? vf_hnsw_count(h) : (size_t)0,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, n_dirty);
    return 0;
}
