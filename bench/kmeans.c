/*
 * kmeans.c — k-means++ seeding and Lloyd rounds on a sample of the base
 * (kmeans.h says what the centroids are for).
 *
 * Invariants
 *   1. Every distance is vf_distance under km->metric, in training and in
 *      ranking, so a row is assigned to the centroid a query of the same
 *      vector would rank first.
 *   2. For cosine the sample rows are normalized before they are summed,
 *      so a centroid is the mean direction of its rows (each row weighs
 *      the same whatever its norm).
 *   3. All randomness comes from one splitmix64 stream started at the
 *      caller's seed: same arguments, same centroids.
 */
#include "kmeans.h"

#include "alloc.h"

#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static double uniform(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* Copies `m` distinct rows chosen at random (partial Fisher-Yates over the
 * row numbers) into out (m x dim), normalized for cosine. 0 or -ENOMEM. */
static int draw_sample(const float *rows, size_t n, size_t dim, vf_metric metric, size_t m,
                       uint64_t *rng, float *out)
{
    uint32_t *perm = vc_malloc(n * sizeof(*perm));

    if (perm == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = 0; i < m; i++) {
        size_t j = i + (size_t)(splitmix64(rng) % (n - i));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        if (metric == VF_METRIC_COSINE)
            vf_normalize(rows + (size_t)perm[i] * dim, out + i * dim, dim);
        else
            memcpy(out + i * dim, rows + (size_t)perm[i] * dim, dim * sizeof(float));
    }
    free(perm);
    return 0;
}

/* k-means++: the first centroid is a random sample row, each next one a
 * sample row drawn with probability proportional to its distance to the
 * nearest centroid chosen so far. near (m floats) is scratch. */
static void seed_centroids(bench_kmeans *km, const float *sample, size_t m, uint64_t *rng,
                           float *near)
{
    size_t dim = km->dim;

    memcpy(km->centroids, sample + (size_t)(splitmix64(rng) % m) * dim, dim * sizeof(float));
    for (size_t i = 0; i < m; i++)
        near[i] = FLT_MAX;
    for (size_t c = 1; c < km->k; c++) {
        const float *last = km->centroids + (c - 1) * dim;
        double total = 0, pick;
        size_t chosen = m - 1;
        for (size_t i = 0; i < m; i++) {
            float d = vf_distance(km->metric, sample + i * dim, last, dim);
            if (d < near[i])
                near[i] = d;
            total += near[i] > 0 ? near[i] : 0;
        }
        pick = uniform(rng) * total;
        for (size_t i = 0; i < m && total > 0; i++) {
            pick -= near[i] > 0 ? near[i] : 0;
            if (pick < 0) {
                chosen = i;
                break;
            }
        }
        memcpy(km->centroids + c * dim, sample + chosen * dim, dim * sizeof(float));
    }
}

/* One Lloyd round: every sample row to its nearest centroid, then each
 * centroid with rows to their mean. sum (k x dim doubles) and count (k)
 * are scratch. */
static void lloyd_round(bench_kmeans *km, const float *sample, size_t m, double *sum, size_t *count)
{
    size_t dim = km->dim;

    memset(sum, 0, km->k * dim * sizeof(*sum));
    memset(count, 0, km->k * sizeof(*count));
    for (size_t i = 0; i < m; i++) {
        size_t c = bench_kmeans_nearest(km, sample + i * dim);
        count[c]++;
        for (size_t j = 0; j < dim; j++)
            sum[c * dim + j] += sample[i * dim + j];
    }
    for (size_t c = 0; c < km->k; c++)
        for (size_t j = 0; j < dim && count[c] > 0; j++)
            km->centroids[c * dim + j] = (float)(sum[c * dim + j] / (double)count[c]);
}

int bench_kmeans_train(bench_kmeans *km, const float *rows, size_t n, size_t dim, vf_metric metric,
                       size_t k, size_t sample, unsigned iterations, uint64_t seed)
{
    bench_kmeans init = BENCH_KMEANS_INIT;
    size_t m = sample < n ? sample : n;
    uint64_t rng = seed;
    float *rows_m = NULL, *near = NULL;
    double *sum = NULL;
    size_t *count = NULL;
    int rc = -ENOMEM;

    *km = init;
    if (k == 0 || k > n || dim == 0 || m < k)
        return -EINVAL;
    km->k = k;
    km->dim = dim;
    km->metric = metric == VF_METRIC_L2 ? VF_METRIC_L2 : VF_METRIC_COSINE;
    km->centroids = vc_malloc(k * dim * sizeof(float));
    rows_m = vc_malloc(m * dim * sizeof(float));
    near = vc_malloc(m * sizeof(float));
    sum = vc_malloc(k * dim * sizeof(double));
    count = vc_malloc(k * sizeof(size_t));
    if (km->centroids == NULL || rows_m == NULL || near == NULL || sum == NULL || count == NULL)
        goto out;
    rc = draw_sample(rows, n, dim, km->metric, m, &rng, rows_m);
    if (rc != 0)
        goto out;
    seed_centroids(km, rows_m, m, &rng, near);
    for (unsigned it = 0; it < iterations; it++)
        lloyd_round(km, rows_m, m, sum, count);
out:
    if (rc != 0)
        bench_kmeans_release(km);
    free(count);
    free(sum);
    free(near);
    free(rows_m);
    return rc;
}

size_t bench_kmeans_nearest(const bench_kmeans *km, const float *v)
{
    size_t best = 0;
    float best_d = FLT_MAX;

    for (size_t c = 0; c < km->k; c++) {
        float d = vf_distance(km->metric, v, km->centroids + c * km->dim, km->dim);
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    return best;
}

void bench_kmeans_rank(const bench_kmeans *km, const float *v, size_t *order, float *dist)
{
    for (size_t c = 0; c < km->k; c++) {
        size_t j = c;
        float d = vf_distance(km->metric, v, km->centroids + c * km->dim, km->dim);
        /* insertion: k is a shard count, a few dozen at most */
        while (j > 0 && dist[j - 1] > d) {
            dist[j] = dist[j - 1];
            order[j] = order[j - 1];
            j--;
        }
        dist[j] = d;
        order[j] = c;
    }
}

void bench_kmeans_release(bench_kmeans *km)
{
    bench_kmeans init = BENCH_KMEANS_INIT;

    if (km == NULL)
        return;
    free(km->centroids);
    *km = init;
}
