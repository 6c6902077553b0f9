/*
 * test_import_parse.c — files of rows (fs/import_parse.c): .fvecs, .npy and .jsonl as
 * written into .import/ (SPEC §3.4) and as batched query files.
 *
 * Covered: valid files of each format with row names "<stem>-<row>.f32",
 * every rejection import_parse.h names (truncation, mixed dims, dim 0 or negative,
 * non-finite values, expect_dim, empty files, over-long generated names,
 * npy magic/version/dtype/order/shape/size errors, jsonl syntax, missing or
 * bad names, unknown keys, repeated names, meta types and limits), that the
 * jsonl text span reads back to exactly the row's vector, the fallback for
 * an escaped "vector" key, CRLF lines, and 100k-row files of each format
 * parsed in linear time, and -ENOMEM without leaks at every allocation.
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
#include <time.h>

#include <cmocka.h>

#include "alloc.h"
#include "import_parse.h"
#include "vector_format.h"

/* A growable byte buffer for building test files. */
typedef struct tbuf {
    unsigned char *p;
    size_t len, cap;
} tbuf;

static void tb_put(tbuf *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void tb_str(tbuf *b, const char *s)
{
    tb_put(b, s, strlen(s));
}

static void tb_i32(tbuf *b, int32_t v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    tb_put(b, x, 4);
}

static void tb_f32(tbuf *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    tb_i32(b, (int32_t)u);
}

/* Parses from an exact-size heap copy so over-reads trip ASan. */
static int bparse(fsd_rows_format fmt, const void *data, size_t len, const char *stem,
                  uint32_t expect, fsd_rows **out)
{
    char err[128];
    void *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    int rc =
        fsd_rows_parse(fmt, copy, len, stem, stem ? strlen(stem) : 0, expect, out, err, sizeof err);
    free(copy);
    if (rc) {
        assert_null(*out);
        assert_true(err[0] != '\0' || rc == -ENOMEM);
    }
    return rc;
}

static void fvecs_rows(tbuf *b, size_t n, int32_t dim)
{
    for (size_t i = 0; i < n; i++) {
        tb_i32(b, dim);
        for (int32_t j = 0; j < dim; j++)
            tb_f32(b, (float)i + (float)j / 10.0f);
    }
}

static void test_fvecs_valid(void **state)
{
    (void)state;
    tbuf b = {0};
    fvecs_rows(&b, 3, 4);
    fsd_rows *bt = NULL;
    assert_int_equal(bparse(FSD_ROWS_FVECS, b.p, b.len, "base", 0, &bt), 0);
    assert_int_equal(bt->n, 3);
    assert_int_equal(bt->dim, 4);
    assert_string_equal(bt->rows[0].name, "base-0.f32");
    assert_string_equal(bt->rows[2].name, "base-2.f32");
    assert_int_equal(bt->rows[2].name_len, 10);
    assert_true(bt->rows[2].vec[3] == 2.3f);
    assert_true(bt->rows[1].vec == bt->vectors + 4);
    assert_int_equal(bt->rows[1].n_meta, 0);
    assert_int_equal(bt->rows[1].text_len, 0);
    fsd_rows_free(bt);
    /* Without names (query batches), and with expect_dim. */
    assert_int_equal(bparse(FSD_ROWS_FVECS, b.p, b.len, NULL, 4, &bt), 0);
    assert_null(bt->rows[0].name);
    fsd_rows_free(bt);
    assert_int_equal(bparse(FSD_ROWS_FVECS, b.p, b.len, NULL, 5, &bt), -EINVAL);
    fsd_rows_free(NULL);
    free(b.p);
}

static void test_fvecs_invalid(void **state)
{
    (void)state;
    fsd_rows *bt = NULL;
    tbuf b = {0};
    fvecs_rows(&b, 3, 4);
    for (size_t cut = 0; cut < b.len; cut++) {
        if (cut && cut % 20 == 0)
            continue; /* a row boundary: a valid shorter file */
        assert_int_equal(bparse(FSD_ROWS_FVECS, b.p, cut, "s", 0, &bt), -EINVAL);
    }
    /* A second row of another dim, padded to a multiple of the first's. */
    tbuf m = {0};
    fvecs_rows(&m, 1, 4);
    fvecs_rows(&m, 1, 3);
    tb_f32(&m, 0);
    assert_int_equal(bparse(FSD_ROWS_FVECS, m.p, m.len, "s", 0, &bt), -EINVAL);
    free(m.p);
    /* dim 0, negative, over FSD_MAX_DIM. */
    tbuf z = {0};
    tb_i32(&z, 0);
    assert_int_equal(bparse(FSD_ROWS_FVECS, z.p, z.len, "s", 0, &bt), -EINVAL);
    z.len = 0;
    tb_i32(&z, -4);
    tb_f32(&z, 1);
    assert_int_equal(bparse(FSD_ROWS_FVECS, z.p, z.len, "s", 0, &bt), -EINVAL);
    z.len = 0;
    tb_i32(&z, (int32_t)FSD_MAX_DIM + 1);
    assert_int_equal(bparse(FSD_ROWS_FVECS, z.p, z.len, "s", 0, &bt), -EFBIG);
    free(z.p);
    /* A NaN and an Inf anywhere. */
    float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < 3; k++) {
        unsigned char *c = malloc(b.len);
        memcpy(c, b.p, b.len);
        memcpy(c + 2 * 20 + 4 + 8, &bad[k], 4);
        assert_int_equal(bparse(FSD_ROWS_FVECS, c, b.len, "s", 0, &bt), -EINVAL);
        free(c);
    }
    /* Generated names over 255 bytes. */
    char stem[260];
    memset(stem, 'a', sizeof stem);
    stem[249] = '\0'; /* 249 + "-2.f32" = 255: fits */
    assert_int_equal(bparse(FSD_ROWS_FVECS, b.p, b.len, stem, 0, &bt), 0);
    assert_int_equal(bt->rows[2].name_len, 255);
    fsd_rows_free(bt);
    stem[249] = 'a';
    stem[250] = '\0';
    assert_int_equal(bparse(FSD_ROWS_FVECS, b.p, b.len, stem, 0, &bt), -ENAMETOOLONG);
    assert_int_equal(bparse(FSD_ROWS_FVECS, b.p, b.len, "a/b", 0, &bt), -EINVAL);
    free(b.p);
}

