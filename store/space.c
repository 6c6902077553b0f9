/*
 * space.c — the size bound of a store (st_options.max_size): how large an
 * LMDB map to ask for, and whether a write still fits.
 *
 * Invariants
 *   1. With a bound, the map is the bound plus a reserve (1/16, at least
 *      1 MiB): st_space_check keeps inserts below the bound, so deletes and
 *      renames still find pages when the store is full.
 *   2. Without a bound the map is 1 TiB of address space (sparse on disk);
 *      open halves it while the kernel refuses that much.
 *   3. st_space_check never blocks on writers: it reads LMDB's free list
 *      through a read transaction of its own.
 *   4. st_space_problem reports the state now, not a past failure: its line
 *      is gone as soon as space returns (a delete, a raised bound, freed
 *      disk), with no remount.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "internal.h"

#define UNBOUNDED_MAP ((uint64_t)1 << 40) /* 1 TiB of address space, sparse on disk */
#define MIN_MAP ((uint64_t)1 << 20)
/* A write of one small vector: under this much room the store is full. */
#define SPACE_SMALLEST_WRITE 4096u
/* Free bytes on DATADIR's filesystem under which an unbounded store
 * reports itself full: a commit writes a few pages per tree it changes
 * plus the meta page, and a snapshot needs more. */
#define SPACE_DISK_LOW ((uint64_t)1 << 20)

/* The room above max_size that LMDB gets (invariant 1). */
static uint64_t space_reserve(uint64_t max_size)
{
    uint64_t r = max_size / 16;
    return r < ((uint64_t)1 << 20) ? ((uint64_t)1 << 20) : r;
}

uint64_t st_space_map_size(uint64_t max_size)
{
    uint64_t map = max_size ? max_size + space_reserve(max_size) : UNBOUNDED_MAP;
    return map < MIN_MAP ? MIN_MAP : map;
}

/* Pages on LMDB's free list, read through a read txn (LMDB refuses a
 * cursor on it in a write txn; the list as of the last commit is close
 * enough for a bound). UINT64_MAX when it cannot be read. */
static uint64_t free_list_pages(st_store *st)
{
    MDB_txn *rtxn;
    MDB_cursor *cur;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &rtxn) != 0)
        return UINT64_MAX;
    if (mdb_cursor_open(rtxn, 0, &cur) != 0) {
        mdb_txn_abort(rtxn);
        return UINT64_MAX;
    }
    MDB_val k, v;
    uint64_t free_pages = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (v.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, v.mv_data, sizeof(n));
            free_pages += n;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(rtxn);
    return free_pages;
}

/* Whether `need` more bytes fit under max_size; *in_use gets the bytes
 * held when it had to look at the free list (else the pages up to the
 * last one). */
static bool fits(st_store *st, uint64_t need, uint64_t *in_use)
{
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &ms);
    uint64_t psize = ms.ms_psize;
    uint64_t used = (uint64_t)(info.me_last_pgno + 1) * psize;
    /* Copy-on-write touches a few pages per tree level besides the data. */
    need += 16 * psize;
    *in_use = used;
    if (used + need <= st->opt.max_size)
        return true;
    /* Near the bound: pages on the free list are room too. */
    uint64_t free_pages = free_list_pages(st);
    if (free_pages == UINT64_MAX)
        return false;
    *in_use = used > free_pages * psize ? used - free_pages * psize : 0;
    return *in_use + need <= st->opt.max_size;
}

int st_space_check(st_store *st, MDB_txn *txn, uint64_t need)
{
    (void)txn;
    uint64_t in_use;
    if (!st->opt.max_size || fits(st, need, &in_use))
        return 0;
    return -ENOSPC;
}

void st_space_problem(st_store *st, char *line, size_t cap)
{
    line[0] = '\0';
    uint64_t in_use;
    if (st->opt.max_size) {
        if (!fits(st, SPACE_SMALLEST_WRITE, &in_use))
            snprintf(line, cap,
                     "store full: %llu of %llu bytes (--max-size) in use; writes fail with ENOSPC "
                     "until vectors are deleted or the bound is raised\n",
                     (unsigned long long)in_use, (unsigned long long)st->opt.max_size);
        return;
    }
    struct statvfs vfs;
    if (statvfs(st->dir, &vfs) != 0)
        return;
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (avail < SPACE_DISK_LOW)
        snprintf(line, cap,
                 "disk full: %llu bytes free on the filesystem of %s; writes that need new "
                 "pages fail with ENOSPC until space is freed\n",
                 (unsigned long long)avail, st->dir);
}
