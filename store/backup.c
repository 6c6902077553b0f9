/*
 * backup.c — hot backup of an open store (st_store_backup): a compacted
 * copy of the LMDB environment as of one point in time.
 *
 * Invariants
 *   1. The copy is one read txn's view (mdb_env_copy2): writers keep
 *      running, and the copy is consistent.
 *   2. The backup holds only data: LMDB's lock file is removed and
 *      snapshots are not copied (the restored store rebuilds them).
 *   3. A checkpoint copy (st_store_ckpt_copy, the RADOS mode) also holds
 *      the snapshots, linked under snap_mu before the LMDB copy: no
 *      snapshot is written and no op log trimmed in between, so each
 *      snapshot is at or before the copy and the copy's op log replays
 *      it forward (docs/durability.md).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Hard links of the snapshot files of st->dir in outdir (a snapshot is
 * replaced by rename, so a link keeps the bytes as they are now). */
static int snapshots_link(st_store *st, const char *outdir)
{
    DIR *d = opendir(st->dir);
    if (!d)
        return -errno;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, "snap-", 5) != 0 || l < 4 || strcmp(de->d_name + l - 4, ".vfs"))
            continue;
        char from[4096], to[4096];
        if (snprintf(from, sizeof(from), "%s/%s", st->dir, de->d_name) >= (int)sizeof(from) ||
            snprintf(to, sizeof(to), "%s/%s", outdir, de->d_name) >= (int)sizeof(to))
            rc = -ENAMETOOLONG;
        else
            rc = link(from, to) ? -errno : 0;
    }
    closedir(d);
    return rc;
}

int st_store_ckpt_copy(st_store *st, const char *outdir)
{
    pthread_mutex_lock(&st->snap_mu);
    int rc = snapshots_link(st, outdir);
    if (rc == 0)
        rc = st_mdb_err(mdb_env_copy2(st->env, outdir, MDB_CP_COMPACT));
    pthread_mutex_unlock(&st->snap_mu);
    return rc;
}

int st_store_backup(st_store *st, const char *outdir)
{
    if (!st || !outdir)
        return -EINVAL;
    DIR *d = opendir(outdir);
    if (!d)
        return -errno;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            rc = -ENOTEMPTY;
    closedir(d);
    if (rc)
        return rc;
    rc = st_mdb_err(mdb_env_copy2(st->env, outdir, MDB_CP_COMPACT));
    if (rc == 0) {
        /* The copy carries the FORMAT/KEYCHECK records; drop LMDB's lock
         * file so the backup is only the data. */
        char path[4096];
        snprintf(path, sizeof(path), "%s/lock.mdb", outdir);
        unlink(path);
    }
    return rc;
}
