/*
 * originals.h — the float32 originals an int8 index reranks with, served
 * to the engine as a vf_vec_source straight from a memory-mapped .fvecs
 * base file (zero-copy: a row's floats sit 4-byte aligned after its dim),
 * or from rows already in memory (a generated base).
 */
#ifndef VECFS_BENCH_ORIGINALS_H
#define VECFS_BENCH_ORIGINALS_H

#include <stddef.h>

#include "engine.h"

typedef struct bench_originals {
    const unsigned char *map; /* the mapped file, or NULL for in-memory rows */
    size_t map_len;
    const float *rows; /* in-memory rows (map NULL) */
    size_t n, dim;
    size_t row_bytes; /* stride between rows' first floats */
} bench_originals;

/* Maps `path` (an .fvecs file of n rows of dim, as already read by
 * bench_fvecs_read) read-only. 0 or a negative errno; one line in err. */
int bench_originals_map(bench_originals *o, const char *path, size_t n, size_t dim, char *err,
                        size_t errlen);

/* Serves rows (n x dim, owned by the caller) instead of a file. */
void bench_originals_rows(bench_originals *o, const float *rows, size_t n, size_t dim);

/* The source handing out o's rows by id (id = row). */
vf_vec_source bench_originals_source(bench_originals *o);

/* Bytes the originals take per vector (the file's, or dim floats). */
double bench_originals_bytes_per_vector(const bench_originals *o);

/* Unmaps; o may be zeroed. */
void bench_originals_close(bench_originals *o);

#endif /* VECFS_BENCH_ORIGINALS_H */
