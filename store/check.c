/*
 * check.c — `vecfs check`: verifies a DATADIR without changing it.
 *
 * It opens the store read-only without loading any index, reads one LMDB
 * snapshot (a read transaction), and for every collection verifies the
 * invariants of vec.c: every record opens (checksum / authentication) and
 * decodes, VEC <-> SLOT <-> CONTENT <-> ORDER agree, XATTR <-> MIDX agree,
 * FREE ids are unused and below next_id, COLL counters equal the records;
 * then loads the collection's snapshot, replays the DIRTY op log onto it in
 * memory and compares the result with the SLOT records (ids and vectors).
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
    st_buf s1, s2;
    const char *coll;
} checker;

static void problem(checker *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(checker *ck, const char *fmt, ...)
{
    ck->problems++;
    if (!ck->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(ck->out, "collection '%s': ", ck->coll);
    vfprintf(ck->out, fmt, ap);
    fprintf(ck->out, "\n");
    va_end(ap);
}

static void hexkey(const void *k, size_t n, char *out, size_t cap)
{
    const uint8_t *p = k;
    size_t w = 0;
    for (size_t i = 0; i < n && w + 3 < cap; i++)
        w += (size_t)snprintf(out + w, cap - w, "%02x", p[i]);
    out[w] = 0;
}

/* Opens the envelope of a cursor's current value. */
static int open_val(checker *ck, int db, const MDB_val *k, const MDB_val *v, const void **body,
                    size_t *blen)
{
    return st_env_open_buf(&ck->st->crypto, (uint8_t)db, k->mv_data, k->mv_size, v->mv_data,
                           v->mv_size, &ck->s1, body, blen);
}

typedef struct bitset {
    uint64_t *w;
    size_t n;
} bitset;

static bool bs_set(bitset *b, uint32_t i)
{
    if (i >= b->n)
        return false;
    bool was = b->w[i >> 6] >> (i & 63) & 1;
    b->w[i >> 6] |= (uint64_t)1 << (i & 63);
    return was;
}

static bool bs_get(const bitset *b, uint32_t i)
{
    return i < b->n && (b->w[i >> 6] >> (i & 63) & 1);
}

