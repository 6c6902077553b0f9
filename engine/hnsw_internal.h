/*
 * hnsw_internal.h — the in-memory layout of an HNSW index, shared by
 * hnsw.c (build and search) and snapshot.c (serialization). Not installed.
 *
 * Memory layout
 *   level0   capacity records of node_bytes each, one per id:
 *              u32 lock word | links | vector record (rec_bytes)
 *            The lock word is the node's sequence lock over all its lists
 *            (bits VF_COUNT_BITS and up: odd while a writer holds it,
 *            bumped on every release) and its level-0 count (the low
 *            VF_COUNT_BITS): one word where two arrays were, and a
 *            search's copy reads lock and count from one cache line.
 *            The links are u32 links[m0], or for a packed index (INT8)
 *            their Elias-Fano code (elias_fano.h) over ids below the
 *            capacity, rounded up to 2 bytes: 62 bytes where u32 links
 *            take 128 at 331k slots and m0 = 32 (a 2-byte tail is read
 *            and written as one 16-bit word). The vector record is f32
 *            vector[dim] (VF_QUANT_NONE) or a code record (VF_QUANT_INT8,
 *            quantizer.h: u8 codes[dim] | u16 correction, read unaligned),
 *            and the record is zero-padded to whole words
 *            (node_bytes). A node's links and vector sit side by side, so
 *            expanding a node and scoring its neighbours touches few cache
 *            lines, and an int8 walk touches codes only.
 *   upper    for an id of level > 0, level * (1 + m) u32 in upper_words
 *            (hnsw_upper.c), at the offset upper_table maps it to: for
 *            level l in 1..level, u32 count | u32 links[m] at (l - 1) *
 *            (1 + m) from there.
 *   slot_bits per id, one byte: the slot's state (VF_SLOT_EMPTY / PRESENT
 *            / DELETED, bits 0-1), its ring role (bit 2) and the node's
 *            top level (0..VF_HNSW_MAX_LEVEL, bits 3-7); each is changed
 *            by a compare-and-swap of the whole byte.
 *   twin_next, twin_prev  per id, a ring of slots that hold the same
 *            vector: one graph node (the head, role TWIN_HEAD) carries the
 *            others (role TWIN_RIDER), which have no links; a slot alone
 *            is a ring of one. Changed under twin_lock; searches follow
 *            twin_next without it (see hnsw.c, "Twins").
 *   role     per id (in slot_bits), TWIN_HEAD (a graph node) or
 *            TWIN_RIDER.
 *   table    the heads by vector (exact match), for inserts to find the
 *            ring they join and queries the vector they equal.
 *   anchor   per id, the node whose level-0 link to it is its protected
 *            way in (an older node), or VF_NO_ANCHOR. That link is never
 *            dropped while it anchors (see hnsw.c, "Reachability").
 *
 * Packed lists
 *   A code's shape follows the capacity, so a grow re-packs every list
 *   (under grow_lock, write). Readers copy the count and code words under
 *   the node's sequence lock and decode the copy (links_copy); a writer
 *   decodes the list into its scratch (list_read), changes the copy and
 *   writes it back packed before it releases the node (list_commit).
 *   Packed lists come back sorted by id; no code depends on list order.
 *
 * Locking (lock order, outermost first)
 *   1. grow_lock (rwlock): read-held by every operation, write-held only
 *      while the arrays above are reallocated.
 *   2. op_locks[id % VF_HNSW_OP_STRIPES] (mutex): serializes insert/remove
 *      of one id for the whole operation.
 *   3. twin_lock (mutex): held to join, leave or re-head a ring of twins
 *      and to change the table; a re-heading holds it across the new
 *      head's linking, so it comes before entry_lock and the node locks.
 *      table_lock (rwlock) is taken inside it, and alone by queries.
 *   4. entry_lock (mutex): held by an insert that becomes the entry, for
 *      its whole linking, so the entry changes one writer at a time.
 *   5. id's lock word (sequence lock): writers of id's link lists hold it
 *      (sequence odd); a thread holds at most one at a time. Searches
 *      never write it: they copy a list and retry if the word moved, so
 *      readers do not bounce cache lines between cores. List words are
 *      read and written with relaxed atomics for that reason. The
 *      sequence has 22 bits: a reader is fooled only if 2^21 releases of
 *      one node fall between its two reads of the word.
 *   upper_lock (mutex) is a leaf: held for a moment to hold room for an
 *   upper claim, to claim it or to give it back, always with grow_lock
 *   (read); upper_used, upper_nodes and upper_holds change under both, or
 *   under grow_lock (write) alone (hnsw_upper.c).
 *   The quantizer (q) is written by its first training under quant_lock
 *   before quant_trained is set (release), and by a re-learn under
 *   grow_lock (write); everything else reads it under grow_lock (read)
 *   after seeing quant_trained.
 *   Vectors are written only by the insert that owns the id (op lock) and
 *   read by searches without a lock: a search racing an update of the same
 *   id may score a half-written vector, a ranking error for that one node
 *   and never a memory error.
 */
