/*
 * query_table.c — the in-memory table of query files (see query_table.h).
 *
 * Invariants
 *   1. At most one entry per (coll, uid, name); it lives in bucket
 *      hash(coll, uid, name) & (NBUCKETS - 1).
 *   2. entry->text is NULL exactly in state EMPTY; otherwise the entry owns
 *      one reference to it.
 *   3. An entry whose last_used is older than idle seconds may be freed by
 *      any put (the sweep); no pointer to an entry escapes the lock, so a
 *      sweep never frees something a reader holds (readers hold texts,
 *      which are reference counted).
 *   4. Each xattr value is at most FSD_QX_VALUE_MAX bytes.
 *   5. `bytes` is the sum of every entry's text length plus every amount
 *      charged with fsd_queries_charge and not yet uncharged; each uid's
 *      share is in `uids` (no node for a uid at 0). Neither exceeds its
 *      limit after a successful charge or put.
 *
 * Lock: `lock` protects every field of the table and its entries. It is a
 * leaf lock.
 */
#include "query_table.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "alloc.h"

#define NBUCKETS 1024u
#define FSD_QX_VALUE_MAX 65536u

typedef struct qxattr {
    struct qxattr *next;
    char *key;
    size_t len;
    char *value;
} qxattr;

typedef struct quid {
    struct quid *next;
    uid_t uid;
    uint64_t bytes;
} quid;

typedef struct qentry {
    struct qentry *next;
    char *coll;
    uid_t uid;
    char *name;
    fsd_qtext *text;
    int parse_err;
    uint64_t result_len;
    struct timespec mtime, ctime;
    time_t last_used; /* CLOCK_MONOTONIC seconds */
    qxattr *xattrs;
} qentry;

struct fsd_queries {
    pthread_mutex_t lock;
    qentry *buckets[NBUCKETS]; /* protected by lock */
    size_t count;              /* protected by lock */
    unsigned idle;             /* immutable */
    time_t last_sweep;         /* protected by lock */
    uint64_t bytes;            /* protected by lock: invariant 5 */
    quid *uids;                /* protected by lock: per-uid bytes */
};

fsd_qtext *fsd_qtext_new(const void *p, size_t n)
{
    fsd_qtext *t = vc_malloc(sizeof *t + n + 1);
    if (t == NULL)
        return NULL;
    atomic_init(&t->refs, 1);
    t->len = n;
    if (n > 0)
        memcpy(t->data, p, n);
    t->data[n] = '\0';
    return t;
}

fsd_qtext *fsd_qtext_ref(fsd_qtext *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void fsd_qtext_unref(fsd_qtext *t)
{
    if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1)
        free(t);
}

/* Seconds on the monotonic clock, for idle times. */
static time_t now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* The bucket of (coll, uid, name). */
static unsigned bucket_of(const char *coll, uid_t uid, const char *name)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)uid;
    for (const unsigned char *p = (const unsigned char *)coll; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ '/') * 1099511628211ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (unsigned)(h & (NBUCKETS - 1));
}

/* The link that points at the entry (coll, uid, name), or at the NULL
 * that ends its bucket. Caller holds the table lock. */
static qentry **find(fsd_queries *q, const char *coll, uid_t uid, const char *name)
{
    qentry **pp = &q->buckets[bucket_of(coll, uid, name)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->uid == uid && strcmp((*pp)->name, name) == 0 && strcmp((*pp)->coll, coll) == 0)
            return pp;
    return pp;
}

/* Adds n bytes to uid's share and the total. Caller holds the lock.
 * 0, -ENOSPC (all users' budget), -EDQUOT (this uid's), -ENOMEM. */
static int charge_locked(fsd_queries *q, uid_t uid, uint64_t n)
{
    if (n == 0)
        return 0;
    quid *u = q->uids;
    while (u != NULL && u->uid != uid)
        u = u->next;
    uint64_t have = u != NULL ? u->bytes : 0;
    if (n > FSD_QUERY_BYTES_MAX || q->bytes > FSD_QUERY_BYTES_MAX - n)
        return -ENOSPC;
    if (n > FSD_QUERY_UID_BYTES_MAX || have > FSD_QUERY_UID_BYTES_MAX - n)
        return -EDQUOT;
    if (u == NULL) {
        u = vc_calloc(1, sizeof *u);
        if (u == NULL)
            return -ENOMEM;
        u->uid = uid;
        u->next = q->uids;
        q->uids = u;
    }
    u->bytes += n;
    q->bytes += n;
    return 0;
}

