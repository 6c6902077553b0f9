/*
 * sys.c — allocation, file I/O and the LMDB reads of check go through
 * these thin wrappers, so a test can make the N-th call fail and watch the
 * error path run (STYLE rule 9). Allocation is common/alloc.h's (vc_malloc
 * and friends, whose one counter also reaches the vc_bufs; st_fault_set
 * arms it for ST_FAULT_ALLOC); I/O and LMDB reads keep their counters here.
 *
 * Invariants
 *   1. With no fault armed every wrapper behaves exactly like the call it
 *      wraps; I/O errors come back as negative errno (never via errno),
 *      LMDB's as its own return codes.
 *   2. An armed fault fires once, at the N-th call of its class counted
 *      from st_fault_set, in whichever thread makes that call, then disarms.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "internal.h"

static _Atomic uint64_t fault_at[ST_FAULT_COUNT];

uint64_t st_fault_set(st_fault f, uint64_t n)
{
    if (f == ST_FAULT_ALLOC)
        return vc_alloc_fail_at(n);
    if ((unsigned)f >= ST_FAULT_COUNT)
        return 0;
    return atomic_exchange(&fault_at[f], n);
}

/* True when this call of class f is the armed one. */
static bool fault_fire(st_fault f)
{
    uint64_t cur = atomic_load_explicit(&fault_at[f], memory_order_relaxed);
    while (cur != 0) {
        if (atomic_compare_exchange_weak(&fault_at[f], &cur, cur - 1))
            return cur == 1;
    }
    return false;
}

void *st_memdup(const void *p, size_t n)
{
    void *copy = vc_malloc(n);
    if (copy && n)
        memcpy(copy, p, n);
    return copy;
}

int st_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val)
{
    if (fault_fire(ST_FAULT_MDB))
        return MDB_CORRUPTED;
    return mdb_get(txn, dbi, key, val);
}

int st_mdb_cursor_get(MDB_cursor *cur, MDB_val *key, MDB_val *val, MDB_cursor_op op)
{
    if (fault_fire(ST_FAULT_MDB))
        return MDB_CORRUPTED;
    return mdb_cursor_get(cur, key, val, op);
}

int st_io_open(const char *path, int flags, mode_t mode)
{
    if (fault_fire(ST_FAULT_IO))
        return -EIO;
    int fd = open(path, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

int st_io_write(int fd, const void *p, size_t n)
{
    if (fault_fire(ST_FAULT_IO))
        return -ENOSPC;
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int st_io_fsync(int fd)
{
    if (fault_fire(ST_FAULT_IO))
        return -EIO;
    return fsync(fd) == 0 ? 0 : -errno;
}

int st_io_rename_durable(const char *from, const char *to, const char *dir)
{
    if (fault_fire(ST_FAULT_IO))
        return -EIO;
    if (rename(from, to) != 0)
        return -errno;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}
