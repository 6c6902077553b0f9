/*
 * backup.c — hot backup of an open store (st_store_backup): a compacted
 * copy of the LMDB environment as of one point in time.
 *
 * Invariants
 *   1. The copy is one read txn's view (mdb_env_copy2): writers keep
 *      running, and the copy is consistent.
 *   2. The backup holds only data: LMDB's lock file is removed and
 *      snapshots are not copied (the restored store rebuilds them).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

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
