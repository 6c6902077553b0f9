/*
 * vecfs-bench-kernels — nanoseconds per call of every distance kernel of
 * every kernel table this CPU runs: float32 (l2sq, dot) against int8 codes
 * (l2sq_u8, dot_u8), at a few dimensions.
 *
 * Usage: vecfs-bench-kernels [--dims 100,384,784] [--ms N] [--json OUT.json]
 *
 * Each cell calls one kernel over pairs drawn from a pool of POOL vectors
 * (small enough to stay in L1 at dim 784, so the figure is the kernel's
 * arithmetic, not memory) in batches for at least --ms milliseconds and
 * reports the fastest batch per call. The results of the calls are summed
 * into a volatile so that none is dropped.
 * A figure, not a test: nothing here asserts a speed.
 *
 * Bad arguments: one line on stderr and exit status 2.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "engine.h"

#define PROG "vecfs-bench-kernels"
#define POOL 8
#define MAX_DIMS 16
#define BATCH 4096

typedef struct opts {
    size_t dims[MAX_DIMS];
    size_t ndims;
    double min_seconds;
    const char *json;
} opts;

/* One table at one dim: ns per call of each kernel. */
typedef struct cell {
    const vf_kernels *k;
    size_t dim;
    double ns[4]; /* l2sq, dot, l2sq_u8, dot_u8 */
} cell;

static volatile double sink;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(const char *msg)
{
    fprintf(stderr, PROG ": %s\n", msg);
    fprintf(stderr, "usage: " PROG " [--dims 100,384,784] [--ms N] [--json OUT.json]\n");
    return 2;
}

static int parse_dims(const char *s, opts *o)
{
    o->ndims = 0;
    while (*s) {
        char *end;
        errno = 0;
        unsigned long d = strtoul(s, &end, 10);
        if (end == s || errno != 0 || d == 0 || d > VF_MAX_DIM || o->ndims == MAX_DIMS ||
            (*end != ',' && *end != '\0'))
            return -EINVAL;
        o->dims[o->ndims++] = (size_t)d;
        s = *end == ',' ? end + 1 : end;
        if (*end == ',' && *s == '\0')
            return -EINVAL;
    }
    return o->ndims > 0 ? 0 : -EINVAL;
}

static int parse_args(int argc, char **argv, opts *o)
{
    static const size_t default_dims[] = {100, 384, 784};
    memcpy(o->dims, default_dims, sizeof(default_dims));
    o->ndims = 3;
    o->min_seconds = 0.1;
    o->json = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return usage(strncmp(a, "--", 2) == 0 ? "option needs a value" : "unexpected argument");
        const char *v = argv[++i];
        if (strcmp(a, "--dims") == 0) {
            if (parse_dims(v, o) != 0)
                return usage("--dims: want a list of dimensions 1..65536, e.g. 100,384,784");
        } else if (strcmp(a, "--ms") == 0) {
            char *end;
            long ms = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || ms < 1 || ms > 60000)
                return usage("--ms: want 1..60000");
            o->min_seconds = (double)ms / 1000.0;
        } else if (strcmp(a, "--json") == 0) {
            o->json = v;
        } else {
            return usage("unknown option");
        }
    }
    return 0;
}

/* ns per call of kernel `which` of k over the pools: the fastest of
 * batches of BATCH calls run for at least min_seconds in all. The fastest
 * batch is the one no other process interrupted, which on a shared machine
 * is the kernel's own cost; a mean would add the neighbours' load. */
static double time_kernel(const vf_kernels *k, int which, const float *f, const uint8_t *c,
                          size_t dim, double min_seconds)
{
    double acc = 0.0, best = -1.0;
    double start = now_seconds(), t;
    do {
        double t0 = now_seconds();
        for (size_t n = 0; n < BATCH; n++) {
            size_t x = n % POOL, y = (n * 3 + 1) % POOL;
            switch (which) {
            case 0:
                acc += k->l2sq(f + x * dim, f + y * dim, dim);
                break;
            case 1:
                acc += k->dot(f + x * dim, f + y * dim, dim);
                break;
            case 2:
                acc += k->l2sq_u8(c + x * dim, c + y * dim, dim);
                break;
            default:
                acc += k->dot_u8(c + x * dim, c + y * dim, dim);
                break;
            }
        }
        t = now_seconds();
        if (best < 0.0 || t - t0 < best)
            best = t - t0;
    } while (t - start < min_seconds);
    sink += acc;
    return best * 1e9 / (double)BATCH;
}

static int write_json(const opts *o, const cell *cells, size_t n)
{
    json_t *rows = json_array();
    int rc = -ENOMEM;
    if (rows == NULL)
        return rc;
    for (size_t i = 0; i < n; i++) {
        json_t *r =
            json_pack("{s:s,s:I,s:f,s:f,s:f,s:f}", "kernel", cells[i].k->name, "dim",
                      (json_int_t)cells[i].dim, "l2sq_ns", cells[i].ns[0], "dot_ns", cells[i].ns[1],
                      "l2sq_u8_ns", cells[i].ns[2], "dot_u8_ns", cells[i].ns[3]);
        if (r == NULL || json_array_append_new(rows, r) != 0)
            goto out;
    }
    json_t *root = json_pack("{s:s,s:O}", "best", vf_kernels_best()->name, "results", rows);
    if (root == NULL)
        goto out;
    rc = json_dump_file(root, o->json, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) == 0 ? 0 : -EIO;
    if (rc != 0)
        fprintf(stderr, PROG ": --json: cannot write %s\n", o->json);
    json_decref(root);
out:
    json_decref(rows);
    return rc;
}

int main(int argc, char **argv)
{
    opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    size_t max_dim = 0;
    for (size_t i = 0; i < o.ndims; i++)
        max_dim = o.dims[i] > max_dim ? o.dims[i] : max_dim;
    float *f = malloc(POOL * max_dim * sizeof(*f));
    uint8_t *c = malloc(POOL * max_dim);
    cell *cells = calloc(VF_ISA_COUNT * o.ndims, sizeof(*cells));
    if (f == NULL || c == NULL || cells == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 1;
        goto out;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < POOL * max_dim; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        f[i] = (float)(s >> 40) / (float)(1u << 24) - 0.5f;
        c[i] = (uint8_t)(s >> 56);
    }
    printf("ns per call (fastest batch of %d calls in >= %.0f ms per cell); best table: %s\n",
           BATCH, o.min_seconds * 1e3, vf_kernels_best()->name);
    printf("%-12s %6s %10s %10s %10s %10s %9s\n", "kernel", "dim", "l2sq", "dot", "l2sq_u8",
           "dot_u8", "f32/u8 l2");
    size_t n = 0;
    for (int isa = 0; isa < VF_ISA_COUNT; isa++) {
        const vf_kernels *k = vf_kernels_for((vf_isa)isa);
        if (k == NULL)
            continue;
        for (size_t d = 0; d < o.ndims; d++) {
            cell *e = &cells[n++];
            e->k = k;
            e->dim = o.dims[d];
            for (int w = 0; w < 4; w++)
                e->ns[w] = time_kernel(k, w, f, c, e->dim, o.min_seconds);
            printf("%-12s %6zu %10.1f %10.1f %10.1f %10.1f %8.2fx\n", k->name, e->dim, e->ns[0],
                   e->ns[1], e->ns[2], e->ns[3], e->ns[0] / e->ns[2]);
        }
    }
    if (o.json != NULL && write_json(&o, cells, n) != 0)
        rc = 1;
out:
    free(f);
    free(c);
    free(cells);
    return rc;
}
