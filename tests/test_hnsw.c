/*
 * test_hnsw.c — the HNSW index against exact search: recall on random and
 * real data, deletes and re-inserts, updates, filters, snapshots (round
 * trip and corruption), concurrency, and a seeded property test.
 *
 * Real data comes from scripts/fetch-data.sh (minilm, words50k) in
 * $VECFS_DATA_DIR; a test whose data is absent is skipped, and CI fetches
 * it first.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "test_seed.h"

#include "../bench/fvecs.h"
#include "crc32c.h"
#include "engine.h"
#include "hnsw_source.h"
#include "test_rng.h"

#define K 10

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static float *random_matrix(size_t n, size_t dim)
{
    float *m = malloc(n * dim * sizeof(float));
    assert_non_null(m);
    for (size_t i = 0; i < n * dim; i++)
        m[i] = rng_float();
    return m;
}

static vf_hnsw *build(const float *base, size_t n, size_t dim, vf_metric metric, unsigned threads)
{
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, (uint32_t)dim);
    p.metric = metric;
    vf_hnsw *h = NULL;
    assert_int_equal(vf_hnsw_create(&p, &h), 0);
    assert_int_equal(vf_hnsw_reserve(h, n), 0);
    assert_int_equal(vf_hnsw_insert_batch(h, NULL, 0, base, n, threads), 0);
    assert_int_equal(vf_hnsw_count(h), n);
    assert_int_equal(vf_hnsw_check(h), 0);
    return h;
}

/* Mean recall@k of HNSW against the index's own exact search. */
static double recall_at_k(const vf_hnsw *h, const float *queries, size_t nq, size_t dim, size_t ef,
                          const vf_filter *filter)
{
    vf_hit got[K], want[K];
    size_t hits = 0, total = 0;
    for (size_t q = 0; q < nq; q++) {
        size_t ng, nw;
        assert_int_equal(vf_hnsw_search(h, queries + q * dim, K, ef, filter, got, &ng), 0);
        assert_int_equal(vf_hnsw_search_exact(h, queries + q * dim, K, filter, want, &nw), 0);
        assert_int_equal(ng, nw);
        for (size_t i = 0; i < nw; i++)
            for (size_t j = 0; j < ng; j++)
                if (got[j].id == want[i].id) {
                    hits++;
                    break;
                }
        total += nw;
    }
    return total ? (double)hits / (double)total : 1.0;
}

static int load_fvecs(const char *name, bench_matrix *m)
{
    const char *dir = getenv("VECFS_DATA_DIR");
    char path[4096], err[256];
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "data", name);
    int rc = bench_fvecs_read(path, m, err, sizeof(err));
    if (rc)
        print_message("skipping: %s (run scripts/fetch-data.sh)\n", err);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Recall                                                               */
/* ------------------------------------------------------------------ */

static void test_recall_random_each_metric(void **state)
{
    (void)state;
    const size_t n = 4000, dim = 24, nq = 200;
    const vf_metric metrics[] = {VF_METRIC_L2, VF_METRIC_COSINE, VF_METRIC_DOT};
    rng_state = 42;
    float *base = random_matrix(n, dim), *queries = random_matrix(nq, dim);
    for (size_t i = 0; i < 3; i++) {
        vf_hnsw *h = build(base, n, dim, metrics[i], 2);
        double r = recall_at_k(h, queries, nq, dim, 0, NULL);
        print_message("random %s n=%zu dim=%zu recall@10 %.4f\n", vf_metric_name(metrics[i]), n,
                      dim, r);
        assert_true(r >= 0.95);
        vf_hnsw_free(h);
    }
    free(base);
    free(queries);
}

static void test_recall_minilm(void **state)
{
    (void)state;
    bench_matrix m = BENCH_MATRIX_INIT;
    if (load_fvecs("minilm.fvecs", &m) != 0)
        skip();
    /* Hold out every 10th row as a query. */
    size_t nq = 0, nb = 0;
    float *base = malloc(m.n * m.dim * sizeof(float)), *queries = malloc(m.n * m.dim * 4);
    assert_non_null(base);
    assert_non_null(queries);
    const float *rows = m.data;
    for (size_t i = 0; i < m.n; i++) {
        float *dst = i % 10 == 0 ? queries + nq++ * m.dim : base + nb++ * m.dim;
        memcpy(dst, rows + i * m.dim, m.dim * sizeof(float));
    }
    vf_hnsw *h = build(base, nb, m.dim, VF_METRIC_COSINE, 0);
    double r = recall_at_k(h, queries, nq, m.dim, 0, NULL);
    print_message("minilm %zu x %zu cosine recall@10 %.4f, %zu unreachable\n", nb, m.dim, r,
                  vf_hnsw_unreachable(h));
    assert_true(r >= 0.95);
    vf_hnsw_free(h);
    free(base);
    free(queries);
    bench_matrix_release(&m);
}

