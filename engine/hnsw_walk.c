/*
 * hnsw_walk.c — walks of the graph: a greedy descent through the upper
 * levels and the best-first search of one level, for queries and for the
 * writers that look for a node's neighbours, and the exact scan.
 *
 * Invariants
 *   1. A walk writes no shared memory: it copies a node's list under that
 *      node's sequence lock and scores vectors unlocked.
 *   2. A build walk (q is a node's vector, to be linked) ranks by
 *      dist_build and keeps graph nodes only; a query walk ranks by the
 *      metric and keeps what passes the filter, plus heads that fail it
 *      while twins ride on them.
 *   3. An expanding walk (the EXPAND plan) scores and keeps only nodes a
 *      query walk keeps; a node that fails is read (its list) at most once
 *      per walk, as a bridge, and never scored.
 *   4. The exact scan of a filter with an id list touches the listed ids
 *      only (its cost follows the passing count, not the capacity).
 *   5. A filtered query walk (the WALK plan) expands at most its budget of
 *      failing nodes as an unfiltered walk would (scoring every unvisited
 *      neighbour); past it, a failing node only leads on to its passing
 *      neighbours. Its cost is then bounded by ef and the budget, not by
 *      how much of the query's region fails (labels that follow the data).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hnsw_internal.h"
#include "topk.h"

/* How much of every new neighbour's vector a walk prefetches before it
 * scores the first one. */
#define VF_PREFETCH_BYTES 512u
/* A record at most this long is prefetched whole up front instead: an
 * int8 code record of 784 dims (788 bytes, 13 lines) fetched whole made
 * 24.6-26.6k CPU-time QPS against 18.7-23.8k for its first 512 bytes
 * (mnist784, ef 15, docs/performance.md "int8 at the 0.95 operating
 * point"); a float32 vector of 784 (3,136 bytes) whole overruns the
 * misses in flight (variant 1 of "float32 at high dimension"). */
#define VF_PREFETCH_WHOLE_MAX 1024u

/* The bytes of each new neighbour's record a walk prefetches up front. */
static inline size_t prefetch_first(const vf_hnsw *h)
{
    return h->rec_bytes <= VF_PREFETCH_WHOLE_MAX ? h->rec_bytes : VF_PREFETCH_BYTES;
}

/* Every software prefetch of the walk and the scan asks for L2
 * (prefetcht1), not L1 (prefetcht0). On the CI kind's AMD EPYC (Zen 4,
 * family 25 model 17) a walk issues dozens of lines at once, more than
 * L1 keeps misses in flight, and each prefetcht0 past that stalled the
 * core. Alternating runs, medians: the 331k words at ef 210-220 went
 * from 2,150 to 3,965 QPS (float32) and 3,180 to 4,638 (int8), mnist784
 * float32 at ef 12 from 7,690 to 11,830
 * (docs/performance.md "Prefetch to L2"). */
static inline void prefetch_line(const void *p)
{
    __builtin_prefetch(p, 0, 2);
}

/* Prefetches every cache line that bytes [p, p + len) touch. Records sit
 * at the node size's stride, not on line boundaries: stepping 64 bytes
 * from p missed the last line of a record that straddles one more line
 * than its length needs (an int8 record of 100 dims, 102 bytes, spans 3
 * lines for most nodes, and its correction is in the last). */
static inline void prefetch_lines(const void *p, size_t len)
{
    const uintptr_t end = (uintptr_t)p + len;
    for (uintptr_t line = (uintptr_t)p & ~(uintptr_t)63; line < end; line += 64)
        prefetch_line((const void *)line);
}

/* Prefetches what expanding id at level 0 reads first: its lock word and
 * link list. The walk calls it for the next candidate
 * while it scores the current one's neighbours, whose scoring does not
 * touch those lines (words50k int8, ef 120: 6.2k against 5.6k median
 * CPU-time QPS, docs/performance.md "int8 at the 0.95 operating point"). */
static inline void prefetch_expansion(const vf_hnsw *h, uint32_t id)
{
    prefetch_lines(vf_node_links0(h, id), h->vec_offset);
}

