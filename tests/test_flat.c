/*
 * test_flat.c — exact search (vf_flat_search, vf_flat_search_batch)
 * against a naive implementation in this file: score every row with
 * vf_distance, sort everything, take the first k.
 *
 * Covered: every metric on random data spanning several scan blocks, k = 1,
 * k > n, n = 0, zero rows under cosine, NaN rows, filters (no rejected id
 * is returned, the count is min(k, passing)), batch == single for 1, 2 and
 * "all" threads, output beyond the hit count left untouched, and -EINVAL
 * for every bad argument.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static float rand_value(void)
{
    return (float)(rng_next() >> 40) / (float)(1u << 24) * 2.0f - 1.0f;
}

static float *random_matrix(size_t rows, size_t dim)
{
    float *m = malloc(rows * dim * sizeof(float));
    assert_non_null(m);
    for (size_t i = 0; i < rows * dim; i++)
        m[i] = rand_value();
    return m;
}

static int cmp_hit(const void *pa, const void *pb)
{
    const vf_hit *a = pa, *b = pb;
    if (a->distance != b->distance)
        return a->distance < b->distance ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* The naive answer: all passing rows scored and sorted; returns the count. */
static size_t naive_search(const float *base, size_t n, size_t dim, vf_metric metric,
                           const float *q, const vf_filter *filter, vf_hit *all)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (filter != NULL && !filter->accept(filter->ctx, (uint32_t)i))
            continue;
        float d = vf_distance(metric, q, base + i * dim, dim);
        all[m].id = (uint32_t)i;
        all[m].distance = isnan(d) ? INFINITY : d;
        m++;
    }
    qsort(all, m, sizeof(*all), cmp_hit);
    return m;
}

/* Checks one result list against the naive answer. Ties may come out in
 * another order, so distances are compared position by position and each
 * returned id must carry its own true distance, pass the filter and occur
 * once. */
static void check_result(const float *base, size_t n, size_t dim, vf_metric metric, const float *q,
                         size_t k, const vf_filter *filter, const vf_hit *got, size_t n_got)
{
    vf_hit *all = malloc((n + 1) * sizeof(*all));
    bool *seen = calloc(n + 1, sizeof(*seen));
    assert_non_null(all);
    assert_non_null(seen);
    size_t m = naive_search(base, n, dim, metric, q, filter, all);
    size_t want = k < m ? k : m;
    assert_int_equal(n_got, want);
    for (size_t i = 0; i < n_got; i++) {
        assert_true(got[i].id < n);
        assert_false(seen[got[i].id]);
        seen[got[i].id] = true;
        if (filter != NULL)
            assert_true(filter->accept(filter->ctx, got[i].id));
        float own = vf_distance(metric, q, base + (size_t)got[i].id * dim, dim);
        if (isnan(own))
            own = INFINITY;
        assert_true(got[i].distance == own);
        if (got[i].distance != all[i].distance)
            fail_msg("%s rank %zu: distance %.9g, naive %.9g", vf_metric_name(metric), i,
                     got[i].distance, all[i].distance);
        if (i > 0)
            assert_true(got[i - 1].distance <= got[i].distance);
    }
    free(all);
    free(seen);
}

static const vf_metric metrics[] = {VF_METRIC_L2, VF_METRIC_COSINE, VF_METRIC_DOT};

static void run_random(size_t n, size_t dim, size_t nq, const size_t *ks, size_t nk)
{
    float *base = random_matrix(n, dim);
    float *queries = random_matrix(nq, dim);
    /* A zero row: cosine distance 1 from everything. */
    memset(base + (n / 2) * dim, 0, dim * sizeof(float));
    for (size_t mi = 0; mi < 3; mi++) {
        for (size_t ki = 0; ki < nk; ki++) {
            size_t k = ks[ki];
            vf_hit *out = malloc(k * sizeof(*out));
            assert_non_null(out);
            for (size_t qi = 0; qi < nq; qi++) {
                size_t n_out = 12345;
                assert_int_equal(vf_flat_search(base, n, dim, metrics[mi], queries + qi * dim, k,
                                                NULL, out, &n_out),
                                 0);
                check_result(base, n, dim, metrics[mi], queries + qi * dim, k, NULL, out, n_out);
            }
            free(out);
        }
    }
    free(base);
    free(queries);
}

