/*
 * admin.c — `.vecfs/health`, `.vecfs/metrics`, `.vecfs/stats`, and the
 * `vecfs check|backup|restore` subcommands.
 *
 * Admin files are generated whole at open (direct_io, so every reader gets
 * one consistent document and stat on the handle agrees with it). Their
 * content comes only from calls that never wait for writers or the disk
 * (st_store_metrics, st_store_health, st_coll_list read an MVCC snapshot),
 * so a health probe answers while an import commits.
 *
 * Invariants
 *   1. Metrics carry no per-path or per-user labels: the only label values
 *      are op names, errno names and collection names (SPEC §6).
 *   2. Subcommands print one clear error line and exit non-zero on failure;
 *      `check` exits 1 when it finds damage, 2 when it cannot run.
 */
#include "fsd.h"

#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

extern char **environ;

/* ------------------------------------------------------------------ */
/* Rendering                                                            */
/* ------------------------------------------------------------------ */

typedef struct coll_list {
    vc_buf *b;
    st_store *st;
    json_t *arr;
    int rc;
} coll_list;

static int metrics_coll_cb(void *ctx, const char *name, const st_attr *attr, uint64_t next)
{
    (void)next;
    coll_list *c = ctx;
    c->rc = vc_buf_printf(c->b, "vecfs_vectors{collection=\"%s\"} %llu\n", name,
                          (unsigned long long)attr->count);
    return c->rc != 0;
}

static int render_metrics(fsd *d, vc_buf *b)
{
    st_metrics m;
    int rc = st_store_metrics(d->store, &m);
    if (rc < 0)
        return rc;
    rc = fsd_metrics_render(b);
    if (rc == 0)
        rc = vc_buf_printf(b, "# HELP vecfs_vectors Vectors per collection.\n"
                              "# TYPE vecfs_vectors gauge\n");
    if (rc == 0) {
        coll_list c = {.b = b, .st = d->store};
        rc = st_coll_list(d->store, 0, metrics_coll_cb, &c);
        if (rc == 0)
            rc = c.rc;
    }
    if (rc == 0)
        rc = vc_buf_printf(
            b,
            "# HELP vecfs_store_bytes Bytes of DATADIR in use.\n"
            "# TYPE vecfs_store_bytes gauge\n"
            "vecfs_store_bytes %llu\n"
            "# HELP vecfs_index_memory_bytes Bytes held by the in-memory indexes.\n"
            "# TYPE vecfs_index_memory_bytes gauge\n"
            "vecfs_index_memory_bytes %llu\n"
            "# HELP vecfs_snapshot_age_seconds Age of the oldest snapshot behind its "
            "collection.\n"
            "# TYPE vecfs_snapshot_age_seconds gauge\n"
            "vecfs_snapshot_age_seconds %.3f\n"
            "# HELP vecfs_searches_short_total Graph walks that came back with fewer "
            "than k and were answered by exact search.\n"
            "# TYPE vecfs_searches_short_total counter\n"
            "vecfs_searches_short_total %llu\n"
            "# HELP vecfs_vectors_rehomed_total Vectors given a protected way in by a "
            "search of their own: an insert whose chosen neighbours could not anchor "
            "it, or a delete or update that took its anchor.\n"
            "# TYPE vecfs_vectors_rehomed_total counter\n"
            "vecfs_vectors_rehomed_total %llu\n"
            "# HELP vecfs_vectors_stranded_total Vectors left without a way in "
            "(found by exact search until the next snapshot relinks them).\n"
            "# TYPE vecfs_vectors_stranded_total counter\n"
            "vecfs_vectors_stranded_total %llu\n",
            (unsigned long long)m.store_bytes, (unsigned long long)m.index_memory,
            m.snapshot_age_seconds, (unsigned long long)m.searches_short_total,
            (unsigned long long)m.vectors_rehomed_total,
            (unsigned long long)m.vectors_stranded_total);
    if (rc == 0)
        rc = vc_buf_printf(b,
                           "# HELP vecfs_audit_failures_total Audit lines that could not be "
                           "written.\n"
                           "# TYPE vecfs_audit_failures_total counter\n"
                           "vecfs_audit_failures_total %llu\n"
                           "# HELP vecfs_query_bytes Bytes of query texts and results held.\n"
                           "# TYPE vecfs_query_bytes gauge\n"
                           "vecfs_query_bytes %llu\n",
                           (unsigned long long)fsd_audit_failures(),
                           (unsigned long long)fsd_queries_bytes(d->queries));
    return rc;
}

