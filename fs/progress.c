/*
 * progress.c — see progress.h.
 */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Seconds from a to b. */
static double seconds(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Quiet for work done within this long, off a terminal. */
#define PLAIN_AFTER_SECONDS 2.0
/* Terminal redraws at most this often. */
#define TTY_EVERY_SECONDS 0.2

void fsd_progress_init(fsd_progress *p, const char *command, const char *unit)
{
    *p = (fsd_progress){.command = command, .unit = unit, .tty = isatty(STDERR_FILENO) == 1};
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    p->last = p->start;
}

void fsd_progress_report(void *ctx, const char *what, uint64_t done, uint64_t total)
{
    fsd_progress *p = ctx;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (p->what == NULL || strcmp(p->what, what) != 0) {
        /* A new piece of work: its own rate and tenths. */
        fsd_progress_end(p);
        p->what = what;
        p->start = now;
        p->last = now;
        p->tenth = 0;
        p->finished = false;
    }
    bool finished = done >= total;
    if (p->finished)
        return;
    unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
    double elapsed = seconds(&p->start, &now);
    if (p->tty) {
        if (!finished && seconds(&p->last, &now) < TTY_EVERY_SECONDS && p->on_line)
            return;
    } else {
        if (elapsed < PLAIN_AFTER_SECONDS || pct / 10 <= p->tenth)
            return;
        p->tenth = pct / 10;
    }
    p->last = now;
    p->finished = finished;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    fprintf(stderr, "%svecfs %s: %s %u%% (%llu of %llu %s, %.0f/s)%s", p->tty ? "\r" : "",
            p->command, what, pct, (unsigned long long)done, (unsigned long long)total, p->unit,
            rate, p->tty ? "\033[K" : "\n");
    fflush(stderr);
    p->on_line = p->tty;
}

void fsd_progress_end(fsd_progress *p)
{
    if (p->on_line)
        fputc('\n', stderr);
    p->on_line = false;
}