static void test_recall_words50k(void **state)
{
    (void)state;
    bench_matrix base = BENCH_MATRIX_INIT, queries = BENCH_MATRIX_INIT;
    /* The ThreadSanitizer run is for races, not recall: it skips this one. */
    if (getenv("VECFS_TEST_SKIP_LARGE"))
        skip();
    if (load_fvecs("words50k-base.fvecs", &base) != 0 ||
        load_fvecs("words50k-queries.fvecs", &queries) != 0) {
        bench_matrix_release(&base);
        skip();
    }
    /* Word vectors are a hard set (like GloVe): at the default ef 64 both
     * we and hnswlib (M 16, efC 200) reach ~0.927 here, so 0.95 is asked
     * at ef 128 and the default ef only has to stay at that level. */
    vf_hnsw *h = build(base.data, base.n, base.dim, VF_METRIC_COSINE, 0);
    double r64 = recall_at_k(h, queries.data, queries.n, queries.dim, 0, NULL);
    double r = recall_at_k(h, queries.data, queries.n, queries.dim, 128, NULL);
    print_message("words50k %zu x %zu cosine recall@10 %.4f (ef 64), %.4f (ef 128)\n", base.n,
                  base.dim, r64, r);
    assert_true(r64 >= 0.91);
    assert_true(r >= 0.95);

    /* Churn: delete 30 %, check, re-insert the same vectors. */
    const float *rows = base.data;
    for (size_t i = 0; i < base.n; i += 10)
        for (size_t j = i; j < i + 3 && j < base.n; j++)
            assert_int_equal(vf_hnsw_remove(h, (uint32_t)j), 0);
    assert_int_equal(vf_hnsw_check(h), 0);
    double r_deleted = recall_at_k(h, queries.data, queries.n, queries.dim, 128, NULL);
    for (size_t i = 0; i < base.n; i += 10)
        for (size_t j = i; j < i + 3 && j < base.n; j++)
            assert_int_equal(vf_hnsw_insert(h, (uint32_t)j, rows + j * base.dim), 0);
    assert_int_equal(vf_hnsw_count(h), base.n);
    assert_int_equal(vf_hnsw_check(h), 0);
    double r_again = recall_at_k(h, queries.data, queries.n, queries.dim, 128, NULL);
    print_message("ef 128 after deleting 30%%: %.4f, after re-inserting: %.4f\n", r_deleted,
                  r_again);
    assert_true(r_deleted >= 0.95);
    assert_true(r_again >= 0.95);
    vf_hnsw_free(h);
    bench_matrix_release(&base);
    bench_matrix_release(&queries);
}

/* ------------------------------------------------------------------ */
/* Deletes and updates                                                  */
/* ------------------------------------------------------------------ */

static void test_delete_never_returned_and_slot_reused(void **state)
{
    (void)state;
    const size_t n = 2000, dim = 16;
    rng_state = 7;
    float *base = random_matrix(n, dim);
    vf_hnsw *h = build(base, n, dim, VF_METRIC_L2, 1);
    size_t mem_before = vf_hnsw_memory(h);
    for (size_t i = 0; i < n; i += 2)
        assert_int_equal(vf_hnsw_remove(h, (uint32_t)i), 0);
    assert_int_equal(vf_hnsw_remove(h, 0), -ENOENT);
    assert_int_equal(vf_hnsw_remove(h, (uint32_t)n + 5), -ENOENT);
    assert_int_equal(vf_hnsw_count(h), n / 2);
    assert_false(vf_hnsw_contains(h, 0));
    assert_true(vf_hnsw_contains(h, 1));
    float v[16];
    assert_int_equal(vf_hnsw_get(h, 0, v), -ENOENT);
    /* A deleted vector itself as the query: it must not come back. */
    for (size_t i = 0; i < n; i += 50) {
        vf_hit hits[K];
        size_t nh;
        assert_int_equal(vf_hnsw_search(h, base + i * dim, K, 0, NULL, hits, &nh), 0);
        assert_int_equal(nh, K);
        for (size_t j = 0; j < nh; j++)
            assert_int_equal(hits[j].id % 2, 1);
    }
    /* Reusing the deleted ids must not grow the index. */
    for (size_t i = 0; i < n; i += 2)
        assert_int_equal(vf_hnsw_insert(h, (uint32_t)i, base + i * dim), 0);
    assert_int_equal(vf_hnsw_count(h), n);
    assert_true(vf_hnsw_memory(h) <= mem_before + 64 * 1024);
    assert_int_equal(vf_hnsw_check(h), 0);
    vf_hnsw_free(h);
    free(base);
}

/* Batches that mix fresh ids, updates, reused deleted slots and ids
 * repeated within the batch: every id ends with its last row's vector, the
 * graph is consistent, and vectors are found. Under TSan (CI) this also
 * shows that rows replacing a vector never run beside other inserts, which
 * may be scoring that vector while they link. */
