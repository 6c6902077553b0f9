/*
 * hnsw.c — a hierarchical navigable small world graph (Malkov & Yashunin)
 * with deletes, in-place updates, filtered search and concurrent inserts
 * and searches, built so that every present vector stays reachable: the
 * index object, its storage, and inserts, updates and removes.
 *
 * Ids are slots: the caller's uint32 id indexes every per-node array, so
 * there is no label map. The layout and the lock order are documented in
 * hnsw_internal.h. The index is spread over one file per concept, from the
 * bottom up: hnsw_scratch.c (per-thread buffers), hnsw_walk.c (graph
 * walks), hnsw_link.c (choosing and writing links, anchors: the
 * reachability rules), hnsw_twins.c (identical vectors), hnsw_search.c
 * (queries), hnsw_tune.c (ef = auto), this file (the object and its
 * writers), hnsw_reach.c (reachability walks, loading), hnsw_check.c
 * (the invariant checker).
 *
 * Invariants (checked by vf_hnsw_check)
 *   1. A link at level l from a to b has a != b, b < capacity, b's state !=
 *      EMPTY and level(b) >= l. A list at level l holds at most m0 (l = 0)
 *      or m (l >= 1) distinct links.
 *   2. A used slot has upper lists (hnsw_upper.c) exactly when its level
 *      is above 0.
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
 *   is never a result and never a new neighbour. A present node is a graph
 *   node or a rider (hnsw_twins.c); an update or remove of a graph node
 *   first hands its ring of twins on.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"
#include "fanout.h"

#define VF_GROW_MIN 1024u

/* The splitmix64 finalizer: the level generator's hash of its position. */
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

/* First use of slot x: draw its level and claim its upper lists with the
 * caller's hold (which a level of 0 gives back). */
static void slot_claim(vf_hnsw *h, uint32_t x)
{
    assert(x < h->capacity && slot_state(h, x) == VF_SLOT_EMPTY);
    unsigned level = level_draw(h);
    if (level > 0)
        vf_upper_claim(h, x, level);
    else
        vf_upper_unhold(h);
    node_level_set(h, x, level);
    vf_twin_alone(h, x);
    atomic_store_explicit(&h->anchor[x], VF_NO_ANCHOR, memory_order_relaxed);
}

void vf_hnsw_params_default(vf_hnsw_params *p, uint32_t dim)
{
    p->dim = dim;
    p->metric = VF_METRIC_COSINE;
    p->m = 16;
    p->ef_construction = 200;
    p->ef_search = 64;
    p->seed = 0x76656366735eedULL;
    p->quantization = VF_QUANT_NONE;
    p->rerank = VF_RERANK_DEFAULT;
}

/* Whether every parameter is in the range engine.h gives. */
static int params_valid(const vf_hnsw_params *p)
{
    return p && p->dim >= 1 && p->dim <= VF_MAX_DIM &&
           (p->metric == VF_METRIC_L2 || p->metric == VF_METRIC_COSINE ||
            p->metric == VF_METRIC_DOT) &&
           p->m >= 2 && p->m <= VF_HNSW_MAX_M && p->ef_construction >= 1 &&
           p->ef_construction <= VF_HNSW_MAX_EF && p->ef_search >= 1 &&
           p->ef_search <= VF_HNSW_MAX_EF &&
           (p->quantization == VF_QUANT_NONE || p->quantization == VF_QUANT_INT8) &&
           p->rerank <= VF_RERANK_MAX;
}

