/*
 * distance_scalar.c — the portable kernel table: plain C, float
 * accumulation, compiled with the project's default flags.
 *
 * Invariants
 *   1. Runs on any CPU; it is the fallback when detection finds nothing
 *      better and the answer to VECFS_KERNEL=scalar.
 *   2. Four independent partial sums break the dependency chain of a single
 *      accumulator (the compiler may not reassociate float adds on its own),
 *      so the loop keeps several adds in flight.
 *   3. Reads exactly dim elements of each input; no alignment is assumed.
 */
#include "kernels.h"

static float scalar_l2sq(const float *a, const float *b, size_t dim)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    size_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
        float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

static float scalar_dot(const float *a, const float *b, size_t dim)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    size_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < dim; i++)
        s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static uint32_t scalar_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    uint32_t s0 = 0, s1 = 0;
    size_t i = 0;
    for (; i + 2 <= dim; i += 2) {
        int32_t d0 = (int32_t)a[i] - (int32_t)b[i], d1 = (int32_t)a[i + 1] - (int32_t)b[i + 1];
        s0 += (uint32_t)(d0 * d0);
        s1 += (uint32_t)(d1 * d1);
    }
    if (i < dim) {
        int32_t d = (int32_t)a[i] - (int32_t)b[i];
        s0 += (uint32_t)(d * d);
    }
    return s0 + s1;
}

static uint32_t scalar_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    uint32_t s0 = 0, s1 = 0;
    size_t i = 0;
    for (; i + 2 <= dim; i += 2) {
        s0 += (uint32_t)a[i] * b[i];
        s1 += (uint32_t)a[i + 1] * b[i + 1];
    }
    if (i < dim)
        s0 += (uint32_t)a[i] * b[i];
    return s0 + s1;
}

const vf_kernels vf_kernels_scalar = {
    .isa = VF_ISA_SCALAR,
    .name = "scalar",
    .l2sq = scalar_l2sq,
    .dot = scalar_dot,
    .l2sq_u8 = scalar_l2sq_u8,
    .dot_u8 = scalar_dot_u8,
};
