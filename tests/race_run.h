/*
 * race_run.h — the ThreadSanitizer run of the engine tests (scripts/test.sh
 * sets VECFS_TEST_SKIP_LARGE there) is for races. A test that runs on one
 * thread calls skip_in_race_run() first: the release and ASan runs cover it
 * in a fraction of the time TSan's instrumentation takes, and the suite has
 * to fit in its time budget. Include after <cmocka.h>.
 */
#ifndef VECFS_TESTS_RACE_RUN_H
#define VECFS_TESTS_RACE_RUN_H

#include <stdlib.h>

static inline void skip_in_race_run(void)
{
    if (getenv("VECFS_TEST_SKIP_LARGE"))
        skip();
}

#endif
