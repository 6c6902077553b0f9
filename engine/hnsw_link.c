/*
 * hnsw_link.c — choosing a node's neighbours and writing link lists, and
 * the rules that keep every vector reachable by construction.
 *
 * Reachability
 *   Nodes are ordered by age: a is older than b when its level is higher,
 *   or equal and its id lower. The order never changes (levels are kept
 *   for the life of a slot), it survives a snapshot, and the entry point
 *   is always the oldest present graph node.
 *   a. Every present graph node but the entry has an anchor: an older
 *      node whose level-0 link to it is never dropped while it anchors
 *      (list_set keeps it in place of another; a delete or update of the
 *      anchor hands the node on, c). Following anchors strictly descends
 *      the order, so it ends at the entry, and the entry reaches every
 *      node. The anchor is the nearest older node the insert chose, so
 *      the protected way in is also the one a nearby query walks.
 *   b. Every insert or update ends with a link into the new node from one
 *      of the neighbours it chose, forced in place of a link that anchors
 *      nothing when the heuristic would prune it (an outlier, or a vector
 *      moved far from where it was), and with an anchor.
 *   c. A node whose anchor is deleted or updated (its lists emptied) is
 *      linked in again from the nearest older nodes, or from the entry,
 *      before the operation returns ("rehomed"); within a budget an
 *      anchoring link may be displaced when every older list nearby is
 *      full of them, and past it the node is counted as stranded.
 *   d. The graph is built with the query's distance, except for dot,
 *      which is not a metric (its heuristic left small-norm vectors with
 *      no way in, and its lists all pointing at a few large ones): there
 *      the graph is the l2 graph of the vectors lifted onto a sphere, x ->
 *      (x, sqrt(M - |x|^2)), M the largest squared norm so far, where l2
 *      ranks the lifted points as -dot ranks them for a query (q, 0)
 *      (Bachrach et al., 2014). Searches then walk it ranking by -dot.
 *   Ties between equal distances in a list are broken by a hash salted
 *   with the list's owner: broken by id, every list kept the same oldest
 *   nodes among equals.
 *
 * Writers hold the op lock of the node they insert or remove and one node
 * lock at a time while they rewrite a list; anchors change only under the
 * anchoring node's lock.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"
#include "topk.h"

/* A tie-break that differs from list to list (see "Twins"). */
static inline uint32_t tie_key(uint32_t id, uint32_t salt)
{
    uint32_t x = id ^ (salt * 0x9E3779B9u);
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

/* Whether a sorts before b: nearer, or tied and first in salt's order. */
static inline bool hit_before(vf_hit a, vf_hit b, uint32_t salt)
{
    if (a.distance != b.distance)
        return a.distance < b.distance;
    return tie_key(a.id, salt) < tie_key(b.id, salt);
}

/* Sorts the candidates of one list (at most 2 * m0 + 2) nearest first,
 * ties in the order of the list owner `salt`. */
static void hits_sort(vf_hit *hits, size_t n, uint32_t salt)
{
    for (size_t i = 1; i < n; i++) {
        vf_hit x = hits[i];
        size_t j = i;
        for (; j > 0 && hit_before(x, hits[j - 1], salt); j--)
            hits[j] = hits[j - 1];
        hits[j] = x;
    }
}

/* How much nearer a kept candidate must be to the next one than the base
 * is for that one to be pruned (distances as dist_build ranks them:
 * squared l2, 1 - cos, or the lifted dot's squared l2). Above 1 a node
 * keeps a few more links to neighbours that lie nearly behind a kept one,
 * the relaxed rule of Vamana (DiskANN); walks then find the same recall
 * at a lower ef. At 1.1 the 331k words reach recall 0.95 at ef 220
 * instead of 260 (int8, 5.4k against 4.7k QPS) and mnist784 at ef 12
 * instead of 15, for 5-10 % more build time there (19-29 % on words50k);
 * 1.05-1.15 were alike, 1.2 and 1.3 lost again (docs/performance.md "A
 * relaxed neighbour rule"). */
#define VF_PRUNE_ALPHA 1.1f

/* The paper's neighbour heuristic for `base`, relaxed by VF_PRUNE_ALPHA:
 * from candidates sorted nearest-first, keep a candidate unless a kept one
 * is nearer to it, by VF_PRUNE_ALPHA, than the base is, up to `max`.
 * Spreads links across directions instead of clustering them. Returns the
 * number kept in out. */
static size_t select_neighbours(const vf_hnsw *h, const vf_hit *cands, size_t n, size_t max,
                                vf_hit *out)
{
    assert(max <= h->m0); /* out has room for 2 * m0 + 2 */
    /* When every candidate fits, pruning would only drop links: in a small
     * or sparse neighbourhood that can leave a node with no way in. */
    if (n <= max) {
        memcpy(out, cands, n * sizeof(vf_hit));
        return n;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < max; i++) {
        bool diverse = true;
        for (size_t j = 0; j < kept && diverse; j++)
            diverse = VF_PRUNE_ALPHA * dist_ids(h, cands[i].id, out[j].id) >= cands[i].distance;
        if (diverse)
            out[kept++] = cands[i];
    }
    return kept;
}

/* Writes the n hits as the list's links and count (the owner's node lock
 * held). */
static void list_write(uint32_t *list, const vf_hit *hits, size_t n)
{
    for (size_t i = 0; i < n; i++)
        word_set(&list[1 + i], hits[i].id);
    word_set(&list[0], (uint32_t)n);
}

/* Whether from may drop its level-0 link to t: not while that link is
 * t's anchor and t is a live graph node. */
static inline bool link_release(const vf_hnsw *h, uint32_t from, uint32_t t)
{
    return anchor_get(h, t) != from || !graph_node(h, t);
}

/* Makes from -> t (in from's list, from's node lock held) t's anchor when
 * from is older. */
static inline void anchor_set(const vf_hnsw *h, uint32_t from, uint32_t t)
{
    if (older(h, from, t))
        atomic_store_explicit(&h->anchor[t], from, memory_order_release);
}

/* Records t as an orphan of this operation. Writers reserve room first
 * (vf_scratch_acquire_write); past the reserve the list grows, and a node
 * that finds no room is counted as stranded, for vf_hnsw_reconnect. */
void vf_hnsw_orphan_push(const vf_hnsw *h, vf_scratch *s, uint32_t t)
{
    if (s->orphans_len == s->orphans_cap) {
        size_t cap = s->orphans_cap ? 2 * s->orphans_cap : 64;
        uint32_t *o = vc_realloc(s->orphans, cap * sizeof(uint32_t));
        if (!o) {
            counter_bump(&h->stranded);
            return;
        }
        s->orphans = o;
        s->orphans_cap = cap;
    }
    s->orphans[s->orphans_len++] = t;
}

/* Drops the link from -> t whatever it is: if it was t's anchor, a live
 * t becomes an orphan of this operation. */
static void link_drop(const vf_hnsw *h, vf_scratch *s, uint32_t from, uint32_t t)
{
    uint32_t was = from;
    if (atomic_compare_exchange_strong_explicit(&h->anchor[t], &was, VF_NO_ANCHOR,
                                                memory_order_acq_rel, memory_order_relaxed) &&
        graph_node(h, t))
        vf_hnsw_orphan_push(h, s, t);
}

/* Replaces owner's list at lev (list, from list_read; caller holds
 * owner's node lock and commits the list) with the n hits in `want` (room
 * for m0), keeping anchors: an old level-0 link that anchors its target
 * stays, in place of the farthest wanted link that can go; `doomed` (or
 * UINT32_MAX) is dropped whatever it costs. */
static void list_set(const vf_hnsw *h, vf_scratch *s, uint32_t owner, unsigned lev, uint32_t *list,
                     vf_hit *want, size_t n, uint32_t doomed)
{
    assert(n <= level_cap(h, lev) && lev <= node_level(h, owner));
    assert(node_locked(h, owner));
    if (lev > 0) {
        list_write(list, want, n);
        return;
    }
    /* The old links left out, taken before any eviction below changes
     * `want` (an evicted old link is released once, there). */
    uint32_t *dropped = s->links, n_dropped = 0;
    for (uint32_t i = 0; i < list[0]; i++)
        if (!hits_contain(want, n, list[1 + i]))
            dropped[n_dropped++] = list[1 + i];
    /* want[0, chosen) may still be evicted, farthest first; want[chosen, n)
     * are kept old links. */
    size_t chosen = n;
    for (uint32_t i = 0; i < n_dropped; i++) {
        uint32_t t = dropped[i];
        if (t == doomed) {
            link_drop(h, s, owner, t);
            continue;
        }
        if (link_release(h, owner, t))
            continue;
        if (n < h->m0) {
            want[n++] = (vf_hit){.id = t, .distance = 0.0f};
            continue;
        }
        /* Full: t takes the place of the farthest chosen link that can go
         * (a new one, or an old one that anchors nothing). */
        size_t j = chosen;
        bool evicted = false;
        while (j > 0 && !evicted) {
            uint32_t v = want[--j].id;
            evicted = !list_has(list, v) || link_release(h, owner, v);
        }
        if (!evicted) {
            link_drop(h, s, owner, t);
            continue;
        }
        memmove(want + j, want + j + 1, (chosen - j - 1) * sizeof(vf_hit));
        want[--chosen] = (vf_hit){.id = t, .distance = 0.0f};
    }
    list_write(list, want, n);
}

/* Links r -> t at level 0 (r's node lock is taken here), in place of r's
 * farthest link that anchors nothing when r's list is full, and makes it
 * t's anchor when r is older. When every link of r anchors, `displace`
 * takes the farthest anyway and leaves its target an orphan of this
 * operation (one nearer the young end of the order, so easier to link
 * in). Returns false when r is not present, or nothing could go. */
static bool force_link(const vf_hnsw *h, vf_scratch *s, uint32_t r, uint32_t t, bool displace)
{
    assert(r < h->capacity && t < h->capacity);
    bool done = false;
    if (r == t)
        return false;
    node_lock(h, r);
    uint32_t *list = list_read(h, r, 0, s->open);
    uint32_t n = list[0];
    if (!graph_node(h, r))
        goto out;
    done = list_has(list, t);
    if (!done && n < h->m0) {
        word_set(&list[1 + n], t);
        word_set(&list[0], n + 1);
        list_commit(h, r, 0, list);
        done = true;
    }
    if (done) {
        anchor_set(h, r, t);
        goto out;
    }
    for (uint32_t i = 0; i < n; i++)
        s->work[i] = (vf_hit){.id = list[1 + i], .distance = dist_ids(h, r, list[1 + i])};
    hits_sort(s->work, n, r);
    for (uint32_t j = n; j-- > 0 && !done;) {
        uint32_t v = s->work[j].id;
        if (!link_release(h, r, v)) {
            if (!displace || j != 0)
                continue;
            v = s->work[n - 1].id;
            link_drop(h, s, r, v);
        }
        for (uint32_t i = 0; i < n; i++) {
            if (list[1 + i] == v) {
                word_set(&list[1 + i], t);
                break;
            }
        }
        list_commit(h, r, 0, list);
        anchor_set(h, r, t);
        done = true;
    }
out:
    node_unlock(h, r);
    return done;
}

/* Adds a link nb -> x at lev, re-selecting nb's list when it is full.
 * A node that a remove is emptying takes no new links. Returns true if nb
 * links x afterwards. */
static bool link_back(const vf_hnsw *h, vf_scratch *s, uint32_t nb, uint32_t x, float d,
                      unsigned lev)
{
    assert(nb != x && lev <= node_level(h, nb));
    const uint32_t cap = level_cap(h, lev);
    bool linked = false;
    node_lock(h, nb);
    uint32_t *list = list_read(h, nb, lev, s->open);
    uint32_t n = list[0];
    if (!graph_node(h, nb))
        goto out;
    linked = list_has(list, x);
    if (!linked && n < cap) {
        word_set(&list[1 + n], x);
        word_set(&list[0], n + 1);
        list_commit(h, nb, lev, list);
        linked = true;
    }
    if (linked)
        goto out;
    for (uint32_t i = 0; i < n; i++)
        s->work[i] = (vf_hit){.id = list[1 + i], .distance = dist_ids(h, nb, list[1 + i])};
    s->work[n] = (vf_hit){.id = x, .distance = d};
    hits_sort(s->work, n + 1, nb);
    list_set(h, s, nb, lev, list, s->sel, select_neighbours(h, s->work, n + 1, cap, s->sel),
             UINT32_MAX);
    list_commit(h, nb, lev, list);
    linked = list_has(list, x);
out:
    node_unlock(h, nb);
    return linked;
}

/* Rewrites nb's list at lev without x: its other present links plus x's
 * links (xl, nx), re-selected by the heuristic. No-op if nb does not link
 * x or is not present. */
static void repair_list(const vf_hnsw *h, vf_scratch *s, uint32_t nb, uint32_t x,
                        const uint32_t *xl, uint32_t nx, unsigned lev)
{
    assert(nx <= level_cap(h, lev) && lev <= node_level(h, nb));
    node_lock(h, nb);
    uint32_t *list = list_read(h, nb, lev, s->open);
    uint32_t n = list[0];
    if (!graph_node(h, nb) || !list_has(list, x))
        goto out;
    size_t nc = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = list[1 + i];
        if (id != x && slot_state(h, id) == VF_SLOT_PRESENT)
            s->work[nc++] = (vf_hit){.id = id, .distance = dist_ids(h, nb, id)};
    }
    for (uint32_t i = 0; i < nx; i++) {
        uint32_t id = xl[i];
        if (id == nb || id == x || slot_state(h, id) != VF_SLOT_PRESENT ||
            hits_contain(s->work, nc, id))
            continue;
        s->work[nc++] = (vf_hit){.id = id, .distance = dist_ids(h, nb, id)};
    }
    hits_sort(s->work, nc, nb);
    list_set(h, s, nb, lev, list, s->sel,
             select_neighbours(h, s->work, nc, level_cap(h, lev), s->sel), x);
    list_commit(h, nb, lev, list);
out:
    node_unlock(h, nb);
}