/* An npy file: version major, header dict text, then n*d floats. */
static void npy_build(tbuf *b, unsigned major, const char *dict, size_t n, size_t d)
{
    size_t pre = major == 1 ? 10 : 12;
    size_t hlen = strlen(dict) + 1;
    size_t pad = (64 - (pre + hlen) % 64) % 64;
    tb_put(b, "\x93NUMPY", 6);
    unsigned char v[2] = {(unsigned char)major, 0};
    tb_put(b, v, 2);
    if (major == 1) {
        unsigned char l[2] = {(unsigned char)(hlen + pad), (unsigned char)((hlen + pad) >> 8)};
        tb_put(b, l, 2);
    } else {
        tb_i32(b, (int32_t)(hlen + pad));
    }
    tb_str(b, dict);
    for (size_t i = 0; i < pad; i++)
        tb_str(b, " ");
    tb_str(b, "\n");
    for (size_t i = 0; i < n * d; i++)
        tb_f32(b, (float)i);
}

static void test_npy_valid(void **state)
{
    (void)state;
    fsd_rows *bt = NULL;
    for (unsigned major = 1; major <= 3; major++) {
        tbuf b = {0};
        npy_build(&b, major, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 3, 2);
        assert_int_equal(bparse(FSD_ROWS_NPY, b.p, b.len, "q", 0, &bt), 0);
        assert_int_equal(bt->n, 3);
        assert_int_equal(bt->dim, 2);
        assert_true(bt->rows[2].vec[1] == 5.0f);
        assert_string_equal(bt->rows[1].name, "q-1.f32");
        fsd_rows_free(bt);
        free(b.p);
    }
    /* Key order, quotes and spacing as other writers produce them. */
    tbuf b = {0};
    npy_build(&b, 1, "{\"shape\":(1,2),\"fortran_order\":False,\"descr\":\"<f4\"}", 1, 2);
    assert_int_equal(bparse(FSD_ROWS_NPY, b.p, b.len, "q", 0, &bt), 0);
    fsd_rows_free(bt);
    free(b.p);
}