#ifndef VECFS_ENGINE_HNSW_INTERNAL_H
#define VECFS_ENGINE_HNSW_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>

#include "elias_fano.h"
#include "engine.h"
#include "quantizer.h"
#include "topk.h"

#define VF_HNSW_MAX_LEVEL 31u
#define VF_HNSW_OP_STRIPES 256u
#define VF_HNSW_MAX_M 256u
/* entry packs (top level << 32) | entry id; this value means "empty". */
#define VF_HNSW_NO_ENTRY UINT64_MAX
#define VF_NO_ANCHOR UINT32_MAX
/* The lock word of a level-0 record: the count below VF_SEQ_ONE, the
 * sequence from it up (see "Memory layout"). */
#define VF_COUNT_BITS 10u
#define VF_COUNT_MASK ((1u << VF_COUNT_BITS) - 1u)
#define VF_SEQ_ONE (1u << VF_COUNT_BITS)
_Static_assert(2 * VF_HNSW_MAX_M <= VF_COUNT_MASK, "a level-0 count fits below the sequence");

enum { VF_SLOT_EMPTY = 0, VF_SLOT_PRESENT = 1, VF_SLOT_DELETED = 2 };
enum { VF_TWIN_HEAD = 0, VF_TWIN_RIDER = 1 };

typedef struct vf_scratch vf_scratch;

struct vf_hnsw {
    /* Fixed at create. */
    uint32_t dim;
    vf_metric metric;
    uint32_t m;  /* link cap on levels >= 1 */
    uint32_t m0; /* link cap on level 0 (2m) */
    uint32_t ef_construction;
    uint64_t seed;
    double level_mult;         /* 1 / ln(m) */
    size_t node_bytes;         /* level-0 record size; protected by grow_lock */
    size_t vec_offset;         /* vector offset inside a level-0 record: the
                                  lock word and the links; protected by grow_lock */
    bool packed;               /* level-0 lists as codes ("Packed lists") */
    vf_ef_shape ef;            /* packed: their shape; protected by grow_lock */
    vf_ef_decode_fn ef_decode; /* packed: the CPU's decoder */
    size_t rec_bytes;          /* vector record size: dim floats or a code record */
    vf_kernel_fn kernel;       /* l2sq for l2, dot for cosine and dot */
    vf_quant_kind quant;
    uint32_t rerank; /* INT8: default rerank factor */

    /* INT8 only (see the lock notes above). */
    vf_quant q;
    pthread_mutex_t quant_lock;
    _Atomic bool quant_trained;
    _Atomic uint64_t relearns;

    /* Arrays of capacity entries; reallocated under grow_lock (write). */
    pthread_rwlock_t grow_lock;
    size_t capacity; /* protected by grow_lock */
    uint8_t *level0; /* protected by grow_lock; lists by the lock words */
    /* Upper lists (hnsw_upper.c): the words and the table from id to
     * offset ((id + 1) << 32 | offset, 0 empty), both protected by
     * grow_lock; appended to under upper_lock; lists by the lock words. */
    uint32_t *upper_words;
    size_t upper_cap, upper_used; /* words; used under upper_lock */
    uint64_t *upper_table;
    size_t upper_slots, upper_nodes; /* table size (a power of 2); entries, under upper_lock */
    size_t upper_holds;              /* room held for claims, under upper_lock */
    pthread_mutex_t upper_lock;
    /* state | role << 2 | level << 3 ("Memory layout"): the level is
     * written once per slot under its op lock, the role under twin_lock. */
    _Atomic uint8_t *slot_bits;
    _Atomic uint32_t *anchor;    /* set under the anchor's node lock */
    _Atomic uint32_t *twin_next; /* protected by twin_lock; read by searches */
    _Atomic uint32_t *twin_prev; /* protected by twin_lock */
    float *sqnorm;               /* dot only: squared norms, for the graph's lifting */

    pthread_mutex_t op_locks[VF_HNSW_OP_STRIPES];
    pthread_mutex_t entry_lock;
    pthread_mutex_t twin_lock;
    /* Heads by vector, open addressing, at most 3/4 full: ids,
     * UINT32_MAX empty, UINT32_MAX - 1 gone. Changed under twin_lock and,
     * for the moment of the change, table_lock (write); queries probe it
     * under table_lock (read). */
    pthread_rwlock_t table_lock;
    uint32_t *table;
    size_t table_cap, table_used, table_gone;
    _Atomic uint64_t entry; /* see VF_HNSW_NO_ENTRY */

    _Atomic size_t count;   /* present ids */
    _Atomic size_t deleted; /* deleted slots awaiting reuse */
    _Atomic uint32_t ef_search;
    _Atomic uint64_t level_draws;    /* level generator position */
    _Atomic uint32_t max_sq_bits;    /* dot: largest squared norm (float bits) */
    _Atomic uint64_t searches_short; /* walks that came back short (exact fallback) */
    _Atomic uint64_t rehomed;        /* nodes given a new way in after losing their last */
    _Atomic uint64_t stranded;       /* nodes no nearby list could take in */
    _Atomic uint64_t plans[4];       /* filtered searches by vf_filter_plan */
    _Atomic uint64_t walks_capped;   /* WALKs whose failing budget ran out */

