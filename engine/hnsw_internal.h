/*
 * hnsw_internal.h — the in-memory layout of an HNSW index, shared by
 * hnsw.c (build and search) and snapshot.c (serialization). Not installed.
 *
 * Memory layout
 *   level0   capacity records of node_bytes each, one per id:
 *              u32 count | u32 links[m0] | f32 vector[dim]
 *            A node's links and vector sit side by side, so expanding a
 *            node and scoring its neighbours touches few cache lines.
 *   upper    per id, NULL or level * (1 + m) u32: for level l in 1..level,
 *            u32 count | u32 links[m] at index (l - 1) * (1 + m).
 *   levels   per id, the node's top level (0..VF_HNSW_MAX_LEVEL).
 *   state    per id, VF_SLOT_EMPTY / PRESENT / DELETED.
 *   versions per id, a sequence lock over that node's link lists: odd while
 *            a writer holds it, bumped on every release.
 *   twin_next, twin_prev  per id, a ring of slots that hold the same
 *            vector: one graph node (the head, role TWIN_HEAD) carries the
 *            others (role TWIN_RIDER), which have no links; a slot alone
 *            is a ring of one. Changed under twin_lock; searches follow
 *            twin_next without it (see hnsw.c, "Twins").
 *   ring_role per id, TWIN_HEAD (a graph node) or TWIN_RIDER.
 *   table    the heads by vector (exact match), for inserts to find the
 *            ring they join and queries the vector they equal.
 *   anchor   per id, the node whose level-0 link to it is its protected
 *            way in (an older node), or VF_NO_ANCHOR. That link is never
 *            dropped while it anchors (see hnsw.c, "Reachability").
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
 *   5. versions[id] (sequence lock): writers of id's link lists hold it
 *      (version odd); a thread holds at most one at a time. Searches never
 *      write it: they copy a list and retry if the version moved, so
 *      readers do not bounce cache lines between cores. List words are
 *      read and written with relaxed atomics for that reason.
 *   Vectors are written only by the insert that owns the id (op lock) and
 *   read by searches without a lock: a search racing an update of the same
 *   id may score a half-written vector, a ranking error for that one node
 *   and never a memory error.
 */
#ifndef VECFS_ENGINE_HNSW_INTERNAL_H
#define VECFS_ENGINE_HNSW_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"

#define VF_HNSW_MAX_LEVEL 31u
#define VF_HNSW_OP_STRIPES 256u
#define VF_HNSW_MAX_M 256u
/* entry packs (top level << 32) | entry id; this value means "empty". */
#define VF_HNSW_NO_ENTRY UINT64_MAX
#define VF_NO_ANCHOR UINT32_MAX

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
    double level_mult;   /* 1 / ln(m) */
    size_t node_bytes;   /* level-0 record size */
    size_t vec_offset;   /* vector offset inside a level-0 record */
    vf_kernel_fn kernel; /* l2sq for l2, dot for cosine and dot */

    /* Arrays of capacity entries; reallocated under grow_lock (write). */
    pthread_rwlock_t grow_lock;
    size_t capacity;  /* protected by grow_lock */
    uint8_t *level0;  /* protected by grow_lock; lists by versions[] */
    uint32_t **upper; /* protected by grow_lock; lists by versions[] */
    uint8_t *levels;  /* written once per slot under its op lock */
    _Atomic uint8_t *state;
    _Atomic uint32_t *versions;
    _Atomic uint32_t *anchor;    /* set under the anchor's node lock */
    _Atomic uint32_t *twin_next; /* protected by twin_lock; read by searches */
    _Atomic uint32_t *twin_prev; /* protected by twin_lock */
    _Atomic uint8_t *ring_role;  /* protected by twin_lock; read by searches */
    float *sqnorm;               /* dot only: squared norms, for the graph's lifting */

    pthread_mutex_t op_locks[VF_HNSW_OP_STRIPES];
    pthread_mutex_t entry_lock;
    pthread_mutex_t twin_lock;
    /* Heads by vector, open addressing, at most half full: ids,
     * UINT32_MAX empty, UINT32_MAX - 1 gone. Changed under twin_lock and,
     * for the moment of the change, table_lock (write); queries probe it
     * under table_lock (read). */
    pthread_rwlock_t table_lock;
    uint32_t *table;
    size_t table_cap, table_used, table_gone;
    _Atomic uint64_t entry; /* see VF_HNSW_NO_ENTRY */

    _Atomic size_t count;       /* present ids */
    _Atomic size_t deleted;     /* deleted slots awaiting reuse */
    _Atomic size_t upper_bytes; /* bytes held by upper lists */
    _Atomic uint32_t ef_search;
    _Atomic uint64_t level_draws;    /* level generator position */
    _Atomic uint32_t max_sq_bits;    /* dot: largest squared norm (float bits) */
    _Atomic uint64_t searches_short; /* walks that came back short (exact fallback) */
    _Atomic uint64_t rehomed;        /* nodes given a new way in after losing their last */
    _Atomic uint64_t stranded;       /* nodes no nearby list could take in */

    pthread_mutex_t pool_lock;
    vf_scratch *pool; /* protected by pool_lock: idle search scratch */
};

static inline uint32_t *vf_node_links0(const struct vf_hnsw *h, uint32_t id)
{
    return (uint32_t *)(h->level0 + (size_t)id * h->node_bytes);
}

static inline float *vf_node_vector(const struct vf_hnsw *h, uint32_t id)
{
    return (float *)(h->level0 + (size_t)id * h->node_bytes + h->vec_offset);
}

/* The list (count, links) of id at level lev; lev must be <= levels[id]. */
static inline uint32_t *vf_node_list(const struct vf_hnsw *h, uint32_t id, unsigned lev)
{
    if (lev == 0)
        return vf_node_links0(h, id);
    return h->upper[id] + (size_t)(lev - 1) * (1 + h->m);
}

/* Shared by hnsw.c and snapshot.c. */
int vf_hnsw_alloc(const vf_hnsw_params *params, vf_hnsw **out);
int vf_hnsw_grow_locked(vf_hnsw *h, size_t capacity);
/* After a load: empties the lists of deleted slots (older snapshots kept
 * them), puts riders back in their twin rings, makes the oldest graph
 * node the entry, gives every node an anchor (linking in those that have
 * none). 0 or -ENOMEM. */
int vf_hnsw_links_settle(vf_hnsw *h);

#endif /* VECFS_ENGINE_HNSW_INTERNAL_H */
