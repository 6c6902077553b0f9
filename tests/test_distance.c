/*
 * test_distance.c — the distance kernels and metric helpers of engine.h.
 *
 * Every kernel table this CPU can run is compared with the double-precision
 * reference for every dim 1..1024, on pointers that are not 16-byte
 * aligned and on buffers that end exactly where the vector ends (so an
 * over-read shows under AddressSanitizer). vf_distance, vf_normalize and
 * the metric names are checked against values worked out by hand.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"

#define MAX_TEST_DIM 1024u

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Uniform in [-1, 1) scaled by a random power of two in 2^-3 .. 2^3, so
 * signs are mixed and magnitudes differ. */
static float rand_value(void)
{
    float u = (float)(rng_next() >> 40) / (float)(1u << 24) * 2.0f - 1.0f;
    int e = (int)(rng_next() % 7) - 3;
    return ldexpf(u, e);
}

/* A vector of dim floats that starts 4 bytes past a 64-byte boundary and
 * ends at the end of its allocation. *block receives what to free. */
static float *alloc_unaligned(size_t dim, void **block)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, (dim + 1) * sizeof(float)), 0);
    *block = p;
    float *v = (float *)p + 1;
    for (size_t i = 0; i < dim; i++)
        v[i] = rand_value();
    return v;
}

static double sum_abs_products(const float *a, const float *b, size_t dim)
{
    double s = 0.0;
    for (size_t i = 0; i < dim; i++)
        s += fabs((double)a[i] * (double)b[i]);
    return s;
}

static double sum_sq_diff(const float *a, const float *b, size_t dim)
{
    double s = 0.0;
    for (size_t i = 0; i < dim; i++)
        s += ((double)a[i] - (double)b[i]) * ((double)a[i] - (double)b[i]);
    return s;
}

/* Float accumulation of up to 1024 terms: 1e-5 of the magnitude scale is
 * ~80 ulps, far above honest rounding and far below one dropped term
 * (about 1/dim of the scale). */
#define REL_TOL 1e-5

static void check_kernels(const vf_kernels *k)
{
    for (size_t dim = 1; dim <= MAX_TEST_DIM; dim++) {
        void *ba, *bb;
        float *a = alloc_unaligned(dim, &ba);
        float *b = alloc_unaligned(dim, &bb);

        double scale = sum_sq_diff(a, b, dim);
        double got = k->l2sq(a, b, dim), want = vf_ref_l2sq(a, b, dim);
        if (fabs(got - want) > REL_TOL * scale + 1e-30) {
            fail_msg("%s l2sq dim %zu: got %.9g want %.9g", k->name, dim, got, want);
        }

        scale = sum_abs_products(a, b, dim);
        got = k->dot(a, b, dim);
        want = vf_ref_dot(a, b, dim);
        if (fabs(got - want) > REL_TOL * scale + 1e-30) {
            fail_msg("%s dot dim %zu: got %.9g want %.9g", k->name, dim, got, want);
        }

        /* Self products: l2 of a vector with itself is exactly 0. */
        assert_true(k->l2sq(a, a, dim) == 0.0f);
        free(ba);
        free(bb);
    }
}

static void test_every_kernel_matches_reference(void **state)
{
    (void)state;
    int checked = 0;
    for (int isa = 0; isa < VF_ISA_COUNT; isa++) {
        const vf_kernels *k = vf_kernels_for((vf_isa)isa);
        if (k == NULL)
            continue;
        assert_int_equal(k->isa, isa);
        assert_non_null(k->name);
        check_kernels(k);
        printf("kernel %s: l2sq and dot match the reference for dim 1..%u\n", k->name,
               MAX_TEST_DIM);
        checked++;
    }
    assert_true(checked >= 1);
}

static void test_kernel_tables(void **state)
{
    (void)state;
    const vf_kernels *best = vf_kernels_best();
    assert_non_null(best);
    assert_ptr_equal(vf_kernels_best(), best);
    assert_ptr_equal(vf_kernels_for(best->isa), best);
    assert_non_null(vf_kernels_for(VF_ISA_SCALAR));
    assert_string_equal(vf_kernels_for(VF_ISA_SCALAR)->name, "scalar");
    assert_null(vf_kernels_for(VF_ISA_COUNT));
    assert_null(vf_kernels_for((vf_isa)-1));
#if defined(__x86_64__) || defined(__i386__)
    assert_null(vf_kernels_for(VF_ISA_NEON));
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512bw");
    /* The VNNI code kernels only where the CPU has VNNI. */
    if (!avx512 || !__builtin_cpu_supports("avx512vnni"))
        assert_null(vf_kernels_for(VF_ISA_AVX512_VNNI));
    if (avx512 && __builtin_cpu_supports("avx512vnni")) {
        assert_int_equal(best->isa, VF_ISA_AVX512_VNNI);
        assert_string_equal(best->name, "avx512+vnni");
        assert_non_null(vf_kernels_for(VF_ISA_AVX512));
    } else if (avx512)
        assert_int_equal(best->isa, VF_ISA_AVX512);
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        assert_int_equal(best->isa, VF_ISA_AVX2);
    if (__builtin_cpu_supports("sse4.1"))
        assert_non_null(vf_kernels_for(VF_ISA_SSE));
#endif
#if defined(__aarch64__)
    assert_int_equal(best->isa, VF_ISA_NEON);
    assert_null(vf_kernels_for(VF_ISA_AVX512_VNNI));
#endif
}

static const char *self_path;

/* Runs this binary in --print-best mode with VECFS_KERNEL=value and
 * returns (in buf) the kernel name it reports. */
static void best_under_env(const char *value, char *buf, size_t len)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "VECFS_KERNEL='%s' '%s' --print-best", value, self_path);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, (int)len, f));
    assert_int_equal(pclose(f), 0);
    buf[strcspn(buf, "\n")] = '\0';
}

