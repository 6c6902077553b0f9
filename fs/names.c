/*
 * names.c — name rules of SPEC §3 (see names.h).
 *
 * Invariants
 *   1. Every function reads exactly the len bytes it is given and nothing
 *      past them; a NUL inside them is data (and makes a name invalid).
 *   2. Collection names are a strict subset of vector names, so a name
 *      valid as a collection is also a valid single path component.
 *   3. No function allocates or keeps state.
 */
#include "names.h"

#include <stdint.h>

#include <errno.h>
#include <string.h>

/* true for the bytes a collection name may hold. */
static bool coll_byte_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int fsd_collname_check(const char *name, size_t len)
{
    if (len == 0 || !name)
        return -EINVAL;
    if (len > FSD_COLLNAME_MAX)
        return -ENAMETOOLONG;
    if (name[0] == '.')
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!coll_byte_ok((unsigned char)name[i]))
            return -EINVAL;
    return 0;
}

bool fsd_name_is_reserved(const char *name, size_t len)
{
    static const char *const reserved[] = {".config", ".query", ".import"};
    if (!name)
        return false;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        size_t rl = strlen(reserved[i]);
        if (len == rl && memcmp(name, reserved[i], rl) == 0)
            return true;
    }
    return false;
}

int fsd_vecname_check(const char *name, size_t len)
{
    if (len == 0 || !name)
        return -EINVAL;
    if (len > FSD_VECNAME_MAX)
        return -ENAMETOOLONG;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return -EINVAL;
    if (memchr(name, '/', len) || memchr(name, '\0', len))
        return -EINVAL;
    if (fsd_name_is_reserved(name, len))
        return -EINVAL;
    return 0;
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
