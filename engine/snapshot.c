/*
 * snapshot.c — the HNSW index as bytes and back, for the store's snapshots.
 *
 * Version 2 (written): the graph, and for INT8 the quantizer and the codes;
 * never float32 vectors (a NONE index takes them from a vf_vec_source at
 * load, the store from its own records: each vector is stored once).
 * All fields little-endian; offsets in bytes.
 *     0  8  magic "VECFSHNS"
 *     8  4  format version (2)
 *    12  4  header size (VF_SNAPSHOT_HEADER2 = 120)
 *    16  4  dim                 20  4  metric (vf_metric)
 *    24  4  m                   28  4  ef_construction
 *    32  4  ef_search           36  4  entry id
 *    40  4  entry level, or 0xFFFFFFFF when the index never held a vector
 *    44  4  zero
 *    48  8  level seed          56  8  levels drawn so far
 *    64  8  slots S (highest used id + 1)
 *    72  8  present count       80  8  upper words U (u32 words below)
 *    88  4  quantization (vf_quant_kind)
 *    92  4  rerank factor (1..VF_RERANK_MAX)
 *    96  4  f32 scale (INT8 trained; else 0)
 *   100  4  f32 clipped share at training    104  4  f32 error at training
 *   108  4  zero
 *   112  8  vectors the quantizer was trained on (0: NONE or untrained,
 *           which requires no used slot)
 *   120  S  slot states (0 empty, 1 present, 2 deleted)
 *   ...  S  slot levels
 *   ...     zero padding to a multiple of 4
 *   ...  S * 4 * (1 + 2m)  level-0 lists: u32 count, u32 links[2m] (an
 *               INT8 index packs them in memory, hnsw_internal.h, and
 *               writes zeros past the count)
 *   ...  NONE only: S * 4  per slot, the CRC-32C of the f32 vector the
 *               index keeps (unit length for cosine), 0 unless present: a
 *               source's original that disagrees loads as missing
 *   ...  INT8 trained only: 4 * dim  f32 offsets, then S * R code records
 *               (R = dim rounded up to 4, + 4: u8 codes[dim], zero pad,
 *               f32 correction a_x; quantizer.h). In memory a record is
 *               the codes and a u16 fixed-point correction instead: the
 *               f32 is computed from the codes when saving, checked
 *               finite and not otherwise read when loading (the u16 is
 *               computed from the codes), so a reloaded index writes the
 *               same bytes
 *   ...  4 * U  upper lists, for each used slot with level > 0 in id order:
 *               level * (u32 count, u32 links[m])
 *   end-4 4  CRC-32C of every byte before it
 *
 * Version 1 (read only): header of 88 bytes (offsets 0..87 as above), states,
 * levels, padding, S level-0 records of u32 count | u32 links[2m] | f32
 * vector[dim], upper lists, CRC. It loads as a NONE index with its own
 * vectors; the source is not called.
 *
 * Invariants
 *   1. Deserialization reads only inside [bytes, bytes + len): every size is
 *      computed with overflow checks and must add up to len exactly.
 *   2. No index is returned unless the CRC matches and every structural rule
 *      of hnsw.c (links in range, degrees, levels, entry, count) holds, so a
 *      crafted snapshot cannot make a later search read out of bounds.
 *   3. Vectors (from the bytes or the source), offsets, scale and code
 *      corrections must be finite; the scale positive.
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
#define VF_SNAPSHOT_V1 1u
#define VF_SNAPSHOT_VERSION 2u
#define VF_SNAPSHOT_HEADER1 88u
#define VF_SNAPSHOT_HEADER2 120u
#define VF_SNAPSHOT_NO_LEVEL 0xFFFFFFFFu
#define VF_SNAPSHOT_CHUNK 4096u

_Static_assert(sizeof(float) == 4, "vectors are stored as IEEE float32");

/* Bytes go through a staging buffer, so the per-slot lists cost one
 * writer call per chunk rather than one each. */
typedef struct snap_writer {
    vf_write_fn write;
    void *ctx;
    uint32_t crc;
    uint8_t buf[VF_SNAPSHOT_CHUNK];
    size_t len;
    int rc;
} snap_writer;

/* Hands the staged bytes to the writer, adding them to the CRC. */
static void flush(snap_writer *w)
{
    if (w->rc || w->len == 0)
        return;
    w->crc = vc_crc32c(w->crc, w->buf, w->len);
    int rc = w->write(w->ctx, w->buf, w->len);
    w->rc = rc > 0 ? -EIO : rc;
    w->len = 0;
}

