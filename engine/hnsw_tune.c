/*
 * hnsw_tune.c — ef = auto: the smallest ef whose recall@k, measured on a
 * set of calibration queries against exact search, meets a target with a
 * statistical margin.
 *
 * The calibration queries are the caller's (queries users sent, which is
 * what the recall promise is about) plus, when those are few, perturbed
 * held-out stored vectors:
 *
 *   q = x_i + (x_a - x_b) / 2, with a, b two distinct vectors among the
 *   PERTURB_POOL exact nearest neighbours of x_i, and x_i held out (left
 *   out of the walk and of the truth).
 *
 * Why not x_i itself (held out): the graph was built around x_i, so its
 * neighbours link densely towards the point the query sits on; that
 * overestimates recall on new queries. Isotropic noise does not help in
 * high dimension (it adds nearly the same amount to every distance and
 * keeps the ranking). x_a - x_b is a direction the data vary along near
 * x_i, as long as a neighbour distance: q lands between stored vectors,
 * off any of them, as an unseen sample from the same data does.
 *
 * The decision uses the lower confidence bound of the mean per-query
 * recall (one-sided, z = VF_TUNE_Z), not the mean: with a few hundred
 * queries the mean alone misses the target about half the time when the
 * true recall sits just at it. The ef is found on a 1.5x ladder and then
 * bisected between the last failing and the first passing rung, so it
 * does not overshoot the target by a whole rung.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"

/* Nearest neighbours of a held-out vector among which the two that give
 * its perturbation are drawn. */
#define PERTURB_POOL 10

/* The calibration queries (vector records), what each excludes, their
 * exact k nearest, and room for one search's hits. */
typedef struct tune_set {
    uint8_t *queries;
    uint32_t *exclude; /* held-out id, UINT32_MAX for a user query */
    vf_hit *truth;
    size_t *truth_n;
    vf_hit *got;
    float *recall; /* per query, at the ef being measured */
    float *vec;    /* 3 x dim floats: a held-out vector and two neighbours */
    size_t n;
} tune_set;

/* Frees the set's arrays (the struct is the caller's). */
static void tune_set_free(tune_set *t)
{
    free(t->queries);
    free(t->exclude);
    free(t->truth);
    free(t->truth_n);
    free(t->got);
    free(t->recall);
    free(t->vec);
}

/* Step of a 64-bit linear congruential generator (Knuth's MMIX
 * constants); the high bits are used. */
static uint64_t lcg_next(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

/* Query i of t: the perturbation of stored vector `id` (see the header),
 * held out. Returns false when id has fewer than two other neighbours. */
static bool held_out_add(const vf_hnsw *h, vf_scratch *s, size_t k, uint32_t id, uint64_t *rng,
                         tune_set *t)
{
    vf_hit pool[PERTURB_POOL];
    size_t np = 0;
    const uint8_t *x = vf_node_rec(h, id);
    vf_hnsw_scan(h, s, x, PERTURB_POOL, NULL, id, pool, &np);
    if (np < 2)
        return false;
    size_t a = lcg_next(rng) % np, b = lcg_next(rng) % (np - 1);
    if (b >= a)
        b++;
    float *xi = t->vec, *xa = t->vec + h->dim, *xb = t->vec + 2 * h->dim;
    vf_hnsw_rec_decode(h, x, xi);
    vf_hnsw_rec_decode(h, vf_node_rec(h, pool[a].id), xa);
    vf_hnsw_rec_decode(h, vf_node_rec(h, pool[b].id), xb);
    for (size_t d = 0; d < h->dim; d++)
        xi[d] += 0.5f * (xa[d] - xb[d]);
    uint8_t *q = t->queries + t->n * h->rec_bytes;
    vf_hnsw_rec_encode((vf_hnsw *)h, s, xi, q, false);
    t->exclude[t->n] = id;
    vf_hnsw_scan(h, s, q, k, NULL, id, t->truth + t->n * k, &t->truth_n[t->n]);
    t->n++;
    return true;
}

/* Fills t with the spec's queries and up to spec->held_out perturbed
 * held-out vectors, and the exact k nearest of each. 0 or -ENOMEM. */
static int tune_set_build(const vf_hnsw *h, vf_scratch *s, const vf_tune_spec *spec, tune_set *t)
{
    const size_t k = spec->k, max = spec->nqueries + spec->held_out;
    assert(k >= 1 && k <= s->res_cap && t->n == 0);
    t->queries = vc_malloc(max * h->rec_bytes + 1);
    t->exclude = vc_malloc(max * sizeof(uint32_t) + 1);
    t->truth = vc_malloc(max * k * sizeof(vf_hit) + 1);
    t->truth_n = vc_malloc(max * sizeof(size_t) + 1);
    t->got = vc_malloc(k * sizeof(vf_hit));
    t->recall = vc_malloc(max * sizeof(float) + 1);
    t->vec = vc_malloc(3 * h->dim * sizeof(float));
    if (!t->queries || !t->exclude || !t->truth || !t->truth_n || !t->got || !t->recall || !t->vec)
        return -ENOMEM;
    for (size_t i = 0; i < spec->nqueries; i++) {
        uint8_t *q = t->queries + t->n * h->rec_bytes;
        vf_hnsw_rec_encode((vf_hnsw *)h, s, spec->queries + i * h->dim, q, false);
        t->exclude[t->n] = UINT32_MAX;
        vf_hnsw_scan(h, s, q, k, NULL, UINT32_MAX, t->truth + t->n * k, &t->truth_n[t->n]);
        t->n++;
    }
    if (spec->held_out == 0)
        return 0;
    /* Held-out ids spread over the id range from a seeded offset. */
    uint64_t rng = spec->seed ^ 0x9e3779b97f4a7c15ull;
    size_t stride = h->capacity / spec->held_out ? h->capacity / spec->held_out : 1;
    size_t start = h->capacity ? lcg_next(&rng) % (stride < h->capacity ? stride : h->capacity) : 0;
    size_t added = 0;
    for (size_t i = start; i < h->capacity && added < spec->held_out; i += stride) {
        if (slot_state(h, (uint32_t)i) == VF_SLOT_PRESENT &&
            held_out_add(h, s, k, (uint32_t)i, &rng, t))
            added++;
    }
    return 0;
}

double vf_recall_lower_bound(const float *recall, size_t n, double *mean_out)
{
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += recall[i];
        sq += (double)recall[i] * recall[i];
    }
    double mean = n ? sum / (double)n : 1.0;
    if (mean_out)
        *mean_out = mean;
    if (n < 2)
        return n ? 0.0 : 1.0; /* one query proves nothing */
    double var = (sq - (double)n * mean * mean) / (double)(n - 1);
    return mean - VF_TUNE_Z * sqrt(var > 0.0 ? var : 0.0) / sqrt((double)n);
}

