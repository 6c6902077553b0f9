/*
 * hnsw.c — a hierarchical navigable small world graph (Malkov & Yashunin)
 * with tombstone deletes, in-place updates, filtered search and
 * concurrent inserts and searches.
 *
 * Ids are slots: the caller's uint32 id indexes every per-node array, so
 * there is no label map. The layout and the lock order are documented in
 * hnsw_internal.h.
 *
 * Invariants (checked by vf_hnsw_check)
 *   1. A link at level l from a to b has a != b, b < capacity, state[b] !=
 *      EMPTY and levels[b] >= l. A list at level l holds at most m0 (l = 0)
 *      or m (l >= 1) distinct links.
 *   2. upper[id] is non-NULL exactly when levels[id] > 0 for a used slot.
 *   3. The entry point is NO_ENTRY only while no slot was ever used;
 *      otherwise it names a used slot whose level is the packed top level.
 *   4. count equals the number of PRESENT slots.
 *   5. A slot's level is drawn once, when it first leaves EMPTY, and kept
 *      when the slot is updated or reused after a delete, so upper lists
 *      never need reallocating.
 *
 * Slot states
 *   EMPTY --insert--> PRESENT --remove--> DELETED --insert--> PRESENT
 *   PRESENT --insert (update)--> PRESENT
 *   A DELETED node keeps its out-links, so searches can still pass through
 *   it, but it is never a result and never a new neighbour; remove repairs
 *   the lists of the nodes that linked to it from its own neighbours.
 *
 * Searches take no lock but the grow read lock and one node spin lock at a
 * time (to copy a link list); they allocate only when the index or ef grew
 * since the thread's scratch was last sized.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>

#include "hnsw_internal.h"
#include "threads.h"
#include "topk.h"

/* Below this share of passing vectors a filtered search scans the passing
 * set exactly: a graph walk would score ~1/selectivity times more nodes. */
#define VF_FILTER_EXACT_SHARE 0.05
/* Ids sampled to estimate a filter's selectivity when the caller can't. */
#define VF_FILTER_SAMPLES 1024u
#define VF_GROW_MIN 1024u
/* How much of a neighbour's vector a walk prefetches before scoring it. */
#define VF_PREFETCH_BYTES 512u

/* ------------------------------------------------------------------ */
/* Per-thread scratch                                                   */
/* ------------------------------------------------------------------ */

struct vf_scratch {
    uint16_t *visited; /* epoch per slot; visited iff == epoch */
    size_t visited_cap;
    uint16_t epoch;
    vf_hit *cand; /* candidate min-heap storage, grows on demand */
    size_t cand_cap;
    vf_hit *res; /* result max-heap storage, >= max(ef, k) */
    size_t res_cap;
    vf_hit *sorted;      /* drained results, res_cap entries */
    vf_hit *work;        /* neighbour candidates while linking: 2 * m0 + 2 */
    vf_hit *sel;         /* heuristic output: 2 * m0 + 2 */
    uint32_t *links;     /* copy of one link list: m0 */
    uint32_t *links2;    /* a second copy, for repairs: m0 */
    uint32_t *old_links; /* level-0 links before an update: m0 */
    float *query;        /* normalized query or vector: dim */
    struct vf_scratch *next;
};

static void scratch_free(vf_scratch *s)
{
    if (!s)
        return;
    free(s->visited);
    free(s->cand);
    free(s->res);
    free(s->sorted);
    free(s->work);
    free(s->sel);
    free(s->links);
    free(s->links2);
    free(s->old_links);
    free(s->query);
    free(s);
}

static vf_scratch *scratch_new(const vf_hnsw *h)
{
    vf_scratch *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    size_t work = 2 * (size_t)h->m0 + 2;
    s->work = malloc(work * sizeof(vf_hit));
    s->sel = malloc(work * sizeof(vf_hit));
    s->links = malloc(h->m0 * sizeof(uint32_t));
    s->links2 = malloc(h->m0 * sizeof(uint32_t));
    s->old_links = malloc(h->m0 * sizeof(uint32_t));
    s->query = malloc(h->dim * sizeof(float));
    s->cand_cap = 256;
    s->cand = malloc(s->cand_cap * sizeof(vf_hit));
    if (!s->work || !s->sel || !s->links || !s->links2 || !s->old_links || !s->query || !s->cand) {
        scratch_free(s);
        return NULL;
    }
    return s;
}

/* Takes a scratch from the pool, sized for the current capacity and for
 * `results` result slots. Caller holds grow_lock (read). NULL on ENOMEM. */
static vf_scratch *scratch_acquire(const vf_hnsw *ch, size_t results)
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
        size_t cap = h->capacity ? h->capacity : 1;
        free(s->visited);
        s->visited = calloc(cap, sizeof(uint16_t));
        s->visited_cap = s->visited ? cap : 0;
        s->epoch = 0;
    }
    if (s->res_cap < results) {
        vf_hit *res = realloc(s->res, results * sizeof(vf_hit));
        if (res)
            s->res = res;
        vf_hit *sorted = res ? realloc(s->sorted, results * sizeof(vf_hit)) : NULL;
        if (sorted) {
            s->sorted = sorted;
            s->res_cap = results;
        }
    }
    if (!s->visited || s->res_cap < results) {
        scratch_free(s);
        return NULL;
    }
    return s;
}

static void scratch_release(const vf_hnsw *ch, vf_scratch *s)
{
    vf_hnsw *h = (vf_hnsw *)ch;
    pthread_mutex_lock(&h->pool_lock);
    s->next = h->pool;
    h->pool = s;
    pthread_mutex_unlock(&h->pool_lock);
}

/* Starts a new visited generation: O(1) except once per 65535 searches. */
static void visited_begin(vf_scratch *s)
{
    if (++s->epoch == 0) {
        memset(s->visited, 0, s->visited_cap * sizeof(uint16_t));
        s->epoch = 1;
    }
}

