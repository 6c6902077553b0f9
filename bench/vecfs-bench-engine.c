/*
 * vecfs-bench-engine — measures the vecfs HNSW engine on a real dataset,
 * side by side with hnswlib and FAISS in the same process run.
 *
 *   vecfs-bench-engine {--base B.fvecs --queries Q.fvecs | --duplicates SHARE}
 *       [--gt GT.ivecs] [--metric l2|cosine|dot] [--k 10] [--m 16] [--efc 200]
 *       [--ef 10,20,40,80,160,320] [--threads 1] [--compare hnswlib,faiss]
 *       [--json OUT.json] [--results PREFIX] [--quantization none|int8] [--rerank N]
 *
 * What one run does, in order:
 *   1. reads and validates the base and query files (bench/fvecs.c), or
 *      generates the duplicate-heavy set of --duplicates (bench/duplicates.h);
 *   2. ground truth: --gt, or exact top-k by vf_flat_search_batch on all
 *      cores;
 *   3. builds every engine's index (vecfs, then the --compare peers), one
 *      after the other, on all cores (wall clock, after the storage is
 *      reserved); all stay in memory;
 *   4. runs a short untimed warm-up of each, then for each ef
 *      RUNS_PER_EF rounds in which the engines take turns: each runs
 *      every query once, one query per call, on --threads threads that
 *      take queries from a shared atomic counter, timing each call with
 *      CLOCK_MONOTONIC;
 *   5. prints one table per engine and writes --json and --results files.
 *
 * Definitions (docs/performance.md repeats them):
 *   recall@k  |returned ids ∩ ground-truth top-k| / k, averaged over queries
 *             (ids only, so engines that search normalized vectors by inner
 *             product are scored the same way as vecfs's cosine).
 *   recall by distance, copy misses  as bench/recall.h defines them: a
 *             returned row counts when its distance is no larger than the
 *             k-th true distance, so ties between identical vectors neither
 *             hide nor fake a loss; a copy miss is a query whose identical
 *             row was in the base but not in its result.
 *   QPS       queries / wall time of the whole run on --threads threads;
 *             each ef runs RUNS_PER_EF times per engine, the engines in
 *             turns, and the fastest run of each is kept.
 *   mean_us, p99_us  per-call latency over all queries of that run.
 *   bytes/vector  the index's own memory figure / n (vf_hnsw_memory for
 *             vecfs: records, links, scratch; the peers count their
 *             containers, see peers.h). With --quantization int8 the row
 *             is "vecfs-int8": its index keeps codes, searches rerank
 *             rerank x k candidates with the float32 originals served
 *             zero-copy from the mmapped base file (bench/originals.h),
 *             whose bytes/vector are reported apart as
 *             original_bytes_per_vector.
 * Exact search (faiss-flat) has no ef: it runs once (no repeats), on at
 * most FLAT_MAX_QUERIES queries, and reports ef 0.
 *
 * Exit status: 0 success, 1 a runtime failure (I/O, memory, an engine
 * error), 2 bad arguments or unusable input files — each with one line on
 * stderr.
 */
#include "cli.h"
#include "duplicates.h"
#include "engine.h"
#include "fvecs.h"
#include "originals.h"
#include "peers.h"
#include "recall.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "vecfs-bench-engine"
#define MAX_EFS 64
#define MAX_K 4096
#define MAX_EF 1000000
#define MAX_THREADS 1024
#define WARMUP_QUERIES 200
#define FLAT_MAX_QUERIES 1000
/* Each ef is run this many times and the fastest run is kept (as
 * ann-benchmarks does), so a burst of unrelated load on the machine does not
 * decide a row. Recall is the same in every run. */
#define RUNS_PER_EF 3
/* vecfs and the three peers. */
#define MAX_ENGINES 4

static const char usage_text[] =
    "usage: " PROG " {--base B.fvecs --queries Q.fvecs | --duplicates SHARE}\n"
    "           [--gt GT.ivecs] [--metric l2|cosine|dot] [--k 10] [--m 16] [--efc 200]\n"
    "           [--ef 10,20,40,80,160,320] [--threads 1] [--compare hnswlib,faiss]\n"
    "           [--json OUT.json] [--results PREFIX] [--quantization none|int8] [--rerank N]\n"
    "  --duplicates SHARE  instead of files, a generated base of 20000 x 8 where\n"
    "           SHARE % (0..100) of the rows are copies of 13 distinct vectors\n"
    "           ([(i*7 + j) % 13]) and the rest uniform random in [0, 12), and 1000\n"
    "           queries, every other one an exact copy of a base row\n"
    "Each run prints recall by id, recall by distance (a row counts when it is\n"
    "no farther than the k-th true neighbour) and copy misses (queries whose\n"
    "identical base row is not in the result).\n";

/* ------------------------------------------------------------------ */
/* Options                                                              */
/* ------------------------------------------------------------------ */

typedef struct options {
    const char *base;
    const char *queries;
    const char *gt;
    const char *json;
    const char *results;
    bool generate;       /* --duplicates given: no --base/--queries */
    unsigned duplicates; /* its SHARE, percent */
    vf_metric metric;
    size_t k;
    unsigned m;
    unsigned efc;
    size_t efs[MAX_EFS];
    size_t n_efs;
    unsigned threads;
    bool cmp_hnswlib;
    bool cmp_faiss_hnsw;
    bool cmp_faiss_flat;
    vf_quant_kind quant;
    unsigned rerank; /* 0: the engine's default */
} options;

