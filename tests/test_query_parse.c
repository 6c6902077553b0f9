/*
 * test_query_parse.c — query files and their results (fs/query_parse.c),
 * SPEC §3.3.
 *
 * Covered: text queries with every parameter, comments, defaults and the
 * k/ef boundaries (1, 10000, 10001, 0), both/neither of vector and like,
 * repeated and unknown keys, parameters after the vector; filters (trim,
 * "user." prefix, repeats, limits); .json queries (every key, wrong types,
 * unknown keys); .f32, .fvecs and .npy batches; fsd_query_param_set for the
 * batch xattrs (and that a failed set changes nothing); result formatting
 * for text, JSON and batches byte for byte, with escaping; -ENOMEM
 * without leaks at every allocation.
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

#include "alloc.h"
#include "import_parse.h"
#include "internal.h"
#include "query_parse.h"
#include "query_result.h"

/* The i-th leaf (comparison) of a compiled filter, in text order. */
static const st_fnode *leaf(const st_filter *f, size_t i)
{
    for (size_t n = 0; f && n < f->nnodes; n++)
        if (f->nodes[n].kind >= ST_FK_CMP && i-- == 0)
            return &f->nodes[n];
    return NULL;
}

/* How many leaves a filter has (0 for none). */
static size_t nleaves(const st_filter *f)
{
    size_t n = 0;
    while (leaf(f, n))
        n++;
    return n;
}

static const char *fkey(const st_filter *f, size_t i)
{
    return f->keys[leaf(f, i)->key].p;
}

static const st_flit *flit(const st_filter *f, size_t i)
{
    return &f->lits[leaf(f, i)->lit];
}

/* Parses s from an exact-size heap copy. */
static int qparse(fsd_qkind kind, const char *s, size_t len, fsd_query *q)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int rc = fsd_query_parse(kind, copy, len, q);
    free(copy);
    return rc;
}

static int qtext(const char *s, fsd_query *q)
{
    return qparse(FSD_QKIND_TEXT, s, strlen(s), q);
}

static void test_text_vector_only(void **state)
{
    (void)state;
    fsd_query q = FSD_QUERY_INIT;
    assert_int_equal(qtext("0.5 1 -2\n", &q), 0);
    assert_int_equal(q.k, FSD_QUERY_DEFAULT_K);
    assert_false(q.k_set);
    assert_int_equal(q.ef, 0);
    assert_null(q.like);
    assert_int_equal(q.nq, 1);
    assert_int_equal(q.dim, 3);
    assert_true(q.vectors[0] == 0.5f && q.vectors[2] == -2.0f);
    assert_int_equal(nleaves(q.filter), 0);
    fsd_query_release(&q);
    assert_null(q.vectors);
}

static void test_text_params(void **state)
{
    (void)state;
    fsd_query q = FSD_QUERY_INIT;
    const char *s = "# a comment\n"
                    "k = 5\n"
                    "\n"
                    "ef=128\n"
                    "  filter = category = guide , user.lang=en\n"
                    "[0.1, 0.2,\n 0.3]\n";
    assert_int_equal(qtext(s, &q), 0);
    assert_int_equal(q.k, 5);
    assert_true(q.k_set);
    assert_int_equal(q.ef, 128);
    assert_int_equal(q.dim, 3);
    assert_int_equal(nleaves(q.filter), 2);
    assert_string_equal(fkey(q.filter, 0), "category");
    assert_string_equal(flit(q.filter, 0)->p, "guide");
    assert_int_equal(flit(q.filter, 0)->len, 5);
    assert_string_equal(fkey(q.filter, 1), "lang");
    assert_string_equal(flit(q.filter, 1)->p, "en");
    /* Parsing again replaces everything. */
    assert_int_equal(qtext("like = doc 1.f32 \n", &q), 0);
    assert_string_equal(q.like, "doc 1.f32");
    assert_int_equal(q.like_len, 9);
    assert_null(q.vectors);
    assert_int_equal(q.nq, 0);
    assert_int_equal(nleaves(q.filter), 0);
    assert_int_equal(q.k, 10);
    fsd_query_release(&q);
}

