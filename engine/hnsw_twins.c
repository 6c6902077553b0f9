/*
 * hnsw_twins.c — identical vectors ("twins": the same text embedded twice,
 * boilerplate, empty strings) kept once in the graph.
 *
 * A thousand copies of one vector as a thousand graph nodes fill every
 * candidate list of a walk that comes near them and hold it there, and
 * their lists all point at each other. So an insert whose vector is
 * already in the graph does not join it: a table of graph nodes by vector
 * finds the node (the head), and the new vector rides on it in a ring of
 * twins that queries expand (hnsw_search.c). A rider has no links and no
 * way in but its head. Removing or updating a head first links the next
 * rider into the graph and hands it the ring and the table slot. The same
 * table lets a query that equals a stored vector find it.
 *
 * Invariants
 *   1. The table holds graph nodes only, each under the hash of its
 *      vector, and is at most three quarters full (so a probe ends at an
 *      empty slot).
 *   2. Every rider's ring holds exactly one head, with the rider's vector.
 *   3. Rings and the table change under twin_lock; the table's memory and
 *      slots also under table_lock (write), which queries take to read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"

#define VF_TABLE_EMPTY UINT32_MAX
#define VF_TABLE_GONE (UINT32_MAX - 1)

/* A hash of a vector record's bytes (n of them). Every query pays it, so
 * four independent lanes take 32 bytes a step (the multiplies overlap). */
