/*
 * coll.c — the collection table: the in-memory collection objects
 * (st_coll) of an open store, finding them by name or id, and their COLL
 * records in LMDB.
 *
 * States of an st_coll
 *   LIVE     in st->colls; found by name and id.
 *   DROPPED  c->dropped set (drop, or replaced by a rename) and moved to
 *            st->graveyard; callers that found it earlier still hold a
 *            valid pointer and see `dropped` under c->mu.
 *   FREED    st_coll_free at st_store_close, and only there.
 *
 * Invariants
 *   1. A collection's in-memory object exists iff its COLL record exists
 *      (modulo the graveyard of dropped ones, kept until close so pointers
 *      handed out earlier stay valid). c->count/bytes equal the record's.
 *   2. st->colls is sorted by id, and ids are never reused.
 *   3. A COLL record sits under the name key of its own name (a record
 *      found under another name is damage: -EIO).
 *
 * Lock: st->colls_lock (rwlock) protects st->colls, ncolls and the
 * graveyard: lookups read-lock it, create/drop/rename write-lock it after
 * their commit. It is only ever held briefly, never across a wait for
 * LMDB's writer lock, so lookups by readers never wait behind a writer.
 * c->mu, taken inside it, protects the fields marked in internal.h.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

st_coll *st_coll_find_locked(st_store *st, const char *name)
{
    for (size_t i = 0; i < st->ncolls; i++)
        if (strcmp(st->colls[i]->name, name) == 0)
            return st->colls[i];
    return NULL;
}

st_coll *st_coll_find(st_store *st, const char *name)
{
    pthread_rwlock_rdlock(&st->colls_lock);
    st_coll *found = st_coll_find_locked(st, name);
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

int st_coll_named(st_store *st, const char *name, st_coll **out)
{
    *out = NULL;
    if (!st)
        return -EINVAL;
    int rc = st_coll_name_arg(name, ST_NAME_FIND);
    if (rc)
        return rc;
    *out = st_coll_find(st, name);
    return *out ? 0 : -ENOENT;
}

int st_coll_lookup(st_store *st, const char *name, st_coll **out)
{
    int rc = st_coll_named(st, name, out);
    return rc == -ENAMETOOLONG ? -ENOENT : rc;
}

/* The key of collection `name` in COLLS. */
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

int st_coll_rec_del(st_store *st, MDB_txn *txn, const char *name)
{
    uint8_t key[ST_NAME_MAX];
    MDB_val k = {coll_key(st, name, key), key};
    return st_mdb_err(mdb_del(txn, st->db[ST_DB_COLLS], &k, NULL));
}

int st_coll_rec_read(st_store *st, const char *name, st_coll_rec *out)
{
    int rc = st_coll_name_arg(name, ST_NAME_FIND);
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

st_coll *st_coll_new(const st_coll_rec *r)
{
    st_coll *c = vc_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->id = r->coll_id;
    c->uuid = r->uuid;
    pthread_mutex_init(&c->wlock, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->apply_cv, NULL);
    pthread_mutex_init(&c->rebuild_mu, NULL);
    snprintf(c->name, sizeof(c->name), "%s", r->name);
    c->cfg = r->cfg;
    c->count = r->count;
    c->bytes = r->bytes;
    c->cur_gen = r->snap_gen + 1;
    st_now(&c->snap_time);
    /* An empty collection has every name already; others are filled by the
     * background thread. */
    st_names_init(&c->names, r->count == 0);
    st_qsample_init(&c->qsample, r->uuid);
    return c;
}

void st_coll_free(st_coll *c)
{
    if (!c)
        return;
    vf_hnsw_free(c->index);
    for (size_t i = 0; i < c->nretired; i++)
        vf_hnsw_free(c->retired[i]);
    free(c->retired);
    st_names_destroy(&c->names);
    st_qsample_destroy(&c->qsample);
    pthread_mutex_destroy(&c->wlock);
    pthread_cond_destroy(&c->apply_cv);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->rebuild_mu);
    free(c->touched);
    free(c);
}

int st_colls_reserve(st_store *st)
{
    if (st->ncolls < st->colls_cap)
        return 0;
    size_t cap = st->colls_cap ? st->colls_cap * 2 : 8;
    st_coll **n = vc_realloc(st->colls, cap * sizeof(*n));
    if (!n)
        return -ENOMEM;
    st->colls = n;
    st->colls_cap = cap;
    return 0;
}

int st_colls_add(st_store *st, st_coll *c)
{
    assert(c);
    int rc = st_colls_reserve(st);
    if (rc)
        return rc;
    size_t i = st->ncolls;
    while (i > 0 && st->colls[i - 1]->id > c->id) {
        st->colls[i] = st->colls[i - 1];
        i--;
    }
    st->colls[i] = c;
    st->ncolls++;
    return 0;
}

void st_colls_bury(st_store *st, st_coll *c)
{
    for (size_t i = 0; i < st->ncolls; i++)
        if (st->colls[i] == c) {
            memmove(&st->colls[i], &st->colls[i + 1], (st->ncolls - i - 1) * sizeof(c));
            st->ncolls--;
            break;
        }
    st_coll **g = vc_realloc(st->graveyard, (st->ngraveyard + 1) * sizeof(*g));
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
        st_mono_now(&c->first_change);
    c->changes += n;
    c->tune_changes += n;
    pthread_mutex_unlock(&c->mu);
}

st_coll **st_colls_copy(st_store *st, size_t *n)
{
    pthread_rwlock_rdlock(&st->colls_lock);
    *n = st->ncolls;
    st_coll **list = vc_malloc((*n ? *n : 1) * sizeof(*list));
    if (list && *n) /* st->colls is NULL before the first collection */
        memcpy(list, st->colls, *n * sizeof(*list));
    pthread_rwlock_unlock(&st->colls_lock);
    return list;
}
