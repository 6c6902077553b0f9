/*
 * vecfs-bench-fs — the same work through a vecfs mount and directly on the
 * engine, in one run on the same data:
 *
 *   batch import   a .fvecs file written into <coll>/.import/   vs vf_hnsw_insert_batch
 *   single insert  one .f32 file per vector (open, write, close) vs vf_hnsw_insert
 *   query          write <coll>/.query/<q>.f32, read it back    vs vf_hnsw_search
 *                  (open and close per query, as `echo > q; cat q`),
 *                  with 1, 2, 4 ... client threads
 *   query, handle  the same through one query file each client keeps
 *                  open: pwrite the vector, pread the result (two FUSE
 *                  requests per query instead of eleven)
 *   query, ioctl   the same kept-open file, one ioctl per query (one FUSE
 *                  request: contrib/vecfs_query.h); its direct side is
 *                  measured run by run alternating with it
 *   batch query    one .fvecs query file holding every query    vs the same searches
 *                  on one thread per core; each run of one side is
 *                  followed by a run of the other
 *   int8 rows      the batch import and the batch query again, into a
 *                  collection with `quantization = int8` (named "int8" in
 *                  the table and the JSON, whose rows all carry
 *                  "quantization") vs an int8 engine index reranking with
 *                  the originals in memory (bench/originals.h)
 *
 * Usage: vecfs-bench-fs --base B.fvecs --queries Q.fvecs [--metric cosine|l2|dot]
 *            [--clients 1,2,4] [--singles 2000] [--repeat 3] [--json OUT.json]
 *            [--vecfs PATH] [--vecfs-arg ARG]...
 *
 * --vecfs-arg passes one more option to the daemon (before DATADIR), e.g.
 * --vecfs-arg --io-uring; repeat it for several.
 *
 * Every query figure, direct and through the mount, is the median of
 * --repeat runs (a batch of 10,000 queries takes a fifth of a second, so
 * one run moves with whatever else the machine does; that is also why the
 * batch and ioctl rows alternate their two sides).
 *
 * It mounts a fresh DATADIR under a temporary directory itself (vecfs -f),
 * and always unmounts it and stops the daemon before exiting. Recall@10 is
 * measured for the query rows against exact search, by id and by distance
 * (bench/recall.h), so a fast but wrong path cannot pass for a fast one.
 *
 * Invariants
 *   1. The daemon this program starts is stopped and its mount removed on
 *      every exit path after it was started.
 *   2. Direct and mounted work use the same rows, queries, k (10, the
 *      collection default) and the collection's default parameters.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "fvecs.h"
#include "originals.h"
#include "recall.h"
#include "vecfs_query.h"

#define BENCH_K 10
#define MAX_CLIENTS 64
#define RESULT_CAP (64 * 1024)
#define MAX_REPEAT 21
#define MAX_VECFS_ARGS 8

typedef struct bench_opts {
    const char *base, *queries, *json, *vecfs;
    vf_metric metric;
    unsigned clients[MAX_CLIENTS];
    size_t nclients;
    size_t singles;
    size_t repeat;
    const char *vecfs_args[MAX_VECFS_ARGS]; /* --vecfs-arg, in order */
    size_t nvecfs_args;
} bench_opts;

typedef struct dataset {
    bench_matrix base, queries;
    int32_t *gt;       /* queries.n x BENCH_K exact neighbours */
    bench_truth truth; /* scores results against gt */
} dataset;

/* snprintf into a path buffer; -ENAMETOOLONG instead of a cut path. */
static int pathf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int usage(const char *msg)
{
    fprintf(stderr, "vecfs-bench-fs: %s\n", msg);
    fprintf(stderr,
            "usage: vecfs-bench-fs --base B.fvecs --queries Q.fvecs [--metric cosine|l2|dot]"
            " [--clients 1,2,4] [--singles N] [--repeat N] [--json OUT.json] [--vecfs PATH]"
            " [--vecfs-arg ARG]...\n");
    return 2;
}

static int parse_clients(const char *s, bench_opts *o)
{
    o->nclients = 0;
    while (*s) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > MAX_CLIENTS || o->nclients == MAX_CLIENTS ||
            (*end && *end != ','))
            return -EINVAL;
        o->clients[o->nclients++] = (unsigned)v;
        s = *end ? end + 1 : end;
        if (*end && !*s)
            return -EINVAL;
    }
    return o->nclients ? 0 : -EINVAL;
}

