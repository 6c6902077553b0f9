/*
 * names.h — which names the filesystem accepts (SPEC §3 "Names").
 *
 *   collection  [A-Za-z0-9._-]{1,64}, not starting with '.'
 *   vector      1..255 bytes, no '/' and no NUL, not "." or "..", not one
 *               of the reserved names ".config", ".query", ".import".
 *               Other dot-names are ordinary vectors (rsync writes
 *               ".name.XXXXXX" and renames it).
 *
 * All functions are pure and thread-safe. Names are given as pointer +
 * length and need not be NUL-terminated; a NUL inside the length is a bad
 * name, never a terminator.
 */
#ifndef VECFS_FS_NAMES_H
#define VECFS_FS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest collection name in bytes. */
#define FSD_COLLNAME_MAX 64u
/* Longest vector (and query) name in bytes: NAME_MAX. */
#define FSD_VECNAME_MAX 255u

/* Checks a collection name (one path component, without '/').
 * name: len bytes, not necessarily NUL-terminated (NULL only with len 0).
 * Returns 0 if valid, -ENAMETOOLONG if len > FSD_COLLNAME_MAX, -EINVAL
 * otherwise (empty, leading '.', a byte outside [A-Za-z0-9._-]). */
int fsd_collname_check(const char *name, size_t len);

/* Checks a vector file name (one path component).
 * Returns 0 if valid, -ENAMETOOLONG if len > FSD_VECNAME_MAX, -EINVAL if
 * empty, "." or "..", contains '/' or NUL, or is reserved
 * (see fsd_name_is_reserved). */
int fsd_vecname_check(const char *name, size_t len);

/* true if name is one of the collection's reserved entries ".config",
 * ".query", ".import" (exact match of all len bytes). */
bool fsd_name_is_reserved(const char *name, size_t len);

/* The length of name's stem: everything before the last '.' that is not
 * the first byte ("base.fvecs" -> 5, ".hidden" -> 7, "a.b.npy" -> 3,
 * "noext" -> 5). Used to name imported rows "<stem>-<row>.f32". */
size_t fsd_name_stem_len(const char *name, size_t len);

/* true if name ends in suffix (e.g. ".json") and is longer than it.
 * The comparison is exact (case-sensitive). */
bool fsd_name_has_suffix(const char *name, size_t len, const char *suffix);

/* Length (1-4) of the well-formed UTF-8 sequence at p[0..n), or 0 when
 * p[0] starts none (overlong forms, surrogates and code points above
 * U+10FFFF are not well-formed). n must be at least 1. */
size_t fsd_utf8_seq_len(const unsigned char *p, size_t n);

/* true if the n bytes at p are well-formed UTF-8 (SPEC §3.1: metadata
 * values are UTF-8). NUL bytes are allowed; n 0 is valid. */
bool fsd_utf8_valid(const void *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_FS_NAMES_H */