static void test_npy_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *dict;
        size_t n, d;
        int rc;
    } cases[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", 3, 4, -EINVAL},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", 3, 2, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", 3, 2, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 6, 1, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", 1, 6, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2), }", 0, 2, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 0), }", 0, 0, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 3, 3, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 2, 2, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 65537), }", 1, 65537, -EFBIG},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 2)}", 1, 2,
         -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False}", 1, 2, -EINVAL},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)}", 1, 2,
         -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': 1}", 1, 2, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)} junk", 1, 2, -EINVAL},
        {"['descr', '<f4']", 1, 2, -EINVAL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2)}", 1, 2, -EINVAL},
    };
    fsd_rows *bt = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tbuf b = {0};
        npy_build(&b, 1, cases[i].dict, cases[i].n, cases[i].d);
        int rc = bparse(FSD_ROWS_NPY, b.p, b.len, "q", 0, &bt);
        if (rc != cases[i].rc)
            fail_msg("npy case %zu gave %d, want %d", i, rc, cases[i].rc);
        free(b.p);
    }
    /* Magic, version, header length past the end, truncation anywhere. */
    tbuf b = {0};
    npy_build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 2, 2);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(bparse(FSD_ROWS_NPY, b.p, cut, "q", 0, &bt), -EINVAL);
    b.p[1] = 'n';
    assert_int_equal(bparse(FSD_ROWS_NPY, b.p, b.len, "q", 0, &bt), -EINVAL);
    b.p[1] = 'N';
    b.p[6] = 4;
    assert_int_equal(bparse(FSD_ROWS_NPY, b.p, b.len, "q", 0, &bt), -EINVAL);
    b.p[6] = 1;
    b.p[8] = 0xff;
    b.p[9] = 0xff;
    assert_int_equal(bparse(FSD_ROWS_NPY, b.p, b.len, "q", 0, &bt), -EINVAL);
    free(b.p);
    /* v2 with a huge u32 header length. */
    tbuf c = {0};
    npy_build(&c, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 2, 2);
    memset(c.p + 8, 0xff, 4);
    assert_int_equal(bparse(FSD_ROWS_NPY, c.p, c.len, "q", 0, &bt), -EINVAL);
    free(c.p);
}

static void test_jsonl_valid(void **state)
{
    (void)state;
    const char *s =
        "{\"name\": \"doc-1\", \"vector\": [0.1, 2, -3e-2], \"meta\": {\"title\": \"Hello\", "
        "\"year\": 2024, \"tags\": [\"a\",\"b\"], \"gone\": null, \"ok\": true}}\n"
        "\n"
        "  \r\n"
        "{\"vector\":[1,1,1],\"name\":\"doc 2.json\"}\r\n"
        "{\"name\": \"x.f32\", \"vec\\u0074or\": [4, 5, 6]}";
    fsd_rows *bt = NULL;
    assert_int_equal(bparse(FSD_ROWS_JSONL, s, strlen(s), "ignored", 0, &bt), 0);
    assert_int_equal(bt->n, 3);
    assert_int_equal(bt->dim, 3);
    assert_string_equal(bt->rows[0].name, "doc-1");
    assert_string_equal(bt->rows[1].name, "doc 2.json");
    assert_string_equal(bt->rows[2].name, "x.f32");
    assert_true(bt->rows[0].vec[0] == 0.1f && bt->rows[0].vec[2] == -3e-2f);
    assert_true(bt->rows[2].vec[2] == 6.0f);
    assert_int_equal(bt->rows[0].n_meta, 4);
    assert_string_equal(bt->rows[0].meta[0].key, "title");
    assert_string_equal(bt->rows[0].meta[0].value, "Hello");
    assert_string_equal(bt->rows[0].meta[1].value, "2024");
    assert_string_equal(bt->rows[0].meta[2].key, "tags");
    assert_string_equal(bt->rows[0].meta[2].value, "[\"a\",\"b\"]");
    assert_int_equal(bt->rows[0].meta[2].value_len, 9);
    assert_string_equal(bt->rows[0].meta[3].value, "true");
    assert_int_equal(bt->rows[1].n_meta, 0);
    /* The text span is the array as written and parses back to vec, as
     * text and as JSON. */
    assert_int_equal(bt->rows[0].text_len, strlen("[0.1, 2, -3e-2]"));
    assert_memory_equal(s + bt->rows[0].text_off, "[0.1, 2, -3e-2]", bt->rows[0].text_len);
    for (size_t r = 0; r < 2; r++) {
        for (int f = 0; f < 2; f++) {
            float *v;
            uint32_t dim;
            assert_int_equal(fsd_vector_parse(f ? FSD_VFORMAT_JSON : FSD_VFORMAT_TEXT,
                                              s + bt->rows[r].text_off, bt->rows[r].text_len, 3, &v,
                                              &dim),
                             0);
            assert_memory_equal(v, bt->rows[r].vec, 3 * sizeof(float));
            free(v);
        }
    }
    /* The escaped key is read by the fallback, without a text span. */
    assert_int_equal(bt->rows[2].text_len, 0);
    fsd_rows_free(bt);
}