static void test_text_boundaries(void **state)
{
    (void)state;
    fsd_query q = FSD_QUERY_INIT;
    assert_int_equal(qtext("k = 1\n1", &q), 0);
    assert_int_equal(q.k, 1);
    assert_int_equal(qtext("k = 10000\n1", &q), 0);
    assert_int_equal(q.k, 10000);
    assert_int_equal(qtext("ef = 100000\n1", &q), 0);
    assert_int_equal(q.ef, 100000);
    static const char *const bad[] = {"k = 0\n1",         "k = 10001\n1",
                                      "k = -1\n1",        "k = 1.5\n1",
                                      "k = \n1",          "k = 99999999999\n1",
                                      "ef = 0\n1",        "ef = 100001\n1",
                                      "k = 1\nk = 2\n1",  "foo = 1\n1",
                                      "1 2\nk = 3\n",     "",
                                      "\n# only\n",       "k = 3\n",
                                      "like = a\n1 2",    "like = .config\n",
                                      "like = a/b\n",     "like = \n",
                                      "filter = a\n1",    "filter = =b\n1",
                                      "filter = a=1,\n1", "1 nan",
                                      "k = 5 x\n1",       "like = a\nlike = b\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = qtext(bad[i], &q);
        if (rc != -EINVAL)
            fail_msg("query \"%s\" gave %d, want -EINVAL", bad[i], rc);
        /* A failed parse leaves the query released. */
        assert_null(q.vectors);
        assert_null(q.like);
        assert_null(q.filter);
        assert_int_equal(q.k, FSD_QUERY_DEFAULT_K);
    }
}

static void test_json_filter_forms(void **state)
{
    (void)state;
    static const struct {
        const char *json, *text;
    } same[] = {
        {"{\"year\": {\">=\": 2020}}", "year >= 2020"},
        {"{\"lang\": {\"in\": [\"en\", \"de\"]}, \"n\": {\"<\": 0.5}}",
         "lang in (en, de) and n < 0.5"},
        {"{\"$or\": [{\"a\": 1}, {\"$not\": {\"b\": true}}]}", "a = 1 or not b = true"},
        {"{\"t\": {\"exists\": false}}", "not exists t"},
        {"\"x = 'a b'\"", "x = 'a b'"},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char text[512];
        fsd_query a = FSD_QUERY_INIT, b = FSD_QUERY_INIT;
        snprintf(text, sizeof text, "{\"vector\": [1], \"filter\": %s}", same[i].json);
        assert_int_equal(qparse(FSD_QKIND_JSON, text, strlen(text), &a), 0);
        snprintf(text, sizeof text, "filter = %s\n1\n", same[i].text);
        assert_int_equal(qparse(FSD_QKIND_TEXT, text, strlen(text), &b), 0);
        assert_int_equal(nleaves(a.filter), nleaves(b.filter));
        assert_true(nleaves(a.filter) > 0);
        for (size_t j = 0; j < nleaves(a.filter); j++) {
            assert_int_equal(leaf(a.filter, j)->kind, leaf(b.filter, j)->kind);
            assert_int_equal(leaf(a.filter, j)->op, leaf(b.filter, j)->op);
            assert_int_equal(leaf(a.filter, j)->nlit, leaf(b.filter, j)->nlit);
            assert_string_equal(fkey(a.filter, j), fkey(b.filter, j));
            if (leaf(a.filter, j)->nlit)
                assert_string_equal(flit(a.filter, j)->p, flit(b.filter, j)->p);
        }
        fsd_query_release(&a);
        fsd_query_release(&b);
    }
    static const struct {
        const char *json, *why;
    } bad[] = {
        {"{\"a\": {\"~\": 1}}", "unknown operator"},
        {"{\"$xor\": []}", "unknown operator"},
        {"{\"a\": {}}", "no operator"},
        {"{\"a\": {\"exists\": 1}}", "\"exists\" takes"},
        {"{\"a\": {\"in\": []}}", "\"in\" takes"},
        {"{\"$or\": {}}", "\"$or\" takes"},
        {"{\"a\": null}", "a value must be"},
        {"{\"$not\": 3}", "a filter must be"},
        {"\"a >\"", "expected a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        fsd_query q = FSD_QUERY_INIT;
        snprintf(text, sizeof text, "{\"vector\": [1], \"filter\": %s}", bad[i].json);
        assert_int_equal(qparse(FSD_QKIND_JSON, text, strlen(text), &q), -EINVAL);
        assert_null(q.filter);
        if (strstr(q.error, bad[i].why) == NULL)
            fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].json, q.error, bad[i].why);
    }
}

