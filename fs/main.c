/*
 * main.c — the `vecfs` command: mount, check, backup, restore.
 *
 * Mount sequence (states of one run)
 *   PARSE -> (daemon: FORK, the parent waits on a pipe) -> OPEN (store)
 *   -> SESSION (fuse_session_new) -> MOUNTED (fuse_session_mount; the
 *   parent is told "ok" and exits 0) -> SERVING (multithreaded loop)
 *   -> UNMOUNTING (signal or fusermount3 -u ends the loop) -> CLOSED
 *   (queries dropped, store closed with a final snapshot).
 *   Any failure before MOUNTED sends one line to the parent (or prints it
 *   in the foreground) and exits 1 after undoing what was done.
 *
 * Invariants
 *   1. The store is opened in the process that serves it: with -f that is
 *      this process, otherwise the forked child. LMDB environments must not
 *      cross fork().
 *   2. Nothing is printed to stdout; errors at start are exactly one line on
 *      stderr ("vecfs: ...") and a non-zero exit status.
 *   3. The store is closed only after the session loop has returned and the
 *      session is destroyed, so no handler can run against a closed store.
 */
#include "fsd.h"

#include "audit.h"
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* Smallest --max-size: below it not even an empty store and its first
 * snapshot fit. */
#define FSD_MAX_SIZE_MIN ((uint64_t)1 << 20)

typedef struct fsd_cli {
    const char *datadir;
    const char *mountpoint;
    const char *key_file;
    const char *audit_log;
    fsd_http_params http;
    uint64_t max_size;
    bool read_only;
    bool foreground;
    bool debug;
    bool single_thread;
    unsigned threads;
    vc_buf fuse_opts; /* comma-joined -o options */
} fsd_cli;

static void usage(FILE *f)
{
    fprintf(f, "usage: vecfs [options] DATADIR MOUNTPOINT   mount a vecfs store\n"
               "       vecfs check DATADIR [--key-file F]   verify the store, non-zero on damage\n"
               "       vecfs backup DATADIR OUT             hot, consistent backup\n"
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
               "  --help, --version\n");
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return -EINVAL;
    uint64_t mul = 1;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mul = 1ULL << 10;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1ULL << 20;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1ULL << 30;
        end++;
        break;
    case 't':
    case 'T':
        mul = 1ULL << 40;
        end++;
        break;
    default:
        return -EINVAL;
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
            char *dup = strdup(optarg), *save = NULL;
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

/* libfuse's own messages: the last error is kept so a failed start can
 * report it in vecfs' one line; everything goes to the log. */
static char fuse_last_error[256];

static void fuse_log_sink(enum fuse_log_level level, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    if (level <= FUSE_LOG_ERR) {
        /* libfuse writes one message in several pieces: join them. */
        size_t have = strlen(fuse_last_error);
        snprintf(fuse_last_error + have, sizeof fuse_last_error - have, "%s", msg);
    }
    fsd_log(FSD_LOG_DEBUG, "libfuse: %s", msg);
}

/* Builds the argument vector libfuse parses: argv0, -o opts. */
static int fuse_args_build(const fsd_cli *cli, struct fuse_args *args)
{
    if (fuse_opt_add_arg(args, "vecfs") < 0)
        return -ENOMEM;
    if (cli->debug && fuse_opt_add_arg(args, "-d") < 0)
        return -ENOMEM;
    vc_buf o = VC_BUF_INIT;
    /* default_permissions: the kernel enforces the persisted modes and
     * owners (SPEC §5); the daemon adds only what the kernel cannot know
     * (read permission for queries, write permission for imports). */
    int rc =
        vc_buf_printf(&o, "fsname=vecfs,subtype=vecfs,default_permissions%s%s",
                      cli->fuse_opts.len ? "," : "", cli->fuse_opts.len ? cli->fuse_opts.p : "");
    if (rc == 0 && (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, o.p) < 0))
        rc = -ENOMEM;
    vc_buf_release(&o);
    return rc;
}

/* Runs the daemon from OPEN to CLOSED. report_fd (or -1) receives "ok" or
 * the error line once the mount exists or failed. Returns the exit code. */
