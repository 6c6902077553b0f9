/*
 * rebuild.c — rebuilding a collection's index in the background, so that
 * a missing or damaged snapshot of a large collection does not hold the
 * mount for the whole rebuild.
 *
 * At open (coll_index.c), a collection of at least
 * st_options.rebuild_background_min vectors whose snapshot cannot be used
 * gets an empty index and is marked rebuilding; the open goes on. One
 * thread per store then fills each such index from the SLOT records of a
 * read transaction, a chunk at a time. Meanwhile:
 *   - queries scan the records exactly (record_scan.c): correct, slower;
 *   - writers apply their committed changes to the same index as always,
 *     first marking the ids they change as touched (st_rebuild_touch);
 *   - the builder skips touched ids: the writer's change is newer than
 *     the builder's read, and the writer applies it itself;
 *   - health says "collection 'c': rebuilding its index, n of N vectors".
 * When every record is in, the flag drops and queries use the graph.
 *
 * Invariants
 *   1. An id is inserted by the builder only while rebuild_mu is held and
 *      its touched bit is clear; a writer sets the bit under rebuild_mu
 *      before it applies. So the index ends with each id's newest state.
 *   2. While c->rebuilding, nothing reads c->index for answers and no
 *      snapshot of it is written (it is incomplete).
 *   3. st_rebuild_stop (close) ends the thread between chunks; an
 *      unfinished rebuild leaves no snapshot, so the next open rebuilds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* Vectors inserted per hold of rebuild_mu: writers' applies wait at most
 * one chunk's insert. */
#define REBUILD_CHUNK 1024u
/* Collections at least this large rebuild in the background by default. */
#define REBUILD_BACKGROUND_MIN 50000u

static const char REBUILDING[] = "rebuilding its index";

uint64_t st_rebuild_background_min(const st_store *st)
{
    return st->opt.rebuild_background_min ? st->opt.rebuild_background_min : REBUILD_BACKGROUND_MIN;
}

void st_rebuild_touch(st_coll *c, const uint32_t *ids, size_t n, const uint32_t *more, size_t nmore)
{
    if (!atomic_load(&c->rebuilding))
        return;
    pthread_mutex_lock(&c->rebuild_mu);
    for (size_t i = 0; i < n + nmore; i++) {
        uint32_t id = i < n ? ids[i] : more[i - n];
        if ((size_t)id / 64 >= c->touched_words) {
            size_t words = (size_t)id / 64 + 1;
            words += words / 2;
            uint64_t *t = vc_realloc(c->touched, words * sizeof(*t));
            if (!t) {
                /* Without room to remember it the builder could overwrite
                 * a newer vector: have it skip everything from here on. */
                c->touched_all = true;
                continue;
            }
            memset(t + c->touched_words, 0, (words - c->touched_words) * sizeof(*t));
            c->touched = t;
            c->touched_words = words;
        }
        c->touched[id / 64] |= (uint64_t)1 << (id % 64);
    }
    pthread_mutex_unlock(&c->rebuild_mu);
}

/* Whether a writer changed id since the rebuild began (rebuild_mu held). */
static bool touched(const st_coll *c, uint32_t id)
{
    return c->touched_all ||
           ((size_t)id / 64 < c->touched_words && (c->touched[id / 64] >> (id % 64) & 1u));
}

/* Inserts the untouched rows of a chunk (invariant 1). */
static int insert_chunk(st_store *st, st_coll *c, vf_hnsw *h, uint32_t *ids, float *vecs, size_t n,
                        uint32_t dim)
{
    pthread_mutex_lock(&c->rebuild_mu);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (touched(c, ids[i]))
            continue;
        ids[w] = ids[i];
        memmove(vecs + w * dim, vecs + i * dim, (size_t)dim * sizeof(float));
        w++;
    }
    int rc = w ? vf_hnsw_insert_batch(h, ids, 0, vecs, w, st->opt.threads) : 0;
    pthread_mutex_unlock(&c->rebuild_mu);
    return rc;
}

/* Puts the progress line into health (replacing the previous one). */
static void health_progress(st_store *st, const char *name, uint64_t done, uint64_t total)
{
    char prefix[ST_COLL_NAME_MAX + 64];
    snprintf(prefix, sizeof prefix, "collection '%s': %s", name, REBUILDING);
    st_health_clear(st, prefix);
    if (done < total)
        st_health_set(st,
                      "%s, %" PRIu64 " of %" PRIu64 " vectors (queries scan the records meanwhile)",
                      prefix, done, total);
}

void st_rebuild_mark(st_store *st, st_coll *c, const char *name, uint64_t count)
{
    atomic_store(&c->rebuilding, true);
    health_progress(st, name, 0, count);
}

