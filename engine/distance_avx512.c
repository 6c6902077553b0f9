/*
 * distance_avx512.c — AVX-512 kernels, written with simde so the same
 * source also compiles (to emulation) on CPUs without AVX-512. Built with
 * -mavx512f -mavx512dq -mavx512bw -mavx2 -mfma, so simde maps every call to
 * the native instruction; distance.c calls this table only when the CPU has
 * avx512f, avx512dq and avx512bw (every CPU with DQ so far also has BW).
 *
 * Invariants
 *   1. Reads exactly dim floats from each input, with unaligned loads: the
 *      tail below 16 floats is consumed by one 8-wide step, one 4-wide step
 *      and at most three scalar steps, never by a wider load past the end.
 *   2. The main loop keeps four independent 16-float accumulators (64
 *      floats per iteration) so that four FMAs are in flight; this covers
 *      the FMA latency of current cores.
 *   3. The result is the sum of the same products as the reference, only
 *      in a different order: it differs from vf_ref_* by rounding alone.
 *   4. The code kernels are code_sse2.h's pmaddwd scheme on 64 bytes (its
 *      notes on exactness and on the masked last step hold lane for lane);
 *      a dim below 64 goes to its 16-byte kernels. The float
 *      kernels are exported for the VNNI table, which differs only in its
 *      code kernels.
 */
/* The umbrella simde/x86/avx512.h of simde 0.7.4 does not compile with
 * -mavx512f alone (cmpge.h uses a VL intrinsic before declaring it), so
 * only the parts used here are included. */
#include <simde/x86/avx512/add.h>
#include <simde/x86/avx512/cast.h>
#include <simde/x86/avx512/extract.h>
#include <simde/x86/avx512/fmadd.h>
#include <simde/x86/avx512/loadu.h>
#include <simde/x86/avx512/madd.h>
#include <simde/x86/avx512/unpackhi.h>
#include <simde/x86/avx512/unpacklo.h>
#include <simde/x86/avx512/setzero.h>
#include <simde/x86/avx512/sub.h>
#include <simde/x86/fma.h>
#include <simde/x86/sse3.h>

#include "code_avx512.h"
#include "kernels.h"

/* Adds the upper 8 lanes of v to the lower 8 (512 -> 256 bits). */
static VF_KERNEL_INLINE simde__m256 fold512(simde__m512 v)
{
    simde__m512d d = simde_mm512_castps_pd(v);
    simde__m256 lo = simde_mm256_castpd_ps(simde_mm512_castpd512_pd256(d));
    simde__m256 hi = simde_mm256_castpd_ps(simde_mm512_extractf64x4_pd(d, 1));
    return simde_mm256_add_ps(lo, hi);
}

/* Adds the upper 4 lanes of v to the lower 4 (256 -> 128 bits). */
static VF_KERNEL_INLINE simde__m128 fold256(simde__m256 v)
{
    return simde_mm_add_ps(simde_mm256_castps256_ps128(v), simde_mm256_extractf128_ps(v, 1));
}

/* The sum of v's 4 lanes. */
static VF_KERNEL_INLINE float hsum128(simde__m128 v)
{
    v = simde_mm_add_ps(v, simde_mm_movehl_ps(v, v));
    v = simde_mm_add_ss(v, simde_mm_movehdup_ps(v));
    return simde_mm_cvtss_f32(v);
}

float vf_avx512_l2sq(const float *a, const float *b, size_t dim)
{
    simde__m512 s0 = simde_mm512_setzero_ps(), s1 = simde_mm512_setzero_ps();
    simde__m512 s2 = simde_mm512_setzero_ps(), s3 = simde_mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        simde__m512 d0 =
            simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i));
        simde__m512 d1 =
            simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i + 16), simde_mm512_loadu_ps(b + i + 16));
        simde__m512 d2 =
            simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i + 32), simde_mm512_loadu_ps(b + i + 32));
        simde__m512 d3 =
            simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i + 48), simde_mm512_loadu_ps(b + i + 48));
        s0 = simde_mm512_fmadd_ps(d0, d0, s0);
        s1 = simde_mm512_fmadd_ps(d1, d1, s1);
        s2 = simde_mm512_fmadd_ps(d2, d2, s2);
        s3 = simde_mm512_fmadd_ps(d3, d3, s3);
    }
    /* At most three 16-float steps remain; each feeds its own accumulator
     * so that they do not wait on one another. */
    if (i + 16 <= dim) {
        simde__m512 d =
            simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i));
        s0 = simde_mm512_fmadd_ps(d, d, s0);
        i += 16;
        if (i + 16 <= dim) {
            d = simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i));
            s1 = simde_mm512_fmadd_ps(d, d, s1);
            i += 16;
            if (i + 16 <= dim) {
                d = simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i));
                s2 = simde_mm512_fmadd_ps(d, d, s2);
                i += 16;
            }
        }
    }
    s0 = simde_mm512_add_ps(simde_mm512_add_ps(s0, s1), simde_mm512_add_ps(s2, s3));
    simde__m256 t = fold512(s0);
    if (i + 8 <= dim) {
        simde__m256 d =
            simde_mm256_sub_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i));
        t = simde_mm256_fmadd_ps(d, d, t);
        i += 8;
    }
    simde__m128 q = fold256(t);
    if (i + 4 <= dim) {
        simde__m128 d = simde_mm_sub_ps(simde_mm_loadu_ps(a + i), simde_mm_loadu_ps(b + i));
        q = simde_mm_fmadd_ps(d, d, q);
        i += 4;
    }
    float s = hsum128(q);
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

