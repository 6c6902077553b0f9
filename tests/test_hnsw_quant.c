/*
 * test_hnsw_quant.c — int8 quantization in the index (the codec alone:
 * test_quantizer.c): recall of int8 + exact rerank against exact search on real
 * data (words50k in $VECFS_DATA_DIR, skipped when absent), drift detected
 * and repaired by a re-learn, snapshots of both kinds (an INT8 one without
 * a source, a NONE one fed by a source, a version-1 one still read),
 * INT8 code records in their disk form, crafted INT8 snapshots rejected, and searches racing
 * inserts on an INT8 index (this file is in the ThreadSanitizer list of scripts/test.sh).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
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

static float *random_matrix(size_t n, size_t dim, float shift)
{
    float *m = malloc(n * dim * sizeof(float));
    assert_non_null(m);
    for (size_t i = 0; i < n * dim; i++)
        m[i] = rng_float() + shift;
    return m;
}

static vf_hnsw *make_index(size_t dim, vf_metric metric, vf_quant_kind q, uint32_t efc)
{
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, (uint32_t)dim);
    p.metric = metric;
    p.ef_construction = efc;
    p.quantization = q;
    vf_hnsw *h = NULL;
    assert_int_equal(vf_hnsw_create(&p, &h), 0);
    return h;
}

/* Mean recall@K of rerank searches (src) at ef over nq queries against
 * exact search over the n base rows. */
static double recall_rerank(const vf_hnsw *h, const float *base, size_t n, const float *queries,
                            size_t nq, size_t dim, vf_metric metric, size_t ef, uint32_t rerank,
                            const vf_vec_source *src)
{
    size_t hits = 0;
    vf_hit truth[K], got[K];
    for (size_t q = 0; q < nq; q++) {
        size_t nt, ng;
        const float *qv = queries + q * dim;
        assert_int_equal(vf_flat_search(base, n, dim, metric, qv, K, NULL, truth, &nt), 0);
        assert_int_equal(vf_hnsw_search_rerank(h, qv, K, ef, rerank, NULL, src, got, &ng), 0);
        for (size_t a = 0; a < nt; a++)
            for (size_t b = 0; b < ng; b++)
                if (got[b].id == truth[a].id) {
                    hits++;
                    break;
                }
    }
    return (double)hits / (double)(nq * K);
}

/* ------------------------------------------------------------------ */
/* Parameters                                                           */
/* ------------------------------------------------------------------ */

static void test_params_and_parse(void **state)
{
    (void)state;
    vf_quant_kind k;
    assert_int_equal(vf_quant_parse("int8", &k), 0);
    assert_int_equal(k, VF_QUANT_INT8);
    assert_int_equal(vf_quant_parse("none", &k), 0);
    assert_int_equal(k, VF_QUANT_NONE);
    assert_int_equal(vf_quant_parse("int4", &k), -EINVAL);
    assert_string_equal(vf_quant_name(VF_QUANT_INT8), "int8");
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, 8);
    assert_int_equal(p.quantization, VF_QUANT_NONE);
    assert_int_equal(p.rerank, VF_RERANK_DEFAULT);
    vf_hnsw *h = NULL;
    p.quantization = 5;
    assert_int_equal(vf_hnsw_create(&p, &h), -EINVAL);
    p.quantization = VF_QUANT_INT8;
    p.rerank = VF_RERANK_MAX + 1;
    assert_int_equal(vf_hnsw_create(&p, &h), -EINVAL);
    p.rerank = 0; /* the default */
    assert_int_equal(vf_hnsw_create(&p, &h), 0);
    vf_hnsw_params got;
    vf_hnsw_params_get(h, &got);
    assert_int_equal(got.rerank, VF_RERANK_DEFAULT);
    /* Untrained: no vector, no hit; explicit training then. */
    float q[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    vf_hit hits[K];
    size_t nh = 99;
    assert_int_equal(vf_hnsw_search(h, q, K, 0, NULL, hits, &nh), 0);
    assert_int_equal(nh, 0);
    assert_int_equal(vf_hnsw_search_rerank(h, q, K, 0, VF_RERANK_MAX + 1, NULL, NULL, hits, &nh),
                     -EINVAL);
    rng_state = 3;
    float *train = random_matrix(500, 8, 0.0f);
    assert_int_equal(vf_hnsw_quant_train(h, train, 500), 0);
    assert_int_equal(vf_hnsw_quant_train(h, train, 500), -EEXIST);
    vf_quant_stats st;
    vf_hnsw_quant_stats(h, &st);
    assert_int_equal(st.kind, VF_QUANT_INT8);
    assert_int_equal(st.trained_on, 500);
    assert_false(st.drifted);
    vf_hnsw_free(h);
    free(train);
}