/* Writes x's list at lev: the `kept` neighbours it chose (s->sel) plus any
 * links concurrent inserts added meanwhile — another insert can reach x
 * through an upper level and link back into x's level-0 list before x has
 * written it, and overwriting would drop that node's way in. */
static void own_list_write(const vf_hnsw *h, vf_scratch *s, uint32_t x, unsigned lev, size_t kept)
{
    assert(kept <= level_cap(h, lev) && lev <= node_level(h, x));
    node_lock(h, x);
    uint32_t *list = list_read(h, x, lev, s->open);
    size_t nc = kept;
    memcpy(s->work, s->sel, kept * sizeof(vf_hit));
    for (uint32_t j = 0; j < list[0]; j++) {
        uint32_t id = list[1 + j];
        if (id == x || hits_contain(s->work, nc, id))
            continue;
        s->work[nc++] = (vf_hit){.id = id, .distance = dist_ids(h, x, id)};
    }
    if (nc > kept)
        hits_sort(s->work, nc, x);
    list_set(h, s, x, lev, list, s->sel,
             select_neighbours(h, s->work, nc, level_cap(h, lev), s->sel), UINT32_MAX);
    list_commit(h, x, lev, list);
    node_unlock(h, x);
}

/* Removes every link to x from x's neighbours, bridging around it. */
void vf_hnsw_unlink(const vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    assert(x < h->capacity);
    for (int lev = node_level(h, x); lev >= 0; lev--) {
        uint32_t nx = links_copy(h, x, (unsigned)lev, s->links2);
        for (uint32_t i = 0; i < nx; i++)
            repair_list(h, s, s->links2[i], x, s->links2, nx, (unsigned)lev);
    }
}

