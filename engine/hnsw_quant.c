/*
 * hnsw_quant.c — an INT8 index's quantizer over its life: training on the
 * first vectors, drift figures, and re-learning from the originals
 * (docs/quantization.md). Records themselves: hnsw_record.c.
 *
 * States of an INT8 index's quantizer
 *   UNTRAINED --first insert or vf_hnsw_quant_train--> TRAINED
 *   TRAINED --vf_hnsw_quant_relearn--> TRAINED (new offsets and scale)
 *   The first training happens under quant_lock before any code exists and
 *   is published by quant_trained (release); a re-learn swaps codes and
 *   quantizer together under grow_lock (write).
 *
 * Invariants
 *   1. Every code record in level0 was encoded by the current quantizer
 *      (quantizer.h invariant 2).
 *   2. A search or insert reads the quantizer only after seeing
 *      quant_trained, under grow_lock (read).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hnsw_internal.h"

/* Learns q from n vectors, normalized first for cosine. 0 or -ENOMEM. */
static int learn_from(const vf_hnsw *h, vf_quant *q, const float *vecs, size_t n)
{
    if (h->metric != VF_METRIC_COSINE)
        return vf_quant_learn(q, vecs, n);
    size_t rows = n < VF_QUANT_SAMPLE ? n : VF_QUANT_SAMPLE, stride = n / rows;
    float *unit = vc_malloc(rows * h->dim * sizeof(float));
    if (!unit)
        return -ENOMEM;
    for (size_t r = 0; r < rows; r++)
        vf_normalize(vecs + r * stride * h->dim, unit + r * h->dim, h->dim);
    int rc = vf_quant_learn(q, unit, rows);
    free(unit);
    return rc;
}

int vf_hnsw_quant_ready(vf_hnsw *h, const float *vecs, size_t n)
{
    if (h->quant == VF_QUANT_NONE || atomic_load_explicit(&h->quant_trained, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&h->quant_lock);
    int rc = 0;
    if (!atomic_load_explicit(&h->quant_trained, memory_order_relaxed)) {
        rc = learn_from(h, &h->q, vecs, n);
        if (!rc)
            atomic_store_explicit(&h->quant_trained, true, memory_order_release);
    }
    pthread_mutex_unlock(&h->quant_lock);
    return rc;
}

int vf_hnsw_quant_train(vf_hnsw *h, const float *vecs, size_t n)
{
    if (!h || !vecs || n == 0 || h->quant != VF_QUANT_INT8)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!vf_hnsw_query_finite(vecs + i * h->dim, h->dim))
            return -EINVAL;
    if (atomic_load(&h->quant_trained) || atomic_load_explicit(&h->count, memory_order_relaxed) > 0)
        return -EEXIST;
    return vf_hnsw_quant_ready(h, vecs, n);
}

void vf_hnsw_quant_stats(const vf_hnsw *h, vf_quant_stats *out)
{
    *out = (vf_quant_stats){0};
    if (!h)
        return;
    out->kind = h->quant;
    if (h->quant == VF_QUANT_NONE)
        return;
    out->rerank = h->rerank;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&h->grow_lock);
    if (atomic_load_explicit(&h->quant_trained, memory_order_acquire)) {
        const vf_quant *q = &h->q;
        out->trained_on = q->trained_on;
        out->scale = q->scale;
        out->train_clip_share = q->train_clip_share;
        out->train_error = q->train_error;
        out->recent_clip_share = (double)atomic_load(&q->recent_clip_ppm) / 1e6;
        out->recent_error = (double)atomic_load(&q->recent_error_ppm) / 1e6;
        out->encoded_since_train = atomic_load(&q->encoded_since);
        out->drifted = vf_quant_drifted(q, atomic_load_explicit(&h->count, memory_order_relaxed));
    }
    out->relearns = atomic_load(&h->relearns);
    pthread_rwlock_unlock((pthread_rwlock_t *)&h->grow_lock);
}

/* The original of id as the index keeps vectors (unit for cosine) in
 * buf, or, when src has none, the decoding of its current code (made unit
 * again for cosine: a decoded vector can be a little longer, and the
 * quantizer's bound counts on unit ones). */
static const float *original_or_decoded(const vf_hnsw *h, const vf_vec_source *src, uint32_t id,
                                        float *buf)
{
    const float *x = slot_state(h, id) == VF_SLOT_PRESENT ? src->get(src->ctx, id, buf) : NULL;
    if (!x || !vf_hnsw_query_finite(x, h->dim)) {
        vf_quant_decode(&h->q, vf_node_rec(h, id), buf);
        x = buf;
    }
    if (h->metric == VF_METRIC_COSINE) {
        vf_normalize(x, buf, h->dim);
        return buf;
    }
    return x;
}