static int cand_grow(vf_scratch *s, vf_heap *cand)
{
    size_t cap = s->cand_cap * 2;
    vf_hit *items = realloc(s->cand, cap * sizeof(vf_hit));
    if (!items)
        return -ENOMEM;
    s->cand = items;
    s->cand_cap = cap;
    cand->items = items;
    cand->cap = cap;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Distances and locks                                                  */
/* ------------------------------------------------------------------ */

static inline float dist_vec(const vf_hnsw *h, const float *a, const float *b)
{
    float d = h->kernel(a, b, h->dim);
    switch (h->metric) {
    case VF_METRIC_COSINE:
        return 1.0f - d;
    case VF_METRIC_DOT:
        return -d;
    default:
        return d;
    }
}

static inline float dist_ids(const vf_hnsw *h, uint32_t a, uint32_t b)
{
    return dist_vec(h, vf_node_vector(h, a), vf_node_vector(h, b));
}

static inline void node_lock(const vf_hnsw *h, uint32_t id)
{
    unsigned spins = 0;
    for (;;) {
        uint32_t v = atomic_load_explicit(&h->versions[id], memory_order_relaxed);
        if (!(v & 1) &&
            atomic_compare_exchange_weak_explicit(&h->versions[id], &v, v + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        /* Two cores, often more threads: yield rather than spin against a
         * holder that is not running. */
        if (++spins > 64)
            sched_yield();
    }
}

static inline void node_unlock(const vf_hnsw *h, uint32_t id)
{
    atomic_fetch_add_explicit(&h->versions[id], 1, memory_order_release);
}

static inline uint32_t word_get(const uint32_t *w)
{
    return __atomic_load_n(w, __ATOMIC_RELAXED);
}

static inline void word_set(uint32_t *w, uint32_t v)
{
    __atomic_store_n(w, v, __ATOMIC_RELAXED);
}

static inline uint8_t slot_state(const vf_hnsw *h, uint32_t id)
{
    return atomic_load_explicit(&h->state[id], memory_order_acquire);
}

static inline uint32_t level_cap(const vf_hnsw *h, unsigned lev)
{
    return lev ? h->m : h->m0;
}

/* Copies id's link list at lev into buf (room for m0) without writing
 * shared memory: retries while a writer holds the list or moved its
 * version meanwhile. Returns the list's length. */
static inline uint32_t links_copy(const vf_hnsw *h, uint32_t id, unsigned lev, uint32_t *buf)
{
    const uint32_t *list = vf_node_list(h, id, lev);
    const uint32_t cap = level_cap(h, lev);
    for (unsigned spins = 0;; spins++) {
        uint32_t v = atomic_load_explicit(&h->versions[id], memory_order_acquire);
        if (!(v & 1)) {
            uint32_t n = word_get(&list[0]);
            if (n > cap)
                n = cap; /* torn by a writer: the version check below retries */
            for (uint32_t i = 0; i < n; i++)
                buf[i] = word_get(&list[1 + i]);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&h->versions[id], memory_order_relaxed) == v)
                return n;
        }
        if (spins > 64)
            sched_yield();
    }
}

static inline uint64_t entry_pack(unsigned level, uint32_t id)
{
    return ((uint64_t)level << 32) | id;
}

/* Prefetches the first cache lines of id's vector; the hardware streams
 * the rest once the kernel starts reading. */
static inline void vf_prefetch_vector(const vf_hnsw *h, uint32_t id)
{
    const char *v = (const char *)vf_node_vector(h, id);
    size_t bytes = (size_t)h->dim * sizeof(float);
    for (size_t off = 0; off < bytes && off < VF_PREFETCH_BYTES; off += 64)
        __builtin_prefetch(v + off);
}

static bool result_ok(const vf_hnsw *h, uint32_t id, const vf_filter *filter, uint32_t exclude)
{
    if (id == exclude || slot_state(h, id) != VF_SLOT_PRESENT)
        return false;
    return !filter || filter->accept(filter->ctx, id);
}

/* ------------------------------------------------------------------ */
/* Search                                                               */
/* ------------------------------------------------------------------ */

/* Greedy walk from *cur down to level `stop` + 1 with ef = 1. */
static void greedy_descend(const vf_hnsw *h, vf_scratch *s, const float *q, unsigned from,
                           unsigned stop, uint32_t *cur, float *cur_d)
{
    for (unsigned lev = from; lev > stop; lev--) {
        bool moved = true;
        while (moved) {
            moved = false;
            uint32_t n = links_copy(h, *cur, lev, s->links);
            for (uint32_t j = 0; j < n; j++) {
                float d = dist_vec(h, q, vf_node_vector(h, s->links[j]));
                if (d < *cur_d) {
                    *cur_d = d;
                    *cur = s->links[j];
                    moved = true;
                }
            }
        }
    }
}

/* Best-first search of level lev from ep, keeping the ef nearest
 * acceptable nodes in res (a max-heap over s->res). Nodes that are not
 * acceptable (deleted, filtered out, `exclude`) are walked through but
 * never kept. Returns 0 or -ENOMEM. */
static int search_layer(const vf_hnsw *h, vf_scratch *s, const float *q, uint32_t ep, float ep_d,
                        size_t ef, unsigned lev, const vf_filter *filter, uint32_t exclude,
                        vf_heap *res)
{
    vf_heap cand;
    visited_begin(s);
    uint16_t *visited = s->visited;
    const uint16_t epoch = s->epoch;
    vf_heap_init(&cand, s->cand, s->cand_cap);
    vf_heap_init(res, s->res, ef);

    /* With nothing deleted, filtered or excluded every reachable node is a
     * result: skip the per-node state check. */
    const bool all_ok = !filter && exclude == UINT32_MAX &&
                        atomic_load_explicit(&h->deleted, memory_order_relaxed) == 0;
    /* `exclude` is not walked through either: a tuning query that is a
     * stored vector must not shortcut through that vector's own links. */
    if (exclude < s->visited_cap)
        visited[exclude] = epoch;
    visited[ep] = epoch;
    vf_heap_push(&cand, ep_d, ep, -1);
    if (all_ok || result_ok(h, ep, filter, exclude))
        vf_heap_push(res, ep_d, ep, +1);
    float bound = res->len == ef ? res->items[0].distance : INFINITY;

    while (cand.len) {
        vf_hit c = cand.items[0];
        if (c.distance > bound)
            break;
        vf_heap_pop(&cand, -1);
        uint32_t n = links_copy(h, c.id, lev, s->links);
        /* Gather the unvisited neighbours first and prefetch their vectors,
         * so their cache misses overlap instead of stalling one by one. */
        uint32_t fresh = 0;
        for (uint32_t j = 0; j < n; j++) {
            uint32_t nb = s->links[j];
            if (visited[nb] == epoch)
                continue;
            visited[nb] = epoch;
            s->links[fresh++] = nb;
            vf_prefetch_vector(h, nb);
        }
        for (uint32_t j = 0; j < fresh; j++) {
            uint32_t nb = s->links[j];
            float d = dist_vec(h, q, vf_node_vector(h, nb));
            if (res->len < ef || d < bound) {
                if (cand.len == cand.cap && cand_grow(s, &cand) != 0)
                    return -ENOMEM;
                vf_heap_push(&cand, d, nb, -1);
                if (all_ok || result_ok(h, nb, filter, exclude)) {
                    vf_topk_offer(res, d, nb);
                    if (res->len == ef)
                        bound = res->items[0].distance;
                }
            }
        }
    }
    return 0;
}

/* Exact scan over present slots but `exclude`. q is already normalized
 * for cosine. */
static void exact_scan(const vf_hnsw *h, vf_scratch *s, const float *q, size_t k,
                       const vf_filter *filter, uint32_t exclude, vf_hit *out, size_t *n_out)
{
    vf_heap best;
    vf_heap_init(&best, s->res, k);
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t id = (uint32_t)i;
        if (!result_ok(h, id, filter, exclude))
            continue;
        vf_topk_offer(&best, dist_vec(h, q, vf_node_vector(h, id)), id);
    }
    *n_out = vf_topk_drain_sorted(&best, out);
}

