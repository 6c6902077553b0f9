/*
 * recall.c — the benchmarks' one scorer: recall by id, recall by distance
 * and copy misses of a run's results against exact search (recall.h says
 * what each figure means and why distances are recomputed here).
 *
 * Invariants
 *   1. Every distance that decides a hit comes from vf_distance on a base
 *      row and the query as the benchmark holds them; no engine's own
 *      distance is used.
 *   2. threshold[q] is the largest of those distances over the valid ids
 *      of query q's exact top-k, so every exact neighbour an engine returns
 *      is also a hit by distance (recall by distance >= recall by id).
 *   3. No id is used to index the base before it is checked against n:
 *      results come from engines under test and --gt from a file.
 */
#include "recall.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Row `id` of the base, or NULL when id is not a row. */
static const float *base_row(const bench_truth *t, int64_t id)
{
    if (id < 0 || (uint64_t)id >= t->base->n)
        return NULL;
    return (const float *)t->base->data + (size_t)id * t->base->dim;
}

static const float *query_row(const bench_truth *t, size_t q)
{
    return (const float *)t->queries->data + q * t->queries->dim;
}

static bool same_vector(const float *a, const float *b, size_t dim)
{
    return memcmp(a, b, dim * sizeof(float)) == 0;
}

int bench_truth_exact(const bench_matrix *base, const bench_matrix *queries, vf_metric metric,
                      size_t k, int32_t **out)
{
    size_t nq = queries->n;
    vf_hit *hits = malloc(nq * k * sizeof(*hits));
    size_t *counts = malloc(nq * sizeof(*counts));
    int32_t *gt = malloc(nq * k * sizeof(*gt));
    int rc = -ENOMEM;

    *out = NULL;
    if (hits == NULL || counts == NULL || gt == NULL)
        goto out;
    rc = vf_flat_search_batch(base->data, base->n, base->dim, metric, queries->data, nq, k, NULL, 0,
                              hits, counts);
    if (rc != 0)
        goto out;
    for (size_t q = 0; q < nq; q++)
        for (size_t i = 0; i < k; i++)
            gt[q * k + i] = i < counts[q] ? (int32_t)hits[q * k + i].id : -1;
    *out = gt;
    gt = NULL;
out:
    free(gt);
    free(counts);
    free(hits);
    return rc;
}

int bench_truth_init(bench_truth *t, const bench_matrix *base, const bench_matrix *queries,
                     vf_metric metric, const int32_t *gt, size_t gt_dim, size_t k)
{
    bench_truth init = BENCH_TRUTH_INIT;

    *t = init;
    t->threshold = malloc(queries->n * sizeof(*t->threshold));
    t->has_copy = malloc(queries->n * sizeof(*t->has_copy));
    if (t->threshold == NULL || t->has_copy == NULL) {
        bench_truth_release(t);
        return -ENOMEM;
    }
    t->base = base;
    t->queries = queries;
    t->metric = metric;
    t->k = k;
    t->gt = gt;
    t->gt_dim = gt_dim;
    for (size_t q = 0; q < queries->n; q++) {
        const float *query = query_row(t, q);
        t->threshold[q] = -INFINITY;
        t->has_copy[q] = false;
        for (size_t i = 0; i < k; i++) {
            const float *row = base_row(t, gt[q * gt_dim + i]);
            if (row == NULL)
                continue;
            t->threshold[q] = fmaxf(t->threshold[q], vf_distance(metric, query, row, base->dim));
            t->has_copy[q] = t->has_copy[q] || same_vector(query, row, base->dim);
        }
    }
    return 0;
}

/* Adds query q's hits by id and by distance to *by_id and *by_distance,
 * its scored truth ids to *truth_n; returns whether it missed a copy. */
static bool score_query(const bench_truth *t, size_t q, const uint32_t *ids, size_t n,
                        size_t *by_id, size_t *by_distance, size_t *truth_n)
{
    const float *query = query_row(t, q);
    const int32_t *gt = t->gt + q * t->gt_dim;
    bool copy_found = false;

    if (n > t->k)
        n = t->k;
    for (size_t i = 0; i < t->k; i++) {
        if (base_row(t, gt[i]) == NULL)
            continue;
        (*truth_n)++;
        for (size_t j = 0; j < n; j++) {
            if (ids[j] == (uint32_t)gt[i]) {
                (*by_id)++;
                break;
            }
        }
    }
    for (size_t j = 0; j < n; j++) {
        const float *row = base_row(t, ids[j]);
        bool repeated = false;
        if (row == NULL)
            continue;
        for (size_t i = 0; i < j && !repeated; i++)
            repeated = ids[i] == ids[j];
        if (repeated)
            continue;
        if (vf_distance(t->metric, query, row, t->base->dim) <= t->threshold[q])
            (*by_distance)++;
        copy_found = copy_found || same_vector(query, row, t->base->dim);
    }
    return t->has_copy[q] && !copy_found;
}

void bench_truth_score(const bench_truth *t, size_t nq, const uint32_t *ids, size_t stride,
                       const size_t *counts, bench_score *out)
{
    size_t by_id = 0, by_distance = 0, truth_n = 0;

    assert(nq <= t->queries->n);
    out->copy_misses = 0;
    for (size_t q = 0; q < nq; q++) {
        size_t n = counts != NULL ? counts[q] : stride;
        if (score_query(t, q, ids + q * stride, n, &by_id, &by_distance, &truth_n))
            out->copy_misses++;
    }
    out->recall_id = truth_n ? (double)by_id / (double)truth_n : 1.0;
    out->recall_distance = truth_n ? (double)by_distance / (double)truth_n : 1.0;
}

void bench_truth_release(bench_truth *t)
{
    bench_truth init = BENCH_TRUTH_INIT;

    if (t == NULL)
        return;
    free(t->threshold);
    free(t->has_copy);
    *t = init;
}
