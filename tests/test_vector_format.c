/*
 * test_vector_format.c — vector file contents (fs/vector_format.c) and name rules
 * (fs/names.c), SPEC §3 and §3.1.
 *
 * Covered: every accepted text form, every rejected one (empty, NaN/Inf,
 * hex, doubled/trailing commas, unbalanced brackets, overflow), inputs that
 * are not NUL-terminated, .f32 sizes and non-finite bytes, .json arrays and
 * non-arrays, the dim limits (-EFBIG) and expect_dim, bit-exact round trips
 * of fsd_vector_format in all three formats (including -0.0, subnormals and
 * FLT_MAX) with shortest decimal forms, and collection/vector name
 * boundaries (64/65 and 255/256 bytes, reserved and dot names), and
 * -ENOMEM without leaks at every allocation of each parser.
 */
#include <errno.h>
#include <float.h>
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
#include "vector_format.h"
#include "names.h"

/* Parses s (its strlen bytes, copied to an exact-size heap buffer so an
 * over-read trips ASan) and returns the result code. */
static int parse(fsd_vformat fmt, const char *s, size_t len, uint32_t expect, float **v,
                 uint32_t *dim)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int rc = fsd_vector_parse(fmt, copy, len, expect, v, dim);
    free(copy);
    return rc;
}

static int parse_str(fsd_vformat fmt, const char *s)
{
    float *v = NULL;
    uint32_t dim = 7;
    int rc = parse(fmt, s, strlen(s), 0, &v, &dim);
    if (rc) {
        assert_null(v);
        assert_int_equal(dim, 0);
    }
    free(v);
    return rc;
}

static void expect_vec(fsd_vformat fmt, const char *s, const float *want, uint32_t n)
{
    float *v = NULL;
    uint32_t dim = 0;
    int rc = parse(fmt, s, strlen(s), 0, &v, &dim);
    if (rc)
        fail_msg("parse of \"%s\" failed: %d", s, rc);
    assert_int_equal(dim, n);
    for (uint32_t i = 0; i < n; i++)
        assert_true(v[i] == want[i]);
    free(v);
}

static void test_text_valid(void **state)
{
    (void)state;
    const float v3[] = {1, 2, 3};
    expect_vec(FSD_VFORMAT_TEXT, "1 2 3", v3, 3);
    expect_vec(FSD_VFORMAT_TEXT, "1 2 3\n", v3, 3);
    expect_vec(FSD_VFORMAT_TEXT, "[1, 2, 3]", v3, 3);
    expect_vec(FSD_VFORMAT_TEXT, "[1,2,3]\n", v3, 3);
    expect_vec(FSD_VFORMAT_TEXT, "1,2,3", v3, 3);
    expect_vec(FSD_VFORMAT_TEXT, "  \t1\n2\r\n3  ", v3, 3);
    expect_vec(FSD_VFORMAT_TEXT, "\n[ 1 ,2 , 3 ]\n\n", v3, 3);
    expect_vec(FSD_VFORMAT_TEXT, "+1 2.0 3e0", v3, 3);
    const float v4[] = {0.5f, 5.0f, -1.5e-3f, 2.5e10f};
    expect_vec(FSD_VFORMAT_TEXT, ".5 5. -1.5e-3 2.5E+10", v4, 4);
    const float v1[] = {42};
    expect_vec(FSD_VFORMAT_TEXT, "42", v1, 1);
    /* Underflow to a subnormal or zero is a finite value, accepted. */
    float *v = NULL;
    uint32_t dim = 0;
    assert_int_equal(parse(FSD_VFORMAT_TEXT, "1e-45 1e-50", 11, 0, &v, &dim), 0);
    assert_int_equal(dim, 2);
    assert_true(v[1] == 0.0f);
    free(v);
}