/* Prefetches bytes [from, to) of id's vector record, cut at its end. A
 * record longer than VF_PREFETCH_WHOLE_MAX is fetched 64 bytes at a time
 * from `from`, its last line left to the hardware's streamer, which
 * follows a run that long: covering that line too made the exact scan of
 * mnist784 (3,136-byte records) 5-20 % slower in alternating runs
 * (docs/performance.md "The walk's memory traffic"). */
static inline void vf_prefetch_vector(const vf_hnsw *h, uint32_t id, size_t from, size_t to)
{
    size_t end = to < h->rec_bytes ? to : h->rec_bytes;
    if (from >= end)
        return;
    const uint8_t *v = vf_node_rec(h, id);
    if (h->rec_bytes <= VF_PREFETCH_WHOLE_MAX) {
        prefetch_lines(v + from, end - from);
        return;
    }
    for (size_t off = from; off < end; off += 64)
        prefetch_line(v + off);
}

/* Greedy walk from *cur down to level `stop` + 1 (none when from <= stop:
 * a node above the entry's level) with ef = 1, by
 * dist_build when `build` (q is then a node's vector of squared norm
 * q_sq). It steps only onto graph nodes: a deleted node or a rider has no
 * links to go on with. */
void vf_hnsw_descend(const vf_hnsw *h, vf_scratch *s, const void *q, float q_sq, bool build,
                     unsigned from, unsigned stop, uint32_t *cur, float *cur_d)
{
    assert(from <= VF_HNSW_MAX_LEVEL && stop <= VF_HNSW_MAX_LEVEL);
    assert(*cur < h->capacity && node_level(h, *cur) >= from);
    for (unsigned lev = from; lev > stop; lev--) {
        bool moved = true;
        while (moved) {
            moved = false;
            uint32_t n = links_copy(h, *cur, lev, s->links);
            for (uint32_t j = 0; j < n; j++) {
                uint32_t nb = s->links[j];
                const uint8_t *v = vf_node_rec(h, nb);
                float d = build ? dist_build(h, q, q_sq, v, node_sq(h, nb)) : dist_vec(h, q, v);
                if (d < *cur_d && graph_node(h, nb)) {
                    *cur_d = d;
                    *cur = nb;
                    moved = true;
                }
            }
        }
    }
}

/* Whether a walk keeps id among its results: a build walk keeps graph
 * nodes only (a rider is never linked to); a search also keeps a head
 * that fails the filter while twins ride on it, for ring_expand to try
 * them. */
static bool walk_keeps(const vf_hnsw *h, uint32_t id, const vf_filter *filter, uint32_t exclude,
                       bool build)
{
    if (build)
        return result_ok(h, id, NULL, exclude) && graph_node(h, id);
    if (result_ok(h, id, filter, exclude))
        return true;
    return slot_state(h, id) == VF_SLOT_PRESENT &&
           atomic_load_explicit(&h->twin_next[id], memory_order_relaxed) != id;
}

/* Copies c's unvisited neighbours at lev to s->links, marking them
 * visited; with `kept_only` (the filter of a walk past its failing budget,
 * c a node it does not keep), only those the walk keeps: a failing
 * neighbour of a failing node is then neither scored nor walked from
 * here, and, left unmarked, stays free to be reached from a passing node.
 * Returns their count. */
static uint32_t gather_direct(const vf_hnsw *h, vf_scratch *s, uint32_t c, unsigned lev,
                              const vf_filter *kept_only, uint32_t exclude)
{
    uint32_t n = links_copy(h, c, lev, s->links);
    uint32_t fresh = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint32_t nb = s->links[j];
        if (visited_has(s, nb) || (kept_only && !walk_keeps(h, nb, kept_only, exclude, false)))
            continue;
        visited_test_set(s, nb);
        s->links[fresh++] = nb;
    }
    return fresh;
}

