/*
 * filter_json.c — the structured form of a filter (filter_json.h), turned
 * into the text grammar and compiled by the store's parser, so both forms
 * mean exactly the same and only one parser decides what is valid.
 *
 * Invariants
 *   1. Every key and value is written quoted, with '"' and '\' escaped,
 *      so no JSON string can change the structure of the text.
 *   2. Recursion is bounded by JSON_DEPTH_MAX; the text by
 *      ST_FILTER_TEXT_MAX.
 */
#include "filter_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"

#define JSON_DEPTH_MAX 32

typedef struct conv {
    vc_buf text;
    char *err;
    size_t errcap;
} conv;

static int bad(conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(conv *c, const char *fmt, ...)
{
    if (c->err && c->errcap) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(c->err, c->errcap, "filter: ");
        if (n > 0 && (size_t)n < c->errcap)
            vsnprintf(c->err + n, c->errcap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Appends s (n bytes) quoted (invariant 1). */
static int put_quoted(conv *c, const char *s, size_t n)
{
    if (vc_buf_append(&c->text, "\"", 1))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((s[i] == '"' || s[i] == '\\') && vc_buf_append(&c->text, "\\", 1))
            return -ENOMEM;
        if (vc_buf_append(&c->text, &s[i], 1))
            return -ENOMEM;
    }
    return vc_buf_append(&c->text, "\"", 1) ? -ENOMEM : 0;
}

static int put(conv *c, const char *s)
{
    return vc_buf_append(&c->text, s, strlen(s)) ? -ENOMEM : 0;
}

/* Appends a scalar (string, number, boolean) as a quoted value. */
static int put_scalar(conv *c, json_t *v)
{
    char num[64];
    if (json_is_string(v))
        return put_quoted(c, json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(num, sizeof num, "%s", json_is_true(v) ? "true" : "false");
    else
        return bad(c, "a value must be a string, number or boolean");
    return put_quoted(c, num, strlen(num));
}

static int put_filter(conv *c, json_t *v, int depth);

/* "KEY": {OP: ARG, ...} */
static int put_ops(conv *c, const char *key, size_t klen, json_t *ops)
{
    static const char *const cmp[] = {"=", "!=", "<", "<=", ">", ">="};
    const char *op;
    json_t *arg;
    bool first = true;
    if (json_object_size(ops) == 0)
        return bad(c, "no operator for key '%.*s'", (int)(klen > 64 ? 64 : klen), key);
    json_object_foreach(ops, op, arg)
    {
        int rc = first ? 0 : put(c, " and ");
        first = false;
        if (rc)
            return rc;
        if (strcmp(op, "exists") == 0) {
            if (!json_is_boolean(arg))
                return bad(c, "\"exists\" takes true or false");
            if ((rc = put(c, json_is_true(arg) ? "exists " : "not exists ")) ||
                (rc = put_quoted(c, key, klen)))
                return rc;
            continue;
        }
        if (strcmp(op, "in") == 0) {
            if (!json_is_array(arg) || json_array_size(arg) == 0)
                return bad(c, "\"in\" takes a non-empty array");
            if ((rc = put_quoted(c, key, klen)) || (rc = put(c, " in (")))
                return rc;
            size_t i;
            json_t *e;
            json_array_foreach(arg, i, e)
            {
                if ((i && (rc = put(c, ", "))) || (rc = put_scalar(c, e)))
                    return rc;
            }
            if ((rc = put(c, ")")))
                return rc;
            continue;
        }
        size_t w = 0;
        while (w < 6 && strcmp(op, cmp[w]) != 0)
            w++;
        if (w == 6)
            return bad(c, "unknown operator '%.16s'", op);
        if ((rc = put_quoted(c, key, klen)) || (rc = put(c, " ")) || (rc = put(c, cmp[w])) ||
            (rc = put(c, " ")) || (rc = put_scalar(c, arg)))
            return rc;
    }
    return 0;
}

/* "$and" / "$or": a non-empty array of filters joined by word. */
static int put_list(conv *c, json_t *arr, const char *word, int depth)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return bad(c, "\"$%s\" takes a non-empty array", word);
    size_t i;
    json_t *e;
    int rc = put(c, "(");
    json_array_foreach(arr, i, e)
    {
        if (rc == 0 && i)
            rc = put(c, word[0] == 'a' ? " and " : " or ");
        if (rc == 0)
            rc = put_filter(c, e, depth + 1);
    }
    return rc ? rc : put(c, ")");
}

/* A filter object (AND of members) or a text string, parenthesized. */
static int put_filter(conv *c, json_t *v, int depth)
{
    if (depth > JSON_DEPTH_MAX)
        return bad(c, "nested deeper than %d", JSON_DEPTH_MAX);
    if (json_is_string(v))
        return put(c, "(") ||
                       vc_buf_append(&c->text, json_string_value(v), json_string_length(v)) ||
                       put(c, ")")
                   ? -ENOMEM
                   : 0;
    if (!json_is_object(v) || json_object_size(v) == 0)
        return bad(c, "a filter must be a non-empty object or a string");
    const char *key;
    size_t klen;
    json_t *m;
    bool first = true;
    int rc = put(c, "(");
    json_object_keylen_foreach(v, key, klen, m)
    {
        if (rc == 0 && !first)
            rc = put(c, " and ");
        first = false;
        if (rc)
            return rc;
        if (strcmp(key, "$and") == 0 || strcmp(key, "$or") == 0)
            rc = put_list(c, m, key + 1, depth);
        else if (strcmp(key, "$not") == 0)
            rc = put(c, "not ") ? -ENOMEM : put_filter(c, m, depth + 1);
        else if (key[0] == '$')
            return bad(c, "unknown operator '%.16s'", key);
        else if (json_is_object(m))
            rc = put_ops(c, key, klen, m);
        else if ((rc = put_quoted(c, key, klen)) == 0 && (rc = put(c, " = ")) == 0)
            rc = put_scalar(c, m);
        if (c->text.len > ST_FILTER_TEXT_MAX)
            return -E2BIG;
    }
    return rc ? rc : put(c, ")");
}

int fsd_filter_json(json_t *v, st_filter **out, char *err, size_t errcap)
{
    *out = NULL;
    if (err && errcap)
        err[0] = '\0';
    if (json_is_object(v) && json_object_size(v) == 0)
        return 0;
    if (json_is_string(v)) /* the text grammar, old form included */
        return st_filter_parse(json_string_value(v), json_string_length(v), out, err, errcap);
    conv c = {.text = VC_BUF_INIT, .err = err, .errcap = errcap};
    int rc = put_filter(&c, v, 0);
    if (rc == -E2BIG && err && errcap)
        snprintf(err, errcap, "filter: over %u bytes", ST_FILTER_TEXT_MAX);
    if (rc == 0)
        rc = st_filter_parse(c.text.p, c.text.len, out, err, errcap);
    vc_buf_release(&c.text);
    return rc;
}
