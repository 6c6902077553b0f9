/*
 * fsd.h — internal header of the vecfs FUSE daemon (fs/).
 *
 * Layers: FUSE request -> fuse_ops.c (resolve the inode, dispatch by node
 * kind, count metrics) -> ops_*.c (one concern each: collections and
 * directories, vector files, xattrs, query files, import files, admin
 * files) -> store.h (one store call = one transaction) -> engine.h.
 *
 * Handlers follow one rule (STYLE §5): they end in exactly one fuse_reply_*,
 * helpers return 0 or a negative errno, and the handler turns that into the
 * reply. Helpers named fsd_<object>_<verb>.
 *
 * Lock order of the daemon (outermost first):
 *   1. fsd.vf_lock        the table of open vector files
 *   2. fsd_vfile.lock     one open vector file's buffer and attributes
 *   3. leaf locks         inode table, query table, import table (each is
 *                         taken alone and never held across a call out)
 * Store calls may be made while holding 2 (a commit happens under the
 * file's lock so two closes of the same file apply in order), never while
 * holding 1 or 3.
 */
#ifndef VECFS_FS_FSD_H
#define VECFS_FS_FSD_H

#include "inode.h" /* defines FUSE_USE_VERSION and includes fuse_lowlevel.h */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "buf.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "query.h"
#include "store.h"

/* Largest file image a handle buffers (an import, a batch query, a
 * truncate): 1 GiB. Past it writes and truncates fail with EFBIG. */
#define FSD_BUF_MAX ((size_t)1 << 30)

/* ------------------------------------------------------------------ */
/* The daemon                                                           */
/* ------------------------------------------------------------------ */

typedef struct fsd_vfile fsd_vfile;
typedef struct fsd_imports fsd_imports;

typedef struct fsd_open_params {
    const char *datadir;
    const char *key_file; /* NULL: no encryption */
    uint64_t max_size;    /* 0: unbounded */
    bool read_only;
    unsigned threads; /* store threads, 0 = all cores */
} fsd_open_params;

typedef struct fsd {
    st_store *store;          /* immutable after fsd_create */
    fsd_inodes *inodes;       /* immutable pointer; internally locked */
    fsd_queries *queries;     /* immutable pointer; internally locked */
    fsd_imports *imports;     /* immutable pointer; internally locked */
    struct fuse_session *se;  /* set once before the loop starts */
    bool read_only;           /* immutable */
    struct timespec started;  /* immutable */
    pthread_mutex_t vf_lock;  /* lock 1 */
    fsd_vfile **vf_buckets;   /* protected by vf_lock */
    size_t vf_nbuckets;       /* immutable */
    pthread_mutex_t cfg_lock; /* leaf lock */
    char **cfg_hidden;        /* protected by cfg_lock: collections whose .config
                                 was unlinked and not yet written again */
    size_t cfg_nhidden;       /* protected by cfg_lock */
    pthread_mutex_t fh_lock;  /* leaf lock */
    struct fsd_fh *open_fhs;  /* protected by fh_lock: handles not yet released */
} fsd;

/* Query files idle this long are dropped (SPEC §3.3). */
#define FSD_QUERY_IDLE_SECONDS 600u

/* Opens the store and builds the daemon state. On error writes one line
 * into msg. Returns 0, or a negative errno; *out NULL on error. */
int fsd_create(const fsd_open_params *p, fsd **out, char *msg, size_t msglen);

/* Drops the query table, closes the store (final snapshot) and frees d.
 * Returns 0 or the store's close error. NULL returns 0. */
int fsd_destroy(fsd *d);

/* The low-level operations table (fuse_ops.c). */
extern const struct fuse_lowlevel_ops fsd_ll_ops;

/* Subcommands (admin.c). Each returns the process exit code. */
int fsd_cmd_check(int argc, char **argv);
int fsd_cmd_backup(int argc, char **argv);
int fsd_cmd_restore(int argc, char **argv);

