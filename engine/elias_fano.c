/*
 * elias_fano.c — the shape and the encoder of elias_fano.h's codes (the
 * decoder is inline there, on the walk's path).
 *
 * Invariants
 *   1. shape.bytes >= low_at + ceil(max_n * low_bits / 8): every low part
 *      of a full list fits; the high bitmap fits before low_at.
 *   2. The encoder writes every byte of [0, bytes) (zeros where no bit is
 *      set), so equal lists give equal codes.
 */
#include "elias_fano.h"

#include <assert.h>

#include "engine.h"

vf_ef_shape vf_ef_shape_for(uint32_t universe, uint32_t max_n)
{
    assert(universe >= 1 && max_n >= 1);
    vf_ef_shape sh = {.max_n = max_n};
    while (sh.low_bits < 31 && ((uint64_t)max_n << (sh.low_bits + 1)) <= universe)
        sh.low_bits++;
    sh.high_bits = max_n + ((universe - 1) >> sh.low_bits) + 1;
    sh.low_at = (sh.high_bits + 7) / 8;
    sh.bytes = sh.low_at + (uint32_t)(((uint64_t)max_n * sh.low_bits + 7) / 8);
    return sh;
}

void vf_ef_encode(const vf_ef_shape *sh, uint32_t *ids, uint32_t n, uint8_t *out)
{
    assert(n <= sh->max_n);
    /* Lists arrive nearly sorted (a decoded list with a change or two):
     * insertion sort is linear then. */
    for (uint32_t i = 1; i < n; i++) {
        uint32_t v = ids[i], j = i;
        for (; j > 0 && ids[j - 1] > v; j--)
            ids[j] = ids[j - 1];
        ids[j] = v;
    }
    memset(out, 0, (size_t)sh->bytes + VF_EF_SLACK);
    const uint32_t l = sh->low_bits;
    const uint64_t low_mask = l ? (~0ull >> (64 - l)) : 0;
    /* The low parts go through a 64-bit accumulator written out a whole
     * word at a time: a read-modify-write of the overlapping unaligned word
     * of each id stalled on the store before it (about 3 % of a words50k
     * build). */
    uint8_t *lows = out + sh->low_at;
    uint64_t acc = 0;
    uint32_t fill = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint64_t bit = (uint64_t)(ids[i] >> l) + i;
        assert(bit < sh->high_bits);
        out[bit >> 3] |= (uint8_t)(1u << (bit & 7));
        const uint64_t low = ids[i] & low_mask;
        acc |= low << fill;
        fill += l;
        if (fill >= 64) {
            memcpy(lows, &acc, sizeof(acc));
            lows += sizeof(acc);
            fill -= 64;
            acc = fill ? low >> (l - fill) : 0;
        }
    }
    memcpy(lows, &acc, (fill + 7) / 8);
}

uint32_t vf_ef_decode_portable(const vf_ef_shape *sh, const uint8_t *code, uint32_t n,
                               uint32_t *ids)
{
    return vf_ef_decode(sh, code, n, ids);
}

vf_ef_decode_fn vf_ef_decoder(void)
{
#if defined(VF_HAVE_X86_KERNELS) && (defined(__x86_64__) || defined(__i386__))
    /* The kernel table distance.c chose (VECFS_KERNEL included) says
     * whether AVX-512 is in use; VBMI and VBMI2 are asked of the CPU. */
    if (strncmp(vf_kernels_best()->name, "avx512", 6) == 0 &&
        __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2"))
        return vf_ef_decode_vbmi2;
#endif
    return vf_ef_decode_portable;
}