/* ------------------------------------------------------------------ */
/* Recall on real data                                                  */
/* ------------------------------------------------------------------ */

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

/* words50k, cosine, m 16, efc 100: int8 with rerank against exact search
 * over the originals. Floor 0.95 at ef 160 and the default rerank (0.97
 * measured; docs/performance.md). */
static void test_recall_words50k_int8(void **state)
{
    (void)state;
    if (getenv("VECFS_TEST_SKIP_LARGE"))
        skip();
    bench_matrix base = BENCH_MATRIX_INIT, queries = BENCH_MATRIX_INIT;
    if (load_fvecs("words50k-base.fvecs", &base) != 0 ||
        load_fvecs("words50k-queries.fvecs", &queries) != 0) {
        bench_matrix_release(&base);
        skip();
    }
    const float *b = (const float *)base.data, *q = (const float *)queries.data;
    vf_hnsw *h = make_index(base.dim, VF_METRIC_COSINE, VF_QUANT_INT8, 100);
    assert_int_equal(vf_hnsw_insert_batch(h, NULL, 0, b, base.n, 0), 0);
    array_source rows;
    vf_vec_source src = array_source_of(&rows, b, base.n, base.dim);
    size_t nq = queries.n < 500 ? queries.n : 500;
    double r = recall_rerank(h, b, base.n, q, nq, base.dim, VF_METRIC_COSINE, 160, 0, &src);
    double codes = recall_rerank(h, b, base.n, q, nq, base.dim, VF_METRIC_COSINE, 160, 0, NULL);
    print_message("words50k int8: recall@10 %.4f with rerank, %.4f on codes alone (ef 160)\n", r,
                  codes);
    assert_true(r >= 0.95);
    assert_true(r > codes);
    vf_hnsw_free(h);
    bench_matrix_release(&base);
    bench_matrix_release(&queries);
}

/* ------------------------------------------------------------------ */
/* Drift                                                                */
/* ------------------------------------------------------------------ */

static void test_drift_detected_and_relearned(void **state)
{
    (void)state;
    const size_t n = 3000, dim = 16, nq = 200;
    rng_state = 11;
    /* The first half around 0, the second shifted far outside its range. */
    float *all = malloc(2 * n * dim * sizeof(float));
    assert_non_null(all);
    float *first = random_matrix(n, dim, 0.0f), *second = random_matrix(n, dim, 6.0f);
    memcpy(all, first, n * dim * sizeof(float));
    memcpy(all + n * dim, second, n * dim * sizeof(float));
    float *queries = random_matrix(nq, dim, 6.0f);
    array_source rows;
    vf_vec_source src = array_source_of(&rows, all, 2 * n, dim);

    vf_hnsw *h = make_index(dim, VF_METRIC_L2, VF_QUANT_INT8, 100);
    assert_int_equal(vf_hnsw_insert_batch(h, NULL, 0, all, n, 1), 0);
    vf_quant_stats st;
    vf_hnsw_quant_stats(h, &st);
    assert_int_equal(st.trained_on, n);
    assert_false(st.drifted);
    for (size_t i = n; i < 2 * n; i++)
        assert_int_equal(vf_hnsw_insert(h, (uint32_t)i, all + i * dim), 0);
    vf_hnsw_quant_stats(h, &st);
    print_message("drift: clipped %.4f at training, %.4f recent; error %.5f, %.5f recent\n",
                  st.train_clip_share, st.recent_clip_share, st.train_error, st.recent_error);
    assert_true(st.drifted);
    assert_true(st.recent_clip_share > 0.5);

    /* On codes alone (rerank 1 keeps the walk's ranking), the shifted
     * vectors all look alike. */
    double drifted = recall_rerank(h, all, 2 * n, queries, nq, dim, VF_METRIC_L2, 64, 1, NULL);
    assert_int_equal(vf_hnsw_quant_relearn(h, &src), 0);
    vf_hnsw_quant_stats(h, &st);
    assert_false(st.drifted);
    assert_int_equal(st.relearns, 1);
    assert_int_equal(st.trained_on, 2 * n);
    assert_int_equal(vf_hnsw_check(h), 0);
    assert_int_equal(vf_hnsw_unreachable(h), 0);
    double relearned = recall_rerank(h, all, 2 * n, queries, nq, dim, VF_METRIC_L2, 64, 1, NULL);
    double reranked = recall_rerank(h, all, 2 * n, queries, nq, dim, VF_METRIC_L2, 64, 4, &src);
    print_message("drift: codes-only recall@10 %.4f drifted, %.4f re-learned, %.4f re-learned "
                  "with rerank\n",
                  drifted, relearned, reranked);
    assert_true(relearned > drifted + 0.2);
    assert_true(reranked >= 0.95);
    vf_hnsw_free(h);
    free(all);
    free(first);
    free(second);
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
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, len);
    b->len += len;
    return 0;
}

