/*
 * test_crc32c.c — CRC-32C: published check values, chaining, and the
 * hardware path against the portable one on random buffers of every
 * length 0..300 and offset 0..15, plus a few large ones.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"

static uint64_t rng_state = 0xD1B54A32D192ED03ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rng_next() >> 56);
}

static void test_check_values(void **state)
{
    (void)state;
    /* The CRC-32C check value, and the iSCSI (RFC 3720 B.4) vectors. */
    assert_int_equal(vc_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(vc_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(vc_crc32c(0, NULL, 0), 0u);

    unsigned char buf[32];
    memset(buf, 0, sizeof(buf));
    assert_int_equal(vc_crc32c(0, buf, 32), 0x8A9136AAu);
    assert_int_equal(vc_crc32c_sw(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof(buf));
    assert_int_equal(vc_crc32c(0, buf, 32), 0x62A8AB43u);
    assert_int_equal(vc_crc32c_sw(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    assert_int_equal(vc_crc32c(0, buf, 32), 0x46DD794Eu);
    assert_int_equal(vc_crc32c_sw(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    assert_int_equal(vc_crc32c(0, buf, 32), 0x113FDB5Cu);
    assert_int_equal(vc_crc32c_sw(0, buf, 32), 0x113FDB5Cu);
}

static void test_chaining(void **state)
{
    (void)state;
    enum { N = 1000 };
    unsigned char *buf = malloc(N);
    assert_non_null(buf);
    fill_random(buf, N);
    uint32_t whole = vc_crc32c(0, buf, N);
    assert_int_equal(vc_crc32c_sw(0, buf, N), whole);
    for (size_t cut = 0; cut <= N; cut += 7) {
        assert_int_equal(vc_crc32c(vc_crc32c(0, buf, cut), buf + cut, N - cut), whole);
        assert_int_equal(vc_crc32c_sw(vc_crc32c_sw(0, buf, cut), buf + cut, N - cut), whole);
        /* Mixed: software first half, dispatching second half. */
        assert_int_equal(vc_crc32c(vc_crc32c_sw(0, buf, cut), buf + cut, N - cut), whole);
    }
    /* Three pieces. */
    assert_int_equal(vc_crc32c(vc_crc32c(vc_crc32c(0, buf, 3), buf + 3, 500), buf + 503, N - 503),
                     whole);
    /* A flipped bit changes the value. */
    buf[123] ^= 0x10;
    assert_int_not_equal(vc_crc32c(0, buf, N), whole);
    free(buf);
}

static void test_hw_matches_sw(void **state)
{
    (void)state;
    enum { MAXLEN = 300, MAXOFF = 16 };
    unsigned char *buf = malloc(MAXLEN + MAXOFF);
    assert_non_null(buf);
    uint32_t out = 0;
    int rc = vc_crc32c_hw(0, "123456789", 9, &out);
    if (rc == -ENOTSUP) {
        printf("no CRC-32C instruction on this CPU: hardware path not tested\n");
        free(buf);
        skip();
    }
    assert_int_equal(rc, 0);
    assert_int_equal(out, 0xE3069283u);
    unsigned long cases = 0;
    for (size_t off = 0; off < MAXOFF; off++) {
        for (size_t len = 0; len <= MAXLEN; len++) {
            fill_random(buf, MAXLEN + MAXOFF);
            uint32_t seed = (uint32_t)rng_next();
            uint32_t sw = vc_crc32c_sw(seed, buf + off, len);
            assert_int_equal(vc_crc32c_hw(seed, buf + off, len, &out), 0);
            if (out != sw)
                fail_msg("offset %zu length %zu: hw %08x sw %08x", off, len, out, sw);
            assert_int_equal(vc_crc32c(seed, buf + off, len), sw);
            cases++;
        }
    }
    free(buf);

    size_t big = (1u << 20) + 13;
    unsigned char *b = malloc(big);
    assert_non_null(b);
    fill_random(b, big);
    assert_int_equal(vc_crc32c_hw(0, b + 5, big - 5, &out), 0);
    assert_int_equal(out, vc_crc32c_sw(0, b + 5, big - 5));
    free(b);
    printf("hardware == software on %lu buffers and one of 1 MiB\n", cases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_values),
        cmocka_unit_test(test_chaining),
        cmocka_unit_test(test_hw_matches_sw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
