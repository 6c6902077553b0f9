/*
 * rados_cache_id.c — whose cache a CACHEDIR is (docs/scale-out.md §7).
 * The file CACHEDIR/rados.id names the log the local store was fed from
 * (the cluster's fsid, the pool's id and name, the namespace, the log's
 * `format`) and the boot under which the store was last opened, with a
 * flag set only after a clean close synced it. The local LMDB commits
 * with MDB_NOSYNC, so a cache opened under one boot and not closed
 * cleanly may be torn once the machine restarted.
 *
 * Layout (text, one field a line, CRC-32C of every byte before the crc
 * line):
 *     vecfs-cache 1
 *     fsid <cluster fsid>
 *     pool <pool id> <pool name>
 *     namespace <namespace>
 *     format <vecfs.head's format>
 *     boot <kernel boot id>
 *     closed <0|1>
 *     crc <8 hex digits>
 * The lines from fsid to format are the identity, compared byte for byte.
 *
 * Invariants
 *   1. The file says closed 0 on disk before the store is opened for
 *      writing, and closed 1 only after the store's last sync (open.c's
 *      close): a cache with closed 1, or opened under this boot, holds
 *      every commit it made.
 *   2. The file is replaced whole (a temporary file, fsync, rename, fsync
 *      of the directory): it is never half written.
 *   3. A cache whose file is missing, does not parse or names another log
 *      is never used: its store files are removed and it joins as empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "internal.h"

#define ID_MAGIC "vecfs-cache 1\n"
#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

/* The next line of text[*at..len) (without its newline) that starts with
 * key: its value and length; -EBADMSG when the line is not that. */
static int line_take(const char *text, size_t len, size_t *at, const char *key, const char **val,
                     size_t *vlen)
{
    size_t kl = strlen(key);
    const char *p = text + *at;
    size_t left = len - *at;
    const char *nl = memchr(p, '\n', left);
    if (!nl || (size_t)(nl - p) < kl || memcmp(p, key, kl) != 0)
        return -EBADMSG;
    *val = p + kl;
    *vlen = (size_t)(nl - p) - kl;
    *at += (size_t)(nl - p) + 1;
    return 0;
}

int st_cache_id_parse(const char *text, size_t len, st_cache_id *out)
{
    memset(out, 0, sizeof(*out));
    size_t ml = strlen(ID_MAGIC);
    if (len < ml || memcmp(text, ID_MAGIC, ml) != 0)
        return -EBADMSG;
    /* The crc line ends the text: 4 + 8 + 1 bytes. */
    if (len < ml + 13)
        return -EBADMSG;
    size_t body = len - 13;
    const char *c = text + body;
    if (memcmp(c, "crc ", 4) != 0 || c[12] != '\n')
        return -EBADMSG;
    uint32_t want = 0;
    for (int i = 4; i < 12; i++) {
        int d = c[i] >= '0' && c[i] <= '9'   ? c[i] - '0'
                : c[i] >= 'a' && c[i] <= 'f' ? c[i] - 'a' + 10
                                             : -1;
        if (d < 0)
            return -EBADMSG;
        want = want << 4 | (uint32_t)d;
    }
    if (vc_crc32c(0, text, body) != want)
        return -EBADMSG;
    /* The identity: every line up to the boot line. */
    size_t at = ml, id_start = ml;
    while (at < body && !(body - at >= 5 && memcmp(text + at, "boot ", 5) == 0)) {
        const char *nl = memchr(text + at, '\n', body - at);
        if (!nl)
            return -EBADMSG;
        at = (size_t)(nl - text) + 1;
    }
    if (at - id_start >= sizeof(out->ident))
        return -EBADMSG;
    memcpy(out->ident, text + id_start, at - id_start);
    out->ident_len = at - id_start;
    const char *v;
    size_t vl;
    int rc = line_take(text, body, &at, "boot ", &v, &vl);
    if (rc == 0 && (vl == 0 || vl >= sizeof(out->boot) || memchr(v, '\0', vl)))
        rc = -EBADMSG;
    if (rc)
        return rc;
    memcpy(out->boot, v, vl);
    rc = line_take(text, body, &at, "closed ", &v, &vl);
    if (rc == 0 && (vl != 1 || (v[0] != '0' && v[0] != '1')))
        rc = -EBADMSG;
    if (rc == 0 && at != body)
        rc = -EBADMSG; /* something between closed and crc */
    if (rc == 0)
        out->closed = v[0] == '1';
    return rc;
}

