/*
 * vfile.h — the table of open vector files (vfile.c): one fsd_vfile per
 * vector-file or .config inode with an open writable handle (or a short
 * pin), holding the bytes being written until they are committed.
 *
 * Users: ops_vec.c (open, create, setattr, unlink, rename), vec_fh.c (the
 * handles: read, write, flush, release),
 * ops_xattr.c (xattrs of a file not committed yet), ops_dir.c and
 * dispatch.c (stat through fsd_vec_stat in fsd.h).
 */
#ifndef VECFS_FS_VFILE_H
#define VECFS_FS_VFILE_H

#include "fsd.h"

/* One pending xattr of a NEW file. */
typedef struct fsd_pxattr {
    char *key;
    char *value;
    size_t len;
} fsd_pxattr;

struct fsd_vfile {
    fsd_vfile *next;      /* protected by d->vf_lock */
    fuse_ino_t ino;       /* immutable */
    unsigned refs;        /* protected by d->vf_lock */
    bool is_config;       /* immutable */
    pthread_mutex_t lock; /* lock 2: guards the fields below */
    /* A commit's store call runs with lock 2 released (so stat and reads
     * never wait for a commit or its fdatasync) while committing is set:
     * the fields below keep their values until it ends, because everything
     * that changes them takes lock 2 through fsd_vfile_lock, which waits
     * on commit_cv for the commit to end. */
    bool committing;
    pthread_cond_t commit_cv;
    bool loaded;
    bool in_store;
    /* NEW by an O_EXCL create: its first commit asks the store to fail
     * with EEXIST if the name appeared meanwhile (another RADOS node). */
    bool created_excl;
    bool dirty;
    int failed_err;
    vc_buf buf;
    st_attr attr;
    unsigned pend_mask;
    fsd_pxattr *px; /* xattrs of a NEW file, committed with it */
    size_t npx;
    bool cfg_temp;  /* rsync's ".config.XXXXXX": applied as the config */
    bool extra_pin; /* one extra ref (and inode pin) held by the file itself:
                       made by mknod (until its first release), or an
                       applied rsync config temp (until renamed/unlinked) */
    bool want_pin;  /* take extra_pin once vf->lock is dropped (lock order) */
};

/* Largest content of a vector file and of .config, in bytes. */
#define FSD_CONFIG_MAX ((size_t)65536)
static inline size_t fsd_vfile_max(const fsd_vfile *vf)
{
    return vf->is_config ? FSD_CONFIG_MAX : ST_CONTENT_MAX;
}

/* Takes vf->lock to change the vfile: waits until no commit is running
 * (see committing). Readers that only look (stat, read) take vf->lock
 * directly and never wait for a commit. Unlock with pthread_mutex_unlock. */
void fsd_vfile_lock(fsd_vfile *vf);

/* Finds the vfile of ino and pins it, or NULL (also for ino 0). */
fsd_vfile *fsd_vfile_pin(fsd *d, fuse_ino_t ino);

/* Finds or creates the vfile of ino and pins it. *created tells which.
 * 0 or -ENOMEM. */
int fsd_vfile_attach(fsd *d, fuse_ino_t ino, bool is_config, fsd_vfile **out, bool *created);

/* Drops a pin; frees the vfile at zero. NULL is a no-op. Takes lock 1:
 * never call with vf->lock held. */
void fsd_vfile_unpin(fsd *d, fsd_vfile *vf);

/* Drops the pin a file holds on itself (extra_pin) and the inode's, if
 * `drop` (the caller cleared extra_pin under vf->lock and unlocked). */
void fsd_vfile_drop_extra(fsd *d, fsd_vfile *vf, bool drop);

/* Frees every vfile (fsd_destroy only, after every handle is gone). */
void fsd_vfiles_discard(fsd *d);

/* Frees the pending xattrs of vf. Caller holds vf->lock. */
void fsd_vfile_xattrs_clear(fsd_vfile *vf);

/* Stat from an open vfile; false if it holds nothing to report. Caller
 * holds vf->lock. */
bool fsd_vfile_stat_locked(const fsd_vfile *vf, fuse_ino_t ino, struct stat *st);

/* Loads the stored content of r into vf (a .config's text, a vector's
 * bytes) unless it is loaded. Caller holds vf->lock. 0, -ENOENT, -ENOMEM
 * or a store error. */
int fsd_vfile_load_locked(fsd *d, fsd_vfile *vf, const fsd_ref *r);

/* Commits vf if dirty, as one store call, under the inode's current name
 * (see vfile.c). Caller holds vf->lock (from fsd_vfile_lock); the store
 * call runs with it released and committing set, and it is held again on
 * return. 0 or a negative errno (-EINVAL: the content does not parse;
 * failed_err keeps it). */
int fsd_vfile_commit_locked(fsd *d, fsd_vfile *vf);

/* Takes the extra pin a commit asked for (vf->want_pin); called without
 * vf->lock because the pin takes lock 1. */
void fsd_vfile_take_wanted_pin(fsd *d, fsd_vfile *vf);

/* An open vector file or .config (vec_fh.c): fi->fh of vector inodes. */
typedef struct fsd_vec_fh {
    fsd_fh h;
    fsd_vfile *vf;
    fuse_ino_t ino;
    bool writable;
    bool wrote;   /* this handle changed the buffer since its last commit */
    vc_buf snap;  /* vf NULL (a read-only open): the committed content */
    st_attr attr; /* vf NULL: its attributes (size = snap.len) */
} fsd_vec_fh;

/* A new handle on vf (NULL for a read-only open) for ino, opened with
 * flags. The caller's pins pass to it. NULL on ENOMEM. */
fsd_vec_fh *fsd_vec_fh_new(fsd_vfile *vf, fuse_ino_t ino, int flags);

/* Frees h, not its pins (an open that failed). NULL is a no-op. */
void fsd_vec_fh_free(fsd_vec_fh *h);

/* Fills a read-only handle's private copy of r's committed content. A
 * file still being created has none: -ENOENT (it appears at its commit).
 * 0, -ENOENT, -ENOMEM or a store error. */
int fsd_vec_fh_snapshot(fsd *d, const fsd_ref *r, fsd_vec_fh *h);

/* true when two names choose the same vector format (SPEC §3.1: .f32,
 * .json, text). rsync's temporary names count as their real name. */
bool fsd_vec_same_format(const char *a, const char *b);

#endif /* VECFS_FS_VFILE_H */
