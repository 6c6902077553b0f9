/*
 * search.c — k-NN search of a collection, optionally filtered by metadata,
 * single, "like" an existing vector, and batched.
 *
 * A filter (filter.c) is turned into the set of passing ids by
 * filter_eval.c, and the engine gets a bitmap predicate with `passing` =
 * the exact count, so its planner (hnsw_plan.c) can choose by cost an
 * exact scan of the passing set, a filtered walk or an expanding walk,
 * and still return k hits whenever k vectors pass. The plan (st_plan)
 * says which way a query went: the store's own (none, small, records) or
 * the one the engine reports it ran (vf_filter_explain), with whether a
 * short walk was redone exactly; it is counted per kind for
 * .vecfs/stats. A distance bound (max_distance) cuts the nearest-first
 * hits where they pass it.
 *
 * Invariants
 *   1. Searches take no collection write lock and no LMDB write lock: they
 *      read the in-memory index (which allows concurrent inserts) and one
 *      read transaction for names.
 *   2. Collections of at most ST_EXACT_MAX vectors are searched exactly
 *      (vf_hnsw_search_exact over the index's own vectors; an int8 index
 *      holds codes, so over the SLOT records), so a small collection never
 *      misses a vector. A larger int8 one reranks rerank x k candidates
 *      of its walk with the float originals (docs/quantization.md).
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
/* The engine gets the passing ids as a list too (vf_filter.ids, for its
 * exact plan, whose cost then follows the passing count instead of the
 * collection's size) when at most 1/ID_LIST_SHARE of the index passes:
 * where exact can win. Listing costs about 1 % of scoring the ids. */
#define ID_LIST_SHARE 8

/* vf_filter predicate: id is in the filter's set. */
static bool idset_accept(void *ctx, uint32_t id)
{
    const st_idset *f = ctx;
    return (size_t)(id >> 6) < f->nw && (f->w[id >> 6] >> (id & 63) & 1u);
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
    bool codes;      /* an int8 index: its own distances are approximate */
    st_config cfg;
    MDB_txn *txn;
    vf_filter filter;
    st_idset bm;
    uint32_t *ids; /* the passing ids, ascending, or NULL (ID_LIST_SHARE) */
    bool use_filter;
    size_t passing;
    uint32_t auto_ef; /* tuned ef for k 10 (0 = not tuned yet) */
} search_ctx;

/* Finds the collection, opens a read txn, snapshots index and config
 * under c->mu and builds the filter bitmap. ctx_end in every case. */
static int ctx_begin(st_store *st, const char *coll, const st_filter *f, search_ctx *s)
{
    memset(s, 0, sizeof(*s));
    if (!st)
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
    if (s->index) {
        vf_hnsw_params p;
        vf_hnsw_params_get(s->index, &p);
        s->codes = p.quantization == VF_QUANT_INT8;
    }
    if (f) {
        rc = st_filter_eval(st, s->txn, s->c->id, f, &s->bm);
        if (rc)
            return rc;
        s->passing = st_idset_count(&s->bm);
        s->use_filter = true;
        s->filter.accept = idset_accept;
        s->filter.ctx = &s->bm;
        s->filter.passing = s->passing;
        /* Without the list the exact plan checks every slot: slower, not
         * wrong, so a failed allocation is no reason to fail the query. */
        if (s->index && s->passing * ID_LIST_SHARE <= vf_hnsw_count(s->index)) {
            s->ids = st_idset_list(&s->bm, s->passing);
            s->filter.ids = s->ids;
        }
    }
    return 0;
}