static void test_random_all_metrics(void **state)
{
    (void)state;
    const size_t ks[] = {1, 10, 100};
    /* dim 37: odd tails, 1024-row blocks, so 3000 rows span three blocks.
     * dim 128: 512-row blocks. */
    run_random(3000, 37, 8, ks, 3);
    run_random(1300, 128, 4, ks, 3);
}

static void test_k_larger_than_n(void **state)
{
    (void)state;
    const size_t ks[] = {51, 80, 1000};
    run_random(50, 9, 3, ks, 3);

    /* Hits past min(k, n) are not written. */
    float *base = random_matrix(5, 4);
    float q[4] = {0.1f, 0.2f, -0.3f, 0.4f};
    vf_hit out[8];
    for (size_t i = 0; i < 8; i++)
        out[i] = (vf_hit){.id = 777, .distance = -1.0f};
    size_t n_out = 0;
    assert_int_equal(vf_flat_search(base, 5, 4, VF_METRIC_L2, q, 8, NULL, out, &n_out), 0);
    assert_int_equal(n_out, 5);
    for (size_t i = 5; i < 8; i++)
        assert_int_equal(out[i].id, 777);
    free(base);
}

static void test_empty_base(void **state)
{
    (void)state;
    float q[3] = {1, 2, 3};
    vf_hit out[2];
    size_t n_out = 99;
    assert_int_equal(vf_flat_search(NULL, 0, 3, VF_METRIC_COSINE, q, 2, NULL, out, &n_out), 0);
    assert_int_equal(n_out, 0);
    size_t counts[2] = {7, 7};
    float qs[6] = {1, 2, 3, 4, 5, 6};
    vf_hit outs[4];
    assert_int_equal(
        vf_flat_search_batch(NULL, 0, 3, VF_METRIC_L2, qs, 2, 2, NULL, 2, outs, counts), 0);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 0);
}

static void test_nan_row_ranks_last(void **state)
{
    (void)state;
    float *base = random_matrix(20, 6);
    base[7 * 6 + 2] = NAN;
    float q[6] = {0.5f, -0.5f, 0.25f, 0, 1, -1};
    vf_hit out[20];
    size_t n_out = 0;
    for (size_t mi = 0; mi < 3; mi++) {
        assert_int_equal(vf_flat_search(base, 20, 6, metrics[mi], q, 20, NULL, out, &n_out), 0);
        assert_int_equal(n_out, 20);
        assert_int_equal(out[19].id, 7);
        assert_true(isinf(out[19].distance));
        check_result(base, 20, 6, metrics[mi], q, 20, NULL, out, n_out);
    }
    free(base);
}

typedef struct mod_filter {
    uint32_t mod;
    uint32_t rem;
    size_t limit; /* ids >= limit are rejected */
} mod_filter;

static bool accept_mod(void *ctx, uint32_t id)
{
    const mod_filter *f = ctx;
    return id < f->limit && id % f->mod == f->rem;
}