/* Stages n bytes; errors stick in w->rc. */
static void emit(snap_writer *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n && !w->rc) {
        size_t part = sizeof(w->buf) - w->len;
        if (part > n)
            part = n;
        memcpy(w->buf + w->len, b, part);
        w->len += part;
        b += part;
        n -= part;
        if (w->len == sizeof(w->buf))
            flush(w);
    }
}

/* The zero bytes that pad n to a multiple of 4. */
static size_t pad4(size_t n)
{
    return (4 - n % 4) % 4;
}

/* Bytes of one level-0 list in a snapshot: u32 count and m0 u32 links,
 * packed in memory or not. */
static size_t disk_list_bytes(const vf_hnsw *h)
{
    return (1 + (size_t)h->m0) * sizeof(uint32_t);
}

/* Bytes of one code record in a snapshot: u8 codes[dim], zero pad to 4,
 * f32 a_x (longer than the in-memory record, quantizer.h). */
static size_t disk_code_bytes(const vf_hnsw *h)
{
    return h->dim + pad4(h->dim) + sizeof(float);
}

/* The f32 bits of v. */
static uint32_t f32_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}

static float f32_from(uint32_t u)
{
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Whether the INT8 index has a quantizer to write. */
static bool quant_in_snapshot(const vf_hnsw *h)
{
    return h->quant == VF_QUANT_INT8 && atomic_load(&h->quant_trained);
}

int vf_hnsw_serialize(const vf_hnsw *ch, vf_write_fn write, void *ctx)
{
    if (!ch || !write)
        return -EINVAL;
    vf_hnsw *h = (vf_hnsw *)ch;
    /* On the stack: a snapshot must not need memory it may not get. */
    snap_writer sw = {.write = write, .ctx = ctx}, *w = &sw;
    pthread_rwlock_rdlock(&h->grow_lock);
    size_t slots = h->capacity;
    while (slots > 0 && slot_state(h, (uint32_t)(slots - 1)) == VF_SLOT_EMPTY)
        slots--;
    uint64_t upper_words = 0;
    for (size_t i = 0; i < slots; i++)
        if (slot_state(h, (uint32_t)i) != VF_SLOT_EMPTY)
            upper_words += vf_upper_len(h, node_level(h, (uint32_t)i));
    const bool quant = quant_in_snapshot(h);

    uint8_t head[VF_SNAPSHOT_HEADER2] = {0};
    uint64_t entry = atomic_load(&h->entry);
    memcpy(head, VF_SNAPSHOT_MAGIC, 8);
    vc_le_put32(head + 8, VF_SNAPSHOT_VERSION);
    vc_le_put32(head + 12, VF_SNAPSHOT_HEADER2);
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
    vc_le_put32(head + 88, (uint32_t)h->quant);
    vc_le_put32(head + 92, h->rerank);
    if (quant) {
        vc_le_put32(head + 96, f32_bits(h->q.scale));
        vc_le_put32(head + 100, f32_bits((float)h->q.train_clip_share));
        vc_le_put32(head + 104, f32_bits((float)h->q.train_error));
        vc_le_put64(head + 112, h->q.trained_on);
    }

    static const uint8_t zeros[4];
    const size_t list_bytes = disk_list_bytes(h);
    emit(w, head, sizeof(head));
    for (size_t i = 0; i < slots; i++) {
        uint8_t st = slot_state(h, (uint32_t)i);
        emit(w, &st, 1);
    }
    for (size_t i = 0; i < slots; i++) {
        uint8_t level = (uint8_t)node_level(h, (uint32_t)i);
        emit(w, &level, 1);
    }
    emit(w, zeros, pad4(2 * slots));
    /* Level-0 lists are written as u32 count and links, zero-filled past
     * the count. */
    uint32_t list[1 + 2 * VF_HNSW_MAX_M];
    for (size_t i = 0; i < slots; i++) {
        list_read(h, (uint32_t)i, 0, list);
        memset(list + 1 + list[0], 0, (h->m0 - list[0]) * sizeof(uint32_t));
        emit(w, list, list_bytes);
    }
    if (h->quant == VF_QUANT_NONE) {
        for (size_t i = 0; i < slots; i++) {
            uint8_t crc[4] = {0};
            if (slot_state(h, (uint32_t)i) == VF_SLOT_PRESENT)
                vc_le_put32(crc, vc_crc32c(0, vf_node_rec(h, (uint32_t)i), h->rec_bytes));
            emit(w, crc, sizeof(crc));
        }
    }
    if (quant) {
        emit(w, h->q.offset, (size_t)h->dim * sizeof(float));
        for (size_t i = 0; i < slots; i++) {
            const uint8_t *rec = vf_node_rec(h, (uint32_t)i);
            uint8_t corr[4];
            vc_le_put32(corr, f32_bits(vf_quant_corr_f32(&h->q, rec)));
            emit(w, rec, h->dim);
            emit(w, zeros, pad4(h->dim));
            emit(w, corr, sizeof(corr));
        }
    }
    for (size_t i = 0; i < slots; i++)
        if (slot_state(h, (uint32_t)i) != VF_SLOT_EMPTY && node_level(h, (uint32_t)i) > 0)
            emit(w, vf_node_upper(h, (uint32_t)i, 1),
                 vf_upper_len(h, node_level(h, (uint32_t)i)) * sizeof(uint32_t));
    flush(w);
    int rc = w->rc;
    if (!rc) {
        uint8_t crc[4];
        vc_le_put32(crc, w->crc);
        rc = w->write(ctx, crc, sizeof(crc));
        if (rc > 0)
            rc = -EIO;
    }
    pthread_rwlock_unlock(&h->grow_lock);
    return rc;
}

/* Checks a used slot's lists against invariants 1-3 of hnsw.c. slots is
 * the number of slots; 0 or -EILSEQ. */
static int slot_valid(const vf_hnsw *h, uint32_t id, size_t slots)
{
    uint32_t buf[1 + 2 * VF_HNSW_MAX_M];
    for (unsigned lev = 0; lev <= node_level(h, id); lev++) {
        const uint32_t *list = list_read(h, id, lev, buf);
        if (list[0] > (lev ? h->m : h->m0))
            return -EILSEQ;
        for (uint32_t j = 0; j < list[0]; j++) {
            uint32_t to = list[1 + j];
            if (to >= slots || to == id || slot_state(h, to) == VF_SLOT_EMPTY ||
                node_level(h, to) < lev)
                return -EILSEQ;
        }
    }
    return 0;
}

/* Checks a used slot's vector record (invariant 3): for INT8 the
 * snapshot's code record at `codes` (which memory does not keep). 0 or
 * -EILSEQ. */
static int rec_valid(const vf_hnsw *h, const uint8_t *codes, uint32_t id)
{
    if (h->quant == VF_QUANT_INT8) {
        const uint8_t *rec = codes + (size_t)id * disk_code_bytes(h);
        return isfinite(f32_from(vc_le_get32(rec + h->dim + pad4(h->dim)))) ? 0 : -EILSEQ;
    }
    return vf_hnsw_query_finite((const float *)vf_node_rec(h, id), h->dim) ? 0 : -EILSEQ;
}

/* Adds b to *a unless it overflows; false on overflow. */
static bool add_size(size_t *a, uint64_t b)
{
    if (b > SIZE_MAX - *a)
        return false;
    *a += (size_t)b;
    return true;
}

/* The header fields both versions share, and where sections start. */
typedef struct snap_layout {
    uint32_t version;
    vf_hnsw_params p;
    uint32_t entry_id, entry_level;
    uint64_t draws, slots, count, upper_words;
    float scale, clip_share, error;
    uint64_t trained_on;
    bool codes; /* INT8 with a quantizer: offsets and codes follow the lists */
} snap_layout;

/* Reads and checks the header. 0 or -EILSEQ. */
static int header_read(const uint8_t *b, size_t len, snap_layout *l)
{
    if (len < VF_SNAPSHOT_HEADER1 + 4 || memcmp(b, VF_SNAPSHOT_MAGIC, 8) != 0)
        return -EILSEQ;
    l->version = vc_le_get32(b + 8);
    uint32_t header = vc_le_get32(b + 12);
    if (!(l->version == VF_SNAPSHOT_V1 && header == VF_SNAPSHOT_HEADER1) &&
        !(l->version == VF_SNAPSHOT_VERSION && header == VF_SNAPSHOT_HEADER2 &&
          len >= VF_SNAPSHOT_HEADER2 + 4))
        return -EILSEQ;
    if (vc_crc32c(0, b, len - 4) != vc_le_get32(b + len - 4))
        return -EILSEQ;
    l->p = (vf_hnsw_params){
        .dim = vc_le_get32(b + 16),
        .metric = (vf_metric)vc_le_get32(b + 20),
        .m = vc_le_get32(b + 24),
        .ef_construction = vc_le_get32(b + 28),
        .ef_search = vc_le_get32(b + 32),
        .seed = vc_le_get64(b + 48),
        .quantization = VF_QUANT_NONE,
    };
    l->entry_id = vc_le_get32(b + 36);
    l->entry_level = vc_le_get32(b + 40);
    l->draws = vc_le_get64(b + 56);
    l->slots = vc_le_get64(b + 64);
    l->count = vc_le_get64(b + 72);
    l->upper_words = vc_le_get64(b + 80);
    if (vc_le_get32(b + 44) != 0 || l->slots > UINT32_MAX || l->count > l->slots)
        return -EILSEQ;
    l->codes = false;
    if (l->version == VF_SNAPSHOT_V1)
        return 0;
    l->p.quantization = (vf_quant_kind)vc_le_get32(b + 88);
    l->p.rerank = vc_le_get32(b + 92);
    l->scale = f32_from(vc_le_get32(b + 96));
    l->clip_share = f32_from(vc_le_get32(b + 100));
    l->error = f32_from(vc_le_get32(b + 104));
    l->trained_on = vc_le_get64(b + 112);
    if (vc_le_get32(b + 108) != 0 || l->p.rerank == 0)
        return -EILSEQ;
    if (l->p.quantization != VF_QUANT_INT8) {
        /* NONE (or an unknown kind, which alloc rejects) has no quantizer. */
        return l->trained_on || f32_bits(l->scale) || f32_bits(l->clip_share) || f32_bits(l->error)
                   ? -EILSEQ
                   : 0;
    }
    l->codes = l->trained_on > 0;
    if (l->codes && (!isfinite(l->scale) || !(l->scale > 0.0f) || !isfinite(l->clip_share) ||
                     !isfinite(l->error)))
        return -EILSEQ;
    /* An untrained quantizer means nothing was ever inserted. */
    return !l->codes && l->slots ? -EILSEQ : 0;
}

/* Sets up h's quantizer from the header and the dim offsets at b. */
static int quant_load(vf_hnsw *h, const snap_layout *l, const uint8_t *b)
{
    for (uint32_t d = 0; d < h->dim; d++) {
        float o = f32_from(vc_le_get32(b + 4 * (size_t)d));
        if (!isfinite(o))
            return -EILSEQ;
        h->q.offset[d] = o;
    }
    h->q.scale = l->scale;
    vf_quant_derive(&h->q);
    h->q.trained_on = l->trained_on;
    h->q.train_clip_share = l->clip_share;
    h->q.train_error = l->error;
    atomic_store(&h->quant_trained, true);
    return 0;
}

/* Fills the float vectors of a NONE index's present slots from src; a
 * slot src has no original for, or one whose CRC-32C differs from crcs
 * (the snapshot's), stays zeros and is marked missing. */
static int vectors_load(vf_hnsw *h, size_t slots, const uint8_t *crcs, const vf_vec_source *src)
{
    if (!src || !src->get)
        return -ENOENT;
    vf_scratch *s = vf_scratch_acquire(h, 1);
    if (!s)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < slots && !rc; i++) {
        if (slot_state(h, (uint32_t)i) != VF_SLOT_PRESENT)
            continue;
        const float *x = src->get(src->ctx, (uint32_t)i, s->orig);
        uint8_t *rec = vf_node_rec(h, (uint32_t)i);
        if (x && vf_hnsw_query_finite(x, h->dim)) {
            vf_hnsw_rec_encode(h, s, x, rec, false);
            if (vc_crc32c(0, rec, h->rec_bytes) == vc_le_get32(crcs + 4 * i))
                continue;
            memset(rec, 0, h->rec_bytes);
            x = NULL;
        }
        if (!x) {
            if (!h->missing && !(h->missing = vc_calloc(slots, 1))) {
                rc = -ENOMEM;
                break;
            }
            h->missing_cap = slots;
            h->missing[i] = 1;
            atomic_fetch_add(&h->missing_count, 1);
        } else {
            rc = -EILSEQ; /* a non-finite original */
        }
    }
    vf_scratch_release(h, s);
    return rc;
}

