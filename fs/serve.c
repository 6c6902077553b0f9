/*
 * serve.c — one mount from start to unmount: the daemon state, the FUSE
 * session and its loop, the metrics endpoint, and the one line that tells
 * the waiting parent (or the terminal) how the start went.
 *
 * Mount sequence (states of one run)
 *   PARSE (cli.c) -> (daemon: FORK, the parent waits on a pipe) -> OPEN
 *   (store) -> SESSION (fuse_session_new) -> MOUNTED (fuse_session_mount;
 *   the parent is told "ok" and exits 0) -> SERVING (multithreaded loop)
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
#include "serve.h"

#include "fsd.h"

#include "audit.h"
#include "dev_read.h"
#include "uring.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* libfuse's own messages: the last error is kept so a failed start can
 * report it in vecfs' one line; everything goes to the log. */
static char fuse_last_error[256];

/* libfuse's log function: see fuse_last_error. */
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

/* true if the comma-joined options opts hold the option name. */
static bool fuse_opt_has(const vc_buf *opts, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = opts->len ? opts->p : ""; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        p += len + (p[len] == ',');
    }
    return false;
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

static void reopen_audit_log(int sig)
{
    (void)sig;
    fsd_audit_reopen();
}

int fsd_serve(fsd_cli *cli, int report_fd)
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
        .single_user = !fuse_opt_has(&cli->fuse_opts, "allow_other") &&
                       !fuse_opt_has(&cli->fuse_opts, "allow_root"),
        .threads = cli->threads,
        .rados = cli->rados.conf ? &cli->rados : NULL,
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
     * an ignored signal ignored; vecfs promises a clean unmount on SIGINT
     * and SIGTERM however it was started. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (fuse_set_signal_handlers(se) != 0) {
        snprintf(msg, sizeof msg, "cannot install signal handlers");
        goto out;
    }
    handlers = true;
    /* SIGHUP reopens the audit log after logrotate moved it, as syslog
     * daemons do, instead of libfuse's unmount. */
    struct sigaction hup = {.sa_handler = reopen_audit_log, .sa_flags = SA_RESTART};
    sigemptyset(&hup.sa_mask);
    sigaction(SIGHUP, &hup, NULL);
    fuse_last_error[0] = '\0';
    if (fuse_session_mount(se, cli->mountpoint) != 0) {
        snprintf(msg, sizeof msg, "cannot mount on %s: %s", cli->mountpoint,
                 fuse_last_error[0] ? fuse_last_error : "in use, or no permission for /dev/fuse");
        goto out;
    }
    mounted = true;
    /* When nothing is in flight the worker that answered polls for the
     * next request before it sleeps (dev_read.c); without it the loop
     * reads as libfuse does, only slower per request. */
    unsigned threads = cli->threads ? cli->threads : 16;
    rc = -ENOTSUP;
    if (cli->io_uring) {
        /* Requests through io_uring queues when the kernel offers them
         * (uring.c); /dev/fuse as below otherwise. */
        rc = fsd_uring_install(se, threads);
        if (rc < 0)
            fsd_log(FSD_LOG_WARN,
                    "--io-uring: cannot set up the queues: %s; requests go "
                    "through /dev/fuse",
                    strerror(-rc));
    }
    if (rc < 0)
        rc = fsd_dev_read_install(se, NULL);
    if (rc < 0)
        fsd_log(FSD_LOG_WARN, "requests are read without polling: %s", strerror(-rc));
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
        fuse_loop_cfg_set_max_threads(lc, threads);
        fuse_loop_cfg_set_idle_threads(lc, threads);
        fuse_loop_cfg_set_clone_fd(lc, 0);
        rc = fuse_session_loop_mt(se, lc);
    }
    code = rc == 0 || rc == SIGINT || rc == SIGTERM ? 0 : 1;
    fsd_log(FSD_LOG_INFO, "unmounting %s", cli->mountpoint);
out:
    fsd_http_set_ready(http, false);
    fsd_uring_stop(); /* its threads run handlers too (invariant 3) */
    if (mounted)
        fuse_session_unmount(se);
    if (handlers) {
        fuse_remove_signal_handlers(se);
        signal(SIGHUP, SIG_IGN); /* the audit log closes below */
    }
    if (se != NULL)
        fuse_session_destroy(se);
    fsd_dev_read_release();
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