static void test_batch_updates_last_row_wins(void **state)
{
    (void)state;
    const size_t dim = 4, n0 = 300, nb = 400, rounds = 20;
    float *base = random_matrix(n0, dim);
    vf_hnsw *h = build(base, n0, dim, VF_METRIC_L2, 2);
    uint32_t *ids = malloc(nb * sizeof(uint32_t));
    float *got = malloc(dim * sizeof(float));
    size_t checked = 0, found = 0;
    for (size_t r = 0; r < rounds; r++) {
        for (uint32_t id = (uint32_t)r % 5; id < n0; id += 5)
            if (vf_hnsw_contains(h, id))
                assert_int_equal(vf_hnsw_remove(h, id), 0);
        /* Ids over 0..n0+99 (updates, reuses, fresh ones); every tenth row
         * repeats the id of the row before it. */
        float *vecs = random_matrix(nb, dim);
        for (size_t i = 0; i < nb; i++)
            ids[i] = i % 10 == 9 ? ids[i - 1] : (uint32_t)((i * 7 + r) % (n0 + 100));
        assert_int_equal(vf_hnsw_insert_batch(h, ids, 0, vecs, nb, 2), 0);
        assert_int_equal(vf_hnsw_check(h), 0);
        for (size_t i = 0; i < nb; i++) {
            size_t last = i;
            for (size_t j = i + 1; j < nb; j++)
                if (ids[j] == ids[i])
                    last = j;
            if (last != i)
                continue;
            assert_int_equal(vf_hnsw_get(h, ids[i], got), 0);
            assert_memory_equal(got, vecs + i * dim, dim * sizeof(float));
            vf_hit hit;
            size_t k;
            assert_int_equal(vf_hnsw_search(h, vecs + i * dim, 1, 128, NULL, &hit, &k), 0);
            checked++;
            found += k == 1 && hit.distance == 0.0f;
        }
        free(vecs);
    }
    /* Approximate search: a vector finds itself nearly always. */
    assert_true(found * 1000 >= checked * 995);
    free(got);
    free(ids);
    free(base);
    vf_hnsw_free(h);
}

static void test_update_moves_vector(void **state)
{
    (void)state;
    const size_t n = 1500, dim = 8;
    rng_state = 11;
    float *base = random_matrix(n, dim);
    vf_hnsw *h = build(base, n, dim, VF_METRIC_L2, 1);
    float far[8];
    for (size_t round = 0; round < 50; round++) {
        uint32_t id = (uint32_t)(rng_next() % n);
        for (size_t d = 0; d < dim; d++)
            far[d] = 5.0f + rng_float();
        assert_int_equal(vf_hnsw_insert(h, id, far), 0);
        vf_hit hit;
        size_t nh;
        assert_int_equal(vf_hnsw_search(h, far, 1, 0, NULL, &hit, &nh), 0);
        assert_int_equal(nh, 1);
        assert_int_equal(hit.id, id);
        assert_true(hit.distance < 1e-6f);
        float got[8];
        assert_int_equal(vf_hnsw_get(h, id, got), 0);
        assert_memory_equal(got, far, sizeof(far));
        /* Put it back so later rounds search a similar graph. */
        assert_int_equal(vf_hnsw_insert(h, id, base + id * dim), 0);
    }
    assert_int_equal(vf_hnsw_count(h), n);
    assert_int_equal(vf_hnsw_check(h), 0);
    vf_hnsw_free(h);
    free(base);
}

static void test_edges_and_errors(void **state)
{
    (void)state;
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, 4);
    vf_hnsw *h = NULL;
    p.m = 1;
    assert_int_equal(vf_hnsw_create(&p, &h), -EINVAL);
    assert_null(h);
    p.m = 16;
    p.dim = 0;
    assert_int_equal(vf_hnsw_create(&p, &h), -EINVAL);
    p.dim = 4;
    p.metric = (vf_metric)9;
    assert_int_equal(vf_hnsw_create(&p, &h), -EINVAL);
    p.metric = VF_METRIC_L2;
    /* ef sizes a walk's buffers: bounded (a snapshot header is checked
     * by the same rule). */
    p.ef_construction = VF_HNSW_MAX_EF + 1;
    assert_int_equal(vf_hnsw_create(&p, &h), -EINVAL);
    p.ef_construction = 200;
    p.ef_search = VF_HNSW_MAX_EF + 1;
    assert_int_equal(vf_hnsw_create(&p, &h), -EINVAL);
    p.ef_search = 64;
    assert_int_equal(vf_hnsw_create(&p, &h), 0);
    vf_hnsw_set_ef_search(h, VF_HNSW_MAX_EF + 1);
    vf_hnsw_params got;
    vf_hnsw_params_get(h, &got);
    assert_int_equal(got.ef_search, 64);

    float q[4] = {1, 2, 3, 4};
    vf_hit hits[K];
    size_t nh = 99;
    assert_int_equal(vf_hnsw_search(h, q, K, 0, NULL, hits, &nh), 0);
    assert_int_equal(nh, 0);
    assert_int_equal(vf_hnsw_search(h, q, 0, 0, NULL, hits, &nh), -EINVAL);
    float bad[4] = {1, NAN, 0, 0};
    assert_int_equal(vf_hnsw_insert(h, 0, bad), -EINVAL);
    bad[1] = INFINITY;
    assert_int_equal(vf_hnsw_search(h, bad, 1, 0, NULL, hits, &nh), -EINVAL);
    assert_int_equal(vf_hnsw_insert(h, UINT32_MAX, q), -EFBIG);

    /* One vector, then k larger than the index. */
    assert_int_equal(vf_hnsw_insert(h, 7, q), 0);
    assert_int_equal(vf_hnsw_search(h, q, K, 0, NULL, hits, &nh), 0);
    assert_int_equal(nh, 1);
    assert_int_equal(hits[0].id, 7);
    assert_int_equal(vf_hnsw_remove(h, 7), 0);
    assert_int_equal(vf_hnsw_search(h, q, K, 0, NULL, hits, &nh), 0);
    assert_int_equal(nh, 0);
    assert_int_equal(vf_hnsw_check(h), 0);
    vf_hnsw_free(h);
    vf_hnsw_free(NULL);
}

