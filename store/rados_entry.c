/*
 * rados_entry.c — the bytes of one RADOS log entry (docs/scale-out.md §3):
 * a versioned, checksummed record of one or more operations, each written
 * as the state it results in, so that every node applying it makes the
 * same records, times and attributes.
 *
 * Layout (little-endian; "str" = u16 length, the bytes, a 0 byte; "blob" =
 * u32 length, the bytes; "time" = i64 seconds, u32 nanoseconds; "attr" =
 * u32 mask, u32 mode, u32 uid, u32 gid, time atime, time mtime, time
 * ctime):
 *     "VFLE" u16 version(1) u16 flags(0) u64 node time written u32 nops
 *     nops x (u8 kind, then by kind)
 *         PUT          str coll, str name, u32 flags, attr, u32 dim,
 *                      dim x f32, blob content
 *         DELETE       str coll, str name
 *         RENAME       str coll, str name, str to, u32 flags
 *         SETATTR      str coll, str name, attr
 *         XATTR_SET    str coll, str name, str xname, u32 flags, blob value
 *         XATTR_REMOVE str coll, str name, str xname
 *         COLL_CREATE  str coll, attr
 *         COLL_DROP    str coll
 *     u32 CRC-32C of every byte before it
 *
 * Invariants
 *   1. st_log_entry_decode accepts exactly what st_log_entry_encode
 *      writes: every length is bounded by the bytes left and by the store's
 *      own limits, every string has its 0 byte and no other, the kind is
 *      known, nothing trails the CRC.
 *   2. A decoded entry's strings and content point into its own copy of
 *      the bytes; its vectors are a separate aligned array. Both live until
 *      st_log_entry_free.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "internal.h"
#include "le.h"

#define ENTRY_MAGIC "VFLE"
#define ENTRY_VERSION 1u
#define ENTRY_HEAD 32u /* magic .. nops */

static void put_str(vc_buf *b, const char *s)
{
    size_t n = strlen(s);
    vc_buf_append_le16(b, (uint16_t)n);
    vc_buf_append(b, s, n);
    vc_buf_append_u8(b, 0);
}

static void put_blob(vc_buf *b, const void *p, size_t n)
{
    vc_buf_append_le32(b, (uint32_t)n);
    vc_buf_append(b, p, n);
}

static void put_time(vc_buf *b, const struct timespec *t)
{
    vc_buf_append_le64(b, (uint64_t)(int64_t)t->tv_sec);
    vc_buf_append_le32(b, (uint32_t)t->tv_nsec);
}

static void put_attr(vc_buf *b, const st_attr *a, unsigned mask)
{
    vc_buf_append_le32(b, mask);
    vc_buf_append_le32(b, a->mode);
    vc_buf_append_le32(b, a->uid);
    vc_buf_append_le32(b, a->gid);
    put_time(b, &a->atime);
    put_time(b, &a->mtime);
    put_time(b, &a->ctime);
}

static void put_op(vc_buf *b, const st_log_op *op)
{
    vc_buf_append_u8(b, (uint8_t)op->kind);
    put_str(b, op->coll);
    switch (op->kind) {
    case ST_LOG_PUT:
        put_str(b, op->name);
        vc_buf_append_le32(b, op->flags);
        put_attr(b, &op->attr, op->mask);
        vc_buf_append_le32(b, op->dim);
        for (uint32_t i = 0; i < op->dim; i++) {
            uint8_t f[4];
            vc_le_putf(f, op->vec[i]);
            vc_buf_append(b, f, 4);
        }
        put_blob(b, op->data, op->len);
        break;
    case ST_LOG_DELETE:
        put_str(b, op->name);
        break;
    case ST_LOG_RENAME:
        put_str(b, op->name);
        put_str(b, op->to);
        vc_buf_append_le32(b, op->flags);
        break;
    case ST_LOG_SETATTR:
        put_str(b, op->name);
        put_attr(b, &op->attr, op->mask);
        break;
    case ST_LOG_XATTR_SET:
        put_str(b, op->name);
        put_str(b, op->to);
        vc_buf_append_le32(b, op->flags);
        put_blob(b, op->data, op->len);
        break;
    case ST_LOG_XATTR_REMOVE:
        put_str(b, op->name);
        put_str(b, op->to);
        break;
    case ST_LOG_COLL_CREATE:
        put_attr(b, &op->attr, op->mask);
        break;
    default: /* ST_LOG_COLL_DROP: the collection only */
        break;
    }
}