/* Packs the slots u32 level-0 lists at `lists` (disk_list_bytes each)
 * into h's nodes. Each list's count and links are checked for what the
 * code needs (count <= m0, links below slots, no link twice: list_commit
 * sorts them, so a repeat sits next to itself); slot_valid checks the
 * rest. 0 or -EILSEQ (h is then discarded). */
static int level0_pack(vf_hnsw *h, size_t slots, const uint8_t *lists)
{
    uint32_t list[1 + 2 * VF_HNSW_MAX_M];
    for (size_t i = 0; i < slots; i++) {
        const uint8_t *at = lists + i * disk_list_bytes(h);
        list[0] = vc_le_get32(at);
        if (list[0] > h->m0)
            return -EILSEQ;
        for (uint32_t j = 0; j < list[0]; j++) {
            list[1 + j] = vc_le_get32(at + 4 * (1 + (size_t)j));
            if (list[1 + j] >= slots)
                return -EILSEQ;
        }
        list_commit(h, (uint32_t)i, 0, list);
        for (uint32_t j = 1; j < list[0]; j++)
            if (list[j] == list[1 + j])
                return -EILSEQ;
    }
    return 0;
}

/* Copies the level-0 section (and for version 2 the quantizer and codes)
 * at *at into h, advancing *at; *crcs is where a NONE index's vector
 * CRCs start (version 2), *codes where an INT8 index's code records do
 * (when it has a quantizer). */