/* Share of present slots that pass, from a strided sample. */
static size_t estimate_passing(const vf_hnsw *h, const vf_filter *filter, size_t count)
{
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

static bool query_finite(const float *q, size_t dim)
{
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(q[i]))
            return false;
    return true;
}

/* The query as the index compares it: normalized for cosine. */
static const float *query_prepare(const vf_hnsw *h, vf_scratch *s, const float *q)
{
    if (h->metric != VF_METRIC_COSINE)
        return q;
    vf_normalize(q, s->query, h->dim);
    return s->query;
}

/* One search with grow_lock held and scratch s sized for max(ef, k).
 * `exclude` is an id never returned (UINT32_MAX for none). */
static int search_locked(const vf_hnsw *h, vf_scratch *s, const float *query, size_t k, size_t ef,
                         const vf_filter *filter, uint32_t exclude, bool exact, vf_hit *out,
                         size_t *n_out)
{
    *n_out = 0;
    const float *q = query_prepare(h, s, query);
    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
    size_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
    if (entry == VF_HNSW_NO_ENTRY || count == 0)
        return 0;
    /* ef >= count asks for every vector anyway; a scan makes it exact
     * whatever the graph's shape. */
    if (count <= ef)
        exact = true;
    if (filter && !exact) {
        size_t passing = filter->passing;
        if (passing == VF_FILTER_UNKNOWN)
            passing = estimate_passing(h, filter, count);
        exact = (double)passing < VF_FILTER_EXACT_SHARE * (double)count;
    }
    if (exact) {
        exact_scan(h, s, q, k, filter, exclude, out, n_out);
        return 0;
    }

    uint32_t cur = (uint32_t)entry;
    float cur_d = dist_vec(h, q, vf_node_vector(h, cur));
    greedy_descend(h, s, q, (unsigned)(entry >> 32), 0, &cur, &cur_d);
    vf_heap res;
    int rc = search_layer(h, s, q, cur, cur_d, ef, 0, filter, exclude, &res);
    if (rc)
        return rc;
    size_t found = vf_topk_drain_sorted(&res, s->sorted);
    if (found < k && filter && found < count) {
        /* The walk ran out of passing nodes; only a scan can prove there
         * are no more, and the contract is k whenever k pass. */
        exact_scan(h, s, q, k, filter, exclude, out, n_out);
        return 0;
    }
    *n_out = found < k ? found : k;
    memcpy(out, s->sorted, *n_out * sizeof(vf_hit));
    return 0;
}

static int search_common(const vf_hnsw *h, const float *query, size_t k, size_t ef,
                         const vf_filter *filter, bool exact, vf_hit *out, size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    if (!h || !query || !out || !n_out || k == 0 || (filter && !filter->accept))
        return -EINVAL;
    if (!query_finite(query, h->dim))
        return -EINVAL;
    if (ef == 0)
        ef = atomic_load_explicit(&h->ef_search, memory_order_relaxed);
    if (ef < k)
        ef = k;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    int rc = -ENOMEM;
    vf_scratch *s = scratch_acquire(h, ef);
    if (s) {
        rc = search_locked(h, s, query, k, ef, filter, UINT32_MAX, exact, out, n_out);
        scratch_release(h, s);
    }
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return rc;
}

int vf_hnsw_search(const vf_hnsw *h, const float *query, size_t k, size_t ef,
                   const vf_filter *filter, vf_hit *out, size_t *n_out)
{
    return search_common(h, query, k, ef, filter, false, out, n_out);
}

int vf_hnsw_search_exact(const vf_hnsw *h, const float *query, size_t k, const vf_filter *filter,
                         vf_hit *out, size_t *n_out)
{
    return search_common(h, query, k, k, filter, true, out, n_out);
}

/* ------------------------------------------------------------------ */
/* Tuning ef                                                            */
/* ------------------------------------------------------------------ */

/* Stored vectors of the sampled ids and their exact neighbours (each
 * query excluding itself, as a held-out query would). */
typedef struct tune_set {
    uint32_t *ids;
    float *queries;
    vf_hit *truth;
    size_t *truth_n;
    vf_hit *got;
    size_t n;
} tune_set;

static void tune_set_free(tune_set *t)
{
    free(t->ids);
    free(t->queries);
    free(t->truth);
    free(t->truth_n);
    free(t->got);
}

static int tune_set_build(const vf_hnsw *h, vf_scratch *s, size_t k, size_t samples, tune_set *t)
{
    size_t stride = h->capacity / samples ? h->capacity / samples : 1;
    t->ids = malloc(samples * sizeof(uint32_t));
    t->queries = malloc(samples * h->dim * sizeof(float));
    t->truth = malloc(samples * k * sizeof(vf_hit));
    t->truth_n = malloc(samples * sizeof(size_t));
    t->got = malloc(k * sizeof(vf_hit));
    if (!t->ids || !t->queries || !t->truth || !t->truth_n || !t->got)
        return -ENOMEM;
    for (size_t i = 0; i < h->capacity && t->n < samples; i += stride) {
        if (slot_state(h, (uint32_t)i) != VF_SLOT_PRESENT)
            continue;
        float *q = t->queries + t->n * h->dim;
        memcpy(q, vf_node_vector(h, (uint32_t)i), h->dim * sizeof(float));
        t->ids[t->n] = (uint32_t)i;
        exact_scan(h, s, q, k, NULL, (uint32_t)i, t->truth + t->n * k, &t->truth_n[t->n]);
        t->n++;
    }
    return 0;
}

