/*
 * test_write_priority.c — a thread runs at the raised priority while it
 * writes (store/write_priority.c) and is back at its own when the write
 * returns, on success and on failure; without the permission to raise,
 * nothing changes.
 */
#include "store_testutil.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

#define DIM 8

static int nice_of(pid_t tid)
{
    errno = 0;
    int n = getpriority(PRIO_PROCESS, (id_t)tid);
    assert_int_equal(errno, 0);
    return n;
}

static bool may_raise(void)
{
    return geteuid() == 0;
}

static void test_raise_and_restore(void **state)
{
    (void)state;
    int own = nice_of(gettid());
    int prev = st_write_priority_raise();
    if (!may_raise() || own <= -10) {
        assert_int_equal(prev, ST_PRIORITY_UNCHANGED);
        assert_int_equal(nice_of(gettid()), own);
        return;
    }
    assert_int_equal(prev, own);
    assert_int_equal(nice_of(gettid()), -10);
    /* Raising again changes nothing and restores nothing. */
    assert_int_equal(st_write_priority_raise(), ST_PRIORITY_UNCHANGED);
    st_write_priority_restore(ST_PRIORITY_UNCHANGED);
    assert_int_equal(nice_of(gettid()), -10);
    st_write_priority_restore(prev);
    assert_int_equal(nice_of(gettid()), own);
}

typedef struct writer {
    st_store *st;
    _Atomic pid_t tid;
    _Atomic bool done;
    int failures;
} writer;

static void *write_many(void *arg)
{
    writer *w = arg;
    atomic_store(&w->tid, gettid());
    uint64_t seed = 7;
    for (int i = 0; i < 200; i++) {
        float v[DIM];
        tu_vec(&seed, v, DIM);
        char name[32];
        snprintf(name, sizeof name, "v%d", i);
        if (st_vec_put(w->st, "c", name, v, sizeof v, v, DIM, NULL, 0) != 0)
            w->failures++;
    }
    atomic_store(&w->done, true);
    return NULL;
}

/* Another thread watches the writer's nice while it writes (each write
 * commits with an fdatasync, so it is caught inside one). */
static void test_writes_run_raised(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = NULL;
    assert_int_equal(st_store_open(dir, &o, &st), 0);
    st_config cfg;
    st_config_default(&cfg);
    cfg.metric = VF_METRIC_L2;
    cfg.dim = DIM;
    assert_int_equal(st_coll_create(st, "c", NULL, &cfg), 0);
    int own = nice_of(gettid());
    writer w = {.st = st};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_many, &w), 0);
    while (atomic_load(&w.tid) == 0)
        sched_yield();
    int lowest = own;
    while (!atomic_load(&w.done)) {
        errno = 0;
        int n = getpriority(PRIO_PROCESS, (id_t)atomic_load(&w.tid));
        if (errno == 0 && n < lowest)
            lowest = n;
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.failures, 0);
    assert_int_equal(lowest, may_raise() && own > -10 ? -10 : own);
    /* This thread: a failing write (wrong dim) and a good one leave it at
     * its own priority. */
    float v[DIM + 1] = {0};
    assert_int_equal(st_vec_put(st, "c", "bad", v, sizeof v, v, DIM + 1, NULL, 0), -EINVAL);
    assert_int_equal(nice_of(gettid()), own);
    assert_int_equal(st_vec_put(st, "c", "good", v, DIM * sizeof(float), v, DIM, NULL, 0), 0);
    assert_int_equal(nice_of(gettid()), own);
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raise_and_restore),
        cmocka_unit_test(test_writes_run_raised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
