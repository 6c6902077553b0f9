/*
 * store.h — the vecfs store: collections of named vectors kept in LMDB,
 * one HNSW index per collection kept in memory and snapshotted to
 * DATADIR, optional encryption at rest (AES-256-GCM, OpenSSL).
 *
 * This header is the manual of everything fs/ needs. It depends only on
 * engine.h (vf_metric) and libc.
 *
 * Conventions
 *   - Functions that can fail return 0 or a negative errno. The codes each
 *     function can return are listed with it; besides those, any function
 *     that touches the store may return -ENOMEM, -EIO (an I/O error, or a
 *     record that fails its checksum/authentication: damaged data is never
 *     returned) and -EROFS (a write on a store opened read-only).
 *   - One call = one LMDB transaction: when a writing call returns 0 its
 *     change is committed (visible to every later call, and it survives a
 *     crash of the process); when it returns an error nothing changed.
 *     Committed is not durable: st_store_sync() makes it durable (see
 *     docs/durability.md).
 *   - Names are NUL-terminated byte strings. Collection names match
 *     [A-Za-z0-9._-]{1,64} and do not start with '.'. Vector names are
 *     1..ST_NAME_MAX bytes, contain no '/', and are not "." or "..". The
 *     rules live in one place, st_coll_name_check / st_vec_name_check /
 *     st_xattr_name_check below (store/input_rules.c). The store reserves
 *     no other names: fs/ rejects ".config", ".query", ".import"
 *     (st_name_is_reserved).
 *   - A missing collection is -ENOENT, a missing vector is -ENOENT.
 *   - A name that breaks the rules:
 *       * given to a call that creates an object or renames one TO it
 *         (st_coll_create, st_vec_put, st_batch_put, the target `to` of
 *         st_coll_rename and st_vec_rename) is -EINVAL (-ENAMETOOLONG
 *         when too long): the caller asked for something impossible;
 *       * given to a call that looks up an existing object (stat, get,
 *         pread, vector, list, delete, setattr, the config calls, the
 *         xattr calls, the source `from` of a rename, st_coll_drop, the
 *         collection of every vector, batch and search call, `like` of
 *         st_search_like_opt) is -ENOENT: no such object can exist, so none
 *         does. Exceptions kept from before: an over-long collection or
 *         vector name given as such to st_coll_* and st_vec_* / st_xattr_*
 *         / st_read_content is -ENAMETOOLONG (as lookup(2) says); an
 *         over-long collection name given as the collection of a vector,
 *         batch or search call is -ENOENT. NULL is -EINVAL everywhere.
 *     -EINVAL otherwise means bad content or arguments (a vector of the
 *     wrong dim, a bad value, a bad config, bad flags).
 *   - Free functions accept NULL.
 *
 * Threads
 *   Every function may be called from many threads at once on the same
 *   st_store (FUSE is multithreaded). Readers (stat, get, list, xattr
 *   get/list, search) never wait for a writer or for the disk: they read
 *   an LMDB snapshot (MVCC) and the in-memory index. Writers of one
 *   collection are serialized; writers of different collections only
 *   share LMDB's single write transaction for the (short) record writes,
 *   the index update runs outside it. An st_read handle belongs to one
 *   thread at a time. List callbacks run inside a read transaction and must
 *   not call writing functions of the same store.
 */
#ifndef VECFS_STORE_H
#define VECFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest vector name, bytes (without the NUL). */
#define ST_NAME_MAX 255u
/* Longest collection name, bytes. */
#define ST_COLL_NAME_MAX 64u
/* Longest xattr name, bytes (as Linux XATTR_NAME_MAX). */
#define ST_XATTR_NAME_MAX 255u
/* Largest xattr value, bytes. */
#define ST_XATTR_VALUE_MAX 65536u
/* Largest vector file content, bytes (a collection may allow less). */
#define ST_CONTENT_MAX (256u * 1024u * 1024u)
/* Length of a raw key (AES-256). */
#define ST_KEY_LEN 32u
/* Largest k for a search. */
#define ST_K_MAX 10000u
/* Largest magnitude of a vector or query value. Distances are float32 and
 * must stay finite, or ranking by them is meaningless: for dim <= 65536
 * (VF_MAX_DIM) and |x| <= 1e15 a squared l2 distance is at most
 * 4 * 65536 * 1e30 = 2.6e35 and a dot product 6.6e34, both far below
 * FLT_MAX (3.4e38) with room for rounding. Checking inputs costs one
 * compare per value; computing in double instead would halve the SIMD
 * distance kernels' throughput. The bound holds for every metric because
 * a collection's metric can change while it holds vectors. */
#define ST_VALUE_MAX 1e15f

/* ------------------------------------------------------------------ */
/* Input rules (store/input_rules.c): the one place for names and values */
/* ------------------------------------------------------------------ */

/* true when each of the n values is finite and |value| <= ST_VALUE_MAX
 * (what st_vec_put, st_batch_put and the searches accept). */
bool st_values_ok(const float *v, size_t n);

/*
 * Whether name (len bytes, not NUL-terminated; NUL bytes are data) may be
 * a collection name: 1..ST_COLL_NAME_MAX bytes of [A-Za-z0-9._-], not
 * starting with '.'. Every valid collection name is a valid vector name.
 * Returns 0, -EINVAL (not allowed, or name NULL), -ENAMETOOLONG
 * (len > ST_COLL_NAME_MAX). Pure: reads only the len bytes.
 */
int st_coll_name_check(const char *name, size_t len);

/*
 * Whether name (len bytes, as above) may be a vector name: 1..ST_NAME_MAX
 * bytes, no '/' and no NUL, not "." or "..". Returns 0, -EINVAL,
 * -ENAMETOOLONG (len > ST_NAME_MAX).
 */
int st_vec_name_check(const char *name, size_t len);

/* true when name (len bytes) is one fs/ keeps for itself inside a
 * collection (".config", ".query", ".import"); the store accepts them as
 * vector names. NULL is false. */
bool st_name_is_reserved(const char *name, size_t len);

