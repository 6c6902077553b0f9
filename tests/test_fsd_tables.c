/*
 * test_fsd_tables.c — the daemon's in-memory tables: the inode table
 * (fs/inode.c) and the query-file table (fs/query.c). No mount needed;
 * the integration tests cover the rest.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include <cmocka.h>

#include "inode.h"
#include "names.h"
#include "query_table.h"

static void test_inode_link_forget(void **state)
{
    (void)state;
    fsd_inodes *t;
    assert_int_equal(fsd_inodes_create(&t), 0);
    assert_int_equal(fsd_inodes_check(t), 0);
    fuse_ino_t c1, c1b, v1;
    assert_int_equal(fsd_inodes_link(t, FSD_INO_ROOT, "c1", FSD_K_COLL, &c1), 0);
    assert_true(c1 >= FSD_INO_FIRST_DYNAMIC);
    assert_int_equal(fsd_inodes_link(t, FSD_INO_ROOT, "c1", FSD_K_COLL, &c1b), 0);
    assert_int_equal(c1, c1b);
    assert_int_equal(fsd_inodes_link(t, c1, "v1.f32", FSD_K_VEC, &v1), 0);
    fsd_ref r;
    assert_int_equal(fsd_inodes_ref(t, v1, &r), 0);
    assert_string_equal(r.coll, "c1");
    assert_string_equal(r.name, "v1.f32");
    assert_int_equal(r.coll_ino, c1);
    assert_true(r.linked);
    /* Renaming the collection renames every path below it. */
    assert_int_equal(fsd_inodes_rename(t, FSD_INO_ROOT, "c1", FSD_INO_ROOT, "c2"), 0);
    assert_int_equal(fsd_inodes_ref(t, v1, &r), 0);
    assert_string_equal(r.coll, "c2");
    assert_int_equal(fsd_inodes_find(t, FSD_INO_ROOT, "c1"), 0);
    assert_int_equal(fsd_inodes_find(t, FSD_INO_ROOT, "c2"), c1);
    /* Forget drops the node only after every lookup and pin. */
    assert_int_equal(fsd_inodes_pin(t, v1), 0);
    fsd_inodes_forget(t, v1, 1);
    assert_int_equal(fsd_inodes_ref(t, v1, &r), 0);
    fsd_inodes_unpin(t, v1);
    assert_int_equal(fsd_inodes_ref(t, v1, &r), -ENOENT);
    /* Fixed nodes are never forgotten. */
    fsd_inodes_forget(t, FSD_INO_ROOT, 1000);
    assert_int_equal(fsd_inodes_ref(t, FSD_INO_ROOT, &r), 0);
    assert_int_equal(fsd_inodes_check(t), 0);
    fsd_inodes_free(t);
}

static void test_inode_rename_over_and_unlink(void **state)
{
    (void)state;
    fsd_inodes *t;
    assert_int_equal(fsd_inodes_create(&t), 0);
    fuse_ino_t c, a, b, a2;
    assert_int_equal(fsd_inodes_link(t, FSD_INO_ROOT, "c", FSD_K_COLL, &c), 0);
    assert_int_equal(fsd_inodes_link(t, c, "a", FSD_K_VEC, &a), 0);
    assert_int_equal(fsd_inodes_link(t, c, "b", FSD_K_VEC, &b), 0);
    assert_int_equal(fsd_inodes_rename(t, c, "a", c, "b"), 0);
    assert_int_equal(fsd_inodes_find(t, c, "b"), a);
    fsd_ref r;
    /* b was renamed over: still known by number, no longer linked. */
    assert_int_equal(fsd_inodes_ref(t, b, &r), 0);
    assert_false(r.linked);
    fsd_inodes_unlink(t, c, "b");
    assert_int_equal(fsd_inodes_find(t, c, "b"), 0);
    /* A new node for a reused name gets a new number. */
    assert_int_equal(fsd_inodes_link(t, c, "a", FSD_K_VEC, &a2), 0);
    assert_true(a2 != a && a2 != b);
    assert_int_equal(fsd_inodes_check(t), 0);
    /* Many nodes force resizes; the invariants hold throughout. */
    for (int i = 0; i < 5000; i++) {
        char name[32];
        fuse_ino_t x;
        snprintf(name, sizeof name, "v%d", i);
        assert_int_equal(fsd_inodes_link(t, c, name, FSD_K_VEC, &x), 0);
    }
    assert_int_equal(fsd_inodes_check(t), 0);
    assert_true(fsd_inodes_count(t) > 5000);
    fsd_inodes_free(t);
}