static void test_json_query(void **state)
{
    (void)state;
    fsd_query q = FSD_QUERY_INIT;
    const char *s = "{\"vector\": [1, 2.5], \"k\": 3, \"ef\": 50,"
                    " \"filter\": {\"category\": \"guide\", \"year\": 2024, \"ok\": true}}";
    assert_int_equal(qparse(FSD_QKIND_JSON, s, strlen(s), &q), 0);
    assert_int_equal(q.k, 3);
    assert_int_equal(q.ef, 50);
    assert_int_equal(q.dim, 2);
    assert_true(q.vectors[1] == 2.5f);
    assert_int_equal(nleaves(q.filter), 3);
    assert_string_equal(fkey(q.filter, 1), "year");
    assert_string_equal(flit(q.filter, 1)->p, "2024");
    assert_string_equal(flit(q.filter, 2)->p, "true");
    s = "{\"like\": \"doc.f32\", \"filter\": {}}";
    assert_int_equal(qparse(FSD_QKIND_JSON, s, strlen(s), &q), 0);
    assert_string_equal(q.like, "doc.f32");
    assert_int_equal(nleaves(q.filter), 0);
    static const char *const bad[] = {
        "",
        "[1,2]",
        "{}",
        "{\"vector\": []}",
        "{\"vector\": [1, \"x\"]}",
        "{\"vector\": [1], \"k\": \"3\"}",
        "{\"vector\": [1], \"k\": 0}",
        "{\"vector\": [1], \"k\": 10001}",
        "{\"vector\": [1], \"k\": 2.0}",
        "{\"vector\": [1], \"ef\": -1}",
        "{\"vector\": [1], \"filter\": {\"a\": [1]}}",
        "{\"vector\": [1], \"filter\": {\"a\": null}}",
        "{\"vector\": [1], \"like\": \"x\"}",
        "{\"like\": 3}",
        "{\"like\": \".import\"}",
        "{\"vector\": [1], \"limit\": 3}",
        "{\"vector\": [1], \"vector\": [2]}",
        "{\"vector\": [1e39]}",
        "{\"vector\": [1]} x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = qparse(FSD_QKIND_JSON, bad[i], strlen(bad[i]), &q);
        if (rc != -EINVAL)
            fail_msg("JSON query %s gave %d, want -EINVAL", bad[i], rc);
        assert_null(q.vectors);
    }
    fsd_query_release(&q);
}

static void test_f32_query(void **state)
{
    (void)state;
    fsd_query q = FSD_QUERY_INIT;
    float v[2] = {1.0f, -1.0f}; /* little-endian hosts only, like the files */
    assert_int_equal(qparse(FSD_QKIND_F32, (char *)v, 8, &q), 0);
    assert_int_equal(q.dim, 2);
    assert_int_equal(q.nq, 1);
    assert_int_equal(qparse(FSD_QKIND_F32, (char *)v, 7, &q), -EINVAL);
    assert_int_equal(qparse(FSD_QKIND_F32, (char *)v, 0, &q), -EINVAL);
    fsd_query_release(&q);
}

static void test_batch_queries(void **state)
{
    (void)state;
    fsd_query q = FSD_QUERY_INIT;
    /* Two rows of dim 2 as fvecs. */
    unsigned char fv[24];
    int32_t d = 2;
    float r0[2] = {1, 2}, r1[2] = {3, 4};
    memcpy(fv, &d, 4);
    memcpy(fv + 4, r0, 8);
    memcpy(fv + 12, &d, 4);
    memcpy(fv + 16, r1, 8);
    assert_int_equal(qparse(FSD_QKIND_FVECS, (char *)fv, 24, &q), 0);
    assert_int_equal(q.nq, 2);
    assert_int_equal(q.dim, 2);
    assert_true(q.vectors[3] == 4.0f);
    assert_int_equal(qparse(FSD_QKIND_FVECS, (char *)fv, 23, &q), -EINVAL);
    /* The same as npy. */
    char npy[128 + 16];
    const char *hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
    memset(npy, ' ', 128);
    memcpy(npy, "\x93NUMPY\x01\x00", 8);
    npy[8] = 118;
    npy[9] = 0;
    memcpy(npy + 10, hdr, strlen(hdr));
    npy[127] = '\n';
    memcpy(npy + 128, r0, 8);
    memcpy(npy + 136, r1, 8);
    assert_int_equal(qparse(FSD_QKIND_NPY, npy, sizeof npy, &q), 0);
    assert_int_equal(q.nq, 2);
    assert_true(q.vectors[2] == 3.0f);
    assert_int_equal(qparse(FSD_QKIND_NPY, npy, sizeof npy - 1, &q), -EINVAL);
    /* Batch parameters from xattrs. */
    assert_int_equal(qparse(FSD_QKIND_NPY, npy, sizeof npy, &q), 0);
    assert_int_equal(fsd_query_param_set(&q, "k", "7\n", 2), 0);
    assert_int_equal(q.k, 7);
    assert_true(q.k_set);
    assert_int_equal(fsd_query_param_set(&q, "ef", " 64 ", 4), 0);
    assert_int_equal(q.ef, 64);
    assert_int_equal(fsd_query_param_set(&q, "filter", "a=b,c=d\n", 8), 0);
    assert_int_equal(nleaves(q.filter), 2);
    assert_int_equal(fsd_query_param_set(&q, "explain", "1\n", 2), 0);
    assert_true(q.explain);
    assert_int_equal(fsd_query_param_set(&q, "explain", "yes", 3), -EINVAL);
    assert_string_equal(q.error, "user.explain must be 0 or 1");
    assert_true(q.explain);
    assert_int_equal(fsd_query_param_set(&q, "explain", "0", 1), 0);
    assert_false(q.explain);
    /* Failures change nothing. */
    assert_int_equal(fsd_query_param_set(&q, "k", "0", 1), -EINVAL);
    assert_int_equal(fsd_query_param_set(&q, "k", "x", 1), -EINVAL);
    assert_int_equal(fsd_query_param_set(&q, "ef", "100001", 6), -EINVAL);
    assert_int_equal(fsd_query_param_set(&q, "filter", "a", 1), -EINVAL);
    assert_int_equal(fsd_query_param_set(&q, "like", "a", 1), -EINVAL);
    assert_int_equal(fsd_query_param_set(&q, "user.k", "3", 1), -EINVAL);
    assert_int_equal(q.k, 7);
    assert_int_equal(q.ef, 64);
    assert_int_equal(nleaves(q.filter), 2);
    assert_int_equal(fsd_query_param_set(&q, "filter", "", 0), 0);
    assert_int_equal(nleaves(q.filter), 0);
    fsd_query_release(&q);
}

