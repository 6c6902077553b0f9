/*
 * recall.h — scoring a benchmark's search results against exact search,
 * for vecfs-bench-engine and vecfs-bench-fs (one scorer, so every engine
 * and every path is counted the same way).
 *
 * Three figures per run, over all queries:
 *   recall by id        |returned ids ∩ exact top-k ids| / k. The figure
 *                       the benchmarks have always printed as "recall".
 *   recall by distance  returned ids (each counted once) whose distance to
 *                       the query is no larger than the k-th exact
 *                       distance, / k. When many rows tie at the k-th
 *                       distance (identical vectors), exact search keeps an
 *                       arbitrary k of them, so an engine that returns
 *                       other copies loses recall by id without losing
 *                       anything; by distance it does not. It is never
 *                       below recall by id.
 *   copy misses         queries whose exact top-k holds a row identical to
 *                       the query (bit for bit) but whose result holds
 *                       none: a search that missed the query's own copy.
 *
 * Distances are never taken from an engine: the threshold of each query
 * (the largest distance from the query to its exact top-k rows) and the
 * distance of every returned row are both computed here by vf_distance,
 * the same code on the same two inputs. Identical rows therefore get
 * bit-identical distances, so no tolerance is needed for them, and rounding
 * differences between engines' kernels (or hnswlib and FAISS searching
 * normalized copies for cosine) cannot decide a hit. Rows that differ but
 * tie mathematically may differ by an ulp; they are not duplicates, and
 * counting them either way changes recall by at most the ulp-close ties.
 */
#ifndef VECFS_BENCH_RECALL_H
#define VECFS_BENCH_RECALL_H

#include "engine.h"
#include "fvecs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The exact neighbours of every query and what scoring needs of them.
 * Lifecycle: bench_truth_init -> bench_truth_score (any number of times,
 * from any thread) -> bench_truth_release. */
typedef struct bench_truth {
    const bench_matrix *base;    /* borrowed: n x dim floats */
    const bench_matrix *queries; /* borrowed: nq x dim floats */
    vf_metric metric;
    size_t k;
    const int32_t *gt; /* borrowed: nq rows of gt_dim ids, the first k scored */
    size_t gt_dim;
    float *threshold; /* owned: per query, the k-th exact distance */
    bool *has_copy;   /* owned: per query, the exact top-k holds an identical row */
} bench_truth;

#define BENCH_TRUTH_INIT                                                                           \
    {                                                                                              \
        NULL, NULL, VF_METRIC_L2, 0, NULL, 0, NULL, NULL                                           \
    }

/* One run's figures (see the top of this file). */
typedef struct bench_score {
    double recall_id;
    double recall_distance;
    size_t copy_misses;
} bench_score;

/* Exact top-k of every query of `queries` among the rows of `base` under
 * `metric`, by vf_flat_search_batch on all cores. *out gets queries->n rows
 * of k row ids, nearest first, -1 past the end when the base holds fewer
 * than k rows; the caller owns it (free()). Returns 0, -EINVAL, -ENOMEM or
 * -EAGAIN (vf_flat_search_batch's errors); *out is NULL on error. */
int bench_truth_exact(const bench_matrix *base, const bench_matrix *queries, vf_metric metric,
                      size_t k, int32_t **out);

/* Prepares *t to score results for `queries` against `base`: gt holds
 * queries->n rows of gt_dim >= k ids, the exact top-k first (as from
 * bench_truth_exact or a --gt file); ids outside 0..base->n-1 (such as -1)
 * are absent. base, queries and gt are borrowed and must outlive *t.
 * Returns 0 or -ENOMEM (then *t holds nothing to release). */
int bench_truth_init(bench_truth *t, const bench_matrix *base, const bench_matrix *queries,
                     vf_metric metric, const int32_t *gt, size_t gt_dim, size_t k);

/* Scores one run over the first nq <= t->queries->n queries: query q's
 * result is ids[q * stride ...], counts[q] ids (every row holds `stride`
 * ids when counts is NULL), nearest first.
 * Ids outside the base (such as a (uint32_t)-1 padding) score nothing;
 * only the first k of a row are scored. */
void bench_truth_score(const bench_truth *t, size_t nq, const uint32_t *ids, size_t stride,
                       const size_t *counts, bench_score *out);

/* Frees what *t owns and leaves it as BENCH_TRUTH_INIT. NULL is a no-op. */
void bench_truth_release(bench_truth *t);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_BENCH_RECALL_H */
