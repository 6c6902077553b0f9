/*
 * import_state.c — the parse state the parsers of import_parse.c and
 * import_jsonl.c fill (import_state.h): growable tables of rows and
 * key/value pairs holding offsets into one string arena.
 *
 * Invariants
 *   1. Every table grows geometrically through vc_realloc (alloc.h) and
 *      every size computation is overflow-checked.
 *   2. The arena holds NUL-terminated strings; offsets into it stay valid
 *      while it grows (pointers would not).
 */
#include "import_state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

int rows_fail(bstate *s, int rc, const char *fmt, ...)
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
int rows_grow(void **p, size_t *cap, size_t need, size_t elem)
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
int rows_arena_put(bstate *s, const char *bytes, size_t len, size_t *off_out)
{
    if (len > SIZE_MAX - s->arena_len - 1)
        return -ENOMEM;
    int rc = rows_grow((void **)&s->arena, &s->arena_cap, s->arena_len + len + 1, 1);
    if (rc)
        return rc;
    if (len)
        memcpy(s->arena + s->arena_len, bytes, len);
    s->arena[s->arena_len + len] = '\0';
    *off_out = s->arena_len;
    s->arena_len += len + 1;
    return 0;
}

prow *rows_row_new(bstate *s)
{
    if (s->n_rows >= FSD_ROWS_MAX)
        return NULL;
    if (rows_grow((void **)&s->rows, &s->rows_cap, s->n_rows + 1, sizeof(prow)))
        return NULL;
    prow *r = &s->rows[s->n_rows++];
    memset(r, 0, sizeof *r);
    r->name_off = SIZE_MAX;
    r->kv_first = s->n_kv;
    return r;
}

/* Checks a row's dim against the batch's, fixing the batch's on the first
 * row. `where` names the row in messages. */
int rows_dim_check(bstate *s, size_t dim, const char *what, size_t where)
{
    if (dim == 0)
        return rows_fail(s, -EINVAL, "%s %zu: empty vector", what, where);
    if (dim > FSD_MAX_DIM)
        return rows_fail(s, -EFBIG, "%s %zu: dim %zu over %u", what, where, dim, FSD_MAX_DIM);
    if (s->dim == 0) {
        if (s->expect_dim && dim != s->expect_dim)
            return rows_fail(s, -EINVAL, "%s %zu: dim %zu, expected %u", what, where, dim,
                             s->expect_dim);
        s->dim = (uint32_t)dim;
    } else if (dim != s->dim) {
        return rows_fail(s, -EINVAL, "%s %zu: dim %zu, expected %u", what, where, dim, s->dim);
    }
    return 0;
}
