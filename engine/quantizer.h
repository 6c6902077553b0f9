/*
 * quantizer.h — int8 scalar quantization of float32 vectors: the codec
 * (learn, encode, decode), the code distances and the drift counters.
 * Internal to the engine; the index embeds one (hnsw_internal.h).
 *
 * Encoding (docs/quantization.md)
 *   x_i ~ o_i + s * c_i with c_i in 0..255: a per-dimension offset o and
 *   ONE scale s shared by all dimensions. Because s is shared, distances
 *   between decoded vectors come exactly from the integer sums of the code
 *   kernels plus a per-vector correction:
 *     l2(x, y)  = s^2 * sum (c_x - c_y)^2                 (l2sq_u8)
 *     x . y     = C + a_x + a_y + s^2 * sum c_x c_y         (dot_u8)
 *   with C = sum o_i^2 and a_x = s * sum o_i c_xi stored per vector.
 *
 * A code record is rec_bytes long: u8 codes[dim], zero padding to a
 * multiple of 4, f32 a_x. The index stores one per level-0 node.
 *
 * Invariants
 *   1. scale > 0 and every offset is finite once trained.
 *   2. A record is always decoded with the quantizer that encoded it: the
 *      index swaps codes and quantizer together (vf_hnsw_quant_relearn).
 *   3. Drift counters are statistics: relaxed atomics, racing updates may
 *      blur one window, never corrupt the codec.
 */
#ifndef VECFS_ENGINE_QUANTIZER_H
#define VECFS_ENGINE_QUANTIZER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "engine.h"

/* Vectors a quantizer is learned from at most (a strided sample). */
#define VF_QUANT_SAMPLE 2048u
/* Below this many training vectors the learned range is widened and the
 * quantizer counts as provisional. */
#define VF_QUANT_FULL_TRAIN 256u

typedef struct vf_quant {
    uint32_t dim;
    size_t codes_bytes; /* dim rounded up to a multiple of 4 */
    size_t rec_bytes;   /* codes_bytes + the f32 correction */
    float scale;        /* s */
    float scale_sq;     /* s^2 */
    float c;            /* sum o_i^2 */
    float *offset;      /* o, dim floats */
    vf_code_kernel_fn l2sq_u8, dot_u8;
    uint64_t trained_on; /* 0 = untrained */
    double train_clip_share, train_error;

    /* Drift (invariant 3). */
    _Atomic uint64_t win_vectors, win_values, win_clipped, win_error_ppm;
    _Atomic uint64_t recent_clip_ppm, recent_error_ppm, recent_full;
    _Atomic uint64_t encoded_since;
} vf_quant;

/* Sets q up for dim with no training (offsets allocated). 0 or -ENOMEM. */
int vf_quant_init(vf_quant *q, uint32_t dim);
/* Frees what init allocated; q may be zeroed. */
void vf_quant_release(vf_quant *q);

/* Learns q from n vectors (row-major, n x dim, finite, already as the
 * index keeps them: unit length for cosine), a strided sample of at most
 * VF_QUANT_SAMPLE of them, and resets the drift counters. q's offsets are
 * overwritten in place. 0 or -ENOMEM (q unchanged). */
int vf_quant_learn(vf_quant *q, const float *vecs, size_t n);

/* Encodes x into a code record at rec (rec_bytes). When `track` the
 * encoding counts in the drift window. */
void vf_quant_encode(vf_quant *q, const float *x, uint8_t *rec, bool track);

/* Writes the decoded vector of rec to out (dim floats). */
void vf_quant_decode(const vf_quant *q, const uint8_t *rec, float *out);
/* decode(encode(x)) into out (out may be x), without a record and with
 * nothing counted for drift. */
void vf_quant_round_trip(const vf_quant *q, const float *x, float *out);

/* Clipped values and squared error of encoding x (for tests and stats). */
void vf_quant_measure(const vf_quant *q, const float *x, size_t *clipped, double *rel_error);

/* Whether the drift rule fires (docs/quantization.md): the last window's
 * clipped share or error is far above training's, or the quantizer is
 * provisional and the index (`count` vectors) has outgrown it. */
bool vf_quant_drifted(const vf_quant *q, size_t count);

/* The correction a_x of a record. */
static inline float vf_quant_corr(const vf_quant *q, const uint8_t *rec)
{
    float a;
    memcpy(&a, rec + q->codes_bytes, sizeof(a));
    return a;
}

/* Squared l2 between the decoded vectors of two records. */
static inline float vf_quant_l2sq(const vf_quant *q, const uint8_t *a, const uint8_t *b)
{
    return q->scale_sq * (float)q->l2sq_u8(a, b, q->dim);
}

/* Dot product of the decoded vectors of two records. */
static inline float vf_quant_dot(const vf_quant *q, const uint8_t *a, const uint8_t *b)
{
    return q->c + vf_quant_corr(q, a) + vf_quant_corr(q, b) +
           q->scale_sq * (float)q->dot_u8(a, b, q->dim);
}

#endif /* VECFS_ENGINE_QUANTIZER_H */
