/*
 * batch.c — batches (.import/): rows collected in memory, committed as
 * one st_op (all or nothing), then inserted into the index on all cores.
 *
 * States of an st_batch
 *   FILLING   st_batch_begin; st_batch_put adds rows (a failed add leaves
 *             the batch as it was).
 *   GONE      st_batch_commit (whatever its result) or st_batch_abort
 *             freed it.
 *
 * Invariants
 *   1. Every row passed the checks that need no LMDB (names, sizes, dim,
 *      values) when it was added; commit checks the rest in its txn.
 *   2. A batch owns copies of everything it was given.
 *   3. When its names are all different, a batch writes its VEC records
 *      after its other records, in key order (full LMDB pages), still
 *      inside its one transaction: the records committed are the same.
 *   4. In the RADOS mode a batch is one log operation: every node commits
 *      it as one transaction when it applies the entry, or none does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"
#include "le.h"

typedef struct batch_row {
    char name[ST_NAME_MAX + 1];
    size_t name_len;
    void *content;
    size_t len;
    size_t vec_off; /* row index into b->vecs */
    st_attr attr;
    unsigned mask;
    size_t nmeta;
    char **meta_keys;
    void **meta_vals;
    size_t *meta_lens;
} batch_row;

struct st_batch {
    st_store *st;
    char coll[ST_COLL_NAME_MAX + 1];
    uint32_t dim;
    batch_row *rows;
    size_t n, cap;
    float *vecs;
};

int st_batch_begin(st_store *st, const char *coll, st_batch **out)
{
    if (!st || !out)
        return -EINVAL;
    *out = NULL;
    st_coll *c;
    int rc = st_coll_lookup(st, coll, &c);
    if (rc)
        return rc;
    st_batch *b = vc_calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->st = st;
    snprintf(b->coll, sizeof(b->coll), "%s", coll);
    pthread_mutex_lock(&c->mu);
    b->dim = c->cfg.dim;
    pthread_mutex_unlock(&c->mu);
    *out = b;
    return 0;
}

size_t st_batch_count(const st_batch *b)
{
    return b ? b->n : 0;
}

/* Frees what a row owns (not the row). */
static void row_free(batch_row *r)
{
    free(r->content);
    for (size_t i = 0; i < r->nmeta; i++) {
        free(r->meta_keys[i]);
        free(r->meta_vals[i]);
    }
    free(r->meta_keys);
    free(r->meta_vals);
    free(r->meta_lens);
}

int st_batch_put(st_batch *b, const char *name, const void *content, size_t len, const float *vec,
                 uint32_t dim, const st_attr *attr, unsigned mask, size_t nmeta,
                 const char *const *meta_keys, const void *const *meta_vals,
                 const size_t *meta_lens)
{
    if (!b || (!attr && mask) || (nmeta && (!meta_keys || !meta_vals || !meta_lens)))
        return -EINVAL;
    size_t nl;
    int rc = st_vec_row_check(name, &nl, content, len, vec, dim);
    if (rc)
        return rc;
    if (b->dim && dim != b->dim)
        return -EINVAL;
    for (size_t i = 0; i < nmeta; i++) {
        rc = st_xattr_name_arg(meta_keys[i], NULL);
        if (rc)
            return rc;
        if (meta_lens[i] > ST_XATTR_VALUE_MAX)
            return -E2BIG;
        if (!meta_vals[i] && meta_lens[i])
            return -EINVAL;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        batch_row *rows = vc_realloc(b->rows, cap * sizeof(*rows));
        if (!rows)
            return -ENOMEM;
        b->rows = rows;
        float *v = vc_realloc(b->vecs, cap * (size_t)dim * sizeof(float));
        if (!v)
            return -ENOMEM;
        b->vecs = v;
        b->cap = cap;
    }
    batch_row *r = &b->rows[b->n];
    memset(r, 0, sizeof(*r));
    memcpy(r->name, name, nl);
    r->name_len = nl;
    r->content = vc_malloc(len);
    rc = r->content ? 0 : -ENOMEM;
    if (rc == 0 && len)
        memcpy(r->content, content, len);
    r->len = len;
    r->vec_off = b->n;
    if (attr)
        r->attr = *attr;
    r->mask = mask;
    if (rc == 0 && nmeta) {
        r->meta_keys = vc_calloc(nmeta, sizeof(char *));
        r->meta_vals = vc_calloc(nmeta, sizeof(void *));
        r->meta_lens = vc_calloc(nmeta, sizeof(size_t));
        if (!r->meta_keys || !r->meta_vals || !r->meta_lens)
            rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < nmeta; i++) {
            r->meta_keys[i] = st_memdup(meta_keys[i], strlen(meta_keys[i]) + 1);
            r->meta_vals[i] = vc_malloc(meta_lens[i]);
            r->nmeta = i + 1;
            if (!r->meta_keys[i] || !r->meta_vals[i]) {
                rc = -ENOMEM;
                break;
            }
            if (meta_lens[i])
                memcpy(r->meta_vals[i], meta_vals[i], meta_lens[i]);
            r->meta_lens[i] = meta_lens[i];
        }
    }
    if (rc) {
        row_free(r);
        return rc;
    }
    memcpy(b->vecs + b->n * (size_t)dim, vec, (size_t)dim * sizeof(float));
    b->dim = dim;
    b->n++;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void st_batch_abort(st_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        row_free(&b->rows[i]);
    free(b->rows);
    free(b->vecs);
    free(b);
}