/* vf_hnsw_tune with spec's target and the given calibration queries
 * (nq of them) plus `held` perturbed held-out vectors. */
static vf_tune_result tune(const vf_hnsw *h, double target, size_t max_ef, const float *q,
                           size_t nq, size_t held)
{
    vf_tune_spec spec = {.k = K,
                         .target_recall = target,
                         .max_ef = max_ef,
                         .queries = q,
                         .nqueries = nq,
                         .held_out = held,
                         .seed = 7};
    vf_tune_result r;
    assert_int_equal(vf_hnsw_tune(h, &spec, &r), 0);
    assert_int_equal(r.queries, nq + held);
    assert_int_equal(r.user_queries, nq);
    return r;
}

static void test_tune_ef_reaches_target(void **state)
{
    (void)state;
    /* Clustered data with out-of-sample queries from the same clusters:
     * calibration on one half of them, recall measured on the other. */
    const size_t n = 6000, dim = 32, nq = 600, clusters = 40;
    rng_state = 2024;
    float *centers = random_matrix(clusters, dim);
    float *base = random_matrix(n, dim), *queries = random_matrix(nq, dim);
    for (size_t i = 0; i < n * dim; i++)
        base[i] = centers[(i / dim) % clusters * dim + i % dim] + 0.4f * base[i];
    for (size_t i = 0; i < nq * dim; i++)
        queries[i] = centers[(i / dim) % clusters * dim + i % dim] + 0.4f * queries[i];
    vf_hnsw *h = build(base, n, dim, VF_METRIC_L2, 2);
    const float *test = queries + nq / 2 * dim;
    const double targets[] = {0.80, 0.90, 0.95, 0.99};
    uint32_t prev = 0;
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        /* Users' queries alone, then held-out perturbations alone. */
        vf_tune_result u = tune(h, targets[i], 512, queries, nq / 2, 0);
        vf_tune_result p = tune(h, targets[i], 512, NULL, 0, 300);
        double ru = recall_at_k(h, test, nq / 2, dim, u.ef, NULL);
        double rp = recall_at_k(h, test, nq / 2, dim, p.ef, NULL);
        print_message("target %.2f: user queries ef %u (estimate %.4f, low %.4f, out-of-sample "
                      "%.4f); held-out ef %u (estimate %.4f, low %.4f, out-of-sample %.4f)\n",
                      targets[i], u.ef, u.recall, u.recall_low, ru, p.ef, p.recall, p.recall_low,
                      rp);
        assert_true(u.recall_low >= targets[i] && u.recall >= u.recall_low);
        assert_true(u.ef >= prev);
        prev = u.ef;
        /* Calibrated on queries like the test ones: within sampling error. */
        assert_true(ru >= targets[i] - 0.01);
        assert_true(rp >= targets[i] - 0.02);
    }
    free(centers);
    vf_tune_spec bad = {.k = K, .target_recall = 1.5, .max_ef = 512, .held_out = 10};
    vf_tune_result r;
    assert_int_equal(vf_hnsw_tune(h, &bad, &r), -EINVAL);
    bad.target_recall = 0.9;
    bad.max_ef = 5;
    assert_int_equal(vf_hnsw_tune(h, &bad, &r), -EINVAL);
    bad.max_ef = 512;
    bad.held_out = 0;
    assert_int_equal(vf_hnsw_tune(h, &bad, &r), -EINVAL);
    float nan_q[32];
    memcpy(nan_q, queries, sizeof(nan_q));
    nan_q[3] = NAN;
    bad.queries = nan_q;
    bad.nqueries = 1;
    assert_int_equal(vf_hnsw_tune(h, &bad, &r), -EINVAL);
    /* A target no ef reaches gives max_ef. */
    r = tune(h, 1.0, 20, NULL, 0, 50);
    assert_true(r.ef <= 20);
    vf_hnsw_free(h);
    free(base);
    free(queries);
}

