/*
 * distance_neon.c — NEON kernels for aarch64 (where NEON is part of the
 * base architecture), written with simde so the source also compiles, to
 * emulation, on other CPUs.
 *
 * Invariants
 *   1. Reads exactly dim floats from each input (vld1q has no alignment
 *      requirement); the tail below 4 floats is summed in scalar code.
 *   2. The main loop keeps four independent 4-float accumulators (16 floats
 *      per iteration) so that four FMAs are in flight.
 *   3. The result is the sum of the same products as the reference, only
 *      in a different order: it differs from vf_ref_* by rounding alone.
 *   4. The code kernels are exact: a product of two bytes (or of an absolute
 *      difference with itself) is at most 255^2 and fits the 16-bit lane of
 *      vmull_u8; vpadalq_u16 adds pairs of them into 32-bit lanes without
 *      saturation, every term is >= 0, so no lane exceeds the whole sum
 *      (< 2^32 for dim <= VF_MAX_DIM). They read exactly dim bytes: 16-byte
 *      steps, one 8-byte step, then at most seven scalar steps.
 */
#include <simde/arm/neon.h>

#include "kernels.h"

static float neon_l2sq(const float *a, const float *b, size_t dim)
{
    simde_float32x4_t s0 = simde_vdupq_n_f32(0.0f), s1 = simde_vdupq_n_f32(0.0f);
    simde_float32x4_t s2 = simde_vdupq_n_f32(0.0f), s3 = simde_vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        simde_float32x4_t d0 = simde_vsubq_f32(simde_vld1q_f32(a + i), simde_vld1q_f32(b + i));
        simde_float32x4_t d1 =
            simde_vsubq_f32(simde_vld1q_f32(a + i + 4), simde_vld1q_f32(b + i + 4));
        simde_float32x4_t d2 =
            simde_vsubq_f32(simde_vld1q_f32(a + i + 8), simde_vld1q_f32(b + i + 8));
        simde_float32x4_t d3 =
            simde_vsubq_f32(simde_vld1q_f32(a + i + 12), simde_vld1q_f32(b + i + 12));
        s0 = simde_vfmaq_f32(s0, d0, d0);
        s1 = simde_vfmaq_f32(s1, d1, d1);
        s2 = simde_vfmaq_f32(s2, d2, d2);
        s3 = simde_vfmaq_f32(s3, d3, d3);
    }
    for (; i + 4 <= dim; i += 4) {
        simde_float32x4_t d = simde_vsubq_f32(simde_vld1q_f32(a + i), simde_vld1q_f32(b + i));
        s0 = simde_vfmaq_f32(s0, d, d);
    }
    float s = simde_vaddvq_f32(simde_vaddq_f32(simde_vaddq_f32(s0, s1), simde_vaddq_f32(s2, s3)));
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static float neon_dot(const float *a, const float *b, size_t dim)
{
    simde_float32x4_t s0 = simde_vdupq_n_f32(0.0f), s1 = simde_vdupq_n_f32(0.0f);
    simde_float32x4_t s2 = simde_vdupq_n_f32(0.0f), s3 = simde_vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        s0 = simde_vfmaq_f32(s0, simde_vld1q_f32(a + i), simde_vld1q_f32(b + i));
        s1 = simde_vfmaq_f32(s1, simde_vld1q_f32(a + i + 4), simde_vld1q_f32(b + i + 4));
        s2 = simde_vfmaq_f32(s2, simde_vld1q_f32(a + i + 8), simde_vld1q_f32(b + i + 8));
        s3 = simde_vfmaq_f32(s3, simde_vld1q_f32(a + i + 12), simde_vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= dim; i += 4)
        s0 = simde_vfmaq_f32(s0, simde_vld1q_f32(a + i), simde_vld1q_f32(b + i));
    float s = simde_vaddvq_f32(simde_vaddq_f32(simde_vaddq_f32(s0, s1), simde_vaddq_f32(s2, s3)));
    for (; i < dim; i++)
        s += a[i] * b[i];
    return s;
}

static uint32_t neon_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    simde_uint32x4_t s0 = simde_vdupq_n_u32(0), s1 = simde_vdupq_n_u32(0);
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        simde_uint8x16_t d = simde_vabdq_u8(simde_vld1q_u8(a + i), simde_vld1q_u8(b + i));
        simde_uint8x8_t lo = simde_vget_low_u8(d), hi = simde_vget_high_u8(d);
        s0 = simde_vpadalq_u16(s0, simde_vmull_u8(lo, lo));
        s1 = simde_vpadalq_u16(s1, simde_vmull_u8(hi, hi));
    }
    if (i + 8 <= dim) {
        simde_uint8x8_t d = simde_vabd_u8(simde_vld1_u8(a + i), simde_vld1_u8(b + i));
        s0 = simde_vpadalq_u16(s0, simde_vmull_u8(d, d));
        i += 8;
    }
    return simde_vaddvq_u32(simde_vaddq_u32(s0, s1)) + vf_code_l2sq_tail(a, b, i, dim);
}

static uint32_t neon_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    simde_uint32x4_t s0 = simde_vdupq_n_u32(0), s1 = simde_vdupq_n_u32(0);
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        simde_uint8x16_t va = simde_vld1q_u8(a + i), vb = simde_vld1q_u8(b + i);
        s0 = simde_vpadalq_u16(s0, simde_vmull_u8(simde_vget_low_u8(va), simde_vget_low_u8(vb)));
        s1 = simde_vpadalq_u16(s1, simde_vmull_u8(simde_vget_high_u8(va), simde_vget_high_u8(vb)));
    }
    if (i + 8 <= dim) {
        s0 = simde_vpadalq_u16(s0, simde_vmull_u8(simde_vld1_u8(a + i), simde_vld1_u8(b + i)));
        i += 8;
    }
    return simde_vaddvq_u32(simde_vaddq_u32(s0, s1)) + vf_code_dot_tail(a, b, i, dim);
}

const vf_kernels vf_kernels_neon = {
    .isa = VF_ISA_NEON,
    .name = "neon",
    .l2sq = neon_l2sq,
    .dot = neon_dot,
    .l2sq_u8 = neon_l2sq_u8,
    .dot_u8 = neon_dot_u8,
};