/*
 * Whether xname (len bytes) may be an xattr name: 1..ST_XATTR_NAME_MAX
 * bytes without NUL, any namespace. Returns 0, -EINVAL (NULL), -ERANGE
 * (empty, too long or holding a NUL; what setxattr(2) returns).
 */
int st_xattr_name_check(const char *xname, size_t len);

/* ------------------------------------------------------------------ */
/* Store lifecycle                                                      */
/* ------------------------------------------------------------------ */

typedef struct st_store st_store;

/* How commits reach the disk (docs/durability.md says what each promises). */
typedef enum st_sync_mode {
    /* Default. MDB_NOMETASYNC: a commit writes and fdatasyncs its data
     * pages but not the meta page; the background sync (and st_store_sync)
     * flush the meta page. A power loss may undo the commits since the last
     * sync and never corrupts the database. */
    ST_SYNC_SAFE = 0,
    /* MDB_NOSYNC: a commit does not touch the disk at all. Durable only
     * after the background sync or st_store_sync. A power loss can lose the
     * unsynced tail, and on a filesystem that reorders writes can corrupt
     * the database. For bulk loads on scratch data. */
    ST_SYNC_FAST = 1,
    /* Every commit is durable before it returns (LMDB default). */
    ST_SYNC_FULL = 2,
} st_sync_mode;

/* Log levels of st_options.log. */
typedef enum st_log_level {
    ST_LOG_ERROR = 0,
    ST_LOG_WARN = 1,
    ST_LOG_INFO = 2,
    ST_LOG_DEBUG = 3,
} st_log_level;

typedef struct st_options {
    /* Encryption key: NULL for no encryption. Either ST_KEY_LEN raw bytes
     * (key_is_passphrase false) or a passphrase of key_len >= 1 bytes that
     * is stretched with scrypt and a random salt kept in DATADIR. The bytes
     * are copied during st_store_open; the caller may wipe them after. A
     * DATADIR created with a key can only be opened with that key; one
     * created without a key refuses a key (and the other way round). */
    const void *key;
    size_t key_len;
    bool key_is_passphrase;
    /* Upper bound of the LMDB map in bytes (--max-size). 0 = no bound: the
     * map starts small and grows as needed. Writes past the bound fail with
     * -ENOSPC and change nothing. */
    uint64_t max_size;
    /* Open read-only: writing calls return -EROFS, no snapshots are written,
     * a missing or stale snapshot is rebuilt in memory only. */
    bool read_only;
    /* Background mdb_env_sync period in ms. 0 = default 1000. */
    unsigned sync_interval_ms;
    st_sync_mode sync_mode;
    /* Background snapshot of a collection after this many changes to it
     * (0 = default 100000) or this many seconds after its first unsnapshotted
     * change (0 = default 300). UINT64_MAX / UINT32_MAX disable one rule. */
    uint64_t snapshot_every_changes;
    unsigned snapshot_every_seconds;
    /* Threads for batch inserts, batch searches and rebuilds; 0 = all cores. */
    unsigned threads;
    /* Log sink (stderr when NULL). Called from any thread, msg without a
     * trailing newline. Only messages at or below log_level are sent. */
    void (*log)(void *ctx, st_log_level level, const char *msg);
    void *log_ctx;
    st_log_level log_level;
    /* If not NULL, st_store_open and st_check write a one-line human
     * reason for a failure here ("wrong key for /data", "DATADIR format 3,
     * this build reads 1", ...), NUL-terminated, truncated to errbuf_len. */
    char *errbuf;
    size_t errbuf_len;
    /* If not NULL, long work reports how far it got: st_check ("checking",
     * vector records) and index rebuilds at open ("rebuilding <coll>",
     * vectors). Called from the working thread, with done rising from 0 to
     * total (total may be an estimate), at most a few hundred times per
     * piece of work and always once with done == total at its end. */
    void (*progress)(void *ctx, const char *what, uint64_t done, uint64_t total);
    void *progress_ctx;
    /* A collection with at least this many vectors whose snapshot cannot
     * be used (missing, damaged, stale) is rebuilt in the background: the
     * open returns at once, queries scan the records exactly until the
     * index is back, and health says "rebuilding its index, n of N".
     * Smaller ones are rebuilt during the open. 0 = default 50000. */
    uint64_t rebuild_background_min;
} st_options;

/* Fills o with the defaults (no key, no size bound, safe sync every
 * second, snapshots every 100000 changes or 300 s, all cores, stderr log
 * at ST_LOG_INFO). Never fails. */
void st_options_default(st_options *o);

/* The RADOS mode (docs/scale-out.md): where the log lives. */
typedef struct st_rados_options {
    const char *conf; /* ceph.conf path */
    const char *pool;
    const char *ns;     /* RADOS namespace; NULL = the default one */
    const char *id;     /* client id ("admin" when NULL) */
    unsigned timeout_s; /* every cluster call; 0 = 10 s */
    /* Checkpoints (docs/scale-out.md §6): one every ckpt_entries entries
     * or ckpt_minutes after the first entry the newest does not cover;
     * the writer's lease lasts ckpt_lease_s. 0 = the defaults below. */
    unsigned ckpt_entries, ckpt_minutes, ckpt_lease_s;
    /* The checkpoint writer removes blob objects no entry names once they
     * are this old (longer than any write call). 0 = the default, 3600. */
    unsigned orphan_age_s;
} st_rados_options;

#define ST_RADOS_CKPT_ENTRIES_DEFAULT 50000u
#define ST_RADOS_CKPT_MINUTES_DEFAULT 10u
#define ST_RADOS_CKPT_LEASE_DEFAULT 30u
#define ST_RADOS_ORPHAN_AGE_DEFAULT 3600u

/*
 * Opens the store in directory `datadir` (which must exist), creating an
 * empty store if the directory holds none. Loads each collection's index
 * from its snapshot and replays the changes LMDB holds after it; a
 * missing, stale or damaged snapshot is logged and the index rebuilt from
 * the records. Starts the background sync and snapshot thread (not when
 * read_only).
 * opt may be NULL (defaults). *out is NULL on error.
 * Returns 0, or
 *   -ENOENT        datadir does not exist
 *   -ENOTDIR       datadir is not a directory
 *   -EKEYREJECTED  wrong key, a key for a store made without one, or no key
 *                  for an encrypted store (errbuf says which)
 *   -EPROTO        DATADIR holds a store of another format version
 *   -EBUSY         another process has the store open for writing
 *   -EINVAL        bad options (key_len 0 with a key, ...)
 *   -EACCES, -EROFS, -ENOSPC, -ENOMEM, -EIO.
 */
