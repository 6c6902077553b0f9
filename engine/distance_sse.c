/*
 * distance_sse.c — SSE4.1 kernels, written with simde so the same source
 * also compiles (to emulation) elsewhere. Built with -msse4.1; distance.c
 * calls this table only when the CPU has sse4.1. The code kernels are the
 * 16-byte ones of code_sse2.h, whose design notes give their exactness.
 *
 * Invariants
 *   1. Reads exactly dim floats from each input, with unaligned loads: the
 *      tail below 4 floats is summed in scalar code.
 *   2. The main loop keeps four independent 4-float accumulators (16 floats
 *      per iteration); SSE has no FMA, so each step is a multiply and an add.
 *   3. The result is the sum of the same products as the reference, only
 *      in a different order: it differs from vf_ref_* by rounding alone.
 */
#include <simde/x86/sse4.1.h>

#include "code_sse2.h"
#include "kernels.h"

/* The sum of v's 4 lanes. */
static inline float hsum128(simde__m128 v)
{
    v = simde_mm_add_ps(v, simde_mm_movehl_ps(v, v));
    v = simde_mm_add_ss(v, simde_mm_movehdup_ps(v));
    return simde_mm_cvtss_f32(v);
}

static float sse_l2sq(const float *a, const float *b, size_t dim)
{
    simde__m128 s0 = simde_mm_setzero_ps(), s1 = simde_mm_setzero_ps();
    simde__m128 s2 = simde_mm_setzero_ps(), s3 = simde_mm_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        simde__m128 d0 = simde_mm_sub_ps(simde_mm_loadu_ps(a + i), simde_mm_loadu_ps(b + i));
        simde__m128 d1 =
            simde_mm_sub_ps(simde_mm_loadu_ps(a + i + 4), simde_mm_loadu_ps(b + i + 4));
        simde__m128 d2 =
            simde_mm_sub_ps(simde_mm_loadu_ps(a + i + 8), simde_mm_loadu_ps(b + i + 8));
        simde__m128 d3 =
            simde_mm_sub_ps(simde_mm_loadu_ps(a + i + 12), simde_mm_loadu_ps(b + i + 12));
        s0 = simde_mm_add_ps(s0, simde_mm_mul_ps(d0, d0));
        s1 = simde_mm_add_ps(s1, simde_mm_mul_ps(d1, d1));
        s2 = simde_mm_add_ps(s2, simde_mm_mul_ps(d2, d2));
        s3 = simde_mm_add_ps(s3, simde_mm_mul_ps(d3, d3));
    }
    for (; i + 4 <= dim; i += 4) {
        simde__m128 d = simde_mm_sub_ps(simde_mm_loadu_ps(a + i), simde_mm_loadu_ps(b + i));
        s0 = simde_mm_add_ps(s0, simde_mm_mul_ps(d, d));
    }
    float s = hsum128(simde_mm_add_ps(simde_mm_add_ps(s0, s1), simde_mm_add_ps(s2, s3)));
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static float sse_dot(const float *a, const float *b, size_t dim)
{
    simde__m128 s0 = simde_mm_setzero_ps(), s1 = simde_mm_setzero_ps();
    simde__m128 s2 = simde_mm_setzero_ps(), s3 = simde_mm_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        s0 = simde_mm_add_ps(s0,
                             simde_mm_mul_ps(simde_mm_loadu_ps(a + i), simde_mm_loadu_ps(b + i)));
        s1 = simde_mm_add_ps(
            s1, simde_mm_mul_ps(simde_mm_loadu_ps(a + i + 4), simde_mm_loadu_ps(b + i + 4)));
        s2 = simde_mm_add_ps(
            s2, simde_mm_mul_ps(simde_mm_loadu_ps(a + i + 8), simde_mm_loadu_ps(b + i + 8)));
        s3 = simde_mm_add_ps(
            s3, simde_mm_mul_ps(simde_mm_loadu_ps(a + i + 12), simde_mm_loadu_ps(b + i + 12)));
    }
    for (; i + 4 <= dim; i += 4)
        s0 = simde_mm_add_ps(s0,
                             simde_mm_mul_ps(simde_mm_loadu_ps(a + i), simde_mm_loadu_ps(b + i)));
    float s = hsum128(simde_mm_add_ps(simde_mm_add_ps(s0, s1), simde_mm_add_ps(s2, s3)));
    for (; i < dim; i++)
        s += a[i] * b[i];
    return s;
}

static uint32_t sse_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return vf_sse2_l2sq_u8(a, b, dim);
}

static uint32_t sse_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return vf_sse2_dot_u8(a, b, dim);
}

const vf_kernels vf_kernels_sse = {
    .isa = VF_ISA_SSE,
    .name = "sse4.1",
    .l2sq = sse_l2sq,
    .dot = sse_dot,
    .l2sq_u8 = sse_l2sq_u8,
    .dot_u8 = sse_dot_u8,
};
