/*
 * duplicates.c — generates the duplicate-heavy dataset described in
 * duplicates.h (the layout of the first reproduction of issue 14).
 *
 * Invariants
 *   1. The output depends only on share_pct: the random rows come from
 *      splitmix64 with a fixed seed, never from rand() or the clock.
 *   2. Every query with an even index is bit-identical to a base row.
 */
#include "duplicates.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DUP_DISTINCT 13
#define DUP_RANGE 12.0f
#define DUP_SEED 0x7665636673ULL /* "vecfs" */

_Static_assert(BENCH_DUP_ROWS % (BENCH_DUP_QUERIES / 2) == 0, "query copies spread evenly");

/* splitmix64: small, seedable, good enough for benchmark data. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, DUP_RANGE): the top 24 bits are exact in a float. */
static void random_row(uint64_t *state, float *row)
{
    for (size_t j = 0; j < BENCH_DUP_DIM; j++)
        row[j] = (float)(next_random(state) >> 40) * (DUP_RANGE / 16777216.0f);
}

int bench_duplicates_make(unsigned share_pct, bench_matrix *base, bench_matrix *queries)
{
    const size_t dup_rows = (size_t)BENCH_DUP_ROWS * share_pct / 100;
    const size_t stride = BENCH_DUP_ROWS / (BENCH_DUP_QUERIES / 2);
    float *b = malloc((size_t)BENCH_DUP_ROWS * BENCH_DUP_DIM * sizeof(float));
    float *q = malloc((size_t)BENCH_DUP_QUERIES * BENCH_DUP_DIM * sizeof(float));
    uint64_t state = DUP_SEED;

    assert(share_pct <= 100);
    if (b == NULL || q == NULL) {
        free(b);
        free(q);
        return -ENOMEM;
    }
    for (size_t i = 0; i < BENCH_DUP_ROWS; i++) {
        float *row = b + i * BENCH_DUP_DIM;
        if (i < dup_rows) {
            for (size_t j = 0; j < BENCH_DUP_DIM; j++)
                row[j] = (float)((i * 7 + j) % DUP_DISTINCT);
        } else {
            random_row(&state, row);
        }
    }
    for (size_t m = 0; m < BENCH_DUP_QUERIES / 2; m++) {
        memcpy(q + 2 * m * BENCH_DUP_DIM, b + m * stride * BENCH_DUP_DIM,
               BENCH_DUP_DIM * sizeof(float));
        random_row(&state, q + (2 * m + 1) * BENCH_DUP_DIM);
    }
    base->data = b;
    base->n = BENCH_DUP_ROWS;
    base->dim = BENCH_DUP_DIM;
    queries->data = q;
    queries->n = BENCH_DUP_QUERIES;
    queries->dim = BENCH_DUP_DIM;
    return 0;
}