/* Releases what ctx_begin took. */
static void ctx_end(search_ctx *s)
{
    if (s->txn)
        mdb_txn_abort(s->txn);
    st_idset_release(&s->bm);
    free(s->ids);
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

/* The plan of an unfiltered index search: the engine scans exactly when
 * ef reaches the count (hnsw_search.c) and reports plans only for
 * filtered searches, so this one is told from ef and the count. (An int8
 * index also raises ef to rerank x want, which is not looked at here: a
 * k that large against a collection that small reports a walk that was
 * a scan.) */
static st_plan_kind unfiltered_kind(const search_ctx *s, size_t ef, size_t want, size_t count)
{
    if (ef == 0)
        ef = s->cfg.ef_search;
    return count <= (ef > want ? ef : want) ? ST_PLAN_EXACT : ST_PLAN_WALK;
}

/* The store's plan for the engine's: they name the same three. */
static st_plan_kind kind_of(vf_filter_plan p)
{
    return p == VF_PLAN_EXACT ? ST_PLAN_EXACT : p == VF_PLAN_EXPAND ? ST_PLAN_EXPAND : ST_PLAN_WALK;
}

/* A search of the graph index for want hits (an int8 index reranks
 * rerank x want candidates with the float originals of the SLOT records,
 * read in txn); plan gets what the engine ran. */
static int index_search(search_ctx *s, MDB_txn *txn, const float *query, size_t want, size_t ef,
                        st_plan *plan, vf_hit *out, size_t *n)
{
    st_slot_source slots;
    vf_vec_source src = st_slot_source_begin(&slots, s->st, txn, s->c->id, s->cfg.dim);
    vf_filter_explain did = {0};
    const vf_search_opts vo = {.rerank = s->cfg.rerank, .src = &src, .explain = &did};
    size_t count = vf_hnsw_count(s->index);
    int rc = vf_hnsw_search_with(s->index, query, want, ef, s->use_filter ? &s->filter : NULL, &vo,
                                 out, n);
    st_slot_source_end(&slots);
    plan->kind = s->use_filter ? kind_of(did.plan) : unfiltered_kind(s, ef, want, count);
    plan->redone = s->use_filter && did.redone_exact;
    return rc;
}

/* One query: engine search (exact for small collections), then named
 * hits; skip_id is left out when skip. Hits lost to deletes meanwhile are
 * refilled by searching again for more (invariant 4). *plan (its kind
 * none, small or records as plan_begin set it) gets the plan of the last
 * engine search. */
static int search_one(search_ctx *s, MDB_txn *txn, const float *query, size_t k, size_t ef,
                      bool skip, uint32_t skip_id, st_plan *plan, st_hit *out, size_t *n_out,
                      vf_hit **tmp, size_t *cap, vc_buf *scratch)
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
        if (plan->kind == ST_PLAN_RECORDS || (plan->kind == ST_PLAN_SMALL && s->codes))
            rc = st_records_search(s->st, txn, s->c->id, &s->cfg, query, want, f, *tmp, &n);
        else if (plan->kind == ST_PLAN_SMALL)
            rc = vf_hnsw_search_exact(s->index, query, want, f, *tmp, &n);
        else
            rc = index_search(s, txn, query, want, search_ef(s, ef, want), plan, *tmp, &n);
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

/* The plan of a query of s as far as the store decides it: none (nothing
 * to search), records (the index is being rebuilt), small (an exact scan
 * of at most ST_EXACT_MAX vectors); else the index is searched, as a walk
 * until the engine says what it ran (index_search). */
static st_plan plan_begin(const search_ctx *s)
{
    st_plan p = {.filtered = s->use_filter};
    p.count = s->index ? vf_hnsw_count(s->index) : 0;
    p.passing = s->use_filter ? s->passing : p.count;
    if (!s->index || (s->use_filter && s->passing == 0))
        p.kind = ST_PLAN_NONE;
    else if (s->rebuilding)
        p.kind = ST_PLAN_RECORDS;
    else if (p.count <= ST_EXACT_MAX)
        p.kind = ST_PLAN_SMALL;
    else
        p.kind = ST_PLAN_WALK;
    return p;
}

const char *st_plan_name(st_plan_kind k)
{
    static const char *const names[ST_PLAN_KIND_COUNT] = {"none",  "small", "records",
                                                          "exact", "walk",  "expand"};
    return k < ST_PLAN_KIND_COUNT ? names[k] : "none";
}

/* Counts nq queries answered by plan p. */
static void plan_count(st_store *st, const st_plan *p, size_t nq)
{
    atomic_fetch_add(&st->plans[p->kind], nq);
    if (p->redone)
        atomic_fetch_add(&st->plans_redone, nq);
}

/* Drops the hits farther than o's bound (hits are nearest first). */
static size_t hits_within(const st_search_opts *o, const st_hit *hits, size_t n)
{
    if (!o || !o->within)
        return n;
    size_t w = 0;
    while (w < n && hits[w].distance <= o->max_distance)
        w++;
    return w;
}

/* One query in a snapshot of its own: collection, read txn, filter bitmap,
 * index. A filtered search whose index gave fewer hits than the bitmap
 * says pass starts over (invariant 4). sample: the query is one a user
 * sent (offered to the tuning sample). */
static int search_single(st_store *st, const char *coll, const st_search_opts *o,
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
        rc = ctx_begin(st, coll, o ? o->filter : NULL, &s);
        if (rc == 0)
            rc = check_query(&s, query, dim, 1);
        st_plan p = plan_begin(&s);
        if (rc == 0 && p.kind != ST_PLAN_NONE)
            rc = search_one(&s, s.txn, query, k, ef, skip, skip_id, &p, out, n_out, &tmp, &cap,
                            &scratch);
        bool stale = rc == 0 && s.use_filter && *n_out < k && *n_out + skip < s.passing;
        if (rc == 0 && sample && attempt == 0)
            sample_queries(&s, query, 1, dim);
        ctx_end(&s);
        if (!stale || attempt == RESTART_MAX) {
            if (rc == 0) {
                plan_count(st, &p, 1);
                if (o && o->plan)
                    *o->plan = p;
                *n_out = hits_within(o, out, *n_out);
            }
            break;
        }
    }
    free(tmp);
    vc_buf_release(&scratch);
    return rc;
}

