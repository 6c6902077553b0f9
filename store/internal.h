/*
 * internal.h — what the files of store/ share: the store and collection
 * objects, the LMDB layout, and what each file offers the others. Not
 * installed; tests include it to reach the wrappers and the records.
 *
 * One header for the folder, kept as its internal manual: one section per
 * file, headed with the file's level (scripts/check-layout.py --graph; a
 * file calls only files of lower levels), roughly lowest first.
 * The shared objects (st_store, st_coll) are defined once, near the top,
 * because files at every level read their fields.
 *
 * LMDB layout (one environment per DATADIR, named databases)
 *
 *   db       key                                   value (always an envelope)
 *   meta     "format"                              FORMAT record (never sealed:
 *                                                  needed before the key)
 *            "keycheck"                            KEYCHECK record (sealed)
 *            "nextcoll"                            COUNTER record: next collection id
 *   colls    namekey(collection name)              COLL record
 *   vecs     u32be coll | namekey(vector name)     VEC record (the "inode")
 *   slots    u32be coll | u32be id                 SLOT record: name + float vector
 *   content  u32be coll | u32be id                 CONTENT record: bytes as written, or
 *                                                  CONTENT_VEC: the bytes before the
 *                                                  SLOT's vector (content.c)
 *   order    u32be coll | u64be seq                ORDER record: namekey of the vector
 *   xattrs   u32be coll | u32be id | namekey(xn)   XATTR record: name + value
 *   midx     u32be coll | 16-byte hash(key,value)  DUPSORT|DUPFIXED u32be ids (raw)
 *   free     u32be coll | u32be id                 empty (raw): ids free for reuse
 *   dirty    u32be coll | u32be id                 COUNTER record: generation of the
 *                                                  last change not yet in a snapshot
 *   vidx     u32be coll | KEY 0 family value       DUPSORT|DUPFIXED u32be ids (raw):
 *                                                  user xattr values in order (vidx.c);
 *                                                  none in an encrypted store
 *
 *   namekey(n) is n itself without a key, HMAC-SHA-256(mac key, tag | n)
 *   with one. hash(key,value) is SHA-256 without a key and HMAC-SHA-256
 *   with one, truncated to 16 bytes, over "user.KEY" NUL value.
 *
 * Envelope of every value (but free and midx, which hold no data):
 *   without a key: body | u32le CRC-32C(db tag | record key | body)
 *   with a key:    nonce[12] | AES-256-GCM(body) | tag[16], AAD = db tag | record key
 *   so a value moved to another key (or db) fails to open: -EIO.
 * Every body starts with u16le ST_REC_MAGIC, u8 type, u8 version; all
 * integers little-endian (fixed width, or LEB128 varints in VEC version
 * 2); layouts in record.c.
 */
#ifndef VECFS_STORE_INTERNAL_H
#define VECFS_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <rados/librados.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "store.h"

/* ------------------------------------------------------------------ */
/* Level 0. sys.c: I/O through wrappers tests can make fail           */
/* ------------------------------------------------------------------ */

typedef enum st_fault {
    ST_FAULT_ALLOC = 0, /* common/alloc.h: vc_malloc and friends, vc_buf */
    ST_FAULT_IO = 1,    /* st_io_* */
    ST_FAULT_MDB = 2,   /* st_mdb_get / st_mdb_cursor_get */
    ST_FAULT_COUNT
} st_fault;

/* The n-th call (1 = the next) of class f fails (NULL / -EIO, or -ENOSPC
 * for writes, MDB_CORRUPTED for LMDB reads); 0 disables. Process-wide, for
 * tests. Returns how many calls the previous arming of f still had to go:
 * 0 when it fired (or none was armed), so a test knows whether it hit.
 * The ALLOC class is common/'s one counter (vc_alloc_fail_at), so it also
 * fails the vc_bufs that hold record bodies and scratch. */
uint64_t st_fault_set(st_fault f, uint64_t n);

/* vc_malloc, vc_calloc and vc_realloc (common/alloc.h). */
/* A copy of n bytes at p in memory from vc_malloc (NULL: out of memory). */
void *st_memdup(const void *p, size_t n);

/* mdb_get and mdb_cursor_get for the readers whose LMDB errors tests
 * provoke (st_check, the op log replay); an armed ST_FAULT_MDB returns
 * MDB_CORRUPTED, as a damaged page would. */
int st_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val);
int st_mdb_cursor_get(MDB_cursor *cur, MDB_val *key, MDB_val *val, MDB_cursor_op op);

/* open(2); returns fd or -errno. */
int st_io_open(const char *path, int flags, mode_t mode);
/* Writes all n bytes; 0 or -errno. */
int st_io_write(int fd, const void *p, size_t n);
/* fsync(2); 0 or -errno. */
int st_io_fsync(int fd);
/* rename(2) then fsync of the directory dir; 0 or -errno. */
int st_io_rename_durable(const char *from, const char *to, const char *dir);

/* Clocks: CLOCK_REALTIME for times users see, CLOCK_MONOTONIC for ages.
 * A thread applying a RADOS log entry sees the entry's time instead
 * (log_route.c), so every node makes the same times from it. */
