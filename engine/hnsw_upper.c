/*
 * hnsw_upper.c — where the lists of levels 1 and up live: one array of
 * words holds every node's upper lists, and a table maps the ids of the
 * nodes that have some to their offset. Only about 1 node in m has upper
 * levels, so a table slot per such node costs far less than a pointer per
 * slot (hnsw_internal.h, "Memory layout").
 *
 * Invariants
 *   1. A slot's upper lists are claimed once, when the slot is first
 *      used (its level is fixed then, hnsw.c invariant 5), and kept until
 *      the index is freed; the words never move under a reader.
 *   2. The words and the table are reallocated only under grow_lock
 *      (write); claims append under upper_lock with grow_lock (read);
 *      readers find an entry without a lock: an entry is one 64-bit word
 *      written once, with release, after its lists are in place.
 *   3. Room for one claim of any level is held before an insert takes its
 *      locks (upper_holds), so a claim never fails and never needs a
 *      grow: used + holds * claim_max <= cap, and the table stays at most
 *      3/4 full counting every hold, so every probe ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"

/* The share a reserve adds to the expected upper words and nodes of its
 * slots, so that the random levels of a full index rarely outgrow it. */
#define VF_UPPER_MARGIN 0.02

/* The most words one claim takes. */
static size_t claim_max(const vf_hnsw *h)
{
    return vf_upper_len(h, VF_HNSW_MAX_LEVEL);
}

/* Whether one more hold fits. Caller holds upper_lock, or grow_lock
 * (write). */
static bool hold_fits(const vf_hnsw *h)
{
    size_t holds = h->upper_holds + 1;
    return h->upper_used + holds * claim_max(h) <= h->upper_cap &&
           (h->upper_nodes + holds) * 4 <= h->upper_slots * 3;
}

/* Puts the entry of id at offset in table (slots a power of 2, room
 * left). */
static void table_put(uint64_t *table, size_t slots, uint32_t id, uint32_t offset)
{
    size_t mask = slots - 1;
    size_t i = vf_upper_hash(id) & mask;
    while (table[i] != 0)
        i = (i + 1) & mask;
    __atomic_store_n(&table[i], ((uint64_t)id + 1) << 32 | offset, __ATOMIC_RELEASE);
}

int vf_upper_grow(vf_hnsw *h, size_t words, size_t nodes)
{
    size_t need = h->upper_used + h->upper_holds * claim_max(h) + words;
    if (need > UINT32_MAX)
        return -EFBIG;
    if (need > h->upper_cap) {
        size_t cap = h->upper_cap + h->upper_cap / 2;
        cap = cap < need ? need : (cap > UINT32_MAX ? UINT32_MAX : cap);
        void *words_p = h->upper_words;
        if (vc_grow_zeroed(&words_p, h->upper_cap, cap, sizeof(uint32_t)) != 0)
            return -ENOMEM;
        h->upper_words = words_p;
        h->upper_cap = cap;
    }
    size_t want = h->upper_nodes + h->upper_holds + nodes,
           slots = h->upper_slots ? h->upper_slots : 16;
    while (want * 4 > slots * 3)
        slots *= 2;
    if (slots == h->upper_slots)
        return 0;
    uint64_t *table = vc_calloc(slots, sizeof(uint64_t));
    if (!table)
        return -ENOMEM;
    for (size_t i = 0; i < h->upper_slots; i++)
        if (h->upper_table[i])
            table_put(table, slots, (uint32_t)(h->upper_table[i] >> 32) - 1,
                      (uint32_t)h->upper_table[i]);
    free(h->upper_table);
    h->upper_table = table;
    h->upper_slots = slots;
    return 0;
}

