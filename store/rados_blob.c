/*
 * rados_blob.c — a log entry too large for an omap value, kept in blob
 * objects (docs/scale-out.md §2): `vecfs.blob.<32 hex digits>.<n>`, n = 0,
 * 1, ..., each ST_LOG_BLOB_PIECE bytes but the last. They are written
 * before the BLOB entry that names them (its id, the entry's length and
 * CRC-32C), read back by every node that applies that entry, and removed
 * once the log's trim has passed it (rados_ckpt_node.c).
 *
 * Invariants
 *   1. A blob's bytes never change once written: its id is 16 random
 *      bytes, and nothing rewrites an object of an id that an entry names.
 *   2. A read returns the entry's bytes only if their length and CRC-32C
 *      are the ones the BLOB entry carries (-EBADMSG otherwise). In a
 *      sealed log (rados_seal.c) the objects hold the sealed entry: the
 *      length is the sealed one, the CRC-32C the entry's once opened.
 *   3. At most BLOB_INFLIGHT pieces are in flight at once (each holds a
 *      piece of the payload in the messenger).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "crc32c.h"
#include "internal.h"

#define BLOB_INFLIGHT 8u

static void piece_oid(const uint8_t id[ST_LOG_BLOB_ID], uint64_t n, char *out, size_t cap)
{
    char hex[2 * ST_LOG_BLOB_ID + 1];
    for (unsigned i = 0; i < ST_LOG_BLOB_ID; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    snprintf(out, cap, ST_BLOB_PREFIX "%s.%" PRIu64, hex, n);
}

int st_blob_oid_parse(const char *oid, uint8_t id[ST_LOG_BLOB_ID])
{
    const char *p = oid + strlen(ST_BLOB_PREFIX);
    if (strncmp(oid, ST_BLOB_PREFIX, strlen(ST_BLOB_PREFIX)) != 0)
        return -EINVAL;
    for (unsigned i = 0; i < 2 * ST_LOG_BLOB_ID; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -EINVAL;
        if (i % 2 == 0)
            id[i / 2] = (uint8_t)(d << 4);
        else
            id[i / 2] |= (uint8_t)d;
    }
    p += 2 * ST_LOG_BLOB_ID;
    if (*p++ != '.' || *p == '\0')
        return -EINVAL;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return -EINVAL;
    return 0;
}

static uint64_t pieces_of(uint64_t len)
{
    return (len + ST_LOG_BLOB_PIECE - 1) / ST_LOG_BLOB_PIECE;
}

/* Runs piece i's write (buf given) or read (into buf) of every piece of
 * a len-byte blob, BLOB_INFLIGHT at a time. */
static int pieces_io(st_rados *r, const uint8_t id[ST_LOG_BLOB_ID], uint8_t *buf, uint64_t len,
                     bool write)
{
    uint64_t n = pieces_of(len);
    int rc = 0;
    for (uint64_t first = 0; first < n && rc == 0; first += BLOB_INFLIGHT) {
        rados_completion_t c[BLOB_INFLIGHT];
        size_t want[BLOB_INFLIGHT];
        unsigned started = 0;
        for (uint64_t i = first; i < n && started < BLOB_INFLIGHT; i++) {
            char oid[96];
            piece_oid(id, i, oid, sizeof(oid));
            uint64_t off = i * ST_LOG_BLOB_PIECE;
            size_t sz = (size_t)(len - off < ST_LOG_BLOB_PIECE ? len - off : ST_LOG_BLOB_PIECE);
            rados_completion_t *ci = &c[started];
            rc = rados_aio_create_completion2(NULL, NULL, ci);
            if (rc)
                break;
            rc = write ? rados_aio_write_full(r->io, oid, *ci, (char *)buf + off, sz)
                       : rados_aio_read(r->io, oid, *ci, (char *)buf + off, sz, 0);
            if (rc) {
                rados_aio_release(*ci);
                break;
            }
            want[started++] = sz;
        }
        for (unsigned k = 0; k < started; k++) {
            rados_aio_wait_for_complete(c[k]);
            int got = rados_aio_get_return_value(c[k]);
            rados_aio_release(c[k]);
            if (rc == 0 && got < 0)
                rc = got;
            else if (rc == 0 && !write && (size_t)got != want[k])
                rc = -EBADMSG; /* a piece shorter than the entry says */
        }
    }
    return rc;
}

int st_blob_put(st_rados *r, const uint8_t id[ST_LOG_BLOB_ID], const void *p, size_t len)
{
    return pieces_io(r, id, (uint8_t *)p, len, true);
}

int st_blob_get(st_rados *r, const st_log_op *ref, vc_buf *out)
{
    vc_buf_reset(out);
    if (ref->blob_len > SIZE_MAX)
        return -EFBIG;
    int rc = vc_buf_grow(out, (size_t)ref->blob_len);
    if (rc)
        return rc;
    rc = pieces_io(r, ref->blob_id, (uint8_t *)out->p, ref->blob_len, false);
    size_t len = (size_t)ref->blob_len;
    if (rc == 0)
        rc = st_seal_blob_open(r, ref->blob_id, out->p, &len);
    if (rc == 0 && vc_crc32c(0, out->p, len) != ref->blob_crc)
        rc = -EBADMSG;
    if (rc == 0)
        vc_buf_setlen(out, len);
    return rc;
}

int st_blob_remove(st_rados *r, const uint8_t id[ST_LOG_BLOB_ID], uint64_t len)
{
    int rc = 0;
    for (uint64_t i = 0; i < pieces_of(len); i++) {
        char oid[96];
        piece_oid(id, i, oid, sizeof(oid));
        int one = rados_remove(r->io, oid);
        if (one && one != -ENOENT && rc == 0)
            rc = one;
    }
    return rc;
}

int st_blob_entry(st_rados *r, st_log_entry *e, vc_buf *scratch)
{
    if (e->ops[0].kind != ST_LOG_BLOB)
        return 0;
    st_log_op ref = e->ops[0];
    st_log_entry_free(e);
    int rc = st_blob_get(r, &ref, scratch);
    if (rc == 0)
        rc = st_log_entry_decode(scratch->p, scratch->len, e);
    if (rc == 0 && e->ops[0].kind == ST_LOG_BLOB) {
        st_log_entry_free(e);
        rc = -EPROTO; /* a reference to a reference */
    }
    vc_buf_release(scratch); /* as large as the entry: not kept */
    return rc;
}
