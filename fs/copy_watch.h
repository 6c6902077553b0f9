/*
 * copy_watch.h — the progress of a copy that another party writes (LMDB's
 * mdb_env_copy2 in a backup, cp or tar in a restore): a thread looks at
 * the size of the file being written five times a second and reports it
 * against the expected size through fsd_progress.
 */
#ifndef VECFS_FS_COPY_WATCH_H
#define VECFS_FS_COPY_WATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "progress.h"

typedef struct fsd_copy_watch {
    const char *path; /* the file being written */
    uint64_t total;   /* its expected final size */
    fsd_progress *progress;
    atomic_bool stop;
    bool running;
    pthread_t thread;
} fsd_copy_watch;

/* Starts watching path grow towards total bytes. Without a thread (none
 * could start) the copy simply runs unreported. */
void fsd_copy_watch_start(fsd_copy_watch *w, const char *path, uint64_t total,
                          fsd_progress *progress);

/* Stops the thread; when the copy succeeded (copied), reports its final
 * size as all of it. */
void fsd_copy_watch_stop(fsd_copy_watch *w, bool copied);

#endif /* VECFS_FS_COPY_WATCH_H */