int st_log_entry_encode(const st_log_entry *e, vc_buf *out)
{
    vc_buf_reset(out);
    vc_buf_append(out, ENTRY_MAGIC, 4);
    vc_buf_append_le16(out, ENTRY_VERSION);
    vc_buf_append_le16(out, 0);
    vc_buf_append_le64(out, e->node);
    put_time(out, &e->written);
    vc_buf_append_le32(out, (uint32_t)e->nops);
    for (size_t i = 0; i < e->nops; i++)
        put_op(out, &e->ops[i]);
    if (out->err)
        return out->err;
    return vc_buf_append_le32(out, vc_crc32c(0, out->p, out->len));
}

/* A cursor over the entry's bytes; every read checks the bytes left. */
typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static const uint8_t *take(reader *r, size_t n)
{
    if (r->left < n)
        return NULL;
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static int get_u32(reader *r, uint32_t *v)
{
    const uint8_t *p = take(r, 4);
    if (!p)
        return -EPROTO;
    *v = vc_le_get32(p);
    return 0;
}

/* A string of at most max bytes (and at least one). */
static int get_str(reader *r, size_t max, const char **s)
{
    const uint8_t *p = take(r, 2);
    if (!p)
        return -EPROTO;
    size_t n = vc_le_get16(p);
    const uint8_t *body = take(r, n + 1);
    if (!body || n == 0 || n > max || body[n] != 0 || memchr(body, 0, n))
        return -EPROTO;
    *s = (const char *)body;
    return 0;
}

static int get_blob(reader *r, size_t max, const void **data, size_t *len)
{
    uint32_t n;
    if (get_u32(r, &n) || n > max)
        return -EPROTO;
    const uint8_t *p = take(r, n);
    if (!p)
        return -EPROTO;
    *data = p;
    *len = n;
    return 0;
}

static int get_time(reader *r, struct timespec *t)
{
    const uint8_t *p = take(r, 12);
    if (!p)
        return -EPROTO;
    t->tv_sec = (time_t)(int64_t)vc_le_get64(p);
    uint32_t ns = vc_le_get32(p + 8);
    if (ns >= 1000000000u)
        return -EPROTO;
    t->tv_nsec = (long)ns;
    return 0;
}

static int get_attr(reader *r, st_attr *a, unsigned *mask)
{
    uint32_t m;
    memset(a, 0, sizeof(*a));
    if (get_u32(r, &m) || (m & ~(unsigned)(ST_SET_ALL | ST_SET_IF_NEW)) || get_u32(r, &a->mode) ||
        get_u32(r, &a->uid) || get_u32(r, &a->gid) || get_time(r, &a->atime) ||
        get_time(r, &a->mtime) || get_time(r, &a->ctime))
        return -EPROTO;
    *mask = m;
    return 0;
}

/* The vector of a PUT: dim floats copied to *next of the entry's array. */
static int get_vec(reader *r, st_log_op *op, float **next, const float *end)
{
    uint32_t dim;
    if (get_u32(r, &dim) || dim == 0 || dim > VF_MAX_DIM || dim > r->left / 4 ||
        dim > (size_t)(end - *next))
        return -EPROTO;
    const uint8_t *p = take(r, (size_t)dim * 4);
    for (uint32_t i = 0; i < dim; i++)
        (*next)[i] = vc_le_getf(p + 4 * i);
    op->vec = *next;
    op->dim = dim;
    *next += dim;
    return 0;
}

static int get_op(reader *r, st_log_op *op, float **next, const float *end)
{
    const uint8_t *k = take(r, 1);
    memset(op, 0, sizeof(*op));
    if (!k || *k < ST_LOG_PUT || *k > ST_LOG_COLL_DROP)
        return -EPROTO;
    op->kind = *k;
    if (get_str(r, ST_COLL_NAME_MAX, &op->coll))
        return -EPROTO;
    bool has_name = op->kind != ST_LOG_COLL_CREATE && op->kind != ST_LOG_COLL_DROP;
    if (has_name && get_str(r, ST_NAME_MAX, &op->name))
        return -EPROTO;
    switch (op->kind) {
    case ST_LOG_PUT:
        if (get_u32(r, &op->flags) || (op->flags & ~ST_LOG_PUT_NEW) ||
            get_attr(r, &op->attr, &op->mask) || get_vec(r, op, next, end) ||
            get_blob(r, ST_CONTENT_MAX, &op->data, &op->len))
            return -EPROTO;
        return 0;
    case ST_LOG_RENAME:
        if (get_str(r, ST_NAME_MAX, &op->to) || get_u32(r, &op->flags) ||
            (op->flags & ~ST_RENAME_NOREPLACE))
            return -EPROTO;
        return 0;
    case ST_LOG_SETATTR:
    case ST_LOG_COLL_CREATE:
        return get_attr(r, &op->attr, &op->mask);
    case ST_LOG_XATTR_SET:
        if (get_str(r, ST_XATTR_NAME_MAX, &op->to) || get_u32(r, &op->flags) ||
            (op->flags & ~(unsigned)(ST_XATTR_CREATE | ST_XATTR_REPLACE)) ||
            get_blob(r, ST_XATTR_VALUE_MAX, &op->data, &op->len))
            return -EPROTO;
        return 0;
    case ST_LOG_XATTR_REMOVE:
        return get_str(r, ST_XATTR_NAME_MAX, &op->to);
    default: /* DELETE, COLL_DROP: nothing more */
        return 0;
    }
}

int st_log_entry_decode(const void *bytes, size_t len, st_log_entry *e)
{
    memset(e, 0, sizeof(*e));
    if (len < ENTRY_HEAD + 4)
        return -EPROTO;
    const uint8_t *b = bytes;
    if (memcmp(b, ENTRY_MAGIC, 4) != 0 || vc_le_get32(b + len - 4) != vc_crc32c(0, b, len - 4))
        return -EPROTO;
    if (vc_le_get16(b + 4) != ENTRY_VERSION || vc_le_get16(b + 6) != 0)
        return -EPROTO;
    /* Each op takes at least 4 bytes, each float 4: both bound the sizes
     * allocated before the bytes are read. */
    uint32_t nops = vc_le_get32(b + 28);
    size_t body = len - ENTRY_HEAD - 4;
    if (nops == 0 || nops > body / 4)
        return -EPROTO;
    e->mem = st_memdup(b, len);
    e->ops = vc_calloc(nops, sizeof(*e->ops));
    e->vecs = vc_malloc(body / 4 * sizeof(float) + sizeof(float));
    if (!e->mem || !e->ops || !e->vecs) {
        st_log_entry_free(e);
        return -ENOMEM;
    }
    reader r = {(const uint8_t *)e->mem + 8, len - 12};
    e->node = vc_le_get64(take(&r, 8));
    int rc = get_time(&r, &e->written);
    take(&r, 4); /* nops, read above */
    float *next = e->vecs;
    const float *end = e->vecs + body / 4;
    for (uint32_t i = 0; rc == 0 && i < nops; i++)
        rc = get_op(&r, &e->ops[i], &next, end);
    e->nops = nops;
    if (rc == 0 && r.left != 0)
        rc = -EPROTO;
    if (rc)
        st_log_entry_free(e);
    return rc;
}

void st_log_entry_free(st_log_entry *e)
{
    free(e->mem);
    free(e->ops);
    free(e->vecs);
    memset(e, 0, sizeof(*e));
}
