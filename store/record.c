/*
 * record.c — the bodies of the store's LMDB records.
 *
 * Every body starts with a 4-byte header: u16le magic 0x5356 ("VS"),
 * u8 record type (enum st_rec_type), u8 record version (1; COLL is
 * written as 3 and read as 1, 2 or 3). Then, all
 * integers little-endian, times as i64 seconds + u32 nanoseconds:
 *
 *   FORMAT   u32 format version | u32 flags (bit 0 encrypted) | u8 kdf kind
 *            | u8 log2 N | u32 r | u32 p | salt[16]
 *   COUNTER  u64 value
 *   COLL     u32 coll id | u64 uuid | u32 dim | u8 metric | u32 m
 *            | u32 ef_construction | u32 ef_search | u8 ef_auto
 *            | u64 target_recall (IEEE-754 bits) | u8 quantization
 *            | u64 max_vectors | u64 max_bytes | u32 mode | u32 uid | u32 gid
 *            | atime | mtime | ctime | u64 count | u64 bytes | u64 next_seq
 *            | u32 next_id | u64 snap_gen | u8 name_len | name
 *            | cfg_mtime (version 2; a version 1 body ends at the name and
 *            decodes with cfg_mtime = mtime) | u32 rerank (version 3; an
 *            older body decodes with the default, VF_RERANK_DEFAULT)
 *   VEC      (version 2, format 3) id | seq | mode | uid | gid (each an
 *            unsigned LEB128 varint: 7 bits a byte, low first; a value
 *            wider than its field is damage) | u8 flags | atime | mtime
 *            (unless flag 1: equal to atime) | ctime (unless flag 2: equal
 *            to atime) | size (varint) | u16 name_len | name (unless flag
 *            4: the name is the record's key, as in a store without a key,
 *            where VEC keys are coll id + name; the decoder is given the
 *            key's name, and without it, or with other flag bits, the body
 *            is damage). Version 1, still read: u32 id | u64 seq | u32 mode
 *            | u32 uid | u32 gid | atime | mtime | ctime | u64 size
 *            | u16 name_len | name
 *   SLOT     u32 dim | u16 name_len | name | f32 vector[dim]
 *   CONTENT, ORDER, KEYCHECK  bytes: the rest of the body (version 2,
 *            format 3); version 1, still read: u64 len | bytes[len]
 *   CONTENT_VEC  u32 dim | u16 prefix_len | prefix[prefix_len]: a CONTENT
 *            whose bytes are prefix followed by the dim float32s of the
 *            vector's SLOT record (content.c), so they are not stored twice
 *   XATTR    u16 name_len | name | u32 value_len | value
 *
 * Invariants
 *   1. Decoders take (pointer, length), read nothing outside it, and accept
 *      a body only if it is exactly as long as its fields say (no trailing
 *      bytes), every length is within its documented bound, and names hold
 *      no NUL. Anything else is -EIO (damage), never an assert.
 *   2. A FORMAT record of a format version this build does not read
 *      (outside ST_FORMAT_VERSION_MIN..ST_FORMAT_VERSION) decodes to
 *      -EPROTO so the opener can say "another version" rather than
 *      "damaged".
 *   3. Encoders append to a vc_buf and check nothing: its first error sticks
 *      (common/buf.h), so their callers check b->err once at the end.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "le.h"

#define REC_VERSION 1u
#define COLL_VERSION 3u /* 2 appended .config's mtime, 3 the rerank factor */
#define BLOB_VERSION 2u /* 2: the bytes are the rest of the body */
#define VEC_VERSION 2u  /* 2: varints, no times equal to atime, no name the key holds */

const uint8_t *st_rd_bytes(st_rd *r, size_t n)
{
    if (r->err || n > r->len - r->off) {
        r->err = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

uint8_t st_rd_u8(st_rd *r)
{
    const uint8_t *p = st_rd_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t st_rd_u16(st_rd *r)
{
    const uint8_t *p = st_rd_bytes(r, 2);
    return p ? vc_le_get16(p) : 0;
}

uint32_t st_rd_u32(st_rd *r)
{
    const uint8_t *p = st_rd_bytes(r, 4);
    return p ? vc_le_get32(p) : 0;
}

uint64_t st_rd_u64(st_rd *r)
{
    uint64_t lo = st_rd_u32(r);
    return lo | (uint64_t)st_rd_u32(r) << 32;
}

/* Unsigned LEB128: 7 bits a byte, low first, high bit = more. A value of
 * more than max, or one longer than 10 bytes, is an error. */
static uint64_t rd_varint(st_rd *r, uint64_t max)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        uint8_t byte = st_rd_u8(r);
        if (r->err)
            return 0;
        if (shift == 63 && byte > 1)
            break; /* bits beyond 64 */
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            if (v > max)
                break;
            return v;
        }
    }
    r->err = true;
    return 0;
}