/* One line saying what is wrong, one hint; the caller exits 2. */
#define usage_error(...) bench_usage_error(PROG, __VA_ARGS__)

/* Parses a decimal integer in lo..hi that fills the whole string. */
static int parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_efs(const char *s, options *o)
{
    char buf[1024];
    char *save = NULL;

    if (strlen(s) >= sizeof(buf) || *s == '\0')
        return -EINVAL;
    memcpy(buf, s, strlen(s) + 1);
    if (buf[strlen(buf) - 1] == ',' || buf[0] == ',' || strstr(buf, ",,") != NULL)
        return -EINVAL;
    o->n_efs = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        unsigned long v;
        if (o->n_efs == MAX_EFS || parse_uint(tok, 1, MAX_EF, &v) != 0)
            return -EINVAL;
        o->efs[o->n_efs++] = v;
    }
    return o->n_efs > 0 ? 0 : -EINVAL;
}

static int parse_compare(const char *s, options *o)
{
    char buf[256];
    char *save = NULL;

    if (strlen(s) >= sizeof(buf) || *s == '\0')
        return -EINVAL;
    memcpy(buf, s, strlen(s) + 1);
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "hnswlib") == 0) {
            o->cmp_hnswlib = true;
        } else if (strcmp(tok, "faiss") == 0) {
            o->cmp_faiss_hnsw = true;
            o->cmp_faiss_flat = true;
        } else if (strcmp(tok, "faiss-hnsw") == 0) {
            o->cmp_faiss_hnsw = true;
        } else if (strcmp(tok, "faiss-flat") == 0) {
            o->cmp_faiss_flat = true;
        } else {
            usage_error("--compare: unknown peer '%s' (want hnswlib, faiss, faiss-hnsw, "
                        "faiss-flat)",
                        tok);
            return -EINVAL;
        }
    }
    return 0;
}

/* Fills o from argv. Returns 0, 1 for --help (usage printed), or -EINVAL
 * after printing the reason. Accepts "--opt value" and "--opt=value". */
