/*
 * filter_eval.c — the set of a collection's ids that pass a compiled
 * filter (filter.c), read in one LMDB read transaction.
 *
 * How each leaf is answered:
 *   - a filter made only of `=` and `in` leaves (and/or/not over them) reads
 *     the MIDX database: one hash lookup per value, no record decoded;
 *   - any other leaf (`!=`, `<`, `<=`, `>`, `>=`, `exists`) needs the
 *     values in order: a walk over its key's range of VIDX (vidx.c) when
 *     the store keeps one; else (an encrypted store) one walk over the
 *     collection's XATTRS records answers every leaf of the filter at
 *     once (each user.* record is decoded and checked against the leaves
 *     of its key);
 *   - `not` subtracts from the collection's ids, the keys of its SLOTS
 *     records (keys only: no record is decoded).
 * and/or/not then combine the leaves' sets as bitmaps.
 *
 * Invariants
 *   1. Every set is a bitmap whose bits above its words are 0: a set is
 *      never wider than the largest id it holds (plus one word).
 *   2. Recursion follows the filter's tree, at most ST_FILTER_DEPTH_MAX
 *      deep (filter.c, invariant 1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void st_idset_release(st_idset *s)
{
    free(s->w);
    s->w = NULL;
    s->nw = 0;
}

/* Adds id to s, growing it. 0 or -ENOMEM. */
static int idset_add(st_idset *s, uint32_t id)
{
    size_t need = ((size_t)id >> 6) + 1;
    if (need > s->nw) {
        size_t nw = need > 2 * s->nw ? need : 2 * s->nw;
        void *w = s->w;
        if (vc_grow_zeroed(&w, s->nw, nw, sizeof *s->w) != 0)
            return -ENOMEM;
        s->w = w;
        s->nw = nw;
    }
    s->w[id >> 6] |= (uint64_t)1 << (id & 63);
    return 0;
}

size_t st_idset_count(const st_idset *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nw; i++)
        n += (size_t)__builtin_popcountll(s->w[i]);
    return n;
}

uint32_t *st_idset_list(const st_idset *s, size_t n)
{
    uint32_t *ids = vc_malloc(n * sizeof(uint32_t) + 1);
    if (!ids)
        return NULL;
    size_t got = 0;
    for (size_t i = 0; i < s->nw && got < n; i++)
        for (uint64_t w = s->w[i]; w && got < n; w &= w - 1)
            ids[got++] = (uint32_t)(i * 64 + (size_t)__builtin_ctzll(w));
    return ids;
}

/* a = a and b (invert_b: a and not b). */
static void idset_and(st_idset *a, const st_idset *b, bool invert_b)
{
    for (size_t i = 0; i < a->nw; i++) {
        uint64_t w = i < b->nw ? b->w[i] : 0;
        a->w[i] &= invert_b ? ~w : w;
    }
}

/* a = a or b. 0 or -ENOMEM. */
static int idset_or(st_idset *a, const st_idset *b)
{
    if (b->nw > a->nw) {
        void *w = a->w;
        if (vc_grow_zeroed(&w, a->nw, b->nw, sizeof *a->w) != 0)
            return -ENOMEM;
        a->w = w;
        a->nw = b->nw;
    }
    for (size_t i = 0; i < b->nw; i++)
        a->w[i] |= b->w[i];
    return 0;
}

/* What one evaluation holds: the leaves' sets, by node index. */
typedef struct eval {
    st_store *st;
    MDB_txn *txn;
    uint32_t coll;
    const st_filter *f;
    st_idset *leaf; /* f->nnodes of them; filled for leaves */
    st_idset all;   /* the collection's ids, once a `not` needs them */
    bool have_all;
} eval;

static bool is_leaf(const st_fnode *n)
{
    return n->kind == ST_FK_CMP || n->kind == ST_FK_IN || n->kind == ST_FK_EXISTS;
}

/* The leaf can be answered from MIDX alone. */
static bool leaf_hashable(const st_fnode *n)
{
    return n->kind == ST_FK_IN || (n->kind == ST_FK_CMP && n->op == ST_FOP_EQ);
}

