/*
 * config.c — a collection's configuration: defaults (SPEC §3.2), range
 * checks, and the "key = value" text of .config (parser and formatter).
 *
 * Invariants
 *   1. st_config_parse reads exactly len bytes, never past them, needs no
 *      NUL, and on any error leaves *out untouched (all-or-nothing, so a
 *      bad .config write keeps the old config).
 *   2. Every value that st_config_parse accepts passes st_config_validate,
 *      and st_config_format output parses back to the same config
 *      (target_recall to 6 significant digits; "%g" output, exponent
 *      included, is accepted by the parser).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LINE_MAX_BYTES 4096u

void st_config_default(st_config *c)
{
    memset(c, 0, sizeof(*c));
    c->dim = 0;
    c->metric = VF_METRIC_COSINE;
    c->m = 16;
    c->ef_construction = 200;
    c->ef_search = 64;
    c->ef_auto = false;
    c->target_recall = 0.95;
    c->quantization = ST_QUANT_NONE;
    c->rerank = VF_RERANK_DEFAULT;
}

bool st_config_is_default(const st_config *c)
{
    st_config d;
    st_config_default(&d);
    return c->dim == d.dim && c->metric == d.metric && c->m == d.m &&
           c->ef_construction == d.ef_construction && c->ef_search == d.ef_search &&
           c->ef_auto == d.ef_auto && c->target_recall == d.target_recall &&
           c->quantization == d.quantization && c->rerank == d.rerank &&
           c->max_vectors == d.max_vectors && c->max_bytes == d.max_bytes;
}

int st_config_validate(const st_config *c)
{
    if (!c)
        return -EINVAL;
    if (c->dim > VF_MAX_DIM)
        return -EINVAL;
    if (c->metric != VF_METRIC_L2 && c->metric != VF_METRIC_COSINE && c->metric != VF_METRIC_DOT)
        return -EINVAL;
    if (c->m < 2 || c->m > 256)
        return -EINVAL;
    if (c->ef_construction < 1 || c->ef_construction > VF_HNSW_MAX_EF)
        return -EINVAL;
    if (c->ef_search < 1 || c->ef_search > VF_HNSW_MAX_EF)
        return -EINVAL;
    if (!(c->target_recall > 0.0 && c->target_recall <= 1.0))
        return -EINVAL;
    if (c->quantization != ST_QUANT_NONE && c->quantization != ST_QUANT_INT8)
        return -EINVAL;
    if (c->rerank < 1 || c->rerank > VF_RERANK_MAX)
        return -EINVAL;
    return 0;
}

const char *st_quant_name(st_quant q)
{
    return q == ST_QUANT_INT8 ? "int8" : "none";
}

void st_config_hnsw(const st_config *cfg, uint32_t dim, vf_hnsw_params *p)
{
    vf_hnsw_params_default(p, dim);
    p->metric = cfg->metric;
    p->m = cfg->m;
    p->ef_construction = cfg->ef_construction;
    p->ef_search = cfg->ef_search;
    p->quantization = cfg->quantization == ST_QUANT_INT8 ? VF_QUANT_INT8 : VF_QUANT_NONE;
    p->rerank = cfg->rerank;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Parses a decimal unsigned number filling the whole token. */
static bool parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool tok_eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

enum { K_DIM, K_METRIC, K_M, K_EFC, K_EFS, K_RECALL, K_QUANT, K_RERANK, K_MAXV, K_MAXB, K_COUNT };
static const char *const key_names[K_COUNT] = {
    "dim",           "metric",       "m",      "ef_construction", "ef_search",
    "target_recall", "quantization", "rerank", "max_vectors",     "max_bytes"};