/* The decision rule: the lower confidence bound, not the mean. */
static void test_recall_lower_bound(void **state)
{
    (void)state;
    float r[400];
    double mean;
    /* 400 queries, mean 0.95: 0.9 and 1.0 alternating. Standard error
     * 0.05 / sqrt(400) = 0.0025, bound 0.95 - 1.645 x 0.0025. */
    for (size_t i = 0; i < 400; i++)
        r[i] = i % 2 ? 1.0f : 0.9f;
    double low = vf_recall_lower_bound(r, 400, &mean);
    assert_true(fabs(mean - 0.95) < 1e-6);
    assert_true(fabs(low - (0.95 - VF_TUNE_Z * 0.05 * sqrt(400.0 / 399.0) / 20.0)) < 1e-6);
    assert_true(low < 0.95); /* a target of 0.95 is not met by this sample */
    /* Fewer queries, same mean: a wider margin. */
    double low100 = vf_recall_lower_bound(r, 100, NULL);
    assert_true(low100 < low);
    /* All perfect: no margin needed. */
    for (size_t i = 0; i < 400; i++)
        r[i] = 1.0f;
    assert_true(vf_recall_lower_bound(r, 400, &mean) == 1.0 && mean == 1.0);
    /* One query proves nothing; none asks nothing. */
    assert_true(vf_recall_lower_bound(r, 1, NULL) == 0.0);
    assert_true(vf_recall_lower_bound(r, 0, &mean) == 1.0 && mean == 1.0);
}

/* ------------------------------------------------------------------ */
/* Filters                                                              */
/* ------------------------------------------------------------------ */

typedef struct modulo_filter {
    uint32_t modulus; /* ids with id % modulus == 0 pass */
} modulo_filter;

static bool modulo_accept(void *ctx, uint32_t id)
{
    return id % ((modulo_filter *)ctx)->modulus == 0;
}

static void test_filters(void **state)
{
    (void)state;
    const size_t n = 5000, dim = 16, nq = 50;
    rng_state = 99;
    float *base = random_matrix(n, dim), *queries = random_matrix(nq, dim);
    vf_hnsw *h = build(base, n, dim, VF_METRIC_COSINE, 2);
    const uint32_t moduli[] = {1, 2, 10, 50, 700, 2500, 6000};
    for (size_t mi = 0; mi < sizeof(moduli) / sizeof(moduli[0]); mi++) {
        modulo_filter mf = {moduli[mi]};
        size_t passing = (n + moduli[mi] - 1) / moduli[mi];
        for (int known = 0; known < 2; known++) {
            vf_filter f = {.accept = modulo_accept,
                           .ctx = &mf,
                           .passing = known ? passing : VF_FILTER_UNKNOWN};
            for (size_t q = 0; q < nq; q++) {
                vf_hit hits[K];
                size_t nh;
                assert_int_equal(vf_hnsw_search(h, queries + q * dim, K, 0, &f, hits, &nh), 0);
                assert_int_equal(nh, passing < K ? passing : K);
                for (size_t i = 0; i < nh; i++)
                    assert_int_equal(hits[i].id % moduli[mi], 0);
            }
            double r = recall_at_k(h, queries, nq, dim, 0, &f);
            print_message("filter 1/%u (%s count): recall@10 %.4f\n", moduli[mi],
                          known ? "known" : "estimated", r);
            assert_true(r >= 0.9);
        }
    }
    vf_hnsw_free(h);
    free(base);
    free(queries);
}

/* ------------------------------------------------------------------ */
/* Snapshots                                                            */
/* ------------------------------------------------------------------ */

typedef struct membuf {
    uint8_t *data;
    size_t len, cap;
} membuf;

static int membuf_write(void *ctx, const void *bytes, size_t len)
{
    membuf *b = ctx;
    if (b->len + len > b->cap) {
        size_t cap = (b->len + len) * 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d)
            return -ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, len);
    b->len += len;
    return 0;
}

static int failing_write(void *ctx, const void *bytes, size_t len)
{
    (void)bytes;
    size_t *budget = ctx;
    if (len > *budget)
        return -ENOSPC;
    *budget -= len;
    return 0;
}

static void assert_same_results(const vf_hnsw *a, const vf_hnsw *b, const float *queries, size_t nq,
                                size_t dim)
{
    for (size_t q = 0; q < nq; q++) {
        vf_hit ha[K], hb[K];
        size_t na, nb;
        assert_int_equal(vf_hnsw_search(a, queries + q * dim, K, 0, NULL, ha, &na), 0);
        assert_int_equal(vf_hnsw_search(b, queries + q * dim, K, 0, NULL, hb, &nb), 0);
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++) {
            assert_int_equal(ha[i].id, hb[i].id);
            assert_true(ha[i].distance == hb[i].distance);
        }
    }
}

