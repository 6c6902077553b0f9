/*
 * import_jsonl.c — parsing .jsonl files of rows (import_parse.h): one JSON
 * object per line, {"name": ..., "vector": [...], "meta": {...}}.
 *
 * Lines are parsed in two steps, for speed and exactness: a small
 * structural scan (find_vector_span) finds the bytes of the top-level
 * "vector" array; jansson then parses the line with that array replaced by
 * a placeholder 0 (so it never builds one object per number), and the
 * array itself is read by a strict JSON number-array scanner with strtof
 * (correctly rounded to float32, the same conversion the text format uses,
 * so the row's text reads back to exactly its vector). If the scan does
 * not find the array (e.g. an escaped key), jansson parses the whole line
 * and the row gets no text.
 *
 * Invariants: those of import_parse.c (no read past len, every row
 * checked, names pairwise distinct through a hash table, O(len) expected
 * time).
 */
#include "import_state.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "names.h"

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
    int rc = rows_grow((void **)&s->vec, &s->vec_cap, base + cap, sizeof(float));
    if (rc)
        return rc;
    rc = fsd_vector_parse_json_into((const char *)p, len, s->vec + base, cap, &n);
    if (rc == -EFBIG && s->dim)
        return rows_fail(s, -EINVAL, "line %zu: dim over %u, the first row's", line, s->dim);
    if (rc == -EFBIG)
        return rows_fail(s, -EFBIG, "line %zu: dim over %u", line, FSD_MAX_DIM);
    if (rc)
        return rows_fail(s, rc, "line %zu: \"vector\" is not an array of finite float32 numbers",
                         line);
    *count = n;
    return 0;
}

/* Vector from a jansson array (the fallback when the span was not found). */
static int jansson_floats(bstate *s, json_t *arr, size_t line, size_t *count)
{
    size_t n = json_array_size(arr);
    size_t base = s->n_rows ? (s->n_rows - 1) * (size_t)s->dim : 0;
    if (n > FSD_MAX_DIM)
        return rows_fail(s, -EFBIG, "line %zu: dim over %u", line, FSD_MAX_DIM);
    int rc = rows_grow((void **)&s->vec, &s->vec_cap, base + n, sizeof(float));
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        float x = json_is_number(e) ? (float)json_number_value(e) : NAN;
        if (!isfinite(x))
            return rows_fail(s, -EINVAL, "line %zu: vector element %zu is not a finite number",
                             line, i);
        s->vec[base + i] = x;
    }
    *count = n;
    return 0;
}

/* Adds one "meta" key and value of line `line` to the row being parsed. */
static int meta_add(bstate *s, const char *key, size_t klen, json_t *val, size_t line)
{
    pkv kv;
    int rc;
    if (klen == 0 || strlen(key) != klen)
        return rows_fail(s, -EINVAL, "line %zu: bad meta key", line);
    if (klen > FSD_META_KEY_MAX)
        return rows_fail(s, -E2BIG, "line %zu: meta key over %u bytes", line, FSD_META_KEY_MAX);
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
        return rows_fail(s, -E2BIG, "line %zu: meta value of '%s' over %u bytes", line, key,
                         FSD_META_VALUE_MAX);
    }
    rc = rows_arena_put(s, key, klen, &kv.key_off);
    if (!rc)
        rc = rows_arena_put(s, v, vlen, &kv.val_off);
    free(dumped);
    if (rc)
        return rc;
    kv.val_len = vlen;
    rc = rows_grow((void **)&s->kv, &s->kv_cap, s->n_kv + 1, sizeof(pkv));
    if (rc)
        return rc;
    s->kv[s->n_kv++] = kv;
    return 0;
}

/* Parses one non-empty line (line_off: its offset in the file) into a
 * new row; scratch is reused between lines. */
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
        rc = rows_grow((void **)scratch, scratch_cap, n, 1);
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
        rc = rows_fail(s, -EINVAL, "line %zu: not a JSON object", line);
        goto out;
    }

    prow *r = rows_row_new(s);
    if (!r) {
        rc = s->n_rows >= FSD_ROWS_MAX ? rows_fail(s, -EFBIG, "too many rows") : -ENOMEM;
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
                rc = rows_fail(s, -EINVAL, "line %zu: \"name\" is not a valid file name", line);
                goto out;
            }
            rc = rows_arena_put(s, json_string_value(val), json_string_length(val),
                                &s->rows[row].name_off);
            if (rc)
                goto out;
            s->rows[row].name_len = json_string_length(val);
            have_name = true;
        } else if (klen == 6 && memcmp(key, "vector", 6) == 0) {
            if (span) {
                if (!json_is_integer(val) || json_integer_value(val) != 0) {
                    rc = rows_fail(s, -EINVAL, "line %zu: bad \"vector\"", line);
                    goto out;
                }
                rc = json_floats(s, p + span_off, span_len, line, &dim);
                s->rows[row].text_off = line_off + span_off;
                s->rows[row].text_len = span_len;
            } else if (json_is_array(val)) {
                rc = jansson_floats(s, val, line, &dim);
            } else {
                rc = rows_fail(s, -EINVAL, "line %zu: \"vector\" is not an array", line);
            }
            if (rc)
                goto out;
            have_vec = true;
        } else if (klen == 4 && memcmp(key, "meta", 4) == 0) {
            if (!json_is_object(val)) {
                rc = rows_fail(s, -EINVAL, "line %zu: \"meta\" is not an object", line);
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
            rc = rows_fail(s, -EINVAL, "line %zu: unknown key \"%.*s\"", line,
                           (int)(klen > 32 ? 32 : klen), key);
            goto out;
        }
    }
    if (!have_name || !have_vec) {
        rc = rows_fail(s, -EINVAL, "line %zu: needs \"name\" and \"vector\"", line);
        goto out;
    }
    rc = rows_dim_check(s, dim, "line", line);
    if (rc)
        goto out;
    s->rows[row].n_kv = s->n_kv - s->rows[row].kv_first;
out:
    json_decref(obj);
    return rc;
}

/* FNV-1a of a row name, for the duplicate check. */
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
                rc = rows_fail(s, -EINVAL, "rows %zu and %zu share the name \"%.*s\"", slot[h] - 1,
                               r, (int)(nl > 64 ? 64 : nl), nm);
                break;
            }
        }
    }
    free(slot);
    return rc;
}

int rows_parse_jsonl(bstate *s, const unsigned char *p, size_t len)
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
        return rows_fail(s, -EINVAL, "no rows");
    return names_unique(s);
}
