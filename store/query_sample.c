/*
 * query_sample.c — the queries users send a collection, a bounded uniform
 * sample of them (reservoir sampling, Vitter's algorithm R) kept for
 * ef_search = auto to calibrate on (coll_index.c).
 *
 * Privacy (SPEC §3.3): the sample lives in this process's memory only. It
 * is never written to LMDB, a snapshot or a log, never shown in a file,
 * and is wiped (explicit_bzero) when dropped, reset or the store closes;
 * the copies handed to the tuner are wiped the same way.
 *
 * Invariants
 *   1. n <= cap; vecs holds n queries of dim floats each.
 *   2. While seen queries were offered since the last reset, each of them
 *      is in the sample with probability n / seen (algorithm R), so the
 *      sample follows the queries as they are, not the first ones.
 *   3. fresh counts queries that entered the sample since the last take:
 *      how much of it the last tuning has not seen.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Queries kept at most, and bytes at most (whichever is fewer). */
#define QSAMPLE_MAX 256u
#define QSAMPLE_BYTES (4u << 20)

void st_qsample_init(st_qsample *q, uint64_t seed)
{
    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    q->rng = seed | 1;
}

/* Wipes and frees the vectors; the sample starts empty. Under q->mu. */
static void qsample_clear(st_qsample *q)
{
    if (q->vecs)
        explicit_bzero(q->vecs, q->cap * (size_t)q->dim * sizeof(float));
    free(q->vecs);
    q->vecs = NULL;
    q->n = q->cap = 0;
    q->dim = 0;
    q->seen = q->fresh = 0;
}

void st_qsample_destroy(st_qsample *q)
{
    qsample_clear(q);
    pthread_mutex_destroy(&q->mu);
}

void st_qsample_reset(st_qsample *q)
{
    pthread_mutex_lock(&q->mu);
    qsample_clear(q);
    pthread_mutex_unlock(&q->mu);
}

/* xorshift64: the reservoir's draws. */
static uint64_t qsample_rand(st_qsample *q)
{
    q->rng ^= q->rng << 13;
    q->rng ^= q->rng >> 7;
    q->rng ^= q->rng << 17;
    return q->rng;
}

void st_qsample_offer(st_qsample *q, const float *queries, size_t nq, uint32_t dim)
{
    if (nq == 0 || dim == 0)
        return;
    pthread_mutex_lock(&q->mu);
    if (q->dim != dim) {
        /* First query, or the collection's dim changed (emptied and
         * refilled): the old sample no longer fits. */
        qsample_clear(q);
        size_t cap = QSAMPLE_BYTES / ((size_t)dim * sizeof(float));
        cap = cap < QSAMPLE_MAX ? (cap ? cap : 1) : QSAMPLE_MAX;
        q->vecs = vc_malloc(cap * (size_t)dim * sizeof(float));
        if (q->vecs) {
            q->cap = cap;
            q->dim = dim;
        }
    }
    for (size_t i = 0; q->vecs && i < nq; i++) {
        q->seen++;
        size_t slot = q->n < q->cap ? q->n++ : (size_t)(qsample_rand(q) % q->seen);
        if (slot < q->cap) {
            memcpy(q->vecs + slot * dim, queries + i * dim, (size_t)dim * sizeof(float));
            q->fresh++;
        }
    }
    pthread_mutex_unlock(&q->mu);
}

uint64_t st_qsample_fresh(st_qsample *q)
{
    pthread_mutex_lock(&q->mu);
    uint64_t fresh = q->fresh;
    pthread_mutex_unlock(&q->mu);
    return fresh;
}

int st_qsample_take(st_qsample *q, uint32_t dim, float **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    if (q->n && q->dim == dim) {
        size_t bytes = q->n * (size_t)dim * sizeof(float);
        *out = vc_malloc(bytes);
        if (*out) {
            memcpy(*out, q->vecs, bytes);
            *n = q->n;
            q->fresh = 0;
        } else {
            rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void st_qsample_free_copy(float *copy, size_t n, uint32_t dim)
{
    if (copy)
        explicit_bzero(copy, n * (size_t)dim * sizeof(float));
    free(copy);
}
