/*
 * test_rados_cache_id.c — whose cache a CACHEDIR is (store/rados_cache_id.c),
 * without a cluster: the file's text round-trips and any changed byte
 * fails its CRC; st_cache_id_judge keeps an empty cache, a cache of this
 * log closed cleanly or opened under this boot, and refuses one with no
 * file, a damaged file, another identity, or another boot without a clean
 * close; st_cache_id_write replaces the file whole.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

static const char IDENT[] = "fsid 0b6c1d9e-0d52-4a8e-9a3e-7f3f3c1b2a10\npool 2 vecfs\n"
                            "namespace \nformat 1\n";

static st_cache_id id_of(const char *ident, const char *boot)
{
    st_cache_id id = {0};
    id.ident_len = strlen(ident);
    memcpy(id.ident, ident, id.ident_len);
    snprintf(id.boot, sizeof(id.boot), "%s", boot);
    return id;
}

static void test_round_trip(void **state)
{
    (void)state;
    st_cache_id id = id_of(IDENT, "4f1c2b3a-5d6e-4f70-8192-a3b4c5d6e7f8"), back;
    id.closed = true;
    char text[ST_CACHE_ID_MAX];
    size_t len;
    assert_int_equal(st_cache_id_format(&id, text, sizeof(text), &len), 0);
    assert_int_equal(st_cache_id_parse(text, len, &back), 0);
    assert_int_equal(back.ident_len, id.ident_len);
    assert_memory_equal(back.ident, id.ident, id.ident_len);
    assert_string_equal(back.boot, id.boot);
    assert_true(back.closed);
    /* Every flipped byte, and every cut, is refused. */
    for (size_t i = 0; i < len; i++) {
        text[i] ^= 0x20;
        assert_int_equal(st_cache_id_parse(text, len, &back), -EBADMSG);
        text[i] ^= 0x20;
        assert_int_equal(st_cache_id_parse(text, i, &back), -EBADMSG);
    }
    assert_int_equal(st_cache_id_format(&id, text, 40, &len), -ENAMETOOLONG);
}

/* A fresh cache directory holding a data.mdb (what judge looks for). */
static void cache_make(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/vecfs-cache-id-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static void cache_remove(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/" ST_CACHE_ID_FILE, dir);
    unlink(path);
    assert_int_equal(rmdir(dir), 0); /* no temporary file left */
}

static void test_judge(void **state)
{
    (void)state;
    char dir[64], why[512], path[512];
    cache_make(dir, sizeof(dir));
    st_cache_id now = id_of(IDENT, "boot-now");
    /* A data.mdb without the file: refused. */
    assert_int_equal(st_cache_id_judge(dir, &now, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "no readable"));
    /* Opened under this boot, not closed (a process crash): kept. */
    assert_int_equal(st_cache_id_write(dir, &now, false), 0);
    assert_int_equal(st_cache_id_judge(dir, &now, why, sizeof(why)), 0);
    /* The same, seen after a reboot: refused. */
    st_cache_id later = id_of(IDENT, "boot-later");
    assert_int_equal(st_cache_id_judge(dir, &later, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "not closed cleanly"));
    /* Closed cleanly, then a reboot: kept. */
    assert_int_equal(st_cache_id_write(dir, &now, true), 0);
    assert_int_equal(st_cache_id_judge(dir, &later, why, sizeof(why)), 0);
    /* Another namespace: refused, closed or not. */
    st_cache_id other = id_of("fsid 0b6c1d9e-0d52-4a8e-9a3e-7f3f3c1b2a10\npool 2 vecfs\n"
                              "namespace other\nformat 1\n",
                              "boot-now");
    assert_int_equal(st_cache_id_judge(dir, &other, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "another cluster, pool, namespace"));
    /* A damaged file: refused. */
    snprintf(path, sizeof(path), "%s/" ST_CACHE_ID_FILE, dir);
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    fputc('X', f);
    fclose(f);
    assert_int_equal(st_cache_id_judge(dir, &now, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "damaged"));
    /* Without data.mdb there is nothing to judge. */
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    assert_int_equal(st_cache_id_judge(dir, &other, why, sizeof(why)), 0);
    cache_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_judge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