static int stats_coll_cb(void *ctx, const char *name, const st_attr *attr, uint64_t next)
{
    (void)next;
    coll_list *c = ctx;
    st_config cfg;
    json_t *o = json_object();
    if (o == NULL) {
        c->rc = -ENOMEM;
        return 1;
    }
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "vectors", json_integer((json_int_t)attr->count));
    json_object_set_new(o, "bytes", json_integer((json_int_t)attr->bytes));
    /* st_coll_config_get is a read; it does not write (list callbacks
     * must not write). */
    if (st_coll_config_get(c->st, name, &cfg) == 0) {
        json_object_set_new(o, "dim", json_integer(cfg.dim));
        json_object_set_new(o, "metric", json_string(vf_metric_name(cfg.metric)));
        json_object_set_new(o, "m", json_integer(cfg.m));
        json_object_set_new(o, "ef_construction", json_integer(cfg.ef_construction));
        if (cfg.ef_auto)
            json_object_set_new(o, "ef_search", json_string("auto"));
        else
            json_object_set_new(o, "ef_search", json_integer(cfg.ef_search));
        json_object_set_new(o, "quantization",
                            json_string(cfg.quantization == ST_QUANT_INT8 ? "int8" : "none"));
        json_object_set_new(o, "index", json_string("hnsw"));
    }
    json_array_append_new(c->arr, o);
    return 0;
}

static int render_stats(fsd *d, vc_buf *b)
{
    st_metrics m;
    int rc = st_store_metrics(d->store, &m);
    if (rc < 0)
        return rc;
    json_t *root = json_object();
    json_t *arr = json_array();
    if (root == NULL || arr == NULL) {
        json_decref(root);
        json_decref(arr);
        return -ENOMEM;
    }
    coll_list c = {.b = b, .st = d->store, .arr = arr};
    rc = st_coll_list(d->store, 0, stats_coll_cb, &c);
    if (rc == 0)
        rc = c.rc;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    json_object_set_new(root, "version", json_string(VECFS_VERSION));
    json_object_set_new(root, "uptime_seconds",
                        json_integer((json_int_t)(now.tv_sec - d->started.tv_sec)));
    json_object_set_new(root, "read_only", json_boolean(m.read_only));
    json_object_set_new(root, "encrypted", json_boolean(m.encrypted));
    json_object_set_new(root, "collections", arr);
    json_object_set_new(root, "vectors", json_integer((json_int_t)m.vectors));
    json_object_set_new(root, "store_bytes", json_integer((json_int_t)m.store_bytes));
    json_object_set_new(root, "map_bytes", json_integer((json_int_t)m.map_bytes));
    json_object_set_new(root, "max_bytes", json_integer((json_int_t)m.max_bytes));
    json_object_set_new(root, "index_memory_bytes", json_integer((json_int_t)m.index_memory));
    json_object_set_new(root, "inserts_total",
                        json_integer((json_int_t)fsd_metrics_inserts_total()));
    json_object_set_new(root, "queries_total",
                        json_integer((json_int_t)fsd_metrics_queries_total()));
    json_object_set_new(root, "deletes_total", json_integer((json_int_t)m.deletes_total));
    json_object_set_new(root, "snapshots_total", json_integer((json_int_t)m.snapshots_total));
    json_object_set_new(root, "rebuilds_total", json_integer((json_int_t)m.rebuilds_total));
    json_object_set_new(root, "searches_short_total",
                        json_integer((json_int_t)m.searches_short_total));
    json_object_set_new(root, "vectors_rehomed_total",
                        json_integer((json_int_t)m.vectors_rehomed_total));
    json_object_set_new(root, "vectors_stranded_total",
                        json_integer((json_int_t)m.vectors_stranded_total));
    json_object_set_new(root, "snapshot_age_seconds", json_real(m.snapshot_age_seconds));
    json_object_set_new(root, "open_seconds", json_real(m.open_seconds));
    json_object_set_new(root, "query_files",
                        json_integer((json_int_t)fsd_queries_count(d->queries)));
    json_object_set_new(root, "inodes", json_integer((json_int_t)fsd_inodes_count(d->inodes)));
    if (rc == 0) {
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text == NULL)
            rc = -ENOMEM;
        else
            rc = vc_buf_printf(b, "%s\n", text);
        free(text);
    }
    json_decref(root);
    return rc;
}

