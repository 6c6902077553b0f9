/*
 * hnsw_plan.c — the planner of filtered searches: from the number of
 * vectors that pass (the caller's count or a sampled estimate), the
 * index's size, its level-0 degree and record size, and how often the
 * passing nodes' neighbours pass too, which of the plans of
 * vf_filter_plan answers the query (docs/engine.md, "Filters").
 *
 * Invariants
 *   1. The planner reads slot states and level-0 link lists (into the
 *      caller's scratch) and calls accept() only; it writes no shared
 *      memory, so it runs under grow_lock (read) like the search.
 *   2. A forced plan (vf_search_opts.plan) is returned as it is: the search's
 *      fallback keeps the contract of k results whenever k pass.
 *   3. Plans are priced by their slow queries, not their mean (the
 *      issue's promise is a p99): a walk's p99 grows with the filter's
 *      affinity with the graph (filter_affinity), the exact scan's does
 *      not.
 */
#include <math.h>

#include "hnsw_internal.h"

/* Ids sampled to estimate a filter's selectivity when the caller can't. */
#define VF_FILTER_SAMPLES 1024u
/* The planner's cost model, in units of one vector scored in a scan
 * (about 100 ns on these 2-core machines), from thread CPU time per query
 * with vecfs-bench-filter --plans exact,walk,expand (docs/engine.md):
 *   EXACT   passing x list_cost(record bytes) with the filter's id list
 *           (only the listed ids touched), else passing +
 *           VF_PLAN_CHECK_COST x capacity (every slot checked, the passing
 *           ones scored);
 *   WALK    VF_PLAN_WALK_COST_PER_EF x its ef / share (an unfiltered
 *           walk's work, stretched until it meets ef passing nodes), its
 *           ef taken at VF_PLAN_WALK_PRICE_MARGIN;
 *   EXPAND  VF_PLAN_EXPAND_COST_PER_EF x its ef (bridges read and ids
 *           checked dominate; nearly flat in the share). 90 on words50k,
 *           164 on the 331k words at 1 % (2.1 ms at ef 128): the larger
 *           figure, as the plan only pays on large collections. */
#define VF_PLAN_CHECK_COST 0.03
/* A listed id scanned, in units of a WALK's price: a fixed part and a part
 * per byte of its record, which the scan streams. From p99s at 10 %
 * (invariant 3; per-query minimum of 3 passes over 500 queries,
 * docs/performance.md "Filtered p99 at 10 %, priced by the tail"): the
 * 331k words (400-byte records) 32 ns per listed id (p99 of 994-1,210 us
 * over 33,200 ids) against 98-105 ns per unit of a random-label walk's
 * price at ef 160-320 (0.32); mnist784 (3,136 bytes) 106-117 ns against
 * 145-192 (0.55-0.81, taken at 0.73). Since the scan fetches 6 KiB of
 * records ahead (hnsw_walk.c), the words' p99 is 820-933 us (25-28 ns an
 * id: 0.26, the two meeting at about ef 215) and mnist784's is unchanged
 * (docs/performance.md "The exact scan's prefetch distance"). Was 0.5 at
 * every size (57-72 ns measured on the words, by mean, on a busier
 * machine). */
#define VF_PLAN_LIST_COST_BASE 0.19
#define VF_PLAN_LIST_COST_PER_BYTE 0.00017
#define VF_PLAN_WALK_COST_PER_EF 10.0
#define VF_PLAN_EXPAND_COST_PER_EF 164.0
/* Below this many passing vectors expected within two hops of a node
 * (share x m0 x (m0 + 1)), the passing set is too sparse for EXPAND to
 * stay connected (words50k at 0.3 %, 3.2 expected: recall 0.70). */
#define VF_PLAN_EXPAND_REACH 6.0
/* A filtered walk's ef over ef x sqrt(share) (vf_hnsw_walk_ef): 1.8 with
 * the failing budget below; 1.25 before it, whose walks lost no recall to
 * a budget (331k words at 10 %, ef 256: recall 0.955-0.970 over the four
 * label cases, docs/performance.md "Filtered p99 at 10 %"). */
#define VF_WALK_EF_MARGIN 1.8
/* The failing nodes a WALK expands in full, per unit of its ef over the
 * share (an unbudgeted walk expands about 1 / share per unit: it meets
 * one passing node in 1 / share). 0.3 kept recall@10 >= 0.955 on the 331k
 * words at 10 % with random and cluster-correlated labels; 0.5 cost 0.7x
 * more counted work for +0.006 (docs/performance.md "Filtered p99 at
 * 10 %", where timed runs show the gain for cluster labels only). */