static vf_hnsw *snapshot_fixture(size_t n, size_t dim, membuf *buf)
{
    rng_state = 5;
    float *base = random_matrix(n, dim);
    vf_hnsw *h = build(base, n, dim, VF_METRIC_L2, 1);
    for (size_t i = 0; i < n; i += 7)
        assert_int_equal(vf_hnsw_remove(h, (uint32_t)i), 0);
    free(base);
    *buf = (membuf){0};
    assert_int_equal(vf_hnsw_serialize(h, membuf_write, buf), 0);
    return h;
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    const size_t n = 3000, dim = 12;
    membuf buf;
    vf_hnsw *h = snapshot_fixture(n, dim, &buf);
    vf_hnsw *copy = NULL;
    /* A NONE snapshot holds no vectors: without a source it cannot load. */
    assert_int_equal(vf_hnsw_deserialize(buf.data, buf.len, NULL, &copy), -ENOENT);
    assert_null(copy);
    vf_vec_source src = index_source_of(h);
    assert_int_equal(vf_hnsw_deserialize(buf.data, buf.len, &src, &copy), 0);
    assert_int_equal(vf_hnsw_check(copy), 0);
    assert_int_equal(vf_hnsw_count(copy), vf_hnsw_count(h));
    float *queries = random_matrix(100, dim);
    assert_same_results(h, copy, queries, 100, dim);

    /* Both go on the same way after more inserts on one thread. */
    for (uint32_t id = 0; id < 200; id++) {
        assert_int_equal(vf_hnsw_insert(h, (uint32_t)n + id, queries + (id % 100) * dim), 0);
        assert_int_equal(vf_hnsw_insert(copy, (uint32_t)n + id, queries + (id % 100) * dim), 0);
    }
    assert_same_results(h, copy, queries, 100, dim);

    /* A writer error aborts the serialization with that error. */
    size_t budget = buf.len / 2;
    assert_int_equal(vf_hnsw_serialize(h, failing_write, &budget), -ENOSPC);

    /* An empty index round-trips too. */
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, 3);
    vf_hnsw *empty = NULL, *empty2 = NULL;
    assert_int_equal(vf_hnsw_create(&p, &empty), 0);
    membuf eb = {0};
    assert_int_equal(vf_hnsw_serialize(empty, membuf_write, &eb), 0);
    assert_int_equal(vf_hnsw_deserialize(eb.data, eb.len, NULL, &empty2), 0);
    assert_int_equal(vf_hnsw_count(empty2), 0);
    vf_hnsw_free(empty);
    vf_hnsw_free(empty2);
    free(eb.data);
    free(queries);
    free(buf.data);
    vf_hnsw_free(h);
    vf_hnsw_free(copy);
}

/* Rewrites the trailing CRC so a test reaches the structural checks. */
static void reseal(uint8_t *b, size_t len)
{
    uint32_t crc = vc_crc32c(0, b, len - 4);
    memcpy(b + len - 4, &crc, 4);
}

/* A vector source whose every original holds a NaN. */
static const float *nan_source_get(void *ctx, uint32_t id, float *buf)
{
    (void)ctx;
    (void)id;
    for (size_t i = 0; i < 4; i++)
        buf[i] = i == 1 ? NAN : 0.0f;
    return buf;
}