int fsd_admin_render(fsd *d, fsd_kind kind, vc_buf *b)
{
    switch (kind) {
    case FSD_K_ADMIN_HEALTH: {
        char line[4096];
        size_t len = 0;
        int rc = st_store_health(d->store, line, sizeof line, &len);
        if (rc < 0)
            return rc;
        uint64_t lost = fsd_audit_failures();
        if (lost == 0)
            return vc_buf_append(b, line, len);
        /* A lost audit line is a problem to report, not to hide in a log. */
        if (!(len == 3 && memcmp(line, "ok\n", 3) == 0))
            rc = vc_buf_append(b, line, len);
        if (rc == 0)
            rc = vc_buf_printf(b, "audit log: %llu line(s) could not be written\n",
                               (unsigned long long)lost);
        return rc;
    }
    case FSD_K_ADMIN_METRICS:
        return render_metrics(d, b);
    case FSD_K_ADMIN_STATS:
        return render_stats(d, b);
    default:
        return -ENOENT;
    }
}

int fsd_admin_stat(fsd *d, fsd_kind kind, fuse_ino_t ino, struct stat *st)
{
    vc_buf b = VC_BUF_INIT;
    int rc = fsd_admin_render(d, kind, &b);
    if (rc == 0) {
        memset(st, 0, sizeof *st);
        st->st_ino = ino;
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t)b.len;
        st->st_blksize = 4096;
        clock_gettime(CLOCK_REALTIME, &st->st_mtim);
        st->st_atim = st->st_ctim = st->st_mtim;
    }
    vc_buf_release(&b);
    return rc;
}

