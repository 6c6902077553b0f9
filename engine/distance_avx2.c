/*
 * distance_avx2.c — AVX2 + FMA kernels, written with simde so the same
 * source also compiles (to emulation) elsewhere. Built with -mavx2 -mfma;
 * distance.c calls this table only when the CPU has avx2 and fma.
 *
 * Invariants
 *   1. Reads exactly dim floats from each input, with unaligned loads: the
 *      tail below 8 floats is consumed by one 4-wide step and at most three
 *      scalar steps, never by a load past the end.
 *   2. The main loop keeps four independent 8-float accumulators (32 floats
 *      per iteration) so that four FMAs are in flight.
 *   3. The result is the sum of the same products as the reference, only
 *      in a different order: it differs from vf_ref_* by rounding alone.
 */
#include <simde/x86/avx2.h>
#include <simde/x86/fma.h>
#include <simde/x86/sse3.h>

#include "kernels.h"

/* The sum of v's 8 lanes. */
static inline float hsum256(simde__m256 v)
{
    simde__m128 q =
        simde_mm_add_ps(simde_mm256_castps256_ps128(v), simde_mm256_extractf128_ps(v, 1));
    q = simde_mm_add_ps(q, simde_mm_movehl_ps(q, q));
    q = simde_mm_add_ss(q, simde_mm_movehdup_ps(q));
    return simde_mm_cvtss_f32(q);
}

static float avx2_l2sq(const float *a, const float *b, size_t dim)
{
    simde__m256 s0 = simde_mm256_setzero_ps(), s1 = simde_mm256_setzero_ps();
    simde__m256 s2 = simde_mm256_setzero_ps(), s3 = simde_mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        simde__m256 d0 =
            simde_mm256_sub_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i));
        simde__m256 d1 =
            simde_mm256_sub_ps(simde_mm256_loadu_ps(a + i + 8), simde_mm256_loadu_ps(b + i + 8));
        simde__m256 d2 =
            simde_mm256_sub_ps(simde_mm256_loadu_ps(a + i + 16), simde_mm256_loadu_ps(b + i + 16));
        simde__m256 d3 =
            simde_mm256_sub_ps(simde_mm256_loadu_ps(a + i + 24), simde_mm256_loadu_ps(b + i + 24));
        s0 = simde_mm256_fmadd_ps(d0, d0, s0);
        s1 = simde_mm256_fmadd_ps(d1, d1, s1);
        s2 = simde_mm256_fmadd_ps(d2, d2, s2);
        s3 = simde_mm256_fmadd_ps(d3, d3, s3);
    }
    /* At most three 8-float steps remain; each feeds its own accumulator
     * so that they do not wait on one another. */
    if (i + 8 <= dim) {
        simde__m256 d =
            simde_mm256_sub_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i));
        s0 = simde_mm256_fmadd_ps(d, d, s0);
        i += 8;
        if (i + 8 <= dim) {
            d = simde_mm256_sub_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i));
            s1 = simde_mm256_fmadd_ps(d, d, s1);
            i += 8;
            if (i + 8 <= dim) {
                d = simde_mm256_sub_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i));
                s2 = simde_mm256_fmadd_ps(d, d, s2);
                i += 8;
            }
        }
    }
    s0 = simde_mm256_add_ps(simde_mm256_add_ps(s0, s1), simde_mm256_add_ps(s2, s3));
    if (i + 4 <= dim) {
        /* Widen the 4-float step with zeros so it joins the 8-wide sum. */
        simde__m128 d = simde_mm_sub_ps(simde_mm_loadu_ps(a + i), simde_mm_loadu_ps(b + i));
        simde__m256 w = simde_mm256_insertf128_ps(simde_mm256_setzero_ps(), d, 0);
        s0 = simde_mm256_fmadd_ps(w, w, s0);
        i += 4;
    }
    float s = hsum256(s0);
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static float avx2_dot(const float *a, const float *b, size_t dim)
{
    simde__m256 s0 = simde_mm256_setzero_ps(), s1 = simde_mm256_setzero_ps();
    simde__m256 s2 = simde_mm256_setzero_ps(), s3 = simde_mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = simde_mm256_fmadd_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i), s0);
        s1 = simde_mm256_fmadd_ps(simde_mm256_loadu_ps(a + i + 8), simde_mm256_loadu_ps(b + i + 8),
                                  s1);
        s2 = simde_mm256_fmadd_ps(simde_mm256_loadu_ps(a + i + 16),
                                  simde_mm256_loadu_ps(b + i + 16), s2);
        s3 = simde_mm256_fmadd_ps(simde_mm256_loadu_ps(a + i + 24),
                                  simde_mm256_loadu_ps(b + i + 24), s3);
    }
    if (i + 8 <= dim) {
        s0 = simde_mm256_fmadd_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i), s0);
        i += 8;
        if (i + 8 <= dim) {
            s1 = simde_mm256_fmadd_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i), s1);
            i += 8;
            if (i + 8 <= dim) {
                s2 = simde_mm256_fmadd_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i),
                                          s2);
                i += 8;
            }
        }
    }
    s0 = simde_mm256_add_ps(simde_mm256_add_ps(s0, s1), simde_mm256_add_ps(s2, s3));
    if (i + 4 <= dim) {
        simde__m128 p = simde_mm_mul_ps(simde_mm_loadu_ps(a + i), simde_mm_loadu_ps(b + i));
        s0 = simde_mm256_add_ps(s0, simde_mm256_insertf128_ps(simde_mm256_setzero_ps(), p, 0));
        i += 4;
    }
    float s = hsum256(s0);
    for (; i < dim; i++)
        s += a[i] * b[i];
    return s;
}

const vf_kernels vf_kernels_avx2 = {
    .isa = VF_ISA_AVX2,
    .name = "avx2",
    .l2sq = avx2_l2sq,
    .dot = avx2_dot,
    .l2sq_u8 = vf_scalar_l2sq_u8,
    .dot_u8 = vf_scalar_dot_u8,
};