/* Per-query recall@k of searches at ef over t's queries into t->recall;
 * *low its lower bound, *mean its mean. 0 or -ENOMEM. */
static int tune_measure(const vf_hnsw *h, vf_scratch *s, const tune_set *t, size_t k, size_t ef,
                        double *low, double *mean)
{
    assert(k >= 1 && k <= ef && ef <= s->res_cap);
    for (size_t i = 0; i < t->n; i++) {
        size_t n;
        int rc = vf_hnsw_search_locked(h, s, t->queries + i * h->rec_bytes, k, ef, NULL,
                                       t->exclude[i], false, t->got, &n);
        if (rc)
            return rc;
        const vf_hit *truth = t->truth + i * k;
        size_t hits = 0;
        for (size_t a = 0; a < t->truth_n[i]; a++)
            for (size_t b = 0; b < n; b++)
                if (t->got[b].id == truth[a].id) {
                    hits++;
                    break;
                }
        t->recall[i] = t->truth_n[i] ? (float)hits / (float)t->truth_n[i] : 1.0f;
    }
    *low = vf_recall_lower_bound(t->recall, t->n, mean);
    return 0;
}

/* The smallest ef in [k, max_ef] whose lower bound meets the target (max_ef
 * when none does) into out. 0 or -ENOMEM. */
static int tune_search(const vf_hnsw *h, vf_scratch *s, const tune_set *t, const vf_tune_spec *spec,
                       vf_tune_result *out)
{
    size_t fail = 0, pass = 0; /* last failing ef (0: none yet), first passing */
    double low = 0.0, mean = 0.0, pass_low = 0.0, pass_mean = 0.0;
    for (size_t ef = spec->k;; ef = ef + ef / 2 + 1) {
        if (ef > spec->max_ef)
            ef = spec->max_ef;
        int rc = tune_measure(h, s, t, spec->k, ef, &low, &mean);
        if (rc)
            return rc;
        if (low >= spec->target_recall || ef == spec->max_ef) {
            pass = ef;
            pass_low = low;
            pass_mean = mean;
            break;
        }
        fail = ef;
    }
    /* Bisect (fail, pass] down to a step of pass/16. */
    while (fail && pass - fail > 1 && pass - fail > pass / 16) {
        size_t mid = fail + (pass - fail) / 2;
        int rc = tune_measure(h, s, t, spec->k, mid, &low, &mean);
        if (rc)
            return rc;
        if (low >= spec->target_recall) {
            pass = mid;
            pass_low = low;
            pass_mean = mean;
        } else {
            fail = mid;
        }
    }
    out->ef = (uint32_t)pass;
    out->recall = pass_mean;
    out->recall_low = pass_low;
    return 0;
}

int vf_hnsw_tune(const vf_hnsw *h, const vf_tune_spec *spec, vf_tune_result *out)
{
    if (!h || !spec || !out || spec->k == 0 ||
        !(spec->target_recall > 0.0 && spec->target_recall <= 1.0) || spec->max_ef < spec->k ||
        spec->max_ef > UINT32_MAX || (spec->nqueries && !spec->queries) ||
        spec->nqueries + spec->held_out == 0)
        return -EINVAL;
    for (size_t i = 0; i < spec->nqueries; i++)
        if (!vf_hnsw_query_finite(spec->queries + i * h->dim, h->dim))
            return -EINVAL;
    *out = (vf_tune_result){.ef = (uint32_t)spec->k, .recall = 1.0, .recall_low = 1.0};
    /* An untrained INT8 index holds no vector yet. */
    if (h->quant == VF_QUANT_INT8 && !atomic_load_explicit(&h->quant_trained, memory_order_acquire))
        return 0;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    tune_set t = {0};
    int rc = -ENOMEM;
    vf_scratch *s = vf_scratch_acquire(h, spec->max_ef);
    if (!s)
        goto out;
    rc = tune_set_build(h, s, spec, &t);
    if (rc == 0 && t.n)
        rc = tune_search(h, s, &t, spec, out);
    if (rc == 0) {
        out->queries = t.n;
        out->user_queries = spec->nqueries;
    }
    vf_scratch_release(h, s);
out:
    tune_set_free(&t);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return rc;
}