/* A decimal count in 1..max; -EINVAL otherwise. */
static int parse_count(const char *v, size_t max, size_t *out)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*v < '0' || *v > '9' || *end || n == 0 || n > max)
        return -EINVAL;
    *out = n;
    return 0;
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){
        .metric = VF_METRIC_COSINE, .singles = 2000, .repeat = 3, .vecfs = VECFS_DEFAULT_BIN};
    o->clients[0] = 1, o->clients[1] = 2, o->clients[2] = 4, o->nclients = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return usage("every option takes a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--base"))
            o->base = v;
        else if (!strcmp(a, "--queries"))
            o->queries = v;
        else if (!strcmp(a, "--json"))
            o->json = v;
        else if (!strcmp(a, "--vecfs"))
            o->vecfs = v;
        else if (!strcmp(a, "--vecfs-arg")) {
            if (o->nvecfs_args == MAX_VECFS_ARGS)
                return usage("at most 8 --vecfs-arg");
            o->vecfs_args[o->nvecfs_args++] = v;
        } else if (!strcmp(a, "--metric")) {
            if (vf_metric_parse(v, &o->metric) != 0)
                return usage("--metric takes l2, cosine or dot");
        } else if (!strcmp(a, "--clients")) {
            if (parse_clients(v, o) != 0)
                return usage("--clients takes a list like 1,2,4 (1..64)");
        } else if (!strcmp(a, "--singles")) {
            if (parse_count(v, SIZE_MAX, &o->singles) != 0)
                return usage("--singles takes a positive count");
        } else if (!strcmp(a, "--repeat")) {
            if (parse_count(v, MAX_REPEAT, &o->repeat) != 0)
                return usage("--repeat takes a count from 1 to 21");
        } else {
            return usage("unknown option");
        }
    }
    if (!o->base || !o->queries)
        return usage("--base and --queries are required");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Direct engine work                                                   */
/* ------------------------------------------------------------------ */

typedef struct query_stats {
    double qps;
    bench_score score;
} query_stats;

/* How a mounted client queries (one row each). */
typedef enum query_mode {
    QUERY_FILE_EACH, /* write and read the query file: open and close each */
    QUERY_HANDLE,    /* pwrite + pread on a kept-open query file */
    QUERY_IOCTL,     /* one ioctl on a kept-open query file */
} query_mode;

typedef struct client_job {
    const dataset *d;
    const vf_hnsw *h;         /* direct */
    const vf_vec_source *src; /* direct, int8: the originals to rerank with */
    const char *qdir;         /* mounted: <coll>/.query */
    query_mode mode;          /* mounted: how each query reaches the daemon */
    _Atomic size_t next;      /* next query row */
    _Atomic int err;
    /* The neighbours each query got (row ids, BENCH_K a query) and their
     * number: scored for recall after the timed run. */
    uint32_t *found;
    size_t *nfound;
} client_job;

static void *direct_client(void *arg)
{
    client_job *job = arg;
    const dataset *d = job->d;
    size_t q;
    while ((q = atomic_fetch_add(&job->next, 1)) < d->queries.n) {
        vf_hit hits[BENCH_K];
        size_t n;
        /* A float32 index ignores src and rerank: this is vf_hnsw_search. */
        int rc = vf_hnsw_search_rerank(job->h, (const float *)d->queries.data + q * d->queries.dim,
                                       BENCH_K, 0, 0, NULL, job->src, hits, &n);
        if (rc) {
            atomic_store(&job->err, rc);
            break;
        }
        for (size_t i = 0; i < n; i++)
            job->found[q * BENCH_K + i] = hits[i].id;
        job->nfound[q] = n;
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (n >= 1; v is sorted in place). */
static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Scores every query's neighbours (per-query slots as result_rows fills
 * them) against the ground truth. */
static void score_of(const dataset *d, const uint32_t *found, const size_t *nfound,
                     bench_score *out)
{
    bench_truth_score(&d->truth, d->queries.n, found, BENCH_K, nfound, out);
}

/* Runs every query once on `clients` threads of fn, `repeat` times: *out
 * gets the median QPS and the recall scores (after the runs, untimed). */
static int run_clients(client_job *job, unsigned clients, size_t repeat, void *(*fn)(void *),
                       query_stats *out)
{
    const size_t nq = job->d->queries.n;
    double qps[MAX_REPEAT];
    job->found = malloc(nq * BENCH_K * sizeof(uint32_t));
    job->nfound = calloc(nq, sizeof(size_t));
    int rc = job->found && job->nfound ? 0 : -ENOMEM;
    for (size_t r = 0; rc == 0 && r < repeat; r++) {
        pthread_t t[MAX_CLIENTS];
        atomic_store(&job->next, 0);
        atomic_store(&job->err, 0);
        double t0 = now();
        unsigned started = 0;
        for (; started < clients; started++)
            if (pthread_create(&t[started], NULL, fn, job) != 0)
                break;
        for (unsigned i = 0; i < started; i++)
            pthread_join(t[i], NULL);
        qps[r] = (double)nq / (now() - t0);
        rc = started < clients ? -EAGAIN : atomic_load(&job->err);
    }
    if (rc == 0) {
        out->qps = median(qps, repeat);
        score_of(job->d, job->found, job->nfound, &out->score);
    }
    free(job->found);
    free(job->nfound);
    job->found = NULL;
    job->nfound = NULL;
    return rc;
}

/* ------------------------------------------------------------------ */
/* The mount                                                            */
/* ------------------------------------------------------------------ */

typedef struct mount_ctx {
    char root[PATH_MAX], datadir[PATH_MAX], mnt[PATH_MAX];
    pid_t pid;
} mount_ctx;

static bool is_mounted(const char *mnt)
{
    FILE *f = fopen("/proc/mounts", "r");
    if (!f)
        return false;
    char line[2 * PATH_MAX];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        char *end = strchr(sp + 1, ' ');
        if (end && (size_t)(end - sp - 1) == strlen(mnt) && !strncmp(sp + 1, mnt, strlen(mnt)))
            found = true;
    }
    fclose(f);
    return found;
}

