/*
 * snapshot.c — the HNSW index as bytes and back, for the store's snapshots.
 *
 * Layout (all fields little-endian; offsets in bytes)
 *     0  8  magic "VECFSHNS"
 *     8  4  format version (VF_SNAPSHOT_VERSION)
 *    12  4  header size (VF_SNAPSHOT_HEADER = 88)
 *    16  4  dim                 20  4  metric (vf_metric)
 *    24  4  m                   28  4  ef_construction
 *    32  4  ef_search           36  4  entry id
 *    40  4  entry level, or 0xFFFFFFFF when the index never held a vector
 *    44  4  zero
 *    48  8  level seed          56  8  levels drawn so far
 *    64  8  slots S (highest used id + 1)
 *    72  8  present count       80  8  upper words U (u32 words below)
 *    88  S  slot states (0 empty, 1 present, 2 deleted)
 *   ...  S  slot levels
 *   ...     zero padding to a multiple of 4
 *   ...  S * node_bytes  level-0 records: u32 count, u32 links[2m], f32 vector[dim]
 *   ...  4 * U  upper lists, for each slot with level > 0 in id order:
 *               level * (u32 count, u32 links[m])
 *   end-4 4  CRC-32C of every byte before it
 *
 * Invariants
 *   1. Deserialization reads only inside [bytes, bytes + len): every size is
 *      computed with overflow checks and must add up to len exactly.
 *   2. No index is returned unless the CRC matches and every structural rule
 *      of hnsw.c (links in range, degrees, levels, entry, count) holds, so a
 *      crafted snapshot cannot make a later search read out of bounds.
 *   3. Vectors must be finite.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "hnsw_internal.h"
#include "le.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "snapshot.c writes the in-memory layout as little-endian; port it for this host"
#endif

#define VF_SNAPSHOT_MAGIC "VECFSHNS"
#define VF_SNAPSHOT_VERSION 1u
#define VF_SNAPSHOT_HEADER 88u
#define VF_SNAPSHOT_NO_LEVEL 0xFFFFFFFFu
#define VF_SNAPSHOT_CHUNK (1u << 20)

_Static_assert(sizeof(float) == 4, "vectors are stored as IEEE float32");

typedef struct snap_writer {
    vf_write_fn write;
    void *ctx;
    uint32_t crc;
} snap_writer;

/* Writes n bytes through the writer in chunks, adding them to the CRC.
 * 0 or the writer's error (-EIO for a positive one). */
static int emit(snap_writer *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        size_t part = n < VF_SNAPSHOT_CHUNK ? n : VF_SNAPSHOT_CHUNK;
        w->crc = vc_crc32c(w->crc, b, part);
        int rc = w->write(w->ctx, b, part);
        if (rc)
            return rc < 0 ? rc : -EIO;
        b += part;
        n -= part;
    }
    return 0;
}

/* The zero bytes that pad n to a multiple of 4. */
static size_t pad4(size_t n)
{
    return (4 - n % 4) % 4;
}

