/*
 * rados_ckpt_node.c — what a node does with checkpoints (docs/scale-out.md
 * §6, §7): writing one of its caught-up local state (holding the lease),
 * publishing it with the log's trim and dropping the checkpoints older
 * than the newest two; and, at start with an empty cache, fetching the
 * newest one that passes its CRCs into CACHEDIR.
 *
 * A checkpoint, in order:
 *     lease -> snapshots written -> (under the node's apply lock, so the
 *     copy is at applied = S) snapshots linked + compacted LMDB copy into
 *     CACHEDIR/ckpt.out -> pieces, manifest -> publish (ckpt = S, trim,
 *     entries below trim removed, one operation) -> old ones removed ->
 *     the blobs of the trimmed entries removed -> orphan blobs older than
 *     the age bound removed (rados_orphans.c)
 *
 * Invariants
 *   1. Publishing is guarded by vecfs.head's ckpt and trim (rados_client.c),
 *      not by the lease: two writers (a lapsed lease) can both upload, and
 *      only a checkpoint newer than the published one is published. The
 *      lease only keeps nodes from doing the same work.
 *   2. Entries are trimmed only together with publishing a checkpoint at
 *      or above them: every seq is in the log or in the newest checkpoint.
 *   3. A writer killed at any step leaves the published checkpoint and the
 *      log as they were (at worst unpublished pieces, overwritten by the
 *      next writer of that seq).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define CKPT_OUT "ckpt.out"
/* Checkpoints kept: the newest and the one before, its fallback. */
#define CKPT_KEEP 2u

/* Removes the plain files of dir and dir itself (ignoring what is not
 * there): the local copy after its upload, or a leftover of a crash. */
static void dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[4096];
        if (de->d_name[0] == '.')
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) < (int)sizeof(path))
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Drops the checkpoints older than the newest CKPT_KEEP. */
static void ckpt_prune(st_store *st, st_rados *r)
{
    uint64_t seqs[CKPT_KEEP + 8];
    size_t n;
    if (st_rados_ckpt_list(r, seqs, CKPT_KEEP + 8, &n) != 0)
        return;
    for (size_t i = CKPT_KEEP; i < n; i++) {
        int rc = st_ckpt_remove(r, seqs[i]);
        if (rc == 0)
            rc = st_rados_ckpt_forget(r, seqs[i]);
        if (rc)
            st_log(st, ST_LOG_WARN, "rados: cannot remove checkpoint %" PRIu64 ": %s", seqs[i],
                   strerror(-rc));
    }
}

/* st_rados_blob_refs' callback of blobs_trim: the objects, then the
 * record (a crash between them leaves the record, tried again later). */
static int blob_drop(void *ctx, uint64_t seq, const st_rados_blob_ref *ref)
{
    st_rados *r = ctx;
    int rc = st_blob_remove(r, ref->id, ref->len);
    return rc ? rc : st_rados_blob_ref_forget(r, seq);
}

/* Removes the blobs of the entries the trim removed (scale-out.md §6):
 * no node reads an entry below trim any more. */
static void blobs_trim(st_store *st, st_rados *r)
{
    st_rados_head h;
    int rc = st_rados_head_read(r, &h);
    if (rc == 0)
        rc = st_rados_blob_refs(r, h.trim, blob_drop, r);
    if (rc)
        st_log(st, ST_LOG_WARN, "rados: cannot remove the blobs of trimmed entries: %s",
               strerror(-rc));
}

int st_ckpt_take(st_store *st, st_rados *r, const st_ckpt_take_args *a)
{
    int rc = st_rados_lease(r, a->cookie, a->lease_s);
    if (rc)
        return rc; /* -EBUSY: another node writes them */
    /* Fresh snapshots so that a joining node loads indexes instead of
     * building them; a failure only costs the joiner a rebuild. */
    int src = st_store_snapshot(st, NULL);
    if (src)
        st_log(st, ST_LOG_WARN, "rados: checkpoint without fresh snapshots: %s", strerror(-src));
    char out[4096];
    snprintf(out, sizeof(out), "%s/" CKPT_OUT, st->dir);
    dir_remove(out);
    if (mkdir(out, 0700))
        return -errno;
    pthread_mutex_lock(a->mu);
    uint64_t seq = *a->applied;
    rc = st_store_ckpt_copy(st, out);
    pthread_mutex_unlock(a->mu);
    uint64_t bytes = 0;
    if (rc == 0)
        rc = st_rados_lease(r, a->cookie, a->lease_s);
    if (rc == 0)
        rc = st_ckpt_upload(r, seq, out, &bytes);
    dir_remove(out);
    st_rados_head h;
    if (rc == 0)
        rc = st_rados_head_read(r, &h);
    if (rc == 0)
        rc = st_rados_ckpt_publish(r, &h, seq, a->keep);
    if (rc == -ECANCELED) {
        st_log(st, ST_LOG_INFO, "rados: checkpoint %" PRIu64 " not published: %" PRIu64 " is", seq,
               h.ckpt);
        return rc;
    }
    if (rc)
        return rc;
    st_log(st, ST_LOG_INFO, "rados: published checkpoint %" PRIu64 " (%" PRIu64 " bytes)", seq,
           bytes);
    ckpt_prune(st, r);
    blobs_trim(st, r);
    uint64_t orphans = 0;
    rc = st_orphans_sweep(r, a->orphan_age_s, &orphans);
    if (rc)
        st_log(st, ST_LOG_WARN, "rados: cannot remove orphan blob objects: %s", strerror(-rc));
    else if (orphans)
        st_log(st, ST_LOG_INFO,
               "rados: removed %" PRIu64
               " orphan blob objects (named by no entry, older than %u s)",
               orphans, a->orphan_age_s);
    return 0;
}

int st_ckpt_fetch(st_rados *r, const char *cachedir, uint64_t *seq, char *note, size_t notelen)
{
    uint64_t seqs[CKPT_KEEP + 8];
    size_t n;
    *seq = 0;
    note[0] = '\0';
    int rc = st_rados_ckpt_list(r, seqs, CKPT_KEEP + 8, &n);
    if (rc || n == 0)
        return rc;
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes;
        rc = st_ckpt_download(r, seqs[i], cachedir, &bytes);
        if (rc == 0) {
            *seq = seqs[i];
            snprintf(note + used, notelen - used,
                     "rados: loaded checkpoint %" PRIu64 " (%" PRIu64
                     " bytes); catching up from the log",
                     seqs[i], bytes);
            return 0;
        }
        int w = snprintf(note + used, notelen - used,
                         "rados: checkpoint %" PRIu64 " is unusable (%s); trying an older one; ",
                         seqs[i], strerror(-rc));
        if (w > 0 && (size_t)w < notelen - used)
            used += (size_t)w;
        st_ckpt_local_remove(cachedir);
    }
    return rc;
}

void st_ckpt_local_remove(const char *cachedir)
{
    DIR *d = opendir(cachedir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *s = de->d_name;
        size_t l = strlen(s);
        bool mine = strcmp(s, "data.mdb") == 0 || strcmp(s, "lock.mdb") == 0 ||
                    (strncmp(s, "snap-", 5) == 0 && l > 4 && strcmp(s + l - 4, ".vfs") == 0);
        if (mine) {
            char path[4096];
            if (snprintf(path, sizeof(path), "%s/%s", cachedir, s) < (int)sizeof(path))
                unlink(path);
        }
    }
    closedir(d);
}
