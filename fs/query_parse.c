/*
 * query_parse.c — parsing query files and formatting their results
 * (the syntax is documented in query_parse.h).
 *
 * Invariants
 *   1. No parser reads past the length it is given; inputs are not
 *      NUL-terminated.
 *   2. A parsed query has k in 1..FSD_QUERY_MAX_K, ef 0 or in
 *      1..FSD_QUERY_MAX_EF, exactly one of (like) and (vectors, nq >= 1,
 *      dim >= 1), filter keys non-empty, without "user.", pairwise
 *      distinct, and every string NUL-terminated.
 *   3. On error an out-query is left in the FSD_QUERY_INIT state, and
 *      fsd_query_param_set leaves its query unchanged.
 *   4. A result buffer always holds complete lines (or, for JSON, complete
 *      array elements): an add either appends a whole entry or nothing.
 */
#include "query_parse.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "filter_json.h"
#include "import_parse.h"
#include "names.h"

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

static bool is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_space(unsigned char c)
{
    return is_blank(c) || c == '\n';
}

/* Trims white space (newlines included) off both ends of [*p, *p + *n). */
static void trim(const char **p, size_t *n)
{
    while (*n && is_space((unsigned char)(*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n && is_space((unsigned char)(*p)[*n - 1]))
        (*n)--;
}

/* A NUL-terminated vc_malloc'd copy of n bytes; NULL on ENOMEM. */
static char *dup_bytes(const char *p, size_t n)
{
    char *s = vc_malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* A decimal integer in [lo, hi] of exactly n bytes. */
static int parse_range(const char *p, size_t n, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 10)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v < lo || v > hi)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

void fsd_query_release(fsd_query *q)
{
    if (!q)
        return;
    free(q->like);
    free(q->vectors);
    st_filter_free(q->filter);
    fsd_query init = FSD_QUERY_INIT;
    *q = init;
}

/* ------------------------------------------------------------------ */
/* Text queries                                                         */
/* ------------------------------------------------------------------ */

/* Sets the `like` vector name (n bytes) of q. */
static int like_set(fsd_query *q, const char *v, size_t n)
{
    int rc = fsd_vecname_check(v, n);
    if (rc)
        return -EINVAL;
    q->like = dup_bytes(v, n);
    if (!q->like)
        return -ENOMEM;
    q->like_len = n;
    return 0;
}

/* Writes q's one-line error message and returns rc. */
static int query_fail(fsd_query *q, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int query_fail(fsd_query *q, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->error, sizeof q->error, fmt, ap);
    va_end(ap);
    return rc;
}

/* A finite decimal distance bound of n bytes into *out. */
static int parse_distance(const char *p, size_t n, float *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return -EINVAL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *end;
    float x = strtof(buf, &end);
    if (end != buf + n || !isfinite(x))
        return -EINVAL;
    *out = x;
    return 0;
}

/* Sets the filter of q from a text (replacing any). */
static int filter_set(fsd_query *q, const char *v, size_t n)
{
    st_filter *f;
    int rc = st_filter_parse(v, n, &f, q->error, sizeof q->error);
    if (rc)
        return rc;
    st_filter_free(q->filter);
    q->filter = f;
    return 0;
}

/* Sets q->explain from "0" or "1" (trimmed); anything else fails with
 * `key` must be 0 or 1. */
static int explain_set(fsd_query *q, const char *key, const char *v, size_t n)
{
    if (n != 1 || (v[0] != '0' && v[0] != '1'))
        return query_fail(q, -EINVAL, "%s must be 0 or 1", key);
    q->explain = v[0] == '1';
    return 0;
}

/* One "key = value" line (the value already trimmed). *seen is a bit set
 * of keys given so far. 1 if the line is not a parameter line. */
static int text_param(fsd_query *q, const char *line, size_t n, unsigned *seen)
{
    static const char *const keys[] = {"k", "ef", "filter", "like", "max_distance", "explain"};
    enum { NKEYS = sizeof keys / sizeof keys[0] };
    size_t i = 0;
    while (i < n && ((line[i] >= 'a' && line[i] <= 'z') || line[i] == '_'))
        i++;
    size_t klen = i;
    while (i < n && is_blank((unsigned char)line[i]))
        i++;
    if (klen == 0 || i >= n || line[i] != '=')
        return 1;
    unsigned which = NKEYS;
    for (unsigned w = 0; w < NKEYS; w++)
        if (strlen(keys[w]) == klen && memcmp(line, keys[w], klen) == 0)
            which = w;
    if (which == NKEYS)
        return query_fail(q, -EINVAL, "unknown parameter '%.*s'", (int)(klen > 32 ? 32 : klen),
                          line);
    if (*seen & (1u << which))
        return query_fail(q, -EINVAL, "%s given twice", keys[which]);
    *seen |= 1u << which;
    const char *v = line + i + 1;
    size_t vlen = n - i - 1;
    trim(&v, &vlen);
    switch (which) {
    case 0:
        if (parse_range(v, vlen, 1, FSD_QUERY_MAX_K, &q->k))
            return query_fail(q, -EINVAL, "k must be an integer in 1..%u", FSD_QUERY_MAX_K);
        q->k_set = true;
        return 0;
    case 1:
        return parse_range(v, vlen, 1, FSD_QUERY_MAX_EF, &q->ef)
                   ? query_fail(q, -EINVAL, "ef must be an integer in 1..%u", FSD_QUERY_MAX_EF)
                   : 0;
    case 2:
        return filter_set(q, v, vlen);
    case 3:
        return like_set(q, v, vlen);
    case 4:
        if (parse_distance(v, vlen, &q->max_distance))
            return query_fail(q, -EINVAL, "max_distance must be a finite number");
        q->within = true;
        return 0;
    default:
        return explain_set(q, "explain", v, vlen);
    }
}

/* Parses a text query (parameter lines, then the vector). */
static int parse_text(fsd_query *q, const char *p, size_t len)
{
    size_t i = 0;
    unsigned seen = 0;
    int rc;

    while (i < len) {
        const char *nl = memchr(p + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - p) : len;
        const char *line = p + i;
        size_t n = end - i;
        trim(&line, &n);
        if (n == 0 || line[0] == '#') {
            i = end + 1;
            continue;
        }
        rc = text_param(q, line, n, &seen);
        if (rc < 0)
            return rc;
        if (rc == 1)
            break; /* the vector starts on this line */
        i = end + 1;
    }
    if (i < len) {
        float *v;
        uint32_t dim;
        rc = fsd_vector_parse(FSD_VFORMAT_TEXT, p + i, len - i, 0, &v, &dim);
        if (rc)
            return rc;
        q->vectors = v;
        q->dim = dim;
        q->nq = 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* JSON queries                                                         */
/* ------------------------------------------------------------------ */

/* Parses the "filter" of a .json query (filter_json.h) into q->filter. */
static int json_filter(fsd_query *q, json_t *v)
{
    return fsd_filter_json(v, &q->filter, q->error, sizeof q->error);
}

/* An integer JSON value in lo..hi into *out, or -EINVAL. */
static int json_u32(json_t *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (!json_is_integer(v))
        return -EINVAL;
    json_int_t x = json_integer_value(v);
    if (x < (json_int_t)lo || x > (json_int_t)hi)
        return -EINVAL;
    *out = (uint32_t)x;
    return 0;
}

/* Parses a .json query. */
static int parse_json(fsd_query *q, const char *p, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (!root || !json_is_object(root)) {
        rc = root ? query_fail(q, -EINVAL, "a .json query is an object")
                  : query_fail(q, -EINVAL, "JSON: %.100s at byte %d", jerr.text, jerr.position);
        goto out;
    }
    const char *key;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach(root, key, klen, val)
    {
        if (klen == 6 && memcmp(key, "vector", 6) == 0) {
            size_t n = json_array_size(val);
            if (!json_is_array(val) || n == 0) {
                rc = -EINVAL;
                goto out;
            }
            if (n > FSD_MAX_DIM) {
                rc = -EFBIG;
                goto out;
            }
            q->vectors = vc_malloc(n * sizeof(float));
            if (!q->vectors) {
                rc = -ENOMEM;
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(val, i);
                float x = json_is_number(e) ? (float)json_number_value(e) : NAN;
                if (!isfinite(x)) {
                    rc = -EINVAL;
                    goto out;
                }
                q->vectors[i] = x;
            }
            q->dim = (uint32_t)n;
            q->nq = 1;
        } else if (klen == 1 && key[0] == 'k') {
            rc = json_u32(val, 1, FSD_QUERY_MAX_K, &q->k);
            q->k_set = true;
        } else if (klen == 2 && memcmp(key, "ef", 2) == 0) {
            rc = json_u32(val, 1, FSD_QUERY_MAX_EF, &q->ef);
        } else if (klen == 6 && memcmp(key, "filter", 6) == 0) {
            rc = json_filter(q, val);
        } else if (klen == 4 && memcmp(key, "like", 4) == 0) {
            rc = json_is_string(val) ? like_set(q, json_string_value(val), json_string_length(val))
                                     : -EINVAL;
        } else if (klen == 12 && memcmp(key, "max_distance", 12) == 0) {
            double x = json_is_number(val) ? json_number_value(val) : NAN;
            rc = isfinite(x) && isfinite((float)x) ? 0 : -EINVAL;
            q->max_distance = (float)x;
            q->within = true;
        } else if (klen == 7 && memcmp(key, "explain", 7) == 0) {
            rc = json_is_boolean(val) ? 0 : query_fail(q, -EINVAL, "explain must be true or false");
            q->explain = json_is_true(val);
        } else {
            rc = query_fail(q, -EINVAL, "unknown key '%.*s'", (int)(klen > 32 ? 32 : klen), key);
        }
        if (rc)
            goto out;
    }
out:
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Public parsing                                                       */
/* ------------------------------------------------------------------ */

fsd_qkind fsd_qkind_from_name(const char *name, size_t len)
{
    if (fsd_name_has_suffix(name, len, ".json"))
        return FSD_QKIND_JSON;
    if (fsd_name_has_suffix(name, len, ".f32"))
        return FSD_QKIND_F32;
    if (fsd_name_has_suffix(name, len, ".fvecs"))
        return FSD_QKIND_FVECS;
    if (fsd_name_has_suffix(name, len, ".npy"))
        return FSD_QKIND_NPY;
    return FSD_QKIND_TEXT;
}

bool fsd_qkind_is_batch(fsd_qkind kind)
{
    return kind == FSD_QKIND_FVECS || kind == FSD_QKIND_NPY;
}

int fsd_query_parse(fsd_qkind kind, const void *data, size_t len, fsd_query *out)
{
    int rc;

    fsd_query_release(out);
    out->kind = kind;
    if (!data && len)
        return -EINVAL;
    if (!data)
        data = "";
    switch (kind) {
    case FSD_QKIND_TEXT:
        rc = parse_text(out, data, len);
        break;
    case FSD_QKIND_JSON:
        rc = parse_json(out, data, len);
        break;
    case FSD_QKIND_F32:
        rc = fsd_vector_parse(FSD_VFORMAT_F32, data, len, 0, &out->vectors, &out->dim);
        if (!rc)
            out->nq = 1;
        break;
    case FSD_QKIND_FVECS:
    case FSD_QKIND_NPY: {
        fsd_rows *b = NULL;
        rc = fsd_rows_parse(kind == FSD_QKIND_FVECS ? FSD_ROWS_FVECS : FSD_ROWS_NPY, data, len,
                            NULL, 0, 0, &b, NULL, 0);
        if (!rc) {
            out->vectors = b->vectors; /* taken over from the batch */
            out->dim = b->dim;
            out->nq = b->n;
            b->vectors = NULL;
            fsd_rows_free(b);
        }
        break;
    }
    default:
        rc = -EINVAL;
        break;
    }
    if (!rc && (out->like != NULL) == (out->nq != 0)) /* both or neither */
        rc = query_fail(out, -EINVAL, "a query needs a vector or like, not both");
    if (rc) {
        char why[FSD_QUERY_ERROR_MAX];
        memcpy(why, out->error, sizeof why);
        fsd_query_release(out);
        out->kind = kind;
        memcpy(out->error, why, sizeof why);
    }
    return rc;
}

int fsd_query_param_set(fsd_query *q, const char *key, const char *value, size_t len)
{
    if (!key || (!value && len))
        return -EINVAL;
    if (!value)
        value = "";
    trim(&value, &len);
    if (strcmp(key, "k") == 0) {
        uint32_t k;
        if (parse_range(value, len, 1, FSD_QUERY_MAX_K, &k))
            return -EINVAL;
        q->k = k;
        q->k_set = true;
        return 0;
    }
    if (strcmp(key, "ef") == 0) {
        uint32_t ef;
        if (parse_range(value, len, 1, FSD_QUERY_MAX_EF, &ef))
            return -EINVAL;
        q->ef = ef;
        return 0;
    }
    if (strcmp(key, "filter") == 0)
        return filter_set(q, value, len);
    if (strcmp(key, "max_distance") == 0) {
        float x;
        if (parse_distance(value, len, &x))
            return query_fail(q, -EINVAL, "user.max_distance must be a finite number");
        q->max_distance = x;
        q->within = true;
        return 0;
    }
    if (strcmp(key, "explain") == 0)
        return explain_set(q, "user.explain", value, len);
    return -EINVAL;
}
