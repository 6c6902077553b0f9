/*
 * inode.h — the daemon's inode table: FUSE inode numbers <-> tree entries.
 *
 * vecfs uses the low-level FUSE API, so the daemon chooses inode numbers.
 * A node names an entry by (parent inode, name); the collection a node
 * belongs to is found by walking up to its FSD_K_COLL ancestor, so renaming
 * a collection renames one node and every vector under it follows.
 *
 * Fixed inodes: 1 the root, 2 `.vecfs`, 3..5 its files, 6 `.vecfs/fault` in
 * test builds only (VECFS_TEST_HOOKS, ops_admin.c). Other numbers are
 * handed out in increasing order and never reused while the daemon runs,
 * so a stale kernel reference can never reach a different entry.
 *
 * Lifetime: a node is created by fsd_inodes_link() when the daemon replies
 * to lookup/mkdir/create with it (nlookup + 1), and freed when the kernel's
 * forget brings nlookup to 0 and no open handle holds it (FSD_K_VEC nodes
 * with an open vector file keep a pin). Unlinking or renaming over a name
 * only detaches the node from the name index ("unlinked"); the node lives
 * on until it is forgotten.
 *
 * Thread safety: every function takes the table's mutex; none calls out
 * while holding it. Lock order: the table mutex is a leaf lock — callers may
 * hold their own locks when calling in, never the other way round.
 */
#ifndef VECFS_FS_INODE_H
#define VECFS_FS_INODE_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

typedef enum fsd_kind {
    FSD_K_ROOT = 1,
    FSD_K_ADMIN_DIR,
    FSD_K_ADMIN_HEALTH,
    FSD_K_ADMIN_METRICS,
    FSD_K_ADMIN_STATS,
    FSD_K_COLL,
    FSD_K_CONFIG,
    FSD_K_VEC,
    FSD_K_QDIR,
    FSD_K_QFILE,
    FSD_K_IDIR,
    FSD_K_IFILE,
    FSD_K_ADMIN_FAULT, /* test builds only (VECFS_TEST_HOOKS) */
} fsd_kind;

#define FSD_INO_ROOT ((fuse_ino_t)1)
#define FSD_INO_ADMIN ((fuse_ino_t)2)
#define FSD_INO_HEALTH ((fuse_ino_t)3)
#define FSD_INO_METRICS ((fuse_ino_t)4)
#define FSD_INO_STATS ((fuse_ino_t)5)
#define FSD_INO_FAULT ((fuse_ino_t)6) /* test builds only */
#define FSD_INO_FIRST_DYNAMIC ((fuse_ino_t)16)

/* A copy of what a node names, taken under the table lock so the caller
 * can use it without holding anything. */
typedef struct fsd_ref {
    fuse_ino_t ino;
    fsd_kind kind;
    fuse_ino_t parent;
    fuse_ino_t coll_ino;             /* 0 outside collections */
    bool linked;                     /* false once unlinked/renamed over */
    char coll[ST_COLL_NAME_MAX + 1]; /* "" outside collections */
    char name[ST_NAME_MAX + 1];      /* the entry's own name */
} fsd_ref;

typedef struct fsd_inodes fsd_inodes;

/* Creates the table with the fixed nodes. 0 or -ENOMEM; *out NULL on error. */
int fsd_inodes_create(fsd_inodes **out);

/* Frees the table and every node. NULL is a no-op. No call may be running. */
void fsd_inodes_free(fsd_inodes *t);

/* Finds or creates the node (parent, name) of `kind` and adds one lookup
 * reference. If a linked node of a different kind holds the name it is
 * unlinked first. *ino receives its number.
 * Returns 0, -ENOENT (parent unknown), -ENAMETOOLONG, -ENOMEM. */
int fsd_inodes_link(fsd_inodes *t, fuse_ino_t parent, const char *name, fsd_kind kind,
                    fuse_ino_t *ino);

/* Drops n lookup references (FUSE forget). Unknown inodes are ignored. */
void fsd_inodes_forget(fsd_inodes *t, fuse_ino_t ino, uint64_t n);

/* Copies what ino names into *out. 0 or -ENOENT (unknown or forgotten). */
int fsd_inodes_ref(fsd_inodes *t, fuse_ino_t ino, fsd_ref *out);

/* The linked node (parent, name), or 0. */
fuse_ino_t fsd_inodes_find(fsd_inodes *t, fuse_ino_t parent, const char *name);

/* Detaches the linked node (parent, name) from its name, if any. */
void fsd_inodes_unlink(fsd_inodes *t, fuse_ino_t parent, const char *name);

/* Moves the linked node (parent, name) to (newparent, newname), unlinking
 * any node already there. 0, -ENOMEM (nothing changed). A missing source is
 * not an error (the store is the authority; the table only follows). */
int fsd_inodes_rename(fsd_inodes *t, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname);

/* Pins/unpins a node so forget does not free it while a handle uses it.
 * pin returns 0 or -ENOENT. */
int fsd_inodes_pin(fsd_inodes *t, fuse_ino_t ino);
void fsd_inodes_unpin(fsd_inodes *t, fuse_ino_t ino);

/* Number of nodes (for stats and tests). */
size_t fsd_inodes_count(fsd_inodes *t);

/* Checks the table's invariants; 0 or -EILSEQ. For tests. */
int fsd_inodes_check(fsd_inodes *t);

#endif /* VECFS_FS_INODE_H */
