/*
 * test_rng.h — the tests' random numbers: xorshift64*, one stream per test
 * program (rng_state: a test sets it to seed its run, never to 0) and
 * uniform draws. Deterministic for a given seed, so a failing run can be
 * replayed (test_seed.h prints the seed of a property test).
 */
#ifndef VECFS_TESTS_TEST_RNG_H
#define VECFS_TESTS_TEST_RNG_H

#include <stdint.h>

static uint64_t rng_state = 1;

static inline uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1). */
static inline double rng_unit(void)
{
    return (double)(rng_next() >> 11) * 0x1.0p-53;
}

/* Uniform in [-1, 1). */
static inline float rng_float(void)
{
    return (float)(rng_unit() * 2.0 - 1.0);
}

#endif /* VECFS_TESTS_TEST_RNG_H */
