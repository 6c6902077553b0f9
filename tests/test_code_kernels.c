/*
 * test_code_kernels.c — the int8 code kernels (l2sq_u8, dot_u8) of every
 * kernel table this CPU can run, against the reference, with EXACT
 * equality (the kernels promise exact uint32 sums).
 *
 * Every dim 1..1024, each input at byte offsets 0..3 from a 64-byte
 * boundary and ending exactly where its allocation ends (an over-read shows
 * under AddressSanitizer), over random bytes and the extreme patterns
 * (all 0, all 255, 0/255 alternating, random 0-or-255). The overflow
 * promise is checked at dim 1024 and at VF_MAX_DIM with the patterns whose
 * sums come closest to 2^32, against values worked out by hand.
 *
 * Built a second time with VF_TEST_NEON_EMULATED on x86: that binary also
 * links engine/distance_neon.c compiled through simde's NEON emulation and
 * checks its table, so the NEON kernels' logic runs on every CI machine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"

#if defined(VF_TEST_NEON_EMULATED)
extern const vf_kernels vf_kernels_neon;
#endif

#define MAX_TEST_DIM 1024u
#define MAX_OFFSET 3u

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The input patterns; each fills a vector of dim bytes. `which` tells the
 * two sides of a pair apart where the pattern needs them to differ. */
enum pattern {
    PAT_RANDOM,      /* uniform bytes */
    PAT_ZERO_MAX,    /* a all 0, b all 255 */
    PAT_MAX_MAX,     /* both all 255 */
    PAT_ALTERNATE,   /* a 0,255,0,... b 255,0,255,... */
    PAT_RANDOM_EDGE, /* each byte 0 or 255 at random */
    PAT_COUNT
};

static void fill(uint8_t *v, size_t dim, enum pattern p, int which)
{
    for (size_t i = 0; i < dim; i++) {
        switch (p) {
        case PAT_RANDOM:
            v[i] = (uint8_t)(rng_next() >> 56);
            break;
        case PAT_ZERO_MAX:
            v[i] = which ? 255 : 0;
            break;
        case PAT_MAX_MAX:
            v[i] = 255;
            break;
        case PAT_ALTERNATE:
            v[i] = ((i + (size_t)which) & 1) ? 255 : 0;
            break;
        default:
            v[i] = (rng_next() >> 63) ? 255 : 0;
            break;
        }
    }
}

/* dim bytes at offset `off` past a 64-byte boundary, the last one being the
 * last byte of the allocation. *block receives what to free. */
static uint8_t *alloc_at(size_t dim, size_t off, void **block)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, off + dim), 0);
    *block = p;
    return (uint8_t *)p + off;
}

/* The tables to check: every one this CPU runs (plus the emulated NEON one
 * in that build). Returns how many. */
static size_t tables(const vf_kernels **out, size_t cap)
{
    size_t n = 0;
    for (int isa = 0; isa < VF_ISA_COUNT && n < cap; isa++) {
        const vf_kernels *k = vf_kernels_for((vf_isa)isa);
        if (k != NULL)
            out[n++] = k;
    }
#if defined(VF_TEST_NEON_EMULATED)
    if (n < cap)
        out[n++] = &vf_kernels_neon;
#endif
    return n;
}

/* Both code kernels of every table on one pair, against the reference. */
static void check_pair(const vf_kernels *const *ks, size_t nk, const uint8_t *a, const uint8_t *b,
                       size_t dim, const char *what)
{
    uint32_t want_l2 = vf_ref_l2sq_u8(a, b, dim), want_dot = vf_ref_dot_u8(a, b, dim);
    for (size_t t = 0; t < nk; t++) {
        uint32_t got = ks[t]->l2sq_u8(a, b, dim);
        if (got != want_l2)
            fail_msg("%s l2sq_u8 dim %zu %s: got %u want %u", ks[t]->name, dim, what, got, want_l2);
        got = ks[t]->dot_u8(a, b, dim);
        if (got != want_dot)
            fail_msg("%s dot_u8 dim %zu %s: got %u want %u", ks[t]->name, dim, what, got, want_dot);
        /* Symmetric by definition; each side takes the other role. */
        assert_int_equal(ks[t]->l2sq_u8(b, a, dim), want_l2);
        assert_int_equal(ks[t]->dot_u8(b, a, dim), want_dot);
    }
}

