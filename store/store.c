/*
 * store.c — the store object: opening a DATADIR (LMDB environment, format
 * and key check, loading every collection's index), the background sync and
 * snapshot thread, metrics, backup, and the collection operations.
 *
 * States of an st_store
 *   OPENING  st_store_open: env open, format checked, indexes loaded.
 *            Only the opening thread touches the object.
 *   OPEN     every API call allowed from any thread; the background thread
 *            fills the collections' name tables (names.c) first, then
 *            syncs LMDB every sync_interval_ms and writes due snapshots
 *            (a read-only store only fills name tables).
 *   CLOSED   st_store_close stopped the thread, wrote final snapshots,
 *            closed LMDB and freed the object.
 *
 * Invariants
 *   1. One DATADIR is opened for writing by one process at a time (flock
 *      on DATADIR/vecfs.lock); read-only openers (vecfs check) take no lock.
 *   2. The FORMAT record exists in every initialized store and says whether
 *      it is encrypted; an encrypted store also has a KEYCHECK record, and
 *      st_store_open succeeds only if the supplied key opens it.
 *   3. A collection's in-memory object exists iff its COLL record exists
 *      (modulo the graveyard of dropped ones, kept until close so pointers
 *      handed out earlier stay valid). c->count/bytes equal the record's.
 *   4. Every change to a collection's vectors is committed together with a
 *      dirty entry for each engine id it touched, at c->cur_gen, and is
 *      applied to c->index and c->names before c->wlock is released.
 *
 * Lock order (outermost first): st->snap_mu -> c->wlock (by ascending
 * collection id when two are needed) -> LMDB's writer lock (a write txn)
 * -> st->colls_lock -> c->mu -> st->health_mu; and c->wlock ->
 * c->names.lock (names.c). colls_lock is only ever held briefly (lookups;
 * table changes after a commit), never across a wait for LMDB's writer
 * lock, so lookups by readers never wait behind a writer. No lock is taken
 * while holding c->mu except health_mu.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "internal.h"

#define DEFAULT_SYNC_MS 1000u
#define DEFAULT_SNAP_CHANGES 100000u
#define DEFAULT_SNAP_SECONDS 300u
#define UNBOUNDED_MAP ((uint64_t)1 << 40) /* 1 TiB of address space, sparse on disk */
#define MIN_MAP ((uint64_t)1 << 20)

const char *const st_db_names[ST_DB_COUNT] = {
    NULL, "meta", "colls", "vecs", "slots", "content", "order", "xattrs", "midx", "free", "dirty"};

static const char keycheck_text[] = "vecfs key check v1";

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

void st_now(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
}

double st_ts_diff(const struct timespec *a, const struct timespec *b)
{
    return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

static void mono_now(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

void st_options_default(st_options *o)
{
    memset(o, 0, sizeof(*o));
    o->sync_interval_ms = DEFAULT_SYNC_MS;
    o->sync_mode = ST_SYNC_SAFE;
    o->snapshot_every_changes = DEFAULT_SNAP_CHANGES;
    o->snapshot_every_seconds = DEFAULT_SNAP_SECONDS;
    o->log_level = ST_LOG_INFO;
}

void st_log(st_store *st, st_log_level lvl, const char *fmt, ...)
{
    if (st && lvl > st->opt.log_level)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (st && st->opt.log) {
        st->opt.log(st->opt.log_ctx, lvl, msg);
        return;
    }
    static const char *const names[] = {"error", "warn", "info", "debug"};
    fprintf(stderr, "vecfs store %s: %s\n", names[lvl <= ST_LOG_DEBUG ? lvl : 0], msg);
}

void st_health_set(st_store *st, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&st->health_mu);
    if (!strstr(st->health, line) && strlen(st->health) + strlen(line) + 2 < sizeof(st->health)) {
        strcat(st->health, line);
        strcat(st->health, "\n");
    }
    pthread_mutex_unlock(&st->health_mu);
}

static void health_clear(st_store *st, const char *prefix)
{
    pthread_mutex_lock(&st->health_mu);
    char out[sizeof(st->health)] = "";
    char *save = NULL, *line = strtok_r(st->health, "\n", &save);
    while (line) {
        if (strncmp(line, prefix, strlen(prefix)) != 0) {
            strcat(out, line);
            strcat(out, "\n");
        }
        line = strtok_r(NULL, "\n", &save);
    }
    memcpy(st->health, out, sizeof(out));
    pthread_mutex_unlock(&st->health_mu);
}

static void seterr(const st_options *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(const st_options *o, const char *fmt, ...)
{
    if (!o || !o->errbuf || o->errbuf_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->errbuf, o->errbuf_len, fmt, ap);
    va_end(ap);
}

int st_mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_MAP_FULL:
        return -ENOSPC;
    case MDB_TXN_FULL:
        return -EFBIG; /* one transaction changed more pages than LMDB allows */
    case MDB_READERS_FULL:
        return -EAGAIN;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_BAD_TXN:
    case MDB_PANIC:
        return -EIO;
    case MDB_VERSION_MISMATCH:
        return -EPROTO;
    case MDB_BAD_VALSIZE:
        return -EINVAL;
    case MDB_MAP_RESIZED:
    case MDB_TLS_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
    case MDB_DBS_FULL:
    case MDB_INCOMPATIBLE:
    case MDB_BAD_RSLOT:
    case MDB_BAD_DBI:
        return -EIO;
    default:
        return rc > 0 ? -rc : -EIO;
    }
}

int st_txn_write(st_store *st, MDB_txn **out)
{
    *out = NULL;
    if (st->opt.read_only)
        return -EROFS;
    return st_mdb_err(mdb_txn_begin(st->env, NULL, 0, out));
}

int st_txn_read(st_store *st, MDB_txn **out)
{
    *out = NULL;
    return st_mdb_err(mdb_txn_begin(st->env, NULL, MDB_RDONLY, out));
}

int st_txn_commit(st_store *st, MDB_txn *txn)
{
    int rc = st_mdb_err(mdb_txn_commit(txn));
    if (rc == 0)
        atomic_store(&st->unsynced, true);
    return rc;
}

int st_get(st_store *st, MDB_txn *txn, int db, const void *key, size_t klen, const void **body,
           size_t *blen, vc_buf *scratch)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, st->db[db], &k, &v);
    if (rc)
        return st_mdb_err(rc);
    return st_env_open_buf(&st->crypto, (uint8_t)db, key, klen, v.mv_data, v.mv_size, scratch, body,
                           blen);
}

int st_put(st_store *st, MDB_txn *txn, int db, const void *key, size_t klen, const void *body,
           size_t blen)
{
    MDB_val k = {klen, (void *)key};
    MDB_val v = {blen + st_env_overhead(&st->crypto), NULL};
    int rc = mdb_put(txn, st->db[db], &k, &v, MDB_RESERVE);
    if (rc)
        return st_mdb_err(rc);
    return st_env_seal(&st->crypto, (uint8_t)db, key, klen, body, blen, v.mv_data);
}

/* ------------------------------------------------------------------ */
/* Names and collection lookup                                          */
/* ------------------------------------------------------------------ */

int st_coll_name_check(const char *name)
{
    if (!name)
        return -EINVAL;
    size_t n = strnlen(name, ST_COLL_NAME_MAX + 1);
    if (n == 0)
        return -EINVAL;
    if (n > ST_COLL_NAME_MAX)
        return -ENAMETOOLONG;
    if (name[0] == '.')
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return -EINVAL;
    }
    return 0;
}