    pthread_mutex_t pool_lock;
    vf_scratch *pool; /* protected by pool_lock: idle search scratch */

    /* Present slots a load could not get the original of (their vectors
     * are zeros) until an insert or remove of the id: per slot, 1 while
     * missing; NULL when none was. Set at load; cleared under the id's op
     * lock. */
    uint8_t *missing;
    size_t missing_cap;
    _Atomic size_t missing_count;
};

#define VF_SLOT_STATE_MASK 0x03u
#define VF_SLOT_ROLE_SHIFT 2u
#define VF_SLOT_LEVEL_SHIFT 3u
_Static_assert(VF_HNSW_MAX_LEVEL < (1u << (8 - VF_SLOT_LEVEL_SHIFT)), "a level fits in its bits");

/* id's VF_SLOT_* state. */
static inline uint8_t slot_state(const vf_hnsw *h, uint32_t id)
{
    return atomic_load_explicit(&h->slot_bits[id], memory_order_acquire) & VF_SLOT_STATE_MASK;
}

/* id's VF_TWIN_* role. */
static inline uint8_t ring_role(const vf_hnsw *h, uint32_t id)
{
    return (atomic_load_explicit(&h->slot_bits[id], memory_order_acquire) >> VF_SLOT_ROLE_SHIFT) &
           1u;
}

/* id's top level. */
static inline unsigned node_level(const vf_hnsw *h, uint32_t id)
{
    return atomic_load_explicit(&h->slot_bits[id], memory_order_relaxed) >> VF_SLOT_LEVEL_SHIFT;
}

/* Replaces the bits of `mask` in id's byte by `value`, leaving the others
 * as concurrent writers of them left them (release). */
static inline void slot_bits_set(const vf_hnsw *h, uint32_t id, uint8_t mask, uint8_t value)
{
    uint8_t v = atomic_load_explicit(&h->slot_bits[id], memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->slot_bits[id], &v,
                                                  (uint8_t)((v & ~mask) | value),
                                                  memory_order_release, memory_order_relaxed))
        ;
}

static inline void slot_state_set(const vf_hnsw *h, uint32_t id, uint8_t state)
{
    slot_bits_set(h, id, VF_SLOT_STATE_MASK, state);
}

static inline void ring_role_set(const vf_hnsw *h, uint32_t id, uint8_t role)
{
    slot_bits_set(h, id, 1u << VF_SLOT_ROLE_SHIFT, (uint8_t)(role << VF_SLOT_ROLE_SHIFT));
}

static inline void node_level_set(const vf_hnsw *h, uint32_t id, unsigned level)
{
    assert(level <= VF_HNSW_MAX_LEVEL);
    slot_bits_set(h, id, (uint8_t)(0xFFu << VF_SLOT_LEVEL_SHIFT),
                  (uint8_t)(level << VF_SLOT_LEVEL_SHIFT));
}

/* An insert or remove of id rewrote it: it is no longer missing. Caller
 * holds id's op lock. */
static inline void missing_clear(vf_hnsw *h, uint32_t id)
{
    if (id < h->missing_cap && h->missing[id]) {
        h->missing[id] = 0;
        atomic_fetch_sub_explicit(&h->missing_count, 1, memory_order_relaxed);
    }
}

/* id's level-0 list: the lock word, then the links. */
static inline uint32_t *vf_node_links0(const struct vf_hnsw *h, uint32_t id)
{
    return (uint32_t *)(h->level0 + (size_t)id * h->node_bytes);
}

/* id's vector record: its float vector (unit length for cosine) or its
 * code record. */
static inline uint8_t *vf_node_rec(const struct vf_hnsw *h, uint32_t id)
{
    return h->level0 + (size_t)id * h->node_bytes + h->vec_offset;
}

/* Where id's entry in the upper table starts its probe. */
static inline size_t vf_upper_hash(uint32_t id)
{
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 32);
}

/* The offset of id's upper lists in upper_words, or SIZE_MAX when it has
 * none. */
static inline size_t vf_upper_find(const struct vf_hnsw *h, uint32_t id)
{
    if (!h->upper_slots)
        return SIZE_MAX;
    const size_t mask = h->upper_slots - 1;
    for (size_t i = vf_upper_hash(id) & mask;; i = (i + 1) & mask) {
        uint64_t e = __atomic_load_n(&h->upper_table[i], __ATOMIC_ACQUIRE);
        if (e == 0)
            return SIZE_MAX;
        if ((uint32_t)(e >> 32) == id + 1)
            return (uint32_t)e;
    }
}

/* The words the upper lists of a node of `level` take: a count and m
 * links for each of its levels 1..level ("Memory layout"). */
static inline size_t vf_upper_len(const struct vf_hnsw *h, unsigned level)
{
    return (size_t)level * (1 + h->m);
}

