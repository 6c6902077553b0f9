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
 *         COLL_RENAME  str coll, str to, u32 flags
 *         COLL_ATTR    str coll, attr, cfgtime
 *         COLL_CONFIG  str coll, config (record.c's fields, then u32
 *                      rerank), cfgtime
 *         BATCH        str coll, u32 dim, u32 nrows, nrows x row
 *         BLOB         16-byte id, u64 length, u32 CRC-32C (no coll)
 *     u32 CRC-32C of every byte before it
 * where "cfgtime" = u32 flags (ST_LOG_CFG_MTIME), then a time if set, and
 * "row" = str name, u32 row flags, attr, dim x f32, blob content (absent
 * when row flag 1 says the content is the vector's own little-endian
 * bytes, as an .fvecs row's is), u32 nmeta, nmeta x (str key, blob value).
 *
 * Invariants
 *   1. st_log_entry_decode accepts exactly what st_log_entry_encode
 *      writes: every length is bounded by the bytes left and by the store's
 *      own limits, every string has its 0 byte and no other, the kind is
 *      known, nothing trails the CRC.
 *   2. A decoded entry's strings and content point into its own copy of
 *      the bytes; its vectors are a separate aligned array, its rows and
 *      their xattr arrays two more. All live until st_log_entry_free.
 *   3. The layout is canonical: a row whose content equals its vector's
 *      bytes has row flag 1 (never a copy), a time or a BLOB appears only
 *      where it is allowed, so decode-then-encode gives the same bytes.
 *   4. A BLOB op is alone in its entry (the entry is only a reference).
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
/* Row flag: the content is the vector's little-endian bytes (not stored). */
#define ROW_CONTENT_IS_VEC (1u << 0)
/* The fewest bytes a row and an xattr of a row take: bounds on counts. */
#define ROW_MIN_BYTES (4u + 4u + 52u + 4u + 4u)
#define META_MIN_BYTES (4u + 4u)

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

static void put_vec(vc_buf *b, const float *vec, uint32_t dim)
{
    for (uint32_t i = 0; i < dim; i++) {
        uint8_t f[4];
        vc_le_putf(f, vec[i]);
        vc_buf_append(b, f, 4);
    }
}

/* COLL_ATTR's and COLL_CONFIG's .config mtime. */
static void put_cfgtime(vc_buf *b, const st_log_op *op)
{
    vc_buf_append_le32(b, op->flags);
    if (op->flags & ST_LOG_CFG_MTIME)
        put_time(b, &op->cfg_mtime);
}

/* Whether a row's content is its vector's little-endian bytes. */
static bool content_is_vec(const void *data, size_t len, const float *vec, uint32_t dim)
{
    if (len != (size_t)dim * 4)
        return false;
    const uint8_t *p = data;
    for (uint32_t i = 0; i < dim; i++) {
        uint8_t f[4];
        vc_le_putf(f, vec[i]);
        if (memcmp(f, p + 4 * (size_t)i, 4) != 0)
            return false;
    }
    return true;
}

static void put_row(vc_buf *b, const st_log_row *r, uint32_t dim)
{
    bool is_vec = content_is_vec(r->data, r->len, r->vec, dim);
    put_str(b, r->name);
    vc_buf_append_le32(b, is_vec ? ROW_CONTENT_IS_VEC : 0);
    /* ST_PUT_NEW is a condition the writer's check resolved: entries carry
     * none (rados_node.c). */
    put_attr(b, &r->attr, r->mask & ~ST_PUT_NEW);
    put_vec(b, r->vec, dim);
    if (!is_vec)
        put_blob(b, r->data, r->len);
    vc_buf_append_le32(b, (uint32_t)r->nmeta);
    for (size_t i = 0; i < r->nmeta; i++) {
        put_str(b, r->meta_keys[i]);
        put_blob(b, r->meta_vals[i], r->meta_lens[i]);
    }
}

static void put_op(vc_buf *b, const st_log_op *op)
{
    vc_buf_append_u8(b, (uint8_t)op->kind);
    if (op->kind == ST_LOG_BLOB) {
        vc_buf_append(b, op->blob_id, ST_LOG_BLOB_ID);
        vc_buf_append_le64(b, op->blob_len);
        vc_buf_append_le32(b, op->blob_crc);
        return;
    }
    put_str(b, op->coll);
    switch (op->kind) {
    case ST_LOG_PUT:
        put_str(b, op->name);
        vc_buf_append_le32(b, op->flags);
        put_attr(b, &op->attr, op->mask);
        vc_buf_append_le32(b, op->dim);
        put_vec(b, op->vec, op->dim);
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
    case ST_LOG_COLL_RENAME:
        put_str(b, op->to);
        vc_buf_append_le32(b, op->flags);
        break;
    case ST_LOG_COLL_ATTR:
        put_attr(b, &op->attr, op->mask);
        put_cfgtime(b, op);
        break;
    case ST_LOG_COLL_CONFIG:
        st_rec_config_enc(b, &op->cfg);
        vc_buf_append_le32(b, op->cfg.rerank);
        put_cfgtime(b, op);
        break;
    case ST_LOG_BATCH:
        vc_buf_append_le32(b, op->dim);
        vc_buf_append_le32(b, (uint32_t)op->nrows);
        for (size_t i = 0; i < op->nrows; i++)
            put_row(b, &op->rows[i], op->dim);
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

/* A decode in progress: the reader, where the next vector goes in the
 * entry's float array, and the rows and row xattrs seen so far (pointed
 * to by their ops and rows only at the end, once they stop moving). */
typedef struct meta_item {
    const char *key;
    const void *val;
    size_t len;
} meta_item;

typedef struct decoding {
    reader r;
    float *next;
    const float *end;
    st_log_row *rows;
    size_t nrows;
    meta_item *meta;
    size_t nmeta, meta_cap;
} decoding;

/* dim floats into the entry's float array; *wire = their bytes. */
static int get_floats(decoding *d, uint32_t dim, const float **vec, const uint8_t **wire)
{
    if (dim == 0 || dim > VF_MAX_DIM || dim > d->r.left / 4 || dim > (size_t)(d->end - d->next))
        return -EPROTO;
    const uint8_t *p = take(&d->r, (size_t)dim * 4);
    for (uint32_t i = 0; i < dim; i++)
        d->next[i] = vc_le_getf(p + 4 * i);
    *vec = d->next;
    *wire = p;
    d->next += dim;
    return 0;
}

static int get_cfgtime(reader *r, st_log_op *op)
{
    if (get_u32(r, &op->flags) || (op->flags & ~ST_LOG_CFG_MTIME))
        return -EPROTO;
    return op->flags ? get_time(r, &op->cfg_mtime) : 0;
}

static int get_config(reader *r, st_log_op *op)
{
    st_rd rd = {.p = r->p, .len = r->left};
    bool ok = st_rec_config_dec(&rd, &op->cfg);
    if (!ok || !take(r, rd.off) || get_u32(r, &op->cfg.rerank) || st_config_validate(&op->cfg))
        return -EPROTO;
    return get_cfgtime(r, op);
}

static int get_meta(decoding *d, uint32_t nmeta)
{
    if (nmeta > d->r.left / META_MIN_BYTES)
        return -EPROTO;
    if (d->nmeta + nmeta > d->meta_cap) {
        size_t cap = 2 * (d->nmeta + nmeta);
        meta_item *m = vc_realloc(d->meta, cap * sizeof(*m));
        if (!m)
            return -ENOMEM;
        d->meta = m;
        d->meta_cap = cap;
    }
    for (uint32_t i = 0; i < nmeta; i++) {
        meta_item *m = &d->meta[d->nmeta++];
        if (get_str(&d->r, ST_XATTR_NAME_MAX, &m->key) ||
            get_blob(&d->r, ST_XATTR_VALUE_MAX, &m->val, &m->len))
            return -EPROTO;
    }
    return 0;
}

static int get_row(decoding *d, uint32_t dim, st_log_row *row)
{
    uint32_t flags, nmeta;
    const uint8_t *wire;
    memset(row, 0, sizeof(*row));
    if (get_str(&d->r, ST_NAME_MAX, &row->name) || get_u32(&d->r, &flags) ||
        (flags & ~ROW_CONTENT_IS_VEC) || get_attr(&d->r, &row->attr, &row->mask) ||
        get_floats(d, dim, &row->vec, &wire))
        return -EPROTO;
    if (flags & ROW_CONTENT_IS_VEC) {
        row->data = wire;
        row->len = (size_t)dim * 4;
    } else if (get_blob(&d->r, ST_CONTENT_MAX, &row->data, &row->len) ||
               content_is_vec(row->data, row->len, row->vec, dim)) {
        return -EPROTO; /* a copy of the vector's bytes is written as flag 1 */
    }
    if (get_u32(&d->r, &nmeta))
        return -EPROTO;
    row->nmeta = nmeta;
    return get_meta(d, nmeta);
}

static int get_batch(decoding *d, st_log_op *op)
{
    uint32_t nrows;
    if (get_u32(&d->r, &op->dim) || get_u32(&d->r, &nrows) || nrows == 0 ||
        nrows > d->r.left / ROW_MIN_BYTES)
        return -EPROTO;
    st_log_row *rows = vc_realloc(d->rows, (d->nrows + nrows) * sizeof(*rows));
    if (!rows)
        return -ENOMEM;
    d->rows = rows;
    op->nrows = nrows;
    for (uint32_t i = 0; i < nrows; i++) {
        int rc = get_row(d, op->dim, &d->rows[d->nrows]);
        if (rc)
            return rc;
        d->nrows++;
    }
    return 0;
}

static int get_blob_ref(reader *r, st_log_op *op)
{
    const uint8_t *p = take(r, ST_LOG_BLOB_ID + 12);
    if (!p)
        return -EPROTO;
    memcpy(op->blob_id, p, ST_LOG_BLOB_ID);
    op->blob_len = vc_le_get64(p + ST_LOG_BLOB_ID);
    op->blob_crc = vc_le_get32(p + ST_LOG_BLOB_ID + 8);
    return op->blob_len == 0 || op->blob_len > ST_LOG_BLOB_MAX ? -EPROTO : 0;
}

static int get_op(decoding *d, st_log_op *op)
{
    reader *r = &d->r;
    const uint8_t *k = take(r, 1);
    memset(op, 0, sizeof(*op));
    if (!k || *k < ST_LOG_PUT || *k > ST_LOG_BLOB)
        return -EPROTO;
    op->kind = *k;
    if (op->kind == ST_LOG_BLOB)
        return get_blob_ref(r, op);
    if (get_str(r, ST_COLL_NAME_MAX, &op->coll))
        return -EPROTO;
    if (op->kind <= ST_LOG_XATTR_REMOVE && get_str(r, ST_NAME_MAX, &op->name))
        return -EPROTO;
    const uint8_t *wire;
    switch (op->kind) {
    case ST_LOG_PUT:
        if (get_u32(r, &op->flags) || (op->flags & ~ST_LOG_PUT_NEW) ||
            get_attr(r, &op->attr, &op->mask) || get_u32(r, &op->dim) ||
            get_floats(d, op->dim, &op->vec, &wire) ||
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
    case ST_LOG_COLL_RENAME:
        if (get_str(r, ST_COLL_NAME_MAX, &op->to) || get_u32(r, &op->flags) ||
            (op->flags & ~ST_RENAME_NOREPLACE))
            return -EPROTO;
        return 0;
    case ST_LOG_COLL_ATTR:
        return get_attr(r, &op->attr, &op->mask) || get_cfgtime(r, op) ? -EPROTO : 0;
    case ST_LOG_COLL_CONFIG:
        return get_config(r, op);
    case ST_LOG_BATCH:
        return get_batch(d, op);
    default: /* DELETE, COLL_DROP: nothing more */
        return 0;
    }
}

/* Points the ops at their rows and the rows at their xattrs, now that
 * both arrays are complete (the xattrs into one block e->meta). */
static int link_rows(st_log_entry *e, decoding *d)
{
    size_t n = d->nmeta ? d->nmeta : 1;
    e->meta = vc_malloc(n * (sizeof(char *) + sizeof(void *) + sizeof(size_t)));
    if (!e->meta)
        return -ENOMEM;
    const char **keys = e->meta;
    const void **vals = (const void **)(keys + n);
    size_t *lens = (size_t *)(vals + n);
    for (size_t i = 0; i < d->nmeta; i++) {
        keys[i] = d->meta[i].key;
        vals[i] = d->meta[i].val;
        lens[i] = d->meta[i].len;
    }
    e->rows = d->rows;
    d->rows = NULL;
    size_t row = 0, meta = 0;
    for (size_t i = 0; i < e->nops; i++) {
        if (e->ops[i].kind != ST_LOG_BATCH)
            continue;
        e->ops[i].rows = e->rows + row;
        for (size_t j = 0; j < e->ops[i].nrows; j++, row++) {
            e->rows[row].meta_keys = keys + meta;
            e->rows[row].meta_vals = vals + meta;
            e->rows[row].meta_lens = lens + meta;
            meta += e->rows[row].nmeta;
        }
    }
    return 0;
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
    decoding d = {.r = {(const uint8_t *)e->mem + 8, len - 12}, .next = e->vecs};
    d.end = e->vecs + body / 4;
    e->node = vc_le_get64(take(&d.r, 8));
    int rc = get_time(&d.r, &e->written);
    take(&d.r, 4); /* nops, read above */
    e->nops = nops;
    for (uint32_t i = 0; rc == 0 && i < nops; i++) {
        rc = get_op(&d, &e->ops[i]);
        if (rc == 0 && e->ops[i].kind == ST_LOG_BLOB && nops != 1)
            rc = -EPROTO; /* a reference stands alone */
    }
    if (rc == 0 && d.r.left != 0)
        rc = -EPROTO;
    if (rc == 0)
        rc = link_rows(e, &d);
    free(d.rows);
    free(d.meta);
    if (rc)
        st_log_entry_free(e);
    return rc;
}

void st_log_entry_free(st_log_entry *e)
{
    free(e->mem);
    free(e->ops);
    free(e->vecs);
    free(e->rows);
    free(e->meta);
    memset(e, 0, sizeof(*e));
}