int st_vec_name_check(const char *name, size_t *len_out)
{
    if (!name)
        return -EINVAL;
    size_t n = strnlen(name, ST_NAME_MAX + 1);
    if (n == 0)
        return -EINVAL;
    if (n > ST_NAME_MAX)
        return -ENAMETOOLONG;
    if (memchr(name, '/', n) || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -EINVAL;
    if (len_out)
        *len_out = n;
    return 0;
}

/* Lookup with colls_lock already held. */
static st_coll *find_locked(st_store *st, const char *name)
{
    for (size_t i = 0; i < st->ncolls; i++)
        if (strcmp(st->colls[i]->name, name) == 0)
            return st->colls[i];
    return NULL;
}

st_coll *st_coll_find(st_store *st, const char *name)
{
    st_coll *found = NULL;
    pthread_rwlock_rdlock(&st->colls_lock);
    for (size_t i = 0; i < st->ncolls; i++)
        if (strcmp(st->colls[i]->name, name) == 0) {
            found = st->colls[i];
            break;
        }
    pthread_rwlock_unlock(&st->colls_lock);
    return found;
}

st_coll *st_coll_find_id(st_store *st, uint32_t id)
{
    st_coll *found = NULL;
    pthread_rwlock_rdlock(&st->colls_lock);
    for (size_t i = 0; i < st->ncolls; i++)
        if (st->colls[i]->id == id) {
            found = st->colls[i];
            break;
        }
    pthread_rwlock_unlock(&st->colls_lock);
    return found;
}

static size_t coll_key(st_store *st, const char *name, uint8_t *out)
{
    return st_name_key(&st->crypto, ST_DB_COLLS, name, strlen(name), out);
}

int st_coll_rec_get(st_store *st, MDB_txn *txn, const char *name, st_coll_rec *out)
{
    uint8_t key[ST_NAME_MAX];
    size_t kl = coll_key(st, name, key);
    vc_buf scratch = VC_BUF_INIT;
    const void *body;
    size_t blen;
    int rc = st_get(st, txn, ST_DB_COLLS, key, kl, &body, &blen, &scratch);
    if (rc == 0)
        rc = st_rec_coll_dec(body, blen, out);
    if (rc == 0 && strcmp(out->name, name) != 0)
        rc = -EIO;
    vc_buf_release(&scratch);
    return rc;
}

int st_coll_rec_put(st_store *st, MDB_txn *txn, const st_coll_rec *r)
{
    uint8_t key[ST_NAME_MAX];
    size_t kl = coll_key(st, r->name, key);
    vc_buf b = VC_BUF_INIT;
    st_rec_coll_enc(&b, r);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_COLLS, key, kl, b.p, b.len);
    vc_buf_release(&b);
    return rc;
}

static st_coll *coll_new(const st_coll_rec *r)
{
    st_coll *c = st_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->id = r->coll_id;
    c->uuid = r->uuid;
    pthread_mutex_init(&c->wlock, NULL);
    pthread_mutex_init(&c->mu, NULL);
    snprintf(c->name, sizeof(c->name), "%s", r->name);
    c->cfg = r->cfg;
    c->count = r->count;
    c->bytes = r->bytes;
    c->cur_gen = r->snap_gen + 1;
    st_now(&c->snap_time);
    /* An empty collection has every name already; others are filled by the
     * background thread. */
    st_names_init(&c->names, r->count == 0);
    return c;
}

static void coll_free(st_coll *c)
{
    if (!c)
        return;
    vf_hnsw_free(c->index);
    for (size_t i = 0; i < c->nretired; i++)
        vf_hnsw_free(c->retired[i]);
    free(c->retired);
    st_names_destroy(&c->names);
    pthread_mutex_destroy(&c->wlock);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Adds c to the table (colls_lock write-held). */
static int colls_add(st_store *st, st_coll *c)
{
    st_coll **n = st_realloc(st->colls, (st->ncolls + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    st->colls = n;
    size_t i = st->ncolls;
    while (i > 0 && st->colls[i - 1]->id > c->id) {
        st->colls[i] = st->colls[i - 1];
        i--;
    }
    st->colls[i] = c;
    st->ncolls++;
    return 0;
}

/* Moves c from the table to the graveyard (colls_lock write-held). */
static void colls_bury(st_store *st, st_coll *c)
{
    for (size_t i = 0; i < st->ncolls; i++)
        if (st->colls[i] == c) {
            memmove(&st->colls[i], &st->colls[i + 1], (st->ncolls - i - 1) * sizeof(c));
            st->ncolls--;
            break;
        }
    st_coll **g = realloc(st->graveyard, (st->ngraveyard + 1) * sizeof(*g));
    if (g) {
        st->graveyard = g;
        st->graveyard[st->ngraveyard++] = c;
    }
    /* Without room in the graveyard the object leaks: safer than a free
     * under a reader's feet. */
}

void st_coll_note_changes(st_coll *c, uint64_t n)
{
    pthread_mutex_lock(&c->mu);
    if (c->changes == 0)
        mono_now(&c->first_change);
    c->changes += n;
    c->tune_changes += n;
    pthread_mutex_unlock(&c->mu);
}

int st_coll_autotune(st_store *st, st_coll *c, bool force)
{
    (void)st;
    pthread_mutex_lock(&c->mu);
    vf_hnsw *h = c->index;
    bool due = c->cfg.ef_auto && h && !c->dropped && c->count > 0 &&
               (force || c->auto_ef == 0 ||
                c->tune_changes > (c->count / 10 > 1000 ? c->count / 10 : 1000));
    double target = c->cfg.target_recall;
    if (due)
        c->tune_changes = 0;
    pthread_mutex_unlock(&c->mu);
    if (!due)
        return 0;
    uint32_t ef = 0;
    int rc = vf_hnsw_tune_ef(h, 10, target, 1024, 200, &ef);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    if (c->index == h)
        c->auto_ef = ef;
    pthread_mutex_unlock(&c->mu);
    st_log(st, ST_LOG_DEBUG, "collection %" PRIu32 ": ef_search auto = %" PRIu32, c->id, ef);
    return 0;
}

int st_dirty_mark(st_store *st, MDB_txn *txn, st_coll *c, uint32_t id)
{
    uint8_t key[8];
    st_be32(key, c->id);
    st_be32(key + 4, id);
    vc_buf b = VC_BUF_INIT;
    st_rec_counter_enc(&b, c->cur_gen);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_DIRTY, key, sizeof(key), b.p, b.len);
    vc_buf_release(&b);
    return rc;
}

int st_coll_index_ensure(st_store *st, st_coll *c, uint32_t dim)
{
    (void)st;
    pthread_mutex_lock(&c->mu);
    bool have = c->index != NULL;
    st_config cfg = c->cfg;
    pthread_mutex_unlock(&c->mu);
    if (have)
        return 0;
    vf_hnsw_params p;
    st_config_hnsw(&cfg, dim, &p);
    p.seed = c->uuid;
    vf_hnsw *h = NULL;
    int rc = vf_hnsw_create(&p, &h);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    c->index = h;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* Deletes every key of db that starts with the 4-byte collection prefix. */
static int del_prefix(st_store *st, MDB_txn *txn, int db, uint32_t coll_id)
{
    uint8_t pre[4];
    st_be32(pre, coll_id);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->db[db], &cur);
    if (rc)
        return st_mdb_err(rc);
    MDB_val k = {4, pre}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 4 && memcmp(k.mv_data, pre, 4) == 0) {
        rc = mdb_cursor_del(cur, db == ST_DB_MIDX ? MDB_NODUPDATA : 0);
        if (rc)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc == MDB_NOTFOUND || rc == EINVAL)
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : st_mdb_err(rc);
}

/* ------------------------------------------------------------------ */
/* Open and close                                                       */
/* ------------------------------------------------------------------ */

static int open_dbs(st_store *st, MDB_txn *txn, bool create)
{
    for (int i = 1; i < ST_DB_COUNT; i++) {
        unsigned flags = create ? MDB_CREATE : 0;
        if (i == ST_DB_MIDX)
            flags |= MDB_DUPSORT | MDB_DUPFIXED;
        int rc = mdb_dbi_open(txn, st_db_names[i], flags, &st->db[i]);
        if (rc)
            return st_mdb_err(rc);
    }
    return 0;
}

static int write_counter(st_store *st, MDB_txn *txn, const char *key, uint64_t v)
{
    vc_buf b = VC_BUF_INIT;
    st_rec_counter_enc(&b, v);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_META, key, strlen(key), b.p, b.len);
    vc_buf_release(&b);
    return rc;
}