int vf_hnsw_alloc(const vf_hnsw_params *params, vf_hnsw **out)
{
    *out = NULL;
    if (!params_valid(params))
        return -EINVAL;
    vf_hnsw *h = vc_calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->dim = params->dim;
    h->metric = params->metric;
    h->m = params->m;
    h->m0 = 2 * params->m;
    h->ef_construction = params->ef_construction;
    h->seed = params->seed;
    h->level_mult = 1.0 / log((double)params->m);
    h->quant = params->quantization;
    h->packed = h->quant == VF_QUANT_INT8;
    h->ef_decode = vf_ef_decoder();
    h->rerank = params->rerank ? params->rerank : VF_RERANK_DEFAULT;
    /* A cosine index keeps unit vectors: the quantizer's tighter bound. */
    if (h->quant == VF_QUANT_INT8 &&
        vf_quant_init(&h->q, h->dim, h->metric == VF_METRIC_COSINE) != 0) {
        free(h);
        return -ENOMEM;
    }
    h->rec_bytes = h->quant == VF_QUANT_INT8 ? h->q.rec_bytes : (size_t)h->dim * sizeof(float);
    vf_packed_layout(h, 0);
    const vf_kernels *k = vf_kernels_best();
    h->kernel = params->metric == VF_METRIC_L2 ? k->l2sq : k->dot;
    atomic_init(&h->entry, VF_HNSW_NO_ENTRY);
    atomic_init(&h->count, 0);
    atomic_init(&h->deleted, 0);
    atomic_init(&h->ef_search, params->ef_search);
    atomic_init(&h->level_draws, 0);
    atomic_init(&h->searches_short, 0);
    atomic_init(&h->rehomed, 0);
    atomic_init(&h->stranded, 0);
    for (size_t i = 0; i < sizeof(h->plans) / sizeof(h->plans[0]); i++)
        atomic_init(&h->plans[i], 0);
    atomic_init(&h->walks_capped, 0);
    atomic_init(&h->max_sq_bits, 0);
    atomic_init(&h->quant_trained, false);
    atomic_init(&h->relearns, 0);
    atomic_init(&h->missing_count, 0);

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
    pthread_mutex_init(&h->quant_lock, NULL);
    pthread_mutex_init(&h->upper_lock, NULL);
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
    vf_upper_free(h);
    free(h->level0);
    free((void *)h->slot_bits);
    free((void *)h->anchor);
    free((void *)h->twin_next);
    free((void *)h->twin_prev);
    free(h->sqnorm);
    free(h->missing);
    while (h->pool) {
        vf_scratch *next = h->pool->next;
        vf_scratch_free(h->pool);
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
    pthread_mutex_destroy(&h->quant_lock);
    pthread_mutex_destroy(&h->upper_lock);
    vf_quant_release(&h->q);
    free(h);
}

int vf_hnsw_grow_locked(vf_hnsw *h, size_t capacity)
{
    if (capacity <= h->capacity)
        return 0;
    if (capacity > (size_t)UINT32_MAX || capacity > SIZE_MAX / h->node_bytes)
        return -EFBIG;
    size_t old = h->capacity;
    void *bits = (void *)h->slot_bits, *anchor = (void *)h->anchor;
    int rc = h->packed ? vf_packed_regrow(h, capacity)
                       : vc_grow_zeroed((void **)&h->level0, old, capacity, h->node_bytes);
    if (!rc)
        rc = vf_upper_reserve(h, capacity);
    if (!rc)
        rc = vc_grow_zeroed(&bits, old, capacity, 1);
    h->slot_bits = bits;
    if (!rc)
        rc = vc_grow_zeroed(&anchor, old, capacity, sizeof(uint32_t));
    h->anchor = anchor;
    void *next = (void *)h->twin_next, *prev = (void *)h->twin_prev;
    if (!rc)
        rc = vc_grow_zeroed(&next, old, capacity, sizeof(uint32_t));
    h->twin_next = next;
    if (!rc)
        rc = vc_grow_zeroed(&prev, old, capacity, sizeof(uint32_t));
    h->twin_prev = prev;
    if (!rc && h->metric == VF_METRIC_DOT)
        rc = vc_grow_zeroed((void **)&h->sqnorm, old, capacity, sizeof(float));
    /* Arrays that grew stay grown; capacity moves only when all did. */
    if (!rc)
        h->capacity = capacity;
    return rc;
}

/* Grows the arrays to hold ids < need, by at least half the capacity
 * and to at least VF_GROW_MIN, under grow_lock (write). 0, -ENOMEM,
 * -EFBIG. */
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
    return ensure_capacity(h, capacity);
}

void vf_hnsw_params_get(const vf_hnsw *h, vf_hnsw_params *out)
{
    out->dim = h->dim;
    out->metric = h->metric;
    out->m = h->m;
    out->ef_construction = h->ef_construction;
    out->ef_search = atomic_load_explicit(&h->ef_search, memory_order_relaxed);
    out->seed = h->seed;
    out->quantization = h->quant;
    out->rerank = h->rerank;
}

