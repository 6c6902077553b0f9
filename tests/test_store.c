/*
 * test_store.c — cmocka tests of store/: config text, collections, vectors,
 * listing, xattrs, filtered search, batches, persistence (snapshot load,
 * replay, rebuild of a missing or damaged snapshot), encryption at rest,
 * damage detection, a full map, and allocation/I-O failure injection.
 *
 * VECFS_STORE_N sets the vectors of the reopen test (default 100000; 20000
 * in sanitizer builds or with VECFS_TEST_SKIP_LARGE).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "internal.h"
#include "store_testutil.h"

#define DIM 16

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int put_vec(st_store *st, const char *coll, const char *name, const float *v, uint32_t dim)
{
    char text[4096];
    size_t n = 0;
    for (uint32_t i = 0; i < dim && n < sizeof(text) - 32; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%.6f", i ? " " : "", v[i]);
    return st_vec_put(st, coll, name, text, n, v, dim, NULL, 0);
}

static st_store *open_store(const char *dir, const st_options *o)
{
    st_store *st = NULL;
    int rc = st_store_open(dir, o, &st);
    if (rc)
        fprintf(stderr, "open %s: %s\n", dir, strerror(-rc));
    assert_int_equal(rc, 0);
    return st;
}

/* A raw LMDB reader of dir in a child process: holds the environment open
 * (and with `in_read`, a read transaction), says so on `ready`, then waits
 * until the parent closes its end of `hold` (hold NULL: kills itself
 * inside the read). */
static pid_t lmdb_reader_child(const char *dir, bool in_read, int ready, const int *hold)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    if (hold != NULL)
        close(hold[1]); /* else the read below never sees the end */
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16) ||
        mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) ||
        (in_read && mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)))
        _exit(2);
    char c = 1;
    if (write(ready, &c, 1) != 1)
        _exit(3);
    if (hold == NULL)
        raise(SIGKILL);
    while (read(hold[0], &c, 1) > 0)
        ;
    _exit(0);
}

/* A process killed inside a read transaction (a `vecfs backup` killed with
 * -9) leaves a reader slot that pins old pages while any other process
 * keeps the environment open; the store frees it when it opens. */
static void test_stale_readers_cleared(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store_close(open_store(dir, &o));
    int ready[2], hold[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(hold), 0);
    pid_t holder = lmdb_reader_child(dir, false, ready[1], hold);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    pid_t dead = lmdb_reader_child(dir, true, ready[1], NULL);
    assert_int_equal(read(ready[0], &c, 1), 1);
    int status = 0;
    assert_int_equal(waitpid(dead, &status, 0), dead);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    st_store *st = open_store(dir, &o);
    st_metrics m;
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.stale_readers_total, 1);
    /* The table has no dead slot left: a second check finds none. */
    st_readers_clear(st);
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.stale_readers_total, 1);
    st_store_close(st);

    close(hold[1]);
    assert_int_equal(waitpid(holder, &status, 0), holder);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(hold[0]);
    close(ready[0]);
    close(ready[1]);
    tu_rmdir(dir);
}

static void make_coll(st_store *st, const char *name, vf_metric metric, uint32_t dim)
{
    st_config cfg;
    st_config_default(&cfg);
    cfg.metric = metric;
    cfg.dim = dim;
    st_attr a = {.mode = 0750, .uid = 1000, .gid = 100};
    assert_int_equal(st_coll_create(st, name, &a, &cfg), 0);
}

/* ------------------------------------------------------------------ */