static int parse_args(int argc, char **argv, options *o)
{
    static const size_t default_efs[] = {10, 20, 40, 80, 160, 320};

    memset(o, 0, sizeof(*o));
    o->metric = VF_METRIC_L2;
    o->k = 10;
    o->m = 16;
    o->efc = 200;
    o->threads = 1;
    memcpy(o->efs, default_efs, sizeof(default_efs));
    o->n_efs = sizeof(default_efs) / sizeof(default_efs[0]);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        char name[32];
        const char *eq;
        unsigned long v;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            usage_error("unexpected argument '%s'", arg);
            return -EINVAL;
        }
        eq = strchr(arg, '=');
        if (eq != NULL) {
            if ((size_t)(eq - arg) >= sizeof(name)) {
                usage_error("unknown option '%s'", arg);
                return -EINVAL;
            }
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = '\0';
            val = eq + 1;
        } else {
            if (strlen(arg) >= sizeof(name)) {
                usage_error("unknown option '%s'", arg);
                return -EINVAL;
            }
            memcpy(name, arg, strlen(arg) + 1);
        }
        static const char *const known[] = {
            "--base", "--queries", "--gt",         "--metric",       "--k",
            "--m",    "--efc",     "--ef",         "--threads",      "--compare",
            "--json", "--results", "--duplicates", "--quantization", "--rerank"};
        bool found = false;
        for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++)
            found = found || strcmp(name, known[j]) == 0;
        if (!found) {
            usage_error("unknown option '%s'", name);
            return -EINVAL;
        }
        if (val == NULL) {
            if (i + 1 >= argc) {
                usage_error("%s needs a value", name);
                return -EINVAL;
            }
            val = argv[++i];
        }
        if (*val == '\0') {
            usage_error("%s needs a non-empty value", name);
            return -EINVAL;
        }
        if (strcmp(name, "--base") == 0) {
            o->base = val;
        } else if (strcmp(name, "--queries") == 0) {
            o->queries = val;
        } else if (strcmp(name, "--gt") == 0) {
            o->gt = val;
        } else if (strcmp(name, "--json") == 0) {
            o->json = val;
        } else if (strcmp(name, "--results") == 0) {
            o->results = val;
        } else if (strcmp(name, "--metric") == 0) {
            if (vf_metric_parse(val, &o->metric) != 0) {
                usage_error("--metric: '%s' is not l2, cosine or dot", val);
                return -EINVAL;
            }
        } else if (strcmp(name, "--k") == 0) {
            if (parse_uint(val, 1, MAX_K, &v) != 0) {
                usage_error("--k: '%s' is not an integer in 1..%d", val, MAX_K);
                return -EINVAL;
            }
            o->k = v;
        } else if (strcmp(name, "--m") == 0) {
            if (parse_uint(val, 2, 256, &v) != 0) {
                usage_error("--m: '%s' is not an integer in 2..256", val);
                return -EINVAL;
            }
            o->m = (unsigned)v;
        } else if (strcmp(name, "--efc") == 0) {
            if (parse_uint(val, 1, MAX_EF, &v) != 0) {
                usage_error("--efc: '%s' is not an integer in 1..%d", val, MAX_EF);
                return -EINVAL;
            }
            o->efc = (unsigned)v;
        } else if (strcmp(name, "--ef") == 0) {
            if (parse_efs(val, o) != 0) {
                usage_error("--ef: '%s' is not a comma-separated list of 1..%d integers "
                            "(at most %d)",
                            val, MAX_EF, MAX_EFS);
                return -EINVAL;
            }
        } else if (strcmp(name, "--threads") == 0) {
            if (parse_uint(val, 1, MAX_THREADS, &v) != 0) {
                usage_error("--threads: '%s' is not an integer in 1..%d", val, MAX_THREADS);
                return -EINVAL;
            }
            o->threads = (unsigned)v;
        } else if (strcmp(name, "--compare") == 0) {
            if (parse_compare(val, o) != 0)
                return -EINVAL;
        } else if (strcmp(name, "--duplicates") == 0) {
            if (parse_uint(val, 0, 100, &v) != 0) {
                usage_error("--duplicates: '%s' is not a percentage in 0..100", val);
                return -EINVAL;
            }
            o->generate = true;
            o->duplicates = (unsigned)v;
        } else if (strcmp(name, "--quantization") == 0) {
            if (vf_quant_parse(val, &o->quant) != 0) {
                usage_error("--quantization: '%s' is not none or int8", val);
                return -EINVAL;
            }
        } else if (strcmp(name, "--rerank") == 0) {
            if (parse_uint(val, 1, VF_RERANK_MAX, &v) != 0) {
                usage_error("--rerank: '%s' is not an integer in 1..%u", val, VF_RERANK_MAX);
                return -EINVAL;
            }
            o->rerank = (unsigned)v;
        }
    }
    if (o->generate && (o->base != NULL || o->queries != NULL)) {
        usage_error("--duplicates generates the data: no --base or --queries with it");
        return -EINVAL;
    }
    if (!o->generate && (o->base == NULL || o->queries == NULL)) {
        usage_error("--base and --queries (or --duplicates) are required");
        return -EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Timing and statistics                                                */
/* ------------------------------------------------------------------ */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ */
/* The query loop, shared by every engine                               */
/* ------------------------------------------------------------------ */

/* One engine as the query loop sees it. search() must be thread-safe;
 * scratch is a per-thread buffer of k vf_hits. */
typedef struct searcher {
    int (*search)(void *ctx, const float *query, size_t k, size_t ef, vf_hit *scratch,
                  uint32_t *ids, size_t *n_out);
    void *ctx;
} searcher;

typedef struct run_state {
    const searcher *s;
    const float *queries;
    size_t dim, nq, k, ef;
    int32_t *res;       /* nq x k ids, -1 padded */
    double *lat_us;     /* nq latencies */
    atomic_size_t next; /* the next query to take */
    atomic_int err;     /* first error, 0 if none */
} run_state;

static void *run_worker(void *arg)
{
    run_state *r = arg;
    vf_hit *scratch = malloc(r->k * sizeof(*scratch));
    uint32_t *ids = malloc(r->k * sizeof(*ids));

    if (scratch == NULL || ids == NULL) {
        int zero = 0;
        atomic_compare_exchange_strong(&r->err, &zero, -ENOMEM);
        goto out;
    }
    for (;;) {
        size_t q = atomic_fetch_add(&r->next, 1);
        size_t got = 0;
        double t0, t1;
        int rc;

        if (q >= r->nq || atomic_load(&r->err) != 0)
            break;
        t0 = now_seconds();
        rc = r->s->search(r->s->ctx, r->queries + q * r->dim, r->k, r->ef, scratch, ids, &got);
        t1 = now_seconds();
        if (rc != 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&r->err, &zero, rc);
            break;
        }
        r->lat_us[q] = (t1 - t0) * 1e6;
        for (size_t i = 0; i < r->k; i++)
            r->res[q * r->k + i] = i < got ? (int32_t)ids[i] : -1;
    }
out:
    free(ids);
    free(scratch);
    return NULL;
}

typedef struct run_result {
    size_t ef;
    double recall; /* by id: the figure docs/performance.md has always shown */
    double recall_distance;
    size_t copy_misses;
    double qps, mean_us, p99_us;
} run_result;

/* Runs nq queries at ef on `threads` threads; fills res (nq x k) and the
 * figures in *out (scored against truth after the timed run). Returns 0,
 * -ENOMEM, -EAGAIN (no thread) or the engine's error. */