/* Empties x's lists; level-0 targets that x anchored become
 * orphans of this operation. */
void vf_hnsw_lists_clear(const vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    assert(x < h->capacity);
    node_lock(h, x);
    const uint32_t *l0 = list_read(h, x, 0, s->open);
    for (uint32_t i = 0; i < l0[0]; i++)
        link_drop(h, s, x, l0[1 + i]);
    node_lists_empty(h, x);
    node_unlock(h, x);
}

/* If x is the entry point, moves the entry to the oldest present graph
 * node but x (invariant 7). Leaves x as the entry when no other is present. An
 * O(capacity) scan, paid once per delete or update of the entry. */
void vf_hnsw_entry_move_off(vf_hnsw *h, uint32_t x)
{
    assert(x < h->capacity);
    pthread_mutex_lock(&h->entry_lock);
    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_relaxed);
    if (entry == VF_HNSW_NO_ENTRY || (uint32_t)entry != x)
        goto out;
    uint32_t best = x;
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t id = (uint32_t)i;
        if (id != x && graph_node(h, id) && (best == x || older(h, id, best)))
            best = id;
    }
    if (best != x)
        atomic_store_explicit(&h->entry, entry_pack(node_level(h, best), best),
                              memory_order_release);
out:
    pthread_mutex_unlock(&h->entry_lock);
}

