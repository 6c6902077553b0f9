/*
 * vidx.c — the ordered metadata index (VIDX): user xattr values in order,
 * per key, so a range comparison or `exists` is a cursor walk over the
 * key's entries instead of a walk over every XATTRS record.
 *
 * VIDX key: u32be coll | KEY (the name without "user.") | 0 | family |
 * value, DUPSORT|DUPFIXED u32be ids. Families:
 *   'N'  a value that is a number (st_filter_number): its double, 8 bytes
 *        that sort as the numbers do (sign bit flipped, or all bits for a
 *        negative; -0 stored as 0);
 *   'S'  a value that is not a number: its bytes;
 *   'T'  a value that is a number: its bytes, as well (a literal that is
 *        not a number compares every value as bytes: S and T).
 * Bytes are truncated to the room LMDB leaves (its 511-byte key limit);
 * an entry that fills the room may be truncated, and where it ties with
 * the literal the XATTR record decides.
 *
 * Encrypted stores keep no VIDX: its keys would hold the values in plain
 * text. Their filters walk the records (filter_eval.c).
 *
 * Invariants
 *   1. With st->vidx_on, VIDX holds (coll, KEY, family, value) → id for
 *      exactly the user xattrs of the XATTRS records: one S or T entry
 *      each, and an N entry for numbers. xattr.c changes it in the txn
 *      that changes the record; a collection drop deletes its prefix.
 *   2. META "vidx" exists once VIDX was built; st_vidx_open builds it once
 *      for a store that lacks it (stores from before it, format 1 and 2).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "internal.h"

/* LMDB's key limit (mdb_env_get_maxkeysize with the default build). */
#define VIDX_KEY_MAX 511u

/* An encoded entry or literal: the key, and where its value part starts. */
typedef struct vkey {
    uint8_t b[VIDX_KEY_MAX];
    size_t len, value_at;
} vkey;

/* The prefix coll | key | 0 | family into k. */
static void prefix(vkey *k, uint32_t coll, const char *key, size_t kl, char family)
{
    st_be32(k->b, coll);
    memcpy(k->b + 4, key, kl);
    k->b[4 + kl] = 0;
    k->b[5 + kl] = (uint8_t)family;
    k->len = k->value_at = 6 + kl;
}

/* The room for value bytes after k's prefix. */
static size_t room(const vkey *k)
{
    return VIDX_KEY_MAX - k->value_at;
}

static void put_bytes(vkey *k, const void *v, size_t vl)
{
    size_t n = vl < room(k) ? vl : room(k);
    memcpy(k->b + k->value_at, v, n);
    k->len = k->value_at + n;
}

static void put_number(vkey *k, double d)
{
    uint64_t bits;
    if (d == 0)
        d = 0; /* -0 is 0 */
    memcpy(&bits, &d, sizeof bits);
    bits = bits >> 63 ? ~bits : bits | (uint64_t)1 << 63;
    st_be64(k->b + k->value_at, bits);
    k->len = k->value_at + 8;
}

/* Adds or removes the entries of one value (add: put; else delete). */
static int entry_change(st_store *st, MDB_txn *txn, const vkey *k, uint32_t id, bool add)
{
    uint8_t idb[4];
    st_be32(idb, id);
    MDB_val kv = {k->len, (void *)k->b}, dv = {4, idb};
    MDB_dbi db = st->db[ST_DB_VIDX];
    int d = add ? mdb_put(txn, db, &kv, &dv, 0) : mdb_del(txn, db, &kv, &dv);
    return d == MDB_NOTFOUND && !add ? 0 : st_mdb_err(d);
}

/* The keys of user xattr xname (xl bytes) = val (vl bytes): k[0] its S or
 * T entry, k[1] its N entry when it is a number. Returns how many (1, 2). */
static int entries_of(uint32_t coll, const char *xname, size_t xl, const void *val, size_t vl,
                      vkey k[2])
{
    double d;
    bool num = st_filter_number(val, vl, &d);
    prefix(&k[0], coll, xname + 5, xl - 5, num ? 'T' : 'S');
    put_bytes(&k[0], val, vl);
    if (!num)
        return 1;
    prefix(&k[1], coll, xname + 5, xl - 5, 'N');
    put_number(&k[1], d);
    return 2;
}

int st_vidx_change(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const char *xname,
                   size_t xl, const void *val, size_t vl, bool add)
{
    if (!st->vidx_on)
        return 0;
    vkey k[2];
    int n = entries_of(coll, xname, xl, val, vl, k);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = entry_change(st, txn, &k[i], id, add);
    return rc;
}