static void test_jsonl_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
    } cases[] = {
        {"", -EINVAL},
        {"\n\n  \n", -EINVAL},
        {"{\"name\": \"a\"}", -EINVAL},
        {"{\"vector\": [1]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": []}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1, \"2\"]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1, null]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1e39]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [01]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [+1]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [.5]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1,]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1 2]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [[1]]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": 1}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": \"[1]\"}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1]", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1]} x", -EINVAL},
        {"[1, 2]", -EINVAL},
        {"{\"name\": 3, \"vector\": [1]}", -EINVAL},
        {"{\"name\": \".config\", \"vector\": [1]}", -EINVAL},
        {"{\"name\": \"a/b\", \"vector\": [1]}", -EINVAL},
        {"{\"name\": \"\", \"vector\": [1]}", -EINVAL},
        {"{\"name\": \"a\\u0000b\", \"vector\": [1]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1], \"extra\": 1}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1], \"meta\": [1]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1], \"meta\": {\"\": \"x\"}}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1], \"vector\": [2]}", -EINVAL},
        {"{\"name\": \"a\", \"name\": \"b\", \"vector\": [2]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1]}\n{\"name\": \"a\", \"vector\": [2]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1]}\n{\"name\": \"b\", \"vector\": [2, 3]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1, 2]}\n{\"name\": \"b\", \"vector\": [2]}", -EINVAL},
        {"{\"name\": \"a\", \"vector\": [1]}\ngarbage", -EINVAL},
    };
    fsd_rows *bt = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = bparse(FSD_ROWS_JSONL, cases[i].s, strlen(cases[i].s), NULL, 0, &bt);
        if (rc != cases[i].rc)
            fail_msg("jsonl case %zu (%s) gave %d, want %d", i, cases[i].s, rc, cases[i].rc);
    }
    const char *ok = "{\"name\": \"a\", \"vector\": [1, 2]}";
    assert_int_equal(bparse(FSD_ROWS_JSONL, ok, strlen(ok), NULL, 3, &bt), -EINVAL);
    assert_int_equal(bparse(FSD_ROWS_JSONL, ok, strlen(ok), NULL, 2, &bt), 0);
    fsd_rows_free(bt);
}

