/*
 * record_scan.c — exact search over a collection's SLOT records, for the
 * time its index is being rebuilt in the background (rebuild.c): slower
 * than the graph, but correct, and consistent with the read transaction
 * the caller names its hits in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Puts hit h into the nearest-first list out (n of at most k). */
static void keep_nearest(vf_hit *out, size_t *n, size_t k, vf_hit h)
{
    if (*n == k && h.distance >= out[k - 1].distance)
        return;
    size_t i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && out[i - 1].distance > h.distance) {
        out[i] = out[i - 1];
        i--;
    }
    out[i] = h;
}

int st_records_search(st_store *st, MDB_txn *txn, uint32_t coll, const st_config *cfg,
                      const float *query, size_t k, const vf_filter *filter, vf_hit *out,
                      size_t *n_out)
{
    *n_out = 0;
    if (k == 0)
        return 0;
    MDB_cursor *cur;
    int rc = st_mdb_err(mdb_cursor_open(txn, st->db[ST_DB_SLOTS], &cur));
    if (rc)
        return rc;
    /* The records' floats may sit unaligned in the map: copied here. */
    float *vec = vc_malloc((size_t)cfg->dim * sizeof(float));
    if (!vec) {
        mdb_cursor_close(cur);
        return -ENOMEM;
    }
    vc_buf scratch = VC_BUF_INIT;
    uint8_t pre[4];
    st_be32(pre, coll);
    MDB_val key = {4, pre}, val;
    int mrc = st_mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    for (; mrc == 0 && key.mv_size == 8 && memcmp(key.mv_data, pre, 4) == 0;
         mrc = st_mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        uint32_t id = st_get_be32((const uint8_t *)key.mv_data + 4);
        if (filter && !filter->accept(filter->ctx, id))
            continue;
        const void *body;
        size_t blen, nl;
        const char *name;
        const uint8_t *sv;
        uint32_t dim;
        rc = st_env_open_buf(&st->crypto, ST_DB_SLOTS, key.mv_data, 8, val.mv_data, val.mv_size,
                             &scratch, &body, &blen);
        if (rc == 0)
            rc = st_rec_slot_dec(body, blen, &name, &nl, &sv, &dim);
        if (rc == 0 && dim != cfg->dim)
            rc = -EIO;
        if (rc)
            break;
        memcpy(vec, sv, (size_t)dim * sizeof(float));
        keep_nearest(out, n_out, k, (vf_hit){id, vf_distance(cfg->metric, query, vec, dim)});
    }
    if (rc == 0 && mrc != MDB_NOTFOUND && mrc != 0)
        rc = st_mdb_err(mrc);
    mdb_cursor_close(cur);
    vc_buf_release(&scratch);
    free(vec);
    return rc;
}