void vf_hnsw_set_ef_search(vf_hnsw *h, uint32_t ef)
{
    if (h && ef >= 1 && ef <= VF_HNSW_MAX_EF)
        atomic_store_explicit(&h->ef_search, ef, memory_order_relaxed);
}

int vf_hnsw_insert(vf_hnsw *h, uint32_t id, const float *vec)
{
    if (!h || !vec)
        return -EINVAL;
    if (id == UINT32_MAX)
        return -EFBIG;
    if (!vf_hnsw_query_finite(vec, h->dim))
        return -EINVAL;
    int rc = ensure_capacity(h, (size_t)id + 1);
    if (!rc)
        rc = vf_hnsw_quant_ready(h, vec, 1);
    if (rc)
        return rc;
    /* Room for the upper lists a new slot may claim, held before the
     * locks: the claim cannot fail and the words never grow under them.
     * A slot never goes back to EMPTY, so one seen used claims nothing. */
    pthread_rwlock_rdlock(&h->grow_lock);
    bool held = slot_state(h, id) == VF_SLOT_EMPTY;
    pthread_rwlock_unlock(&h->grow_lock);
    if (held) {
        rc = vf_upper_hold(h);
        if (rc)
            return rc;
    }

    pthread_rwlock_rdlock(&h->grow_lock);
    pthread_mutex_t *op = &h->op_locks[id % VF_HNSW_OP_STRIPES];
    pthread_mutex_lock(op);
    /* Everything that can fail comes first, so that running out of memory
     * changes nothing: the scratch with its orphan reserve, room in the
     * table (vf_twin_place reserves again in case other inserts took it).
     * Past vf_twin_reserve the insert cannot fail. */
    vf_scratch *s = vf_scratch_acquire_write(h);
    if (!s) {
        rc = -ENOMEM;
        goto out_unlock;
    }
    rc = vf_twin_reserve(h);
    if (rc)
        goto out_release;
    pthread_mutex_unlock(&h->twin_lock);
    uint8_t was = slot_state(h, id);
    if (was == VF_SLOT_EMPTY) {
        assert(held);
        slot_claim(h, id);
        held = false;
    }
    bool head = was == VF_SLOT_PRESENT && !vf_twin_dismount(h, id);
    if (head) {
        vf_twin_unhead(h, s, id);
        /* An update relinks the vector where it now is, as an insert would;
         * what only its old lists led to is linked in again below. */
        vf_hnsw_unlink(h, s, id);
        vf_hnsw_entry_move_off(h, id);
        vf_hnsw_lists_clear(h, s, id);
    }
    /* The vector takes a new anchor where it lands (vf_hnsw_connect). */
    atomic_store_explicit(&h->anchor[id], VF_NO_ANCHOR, memory_order_relaxed);
    vf_hnsw_rec_encode(h, s, vec, vf_node_rec(h, id), true);
    missing_clear(h, id);
    if (h->metric == VF_METRIC_DOT)
        vf_hnsw_sq_set(h, id, rec_sq(h, vf_node_rec(h, id)));
    /* Present before linking: concurrent walks may reach it via a link
     * added below and must be able to return it. */
    slot_state_set(h, id, VF_SLOT_PRESENT);
    if (was != VF_SLOT_PRESENT)
        atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    if (was == VF_SLOT_DELETED)
        atomic_fetch_sub_explicit(&h->deleted, 1, memory_order_relaxed);
    bool rides = false;
    if (vf_twin_reserve(h) == 0)
        rides = vf_twin_place(h, s, id);
    /* else x stays out of the table: it is found by walks, not by exact
     * lookup, and no twin rides on it. */
    if (!rides)
        vf_hnsw_connect(h, s, id);
    vf_hnsw_orphans_settle(h, s, VF_DISPLACE_BUDGET);
out_release:
    vf_scratch_release(h, s);
out_unlock:
    pthread_mutex_unlock(op);
    if (held)
        vf_upper_unhold(h);
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

/* The id of a batch row. */
static uint32_t batch_id(const batch_job *job, size_t row)
{
    return job->ids ? job->ids[row] : job->first_id + (uint32_t)row;
}

/* Keeps rc as the batch's error unless an earlier row failed first. */
static void batch_fail(batch_job *job, int rc)
{
    int zero = 0;
    atomic_compare_exchange_strong(&job->err, &zero, rc);
}

/* Fan-out worker: inserts the fresh rows taken from the job's counter. */
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
    assert(n >= 1 && max_id < UINT32_MAX);
    uint64_t *seen = vc_calloc(max_id / 64 + 1, sizeof(uint64_t));
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
    if (!rc)
        rc = vf_hnsw_quant_ready(h, vecs, n);
    if (rc)
        return rc;

    batch_job job = {.h = h, .ids = ids, .first_id = first_id, .vecs = vecs};
    atomic_init(&job.next, 0);
    atomic_init(&job.err, 0);
    size_t *fresh = vc_malloc(n * sizeof(size_t)), *later = vc_malloc(n * sizeof(size_t));
    size_t n_later = 0;
    rc = fresh && later ? batch_split(&job, n, max_id, fresh, &job.n, later, &n_later) : -ENOMEM;
    if (rc) {
        free(fresh);
        free(later);
        return rc;
    }
    job.rows = fresh;
    unsigned nt = vc_threads_resolve(threads);
    if (nt > job.n)
        nt = job.n > 0 ? (unsigned)job.n : 1u;
    vc_fanout(nt, batch_worker, &job);
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
    /* The one step that can fail; past it the remove cannot. */
    vf_scratch *s = vf_scratch_acquire_write(h);
    if (!s) {
        rc = -ENOMEM;
        goto out_op;
    }
    missing_clear(h, id);
    bool rider = vf_twin_dismount(h, id);
    if (!rider)
        vf_twin_unhead(h, s, id);
    slot_state_set(h, id, VF_SLOT_DELETED);
    atomic_fetch_sub_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->deleted, 1, memory_order_relaxed);
    if (!rider) {
        vf_hnsw_unlink(h, s, id);
        vf_hnsw_entry_move_off(h, id);
    }
    /* A rider's lists are empty but for links a writer that chose it as a
     * head added late (see vf_twin_place); once it is deleted none come. */
    vf_hnsw_lists_clear(h, s, id);
    vf_hnsw_orphans_settle(h, s, VF_DISPLACE_BUDGET);
    vf_scratch_release(h, s);
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
        vf_hnsw_rec_decode(h, vf_node_rec(h, id), out);
        rc = 0;
    }
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return rc;
}