static void mount_stop(mount_ctx *m)
{
    if (m->mnt[0] && is_mounted(m->mnt)) {
        char cmd[2 * PATH_MAX + 64];
        if (pathf(cmd, sizeof(cmd), "fusermount3 -u '%s' 2>/dev/null || fusermount3 -uz '%s'",
                  m->mnt, m->mnt) != 0 ||
            system(cmd) != 0)
            fprintf(stderr, "vecfs-bench-fs: could not unmount %s\n", m->mnt);
    }
    for (int i = 0; m->pid > 0 && i < 100; i++) {
        if (waitpid(m->pid, NULL, WNOHANG) == m->pid)
            m->pid = 0;
        else
            usleep(100 * 1000);
    }
    if (m->pid > 0) {
        kill(m->pid, SIGKILL);
        waitpid(m->pid, NULL, 0);
        m->pid = 0;
    }
    char cmd[PATH_MAX + 16];
    if (m->root[0] && (pathf(cmd, sizeof(cmd), "rm -rf '%s'", m->root) != 0 || system(cmd) != 0))
        fprintf(stderr, "vecfs-bench-fs: could not remove %s\n", m->root);
}

static int mount_start(mount_ctx *m, const bench_opts *o)
{
    snprintf(m->root, sizeof(m->root), "/tmp/vecfs-bench-XXXXXX");
    if (!mkdtemp(m->root)) {
        m->root[0] = '\0';
        return -errno;
    }
    if (pathf(m->datadir, sizeof(m->datadir), "%s/data", m->root) ||
        pathf(m->mnt, sizeof(m->mnt), "%s/mnt", m->root))
        return -ENAMETOOLONG;
    if (mkdir(m->datadir, 0700) != 0 || mkdir(m->mnt, 0700) != 0)
        return -errno;
    m->pid = fork();
    if (m->pid < 0)
        return -errno;
    if (m->pid == 0) {
        const char *argv[MAX_VECFS_ARGS + 5] = {"vecfs", "-f"};
        size_t n = 2;
        for (size_t i = 0; i < o->nvecfs_args; i++)
            argv[n++] = o->vecfs_args[i];
        argv[n++] = m->datadir;
        argv[n++] = m->mnt;
        argv[n] = NULL;
        execv(o->vecfs, (char *const *)argv);
        fprintf(stderr, "vecfs-bench-fs: cannot run %s: %s\n", o->vecfs, strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (is_mounted(m->mnt))
            return 0;
        if (waitpid(m->pid, NULL, WNOHANG) == m->pid) {
            m->pid = 0;
            return -ECHILD;
        }
        usleep(50 * 1000);
    }
    return -ETIMEDOUT;
}

static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -errno;
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        p += n;
        len -= (size_t)n;
    }
    return close(fd) == 0 ? 0 : -errno;
}

/* Reads all of path into buf (cap bytes, NUL-terminated); length or -errno. */
static ssize_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            close(fd);
            return -EFBIG;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Writes vec at offset 0 of the open query file fd and reads the result
 * into buf (cap bytes, NUL-terminated) from offset 0: a short read ends it
 * (query files are served with direct I/O). Length or -errno. */