static int run_queries(const searcher *s, const float *queries, size_t nq, size_t dim, size_t k,
                       size_t ef, unsigned threads, const bench_truth *truth, int32_t *res,
                       run_result *out)
{
    pthread_t tid[MAX_THREADS];
    unsigned started = 0;
    run_state r;
    double t0, t1, sum = 0;
    bench_score score;
    int rc = 0;

    memset(&r, 0, sizeof(r));
    r.s = s;
    r.queries = queries;
    r.dim = dim;
    r.nq = nq;
    r.k = k;
    r.ef = ef;
    r.res = res;
    r.lat_us = malloc(nq * sizeof(double));
    atomic_init(&r.next, 0);
    atomic_init(&r.err, 0);
    if (r.lat_us == NULL)
        return -ENOMEM;
    t0 = now_seconds();
    for (unsigned t = 0; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, run_worker, &r) != 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&r.err, &zero, -EAGAIN);
            break;
        }
        started++;
    }
    for (unsigned t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    t1 = now_seconds();
    rc = atomic_load(&r.err);
    if (rc != 0)
        goto out;
    for (size_t q = 0; q < nq; q++)
        sum += r.lat_us[q];
    qsort(r.lat_us, nq, sizeof(double), cmp_double);
    /* -1 padding is (uint32_t)-1 here: outside the base, it scores nothing. */
    bench_truth_score(truth, nq, (const uint32_t *)res, k, NULL, &score);
    out->ef = ef;
    out->recall = score.recall_id;
    out->recall_distance = score.recall_distance;
    out->copy_misses = score.copy_misses;
    out->qps = (double)nq / (t1 - t0);
    out->mean_us = sum / (double)nq;
    {
        size_t idx = (size_t)((double)nq * 0.99 + 0.999999);
        out->p99_us = r.lat_us[(idx > 0 ? idx - 1 : 0) < nq ? (idx > 0 ? idx - 1 : 0) : nq - 1];
    }
out:
    free(r.lat_us);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The engines                                                          */
/* ------------------------------------------------------------------ */

/* The vecfs searcher's state: the index and, for int8, its originals. */
typedef struct vecfs_ctx {
    vf_hnsw *h;
    vf_vec_source src;
    unsigned rerank;
} vecfs_ctx;

static int vecfs_search(void *ctx, const float *query, size_t k, size_t ef, vf_hit *scratch,
                        uint32_t *ids, size_t *n_out)
{
    const vecfs_ctx *v = ctx;
    size_t got = 0;
    int rc = vf_hnsw_search_rerank(v->h, query, k, ef, v->rerank, NULL, v->src.get ? &v->src : NULL,
                                   scratch, &got);

    if (rc != 0)
        return rc;
    for (size_t i = 0; i < got; i++)
        ids[i] = scratch[i].id;
    *n_out = got;
    return 0;
}

/* What one engine measured, for the table and the JSON. */
typedef struct engine_report {
    const char *name;
    double build_seconds;
    double bytes_per_vector;
    double original_bytes_per_vector; /* vecfs-int8: the mmapped originals; else 0 */
    size_t queries_run;
    run_result runs[MAX_EFS];
    size_t n_runs;
} engine_report;

typedef struct bench {
    options opt;
    bench_matrix base, queries, gt;
    size_t gt_dim;
    bench_truth truth; /* scores every run against gt */
    unsigned cores;
    json_t *engines;                    /* JSON array of engine objects */
    engine_report reports[MAX_ENGINES]; /* what each engine measured, for the summary */
    size_t n_reports;
} bench;

static void print_table_head(const bench *b, const engine_report *e, const char *extra)
{
    printf("\n== %s: build %.2f s on %u threads, %.1f bytes/vector%s\n", e->name, e->build_seconds,
           b->cores, e->bytes_per_vector, extra);
    printf("%8s %10s %11s %12s %10s %10s %11s\n", "ef", "recall", "recall_dist", "QPS", "mean_us",
           "p99_us", "copy_misses");
}

static void print_run(const run_result *r)
{
    char ef[24] = "-";

    if (r->ef != 0)
        snprintf(ef, sizeof(ef), "%zu", r->ef);
    printf("%8s %10.4f %11.4f %12.1f %10.1f %10.1f %11zu\n", ef, r->recall, r->recall_distance,
           r->qps, r->mean_us, r->p99_us, r->copy_misses);
    fflush(stdout);
}

/* Adds e to b->engines. Returns 0 or -ENOMEM. */
static int report_json(bench *b, const engine_report *e)
{
    json_t *obj = json_object(), *runs = json_array();
    int rc = -ENOMEM;

    if (obj == NULL || runs == NULL)
        goto out;
    if (json_object_set_new(obj, "name", json_string(e->name)) != 0 ||
        json_object_set_new(obj, "build_seconds", json_real(e->build_seconds)) != 0 ||
        json_object_set_new(obj, "bytes_per_vector", json_real(e->bytes_per_vector)) != 0)
        goto out;
    if (e->original_bytes_per_vector > 0 &&
        json_object_set_new(obj, "original_bytes_per_vector",
                            json_real(e->original_bytes_per_vector)) != 0)
        goto out;
    for (size_t i = 0; i < e->n_runs; i++) {
        const run_result *r = &e->runs[i];
        json_t *run = json_pack("{s:I,s:f,s:f,s:I,s:f,s:f,s:f}", "ef", (json_int_t)r->ef, "recall",
                                r->recall, "recall_distance", r->recall_distance, "copy_misses",
                                (json_int_t)r->copy_misses, "qps", r->qps, "mean_us", r->mean_us,
                                "p99_us", r->p99_us);
        if (run == NULL || json_array_append_new(runs, run) != 0)
            goto out;
    }
    if (json_object_set(obj, "runs", runs) != 0 || json_array_append(b->engines, obj) != 0)
        goto out;
    if (b->n_reports < sizeof(b->reports) / sizeof(b->reports[0]))
        b->reports[b->n_reports++] = *e;
    rc = 0;
out:
    json_decref(runs);
    json_decref(obj);
    return rc;
}

/* The queries an engine runs: all of them, or a prefix for exact search. */
static size_t queries_for(const bench *b, bool uses_ef)
{
    if (!uses_ef && b->queries.n > FLAT_MAX_QUERIES)
        return FLAT_MAX_QUERIES;
    return b->queries.n;
}

#if defined(VECFS_HAVE_HNSWLIB) || defined(VECFS_HAVE_FAISS)
/* A peer's searcher state: its operations and its index. */
typedef struct peer_ctx {
    const bench_peer_ops *ops;
    void *state;
} peer_ctx;
#endif

/* One engine with its index built, as the measuring loop sees it. The
 * searcher's ctx points into the struct, which therefore never moves. */
typedef struct bench_engine {
    engine_report e;
    char extra[160]; /* the rest of its table's head line */
    searcher s;
    bool uses_ef;
    bool write_results;                     /* --results holds its answers */
    void (*set_ef)(void *state, size_t ef); /* NULL: ef goes with each call */
    void *set_ef_state;
    int32_t *res; /* nq x k answers of its latest run */
    vecfs_ctx vc;
    bench_originals orig;
#if defined(VECFS_HAVE_HNSWLIB) || defined(VECFS_HAVE_FAISS)
    peer_ctx pc;
#endif
} bench_engine;

/* Frees what an engine holds; a zeroed one is a no-op. */
static void engine_free(bench_engine *g)
{
    vf_hnsw_free(g->vc.h);
    bench_originals_close(&g->orig);
#if defined(VECFS_HAVE_HNSWLIB) || defined(VECFS_HAVE_FAISS)
    if (g->pc.state != NULL)
        g->pc.ops->free(g->pc.state);
#endif
    free(g->res);
    memset(g, 0, sizeof(*g));
}

/* Writes the answers of g's latest run at ef to --results. */
static int write_results(const bench *b, const bench_engine *g, size_t ef)
{
    char path[PATH_MAX], err[512];
    int rc;

    if (snprintf(path, sizeof(path), "%s-ef%zu.ivecs", b->opt.results, ef) >= (int)sizeof(path)) {
        fprintf(stderr, PROG ": --results: prefix too long\n");
        return -ENAMETOOLONG;
    }
    rc = bench_ivecs_write(path, g->res, g->e.queries_run, b->opt.k, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, PROG ": %s\n", err);
    return rc;
}

/* Measures every engine: a warm-up each, then for each ef RUNS_PER_EF
 * rounds in which every engine runs all queries once, the fastest run of
 * each kept. The engines take turns inside each round, so a slow spell of
 * the machine falls on all of them instead of deciding the ratio between
 * them: on a shared VM, vecfs's float32 mnist784 at ef 12 ran 7,117 QPS
 * in one process and 9,914 in the next, two minutes later
 * (docs/performance.md "Engines in turns").
 * An engine without ef runs once, in the first round. */
static int measure_engines(bench *b, bench_engine *g, size_t n)
{
    const options *o = &b->opt;
    int rc;

    for (size_t j = 0; j < n; j++) {
        size_t nq = queries_for(b, g[j].uses_ef);
        run_result warm;
        g[j].e.queries_run = nq;
        g[j].res = malloc(nq * o->k * sizeof(int32_t));
        if (g[j].res == NULL)
            return -ENOMEM;
        if (g[j].set_ef != NULL)
            g[j].set_ef(g[j].set_ef_state, g[j].uses_ef ? o->efs[0] : 1);
        rc = run_queries(&g[j].s, (const float *)b->queries.data,
                         nq < WARMUP_QUERIES ? nq : WARMUP_QUERIES, b->queries.dim, o->k,
                         g[j].uses_ef ? o->efs[0] : 0, o->threads, &b->truth, g[j].res, &warm);
        if (rc != 0) {
            fprintf(stderr, PROG ": %s: search failed: %s\n", g[j].e.name, strerror(-rc));
            return rc;
        }
    }
    for (size_t i = 0; i < o->n_efs; i++) {
        for (int rep = 0; rep < RUNS_PER_EF; rep++) {
            for (size_t j = 0; j < n; j++) {
                engine_report *e = &g[j].e;
                size_t ef = g[j].uses_ef ? o->efs[i] : 0;
                run_result r;
                if (!g[j].uses_ef && (i > 0 || rep > 0))
                    continue;
                if (g[j].set_ef != NULL)
                    g[j].set_ef(g[j].set_ef_state, ef ? ef : 1);
                rc = run_queries(&g[j].s, (const float *)b->queries.data, e->queries_run,
                                 b->queries.dim, o->k, ef, o->threads, &b->truth, g[j].res, &r);
                if (rc != 0) {
                    fprintf(stderr, PROG ": %s: search failed: %s\n", e->name, strerror(-rc));
                    return rc;
                }
                size_t row = g[j].uses_ef ? i : 0;
                if (rep == 0 || r.qps > e->runs[row].qps)
                    e->runs[row] = r;
                e->n_runs = row + 1;
                if (rep == 0 && g[j].write_results && o->results != NULL) {
                    rc = write_results(b, &g[j], ef);
                    if (rc != 0)
                        return rc;
                }
            }
        }
    }
    return 0;
}

/* Prints each engine's table and adds it to the JSON. */
static int report_engines(bench *b, const bench_engine *g, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        print_table_head(b, &g[j].e, g[j].extra);
        for (size_t i = 0; i < g[j].e.n_runs; i++)
            print_run(&g[j].e.runs[i]);
        if (report_json(b, &g[j].e) != 0) {
            fprintf(stderr, PROG ": out of memory\n");
            return -ENOMEM;
        }
    }
    return 0;
}