static void test_config_text(void **state)
{
    (void)state;
    st_config base, c;
    st_config_default(&base);
    char err[128];
    const char *t = "# comment\n dim = 128 \nmetric=l2\nm = 32\nef_search = auto\n"
                    "target_recall = 0.9\nquantization = none\nmax_vectors = 10\n";
    assert_int_equal(st_config_parse(t, strlen(t), &base, &c, err, sizeof(err)), 0);
    assert_int_equal(c.dim, 128);
    assert_int_equal(c.metric, VF_METRIC_L2);
    assert_int_equal(c.m, 32);
    assert_true(c.ef_auto);
    assert_int_equal(c.ef_construction, 200);
    assert_int_equal(c.max_vectors, 10);
    char buf[1024];
    size_t len;
    assert_int_equal(st_config_format(&c, buf, sizeof(buf), &len), 0);
    st_config back;
    assert_int_equal(st_config_parse(buf, len, &base, &back, NULL, 0), 0);
    assert_int_equal(back.dim, c.dim);
    assert_int_equal(back.m, c.m);
    assert_true(back.ef_auto);
    assert_int_equal(back.quantization, ST_QUANT_NONE);
    assert_int_equal(back.rerank, VF_RERANK_DEFAULT);
    assert_int_equal(
        st_config_parse("quantization = int8\nrerank = 8\n", 31, &base, &back, err, sizeof(err)),
        0);
    assert_int_equal(back.quantization, ST_QUANT_INT8);
    assert_int_equal(back.rerank, 8);
    assert_int_equal(st_config_format(&back, buf, sizeof(buf), &len), 0);
    assert_non_null(strstr(buf, "quantization = int8\nrerank = 8\n"));
    /* rerank outside 1..VF_RERANK_MAX, and unknown kinds, are refused. */
    assert_int_equal(st_config_parse("rerank = 0\n", 11, &base, &back, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bad value '0' for rerank"));
    assert_int_equal(st_config_parse("rerank = 65\n", 12, &base, &back, err, sizeof(err)), -EINVAL);
    assert_int_equal(st_config_parse("quantization = int4\n", 20, &base, &back, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "bad value 'int4' for quantization"));
    /* Errors leave out untouched. */
    st_config keep = c;
    assert_int_equal(st_config_parse("foo = 1\n", 8, &base, &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown key"));
    assert_int_equal(st_config_parse("m = 1\n", 6, &base, &c, NULL, 0), -EINVAL);
    assert_int_equal(st_config_parse("m = 16\nm = 16\n", 14, &base, &c, NULL, 0), -EINVAL);
    assert_int_equal(st_config_parse("metric = foo", 12, &base, &c, NULL, 0), -EINVAL);
    assert_int_equal(st_config_parse("dim", 3, &base, &c, NULL, 0), -EINVAL);
    assert_int_equal(st_config_parse("dim = 99999999999999999999999", 29, &base, &c, NULL, 0),
                     -EINVAL);
    assert_memory_equal(&keep, &c, sizeof(c));
    /* Size query and -ERANGE. */
    assert_int_equal(st_config_format(&c, NULL, 0, &len), 0);
    assert_int_equal(st_config_format(&c, buf, 5, &len), -ERANGE);
    assert_int_equal(strlen(buf), 4);
}

typedef struct list_acc {
    char names[64][ST_NAME_MAX + 1];
    uint64_t next[64];
    size_t n, stop_after;
} list_acc;

static int list_cb(void *ctx, const char *name, const st_attr *a, uint64_t next)
{
    (void)a;
    list_acc *l = ctx;
    if (l->n >= 64 || (l->stop_after && l->n == l->stop_after))
        return 1;
    snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
    l->next[l->n++] = next;
    return 0;
}

static void test_collections(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c1", VF_METRIC_L2, 0);
    assert_int_equal(st_coll_create(st, "c1", NULL, NULL), -EEXIST);
    assert_int_equal(st_coll_create(st, ".hidden", NULL, NULL), -EINVAL);
    assert_int_equal(st_coll_create(st, "a/b", NULL, NULL), -EINVAL);
    assert_int_equal(st_coll_create(st, "c2", NULL, NULL), 0);
    st_attr a;
    assert_int_equal(st_coll_stat(st, "c1", &a), 0);
    assert_true(S_ISDIR(a.mode));
    assert_int_equal(a.mode & 07777, 0750);
    assert_int_equal(a.uid, 1000);
    st_attr set = {.mode = 0700, .uid = 5, .mtime = {123, 456}};
    assert_int_equal(st_coll_setattr(st, "c1", &set, ST_SET_MODE | ST_SET_UID | ST_SET_MTIME), 0);
    assert_int_equal(st_coll_stat(st, "c1", &a), 0);
    assert_int_equal(a.mode & 07777, 0700);
    assert_int_equal(a.uid, 5);
    assert_int_equal(a.mtime.tv_sec, 123);

    float v[DIM] = {1, 2, 3};
    assert_int_equal(put_vec(st, "c1", "v1", v, 3), 0);
    st_config cfg;
    assert_int_equal(st_coll_config_get(st, "c1", &cfg), 0);
    assert_int_equal(cfg.dim, 3); /* fixed by the first vector */
    cfg.dim = 4;
    assert_int_equal(st_coll_config_set(st, "c1", &cfg, NULL), -EINVAL);
    /* A new metric, m or ef_construction rebuilds the index of a
     * non-empty collection (a copy may bring vectors before .config). */
    struct timespec t0, t1;
    st_config got;
    assert_int_equal(st_coll_config_stat(st, "c1", &got, &t0), 0);
    cfg.dim = 3;
    cfg.metric = VF_METRIC_DOT;
    cfg.m = 24;
    assert_int_equal(st_coll_config_set(st, "c1", &cfg, NULL), 0);
    st_hit hit;
    size_t n;
    assert_int_equal(st_search_opt(st, "c1", v, 3, 1, 0, NULL, &hit, &n), 0);
    assert_int_equal(n, 1);
    assert_true(hit.distance == -14.0f); /* -(1 + 4 + 9): dot, not l2 */
    assert_int_equal(st_coll_config_stat(st, "c1", &got, &t1), 0);
    assert_int_equal(got.m, 24);
    assert_true(st_ts_diff(&t1, &t0) >= 0); /* the text's mtime moved */
    struct timespec when = {.tv_sec = 1700000000, .tv_nsec = 7};
    assert_int_equal(st_coll_config_touch(st, "c1", &when), 0);
    assert_int_equal(st_coll_config_stat(st, "c1", &got, &t1), 0);
    assert_int_equal(t1.tv_sec, 1700000000);
    assert_int_equal(t1.tv_nsec, 7);
    cfg.metric = VF_METRIC_L2;
    cfg.m = 16;
    cfg.ef_search = 99;
    assert_int_equal(st_coll_config_set(st, "c1", &cfg, &when), 0);
    assert_int_equal(st_search_opt(st, "c1", v, 3, 1, 0, NULL, &hit, &n), 0);
    assert_true(hit.distance == 0.0f);
    assert_int_equal(st_coll_config_stat(st, "c1", &got, &t1), 0);
    assert_int_equal(t1.tv_sec, 1700000000);
    assert_int_equal(st_coll_drop(st, "c1"), -ENOTEMPTY);
    assert_int_equal(st_coll_rename(st, "c1", "c2", 0), 0);
    /* c2 was empty: replaced by c1. */
    assert_int_equal(st_coll_stat(st, "c1", &a), -ENOENT);
    assert_int_equal(st_coll_stat(st, "c2", &a), 0);
    assert_int_equal(a.count, 1);
    assert_int_equal(st_coll_create(st, "c3", NULL, NULL), 0);
    assert_int_equal(st_coll_rename(st, "c3", "c2", 0), -ENOTEMPTY);
    assert_int_equal(st_coll_rename(st, "c3", "c2", ST_RENAME_NOREPLACE), -EEXIST);
    list_acc l = {0};
    assert_int_equal(st_coll_list(st, 0, list_cb, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.names[0], "c2");
    assert_string_equal(l.names[1], "c3");
    list_acc l2 = {0};
    assert_int_equal(st_coll_list(st, l.next[0], list_cb, &l2), 0);
    assert_int_equal(l2.n, 1);
    assert_string_equal(l2.names[0], "c3");
    assert_int_equal(st_coll_drop(st, "c3"), 0);
    assert_int_equal(st_coll_drop(st, "c3"), -ENOENT);
    assert_int_equal(st_store_close(st), 0);
    /* Persisted. */
    st = open_store(dir, &o);
    assert_int_equal(st_coll_stat(st, "c2", &a), 0);
    assert_int_equal(a.count, 1);
    assert_int_equal(st_coll_config_get(st, "c2", &cfg), 0);
    assert_int_equal(cfg.ef_search, 99);
    assert_int_equal(st_coll_stat(st, "c3", &a), -ENOENT);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* The errno contract for names (store.h, Conventions): a name that breaks
 * the rules is -ENOENT where the call looks an object up, -EINVAL where it
 * creates one or renames one to it; over-long names keep -ENAMETOOLONG. */
static void test_name_errors(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 0);
    float v[3] = {1, 2, 3};
    assert_int_equal(put_vec(st, "c", "x", v, 3), 0);
    assert_int_equal(st_xattr_set(st, "c", "x", "user.k", "v", 1, 0), 0);
    st_attr a = {.mode = 0600};
    st_config cfg;
    struct timespec ts = {1, 0};
    void *data;
    size_t len, n;
    char buf[64];
    float out[3];
    uint32_t dim;
    st_hit hits[2];
    st_batch *b;
    const char *bad_colls[] = {".hidden", "a/b", "sp ace", ""};
    for (size_t i = 0; i < sizeof(bad_colls) / sizeof(bad_colls[0]); i++) {
        const char *bc = bad_colls[i];
        /* Lookups. */
        assert_int_equal(st_coll_stat(st, bc, &a), -ENOENT);
        assert_int_equal(st_coll_drop(st, bc), -ENOENT);
        assert_int_equal(st_coll_setattr(st, bc, &a, ST_SET_MODE), -ENOENT);
        assert_int_equal(st_coll_config_get(st, bc, &cfg), -ENOENT);
        assert_int_equal(st_coll_config_stat(st, bc, &cfg, &ts), -ENOENT);
        assert_int_equal(st_coll_config_touch(st, bc, &ts), -ENOENT);
        assert_int_equal(st_coll_rename(st, bc, "d", 0), -ENOENT);
        assert_int_equal(st_vec_stat(st, bc, "x", &a), -ENOENT);
        assert_int_equal(st_vec_get(st, bc, "x", &data, &len, NULL), -ENOENT);
        assert_int_equal(st_vec_delete(st, bc, "x"), -ENOENT);
        assert_int_equal(put_vec(st, bc, "x", v, 3), -ENOENT);
        assert_int_equal(st_vec_list(st, bc, 0, NULL, NULL), -EINVAL); /* fn NULL first */
        assert_int_equal(st_batch_begin(st, bc, &b), -ENOENT);
        assert_int_equal(st_search_opt(st, bc, v, 3, 1, 0, NULL, hits, &n), -ENOENT);
        /* Creating or renaming to it. */
        assert_int_equal(st_coll_create(st, bc, NULL, NULL), -EINVAL);
        assert_int_equal(st_coll_rename(st, "c", bc, 0), -EINVAL);
    }
    const char *bad_vecs[] = {".", "..", "a/b", ""};
    for (size_t i = 0; i < sizeof(bad_vecs) / sizeof(bad_vecs[0]); i++) {
        const char *bv = bad_vecs[i];
        assert_int_equal(st_vec_stat(st, "c", bv, &a), -ENOENT);
        assert_int_equal(st_vec_get(st, "c", bv, &data, &len, NULL), -ENOENT);
        assert_int_equal(st_vec_pread(st, "c", bv, buf, sizeof(buf), 0, &n), -ENOENT);
        assert_int_equal(st_vec_vector(st, "c", bv, out, 3, &dim), -ENOENT);
        assert_int_equal(st_vec_delete(st, "c", bv), -ENOENT);
        assert_int_equal(st_vec_setattr(st, "c", bv, &a, ST_SET_MODE), -ENOENT);
        assert_int_equal(st_vec_rename(st, "c", bv, "y", 0), -ENOENT);
        assert_int_equal(st_xattr_get(st, "c", bv, "user.k", buf, sizeof(buf), &n), -ENOENT);
        assert_int_equal(st_xattr_list(st, "c", bv, buf, sizeof(buf), &n), -ENOENT);
        assert_int_equal(st_xattr_set(st, "c", bv, "user.k", "v", 1, 0), -ENOENT);
        assert_int_equal(st_xattr_remove(st, "c", bv, "user.k"), -ENOENT);
        assert_int_equal(st_search_like_opt(st, "c", bv, true, 1, 0, NULL, hits, &n), -ENOENT);
        /* Creating or renaming to it. */
        assert_int_equal(put_vec(st, "c", bv, v, 3), -EINVAL);
        assert_int_equal(st_vec_rename(st, "c", "x", bv, 0), -EINVAL);
    }
    /* Over-long names: as before. */
    char longc[ST_COLL_NAME_MAX + 2], longv[ST_NAME_MAX + 2];
    memset(longc, 'a', sizeof(longc) - 1);
    longc[sizeof(longc) - 1] = 0;
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = 0;
    assert_int_equal(st_coll_stat(st, longc, &a), -ENAMETOOLONG);
    assert_int_equal(st_coll_create(st, longc, NULL, NULL), -ENAMETOOLONG);
    assert_int_equal(st_vec_stat(st, longc, "x", &a), -ENOENT);
    assert_int_equal(st_vec_stat(st, "c", longv, &a), -ENAMETOOLONG);
    assert_int_equal(put_vec(st, "c", longv, v, 3), -ENAMETOOLONG);
    /* NULL stays a bad argument; nothing above changed the store. */
    assert_int_equal(st_coll_stat(st, NULL, &a), -EINVAL);
    assert_int_equal(st_vec_stat(st, "c", NULL, &a), -EINVAL);
    assert_int_equal(st_vec_stat(st, "c", "x", &a), 0);
    assert_int_equal(st_coll_stat(st, "c", &a), 0);
    assert_int_equal(a.count, 1);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* The exported name rules (what fs/ will call) take a length, and a NUL
 * inside it is data. */
static void test_name_rules(void **state)
{
    (void)state;
    assert_int_equal(st_coll_name_check("abc-1.X_y", 9), 0);
    assert_int_equal(st_coll_name_check("a\0b", 3), -EINVAL);
    assert_int_equal(st_coll_name_check(".a", 2), -EINVAL);
    assert_int_equal(st_coll_name_check(".vecfs", 6), -EINVAL);
    assert_int_equal(st_coll_name_check("a b", 3), -EINVAL);
    assert_int_equal(st_coll_name_check("a/b", 3), -EINVAL);
    assert_int_equal(st_coll_name_check("\xc3\xa9", 2), -EINVAL);
    assert_int_equal(st_coll_name_check("a", 0), -EINVAL);
    assert_int_equal(st_coll_name_check(NULL, 1), -EINVAL);
    char n[ST_NAME_MAX + 1];
    memset(n, 'a', sizeof(n));
    assert_int_equal(st_coll_name_check(n, ST_COLL_NAME_MAX), 0);
    assert_int_equal(st_coll_name_check(n, ST_COLL_NAME_MAX + 1), -ENAMETOOLONG);
    assert_int_equal(st_vec_name_check(n, ST_NAME_MAX), 0);
    assert_int_equal(st_vec_name_check(n, ST_NAME_MAX + 1), -ENAMETOOLONG);
    assert_int_equal(st_vec_name_check(".name.XXXXXX", 12), 0);
    assert_int_equal(st_vec_name_check("..", 2), -EINVAL);
    assert_int_equal(st_vec_name_check("a/b", 3), -EINVAL);
    assert_int_equal(st_vec_name_check("a\0b", 3), -EINVAL);
    assert_true(st_name_is_reserved(".config", 7));
    assert_false(st_name_is_reserved(".config", 6));
    assert_false(st_name_is_reserved(NULL, 0));
    assert_int_equal(st_xattr_name_check("user.k", 6), 0);
    assert_int_equal(st_xattr_name_check("user.k", 0), -ERANGE);
    assert_int_equal(st_xattr_name_check(n, ST_XATTR_NAME_MAX + 1), -ERANGE);
    assert_int_equal(st_xattr_name_check(NULL, 1), -EINVAL);
}

static void test_vectors(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 0);
    float v[3] = {1, 2, 3}, w[3] = {4, 5, 6}, out[3];
    const char *content = "[1, 2, 3]";
    st_attr a = {.mode = 0600, .uid = 7, .gid = 8};
    assert_int_equal(st_vec_put(st, "c", "x.json", content, strlen(content), v, 3, &a,
                                ST_SET_MODE | ST_SET_UID | ST_SET_GID),
                     0);
    st_attr s;
    assert_int_equal(st_vec_stat(st, "c", "x.json", &s), 0);
    assert_int_equal(s.size, strlen(content));
    assert_true(S_ISREG(s.mode));
    assert_int_equal(s.mode & 07777, 0600);
    assert_int_equal(s.uid, 7);
    uint32_t id = s.id;
    void *data;
    size_t len;
    assert_int_equal(st_vec_get(st, "c", "x.json", &data, &len, NULL), 0);
    assert_int_equal(len, strlen(content));
    assert_memory_equal(data, content, len);
    free(data);
    char part[4];
    size_t n;
    assert_int_equal(st_vec_pread(st, "c", "x.json", part, 3, 1, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(part, "1, ", 3);
    assert_int_equal(st_vec_pread(st, "c", "x.json", part, 3, 100, &n), 0);
    assert_int_equal(n, 0);
    uint32_t dim;
    assert_int_equal(st_vec_vector(st, "c", "x.json", out, 3, &dim), 0);
    assert_memory_equal(out, v, sizeof(v));
    assert_int_equal(st_vec_vector(st, "c", "x.json", out, 2, &dim), -ERANGE);
    /* Errors. */
    assert_int_equal(put_vec(st, "c", "bad", v, 2), -EINVAL);
    float nan[3] = {1, NAN, 3};
    assert_int_equal(put_vec(st, "c", "nan", nan, 3), -EINVAL);
    assert_int_equal(put_vec(st, "nope", "x", v, 3), -ENOENT);
    assert_int_equal(put_vec(st, "c", "a/b", v, 3), -EINVAL);
    char longname[300];
    memset(longname, 'a', 299);
    longname[299] = 0;
    assert_int_equal(put_vec(st, "c", longname, v, 3), -ENAMETOOLONG);
    assert_int_equal(st_vec_stat(st, "c", "nope", &s), -ENOENT);
    /* Overwrite keeps the id, owner and mode. */
    assert_int_equal(put_vec(st, "c", "x.json", w, 3), 0);
    assert_int_equal(st_vec_stat(st, "c", "x.json", &s), 0);
    assert_int_equal(s.id, id);
    assert_int_equal(s.uid, 7);
    assert_int_equal(s.mode & 07777, 0600);
    /* Zero-copy read. */
    st_read *rd;
    assert_int_equal(st_read_begin(st, &rd), 0);
    const void *p;
    assert_int_equal(st_read_content(rd, "c", "x.json", &p, &len, &s), 0);
    assert_int_equal(len, s.size);
    st_read_end(rd);
    /* Rename keeps the engine id; a replaced target goes away. */
    assert_int_equal(put_vec(st, "c", "y", v, 3), 0);
    st_attr ys;
    assert_int_equal(st_vec_stat(st, "c", "y", &ys), 0);
    assert_int_equal(st_vec_rename(st, "c", "x.json", "y", ST_RENAME_NOREPLACE), -EEXIST);
    assert_int_equal(st_vec_rename(st, "c", "x.json", "y", 0), 0);
    assert_int_equal(st_vec_stat(st, "c", "x.json", &s), -ENOENT);
    assert_int_equal(st_vec_stat(st, "c", "y", &s), 0);
    assert_int_equal(s.id, id);
    assert_int_equal(st_vec_vector(st, "c", "y", out, 3, &dim), 0);
    assert_memory_equal(out, w, sizeof(w));
    st_hit hits[4];
    assert_int_equal(st_search_opt(st, "c", w, 3, 4, 0, NULL, hits, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(hits[0].name, "y");
    assert_int_equal(hits[0].id, id);
    /* utimens / chmod. */
    st_attr t = {.mtime = {1000, 5}, .atime = {2000, 6}, .mode = 0644};
    assert_int_equal(st_vec_setattr(st, "c", "y", &t, ST_SET_MTIME | ST_SET_ATIME | ST_SET_MODE),
                     0);
    assert_int_equal(st_vec_stat(st, "c", "y", &s), 0);
    assert_int_equal(s.mtime.tv_sec, 1000);
    assert_int_equal(s.mtime.tv_nsec, 5);
    assert_int_equal(s.atime.tv_sec, 2000);
    assert_int_equal(s.mode & 07777, 0644);
    /* Delete, id reuse. */
    assert_int_equal(st_vec_delete(st, "c", "y"), 0);
    assert_int_equal(st_vec_delete(st, "c", "y"), -ENOENT);
    assert_int_equal(st_search_opt(st, "c", w, 3, 4, 0, NULL, hits, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(put_vec(st, "c", "z", v, 3), 0);
    assert_int_equal(st_vec_stat(st, "c", "z", &s), 0);
    assert_true(s.id == id || s.id == ys.id);
    st_attr cs;
    assert_int_equal(st_coll_stat(st, "c", &cs), 0);
    assert_int_equal(cs.count, 1);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* Values beyond ST_VALUE_MAX are refused (the 2e19 made squared
 * l2 and dot overflow to inf and rank by it); at the bound every metric's
 * distance stays finite, in the dim the bound was computed for. */
static void test_value_limit(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    static const vf_metric metrics[] = {VF_METRIC_L2, VF_METRIC_DOT, VF_METRIC_COSINE};
    static const char *const names[] = {"l2", "dot", "cos"};
    uint32_t dim = VF_MAX_DIM;
    float *a = calloc(dim, sizeof *a), *b = calloc(dim, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t m = 0; m < 3; m++) {
        make_coll(st, names[m], metrics[m], 2);
        float far[2] = {2e19f, 0}, edge[2] = {ST_VALUE_MAX, -ST_VALUE_MAX};
        float over[2] = {0, nextafterf(ST_VALUE_MAX, INFINITY)};
        assert_int_equal(put_vec(st, names[m], "far", far, 2), -EINVAL);
        assert_int_equal(put_vec(st, names[m], "over", over, 2), -EINVAL);
        assert_int_equal(put_vec(st, names[m], "edge", edge, 2), 0);
        st_hit hits[2];
        size_t n;
        assert_int_equal(st_search_opt(st, names[m], far, 2, 2, 0, NULL, hits, &n), -EINVAL);
        float q[2] = {-ST_VALUE_MAX, ST_VALUE_MAX};
        assert_int_equal(st_search_opt(st, names[m], q, 2, 2, 0, NULL, hits, &n), 0);
        assert_int_equal(n, 1);
        assert_true(isfinite(hits[0].distance));
        /* The worst case of the bound: opposite corners in VF_MAX_DIM. */
        for (uint32_t i = 0; i < dim; i++) {
            a[i] = ST_VALUE_MAX;
            b[i] = -ST_VALUE_MAX;
        }
        assert_true(isfinite(vf_distance(metrics[m], a, b, dim)));
        assert_true(isfinite(vf_distance(metrics[m], a, a, dim)));
    }
    free(a);
    free(b);
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

/* Issue 15, reproduction 7: a snapshot taken before an emptied collection
 * changed dim and metric is stale, not damage. check notes it and returns
 * 0 (the daemon is still running here: nothing wrote a newer snapshot, as
 * after kill -9), and the next open rebuilds the index. */
static void test_check_stale_params(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 2);
    float a[2] = {1, 0}, b[2] = {0, 3}, c3[3] = {1, 2, 3};
    assert_int_equal(put_vec(st, "c", "a", a, 2), 0);
    assert_int_equal(put_vec(st, "c", "b", b, 2), 0);
    assert_int_equal(st_store_close(st), 0); /* snapshot: dim 2, l2 */
    st = open_store(dir, &o);
    assert_int_equal(st_vec_delete(st, "c", "a"), 0);
    assert_int_equal(st_vec_delete(st, "c", "b"), 0);
    st_config cfg;
    assert_int_equal(st_coll_config_get(st, "c", &cfg), 0);
    cfg.dim = 3;
    cfg.metric = VF_METRIC_COSINE;
    assert_int_equal(st_coll_config_set(st, "c", &cfg, NULL), 0);
    assert_int_equal(put_vec(st, "c", "v", c3, 3), 0);
    assert_int_equal(st_store_sync(st), 0);
    char report[4096] = "";
    FILE *rep = fmemopen(report, sizeof report - 1, "w");
    assert_non_null(rep);
    assert_int_equal(st_check(dir, &o, rep), 0);
    fclose(rep);
    assert_non_null(strstr(report, "snapshot predates a config change"));
    assert_non_null(strstr(report, " 0 problems"));
    st_metrics m;
    st_store *again;
    /* What the open after a crash does with it: rebuild, same answers. */
    char copy[4200];
    snprintf(copy, sizeof copy, "%s-copy", dir);
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", dir, copy);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(st_store_close(st), 0);
    again = open_store(copy, &o);
    assert_int_equal(st_store_metrics(again, &m), 0);
    assert_int_equal(m.rebuilds_total, 1);
    st_hit hits[2];
    size_t n;
    assert_int_equal(st_search_opt(again, "c", c3, 3, 2, 0, NULL, hits, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(hits[0].name, "v");
    assert_int_equal(st_store_close(again), 0);
    tu_rmdir(strdup(copy));
    tu_rmdir(dir);
}

/* A batch row that replaces a vector keeps its owner and mode (issue 15,
 * reproduction 5: an import took the batch file's); a new row takes the
 * row's. Meta keys merge into the old xattrs. */
static void test_batch_keeps_owner(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 2);
    float v[2] = {1, 2}, w[2] = {5, 6};
    st_attr old = {.mode = 0600, .uid = 1234, .gid = 99};
    assert_int_equal(
        st_vec_put(st, "c", "v", v, sizeof v, v, 2, &old, ST_SET_MODE | ST_SET_UID | ST_SET_GID),
        0);
    assert_int_equal(st_xattr_set(st, "c", "v", "user.k", "old", 3, 0), 0);
    st_batch *b;
    assert_int_equal(st_batch_begin(st, "c", &b), 0);
    st_attr batch = {.mode = 0644, .uid = 0, .gid = 0};
    const unsigned mask = ST_SET_MODE | ST_SET_UID | ST_SET_GID | ST_SET_IF_NEW;
    const char *keys[] = {"user.n"};
    const void *vals[] = {"1"};
    size_t lens[] = {1};
    assert_int_equal(st_batch_put(b, "v", w, sizeof w, w, 2, &batch, mask, 1, keys, vals, lens), 0);
    assert_int_equal(st_batch_put(b, "new", w, sizeof w, w, 2, &batch, mask, 0, NULL, NULL, NULL),
                     0);
    assert_int_equal(st_batch_commit(b), 0);
    st_attr s;
    assert_int_equal(st_vec_stat(st, "c", "v", &s), 0);
    assert_int_equal(s.mode & 07777, 0600);
    assert_int_equal(s.uid, 1234);
    assert_int_equal(s.gid, 99);
    float out[2];
    uint32_t dim;
    assert_int_equal(st_vec_vector(st, "c", "v", out, 2, &dim), 0);
    assert_memory_equal(out, w, sizeof w);
    char val[8];
    size_t vl;
    assert_int_equal(st_xattr_get(st, "c", "v", "user.k", val, sizeof val, &vl), 0);
    assert_int_equal(st_xattr_get(st, "c", "v", "user.n", val, sizeof val, &vl), 0);
    assert_int_equal(st_vec_stat(st, "c", "new", &s), 0);
    assert_int_equal(s.mode & 07777, 0644);
    assert_int_equal(s.uid, 0);
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

static void test_listing(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 2);
    float v[2] = {1, 1};
    char name[32];
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "n%02d", i);
        assert_int_equal(put_vec(st, "c", name, v, 2), 0);
    }
    /* Pages of 7, resumed from offsets, see every name once. */
    uint64_t off = 0;
    int seen = 0;
    for (;;) {
        list_acc l = {.stop_after = 7};
        assert_int_equal(st_vec_list(st, "c", off, list_cb, &l), 0);
        if (l.n == 0)
            break;
        for (size_t i = 0; i < l.n; i++) {
            /* n20 is renamed in place after the second page: its place in
             * the listing stays, under the new name. */
            if (seen == 20)
                snprintf(name, sizeof(name), "n20-renamed");
            else
                snprintf(name, sizeof(name), "n%02d", seen);
            seen++;
            assert_string_equal(l.names[i], name);
        }
        off = l.next[l.n - 1];
        /* Changes between pages do not disturb the rest. */
        if (seen == 14) {
            assert_int_equal(st_vec_delete(st, "c", "n03"), 0);
            assert_int_equal(st_vec_rename(st, "c", "n20", "n20-renamed", 0), 0);
        }
    }
    assert_int_equal(seen, 50);
    (void)seen;
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

static void test_xattrs(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 2);
    float v[2] = {1, 1};
    assert_int_equal(put_vec(st, "c", "a", v, 2), 0);
    assert_int_equal(st_xattr_set(st, "c", "a", "user.k", "v1", 2, ST_XATTR_REPLACE), -ENODATA);
    assert_int_equal(st_xattr_set(st, "c", "a", "user.k", "v1", 2, ST_XATTR_CREATE), 0);
    assert_int_equal(st_xattr_set(st, "c", "a", "user.k", "v2", 2, ST_XATTR_CREATE), -EEXIST);
    assert_int_equal(st_xattr_set(st, "c", "a", "user.k", "value2", 6, ST_XATTR_REPLACE), 0);
    assert_int_equal(st_xattr_set(st, "c", "a", "user.e", "", 0, 0), 0);
    char buf[64];
    size_t len;
    assert_int_equal(st_xattr_get(st, "c", "a", "user.k", NULL, 0, &len), 0);
    assert_int_equal(len, 6);
    assert_int_equal(st_xattr_get(st, "c", "a", "user.k", buf, 3, &len), -ERANGE);
    assert_int_equal(st_xattr_get(st, "c", "a", "user.k", buf, sizeof(buf), &len), 0);
    assert_memory_equal(buf, "value2", 6);
    assert_int_equal(st_xattr_get(st, "c", "a", "user.nope", buf, sizeof(buf), &len), -ENODATA);
    assert_int_equal(st_xattr_list(st, "c", "a", NULL, 0, &len), 0);
    assert_int_equal(len, strlen("user.k") + 1 + strlen("user.e") + 1);
    assert_int_equal(st_xattr_list(st, "c", "a", buf, sizeof(buf), &len), 0);
    assert_true(memmem(buf, len, "user.k", 7) != NULL);
    assert_true(memmem(buf, len, "user.e", 7) != NULL);
    char *big = malloc(ST_XATTR_VALUE_MAX + 1);
    memset(big, 'x', ST_XATTR_VALUE_MAX + 1);
    assert_int_equal(st_xattr_set(st, "c", "a", "user.big", big, ST_XATTR_VALUE_MAX + 1, 0),
                     -E2BIG);
    assert_int_equal(st_xattr_set(st, "c", "a", "user.big", big, ST_XATTR_VALUE_MAX, 0), 0);
    free(big);
    assert_int_equal(st_xattr_remove(st, "c", "a", "user.e"), 0);
    assert_int_equal(st_xattr_remove(st, "c", "a", "user.e"), -ENODATA);
    assert_int_equal(st_xattr_set(st, "c", "nope", "user.k", "v", 1, 0), -ENOENT);
    /* Rename keeps xattrs; delete removes them (and their index entries). */
    assert_int_equal(st_vec_rename(st, "c", "a", "b", 0), 0);
    assert_int_equal(st_xattr_get(st, "c", "b", "user.k", buf, sizeof(buf), &len), 0);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    st = open_store(dir, &o);
    assert_int_equal(st_vec_delete(st, "c", "b"), 0);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* Collects the rows of st_search_batch; with fail_after, the sink fails
 * with -EIO once that many rows have arrived. */
typedef struct batch_rows {
    size_t k;
    st_hit *hits; /* 20 * k */
    size_t n[20];
    _Atomic int seen[20];
    _Atomic unsigned max_worker;
    _Atomic int delivered;
    _Atomic int bad; /* rows out of range (cmocka asserts only on the test's thread) */
    int fail_after;
} batch_rows;

static int collect_rows(void *ctx, unsigned worker, size_t query, const st_hit *hits, size_t n)
{
    batch_rows *b = ctx;
    if (b->fail_after && atomic_fetch_add(&b->delivered, 1) >= b->fail_after)
        return -EIO;
    if (query >= 20 || n > b->k || worker >= ST_SEARCH_WORKERS_MAX) {
        atomic_fetch_add(&b->bad, 1);
        return 0;
    }
    atomic_fetch_add(&b->seen[query], 1);
    unsigned m = atomic_load(&b->max_worker);
    while (worker > m && !atomic_compare_exchange_weak(&b->max_worker, &m, worker))
        ;
    memcpy(b->hits + query * b->k, hits, n * sizeof(*hits));
    b->n[query] = n;
    return 0;
}

/* st_search_opt with the filter `text` (st_filter_parse), ef 0. */
static int search_where(st_store *st, const char *coll, const float *q, uint32_t dim, size_t k,
                        const char *text, st_hit *hits, size_t *n)
{
    st_filter *f = NULL;
    int rc = text ? st_filter_parse(text, strlen(text), &f, NULL, 0) : 0;
    st_search_opts o = {.filter = f};
    if (rc == 0)
        rc = st_search_opt(st, coll, q, dim, k, 0, &o, hits, n);
    st_filter_free(f);
    return rc;
}

static void test_search_filter(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, DIM);
    uint64_t seed = 42;
    enum { N = 2000 };
    static float vecs[N][DIM];
    st_batch *b;
    assert_int_equal(st_batch_begin(st, "c", &b), 0);
    for (int i = 0; i < N; i++) {
        tu_vec(&seed, vecs[i], DIM);
        char name[32], color[8];
        snprintf(name, sizeof(name), "v%d", i);
        snprintf(color, sizeof(color), "%s", i % 10 == 0 ? "red" : "blue");
        const char *keys[] = {"user.color", "user.mod7"};
        char mod[8];
        snprintf(mod, sizeof(mod), "%d", i % 7);
        const void *vals[] = {color, mod};
        size_t lens[] = {strlen(color), strlen(mod)};
        assert_int_equal(
            st_batch_put(b, name, name, strlen(name), vecs[i], DIM, NULL, 0, 2, keys, vals, lens),
            0);
    }
    assert_int_equal(st_batch_commit(b), 0);
    st_hit hits[10];
    size_t n;
    /* Unfiltered: the vector itself is first. */
    assert_int_equal(st_search_opt(st, "c", vecs[5], DIM, 10, 0, NULL, hits, &n), 0);
    assert_int_equal(n, 10);
    assert_string_equal(hits[0].name, "v5");
    assert_true(hits[0].distance < 1e-5f);
    for (size_t i = 1; i < n; i++)
        assert_true(hits[i - 1].distance <= hits[i].distance);
    /* Filter: only red (every 10th), still k results. */
    assert_int_equal(search_where(st, "c", vecs[5], DIM, 10, "color=red", hits, &n), 0);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++) {
        int idx = atoi(hits[i].name + 1);
        assert_int_equal(idx % 10, 0);
    }
    /* AND of two terms: red and mod7 == 3 -> i % 70 == 10 (i = 10, 80, ...). */
    assert_int_equal(search_where(st, "c", vecs[5], DIM, 10, "color=red,mod7=3", hits, &n), 0);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++) {
        int idx = atoi(hits[i].name + 1);
        assert_int_equal(idx % 10, 0);
        assert_int_equal(idx % 7, 3);
    }
    assert_int_equal(search_where(st, "c", vecs[5], DIM, 10, "color=green", hits, &n), 0);
    assert_int_equal(n, 0);
    /* Like, excluding itself. */
    assert_int_equal(st_search_like_opt(st, "c", "v5", true, 5, 0, NULL, hits, &n), 0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(hits[i].name, "v5");
    assert_int_equal(st_search_like_opt(st, "c", "nope", true, 5, 0, NULL, hits, &n), -ENOENT);
    /* Recall@10 against exact search. */
    size_t found = 0;
    for (int q = 0; q < 50; q++) {
        float query[DIM];
        tu_vec(&seed, query, DIM);
        vf_hit exact[10];
        size_t ne;
        assert_int_equal(
            vf_flat_search(&vecs[0][0], N, DIM, VF_METRIC_L2, query, 10, NULL, exact, &ne), 0);
        assert_int_equal(st_search_opt(st, "c", query, DIM, 10, 0, NULL, hits, &n), 0);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < ne; j++) {
                char nm[32];
                snprintf(nm, sizeof(nm), "v%u", exact[j].id);
                if (strcmp(nm, hits[i].name) == 0)
                    found++;
            }
    }
    double recall = (double)found / 500.0;
    printf("recall@10 through the store: %.3f\n", recall);
    assert_true(recall >= 0.95);
    /* Batch queries equal single ones; every row arrives once. */
    batch_rows br = {.k = 10, .hits = calloc(20 * 10, sizeof(st_hit))};
    assert_int_equal(
        st_search_batch_opt(st, "c", &vecs[0][0], 20, DIM, 10, 0, NULL, 2, collect_rows, &br), 0);
    for (int q = 0; q < 20; q++) {
        assert_int_equal(br.seen[q], 1);
        assert_int_equal(st_search_opt(st, "c", vecs[q], DIM, 10, 0, NULL, hits, &n), 0);
        assert_int_equal(br.n[q], n);
        for (size_t i = 0; i < n; i++)
            assert_string_equal(br.hits[q * 10 + i].name, hits[i].name);
    }
    assert_int_equal(br.bad, 0);
    assert_true(br.max_worker < 2);
    /* A sink's error stops the batch and is what the batch returns. */
    memset(br.seen, 0, sizeof(br.seen));
    br.fail_after = 3;
    assert_int_equal(
        st_search_batch_opt(st, "c", &vecs[0][0], 20, DIM, 10, 0, NULL, 2, collect_rows, &br),
        -EIO);
    free(br.hits);
    assert_int_equal(st_search_opt(st, "c", vecs[0], DIM - 1, 10, 0, NULL, hits, &n), -EINVAL);
    st_metrics m;
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.vectors, N);
    assert_true(m.queries_total >= 70);
    assert_true(m.index_memory > 0);
    char health[128];
    assert_int_equal(st_store_health(st, health, sizeof(health), &n), 0);
    assert_string_equal(health, "ok\n");
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

static void test_batch_atomic(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    st_config cfg;
    st_config_default(&cfg);
    cfg.max_vectors = 5;
    assert_int_equal(st_coll_create(st, "c", NULL, &cfg), 0);
    float v[4] = {1, 2, 3, 4};
    st_batch *b;
    assert_int_equal(st_batch_begin(st, "c", &b), 0);
    char name[16];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        assert_int_equal(st_batch_put(b, name, "x", 1, v, 4, NULL, 0, 0, NULL, NULL, NULL), 0);
    }
    assert_int_equal(st_batch_put(b, "bad", "x", 1, v, 3, NULL, 0, 0, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(st_batch_count(b), 6);
    assert_int_equal(st_batch_commit(b), -EDQUOT);
    st_attr a;
    assert_int_equal(st_coll_stat(st, "c", &a), 0);
    assert_int_equal(a.count, 0); /* all or nothing */
    assert_int_equal(st_vec_stat(st, "c", "r0", &a), -ENOENT);
    st_config now;
    assert_int_equal(st_coll_config_get(st, "c", &now), 0);
    assert_int_equal(now.dim, 0); /* the failed batch fixed nothing */
    assert_int_equal(st_batch_begin(st, "c", &b), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        assert_int_equal(st_batch_put(b, name, "x", 1, v, 4, NULL, 0, 0, NULL, NULL, NULL), 0);
    }
    assert_int_equal(st_batch_put(b, "r0", "yy", 2, v, 4, NULL, 0, 0, NULL, NULL, NULL), 0);
    assert_int_equal(st_batch_commit(b), 0);
    assert_int_equal(st_coll_stat(st, "c", &a), 0);
    assert_int_equal(a.count, 5);
    assert_int_equal(st_vec_stat(st, "c", "r0", &a), 0);
    assert_int_equal(a.size, 2);
    assert_int_equal(put_vec(st, "c", "r9", v, 4), -EDQUOT);
    cfg.dim = 4;
    cfg.max_vectors = 0;
    cfg.max_bytes = 7;
    assert_int_equal(st_coll_config_set(st, "c", &cfg, NULL), 0);
    assert_int_equal(st_vec_put(st, "c", "big", "12345678", 8, v, 4, NULL, 0), -EFBIG);
    assert_int_equal(st_vec_put(st, "c", "two", "12", 2, v, 4, NULL, 0), -EDQUOT);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Persistence                                                          */
/* ------------------------------------------------------------------ */

static void fill(st_store *st, const char *coll, size_t n, uint32_t dim, uint64_t seed)
{
    float *v = malloc(dim * sizeof(float));
    st_batch *b = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!b)
            assert_int_equal(st_batch_begin(st, coll, &b), 0);
        tu_vec(&seed, v, dim);
        char name[32];
        snprintf(name, sizeof(name), "v%zu", i);
        assert_int_equal(st_batch_put(b, name, v, dim * 4, v, dim, NULL, 0, 0, NULL, NULL, NULL),
                         0);
        if (st_batch_count(b) == 10000 || i + 1 == n) {
            assert_int_equal(st_batch_commit(b), 0);
            b = NULL;
        }
    }
    free(v);
}

/* Runs nq seeded queries and returns all hits (nq * k). */
static st_hit *run_queries(st_store *st, const char *coll, uint32_t dim, size_t nq, size_t k)
{
    st_hit *h = calloc(nq * k, sizeof(*h));
    size_t *n = calloc(nq, sizeof(*n));
    float *q = malloc(nq * dim * sizeof(float));
    uint64_t seed = 777;
    for (size_t i = 0; i < nq * dim; i++)
        q[i] = tu_frand(&seed);
    for (size_t i = 0; i < nq; i++) {
        assert_int_equal(st_search_opt(st, coll, q + i * dim, dim, k, 0, NULL, h + i * k, &n[i]),
                         0);
        assert_int_equal(n[i], k);
    }
    free(q);
    free(n);
    return h;
}

/* Whether health says c's index is being rebuilt. */
static bool health_rebuilding(st_store *st)
{
    char h[2048];
    size_t len;
    st_store_health(st, h, sizeof h, &len);
    return strstr(h, "collection 'c': rebuilding its index") != NULL;
}

/* A large collection whose snapshot is gone opens at once and rebuilds in
 * the background: meanwhile queries are exact (the records are scanned),
 * health says so, and writes made during the rebuild are in the index
 * when it is back (a deleted vector never returns, a new one is found). */
static void test_background_rebuild(void **state)
{
    (void)state;
    size_t n = SANITIZED ? 6000 : 30000;
    uint32_t dim = 32, k = 10;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, dim);
    fill(st, "c", n, dim, 1);
    assert_int_equal(st_store_close(st), 0);
    float *base = malloc(n * dim * sizeof(float));
    uint64_t seed = 1;
    for (size_t i = 0; i < n; i++)
        tu_vec(&seed, base + i * dim, dim);
    char path[4096];
    snprintf(path, sizeof(path), "%s/snap-1.vfs", dir);
    assert_int_equal(unlink(path), 0);

    o.rebuild_background_min = 1000;
    o.threads = 1;
    st = open_store(dir, &o);
    assert_true(health_rebuilding(st));
    float q[32];
    st_hit hits[10];
    vf_hit want[10];
    size_t got, wn, exact_checked = 0;
    seed = 99;
    for (int i = 0; i < 40; i++) {
        tu_vec(&seed, q, dim);
        bool before = health_rebuilding(st);
        assert_int_equal(st_search_opt(st, "c", q, dim, k, 0, NULL, hits, &got), 0);
        assert_int_equal(got, k);
        if (!before || !health_rebuilding(st))
            continue;
        /* Answered while rebuilding: exactly the brute-force neighbours. */
        assert_int_equal(vf_flat_search(base, n, dim, VF_METRIC_L2, q, k, NULL, want, &wn), 0);
        for (size_t j = 0; j < k; j++) {
            char name[32];
            snprintf(name, sizeof name, "v%u", want[j].id);
            assert_string_equal(hits[j].name, name);
        }
        exact_checked++;
    }
    assert_true(exact_checked > 0);
    /* Writes while the index fills. */
    assert_int_equal(st_vec_delete(st, "c", "v5"), 0);
    assert_int_equal(put_vec(st, "c", "new", q, dim), 0);
    double deadline = now_s() + 300;
    while (health_rebuilding(st) && now_s() < deadline)
        usleep(20000);
    assert_false(health_rebuilding(st));
    st_metrics m;
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.rebuilds_total, 1);
    assert_int_equal(st_search_opt(st, "c", q, dim, k, 0, NULL, hits, &got), 0);
    assert_string_equal(hits[0].name, "new");
    assert_int_equal(st_search_opt(st, "c", base + 5 * dim, dim, k, 0, NULL, hits, &got), 0);
    for (size_t j = 0; j < got; j++)
        assert_string_not_equal(hits[j].name, "v5");
    assert_int_equal(st_store_close(st), 0); /* the rebuilt index is snapshotted */
    st = open_store(dir, &o);
    assert_false(health_rebuilding(st));
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.rebuilds_total, 0);
    assert_int_equal(st_search_opt(st, "c", q, dim, k, 0, NULL, hits, &got), 0);
    assert_string_equal(hits[0].name, "new");
    assert_int_equal(st_store_close(st), 0);
    free(base);
    tu_rmdir(dir);
}

/* st_batch_sink: counts the queries answered in *(size_t *)ctx. */
static int count_sink(void *ctx, unsigned worker, size_t query, const st_hit *hits, size_t n)
{
    (void)worker;
    (void)query;
    (void)hits;
    (void)n;
    (*(size_t *)ctx)++;
    return 0;
}

/* ef_search = auto: searches before tuning use the ladder; tuning
 * calibrates on the queries users sent (filled up with held-out vectors),
 * picks an ef whose recall bound meets the target, and searches use it.
 * The sample is bounded, takes no "like" queries and is wiped at drop. */
static void test_autotune(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    st_bg_stop(st); /* tunings here are the test's own */
    st_config cfg;
    st_config_default(&cfg);
    cfg.metric = VF_METRIC_L2;
    cfg.ef_auto = true;
    cfg.target_recall = 0.99;
    assert_int_equal(st_coll_create(st, "c", NULL, &cfg), 0);
    fill(st, "c", 1000, DIM, 11);
    st_coll *c = st_coll_find(st, "c");
    assert_non_null(c);
    /* Small enough to be searched exactly: no ef, no tuning. */
    st_tuning t;
    assert_int_equal(st_coll_autotune(st, c, true), 0);
    assert_int_equal(st_coll_tuning(st, "c", &t), 0);
    assert_true(t.ef_in_use == 0 && !t.tuned);
    fill(st, "c", 3000, DIM, 12);
    assert_int_equal(st_coll_tuning(st, "c", &t), 0);
    assert_true(t.ef_in_use == 256 && !t.tuned); /* the ladder for 0.99 */
    float q[40 * DIM];
    uint64_t seed = 3;
    for (size_t i = 0; i < 40; i++)
        tu_vec(&seed, q + i * DIM, DIM);
    st_hit hits[10];
    size_t n;
    for (size_t i = 0; i < 30; i++)
        assert_int_equal(st_search_opt(st, "c", q + i * DIM, DIM, 10, 0, NULL, hits, &n), 0);
    assert_int_equal(st_search_like_opt(st, "c", "v7", true, 10, 0, NULL, hits, &n), 0);
    assert_int_equal(st_qsample_fresh(&c->qsample), 30);
    assert_int_equal(st_coll_autotune(st, c, true), 0);
    assert_int_equal(st_coll_tuning(st, "c", &t), 0);
    printf("ef_search auto for recall 0.99 over 4000 x %d: ef %u, recall %.4f (low %.4f) over "
           "%" PRIu64 " queries, %" PRIu64 " from users, %.3f s\n",
           DIM, t.ef_in_use, t.recall, t.recall_low, t.queries, t.user_queries, t.seconds);
    assert_true(t.tuned && t.ef_in_use >= 10 && t.ef_in_use <= 1024);
    assert_int_equal(t.user_queries, 30);
    assert_int_equal(t.queries, 200);
    assert_true(t.recall_low >= 0.99 || t.ef_in_use == 1024);
    assert_true(t.recall >= t.recall_low && t.tuned_at.tv_sec > 0);
    assert_int_equal(st_qsample_fresh(&c->qsample), 0);
    pthread_mutex_lock(&c->mu);
    assert_int_equal(c->auto_ef, t.ef_in_use);
    pthread_mutex_unlock(&c->mu);
    /* Not due again: nothing changed (and the duty wait). */
    assert_int_equal(st_coll_autotune(st, c, false), 0);
    st_tuning t2;
    assert_int_equal(st_coll_tuning(st, "c", &t2), 0);
    assert_true(t2.tuned_at.tv_nsec == t.tuned_at.tv_nsec &&
                t2.tuned_at.tv_sec == t.tuned_at.tv_sec);
    assert_int_equal(st_search_opt(st, "c", q, DIM, 10, 0, NULL, hits, &n), 0);
    assert_int_equal(n, 10);
    /* A batch is sampled too; the sample stays bounded. */
    float *many = malloc(2000 * DIM * sizeof(float));
    for (size_t i = 0; i < 2000; i++)
        tu_vec(&seed, many + i * DIM, DIM);
    assert_int_equal(st_search_batch_opt(st, "c", many, 2000, DIM, 10, 0, NULL, 1, count_sink, &n),
                     0);
    pthread_mutex_lock(&c->qsample.mu);
    assert_int_equal(c->qsample.n, 256);
    assert_int_equal(c->qsample.seen, 2031);
    pthread_mutex_unlock(&c->qsample.mu);
    free(many);
    /* Dropped: the sample is wiped at once (an empty collection, which
     * rmdir can drop, samples its queries as well). */
    assert_int_equal(st_coll_create(st, "d", NULL, &cfg), 0);
    st_coll *d = st_coll_find(st, "d");
    assert_int_equal(st_search_opt(st, "d", q, DIM, 10, 0, NULL, hits, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(st_qsample_fresh(&d->qsample), 1);
    assert_int_equal(st_coll_drop(st, "d"), 0);
    pthread_mutex_lock(&d->qsample.mu);
    assert_true(d->qsample.n == 0 && d->qsample.vecs == NULL);
    pthread_mutex_unlock(&d->qsample.mu);
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

static void test_reopen_snapshot(void **state)
{
    (void)state;
    /* 100k by default; sanitizer builds (10x slower) and
     * VECFS_TEST_SKIP_LARGE use 20k so the suite stays within its timeout. */
    const char *env = getenv("VECFS_STORE_N");
    size_t n = env                                            ? strtoull(env, NULL, 10)
               : SANITIZED || getenv("VECFS_TEST_SKIP_LARGE") ? 20000
                                                              : 100000;
    uint32_t dim = 32;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_COSINE, dim);
    double t0 = now_s();
    fill(st, "c", n, dim, 1);
    double t1 = now_s();
    /* Changes after a snapshot exercise the op-log replay at open. */
    assert_int_equal(st_store_snapshot(st, "c"), 0);
    float v[64];
    uint64_t seed = 99;
    for (int i = 0; i < 100; i++) {
        tu_vec(&seed, v, dim);
        char name[32];
        snprintf(name, sizeof(name), "v%d", i * 7);
        assert_int_equal(put_vec(st, "c", name, v, dim), 0);
        snprintf(name, sizeof(name), "v%d", i * 7 + 3);
        assert_int_equal(st_vec_delete(st, "c", name), 0);
    }
    st_hit *before = run_queries(st, "c", dim, 50, 10);
    double t2 = now_s();
    assert_int_equal(st_store_close(st), 0);
    double t3 = now_s();
    st = open_store(dir, &o);
    double t4 = now_s();
    st_metrics m;
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.rebuilds_total, 0);
    assert_int_equal(m.vectors, n - 100);
    st_hit *after = run_queries(st, "c", dim, 50, 10);
    for (size_t i = 0; i < 500; i++) {
        assert_string_equal(before[i].name, after[i].name);
        assert_true(before[i].distance == after[i].distance);
    }
    printf("reopen of %zu vectors (dim %u): insert %.2f s, close (snapshot) %.2f s, "
           "open (snapshot load) %.3f s, results identical\n",
           n, dim, t1 - t0, t3 - t2, t4 - t3);
    free(after);
    free(before);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* Missing or damaged snapshot: rebuilt from the records, same answers. */
static void test_snapshot_rebuild(void **state)
{
    (void)state;
    size_t n = 10000;
    uint32_t dim = 32;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_COSINE, dim);
    fill(st, "c", n, dim, 1);
    st_hit *before = run_queries(st, "c", dim, 50, 10);
    assert_int_equal(st_store_close(st), 0);
    st_metrics m;
    char path[4096];
    snprintf(path, sizeof(path), "%s/snap-1.vfs", dir);
    assert_int_equal(unlink(path), 0);
    double t5 = now_s();
    st = open_store(dir, &o);
    double t6 = now_s();
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.rebuilds_total, 1);
    printf("rebuild of %zu vectors: %.2f s\n", n, t6 - t5);
    st_hit *after = run_queries(st, "c", dim, 50, 10);
    size_t same = 0;
    for (size_t i = 0; i < 500; i++)
        for (size_t j = (i / 10) * 10; j < (i / 10) * 10 + 10; j++)
            if (strcmp(before[i].name, after[j].name) == 0)
                same++;
    printf("rebuilt index agrees on %zu of 500 neighbours\n", same);
    assert_true(same >= 450);
    free(after);
    assert_int_equal(st_store_close(st), 0); /* writes a fresh snapshot */

    /* Flipped byte in the snapshot: reported by check, rebuilt at open. */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat sb;
    fstat(fd, &sb);
    unsigned char byte;
    off_t at = sb.st_size / 2;
    assert_int_equal(pread(fd, &byte, 1, at), 1);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, at), 1);
    close(fd);
    FILE *rep = tmpfile();
    assert_true(st_check(dir, &o, rep) > 0);
    fclose(rep);
    st = open_store(dir, &o);
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.rebuilds_total, 1);
    after = run_queries(st, "c", dim, 50, 10);
    same = 0;
    for (size_t i = 0; i < 500; i++)
        for (size_t j = (i / 10) * 10; j < (i / 10) * 10 + 10; j++)
            if (strcmp(before[i].name, after[j].name) == 0)
                same++;
    assert_true(same >= 450);
    free(after);
    free(before);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Encryption and damage                                                */
/* ------------------------------------------------------------------ */

static size_t grep_dir(const char *dir, const void *needle, size_t nlen)
{
    size_t hits = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)sz + 1);
        size_t rd = fread(buf, 1, (size_t)sz, f);
        fclose(f);
        for (char *p = buf; (p = memmem(p, rd - (size_t)(p - buf), needle, nlen)) != NULL; p++)
            hits++;
        free(buf);
    }
    closedir(d);
    return hits;
}

/* The bytes of the value of db/key (store open), to find it in data.mdb. */
static void *value_copy(st_store *st, int db, const void *key, size_t klen, size_t *len)
{
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn), 0);
    MDB_val k = {klen, (void *)key}, v;
    assert_int_equal(mdb_get(txn, st->db[db], &k, &v), 0);
    void *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    *len = v.mv_size;
    mdb_txn_abort(txn);
    return copy;
}