static void test_text_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",     "   \n", "[]",     "[ ]",  "1,,2",  "1,",      ",1",   "1 ,",    "[1 2",
        "1 2]", "[1] 2", "[[1]]",  "nan",  "NaN",   "inf",     "-inf", "1 inf",  "0x1p3",
        "1e39", "-1e39", "1a",     "--1",  "1e",    "e5",      ".",    "1..2",   "1.2.3",
        "+",    "1 2 x", "[1,2,]", "[,1]", "1;2",   "1e+",     "١",    "1\0002", "]",
        "[",    "1 [2]", "1-2",    "0x10", "1_000", "infinity"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i]);
        if (i == 34)
            len = 3; /* "1\0002": a NUL inside the content */
        float *v = NULL;
        uint32_t dim = 0;
        int rc = parse(FSD_VFORMAT_TEXT, bad[i], len, 0, &v, &dim);
        if (rc != -EINVAL)
            fail_msg("\"%s\" gave %d, want -EINVAL", bad[i], rc);
        assert_null(v);
    }
    /* A token longer than FSD_NUMBER_MAX is refused, not truncated. */
    char longnum[FSD_NUMBER_MAX + 8];
    memset(longnum, '1', sizeof longnum - 1);
    longnum[0] = '0';
    longnum[1] = '.';
    longnum[sizeof longnum - 1] = '\0';
    assert_int_equal(parse_str(FSD_VFORMAT_TEXT, longnum), -EINVAL);
    longnum[FSD_NUMBER_MAX] = '\0';
    assert_int_equal(parse_str(FSD_VFORMAT_TEXT, longnum), 0);
}

/* The input is not NUL-terminated: only len bytes count. */
static void test_text_length_bound(void **state)
{
    (void)state;
    const char buf[] = {'1', ' ', '2', '3', ' ', 'x'};
    float *v = NULL;
    uint32_t dim = 0;
    assert_int_equal(parse(FSD_VFORMAT_TEXT, buf, 3, 0, &v, &dim), 0);
    assert_int_equal(dim, 2);
    assert_true(v[0] == 1.0f && v[1] == 2.0f);
    free(v);
    assert_int_equal(parse(FSD_VFORMAT_TEXT, buf, 4, 0, &v, &dim), 0);
    assert_true(v[1] == 23.0f);
    free(v);
    assert_int_equal(parse(FSD_VFORMAT_TEXT, buf, 6, 0, &v, &dim), -EINVAL);
    assert_int_equal(fsd_vector_parse(FSD_VFORMAT_TEXT, NULL, 0, 0, &v, &dim), -EINVAL);
    assert_int_equal(fsd_vector_parse(FSD_VFORMAT_F32, NULL, 0, 0, &v, &dim), -EINVAL);
    assert_int_equal(fsd_vector_parse(FSD_VFORMAT_JSON, NULL, 0, 0, &v, &dim), -EINVAL);
}

static void test_number_parse(void **state)
{
    (void)state;
    float f;
    assert_int_equal(fsd_number_parse("0.1", 3, &f), 0);
    assert_true(f == 0.1f);
    assert_int_equal(fsd_number_parse("-0", 2, &f), 0);
    assert_true(f == 0.0f && signbit(f));
    assert_int_equal(fsd_number_parse("3.4028235e38", 12, &f), 0);
    assert_true(f == FLT_MAX);
    assert_int_equal(fsd_number_parse("3.5e38", 6, &f), -EINVAL);
    assert_int_equal(fsd_number_parse("1 ", 2, &f), -EINVAL);
    assert_int_equal(fsd_number_parse(" 1", 2, &f), -EINVAL);
    assert_int_equal(fsd_number_parse("", 0, &f), -EINVAL);
    assert_int_equal(fsd_number_parse("12", 1, &f), 0); /* only len bytes */
    assert_true(f == 1.0f);
}

