/*
 * check.c — `vecfs check`: verifies a DATADIR without changing it.
 *
 * It opens the store read-only without loading any index, reads one LMDB
 * snapshot (a read transaction), and runs these passes over every
 * collection, each a function named for what it checks:
 *
 *   pass_vectors    VEC records open and decode, sit under their name's
 *                   key, hold ids below next_id used once, and each has its
 *                   SLOT (same name, the collection's dim), CONTENT (the
 *                   recorded size; stored as the SLOT's vector: that dim)
 *                   and ORDER entry (its name key);
 *   pass_envelopes  every SLOT, CONTENT and ORDER record opens (checksum
 *                   or authentication), counted;
 *   pass_xattrs     XATTR records open and decode, belong to a used id, and
 *                   each user xattr has its MIDX (and VIDX, if kept) entries;
 *   pass_midx       counts the metadata index entries (and VIDX's);
 *   pass_free       FREE ids are below next_id and unused;
 *   pass_oplog      the op log (DIRTY) records open and decode;
 *   compare_tally   one SLOT, CONTENT and ORDER record per vector, one
 *                   index entry per user xattr, COLL counters = records;
 *   pass_snapshot   the snapshot loads and is current, the op log replays
 *                   onto it in memory, and it then holds the vectors of the
 *                   SLOT records (snap_compare);
 *   pass_graph      every vector of the loaded graph is reachable.
 *
 * Invariants
 *   1. Nothing is written: the environment is opened MDB_RDONLY and
 *      snapshots are only read.
 *   2. Every problem is one line "collection 'c': <what> (<where>)" and
 *      counted; the return value is that count (0 = clean).
 *   3. A snapshot that is missing, older than the op log covers, or taken
 *      under other index parameters than the config's (a config change
 *      came after it) is not a problem: open rebuilds it, and check says
 *      so in a note. One that fails its checks is.
 *      Vectors the loaded graph cannot reach (vf_hnsw_unreachable) are a
 *      problem: the engine keeps every vector reachable, and searches
 *      would find such a vector only by their exact fallback. Vectors
 *      that loading links in (snapshots from before anchors) are a note,
 *      since the daemon's open does the same.
 *   4. A pass that cannot read (an LMDB error other than MDB_NOTFOUND) or
 *      cannot allocate what it needs stops there and reports one problem
 *      "<pass> stopped: <what>: <error>": a check that could not look at
 *      everything is never clean.
 *   5. What a stopped pass would have given a later comparison (counts,
 *      the set of used ids, the vector count) is not compared, so a stop
 *      never adds a second, false problem.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct checker {
    st_store *st;
    MDB_txn *txn;
    FILE *out;
    uint64_t problems;
    vc_buf s1;            /* decrypted body of the record a walk is on */
    vc_buf s2;            /* decrypted body of the record a lookup found */
    const char *coll;     /* names the collection in report lines */
    st_progress progress; /* over the vector records of every collection */
} checker;

/* Writes one report line about the current collection (if there is a
 * report). */
static void report(checker *ck, const char *fmt, va_list ap)
{
    if (!ck->out)
        return;
    fprintf(ck->out, "collection '%s': ", ck->coll);
    vfprintf(ck->out, fmt, ap);
    fprintf(ck->out, "\n");
}

