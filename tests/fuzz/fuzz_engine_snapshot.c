/*
 * fuzz_engine_snapshot.c — vf_hnsw_deserialize on arbitrary bytes.
 *
 * Each input is tried as given and once more with its trailing CRC-32C
 * rewritten to match, so mutations reach the structural checks behind the
 * checksum. Whatever loads must pass vf_hnsw_check and survive a search.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "engine.h"

/* Originals for a NONE snapshot: a vector derived from the id (dims up
 * to the fuzzer's; larger ones get zeros). */
static const float *id_source_get(void *ctx, uint32_t id, float *buf)
{
    size_t dim = *(const uint32_t *)ctx;
    for (size_t i = 0; i < dim; i++)
        buf[i] = (float)((id * 31u + i * 7u) % 17u) - 8.0f;
    return buf;
}

static int try_load(const uint8_t *data, size_t size)
{
    vf_hnsw *h = NULL;
    /* The dim at offset 16, for the source; the engine checks it. */
    uint32_t dim = 0;
    if (size >= 20)
        memcpy(&dim, data + 16, 4);
    vf_vec_source src = {.get = id_source_get, .ctx = &dim};
    if (vf_hnsw_deserialize(data, size, &src, &h) != 0)
        return h == NULL ? 0 : 1;
    int bad = vf_hnsw_check(h) != 0;
    vf_hnsw_params p;
    vf_hnsw_params_get(h, &p);
    float *q = calloc(p.dim, sizeof(float));
    if (q) {
        q[0] = 1.0f;
        vf_hit hits[4];
        size_t n;
        bad |= vf_hnsw_search(h, q, 4, 16, NULL, hits, &n) != 0;
        free(q);
    }
    vf_hnsw_free(h);
    return bad;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int bad = try_load(data, size);
    if (size >= 4) {
        uint8_t *copy = malloc(size);
        if (!copy)
            return 0;
        memcpy(copy, data, size);
        uint32_t crc = vc_crc32c(0, copy, size - 4);
        memcpy(copy + size - 4, &crc, 4);
        bad |= try_load(copy, size);
        free(copy);
    }
    return bad;
}
