/*
 * inode.c — the inode table (see inode.h for the model).
 *
 * Two chained hash indexes over the same nodes: by inode number (every
 * node) and by (parent, name) (linked nodes only).
 *
 * Invariants (checked by fsd_inodes_check)
 *   1. Every node is in the inode index exactly once; a node is in the name
 *      index iff node->linked, and at most one linked node has a given
 *      (parent, name).
 *   2. Fixed nodes (ino < FSD_INO_FIRST_DYNAMIC) are never freed.
 *   3. A dynamic node is freed exactly when nlookup == 0 and pins == 0.
 *   4. next_ino only grows; numbers are never reused.
 *   5. Bucket counts are powers of two and the load stays <= 1 after a
 *      resize.
 *
 * Lock: `lock` protects every field of the table and of every node. It is a
 * leaf: nothing else is locked or called while it is held.
 */
#include "inode.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

typedef struct fsd_node {
    fuse_ino_t ino;
    fuse_ino_t parent;
    fsd_kind kind;
    bool linked;
    uint64_t nlookup;
    uint32_t pins;
    char *name;
    struct fsd_node *ino_next;  /* chain in by_ino */
    struct fsd_node *name_next; /* chain in by_name, when linked */
} fsd_node;

struct fsd_inodes {
    pthread_mutex_t lock;
    fsd_node **by_ino;   /* protected by lock */
    fsd_node **by_name;  /* protected by lock */
    size_t nbuckets;     /* protected by lock; same for both */
    size_t count;        /* protected by lock */
    fuse_ino_t next_ino; /* protected by lock */
};

