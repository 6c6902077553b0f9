/*
 * topk.h — binary heaps of (distance, id) pairs over caller-owned arrays,
 * used by exact search and HNSW. Internal to the engine.
 *
 * Invariants
 *   1. A max-heap keeps its largest distance at items[0]: it is the bounded
 *      "best k so far" set, whose root is the first to evict.
 *   2. A min-heap keeps its smallest distance at items[0]: it is the
 *      candidate queue of a graph search.
 *   3. len <= cap always; the heaps never allocate, so callers size the
 *      arrays once (per-thread scratch) and searches stay allocation-free.
 */
#ifndef VECFS_ENGINE_TOPK_H
#define VECFS_ENGINE_TOPK_H

#include <assert.h>
#include <stddef.h>

#include "engine.h"

typedef struct vf_heap {
    vf_hit *items;
    size_t len;
    size_t cap;
} vf_heap;

/* An empty heap over items[0, cap). */
static inline void vf_heap_init(vf_heap *h, vf_hit *items, size_t cap)
{
    h->items = items;
    h->len = 0;
    h->cap = cap;
}

static inline void vf_heap_swap(vf_hit *a, vf_hit *b)
{
    vf_hit t = *a;
    *a = *b;
    *b = t;
}

/* sign is +1 for a max-heap and -1 for a min-heap: "above" means larger
 * distance for a max-heap. Inlined with a constant sign, the branch folds. */
static inline int vf_heap_above(float a, float b, int sign)
{
    return sign > 0 ? a > b : a < b;
}

/* Moves item i up until its parent is not below it. */
static inline void vf_heap_sift_up(vf_heap *h, size_t i, int sign)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!vf_heap_above(h->items[i].distance, h->items[parent].distance, sign))
            break;
        vf_heap_swap(&h->items[i], &h->items[parent]);
        i = parent;
    }
}

/* Moves item i down until no child is above it. */
static inline void vf_heap_sift_down(vf_heap *h, size_t i, int sign)
{
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        if (l < h->len && vf_heap_above(h->items[l].distance, h->items[best].distance, sign))
            best = l;
        if (l + 1 < h->len &&
            vf_heap_above(h->items[l + 1].distance, h->items[best].distance, sign))
            best = l + 1;
        if (best == i)
            return;
        vf_heap_swap(&h->items[i], &h->items[best]);
        i = best;
    }
}

/* Adds (distance, id); the heap must have room. */
static inline void vf_heap_push(vf_heap *h, float distance, uint32_t id, int sign)
{
    assert(h->len < h->cap);
    h->items[h->len].distance = distance;
    h->items[h->len].id = id;
    vf_heap_sift_up(h, h->len++, sign);
}

/* Removes and returns the root; the heap must not be empty. */
static inline vf_hit vf_heap_pop(vf_heap *h, int sign)
{
    assert(h->len > 0);
    vf_hit top = h->items[0];
    h->items[0] = h->items[--h->len];
    vf_heap_sift_down(h, 0, sign);
    return top;
}

/* Replaces the root and restores the heap: one sift instead of pop + push. */
static inline void vf_heap_replace_top(vf_heap *h, float distance, uint32_t id, int sign)
{
    assert(h->len > 0);
    h->items[0].distance = distance;
    h->items[0].id = id;
    vf_heap_sift_down(h, 0, sign);
}

/* Bounded best-k set (max-heap): keeps the k smallest distances seen. */
static inline void vf_topk_offer(vf_heap *best, float distance, uint32_t id)
{
    if (best->len < best->cap)
        vf_heap_push(best, distance, id, +1);
    else if (distance < best->items[0].distance)
        vf_heap_replace_top(best, distance, id, +1);
}

/* Empties a max-heap into out[0..len) sorted nearest first; returns len. */
static inline size_t vf_topk_drain_sorted(vf_heap *best, vf_hit *out)
{
    size_t n = best->len;
    for (size_t i = n; i-- > 0;)
        out[i] = vf_heap_pop(best, +1);
    return n;
}

#endif /* VECFS_ENGINE_TOPK_H */
