/*
 * input_rules.c — the one place that says which names and values the
 * store accepts (SPEC §3): collection names, vector names, xattr names and
 * vector values, with their length limits. fs/ checks the same rules
 * through the exported st_*_check functions (store.h).
 *
 * Rules
 *   - Collection name: 1..ST_COLL_NAME_MAX bytes of [A-Za-z0-9._-], not
 *     starting with '.'.
 *   - Vector name: 1..ST_NAME_MAX bytes, no '/' and no NUL, not "." or
 *     "..". ".config", ".query" and ".import" are valid vector names to the
 *     store; fs/ reserves them (st_name_is_reserved).
 *   - Xattr name: 1..ST_XATTR_NAME_MAX bytes (any namespace).
 *   - Vector value: finite, |x| <= ST_VALUE_MAX.
 *
 * Invariants
 *   1. Every collection name is also a valid vector name (a strict subset),
 *      so it is a valid single path component.
 *   2. Every buffer or key that holds a name is sized from these limits;
 *      the _Static_asserts below tie each such constant to them, so a
 *      limit cannot change without the code that depends on it failing to
 *      build.
 *   3. Checks read exactly the bytes they are given, allocate nothing and
 *      keep no state.
 *
 * Errors
 *   A *_check function says whether a name may be created: 0, -EINVAL (not
 *   allowed, or NULL), -ENAMETOOLONG (over the limit; -ERANGE for xattr
 *   names, as setxattr(2) says). The *_arg functions check a NUL-terminated
 *   name handed to a store call: with ST_NAME_FIND (the call looks up an
 *   existing object) a name that no object can have is -ENOENT instead of
 *   -EINVAL, since no such object exists (store.h, Conventions).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "internal.h"

/* Records and keys that carry names (record.c, vec_rec.c, crypto.c). */
_Static_assert(ST_COLL_NAME_MAX <= ST_NAME_MAX, "a collection name is a vector name (invariant 1)");
_Static_assert(ST_COLL_NAME_MAX <= UINT8_MAX, "COLL records store the name length in a u8");
_Static_assert(ST_NAME_MAX <= UINT16_MAX, "VEC and SLOT records store the name length in a u16");
_Static_assert(ST_XATTR_NAME_MAX <= UINT16_MAX, "XATTR records store the name length in a u16");
_Static_assert(ST_XATTR_VALUE_MAX <= UINT32_MAX, "XATTR records store the value length in a u32");
_Static_assert(ST_HASH_LEN <= ST_NAME_MAX, "a name key (HMAC) fits where the name would");
_Static_assert(ST_VEC_KEY_MAX == 4 + ST_NAME_MAX, "VECS key: u32 collection | name key");
_Static_assert(ST_XATTR_KEY_MAX == 8 + ST_XATTR_NAME_MAX, "XATTRS key: u32 coll | u32 id | key");
_Static_assert(sizeof(((st_coll_rec *)0)->name) == ST_COLL_NAME_MAX + 1, "COLL record name");
_Static_assert(sizeof(((st_vec_rec *)0)->name) == ST_NAME_MAX + 1, "VEC record name");
_Static_assert(sizeof(((st_hit *)0)->name) == ST_NAME_MAX + 1, "search hit name");
_Static_assert(sizeof(((st_coll *)0)->name) == ST_COLL_NAME_MAX + 1, "collection object name");

/* A byte a collection name may hold. */
static bool coll_byte_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int st_coll_name_check(const char *name, size_t len)
{
    if (!name || len == 0)
        return -EINVAL;
    if (len > ST_COLL_NAME_MAX)
        return -ENAMETOOLONG;
    if (name[0] == '.')
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!coll_byte_ok((unsigned char)name[i]))
            return -EINVAL;
    return 0;
}

int st_vec_name_check(const char *name, size_t len)
{
    if (!name || len == 0)
        return -EINVAL;
    if (len > ST_NAME_MAX)
        return -ENAMETOOLONG;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return -EINVAL;
    if (memchr(name, '/', len) || memchr(name, '\0', len))
        return -EINVAL;
    return 0;
}

bool st_name_is_reserved(const char *name, size_t len)
{
    static const char *const reserved[] = {".config", ".query", ".import"};
    if (!name)
        return false;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        size_t rl = strlen(reserved[i]);
        if (len == rl && memcmp(name, reserved[i], rl) == 0)
            return true;
    }
    return false;
}

int st_xattr_name_check(const char *xname, size_t len)
{
    if (!xname)
        return -EINVAL;
    if (len == 0 || len > ST_XATTR_NAME_MAX || memchr(xname, '\0', len))
        return -ERANGE;
    return 0;
}

bool st_values_ok(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(v[i]) <= ST_VALUE_MAX)) /* NaN fails too */
            return false;
    return true;
}

/* The contract of a call that looks up an existing object: a name that no
 * object can have names nothing. NULL stays -EINVAL (a bad argument). */
static int for_use(const char *name, int rc, st_name_use use)
{
    return use == ST_NAME_FIND && rc == -EINVAL && name ? -ENOENT : rc;
}

int st_coll_name_arg(const char *name, st_name_use use)
{
    size_t n = name ? strnlen(name, ST_COLL_NAME_MAX + 1) : 0;
    return for_use(name, st_coll_name_check(name, n), use);
}

int st_vec_name_arg(const char *name, st_name_use use, size_t *len_out)
{
    size_t n = name ? strnlen(name, ST_NAME_MAX + 1) : 0;
    int rc = for_use(name, st_vec_name_check(name, n), use);
    if (rc == 0 && len_out)
        *len_out = n;
    return rc;
}

int st_xattr_name_arg(const char *xname, size_t *len_out)
{
    size_t n = xname ? strnlen(xname, ST_XATTR_NAME_MAX + 1) : 0;
    int rc = st_xattr_name_check(xname, n);
    if (rc == 0 && len_out)
        *len_out = n;
    return rc;
}
