/*
 * query_run.h — runs a parsed query (query_parse.h) against the store and
 * produces the bytes a reader of the query file gets (SPEC §3.3).
 */
#ifndef VECFS_FS_QUERY_RUN_H
#define VECFS_FS_QUERY_RUN_H

#include <stddef.h>
#include <sys/types.h>

#include "query_table.h"
#include "query_parse.h"
#include "store.h"

/*
 * Runs q in collection coll and formats its result.
 *   q       a parsed query: single (vector or `like`) or a batch
 *           (FSD_QKIND_FVECS/NPY, searched on the store's threads)
 *   budget  the query memory budget (query_table.h) a batch's result is charged
 *           to, as uid's, while it is built: it stops with the budget's
 *           error once over (overshooting by at most one buffer doubling).
 *           Everything charged is given back before returning; the caller
 *           charges the result it keeps.
 *   out     on success a malloc'd result of *len bytes plus a NUL (not
 *           counted), owned by the caller; NULL on error
 * Counts the queries and their time in the metrics.
 * Returns 0, -EINVAL (q cannot run: its `like` vector is gone, a dim
 * mismatch), -ENOENT (no such collection), -EDQUOT / -ENOSPC (a batch's
 * result is over the budget), -ENOMEM, or a store error.
 */
int fsd_query_run(st_store *st, const char *coll, const fsd_query *q, fsd_queries *budget,
                  uid_t uid, char **out, size_t *len);

#endif /* VECFS_FS_QUERY_RUN_H */
