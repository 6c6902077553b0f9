/*
 * search.c — k-NN search of a collection, optionally filtered by metadata,
 * single, "like" an existing vector, and batched.
 *
 * A filter (AND of user.KEY == VALUE) is answered from the MIDX database:
 * each term's ids are read with MDB_GET_MULTIPLE (no record is decoded),
 * the id lists are intersected, and the engine gets a bitmap predicate with
 * `passing` = the exact count, so it can pick exact search for selective
 * filters and still return k hits whenever k vectors pass.
 *
 * Invariants
 *   1. Searches take no collection write lock and no LMDB write lock: they
 *      read the in-memory index (which allows concurrent inserts) and one
 *      read transaction for names.
 *   2. Collections of at most ST_EXACT_MAX vectors are searched exactly
 *      (vf_hnsw_search_exact over the index's own vectors), so a small
 *      collection never misses a vector.
 *   3. A hit is reported only under a name its id has. Unfiltered
 *      searches name hits from the collection's name table (names.c) once
 *      that is filled, which holds every committed name change by the time
 *      the index has it; filtered ones, and all until the table is filled,
 *      from the SLOTS record in the read transaction, the snapshot the
 *      filter's bitmap was built from, so a reported vector always matched
 *      the filter. (An unfiltered hit whose id was deleted and reused
 *      between the index search and the lookup is reported under its new
 *      name: the engine slot was reused too, so the distance may be either
 *      vector's.)
 *   4. A search returns k hits whenever k vectors pass (issue 11): a hit
 *      whose id lost its vector between the index search and the naming
 *      is not reported, and the search is run again for more (REFILL_MAX
 *      times, asking twice as many plus those lost each time), so the
 *      deletes of others make it look further, never return less. A
 *      filtered search whose index returned fewer hits than its bitmap
 *      said pass (vectors deleted after the bitmap's snapshot) starts over
 *      with a new snapshot and bitmap (RESTART_MAX times).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "fanout.h"

/* Searches again for more hits when deletes took some (invariant 4). */
#define REFILL_MAX 8
/* Filtered searches start over when their bitmap went stale. */
#define RESTART_MAX 4

typedef struct bitmap_filter {
    uint64_t *bits;
    size_t nbits;
} bitmap_filter;

/* vf_filter predicate: id is in the filter bitmap. */
static bool bitmap_accept(void *ctx, uint32_t id)
{
    const bitmap_filter *f = ctx;
    return id < f->nbits && (f->bits[id >> 6] >> (id & 63) & 1u);
}

/* Reads the sorted ids of one term into *ids (malloc'ed). */
static int term_ids(st_store *st, MDB_txn *txn, uint32_t coll, const st_filter_term *t,
                    uint32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!t->key || (!t->value && t->value_len))
        return -EINVAL;
    size_t kl = strlen(t->key);
    if (kl == 0 || kl + 5 > ST_XATTR_NAME_MAX)
        return -EINVAL;
    char xname[ST_XATTR_NAME_MAX + 1];
    memcpy(xname, "user.", 5);
    memcpy(xname + 5, t->key, kl + 1);
    uint8_t mk[20];
    st_be32(mk, coll);
    st_meta_hash(&st->crypto, xname, t->value, t->value_len, mk + 4);
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_MIDX], &cur));
    if (rc)
        return rc;
    MDB_val k = {20, mk}, v;
    size_t cap = 0;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE);
    while (mrc == 0) {
        size_t m = v.mv_size / 4;
        if (*n + m > cap) {
            cap = (*n + m) * 2;
            uint32_t *p = vc_realloc(*ids, cap * sizeof(uint32_t));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            *ids = p;
        }
        for (size_t i = 0; i < m; i++)
            (*ids)[(*n)++] = st_get_be32((const uint8_t *)v.mv_data + 4 * i);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = st_mdb_err(mrc);
    return rc;
}

