/*
 * code_sse2.h — the int8 code kernels 16 bytes at a time (SSE2 through
 * simde), shared by every x86 kernel file: the SSE table uses them whole,
 * the AVX2, AVX-512 and VNNI kernels call them for the bytes below their
 * own width. Each including file is built with at least -msse4.1, so each
 * inlines these with its own flags. Internal to the engine.
 *
 * Exactness (the promise of vf_code_kernel_fn)
 *   1. Bytes are widened to 16-bit lanes before any multiply: a code is
 *      0..255, an absolute difference too, and pmaddwd of two such lanes
 *      adds two products of at most 255^2 into a 32-bit lane (<= 130,050).
 *      pmaddubsw, which would saturate a 16-bit pair sum, is not used.
 *   2. Every term added to a 32-bit lane is >= 0, so a lane never exceeds
 *      the whole sum, which is <= 255^2 * VF_MAX_DIM < 2^32; paddd wraps
 *      instead of saturating, so a lane read as uint32 is exact.
 *   3. Reads exactly dim bytes of each input, with unaligned loads: the
 *      bytes after the last full step are one more step over the last
 *      bytes with the already summed ones masked off (vf_code_tail_mask);
 *      only a dim below the kernel's width takes narrower steps. Never a
 *      load outside the dim bytes.
 */
#ifndef VECFS_ENGINE_CODE_SSE2_H
#define VECFS_ENGINE_CODE_SSE2_H

#include <simde/x86/sse2.h>

#include "kernels.h"

/* The sum of v's four 32-bit lanes, modulo 2^32. */
static VF_KERNEL_INLINE uint32_t vf_sse2_hsum_u32(simde__m128i v)
{
    v = simde_mm_add_epi32(v, simde_mm_shuffle_epi32(v, 0x4E));
    v = simde_mm_add_epi32(v, simde_mm_shuffle_epi32(v, 0xB1));
    return (uint32_t)simde_mm_cvtsi128_si32(v);
}

/* 64 zero bytes then 64 0xFF bytes: a kernel of width W (<= 64) that has r
 * bytes left (0 < r < W) loads its last W bytes, which overlap r - W bytes it
 * has already summed, and ANDs them with the W bytes at
 * vf_code_tail_mask(W, r): W - r zeros, then r 0xFF. A zeroed byte adds 0
 * to every code sum below (0 * x, |0 - 0|, sad of 0), so the tail costs one
 * step and reads nothing outside the dim bytes. */
#define VF_FF8 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
static const uint8_t vf_code_window[128] = {
    [64] = VF_FF8, VF_FF8, VF_FF8, VF_FF8, VF_FF8, VF_FF8, VF_FF8, VF_FF8,
};
#undef VF_FF8

static VF_KERNEL_INLINE const void *vf_code_tail_mask(size_t width, size_t rem)
{
    return vf_code_window + 64 - width + rem;
}

/* |a - b| per byte, as bytes (each saturating difference is 0 on one side). */
static VF_KERNEL_INLINE simde__m128i vf_sse2_absdiff_u8(simde__m128i a, simde__m128i b)
{
    return simde_mm_or_si128(simde_mm_subs_epu8(a, b), simde_mm_subs_epu8(b, a));
}

/* acc + the l2 terms of 16 byte pairs, in 32-bit lanes. */
static VF_KERNEL_INLINE simde__m128i vf_sse2_l2sq_step(simde__m128i acc, simde__m128i a,
                                                       simde__m128i b)
{
    const simde__m128i zero = simde_mm_setzero_si128();
    simde__m128i d = vf_sse2_absdiff_u8(a, b);
    simde__m128i lo = simde_mm_unpacklo_epi8(d, zero), hi = simde_mm_unpackhi_epi8(d, zero);
    return simde_mm_add_epi32(
        acc, simde_mm_add_epi32(simde_mm_madd_epi16(lo, lo), simde_mm_madd_epi16(hi, hi)));
}

/* acc + the dot terms of 16 byte pairs, in 32-bit lanes. */
static VF_KERNEL_INLINE simde__m128i vf_sse2_dot_step(simde__m128i acc, simde__m128i a,
                                                      simde__m128i b)
{
    const simde__m128i zero = simde_mm_setzero_si128();
    simde__m128i lo =
        simde_mm_madd_epi16(simde_mm_unpacklo_epi8(a, zero), simde_mm_unpacklo_epi8(b, zero));
    simde__m128i hi =
        simde_mm_madd_epi16(simde_mm_unpackhi_epi8(a, zero), simde_mm_unpackhi_epi8(b, zero));
    return simde_mm_add_epi32(acc, simde_mm_add_epi32(lo, hi));
}

typedef simde__m128i (*vf_sse2_code_step)(simde__m128i acc, simde__m128i a, simde__m128i b);

/* The whole 16-byte kernel around one step function (inlined: `step` is a
 * constant at every call). Below 16 bytes: one 8-byte step and up to seven
 * scalar ones; the scalar tail is `tail`. */
static VF_KERNEL_INLINE uint32_t
vf_sse2_code_kernel(const uint8_t *a, const uint8_t *b, size_t dim, vf_sse2_code_step step,
                    uint32_t (*tail)(const uint8_t *, const uint8_t *, size_t, size_t))
{
    simde__m128i s = simde_mm_setzero_si128();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16)
        s = step(s, simde_mm_loadu_si128((const void *)(a + i)),
                 simde_mm_loadu_si128((const void *)(b + i)));
    if (i < dim && dim >= 16) {
        simde__m128i m = simde_mm_loadu_si128(vf_code_tail_mask(16, dim - i));
        s = step(s, simde_mm_and_si128(m, simde_mm_loadu_si128((const void *)(a + dim - 16))),
                 simde_mm_and_si128(m, simde_mm_loadu_si128((const void *)(b + dim - 16))));
        i = dim;
    }
    if (i + 8 <= dim) {
        /* movq zeroes the upper 8 bytes: they add nothing. */
        s = step(s, simde_mm_loadl_epi64((const void *)(a + i)),
                 simde_mm_loadl_epi64((const void *)(b + i)));
        i += 8;
    }
    return vf_sse2_hsum_u32(s) + tail(a, b, i, dim);
}

static VF_KERNEL_INLINE uint32_t vf_sse2_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return vf_sse2_code_kernel(a, b, dim, vf_sse2_l2sq_step, vf_code_l2sq_tail);
}

static VF_KERNEL_INLINE uint32_t vf_sse2_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return vf_sse2_code_kernel(a, b, dim, vf_sse2_dot_step, vf_code_dot_tail);
}

#endif /* VECFS_ENGINE_CODE_SSE2_H */
