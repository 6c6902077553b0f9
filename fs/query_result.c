/*
 * query_result.c — formatting the result of a query (see query_result.h):
 * one line (or JSON object) per neighbour, names escaped so every line
 * splits cleanly, distances in their shortest round-trip form.
 *
 * Invariants
 *   1. r->out always holds a prefix of a well-formed result; an error of
 *      an add is kept in r->err and every later add does nothing.
 *   2. Memory comes from vc_buf (alloc.h), so tests can fail it.
 */
#include "query_result.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vector_format.h"
#include "names.h"

void fsd_results_init(fsd_results *r, fsd_qkind kind)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
}

void fsd_results_release(fsd_results *r)
{
    if (!r)
        return;
    vc_buf_release(&r->out);
    fsd_qkind kind = r->kind;
    fsd_results_init(r, kind);
}

/* Makes room for `more` bytes, which the caller writes directly into
 * r->out.p and seals with vc_buf_setlen; the first failure sticks. */
static int res_reserve(fsd_results *r, size_t more)
{
    if (r->err)
        return r->err;
    return r->err = vc_buf_grow(&r->out, more);
}

/* Appends the name escaped for a tab-separated line (room is reserved by
 * the caller: 2 bytes per input byte). */
static void put_text_name(fsd_results *r, const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '\\' || c == '\t' || c == '\n' || c == '\0') {
            r->out.p[r->out.len++] = '\\';
            r->out.p[r->out.len++] = c == '\\' ? '\\' : (c == '\t' ? 't' : (c == '\n' ? 'n' : '0'));
        } else {
            r->out.p[r->out.len++] = c;
        }
    }
}

/* Appends "name" as a JSON string (room reserved: 6 bytes per input byte
 * plus quotes). */
static void put_json_name(fsd_results *r, const char *name, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)name;
    r->out.p[r->out.len++] = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t u = fsd_utf8_seq_len(p + i, n - i);
        if (c == '"' || c == '\\') {
            r->out.p[r->out.len++] = '\\';
            r->out.p[r->out.len++] = (char)c;
            i++;
        } else if (c < 0x20 || u == 0) {
            memcpy(r->out.p + r->out.len, "\\u00", 4);
            r->out.len += 4;
            r->out.p[r->out.len++] = hex[c >> 4];
            r->out.p[r->out.len++] = hex[c & 15];
            i++;
        } else {
            memcpy(r->out.p + r->out.len, p + i, u);
            r->out.len += u;
            i += u;
        }
    }
    r->out.p[r->out.len++] = '"';
}

/* Appends n bytes for which res_reserve made room. */
static void put_bytes(fsd_results *r, const char *s, size_t n)
{
    memcpy(r->out.p + r->out.len, s, n);
    r->out.len += n;
}

int fsd_results_add(fsd_results *r, const char *name, size_t name_len, float distance)
{
    char d[32];
    if (fsd_qkind_is_batch(r->kind))
        return -EINVAL;
    if (!name && name_len)
        return -EINVAL;
    size_t dl = fsd_float_format(distance, d, sizeof d);
    if (name_len > (SIZE_MAX - 64) / 6)
        return (r->err = -ENOMEM);
    int rc = res_reserve(r, name_len * 6 + dl + 48);
    if (rc)
        return rc;
    if (r->kind == FSD_QKIND_JSON) {
        put_bytes(r, r->count ? ",\n {\"name\": " : "[{\"name\": ",
                  r->count ? strlen(",\n {\"name\": ") : strlen("[{\"name\": "));
        put_json_name(r, name, name_len);
        put_bytes(r, ", \"distance\": ", strlen(", \"distance\": "));
        if (isfinite(distance))
            put_bytes(r, d, dl);
        else
            put_bytes(r, "null", 4); /* JSON has no inf/nan */
        put_bytes(r, "}", 1);
    } else {
        put_text_name(r, name, name_len);
        put_bytes(r, "\t", 1);
        put_bytes(r, d, dl);
        put_bytes(r, "\n", 1);
    }
    vc_buf_setlen(&r->out, r->out.len);
    r->count++;
    return 0;
}

int fsd_results_add_row(fsd_results *r, uint64_t row, const char *name, size_t name_len,
                        float distance)
{
    char d[32], rw[24];
    if (!fsd_qkind_is_batch(r->kind))
        return -EINVAL;
    if (!name && name_len)
        return -EINVAL;
    size_t dl = fsd_float_format(distance, d, sizeof d);
    int rl = snprintf(rw, sizeof rw, "%llu", (unsigned long long)row);
    if (name_len > (SIZE_MAX - 64) / 2)
        return (r->err = -ENOMEM);
    int rc = res_reserve(r, name_len * 2 + dl + (size_t)rl + 4);
    if (rc)
        return rc;
    put_bytes(r, rw, (size_t)rl);
    put_bytes(r, "\t", 1);
    put_text_name(r, name, name_len);
    put_bytes(r, "\t", 1);
    put_bytes(r, d, dl);
    put_bytes(r, "\n", 1);
    vc_buf_setlen(&r->out, r->out.len);
    r->count++;
    return 0;
}

int fsd_results_finish(fsd_results *r, char **out, size_t *len_out)
{
    *out = NULL;
    *len_out = 0;
    int rc = res_reserve(r, 4);
    if (rc) {
        fsd_results_release(r);
        return rc;
    }
    if (r->kind == FSD_QKIND_JSON)
        put_bytes(r, r->count ? "]\n" : "[]\n", r->count ? 2 : 3);
    vc_buf_setlen(&r->out, r->out.len);
    *out = vc_buf_detach(&r->out, len_out);
    fsd_results_release(r);
    return 0;
}