/* Adds to s the ids whose user.KEY equals value (MIDX). */
static int midx_ids(eval *e, const st_fstr *key, const st_flit *value, st_idset *s)
{
    char xname[ST_XATTR_NAME_MAX + 1];
    memcpy(xname, "user.", 5);
    memcpy(xname + 5, key->p, key->len + 1);
    uint8_t mk[20];
    st_be32(mk, e->coll);
    st_meta_hash(&e->st->crypto, xname, value->p, value->len, mk + 4);
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(e->txn, e->st->db[ST_DB_MIDX], &cur));
    if (rc)
        return rc;
    MDB_val k = {20, mk}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE);
    while (mrc == 0 && rc == 0) {
        for (size_t i = 0; i < v.mv_size / 4 && rc == 0; i++)
            rc = idset_add(s, st_get_be32((const uint8_t *)v.mv_data + 4 * i));
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = st_mdb_err(mrc);
    return rc;
}

/* st_vidx_fn: adds id to the st_idset ctx. */
static int vidx_add(void *ctx, uint32_t id)
{
    return idset_add(ctx, id);
}

/* Fills the set of every leaf: MIDX for `=` and `in`, VIDX for the rest. */
static int leaves_indexed(eval *e)
{
    int rc = 0;
    for (size_t i = 0; i < e->f->nnodes && rc == 0; i++) {
        const st_fnode *n = &e->f->nodes[i];
        const st_fstr *key = &e->f->keys[n->key];
        if (is_leaf(n) && !leaf_hashable(n))
            rc = st_vidx_select(e->st, e->txn, e->coll, key, n,
                                n->kind == ST_FK_CMP ? &e->f->lits[n->lit] : NULL, vidx_add,
                                &e->leaf[i]);
        for (uint32_t j = 0; is_leaf(n) && leaf_hashable(n) && j < n->nlit && rc == 0; j++)
            rc = midx_ids(e, key, &e->f->lits[n->lit + j], &e->leaf[i]);
    }
    return rc;
}

/* Whether a stored value passes leaf n. */
static bool leaf_passes(const st_filter *f, const st_fnode *n, const void *val, size_t len)
{
    if (n->kind == ST_FK_EXISTS)
        return true;
    if (n->kind == ST_FK_IN) {
        for (uint32_t i = 0; i < n->nlit; i++) {
            const st_flit *l = &f->lits[n->lit + i];
            if (l->len == len && (len == 0 || memcmp(l->p, val, len) == 0))
                return true;
        }
        return false;
    }
    const st_flit *l = &f->lits[n->lit];
    if (n->op == ST_FOP_EQ || n->op == ST_FOP_NE) {
        bool eq = l->len == len && (len == 0 || memcmp(l->p, val, len) == 0);
        return eq == (n->op == ST_FOP_EQ);
    }
    return st_fop_holds(n->op, st_filter_cmp(val, len, l));
}

/* Some leaf of the filter is about xattr xn (xl bytes, not NUL-terminated). */
static bool name_wanted(const eval *e, const char *xn, size_t xl)
{
    if (xl <= 5 || memcmp(xn, "user.", 5) != 0)
        return false;
    for (size_t i = 0; i < e->f->nnodes; i++) {
        const st_fstr *key = &e->f->keys[e->f->nodes[i].key];
        if (is_leaf(&e->f->nodes[i]) && key->len == xl - 5 && memcmp(key->p, xn + 5, xl - 5) == 0)
            return true;
    }
    return false;
}

/* One walk over the collection's XATTRS records fills every leaf's set.
 * Without a key the record's key holds the xattr name as it is, so the
 * records of other names are passed over without opening them. */
