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
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define UNBOUNDED_MAP ((uint64_t)1 << 40) /* 1 TiB of address space, sparse on disk */
#define MIN_MAP ((uint64_t)1 << 20)

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

int st_space_check(st_store *st, MDB_txn *txn, uint64_t need)
{
    (void)txn;
    if (!st->opt.max_size)
        return 0;
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &ms);
    uint64_t psize = ms.ms_psize;
    uint64_t used = (uint64_t)(info.me_last_pgno + 1) * psize;
    /* Copy-on-write touches a few pages per tree level besides the data. */
    need += 16 * psize;
    if (used + need <= st->opt.max_size)
        return 0;
    /* Near the bound: subtract the pages on LMDB's free list, read through
     * a read txn (LMDB refuses a cursor on it in a write txn; the list as of
     * the last commit is close enough for a bound). */
    MDB_txn *rtxn;
    MDB_cursor *cur;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &rtxn) != 0)
        return -ENOSPC;
    if (mdb_cursor_open(rtxn, 0, &cur) != 0) {
        mdb_txn_abort(rtxn);
        return -ENOSPC;
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
    uint64_t in_use = used > free_pages * psize ? used - free_pages * psize : 0;
    return in_use + need <= st->opt.max_size ? 0 : -ENOSPC;
}