int vf_upper_reserve(vf_hnsw *h, size_t capacity)
{
    /* A slot's expected level is the sum over l >= 1 of m^-l = 1 / (m - 1),
     * and 1 slot in m has one at all. */
    double per_slot = (1.0 + h->m) / (h->m - 1.0) * (1.0 + VF_UPPER_MARGIN);
    double words = (double)capacity * per_slot + (double)claim_max(h);
    double nodes = (double)capacity / h->m * (1.0 + VF_UPPER_MARGIN) + 1.0;
    size_t want_words = words > UINT32_MAX ? UINT32_MAX : (size_t)words;
    size_t more_words = want_words > h->upper_used ? want_words - h->upper_used : 0;
    size_t more_nodes = (size_t)nodes > h->upper_nodes ? (size_t)nodes - h->upper_nodes : 0;
    /* A reserve is a forecast: past 2^32 words it stops short, and a hold
     * that no longer fits reports -EFBIG. */
    size_t taken = h->upper_used + h->upper_holds * claim_max(h);
    size_t room = taken < UINT32_MAX ? UINT32_MAX - taken : 0;
    return vf_upper_grow(h, more_words < room ? more_words : room, more_nodes);
}

int vf_upper_hold(vf_hnsw *h)
{
    pthread_rwlock_rdlock(&h->grow_lock);
    pthread_mutex_lock(&h->upper_lock);
    bool held = hold_fits(h);
    h->upper_holds += held;
    pthread_mutex_unlock(&h->upper_lock);
    pthread_rwlock_unlock(&h->grow_lock);
    if (held)
        return 0;
    pthread_rwlock_wrlock(&h->grow_lock);
    int rc = hold_fits(h) ? 0 : vf_upper_grow(h, claim_max(h), 1);
    if (!rc)
        h->upper_holds++;
    pthread_rwlock_unlock(&h->grow_lock);
    return rc;
}

void vf_upper_unhold(vf_hnsw *h)
{
    pthread_mutex_lock(&h->upper_lock);
    assert(h->upper_holds > 0);
    h->upper_holds--;
    pthread_mutex_unlock(&h->upper_lock);
}

void vf_upper_claim(vf_hnsw *h, uint32_t id, unsigned level)
{
    assert(level >= 1 && level <= VF_HNSW_MAX_LEVEL && vf_upper_find(h, id) == SIZE_MAX);
    size_t words = vf_upper_len(h, level);
    pthread_mutex_lock(&h->upper_lock);
    assert(h->upper_holds > 0 && h->upper_used + words <= h->upper_cap);
    /* The words are zero (empty lists) since the array grew. */
    table_put(h->upper_table, h->upper_slots, id, (uint32_t)h->upper_used);
    h->upper_used += words;
    h->upper_nodes++;
    h->upper_holds--;
    pthread_mutex_unlock(&h->upper_lock);
}

int vf_upper_check(const vf_hnsw *h)
{
    if (h->upper_holds != 0 || h->upper_used > h->upper_cap ||
        h->upper_nodes * 4 > h->upper_slots * 3)
        return -EILSEQ;
    size_t entries = 0, words = 0;
    for (size_t i = 0; i < h->upper_slots; i++) {
        uint64_t e = h->upper_table[i];
        if (e == 0)
            continue;
        uint32_t id = (uint32_t)(e >> 32) - 1, at = (uint32_t)e;
        if (id >= h->capacity || slot_state(h, id) == VF_SLOT_EMPTY || vf_upper_find(h, id) != at)
            return -EILSEQ;
        size_t len = vf_upper_len(h, node_level(h, id));
        if (len == 0 || at + len > h->upper_used)
            return -EILSEQ;
        entries++;
        words += len;
    }
    /* Claims append, so the lists tile the used words exactly. */
    return entries == h->upper_nodes && words == h->upper_used ? 0 : -EILSEQ;
}

void vf_upper_free(vf_hnsw *h)
{
    free(h->upper_words);
    free(h->upper_table);
    h->upper_words = NULL;
    h->upper_table = NULL;
}

size_t vf_upper_bytes(const vf_hnsw *h)
{
    return h->upper_cap * sizeof(uint32_t) + h->upper_slots * sizeof(uint64_t);
}
