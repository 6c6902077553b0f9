/*
 * vector_format.c — parsing and formatting the contents of vector files
 * (SPEC §3.1; the syntax is documented in vector_format.h).
 *
 * The text parser is a single left-to-right scan over the caller's bytes.
 * A token is a maximal run of bytes that are not white space, ',', '[' or
 * ']'; each token must be one decimal number (fsd_number_parse), which is
 * checked byte by byte before strtof sees a NUL-terminated copy of it, so
 * strtof can neither read past the token nor accept its extensions (hex,
 * "nan", "inf", locale digits).
 *
 * Invariants
 *   1. No function reads data[i] for i >= len; inputs are never assumed to
 *      be NUL-terminated (the fuzz target feeds exact-length buffers).
 *   2. A successful parse returns only finite float32 values and a dim in
 *      1..FSD_MAX_DIM (and == expect_dim when that is non-zero).
 *   3. On error every out-parameter is reset (NULL / 0) and nothing is
 *      leaked.
 *   4. fsd_vector_format(fmt, v) parses back to exactly v with
 *      fsd_vector_parse(fmt, ...): bit-identical floats (-0.0 included).
 *   5. Growing output arrays double their capacity, so parsing n numbers
 *      costs O(n) time.
 *   6. Every allocation of vector_format.c, import_parse.c, query_parse.c and query_result.c goes
 * through vc_malloc/calloc/realloc (common/alloc.h; vc_buf too), so tests can fail the N-th one and
 * check that each error path returns -ENOMEM and leaks nothing (jansson's own allocations are not
 * counted).
 */
#include "vector_format.h"

#include <engine.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "float_digits.h"
#include "names.h"
#include "le.h"

_Static_assert(FSD_MAX_DIM == VF_MAX_DIM, "files and the engine agree on the largest dim");
_Static_assert(sizeof(float) == 4, "float32 files need a 4-byte float");

fsd_vformat fsd_vformat_from_name(const char *name, size_t len)
{
    if (fsd_name_has_suffix(name, len, ".f32"))
        return FSD_VFORMAT_F32;
    if (fsd_name_has_suffix(name, len, ".json"))
        return FSD_VFORMAT_JSON;
    return FSD_VFORMAT_TEXT;
}

/* ------------------------------------------------------------------ */
/* Numbers                                                              */
/* ------------------------------------------------------------------ */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int fsd_number_parse(const char *tok, size_t len, float *out)
{
    const unsigned char *p = (const unsigned char *)tok;
    size_t i = 0, mant_digits = 0;
    char buf[FSD_NUMBER_MAX + 1];

    if (len == 0 || len > FSD_NUMBER_MAX || !tok)
        return -EINVAL;
    if (p[i] == '+' || p[i] == '-')
        i++;
    while (i < len && is_digit(p[i])) {
        i++;
        mant_digits++;
    }
    if (i < len && p[i] == '.') {
        i++;
        while (i < len && is_digit(p[i])) {
            i++;
            mant_digits++;
        }
    }
    if (mant_digits == 0)
        return -EINVAL;
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            i++;
        while (i < len && is_digit(p[i])) {
            i++;
            exp_digits++;
        }
        if (exp_digits == 0)
            return -EINVAL;
    }
    if (i != len)
        return -EINVAL;

    memcpy(buf, tok, len);
    buf[len] = '\0';
    char *end = NULL;
    float f = strtof(buf, &end);
    if (end != buf + len || !isfinite(f))
        return -EINVAL;
    *out = f;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Text vectors                                                         */
/* ------------------------------------------------------------------ */

/* Where parsed numbers go: a fixed caller array, or a growing heap one. */
typedef struct fvec {
    float *v;
    uint32_t n;
    uint32_t cap;
    bool fixed;
} fvec;

/* Appends x to f. -EFBIG past FSD_MAX_DIM (or a fixed capacity),
 * -ENOMEM. */
static int fvec_push(fvec *f, float x)
{
    if (f->n == f->cap) {
        if (f->fixed || f->cap >= FSD_MAX_DIM)
            return -EFBIG;
        uint32_t ncap = f->cap ? f->cap * 2 : 16;
        if (ncap > FSD_MAX_DIM)
            ncap = FSD_MAX_DIM;
        float *nv = vc_realloc(f->v, (size_t)ncap * sizeof(float));
        if (!nv)
            return -ENOMEM;
        f->v = nv;
        f->cap = ncap;
    }
    f->v[f->n++] = x;
    return 0;
}

static bool is_sep(unsigned char c)
{
    return is_space(c) || c == ',' || c == '[' || c == ']';
}

/* Parses the n bytes at p as one number and appends it to f. */
static int number_push(fvec *f, const char *p, size_t n)
{
    float x;
    int rc = fsd_number_parse(p, n, &x);
    return rc ? rc : fvec_push(f, x);
}

