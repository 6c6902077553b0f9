/*
 * quantizer.c — int8 scalar quantization (quantizer.h): learning the
 * per-dimension offsets and the shared scale from data, encoding and
 * decoding, and the drift rule.
 *
 * Learning
 *   Per dimension, the clip range is [p, 1 - p] percentiles of a strided
 *   sample (VF_QUANT_TAIL each side: a few outliers must not stretch the
 *   step of everything else). The scale is the widest range / 255; each
 *   dimension's offset centres its range on the codes. A provisional
 *   quantizer (fewer than VF_QUANT_FULL_TRAIN vectors) widens every range
 *   by the widest one on both sides, so the data that follows rarely
 *   clips before the quantizer is re-learned.
 *
 * Correction
 *   A record's a_x is computed in double from its codes by one function
 *   (corr_of), whether an encode, a snapshot's save or its load asks, so
 *   all three agree to the bit; the fixed point k_x is rounded from that
 *   double. Bound and step: quantizer.h, "Encoding".
 *
 * Drift
 *   Every tracked encode adds its clipped values and its relative squared
 *   error to the current window; the encode that completes a window of
 *   VF_QUANT_WINDOW vectors publishes the window's figures and starts the
 *   next. Drift = the last window clips more than 4 x the training share
 *   + 0.2 % of its values, or its error is over 2 x training's + 0.001,
 *   or the quantizer is provisional and the index holds VF_QUANT_FULL_TRAIN
 *   vectors or more.
 *
 * Invariants: quantizer.h.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "quantizer.h"

/* Share of each tail clipped when learning the range. */
#define VF_QUANT_TAIL 0.0005
#define VF_PPM 1000000.0

/* The largest fixed-point correction. */
#define VF_QUANT_CORR_MAX 65535.0

int vf_quant_init(vf_quant *q, uint32_t dim, bool unit)
{
    memset(q, 0, sizeof(*q));
    q->dim = dim;
    q->unit = unit;
    q->rec_bytes = (size_t)dim + sizeof(uint16_t);
    q->offset = vc_calloc(dim, sizeof(float));
    if (!q->offset)
        return -ENOMEM;
    q->scale = 1.0f;
    vf_quant_derive(q);
    const vf_kernels *k = vf_kernels_best();
    q->l2sq_u8 = k->l2sq_u8;
    q->dot_u8 = k->dot_u8;
    return 0;
}

void vf_quant_release(vf_quant *q)
{
    free(q->offset);
    q->offset = NULL;
}

static int float_cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The code of value v in a dimension of offset o; *clipped counts a value
 * more than half a step outside the codes. */
static inline uint8_t code_of(float v, float o, float inv_scale, size_t *clipped)
{
    float t = (v - o) * inv_scale;
    if (t < 0.0f) {
        *clipped += t < -0.5f;
        return 0;
    }
    if (t >= 255.0f) {
        *clipped += t > 255.5f;
        return 255;
    }
    return (uint8_t)(t + 0.5f);
}

void vf_quant_derive(vf_quant *q)
{
    const double s = q->scale;
    double c = 0.0, neg = 0.0, pos = 0.0, gap = 0.0;
    for (uint32_t i = 0; i < q->dim; i++) {
        const double o = q->offset[i], top = o + 255.0 * s;
        c += o * o;
        if (o < 0.0)
            neg += o;
        else
            pos += o;
        /* Where a value clipped into this range can land, from 0. */
        const double g = o > 0.0 ? o : (top < 0.0 ? -top : 0.0);
        gap += g * g;
    }
    double lo = 255.0 * s * neg, hi = 255.0 * s * pos;
    if (q->unit) {
        const double reach = sqrt(c) * (1.0 + s * sqrt((double)q->dim) + sqrt(gap));
        lo = fmax(lo, -reach - c);
        hi = fmin(hi, reach - c);
    }
    double step = (hi - lo) / VF_QUANT_CORR_MAX;
    if (!(step > 0.0))
        step = 1.0; /* one value (all offsets 0): any step encodes it */
    q->scale_sq = q->scale * q->scale;
    q->corr_lo = lo;
    q->corr_step = step;
    q->dot_base = (float)(c + 2.0 * lo);
    q->dot_step = (float)step;
}

/* a_x of the codes at rec (quantizer.h), in double. */
static double corr_of(const vf_quant *q, const uint8_t *rec)
{
    double acc = 0.0;
    for (uint32_t i = 0; i < q->dim; i++)
        acc += (double)q->offset[i] * rec[i];
    return acc * q->scale;
}

