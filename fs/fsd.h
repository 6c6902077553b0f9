/*
 * fsd.h — internal header of the vecfs FUSE daemon (fs/).
 *
 * Layers: FUSE request -> dispatch.c (resolve the inode, refuse what it can
 * answer alone, call the handler of the node's kind or the open handle's
 * operations, count metrics) -> ops_*.c (one kind of node each:
 * collections and directories, vector files, .config, xattrs, query files,
 * import files, admin files) -> store.h (one store call = one transaction)
 * -> engine.h.
 *
 * Levels inside fs/ (STYLE rule 13; a file calls only files below it, as
 * scripts/check-layout.py computes them; docs/architecture.md explains):
 *   0  names, log, metrics, inode, query_table, import_state, float_digits,
 *      query_wire
 *   1  reply (replies, caller identity, access checks), handle (open
 *      handles and their operations tables), vector_format, commands
 *   2  audit, ops_config, import_jsonl
 *   3  vfile (open vector files: buffer, load, commit), ops_admin,
 *      import_parse
 *   4  vec_fh, ops_xattr, ops_import, ops_dir, http, query_parse
 *   5  ops_vec, daemon, query_result, query_ioctl
 *   6  query_run      7  ops_query
 *   8  dispatch (the only file that knows every handler)
 *   9  serve          10 cli (main)
 *
 * Handlers follow one rule (STYLE §5): they end in exactly one fuse_reply_*,
 * helpers return 0 or a negative errno, and the handler turns that into the
 * reply. Helpers named fsd_<object>_<verb>.
 *
 * Lock order of the daemon (outermost first):
 *   1. fsd.vf_lock        the table of open vector files (vfile.c)
 *   2. one of: fsd_vfile.lock (one open vector file's buffer and
 *      attributes, vfile.c), a query handle's lock (ops_query.c), an
 *      import handle's lock (ops_import.c); never two at once
 *   3. leaf locks         inode table, query table and its budget, import
 *                         table, the handle list (fh_lock), the unlinked
 *                         .config names (cfg_lock): each is taken alone
 *                         and never held across a call out
 * Store calls may be made while holding 2 (a commit happens under the
 * file's lock so two closes of the same file apply in order; a search or
 * an import under its handle's lock), never while holding 1 or 3.
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
#include "query_table.h"
#include "store.h"

/* Largest file image a handle buffers (an import, a batch query, a
 * truncate): 1 GiB. Past it writes and truncates fail with EFBIG. */
#define FSD_BUF_MAX ((size_t)1 << 30)

/* ------------------------------------------------------------------ */
/* The daemon (daemon.c)                                                */
/* ------------------------------------------------------------------ */

typedef struct fsd_vfile fsd_vfile;
typedef struct fsd_imports fsd_imports;

typedef struct fsd_open_params {
    const char *datadir;
    const char *key_file; /* NULL: no encryption */
    uint64_t max_size;    /* 0: unbounded */
    bool read_only;
    bool single_user;              /* mounted without allow_other / allow_root */
    unsigned threads;              /* store threads, 0 = all cores */
    const st_rados_options *rados; /* NULL: the embedded mode */
} fsd_open_params;

typedef struct fsd {
    st_store *store;          /* immutable after fsd_create */
    fsd_inodes *inodes;       /* immutable pointer; internally locked */
    fsd_queries *queries;     /* immutable pointer; internally locked */
    fsd_imports *imports;     /* immutable pointer; internally locked */
    struct fuse_session *se;  /* set once before the loop starts */
    bool read_only;           /* immutable */
    bool single_user;         /* immutable: the kernel lets only the mounting
                                 uid in (no allow_other, no allow_root) */
    struct timespec started;  /* immutable */
    struct stat root;         /* immutable: the root's attributes (DATADIR's
                                 owner, mode and times, taken at start) */
    pthread_mutex_t vf_lock;  /* lock 1 (vfile.c) */
    fsd_vfile **vf_buckets;   /* protected by vf_lock */
    size_t vf_nbuckets;       /* immutable */
    pthread_mutex_t cfg_lock; /* leaf lock (ops_config.c) */
    char **cfg_hidden;        /* protected by cfg_lock: collections whose .config
                                 was unlinked and not yet written again */
    size_t cfg_nhidden;       /* protected by cfg_lock */
    pthread_mutex_t fh_lock;  /* leaf lock (handle.c) */
    struct fsd_fh *open_fhs;  /* protected by fh_lock: handles not yet released */
} fsd;