/* Gives back n bytes charged to uid. Caller holds the lock. */
static void uncharge_locked(fsd_queries *q, uid_t uid, uint64_t n)
{
    if (n == 0)
        return;
    quid **pp = &q->uids;
    while (*pp != NULL && (*pp)->uid != uid)
        pp = &(*pp)->next;
    assert(*pp != NULL && (*pp)->bytes >= n && q->bytes >= n);
    if (*pp == NULL)
        return;
    (*pp)->bytes -= n;
    q->bytes -= n;
    if ((*pp)->bytes == 0) {
        quid *u = *pp;
        *pp = u->next;
        free(u);
    }
}

/* Frees a list of query-file xattrs. */
static void xattrs_free(qxattr *x)
{
    while (x) {
        qxattr *n = x->next;
        free(x->key);
        free(x->value);
        free(x);
        x = n;
    }
}

/* Frees an entry no longer in the table. */
static void entry_free(qentry *e)
{
    fsd_qtext_unref(e->text);
    xattrs_free(e->xattrs);
    free(e->coll);
    free(e->name);
    free(e);
}

/* A new EMPTY entry; NULL on ENOMEM. */
static qentry *entry_new(const char *coll, uid_t uid, const char *name)
{
    qentry *e = vc_calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->coll = vc_strdup(coll);
    e->name = vc_strdup(name);
    if (e->coll == NULL || e->name == NULL) {
        entry_free(e);
        return NULL;
    }
    e->uid = uid;
    clock_gettime(CLOCK_REALTIME, &e->mtime);
    e->ctime = e->mtime;
    e->last_used = now_mono();
    return e;
}

/* Unlinked entry e goes: its text's bytes are given back. Caller holds
 * the lock. */
static void entry_drop(fsd_queries *q, qentry *e)
{
    uncharge_locked(q, e->uid, e->text != NULL ? e->text->len : 0);
    entry_free(e);
    q->count--;
}

/* Frees idle entries; at most once a second. Caller holds the lock. */
static void sweep(fsd_queries *q)
{
    time_t now = now_mono();
    if (now == q->last_sweep)
        return;
    q->last_sweep = now;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        qentry **pp = &q->buckets[i];
        while (*pp) {
            qentry *e = *pp;
            if (now - e->last_used > (time_t)q->idle) {
                *pp = e->next;
                entry_drop(q, e);
            } else {
                pp = &e->next;
            }
        }
    }
}

int fsd_queries_create(unsigned idle_seconds, fsd_queries **out)
{
    *out = NULL;
    fsd_queries *q = vc_calloc(1, sizeof *q);
    if (q == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        free(q);
        return -ENOMEM;
    }
    q->idle = idle_seconds;
    *out = q;
    return 0;
}

void fsd_queries_free(fsd_queries *q)
{
    if (q == NULL)
        return;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        qentry *e = q->buckets[i];
        while (e) {
            qentry *n = e->next;
            entry_free(e);
            e = n;
        }
    }
    while (q->uids != NULL) {
        quid *u = q->uids;
        q->uids = u->next;
        free(u);
    }
    pthread_mutex_destroy(&q->lock);
    free(q);
}

/* Finds or creates; caller holds the lock. NULL on ENOMEM. */
static qentry *get_or_create(fsd_queries *q, const char *coll, uid_t uid, const char *name)
{
    qentry **pp = find(q, coll, uid, name);
    if (*pp != NULL)
        return *pp;
    qentry *e = entry_new(coll, uid, name);
    if (e == NULL)
        return NULL;
    *pp = e;
    q->count++;
    return e;
}