int vf_hnsw_serialize(const vf_hnsw *ch, vf_write_fn write, void *ctx)
{
    if (!ch || !write)
        return -EINVAL;
    vf_hnsw *h = (vf_hnsw *)ch;
    pthread_rwlock_rdlock(&h->grow_lock);
    snap_writer w = {.write = write, .ctx = ctx, .crc = 0};
    size_t slots = h->capacity;
    while (slots > 0 && h->state[slots - 1] == VF_SLOT_EMPTY)
        slots--;
    uint64_t upper_words = 0;
    for (size_t i = 0; i < slots; i++)
        if (h->state[i] != VF_SLOT_EMPTY)
            upper_words += (uint64_t)h->levels[i] * (1 + h->m);

    uint8_t head[VF_SNAPSHOT_HEADER] = {0};
    uint64_t entry = atomic_load(&h->entry);
    memcpy(head, VF_SNAPSHOT_MAGIC, 8);
    vc_le_put32(head + 8, VF_SNAPSHOT_VERSION);
    vc_le_put32(head + 12, VF_SNAPSHOT_HEADER);
    vc_le_put32(head + 16, h->dim);
    vc_le_put32(head + 20, (uint32_t)h->metric);
    vc_le_put32(head + 24, h->m);
    vc_le_put32(head + 28, h->ef_construction);
    vc_le_put32(head + 32, atomic_load(&h->ef_search));
    vc_le_put32(head + 36, entry == VF_HNSW_NO_ENTRY ? 0 : (uint32_t)entry);
    vc_le_put32(head + 40,
                entry == VF_HNSW_NO_ENTRY ? VF_SNAPSHOT_NO_LEVEL : (uint32_t)(entry >> 32));
    vc_le_put64(head + 48, h->seed);
    vc_le_put64(head + 56, atomic_load(&h->level_draws));
    vc_le_put64(head + 64, slots);
    vc_le_put64(head + 72, atomic_load(&h->count));
    vc_le_put64(head + 80, upper_words);

    static const uint8_t zeros[4];
    int rc = emit(&w, head, sizeof(head));
    if (!rc)
        rc = emit(&w, (const void *)h->state, slots);
    if (!rc)
        rc = emit(&w, h->levels, slots);
    if (!rc)
        rc = emit(&w, zeros, pad4(2 * slots));
    if (!rc)
        rc = emit(&w, h->level0, slots * h->node_bytes);
    for (size_t i = 0; !rc && i < slots; i++)
        if (h->state[i] != VF_SLOT_EMPTY && h->levels[i] > 0)
            rc = emit(&w, h->upper[i], (size_t)h->levels[i] * (1 + h->m) * sizeof(uint32_t));
    if (!rc) {
        uint8_t crc[4];
        vc_le_put32(crc, w.crc);
        rc = w.write(ctx, crc, sizeof(crc));
        if (rc > 0)
            rc = -EIO;
    }
    pthread_rwlock_unlock(&h->grow_lock);
    return rc;
}

/* Checks a used slot's lists and vector against invariants 1-3 of
 * hnsw.c. slots is the number of slots; 0 or -EILSEQ. */
static int slot_valid(const vf_hnsw *h, uint32_t id, size_t slots)
{
    for (unsigned lev = 0; lev <= h->levels[id]; lev++) {
        const uint32_t *list = vf_node_list(h, id, lev);
        if (list[0] > (lev ? h->m : h->m0))
            return -EILSEQ;
        for (uint32_t j = 0; j < list[0]; j++) {
            uint32_t to = list[1 + j];
            if (to >= slots || to == id || h->state[to] == VF_SLOT_EMPTY || h->levels[to] < lev)
                return -EILSEQ;
        }
    }
    const float *v = vf_node_vector(h, id);
    for (uint32_t i = 0; i < h->dim; i++)
        if (!isfinite(v[i]))
            return -EILSEQ;
    return 0;
}

/* Adds b to *a unless it overflows; false on overflow. */
static bool add_size(size_t *a, uint64_t b)
{
    if (b > SIZE_MAX - *a)
        return false;
    *a += (size_t)b;
    return true;
}