/* Flips one bit in the middle of every copy of `val` in data.mdb. */
/* The stored bytes of vector `name`'s record in db (SLOTS or CONTENT, both
 * keyed by collection and engine id); malloc'd, *len bytes. */
static void *vec_record_copy(st_store *st, const char *coll, const char *name, int db, size_t *len)
{
    st_attr a;
    assert_int_equal(st_vec_stat(st, coll, name, &a), 0);
    uint8_t ik[8];
    st_be32(ik, (uint32_t)(a.ino >> 32));
    st_be32(ik + 4, a.id);
    return value_copy(st, db, ik, 8, len);
}

static void flip_value(const char *dir, const void *val, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat sb;
    fstat(fd, &sb);
    char *buf = malloc((size_t)sb.st_size);
    assert_int_equal(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
    int found = 0;
    for (char *p = buf; (p = memmem(p, (size_t)sb.st_size - (size_t)(p - buf), val, len)) != NULL;
         p += len) {
        unsigned char b = (unsigned char)p[len / 2] ^ 0x01;
        assert_int_equal(pwrite(fd, &b, 1, (p - buf) + (off_t)(len / 2)), 1);
        found++;
    }
    assert_true(found >= 1);
    free(buf);
    close(fd);
}

static void damage_test(bool encrypted)
{
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    uint8_t key[ST_KEY_LEN];
    for (unsigned i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 7 + 1);
    if (encrypted) {
        o.key = key;
        o.key_len = sizeof(key);
    }
    st_store *st = open_store(dir, &o);
    make_coll(st, "secretcoll", VF_METRIC_L2, 8);
    const char *name = "secret-name-xyzzy";
    const char *meta = "classified-value-plugh";
    float v[8] = {3.14159f, 2.71828f, 1.41421f, 1.73205f, 0.57721f, 1.61803f, 2.50290f, 4.66920f};
    const char *content = "3.14159 2.71828 1.41421 1.73205 0.57721 1.61803 2.50290 4.66920";
    assert_int_equal(st_vec_put(st, "secretcoll", name, content, strlen(content), v, 8, NULL, 0),
                     0);
    assert_int_equal(st_xattr_set(st, "secretcoll", name, "user.tag", meta, strlen(meta), 0), 0);
    float w[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(put_vec(st, "secretcoll", "other", w, 8), 0);
    assert_int_equal(st_store_snapshot(st, NULL), 0);
    assert_int_equal(st_store_sync(st), 0);
    /* The content record of `name` as stored (to damage it later). */
    st_attr a;
    size_t vlen;
    void *val = vec_record_copy(st, "secretcoll", name, ST_DB_CONTENT, &vlen);
    assert_int_equal(st_store_close(st), 0);

    size_t g_name = grep_dir(dir, name, strlen(name));
    size_t g_meta = grep_dir(dir, meta, strlen(meta));
    size_t g_vec = grep_dir(dir, v, sizeof(v));
    size_t g_content = grep_dir(dir, content, strlen(content));
    size_t g_coll = grep_dir(dir, "secretcoll", 10);
    printf("%s: grep finds name %zu, metadata %zu, vector bytes %zu, content %zu, "
           "collection name %zu\n",
           encrypted ? "encrypted" : "plain", g_name, g_meta, g_vec, g_content, g_coll);
    if (encrypted) {
        assert_int_equal(g_name + g_meta + g_vec + g_content + g_coll, 0);
        /* Wrong key, no key, passphrase instead of raw key. */
        uint8_t bad[ST_KEY_LEN];
        memcpy(bad, key, sizeof(bad));
        bad[0] ^= 1;
        char err[256] = "";
        st_options w2 = o;
        w2.key = bad;
        w2.errbuf = err;
        w2.errbuf_len = sizeof(err);
        st_store *x = NULL;
        assert_int_equal(st_store_open(dir, &w2, &x), -EKEYREJECTED);
        assert_null(x);
        printf("wrong key: %s\n", err);
        assert_non_null(strstr(err, "wrong key"));
        w2.key = NULL;
        assert_int_equal(st_store_open(dir, &w2, &x), -EKEYREJECTED);
        assert_non_null(strstr(err, "encrypted"));
    } else {
        assert_true(g_name > 0 && g_meta > 0 && g_vec > 0);
    }
    assert_int_equal(st_check(dir, &o, NULL), 0);
    flip_value(dir, val, vlen);
    free(val);
    st = open_store(dir, &o);
    void *data;
    size_t len;
    assert_int_equal(st_vec_get(st, "secretcoll", name, &data, &len, NULL), -EIO);
    assert_int_equal(st_vec_get(st, "secretcoll", "other", &data, &len, NULL), 0);
    free(data);
    assert_int_equal(st_vec_stat(st, "secretcoll", name, &a), 0); /* stat needs no content */
    assert_int_equal(st_store_close(st), 0);
    char *rep = NULL;
    size_t replen = 0;
    FILE *f = open_memstream(&rep, &replen);
    int problems = st_check(dir, &o, f);
    fclose(f);
    printf("check after a flipped byte (%d problems):\n%s", problems, rep);
    assert_true(problems >= 1);
    assert_non_null(strstr(rep, "content"));
    free(rep);
    tu_rmdir(dir);
}

static void test_encryption(void **state)
{
    (void)state;
    damage_test(true);
}

static void test_damage_plain(void **state)
{
    (void)state;
    damage_test(false);
}

static void test_passphrase(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char kf[4096];
    snprintf(kf, sizeof(kf), "%s.key", dir);
    FILE *f = fopen(kf, "w");
    fputs("correct horse battery staple\n", f);
    fclose(f);
    uint8_t *key;
    size_t klen;
    bool pass;
    assert_int_equal(st_key_load(kf, &key, &klen, &pass), 0);
    assert_true(pass);
    assert_int_equal(klen, strlen("correct horse battery staple"));
    st_options o;
    tu_opts(&o);
    o.key = key;
    o.key_len = klen;
    o.key_is_passphrase = true;
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 2);
    float v[2] = {1, 2};
    assert_int_equal(put_vec(st, "c", "a", v, 2), 0);
    assert_int_equal(st_store_close(st), 0);
    st = open_store(dir, &o);
    st_attr a;
    assert_int_equal(st_vec_stat(st, "c", "a", &a), 0);
    assert_int_equal(st_store_close(st), 0);
    o.key = "wrong passphrase";
    o.key_len = 16;
    assert_int_equal(st_store_open(dir, &o, &st), -EKEYREJECTED);
    st_key_free(key, klen);
    unlink(kf);
    tu_rmdir(dir);
}

static void test_format_version(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    /* Rewrite the FORMAT record with version 99 (CRC fixed up). */
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
    st_format_rec fr = {.version = 99};
    vc_buf b = VC_BUF_INIT;
    st_rec_format_enc(&b, &fr);
    st_crypto plain = {0};
    MDB_val k = {6, "format"}, v = {b.len + 4, NULL};
    assert_int_equal(mdb_put(txn, st->db[ST_DB_META], &k, &v, MDB_RESERVE), 0);
    assert_int_equal(st_env_seal(&plain, ST_DB_META, "format", 6, b.p, b.len, v.mv_data), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    vc_buf_release(&b);
    assert_int_equal(st_store_close(st), 0);
    char err[256] = "";
    o.errbuf = err;
    o.errbuf_len = sizeof(err);
    assert_int_equal(st_store_open(dir, &o, &st), -EPROTO);
    printf("other version: %s\n", err);
    assert_non_null(strstr(err, "version 99"));
    tu_rmdir(dir);
}

static void test_map_full(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    o.max_size = 4u << 20;
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 64);
    float v[64];
    uint64_t seed = 5;
    char name[32], big[8192];
    memset(big, 'q', sizeof(big));
    int i, rc = 0;
    for (i = 0; i < 100000; i++) {
        tu_vec(&seed, v, 64);
        snprintf(name, sizeof(name), "v%d", i);
        rc = st_vec_put(st, "c", name, big, sizeof(big), v, 64, NULL, 0);
        if (rc)
            break;
    }
    printf("map of 4 MiB full after %d vectors of 8 KiB: %s\n", i, strerror(-rc));
    assert_int_equal(rc, -ENOSPC);
    st_attr a;
    assert_int_equal(st_vec_stat(st, "c", name, &a), -ENOENT); /* rolled back */
    assert_int_equal(st_coll_stat(st, "c", &a), 0);
    assert_int_equal(a.count, (uint64_t)i);
    for (int j = 0; j < i / 2; j++) {
        snprintf(name, sizeof(name), "v%d", j);
        assert_int_equal(st_vec_delete(st, "c", name), 0);
    }
    assert_int_equal(st_vec_put(st, "c", "after", big, sizeof(big), v, 64, NULL, 0), 0);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* Every allocation of a put/rename/delete/xattr sequence made to fail in
 * turn: each call fails cleanly or succeeds, and the store stays consistent. */
/* Waits until c's name table is filled, then compares it with SLOTS. */
static int names_check_when_filled(st_store *st, const char *coll)
{
    st_coll *c = st_coll_find(st, coll);
    assert_non_null(c);
    int rc = -EAGAIN;
    for (int i = 0; i < 2000 && rc == -EAGAIN; i++) {
        rc = st_names_check(st, c);
        if (rc == -EAGAIN)
            usleep(5000);
    }
    return rc;
}

/* A put that meets an allocation failure anywhere (before the commit, in
 * the commit, or in the index update after it) leaves the vector either
 * absent, or present and found by a search for its own value: never
 * committed but missing from the index. "e" starts empty, so its first
 * sweep steps run the path that creates the index. */
static void test_fault_put_all_or_nothing(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    o.log_level = ST_LOG_ERROR;
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 4);
    make_coll(st, "e", VF_METRIC_L2, 0);
    for (int i = 0; i < 50; i++) {
        float v[4] = {(float)i, 1, 2, 3};
        char name[16];
        snprintf(name, sizeof(name), "base%d", i);
        assert_int_equal(put_vec(st, "c", name, v, 4), 0);
    }
    const char *colls[] = {"e", "c"};
    for (size_t ci = 0; ci < 2; ci++) {
        int failed = 0, done = 0;
        for (uint64_t n = 1; n < 500; n++) {
            char name[32];
            snprintf(name, sizeof(name), "g%llu", (unsigned long long)n);
            float v[4] = {1000.0f + (float)n, -(float)n, 7, (float)(n % 5)};
            st_fault_set(ST_FAULT_ALLOC, n);
            int rc = put_vec(st, colls[ci], name, v, 4);
            bool fired = st_fault_set(ST_FAULT_ALLOC, 0) == 0;
            st_attr a;
            if (rc != 0) {
                assert_int_equal(rc, -ENOMEM);
                assert_int_equal(st_vec_stat(st, colls[ci], name, &a), -ENOENT);
                failed++;
            } else {
                st_hit hit;
                size_t nh;
                assert_int_equal(st_search_opt(st, colls[ci], v, 4, 1, 0, NULL, &hit, &nh), 0);
                assert_int_equal(nh, 1);
                assert_string_equal(hit.name, name);
                done++;
            }
            if (!fired)
                break;
        }
        printf("%s: %d puts failed cleanly, %d succeeded under a fault\n", colls[ci], failed, done);
        assert_true(failed > 0);
    }
    char h[512];
    size_t hl;
    assert_int_equal(st_store_health(st, h, sizeof(h), &hl), 0);
    assert_null(strstr(h, "behind"));
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

static void test_fault_injection(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    o.log_level = ST_LOG_ERROR;
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 4);
    float v[4] = {1, 2, 3, 4};
    int failures = 0;
    for (uint64_t n = 1; n <= 60; n++) {
        char name[32];
        snprintf(name, sizeof(name), "f%llu", (unsigned long long)n);
        st_fault_set(ST_FAULT_ALLOC, n);
        int rc = put_vec(st, "c", name, v, 4);
        if (rc == 0)
            rc = st_xattr_set(st, "c", name, "user.k", "v", 1, 0);
        if (rc == 0)
            rc = st_vec_rename(st, "c", name, "tmp", 0);
        if (rc == 0)
            rc = st_vec_rename(st, "c", "tmp", name, 0);
        st_fault_set(ST_FAULT_ALLOC, 0);
        if (rc) {
            assert_int_equal(rc, -ENOMEM);
            failures++;
        }
    }
    printf("allocation faults hit %d of 60 sequences\n", failures);
    assert_true(failures > 0);
    /* Allocation faults that hit the name table after a commit (or a fill
     * step) cleared it; the background thread filled it again, equal to
     * SLOTS. */
    assert_int_equal(names_check_when_filled(st, "c"), 0);
    /* Snapshot write with I/O faults: fails, store still fine. */
    for (uint64_t n = 1; n <= 4; n++) {
        st_fault_set(ST_FAULT_IO, n);
        int rc = st_store_snapshot(st, "c");
        st_fault_set(ST_FAULT_IO, 0);
        assert_true(rc == 0 || rc == -EIO || rc == -ENOSPC);
    }
    char h[256];
    size_t hl;
    (void)st_store_health(st, h, sizeof(h), &hl);
    assert_int_equal(st_store_snapshot(st, "c"), 0);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    st = open_store(dir, &o);
    st_metrics m;
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.rebuilds_total, 0);
    /* The same faults on a table that was filled from disk after the
     * reopen: a cleared table fills again from id 0. */
    assert_int_equal(names_check_when_filled(st, "c"), 0);
    for (uint64_t n = 1; n <= 60; n++) {
        char name[32];
        snprintf(name, sizeof(name), "f%llu", (unsigned long long)n);
        st_fault_set(ST_FAULT_ALLOC, n);
        if (st_vec_rename(st, "c", name, "tmp", 0) == 0)
            (void)st_vec_rename(st, "c", "tmp", name, 0);
        st_fault_set(ST_FAULT_ALLOC, 0);
    }
    assert_int_equal(names_check_when_filled(st, "c"), 0);
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

static void test_busy_and_backup(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "c", VF_METRIC_L2, 2);
    float v[2] = {1, 2};
    assert_int_equal(put_vec(st, "c", "a", v, 2), 0);
    st_store *st2 = NULL;
    assert_int_equal(st_store_open(dir, &o, &st2), -EBUSY);
    char *bdir = tu_tmpdir();
    assert_int_equal(st_store_backup(st, bdir), 0);
    assert_int_equal(st_store_backup(st, bdir), -ENOTEMPTY);
    assert_int_equal(st_store_close(st), 0);
    st = open_store(bdir, &o);
    st_attr a;
    assert_int_equal(st_vec_stat(st, "c", "a", &a), 0);
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(bdir);
    tu_rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Concurrency                                                          */
/* ------------------------------------------------------------------ */

typedef struct conc {
    st_store *st;
    _Atomic bool stop;
    _Atomic unsigned long reads, writes, errors;
    int id;
} conc;

typedef struct conc_arg {
    conc *c;
    int id;
} conc_arg;

static int count_cb(void *ctx, const char *name, const st_attr *a, uint64_t next)
{
    (void)name;
    (void)a;
    (void)next;
    (*(size_t *)ctx)++;
    return 0;
}

static void *conc_writer(void *arg)
{
    conc_arg *ca = arg;
    conc *c = ca->c;
    uint64_t seed = 100 + (uint64_t)ca->id;
    const char *coll = ca->id % 2 ? "c1" : "c2";
    float v[DIM];
    for (unsigned long i = 0; !atomic_load(&c->stop); i++) {
        char name[32];
        snprintf(name, sizeof(name), "w%d-%lu", ca->id, i % 300);
        tu_vec(&seed, v, DIM);
        int rc = put_vec(c->st, coll, name, v, DIM);
        if (rc == 0 && i % 3 == 0)
            rc = st_xattr_set(c->st, coll, name, "user.k", "v", 1, 0);
        if (rc == 0 && i % 5 == 0)
            rc = st_vec_delete(c->st, coll, name);
        else if (rc == 0 && i % 7 == 0) {
            char to[40];
            snprintf(to, sizeof(to), "%s-r", name);
            rc = st_vec_rename(c->st, coll, name, to, 0);
        }
        if (rc) {
            fprintf(stderr, "writer %d: %s\n", ca->id, strerror(-rc));
            atomic_fetch_add(&c->errors, 1);
        }
        atomic_fetch_add(&c->writes, 1);
    }
    return NULL;
}

static void *conc_reader(void *arg)
{
    conc_arg *ca = arg;
    conc *c = ca->c;
    uint64_t seed = 900 + (uint64_t)ca->id;
    float q[DIM];
    st_hit hits[10];
    while (!atomic_load(&c->stop)) {
        tu_vec(&seed, q, DIM);
        size_t n, cnt = 0;
        int rc = st_search_opt(c->st, "c1", q, DIM, 10, 0, NULL, hits, &n);
        if (rc == 0)
            rc = search_where(c->st, "c2", q, DIM, 5, "k=v", hits, &n);
        if (rc == 0)
            rc = st_vec_list(c->st, "c1", 0, count_cb, &cnt);
        st_metrics m;
        if (rc == 0)
            rc = st_store_metrics(c->st, &m);
        if (rc) {
            fprintf(stderr, "reader %d: %s\n", ca->id, strerror(-rc));
            atomic_fetch_add(&c->errors, 1);
        }
        atomic_fetch_add(&c->reads, 1);
    }
    return NULL;
}

static void *conc_snapshotter(void *arg)
{
    conc_arg *ca = arg;
    conc *c = ca->c;
    while (!atomic_load(&c->stop)) {
        if (st_store_snapshot(c->st, NULL) != 0)
            atomic_fetch_add(&c->errors, 1);
        usleep(20000);
    }
    return NULL;
}

/* Group commit: writer threads released at once by a barrier. */
#define GROUP_THREADS 8
#define GROUP_OPS 40

typedef struct group_arg {
    st_store *st;
    pthread_barrier_t *bar;
    int id;
    int rounds;   /* group_writer: ops; group_one: unused */
    int rc;       /* group_one: the put's result */
    int failures; /* group_writer: calls that did not return 0 */
} group_arg;

/* Puts w<id>_<i>, renames every 4th to r<id>_<i>, deletes every 5th and
 * sets an xattr on every 3rd: each call must succeed. */
static void *group_writer(void *p)
{
    group_arg *a = p;
    pthread_barrier_wait(a->bar);
    for (int i = 0; i < a->rounds; i++) {
        char name[32], to[32];
        snprintf(name, sizeof(name), "w%d_%d", a->id, i);
        snprintf(to, sizeof(to), "r%d_%d", a->id, i);
        float v[4] = {(float)a->id, (float)i, 1, 2};
        int rc = put_vec(a->st, "g", name, v, 4);
        if (rc == 0 && i % 3 == 0)
            rc = st_xattr_set(a->st, "g", name, "user.k", "v", 1, 0);
        if (rc == 0 && i % 4 == 0)
            rc = st_vec_rename(a->st, "g", name, to, 0);
        if (rc == 0 && i % 5 == 0)
            rc = st_vec_delete(a->st, "g", i % 4 == 0 ? to : name);
        a->failures += rc != 0;
    }
    return NULL;
}

/* What group_writer left for (id, i): its name, or NULL when deleted. */
static const char *group_expected(int id, int i, char *buf, size_t cap)
{
    if (i % 5 == 0)
        return NULL;
    snprintf(buf, cap, "%c%d_%d", i % 4 == 0 ? 'r' : 'w', id, i);
    return buf;
}

/* Every vector group_writer left is there with its value (found by its
 * own vector), its xattr, and nothing it deleted or renamed away. */
static void group_verify(st_store *st)
{
    for (int id = 0; id < GROUP_THREADS; id++) {
        for (int i = 0; i < GROUP_OPS; i++) {
            char buf[32], wname[32];
            const char *name = group_expected(id, i, buf, sizeof(buf));
            snprintf(wname, sizeof(wname), "w%d_%d", id, i);
            st_attr a;
            if (!name) {
                assert_int_equal(st_vec_stat(st, "g", wname, &a), -ENOENT);
                continue;
            }
            if (name[0] == 'r')
                assert_int_equal(st_vec_stat(st, "g", wname, &a), -ENOENT);
            assert_int_equal(st_vec_stat(st, "g", name, &a), 0);
            float v[4] = {(float)id, (float)i, 1, 2};
            st_hit hit;
            size_t nh;
            assert_int_equal(st_search_opt(st, "g", v, 4, 1, 0, NULL, &hit, &nh), 0);
            assert_int_equal(nh, 1);
            assert_string_equal(hit.name, name);
            char x[8];
            size_t xl = 0;
            int xrc = st_xattr_get(st, "g", name, "user.k", x, sizeof(x), &xl);
            assert_int_equal(xrc, i % 3 == 0 ? 0 : -ENODATA);
            if (xrc == 0)
                assert_true(xl == 1 && x[0] == 'v');
        }
    }
}

static void run_threads(void *(*fn)(void *), group_arg *args, int n)
{
    pthread_t th[GROUP_THREADS];
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fn, &args[i]), 0);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