int fsd_queries_touch(fsd_queries *q, const char *coll, uid_t uid, const char *name, bool truncate)
{
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    sweep(q);
    qentry *e = get_or_create(q, coll, uid, name);
    if (e == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    e->last_used = now_mono();
    if (truncate && e->text != NULL) {
        uncharge_locked(q, uid, e->text->len);
        fsd_qtext_unref(e->text);
        e->text = NULL;
        e->parse_err = 0;
        e->result_len = 0;
        clock_gettime(CLOCK_REALTIME, &e->mtime);
        e->ctime = e->mtime;
    }
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int fsd_queries_put(fsd_queries *q, const char *coll, uid_t uid, const char *name, fsd_qtext *text,
                    int parse_err)
{
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    sweep(q);
    qentry *e = get_or_create(q, coll, uid, name);
    if (e == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    uint64_t old = e->text != NULL ? e->text->len : 0;
    if (text->len > old)
        rc = charge_locked(q, uid, text->len - old);
    else
        uncharge_locked(q, uid, old - text->len);
    if (rc < 0)
        goto out;
    fsd_qtext_unref(e->text);
    e->text = fsd_qtext_ref(text);
    e->parse_err = parse_err;
    e->result_len = 0;
    e->last_used = now_mono();
    clock_gettime(CLOCK_REALTIME, &e->mtime);
    e->ctime = e->mtime;
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void fsd_queries_set_result_len(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                                uint64_t len)
{
    pthread_mutex_lock(&q->lock);
    qentry *e = *find(q, coll, uid, name);
    if (e != NULL)
        e->result_len = len;
    pthread_mutex_unlock(&q->lock);
}

static const qxattr *xfind(const qentry *e, const char *key)
{
    for (const qxattr *x = e->xattrs; x; x = x->next)
        if (strcmp(x->key, key) == 0)
            return x;
    return NULL;
}

/* Parses a decimal uint32 attribute value (no sign, no junk). */
static int parse_u32(const char *v, size_t len, uint32_t *out)
{
    char tmp[16];
    while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len == 0 || len >= sizeof tmp)
        return -EINVAL;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    unsigned long x = strtoul(tmp, &end, 10);
    if (errno != 0 || *end != '\0' || tmp[0] < '0' || tmp[0] > '9' || x == 0 || x > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)x;
    return 0;
}

/* A NUL-terminated copy of e's xattr key into *out (NULL when absent).
 * 0 or -ENOMEM. */
static int xcopy(const qentry *e, const char *key, char **out)
{
    const qxattr *x = xfind(e, key);
    *out = NULL;
    if (x == NULL)
        return 0;
    *out = vc_malloc(x->len + 1);
    if (*out == NULL)
        return -ENOMEM;
    memcpy(*out, x->value, x->len);
    (*out)[x->len] = '\0';
    return 0;
}

int fsd_queries_get(fsd_queries *q, const char *coll, uid_t uid, const char *name, fsd_qinfo *out)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    qentry *e = *find(q, coll, uid, name);
    if (e == NULL) {
        rc = -ENOENT;
        goto out;
    }
    e->last_used = now_mono();
    out->text = e->text ? fsd_qtext_ref(e->text) : NULL;
    out->parse_err = e->parse_err;
    out->result_len = e->result_len;
    out->mtime = e->mtime;
    out->ctime = e->ctime;
    const qxattr *x;
    if ((x = xfind(e, "user.k")) != NULL)
        (void)parse_u32(x->value, x->len, &out->k);
    if ((x = xfind(e, "user.ef")) != NULL)
        (void)parse_u32(x->value, x->len, &out->ef);
    if (xcopy(e, "user.filter", &out->filter) < 0 ||
        xcopy(e, "user.max_distance", &out->max_distance) < 0 ||
        xcopy(e, "user.explain", &out->explain) < 0) {
        fsd_qinfo_release(out);
        rc = -ENOMEM;
    }
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void fsd_qinfo_release(fsd_qinfo *info)
{
    if (info == NULL)
        return;
    fsd_qtext_unref(info->text);
    free(info->filter);
    free(info->max_distance);
    free(info->explain);
    info->text = NULL;
    info->filter = NULL;
    info->max_distance = NULL;
    info->explain = NULL;
}

int fsd_queries_remove(fsd_queries *q, const char *coll, uid_t uid, const char *name)
{
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    qentry **pp = find(q, coll, uid, name);
    if (*pp == NULL) {
        rc = -ENOENT;
    } else {
        qentry *e = *pp;
        *pp = e->next;
        entry_drop(q, e);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int fsd_queries_rename(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                       const char *newname)
{
    int rc = 0;
    char *copy = vc_strdup(newname);
    if (copy == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&q->lock);
    qentry **pp = find(q, coll, uid, name);
    if (*pp == NULL) {
        rc = -ENOENT;
        goto out;
    }
    qentry *e = *pp;
    *pp = e->next;
    qentry **tp = find(q, coll, uid, newname);
    if (*tp != NULL) {
        qentry *t = *tp;
        *tp = t->next;
        entry_drop(q, t);
    }
    free(e->name);
    e->name = copy;
    copy = NULL;
    clock_gettime(CLOCK_REALTIME, &e->ctime);
    tp = find(q, coll, uid, e->name);
    e->next = NULL;
    *tp = e;
out:
    pthread_mutex_unlock(&q->lock);
    free(copy);
    return rc;
}

void fsd_queries_drop_collection(fsd_queries *q, const char *coll)
{
    pthread_mutex_lock(&q->lock);
    for (unsigned i = 0; i < NBUCKETS; i++) {
        qentry **pp = &q->buckets[i];
        while (*pp) {
            qentry *e = *pp;
            if (strcmp(e->coll, coll) == 0) {
                *pp = e->next;
                entry_drop(q, e);
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&q->lock);
}

int fsd_queries_xattr_set(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                          const char *key, const void *value, size_t len, int flags)
{
    if (len > FSD_QX_VALUE_MAX)
        return -E2BIG;
    uint32_t tmp;
    if ((strcmp(key, "user.k") == 0 || strcmp(key, "user.ef") == 0) &&
        parse_u32(value, len, &tmp) < 0)
        return -EINVAL;
    int rc = 0;
    char *v = vc_malloc(len + 1);
    char *k = vc_strdup(key);
    if (v == NULL || k == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (len > 0)
        memcpy(v, value, len);
    v[len] = '\0';
    pthread_mutex_lock(&q->lock);
    qentry *e = *find(q, coll, uid, name);
    if (e == NULL) {
        rc = -ENOENT;
        goto unlock;
    }
    qxattr *x = (qxattr *)xfind(e, key);
    if (x != NULL && (flags & XATTR_CREATE)) {
        rc = -EEXIST;
        goto unlock;
    }
    if (x == NULL && (flags & XATTR_REPLACE)) {
        rc = -ENODATA;
        goto unlock;
    }
    if (x == NULL) {
        x = vc_calloc(1, sizeof *x);
        if (x == NULL) {
            rc = -ENOMEM;
            goto unlock;
        }
        x->key = k;
        k = NULL;
        x->next = e->xattrs;
        e->xattrs = x;
    }
    free(x->value);
    x->value = v;
    x->len = len;
    v = NULL;
    e->last_used = now_mono();
    clock_gettime(CLOCK_REALTIME, &e->ctime);
unlock:
    pthread_mutex_unlock(&q->lock);
fail:
    free(v);
    free(k);
    return rc;
}

int fsd_queries_xattr_get(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                          const char *key, void *value, size_t size)
{
    int rc;
    pthread_mutex_lock(&q->lock);
    qentry *e = *find(q, coll, uid, name);
    const qxattr *x = e ? xfind(e, key) : NULL;
    if (e == NULL)
        rc = -ENOENT;
    else if (x == NULL)
        rc = -ENODATA;
    else if (size == 0)
        rc = (int)x->len;
    else if (size < x->len)
        rc = -ERANGE;
    else {
        memcpy(value, x->value, x->len);
        rc = (int)x->len;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int fsd_queries_xattr_list(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                           char *list, size_t size)
{
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    qentry *e = *find(q, coll, uid, name);
    if (e == NULL) {
        rc = -ENOENT;
        goto out;
    }
    size_t total = 0;
    for (const qxattr *x = e->xattrs; x; x = x->next)
        total += strlen(x->key) + 1;
    if (size == 0) {
        rc = (int)total;
        goto out;
    }
    if (size < total) {
        rc = -ERANGE;
        goto out;
    }
    size_t off = 0;
    for (const qxattr *x = e->xattrs; x; x = x->next) {
        size_t kl = strlen(x->key) + 1;
        memcpy(list + off, x->key, kl);
        off += kl;
    }
    rc = (int)total;
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int fsd_queries_xattr_remove(fsd_queries *q, const char *coll, uid_t uid, const char *name,
                             const char *key)
{
    int rc = -ENODATA;
    pthread_mutex_lock(&q->lock);
    qentry *e = *find(q, coll, uid, name);
    if (e == NULL) {
        rc = -ENOENT;
        goto out;
    }
    for (qxattr **pp = &e->xattrs; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            qxattr *x = *pp;
            *pp = x->next;
            x->next = NULL;
            xattrs_free(x);
            rc = 0;
            break;
        }
    }
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

size_t fsd_queries_count(fsd_queries *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

int fsd_queries_charge(fsd_queries *q, uid_t uid, uint64_t n)
{
    pthread_mutex_lock(&q->lock);
    int rc = charge_locked(q, uid, n);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void fsd_queries_uncharge(fsd_queries *q, uid_t uid, uint64_t n)
{
    pthread_mutex_lock(&q->lock);
    uncharge_locked(q, uid, n);
    pthread_mutex_unlock(&q->lock);
}

uint64_t fsd_queries_bytes(fsd_queries *q)
{
    pthread_mutex_lock(&q->lock);
    uint64_t n = q->bytes;
    pthread_mutex_unlock(&q->lock);
    return n;
}
