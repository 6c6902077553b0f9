/*
 * cli.c — the `vecfs` command: main(), the mount command line, the checks
 * of DATADIR and MOUNTPOINT, and the fork into a daemon; the subcommands
 * are commands.c's and the mount itself is serve.c's.
 *
 * Invariants
 *   1. A bad command line is one line on stderr and exit status 2; a bad
 *      path, exit status 1, before anything is opened.
 *   2. Every path handed to serve.c is absolute: the daemon leaves the
 *      caller's cwd.
 *   3. Without -f the parent exits only when the child reported "ok" or an
 *      error line (or died), so `vecfs D M && ls M` works.
 */
#include "serve.h"

#include "fsd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"

/* Smallest --max-size: below it not even an empty store and its first
 * snapshot fit. */
#define FSD_MAX_SIZE_MIN ((uint64_t)1 << 20)

/* Prints the usage text. */
static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: vecfs [options] DATADIR MOUNTPOINT   mount a vecfs store\n"
        "       vecfs --rados-conf CONF --rados-pool POOL [options] CACHEDIR MOUNTPOINT\n"
        "                                            mount a node of a RADOS pool's vecfs\n"
        "       vecfs check DATADIR [--key-file F]   verify the store, non-zero on damage\n"
        "       vecfs check --rados-conf CONF --rados-pool POOL [DATADIR] [--key-file F]\n"
        "                                            verify the pool's log (and a cache)\n"
        "       vecfs backup DATADIR OUT             hot, consistent backup\n"
        "       vecfs backup --rados-conf CONF --rados-pool POOL OUT [--key-file F]\n"
        "       vecfs restore BACKUP DATADIR         restore into an empty DATADIR\n"
        "       vecfs --help | --version\n"
        "\n"
        "options:\n"
        "  -f                 stay in the foreground (log to stderr)\n"
        "  -d                 debug: foreground and FUSE request tracing\n"
        "  -s                 single-threaded\n"
        "  -o OPT[,OPT...]    FUSE mount options (allow_other, default_permissions, ...)\n"
        "  --key-file F       encrypt the store at rest with the key in F\n"
        "  --max-size BYTES   cap the store's size (suffixes K, M, G, T)\n"
        "  --read-only        mount read-only (query files keep working)\n"
        "  --audit-log F      append one JSON line per mutating operation to F\n"
        "  --metrics-listen HOST:PORT  serve /metrics, /livez, /readyz, /health\n"
        "  --tls-cert F --tls-key F    serve them over TLS (PEM files)\n"
        "  --tls-client-ca F  and require client certificates signed by this CA\n"
        "  --threads N        at most N FUSE worker threads (default 16)\n"
        "  --io-uring         take requests through the kernel's io_uring queues\n"
        "  --rados-conf F     RADOS mode: the Ceph config file (DATADIR is a cache)\n"
        "  --rados-pool P     RADOS mode: the pool holding the log\n"
        "  --rados-namespace NS  RADOS mode: the namespace in the pool (default none)\n"
        "  --rados-id ID      RADOS mode: the Ceph client id (default admin)\n"
        "  --rados-timeout S  RADOS mode: bound of every cluster call (default 10)\n"
        "  --rados-ckpt-entries N  RADOS mode: a checkpoint every N entries (default 50000)\n"
        "  --rados-ckpt-minutes M  RADOS mode: or M minutes after an uncovered entry (default 10)\n"
        "  --rados-ckpt-lease S    RADOS mode: the checkpoint writer's lease (default 30)\n"
        "  --rados-orphan-age S    RADOS mode: remove blobs no entry names after S s (default "
        "3600)\n"
        "  --help, --version\n");
}

/* Parses a size in bytes with an optional suffix K, M, G or T (powers of
 * 1024; "KiB", "KB" and "K" alike). 0 or -EINVAL. */
static int parse_size(const char *s, uint64_t *out)
{
    static const char suffixes[] = "kmgt";
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return -EINVAL;
    uint64_t mul = 1;
    if (*end != '\0') {
        const char *at = strchr(suffixes, *end | 0x20);
        if (at == NULL)
            return -EINVAL;
        mul = (uint64_t)1 << (10 * (at - suffixes + 1));
        end++;
    }
    if (*end == 'i' || *end == 'B')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0' || v > UINT64_MAX / mul)
        return -EINVAL;
    *out = (uint64_t)v * mul;
    return 0;
}