/* Iterates the keys of db with the 4-byte prefix of coll. */
#define FOR_PREFIX(ck, dbx, coll, k, v, cur)                                                       \
    uint8_t pre_##dbx[4];                                                                          \
    st_be32(pre_##dbx, coll);                                                                      \
    MDB_val k = {4, pre_##dbx}, v;                                                                 \
    MDB_cursor *cur = NULL;                                                                        \
    int mrc_##dbx = mdb_cursor_open((ck)->txn, (ck)->st->db[dbx], &cur);                           \
    if (mrc_##dbx == 0)                                                                            \
        mrc_##dbx = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);                                    \
    for (; mrc_##dbx == 0 && k.mv_size >= 4 && memcmp(k.mv_data, pre_##dbx, 4) == 0;               \
         mrc_##dbx = mdb_cursor_get(cur, &k, &v, MDB_NEXT))

static int check_coll(checker *ck, const st_coll_rec *rec)
{
    st_store *st = ck->st;
    uint32_t cid = rec->coll_id;
    ck->coll = rec->name;
    bitset used = {0};
    used.n = rec->next_id;
    used.w = st_calloc(used.n / 64 + 1, sizeof(uint64_t));
    if (!used.w)
        return -ENOMEM;
    uint64_t nvec = 0, bytes = 0, nslot = 0, ncontent = 0, norder = 0, nxattr_user = 0, nmidx = 0;
    char hk[2 * (8 + ST_NAME_MAX) + 1];

    {
        FOR_PREFIX(ck, ST_DB_VECS, cid, k, v, cur)
        {
            const void *body;
            size_t blen;
            st_vec_rec r;
            hexkey(k.mv_data, k.mv_size, hk, sizeof(hk));
            if (open_val(ck, ST_DB_VECS, &k, &v, &body, &blen) != 0 ||
                st_rec_vec_dec(body, blen, &r) != 0) {
                problem(ck, "vector record fails its %s (vecs/%s)",
                        st->crypto.on ? "authentication" : "checksum", hk);
                continue;
            }
            uint8_t nk[ST_NAME_MAX];
            size_t nkl = st_name_key(&st->crypto, ST_DB_VECS, r.name, r.name_len, nk);
            if (nkl != k.mv_size - 4 || memcmp(nk, (uint8_t *)k.mv_data + 4, nkl) != 0)
                problem(ck, "vector '%s' is stored under another name's key", r.name);
            if (r.id >= rec->next_id || bs_set(&used, r.id)) {
                problem(ck, "vector '%s': id %" PRIu32 " out of range or used twice", r.name, r.id);
                continue;
            }
            nvec++;
            bytes += r.size;
            uint8_t ik[8];
            st_be32(ik, cid);
            st_be32(ik + 4, r.id);
            const char *sn;
            size_t snl;
            const uint8_t *sv;
            uint32_t dim;
            int rc = st_get(st, ck->txn, ST_DB_SLOTS, ik, 8, &body, &blen, &ck->s2);
            if (rc == 0)
                rc = st_rec_slot_dec(body, blen, &sn, &snl, &sv, &dim);
            if (rc)
                problem(ck, "vector '%s': slot %" PRIu32 " %s", r.name, r.id,
                        rc == -ENOENT ? "missing" : "fails its check");
            else if (snl != r.name_len || memcmp(sn, r.name, snl) != 0 || dim != rec->cfg.dim)
                problem(ck, "vector '%s': slot %" PRIu32 " disagrees (name or dim)", r.name, r.id);
            const uint8_t *cp;
            size_t cl;
            rc = st_get(st, ck->txn, ST_DB_CONTENT, ik, 8, &body, &blen, &ck->s2);
            if (rc == 0)
                rc = st_rec_blob_dec(body, blen, ST_REC_CONTENT, &cp, &cl);
            if (rc)
                problem(ck, "vector '%s': content %s", r.name,
                        rc == -ENOENT ? "missing" : "fails its check");
            else if (cl != r.size)
                problem(ck, "vector '%s': content is %zu bytes, record says %" PRIu64, r.name, cl,
                        r.size);
            uint8_t sk[12];
            st_be32(sk, cid);
            st_be64(sk + 4, r.seq);
            const uint8_t *ok;
            size_t okl;
            rc = st_get(st, ck->txn, ST_DB_ORDER, sk, 12, &body, &blen, &ck->s2);
            if (rc == 0)
                rc = st_rec_blob_dec(body, blen, ST_REC_ORDER, &ok, &okl);
            if (rc || okl != nkl || memcmp(ok, nk, nkl) != 0)
                problem(ck, "vector '%s': listing entry %" PRIu64 " missing or wrong", r.name,
                        r.seq);
        }
        mdb_cursor_close(cur);
    }
    {
        FOR_PREFIX(ck, ST_DB_SLOTS, cid, k, v, cur)
        {
            nslot++;
            const void *body;
            size_t blen;
            if (open_val(ck, ST_DB_SLOTS, &k, &v, &body, &blen) != 0) {
                hexkey(k.mv_data, k.mv_size, hk, sizeof(hk));
                problem(ck, "slot record fails its check (slots/%s)", hk);
            }
        }
        mdb_cursor_close(cur);
    }
    {
        FOR_PREFIX(ck, ST_DB_CONTENT, cid, k, v, cur)
        {
            ncontent++;
            const void *body;
            size_t blen;
            if (open_val(ck, ST_DB_CONTENT, &k, &v, &body, &blen) != 0) {
                hexkey(k.mv_data, k.mv_size, hk, sizeof(hk));
                problem(ck, "content record fails its check (content/%s)", hk);
            }
        }
        mdb_cursor_close(cur);
    }
    {
        FOR_PREFIX(ck, ST_DB_ORDER, cid, k, v, cur)
        {
            norder++;
            const void *body;
            size_t blen;
            if (open_val(ck, ST_DB_ORDER, &k, &v, &body, &blen) != 0) {
                hexkey(k.mv_data, k.mv_size, hk, sizeof(hk));
                problem(ck, "listing record fails its check (order/%s)", hk);
            }
        }
        mdb_cursor_close(cur);
    }
    {
        FOR_PREFIX(ck, ST_DB_XATTRS, cid, k, v, cur)
        {
            const void *body;
            size_t blen, xl, vl;
            const char *xn;
            const uint8_t *val;
            hexkey(k.mv_data, k.mv_size, hk, sizeof(hk));
            if (k.mv_size < 8 || open_val(ck, ST_DB_XATTRS, &k, &v, &body, &blen) != 0 ||
                st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl) != 0) {
                problem(ck, "xattr record fails its check (xattrs/%s)", hk);
                continue;
            }
            uint32_t id = st_get_be32((const uint8_t *)k.mv_data + 4);
            if (!bs_get(&used, id))
                problem(ck, "xattr of unused id %" PRIu32, id);
            if (xl > 5 && memcmp(xn, "user.", 5) == 0) {
                nxattr_user++;
                char name[ST_XATTR_NAME_MAX + 1];
                memcpy(name, xn, xl);
                name[xl] = 0;
                uint8_t mk[20], idb[4];
                st_be32(mk, cid);
                st_meta_hash(&st->crypto, name, val, vl, mk + 4);
                st_be32(idb, id);
                MDB_val mkv = {20, mk}, mdv = {4, idb};
                MDB_cursor *mc;
                if (mdb_cursor_open(ck->txn, st->db[ST_DB_MIDX], &mc) == 0) {
                    if (mdb_cursor_get(mc, &mkv, &mdv, MDB_GET_BOTH) != 0)
                        problem(ck, "metadata index lacks an entry of id %" PRIu32, id);
                    mdb_cursor_close(mc);
                }
            }
        }
        mdb_cursor_close(cur);
    }
    {
        FOR_PREFIX(ck, ST_DB_MIDX, cid, k, v, cur)
        {
            (void)v;
            size_t c = 0;
            mdb_cursor_count(cur, &c);
            nmidx += c;
            mrc_ST_DB_MIDX = mdb_cursor_get(cur, &k, &v, MDB_LAST_DUP);
            if (mrc_ST_DB_MIDX)
                break;
        }
        mdb_cursor_close(cur);
    }
    {
        FOR_PREFIX(ck, ST_DB_FREE, cid, k, v, cur)
        {
            (void)v;
            uint32_t id = k.mv_size == 8 ? st_get_be32((const uint8_t *)k.mv_data + 4) : 0;
            if (k.mv_size != 8 || id >= rec->next_id || bs_get(&used, id))
                problem(ck, "free id %" PRIu32 " is in use or out of range", id);
        }
        mdb_cursor_close(cur);
    }
    {
        FOR_PREFIX(ck, ST_DB_DIRTY, cid, k, v, cur)
        {
            const void *body;
            size_t blen;
            uint64_t gen;
            if (open_val(ck, ST_DB_DIRTY, &k, &v, &body, &blen) != 0 ||
                st_rec_counter_dec(body, blen, &gen) != 0) {
                hexkey(k.mv_data, k.mv_size, hk, sizeof(hk));
                problem(ck, "op log record fails its check (dirty/%s)", hk);
            }
        }
        mdb_cursor_close(cur);
    }
    if (nslot != nvec || ncontent != nvec || norder != nvec)
        problem(ck,
                "%" PRIu64 " vectors but %" PRIu64 " slots, %" PRIu64 " contents, %" PRIu64
                " listing entries",
                nvec, nslot, ncontent, norder);
    if (nmidx != nxattr_user)
        problem(ck, "metadata index has %" PRIu64 " entries for %" PRIu64 " user xattrs", nmidx,
                nxattr_user);
    if (rec->count != nvec || rec->bytes != bytes)
        problem(ck,
                "counters say %" PRIu64 " vectors / %" PRIu64 " bytes, records hold %" PRIu64
                " / %" PRIu64,
                rec->count, rec->bytes, nvec, bytes);

    /* The snapshot, replayed, must equal the records. */
    vf_hnsw *h = NULL;
    uint64_t gen = 0, txnid = 0;
    int rc = st_snap_read(st, rec, &h, &gen, &txnid);
    if (rc == 0) {
        size_t nd;
        uint64_t mg;
        vf_hnsw_params p;
        vf_hnsw_params_get(h, &p);
        if (txnid > (uint64_t)mdb_txn_id(ck->txn)) {
            /* Written after this check's read txn began (a mounted store):
             * not comparable with this point in time. */
            if (ck->out)
                fprintf(ck->out,
                        "collection '%s': snapshot is newer than this check's view "
                        "(store in use); not compared\n",
                        rec->name);
        } else if (gen < rec->snap_gen) {
            if (ck->out)
                fprintf(ck->out, "collection '%s': snapshot is stale (rebuilt at open)\n",
                        rec->name);
        } else if (!st_snap_params_match(h, &rec->cfg)) {
            /* The config changed after the snapshot (an emptied collection
             * took a new dim or metric, or a change rebuilt the index) and
             * a crash came before the next snapshot: open rebuilds. */
            if (ck->out)
                fprintf(ck->out,
                        "collection '%s': snapshot predates a config change (stale; rebuilt "
                        "at open)\n",
                        rec->name);
        } else if (st_snap_replay(st, ck->txn, cid, h, &nd, &mg) != 0) {
            problem(ck, "snapshot replay failed");
        } else if (vf_hnsw_count(h) != nvec) {
            problem(ck, "snapshot + op log hold %zu vectors, records %" PRIu64, vf_hnsw_count(h),
                    nvec);
        } else {
            float *a = st_malloc((size_t)p.dim * sizeof(float) * 2);
            uint64_t bad = 0;
            FOR_PREFIX(ck, ST_DB_SLOTS, cid, k, v, cur)
            {
                const void *body;
                size_t blen, snl;
                const char *sn;
                const uint8_t *sv;
                uint32_t dim;
                uint32_t id = st_get_be32((const uint8_t *)k.mv_data + 4);
                if (!a || open_val(ck, ST_DB_SLOTS, &k, &v, &body, &blen) != 0 ||
                    st_rec_slot_dec(body, blen, &sn, &snl, &sv, &dim) != 0 || dim != p.dim)
                    continue;
                float *b = a + p.dim;
                memcpy(b, sv, (size_t)dim * sizeof(float));
                if (p.metric == VF_METRIC_COSINE)
                    vf_normalize(b, b, dim);
                if (vf_hnsw_get(h, id, a) != 0) {
                    bad++;
                    continue;
                }
                for (uint32_t i = 0; i < dim; i++)
                    if (fabsf(a[i] - b[i]) > 1e-4f * (1.0f + fabsf(b[i]))) {
                        bad++;
                        break;
                    }
            }
            mdb_cursor_close(cur);
            free(a);
            if (bad)
                problem(ck, "snapshot differs from the records for %" PRIu64 " vectors", bad);
            /* Loading links in what a snapshot from before anchors left
             * without a way in, as the daemon's open does: a note. What
             * is still unreachable after that is damage. */
            vf_hnsw_stats st;
            vf_hnsw_stats_get(h, &st);
            if (st.rehomed && ck->out)
                fprintf(ck->out,
                        "collection '%s': %" PRIu64 " vectors had no way in in the snapshot; "
                        "linked in on load (as at mount)\n",
                        rec->name, st.rehomed);
            size_t lost = vf_hnsw_unreachable(h);
            if (lost)
                problem(ck, "%zu of %zu vectors unreachable in the graph after load", lost,
                        vf_hnsw_count(h));
        }
    } else if (rc == -ENOENT) {
        if (nvec && ck->out)
            fprintf(ck->out, "collection '%s': no snapshot (rebuilt at open)\n", rec->name);
    } else {
        problem(ck, "snapshot is damaged (%s)", strerror(-rc == EILSEQ ? EILSEQ : -rc));
    }
    vf_hnsw_free(h);
    free(used.w);
    if (ck->out)
        fprintf(ck->out, "collection '%s': %" PRIu64 " vectors, %" PRIu64 " bytes\n", rec->name,
                nvec, bytes);
    return 0;
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
    rc = st_txn_read(st, &ck.txn);
    uint64_t ncoll = 0;
    if (rc == 0) {
        MDB_cursor *cur;
        rc = st_mdb_err(mdb_cursor_open(ck.txn, st->db[ST_DB_COLLS], &cur));
        MDB_val k, v;
        int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        st_buf cs = {0};
        while (rc == 0 && mrc == 0) {
            const void *body;
            size_t blen;
            st_coll_rec rec;
            int orc = st_env_open_buf(&st->crypto, ST_DB_COLLS, k.mv_data, k.mv_size, v.mv_data,
                                      v.mv_size, &cs, &body, &blen);
            if (orc == -ENOMEM) {
                rc = orc;
                break;
            }
            if (orc != 0 || st_rec_coll_dec(body, blen, &rec) != 0) {
                problem(&ck, "collection record fails its check");
            } else {
                ncoll++;
                rc = check_coll(&ck, &rec);
                ck.coll = "-";
            }
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        st_buf_free(&cs);
        if (rc == 0)
            mdb_cursor_close(cur);
        mdb_txn_abort(ck.txn);
    }
    st_buf_free(&ck.s1);
    st_buf_free(&ck.s2);
    st_store_close(st);
    if (rc) {
        if (report)
            fprintf(report, "check of %s failed: %s\n", datadir, strerror(-rc));
        return rc;
    }
    if (report)
        fprintf(report, "%s: %" PRIu64 " collections, %" PRIu64 " problems%s\n", datadir, ncoll,
                ck.problems, st->crypto.on ? "" : "");
    return ck.problems > INT32_MAX ? INT32_MAX : (int)ck.problems;
}
