/*
 * test_elias_fano.c — the packed level-0 list code (engine/elias_fano.h):
 * shapes against the sizes the layout promises, and round trips of random
 * and boundary lists for every length 0..max_n over universes from 1 to
 * 2^32 - 1, decoded from buffers whose slack holds garbage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "elias_fano.h"
#include "engine.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* n distinct ids below universe (n <= universe), unsorted; with `edges`,
 * 0 and universe - 1 among them when n allows. */
static void random_ids(uint32_t *ids, uint32_t n, uint32_t universe, int edges)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v;
        int repeat;
        do {
            if (edges && i == 0)
                v = 0;
            else if (edges && i == 1)
                v = universe - 1;
            else if (universe <= 4096 || (rng_next() & 3) != 0)
                v = (uint32_t)(rng_next() % universe);
            else /* clustered, as graph neighbours often are */
                v = (uint32_t)((ids[0] + rng_next() % 512) % universe);
            repeat = 0;
            for (uint32_t j = 0; j < i && !repeat; j++)
                repeat = ids[j] == v;
        } while (repeat);
        ids[i] = v;
    }
}

/* Encodes n random ids and checks they decode sorted, from a copy whose
 * slack and tail past the code are garbage. */
static void round_trip(uint32_t universe, uint32_t max_n, uint32_t n, int edges)
{
    vf_ef_shape sh = vf_ef_shape_for(universe, max_n);
    uint32_t ids[512], want[512], got[512];
    uint8_t code[4096], copy[4096];
    assert_true(sh.bytes + VF_EF_SLACK <= sizeof(code));
    random_ids(ids, n, universe, edges);
    memcpy(want, ids, n * sizeof(uint32_t));
    qsort(want, n, sizeof(uint32_t), u32_cmp);
    memset(code, 0xA5, sizeof(code));
    vf_ef_encode(&sh, ids, n, code);
    /* The encoder sorted its input. */
    assert_memory_equal(ids, want, n * sizeof(uint32_t));
    for (size_t i = sh.bytes; i < sh.bytes + VF_EF_SLACK; i++)
        assert_int_equal(code[i], 0);
    memset(copy, 0xFF, sizeof(copy));
    memcpy(copy, code, sh.bytes);
    /* The portable decoder and this CPU's (the same one where the CPU has
     * no faster). */
    const vf_ef_decode_fn decoders[] = {vf_ef_decode_portable, vf_ef_decoder()};
    for (size_t d = 0; d < 2; d++) {
        memset(got, 0, sizeof(got));
        assert_int_equal(decoders[d](&sh, copy, n, got), n);
        assert_memory_equal(got, want, n * sizeof(uint32_t));
        /* Fewer asked for: the smallest that many. */
        if (n > 1) {
            assert_int_equal(decoders[d](&sh, copy, n / 2, got), n / 2);
            assert_memory_equal(got, want, (n / 2) * sizeof(uint32_t));
        }
    }
}

static void test_shape(void **state)
{
    (void)state;
    /* The layout's figure: 32 links among 331,479 ids in 62 bytes. */
    vf_ef_shape sh = vf_ef_shape_for(331479, 32);
    assert_int_equal(sh.low_bits, 13);
    assert_int_equal(sh.high_bits, 32 + (331478 >> 13) + 1);
    assert_int_equal(sh.bytes, 62);
    /* Universe at most max_n: no low bits, a bitmap of max_n + universe. */
    sh = vf_ef_shape_for(5, 32);
    assert_int_equal(sh.low_bits, 0);
    assert_int_equal(sh.high_bits, 32 + 5);
    /* At most 2 + log2(universe / max_n) bits a link plus rounding, for
     * every universe. */
    const uint32_t max_ns[] = {1, 4, 16, 32, 64, 512};
    for (size_t k = 0; k < sizeof(max_ns) / sizeof(max_ns[0]); k++)
        for (uint64_t u = 1; u <= UINT32_MAX; u = u * 3 + 1) {
            sh = vf_ef_shape_for((uint32_t)u, max_ns[k]);
            uint64_t bits = (uint64_t)max_ns[k] * (sh.low_bits + 3) + 1;
            assert_true((uint64_t)sh.bytes * 8 <= bits + 16);
            assert_true(((uint64_t)max_ns[k] << sh.low_bits) <= u || sh.low_bits == 0);
            assert_true(((uint64_t)max_ns[k] << (sh.low_bits + 1)) > u);
            assert_true(sh.low_at * 8 >= sh.high_bits && sh.low_at <= sh.bytes);
        }
}

static void test_round_trips(void **state)
{
    (void)state;
    const uint32_t universes[] = {1,     2,      31,       32,      33,       1000,      4096,
                                  50000, 331479, 1u << 20, 9999991, 1u << 31, UINT32_MAX};
    const uint32_t max_ns[] = {1, 4, 32, 64, 512};
    for (size_t u = 0; u < sizeof(universes) / sizeof(universes[0]); u++)
        for (size_t k = 0; k < sizeof(max_ns) / sizeof(max_ns[0]); k++) {
            uint32_t max_n = max_ns[k], top = max_n < universes[u] ? max_n : universes[u];
            for (uint32_t n = 0; n <= top; n++) {
                round_trip(universes[u], max_n, n, 0);
                if (n >= 2)
                    round_trip(universes[u], max_n, n, 1);
            }
        }
}

static void test_dense(void **state)
{
    (void)state;
    /* Every id of a universe as small as the list: the unary part is all
     * ones, consecutive. */
    vf_ef_shape sh = vf_ef_shape_for(32, 32);
    uint32_t ids[32], got[32];
    uint8_t code[64];
    for (uint32_t i = 0; i < 32; i++)
        ids[i] = 31 - i;
    vf_ef_encode(&sh, ids, 32, code);
    assert_int_equal(vf_ef_decode(&sh, code, 32, got), 32);
    for (uint32_t i = 0; i < 32; i++)
        assert_int_equal(got[i], i);
}

static void test_torn_bounded(void **state)
{
    (void)state;
    /* Bytes no encoder wrote (a reader's torn copy) decode in bounded time
     * to at most n ids; a code with no bits gives none. */
    vf_ef_shape sh = vf_ef_shape_for(331479, 32);
    uint8_t code[128];
    uint32_t got[32];
    const vf_ef_decode_fn best = vf_ef_decoder();
    memset(code, 0, sizeof(code));
    assert_int_equal(vf_ef_decode(&sh, code, 32, got), 0);
    assert_int_equal(best(&sh, code, 32, got), 0);
    for (int t = 0; t < 1000; t++) {
        for (size_t i = 0; i < sizeof(code); i++)
            code[i] = (uint8_t)rng_next();
        assert_true(vf_ef_decode(&sh, code, 32, got) <= 32);
        assert_true(best(&sh, code, 32, got) <= 32);
    }
}

static void test_decoder_choice(void **state)
{
    (void)state;
    /* This CPU's decoder is the VBMI2 one exactly where the CPU has
     * VBMI2 (the machine of docs/performance.md does). */
    int vbmi2 = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    vbmi2 = __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx512vbmi") &&
            strncmp(vf_kernels_best()->name, "avx512", 6) == 0;
#endif
    assert_int_equal(vf_ef_decoder() != vf_ef_decode_portable, vbmi2);
    print_message("packed-list decoder: %s\n", vbmi2 ? "vbmi2" : "portable");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),          cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_dense),          cmocka_unit_test(test_torn_bounded),
        cmocka_unit_test(test_decoder_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
