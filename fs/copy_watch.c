/*
 * copy_watch.c — see copy_watch.h.
 */
#include "copy_watch.h"

#include <sys/stat.h>
#include <time.h>

static const char COPYING[] = "copying";

/* The size of path so far (0 while it does not exist). */
static uint64_t size_now(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 ? (uint64_t)s.st_size : 0;
}

static void *watch(void *arg)
{
    fsd_copy_watch *w = arg;
    const struct timespec pause = {0, 200 * 1000 * 1000};
    while (!atomic_load(&w->stop)) {
        uint64_t n = size_now(w->path);
        /* The expected size is an estimate: the copy is done only when
         * its writer says so. */
        if (n >= w->total)
            n = w->total ? w->total - 1 : 0;
        fsd_progress_report(w->progress, COPYING, n, w->total);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

void fsd_copy_watch_start(fsd_copy_watch *w, const char *path, uint64_t total,
                          fsd_progress *progress)
{
    *w = (fsd_copy_watch){.path = path, .total = total, .progress = progress};
    atomic_init(&w->stop, false);
    w->running = pthread_create(&w->thread, NULL, watch, w) == 0;
}

void fsd_copy_watch_stop(fsd_copy_watch *w, bool copied)
{
    if (w->running) {
        atomic_store(&w->stop, true);
        pthread_join(w->thread, NULL);
        w->running = false;
    }
    if (copied) {
        uint64_t n = size_now(w->path);
        fsd_progress_report(w->progress, COPYING, n, n);
    }
    fsd_progress_end(w->progress);
}
