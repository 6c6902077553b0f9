/*
 * distance.c — kernel selection, the scalar reference kernels, and the
 * metric helpers of engine.h (vf_distance, vf_normalize, metric names).
 *
 * Kernel choice
 *   The first call to vf_kernels_best() or vf_kernels_for() runs detect()
 *   once (pthread_once). On x86 it asks the CPU (__builtin_cpu_supports,
 *   which also checks that the OS saves the wider registers) and prefers
 *   avx512+vnni (the avx512 set plus avx512vnni: the AVX-512 float kernels
 *   with VNNI code kernels), then avx512 (avx512f + avx512dq +
 *   avx512bw), then avx2 (avx2 + fma), then sse4.1, then scalar. A CPU with
 *   AVX-512 but no VNNI never gets the VNNI table. On aarch64 NEON is
 *   always present. Elsewhere: scalar.
 *
 *   The environment variable
 *   VECFS_KERNEL=scalar|sse4.1|avx2|avx512|avx512+vnni|neon,
 *   read once during detection, forces vf_kernels_best() to that table so
 *   that benchmarks can compare instruction sets. A name this binary or
 *   CPU cannot run is ignored and the best table is used. It does not
 *   change vf_kernels_for().
 *
 * Invariants
 *   1. After detect() has run, usable[isa] is non-NULL exactly for the
 *      tables that are compiled in and runnable on this CPU, and best points
 *      to one of them. Both are written only inside pthread_once and only
 *      read after it, so no lock is needed afterwards.
 *   2. usable[VF_ISA_SCALAR] is always set: vf_kernels_best() never fails.
 *   3. The reference kernels accumulate in double, in index order; they
 *      are the yardstick of the tests, not a hot path.
 *   4. Cosine distance is computed only by vf_cosine_from_dots (kernels.h),
 *      here and in exact search, so both agree bit for bit.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static const vf_kernels *usable[VF_ISA_COUNT]; /* written once, in detect() */
static const vf_kernels *best;                 /* written once, in detect() */

/* Fills usable[] and best for this CPU and VECFS_KERNEL; run once. */
static void detect(void)
{
    usable[VF_ISA_SCALAR] = &vf_kernels_scalar;
#if defined(VF_HAVE_X86_KERNELS) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.1"))
        usable[VF_ISA_SSE] = &vf_kernels_sse;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        usable[VF_ISA_AVX2] = &vf_kernels_avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw")) {
        usable[VF_ISA_AVX512] = &vf_kernels_avx512;
        if (__builtin_cpu_supports("avx512vnni"))
            usable[VF_ISA_AVX512_VNNI] = &vf_kernels_avx512_vnni;
    }
#endif
#if defined(VF_HAVE_NEON_KERNELS) && defined(__aarch64__)
    usable[VF_ISA_NEON] = &vf_kernels_neon;
#endif
    /* Preference order: widest first. */
    static const vf_isa order[] = {VF_ISA_AVX512_VNNI, VF_ISA_AVX512, VF_ISA_AVX2,
                                   VF_ISA_NEON,        VF_ISA_SSE,    VF_ISA_SCALAR};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (usable[order[i]] != NULL) {
            best = usable[order[i]];
            break;
        }
    }

    const char *forced = getenv("VECFS_KERNEL");
    if (forced != NULL) {
        for (int isa = 0; isa < VF_ISA_COUNT; isa++) {
            if (usable[isa] != NULL && strcmp(usable[isa]->name, forced) == 0)
                best = usable[isa];
        }
    }
}

const vf_kernels *vf_kernels_best(void)
{
    pthread_once(&detect_once, detect);
    return best;
}

const vf_kernels *vf_kernels_for(vf_isa isa)
{
    if ((int)isa < 0 || isa >= VF_ISA_COUNT)
        return NULL;
    pthread_once(&detect_once, detect);
    return usable[isa];
}

float vf_ref_l2sq(const float *a, const float *b, size_t dim)
{
    double s = 0.0;
    for (size_t i = 0; i < dim; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return (float)s;
}

float vf_ref_dot(const float *a, const float *b, size_t dim)
{
    double s = 0.0;
    for (size_t i = 0; i < dim; i++)
        s += (double)a[i] * (double)b[i];
    return (float)s;
}

uint32_t vf_ref_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    uint32_t s = 0;
    for (size_t i = 0; i < dim; i++) {
        int32_t d = (int32_t)a[i] - (int32_t)b[i];
        s += (uint32_t)(d * d);
    }
    return s;
}

uint32_t vf_ref_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim)
{
    uint32_t s = 0;
    for (size_t i = 0; i < dim; i++)
        s += (uint32_t)a[i] * (uint32_t)b[i];
    return s;
}

/* An unknown metric is a programmer error that a float return cannot
 * report as an errno; it gives NaN so that the mistake shows. */
float vf_distance(vf_metric metric, const float *a, const float *b, size_t dim)
{
    const vf_kernels *k = vf_kernels_best();
    switch (metric) {
    case VF_METRIC_L2:
        return k->l2sq(a, b, dim);
    case VF_METRIC_DOT:
        return -k->dot(a, b, dim);
    case VF_METRIC_COSINE:
        return vf_cosine_from_dots(k->dot(a, b, dim), k->dot(a, a, dim), k->dot(b, b, dim));
    }
    return NAN;
}

/* The norm is accumulated in double: it cannot overflow for finite floats
 * and the result is as close to unit length as float allows. */
void vf_normalize(const float *a, float *out, size_t dim)
{
    double n2 = 0.0;
    for (size_t i = 0; i < dim; i++)
        n2 += (double)a[i] * (double)a[i];
    if (n2 <= 0.0) {
        if (out != a)
            memmove(out, a, dim * sizeof(*out));
        return;
    }
    double inv = 1.0 / sqrt(n2);
    for (size_t i = 0; i < dim; i++)
        out[i] = (float)((double)a[i] * inv);
}

int vf_metric_parse(const char *s, vf_metric *out)
{
    static const struct {
        const char *name;
        vf_metric metric;
    } names[] = {
        {"l2", VF_METRIC_L2},
        {"cosine", VF_METRIC_COSINE},
        {"dot", VF_METRIC_DOT},
    };
    if (s == NULL || out == NULL)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].metric;
            return 0;
        }
    }
    return -EINVAL;
}

const char *vf_metric_name(vf_metric metric)
{
    switch (metric) {
    case VF_METRIC_L2:
        return "l2";
    case VF_METRIC_COSINE:
        return "cosine";
    case VF_METRIC_DOT:
        return "dot";
    }
    return "unknown";
}