static void varint_enc(vc_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        vc_buf_append_u8(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    vc_buf_append_u8(b, (uint8_t)v);
}

static void hdr_enc_version(vc_buf *b, uint8_t type, uint8_t version)
{
    vc_buf_append_le16(b, ST_REC_MAGIC);
    vc_buf_append_u8(b, type);
    vc_buf_append_u8(b, version);
}

static void hdr_enc(vc_buf *b, uint8_t type)
{
    hdr_enc_version(b, type, REC_VERSION);
}

/* Starts a reader over a body of `type` whose version is 1..max; *version
 * gets it. false if the header is wrong. */
static bool hdr_dec_version(st_rd *r, const void *p, size_t n, uint8_t type, uint8_t max,
                            uint8_t *version)
{
    r->p = p;
    r->len = n;
    r->off = 0;
    r->err = false;
    uint16_t magic = st_rd_u16(r);
    uint8_t t = st_rd_u8(r);
    *version = st_rd_u8(r);
    return !r->err && magic == ST_REC_MAGIC && t == type && *version >= 1 && *version <= max;
}

/* Starts a reader over a body of `type`; false if the header is wrong. */
static bool hdr_dec(st_rd *r, const void *p, size_t n, uint8_t type)
{
    uint8_t v;
    return hdr_dec_version(r, p, n, type, REC_VERSION, &v);
}

/* The body was consumed exactly and without over-read. */
static int rd_done(const st_rd *r)
{
    return (!r->err && r->off == r->len) ? 0 : -EIO;
}

static bool name_ok(const uint8_t *p, size_t n)
{
    return p && memchr(p, 0, n) == NULL;
}

static void ts_enc(vc_buf *b, const struct timespec *t)
{
    vc_buf_append_le64(b, (uint64_t)(int64_t)t->tv_sec);
    vc_buf_append_le32(b, (uint32_t)t->tv_nsec);
}

static void ts_dec(st_rd *r, struct timespec *t)
{
    t->tv_sec = (time_t)(int64_t)st_rd_u64(r);
    uint32_t ns = st_rd_u32(r);
    if (ns >= 1000000000u)
        r->err = true;
    t->tv_nsec = (long)ns;
}

void st_rec_format_enc(vc_buf *b, const st_format_rec *r)
{
    hdr_enc(b, ST_REC_FORMAT);
    vc_buf_append_le32(b, r->version);
    vc_buf_append_le32(b, r->flags);
    vc_buf_append_u8(b, r->kdf.kind);
    vc_buf_append_u8(b, r->kdf.log2_n);
    vc_buf_append_le32(b, r->kdf.r);
    vc_buf_append_le32(b, r->kdf.p);
    vc_buf_append(b, r->kdf.salt, ST_SALT_LEN);
}

int st_rec_format_dec(const void *p, size_t n, st_format_rec *r)
{
    st_rd rd;
    memset(r, 0, sizeof(*r));
    if (!hdr_dec(&rd, p, n, ST_REC_FORMAT))
        return -EIO;
    r->version = st_rd_u32(&rd);
    if (!rd.err && (r->version < ST_FORMAT_VERSION_MIN || r->version > ST_FORMAT_VERSION))
        return -EPROTO;
    r->flags = st_rd_u32(&rd);
    r->kdf.kind = st_rd_u8(&rd);
    r->kdf.log2_n = st_rd_u8(&rd);
    r->kdf.r = st_rd_u32(&rd);
    r->kdf.p = st_rd_u32(&rd);
    const uint8_t *salt = st_rd_bytes(&rd, ST_SALT_LEN);
    if (salt)
        memcpy(r->kdf.salt, salt, ST_SALT_LEN);
    if (r->flags > 1u || r->kdf.kind > 2)
        return -EIO;
    return rd_done(&rd);
}

void st_rec_counter_enc(vc_buf *b, uint64_t v)
{
    hdr_enc(b, ST_REC_COUNTER);
    vc_buf_append_le64(b, v);
}

int st_rec_counter_dec(const void *p, size_t n, uint64_t *v)
{
    st_rd rd;
    if (!hdr_dec(&rd, p, n, ST_REC_COUNTER))
        return -EIO;
    *v = st_rd_u64(&rd);
    return rd_done(&rd);
}

void st_rec_config_enc(vc_buf *b, const st_config *c)
{
    vc_buf_append_le32(b, c->dim);
    vc_buf_append_u8(b, (uint8_t)c->metric);
    vc_buf_append_le32(b, c->m);
    vc_buf_append_le32(b, c->ef_construction);
    vc_buf_append_le32(b, c->ef_search);
    vc_buf_append_u8(b, c->ef_auto ? 1 : 0);
    uint64_t bits;
    memcpy(&bits, &c->target_recall, 8);
    vc_buf_append_le64(b, bits);
    vc_buf_append_u8(b, (uint8_t)c->quantization);
    vc_buf_append_le64(b, c->max_vectors);
    vc_buf_append_le64(b, c->max_bytes);
}

bool st_rec_config_dec(st_rd *rd, st_config *c)
{
    c->dim = st_rd_u32(rd);
    c->metric = (vf_metric)st_rd_u8(rd);
    c->m = st_rd_u32(rd);
    c->ef_construction = st_rd_u32(rd);
    c->ef_search = st_rd_u32(rd);
    uint8_t ea = st_rd_u8(rd);
    c->ef_auto = ea != 0;
    uint64_t bits = st_rd_u64(rd);
    memcpy(&c->target_recall, &bits, 8);
    c->quantization = (st_quant)st_rd_u8(rd);
    c->max_vectors = st_rd_u64(rd);
    c->max_bytes = st_rd_u64(rd);
    return !rd->err && ea <= 1;
}

void st_rec_coll_enc(vc_buf *b, const st_coll_rec *r)
{
    hdr_enc_version(b, ST_REC_COLL, COLL_VERSION);
    vc_buf_append_le32(b, r->coll_id);
    vc_buf_append_le64(b, r->uuid);
    st_rec_config_enc(b, &r->cfg);
    vc_buf_append_le32(b, r->mode);
    vc_buf_append_le32(b, r->uid);
    vc_buf_append_le32(b, r->gid);
    ts_enc(b, &r->atime);
    ts_enc(b, &r->mtime);
    ts_enc(b, &r->ctime);
    vc_buf_append_le64(b, r->count);
    vc_buf_append_le64(b, r->bytes);
    vc_buf_append_le64(b, r->next_seq);
    vc_buf_append_le32(b, r->next_id);
    vc_buf_append_le64(b, r->snap_gen);
    size_t nl = strlen(r->name);
    vc_buf_append_u8(b, (uint8_t)nl);
    vc_buf_append(b, r->name, nl);
    ts_enc(b, &r->cfg_mtime);
    vc_buf_append_le32(b, r->cfg.rerank);
}

int st_rec_coll_dec(const void *p, size_t n, st_coll_rec *r)
{
    st_rd rd;
    uint8_t version;
    memset(r, 0, sizeof(*r));
    if (!hdr_dec_version(&rd, p, n, ST_REC_COLL, COLL_VERSION, &version))
        return -EIO;
    r->coll_id = st_rd_u32(&rd);
    r->uuid = st_rd_u64(&rd);
    bool cfg_ok = st_rec_config_dec(&rd, &r->cfg);
    r->mode = st_rd_u32(&rd);
    r->uid = st_rd_u32(&rd);
    r->gid = st_rd_u32(&rd);
    ts_dec(&rd, &r->atime);
    ts_dec(&rd, &r->mtime);
    ts_dec(&rd, &r->ctime);
    r->count = st_rd_u64(&rd);
    r->bytes = st_rd_u64(&rd);
    r->next_seq = st_rd_u64(&rd);
    r->next_id = st_rd_u32(&rd);
    r->snap_gen = st_rd_u64(&rd);
    uint8_t nl = st_rd_u8(&rd);
    const uint8_t *name = st_rd_bytes(&rd, nl);
    if (rd.err || !cfg_ok || nl == 0 || nl > ST_COLL_NAME_MAX || !name_ok(name, nl))
        return -EIO;
    memcpy(r->name, name, nl);
    r->name[nl] = 0;
    if (version >= 2)
        ts_dec(&rd, &r->cfg_mtime);
    else
        r->cfg_mtime = r->mtime;
    r->cfg.rerank = version >= 3 ? st_rd_u32(&rd) : VF_RERANK_DEFAULT;
    if (rd.err || st_config_validate(&r->cfg) != 0)
        return -EIO;
    return rd_done(&rd);
}

/* VEC flags (version 2): fields left out because they are known. */
#define VEC_MTIME_IS_ATIME 0x1u
#define VEC_CTIME_IS_ATIME 0x2u
#define VEC_NAME_IN_KEY 0x4u
#define VEC_FLAGS_ALL 0x7u

static bool ts_equal(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

void st_rec_vec_enc(vc_buf *b, const st_vec_rec *r, bool name_in_key)
{
    uint8_t flags = (ts_equal(&r->mtime, &r->atime) ? VEC_MTIME_IS_ATIME : 0) |
                    (ts_equal(&r->ctime, &r->atime) ? VEC_CTIME_IS_ATIME : 0) |
                    (name_in_key ? VEC_NAME_IN_KEY : 0);
    hdr_enc_version(b, ST_REC_VEC, VEC_VERSION);
    varint_enc(b, r->id);
    varint_enc(b, r->seq);
    varint_enc(b, r->mode);
    varint_enc(b, r->uid);
    varint_enc(b, r->gid);
    vc_buf_append_u8(b, flags);
    ts_enc(b, &r->atime);
    if (!(flags & VEC_MTIME_IS_ATIME))
        ts_enc(b, &r->mtime);
    if (!(flags & VEC_CTIME_IS_ATIME))
        ts_enc(b, &r->ctime);
    varint_enc(b, r->size);
    if (!(flags & VEC_NAME_IN_KEY)) {
        vc_buf_append_le16(b, r->name_len);
        vc_buf_append(b, r->name, r->name_len);
    }
}

int st_rec_vec_dec(const void *p, size_t n, const void *key_name, size_t key_len, st_vec_rec *r)
{
    st_rd rd;
    uint8_t version;
    if (!hdr_dec_version(&rd, p, n, ST_REC_VEC, VEC_VERSION, &version))
        return -EIO;
    uint8_t flags = 0; /* version 1 wrote every field, at full width */
    if (version >= 2) {
        r->id = (uint32_t)rd_varint(&rd, UINT32_MAX);
        r->seq = rd_varint(&rd, UINT64_MAX);
        r->mode = (uint32_t)rd_varint(&rd, UINT32_MAX);
        r->uid = (uint32_t)rd_varint(&rd, UINT32_MAX);
        r->gid = (uint32_t)rd_varint(&rd, UINT32_MAX);
        flags = st_rd_u8(&rd);
    } else {
        r->id = st_rd_u32(&rd);
        r->seq = st_rd_u64(&rd);
        r->mode = st_rd_u32(&rd);
        r->uid = st_rd_u32(&rd);
        r->gid = st_rd_u32(&rd);
    }
    if (flags & ~VEC_FLAGS_ALL)
        return -EIO;
    ts_dec(&rd, &r->atime);
    if (flags & VEC_MTIME_IS_ATIME)
        r->mtime = r->atime;
    else
        ts_dec(&rd, &r->mtime);
    if (flags & VEC_CTIME_IS_ATIME)
        r->ctime = r->atime;
    else
        ts_dec(&rd, &r->ctime);
    r->size = version >= 2 ? rd_varint(&rd, UINT64_MAX) : st_rd_u64(&rd);
    const uint8_t *name;
    if (flags & VEC_NAME_IN_KEY) {
        name = key_name; /* NULL when the key is not the name: damage */
        r->name_len = (uint16_t)(key_len <= ST_NAME_MAX ? key_len : 0);
    } else {
        r->name_len = st_rd_u16(&rd);
        name = rd.err ? NULL : st_rd_bytes(&rd, r->name_len);
    }
    if (rd.err || r->name_len == 0 || r->name_len > ST_NAME_MAX)
        return -EIO;
    if (!name_ok(name, r->name_len) || r->id == UINT32_MAX)
        return -EIO;
    memcpy(r->name, name, r->name_len);
    r->name[r->name_len] = 0;
    return rd_done(&rd);
}

void st_rec_slot_enc(vc_buf *b, const char *name, size_t name_len, const float *vec, uint32_t dim)
{
    hdr_enc(b, ST_REC_SLOT);
    vc_buf_append_le32(b, dim);
    vc_buf_append_le16(b, (uint16_t)name_len);
    vc_buf_append(b, name, name_len);
    /* float32 LE: the hosts we build for are little-endian (asserted below). */
    vc_buf_append(b, vec, (size_t)dim * 4);
}

_Static_assert(sizeof(float) == 4, "float32");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "store/ writes floats in host order and assumes a little-endian host"
#endif

int st_rec_slot_dec(const void *p, size_t n, const char **name, size_t *name_len,
                    const uint8_t **vec, uint32_t *dim)
{
    st_rd rd;
    if (!hdr_dec(&rd, p, n, ST_REC_SLOT))
        return -EIO;
    *dim = st_rd_u32(&rd);
    uint16_t nl = st_rd_u16(&rd);
    if (rd.err || *dim == 0 || *dim > VF_MAX_DIM || nl == 0 || nl > ST_NAME_MAX)
        return -EIO;
    const uint8_t *nm = st_rd_bytes(&rd, nl);
    *vec = st_rd_bytes(&rd, (size_t)*dim * 4);
    if (!name_ok(nm, nl) || !*vec)
        return -EIO;
    *name = (const char *)nm;
    *name_len = nl;
    return rd_done(&rd);
}

void st_rec_blob_enc(vc_buf *b, uint8_t type, const void *p, size_t n)
{
    hdr_enc_version(b, type, BLOB_VERSION);
    vc_buf_append(b, p, n);
}

int st_rec_blob_dec(const void *p, size_t n, uint8_t type, const uint8_t **out, size_t *len)
{
    st_rd rd;
    uint8_t version;
    if (!hdr_dec_version(&rd, p, n, type, BLOB_VERSION, &version))
        return -EIO;
    uint64_t l = version >= 2 ? rd.len - rd.off : st_rd_u64(&rd);
    if (rd.err || l > rd.len - rd.off)
        return -EIO;
    *out = st_rd_bytes(&rd, (size_t)l);
    *len = (size_t)l;
    return rd_done(&rd);
}

void st_rec_content_vec_enc(vc_buf *b, const void *prefix, size_t prefix_len, uint32_t dim)
{
    hdr_enc(b, ST_REC_CONTENT_VEC);
    vc_buf_append_le32(b, dim);
    vc_buf_append_le16(b, (uint16_t)prefix_len);
    vc_buf_append(b, prefix, prefix_len);
}

int st_rec_content_vec_dec(const void *p, size_t n, const uint8_t **prefix, size_t *prefix_len,
                           uint32_t *dim)
{
    st_rd rd;
    if (!hdr_dec(&rd, p, n, ST_REC_CONTENT_VEC))
        return -EIO;
    *dim = st_rd_u32(&rd);
    uint16_t pl = st_rd_u16(&rd);
    if (rd.err || *dim == 0 || *dim > VF_MAX_DIM || pl > ST_CONTENT_PREFIX_MAX)
        return -EIO;
    *prefix = st_rd_bytes(&rd, pl);
    *prefix_len = pl;
    return rd_done(&rd);
}

void st_rec_xattr_enc(vc_buf *b, const char *xname, size_t xlen, const void *val, size_t vlen)
{
    hdr_enc(b, ST_REC_XATTR);
    vc_buf_append_le16(b, (uint16_t)xlen);
    vc_buf_append(b, xname, xlen);
    vc_buf_append_le32(b, (uint32_t)vlen);
    vc_buf_append(b, val, vlen);
}

int st_rec_xattr_dec(const void *p, size_t n, const char **xname, size_t *xlen, const uint8_t **val,
                     size_t *vlen)
{
    st_rd rd;
    if (!hdr_dec(&rd, p, n, ST_REC_XATTR))
        return -EIO;
    uint16_t xl = st_rd_u16(&rd);
    if (rd.err || xl == 0 || xl > ST_XATTR_NAME_MAX)
        return -EIO;
    const uint8_t *xn = st_rd_bytes(&rd, xl);
    uint32_t vl = st_rd_u32(&rd);
    if (rd.err || vl > ST_XATTR_VALUE_MAX || !name_ok(xn, xl))
        return -EIO;
    *val = st_rd_bytes(&rd, vl);
    if (rd.err)
        return -EIO;
    *xname = (const char *)xn;
    *xlen = xl;
    *vlen = vl;
    return rd_done(&rd);
}