/* The text grammar of vector_format.h over data[0..len). */
static int text_scan(const char *data, size_t len, fvec *f)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    bool bracket = false;

    while (i < len && is_space(p[i]))
        i++;
    if (i < len && p[i] == '[') {
        bracket = true;
        i++;
    }
    for (;;) {
        while (i < len && is_space(p[i]))
            i++;
        if (i == len || p[i] == ']')
            break;
        size_t start = i;
        while (i < len && !is_sep(p[i]))
            i++;
        if (i == start)
            return -EINVAL; /* ',' or '[' where a number belongs */
        int rc = number_push(f, data + start, i - start);
        if (rc)
            return rc;
        while (i < len && is_space(p[i]))
            i++;
        if (i < len && p[i] == ',') {
            i++;
            while (i < len && is_space(p[i]))
                i++;
            if (i == len || is_sep(p[i]))
                return -EINVAL; /* trailing or doubled comma */
        }
    }
    if (bracket) {
        if (i == len)
            return -EINVAL;
        i++; /* the ']' */
        while (i < len && is_space(p[i]))
            i++;
    }
    if (i != len)
        return -EINVAL; /* a stray ']' or bytes after the closing one */
    if (f->n == 0)
        return -EINVAL;
    return 0;
}

int fsd_vector_parse_text_into(const char *data, size_t len, float *out, uint32_t cap,
                               uint32_t *dim_out)
{
    fvec f = {.v = out, .n = 0, .cap = cap, .fixed = true};
    *dim_out = 0;
    if (!data && len)
        return -EINVAL;
    int rc = text_scan(data, len, &f);
    if (rc == 0)
        *dim_out = f.n;
    return rc;
}

/* ------------------------------------------------------------------ */
/* JSON vectors                                                         */
/* ------------------------------------------------------------------ */

static bool is_json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A JSON number token (RFC 8259 grammar) of exactly n bytes. */
static bool json_number_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    if (i < n && p[i] == '-')
        i++;
    if (i < n && p[i] == '0')
        i++;
    else if (i < n && p[i] >= '1' && p[i] <= '9')
        while (i < n && is_digit(p[i]))
            i++;
    else
        return false;
    if (i < n && p[i] == '.') {
        size_t d = ++i;
        while (i < n && is_digit(p[i]))
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && is_digit(p[i]))
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

/* A JSON array of numbers, surrounded by optional JSON white space. Each
 * number is converted by strtof (via fsd_number_parse), exactly as the text
 * format converts it, so one array reads the same in both formats. */
static int json_scan(const char *data, size_t len, fvec *f)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    int rc;

    while (i < len && is_json_space(p[i]))
        i++;
    if (i >= len || p[i] != '[')
        return -EINVAL;
    i++;
    while (i < len && is_json_space(p[i]))
        i++;
    if (i < len && p[i] == ']')
        return -EINVAL; /* [] is no vector */
    for (;;) {
        size_t start = i;
        while (i < len && p[i] != ',' && p[i] != ']' && !is_json_space(p[i]))
            i++;
        if (!json_number_ok(p + start, i - start))
            return -EINVAL;
        rc = number_push(f, data + start, i - start);
        if (rc)
            return rc;
        while (i < len && is_json_space(p[i]))
            i++;
        if (i < len && p[i] == ',') {
            i++;
            while (i < len && is_json_space(p[i]))
                i++;
            continue;
        }
        if (i < len && p[i] == ']') {
            i++;
            break;
        }
        return -EINVAL;
    }
    while (i < len && is_json_space(p[i]))
        i++;
    return i == len ? 0 : -EINVAL;
}

