/*
 * batch.c — parsing .fvecs, .npy and .jsonl batch files (see batch.h).
 *
 * All three parsers fill one parse state (bstate): a contiguous float
 * block, a row table holding offsets, a string arena and a key/value table
 * holding offsets. Offsets (not pointers) are kept while the arena and
 * tables grow; finish() turns them into the pointers of fsd_batch once, at
 * the end.
 *
 * .jsonl lines are parsed in two steps, for speed and exactness: a small
 * structural scan (find_vector_span) finds the bytes of the top-level
 * "vector" array; jansson then parses the line with that array replaced by
 * a placeholder 0 (so it never builds one object per number), and the
 * array itself is read by a strict JSON number-array scanner with strtof
 * (correctly rounded to float32, the same conversion the text format uses,
 * so the row's text reads back to exactly its vector). If the scan does
 * not find the array (e.g. an escaped key), jansson parses the whole line
 * and the row gets no text.
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
#include "batch.h"

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

/* ------------------------------------------------------------------ */
/* Parse state                                                          */
/* ------------------------------------------------------------------ */

typedef struct prow {
    size_t name_off; /* into arena; SIZE_MAX for no name */
    size_t name_len;
    size_t kv_first;
    size_t n_kv;
    size_t text_off;
    size_t text_len;
} prow;

typedef struct pkv {
    size_t key_off;
    size_t val_off;
    size_t val_len;
} pkv;

typedef struct bstate {
    uint32_t dim; /* 0 until the first row fixes it */
    uint32_t expect_dim;
    float *vec; /* rows * dim floats */
    size_t vec_cap;
    prow *rows;
    size_t n_rows;
    size_t rows_cap;
    char *arena;
    size_t arena_len;
    size_t arena_cap;
    pkv *kv;
    size_t n_kv;
    size_t kv_cap;
    char *err;
    size_t errlen;
} bstate;