static void assert_same_hits(const vf_hnsw *a, const vf_hnsw *b, const float *queries, size_t nq,
                             size_t dim, const vf_vec_source *src)
{
    for (size_t q = 0; q < nq; q++) {
        vf_hit ha[K], hb[K];
        size_t na, nb;
        assert_int_equal(vf_hnsw_search_rerank(a, queries + q * dim, K, 0, 0, NULL, src, ha, &na),
                         0);
        assert_int_equal(vf_hnsw_search_rerank(b, queries + q * dim, K, 0, 0, NULL, src, hb, &nb),
                         0);
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++) {
            assert_int_equal(ha[i].id, hb[i].id);
            assert_true(ha[i].distance == hb[i].distance);
        }
    }
}

static void reseal(uint8_t *b, size_t len)
{
    uint32_t crc = vc_crc32c(0, b, len - 4);
    memcpy(b + len - 4, &crc, 4);
}

/* vf_hnsw_as_stored of an inserted original reads back exactly as the
 * stored vector (what vecfs check compares), for every metric and both
 * kinds, and another row's original does not. */
static void test_as_stored_matches_get(void **state)
{
    (void)state;
    const size_t n = 300, dim = 12;
    const vf_metric metrics[] = {VF_METRIC_L2, VF_METRIC_COSINE, VF_METRIC_DOT};
    const vf_quant_kind kinds[] = {VF_QUANT_NONE, VF_QUANT_INT8};
    float got[12], want[12];
    rng_state = 33;
    float *base = random_matrix(n, dim, 0.25f);
    for (size_t m = 0; m < 3; m++)
        for (size_t k = 0; k < 2; k++) {
            vf_hnsw *h = make_index(dim, metrics[m], kinds[k], 40);
            assert_int_equal(vf_hnsw_insert_batch(h, NULL, 0, base, n, 1), 0);
            for (uint32_t i = 0; i < n; i++) {
                assert_int_equal(vf_hnsw_get(h, i, got), 0);
                memcpy(want, base + i * dim, sizeof(want));
                assert_int_equal(vf_hnsw_as_stored(h, want, want), 0);
                assert_memory_equal(got, want, sizeof(got));
            }
            /* Another row's original is not this row's record. */
            assert_int_equal(vf_hnsw_get(h, 0, got), 0);
            assert_int_equal(vf_hnsw_as_stored(h, base + dim, want), 0);
            assert_memory_not_equal(got, want, sizeof(got));
            assert_int_equal(vf_hnsw_as_stored(NULL, want, want), -EINVAL);
            vf_hnsw_free(h);
        }
    free(base);
}