static void test_snapshot_rejects_damage(void **state)
{
    (void)state;
    membuf buf;
    vf_hnsw *h = snapshot_fixture(300, 4, &buf);
    vf_hnsw *out = (vf_hnsw *)&out;
    vf_vec_source src = index_source_of(h);
    uint8_t *copy = malloc(buf.len);
    assert_non_null(copy);

    for (size_t len = 0; len < buf.len; len++) {
        assert_int_equal(vf_hnsw_deserialize(buf.data, len, &src, &out), -EILSEQ);
        assert_null(out);
    }
    for (size_t i = 0; i < buf.len; i++) {
        memcpy(copy, buf.data, buf.len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(vf_hnsw_deserialize(copy, buf.len, &src, &out), -EILSEQ);
    }
    /* Crafted but correctly sealed: a link out of range, a huge count, a
     * level beyond the maximum, a slot count that overflows sizes. */
    const size_t header = 120, slots = 300;
    const size_t level0 = header + 2 * slots + (4 - (2 * slots) % 4) % 4;
    const size_t node = 4 + 32 * 4; /* version 2: lists only */
    struct {
        size_t at;
        uint32_t value;
    } crafts[] = {
        {level0 + node * 1 + 4, 100000}, /* link of slot 1 out of range */
        {level0 + node * 1, 33},         /* level-0 count above 2m */
        {level0 + node * 1, 0x400},      /* a count word with the lock bit */
        {level0 + node * 2 + 4, 2},      /* self link */
        {64, 0xFFFFFFFFu},               /* slots: low word */
        {68, 0x7FFFFFFFu},               /* slots: high word */
        {80, 0xFFFFFFF0u},               /* upper words */
        {16, 0},                         /* dim 0 */
        {24, 1},                         /* m 1 */
        {40, 40},                        /* entry level beyond any slot */
        {88, 7},                         /* a quantization that does not exist */
        {92, 0},                         /* rerank 0 */
        {96, 0x3F800000u},               /* a scale on a NONE index */
        {112, 5},                        /* a training count on a NONE index */
    };
    for (size_t c = 0; c < sizeof(crafts) / sizeof(crafts[0]); c++) {
        memcpy(copy, buf.data, buf.len);
        memcpy(copy + crafts[c].at, &crafts[c].value, 4);
        reseal(copy, buf.len);
        assert_int_equal(vf_hnsw_deserialize(copy, buf.len, &src, &out), -EILSEQ);
    }
    memcpy(copy, buf.data, buf.len);
    copy[header + 3] = 9; /* a slot state that does not exist */
    reseal(copy, buf.len);
    assert_int_equal(vf_hnsw_deserialize(copy, buf.len, &src, &out), -EILSEQ);
    /* A source that serves a non-finite vector is refused like bad bytes. */
    vf_vec_source nan_src = {.get = nan_source_get};
    assert_int_equal(vf_hnsw_deserialize(buf.data, buf.len, &nan_src, &out), -EILSEQ);
    (void)node;
    /* The untouched bytes still load. */
    assert_int_equal(vf_hnsw_deserialize(buf.data, buf.len, &src, &out), 0);
    assert_int_equal(vf_hnsw_check(out), 0);
    vf_hnsw_free(out);
    free(copy);
    free(buf.data);
    vf_hnsw_free(h);
}

/* ------------------------------------------------------------------ */
/* Concurrency                                                          */
/* ------------------------------------------------------------------ */

typedef struct race {
    vf_hnsw *h;
    const float *vecs;
    size_t n, dim, first, step; /* race_insert: rows first, first + step, ... */
    _Atomic int failures;
} race;

static void *race_insert(void *arg)
{
    race *r = arg;
    for (size_t i = r->first; i < r->n; i += r->step)
        if (vf_hnsw_insert(r->h, (uint32_t)i, r->vecs + i * r->dim) != 0)
            atomic_fetch_add(&r->failures, 1);
    return NULL;
}

static void *race_remove(void *arg)
{
    race *r = arg;
    for (size_t i = 0; i < r->first; i += 3)
        if (vf_hnsw_remove(r->h, (uint32_t)i) != 0)
            atomic_fetch_add(&r->failures, 1);
    return NULL;
}

static void *race_search(void *arg)
{
    race *r = arg;
    vf_hit hits[K];
    for (size_t i = 0; i < 3000; i++) {
        size_t nh;
        if (vf_hnsw_search(r->h, r->vecs + (i % r->n) * r->dim, K, 0, NULL, hits, &nh) != 0)
            atomic_fetch_add(&r->failures, 1);
        for (size_t j = 0; j < nh; j++)
            if (hits[j].id >= r->n)
                atomic_fetch_add(&r->failures, 1);
    }
    return NULL;
}

static void test_concurrent_search_insert_remove(void **state)
{
    (void)state;
    const size_t n = 6000, dim = 16, start = 2000;
    rng_state = 1234;
    float *vecs = random_matrix(n, dim);
    vf_hnsw *h = build(vecs, start, dim, VF_METRIC_L2, 1);
    race a = {.h = h, .vecs = vecs, .n = n, .dim = dim, .first = start, .step = 2};
    race b = a;
    b.first = start + 1;
    pthread_t t[5];
    assert_int_equal(pthread_create(&t[0], NULL, race_insert, &a), 0);
    assert_int_equal(pthread_create(&t[1], NULL, race_insert, &b), 0);
    assert_int_equal(pthread_create(&t[2], NULL, race_search, &a), 0);
    assert_int_equal(pthread_create(&t[3], NULL, race_search, &b), 0);
    assert_int_equal(pthread_create(&t[4], NULL, race_remove, &a), 0);
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&a.failures) + atomic_load(&b.failures), 0);
    size_t removed = (start + 2) / 3;
    assert_int_equal(vf_hnsw_count(h), n - removed);
    assert_int_equal(vf_hnsw_check(h), 0);
    double r = recall_at_k(h, vecs, 300, dim, 0, NULL);
    print_message("after concurrent build: recall@10 %.4f\n", r);
    assert_true(r >= 0.95);
    vf_hnsw_free(h);
    free(vecs);
}

/* Updates the first 64 rows again and again (fresh inserts while their
 * row's inserter has not come yet). */
static void *race_update(void *arg)
{
    race *r = arg;
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < 64; i++)
            if (vf_hnsw_insert(r->h, (uint32_t)i, r->vecs + i * r->dim) != 0)
                atomic_fetch_add(&r->failures, 1);
    return NULL;
}

/* At m = 2 half the nodes have upper levels, so four inserters with no
 * reserve keep claiming upper lists (each holding room before its locks,
 * hnsw_upper.c) while others grow the words and the table, and a fifth
 * thread's updates take and give back holds they do not use. Every node
 * must keep its own lists: the graph and the upper store check, no hold
 * is left, and each vector is its own nearest neighbour. */