/* Builds the bitmap of ids passing every term; *passing = their count. */
static int filter_build(st_store *st, MDB_txn *txn, uint32_t coll, const st_filter_term *terms,
                        size_t nterms, bitmap_filter *f, size_t *passing)
{
    uint32_t *acc = NULL;
    size_t nacc = 0;
    int rc = 0;
    for (size_t t = 0; t < nterms; t++) {
        uint32_t *ids;
        size_t n;
        rc = term_ids(st, txn, coll, &terms[t], &ids, &n);
        if (rc)
            break;
        if (t == 0) {
            acc = ids;
            nacc = n;
        } else {
            /* Both sorted ascending (big-endian dups sort numerically). */
            size_t i = 0, j = 0, w = 0;
            while (i < nacc && j < n) {
                if (acc[i] < ids[j])
                    i++;
                else if (acc[i] > ids[j])
                    j++;
                else {
                    acc[w++] = acc[i];
                    i++;
                    j++;
                }
            }
            nacc = w;
            free(ids);
        }
        if (nacc == 0)
            break;
    }
    if (rc) {
        free(acc);
        return rc;
    }
    uint32_t maxid = 0;
    for (size_t i = 0; i < nacc; i++)
        if (acc[i] > maxid)
            maxid = acc[i];
    f->nbits = nacc ? (size_t)maxid + 1 : 0;
    f->bits = vc_calloc((f->nbits + 63) / 64 + 1, sizeof(uint64_t));
    if (!f->bits) {
        free(acc);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nacc; i++)
        f->bits[acc[i] >> 6] |= (uint64_t)1 << (acc[i] & 63);
    *passing = nacc;
    free(acc);
    return 0;
}

/* Monotonic nanoseconds, for query_ns. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct search_ctx {
    st_store *st;
    st_coll *c;
    vf_hnsw *index;
    bool rebuilding; /* the index is being filled: scan the records */
    st_config cfg;
    MDB_txn *txn;
    vf_filter filter;
    bitmap_filter bm;
    bool use_filter;
    size_t passing;
    uint32_t auto_ef; /* tuned ef for k 10 (0 = not tuned yet) */
} search_ctx;

/* Finds the collection, opens a read txn, snapshots index and config
 * under c->mu and builds the filter bitmap. ctx_end in every case. */
static int ctx_begin(st_store *st, const char *coll, const st_filter_term *terms, size_t nterms,
                     search_ctx *s)
{
    memset(s, 0, sizeof(*s));
    if (!st || (nterms && !terms))
        return -EINVAL;
    s->st = st;
    int rc = st_coll_lookup(st, coll, &s->c);
    if (rc)
        return rc;
    rc = st_txn_read(st, &s->txn);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->c->mu);
    s->index = s->c->index;
    s->rebuilding = atomic_load(&s->c->rebuilding);
    s->cfg = s->c->cfg;
    s->auto_ef = s->c->auto_ef;
    pthread_mutex_unlock(&s->c->mu);
    if (nterms) {
        rc = filter_build(st, s->txn, s->c->id, terms, nterms, &s->bm, &s->passing);
        if (rc)
            return rc;
        s->use_filter = true;
        s->filter.accept = bitmap_accept;
        s->filter.ctx = &s->bm;
        s->filter.passing = s->passing;
    }
    return 0;
}

/* Releases what ctx_begin took. */
static void ctx_end(search_ctx *s)
{
    if (s->txn)
        mdb_txn_abort(s->txn);
    free(s->bm.bits);
}

/* Turns engine hits into named hits; skips ids without a vector (and
 * skip_id), counting them in *lost. Names come from the collection's name
 * table once it is filled, else from the SLOTS records of txn. Returns the
 * number written. */