/* Eight writer threads at once: every call commits, several share a
 * commit, the op log and order records are intact (check), and a reopen
 * shows everything. */
static void test_group_commit(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "g", VF_METRIC_L2, 4);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, GROUP_THREADS);
    group_arg args[GROUP_THREADS];
    for (int i = 0; i < GROUP_THREADS; i++)
        args[i] = (group_arg){.st = st, .bar = &bar, .id = i, .rounds = GROUP_OPS};
    run_threads(group_writer, args, GROUP_THREADS);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < GROUP_THREADS; i++)
        assert_int_equal(args[i].failures, 0);
    st_metrics m;
    assert_int_equal(st_store_metrics(st, &m), 0);
    printf("group commit: %llu operations in %llu commits, %.3f s committing\n",
           (unsigned long long)m.commit_ops_total, (unsigned long long)m.commits_total,
           m.commit_seconds_total);
    assert_true(m.commit_ops_total > m.commits_total); /* some commit carried several */
    /* Every commit ends in an fdatasync of a real file: it takes time. */
    assert_true(m.commit_seconds_total > 0.0);
    group_verify(st);
    assert_int_equal(st_names_check(st, st_coll_find(st, "g")), 0);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    st = open_store(dir, &o);
    group_verify(st);
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

static void *group_one(void *p)
{
    group_arg *a = p;
    char name[32];
    snprintf(name, sizeof(name), "f%d_%d", a->rounds, a->id);
    float v[4] = {(float)a->rounds, (float)a->id, -1, 5};
    pthread_barrier_wait(a->bar);
    a->rc = put_vec(a->st, "g", name, v, 4);
    return NULL;
}