/* One rebuild in progress: the chunk being gathered and how far it got. */
typedef struct builder {
    st_store *st;
    st_coll *c;
    vf_hnsw *h;
    uint32_t dim;
    const char *name;
    uint64_t total, done;
    uint32_t *ids;
    float *vecs;
    size_t n; /* rows in ids/vecs */
    st_progress progress;
} builder;

/* Inserts the gathered chunk and reports; -ECANCELED when the store
 * closes or the collection was dropped meanwhile. */
static int flush_chunk(builder *b)
{
    if (b->n == 0)
        return 0;
    int rc = vf_hnsw_reserve(b->h, (size_t)b->ids[b->n - 1] + 1);
    if (rc == 0)
        rc = insert_chunk(b->st, b->c, b->h, b->ids, b->vecs, b->n, b->dim);
    b->done += b->n;
    st_progress_add(&b->progress, b->n);
    b->n = 0;
    health_progress(b->st, b->name, b->done, b->total);
    pthread_mutex_lock(&b->c->mu);
    bool dropped = b->c->dropped;
    pthread_mutex_unlock(&b->c->mu);
    if (rc == 0 && (atomic_load(&b->st->rebuild_stop) || dropped))
        rc = -ECANCELED;
    return rc;
}

/* st_slot_fn: gathers a record, inserting every REBUILD_CHUNK of them. */
static int gather(void *ctx, uint32_t id, const float *vec)
{
    builder *b = ctx;
    b->ids[b->n] = id;
    memcpy(b->vecs + b->n * (size_t)b->dim, vec, (size_t)b->dim * sizeof(float));
    return ++b->n == REBUILD_CHUNK ? flush_chunk(b) : 0;
}

/* Fills c's index from the records; 0, -ECANCELED (stopped, or the
 * collection dropped), or an error, which it reports in health. */
static int rebuild_one(st_store *st, st_coll *c)
{
    char name[ST_COLL_NAME_MAX + 1];
    builder b = {.st = st, .c = c, .name = name};
    pthread_mutex_lock(&c->mu);
    b.h = c->index;
    b.dim = c->cfg.dim;
    b.total = c->count;
    memcpy(name, c->name, sizeof name);
    pthread_mutex_unlock(&c->mu);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    MDB_txn *txn;
    int rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    b.ids = vc_malloc(REBUILD_CHUNK * sizeof(*b.ids));
    b.vecs = vc_malloc((size_t)REBUILD_CHUNK * b.dim * sizeof(float));
    st_progress_start(&b.progress, &st->opt, name, b.total);
    rc = b.ids && b.vecs ? st_slot_walk(st, txn, c->id, b.dim, gather, &b) : -ENOMEM;
    if (rc == 0)
        rc = flush_chunk(&b);
    mdb_txn_abort(txn);
    free(b.ids);
    free(b.vecs);
    uint64_t total = b.total;
    health_progress(st, name, total, total);
    if (rc) {
        if (rc != -ECANCELED) {
            atomic_fetch_add(&st->errors, 1);
            st_health_set(st,
                          "collection '%s': index rebuild failed: %s (queries keep scanning the "
                          "records; remount to retry)",
                          name, strerror(-rc));
        }
        return rc;
    }
    st_progress_end(&b.progress);
    /* Counted before the flag clears: whoever sees the rebuild over also
     * sees it counted. */
    atomic_fetch_add(&st->rebuilds, 1);
    pthread_mutex_lock(&c->rebuild_mu);
    atomic_store(&c->rebuilding, false);
    free(c->touched);
    c->touched = NULL;
    c->touched_words = 0;
    c->touched_all = false;
    pthread_mutex_unlock(&c->rebuild_mu);
    /* A snapshot soon, so the next open loads instead of rebuilding. */
    st_coll_note_changes(c, total ? total : 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    st_log(st, ST_LOG_INFO, "collection '%s': index rebuilt in the background in %.3f s", name,
           st_ts_diff(&t1, &t0));
    return 0;
}

/* The thread: rebuilds every collection marked rebuilding, one by one. */
static void *rebuild_main(void *arg)
{
    st_store *st = arg;
    size_t n;
    st_coll **list = st_colls_copy(st, &n);
    for (size_t i = 0; list && i < n && !atomic_load(&st->rebuild_stop); i++) {
        st_coll *c = list[i];
        if (atomic_load(&c->rebuilding))
            (void)rebuild_one(st, c); /* a failure is in health and the log */
    }
    free(list);
    return NULL;
}

int st_rebuild_start(st_store *st)
{
    atomic_store(&st->rebuild_stop, false);
    if (pthread_create(&st->rebuilder, NULL, rebuild_main, st) != 0)
        return -EAGAIN;
    st->rebuilder_running = true;
    return 0;
}

void st_rebuild_stop(st_store *st)
{
    if (!st->rebuilder_running)
        return;
    atomic_store(&st->rebuild_stop, true);
    pthread_join(st->rebuilder, NULL);
    st->rebuilder_running = false;
}
