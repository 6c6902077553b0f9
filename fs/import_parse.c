/*
 * import_parse.c — parsing .fvecs, .npy and .jsonl files of many rows (see
 * import_parse.h).
 *
 * All three parsers fill one parse state (bstate): a contiguous float
 * block, a row table holding offsets, a string arena and a key/value table
 * holding offsets. Offsets (not pointers) are kept while the arena and
 * tables grow; finish() turns them into the pointers of fsd_rows once, at
 * the end.
 *
 * .jsonl files are parsed by import_jsonl.c into the same state
 * (import_state.h).
 *
 * Invariants
 *   1. Nothing reads data[i] for i >= len; no length field in the input is
 *      trusted before it is checked against the bytes that remain, and all
 *      size arithmetic is overflow-checked (rows * dim * 4 cannot wrap).
 *   2. A returned batch has n >= 1 rows, each of exactly dim (1..FSD_MAX_DIM,
 *      == expect_dim if given) finite floats, names valid and pairwise
 *      distinct (when names are made), metadata within its limits.
 *   3. Tables grow geometrically and duplicate names are found with a hash
 *      table: parsing is O(len) expected time.
 *   4. On error nothing is returned and everything allocated is freed.
 */
#include "import_parse.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "names.h"
#include "le.h"

#include "import_state.h"

/* Converts n LE floats at p into dst, checking each is finite. */
static int floats_load(bstate *s, float *dst, const unsigned char *p, size_t n, size_t row)
{
    for (size_t i = 0; i < n; i++) {
        dst[i] = vc_le_getf(p + 4 * i);
        if (!isfinite(dst[i]))
            return rows_fail(s, -EINVAL, "row %zu: value %zu is not finite", row, i);
    }
    return 0;
}