/* One allocation failure among eight concurrent puts fails at most its
 * own caller (-ENOMEM, absent); the other seven are committed, found by
 * their vectors, and survive a reopen. */
static void test_group_fault(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    o.log_level = ST_LOG_ERROR;
    st_store *st = open_store(dir, &o);
    make_coll(st, "g", VF_METRIC_L2, 4);
    float seed[4] = {0, 0, 0, 0};
    assert_int_equal(put_vec(st, "g", "seed", seed, 4), 0);
    int failed_rounds = 0;
    bool ok[200][GROUP_THREADS];
    int rounds = SANITIZED ? 50 : 200;
    for (int r = 0; r < rounds; r++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, GROUP_THREADS);
        group_arg args[GROUP_THREADS];
        for (int i = 0; i < GROUP_THREADS; i++)
            args[i] = (group_arg){.st = st, .bar = &bar, .id = i, .rounds = r};
        st_fault_set(ST_FAULT_ALLOC, 1 + (uint64_t)r % 60);
        run_threads(group_one, args, GROUP_THREADS);
        st_fault_set(ST_FAULT_ALLOC, 0);
        pthread_barrier_destroy(&bar);
        int failed = 0;
        for (int i = 0; i < GROUP_THREADS; i++) {
            ok[r][i] = args[i].rc == 0;
            if (args[i].rc != 0) {
                assert_int_equal(args[i].rc, -ENOMEM);
                failed++;
            }
        }
        assert_true(failed <= 1);
        failed_rounds += failed;
    }
    printf("group fault: %d of %d rounds failed one put\n", failed_rounds, rounds);
    assert_true(failed_rounds > 0);
    for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < rounds; r++) {
            for (int i = 0; i < GROUP_THREADS; i++) {
                char name[32];
                snprintf(name, sizeof(name), "f%d_%d", r, i);
                st_attr a;
                if (!ok[r][i]) {
                    assert_int_equal(st_vec_stat(st, "g", name, &a), -ENOENT);
                    continue;
                }
                float v[4] = {(float)r, (float)i, -1, 5};
                st_hit hit;
                size_t nh;
                assert_int_equal(st_search_opt(st, "g", v, 4, 1, 0, NULL, &hit, &nh), 0);
                assert_int_equal(nh, 1);
                assert_string_equal(hit.name, name);
            }
        }
        assert_int_equal(st_store_close(st), 0);
        assert_int_equal(st_check(dir, &o, NULL), 0);
        if (pass == 0)
            st = open_store(dir, &o);
    }
    tu_rmdir(dir);
}