static int tune_recall(const vf_hnsw *h, vf_scratch *s, const tune_set *t, size_t k, size_t ef,
                       double *recall)
{
    size_t hits = 0, total = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t n;
        int rc =
            search_locked(h, s, t->queries + i * h->dim, k, ef, NULL, t->ids[i], false, t->got, &n);
        if (rc)
            return rc;
        const vf_hit *truth = t->truth + i * k;
        for (size_t a = 0; a < t->truth_n[i]; a++)
            for (size_t b = 0; b < n; b++)
                if (t->got[b].id == truth[a].id) {
                    hits++;
                    break;
                }
        total += t->truth_n[i];
    }
    *recall = total ? (double)hits / (double)total : 1.0;
    return 0;
}

int vf_hnsw_tune_ef(const vf_hnsw *h, size_t k, double target_recall, size_t max_ef, size_t samples,
                    uint32_t *ef_out)
{
    if (!h || !ef_out || k == 0 || !(target_recall > 0.0 && target_recall <= 1.0) || max_ef < k ||
        max_ef > UINT32_MAX || samples == 0)
        return -EINVAL;
    *ef_out = (uint32_t)k;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    tune_set t = {0};
    int rc = -ENOMEM;
    vf_scratch *s = scratch_acquire(h, max_ef);
    if (!s)
        goto out;
    rc = tune_set_build(h, s, k, samples, &t);
    for (size_t ef = k; rc == 0; ef = ef + ef / 2 + 1) {
        if (ef >= max_ef)
            ef = max_ef;
        double recall;
        rc = tune_recall(h, s, &t, k, ef, &recall);
        if (rc == 0 && (recall >= target_recall || ef == max_ef)) {
            *ef_out = (uint32_t)ef;
            break;
        }
    }
    scratch_release(h, s);
out:
    tune_set_free(&t);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Linking                                                              */
/* ------------------------------------------------------------------ */

static int hit_cmp(const void *a, const void *b)
{
    const vf_hit *x = a, *y = b;
    if (x->distance != y->distance)
        return x->distance < y->distance ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The paper's neighbour heuristic: from candidates sorted nearest-first to
 * a base node, keep a candidate only if it is nearer to the base than to
 * every candidate kept so far, up to `max`. Spreads links across
 * directions instead of clustering them. Returns the number kept in out. */
static size_t select_neighbours(const vf_hnsw *h, const vf_hit *cands, size_t n, size_t max,
                                vf_hit *out)
{
    /* When every candidate fits, pruning would only drop links: in a small
     * or sparse neighbourhood that can leave a node with no way in. */
    if (n <= max) {
        memcpy(out, cands, n * sizeof(vf_hit));
        return n;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < max; i++) {
        bool diverse = true;
        for (size_t j = 0; j < kept; j++) {
            if (dist_ids(h, cands[i].id, out[j].id) < cands[i].distance) {
                diverse = false;
                break;
            }
        }
        if (diverse)
            out[kept++] = cands[i];
    }
    return kept;
}

static void list_write(uint32_t *list, const vf_hit *hits, size_t n)
{
    for (size_t i = 0; i < n; i++)
        word_set(&list[1 + i], hits[i].id);
    word_set(&list[0], (uint32_t)n);
}

/* Adds a link nb -> x at lev, re-selecting nb's list when it is full. */
static void link_back(const vf_hnsw *h, vf_scratch *s, uint32_t nb, uint32_t x, float d,
                      unsigned lev)
{
    const uint32_t cap = level_cap(h, lev);
    node_lock(h, nb);
    uint32_t *list = vf_node_list(h, nb, lev);
    uint32_t n = list[0];
    for (uint32_t i = 0; i < n; i++) {
        if (list[1 + i] == x)
            goto out;
    }
    if (n < cap) {
        word_set(&list[1 + n], x);
        word_set(&list[0], n + 1);
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        s->work[i].id = list[1 + i];
        s->work[i].distance = dist_ids(h, nb, list[1 + i]);
    }
    s->work[n].id = x;
    s->work[n].distance = d;
    qsort(s->work, n + 1, sizeof(vf_hit), hit_cmp);
    list_write(list, s->sel, select_neighbours(h, s->work, n + 1, cap, s->sel));
out:
    node_unlock(h, nb);
}

static bool hits_contain(const vf_hit *hits, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (hits[i].id == id)
            return true;
    return false;
}

/* Rewrites nb's list at lev without x: its other links plus x's links
 * (xl, nx), re-selected by the heuristic. No-op if nb does not link x. */
static void repair_list(const vf_hnsw *h, vf_scratch *s, uint32_t nb, uint32_t x,
                        const uint32_t *xl, uint32_t nx, unsigned lev)
{
    node_lock(h, nb);
    uint32_t *list = vf_node_list(h, nb, lev);
    uint32_t n = list[0];
    bool links_x = false;
    size_t nc = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = list[1 + i];
        if (id == x) {
            links_x = true;
            continue;
        }
        if (slot_state(h, id) != VF_SLOT_PRESENT)
            continue;
        s->work[nc].id = id;
        s->work[nc++].distance = dist_ids(h, nb, id);
    }
    if (!links_x)
        goto out;
    for (uint32_t i = 0; i < nx; i++) {
        uint32_t id = xl[i];
        if (id == nb || id == x || slot_state(h, id) != VF_SLOT_PRESENT ||
            hits_contain(s->work, nc, id))
            continue;
        s->work[nc].id = id;
        s->work[nc++].distance = dist_ids(h, nb, id);
    }
    qsort(s->work, nc, sizeof(vf_hit), hit_cmp);
    list_write(list, s->sel, select_neighbours(h, s->work, nc, level_cap(h, lev), s->sel));
out:
    node_unlock(h, nb);
}

/* Writes x's list at lev: the `kept` neighbours it chose (s->sel) plus any
 * links concurrent inserts added meanwhile — another insert can reach x
 * through an upper level and link back into x's level-0 list before x has
 * written it, and overwriting would drop that node's way in. */
static void own_list_write(const vf_hnsw *h, vf_scratch *s, uint32_t x, unsigned lev, size_t kept)
{
    node_lock(h, x);
    uint32_t *list = vf_node_list(h, x, lev);
    size_t nc = kept;
    memcpy(s->work, s->sel, kept * sizeof(vf_hit));
    for (uint32_t j = 0; j < list[0]; j++) {
        uint32_t id = list[1 + j];
        if (id == x || hits_contain(s->work, nc, id))
            continue;
        s->work[nc].id = id;
        s->work[nc++].distance = dist_ids(h, x, id);
    }
    if (nc > kept)
        qsort(s->work, nc, sizeof(vf_hit), hit_cmp);
    list_write(list, s->sel, select_neighbours(h, s->work, nc, level_cap(h, lev), s->sel));
    node_unlock(h, x);
}

/* Removes every link to x from x's neighbours, bridging around it. x's own
 * lists are left intact so walks already inside it can continue. */
static void unlink_node(const vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    for (int lev = h->levels[x]; lev >= 0; lev--) {
        uint32_t nx = links_copy(h, x, (unsigned)lev, s->links2);
        for (uint32_t i = 0; i < nx; i++)
            repair_list(h, s, s->links2[i], x, s->links2, nx, (unsigned)lev);
    }
}

/* If x is the entry point, moves the entry to a present node: a neighbour
 * of x at the highest level it has one, else the highest present node.
 * Leaves x as the entry when it is the only used node. */
static void entry_move_off(vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    pthread_mutex_lock(&h->entry_lock);
    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_relaxed);
    if (entry == VF_HNSW_NO_ENTRY || (uint32_t)entry != x)
        goto out;
    for (int lev = h->levels[x]; lev >= 0; lev--) {
        uint32_t n = links_copy(h, x, (unsigned)lev, s->links);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t nb = s->links[i];
            if (slot_state(h, nb) == VF_SLOT_PRESENT) {
                atomic_store_explicit(&h->entry, entry_pack(h->levels[nb], nb),
                                      memory_order_release);
                goto out;
            }
        }
    }
    int best_level = -1;
    uint32_t best = x;
    for (size_t i = 0; i < h->capacity; i++) {
        if (i != x && slot_state(h, (uint32_t)i) == VF_SLOT_PRESENT && h->levels[i] > best_level) {
            best_level = h->levels[i];
            best = (uint32_t)i;
        }
    }
    if (best != x)
        atomic_store_explicit(&h->entry, entry_pack((unsigned)best_level, best),
                              memory_order_release);