/* The nodes a filtered walk over passing nodes goes on to from c (level
 * 0), written to s->links (room for VF_GATHER_ROOM): c's unvisited neighbours the walk
 * keeps, then, through each neighbour it does not keep (a bridge, read once
 * per walk), that neighbour's unvisited neighbours the walk keeps, until
 * the room is full. Every node gathered is marked visited; a bridge left unread
 * when the room runs out is not, so a later step may still cross it.
 * Returns the count. */
static uint32_t gather_two_hop(const vf_hnsw *h, vf_scratch *s, uint32_t c, const vf_filter *filter)
{
    const uint32_t room = (uint32_t)VF_GATHER_ROOM(h);
    uint32_t *bridges = s->links2;
    uint32_t n = links_copy(h, c, 0, bridges);
    uint32_t got = 0, n_bridges = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint32_t nb = bridges[j];
        if (visited_has(s, nb))
            continue;
        if (walk_keeps(h, nb, filter, UINT32_MAX, false)) {
            visited_test_set(s, nb);
            s->links[got++] = nb;
        } else {
            bridges[n_bridges++] = nb; /* j >= n_bridges: compacts in place */
        }
    }
    for (uint32_t b = 0; b < n_bridges && got < room; b++) {
        uint32_t via = bridges[b];
        if (visited_test_set(s, via))
            continue;
        uint32_t m = links_copy(h, via, 0, s->bridge);
        for (uint32_t j = 0; j < m && got < room; j++) {
            uint32_t nb = s->bridge[j];
            if (visited_has(s, nb) || !walk_keeps(h, nb, filter, UINT32_MAX, false))
                continue;
            visited_test_set(s, nb);
            s->links[got++] = nb;
        }
    }
    return got;
}

/* How a walk of level 0 treats the filter beyond keeping what passes. */
typedef struct walk_filtered {
    bool expand;           /* score and walk kept nodes only (gather_two_hop) */
    size_t failing_budget; /* failing nodes expanded in full; SIZE_MAX: all */
    const vf_hit *seeds;   /* passing nodes to start from besides ep */
    size_t n_seeds;
    bool capped; /* out: the budget ran out */
} walk_filtered;

/* Best-first search of level lev from ep, keeping the ef nearest
 * acceptable nodes in res (a max-heap over s->res). Nodes that are not
 * acceptable (deleted, filtered out, `exclude`) are walked through but
 * never kept; how, for a filtered query walk of level 0, says `fw` (NULL:
 * every one in full): with `expand` only kept nodes are scored and walked,
 * reached through gather_two_hop; else past `failing_budget` of them a
 * failing node leads on to its kept neighbours only (gather_direct). A
 * `build` walk (q is a node's vector of squared norm q_sq, to be linked)
 * ranks by dist_build and keeps graph nodes only. Returns 0, or -ENOMEM
 * when a query walk's candidate queue cannot grow; a build walk never
 * fails. */