/* Applies one "key = value" to c. Returns the key index or -1. */
static int apply(st_config *c, const char *k, size_t kn, const char *v, size_t vn, char *err,
                 size_t errlen, unsigned line)
{
    int key = -1;
    for (int i = 0; i < K_COUNT; i++)
        if (tok_eq(k, kn, key_names[i]))
            key = i;
    if (key < 0) {
        seterr(err, errlen, "line %u: unknown key '%.*s'", line, (int)(kn > 64 ? 64 : kn), k);
        return -1;
    }
    uint64_t u = 0;
    bool ok = true;
    switch (key) {
    case K_DIM:
        ok = parse_u64(v, vn, VF_MAX_DIM, &u);
        c->dim = (uint32_t)u;
        break;
    case K_METRIC:
        if (tok_eq(v, vn, "l2"))
            c->metric = VF_METRIC_L2;
        else if (tok_eq(v, vn, "cosine"))
            c->metric = VF_METRIC_COSINE;
        else if (tok_eq(v, vn, "dot"))
            c->metric = VF_METRIC_DOT;
        else
            ok = false;
        break;
    case K_M:
        ok = parse_u64(v, vn, 256, &u) && u >= 2;
        c->m = (uint32_t)u;
        break;
    case K_EFC:
        ok = parse_u64(v, vn, 65536, &u) && u >= 1;
        c->ef_construction = (uint32_t)u;
        break;
    case K_EFS:
        if (tok_eq(v, vn, "auto")) {
            c->ef_auto = true;
        } else {
            ok = parse_u64(v, vn, 65536, &u) && u >= 1;
            c->ef_search = (uint32_t)u;
            c->ef_auto = false;
        }
        break;
    case K_RECALL: {
        char tmp[32];
        if (vn == 0 || vn >= sizeof(tmp)) {
            ok = false;
            break;
        }
        for (size_t i = 0; i < vn; i++)
            if (!((v[i] >= '0' && v[i] <= '9') || v[i] == '.' || v[i] == 'e' || v[i] == 'E' ||
                  v[i] == '-' || v[i] == '+'))
                ok = false;
        if (!ok)
            break;
        memcpy(tmp, v, vn);
        tmp[vn] = 0;
        char *end = NULL;
        double d = strtod(tmp, &end);
        ok = end == tmp + vn && d > 0.0 && d <= 1.0;
        if (ok)
            c->target_recall = d;
        break;
    }
    case K_QUANT:
        if (tok_eq(v, vn, "none"))
            c->quantization = ST_QUANT_NONE;
        else if (tok_eq(v, vn, "int8"))
            c->quantization = ST_QUANT_INT8;
        else
            ok = false;
        break;
    case K_RERANK:
        ok = parse_u64(v, vn, VF_RERANK_MAX, &u) && u >= 1;
        c->rerank = (uint32_t)u;
        break;
    case K_MAXV:
        ok = parse_u64(v, vn, UINT32_MAX, &u);
        c->max_vectors = u;
        break;
    case K_MAXB:
        ok = parse_u64(v, vn, INT64_MAX, &u);
        c->max_bytes = u;
        break;
    default:
        ok = false;
    }
    if (!ok) {
        seterr(err, errlen, "line %u: bad value '%.*s' for %s", line, (int)(vn > 64 ? 64 : vn), v,
               key_names[key]);
        return -1;
    }
    return key;
}

int st_config_parse(const char *text, size_t len, const st_config *base, st_config *out, char *err,
                    size_t errlen)
{
    if ((!text && len) || !base || !out)
        return -EINVAL;
    st_config c = *base;
    bool seen[K_COUNT] = {false};
    size_t pos = 0;
    unsigned line = 0;
    while (pos < len) {
        line++;
        const char *ls = text + pos;
        const char *nl = memchr(ls, '\n', len - pos);
        size_t ln = nl ? (size_t)(nl - ls) : len - pos;
        pos += ln + (nl ? 1 : 0);
        if (ln > LINE_MAX_BYTES) {
            seterr(err, errlen, "line %u: longer than %u bytes", line, LINE_MAX_BYTES);
            return -EINVAL;
        }
        if (memchr(ls, 0, ln)) {
            seterr(err, errlen, "line %u: NUL byte", line);
            return -EINVAL;
        }
        size_t a = 0, b = ln;
        while (a < b && is_space(ls[a]))
            a++;
        while (b > a && is_space(ls[b - 1]))
            b--;
        if (a == b || ls[a] == '#')
            continue;
        const char *eq = memchr(ls + a, '=', b - a);
        if (!eq) {
            seterr(err, errlen, "line %u: expected 'key = value'", line);
            return -EINVAL;
        }
        size_t ke = (size_t)(eq - ls), vs = ke + 1;
        while (ke > a && is_space(ls[ke - 1]))
            ke--;
        while (vs < b && is_space(ls[vs]))
            vs++;
        int key = apply(&c, ls + a, ke - a, ls + vs, b - vs, err, errlen, line);
        if (key < 0)
            return -EINVAL;
        if (seen[key]) {
            seterr(err, errlen, "line %u: duplicate key %s", line, key_names[key]);
            return -EINVAL;
        }
        seen[key] = true;
    }
    if (st_config_validate(&c) != 0) {
        seterr(err, errlen, "config out of range");
        return -EINVAL;
    }
    *out = c;
    return 0;
}

int st_config_format(const st_config *c, char *buf, size_t cap, size_t *len_out)
{
    if (!c || (!buf && cap) || !len_out)
        return -EINVAL;
    char efs[16];
    if (c->ef_auto)
        snprintf(efs, sizeof(efs), "auto");
    else
        snprintf(efs, sizeof(efs), "%" PRIu32, c->ef_search);
    char tmp[1024];
    int n =
        snprintf(tmp, sizeof(tmp),
                 "dim = %" PRIu32 "\nmetric = %s\nm = %" PRIu32 "\nef_construction = %" PRIu32
                 "\nef_search = %s\ntarget_recall = %.6g\nquantization = %s\nrerank = %" PRIu32
                 "\nmax_vectors = %" PRIu64 "\nmax_bytes = %" PRIu64 "\n",
                 c->dim, vf_metric_name(c->metric), c->m, c->ef_construction, efs, c->target_recall,
                 st_quant_name(c->quantization), c->rerank, c->max_vectors, c->max_bytes);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -EINVAL;
    *len_out = (size_t)n;
    if (cap == 0)
        return 0;
    size_t copy = (size_t)n < cap ? (size_t)n : cap - 1;
    memcpy(buf, tmp, copy);
    buf[copy] = 0;
    return (size_t)n < cap ? 0 : -ERANGE;
}
