/*
 * hnsw_tune.c — ef = auto: the smallest ef on a ladder whose recall@k,
 * measured with stored vectors as held-out queries, meets a target.
 *
 * A tuning query excludes its own vector from results and from the walk:
 * otherwise the walk would reach it and read its neighbours straight off
 * its links, overstating recall.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"

/* Stored vectors of the sampled ids and their exact neighbours (each
 * query excluding itself, as a held-out query would). */
typedef struct tune_set {
    uint32_t *ids;
    uint8_t *queries; /* vector records */
    vf_hit *truth;
    size_t *truth_n;
    vf_hit *got;
    size_t n;
} tune_set;

/* Frees the set's arrays (the struct is the caller's). */
static void tune_set_free(tune_set *t)
{
    free(t->ids);
    free(t->queries);
    free(t->truth);
    free(t->truth_n);
    free(t->got);
}

/* Fills t with up to `samples` stored vectors, spread over the ids, as
 * queries and their exact k nearest. 0 or -ENOMEM. */
static int tune_set_build(const vf_hnsw *h, vf_scratch *s, size_t k, size_t samples, tune_set *t)
{
    assert(k >= 1 && k <= s->res_cap && samples >= 1 && t->n == 0);
    size_t stride = h->capacity / samples ? h->capacity / samples : 1;
    t->ids = vc_malloc(samples * sizeof(uint32_t));
    t->queries = vc_malloc(samples * h->rec_bytes);
    t->truth = vc_malloc(samples * k * sizeof(vf_hit));
    t->truth_n = vc_malloc(samples * sizeof(size_t));
    t->got = vc_malloc(k * sizeof(vf_hit));
    if (!t->ids || !t->queries || !t->truth || !t->truth_n || !t->got)
        return -ENOMEM;
    for (size_t i = 0; i < h->capacity && t->n < samples; i += stride) {
        if (slot_state(h, (uint32_t)i) != VF_SLOT_PRESENT)
            continue;
        uint8_t *q = t->queries + t->n * h->rec_bytes;
        memcpy(q, vf_node_rec(h, (uint32_t)i), h->rec_bytes);
        t->ids[t->n] = (uint32_t)i;
        vf_hnsw_scan(h, s, q, k, NULL, (uint32_t)i, t->truth + t->n * k, &t->truth_n[t->n]);
        t->n++;
    }
    return 0;
}

/* The mean recall@k of searches at ef over t's queries, in *recall. 0 or
 * -ENOMEM. */
static int tune_recall(const vf_hnsw *h, vf_scratch *s, const tune_set *t, size_t k, size_t ef,
                       double *recall)
{
    assert(k >= 1 && k <= ef && ef <= s->res_cap);
    size_t hits = 0, total = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t n;
        int rc = vf_hnsw_search_locked(h, s, t->queries + i * h->rec_bytes, k, ef, NULL, t->ids[i],
                                       false, t->got, &n);
        if (rc)
            return rc;
        const vf_hit *truth = t->truth + i * k;
        for (size_t a = 0; a < t->truth_n[i]; a++)
            for (size_t b = 0; b < n; b++)
                if (t->got[b].id == truth[a].id) {
                    hits++;
                    break;
                }
        total += t->truth_n[i];
    }
    *recall = total ? (double)hits / (double)total : 1.0;
    return 0;
}

int vf_hnsw_tune_ef(const vf_hnsw *h, size_t k, double target_recall, size_t max_ef, size_t samples,
                    uint32_t *ef_out)
{
    if (!h || !ef_out || k == 0 || !(target_recall > 0.0 && target_recall <= 1.0) || max_ef < k ||
        max_ef > UINT32_MAX || samples == 0)
        return -EINVAL;
    *ef_out = (uint32_t)k;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    tune_set t = {0};
    int rc = -ENOMEM;
    vf_scratch *s = vf_scratch_acquire(h, max_ef);
    if (!s)
        goto out;
    rc = tune_set_build(h, s, k, samples, &t);
    for (size_t ef = k; rc == 0; ef = ef + ef / 2 + 1) {
        if (ef >= max_ef)
            ef = max_ef;
        double recall;
        rc = tune_recall(h, s, &t, k, ef, &recall);
        if (rc == 0 && (recall >= target_recall || ef == max_ef)) {
            *ef_out = (uint32_t)ef;
            break;
        }
    }
    vf_scratch_release(h, s);
out:
    tune_set_free(&t);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return rc;
}