out:
    pthread_mutex_unlock(&h->entry_lock);
}

/* Links node x (vector already stored, lists empty, level h->levels[x])
 * into the graph. Returns 0 or -ENOMEM. */
static int connect_node(vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    const unsigned level = h->levels[x];
    const float *v = vf_node_vector(h, x);
    bool holds_entry = false;
    int rc = 0;

    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
    if (entry == VF_HNSW_NO_ENTRY || level > (unsigned)(entry >> 32)) {
        pthread_mutex_lock(&h->entry_lock);
        entry = atomic_load_explicit(&h->entry, memory_order_relaxed);
        if (entry == VF_HNSW_NO_ENTRY) {
            atomic_store_explicit(&h->entry, entry_pack(level, x), memory_order_release);
            pthread_mutex_unlock(&h->entry_lock);
            return 0;
        }
        holds_entry = level > (unsigned)(entry >> 32);
        if (!holds_entry)
            pthread_mutex_unlock(&h->entry_lock);
    }
    const unsigned top = (unsigned)(entry >> 32);
    uint32_t cur = (uint32_t)entry;
    if (cur == x)
        goto out; /* x is the only node: nothing to link to */
    float cur_d = dist_vec(h, v, vf_node_vector(h, cur));
    greedy_descend(h, s, v, top, level, &cur, &cur_d);

    for (int lev = (int)(level < top ? level : top); lev >= 0; lev--) {
        vf_heap res;
        rc = search_layer(h, s, v, cur, cur_d, h->ef_construction, (unsigned)lev, NULL, x, &res);
        if (rc)
            goto out;
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
        for (size_t i = 0; i < kept; i++)
            link_back(h, s, s->links2[i], x, dist_ids(h, x, s->links2[i]), (unsigned)lev);
    }
out:
    if (holds_entry) {
        if (rc == 0)
            atomic_store_explicit(&h->entry, entry_pack(level, x), memory_order_release);
        pthread_mutex_unlock(&h->entry_lock);
    }
    return rc;
}

/* Appends x's level-0 links from before an update or reuse (old, n) to
 * its new list while there is room. Other nodes may be reachable only
 * through x; the new neighbourhood alone would strand them. */
static void links_keep_old(const vf_hnsw *h, uint32_t x, const uint32_t *old, uint32_t n)
{
    node_lock(h, x);
    uint32_t *list = vf_node_links0(h, x);
    uint32_t len = list[0];
    for (uint32_t i = 0; i < n && len < h->m0; i++) {
        uint32_t y = old[i];
        bool have = y == x || slot_state(h, y) == VF_SLOT_EMPTY;
        for (uint32_t j = 0; j < len && !have; j++)
            have = list[1 + j] == y;
        if (!have) {
            word_set(&list[1 + len], y);
            len++;
        }
    }
    word_set(&list[0], len);
    node_unlock(h, x);
}