/* ------------------------------------------------------------------ */
/* Helpers shared by the handlers (fuse_ops.c)                          */
/* ------------------------------------------------------------------ */

/* The daemon of a request. */
static inline fsd *fsd_of(fuse_req_t req)
{
    return (fsd *)fuse_req_userdata(req);
}

/* Caller identity of a request. */
typedef struct fsd_caller {
    uid_t uid;
    gid_t gid;
    pid_t pid;
    mode_t umask;
} fsd_caller;

void fsd_caller_get(fuse_req_t req, fsd_caller *out);

/* True if the caller may access an object with (mode, uid, gid) for `want`
 * (R_OK | W_OK | X_OK), with supplementary groups. uid 0 may do all but
 * execute a file with no x bit. */
bool fsd_access_ok(fuse_req_t req, uint32_t mode, uint32_t uid, uint32_t gid, int want);

/* Converts store attributes to a struct stat for inode ino. */
void fsd_attr_to_stat(const st_attr *a, fuse_ino_t ino, struct stat *st);

/* Replies with an entry for a freshly linked node (nlookup already taken). */
int fsd_reply_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st, double timeout);

/* As fsd_reply_entry with separate name and attribute time outs. */
int fsd_reply_entry_ttl(fuse_req_t req, fuse_ino_t ino, const struct stat *st, double entry_ttl,
                        double attr_ttl);

/* Replies with an error and counts it. */
void fsd_reply_err(fuse_req_t req, fsd_op op, int err);

/* Time out values for the kernel's caches (seconds). */
#define FSD_TTL_DIR 1.0  /* collections, .query, .import, .vecfs: named by us */
#define FSD_TTL_FILE 0.0 /* vector, config, query, import, admin files */
/* Query-file names are cached for a second (their attributes never): an
 * open that finds a name cached for another uid is answered per uid, and
 * an open for writing creates the caller's file (ops_query.c). */
#define FSD_TTL_QUERY_ENTRY 1.0

/* True for the names vector files cannot have. */
bool fsd_name_reserved(const char *name);

/* ------------------------------------------------------------------ */
/* Collections and directories (ops_dir.c)                              */
/* ------------------------------------------------------------------ */

void fsd_dir_lookup(fuse_req_t req, const fsd_ref *parent, const char *name);
void fsd_dir_getattr(fuse_req_t req, const fsd_ref *r);
void fsd_dir_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *st, int to_set);
void fsd_dir_mkdir(fuse_req_t req, const fsd_ref *parent, const char *name, mode_t mode);
void fsd_dir_rmdir(fuse_req_t req, const fsd_ref *parent, const char *name);
void fsd_dir_rename(fuse_req_t req, const fsd_ref *parent, const char *name,
                    const fsd_ref *newparent, const char *newname, unsigned flags);
void fsd_dir_opendir(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);
void fsd_dir_readdir(fuse_req_t req, const fsd_ref *r, size_t size, off_t off,
                     struct fuse_file_info *fi);
void fsd_dir_releasedir(fuse_req_t req, struct fuse_file_info *fi);
void fsd_dir_statfs(fuse_req_t req);

/* Stat of a collection node; 0 or a negative errno. */
int fsd_coll_stat(fsd *d, const fsd_ref *r, struct stat *st);

/* Takes the root's owner, mode and times from DATADIR (once, at start). */
void fsd_dir_root_init(const struct stat *datadir);

/* Converts a FUSE setattr request into store attributes; returns the
 * ST_SET_* mask of the fields it filled. */
unsigned fsd_setattr_mask(const struct stat *st, int to_set, st_attr *a);

/* ------------------------------------------------------------------ */
/* Vector files and .config (ops_vec.c)                                 */
/* ------------------------------------------------------------------ */

/* Stat of a vector (open state first, then the store). 0, -ENOENT. */
int fsd_vec_stat(fsd *d, fuse_ino_t ino, const char *coll, const char *name, struct stat *st);
/* Stat of a collection's .config. */
int fsd_config_stat(fsd *d, const fsd_ref *coll, fuse_ino_t ino, struct stat *st);

