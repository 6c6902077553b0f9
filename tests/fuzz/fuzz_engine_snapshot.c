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

static int try_load(const uint8_t *data, size_t size)
{
    vf_hnsw *h = NULL;
    if (vf_hnsw_deserialize(data, size, &h) != 0)
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
