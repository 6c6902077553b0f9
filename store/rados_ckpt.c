/*
 * rados_ckpt.c — checkpoints as RADOS objects (docs/scale-out.md §6, §7):
 * the files of a local checkpoint directory (the compacted LMDB copy and
 * the collections' snapshots) cut into pieces `vecfs.ckpt.<seq>.<n>` of at
 * most ST_CKPT_PIECE bytes, and the manifest `vecfs.ckpt.<seq>` written
 * last, which names every file, its size and its pieces' lengths and
 * CRC-32C. Uploading, downloading (every CRC checked), verifying and
 * removing; publishing is rados_client.c's (it is a field of vecfs.head).
 *
 * Manifest (text, one item per line):
 *     vecfs-ckpt 1 <seq>
 *     f <name> <size>            a file; its pieces follow
 *     p <len> <crc32c hex>       the next piece (numbered 0, 1, ... over
 *                                the whole checkpoint)
 *
 * Invariants
 *   1. A manifest exists only once all its pieces were written: a reader
 *      that finds the manifest finds the pieces (unless damaged, which the
 *      CRCs catch).
 *   2. Names in a manifest are plain file names ([A-Za-z0-9._-], no
 *      leading dot): a manifest cannot make a reader write outside its
 *      directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "crc32c.h"
#include "internal.h"

#define CKPT_MAGIC "vecfs-ckpt 1"

static void manifest_oid(uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "vecfs.ckpt.%020" PRIu64, seq);
}

static void piece_oid(uint64_t seq, uint32_t n, char *out, size_t cap)
{
    snprintf(out, cap, "vecfs.ckpt.%020" PRIu64 ".%" PRIu32, seq, n);
}

static bool name_ok(const char *s)
{
    if (!*s || *s == '.' || strlen(s) > ST_CKPT_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

/* Writes one piece object (replacing any leftover of a dead writer). */
static int piece_put(st_rados *r, uint64_t seq, uint32_t n, const void *p, size_t len)
{
    char oid[64];
    piece_oid(seq, n, oid, sizeof(oid));
    return rados_write_full(r->io, oid, p, len);
}

/* Uploads one file's pieces, appending its lines to the manifest. */
static int file_put(st_rados *r, uint64_t seq, const char *dir, const char *name, uint32_t *piece,
                    char *buf, vc_buf *man, uint64_t *bytes)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat sb;
    int rc = fstat(fd, &sb) ? -errno : 0;
    char line[128];
    int ll = snprintf(line, sizeof(line), "f %s %lld\n", name, (long long)sb.st_size);
    if (rc == 0)
        rc = vc_buf_append(man, line, (size_t)ll);
    for (off_t done = 0; rc == 0 && done < sb.st_size;) {
        size_t want = (size_t)(sb.st_size - done) < ST_CKPT_PIECE ? (size_t)(sb.st_size - done)
                                                                  : ST_CKPT_PIECE;
        ssize_t got = pread(fd, buf, want, done);
        if (got <= 0) {
            rc = got < 0 ? -errno : -EIO;
            break;
        }
        rc = piece_put(r, seq, *piece, buf, (size_t)got);
        ll = snprintf(line, sizeof(line), "p %zd %08" PRIx32 "\n", got,
                      vc_crc32c(0, buf, (size_t)got));
        if (rc == 0)
            rc = vc_buf_append(man, line, (size_t)ll);
        (*piece)++;
        done += got;
        *bytes += (uint64_t)got;
    }
    close(fd);
    return rc;
}