static void test_snapshot_int8_round_trip_and_crafts(void **state)
{
    (void)state;
    const size_t n = 2000, dim = 10, nq = 50;
    rng_state = 21;
    float *base = random_matrix(n, dim, 0.0f), *queries = random_matrix(nq, dim, 0.0f);
    array_source rows;
    vf_vec_source src = array_source_of(&rows, base, n, dim);
    vf_hnsw *h = make_index(dim, VF_METRIC_DOT, VF_QUANT_INT8, 100);
    assert_int_equal(vf_hnsw_insert_batch(h, NULL, 0, base, n, 1), 0);
    for (uint32_t i = 0; i < n; i += 9)
        assert_int_equal(vf_hnsw_remove(h, i), 0);
    membuf buf = {0};
    assert_int_equal(vf_hnsw_serialize(h, membuf_write, &buf), 0);
    /* Graph, quantizer and codes; no float vectors: under a float index's
     * vectors alone. */
    assert_true(buf.len < n * dim * sizeof(float) + n * 4 * (1 + 32));
    vf_hnsw *back = NULL;
    assert_int_equal(vf_hnsw_deserialize(buf.data, buf.len, NULL, &back), 0);
    assert_int_equal(vf_hnsw_check(back), 0);
    assert_int_equal(vf_hnsw_count(back), vf_hnsw_count(h));
    vf_quant_stats sa, sb;
    vf_hnsw_quant_stats(h, &sa);
    vf_hnsw_quant_stats(back, &sb);
    assert_int_equal(sb.kind, VF_QUANT_INT8);
    assert_true(sa.scale == sb.scale && sa.trained_on == sb.trained_on);
    assert_same_hits(h, back, queries, nq, dim, &src);
    assert_same_hits(h, back, queries, nq, dim, NULL);

    /* Crafted but sealed: a zero, negative or NaN scale, an untrained
     * quantizer with slots, a NaN offset, a NaN code correction. */
    const size_t header = 120, pad = (4 - (2 * n) % 4) % 4;
    const size_t offsets = header + 2 * n + pad + n * 4 * (1 + 32);
    const size_t codes = offsets + dim * 4, rec = 12 + 4;
    const uint32_t nan_bits = 0x7FC00000u, neg = 0xBF800000u, zero = 0;
    struct {
        size_t at;
        uint32_t value;
    } crafts[] = {
        {96, zero},
        {96, neg},
        {96, nan_bits},
        {112, zero},
        {116, 0},
        {offsets + 4, nan_bits},
        {codes + rec * 3 + 12, nan_bits},
    };
    uint8_t *copy = malloc(buf.len);
    assert_non_null(copy);
    for (size_t c = 0; c < sizeof(crafts) / sizeof(crafts[0]); c++) {
        memcpy(copy, buf.data, buf.len);
        if (crafts[c].at == 116) /* trained_on = 0 (both words) */
            memset(copy + 112, 0, 8);
        else
            memcpy(copy + crafts[c].at, &crafts[c].value, 4);
        reseal(copy, buf.len);
        vf_hnsw *out = (vf_hnsw *)&out;
        assert_int_equal(vf_hnsw_deserialize(copy, buf.len, NULL, &out), -EILSEQ);
        assert_null(out);
    }
    /* The level-0 lists an INT8 index packs in memory: a count over m0, a
     * link past the slots, a repeated link, a link to itself. */
    const size_t lists = header + 2 * n + pad, one = lists + 4 * (1 + 32);
    uint32_t count1;
    memcpy(&count1, buf.data + one, 4);
    assert_true(count1 >= 2);
    uint32_t first;
    memcpy(&first, buf.data + one + 4, 4);
    struct {
        size_t at;
        uint32_t value;
    } list_crafts[] = {
        {one, 33},
        {one + 4, (uint32_t)n},
        {one + 8, first},
        {one + 4, 1},
    };
    for (size_t c = 0; c < sizeof(list_crafts) / sizeof(list_crafts[0]); c++) {
        memcpy(copy, buf.data, buf.len);
        memcpy(copy + list_crafts[c].at, &list_crafts[c].value, 4);
        reseal(copy, buf.len);
        vf_hnsw *out = (vf_hnsw *)&out;
        assert_int_equal(vf_hnsw_deserialize(copy, buf.len, NULL, &out), -EILSEQ);
        assert_null(out);
    }
    /* Packed lists come back as the same u32 lists: a reloaded index
     * writes the same bytes. */
    membuf again = {0};
    assert_int_equal(vf_hnsw_serialize(back, membuf_write, &again), 0);
    assert_int_equal(again.len, buf.len);
    assert_memory_equal(again.data, buf.data, buf.len);
    free(again.data);
    for (size_t len = 0; len < buf.len; len += 97) {
        vf_hnsw *out = NULL;
        assert_int_equal(vf_hnsw_deserialize(buf.data, len, NULL, &out), -EILSEQ);
    }
    free(copy);
    free(buf.data);
    vf_hnsw_free(back);
    vf_hnsw_free(h);
    free(base);
    free(queries);
}

