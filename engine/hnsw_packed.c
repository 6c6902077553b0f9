/*
 * hnsw_packed.c — the level-0 lists of a packed index (INT8): Elias-Fano
 * codes (elias_fano.h) in the node records, read by searches, decoded and
 * written back by writers, re-packed when the capacity grows
 * (hnsw_internal.h, "Packed lists").
 *
 * Invariants
 *   1. A node's list words are count | code, vec_offset bytes; the code's
 *      shape is h->ef, for ids below the capacity; both change only under
 *      grow_lock (write), with every list re-packed.
 *   2. A search decodes only a copy its version check showed whole, so it
 *      never decodes a list a writer is halfway through.
 *   3. Every list a writer commits is encoded from its full (count,
 *      links): equal lists give equal codes (elias_fano.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"

/* Words of a packed level-0 list's copy: the count, the code (at most 34
 * bits a link, 2 bytes of rounding) and the decoder's slack. */
#define VF_PACKED_WORDS (2 + 17 * VF_HNSW_MAX_M / 8 + 1 + VF_EF_SLACK / 4)

uint32_t vf_packed_copy(const vf_hnsw *h, uint32_t id, uint32_t *buf)
{
    const uint32_t *list = vf_node_links0(h, id);
    const size_t words = h->vec_offset / sizeof(uint32_t);
    uint32_t raw[VF_PACKED_WORDS];
    for (unsigned spins = 0;; spins++) {
        uint32_t v = atomic_load_explicit(&h->versions[id], memory_order_acquire);
        if (!(v & 1)) {
            uint32_t n = word_get(&list[0]);
            if (n > h->m0)
                n = h->m0; /* torn by a writer: the version check below retries */
            for (size_t w = 1; w < words; w++)
                raw[w] = word_get(&list[w]);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&h->versions[id], memory_order_relaxed) == v) {
                memset(raw + words, 0, VF_EF_SLACK);
                return h->ef_decode(&h->ef, (const uint8_t *)(raw + 1), n, buf);
            }
        }
        if (spins > 64)
            sched_yield();
    }
}

uint32_t *vf_packed_read(const vf_hnsw *h, uint32_t id, uint32_t *buf)
{
    const size_t words = h->vec_offset / sizeof(uint32_t);
    uint32_t raw[VF_PACKED_WORDS];
    memcpy(raw, vf_node_links0(h, id), h->vec_offset);
    memset(raw + words, 0, VF_EF_SLACK);
    buf[0] = raw[0] <= h->m0 ? raw[0] : h->m0;
    buf[0] = h->ef_decode(&h->ef, (const uint8_t *)(raw + 1), buf[0], buf + 1);
    return buf;
}

void vf_packed_commit(const vf_hnsw *h, uint32_t id, uint32_t *list)
{
    uint32_t raw[VF_PACKED_WORDS];
    vf_ef_encode(&h->ef, list + 1, list[0], (uint8_t *)(raw + 1));
    uint32_t *node = vf_node_links0(h, id);
    const size_t words = h->vec_offset / sizeof(uint32_t);
    for (size_t w = 1; w < words; w++)
        word_set(&node[w], raw[w]);
    word_set(&node[0], list[0]);
}

void vf_packed_layout(vf_hnsw *h, size_t capacity)
{
    size_t links = (size_t)h->m0 * sizeof(uint32_t);
    if (h->packed) {
        h->ef = vf_ef_shape_for(capacity ? (uint32_t)capacity : 1, h->m0);
        links = ((size_t)h->ef.bytes + 3) & ~(size_t)3;
        assert(sizeof(uint32_t) + links + VF_EF_SLACK <= VF_PACKED_WORDS * sizeof(uint32_t));
    }
    h->vec_offset = sizeof(uint32_t) + links;
    h->node_bytes = (h->vec_offset + h->rec_bytes + 3) & ~(size_t)3; /* next count: atomic u32 */
}

int vf_packed_regrow(vf_hnsw *h, size_t capacity)
{
    assert(h->packed && capacity >= h->capacity && capacity <= UINT32_MAX);
    vf_hnsw next = {
        .m0 = h->m0, .packed = true, .rec_bytes = h->rec_bytes, .ef_decode = h->ef_decode};
    vf_packed_layout(&next, capacity);
    if (capacity > SIZE_MAX / next.node_bytes)
        return -EFBIG;
    next.level0 = vc_calloc(capacity, next.node_bytes);
    if (!next.level0)
        return -ENOMEM;
    uint32_t list[1 + 2 * VF_HNSW_MAX_M];
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t id = (uint32_t)i;
        vf_packed_read(h, id, list);
        vf_packed_commit(&next, id, list);
        memcpy(vf_node_rec(&next, id), vf_node_rec(h, id), h->rec_bytes);
    }
    free(h->level0);
    h->level0 = next.level0;
    h->ef = next.ef;
    h->vec_offset = next.vec_offset;
    h->node_bytes = next.node_bytes;
    return 0;
}