#define VF_WALK_FAILING_BUDGET 0.3

/* The planner prices a WALK at the ef of this margin, the one the walk ran
 * with before its failing budget: the budgeted walk at VF_WALK_EF_MARGIN
 * did less counted work (vectors scored, lists read; not the filter
 * checks, which it adds) than that one at 9-20 % passing, about as much at 30 %
 * and up to 4 % more at 50 % (random labels; less at every share with
 * cluster labels; 331k words, ef 256, docs/performance.md "Filtered p99
 * at 10 %"), so the choice between EXACT and WALK stays where it was
 * measured (about 7 % passing there, with the id-list cost of 0.5 of that
 * time). Priced at 1.8, a walk looked dearer than exact up
 * to 9 %, where exact scores 3-5x an unfiltered search's vectors. */
#define VF_PLAN_WALK_PRICE_MARGIN 1.25

/* Passing nodes whose level-0 neighbours the planner checks to measure
 * the filter's affinity with the graph (filter_affinity). */
#define VF_PLAN_AFFINITY_NODES 16u
/* A WALK's price grows by this much per unit of its filter's excess
 * affinity ((affinity - share) / (1 - share): about 0 for labels drawn at
 * random, 1 when every neighbour of a passing node passes), as its p99
 * does. At 10 % passing with cluster-correlated labels (16 nodes): the
 * 331k words 0.21 excess, walk p99 1.74-1.87x its mean against 1.2x with
 * random labels (would call for 2.8); mnist784 0.36, 1.55-1.68x against
 * 1.42x (0.4). 1.5 sends the words' cluster filter to EXACT from ef 224
 * (10 % above the scan's price) and keeps mnist784's walking at ef 64
 * (13 % below), where the walk's p99 (478-518 us) beats the scan's
 * (705-780); 2 sent it to the scan (docs/performance.md "Filtered p99 at
 * 10 %, priced by the tail"). */
#define VF_PLAN_AFFINITY_WALK_COST 1.5

/* ef x margin x sqrt(share), within [k, ef]. */
static size_t walk_ef_at(size_t ef, size_t k, size_t passing, size_t count, double margin)
{
    const double share = passing < count ? (double)passing / (double)count : 1.0;
    size_t e = (size_t)ceil((double)ef * margin * sqrt(share));
    return e < k ? k : e > ef ? ef : e;
}

size_t vf_hnsw_walk_ef(size_t ef, size_t k, size_t passing, size_t count)
{
    assert(k >= 1 && k <= ef && count > 0);
    /* A filtered walk keeps ef passing nodes, so it searches as far as
     * the (ef / share)-th node of all: at the caller's ef it beats the
     * unfiltered recall of that ef, and pays 1/share for it. ef x
     * sqrt(share) met the unfiltered recall of ef within 0.003 on words50k
     * at 5-50 %, random and cluster-correlated labels (docs/engine.md,
     * "Filters"); VF_WALK_EF_MARGIN keeps it above. */
    return walk_ef_at(ef, k, passing, count, VF_WALK_EF_MARGIN);
}

size_t vf_hnsw_walk_failing_budget(size_t walk_ef, size_t passing, size_t count)
{
    assert(count > 0);
    const double share = passing > 0 && passing < count ? (double)passing / (double)count : 1.0;
    return (size_t)ceil(VF_WALK_FAILING_BUDGET * (double)walk_ef / share);
}

const char *vf_filter_plan_name(vf_filter_plan plan)
{
    static const char *const names[] = {"auto", "exact", "walk", "expand"};
    if ((unsigned)plan >= sizeof(names) / sizeof(names[0]))
        return "?";
    return names[plan];
}

/* Present slots that pass, from a strided sample scaled to count. */
static size_t estimate_passing(const vf_hnsw *h, const vf_filter *filter, size_t count)
{
    assert(filter != NULL && filter->accept != NULL);
    size_t stride = h->capacity / VF_FILTER_SAMPLES;
    if (stride == 0)
        stride = 1;
    size_t seen = 0, passed = 0;
    for (size_t i = 0; i < h->capacity && seen < VF_FILTER_SAMPLES; i += stride) {
        if (slot_state(h, (uint32_t)i) != VF_SLOT_PRESENT)
            continue;
        seen++;
        passed += filter->accept(filter->ctx, (uint32_t)i);
    }
    if (seen == 0)
        return count;
    return (size_t)((double)passed / (double)seen * (double)count + 0.5);
}