static int read_counter(st_store *st, MDB_txn *txn, const char *key, uint64_t *v)
{
    vc_buf scratch = VC_BUF_INIT;
    const void *body;
    size_t blen;
    int rc = st_get(st, txn, ST_DB_META, key, strlen(key), &body, &blen, &scratch);
    if (rc == 0)
        rc = st_rec_counter_dec(body, blen, v);
    vc_buf_release(&scratch);
    return rc;
}

/* Creates the FORMAT, KEYCHECK and counter records of a new store. */
static int format_init(st_store *st, MDB_txn *txn)
{
    st_format_rec f = {.version = ST_FORMAT_VERSION, .flags = st->opt.key ? 1u : 0u};
    int rc = 0;
    if (st->opt.key) {
        rc = st_kdf_new(&f.kdf, st->opt.key_is_passphrase);
        if (rc == 0)
            rc = st_crypto_derive(&st->crypto, &f.kdf, st->opt.key, st->opt.key_len);
        if (rc)
            return rc;
    }
    vc_buf b = VC_BUF_INIT;
    st_rec_format_enc(&b, &f);
    st_crypto plain = {0};
    MDB_val k = {6, (void *)"format"};
    MDB_val v = {b.len + st_env_overhead(&plain), NULL};
    rc = b.err;
    if (rc == 0)
        rc = st_mdb_err(mdb_put(txn, st->db[ST_DB_META], &k, &v, MDB_RESERVE));
    if (rc == 0)
        rc = st_env_seal(&plain, ST_DB_META, "format", 6, b.p, b.len, v.mv_data);
    vc_buf_release(&b);
    if (rc == 0 && st->crypto.on) {
        vc_buf kc = VC_BUF_INIT;
        st_rec_blob_enc(&kc, ST_REC_KEYCHECK, keycheck_text, sizeof(keycheck_text) - 1);
        rc = kc.err ? kc.err : st_put(st, txn, ST_DB_META, "keycheck", 8, kc.p, kc.len);
        vc_buf_release(&kc);
    }
    if (rc == 0)
        rc = write_counter(st, txn, "nextcoll", 1);
    return rc;
}

/* Checks the FORMAT record and the key. */
static int format_check(st_store *st, MDB_txn *txn, const MDB_val *fv)
{
    st_crypto plain = {0};
    const void *body;
    size_t blen;
    st_format_rec f;
    int rc =
        st_env_open(&plain, ST_DB_META, "format", 6, fv->mv_data, fv->mv_size, NULL, &body, &blen);
    if (rc == 0)
        rc = st_rec_format_dec(body, blen, &f);
    if (rc == -EPROTO) {
        uint32_t ver = 0;
        if (blen >= 8)
            memcpy(&ver, (const uint8_t *)body + 4, 4);
        seterr(&st->opt,
               "%s holds a vecfs store of format version %" PRIu32 ", this build reads version %u",
               st->dir, ver, ST_FORMAT_VERSION);
        return -EPROTO;
    }
    if (rc) {
        seterr(&st->opt, "%s: the store's format record is damaged", st->dir);
        return -EIO;
    }
    bool enc = f.flags & 1u;
    if (enc && !st->opt.key) {
        seterr(&st->opt, "%s is encrypted: a key is needed (--key-file)", st->dir);
        return -EKEYREJECTED;
    }
    if (!enc && st->opt.key) {
        seterr(&st->opt, "%s is not encrypted but a key was given", st->dir);
        return -EKEYREJECTED;
    }
    if (!enc)
        return 0;
    if (f.kdf.kind == 1 && st->opt.key_is_passphrase) {
        seterr(&st->opt, "wrong key for %s (it was created with a raw 32-byte key)", st->dir);
        return -EKEYREJECTED;
    }
    if (f.kdf.kind == 2 && !st->opt.key_is_passphrase) {
        seterr(&st->opt, "wrong key for %s (it was created with a passphrase)", st->dir);
        return -EKEYREJECTED;
    }
    rc = st_crypto_derive(&st->crypto, &f.kdf, st->opt.key, st->opt.key_len);
    if (rc) {
        seterr(&st->opt, "%s: cannot derive the key (%s)", st->dir, strerror(-rc));
        return rc == -EINVAL ? -EKEYREJECTED : rc;
    }
    vc_buf scratch = VC_BUF_INIT;
    const uint8_t *text;
    size_t tlen;
    rc = st_get(st, txn, ST_DB_META, "keycheck", 8, &body, &blen, &scratch);
    if (rc == 0)
        rc = st_rec_blob_dec(body, blen, ST_REC_KEYCHECK, &text, &tlen);
    if (rc == 0 && (tlen != sizeof(keycheck_text) - 1 || memcmp(text, keycheck_text, tlen) != 0))
        rc = -EIO;
    vc_buf_release(&scratch);
    if (rc) {
        seterr(&st->opt, "wrong key for %s", st->dir);
        st_crypto_wipe(&st->crypto);
        return -EKEYREJECTED;
    }
    return 0;
}

static uint64_t space_reserve(uint64_t max_size)
{
    uint64_t r = max_size / 16;
    return r < ((uint64_t)1 << 20) ? ((uint64_t)1 << 20) : r;
}

int st_space_check(st_store *st, MDB_txn *txn, uint64_t need)
{
    (void)txn;
    if (!st->opt.max_size)
        return 0;
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &ms);
    uint64_t psize = ms.ms_psize;
    uint64_t used = (uint64_t)(info.me_last_pgno + 1) * psize;
    /* Copy-on-write touches a few pages per tree level besides the data. */
    need += 16 * psize;
    if (used + need <= st->opt.max_size)
        return 0;
    /* Near the bound: subtract the pages on LMDB's free list, read through
     * a read txn (LMDB refuses a cursor on it in a write txn; the list as of
     * the last commit is close enough for a bound). */
    MDB_txn *rtxn;
    MDB_cursor *cur;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &rtxn) != 0)
        return -ENOSPC;
    if (mdb_cursor_open(rtxn, 0, &cur) != 0) {
        mdb_txn_abort(rtxn);
        return -ENOSPC;
    }
    MDB_val k, v;
    uint64_t free_pages = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (v.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, v.mv_data, sizeof(n));
            free_pages += n;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(rtxn);
    uint64_t in_use = used > free_pages * psize ? used - free_pages * psize : 0;
    return in_use + need <= st->opt.max_size ? 0 : -ENOSPC;
}