int st_store_open(const char *datadir, const st_options *opt, st_store **out);

/*
 * Stops the background thread, writes a snapshot of every collection that
 * changed since its last one, syncs LMDB and closes it, frees everything.
 * No other call may be running or start on st. Returns 0, or the first
 * error of the final snapshots/sync (the store is closed anyway; committed
 * data is safe, the next open replays from LMDB). NULL returns 0.
 */
int st_store_close(st_store *st);

/*
 * Makes every change committed before the call durable (mdb_env_sync with
 * force); what fsync()/fdatasync()/syncfs() call. Blocks for the disk.
 * Returns 0, -EIO, or 0 on a read-only store.
 */
int st_store_sync(st_store *st);

/*
 * Writes a snapshot of collection `coll` (NULL: every collection that
 * changed) now, in the calling thread. Searches keep running; writers of
 * the collection wait while the index is serialized. Returns 0, -ENOENT,
 * -EROFS, -ENOSPC, -EIO.
 */
int st_store_snapshot(st_store *st, const char *coll);

/* Figures for statfs(), .vecfs/stats and .vecfs/metrics. */
typedef struct st_metrics {
    uint64_t collections;
    uint64_t vectors;             /* present vectors, all collections */
    uint64_t store_bytes;         /* bytes of DATADIR in use: LMDB pages in use + snapshots */
    uint64_t map_bytes;           /* current LMDB map size */
    uint64_t max_bytes;           /* bound: max_size, or the free space of the
                                     filesystem plus store_bytes when unbounded */
    uint64_t index_memory;        /* bytes held by all in-memory indexes */
    uint64_t inserts_total;       /* vectors inserted or updated since open */
    uint64_t deletes_total;       /* vectors deleted since open */
    uint64_t queries_total;       /* query vectors answered since open (a batch counts each) */
    uint64_t query_ns_total;      /* nanoseconds spent in searches since open */
    uint64_t snapshots_total;     /* snapshots written since open */
    uint64_t rebuilds_total;      /* indexes rebuilt from records since open */
    uint64_t errors_total;        /* background sync/snapshot failures since open */
    uint64_t stale_readers_total; /* LMDB reader slots of dead processes cleared since open */
    uint64_t commits_total;       /* group commits of vector operations since open */
    uint64_t commit_ops_total;    /* operations those commits carried */
    double commit_seconds_total;  /* wall time those commits took (LMDB commit + fdatasync) */
    /* Engine counters (vf_hnsw_stats), summed over the indexes as built or
     * loaded since open: */
    uint64_t searches_short_total;   /* graph walks redone by exact search */
    uint64_t vectors_rehomed_total;  /* vectors anchored by a search of their own */
    uint64_t vectors_stranded_total; /* vectors no list could take in (left to the relink) */
    uint64_t plans_total[6];         /* queries by plan, indexed by st_plan_kind */
    uint64_t plans_redone_total;     /* of those, filtered walks redone by exact search */
    uint64_t index_plans_total[3];   /* filtered index searches by engine plan: exact,
                                        walk, expand (vf_hnsw_stats plans_*) */
    double snapshot_age_seconds;     /* age of the oldest snapshot of a collection
                                        that has unsnapshotted changes; 0 if none */
    double open_seconds;             /* how long st_store_open took */
    bool read_only;
    bool encrypted;
} st_metrics;

/* Fills *out. Never blocks on writers or the disk. Returns 0 or -EINVAL. */
int st_store_metrics(st_store *st, st_metrics *out);

/*
 * Writes "ok\n" into buf when the store is healthy, otherwise one line per
 * problem ("snapshot of 'c1' failed: No space left on device\n", "sync
 * failed: ..."). Never blocks. *len_out = bytes written (without NUL; the
 * text is NUL-terminated when cap > 0 and truncated to cap - 1).
 * Returns 0 healthy, 1 problems, -EINVAL.
 */
int st_store_health(st_store *st, char *buf, size_t cap, size_t *len_out);

/*
 * st_store_open without loading any index or starting the background
 * threads: what `vecfs check` and `vecfs backup` need, which read the
 * records only. Opening a large store this way takes milliseconds where
 * loading (or rebuilding) its indexes takes seconds to minutes, and a hot
 * backup's point in time is when its copy starts. Searches on it fail.
 */
int st_store_open_noindex(const char *datadir, const st_options *opt, st_store **out);

/*
 * Hot, consistent backup: copies the LMDB environment as of one point in
 * time into directory outdir (must exist and be empty), plus what an
 * encrypted store needs to be opened with its key. Snapshots are not
 * copied (the restored store rebuilds them at first open). Writers keep
 * running. Returns 0, -ENOTEMPTY, -ENOENT, -ENOSPC, -EIO.
 */
int st_store_backup(st_store *st, const char *outdir);

/*
 * Reads a key file: exactly ST_KEY_LEN bytes is a raw key, anything else
 * (1..1024 bytes, one trailing "\n" or "\r\n" removed) is a passphrase.
 * *key is malloc'ed (free it with st_key_free). Returns 0, -ENOENT,
 * -EACCES, -EINVAL (empty or too long), -ENOMEM, -EIO.
 */
int st_key_load(const char *path, uint8_t **key, size_t *len, bool *is_passphrase);
/* Wipes and frees a key from st_key_load. NULL is a no-op. */
void st_key_free(uint8_t *key, size_t len);

