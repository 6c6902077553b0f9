/*
 * hnsw_record.c — the vector record a level-0 node holds (hnsw_internal.h):
 * a float vector as the index keeps it (unit length for cosine) for NONE,
 * a code record for INT8 (quantizer.h); turning a caller's float vector
 * into one and back, and the finiteness check every input passes.
 *
 * Invariants
 *   1. A record is written only by the writer that owns the id (op lock),
 *      a load, or a re-learn with writers quiesced.
 *   2. Query records live in the caller's scratch and are never counted
 *      for drift; inserted ones are.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "hnsw_internal.h"

bool vf_hnsw_query_finite(const float *q, size_t dim)
{
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(q[i]))
            return false;
    return true;
}

void vf_hnsw_rec_encode(vf_hnsw *h, vf_scratch *s, const float *vec, uint8_t *rec, bool track)
{
    if (h->quant == VF_QUANT_NONE) {
        if (h->metric == VF_METRIC_COSINE)
            vf_normalize(vec, (float *)rec, h->dim);
        else
            memcpy(rec, vec, h->dim * sizeof(float));
        return;
    }
    const float *x = vec;
    if (h->metric == VF_METRIC_COSINE) {
        vf_normalize(vec, s->query, h->dim);
        x = s->query;
    }
    vf_quant_encode(&h->q, x, rec, track);
}

void vf_hnsw_rec_decode(const vf_hnsw *h, const uint8_t *rec, float *out)
{
    if (h->quant == VF_QUANT_NONE)
        memcpy(out, rec, h->dim * sizeof(float));
    else
        vf_quant_decode(&h->q, rec, out);
}

int vf_hnsw_as_stored(const vf_hnsw *h, const float *vec, float *out)
{
    if (!h || !vec || !out)
        return -EINVAL;
    if (h->metric == VF_METRIC_COSINE)
        vf_normalize(vec, out, h->dim);
    else
        memmove(out, vec, h->dim * sizeof(float));
    if (h->quant == VF_QUANT_INT8)
        vf_quant_round_trip(&h->q, out, out);
    return 0;
}
