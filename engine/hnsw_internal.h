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
 *
 * Locking (lock order, outermost first)
 *   1. grow_lock (rwlock): read-held by every operation, write-held only
 *      while the arrays above are reallocated.
 *   2. op_locks[id % VF_HNSW_OP_STRIPES] (mutex): serializes insert/remove
 *      of one id for the whole operation.
 *   3. entry_lock (mutex): held by an insert that raises the top level, for
 *      that whole insert, so levels rise one writer at a time.
 *   4. versions[id] (sequence lock): writers of id's link lists hold it
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

enum { VF_SLOT_EMPTY = 0, VF_SLOT_PRESENT = 1, VF_SLOT_DELETED = 2 };

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

    pthread_mutex_t op_locks[VF_HNSW_OP_STRIPES];
    pthread_mutex_t entry_lock;
    _Atomic uint64_t entry; /* see VF_HNSW_NO_ENTRY */

    _Atomic size_t count;       /* present ids */
    _Atomic size_t deleted;     /* deleted slots awaiting reuse */
    _Atomic size_t upper_bytes; /* bytes held by upper lists */
    _Atomic uint32_t ef_search;
    _Atomic uint64_t level_draws; /* level generator position */

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

#endif /* VECFS_ENGINE_HNSW_INTERNAL_H */