/*
 * `vecfs check`: opens the store at datadir read-only with opt's key,
 * verifies every record decodes and authenticates, the id maps, free list,
 * name/order/metadata indexes and counters agree, and each collection's
 * snapshot (if any) loads and matches its records. Writes one line per
 * problem and a summary to report (may be NULL). The store may be open
 * (mounted) meanwhile: the check reads one consistent point in time and
 * blocks no one; a snapshot older than that point is reported as stale
 * (not damage) when the op log covers the difference.
 * An LMDB read error or an allocation failure during the check stops the
 * pass it hit and counts as one problem ("<pass> stopped: ..."): the
 * result is never 0 unless every record was read.
 * Returns 0 clean, a positive number of problems found, or a negative
 * errno when the store cannot be opened (same codes as st_store_open) or
 * its read transaction cannot begin.
 */
int st_check(const char *datadir, const st_options *opt, FILE *report);

/*
 * The RADOS mode (docs/scale-out.md): opens `cachedir` as the node's local
 * cache (as st_store_open opens a DATADIR), connects to ro's pool, creates
 * the log there if the pool has none, applies the log up to its head and
 * then follows it (a watch on the head plus a 200 ms poll). Every write of
 * the returned store is checked against the local state, appended to the
 * log and applied; it returns once RADOS acknowledged the append.
 * st_store_sync first catches up to the head (fsync's read barrier).
 * Writes the mode does not log yet (collection rename and setattr,
 * .config, .import/ batches) return -EOPNOTSUPP.
 * Returns st_store_open's codes, or -ETIMEDOUT and the other errors of
 * the cluster (opt->errbuf says which), -EPROTO (the log's format, or an
 * entry that does not decode), -ESTALE (cachedir applied more than the
 * log holds: the cache of another log).
 */
int st_rados_open(const char *cachedir, const st_options *opt, const st_rados_options *ro,
                  st_store **out);

/*
 * `vecfs check --rados-*`: the cluster side of the log. Reports the head
 * fields and every entry from trim to head that is missing or does not
 * decode to `report`. Returns 0 (clean), 1 (damage found) or a negative
 * errno when the cluster cannot be read (opt->errbuf says why).
 */
int st_rados_check(const st_rados_options *ro, const st_options *opt, FILE *report);

/* ------------------------------------------------------------------ */
/* Attributes                                                           */
/* ------------------------------------------------------------------ */

typedef struct st_attr {
    uint32_t mode; /* file type and permission bits: S_IFDIR for collections,
                      S_IFREG for vectors, | 07777 bits */
    uint32_t uid;
    uint32_t gid;
    struct timespec atime, mtime, ctime;
    uint64_t size; /* vector: bytes of its content; collection: vector count */
    uint64_t ino;  /* stable while the object exists: collection = id << 32,
                      vector = (collection id << 32) | (engine id + 1).
                      Survives renames and restarts. */
    uint32_t id;   /* vector: engine id; collection: collection id */
    /* Collections only: */
    uint64_t count; /* vectors */
    uint64_t bytes; /* sum of content bytes */
} st_attr;

/* Which fields of an st_attr a set/create call takes. */
#define ST_SET_MODE (1u << 0) /* permission bits only (07777); type kept */
#define ST_SET_UID (1u << 1)
#define ST_SET_GID (1u << 2)
#define ST_SET_ATIME (1u << 3)
#define ST_SET_MTIME (1u << 4)
#define ST_SET_CTIME (1u << 5) /* otherwise ctime = now on any change */
#define ST_SET_ALL 0x3fu
/* With st_vec_put / st_batch_put: the other fields of mask apply only when
 * the call creates the vector; an overwrite keeps the old mode, owner and
 * times (what a plain overwrite through a file does, so an .import/ row
 * that replaces a vector does the same). */
#define ST_SET_IF_NEW (1u << 6)
/* With st_vec_put: the caller created the name (O_EXCL) and has not stored
 * it yet. In the RADOS mode the put fails with -EEXIST when another node
 * stored that name first (docs/scale-out.md); the embedded mode, where
 * such a race cannot happen, ignores it. */
#define ST_PUT_NEW (1u << 7)

/* ------------------------------------------------------------------ */
/* Collection configuration (.config)                                   */
/* ------------------------------------------------------------------ */

typedef enum st_quant {
    ST_QUANT_NONE = 0,
    ST_QUANT_INT8 = 1, /* the index keeps int8 codes; searches rerank with the
                          float32 originals of the SLOT records */
} st_quant;

typedef struct st_config {
    uint32_t dim;             /* 0 = not fixed yet (the first vector fixes it) */
    vf_metric metric;         /* default VF_METRIC_COSINE */
    uint32_t m;               /* 16; 2..256 */
    uint32_t ef_construction; /* 200; 1..65536 */
    uint32_t ef_search;       /* 64; 1..65536; used when !ef_auto */
    bool ef_auto;             /* "ef_search = auto": the background thread measures
                                 the smallest ef reaching target_recall@10
                                 on users' queries (st_coll_tuning); until
                                 then a fixed ladder by target_recall */
    double target_recall;     /* 0.95; (0, 1] */
    st_quant quantization;    /* none (default) or int8 (docs/quantization.md) */
    uint32_t rerank;          /* int8: candidates rescored per result, 1..
                                 VF_RERANK_MAX; default VF_RERANK_DEFAULT */
    uint64_t max_vectors;     /* 0 = unlimited */
    uint64_t max_bytes;       /* content bytes, 0 = unlimited */
} st_config;

/* "none" or "int8", as .config writes it. */
const char *st_quant_name(st_quant q);

/* Fills c with the defaults of SPEC §3.2. Never fails. */
void st_config_default(st_config *c);

/* Checks ranges (the comments above). Returns 0 or -EINVAL. */
int st_config_validate(const st_config *c);

/* true when every key of c has its default value (dim 0, i.e. unset). */
bool st_config_is_default(const st_config *c);

/*
 * Parses the text of a .config file: lines "key = value", blank lines and
 * lines starting with '#' ignored, spaces around key and value ignored.
 * Keys: dim, metric (cosine|l2|dot), m, ef_construction, ef_search
 * (number|auto), target_recall, quantization (none|int8), rerank (1..64),
 * max_vectors,
 * max_bytes (numbers in decimal; 0 means unlimited / unset for dim).
 * Starts from *base (typically the current config) so a file naming only
 * some keys changes only those. Reads exactly len bytes of text (no NUL
 * needed; a NUL byte is an error). On error *out is untouched and, if err
 * is not NULL, a one-line reason ("line 3: unknown key 'foo'") is written
 * to err (NUL-terminated, truncated to errlen).
 * Returns 0 or -EINVAL (unknown key, bad value, out of range, duplicate
 * key, line longer than 4096 bytes).
 */