static int env_open(st_store *st)
{
    int rc = st_mdb_err(mdb_env_create(&st->env));
    if (rc)
        return rc;
    mdb_env_set_maxdbs(st->env, 16);
    mdb_env_set_maxreaders(st->env, 1022);
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (st->opt.read_only)
        flags |= MDB_RDONLY;
    else if (st->opt.sync_mode == ST_SYNC_SAFE)
        flags |= MDB_NOMETASYNC;
    else if (st->opt.sync_mode == ST_SYNC_FAST)
        flags |= MDB_NOSYNC;
    /* With a bound, LMDB gets a reserve above it (st_space_check keeps
     * inserts below the bound), so deletes and renames still find pages
     * when the store is full. */
    uint64_t map =
        st->opt.max_size ? st->opt.max_size + space_reserve(st->opt.max_size) : UNBOUNDED_MAP;
    if (map < MIN_MAP)
        map = MIN_MAP;
    for (;;) {
        mdb_env_set_mapsize(st->env, (size_t)map);
        rc = mdb_env_open(st->env, st->dir, flags, 0600);
        if (rc == ENOMEM && !st->opt.max_size && map > ((uint64_t)1 << 32)) {
            /* Not enough address space for the unbounded map: ask for less. */
            mdb_env_close(st->env);
            st->env = NULL;
            map /= 2;
            if ((rc = st_mdb_err(mdb_env_create(&st->env))))
                return rc;
            mdb_env_set_maxdbs(st->env, 16);
            mdb_env_set_maxreaders(st->env, 1022);
            continue;
        }
        break;
    }
    if (rc) {
        mdb_env_close(st->env);
        st->env = NULL;
        return st_mdb_err(rc);
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    st->map_size = info.me_mapsize;
    return 0;
}

/* Loads every collection record and its index. */
static int colls_load(st_store *st)
{
    MDB_txn *txn;
    int rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    st_coll_rec *recs = NULL;
    size_t n = 0, cap = 0;
    MDB_cursor *cur = NULL;
    vc_buf scratch = VC_BUF_INIT;
    rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_COLLS], &cur));
    MDB_val k, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && mrc == 0) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            st_coll_rec *r = st_realloc(recs, cap * sizeof(*r));
            if (!r) {
                rc = -ENOMEM;
                break;
            }
            recs = r;
        }
        const void *body;
        size_t blen;
        rc = st_env_open_buf(&st->crypto, ST_DB_COLLS, k.mv_data, k.mv_size, v.mv_data, v.mv_size,
                             &scratch, &body, &blen);
        if (rc == -ENOMEM)
            break;
        if (rc == 0)
            rc = st_rec_coll_dec(body, blen, &recs[n]);
        if (rc) {
            seterr(&st->opt, "%s: a collection record is damaged", st->dir);
            break;
        }
        n++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != MDB_NOTFOUND && mrc != 0)
        rc = st_mdb_err(mrc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    vc_buf_release(&scratch);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        st_coll *c = coll_new(&recs[i]);
        if (!c) {
            rc = -ENOMEM;
            break;
        }
        rc = colls_add(st, c);
        if (rc) {
            coll_free(c);
            break;
        }
        bool rebuilt = false;
        if (st->no_index)
            continue;
        rc = st_snap_load(st, c, &recs[i], &rebuilt);
        if (rc)
            seterr(&st->opt, "%s: cannot load collection '%s': %s", st->dir, c->name,
                   strerror(-rc));
    }
    free(recs);
    return rc;
}

static void *bg_main(void *arg);

static int store_open(const char *datadir, const st_options *opt, bool no_index, st_store **out);

int st_store_open(const char *datadir, const st_options *opt, st_store **out)
{
    return store_open(datadir, opt, false, out);
}

int st_store_open_noindex(const char *datadir, const st_options *opt, st_store **out)
{
    return store_open(datadir, opt, true, out);
}

static int store_open(const char *datadir, const st_options *opt, bool no_index, st_store **out)
{
    st_options defaults;
    if (!opt) {
        st_options_default(&defaults);
        opt = &defaults;
    }
    if (!out || !datadir)
        return -EINVAL;
    *out = NULL;
    if (opt->key && opt->key_len == 0) {
        seterr(opt, "empty key");
        return -EINVAL;
    }
    if (opt->key && !opt->key_is_passphrase && opt->key_len != ST_KEY_LEN) {
        seterr(opt, "a raw key must be %u bytes", ST_KEY_LEN);
        return -EINVAL;
    }
    struct stat sb;
    if (stat(datadir, &sb) != 0) {
        int e = errno;
        seterr(opt, "%s: %s", datadir, strerror(e));
        return -e;
    }
    if (!S_ISDIR(sb.st_mode)) {
        seterr(opt, "%s: not a directory", datadir);
        return -ENOTDIR;
    }
    struct timespec t0, t1;
    mono_now(&t0);
    int rc = -ENOMEM;
    st_store *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->lock_fd = -1;
    st->opt = *opt;
    st->no_index = no_index;
    if (st->opt.sync_interval_ms == 0)
        st->opt.sync_interval_ms = DEFAULT_SYNC_MS;
    if (st->opt.snapshot_every_changes == 0)
        st->opt.snapshot_every_changes = DEFAULT_SNAP_CHANGES;
    if (st->opt.snapshot_every_seconds == 0)
        st->opt.snapshot_every_seconds = DEFAULT_SNAP_SECONDS;
    pthread_rwlock_init(&st->colls_lock, NULL);
    pthread_mutex_init(&st->bg_mu, NULL);
    pthread_cond_init(&st->bg_cv, NULL);
    pthread_mutex_init(&st->snap_mu, NULL);
    pthread_mutex_init(&st->health_mu, NULL);
    st->dir = strdup(datadir);
    st->opt.key = NULL;
    if (opt->key) {
        void *k = malloc(opt->key_len);
        if (!k)
            goto out;
        memcpy(k, opt->key, opt->key_len);
        st->opt.key = k;
    }
    if (!st->dir)
        goto out;

    if (!st->opt.read_only) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/vecfs.lock", st->dir);
        st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (st->lock_fd < 0) {
            rc = -errno;
            seterr(opt, "%s: %s", path, strerror(-rc));
            goto out;
        }
        if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
            seterr(opt, "%s is in use by another vecfs process", st->dir);
            goto out;
        }
    }
    rc = env_open(st);
    if (rc) {
        if (rc == -ENOENT && st->opt.read_only)
            seterr(opt, "%s holds no vecfs store", st->dir);
        else
            seterr(opt, "%s: cannot open the LMDB environment: %s", st->dir, strerror(-rc));
        goto out;
    }
    MDB_txn *txn = NULL;
    rc = st->opt.read_only ? st_txn_read(st, &txn)
                           : st_mdb_err(mdb_txn_begin(st->env, NULL, 0, &txn));
    if (rc)
        goto out;
    rc = open_dbs(st, txn, !st->opt.read_only);
    if (rc == -ENOENT) {
        mdb_txn_abort(txn);
        seterr(opt, "%s holds no vecfs store", st->dir);
        goto out;
    }
    MDB_val fk = {6, (void *)"format"}, fv;
    int mrc = rc ? 0 : mdb_get(txn, st->db[ST_DB_META], &fk, &fv);
    if (rc == 0 && mrc == MDB_NOTFOUND) {
        if (st->opt.read_only) {
            rc = -ENOENT;
            seterr(opt, "%s holds no vecfs store", st->dir);
        } else {
            rc = format_init(st, txn);
        }
    } else if (rc == 0 && mrc) {
        rc = st_mdb_err(mrc);
    } else if (rc == 0) {
        rc = format_check(st, txn, &fv);
    }
    if (rc) {
        mdb_txn_abort(txn);
        goto out;
    }
    rc = st_mdb_err(mdb_txn_commit(txn));
    if (rc)
        goto out;
    rc = colls_load(st);
    if (rc)
        goto out;
    /* Read-only stores run it too, for the name tables alone. */
    if (!st->no_index) {
        if (pthread_create(&st->bg, NULL, bg_main, st) != 0) {
            rc = -EAGAIN;
            goto out;
        }
        st->bg_running = true;
    }
    mono_now(&t1);
    st->open_seconds = st_ts_diff(&t1, &t0);
    st_log(st, ST_LOG_INFO, "opened %s in %.3f s (%zu collections%s)", st->dir, st->open_seconds,
           st->ncolls, st->crypto.on ? ", encrypted" : "");
    *out = st;
    return 0;