static ssize_t query_on_handle(int fd, const float *vec, size_t dim, char *buf, size_t cap)
{
    ssize_t w = pwrite(fd, vec, dim * sizeof(float), 0);
    if (w < 0)
        return -errno;
    if ((size_t)w != dim * sizeof(float))
        return -EIO;
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap)
            return -EFBIG;
        size_t want = cap - 1 - len;
        ssize_t n = pread(fd, buf + len, want, (off_t)len);
        if (n < 0)
            return -errno;
        len += (size_t)n;
        if ((size_t)n < want)
            break;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

/* One query through one ioctl on fd: its neighbours' rows (names
 * "base-<row>.f32") into found, their number into *nfound. 0 or -errno. */
static ssize_t query_ioctl(int fd, const float *vec, size_t dim, uint32_t *found, size_t *nfound)
{
    vecfs_query_hit hits[BENCH_K];
    size_t n = 0;
    int rc = vecfs_query_search(fd, vec, (uint32_t)dim, BENCH_K, hits, BENCH_K, &n, NULL, 0);
    if (rc < 0)
        return rc;
    *nfound = 0;
    for (size_t i = 0; i < n; i++)
        if (!strncmp(hits[i].name, "base-", 5))
            found[(*nfound)++] = (uint32_t)strtoul(hits[i].name + 5, NULL, 10);
    return 0;
}

/* Parses a result into per-query slots: query q's rows (of the names
 * "base-<row>.f32") go to found[q * BENCH_K ...], their number to
 * nfound[q]; nq slots, zeroed first. Lines are "<name>\t<dist>" (one
 * query) or "<q>\t<name>\t<dist>" (batch). */
static void result_rows(const char *text, bool batch, uint32_t *found, size_t *nfound, size_t nq)
{
    memset(nfound, 0, nq * sizeof(*nfound));
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        const char *name = line;
        size_t q = 0;
        if (batch) {
            q = strtoul(line, NULL, 10);
            const char *tab = strchr(line, '\t');
            name = tab ? tab + 1 : line;
        }
        if (q < nq && nfound[q] < BENCH_K && !strncmp(name, "base-", 5))
            found[q * BENCH_K + nfound[q]++] = (uint32_t)strtoul(name + 5, NULL, 10);
        if (!eol)
            break;
        line = eol + 1;
    }
}

