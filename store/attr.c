/*
 * attr.c — st_attr, the stat of a collection or a vector: made from the
 * COLL and VEC records, and a setattr mask applied to a record.
 *
 * Invariants
 *   1. Inode numbers are stable while the object exists and survive
 *      renames and restarts: collection = id << 32, vector =
 *      (collection id << 32) | (engine id + 1), so no vector shares its
 *      collection's number.
 *   2. Only permission bits (07777) are ever taken from a caller's mode;
 *      the file type comes from what the object is.
 */
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

void st_attr_from_vec(uint32_t coll, const st_vec_rec *r, st_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->mode = (r->mode & 07777) | S_IFREG;
    a->uid = r->uid;
    a->gid = r->gid;
    a->atime = r->atime;
    a->mtime = r->mtime;
    a->ctime = r->ctime;
    a->size = r->size;
    a->id = r->id;
    a->ino = ((uint64_t)coll << 32) | ((uint64_t)r->id + 1);
}

void st_attr_from_coll(const st_coll_rec *r, st_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->mode = (r->mode & 07777) | S_IFDIR;
    a->uid = r->uid;
    a->gid = r->gid;
    a->atime = r->atime;
    a->mtime = r->mtime;
    a->ctime = r->ctime;
    a->size = r->count;
    a->count = r->count;
    a->bytes = r->bytes;
    a->id = r->coll_id;
    a->ino = (uint64_t)r->coll_id << 32;
}

bool st_attr_apply(const st_attr *a, unsigned mask, const st_attr_ref *r)
{
    if (mask & ST_SET_MODE)
        *r->mode = a->mode & 07777;
    if (mask & ST_SET_UID)
        *r->uid = a->uid;
    if (mask & ST_SET_GID)
        *r->gid = a->gid;
    if (mask & ST_SET_ATIME)
        *r->atime = a->atime;
    if (mask & ST_SET_MTIME)
        *r->mtime = a->mtime;
    if (mask & ST_SET_CTIME)
        *r->ctime = a->ctime;
    return (mask & ST_SET_CTIME) != 0;
}
