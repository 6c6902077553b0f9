/*
 * test_fanout.c — vc_fanout: every thread runs the worker once and is
 * joined before it returns; the threads it starts inherit the caller's CPU
 * affinity until vc_fanout_set_cpus names the CPUs they may use, and then
 * run on those even when the caller is pinned to one (fs/uring.c's case).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fanout.h"

/* What the workers saw: how many ran, and the affinity of the ones that
 * are not the caller's thread. */
typedef struct seen {
    pthread_t caller;
    atomic_uint ran;
    pthread_mutex_t lock;
    cpu_set_t started_cpus;
    unsigned started;
} seen;

static void *record(void *arg)
{
    seen *s = arg;
    atomic_fetch_add(&s->ran, 1);
    if (pthread_equal(pthread_self(), s->caller))
        return NULL;
    cpu_set_t cpus;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof cpus, &cpus), 0);
    pthread_mutex_lock(&s->lock);
    s->started_cpus = cpus;
    s->started++;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void run(seen *s, unsigned threads)
{
    s->caller = pthread_self();
    atomic_store(&s->ran, 0);
    s->started = 0;
    CPU_ZERO(&s->started_cpus);
    assert_int_equal(vc_fanout(threads, record, s), threads);
    assert_int_equal(atomic_load(&s->ran), threads);
    assert_int_equal(s->started, threads - 1);
}

static void test_affinity(void **state)
{
    (void)state;
    seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    cpu_set_t all, one;
    assert_int_equal(sched_getaffinity(0, sizeof all, &all), 0);
    if (CPU_COUNT(&all) < 2)
        skip(); /* one CPU: nothing narrower to pin to */
    int first = 0;
    while (!CPU_ISSET(first, &all))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);

    /* Unpinned caller: the started threads get its whole set. */
    run(&s, 3);
    assert_true(CPU_EQUAL(&s.started_cpus, &all));

    /* Pinned caller, no set given: they inherit the one CPU. */
    assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
    run(&s, 3);
    assert_true(CPU_EQUAL(&s.started_cpus, &one));

    /* Pinned caller, the process's set given: they run on all of it. */
    vc_fanout_set_cpus(&all);
    run(&s, 3);
    assert_true(CPU_EQUAL(&s.started_cpus, &all));

    /* One thread: the caller alone, nothing started. */
    run(&s, 1);
    assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof all, &all), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_affinity)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