void vf_quant_corr_set(const vf_quant *q, uint8_t *rec)
{
    const double t = (corr_of(q, rec) - q->corr_lo) / q->corr_step;
    uint16_t k = 0;
    if (t >= VF_QUANT_CORR_MAX - 0.5)
        k = (uint16_t)VF_QUANT_CORR_MAX;
    else if (t > 0.0)
        k = (uint16_t)(t + 0.5);
    vc_le_put16(rec + q->dim, k);
}

float vf_quant_corr_f32(const vf_quant *q, const uint8_t *rec)
{
    return (float)corr_of(q, rec);
}

/* The relative squared error of rec as an encoding of x. */
static double rec_error(const vf_quant *q, const float *x, const uint8_t *rec)
{
    double err = 0.0, norm = 0.0;
    for (uint32_t i = 0; i < q->dim; i++) {
        double d = (double)x[i] - ((double)q->offset[i] + (double)q->scale * rec[i]);
        err += d * d;
        norm += (double)x[i] * x[i];
    }
    return norm > 0.0 ? err / norm : err;
}

/* Encodes x into rec; returns the clipped count and, when rel_error is
 * not NULL, writes the relative squared error (a query's encoding skips
 * it: at dim 784 it was most of the encode's time). */
static size_t encode_into(const vf_quant *q, const float *x, uint8_t *rec, double *rel_error)
{
    const float inv = 1.0f / q->scale;
    size_t clipped = 0;
    for (uint32_t i = 0; i < q->dim; i++)
        rec[i] = code_of(x[i], q->offset[i], inv, &clipped);
    vf_quant_corr_set(q, rec);
    if (rel_error)
        *rel_error = rec_error(q, x, rec);
    return clipped;
}

void vf_quant_measure(const vf_quant *q, const float *x, size_t *clipped, double *rel_error)
{
    const float inv = 1.0f / q->scale;
    *clipped = 0;
    double err = 0.0, norm = 0.0;
    for (uint32_t i = 0; i < q->dim; i++) {
        uint8_t c = code_of(x[i], q->offset[i], inv, clipped);
        double d = (double)x[i] - ((double)q->offset[i] + (double)q->scale * c);
        err += d * d;
        norm += (double)x[i] * x[i];
    }
    *rel_error = norm > 0.0 ? err / norm : err;
}

/* Per-dimension clip ranges of the sample (rows `stride` apart) into lo
 * and hi. 0 or -ENOMEM. */
static int learn_ranges(const vf_quant *q, const float *vecs, size_t rows, size_t stride, float *lo,
                        float *hi)
{
    float *col = vc_malloc(rows * sizeof(float));
    if (!col)
        return -ENOMEM;
    size_t cut = (size_t)(VF_QUANT_TAIL * (double)rows);
    for (uint32_t d = 0; d < q->dim; d++) {
        for (size_t r = 0; r < rows; r++)
            col[r] = vecs[r * stride * q->dim + d];
        qsort(col, rows, sizeof(float), float_cmp);
        lo[d] = col[cut];
        hi[d] = col[rows - 1 - cut];
    }
    free(col);
    return 0;
}

int vf_quant_learn(vf_quant *q, const float *vecs, size_t n)
{
    assert(n >= 1);
    size_t stride = n > VF_QUANT_SAMPLE ? n / VF_QUANT_SAMPLE : 1;
    size_t rows = (n + stride - 1) / stride;
    if (rows > VF_QUANT_SAMPLE)
        rows = VF_QUANT_SAMPLE;
    float *lo = vc_malloc(2 * (size_t)q->dim * sizeof(float));
    uint8_t *rec = vc_malloc(q->rec_bytes);
    int rc = lo && rec ? learn_ranges(q, vecs, rows, stride, lo, lo + q->dim) : -ENOMEM;
    if (rc) {
        free(lo);
        free(rec);
        return rc;
    }
    float *hi = lo + q->dim;
    float widest = 0.0f, magnitude = 0.0f;
    for (uint32_t d = 0; d < q->dim; d++) {
        widest = fmaxf(widest, hi[d] - lo[d]);
        magnitude = fmaxf(magnitude, fmaxf(fabsf(lo[d]), fabsf(hi[d])));
    }
    if (n < VF_QUANT_FULL_TRAIN) {
        /* Provisional: a range learned from a few vectors (one: zero
         * wide) is widened so what follows mostly fits. */
        float margin = widest > 0.0f ? widest : (magnitude > 0.0f ? magnitude : 1.0f);
        for (uint32_t d = 0; d < q->dim; d++) {
            lo[d] -= margin;
            hi[d] += margin;
        }
        widest += 2.0f * margin;
    }
    if (!(widest > 0.0f) || !isfinite(widest))
        widest = 1.0f;
    q->scale = widest / 255.0f;
    for (uint32_t d = 0; d < q->dim; d++)
        q->offset[d] = 0.5f * (lo[d] + hi[d]) - 127.5f * q->scale;
    vf_quant_derive(q);
    q->trained_on = n;

    size_t clipped = 0;
    double err = 0.0;
    for (size_t r = 0; r < rows; r++) {
        double e;
        clipped += encode_into(q, vecs + r * stride * q->dim, rec, &e);
        err += e;
    }
    q->train_clip_share = (double)clipped / ((double)rows * q->dim);
    q->train_error = err / (double)rows;
    atomic_store(&q->win_vectors, 0);
    atomic_store(&q->win_values, 0);
    atomic_store(&q->win_clipped, 0);
    atomic_store(&q->win_error_ppm, 0);
    atomic_store(&q->recent_clip_ppm, 0);
    atomic_store(&q->recent_error_ppm, 0);
    atomic_store(&q->recent_full, 0);
    atomic_store(&q->encoded_since, 0);
    free(lo);
    free(rec);
    return 0;
}

