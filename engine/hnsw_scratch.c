/*
 * hnsw_scratch.c — the per-thread buffers of searches and writers, pooled
 * in the index so a warm search allocates nothing.
 *
 * Invariants
 *   1. A scratch taken by vf_scratch_acquire has a visited array covering
 *      the index's capacity and result arrays of at least the asked size;
 *      it belongs to one thread until vf_scratch_release.
 *   2. The pool (h->pool) is changed only under pool_lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"

void vf_scratch_free(vf_scratch *s)
{
    if (!s)
        return;
    free(s->visited);
    free(s->touched);
    free(s->cand);
    free(s->res);
    free(s->sorted);
    free(s->work);
    free(s->sel);
    free(s->links);
    free(s->links2);
    free(s->bridge);
    free(s->open);
    free(s->query);
    free(s->qrec);
    free(s->orig);
    free(s->cands);
    free(s->orphans);
    free(s);
}

/* A scratch with the buffers whose size the index fixes; vf_scratch_acquire
 * sizes the others. NULL on ENOMEM. */
static vf_scratch *scratch_new(const vf_hnsw *h)
{
    vf_scratch *s = vc_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    size_t work = 2 * (size_t)h->m0 + 2;
    s->work = vc_malloc(work * sizeof(vf_hit));
    s->sel = vc_malloc(work * sizeof(vf_hit));
    s->links = vc_malloc(VF_GATHER_ROOM(h) * sizeof(uint32_t));
    s->links2 = vc_malloc(h->m0 * sizeof(uint32_t));
    s->bridge = vc_malloc(h->m0 * sizeof(uint32_t));
    s->open = vc_malloc((1 + (size_t)h->m0) * sizeof(uint32_t));
    s->query = vc_malloc(h->dim * sizeof(float));
    s->qrec = vc_malloc(h->rec_bytes);
    s->orig = vc_malloc(h->dim * sizeof(float));
    s->cand_cap = 256;
    s->cand = vc_malloc(s->cand_cap * sizeof(vf_hit));
    if (!s->work || !s->sel || !s->links || !s->links2 || !s->bridge || !s->open || !s->query ||
        !s->qrec || !s->orig || !s->cand) {
        vf_scratch_free(s);
        return NULL;
    }
    return s;
}

/* Takes a scratch from the pool, sized for the current capacity and for
 * `results` result slots. Caller holds grow_lock (read). NULL on ENOMEM. */
vf_scratch *vf_scratch_acquire(const vf_hnsw *ch, size_t results)
{
    vf_hnsw *h = (vf_hnsw *)ch; /* the pool is the only state a search mutates */
    pthread_mutex_lock(&h->pool_lock);
    vf_scratch *s = h->pool;
    if (s)
        h->pool = s->next;
    pthread_mutex_unlock(&h->pool_lock);
    if (!s && !(s = scratch_new(h)))
        return NULL;
    if (!s->visited || s->visited_cap < h->capacity) {
        size_t words = h->capacity ? (h->capacity + 63) / 64 : 1;
        free(s->visited);
        free(s->touched);
        s->visited = vc_calloc(words, sizeof(uint64_t));
        s->touched = vc_malloc((words + 1) * sizeof(uint32_t));
        if (!s->visited || !s->touched) {
            free(s->visited);
            s->visited = NULL;
        }
        s->visited_cap = s->visited ? words * 64 : 0;
        s->touched_len = 0;
    }
    if (s->res_cap < results) {
        vf_hit *res = vc_realloc(s->res, results * sizeof(vf_hit));
        if (res)
            s->res = res;
        vf_hit *sorted = res ? vc_realloc(s->sorted, results * sizeof(vf_hit)) : NULL;
        if (sorted) {
            s->sorted = sorted;
            s->res_cap = results;
        }
    }
    if (!s->visited || s->res_cap < results) {
        vf_scratch_free(s);
        return NULL;
    }
    return s;
}

int vf_orphans_reserve(vf_scratch *s, size_t n)
{
    assert(s->orphans_len <= s->orphans_cap);
    if (s->orphans_cap - s->orphans_len >= n)
        return 0;
    size_t cap = s->orphans_len + n;
    uint32_t *o = vc_realloc(s->orphans, cap * sizeof(uint32_t));
    if (!o)
        return -ENOMEM;
    s->orphans = o;
    s->orphans_cap = cap;
    return 0;
}

vf_scratch *vf_scratch_acquire_write(const vf_hnsw *h)
{
    vf_scratch *s = vf_scratch_acquire(h, h->ef_construction);
    if (s && vf_orphans_reserve(s, VF_ORPHANS_RESERVE(h)) != 0) {
        vf_scratch_release(h, s);
        s = NULL;
    }
    return s;
}

void vf_scratch_release(const vf_hnsw *ch, vf_scratch *s)
{
    assert(s != NULL);
    assert(s->orphans_len == 0); /* every operation settles its orphans */
    vf_hnsw *h = (vf_hnsw *)ch;
    pthread_mutex_lock(&h->pool_lock);
    s->next = h->pool;
    h->pool = s;
    pthread_mutex_unlock(&h->pool_lock);
}

/* Starts a new walk with nothing visited: clears the words the last one
 * set, so the cost follows that walk's visits, not the capacity. A bit a
 * slot keeps the set of the 331k words at 41 KiB, in the L1 and L2
 * caches, where u16 epochs took 663 KiB (docs/performance.md "The walk's
 * memory traffic"). */
void vf_visited_begin(vf_scratch *s)
{
    assert(s->visited != NULL && s->visited_cap > 0);
    for (size_t i = 0; i < s->touched_len; i++)
        s->visited[s->touched[i]] = 0;
    s->touched_len = 0;
}

int vf_cand_grow(vf_scratch *s, vf_heap *cand)
{
    assert(cand->items == s->cand && cand->cap == s->cand_cap);
    assert(cand->len == cand->cap);
    size_t cap = s->cand_cap * 2;
    vf_hit *items = vc_realloc(s->cand, cap * sizeof(vf_hit));
    if (!items)
        return -ENOMEM;
    s->cand = items;
    s->cand_cap = cap;
    cand->items = items;
    cand->cap = cap;
    return 0;
}
