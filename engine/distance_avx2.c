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
 *   4. The code kernels are code_sse2.h's scheme on 32 bytes (its notes on
 *      exactness and on the masked last step hold lane for lane); a dim
 *      below 32 goes to its 16-byte kernels.
 */
#include <simde/x86/avx2.h>
#include <simde/x86/fma.h>
#include <simde/x86/sse3.h>

#include "code_sse2.h"
#include "kernels.h"

/* The sum of v's 8 lanes. */
static VF_KERNEL_INLINE float hsum256(simde__m256 v)
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

/* The sum of v's eight 32-bit lanes, modulo 2^32. */
static VF_KERNEL_INLINE uint32_t hsum256_u32(simde__m256i v)
{
    return vf_sse2_hsum_u32(
        simde_mm_add_epi32(simde_mm256_castsi256_si128(v), simde_mm256_extracti128_si256(v, 1)));
}

/* acc + the l2 terms of 32 byte pairs (code_sse2.h's step, twice as wide). */
static VF_KERNEL_INLINE simde__m256i l2sq_step(simde__m256i acc, simde__m256i a, simde__m256i b)
{
    const simde__m256i zero = simde_mm256_setzero_si256();
    simde__m256i d = simde_mm256_or_si256(simde_mm256_subs_epu8(a, b), simde_mm256_subs_epu8(b, a));
    simde__m256i lo = simde_mm256_unpacklo_epi8(d, zero), hi = simde_mm256_unpackhi_epi8(d, zero);
    return simde_mm256_add_epi32(
        acc, simde_mm256_add_epi32(simde_mm256_madd_epi16(lo, lo), simde_mm256_madd_epi16(hi, hi)));
}

/* acc + the dot terms of 32 byte pairs. */
static VF_KERNEL_INLINE simde__m256i dot_step(simde__m256i acc, simde__m256i a, simde__m256i b)
{
    const simde__m256i zero = simde_mm256_setzero_si256();
    simde__m256i lo = simde_mm256_madd_epi16(simde_mm256_unpacklo_epi8(a, zero),
                                             simde_mm256_unpacklo_epi8(b, zero));
    simde__m256i hi = simde_mm256_madd_epi16(simde_mm256_unpackhi_epi8(a, zero),
                                             simde_mm256_unpackhi_epi8(b, zero));
    return simde_mm256_add_epi32(acc, simde_mm256_add_epi32(lo, hi));
}

static VF_KERNEL_INLINE simde__m256i load32(const uint8_t *p)
{
    return simde_mm256_loadu_si256((const void *)p);
}

/* The 32-byte kernel around one step (inlined: `step` is a constant at
 * every call); a dim below 32 goes to the 16-byte kernel `narrow`. */
static VF_KERNEL_INLINE uint32_t
code_kernel(const uint8_t *a, const uint8_t *b, size_t dim,
            simde__m256i (*step)(simde__m256i, simde__m256i, simde__m256i),
            uint32_t (*narrow)(const uint8_t *, const uint8_t *, size_t))
{
    if (dim < 32)
        return narrow(a, b, dim);
    simde__m256i s = simde_mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32)
        s = step(s, load32(a + i), load32(b + i));
    if (i < dim) {
        simde__m256i m = load32(vf_code_tail_mask(32, dim - i));
        s = step(s, simde_mm256_and_si256(m, load32(a + dim - 32)),
                 simde_mm256_and_si256(m, load32(b + dim - 32)));
    }
    return hsum256_u32(s);
}

static uint32_t avx2_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return code_kernel(a, b, dim, l2sq_step, vf_sse2_l2sq_u8);
}

static uint32_t avx2_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return code_kernel(a, b, dim, dot_step, vf_sse2_dot_u8);
}

const vf_kernels vf_kernels_avx2 = {
    .isa = VF_ISA_AVX2,
    .name = "avx2",
    .l2sq = avx2_l2sq,
    .dot = avx2_dot,
    .l2sq_u8 = avx2_l2sq_u8,
    .dot_u8 = avx2_dot_u8,
};