/* Names rows 0..n-1 "<stem>-<row>.f32". */
static int names_make(bstate *s, const char *stem, size_t stem_len)
{
    if (!stem)
        return 0;
    if (stem_len == 0 || memchr(stem, '/', stem_len) || memchr(stem, '\0', stem_len))
        return rows_fail(s, -EINVAL, "bad file name stem");
    char digits[24];
    int nd = snprintf(digits, sizeof digits, "%zu", s->n_rows ? s->n_rows - 1 : 0);
    if (stem_len + 1 + (size_t)nd + 4 > ST_NAME_MAX)
        return rows_fail(s, -ENAMETOOLONG, "row names \"%.*s-N.f32\" are too long",
                         (int)(stem_len > 32 ? 32 : stem_len), stem);
    int rc =
        rows_grow((void **)&s->arena, &s->arena_cap, s->n_rows * (stem_len + (size_t)nd + 6), 1);
    if (rc)
        return rc;
    char name[ST_NAME_MAX + 1];
    memcpy(name, stem, stem_len);
    name[stem_len] = '-';
    for (size_t i = 0; i < s->n_rows; i++) {
        int m = snprintf(name + stem_len + 1, sizeof name - stem_len - 1, "%zu.f32", i);
        size_t nl = stem_len + 1 + (size_t)m;
        rc = rows_arena_put(s, name, nl, &s->rows[i].name_off);
        if (rc)
            return rc;
        s->rows[i].name_len = nl;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* .fvecs                                                               */
/* ------------------------------------------------------------------ */

/* Parses a whole .fvecs file into s. */
static int parse_fvecs(bstate *s, const unsigned char *p, size_t len)
{
    if (len == 0)
        return rows_fail(s, -EINVAL, "no rows");
    if (len < 4)
        return rows_fail(s, -EINVAL, "row 0: truncated dim");
    uint32_t d = vc_le_get32(p);
    if (d == 0 || d > (uint32_t)INT32_MAX)
        return rows_fail(s, -EINVAL, "row 0: bad dim %d", (int32_t)d);
    int rc = rows_dim_check(s, d, "row", 0);
    if (rc)
        return rc;
    size_t row_bytes = 4 + 4 * (size_t)d;
    size_t n = len / row_bytes;
    if (len % row_bytes)
        return rows_fail(s, -EINVAL, "row %zu: truncated (file size %zu is not a multiple of %zu)",
                         n, len, row_bytes);
    if (n > FSD_ROWS_MAX)
        return rows_fail(s, -EFBIG, "%zu rows, at most %u", n, FSD_ROWS_MAX);
    s->vec = vc_malloc(n * d * sizeof(float)); /* <= len bytes: cannot overflow */
    if (!s->vec)
        return -ENOMEM;
    s->vec_cap = n * d;
    rc = rows_grow((void **)&s->rows, &s->rows_cap, n, sizeof(prow));
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *r = p + i * row_bytes;
        uint32_t rd = vc_le_get32(r);
        if (rd != d)
            return rows_fail(s, -EINVAL, "row %zu: dim %d, expected %u", i, (int32_t)rd, d);
        rc = floats_load(s, s->vec + i * d, r + 4, d, i);
        if (rc)
            return rc;
        prow *pr = rows_row_new(s);
        if (!pr)
            return -ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* .npy                                                                 */
/* ------------------------------------------------------------------ */

typedef struct cursor {
    const unsigned char *p;
    size_t i;
    size_t len;
} cursor;

/* Skips blanks in the .npy header. */
static void cur_ws(cursor *c)
{
    while (c->i < c->len && (c->p[c->i] == ' ' || c->p[c->i] == '\t'))
        c->i++;
}

/* Eats ch (after blanks); false if it is not next. */
static bool cur_eat(cursor *c, char ch)
{
    cur_ws(c);
    if (c->i < c->len && c->p[c->i] == (unsigned char)ch) {
        c->i++;
        return true;
    }
    return false;
}

/* A Python string literal '...' or "..." without escapes; *s, *n point to
 * its bytes. */
static bool cur_string(cursor *c, const char **str, size_t *n)
{
    cur_ws(c);
    if (c->i >= c->len || (c->p[c->i] != '\'' && c->p[c->i] != '"'))
        return false;
    unsigned char q = c->p[c->i++];
    size_t start = c->i;
    while (c->i < c->len && c->p[c->i] != q) {
        if (c->p[c->i] == '\\' || c->p[c->i] == '\n')
            return false;
        c->i++;
    }
    if (c->i >= c->len)
        return false;
    *str = (const char *)c->p + start;
    *n = c->i - start;
    c->i++;
    return true;
}

/* Eats the word w (after blanks); false if it is not next. */
static bool cur_word(cursor *c, const char *w)
{
    cur_ws(c);
    size_t n = strlen(w);
    if (c->len - c->i < n || memcmp(c->p + c->i, w, n) != 0)
        return false;
    c->i += n;
    return true;
}

/* A non-negative decimal integer up to 2^53. */
static bool cur_uint(cursor *c, uint64_t *out)
{
    cur_ws(c);
    uint64_t v = 0;
    size_t start = c->i;
    while (c->i < c->len && c->p[c->i] >= '0' && c->p[c->i] <= '9') {
        v = v * 10 + (uint64_t)(c->p[c->i] - '0');
        if (v > (1ull << 53))
            return false;
        c->i++;
    }
    *out = v;
    return c->i > start;
}

/* Parses the .npy header dict: its shape into *rows, *cols. */
static int npy_header(bstate *s, const unsigned char *h, size_t hlen, uint64_t *rows,
                      uint64_t *cols)
{
    cursor c = {h, 0, hlen};
    bool seen_descr = false, seen_order = false, seen_shape = false;

    if (!cur_eat(&c, '{'))
        return rows_fail(s, -EINVAL, "npy header: not a dict");
    for (;;) {
        if (cur_eat(&c, '}'))
            break;
        const char *key;
        size_t kn;
        if (!cur_string(&c, &key, &kn) || !cur_eat(&c, ':'))
            return rows_fail(s, -EINVAL, "npy header: bad key");
        if (kn == 5 && memcmp(key, "descr", 5) == 0 && !seen_descr) {
            const char *v;
            size_t vn;
            if (!cur_string(&c, &v, &vn))
                return rows_fail(s, -EINVAL, "npy header: bad descr");
            if (vn != 3 || memcmp(v, "<f4", 3) != 0)
                return rows_fail(s, -EINVAL, "npy: dtype '%.*s', only '<f4' (float32 LE)",
                                 (int)(vn > 16 ? 16 : vn), v);
            seen_descr = true;
        } else if (kn == 13 && memcmp(key, "fortran_order", 13) == 0 && !seen_order) {
            if (cur_word(&c, "True"))
                return rows_fail(s, -EINVAL, "npy: fortran_order True, only C order");
            if (!cur_word(&c, "False"))
                return rows_fail(s, -EINVAL, "npy header: bad fortran_order");
            seen_order = true;
        } else if (kn == 5 && memcmp(key, "shape", 5) == 0 && !seen_shape) {
            if (!cur_eat(&c, '(') || !cur_uint(&c, rows) || !cur_eat(&c, ',') ||
                !cur_uint(&c, cols))
                return rows_fail(s, -EINVAL, "npy: shape is not (rows, dim)");
            cur_eat(&c, ',');
            if (!cur_eat(&c, ')'))
                return rows_fail(s, -EINVAL, "npy: shape is not 2-D");
            seen_shape = true;
        } else {
            return rows_fail(s, -EINVAL, "npy header: unexpected key '%.*s'",
                             (int)(kn > 16 ? 16 : kn), key);
        }
        if (cur_eat(&c, '}'))
            break;
        if (!cur_eat(&c, ','))
            return rows_fail(s, -EINVAL, "npy header: expected ',' or '}'");
    }
    while (c.i < c.len && (h[c.i] == ' ' || h[c.i] == '\n'))
        c.i++;
    if (c.i != c.len)
        return rows_fail(s, -EINVAL, "npy header: bytes after the dict");
    if (!seen_descr || !seen_order || !seen_shape)
        return rows_fail(s, -EINVAL, "npy header: missing descr, fortran_order or shape");
    return 0;
}

/* Parses a whole .npy file into s. */
static int parse_npy(bstate *s, const unsigned char *p, size_t len)
{
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (len < 10 || memcmp(p, magic, 6) != 0)
        return rows_fail(s, -EINVAL, "npy: bad magic");
    unsigned major = p[6];
    size_t hstart, hlen;
    if (major == 1) {
        hlen = (size_t)p[8] | (size_t)p[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return rows_fail(s, -EINVAL, "npy: truncated header");
        hlen = vc_le_get32(p + 8);
        hstart = 12;
    } else {
        return rows_fail(s, -EINVAL, "npy: format version %u.%u", major, p[7]);
    }
    if (hlen > len - hstart)
        return rows_fail(s, -EINVAL, "npy: header length %zu past the end", hlen);
    uint64_t rows = 0, cols = 0;
    int rc = npy_header(s, p + hstart, hlen, &rows, &cols);
    if (rc)
        return rc;
    if (rows == 0)
        return rows_fail(s, -EINVAL, "no rows");
    rc = rows_dim_check(s, (size_t)(cols > FSD_MAX_DIM ? (uint64_t)FSD_MAX_DIM + 1 : cols), "row",
                        0);
    if (rc)
        return rc;
    if (rows > FSD_ROWS_MAX)
        return rows_fail(s, -EFBIG, "%llu rows, at most %u", (unsigned long long)rows,
                         FSD_ROWS_MAX);
    /* rows <= 1e8 and cols <= 65536: the product fits in 64 bits. */
    uint64_t want = rows * cols * 4;
    size_t have = len - hstart - hlen;
    if ((uint64_t)have != want)
        return rows_fail(s, -EINVAL, "npy: %zu data bytes, shape needs %llu", have,
                         (unsigned long long)want);
    size_t n = (size_t)rows, d = (size_t)cols;
    s->vec = vc_malloc(n * d * sizeof(float));
    if (!s->vec)
        return -ENOMEM;
    s->vec_cap = n * d;
    rc = rows_grow((void **)&s->rows, &s->rows_cap, n, sizeof(prow));
    if (rc)
        return rc;
    const unsigned char *data = p + hstart + hlen;
    for (size_t i = 0; i < n; i++) {
        rc = floats_load(s, s->vec + i * d, data + i * d * 4, d, i);
        if (rc)
            return rc;
        if (!rows_row_new(s))
            return -ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Public                                                               */
/* ------------------------------------------------------------------ */

int fsd_rows_format_from_name(const char *name, size_t len, fsd_rows_format *out)
{
    if (fsd_name_has_suffix(name, len, ".fvecs"))
        *out = FSD_ROWS_FVECS;
    else if (fsd_name_has_suffix(name, len, ".npy"))
        *out = FSD_ROWS_NPY;
    else if (fsd_name_has_suffix(name, len, ".jsonl"))
        *out = FSD_ROWS_JSONL;
    else
        return -EINVAL;
    return 0;
}

/* Frees what the parse state holds. */
static void state_free(bstate *s)
{
    free(s->vec);
    free(s->rows);
    free(s->arena);
    free(s->kv);
}

/* Moves the parse state into a batch with real pointers. */
static int finish(bstate *s, fsd_rows_format fmt, fsd_rows **out)
{
    fsd_rows *b = vc_calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->rows = vc_malloc(s->n_rows * sizeof(fsd_row));
    b->kv = s->n_kv ? vc_malloc(s->n_kv * sizeof(fsd_kv)) : NULL;
    if (!b->rows || (s->n_kv && !b->kv)) {
        free(b->rows);
        free(b->kv);
        free(b);
        return -ENOMEM;
    }
    b->format = fmt;
    b->dim = s->dim;
    b->n = s->n_rows;
    b->vectors = s->vec;
    b->arena = s->arena;
    for (size_t i = 0; i < s->n_kv; i++) {
        b->kv[i].key = s->arena + s->kv[i].key_off;
        b->kv[i].value = s->arena + s->kv[i].val_off;
        b->kv[i].value_len = s->kv[i].val_len;
    }
    for (size_t i = 0; i < s->n_rows; i++) {
        const prow *r = &s->rows[i];
        fsd_row *br = &b->rows[i];
        br->name = r->name_off == SIZE_MAX ? NULL : s->arena + r->name_off;
        br->name_len = r->name_off == SIZE_MAX ? 0 : r->name_len;
        br->vec = s->vec + i * s->dim;
        br->meta = r->n_kv ? b->kv + r->kv_first : NULL;
        br->n_meta = r->n_kv;
        br->text_off = r->text_off;
        br->text_len = r->text_len;
    }
    free(s->rows);
    free(s->kv);
    memset(s, 0, sizeof *s);
    *out = b;
    return 0;
}

int fsd_rows_parse(fsd_rows_format fmt, const void *data, size_t len, const char *stem,
                   size_t stem_len, uint32_t expect_dim, fsd_rows **out, char *err, size_t errlen)
{
    bstate s = {.expect_dim = expect_dim, .err = err, .errlen = errlen};
    int rc;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!data && len)
        return -EINVAL;
    if (!data)
        data = "";
    switch (fmt) {
    case FSD_ROWS_FVECS:
        rc = parse_fvecs(&s, data, len);
        if (!rc)
            rc = names_make(&s, stem, stem_len);
        break;
    case FSD_ROWS_NPY:
        rc = parse_npy(&s, data, len);
        if (!rc)
            rc = names_make(&s, stem, stem_len);
        break;
    case FSD_ROWS_JSONL:
        rc = rows_parse_jsonl(&s, data, len);
        break;
    default:
        rc = rows_fail(&s, -EINVAL, "unknown batch format");
        break;
    }
    if (!rc)
        rc = finish(&s, fmt, out);
    if (rc) {
        if (rc == -ENOMEM)
            rows_fail(&s, rc, "out of memory");
        state_free(&s);
    }
    return rc;
}

void fsd_rows_free(fsd_rows *b)
{
    if (!b)
        return;
    free(b->vectors);
    free(b->rows);
    free(b->arena);
    free(b->kv);
    free(b);
}