static void test_text_into(void **state)
{
    (void)state;
    float out[3];
    uint32_t dim = 9;
    assert_int_equal(fsd_vector_parse_text_into("1 2 3", 5, out, 3, &dim), 0);
    assert_int_equal(dim, 3);
    assert_true(out[2] == 3.0f);
    assert_int_equal(fsd_vector_parse_text_into("1 2 3 4", 7, out, 3, &dim), -EFBIG);
    assert_int_equal(dim, 0);
    assert_int_equal(fsd_vector_parse_text_into("1 x", 3, out, 3, &dim), -EINVAL);
}

static void put_f32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(u >> (8 * i));
}

static void test_f32(void **state)
{
    (void)state;
    unsigned char b[12];
    put_f32(b, 1.5f);
    put_f32(b + 4, -2.0f);
    put_f32(b + 8, 0.0f);
    float *v = NULL;
    uint32_t dim = 0;
    assert_int_equal(parse(FSD_VFORMAT_F32, (char *)b, 12, 0, &v, &dim), 0);
    assert_int_equal(dim, 3);
    assert_true(v[0] == 1.5f && v[1] == -2.0f && v[2] == 0.0f);
    free(v);
    assert_int_equal(parse(FSD_VFORMAT_F32, (char *)b, 12, 3, &v, &dim), 0);
    free(v);
    assert_int_equal(parse(FSD_VFORMAT_F32, (char *)b, 12, 4, &v, &dim), -EINVAL);
    assert_int_equal(parse(FSD_VFORMAT_F32, (char *)b, 0, 0, &v, &dim), -EINVAL);
    for (size_t len = 1; len < 12; len++)
        if (len % 4)
            assert_int_equal(parse(FSD_VFORMAT_F32, (char *)b, len, 0, &v, &dim), -EINVAL);
    put_f32(b + 4, NAN);
    assert_int_equal(parse(FSD_VFORMAT_F32, (char *)b, 12, 0, &v, &dim), -EINVAL);
    put_f32(b + 4, INFINITY);
    assert_int_equal(parse(FSD_VFORMAT_F32, (char *)b, 12, 0, &v, &dim), -EINVAL);
    put_f32(b + 4, -INFINITY);
    assert_int_equal(parse(FSD_VFORMAT_F32, (char *)b, 12, 0, &v, &dim), -EINVAL);
}

static void test_dim_limits(void **state)
{
    (void)state;
    size_t n = (size_t)FSD_MAX_DIM + 1;
    unsigned char *b = calloc(n, 4);
    assert_non_null(b);
    float *v = NULL;
    uint32_t dim = 0;
    assert_int_equal(fsd_vector_parse(FSD_VFORMAT_F32, b, n * 4, 0, &v, &dim), -EFBIG);
    assert_int_equal(fsd_vector_parse(FSD_VFORMAT_F32, b, (n - 1) * 4, 0, &v, &dim), 0);
    assert_int_equal(dim, FSD_MAX_DIM);
    free(v);
    free(b);

    /* The same limit in text and JSON. */
    char *t = malloc(n * 2 + 2);
    assert_non_null(t);
    size_t len = 0;
    t[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        t[len++] = '0';
        t[len++] = ',';
    }
    t[len - 1] = ']';
    assert_int_equal(fsd_vector_parse(FSD_VFORMAT_TEXT, t, len, 0, &v, &dim), -EFBIG);
    assert_int_equal(fsd_vector_parse(FSD_VFORMAT_JSON, t, len, 0, &v, &dim), -EFBIG);
    /* One number fewer fits. */
    t[len - 3] = ']';
    assert_int_equal(fsd_vector_parse(FSD_VFORMAT_TEXT, t, len - 2, 0, &v, &dim), 0);
    assert_int_equal(dim, FSD_MAX_DIM);
    free(v);
    assert_int_equal(fsd_vector_parse(FSD_VFORMAT_JSON, t, len - 2, 0, &v, &dim), 0);
    assert_int_equal(dim, FSD_MAX_DIM);
    free(v);
    free(t);
}

