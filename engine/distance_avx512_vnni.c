/*
 * distance_avx512_vnni.c — the AVX-512 table with code kernels on the VNNI
 * instructions, written with simde. Built with -mavx512f -mavx512dq
 * -mavx512bw -mavx512vnni -mavx2 -mfma; distance.c calls this table only
 * when the CPU has avx512vnni besides what the AVX-512 table needs. Its
 * float kernels are the AVX-512 table's.
 *
 * dot: vpdpbusd multiplies unsigned bytes by SIGNED bytes (four products
 * summed into a 32-bit lane, wrapping), but both sides of a code product
 * are 0..255. The signed side is shifted by 128 (b ^ 0x80 is b - 128 as a
 * signed byte) and the shift is paid back with a sum of the unsigned side:
 *   sum a*b = sum a*(b - 128) + 128 * sum a
 * sum a is vpsadbw(a, 0): eight bytes summed into a 64-bit lane, at most
 * 2,040, so the lanes' upper halves stay 0 and they are added and summed
 * as 32-bit lanes.
 *
 * l2: the byte differences |a - b| widened to 16 bits and squared with
 * vpdpwssd (pmaddwd and the add in one instruction; two products of at
 * most 255^2 per lane). The same shift scheme on vpdpbusd (sum d*(d-128) +
 * 128 * vpsadbw(a, b)) is exact too, but measured 11.7 ns against 7.1 ns
 * per call at dim 384 on the AMD EPYC (Zen 4) of docs/performance.md.
 *
 * Invariants
 *   1. Exact: all arithmetic wraps modulo 2^32 (vpdpbusd, not the
 *      saturating vpdpbusds; vpaddd; uint32_t in C). The true sum is below
 *      255^2 * VF_MAX_DIM < 2^32, so the wrapped result is the true one even
 *      though the shifted partial sums may be negative.
 *   2. Reads exactly dim bytes of each input: 128- and 64-byte steps, then
 *      one masked step over the last 64 bytes (code_sse2.h's
 *      vf_code_tail_mask: a zeroed byte adds 0 to p and to t); a dim below
 *      64 goes to code_sse2.h's 16-byte kernels.
 *   3. Two sets of sums per 128 bytes, so one VNNI instruction does not
 *      wait on the other's latency.
 */
#include <simde/x86/avx512/add.h>
#include <simde/x86/avx512/and.h>
#include <simde/x86/avx512/dpbusd.h>
#include <simde/x86/avx512/dpwssd.h>
#include <simde/x86/avx512/sad.h>
#include <simde/x86/avx512/set1.h>
#include <simde/x86/avx512/unpackhi.h>
#include <simde/x86/avx512/unpacklo.h>
#include <simde/x86/avx512/xor.h>

#include "code_avx512.h"
#include "kernels.h"

/* x - 128 as signed bytes. */
static VF_KERNEL_INLINE simde__m512i shift_to_signed(simde__m512i x)
{
    return simde_mm512_xor_si512(x, simde_mm512_set1_epi8(INT8_MIN));
}

/* The running sums of a kernel; its result is sum(p) + weight * sum(t).
 * dot: p the shifted products, t the byte sums that pay the shift back
 * (weight 128). l2: p and t the squares of the low and high halves of the
 * 64 differences (weight 1). */
typedef struct vnni_sums {
    simde__m512i p, t;
} vnni_sums;

static VF_KERNEL_INLINE vnni_sums l2sq_step(vnni_sums s, simde__m512i a, simde__m512i b)
{
    const simde__m512i zero = simde_mm512_setzero_si512();
    simde__m512i d = vf_avx512_absdiff_u8(a, b);
    simde__m512i lo = simde_mm512_unpacklo_epi8(d, zero), hi = simde_mm512_unpackhi_epi8(d, zero);
    s.p = simde_mm512_dpwssd_epi32(s.p, lo, lo);
    s.t = simde_mm512_dpwssd_epi32(s.t, hi, hi);
    return s;
}

static VF_KERNEL_INLINE vnni_sums dot_step(vnni_sums s, simde__m512i a, simde__m512i b)
{
    s.p = simde_mm512_dpbusd_epi32(s.p, a, shift_to_signed(b));
    s.t = simde_mm512_add_epi32(s.t, simde_mm512_sad_epu8(a, simde_mm512_setzero_si512()));
    return s;
}

/* The kernel around one step (inlined: `step` is a constant at every
 * call): 128-byte steps into two independent sums, a 64-byte step, the
 * masked last step; a dim below 64 goes to the 16-byte kernel `narrow`. */
static VF_KERNEL_INLINE uint32_t
code_kernel(const uint8_t *a, const uint8_t *b, size_t dim,
            vnni_sums (*step)(vnni_sums, simde__m512i, simde__m512i), uint32_t weight,
            uint32_t (*narrow)(const uint8_t *, const uint8_t *, size_t))
{
    if (dim < 64)
        return narrow(a, b, dim);
    const simde__m512i zero = simde_mm512_setzero_si512();
    vnni_sums s0 = {zero, zero}, s1 = {zero, zero};
    size_t i = 0;
    for (; i + 128 <= dim; i += 128) {
        s0 = step(s0, vf_avx512_load_u8(a + i), vf_avx512_load_u8(b + i));
        s1 = step(s1, vf_avx512_load_u8(a + i + 64), vf_avx512_load_u8(b + i + 64));
    }
    if (i + 64 <= dim) {
        s0 = step(s0, vf_avx512_load_u8(a + i), vf_avx512_load_u8(b + i));
        i += 64;
    }
    if (i < dim) {
        simde__m512i m = vf_avx512_tail_mask(dim - i);
        s1 = step(s1, simde_mm512_and_si512(m, vf_avx512_load_u8(a + dim - 64)),
                  simde_mm512_and_si512(m, vf_avx512_load_u8(b + dim - 64)));
    }
    return vf_avx512_hsum_u32(simde_mm512_add_epi32(s0.p, s1.p)) +
           weight * vf_avx512_hsum_u32(simde_mm512_add_epi32(s0.t, s1.t));
}

static uint32_t vnni_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return code_kernel(a, b, dim, l2sq_step, 1, vf_sse2_l2sq_u8);
}

static uint32_t vnni_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    return code_kernel(a, b, dim, dot_step, 128, vf_sse2_dot_u8);
}

const vf_kernels vf_kernels_avx512_vnni = {
    .isa = VF_ISA_AVX512_VNNI,
    .name = "avx512+vnni",
    .l2sq = vf_avx512_l2sq,
    .dot = vf_avx512_dot,
    .l2sq_u8 = vnni_l2sq_u8,
    .dot_u8 = vnni_dot_u8,
};
