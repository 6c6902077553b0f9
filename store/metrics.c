/*
 * metrics.c — the figures behind statfs(), .vecfs/stats and
 * .vecfs/metrics (st_store_metrics, and st_coll_index_info per collection).
 *
 * Invariants
 *   1. Never blocks on writers or the disk: it takes colls_lock for reading
 *      and each c->mu briefly, and reads counters that are atomic.
 */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#include "internal.h"

int st_store_metrics(st_store *st, st_metrics *out)
{
    if (!st || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    struct timespec now;
    st_mono_now(&now);
    pthread_rwlock_rdlock(&st->colls_lock);
    out->collections = st->ncolls;
    for (size_t i = 0; i < st->ncolls; i++) {
        st_coll *c = st->colls[i];
        pthread_mutex_lock(&c->mu);
        out->vectors += c->count;
        if (c->index) {
            vf_hnsw_stats hs;
            vf_hnsw_stats_get(c->index, &hs);
            out->index_memory += vf_hnsw_memory(c->index);
            out->searches_short_total += hs.searches_short;
            out->vectors_rehomed_total += hs.rehomed;
            out->vectors_stranded_total += hs.stranded;
            out->index_plans_total[0] += hs.plans_exact;
            out->index_plans_total[1] += hs.plans_walk;
            out->index_plans_total[2] += hs.plans_expand;
        }
        out->index_memory += st_names_memory(&c->names);
        if (c->changes > 0) {
            double age = st_ts_diff(&now, &c->first_change);
            if (age > out->snapshot_age_seconds)
                out->snapshot_age_seconds = age;
        }
        pthread_mutex_unlock(&c->mu);
    }
    pthread_rwlock_unlock(&st->colls_lock);
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &ms);
    out->map_bytes = info.me_mapsize;
    out->store_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
    if (st->opt.max_size) {
        out->max_bytes = st->opt.max_size;
    } else {
        struct statvfs vfs;
        uint64_t avail = 0;
        if (statvfs(st->dir, &vfs) == 0)
            avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        out->max_bytes = out->store_bytes + avail;
    }
    out->inserts_total = atomic_load(&st->inserts);
    out->deletes_total = atomic_load(&st->deletes);
    out->queries_total = atomic_load(&st->queries);
    out->query_ns_total = atomic_load(&st->query_ns);
    _Static_assert(sizeof out->plans_total / sizeof out->plans_total[0] == ST_PLAN_KIND_COUNT,
                   "one counter per plan kind");
    for (size_t i = 0; i < ST_PLAN_KIND_COUNT; i++)
        out->plans_total[i] = atomic_load(&st->plans[i]);
    out->plans_redone_total = atomic_load(&st->plans_redone);
    out->snapshots_total = atomic_load(&st->snapshots);
    out->rebuilds_total = atomic_load(&st->rebuilds);
    out->errors_total = atomic_load(&st->errors);
    out->stale_readers_total = atomic_load(&st->stale_readers);
    out->commits_total = atomic_load(&st->group_commits);
    out->commit_ops_total = atomic_load(&st->group_ops);
    out->commit_seconds_total = (double)atomic_load(&st->group_commit_ns) / 1e9;
    out->open_seconds = st->open_seconds;
    out->read_only = st->opt.read_only;
    out->encrypted = st->crypto.on;
    return 0;
}

int st_coll_index_info(st_store *st, const char *name, st_index_info *out)
{
    if (!st || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    st_coll *c;
    int rc = st_coll_lookup(st, name, &c);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    out->rerank = c->cfg.rerank;
    out->converting = atomic_load(&c->converting);
    if (c->index) {
        vf_hnsw_params p;
        vf_hnsw_params_get(c->index, &p);
        out->quantization = p.quantization == VF_QUANT_INT8 ? ST_QUANT_INT8 : ST_QUANT_NONE;
        out->vectors = vf_hnsw_count(c->index);
        out->index_bytes = vf_hnsw_memory(c->index);
        vf_quant_stats qs;
        vf_hnsw_quant_stats(c->index, &qs);
        out->relearns = qs.relearns;
    } else {
        out->quantization = c->cfg.quantization;
    }
    rc = c->dropped ? -ENOENT : 0;
    pthread_mutex_unlock(&c->mu);
    return rc;
}