/* Makes r's link to x (if r is an older graph node that has one) x's
 * anchor. */
static void anchor_adopt(const vf_hnsw *h, vf_scratch *s, uint32_t r, uint32_t x)
{
    node_lock(h, r);
    if (graph_node(h, r) && list_has(list_read(h, r, 0, s->open), x))
        anchor_set(h, r, x);
    node_unlock(h, r);
}

/* true when x must take the entry: there is none, or it names a node
 * other than x that is not present (every node was deleted). */
static bool entry_vacant(const vf_hnsw *h, uint64_t entry, uint32_t x)
{
    return entry == VF_HNSW_NO_ENTRY ||
           ((uint32_t)entry != x && slot_state(h, (uint32_t)entry) != VF_SLOT_PRESENT);
}

/* Records id's squared norm and raises the lifting's M to cover it. */
void vf_hnsw_sq_set(vf_hnsw *h, uint32_t id, float sq)
{
    assert(h->metric == VF_METRIC_DOT && id < h->capacity && sq >= 0.0f);
    __atomic_store(&h->sqnorm[id], &sq, __ATOMIC_RELAXED);
    uint32_t bits = atomic_load_explicit(&h->max_sq_bits, memory_order_relaxed);
    for (;;) {
        float m;
        memcpy(&m, &bits, sizeof(m));
        if (m >= sq)
            return;
        uint32_t want;
        memcpy(&want, &sq, sizeof(want));
        if (atomic_compare_exchange_weak_explicit(&h->max_sq_bits, &bits, want,
                                                  memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

/* Links node x (vector already stored, lists empty, level node_level(h, x))
 * into the graph, ending with a way in from one of its level-0 choices
 * (reachability b) and an anchor. Cannot fail: its walks allocate only to
 * go further, and the orphans it makes fit the writer's reserve. */
void vf_hnsw_connect(vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    assert(x < h->capacity && slot_state(h, x) == VF_SLOT_PRESENT);
    assert(ring_role(h, x) == VF_TWIN_HEAD);
    const unsigned level = node_level(h, x);
    const uint8_t *v = vf_node_rec(h, x);
    bool holds_entry = false;

    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
    if (entry_vacant(h, entry, x) || older(h, x, (uint32_t)entry)) {
        pthread_mutex_lock(&h->entry_lock);
        entry = atomic_load_explicit(&h->entry, memory_order_relaxed);
        if (entry_vacant(h, entry, x)) {
            atomic_store_explicit(&h->entry, entry_pack(level, x), memory_order_release);
            pthread_mutex_unlock(&h->entry_lock);
            return;
        }
        /* x is older than the entry (a higher level, or a reused slot of
         * a lower id): it becomes the entry once linked (invariant 7). */
        holds_entry = older(h, x, (uint32_t)entry);
        if (!holds_entry)
            pthread_mutex_unlock(&h->entry_lock);
    }
    const unsigned top = (unsigned)(entry >> 32);
    uint32_t cur = (uint32_t)entry;
    if (cur == x)
        goto out; /* x is the only node: nothing to link to */
    const float v_sq = node_sq(h, x);
    float cur_d = dist_ids(h, x, cur);
    vf_hnsw_descend(h, s, v, v_sq, true, top, level, &cur, &cur_d);

    for (int lev = (int)(level < top ? level : top); lev >= 0; lev--) {
        vf_heap res;
        int rc = vf_hnsw_walk_layer(h, s, v, cur, cur_d, h->ef_construction, (unsigned)lev, NULL, x,
                                    true, v_sq, &res);
        assert(rc == 0); /* a build walk does not fail */
        (void)rc;
        size_t n = vf_topk_drain_sorted(&res, s->sorted);
        if (n == 0)
            continue;
        cur = s->sorted[0].id;
        cur_d = s->sorted[0].distance;
        size_t kept = select_neighbours(h, s->sorted, n, h->m, s->sel);
        /* link_back and own_list_write reuse s->sel; keep the ids. */
        for (size_t i = 0; i < kept; i++)
            s->links2[i] = s->sel[i].id;
        own_list_write(h, s, x, (unsigned)lev, kept);
        bool linked = false;
        for (size_t i = 0; i < kept; i++)
            linked |= link_back(h, s, s->links2[i], x, dist_ids(h, x, s->links2[i]), (unsigned)lev);
        if (lev > 0)
            continue;
        /* A query near x must find it: one of its choices links it, and
         * the nearest older one that does anchors it. */
        for (size_t i = 0; i < kept && !linked; i++)
            linked = force_link(h, s, s->links2[i], x, false);
        for (size_t i = 0; i < kept && anchor_get(h, x) == VF_NO_ANCHOR; i++)
            anchor_adopt(h, s, s->links2[i], x);
    }
out:
    if (holds_entry) {
        atomic_store_explicit(&h->entry, entry_pack(level, x), memory_order_release);
        pthread_mutex_unlock(&h->entry_lock);
        /* The old entry is no longer the oldest: it needs a way in now. */
        if ((uint32_t)entry != x)
            vf_hnsw_orphan_push(h, s, (uint32_t)entry);
    }
    /* And x itself needs one from an older node (invariant 7). */
    vf_hnsw_orphan_push(h, s, x);
}

/* Gives t a level-0 link in from the nearest older present node that can
 * take one, or else from the entry, the oldest of all. The nodes older
 * than t are at its level or above, so they are looked for there. Returns
 * true on success or when t is the entry, which needs no way in. */
bool vf_hnsw_link_in(vf_hnsw *h, vf_scratch *s, uint32_t t)
{
    assert(t < h->capacity);
    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
    if (entry == VF_HNSW_NO_ENTRY || (uint32_t)entry == t)
        return true;
    const uint8_t *v = vf_node_rec(h, t);
    uint32_t cur = (uint32_t)entry;
    const float v_sq = node_sq(h, t);
    const unsigned top = (unsigned)(entry >> 32),
                   lev = node_level(h, t) < top ? node_level(h, t) : top;
    float cur_d = dist_ids(h, t, cur);
    vf_hnsw_descend(h, s, v, v_sq, true, top, lev, &cur, &cur_d);
    vf_heap res;
    int rc =
        vf_hnsw_walk_layer(h, s, v, cur, cur_d, h->ef_construction, lev, NULL, t, true, v_sq, &res);
    assert(rc == 0); /* a build walk does not fail */
    (void)rc;
    size_t n = vf_topk_drain_sorted(&res, s->sorted);
    for (size_t i = 0; i < n; i++)
        if (older(h, s->sorted[i].id, t) && force_link(h, s, s->sorted[i].id, t, false))
            return true;
    if (older(h, (uint32_t)entry, t) && force_link(h, s, (uint32_t)entry, t, false))
        return true;
    /* Every older node near t is full of anchoring links: t takes one of
     * them, from the nearest, within the operation's budget. */
    if (s->displace_left == 0)
        return false;
    s->displace_left--;
    for (size_t i = 0; i < n; i++)
        if (older(h, s->sorted[i].id, t) && force_link(h, s, s->sorted[i].id, t, true))
            return true;
    return older(h, (uint32_t)entry, t) && force_link(h, s, (uint32_t)entry, t, true);
}

/* Links in again every orphan this operation made (reachability c), with
 * `budget` displacements to spend. */
void vf_hnsw_orphans_settle(vf_hnsw *h, vf_scratch *s, size_t budget)
{
    s->displace_left = budget;
    while (s->orphans_len) {
        uint32_t t = s->orphans[--s->orphans_len];
        uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
        if (!graph_node(h, t) || (uint32_t)entry == t || anchor_get(h, t) != VF_NO_ANCHOR)
            continue;
        counter_bump(vf_hnsw_link_in(h, s, t) ? &h->rehomed : &h->stranded);
    }
}