/* Queries under churn: a collection of KCHURN_N vectors (all tagged
 * user.t=a), churners that delete, re-put and rename vectors (at most
 * one of each churner's vectors is missing at a time), and searchers
 * that check every unfiltered and filtered query returns exactly k. */
#define KCHURN_N 3000
#define KCHURN_K 10

typedef struct kchurn {
    st_store *st;
    _Atomic bool stop;
    _Atomic unsigned long queries, short_results, errors, churns;
} kchurn;

typedef struct kchurn_arg {
    kchurn *c;
    int id;
} kchurn_arg;

static void kchurn_vec(int i, float v[8])
{
    uint64_t seed = 1000u + (uint64_t)i;
    tu_vec(&seed, v, 8);
}

/* Puts v<from>..v<to - 1> (names `name`, or v<i> when NULL) with the tag,
 * in one batch. */
static int kchurn_put_rows(st_store *st, const char *name, int from, int to)
{
    st_batch *b = NULL;
    int rc = st_batch_begin(st, "k", &b);
    const char *key = "user.t";
    const void *val = "a";
    size_t len = 1;
    for (int i = from; rc == 0 && i < to; i++) {
        float v[8];
        kchurn_vec(i, v);
        char own[32];
        snprintf(own, sizeof(own), "v%d", i);
        rc = st_batch_put(b, name ? name : own, "x", 1, v, 8, NULL, 0, 1, &key, &val, &len);
    }
    if (rc == 0)
        return st_batch_commit(b);
    st_batch_abort(b);
    return rc;
}

