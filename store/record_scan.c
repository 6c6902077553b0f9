/*
 * record_scan.c — exact search over a collection's SLOT records, for the
 * time its index is being rebuilt in the background (rebuild.c): slower
 * than the graph, but correct, and consistent with the read transaction
 * the caller names its hits in.
 */
#include "internal.h"

typedef struct scan {
    const st_config *cfg;
    const float *query;
    const vf_filter *filter;
    vf_hit *out;
    size_t k, n;
} scan;

/* st_slot_fn: keeps the record in the nearest-first list if it passes. */
static int keep_nearest(void *ctx, uint32_t id, const float *vec)
{
    scan *s = ctx;
    if (s->filter && !s->filter->accept(s->filter->ctx, id))
        return 0;
    vf_hit h = {id, vf_distance(s->cfg->metric, s->query, vec, s->cfg->dim)};
    if (s->n == s->k && h.distance >= s->out[s->k - 1].distance)
        return 0;
    size_t i = s->n < s->k ? s->n++ : s->k - 1;
    while (i > 0 && s->out[i - 1].distance > h.distance) {
        s->out[i] = s->out[i - 1];
        i--;
    }
    s->out[i] = h;
    return 0;
}

int st_records_search(st_store *st, MDB_txn *txn, uint32_t coll, const st_config *cfg,
                      const float *query, size_t k, const vf_filter *filter, vf_hit *out,
                      size_t *n_out)
{
    scan s = {.cfg = cfg, .query = query, .filter = filter, .out = out, .k = k};
    int rc = k ? st_slot_walk(st, txn, coll, cfg->dim, keep_nearest, &s) : 0;
    *n_out = s.n;
    return rc;
}