int st_vidx_has(st_store *st, MDB_txn *txn, uint32_t coll, uint32_t id, const char *xname,
                size_t xl, const void *val, size_t vl, int *n, int *missing)
{
    vkey k[2];
    *n = entries_of(coll, xname, xl, val, vl, k);
    *missing = 0;
    uint8_t idb[4];
    st_be32(idb, id);
    MDB_cursor *cur = NULL;
    int mrc = mdb_cursor_open(txn, st->db[ST_DB_VIDX], &cur);
    for (int i = 0; i < *n && mrc == 0; i++) {
        MDB_val kv = {k[i].len, k[i].b}, dv = {4, idb};
        mrc = st_mdb_cursor_get(cur, &kv, &dv, MDB_GET_BOTH);
        if (mrc == MDB_NOTFOUND) {
            (*missing)++;
            mrc = 0;
        }
    }
    if (cur)
        mdb_cursor_close(cur);
    return mrc;
}

int st_vidx_count(st_store *st, MDB_txn *txn, uint32_t coll, uint64_t *n)
{
    uint8_t pre[4];
    st_be32(pre, coll);
    *n = 0;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, st->db[ST_DB_VIDX], &cur);
    if (mrc)
        return mrc;
    MDB_val k = {4, pre}, v;
    mrc = st_mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == 0 && k.mv_size >= 4 && memcmp(k.mv_data, pre, 4) == 0) {
        size_t c = 0;
        mrc = mdb_cursor_count(cur, &c);
        *n += c;
        if (mrc == 0)
            mrc = st_mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

/* Adds the entries of every user xattr of the store (a store from before
 * VIDX); *n counts them, *damaged the records that fail to open or decode
 * (passed over: the store still opens, and `vecfs check` names them). */
static int build(st_store *st, MDB_txn *txn, uint64_t *n, uint64_t *damaged)
{
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_XATTRS], &cur));
    if (rc)
        return rc;
    vc_buf scratch = VC_BUF_INIT;
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && mrc == 0) {
        const void *body;
        size_t blen, xl, vl;
        const char *xn;
        const uint8_t *val;
        rc = k.mv_size > 8 ? st_env_open_buf(&st->crypto, ST_DB_XATTRS, k.mv_data, k.mv_size,
                                             v.mv_data, v.mv_size, &scratch, &body, &blen)
                           : -EIO;
        if (rc == 0)
            rc = st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl);
        const uint8_t *kb = k.mv_data;
        if (rc == -EIO) {
            (*damaged)++;
            rc = 0;
        } else if (rc == 0 && xl > 5 && memcmp(xn, "user.", 5) == 0) {
            rc = st_vidx_change(st, txn, st_get_be32(kb), st_get_be32(kb + 4), xn, xl, val, vl,
                                true);
            (*n)++;
        }
        if (rc == 0)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    vc_buf_release(&scratch);
    return rc ? rc : mrc == MDB_NOTFOUND ? 0 : st_mdb_err(mrc);
}

int st_vidx_open(st_store *st, MDB_txn *txn)
{
    uint64_t built;
    int rc = st->crypto.on || !st->db[ST_DB_VIDX] ? -ENOENT
                                                  : st_meta_counter_get(st, txn, "vidx", &built);
    st->vidx_on = rc == 0;
    if (rc != -ENOENT || st->crypto.on || st->opt.read_only)
        return rc == -ENOENT ? 0 : rc;
    struct timespec t0, t1;
    st_mono_now(&t0);
    uint64_t n = 0, damaged = 0;
    st->vidx_on = true;
    rc = build(st, txn, &n, &damaged);
    if (rc == 0)
        rc = st_meta_counter_put(st, txn, "vidx", 1);
    st->vidx_on = rc == 0;
    st_mono_now(&t1);
    if (rc == 0 && (n || damaged))
        st_log(st, ST_LOG_INFO,
               "built the ordered metadata index: %" PRIu64 " values in %.3f s (%" PRIu64
               " damaged xattr records passed over)",
               n, st_ts_diff(&t1, &t0), damaged);
    return rc;
}

/* -1, 0, 1: the value part of entry e (elen bytes) against the literal's
 * (lit, llen bytes), shorter first. */