/* Whether two rows of b have the same name. 0 or -ENOMEM. */
static int names_repeat(const st_batch *b, bool *repeat)
{
    const char **names = vc_malloc(b->n * sizeof(*names));
    if (!names)
        return -ENOMEM;
    for (size_t i = 0; i < b->n; i++)
        names[i] = b->rows[i].name;
    qsort(names, b->n, sizeof(*names), name_cmp);
    *repeat = false;
    for (size_t i = 1; i < b->n && !*repeat; i++)
        *repeat = strcmp(names[i - 1], names[i]) == 0;
    free(names);
    return 0;
}

/* Keeps VEC record r (key and sealed-to-be body) in held. */
static void held_add(vc_buf *held, st_store *st, uint32_t coll, const st_vec_rec *r, vc_buf *body)
{
    uint8_t key[ST_VEC_KEY_MAX];
    size_t kl = st_key_vec(st, coll, r->name, r->name_len, key);
    vc_buf_reset(body);
    st_rec_vec_enc(body, r, !st->crypto.on);
    if (body->err && !held->err)
        held->err = body->err;
    vc_buf_append_le16(held, (uint16_t)kl);
    vc_buf_append(held, key, kl);
    vc_buf_append_le32(held, (uint32_t)body->len);
    vc_buf_append(held, body->p, body->len);
}

/* LMDB's default key order (memcmp, then the shorter first) of two held
 * records. */
static int held_cmp(const void *a, const void *b)
{
    const uint8_t *x = *(const uint8_t *const *)a, *y = *(const uint8_t *const *)b;
    size_t xl = vc_le_get16(x), yl = vc_le_get16(y);
    int c = memcmp(x + 2, y + 2, xl < yl ? xl : yl);
    return c ? c : (xl > yl) - (xl < yl);
}

/* Writes the n VEC records in held in key order: LMDB then fills each
 * page before it starts the next, where the rows' own order (a name's key
 * is its bytes or their HMAC; "base-10" sorts before "base-2") would split
 * pages in the middle of the tree and leave them about half full. */
static int held_write(st_op *o, const vc_buf *held, size_t n)
{
    if (held->err)
        return held->err;
    const uint8_t **recs = vc_malloc((n ? n : 1) * sizeof(*recs));
    if (!recs)
        return -ENOMEM;
    const uint8_t *p = (const uint8_t *)held->p;
    for (size_t i = 0; i < n; i++) {
        recs[i] = p;
        size_t kl = vc_le_get16(p);
        p += 2 + kl + 4 + vc_le_get32(p + 2 + kl);
    }
    qsort(recs, n, sizeof(*recs), held_cmp);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t kl = vc_le_get16(recs[i]);
        const uint8_t *body = recs[i] + 2 + kl + 4;
        rc =
            st_put(o->st, o->txn, ST_DB_VECS, recs[i] + 2, kl, body, vc_le_get32(recs[i] + 2 + kl));
    }
    free(recs);
    return rc;
}

/* The RADOS mode: the whole batch as one log operation (one entry, or
 * one blob; scale-out.md §4), its rows pointing into b. */
static int batch_route(st_batch *b)
{
    st_log_row *rows = vc_malloc(b->n * sizeof(*rows));
    if (!rows)
        return -ENOMEM;
    for (size_t i = 0; i < b->n; i++) {
        const batch_row *r = &b->rows[i];
        rows[i] = (st_log_row){.name = r->name,
                               .data = r->content,
                               .len = r->len,
                               .vec = b->vecs + r->vec_off * b->dim,
                               .attr = r->attr,
                               .mask = r->mask,
                               .nmeta = r->nmeta,
                               .meta_keys = (const char *const *)r->meta_keys,
                               .meta_vals = (const void *const *)r->meta_vals,
                               .meta_lens = r->meta_lens};
    }
    int rc = st_log_route(
        b->st,
        &(st_log_op){
            .kind = ST_LOG_BATCH, .coll = b->coll, .dim = b->dim, .rows = rows, .nrows = b->n});
    free(rows);
    return rc;
}

int st_batch_commit(st_batch *b)
{
    if (!b)
        return -EINVAL;
    if (b->n == 0) {
        st_batch_abort(b);
        return 0;
    }
    int rc;
    if (st_log_remote(b->st)) {
        rc = batch_route(b);
        st_batch_abort(b);
        return rc;
    }
    st_op o;
    rc = st_op_begin(b->st, b->coll, &o);
    if (rc) {
        st_batch_abort(b);
        return rc;
    }
    uint64_t need = 0;
    for (size_t i = 0; i < b->n; i++) {
        need += (uint64_t)b->rows[i].len + (uint64_t)b->dim * 4 + 2 * b->rows[i].name_len + 256;
        for (size_t j = 0; j < b->rows[i].nmeta; j++)
            need += b->rows[i].meta_lens[j] + 128;
    }
    rc = st_space_check(b->st, o.txn, need);
    /* Rows of one name must each see the last one's VEC record: held only
     * when every name is different. */
    bool repeat = true;
    if (rc == 0)
        rc = names_repeat(b, &repeat);
    vc_buf held = VC_BUF_INIT, body = VC_BUF_INIT;
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        batch_row *r = &b->rows[i];
        uint32_t id;
        st_vec_rec vr;
        rc = st_vec_store(&o, r->name, r->name_len, r->content, r->len,
                          b->vecs + r->vec_off * b->dim, b->dim, &r->attr, r->mask, &id,
                          repeat ? NULL : &vr);
        if (rc == 0 && !repeat)
            held_add(&held, b->st, o.c->id, &vr, &body);
        for (size_t j = 0; rc == 0 && j < r->nmeta; j++)
            rc = st_xattr_store(&o, id, r->meta_keys[j], r->meta_vals[j], r->meta_lens[j], 0);
    }
    if (rc == 0 && !repeat)
        rc = held_write(&o, &held, b->n);
    vc_buf_release(&held);
    vc_buf_release(&body);
    rc = st_op_end(&o, rc);
    st_batch_abort(b);
    return rc;
}
