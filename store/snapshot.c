/*
 * snapshot.c — HNSW snapshots of a collection in DATADIR, and loading an
 * index at open (snapshot + op-log replay, or a rebuild from the records).
 *
 * File DATADIR/snap-<collection id>.vfs, all integers little-endian:
 *   0   magic "VECFSSN1"
 *   8   u32 version (1)
 *   12  u32 flags (bit 0: payload sealed)
 *   16  u32 collection id
 *   20  u32 reserved (0)
 *   24  u64 collection uuid
 *   32  u64 generation g: covers every change whose DIRTY entry has gen <= g
 *   40  u64 LMDB txn id the snapshot was taken at
 *   48  u64 payload length P (bytes of the engine's vf_hnsw_serialize stream)
 *   56  u32 reserved (0)
 *   60  u32 CRC-32C of bytes 0..59
 *   64  plain:  P bytes of engine stream (which ends in its own CRC-32C)
 *       sealed: nonce[12] | AES-256-GCM(P bytes) | tag[16], AAD = bytes 0..47
 *   The file is exactly 64 + P (+ 28 sealed) bytes.
 *
 * The op log is the DIRTY database: (collection, id) -> gen of the last
 * change. Replay re-applies the current record of every dirty id (insert
 * its SLOT vector, or remove it when it has no SLOT), so it is idempotent
 * and correct however many times it runs.
 *
 * Invariants
 *   1. A snapshot file is only ever replaced by rename of a complete,
 *      fsynced temp file, after mdb_env_sync made every LMDB change it
 *      covers durable; so a snapshot on disk never covers a change that a
 *      power loss can take out of LMDB.
 *   2. DIRTY entries with gen <= g are deleted only after the snapshot of
 *      generation g is durably in place, in the txn that sets the COLL
 *      record's snap_gen = g.
 *   3. A snapshot is used at open only if its header CRC, engine CRC (or GCM
 *      tag) and lengths check, its collection id and uuid match, gen >=
 *      snap_gen, its txn id <= LMDB's, its parameters (dim, metric, m,
 *      ef_construction) match the config, and after replay its count
 *      equals the COLL record's. Otherwise the index is rebuilt from the
 *      SLOT records ("never trusted"). Parameters differ by design after
 *      a config change that the next snapshot has not caught up with yet
 *      (st_coll_config_set on an emptied collection, or one that rebuilt
 *      the index): such a snapshot is stale, not damaged.
 *   4. Before serializing, vf_hnsw_reconnect relinks any vector that no
 *      graph walk reaches, so a snapshot never stores stranded vectors.
 *   5. Serialization holds c->wlock (writers of that collection wait);
 *      searches go on. File sync, rename and the trim run without it,
 *      except the trim txn which retakes it briefly.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "internal.h"
#include "le.h"

#define SNAP_MAGIC "VECFSSN1"
#define SNAP_VERSION 1u
#define SNAP_HDR 64u
#define SNAP_AAD 48u
#define WBUF (1u << 20)

void st_snap_path(const st_store *st, uint32_t coll_id, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/snap-%" PRIu32 ".vfs", st->dir, coll_id);
}

void st_snap_remove(st_store *st, uint32_t coll_id)
{
    char path[4096];
    st_snap_path(st, coll_id, path, sizeof(path));
    unlink(path);
}

/* ------------------------------------------------------------------ */
/* Writing                                                              */
/* ------------------------------------------------------------------ */

typedef struct snap_writer {
    int fd;
    uint8_t *buf;
    size_t used;
    st_stream *stream;
    uint64_t total;
} snap_writer;

/* Seals (if sealed) and writes the buffered bytes. */
static int writer_flush(snap_writer *w)
{
    if (w->used == 0)
        return 0;
    int rc = 0;
    if (w->stream)
        rc = st_stream_update(w->stream, w->buf, w->buf, w->used);
    if (rc == 0)
        rc = st_io_write(w->fd, w->buf, w->used);
    w->used = 0;
    return rc;
}