static int build_vecfs(bench *b, bench_engine *g)
{
    const options *o = &b->opt;
    engine_report *e = &g->e;
    vf_hnsw_params p;
    double t0;
    int rc;

    e->name = o->quant == VF_QUANT_INT8 ? "vecfs-int8" : "vecfs";
    g->vc.rerank = o->rerank;
    vf_hnsw_params_default(&p, (uint32_t)b->base.dim);
    p.metric = o->metric;
    p.m = o->m;
    p.ef_construction = o->efc;
    p.quantization = o->quant;
    if (o->rerank)
        p.rerank = o->rerank;
    rc = vf_hnsw_create(&p, &g->vc.h);
    if (rc != 0) {
        fprintf(stderr, PROG ": vecfs: cannot create the index: %s\n", strerror(-rc));
        return rc;
    }
    vf_hnsw *h = g->vc.h;
    rc = vf_hnsw_reserve(h, b->base.n);
    if (rc != 0) {
        fprintf(stderr, PROG ": vecfs: cannot reserve %zu vectors: %s\n", b->base.n, strerror(-rc));
        return rc;
    }
    t0 = now_seconds();
    rc = vf_hnsw_insert_batch(h, NULL, 0, (const float *)b->base.data, b->base.n, 0);
    e->build_seconds = now_seconds() - t0;
    if (rc != 0) {
        fprintf(stderr, PROG ": vecfs: build failed: %s\n", strerror(-rc));
        return rc;
    }
    if (vf_hnsw_count(h) != b->base.n) {
        fprintf(stderr, PROG ": vecfs: index holds %zu vectors after inserting %zu\n",
                vf_hnsw_count(h), b->base.n);
        return -EIO;
    }
    if (o->quant == VF_QUANT_INT8) {
        char err[512];
        if (o->generate) {
            bench_originals_rows(&g->orig, (const float *)b->base.data, b->base.n, b->base.dim);
        } else {
            rc = bench_originals_map(&g->orig, o->base, b->base.n, b->base.dim, err, sizeof(err));
            if (rc != 0) {
                fprintf(stderr, PROG ": vecfs-int8: %s\n", err);
                return rc;
            }
        }
        e->original_bytes_per_vector = bench_originals_bytes_per_vector(&g->orig);
        g->vc.src = bench_originals_source(&g->orig);
    }
    /* Warm scratch is part of the index's RAM: count it after a search. */
    {
        vf_hit warm[1];
        size_t got;
        vf_hnsw_search_rerank(h, (const float *)b->queries.data, 1, 0, g->vc.rerank, NULL,
                              g->vc.src.get ? &g->vc.src : NULL, warm, &got);
    }
    e->bytes_per_vector = (double)vf_hnsw_memory(h) / (double)b->base.n;
    vf_hnsw_params_get(h, &p);
    if (o->quant == VF_QUANT_INT8)
        snprintf(g->extra, sizeof(g->extra), ", kernel %s, rerank %u, originals %.1f bytes/vector",
                 vf_kernels_best()->name, p.rerank, e->original_bytes_per_vector);
    else
        snprintf(g->extra, sizeof(g->extra), ", kernel %s", vf_kernels_best()->name);
    g->s.search = vecfs_search;
    g->s.ctx = &g->vc;
    g->uses_ef = true;
    g->write_results = true;
    return 0;
}

