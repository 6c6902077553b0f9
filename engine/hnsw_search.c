/*
 * hnsw_search.c — queries: approximate k nearest neighbours with filters,
 * twins expanded, an exact twin of the query joined, and exact search
 * when the graph cannot be trusted to find k.
 *
 * Invariants
 *   1. A search returns min(k, present vectors that pass): a walk that
 *      comes back with fewer is redone as an exact scan and counted; so
 *      is a WALK whose failing budget ran out while no more vectors pass
 *      than that budget (counted in walks_capped).
 *   2. Searches take the grow lock (read), one node lock at a time inside
 *      walks, and table_lock (read) for the exact-twin probe.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"
#include "kernels.h"
#include "topk.h"

/* Writes to out up to k results from the walk's n hits (nearest first):
 * each hit that passes, then the twins riding on it that pass, scored
 * one by one (a ring that changed meanwhile cannot give a wrong
 * distance), at most 4 * k steps into one ring. Returns the count. */
static size_t ring_expand(const vf_hnsw *h, vf_scratch *s, const void *q, const vf_hit *hits,
                          size_t n, size_t k, const vf_filter *filter, uint32_t exclude,
                          vf_hit *out)
{
    assert(k >= 1);
    vf_visited_begin(s);
    size_t got = 0;
    for (size_t i = 0; i < n && got < k; i++) {
        uint32_t c = hits[i].id;
        if (!visited_test_set(s, c) && result_ok(h, c, filter, exclude))
            out[got++] = hits[i];
        uint32_t z = c;
        for (size_t steps = 0; steps < 4 * k && got < k; steps++) {
            uint32_t next = atomic_load_explicit(&h->twin_next[z], memory_order_acquire);
            if (next == c || next == z || next >= h->capacity)
                break;
            z = next;
            if (visited_test_set(s, z))
                continue;
            if (result_ok(h, z, filter, exclude))
                out[got++] = (vf_hit){.id = z, .distance = dist_vec(h, q, vf_node_rec(h, z))};
        }
    }
    return got;
}

/* The query as the index compares it, a vector record: normalized for
 * cosine, encoded for INT8 (not counted for drift). */
static const void *query_prepare(const vf_hnsw *h, vf_scratch *s, const float *q)
{
    if (h->quant == VF_QUANT_NONE && h->metric != VF_METRIC_COSINE)
        return q;
    vf_hnsw_rec_encode((vf_hnsw *)h, s, q, s->qrec, false);
    return s->qrec;
}

/* A stored vector equal to the query is a result the walk may have
 * missed (an outlier, or a walk drawn elsewhere): the table of heads finds
 * it, and it joins the walk's n hits (room for cap) in distance order.
 * Returns the new count. */
static size_t exact_twin_join(const vf_hnsw *h, const void *q, vf_hit *hits, size_t n, size_t cap)
{
    assert(n <= cap && cap >= 1);
    uint32_t head = vf_twin_lookup(h, q);
    if (head == UINT32_MAX || slot_state(h, head) != VF_SLOT_PRESENT || hits_contain(hits, n, head))
        return n;
    vf_hit hit = {.id = head, .distance = dist_vec(h, q, vf_node_rec(h, head))};
    size_t at = 0;
    while (at < n && hits[at].distance <= hit.distance)
        at++;
    if (at == cap)
        return n;
    if (n == cap)
        n--;
    memmove(hits + at + 1, hits + at, (n - at) * sizeof(vf_hit));
    hits[at] = hit;
    return n + 1;
}

/* vf_hnsw_search_locked with the filter's plan forced (VF_PLAN_AUTO:
 * chosen) and what was done written to *explain (NULL: not asked). */