int fsd_vector_parse_json_into(const char *data, size_t len, float *out, uint32_t cap,
                               uint32_t *dim_out)
{
    fvec f = {.v = out, .n = 0, .cap = cap, .fixed = true};
    *dim_out = 0;
    if (!data && len)
        return -EINVAL;
    int rc = json_scan(data ? data : "", len, &f);
    if (rc == 0)
        *dim_out = f.n;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Vector files                                                         */
/* ------------------------------------------------------------------ */

/* Parses raw little-endian float32 content. */
static int parse_f32(const void *data, size_t len, float **out, uint32_t *dim)
{
    if (len == 0 || len % 4 != 0)
        return -EINVAL;
    if (len / 4 > FSD_MAX_DIM)
        return -EFBIG;
    uint32_t n = (uint32_t)(len / 4);
    float *v = vc_malloc((size_t)n * sizeof(float));
    if (!v)
        return -ENOMEM;
    const unsigned char *p = data;
    for (uint32_t i = 0; i < n; i++) {
        v[i] = vc_le_getf(p + 4 * (size_t)i);
        if (!isfinite(v[i])) {
            free(v);
            return -EINVAL;
        }
    }
    *out = v;
    *dim = n;
    return 0;
}

int fsd_vector_parse(fsd_vformat fmt, const void *data, size_t len, uint32_t expect_dim,
                     float **out, uint32_t *dim_out)
{
    float *v = NULL;
    uint32_t dim = 0;
    int rc;

    *out = NULL;
    *dim_out = 0;
    if (!data && len)
        return -EINVAL;
    if (!data)
        data = "";
    switch (fmt) {
    case FSD_VFORMAT_F32:
        rc = parse_f32(data, len, &v, &dim);
        break;
    case FSD_VFORMAT_JSON: {
        fvec f = {0};
        rc = json_scan(data, len, &f);
        v = f.v;
        dim = f.n;
        break;
    }
    case FSD_VFORMAT_TEXT: {
        fvec f = {0};
        rc = text_scan(data, len, &f);
        v = f.v;
        dim = f.n;
        break;
    }
    default:
        rc = -EINVAL;
        break;
    }
    if (rc == 0 && expect_dim && dim != expect_dim)
        rc = -EINVAL;
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *dim_out = dim;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Formatting                                                           */
/* ------------------------------------------------------------------ */

/* Appends |exponent| with at least two digits, as printf's %e does. */
static size_t put_exponent(char *p, int exponent)
{
    size_t n = 0;
    p[n++] = 'e';
    p[n++] = exponent < 0 ? '-' : '+';
    unsigned e = (unsigned)(exponent < 0 ? -exponent : exponent);
    if (e >= 10)
        p[n++] = (char)('0' + e / 10);
    else
        p[n++] = '0';
    p[n++] = (char)('0' + e % 10);
    return n;
}

size_t fsd_float_format(float f, char *buf, size_t size)
{
    char out[32];
    size_t n = 0;
    if (!isfinite(f)) {
        const char *s = isnan(f) ? "nan" : (f < 0 ? "-inf" : "inf");
        n = strlen(s);
        memcpy(out, s, n);
    } else {
        char d[FSD_FLOAT_DIGITS_MAX + 1];
        int x;
        bool neg;
        size_t k = (size_t)fsd_float_digits(f, d, &x, &neg);
        if (neg)
            out[n++] = '-';
        /* The layout is printf's %g at the shortest precision that reads
         * back, except that an integer below 1e8 whose shortest digits stop
         * before its units (1e+02) is written out in full when that is
         * shorter (100): what "%.{p}g" for p up to 8 yields at its
         * shortest. */
        size_t sci = k + (k > 1) + 4;
        if (x >= (int)k && x <= 7 && (size_t)x + 1 < sci) {
            n += (size_t)snprintf(out + n, sizeof out - n, "%.0f", fabs((double)f));
        } else if (x < -4 || x >= (int)k) {
            out[n++] = d[0];
            if (k > 1) {
                out[n++] = '.';
                memcpy(out + n, d + 1, k - 1);
                n += k - 1;
            }
            n += put_exponent(out + n, x);
        } else if (x >= 0) {
            memcpy(out + n, d, (size_t)x + 1);
            n += (size_t)x + 1;
            if (k > (size_t)x + 1) {
                out[n++] = '.';
                memcpy(out + n, d + x + 1, k - (size_t)x - 1);
                n += k - (size_t)x - 1;
            }
        } else {
            out[n++] = '0';
            out[n++] = '.';
            for (int z = -1; z > x; z--)
                out[n++] = '0';
            memcpy(out + n, d, k);
            n += k;
        }
    }
    if (size == 0)
        return 0;
    if (n >= size)
        n = size - 1;
    memcpy(buf, out, n);
    buf[n] = '\0';
    return n;
}

int fsd_vector_format(fsd_vformat fmt, const float *v, uint32_t dim, char **out, size_t *len_out)
{
    *out = NULL;
    *len_out = 0;
    if (dim == 0 || dim > FSD_MAX_DIM || !v)
        return -EINVAL;
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(v[i]))
            return -EINVAL;

    if (fmt == FSD_VFORMAT_F32) {
        unsigned char *b = vc_malloc((size_t)dim * 4 + 1);
        if (!b)
            return -ENOMEM;
        for (uint32_t i = 0; i < dim; i++)
            vc_le_putf(b + 4 * (size_t)i, v[i]);
        b[(size_t)dim * 4] = '\0';
        *out = (char *)b;
        *len_out = (size_t)dim * 4;
        return 0;
    }
    if (fmt != FSD_VFORMAT_JSON && fmt != FSD_VFORMAT_TEXT)
        return -EINVAL;

    /* At most 16 bytes per number plus a 2-byte separator, brackets,
     * newline and NUL. */
    size_t cap = (size_t)dim * 18 + 4;
    char *b = vc_malloc(cap);
    if (!b)
        return -ENOMEM;
    size_t len = 0;
    bool json = fmt == FSD_VFORMAT_JSON;
    if (json)
        b[len++] = '[';
    for (uint32_t i = 0; i < dim; i++) {
        if (i) {
            if (json)
                b[len++] = ',';
            b[len++] = ' ';
        }
        /* JSON reads "-0" as the integer 0, so keep the sign with "-0.0". */
        if (json && v[i] == 0.0f && signbit(v[i])) {
            memcpy(b + len, "-0.0", 4);
            len += 4;
        } else {
            len += fsd_float_format(v[i], b + len, cap - len);
        }
    }
    if (json)
        b[len++] = ']';
    b[len++] = '\n';
    b[len] = '\0';
    *out = b;
    *len_out = len;
    return 0;
}
