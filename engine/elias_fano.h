/*
 * elias_fano.h — Elias-Fano codes of short sorted id lists over a known
 * universe: the level-0 link lists of an INT8 index (hnsw_internal.h,
 * "Packed lists"). Internal to the engine; no I/O, no allocation.
 *
 * Code (docs/engine.md, "Packed level-0 lists")
 *   For lists of at most max_n ids below `universe`, each id splits into
 *   its low `low_bits` bits and its high part id >> low_bits, with
 *   low_bits = floor(log2(universe / max_n)) (0 when universe <= max_n).
 *   The i-th smallest id (i from 0) sets bit (high + i) of a bitmap of
 *   high_bits = max_n + ((universe - 1) >> low_bits) + 1 bits at byte 0;
 *   its low part sits at bit i * low_bits of the array that starts at byte
 *   ceil(high_bits / 8). That is at most 3 + log2(universe / max_n) bits an
 *   id plus rounding: 62 bytes for 32 links among 331,479 ids, where u32
 *   links take 128.
 *
 * Invariants
 *   1. An encoded list is bytes long whatever its length n; the caller
 *      keeps n (the list's count word).
 *   2. Decoding reads VF_EF_SLACK bytes past `bytes`: buffers decoded from
 *      have that much room, zeroed or not (the bits there are never used).
 *   3. Decoding gives the ids in ascending order, each below universe when
 *      the code came from vf_ef_encode; a code that did not (torn bytes)
 *      still decodes in bounded time to at most n ids, possibly wrong ones.
 */
#ifndef VECFS_ENGINE_ELIAS_FANO_H
#define VECFS_ENGINE_ELIAS_FANO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Bits are numbered from the low bit of byte 0 and read as little-endian
 * u64 words. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "elias_fano.h reads little-endian words");

/* Bytes a decoder may read past an encoded list (invariant 2). */
#define VF_EF_SLACK 8u

typedef struct vf_ef_shape {
    uint32_t max_n;     /* ids a list holds at most */
    uint32_t low_bits;  /* bits of each id kept verbatim */
    uint32_t high_bits; /* bits of the unary high part */
    uint32_t low_at;    /* byte offset of the low parts */
    uint32_t bytes;     /* encoded size of any list */
} vf_ef_shape;

/* The code of lists of at most max_n (>= 1) ids below universe (>= 1). */
vf_ef_shape vf_ef_shape_for(uint32_t universe, uint32_t max_n);

/* Encodes the n (<= max_n) distinct ids below the shape's universe into
 * out (sh->bytes + VF_EF_SLACK bytes, overwritten). Sorts ids in place. */
void vf_ef_encode(const vf_ef_shape *sh, uint32_t *ids, uint32_t n, uint8_t *out);

/* Decodes n (<= max_n) ids from code (sh->bytes + VF_EF_SLACK readable
 * bytes) into ids, ascending. Returns how many it found: n for any code
 * vf_ef_encode wrote, fewer only for torn bytes. */
static inline uint32_t vf_ef_decode(const vf_ef_shape *sh, const uint8_t *code, uint32_t n,
                                    uint32_t *ids)
{
    const uint32_t l = sh->low_bits;
    const uint64_t low_mask = l ? (~0ull >> (64 - l)) : 0;
    const uint8_t *lows = code + sh->low_at;
    const uint32_t words = (sh->high_bits + 63) / 64;
    uint32_t i = 0;
    for (uint32_t w = 0; w < words && i < n; w++) {
        uint64_t bits;
        memcpy(&bits, code + 8 * (size_t)w, sizeof(bits));
        while (bits && i < n) {
            const uint64_t high = 64 * (uint64_t)w + (uint64_t)__builtin_ctzll(bits) - i;
            const uint64_t at = (uint64_t)i * l;
            uint64_t low;
            memcpy(&low, lows + (at >> 3), sizeof(low));
            ids[i++] = (uint32_t)((high << l) | ((low >> (at & 7)) & low_mask));
            bits &= bits - 1;
        }
    }
    return i;
}

/* A decoder: vf_ef_decode's contract. */
typedef uint32_t (*vf_ef_decode_fn)(const vf_ef_shape *sh, const uint8_t *code, uint32_t n,
                                    uint32_t *ids);

/* vf_ef_decode, callable through a pointer. */
uint32_t vf_ef_decode_portable(const vf_ef_shape *sh, const uint8_t *code, uint32_t n,
                               uint32_t *ids);

#if defined(VF_HAVE_X86_KERNELS)
/* vf_ef_decode on AVX-512 VBMI and VBMI2 (elias_fano_vbmi2.c); only on a
 * CPU that has avx512f, avx512bw, avx512vbmi and avx512vbmi2. */
uint32_t vf_ef_decode_vbmi2(const vf_ef_shape *sh, const uint8_t *code, uint32_t n, uint32_t *ids);
#endif

/* The fastest decoder this CPU runs: vf_ef_decode_vbmi2 where the CPU has
 * VBMI and VBMI2 and the kernel table in use (vf_kernels_best, which
 * VECFS_KERNEL can force) is an AVX-512 one; else vf_ef_decode_portable. */
vf_ef_decode_fn vf_ef_decoder(void);

#endif /* VECFS_ENGINE_ELIAS_FANO_H */
