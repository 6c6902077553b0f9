/*
 * test_search_plan.c — the plan a search reports (st_search_opts.plan) is
 * the one that ran, and the store's counters (st_metrics plans_total,
 * index_plans_total) count it: per query, batches included.
 *
 * A collection over ST_EXACT_MAX vectors is searched through the index, so
 * the plan of a filtered query is the engine's (exact, walk or expand); a
 * filter passing 1 % and one passing half are asked, and the hits are
 * checked against the filter.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "store_testutil.h"

#define N 3000
#define DIM 8
#define K 10

/* A store with N vectors in "c": every 100th has user.grp = r, the odd
 * ones user.par = 1. */
static st_store *filled_store(char *dir, float (*vecs)[DIM])
{
    st_options o;
    tu_opts(&o);
    st_store *st = NULL;
    assert_int_equal(st_store_open(dir, &o, &st), 0);
    st_config cfg;
    st_config_default(&cfg);
    cfg.dim = DIM;
    cfg.metric = VF_METRIC_L2;
    assert_int_equal(st_coll_create(st, "c", NULL, &cfg), 0);
    st_batch *b;
    assert_int_equal(st_batch_begin(st, "c", &b), 0);
    uint64_t seed = 11;
    for (int i = 0; i < N; i++) {
        tu_vec(&seed, vecs[i], DIM);
        char name[16];
        snprintf(name, sizeof name, "v%d", i);
        const char *keys[] = {"user.par", "user.grp"};
        const void *vals[] = {i % 2 ? "1" : "0", "r"};
        size_t lens[] = {1, 1};
        assert_int_equal(st_batch_put(b, name, name, strlen(name), vecs[i], DIM, NULL, 0,
                                      i % 100 == 0 ? 2 : 1, keys, vals, lens),
                         0);
    }
    assert_int_equal(st_batch_commit(b), 0);
    return st;
}

/* Queries answered so far, by plan kind. */
static void plans_now(st_store *st, uint64_t out[ST_PLAN_KIND_COUNT], uint64_t *index_total)
{
    st_metrics m;
    assert_int_equal(st_store_metrics(st, &m), 0);
    memcpy(out, m.plans_total, sizeof m.plans_total);
    *index_total = m.index_plans_total[0] + m.index_plans_total[1] + m.index_plans_total[2];
}

/* One search with filter text (NULL: none); checks that its plan was
 * counted once, under its kind, and that the hits pass (every hit's
 * number i satisfies keep(i)). Returns the plan. */
static st_plan search_counted(st_store *st, const float *q, const char *text, bool (*keep)(int))
{
    st_filter *f = NULL;
    if (text)
        assert_int_equal(st_filter_parse(text, strlen(text), &f, NULL, 0), 0);
    uint64_t before[ST_PLAN_KIND_COUNT], after[ST_PLAN_KIND_COUNT], ib, ia;
    plans_now(st, before, &ib);
    st_plan plan;
    st_search_opts o = {.filter = f, .plan = &plan};
    st_hit hits[K];
    size_t n = 0;
    assert_int_equal(st_search_opt(st, "c", q, DIM, K, 0, &o, hits, &n), 0);
    assert_int_equal(n, K);
    for (size_t j = 0; j < n; j++)
        assert_true(keep(atoi(hits[j].name + 1)));
    plans_now(st, after, &ia);
    for (int k = 0; k < ST_PLAN_KIND_COUNT; k++)
        assert_int_equal(after[k] - before[k], k == (int)plan.kind ? 1 : 0);
    /* The engine counts filtered index searches only. */
    if (text)
        assert_true(ia > ib);
    else
        assert_int_equal(ia, ib);
    assert_int_equal(plan.count, N);
    assert_int_equal(plan.filtered, text != NULL);
    st_filter_free(f);
    return plan;
}

static bool rare(int i)
{
    return i % 100 == 0;
}

static bool odd(int i)
{
    return i % 2 == 1;
}

static bool any(int i)
{
    (void)i;
    return true;
}

static void test_single_plans(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    static float vecs[N][DIM];
    st_store *st = filled_store(dir, vecs);
    st_plan p = search_counted(st, vecs[5], "grp = r", rare);
    assert_int_equal(p.passing, N / 100);
    assert_true(p.kind == ST_PLAN_EXACT || p.kind == ST_PLAN_WALK || p.kind == ST_PLAN_EXPAND);
    p = search_counted(st, vecs[5], "par = 1", odd);
    assert_int_equal(p.passing, N / 2);
    assert_true(p.kind == ST_PLAN_EXACT || p.kind == ST_PLAN_WALK || p.kind == ST_PLAN_EXPAND);
    /* Unfiltered, ef 0 (the config's, below N): a walk. */
    p = search_counted(st, vecs[5], NULL, any);
    assert_int_equal(p.kind, ST_PLAN_WALK);
    assert_false(p.redone);
    st_store_close(st);
    tu_rmdir(dir);
}

static int count_rows(void *ctx, unsigned worker, size_t query, const st_hit *hits, size_t n)
{
    (void)worker;
    (void)query;
    for (size_t j = 0; j < n; j++)
        if (!rare(atoi(hits[j].name + 1)))
            return -EIO;
    *(size_t *)ctx += n == K;
    return 0;
}

/* A batch counts each of its queries under the plan it ran, and writes
 * that plan to o.plans[query]; the plan it hands back is query 0's. */
static void test_batch_plans(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    static float vecs[N][DIM];
    st_store *st = filled_store(dir, vecs);
    st_filter *f = NULL;
    assert_int_equal(st_filter_parse("grp = r", 7, &f, NULL, 0), 0);
    uint64_t before[ST_PLAN_KIND_COUNT], after[ST_PLAN_KIND_COUNT], ib, ia;
    plans_now(st, before, &ib);
    st_plan plan, plans[7];
    for (size_t i = 0; i < 7; i++)
        plans[i] = (st_plan){.kind = ST_PLAN_KIND_COUNT};
    st_search_opts o = {.filter = f, .plan = &plan, .plans = plans};
    size_t full = 0;
    assert_int_equal(
        st_search_batch_opt(st, "c", &vecs[0][0], 7, DIM, K, 0, &o, 2, count_rows, &full), 0);
    assert_int_equal(full, 7);
    plans_now(st, after, &ia);
    uint64_t total = 0;
    for (int k = 0; k < ST_PLAN_KIND_COUNT; k++)
        total += after[k] - before[k];
    assert_int_equal(total, 7);
    assert_true(after[plan.kind] > before[plan.kind]);
    uint64_t named[ST_PLAN_KIND_COUNT] = {0};
    for (size_t i = 0; i < 7; i++) {
        assert_true(plans[i].kind < ST_PLAN_KIND_COUNT);
        assert_true(plans[i].filtered);
        assert_int_equal(plans[i].passing, plans[0].passing);
        named[plans[i].kind]++;
    }
    assert_int_equal(plan.kind, plans[0].kind);
    assert_int_equal(plan.redone, plans[0].redone);
    assert_int_equal(plan.count, plans[0].count);
    for (int k = 0; k < ST_PLAN_KIND_COUNT; k++)
        assert_int_equal(named[k], after[k] - before[k]);
    assert_true(ia - ib >= 7);
    st_filter_free(f);
    st_store_close(st);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_plans),
        cmocka_unit_test(test_batch_plans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
