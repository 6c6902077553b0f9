/*
 * log_route.c — where a write goes in the RADOS mode: every public write
 * of the store asks st_log_route first. In the embedded mode (no hooks)
 * the answer is "here" (ST_LOG_LOCAL) and the store writes as it always
 * did. In the RADOS mode the hooks (rados_node.c) check the change,
 * append it to the pool's log and apply it; the apply comes back through
 * the same public write on the thread that applies, which st_log_route
 * sends on locally.
 *
 * The applying thread also pins the store's clock (st_now) to the entry's
 * time and names the entry's seq, which st_txn_commit writes in the same
 * LMDB transaction as the change (docs/scale-out.md §4: exactly-once).
 * Both are per thread: other threads (readers, the background thread)
 * keep the real clock and commit no seq.
 *
 * Invariant: st_log_applying() is true exactly between st_log_apply_begin
 * and st_log_apply_end on the calling thread.
 */
#include <errno.h>

#include "internal.h"

_Thread_local const struct timespec *st_apply_clock;
static _Thread_local uint64_t apply_seq;

void st_log_apply_begin(uint64_t seq, const struct timespec *clock)
{
    apply_seq = seq;
    st_apply_clock = clock;
}

void st_log_apply_end(void)
{
    apply_seq = 0;
    st_apply_clock = NULL;
}

bool st_log_applying(void)
{
    return st_apply_clock != NULL;
}

uint64_t st_log_apply_seq(void)
{
    return apply_seq;
}

int st_log_route(st_store *st, const st_log_op *op)
{
    if (!st || !st->log_hooks || st_log_applying())
        return ST_LOG_LOCAL;
    return st->log_hooks->write(st->log_ctx, op);
}

bool st_log_remote(st_store *st)
{
    return st && st->log_hooks && !st_log_applying();
}

int st_log_refuse(st_store *st)
{
    return st_log_remote(st) ? -EOPNOTSUPP : 0;
}

int st_log_barrier(st_store *st)
{
    return st->log_hooks ? st->log_hooks->barrier(st->log_ctx) : 0;
}

void st_log_stop(st_store *st)
{
    if (st->log_hooks)
        st->log_hooks->stop(st->log_ctx);
}