static void problem(checker *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(checker *ck, const char *fmt, ...)
{
    ck->problems++;
    va_list ap;
    va_start(ap, fmt);
    report(ck, fmt, ap);
    va_end(ap);
}

/* A line that is not a problem: a state open repairs by design. */
static void note(checker *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(checker *ck, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(ck, fmt, ap);
    va_end(ap);
}

/* Room for the hex of the longest key (collection, id, name key). */
#define HEXKEY_CAP (2 * (8 + ST_NAME_MAX) + 1)

static void hexkey(const void *k, size_t n, char *out, size_t cap)
{
    const uint8_t *p = k;
    size_t w = 0;
    for (size_t i = 0; i < n && w + 3 < cap; i++)
        w += (size_t)snprintf(out + w, cap - w, "%02x", p[i]);
    out[w] = 0;
}

/* Reports that pass stopped on what, failing with rc (invariant 4).
 * Returns rc, for the pass to return. */
static int stopped(checker *ck, const char *pass, const char *what, int rc)
{
    problem(ck, "%s stopped: %s: %s", pass, what, strerror(-rc));
    return rc;
}

/* Reports that pass stopped on LMDB error mrc reading db (at key, when not
 * NULL), in LMDB's words. Returns the error as a negative errno. */
static int read_failed(checker *ck, const char *pass, int db, const void *key, size_t klen, int mrc)
{
    char hk[HEXKEY_CAP] = "";
    if (key)
        hexkey(key, klen, hk, sizeof(hk));
    problem(ck, "%s stopped: reading %s%s%s: %s", pass, st_db_names[db], key ? "/" : "", hk,
            mdb_strerror(mrc));
    return st_mdb_err(mrc);
}

/* Opens the envelope of db's record k = v into *body, *blen, decrypting
 * into scratch. 0, -EILSEQ (it fails its checksum or authentication: the
 * caller reports the damage), or -ENOMEM (reported: pass stops). */
static int open_val(checker *ck, const char *pass, int db, const MDB_val *k, const MDB_val *v,
                    vc_buf *scratch, const void **body, size_t *blen)
{
    int rc = st_env_open_buf(&ck->st->crypto, (uint8_t)db, k->mv_data, k->mv_size, v->mv_data,
                             v->mv_size, scratch, body, blen);
    if (rc == -ENOMEM)
        return stopped(ck, pass, "decrypting a record", rc);
    return rc ? -EILSEQ : 0;
}

/* Reads db/key and opens it into *body, *blen (valid until the next
 * lookup). 0, -ENOENT (no such record), -EILSEQ (damaged), or an error
 * that stopped pass (reported). */
static int lookup(checker *ck, const char *pass, int db, const void *key, size_t klen,
                  const void **body, size_t *blen)
{
    MDB_val k = {klen, (void *)key}, v;
    int mrc = st_mdb_get(ck->txn, ck->st->db[db], &k, &v);
    if (mrc == MDB_NOTFOUND)
        return -ENOENT;
    if (mrc)
        return read_failed(ck, pass, db, key, klen, mrc);
    return open_val(ck, pass, db, &k, &v, &ck->s2, body, blen);
}

/* True when rc from lookup or open_val stopped the pass (it is reported);
 * a missing or damaged record is for the caller to report. */
static bool is_stop(int rc)
{
    return rc != 0 && rc != -ENOENT && rc != -EILSEQ;
}

/* ------------------------------------------------------------------ */
/* Walks: the records of one collection in one table                   */
/* ------------------------------------------------------------------ */

typedef struct walk {
    checker *ck;
    const char *pass;
    int db;
    MDB_cursor_op step;
    uint8_t pre[4]; /* the collection id, big-endian: every key starts so */
    size_t plen;    /* 4, or 0 for the collection table */
    MDB_cursor *cur;
    MDB_val k, v; /* the current record */
} walk;

/* 0 when the cursor, moved with result mrc, is on a record of the walk;
 * -ENOENT past its last; else the error that stopped the pass
 * (reported). */
static int walk_at(walk *w, int mrc)
{
    if (mrc == MDB_NOTFOUND)
        return -ENOENT;
    if (mrc)
        return read_failed(w->ck, w->pass, w->db, NULL, 0, mrc);
    if (w->k.mv_size < w->plen || memcmp(w->k.mv_data, w->pre, w->plen) != 0)
        return -ENOENT;
    return 0;
}

/* Starts a walk over db for pass, stepping with step: over the records of
 * collection coll, or over the whole table when coll is NULL. Returns as
 * walk_at; call walk_end whatever it returns. */
static int walk_first(walk *w, checker *ck, const char *pass, int db, const uint32_t *coll,
                      MDB_cursor_op step)
{
    *w = (walk){.ck = ck, .pass = pass, .db = db, .step = step, .plen = coll ? 4 : 0};
    if (coll)
        st_be32(w->pre, *coll);
    int mrc = mdb_cursor_open(ck->txn, ck->st->db[db], &w->cur);
    if (mrc) {
        w->cur = NULL;
        return read_failed(ck, pass, db, NULL, 0, mrc);
    }
    w->k = (MDB_val){w->plen, w->pre};
    return walk_at(w, st_mdb_cursor_get(w->cur, &w->k, &w->v, coll ? MDB_SET_RANGE : MDB_FIRST));
}

static int walk_next(walk *w)
{
    return walk_at(w, st_mdb_cursor_get(w->cur, &w->k, &w->v, w->step));
}

/* Reports that the record w is on fails its check: "<noun> record fails
 * its <how> (<table>/<key in hex>)". */
static void walk_damaged(const walk *w, const char *noun, const char *how)
{
    char hk[HEXKEY_CAP];
    hexkey(w->k.mv_data, w->k.mv_size, hk, sizeof(hk));
    problem(w->ck, "%s record fails its %s (%s/%s)", noun, how, st_db_names[w->db], hk);
}

/* Ends a walk that stopped with rc: 0 when it went past its last record,
 * else rc (an error already reported). */
static int walk_end(walk *w, int rc)
{
    if (w->cur)
        mdb_cursor_close(w->cur);
    return rc == -ENOENT ? 0 : rc;
}

/* ------------------------------------------------------------------ */
/* Passes over the records                                              */
/* ------------------------------------------------------------------ */

typedef struct bitset {
    uint64_t *w;
    size_t n;
} bitset;

/* Sets bit i; returns whether it was set before (true, too, for an i out
 * of range, which is then not set). */
static bool bs_set(bitset *b, uint32_t i)
{
    if (i >= b->n)
        return true;
    bool was = b->w[i >> 6] >> (i & 63) & 1;
    b->w[i >> 6] |= (uint64_t)1 << (i & 63);
    return was;
}

static bool bs_get(const bitset *b, uint32_t i)
{
    return i < b->n && (b->w[i >> 6] >> (i & 63) & 1);
}

/* What the passes over one collection's records count, for compare_tally
 * and the snapshot. */
typedef struct tally {
    uint64_t vecs, bytes; /* VEC records with a valid id, their content bytes */
    uint64_t slots, contents, listings;
    uint64_t user_xattrs, midx, vidx_want, vidx; /* vidx_want: entries the xattrs need */
    bitset used;                                 /* the ids of those VEC records */
} tally;

static const char PASS_VECS[] = "vector records";
static const char PASS_XATTRS[] = "xattr records";
static const char PASS_MIDX[] = "metadata index";
static const char PASS_FREE[] = "free ids";
static const char PASS_OPLOG[] = "op log";
static const char PASS_SNAP[] = "snapshot";
static const char PASS_GRAPH[] = "graph";
static const char PASS_COLLS[] = "collection table";

static const char *missing_or_bad(int rc)
{
    return rc == -ENOENT ? "missing" : "fails its check";
}

/* Checks that vector r of collection rec (name key nk, nkl bytes) has its
 * SLOT, CONTENT and ORDER records and that they agree with it. 0, or an
 * error that stopped the pass (reported). */
static int vector_partners(checker *ck, const st_coll_rec *rec, const st_vec_rec *r,
                           const uint8_t *nk, size_t nkl)
{
    uint8_t ik[8];
    st_be32(ik, rec->coll_id);
    st_be32(ik + 4, r->id);
    const void *body;
    size_t blen;
    const char *sn;
    size_t snl;
    const uint8_t *sv;
    uint32_t dim;
    int rc = lookup(ck, PASS_VECS, ST_DB_SLOTS, ik, 8, &body, &blen);
    if (rc == 0 && st_rec_slot_dec(body, blen, &sn, &snl, &sv, &dim) != 0)
        rc = -EILSEQ;
    if (is_stop(rc))
        return rc;
    if (rc)
        problem(ck, "vector '%s': slot %" PRIu32 " %s", r->name, r->id, missing_or_bad(rc));
    else if (snl != r->name_len || memcmp(sn, r->name, snl) != 0 || dim != rec->cfg.dim)
        problem(ck, "vector '%s': slot %" PRIu32 " disagrees (name or dim)", r->name, r->id);

    st_content_rec cr;
    rc = lookup(ck, PASS_VECS, ST_DB_CONTENT, ik, 8, &body, &blen);
    if (rc == 0 && st_content_dec(body, blen, &cr) != 0)
        rc = -EILSEQ;
    if (is_stop(rc))
        return rc;
    if (rc)
        problem(ck, "vector '%s': content %s", r->name, missing_or_bad(rc));
    else if (cr.of_vec && cr.dim != rec->cfg.dim)
        problem(ck,
                "vector '%s': content stored as a vector of dim %" PRIu32
                ", collection has %" PRIu32,
                r->name, cr.dim, rec->cfg.dim);
    else if (st_content_size(&cr) != r->size)
        problem(ck, "vector '%s': content is %zu bytes, record says %" PRIu64, r->name,
                st_content_size(&cr), r->size);

    uint8_t sk[12];
    st_be32(sk, rec->coll_id);
    st_be64(sk + 4, r->seq);
    const uint8_t *ok;
    size_t okl;
    rc = lookup(ck, PASS_VECS, ST_DB_ORDER, sk, 12, &body, &blen);
    if (rc == 0 && st_rec_blob_dec(body, blen, ST_REC_ORDER, &ok, &okl) != 0)
        rc = -EILSEQ;
    if (is_stop(rc))
        return rc;
    if (rc || okl != nkl || memcmp(ok, nk, nkl) != 0)
        problem(ck, "vector '%s': listing entry %" PRIu64 " missing or wrong", r->name, r->seq);
    return 0;
}

/* VEC records: see the top. Fills t->vecs, t->bytes and t->used. 0, or an
 * error that stopped the pass (reported). */
static int pass_vectors(checker *ck, const st_coll_rec *rec, tally *t)
{
    st_store *st = ck->st;
    walk w;
    int rc;
    for (rc = walk_first(&w, ck, PASS_VECS, ST_DB_VECS, &rec->coll_id, MDB_NEXT); rc == 0;
         rc = walk_next(&w)) {
        const void *body;
        size_t blen;
        st_vec_rec r;
        rc = open_val(ck, PASS_VECS, ST_DB_VECS, &w.k, &w.v, &ck->s1, &body, &blen);
        const uint8_t *kn = st->crypto.on ? NULL : (const uint8_t *)w.k.mv_data + 4;
        if (rc == 0 && st_rec_vec_dec(body, blen, kn, w.k.mv_size - 4, &r) != 0)
            rc = -EILSEQ;
        if (rc == -EILSEQ) {
            walk_damaged(&w, "vector", st->crypto.on ? "authentication" : "checksum");
            continue;
        }
        if (rc)
            break;
        uint8_t nk[ST_NAME_MAX];
        size_t nkl = st_name_key(&st->crypto, ST_DB_VECS, r.name, r.name_len, nk);
        if (nkl != w.k.mv_size - 4 || memcmp(nk, (uint8_t *)w.k.mv_data + 4, nkl) != 0)
            problem(ck, "vector '%s' is stored under another name's key", r.name);
        if (bs_set(&t->used, r.id)) {
            problem(ck, "vector '%s': id %" PRIu32 " out of range or used twice", r.name, r.id);
            continue;
        }
        t->vecs++;
        t->bytes += r.size;
        st_progress_add(&ck->progress, 1);
        rc = vector_partners(ck, rec, &r, nk, nkl);
        if (rc)
            break;
    }
    return walk_end(&w, rc);
}

/* Opens every record of collection coll in db (SLOTS, CONTENT or ORDER),
 * whose records noun names in reports, and counts them into *n. 0, or an
 * error that stopped the pass (reported). */
static int pass_envelopes(checker *ck, uint32_t coll, int db, const char *noun, uint64_t *n)
{
    char pass[32];
    snprintf(pass, sizeof(pass), "%s records", noun);
    walk w;
    int rc;
    for (rc = walk_first(&w, ck, pass, db, &coll, MDB_NEXT); rc == 0; rc = walk_next(&w)) {
        (*n)++;
        const void *body;
        size_t blen;
        rc = open_val(ck, pass, db, &w.k, &w.v, &ck->s1, &body, &blen);
        if (rc == -EILSEQ) {
            walk_damaged(&w, noun, "check");
            rc = 0;
        }
        if (rc)
            break;
    }
    return walk_end(&w, rc);
}

/* Whether the metadata index cursor mc holds id under the hash of user
 * xattr xn (xl bytes) = val (vl bytes) of collection coll. 0 (yes),
 * -ENOENT (no), or an error that stopped the pass (reported). */
static int midx_has(checker *ck, MDB_cursor *mc, uint32_t coll, uint32_t id, const char *xn,
                    size_t xl, const uint8_t *val, size_t vl)
{
    char name[ST_XATTR_NAME_MAX + 1];
    memcpy(name, xn, xl);
    name[xl] = 0;
    uint8_t mk[20], idb[4];
    st_be32(mk, coll);
    st_meta_hash(&ck->st->crypto, name, val, vl, mk + 4);
    st_be32(idb, id);
    MDB_val mkv = {20, mk}, mdv = {4, idb};
    int mrc = st_mdb_cursor_get(mc, &mkv, &mdv, MDB_GET_BOTH);
    if (mrc == MDB_NOTFOUND)
        return -ENOENT;
    return mrc ? read_failed(ck, PASS_XATTRS, ST_DB_MIDX, mk, 20, mrc) : 0;
}

/* XATTR records: see the top. Needs t->used; fills t->user_xattrs. 0, or
 * an error that stopped the pass (reported). */
static int pass_xattrs(checker *ck, uint32_t coll, tally *t)
{
    MDB_cursor *mc;
    int mrc = mdb_cursor_open(ck->txn, ck->st->db[ST_DB_MIDX], &mc);
    if (mrc)
        return read_failed(ck, PASS_XATTRS, ST_DB_MIDX, NULL, 0, mrc);
    walk w;
    int rc;
    for (rc = walk_first(&w, ck, PASS_XATTRS, ST_DB_XATTRS, &coll, MDB_NEXT); rc == 0;
         rc = walk_next(&w)) {
        const void *body;
        size_t blen, xl, vl;
        const char *xn;
        const uint8_t *val;
        rc = w.k.mv_size < 8
                 ? -EILSEQ
                 : open_val(ck, PASS_XATTRS, ST_DB_XATTRS, &w.k, &w.v, &ck->s1, &body, &blen);
        if (rc == 0 && st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl) != 0)
            rc = -EILSEQ;
        if (rc == -EILSEQ) {
            walk_damaged(&w, "xattr", "check");
            continue;
        }
        if (rc)
            break;
        uint32_t id = st_get_be32((const uint8_t *)w.k.mv_data + 4);
        if (!bs_get(&t->used, id))
            problem(ck, "xattr of unused id %" PRIu32, id);
        if (xl <= 5 || memcmp(xn, "user.", 5) != 0)
            continue;
        t->user_xattrs++;
        rc = midx_has(ck, mc, coll, id, xn, xl, val, vl);
        if (rc == -ENOENT)
            problem(ck, "metadata index lacks an entry of id %" PRIu32, id);
        else if (rc)
            break;
        int missing = 0, n = 0, mrc = 0;
        if (ck->st->vidx_on)
            mrc = st_vidx_has(ck->st, ck->txn, coll, id, xn, xl, val, vl, &n, &missing);
        if (mrc) {
            rc = read_failed(ck, PASS_XATTRS, ST_DB_VIDX, NULL, 0, mrc);
            break;
        }
        t->vidx_want += (uint64_t)n;
        if (missing)
            problem(ck, "ordered metadata index lacks an entry of id %" PRIu32, id);
    }
    mdb_cursor_close(mc);
    return walk_end(&w, rc);
}

/* Counts the metadata index entries of collection coll into *n. 0, or an
 * error that stopped the pass (reported). */
static int pass_midx(checker *ck, uint32_t coll, uint64_t *n)
{
    walk w;
    int rc;
    for (rc = walk_first(&w, ck, PASS_MIDX, ST_DB_MIDX, &coll, MDB_NEXT_NODUP); rc == 0;
         rc = walk_next(&w)) {
        size_t c = 0;
        int mrc = mdb_cursor_count(w.cur, &c);
        if (mrc) {
            rc = read_failed(ck, PASS_MIDX, ST_DB_MIDX, w.k.mv_data, w.k.mv_size, mrc);
            break;
        }
        *n += c;
    }
    return walk_end(&w, rc);
}

/* FREE records of collection rec: ids below next_id that used does not
 * hold. 0, or an error that stopped the pass (reported). */
static int pass_free(checker *ck, const st_coll_rec *rec, const bitset *used)
{
    walk w;
    int rc;
    for (rc = walk_first(&w, ck, PASS_FREE, ST_DB_FREE, &rec->coll_id, MDB_NEXT); rc == 0;
         rc = walk_next(&w)) {
        uint32_t id = w.k.mv_size == 8 ? st_get_be32((const uint8_t *)w.k.mv_data + 4) : 0;
        if (w.k.mv_size != 8 || id >= rec->next_id || bs_get(used, id))
            problem(ck, "free id %" PRIu32 " is in use or out of range", id);
    }
    return walk_end(&w, rc);
}

/* Op log (DIRTY) records of collection coll open and decode. 0, or an
 * error that stopped the pass (reported). */
static int pass_oplog(checker *ck, uint32_t coll)
{
    walk w;
    int rc;
    for (rc = walk_first(&w, ck, PASS_OPLOG, ST_DB_DIRTY, &coll, MDB_NEXT); rc == 0;
         rc = walk_next(&w)) {
        const void *body;
        size_t blen;
        uint64_t gen;
        rc = open_val(ck, PASS_OPLOG, ST_DB_DIRTY, &w.k, &w.v, &ck->s1, &body, &blen);
        if (rc == 0 && st_rec_counter_dec(body, blen, &gen) != 0)
            rc = -EILSEQ;
        if (rc == -EILSEQ) {
            walk_damaged(&w, "op log", "check");
            rc = 0;
        }
        if (rc)
            break;
    }
    return walk_end(&w, rc);
}

/* ------------------------------------------------------------------ */
/* The snapshot                                                         */
/* ------------------------------------------------------------------ */

/* Compares the vector of every SLOT record of rec with h's copy and
 * reports how many differ. Records that fail to open or decode are the
 * other passes' to report. 0, or an error that stopped the pass
 * (reported). */
static int snap_compare(checker *ck, const st_coll_rec *rec, const vf_hnsw *h)
{
    vf_hnsw_params p;
    vf_hnsw_params_get(h, &p);
    float *a = vc_malloc((size_t)p.dim * sizeof(float) * 2);
    if (!a)
        return stopped(ck, PASS_SNAP, "buffers to compare vectors", -ENOMEM);
    float *b = a + p.dim;
    uint64_t bad = 0;
    walk w;
    int rc;
    for (rc = walk_first(&w, ck, PASS_SNAP, ST_DB_SLOTS, &rec->coll_id, MDB_NEXT); rc == 0;
         rc = walk_next(&w)) {
        const void *body;
        size_t blen, snl;
        const char *sn;
        const uint8_t *sv;
        uint32_t dim;
        rc = w.k.mv_size != 8
                 ? -EILSEQ
                 : open_val(ck, PASS_SNAP, ST_DB_SLOTS, &w.k, &w.v, &ck->s1, &body, &blen);
        if (rc == 0 && (st_rec_slot_dec(body, blen, &sn, &snl, &sv, &dim) != 0 || dim != p.dim))
            rc = -EILSEQ;
        if (rc == -EILSEQ)
            continue;
        if (rc)
            break;
        memcpy(b, sv, (size_t)dim * sizeof(float));
        (void)vf_hnsw_as_stored(h, b, b); /* an INT8 index holds b's codes */
        if (vf_hnsw_get(h, st_get_be32((const uint8_t *)w.k.mv_data + 4), a) != 0) {
            bad++;
            continue;
        }
        for (uint32_t i = 0; i < dim; i++)
            if (fabsf(a[i] - b[i]) > 1e-4f * (1.0f + fabsf(b[i]))) {
                bad++;
                break;
            }
    }
    rc = walk_end(&w, rc);
    free(a);
    if (bad)
        problem(ck, "snapshot differs from the records for %" PRIu64 " vectors", bad);
    return rc;
}

/* The loaded graph h: vectors loading linked in are a note, unreachable
 * ones a problem (invariant 3). */
static void pass_graph(checker *ck, const vf_hnsw *h)
{
    vf_hnsw_stats hs;
    vf_hnsw_stats_get(h, &hs);
    if (hs.rehomed)
        note(ck,
             "%" PRIu64 " vectors had no way in in the snapshot; linked in on load (as at mount)",
             hs.rehomed);
    size_t lost = vf_hnsw_unreachable(h);
    if (lost == SIZE_MAX)
        stopped(ck, PASS_GRAPH, "the reachability walk", -ENOMEM);
    else if (lost)
        problem(ck, "%zu of %zu vectors unreachable in the graph after load", lost,
                vf_hnsw_count(h));
}

/* Whether snapshot h (generation gen, written at LMDB txn txnid) shows
 * the state of rec that this check reads; a note says why not. */
static bool snap_current(checker *ck, const st_coll_rec *rec, const vf_hnsw *h, uint64_t gen,
                         uint64_t txnid)
{
    if (txnid > (uint64_t)mdb_txn_id(ck->txn)) {
        /* Written after this check's read txn began (a mounted store). */
        note(ck, "snapshot is newer than this check's view (store in use); not compared");
        return false;
    }
    if (gen < rec->snap_gen) {
        note(ck, "snapshot is stale (rebuilt at open)");
        return false;
    }
    if (!st_snap_params_match(h, &rec->cfg)) {
        /* The config changed after the snapshot (an emptied collection
         * took a new dim or metric, or a change rebuilt the index) and a
         * crash came before the next snapshot: open rebuilds. */
        note(ck, "snapshot predates a config change (stale; rebuilt at open)");
        return false;
    }
    return true;
}

/* The snapshot of rec, replayed, must equal the records (nvec vectors). */
static void pass_snapshot(checker *ck, const st_coll_rec *rec, uint64_t nvec)
{
    vf_hnsw *h = NULL;
    uint64_t gen = 0, txnid = 0;
    size_t ndirty;
    uint64_t maxgen;
    st_slot_source slots;
    st_slot_source_begin(&slots, ck->st, ck->txn, rec->coll_id, rec->cfg.dim);
    int rc = st_snap_read(ck->st, rec, &slots, &h, &gen, &txnid);
    st_slot_source_end(&slots);
    if (rc == 0 && slots.err) {
        vf_hnsw_free(h);
        h = NULL;
        rc = slots.err;
    }
    if (rc == -ENOENT) {
        if (nvec)
            note(ck, "no snapshot (rebuilt at open)");
    } else if (rc == -EILSEQ || rc == -ESTALE) {
        problem(ck, "snapshot is damaged (%s)", strerror(-rc));
    } else if (rc) {
        stopped(ck, PASS_SNAP, "reading the snapshot file", rc);
    } else if (snap_current(ck, rec, h, gen, txnid)) {
        rc = st_oplog_replay(ck->st, ck->txn, rec->coll_id, h, &ndirty, &maxgen);
        if (rc)
            stopped(ck, PASS_SNAP, "replaying the op log", rc);
        else if (vf_hnsw_count(h) != nvec)
            problem(ck, "snapshot + op log hold %zu vectors, records %" PRIu64, vf_hnsw_count(h),
                    nvec);
        else if (vf_hnsw_missing(h))
            problem(ck, "snapshot differs from the records for %zu vectors", vf_hnsw_missing(h));
        else {
            snap_compare(ck, rec, h);
            pass_graph(ck, h);
        }
    }
    vf_hnsw_free(h);
}

/* ------------------------------------------------------------------ */
/* Collections                                                          */
/* ------------------------------------------------------------------ */

/* The counts of the passes that finished agree (invariant 5). */
static void compare_tally(checker *ck, const st_coll_rec *rec, const tally *t, bool vecs_done,
                          bool partners_done, bool xattrs_done)
{
    if (vecs_done && partners_done &&
        (t->slots != t->vecs || t->contents != t->vecs || t->listings != t->vecs))
        problem(ck,
                "%" PRIu64 " vectors but %" PRIu64 " slots, %" PRIu64 " contents, %" PRIu64
                " listing entries",
                t->vecs, t->slots, t->contents, t->listings);
    if (xattrs_done && t->vidx != t->vidx_want)
        problem(ck, "ordered metadata index has %" PRIu64 " entries for %" PRIu64, t->vidx,
                t->vidx_want);
    if (xattrs_done && t->midx != t->user_xattrs)
        problem(ck, "metadata index has %" PRIu64 " entries for %" PRIu64 " user xattrs", t->midx,
                t->user_xattrs);
    if (vecs_done && (rec->count != t->vecs || rec->bytes != t->bytes))
        problem(ck,
                "counters say %" PRIu64 " vectors / %" PRIu64 " bytes, records hold %" PRIu64
                " / %" PRIu64,
                rec->count, rec->bytes, t->vecs, t->bytes);
}

/* Runs every pass over collection rec. */
static void check_coll(checker *ck, const st_coll_rec *rec)
{
    uint32_t cid = rec->coll_id;
    ck->coll = rec->name;
    tally t = {.used = {.n = rec->next_id}};
    t.used.w = vc_calloc(t.used.n / 64 + 1, sizeof(uint64_t));
    int vecs = t.used.w ? pass_vectors(ck, rec, &t)
                        : stopped(ck, PASS_VECS, "the set of used ids", -ENOMEM);
    int slots = pass_envelopes(ck, cid, ST_DB_SLOTS, "slot", &t.slots);
    int contents = pass_envelopes(ck, cid, ST_DB_CONTENT, "content", &t.contents);
    int listings = pass_envelopes(ck, cid, ST_DB_ORDER, "listing", &t.listings);
    /* The passes that need the set of used ids run only with all of it. */
    int xattrs = vecs == 0 ? pass_xattrs(ck, cid, &t) : vecs;
    int midx = pass_midx(ck, cid, &t.midx);
    int vidx = ck->st->vidx_on ? st_vidx_count(ck->st, ck->txn, cid, &t.vidx) : 0;
    vidx = vidx ? read_failed(ck, PASS_MIDX, ST_DB_VIDX, NULL, 0, vidx) : 0;
    if (vecs == 0)
        pass_free(ck, rec, &t.used);
    pass_oplog(ck, cid);
    compare_tally(ck, rec, &t, vecs == 0, slots == 0 && contents == 0 && listings == 0,
                  xattrs == 0 && midx == 0 && vidx == 0);
    if (vecs == 0) {
        pass_snapshot(ck, rec, t.vecs);
        note(ck, "%" PRIu64 " vectors, %" PRIu64 " bytes", t.vecs, t.bytes);
    }
    free(t.used.w);
    ck->coll = "-";
}

/* Every COLL record opens and decodes, and each collection is checked.
 * Returns the number of collections checked. */
static uint64_t check_colls(checker *ck)
{
    uint64_t n = 0;
    walk w;
    int rc;
    for (rc = walk_first(&w, ck, PASS_COLLS, ST_DB_COLLS, NULL, MDB_NEXT); rc == 0;
         rc = walk_next(&w)) {
        const void *body;
        size_t blen;
        st_coll_rec rec;
        rc = open_val(ck, PASS_COLLS, ST_DB_COLLS, &w.k, &w.v, &ck->s1, &body, &blen);
        if (rc == 0 && st_rec_coll_dec(body, blen, &rec) != 0)
            rc = -EILSEQ;
        if (rc == -EILSEQ) {
            problem(ck, "collection record fails its check");
            continue;
        }
        if (rc)
            break;
        n++;
        check_coll(ck, &rec);
    }
    walk_end(&w, rc);
    return n;
}

int st_check(const char *datadir, const st_options *opt, FILE *report)
{
    st_options o;
    if (opt)
        o = *opt;
    else
        st_options_default(&o);
    o.read_only = true;
    st_store *st = NULL;
    int rc = st_store_open_noindex(datadir, &o, &st);
    if (rc) {
        if (report)
            fprintf(report, "cannot open %s: %s\n", datadir,
                    o.errbuf && o.errbuf[0] ? o.errbuf : strerror(-rc));
        return rc;
    }
    checker ck = {.st = st, .out = report, .coll = "-"};
    uint64_t ncoll = 0;
    rc = st_txn_read(st, &ck.txn);
    if (rc == 0) {
        MDB_stat vecs = {0};
        mdb_stat(ck.txn, st->db[ST_DB_VECS], &vecs);
        st_progress_start(&ck.progress, &o, "checking", vecs.ms_entries);
        ncoll = check_colls(&ck);
        st_progress_end(&ck.progress);
        mdb_txn_abort(ck.txn);
    }
    vc_buf_release(&ck.s1);
    vc_buf_release(&ck.s2);
    st_store_close(st);
    if (rc) {
        if (report)
            fprintf(report, "check of %s failed: %s\n", datadir, strerror(-rc));
        return rc;
    }
    if (report)
        fprintf(report, "%s: %" PRIu64 " collections, %" PRIu64 " problems\n", datadir, ncoll,
                ck.problems);
    return ck.problems > INT32_MAX ? INT32_MAX : (int)ck.problems;
}