/* The list (count, links) of id at level lev >= 1; lev must be <= id's
 * level. Level 0 is read with list_read or links_copy (its count
 * shares the lock word). */
static inline uint32_t *vf_node_upper(const struct vf_hnsw *h, uint32_t id, unsigned lev)
{
    assert(lev >= 1 && lev <= node_level(h, id));
    size_t at = vf_upper_find(h, id);
    assert(at != SIZE_MAX);
    return h->upper_words + at + vf_upper_len(h, lev - 1);
}

/* id's level-0 count, read outside the lock (a writer may change it). */
static inline uint32_t vf_node_count0(const struct vf_hnsw *h, uint32_t id)
{
    return __atomic_load_n(vf_node_links0(h, id), __ATOMIC_RELAXED) & VF_COUNT_MASK;
}

/* Shared by hnsw.c and snapshot.c. */
int vf_hnsw_alloc(const vf_hnsw_params *params, vf_hnsw **out);
int vf_hnsw_grow_locked(vf_hnsw *h, size_t capacity);
/* After a load: empties the lists of deleted slots (older snapshots kept
 * them), puts riders back in their twin rings, makes the oldest graph
 * node the entry, gives every node an anchor (linking in those that have
 * none). 0 or -ENOMEM. */
int vf_hnsw_links_settle(vf_hnsw *h);

/* ------------------------------------------------------------------ */
/* Internal to the engine: shared state of the hnsw*.c files            */
/* ------------------------------------------------------------------ */

/* Per-thread buffers of one search or write (hnsw_scratch.c). */
struct vf_scratch {
    uint64_t *visited;  /* a bit per slot, set once visited in this walk */
    size_t visited_cap; /* slots the bits cover (a multiple of 64) */
    uint32_t *touched;  /* the words of visited that are not zero */
    size_t touched_len;
    vf_hit *cand; /* candidate min-heap storage, grows on demand */
    size_t cand_cap;
    vf_hit *res; /* result max-heap storage, >= max(ef, k) */
    size_t res_cap;
    vf_hit *sorted;   /* drained results, res_cap entries */
    vf_hit *work;     /* neighbour candidates while linking: 2 * m0 + 2 */
    vf_hit *sel;      /* heuristic output: 2 * m0 + 2 */
    uint32_t *links;  /* copy of one link list, or the nodes a filtered walk
                         gathers: VF_GATHER_ROOM(h) >= m0 */
    uint32_t *links2; /* a second copy, for repairs and filtered walks: m0 */
    uint32_t *bridge; /* a failing neighbour's list, in a filtered walk: m0 */
    uint32_t *open;   /* the list a writer changes (list_read), 1 + m0 */
    float *query;     /* normalized query or vector: dim */
    uint8_t *qrec;    /* the query as a vector record: rec_bytes */
    float *orig;      /* an original the vector source fills: dim */
    vf_hit *cands;    /* rerank candidates, cands_cap entries */
    size_t cands_cap;
    uint32_t *orphans; /* graph nodes whose anchor went */
    size_t orphans_len, orphans_cap;
    size_t displace_left; /* forced displacements this operation may still make */
    struct vf_scratch *next;
};

/* The most nodes an EXPAND walk gathers in one step (hnsw_walk.c,
 * gather_two_hop): twice a level-0 list, measured (docs/engine.md). */
#define VF_GATHER_ROOM(h) (2 * (size_t)(h)->m0)

/* An EXPAND walk keeps this many times the search's ef: it scores only
 * passing nodes, and at ef it lost recall to WALK (words50k at 1 %: 0.85
 * at ef 64, 0.91 at 128; docs/engine.md). */
#define VF_EXPAND_EF_FACTOR 2u

/* How many passing seeds a filtered walk starts from (hnsw_seed.c), in
 * s->sorted, which holds res_cap. */
#define VF_SEED_KEEP(s) ((s)->res_cap < 64u ? (s)->res_cap : 64u)

/* Links in that one operation may make by displacing an anchoring link
 * (each makes an orphan of its own); past it a node is counted as
 * stranded. */
#define VF_DISPLACE_BUDGET 64u

/* Orphans a writer reserves room for before it changes anything: the
 * level-0 links of the node it empties and of one neighbour's rewritten
 * list, the entry and the node itself, and one per displacement. An
 * operation that makes more (rare) grows the list, and if that fails
 * counts the node as stranded. */
#define VF_ORPHANS_RESERVE(h) (2 * (size_t)(h)->m0 + VF_DISPLACE_BUDGET + 4)

/* The kernel of the index over two vector records: squared l2 (l2) or
 * the dot product (cosine, dot), of the floats or of the decoded codes. */
static inline float rec_kernel(const vf_hnsw *h, const void *a, const void *b)
{
    if (h->quant == VF_QUANT_NONE)
        return h->kernel(a, b, h->dim);
    return h->metric == VF_METRIC_L2 ? vf_quant_l2sq(&h->q, a, b) : vf_quant_dot(&h->q, a, b);
}