#if defined(VECFS_HAVE_HNSWLIB) || defined(VECFS_HAVE_FAISS)
static int peer_search(void *ctx, const float *query, size_t k, size_t ef, vf_hit *scratch,
                       uint32_t *ids, size_t *n_out)
{
    peer_ctx *p = ctx;

    (void)ef; /* set once per run by set_ef */
    (void)scratch;
    return p->ops->search(p->state, query, k, ids, n_out);
}

static int build_peer(bench *b, const bench_peer_ops *ops, bench_engine *g)
{
    const options *o = &b->opt;
    engine_report *e = &g->e;
    bench_peer_config cfg;
    char err[512] = "";
    double t0;
    int rc;

    e->name = ops->name;
    g->pc.ops = ops;
    cfg.dim = b->base.dim;
    cfg.metric = o->metric;
    cfg.m = o->m;
    cfg.ef_construction = o->efc;
    cfg.build_threads = b->cores;
    t0 = now_seconds();
    rc = ops->build(&cfg, (const float *)b->base.data, b->base.n, &g->pc.state, err, sizeof(err));
    e->build_seconds = now_seconds() - t0;
    if (rc != 0) {
        fprintf(stderr, PROG ": %s: build failed: %s\n", ops->name, err);
        return rc;
    }
    e->bytes_per_vector = (double)ops->memory(g->pc.state) / (double)b->base.n;
    if (!ops->uses_ef && queries_for(b, false) < b->queries.n)
        snprintf(g->extra, sizeof(g->extra), ", exact (first %zu of %zu queries)",
                 queries_for(b, false), b->queries.n);
    else if (!ops->uses_ef)
        snprintf(g->extra, sizeof(g->extra), ", exact");
    g->s.search = peer_search;
    g->s.ctx = &g->pc;
    g->uses_ef = ops->uses_ef;
    g->set_ef = ops->set_ef;
    g->set_ef_state = g->pc.state;
    return 0;
}
#endif