static void lists_clear(vf_hnsw *h, uint32_t x)
{
    node_lock(h, x);
    for (unsigned lev = 0; lev <= h->levels[x]; lev++)
        word_set(vf_node_list(h, x, lev), 0);
    node_unlock(h, x);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Level with P(level >= l) = m^-l, from the index's seeded sequence. */
static unsigned level_draw(vf_hnsw *h)
{
    uint64_t n = atomic_fetch_add_explicit(&h->level_draws, 1, memory_order_relaxed);
    uint64_t r = splitmix64(h->seed ^ splitmix64(n));
    double u = ((double)(r >> 11) + 0.5) * 0x1.0p-53;
    double l = -log(u) * h->level_mult;
    return l >= VF_HNSW_MAX_LEVEL ? VF_HNSW_MAX_LEVEL : (unsigned)l;
}

/* First use of slot x: draw its level and allocate its upper lists. */
static int slot_claim(vf_hnsw *h, uint32_t x)
{
    unsigned level = level_draw(h);
    if (level > 0) {
        size_t bytes = (size_t)level * (1 + h->m) * sizeof(uint32_t);
        uint32_t *upper = calloc(1, bytes);
        if (!upper)
            return -ENOMEM;
        h->upper[x] = upper;
        atomic_fetch_add_explicit(&h->upper_bytes, bytes, memory_order_relaxed);
    }
    h->levels[x] = (uint8_t)level;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Lifecycle and storage                                                */
/* ------------------------------------------------------------------ */

void vf_hnsw_params_default(vf_hnsw_params *p, uint32_t dim)
{
    p->dim = dim;
    p->metric = VF_METRIC_COSINE;
    p->m = 16;
    p->ef_construction = 200;
    p->ef_search = 64;
    p->seed = 0x76656366735eedULL;
}

static int params_valid(const vf_hnsw_params *p)
{
    return p && p->dim >= 1 && p->dim <= VF_MAX_DIM &&
           (p->metric == VF_METRIC_L2 || p->metric == VF_METRIC_COSINE ||
            p->metric == VF_METRIC_DOT) &&
           p->m >= 2 && p->m <= VF_HNSW_MAX_M && p->ef_construction >= 1 && p->ef_search >= 1;
}

int vf_hnsw_alloc(const vf_hnsw_params *params, vf_hnsw **out)
{
    *out = NULL;
    if (!params_valid(params))
        return -EINVAL;
    vf_hnsw *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->dim = params->dim;
    h->metric = params->metric;
    h->m = params->m;
    h->m0 = 2 * params->m;
    h->ef_construction = params->ef_construction;
    h->seed = params->seed;
    h->level_mult = 1.0 / log((double)params->m);
    h->vec_offset = (1 + (size_t)h->m0) * sizeof(uint32_t);
    h->node_bytes = h->vec_offset + (size_t)h->dim * sizeof(float);
    const vf_kernels *k = vf_kernels_best();
    h->kernel = params->metric == VF_METRIC_L2 ? k->l2sq : k->dot;
    atomic_init(&h->entry, VF_HNSW_NO_ENTRY);
    atomic_init(&h->count, 0);
    atomic_init(&h->deleted, 0);
    atomic_init(&h->upper_bytes, 0);
    atomic_init(&h->ef_search, params->ef_search);
    atomic_init(&h->level_draws, 0);

    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* A grow must not starve behind a steady stream of searches. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&h->grow_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    for (unsigned i = 0; i < VF_HNSW_OP_STRIPES; i++)
        pthread_mutex_init(&h->op_locks[i], NULL);
    pthread_mutex_init(&h->entry_lock, NULL);
    pthread_mutex_init(&h->pool_lock, NULL);
    *out = h;
    return 0;
}

int vf_hnsw_create(const vf_hnsw_params *params, vf_hnsw **out)
{
    if (!out)
        return -EINVAL;
    return vf_hnsw_alloc(params, out);
}

void vf_hnsw_free(vf_hnsw *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->capacity; i++)
        free(h->upper[i]);
    free(h->upper);
    free(h->level0);
    free(h->levels);
    free((void *)h->state);
    free((void *)h->versions);
    while (h->pool) {
        vf_scratch *next = h->pool->next;
        scratch_free(h->pool);
        h->pool = next;
    }
    pthread_rwlock_destroy(&h->grow_lock);
    for (unsigned i = 0; i < VF_HNSW_OP_STRIPES; i++)
        pthread_mutex_destroy(&h->op_locks[i]);
    pthread_mutex_destroy(&h->entry_lock);
    pthread_mutex_destroy(&h->pool_lock);
    free(h);
}

/* Reallocates one per-slot array to `cap` entries, zeroing the new tail. */
static int array_grow(void **p, size_t old_cap, size_t cap, size_t elem)
{
    void *n = realloc(*p, cap * elem);
    if (!n)
        return -ENOMEM;
    memset((char *)n + old_cap * elem, 0, (cap - old_cap) * elem);
    *p = n;
    return 0;
}

int vf_hnsw_grow_locked(vf_hnsw *h, size_t capacity)
{
    if (capacity <= h->capacity)
        return 0;
    if (capacity > (size_t)UINT32_MAX || capacity > SIZE_MAX / h->node_bytes)
        return -EFBIG;
    size_t old = h->capacity;
    void *state = (void *)h->state, *versions = (void *)h->versions;
    int rc = array_grow((void **)&h->level0, old, capacity, h->node_bytes);
    if (!rc)
        rc = array_grow((void **)&h->upper, old, capacity, sizeof(uint32_t *));
    if (!rc)
        rc = array_grow((void **)&h->levels, old, capacity, 1);
    if (!rc)
        rc = array_grow(&state, old, capacity, 1);
    h->state = state;
    if (!rc)
        rc = array_grow(&versions, old, capacity, sizeof(uint32_t));
    h->versions = versions;
    /* Arrays that grew stay grown; capacity moves only when all did. */
    if (!rc)
        h->capacity = capacity;
    return rc;
}

static int ensure_capacity(vf_hnsw *h, size_t need)
{
    pthread_rwlock_rdlock(&h->grow_lock);
    size_t cap = h->capacity;
    pthread_rwlock_unlock(&h->grow_lock);
    if (need <= cap)
        return 0;
    size_t target = cap + cap / 2;
    if (target < need)
        target = need;
    if (target < VF_GROW_MIN)
        target = VF_GROW_MIN;
    if (target > (size_t)UINT32_MAX)
        target = UINT32_MAX;
    pthread_rwlock_wrlock(&h->grow_lock);
    int rc = vf_hnsw_grow_locked(h, target);
    pthread_rwlock_unlock(&h->grow_lock);
    return rc;
}

int vf_hnsw_reserve(vf_hnsw *h, size_t capacity)
{
    if (!h)
        return -EINVAL;
    if (capacity > (size_t)UINT32_MAX - 1)
        return -EFBIG;
    pthread_rwlock_wrlock(&h->grow_lock);
    int rc = vf_hnsw_grow_locked(h, capacity);
    pthread_rwlock_unlock(&h->grow_lock);
    return rc;
}

void vf_hnsw_params_get(const vf_hnsw *h, vf_hnsw_params *out)
{
    out->dim = h->dim;
    out->metric = h->metric;
    out->m = h->m;
    out->ef_construction = h->ef_construction;
    out->ef_search = atomic_load_explicit(&h->ef_search, memory_order_relaxed);
    out->seed = h->seed;
}

void vf_hnsw_set_ef_search(vf_hnsw *h, uint32_t ef)
{
    if (h && ef >= 1)
        atomic_store_explicit(&h->ef_search, ef, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Insert, remove, read                                                 */
/* ------------------------------------------------------------------ */

int vf_hnsw_insert(vf_hnsw *h, uint32_t id, const float *vec)
{
    if (!h || !vec)
        return -EINVAL;
    if (id == UINT32_MAX)
        return -EFBIG;
    if (!query_finite(vec, h->dim))
        return -EINVAL;
    int rc = ensure_capacity(h, (size_t)id + 1);
    if (rc)
        return rc;

    pthread_rwlock_rdlock(&h->grow_lock);
    pthread_mutex_t *op = &h->op_locks[id % VF_HNSW_OP_STRIPES];
    pthread_mutex_lock(op);
    vf_scratch *s = scratch_acquire(h, h->ef_construction);
    if (!s) {
        rc = -ENOMEM;
        goto out_unlock;
    }
    uint32_t old_n = 0;
    uint8_t was = slot_state(h, id);
    if (was == VF_SLOT_EMPTY) {
        rc = slot_claim(h, id);
        if (rc)
            goto out_release;
    } else {
        if (was == VF_SLOT_PRESENT)
            unlink_node(h, s, id);
        entry_move_off(h, s, id);
        old_n = links_copy(h, id, 0, s->old_links);
        lists_clear(h, id);
    }
    float *dst = vf_node_vector(h, id);
    if (h->metric == VF_METRIC_COSINE)
        vf_normalize(vec, dst, h->dim);
    else
        memcpy(dst, vec, h->dim * sizeof(float));
    /* Present before linking: concurrent walks may reach it via a link
     * added below and must be able to return it. */
    atomic_store_explicit(&h->state[id], VF_SLOT_PRESENT, memory_order_release);
    if (was != VF_SLOT_PRESENT)
        atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    if (was == VF_SLOT_DELETED)
        atomic_fetch_sub_explicit(&h->deleted, 1, memory_order_relaxed);
    rc = connect_node(h, s, id);
    if (rc == 0)
        links_keep_old(h, id, s->old_links, old_n);
out_release:
    scratch_release(h, s);
out_unlock:
    pthread_mutex_unlock(op);
    pthread_rwlock_unlock(&h->grow_lock);
    return rc;
}

typedef struct batch_job {
    vf_hnsw *h;
    const uint32_t *ids;
    uint32_t first_id;
    const float *vecs;
    const size_t *rows; /* the rows to insert in parallel */
    size_t n;
    _Atomic size_t next;
    _Atomic int err;
} batch_job;

static uint32_t batch_id(const batch_job *job, size_t row)
{
    return job->ids ? job->ids[row] : job->first_id + (uint32_t)row;
}

static void batch_fail(batch_job *job, int rc)
{
    int zero = 0;
    atomic_compare_exchange_strong(&job->err, &zero, rc);
}

static void *batch_worker(void *arg)
{
    batch_job *job = arg;
    size_t i;
    while ((i = atomic_fetch_add(&job->next, 1)) < job->n) {
        size_t row = job->rows[i];
        int rc = vf_hnsw_insert(job->h, batch_id(job, row), job->vecs + row * job->h->dim);
        if (rc)
            batch_fail(job, rc);
    }
    return NULL;
}

/* Splits the rows: fresh ones (an EMPTY slot, the id's first row) go to
 * fresh[], the others, which overwrite a vector that other inserts may be
 * reading while they link (an update, a reused slot, a repeated id), to
 * later[], in row order. */
static int batch_split(const batch_job *job, size_t n, size_t max_id, size_t *fresh,
                       size_t *n_fresh, size_t *later, size_t *n_later)
{
    uint64_t *seen = calloc(max_id / 64 + 1, sizeof(uint64_t));
    if (!seen)
        return -ENOMEM;
    *n_fresh = *n_later = 0;
    for (size_t row = 0; row < n; row++) {
        uint32_t id = batch_id(job, row);
        bool repeat = seen[id / 64] >> (id % 64) & 1u;
        seen[id / 64] |= (uint64_t)1 << (id % 64);
        if (repeat || slot_state(job->h, id) != VF_SLOT_EMPTY)
            later[(*n_later)++] = row;
        else
            fresh[(*n_fresh)++] = row;
    }
    free(seen);
    return 0;
}

int vf_hnsw_insert_batch(vf_hnsw *h, const uint32_t *ids, uint32_t first_id, const float *vecs,
                         size_t n, unsigned threads)
{
    if (!h || (!vecs && n))
        return -EINVAL;
    if (n == 0)
        return 0;
    size_t max_id = 0;
    if (ids) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] > max_id)
                max_id = ids[i];
    } else {
        max_id = (size_t)first_id + n - 1;
    }
    if (max_id >= UINT32_MAX)
        return -EFBIG;
    int rc = ensure_capacity(h, max_id + 1);
    if (rc)
        return rc;

    batch_job job = {.h = h, .ids = ids, .first_id = first_id, .vecs = vecs};
    atomic_init(&job.next, 0);
    atomic_init(&job.err, 0);
    size_t *fresh = malloc(n * sizeof(size_t)), *later = malloc(n * sizeof(size_t));
    size_t n_later = 0;
    rc = fresh && later ? batch_split(&job, n, max_id, fresh, &job.n, later, &n_later) : -ENOMEM;
    if (rc) {
        free(fresh);
        free(later);
        return rc;
    }
    job.rows = fresh;
    unsigned nt = vf_threads_resolve(threads);
    if (nt > job.n)
        nt = job.n > 0 ? (unsigned)job.n : 1u;
    pthread_t tids[nt > 1 ? nt - 1 : 1];
    unsigned started = 0;
    for (unsigned t = 1; t < nt; t++) {
        if (pthread_create(&tids[started], NULL, batch_worker, &job) != 0)
            break;
        started++;
    }
    batch_worker(&job);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    for (size_t i = 0; i < n_later; i++) {
        rc = vf_hnsw_insert(h, batch_id(&job, later[i]), vecs + later[i] * h->dim);
        if (rc)
            batch_fail(&job, rc);
    }
    free(fresh);
    free(later);
    return atomic_load(&job.err);
}