static int level0_load(vf_hnsw *h, const snap_layout *l, const uint8_t **at, const uint8_t **crcs,
                       const uint8_t **codes)
{
    size_t slots = (size_t)l->slots;
    if (l->version == VF_SNAPSHOT_V1) {
        if (slots)
            memcpy(h->level0, *at, slots * h->node_bytes);
        *at += slots * h->node_bytes;
        return 0;
    }
    const size_t list_bytes = disk_list_bytes(h);
    if (h->packed) {
        int rc = level0_pack(h, slots, *at);
        if (rc)
            return rc;
    } else {
        for (size_t i = 0; i < slots; i++)
            memcpy(vf_node_links0(h, (uint32_t)i), *at + i * list_bytes, list_bytes);
    }
    *at += slots * list_bytes;
    if (h->quant == VF_QUANT_NONE) {
        *crcs = *at;
        *at += slots * 4;
    }
    if (!l->codes)
        return 0;
    int rc = quant_load(h, l, *at);
    if (rc)
        return rc;
    *at += (size_t)h->dim * sizeof(float);
    *codes = *at;
    for (size_t i = 0; i < slots; i++) {
        uint8_t *rec = vf_node_rec(h, (uint32_t)i);
        memcpy(rec, *at + i * disk_code_bytes(h), h->dim);
        vf_quant_corr_set(&h->q, rec);
    }
    *at += slots * disk_code_bytes(h);
    return 0;
}