void fsd_vec_create(fuse_req_t req, const fsd_ref *parent, const char *name, mode_t mode,
                    struct fuse_file_info *fi);
void fsd_vec_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);
void fsd_vec_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *st, int to_set,
                     struct fuse_file_info *fi);
void fsd_vec_unlink(fuse_req_t req, const fsd_ref *parent, const char *name);
void fsd_vec_mknod(fuse_req_t req, const fsd_ref *parent, const char *name, mode_t mode);

/* true when coll has a .config file: its config is not all defaults and
 * the name is not unlinked (tar removes a file before it extracts it; the
 * config itself stays in force). See "The .config file" in ops_vec.c. */
bool fsd_config_visible(fsd *d, const char *coll);
void fsd_vec_rename(fuse_req_t req, const fsd_ref *parent, const char *name, const char *newname,
                    unsigned flags);

/* ------------------------------------------------------------------ */
/* Extended attributes (ops_xattr.c)                                    */
/* ------------------------------------------------------------------ */

void fsd_xattr_set(fuse_req_t req, const fsd_ref *r, const char *name, const char *value,
                   size_t size, int flags);
void fsd_xattr_get(fuse_req_t req, const fsd_ref *r, const char *name, size_t size);
void fsd_xattr_list(fuse_req_t req, const fsd_ref *r, size_t size);
void fsd_xattr_remove(fuse_req_t req, const fsd_ref *r, const char *name);

/* Pending xattrs of a vector file not yet committed (ops_vec.c): 1 if the
 * open file took the call (its result in *rc), 0 if the vector is in the
 * store and the store should be asked. */
int fsd_vfile_xattr(fsd *d, fuse_ino_t ino, int op, const char *xname, const void *value,
                    size_t size, int flags, void *out, size_t cap, int *rc);
#define FSD_XOP_SET 1
#define FSD_XOP_GET 2
#define FSD_XOP_LIST 3
#define FSD_XOP_REMOVE 4

/* ------------------------------------------------------------------ */
/* Query files (ops_query.c)                                            */
/* ------------------------------------------------------------------ */

/* Stat of the caller's query file r: 0, or -ENOENT when the caller's uid
 * has no entry of that name (lookup, create, setattr). */
int fsd_qfile_stat(fuse_req_t req, const fsd_ref *r, struct stat *st);
/* Stat for getattr of a query inode: as fsd_qfile_stat, but a caller
 * without an entry gets an empty placeholder (mode 0600, the caller's
 * uid/gid) so the kernel's permission check lets open decide. 0 or a
 * negative errno other than ENOENT. */
int fsd_qfile_getattr(fuse_req_t req, const fsd_ref *r, struct stat *st);
void fsd_qfile_lookup(fuse_req_t req, const fsd_ref *qdir, const char *name);
void fsd_qfile_create(fuse_req_t req, const fsd_ref *qdir, const char *name, mode_t mode,
                      struct fuse_file_info *fi);
void fsd_qfile_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);
void fsd_qfile_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *st, int to_set,
                       struct fuse_file_info *fi);
void fsd_qfile_unlink(fuse_req_t req, const fsd_ref *qdir, const char *name);
void fsd_qfile_rename(fuse_req_t req, const fsd_ref *qdir, const char *name, const char *newname);

/* ------------------------------------------------------------------ */
/* Import files (ops_import.c, import.c)                                */
/* ------------------------------------------------------------------ */

int fsd_imports_create(fsd_imports **out);
void fsd_imports_free(fsd_imports *im);
int fsd_ifile_stat(fuse_req_t req, const fsd_ref *r, struct stat *st);
void fsd_ifile_lookup(fuse_req_t req, const fsd_ref *idir, const char *name);
void fsd_ifile_create(fuse_req_t req, const fsd_ref *idir, const char *name, mode_t mode,
                      struct fuse_file_info *fi);
