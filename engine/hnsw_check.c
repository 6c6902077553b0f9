/*
 * hnsw_check.c — vf_hnsw_check: every structural invariant of hnsw.c
 * recounted from the arrays, for tests. Runs with no writer active.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hnsw_internal.h"

/* Invariant 7 on anchors. 0 or -EILSEQ. */
static int anchors_check(const vf_hnsw *h)
{
    uint32_t entry = (uint32_t)atomic_load(&h->entry);
    bool stranded = atomic_load(&h->stranded) > 0;
    uint32_t buf[1 + 2 * VF_HNSW_MAX_M];
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t t = (uint32_t)i, a = anchor_get(h, t);
        if (!graph_node(h, t) || t == entry)
            continue;
        if (older(h, t, entry))
            return -EILSEQ;
        if (a == VF_NO_ANCHOR) {
            if (!stranded)
                return -EILSEQ;
            continue;
        }
        if (a >= h->capacity || !graph_node(h, a) || !older(h, a, t) ||
            !list_has(list_read(h, a, 0, buf), t))
            return -EILSEQ;
    }
    return 0;
}

/* Invariant 8. 0 or -EILSEQ. */
static int rings_check(const vf_hnsw *h)
{
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t id = (uint32_t)i, next = h->twin_next[i], prev = h->twin_prev[i];
        if (slot_state(h, (uint32_t)i) == VF_SLOT_EMPTY)
            continue; /* never in a ring: its pointers are unset */
        if (next >= h->capacity || prev >= h->capacity || h->twin_prev[next] != id ||
            h->twin_next[prev] != id)
            return -EILSEQ;
        if (slot_state(h, (uint32_t)i) != VF_SLOT_PRESENT) {
            if (next != id)
                return -EILSEQ;
            continue;
        }
        if (ring_role(h, id) == VF_TWIN_RIDER) {
            if (vf_node_count0(h, id) != 0)
                return -EILSEQ;
            continue;
        }
        /* From each head: every member present, a rider with its vector. */
        for (uint32_t z = next; z != id; z = h->twin_next[z]) {
            if (slot_state(h, z) != VF_SLOT_PRESENT || ring_role(h, z) != VF_TWIN_RIDER ||
                memcmp(vf_node_rec(h, z), vf_node_rec(h, id), h->rec_bytes) != 0)
                return -EILSEQ;
        }
    }
    return 0;
}

int vf_hnsw_check(const vf_hnsw *h)
{
    if (!h)
        return -EINVAL;
    if (vf_upper_check(h) != 0)
        return -EILSEQ;
    size_t present = 0, used = 0;
    uint32_t buf[1 + 2 * VF_HNSW_MAX_M];
    for (size_t i = 0; i < h->capacity; i++) {
        uint8_t st = slot_state(h, (uint32_t)i);
        if (st == VF_SLOT_EMPTY)
            continue;
        if (st != VF_SLOT_PRESENT && st != VF_SLOT_DELETED)
            return -EILSEQ;
        used++;
        present += st == VF_SLOT_PRESENT;
        unsigned level = node_level(h, (uint32_t)i);
        if (level > VF_HNSW_MAX_LEVEL || (level > 0) != (vf_upper_find(h, (uint32_t)i) != SIZE_MAX))
            return -EILSEQ;
        for (unsigned lev = 0; lev <= level; lev++) {
            const uint32_t *list = list_read(h, (uint32_t)i, lev, buf);
            /* A level-0 list reads back as many links as its count says
             * (a packed one decodes to them). */
            if (lev == 0 && list[0] != vf_node_count0(h, (uint32_t)i))
                return -EILSEQ;
            if (list[0] > level_cap(h, lev) || (st == VF_SLOT_DELETED && list[0] != 0))
                return -EILSEQ;
            for (uint32_t j = 0; j < list[0]; j++) {
                uint32_t to = list[1 + j];
                if (to == i || to >= h->capacity || slot_state(h, to) == VF_SLOT_EMPTY ||
                    node_level(h, to) < lev)
                    return -EILSEQ;
                for (uint32_t k = 0; k < j; k++)
                    if (list[1 + k] == to)
                        return -EILSEQ;
            }
        }
    }
    if (present != atomic_load(&h->count))
        return -EILSEQ;
    uint64_t entry = atomic_load(&h->entry);
    if (entry == VF_HNSW_NO_ENTRY)
        return used == 0 ? 0 : -EILSEQ;
    uint32_t ep = (uint32_t)entry;
    if (ep >= h->capacity || slot_state(h, ep) == VF_SLOT_EMPTY ||
        node_level(h, ep) != (entry >> 32) || ring_role(h, ep) == VF_TWIN_RIDER ||
        rings_check(h) != 0)
        return -EILSEQ;
    return anchors_check(h);
}
