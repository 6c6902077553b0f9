/*
 * fvecs.c — validated readers and a writer for .fvecs / .ivecs files.
 *
 * The file is read in one pass, row by row, straight into the output
 * matrix (no second copy of a 100+ MB base set). Invariants:
 *   1. A returned matrix has n >= 1 rows and 1 <= dim <= VF_MAX_DIM, and
 *      n * (4 + 4 * dim) equals the file size (checked without overflow).
 *   2. Every row's dim equals row 0's; every float is finite.
 *   3. On error nothing is returned: *out stays empty, err says why.
 * Values are decoded as little-endian whatever the host's byte order.
 */
#include "fvecs.h"

#include "engine.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Converts a row of dim little-endian words in place to host order. */
static void row_to_host(uint32_t *row, size_t dim)
{
    for (size_t j = 0; j < dim; j++) {
        unsigned char b[4];
        memcpy(b, &row[j], 4);
        row[j] = load_le32(b);
    }
}

/* Reads `path` as rows of 4-byte values; is_float turns on the finiteness
 * check. The shared body of both readers. */
static int vecs_read(const char *path, bool is_float, bench_matrix *out, char *err, size_t errlen)
{
    FILE *f = NULL;
    uint32_t *data = NULL;
    unsigned char head[4];
    struct stat st;
    size_t dim, row_bytes, n;
    int rc;

    out->data = NULL;
    out->n = 0;
    out->dim = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = -errno;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fileno(f), &st) != 0) {
        rc = -errno;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        set_err(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size < 4) {
        rc = -EINVAL;
        set_err(err, errlen, "%s: empty or shorter than one row header (%lld bytes)", path,
                (long long)st.st_size);
        goto out;
    }
    if (fread(head, 1, 4, f) != 4) {
        rc = ferror(f) ? -EIO : -EINVAL;
        set_err(err, errlen, "%s: cannot read the first row header", path);
        goto out;
    }
    dim = load_le32(head);
    if (dim == 0 || dim > VF_MAX_DIM) {
        rc = -EINVAL;
        set_err(err, errlen, "%s: row 0 has dim %zu (must be 1..%u): not a %s file", path, dim,
                VF_MAX_DIM, is_float ? ".fvecs" : ".ivecs");
        goto out;
    }
    row_bytes = 4 + 4 * dim;
    if ((uintmax_t)st.st_size % row_bytes != 0) {
        rc = -EINVAL;
        set_err(err, errlen,
                "%s: size %lld is not a multiple of the row size %zu (dim %zu): torn or not a "
                "%s file",
                path, (long long)st.st_size, row_bytes, dim, is_float ? ".fvecs" : ".ivecs");
        goto out;
    }
    if ((uintmax_t)st.st_size / row_bytes > SIZE_MAX / (4 * dim)) {
        rc = -ENOMEM;
        set_err(err, errlen, "%s: too large for this address space", path);
        goto out;
    }
    n = (size_t)((uintmax_t)st.st_size / row_bytes);
    data = malloc(n * dim * 4);
    if (data == NULL) {
        rc = -ENOMEM;
        set_err(err, errlen, "%s: out of memory for %zu x %zu values", path, n, dim);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t *row = data + i * dim;
        if (i > 0) {
            if (fread(head, 1, 4, f) != 4) {
                rc = ferror(f) ? -EIO : -EINVAL;
                set_err(err, errlen, "%s: short read at row %zu (file changed while read?)", path,
                        i);
                goto out;
            }
            if (load_le32(head) != dim) {
                rc = -EINVAL;
                set_err(err, errlen, "%s: row %zu has dim %u, row 0 has %zu", path, i,
                        load_le32(head), dim);
                goto out;
            }
        }
        if (fread(row, 4, dim, f) != dim) {
            rc = ferror(f) ? -EIO : -EINVAL;
            set_err(err, errlen, "%s: short read in row %zu (file changed while read?)", path, i);
            goto out;
        }
        row_to_host(row, dim);
        if (is_float) {
            for (size_t j = 0; j < dim; j++) {
                float v;
                memcpy(&v, &row[j], 4);
                if (!isfinite(v)) {
                    rc = -EINVAL;
                    set_err(err, errlen, "%s: row %zu value %zu is not finite", path, i, j);
                    goto out;
                }
            }
        }
    }
    out->data = data;
    out->n = n;
    out->dim = dim;
    data = NULL;
    rc = 0;
out:
    free(data);
    if (f != NULL)
        fclose(f);
    return rc;
}

int bench_fvecs_read(const char *path, bench_matrix *out, char *err, size_t errlen)
{
    _Static_assert(sizeof(float) == 4, "fvecs holds 4-byte IEEE floats");
    return vecs_read(path, true, out, err, errlen);
}

int bench_ivecs_read(const char *path, bench_matrix *out, char *err, size_t errlen)
{
    return vecs_read(path, false, out, err, errlen);
}

int bench_ivecs_write(const char *path, const int32_t *rows, size_t n, size_t dim, char *err,
                      size_t errlen)
{
    FILE *f = NULL;
    unsigned char *buf = NULL;
    int rc;

    if (dim == 0 || dim > VF_MAX_DIM) {
        set_err(err, errlen, "%s: cannot write rows of dim %zu", path, dim);
        return -EINVAL;
    }
    buf = malloc(4 + 4 * dim);
    if (buf == NULL) {
        rc = -ENOMEM;
        set_err(err, errlen, "%s: out of memory", path);
        goto out;
    }
    f = fopen(path, "wb");
    if (f == NULL) {
        rc = -errno;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        store_le32(buf, (uint32_t)dim);
        for (size_t j = 0; j < dim; j++)
            store_le32(buf + 4 + 4 * j, (uint32_t)rows[i * dim + j]);
        if (fwrite(buf, 1, 4 + 4 * dim, f) != 4 + 4 * dim) {
            rc = -errno;
            if (rc == 0)
                rc = -EIO;
            set_err(err, errlen, "%s: %s", path, strerror(-rc));
            goto out;
        }
    }
    rc = 0;
out:
    if (f != NULL && fclose(f) != 0 && rc == 0) {
        rc = -errno;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
    }
    free(buf);
    return rc;
}

void bench_matrix_release(bench_matrix *m)
{
    if (m == NULL)
        return;
    free(m->data);
    m->data = NULL;
    m->n = 0;
    m->dim = 0;
}
