/*
 * handle.c — the open handles of the daemon: every fi->fh handed to the
 * kernel, and the table of operations each one carries.
 *
 * A handle is one of several kinds (vector file or .config, query file,
 * import file, generated admin text). Each kind embeds an fsd_fh first and
 * sets fh.ops to its kind's fsd_fh_ops (STYLE rule 14): dispatch.c calls
 * read, write, flush, stat and release through it and never asks which
 * kind it holds.
 *
 * Handle states
 *   OPENING   made by an open/create handler, not yet known to the kernel
 *   TRACKED   in d->open_fhs: fsd_fh_reply_open/_create track it just
 *             before the reply
 *   GONE      untracked and freed: by the kernel's release (dispatch.c
 *             untracks, ops->release frees), by an interrupted open
 *             (ops->discard), or at unmount (fsd_fh_discard_all)
 *
 * Invariants
 *   1. A handle is in d->open_fhs iff the kernel may still send a request
 *      with it (protected by d->fh_lock, a leaf lock).
 *   2. ops is set before the handle is tracked and never changes.
 */
#include "fsd.h"

#include <assert.h>
#include <errno.h>

void fsd_fh_track(fsd *d, fsd_fh *fh)
{
    assert(fh != NULL && fh->ops != NULL);
    pthread_mutex_lock(&d->fh_lock);
    fh->prev = NULL;
    fh->next = d->open_fhs;
    if (d->open_fhs != NULL)
        d->open_fhs->prev = fh;
    d->open_fhs = fh;
    pthread_mutex_unlock(&d->fh_lock);
}

void fsd_fh_untrack(fsd *d, fsd_fh *fh)
{
    assert(fh != NULL);
    pthread_mutex_lock(&d->fh_lock);
    if (fh->prev != NULL)
        fh->prev->next = fh->next;
    else if (d->open_fhs == fh)
        d->open_fhs = fh->next;
    if (fh->next != NULL)
        fh->next->prev = fh->prev;
    fh->prev = fh->next = NULL;
    pthread_mutex_unlock(&d->fh_lock);
}

void fsd_fh_discard_all(fsd *d)
{
    for (;;) {
        pthread_mutex_lock(&d->fh_lock);
        fsd_fh *fh = d->open_fhs;
        pthread_mutex_unlock(&d->fh_lock);
        if (fh == NULL)
            break;
        fsd_fh_untrack(d, fh);
        fh->ops->discard(d, fh);
    }
}

void fsd_fh_reply_open(fuse_req_t req, struct fuse_file_info *fi, fsd_fh *fh)
{
    assert(fh != NULL && fh->ops != NULL);
    fsd *d = fsd_of(req);
    fi->fh = (uint64_t)(uintptr_t)fh;
    fsd_fh_track(d, fh);
    if (fuse_reply_open(req, fi) == -ENOENT) {
        /* The opener was interrupted: undo. */
        fsd_fh_untrack(d, fh);
        fh->ops->discard(d, fh);
    }
}

void fsd_fh_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
                         struct fuse_file_info *fi, fsd_fh *fh)
{
    assert(e != NULL && fh != NULL && fh->ops != NULL);
    fsd *d = fsd_of(req);
    fi->fh = (uint64_t)(uintptr_t)fh;
    fsd_fh_track(d, fh);
    if (fuse_reply_create(req, e, fi) == -ENOENT) {
        fsd_fh_untrack(d, fh);
        fh->ops->discard(d, fh);
        fsd_inodes_forget(d->inodes, e->ino, 1);
    }
}