static void *mount_client(void *arg)
{
    client_job *job = arg;
    const dataset *d = job->d;
    char path[PATH_MAX], *buf = malloc(RESULT_CAP);
    int fd = -1, rc = buf ? 0 : -ENOMEM;
    if (rc == 0 &&
        pathf(path, sizeof(path), "%s/q%lu.f32", job->qdir, (unsigned long)pthread_self()))
        rc = -ENAMETOOLONG;
    if (rc == 0 && job->mode == QUERY_HANDLE &&
        (fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0)
        rc = -errno;
    if (rc == 0 && job->mode == QUERY_IOCTL && (fd = vecfs_query_open(path)) < 0)
        rc = fd;
    size_t q;
    while (rc == 0 && (q = atomic_fetch_add(&job->next, 1)) < d->queries.n) {
        const float *v = (const float *)d->queries.data + q * d->queries.dim;
        ssize_t len;
        if (job->mode == QUERY_IOCTL) {
            len = query_ioctl(fd, v, d->queries.dim, job->found + q * BENCH_K, &job->nfound[q]);
            if (len < 0) {
                rc = (int)len;
                break;
            }
            continue;
        }
        if (job->mode == QUERY_HANDLE) {
            len = query_on_handle(fd, v, d->queries.dim, buf, RESULT_CAP);
        } else {
            len = write_file(path, v, d->queries.dim * sizeof(float));
            if (len == 0)
                len = read_file(path, buf, RESULT_CAP);
        }
        if (len < 0) {
            rc = (int)len;
            break;
        }
        result_rows(buf, false, job->found + q * BENCH_K, &job->nfound[q], 1);
    }
    if (rc)
        atomic_store(&job->err, rc);
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The run                                                              */
/* ------------------------------------------------------------------ */

typedef struct row {
    char work[48];
    const char *unit;
    const char *quantization; /* of both sides' indexes */
    double direct, mount;
    bool scored; /* a query row: the scores below hold */
    bench_score direct_score, mount_score;
} row;

/* Row order: import, single inserts, per-file queries by client count,
 * open-handle queries by client count, the batch query file. */
static size_t row_per_file(size_t c)
{
    return 2 + c;
}

static size_t row_handle(const bench_opts *o, size_t c)
{
    return 2 + o->nclients + c;
}

static size_t row_ioctl(const bench_opts *o, size_t c)
{
    return 2 + 2 * o->nclients + c;
}

static size_t row_batch(const bench_opts *o)
{
    return 2 + 3 * o->nclients;
}

static size_t row_int8_import(const bench_opts *o)
{
    return row_batch(o) + 1;
}

static size_t row_int8_batch(const bench_opts *o)
{
    return row_batch(o) + 2;
}

static size_t row_count(const bench_opts *o)
{
    return row_batch(o) + 3;
}

static void *fvecs_image(const bench_matrix *m, size_t first, size_t n, size_t *len)
{
    size_t rec = 4 + m->dim * sizeof(float);
    uint8_t *img = malloc(n * rec);
    if (!img)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int32_t dim = (int32_t)m->dim;
        memcpy(img + i * rec, &dim, 4);
        memcpy(img + i * rec + 4, (const float *)m->data + (first + i) * m->dim,
               m->dim * sizeof(float));
    }
    *len = n * rec;
    return img;
}

static int make_collection(const char *mnt, const char *name, size_t dim, vf_metric metric,
                           const char *quantization, char *dir, size_t cap)
{
    char path[PATH_MAX], cfg[128];
    if (pathf(dir, cap, "%s/%s", mnt, name) || pathf(path, sizeof(path), "%s/.config", dir))
        return -ENAMETOOLONG;
    if (mkdir(dir, 0755) != 0)
        return -errno;
    int n = snprintf(cfg, sizeof(cfg), "dim = %zu\nmetric = %s\nquantization = %s\n", dim,
                     vf_metric_name(metric), quantization);
    return write_file(path, cfg, (size_t)n);
}

/* Imports every base row into coll as one .fvecs batch; rows/s into *rate. */
static int import_rows(const dataset *d, const char *coll, double *rate)
{
    char path[PATH_MAX];
    size_t len = 0;
    void *img = fvecs_image(&d->base, 0, d->base.n, &len);
    if (!img)
        return -ENOMEM;
    double t0 = now();
    int rc = pathf(path, sizeof(path), "%s/.import/base.fvecs", coll);
    if (rc == 0)
        rc = write_file(path, img, len);
    *rate = (double)d->base.n / (now() - t0);
    free(img);
    return rc;
}

/* The batch query row r: every query in one .fvecs query file of coll,
 * each run alternating with the same searches on the direct index on as
 * many threads as there are cores (as the daemon's batch search uses), so
 * both sides of the ratio see the same machine. */
static int batch_query_row(const bench_opts *o, const dataset *d, const vf_hnsw *direct,
                           const vf_vec_source *src, const char *coll, row *r)
{
    char path[PATH_MAX];
    size_t len = 0;
    void *img = fvecs_image(&d->queries, 0, d->queries.n, &len);
    size_t cap = d->queries.n * BENCH_K * 600 + 4096;
    uint32_t *found = malloc(d->queries.n * BENCH_K * sizeof(uint32_t));
    size_t *nfound = malloc(d->queries.n * sizeof(size_t));
    char *buf = malloc(cap);
    ssize_t got = img && found && nfound && buf ? 0 : -ENOMEM;
    /* Each run writes the query file and reads the result (the search
     * runs when it is opened for reading). */
    double qps[MAX_REPEAT], direct_qps[MAX_REPEAT];
    client_job djob = {.d = d, .h = direct, .src = src};
    query_stats dqs = {0};
    if (got == 0)
        got = pathf(path, sizeof(path), "%s/.query/all.fvecs", coll);
    for (size_t i = 0; got >= 0 && i < o->repeat; i++) {
        got = run_clients(&djob, (unsigned)sysconf(_SC_NPROCESSORS_ONLN), 1, direct_client, &dqs);
        direct_qps[i] = dqs.qps;
        /* Timed like the clients: until the neighbours are in memory. */
        double t0 = now();
        if (got == 0)
            got = write_file(path, img, len);
        if (got == 0)
            got = read_file(path, buf, cap);
        if (got >= 0)
            result_rows(buf, true, found, nfound, d->queries.n);
        qps[i] = (double)d->queries.n / (now() - t0);
    }
    if (got >= 0) {
        r->direct = median(direct_qps, o->repeat);
        r->direct_score = dqs.score;
        r->mount = median(qps, o->repeat);
        score_of(d, found, nfound, &r->mount_score);
    }
    free(img);
    free(found);
    free(nfound);
    free(buf);
    return got < 0 ? (int)got : 0;
}

/* The work through a fresh mount; direct8 and src8 are the direct side
 * of the int8 rows. */
static int bench_mount(const bench_opts *o, const dataset *d, const vf_hnsw *direct,
                       const vf_hnsw *direct8, const vf_vec_source *src8, row *rows)
{
    mount_ctx m = {0};
    char coll[PATH_MAX], coll8[PATH_MAX], singles[PATH_MAX], path[PATH_MAX];
    int rc = mount_start(&m, o);
    if (rc) {
        fprintf(stderr, "vecfs-bench-fs: mounting with %s failed: %s\n", o->vecfs, strerror(-rc));
        goto out;
    }
    const size_t nb = d->base.n, dim = d->base.dim;
    if ((rc = make_collection(m.mnt, "bench", dim, o->metric, "none", coll, sizeof(coll))) ||
        (rc = make_collection(m.mnt, "bench-int8", dim, o->metric, "int8", coll8, sizeof(coll8))) ||
        (rc = make_collection(m.mnt, "singles", dim, o->metric, "none", singles, sizeof(singles))))
        goto fail;

    /* Batch import. */
    if ((rc = import_rows(d, coll, &rows[0].mount)))
        goto fail;

    /* Single-file inserts. */
    size_t singles_n = o->singles < nb ? o->singles : nb;
    double t0 = now();
    for (size_t i = 0; i < singles_n; i++) {
        if ((rc = pathf(path, sizeof(path), "%s/v%zu.f32", singles, i)) ||
            (rc = write_file(path, (const float *)d->base.data + i * dim, dim * sizeof(float))))
            goto fail;
    }
    rows[1].mount = (double)singles_n / (now() - t0);

    /* One query per file round trip, with 1..N clients. */
    if ((rc = pathf(path, sizeof(path), "%s/.query", coll)))
        goto fail;
    client_job job = {.d = d, .qdir = path};
    for (size_t c = 0; c < o->nclients; c++) {
        query_stats qs;
        if ((rc = run_clients(&job, o->clients[c], o->repeat, mount_client, &qs)))
            goto fail;
        rows[row_per_file(c)].mount = qs.qps;
        rows[row_per_file(c)].mount_score = qs.score;
    }
    job.mode = QUERY_HANDLE;
    for (size_t c = 0; c < o->nclients; c++) {
        query_stats qs;
        if ((rc = run_clients(&job, o->clients[c], o->repeat, mount_client, &qs)))
            goto fail;
        rows[row_handle(o, c)].mount = qs.qps;
        rows[row_handle(o, c)].mount_score = qs.score;
    }
    /* The ioctl rows alternate their two sides run by run (direct, mount,
     * direct, ...): their ratio is the fast path's target, and one side
     * measured minutes after the other moves with the machine's load. */
    job.mode = QUERY_IOCTL;
    client_job ijob = {.d = d, .h = direct};
    for (size_t c = 0; c < o->nclients; c++) {
        double mq[MAX_REPEAT], dq[MAX_REPEAT];
        query_stats ms, ds;
        for (size_t r = 0; r < o->repeat; r++) {
            if ((rc = run_clients(&ijob, o->clients[c], 1, direct_client, &ds)) ||
                (rc = run_clients(&job, o->clients[c], 1, mount_client, &ms)))
                goto fail;
            dq[r] = ds.qps;
            mq[r] = ms.qps;
        }
        rows[row_ioctl(o, c)].direct = median(dq, o->repeat);
        rows[row_ioctl(o, c)].direct_score = ds.score;
        rows[row_ioctl(o, c)].mount = median(mq, o->repeat);
        rows[row_ioctl(o, c)].mount_score = ms.score;
    }

    /* Every query in one .fvecs query file; then the int8 collection. */
    if ((rc = batch_query_row(o, d, direct, NULL, coll, &rows[row_batch(o)])) ||
        (rc = import_rows(d, coll8, &rows[row_int8_import(o)].mount)) ||
        (rc = batch_query_row(o, d, direct8, src8, coll8, &rows[row_int8_batch(o)])))
        goto fail;
fail:
    if (rc)
        fprintf(stderr, "vecfs-bench-fs: through the mount: %s\n", strerror(-rc));
out:
    mount_stop(&m);
    return rc;
}

/* An index of d's base rows built in one batch; rows/s into *rate. */
static int build_index(const bench_opts *o, const dataset *d, vf_quant_kind q, double *rate,
                       vf_hnsw **out)
{
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, (uint32_t)d->base.dim);
    p.metric = o->metric;
    p.quantization = q;
    int rc = vf_hnsw_create(&p, out);
    double t0 = now();
    if (rc == 0)
        rc = vf_hnsw_insert_batch(*out, NULL, 0, d->base.data, d->base.n, 0);
    *rate = (double)d->base.n / (now() - t0);
    return rc;
}

