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
/* Its code kernels, which the other tables use until they have their own. */
uint32_t vf_scalar_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim);
uint32_t vf_scalar_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim);

#if defined(VF_HAVE_X86_KERNELS)
/* SSE4.1 (distance_sse.c, built with -msse4.1). */
extern const vf_kernels vf_kernels_sse;
/* AVX2 + FMA (distance_avx2.c, built with -mavx2 -mfma). */
extern const vf_kernels vf_kernels_avx2;
/* AVX-512 F+DQ (distance_avx512.c, built with -mavx512f -mavx512dq). */
extern const vf_kernels vf_kernels_avx512;
#endif

#if defined(VF_HAVE_NEON_KERNELS)
/* NEON (distance_neon.c). */
extern const vf_kernels vf_kernels_neon;
#endif

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