static void test_filters(void **state)
{
    (void)state;
    const size_t n = 2500, dim = 24, k = 10;
    float *base = random_matrix(n, dim);
    float *q = random_matrix(1, dim);
    vf_hit out[10];
    size_t n_out;
    const mod_filter cases[] = {
        {3, 1, SIZE_MAX},     /* a third passes */
        {97, 5, SIZE_MAX},    /* 26 pass */
        {1, 0, 4},            /* 4 pass: fewer than k */
        {2, 0, 0},            /* none pass */
        {500, 499, SIZE_MAX}, /* 5 pass, all in the last block */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        mod_filter f = cases[c];
        vf_filter filter = {.accept = accept_mod, .ctx = &f, .passing = VF_FILTER_UNKNOWN};
        for (size_t mi = 0; mi < 3; mi++) {
            assert_int_equal(vf_flat_search(base, n, dim, metrics[mi], q, k, &filter, out, &n_out),
                             0);
            check_result(base, n, dim, metrics[mi], q, k, &filter, out, n_out);
        }
    }
    /* Spot values of the counts. */
    mod_filter few = {1, 0, 4};
    vf_filter ff = {.accept = accept_mod, .ctx = &few, .passing = 4};
    assert_int_equal(vf_flat_search(base, n, dim, VF_METRIC_L2, q, k, &ff, out, &n_out), 0);
    assert_int_equal(n_out, 4);
    mod_filter none = {2, 0, 0};
    vf_filter fn = {.accept = accept_mod, .ctx = &none, .passing = 0};
    assert_int_equal(vf_flat_search(base, n, dim, VF_METRIC_L2, q, k, &fn, out, &n_out), 0);
    assert_int_equal(n_out, 0);
    free(base);
    free(q);
}

static void compare_batch(const float *base, size_t n, size_t dim, vf_metric metric,
                          const float *queries, size_t nq, size_t k, const vf_filter *filter,
                          unsigned threads)
{
    vf_hit *single = malloc(nq * k * sizeof(vf_hit));
    vf_hit *batch = malloc(nq * k * sizeof(vf_hit));
    size_t *n_single = malloc(nq * sizeof(size_t));
    size_t *n_batch = malloc(nq * sizeof(size_t));
    assert_true(single && batch && n_single && n_batch);
    memset(single, 0xA5, nq * k * sizeof(vf_hit));
    memset(batch, 0xA5, nq * k * sizeof(vf_hit));
    for (size_t i = 0; i < nq; i++)
        assert_int_equal(vf_flat_search(base, n, dim, metric, queries + i * dim, k, filter,
                                        single + i * k, &n_single[i]),
                         0);
    assert_int_equal(
        vf_flat_search_batch(base, n, dim, metric, queries, nq, k, filter, threads, batch, n_batch),
        0);
    for (size_t i = 0; i < nq; i++) {
        assert_int_equal(n_batch[i], n_single[i]);
        /* Exactly equal, ties included, and untouched beyond the count
         * (both buffers were filled with the same pattern). */
        assert_memory_equal(batch + i * k, single + i * k, k * sizeof(vf_hit));
    }
    free(single);
    free(batch);
    free(n_single);
    free(n_batch);
}