extern _Thread_local const struct timespec *st_apply_clock;
static inline void st_now(struct timespec *ts)
{
    if (st_apply_clock)
        *ts = *st_apply_clock;
    else
        clock_gettime(CLOCK_REALTIME, ts);
}
static inline void st_mono_now(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}
/* a - b in seconds. */
static inline double st_ts_diff(const struct timespec *a, const struct timespec *b)
{
    return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

/* ------------------------------------------------------------------ */
/* Level 0. write_priority.c: writers run ahead of searches           */
/* ------------------------------------------------------------------ */

/* What st_write_priority_raise returns when it changed nothing. */
#define ST_PRIORITY_UNCHANGED (-100)
/* Raises the calling thread's CPU priority for a write; returns the
 * priority to restore, or ST_PRIORITY_UNCHANGED (already as high, or not
 * permitted: then writes run at the daemon's priority). */
int st_write_priority_raise(void);
/* Puts back what st_write_priority_raise returned. */
void st_write_priority_restore(int prev);

/* ------------------------------------------------------------------ */
/* Level 0. input_rules.c: valid names and values                     */
/* ------------------------------------------------------------------ */

/* How a store call uses a name it is given (store.h, Conventions). */
typedef enum st_name_use {
    ST_NAME_NEW,  /* creates or renames to it: a name not allowed is -EINVAL */
    ST_NAME_FIND, /* looks up an existing object: a name none can have is -ENOENT */
} st_name_use;

/* Checks NUL-terminated collection name `name` given to a call that uses
 * it as `use`: 0, -EINVAL (NULL; or not allowed and ST_NAME_NEW), -ENOENT
 * (not allowed and ST_NAME_FIND), -ENAMETOOLONG. */
int st_coll_name_arg(const char *name, st_name_use use);
/* The same for a vector name; *len_out (may be NULL) = its length. */
int st_vec_name_arg(const char *name, st_name_use use, size_t *len_out);
/* Checks a NUL-terminated xattr name as st_xattr_name_check does: 0,
 * -EINVAL (NULL), -ERANGE; *len_out (may be NULL) = its length. */
int st_xattr_name_arg(const char *xname, size_t *len_out);

/* ------------------------------------------------------------------ */
/* Level 0. filter.c: the filter language, compiled                   */
/* ------------------------------------------------------------------ */

/* Bounds of one compiled filter (whatever the text: fuzzed). */
#define ST_FILTER_DEPTH_MAX 32u  /* nesting of parentheses and `not` */
#define ST_FILTER_NODES_MAX 256u /* comparisons, `exists`, `not`, and/or runs */
#define ST_FILTER_LITS_MAX 256u  /* values, `in` lists included */

typedef enum st_fkind {
    ST_FK_AND,
    ST_FK_OR,
    ST_FK_NOT,
    ST_FK_CMP,
    ST_FK_IN,
    ST_FK_EXISTS
} st_fkind;
typedef enum st_fop { ST_FOP_EQ, ST_FOP_NE, ST_FOP_LT, ST_FOP_LE, ST_FOP_GT, ST_FOP_GE } st_fop;

typedef struct st_fstr {
    char *p; /* NUL-terminated copy */
    size_t len;
} st_fstr;

/* A literal: bytes, and its number when it is one (st_filter_number). */
typedef struct st_flit {
    char *p;
    size_t len;
    bool is_num;
    double num;
} st_flit;

/* A node: AND/OR/NOT list children by first/next (-1 = none); CMP (op,
 * one literal), IN (nlit literals from lit) and EXISTS name keys[key]. */
typedef struct st_fnode {
    st_fkind kind;
    st_fop op;
    int first, next;
    uint32_t key, lit, nlit;
} st_fnode;

struct st_filter {
    st_fnode *nodes; /* ST_FILTER_NODES_MAX of room */
    size_t nnodes;
    int root;
    st_fstr *keys; /* without "user." */
    size_t nkeys;
    st_flit *lits;
    size_t nlits;
};

/* Whether len bytes at p are a decimal number (digits, sign, point,
 * exponent; finite; under 64 bytes); *out its value. */
bool st_filter_number(const void *p, size_t len, double *out);
/* Orders a stored value (len bytes) against a literal: as numbers when
 * both are numbers, else as bytes (a prefix first). -1, 0 or 1. */
int st_filter_cmp(const void *val, size_t len, const st_flit *lit);
/* Whether comparison op holds for an ordering result c (-1, 0 or 1). */
bool st_fop_holds(st_fop op, int c);

/* ------------------------------------------------------------------ */
/* Level 2. rados_entry.c: the bytes of a RADOS log entry              */
/* ------------------------------------------------------------------ */

/* Kinds of operation in a log entry (docs/scale-out.md §3). */
typedef enum st_log_kind {
    ST_LOG_PUT = 1,
    ST_LOG_DELETE,
    ST_LOG_RENAME,
    ST_LOG_SETATTR,
    ST_LOG_XATTR_SET,
    ST_LOG_XATTR_REMOVE,
    ST_LOG_COLL_CREATE,
    ST_LOG_COLL_DROP,
    ST_LOG_COLL_RENAME, /* st_coll_rename: coll -> to */
    ST_LOG_COLL_ATTR,   /* st_coll_attr_update: setattr, or .config's mtime */
    ST_LOG_COLL_CONFIG, /* st_coll_config_set */
    ST_LOG_BATCH,       /* st_batch_commit: every row of one .import/ batch */
    ST_LOG_BLOB,        /* the entry itself is in blob objects (rados_blob.c) */
} st_log_kind;

/* Flag of a PUT: the writer created the name (O_EXCL) and expects it
 * absent; the check fails it with -EEXIST if another node made it first. */
#define ST_LOG_PUT_NEW (1u << 0)
/* Flag of a COLL_ATTR or COLL_CONFIG: cfg_mtime is .config's new mtime
 * (without it a config change takes the entry's time). */
#define ST_LOG_CFG_MTIME (1u << 0)

/* An entry's bytes larger than this are not an omap value: they go to
 * blob objects and the log gets a BLOB entry naming them (scale-out.md
 * §2: large omap values weigh on the OSD's key-value store, and a
 * catch-up reads up to ST_RADOS_RANGE entries in one reply). */
#define ST_LOG_INLINE_MAX (64u << 10)
/* The largest entry kept in blobs (16 GiB): it bounds what a damaged BLOB
 * entry can make a node allocate; an .import/ file (at most 1 GiB of
 * text, fs/) is far below it as binary rows. */
#define ST_LOG_BLOB_MAX ((uint64_t)1 << 34)
#define ST_LOG_BLOB_ID 16u /* bytes of a blob's random id */

/* One row of a BATCH: st_batch_put's arguments (vec has the op's dim). */
typedef struct st_log_row {
    const char *name;
    const void *data;
    size_t len;
    const float *vec;
    st_attr attr;
    unsigned mask;
    size_t nmeta;
    const char *const *meta_keys;
    const void *const *meta_vals;
    const size_t *meta_lens;
} st_log_row;

/* One operation: the arguments of the store call that applies it. Fields
 * a kind does not use are zero/NULL. `to` is a rename's target or an
 * xattr's name; data/len a PUT's content or an xattr's value; flags the
 * rename, xattr, PUT or ST_LOG_CFG_MTIME flags; cfg a COLL_CONFIG's new
 * config; rows/nrows a BATCH's rows; blob_* a BLOB's objects (its id,
 * the entry's length and CRC-32C). */
typedef struct st_log_op {
    unsigned kind;
    const char *coll, *name, *to;
    const void *data;
    size_t len;
    const float *vec;
    uint32_t dim;
    st_attr attr;
    unsigned mask, flags;
    struct timespec cfg_mtime;
    st_config cfg;
    const st_log_row *rows;
    size_t nrows;
    uint8_t blob_id[ST_LOG_BLOB_ID];
    uint64_t blob_len;
    uint32_t blob_crc;
} st_log_op;

/* An entry: the writer's node id and clock, and its operations. A
 * decoded entry owns mem (its bytes, which the ops point into), vecs,
 * rows and the rows' xattr arrays (meta). A BLOB op is alone in its
 * entry, and an entry read from blobs holds none. */
typedef struct st_log_entry {
    uint64_t node;
    struct timespec written;
    size_t nops;
    st_log_op *ops;
    void *mem;
    float *vecs;
    st_log_row *rows;
    void *meta;
} st_log_entry;

/* Writes e's bytes to out (reset first). 0 or -ENOMEM. */
int st_log_entry_encode(const st_log_entry *e, vc_buf *out);
/* Decodes len bytes: 0, -EPROTO (damaged, unknown version or kind, a
 * length out of bounds), -ENOMEM. Free with st_log_entry_free. */
int st_log_entry_decode(const void *bytes, size_t len, st_log_entry *e);
void st_log_entry_free(st_log_entry *e);

/* ------------------------------------------------------------------ */
/* Level 0. log_route.c: the RADOS mode's writes go through its log   */
/* ------------------------------------------------------------------ */

/* What the RADOS mode plugs into a store (rados_node.c). write checks,
 * appends and applies one operation; barrier catches up to the log head
 * (fsync); stop ends the follower before the store closes. */
typedef struct st_log_hooks {
    int (*write)(void *ctx, const st_log_op *op);
    int (*barrier)(void *ctx);
    void (*stop)(void *ctx);
} st_log_hooks;

/* st_log_route's answer when the caller writes locally. */
#define ST_LOG_LOCAL 1
/* ST_LOG_LOCAL (embedded mode, or the thread applying an entry), else the
 * result of the RADOS write of op. */
int st_log_route(st_store *st, const st_log_op *op);
/* Whether st_log_route would send a write to the RADOS hooks (a caller
 * that must first build the operation asks, so the embedded mode does
 * not pay for it). */
bool st_log_remote(st_store *st);
/* -EOPNOTSUPP for a write the RADOS mode does not log yet, else 0. */
int st_log_refuse(st_store *st);
/* fsync's read barrier: 0 in the embedded mode. */
int st_log_barrier(st_store *st);
void st_log_stop(st_store *st);
/* Brackets the local apply of entry seq on this thread: st_now returns
 * *clock, and st_txn_commit writes seq as the applied one. */
void st_log_apply_begin(uint64_t seq, const struct timespec *clock);
void st_log_apply_end(void);
bool st_log_applying(void);
uint64_t st_log_apply_seq(void);

/* ------------------------------------------------------------------ */
/* Level 3. rados_client.c: the log's objects in the pool             */
/* ------------------------------------------------------------------ */

#define ST_RADOS_FORMAT "1"
#define ST_RADOS_TIMEOUT_DEFAULT 10u
#define ST_RADOS_RANGE 1024u     /* entries per omap read */
#define ST_RADOS_NOTIFY_MS 1000u /* a notify waits this long for acks */
#define ST_RADOS_KEY_LEN 23u     /* "e." + 20 digits + NUL */
#define ST_RADOS_HEAD_OBJ "vecfs.head"

typedef struct st_rados_seal st_rados_seal; /* rados_seal.c */

typedef struct st_rados {
    rados_t cluster;
    rados_ioctx_t io;
    uint64_t cookie; /* the watch on vecfs.head */
    bool watching;
    /* Called from librados's thread on a notify (lost false) or when the
     * watch broke (lost true: watch again). */
    void (*wake)(void *ctx, bool lost);
    void *wake_ctx;
    /* The log's seal (--key-file): NULL for a log that is not sealed. */
    st_rados_seal *seal;
} st_rados;

/* The fields of vecfs.head. */
#define ST_RADOS_SEAL_MAX 128u /* bytes of a seal record kept (rados_seal.c's are 105) */

typedef struct st_rados_head {
    char format[16];
    uint64_t head, trim, ckpt;
    /* st_rados_head_read only: the `seal` record (seal_len 0: none; one
     * longer than ST_RADOS_SEAL_MAX is cut, so it reads as damaged). */
    uint8_t seal[ST_RADOS_SEAL_MAX];
    size_t seal_len;
} st_rados_head;

/* Connects and opens the pool and namespace; on failure err holds one
 * line and the result is a negative errno (-ETIMEDOUT, -ENOENT, ...). */
int st_rados_connect(const st_rados_options *ro, st_rados *r, char *err, size_t errlen);
void st_rados_disconnect(st_rados *r);
/* Creates vecfs.head (format, head 0, trim 1, ckpt 0, and `seal` = the
 * seal record of len bytes when seal is not NULL) unless it exists. */
int st_rados_head_init(st_rados *r, const void *seal, size_t len);
/* Reads the head fields and the seal record: 0, -EPROTO (missing or
 * malformed), -errno. */
int st_rados_head_read(st_rados *r, st_rados_head *h);
/* Appends entry head + 1 if the head is still `head`: 0, -ECANCELED
 * (another writer appended first; nothing written), -errno. A BLOB entry
 * passes its blob's id and length as blob (else NULL): the same operation
 * records them under `b.<head + 1>` for the trim to find. */
typedef struct st_rados_blob_ref {
    uint8_t id[ST_LOG_BLOB_ID];
    uint64_t len;
} st_rados_blob_ref;
int st_rados_append(st_rados *r, uint64_t head, const void *entry, size_t len,
                    const st_rados_blob_ref *blob);
/* Calls fn for each recorded blob of an entry below seq `below`, lowest
 * seq first (read ST_RADOS_RANGE records at a time); fn's non-zero
 * stops. */
int st_rados_blob_refs(st_rados *r, uint64_t below,
                       int (*fn)(void *ctx, uint64_t seq, const st_rados_blob_ref *ref), void *ctx);
/* Removes the `b.<seq>` record (its objects are gone). */
int st_rados_blob_ref_forget(st_rados *r, uint64_t seq);
/* Called for each entry in seq order; non-zero stops the read. */
typedef int (*st_rados_entry_fn)(void *ctx, uint64_t seq, const void *bytes, size_t len);
/* Reads entries after..upto (after excluded) in ranges of ST_RADOS_RANGE.
 * -EPROTO when one is missing (a gap or a trimmed range). */
int st_rados_entries(st_rados *r, uint64_t after, uint64_t upto, st_rados_entry_fn fn, void *ctx);
/* Reads the head fields and the entries after `after` in one operation
 * (one round trip when less than a range behind) and feeds the entries up
 * to that head to fn. -ESTALE when the log was trimmed past `after`. */
int st_rados_catch_up(st_rados *r, uint64_t after, st_rados_head *h, st_rados_entry_fn fn,
                      void *ctx);
/* Watches vecfs.head (again, if it was). */
int st_rados_watch(st_rados *r, void (*wake)(void *ctx, bool lost), void *ctx);
/* Notifies the watchers of vecfs.head (waits for their acks). */
int st_rados_notify(st_rados *r);
/* Connects, creates the log if the pool has none and reads its head
 * (format checked); on failure opt->errbuf says why, nothing is left
 * connected. */
int st_rados_log_open(const st_rados_options *ro, const st_options *opt, st_rados *r,
                      st_rados_head *h);

/* backup.c: the local half of a checkpoint: the snapshot files linked
 * and a compacted LMDB copy at one point in time, into the empty
 * directory outdir (on st->dir's file system). */
int st_store_ckpt_copy(st_store *st, const char *outdir);

/* Checkpoints (docs/scale-out.md §6). The writer holds this object's
 * lock "ckpt" as a lease. */
#define ST_RADOS_CKPT_LOCK_OBJ "vecfs.lock.ckpt"
/* Publishes checkpoint seq if ckpt and trim are still h's (-ECANCELED
 * otherwise, or when seq <= h->ckpt): in one operation ckpt = seq, a
 * `c.<seq>` key, trim = max(h->trim, min(seq - keep, h->ckpt) + 1) and
 * the entries below the new trim removed. */
int st_rados_ckpt_publish(st_rados *r, const st_rados_head *h, uint64_t seq, uint64_t keep);
/* The published checkpoints' seqs, newest first, at most cap. */
int st_rados_ckpt_list(st_rados *r, uint64_t *seqs, size_t cap, size_t *n);
/* Removes checkpoint seq's `c.` key. */
int st_rados_ckpt_forget(st_rados *r, uint64_t seq);
/* Takes or renews the checkpoint writer's lease for `seconds`: 0, -EBUSY
 * (another node holds it), -errno. */
int st_rados_lease(st_rados *r, const char *cookie, unsigned seconds);
/* Gives the lease up if this cookie holds it (a node stopping cleanly:
 * another takes it at once rather than after it lapses). */
void st_rados_lease_release(st_rados *r, const char *cookie);

/* ------------------------------------------------------------------ */
/* Level 2. rados_seal.c: the log and its blobs sealed with the key    */
/* ------------------------------------------------------------------ */

/* A new log's seal record for opt's key (opt->key set), bound to
 * namespace ns: 0, -ENOMEM, -EIO. */
int st_seal_record_new(const st_options *opt, const char *ns, vc_buf *out);
/* Checks len bytes of a log's seal record raw (len 0: the log has none),
 * for the log of ro's pool and namespace, and sets r->seal when the log is
 * sealed and opt's key opens its key check. -EKEYREJECTED (a key for a
 * log that is not sealed, none for one that is, a wrong key), -EIO (a
 * damaged record), -ENOMEM; opt's errbuf says which. Fuzzed. */
int st_seal_take(st_rados *r, const void *raw, size_t len, const st_rados_options *ro,
                 const st_options *opt);
void st_seal_free(st_rados *r);
/* Bytes a seal adds to an entry or a blob (0 when the log is not sealed). */
size_t st_seal_overhead(const st_rados *r);
/* Seals b in place (it grows by st_seal_overhead) as entry seq, or as
 * blob id; a no-op when the log is not sealed. 0, -ENOMEM, -EIO. */
int st_seal_entry(const st_rados *r, uint64_t seq, vc_buf *b);
int st_seal_blob(const st_rados *r, const uint8_t id[ST_LOG_BLOB_ID], vc_buf *b);
/* Opens entry seq's len bytes at v: *body is v itself when the log is not
 * sealed, else the plaintext in scratch. -EBADMSG (it does not
 * authenticate as entry seq of this log), -ENOMEM. */
int st_seal_entry_open(const st_rados *r, uint64_t seq, const void *v, size_t len, vc_buf *scratch,
                       const void **body, size_t *blen);
/* Opens blob id's *len bytes at p in place; *len = the plaintext's. */
int st_seal_blob_open(const st_rados *r, const uint8_t id[ST_LOG_BLOB_ID], void *p, size_t *len);

/* ------------------------------------------------------------------ */
/* Level 3. rados_blob.c: entries too large for the log, as objects   */
/* ------------------------------------------------------------------ */

#define ST_LOG_BLOB_PIECE (4u << 20) /* bytes per blob object, at most */
#define ST_BLOB_PREFIX "vecfs.blob." /* then 32 hex digits of the id, '.', the piece */

/* Writes len bytes (an encoded entry) as blob id's objects: 0, -errno
 * (some objects may exist then; st_blob_remove takes them away). */
int st_blob_put(st_rados *r, const uint8_t id[ST_LOG_BLOB_ID], const void *p, size_t len);
/* Reads the entry a BLOB op names into out (reset first): 0, -EBADMSG
 * (a length or the CRC-32C is not the op's), -ENOENT (removed: the log was
 * trimmed past it), -ENOMEM, -errno. */
int st_blob_get(st_rados *r, const st_log_op *ref, vc_buf *out);
/* The blob id of object name oid (`vecfs.blob.<32 hex>.<n>`): 0, or
 * -EINVAL when oid is not a blob piece's name. */
int st_blob_oid_parse(const char *oid, uint8_t id[ST_LOG_BLOB_ID]);
/* Removes blob id's objects (a len-byte blob; absent ones are fine). */
int st_blob_remove(st_rados *r, const uint8_t id[ST_LOG_BLOB_ID], uint64_t len);
/* If decoded entry e is a BLOB reference, replaces it by the entry its
 * blob holds (read through scratch, released after): 0 (also when e is
 * no reference), st_blob_get's errors, -EPROTO (the blob's bytes are not
 * an entry, or are a reference again; e is then empty). */
int st_blob_entry(st_rados *r, st_log_entry *e, vc_buf *scratch);

/* ------------------------------------------------------------------ */
/* Level 4. rados_orphans.c: blob objects that no entry names          */
/* ------------------------------------------------------------------ */

/* Called for each blob object (its name and mtime) whose id no `b.<seq>`
 * record of vecfs.head names; non-zero stops the walk. */
typedef int (*st_orphan_fn)(void *ctx, const char *oid, time_t mtime);
/* Walks the namespace's orphan blob objects: 0, fn's error, -ENOMEM,
 * -errno (the records or the listing unreadable). */
int st_orphans_walk(st_rados *r, st_orphan_fn fn, void *ctx);
/* Removes the orphan blob objects older than age_s seconds (an upload in
 * flight is younger): *removed = how many. 0, -errno. */
int st_orphans_sweep(st_rados *r, unsigned age_s, uint64_t *removed);

/* ------------------------------------------------------------------ */
/* Level 1. rados_ckpt.c: a checkpoint's objects in the pool          */
/* ------------------------------------------------------------------ */

#define ST_CKPT_PIECE (4u << 20) /* bytes per piece object, at most */
#define ST_CKPT_NAME_MAX 64u     /* a file name in a manifest */

/* Uploads every plain file of dir as checkpoint seq's pieces, then its
 * manifest; *bytes = the files' total size. */
int st_ckpt_upload(st_rados *r, uint64_t seq, const char *dir, uint64_t *bytes);
/* Called for each item of a manifest: a file (piece UINT32_MAX, len its
 * size) and then each of its pieces (number, length, CRC-32C). */
typedef int (*st_ckpt_item_fn)(void *ctx, const char *name, uint32_t piece, uint64_t len,
                               uint32_t crc);
/* Walks manifest text (NUL-terminated) of checkpoint seq: 0, fn's error,
 * -EBADMSG when it is malformed. Fuzzed. */
int st_ckpt_manifest_walk(const char *text, uint64_t seq, st_ckpt_item_fn fn, void *ctx);
/* Writes checkpoint seq's files into dir, checking every piece: 0,
 * -EBADMSG (a CRC, a length or the manifest is wrong), -ENOENT, -errno. */
int st_ckpt_download(st_rados *r, uint64_t seq, const char *dir, uint64_t *bytes);
/* Checks checkpoint seq's manifest and pieces, one report line per
 * problem and a summary; *bad = problems found. */
int st_ckpt_verify(st_rados *r, uint64_t seq, FILE *report, uint64_t *bad);
/* Removes checkpoint seq's pieces and manifest. */
int st_ckpt_remove(st_rados *r, uint64_t seq);

/* ------------------------------------------------------------------ */
/* Level 11. rados_resync.c: a running node reloads a checkpoint      */
/* ------------------------------------------------------------------ */

/* Makes the running store local the newest usable checkpoint's state
 * (downloaded into local's dir/resync, removed after) through the
 * store's own writes, each committing the node's old `applied` seq, and
 * then records the checkpoint's seq (*seq) as applied. The caller holds
 * the node's apply lock. 0, -ENOENT (no checkpoint), st_ckpt_fetch's and
 * the store's errors (the store is then part way, still behind the trim:
 * a retry or a restart reloads it). */
int st_resync(st_store *local, st_rados *r, uint64_t applied, uint64_t *seq);

/* ------------------------------------------------------------------ */
/* Level 0. rados_cache_id.c: whose cache a CACHEDIR is               */
/* ------------------------------------------------------------------ */

#define ST_CACHE_ID_FILE "rados.id"
#define ST_CACHE_ID_MAX 2048u /* bytes of the file, at most */

/* A cache's identity (the log it was fed from) and its last open. */
typedef struct st_cache_id {
    char ident[1024]; /* the fsid, pool, namespace and format lines */
    size_t ident_len;
    char boot[64]; /* the kernel's boot id at the last open */
    bool closed;   /* closed cleanly (synced) after that open */
} st_cache_id;

/* Parses the text of CACHEDIR/rados.id (layout: rados_cache_id.c): 0 or
 * -EBADMSG (malformed, or the CRC-32C fails). Fuzzed. */
int st_cache_id_parse(const char *text, size_t len, st_cache_id *out);
/* Writes id as that text into buf: 0, -ENAMETOOLONG (cap too small). */
int st_cache_id_format(const st_cache_id *id, char *buf, size_t cap, size_t *len);
/* The identity of the log r reaches (format as read from vecfs.head) and
 * this boot: 0, -EINVAL (a pool or namespace name with a newline),
 * -errno (the fsid or /proc's boot id unreadable). */
int st_cache_id_of(st_rados *r, const st_rados_options *ro, const char *format, st_cache_id *out);
/* Whether the cache in dir may be used under identity now: 0 yes (also
 * when it holds no data.mdb), 1 no, with why set to the reason (its file
 * missing or damaged, another log, or another boot without a clean
 * close). */
int st_cache_id_judge(const char *dir, const st_cache_id *now, char *why, size_t whylen);
/* Replaces dir's identity file with id and the flag closed, durably: 0,
 * -errno. */
int st_cache_id_write(const char *dir, const st_cache_id *id, bool closed);

/* ------------------------------------------------------------------ */
/* Level 7. rados_ckpt_node.c: a node writes and fetches checkpoints  */
/* ------------------------------------------------------------------ */

typedef struct st_ckpt_take_args {
    pthread_mutex_t *mu;     /* the node's apply lock */
    const uint64_t *applied; /* the node's applied seq, under mu */
    uint64_t keep;           /* entries kept below a checkpoint */
    const char *cookie;      /* this node's name on the lease */
    unsigned lease_s;
    unsigned orphan_age_s; /* orphan blobs older than this are removed after */
} st_ckpt_take_args;
/* Writes, publishes and prunes one checkpoint of st at the node's applied
 * seq if this node holds (or takes) the lease: 0, -EBUSY (another node
 * holds it), -ECANCELED (a newer one is published), -errno. */
int st_ckpt_take(st_store *st, st_rados *r, const st_ckpt_take_args *a);
/* Downloads the newest usable checkpoint into cachedir (newest first, the
 * next on a bad CRC): *seq = its seq (0 when the pool has none); note
 * gets the lines to log once the store is open. */
int st_ckpt_fetch(st_rados *r, const char *cachedir, uint64_t *seq, char *note, size_t notelen);
/* Removes a cache's store files (data.mdb, lock.mdb, snapshots). */
void st_ckpt_local_remove(const char *cachedir);

/* ------------------------------------------------------------------ */
/* Level 0. attr.c: st_attr from records, setattr masks               */
/* ------------------------------------------------------------------ */

/* Pointers to the attribute fields of a COLL or VEC record. */
typedef struct st_attr_ref {
    uint32_t *mode, *uid, *gid;
    struct timespec *atime, *mtime, *ctime;
} st_attr_ref;

/* Copies the fields of a that mask (ST_SET_*) names into the record r
 * points at (mode: permission bits only). Returns true when mask set
 * ctime (else the caller usually sets it to now). */
bool st_attr_apply(const st_attr *a, unsigned mask, const st_attr_ref *r);
/* The st_attr_ref of a COLL or VEC record (an lvalue). */
#define ST_ATTR_REF(rec)                                                                           \
    (&(st_attr_ref){&(rec).mode, &(rec).uid, &(rec).gid, &(rec).atime, &(rec).mtime, &(rec).ctime})

/* ------------------------------------------------------------------ */
/* Level 0. crypto.c: keys, envelopes, name keys, streams             */
/* ------------------------------------------------------------------ */

#define ST_NONCE_LEN 12u
#define ST_TAG_LEN 16u
#define ST_SALT_LEN 16u
#define ST_HASH_LEN 32u

typedef struct st_crypto {
    bool on;
    uint8_t enc_key[32]; /* AES-256-GCM key */
    uint8_t mac_key[32]; /* HMAC-SHA-256 key for name keys and the metadata index */
} st_crypto;

/* KDF parameters kept in the FORMAT record. */
typedef struct st_kdf {
    uint8_t kind; /* 0 none, 1 raw key, 2 scrypt passphrase */
    uint8_t log2_n;
    uint32_t r, p;
    uint8_t salt[ST_SALT_LEN];
} st_kdf;

/* Fills kdf for a new store (random salt). 0 or -EIO. */
int st_kdf_new(st_kdf *kdf, bool passphrase);
/* Derives c from secret under kdf. 0, -EINVAL, -ENOMEM, -EIO. */
int st_crypto_derive(st_crypto *c, const st_kdf *kdf, const void *secret, size_t len);
void st_crypto_wipe(st_crypto *c);
/* Replaces c's keys by keys for one purpose (the RADOS log's seal):
 * HMAC-SHA-256 of each key over label + "/enc" or "/mac", so that use
 * never shares a key with the records. 0 or -EIO, -ENOMEM (c unchanged). */
int st_crypto_subkeys(st_crypto *c, const char *label);

/* Bytes an envelope adds to a body. */
size_t st_env_overhead(const st_crypto *c);
/* Seals body into out (blen + overhead bytes). 0 or -EIO. */
int st_env_seal(const st_crypto *c, uint8_t tag, const void *key, size_t klen, const void *body,
                size_t blen, void *out);
/*
 * Opens an envelope of vlen bytes. Without a key the body is in place:
 * *body points into val (no copy; scratch unused). With a key the body is
 * decrypted into scratch, which must hold vlen bytes. -EIO when the
 * checksum or authentication fails or vlen is too short.
 */
int st_env_open(const st_crypto *c, uint8_t tag, const void *key, size_t klen, const void *val,
                size_t vlen, void *scratch, const void **body, size_t *blen);
/* namekey: writes the name key to out (room for ST_NAME_MAX bytes),
 * returns its length. */
size_t st_name_key(const st_crypto *c, uint8_t tag, const void *name, size_t len, uint8_t *out);
/* 16-byte metadata index hash of (xattr name, value). */
void st_meta_hash(const st_crypto *c, const char *xname, const void *val, size_t len,
                  uint8_t out[16]);
/* Random bytes; 0 or -EIO. */
int st_random(void *out, size_t n);

/* Streaming seal/open of a snapshot payload (one GCM message). */
typedef struct st_stream st_stream;
int st_stream_seal_begin(const st_crypto *c, const void *aad, size_t aadlen, uint8_t *nonce_out,
                         st_stream **out);
int st_stream_open_begin(const st_crypto *c, const void *aad, size_t aadlen, const uint8_t *nonce,
                         st_stream **out);
/* Transforms n bytes from in to out (may be equal). */
int st_stream_update(st_stream *s, const void *in, void *out, size_t n);
/* Seal: writes the tag. Open: checks it (-EIO). Frees s. */
int st_stream_final(st_stream *s, uint8_t tag[ST_TAG_LEN]);
void st_stream_free(st_stream *s);

/* ------------------------------------------------------------------ */
/* Level 1. record.c: record bodies                                   */
/* ------------------------------------------------------------------ */

#define ST_REC_MAGIC 0x5356u /* "VS" */

enum st_db_tag {
    ST_DB_META = 1,
    ST_DB_COLLS,
    ST_DB_VECS,
    ST_DB_SLOTS,
    ST_DB_CONTENT,
    ST_DB_ORDER,
    ST_DB_XATTRS,
    ST_DB_MIDX,
    ST_DB_FREE,
    ST_DB_DIRTY,
    ST_DB_VIDX,
    ST_DB_COUNT
};

/* LMDB's name of each database, by tag (NULL for 0). */
extern const char *const st_db_names[ST_DB_COUNT];

enum st_rec_type {
    ST_REC_FORMAT = 1,
    ST_REC_KEYCHECK,
    ST_REC_COUNTER,
    ST_REC_COLL,
    ST_REC_VEC,
    ST_REC_SLOT,
    ST_REC_CONTENT,
    ST_REC_ORDER,
    ST_REC_XATTR,
    ST_REC_CONTENT_VEC, /* format 2: content = prefix | the SLOT's vector */
};

/* Format 2 added CONTENT_VEC records, format 3 VEC records of version 2
 * (record.c); older stores are read as they are and marked 3 at a writable
 * open. */
#define ST_FORMAT_VERSION 3u
#define ST_FORMAT_VERSION_MIN 1u

/* st_env_open with its scratch taken from *scratch when the store is
 * encrypted: scratch is emptied and grown to hold vlen bytes, and *body
 * points into it until scratch is next grown or released. Returns 0,
 * -ENOMEM (scratch could not grow; nothing was read), or st_env_open's
 * -EIO. */
int st_env_open_buf(const st_crypto *c, uint8_t tag, const void *key, size_t klen, const void *val,
                    size_t vlen, vc_buf *scratch, const void **body, size_t *blen);

/* A bounds-checked reader: any over-read sets err and returns zeros. */
typedef struct st_rd {
    const uint8_t *p;
    size_t len, off;
    bool err;
} st_rd;

uint8_t st_rd_u8(st_rd *r);
uint16_t st_rd_u16(st_rd *r);
uint32_t st_rd_u32(st_rd *r);
uint64_t st_rd_u64(st_rd *r);
const uint8_t *st_rd_bytes(st_rd *r, size_t n);

typedef struct st_format_rec {
    uint32_t version;
    uint32_t flags; /* bit 0: encrypted */
    st_kdf kdf;
} st_format_rec;

typedef struct st_coll_rec {
    uint32_t coll_id;
    uint64_t uuid; /* random per creation: a snapshot of a dropped namesake never loads */
    st_config cfg;
    uint32_t mode, uid, gid;
    struct timespec atime, mtime, ctime;
    uint64_t count, bytes;
    uint64_t next_seq;
    uint32_t next_id;
    uint64_t snap_gen; /* dirty entries with gen <= snap_gen are in the snapshot */
    char name[ST_COLL_NAME_MAX + 1];
    struct timespec cfg_mtime; /* .config's mtime: its last change or utimens */
} st_coll_rec;

typedef struct st_vec_rec {
    uint32_t id;
    uint64_t seq;
    uint32_t mode, uid, gid;
    struct timespec atime, mtime, ctime;
    uint64_t size;
    uint16_t name_len;
    char name[ST_NAME_MAX + 1];
} st_vec_rec;

/* Encoders append a body to b; decoders parse body bytes (0 or -EIO). */
void st_rec_format_enc(vc_buf *b, const st_format_rec *r);
int st_rec_format_dec(const void *p, size_t n, st_format_rec *r);
void st_rec_counter_enc(vc_buf *b, uint64_t v);
int st_rec_counter_dec(const void *p, size_t n, uint64_t *v);
/* A config's fields as the COLL record holds them (dim .. max_bytes; not
 * rerank, which that record keeps at its end), also used by RADOS log
 * entries. The decoder returns false on an over-read or a bad ef_auto
 * byte; ranges are st_config_validate's. */
void st_rec_config_enc(vc_buf *b, const st_config *c);
bool st_rec_config_dec(st_rd *rd, st_config *c);
void st_rec_coll_enc(vc_buf *b, const st_coll_rec *r);
int st_rec_coll_dec(const void *p, size_t n, st_coll_rec *r);
/* VEC: name_in_key leaves the name out of the body (only where the key is
 * the name: a store without a key). key_name/key_len: the name part of the
 * record's key when it is the name, else NULL (an encrypted store). */
void st_rec_vec_enc(vc_buf *b, const st_vec_rec *r, bool name_in_key);
int st_rec_vec_dec(const void *p, size_t n, const void *key_name, size_t key_len, st_vec_rec *r);
/* SLOT: name + dim floats. Decoding points *vec into the body (may be
 * unaligned: copy with memcpy). */
void st_rec_slot_enc(vc_buf *b, const char *name, size_t name_len, const float *vec, uint32_t dim);
int st_rec_slot_dec(const void *p, size_t n, const char **name, size_t *name_len,
                    const uint8_t **vec, uint32_t *dim);
void st_rec_blob_enc(vc_buf *b, uint8_t type, const void *p, size_t n);
int st_rec_blob_dec(const void *p, size_t n, uint8_t type, const uint8_t **out, size_t *len);
/* The stat of a collection, from its record. */
void st_attr_from_coll(const st_coll_rec *r, st_attr *a);
/* The stat of vector r of collection coll. */
void st_attr_from_vec(uint32_t coll, const st_vec_rec *r, st_attr *a);

/* CONTENT_VEC: the content is prefix (at most ST_CONTENT_PREFIX_MAX bytes)
 * followed by the dim floats of the vector's SLOT record. Decoding points
 * *prefix into the body. */
#define ST_CONTENT_PREFIX_MAX 4096u
void st_rec_content_vec_enc(vc_buf *b, const void *prefix, size_t prefix_len, uint32_t dim);
int st_rec_content_vec_dec(const void *p, size_t n, const uint8_t **prefix, size_t *prefix_len,
                           uint32_t *dim);

void st_rec_xattr_enc(vc_buf *b, const char *xname, size_t xlen, const void *val, size_t vlen);
int st_rec_xattr_dec(const void *p, size_t n, const char **xname, size_t *xlen, const uint8_t **val,
                     size_t *vlen);

/* ------------------------------------------------------------------ */
/* The store and collection objects (fields read at every level)      */
/* ------------------------------------------------------------------ */

typedef struct st_coll st_coll;

/* A collection's vector names by engine id (states and invariants in
 * name_cache.c). Embedded in st_coll. */
typedef struct st_names {
    pthread_rwlock_t lock;
    char **names;         /* lock; names[id] malloc'd, NULL for no vector */
    size_t cap;           /* lock */
    uint32_t filled;      /* lock; ids below it are copied (FILLING) */
    _Atomic size_t bytes; /* written under lock, read without (metrics) */
    _Atomic bool ready;   /* every id copied: searches may use the table */
} st_names;

/* One name change of a committed operation: id now has name (len bytes),
 * or no vector when name is NULL. */
typedef struct st_name_change {
    uint32_t id;
    const char *name;
    size_t len;
} st_name_change;

/* The queries users sent a collection: a bounded uniform sample in
 * memory only, for ef_search = auto (query_sample.c). Embedded in st_coll. */
typedef struct st_qsample {
    pthread_mutex_t mu;
    float *vecs;    /* cap x dim floats, n of them used; mu */
    uint32_t dim;   /* mu */
    size_t n, cap;  /* mu */
    uint64_t seen;  /* queries offered since the sample started; mu */
    uint64_t fresh; /* queries that entered it since the last take; mu */
    uint64_t rng;   /* mu */
} st_qsample;

typedef struct st_coll {
    /* Fixed while the object lives. */
    uint32_t id;
    uint64_t uuid;

    /* Serializes the writers of this collection while they write records
     * (write_op.c), and, taken settled (st_coll_lock_settled), snapshot
     * serialization, trims, fills, config and collection ops. Lock order:
     * wlock, then st->group.mu, then st->colls_lock, then mu; LMDB's
     * writer lock is taken (mdb_txn_begin) only while holding wlock or no
     * coll lock, never under group.mu. */
    pthread_mutex_t wlock;
    /* protected by wlock: */
    uint64_t cur_gen; /* generation written into dirty entries */

    /* Short lock for the fields below; never held across I/O. */
    pthread_mutex_t mu;
    char name[ST_COLL_NAME_MAX + 1]; /* protected by st->colls_lock (write) and mu */
    st_config cfg;                   /* protected by mu (writers also hold wlock) */
    vf_hnsw *index;                  /* protected by mu; set once dim is known, freed at close */
    uint64_t count, bytes;           /* protected by mu */
    uint64_t changes;                /* changes since the last snapshot; mu */
    struct timespec first_change;    /* of the current unsnapshotted run; mu */
    struct timespec snap_time;       /* last snapshot written or loaded; mu */
    bool dropped;                    /* mu */
    uint32_t auto_ef;                /* ef picked by vf_hnsw_tune (0 = not yet); mu */
    uint64_t tune_changes;           /* changes since the last tuning; mu */
    st_tuning tuning;                /* the last tuning (valid while auto_ef != 0); mu */
    struct timespec tune_end;        /* when it finished (monotonic); mu */
    st_qsample qsample;              /* own lock: users' queries, for tuning */
    vf_hnsw **retired;               /* replaced indexes, freed at close; mu */
    size_t nretired;                 /* mu */

    st_names names; /* own lock (name_cache.c); changed in apply order */

    /* Apply order (apply_order.c): committed operations change index,
     * names and counters in commit order, after their group committed and
     * without the wlock. Tickets are taken under wlock (so in commit
     * order); apply_cv signals each finished turn. Protected by mu. */
    uint64_t tickets_issued, tickets_done;
    pthread_cond_t apply_cv;

    /* Background rebuild (rebuild.c): while set, index is being filled
     * from the records and queries scan the records instead. */
    _Atomic bool rebuilding;
    pthread_mutex_t rebuild_mu; /* the builder's chunks vs writers' touches */
    uint64_t *touched;          /* ids writers changed meanwhile; rebuild_mu */
    size_t touched_words;       /* rebuild_mu */
    bool touched_all;           /* out of memory for touched: skip all; rebuild_mu */

    /* Background conversion (convert.c): the committed quantization
     * differs from the index's until the converter swaps a new one in. */
    _Atomic bool converting;
} st_coll;

/* One operation in a commit group (group.c). */
typedef struct st_group_member {
    MDB_txn *txn;                 /* its nested txn, while it runs */
    struct st_group_member *next; /* in the group, in commit order */
    int result;                   /* own error, else the group commit's */
    bool leader, done;
} st_group_member;

/* The commit group of a store (states in group.c). Protected by mu. */
typedef struct st_group {
    pthread_mutex_t mu;
    pthread_cond_t turn_cv;   /* the baton is free, or a group closed */
    pthread_cond_t done_cv;   /* a group committed */
    pthread_cond_t leader_cv; /* a member finished or queued */
    bool open, closed, busy;
    MDB_txn *parent;
    struct timespec opened;
    size_t nmembers, nwaiting;
    _Atomic size_t arriving; /* announced, not yet joined */
    uint64_t bytes;
    st_group_member *head, *tail;
} st_group;

struct st_store {
    char *dir;
    st_options opt;
    int lock_fd;
    MDB_env *env;
    MDB_dbi db[ST_DB_COUNT];
    st_crypto crypto;
    uint64_t map_size;

    /* Collection table: lookups read-lock, create/drop/rename write-lock. */
    pthread_rwlock_t colls_lock;
    st_coll **colls;     /* protected by colls_lock; sorted by id */
    size_t ncolls;       /* protected by colls_lock */
    size_t colls_cap;    /* protected by colls_lock; room in colls */
    st_coll **graveyard; /* dropped collections, freed at close; colls_lock */
    size_t ngraveyard;

    /* Background rebuild thread (rebuild.c). */
    pthread_t rebuilder;
    bool rebuilder_running;
    _Atomic bool rebuild_stop;

    /* Index conversion thread (convert.c), started on demand. */
    pthread_mutex_t convert_mu;
    pthread_t converter;   /* convert_mu */
    bool convert_running;  /* convert_mu: it has not run out of work */
    bool convert_joinable; /* convert_mu: created and not joined yet */
    bool convert_kicked;   /* convert_mu: a collection waits for it */
    bool convert_stop;     /* convert_mu: the store closes */

    /* Background thread. */
    pthread_t bg;
    bool bg_running;
    pthread_mutex_t bg_mu;
    pthread_cond_t bg_cv;
    bool bg_stop; /* protected by bg_mu */

    /* Serializes snapshot writers (background vs explicit). */
    pthread_mutex_t snap_mu;

    /* Health: protected by health_mu. */
    pthread_mutex_t health_mu;
    char health[1024];

    /* Group commit (group.c). */
    st_group group;
    _Atomic uint64_t group_commits, group_ops;
    _Atomic uint64_t group_commit_ns; /* time in group commits (with their fdatasync) */

    _Atomic uint64_t inserts, deletes, queries, query_ns, snapshots, rebuilds, errors;
    _Atomic uint64_t plans[ST_PLAN_KIND_COUNT]; /* queries answered by each plan (search.c) */
    _Atomic uint64_t plans_redone;              /* of those, filtered walks redone exactly */
    _Atomic uint64_t stale_readers;             /* reader slots of dead processes cleared */
    _Atomic bool unsynced;
    double open_seconds;
    bool no_index; /* st_check: open without loading indexes */
    bool vidx_on;  /* VIDX is built and kept (vidx.c); false when encrypted */

    /* RADOS mode (log_route.c, rados_node.c): NULL in the embedded mode. */
    const struct st_log_hooks *log_hooks;
    void *log_ctx;
    /* RADOS mode: the cache's identity, written with `closed` once
     * st_store_close's last sync succeeded (rados_cache_id.c). */
    struct st_cache_id *cache_id;
};

/* ------------------------------------------------------------------ */
/* Level 1. health.c: log, health lines, open errors                  */
/* ------------------------------------------------------------------ */

/* Writes a log line (printf-style) at level. */
void st_log(st_store *st, st_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a health line (once; see st_store_health). */
void st_health_set(st_store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the health lines that start with prefix (a problem is fixed). */
void st_health_clear(st_store *st, const char *prefix);
/* Writes a one-line reason for a failed open to o->errbuf (if any). */
void st_errbuf_set(const st_options *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ */
/* Level 1. txn.c: transactions and single records                    */
/* ------------------------------------------------------------------ */

/* Maps an LMDB or errno return to a negative errno. */
int st_mdb_err(int rc);

/* Reads and opens the envelope of db/key inside txn. *body as st_env_open
 * (points into the map, or into *scratch which is (re)allocated and owned
 * by the caller). Returns 0, -ENOENT, -EIO, -ENOMEM. */
int st_get(st_store *st, MDB_txn *txn, int db, const void *key, size_t klen, const void **body,
           size_t *blen, vc_buf *scratch);
/* Seals body and puts it at db/key. Returns 0 or a negative errno. */
int st_put(st_store *st, MDB_txn *txn, int db, const void *key, size_t klen, const void *body,
           size_t blen);

/* Commits txn; on failure it is aborted. On a thread applying a RADOS
 * log entry the entry's seq is written into txn first (META "applied").
 * Returns 0 or a negative errno. */
int st_txn_commit(st_store *st, MDB_txn *txn);
/* The RADOS log seq the local store applied last (0: none). */
int st_log_applied_get(st_store *st, uint64_t *seq);
/* Records the seq being applied in a transaction of its own (an entry
 * whose operation failed the same way on every node). */
int st_log_applied_commit(st_store *st);
/* Begins a write txn (-EROFS on a read-only store). */
int st_txn_write(st_store *st, MDB_txn **out);
/* Begins a read txn (never waits for a writer). */
int st_txn_read(st_store *st, MDB_txn **out);

/* ------------------------------------------------------------------ */
/* Level 0. progress.c: reports of long work                          */
/* ------------------------------------------------------------------ */

/* One piece of long work reporting through st_options.progress. */
typedef struct st_progress {
    void (*fn)(void *ctx, const char *what, uint64_t done, uint64_t total);
    void *ctx;
    const char *what;
    uint64_t total, done, step, next;
} st_progress;

/* Starts p (reports 0 of total). what must outlive p. */
void st_progress_start(st_progress *p, const st_options *o, const char *what, uint64_t total);
/* Counts n more items done (reports every 1/200 of total or so). */
void st_progress_add(st_progress *p, uint64_t n);
/* Reports total of total. */
void st_progress_end(st_progress *p);

/* ------------------------------------------------------------------ */
/* Level 2. readers.c: reader slots of dead processes                 */
/* ------------------------------------------------------------------ */

/* Frees the LMDB reader slots of processes that died inside a read
 * transaction (they pin old pages), counts them in st->stale_readers and
 * logs a warning; a failure to check is logged too. */
void st_readers_clear(st_store *st);

/* ------------------------------------------------------------------ */
/* Level 2. group.c: group commit                                     */
/* ------------------------------------------------------------------ */

void st_group_init(st_group *g);
void st_group_destroy(st_group *g);
/* Announces an operation on its way to st_group_join (the open group's
 * leader waits for it, within the group's bounds); st_group_withdraw if it
 * gives up before joining. */
void st_group_announce(st_store *st);
void st_group_withdraw(st_store *st);
/* Joins the open commit group (or opens one and leads it) and begins m's
 * nested txn, m->txn; the caller announced itself. Waits while another
 * member runs or the group is full. 0, -EROFS, or an LMDB error; on error
 * m is not in a group and st_group_finish must not be called. */
int st_group_join(st_store *st, st_group_member *m);
/* Ends m's part: commits its nested txn into the group when rc is 0
 * (bytes: its payload, for the group's bound), else aborts it, undoing
 * only m's changes. Then st_group_wait must follow. */
void st_group_finish(st_store *st, st_group_member *m, int rc, size_t bytes);
/* Returns once m's result is known: its own error, or the result of the
 * commit of the group holding it (0: committed). The leader commits here.
 * Call it holding no collection lock. */
int st_group_wait(st_store *st, st_group_member *m);

/* ------------------------------------------------------------------ */
/* Level 0. apply_order.c: committed changes applied in commit order  */
/* ------------------------------------------------------------------ */

/* Takes the next apply ticket of c (wlock held, child txn committed). */
uint64_t st_apply_ticket(st_coll *c);
/* Waits until every earlier ticket of c is done. */
void st_apply_turn(st_coll *c, uint64_t ticket);
/* Ends the turn of ticket: the next one may apply. */
void st_apply_turn_end(st_coll *c);
/* Locks c->wlock and waits until every ticket of c is done: the index,
 * names and counters then equal the committed records, and stay so while
 * the wlock is held. For everything but the write-op frame that takes
 * the wlock (snapshots, the op-log trim, name fills, collection ops). */
void st_coll_lock_settled(st_coll *c);

/* ------------------------------------------------------------------ */
/* Level 0. space.c: the max_size bound                               */
/* ------------------------------------------------------------------ */

/* The LMDB map size for a bound of max_size bytes (0 = unbounded). */
uint64_t st_space_map_size(uint64_t max_size);
/* -ENOSPC when `need` more bytes would take the store past max_size
 * (pages on LMDB's free list count as available). 0 without a bound. */
int st_space_check(st_store *st, MDB_txn *txn, uint64_t need);
/* A health line (ending in a newline) when the store is full now: at its
 * max_size bound, or, unbounded, with its filesystem (nearly) out of
 * space; else an empty string. */
void st_space_problem(st_store *st, char *line, size_t cap);

/* ------------------------------------------------------------------ */
/* Level 2. format.c: FORMAT, KEYCHECK and counter records            */
/* ------------------------------------------------------------------ */

/* Creates the FORMAT, KEYCHECK and counter records of a new store (and
 * derives st->crypto from the options' key). 0 or a negative errno. */
int st_format_init(st_store *st, MDB_txn *txn);
/* Checks the FORMAT record (value fv) and the key; derives st->crypto.
 * 0, -EPROTO (another version), -EIO (damaged), -EKEYREJECTED; each with
 * a reason in errbuf. */
int st_format_check(st_store *st, MDB_txn *txn, const MDB_val *fv);
/* META counter `key` (a C string): put v / get *v. 0, -ENOENT, -EIO. */
int st_meta_counter_put(st_store *st, MDB_txn *txn, const char *key, uint64_t v);
int st_meta_counter_get(st_store *st, MDB_txn *txn, const char *key, uint64_t *v);

/* ------------------------------------------------------------------ */
/* Level 2. vec_rec.c: keys and one vector's records                  */
/* ------------------------------------------------------------------ */

/* Longest keys: VECS (u32 coll | name key), XATTRS (u32 coll | u32 id |
 * name key of the xattr name). */
#define ST_VEC_KEY_MAX (4 + ST_NAME_MAX)
#define ST_XATTR_KEY_MAX (8 + ST_XATTR_NAME_MAX)

/* Key helpers. */
static inline void st_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint32_t st_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void st_be64(uint8_t *p, uint64_t v)
{
    st_be32(p, (uint32_t)(v >> 32));
    st_be32(p + 4, (uint32_t)v);
}
static inline uint64_t st_get_be64(const uint8_t *p)
{
    return ((uint64_t)st_get_be32(p) << 32) | st_get_be32(p + 4);
}

/* VECS key of vector name (len bytes) of coll into out
 * (ST_VEC_KEY_MAX); returns its length. */
size_t st_key_vec(st_store *st, uint32_t coll, const char *name, size_t len, uint8_t *out);
/* SLOTS/CONTENT/FREE/DIRTY key of (coll, id). */
void st_key_id(uint32_t coll, uint32_t id, uint8_t out[8]);
/* ORDER key of (coll, seq). */
void st_key_seq(uint32_t coll, uint64_t seq, uint8_t out[12]);
/* XATTRS key of (coll, id, xname) into out (ST_XATTR_KEY_MAX); returns
 * its length. */
size_t st_key_xattr(st_store *st, uint32_t coll, uint32_t id, const char *xname, uint8_t *out);

/* The VEC record of name (len bytes) in coll. 0, -ENOENT, -EIO (damage or
 * a record of another name), -ENOMEM. */
int st_vec_rec_get(st_store *st, MDB_txn *txn, uint32_t coll, const char *name, size_t len,
                   st_vec_rec *out, vc_buf *scratch);
/* Writes r as the VEC record of r->name. 0 or a negative errno. */
int st_vec_rec_put(st_store *st, MDB_txn *txn, uint32_t coll, const st_vec_rec *r);
/* The SLOT record of id: *name (name_len bytes, not NUL-terminated) and
 * *vec (dim floats, maybe unaligned) point into the map or *scratch, valid
 * until the txn ends or scratch is reused. 0, -ENOENT, -EIO, -ENOMEM. */
/* Called by st_slot_walk for each SLOT record: its id and vector (dim
 * floats, aligned, valid during the call). Nonzero stops the walk. */
typedef int (*st_slot_fn)(void *ctx, uint32_t id, const float *vec);
/* Calls fn for every SLOT record of coll in txn, in id order. A record
 * that fails to open or decode, or holds another dim, is logged and stops
 * the walk with -EIO. Returns 0, fn's nonzero value, -EIO, -ENOMEM or an
 * LMDB error. */
int st_slot_walk(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t dim, st_slot_fn fn, void *ctx);
int st_slot_get(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const char **name,
                size_t *name_len, const uint8_t **vec, uint32_t *dim, vc_buf *scratch);
/* Writes the SLOT record of id: name (nl bytes) and vec (dim floats). */
int st_slot_put(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const char *name, size_t nl,
                const float *vec, uint32_t dim);
/* The engine's vf_vec_source over coll's SLOT records, read in txn (a
 * transaction of the calling thread). get(id) returns the float vector of
 * SLOT id: a pointer into the LMDB map (zero-copy, valid until the txn
 * ends) when the store is unencrypted and the vector is 4-byte aligned,
 * else the engine's buf, filled (decrypted). NULL when the slot is absent,
 * damaged or of another dim. One source per thread: it holds a scratch. */
typedef struct st_slot_source {
    st_store *st;
    MDB_txn *txn;
    uint32_t coll, dim;
    vc_buf scratch;
    int err; /* the first read error get() met (not an absent or damaged
                slot: those are NULL), or 0 */
} st_slot_source;
/* Sets s up and returns the source to hand the engine. */
vf_vec_source st_slot_source_begin(st_slot_source *s, st_store *st, MDB_txn *txn, uint32_t coll,
                                   uint32_t dim);
/* The source over s (as begin returned it), after s->dim was changed to
 * the dim of the index being loaded: get() serves only slots of that dim. */
vf_vec_source st_slot_source_vec(st_slot_source *s);
/* Releases s's scratch (before or after the txn ends). */
void st_slot_source_end(st_slot_source *s);
/* Name of slot id of coll into out (ST_NAME_MAX + 1). 0, -ENOENT, -EIO. */
int st_slot_name(st_store *st, MDB_txn *txn, uint32_t coll_id, uint32_t id, char *out,
                 vc_buf *scratch);
/* Writes ORDER(seq) of coll: the name key of vector name (nl bytes). */
int st_order_put(st_store *st, MDB_txn *txn, uint32_t coll, uint64_t seq, const char *name,
                 size_t nl);

/* ------------------------------------------------------------------ */
/* Level 3. content.c: a vector's content, stored once                */
/* ------------------------------------------------------------------ */

/* A decoded CONTENT or CONTENT_VEC body: the bytes as written (of_vec
 * false), or the bytes before the SLOT's dim floats (of_vec). bytes points
 * into the body. */
typedef struct st_content_rec {
    bool of_vec;
    const uint8_t *bytes;
    size_t len;
    uint32_t dim;
} st_content_rec;

/* The buffers one content read uses: the CONTENT record's, the SLOT's (both
 * used only by an encrypted store) and the content put together from a
 * CONTENT_VEC. Start them VC_BUF_INIT; reusable across reads. */
typedef struct st_content_bufs {
    vc_buf record, slot, built;
} st_content_bufs;

/* Writes the CONTENT record of id: CONTENT_VEC when content (len bytes)
 * ends with the bytes of vec (dim floats, the vector of the SLOT record
 * written with it) after at most ST_CONTENT_PREFIX_MAX bytes, else the
 * bytes as they are. 0 or a negative errno. */
int st_content_put(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const void *content,
                   size_t len, const float *vec, uint32_t dim);
/* Decodes either kind of CONTENT body. 0 or -EIO. */
int st_content_dec(const void *body, size_t blen, st_content_rec *out);
/* The length of the content r stands for. */
size_t st_content_size(const st_content_rec *r);
/* The content of id in txn: *data (*len bytes) points into the map or into
 * one of bufs, valid until the txn ends or bufs are reused. 0, -ENOENT (no
 * CONTENT record), -EIO (damaged, or a CONTENT_VEC whose SLOT is missing or
 * of another dim), -ENOMEM. */
int st_content_get(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const void **data,
                   size_t *len, st_content_bufs *bufs);
void st_content_bufs_release(st_content_bufs *bufs);

/* ------------------------------------------------------------------ */
/* Level 3. vidx.c: the ordered metadata index                        */
/* ------------------------------------------------------------------ */

/* Adds (add) or removes the VIDX entries of user xattr xname (xl bytes,
 * "user." first) = val (vl bytes) of id in txn; nothing without
 * st->vidx_on. 0 or a negative errno. */
int st_vidx_change(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const char *xname,
                   size_t xl, const void *val, size_t vl, bool add);
/* Called with each id a selection passes; nonzero stops it. */
typedef int (*st_vidx_fn)(void *ctx, uint32_t id);
/* Calls fn with the ids of coll whose user.KEY passes leaf n (a CMP other
 * than `=`, with literal lit, or an EXISTS), walking only the key's range
 * in VIDX (needs st->vidx_on). An id may come twice. 0, fn's nonzero
 * value, -EIO (an entry without its record), -ENOMEM or an LMDB error. */
int st_vidx_select(st_store *st, MDB_txn *txn, uint32_t coll, const st_fstr *key, const st_fnode *n,
                   const st_flit *lit, st_vidx_fn fn, void *ctx);
/* For st_check, which reports LMDB errors in LMDB's words: *n = how many
 * VIDX entries user xattr xname = val of id has (1 or 2), *missing = how
 * many of them are absent. 0 or an LMDB return code. */
int st_vidx_has(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const char *xname,
                size_t xl, const void *val, size_t vl, int *n, int *missing);
/* The number of VIDX entries (ids) of coll into *n. 0 or an LMDB return
 * code (for st_check). */
int st_vidx_count(st_store *st, MDB_txn *txn, uint32_t coll, uint64_t *n);
/* Sets st->vidx_on at open (txn: the open's); a writable unencrypted store
 * without META "vidx" is indexed first, in txn, and logged. 0 or a
 * negative errno. */
int st_vidx_open(st_store *st, MDB_txn *txn);

/* ------------------------------------------------------------------ */
/* Level 4. filter_eval.c: the ids that pass a filter                 */
/* ------------------------------------------------------------------ */

/* A set of ids as a bitmap: bit id of w[id / 64]; nw words. */
typedef struct st_idset {
    uint64_t *w;
    size_t nw;
} st_idset;

/* The ids of collection coll (SLOTS ids) that pass f, read in txn, into
 * *out (st_idset_release). `=` and `in` come from MIDX; any other
 * comparison or `exists` walks its key's range in VIDX (st->vidx_on), or
 * else the collection's XATTRS records once.
 * 0, -EIO (a damaged record), -ENOMEM or an LMDB error; *out empty then. */
int st_filter_eval(st_store *st, MDB_txn *txn, uint32_t coll, const st_filter *f, st_idset *out);
/* How many ids s holds. */
size_t st_idset_count(const st_idset *s);
/* The first n ids of s (n = st_idset_count: all of them), ascending, in a
 * new array (free), or NULL on ENOMEM: the list the engine's exact plan
 * scores (vf_filter.ids). */
uint32_t *st_idset_list(const st_idset *s, size_t n);
/* Frees s's words and empties it. */
void st_idset_release(st_idset *s);

/* ------------------------------------------------------------------ */
/* Level 0. query_sample.c: users' queries kept for ef tuning         */
/* ------------------------------------------------------------------ */

void st_qsample_init(st_qsample *q, uint64_t seed);
/* Wipes the sample and frees it (at close). */
void st_qsample_destroy(st_qsample *q);
/* Wipes the sample: it starts again from the next query. */
void st_qsample_reset(st_qsample *q);
/* Offers nq queries of dim floats to the sample (reservoir sampling). A
 * query of another dim than the sample's restarts it. Never fails: out of
 * memory, nothing is kept. */
void st_qsample_offer(st_qsample *q, const float *queries, size_t nq, uint32_t dim);
/* Queries that entered the sample since the last take. */
uint64_t st_qsample_fresh(st_qsample *q);
/* A copy of the sample's queries of dim in *out (n of them; NULL, 0 when
 * none), freed with st_qsample_free_copy; resets fresh. 0 or -ENOMEM. */
int st_qsample_take(st_qsample *q, uint32_t dim, float **out, size_t *n);
/* Wipes and frees a copy from st_qsample_take. */
void st_qsample_free_copy(float *copy, size_t n, uint32_t dim);

/* ------------------------------------------------------------------ */
/* Level 3. name_cache.c: vector names by engine id                   */
/* ------------------------------------------------------------------ */

/* Slot records a fill step copies (4096): bounds how long one step holds
 * the collection's writers back. Tests lower it to interleave writers with
 * a fill. */
extern size_t st_names_fill_chunk;
/* Starts an empty table, READY (a new collection) or FILLING. */
void st_names_init(st_names *n, bool ready);
/* Frees what the table holds. */
void st_names_destroy(st_names *n);
/* Applies the name changes of a committed operation, in order. Caller
 * is in the operation's apply turn (apply_order.c). Never fails: out of
 * memory, the table is cleared and filled again (searches use LMDB
 * meanwhile). */
void st_names_apply(st_names *n, const st_name_change *ch, size_t count);
/* Copies the next chunk of c's SLOTS names into c->names (takes c->wlock);
 * damaged records are left unnamed (logged). *done = the table is READY.
 * 0, -ENOMEM or an LMDB error (the table is then cleared and the next step
 * starts over). */
int st_names_fill_step(st_store *st, st_coll *c, bool *done);
/* Lookups: begin returns true (holding the read lock) if the table is
 * READY, else false (no lock: name from LMDB). lookup copies id's name
 * into out, false if id has no vector. end releases the read lock. */
bool st_names_lookup_begin(st_names *n);
bool st_names_lookup(const st_names *n, uint32_t id, char out[ST_NAME_MAX + 1]);
void st_names_lookup_end(st_names *n);
/* Frees what the table holds and leaves it READY and empty (a dropped
 * collection, whose object lives on until close). */
void st_names_clear(st_names *n);
/* Bytes the table holds (for vecfs_index_memory_bytes); takes no lock. */
size_t st_names_memory(st_names *n);
/* Compares the table with c's SLOTS records (tests). 0, -EAGAIN (not
 * READY yet), -EIO (they differ), or an LMDB error. */
int st_names_check(st_store *st, st_coll *c);

/* ------------------------------------------------------------------ */
/* Level 4. coll.c: the collection table and COLL records             */
/* ------------------------------------------------------------------ */

/* Finds a collection by name (NULL if none). The pointer stays valid until
 * st_store_close (dropped collections go to the graveyard). */
st_coll *st_coll_find(st_store *st, const char *name);
/* st_coll_find with colls_lock already held. */
st_coll *st_coll_find_locked(st_store *st, const char *name);
/* Finds by id. */
st_coll *st_coll_find_id(st_store *st, uint32_t id);
/* Finds the collection named by an st_coll_* call: 0, -EINVAL (st or name
 * NULL), -ENOENT (none, or a name none can have), -ENAMETOOLONG. */
int st_coll_named(st_store *st, const char *name, st_coll **out);
/* Finds the collection named by a vector, search or batch call: 0,
 * -EINVAL (st or name NULL), -ENOENT (none, or a name none can have, too
 * long included). *out as st_coll_find. */
int st_coll_lookup(st_store *st, const char *name, st_coll **out);

/* Collection record I/O inside a txn (key from the name). */
int st_coll_rec_get(st_store *st, MDB_txn *txn, const char *name, st_coll_rec *out);
int st_coll_rec_put(st_store *st, MDB_txn *txn, const st_coll_rec *r);
int st_coll_rec_del(st_store *st, MDB_txn *txn, const char *name);
/* The committed COLL record of name, read in a read txn of its own.
 * Returns 0, -ENOENT (also a name none can have), -ENAMETOOLONG, or an
 * LMDB error. */
int st_coll_rec_read(st_store *st, const char *name, st_coll_rec *out);

/* A new collection object for record r (NULL: out of memory). */
st_coll *st_coll_new(const st_coll_rec *r);
/* Frees c and what it holds. NULL is a no-op. */
void st_coll_free(st_coll *c);
/* Makes room for one more collection in the table (colls_lock
 * write-held), so that the next st_colls_add cannot fail: a create calls
 * it before its commit. 0, -ENOMEM. */
int st_colls_reserve(st_store *st);
/* Adds c to the table, in id order (colls_lock write-held). 0, -ENOMEM
 * (never after st_colls_reserve). */
int st_colls_add(st_store *st, st_coll *c);
/* Moves c from the table to the graveyard (colls_lock write-held). */
void st_colls_bury(st_store *st, st_coll *c);
/* The collections now (an array of *n from vc_malloc; NULL on ENOMEM). The
 * objects stay valid until close: dropped ones go to the graveyard. */
st_coll **st_colls_copy(st_store *st, size_t *n);
/* Records n changes of c (for the snapshot policy). mu must not be held. */
void st_coll_note_changes(st_coll *c, uint64_t n);

/* ------------------------------------------------------------------ */
/* Level 5. oplog.c: the DIRTY database                               */
/* ------------------------------------------------------------------ */

/* Marks id of c dirty at c->cur_gen (c->wlock held). */
int st_oplog_mark(st_store *st, MDB_txn *txn, st_coll *c, uint32_t id);
/* Re-applies every DIRTY id of coll_id to h (insert the SLOT vector, or
 * remove; h NULL: only count). *n_dirty = entries seen, *max_gen = largest
 * generation. */
int st_oplog_replay(st_store *st, MDB_txn *txn, uint32_t coll_id, vf_hnsw *h, size_t *n_dirty,
                    uint64_t *max_gen);
/* Deletes c's DIRTY entries with gen <= g and sets snap_gen = g, in one
 * txn (takes c->wlock). 0, -ENOENT (c was dropped), or an error. */
int st_oplog_trim(st_store *st, st_coll *c, uint64_t g);

/* ------------------------------------------------------------------ */
/* Level 6. snapshot.c: snapshot files                                */
/* ------------------------------------------------------------------ */

/* Writes c's snapshot (snap_mu held by the caller). force: even without changes. */
int st_snap_write(st_store *st, st_coll *c, bool force);
/* st_snap_write from a background thread: takes snap_mu; a failure is
 * counted in st->errors and logged (no caller to return it to). */
void st_snap_write_background(st_store *st, st_coll *c);
/* Path of c's snapshot file into buf. */
void st_snap_path(const st_store *st, uint32_t coll_id, char *buf, size_t cap);
/* Reads and verifies a snapshot file of collection rec into *out (for
 * open and check); *gen and *txnid from its header. -ENOENT, -EILSEQ (damaged),
 * -ESTALE (another collection/uuid), -ENOMEM. */
int st_snap_read(const st_store *st, const st_coll_rec *rec, st_slot_source *slots, vf_hnsw **out,
                 uint64_t *gen, uint64_t *txnid);
/* Removes c's snapshot file. */
void st_snap_remove(st_store *st, uint32_t coll_id);

/* ------------------------------------------------------------------ */
/* Level 7. coll_index.c: a collection's in-memory index              */
/* ------------------------------------------------------------------ */

/* Loads c's index from its snapshot + op log replay, or rebuilds it.
 * Called at open (no other thread). *rebuilt says which. */
int st_coll_index_load(st_store *st, st_coll *c, const st_coll_rec *rec, bool *rebuilt);
/* Makes room for one more retired index (replaced indexes stay allocated
 * until close: searches may hold them) before a change commits, so that
 * retiring after the commit cannot fail. Callers hold c->wlock (config
 * changes, conversions). 0 or -ENOMEM. */
int st_coll_retire_reserve(st_coll *c);
/* true when the graph h was built with cfg's dim, metric, m,
 * ef_construction and quantization (a snapshot taken before a config
 * change is not). */
bool st_snap_params_match(const vf_hnsw *h, const st_config *cfg);
/* Rebuilds c's index from the slot records in txn into *out. */
int st_index_rebuild(st_store *st, MDB_txn *txn, st_coll *c, const st_config *cfg, vf_hnsw **out);
/* The same in a read txn of its own, for a caller holding c->wlock (so the
 * vectors cannot change; the read txn leaves LMDB's writer lock free). */
int st_index_rebuild_locked(st_store *st, st_coll *c, const st_config *cfg, vf_hnsw **out);
/* A new, empty index for c's vectors of dim under cfg, in *out (not
 * installed in c: the write-op frame installs it once its first inserts
 * are committed). 0, -ENOMEM, -EINVAL. */
int st_coll_index_new(const st_coll *c, const st_config *cfg, uint32_t dim, vf_hnsw **out);
/* The hnsw params for a config (config.c). */
void st_config_hnsw(const st_config *cfg, uint32_t dim, vf_hnsw_params *p);
/* Collections with at most this many vectors are searched exactly
 * (search.c), so they need no ef and are not tuned. */
#define ST_EXACT_MAX 2048u
/* For collections with ef_search = auto: measures the ef that reaches the
 * target recall (vf_hnsw_tune, k 10) on the sampled user queries, filled
 * up with perturbed held-out vectors while they are few, and keeps it in
 * c->auto_ef and c->tuning. Due when never tuned, after changes to a
 * tenth of the collection, or when the sample renewed itself (coll_index.c
 * says how much), and not sooner than ten times the last tuning's own
 * duration after it (bounded CPU). force: now, whatever is due.
 * Runs in the background thread; searches and writers go on. */
int st_coll_autotune(st_store *st, st_coll *c, bool force);
/* The ef of an ef_search = auto search for k hits: `tuned` (the tuned ef
 * for k 10, scaled for larger k), or before any tuning (tuned 0) a fixed
 * ladder by cfg's target_recall; never below k. */
uint32_t st_coll_auto_ef(const st_config *cfg, uint32_t tuned, size_t k);

/* ------------------------------------------------------------------ */
/* Level 8. write_op.c: the frame of a writing operation              */
/* ------------------------------------------------------------------ */

typedef struct st_op {
    st_store *st;
    st_coll *c;
    int prio;           /* st_write_priority_raise's result, restored at the end */
    st_group_member gm; /* its place in a commit group */
    MDB_txn *txn;       /* gm's nested txn */
    uint64_t bytes;     /* payload written, for the group's bound */
    st_coll_rec rec;    /* the collection record, written back at commit */
    vc_buf scratch;
    /* Index changes to apply after commit. */
    uint32_t *ins_ids;
    float *ins_vecs;
    size_t nins, cap_ins;
    uint32_t *del_ids;
    size_t ndel, cap_del;
    uint32_t dim;
    /* Made by op_prepare before the commit, so that applying cannot run
     * out of memory in the store: the inserts with one row per id (the
     * last row wins), and the index when the collection had none. */
    uint32_t *apply_ids;
    float *apply_vecs;
    size_t napply;
    vf_hnsw *new_index;
    /* Name changes for c->names, applied after commit; the names point at
     * the caller's strings, which outlive the op. */
    st_name_change *names;
    size_t nnames, cap_names;
} st_op;

/* Starts an op on collection coll (states in write_op.c). Returns 0, or
 * -EINVAL (st NULL), -ENOENT, -EROFS, an LMDB error; on error nothing is
 * held and st_op_end must not be called. */
int st_op_begin(st_store *st, const char *coll, st_op *o);
/* Queues "insert vec (dim floats) as id" for after the commit. */
int st_op_ins(st_op *o, uint32_t id, const float *vec, uint32_t dim);
/* Queues "remove id" for after the commit. */
int st_op_del(st_op *o, uint32_t id);
/* Queues "id is now called name" (name NULL: id has no vector). */
int st_op_name(st_op *o, uint32_t id, const char *name, size_t len);
/* Commits (if rc is 0, writing the COLL record back), applies the queued
 * changes and releases the collection. Returns the op's result. */
int st_op_end(st_op *o, int rc);

/* ------------------------------------------------------------------ */
/* Level 5. vec_read.c: reads of vectors                              */
/* ------------------------------------------------------------------ */

/* One vector's VEC record read in a read txn of its own (vec_read.c). */
typedef struct st_vec_view {
    MDB_txn *txn; /* abort with st_vec_view_end */
    uint32_t coll;
    st_vec_rec rec;
    vc_buf scratch;
} st_vec_view;

/* Finds collection coll and reads vector name's VEC record in a new read
 * txn. 0, -EINVAL (NULL), -ENOENT (no such collection or vector, or a
 * name none can have), -ENAMETOOLONG, -EIO; on error nothing is held. */
int st_vec_view_begin(st_store *st, const char *coll, const char *name, st_vec_view *v);
/* Ends the view's txn and frees its scratch. */
void st_vec_view_end(st_vec_view *v);

/* ------------------------------------------------------------------ */
/* Level 9. xattr.c: xattrs and the metadata index                   */
/* ------------------------------------------------------------------ */

/* Sets xattr xname of id inside o (flags as st_xattr_set). */
int st_xattr_store(st_op *o, uint32_t id, const char *xname, const void *value, size_t len,
                   int flags);
/* Removes every xattr (and metadata index entry) of id inside o. */
int st_xattrs_drop(st_op *o, uint32_t id);

/* ------------------------------------------------------------------ */
/* Level 10. vec_write.c: writes of one vector                        */
/* ------------------------------------------------------------------ */

/* Checks a row that needs no LMDB (name, sizes, vector): 0, -EINVAL,
 * -ENAMETOOLONG, -EFBIG; *nl = the name's length. */
int st_vec_row_check(const char *name, size_t *nl, const void *content, size_t len,
                     const float *vec, uint32_t dim);
/* Inserts or overwrites one vector inside o (arguments as st_vec_put,
 * already checked by st_vec_row_check). *id_out (may be NULL) = its id.
 * held NULL: every record is written. Else the VEC record is not written
 * but left in *held, for the caller to write before o ends (a batch
 * writes them in key order); until then a second store of the same name
 * in o would not see the first. */
int st_vec_store(st_op *o, const char *name, size_t nl, const void *content, size_t len,
                 const float *vec, uint32_t dim, const st_attr *attr, unsigned mask,
                 uint32_t *id_out, st_vec_rec *held);

/* ------------------------------------------------------------------ */
/* Level 7. coll_ops.c: collections as directories                   */
/* ------------------------------------------------------------------ */

/* Read-modify-write of a COLL record's attributes: the fields in mask from
 * attr (ctime now unless in mask), and .config's mtime when cfg_mtime is
 * not NULL (alone, it leaves ctime: the collection did not change).
 * 0, -ENOENT, -ENAMETOOLONG, or an error. */
int st_coll_attr_update(st_store *st, const char *name, const st_attr *attr, unsigned mask,
                        const struct timespec *cfg_mtime);

/* ------------------------------------------------------------------ */
/* Level 9. coll_config.c: a collection's .config                    */
/* ------------------------------------------------------------------ */

/* Whether the collection of record r may take config next: -EINVAL when
 * it holds vectors and next changes dim, else 0 (the RADOS mode checks
 * this before it appends the change). */
int st_coll_config_change_check(const st_coll_rec *r, const st_config *next);

/* ------------------------------------------------------------------ */
/* Level 8. background.c: the background thread                      */
/* ------------------------------------------------------------------ */

/* Starts the background thread (st->bg_running). 0 or -EAGAIN. */
int st_bg_start(st_store *st);
/* Stops and joins it, if running. */
void st_bg_stop(st_store *st);

/* ------------------------------------------------------------------ */
/* Level 9. open.c: open and close                                   */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Level 3. record_scan.c: exact search over the records              */
/* ------------------------------------------------------------------ */

/* Exact k nearest of query among the SLOT records of coll in txn that
 * pass filter (may be NULL), nearest first, into out (room for k); *n_out
 * their number. For a collection whose index is being rebuilt. 0, -EIO
 * (a damaged record), -ENOMEM, or an LMDB error. */
int st_records_search(st_store *st, MDB_txn *txn, uint32_t coll, const st_config *cfg,
                      const float *query, size_t k, const vf_filter *filter, vf_hit *out,
                      size_t *n_out);

/* ------------------------------------------------------------------ */
/* Level 8. convert.c: converting an index's quantization             */
/* ------------------------------------------------------------------ */

/* Has the converter thread convert every collection marked converting
 * (starting it if it is not running). 0, or -EAGAIN (no thread). */
int st_convert_kick(st_store *st);
/* Stops the converter (close): waits for the conversion in progress. */
void st_convert_stop(st_store *st);
/* Re-learns c's int8 quantizer if the engine reports drift (background
 * thread; takes c->wlock settled). 0, or an error (logged). */
int st_convert_relearn_due(st_store *st, st_coll *c);

/* ------------------------------------------------------------------ */
/* Level 5. rebuild.c: rebuilding an index in the background          */
/* ------------------------------------------------------------------ */

/* Collections with at least this many vectors rebuild in the background
 * when their snapshot cannot be used (st_options.rebuild_background_min). */
uint64_t st_rebuild_background_min(const st_store *st);
/* Marks c as rebuilding (its index, just created, is empty) and says so
 * in health; the thread started by st_rebuild_start fills it. */
void st_rebuild_mark(st_store *st, st_coll *c, const char *name, uint64_t count);
/* Marks ids (n of them, then nmore more) as changed by a writer, before
 * it applies them, while c rebuilds; nothing otherwise. */
void st_rebuild_touch(st_coll *c, const uint32_t *ids, size_t n, const uint32_t *more,
                      size_t nmore);
/* Starts the thread that fills the indexes of the collections marked
 * rebuilding. 0 or -EAGAIN. */
int st_rebuild_start(st_store *st);
/* Stops it between chunks and joins it (an unfinished index stays marked
 * and is never snapshotted). */
void st_rebuild_stop(st_store *st);

/* ------------------------------------------------------------------ */
/* Level 5. rados_check.c: st_rados_check (store.h)                   */
/* Level 12. rados_node.c: a RADOS node, st_rados_open (store.h)      */
/* ------------------------------------------------------------------ */
/* Both only define store.h's functions: a node plugs st_log_hooks into
 * its store (st->log_hooks, st->log_ctx) and removes them in its stop
 * hook, which st_store_close calls first. */

#endif /* VECFS_STORE_INTERNAL_H */