/* Adds to *seen the level-0 neighbours of id (when it is a passing graph
 * node) and to *passed those that pass. */
static void affinity_add(const vf_hnsw *h, vf_scratch *s, const vf_filter *filter, uint32_t id,
                         size_t *seen, size_t *passed)
{
    if (id >= h->capacity || !graph_node(h, id) || !filter->accept(filter->ctx, id))
        return;
    uint32_t n = links_copy(h, id, 0, s->links);
    for (uint32_t j = 0; j < n; j++)
        *passed += result_ok(h, s->links[j], filter, UINT32_MAX);
    *seen += n;
}

/* The share of passing nodes' level-0 neighbours that pass, over about
 * VF_PLAN_AFFINITY_NODES passing nodes spread over the id space (from the
 * filter's id list, else among VF_FILTER_SAMPLES slots probed at a
 * stride); `share` when none is found. About `share` for labels drawn at
 * random; more when they follow the data, as the graph links near
 * neighbours. The same filter gets the same figure for every query. */
static double filter_affinity(const vf_hnsw *h, vf_scratch *s, const vf_filter *filter,
                              double share)
{
    size_t seen = 0, passed = 0, taken = 0;
    if (filter->ids) {
        const size_t n = filter->passing;
        const size_t stride = n > VF_PLAN_AFFINITY_NODES ? n / VF_PLAN_AFFINITY_NODES : 1;
        for (size_t i = stride / 2; i < n && taken < VF_PLAN_AFFINITY_NODES; i += stride, taken++)
            affinity_add(h, s, filter, filter->ids[i], &seen, &passed);
    } else {
        size_t stride = h->capacity / VF_FILTER_SAMPLES;
        if (stride == 0)
            stride = 1;
        for (size_t i = stride / 2; i < h->capacity && taken < VF_PLAN_AFFINITY_NODES;
             i += stride) {
            const size_t before = seen;
            affinity_add(h, s, filter, (uint32_t)i, &seen, &passed);
            taken += seen > before;
        }
    }
    return seen ? (double)passed / (double)seen : share;
}

vf_filter_plan vf_hnsw_plan_choose(const vf_hnsw *h, vf_scratch *s, const vf_filter *filter,
                                   vf_filter_plan forced, size_t count, size_t k, size_t ef,
                                   size_t *passing)
{
    assert(filter != NULL && count > 0);
    size_t p = filter->passing;
    if (p == VF_FILTER_UNKNOWN)
        p = estimate_passing(h, filter, count);
    if (p > count)
        p = count;
    *passing = p;
    if (forced != VF_PLAN_AUTO)
        return forced;
    /* A walk would have to find every passing vector anyway. */
    if (p <= ef)
        return VF_PLAN_EXACT;
    const double share = (double)p / (double)count, m0 = h->m0;
    const double list_cost =
        VF_PLAN_LIST_COST_BASE + VF_PLAN_LIST_COST_PER_BYTE * (double)h->rec_bytes;
    const double exact =
        filter->ids ? list_cost * (double)p : (double)p + VF_PLAN_CHECK_COST * (double)h->capacity;
    double walk = VF_PLAN_WALK_COST_PER_EF *
                  (double)walk_ef_at(ef, k, p, count, VF_PLAN_WALK_PRICE_MARGIN) / share;
    /* Measured only where it can change the choice (16 lists read). */
    if (walk < exact && walk * (1.0 + VF_PLAN_AFFINITY_WALK_COST) >= exact && share < 1.0) {
        const double excess = (filter_affinity(h, s, filter, share) - share) / (1.0 - share);
        if (excess > 0.0)
            walk *= 1.0 + VF_PLAN_AFFINITY_WALK_COST * excess;
    }
    double expand = INFINITY;
    if (share * m0 * (m0 + 1.0) >= VF_PLAN_EXPAND_REACH)
        expand = VF_PLAN_EXPAND_COST_PER_EF * (double)(VF_EXPAND_EF_FACTOR * ef);
    if (exact <= walk && exact <= expand)
        return VF_PLAN_EXACT;
    return walk <= expand ? VF_PLAN_WALK : VF_PLAN_EXPAND;
}
