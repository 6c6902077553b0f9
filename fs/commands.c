/*
 * commands.c — the `vecfs check|backup|restore` subcommands: each runs
 * without a mount, against a store directory, and returns the exit code.
 *
 * Invariants
 *   1. Subcommands print one clear error line and exit non-zero on failure;
 *      `check` exits 1 when it finds damage, 2 when it cannot run.
 *   2. check and backup open the store read-only; restore writes only into
 *      an empty DATADIR and checks what it restored.
 *   3. Progress goes to stderr (progress.h): live on a terminal, else a
 *      line per tenth of work that runs longer than two seconds.
 */
#include "fsd.h"

#include "copy_watch.h"
#include "progress.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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

/* A --rados-* number: 0, or -1 with msg set. */
static int rados_number(const char *name, const char *text, long max, unsigned *out, char *msg,
                        size_t msglen)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < 1 || v > max) {
        snprintf(msg, msglen, "%s: expected 1..%ld, got '%s'", name, max, text);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int fsd_rados_take(int *argc, char **argv, st_rados_options *ro, char *msg, size_t msglen)
{
    enum { NAMES = 9, TEXTS = 4 };
    static const char *const names[NAMES] = {
        "--rados-conf",         "--rados-pool",       "--rados-namespace",
        "--rados-id",           "--rados-timeout",    "--rados-ckpt-entries",
        "--rados-ckpt-minutes", "--rados-ckpt-lease", "--rados-orphan-age"};
    static const long max[NAMES - TEXTS] = {3600, 100000000, 10080, 3600, 604800};
    const char *numbers[NAMES - TEXTS] = {NULL};
    unsigned *targets[NAMES - TEXTS] = {&ro->timeout_s, &ro->ckpt_entries, &ro->ckpt_minutes,
                                        &ro->ckpt_lease_s, &ro->orphan_age_s};
    const char **fields[NAMES] = {&ro->conf,   &ro->pool,   &ro->ns,     &ro->id,    &numbers[0],
                                  &numbers[1], &numbers[2], &numbers[3], &numbers[4]};
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        size_t k = 0;
        while (k < NAMES && strcmp(argv[i], names[k]) != 0)
            k++;
        if (k == NAMES || i == 0) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= *argc) {
            snprintf(msg, msglen, "%s needs a value", names[k]);
            return -1;
        }
        *fields[k] = argv[++i];
    }
    *argc = out;
    argv[out] = NULL;
    bool any_number = false;
    for (int k = 0; k < NAMES - TEXTS; k++) {
        if (numbers[k] &&
            rados_number(names[TEXTS + k], numbers[k], max[k], targets[k], msg, msglen) < 0)
            return -1;
        any_number |= numbers[k] != NULL;
    }
    if ((ro->conf == NULL) != (ro->pool == NULL) ||
        (ro->conf == NULL && (ro->ns || ro->id || any_number))) {
        snprintf(msg, msglen, "the RADOS mode needs both --rados-conf and --rados-pool");
        return -1;
    }
    return 0;
}

/* The store's log lines, into ours. */
static void store_log(void *ctx, st_log_level level, const char *msg)
{
    (void)ctx;
    fsd_log((fsd_log_level)level, "%s", msg);
}

/* Fills *o for opening a store read-only: errors into msg, the store's log
 * at WARN, and the key of key_file (NULL: none) loaded into *key (*klen
 * bytes; st_key_free it). 0 or the key loader's negative errno. */
static int ro_options(const char *key_file, st_options *o, char *msg, size_t msglen, uint8_t **key,
                      size_t *klen)
{
    st_options_default(o);
    o->read_only = true;
    o->errbuf = msg;
    o->errbuf_len = msglen;
    o->log = store_log;
    o->log_level = ST_LOG_WARN;
    *key = NULL;
    *klen = 0;
    if (key_file == NULL)
        return 0;
    bool pass = false;
    int rc = st_key_load(key_file, key, klen, &pass);
    if (rc < 0)
        return rc;
    o->key = *key;
    o->key_len = *klen;
    o->key_is_passphrase = pass;
    return 0;
}

/* Opens the store a backup copies, read-only, with the key of key_file:
 * DATADIR dir without its indexes (the copy needs the records only, and
 * starts at once), or with ro a read-only RADOS node on the cache dir. */
