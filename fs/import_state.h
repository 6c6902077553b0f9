/*
 * import_state.h — the parse state (import_state.c) that the parsers of
 * import_parse.c (.fvecs, .npy, the entry points) and import_jsonl.c
 * (.jsonl) fill. Private to those files.
 */
#ifndef VECFS_FS_IMPORT_STATE_H
#define VECFS_FS_IMPORT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "import_parse.h"

typedef struct prow {
    size_t name_off; /* into arena; SIZE_MAX for no name */
    size_t name_len;
    size_t kv_first;
    size_t n_kv;
    size_t text_off;
    size_t text_len;
} prow;

typedef struct pkv {
    size_t key_off;
    size_t val_off;
    size_t val_len;
} pkv;

typedef struct bstate {
    uint32_t dim; /* 0 until the first row fixes it */
    uint32_t expect_dim;
    float *vec; /* rows * dim floats */
    size_t vec_cap;
    prow *rows;
    size_t n_rows;
    size_t rows_cap;
    char *arena;
    size_t arena_len;
    size_t arena_cap;
    pkv *kv;
    size_t n_kv;
    size_t kv_cap;
    char *err;
    size_t errlen;
} bstate;

/* Writes a one-line reason (printf format) for the caller's log and
 * returns rc. */
int rows_fail(bstate *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Makes room for `need` elements of `elem` bytes in *p (capacity *cap).
 * 0 or -ENOMEM. */
int rows_grow(void **p, size_t *cap, size_t need, size_t elem);

/* Appends len bytes and a NUL to the arena; *off_out is where they went.
 * 0 or -ENOMEM. */
int rows_arena_put(bstate *s, const char *bytes, size_t len, size_t *off_out);

/* A new, zeroed row at the end of the table; NULL when out of memory or
 * over FSD_ROWS_MAX rows. */
prow *rows_row_new(bstate *s);

/* Checks a row's dim (what, where: for the message) against the state's
 * and expect_dim, fixing the state's dim at the first row. */
int rows_dim_check(bstate *s, size_t dim, const char *what, size_t where);

/* Parses a whole .jsonl file into s (import_jsonl.c). */
int rows_parse_jsonl(bstate *s, const unsigned char *p, size_t len);

#endif /* VECFS_FS_IMPORT_STATE_H */