float vf_avx512_dot(const float *a, const float *b, size_t dim)
{
    simde__m512 s0 = simde_mm512_setzero_ps(), s1 = simde_mm512_setzero_ps();
    simde__m512 s2 = simde_mm512_setzero_ps(), s3 = simde_mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        s0 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i), s0);
        s1 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i + 16),
                                  simde_mm512_loadu_ps(b + i + 16), s1);
        s2 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i + 32),
                                  simde_mm512_loadu_ps(b + i + 32), s2);
        s3 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i + 48),
                                  simde_mm512_loadu_ps(b + i + 48), s3);
    }
    if (i + 16 <= dim) {
        s0 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i), s0);
        i += 16;
        if (i + 16 <= dim) {
            s1 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i), s1);
            i += 16;
            if (i + 16 <= dim) {
                s2 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i),
                                          s2);
                i += 16;
            }
        }
    }
    s0 = simde_mm512_add_ps(simde_mm512_add_ps(s0, s1), simde_mm512_add_ps(s2, s3));
    simde__m256 t = fold512(s0);
    if (i + 8 <= dim) {
        t = simde_mm256_fmadd_ps(simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i), t);
        i += 8;
    }
    simde__m128 q = fold256(t);
    if (i + 4 <= dim) {
        q = simde_mm_fmadd_ps(simde_mm_loadu_ps(a + i), simde_mm_loadu_ps(b + i), q);
        i += 4;
    }
    float s = hsum128(q);
    for (; i < dim; i++)
        s += a[i] * b[i];
    return s;
}

/* acc + the l2 terms of 64 byte pairs (code_sse2.h's step, four times as
 * wide). */
static VF_KERNEL_INLINE simde__m512i l2sq_step(simde__m512i acc, simde__m512i a, simde__m512i b)
{
    const simde__m512i zero = simde_mm512_setzero_si512();
    simde__m512i d = vf_avx512_absdiff_u8(a, b);
    simde__m512i lo = simde_mm512_unpacklo_epi8(d, zero), hi = simde_mm512_unpackhi_epi8(d, zero);
    return simde_mm512_add_epi32(
        acc, simde_mm512_add_epi32(simde_mm512_madd_epi16(lo, lo), simde_mm512_madd_epi16(hi, hi)));
}

/* acc + the dot terms of 64 byte pairs. */
static VF_KERNEL_INLINE simde__m512i dot_step(simde__m512i acc, simde__m512i a, simde__m512i b)
{
    const simde__m512i zero = simde_mm512_setzero_si512();
    simde__m512i lo = simde_mm512_madd_epi16(simde_mm512_unpacklo_epi8(a, zero),
                                             simde_mm512_unpacklo_epi8(b, zero));
    simde__m512i hi = simde_mm512_madd_epi16(simde_mm512_unpackhi_epi8(a, zero),
                                             simde_mm512_unpackhi_epi8(b, zero));
    return simde_mm512_add_epi32(acc, simde_mm512_add_epi32(lo, hi));
}

/* The 64-byte kernel around one step (inlined: `step` is a constant at
 * every call); a dim below 64 goes to the 16-byte kernel `narrow`. */
static VF_KERNEL_INLINE uint32_t
code_kernel(const uint8_t *a, const uint8_t *b, size_t dim,
            simde__m512i (*step)(simde__m512i, simde__m512i, simde__m512i),
            uint32_t (*narrow)(const uint8_t *, const uint8_t *, size_t))
{
    if (dim < 64)
        return narrow(a, b, dim);
    simde__m512i s = simde_mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64)
        s = step(s, vf_avx512_load_u8(a + i), vf_avx512_load_u8(b + i));
    if (i < dim) {
        simde__m512i m = vf_avx512_tail_mask(dim - i);
        s = step(s, simde_mm512_and_si512(m, vf_avx512_load_u8(a + dim - 64)),
                 simde_mm512_and_si512(m, vf_avx512_load_u8(b + dim - 64)));
    }
    return vf_avx512_hsum_u32(s);
}

static uint32_t avx512_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return code_kernel(a, b, dim, l2sq_step, vf_sse2_l2sq_u8);
}

static uint32_t avx512_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return code_kernel(a, b, dim, dot_step, vf_sse2_dot_u8);
}

const vf_kernels vf_kernels_avx512 = {
    .isa = VF_ISA_AVX512,
    .name = "avx512",
    .l2sq = vf_avx512_l2sq,
    .dot = vf_avx512_dot,
    .l2sq_u8 = avx512_l2sq_u8,
    .dot_u8 = avx512_dot_u8,
};