static int serve(fsd_cli *cli, int report_fd)
{
    char msg[512] = "";
    int code = 1;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fuse_session *se = NULL;
    struct fuse_loop_config *lc = NULL;
    bool handlers = false, mounted = false;
    fsd *d = NULL;
    fsd_http *http = NULL;

    if (cli->audit_log != NULL) {
        int arc = fsd_audit_open(cli->audit_log);
        if (arc < 0) {
            snprintf(msg, sizeof msg, "audit log %s: %s", cli->audit_log, strerror(-arc));
            goto out;
        }
    }
    fsd_open_params p = {
        .datadir = cli->datadir,
        .key_file = cli->key_file,
        .max_size = cli->max_size,
        .read_only = cli->read_only,
        .threads = cli->threads,
    };
    int rc = fsd_create(&p, &d, msg, sizeof msg);
    if (rc < 0)
        goto out;
    if (cli->http.listen != NULL) {
        rc = fsd_http_start(d, &cli->http, &http, msg, sizeof msg);
        if (rc < 0)
            goto out;
    } else if (cli->http.tls_cert || cli->http.tls_key || cli->http.client_ca) {
        snprintf(msg, sizeof msg, "--tls-* options need --metrics-listen");
        goto out;
    }
    if (fuse_args_build(cli, &args) < 0) {
        snprintf(msg, sizeof msg, "out of memory");
        goto out;
    }
    fuse_set_log_func(fuse_log_sink);
    fuse_last_error[0] = '\0';
    se = fuse_session_new(&args, &fsd_ll_ops, sizeof fsd_ll_ops, d);
    if (se == NULL) {
        snprintf(msg, sizeof msg, "bad FUSE option in '-o %s'%s%s",
                 cli->fuse_opts.len ? cli->fuse_opts.p : "", fuse_last_error[0] ? ": " : "",
                 fuse_last_error);
        goto out;
    }
    d->se = se;
    /* A shell starts background jobs with SIGINT ignored and libfuse keeps
     * an ignored signal ignored; vecfs promises a clean unmount on SIGINT,
     * SIGTERM and SIGHUP however it was started. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (fuse_set_signal_handlers(se) != 0) {
        snprintf(msg, sizeof msg, "cannot install signal handlers");
        goto out;
    }
    handlers = true;
    fuse_last_error[0] = '\0';
    if (fuse_session_mount(se, cli->mountpoint) != 0) {
        snprintf(msg, sizeof msg, "cannot mount on %s: %s", cli->mountpoint,
                 fuse_last_error[0] ? fuse_last_error : "in use, or no permission for /dev/fuse");
        goto out;
    }
    mounted = true;
    fsd_http_set_ready(http, true);
    fsd_log(FSD_LOG_INFO, "mounted %s on %s%s", cli->datadir, cli->mountpoint,
            cli->read_only ? " (read-only)" : "");
    if (report_fd >= 0) {
        ssize_t w = write(report_fd, "ok", 2);
        (void)w;
        close(report_fd);
        report_fd = -1;
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, STDIN_FILENO);
            dup2(nul, STDOUT_FILENO);
            dup2(nul, STDERR_FILENO);
            if (nul > STDERR_FILENO)
                close(nul);
        }
        fsd_log_setup(FSD_LOG_INFO, true);
    }
    fsd_log_release(true); /* what the start logged, now that it worked */
    if (cli->single_thread) {
        rc = fuse_session_loop(se);
    } else {
        lc = fuse_loop_cfg_create();
        if (lc == NULL) {
            fsd_log(FSD_LOG_ERROR, "out of memory for the loop config");
            goto out;
        }
        unsigned threads = cli->threads ? cli->threads : 16;
        fuse_loop_cfg_set_max_threads(lc, threads);
        fuse_loop_cfg_set_idle_threads(lc, threads);
        fuse_loop_cfg_set_clone_fd(lc, 0);
        rc = fuse_session_loop_mt(se, lc);
    }
    code = rc == 0 || rc == SIGINT || rc == SIGTERM || rc == SIGHUP ? 0 : 1;
    fsd_log(FSD_LOG_INFO, "unmounting %s", cli->mountpoint);
out:
    fsd_http_set_ready(http, false);
    if (mounted)
        fuse_session_unmount(se);
    if (handlers)
        fuse_remove_signal_handlers(se);
    if (se != NULL)
        fuse_session_destroy(se);
    fuse_loop_cfg_destroy(lc);
    fuse_opt_free_args(&args);
    fsd_http_stop(http); /* before the store closes: scrapes render from it */
    if (d != NULL) {
        int crc = fsd_destroy(d);
        if (crc < 0) {
            fsd_log(FSD_LOG_ERROR, "closing the store: %s", strerror(-crc));
            code = 1;
        } else if (mounted) {
            fsd_log(FSD_LOG_INFO, "store closed");
        }
    }
    /* A failed start is one line (invariant 2): drop what it logged. */
    fsd_log_release(msg[0] == '\0');
    if (msg[0] != '\0') {
        if (report_fd >= 0) {
            ssize_t w = write(report_fd, msg, strlen(msg));
            (void)w;
        } else {
            fprintf(stderr, "vecfs: %s\n", msg);
        }
    }
    if (report_fd >= 0)
        close(report_fd);
    fsd_audit_close();
    return msg[0] != '\0' ? 1 : code;
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

static int cmd_mount(int argc, char **argv)
{
    fsd_cli cli = {0};
    int rc = cli_parse(argc, argv, &cli);
    if (rc != 0) {
        vc_buf_release(&cli.fuse_opts);
        return rc > 0 ? 0 : 2;
    }
    char msg[512];
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
    const char **files[] = {&cli.key_file, &cli.audit_log, &cli.http.tls_cert, &cli.http.tls_key,
                            &cli.http.client_ca};
    static char abs_paths[5][PATH_MAX];
    for (size_t i = 0; i < 5; i++) {
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
        fsd_log_hold(); /* until mounted: see serve() */
    if (cli.foreground) {
        rc = serve(&cli, -1);
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
        _exit(serve(&cli, pfd[1]));
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

/* ------------------------------------------------------------------ */
/* The daemon state                                                     */
/* ------------------------------------------------------------------ */

static void store_log(void *ctx, st_log_level level, const char *msg)
{
    (void)ctx;
    fsd_log((fsd_log_level)level, "store: %s", msg);
}

int fsd_create(const fsd_open_params *p, fsd **out, char *msg, size_t msglen)
{
    *out = NULL;
    fsd *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    clock_gettime(CLOCK_REALTIME, &d->started);
    d->read_only = p->read_only;
    d->vf_nbuckets = 4096;
    d->vf_buckets = calloc(d->vf_nbuckets, sizeof *d->vf_buckets);
    int rc = d->vf_buckets == NULL ? -ENOMEM : 0;
    if (rc == 0 && pthread_mutex_init(&d->vf_lock, NULL) != 0)
        rc = -ENOMEM;
    if (rc == 0 && pthread_mutex_init(&d->cfg_lock, NULL) != 0)
        rc = -ENOMEM;
    if (rc == 0 && pthread_mutex_init(&d->fh_lock, NULL) != 0)
        rc = -ENOMEM;
    if (rc == 0)
        rc = fsd_inodes_create(&d->inodes);
    if (rc == 0)
        rc = fsd_queries_create(FSD_QUERY_IDLE_SECONDS, &d->queries);
    if (rc == 0)
        rc = fsd_imports_create(&d->imports);
    if (rc < 0) {
        snprintf(msg, msglen, "out of memory");
        goto fail;
    }
    struct stat ds;
    if (stat(p->datadir, &ds) < 0) {
        rc = -errno;
        snprintf(msg, msglen, "DATADIR %s: %s", p->datadir, strerror(errno));
        goto fail;
    }
    fsd_dir_root_init(&ds);

    st_options o;
    st_options_default(&o);
    o.read_only = p->read_only;
    o.max_size = p->max_size;
    o.log = store_log;
    o.log_level = ST_LOG_INFO;
    o.errbuf = msg;
    o.errbuf_len = msglen;
    uint8_t *key = NULL;
    size_t klen = 0;
    bool pass = false;
    if (p->key_file != NULL) {
        rc = st_key_load(p->key_file, &key, &klen, &pass);
        if (rc < 0) {
            snprintf(msg, msglen, "key file %s: %s", p->key_file, strerror(-rc));
            goto fail;
        }
        o.key = key;
        o.key_len = klen;
        o.key_is_passphrase = pass;
    }
    msg[0] = '\0';
    rc = st_store_open(p->datadir, &o, &d->store);
    st_key_free(key, klen);
    if (rc < 0) {
        if (msg[0] == '\0') {
            if (rc == -EBUSY)
                snprintf(msg, msglen, "DATADIR %s is in use by another vecfs", p->datadir);
            else if (rc == -EKEYREJECTED)
                snprintf(msg, msglen, "wrong key for %s", p->datadir);
            else if (rc == -EPROTO)
                snprintf(msg, msglen, "DATADIR %s holds a store of another format version",
                         p->datadir);
            else
                snprintf(msg, msglen, "cannot open the store in %s: %s", p->datadir, strerror(-rc));
        }
        goto fail;
    }
    *out = d;
    return 0;
fail:
    d->store = NULL;
    (void)fsd_destroy(d);
    return rc;
}

int fsd_destroy(fsd *d)
{
    if (d == NULL)
        return 0;
    if (d->vf_buckets != NULL)
        fsd_fh_discard_all(d);
    fsd_queries_free(d->queries);
    int rc = st_store_close(d->store);
    fsd_imports_free(d->imports);
    fsd_inodes_free(d->inodes);
    if (d->vf_buckets != NULL) {
        pthread_mutex_destroy(&d->vf_lock);
        pthread_mutex_destroy(&d->cfg_lock);
        pthread_mutex_destroy(&d->fh_lock);
    }
    for (size_t i = 0; i < d->cfg_nhidden; i++)
        free(d->cfg_hidden[i]);
    free(d->cfg_hidden);
    free(d->vf_buckets);
    free(d);
    return rc;
}