void fsd_admin_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        fsd_reply_err(req, FSD_OP_OPEN, EACCES);
        return;
    }
    fsd_buf_fh *h = calloc(1, sizeof *h);
    if (h == NULL) {
        fsd_reply_err(req, FSD_OP_OPEN, ENOMEM);
        return;
    }
    h->h.type = FSD_FH_BUFFER;
    int rc = fsd_admin_render(d, r->kind, &h->content);
    if (rc < 0) {
        vc_buf_release(&h->content);
        free(h);
        fsd_reply_err(req, FSD_OP_OPEN, rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    fsd_fh_track(d, &h->h);
    if (fuse_reply_open(req, fi) == -ENOENT) {
        fsd_fh_untrack(d, &h->h);
        vc_buf_release(&h->content);
        free(h);
    }
}

/* ------------------------------------------------------------------ */
/* Subcommands                                                          */
/* ------------------------------------------------------------------ */

/* Takes "--key-file F" out of argv (in place). Returns the path or NULL;
 * sets *bad on a missing argument. */
static const char *take_key_file(int *argc, char **argv, bool *bad)
{
    const char *key = NULL;
    *bad = false;
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--key-file") == 0) {
            if (i + 1 >= *argc) {
                *bad = true;
                return NULL;
            }
            key = argv[++i];
        } else if (strncmp(argv[i], "--key-file=", 11) == 0) {
            key = argv[i] + 11;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    return key;
}

static void store_log(void *ctx, st_log_level level, const char *msg)
{
    (void)ctx;
    fsd_log((fsd_log_level)level, "%s", msg);
}

/* Opens a store read-only for check/backup. */
static int open_ro(const char *datadir, const char *key_file, st_store **out, char *msg,
                   size_t msglen)
{
    st_options o;
    st_options_default(&o);
    o.read_only = true;
    o.errbuf = msg;
    o.errbuf_len = msglen;
    o.log = store_log;
    o.log_level = ST_LOG_WARN;
    uint8_t *key = NULL;
    size_t klen = 0;
    bool pass = false;
    if (key_file != NULL) {
        int rc = st_key_load(key_file, &key, &klen, &pass);
        if (rc < 0) {
            snprintf(msg, msglen, "key file %s: %s", key_file, strerror(-rc));
            return rc;
        }
        o.key = key;
        o.key_len = klen;
        o.key_is_passphrase = pass;
    }
    msg[0] = '\0';
    int rc = st_store_open(datadir, &o, out);
    st_key_free(key, klen);
    if (rc < 0 && msg[0] == '\0')
        snprintf(msg, msglen, "%s: %s", datadir, strerror(-rc));
    return rc;
}

int fsd_cmd_check(int argc, char **argv)
{
    bool bad;
    const char *key_file = take_key_file(&argc, argv, &bad);
    if (bad || argc != 2) {
        fprintf(stderr, "usage: vecfs check DATADIR [--key-file F]\n");
        return 2;
    }
    fsd_log_setup(FSD_LOG_WARN, false);
    char msg[512] = "";
    st_options o;
    st_options_default(&o);
    o.read_only = true;
    o.errbuf = msg;
    o.errbuf_len = sizeof msg;
    o.log = store_log;
    o.log_level = ST_LOG_WARN;
    uint8_t *key = NULL;
    size_t klen = 0;
    bool pass = false;
    if (key_file != NULL) {
        int rc = st_key_load(key_file, &key, &klen, &pass);
        if (rc < 0) {
            fprintf(stderr, "vecfs: key file %s: %s\n", key_file, strerror(-rc));
            return 2;
        }
        o.key = key;
        o.key_len = klen;
        o.key_is_passphrase = pass;
    }
    /* The report goes to stdout only when the check ran: a store that
     * cannot be opened is one line on stderr and nothing else. */
    char *report = NULL;
    size_t report_len = 0;
    FILE *out = open_memstream(&report, &report_len);
    int rc = out == NULL ? -ENOMEM : st_check(argv[1], &o, out);
    st_key_free(key, klen);
    if (out != NULL)
        fclose(out);
    if (rc >= 0 && report_len > 0)
        fwrite(report, 1, report_len, stdout);
    free(report);
    if (rc < 0) {
        fprintf(stderr, "vecfs: check %s: %s\n", argv[1], msg[0] ? msg : strerror(-rc));
        return 2;
    }
    if (rc > 0) {
        fprintf(stderr, "vecfs: check %s: %d problem%s found\n", argv[1], rc, rc == 1 ? "" : "s");
        return 1;
    }
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Runs argv (a tar command) and waits. 0 or -1 after printing why. */
static int run_tool(char *const argv[])
{
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (rc != 0) {
        fprintf(stderr, "vecfs: cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "vecfs: %s failed\n", argv[0]);
        return -1;
    }
    return 0;
}

static bool dir_is_empty(const char *path)
{
    DIR *dir = opendir(path);
    if (dir == NULL)
        return false;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(dir)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = false;
    closedir(dir);
    return empty;
}

int fsd_cmd_backup(int argc, char **argv)
{
    bool bad;
    const char *key_file = take_key_file(&argc, argv, &bad);
    if (bad || argc != 3) {
        fprintf(stderr, "usage: vecfs backup DATADIR OUT.tar|OUTDIR [--key-file F]\n");
        return 2;
    }
    fsd_log_setup(FSD_LOG_WARN, false);
    const char *datadir = argv[1], *out = argv[2];
    bool tar = ends_with(out, ".tar");
    char dir[PATH_MAX];
    if (tar) {
        if (snprintf(dir, sizeof dir, "%s.tmpXXXXXX", out) >= (int)sizeof dir ||
            mkdtemp(dir) == NULL) {
            fprintf(stderr, "vecfs: backup: cannot make a temporary directory next to %s: %s\n",
                    out, strerror(errno));
            return 1;
        }
    } else {
        snprintf(dir, sizeof dir, "%s", out);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            fprintf(stderr, "vecfs: backup: %s: %s\n", dir, strerror(errno));
            return 1;
        }
        if (!dir_is_empty(dir)) {
            fprintf(stderr, "vecfs: backup: %s is not an empty directory\n", dir);
            return 1;
        }
    }
    char msg[512];
    st_store *st = NULL;
    int code = 1;
    int rc = open_ro(datadir, key_file, &st, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "vecfs: backup: %s\n", msg);
        goto out;
    }
    rc = st_store_backup(st, dir);
    st_store_close(st);
    if (rc < 0) {
        fprintf(stderr, "vecfs: backup to %s: %s\n", dir, strerror(-rc));
        goto out;
    }
    if (tar) {
        char *const args[] = {"tar", "-cf", (char *)out, "-C", dir, ".", NULL};
        if (run_tool(args) < 0)
            goto out;
    }
    code = 0;
out:
    if (tar) {
        char *const rm[] = {"rm", "-rf", dir, NULL};
        (void)run_tool(rm);
    }
    return code;
}

int fsd_cmd_restore(int argc, char **argv)
{
    bool bad;
    const char *key_file = take_key_file(&argc, argv, &bad);
    if (bad || argc != 3) {
        fprintf(stderr, "usage: vecfs restore BACKUP DATADIR [--key-file F]\n");
        return 2;
    }
    fsd_log_setup(FSD_LOG_WARN, false);
    const char *backup = argv[1], *datadir = argv[2];
    struct stat bs;
    if (stat(backup, &bs) < 0) {
        fprintf(stderr, "vecfs: restore: %s: %s\n", backup, strerror(errno));
        return 1;
    }
    if (mkdir(datadir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "vecfs: restore: %s: %s\n", datadir, strerror(errno));
        return 1;
    }
    if (!dir_is_empty(datadir)) {
        fprintf(stderr, "vecfs: restore: DATADIR %s is not empty\n", datadir);
        return 1;
    }
    if (S_ISDIR(bs.st_mode)) {
        char src[PATH_MAX];
        if (snprintf(src, sizeof src, "%s/.", backup) >= (int)sizeof src) {
            fprintf(stderr, "vecfs: restore: path too long\n");
            return 1;
        }
        char *const args[] = {"cp", "-a", src, (char *)datadir, NULL};
        if (run_tool(args) < 0)
            return 1;
    } else {
        char *const args[] = {"tar", "-xf", (char *)backup, "-C", (char *)datadir, NULL};
        if (run_tool(args) < 0)
            return 1;
    }
    /* Verify what was restored opens and is consistent. */
    char msg[512] = "";
    st_options o;
    st_options_default(&o);
    o.read_only = true;
    o.errbuf = msg;
    o.errbuf_len = sizeof msg;
    o.log = store_log;
    o.log_level = ST_LOG_WARN;
    uint8_t *key = NULL;
    size_t klen = 0;
    bool pass = false;
    if (key_file != NULL && st_key_load(key_file, &key, &klen, &pass) == 0) {
        o.key = key;
        o.key_len = klen;
        o.key_is_passphrase = pass;
    }
    FILE *devnull = fopen("/dev/null", "w");
    int rc = st_check(datadir, &o, devnull);
    if (devnull != NULL)
        fclose(devnull);
    st_key_free(key, klen);
    if (rc == -EKEYREJECTED && key_file == NULL) {
        fprintf(stderr,
                "vecfs: restored %s into %s (encrypted: not verified without "
                "--key-file)\n",
                backup, datadir);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "vecfs: restore: the restored store does not check clean: %s\n",
                rc < 0 ? (msg[0] ? msg : strerror(-rc)) : "damage found (run vecfs check)");
        return 1;
    }
    return 0;
}