static uint64_t vector_hash(const void *v, size_t n)
{
    const unsigned char *p = (const unsigned char *)v;
    size_t i = 0;
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
 * table_lock. The table is at most three quarters full, so a probe ends. */
static uint32_t table_find(const vf_hnsw *h, const void *v)
{
    assert((h->table_used + h->table_gone) * 4 <= h->table_cap * 3);
    if (h->table_cap == 0)
        return UINT32_MAX;
    size_t mask = h->table_cap - 1;
    for (size_t at = vector_hash(v, h->rec_bytes) & mask;; at = (at + 1) & mask) {
        uint32_t id = h->table[at];
        if (id == VF_TABLE_EMPTY)
            return UINT32_MAX;
        if (id != VF_TABLE_GONE && memcmp(vf_node_rec(h, id), v, h->rec_bytes) == 0)
            return id;
    }
}

/* The table slot holding id (whose vector is in place). */
static size_t table_slot(const vf_hnsw *h, uint32_t id)
{
    if (h->table_cap == 0)
        return SIZE_MAX;
    size_t mask = h->table_cap - 1;
    for (size_t at = vector_hash(vf_node_rec(h, id), h->rec_bytes) & mask;; at = (at + 1) & mask) {
        if (h->table[at] == id)
            return at;
        if (h->table[at] == VF_TABLE_EMPTY)
            return SIZE_MAX; /* a head an allocation failure kept out */
    }
}

/* Puts id in the first empty or gone slot of hash's probe sequence. */
static void table_put_at(uint32_t *table, size_t cap, uint64_t hash, uint32_t id)
{
    assert(cap > 0 && (cap & (cap - 1)) == 0);
    size_t at = hash & (cap - 1);
    while (table[at] != VF_TABLE_EMPTY && table[at] != VF_TABLE_GONE)
        at = (at + 1) & (cap - 1);
    table[at] = id;
}

/* Makes room for one more head: rebuilds the table, dropping its gone
 * slots, when it would be more than three quarters full (at 331k distinct
 * vectors, 2^19 slots rather than 2^20: 6.3 bytes a vector less, probes
 * short still). Caller holds twin_lock.
 * 0 or -ENOMEM. */
static int table_reserve(vf_hnsw *h)
{
    if ((h->table_used + h->table_gone + 1) * 4 <= h->table_cap * 3)
        return 0;
    size_t cap = 64;
    while (cap * 3 < 4 * (h->table_used + 2))
        cap *= 2;
    uint32_t *table = vc_malloc(cap * sizeof(uint32_t));
    if (!table)
        return -ENOMEM;
    memset(table, 0xFF, cap * sizeof(uint32_t));
    for (size_t i = 0; i < h->table_cap; i++) {
        uint32_t id = h->table[i];
        if (id != VF_TABLE_EMPTY && id != VF_TABLE_GONE)
            table_put_at(table, cap, vector_hash(vf_node_rec(h, id), h->rec_bytes), id);
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
    assert((h->table_used + h->table_gone + 1) * 4 <= h->table_cap * 3);
    assert(id < h->capacity && ring_role(h, id) == VF_TWIN_HEAD);
    pthread_rwlock_wrlock(&h->table_lock);
    table_put_at(h->table, h->table_cap, vector_hash(vf_node_rec(h, id), h->rec_bytes), id);
    h->table_used++;
    pthread_rwlock_unlock(&h->table_lock);
}

/* Replaces head x by z (its twin), or drops x when z is UINT32_MAX.
 * Caller holds twin_lock; x's vector is still in place. */
static void table_replace(vf_hnsw *h, uint32_t x, uint32_t z)
{
    assert(x < h->capacity && (z == UINT32_MAX || z < h->capacity));
    pthread_rwlock_wrlock(&h->table_lock);
    size_t at = table_slot(h, x);
    if (at != SIZE_MAX) {
        h->table[at] = z == UINT32_MAX ? VF_TABLE_GONE : z;
        if (z == UINT32_MAX) {
            h->table_used--;
            h->table_gone++;
        }
    }
    pthread_rwlock_unlock(&h->table_lock);
}

void vf_twin_alone(const vf_hnsw *h, uint32_t x)
{
    atomic_store_explicit(&h->twin_next[x], x, memory_order_relaxed);
    atomic_store_explicit(&h->twin_prev[x], x, memory_order_relaxed);
}

/* Caller holds twin_lock (or has the index to itself). */
static void ring_insert_after(const vf_hnsw *h, uint32_t at, uint32_t x)
{
    assert(at != x && atomic_load_explicit(&h->twin_next[x], memory_order_relaxed) == x);
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
    vf_twin_alone(h, x);
}

/* Makes present, unlinked x ride on the head that has its vector, or
 * enters x in the table as a head (room reserved by vf_twin_reserve, whose
 * twin_lock this releases). Returns true if x rides. */
bool vf_twin_place(vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    assert(slot_state(h, x) == VF_SLOT_PRESENT && ring_role(h, x) == VF_TWIN_HEAD);
    uint32_t head = table_find(h, vf_node_rec(h, x));
    bool rides = head != UINT32_MAX && head != x;
    if (rides) {
        ring_role_set(h, x, VF_TWIN_RIDER);
        ring_insert_after(h, head, x);
    } else {
        table_put(h, x);
    }
    pthread_mutex_unlock(&h->twin_lock);
    /* A writer that chose x while it was a head may have linked it back
     * before the role changed; writers check the role under x's lock, so
     * after this clear none adds more. */
    if (rides)
        vf_hnsw_lists_clear(h, s, x);
    return rides;
}

/* Takes twin_lock with room in the table for one more head; on error the
 * lock is not held. 0 or -ENOMEM. */
int vf_twin_reserve(vf_hnsw *h)
{
    pthread_mutex_lock(&h->twin_lock);
    int rc = table_reserve(h);
    if (rc)
        pthread_mutex_unlock(&h->twin_lock);
    return rc;
}

/* If x rides, takes it out of its ring and returns true; a head is left
 * as it is (false). One step under twin_lock: a rider that another
 * writer's vf_twin_unhead makes the head meanwhile must be treated as a
 * head. */
bool vf_twin_dismount(vf_hnsw *h, uint32_t x)
{
    pthread_mutex_lock(&h->twin_lock);
    bool rider = ring_role(h, x) == VF_TWIN_RIDER;
    if (rider) {
        ring_leave(h, x);
        ring_role_set(h, x, VF_TWIN_HEAD);
    }
    pthread_mutex_unlock(&h->twin_lock);
    return rider;
}

/* Before head x is removed or updated: if twins ride on it, links the
 * next one into the graph and hands it x's ring and table slot; else
 * takes x out of the table. Cannot fail (vf_hnsw_connect cannot). */
void vf_twin_unhead(vf_hnsw *h, vf_scratch *s, uint32_t x)
{
    assert(x < h->capacity && ring_role(h, x) == VF_TWIN_HEAD);
    pthread_mutex_lock(&h->twin_lock);
    uint32_t z = atomic_load_explicit(&h->twin_next[x], memory_order_relaxed);
    if (z == x) {
        table_replace(h, x, UINT32_MAX);
    } else {
        /* z is linked while it is still in x's ring, so searches find the
         * twins through x until z has its links. */
        ring_role_set(h, z, VF_TWIN_HEAD);
        vf_hnsw_connect(h, s, z);
        table_replace(h, x, z);
        ring_leave(h, x);
    }
    pthread_mutex_unlock(&h->twin_lock);
}

/* The head whose vector is exactly q (a query), or UINT32_MAX. */
uint32_t vf_twin_lookup(const vf_hnsw *h, const void *q)
{
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->table_lock);
    uint32_t id = table_find(h, q);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->table_lock);
    return id;
}

/* Snapshots keep riders as present nodes with no links that none links
 * to (lone[]). Enters every other present node in the table as a head
 * (a second graph node with a head's vector, from a snapshot older than
 * twin rings, stays a plain graph node), then puts each lone node on the
 * head with its vector, or makes it a head. 0 or -ENOMEM. */
int vf_twin_rebuild(vf_hnsw *h, const uint8_t *lone)
{
    assert(lone != NULL && h->table_used == 0);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < h->capacity; i++) {
            uint32_t x = (uint32_t)i;
            if (slot_state(h, (uint32_t)i) != VF_SLOT_PRESENT || lone[i] != (pass == 1))
                continue;
            uint32_t head = table_find(h, vf_node_rec(h, x));
            if (head != UINT32_MAX && pass == 1) {
                ring_role_set(h, x, VF_TWIN_RIDER);
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