int st_config_parse(const char *text, size_t len, const st_config *base, st_config *out, char *err,
                    size_t errlen);

/*
 * Writes every key with its effective value, one "key = value\n" line
 * each, in the order of st_config_parse's list (dim 0 is written as
 * "dim = 0"). Writes at most cap bytes including a NUL; *len_out is the
 * full length without the NUL, so a call with cap 0 sizes the buffer.
 * Returns 0, or -ERANGE when cap is too small (buf then holds a truncated,
 * NUL-terminated prefix if cap > 0).
 */
int st_config_format(const st_config *c, char *buf, size_t cap, size_t *len_out);

/* ------------------------------------------------------------------ */
/* Collections                                                          */
/* ------------------------------------------------------------------ */

/*
 * Creates collection `name` (mkdir). attr gives mode (permission bits),
 * uid, gid; times are now. cfg may be NULL (defaults); it is validated.
 * Returns 0, -EEXIST, -EINVAL (name or config), -ENOSPC.
 */
int st_coll_create(st_store *st, const char *name, const st_attr *attr, const st_config *cfg);

/*
 * Drops collection `name` (rmdir): its records, snapshot and index.
 * Returns 0, -ENOENT, -ENOTEMPTY (it holds vectors).
 */
int st_coll_drop(st_store *st, const char *name);

/*
 * Renames a collection. An existing empty collection `to` is replaced
 * atomically. Vectors, config, attributes, index and snapshot follow.
 * flags: 0, or ST_RENAME_NOREPLACE.
 * Returns 0, -ENOENT (from missing or not a valid name), -EINVAL (to is
 * not a valid name; -ENAMETOOLONG when too long), -EEXIST (to exists
 * and NOREPLACE), -ENOTEMPTY (to holds vectors), -EAGAIN (another create,
 * drop or rename of one of the two names ran at the same moment; nothing
 * changed, retry). Renaming to itself is 0.
 */
#define ST_RENAME_NOREPLACE (1u << 0)
int st_coll_rename(st_store *st, const char *from, const char *to, unsigned flags);

/* Attributes of a collection (mode has S_IFDIR; size = count = vectors,
 * bytes = content bytes). Returns 0, -ENOENT, -ENAMETOOLONG. */
int st_coll_stat(st_store *st, const char *name, st_attr *out);

/* How a collection's searches pick ef (ef_search = auto is tuned in the
 * background; docs/tuning.md). */
typedef struct st_tuning {
    uint32_t ef_in_use;       /* ef of a k-10 search now: ef_search, the tuned ef,
                                 or the ladder's until tuned; 0 while the
                                 collection is small enough to be searched
                                 exactly */
    bool tuned;               /* ef_auto and a tuning has measured ef_in_use: */
    double recall;            /* its mean recall@10 on the calibration queries */
    double recall_low;        /* the lower confidence bound it was chosen by */
    uint64_t queries;         /* calibration queries */
    uint64_t user_queries;    /* of which queries users sent (the rest are
                                 perturbed held-out vectors) */
    struct timespec tuned_at; /* wall clock at the end of the tuning */
    double seconds;           /* how long the tuning took */
} st_tuning;

/* The collection's ef in use and its last tuning. 0, -ENOENT. */
int st_coll_tuning(st_store *st, const char *name, st_tuning *out);

/* chmod/chown/utimens of a collection: takes the fields in mask (ST_SET_*)
 * from attr. ctime becomes now unless ST_SET_CTIME. Returns 0, -ENOENT. */
int st_coll_setattr(st_store *st, const char *name, const st_attr *attr, unsigned mask);

/* The collection's config (dim as fixed so far). Returns 0, -ENOENT. */
int st_coll_config_get(st_store *st, const char *name, st_config *out);

/* The committed config and the mtime of its text (.config), read
 * together. Returns 0, -ENOENT, -ENAMETOOLONG. */
int st_coll_config_stat(st_store *st, const char *name, st_config *cfg, struct timespec *mtime);

/*
 * Replaces the config; the mtime of its text becomes *mtime, or now when
 * mtime is NULL (the first vector fixing dim sets it to now as well).
 * - dim of a non-empty collection cannot change (its vectors have theirs):
 *   -EINVAL, nothing changes.
 * - metric, m or ef_construction of a non-empty collection: the index is
 *   rebuilt from the stored vectors with the new values before the config
 *   commits (writers of this collection wait; searches go on with the old
 *   index until the swap). So a copy that brought vectors before their
 *   .config ends with the copied settings. The snapshot on disk is stale
 *   until the next one (open rebuilds if a crash comes first).
 * - max_vectors/max_bytes below the current use are allowed (later inserts
 *   fail with -EDQUOT); ef_search applies at once.
 * Returns 0, -ENOENT, -EINVAL (a value out of range, a dim change),
 * -ENOMEM (the rebuild).
 */
int st_coll_config_set(st_store *st, const char *name, const st_config *cfg,
                       const struct timespec *mtime);

/* Sets the mtime of the config's text (utimens on .config).
 * Returns 0, -ENOENT, -ENAMETOOLONG, -EINVAL (mtime NULL). */
int st_coll_config_touch(st_store *st, const char *name, const struct timespec *mtime);

/* One collection's in-memory index, for .vecfs/stats and .vecfs/metrics. */
typedef struct st_index_info {
    st_quant quantization; /* of the index in RAM (the config's once converted) */
    uint32_t rerank;       /* the config's rerank factor (int8 searches use it) */
    uint64_t vectors;      /* in the index */
    uint64_t index_bytes;  /* its RAM (vf_hnsw_memory: codes or vectors, links,
                              scratch; not the originals an int8 index reranks
                              with, which stay in LMDB) */
    bool converting;       /* a quantization change is being applied (convert.c) */
    uint64_t relearns;     /* int8: quantizer re-learns since the index was built
                              or loaded (drift, docs/quantization.md) */
} st_index_info;

