/*
 * serve.h — running one mount from the parsed command line (serve.c),
 * for cli.c.
 */
#ifndef VECFS_FS_SERVE_H
#define VECFS_FS_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "http.h"
#include "store.h"

/* The mount command line, as cli.c parsed it. */
typedef struct fsd_cli {
    const char *datadir;    /* absolute */
    const char *mountpoint; /* absolute */
    const char *key_file;   /* absolute, or NULL */
    const char *audit_log;  /* absolute, or NULL */
    fsd_http_params http;
    uint64_t max_size;
    bool read_only;
    bool foreground;
    bool debug;
    bool single_thread;
    bool io_uring; /* --io-uring: requests through io_uring queues */
    unsigned threads;
    vc_buf fuse_opts;       /* comma-joined -o options */
    st_rados_options rados; /* conf NULL: the embedded mode */
} fsd_cli;

/* Runs the daemon from OPEN to CLOSED (see serve.c). report_fd (or -1)
 * receives "ok" or the error line once the mount exists or failed; it is
 * closed. Returns the process exit code. */
int fsd_serve(fsd_cli *cli, int report_fd);

#endif /* VECFS_FS_SERVE_H */
