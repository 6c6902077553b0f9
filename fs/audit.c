/*
 * audit.c — append-only JSON-lines audit log (see audit.h), and the record
 * of one mutating request (fsd.h) that dispatch.c starts before the
 * handler runs and ends after it replied.
 *
 * Invariants
 *   1. audit_fd is -1 (no log) or an O_WRONLY|O_APPEND descriptor; it is set
 *      before the session starts and cleared after it ends, so request
 *      threads only ever read it (atomic).
 *   2. One line = one write(2) of a buffer that ends in '\n'; strings are
 *      JSON-escaped by jansson, so a file name cannot break the line.
 */
#include "audit.h"

#include "fsd.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"

static atomic_int audit_fd = -1;
static atomic_uint_fast64_t failures;
/* The log's absolute path, for reopening after a rotation: the daemon
 * changes to / when it detaches. Written before the session starts. */
static char audit_path[PATH_MAX];

int fsd_audit_open(const char *path)
{
    int n;
    if (path[0] == '/') {
        n = snprintf(audit_path, sizeof audit_path, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return -errno;
        n = snprintf(audit_path, sizeof audit_path, "%s/%s", cwd, path);
    }
    if (n < 0 || (size_t)n >= sizeof audit_path)
        return -ENAMETOOLONG;
    int fd = open(audit_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    atomic_store(&audit_fd, fd);
    return 0;
}

void fsd_audit_reopen(void)
{
    int saved = errno;
    int fd = atomic_load(&audit_fd);
    if (fd >= 0) {
        /* dup2 swaps the file under the same descriptor in one step, so a
         * request thread writing meanwhile writes whole lines to the old
         * file or the new one. */
        int nfd = open(audit_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (nfd >= 0) {
            if (dup3(nfd, fd, O_CLOEXEC) < 0)
                atomic_fetch_add(&failures, 1);
            close(nfd);
        } else {
            atomic_fetch_add(&failures, 1);
        }
    }
    errno = saved;
}

void fsd_audit_close(void)
{
    int fd = atomic_exchange(&audit_fd, -1);
    if (fd >= 0)
        close(fd);
}

int fsd_audit_enabled(void)
{
    return atomic_load(&audit_fd) >= 0;
}

uint64_t fsd_audit_failures(void)
{
    return atomic_load(&failures);
}

/* A JSON string for a file name. Names are bytes and JSON wants UTF-8: a
 * name that is not valid UTF-8 is logged with each byte >= 0x80 written as
 * "\\xNN", so the line stays valid JSON and the name stays recognizable. */
static json_t *name_string(const char *name)
{
    json_t *s = json_string(name);
    if (s != NULL)
        return s;
    size_t n = strlen(name);
    char *esc = vc_malloc(4 * n + 1);
    if (esc == NULL)
        return json_string("?");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x80) {
            esc[o++] = (char)c;
        } else {
            snprintf(esc + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    esc[o] = '\0';
    s = json_string(esc);
    free(esc);
    return s != NULL ? s : json_string("?");
}

void fsd_audit_log(uid_t uid, gid_t gid, pid_t pid, const char *op, const char *path,
                   const char *new_path, int result, long long rows)
{
    int fd = atomic_load(&audit_fd);
    if (fd < 0)
        return;
    struct timespec ts;
    struct tm tm;
    char when[80];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(ts.tv_nsec / 1000000) % 1000);
    json_t *o = json_object();
    if (o == NULL) {
        atomic_fetch_add(&failures, 1);
        return;
    }
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "uid", json_integer((json_int_t)uid));
    json_object_set_new(o, "gid", json_integer((json_int_t)gid));
    json_object_set_new(o, "pid", json_integer((json_int_t)pid));
    json_object_set_new(o, "op", json_string(op));
    json_object_set_new(o, "path", name_string(path));
    if (new_path != NULL)
        json_object_set_new(o, "new_path", name_string(new_path));
    json_object_set_new(o, "result", json_integer(result < 0 ? -result : result));
    if (rows >= 0)
        json_object_set_new(o, "rows", json_integer(rows));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(o);
    if (line == NULL) {
        atomic_fetch_add(&failures, 1);
        return;
    }
    size_t len = strlen(line);
    line[len] = '\n'; /* replaces the NUL; written with its length */
    ssize_t w = write(fd, line, len + 1);
    if (w != (ssize_t)(len + 1))
        atomic_fetch_add(&failures, 1);
    free(line);
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */
/* ------------------------------------------------------------------ */

/* The path of a node relative to the mount ("c1/doc.f32", "c1"). */
static void ref_path(const fsd_ref *r, char *buf, size_t cap)
{
    switch (r->kind) {
    case FSD_K_ROOT:
        snprintf(buf, cap, "%s", "");
        break;
    case FSD_K_COLL:
        snprintf(buf, cap, "%s", r->coll);
        break;
    case FSD_K_QDIR:
        snprintf(buf, cap, "%s/.query", r->coll);
        break;
    case FSD_K_IDIR:
        snprintf(buf, cap, "%s/.import", r->coll);
        break;
    case FSD_K_ADMIN_DIR:
        snprintf(buf, cap, "%s", ".vecfs");
        break;
    default:
        if (r->coll[0] != '\0')
            snprintf(buf, cap, "%s/%s", r->coll, r->name);
        else
            snprintf(buf, cap, "%s", r->name);
        break;
    }
}

void fsd_audit_begin(fuse_req_t req, fsd_audit_rec *a, fuse_ino_t ino, const char *name)
{
    assert(a != NULL);
    a->on = false;
    a->new_path[0] = '\0';
    fsd_reply_errno_reset();
    fsd_ref p;
    if (!fsd_audit_enabled() || fsd_inodes_ref(fsd_of(req)->inodes, ino, &p) < 0)
        return;
    if (p.kind == FSD_K_QDIR || p.kind == FSD_K_QFILE)
        return;
    a->on = true;
    fsd_caller_get(req, &a->who);
    char base[ST_COLL_NAME_MAX + ST_NAME_MAX + 16];
    ref_path(&p, base, sizeof base);
    if (name == NULL)
        snprintf(a->path, sizeof a->path, "%s", base);
    else if (base[0] == '\0')
        snprintf(a->path, sizeof a->path, "%s", name);
    else
        snprintf(a->path, sizeof a->path, "%s/%s", base, name);
}

void fsd_audit_end(const fsd_audit_rec *a, const char *op)
{
    if (a->on)
        fsd_audit_log(a->who.uid, a->who.gid, a->who.pid, op, a->path,
                      a->new_path[0] ? a->new_path : NULL, fsd_reply_errno(), -1);
}

void fsd_audit_rename(fsd_audit_rec *a, const fsd_audit_rec *b)
{
    if (a->on && b->on)
        snprintf(a->new_path, sizeof a->new_path, "%s", b->path);
}

void fsd_audit_caller(const fsd_caller *who, const char *op, const char *path, int result,
                      long long rows)
{
    if (fsd_audit_enabled())
        fsd_audit_log(who->uid, who->gid, who->pid, op, path, NULL, result, rows);
}