out:
    st->opt.read_only = true; /* no final snapshots of a half-open store */
    st_store_close(st);
    return rc;
}

int st_store_close(st_store *st)
{
    if (!st)
        return 0;
    int first = 0;
    if (st->bg_running) {
        pthread_mutex_lock(&st->bg_mu);
        st->bg_stop = true;
        pthread_cond_signal(&st->bg_cv);
        pthread_mutex_unlock(&st->bg_mu);
        pthread_join(st->bg, NULL);
        st->bg_running = false;
    }
    if (st->env && !st->opt.read_only) {
        pthread_mutex_lock(&st->snap_mu);
        for (size_t i = 0; i < st->ncolls; i++) {
            int rc = st_snap_write(st, st->colls[i], false);
            if (rc && !first)
                first = rc;
        }
        pthread_mutex_unlock(&st->snap_mu);
        int rc = st_mdb_err(mdb_env_sync(st->env, 1));
        if (rc && !first)
            first = rc;
    }
    for (size_t i = 0; i < st->ncolls; i++)
        coll_free(st->colls[i]);
    for (size_t i = 0; i < st->ngraveyard; i++)
        coll_free(st->graveyard[i]);
    free(st->colls);
    free(st->graveyard);
    if (st->env)
        mdb_env_close(st->env);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    if (st->opt.key) {
        OPENSSL_cleanse((void *)st->opt.key, st->opt.key_len);
        free((void *)st->opt.key);
    }
    st_crypto_wipe(&st->crypto);
    pthread_rwlock_destroy(&st->colls_lock);
    pthread_mutex_destroy(&st->bg_mu);
    pthread_cond_destroy(&st->bg_cv);
    pthread_mutex_destroy(&st->snap_mu);
    pthread_mutex_destroy(&st->health_mu);
    free(st->dir);
    free(st);
    return first;
}

int st_store_sync(st_store *st)
{
    if (!st)
        return -EINVAL;
    if (st->opt.read_only)
        return 0;
    atomic_store(&st->unsynced, false);
    int rc = st_mdb_err(mdb_env_sync(st->env, 1));
    if (rc) {
        atomic_store(&st->unsynced, true);
        st_health_set(st, "sync failed: %s", strerror(-rc));
        return rc;
    }
    health_clear(st, "sync failed");
    return 0;
}

/* The collections now (a malloc'd array of *n; NULL on ENOMEM). The
 * objects stay valid until close: dropped ones go to the graveyard. */
static st_coll **colls_copy(st_store *st, size_t *n)
{
    pthread_rwlock_rdlock(&st->colls_lock);
    *n = st->ncolls;
    st_coll **list = st_malloc((*n ? *n : 1) * sizeof(*list));
    if (list && *n) /* st->colls is NULL before the first collection */
        memcpy(list, st->colls, *n * sizeof(*list));
    pthread_rwlock_unlock(&st->colls_lock);
    return list;
}