/* Fills *out for collection name (all zero before its first vector).
 * Never blocks on writers or the disk. 0, -ENOENT, -EINVAL. */
int st_coll_index_info(st_store *st, const char *name, st_index_info *out);

/*
 * Callback of the list functions. name is NUL-terminated, attr the entry's
 * attributes; both valid only during the call. next_offset is the offset
 * to pass to resume listing after this entry. Return 0 to continue,
 * nonzero to stop (e.g. the readdir buffer is full: resume later from the
 * last accepted entry's next_offset).
 */
typedef int (*st_list_fn)(void *ctx, const char *name, const st_attr *attr, uint64_t next_offset);

/*
 * Lists collections from `offset` (0 = the start) in a stable order
 * (creation order). Offsets are opaque, > 0 for resumption, < 2^62, and
 * stay valid across concurrent creates/drops: an entry present for the
 * whole listing is reported exactly once. Returns 0 (also when the
 * callback stopped early) or -EIO.
 */
int st_coll_list(st_store *st, uint64_t offset, st_list_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Vectors                                                              */
/* ------------------------------------------------------------------ */

/*
 * Inserts or overwrites vector `name` of collection `coll` in one
 * transaction: content (the file's bytes exactly as written, len bytes,
 * len may be 0), the parsed vector vec (dim floats, all finite),
 * attributes and the index entry.
 *   - attr/mask: for a new vector the fields in mask come from attr, the
 *     others default (mode 0644, uid 0, gid 0, times now); for an
 *     overwrite the fields in mask come from attr, the others are kept,
 *     except mtime and ctime which become now unless in mask. The file
 *     type bits of mode are ignored (always S_IFREG). attr may be NULL
 *     when mask is 0.
 *   - xattrs of an overwritten vector are kept; its engine id is kept.
 *   - the first vector of a collection whose config has dim 0 fixes dim.
 * Returns 0, or
 *   -ENOENT   no such collection (or coll is not a valid collection name)
 *   -EINVAL   bad vector name, dim != the collection's dim, a value that is not
 *             finite or whose magnitude exceeds ST_VALUE_MAX,
 *             dim 0 or > VF_MAX_DIM
 *   -EFBIG    len > ST_CONTENT_MAX or > the collection's max_bytes
 *   -EDQUOT   max_vectors or max_bytes of the collection would be exceeded
 *   -ENOSPC   the map is full (max_size) or the disk is: nothing changed,
 *             the store stays usable
 */
int st_vec_put(st_store *st, const char *coll, const char *name, const void *content, size_t len,
               const float *vec, uint32_t dim, const st_attr *attr, unsigned mask);

/* Attributes of a vector without reading its content (size = content
 * bytes). Returns 0, -ENOENT, -ENAMETOOLONG. */
int st_vec_stat(st_store *st, const char *coll, const char *name, st_attr *out);

/*
 * Copies the content of a vector into a new malloc'ed buffer: *data (free
 * with free()), *len. attr_out may be NULL, else receives the attributes.
 * Returns 0, -ENOENT, -ENAMETOOLONG, -ENOMEM, -EIO.
 */
int st_vec_get(st_store *st, const char *coll, const char *name, void **data, size_t *len,
               st_attr *attr_out);

/*
 * Copies up to size bytes of the content from byte `offset` into buf;
 * *n_out = bytes copied (0 at or past the end). Returns 0, -ENOENT,
 * -ENAMETOOLONG, -EINVAL (buf or n_out NULL).
 */
int st_vec_pread(st_store *st, const char *coll, const char *name, void *buf, size_t size,
                 uint64_t offset, size_t *n_out);

/* Copies the stored float vector (as written, not normalized) into out,
 * which has room for cap floats; *dim_out = its dim. Returns 0, -ENOENT,
 * -ERANGE (cap < dim), -EINVAL. */
int st_vec_vector(st_store *st, const char *coll, const char *name, float *out, size_t cap,
                  uint32_t *dim_out);

/* Deletes a vector: record, xattrs, metadata index entries and index
 * entry; its engine id becomes free for reuse. Returns 0, -ENOENT,
 * -ENAMETOOLONG. */
int st_vec_delete(st_store *st, const char *coll, const char *name);

/*
 * Renames a vector within its collection. The vector keeps its engine id
 * (no re-insert into the index), content, attributes (ctime = now) and
 * xattrs. An existing target is replaced atomically (the target's
 * record and index entry are deleted in the same transaction) unless
 * flags has ST_RENAME_NOREPLACE (-EEXIST). from == to is 0.
 * Returns 0, -ENOENT (from missing or not a valid name), -EINVAL (to not
 * a valid name, bad flags), -ENAMETOOLONG, -EEXIST.
 */
int st_vec_rename(st_store *st, const char *coll, const char *from, const char *to, unsigned flags);

/* chmod/chown/utimens/truncate-free setattr of a vector: the fields in
 * mask from attr; ctime = now unless ST_SET_CTIME. Returns 0, -ENOENT. */
int st_vec_setattr(st_store *st, const char *coll, const char *name, const st_attr *attr,
                   unsigned mask);

/*
 * Lists the vectors of a collection from `offset` (0 = the start). Order
 * is stable (creation order; a rename keeps the place), each step is
 * O(log n) in LMDB, and offsets are opaque, > 0, < 2^62 and strictly
 * increasing, so readdir can resume anywhere in a listing of millions of
 * entries: an entry present for the whole listing is reported exactly once,
 * entries created after the listing started may or may not appear.
 * The attr passed to fn is the full stat. Returns 0 (also when fn stopped
 * early), -ENOENT, -EIO.
 */
int st_vec_list(st_store *st, const char *coll, uint64_t offset, st_list_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Zero-copy reads                                                      */
/* ------------------------------------------------------------------ */

/* A read transaction: a consistent point-in-time view. */
typedef struct st_read st_read;

/* Starts a read transaction. Never blocks on writers. End it soon (a long
 * reader keeps LMDB from reusing pages). Returns 0, -ENOMEM, -EAGAIN (too
 * many concurrent readers). */
int st_read_begin(st_store *st, st_read **out);

/*
 * Points *data at the content of a vector: straight into the LMDB map
 * without a key (do not write to it), or into a buffer owned by rd with a
 * key or when the content is stored as its vector (store/content.c).
 * Valid only until st_read_end(rd) or the next st_read_content on the
 * same rd. attr_out may be NULL.
 * Returns 0, -ENOENT, -ENAMETOOLONG, -EIO.
 */
int st_read_content(st_read *rd, const char *coll, const char *name, const void **data, size_t *len,
                    st_attr *attr_out);

/* Ends the read transaction; every pointer obtained through rd becomes
 * invalid. NULL is a no-op. */
void st_read_end(st_read *rd);

/* ------------------------------------------------------------------ */
/* Extended attributes (metadata)                                       */
/* ------------------------------------------------------------------ */

/* Flags of st_xattr_set (the values of <sys/xattr.h>). */
#define ST_XATTR_CREATE 0x1  /* fail with -EEXIST if it exists */
#define ST_XATTR_REPLACE 0x2 /* fail with -ENODATA if it does not */

/*
 * Sets xattr `xname` (1..255 bytes, any namespace; "user.*" ones are
 * indexed for filters) of a vector to `len` bytes of value (0..64 KiB).
 * ctime becomes now. Returns 0, -ENOENT (vector), -EEXIST, -ENODATA,
 * -E2BIG (value), -ERANGE (name length), -EINVAL (flags).
 */
int st_xattr_set(st_store *st, const char *coll, const char *name, const char *xname,
                 const void *value, size_t len, int flags);

/*
 * Gets an xattr value into buf (cap bytes); *len_out = its length. With
 * cap 0 only *len_out is set (getxattr's size query).
 * Returns 0, -ENOENT (vector), -ENODATA, -ERANGE (cap > 0 but too small).
 */
int st_xattr_get(st_store *st, const char *coll, const char *name, const char *xname, void *buf,
                 size_t cap, size_t *len_out);

/*
 * Lists xattr names as listxattr does: each name followed by a NUL, into
 * buf (cap bytes); *len_out = the total length. cap 0 = size query.
 * Returns 0, -ENOENT, -ERANGE.
 */
int st_xattr_list(st_store *st, const char *coll, const char *name, char *buf, size_t cap,
                  size_t *len_out);

/* Removes an xattr; ctime = now. Returns 0, -ENOENT (vector), -ENODATA. */
int st_xattr_remove(st_store *st, const char *coll, const char *name, const char *xname);

/* ------------------------------------------------------------------ */
/* Batches (.import/)                                                   */
/* ------------------------------------------------------------------ */

typedef struct st_batch st_batch;

/* Starts a batch for collection coll. Nothing is written until commit; the
 * rows live in memory (owned by the batch). Returns 0, -ENOENT (also a
 * collection name that cannot exist), -EINVAL (st or out NULL). */
int st_batch_begin(st_store *st, const char *coll, st_batch **out);

/*
 * Adds a row: same arguments and checks as st_vec_put (name, content,
 * vector, attributes), plus optional metadata: nmeta "user.*" xattrs
 * (meta_keys[i] is the full xattr name, meta_vals[i]/meta_lens[i] its
 * value) set on the vector. Everything is copied. A later row with the
 * same name replaces an earlier one. Validation that needs no LMDB
 * (names, dim against the batch's first row or the config, finiteness,
 * sizes) happens here: -EINVAL, -EFBIG, -E2BIG, -ENOMEM. The batch stays
 * usable after a failed add (the row is not added).
 */
int st_batch_put(st_batch *b, const char *name, const void *content, size_t len, const float *vec,
                 uint32_t dim, const st_attr *attr, unsigned mask, size_t nmeta,
                 const char *const *meta_keys, const void *const *meta_vals,
                 const size_t *meta_lens);

/* Rows added so far. */
size_t st_batch_count(const st_batch *b);

/*
 * Commits every row in one LMDB transaction (all or nothing), then inserts
 * them into the index on all cores. Frees the batch in every case.
 * Returns 0, or an error of st_vec_put (-EINVAL dim mismatch, -EDQUOT,
 * -ENOSPC, ...) with nothing applied; -EFBIG when the batch changes more
 * pages than one LMDB transaction can hold (about 512 MiB of records:
 * split such an import into several batches).
 */
int st_batch_commit(st_batch *b);

/* Discards a batch. NULL is a no-op. */
void st_batch_abort(st_batch *b);

/* ------------------------------------------------------------------ */
/* Search                                                               */
/* ------------------------------------------------------------------ */

/*
 * A compiled filter over user.* metadata (filter.c), evaluated by the
 * search calls. Grammar of st_filter_parse (keywords in any case):
 *
 *   expr  := run ("or" run)*
 *   run   := unary (("and" | ",") unary)*
 *   unary := "not" unary | "(" expr ")" | "exists" KEY
 *          | KEY op VALUE | KEY "in" "(" VALUE ("," VALUE)* ")"
 *   op    := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
 *
 * KEY and VALUE are bare words (bytes up to white space or one of
 * ( ) , = ! < > " ') or quoted with "..." or '...' (a backslash takes the
 * next byte as it is). A KEY "user.year" means "year". `=`, `!=` and `in`
 * compare bytes exactly; `<`, `<=`, `>`, `>=` compare as numbers when the
 * stored value and the literal are both decimal numbers, else as bytes
 * (UTF-8 order; a prefix sorts first). `KEY != V` and comparisons pass
 * only vectors that have KEY; `not` passes everything its operand does
 * not, vectors without KEY included. A text not in the grammar is tried
 * as the old form "KEY=VALUE[,KEY=VALUE...]" (values up to the comma,
 * trimmed, may hold spaces and '='; keys are bare words).
 */
typedef struct st_filter st_filter;

/* Longest filter text, bytes. */
#define ST_FILTER_TEXT_MAX (2u * ST_XATTR_VALUE_MAX)
/* Room for st_filter_parse's message, bytes with the NUL. */
#define ST_FILTER_ERR_MAX 160u

/*
 * Compiles a filter text (len bytes, not NUL-terminated, never read past
 * len). *out = the filter (st_filter_free), NULL for an empty or blank
 * text. err (errcap bytes, may be NULL/0) gets one line saying what is
 * wrong and where on -EINVAL / -E2BIG, and "" on success.
 * Returns 0, -EINVAL (not in the grammar, nested over 32 deep, over 256
 * terms or values), -E2BIG (text, key or value over its limit), -ENOMEM.
 */
int st_filter_parse(const char *text, size_t len, st_filter **out, char *err, size_t errcap);

/* Frees f. NULL is a no-op. */
void st_filter_free(st_filter *f);

typedef struct st_hit {
    float distance;
    uint32_t id;                /* engine id */
    char name[ST_NAME_MAX + 1]; /* NUL-terminated */
} st_hit;

/* How a search was answered (st_search_opts.plan, `explain`). */
typedef enum st_plan_kind {
    ST_PLAN_NONE = 0, /* nothing to search: no index yet, or no vector passes */
    ST_PLAN_SMALL,    /* exact scan of a small collection (<= 2048 vectors) */
    ST_PLAN_RECORDS,  /* exact scan of the records while the index is rebuilt */
    ST_PLAN_EXACT,    /* the index scanned exactly: the passing set (the engine's
                         planner chose it), or all when ef >= the count */
    ST_PLAN_WALK,     /* graph walk (filtered: only passing vectors are kept) */
    ST_PLAN_EXPAND,   /* filtered walk over passing vectors that crosses failing
                         neighbours (the engine's plan for sparse passing sets) */
    ST_PLAN_KIND_COUNT
} st_plan_kind;

/* The name of a plan kind ("none", "small", "records", "exact", "walk",
 * "expand"). */
const char *st_plan_name(st_plan_kind k);

typedef struct st_plan {
    st_plan_kind kind;
    bool filtered;
    size_t passing; /* vectors that pass the filter (exact count); count when unfiltered */
    size_t count;   /* vectors in the index */
    bool redone;    /* a filtered walk (or expand) came back short and was
                       redone by exact search (kind stays the walk's) */
} st_plan;

/* Options of st_search_opt and friends. Zero-initialize. */
typedef struct st_search_opts {
    const st_filter *filter; /* NULL: every vector */
    bool within;             /* only hits at distance <= max_distance */
    float max_distance;
    st_plan *plan;  /* NULL, or filled with how the search ran (a batch: its first query) */
    st_plan *plans; /* a batch only: NULL, or nq plans; query i's is written to
                       plans[i] before sink is called for it, on the same thread */
} st_search_opts;

/*
 * The k nearest neighbours of `query` (dim floats, dim = the collection's)
 * among the vectors that pass o's filter, with o's options (NULL: none):
 * a compiled filter (any grammar of st_filter_parse; NULL: every vector),
 * a distance bound (hits farther than max_distance are not returned: up
 * to k hits within it, nearest first; more within it than k gives the
 * nearest k) and the plan. ef 0 = the config's (or auto). Collections of at most 2048
 * vectors are searched exactly (ef is then irrelevant). Writes up to k hits, nearest
 * first, to out and their count to *n_out: k when at least k vectors pass.
 * Distances per SPEC §3.3. Filters are answered from the metadata index
 * (no record is decoded for a filter).
 * Returns 0, -ENOENT, -EINVAL (dim mismatch, k 0 or > ST_K_MAX, non-finite or beyond ST_VALUE_MAX
 * query), -ENOMEM. A collection whose dim is not fixed yet (no vector, no
 * dim in its config) gives 0 hits for a query of any dim.
 */
int st_search_opt(st_store *st, const char *coll, const float *query, uint32_t dim, size_t k,
                  size_t ef, const st_search_opts *o, st_hit *out, size_t *n_out);

/*
 * Searches with the stored vector of vector `like` as the query. With
 * exclude_self the vector itself is left out (k others are returned).
 * Options as st_search_opt. Returns as st_search_opt, and -ENOENT when
 * `like` does not exist.
 */
int st_search_like_opt(st_store *st, const char *coll, const char *like, bool exclude_self,
                       size_t k, size_t ef, const st_search_opts *o, st_hit *out, size_t *n_out);

/* Most workers a batch search runs on (worker numbers are below it). */
#define ST_SEARCH_WORKERS_MAX 64u

/*
 * Receives the hits of one query of a batch (st_search_batch_opt).
 *   ctx     as given to st_search_batch_opt
 *   worker  the number of the calling worker, below ST_SEARCH_WORKERS_MAX.
 *           Workers call at once, each on its own thread with its own
 *           number, so state kept per worker needs no lock.
 *   query   the query's row, 0..nq-1; queries finish in no set order
 *   hits    n hits (n <= k), nearest first, as st_search_opt gives them; valid
 *           only during the call
 * Returns 0 to go on, or a negative errno that stops the batch.
 */
typedef int (*st_batch_sink)(void *ctx, unsigned worker, size_t query, const st_hit *hits,
                             size_t n);

/*
 * nq queries at once (row-major nq x dim) on `threads` threads (0 = the
 * store's setting; at most ST_SEARCH_WORKERS_MAX). Each query's hits go to
 * sink on the worker that ran it, so callers can format results in
 * parallel and no nq x k array of hits is ever held. On success sink was
 * called exactly once for every row (with n 0 when nothing matches).
 * Options as st_search_opt (the distance bound holds for every query; the
 * plan is the first query's; every query is counted under its own, and
 * written to o->plans[query] when o->plans is set, so a sink may read it).
 * Returns as st_search_opt, or the first error sink returned (then some rows
 * may not have been delivered).
 */
int st_search_batch_opt(st_store *st, const char *coll, const float *queries, size_t nq,
                        uint32_t dim, size_t k, size_t ef, const st_search_opts *o,
                        unsigned threads, st_batch_sink sink, void *sink_ctx);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_STORE_H */