static int search_planned(const vf_hnsw *h, vf_scratch *s, const void *q, size_t k, size_t ef,
                          const vf_filter *filter, vf_filter_plan plan, vf_filter_explain *explain,
                          uint32_t exclude, bool exact, vf_hit *out, size_t *n_out)
{
    assert(k >= 1 && k <= ef && ef <= s->res_cap);
    assert(filter == NULL || filter->accept != NULL);
    *n_out = 0;
    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
    size_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
    if (entry == VF_HNSW_NO_ENTRY || count == 0)
        return 0;
    /* ef >= count asks for every vector anyway; a scan makes it exact
     * whatever the graph's shape. */
    if (count <= ef)
        exact = true;
    vf_filter_explain did = {.plan = exact ? VF_PLAN_EXACT : VF_PLAN_WALK, .passing = count};
    if (filter && !exact)
        did.plan = vf_hnsw_plan_choose(h, s, filter, plan, count, k, ef, &did.passing);
    if (filter) {
        counter_bump(&h->plans[did.plan]);
        if (explain)
            *explain = did;
    }
    if (exact || did.plan == VF_PLAN_EXACT) {
        vf_hnsw_scan(h, s, q, k, filter, exclude, out, n_out);
        return 0;
    }

    uint32_t cur = (uint32_t)entry;
    float cur_d = dist_vec(h, q, vf_node_rec(h, cur));
    vf_hnsw_descend(h, s, q, 0.0f, false, (unsigned)(entry >> 32), 0, &cur, &cur_d);
    vf_heap res;
    int rc;
    if (!filter) {
        rc = vf_hnsw_walk_layer(h, s, q, cur, cur_d, ef, 0, NULL, exclude, false, 0.0f, &res);
    } else if (did.plan == VF_PLAN_EXPAND) {
        const size_t ef_x = ef <= s->res_cap / VF_EXPAND_EF_FACTOR ? ef * VF_EXPAND_EF_FACTOR : ef;
        rc = vf_hnsw_walk_expand(h, s, q, cur, cur_d, ef_x, filter, &res);
    } else {
        /* Passing nodes to start from besides the descent's end, which
         * may lie where nothing passes (hnsw_seed.c). */
        const size_t seeds =
            vf_hnsw_seeds(h, q, filter, did.passing, ef, s->sorted, VF_SEED_KEEP(s));
        ef = vf_hnsw_walk_ef(ef, k, did.passing, count);
        const size_t budget = vf_hnsw_walk_failing_budget(ef, did.passing, count);
        bool capped = false;
        rc = vf_hnsw_walk_filtered(h, s, q, cur, cur_d, ef, filter, exclude, budget, s->sorted,
                                   seeds, &capped, &res);
        if (capped)
            counter_bump(&h->walks_capped);
        /* A passing set no larger than the failing nodes the walk was
         * allowed costs a scan no more than the walk did, and the scan
         * needs no luck (a forced walk at a tiny share: the passing nodes
         * nearest the query lie beyond the budget). Not for tuning. */
        if (rc == 0 && capped && did.passing <= budget && exclude == UINT32_MAX) {
            if (explain)
                explain->redone_exact = true;
            vf_hnsw_scan(h, s, q, k, filter, exclude, out, n_out);
            return 0;
        }
    }
    if (rc)
        return rc;
    size_t walked = vf_topk_drain_sorted(&res, s->sorted);
    walked = exact_twin_join(h, q, s->sorted, walked, res.cap);
    size_t found = ring_expand(h, s, q, s->sorted, walked, k, filter, exclude, out);
    /* The walk ran out of (passing) nodes: only a scan can prove there are
     * no more, and the contract is k whenever k pass. A tuning query
     * (`exclude`) must see the walk as it is, shortfalls included. */
    if (found < k && found < count && exclude == UINT32_MAX) {
        counter_bump(&h->searches_short);
        if (filter && explain)
            explain->redone_exact = true;
        vf_hnsw_scan(h, s, q, k, filter, exclude, out, n_out);
        return 0;
    }
    *n_out = found;
    return 0;
}

/* One search with grow_lock held and scratch s sized for max(ef, k), of
 * the vector record q (see query_prepare). `exclude` is an id never
 * returned (UINT32_MAX for none). */
int vf_hnsw_search_locked(const vf_hnsw *h, vf_scratch *s, const void *q, size_t k, size_t ef,
                          const vf_filter *filter, uint32_t exclude, bool exact, vf_hit *out,
                          size_t *n_out)
{
    return search_planned(h, s, q, k, ef, filter, VF_PLAN_AUTO, NULL, exclude, exact, out, n_out);
}