static void test_kind_from_name(void **state)
{
    (void)state;
    assert_int_equal(fsd_qkind_from_name("q", 1), FSD_QKIND_TEXT);
    assert_int_equal(fsd_qkind_from_name("q.json", 6), FSD_QKIND_JSON);
    assert_int_equal(fsd_qkind_from_name("q.f32", 5), FSD_QKIND_F32);
    assert_int_equal(fsd_qkind_from_name("q.fvecs", 7), FSD_QKIND_FVECS);
    assert_int_equal(fsd_qkind_from_name("q.npy", 5), FSD_QKIND_NPY);
    assert_true(fsd_qkind_is_batch(FSD_QKIND_NPY));
    assert_false(fsd_qkind_is_batch(FSD_QKIND_F32));
}

static void test_results_text(void **state)
{
    (void)state;
    fsd_results r;
    char *out;
    size_t len;
    fsd_results_init(&r, FSD_QKIND_TEXT);
    assert_int_equal(fsd_results_add(&r, "a.f32", 5, 0.25f), 0);
    assert_int_equal(fsd_results_add(&r, "b\tc\\d\n", 6, 1.0f), 0);
    assert_int_equal(fsd_results_add(&r, "xyz", 1, 0.1f), 0); /* only 1 byte */
    assert_int_equal(fsd_results_add_row(&r, 0, "a", 1, 0), -EINVAL);
    assert_int_equal(fsd_results_finish(&r, &out, &len), 0);
    assert_string_equal(out, "a.f32\t0.25\nb\\tc\\\\d\\n\t1\nx\t0.1\n");
    assert_int_equal(len, strlen(out));
    free(out);
    /* Empty result. */
    fsd_results_init(&r, FSD_QKIND_F32);
    assert_int_equal(fsd_results_finish(&r, &out, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);
    /* Many lines (buffer growth). */
    fsd_results_init(&r, FSD_QKIND_TEXT);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(fsd_results_add(&r, "name", 4, (float)i), 0);
    assert_int_equal(r.count, 10000);
    assert_int_equal(fsd_results_finish(&r, &out, &len), 0);
    assert_memory_equal(out + len - 10, "name\t9999\n", 10);
    free(out);
    fsd_results_release(NULL);
}

static void test_results_json(void **state)
{
    (void)state;
    fsd_results r;
    char *out;
    size_t len;
    fsd_results_init(&r, FSD_QKIND_JSON);
    assert_int_equal(fsd_results_finish(&r, &out, &len), 0);
    assert_string_equal(out, "[]\n");
    free(out);
    fsd_results_init(&r, FSD_QKIND_JSON);
    assert_int_equal(fsd_results_add(&r, "a\"b\\", 4, 0.5f), 0);
    assert_int_equal(fsd_results_add(&r, "\xc3\xa9\x01\xff", 4, 2.0f), 0);
    assert_int_equal(fsd_results_add(&r, "n", 1, INFINITY), 0);
    assert_int_equal(fsd_results_finish(&r, &out, &len), 0);
    assert_string_equal(out, "[{\"name\": \"a\\\"b\\\\\", \"distance\": 0.5},\n"
                             " {\"name\": \"\xc3\xa9\\u0001\\u00ff\", \"distance\": 2},\n"
                             " {\"name\": \"n\", \"distance\": null}]\n");
    free(out);
}

static void test_results_batch(void **state)
{
    (void)state;
    fsd_results r;
    char *out;
    size_t len;
    fsd_results_init(&r, FSD_QKIND_FVECS);
    assert_int_equal(fsd_results_add(&r, "a", 1, 0), -EINVAL);
    assert_int_equal(fsd_results_add_row(&r, 0, "a", 1, 0.5f), 0);
    assert_int_equal(fsd_results_add_row(&r, 0, "b", 1, 0.75f), 0);
    assert_int_equal(fsd_results_add_row(&r, 12345678901ull, "c\td", 3, -1.0f), 0);
    assert_int_equal(fsd_results_finish(&r, &out, &len), 0);
    assert_string_equal(out, "0\ta\t0.5\n0\tb\t0.75\n12345678901\tc\\td\t-1\n");
    free(out);
}

/* Runs fn with the 1st, 2nd, ... allocation failing until it succeeds: each
 * failure must be -ENOMEM (leaks show up under ASan), and at least one
 * allocation must have been failed. */
static void alloc_sweep(int (*fn)(void), const char *what)
{
    unsigned long failures = 0;
    for (unsigned long n = 1; n < 100000; n++) {
        vc_alloc_fail_at(n);
        int rc = fn();
        vc_alloc_fail_at(0);
        if (rc == -ENOMEM) {
            failures++;
            continue;
        }
        if (rc != 0)
            fail_msg("%s with allocation %lu failing: %d", what, n, rc);
        break;
    }
    if (failures == 0)
        fail_msg("%s: no allocation was failed", what);
}

static int af_text_query(void)
{
    fsd_query q = FSD_QUERY_INIT;
    const char *s = "k = 3\nfilter = a=b, c=d\n1 2 3\n";
    int rc = fsd_query_parse(FSD_QKIND_TEXT, s, strlen(s), &q);
    if (!rc)
        assert_int_equal(nleaves(q.filter), 2);
    else
        assert_null(q.filter);
    fsd_query_release(&q);
    return rc;
}

static int af_like_query(void)
{
    fsd_query q = FSD_QUERY_INIT;
    int rc = fsd_query_parse(FSD_QKIND_TEXT, "like = x\n", 9, &q);
    fsd_query_release(&q);
    return rc;
}

static int af_json_query(void)
{
    fsd_query q = FSD_QUERY_INIT;
    const char *s = "{\"vector\": [1, 2], \"filter\": {\"a\": \"b\"}, \"k\": 2}";
    int rc = fsd_query_parse(FSD_QKIND_JSON, s, strlen(s), &q);
    fsd_query_release(&q);
    return rc;
}

static int af_batch_query(void)
{
    fsd_query q = FSD_QUERY_INIT;
    unsigned char fv[12] = {2, 0, 0, 0};
    int rc = fsd_query_parse(FSD_QKIND_FVECS, fv, sizeof fv, &q);
    if (!rc)
        rc = fsd_query_param_set(&q, "filter", "x=1,y=2", 7);
    fsd_query_release(&q);
    return rc;
}

static int af_results(void)
{
    fsd_results r;
    char *out;
    size_t len;
    fsd_results_init(&r, FSD_QKIND_JSON);
    for (int i = 0; i < 100; i++)
        fsd_results_add(&r, "some-name.f32", 13, (float)i);
    int rc = fsd_results_finish(&r, &out, &len);
    if (!rc)
        free(out);
    return rc;
}

static void test_alloc_failures(void **state)
{
    (void)state;
    alloc_sweep(af_text_query, "text query");
    alloc_sweep(af_like_query, "like query");
    alloc_sweep(af_json_query, "json query");
    alloc_sweep(af_batch_query, "batch query");
    alloc_sweep(af_results, "results");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_vector_only),  cmocka_unit_test(test_text_params),
        cmocka_unit_test(test_text_boundaries),   cmocka_unit_test(test_json_query),
        cmocka_unit_test(test_json_filter_forms), cmocka_unit_test(test_f32_query),
        cmocka_unit_test(test_batch_queries),     cmocka_unit_test(test_kind_from_name),
        cmocka_unit_test(test_results_text),      cmocka_unit_test(test_results_json),
        cmocka_unit_test(test_results_batch),     cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