enum {
    OPT_KEY_FILE = 256,
    OPT_MAX_SIZE,
    OPT_READ_ONLY,
    OPT_THREADS,
    OPT_AUDIT_LOG,
    OPT_METRICS_LISTEN,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_IO_URING,
};

/* Parses the mount command line. 0, or 1 after --help/--version, or -1
 * after printing one error line. */
static int cli_parse(int argc, char **argv, fsd_cli *cli)
{
    static const struct option longopts[] = {
        {"key-file", required_argument, NULL, OPT_KEY_FILE},
        {"max-size", required_argument, NULL, OPT_MAX_SIZE},
        {"read-only", no_argument, NULL, OPT_READ_ONLY},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"io-uring", no_argument, NULL, OPT_IO_URING},
        {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"tls-client-ca", required_argument, NULL, OPT_TLS_CA},
        {"audit-log", required_argument, NULL, OPT_AUDIT_LOG},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+fdso:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            cli->foreground = true;
            break;
        case 'd':
            cli->debug = cli->foreground = true;
            break;
        case 's':
            cli->single_thread = true;
            break;
        case 'o': {
            /* "ro" is --read-only: the daemon refuses writes itself so that
             * query files keep working; "rw" is the default. */
            char *dup = vc_strdup(optarg), *save = NULL;
            if (dup == NULL) {
                fprintf(stderr, "vecfs: out of memory\n");
                return -1;
            }
            for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (strcmp(t, "ro") == 0) {
                    cli->read_only = true;
                    continue;
                }
                if (strcmp(t, "rw") == 0)
                    continue;
                if ((cli->fuse_opts.len && vc_buf_append(&cli->fuse_opts, ",", 1) < 0) ||
                    vc_buf_append(&cli->fuse_opts, t, strlen(t)) < 0) {
                    free(dup);
                    fprintf(stderr, "vecfs: out of memory\n");
                    return -1;
                }
            }
            free(dup);
            break;
        }
        case OPT_KEY_FILE:
            cli->key_file = optarg;
            break;
        case OPT_AUDIT_LOG:
            cli->audit_log = optarg;
            break;
        case OPT_METRICS_LISTEN:
            cli->http.listen = optarg;
            break;
        case OPT_TLS_CERT:
            cli->http.tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            cli->http.tls_key = optarg;
            break;
        case OPT_TLS_CA:
            cli->http.client_ca = optarg;
            break;
        case OPT_MAX_SIZE:
            if (parse_size(optarg, &cli->max_size) < 0 || cli->max_size == 0) {
                fprintf(stderr, "vecfs: --max-size: not a size in bytes: '%s'\n", optarg);
                return -1;
            }
            if (cli->max_size < FSD_MAX_SIZE_MIN) {
                fprintf(stderr, "vecfs: --max-size %s: below the minimum of 1 MiB\n", optarg);
                return -1;
            }
            break;
        case OPT_READ_ONLY:
            cli->read_only = true;
            break;
        case OPT_IO_URING:
            cli->io_uring = true;
            break;
        case OPT_THREADS: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 1024) {
                fprintf(stderr, "vecfs: --threads: expected 1..1024, got '%s'\n", optarg);
                return -1;
            }
            cli->threads = (unsigned)v;
            break;
        }
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("vecfs %s (libfuse %d)\n", VECFS_VERSION, fuse_version());
            return 1;
        default:
            if (optopt >= 256 || optopt == 0)
                fprintf(stderr, "vecfs: unknown or incomplete option '%s' (see vecfs --help)\n",
                        argv[optind - 1]);
            else
                fprintf(stderr, "vecfs: unknown or incomplete option '-%c' (see vecfs --help)\n",
                        optopt);
            return -1;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "vecfs: expected DATADIR MOUNTPOINT (see vecfs --help)\n");
        return -1;
    }
    cli->datadir = argv[optind];
    cli->mountpoint = argv[optind + 1];
    return 0;
}