static int xattrs_scan(eval *e)
{
    uint8_t pre[4];
    st_be32(pre, e->coll);
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(e->txn, e->st->db[ST_DB_XATTRS], &cur));
    if (rc)
        return rc;
    vc_buf scratch = VC_BUF_INIT;
    MDB_val k = {4, pre}, v;
    int mrc = st_mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && k.mv_size > 8 && memcmp(k.mv_data, pre, 4) == 0) {
        const void *body;
        size_t blen, xl, vl;
        const char *xn;
        const uint8_t *val;
        if (!e->st->crypto.on && !name_wanted(e, (const char *)k.mv_data + 8, k.mv_size - 8)) {
            mrc = st_mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        rc = st_env_open_buf(&e->st->crypto, ST_DB_XATTRS, k.mv_data, k.mv_size, v.mv_data,
                             v.mv_size, &scratch, &body, &blen);
        if (rc == 0)
            rc = st_rec_xattr_dec(body, blen, &xn, &xl, &val, &vl);
        if (rc)
            break;
        uint32_t id = st_get_be32((const uint8_t *)k.mv_data + 4);
        bool wanted = name_wanted(e, xn, xl);
        for (size_t i = 0; rc == 0 && wanted && i < e->f->nnodes; i++) {
            const st_fnode *n = &e->f->nodes[i];
            const st_fstr *key = &e->f->keys[n->key];
            if (is_leaf(n) && key->len == xl - 5 && memcmp(key->p, xn + 5, xl - 5) == 0 &&
                leaf_passes(e->f, n, val, vl))
                rc = idset_add(&e->leaf[i], id);
        }
        if (rc == 0)
            mrc = st_mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    vc_buf_release(&scratch);
    if (rc == 0 && mrc != MDB_NOTFOUND && mrc != 0)
        rc = st_mdb_err(mrc);
    return rc;
}

/* e->all = the collection's ids (keys of its SLOTS records). */
static int all_ids(eval *e)
{
    if (e->have_all)
        return 0;
    uint8_t pre[8];
    st_key_id(e->coll, 0, pre);
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(e->txn, e->st->db[ST_DB_SLOTS], &cur));
    if (rc)
        return rc;
    MDB_val k = {8, pre}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && mrc == 0 && k.mv_size == 8 && memcmp(k.mv_data, pre, 4) == 0) {
        rc = idset_add(&e->all, st_get_be32((const uint8_t *)k.mv_data + 4));
        if (rc == 0)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc != MDB_NOTFOUND && mrc != 0)
        rc = st_mdb_err(mrc);
    e->have_all = rc == 0;
    return rc;
}

/* The set of node i into *out (which it takes over from the leaves). */
static int node_set(eval *e, int i, st_idset *out)
{
    const st_fnode *n = &e->f->nodes[i];
    *out = (st_idset){0};
    if (is_leaf(n)) {
        *out = e->leaf[i];
        e->leaf[i] = (st_idset){0};
        return 0;
    }
    int rc = 0;
    if (n->kind == ST_FK_NOT) {
        st_idset child;
        rc = all_ids(e);
        if (rc == 0)
            rc = node_set(e, n->first, &child);
        if (rc == 0)
            rc = idset_or(out, &e->all);
        if (rc == 0)
            idset_and(out, &child, true);
        st_idset_release(&child);
        if (rc)
            st_idset_release(out);
        return rc;
    }
    bool first = true;
    for (int c = n->first; c >= 0 && rc == 0; c = e->f->nodes[c].next) {
        st_idset s;
        rc = node_set(e, c, &s);
        if (rc == 0 && first)
            *out = s;
        else if (rc == 0 && n->kind == ST_FK_AND)
            idset_and(out, &s, false);
        else if (rc == 0)
            rc = idset_or(out, &s);
        if (!first || rc)
            st_idset_release(&s);
        first = false;
    }
    if (rc)
        st_idset_release(out);
    return rc;
}

int st_filter_eval(st_store *st, MDB_txn *txn, uint32_t coll, const st_filter *f, st_idset *out)
{
    *out = (st_idset){0};
    eval e = {.st = st, .txn = txn, .coll = coll, .f = f};
    e.leaf = vc_calloc(f->nnodes ? f->nnodes : 1, sizeof *e.leaf);
    if (!e.leaf)
        return -ENOMEM;
    bool scan = false;
    for (size_t i = 0; i < f->nnodes; i++)
        scan |= is_leaf(&f->nodes[i]) && !leaf_hashable(&f->nodes[i]);
    int rc = scan && !st->vidx_on ? xattrs_scan(&e) : leaves_indexed(&e);
    if (rc == 0)
        rc = node_set(&e, f->root, out);
    for (size_t i = 0; i < f->nnodes; i++)
        st_idset_release(&e.leaf[i]);
    free(e.leaf);
    st_idset_release(&e.all);
    return rc;
}
