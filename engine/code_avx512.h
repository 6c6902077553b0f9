/*
 * code_avx512.h — what the two AVX-512 code-kernel files share: the byte
 * absolute difference and the sum of a 512-bit register's 32-bit lanes.
 * Included only by files built with -mavx512f -mavx512bw (distance_avx512.c,
 * distance_avx512_vnni.c). Internal to the engine.
 */
#ifndef VECFS_ENGINE_CODE_AVX512_H
#define VECFS_ENGINE_CODE_AVX512_H

/* The umbrella simde/x86/avx512.h of simde 0.7.4 does not compile with
 * these flags (see distance_avx512.c), so only the parts used are included. */
#include <simde/x86/avx2.h>
#include <simde/x86/avx512/and.h>
#include <simde/x86/avx512/cast.h>
#include <simde/x86/avx512/extract.h>
#include <simde/x86/avx512/loadu.h>
#include <simde/x86/avx512/or.h>
#include <simde/x86/avx512/setzero.h>
#include <simde/x86/avx512/subs.h>

#include "code_sse2.h"

/* The sum of v's sixteen 32-bit lanes, modulo 2^32. */
static VF_KERNEL_INLINE uint32_t vf_avx512_hsum_u32(simde__m512i v)
{
    simde__m256i h =
        simde_mm256_add_epi32(simde_mm512_castsi512_si256(v), simde_mm512_extracti64x4_epi64(v, 1));
    return vf_sse2_hsum_u32(
        simde_mm_add_epi32(simde_mm256_castsi256_si128(h), simde_mm256_extracti128_si256(h, 1)));
}

/* |a - b| per byte, as bytes (each saturating difference is 0 on one side). */
static VF_KERNEL_INLINE simde__m512i vf_avx512_absdiff_u8(simde__m512i a, simde__m512i b)
{
    return simde_mm512_or_si512(simde_mm512_subs_epu8(a, b), simde_mm512_subs_epu8(b, a));
}

/* The 64 bytes at p, unaligned. */
static VF_KERNEL_INLINE simde__m512i vf_avx512_load_u8(const uint8_t *p)
{
    return simde_mm512_loadu_si512((const void *)p);
}

/* The mask of a last 64-byte step with rem (1..63) new bytes: see
 * vf_code_tail_mask in code_sse2.h. */
static VF_KERNEL_INLINE simde__m512i vf_avx512_tail_mask(size_t rem)
{
    return simde_mm512_loadu_si512(vf_code_tail_mask(64, rem));
}

#endif /* VECFS_ENGINE_CODE_AVX512_H */
