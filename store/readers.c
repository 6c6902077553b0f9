/*
 * readers.c — LMDB reader slots left by processes that died.
 *
 * Every read transaction takes a slot in the lock file's reader table; a
 * process killed inside one (a `vecfs backup` or `vecfs check` killed with
 * -9, say) leaves its slot behind. LMDB resets the table only when the
 * first process opens the environment, so while the daemon keeps it open a
 * dead slot pins the pages of its old snapshot: freed pages are never
 * reused and the store grows. The daemon clears such slots when it opens
 * the store and then once a minute (background.c).
 */
#include <string.h>

#include "internal.h"

void st_readers_clear(st_store *st)
{
    int dead = 0;
    int rc = st_mdb_err(mdb_reader_check(st->env, &dead));
    if (rc) {
        st_log(st, ST_LOG_WARN, "cannot check LMDB's reader table: %s", strerror(-rc));
        return;
    }
    if (dead > 0) {
        atomic_fetch_add(&st->stale_readers, (uint64_t)dead);
        st_log(st, ST_LOG_WARN,
               "cleared %d LMDB reader slot(s) left by processes that died inside a read", dead);
    }
}