int st_cache_id_format(const st_cache_id *id, char *buf, size_t cap, size_t *len)
{
    int n = snprintf(buf, cap, ID_MAGIC "%.*sboot %s\nclosed %d\n", (int)id->ident_len, id->ident,
                     id->boot, id->closed ? 1 : 0);
    if (n < 0 || (size_t)n + 14 > cap)
        return -ENAMETOOLONG;
    int m = snprintf(buf + n, cap - (size_t)n, "crc %08x\n", vc_crc32c(0, buf, (size_t)n));
    *len = (size_t)n + (size_t)m;
    return 0;
}

/* The kernel's boot id into boot (NUL-terminated, no newline). */
static int boot_id_read(char *boot, size_t cap)
{
    FILE *f = fopen(BOOT_ID_PATH, "r");
    if (!f)
        return -errno;
    int rc = fgets(boot, (int)cap, f) ? 0 : -EIO;
    fclose(f);
    if (rc == 0)
        boot[strcspn(boot, "\n")] = '\0';
    return rc == 0 && boot[0] == '\0' ? -EIO : rc;
}

int st_cache_id_of(st_rados *r, const st_rados_options *ro, const char *format, st_cache_id *out)
{
    memset(out, 0, sizeof(*out));
    char fsid[64];
    int rc = rados_cluster_fsid(r->cluster, fsid, sizeof(fsid));
    if (rc < 0)
        return rc;
    const char *ns = ro->ns ? ro->ns : "";
    if (strchr(ro->pool, '\n') || strchr(ns, '\n'))
        return -EINVAL; /* one field a line */
    int n = snprintf(out->ident, sizeof(out->ident),
                     "fsid %.*s\npool %" PRId64 " %s\nnamespace %s\nformat %s\n", rc, fsid,
                     rados_ioctx_get_id(r->io), ro->pool, ns, format);
    if (n < 0 || (size_t)n >= sizeof(out->ident))
        return -ENAMETOOLONG;
    out->ident_len = (size_t)n;
    return boot_id_read(out->boot, sizeof(out->boot));
}

int st_cache_id_judge(const char *dir, const st_cache_id *now, char *why, size_t whylen)
{
    char path[4096], text[ST_CACHE_ID_MAX];
    why[0] = '\0';
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (access(path, F_OK) != 0)
        return 0; /* nothing to judge: an empty cache */
    snprintf(path, sizeof(path), "%s/" ST_CACHE_ID_FILE, dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got = fd < 0 ? -1 : read(fd, text, sizeof(text));
    if (fd >= 0)
        close(fd);
    st_cache_id was;
    if (got < 0) {
        snprintf(why, whylen, "it has no readable " ST_CACHE_ID_FILE " (%s)", strerror(errno));
        return 1;
    }
    if (st_cache_id_parse(text, (size_t)got, &was) != 0) {
        snprintf(why, whylen, "its " ST_CACHE_ID_FILE " is damaged");
        return 1;
    }
    if (was.ident_len != now->ident_len || memcmp(was.ident, now->ident, now->ident_len) != 0) {
        snprintf(why, whylen, "it is the cache of another cluster, pool, namespace or log format");
        return 1;
    }
    if (!was.closed && strcmp(was.boot, now->boot) != 0) {
        snprintf(why, whylen,
                 "it was not closed cleanly before the machine restarted (boot %s), so it may "
                 "be torn",
                 was.boot);
        return 1;
    }
    return 0;
}

int st_cache_id_write(const char *dir, const st_cache_id *id, bool closed)
{
    st_cache_id w = *id;
    w.closed = closed;
    char text[ST_CACHE_ID_MAX], tmp[4096], path[4096];
    size_t len;
    int rc = st_cache_id_format(&w, text, sizeof(text), &len);
    if (rc)
        return rc;
    snprintf(tmp, sizeof(tmp), "%s/" ST_CACHE_ID_FILE ".tmp", dir);
    snprintf(path, sizeof(path), "%s/" ST_CACHE_ID_FILE, dir);
    int fd = st_io_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return fd;
    rc = st_io_write(fd, text, len);
    if (rc == 0)
        rc = st_io_fsync(fd);
    close(fd);
    if (rc == 0)
        rc = st_io_rename_durable(tmp, path, dir);
    if (rc)
        unlink(tmp);
    return rc;
}