static void test_json(void **state)
{
    (void)state;
    const float v3[] = {1, 2.5f, -300};
    expect_vec(FSD_VFORMAT_JSON, "[1, 2.5, -3e2]", v3, 3);
    expect_vec(FSD_VFORMAT_JSON, " [1,2.5,-3E+2]\n", v3, 3);
    static const char *const bad[] = {
        "",  "[]",    "{}",     "[1, \"a\"]", "[1] x", "[1e400]", "[1e39]", "[NaN]",     "[1,]",
        "1", "[[1]]", "[null]", "[true]",     "[1 2]", "\"[1]\"", "[1, 2",  "[Infinity]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_str(FSD_VFORMAT_JSON, bad[i]);
        if (rc != -EINVAL)
            fail_msg("JSON \"%s\" gave %d, want -EINVAL", bad[i], rc);
    }
    float *v = NULL;
    uint32_t dim = 0;
    /* Integers beyond 64 bits are numbers like any other (found by
     * fuzzing: jansson refused them while strtof takes them). */
    const float big[] = {1.0f, 1.1111111e36f};
    expect_vec(FSD_VFORMAT_JSON, "[1, 1111111111111111111111111111111111111]", big, 2);
    assert_int_equal(parse(FSD_VFORMAT_JSON, "[1,2]", 5, 3, &v, &dim), -EINVAL);
    assert_int_equal(parse(FSD_VFORMAT_JSON, "[1,2]", 5, 2, &v, &dim), 0);
    free(v);
}

/* Every number form docs/filesystem.md lists, in the formats it names:
 * text takes the decimal grammar of vector_format.h, .json files take RFC 8259
 * numbers only (they stay readable by any JSON tool). */
static void test_documented_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *tok;
        float value;
        bool json;
    } forms[] = {
        {"1", 1.0f, true},     {"-0.5", -0.5f, true}, {"0.5", 0.5f, true},   {"2e-3", 2e-3f, true},
        {"5E+3", 5e3f, true},  {"-0", -0.0f, true},   {".5", 0.5f, false},   {"5.", 5.0f, false},
        {"5.e3", 5e3f, false}, {"+2", 2.0f, false},   {"-.5", -0.5f, false}, {"007", 7.0f, false},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char text[64], json[64];
        snprintf(text, sizeof text, "%s 1", forms[i].tok);
        snprintf(json, sizeof json, "[%s, 1]", forms[i].tok);
        const float want[] = {forms[i].value, 1.0f};
        expect_vec(FSD_VFORMAT_TEXT, text, want, 2);
        expect_vec(FSD_VFORMAT_TEXT, json, want, 2); /* text also takes [a, b] */
        if (forms[i].json)
            expect_vec(FSD_VFORMAT_JSON, json, want, 2);
        else if (parse_str(FSD_VFORMAT_JSON, json) != -EINVAL)
            fail_msg("JSON \"%s\" was accepted; JSON has no such number", json);
    }
}