static int walk_best_first(const vf_hnsw *h, vf_scratch *s, const void *q, uint32_t ep, float ep_d,
                           size_t ef, unsigned lev, const vf_filter *filter, uint32_t exclude,
                           bool build, float q_sq, walk_filtered *fw, vf_heap *res)
{
    const bool expand = fw && fw->expand;
    assert(ef >= 1 && ef <= s->res_cap);
    assert(s->visited_cap >= h->capacity);
    assert(ep < h->capacity && lev <= node_level(h, ep));
    assert(!build || filter == NULL);
    assert(!fw || (filter != NULL && lev == 0 && !build));
    vf_heap cand;
    const size_t first = prefetch_first(h);
    vf_visited_begin(s);
    vf_heap_init(&cand, s->cand, s->cand_cap);
    vf_heap_init(res, s->res, ef);

    /* With nothing deleted, filtered or excluded every reachable node is a
     * result: skip the per-node state check. */
    const bool all_ok = !filter && exclude == UINT32_MAX &&
                        atomic_load_explicit(&h->deleted, memory_order_relaxed) == 0;
    /* `exclude` is not walked through either: a tuning query that is a
     * stored vector must not shortcut through that vector's own links. */
    if (exclude < h->capacity)
        visited_test_set(s, exclude);
    visited_test_set(s, ep);
    vf_heap_push(&cand, ep_d, ep, -1);
    if (all_ok || walk_keeps(h, ep, filter, exclude, build))
        vf_heap_push(res, ep_d, ep, +1);
    /* Seeds are candidates only: they become results when the walk reaches
     * them from a neighbour, so a walk that finds too few passing nodes
     * still comes back short and is redone exactly (hnsw_search.c). */
    for (size_t i = 0; fw && i < fw->n_seeds; i++) {
        if (cand.len == cand.cap && vf_cand_grow(s, &cand))
            return -ENOMEM;
        vf_heap_push(&cand, fw->seeds[i].distance, fw->seeds[i].id, -1);
    }
    size_t failing_left = fw ? fw->failing_budget : SIZE_MAX;
    float bound = res->len == ef ? res->items[0].distance : INFINITY;

    /* Candidates tied with the farthest result may still lead nearer (a
     * query beside a cloud of twins fills res with the cloud, and only
     * their other links lead on); walking all of them would cost the whole
     * cloud, so at most ef such are expanded. */
    size_t ties_left = ef;
    while (cand.len) {
        vf_hit c = cand.items[0];
        if (c.distance > bound || (c.distance == bound && res->len == ef && ties_left-- == 0))
            break;
        vf_heap_pop(&cand, -1);
        if (lev == 0 && cand.len)
            prefetch_expansion(h, cand.items[0].id);
        /* Gather the unvisited neighbours first and prefetch their vectors,
         * so their cache misses overlap instead of stalling one by one. */
        uint32_t fresh;
        if (expand) {
            fresh = gather_two_hop(h, s, c.id, filter);
        } else if (failing_left != SIZE_MAX && !walk_keeps(h, c.id, filter, exclude, false)) {
            if (failing_left == 0) {
                fw->capped = true;
                fresh = gather_direct(h, s, c.id, 0, filter, exclude);
            } else {
                failing_left--;
                fresh = gather_direct(h, s, c.id, lev, NULL, exclude);
            }
        } else {
            fresh = gather_direct(h, s, c.id, lev, NULL, exclude);
        }
        for (uint32_t j = 0; j < fresh; j++)
            vf_prefetch_vector(h, s->links[j], 0, first);
        for (uint32_t j = 0; j < fresh; j++) {
            uint32_t nb = s->links[j];
            const uint8_t *v = vf_node_rec(h, nb);
            /* The rest of a longer vector (784 floats are 49 lines) is
             * fetched one neighbour ahead, while this one is scored:
             * all of every neighbour at once would overrun the misses the
             * core can keep in flight, and the hardware streamer alone
             * starts too late (measured on mnist784, docs/performance.md). */
            if (j + 1 < fresh)
                vf_prefetch_vector(h, s->links[j + 1], first, SIZE_MAX);
            float d = build ? dist_build(h, q, q_sq, v, node_sq(h, nb)) : dist_vec(h, q, v);
            if (res->len < ef || d < bound) {
                /* A writer calls this past the point where it could still
                 * fail cleanly: when the queue cannot grow, the node is
                 * kept as a result but not expanded (a shorter walk). */
                if (cand.len < cand.cap || vf_cand_grow(s, &cand) == 0)
                    vf_heap_push(&cand, d, nb, -1);
                else if (!build)
                    return -ENOMEM;
                if (all_ok || expand || walk_keeps(h, nb, filter, exclude, build)) {
                    vf_topk_offer(res, d, nb);
                    if (res->len == ef)
                        bound = res->items[0].distance;
                }
            }
        }
    }
    return 0;
}

int vf_hnsw_walk_layer(const vf_hnsw *h, vf_scratch *s, const void *q, uint32_t ep, float ep_d,
                       size_t ef, unsigned lev, const vf_filter *filter, uint32_t exclude,
                       bool build, float q_sq, vf_heap *res)
{
    return walk_best_first(h, s, q, ep, ep_d, ef, lev, filter, exclude, build, q_sq, NULL, res);
}