/* Mixes an inode number for the by_ino buckets. */
static uint64_t hash_ino(fuse_ino_t ino)
{
    uint64_t x = (uint64_t)ino;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* Hashes (parent, name) for the by_name buckets. */
static uint64_t hash_name(fuse_ino_t parent, const char *name)
{
    uint64_t h = 1469598103934665603ULL ^ hash_ino(parent);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The node of ino, or NULL. Caller holds the table lock. */
static fsd_node *find_ino(fsd_inodes *t, fuse_ino_t ino)
{
    for (fsd_node *n = t->by_ino[hash_ino(ino) & (t->nbuckets - 1)]; n; n = n->ino_next)
        if (n->ino == ino)
            return n;
    return NULL;
}

/* The linked node (parent, name), or NULL. Caller holds the table lock. */
static fsd_node *find_name(fsd_inodes *t, fuse_ino_t parent, const char *name)
{
    for (fsd_node *n = t->by_name[hash_name(parent, name) & (t->nbuckets - 1)]; n; n = n->name_next)
        if (n->parent == parent && strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

/* Links n under its (parent, name). Caller holds the table lock. */
static void name_insert(fsd_inodes *t, fsd_node *n)
{
    fsd_node **b = &t->by_name[hash_name(n->parent, n->name) & (t->nbuckets - 1)];
    n->name_next = *b;
    *b = n;
    n->linked = true;
}

/* Unlinks n from its name, if linked. Caller holds the table lock. */
static void name_remove(fsd_inodes *t, fsd_node *n)
{
    if (!n->linked)
        return;
    fsd_node **pp = &t->by_name[hash_name(n->parent, n->name) & (t->nbuckets - 1)];
    while (*pp != n)
        pp = &(*pp)->name_next;
    *pp = n->name_next;
    n->name_next = NULL;
    n->linked = false;
}

/* Rehashes both indexes into nb buckets. 0 or -ENOMEM (unchanged). */
static int resize(fsd_inodes *t, size_t nb)
{
    fsd_node **bi = vc_calloc(nb, sizeof *bi);
    fsd_node **bn = vc_calloc(nb, sizeof *bn);
    if (bi == NULL || bn == NULL) {
        free(bi);
        free(bn);
        return -ENOMEM;
    }
    for (size_t i = 0; i < t->nbuckets; i++) {
        fsd_node *n = t->by_ino[i];
        while (n) {
            fsd_node *next = n->ino_next;
            fsd_node **b = &bi[hash_ino(n->ino) & (nb - 1)];
            n->ino_next = *b;
            *b = n;
            if (n->linked) {
                fsd_node **c = &bn[hash_name(n->parent, n->name) & (nb - 1)];
                n->name_next = *c;
                *c = n;
            }
            n = next;
        }
    }
    free(t->by_ino);
    free(t->by_name);
    t->by_ino = bi;
    t->by_name = bn;
    t->nbuckets = nb;
    return 0;
}

/* Creates a node and indexes it; the caller holds the lock. */
static fsd_node *node_new(fsd_inodes *t, fuse_ino_t ino, fuse_ino_t parent, const char *name,
                          fsd_kind kind)
{
    if (t->count + 1 > t->nbuckets && t->nbuckets < ((size_t)1 << 40))
        (void)resize(t, t->nbuckets * 2); /* a failed resize only costs speed */
    fsd_node *n = vc_calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    n->name = vc_strdup(name);
    if (n->name == NULL) {
        free(n);
        return NULL;
    }
    n->ino = ino;
    n->parent = parent;
    n->kind = kind;
    fsd_node **b = &t->by_ino[hash_ino(ino) & (t->nbuckets - 1)];
    n->ino_next = *b;
    *b = n;
    name_insert(t, n);
    t->count++;
    return n;
}

/* Removes n from both indexes and frees it. Caller holds the table lock. */
static void node_free(fsd_inodes *t, fsd_node *n)
{
    name_remove(t, n);
    fsd_node **pp = &t->by_ino[hash_ino(n->ino) & (t->nbuckets - 1)];
    while (*pp != n)
        pp = &(*pp)->ino_next;
    *pp = n->ino_next;
    t->count--;
    free(n->name);
    free(n);
}

/* Frees n once nothing refers to it (no lookup, no pin; fixed nodes
 * never). */
static void maybe_free(fsd_inodes *t, fsd_node *n)
{
    if (n->ino >= FSD_INO_FIRST_DYNAMIC && n->nlookup == 0 && n->pins == 0)
        node_free(t, n);
}

int fsd_inodes_create(fsd_inodes **out)
{
    *out = NULL;
    fsd_inodes *t = vc_calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->nbuckets = 1024;
    t->by_ino = vc_calloc(t->nbuckets, sizeof *t->by_ino);
    t->by_name = vc_calloc(t->nbuckets, sizeof *t->by_name);
    if (t->by_ino == NULL || t->by_name == NULL || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->by_ino);
        free(t->by_name);
        free(t);
        return -ENOMEM;
    }
    t->next_ino = FSD_INO_FIRST_DYNAMIC;
    static const struct {
        fuse_ino_t ino, parent;
        const char *name;
        fsd_kind kind;
    } fixed[] = {
        {FSD_INO_ROOT, 0, "", FSD_K_ROOT},
        {FSD_INO_ADMIN, FSD_INO_ROOT, ".vecfs", FSD_K_ADMIN_DIR},
        {FSD_INO_HEALTH, FSD_INO_ADMIN, "health", FSD_K_ADMIN_HEALTH},
        {FSD_INO_METRICS, FSD_INO_ADMIN, "metrics", FSD_K_ADMIN_METRICS},
        {FSD_INO_STATS, FSD_INO_ADMIN, "stats", FSD_K_ADMIN_STATS},
#ifdef VECFS_TEST_HOOKS
        {FSD_INO_FAULT, FSD_INO_ADMIN, "fault", FSD_K_ADMIN_FAULT},
#endif
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (node_new(t, fixed[i].ino, fixed[i].parent, fixed[i].name, fixed[i].kind) == NULL) {
            fsd_inodes_free(t);
            return -ENOMEM;
        }
    }
    *out = t;
    return 0;
}

void fsd_inodes_free(fsd_inodes *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        fsd_node *n = t->by_ino[i];
        while (n) {
            fsd_node *next = n->ino_next;
            free(n->name);
            free(n);
            n = next;
        }
    }
    free(t->by_ino);
    free(t->by_name);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int fsd_inodes_link(fsd_inodes *t, fuse_ino_t parent, const char *name, fsd_kind kind,
                    fuse_ino_t *ino)
{
    if (strlen(name) > ST_NAME_MAX)
        return -ENAMETOOLONG;
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    if (find_ino(t, parent) == NULL) {
        rc = -ENOENT;
        goto out;
    }
    fsd_node *n = find_name(t, parent, name);
    if (n != NULL && n->kind != kind) {
        name_remove(t, n);
        maybe_free(t, n);
        n = NULL;
    }
    if (n == NULL) {
        n = node_new(t, t->next_ino, parent, name, kind);
        if (n == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        t->next_ino++;
    }
    if (n->ino >= FSD_INO_FIRST_DYNAMIC)
        n->nlookup++;
    *ino = n->ino;
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void fsd_inodes_forget(fsd_inodes *t, fuse_ino_t ino, uint64_t nl)
{
    pthread_mutex_lock(&t->lock);
    fsd_node *n = find_ino(t, ino);
    if (n != NULL && n->ino >= FSD_INO_FIRST_DYNAMIC) {
        n->nlookup = nl >= n->nlookup ? 0 : n->nlookup - nl;
        maybe_free(t, n);
    }
    pthread_mutex_unlock(&t->lock);
}

int fsd_inodes_ref(fsd_inodes *t, fuse_ino_t ino, fsd_ref *out)
{
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    fsd_node *n = find_ino(t, ino);
    if (n == NULL) {
        rc = -ENOENT;
        goto out;
    }
    out->ino = n->ino;
    out->kind = n->kind;
    out->parent = n->parent;
    out->linked = n->linked;
    out->coll_ino = 0;
    out->coll[0] = '\0';
    snprintf(out->name, sizeof out->name, "%s", n->name);
    /* Walk up at most three levels: file -> .query -> collection. */
    for (fsd_node *p = n; p != NULL && p->ino != FSD_INO_ROOT;
         p = p->parent ? find_ino(t, p->parent) : NULL) {
        if (p->kind == FSD_K_COLL) {
            out->coll_ino = p->ino;
            snprintf(out->coll, sizeof out->coll, "%s", p->name);
            if (!p->linked)
                out->linked = false;
            break;
        }
    }
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

fuse_ino_t fsd_inodes_find(fsd_inodes *t, fuse_ino_t parent, const char *name)
{
    pthread_mutex_lock(&t->lock);
    fsd_node *n = find_name(t, parent, name);
    fuse_ino_t ino = n ? n->ino : 0;
    pthread_mutex_unlock(&t->lock);
    return ino;
}

void fsd_inodes_unlink(fsd_inodes *t, fuse_ino_t parent, const char *name)
{
    pthread_mutex_lock(&t->lock);
    fsd_node *n = find_name(t, parent, name);
    if (n != NULL) {
        name_remove(t, n);
        maybe_free(t, n);
    }
    pthread_mutex_unlock(&t->lock);
}

int fsd_inodes_rename(fsd_inodes *t, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname)
{
    int rc = 0;
    char *copy = vc_strdup(newname);
    if (copy == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&t->lock);
    fsd_node *src = find_name(t, parent, name);
    fsd_node *dst = find_name(t, newparent, newname);
    if (dst != NULL && dst != src) {
        name_remove(t, dst);
        maybe_free(t, dst);
    }
    if (src != NULL) {
        name_remove(t, src);
        free(src->name);
        src->name = copy;
        copy = NULL;
        src->parent = newparent;
        name_insert(t, src);
    }
    pthread_mutex_unlock(&t->lock);
    free(copy);
    return rc;
}

int fsd_inodes_pin(fsd_inodes *t, fuse_ino_t ino)
{
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    fsd_node *n = find_ino(t, ino);
    if (n == NULL)
        rc = -ENOENT;
    else
        n->pins++;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void fsd_inodes_unpin(fsd_inodes *t, fuse_ino_t ino)
{
    pthread_mutex_lock(&t->lock);
    fsd_node *n = find_ino(t, ino);
    if (n != NULL && n->pins > 0) {
        n->pins--;
        maybe_free(t, n);
    }
    pthread_mutex_unlock(&t->lock);
}

size_t fsd_inodes_count(fsd_inodes *t)
{
    pthread_mutex_lock(&t->lock);
    size_t c = t->count;
    pthread_mutex_unlock(&t->lock);
    return c;
}

int fsd_inodes_check(fsd_inodes *t)
{
    int rc = 0;
    size_t seen = 0;
    pthread_mutex_lock(&t->lock);
    if (t->nbuckets == 0 || (t->nbuckets & (t->nbuckets - 1)) != 0)
        rc = -EILSEQ;
    for (size_t i = 0; i < t->nbuckets && rc == 0; i++) {
        for (fsd_node *n = t->by_ino[i]; n && rc == 0; n = n->ino_next) {
            seen++;
            if ((hash_ino(n->ino) & (t->nbuckets - 1)) != i || n->ino >= t->next_ino)
                rc = -EILSEQ;
            else if (n->linked && find_name(t, n->parent, n->name) != n)
                rc = -EILSEQ;
            else if (n->ino >= FSD_INO_FIRST_DYNAMIC && n->nlookup == 0 && n->pins == 0)
                rc = -EILSEQ;
        }
        for (fsd_node *n = t->by_name[i]; n && rc == 0; n = n->name_next)
            if (!n->linked || find_ino(t, n->ino) != n)
                rc = -EILSEQ;
    }
    if (rc == 0 && seen != t->count)
        rc = -EILSEQ;
    pthread_mutex_unlock(&t->lock);
    return rc;
}
