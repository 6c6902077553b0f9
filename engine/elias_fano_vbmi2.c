/*
 * elias_fano_vbmi2.c — elias_fano.h's decoder on AVX-512 VBMI and VBMI2,
 * sixteen ids a step. Built with -mavx512f -mavx512bw -mavx512vbmi
 * -mavx512vbmi2; elias_fano.c hands it out only when the CPU has those.
 * Native intrinsics, not simde: simde has no vpcompressb.
 *
 * The high parts: vpcompressb of the byte positions 0..63 (plus 64 per
 * word) under each bitmap word puts the positions of the set bits side by
 * side; the i-th minus i is the i-th high part. The low parts: lane j of
 * a step takes the four bytes from (j * low_bits) / 8 (vpermb) and shifts
 * them right by (j * low_bits) % 8. The scalar decoder's per-id loop
 * measured about 8 % of int8 search speed on words50k (docs/performance.md
 * "Packed level-0 lists").
 *
 * Invariants
 *   1. Decodes exactly what vf_ef_decode decodes for any shape it takes
 *      (vf_ef_vbmi2_fits) and any code vf_ef_encode wrote; other shapes go
 *      to vf_ef_decode.
 *   2. Reads no byte past code + sh->bytes + VF_EF_SLACK: the bitmap words
 *      as the scalar decoder does, the low parts through masked loads.
 */
#include <immintrin.h>

#include "elias_fano.h"

/* Positions fit a byte and four bytes hold a low part and its shift. */
static int fits(const vf_ef_shape *sh)
{
    return sh->high_bits <= 256 && sh->low_bits <= 25;
}

uint32_t vf_ef_decode_vbmi2(const vf_ef_shape *sh, const uint8_t *code, uint32_t n, uint32_t *ids)
{
    if (!fits(sh))
        return vf_ef_decode(sh, code, n, ids);
    uint8_t pos[256 + 64];
    const __m512i iota8 = _mm512_set_epi8(
        63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41,
        40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18,
        17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const uint32_t words = (sh->high_bits + 63) / 64;
    uint32_t found = 0;
    for (uint32_t w = 0; w < words && found < n; w++) {
        uint64_t bits;
        memcpy(&bits, code + 8 * (size_t)w, sizeof(bits));
        const __m512i at = _mm512_add_epi8(iota8, _mm512_set1_epi8((char)(64 * w)));
        _mm512_storeu_si512(pos + found, _mm512_maskz_compress_epi8(bits, at));
        found += (uint32_t)__builtin_popcountll(bits);
    }
    if (found > n)
        found = n;

    const uint32_t l = sh->low_bits;
    const __m512i iota32 = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i bit = _mm512_mullo_epi32(iota32, _mm512_set1_epi32((int)l));
    const __m512i shift = _mm512_and_si512(bit, _mm512_set1_epi32(7));
    /* Lane j's four source bytes, b .. b + 3 with b = (j * l) / 8. */
    const __m512i gather = _mm512_add_epi32(
        _mm512_mullo_epi32(_mm512_srli_epi32(bit, 3), _mm512_set1_epi32(0x01010101)),
        _mm512_set1_epi32(0x03020100));
    const __m512i low_mask = _mm512_set1_epi32(l ? (int)((1u << l) - 1) : 0);
    const __m128i l_count = _mm_cvtsi32_si128((int)l);
    for (uint32_t c = 0; c < found; c += 16) {
        const __mmask16 live =
            found - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (found - c)) - 1);
        const __m512i p = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(pos + c)));
        const __m512i high =
            _mm512_sub_epi32(p, _mm512_add_epi32(iota32, _mm512_set1_epi32((int)c)));
        /* c * l is a multiple of 8: step c's low parts start on a byte. */
        const uint32_t from = sh->low_at + c * l / 8;
        const uint32_t avail = sh->bytes > from ? sh->bytes - from : 0;
        const __mmask64 load = avail >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << avail) - 1);
        const __m512i raw = _mm512_maskz_loadu_epi8(load, code + from);
        const __m512i low = _mm512_and_si512(
            _mm512_srlv_epi32(_mm512_permutexvar_epi8(gather, raw), shift), low_mask);
        _mm512_mask_storeu_epi32(ids + c, live,
                                 _mm512_or_si512(_mm512_sll_epi32(high, l_count), low));
    }
    return found;
}
