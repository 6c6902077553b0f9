/*
 * names.c — a collection's vector names by engine id, in memory, so that a
 * search names its hits without an LMDB lookup each (a batch of 10,000
 * queries names 100,000 hits).
 *
 * The SLOTS records stay the truth; the table mirrors their names.
 *
 * States of an st_names
 *   FILLING  (after open) the background thread copies SLOTS into the table
 *            a chunk of records at a time (st_names_fill_step), each chunk
 *            under the collection's wlock, settled (every committed
 *            operation applied), with a read txn begun inside it.
 *            `filled` is the first id not copied yet. Searches name hits
 *            from LMDB.
 *   READY    every id is copied; unfiltered searches name hits from the
 *            table. A new collection starts READY (it has no vectors).
 *   FILLING -> READY   a fill step runs off the collection's slots.
 *   any -> FILLING (from id 0)   out of memory in st_names_apply, or an
 *            LMDB error or out of memory in a fill step (names_reset_locked).
 *   A slot record that fails to decode or authenticate (damage) is left
 *   unnamed, as the LMDB path drops such a hit; the fill goes on.
 *
 * Invariants
 *   1. Outside a writer's critical section, for every id < filled (every id
 *      when READY), names[id] equals the name in id's SLOTS record, or is
 *      NULL when id has none or its record is damaged: writers apply their
 *      name changes (st_names_apply) after commit in the collection's apply
 *      order (apply_order.c), and fill steps hold the wlock settled (no
 *      applied change pending, none can start), so the two never
 *      interleave.
 *   2. Ids >= filled are never stored while FILLING; the fill step that
 *      reaches them reads them from a txn that sees every commit before it.
 *   3. `bytes` is the memory the table holds (the array and each name's
 *      allocation, as malloc_usable_size reports it, plus its header).
 *
 * Lock: `lock` (a rwlock that prefers writers, so a stream of searches
 * cannot hold a writer, and with it its collection's next applies, back) protects
 * names, cap and filled; `bytes` changes under it too but is atomic, so
 * metrics read it without the lock. Readers copy names under the read
 * lock; writers (in their apply turn) and fill steps (holding the wlock)
 * change them under the write lock (innermost: wlock -> names.lock).
 * `ready` is atomic, set and cleared under the write lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

size_t st_names_fill_chunk = 4096;

/* What one allocation of n usable bytes costs: glibc's chunk header too. */
static size_t alloc_cost(const void *p)
{
    return p ? malloc_usable_size((void *)p) + sizeof(size_t) : 0;
}

void st_names_init(st_names *n, bool ready)
{
    memset(n, 0, sizeof(*n));
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&n->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    atomic_init(&n->ready, ready);
    atomic_init(&n->bytes, 0);
}

/* Sets names[id] (write lock held). name NULL clears it. */
static int names_set_locked(st_names *n, uint32_t id, const char *name, size_t len)
{
    if (id >= n->cap) {
        if (!name)
            return 0;
        size_t cap = n->cap ? n->cap : 1024;
        while (cap <= id)
            cap *= 2;
        size_t old_cost = alloc_cost(n->names);
        void *a = n->names;
        if (vc_grow_zeroed(&a, n->cap, cap, sizeof(*n->names)) != 0)
            return -ENOMEM;
        n->bytes += alloc_cost(a) - old_cost;
        n->names = a;
        n->cap = cap;
    }
    char *copy = NULL;
    if (name) {
        copy = vc_malloc(len + 1);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, name, len);
        copy[len] = 0;
        n->bytes += alloc_cost(copy);
    }
    n->bytes -= alloc_cost(n->names[id]);
    free(n->names[id]);
    n->names[id] = copy;
    return 0;
}

/* Clears every id (write lock held) and goes back to the start of a fill. */
static void names_reset_locked(st_names *n)
{
    for (size_t i = 0; i < n->cap; i++)
        free(n->names[i]);
    free(n->names);
    n->names = NULL;
    n->cap = 0;
    atomic_store(&n->bytes, 0);
    n->filled = 0;
    atomic_store(&n->ready, false);
}

void st_names_destroy(st_names *n)
{
    names_reset_locked(n);
    pthread_rwlock_destroy(&n->lock);
}

/* A look at c's SLOTS with c's writers held off: the wlock, then a read
 * txn begun inside it (so it sees every commit), and a cursor. */
typedef struct slot_scan {
    MDB_txn *txn;
    MDB_cursor *cur;
    vc_buf scratch;
} slot_scan;

static int scan_begin(st_store *st, st_coll *c, slot_scan *sc)
{
    memset(sc, 0, sizeof(*sc));
    st_coll_lock_settled(c);
    int rc = st_txn_read(st, &sc->txn);
    if (rc == 0)
        rc = st_mdb_err(mdb_cursor_open(sc->txn, st->db[ST_DB_SLOTS], &sc->cur));
    return rc;
}

static void scan_end(st_coll *c, slot_scan *sc)
{
    if (sc->cur)
        mdb_cursor_close(sc->cur);
    if (sc->txn)
        mdb_txn_abort(sc->txn);
    pthread_mutex_unlock(&c->wlock);
    vc_buf_release(&sc->scratch);
}

/* Positions sc's cursor at c's first slot with an id >= id: 1, 0 when
 * there is none, or an LMDB error. */
