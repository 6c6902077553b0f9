/*
 * import_parse.h — many vectors in one file: the files written into
 * `<collection>/.import/` (SPEC §3.4) and batched query files named
 * `*.fvecs` / `*.npy` under `.query/` (SPEC §3.3).
 *
 * Formats (chosen by the file name's suffix):
 *   ".fvecs"  per row: int32 LE dim, then dim float32 LE. Every row must
 *             have the same dim (1..FSD_MAX_DIM) and the file must end
 *             exactly at a row boundary.
 *   ".npy"    NumPy format version 1.x, 2.x or 3.x: "\x93NUMPY", major,
 *             minor, header length (u16 LE for 1.x, u32 LE otherwise),
 *             then a Python dict literal with exactly the keys 'descr'
 *             ('<f4'), 'fortran_order' (False) and 'shape' (a 2-tuple of
 *             non-negative integers (rows, dim)), then rows*dim float32 LE.
 *             The data must be exactly rows*dim*4 bytes.
 *   ".jsonl"  one JSON object per line:
 *               {"name": "doc-1", "vector": [0.1, 0.2], "meta": {"k": "v"}}
 *             "name" (a valid vector name, fsd_vecname_check) and "vector"
 *             (a non-empty array of numbers) are required, "meta" is
 *             optional; no other keys. Empty lines (only white space) are
 *             skipped. Meta values: a string is taken as is; any other JSON
 *             value (number, true/false, array, object) is stored as its
 *             compact JSON text (["a","b"] for tags); null is skipped.
 *             Meta keys are 1..FSD_META_KEY_MAX bytes without NUL; values
 *             at most FSD_META_VALUE_MAX bytes.
 *
 * Rows of .fvecs/.npy files are named "<stem>-<row>.f32" with row counted
 * from 0 and stem the file name without its last suffix
 * ("base.fvecs" -> "base-0.f32", "base-1.f32", ...).
 *
 * Every row is validated (dim, finite values, names, duplicate names) before
 * anything is returned, so an import is all-or-nothing: a batch that parses
 * holds only rows the collection can take, except for the collection's own
 * checks (its dim, if expect_dim was 0, and names that already exist).
 *
 * Cost: O(len) time; memory about the size of the floats plus names. The
 * result is one vector block, one string arena and two tables, whatever the
 * row count (jansson allocates while it reads a .jsonl line's name and meta,
 * and frees it before the next line). Measured (-O2, one core): .jsonl of
 * 20k rows x 384-d, 98 MB, in 1.9 s (52 MB/s, strtof-bound); .fvecs of the
 * same rows, 31 MB, in 0.22 s.
 */
#ifndef VECFS_FS_IMPORT_PARSE_H
#define VECFS_FS_IMPORT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "vector_format.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest metadata key: the xattr name is "user." + key. */
#define FSD_META_KEY_MAX (ST_XATTR_NAME_MAX - 5u) /* 5 = strlen("user.") */
/* Largest metadata value (SPEC §3.1: xattr values up to 64 KiB). */
#define FSD_META_VALUE_MAX ST_XATTR_VALUE_MAX
/* Most rows in one file. */
#define FSD_ROWS_MAX 100000000u

typedef enum fsd_rows_format {
    FSD_ROWS_FVECS = 0, /* "*.fvecs" */
    FSD_ROWS_NPY = 1,   /* "*.npy" */
    FSD_ROWS_JSONL = 2, /* "*.jsonl" */
} fsd_rows_format;

/* One row of a parsed batch. Every pointer points into the batch and lives
 * until fsd_rows_free of it. */
typedef struct fsd_row {
    const char *name;   /* NUL-terminated; NULL when parsed without names */
    size_t name_len;    /* bytes of name, without the NUL */
    const float *vec;   /* dim floats inside fsd_rows.vectors */
    const fsd_kv *meta; /* n_meta pairs (jsonl only); not separately owned */
    size_t n_meta;
    /* jsonl only: the row's "vector" array exactly as written, as the byte
     * range [text_off, text_off + text_len) of the data given to
     * fsd_rows_parse. It is valid content for text and .json vector files
     * (fsd_vector_parse reads it back to vec), so the daemon can store it
     * without formatting floats. text_len is 0 for .fvecs/.npy rows. */
    size_t text_off;
    size_t text_len;
} fsd_row;

/* A parsed batch. Read-only for the caller; release with fsd_rows_free. */
typedef struct fsd_rows {
    fsd_rows_format format;
    uint32_t dim;   /* >= 1 */
    size_t n;       /* rows, >= 1 */
    float *vectors; /* n * dim floats, row-major, contiguous */
    fsd_row *rows;  /* n rows, in file order */
    /* private */
    char *arena;
    fsd_kv *kv;
} fsd_rows;

/* The batch format of a file called name (len bytes): 0 and *out, or
 * -EINVAL if its suffix is none of .fvecs, .npy, .jsonl. */
int fsd_rows_format_from_name(const char *name, size_t len, fsd_rows_format *out);

/* Parses a file of rows.
 *   fmt         the format (fsd_rows_format_from_name)
 *   data, len   the file's bytes, not necessarily NUL-terminated; data may
 *               be NULL only if len is 0. Not referenced after the call.
 *   stem        for .fvecs/.npy: the prefix of row names (stem_len bytes,
 *               usually the file name's stem, fsd_name_stem_len), or NULL to
 *               give rows no names (query batches). Ignored for .jsonl.
 *   expect_dim  0 to accept any dim (all rows must still agree), else the
 *               only dim accepted
 *   out         on success the batch, owned by the caller
 *               (fsd_rows_free); NULL on error
 *   err, errlen if err is not NULL, on error a one-line reason such as
 *               "row 17: dim 3, expected 4" is written there (truncated to
 *               errlen, NUL-terminated), for logs.
 * Returns 0, or
 *   -EINVAL        malformed: bad header, truncated row, mixed or wrong
 *                  dim, a value not finite, bad JSON, a missing or bad
 *                  name, a name repeated within the batch, no rows at all
 *   -ENAMETOOLONG  a generated "<stem>-<row>.f32" name over 255 bytes
 *   -EFBIG         dim > FSD_MAX_DIM or more than FSD_ROWS_MAX rows
 *   -E2BIG         a meta value over FSD_META_VALUE_MAX bytes or a meta key
 *                  over FSD_META_KEY_MAX bytes
 *   -ENOMEM */
int fsd_rows_parse(fsd_rows_format fmt, const void *data, size_t len, const char *stem,
                   size_t stem_len, uint32_t expect_dim, fsd_rows **out, char *err, size_t errlen);

/* Frees a batch and everything its rows point to. NULL is a no-op. */
void fsd_rows_free(fsd_rows *b);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_FS_IMPORT_PARSE_H */
