/*
 * test_seed.h — the seed of a property test: VECFS_TEST_SEED when set (to
 * replay a run), else the time; printed either way so that a failing run
 * can be replayed. Include after <cmocka.h> (print_message).
 */
#ifndef VECFS_TESTS_TEST_SEED_H
#define VECFS_TESTS_TEST_SEED_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* The seed for the test `what` (never 0: xorshift generators stay at 0). */
static inline uint64_t seed_from_env(const char *what)
{
    const char *env = getenv("VECFS_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    print_message("%s seed %llu (VECFS_TEST_SEED=%llu to replay)\n", what, (unsigned long long)seed,
                  (unsigned long long)seed);
    return seed ? seed : 1;
}

#endif /* VECFS_TESTS_TEST_SEED_H */