/* vf_hnsw_serialize sink: buffers bytes, flushing every WBUF. */
static int writer_cb(void *ctx, const void *bytes, size_t len)
{
    snap_writer *w = ctx;
    const uint8_t *b = bytes;
    w->total += len;
    while (len > 0) {
        size_t room = WBUF - w->used, c = len < room ? len : room;
        memcpy(w->buf + w->used, b, c);
        w->used += c;
        b += c;
        len -= c;
        if (w->used == WBUF) {
            int rc = writer_flush(w);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Fills the 64-byte file header (layout at the top). */
static void header_fill(uint8_t *h, bool sealed, uint32_t coll_id, uint64_t uuid, uint64_t gen,
                        uint64_t txnid, uint64_t payload)
{
    memset(h, 0, SNAP_HDR);
    memcpy(h, SNAP_MAGIC, 8);
    vc_le_put32(h + 8, SNAP_VERSION);
    vc_le_put32(h + 12, sealed ? 1u : 0u);
    vc_le_put32(h + 16, coll_id);
    vc_le_put64(h + 24, uuid);
    vc_le_put64(h + 32, gen);
    vc_le_put64(h + 40, txnid);
    vc_le_put64(h + 48, payload);
    vc_le_put32(h + 60, vc_crc32c(0, h, 60));
}

void st_snap_write_background(st_store *st, st_coll *c)
{
    pthread_mutex_lock(&st->snap_mu);
    int rc = st_snap_write(st, c, false);
    pthread_mutex_unlock(&st->snap_mu);
    if (rc) {
        atomic_fetch_add(&st->errors, 1);
        st_log(st, ST_LOG_ERROR, "snapshot of collection %" PRIu32 " failed: %s", c->id,
               strerror(-rc));
    }
}

int st_snap_write(st_store *st, st_coll *c, bool force)
{
    assert(st && c);
    if (st->opt.read_only)
        return -EROFS;
    char path[4096], tmp[4200];
    st_snap_path(st, c->id, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snap_writer w = {.fd = -1};
    uint8_t hdr[SNAP_HDR];
    uint64_t g = 0, txnid = 0, changes_at = 0;
    bool sealed = st->crypto.on;
    int rc = 0;

    st_coll_lock_settled(c);
    pthread_mutex_lock(&c->mu);
    vf_hnsw *h = c->index;
    /* A rebuilding index is incomplete (rebuild.c, invariant 2). */
    bool skip = c->dropped || !h || atomic_load(&c->rebuilding) || (c->changes == 0 && !force);
    changes_at = c->changes;
    pthread_mutex_unlock(&c->mu);
    if (skip) {
        pthread_mutex_unlock(&c->wlock);
        return 0;
    }
    MDB_txn *rtxn;
    rc = st_txn_read(st, &rtxn);
    if (rc == 0) {
        txnid = (uint64_t)mdb_txn_id(rtxn);
        mdb_txn_abort(rtxn);
    }
    g = c->cur_gen++;
    /* Writers are quiesced: relink vectors that churn left unreachable,
     * so the snapshot (and the live index) has none. */
    size_t fixed = 0;
    if (rc == 0 && vf_hnsw_reconnect(h, &fixed) == 0 && fixed)
        st_log(st, ST_LOG_INFO, "collection %" PRIu32 ": relinked %zu unreachable vectors", c->id,
               fixed);
    w.buf = vc_malloc(WBUF);
    if (rc == 0 && !w.buf)
        rc = -ENOMEM;
    if (rc == 0) {
        w.fd = st_io_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (w.fd < 0)
            rc = w.fd;
    }
    header_fill(hdr, sealed, c->id, c->uuid, g, txnid, 0);
    if (rc == 0)
        rc = st_io_write(w.fd, hdr, SNAP_HDR);
    uint8_t nonce[ST_NONCE_LEN];
    if (rc == 0 && sealed) {
        rc = st_stream_seal_begin(&st->crypto, hdr, SNAP_AAD, nonce, &w.stream);
        if (rc == 0)
            rc = st_io_write(w.fd, nonce, ST_NONCE_LEN);
    }
    if (rc == 0)
        rc = vf_hnsw_serialize(h, writer_cb, &w);
    pthread_mutex_unlock(&c->wlock);

    if (rc == 0)
        rc = writer_flush(&w);
    if (rc == 0 && sealed) {
        uint8_t tag[ST_TAG_LEN];
        rc = st_stream_final(w.stream, tag);
        w.stream = NULL;
        if (rc == 0)
            rc = st_io_write(w.fd, tag, ST_TAG_LEN);
    }
    if (rc == 0) {
        header_fill(hdr, sealed, c->id, c->uuid, g, txnid, w.total);
        if (pwrite(w.fd, hdr, SNAP_HDR, 0) != SNAP_HDR)
            rc = -EIO;
    }
    if (rc == 0)
        rc = st_io_fsync(w.fd);
    if (w.fd >= 0)
        close(w.fd);
    /* Invariant 1: LMDB durable up to the snapshot before it replaces the old one. */
    if (rc == 0)
        rc = st_mdb_err(mdb_env_sync(st->env, 1));
    if (rc == 0)
        rc = st_io_rename_durable(tmp, path, st->dir);
    if (rc) {
        unlink(tmp);
        st_stream_free(w.stream);
        free(w.buf);
        st_health_set(st, "snapshot of collection %" PRIu32 " failed: %s", c->id, strerror(-rc));
        return rc;
    }
    st_stream_free(w.stream);
    free(w.buf);
    rc = st_oplog_trim(st, c, g);
    if (rc && rc != -ENOENT) {
        st_health_set(st, "snapshot of collection %" PRIu32 " failed: %s", c->id, strerror(-rc));
        return rc;
    }
    pthread_mutex_lock(&c->mu);
    c->changes = c->changes > changes_at ? c->changes - changes_at : 0;
    if (c->changes)
        clock_gettime(CLOCK_MONOTONIC, &c->first_change);
    st_now(&c->snap_time);
    pthread_mutex_unlock(&c->mu);
    atomic_fetch_add(&st->snapshots, 1);
    st_log(st, ST_LOG_DEBUG,
           "snapshot of collection %" PRIu32 " (gen %" PRIu64 ", %" PRIu64 " bytes)", c->id, g,
           w.total);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reading, replay, rebuild                                             */
/* ------------------------------------------------------------------ */

int st_snap_read(const st_store *st, const st_coll_rec *rec, st_slot_source *slots, vf_hnsw **out,
                 uint64_t *gen, uint64_t *txnid)
{
    *out = NULL;
    char path[4096];
    st_snap_path(st, rec->coll_id, path, sizeof(path));
    int fd = st_io_open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    struct stat sb;
    int rc = 0;
    uint8_t *map = MAP_FAILED;
    uint8_t *plain = NULL;
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        goto out;
    }
    size_t size = (size_t)sb.st_size;
    if (sb.st_size < (off_t)SNAP_HDR) {
        rc = -EILSEQ;
        goto out;
    }
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    const uint8_t *h = map;
    if (memcmp(h, SNAP_MAGIC, 8) != 0 || vc_le_get32(h + 60) != vc_crc32c(0, h, 60) ||
        vc_le_get32(h + 8) != SNAP_VERSION || vc_le_get32(h + 12) > 1) {
        rc = -EILSEQ;
        goto out;
    }
    bool sealed = vc_le_get32(h + 12) & 1u;
    if (sealed != st->crypto.on) {
        rc = -EILSEQ;
        goto out;
    }
    if (vc_le_get32(h + 16) != rec->coll_id || vc_le_get64(h + 24) != rec->uuid) {
        rc = -ESTALE;
        goto out;
    }
    uint64_t payload = vc_le_get64(h + 48);
    uint64_t extra = sealed ? ST_NONCE_LEN + ST_TAG_LEN : 0;
    if (payload > (uint64_t)size || (uint64_t)size != SNAP_HDR + extra + payload) {
        rc = -EILSEQ;
        goto out;
    }
    *gen = vc_le_get64(h + 32);
    *txnid = vc_le_get64(h + 40);
    const uint8_t *bytes = h + SNAP_HDR;
    if (sealed) {
        plain = vc_malloc((size_t)payload);
        if (!plain) {
            rc = -ENOMEM;
            goto out;
        }
        st_stream *s;
        uint8_t tag[ST_TAG_LEN];
        memcpy(tag, h + SNAP_HDR + ST_NONCE_LEN + payload, ST_TAG_LEN);
        rc = st_stream_open_begin(&st->crypto, h, SNAP_AAD, h + SNAP_HDR, &s);
        if (rc == 0) {
            rc = st_stream_update(s, h + SNAP_HDR + ST_NONCE_LEN, plain, (size_t)payload);
            int frc = st_stream_final(s, tag);
            if (rc == 0)
                rc = frc;
        }
        if (rc) {
            /* A tag that fails is damage; memory for the cipher is not. */
            if (rc != -ENOMEM)
                rc = -EILSEQ;
            goto out;
        }
        bytes = plain;
    }
    /* The slots serve vectors of the snapshot's dim (the config's may have
     * changed since: that snapshot is then stale, but must load safely). */
    vf_vec_source src = {0};
    if (slots && vf_hnsw_snapshot_dim(bytes, (size_t)payload, &slots->dim) == 0)
        src = st_slot_source_vec(slots);
    rc = vf_hnsw_deserialize(bytes, (size_t)payload, src.get ? &src : NULL, out);
out:
    if (plain) {
        free(plain);
    }
    if (map != MAP_FAILED)
        munmap(map, (size_t)sb.st_size);
    close(fd);
    return rc;
}

int st_store_snapshot(st_store *st, const char *coll)
{
    if (!st)
        return -EINVAL;
    if (st->opt.read_only)
        return -EROFS;
    int rc = 0;
    if (coll) {
        st_coll *c = st_coll_find(st, coll);
        if (!c)
            return -ENOENT;
        pthread_mutex_lock(&st->snap_mu);
        rc = st_snap_write(st, c, true);
        pthread_mutex_unlock(&st->snap_mu);
        return rc;
    }
    pthread_mutex_lock(&st->snap_mu);
    size_t n;
    st_coll **list = st_colls_copy(st, &n);
    if (!list)
        rc = -ENOMEM;
    for (size_t i = 0; list && i < n; i++) {
        int r = st_snap_write(st, list[i], false);
        if (r && !rc)
            rc = r;
    }
    free(list);
    pthread_mutex_unlock(&st->snap_mu);
    return rc;
}