static int bytes_cmp(const uint8_t *e, size_t elen, const uint8_t *lit, size_t llen)
{
    size_t n = elen < llen ? elen : llen;
    int c = n ? memcmp(e, lit, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return elen < llen ? -1 : elen > llen ? 1 : 0;
}

/* One walk: its selection and where ids go. */
typedef struct walk {
    st_store *st;
    MDB_txn *txn;
    uint32_t coll;
    const st_fstr *key;
    const st_fnode *n;  /* the leaf: a CMP other than `=`, or EXISTS */
    const st_flit *lit; /* its literal; NULL for EXISTS */
    st_vidx_fn fn;
    void *ctx;
    vc_buf scratch;
} walk;

/* Whether id's value of the walk's key passes (the XATTR record decides a
 * truncated entry that ties). */
static int record_passes(walk *w, uint32_t id, bool *pass)
{
    char xname[ST_XATTR_NAME_MAX + 1];
    memcpy(xname, "user.", 5);
    memcpy(xname + 5, w->key->p, w->key->len + 1);
    uint8_t key[ST_XATTR_KEY_MAX];
    size_t kl = st_key_xattr(w->st, w->coll, id, xname, key);
    const void *body;
    size_t blen, xl, vl;
    const char *xn;
    const uint8_t *val;
    int rc = st_get(w->st, w->txn, ST_DB_XATTRS, key, kl, &body, &blen, &w->scratch);
    if (rc == 0)
        rc = st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl);
    if (rc == -ENOENT)
        rc = -EIO; /* an index entry without its record */
    if (rc == 0) {
        bool eq = vl == w->lit->len && (vl == 0 || memcmp(val, w->lit->p, vl) == 0);
        *pass =
            w->n->op == ST_FOP_NE ? !eq : st_fop_holds(w->n->op, st_filter_cmp(val, vl, w->lit));
    }
    return rc;
}

/* Hands fn the ids of the cursor's current key (recheck: each checked
 * against its record first). */
static int key_ids(walk *w, MDB_cursor *cur, MDB_val *k, bool recheck)
{
    /* GET_MULTIPLE leaves v as it is for a key with one id: GET_CURRENT
     * fills it first. */
    MDB_val v;
    int rc = 0;
    int mrc = mdb_cursor_get(cur, k, &v, MDB_GET_CURRENT);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, k, &v, MDB_GET_MULTIPLE);
    while (mrc == 0 && rc == 0) {
        for (size_t i = 0; i < v.mv_size / 4 && rc == 0; i++) {
            uint32_t id = st_get_be32((const uint8_t *)v.mv_data + 4 * i);
            bool pass = true;
            if (recheck)
                rc = record_passes(w, id, &pass);
            if (rc == 0 && pass)
                rc = w->fn(w->ctx, id);
        }
        mrc = mdb_cursor_get(cur, k, &v, MDB_NEXT_MULTIPLE);
    }
    return rc ? rc : mrc == MDB_NOTFOUND ? 0 : st_mdb_err(mrc);
}

/* Walks family fam of the walk's key: every entry when lit is NULL (or the
 * op is !=), else the range the op selects against lit as encoded in
 * family fam. */
static int family_walk(walk *w, char fam)
{
    vkey p, l;
    prefix(&p, w->coll, w->key->p, w->key->len, fam);
    l = p;
    if (w->lit && fam == 'N')
        put_number(&l, w->lit->num);
    else if (w->lit)
        put_bytes(&l, w->lit->p, w->lit->len);
    bool upward =
        !w->lit || w->n->op == ST_FOP_LT || w->n->op == ST_FOP_LE || w->n->op == ST_FOP_NE;
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(w->txn, w->st->db[ST_DB_VIDX], &cur));
    if (rc)
        return rc;
    MDB_val k = upward ? (MDB_val){p.len, p.b} : (MDB_val){l.len, l.b}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && k.mv_size >= p.len && memcmp(k.mv_data, p.b, p.len) == 0) {
        const uint8_t *e = (const uint8_t *)k.mv_data + p.len;
        size_t elen = k.mv_size - p.len;
        bool pass = true, recheck = false;
        if (w->lit) {
            int c = bytes_cmp(e, elen, l.b + p.len, l.len - p.len);
            if (c > 0 && w->n->op != ST_FOP_NE && upward)
                break; /* past the range */
            recheck = fam != 'N' && c == 0 && elen == room(&p);
            pass = recheck || st_fop_holds(w->n->op, c);
        }
        if (pass)
            rc = key_ids(w, cur, &k, recheck);
        if (rc == 0)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
    }
    mdb_cursor_close(cur);
    return rc ? rc : mrc == MDB_NOTFOUND || mrc == 0 ? 0 : st_mdb_err(mrc);
}

int st_vidx_select(st_store *st, MDB_txn *txn, uint32_t coll, const st_fstr *key, const st_fnode *n,
                   const st_flit *lit, st_vidx_fn fn, void *ctx)
{
    walk w = {.st = st,
              .txn = txn,
              .coll = coll,
              .key = key,
              .n = n,
              .lit = lit,
              .fn = fn,
              .ctx = ctx,
              .scratch = VC_BUF_INIT};
    /* A number literal orders numbers as numbers (N) and the rest as bytes
     * (S); otherwise (and for != and exists) every value is bytes (S, T). */
    bool numeric = w.lit && lit->is_num && n->op != ST_FOP_NE;
    int rc = family_walk(&w, 'S');
    if (rc == 0)
        rc = family_walk(&w, numeric ? 'N' : 'T');
    vc_buf_release(&w.scratch);
    return rc;
}