static int fail(bstate *s, int rc, const char *fmt, ...)
{
    if (s->err && s->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->err, s->errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Makes room for `need` elements of `elem` bytes in *p (capacity *cap). */
static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return -ENOMEM;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return -ENOMEM;
    void *np = vc_realloc(*p, ncap * elem);
    if (!np)
        return -ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

/* Appends len bytes and a NUL to the arena; *off_out is where they went. */
static int arena_put(bstate *s, const char *bytes, size_t len, size_t *off_out)
{
    if (len > SIZE_MAX - s->arena_len - 1)
        return -ENOMEM;
    int rc = grow((void **)&s->arena, &s->arena_cap, s->arena_len + len + 1, 1);
    if (rc)
        return rc;
    if (len)
        memcpy(s->arena + s->arena_len, bytes, len);
    s->arena[s->arena_len + len] = '\0';
    *off_out = s->arena_len;
    s->arena_len += len + 1;
    return 0;
}

static prow *row_new(bstate *s)
{
    if (s->n_rows >= FSD_BATCH_MAX_ROWS)
        return NULL;
    if (grow((void **)&s->rows, &s->rows_cap, s->n_rows + 1, sizeof(prow)))
        return NULL;
    prow *r = &s->rows[s->n_rows++];
    memset(r, 0, sizeof *r);
    r->name_off = SIZE_MAX;
    r->kv_first = s->n_kv;
    return r;
}

/* Checks a row's dim against the batch's, fixing the batch's on the first
 * row. `where` names the row in messages. */
static int dim_check(bstate *s, size_t dim, const char *what, size_t where)
{
    if (dim == 0)
        return fail(s, -EINVAL, "%s %zu: empty vector", what, where);
    if (dim > FSD_MAX_DIM)
        return fail(s, -EFBIG, "%s %zu: dim %zu over %u", what, where, dim, FSD_MAX_DIM);
    if (s->dim == 0) {
        if (s->expect_dim && dim != s->expect_dim)
            return fail(s, -EINVAL, "%s %zu: dim %zu, expected %u", what, where, dim,
                        s->expect_dim);
        s->dim = (uint32_t)dim;
    } else if (dim != s->dim) {
        return fail(s, -EINVAL, "%s %zu: dim %zu, expected %u", what, where, dim, s->dim);
    }
    return 0;
}

/* Converts n LE floats at p into dst, checking each is finite. */
static int floats_load(bstate *s, float *dst, const unsigned char *p, size_t n, size_t row)
{
    for (size_t i = 0; i < n; i++) {
        dst[i] = vc_le_getf(p + 4 * i);
        if (!isfinite(dst[i]))
            return fail(s, -EINVAL, "row %zu: value %zu is not finite", row, i);
    }
    return 0;
}

/* Names rows 0..n-1 "<stem>-<row>.f32". */
static int names_make(bstate *s, const char *stem, size_t stem_len)
{
    if (!stem)
        return 0;
    if (stem_len == 0 || memchr(stem, '/', stem_len) || memchr(stem, '\0', stem_len))
        return fail(s, -EINVAL, "bad file name stem");
    char digits[24];
    int nd = snprintf(digits, sizeof digits, "%zu", s->n_rows ? s->n_rows - 1 : 0);
    if (stem_len + 1 + (size_t)nd + 4 > FSD_VECNAME_MAX)
        return fail(s, -ENAMETOOLONG, "row names \"%.*s-N.f32\" are too long",
                    (int)(stem_len > 32 ? 32 : stem_len), stem);
    int rc = grow((void **)&s->arena, &s->arena_cap, s->n_rows * (stem_len + (size_t)nd + 6), 1);
    if (rc)
        return rc;
    char name[FSD_VECNAME_MAX + 1];
    memcpy(name, stem, stem_len);
    name[stem_len] = '-';
    for (size_t i = 0; i < s->n_rows; i++) {
        int m = snprintf(name + stem_len + 1, sizeof name - stem_len - 1, "%zu.f32", i);
        size_t nl = stem_len + 1 + (size_t)m;
        rc = arena_put(s, name, nl, &s->rows[i].name_off);
        if (rc)
            return rc;
        s->rows[i].name_len = nl;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* .fvecs                                                               */
/* ------------------------------------------------------------------ */

static int parse_fvecs(bstate *s, const unsigned char *p, size_t len)
{
    if (len == 0)
        return fail(s, -EINVAL, "no rows");
    if (len < 4)
        return fail(s, -EINVAL, "row 0: truncated dim");
    uint32_t d = vc_le_get32(p);
    if (d == 0 || d > (uint32_t)INT32_MAX)
        return fail(s, -EINVAL, "row 0: bad dim %d", (int32_t)d);
    int rc = dim_check(s, d, "row", 0);
    if (rc)
        return rc;
    size_t row_bytes = 4 + 4 * (size_t)d;
    size_t n = len / row_bytes;
    if (len % row_bytes)
        return fail(s, -EINVAL, "row %zu: truncated (file size %zu is not a multiple of %zu)", n,
                    len, row_bytes);
    if (n > FSD_BATCH_MAX_ROWS)
        return fail(s, -EFBIG, "%zu rows, at most %u", n, FSD_BATCH_MAX_ROWS);
    s->vec = vc_malloc(n * d * sizeof(float)); /* <= len bytes: cannot overflow */
    if (!s->vec)
        return -ENOMEM;
    s->vec_cap = n * d;
    rc = grow((void **)&s->rows, &s->rows_cap, n, sizeof(prow));
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *r = p + i * row_bytes;
        uint32_t rd = vc_le_get32(r);
        if (rd != d)
            return fail(s, -EINVAL, "row %zu: dim %d, expected %u", i, (int32_t)rd, d);
        rc = floats_load(s, s->vec + i * d, r + 4, d, i);
        if (rc)
            return rc;
        prow *pr = row_new(s);
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

static void cur_ws(cursor *c)
{
    while (c->i < c->len && (c->p[c->i] == ' ' || c->p[c->i] == '\t'))
        c->i++;
}

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

static int npy_header(bstate *s, const unsigned char *h, size_t hlen, uint64_t *rows,
                      uint64_t *cols)
{
    cursor c = {h, 0, hlen};
    bool seen_descr = false, seen_order = false, seen_shape = false;

    if (!cur_eat(&c, '{'))
        return fail(s, -EINVAL, "npy header: not a dict");
    for (;;) {
        if (cur_eat(&c, '}'))
            break;
        const char *key;
        size_t kn;
        if (!cur_string(&c, &key, &kn) || !cur_eat(&c, ':'))
            return fail(s, -EINVAL, "npy header: bad key");
        if (kn == 5 && memcmp(key, "descr", 5) == 0 && !seen_descr) {
            const char *v;
            size_t vn;
            if (!cur_string(&c, &v, &vn))
                return fail(s, -EINVAL, "npy header: bad descr");
            if (vn != 3 || memcmp(v, "<f4", 3) != 0)
                return fail(s, -EINVAL, "npy: dtype '%.*s', only '<f4' (float32 LE)",
                            (int)(vn > 16 ? 16 : vn), v);
            seen_descr = true;
        } else if (kn == 13 && memcmp(key, "fortran_order", 13) == 0 && !seen_order) {
            if (cur_word(&c, "True"))
                return fail(s, -EINVAL, "npy: fortran_order True, only C order");
            if (!cur_word(&c, "False"))
                return fail(s, -EINVAL, "npy header: bad fortran_order");
            seen_order = true;
        } else if (kn == 5 && memcmp(key, "shape", 5) == 0 && !seen_shape) {
            if (!cur_eat(&c, '(') || !cur_uint(&c, rows) || !cur_eat(&c, ',') ||
                !cur_uint(&c, cols))
                return fail(s, -EINVAL, "npy: shape is not (rows, dim)");
            cur_eat(&c, ',');
            if (!cur_eat(&c, ')'))
                return fail(s, -EINVAL, "npy: shape is not 2-D");
            seen_shape = true;
        } else {
            return fail(s, -EINVAL, "npy header: unexpected key '%.*s'", (int)(kn > 16 ? 16 : kn),
                        key);
        }
        if (cur_eat(&c, '}'))
            break;
        if (!cur_eat(&c, ','))
            return fail(s, -EINVAL, "npy header: expected ',' or '}'");
    }
    while (c.i < c.len && (h[c.i] == ' ' || h[c.i] == '\n'))
        c.i++;
    if (c.i != c.len)
        return fail(s, -EINVAL, "npy header: bytes after the dict");
    if (!seen_descr || !seen_order || !seen_shape)
        return fail(s, -EINVAL, "npy header: missing descr, fortran_order or shape");
    return 0;
}

static int parse_npy(bstate *s, const unsigned char *p, size_t len)
{
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (len < 10 || memcmp(p, magic, 6) != 0)
        return fail(s, -EINVAL, "npy: bad magic");
    unsigned major = p[6];
    size_t hstart, hlen;
    if (major == 1) {
        hlen = (size_t)p[8] | (size_t)p[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return fail(s, -EINVAL, "npy: truncated header");
        hlen = vc_le_get32(p + 8);
        hstart = 12;
    } else {
        return fail(s, -EINVAL, "npy: format version %u.%u", major, p[7]);
    }
    if (hlen > len - hstart)
        return fail(s, -EINVAL, "npy: header length %zu past the end", hlen);
    uint64_t rows = 0, cols = 0;
    int rc = npy_header(s, p + hstart, hlen, &rows, &cols);
    if (rc)
        return rc;
    if (rows == 0)
        return fail(s, -EINVAL, "no rows");
    rc = dim_check(s, (size_t)(cols > FSD_MAX_DIM ? (uint64_t)FSD_MAX_DIM + 1 : cols), "row", 0);
    if (rc)
        return rc;
    if (rows > FSD_BATCH_MAX_ROWS)
        return fail(s, -EFBIG, "%llu rows, at most %u", (unsigned long long)rows,
                    FSD_BATCH_MAX_ROWS);
    /* rows <= 1e8 and cols <= 65536: the product fits in 64 bits. */
    uint64_t want = rows * cols * 4;
    size_t have = len - hstart - hlen;
    if ((uint64_t)have != want)
        return fail(s, -EINVAL, "npy: %zu data bytes, shape needs %llu", have,
                    (unsigned long long)want);
    size_t n = (size_t)rows, d = (size_t)cols;
    s->vec = vc_malloc(n * d * sizeof(float));
    if (!s->vec)
        return -ENOMEM;
    s->vec_cap = n * d;
    rc = grow((void **)&s->rows, &s->rows_cap, n, sizeof(prow));
    if (rc)
        return rc;
    const unsigned char *data = p + hstart + hlen;
    for (size_t i = 0; i < n; i++) {
        rc = floats_load(s, s->vec + i * d, data + i * d * 4, d, i);
        if (rc)
            return rc;
        if (!row_new(s))
            return -ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* .jsonl                                                               */
/* ------------------------------------------------------------------ */

static bool json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Index just past the JSON string starting at p[i] == '"', or 0. */
static size_t skip_string(const unsigned char *p, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return 0;
}

/* Index just past the JSON value starting at p[i] (not validated: jansson
 * does that), or 0. */
static size_t skip_value(const unsigned char *p, size_t i, size_t len)
{
    if (i >= len)
        return 0;
    if (p[i] == '"')
        return skip_string(p, i, len);
    if (p[i] == '{' || p[i] == '[') {
        size_t depth = 0;
        while (i < len) {
            unsigned char c = p[i];
            if (c == '"') {
                i = skip_string(p, i, len);
                if (!i)
                    return 0;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
            i++;
        }
        return 0;
    }
    while (i < len && p[i] != ',' && p[i] != '}' && p[i] != ']' && !json_ws(p[i]))
        i++;
    return i;
}

/* Finds the value of the top-level key "vector" (written without escapes)
 * in the object on line p[0..len): true and its byte range if it is an
 * array. */
static bool find_vector_span(const unsigned char *p, size_t len, size_t *off, size_t *n)
{
    size_t i = 0;
    while (i < len && json_ws(p[i]))
        i++;
    if (i >= len || p[i] != '{')
        return false;
    i++;
    for (;;) {
        while (i < len && json_ws(p[i]))
            i++;
        if (i >= len || p[i] != '"')
            return false;
        size_t kstart = i + 1;
        size_t kend = skip_string(p, i, len);
        if (!kend)
            return false;
        bool is_vector = kend - 1 - kstart == 6 && memcmp(p + kstart, "vector", 6) == 0;
        i = kend;
        while (i < len && json_ws(p[i]))
            i++;
        if (i >= len || p[i] != ':')
            return false;
        i++;
        while (i < len && json_ws(p[i]))
            i++;
        size_t vend = skip_value(p, i, len);
        if (!vend)
            return false;
        if (is_vector) {
            if (p[i] != '[')
                return false;
            *off = i;
            *n = vend - i;
            return true;
        }
        i = vend;
        while (i < len && json_ws(p[i]))
            i++;
        if (i >= len || p[i] != ',')
            return false;
        i++;
    }
}

/* Reads the JSON array of numbers p[0..len) into the next row of s->vec;
 * *count gets the number of elements. */
static int json_floats(bstate *s, const unsigned char *p, size_t len, size_t line, size_t *count)
{
    size_t base = s->n_rows ? (s->n_rows - 1) * (size_t)s->dim : 0;
    uint32_t cap = s->dim ? s->dim : FSD_MAX_DIM;
    uint32_t n = 0;
    int rc = grow((void **)&s->vec, &s->vec_cap, base + cap, sizeof(float));
    if (rc)
        return rc;
    rc = fsd_vector_parse_json_into((const char *)p, len, s->vec + base, cap, &n);
    if (rc == -EFBIG && s->dim)
        return fail(s, -EINVAL, "line %zu: dim over %u, the first row's", line, s->dim);
    if (rc == -EFBIG)
        return fail(s, -EFBIG, "line %zu: dim over %u", line, FSD_MAX_DIM);
    if (rc)
        return fail(s, rc, "line %zu: \"vector\" is not an array of finite float32 numbers", line);
    *count = n;
    return 0;
}

/* Vector from a jansson array (the fallback when the span was not found). */
static int jansson_floats(bstate *s, json_t *arr, size_t line, size_t *count)
{
    size_t n = json_array_size(arr);
    size_t base = s->n_rows ? (s->n_rows - 1) * (size_t)s->dim : 0;
    if (n > FSD_MAX_DIM)
        return fail(s, -EFBIG, "line %zu: dim over %u", line, FSD_MAX_DIM);
    int rc = grow((void **)&s->vec, &s->vec_cap, base + n, sizeof(float));
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        float x = json_is_number(e) ? (float)json_number_value(e) : NAN;
        if (!isfinite(x))
            return fail(s, -EINVAL, "line %zu: vector element %zu is not a finite number", line, i);
        s->vec[base + i] = x;
    }
    *count = n;
    return 0;
}

static int meta_add(bstate *s, const char *key, size_t klen, json_t *val, size_t line)
{
    pkv kv;
    int rc;
    if (klen == 0 || strlen(key) != klen)
        return fail(s, -EINVAL, "line %zu: bad meta key", line);
    if (klen > FSD_META_KEY_MAX)
        return fail(s, -E2BIG, "line %zu: meta key over %u bytes", line, FSD_META_KEY_MAX);
    if (json_is_null(val))
        return 0;
    char *dumped = NULL;
    const char *v;
    size_t vlen;
    if (json_is_string(val)) {
        v = json_string_value(val);
        vlen = json_string_length(val);
    } else {
        dumped = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
        if (!dumped)
            return -ENOMEM;
        v = dumped;
        vlen = strlen(dumped);
    }
    if (vlen > FSD_META_VALUE_MAX) {
        free(dumped);
        return fail(s, -E2BIG, "line %zu: meta value of '%s' over %u bytes", line, key,
                    FSD_META_VALUE_MAX);
    }
    rc = arena_put(s, key, klen, &kv.key_off);
    if (!rc)
        rc = arena_put(s, v, vlen, &kv.val_off);
    free(dumped);
    if (rc)
        return rc;
    kv.val_len = vlen;
    rc = grow((void **)&s->kv, &s->kv_cap, s->n_kv + 1, sizeof(pkv));
    if (rc)
        return rc;
    s->kv[s->n_kv++] = kv;
    return 0;
}

static int parse_jsonl_line(bstate *s, const unsigned char *p, size_t len, size_t line_off,
                            size_t line, char **scratch, size_t *scratch_cap)
{
    size_t span_off = 0, span_len = 0;
    bool span = find_vector_span(p, len, &span_off, &span_len);
    json_error_t jerr;
    json_t *obj = NULL;
    int rc = 0;

    if (span) {
        /* The line with its vector array replaced by 0. */
        size_t n = len - span_len + 1;
        rc = grow((void **)scratch, scratch_cap, n, 1);
        if (rc)
            return rc;
        memcpy(*scratch, p, span_off);
        (*scratch)[span_off] = '0';
        memcpy(*scratch + span_off + 1, p + span_off + span_len, len - span_off - span_len);
        obj = json_loadb(*scratch, n, JSON_REJECT_DUPLICATES, &jerr);
    } else {
        obj = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
    }
    if (!obj || !json_is_object(obj)) {
        rc = fail(s, -EINVAL, "line %zu: not a JSON object", line);
        goto out;
    }

    prow *r = row_new(s);
    if (!r) {
        rc = s->n_rows >= FSD_BATCH_MAX_ROWS ? fail(s, -EFBIG, "too many rows") : -ENOMEM;
        goto out;
    }
    size_t row = s->n_rows - 1;

    const char *key;
    size_t klen;
    json_t *val;
    bool have_name = false, have_vec = false;
    size_t dim = 0;
    json_object_keylen_foreach(obj, key, klen, val)
    {
        if (klen == 4 && memcmp(key, "name", 4) == 0) {
            if (!json_is_string(val) ||
                fsd_vecname_check(json_string_value(val), json_string_length(val)) != 0) {
                rc = fail(s, -EINVAL, "line %zu: \"name\" is not a valid file name", line);
                goto out;
            }
            rc = arena_put(s, json_string_value(val), json_string_length(val),
                           &s->rows[row].name_off);
            if (rc)
                goto out;
            s->rows[row].name_len = json_string_length(val);
            have_name = true;
        } else if (klen == 6 && memcmp(key, "vector", 6) == 0) {
            if (span) {
                if (!json_is_integer(val) || json_integer_value(val) != 0) {
                    rc = fail(s, -EINVAL, "line %zu: bad \"vector\"", line);
                    goto out;
                }
                rc = json_floats(s, p + span_off, span_len, line, &dim);
                s->rows[row].text_off = line_off + span_off;
                s->rows[row].text_len = span_len;
            } else if (json_is_array(val)) {
                rc = jansson_floats(s, val, line, &dim);
            } else {
                rc = fail(s, -EINVAL, "line %zu: \"vector\" is not an array", line);
            }
            if (rc)
                goto out;
            have_vec = true;
        } else if (klen == 4 && memcmp(key, "meta", 4) == 0) {
            if (!json_is_object(val)) {
                rc = fail(s, -EINVAL, "line %zu: \"meta\" is not an object", line);
                goto out;
            }
            const char *mk;
            size_t mklen;
            json_t *mv;
            json_object_keylen_foreach(val, mk, mklen, mv)
            {
                rc = meta_add(s, mk, mklen, mv, line);
                if (rc)
                    goto out;
            }
        } else {
            rc = fail(s, -EINVAL, "line %zu: unknown key \"%.*s\"", line,
                      (int)(klen > 32 ? 32 : klen), key);
            goto out;
        }
    }
    if (!have_name || !have_vec) {
        rc = fail(s, -EINVAL, "line %zu: needs \"name\" and \"vector\"", line);
        goto out;
    }
    rc = dim_check(s, dim, "line", line);
    if (rc)
        goto out;
    s->rows[row].n_kv = s->n_kv - s->rows[row].kv_first;
out:
    json_decref(obj);
    return rc;
}

static uint64_t name_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* -EINVAL if two rows share a name. */
static int names_unique(bstate *s)
{
    size_t cap = 16;
    while (cap < s->n_rows * 2)
        cap *= 2;
    size_t *slot = vc_calloc(cap, sizeof(size_t)); /* row + 1, 0 = empty */
    if (!slot)
        return -ENOMEM;
    int rc = 0;
    for (size_t r = 0; r < s->n_rows && !rc; r++) {
        const char *nm = s->arena + s->rows[r].name_off;
        size_t nl = s->rows[r].name_len;
        for (size_t h = name_hash(nm, nl) & (cap - 1);; h = (h + 1) & (cap - 1)) {
            if (!slot[h]) {
                slot[h] = r + 1;
                break;
            }
            const prow *o = &s->rows[slot[h] - 1];
            if (o->name_len == nl && memcmp(s->arena + o->name_off, nm, nl) == 0) {
                rc = fail(s, -EINVAL, "rows %zu and %zu share the name \"%.*s\"", slot[h] - 1, r,
                          (int)(nl > 64 ? 64 : nl), nm);
                break;
            }
        }
    }
    free(slot);
    return rc;
}

static int parse_jsonl(bstate *s, const unsigned char *p, size_t len)
{
    char *scratch = NULL;
    size_t scratch_cap = 0;
    size_t i = 0, line = 0;
    int rc = 0;

    while (i < len && !rc) {
        const unsigned char *nl = memchr(p + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - p) : len;
        line++;
        size_t j = i;
        while (j < end && json_ws(p[j]))
            j++;
        if (j < end)
            rc = parse_jsonl_line(s, p + i, end - i, i, line, &scratch, &scratch_cap);
        i = end + 1;
    }
    free(scratch);
    if (rc)
        return rc;
    if (s->n_rows == 0)
        return fail(s, -EINVAL, "no rows");
    return names_unique(s);
}

/* ------------------------------------------------------------------ */
/* Public                                                               */
/* ------------------------------------------------------------------ */

int fsd_bformat_from_name(const char *name, size_t len, fsd_bformat *out)
{
    if (fsd_name_has_suffix(name, len, ".fvecs"))
        *out = FSD_BFORMAT_FVECS;
    else if (fsd_name_has_suffix(name, len, ".npy"))
        *out = FSD_BFORMAT_NPY;
    else if (fsd_name_has_suffix(name, len, ".jsonl"))
        *out = FSD_BFORMAT_JSONL;
    else
        return -EINVAL;
    return 0;
}

static void state_free(bstate *s)
{
    free(s->vec);
    free(s->rows);
    free(s->arena);
    free(s->kv);
}

/* Moves the parse state into a batch with real pointers. */
static int finish(bstate *s, fsd_bformat fmt, fsd_batch **out)
{
    fsd_batch *b = vc_calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->rows = vc_malloc(s->n_rows * sizeof(fsd_batch_row));
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
        fsd_batch_row *br = &b->rows[i];
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

int fsd_batch_parse(fsd_bformat fmt, const void *data, size_t len, const char *stem,
                    size_t stem_len, uint32_t expect_dim, fsd_batch **out, char *err, size_t errlen)
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
    case FSD_BFORMAT_FVECS:
        rc = parse_fvecs(&s, data, len);
        if (!rc)
            rc = names_make(&s, stem, stem_len);
        break;
    case FSD_BFORMAT_NPY:
        rc = parse_npy(&s, data, len);
        if (!rc)
            rc = names_make(&s, stem, stem_len);
        break;
    case FSD_BFORMAT_JSONL:
        rc = parse_jsonl(&s, data, len);
        break;
    default:
        rc = fail(&s, -EINVAL, "unknown batch format");
        break;
    }
    if (!rc)
        rc = finish(&s, fmt, out);
    if (rc) {
        if (rc == -ENOMEM)
            fail(&s, rc, "out of memory");
        state_free(&s);
    }
    return rc;
}

void fsd_batch_free(fsd_batch *b)
{
    if (!b)
        return;
    free(b->vectors);
    free(b->rows);
    free(b->arena);
    free(b->kv);
    free(b);
}