static void test_jsonl_meta_limits(void **state)
{
    (void)state;
    fsd_rows *bt = NULL;
    for (int over = 0; over <= 1; over++) {
        tbuf b = {0};
        tb_str(&b, "{\"name\": \"a\", \"vector\": [1], \"meta\": {\"big\": \"");
        for (size_t i = 0; i < FSD_META_VALUE_MAX + (size_t)over; i++)
            tb_str(&b, "x");
        tb_str(&b, "\"}}");
        int rc = bparse(FSD_ROWS_JSONL, b.p, b.len, NULL, 0, &bt);
        assert_int_equal(rc, over ? -E2BIG : 0);
        if (!over) {
            assert_int_equal(bt->rows[0].meta[0].value_len, FSD_META_VALUE_MAX);
            fsd_rows_free(bt);
        }
        free(b.p);
    }
    for (int over = 0; over <= 1; over++) {
        tbuf b = {0};
        tb_str(&b, "{\"name\": \"a\", \"vector\": [1], \"meta\": {\"");
        for (size_t i = 0; i < FSD_META_KEY_MAX + (size_t)over; i++)
            tb_str(&b, "k");
        tb_str(&b, "\": \"v\"}}");
        assert_int_equal(bparse(FSD_ROWS_JSONL, b.p, b.len, NULL, 0, &bt), over ? -E2BIG : 0);
        fsd_rows_free(bt);
        bt = NULL;
        free(b.p);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 100k rows of each format parse, and doubling the rows roughly doubles the
 * time (linear, not quadratic: a quadratic parser would take minutes
 * here), checked loosely because test machines are shared. */
static void test_large(void **state)
{
    (void)state;
    double t[2][3];
    for (int half = 0; half < 2; half++) {
        size_t n = half ? 100000 : 50000;
        const size_t d = 16;
        tbuf fv = {0}, np = {0}, jl = {0};
        fvecs_rows(&fv, n, (int32_t)d);
        char dict[128];
        snprintf(dict, sizeof dict,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", n, d);
        npy_build(&np, 1, dict, n, d);
        for (size_t i = 0; i < n; i++) {
            char line[512];
            int m = snprintf(line, sizeof line,
                             "{\"name\": \"doc-%zu\", \"vector\": [%zu.5, 0.25, -1, 2, 3, 4, 5, 6, "
                             "7, 8, 9, 10, 11, 12, 13, 14], \"meta\": {\"cat\": \"c%zu\"}}\n",
                             i, i, i % 7);
            tb_put(&jl, line, (size_t)m);
        }
        fsd_rows *bt;
        double t0 = now();
        assert_int_equal(bparse(FSD_ROWS_FVECS, fv.p, fv.len, "b", 0, &bt), 0);
        assert_int_equal(bt->n, n);
        fsd_rows_free(bt);
        double t1 = now();
        assert_int_equal(bparse(FSD_ROWS_NPY, np.p, np.len, "b", 0, &bt), 0);
        assert_int_equal(bt->n, n);
        fsd_rows_free(bt);
        double t2 = now();
        assert_int_equal(bparse(FSD_ROWS_JSONL, jl.p, jl.len, NULL, 0, &bt), 0);
        assert_int_equal(bt->n, n);
        char want[32];
        snprintf(want, sizeof want, "c%zu", (n - 1) % 7);
        assert_string_equal(bt->rows[n - 1].meta[0].value, want);
        snprintf(want, sizeof want, "doc-%zu", n - 1);
        assert_string_equal(bt->rows[n - 1].name, want);
        fsd_rows_free(bt);
        double t3 = now();
        t[half][0] = t1 - t0;
        t[half][1] = t2 - t1;
        t[half][2] = t3 - t2;
        printf("# %zu rows: fvecs %.3f s, npy %.3f s, jsonl %.3f s\n", n, t1 - t0, t2 - t1,
               t3 - t2);
        free(fv.p);
        free(np.p);
        free(jl.p);
    }
    for (int f = 0; f < 3; f++)
        assert_true(t[1][f] < 4.0 * t[0][f] + 0.5); /* loose: machines are shared */
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

static int af_batch(fsd_rows_format fmt, const void *data, size_t len, size_t n_want)
{
    fsd_rows *b = NULL;
    int rc = fsd_rows_parse(fmt, data, len, "s", 1, 0, &b, NULL, 0);
    if (!rc) {
        assert_int_equal(b->n, n_want);
        fsd_rows_free(b);
    } else {
        assert_null(b);
    }
    return rc;
}

static tbuf af_fv, af_np;

static int af_fvecs(void)
{
    return af_batch(FSD_ROWS_FVECS, af_fv.p, af_fv.len, 40);
}

static int af_npy(void)
{
    return af_batch(FSD_ROWS_NPY, af_np.p, af_np.len, 3);
}

static int af_jsonl(void)
{
    const char *s = "{\"name\": \"a\", \"vector\": [1, 2], \"meta\": {\"t\": \"x\", \"n\": 1}}\n"
                    "{\"name\": \"b\", \"vec\\u0074or\": [3, 4]}\n"
                    "{\"name\": \"c\", \"vector\": [5, 6], \"meta\": {\"t\": \"y\"}}\n";
    return af_batch(FSD_ROWS_JSONL, s, strlen(s), 3);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    fvecs_rows(&af_fv, 40, 3);
    npy_build(&af_np, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 3, 2);
    alloc_sweep(af_fvecs, "fvecs");
    alloc_sweep(af_npy, "npy");
    alloc_sweep(af_jsonl, "jsonl");
    free(af_fv.p);
    free(af_np.p);
}

static void test_bformat_from_name(void **state)
{
    (void)state;
    fsd_rows_format f;
    assert_int_equal(fsd_rows_format_from_name("a.fvecs", 7, &f), 0);
    assert_int_equal(f, FSD_ROWS_FVECS);
    assert_int_equal(fsd_rows_format_from_name("a.npy", 5, &f), 0);
    assert_int_equal(f, FSD_ROWS_NPY);
    assert_int_equal(fsd_rows_format_from_name("a.jsonl", 7, &f), 0);
    assert_int_equal(f, FSD_ROWS_JSONL);
    assert_int_equal(fsd_rows_format_from_name("a.json", 6, &f), -EINVAL);
    assert_int_equal(fsd_rows_format_from_name("a.csv", 5, &f), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fvecs_valid),       cmocka_unit_test(test_fvecs_invalid),
        cmocka_unit_test(test_npy_valid),         cmocka_unit_test(test_npy_invalid),
        cmocka_unit_test(test_jsonl_valid),       cmocka_unit_test(test_jsonl_invalid),
        cmocka_unit_test(test_jsonl_meta_limits), cmocka_unit_test(test_large),
        cmocka_unit_test(test_bformat_from_name), cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