static size_t name_hits(search_ctx *s, MDB_txn *txn, const vf_hit *hits, size_t n, uint32_t skip_id,
                        bool skip, size_t k, st_hit *out, vc_buf *scratch, size_t *lost)
{
    *lost = 0;
    size_t w = 0;
    /* A filtered search names from txn, the snapshot its filter bitmap came
     * from: an id reused meanwhile by a vector that does not match must
     * not be reported under its new name. */
    bool table = !s->use_filter && st_names_lookup_begin(&s->c->names);
    for (size_t i = 0; i < n && w < k; i++) {
        if (skip && hits[i].id == skip_id)
            continue;
        bool named =
            table ? st_names_lookup(&s->c->names, hits[i].id, out[w].name)
                  : st_slot_name(s->st, txn, s->c->id, hits[i].id, out[w].name, scratch) == 0;
        if (!named) {
            (*lost)++;
            continue;
        }
        out[w].id = hits[i].id;
        out[w].distance = hits[i].distance;
        w++;
    }
    if (table)
        st_names_lookup_end(&s->c->names);
    return w;
}

/* The ef for want hits: the caller's, else the tuned or laddered auto ef. */
static size_t search_ef(const search_ctx *s, size_t ef, size_t want)
{
    if (!s->cfg.ef_auto || ef != 0)
        return ef;
    return st_coll_auto_ef(&s->cfg, s->auto_ef, want);
}

/* Hit room for want hits in *tmp (*cap of them). 0 or -ENOMEM. */
static int hits_room(vf_hit **tmp, size_t *cap, size_t want)
{
    if (want <= *cap)
        return 0;
    vf_hit *t = vc_realloc(*tmp, want * sizeof(*t));
    if (!t)
        return -ENOMEM;
    *tmp = t;
    *cap = want;
    return 0;
}

/* One query: engine search (exact for small collections), then named
 * hits; skip_id is left out when skip. Hits lost to deletes meanwhile are
 * refilled by searching again for more (invariant 4). *found = how many
 * hits the last engine search returned. */
static int search_one(search_ctx *s, MDB_txn *txn, const float *query, size_t k, size_t ef,
                      bool skip, uint32_t skip_id, st_hit *out, size_t *n_out, vf_hit **tmp,
                      size_t *cap, vc_buf *scratch)
{
    size_t want = k + (skip ? 1 : 0);
    const vf_filter *f = s->use_filter ? &s->filter : NULL;
    for (int attempt = 0;; attempt++) {
        int rc = hits_room(tmp, cap, want);
        if (rc)
            return rc;
        size_t n = 0, lost = 0;
        /* Small collections are scanned exactly: it costs microseconds and
         * cannot miss a vector, whatever the graph looks like after churn.
         * An int8 index reranks with the float originals of the SLOT
         * records, read in this txn (a float index has them and never
         * asks). */
        if (s->rebuilding) {
            rc = st_records_search(s->st, txn, s->c->id, &s->cfg, query, want, f, *tmp, &n);
        } else if (vf_hnsw_count(s->index) <= ST_EXACT_MAX) {
            rc = vf_hnsw_search_exact(s->index, query, want, f, *tmp, &n);
        } else {
            st_slot_source slots;
            vf_vec_source src = st_slot_source_begin(&slots, s->st, txn, s->c->id, s->cfg.dim);
            rc = vf_hnsw_search_rerank(s->index, query, want, search_ef(s, ef, want), 0, f, &src,
                                       *tmp, &n);
            st_slot_source_end(&slots);
        }
        if (rc)
            return rc;
        *n_out = name_hits(s, txn, *tmp, n, skip_id, skip, k, out, scratch, &lost);
        bool exhausted = n < want && lost == 0;
        if (*n_out >= k || exhausted || attempt == REFILL_MAX)
            return 0;
        want = want * 2 + lost;
    }
}

/* Offers the nq queries users sent to the collection's sample, which
 * ef_search = auto calibrates on (query_sample.c). "like" queries are
 * stored vectors, not new ones: they are not offered. */
static void sample_queries(search_ctx *s, const float *queries, size_t nq, uint32_t dim)
{
    if (s->cfg.ef_auto)
        st_qsample_offer(&s->c->qsample, queries, nq, dim);
}

