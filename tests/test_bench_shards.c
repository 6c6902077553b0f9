/*
 * test_bench_shards.c — the shard set of vecfs-bench-shards (bench/shards.c,
 * bench/kmeans.c) on small seeded random sets, so that the simulation's
 * figures can be trusted:
 *
 *   - S = 1 is the single index: built on one thread from the same rows
 *     with the same parameters, its fanned-out answers are the single
 *     index's, id for id and distance for distance, under every metric
 *     and at several ef;
 *   - every row is in exactly one shard, in ascending order (hash and
 *     k-means);
 *   - a hash-sharded fan-out over S = 4 shards, each searched at the same
 *     ef, has a recall@10 no lower than the single index's minus
 *     RECALL_SLACK (each shard is a quarter of the graph searched with the
 *     same ef; the slack absorbs the noise of 200 queries);
 *   - k-means with P = S probes is bound the same way; with P = 1 every
 *     hit comes from the query's nearest centroid's shard;
 *   - the merge returns sorted, distinct ids; a set with shards that hold
 *     nothing still answers (exactly, when k covers the base).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "recall.h"
#include "shards.h"

#define DIM 16
#define K 10
#define NQ 200
#define RECALL_SLACK 0.02

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float rand_value(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)(rng_state >> 40) / (float)(1u << 24) * 2.0f - 1.0f;
}

static bench_matrix random_matrix(size_t n)
{
    bench_matrix m = {malloc(n * DIM * sizeof(float)), n, DIM};
    float *v = m.data;

    assert_non_null(v);
    for (size_t i = 0; i < n * DIM; i++)
        v[i] = rand_value();
    return m;
}

static bench_shard_config config(size_t shards, bench_assign assign, vf_metric metric)
{
    bench_shard_config c = {.shards = shards,
                            .assign = assign,
                            .build_threads = 1,
                            .kmeans_sample = 2000,
                            .kmeans_iterations = 10,
                            .seed = 3};

    vf_hnsw_params_default(&c.params, DIM);
    c.params.metric = metric;
    return c;
}

/* Fans every query out at ef (with `probes`) and returns recall@K by id
 * against truth; checks each result is sorted and distinct. */
static double fanout_recall(const bench_shards *s, const bench_matrix *q, const bench_truth *truth,
                            size_t ef, size_t probes)
{
    bench_fanout f = BENCH_FANOUT_INIT;
    uint32_t *ids = malloc(q->n * K * sizeof(*ids));
    size_t *counts = malloc(q->n * sizeof(*counts));
    bench_score score;

    assert_non_null(ids);
    assert_non_null(counts);
    assert_int_equal(bench_fanout_init(&f, s, K), 0);
    for (size_t i = 0; i < q->n; i++) {
        vf_hit hits[K];
        assert_int_equal(bench_shards_search(s, &f, (const float *)q->data + i * DIM, K, ef, probes,
                                             hits, &counts[i], NULL, NULL),
                         0);
        assert_int_equal(counts[i], K);
        for (size_t j = 0; j < counts[i]; j++) {
            ids[i * K + j] = hits[j].id;
            if (j > 0)
                assert_true(hits[j - 1].distance <= hits[j].distance);
            for (size_t l = 0; l < j; l++)
                assert_int_not_equal(hits[l].id, hits[j].id);
        }
    }
    bench_truth_score(truth, q->n, ids, K, counts, &score);
    bench_fanout_release(&f);
    free(counts);
    free(ids);
    return score.recall_id;
}

/* Invariant 1 of shards.c: sizes add up to n, each shard's rows ascend,
 * no row twice. */
static void check_partition(const bench_shards *s, size_t n)
{
    unsigned char *seen = calloc(n, 1);
    size_t total = 0;

    assert_non_null(seen);
    for (size_t i = 0; i < s->count; i++) {
        total += s->size[i];
        assert_int_equal(vf_hnsw_count(s->index[i]), s->size[i]);
        for (size_t j = 0; j < s->size[i]; j++) {
            uint32_t row = s->global[i][j];
            assert_true(row < n);
            assert_false(seen[row]);
            seen[row] = 1;
            if (j > 0)
                assert_true(s->global[i][j - 1] < row);
        }
    }
    assert_int_equal(total, n);
    free(seen);
}