/* An INT8 snapshot's code records keep their disk form (u8 codes, zero
 * pad to 4, the f32 a_x = s * sum o_i c_i of the codes; memory keeps a u16
 * instead) for a cosine and a dot index: a reloaded index writes the same
 * bytes, and a NaN a_x in a used slot is rejected. */
static void test_snapshot_int8_disk_records(void **state)
{
    (void)state;
    const size_t n = 1200, dim = 13, nq = 30; /* dim 13: 3 bytes of pad */
    const vf_metric metrics[] = {VF_METRIC_COSINE, VF_METRIC_DOT};
    for (size_t m = 0; m < 2; m++) {
        rng_state = 61 + m;
        float *base = random_matrix(n, dim, 0.2f), *queries = random_matrix(nq, dim, 0.2f);
        vf_hnsw *h = make_index(dim, metrics[m], VF_QUANT_INT8, 40);
        assert_int_equal(vf_hnsw_insert_batch(h, NULL, 0, base, n, 1), 0);
        for (uint32_t i = 0; i < n; i += 7)
            assert_int_equal(vf_hnsw_remove(h, i), 0);
        membuf buf = {0};
        assert_int_equal(vf_hnsw_serialize(h, membuf_write, &buf), 0);
        const size_t pad = (4 - (2 * n) % 4) % 4;
        const size_t offsets = 120 + 2 * n + pad + n * 4 * (1 + 32);
        const size_t codes = offsets + dim * 4, rec = 16 + 4;
        assert_int_equal(buf.len % 4, 0);
        float scale, offset[13];
        memcpy(&scale, buf.data + 96, 4);
        memcpy(offset, buf.data + offsets, sizeof(offset));
        for (size_t i = 0; i < n; i++) {
            const uint8_t *r = buf.data + codes + i * rec;
            double acc = 0.0;
            for (size_t d = 0; d < dim; d++)
                acc += (double)offset[d] * r[d];
            const float want = (float)(acc * scale);
            assert_memory_equal(r + 16, &want, 4);
            assert_true(r[13] == 0 && r[14] == 0 && r[15] == 0);
        }
        vf_hnsw *back = NULL;
        assert_int_equal(vf_hnsw_deserialize(buf.data, buf.len, NULL, &back), 0);
        assert_int_equal(vf_hnsw_check(back), 0);
        assert_same_hits(h, back, queries, nq, dim, NULL);
        membuf again = {0};
        assert_int_equal(vf_hnsw_serialize(back, membuf_write, &again), 0);
        assert_int_equal(again.len, buf.len);
        assert_memory_equal(again.data, buf.data, buf.len);

        /* Slot 5 is present: its f32 a_x made NaN. */
        const uint32_t nan_bits = 0x7FC00000u;
        memcpy(again.data + codes + 5 * rec + 16, &nan_bits, 4);
        reseal(again.data, again.len);
        vf_hnsw *out = (vf_hnsw *)&out;
        assert_int_equal(vf_hnsw_deserialize(again.data, again.len, NULL, &out), -EILSEQ);
        assert_null(out);
        free(again.data);
        free(buf.data);
        vf_hnsw_free(back);
        vf_hnsw_free(h);
        free(base);
        free(queries);
    }
}

/* A NONE snapshot is fed by its source; an original that changed since
 * (or is gone) loads as missing until the id is rewritten. */