/* Query files idle this long are dropped (SPEC §3.3). */
#define FSD_QUERY_IDLE_SECONDS 600u

/* Opens the store and builds the daemon state. On error writes one line
 * into msg. Returns 0, or a negative errno; *out NULL on error. */
int fsd_create(const fsd_open_params *p, fsd **out, char *msg, size_t msglen);

/* Frees the handles the kernel never released, drops the query table,
 * closes the store (final snapshot) and frees d. Returns 0 or the store's
 * close error. NULL returns 0. No request may be running. */
int fsd_destroy(fsd *d);

/* The low-level operations table (dispatch.c). */
extern const struct fuse_lowlevel_ops fsd_ll_ops;

/* Subcommands (commands.c). Each returns the process exit code. */
int fsd_cmd_check(int argc, char **argv);
/* Takes the --rados-* options (docs/vecfs.1) out of argv, in place, into
 * *ro. 0, or -1 after writing one line into msg (a missing value, a bad
 * timeout, --rados-conf without --rados-pool or the other way round). */
int fsd_rados_take(int *argc, char **argv, st_rados_options *ro, char *msg, size_t msglen);
int fsd_cmd_backup(int argc, char **argv);
int fsd_cmd_restore(int argc, char **argv);

/* ------------------------------------------------------------------ */
/* Replies, caller identity, access checks (reply.c)                    */
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

/* Converts a FUSE setattr request into store attributes; returns the
 * ST_SET_* mask of the fields it filled (times "now" are read here). */
unsigned fsd_setattr_mask(const struct stat *st, int to_set, st_attr *a);

/* Replies with an entry for a freshly linked node (nlookup already taken). */
int fsd_reply_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st, double timeout);

/* As fsd_reply_entry with separate name and attribute time outs. */
int fsd_reply_entry_ttl(fuse_req_t req, fuse_ino_t ino, const struct stat *st, double entry_ttl,
                        double attr_ttl);

/* Replies with an error (either sign; 0 is success) and counts it. */
void fsd_reply_err(fuse_req_t req, fsd_op op, int err);

/* Replies with the attributes st of inode ino, or with rc if it is < 0. */
void fsd_reply_attr(fuse_req_t req, fsd_op op, int rc, struct stat *st, fuse_ino_t ino, double ttl);

/* The errno of the last fsd_reply_err on this thread (0 after a success,
 * or when reset and no error reply followed), for the audit log. */
int fsd_reply_errno(void);
void fsd_reply_errno_reset(void);

/* Copies up to size bytes of src from off into *out (vc_malloc'd, the
 * caller frees; NULL when *n is 0). The copy lets a reply outlive the
 * buffer: once the kernel has a read's bytes the reader may close, and the
 * release frees the buffer before fuse_reply_buf returns. 0 or -ENOMEM. */
int fsd_copy_range(const vc_buf *src, size_t size, off_t off, char **out, size_t *n);

/* Time out values for the kernel's caches (seconds). */
#define FSD_TTL_DIR 1.0  /* collections, .query, .import, .vecfs: named by us */
#define FSD_TTL_FILE 0.0 /* vector, config, query, import, admin files */
/* Query-file names are cached for a second (their attributes never): an
 * open that finds a name cached for another uid is answered per uid, and
 * an open for writing creates the caller's file (ops_query.c). */
