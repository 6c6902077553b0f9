/*
 * hnsw_plan.c — the planner of filtered searches: from the number of
 * vectors that pass (the caller's count or a sampled estimate), the
 * index's size and its level-0 degree, which of the plans of
 * vf_filter_plan answers the query (docs/engine.md, "Filters").
 *
 * Invariants
 *   1. The planner reads slot states and calls accept() only; it writes
 *      nothing, so it runs under grow_lock (read) like the search.
 *   2. A forced plan (vf_search_opts.plan) is returned as it is: the search's
 *      fallback keeps the contract of k results whenever k pass.
 */
#include <math.h>

#include "hnsw_internal.h"

/* Ids sampled to estimate a filter's selectivity when the caller can't. */
#define VF_FILTER_SAMPLES 1024u
/* The planner's cost model, in units of one vector scored in a scan
 * (about 100 ns on these 2-core machines), from thread CPU time per query
 * with vecfs-bench-filter --plans exact,walk,expand (docs/engine.md):
 *   EXACT   passing x VF_PLAN_LIST_COST with the filter's id list (only
 *           the listed ids touched: 57-72 ns each on the 331k words, 20 ns
 *           on words50k, whose vectors mostly stay in cache), else
 *           passing + VF_PLAN_CHECK_COST x capacity (every slot checked,
 *           the passing ones scored);
 *   WALK    VF_PLAN_WALK_COST_PER_EF x its ef / share (an unfiltered
 *           walk's work, stretched until it meets ef passing nodes), its
 *           ef taken at VF_PLAN_WALK_PRICE_MARGIN;
 *   EXPAND  VF_PLAN_EXPAND_COST_PER_EF x its ef (bridges read and ids
 *           checked dominate; nearly flat in the share). 90 on words50k,
 *           164 on the 331k words at 1 % (2.1 ms at ef 128): the larger
 *           figure, as the plan only pays on large collections. */
#define VF_PLAN_CHECK_COST 0.03
#define VF_PLAN_LIST_COST 0.5
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
 * measured (about 7 % passing there). Priced at 1.8, a walk looked dearer than exact up
 * to 9 %, where exact scores 3-5x an unfiltered search's vectors. */
#define VF_PLAN_WALK_PRICE_MARGIN 1.25

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

vf_filter_plan vf_hnsw_plan_choose(const vf_hnsw *h, const vf_filter *filter, vf_filter_plan forced,
                                   size_t count, size_t k, size_t ef, size_t *passing)
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
    const double exact = filter->ids ? VF_PLAN_LIST_COST * (double)p
                                     : (double)p + VF_PLAN_CHECK_COST * (double)h->capacity;
    const double walk = VF_PLAN_WALK_COST_PER_EF *
                        (double)walk_ef_at(ef, k, p, count, VF_PLAN_WALK_PRICE_MARGIN) / share;
    double expand = INFINITY;
    if (share * m0 * (m0 + 1.0) >= VF_PLAN_EXPAND_REACH)
        expand = VF_PLAN_EXPAND_COST_PER_EF * (double)(VF_EXPAND_EF_FACTOR * ef);
    if (exact <= walk && exact <= expand)
        return VF_PLAN_EXACT;
    return walk <= expand ? VF_PLAN_WALK : VF_PLAN_EXPAND;
}