int st_store_snapshot(st_store *st, const char *coll)
{
    if (!st)
        return -EINVAL;
    if (st->opt.read_only)
        return -EROFS;
    int rc = 0;
    if (coll) {
        st_coll *c = st_coll_find(st, coll);
        if (!c)
            return -ENOENT;
        pthread_mutex_lock(&st->snap_mu);
        rc = st_snap_write(st, c, true);
        pthread_mutex_unlock(&st->snap_mu);
        return rc;
    }
    pthread_mutex_lock(&st->snap_mu);
    size_t n;
    st_coll **list = colls_copy(st, &n);
    if (!list)
        rc = -ENOMEM;
    for (size_t i = 0; list && i < n; i++) {
        int r = st_snap_write(st, list[i], false);
        if (r && !rc)
            rc = r;
    }
    free(list);
    pthread_mutex_unlock(&st->snap_mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Background thread                                                    */
/* ------------------------------------------------------------------ */

static void bg_snapshots(st_store *st)
{
    size_t n;
    st_coll **list = colls_copy(st, &n);
    if (!list)
        return;
    struct timespec now;
    mono_now(&now);
    for (size_t i = 0; i < n; i++) {
        st_coll *c = list[i];
        if (st_coll_autotune(st, c, false) != 0)
            atomic_fetch_add(&st->errors, 1);
        pthread_mutex_lock(&c->mu);
        bool due = !c->dropped && c->changes > 0 &&
                   (c->changes >= st->opt.snapshot_every_changes ||
                    (st->opt.snapshot_every_seconds != UINT32_MAX &&
                     st_ts_diff(&now, &c->first_change) >= st->opt.snapshot_every_seconds));
        pthread_mutex_unlock(&c->mu);
        if (!due)
            continue;
        pthread_mutex_lock(&st->snap_mu);
        int rc = st_snap_write(st, c, false);
        pthread_mutex_unlock(&st->snap_mu);
        if (rc) {
            atomic_fetch_add(&st->errors, 1);
            st_log(st, ST_LOG_ERROR, "snapshot of collection %" PRIu32 " failed: %s", c->id,
                   strerror(-rc));
        }
    }
    free(list);
}

/* Fills the name tables that are not filled yet, a chunk at a time (each
 * chunk holds only that collection's writers back), for at most
 * NAMES_SLICE_MS so syncs and snapshots keep their schedule. Returns true
 * while some table is still filling. */
#define NAMES_SLICE_MS 100
static bool bg_names(st_store *st)
{
    size_t n;
    st_coll **list = colls_copy(st, &n);
    if (!list)
        return true;
    struct timespec t0, now;
    mono_now(&t0);
    bool pending = false;
    for (size_t i = 0; i < n; i++) {
        bool done = false;
        while (!done) {
            mono_now(&now);
            pthread_mutex_lock(&st->bg_mu);
            bool stop = st->bg_stop;
            pthread_mutex_unlock(&st->bg_mu);
            if (stop || st_ts_diff(&now, &t0) * 1000.0 >= NAMES_SLICE_MS)
                break;
            int rc = st_names_fill_step(st, list[i], &done);
            if (rc) {
                atomic_fetch_add(&st->errors, 1);
                st_log(st, ST_LOG_ERROR, "names of collection %" PRIu32 ": %s", list[i]->id,
                       strerror(-rc));
                break;
            }
        }
        pending |= !done;
    }
    free(list);
    return pending;
}

static void *bg_main(void *arg)
{
    st_store *st = arg;
    struct timespec last_sync;
    mono_now(&last_sync);
    bool names_pending = true;
    pthread_mutex_lock(&st->bg_mu);
    while (!st->bg_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        unsigned ms = st->opt.sync_interval_ms < 200 ? st->opt.sync_interval_ms : 200;
        until.tv_nsec += (long)ms * 1000000L;
        while (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        /* While a name table is filling, the next slice follows at once. */
        if (!names_pending)
            pthread_cond_timedwait(&st->bg_cv, &st->bg_mu, &until);
        if (st->bg_stop)
            break;
        pthread_mutex_unlock(&st->bg_mu);
        names_pending = bg_names(st);
        struct timespec now;
        mono_now(&now);
        if (!st->opt.read_only &&
            st_ts_diff(&now, &last_sync) * 1000.0 >= st->opt.sync_interval_ms) {
            last_sync = now;
            if (atomic_exchange(&st->unsynced, false)) {
                int rc = st_mdb_err(mdb_env_sync(st->env, 1));
                if (rc) {
                    atomic_store(&st->unsynced, true);
                    atomic_fetch_add(&st->errors, 1);
                    st_health_set(st, "sync failed: %s", strerror(-rc));
                } else {
                    health_clear(st, "sync failed");
                }
            }
            bg_snapshots(st);
        }
        pthread_mutex_lock(&st->bg_mu);
    }
    pthread_mutex_unlock(&st->bg_mu);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Metrics, health, backup, keys                                        */
/* ------------------------------------------------------------------ */

int st_store_metrics(st_store *st, st_metrics *out)
{
    if (!st || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    struct timespec now;
    mono_now(&now);
    pthread_rwlock_rdlock(&st->colls_lock);
    out->collections = st->ncolls;
    for (size_t i = 0; i < st->ncolls; i++) {
        st_coll *c = st->colls[i];
        pthread_mutex_lock(&c->mu);
        out->vectors += c->count;
        if (c->index) {
            vf_hnsw_stats hs;
            vf_hnsw_stats_get(c->index, &hs);
            out->index_memory += vf_hnsw_memory(c->index);
            out->searches_short_total += hs.searches_short;
            out->vectors_rehomed_total += hs.rehomed;
            out->vectors_stranded_total += hs.stranded;
        }
        out->index_memory += st_names_memory(&c->names);
        if (c->changes > 0) {
            double age = st_ts_diff(&now, &c->first_change);
            if (age > out->snapshot_age_seconds)
                out->snapshot_age_seconds = age;
        }
        pthread_mutex_unlock(&c->mu);
    }
    pthread_rwlock_unlock(&st->colls_lock);
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &ms);
    out->map_bytes = info.me_mapsize;
    out->store_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
    if (st->opt.max_size) {
        out->max_bytes = st->opt.max_size;
    } else {
        struct statvfs vfs;
        uint64_t avail = 0;
        if (statvfs(st->dir, &vfs) == 0)
            avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        out->max_bytes = out->store_bytes + avail;
    }
    out->inserts_total = atomic_load(&st->inserts);
    out->deletes_total = atomic_load(&st->deletes);
    out->queries_total = atomic_load(&st->queries);
    out->query_ns_total = atomic_load(&st->query_ns);
    out->snapshots_total = atomic_load(&st->snapshots);
    out->rebuilds_total = atomic_load(&st->rebuilds);
    out->errors_total = atomic_load(&st->errors);
    out->open_seconds = st->open_seconds;
    out->read_only = st->opt.read_only;
    out->encrypted = st->crypto.on;
    return 0;
}

int st_store_health(st_store *st, char *buf, size_t cap, size_t *len_out)
{
    if (!st || (!buf && cap))
        return -EINVAL;
    char tmp[sizeof(st->health)];
    pthread_mutex_lock(&st->health_mu);
    memcpy(tmp, st->health, sizeof(tmp));
    pthread_mutex_unlock(&st->health_mu);
    int bad = tmp[0] != 0;
    if (!bad)
        snprintf(tmp, sizeof(tmp), "ok\n");
    size_t n = strlen(tmp);
    if (cap) {
        size_t c = n < cap ? n : cap - 1;
        memcpy(buf, tmp, c);
        buf[c] = 0;
        n = c;
    }
    if (len_out)
        *len_out = n;
    return bad;
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

int st_key_load(const char *path, uint8_t **key, size_t *len, bool *is_passphrase)
{
    if (!path || !key || !len || !is_passphrase)
        return -EINVAL;
    *key = NULL;
    int fd = st_io_open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    uint8_t *buf = st_malloc(1026);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, 1026 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            close(fd);
            st_key_free(buf, 1026);
            return e;
        }
        if (r == 0 || (n += (size_t)r) == 1026)
            break;
    }
    close(fd);
    if (n == ST_KEY_LEN) {
        *is_passphrase = false;
    } else {
        if (n > 0 && buf[n - 1] == '\n')
            n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
        if (n == 0 || n > 1024) {
            st_key_free(buf, 1026);
            return -EINVAL;
        }
        *is_passphrase = true;
    }
    *key = buf;
    *len = n;
    return 0;
}

void st_key_free(uint8_t *key, size_t len)
{
    if (!key)
        return;
    OPENSSL_cleanse(key, len < 1026 ? 1026 : len);
    free(key);
}

/* ------------------------------------------------------------------ */
/* Collections                                                          */
/* ------------------------------------------------------------------ */

static void attr_from_coll(const st_coll_rec *r, st_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->mode = (r->mode & 07777) | S_IFDIR;
    a->uid = r->uid;
    a->gid = r->gid;
    a->atime = r->atime;
    a->mtime = r->mtime;
    a->ctime = r->ctime;
    a->size = r->count;
    a->count = r->count;
    a->bytes = r->bytes;
    a->id = r->coll_id;
    a->ino = (uint64_t)r->coll_id << 32;
}

int st_coll_create(st_store *st, const char *name, const st_attr *attr, const st_config *cfg)
{
    if (!st)
        return -EINVAL;
    int rc = st_coll_name_check(name);
    if (rc)
        return rc;
    st_config def;
    if (!cfg) {
        st_config_default(&def);
        cfg = &def;
    }
    if (st_config_validate(cfg) != 0)
        return -EINVAL;
    st_coll_rec r;
    memset(&r, 0, sizeof(r));
    r.cfg = *cfg;
    r.mode = attr ? (attr->mode & 07777) : 0755;
    r.uid = attr ? attr->uid : 0;
    r.gid = attr ? attr->gid : 0;
    st_now(&r.atime);
    r.mtime = r.ctime = r.cfg_mtime = r.atime;
    r.next_seq = 1;
    snprintf(r.name, sizeof(r.name), "%s", name);
    rc = st_random(&r.uuid, sizeof(r.uuid));
    if (rc)
        return rc;

    /* colls_lock is not held across the transaction: lookups by readers
     * must never wait behind LMDB's writer lock. */
    MDB_txn *txn = NULL;
    st_coll *c = NULL;
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    st_coll_rec old;
    rc = st_coll_rec_get(st, txn, name, &old);
    if (rc == 0) {
        rc = -EEXIST;
        goto out;
    }
    if (rc != -ENOENT)
        goto out;
    uint64_t next;
    rc = read_counter(st, txn, "nextcoll", &next);
    if (rc)
        goto out;
    if (next >= UINT32_MAX) {
        rc = -ENOSPC;
        goto out;
    }
    r.coll_id = (uint32_t)next;
    rc = write_counter(st, txn, "nextcoll", next + 1);
    if (rc == 0)
        rc = st_coll_rec_put(st, txn, &r);
    if (rc)
        goto out;
    c = coll_new(&r);
    if (!c) {
        rc = -ENOMEM;
        goto out;
    }
    rc = st_txn_commit(st, txn);
    txn = NULL;
    if (rc)
        goto out;
    pthread_rwlock_wrlock(&st->colls_lock);
    rc = colls_add(st, c);
    pthread_rwlock_unlock(&st->colls_lock);
    if (rc == 0)
        c = NULL;
    /* If the table could not grow, the record exists but the object does
     * not; the next open loads it. Report the error honestly. */
out:
    if (txn)
        mdb_txn_abort(txn);
    coll_free(c);
    return rc;
}

int st_coll_drop(st_store *st, const char *name)
{
    if (!st)
        return -EINVAL;
    int rc = st_coll_name_check(name);
    if (rc)
        return rc;
    st_coll *c = st_coll_find(st, name);
    if (!c)
        return -ENOENT;
    pthread_mutex_lock(&c->wlock);
    MDB_txn *txn = NULL;
    pthread_mutex_lock(&c->mu);
    bool gone = c->dropped || strcmp(c->name, name) != 0;
    pthread_mutex_unlock(&c->mu);
    if (gone) {
        rc = -ENOENT;
        goto out;
    }
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    st_coll_rec r;
    rc = st_coll_rec_get(st, txn, name, &r);
    if (rc)
        goto out;
    if (r.count > 0) {
        rc = -ENOTEMPTY;
        goto out;
    }
    uint8_t key[ST_NAME_MAX];
    size_t kl = coll_key(st, name, key);
    MDB_val k = {kl, key};
    rc = st_mdb_err(mdb_del(txn, st->db[ST_DB_COLLS], &k, NULL));
    for (int db = ST_DB_VECS; rc == 0 && db < ST_DB_COUNT; db++)
        rc = del_prefix(st, txn, db, c->id);
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
    if (rc)
        goto out;
    pthread_mutex_lock(&c->mu);
    c->dropped = true;
    pthread_mutex_unlock(&c->mu);
    st_names_clear(&c->names);
    pthread_rwlock_wrlock(&st->colls_lock);
    colls_bury(st, c);
    pthread_rwlock_unlock(&st->colls_lock);
    st_snap_remove(st, c->id);
out:
    if (txn)
        mdb_txn_abort(txn);
    pthread_mutex_unlock(&c->wlock);
    return rc;
}

int st_coll_rename(st_store *st, const char *from, const char *to, unsigned flags)
{
    if (!st)
        return -EINVAL;
    int rc = st_coll_name_check(from);
    if (rc == 0)
        rc = st_coll_name_check(to);
    if (rc)
        return rc;
    if (flags & ~ST_RENAME_NOREPLACE)
        return -EINVAL;
    st_coll *c = st_coll_find(st, from);
    if (!c)
        return -ENOENT;
    if (strcmp(from, to) == 0)
        return 0;
    st_coll *t = st_coll_find(st, to);
    if (t && (flags & ST_RENAME_NOREPLACE))
        return -EEXIST;
    st_coll *first = c, *second = t;
    if (t && t->id < c->id) {
        first = t;
        second = c;
    }
    pthread_mutex_lock(&first->wlock);
    if (second)
        pthread_mutex_lock(&second->wlock);
    MDB_txn *txn = NULL;
    pthread_rwlock_rdlock(&st->colls_lock);
    bool raced = c->dropped || strcmp(c->name, from) != 0 || find_locked(st, to) != t;
    pthread_rwlock_unlock(&st->colls_lock);
    if (raced) {
        rc = -EAGAIN; /* raced with another rename/drop: the caller may retry */
        goto out;
    }
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    st_coll_rec r, tr;
    rc = st_coll_rec_get(st, txn, from, &r);
    if (rc)
        goto out;
    if (!t && st_coll_rec_get(st, txn, to, &tr) == 0) {
        rc = -EAGAIN; /* created meanwhile */
        goto out;
    }
    if (t) {
        rc = st_coll_rec_get(st, txn, to, &tr);
        if (rc)
            goto out;
        if (tr.count > 0) {
            rc = -ENOTEMPTY;
            goto out;
        }
        for (int db = ST_DB_VECS; rc == 0 && db < ST_DB_COUNT; db++)
            rc = del_prefix(st, txn, db, t->id);
    }
    uint8_t key[ST_NAME_MAX];
    size_t kl = coll_key(st, from, key);
    MDB_val k = {kl, key};
    if (rc == 0)
        rc = st_mdb_err(mdb_del(txn, st->db[ST_DB_COLLS], &k, NULL));
    snprintf(r.name, sizeof(r.name), "%s", to);
    st_now(&r.ctime);
    if (rc == 0)
        rc = st_coll_rec_put(st, txn, &r); /* replaces to's record */
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
    if (rc)
        goto out;
    pthread_rwlock_wrlock(&st->colls_lock);
    if (t) {
        pthread_mutex_lock(&t->mu);
        t->dropped = true;
        pthread_mutex_unlock(&t->mu);
        colls_bury(st, t);
    }
    pthread_mutex_lock(&c->mu);
    snprintf(c->name, sizeof(c->name), "%s", to);
    pthread_mutex_unlock(&c->mu);
    pthread_rwlock_unlock(&st->colls_lock);
    if (t)
        st_snap_remove(st, t->id);
out:
    if (txn)
        mdb_txn_abort(txn);
    if (second)
        pthread_mutex_unlock(&second->wlock);
    pthread_mutex_unlock(&first->wlock);
    return rc;
}

/* The committed COLL record of name, read in a read txn of its own.
 * Returns 0, -ENOENT, -EINVAL (name), or an LMDB error. */
static int coll_rec_read(st_store *st, const char *name, st_coll_rec *out)
{
    int rc = st_coll_name_check(name);
    if (rc)
        return rc;
    MDB_txn *txn;
    rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    rc = st_coll_rec_get(st, txn, name, out);
    mdb_txn_abort(txn);
    return rc;
}

int st_coll_stat(st_store *st, const char *name, st_attr *out)
{
    if (!st || !out)
        return -EINVAL;
    st_coll_rec r;
    int rc = coll_rec_read(st, name, &r);
    if (rc == 0)
        attr_from_coll(&r, out);
    return rc;
}

/* Read-modify-write of a COLL record's attributes: the fields in mask from
 * attr (ctime now unless in mask), and .config's mtime when cfg_mtime is
 * not NULL (alone, it leaves ctime: the collection did not change). */
static int coll_attr_update(st_store *st, const char *name, const st_attr *attr, unsigned mask,
                            const struct timespec *cfg_mtime)
{
    int rc = st_coll_name_check(name);
    if (rc)
        return rc;
    st_coll *c = st_coll_find(st, name);
    if (!c)
        return -ENOENT;
    pthread_mutex_lock(&c->wlock);
    MDB_txn *txn = NULL;
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    st_coll_rec r;
    rc = st_coll_rec_get(st, txn, name, &r);
    if (rc)
        goto out;
    if (mask & ST_SET_MODE)
        r.mode = attr->mode & 07777;
    if (mask & ST_SET_UID)
        r.uid = attr->uid;
    if (mask & ST_SET_GID)
        r.gid = attr->gid;
    if (mask & ST_SET_ATIME)
        r.atime = attr->atime;
    if (mask & ST_SET_MTIME)
        r.mtime = attr->mtime;
    if (mask & ST_SET_CTIME)
        r.ctime = attr->ctime;
    else if (mask || !cfg_mtime)
        st_now(&r.ctime);
    if (cfg_mtime)
        r.cfg_mtime = *cfg_mtime;
    rc = st_coll_rec_put(st, txn, &r);
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    pthread_mutex_unlock(&c->wlock);
    return rc;
}

int st_coll_setattr(st_store *st, const char *name, const st_attr *attr, unsigned mask)
{
    if (!st || (!attr && mask))
        return -EINVAL;
    return coll_attr_update(st, name, attr, mask, NULL);
}

int st_coll_config_get(st_store *st, const char *name, st_config *out)
{
    if (!st || !out)
        return -EINVAL;
    int rc = st_coll_name_check(name);
    if (rc)
        return rc;
    st_coll *c = st_coll_find(st, name);
    if (!c)
        return -ENOENT;
    pthread_mutex_lock(&c->mu);
    *out = c->cfg;
    rc = c->dropped ? -ENOENT : 0;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int st_coll_config_stat(st_store *st, const char *name, st_config *cfg, struct timespec *mtime)
{
    if (!st || !cfg || !mtime)
        return -EINVAL;
    st_coll_rec r;
    int rc = coll_rec_read(st, name, &r);
    if (rc == 0) {
        *cfg = r.cfg;
        *mtime = r.cfg_mtime;
    }
    return rc;
}

/* The index of c rebuilt from its stored vectors with cfg, for a config
 * change on a non-empty collection. Caller holds c->wlock, so the vectors
 * cannot change; a read txn keeps LMDB's writer lock free meanwhile. */
static int config_rebuild(st_store *st, st_coll *c, const st_config *cfg, vf_hnsw **out)
{
    MDB_txn *txn;
    int rc = st_txn_read(st, &txn);
    if (rc)
        return rc;
    rc = st_index_rebuild(st, txn, c, cfg, out);
    mdb_txn_abort(txn);
    if (rc == 0)
        st_log(st, ST_LOG_INFO, "collection %" PRIu32 ": index rebuilt for a config change", c->id);
    return rc;
}

/* Makes room for one more retired index (replaced indexes stay allocated
 * until close: searches may hold them), before a change commits, so that
 * retiring after the commit cannot fail. Only st_coll_config_set retires,
 * under c->wlock. Returns 0 or -ENOMEM. */
static int retire_reserve(st_coll *c)
{
    pthread_mutex_lock(&c->mu);
    vf_hnsw **rt = realloc(c->retired, (c->nretired + 1) * sizeof(*rt));
    if (rt)
        c->retired = rt;
    pthread_mutex_unlock(&c->mu);
    return rt ? 0 : -ENOMEM;
}

int st_coll_config_set(st_store *st, const char *name, const st_config *cfg,
                       const struct timespec *mtime)
{
    if (!st || !cfg)
        return -EINVAL;
    int rc = st_coll_name_check(name);
    if (rc)
        return rc;
    if (st_config_validate(cfg) != 0)
        return -EINVAL;
    st_coll *c = st_coll_find(st, name);
    if (!c)
        return -ENOENT;
    pthread_mutex_lock(&c->wlock);
    MDB_txn *txn = NULL;
    vf_hnsw *rebuilt = NULL;
    st_coll_rec r;
    /* The record as committed: c->wlock keeps it so until we write it. */
    rc = coll_rec_read(st, name, &r);
    if (rc)
        goto out;
    bool shape = cfg->dim != r.cfg.dim || cfg->metric != r.cfg.metric;
    /* The graph was built with the metric, m and ef_construction: a new
     * value must rebuild it, or it would be reported but not applied. */
    bool graph = cfg->metric != r.cfg.metric || cfg->m != r.cfg.m ||
                 cfg->ef_construction != r.cfg.ef_construction;
    if (r.count > 0 && cfg->dim != r.cfg.dim) {
        rc = -EINVAL;
        goto out;
    }
    if (r.count > 0 && graph) {
        rc = config_rebuild(st, c, cfg, &rebuilt);
        if (rc)
            goto out;
    }
    if (shape || rebuilt) {
        rc = retire_reserve(c);
        if (rc)
            goto out;
    }
    rc = st_txn_write(st, &txn);
    if (rc)
        goto out;
    r.cfg = *cfg;
    st_now(&r.ctime);
    r.cfg_mtime = mtime ? *mtime : r.ctime;
    rc = st_coll_rec_put(st, txn, &r);
    if (rc)
        goto out;
    rc = st_txn_commit(st, txn);
    txn = NULL;
    if (rc)
        goto out;
    pthread_mutex_lock(&c->mu);
    if (cfg->target_recall != c->cfg.target_recall || shape)
        c->auto_ef = 0; /* retuned by the background thread */
    c->cfg = *cfg;
    /* Empty collection, new shape: a fresh index at the next insert. A
     * rebuilt one replaces the old at once. */
    if (c->index && (shape || rebuilt)) {
        c->retired[c->nretired++] = c->index;
        c->index = NULL;
    }
    if (rebuilt) {
        c->index = rebuilt;
        rebuilt = NULL;
    }
    if (c->index)
        vf_hnsw_set_ef_search(c->index, cfg->ef_search);
    pthread_mutex_unlock(&c->mu);
    if (r.count > 0 && graph)
        st_coll_note_changes(c, r.count); /* the snapshot on disk is stale */
out:
    if (txn)
        mdb_txn_abort(txn);
    vf_hnsw_free(rebuilt);
    pthread_mutex_unlock(&c->wlock);
    return rc;
}

int st_coll_config_touch(st_store *st, const char *name, const struct timespec *mtime)
{
    if (!st || !mtime)
        return -EINVAL;
    return coll_attr_update(st, name, NULL, 0, mtime);
}

int st_coll_list(st_store *st, uint64_t offset, st_list_fn fn, void *ctx)
{
    if (!st || !fn)
        return -EINVAL;
    pthread_rwlock_rdlock(&st->colls_lock);
    size_t n = st->ncolls;
    char(*names)[ST_COLL_NAME_MAX + 1] = st_malloc(n * sizeof(*names) + 1);
    uint32_t *ids = st_malloc(n * sizeof(*ids) + 1);
    if (names && ids)
        for (size_t i = 0; i < n; i++) {
            memcpy(names[i], st->colls[i]->name, sizeof(names[i]));
            ids[i] = st->colls[i]->id;
        }
    pthread_rwlock_unlock(&st->colls_lock);
    int rc = (names && ids) ? 0 : -ENOMEM;
    MDB_txn *txn = NULL;
    if (rc == 0)
        rc = st_txn_read(st, &txn);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((uint64_t)ids[i] + 1 <= offset)
            continue;
        st_coll_rec r;
        int g = st_coll_rec_get(st, txn, names[i], &r);
        if (g == -ENOENT)
            continue; /* dropped or renamed since the copy */
        if (g) {
            rc = g;
            break;
        }
        st_attr a;
        attr_from_coll(&r, &a);
        if (fn(ctx, names[i], &a, (uint64_t)ids[i] + 1) != 0)
            break;
    }
    if (txn)
        mdb_txn_abort(txn);
    free(names);
    free(ids);
    return rc;
}