/* Orders hits by distance, then id. */
static int hit_cmp(const void *a, const void *b)
{
    const vf_hit *x = a, *y = b;
    if (x->distance != y->distance)
        return x->distance < y->distance ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Rescores the n candidates with their originals from src (the exact
 * metric against the caller's query), keeping the code distance of those
 * src cannot give, and writes the k best to out. Returns their count. */
static size_t rerank_exact(const vf_hnsw *h, vf_scratch *s, const float *query,
                           const vf_vec_source *src, vf_hit *cands, size_t n, size_t k, vf_hit *out)
{
    const float qq = h->metric == VF_METRIC_COSINE ? h->kernel(query, query, h->dim) : 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float *x = src->get(src->ctx, cands[i].id, s->orig);
        if (!x)
            continue;
        float d = h->kernel(query, x, h->dim);
        if (h->metric == VF_METRIC_COSINE)
            d = vf_cosine_from_dots(d, qq, h->kernel(x, x, h->dim));
        else if (h->metric == VF_METRIC_DOT)
            d = -d;
        cands[i].distance = d;
    }
    qsort(cands, n, sizeof(vf_hit), hit_cmp);
    size_t got = n < k ? n : k;
    memcpy(out, cands, got * sizeof(vf_hit));
    return got;
}

/* Room for n rerank candidates in s. 0 or -ENOMEM. */
static int cands_reserve(vf_scratch *s, size_t n)
{
    if (s->cands_cap >= n)
        return 0;
    vf_hit *c = vc_realloc(s->cands, n * sizeof(vf_hit));
    if (!c)
        return -ENOMEM;
    s->cands = c;
    s->cands_cap = n;
    return 0;
}

/* Checks a search's arguments, takes grow_lock (read) and a scratch, and
 * runs it (exact: a scan), collecting rerank x k candidates to rescore
 * when the index is INT8 and o->src is given. 0, -EINVAL, -ENOMEM. */
static int search_common(const vf_hnsw *h, const float *query, size_t k, size_t ef,
                         const vf_filter *filter, const vf_search_opts *o, bool exact, vf_hit *out,
                         size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    if (!h || !query || !out || !n_out || k == 0 ||
        (filter && (!filter->accept || (filter->ids && filter->passing == VF_FILTER_UNKNOWN))) ||
        o->rerank > VF_RERANK_MAX || (o->src && !o->src->get) || (unsigned)o->plan > VF_PLAN_EXPAND)
        return -EINVAL;
    if (!vf_hnsw_query_finite(query, h->dim))
        return -EINVAL;
    const bool rescore = h->quant == VF_QUANT_INT8 && o->src != NULL;
    const uint32_t rerank = o->rerank ? o->rerank : h->rerank;
    if (rescore && k > SIZE_MAX / VF_RERANK_MAX)
        return -EINVAL;
    const size_t want = rescore ? k * rerank : k;
    if (ef == 0)
        ef = atomic_load_explicit(&h->ef_search, memory_order_relaxed);
    if (ef < want)
        ef = want;
    /* An untrained INT8 index holds no vector yet. */
    if (h->quant == VF_QUANT_INT8 && !atomic_load_explicit(&h->quant_trained, memory_order_acquire))
        return 0;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    int rc = -ENOMEM;
    /* Room for an EXPAND walk's larger ef (hnsw_plan.c). */
    const bool room = filter && ef <= SIZE_MAX / VF_EXPAND_EF_FACTOR;
    vf_scratch *s = vf_scratch_acquire(h, room ? ef * VF_EXPAND_EF_FACTOR : ef);
    if (s && (!rescore || cands_reserve(s, want) == 0)) {
        size_t got = 0;
        rc = search_planned(h, s, query_prepare(h, s, query), want, ef, filter, o->plan, o->explain,
                            UINT32_MAX, exact, rescore ? s->cands : out, &got);
        if (!rc)
            *n_out = rescore ? rerank_exact(h, s, query, o->src, s->cands, got, k, out) : got;
    }
    if (s)
        vf_scratch_release(h, s);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return rc;
}

int vf_hnsw_search(const vf_hnsw *h, const float *query, size_t k, size_t ef,
                   const vf_filter *filter, vf_hit *out, size_t *n_out)
{
    const vf_search_opts none = {0};
    return search_common(h, query, k, ef, filter, &none, false, out, n_out);
}

int vf_hnsw_search_rerank(const vf_hnsw *h, const float *query, size_t k, size_t ef,
                          uint32_t rerank, const vf_filter *filter, const vf_vec_source *src,
                          vf_hit *out, size_t *n_out)
{
    const vf_search_opts o = {.rerank = rerank, .src = src};
    return search_common(h, query, k, ef, filter, &o, false, out, n_out);
}

int vf_hnsw_search_with(const vf_hnsw *h, const float *query, size_t k, size_t ef,
                        const vf_filter *filter, const vf_search_opts *opts, vf_hit *out,
                        size_t *n_out)
{
    const vf_search_opts none = {0};
    return search_common(h, query, k, ef, filter, opts ? opts : &none, false, out, n_out);
}

int vf_hnsw_search_exact(const vf_hnsw *h, const float *query, size_t k, const vf_filter *filter,
                         vf_hit *out, size_t *n_out)
{
    const vf_search_opts none = {0};
    return search_common(h, query, k, k, filter, &none, true, out, n_out);
}