/* Adds one encode to the window; the encode that fills it publishes. */
static void window_add(vf_quant *q, size_t clipped, double rel_error)
{
    const memory_order r = memory_order_relaxed;
    atomic_fetch_add_explicit(&q->encoded_since, 1, r);
    atomic_fetch_add_explicit(&q->win_values, q->dim, r);
    atomic_fetch_add_explicit(&q->win_clipped, clipped, r);
    atomic_fetch_add_explicit(&q->win_error_ppm, (uint64_t)(rel_error * VF_PPM + 0.5), r);
    if (atomic_fetch_add_explicit(&q->win_vectors, 1, r) + 1 != VF_QUANT_WINDOW)
        return;
    uint64_t values = atomic_exchange_explicit(&q->win_values, 0, r);
    uint64_t clip = atomic_exchange_explicit(&q->win_clipped, 0, r);
    uint64_t err = atomic_exchange_explicit(&q->win_error_ppm, 0, r);
    atomic_store_explicit(&q->win_vectors, 0, r);
    atomic_store_explicit(&q->recent_clip_ppm,
                          values ? (uint64_t)((double)clip * VF_PPM / (double)values) : 0, r);
    atomic_store_explicit(&q->recent_error_ppm, err / VF_QUANT_WINDOW, r);
    atomic_store_explicit(&q->recent_full, 1, r);
}

void vf_quant_encode(vf_quant *q, const float *x, uint8_t *rec, bool track)
{
    double e;
    size_t clipped = encode_into(q, x, rec, track ? &e : NULL);
    if (track)
        window_add(q, clipped, e);
}

void vf_quant_decode(const vf_quant *q, const uint8_t *rec, float *out)
{
    for (uint32_t i = 0; i < q->dim; i++)
        out[i] = q->offset[i] + q->scale * rec[i];
}

void vf_quant_round_trip(const vf_quant *q, const float *x, float *out)
{
    const float inv = 1.0f / q->scale;
    size_t clipped = 0;
    for (uint32_t i = 0; i < q->dim; i++)
        out[i] = q->offset[i] + q->scale * code_of(x[i], q->offset[i], inv, &clipped);
}

bool vf_quant_drifted(const vf_quant *q, size_t count)
{
    if (q->trained_on == 0)
        return false;
    if (q->trained_on < VF_QUANT_FULL_TRAIN && count >= VF_QUANT_FULL_TRAIN)
        return true;
    if (!atomic_load_explicit(&q->recent_full, memory_order_relaxed))
        return false;
    double clip = (double)atomic_load_explicit(&q->recent_clip_ppm, memory_order_relaxed) / VF_PPM;
    double err = (double)atomic_load_explicit(&q->recent_error_ppm, memory_order_relaxed) / VF_PPM;
    return clip > 4.0 * q->train_clip_share + 0.002 || err > 2.0 * q->train_error + 0.001;
}

int vf_quant_parse(const char *s, vf_quant_kind *out)
{
    if (!s || !out)
        return -EINVAL;
    if (strcmp(s, "none") == 0)
        *out = VF_QUANT_NONE;
    else if (strcmp(s, "int8") == 0)
        *out = VF_QUANT_INT8;
    else
        return -EINVAL;
    return 0;
}

const char *vf_quant_name(vf_quant_kind kind)
{
    return kind == VF_QUANT_INT8 ? "int8" : "none";
}
