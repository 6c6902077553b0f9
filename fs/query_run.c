/*
 * query_run.c — running a parsed query and formatting its result.
 *
 * A single query (a vector or `like`) is one store search and one short
 * result. A batch (.fvecs/.npy query file) can hold tens of thousands of
 * queries: st_search_batch hands each query's hits to batch_sink on the
 * search worker that ran it, the worker formats the query's lines into its
 * own buffer at once, and the buffers are stitched together in row order
 * at the end. Formatting (shortest round-trip distances, escaped names)
 * thus runs on every search thread instead of after the search on one, and
 * no nq x k array of hits is ever held. With explain, each query's lines
 * start with its own plan line (the store writes query i's plan to
 * plans[i] before handing its hits to the sink, on the same thread).
 *
 * Invariants
 *   1. batch_result.parts[w] is written only by worker w; batch_result.spans[i] only by
 *      the worker that ran query i (each query runs once), so the sink
 *      takes no lock.
 *   2. spans[i] names the bytes of query i's lines inside parts[worker]:
 *      the assembled result is every query's lines in row order, each
 *      query's nearest first.
 *   3. charged[w] >= parts[w].cap once the sink returns 0: what the batch
 *      holds is charged to the budget (query_table.h) while it is built, so a
 *      reader cannot make the daemon build a result of any size.
 */
#include "query_run.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "metrics.h"
#include "query_result.h"

/* A monotonic clock in seconds, for query timings. */
static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct span {
    unsigned worker;
    size_t off, len;
} span;

/* What a worker charges beyond its buffer, so it charges every 64 KiB
 * rather than every line. */
#define CHARGE_SLACK ((size_t)64 << 10)

typedef struct batch_result {
    fsd_results parts[ST_SEARCH_WORKERS_MAX];
    size_t charged[ST_SEARCH_WORKERS_MAX]; /* of parts[w], to budget as uid */
    span *spans;                           /* one per query */
    const st_plan *plans;                  /* one per query with explain, else NULL */
    size_t k;                              /* asked per query */
    fsd_queries *budget;
    uid_t uid;
} batch_result;

/* What `explain = 1` adds: a comment line saying how the search ran, for
 * n hits of k asked; in a batch (row, not NO_ROW) the row comes first. */
#define NO_ROW SIZE_MAX
static int explain_line(vc_buf *b, size_t row, const st_plan *p, size_t k, size_t n)
{
    int rc = row == NO_ROW ? vc_buf_printf(b, "# ") : vc_buf_printf(b, "# row %zu: ", row);
    if (rc == 0)
        rc = vc_buf_printf(b, "plan %s%s, %s, passing %zu of %zu, %zu of k %zu\n",
                           st_plan_name(p->kind), p->redone ? " redone exactly" : "",
                           p->filtered ? "filtered" : "unfiltered", p->passing, p->count, n, k);
    return rc;
}

/* st_search_batch_opt callback: formats query `query`'s hits (after its
 * plan line with explain) into its worker's part at once and charges what
 * the part grew (invariants 1, 3). */
static int batch_sink(void *ctx, unsigned worker, size_t query, const st_hit *hits, size_t n)
{
    batch_result *b = ctx;
    fsd_results *r = &b->parts[worker];
    size_t off = r->out.len;
    int rc = b->plans ? explain_line(&r->out, query, &b->plans[query], b->k, n) : 0;
    for (size_t j = 0; j < n && rc == 0; j++)
        rc = fsd_results_add_row(r, query, hits[j].name, strlen(hits[j].name), hits[j].distance);
    b->spans[query] = (span){.worker = worker, .off = off, .len = r->out.len - off};
    if (rc == 0 && r->out.cap > b->charged[worker]) {
        size_t more = r->out.cap - b->charged[worker] + CHARGE_SLACK;
        rc = fsd_queries_charge(b->budget, b->uid, more);
        if (rc == 0)
            b->charged[worker] += more;
    }
    return rc;
}

/* Runs a batch query (.fvecs/.npy) on the store's threads and stitches
 * the parts in row order. */