static void test_snapshot_none_source_fed(void **state)
{
    (void)state;
    const size_t n = 1500, dim = 8, nq = 40;
    rng_state = 31;
    float *base = random_matrix(n, dim, 0.0f), *queries = random_matrix(nq, dim, 0.0f);
    vf_hnsw *h = make_index(dim, VF_METRIC_COSINE, VF_QUANT_NONE, 100);
    assert_int_equal(vf_hnsw_insert_batch(h, NULL, 0, base, n, 1), 0);
    membuf buf = {0};
    assert_int_equal(vf_hnsw_serialize(h, membuf_write, &buf), 0);
    /* No vectors inside: states, levels, lists, a CRC per vector, upper
     * lists (about 1/15 of the nodes) and the header. */
    assert_true(buf.len < n * (2 + 4 * (1 + 32) + 4) + n / 4 * 4 * (1 + 16) + 4096);
    array_source rows;
    vf_vec_source src = array_source_of(&rows, base, n, dim);
    vf_hnsw *back = NULL;
    assert_int_equal(vf_hnsw_deserialize(buf.data, buf.len, &src, &back), 0);
    assert_int_equal(vf_hnsw_missing(back), 0);
    assert_int_equal(vf_hnsw_check(back), 0);
    assert_same_hits(h, back, queries, nq, dim, NULL);
    vf_hnsw_free(back);

    /* Row 5 changed after the snapshot, rows past 1400 are gone. */
    base[5 * dim] += 1.0f;
    array_source fewer;
    vf_vec_source short_src = array_source_of(&fewer, base, 1400, dim);
    assert_int_equal(vf_hnsw_deserialize(buf.data, buf.len, &short_src, &back), 0);
    assert_int_equal(vf_hnsw_missing(back), 1 + (n - 1400));
    assert_int_equal(vf_hnsw_insert(back, 5, base + 5 * dim), 0);
    for (uint32_t id = 1400; id < n; id++)
        assert_int_equal(vf_hnsw_remove(back, id), 0);
    assert_int_equal(vf_hnsw_missing(back), 0);
    assert_int_equal(vf_hnsw_check(back), 0);
    vf_hnsw_free(back);
    free(buf.data);
    vf_hnsw_free(h);
    free(base);
    free(queries);
}

/* A version-1 snapshot (vectors inside, 88-byte header) made from a
 * version-2 one by hand still loads, with its own vectors. */
static void test_snapshot_version1_still_read(void **state)
{
    (void)state;
    const size_t n = 800, dim = 6, m0 = 32, nq = 30;
    rng_state = 41;
    float *base = random_matrix(n, dim, 0.0f), *queries = random_matrix(nq, dim, 0.0f);
    vf_hnsw *h = make_index(dim, VF_METRIC_L2, VF_QUANT_NONE, 100);
    assert_int_equal(vf_hnsw_insert_batch(h, NULL, 0, base, n, 1), 0);
    membuf v2 = {0}, v1 = {0};
    assert_int_equal(vf_hnsw_serialize(h, membuf_write, &v2), 0);
    const size_t pad = (4 - (2 * n) % 4) % 4, lists = 4 * (1 + m0);
    const uint8_t *at = v2.data + 120;
    uint8_t head[88];
    memcpy(head, v2.data, 88);
    uint32_t one = 1, size = 88;
    memcpy(head + 8, &one, 4);
    memcpy(head + 12, &size, 4);
    assert_int_equal(membuf_write(&v1, head, 88), 0);
    assert_int_equal(membuf_write(&v1, at, 2 * n + pad), 0);
    at += 2 * n + pad;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(membuf_write(&v1, at + i * lists, lists), 0);
        assert_int_equal(membuf_write(&v1, base + i * dim, dim * sizeof(float)), 0);
    }
    at += n * lists + n * 4; /* lists, then the vector CRCs of version 2 */
    assert_int_equal(membuf_write(&v1, at, (size_t)(v2.data + v2.len - 4 - at)), 0);
    uint32_t crc = 0;
    assert_int_equal(membuf_write(&v1, &crc, 4), 0);
    reseal(v1.data, v1.len);
    vf_hnsw *back = NULL;
    assert_int_equal(vf_hnsw_deserialize(v1.data, v1.len, NULL, &back), 0);
    assert_int_equal(vf_hnsw_check(back), 0);
    assert_same_hits(h, back, queries, nq, dim, NULL);
    /* Never misread: the version-1 bytes under a version-2 header fail. */
    uint32_t two = 2;
    memcpy(v1.data + 8, &two, 4);
    reseal(v1.data, v1.len);
    vf_hnsw *out = NULL;
    assert_int_equal(vf_hnsw_deserialize(v1.data, v1.len, NULL, &out), -EILSEQ);
    vf_hnsw_free(back);
    free(v1.data);
    free(v2.data);
    vf_hnsw_free(h);
    free(base);
    free(queries);
}

