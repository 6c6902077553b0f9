/*
 * fuzz_fs_names.c — fuzz target for the name rules (fs/names.c).
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
    int c = fsd_collname_check(p, size);
    int v = fsd_vecname_check(p, size);
    if (c == 0)
        check(v == 0 && size <= FSD_COLLNAME_MAX);
    if (v == 0) {
        check(size >= 1 && size <= FSD_VECNAME_MAX);
        check(!memchr(p, '/', size) && !memchr(p, '\0', size));
        check(!fsd_name_is_reserved(p, size));
    }
    if (size)
        check(fsd_name_stem_len(p, size) <= size);
    return 0;
}