static int open_ro(const char *dir, const st_rados_options *ro, const char *key_file,
                   st_store **out, char *msg, size_t msglen)
{
    st_options o;
    uint8_t *key;
    size_t klen;
    int rc = ro_options(key_file, &o, msg, msglen, &key, &klen);
    if (rc < 0) {
        snprintf(msg, msglen, "key file %s: %s", key_file, strerror(-rc));
        return rc;
    }
    msg[0] = '\0';
    rc = ro ? st_rados_open(dir, &o, ro, out) : st_store_open_noindex(dir, &o, out);
    st_key_free(key, klen);
    if (rc < 0 && msg[0] == '\0' && ro)
        snprintf(msg, msglen, "pool %s: %s", ro->pool, strerror(-rc));
    else if (rc < 0 && msg[0] == '\0')
        snprintf(msg, msglen, "%s: %s", dir, strerror(-rc));
    return rc;
}

/* `vecfs check --rados-*`: the cluster side of the log (a sealed one
 * with o's key; its errbuf is msg); the report on stdout, 0 clean, 1
 * damage, 2 cannot run. */
static int check_rados(const st_rados_options *ro, const st_options *o, char *msg)
{
    msg[0] = '\0';
    int rc = st_rados_check(ro, o, stdout);
    if (rc < 0) {
        fprintf(stderr, "vecfs: check --rados-pool %s: %s\n", ro->pool,
                msg[0] ? msg : strerror(-rc));
        return 2;
    }
    if (rc > 0)
        fprintf(stderr, "vecfs: check --rados-pool %s: the log is damaged\n", ro->pool);
    return rc;
}

int fsd_cmd_check(int argc, char **argv)
{
    bool bad;
    const char *key_file = take_key_file(&argc, argv, &bad);
    st_rados_options ro = {0};
    char msg[512] = "";
    if (!bad && fsd_rados_take(&argc, argv, &ro, msg, sizeof msg) < 0) {
        fprintf(stderr, "vecfs: check: %s\n", msg);
        return 2;
    }
    fsd_log_setup(FSD_LOG_WARN, false);
    bool rados_only = !bad && ro.conf && argc == 1;
    if (!rados_only && (bad || argc != 2)) {
        fprintf(stderr, "usage: vecfs check DATADIR [--key-file F], or vecfs check --rados-conf "
                        "CONF --rados-pool POOL [DATADIR]\n");
        return 2;
    }
    st_options o;
    uint8_t *key;
    size_t klen;
    int krc = ro_options(key_file, &o, msg, sizeof msg, &key, &klen);
    if (krc < 0) {
        fprintf(stderr, "vecfs: key file %s: %s\n", key_file, strerror(-krc));
        return 2;
    }
    int rrc = ro.conf ? check_rados(&ro, &o, msg) : 0;
    if (rados_only || rrc == 2) {
        st_key_free(key, klen);
        return rrc;
    }
    msg[0] = '\0';
    /* The report goes to stdout only when the check ran: a store that
     * cannot be opened is one line on stderr and nothing else. */
    char *report = NULL;
    size_t report_len = 0;
    FILE *out = open_memstream(&report, &report_len);
    fsd_progress progress;
    fsd_progress_init(&progress, "check", "vectors");
    o.progress = fsd_progress_report;
    o.progress_ctx = &progress;
    int rc = out == NULL ? -ENOMEM : st_check(argv[1], &o, out);
    fsd_progress_end(&progress);
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
    return rrc;
}

/* true when s ends in suffix and is longer than it. */
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

/* true when path is a directory with no entries but . and .. */
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

/* Opens a RADOS node for a backup (docs/scale-out.md §9) on a new,
 * empty cache next to out (its path in cache): the newest checkpoint plus
 * the log up to the head read now, so every change whose call returned
 * before this started is in it. It is a read-only node (it never appends
 * nor writes a checkpoint, nor creates a log), with the key of key_file
 * for a sealed log. */