static void test_env_override(void **state)
{
    (void)state;
    char got[64];
    for (int isa = 0; isa < VF_ISA_COUNT; isa++) {
        const vf_kernels *k = vf_kernels_for((vf_isa)isa);
        if (k == NULL)
            continue;
        best_under_env(k->name, got, sizeof(got));
        assert_string_equal(got, k->name);
    }
    best_under_env("no-such-isa", got, sizeof(got));
    assert_string_equal(got, vf_kernels_best()->name);
}

static void test_distance_hand_values(void **state)
{
    (void)state;
    const float a[3] = {1.0f, 2.0f, 3.0f};
    const float b[3] = {4.0f, -5.0f, 6.0f};
    /* (1-4)^2 + (2+5)^2 + (3-6)^2 = 9 + 49 + 9 */
    assert_float_equal(vf_distance(VF_METRIC_L2, a, b, 3), 67.0f, 1e-5f);
    /* 4 - 10 + 18 = 12 */
    assert_float_equal(vf_distance(VF_METRIC_DOT, a, b, 3), -12.0f, 1e-5f);
    /* 1 - 12 / (sqrt(14) sqrt(77)) */
    assert_float_equal(vf_distance(VF_METRIC_COSINE, a, b, 3),
                       (float)(1.0 - 12.0 / sqrt(14.0 * 77.0)), 1e-6f);

    const float c[2] = {3.0f, 4.0f};
    const float d[2] = {-6.0f, -8.0f};
    const float e[2] = {-4.0f, 3.0f};
    assert_float_equal(vf_distance(VF_METRIC_COSINE, c, c, 2), 0.0f, 1e-6f);
    assert_float_equal(vf_distance(VF_METRIC_COSINE, c, d, 2), 2.0f, 1e-6f);
    assert_float_equal(vf_distance(VF_METRIC_COSINE, c, e, 2), 1.0f, 1e-6f);
    assert_float_equal(vf_distance(VF_METRIC_L2, c, d, 2), 81.0f + 144.0f, 1e-4f);
    assert_float_equal(vf_distance(VF_METRIC_DOT, c, d, 2), 50.0f, 1e-5f);
    /* Unknown metric: NaN, not a plausible distance. */
    assert_true(isnan(vf_distance((vf_metric)7, c, d, 2)));
}

static void test_cosine_zero_vector(void **state)
{
    (void)state;
    const float z[4] = {0};
    const float v[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    assert_true(vf_distance(VF_METRIC_COSINE, z, v, 4) == 1.0f);
    assert_true(vf_distance(VF_METRIC_COSINE, v, z, 4) == 1.0f);
    assert_true(vf_distance(VF_METRIC_COSINE, z, z, 4) == 1.0f);
    assert_true(vf_distance(VF_METRIC_DOT, z, v, 4) == 0.0f);
}

static void test_normalize(void **state)
{
    (void)state;
    const float v[2] = {3.0f, 4.0f};
    float out[2];
    vf_normalize(v, out, 2);
    assert_float_equal(out[0], 0.6f, 1e-7f);
    assert_float_equal(out[1], 0.8f, 1e-7f);

    float w[37];
    for (size_t i = 0; i < 37; i++)
        w[i] = rand_value() * 1000.0f;
    vf_normalize(w, w, 37);
    assert_float_equal(vf_ref_dot(w, w, 37), 1.0f, 1e-6f);

    float z[5] = {0}, zo[5] = {1, 1, 1, 1, 1};
    vf_normalize(z, zo, 5);
    for (size_t i = 0; i < 5; i++)
        assert_true(zo[i] == 0.0f);
    vf_normalize(z, z, 5);
    for (size_t i = 0; i < 5; i++)
        assert_true(z[i] == 0.0f);

    /* Large values must not overflow the norm. */
    float big[2] = {3e30f, 4e30f};
    vf_normalize(big, big, 2);
    assert_float_equal(big[0], 0.6f, 1e-6f);
    assert_float_equal(big[1], 0.8f, 1e-6f);
}

static void test_metric_names(void **state)
{
    (void)state;
    const vf_metric all[] = {VF_METRIC_L2, VF_METRIC_COSINE, VF_METRIC_DOT};
    for (size_t i = 0; i < 3; i++) {
        vf_metric m = (vf_metric)99;
        assert_int_equal(vf_metric_parse(vf_metric_name(all[i]), &m), 0);
        assert_int_equal(m, all[i]);
    }
    assert_string_equal(vf_metric_name(VF_METRIC_L2), "l2");
    assert_string_equal(vf_metric_name(VF_METRIC_COSINE), "cosine");
    assert_string_equal(vf_metric_name(VF_METRIC_DOT), "dot");
    assert_string_equal(vf_metric_name((vf_metric)42), "unknown");

    const char *bad[] = {"", "L2", "Cosine", "cos", "l2 ", " dot", "euclidean", "dotx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vf_metric m = VF_METRIC_DOT;
        assert_int_equal(vf_metric_parse(bad[i], &m), -EINVAL);
        assert_int_equal(m, VF_METRIC_DOT); /* untouched on error */
    }
    vf_metric m;
    assert_int_equal(vf_metric_parse(NULL, &m), -EINVAL);
    assert_int_equal(vf_metric_parse("l2", NULL), -EINVAL);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-best") == 0) {
        printf("%s\n", vf_kernels_best()->name);
        return 0;
    }
    self_path = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_tables),
        cmocka_unit_test(test_every_kernel_matches_reference),
        cmocka_unit_test(test_env_override),
        cmocka_unit_test(test_distance_hand_values),
        cmocka_unit_test(test_cosine_zero_vector),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_metric_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