static void test_format_from_name(void **state)
{
    (void)state;
    assert_int_equal(fsd_vformat_from_name("a.f32", 5), FSD_VFORMAT_F32);
    assert_int_equal(fsd_vformat_from_name("a.json", 6), FSD_VFORMAT_JSON);
    assert_int_equal(fsd_vformat_from_name("a.txt", 5), FSD_VFORMAT_TEXT);
    assert_int_equal(fsd_vformat_from_name("a", 1), FSD_VFORMAT_TEXT);
    assert_int_equal(fsd_vformat_from_name("a.F32", 5), FSD_VFORMAT_TEXT);
    assert_int_equal(fsd_vformat_from_name(".json", 5), FSD_VFORMAT_TEXT);
    /* Only len bytes of the name count. */
    assert_int_equal(fsd_vformat_from_name("a.f32.txt", 5), FSD_VFORMAT_F32);
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void roundtrip(const float *v, uint32_t dim)
{
    static const fsd_vformat fmts[] = {FSD_VFORMAT_F32, FSD_VFORMAT_JSON, FSD_VFORMAT_TEXT};
    for (size_t f = 0; f < 3; f++) {
        char *s = NULL;
        size_t len = 0;
        assert_int_equal(fsd_vector_format(fmts[f], v, dim, &s, &len), 0);
        assert_non_null(s);
        float *back = NULL;
        uint32_t bd = 0;
        int rc = parse(fmts[f], s, len, dim, &back, &bd);
        if (rc)
            fail_msg("format %zu: \"%.80s\" does not parse back: %d", f, s, rc);
        assert_int_equal(bd, dim);
        assert_memory_equal(back, v, dim * sizeof(float));
        free(back);
        free(s);
    }
}

static void test_format_roundtrip(void **state)
{
    (void)state;
    const float special[] = {0.0f, -0.0f,    FLT_MAX,     -FLT_MAX, FLT_MIN,      1e-45f, -1e-45f,
                             0.1f, 1.0f / 3, 16777217.0f, 1e30f,    123456789.0f, 1e-7f};
    roundtrip(special, sizeof special / sizeof special[0]);
    float v[256];
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < 256; i++) {
            uint32_t u;
            do
                u = rnd32();
            while (((u >> 23) & 0xff) == 0xff); /* skip NaN/Inf */
            memcpy(&v[i], &u, 4);
        }
        roundtrip(v, 1 + (uint32_t)(rnd32() % 256));
    }
    /* Shortest forms. */
    char *s;
    size_t len;
    const float w[] = {0.1f, 1.0f, -2.5f, 100.0f};
    assert_int_equal(fsd_vector_format(FSD_VFORMAT_TEXT, w, 4, &s, &len), 0);
    assert_string_equal(s, "0.1 1 -2.5 100\n");
    assert_int_equal(len, strlen(s));
    free(s);
    assert_int_equal(fsd_vector_format(FSD_VFORMAT_JSON, w, 4, &s, &len), 0);
    assert_string_equal(s, "[0.1, 1, -2.5, 100]\n");
    free(s);
    const float nz[] = {-0.0f};
    assert_int_equal(fsd_vector_format(FSD_VFORMAT_JSON, nz, 1, &s, &len), 0);
    assert_string_equal(s, "[-0.0]\n");
    free(s);
    assert_int_equal(fsd_vector_format(FSD_VFORMAT_F32, w, 4, &s, &len), 0);
    assert_int_equal(len, 16);
    free(s);
    const float bad[] = {1.0f, NAN};
    assert_int_equal(fsd_vector_format(FSD_VFORMAT_TEXT, bad, 2, &s, &len), -EINVAL);
    assert_null(s);
    assert_int_equal(fsd_vector_format(FSD_VFORMAT_TEXT, w, 0, &s, &len), -EINVAL);
    char buf[17];
    size_t fl = fsd_float_format(-FLT_MIN, buf, sizeof buf);
    assert_int_equal(fl, strlen(buf));
    assert_true(strtof(buf, NULL) == -FLT_MIN);
}

/* ------------------------------------------------------------------ */
/* fsd_float_format against printf                                      */
/* ------------------------------------------------------------------ */

/* The definition fsd_float_format must meet, on libc alone: "%.{p}g" at
 * p = 8 if that reads back (else p = 9), then walking p down while it still
 * reads back, keeping the shortest string (the smaller p on a tie). */
static bool reads_back(const char *s, float f)
{
    float g = strtof(s, NULL);
    return memcmp(&g, &f, sizeof f) == 0;
}