/* ------------------------------------------------------------------ */
/* Concurrency                                                          */
/* ------------------------------------------------------------------ */

typedef struct race {
    vf_hnsw *h;
    const float *vecs;
    size_t n, dim, first;
    vf_vec_source src;
    _Atomic int failures;
} race;

static void *race_insert(void *arg)
{
    race *r = arg;
    for (size_t i = r->first; i < r->n; i += 2)
        if (vf_hnsw_insert(r->h, (uint32_t)i, r->vecs + i * r->dim) != 0)
            atomic_fetch_add(&r->failures, 1);
    return NULL;
}

/* Removes every third id below `first` (rows the index starts with). */
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
    vf_quant_stats st;
    for (size_t i = 0; i < 1500; i++) {
        size_t nh;
        if (vf_hnsw_search_rerank(r->h, r->vecs + (i % r->n) * r->dim, K, 0, 0, NULL, &r->src, hits,
                                  &nh) != 0)
            atomic_fetch_add(&r->failures, 1);
        for (size_t j = 0; j < nh; j++)
            if (hits[j].id >= r->n)
                atomic_fetch_add(&r->failures, 1);
        if (i % 100 == 0)
            vf_hnsw_quant_stats(r->h, &st);
    }
    return NULL;
}

static void test_concurrent_search_insert_int8(void **state)
{
    (void)state;
    const size_t n = 5000, dim = 16, start = 1500;
    rng_state = 51;
    float *vecs = random_matrix(n, dim, 0.0f);
    vf_hnsw *h = make_index(dim, VF_METRIC_L2, VF_QUANT_INT8, 100);
    assert_int_equal(vf_hnsw_insert_batch(h, NULL, 0, vecs, start, 1), 0);
    array_source rows;
    race a = {.h = h, .vecs = vecs, .n = n, .dim = dim, .first = start};
    a.src = array_source_of(&rows, vecs, n, dim);
    race b = a;
    b.first = start + 1;
    /* The removes run beside the inserts (growing the index, which
     * re-packs its lists) and the searches. */
    race c = a;
    c.first = start;
    pthread_t t[5];
    assert_int_equal(pthread_create(&t[0], NULL, race_insert, &a), 0);
    assert_int_equal(pthread_create(&t[1], NULL, race_insert, &b), 0);
    assert_int_equal(pthread_create(&t[2], NULL, race_search, &a), 0);
    assert_int_equal(pthread_create(&t[3], NULL, race_search, &b), 0);
    assert_int_equal(pthread_create(&t[4], NULL, race_remove, &c), 0);
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&a.failures) + atomic_load(&b.failures) + atomic_load(&c.failures),
                     0);
    const size_t removed = (start + 2) / 3;
    assert_int_equal(vf_hnsw_count(h), n - removed);
    assert_int_equal(vf_hnsw_check(h), 0);
    assert_int_equal(vf_hnsw_unreachable(h), 0);
    for (size_t i = 0; i < start; i += 3)
        assert_false(vf_hnsw_contains(h, (uint32_t)i));
    /* Recall over the rows still present, queried by the inserted ones. */
    size_t hits = 0, asked = 0;
    for (size_t q = start; q < n; q += 17, asked++) {
        vf_hit got[K];
        size_t ng;
        assert_int_equal(vf_hnsw_search_rerank(h, vecs + q * dim, K, 64, 0, NULL, &a.src, got, &ng),
                         0);
        for (size_t j = 0; j < ng; j++)
            hits += got[j].id == q;
    }
    double r = (double)hits / (double)asked;
    print_message("int8 after concurrent build: %.4f of inserted rows find themselves\n", r);
    assert_true(r >= 0.99);
    vf_hnsw_free(h);
    free(vecs);
}