int st_ckpt_upload(st_rados *r, uint64_t seq, const char *dir, uint64_t *bytes)
{
    *bytes = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char *buf = vc_malloc(ST_CKPT_PIECE);
    vc_buf man = {0};
    char head[64];
    int hl = snprintf(head, sizeof(head), CKPT_MAGIC " %" PRIu64 "\n", seq);
    int rc = buf ? vc_buf_append(&man, head, (size_t)hl) : -ENOMEM;
    uint32_t piece = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL)
        if (name_ok(de->d_name))
            rc = file_put(r, seq, dir, de->d_name, &piece, buf, &man, bytes);
    closedir(d);
    free(buf);
    char oid[64];
    manifest_oid(seq, oid, sizeof(oid));
    if (rc == 0) /* last (invariant 1) */
        rc = rados_write_full(r->io, oid, man.p, man.len);
    vc_buf_release(&man);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Reading a manifest                                                   */
/* ------------------------------------------------------------------ */

/* What to do with each piece of a checkpoint as it is read: a file opens
 * (fn with p NULL, len = its size), then its pieces, in order. */
typedef int (*piece_fn)(void *ctx, const char *name, const void *p, size_t len);

static int manifest_get(st_rados *r, uint64_t seq, vc_buf *out)
{
    char oid[64];
    manifest_oid(seq, oid, sizeof(oid));
    uint64_t size;
    time_t mtime;
    int rc = rados_stat(r->io, oid, &size, &mtime);
    if (rc)
        return rc;
    if (size > ST_CKPT_PIECE)
        return -EBADMSG;
    out->len = 0;
    rc = vc_buf_grow(out, (size_t)size);
    int got = rc ? rc : rados_read(r->io, oid, out->p, (size_t)size, 0);
    if (got < 0)
        return got;
    vc_buf_setlen(out, (size_t)got); /* NUL-terminated for the walk */
    return 0;
}

int st_ckpt_manifest_walk(const char *text, uint64_t seq, st_ckpt_item_fn fn, void *ctx)
{
    char name[ST_CKPT_NAME_MAX + 1] = "";
    uint64_t mseq, left = 0;
    int n = 0;
    if (sscanf(text, CKPT_MAGIC " %" SCNu64 "%n", &mseq, &n) != 1 || mseq != seq || text[n] != '\n')
        return -EBADMSG;
    uint32_t piece = 0;
    for (const char *l = text + n + 1; *l; l = strchr(l, '\n') + 1) {
        /* Each item is one whole line (sscanf's blanks would skip line
         * ends): it must end exactly at its '\n'. */
        const char *end = strchr(l, '\n');
        if (!end)
            return -EBADMSG;
        long long size;
        size_t len;
        uint32_t crc;
        int rc;
        n = -1;
        if (l[0] == 'f' && left == 0 && sscanf(l, "f %64s %lld%n", name, &size, &n) == 2 &&
            l + n == end && size >= 0 && name_ok(name)) {
            left = (uint64_t)size;
            rc = fn(ctx, name, UINT32_MAX, left, 0);
        } else if (l[0] == 'p' && name[0] &&
                   sscanf(l, "p %zu %" SCNx32 "%n", &len, &crc, &n) == 2 && l + n == end &&
                   len > 0 && len <= ST_CKPT_PIECE && len <= left) {
            left -= len;
            rc = fn(ctx, name, piece++, len, crc);
        } else {
            return -EBADMSG;
        }
        if (rc)
            return rc;
    }
    return left ? -EBADMSG : 0;
}

/* ------------------------------------------------------------------ */
/* Downloading, verifying, removing                                     */
/* ------------------------------------------------------------------ */

typedef struct walk_state {
    st_rados *r;
    uint64_t seq;
    const char *dir; /* download: where the files go; NULL to verify only */
    int fd;
    char *buf;
    uint64_t bytes;
    FILE *report; /* verify: where each problem is told */
    uint64_t bad;
} walk_state;

static int piece_read(walk_state *w, uint32_t piece, size_t len, uint32_t crc)
{
    char oid[64];
    piece_oid(w->seq, piece, oid, sizeof(oid));
    int got = rados_read(w->r->io, oid, w->buf, len + 1, 0);
    if (got < 0 && got != -ENOENT)
        return got;
    if (got == (int)len && vc_crc32c(0, w->buf, len) == crc)
        return 0;
    if (w->report)
        fprintf(w->report, "checkpoint %" PRIu64 ": piece %s is %s\n", w->seq, oid,
                got < 0 ? "missing" : "damaged (length or CRC-32C)");
    w->bad++;
    return w->report ? 0 : -EBADMSG;
}