#define FSD_TTL_QUERY_ENTRY 1.0
/* Query-file attributes are cached only on a single-user mount, where no
 * other uid can see them; every result generated invalidates them, so a
 * stat on the handle still gives the true size (ops_query.c). */
#define FSD_TTL_QUERY_ATTR_SINGLE 1.0

/* The attribute time out of query files on d. */
static inline double fsd_qfile_attr_ttl(const fsd *d)
{
    return d->single_user ? FSD_TTL_QUERY_ATTR_SINGLE : 0.0;
}

/* ------------------------------------------------------------------ */
/* Audit lines of requests (audit.c; the log itself is audit.h)         */
/* ------------------------------------------------------------------ */

/* A mutating request being audited: who asked, captured before the
 * handler replies (the request is gone afterwards). */
typedef struct fsd_audit_rec {
    bool on; /* an audit log is open and the node is not a query file */
    fsd_caller who;
    char path[2 * (ST_COLL_NAME_MAX + ST_NAME_MAX + 16)];
    char new_path[2 * (ST_COLL_NAME_MAX + ST_NAME_MAX + 16)];
} fsd_audit_rec;

/* Starts a record for (ino, name): ino a parent directory and name the
 * entry, or ino the node itself and name NULL. Resets the reply errno
 * (reply.c). Query files are not audited. */
void fsd_audit_begin(fuse_req_t req, fsd_audit_rec *a, fuse_ino_t ino, const char *name);
/* For a rename: b's path is a's new path. */
void fsd_audit_rename(fsd_audit_rec *a, const fsd_audit_rec *b);
/* Writes a's line with the errno of the reply the handler sent. */
void fsd_audit_end(const fsd_audit_rec *a, const char *op);
/* Writes one line for who's op on path (a commit or an import at close,
 * which no request entry point audits). rows < 0 omits "rows". */
void fsd_audit_caller(const fsd_caller *who, const char *op, const char *path, int result,
                      long long rows);

/* ------------------------------------------------------------------ */
/* Open file handles (handle.c)                                         */
/* ------------------------------------------------------------------ */

typedef struct fsd_fh fsd_fh;

/* What one kind of handle does (STYLE rule 14: dispatch.c calls through
 * the table the handle carries, it never switches on a kind). Every
 * operation returns 0 or a negative errno and never replies: dispatch.c
 * turns the result into the one reply. who is the caller of the request
 * (for the audit log). A NULL operation means: read, write -EBADF; flush
 * 0; stat: stat by inode instead; ioctl -ENOTTY. */
typedef struct fsd_fh_ops {
    /* Copies up to size bytes at off into *out (fsd_copy_range). */
    int (*read)(fsd *d, fsd_fh *fh, size_t size, off_t off, char **out, size_t *n);
    /* Takes size bytes at off (off >= 0). */
    int (*write)(fsd *d, fsd_fh *fh, const char *buf, size_t size, off_t off);
    /* close() (fsync false) or fsync. *quiet set: the error is a verdict
     * on bytes still being written, not a failure to count. */
    int (*flush)(fsd *d, fsd_fh *fh, const fsd_caller *who, bool fsync, bool *quiet);
    /* Stat through the open handle. */
    int (*stat)(fsd *d, fsd_fh *fh, struct stat *st);
    /* A restricted ioctl: cmd, the in_len bytes the kernel copied in, and
     * a reply buffer of cap bytes (*out_len of them are sent back). Returns
     * the ioctl's result (>= 0) or a negative errno; a NULL ioctl is
     * -ENOTTY. */
    int (*ioctl)(fsd *d, fsd_fh *fh, unsigned int cmd, const void *in, size_t in_len, void *out,
                 size_t cap, size_t *out_len);
    /* The kernel's release: finishes what close left and frees fh. fh is
     * already untracked. */
    void (*release)(fsd *d, fsd_fh *fh, const fsd_caller *who);
    /* Frees fh whose release never came (unmount) or whose open reply
     * failed: no commit, no reply. fh is already untracked. */
    void (*discard)(fsd *d, fsd_fh *fh);
} fsd_fh_ops;

