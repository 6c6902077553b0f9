/*
 * rados_orphans.c — blob objects that no entry names (docs/scale-out.md
 * §6). A writer uploads a large entry's blob before the append that names
 * it; killed in between, it leaves `vecfs.blob.*` objects that no node
 * will ever read. The checkpoint holder removes those older than
 * --rados-orphan-age after each checkpoint; `vecfs check --rados-*` lists
 * them as a warning.
 *
 * "Named" means: the blob's id is in a `b.<seq>` record of vecfs.head.
 * Every append of a BLOB entry sets its record in the same operation
 * (rados_client.c), and the record goes only after the trim passed the
 * entry and its objects were removed (rados_ckpt_node.c), so every entry
 * from trim to head names a recorded blob.
 *
 * Invariants
 *   1. The records are read before the objects are listed: a blob appended
 *      after that read is one whose objects are younger than the age bound
 *      (its writer uploaded it within its call), so it is not removed.
 *   2. Only objects older than the bound are removed, and the bound is
 *      longer than a write call (its upload through its append, each
 *      RADOS call bounded by --rados-timeout): an upload still in flight is
 *      never removed under its writer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "internal.h"

/* The ids every b.<seq> record names, sorted for bsearch. */
typedef struct named_ids {
    uint8_t (*ids)[ST_LOG_BLOB_ID];
    size_t n, cap;
} named_ids;

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, ST_LOG_BLOB_ID);
}

static int named_add(void *ctx, uint64_t seq, const st_rados_blob_ref *ref)
{
    (void)seq;
    named_ids *n = ctx;
    if (n->n == n->cap) {
        size_t cap = n->cap ? 2 * n->cap : 64;
        void *p = vc_realloc(n->ids, cap * ST_LOG_BLOB_ID);
        if (!p)
            return -ENOMEM;
        n->ids = p;
        n->cap = cap;
    }
    memcpy(n->ids[n->n++], ref->id, ST_LOG_BLOB_ID);
    return 0;
}

int st_orphans_walk(st_rados *r, st_orphan_fn fn, void *ctx)
{
    named_ids named = {0};
    int rc = st_rados_blob_refs(r, UINT64_MAX, named_add, &named);
    if (rc) {
        free(named.ids);
        return rc;
    }
    qsort(named.ids, named.n, ST_LOG_BLOB_ID, id_cmp);
    rados_list_ctx_t list;
    rc = rados_nobjects_list_open(r->io, &list);
    bool listing = rc == 0;
    while (rc == 0) {
        const char *oid;
        int next = rados_nobjects_list_next(list, &oid, NULL, NULL);
        if (next == -ENOENT)
            break; /* the end */
        if (next < 0) {
            rc = next;
            break;
        }
        uint8_t id[ST_LOG_BLOB_ID];
        if (st_blob_oid_parse(oid, id) != 0 ||
            bsearch(id, named.ids, named.n, ST_LOG_BLOB_ID, id_cmp))
            continue;
        uint64_t size;
        time_t mtime;
        int src = rados_stat(r->io, oid, &size, &mtime);
        if (src == -ENOENT)
            continue; /* removed since it was listed */
        rc = src ? src : fn(ctx, oid, mtime);
    }
    if (listing)
        rados_nobjects_list_close(list);
    free(named.ids);
    return rc;
}

typedef struct sweep {
    st_rados *r;
    time_t before;
    uint64_t removed;
} sweep;

static int sweep_one(void *ctx, const char *oid, time_t mtime)
{
    sweep *s = ctx;
    if (mtime >= s->before)
        return 0; /* maybe an upload in flight */
    int rc = rados_remove(s->r->io, oid);
    if (rc == 0)
        s->removed++;
    return rc == -ENOENT ? 0 : rc;
}

int st_orphans_sweep(st_rados *r, unsigned age_s, uint64_t *removed)
{
    sweep s = {.r = r, .before = time(NULL) - (time_t)age_s};
    int rc = st_orphans_walk(r, sweep_one, &s);
    *removed = s.removed;
    return rc;
}