int vf_hnsw_remove(vf_hnsw *h, uint32_t id)
{
    if (!h)
        return -EINVAL;
    pthread_rwlock_rdlock(&h->grow_lock);
    int rc = -ENOENT;
    if (id >= h->capacity)
        goto out;
    pthread_mutex_t *op = &h->op_locks[id % VF_HNSW_OP_STRIPES];
    pthread_mutex_lock(op);
    if (slot_state(h, id) != VF_SLOT_PRESENT)
        goto out_op;
    vf_scratch *s = scratch_acquire(h, 1);
    if (!s) {
        rc = -ENOMEM;
        goto out_op;
    }
    atomic_store_explicit(&h->state[id], VF_SLOT_DELETED, memory_order_release);
    atomic_fetch_sub_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->deleted, 1, memory_order_relaxed);
    unlink_node(h, s, id);
    entry_move_off(h, s, id);
    scratch_release(h, s);
    rc = 0;
out_op:
    pthread_mutex_unlock(op);
out:
    pthread_rwlock_unlock(&h->grow_lock);
    return rc;
}

bool vf_hnsw_contains(const vf_hnsw *h, uint32_t id)
{
    if (!h)
        return false;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    bool present = id < h->capacity && slot_state(h, id) == VF_SLOT_PRESENT;
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return present;
}

