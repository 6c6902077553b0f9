/*
 * coll_config.c — a collection's .config: reading it, replacing it (with
 * an index rebuild when the graph's parameters change) and its mtime.
 *
 * Invariants
 *   1. c->cfg equals the committed COLL record's config whenever c->wlock
 *      is free (writers change both under it).
 *   2. dim of a non-empty collection never changes; a change of metric, m
 *      or ef_construction of a non-empty one commits only with an index
 *      rebuilt for it, which replaces the old one at once.
 *   3. A replaced index is kept (c->retired) until close: searches may
 *      hold it. Room for it is reserved before the commit, so nothing can
 *      fail after it.
 *   4. A quantization change alone on a non-empty collection commits at
 *      once and converts the index in the background (convert.c);
 *      c->converting says so until the new index is in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

int st_coll_config_get(st_store *st, const char *name, st_config *out)
{
    if (!st || !out)
        return -EINVAL;
    st_coll *c;
    int rc = st_coll_named(st, name, &c);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    *out = c->cfg;
    rc = c->dropped ? -ENOENT : 0;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int st_coll_config_stat(st_store *st, const char *name, st_config *cfg, struct timespec *mtime)
{
    if (!st || !cfg || !mtime)
        return -EINVAL;
    st_coll_rec r;
    int rc = st_coll_rec_read(st, name, &r);
    if (rc == 0) {
        *cfg = r.cfg;
        *mtime = r.cfg_mtime;
    }
    return rc;
}

int st_coll_config_change_check(const st_coll_rec *r, const st_config *next)
{
    return r->count > 0 && next->dim != r->cfg.dim ? -EINVAL : 0;
}

/* The index of c rebuilt from its stored vectors with cfg, for a config
 * change on a non-empty collection (caller holds c->wlock). */
static int config_rebuild(st_store *st, st_coll *c, const st_config *cfg, vf_hnsw **out)
{
    int rc = st_index_rebuild_locked(st, c, cfg, out);
    if (rc == 0)
        st_log(st, ST_LOG_INFO, "collection %" PRIu32 ": index rebuilt for a config change", c->id);
    return rc;
}

int st_coll_config_set(st_store *st, const char *name, const st_config *cfg,
                       const struct timespec *mtime)
{
    if (!st || !cfg)
        return -EINVAL;
    int rc = st_coll_name_arg(name, ST_NAME_FIND);
    if (rc)
        return rc;
    if (st_config_validate(cfg) != 0)
        return -EINVAL;
    rc = st_log_route(st, &(st_log_op){.kind = ST_LOG_COLL_CONFIG,
                                       .coll = name,
                                       .cfg = *cfg,
                                       .flags = mtime ? ST_LOG_CFG_MTIME : 0,
                                       .cfg_mtime = mtime ? *mtime : (struct timespec){0}});
    if (rc != ST_LOG_LOCAL)
        return rc;
    st_coll *c = st_coll_find(st, name);
    if (!c)
        return -ENOENT;
    st_coll_lock_settled(c);
    MDB_txn *txn = NULL;
    vf_hnsw *rebuilt = NULL;
    bool convert = false;
    st_coll_rec r;
    /* The record as committed: c->wlock keeps it so until we write it. */
    rc = st_coll_rec_read(st, name, &r);
    if (rc)
        goto out;
    bool quant = cfg->quantization != r.cfg.quantization;
    /* An empty collection takes a new quantization with a fresh index at
     * its next insert, like a new shape. */
    bool shape = cfg->dim != r.cfg.dim || cfg->metric != r.cfg.metric || (quant && r.count == 0);
    /* The graph was built with the metric, m and ef_construction: a new
     * value must rebuild it, or it would be reported but not applied. */
    bool graph = cfg->metric != r.cfg.metric || cfg->m != r.cfg.m ||
                 cfg->ef_construction != r.cfg.ef_construction;
    rc = st_coll_config_change_check(&r, cfg);
    if (rc)
        goto out;
    if (r.count > 0 && graph) {
        rc = config_rebuild(st, c, cfg, &rebuilt);
        if (rc)
            goto out;
    }
    if (shape || rebuilt) {
        rc = st_coll_retire_reserve(c);
        if (rc)
            goto out;
    }
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    r.cfg = *cfg;
    st_now(&r.ctime);
    r.cfg_mtime = mtime ? *mtime : r.ctime;
    rc = st_coll_rec_put(st, txn, &r);
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
    if (rc)
        goto out;
    pthread_mutex_lock(&c->mu);
    if (cfg->target_recall != c->cfg.target_recall || shape)
        c->auto_ef = 0; /* retuned by the background thread */
    c->cfg = *cfg;
    /* Empty collection, new shape: a fresh index at the next insert. A
     * rebuilt one replaces the old at once. */
    if (c->index && (shape || rebuilt)) {
        c->retired[c->nretired++] = c->index;
        c->index = NULL;
    }
    if (rebuilt) {
        c->index = rebuilt;
        rebuilt = NULL;
    }
    if (c->index)
        vf_hnsw_set_ef_search(c->index, cfg->ef_search);
    pthread_mutex_unlock(&c->mu);
    if (r.count > 0 && graph)
        st_coll_note_changes(c, r.count); /* the snapshot on disk is stale */
    /* A new quantization alone converts in the background (convert.c);
     * the rebuild above already applied it with the graph's change. */
    convert = r.count > 0 && quant && !graph;
    if (convert)
        atomic_store(&c->converting, true);
out:
    if (txn)
        mdb_txn_abort(txn);
    vf_hnsw_free(rebuilt);
    pthread_mutex_unlock(&c->wlock);
    if (rc == 0 && convert && st_convert_kick(st) != 0)
        st_log(st, ST_LOG_WARN,
               "collection '%s': could not start the index conversion thread; the next open "
               "rebuilds the index with quantization %s",
               name, st_quant_name(cfg->quantization));
    return rc;
}

int st_coll_config_touch(st_store *st, const char *name, const struct timespec *mtime)
{
    if (!st || !mtime)
        return -EINVAL;
    return st_coll_attr_update(st, name, NULL, 0, mtime);
}