/* A vector record's squared norm for the lifting (dot): its kernel with
 * itself, which int8's expansion (C + 2 a_x + s^2 sum c^2) can round below
 * 0 for a vector near 0, and a crafted snapshot's codes can make negative
 * or NaN: those count as 0. */
static inline float rec_sq(const vf_hnsw *h, const void *rec)
{
    float sq = rec_kernel(h, rec, rec);
    return sq > 0.0f ? sq : 0.0f;
}

/* The query distance between two vector records as the index keeps them:
 * engine.h's metric, with cosine as 1 - dot of unit vectors. */
static inline float dist_vec(const vf_hnsw *h, const void *a, const void *b)
{
    float d = rec_kernel(h, a, b);
    switch (h->metric) {
    case VF_METRIC_COSINE:
        return 1.0f - d;
    case VF_METRIC_DOT:
        return -d;
    default:
        return d;
    }
}

/* id's squared norm (dot only). */
static inline float sq_get(const vf_hnsw *h, uint32_t id)
{
    float v;
    __atomic_load(&h->sqnorm[id], &v, __ATOMIC_RELAXED);
    return v;
}

/* The lifting's M: the largest squared norm stored so far (dot). */
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
static inline float dist_build(const vf_hnsw *h, const void *a, float a_sq, const void *b,
                               float b_sq)
{
    if (h->metric != VF_METRIC_DOT)
        return dist_vec(h, a, b);
    float m = max_sq_get(h);
    float la = m > a_sq ? sqrtf(m - a_sq) : 0.0f, lb = m > b_sq ? sqrtf(m - b_sq) : 0.0f;
    return m - rec_kernel(h, a, b) - la * lb;
}

/* dist_build between two nodes. */
static inline float dist_ids(const vf_hnsw *h, uint32_t a, uint32_t b)
{
    bool dot = h->metric == VF_METRIC_DOT;
    return dist_build(h, vf_node_rec(h, a), dot ? sq_get(h, a) : 0.0f, vf_node_rec(h, b),
                      dot ? sq_get(h, b) : 0.0f);
}

/* The squared norm dist_build needs for a node's vector q (0 unless dot). */
static inline float node_sq(const vf_hnsw *h, uint32_t id)
{
    return h->metric == VF_METRIC_DOT ? sq_get(h, id) : 0.0f;
}

