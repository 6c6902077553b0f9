/*
 * flat.c — exact k-nearest-neighbour search by scanning every row:
 * vf_flat_search (one query) and vf_flat_search_batch (many queries on
 * several threads). It is the ground truth for HNSW, the index of small
 * collections and the answer to selective filters.
 *
 * How a scan runs
 *   Rows are visited in blocks of `rows_per_block` (about 256 KiB of
 *   vectors, at most MAX_BLOCK_ROWS). For each block the filter is asked
 *   once per row and, for cosine, each passing row's squared norm is
 *   computed once; then every query of the current query block (up to
 *   MAX_QUERY_BLOCK queries) scans the block while it is still in cache.
 *   A single query is the same scan with a query block of one.
 *
 *   Each query's best-k set is a bounded max-heap (topk.h) that lives in
 *   the caller's output row itself: it holds at most min(k, n) hits, and
 *   vf_topk_drain_sorted can sort it in place because each pop frees the
 *   slot it writes. So no search allocates anything; scratch for filter
 *   verdicts and row norms is on the stack, sized by MAX_BLOCK_ROWS.
 *
 *   The batch form hands out query blocks through an atomic counter; the
 *   calling thread works too. A thread that cannot be started only leaves
 *   its share to the others, so the batch still completes (it never needs
 *   to fail with -EAGAIN).
 *
 * Invariants
 *   1. Row i has id i; only rows whose filter accept() is true are offered
 *      to a heap, so a rejected id is never returned.
 *   2. A query's rows are offered to its heap in increasing id order in
 *      both forms, and distances come from the same kernels and the same
 *      formula, so the batch form returns exactly what the single form
 *      returns, ties included.
 *   3. Distances follow engine.h: l2 = l2sq, dot = -dot, cosine through
 *      vf_cosine_from_dots (the formula of vf_distance). A NaN distance
 *      (a non-finite input) is ranked as +infinity so the heap order stays
 *      total and the hit count stays min(k, passing rows).
 *   4. Nothing is written outside out[0 .. min(k, n)) of each query and its
 *      n_out entry.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

#include "kernels.h"
#include "fanout.h"
#include "topk.h"

#define TARGET_BLOCK_BYTES (256u * 1024u)
#define MAX_BLOCK_ROWS 1024u
#define MAX_QUERY_BLOCK 8u

typedef struct flat_job {
    const float *base;
    size_t n;
    size_t dim;
    vf_metric metric;
    const vf_kernels *kern;
    const vf_filter *filter; /* NULL: every row passes */
    const float *queries;
    size_t nq;
    size_t k;
    size_t rows_per_block;
    size_t queries_per_block;
    size_t n_query_blocks;
    vf_hit *out;
    size_t *n_out;
    atomic_size_t next_block; /* next query block to hand out */
} flat_job;

/* The argument checks both entry points share: 0 or -EINVAL. */
static int check_common(const float *base, size_t n, size_t dim, vf_metric metric, size_t k,
                        const vf_filter *filter)
{
    if (dim == 0 || dim > VF_MAX_DIM || k == 0)
        return -EINVAL;
    if (metric != VF_METRIC_L2 && metric != VF_METRIC_COSINE && metric != VF_METRIC_DOT)
        return -EINVAL;
    if (base == NULL && n > 0)
        return -EINVAL;
    /* Ids are uint32: row n - 1 must fit. */
    if ((uint64_t)n > (uint64_t)UINT32_MAX + 1u)
        return -EINVAL;
    if (filter != NULL && filter->accept == NULL)
        return -EINVAL;
    return 0;
}

/* Rows per scan block: about TARGET_BLOCK_BYTES of vectors, 1 to
 * MAX_BLOCK_ROWS. */
static size_t rows_per_block(size_t dim)
{
    size_t rows = TARGET_BLOCK_BYTES / (dim * sizeof(float));
    if (rows < 1)
        rows = 1;
    if (rows > MAX_BLOCK_ROWS)
        rows = MAX_BLOCK_ROWS;
    return rows;
}

/*
 * Scans rows [r0, r1) for queries [q0, q1) of the job, offering each
 * passing row to heaps[q - q0]. qq[q - q0] is the query's squared norm
 * (cosine only). pass and rr are scratch of at least r1 - r0 entries.
 */
static void scan_block(const flat_job *job, size_t q0, size_t q1, vf_heap *heaps, const float *qq,
                       size_t r0, size_t r1, unsigned char *pass, float *rr)
{
    assert(q0 < q1 && q1 - q0 <= MAX_QUERY_BLOCK);
    assert(r0 < r1 && r1 - r0 <= MAX_BLOCK_ROWS);
    const size_t dim = job->dim;
    const vf_kernels *kern = job->kern;
    const vf_filter *filter = job->filter;

    for (size_t r = r0; r < r1; r++) {
        pass[r - r0] = filter == NULL || filter->accept(filter->ctx, (uint32_t)r);
        if (job->metric == VF_METRIC_COSINE && pass[r - r0]) {
            const float *row = job->base + r * dim;
            rr[r - r0] = kern->dot(row, row, dim);
        }
    }

    for (size_t q = q0; q < q1; q++) {
        const float *query = job->queries + q * dim;
        vf_heap *best = &heaps[q - q0];
        for (size_t r = r0; r < r1; r++) {
            if (!pass[r - r0])
                continue;
            const float *row = job->base + r * dim;
            float d;
            switch (job->metric) {
            case VF_METRIC_L2:
                d = kern->l2sq(query, row, dim);
                break;
            case VF_METRIC_DOT:
                d = -kern->dot(query, row, dim);
                break;
            default:
                d = vf_cosine_from_dots(kern->dot(query, row, dim), qq[q - q0], rr[r - r0]);
                break;
            }
            if (isnan(d))
                d = INFINITY;
            vf_topk_offer(best, d, (uint32_t)r);
        }
    }
}