int vf_hnsw_get(const vf_hnsw *h, uint32_t id, float *out)
{
    if (!h || !out)
        return -EINVAL;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    int rc = -ENOENT;
    if (id < h->capacity && slot_state(h, id) == VF_SLOT_PRESENT) {
        memcpy(out, vf_node_vector(h, id), h->dim * sizeof(float));
        rc = 0;
    }
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return rc;
}

size_t vf_hnsw_count(const vf_hnsw *h)
{
    return h ? atomic_load_explicit(&h->count, memory_order_relaxed) : 0;
}

size_t vf_hnsw_memory(const vf_hnsw *h)
{
    if (!h)
        return 0;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    /* Per slot: level-0 record, upper pointer, level, state, version. */
    size_t per_slot = h->node_bytes + sizeof(uint32_t *) + 2 + sizeof(uint32_t);
    size_t bytes = sizeof(*h) + h->capacity * per_slot +
                   atomic_load_explicit(&h->upper_bytes, memory_order_relaxed);
    pthread_mutex_lock((pthread_mutex_t *)&h->pool_lock);
    for (const vf_scratch *s = h->pool; s; s = s->next)
        bytes += sizeof(*s) + s->visited_cap * sizeof(uint16_t) +
                 (s->cand_cap + 2 * s->res_cap + 4 * (size_t)h->m0 + 4) * sizeof(vf_hit) +
                 3 * h->m0 * sizeof(uint32_t) + h->dim * sizeof(float);
    pthread_mutex_unlock((pthread_mutex_t *)&h->pool_lock);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return bytes;
}

/* ------------------------------------------------------------------ */
/* Reachability                                                         */
/* ------------------------------------------------------------------ */

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
    uint32_t links[2 * VF_HNSW_MAX_M];
    while (head < tail) {
        uint32_t id = queue[head++];
        reached += slot_state(h, id) == VF_SLOT_PRESENT;
        uint32_t n = links_copy(h, id, 0, links);
        for (uint32_t j = 0; j < n; j++) {
            if (!seen[links[j]]) {
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
    uint8_t *seen = malloc(cap);
    uint32_t *queue = malloc(cap * sizeof(uint32_t));
    if (seen && queue)
        lost = walk_from_entry(h, seen, queue);
    free(seen);
    free(queue);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return lost;
}

/* Gives stranded node u a way in: a link from the nearest reachable node
 * with room, or, if none of the nearest has room, in place of the
 * farthest link of the nearest one. */
static int link_in(vf_hnsw *h, vf_scratch *s, uint32_t u)
{
    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
    const float *v = vf_node_vector(h, u);
    uint32_t cur = (uint32_t)entry;
    float cur_d = dist_vec(h, v, vf_node_vector(h, cur));
    greedy_descend(h, s, v, (unsigned)(entry >> 32), 0, &cur, &cur_d);
    vf_heap res;
    int rc = search_layer(h, s, v, cur, cur_d, h->ef_construction, 0, NULL, u, &res);
    if (rc)
        return rc;
    size_t n = vf_topk_drain_sorted(&res, s->sorted);
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n && i < h->m; i++) {
        uint32_t r = s->sorted[i].id;
        node_lock(h, r);
        uint32_t *list = vf_node_links0(h, r);
        bool done = list[0] < h->m0;
        if (done) {
            word_set(&list[1 + list[0]], u);
            word_set(&list[0], list[0] + 1);
        }
        node_unlock(h, r);
        if (done)
            return 0;
    }
    uint32_t r = s->sorted[0].id;
    node_lock(h, r);
    uint32_t *list = vf_node_links0(h, r);
    uint32_t far = 0;
    float far_d = -INFINITY;
    for (uint32_t j = 0; j < list[0]; j++) {
        float d = dist_ids(h, r, list[1 + j]);
        if (d > far_d) {
            far_d = d;
            far = j;
        }
    }
    word_set(&list[1 + far], u);
    node_unlock(h, r);
    return 0;
}

int vf_hnsw_reconnect(vf_hnsw *h, size_t *fixed)
{
    if (!h || !fixed)
        return -EINVAL;
    *fixed = 0;
    pthread_rwlock_rdlock(&h->grow_lock);
    size_t cap = h->capacity ? h->capacity : 1;
    uint8_t *seen = malloc(cap);
    uint32_t *queue = malloc(cap * sizeof(uint32_t));
    vf_scratch *s = scratch_acquire(h, h->ef_construction);
    int rc = seen && queue && s ? 0 : -ENOMEM;
    /* Replacing a farthest link can strand its target in turn; each pass
     * fixes what the previous one left, and a few passes settle it. */
    for (int pass = 0; rc == 0 && pass < 8; pass++) {
        if (walk_from_entry(h, seen, queue) == 0)
            break;
        for (size_t i = 0; rc == 0 && i < h->capacity; i++) {
            if (!seen[i] && slot_state(h, (uint32_t)i) == VF_SLOT_PRESENT) {
                rc = link_in(h, s, (uint32_t)i);
                (*fixed)++;
            }
        }
    }
    if (s)
        scratch_release(h, s);
    free(seen);
    free(queue);
    pthread_rwlock_unlock(&h->grow_lock);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Invariant checker                                                    */
/* ------------------------------------------------------------------ */

int vf_hnsw_check(const vf_hnsw *h)
{
    if (!h)
        return -EINVAL;
    size_t present = 0, used = 0;
    for (size_t i = 0; i < h->capacity; i++) {
        uint8_t st = h->state[i];
        if (st == VF_SLOT_EMPTY)
            continue;
        if (st != VF_SLOT_PRESENT && st != VF_SLOT_DELETED)
            return -EILSEQ;
        used++;
        present += st == VF_SLOT_PRESENT;
        unsigned level = h->levels[i];
        if (level > VF_HNSW_MAX_LEVEL || (level > 0) != (h->upper[i] != NULL))
            return -EILSEQ;
        for (unsigned lev = 0; lev <= level; lev++) {
            const uint32_t *list = vf_node_list(h, (uint32_t)i, lev);
            if (list[0] > level_cap(h, lev))
                return -EILSEQ;
            for (uint32_t j = 0; j < list[0]; j++) {
                uint32_t to = list[1 + j];
                if (to == i || to >= h->capacity || h->state[to] == VF_SLOT_EMPTY ||
                    h->levels[to] < lev)
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
    if (ep >= h->capacity || h->state[ep] == VF_SLOT_EMPTY || h->levels[ep] != (entry >> 32))
        return -EILSEQ;
    return 0;
}