/* Takes id's sequence lock to write its lists (the sequence goes odd). */
static inline void node_lock(const vf_hnsw *h, uint32_t id)
{
    uint32_t *word = vf_node_links0(h, id);
    unsigned spins = 0;
    for (;;) {
        uint32_t v = __atomic_load_n(word, __ATOMIC_RELAXED);
        if (!(v & VF_SEQ_ONE) && __atomic_compare_exchange_n(word, &v, v + VF_SEQ_ONE, true,
                                                             __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            /* The list stores that follow must not be seen before the
             * odd sequence (a seqlock writer's begin): a reader that sees
             * a new word also sees the lock taken, and retries. */
            atomic_thread_fence(memory_order_release);
            return;
        }
        /* Two cores, often more threads: yield rather than spin against a
         * holder that is not running. */
        if (++spins > 64)
            sched_yield();
    }
}

/* Whether a writer holds id's lock. */
static inline bool node_locked(const vf_hnsw *h, uint32_t id)
{
    return __atomic_load_n(vf_node_links0(h, id), __ATOMIC_RELAXED) & VF_SEQ_ONE;
}

/* Releases it (the sequence goes even and new): readers that copied a
 * list meanwhile retry. */
static inline void node_unlock(const vf_hnsw *h, uint32_t id)
{
    assert(node_locked(h, id));
    __atomic_fetch_add(vf_node_links0(h, id), VF_SEQ_ONE, __ATOMIC_RELEASE);
}

/* Sets id's level-0 count; the caller holds id's lock (or has the index
 * to itself), so no other thread changes the word meanwhile. */
static inline void node_count_set(const vf_hnsw *h, uint32_t id, uint32_t n)
{
    uint32_t *word = vf_node_links0(h, id);
    uint32_t v = __atomic_load_n(word, __ATOMIC_RELAXED);
    assert(n <= h->m0);
    __atomic_store_n(word, (v & ~VF_COUNT_MASK) | n, __ATOMIC_RELAXED);
}

/* List words are read and written relaxed: searches copy lists while
 * writers change them (see links_copy). */
static inline uint32_t word_get(const uint32_t *w)
{
    return __atomic_load_n(w, __ATOMIC_RELAXED);
}

static inline void word_set(uint32_t *w, uint32_t v)
{
    __atomic_store_n(w, v, __ATOMIC_RELAXED);
}

/* Empties every list of id (its level-0 count and its upper counts); the
 * caller holds id's lock or has the index to itself. */
static inline void node_lists_empty(const vf_hnsw *h, uint32_t id)
{
    node_count_set(h, id, 0);
    for (unsigned lev = 1; lev <= node_level(h, id); lev++)
        word_set(vf_node_upper(h, id, lev), 0);
}

/* The links a list at lev holds at most: m0 on level 0, m above. */
static inline uint32_t level_cap(const vf_hnsw *h, unsigned lev)
{
    return lev ? h->m : h->m0;
}

/* hnsw_upper.c: the upper lists' words and table. */
/* Room for `words` more words and `nodes` more ids, growing each by at
 * least half when it grows. Caller holds grow_lock (write) or has the
 * index to itself. 0, -ENOMEM, -EFBIG (past 2^32 words). */
int vf_upper_grow(vf_hnsw *h, size_t words, size_t nodes);
/* Room for what `capacity` slots are expected to claim (same locking). */
int vf_upper_reserve(vf_hnsw *h, size_t capacity);
/* Holds room for one claim of any level, growing under grow_lock (write)
 * when it must; the caller holds no lock of the index. 0, -ENOMEM,
 * -EFBIG. */
int vf_upper_hold(vf_hnsw *h);
/* Gives back a hold no claim used. Caller holds grow_lock (read), or has
 * the index to itself. */
void vf_upper_unhold(vf_hnsw *h);
/* Claims zeroed lists for id's `level` (>= 1) levels with a hold the
 * caller has. Caller holds grow_lock (read) and id's op lock, or has the
 * index to itself. */
void vf_upper_claim(vf_hnsw *h, uint32_t id, unsigned level);
/* Frees the words and the table (vf_hnsw_free). */
void vf_upper_free(vf_hnsw *h);
/* The upper store's own invariants for vf_hnsw_check, with the writers
 * stopped: no hold left, one entry per node of level > 0 with its lists
 * inside the used words, the words used adding up, the table at most 3/4
 * full. 0 or -EILSEQ. */
int vf_upper_check(const vf_hnsw *h);
/* Bytes the words and the table hold. */
size_t vf_upper_bytes(const vf_hnsw *h);

/* hnsw_packed.c: packed level-0 lists ("Packed lists"). */
/* links_copy of a packed level-0 list. */
uint32_t vf_packed_copy(const vf_hnsw *h, uint32_t id, uint32_t *buf);
/* list_read of a packed level-0 list: decoded into buf. */
uint32_t *vf_packed_read(const vf_hnsw *h, uint32_t id, uint32_t *buf);
/* list_commit of a decoded packed level-0 list. */
void vf_packed_commit(const vf_hnsw *h, uint32_t id, uint32_t *list);
/* Sets the level-0 record's layout for ids below capacity: the links'
 * code shape when packed, the vector's offset, the record size. */
void vf_packed_layout(vf_hnsw *h, size_t capacity);
/* Re-packs a packed index's level-0 block for ids below capacity (its new
 * size; ids below h->capacity are in use). Caller holds grow_lock
 * (write). 0, -ENOMEM, -EFBIG. */
int vf_packed_regrow(vf_hnsw *h, size_t capacity);

/* Copies id's link list at lev into buf (room for m0) without writing
 * shared memory: retries while a writer holds the node or moved its
 * sequence meanwhile. A packed list (out of line, so that the u32 walk's
 * code stays as it was) is copied as words and decoded from the copy once
 * the sequence shows it whole. Returns the list's length. */
static inline uint32_t links_copy(const vf_hnsw *h, uint32_t id, unsigned lev, uint32_t *buf)
{
    if (lev == 0 && h->packed)
        return vf_packed_copy(h, id, buf);
    const uint32_t *word = vf_node_links0(h, id);
    const uint32_t *list = lev ? vf_node_upper(h, id, lev) : word;
    const uint32_t cap = level_cap(h, lev);
    for (unsigned spins = 0;; spins++) {
        uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
        if (!(v & VF_SEQ_ONE)) {
            uint32_t n = lev ? word_get(&list[0]) : v & VF_COUNT_MASK;
            if (n > cap)
                n = cap; /* torn by a writer: the check below retries */
            for (uint32_t i = 0; i < n; i++)
                buf[i] = word_get(&list[1 + i]);
            atomic_thread_fence(memory_order_acquire);
            if (__atomic_load_n(word, __ATOMIC_RELAXED) == v)
                return n;
        }
        if (spins > 64)
            sched_yield();
    }
}

/* id's list at lev as (count, links) words for a reader no writer of id
 * runs beside (a writer holding id's node lock, or a caller with the
 * writers stopped): a level-0 list copied (decoded when packed) into buf
 * (1 + m0 words), an upper list itself. */
static inline uint32_t *list_read(const vf_hnsw *h, uint32_t id, unsigned lev, uint32_t *buf)
{
    if (lev > 0)
        return vf_node_upper(h, id, lev);
    if (h->packed)
        return vf_packed_read(h, id, buf);
    const uint32_t *node = vf_node_links0(h, id);
    buf[0] = vf_node_count0(h, id);
    if (buf[0] > h->m0)
        buf[0] = h->m0; /* only a crafted snapshot's word, which its load rejects */
    for (uint32_t i = 0; i < buf[0]; i++)
        buf[1 + i] = word_get(&node[1 + i]);
    return buf;
}

/* Writes the (count, links) words of list, which list_read copied for
 * id's level-0 list, back to the node (packed: sorting the links). The
 * caller holds id's node lock; an upper list is the node's own and needs
 * nothing. */
static inline void list_commit(const vf_hnsw *h, uint32_t id, unsigned lev, uint32_t *list)
{
    if (lev > 0)
        return;
    if (h->packed) {
        vf_packed_commit(h, id, list);
        return;
    }
    uint32_t *node = vf_node_links0(h, id);
    for (uint32_t i = 0; i < list[0]; i++)
        word_set(&node[1 + i], list[1 + i]);
    node_count_set(h, id, list[0]);
}

/* The entry word for id at `level` (see VF_HNSW_NO_ENTRY). */
static inline uint64_t entry_pack(unsigned level, uint32_t id)
{
    return ((uint64_t)level << 32) | id;
}

/* Whether id may be returned: present, not `exclude`, passing the filter
 * (if any). */
static inline bool result_ok(const vf_hnsw *h, uint32_t id, const vf_filter *filter,
                             uint32_t exclude)
{
    if (id == exclude || slot_state(h, id) != VF_SLOT_PRESENT)
        return false;
    return !filter || filter->accept(filter->ctx, id);
}

/* A present node that is part of the graph (not a rider). */
static inline bool graph_node(const vf_hnsw *h, uint32_t id)
{
    return slot_state(h, id) == VF_SLOT_PRESENT && ring_role(h, id) != VF_TWIN_RIDER;
}

/* Whether id is among the n hits. */
static inline bool hits_contain(const vf_hit *hits, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (hits[i].id == id)
            return true;
    return false;
}

/* The age order of "Reachability": a is older than b. */
static inline bool older(const vf_hnsw *h, uint32_t a, uint32_t b)
{
    return node_level(h, a) > node_level(h, b) || (node_level(h, a) == node_level(h, b) && a < b);
}

/* Adds one to a statistics counter. */
static inline void counter_bump(const _Atomic uint64_t *counter)
{
    /* Statistics are the one thing a const index still counts. */
    atomic_fetch_add_explicit((_Atomic uint64_t *)counter, 1, memory_order_relaxed);
}

/* t's anchor, or VF_NO_ANCHOR. */
static inline uint32_t anchor_get(const vf_hnsw *h, uint32_t t)
{
    return atomic_load_explicit(&h->anchor[t], memory_order_acquire);
}

/* Whether the list (count, links) links id. */
static inline bool list_has(const uint32_t *list, uint32_t id)
{
    for (uint32_t i = 0; i < list[0]; i++)
        if (list[1 + i] == id)
            return true;
    return false;
}

/* hnsw_scratch.c */
void vf_scratch_free(vf_scratch *s);
/* A scratch sized for the capacity and `results` result slots; the
 * caller holds grow_lock (read). NULL on ENOMEM. */
vf_scratch *vf_scratch_acquire(const vf_hnsw *h, size_t results);
/* A scratch for a writer: results for ef_construction and room for
 * VF_ORPHANS_RESERVE(h) orphans, so that once the writer starts changing
 * the index nothing it needs can fail. NULL on ENOMEM. */
vf_scratch *vf_scratch_acquire_write(const vf_hnsw *h);
/* Room for n more orphans without allocating. 0 or -ENOMEM. */
int vf_orphans_reserve(vf_scratch *s, size_t n);
void vf_scratch_release(const vf_hnsw *h, vf_scratch *s);
void vf_visited_begin(vf_scratch *s);

/* Marks id visited in this walk; returns whether it already was. */
static inline bool visited_test_set(vf_scratch *s, uint32_t id)
{
    assert(id < s->visited_cap);
    uint64_t *word = &s->visited[id >> 6], bit = 1ull << (id & 63), old = *word;
    if (old & bit)
        return true;
    /* Without a branch: whether the word was still clear is as good as
     * random along a walk (touched has one spare entry for it). */
    s->touched[s->touched_len] = id >> 6;
    s->touched_len += old == 0;
    *word = old | bit;
    return false;
}

/* Whether id was visited in this walk. */
static inline bool visited_has(const vf_scratch *s, uint32_t id)
{
    assert(id < s->visited_cap);
    return (s->visited[id >> 6] >> (id & 63)) & 1;
}
int vf_cand_grow(vf_scratch *s, vf_heap *cand);

/* hnsw_walk.c */
void vf_hnsw_descend(const vf_hnsw *h, vf_scratch *s, const void *q, float q_sq, bool build,
                     unsigned from, unsigned stop, uint32_t *cur, float *cur_d);
int vf_hnsw_walk_layer(const vf_hnsw *h, vf_scratch *s, const void *q, uint32_t ep, float ep_d,
                       size_t ef, unsigned lev, const vf_filter *filter, uint32_t exclude,
                       bool build, float q_sq, vf_heap *res);
/* The WALK plan's walk of level 0: from ep and the n_seeds passing seeds
 * (vf_hnsw_seeds, in memory other than s->cand and s->res), expanding at
 * most failing_budget failing nodes in full (vf_hnsw_walk_failing_budget);
 * *capped tells whether that budget ran out. 0 or -ENOMEM. */
int vf_hnsw_walk_filtered(const vf_hnsw *h, vf_scratch *s, const void *q, uint32_t ep, float ep_d,
                          size_t ef, const vf_filter *filter, uint32_t exclude,
                          size_t failing_budget, const vf_hit *seeds, size_t n_seeds, bool *capped,
                          vf_heap *res);
int vf_hnsw_walk_expand(const vf_hnsw *h, vf_scratch *s, const void *q, uint32_t ep, float ep_d,
                        size_t ef, const vf_filter *filter, vf_heap *res);
void vf_hnsw_scan(const vf_hnsw *h, vf_scratch *s, const void *q, size_t k, const vf_filter *filter,
                  uint32_t exclude, vf_hit *out, size_t *n_out);

/* hnsw_seed.c */
/* Up to cap passing graph nodes nearest q (a vector record) among a
 * sample of min(ef, 256) of the filter's passing set (its id list, else
 * slots probed at a stride; passing is the count the plan was chosen
 * from), into out as a max-heap (unsorted). Returns their count. */
size_t vf_hnsw_seeds(const vf_hnsw *h, const void *q, const vf_filter *filter, size_t passing,
                     size_t ef, vf_hit *out, size_t cap);

/* hnsw_plan.c */
/* The plan for a filtered search of k at ef over count present vectors:
 * `forced` unless it is VF_PLAN_AUTO, else the planner's choice; *passing
 * gets the passing count (the caller's or a sampled estimate). May read
 * link lists into s->links (the filter's affinity with the graph). */
vf_filter_plan vf_hnsw_plan_choose(const vf_hnsw *h, vf_scratch *s, const vf_filter *filter,
                                   vf_filter_plan forced, size_t count, size_t k, size_t ef,
                                   size_t *passing);
/* The ef a WALK runs with for a search of k at ef when passing of count
 * vectors pass: ef x VF_WALK_EF_MARGIN x sqrt(share), within [k, ef], so
 * that its recall meets the unfiltered recall of ef rather than exceeding
 * it at 1/share the cost (hnsw_plan.c). */
size_t vf_hnsw_walk_ef(size_t ef, size_t k, size_t passing, size_t count);
/* The failing nodes a WALK of walk_ef expands in full when passing of
 * count vectors pass: VF_WALK_FAILING_BUDGET x walk_ef / share, at least 1. */
size_t vf_hnsw_walk_failing_budget(size_t walk_ef, size_t passing, size_t count);

/* hnsw_link.c */
void vf_hnsw_orphan_push(const vf_hnsw *h, vf_scratch *s, uint32_t t);
void vf_hnsw_unlink(const vf_hnsw *h, vf_scratch *s, uint32_t x);
void vf_hnsw_lists_clear(const vf_hnsw *h, vf_scratch *s, uint32_t x);
void vf_hnsw_entry_move_off(vf_hnsw *h, uint32_t x);
void vf_hnsw_sq_set(vf_hnsw *h, uint32_t id, float sq);
void vf_hnsw_connect(vf_hnsw *h, vf_scratch *s, uint32_t x);
bool vf_hnsw_link_in(vf_hnsw *h, vf_scratch *s, uint32_t t);
void vf_hnsw_orphans_settle(vf_hnsw *h, vf_scratch *s, size_t budget);

/* hnsw_twins.c */
void vf_twin_alone(const vf_hnsw *h, uint32_t x);
int vf_twin_reserve(vf_hnsw *h);
bool vf_twin_place(vf_hnsw *h, vf_scratch *s, uint32_t x);
bool vf_twin_dismount(vf_hnsw *h, uint32_t x);
void vf_twin_unhead(vf_hnsw *h, vf_scratch *s, uint32_t x);
uint32_t vf_twin_lookup(const vf_hnsw *h, const void *q);
int vf_twin_rebuild(vf_hnsw *h, const uint8_t *lone);

/* hnsw_record.c */
/* vec as the index keeps it (normalized for cosine; encoded for INT8,
 * counted for drift when `track`) into the record rec (rec_bytes); uses
 * s->query. */
void vf_hnsw_rec_encode(vf_hnsw *h, vf_scratch *s, const float *vec, uint8_t *rec, bool track);
void vf_hnsw_rec_decode(const vf_hnsw *h, const uint8_t *rec, float *out);
bool vf_hnsw_query_finite(const float *q, size_t dim);

/* hnsw_quant.c */
/* Trains an untrained INT8 quantizer from n vectors (a no-op otherwise).
 * 0 or -ENOMEM. */
int vf_hnsw_quant_ready(vf_hnsw *h, const float *vecs, size_t n);

/* hnsw_search.c */
int vf_hnsw_search_locked(const vf_hnsw *h, vf_scratch *s, const void *q, size_t k, size_t ef,
                          const vf_filter *filter, uint32_t exclude, bool exact, vf_hit *out,
                          size_t *n_out);

#endif /* VECFS_ENGINE_HNSW_INTERNAL_H */