/* The byte length the layout implies, or 0 on overflow. */
static size_t layout_len(const vf_hnsw *h, const snap_layout *l)
{
    size_t need = l->version == VF_SNAPSHOT_V1 ? VF_SNAPSHOT_HEADER1 : VF_SNAPSHOT_HEADER2;
    size_t per_slot = l->version == VF_SNAPSHOT_V1 ? h->node_bytes : disk_list_bytes(h);
    uint64_t slots = l->slots;
    bool ok = add_size(&need, 2 * slots + pad4(2 * slots)) && slots <= SIZE_MAX / per_slot &&
              add_size(&need, slots * per_slot) && l->upper_words <= SIZE_MAX / 4 &&
              add_size(&need, l->upper_words * 4) && add_size(&need, 4);
    if (ok && l->version != VF_SNAPSHOT_V1 && l->p.quantization == VF_QUANT_NONE)
        ok = add_size(&need, slots * 4);
    if (ok && l->codes)
        ok = add_size(&need, (uint64_t)h->dim * 4) && slots <= SIZE_MAX / disk_code_bytes(h) &&
             add_size(&need, slots * disk_code_bytes(h));
    return ok ? need : 0;
}

int vf_hnsw_snapshot_dim(const void *bytes, size_t len, uint32_t *dim)
{
    const uint8_t *b = bytes;
    if (!b || !dim || len < VF_SNAPSHOT_HEADER1 || memcmp(b, VF_SNAPSHOT_MAGIC, 8) != 0)
        return -EILSEQ;
    uint32_t version = vc_le_get32(b + 8);
    if (version != VF_SNAPSHOT_V1 && version != VF_SNAPSHOT_VERSION)
        return -EILSEQ;
    *dim = vc_le_get32(b + 16);
    return 0;
}

