/*
 * names.c — what the tree does with names (see names.h). Which names are
 * valid is said once, in store/input_rules.c; this file only adds the
 * tree's view (reserved entries are not vector files) and the text helpers
 * the parsers share (stems, suffixes, UTF-8).
 *
 * Invariants
 *   1. Every function reads exactly the len bytes it is given and nothing
 *      past them; a NUL inside them is data (and makes a name invalid).
 *   2. No function allocates or keeps state.
 */
#include "names.h"

#include <stdint.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

_Static_assert(ST_NAME_MAX <= NAME_MAX, "a vector name is one component the kernel passes");

int fsd_vecname_check(const char *name, size_t len)
{
    int rc = st_vec_name_check(name, len);
    if (rc == 0 && st_name_is_reserved(name, len))
        return -EINVAL;
    return rc;
}

size_t fsd_name_stem_len(const char *name, size_t len)
{
    for (size_t i = len; i > 1; i--)
        if (name[i - 1] == '.')
            return i - 1;
    return len;
}

bool fsd_name_has_suffix(const char *name, size_t len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return name && len > sl && memcmp(name + len - sl, suffix, sl) == 0;
}

size_t fsd_utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t need;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return need;
}

bool fsd_utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n;) {
        size_t u = fsd_utf8_seq_len(s + i, n - i);
        if (u == 0)
            return false;
        i += u;
    }
    return true;
}
