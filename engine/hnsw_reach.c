/*
 * hnsw_reach.c — reachability from the entry point (counted for `vecfs
 * check`, repaired as a safety net before snapshots), the engine's
 * counters, and the settling of an index just loaded from a snapshot.
 *
 * Invariant: a walk from the entry over level-0 links and twin rings
 * reaches every present vector (hnsw_link.c, "Reachability"); these
 * functions count what it misses and link it in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"

/* Marks in seen[] every slot a walk from the entry point reaches over
 * level-0 links; returns the number of present vectors it did not reach.
 * seen and queue have capacity entries. */
static size_t walk_from_entry(const vf_hnsw *h, uint8_t *seen, uint32_t *queue)
{
    memset(seen, 0, h->capacity);
    size_t present = atomic_load(&h->count), reached = 0;
    uint64_t entry = atomic_load(&h->entry);
    if (entry == VF_HNSW_NO_ENTRY)
        return present;
    size_t head = 0, tail = 0;
    queue[tail++] = (uint32_t)entry;
    seen[(uint32_t)entry] = 1;
    uint32_t links[2 * VF_HNSW_MAX_M + 1];
    while (head < tail) {
        uint32_t id = queue[head++];
        reached += slot_state(h, id) == VF_SLOT_PRESENT;
        uint32_t n = links_copy(h, id, 0, links);
        /* The twins riding on id are reached with it. */
        links[n++] = atomic_load_explicit(&h->twin_next[id], memory_order_acquire);
        for (uint32_t j = 0; j < n; j++) {
            if (links[j] < h->capacity && !seen[links[j]]) {
                seen[links[j]] = 1;
                queue[tail++] = links[j];
            }
        }
    }
    return present > reached ? present - reached : 0;
}

size_t vf_hnsw_unreachable(const vf_hnsw *h)
{
    if (!h)
        return 0;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    size_t cap = h->capacity ? h->capacity : 1, lost = SIZE_MAX;
    uint8_t *seen = vc_malloc(cap);
    uint32_t *queue = vc_malloc(cap * sizeof(uint32_t));
    if (seen && queue)
        lost = walk_from_entry(h, seen, queue);
    free(seen);
    free(queue);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return lost;
}

int vf_hnsw_reconnect(vf_hnsw *h, size_t *fixed)
{
    if (!h || !fixed)
        return -EINVAL;
    *fixed = 0;
    pthread_rwlock_rdlock(&h->grow_lock);
    size_t cap = h->capacity ? h->capacity : 1;
    uint8_t *seen = vc_malloc(cap);
    uint32_t *queue = vc_malloc(cap * sizeof(uint32_t));
    vf_scratch *s = vf_scratch_acquire_write(h);
    int rc = seen && queue && s ? 0 : -ENOMEM;
    /* Each vector linked in from a reachable node is reachable, and so is
     * what it leads to; a displacement may strand another, which the
     * orphans pass and, failing that, the next pass link in. */
    for (int pass = 0; rc == 0 && pass < 8; pass++) {
        if (walk_from_entry(h, seen, queue) == 0)
            break;
        s->displace_left = VF_DISPLACE_BUDGET;
        for (size_t i = 0; i < h->capacity; i++) {
            if (!seen[i] && graph_node(h, (uint32_t)i)) {
                vf_hnsw_link_in(h, s, (uint32_t)i);
                (*fixed)++;
            }
        }
        vf_hnsw_orphans_settle(h, s, VF_DISPLACE_BUDGET);
    }
    if (s)
        vf_scratch_release(h, s);
    free(seen);
    free(queue);
    pthread_rwlock_unlock(&h->grow_lock);
    return rc;
}