/* Random inserts, updates (some to another id's vector: twins) and
 * removes on an INT8 index, whose level-0 lists are packed, growing from
 * empty: the structure checks and every present id stays reachable and
 * found by its own vector. The seed is printed (VECFS_TEST_SEED replays). */
static void test_packed_lists_random_ops(void **state)
{
    (void)state;
    rng_state = seed_from_env("packed lists");
    const size_t ids = 3000, dim = 8, ops = 12000;
    float *model = calloc(ids * dim, sizeof(float));
    bool *present = calloc(ids, sizeof(bool));
    assert_non_null(model);
    assert_non_null(present);
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, (uint32_t)dim);
    p.metric = VF_METRIC_L2;
    p.m = 4 + (uint32_t)(rng_next() % 12);
    p.ef_construction = 40;
    p.quantization = VF_QUANT_INT8;
    vf_hnsw *h = NULL;
    assert_int_equal(vf_hnsw_create(&p, &h), 0);
    size_t count = 0;
    for (size_t op = 1; op <= ops; op++) {
        uint32_t id = (uint32_t)(rng_next() % (op < ops / 2 ? ids * op / (ops / 2) + 1 : ids));
        unsigned kind = (unsigned)(rng_next() % 10);
        if (kind < 6) {
            float v[8];
            uint32_t other = (uint32_t)(rng_next() % ids);
            if (kind == 0 && present[other])
                memcpy(v, model + other * dim, sizeof(v));
            else
                for (size_t d = 0; d < dim; d++)
                    v[d] = rng_float();
            assert_int_equal(vf_hnsw_insert(h, id, v), 0);
            memcpy(model + id * dim, v, sizeof(v));
            count += !present[id];
            present[id] = true;
        } else {
            assert_int_equal(vf_hnsw_remove(h, id), present[id] ? 0 : -ENOENT);
            count -= present[id];
            present[id] = false;
        }
        assert_int_equal(vf_hnsw_count(h), count);
        if (op % 1000 == 0) {
            assert_int_equal(vf_hnsw_check(h), 0);
            size_t fixed;
            assert_int_equal(vf_hnsw_reconnect(h, &fixed), 0);
            assert_int_equal(vf_hnsw_unreachable(h), 0);
            assert_int_equal(vf_hnsw_check(h), 0);
        }
    }
    array_source rows;
    vf_vec_source src = array_source_of(&rows, model, ids, dim);
    size_t found = 0;
    for (uint32_t id = 0; id < ids; id++) {
        assert_int_equal(vf_hnsw_contains(h, id), present[id]);
        if (!present[id])
            continue;
        vf_hit got[K];
        size_t ng;
        assert_int_equal(vf_hnsw_search_rerank(h, model + id * dim, K, 64, 0, NULL, &src, got, &ng),
                         0);
        for (size_t j = 0; j < ng; j++) {
            assert_true(present[got[j].id]);
            /* Itself, or a twin at distance 0. */
            if (got[j].id == id || (j == 0 && got[j].distance == 0.0f)) {
                found++;
                break;
            }
        }
    }
    print_message("packed lists: %zu of %zu present ids found by their vector\n", found, count);
    assert_true(found >= count * 99 / 100);
    vf_hnsw_free(h);
    free(model);
    free(present);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_and_parse),
        cmocka_unit_test(test_recall_words50k_int8),
        cmocka_unit_test(test_drift_detected_and_relearned),
        cmocka_unit_test(test_as_stored_matches_get),
        cmocka_unit_test(test_snapshot_int8_round_trip_and_crafts),
        cmocka_unit_test(test_snapshot_int8_disk_records),
        cmocka_unit_test(test_snapshot_none_source_fed),
        cmocka_unit_test(test_snapshot_version1_still_read),
        cmocka_unit_test(test_concurrent_search_insert_int8),
        cmocka_unit_test(test_packed_lists_random_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
