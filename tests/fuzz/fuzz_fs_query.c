/*
 * fuzz_fs_query.c — fuzz target for query files and results
 * (fs/query_parse.c).
 *
 * Input: byte 0 picks the query kind (% 5); the rest is the query file.
 * Checks the invariants of query_parse.c on success (k and ef in range,
 * exactly one of like and vectors, finite floats), that a failed parse
 * leaves the query released, then feeds the same bytes to the xattr
 * parameter setter and the filter parser, and formats a result using the
 * filter values as names (arbitrary bytes through the escapers).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query_parse.h"
#include "query_result.h"

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fsd_qkind kind = (fsd_qkind)(data[0] % 5);
    const char *p = (const char *)data + 1;
    size_t n = size - 1;

    fsd_query q = FSD_QUERY_INIT;
    int rc = fsd_query_parse(kind, p, n, &q);
    if (rc) {
        check(!q.vectors && !q.like && !q.filter && q.nq == 0);
    } else {
        check(q.k >= 1 && q.k <= FSD_QUERY_MAX_K);
        check(q.ef <= FSD_QUERY_MAX_EF);
        check((q.like != NULL) != (q.nq != 0));
        if (q.like)
            check(strlen(q.like) == q.like_len);
        for (size_t i = 0; i < q.nq * q.dim; i++)
            check(isfinite(q.vectors[i]));
        check(!q.within || isfinite(q.max_distance));
    }
    check(memchr(q.error, '\0', sizeof q.error) != NULL);

    static const char *const keys[] = {"k", "ef", "filter", "like", "max_distance", "explain"};
    uint32_t k0 = q.k;
    rc = fsd_query_param_set(&q, keys[data[0] % 6], p, n);
    if (rc)
        check(q.k == k0);

    fsd_results r;
    fsd_results_init(&r, kind);
    /* Each comma-separated piece is a name of one more row. */
    size_t at = 0;
    for (size_t i = 0; at < n; i++) {
        const char *comma = memchr(p + at, ',', n - at);
        size_t end = comma ? (size_t)(comma - p) : n;
        if (fsd_qkind_is_batch(kind))
            fsd_results_add_row(&r, i, p + at, end - at, (float)i);
        else
            fsd_results_add(&r, p + at, end - at, (float)i / 3.0f);
        at = end + 1;
    }
    if (fsd_qkind_is_batch(kind))
        fsd_results_add_row(&r, 7, p, n, -0.5f);
    else
        fsd_results_add(&r, p, n, NAN);
    char *out = NULL;
    size_t len = 0;
    check(fsd_results_finish(&r, &out, &len) == 0);
    check(out != NULL && strlen(out) == len); /* escaped: no NUL inside */
    free(out);
    fsd_query_release(&q);
    return 0;
}
