/*
 * hnsw_seed.c — where a filtered walk of level 0 starts besides the end of
 * the descent: the passing nodes nearest the query among a sample of the
 * passing set, scored exactly.
 *
 * Why: the descent through the upper levels ignores the filter and ends
 * near the query whatever passes there. With labels that follow the data
 * (cluster-correlated) that region may hold no passing node at all, and a
 * walk that only starts there must cross it to find any; a walk whose
 * failing expansions are budgeted (hnsw_walk.c) may not be allowed to. The
 * seeds put passing nodes near the query into the walk from the start, in
 * the passing regions the walk then follows (docs/performance.md,
 * "Filtered p99 at 10 %").
 *
 * Invariants
 *   1. Read only: slot states and vectors; accept() is called; nothing is
 *      written but the caller's output, so it runs under grow_lock (read)
 *      like the walks.
 *   2. A seed passes the filter and is a present graph node (a rider has
 *      no links to walk on).
 *   3. Bounded cost: at most min(ef, VF_SEED_SAMPLE) vectors scored and
 *      about VF_SEED_PROBES accept() calls, whatever the index's size.
 */
#include "hnsw_internal.h"
#include "topk.h"

/* Passing vectors scored to find the seeds: the search's ef, at most 256.
 * 256 are 6.5 % of the distances of an unfiltered search at ef 256 on the
 * 331k words, and hit each of the ~100 clusters that pass at 10 % two or
 * three times; a fixed 256 at ef 64 on mnist784 (60k x 784) were 38 % of
 * an unfiltered search's 669 distances (docs/performance.md). */
#define VF_SEED_SAMPLE 256u
/* Slots whose filter is checked to sample a filter without an id list. */
#define VF_SEED_PROBES 8192u

/* Offers id (a passing candidate) to the seeds heap. */
static void seed_offer(const vf_hnsw *h, const void *q, vf_heap *best, uint32_t id)
{
    if (id >= h->capacity || !graph_node(h, id))
        return;
    vf_topk_offer(best, dist_vec(h, q, vf_node_rec(h, id)), id);
}

size_t vf_hnsw_seeds(const vf_hnsw *h, const void *q, const vf_filter *filter, size_t passing,
                     size_t ef, vf_hit *out, size_t cap)
{
    assert(filter != NULL && filter->accept != NULL && cap >= 1 && ef >= 1);
    const size_t sample = ef < VF_SEED_SAMPLE ? ef : VF_SEED_SAMPLE;
    vf_heap best;
    vf_heap_init(&best, out, cap);
    if (filter->ids) {
        /* Evenly spaced over the sorted list: spread over the id space. */
        const size_t n = filter->passing;
        const size_t stride = n > sample ? n / sample : 1;
        for (size_t i = stride / 2, taken = 0; i < n && taken < sample; i += stride, taken++) {
            uint32_t id = filter->ids[i];
            if (id < h->capacity && result_ok(h, id, filter, UINT32_MAX))
                seed_offer(h, q, &best, id);
        }
        return best.len;
    }
    const size_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
    /* Probes expected to meet `sample` passing slots, bounded. */
    double want = passing ? (double)sample * (double)count / (double)passing : 0.0;
    size_t probes = want < VF_SEED_PROBES ? (size_t)want + 1 : VF_SEED_PROBES;
    size_t stride = h->capacity / probes;
    if (stride == 0)
        stride = 1;
    size_t scored = 0;
    for (size_t i = stride / 2; i < h->capacity && scored < sample; i += stride) {
        if (!result_ok(h, (uint32_t)i, filter, UINT32_MAX))
            continue;
        scored++;
        seed_offer(h, q, &best, (uint32_t)i);
    }
    return best.len;
}
