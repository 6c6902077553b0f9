/*
 * kmeans.h — k-means centroids of a base, for vecfs-bench-shards'
 * clustered shard assignment (a row goes to the shard of its nearest
 * centroid; a query searches the shards of its P nearest centroids).
 *
 * The clustering distance is l2 for an l2 base and cosine otherwise (a
 * dot base is clustered by direction: under -dot the centroid of largest
 * norm would take every row). Centroids are learned on a seeded sample,
 * seeded by k-means++, so the same arguments give the same centroids.
 */
#ifndef VECFS_BENCH_KMEANS_H
#define VECFS_BENCH_KMEANS_H

#include "engine.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bench_kmeans {
    float *centroids; /* k x dim, owned; free with bench_kmeans_release */
    size_t k, dim;
    vf_metric metric; /* the clustering distance (see above) */
} bench_kmeans;

#define BENCH_KMEANS_INIT                                                                          \
    {                                                                                              \
        NULL, 0, 0, VF_METRIC_L2                                                                   \
    }

/* Learns k centroids from up to `sample` rows of rows (n x dim, row-major),
 * drawn with `seed`, in `iterations` Lloyd rounds after k-means++ seeding.
 * A centroid that loses all its rows keeps its place. k <= n, k >= 1.
 * Returns 0, -EINVAL (k 0 or > n, dim 0, sample < k) or -ENOMEM (then
 * *km is left empty). */
int bench_kmeans_train(bench_kmeans *km, const float *rows, size_t n, size_t dim, vf_metric metric,
                       size_t k, size_t sample, unsigned iterations, uint64_t seed);

/* The index of v's nearest centroid (the lowest index on a tie). */
size_t bench_kmeans_nearest(const bench_kmeans *km, const float *v);

/* Writes the centroid indexes to order (room for km->k), nearest to v
 * first; dist is scratch of km->k floats. Allocates nothing. */
void bench_kmeans_rank(const bench_kmeans *km, const float *v, size_t *order, float *dist);

/* Frees the centroids; *km is BENCH_KMEANS_INIT again. NULL is a no-op. */
void bench_kmeans_release(bench_kmeans *km);

#endif /* VECFS_BENCH_KMEANS_H */
