/*
 * originals.c — float32 originals for rerank from a memory-mapped .fvecs
 * file (originals.h). The mapping is read-only and shared by all search
 * threads; get() never copies.
 */
#include "originals.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int bench_originals_map(bench_originals *o, const char *path, size_t n, size_t dim, char *err,
                        size_t errlen)
{
    memset(o, 0, sizeof(*o));
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    struct stat sb;
    size_t row = 4 + dim * sizeof(float);
    if (fstat(fd, &sb) != 0 || (size_t)sb.st_size != n * row) {
        snprintf(err, errlen, "%s: not %zu rows of dim %zu", path, n, dim);
        close(fd);
        return -EINVAL;
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int rc = map == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(-rc));
        return rc;
    }
    o->map = map;
    o->map_len = (size_t)sb.st_size;
    o->n = n;
    o->dim = dim;
    o->row_bytes = row;
    return 0;
}

void bench_originals_rows(bench_originals *o, const float *rows, size_t n, size_t dim)
{
    *o = (bench_originals){.rows = rows, .n = n, .dim = dim, .row_bytes = dim * sizeof(float)};
}

/* vf_vec_source.get: a pointer into the mapping or the rows. */
static const float *originals_get(void *ctx, uint32_t id, float *buf)
{
    const bench_originals *o = ctx;
    (void)buf;
    if (id >= o->n)
        return NULL;
    if (o->map)
        return (const float *)(const void *)(o->map + (size_t)id * o->row_bytes + 4);
    return o->rows + (size_t)id * o->dim;
}

vf_vec_source bench_originals_source(bench_originals *o)
{
    return (vf_vec_source){.get = originals_get, .ctx = o};
}

double bench_originals_bytes_per_vector(const bench_originals *o)
{
    return (double)o->row_bytes;
}

void bench_originals_close(bench_originals *o)
{
    if (o->map)
        munmap((void *)o->map, o->map_len);
    memset(o, 0, sizeof(*o));
}
