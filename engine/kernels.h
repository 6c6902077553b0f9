/*
 * kernels.h — the per-instruction-set kernel tables and the small helpers
 * every distance user in the engine shares. Internal to the engine.
 *
 * Each table is defined in its own file (distance_<isa>.c) compiled with
 * the -m flags of its instruction set, so only distance.c decides, after
 * CPU detection, whether a table may be called. A table that this build
 * does not compile (e.g. AVX-512 on aarch64) is not declared usable: see
 * VF_HAVE_X86_KERNELS / VF_HAVE_NEON_KERNELS set by engine/meson.build.
 */
#ifndef VECFS_ENGINE_KERNELS_H
#define VECFS_ENGINE_KERNELS_H

#include <math.h>

#include "engine.h"

/* Plain C, float accumulation; always present and always runnable. */
extern const vf_kernels vf_kernels_scalar;

#if defined(VF_HAVE_X86_KERNELS)
/* SSE4.1 (distance_sse.c, built with -msse4.1). */
extern const vf_kernels vf_kernels_sse;
/* AVX2 + FMA (distance_avx2.c, built with -mavx2 -mfma). */
extern const vf_kernels vf_kernels_avx2;
/* AVX-512 F+DQ+BW (distance_avx512.c, built with -mavx512f -mavx512dq
 * -mavx512bw): float kernels and 64-byte pmaddwd code kernels. */
extern const vf_kernels vf_kernels_avx512;
/* Its float kernels, which the VNNI table shares. */
float vf_avx512_l2sq(const float *a, const float *b, size_t dim);
float vf_avx512_dot(const float *a, const float *b, size_t dim);
/* AVX-512 with VNNI (distance_avx512_vnni.c, built with -mavx512vnni too):
 * the AVX-512 float kernels and VNNI code kernels (vpdpbusd dot, vpdpwssd
 * l2). */
extern const vf_kernels vf_kernels_avx512_vnni;
#endif

#if defined(VF_HAVE_NEON_KERNELS)
/* NEON (distance_neon.c). */
extern const vf_kernels vf_kernels_neon;
#endif

/* For the small helpers a kernel is assembled from (a step passed to a
 * loop as a function pointer): the compiler must inline them, or the
 * pointer stays an indirect call per step. */
#define VF_KERNEL_INLINE inline __attribute__((always_inline))

/*
 * The code kernels' last bytes, from index i to dim, in plain C: what is
 * left below the narrowest vector step of a kernel (fewer than 8 bytes).
 */
static inline uint32_t vf_code_l2sq_tail(const uint8_t *a, const uint8_t *b, size_t i, size_t dim)
{
    uint32_t s = 0;
    for (; i < dim; i++) {
        int32_t d = (int32_t)a[i] - (int32_t)b[i];
        s += (uint32_t)(d * d);
    }
    return s;
}

static inline uint32_t vf_code_dot_tail(const uint8_t *a, const uint8_t *b, size_t i, size_t dim)
{
    uint32_t s = 0;
    for (; i < dim; i++)
        s += (uint32_t)a[i] * b[i];
    return s;
}

/*
 * Cosine distance from the three dot products ab = a.b, aa = a.a, bb = b.b.
 * Both vf_distance and exact search use this one formula so that their
 * results are bit-identical. A zero vector (aa or bb == 0) is at distance 1
 * from everything. The products are taken in double so that aa * bb cannot
 * overflow for finite floats.
 */
static inline float vf_cosine_from_dots(float ab, float aa, float bb)
{
    if (aa <= 0.0f || bb <= 0.0f)
        return 1.0f;
    return (float)(1.0 - (double)ab / sqrt((double)aa * (double)bb));
}

#endif /* VECFS_ENGINE_KERNELS_H */