/* Checks DATADIR and MOUNTPOINT before anything is opened. 0 or -1 after
 * writing one line into msg. */
extern char **environ;

/* A mount point that answers ENOTCONN is a FUSE mount whose daemon died:
 * nothing serves it, so detaching it (fusermount3 -u -z) loses nothing and
 * lets this start proceed. true when it is gone. */
static bool clear_dead_mount(const char *mnt)
{
    char *argv[] = {"fusermount3", "-u", "-z", (char *)mnt, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) != 0)
        return false;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return false;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return false;
    fprintf(stderr, "vecfs: mount point %s was left by a daemon that died; unmounted it\n", mnt);
    return true;
}

/* statfs of the mount point, as check_paths reads it. A daemon that served
 * through io_uring queues (--io-uring) and was killed leaves its mount
 * connected until the kernel has torn the queues down, a few milliseconds
 * after its death (ECANCELED, then ECONNABORTED, then ENOTCONN): those
 * answers are waited out for up to a second. */
static int statfs_settled(const char *mnt, struct statfs *sfs)
{
    const struct timespec pause = {0, 10 * 1000 * 1000};
    int rc = statfs(mnt, sfs);
    for (int i = 0; i < 100 && rc < 0 && (errno == ECANCELED || errno == ECONNABORTED); i++) {
        nanosleep(&pause, NULL);
        rc = statfs(mnt, sfs);
    }
    return rc;
}