/* Largest restricted ioctl buffer: the kernel's size field has 14 bits. */
#define FSD_IOCTL_MAX 16383u

/* Every fi->fh is 0 or points at the fsd_fh at the start of a handle. */
struct fsd_fh {
    const fsd_fh_ops *ops;      /* immutable */
    struct fsd_fh *prev, *next; /* in fsd.open_fhs; protected by fsd.fh_lock */
};

/* The handle of fi, or NULL. */
static inline fsd_fh *fsd_fh_of(const struct fuse_file_info *fi)
{
    return fi != NULL ? (fsd_fh *)(uintptr_t)fi->fh : NULL;
}

/* Every handle handed to the kernel is tracked from just before the open
 * reply until its release, so unmount can free the handles whose release
 * the kernel never sent (release is asynchronous: a daemon told to stop
 * right after a close() may never see it). */
void fsd_fh_track(fsd *d, fsd_fh *fh);
void fsd_fh_untrack(fsd *d, fsd_fh *fh);
/* Discards every tracked handle (fsd_destroy only). */
void fsd_fh_discard_all(fsd *d);

/* Replies to open with fh in fi (tracked first). If the opener was
 * interrupted the handle is untracked and discarded. */
void fsd_fh_reply_open(fuse_req_t req, struct fuse_file_info *fi, fsd_fh *fh);
/* As fsd_fh_reply_open for create with entry e; an interrupted create
 * also gives back the lookup reference of e->ino. */
void fsd_fh_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
                         struct fuse_file_info *fi, fsd_fh *fh);

/* ------------------------------------------------------------------ */
/* .config (ops_config.c)                                               */
/* ------------------------------------------------------------------ */

/* The text of coll's config into out, and the attributes of .config in
 * *attr (size not set): the collection's owner and rw bits, the text's
 * own mtime. 0, -ENOENT (no such collection), -ENOMEM. */
int fsd_config_text(fsd *d, const char *coll, vc_buf *out, st_attr *attr);

/* Parses text as coll's new config and stores it, with mtime (NULL: now)
 * as the text's time. 0, -EINVAL (an unknown key, an impossible change),
 * or a store error. */
int fsd_config_commit(fsd *d, const char *coll, const vc_buf *text, const struct timespec *mtime);

/* Stat of a collection's .config (coll is the collection's node). */
int fsd_config_stat(fsd *d, const fsd_ref *coll, fuse_ino_t ino, struct stat *st);

/* true when coll has a .config file: its config is not all defaults and
 * the name is not unlinked (tar removes a file before it extracts it; the
 * config itself stays in force). See ops_config.c. */
bool fsd_config_visible(fsd *d, const char *coll);

/* Unlinks coll's .config: the config stays in force, the name is gone
 * until the file is written again. 0, -ENOENT (not visible), -ENOMEM. */
int fsd_config_hide(fsd *d, const char *coll);
/* Makes the name .config visible again (it was written). */
void fsd_config_unhide(fsd *d, const char *coll);
/* Frees the hidden names (fsd_destroy only). */
void fsd_config_hidden_free(fsd *d);

/* ------------------------------------------------------------------ */
/* Handlers, by node kind (called only by dispatch.c)                   */
/* ------------------------------------------------------------------ */

/* Collections and directories (ops_dir.c) */
void fsd_dir_lookup(fuse_req_t req, const fsd_ref *parent, const char *name);
void fsd_dir_getattr(fuse_req_t req, const fsd_ref *r);
void fsd_dir_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *st, int to_set,
                     struct fuse_file_info *fi);
void fsd_dir_mkdir(fuse_req_t req, const fsd_ref *parent, const char *name, mode_t mode);
void fsd_dir_rmdir(fuse_req_t req, const fsd_ref *parent, const char *name);
void fsd_dir_rename(fuse_req_t req, const fsd_ref *parent, const char *name,
                    const fsd_ref *newparent, const char *newname, unsigned flags);