/* ------------------------------------------------------------------ */
/* Input and ground truth                                               */
/* ------------------------------------------------------------------ */

/* Returns 0, 2 (unusable input, message printed) or 1 (runtime error). */
static int load_inputs(bench *b)
{
    const options *o = &b->opt;
    char err[512];
    int rc;

    if (o->generate) {
        if (bench_duplicates_make(o->duplicates, &b->base, &b->queries) != 0) {
            fprintf(stderr, PROG ": --duplicates: out of memory\n");
            return 1;
        }
        goto check;
    }
    rc = bench_fvecs_read(o->base, &b->base, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, PROG ": --base: %s\n", err);
        return rc == -ENOMEM ? 1 : 2;
    }
    rc = bench_fvecs_read(o->queries, &b->queries, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, PROG ": --queries: %s\n", err);
        return rc == -ENOMEM ? 1 : 2;
    }
check:
    if (b->queries.dim != b->base.dim) {
        fprintf(stderr, PROG ": --queries: dim %zu, but the base has dim %zu\n", b->queries.dim,
                b->base.dim);
        return 2;
    }
    if (b->base.n >= UINT32_MAX || b->base.n > INT32_MAX) {
        fprintf(stderr, PROG ": --base: %zu vectors is more than ids can number\n", b->base.n);
        return 2;
    }
    if (o->k > b->base.n) {
        fprintf(stderr, PROG ": --k %zu is larger than the base (%zu vectors)\n", o->k, b->base.n);
        return 2;
    }
    if (o->gt == NULL)
        return 0;
    rc = bench_ivecs_read(o->gt, &b->gt, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, PROG ": --gt: %s\n", err);
        return rc == -ENOMEM ? 1 : 2;
    }
    if (b->gt.n != b->queries.n || b->gt.dim < o->k) {
        fprintf(stderr, PROG ": --gt: %zu rows of %zu ids, need %zu rows of at least %zu\n",
                b->gt.n, b->gt.dim, b->queries.n, o->k);
        return 2;
    }
    b->gt_dim = b->gt.dim;
    for (size_t i = 0; i < b->gt.n * b->gt.dim; i++) {
        int32_t id = ((const int32_t *)b->gt.data)[i];
        if (id < 0 || (size_t)id >= b->base.n) {
            fprintf(stderr, PROG ": --gt: row %zu holds id %d, outside the base (0..%zu)\n",
                    i / b->gt.dim, id, b->base.n - 1);
            return 2;
        }
    }
    return 0;
}

/* Exact top-k of every query on all cores into b->gt. Returns 0 or a
 * negative errno. */
static int compute_gt(bench *b)
{
    double t0 = now_seconds();
    int32_t *gt;
    int rc = bench_truth_exact(&b->base, &b->queries, b->opt.metric, b->opt.k, &gt);

    if (rc != 0)
        return rc;
    printf("ground truth: exact top-%zu by vf_flat_search_batch on %u threads in %.2f s\n",
           b->opt.k, b->cores, now_seconds() - t0);
    b->gt.data = gt;
    b->gt.n = b->queries.n;
    b->gt.dim = b->opt.k;
    b->gt_dim = b->opt.k;
    return 0;
}