static int scan_seek(st_coll *c, slot_scan *sc, uint32_t id, MDB_val *k, MDB_val *v)
{
    uint8_t key[8];
    st_be32(key, c->id);
    st_be32(key + 4, id);
    k->mv_size = 8;
    k->mv_data = key;
    int mrc = mdb_cursor_get(sc->cur, k, v, MDB_SET_RANGE);
    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc)
        return st_mdb_err(mrc);
    return k->mv_size == 8 && st_get_be32(k->mv_data) == c->id;
}

void st_names_apply(st_names *n, const st_name_change *ch, size_t count)
{
    if (count == 0)
        return;
    pthread_rwlock_wrlock(&n->lock);
    bool all = atomic_load(&n->ready);
    for (size_t i = 0; i < count; i++) {
        if (!all && ch[i].id >= n->filled)
            continue; /* a later fill step reads it (invariant 2) */
        if (names_set_locked(n, ch[i].id, ch[i].name, ch[i].len) != 0) {
            /* Out of memory: the table can no longer be trusted. Searches
             * name from LMDB until a new fill has copied everything. */
            names_reset_locked(n);
            break;
        }
    }
    pthread_rwlock_unlock(&n->lock);
}

int st_names_fill_step(st_store *st, st_coll *c, bool *done)
{
    st_names *n = &c->names;
    *done = atomic_load(&n->ready);
    if (*done)
        return 0;
    slot_scan sc;
    int rc = scan_begin(st, c, &sc);
    pthread_rwlock_wrlock(&n->lock);
    MDB_val k, v;
    int more = rc ? 0 : scan_seek(c, &sc, n->filled, &k, &v);
    if (more < 0)
        rc = more;
    size_t copied = 0, damaged = 0;
    uint32_t next = n->filled;
    while (rc == 0 && more == 1 && copied < st_names_fill_chunk) {
        uint32_t id = st_get_be32((const uint8_t *)k.mv_data + 4);
        const void *body;
        size_t blen, nl;
        const char *name;
        const uint8_t *vec;
        uint32_t dim;
        int r = st_env_open_buf(&st->crypto, ST_DB_SLOTS, k.mv_data, k.mv_size, v.mv_data,
                                v.mv_size, &sc.scratch, &body, &blen);
        if (r == 0)
            r = st_rec_slot_dec(body, blen, &name, &nl, &vec, &dim);
        if (r == 0)
            rc = names_set_locked(n, id, name, nl);
        else if (r == -ENOMEM)
            rc = r;
        else
            damaged++; /* left unnamed (invariant 1) */
        next = id + 1;
        copied++;
        if (rc == 0) {
            int mrc = mdb_cursor_get(sc.cur, &k, &v, MDB_NEXT);
            if (mrc && mrc != MDB_NOTFOUND)
                rc = st_mdb_err(mrc);
            more = mrc == 0 && k.mv_size == 8 && st_get_be32(k.mv_data) == c->id;
        }
    }
    if (rc == 0) {
        n->filled = next;
        if (!more)
            atomic_store(&n->ready, true);
    } else {
        names_reset_locked(n);
    }
    *done = atomic_load(&n->ready);
    pthread_rwlock_unlock(&n->lock);
    scan_end(c, &sc);
    if (damaged)
        st_log(st, ST_LOG_WARN,
               "collection %" PRIu32 ": %zu damaged slot records left unnamed (see vecfs check)",
               c->id, damaged);
    return rc;
}

void st_names_clear(st_names *n)
{
    pthread_rwlock_wrlock(&n->lock);
    names_reset_locked(n);
    atomic_store(&n->ready, true);
    pthread_rwlock_unlock(&n->lock);
}

bool st_names_lookup_begin(st_names *n)
{
    if (!atomic_load(&n->ready))
        return false;
    pthread_rwlock_rdlock(&n->lock);
    if (atomic_load(&n->ready))
        return true;
    pthread_rwlock_unlock(&n->lock);
    return false;
}

bool st_names_lookup(const st_names *n, uint32_t id, char out[ST_NAME_MAX + 1])
{
    const char *name = id < n->cap ? n->names[id] : NULL;
    if (!name)
        return false;
    size_t len = strlen(name);
    memcpy(out, name, len + 1);
    return true;
}

void st_names_lookup_end(st_names *n)
{
    pthread_rwlock_unlock(&n->lock);
}

size_t st_names_memory(st_names *n)
{
    return atomic_load(&n->bytes);
}

int st_names_check(st_store *st, st_coll *c)
{
    st_names *n = &c->names;
    if (!atomic_load(&n->ready))
        return -EAGAIN;
    slot_scan sc;
    int rc = scan_begin(st, c, &sc);
    pthread_rwlock_rdlock(&n->lock);
    char name[ST_NAME_MAX + 1];
    for (size_t id = 0; rc == 0 && id < n->cap; id++) {
        int r = st_slot_name(st, sc.txn, c->id, (uint32_t)id, name, &sc.scratch);
        if (r == -ENOENT || r == -EIO) /* no vector, or a damaged record */
            rc = n->names[id] ? -EIO : 0;
        else if (r)
            rc = r;
        else if (!n->names[id] || strcmp(n->names[id], name) != 0)
            rc = -EIO;
    }
    /* No slot at or above cap may exist: the table would miss it. */
    MDB_val k, v;
    int past = rc == 0 && n->cap < UINT32_MAX ? scan_seek(c, &sc, (uint32_t)n->cap, &k, &v) : 0;
    if (rc == 0)
        rc = past < 0 ? past : past ? -EIO : 0;
    pthread_rwlock_unlock(&n->lock);
    scan_end(c, &sc);
    return rc;
}