static void float_format_libc(float f, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%.8g", (double)f);
    if (!reads_back(buf, f)) {
        snprintf(buf, size, "%.9g", (double)f);
        return;
    }
    char tmp[32];
    for (int prec = 7; prec >= 1; prec--) {
        int m = snprintf(tmp, sizeof tmp, "%.*g", prec, (double)f);
        if (!reads_back(tmp, f))
            break;
        if (m <= n) {
            memcpy(buf, tmp, (size_t)m + 1);
            n = m;
        }
    }
}

/* Compares fsd_float_format with the libc definition on the float with
 * these bits (non-finite patterns are skipped); true if they agree. They
 * may differ at a power of two, where the gap below is half the gap above:
 * there the nearest 8-digit decimal can miss the narrower lower half while
 * another 8-digit one reads back, so libc's walk falls back to 9 digits
 * and fsd_float_format, which is truly shortest, must be shorter. */
static bool float_format_agrees(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    if (!isfinite(f))
        return true;
    char want[32], got[32];
    float_format_libc(f, want, sizeof want);
    size_t n = fsd_float_format(f, got, sizeof got);
    if (n == strlen(want) && strcmp(want, got) == 0)
        return true;
    if ((bits & 0x7fffffu) == 0 && n < strlen(want) && reads_back(got, f))
        return true;
    print_error("float bits 0x%08x: libc \"%s\", fsd_float_format \"%s\"\n", bits, want, got);
    return false;
}

/* Every float whose bits a structured sweep reaches: zeros, subnormals,
 * both ends of every binade, powers of ten and their neighbours, small
 * integers, and 4 million seeded random patterns. VECFS_FLOAT_EXHAUSTIVE=1
 * checks all 2^32 patterns instead (about an hour on one core). */
static void test_float_format_matches_libc(void **state)
{
    (void)state;
    size_t bad = 0;
    if (getenv("VECFS_FLOAT_EXHAUSTIVE")) {
        for (uint64_t b = 0; b <= UINT32_MAX && bad < 20; b++)
            bad += !float_format_agrees((uint32_t)b);
        assert_int_equal(bad, 0);
        return;
    }
    for (uint32_t sign = 0; sign <= 1; sign++) {
        uint32_t s = sign << 31;
        for (uint32_t m = 0; m < 4096; m++) /* zeros and small subnormals */
            bad += !float_format_agrees(s | m);
        for (uint32_t e = 0; e < 255; e++)
            for (uint32_t m = 0; m < 64; m++) {
                bad += !float_format_agrees(s | e << 23 | m);
                bad += !float_format_agrees(s | e << 23 | (0x7fffffu - m));
            }
        for (int p = -45; p <= 38; p++) {
            char lit[16];
            snprintf(lit, sizeof lit, "1e%d", p);
            float t = strtof(lit, NULL);
            uint32_t tb;
            memcpy(&tb, &t, sizeof tb);
            for (uint32_t d = 0; d < 16; d++) {
                bad += !float_format_agrees((s | tb) + d);
                bad += !float_format_agrees((s | tb) - d);
            }
        }
        for (uint32_t i = 0; i <= 200000; i++) {
            float v = (float)i;
            uint32_t vb;
            memcpy(&vb, &v, sizeof vb);
            bad += !float_format_agrees(s | vb);
        }
    }
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < 4000000 && bad < 20; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        bad += !float_format_agrees((uint32_t)(seed >> 16));
    }
    assert_int_equal(bad, 0);
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

static int af_text(void)
{
    float *v;
    uint32_t dim;
    static char big[4000];
    size_t len = 0;
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(big + len, sizeof big - len, "%d ", i % 10);
    int rc = fsd_vector_parse(FSD_VFORMAT_TEXT, big, len, 0, &v, &dim);
    if (!rc) {
        assert_int_equal(dim, 1000);
        free(v);
    }
    return rc;
}

static int af_json(void)
{
    float *v;
    uint32_t dim;
    int rc = fsd_vector_parse(FSD_VFORMAT_JSON, "[1, 2, 3]", 9, 3, &v, &dim);
    if (!rc)
        free(v);
    return rc;
}