static void test_single_shard_is_the_single_index(void **state)
{
    const vf_metric metrics[] = {VF_METRIC_L2, VF_METRIC_COSINE, VF_METRIC_DOT};
    bench_matrix base = random_matrix(2000), q = random_matrix(50);

    (void)state;
    for (size_t m = 0; m < 3; m++) {
        bench_shard_config c = config(1, BENCH_ASSIGN_HASH, metrics[m]);
        bench_shards s = BENCH_SHARDS_INIT;
        bench_fanout f = BENCH_FANOUT_INIT;
        vf_hnsw *single = NULL;

        assert_int_equal(vf_hnsw_create(&c.params, &single), 0);
        assert_int_equal(vf_hnsw_insert_batch(single, NULL, 0, base.data, base.n, 1), 0);
        assert_int_equal(bench_shards_build(&s, &base, &c), 0);
        check_partition(&s, base.n);
        assert_int_equal(bench_fanout_init(&f, &s, K), 0);
        for (size_t ef = 10; ef <= 40; ef *= 2) {
            for (size_t i = 0; i < q.n; i++) {
                const float *v = (const float *)q.data + i * DIM;
                vf_hit want[K], got[K];
                size_t n_want, n_got;
                bench_fanout_cost cost;
                double shard_s[1];
                assert_int_equal(vf_hnsw_search(single, v, K, ef, NULL, want, &n_want), 0);
                assert_int_equal(
                    bench_shards_search(&s, &f, v, K, ef, 1, got, &n_got, shard_s, &cost), 0);
                assert_int_equal(n_got, n_want);
                assert_memory_equal(got, want, n_want * sizeof(vf_hit));
                assert_int_equal(cost.probed, 1);
                assert_true(shard_s[0] > 0 && cost.slowest_seconds == shard_s[0]);
            }
        }
        bench_fanout_release(&f);
        bench_shards_release(&s);
        vf_hnsw_free(single);
    }
    bench_matrix_release(&q);
    bench_matrix_release(&base);
}

static void test_sharded_recall_within_slack_of_single(void **state)
{
    bench_matrix base = random_matrix(3000), q = random_matrix(NQ);
    bench_shards single = BENCH_SHARDS_INIT, hash = BENCH_SHARDS_INIT, km = BENCH_SHARDS_INIT;
    bench_shard_config c1 = config(1, BENCH_ASSIGN_HASH, VF_METRIC_L2);
    bench_shard_config ch = config(4, BENCH_ASSIGN_HASH, VF_METRIC_L2);
    bench_shard_config ck = config(4, BENCH_ASSIGN_KMEANS, VF_METRIC_L2);
    bench_truth truth = BENCH_TRUTH_INIT;
    int32_t *gt;

    (void)state;
    assert_int_equal(bench_truth_exact(&base, &q, VF_METRIC_L2, K, &gt), 0);
    assert_int_equal(bench_truth_init(&truth, &base, &q, VF_METRIC_L2, gt, K, K), 0);
    assert_int_equal(bench_shards_build(&single, &base, &c1), 0);
    assert_int_equal(bench_shards_build(&hash, &base, &ch), 0);
    assert_int_equal(bench_shards_build(&km, &base, &ck), 0);
    check_partition(&hash, base.n);
    check_partition(&km, base.n);
    for (size_t i = 0; i < 4; i++) /* a hash of the name spreads rows evenly */
        assert_true(hash.size[i] > base.n / 4 * 9 / 10 && hash.size[i] < base.n / 4 * 11 / 10);
    for (size_t ef = 10; ef <= 40; ef *= 2) {
        double one = fanout_recall(&single, &q, &truth, ef, 1);
        double h = fanout_recall(&hash, &q, &truth, ef, 4);
        double k4 = fanout_recall(&km, &q, &truth, ef, 4);
        print_message("ef %zu: single %.4f, hash S=4 %.4f, kmeans S=4 P=4 %.4f\n", ef, one, h, k4);
        assert_true(h >= one - RECALL_SLACK);
        assert_true(k4 >= one - RECALL_SLACK);
    }
    bench_truth_release(&truth);
    free(gt);
    bench_shards_release(&km);
    bench_shards_release(&hash);
    bench_shards_release(&single);
    bench_matrix_release(&q);
    bench_matrix_release(&base);
}