static void *kchurn_churner(void *p)
{
    kchurn_arg *a = p;
    kchurn *c = a->c;
    uint64_t seed = 77u + (uint64_t)a->id;
    while (!atomic_load(&c->stop)) {
        int i = (int)(tu_rng(&seed) % (KCHURN_N / 2)) * 2 + a->id; /* its own half */
        char name[32], other[32];
        snprintf(name, sizeof(name), "v%d", i);
        snprintf(other, sizeof(other), "o%d", i);
        int rc = st_vec_rename(c->st, "k", name, other, 0);
        if (rc == 0)
            rc = st_vec_delete(c->st, "k", other);
        if (rc == 0)
            rc = kchurn_put_rows(c->st, name, i, i + 1);
        if (rc)
            atomic_fetch_add(&c->errors, 1);
        atomic_fetch_add(&c->churns, 1);
    }
    return NULL;
}

static void *kchurn_searcher(void *p)
{
    kchurn_arg *a = p;
    kchurn *c = a->c;
    uint64_t seed = 5u + (uint64_t)a->id;
    while (!atomic_load(&c->stop)) {
        float q[8];
        tu_vec(&seed, q, 8);
        st_hit hits[KCHURN_K];
        size_t nh = 0;
        bool filtered = tu_rng(&seed) & 1;
        int rc = search_where(c->st, "k", q, 8, KCHURN_K, filtered ? "t=a" : NULL, hits, &nh);
        if (rc)
            atomic_fetch_add(&c->errors, 1);
        else if (nh != KCHURN_K)
            atomic_fetch_add(&c->short_results, 1);
        atomic_fetch_add(&c->queries, 1);
    }
    return NULL;
}

static void test_query_k_under_churn(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    o.sync_mode = ST_SYNC_FAST;
    st_store *st = open_store(dir, &o);
    make_coll(st, "k", VF_METRIC_L2, 8);
    assert_int_equal(kchurn_put_rows(st, NULL, 0, KCHURN_N), 0);
    kchurn c = {.st = st};
    pthread_t th[4];
    kchurn_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (kchurn_arg){.c = &c, .id = i % 2};
        assert_int_equal(
            pthread_create(&th[i], NULL, i < 2 ? kchurn_churner : kchurn_searcher, &args[i]), 0);
    }
    usleep(SANITIZED ? 1000000 : 3000000);
    atomic_store(&c.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    printf("queries under churn: %lu queries, %lu short, %lu churns, %lu errors\n",
           atomic_load(&c.queries), atomic_load(&c.short_results), atomic_load(&c.churns),
           atomic_load(&c.errors));
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(atomic_load(&c.short_results), 0);
    assert_true(atomic_load(&c.queries) > 0 && atomic_load(&c.churns) > 0);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* The window between an index search and the naming of its hits, held
 * open: the nearest vector's name is gone (as a delete committed between
 * the two leaves it) while the index still has it. The search must not
 * come back short: it searches again and returns k others. */