static int check_paths(const fsd_cli *cli, char *msg, size_t msglen)
{
    struct stat st, pst;
    if (stat(cli->datadir, &st) < 0) {
        snprintf(msg, msglen, "DATADIR %s: %s", cli->datadir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(msg, msglen, "DATADIR %s: not a directory", cli->datadir);
        return -1;
    }
    /* An empty DATADIR becomes a new store; anything else must be one
     * already (LMDB's data.mdb), or the store would be created among
     * someone's files (a mistyped path). */
    char probe[PATH_MAX];
    if (snprintf(probe, sizeof probe, "%s/data.mdb", cli->datadir) >= (int)sizeof probe) {
        snprintf(msg, msglen, "DATADIR %s: path too long", cli->datadir);
        return -1;
    }
    if (access(probe, F_OK) != 0) {
        DIR *dir = opendir(cli->datadir);
        if (dir == NULL) {
            snprintf(msg, msglen, "DATADIR %s: %s", cli->datadir, strerror(errno));
            return -1;
        }
        bool empty = true;
        for (struct dirent *e; empty && (e = readdir(dir)) != NULL;)
            empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
        closedir(dir);
        if (!empty) {
            snprintf(msg, msglen, "DATADIR %s is not empty and is not a vecfs store", cli->datadir);
            return -1;
        }
    }
    /* statfs always asks the filesystem (stat may answer from the
     * kernel's attribute cache), so a dead daemon's mount shows here. */
    struct statfs sfs;
    if (statfs_settled(cli->mountpoint, &sfs) < 0 && errno == ENOTCONN)
        (void)clear_dead_mount(cli->mountpoint);
    if (stat(cli->mountpoint, &st) < 0) {
        if (errno == ENOTCONN)
            snprintf(msg, msglen,
                     "mount point %s is a disconnected FUSE mount (run fusermount3 -u %s)",
                     cli->mountpoint, cli->mountpoint);
        else
            snprintf(msg, msglen, "mount point %s: %s", cli->mountpoint, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(msg, msglen, "mount point %s: not a directory", cli->mountpoint);
        return -1;
    }
    char parent[PATH_MAX];
    if (snprintf(parent, sizeof parent, "%s/..", cli->mountpoint) >= (int)sizeof parent ||
        stat(parent, &pst) < 0) {
        snprintf(msg, msglen, "mount point %s: cannot stat its parent", cli->mountpoint);
        return -1;
    }
    if (st.st_dev != pst.st_dev || st.st_ino == pst.st_ino) {
        snprintf(msg, msglen, "mount point %s is in use (something is already mounted there)",
                 cli->mountpoint);
        return -1;
    }
    return 0;
}

/* Writes path, made absolute against the cwd, into out. NULL stays NULL.
 * 0 or -ENAMETOOLONG. */
static int absolute_path(const char *path, char *out, size_t cap)
{
    if (path == NULL)
        return 0;
    if (path[0] == '/')
        return snprintf(out, cap, "%s", path) < (int)cap ? 0 : -ENAMETOOLONG;
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return -ENAMETOOLONG;
    return snprintf(out, cap, "%s/%s", cwd, path) < (int)cap ? 0 : -ENAMETOOLONG;
}

/* vecfs [options] DATADIR MOUNTPOINT: returns the exit code. */
static int cmd_mount(int argc, char **argv)
{
    fsd_cli cli = {0};
    char msg[512];
    if (fsd_rados_take(&argc, argv, &cli.rados, msg, sizeof msg) < 0) {
        fprintf(stderr, "vecfs: %s\n", msg);
        return 2;
    }
    int rc = cli_parse(argc, argv, &cli);
    if (rc != 0) {
        vc_buf_release(&cli.fuse_opts);
        return rc > 0 ? 0 : 2;
    }
    if (check_paths(&cli, msg, sizeof msg) < 0) {
        fprintf(stderr, "vecfs: %s\n", msg);
        vc_buf_release(&cli.fuse_opts);
        return 1;
    }
    /* The daemon leaves the caller's cwd: make both paths absolute. */
    static char datadir[PATH_MAX], mountpoint[PATH_MAX];
    if (realpath(cli.datadir, datadir) == NULL || realpath(cli.mountpoint, mountpoint) == NULL) {
        fprintf(stderr, "vecfs: cannot resolve %s or %s: %s\n", cli.datadir, cli.mountpoint,
                strerror(errno));
        vc_buf_release(&cli.fuse_opts);
        return 1;
    }
    cli.datadir = datadir;
    cli.mountpoint = mountpoint;
    /* Files named on the command line are opened after the daemon has
     * left the caller's cwd: make them absolute now. */
    const char **files[] = {&cli.key_file,     &cli.audit_log,      &cli.http.tls_cert,
                            &cli.http.tls_key, &cli.http.client_ca, &cli.rados.conf};
    static char abs_paths[6][PATH_MAX];
    for (size_t i = 0; i < 6; i++) {
        if (absolute_path(*files[i], abs_paths[i], sizeof abs_paths[i]) < 0) {
            fprintf(stderr, "vecfs: path %s is too long\n", *files[i]);
            vc_buf_release(&cli.fuse_opts);
            return 1;
        }
        if (*files[i] != NULL)
            *files[i] = abs_paths[i];
    }
    fsd_log_setup(cli.debug ? FSD_LOG_DEBUG : cli.foreground ? FSD_LOG_INFO : FSD_LOG_WARN, false);
    if (!cli.debug)
        fsd_log_hold(); /* until mounted: see fsd_serve() */
    if (cli.foreground) {
        rc = fsd_serve(&cli, -1);
        vc_buf_release(&cli.fuse_opts);
        return rc;
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        fprintf(stderr, "vecfs: pipe: %s\n", strerror(errno));
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "vecfs: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        close(pfd[0]);
        setsid();
        if (chdir("/") < 0)
            _exit(1);
        _exit(fsd_serve(&cli, pfd[1]));
    }
    close(pfd[1]);
    char reply[600];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof reply - 1 && ((n = read(pfd[0], reply + got, sizeof reply - 1 - got)) > 0 ||
                                      (n < 0 && errno == EINTR)))
        if (n > 0)
            got += (size_t)n;
    reply[got] = '\0';
    close(pfd[0]);
    vc_buf_release(&cli.fuse_opts);
    if (got == 2 && memcmp(reply, "ok", 2) == 0)
        return 0;
    fprintf(stderr, "vecfs: %s\n", got ? reply : "the daemon exited before mounting");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "check") == 0)
        return fsd_cmd_check(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "backup") == 0)
        return fsd_cmd_backup(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "restore") == 0)
        return fsd_cmd_restore(argc - 1, argv + 1);
    return cmd_mount(argc, argv);
}