static int af_f32(void)
{
    float in[2] = {1, 2}, *v;
    uint32_t dim;
    int rc = fsd_vector_parse(FSD_VFORMAT_F32, in, 8, 0, &v, &dim);
    if (!rc)
        free(v);
    return rc;
}

static int af_format(void)
{
    float in[2] = {1, 2};
    char *s;
    size_t len;
    int rc = fsd_vector_format(FSD_VFORMAT_JSON, in, 2, &s, &len);
    if (!rc) {
        assert_string_equal(s, "[1, 2]\n");
        free(s);
    } else {
        assert_null(s);
    }
    return rc;
}

static void test_alloc_failures(void **state)
{
    (void)state;
    alloc_sweep(af_text, "text vector");
    alloc_sweep(af_json, "json vector");
    alloc_sweep(af_f32, "f32 vector");
    alloc_sweep(af_format, "format");
}

static void test_vecnames(void **state)
{
    (void)state;
    char n[300];
    assert_int_equal(fsd_vecname_check("doc-1.f32", 9), 0);
    assert_int_equal(fsd_vecname_check(".doc.f32.Xa1b2c", 15), 0); /* rsync temp */
    assert_int_equal(fsd_vecname_check("with space \xc3\xa9", 13), 0);
    assert_int_equal(fsd_vecname_check(".", 1), -EINVAL);
    assert_int_equal(fsd_vecname_check("..", 2), -EINVAL);
    assert_int_equal(fsd_vecname_check("...", 3), 0);
    assert_int_equal(fsd_vecname_check(".config", 7), -EINVAL);
    assert_int_equal(fsd_vecname_check(".query", 6), -EINVAL);
    assert_int_equal(fsd_vecname_check(".import", 7), -EINVAL);
    assert_int_equal(fsd_vecname_check(".configx", 8), 0);
    assert_int_equal(fsd_vecname_check(".confi", 6), 0);
    assert_int_equal(fsd_vecname_check("a/b", 3), -EINVAL);
    assert_int_equal(fsd_vecname_check("a\0b", 3), -EINVAL);
    assert_int_equal(fsd_vecname_check("", 0), -EINVAL);
    memset(n, 'v', sizeof n);
    assert_int_equal(fsd_vecname_check(n, 255), 0);
    assert_int_equal(fsd_vecname_check(n, 256), -ENAMETOOLONG);
    assert_true(st_name_is_reserved(".query", 6));
    assert_false(st_name_is_reserved(".query", 5));
}

static void test_stem_suffix(void **state)
{
    (void)state;
    assert_int_equal(fsd_name_stem_len("base.fvecs", 10), 4);
    assert_int_equal(fsd_name_stem_len("a.b.npy", 7), 3);
    assert_int_equal(fsd_name_stem_len(".hidden", 7), 7);
    assert_int_equal(fsd_name_stem_len("noext", 5), 5);
    assert_int_equal(fsd_name_stem_len(".x.jsonl", 8), 2);
    assert_true(fsd_name_has_suffix("a.npy", 5, ".npy"));
    assert_false(fsd_name_has_suffix(".npy", 4, ".npy"));
    assert_false(fsd_name_has_suffix("a.np", 4, ".npy"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_valid),         cmocka_unit_test(test_text_invalid),
        cmocka_unit_test(test_text_length_bound),  cmocka_unit_test(test_number_parse),
        cmocka_unit_test(test_text_into),          cmocka_unit_test(test_f32),
        cmocka_unit_test(test_dim_limits),         cmocka_unit_test(test_json),
        cmocka_unit_test(test_documented_numbers), cmocka_unit_test(test_format_from_name),
        cmocka_unit_test(test_format_roundtrip),   cmocka_unit_test(test_float_format_matches_libc),
        cmocka_unit_test(test_vecnames),           cmocka_unit_test(test_stem_suffix),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