/* Runs the whole search for queries [q0, q1): q1 - q0 <= MAX_QUERY_BLOCK. */
static void search_query_block(const flat_job *job, size_t q0, size_t q1)
{
    assert(q0 < q1 && q1 - q0 <= MAX_QUERY_BLOCK && q1 <= job->nq);
    vf_heap heaps[MAX_QUERY_BLOCK];
    float qq[MAX_QUERY_BLOCK];
    unsigned char pass[MAX_BLOCK_ROWS];
    float rr[MAX_BLOCK_ROWS];
    const size_t cap = job->k < job->n ? job->k : job->n;

    for (size_t q = q0; q < q1; q++) {
        const float *query = job->queries + q * job->dim;
        vf_heap_init(&heaps[q - q0], job->out + q * job->k, cap);
        qq[q - q0] =
            job->metric == VF_METRIC_COSINE ? job->kern->dot(query, query, job->dim) : 0.0f;
    }
    /* With cap 0 (no rows) a heap has no root to compare against. */
    if (cap > 0) {
        for (size_t r0 = 0; r0 < job->n; r0 += job->rows_per_block) {
            size_t r1 = job->n - r0 < job->rows_per_block ? job->n : r0 + job->rows_per_block;
            scan_block(job, q0, q1, heaps, qq, r0, r1, pass, rr);
        }
    }
    for (size_t q = q0; q < q1; q++)
        job->n_out[q] = vf_topk_drain_sorted(&heaps[q - q0], job->out + q * job->k);
}

/* Fan-out worker: searches query blocks taken from the job's counter
 * until none is left. */
static void *worker(void *arg)
{
    flat_job *job = arg;
    for (;;) {
        size_t b = atomic_fetch_add(&job->next_block, 1);
        if (b >= job->n_query_blocks)
            break;
        size_t q0 = b * job->queries_per_block;
        size_t q1 = job->nq - q0 < job->queries_per_block ? job->nq : q0 + job->queries_per_block;
        search_query_block(job, q0, q1);
    }
    return NULL;
}

int vf_flat_search(const float *base, size_t n, size_t dim, vf_metric metric, const float *query,
                   size_t k, const vf_filter *filter, vf_hit *out, size_t *n_out)
{
    int rc = check_common(base, n, dim, metric, k, filter);
    if (rc != 0)
        return rc;
    if (query == NULL || out == NULL || n_out == NULL)
        return -EINVAL;

    flat_job job = {
        .base = base,
        .n = n,
        .dim = dim,
        .metric = metric,
        .kern = vf_kernels_best(),
        .filter = filter,
        .queries = query,
        .nq = 1,
        .k = k,
        .rows_per_block = rows_per_block(dim),
        .queries_per_block = 1,
        .n_query_blocks = 1,
        .out = out,
        .n_out = n_out,
    };
    atomic_init(&job.next_block, 0);
    search_query_block(&job, 0, 1);
    return 0;
}

int vf_flat_search_batch(const float *base, size_t n, size_t dim, vf_metric metric,
                         const float *queries, size_t nq, size_t k, const vf_filter *filter,
                         unsigned threads, vf_hit *out, size_t *n_out)
{
    int rc = check_common(base, n, dim, metric, k, filter);
    if (rc != 0)
        return rc;
    if (nq == 0)
        return 0;
    if (queries == NULL || out == NULL || n_out == NULL || nq > SIZE_MAX / k)
        return -EINVAL;

    threads = vc_threads_resolve(threads);
    if (threads > nq)
        threads = (unsigned)nq;

    /* Small batches get small query blocks so every thread has work. */
    size_t per = (nq + threads - 1) / threads;
    size_t qb = per < MAX_QUERY_BLOCK ? per : MAX_QUERY_BLOCK;

    flat_job job = {
        .base = base,
        .n = n,
        .dim = dim,
        .metric = metric,
        .kern = vf_kernels_best(),
        .filter = filter,
        .queries = queries,
        .nq = nq,
        .k = k,
        .rows_per_block = rows_per_block(dim),
        .queries_per_block = qb,
        .n_query_blocks = (nq + qb - 1) / qb,
        .out = out,
        .n_out = n_out,
    };
    atomic_init(&job.next_block, 0);

    vc_fanout(threads, worker, &job);
    return 0;
}
