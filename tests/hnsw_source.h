/*
 * hnsw_source.h — vf_vec_source helpers for the engine tests: originals
 * served from a row-major array, or from another index's stored vectors
 * (what a snapshot of that index needs at load).
 */
#ifndef VECFS_TESTS_HNSW_SOURCE_H
#define VECFS_TESTS_HNSW_SOURCE_H

#include <stddef.h>

#include "engine.h"

typedef struct array_source {
    const float *rows;
    size_t n, dim;
} array_source;

static inline const float *array_source_get(void *ctx, uint32_t id, float *buf)
{
    const array_source *a = ctx;
    (void)buf;
    return id < a->n ? a->rows + (size_t)id * a->dim : NULL;
}

/* A source over rows (n x dim); a must outlive its use. */
static inline vf_vec_source array_source_of(array_source *a, const float *rows, size_t n,
                                            size_t dim)
{
    *a = (array_source){.rows = rows, .n = n, .dim = dim};
    return (vf_vec_source){.get = array_source_get, .ctx = a};
}

static inline const float *index_source_get(void *ctx, uint32_t id, float *buf)
{
    return vf_hnsw_get(ctx, id, buf) == 0 ? buf : NULL;
}

/* A source over the stored vectors of h (unit length for cosine). */
static inline vf_vec_source index_source_of(const vf_hnsw *h)
{
    return (vf_vec_source){.get = index_source_get, .ctx = (void *)h};
}

#endif /* VECFS_TESTS_HNSW_SOURCE_H */
