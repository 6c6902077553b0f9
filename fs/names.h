/*
 * names.h — names as the tree sees them (SPEC §3 "Names"). The rules of
 * valid collection and vector names and their limits are the store's
 * (store.h: st_coll_name_check, st_vec_name_check, ST_COLL_NAME_MAX,
 * ST_NAME_MAX); the tree adds that ".config", ".query" and ".import" inside
 * a collection are not vector files (st_name_is_reserved). Other dot-names
 * are ordinary vectors (rsync writes ".name.XXXXXX" and renames it).
 *
 * All functions are pure and thread-safe. Names are given as pointer +
 * length and need not be NUL-terminated; a NUL inside the length is a bad
 * name, never a terminator.
 */
#ifndef VECFS_FS_NAMES_H
#define VECFS_FS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks a vector file name (one path component): a valid store vector
 * name (st_vec_name_check) that is not reserved.
 * Returns 0 if valid, -ENAMETOOLONG if len > ST_NAME_MAX, -EINVAL if
 * empty, "." or "..", contains '/' or NUL, or is reserved. */
int fsd_vecname_check(const char *name, size_t len);

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