static void test_one_probe_stays_in_the_nearest_shard(void **state)
{
    bench_matrix base = random_matrix(2000), q = random_matrix(50);
    bench_shard_config c = config(4, BENCH_ASSIGN_KMEANS, VF_METRIC_COSINE);
    bench_shards s = BENCH_SHARDS_INIT;
    bench_fanout f = BENCH_FANOUT_INIT;
    uint32_t *shard_of = malloc(base.n * sizeof(*shard_of));

    (void)state;
    assert_non_null(shard_of);
    assert_int_equal(bench_shards_build(&s, &base, &c), 0);
    assert_int_equal(bench_fanout_init(&f, &s, K), 0);
    for (size_t i = 0; i < s.count; i++)
        for (size_t j = 0; j < s.size[i]; j++)
            shard_of[s.global[i][j]] = (uint32_t)i;
    for (size_t r = 0; r < base.n; r += 97) /* a row is in its nearest centroid's shard */
        assert_int_equal(shard_of[r],
                         bench_kmeans_nearest(&s.km, (const float *)base.data + r * DIM));
    for (size_t i = 0; i < q.n; i++) {
        const float *v = (const float *)q.data + i * DIM;
        size_t nearest = bench_kmeans_nearest(&s.km, v), n;
        vf_hit hits[K];
        bench_fanout_cost cost;
        double shard_s[4];
        assert_int_equal(bench_shards_search(&s, &f, v, K, 20, 1, hits, &n, shard_s, &cost), 0);
        assert_int_equal(cost.probed, 1);
        for (size_t j = 0; j < 4; j++)
            assert_true((shard_s[j] > 0) == (j == nearest));
        for (size_t j = 0; j < n; j++)
            assert_int_equal(shard_of[hits[j].id], nearest);
    }
    bench_fanout_release(&f);
    bench_shards_release(&s);
    free(shard_of);
    bench_matrix_release(&q);
    bench_matrix_release(&base);
}

static void test_empty_shards_still_answer(void **state)
{
    bench_matrix base = random_matrix(6), q = random_matrix(5);
    bench_shard_config c = config(6, BENCH_ASSIGN_HASH, VF_METRIC_L2);
    bench_shards s = BENCH_SHARDS_INIT;
    bench_fanout f = BENCH_FANOUT_INIT;
    size_t empty = 0;

    (void)state;
    assert_int_equal(bench_shards_build(&s, &base, &c), 0);
    check_partition(&s, base.n);
    for (size_t i = 0; i < s.count; i++)
        empty += s.size[i] == 0;
    assert_true(empty > 0); /* six names into six shards collide */
    assert_int_equal(bench_fanout_init(&f, &s, 6), 0);
    for (size_t i = 0; i < q.n; i++) {
        const float *v = (const float *)q.data + i * DIM;
        vf_hit want[6], got[6];
        size_t n_want, n_got;
        assert_int_equal(
            vf_flat_search(base.data, base.n, DIM, VF_METRIC_L2, v, 6, NULL, want, &n_want), 0);
        assert_int_equal(bench_shards_search(&s, &f, v, 6, 10, 6, got, &n_got, NULL, NULL), 0);
        assert_int_equal(n_got, n_want);
        for (size_t j = 0; j < n_got; j++)
            assert_int_equal(got[j].id, want[j].id);
    }
    { /* more results than the scratch was made for */
        vf_hit seven[7];
        size_t n;
        assert_int_equal(
            bench_shards_search(&s, &f, (const float *)q.data, 7, 10, 6, seven, &n, NULL, NULL),
            -EINVAL);
    }
    bench_fanout_release(&f);
    bench_shards_release(&s);
    bench_matrix_release(&q);
    bench_matrix_release(&base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_shard_is_the_single_index),
        cmocka_unit_test(test_sharded_recall_within_slack_of_single),
        cmocka_unit_test(test_one_probe_stays_in_the_nearest_shard),
        cmocka_unit_test(test_empty_shards_still_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