static int open_rados(const st_rados_options *given, const char *key_file, const char *out,
                      char *cache, size_t cachelen, st_store **st, char *msg, size_t msglen)
{
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/')
        len--; /* OUTDIR/ : the cache goes next to it, not inside */
    if (snprintf(cache, cachelen, "%.*s.cacheXXXXXX", (int)len, out) >= (int)cachelen ||
        mkdtemp(cache) == NULL) {
        snprintf(msg, msglen, "cannot make a cache directory next to %s: %s", out, strerror(errno));
        cache[0] = '\0';
        return -1;
    }
    return open_ro(cache, given, key_file, st, msg, msglen);
}

int fsd_cmd_backup(int argc, char **argv)
{
    bool bad;
    const char *key_file = take_key_file(&argc, argv, &bad);
    st_rados_options ro = {0};
    char msg[512] = "";
    if (!bad && fsd_rados_take(&argc, argv, &ro, msg, sizeof msg) < 0) {
        fprintf(stderr, "vecfs: backup: %s\n", msg);
        return 2;
    }
    if (bad || argc != (ro.conf ? 2 : 3)) {
        fprintf(stderr,
                "usage: vecfs backup DATADIR OUT.tar|OUTDIR [--key-file F], or vecfs "
                "backup --rados-conf CONF --rados-pool POOL OUT.tar|OUTDIR [--key-file F]\n");
        return 2;
    }
    fsd_log_setup(FSD_LOG_WARN, false);
    const char *datadir = argv[1], *out = argv[argc - 1];
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
    st_store *st = NULL;
    int code = 1;
    char cache[PATH_MAX] = "";
    int rc = ro.conf ? open_rados(&ro, key_file, out, cache, sizeof cache, &st, msg, sizeof msg)
                     : open_ro(datadir, NULL, key_file, &st, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "vecfs: backup: %s\n", msg);
        goto out;
    }
    st_metrics m = {0};
    (void)st_store_metrics(st, &m); /* the size estimate; none is fine */
    char data[PATH_MAX + 16];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    fsd_progress progress;
    fsd_progress_init(&progress, "backup", "bytes");
    fsd_copy_watch watch;
    fsd_copy_watch_start(&watch, data, m.store_bytes, &progress);
    rc = st_store_backup(st, dir);
    fsd_copy_watch_stop(&watch, rc == 0);
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
    if (cache[0]) {
        char *const rm[] = {"rm", "-rf", cache, NULL};
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
    /* What the copy will write: the backup's data.mdb, or about the tar. */
    char from[PATH_MAX + 16], data[PATH_MAX + 16];
    struct stat fs = bs;
    snprintf(from, sizeof from, "%s/data.mdb", backup);
    if (S_ISDIR(bs.st_mode) && stat(from, &fs) < 0)
        fs.st_size = 0;
    snprintf(data, sizeof data, "%s/data.mdb", datadir);
    fsd_progress progress;
    fsd_progress_init(&progress, "restore", "bytes");
    fsd_copy_watch watch;
    fsd_copy_watch_start(&watch, data, (uint64_t)fs.st_size, &progress);
    int copied;
    if (S_ISDIR(bs.st_mode)) {
        char src[PATH_MAX];
        if (snprintf(src, sizeof src, "%s/.", backup) >= (int)sizeof src) {
            fprintf(stderr, "vecfs: restore: path too long\n");
            return 1;
        }
        char *const args[] = {"cp", "-a", src, (char *)datadir, NULL};
        copied = run_tool(args);
    } else {
        char *const args[] = {"tar", "-xf", (char *)backup, "-C", (char *)datadir, NULL};
        copied = run_tool(args);
    }
    fsd_copy_watch_stop(&watch, copied == 0);
    if (copied < 0)
        return 1;
    /* Verify what was restored opens and is consistent. */
    char msg[512] = "";
    st_options o;
    uint8_t *key;
    size_t klen;
    if (ro_options(key_file, &o, msg, sizeof msg, &key, &klen) < 0) {
        /* An unreadable key: the check below reports the store as
         * encrypted and unverified, as without --key-file. */
        (void)ro_options(NULL, &o, msg, sizeof msg, &key, &klen);
    }
    FILE *devnull = fopen("/dev/null", "w");
    fsd_progress_init(&progress, "restore", "vectors");
    o.progress = fsd_progress_report;
    o.progress_ctx = &progress;
    int rc = st_check(datadir, &o, devnull);
    fsd_progress_end(&progress);
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