int vf_hnsw_walk_filtered(const vf_hnsw *h, vf_scratch *s, const void *q, uint32_t ep, float ep_d,
                          size_t ef, const vf_filter *filter, uint32_t exclude,
                          size_t failing_budget, const vf_hit *seeds, size_t n_seeds, bool *capped,
                          vf_heap *res)
{
    assert(filter != NULL && failing_budget != SIZE_MAX);
    walk_filtered fw = {.failing_budget = failing_budget, .seeds = seeds, .n_seeds = n_seeds};
    int rc = walk_best_first(h, s, q, ep, ep_d, ef, 0, filter, exclude, false, 0.0f, &fw, res);
    *capped = fw.capped;
    return rc;
}

/* The EXPAND plan's walk of level 0 (see walk_best_first). */
int vf_hnsw_walk_expand(const vf_hnsw *h, vf_scratch *s, const void *q, uint32_t ep, float ep_d,
                        size_t ef, const vf_filter *filter, vf_heap *res)
{
    assert(filter != NULL);
    walk_filtered fw = {.expand = true, .failing_budget = SIZE_MAX};
    return walk_best_first(h, s, q, ep, ep_d, ef, 0, filter, UINT32_MAX, false, 0.0f, &fw, res);
}

/* How far ahead the scan of a filter's id list fetches vectors: the ids
 * are scattered, so each vector is misses of its own, and the scan runs
 * as fast as it keeps enough of them in flight. In bytes of records, at
 * least VF_LIST_PREFETCH_MIN ids: on the 331k words (400-byte records) 16
 * ids ahead scanned 10 % of them in 834 us mean against 1,070 at 4 ids,
 * 918 at 8 and 882 at 32; on mnist784 (3,136 bytes) 16 ids ahead was
 * slower than 4 (three alternating rounds each, docs/performance.md "The
 * exact scan's prefetch distance"). */
#define VF_LIST_PREFETCH_BYTES 6144u
#define VF_LIST_PREFETCH_MIN 4u

/* The listed ids ahead of the one scored whose vectors are fetched. */
static inline size_t list_prefetch_ahead(const vf_hnsw *h)
{
    const size_t ids = VF_LIST_PREFETCH_BYTES / h->rec_bytes;
    return ids > VF_LIST_PREFETCH_MIN ? ids : VF_LIST_PREFETCH_MIN;
}

/* Exact scan (over the index's records: codes for INT8) of present slots
 * but `exclude`: of the filter's id list when it has one, else of every
 * slot. q is a vector record, normalized for cosine. */
void vf_hnsw_scan(const vf_hnsw *h, vf_scratch *s, const void *q, size_t k, const vf_filter *filter,
                  uint32_t exclude, vf_hit *out, size_t *n_out)
{
    assert(k >= 1 && k <= s->res_cap);
    vf_heap best;
    vf_heap_init(&best, s->res, k);
    if (filter && filter->ids) {
        const uint32_t *ids = filter->ids;
        const size_t n = filter->passing, ahead = list_prefetch_ahead(h);
        for (size_t i = 0; i < ahead && i < n; i++)
            if (ids[i] < h->capacity)
                vf_prefetch_vector(h, ids[i], 0, SIZE_MAX);
        for (size_t i = 0; i < n; i++) {
            if (i + ahead < n && ids[i + ahead] < h->capacity)
                vf_prefetch_vector(h, ids[i + ahead], 0, SIZE_MAX);
            if (ids[i] < h->capacity && result_ok(h, ids[i], filter, exclude))
                vf_topk_offer(&best, dist_vec(h, q, vf_node_rec(h, ids[i])), ids[i]);
        }
    } else {
        for (size_t i = 0; i < h->capacity; i++) {
            uint32_t id = (uint32_t)i;
            if (!result_ok(h, id, filter, exclude))
                continue;
            vf_topk_offer(&best, dist_vec(h, q, vf_node_rec(h, id)), id);
        }
    }
    *n_out = vf_topk_drain_sorted(&best, out);
}
