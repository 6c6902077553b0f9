/*
 * query_table.h — the state behind `<collection>/.query/<name>` files.
 *
 * A query file is ephemeral and private (SPEC §3.3): it lives only in this
 * table, keyed by (collection, uid, name), so the same name written by two
 * users is two files and neither sees the other's. Nothing here is ever
 * persisted. An entry is dropped when it has been idle for the table's idle
 * time (swept lazily on every put), when its collection is dropped, and when
 * the table is freed at unmount.
 *
 * Entry states
 *   EMPTY      created (open O_CREAT) but no text committed yet
 *   VALID      text committed and parsed (parse_err == 0)
 *   MALFORMED  text committed and rejected (parse_err < 0): reads fail with it
 * fsd_queries_put() moves an entry to VALID or MALFORMED; nothing moves it
 * back to EMPTY except a new create with O_TRUNC (fsd_queries_touch with
 * truncate).
 *
 * Texts are immutable, reference-counted blobs (fsd_qtext), so a reader
 * evaluates a query without holding the table lock and without copying it,
 * and a concurrent writer replaces the entry's text without disturbing it.
 *
 * Thread safety: all functions lock the table's mutex (a leaf lock).
 */
#ifndef VECFS_FS_QUERY_TABLE_H
#define VECFS_FS_QUERY_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

/* An immutable query text. Obtain with fsd_qtext_new or fsd_queries_get;
 * release each reference with fsd_qtext_unref. */
typedef struct fsd_qtext {
    _Atomic uint32_t refs;
    size_t len;
    char data[]; /* len bytes, then a NUL */
} fsd_qtext;

/* Copies n bytes into a new text with one reference. NULL on ENOMEM. */
fsd_qtext *fsd_qtext_new(const void *p, size_t n);
/* Adds a reference; returns t. */
fsd_qtext *fsd_qtext_ref(fsd_qtext *t);
/* Drops a reference, freeing the text at zero. NULL is a no-op. */
void fsd_qtext_unref(fsd_qtext *t);

/* What fsd_queries_get reports about an entry. */
typedef struct fsd_qinfo {
    fsd_qtext *text;     /* a reference the caller must unref; NULL when EMPTY */
    int parse_err;       /* 0, or the negative errno the text failed with */
    uint64_t result_len; /* size of the last generated result (for stat) */
    struct timespec mtime;
    struct timespec ctime;
    /* Batch parameters from user.k / user.ef / user.filter /
     * user.max_distance / user.explain (0/NULL unset). */
    uint32_t k;
    uint32_t ef;
    char *filter;       /* malloc'd copy; the caller frees it */
    char *max_distance; /* malloc'd copy; the caller frees it */
    char *explain;      /* malloc'd copy; the caller frees it */
} fsd_qinfo;

typedef struct fsd_queries fsd_queries;

/* Creates an empty table whose entries expire after idle_seconds without
 * use. 0 or -ENOMEM; *out NULL on error. */
int fsd_queries_create(unsigned idle_seconds, fsd_queries **out);

/* Frees every entry and the table. NULL is a no-op. */
void fsd_queries_free(fsd_queries *q);

/* Creates the entry if missing (EMPTY); with truncate, resets an existing
 * entry to EMPTY. Refreshes its idle clock. 0, -ENOMEM, -ENAMETOOLONG. */
int fsd_queries_touch(fsd_queries *q, const char *coll, uid_t uid, const char *name, bool truncate);

/* Commits text (taking a new reference to it) with its parse result.
 * Creates the entry if needed. Also sweeps idle entries. The text's length
 * is charged to uid in place of the old text's.
 * 0, -ENOMEM, -ENOSPC or -EDQUOT (over budget; the entry is unchanged). */
int fsd_queries_put(fsd_queries *q, const char *coll, uid_t uid, const char *name, fsd_qtext *text,
                    int parse_err);

/* Records the size of the result last generated for the entry. */
void fsd_queries_set_result_len(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                                uint64_t len);

/* Fills *out for the entry (see fsd_qinfo for ownership) and refreshes its
 * idle clock. 0 or -ENOENT (no such entry for this uid). */
int fsd_queries_get(fsd_queries *q, const char *coll, uid_t uid, const char *name, fsd_qinfo *out);

/* Releases what a fsd_qinfo holds. */
void fsd_qinfo_release(fsd_qinfo *info);

/* Removes the entry. 0 or -ENOENT. */
int fsd_queries_remove(fsd_queries *q, const char *coll, uid_t uid, const char *name);

/* Renames an entry within the same (coll, uid); replaces a target.
 * 0, -ENOENT, -ENOMEM. */
int fsd_queries_rename(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                       const char *newname);

/* Drops every entry of a collection (rmdir, collection rename). */
void fsd_queries_drop_collection(fsd_queries *q, const char *coll);

/* user.* attributes of a query file. Only user.k, user.ef, user.filter and
 * user.max_distance mean something (and user.error, which the daemon sets
 * to say why the query file's last query failed); others are kept so
 * tools that copy xattrs succeed.
 * set: 0, -ENOENT, -ENOMEM, -E2BIG (value > 64 KiB), -EINVAL (bad k/ef).
 * get: the value length (copied if size > 0 and it fits), -ENOENT,
 *      -ENODATA, -ERANGE.
 * list: the total length of NUL-separated names, -ERANGE, -ENOENT.
 * remove: 0, -ENOENT, -ENODATA. */
int fsd_queries_xattr_set(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                          const char *key, const void *value, size_t len, int flags);
int fsd_queries_xattr_get(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                          const char *key, void *value, size_t size);
int fsd_queries_xattr_list(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                           char *list, size_t size);
int fsd_queries_xattr_remove(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                             const char *key);

/* Memory budget of query files. Every committed text, every handle's
 * buffered text and every generated result counts against it, so a
 * reader cannot pin unbounded memory for the idle time. */
#define FSD_QUERY_BYTES_MAX ((uint64_t)256 << 20)    /* all users together */
#define FSD_QUERY_UID_BYTES_MAX ((uint64_t)64 << 20) /* one uid */
/* Largest text, JSON or .f32 query (batch files are bounded by the budget). */
#define FSD_QUERY_TEXT_MAX ((size_t)16 << 20)

/* Charges n bytes held for uid outside the table (a handle's buffer or
 * result). 0, -ENOSPC (over FSD_QUERY_BYTES_MAX), -EDQUOT (over
 * FSD_QUERY_UID_BYTES_MAX) or -ENOMEM; nothing is charged on error. */
int fsd_queries_charge(fsd_queries *q, uid_t uid, uint64_t n);
/* Gives back n bytes charged to uid (never more than were charged). */
void fsd_queries_uncharge(fsd_queries *q, uid_t uid, uint64_t n);
/* Bytes held now (metrics, tests). */
uint64_t fsd_queries_bytes(fsd_queries *q);

/* Number of entries (stats, tests). */
size_t fsd_queries_count(fsd_queries *q);

#endif /* VECFS_FS_QUERY_TABLE_H */