/* Counts a finished search of nq queries that began at t0. */
static void search_note(st_store *st, size_t nq, uint64_t t0)
{
    atomic_fetch_add(&st->queries, nq);
    atomic_fetch_add(&st->query_ns, now_ns() - t0);
}

int st_search_opt(st_store *st, const char *coll, const float *query, uint32_t dim, size_t k,
                  size_t ef, const st_search_opts *o, st_hit *out, size_t *n_out)
{
    if (!query || !out || !n_out || k == 0 || k > ST_K_MAX || dim == 0 || dim > VF_MAX_DIM)
        return -EINVAL;
    *n_out = 0;
    uint64_t t0 = now_ns();
    int rc = search_single(st, coll, o, query, dim, k, ef, false, 0, true, out, n_out);
    if (rc == 0)
        search_note(st, 1, t0);
    return rc;
}

int st_search_like_opt(st_store *st, const char *coll, const char *like, bool exclude_self,
                       size_t k, size_t ef, const st_search_opts *o, st_hit *out, size_t *n_out)
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
        rc = search_single(st, coll, o, q, dim, k, ef, exclude_self, a.id, false, out, n_out);
    free(q);
    if (rc == 0)
        search_note(st, 1, t0);
    return rc;
}

typedef struct batch_job {
    search_ctx *s;
    const st_search_opts *o;
    st_plan plan;  /* as plan_begin gave it: each query starts from it */
    st_plan first; /* how query 0 ran */
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
        st_plan p = j->plan;
        rc = search_one(j->s, txn, j->queries + i * j->dim, j->k, j->ef, false, 0, &p, hits, &n,
                        &tmp, &cap, &scratch);
        if (rc == 0) {
            plan_count(j->s->st, &p, 1);
            if (i == 0)
                j->first = p;
            if (j->o && j->o->plans)
                j->o->plans[i] = p;
        }
        if (rc == 0)
            rc = j->sink(j->sink_ctx, worker, i, hits, hits_within(j->o, hits, n));
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

int st_search_batch_opt(st_store *st, const char *coll, const float *queries, size_t nq,
                        uint32_t dim, size_t k, size_t ef, const st_search_opts *o,
                        unsigned threads, st_batch_sink sink, void *sink_ctx)
{
    if (!queries || !sink || k == 0 || k > ST_K_MAX || dim == 0 || dim > VF_MAX_DIM)
        return -EINVAL;
    if (nq == 0)
        return 0;
    uint64_t t0 = now_ns();
    search_ctx s;
    int rc = ctx_begin(st, coll, o ? o->filter : NULL, &s);
    if (rc == 0)
        rc = check_query(&s, queries, dim, nq);
    if (rc == 0)
        sample_queries(&s, queries, nq, dim);
    st_plan p = plan_begin(&s);
    if (rc == 0 && p.kind == ST_PLAN_NONE) {
        for (size_t i = 0; i < nq && rc == 0; i++) {
            if (o && o->plans)
                o->plans[i] = p;
            rc = sink(sink_ctx, 0, i, NULL, 0);
        }
        if (rc == 0)
            plan_count(st, &p, nq);
    } else if (rc == 0) {
        /* Each worker names its hits through its own read txn (an LMDB
         * txn is used by one thread at a time). */
        batch_job j = {.s = &s,
                       .o = o,
                       .plan = p,
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
        p = j.first;
    }
    ctx_end(&s);
    if (rc == 0) {
        if (o && o->plan)
            *o->plan = p;
        search_note(st, nq, t0);
    }
    return rc;
}