/* The n queries match the collection's dim and hold valid values. */
static int check_query(const search_ctx *s, const float *q, uint32_t dim, size_t n)
{
    if (s->cfg.dim && dim != s->cfg.dim)
        return -EINVAL;
    return st_values_ok(q, n * dim) ? 0 : -EINVAL;
}

/* One query in a snapshot of its own: collection, read txn, filter bitmap,
 * index. A filtered search whose index gave fewer hits than the bitmap
 * says pass starts over (invariant 4). sample: the query is one a user
 * sent (offered to the tuning sample). */
static int search_single(st_store *st, const char *coll, const st_filter_term *terms, size_t nterms,
                         const float *query, uint32_t dim, size_t k, size_t ef, bool skip,
                         uint32_t skip_id, bool sample, st_hit *out, size_t *n_out)
{
    vf_hit *tmp = NULL;
    size_t cap = 0;
    vc_buf scratch = VC_BUF_INIT;
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        search_ctx s;
        *n_out = 0;
        rc = ctx_begin(st, coll, terms, nterms, &s);
        if (rc == 0)
            rc = check_query(&s, query, dim, 1);
        if (rc == 0 && s.index && (!s.use_filter || s.passing > 0))
            rc = search_one(&s, s.txn, query, k, ef, skip, skip_id, out, n_out, &tmp, &cap,
                            &scratch);
        bool stale = rc == 0 && s.use_filter && *n_out < k && *n_out + skip < s.passing;
        if (rc == 0 && sample && attempt == 0)
            sample_queries(&s, query, 1, dim);
        ctx_end(&s);
        if (!stale || attempt == RESTART_MAX)
            break;
    }
    free(tmp);
    vc_buf_release(&scratch);
    return rc;
}

int st_search(st_store *st, const char *coll, const float *query, uint32_t dim, size_t k, size_t ef,
              const st_filter_term *terms, size_t nterms, st_hit *out, size_t *n_out)
{
    if (!query || !out || !n_out || k == 0 || k > ST_K_MAX || dim == 0 || dim > VF_MAX_DIM)
        return -EINVAL;
    *n_out = 0;
    uint64_t t0 = now_ns();
    int rc = search_single(st, coll, terms, nterms, query, dim, k, ef, false, 0, true, out, n_out);
    if (rc == 0) {
        atomic_fetch_add(&st->queries, 1);
        atomic_fetch_add(&st->query_ns, now_ns() - t0);
    }
    return rc;
}

int st_search_like(st_store *st, const char *coll, const char *like, bool exclude_self, size_t k,
                   size_t ef, const st_filter_term *terms, size_t nterms, st_hit *out,
                   size_t *n_out)
{
    if (!out || !n_out || k == 0 || k > ST_K_MAX)
        return -EINVAL;
    *n_out = 0;
    uint64_t t0 = now_ns();
    st_attr a;
    int rc = st_vec_stat(st, coll, like, &a);
    if (rc)
        return rc;
    st_config cfg;
    rc = st_coll_config_get(st, coll, &cfg);
    if (rc)
        return rc;
    float *q = vc_malloc((size_t)(cfg.dim ? cfg.dim : 1) * sizeof(float));
    uint32_t dim = 0;
    rc = q ? st_vec_vector(st, coll, like, q, cfg.dim, &dim) : -ENOMEM;
    if (rc == 0)
        rc = search_single(st, coll, terms, nterms, q, dim, k, ef, exclude_self, a.id, false, out,
                           n_out);
    free(q);
    if (rc == 0) {
        atomic_fetch_add(&st->queries, 1);
        atomic_fetch_add(&st->query_ns, now_ns() - t0);
    }
    return rc;
}

typedef struct batch_job {
    search_ctx *s;
    const float *queries;
    uint32_t dim;
    size_t k, ef;
    st_batch_sink sink;
    void *sink_ctx;
    _Atomic size_t next;
    _Atomic unsigned next_worker;
    size_t nq;
    _Atomic int rc;
} batch_job;

