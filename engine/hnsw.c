/*
 * hnsw.c — a hierarchical navigable small world graph (Malkov & Yashunin)
 * with deletes, in-place updates, filtered search and concurrent inserts
 * and searches, built so that every present vector stays reachable.
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
 *   6. A DELETED slot's lists are empty.
 *   7. The entry point is the oldest present graph node (not a rider), and
 *      every other present graph node has an anchor (an older graph node
 *      that links it at level 0) unless it was counted as stranded.
 *   8. Twin rings are consistent (next and prev agree), every member is
 *      present, riders have empty lists and the same vector as their
 *      ring's one head; a slot that is not present is a ring of one.
 *
 * Slot states
 *   EMPTY --insert--> PRESENT --remove--> DELETED --insert--> PRESENT
 *   PRESENT --insert (update)--> PRESENT
 *   remove repairs the lists that linked to the node from its own
 *   neighbours, then empties its lists: a deleted node is a dead end that
 *   is never a result and never a new neighbour.
 *
 * Reachability (the graph stays connected by construction)
 *   Nodes are ordered by age: a is older than b when its level is higher,
 *   or equal and its id lower. The order never changes (levels are kept
 *   for the life of a slot), it survives a snapshot, and the entry point
 *   is always the oldest present node.
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
 *      before the operation returns ("rehomed").
 *   d. The graph is built with the query's distance, except for dot,
 *      which is not a metric (its heuristic left small-norm vectors with
 *      no way in, and its lists all pointing at a few large ones): there
 *      the graph is the l2 graph of the vectors lifted onto a sphere, x ->
 *      (x, sqrt(M - |x|^2)), M the largest squared norm so far, where l2
 *      ranks the lifted points as -dot ranks them for a query (q, 0)
 *      (Bachrach et al., 2014). Searches then walk it ranking by -dot.
 *
 * Twins (identical vectors, many in real data: the same text embedded
 * twice, boilerplate, empty strings)
 *   A thousand copies of one vector as a thousand graph nodes fill every
 *   candidate list of a walk that comes near them and hold it there. So an
 *   insert whose walk lands on a node with the same vector does not join
 *   the graph: it rides on that node (the head), in a ring of twins that
 *   searches expand when the head is a result. A rider has no links and
 *   no way in but its head. Removing or updating a head first re-heads its
 *   ring: the next rider is linked in as a graph node, then the old head
 *   leaves. Twins that were not found (two walks racing) stay separate
 *   heads; for them a list keeps at most a quarter of its room for twins
 *   of its owner, ties between equal distances are broken by a hash
 *   salted with the list's owner (not by id, which made every list pick
 *   the same oldest twins), and a construction walk keeps a few twins.
 *   A search still checks its own work: a walk that comes back with fewer
 *   than min(k, passing) hits is redone as an exact scan.
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
/* Links in that one operation may make by displacing an anchoring link (each
 * makes an orphan of its own); past it a node is counted as stranded. */
#define VF_DISPLACE_BUDGET 64u
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
    vf_hit *sorted;    /* drained results, res_cap entries */
    vf_hit *work;      /* neighbour candidates while linking: 2 * m0 + 2 */
    vf_hit *sel;       /* heuristic output: 2 * m0 + 2 */
    uint32_t *links;   /* copy of one link list: m0 */
    uint32_t *links2;  /* a second copy, for repairs: m0 */
    float *query;      /* normalized query or vector: dim */
    uint32_t *orphans; /* graph nodes whose anchor went */
    size_t orphans_len, orphans_cap;
    size_t displace_left; /* forced displacements this operation may still make */
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
    free(s->query);
    free(s->orphans);
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
    s->query = malloc(h->dim * sizeof(float));
    s->cand_cap = 256;
    s->cand = malloc(s->cand_cap * sizeof(vf_hit));
    if (!s->work || !s->sel || !s->links || !s->links2 || !s->query || !s->cand) {
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

static inline float sq_get(const vf_hnsw *h, uint32_t id)
{
    float v;
    __atomic_load(&h->sqnorm[id], &v, __ATOMIC_RELAXED);
    return v;
}

static inline float max_sq_get(const vf_hnsw *h)
{
    uint32_t bits = atomic_load_explicit(&h->max_sq_bits, memory_order_relaxed);
    float m;
    memcpy(&m, &bits, sizeof(m));
    return m;
}

/* The distance the graph is built with (reachability d): the query's
 * metric, except for dot, where it is the squared l2 distance between
 * a and b lifted to (a, sqrt(M - |a|^2)) and (b, sqrt(M - |b|^2)), M the
 * largest squared norm seen, halved: M - a.b - lift(a) lift(b). a_sq and
 * b_sq are the squared norms (read for dot only). */
static inline float dist_build(const vf_hnsw *h, const float *a, float a_sq, const float *b,
                               float b_sq)
{
    if (h->metric != VF_METRIC_DOT)
        return dist_vec(h, a, b);
    float m = max_sq_get(h);
    float la = m > a_sq ? sqrtf(m - a_sq) : 0.0f, lb = m > b_sq ? sqrtf(m - b_sq) : 0.0f;
    return m - h->kernel(a, b, h->dim) - la * lb;
}

/* dist_build between two nodes. */
static inline float dist_ids(const vf_hnsw *h, uint32_t a, uint32_t b)
{
    bool dot = h->metric == VF_METRIC_DOT;
    return dist_build(h, vf_node_vector(h, a), dot ? sq_get(h, a) : 0.0f, vf_node_vector(h, b),
                      dot ? sq_get(h, b) : 0.0f);
}

/* The squared norm dist_build needs for a node's vector q (0 unless dot). */
static inline float node_sq(const vf_hnsw *h, uint32_t id)
{
    return h->metric == VF_METRIC_DOT ? sq_get(h, id) : 0.0f;
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

static inline uint8_t ring_role(const vf_hnsw *h, uint32_t id)
{
    return atomic_load_explicit(&h->ring_role[id], memory_order_acquire);
}

/* A present node that is part of the graph (not a rider). */
static inline bool graph_node(const vf_hnsw *h, uint32_t id)
{
    return slot_state(h, id) == VF_SLOT_PRESENT && ring_role(h, id) != VF_TWIN_RIDER;
}

static bool hits_contain(const vf_hit *hits, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (hits[i].id == id)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* Twins: rings and the table of heads                                  */
/* ------------------------------------------------------------------ */

#define VF_TABLE_EMPTY UINT32_MAX
#define VF_TABLE_GONE (UINT32_MAX - 1)

/* A hash of the vector's bytes. Every query pays it, so four independent
 * lanes take 32 bytes a step (the multiplies overlap). */
static uint64_t vector_hash(const float *v, size_t dim)
{
    const unsigned char *p = (const unsigned char *)v;
    size_t n = dim * sizeof(float), i = 0;
    uint64_t lane[4] = {0x9E3779B97F4A7C15ULL ^ n, 0xC2B2AE3D27D4EB4FULL, 0x165667B19E3779F9ULL,
                        0x27D4EB2F165667C5ULL};
    for (; i + 32 <= n; i += 32) {
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * l, 8);
            lane[l] = (lane[l] ^ w) * 0xBF58476D1CE4E5B9ULL;
            lane[l] ^= lane[l] >> 29;
        }
    }
    uint64_t x = lane[0] ^ (lane[1] * 3) ^ (lane[2] * 5) ^ (lane[3] * 7);
    for (; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i < 8 ? n - i : 8);
        x = (x ^ w) * 0xBF58476D1CE4E5B9ULL;
        x ^= x >> 29;
    }
    return x ^ (x >> 32);
}