static int download_item(void *ctx, const char *name, uint32_t piece, uint64_t len, uint32_t crc)
{
    walk_state *w = ctx;
    if (piece == UINT32_MAX) { /* a new file */
        if (!w->dir)
            return 0;
        if (w->fd >= 0)
            close(w->fd);
        char path[4096];
        if (snprintf(path, sizeof(path), "%s/%s", w->dir, name) >= (int)sizeof(path))
            return -ENAMETOOLONG;
        w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        return w->fd < 0 ? -errno : 0;
    }
    int rc = piece_read(w, piece, (size_t)len, crc);
    if (rc == 0 && w->dir)
        rc = st_io_write(w->fd, w->buf, (size_t)len);
    w->bytes += len;
    return rc;
}

/* Walks checkpoint seq with download_item (dir or report set in w). */
static int walk(st_rados *r, uint64_t seq, walk_state *w)
{
    vc_buf man = {0};
    w->r = r;
    w->seq = seq;
    w->fd = -1;
    w->buf = vc_malloc(ST_CKPT_PIECE + 1);
    int rc = w->buf ? manifest_get(r, seq, &man) : -ENOMEM;
    if (rc == 0)
        rc = st_ckpt_manifest_walk((const char *)man.p, seq, download_item, w);
    if (w->fd >= 0 && close(w->fd) && rc == 0)
        rc = -errno;
    free(w->buf);
    vc_buf_release(&man);
    return rc;
}

int st_ckpt_download(st_rados *r, uint64_t seq, const char *dir, uint64_t *bytes)
{
    walk_state w = {.dir = dir};
    int rc = walk(r, seq, &w);
    *bytes = w.bytes;
    return rc;
}

int st_ckpt_verify(st_rados *r, uint64_t seq, FILE *report, uint64_t *bad)
{
    walk_state w = {.report = report};
    int rc = walk(r, seq, &w);
    if (rc == -EBADMSG || rc == -ENOENT) {
        fprintf(report, "checkpoint %" PRIu64 ": manifest is %s\n", seq,
                rc == -ENOENT ? "missing" : "damaged");
        w.bad++;
        rc = 0;
    } else if (rc == 0) {
        fprintf(report, "checkpoint %" PRIu64 ": %" PRIu64 " bytes, %" PRIu64 " damaged pieces\n",
                seq, w.bytes, w.bad);
    }
    *bad = w.bad;
    return rc;
}

static int remove_item(void *ctx, const char *name, uint32_t piece, uint64_t len, uint32_t crc)
{
    (void)name;
    (void)len;
    (void)crc;
    walk_state *w = ctx;
    char oid[64];
    piece_oid(w->seq, piece, oid, sizeof(oid));
    int rc = piece == UINT32_MAX ? 0 : rados_remove(w->r->io, oid);
    return rc == -ENOENT ? 0 : rc;
}

int st_ckpt_remove(st_rados *r, uint64_t seq)
{
    vc_buf man = {0};
    walk_state w = {.r = r, .seq = seq};
    int rc = manifest_get(r, seq, &man);
    if (rc == 0)
        rc = st_ckpt_manifest_walk((const char *)man.p, seq, remove_item, &w);
    vc_buf_release(&man);
    char oid[64];
    manifest_oid(seq, oid, sizeof(oid));
    /* A damaged manifest's pieces stay behind; the manifest goes anyway
     * so that the checkpoint is not listed as usable. */
    int mrc = rados_remove(r->io, oid);
    return rc && rc != -ENOENT ? rc : (mrc == -ENOENT ? 0 : mrc);
}
