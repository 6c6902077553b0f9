/*
 * fvecs.h — reading and writing the .fvecs / .ivecs files of the ANN
 * benchmark world (TEXMEX format).
 *
 * Layout: the file is a sequence of rows; each row is a little-endian
 * int32 `dim` followed by `dim` little-endian float32 (.fvecs) or int32
 * (.ivecs) values. Every row of a file has the same dim.
 *
 * The readers trust nothing in the file: the size must be a whole number of
 * rows, every row's dim must equal the first one and lie in 1..VF_MAX_DIM,
 * float values must be finite. Any violation is -EINVAL with a one-line
 * explanation (file name, row, what was wrong) in `err`.
 */
#ifndef VECFS_BENCH_FVECS_H
#define VECFS_BENCH_FVECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A row-major matrix read from a file: n rows of dim values. */
typedef struct bench_matrix {
    void *data; /* n * dim floats or int32s, owned; free with bench_matrix_release */
    size_t n;
    size_t dim;
} bench_matrix;

#define BENCH_MATRIX_INIT                                                                          \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Reads the .fvecs file `path` into *out (n x dim float32).
 * On error *out is left empty and err (errlen bytes, may be NULL) holds one
 * line without a trailing newline.
 * Returns 0, -ENOENT/-EACCES/... (cannot open or read: the errno),
 * -EINVAL (malformed: empty, torn row, dims differ, non-finite value),
 * -ENOMEM. */
int bench_fvecs_read(const char *path, bench_matrix *out, char *err, size_t errlen);

/* Reads the .ivecs file `path` into *out (n x dim int32). Same contract as
 * bench_fvecs_read (values are not range-checked here: the caller knows
 * what they index). */
int bench_ivecs_read(const char *path, bench_matrix *out, char *err, size_t errlen);

/* Writes n rows of dim int32 values (row-major `rows`) to `path` as
 * .ivecs, replacing the file. Returns 0, -EINVAL (dim 0 or too large), or
 * the errno of the failed open/write/close; err as above. */
int bench_ivecs_write(const char *path, const int32_t *rows, size_t n, size_t dim, char *err,
                      size_t errlen);

/* Frees m's data and leaves it empty (reusable). NULL is a no-op. */
void bench_matrix_release(bench_matrix *m);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_BENCH_FVECS_H */