/* The head whose vector is v, or UINT32_MAX. Caller holds twin_lock or
 * table_lock. The table is at most half full, so a probe ends. */
static uint32_t table_find(const vf_hnsw *h, const float *v)
{
    if (h->table_cap == 0)
        return UINT32_MAX;
    size_t mask = h->table_cap - 1;
    for (size_t at = vector_hash(v, h->dim) & mask;; at = (at + 1) & mask) {
        uint32_t id = h->table[at];
        if (id == VF_TABLE_EMPTY)
            return UINT32_MAX;
        if (id != VF_TABLE_GONE &&
            memcmp(vf_node_vector(h, id), v, (size_t)h->dim * sizeof(float)) == 0)
            return id;
    }
}

/* The table slot holding id (whose vector is in place). */
static size_t table_slot(const vf_hnsw *h, uint32_t id)
{
    size_t mask = h->table_cap - 1;
    size_t at = vector_hash(vf_node_vector(h, id), h->dim) & mask;
    while (h->table[at] != id)
        at = (at + 1) & mask;
    return at;
}

static void table_put_at(uint32_t *table, size_t cap, uint64_t hash, uint32_t id)
{
    size_t at = hash & (cap - 1);
    while (table[at] != VF_TABLE_EMPTY && table[at] != VF_TABLE_GONE)
        at = (at + 1) & (cap - 1);
    table[at] = id;
}

/* Makes room for one more head: rebuilds the table, dropping its gone
 * slots, when it would be more than half full. Caller holds twin_lock.
 * 0 or -ENOMEM. */
static int table_reserve(vf_hnsw *h)
{
    if ((h->table_used + h->table_gone + 1) * 2 <= h->table_cap)
        return 0;
    size_t cap = 64;
    while (cap < 4 * (h->table_used + 1))
        cap *= 2;
    uint32_t *table = malloc(cap * sizeof(uint32_t));
    if (!table)
        return -ENOMEM;
    memset(table, 0xFF, cap * sizeof(uint32_t));
    for (size_t i = 0; i < h->table_cap; i++) {
        uint32_t id = h->table[i];
        if (id != VF_TABLE_EMPTY && id != VF_TABLE_GONE)
            table_put_at(table, cap, vector_hash(vf_node_vector(h, id), h->dim), id);
    }
    pthread_rwlock_wrlock(&h->table_lock);
    free(h->table);
    h->table = table;
    h->table_cap = cap;
    h->table_gone = 0;
    pthread_rwlock_unlock(&h->table_lock);
    return 0;
}

/* Caller holds twin_lock and has reserved room. */
static void table_put(vf_hnsw *h, uint32_t id)
{
    pthread_rwlock_wrlock(&h->table_lock);
    table_put_at(h->table, h->table_cap, vector_hash(vf_node_vector(h, id), h->dim), id);
    h->table_used++;
    pthread_rwlock_unlock(&h->table_lock);
}

/* Replaces head x by z (its twin), or drops x when z is UINT32_MAX.
 * Caller holds twin_lock; x's vector is still in place. */
