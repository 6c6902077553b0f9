/*
 * fuzz_fs_names.c — fuzz target for the name rules (store/input_rules.c
 * through fs/names.c).
 *
 * Checks the relations names.h promises: every valid collection name is a
 * valid vector name; a valid vector name has no '/' or NUL and is not
 * reserved; the stem is never longer than the name.
 */
#include <stdint.h>
#include <string.h>

#include "names.h"

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    int c = st_coll_name_check(p, size);
    int v = fsd_vecname_check(p, size);
    if (c == 0)
        check(v == 0 && size <= ST_COLL_NAME_MAX);
    if (v == 0) {
        check(size >= 1 && size <= ST_NAME_MAX);
        check(!memchr(p, '/', size) && !memchr(p, '\0', size));
        check(!st_name_is_reserved(p, size));
    }
    if (size)
        check(fsd_name_stem_len(p, size) <= size);
    return 0;
}