size_t vf_hnsw_missing(const vf_hnsw *h)
{
    return h ? atomic_load_explicit(&h->missing_count, memory_order_relaxed) : 0;
}

size_t vf_hnsw_missing_list(const vf_hnsw *h, uint32_t *ids, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; h && i < h->missing_cap && n < cap; i++)
        if (h->missing[i])
            ids[n++] = (uint32_t)i;
    return n;
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
    /* Per slot: level-0 record (with the lock word), state, role and
     * level (a byte), anchor, twin ring, squared norm (dot); then the upper
     * lists with their table, and the table of heads. */
    size_t per_slot = h->node_bytes + 1 + 3 * sizeof(uint32_t) + (h->sqnorm ? sizeof(float) : 0);
    size_t bytes = sizeof(*h) + h->capacity * per_slot + vf_upper_bytes(h);
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->table_lock);
    bytes += h->table_cap * sizeof(uint32_t);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->table_lock);
    pthread_mutex_lock((pthread_mutex_t *)&h->pool_lock);
    for (const vf_scratch *s = h->pool; s; s = s->next)
        bytes += sizeof(*s) + (s->visited_cap / 64) * (sizeof(uint64_t) + sizeof(uint32_t)) +
                 (s->cand_cap + 2 * s->res_cap + 4 * (size_t)h->m0 + 4) * sizeof(vf_hit) +
                 (3 * (size_t)h->m0 + 1) * sizeof(uint32_t) + s->orphans_cap * sizeof(uint32_t) +
                 2 * h->dim * sizeof(float) + h->rec_bytes + s->cands_cap * sizeof(vf_hit);
    if (h->quant == VF_QUANT_INT8)
        bytes += h->dim * sizeof(float);
    pthread_mutex_unlock((pthread_mutex_t *)&h->pool_lock);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
    return bytes;
}