/* A quantizer learned from a strided sample of the present originals. */
static int relearn_train(const vf_hnsw *h, const vf_vec_source *src, vf_quant *q, float *buf)
{
    size_t present = 0;
    for (size_t i = 0; i < h->capacity; i++)
        present += slot_state(h, (uint32_t)i) == VF_SLOT_PRESENT;
    size_t rows = present < VF_QUANT_SAMPLE ? present : VF_QUANT_SAMPLE;
    if (rows == 0)
        rows = 1;
    float *sample = vc_malloc(rows * h->dim * sizeof(float));
    int rc = sample ? vf_quant_init(q, h->dim, h->q.unit) : -ENOMEM;
    if (rc) {
        free(sample);
        return rc;
    }
    size_t stride = present / rows ? present / rows : 1, seen = 0, got = 0;
    for (size_t i = 0; i < h->capacity && got < rows; i++) {
        if (slot_state(h, (uint32_t)i) != VF_SLOT_PRESENT || seen++ % stride)
            continue;
        memcpy(sample + got++ * h->dim, original_or_decoded(h, src, (uint32_t)i, buf),
               h->dim * sizeof(float));
    }
    rc = vf_quant_learn(q, sample, got ? got : 1);
    /* Trained on the present vectors, however few: not provisional. */
    q->trained_on = present > q->trained_on ? present : q->trained_on;
    free(sample);
    if (rc)
        vf_quant_release(q);
    return rc;
}

/* After the codes changed under grow_lock (write): twins are equal
 * codes, so the rings and the table of heads are rebuilt on the new ones,
 * and a former rider whose code now differs from every head's is linked
 * into the graph as an insert links a vector. Squared norms (dot) follow
 * the new codes. 0 or -ENOMEM (then some former riders stay unlinked:
 * counted as stranded, vf_hnsw_reconnect links them). */
static int twins_redo(vf_hnsw *h)
{
    uint8_t *rider = vc_calloc(h->capacity ? h->capacity : 1, 1);
    if (!rider)
        return -ENOMEM;
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t id = (uint32_t)i;
        rider[i] = slot_state(h, id) == VF_SLOT_PRESENT && ring_role(h, id) == VF_TWIN_RIDER;
        vf_twin_alone(h, id);
        ring_role_set(h, (uint32_t)i, VF_TWIN_HEAD);
        if (h->metric == VF_METRIC_DOT && slot_state(h, id) == VF_SLOT_PRESENT)
            vf_hnsw_sq_set(h, id, rec_sq(h, vf_node_rec(h, id)));
    }
    free(h->table);
    h->table = NULL;
    h->table_cap = h->table_used = h->table_gone = 0;
    int rc = vf_twin_rebuild(h, rider);
    vf_scratch *s = rc ? NULL : vf_scratch_acquire_write(h);
    if (!rc && !s)
        rc = -ENOMEM;
    for (size_t i = 0; !rc && i < h->capacity; i++) {
        if (!rider[i] || ring_role(h, (uint32_t)i) != VF_TWIN_HEAD)
            continue;
        atomic_store(&h->anchor[i], VF_NO_ANCHOR);
        vf_hnsw_connect(h, s, (uint32_t)i);
        vf_hnsw_orphans_settle(h, s, VF_DISPLACE_BUDGET);
    }
    if (s)
        vf_scratch_release(h, s);
    free(rider);
    return rc;
}

int vf_hnsw_quant_relearn(vf_hnsw *h, const vf_vec_source *src)
{
    if (!h || !src || !src->get || h->quant != VF_QUANT_INT8)
        return -EINVAL;
    if (!atomic_load_explicit(&h->quant_trained, memory_order_acquire))
        return 0; /* no code exists: the first insert trains */
    pthread_rwlock_rdlock(&h->grow_lock);
    size_t cap = h->capacity;
    vf_quant fresh;
    float *buf = vc_malloc(h->dim * sizeof(float));
    uint8_t *codes = cap ? vc_malloc(cap * h->rec_bytes) : NULL;
    int rc = buf && (codes || !cap) ? relearn_train(h, src, &fresh, buf) : -ENOMEM;
    if (rc) {
        pthread_rwlock_unlock(&h->grow_lock);
        free(buf);
        free(codes);
        return rc;
    }
    for (size_t i = 0; i < cap; i++)
        if (slot_state(h, (uint32_t)i) != VF_SLOT_EMPTY)
            vf_quant_encode(&fresh, original_or_decoded(h, src, (uint32_t)i, buf),
                            codes + i * h->rec_bytes, false);
    pthread_rwlock_unlock(&h->grow_lock);

    /* The swap: writers are quiesced, so capacity is still cap. */
    pthread_rwlock_wrlock(&h->grow_lock);
    assert(h->capacity == cap);
    for (size_t i = 0; i < cap; i++)
        if (slot_state(h, (uint32_t)i) != VF_SLOT_EMPTY)
            memcpy(vf_node_rec(h, (uint32_t)i), codes + i * h->rec_bytes, h->rec_bytes);
    float *old = h->q.offset;
    h->q.offset = fresh.offset;
    fresh.offset = old;
    h->q.scale = fresh.scale;
    vf_quant_derive(&h->q);
    h->q.trained_on = fresh.trained_on;
    h->q.train_clip_share = fresh.train_clip_share;
    h->q.train_error = fresh.train_error;
    atomic_store(&h->q.recent_full, 0);
    atomic_store(&h->q.encoded_since, 0);
    atomic_store(&h->q.win_vectors, 0);
    atomic_store(&h->q.win_values, 0);
    atomic_store(&h->q.win_clipped, 0);
    atomic_store(&h->q.win_error_ppm, 0);
    rc = twins_redo(h);
    atomic_fetch_add(&h->relearns, 1);
    pthread_rwlock_unlock(&h->grow_lock);
    vf_quant_release(&fresh);
    free(buf);
    free(codes);
    return rc;
}