void fsd_ifile_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);
void fsd_ifile_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *st, int to_set,
                       struct fuse_file_info *fi);

/* ------------------------------------------------------------------ */
/* Admin files (admin.c)                                                */
/* ------------------------------------------------------------------ */

/* Generates the content of an admin file (health, metrics, stats) into b.
 * 0 or a negative errno. */
int fsd_admin_render(fsd *d, fsd_kind kind, vc_buf *b);
int fsd_admin_stat(fsd *d, fsd_kind kind, fuse_ino_t ino, struct stat *st);
void fsd_admin_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);

/* ------------------------------------------------------------------ */
/* Open file handles                                                    */
/* ------------------------------------------------------------------ */

/* Every fi->fh points at one of these; `type` says which. */
typedef enum fsd_fh_type {
    FSD_FH_VEC = 1,    /* vector file or .config: fsd_vec_fh (ops_vec.c) */
    FSD_FH_QUERY = 2,  /* query file (ops_query.c) */
    FSD_FH_IMPORT = 3, /* import file (ops_import.c) */
    FSD_FH_BUFFER = 4, /* read-only generated text: admin files */
    FSD_FH_DIR = 5,    /* directory listing state (ops_dir.c) */
} fsd_fh_type;

typedef struct fsd_fh {
    fsd_fh_type type;
    struct fsd_fh *prev, *next; /* in fsd.open_fhs; protected by fsd.fh_lock */
} fsd_fh;

/* Every handle handed to the kernel is tracked from just before the open
 * reply until its release, so unmount can free the handles whose release
 * the kernel never sent (release is asynchronous: a daemon told to stop
 * right after a close() may never see it). */
void fsd_fh_track(fsd *d, fsd_fh *fh);
void fsd_fh_untrack(fsd *d, fsd_fh *fh);
/* Frees every tracked handle and open vector file (fsd_destroy only). */
void fsd_fh_discard_all(fsd *d);
/* Per-type discards of a handle whose release never came. */
void fsd_vec_fh_discard(fsd *d, fsd_fh *fh);
void fsd_vfiles_discard(fsd *d);
void fsd_qfile_fh_discard(fsd_fh *fh);
void fsd_ifile_fh_discard(fsd *d, fsd_fh *fh);

/* A generated read-only file: the whole content made at open. */
typedef struct fsd_buf_fh {
    fsd_fh h;
    vc_buf content;
} fsd_buf_fh;

/* Per-type file operations, dispatched by fuse_ops.c. Each ends in one
 * reply. */
void fsd_vec_read(fuse_req_t req, fsd_fh *fh, size_t size, off_t off);
void fsd_vec_write(fuse_req_t req, fsd_fh *fh, const char *buf, size_t size, off_t off);
void fsd_vec_flush(fuse_req_t req, fsd_fh *fh, bool datasync, fsd_op op);
void fsd_vec_release(fuse_req_t req, fsd_fh *fh);
int fsd_vec_fh_stat(fsd *d, fsd_fh *fh, struct stat *st);

void fsd_qfile_read(fuse_req_t req, fsd_fh *fh, size_t size, off_t off);
void fsd_qfile_write(fuse_req_t req, fsd_fh *fh, const char *buf, size_t size, off_t off);
void fsd_qfile_flush(fuse_req_t req, fsd_fh *fh, fsd_op op);
void fsd_qfile_release(fuse_req_t req, fsd_fh *fh);
int fsd_qfile_fh_stat(fuse_req_t req, fsd_fh *fh, struct stat *st);

void fsd_ifile_write(fuse_req_t req, fsd_fh *fh, const char *buf, size_t size, off_t off);
void fsd_ifile_flush(fuse_req_t req, fsd_fh *fh, fsd_op op);
void fsd_ifile_release(fuse_req_t req, fsd_fh *fh);
int fsd_ifile_fh_stat(fuse_req_t req, fsd_fh *fh, struct stat *st);

#endif /* VECFS_FS_FSD_H */
