/*
 * query_wire.c — parsing one-request query buffers and writing their
 * results (query_wire.h; layout in contrib/vecfs_query.h).
 *
 * Invariants
 *   1. Nothing is read at or past len of a request, and every offset is
 *      computed in 64 bits from 32-bit fields, so no field can wrap it.
 *   2. A result never writes at or past cap; need always holds the size
 *      the whole result takes, so an E2BIG reply can say it.
 *   3. Every multi-byte field goes through common/le.h (little-endian on
 *      any host, any alignment: the kernel's buffer has none promised).
 */
#include "query_wire.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "le.h"
#include "store.h"
#include "query_parse.h"

_Static_assert(VECFS_QWIRE_MAX_K == FSD_QUERY_MAX_K, "one k limit for every query path");
_Static_assert(VECFS_QWIRE_NAME_MAX == ST_NAME_MAX, "a result record holds any vector name");

size_t fsd_qwire_cmd_size(unsigned int cmd)
{
    if (cmd == (unsigned int)VECFS_IOC_QUERY_4K)
        return VECFS_QBUF_4K;
    if (cmd == (unsigned int)VECFS_IOC_QUERY_16K)
        return VECFS_QBUF_16K;
    return 0;
}

/* Request field offsets (vecfs_query.h). */
enum {
    REQ_MAGIC = 0,
    REQ_VERSION = 4,
    REQ_FLAGS = 6,
    REQ_K = 8,
    REQ_EF = 12,
    REQ_DIM = 16,
    REQ_FILTER_LEN = 20
};
/* Result field offsets. */
enum {
    RES_MAGIC = 0,
    RES_VERSION = 4,
    RES_FLAGS = 6,
    RES_STATUS = 8,
    RES_COUNT = 12,
    RES_LENGTH = 16,
    RES_NEED = 20
};

/* Fails the parse with err and reason. */
static int reject(const char **why, int err, const char *reason)
{
    *why = reason;
    return err;
}

int fsd_qwire_parse(const void *buf, size_t len, float *vector, size_t vector_cap,
                    fsd_qwire_req *out, const char **why)
{
    const unsigned char *p = buf;
    memset(out, 0, sizeof *out);
    if (len < VECFS_QWIRE_HEADER)
        return reject(why, -EINVAL, "request shorter than its header");
    if (vc_le_get32(p + REQ_MAGIC) != VECFS_QREQ_MAGIC)
        return reject(why, -EINVAL, "bad magic (want \"VQRQ\")");
    if (vc_le_get16(p + REQ_VERSION) != VECFS_QWIRE_VERSION)
        return reject(why, -EPROTONOSUPPORT, "unsupported version (this daemon speaks 1)");
    uint32_t flags = vc_le_get16(p + REQ_FLAGS);
    uint32_t k = vc_le_get32(p + REQ_K), ef = vc_le_get32(p + REQ_EF);
    uint32_t dim = vc_le_get32(p + REQ_DIM), flen = vc_le_get32(p + REQ_FILTER_LEN);
    if (flags & ~(uint32_t)(VECFS_QREQ_K | VECFS_QREQ_EF | VECFS_QREQ_FILTER))
        return reject(why, -EINVAL, "unknown flag bits");
    if (!(flags & VECFS_QREQ_K) ? k != 0 : k == 0 || k > VECFS_QWIRE_MAX_K)
        return reject(why, -EINVAL, "k must be 1..10000 (or 0 without the k flag)");
    if (!(flags & VECFS_QREQ_EF) ? ef != 0 : ef == 0 || ef > FSD_QUERY_MAX_EF)
        return reject(why, -EINVAL, "ef must be 1..100000 (or 0 without the ef flag)");
    if (!(flags & VECFS_QREQ_FILTER) && flen != 0)
        return reject(why, -EINVAL, "filter_len set without the filter flag");
    if (dim == 0)
        return reject(why, -EINVAL, "dim 0");
    uint64_t end = VECFS_QWIRE_HEADER + (uint64_t)dim * 4 + flen;
    if (dim > vector_cap || end > len)
        return reject(why, -EINVAL, "vector and filter run past the request buffer");
    for (uint32_t i = 0; i < dim; i++) {
        vector[i] = vc_le_getf(p + VECFS_QWIRE_HEADER + (size_t)i * 4);
        if (!isfinite(vector[i]))
            return reject(why, -EINVAL, "non-finite value in the vector");
    }
    out->flags = flags;
    out->k = k;
    out->ef = ef;
    out->dim = dim;
    out->filter_len = flen;
    out->filter = flen ? (const char *)p + VECFS_QWIRE_HEADER + (size_t)dim * 4 : NULL;
    return 0;
}

/* Writes a result header: status, count, length, need. */
static void put_header(unsigned char *p, int status, uint32_t count, size_t len, size_t need)
{
    vc_le_put32(p + RES_MAGIC, VECFS_QRES_MAGIC);
    vc_le_put16(p + RES_VERSION, VECFS_QWIRE_VERSION);
    vc_le_put16(p + RES_FLAGS, 0);
    vc_le_put32(p + RES_STATUS, (uint32_t)status);
    vc_le_put32(p + RES_COUNT, count);
    vc_le_put32(p + RES_LENGTH, (uint32_t)len);
    vc_le_put32(p + RES_NEED, (uint32_t)need);
}

void fsd_qwire_result_start(fsd_qwire_result *r, void *buf, size_t cap)
{
    r->p = buf;
    r->cap = cap;
    r->len = r->need = VECFS_QWIRE_HEADER;
    r->count = 0;
}

int fsd_qwire_result_add(fsd_qwire_result *r, const char *name, size_t name_len, float distance)
{
    if (name_len > VECFS_QWIRE_NAME_MAX)
        return -EINVAL;
    size_t rec = VECFS_QWIRE_RECORD + name_len;
    r->need += rec;
    if (r->len != r->need - rec || rec > r->cap - r->len)
        return -E2BIG; /* this or an earlier record did not fit */
    unsigned char *at = r->p + r->len;
    vc_le_putf(at, distance);
    vc_le_put16(at + 4, (uint16_t)name_len);
    memcpy(at + VECFS_QWIRE_RECORD, name, name_len);
    r->len += rec;
    r->count++;
    return 0;
}

size_t fsd_qwire_result_finish(fsd_qwire_result *r)
{
    put_header(r->p, 0, r->count, r->len, 0);
    return r->len;
}

size_t fsd_qwire_error(void *buf, size_t cap, int err, size_t need, const char *fmt, ...)
{
    unsigned char *p = buf;
    size_t room = cap - VECFS_QWIRE_HEADER, n = 0;
    char *msg = (char *)p + VECFS_QWIRE_HEADER;
    if (room > 0) {
        va_list ap;
        va_start(ap, fmt);
        /* vsnprintf ends with a NUL the result does not carry. */
        int w = vsnprintf(msg, room, fmt, ap);
        va_end(ap);
        n = w < 0 ? 0 : (size_t)w < room ? (size_t)w : room - 1;
    }
    put_header(p, err, 0, VECFS_QWIRE_HEADER + n, need);
    return VECFS_QWIRE_HEADER + n;
}
