/*
 * ops_dir.c — the root, collections and the hidden directories: lookup,
 * getattr, mkdir/rmdir/rename of collections, readdir, statfs.
 *
 * Readdir offsets (stable across concurrent changes, SPEC §3.1):
 *   0                 start
 *   1, 2              after "." and ".."
 *   3                 after ".config" (collections only)
 *   FSD_OFF_STORE|x   after a store entry whose next_offset is x; the store
 *                     guarantees x < 2^62, strictly increasing, and that
 *                     resuming from x reports every entry after it exactly
 *                     once. Nothing is cached between readdir calls, so a
 *                     listing of millions of entries is a sequence of O(log n)
 *                     cursor seeks that never holds more than one reply
 *                     buffer.
 *
 * Invariants
 *   1. `.vecfs` is never listed in the root, `.query` and `.import` never in
 *      a collection; lookups of all three work.
 *   2. The root's owner and mode are DATADIR's (d->root, taken at start), so an
 *      operator controls who may create collections with chmod on DATADIR.
 *   3. Every handler ends in exactly one reply.
 */
#include "fsd.h"

#include "alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define FSD_OFF_STORE ((off_t)1 << 62)

/* Stat of the collection node r. 0, -ENOENT, or a store error. */
static int coll_stat(fsd *d, const fsd_ref *r, struct stat *st)
{
    st_attr a;
    int rc = st_coll_stat(d->store, r->coll, &a);
    if (rc < 0)
        return rc;
    fsd_attr_to_stat(&a, r->coll_ino, st);
    return 0;
}

/* Attributes of the hidden directories of a collection. */
static int special_dir_stat(fsd *d, const fsd_ref *r, struct stat *st)
{
    int rc = coll_stat(d, r, st);
    if (rc < 0)
        return rc;
    st->st_ino = r->ino;
    st->st_size = 0;
    st->st_blocks = 0;
    if (r->kind == FSD_K_QDIR)
        st->st_mode = S_IFDIR | 01777; /* anyone with read on the collection queries */
    return 0;
}

/* Attributes of .vecfs: read-only, made when the daemon started. */
static void admin_dir_stat(fsd *d, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = FSD_INO_ADMIN;
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
    st->st_atim = st->st_mtim = st->st_ctim = d->started;
    st->st_blksize = 4096;
}

void fsd_dir_getattr(fuse_req_t req, const fsd_ref *r)
{
    fsd *d = fsd_of(req);
    struct stat st;
    int rc = 0;
    switch (r->kind) {
    case FSD_K_ROOT:
        st = d->root;
        break;
    case FSD_K_ADMIN_DIR:
        admin_dir_stat(d, &st);
        break;
    case FSD_K_COLL:
        rc = coll_stat(d, r, &st);
        break;
    default:
        rc = special_dir_stat(d, r, &st);
        break;
    }
    fsd_reply_attr(req, FSD_OP_GETATTR, rc, &st, r->ino, FSD_TTL_DIR);
}

void fsd_dir_setattr(fuse_req_t req, const fsd_ref *r, const struct stat *in, int to_set,
                     struct fuse_file_info *fi)
{
    (void)fi;
    fsd *d = fsd_of(req);
    struct stat st;
    if (to_set & FUSE_SET_ATTR_SIZE) {
        fsd_reply_err(req, FSD_OP_SETATTR, EISDIR);
        return;
    }
    st_attr a;
    unsigned mask = fsd_setattr_mask(in, to_set, &a);
    int rc = mask ? st_coll_setattr(d->store, r->coll, &a, mask) : 0;
    if (rc == 0)
        rc = coll_stat(d, r, &st);
    fsd_reply_attr(req, FSD_OP_SETATTR, rc, &st, r->ino, FSD_TTL_DIR);
}

/* Looks up a vector name in a collection: its node into *ino (one
 * lookup reference taken) and its attributes into *st. */