/* The direct work but the batch query rows, which bench_mount measures
 * alternating with the mount. *index and *index8 get the built float32
 * and int8 indexes (the caller frees them). */
static int bench_direct(const bench_opts *o, const dataset *d, row *rows, vf_hnsw **index,
                        vf_hnsw **index8)
{
    const size_t nb = d->base.n, dim = d->base.dim;
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, (uint32_t)dim);
    p.metric = o->metric;
    vf_hnsw *h = NULL, *one = NULL;
    int rc = build_index(o, d, VF_QUANT_NONE, &rows[0].direct, &h);
    if (!rc)
        rc = build_index(o, d, VF_QUANT_INT8, &rows[row_int8_import(o)].direct, index8);
    if (!rc)
        rc = vf_hnsw_create(&p, &one);
    if (rc)
        goto out;
    double t0;

    size_t singles_n = o->singles < nb ? o->singles : nb;
    t0 = now();
    for (size_t i = 0; i < singles_n && !rc; i++)
        rc = vf_hnsw_insert(one, (uint32_t)i, (const float *)d->base.data + i * dim);
    rows[1].direct = (double)singles_n / (now() - t0);

    /* One query at a time per client is the direct counterpart of both
     * ways of querying through the mount. */
    client_job job = {.d = d, .h = h};
    for (size_t c = 0; c < o->nclients && !rc; c++) {
        query_stats qs;
        rc = run_clients(&job, o->clients[c], o->repeat, direct_client, &qs);
        rows[row_per_file(c)].direct = rows[row_handle(o, c)].direct = qs.qps;
        rows[row_per_file(c)].direct_score = rows[row_handle(o, c)].direct_score = qs.score;
    }
