/*
 * duplicates.h — the duplicate-heavy dataset of vecfs-bench-engine
 * --duplicates (issue 14): many rows are copies of a few distinct vectors,
 * as real embeddings are when the same text chunk, boilerplate or an empty
 * string is embedded again and again. It is generated, not fetched, so the
 * same SHARE always gives the same bytes on every machine.
 *
 * Base: BENCH_DUP_ROWS rows of BENCH_DUP_DIM floats. Row i below
 * SHARE % of the rows is [(i*7 + j) % 13 for j in 0..dim-1]: 13 distinct
 * vectors, each about rows*SHARE/1300 times. The other rows are uniform
 * random in [0, 12) from a fixed seed.
 * Queries: BENCH_DUP_QUERIES rows. Query 2m is an exact copy of base row
 * m * (rows / (queries/2)), so the copies are spread over the duplicated
 * and the random rows in proportion to SHARE; query 2m+1 is a fresh
 * uniform random vector.
 */
#ifndef VECFS_BENCH_DUPLICATES_H
#define VECFS_BENCH_DUPLICATES_H

#include "fvecs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_DUP_ROWS 20000
#define BENCH_DUP_DIM 8
#define BENCH_DUP_QUERIES 1000

/* Fills *base and *queries (empty on entry; released by the caller with
 * bench_matrix_release) with the dataset for share_pct (0..100, checked by
 * the caller). Returns 0 or -ENOMEM (then both are left empty). */
int bench_duplicates_make(unsigned share_pct, bench_matrix *base, bench_matrix *queries);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_BENCH_DUPLICATES_H */