static int vec_lookup(fsd *d, const fsd_ref *coll, const char *name, fuse_ino_t *ino,
                      struct stat *st)
{
    fuse_ino_t known = fsd_inodes_find(d->inodes, coll->ino, name);
    int rc = fsd_vec_stat(d, known, coll->coll, name, st);
    if (rc == 0)
        rc = fsd_inodes_link(d->inodes, coll->ino, name, FSD_K_VEC, ino);
    return rc;
}

void fsd_dir_lookup(fuse_req_t req, const fsd_ref *p, const char *name)
{
    fsd *d = fsd_of(req);
    struct stat st;
    fuse_ino_t ino = 0;
    int rc = 0;
    double ttl = FSD_TTL_DIR;
    fsd_ref child;
    switch (p->kind) {
    case FSD_K_ROOT:
        if (strcmp(name, ".vecfs") == 0) {
            admin_dir_stat(d, &st);
            ino = FSD_INO_ADMIN;
            break;
        }
        if (name[0] == '.' || strlen(name) > ST_COLL_NAME_MAX) {
            rc = -ENOENT;
            break;
        }
        memset(&child, 0, sizeof child);
        snprintf(child.coll, sizeof child.coll, "%s", name);
        rc = coll_stat(d, &child, &st);
        if (rc == 0)
            rc = fsd_inodes_link(d->inodes, FSD_INO_ROOT, name, FSD_K_COLL, &ino);
        break;
    case FSD_K_ADMIN_DIR: {
        static const struct {
            const char *name;
            fsd_kind kind;
            fuse_ino_t ino;
        } files[] = {
            {"health", FSD_K_ADMIN_HEALTH, FSD_INO_HEALTH},
            {"metrics", FSD_K_ADMIN_METRICS, FSD_INO_METRICS},
            {"stats", FSD_K_ADMIN_STATS, FSD_INO_STATS},
#ifdef VECFS_TEST_HOOKS
            {"fault", FSD_K_ADMIN_FAULT, FSD_INO_FAULT}, /* looked up, never listed */
#endif
        };
        rc = -ENOENT;
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            if (strcmp(name, files[i].name) == 0) {
                ino = files[i].ino;
                rc = fsd_admin_stat(d, files[i].kind, ino, &st);
                ttl = FSD_TTL_FILE;
                break;
            }
        }
        break;
    }
    case FSD_K_COLL:
        if (strcmp(name, ".config") == 0) {
            if (!fsd_config_visible(d, p->coll)) {
                rc = -ENOENT;
                break;
            }
            rc = fsd_inodes_link(d->inodes, p->ino, name, FSD_K_CONFIG, &ino);
            if (rc == 0)
                rc = fsd_config_stat(d, p, ino, &st);
            ttl = FSD_TTL_FILE;
        } else if (strcmp(name, ".query") == 0 || strcmp(name, ".import") == 0) {
            fsd_kind k = name[1] == 'q' ? FSD_K_QDIR : FSD_K_IDIR;
            rc = fsd_inodes_link(d->inodes, p->ino, name, k, &ino);
            if (rc == 0) {
                child = *p;
                child.kind = k;
                child.ino = ino;
                rc = special_dir_stat(d, &child, &st);
            }
        } else {
            rc = vec_lookup(d, p, name, &ino, &st);
            ttl = FSD_TTL_FILE;
            break;
        }
        if (rc < 0 && ino != 0)
            fsd_inodes_forget(d->inodes, ino, 1);
        break;
    default:
        rc = -ENOENT;
        break;
    }
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_LOOKUP, rc);
        return;
    }
    fsd_reply_entry(req, ino, &st, ttl);
}