static void test_concurrent_upper_claims(void **state)
{
    (void)state;
    const size_t n = 8000, dim = 8;
    rng_state = 4321;
    float *vecs = random_matrix(n, dim);
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, (uint32_t)dim);
    p.metric = VF_METRIC_L2;
    p.m = 2;
    p.ef_construction = 40;
    vf_hnsw *h = NULL;
    assert_int_equal(vf_hnsw_create(&p, &h), 0);
    race r[5];
    pthread_t t[5];
    for (int i = 0; i < 5; i++) {
        r[i] = (race){.h = h, .vecs = vecs, .n = n, .dim = dim, .first = (size_t)i, .step = 4};
        assert_int_equal(pthread_create(&t[i], NULL, i < 4 ? race_insert : race_update, &r[i]), 0);
    }
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 5; i++)
        assert_int_equal(atomic_load(&r[i].failures), 0);
    assert_int_equal(vf_hnsw_count(h), n);
    assert_int_equal(vf_hnsw_check(h), 0);
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        vf_hit hit;
        size_t got;
        assert_int_equal(vf_hnsw_search(h, vecs + i * dim, 1, 0, NULL, &hit, &got), 0);
        assert_int_equal(got, 1);
        found += hit.id == i;
    }
    print_message("upper claims race: %zu of %zu vectors found as their own nearest\n", found, n);
    assert_true(found >= n - n / 100);
    vf_hnsw_free(h);
    free(vecs);
}

/* ------------------------------------------------------------------ */
/* Property test                                                        */
/* ------------------------------------------------------------------ */

static void test_property_random_ops(void **state)
{
    (void)state;
    rng_state = seed_from_env("property");
    const size_t ids = 400, dim = 6, ops = 4000;
    float *model = calloc(ids * dim, sizeof(float));
    bool *present = calloc(ids, sizeof(bool));
    assert_non_null(model);
    assert_non_null(present);
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, (uint32_t)dim);
    p.metric = (vf_metric)(rng_next() % 3);
    p.m = 4 + (uint32_t)(rng_next() % 12);
    p.ef_construction = 20 + (uint32_t)(rng_next() % 100);
    vf_hnsw *h = NULL;
    assert_int_equal(vf_hnsw_create(&p, &h), 0);
    size_t count = 0;
    for (size_t op = 0; op < ops; op++) {
        uint32_t id = (uint32_t)(rng_next() % ids);
        unsigned kind = (unsigned)(rng_next() % 10);
        if (kind < 5) {
            float v[6];
            for (size_t d = 0; d < dim; d++)
                v[d] = rng_float();
            assert_int_equal(vf_hnsw_insert(h, id, v), 0);
            if (p.metric == VF_METRIC_COSINE)
                vf_normalize(v, v, dim);
            memcpy(model + id * dim, v, sizeof(v));
            count += !present[id];
            present[id] = true;
        } else if (kind < 8) {
            assert_int_equal(vf_hnsw_remove(h, id), present[id] ? 0 : -ENOENT);
            count -= present[id];
            present[id] = false;
        } else {
            float q[6];
            for (size_t d = 0; d < dim; d++)
                q[d] = rng_float();
            vf_hit hits[K], exact[K];
            size_t nh, ne;
            assert_int_equal(vf_hnsw_search(h, q, K, 0, NULL, hits, &nh), 0);
            assert_int_equal(vf_hnsw_search_exact(h, q, K, NULL, exact, &ne), 0);
            assert_int_equal(ne, count < K ? count : K);
            for (size_t i = 0; i < nh; i++)
                assert_true(present[hits[i].id]);
            for (size_t i = 0; i < ne; i++) {
                assert_true(present[exact[i].id]);
                float want = vf_distance(p.metric, q, model + exact[i].id * dim, dim);
                assert_true(fabsf(want - exact[i].distance) < 1e-4f);
            }
        }
        assert_int_equal(vf_hnsw_count(h), count);
        if (op % 500 == 0) {
            assert_int_equal(vf_hnsw_check(h), 0);
            size_t lost = vf_hnsw_unreachable(h), fixed;
            assert_int_equal(vf_hnsw_reconnect(h, &fixed), 0);
            assert_true(fixed >= lost);
            if (lost)
                print_message("op %zu: %zu of %zu were unreachable; relinked\n", op, lost, count);
            assert_int_equal(vf_hnsw_unreachable(h), 0);
            assert_int_equal(vf_hnsw_check(h), 0);
        }
    }
    for (uint32_t id = 0; id < ids; id++) {
        float got[6];
        assert_int_equal(vf_hnsw_contains(h, id), present[id]);
        if (present[id]) {
            assert_int_equal(vf_hnsw_get(h, id, got), 0);
            assert_memory_equal(got, model + id * dim, sizeof(got));
        }
    }
    assert_int_equal(vf_hnsw_check(h), 0);
    vf_hnsw_free(h);
    free(model);
    free(present);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges_and_errors),
        cmocka_unit_test(test_recall_random_each_metric),
        cmocka_unit_test(test_recall_minilm),
        cmocka_unit_test(test_recall_words50k),
        cmocka_unit_test(test_delete_never_returned_and_slot_reused),
        cmocka_unit_test(test_update_moves_vector),
        cmocka_unit_test(test_batch_updates_last_row_wins),
        cmocka_unit_test(test_tune_ef_reaches_target),
        cmocka_unit_test(test_recall_lower_bound),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_rejects_damage),
        cmocka_unit_test(test_concurrent_search_insert_remove),
        cmocka_unit_test(test_concurrent_upper_claims),
        cmocka_unit_test(test_property_random_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
