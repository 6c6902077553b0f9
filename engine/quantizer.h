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
 *   with C = sum o_i^2 and a_x = s * sum o_i c_xi, a function of the codes.
 *   A record keeps a_x in 16-bit fixed point, k_x = round((a_x - lo) /
 *   step) with step = (hi - lo) / 65535 over a bound [lo, hi] of a_x, so
 *   the kept lo + step * k_x is within step / 2 of a_x:
 *     box    every c_i in 0..255: s * 255 * sum min(0, o_i) .. the same
 *            over max(0, o_i). Always holds.
 *     unit   for an index of unit vectors (cosine), a_x = o . x^ - C with
 *            x^ the decoded vector, |x^| <= R = 1 + s sqrt(dim) + |g|, so
 *            a_x in -|o| R - C .. |o| R - C (intersected with the box).
 *            Rounding moves a value by s / 2 at most (s sqrt(dim) is
 *            twice that over all dimensions: room for float rounding); a
 *            clipped value lands on its range's near end, o_i or o_i +
 *            255 s, g_i from 0 at most (g_i is how far 0 lies outside the
 *            range, 0 when the range holds it).
 *   vf_quant_dot then costs what it did with a float a_x:
 *     x . y     = (C + 2 lo) + step * (k_x + k_y) + s^2 * sum c_x c_y
 *
 * A code record is rec_bytes = dim + 2 long: u8 codes[dim], u16 k_x
 * (little-endian, at any alignment). The index stores one per level-0
 * node; snapshots keep an older, longer form (snapshot.c).
 *
 * Invariants
 *   1. scale > 0 and every offset is finite once trained.
 *   2. A record is always decoded with the quantizer that encoded it: the
 *      index swaps codes and quantizer together (vf_hnsw_quant_relearn).
 *   3. Drift counters are statistics: relaxed atomics, racing updates may
 *      blur one window, never corrupt the codec.
 *   4. scale_sq, the bound and the dot constants follow offset and scale:
 *      whoever sets those calls vf_quant_derive before the next encode.
 *   5. A record is a function of its codes (k_x is computed from them), so
 *      equal codes are equal records (the index's twins compare records).
 */
#ifndef VECFS_ENGINE_QUANTIZER_H
#define VECFS_ENGINE_QUANTIZER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "le.h"

/* Vectors a quantizer is learned from at most (a strided sample). */
#define VF_QUANT_SAMPLE 2048u
/* Below this many training vectors the learned range is widened and the
 * quantizer counts as provisional. */
#define VF_QUANT_FULL_TRAIN 256u

typedef struct vf_quant {
    uint32_t dim;
    bool unit;        /* encodes vectors of length <= 1: the unit bound */
    size_t rec_bytes; /* dim codes + the u16 correction */
    float scale;      /* s */
    float scale_sq;   /* s^2 */
    double corr_lo;   /* lo: a_x ~ corr_lo + corr_step * k_x */
    double corr_step; /* step > 0 */
    float dot_base;   /* C + 2 lo */
    float dot_step;   /* step, for vf_quant_dot */
    float *offset;    /* o, dim floats */
    vf_code_kernel_fn l2sq_u8, dot_u8;
    uint64_t trained_on; /* 0 = untrained */
    double train_clip_share, train_error;

    /* Drift (invariant 3). */
    _Atomic uint64_t win_vectors, win_values, win_clipped, win_error_ppm;
    _Atomic uint64_t recent_clip_ppm, recent_error_ppm, recent_full;
    _Atomic uint64_t encoded_since;
} vf_quant;

/* Sets q up for dim with no training (offsets allocated). unit: every
 * vector q will encode has length at most 1 (an index of unit vectors,
 * cosine), which allows the tighter bound of the correction. 0 or -ENOMEM. */
int vf_quant_init(vf_quant *q, uint32_t dim, bool unit);
/* Frees what init allocated; q may be zeroed. */
void vf_quant_release(vf_quant *q);

/* Learns q from n vectors (row-major, n x dim, finite, already as the
 * index keeps them: unit length for cosine), a strided sample of at most
 * VF_QUANT_SAMPLE of them, and resets the drift counters. q's offsets are
 * overwritten in place. 0 or -ENOMEM (q unchanged). */
int vf_quant_learn(vf_quant *q, const float *vecs, size_t n);

/* Computes what follows from q's offsets and scale (invariant 4): s^2, the
 * correction's bound and step, the dot constants. For a quantizer whose
 * offsets and scale were set by hand (a snapshot's, a re-learn's swap). */
void vf_quant_derive(vf_quant *q);

/* Encodes x into a code record at rec (rec_bytes). When `track` the
 * encoding counts in the drift window. x must be at most unit length when
 * q->unit (else a correction past the bound is clamped to it). */
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

/* a_x of the codes at rec, computed from them as encoding does, as f32:
 * the correction of a snapshot's code record (snapshot.c). */
float vf_quant_corr_f32(const vf_quant *q, const uint8_t *rec);
/* Writes k_x of the codes at rec into rec, as encoding does (a record
 * read back from a snapshot, whose correction is the f32 a_x). A value
 * past the bound (a vector longer than q->unit promises, codes from a
 * crafted snapshot) is clamped to it. */
void vf_quant_corr_set(const vf_quant *q, uint8_t *rec);

/* The fixed-point correction k_x of a record. */
static inline uint16_t vf_quant_corr(const vf_quant *q, const uint8_t *rec)
{
    return vc_le_get16(rec + q->dim);
}

/* Squared l2 between the decoded vectors of two records. */
static inline float vf_quant_l2sq(const vf_quant *q, const uint8_t *a, const uint8_t *b)
{
    return q->scale_sq * (float)q->l2sq_u8(a, b, q->dim);
}

/* Dot product of the decoded vectors of two records. */
static inline float vf_quant_dot(const vf_quant *q, const uint8_t *a, const uint8_t *b)
{
    return q->dot_base + q->dot_step * (float)(vf_quant_corr(q, a) + vf_quant_corr(q, b)) +
           q->scale_sq * (float)q->dot_u8(a, b, q->dim);
}

#endif /* VECFS_ENGINE_QUANTIZER_H */