void vf_hnsw_stats_get(const vf_hnsw *h, vf_hnsw_stats *out)
{
    *out = (vf_hnsw_stats){0};
    if (!h)
        return;
    out->searches_short = atomic_load_explicit(&h->searches_short, memory_order_relaxed);
    out->rehomed = atomic_load_explicit(&h->rehomed, memory_order_relaxed);
    out->stranded = atomic_load_explicit(&h->stranded, memory_order_relaxed);
    out->plans_exact = atomic_load_explicit(&h->plans[VF_PLAN_EXACT], memory_order_relaxed);
    out->plans_walk = atomic_load_explicit(&h->plans[VF_PLAN_WALK], memory_order_relaxed);
    out->plans_expand = atomic_load_explicit(&h->plans[VF_PLAN_EXPAND], memory_order_relaxed);
    out->walks_capped = atomic_load_explicit(&h->walks_capped, memory_order_relaxed);
}

int vf_hnsw_links_settle(vf_hnsw *h)
{
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t id = (uint32_t)i;
        atomic_store_explicit(&h->anchor[i], VF_NO_ANCHOR, memory_order_relaxed);
        ring_role_set(h, (uint32_t)i, VF_TWIN_HEAD);
        vf_twin_alone(h, id);
        if (h->metric == VF_METRIC_DOT && slot_state(h, (uint32_t)i) != VF_SLOT_EMPTY) {
            const uint8_t *v = vf_node_rec(h, id);
            vf_hnsw_sq_set(h, id, rec_sq(h, v));
        }
        if (slot_state(h, id) == VF_SLOT_DELETED)
            node_lists_empty(h, id);
    }
    uint8_t *lone = vc_calloc(h->capacity ? h->capacity : 1, 1);
    if (!lone)
        return -ENOMEM;
    /* Anchors are not in the snapshot: each node takes the first older
     * node found linking it. */
    uint32_t buf[1 + 2 * VF_HNSW_MAX_M];
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t from = (uint32_t)i;
        const uint32_t *list = list_read(h, from, 0, buf);
        for (uint32_t j = 0; j < list[0]; j++) {
            uint32_t t = list[1 + j];
            if (older(h, from, t) && atomic_load(&h->anchor[t]) == VF_NO_ANCHOR)
                atomic_store(&h->anchor[t], from);
            lone[t] = 2; /* linked to: a graph node */
        }
    }
    for (size_t i = 0; i < h->capacity; i++)
        lone[i] = slot_state(h, (uint32_t)i) == VF_SLOT_PRESENT && lone[i] == 0 &&
                  vf_node_count0(h, (uint32_t)i) == 0;
    int rc = vf_twin_rebuild(h, lone);
    free(lone);
    if (rc)
        return rc;
    uint32_t oldest = UINT32_MAX;
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t id = (uint32_t)i;
        if (graph_node(h, id) && (oldest == UINT32_MAX || older(h, id, oldest)))
            oldest = id;
    }
    if (oldest == UINT32_MAX)
        return 0;
    atomic_store(&h->entry, entry_pack(node_level(h, oldest), oldest));
    /* Snapshots written before invariant 7 may leave nodes without a way
     * in; those written since have none but the entry, and this finds
     * nothing to do. Room for each of them and for what linking them in
     * displaces (one orphan a displacement) is had before any is pushed. */
    size_t lost = 0;
    for (size_t i = 0; i < h->capacity; i++)
        lost += graph_node(h, (uint32_t)i) && (uint32_t)i != oldest &&
                atomic_load(&h->anchor[i]) == VF_NO_ANCHOR;
    vf_scratch *s = vf_scratch_acquire_write(h);
    if (!s)
        return -ENOMEM;
    if (vf_orphans_reserve(s, 2 * lost) != 0) {
        vf_scratch_release(h, s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < h->capacity; i++)
        if (graph_node(h, (uint32_t)i) && (uint32_t)i != oldest &&
            atomic_load(&h->anchor[i]) == VF_NO_ANCHOR)
            vf_hnsw_orphan_push(h, s, (uint32_t)i);
    vf_hnsw_orphans_settle(h, s, lost + VF_DISPLACE_BUDGET);
    vf_scratch_release(h, s);
    return 0;
}