void fsd_dir_mkdir(fuse_req_t req, const fsd_ref *p, const char *name, mode_t mode)
{
    (void)p;
    fsd *d = fsd_of(req);
    fsd_caller c;
    fsd_caller_get(req, &c);
    if (strlen(name) > ST_COLL_NAME_MAX) {
        fsd_reply_err(req, FSD_OP_MKDIR, ENAMETOOLONG);
        return;
    }
    if (name[0] == '.') {
        fsd_reply_err(req, FSD_OP_MKDIR, strcmp(name, ".vecfs") == 0 ? EEXIST : EINVAL);
        return;
    }
    st_attr a;
    memset(&a, 0, sizeof a);
    a.mode = S_IFDIR | (mode & 07777);
    a.uid = c.uid;
    a.gid = c.gid;
    /* The node first: once the store has made the collection, mkdir must
     * not fail (an ENOMEM after it would leave a directory that mkdir said
     * it did not make). */
    fuse_ino_t ino = 0;
    int rc = fsd_inodes_link(d->inodes, FSD_INO_ROOT, name, FSD_K_COLL, &ino);
    if (rc == 0)
        rc = st_coll_create(d->store, name, &a, NULL);
    struct stat st;
    fsd_ref child;
    memset(&child, 0, sizeof child);
    snprintf(child.coll, sizeof child.coll, "%s", name);
    if (rc == 0)
        rc = coll_stat(d, &child, &st);
    if (rc < 0) {
        if (ino != 0)
            fsd_inodes_forget(d->inodes, ino, 1);
        fsd_reply_err(req, FSD_OP_MKDIR, rc);
        return;
    }
    fsd_reply_entry(req, ino, &st, FSD_TTL_DIR);
}

void fsd_dir_rmdir(fuse_req_t req, const fsd_ref *p, const char *name)
{
    (void)p;
    fsd *d = fsd_of(req);
    if (strcmp(name, ".vecfs") == 0) {
        fsd_reply_err(req, FSD_OP_RMDIR, EPERM);
        return;
    }
    int rc = st_coll_drop(d->store, name);
    if (rc == -EINVAL)
        rc = -ENOENT;
    if (rc == 0) {
        fsd_inodes_unlink(d->inodes, FSD_INO_ROOT, name);
        fsd_queries_drop_collection(d->queries, name);
    }
    fsd_reply_err(req, FSD_OP_RMDIR, rc);
}

void fsd_dir_rename(fuse_req_t req, const fsd_ref *p, const char *name, const fsd_ref *np,
                    const char *newname, unsigned flags)
{
    (void)p;
    (void)np;
    fsd *d = fsd_of(req);
    if (strcmp(name, ".vecfs") == 0 || strcmp(newname, ".vecfs") == 0) {
        fsd_reply_err(req, FSD_OP_RENAME, EPERM);
        return;
    }
    int rc = st_coll_rename(d->store, name, newname,
                            (flags & RENAME_NOREPLACE) ? ST_RENAME_NOREPLACE : 0);
    if (rc == 0 && strcmp(name, newname) != 0) {
        rc = fsd_inodes_rename(d->inodes, FSD_INO_ROOT, name, FSD_INO_ROOT, newname);
        fsd_queries_drop_collection(d->queries, name);
        fsd_queries_drop_collection(d->queries, newname);
        rc = 0; /* the store renamed; a table failure only costs a stale node */
    }
    fsd_reply_err(req, FSD_OP_RENAME, rc);
}

/* ------------------------------------------------------------------ */
/* Listing                                                              */
/* ------------------------------------------------------------------ */

void fsd_dir_opendir(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi)
{
    fsd *d = fsd_of(req);
    if (r->kind == FSD_K_COLL) {
        st_attr a;
        int rc = st_coll_stat(d->store, r->coll, &a);
        if (rc < 0) {
            fsd_reply_err(req, FSD_OP_OPENDIR, rc);
            return;
        }
    }
    fi->fh = 0;
    fi->cache_readdir = 0;
    fuse_reply_open(req, fi);
}

typedef struct list_ctx {
    fuse_req_t req;
    char *buf;
    size_t size;
    size_t pos;
    bool full;
} list_ctx;

/* Adds one entry; false when the buffer is full (the entry is not added). */
static bool add_entry(list_ctx *c, const char *name, uint64_t ino, mode_t type, off_t next)
{
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_ino = ino ? ino : 16;
    st.st_mode = type;
    size_t need = fuse_add_direntry(c->req, c->buf + c->pos, c->size - c->pos, name, &st, next);
    if (need > c->size - c->pos) {
        c->full = true;
        return false;
    }
    c->pos += need;
    return true;
}