static int write_json(bench *b)
{
    const options *o = &b->opt;
    json_t *root = NULL;
    char tmp[PATH_MAX];
    int rc = -ENOMEM;

    root = json_pack("{s:{s:I,s:I,s:I,s:s},s:O}", "dataset", "base", (json_int_t)b->base.n,
                     "queries", (json_int_t)b->queries.n, "dim", (json_int_t)b->base.dim, "metric",
                     vf_metric_name(o->metric), "engines", b->engines);
    if (root == NULL)
        goto out;
    if (o->generate && json_object_set_new(json_object_get(root, "dataset"), "duplicates",
                                           json_integer(o->duplicates)) != 0)
        goto out;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", o->json) >= (int)sizeof(tmp)) {
        rc = -ENAMETOOLONG;
        fprintf(stderr, PROG ": --json: path too long\n");
        goto out;
    }
    if (json_dump_file(root, tmp, JSON_INDENT(2) | JSON_REAL_PRECISION(8)) != 0) {
        rc = -EIO;
        fprintf(stderr, PROG ": --json: cannot write %s\n", tmp);
        goto out;
    }
    if (rename(tmp, o->json) != 0) {
        rc = -errno;
        fprintf(stderr, PROG ": --json: cannot rename %s to %s: %s\n", tmp, o->json,
                strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

#if !defined(VECFS_HAVE_HNSWLIB) || !defined(VECFS_HAVE_FAISS)
static void peer_missing(const char *name)
{
    printf("\npeer %s not built\n", name);
}
#endif

/* One line per engine: the fastest run that reaches recall 0.95 (by id, as
 * the tables of docs/performance.md always were), or the best recall it
 * reached. */
static void print_summary(const bench *b)
{
    printf("\nsummary (recall@%zu >= 0.95, %u search thread%s):\n", b->opt.k, b->opt.threads,
           b->opt.threads == 1 ? "" : "s");
    for (size_t i = 0; i < b->n_reports; i++) {
        const engine_report *e = &b->reports[i];
        const run_result *best = NULL;
        double top = 0, top_distance = 0;
        for (size_t j = 0; j < e->n_runs; j++) {
            const run_result *r = &e->runs[j];
            if (r->recall > top)
                top = r->recall;
            if (r->recall_distance > top_distance)
                top_distance = r->recall_distance;
            if (r->recall >= 0.95 && (best == NULL || r->qps > best->qps))
                best = r;
        }
        if (best != NULL && best->ef == 0)
            printf("  %-10s  %10.1f QPS exact (recall %.4f, by distance %.4f); build %.2f s, "
                   "%.1f bytes/vector\n",
                   e->name, best->qps, best->recall, best->recall_distance, e->build_seconds,
                   e->bytes_per_vector);
        else if (best == NULL)
            printf("  %-10s  never reached 0.95 (best recall %.4f, by distance %.4f); build %.2f "
                   "s, %.1f bytes/vector\n",
                   e->name, top, top_distance, e->build_seconds, e->bytes_per_vector);
        else
            printf("  %-10s  %10.1f QPS at ef %zu (recall %.4f, by distance %.4f); build %.2f s, "
                   "%.1f bytes/vector\n",
                   e->name, best->qps, best->ef, best->recall, best->recall_distance,
                   e->build_seconds, e->bytes_per_vector);
    }
}

int main(int argc, char **argv)
{
    static bench_engine engines[MAX_ENGINES];
    size_t n_engines = 0;
    bench b;
    long cores;
    int rc, status = 1;

    memset(&b, 0, sizeof(b));
    rc = parse_args(argc, argv, &b.opt);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return 2;
    cores = sysconf(_SC_NPROCESSORS_ONLN);
    b.cores = cores > 0 ? (unsigned)cores : 1;
    b.engines = json_array();
    if (b.engines == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    rc = load_inputs(&b);
    if (rc != 0) {
        status = rc;
        goto out;
    }
    if (b.opt.generate)
        printf("dataset: %zu base x %zu dim (generated: %u %% copies of 13 vectors), %zu queries "
               "(every other one a copy of a base row), metric %s\n",
               b.base.n, b.base.dim, b.opt.duplicates, b.queries.n, vf_metric_name(b.opt.metric));
    else
        printf("dataset: %zu base x %zu dim (%s), %zu queries (%s), metric %s\n", b.base.n,
               b.base.dim, b.opt.base, b.queries.n, b.opt.queries, vf_metric_name(b.opt.metric));
    printf("params: k %zu, M %u, efConstruction %u, search threads %u, build threads %u "
           "(all cores), kernel %s\n",
           b.opt.k, b.opt.m, b.opt.efc, b.opt.threads, b.cores, vf_kernels_best()->name);
    if (b.opt.gt != NULL) {
        printf("ground truth: %s\n", b.opt.gt);
    } else {
        rc = compute_gt(&b);
        if (rc != 0) {
            fprintf(stderr, PROG ": ground truth failed: %s\n", strerror(-rc));
            goto out;
        }
    }
    rc =
        bench_truth_init(&b.truth, &b.base, &b.queries, b.opt.metric, b.gt.data, b.gt_dim, b.opt.k);
    if (rc != 0) {
        fprintf(stderr, PROG ": ground truth failed: %s\n", strerror(-rc));
        goto out;
    }
    fflush(stdout);
    if (build_vecfs(&b, &engines[n_engines++]) != 0)
        goto out;
    if (b.opt.cmp_hnswlib) {
#ifdef VECFS_HAVE_HNSWLIB
        if (build_peer(&b, &bench_peer_hnswlib, &engines[n_engines++]) != 0)
            goto out;
#else
        peer_missing("hnswlib");
#endif
    }
#ifdef VECFS_HAVE_FAISS
    if (b.opt.cmp_faiss_hnsw && build_peer(&b, &bench_peer_faiss_hnsw, &engines[n_engines++]) != 0)
        goto out;
    if (b.opt.cmp_faiss_flat && build_peer(&b, &bench_peer_faiss_flat, &engines[n_engines++]) != 0)
        goto out;
#else
    if (b.opt.cmp_faiss_hnsw || b.opt.cmp_faiss_flat)
        peer_missing("faiss");
#endif
    if (measure_engines(&b, engines, n_engines) != 0 || report_engines(&b, engines, n_engines) != 0)
        goto out;
    print_summary(&b);
    if (b.opt.json != NULL && write_json(&b) != 0)
        goto out;
    status = 0;
out:
    for (size_t j = 0; j < n_engines; j++)
        engine_free(&engines[j]);
    json_decref(b.engines);
    bench_truth_release(&b.truth);
    bench_matrix_release(&b.gt);
    bench_matrix_release(&b.queries);
    bench_matrix_release(&b.base);
    return status;
}