out:
    vf_hnsw_free(one);
    if (rc) {
        vf_hnsw_free(h);
        h = NULL;
    }
    *index = h;
    return rc;
}

static void print_rows(const row *rows, size_t n)
{
    printf("%-28s %-8s %12s %12s %7s %9s %9s %9s %9s\n", "work", "unit", "direct", "mount", "ratio",
           "recall-d", "recall-m", "rdist-d", "rdist-m");
    for (size_t i = 0; i < n; i++) {
        const row *r = &rows[i];
        printf("%-28s %-8s %12.1f %12.1f %6.1f%%", r->work, r->unit, r->direct, r->mount,
               r->direct > 0 ? 100.0 * r->mount / r->direct : 0.0);
        if (r->scored)
            printf(" %9.4f %9.4f %9.4f %9.4f", r->direct_score.recall_id, r->mount_score.recall_id,
                   r->direct_score.recall_distance, r->mount_score.recall_distance);
        printf("\n");
    }
}

static int write_json(const char *path, const bench_opts *o, const dataset *d, const row *rows,
                      size_t n)
{
    json_t *root = json_pack("{s:{s:I,s:I,s:I,s:s},s:I}", "dataset", "base", (json_int_t)d->base.n,
                             "queries", (json_int_t)d->queries.n, "dim", (json_int_t)d->base.dim,
                             "metric", vf_metric_name(o->metric), "repeat", (json_int_t)o->repeat);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_pack("{s:s,s:s,s:s,s:f,s:f,s:f}", "work", rows[i].work, "unit",
                              rows[i].unit, "quantization", rows[i].quantization, "direct",
                              rows[i].direct, "mount", rows[i].mount, "ratio",
                              rows[i].direct > 0 ? rows[i].mount / rows[i].direct : 0.0);
        if (rows[i].scored) {
            const bench_score *ds = &rows[i].direct_score, *ms = &rows[i].mount_score;
            json_object_set_new(r, "recall_direct", json_real(ds->recall_id));
            json_object_set_new(r, "recall_mount", json_real(ms->recall_id));
            json_object_set_new(r, "recall_distance_direct", json_real(ds->recall_distance));
            json_object_set_new(r, "recall_distance_mount", json_real(ms->recall_distance));
        }
        json_array_append_new(arr, r);
    }
    json_object_set_new(root, "results", arr);
    int rc = json_dump_file(root, path, JSON_INDENT(2)) == 0 ? 0 : -EIO;
    json_decref(root);
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    dataset d = {.base = BENCH_MATRIX_INIT, .queries = BENCH_MATRIX_INIT};
    char err[512];
    if (bench_fvecs_read(o.base, &d.base, err, sizeof(err)) != 0 ||
        bench_fvecs_read(o.queries, &d.queries, err, sizeof(err)) != 0) {
        fprintf(stderr, "vecfs-bench-fs: %s\n", err);
        return 1;
    }
    if (d.base.dim != d.queries.dim) {
        fprintf(stderr, "vecfs-bench-fs: base has dim %zu, queries %zu\n", d.base.dim,
                d.queries.dim);
        return 1;
    }
    if (bench_truth_exact(&d.base, &d.queries, o.metric, BENCH_K, &d.gt) != 0 ||
        bench_truth_init(&d.truth, &d.base, &d.queries, o.metric, d.gt, BENCH_K, BENCH_K) != 0) {
        fprintf(stderr, "vecfs-bench-fs: ground truth failed\n");
        return 1;
    }
    row rows[5 + 3 * MAX_CLIENTS] = {{.work = "batch import (.fvecs)", .unit = "rows/s"},
                                     {.work = "single insert (1 file each)", .unit = "files/s"}};
    for (size_t c = 0; c < o.nclients; c++) {
        const char *s = o.clients[c] > 1 ? "s" : "";
        snprintf(rows[row_per_file(c)].work, sizeof(rows[0].work), "query, file each, %u client%s",
                 o.clients[c], s);
        snprintf(rows[row_handle(&o, c)].work, sizeof(rows[0].work),
                 "query, open handle, %u client%s", o.clients[c], s);
        snprintf(rows[row_ioctl(&o, c)].work, sizeof(rows[0].work), "query, ioctl, %u client%s",
                 o.clients[c], s);
        rows[row_per_file(c)].unit = rows[row_handle(&o, c)].unit = "QPS";
        rows[row_ioctl(&o, c)].unit = "QPS";
        rows[row_per_file(c)].scored = rows[row_handle(&o, c)].scored = true;
        rows[row_ioctl(&o, c)].scored = true;
    }
    snprintf(rows[row_batch(&o)].work, sizeof(rows[0].work), "batch query (.fvecs file)");
    rows[row_batch(&o)].unit = "QPS";
    rows[row_batch(&o)].scored = true;
    for (size_t i = 0; i < row_count(&o); i++)
        rows[i].quantization = "none";
    snprintf(rows[row_int8_import(&o)].work, sizeof(rows[0].work), "batch import, int8 (.fvecs)");
    rows[row_int8_import(&o)].unit = "rows/s";
    snprintf(rows[row_int8_batch(&o)].work, sizeof(rows[0].work), "batch query, int8 (.fvecs)");
    rows[row_int8_batch(&o)].unit = "QPS";
    rows[row_int8_batch(&o)].scored = true;
    rows[row_int8_import(&o)].quantization = rows[row_int8_batch(&o)].quantization = "int8";

    printf("dataset: %zu x %zu (%s), %zu queries, metric %s, k %d, kernel %s\n", d.base.n,
           d.base.dim, o.base, d.queries.n, vf_metric_name(o.metric), BENCH_K,
           vf_kernels_best()->name);
    vf_hnsw *index = NULL, *index8 = NULL;
    if ((rc = bench_direct(&o, &d, rows, &index, &index8)) != 0) {
        fprintf(stderr, "vecfs-bench-fs: direct engine work failed: %s\n", strerror(-rc));
        return 1;
    }
    /* The int8 index's direct side reranks with the rows in memory. */
    bench_originals orig;
    bench_originals_rows(&orig, d.base.data, d.base.n, d.base.dim);
    vf_vec_source src8 = bench_originals_source(&orig);
    int mrc = bench_mount(&o, &d, index, index8, &src8, rows);
    size_t nrows = row_count(&o);
    vf_hnsw_free(index);
    vf_hnsw_free(index8);
    bench_originals_close(&orig);
    print_rows(rows, nrows);
    if (o.json && write_json(o.json, &o, &d, rows, nrows) != 0) {
        fprintf(stderr, "vecfs-bench-fs: cannot write %s\n", o.json);
        return 1;
    }
    bench_matrix_release(&d.base);
    bench_matrix_release(&d.queries);
    bench_truth_release(&d.truth);
    free(d.gt);
    return mrc ? 1 : 0;
}