static void table_replace(vf_hnsw *h, uint32_t x, uint32_t z)
{
    pthread_rwlock_wrlock(&h->table_lock);
    size_t at = table_slot(h, x);
    h->table[at] = z == UINT32_MAX ? VF_TABLE_GONE : z;
    if (z == UINT32_MAX) {
        h->table_used--;
        h->table_gone++;
    }
    pthread_rwlock_unlock(&h->table_lock);
}

static void ring_alone(const vf_hnsw *h, uint32_t x)
{
    atomic_store_explicit(&h->twin_next[x], x, memory_order_relaxed);
    atomic_store_explicit(&h->twin_prev[x], x, memory_order_relaxed);
}

/* Caller holds twin_lock (or has the index to itself). */
static void ring_insert_after(const vf_hnsw *h, uint32_t at, uint32_t x)
{
    uint32_t next = atomic_load_explicit(&h->twin_next[at], memory_order_relaxed);
    atomic_store_explicit(&h->twin_prev[x], at, memory_order_relaxed);
    atomic_store_explicit(&h->twin_prev[next], x, memory_order_relaxed);
    /* x's own next is set before it is published: a search that follows
     * at -> x goes on into the ring, never off its end. */
    atomic_store_explicit(&h->twin_next[x], next, memory_order_release);
    atomic_store_explicit(&h->twin_next[at], x, memory_order_release);
}

/* Takes x out of its ring into a ring of its own (caller holds
 * twin_lock). A search standing on x meanwhile stops there and misses the
 * rest of that ring once. */
static void ring_leave(const vf_hnsw *h, uint32_t x)
{
    uint32_t next = atomic_load_explicit(&h->twin_next[x], memory_order_relaxed);
    uint32_t prev = atomic_load_explicit(&h->twin_prev[x], memory_order_relaxed);
    atomic_store_explicit(&h->twin_next[prev], next, memory_order_release);
    atomic_store_explicit(&h->twin_prev[next], prev, memory_order_relaxed);
    ring_alone(h, x);
}

/* Makes present, unlinked x ride on the head that has its vector, or
 * enters x in the table as a head (room reserved by twin_reserve, whose
 * twin_lock this releases). Returns true if x rides. */
static bool twin_place(vf_hnsw *h, uint32_t x)
{
    uint32_t head = table_find(h, vf_node_vector(h, x));
    bool rides = head != UINT32_MAX && head != x;
    if (rides) {
        atomic_store_explicit(&h->ring_role[x], VF_TWIN_RIDER, memory_order_release);
        ring_insert_after(h, head, x);
    } else {
        table_put(h, x);
    }
    pthread_mutex_unlock(&h->twin_lock);
    return rides;
}

/* Takes twin_lock with room in the table for one more head; on error the
 * lock is not held. 0 or -ENOMEM. */
static int twin_reserve(vf_hnsw *h)
{
    pthread_mutex_lock(&h->twin_lock);
    int rc = table_reserve(h);
    if (rc)
        pthread_mutex_unlock(&h->twin_lock);
    return rc;
}

/* Takes rider x out of its ring. */
static void twin_dismount(vf_hnsw *h, uint32_t x)
{
    pthread_mutex_lock(&h->twin_lock);
    ring_leave(h, x);
    atomic_store_explicit(&h->ring_role[x], VF_TWIN_HEAD, memory_order_release);
    pthread_mutex_unlock(&h->twin_lock);
}

static int connect_node(vf_hnsw *h, vf_scratch *s, uint32_t x);

/* Before head x is removed or updated: if twins ride on it, links the
 * next one into the graph and hands it x's ring and table slot; else
 * takes x out of the table. Returns 0 or -ENOMEM (nothing changed). */
static int twin_unhead(vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    int rc = 0;
    pthread_mutex_lock(&h->twin_lock);
    uint32_t z = atomic_load_explicit(&h->twin_next[x], memory_order_relaxed);
    if (z == x) {
        table_replace(h, x, UINT32_MAX);
        goto out;
    }
    /* z is linked while it is still in x's ring, so searches find the
     * twins through x until z has its links. */
    atomic_store_explicit(&h->ring_role[z], VF_TWIN_HEAD, memory_order_release);
    rc = connect_node(h, s, z);
    if (rc) {
        atomic_store_explicit(&h->ring_role[z], VF_TWIN_RIDER, memory_order_release);
        goto out;
    }
    table_replace(h, x, z);
    ring_leave(h, x);
out:
    pthread_mutex_unlock(&h->twin_lock);
    return rc;
}

/* The head whose vector is exactly q (a query), or UINT32_MAX. */
static uint32_t twin_lookup(const vf_hnsw *h, const float *q)
{
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->table_lock);
    uint32_t id = table_find(h, q);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->table_lock);
    return id;
}

/* ------------------------------------------------------------------ */
/* Search                                                               */
/* ------------------------------------------------------------------ */

/* Greedy walk from *cur down to level `stop` + 1 with ef = 1, by
 * dist_build when `build` (q is then a node's vector of squared norm
 * q_sq). It steps only onto graph nodes: a deleted node or a rider has no
 * links to go on with. */