int vf_hnsw_deserialize(const void *bytes, size_t len, const vf_vec_source *src, vf_hnsw **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!bytes)
        return -EINVAL;
    const uint8_t *b = bytes;
    snap_layout l;
    int rc = header_read(b, len, &l);
    if (rc)
        return rc;
    vf_hnsw *h = NULL;
    rc = vf_hnsw_alloc(&l.p, &h);
    if (rc)
        return rc == -EINVAL ? -EILSEQ : rc;
    const uint64_t slots = l.slots, count = l.count;

    /* Every section's size, overflow-checked, must add up to len. */
    if (layout_len(h, &l) != len) {
        rc = -EILSEQ;
        goto fail;
    }
    rc = vf_hnsw_grow_locked(h, (size_t)slots);
    if (rc)
        goto fail;

    const uint8_t *states =
        b + (l.version == VF_SNAPSHOT_V1 ? VF_SNAPSHOT_HEADER1 : VF_SNAPSHOT_HEADER2);
    const uint8_t *levels = states + slots;
    const uint8_t *upper = levels + slots + pad4(2 * slots);
    const uint8_t *crcs = NULL, *codes = NULL;
    rc = level0_load(h, &l, &upper, &crcs, &codes);
    if (rc)
        goto fail;
    size_t present = 0, used = 0;
    uint64_t words_left = l.upper_words;
    for (size_t i = 0; i < slots; i++) {
        uint8_t st = states[i], level = levels[i];
        /* The count on disk becomes the lock word: a sequence of 0. */
        uint32_t count0 = vf_node_links0(h, (uint32_t)i)[0];
        if (st > VF_SLOT_DELETED || level > VF_HNSW_MAX_LEVEL || count0 > h->m0 ||
            (st == VF_SLOT_EMPTY && (level != 0 || count0 != 0))) {
            rc = -EILSEQ;
            goto fail;
        }
        slot_state_set(h, (uint32_t)i, st);
        node_level_set(h, (uint32_t)i, level);
        used += st != VF_SLOT_EMPTY;
        present += st == VF_SLOT_PRESENT;
        if (st == VF_SLOT_EMPTY || level == 0)
            continue;
        uint64_t words = vf_upper_len(h, level);
        if (words > words_left) {
            rc = -EILSEQ;
            goto fail;
        }
        /* Held and claimed as an insert does (the grow above forecast
         * room for most). */
        rc = vf_upper_hold(h);
        if (rc)
            goto fail;
        vf_upper_claim(h, (uint32_t)i, level);
        memcpy(vf_node_upper(h, (uint32_t)i, 1), upper, words * 4);
        upper += words * 4;
        words_left -= words;
    }
    if (words_left != 0 || present != count) {
        rc = -EILSEQ;
        goto fail;
    }
    for (size_t i = 0; i < slots; i++) {
        if (slot_state(h, (uint32_t)i) != VF_SLOT_EMPTY &&
            slot_valid(h, (uint32_t)i, (size_t)slots) != 0) {
            rc = -EILSEQ;
            goto fail;
        }
    }
    if (l.entry_level == VF_SNAPSHOT_NO_LEVEL) {
        if (used != 0 || l.entry_id != 0) {
            rc = -EILSEQ;
            goto fail;
        }
    } else {
        if (l.entry_id >= slots || slot_state(h, l.entry_id) == VF_SLOT_EMPTY ||
            node_level(h, l.entry_id) != l.entry_level) {
            rc = -EILSEQ;
            goto fail;
        }
        atomic_store(&h->entry, ((uint64_t)l.entry_level << 32) | l.entry_id);
    }
    /* The structure holds; only now is the caller's source asked. */
    if (l.version != VF_SNAPSHOT_V1 && h->quant == VF_QUANT_NONE && present > 0) {
        rc = vectors_load(h, (size_t)slots, crcs, src);
        if (rc)
            goto fail;
    }
    for (size_t i = 0; i < slots; i++) {
        if (slot_state(h, (uint32_t)i) != VF_SLOT_EMPTY && rec_valid(h, codes, (uint32_t)i) != 0) {
            rc = -EILSEQ;
            goto fail;
        }
    }
    atomic_store(&h->count, present);
    atomic_store(&h->deleted, used - present);
    atomic_store(&h->level_draws, l.draws);
    rc = vf_hnsw_links_settle(h);
    if (rc)
        goto fail;
    *out = h;
    return 0;
fail:
    vf_hnsw_free(h);
    return rc;
}
