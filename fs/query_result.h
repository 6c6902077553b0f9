/*
 * query_result.h — what reading a query file returns (SPEC §3.3): the
 * result of a query (query_parse.h), built one neighbour at a time.
 *
 * Results (fsd_results): one line per neighbour, nearest first,
 *   text/.f32:       "<name>\t<distance>\n"
 *   .json:           [{"name": "a", "distance": 0.25}, ...] + "\n"
 *   .fvecs/.npy:     "<row>\t<name>\t<distance>\n", rows from 0, in order
 * Distances use the shortest decimal form that reads back to the same
 * float32. In the text forms, a name's backslash, tab, newline and NUL bytes
 * are written as "\\", "\t", "\n", "\0" so every line splits cleanly on
 * tabs (vector names never hold NUL; filter-derived text might). In
 * JSON, names are escaped per RFC 8259; bytes that are not valid UTF-8 are
 * written as \u00XX of the byte (so such names do not round-trip; vecfs
 * users rarely have them).
 *
 * All functions are thread-safe on distinct objects.
 */
#ifndef VECFS_FS_QUERY_RESULT_H
#define VECFS_FS_QUERY_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "query_parse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A result being built. Start with fsd_results_init, add neighbours in
 * order, then take the bytes with fsd_results_finish. The buffer grows
 * geometrically (amortized O(1) per line). */
typedef struct fsd_results {
    fsd_qkind kind;
    size_t count; /* neighbours added so far */
    vc_buf out;   /* the text so far */
    int err;      /* first error of an add; sticky */
} fsd_results;

/* Starts an empty result for a query of `kind` (never fails). */
void fsd_results_init(fsd_results *r, fsd_qkind kind);

/* Adds one neighbour of a single query (kinds TEXT, JSON, F32).
 *   name      name_len bytes, need not be NUL-terminated
 *   distance  any float (non-finite values are written as nan/inf)
 * Returns 0, -EINVAL (a batch kind), -ENOMEM (also remembered in r->err
 * and returned by fsd_results_finish). */
int fsd_results_add(fsd_results *r, const char *name, size_t name_len, float distance);

/* Adds one neighbour of query `row` of a batch (kinds FVECS, NPY).
 * Returns 0, -EINVAL (not a batch kind), -ENOMEM. */
int fsd_results_add_row(fsd_results *r, uint64_t row, const char *name, size_t name_len,
                        float distance);

/* Completes the result (closes the JSON array) and hands over the bytes:
 *   out      malloc'd, *len_out bytes plus a NUL (not counted); owned by
 *            the caller. An empty text result is "" (len 0, out non-NULL);
 *            an empty JSON result is "[]\n".
 * r is released and reusable after fsd_results_init.
 * Returns 0, or the first error of an add (then *out is NULL), -ENOMEM. */
int fsd_results_finish(fsd_results *r, char **out, size_t *len_out);

/* Frees what r holds without producing a result. NULL is a no-op. */
void fsd_results_release(fsd_results *r);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_FS_QUERY_RESULT_H */
