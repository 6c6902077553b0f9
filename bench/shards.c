/*
 * shards.c — building S index shards of a base and answering a query by
 * fan-out and merge (shards.h says what a shard set is and why it is
 * timed shard by shard).
 *
 * Invariants
 *   1. Every row of the base is in exactly one shard: size[] sums to n and
 *      global[i][0..size[i]) lists the shard's rows in ascending order.
 *   2. The index of shard i holds exactly size[i] vectors, local id j
 *      being row global[i][j].
 *   3. The merge takes, k times, the nearest head among the probed
 *      shards' lists (each sorted nearest first by the engine), the first
 *      probed shard winning ties: its result is the k nearest of the union
 *      of the lists, and a single list passes through unchanged.
 */
#include "shards.h"

#include "alloc.h"
#include "timing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The calling thread's CPU time, for a query's parts: on a machine shared
 * with other work, a search preempted half way would otherwise be charged
 * the time another process ran. */
static double cpu_seconds(void)
{
    return bench_clock_seconds(CLOCK_THREAD_CPUTIME_ID);
}

const char *bench_assign_name(bench_assign a)
{
    return a == BENCH_ASSIGN_KMEANS ? "kmeans" : "hash";
}

/* The shard of the vector named `row` (its decimal row number): 64-bit
 * FNV-1a of the name, high half folded into the low one before the
 * modulo (FNV's low bits alone are weak for names that differ in their
 * last digit). */
static uint32_t hash_shard(size_t row, size_t shards)
{
    char name[24];
    int len = snprintf(name, sizeof(name), "%zu", row);
    uint64_t h = 0xCBF29CE484222325ull;

    for (int i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001B3ull;
    }
    return (uint32_t)((h ^ (h >> 32)) % shards);
}

/* Fills shard_of (n entries) by cfg->assign; learns s->km for KMEANS. */
static int assign_rows(bench_shards *s, const bench_matrix *base, const bench_shard_config *cfg,
                       uint32_t *shard_of)
{
    const float *rows = base->data;

    if (cfg->assign == BENCH_ASSIGN_HASH) {
        for (size_t r = 0; r < base->n; r++)
            shard_of[r] = hash_shard(r, cfg->shards);
        return 0;
    }
    int rc = bench_kmeans_train(&s->km, rows, base->n, base->dim, cfg->params.metric, cfg->shards,
                                cfg->kmeans_sample, cfg->kmeans_iterations, cfg->seed);
    if (rc != 0)
        return rc;
    for (size_t r = 0; r < base->n; r++)
        shard_of[r] = (uint32_t)bench_kmeans_nearest(&s->km, rows + r * base->dim);
    return 0;
}

/* Builds shard i's index from its rows (invariant 2). */
static int build_shard(bench_shards *s, size_t i, const bench_matrix *base,
                       const bench_shard_config *cfg)
{
    size_t dim = base->dim, n = s->size[i];
    float *rows = vc_malloc((n ? n : 1) * dim * sizeof(float));
    int rc = -ENOMEM;

    if (rows == NULL)
        return rc;
    for (size_t j = 0; j < n; j++)
        memcpy(rows + j * dim, (const float *)base->data + (size_t)s->global[i][j] * dim,
               dim * sizeof(float));
    rc = vf_hnsw_create(&cfg->params, &s->index[i]);
    if (rc == 0 && n > 0)
        rc = vf_hnsw_reserve(s->index[i], n);
    if (rc == 0 && n > 0)
        rc = vf_hnsw_insert_batch(s->index[i], NULL, 0, rows, n, cfg->build_threads);
    if (rc == 0 && vf_hnsw_count(s->index[i]) != n)
        rc = -EIO;
    free(rows);
    return rc;
}