static void test_query_table(void **state)
{
    (void)state;
    fsd_queries *q;
    assert_int_equal(fsd_queries_create(600, &q), 0);
    fsd_qinfo info;
    assert_int_equal(fsd_queries_get(q, "c", 1000, "q1", &info), -ENOENT);
    assert_int_equal(fsd_queries_touch(q, "c", 1000, "q1", true), 0);
    assert_int_equal(fsd_queries_get(q, "c", 1000, "q1", &info), 0);
    assert_null(info.text);
    fsd_qinfo_release(&info);
    /* Private per uid. */
    assert_int_equal(fsd_queries_get(q, "c", 1001, "q1", &info), -ENOENT);
    fsd_qtext *t = fsd_qtext_new("k = 3\n1 2 3\n", 12);
    assert_non_null(t);
    assert_int_equal(fsd_queries_put(q, "c", 1000, "q1", t, 0), 0);
    fsd_qtext_unref(t);
    assert_int_equal(fsd_queries_get(q, "c", 1000, "q1", &info), 0);
    assert_non_null(info.text);
    assert_int_equal(info.text->len, 12);
    assert_memory_equal(info.text->data, "k = 3\n1 2 3\n", 12);
    fsd_qinfo_release(&info);
    /* Batch parameters through xattrs. */
    assert_int_equal(fsd_queries_xattr_set(q, "c", 1000, "q1", "user.k", "5\n", 2, 0), 0);
    assert_int_equal(fsd_queries_xattr_set(q, "c", 1000, "q1", "user.k", "x", 1, 0), -EINVAL);
    assert_int_equal(
        fsd_queries_xattr_set(q, "c", 1000, "q1", "user.filter", "a=b", 3, XATTR_REPLACE),
        -ENODATA);
    assert_int_equal(fsd_queries_xattr_set(q, "c", 1000, "q1", "user.filter", "a=b", 3, 0), 0);
    assert_int_equal(fsd_queries_get(q, "c", 1000, "q1", &info), 0);
    assert_int_equal(info.k, 5);
    assert_string_equal(info.filter, "a=b");
    fsd_qinfo_release(&info);
    char list[64];
    int n = fsd_queries_xattr_list(q, "c", 1000, "q1", list, sizeof list);
    assert_int_equal(n, (int)(strlen("user.k") + 1 + strlen("user.filter") + 1));
    assert_int_equal(fsd_queries_xattr_remove(q, "c", 1000, "q1", "user.k"), 0);
    assert_int_equal(fsd_queries_xattr_remove(q, "c", 1000, "q1", "user.k"), -ENODATA);
    /* Rename, drop by collection. */
    assert_int_equal(fsd_queries_rename(q, "c", 1000, "q1", "q2"), 0);
    assert_int_equal(fsd_queries_get(q, "c", 1000, "q1", &info), -ENOENT);
    assert_int_equal(fsd_queries_touch(q, "d", 1000, "q1", false), 0);
    assert_int_equal(fsd_queries_count(q), 2);
    fsd_queries_drop_collection(q, "c");
    assert_int_equal(fsd_queries_count(q), 1);
    assert_int_equal(fsd_queries_remove(q, "d", 1000, "q1"), 0);
    assert_int_equal(fsd_queries_count(q), 0);
    fsd_queries_free(q);
}

/* The memory budget of query files: per uid, total, and texts of
 * entries charged in place of the text they replace. */
static void test_query_budget(void **state)
{
    (void)state;
    fsd_queries *q = NULL;
    assert_int_equal(fsd_queries_create(600, &q), 0);
    assert_int_equal(fsd_queries_charge(q, 1, FSD_QUERY_UID_BYTES_MAX), 0);
    assert_int_equal(fsd_queries_charge(q, 1, 1), -EDQUOT);
    assert_int_equal(fsd_queries_charge(q, 2, FSD_QUERY_UID_BYTES_MAX), 0);
    assert_int_equal(fsd_queries_charge(q, 3, FSD_QUERY_UID_BYTES_MAX), 0);
    assert_int_equal(fsd_queries_charge(q, 4, FSD_QUERY_UID_BYTES_MAX), 0);
    assert_int_equal(fsd_queries_charge(q, 5, 1), -ENOSPC);
    assert_int_equal(fsd_queries_bytes(q), FSD_QUERY_BYTES_MAX);
    for (uid_t u = 1; u <= 4; u++)
        fsd_queries_uncharge(q, u, FSD_QUERY_UID_BYTES_MAX);
    assert_int_equal(fsd_queries_bytes(q), 0);

    fsd_qtext *t = fsd_qtext_new("1 2 3", 5);
    assert_int_equal(fsd_queries_put(q, "c", 7, "n", t, 0), 0);
    assert_int_equal(fsd_queries_bytes(q), 5);
    fsd_qtext_unref(t);
    t = fsd_qtext_new("1 2", 3);
    assert_int_equal(fsd_queries_put(q, "c", 7, "n", t, 0), 0); /* replaces */
    assert_int_equal(fsd_queries_bytes(q), 3);
    /* A put that does not fit leaves the entry and the charge as they were. */
    assert_int_equal(fsd_queries_charge(q, 7, FSD_QUERY_UID_BYTES_MAX - 3), 0);
    fsd_qtext *t2 = fsd_qtext_new("1 2 3 4", 7);
    assert_int_equal(fsd_queries_put(q, "c", 7, "n", t2, 0), -EDQUOT);
    fsd_qinfo info;
    assert_int_equal(fsd_queries_get(q, "c", 7, "n", &info), 0);
    assert_int_equal(info.text->len, 3);
    fsd_qinfo_release(&info);
    fsd_queries_uncharge(q, 7, FSD_QUERY_UID_BYTES_MAX - 3);
    assert_int_equal(fsd_queries_touch(q, "c", 7, "n", true), 0); /* truncate gives back */
    assert_int_equal(fsd_queries_bytes(q), 0);
    assert_int_equal(fsd_queries_put(q, "c", 7, "n", t2, 0), 0);
    fsd_queries_drop_collection(q, "c");
    assert_int_equal(fsd_queries_bytes(q), 0);
    fsd_qtext_unref(t);
    fsd_qtext_unref(t2);
    fsd_queries_free(q);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(fsd_utf8_valid("", 0));
    assert_true(fsd_utf8_valid("plain", 5));
    assert_true(fsd_utf8_valid("h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80", 15));
    assert_true(fsd_utf8_valid("a\0b", 3));
    assert_false(fsd_utf8_valid("\xff", 1));
    assert_false(fsd_utf8_valid("\xc3", 1));             /* truncated */
    assert_false(fsd_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(fsd_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(fsd_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(fsd_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(fsd_utf8_valid("ok\x80", 3));           /* lone continuation */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inode_link_forget),
        cmocka_unit_test(test_inode_rename_over_and_unlink),
        cmocka_unit_test(test_query_table),
        cmocka_unit_test(test_query_budget),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