static int run_batch(st_store *st, const char *coll, const fsd_query *q, const st_search_opts *o,
                     fsd_queries *budget, uid_t uid, char **out, size_t *len)
{
    batch_result *b = vc_calloc(1, sizeof *b);
    span *spans = vc_calloc(q->nq, sizeof *spans);
    st_plan *plans = q->explain ? vc_calloc(q->nq, sizeof *plans) : NULL;
    if (b == NULL || spans == NULL || (q->explain && plans == NULL)) {
        free(b);
        free(spans);
        free(plans);
        return -ENOMEM;
    }
    for (unsigned w = 0; w < ST_SEARCH_WORKERS_MAX; w++)
        fsd_results_init(&b->parts[w], q->kind);
    b->spans = spans;
    b->plans = plans;
    b->k = q->k;
    b->budget = budget;
    b->uid = uid;
    st_search_opts with_plans = *o;
    with_plans.plans = plans;
    double t0 = now_seconds();
    int rc = st_search_batch_opt(st, coll, q->vectors, q->nq, q->dim, q->k, q->ef, &with_plans, 0,
                                 batch_sink, b);
    if (rc == 0)
        fsd_metrics_queries(q->nq, now_seconds() - t0);
    size_t total = 0, charged = 0;
    for (size_t i = 0; rc == 0 && i < q->nq; i++)
        total += spans[i].len;
    /* Parts and the stitched copy are both held while stitching. */
    if (rc == 0)
        rc = fsd_queries_charge(budget, uid, total + 1);
    if (rc == 0)
        charged = total + 1;
    char *bytes = rc == 0 ? vc_malloc(total + 1) : NULL;
    if (rc == 0 && bytes == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        size_t at = 0;
        for (size_t i = 0; i < q->nq; i++) {
            if (spans[i].len == 0)
                continue; /* no hits: its worker's buffer may not exist */
            memcpy(bytes + at, b->parts[spans[i].worker].out.p + spans[i].off, spans[i].len);
            at += spans[i].len;
        }
        bytes[at] = '\0';
        *out = bytes;
        *len = total;
    }
    for (unsigned w = 0; w < ST_SEARCH_WORKERS_MAX; w++) {
        fsd_results_release(&b->parts[w]);
        charged += b->charged[w];
    }
    fsd_queries_uncharge(budget, uid, charged);
    free(plans);
    free(spans);
    free(b);
    return rc;
}

/* The head of a JSON query's result with "explain": true, the same facts
 * as explain_line: an object whose "results" is the usual array (which
 * explain_json_close closes). */
static int explain_json_open(vc_buf *b, const st_plan *p, size_t k, size_t n)
{
    return vc_buf_printf(b,
                         "{\"explain\": {\"plan\": \"%s\", \"redone_exact\": %s, \"filtered\": %s, "
                         "\"passing\": %zu, \"count\": %zu, \"hits\": %zu, \"k\": %zu},\n"
                         " \"results\": ",
                         st_plan_name(p->kind), p->redone ? "true" : "false",
                         p->filtered ? "true" : "false", p->passing, p->count, n, k);
}

/* Closes the object explain_json_open began: the finished result *out
 * (*len bytes, ending in a newline) gets "}\n" for its newline. */
static int explain_json_close(char **out, size_t *len)
{
    char *p = vc_realloc(*out, *len + 2);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p + *len - 1, "}\n", 3);
    *out = p;
    *len += 1;
    return 0;
}

/* Runs one query: a vector, or `like` a stored vector. */
static int run_single(st_store *st, const char *coll, const fsd_query *q, const st_search_opts *o,
                      char **out, size_t *len)
{
    st_hit *hits = vc_malloc(q->k * sizeof *hits);
    if (hits == NULL)
        return -ENOMEM;
    size_t n = 0;
    double t0 = now_seconds();
    int rc;
    if (q->like != NULL) {
        rc = st_search_like_opt(st, coll, q->like, true, q->k, q->ef, o, hits, &n);
        if (rc == -ENOENT && st_coll_stat(st, coll, &(st_attr){0}) == 0)
            rc = -EINVAL; /* the like vector is gone: the query cannot run */
    } else {
        rc = st_search_opt(st, coll, q->vectors, q->dim, q->k, q->ef, o, hits, &n);
    }
    if (rc == 0)
        fsd_metrics_queries(1, now_seconds() - t0);
    fsd_results res;
    fsd_results_init(&res, q->kind);
    bool json = q->kind == FSD_QKIND_JSON;
    if (rc == 0 && q->explain)
        rc = json ? explain_json_open(&res.out, o->plan, q->k, n)
                  : explain_line(&res.out, NO_ROW, o->plan, q->k, n);
    for (size_t j = 0; rc == 0 && j < n; j++)
        rc = fsd_results_add(&res, hits[j].name, strlen(hits[j].name), hits[j].distance);
    free(hits);
    if (rc != 0) {
        fsd_results_release(&res);
        return rc;
    }
    rc = fsd_results_finish(&res, out, len);
    if (rc == 0 && q->explain && json) {
        rc = explain_json_close(out, len);
        if (rc) {
            free(*out);
            *out = NULL;
            *len = 0;
        }
    }
    return rc;
}

int fsd_query_run(st_store *st, const char *coll, const fsd_query *q, fsd_queries *budget,
                  uid_t uid, char **out, size_t *len)
{
    assert(q != NULL && out != NULL && len != NULL);
    *out = NULL;
    *len = 0;
    st_plan plan;
    st_search_opts o = {
        .filter = q->filter, .within = q->within, .max_distance = q->max_distance, .plan = &plan};
    if (fsd_qkind_is_batch(q->kind))
        return q->nq == 0 ? -EINVAL : run_batch(st, coll, q, &o, budget, uid, out, len);
    return run_single(st, coll, q, &o, out, len);
}