void fsd_dir_opendir(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);
void fsd_dir_readdir(fuse_req_t req, const fsd_ref *r, size_t size, off_t off,
                     struct fuse_file_info *fi);
void fsd_dir_statfs(fuse_req_t req);

/* Vector files and .config (ops_vec.c) */
void fsd_vec_create(fuse_req_t req, const fsd_ref *parent, const char *name, mode_t mode,
                    struct fuse_file_info *fi);
void fsd_vec_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);
void fsd_vec_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *st, int to_set,
                     struct fuse_file_info *fi);
void fsd_vec_unlink(fuse_req_t req, const fsd_ref *parent, const char *name);
void fsd_vec_mknod(fuse_req_t req, const fsd_ref *parent, const char *name, mode_t mode);
void fsd_vec_rename(fuse_req_t req, const fsd_ref *parent, const char *name, const char *newname,
                    unsigned flags);

/* Stat of a vector (open state first, then the store): vfile.c. 0,
 * -ENOENT. */
int fsd_vec_stat(fsd *d, fuse_ino_t ino, const char *coll, const char *name, struct stat *st);

/* Extended attributes (ops_xattr.c) */
void fsd_xattr_set(fuse_req_t req, const fsd_ref *r, const char *name, const char *value,
                   size_t size, int flags);
void fsd_xattr_get(fuse_req_t req, const fsd_ref *r, const char *name, size_t size);
void fsd_xattr_list(fuse_req_t req, const fsd_ref *r, size_t size);
void fsd_xattr_remove(fuse_req_t req, const fsd_ref *r, const char *name);

/* Query files (ops_query.c) */
/* Stat for getattr of a query inode: the caller's entry, or, for a caller
 * without one, an empty placeholder (mode 0600, the caller's uid/gid) so
 * the kernel's permission check lets open decide. 0 or a negative errno
 * other than ENOENT. */
int fsd_qfile_getattr(fuse_req_t req, const fsd_ref *r, struct stat *st);
void fsd_qfile_lookup(fuse_req_t req, const fsd_ref *qdir, const char *name);
void fsd_qfile_create(fuse_req_t req, const fsd_ref *qdir, const char *name, mode_t mode,
                      struct fuse_file_info *fi);
void fsd_qfile_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);
void fsd_qfile_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *st, int to_set,
                       struct fuse_file_info *fi);
void fsd_qfile_unlink(fuse_req_t req, const fsd_ref *qdir, const char *name);
void fsd_qfile_rename(fuse_req_t req, const fsd_ref *qdir, const char *name, const char *newname);

/* Import files (ops_import.c) */
int fsd_imports_create(fsd_imports **out);
void fsd_imports_free(fsd_imports *im);
struct json_t;
/* Appends one object per import in progress (collection, file, phase:
 * receiving, parsing, storing or committing, bytes, rows_done,
 * rows_total) to arr, for .vecfs/stats. 0 or -ENOMEM. */
int fsd_imports_stats(fsd *d, struct json_t *arr);
int fsd_ifile_stat(fsd *d, const fsd_ref *r, struct stat *st);
void fsd_ifile_lookup(fuse_req_t req, const fsd_ref *idir, const char *name);
void fsd_ifile_create(fuse_req_t req, const fsd_ref *idir, const char *name, mode_t mode,
                      struct fuse_file_info *fi);
void fsd_ifile_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);
void fsd_ifile_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *st, int to_set,
                       struct fuse_file_info *fi);

/* Admin files (ops_admin.c) */
/* Generates the content of an admin file (health, metrics, stats) into b.
 * 0 or a negative errno. */
int fsd_admin_render(fsd *d, fsd_kind kind, vc_buf *b);
int fsd_admin_stat(fsd *d, fsd_kind kind, fuse_ino_t ino, struct stat *st);
void fsd_admin_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi);

#endif /* VECFS_FS_FSD_H */