static void test_every_table_exact(void **state)
{
    (void)state;
    const vf_kernels *ks[VF_ISA_COUNT + 1];
    size_t nk = tables(ks, sizeof(ks) / sizeof(ks[0]));
    assert_true(nk >= 1);
    static const char *const names[PAT_COUNT] = {"random", "0 vs 255", "255 vs 255", "alternating",
                                                 "random 0/255"};
    char what[64];
    for (size_t dim = 1; dim <= MAX_TEST_DIM; dim++) {
        for (int p = 0; p < PAT_COUNT; p++) {
            for (size_t off = 0; off <= MAX_OFFSET; off++) {
                /* b sits at a different offset than a, so the two loads of
                 * one step are misaligned differently. */
                size_t off_b = (off + 1) % (MAX_OFFSET + 1);
                void *ba, *bb;
                uint8_t *a = alloc_at(dim, off, &ba), *b = alloc_at(dim, off_b, &bb);
                fill(a, dim, (enum pattern)p, 0);
                fill(b, dim, (enum pattern)p, 1);
                snprintf(what, sizeof(what), "%s, offsets %zu/%zu", names[p], off, off_b);
                check_pair(ks, nk, a, b, dim, what);
                free(ba);
                free(bb);
            }
        }
    }
    for (size_t t = 0; t < nk; t++)
        printf("code kernels %s: exact for dim 1..%u, offsets 0..%u\n", ks[t]->name, MAX_TEST_DIM,
               MAX_OFFSET);
}

/* The largest sums a kernel can meet: 255^2 per byte comes to
 * 4,261,478,400 at VF_MAX_DIM, above INT32_MAX and just below 2^32. */
static void check_overflow_at(size_t dim)
{
    const vf_kernels *ks[VF_ISA_COUNT + 1];
    size_t nk = tables(ks, sizeof(ks) / sizeof(ks[0]));
    const uint32_t full = 65025u * (uint32_t)dim;
    for (size_t off = 0; off <= MAX_OFFSET; off++) {
        void *bz, *bm, *bx, *by;
        uint8_t *zero = alloc_at(dim, off, &bz), *max = alloc_at(dim, off, &bm);
        uint8_t *alt0 = alloc_at(dim, MAX_OFFSET - off, &bx), *alt1 = alloc_at(dim, off, &by);
        fill(zero, dim, PAT_ZERO_MAX, 0);
        fill(max, dim, PAT_ZERO_MAX, 1);
        fill(alt0, dim, PAT_ALTERNATE, 0);
        fill(alt1, dim, PAT_ALTERNATE, 1);
        for (size_t t = 0; t < nk; t++) {
            const vf_kernels *k = ks[t];
            assert_int_equal(k->l2sq_u8(zero, max, dim), full);
            assert_int_equal(k->dot_u8(max, max, dim), full);
            assert_int_equal(k->l2sq_u8(alt0, alt1, dim), full);
            assert_int_equal(k->dot_u8(alt0, alt0, dim), full / 2);
            assert_int_equal(k->dot_u8(alt0, alt1, dim), 0);
            assert_int_equal(k->l2sq_u8(max, max, dim), 0);
            assert_int_equal(k->dot_u8(zero, max, dim), 0);
        }
        free(bz);
        free(bm);
        free(bx);
        free(by);
    }
    /* The hand values are the reference's too. */
    assert_int_equal(vf_ref_l2sq_u8((const uint8_t[]){0, 0}, (const uint8_t[]){255, 255}, 2),
                     2u * 65025u);
}

static void test_no_overflow_dim_1024(void **state)
{
    (void)state;
    check_overflow_at(1024);
}

static void test_no_overflow_max_dim(void **state)
{
    (void)state;
    check_overflow_at(VF_MAX_DIM);
    /* 255^2 * VF_MAX_DIM is the largest sum; it must fit a uint32. */
    assert_true((uint64_t)65025u * VF_MAX_DIM <= UINT32_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_table_exact),
        cmocka_unit_test(test_no_overflow_dim_1024),
        cmocka_unit_test(test_no_overflow_max_dim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