static void test_batch_equals_single(void **state)
{
    (void)state;
    const size_t n = 2100, dim = 33, nq = 29;
    float *base = random_matrix(n, dim);
    float *queries = random_matrix(nq, dim);
    /* Duplicate rows make exact ties. */
    memcpy(base + 10 * dim, base + 1500 * dim, dim * sizeof(float));
    memcpy(queries + 3 * dim, base + 10 * dim, dim * sizeof(float));
    mod_filter f = {4, 2, SIZE_MAX};
    vf_filter filter = {.accept = accept_mod, .ctx = &f, .passing = VF_FILTER_UNKNOWN};
    /* 1000 threads: more than queries and more than the engine starts. */
    const unsigned threads[] = {1, 2, 0, 1000};
    for (size_t mi = 0; mi < 3; mi++) {
        for (size_t t = 0; t < 4; t++) {
            compare_batch(base, n, dim, metrics[mi], queries, nq, 10, NULL, threads[t]);
            compare_batch(base, n, dim, metrics[mi], queries, nq, 1, &filter, threads[t]);
            compare_batch(base, 40, dim, metrics[mi], queries, nq, 64, NULL, threads[t]);
            compare_batch(base, n, dim, metrics[mi], queries, 1, 5, NULL, threads[t]);
        }
    }
    /* The batch answer is also right on its own. */
    vf_hit out[29 * 7];
    size_t counts[29];
    assert_int_equal(
        vf_flat_search_batch(base, n, dim, VF_METRIC_L2, queries, nq, 7, &filter, 2, out, counts),
        0);
    for (size_t i = 0; i < nq; i++)
        check_result(base, n, dim, VF_METRIC_L2, queries + i * dim, 7, &filter, out + i * 7,
                     counts[i]);
    free(base);
    free(queries);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    float base[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float q[4] = {1, 0, 0, 0};
    vf_hit out[4];
    size_t n_out, counts[2];
    vf_filter nofn = {.accept = NULL, .ctx = NULL, .passing = VF_FILTER_UNKNOWN};

    assert_int_equal(vf_flat_search(base, 2, 0, VF_METRIC_L2, q, 1, NULL, out, &n_out), -EINVAL);
    assert_int_equal(vf_flat_search(base, 2, VF_MAX_DIM + 1, VF_METRIC_L2, q, 1, NULL, out, &n_out),
                     -EINVAL);
    assert_int_equal(vf_flat_search(base, 2, 4, VF_METRIC_L2, q, 0, NULL, out, &n_out), -EINVAL);
    assert_int_equal(vf_flat_search(base, 2, 4, (vf_metric)3, q, 1, NULL, out, &n_out), -EINVAL);
    assert_int_equal(vf_flat_search(NULL, 2, 4, VF_METRIC_L2, q, 1, NULL, out, &n_out), -EINVAL);
    assert_int_equal(vf_flat_search(base, 2, 4, VF_METRIC_L2, NULL, 1, NULL, out, &n_out), -EINVAL);
    assert_int_equal(vf_flat_search(base, 2, 4, VF_METRIC_L2, q, 1, NULL, NULL, &n_out), -EINVAL);
    assert_int_equal(vf_flat_search(base, 2, 4, VF_METRIC_L2, q, 1, NULL, out, NULL), -EINVAL);
    assert_int_equal(vf_flat_search(base, 2, 4, VF_METRIC_L2, q, 1, &nofn, out, &n_out), -EINVAL);
    if (sizeof(size_t) > 4)
        assert_int_equal(
            vf_flat_search(base, (size_t)UINT32_MAX + 2, 4, VF_METRIC_L2, q, 1, NULL, out, &n_out),
            -EINVAL);

    assert_int_equal(vf_flat_search_batch(base, 2, 0, VF_METRIC_L2, q, 1, 1, NULL, 1, out, counts),
                     -EINVAL);
    assert_int_equal(vf_flat_search_batch(base, 2, 4, VF_METRIC_L2, q, 1, 0, NULL, 1, out, counts),
                     -EINVAL);
    assert_int_equal(vf_flat_search_batch(base, 2, 4, (vf_metric)-1, q, 1, 1, NULL, 1, out, counts),
                     -EINVAL);
    assert_int_equal(
        vf_flat_search_batch(base, 2, 4, VF_METRIC_L2, NULL, 1, 1, NULL, 1, out, counts), -EINVAL);
    assert_int_equal(vf_flat_search_batch(base, 2, 4, VF_METRIC_L2, q, 1, 1, NULL, 1, NULL, counts),
                     -EINVAL);
    assert_int_equal(vf_flat_search_batch(base, 2, 4, VF_METRIC_L2, q, 1, 1, NULL, 1, out, NULL),
                     -EINVAL);
    assert_int_equal(vf_flat_search_batch(base, 2, 4, VF_METRIC_L2, q, 1, 1, &nofn, 1, out, counts),
                     -EINVAL);
    /* nq x k does not fit in memory. */
    assert_int_equal(
        vf_flat_search_batch(base, 2, 4, VF_METRIC_L2, q, SIZE_MAX / 2, 4, NULL, 1, out, counts),
        -EINVAL);
    /* No queries: nothing to do. */
    assert_int_equal(
        vf_flat_search_batch(base, 2, 4, VF_METRIC_L2, NULL, 0, 1, NULL, 1, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_all_metrics),
        cmocka_unit_test(test_k_larger_than_n),
        cmocka_unit_test(test_empty_base),
        cmocka_unit_test(test_nan_row_ranks_last),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_invalid_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