int bench_shards_build(bench_shards *s, const bench_matrix *base, const bench_shard_config *cfg)
{
    bench_shards init = BENCH_SHARDS_INIT;
    size_t S = cfg->shards;
    uint32_t *shard_of = NULL;
    double t0 = bench_now_seconds();
    int rc = -EINVAL;

    *s = init;
    if (S == 0 || S > base->n || cfg->params.dim != base->dim)
        return rc;
    rc = -ENOMEM;
    s->count = S;
    s->assign = cfg->assign;
    s->dim = base->dim;
    s->index = vc_calloc(S, sizeof(*s->index));
    s->global = vc_calloc(S, sizeof(*s->global));
    s->size = vc_calloc(S, sizeof(*s->size));
    shard_of = vc_malloc(base->n * sizeof(*shard_of));
    if (s->index == NULL || s->global == NULL || s->size == NULL || shard_of == NULL)
        goto out;
    rc = assign_rows(s, base, cfg, shard_of);
    if (rc != 0)
        goto out;
    for (size_t r = 0; r < base->n; r++)
        s->size[shard_of[r]]++;
    for (size_t i = 0; i < S; i++) {
        s->global[i] = vc_malloc((s->size[i] ? s->size[i] : 1) * sizeof(uint32_t));
        if (s->global[i] == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        s->size[i] = 0;
    }
    for (size_t r = 0; r < base->n; r++)
        s->global[shard_of[r]][s->size[shard_of[r]]++] = (uint32_t)r;
    s->assign_seconds = bench_now_seconds() - t0;
    t0 = bench_now_seconds();
    for (size_t i = 0; i < S && rc == 0; i++)
        rc = build_shard(s, i, base, cfg);
    s->build_seconds = bench_now_seconds() - t0;
out:
    free(shard_of);
    if (rc != 0)
        bench_shards_release(s);
    return rc;
}

void bench_shards_release(bench_shards *s)
{
    bench_shards init = BENCH_SHARDS_INIT;

    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++) {
        if (s->index != NULL)
            vf_hnsw_free(s->index[i]);
        if (s->global != NULL)
            free(s->global[i]);
    }
    free(s->index);
    free(s->global);
    free(s->size);
    bench_kmeans_release(&s->km);
    *s = init;
}

int bench_fanout_init(bench_fanout *f, const bench_shards *s, size_t k)
{
    bench_fanout init = BENCH_FANOUT_INIT;

    *f = init;
    f->k = k;
    f->shards = s->count;
    f->hits = vc_malloc(s->count * k * sizeof(*f->hits));
    f->got = vc_malloc(s->count * sizeof(*f->got));
    f->head = vc_malloc(s->count * sizeof(*f->head));
    f->order = vc_malloc(s->count * sizeof(*f->order));
    f->dist = vc_malloc(s->count * sizeof(*f->dist));
    if (f->hits == NULL || f->got == NULL || f->head == NULL || f->order == NULL ||
        f->dist == NULL) {
        bench_fanout_release(f);
        return -ENOMEM;
    }
    return 0;
}

void bench_fanout_release(bench_fanout *f)
{
    bench_fanout init = BENCH_FANOUT_INIT;

    if (f == NULL)
        return;
    free(f->hits);
    free(f->got);
    free(f->head);
    free(f->order);
    free(f->dist);
    *f = init;
}

/* Merges the probed lists of f into out (invariant 3); returns the count. */
static size_t merge_lists(const bench_fanout *f, size_t probed, size_t k, vf_hit *out)
{
    size_t n = 0;

    memset(f->head, 0, probed * sizeof(*f->head));
    while (n < k) {
        size_t best = probed;
        for (size_t p = 0; p < probed; p++) {
            if (f->head[p] == f->got[p])
                continue;
            if (best == probed || f->hits[p * f->k + f->head[p]].distance <
                                      f->hits[best * f->k + f->head[best]].distance)
                best = p;
        }
        if (best == probed)
            break;
        out[n++] = f->hits[best * f->k + f->head[best]++];
    }
    return n;
}

int bench_shards_search(const bench_shards *s, bench_fanout *f, const float *query, size_t k,
                        size_t ef, size_t probes, vf_hit *out, size_t *n_out, double *shard_seconds,
                        bench_fanout_cost *cost)
{
    size_t probed = s->count;
    double t_route = cpu_seconds(), route, slowest = 0, t_merge;

    if (k > f->k || s->count != f->shards)
        return -EINVAL;
    if (s->assign == BENCH_ASSIGN_KMEANS) {
        bench_kmeans_rank(&s->km, query, f->order, f->dist);
        if (probes < probed)
            probed = probes;
    } else {
        for (size_t i = 0; i < s->count; i++)
            f->order[i] = i;
    }
    route = cpu_seconds() - t_route;
    if (shard_seconds != NULL)
        memset(shard_seconds, 0, s->count * sizeof(*shard_seconds));
    for (size_t p = 0; p < probed; p++) {
        size_t sh = f->order[p];
        vf_hit *hits = f->hits + p * f->k;
        double t0 = cpu_seconds(), took;
        int rc = vf_hnsw_search(s->index[sh], query, k, ef, NULL, hits, &f->got[p]);
        took = cpu_seconds() - t0;
        if (rc != 0)
            return rc;
        for (size_t j = 0; j < f->got[p]; j++)
            hits[j].id = s->global[sh][hits[j].id];
        if (shard_seconds != NULL)
            shard_seconds[sh] = took;
        if (took > slowest)
            slowest = took;
    }
    t_merge = cpu_seconds();
    *n_out = merge_lists(f, probed, k, out);
    if (cost != NULL) {
        cost->slowest_seconds = slowest;
        cost->merge_seconds = route + (cpu_seconds() - t_merge);
        cost->probed = probed;
    }
    return 0;
}
