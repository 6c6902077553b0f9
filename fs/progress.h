/*
 * progress.h — the progress of a long command (check, backup, restore) on
 * stderr, fed by the store's st_options.progress callback or by a caller
 * that counts itself.
 *
 * On a terminal: one line rewritten in place, at most five times a second,
 *   vecfs check: checking 45% (123456 of 274000 vectors, 80123/s)
 * ended with a newline by fsd_progress_end. Otherwise (a log, a pipe):
 * nothing for work done within two seconds, then a plain line at each
 * tenth, so scripts and tests of small stores see no extra lines.
 */
#ifndef VECFS_FS_PROGRESS_H
#define VECFS_FS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct fsd_progress {
    const char *command; /* "check", "backup", "restore" */
    const char *unit;    /* what done and total count: "vectors", "bytes" */
    bool tty;            /* stderr is a terminal */
    bool on_line;        /* a terminal line is showing (needs a newline) */
    const char *what;    /* the piece of work being reported */
    struct timespec start, last;
    unsigned tenth; /* last tenth reported in plain lines */
    bool finished;  /* the piece's 100 % was shown: later reports are repeats */
} fsd_progress;

/* Starts reporting for command; unit names what is counted. */
void fsd_progress_init(fsd_progress *p, const char *command, const char *unit);

/* Reports done of total for the piece of work `what` (ctx is the
 * fsd_progress). The signature of st_options.progress. */
void fsd_progress_report(void *ctx, const char *what, uint64_t done, uint64_t total);

/* Ends the terminal line, if one is showing. */
void fsd_progress_end(fsd_progress *p);

#endif /* VECFS_FS_PROGRESS_H */