int vf_hnsw_deserialize(const void *bytes, size_t len, vf_hnsw **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!bytes)
        return -EINVAL;
    const uint8_t *b = bytes;
    if (len < VF_SNAPSHOT_HEADER + 4 || memcmp(b, VF_SNAPSHOT_MAGIC, 8) != 0 ||
        vc_le_get32(b + 8) != VF_SNAPSHOT_VERSION || vc_le_get32(b + 12) != VF_SNAPSHOT_HEADER)
        return -EILSEQ;
    if (vc_crc32c(0, b, len - 4) != vc_le_get32(b + len - 4))
        return -EILSEQ;

    vf_hnsw_params p = {
        .dim = vc_le_get32(b + 16),
        .metric = (vf_metric)vc_le_get32(b + 20),
        .m = vc_le_get32(b + 24),
        .ef_construction = vc_le_get32(b + 28),
        .ef_search = vc_le_get32(b + 32),
        .seed = vc_le_get64(b + 48),
    };
    uint32_t entry_id = vc_le_get32(b + 36), entry_level = vc_le_get32(b + 40);
    uint64_t draws = vc_le_get64(b + 56), slots = vc_le_get64(b + 64), count = vc_le_get64(b + 72);
    uint64_t upper_words = vc_le_get64(b + 80);
    if (vc_le_get32(b + 44) != 0 || slots > UINT32_MAX || count > slots)
        return -EILSEQ;

    vf_hnsw *h = NULL;
    int rc = vf_hnsw_alloc(&p, &h);
    if (rc)
        return rc == -EINVAL ? -EILSEQ : rc;

    /* Every section's size, overflow-checked, must add up to len. */
    size_t need = VF_SNAPSHOT_HEADER, upper_bytes = 0;
    bool sizes_ok = add_size(&need, 2 * slots + pad4(2 * slots)) &&
                    slots <= SIZE_MAX / h->node_bytes && add_size(&need, slots * h->node_bytes) &&
                    upper_words <= SIZE_MAX / 4 && add_size(&upper_bytes, upper_words * 4) &&
                    add_size(&need, upper_bytes) && add_size(&need, 4);
    if (!sizes_ok || need != len) {
        rc = -EILSEQ;
        goto fail;
    }
    rc = vf_hnsw_grow_locked(h, (size_t)slots);
    if (rc)
        goto fail;

    const uint8_t *states = b + VF_SNAPSHOT_HEADER, *levels = states + slots;
    const uint8_t *level0 = levels + slots + pad4(2 * slots);
    const uint8_t *upper = level0 + slots * h->node_bytes;
    if (slots)
        memcpy(h->level0, level0, slots * h->node_bytes);
    size_t present = 0, used = 0;
    uint64_t words_left = upper_words;
    for (size_t i = 0; i < slots; i++) {
        uint8_t st = states[i], level = levels[i];
        if (st > VF_SLOT_DELETED || level > VF_HNSW_MAX_LEVEL ||
            (st == VF_SLOT_EMPTY && (level != 0 || vf_node_links0(h, (uint32_t)i)[0] != 0))) {
            rc = -EILSEQ;
            goto fail;
        }
        atomic_init(&h->state[i], st);
        h->levels[i] = level;
        used += st != VF_SLOT_EMPTY;
        present += st == VF_SLOT_PRESENT;
        if (st == VF_SLOT_EMPTY || level == 0)
            continue;
        uint64_t words = (uint64_t)level * (1 + h->m);
        if (words > words_left) {
            rc = -EILSEQ;
            goto fail;
        }
        h->upper[i] = vc_malloc(words * 4);
        if (!h->upper[i]) {
            rc = -ENOMEM;
            goto fail;
        }
        memcpy(h->upper[i], upper, words * 4);
        upper += words * 4;
        words_left -= words;
        h->upper_bytes += words * 4;
    }
    if (words_left != 0 || present != count) {
        rc = -EILSEQ;
        goto fail;
    }
    for (size_t i = 0; i < slots; i++) {
        if (h->state[i] != VF_SLOT_EMPTY && slot_valid(h, (uint32_t)i, (size_t)slots) != 0) {
            rc = -EILSEQ;
            goto fail;
        }
    }
    if (entry_level == VF_SNAPSHOT_NO_LEVEL) {
        if (used != 0 || entry_id != 0) {
            rc = -EILSEQ;
            goto fail;
        }
    } else {
        if (entry_id >= slots || h->state[entry_id] == VF_SLOT_EMPTY ||
            h->levels[entry_id] != entry_level) {
            rc = -EILSEQ;
            goto fail;
        }
        atomic_store(&h->entry, ((uint64_t)entry_level << 32) | entry_id);
    }
    atomic_store(&h->count, present);
    atomic_store(&h->deleted, used - present);
    atomic_store(&h->level_draws, draws);
    rc = vf_hnsw_links_settle(h);
    if (rc)
        goto fail;
    *out = h;
    return 0;
fail:
    vf_hnsw_free(h);
    return rc;
}