/* st_coll_list / st_vec_list callback: one entry per store row; 1
 * stops the listing when the reply buffer is full. */
static int list_cb(void *ctx, const char *name, const st_attr *attr, uint64_t next_offset)
{
    list_ctx *c = ctx;
    if (next_offset >= (uint64_t)FSD_OFF_STORE)
        return 1; /* out of the documented range: stop rather than corrupt offsets */
    uint64_t ino = attr->ino;
    if (S_ISDIR(attr->mode))
        ino = attr->ino + 1; /* collection ids are shifted; keep d_ino non-zero */
    return add_entry(c, name, ino, attr->mode & S_IFMT, FSD_OFF_STORE | (off_t)next_offset) ? 0 : 1;
}

void fsd_dir_readdir(fuse_req_t req, const fsd_ref *r, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)fi;
    fsd *d = fsd_of(req);
    if (size > (1u << 20))
        size = 1u << 20;
    list_ctx c = {.req = req, .size = size, .pos = 0, .full = false};
    c.buf = vc_malloc(size);
    if (c.buf == NULL) {
        fsd_reply_err(req, FSD_OP_READDIR, ENOMEM);
        return;
    }
    int rc = 0;
    if (off < 1 && !add_entry(&c, ".", r->ino, S_IFDIR, 1))
        goto reply;
    if (off < 2 && !add_entry(&c, "..", r->parent ? r->parent : FSD_INO_ROOT, S_IFDIR, 2))
        goto reply;
    switch (r->kind) {
    case FSD_K_ROOT:
        rc = st_coll_list(d->store, off >= FSD_OFF_STORE ? (uint64_t)(off & ~FSD_OFF_STORE) : 0,
                          list_cb, &c);
        break;
    case FSD_K_COLL:
        if (off < 3 && fsd_config_visible(d, r->coll) && !add_entry(&c, ".config", 0, S_IFREG, 3))
            goto reply;
        rc = st_vec_list(d->store, r->coll,
                         off >= FSD_OFF_STORE ? (uint64_t)(off & ~FSD_OFF_STORE) : 0, list_cb, &c);
        break;
    case FSD_K_ADMIN_DIR: {
        static const char *const names[] = {"health", "metrics", "stats"};
        for (int i = 0; i < 3; i++)
            if (off < 3 + i &&
                !add_entry(&c, names[i], FSD_INO_HEALTH + (fuse_ino_t)i, S_IFREG, 4 + i))
                goto reply;
        break;
    }
    default:
        break;
    }
reply:
    if (rc < 0 && c.pos == 0) {
        free(c.buf);
        fsd_reply_err(req, FSD_OP_READDIR, rc);
        return;
    }
    fuse_reply_buf(req, c.buf, c.pos);
    free(c.buf);
}

void fsd_dir_statfs(fuse_req_t req)
{
    fsd *d = fsd_of(req);
    st_metrics m;
    int rc = st_store_metrics(d->store, &m);
    if (rc < 0) {
        fsd_reply_err(req, FSD_OP_STATFS, rc);
        return;
    }
    struct statvfs sv;
    memset(&sv, 0, sizeof sv);
    const uint64_t bs = 4096;
    uint64_t total = m.max_bytes > m.store_bytes ? m.max_bytes : m.store_bytes;
    uint64_t freeb = total - m.store_bytes;
    sv.f_bsize = bs;
    sv.f_frsize = bs;
    sv.f_blocks = (fsblkcnt_t)(total / bs);
    sv.f_bfree = (fsblkcnt_t)(freeb / bs);
    sv.f_bavail = sv.f_bfree;
    /* Files: every vector costs at least one page-sized record in the worst
     * case, so free space / page bounds how many more fit. */
    sv.f_files = (fsfilcnt_t)(m.vectors + m.collections + freeb / bs);
    sv.f_ffree = (fsfilcnt_t)(freeb / bs);
    sv.f_favail = sv.f_ffree;
    sv.f_namemax = ST_NAME_MAX;
    if (d->read_only)
        sv.f_flag |= ST_RDONLY;
    fuse_reply_statfs(req, &sv);
}