static void test_query_refill(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    o.sync_mode = ST_SYNC_FAST;
    st_store *st = open_store(dir, &o);
    make_coll(st, "r", VF_METRIC_L2, 4);
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof(name), "v%d", i);
        float v[4] = {(float)i, 0, 0, 0};
        assert_int_equal(put_vec(st, "r", name, v, 4), 0);
    }
    st_attr a;
    assert_int_equal(st_vec_stat(st, "r", "v0", &a), 0);
    st_coll *c = st_coll_find(st, "r");
    st_name_change gone = {.id = (uint32_t)a.id, .name = NULL, .len = 0};
    st_names_apply(&c->names, &gone, 1);
    float q[4] = {0, 0, 0, 0};
    st_hit hits[10];
    size_t nh = 0;
    assert_int_equal(st_search_opt(st, "r", q, 4, 10, 0, NULL, hits, &nh), 0);
    assert_int_equal(nh, 10);
    for (size_t i = 0; i < nh; i++) {
        char want[32];
        snprintf(want, sizeof(want), "v%zu", i + 1);
        assert_string_equal(hits[i].name, want);
    }
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

static void test_concurrency(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    o.sync_mode = ST_SYNC_FAST;
    o.sync_interval_ms = 50;
    o.snapshot_every_changes = 200;
    st_store *st = open_store(dir, &o);
    make_coll(st, "c1", VF_METRIC_L2, DIM);
    make_coll(st, "c2", VF_METRIC_COSINE, DIM);
    conc c = {.st = st};
    pthread_t th[7];
    conc_arg args[7];
    void *(*fns[7])(void *) = {conc_writer, conc_writer, conc_writer,     conc_reader,
                               conc_reader, conc_reader, conc_snapshotter};
    for (int i = 0; i < 7; i++) {
        args[i].c = &c;
        args[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, fns[i], &args[i]), 0);
    }
    usleep(2000000);
    atomic_store(&c.stop, true);
    for (int i = 0; i < 7; i++)
        pthread_join(th[i], NULL);
    printf("concurrency: %lu writes, %lu reads, %lu errors in 2 s\n", atomic_load(&c.writes),
           atomic_load(&c.reads), atomic_load(&c.errors));
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    st = open_store(dir, &o);
    st_metrics m;
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_int_equal(m.rebuilds_total, 0);
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

/* The op sequence of the fs property test (seed 789019564) that left a
 * 2-vector collection whose HNSW graph search found only one of them:
 * every present vector must be returned. */
static void churn_put(st_store *st, const char *n, float a, float b, float c, float d)
{
    float v[4] = {a, b, c, d};
    assert_int_equal(st_vec_put(st, "p", n, "x", 1, v, 4, NULL, 0), 0);
}

static void churn_del(st_store *st, const char *n)
{
    assert_int_equal(st_vec_delete(st, "p", n), 0);
}

static void churn_ren(st_store *st, const char *a, const char *b)
{
    assert_int_equal(st_vec_rename(st, "p", a, b, 0), 0);
}

static void test_small_churn(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "p", VF_METRIC_COSINE, 4);
    for (int round = 0; round < 10; round++) {
        churn_put(st, "n2", -3.602, -0.839, 0.61, 3.537);
        churn_put(st, "n2", -3.943, 0.164, 3.886, 0.829);
        churn_put(st, "n11", -3.129, 1.266, -1.876, 4.893);
        churn_put(st, "n11", 1.43, -4.641, -1.297, 4.762);
        churn_put(st, "n2", 4.754, -4.51, -4.038, 2.266);
        churn_put(st, "n11", 3.636, 2.633, 2.311, 2.097);
        churn_put(st, "n11", -2.067, -2.984, 1.158, 1.679);
        churn_put(st, "n11", -0.129, -2.581, 3.549, -0.577);
        churn_put(st, ".dot0", 4.68, -0.823, 4.658, -1.024);
        churn_del(st, "n11");
        churn_put(st, "n2", 4.223, -4.838, 1.912, 0.297);
        churn_ren(st, "n2", "n3");
        churn_ren(st, "n3", "n1");
        churn_put(st, "n5", -4.097, 0.269, -2.94, 0.951);
        churn_put(st, "n5", -0.703, 2.73, 3.283, -2.03);
        churn_ren(st, "n5", "n1");
        churn_del(st, "n1");
        churn_put(st, ".dot0", 4.171, 0.52, 4.103, 1.61);
        churn_put(st, ".dot0", 4.39, -1.242, -4.073, 3.612);
        churn_ren(st, ".dot0", ".dot0");
        churn_put(st, ".dot0", 2.728, 2.989, 2.132, 4.301);
        churn_del(st, ".dot0");
        churn_put(st, "n4", -3.721, 0.015, 1.933, 2.016);
        churn_del(st, "n4");
        churn_put(st, ".dot2", -2.974, -2.132, 2.863, -4.14);
        churn_del(st, ".dot2");
        churn_put(st, ".dot1", 0.947, 3.992, 2.926, -4.697);
        churn_put(st, "n8", 2.779, -0.526, 0.973, -1.823);
        churn_put(st, ".dot1", 3.696, 2.213, -4.707, 4.205);
        churn_put(st, ".dot1", 2.329, -4.526, 0.486, -2.11);
        churn_put(st, "n0", 1.698, 1.84, 0.381, -0.285);
        churn_ren(st, "n8", "n1");
        churn_put(st, "n0", 0.755, 3.401, -3.741, 2.519);
        churn_del(st, "n0");
        float q[4] = {1, 1, 1, 1};
        st_hit h[100];
        size_t n;
        assert_int_equal(st_search_opt(st, "p", q, 4, 100, 0, NULL, h, &n), 0);
        st_attr a;
        assert_int_equal(st_coll_stat(st, "p", &a), 0);
        assert_int_equal(n, a.count);
        /* Empty the collection for the next round. */
        for (size_t i = 0; i < n; i++)
            assert_int_equal(st_vec_delete(st, "p", h[i].name), 0);
    }
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

typedef struct names_writer {
    st_store *st;
    uint64_t seed;
    _Atomic bool stop;
    _Atomic int failures;
    _Atomic int ops;
} names_writer;

/* One random operation on collection "p" (names n0..n59, dim 4): put,
 * delete, rename (replacing) or a small batch. Returns 0 or the error of
 * an operation that should have worked. */
static int names_random_op(st_store *st, uint64_t *seed)
{
    char a[16], b[16];
    float v[4];
    tu_vec(seed, v, 4);
    snprintf(a, sizeof(a), "n%u", (unsigned)(tu_rng(seed) % 60));
    snprintf(b, sizeof(b), "n%u", (unsigned)(tu_rng(seed) % 60));
    int rc;
    switch (tu_rng(seed) % 4) {
    case 0:
        return st_vec_put(st, "p", a, "x", 1, v, 4, NULL, 0);
    case 1:
        rc = st_vec_delete(st, "p", a);
        return rc == -ENOENT ? 0 : rc;
    case 2:
        rc = st_vec_rename(st, "p", a, b, 0);
        return rc == -ENOENT ? 0 : rc;
    default: {
        st_batch *bt;
        rc = st_batch_begin(st, "p", &bt);
        for (unsigned i = 0, n = 1 + (unsigned)(tu_rng(seed) % 8); rc == 0 && i < n; i++) {
            snprintf(a, sizeof(a), "n%u", (unsigned)(tu_rng(seed) % 60));
            tu_vec(seed, v, 4);
            rc = st_batch_put(bt, a, "y", 1, v, 4, NULL, 0, 0, NULL, NULL, NULL);
        }
        if (rc) {
            st_batch_abort(bt);
            return rc;
        }
        return st_batch_commit(bt);
    }
    }
}

static void *names_writer_main(void *arg)
{
    names_writer *w = arg;
    while (!atomic_load(&w->stop)) {
        if (names_random_op(w->st, &w->seed) != 0)
            atomic_fetch_add(&w->failures, 1);
        atomic_fetch_add(&w->ops, 1);
    }
    return NULL;
}

/* The in-memory name table (names.c) mirrors SLOTS through random puts,
 * deletes, replacing renames and batches that reuse freed ids; after a
 * reopen it is filled in the background in chunks while a writer changes
 * names, and ends equal to SLOTS; searches name hits from it. */
static void test_names(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)time(NULL);
    printf("test_names seed %llu\n", (unsigned long long)seed);
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    make_coll(st, "p", VF_METRIC_L2, 4);
    for (int step = 0; step < 600; step++) {
        assert_int_equal(names_random_op(st, &seed), 0);
        if (step % 50 == 49)
            assert_int_equal(names_check_when_filled(st, "p"), 0);
    }
    /* Enough vectors for several fill chunks, with holes. */
    size_t n = SANITIZED ? 9000 : 20000;
    st_batch *bt;
    assert_int_equal(st_batch_begin(st, "p", &bt), 0);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        float v[4] = {(float)i, 1, 2, 3};
        snprintf(name, sizeof(name), "bulk-%zu", i);
        assert_int_equal(st_batch_put(bt, name, "z", 1, v, 4, NULL, 0, 0, NULL, NULL, NULL), 0);
    }
    assert_int_equal(st_batch_commit(bt), 0);
    for (size_t i = 0; i < n; i += 7) {
        char name[32];
        snprintf(name, sizeof(name), "bulk-%zu", i);
        assert_int_equal(st_vec_delete(st, "p", name), 0);
    }
    assert_int_equal(st_store_close(st), 0);

    /* Small fill steps, so the writer runs between many of them. */
    st_names_fill_chunk = 16;
    st = open_store(dir, &o);
    names_writer w = {.st = st, .seed = seed + 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, names_writer_main, &w), 0);
    int rc = names_check_when_filled(st, "p");
    while (atomic_load(&w.ops) < 200)
        usleep(1000);
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&w.failures), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(st_names_check(st, st_coll_find(st, "p")), 0);
    /* A search names its hit from the table. */
    float q[4] = {1, 1, 2, 3};
    st_hit h[1];
    size_t got;
    assert_int_equal(st_search_opt(st, "p", q, 4, 1, 0, NULL, h, &got), 0);
    assert_int_equal(got, 1);
    assert_string_equal(h[0].name, "bulk-1");
    st_metrics m;
    assert_int_equal(st_store_metrics(st, &m), 0);
    assert_true(m.index_memory > st_names_memory(&st_coll_find(st, "p")->names));
    assert_true(st_names_memory(&st_coll_find(st, "p")->names) > n * 8);
    st_names_fill_chunk = 4096;

    /* A damaged slot record is left unnamed by the fill, which goes on:
     * the table fills, and a search drops that hit (as from LMDB; the
     * search does not backfill the k it was asked for). */
    size_t vlen;
    void *val = vec_record_copy(st, "p", "bulk-2", ST_DB_SLOTS, &vlen);
    assert_int_equal(st_store_close(st), 0);
    flip_value(dir, val, vlen);
    free(val);
    st = open_store(dir, &o);
    assert_int_equal(names_check_when_filled(st, "p"), 0);
    float q2[4] = {2, 1, 2, 3};
    st_hit h3[3];
    assert_int_equal(st_search_opt(st, "p", q2, 4, 3, 0, NULL, h3, &got), 0);
    assert_true(got >= 1);
    for (size_t i = 0; i < got; i++)
        assert_string_not_equal(h3[i].name, "bulk-2");
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_text),
        cmocka_unit_test(test_collections),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_name_errors),
        cmocka_unit_test(test_name_rules),
        cmocka_unit_test(test_value_limit),
        cmocka_unit_test(test_check_stale_params),
        cmocka_unit_test(test_batch_keeps_owner),
        cmocka_unit_test(test_listing),
        cmocka_unit_test(test_xattrs),
        cmocka_unit_test(test_search_filter),
        cmocka_unit_test(test_batch_atomic),
        cmocka_unit_test(test_passphrase),
        cmocka_unit_test(test_format_version),
        cmocka_unit_test(test_encryption),
        cmocka_unit_test(test_damage_plain),
        cmocka_unit_test(test_map_full),
        cmocka_unit_test(test_fault_injection),
        cmocka_unit_test(test_fault_put_all_or_nothing),
        cmocka_unit_test(test_busy_and_backup),
        cmocka_unit_test(test_autotune),
        cmocka_unit_test(test_small_churn),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_group_fault),
        cmocka_unit_test(test_query_k_under_churn),
        cmocka_unit_test(test_query_refill),
        cmocka_unit_test(test_snapshot_rebuild),
        cmocka_unit_test(test_reopen_snapshot),
        cmocka_unit_test(test_stale_readers_cleared),
        cmocka_unit_test(test_background_rebuild),
        cmocka_unit_test(test_names),
    };
    /* VECFS_TEST_ONLY=PATTERN runs the tests whose names match (cmocka's
     * wildcards), for working on one. */
    if (getenv("VECFS_TEST_ONLY"))
        cmocka_set_test_filter(getenv("VECFS_TEST_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