static void greedy_descend(const vf_hnsw *h, vf_scratch *s, const float *q, float q_sq, bool build,
                           unsigned from, unsigned stop, uint32_t *cur, float *cur_d)
{
    for (unsigned lev = from; lev > stop; lev--) {
        bool moved = true;
        while (moved) {
            moved = false;
            uint32_t n = links_copy(h, *cur, lev, s->links);
            for (uint32_t j = 0; j < n; j++) {
                uint32_t nb = s->links[j];
                const float *v = vf_node_vector(h, nb);
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

/* Writes to out up to k results from the walk's n hits (nearest first):
 * each hit that passes, then the twins riding on it that pass, scored
 * one by one (a ring that changed meanwhile cannot give a wrong
 * distance), at most 4 * k steps into one ring. Returns the count. */
static size_t ring_expand(const vf_hnsw *h, vf_scratch *s, const float *q, const vf_hit *hits,
                          size_t n, size_t k, const vf_filter *filter, uint32_t exclude,
                          vf_hit *out)
{
    visited_begin(s);
    size_t got = 0;
    for (size_t i = 0; i < n && got < k; i++) {
        uint32_t c = hits[i].id;
        if (s->visited[c] != s->epoch && result_ok(h, c, filter, exclude))
            out[got++] = hits[i];
        s->visited[c] = s->epoch;
        uint32_t z = c;
        for (size_t steps = 0; steps < 4 * k && got < k; steps++) {
            uint32_t next = atomic_load_explicit(&h->twin_next[z], memory_order_acquire);
            if (next == c || next == z || next >= h->capacity)
                break;
            z = next;
            if (s->visited[z] == s->epoch)
                continue;
            s->visited[z] = s->epoch;
            if (result_ok(h, z, filter, exclude))
                out[got++] = (vf_hit){.id = z, .distance = dist_vec(h, q, vf_node_vector(h, z))};
        }
    }
    return got;
}

/* Best-first search of level lev from ep, keeping the ef nearest
 * acceptable nodes in res (a max-heap over s->res). Nodes that are not
 * acceptable (deleted, filtered out, `exclude`) are walked through but
 * never kept. A `build` walk (q is a node's vector of squared norm q_sq,
 * to be linked) ranks by dist_build and keeps graph nodes only. Returns 0
 * or -ENOMEM. */
static int search_layer(const vf_hnsw *h, vf_scratch *s, const float *q, uint32_t ep, float ep_d,
                        size_t ef, unsigned lev, const vf_filter *filter, uint32_t exclude,
                        bool build, float q_sq, vf_heap *res)
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
    if (all_ok || walk_keeps(h, ep, filter, exclude, build))
        vf_heap_push(res, ep_d, ep, +1);
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
            const float *v = vf_node_vector(h, nb);
            float d = build ? dist_build(h, q, q_sq, v, node_sq(h, nb)) : dist_vec(h, q, v);
            if (res->len < ef || d < bound) {
                if (cand.len == cand.cap && cand_grow(s, &cand) != 0)
                    return -ENOMEM;
                vf_heap_push(&cand, d, nb, -1);
                if (all_ok || walk_keeps(h, nb, filter, exclude, build)) {
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

/* A stored vector equal to the query is a result the walk may have
 * missed (an outlier, or a walk drawn elsewhere): the table of heads finds
 * it, and it joins the walk's n hits (room for cap) in distance order.
 * Returns the new count. */
static size_t exact_twin_join(const vf_hnsw *h, const float *q, vf_hit *hits, size_t n, size_t cap)
{
    uint32_t head = twin_lookup(h, q);
    if (head == UINT32_MAX || slot_state(h, head) != VF_SLOT_PRESENT || hits_contain(hits, n, head))
        return n;
    vf_hit hit = {.id = head, .distance = dist_vec(h, q, vf_node_vector(h, head))};
    size_t at = 0;
    while (at < n && hits[at].distance <= hit.distance)
        at++;
    if (at == cap)
        return n;
    if (n == cap)
        n--;
    memmove(hits + at + 1, hits + at, (n - at) * sizeof(vf_hit));
    hits[at] = hit;
    return n + 1;
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
    greedy_descend(h, s, q, 0.0f, false, (unsigned)(entry >> 32), 0, &cur, &cur_d);
    vf_heap res;
    int rc = search_layer(h, s, q, cur, cur_d, ef, 0, filter, exclude, false, 0.0f, &res);
    if (rc)
        return rc;
    size_t walked = vf_topk_drain_sorted(&res, s->sorted);
    walked = exact_twin_join(h, q, s->sorted, walked, res.cap);
    size_t found = ring_expand(h, s, q, s->sorted, walked, k, filter, exclude, out);
    /* The walk ran out of (passing) nodes: only a scan can prove there are
     * no more, and the contract is k whenever k pass. A tuning query
     * (`exclude`) must see the walk as it is, shortfalls included. */
    if (found < k && found < count && exclude == UINT32_MAX) {
        struct vf_hnsw *counters = (struct vf_hnsw *)h;
        atomic_fetch_add_explicit(&counters->searches_short, 1, memory_order_relaxed);
        exact_scan(h, s, q, k, filter, exclude, out, n_out);
        return 0;
    }
    *n_out = found;
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

static bool list_has(const uint32_t *list, uint32_t id)
{
    for (uint32_t i = 0; i < list[0]; i++)
        if (list[1 + i] == id)
            return true;
    return false;
}

/* The paper's neighbour heuristic for `base`: from candidates sorted
 * nearest-first, keep a candidate only if it is nearer to the base than to
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
        for (size_t j = 0; j < kept && diverse; j++)
            diverse = dist_ids(h, cands[i].id, out[j].id) >= cands[i].distance;
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

/* ------------------------------------------------------------------ */
/* Ways in: links from older nodes, and orphans (reachability a to c)   */
/* ------------------------------------------------------------------ */

/* The age order of "Reachability": a is older than b. */
static inline bool older(const vf_hnsw *h, uint32_t a, uint32_t b)
{
    return h->levels[a] > h->levels[b] || (h->levels[a] == h->levels[b] && a < b);
}

static inline void counter_bump(const _Atomic uint64_t *counter)
{
    /* Statistics are the one thing a const index still counts. */
    atomic_fetch_add_explicit((_Atomic uint64_t *)counter, 1, memory_order_relaxed);
}

static inline uint32_t anchor_get(const vf_hnsw *h, uint32_t t)
{
    return atomic_load_explicit(&h->anchor[t], memory_order_acquire);
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

static void orphan_push(const vf_hnsw *h, vf_scratch *s, uint32_t t)
{
    if (s->orphans_len == s->orphans_cap) {
        size_t cap = s->orphans_cap ? 2 * s->orphans_cap : 64;
        uint32_t *o = realloc(s->orphans, cap * sizeof(uint32_t));
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
        orphan_push(h, s, t);
}

/* Replaces owner's list at lev (caller holds owner's node lock) with the
 * n hits in `want` (room for m0), keeping anchors: an old level-0 link
 * that anchors its target stays, in place of the farthest wanted link
 * that can go; `doomed` (or UINT32_MAX) is dropped whatever it costs. */
static void list_set(const vf_hnsw *h, vf_scratch *s, uint32_t owner, unsigned lev, vf_hit *want,
                     size_t n, uint32_t doomed)
{
    uint32_t *list = vf_node_list(h, owner, lev);
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
    bool done = false;
    if (r == t)
        return false;
    node_lock(h, r);
    uint32_t *list = vf_node_links0(h, r);
    uint32_t n = list[0];
    if (slot_state(h, r) != VF_SLOT_PRESENT)
        goto out;
    done = list_has(list, t);
    if (!done && n < h->m0) {
        word_set(&list[1 + n], t);
        word_set(&list[0], n + 1);
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
    const uint32_t cap = level_cap(h, lev);
    bool linked = false;
    node_lock(h, nb);
    uint32_t *list = vf_node_list(h, nb, lev);
    uint32_t n = list[0];
    if (slot_state(h, nb) != VF_SLOT_PRESENT)
        goto out;
    linked = list_has(list, x);
    if (!linked && n < cap) {
        word_set(&list[1 + n], x);
        word_set(&list[0], n + 1);
        linked = true;
    }
    if (linked)
        goto out;
    for (uint32_t i = 0; i < n; i++)
        s->work[i] = (vf_hit){.id = list[1 + i], .distance = dist_ids(h, nb, list[1 + i])};
    s->work[n] = (vf_hit){.id = x, .distance = d};
    hits_sort(s->work, n + 1, nb);
    list_set(h, s, nb, lev, s->sel, select_neighbours(h, s->work, n + 1, cap, s->sel), UINT32_MAX);
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
    node_lock(h, nb);
    uint32_t *list = vf_node_list(h, nb, lev);
    uint32_t n = list[0];
    if (slot_state(h, nb) != VF_SLOT_PRESENT || !list_has(list, x))
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
    list_set(h, s, nb, lev, s->sel, select_neighbours(h, s->work, nc, level_cap(h, lev), s->sel),
             x);
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
        s->work[nc++] = (vf_hit){.id = id, .distance = dist_ids(h, x, id)};
    }
    if (nc > kept)
        hits_sort(s->work, nc, x);
    list_set(h, s, x, lev, s->sel, select_neighbours(h, s->work, nc, level_cap(h, lev), s->sel),
             UINT32_MAX);
    node_unlock(h, x);
}

/* Removes every link to x from x's neighbours, bridging around it. */
static void unlink_node(const vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    for (int lev = h->levels[x]; lev >= 0; lev--) {
        uint32_t nx = links_copy(h, x, (unsigned)lev, s->links2);
        for (uint32_t i = 0; i < nx; i++)
            repair_list(h, s, s->links2[i], x, s->links2, nx, (unsigned)lev);
    }
}

/* Empties x's lists; level-0 targets that x anchored become
 * orphans of this operation. */
static void lists_clear(const vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    node_lock(h, x);
    uint32_t *l0 = vf_node_links0(h, x);
    for (uint32_t i = 0; i < l0[0]; i++)
        link_drop(h, s, x, l0[1 + i]);
    for (unsigned lev = 0; lev <= h->levels[x]; lev++)
        word_set(vf_node_list(h, x, lev), 0);
    node_unlock(h, x);
}

/* If x is the entry point, moves the entry to the oldest present graph
 * node but x (invariant 7). Leaves x as the entry when no other is present. An
 * O(capacity) scan, paid once per delete or update of the entry. */
static void entry_move_off(vf_hnsw *h, uint32_t x)
{
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
        atomic_store_explicit(&h->entry, entry_pack(h->levels[best], best), memory_order_release);
out:
    pthread_mutex_unlock(&h->entry_lock);
}

/* Makes r's link to x (if r is an older graph node that has one) x's
 * anchor. */
static void anchor_adopt(const vf_hnsw *h, uint32_t r, uint32_t x)
{
    node_lock(h, r);
    if (graph_node(h, r) && list_has(vf_node_links0(h, r), x))
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
static void sq_set(vf_hnsw *h, uint32_t id, float sq)
{
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

/* Links node x (vector already stored, lists empty, level h->levels[x])
 * into the graph, ending with a way in from one of its level-0 choices
 * (reachability b) and an anchor. Returns 0 or -ENOMEM. */
static int connect_node(vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    const unsigned level = h->levels[x];
    const float *v = vf_node_vector(h, x);
    bool holds_entry = false;
    int rc = 0;

    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
    if (entry_vacant(h, entry, x) || older(h, x, (uint32_t)entry)) {
        pthread_mutex_lock(&h->entry_lock);
        entry = atomic_load_explicit(&h->entry, memory_order_relaxed);
        if (entry_vacant(h, entry, x)) {
            atomic_store_explicit(&h->entry, entry_pack(level, x), memory_order_release);
            pthread_mutex_unlock(&h->entry_lock);
            return 0;
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
    greedy_descend(h, s, v, v_sq, true, top, level, &cur, &cur_d);

    for (int lev = (int)(level < top ? level : top); lev >= 0; lev--) {
        vf_heap res;
        rc = search_layer(h, s, v, cur, cur_d, h->ef_construction, (unsigned)lev, NULL, x, true,
                          v_sq, &res);
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
            anchor_adopt(h, s->links2[i], x);
    }
out:
    if (holds_entry) {
        if (rc == 0)
            atomic_store_explicit(&h->entry, entry_pack(level, x), memory_order_release);
        pthread_mutex_unlock(&h->entry_lock);
        /* The old entry is no longer the oldest: it needs a way in now. */
        if (rc == 0 && (uint32_t)entry != x)
            orphan_push(h, s, (uint32_t)entry);
    }
    /* And x itself needs one from an older node (invariant 7). */
    if (rc == 0)
        orphan_push(h, s, x);
    return rc;
}

/* Gives t a level-0 link in from the nearest older present node that can
 * take one, or else from the entry, the oldest of all. The nodes older
 * than t are at its level or above, so they are looked for there. Returns
 * true on success or when t is the entry, which needs no way in. */
static bool link_in(vf_hnsw *h, vf_scratch *s, uint32_t t)
{
    uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
    if (entry == VF_HNSW_NO_ENTRY || (uint32_t)entry == t)
        return true;
    const float *v = vf_node_vector(h, t);
    uint32_t cur = (uint32_t)entry;
    const float v_sq = node_sq(h, t);
    const unsigned top = (unsigned)(entry >> 32), lev = h->levels[t] < top ? h->levels[t] : top;
    float cur_d = dist_ids(h, t, cur);
    greedy_descend(h, s, v, v_sq, true, top, lev, &cur, &cur_d);
    vf_heap res;
    if (search_layer(h, s, v, cur, cur_d, h->ef_construction, lev, NULL, t, true, v_sq, &res) != 0)
        return false;
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
static void orphans_settle(vf_hnsw *h, vf_scratch *s, size_t budget)
{
    s->displace_left = budget;
    while (s->orphans_len) {
        uint32_t t = s->orphans[--s->orphans_len];
        uint64_t entry = atomic_load_explicit(&h->entry, memory_order_acquire);
        if (!graph_node(h, t) || (uint32_t)entry == t || anchor_get(h, t) != VF_NO_ANCHOR)
            continue;
        counter_bump(link_in(h, s, t) ? &h->rehomed : &h->stranded);
    }
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
    ring_alone(h, x);
    atomic_store_explicit(&h->anchor[x], VF_NO_ANCHOR, memory_order_relaxed);
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
    atomic_init(&h->searches_short, 0);
    atomic_init(&h->rehomed, 0);
    atomic_init(&h->stranded, 0);
    atomic_init(&h->max_sq_bits, 0);

    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* A grow must not starve behind a steady stream of searches. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&h->grow_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    for (unsigned i = 0; i < VF_HNSW_OP_STRIPES; i++)
        pthread_mutex_init(&h->op_locks[i], NULL);
    pthread_mutex_init(&h->entry_lock, NULL);
    pthread_mutex_init(&h->twin_lock, NULL);
    pthread_rwlock_init(&h->table_lock, NULL);
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
    free((void *)h->anchor);
    free((void *)h->twin_next);
    free((void *)h->twin_prev);
    free((void *)h->ring_role);
    free(h->sqnorm);
    while (h->pool) {
        vf_scratch *next = h->pool->next;
        scratch_free(h->pool);
        h->pool = next;
    }
    pthread_rwlock_destroy(&h->grow_lock);
    for (unsigned i = 0; i < VF_HNSW_OP_STRIPES; i++)
        pthread_mutex_destroy(&h->op_locks[i]);
    pthread_mutex_destroy(&h->entry_lock);
    pthread_mutex_destroy(&h->twin_lock);
    pthread_rwlock_destroy(&h->table_lock);
    free(h->table);
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
    void *state = (void *)h->state, *versions = (void *)h->versions, *anchor = (void *)h->anchor;
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
    if (!rc)
        rc = array_grow(&anchor, old, capacity, sizeof(uint32_t));
    h->anchor = anchor;
    void *next = (void *)h->twin_next, *prev = (void *)h->twin_prev, *role = (void *)h->ring_role;
    if (!rc)
        rc = array_grow(&next, old, capacity, sizeof(uint32_t));
    h->twin_next = next;
    if (!rc)
        rc = array_grow(&prev, old, capacity, sizeof(uint32_t));
    h->twin_prev = prev;
    if (!rc)
        rc = array_grow(&role, old, capacity, 1);
    h->ring_role = role;
    if (!rc && h->metric == VF_METRIC_DOT)
        rc = array_grow((void **)&h->sqnorm, old, capacity, sizeof(float));
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
    /* Room in the table first, so that running out of memory changes
     * nothing (twin_place reserves again in case other inserts took it). */
    rc = twin_reserve(h);
    if (rc)
        goto out_release;
    pthread_mutex_unlock(&h->twin_lock);
    uint8_t was = slot_state(h, id);
    bool head = was == VF_SLOT_PRESENT && ring_role(h, id) == VF_TWIN_HEAD;
    if (was == VF_SLOT_EMPTY)
        rc = slot_claim(h, id);
    else if (head)
        rc = twin_unhead(h, s, id);
    else if (was == VF_SLOT_PRESENT)
        twin_dismount(h, id);
    if (rc)
        goto out_release;
    if (head) {
        /* An update relinks the vector where it now is, as an insert would;
         * what only its old lists led to is linked in again below. */
        unlink_node(h, s, id);
        entry_move_off(h, id);
        lists_clear(h, s, id);
    }
    /* The vector takes a new anchor where it lands (connect_node). */
    atomic_store_explicit(&h->anchor[id], VF_NO_ANCHOR, memory_order_relaxed);
    float *dst = vf_node_vector(h, id);
    if (h->metric == VF_METRIC_COSINE)
        vf_normalize(vec, dst, h->dim);
    else
        memcpy(dst, vec, h->dim * sizeof(float));
    if (h->metric == VF_METRIC_DOT)
        sq_set(h, id, h->kernel(dst, dst, h->dim));
    /* Present before linking: concurrent walks may reach it via a link
     * added below and must be able to return it. */
    atomic_store_explicit(&h->state[id], VF_SLOT_PRESENT, memory_order_release);
    if (was != VF_SLOT_PRESENT)
        atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    if (was == VF_SLOT_DELETED)
        atomic_fetch_sub_explicit(&h->deleted, 1, memory_order_relaxed);
    bool rides = false;
    if (twin_reserve(h) == 0)
        rides = twin_place(h, id);
    /* else x stays out of the table: it is found by walks, not by exact
     * lookup, and no twin rides on it. */
    if (!rides)
        rc = connect_node(h, s, id);
    orphans_settle(h, s, VF_DISPLACE_BUDGET);
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
    vf_scratch *s = scratch_acquire(h, h->ef_construction);
    if (!s) {
        rc = -ENOMEM;
        goto out_op;
    }
    bool rider = ring_role(h, id) == VF_TWIN_RIDER;
    if (rider) {
        twin_dismount(h, id);
    } else {
        rc = twin_unhead(h, s, id);
        if (rc) {
            scratch_release(h, s);
            goto out_op;
        }
    }
    atomic_store_explicit(&h->state[id], VF_SLOT_DELETED, memory_order_release);
    atomic_fetch_sub_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->deleted, 1, memory_order_relaxed);
    if (!rider) {
        unlink_node(h, s, id);
        entry_move_off(h, id);
        lists_clear(h, s, id);
    }
    orphans_settle(h, s, VF_DISPLACE_BUDGET);
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
    /* Per slot: level-0 record, upper pointer, level, state, version, ways
     * in, twin ring and role, squared norm (dot). */
    size_t per_slot = h->node_bytes + sizeof(uint32_t *) + 3 + 4 * sizeof(uint32_t) +
                      (h->sqnorm ? sizeof(float) : 0);
    size_t bytes = sizeof(*h) + h->capacity * per_slot +
                   atomic_load_explicit(&h->upper_bytes, memory_order_relaxed);
    pthread_mutex_lock((pthread_mutex_t *)&h->pool_lock);
    for (const vf_scratch *s = h->pool; s; s = s->next)
        bytes += sizeof(*s) + s->visited_cap * sizeof(uint16_t) +
                 (s->cand_cap + 2 * s->res_cap + 4 * (size_t)h->m0 + 4) * sizeof(vf_hit) +
                 2 * h->m0 * sizeof(uint32_t) + s->orphans_cap * sizeof(uint32_t) +
                 h->dim * sizeof(float);
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
    uint8_t *seen = malloc(cap);
    uint32_t *queue = malloc(cap * sizeof(uint32_t));
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
    uint8_t *seen = malloc(cap);
    uint32_t *queue = malloc(cap * sizeof(uint32_t));
    vf_scratch *s = scratch_acquire(h, h->ef_construction);
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
                link_in(h, s, (uint32_t)i);
                (*fixed)++;
            }
        }
        orphans_settle(h, s, VF_DISPLACE_BUDGET);
    }
    if (s)
        scratch_release(h, s);
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
}

/* Snapshots keep riders as present nodes with no links that none links
 * to (lone[]). Enters every other present node in the table as a head
 * (a second graph node with a head's vector, from a snapshot older than
 * twin rings, stays a plain graph node), then puts each lone node on the
 * head with its vector, or makes it a head. 0 or -ENOMEM. */
static int rings_rebuild(vf_hnsw *h, const uint8_t *lone)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < h->capacity; i++) {
            uint32_t x = (uint32_t)i;
            if (h->state[i] != VF_SLOT_PRESENT || lone[i] != (pass == 1))
                continue;
            uint32_t head = table_find(h, vf_node_vector(h, x));
            if (head != UINT32_MAX && pass == 1) {
                atomic_store(&h->ring_role[x], VF_TWIN_RIDER);
                ring_insert_after(h, head, x);
            } else if (head == UINT32_MAX) {
                if (table_reserve(h) != 0)
                    return -ENOMEM;
                table_put(h, x);
            }
        }
    }
    return 0;
}

int vf_hnsw_links_settle(vf_hnsw *h)
{
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t id = (uint32_t)i;
        atomic_store_explicit(&h->anchor[i], VF_NO_ANCHOR, memory_order_relaxed);
        atomic_store(&h->ring_role[i], VF_TWIN_HEAD);
        ring_alone(h, id);
        if (h->metric == VF_METRIC_DOT && h->state[i] != VF_SLOT_EMPTY) {
            const float *v = vf_node_vector(h, id);
            sq_set(h, id, h->kernel(v, v, h->dim));
        }
        if (h->state[i] == VF_SLOT_DELETED)
            for (unsigned lev = 0; lev <= h->levels[i]; lev++)
                vf_node_list(h, id, lev)[0] = 0;
    }
    uint8_t *lone = calloc(h->capacity ? h->capacity : 1, 1);
    if (!lone)
        return -ENOMEM;
    /* Anchors are not in the snapshot: each node takes the first older
     * node found linking it. */
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t from = (uint32_t)i;
        const uint32_t *list = vf_node_links0(h, from);
        for (uint32_t j = 0; j < list[0]; j++) {
            uint32_t t = list[1 + j];
            if (older(h, from, t) && atomic_load(&h->anchor[t]) == VF_NO_ANCHOR)
                atomic_store(&h->anchor[t], from);
            lone[t] = 2; /* linked to: a graph node */
        }
    }
    for (size_t i = 0; i < h->capacity; i++)
        lone[i] = h->state[i] == VF_SLOT_PRESENT && lone[i] == 0 &&
                  vf_node_links0(h, (uint32_t)i)[0] == 0;
    int rc = rings_rebuild(h, lone);
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
    atomic_store(&h->entry, entry_pack(h->levels[oldest], oldest));
    /* Snapshots written before invariant 7 may leave nodes without a way
     * in; those written since have none, and this loop finds nothing. */
    vf_scratch *s = scratch_acquire(h, h->ef_construction);
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < h->capacity; i++)
        if (graph_node(h, (uint32_t)i) && atomic_load(&h->anchor[i]) == VF_NO_ANCHOR)
            orphan_push(h, s, (uint32_t)i);
    orphans_settle(h, s, s->orphans_len + VF_DISPLACE_BUDGET);
    scratch_release(h, s);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Invariant checker                                                    */
/* ------------------------------------------------------------------ */

/* Invariant 7 on anchors. 0 or -EILSEQ. */
static int anchors_check(const vf_hnsw *h)
{
    uint32_t entry = (uint32_t)atomic_load(&h->entry);
    bool stranded = atomic_load(&h->stranded) > 0;
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
            !list_has(vf_node_links0(h, a), t))
            return -EILSEQ;
    }
    return 0;
}

/* Invariant 8. 0 or -EILSEQ. */
static int rings_check(const vf_hnsw *h)
{
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t id = (uint32_t)i, next = h->twin_next[i], prev = h->twin_prev[i];
        if (h->state[i] == VF_SLOT_EMPTY)
            continue; /* never in a ring: its pointers are unset */
        if (next >= h->capacity || prev >= h->capacity || h->twin_prev[next] != id ||
            h->twin_next[prev] != id)
            return -EILSEQ;
        if (h->state[i] != VF_SLOT_PRESENT) {
            if (next != id)
                return -EILSEQ;
            continue;
        }
        if (ring_role(h, id) == VF_TWIN_RIDER) {
            if (vf_node_links0(h, id)[0] != 0)
                return -EILSEQ;
            continue;
        }
        /* From each head: every member present, a rider with its vector. */
        for (uint32_t z = next; z != id; z = h->twin_next[z]) {
            if (h->state[z] != VF_SLOT_PRESENT || ring_role(h, z) != VF_TWIN_RIDER ||
                memcmp(vf_node_vector(h, z), vf_node_vector(h, id),
                       (size_t)h->dim * sizeof(float)) != 0)
                return -EILSEQ;
        }
    }
    return 0;
}

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
            if (list[0] > level_cap(h, lev) || (st == VF_SLOT_DELETED && list[0] != 0))
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
    if (ep >= h->capacity || h->state[ep] == VF_SLOT_EMPTY || h->levels[ep] != (entry >> 32) ||
        ring_role(h, ep) == VF_TWIN_RIDER || rings_check(h) != 0)
        return -EILSEQ;
    return anchors_check(h);
}