/* Records the first error of a batch (later ones are dropped). */
static void batch_fail(batch_job *j, int rc)
{
    int zero = 0;
    atomic_compare_exchange_strong(&j->rc, &zero, rc);
}

/* A worker: takes the next query until none is left or one failed. */
static void *batch_worker(void *arg)
{
    batch_job *j = arg;
    unsigned worker = atomic_fetch_add(&j->next_worker, 1);
    vf_hit *tmp = NULL;
    size_t cap = 0;
    st_hit *hits = vc_malloc(j->k * sizeof(*hits));
    vc_buf scratch = VC_BUF_INIT;
    MDB_txn *txn = NULL;
    int rc = hits ? st_txn_read(j->s->st, &txn) : -ENOMEM;
    if (rc)
        batch_fail(j, rc);
    while (rc == 0) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->nq || atomic_load(&j->rc) != 0)
            break;
        size_t n = 0;
        rc = search_one(j->s, txn, j->queries + i * j->dim, j->k, j->ef, false, 0, hits, &n, &tmp,
                        &cap, &scratch);
        if (rc == 0)
            rc = j->sink(j->sink_ctx, worker, i, hits, n);
        if (rc)
            batch_fail(j, rc);
    }
    if (txn)
        mdb_txn_abort(txn);
    free(tmp);
    free(hits);
    vc_buf_release(&scratch);
    return NULL;
}

/* Threads for a batch of nq queries: as asked, else the store's setting,
 * else one per core; never more than queries or ST_SEARCH_WORKERS_MAX. */
static unsigned batch_threads(const st_store *st, unsigned threads, size_t nq)
{
    if (threads == 0)
        threads = st->opt.threads;
    if (threads == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        threads = online > 0 ? (unsigned)online : 1u;
    }
    if (threads > ST_SEARCH_WORKERS_MAX)
        threads = ST_SEARCH_WORKERS_MAX;
    if (threads > nq)
        threads = (unsigned)nq;
    return threads;
}

int st_search_batch(st_store *st, const char *coll, const float *queries, size_t nq, uint32_t dim,
                    size_t k, size_t ef, const st_filter_term *terms, size_t nterms,
                    unsigned threads, st_batch_sink sink, void *sink_ctx)
{
    if (!queries || !sink || k == 0 || k > ST_K_MAX || dim == 0 || dim > VF_MAX_DIM)
        return -EINVAL;
    if (nq == 0)
        return 0;
    uint64_t t0 = now_ns();
    search_ctx s;
    int rc = ctx_begin(st, coll, terms, nterms, &s);
    if (rc == 0)
        rc = check_query(&s, queries, dim, nq);
    if (rc == 0)
        sample_queries(&s, queries, nq, dim);
    if (rc == 0 && (!s.index || (s.use_filter && s.passing == 0))) {
        for (size_t i = 0; i < nq && rc == 0; i++)
            rc = sink(sink_ctx, 0, i, NULL, 0);
    } else if (rc == 0) {
        /* Each worker names its hits through its own read txn (an LMDB
         * txn is used by one thread at a time). */
        batch_job j = {.s = &s,
                       .queries = queries,
                       .dim = dim,
                       .k = k,
                       .ef = ef,
                       .sink = sink,
                       .sink_ctx = sink_ctx,
                       .nq = nq};
        atomic_init(&j.next, 0);
        atomic_init(&j.next_worker, 0);
        atomic_init(&j.rc, 0);
        threads = batch_threads(st, threads, nq);
        vc_fanout(threads, batch_worker, &j);
        rc = atomic_load(&j.rc);
    }
    ctx_end(&s);
    if (rc == 0) {
        atomic_fetch_add(&st->queries, nq);
        atomic_fetch_add(&st->query_ns, now_ns() - t0);
    }
    return rc;
}
