/*
 * vecfs-bench-shards — a collection larger than one node, simulated in one
 * process over the real engine (docs/scale-out.md §10): the base is split
 * into S index shards, by a hash of the vector's name or by k-means
 * clustering, and every query fans out to the shards and merges their
 * top-k; recall and cost are compared with one index of the same data.
 *
 *   vecfs-bench-shards --base B.fvecs --queries Q.fvecs [--metric l2|cosine|dot]
 *       [--k 10] [--m 16] [--efc 200] [--ef 10,20,40,80,160] [--shards 2,4,8]
 *       [--assign hash,kmeans] [--probes 1,2,4] [--threads 1] [--build-threads 0]
 *       [--kmeans-sample 20000] [--kmeans-iterations 10] [--seed 1] [--repeat 3]
 *       [--json OUT.json]
 *
 * What one run does:
 *   1. reads the base and the queries; exact top-k of every query by
 *      vf_flat_search_batch (the truth every row is scored against);
 *   2. builds the single index (S = 1: every row in one vf_hnsw) and
 *      measures it at every ef;
 *   3. for each assignment and each S of --shards (S = 1 is the single
 *      index and is not built again; k-means with S = 1 is the same
 *      index), builds the S shards one after the other, each on
 *      --build-threads, and measures every ef (hash: all shards; k-means:
 *      each P of --probes that is below S, and P = S), then frees them.
 *
 * How a query is run (shards.h): the shards it goes to are searched one
 * after the other on the query's thread, each with the same k and ef, and
 * each search is timed on its own in the thread's CPU time (a busy
 * machine's preemptions do not count); the lists are merged by distance. The
 * shards are NOT searched by parallel threads: on a machine with fewer
 * cores than shards, threads would measure the machine's core count, not
 * the design. A node per shard is modelled from the per-shard times.
 *
 * Figures per row (docs/performance.md, "Sharding simulation", repeats
 * them):
 *   recall, recall_dist  recall@k by id and by distance (bench/recall.h).
 *   reach       the share of the true top-k that lies in the shards the
 *               query searched: the ceiling on recall that probing only P
 *               shards sets (1 for hash and for P = S).
 *   QPS         queries / wall time, every shard on this one machine on
 *               --threads threads: the CPU the fan-out costs in total.
 *   work_us     mean per query of the shards' search CPU times added up
 *               (with routing and merge): the CPU one query costs.
 *   merge_us    mean per query of choosing the shards (k-means: ranking
 *               the centroids) and merging their lists, CPU time.
 *   model_us, model_p50, model_p99  mean, median and 99th percentile
 *               over the queries of: the slowest searched shard's CPU
 *               time plus the routing and the merge. The latency if every shard were
 *               on its own node and the network cost nothing (add one
 *               round trip to the farthest node for a real cluster).
 *   model_QPS   queries / the busiest shard's total search CPU time: the
 *               throughput of S nodes of one search thread each, each
 *               node holding one shard (for S = 1: one node).
 * Each ef runs --repeat times; the run with the best wall time is kept
 * (the figures above all come from that run; recall is the same in all).
 *
 * Exit status: 0 success, 1 a runtime failure, 2 bad arguments or input
 * files — each with one line on stderr.
 */
#include "alloc.h"
#include "cli.h"
#include "engine.h"
#include "fanout.h"
#include "fvecs.h"
#include "recall.h"
#include "shards.h"
#include "timing.h"

#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "vecfs-bench-shards"
#define MAX_LIST 16
#define MAX_K 1024
#define MAX_SHARDS 256
#define WARMUP_QUERIES 200

static const char usage_text[] =
    "usage: " PROG " --base B.fvecs --queries Q.fvecs [--metric l2|cosine|dot]\n"
    "           [--k 10] [--m 16] [--efc 200] [--ef 10,20,40,80,160] [--shards 2,4,8]\n"
    "           [--assign hash,kmeans] [--probes 1,2,4] [--threads 1] [--build-threads 0]\n"
    "           [--kmeans-sample 20000] [--kmeans-iterations 10] [--seed 1] [--repeat 3]\n"
    "           [--json OUT.json]\n"
    "Splits the base into S index shards (hash of the name, or k-means with\n"
    "queries sent to the P nearest shards), fans every query out, merges the\n"
    "top-k and compares recall and cost with one index of the same data.\n";

/* ------------------------------------------------------------------ */
/* Options                                                              */
/* ------------------------------------------------------------------ */

/* A comma-separated list of integers. */
typedef struct num_list {
    size_t v[MAX_LIST];
    size_t n;
} num_list;

typedef struct options {
    const char *base, *queries, *json;
    vf_metric metric;
    size_t k, m, efc, threads, build_threads, kmeans_sample, kmeans_iterations, seed, repeat;
    num_list efs, shards, probes;
    bool assign[2]; /* indexed by bench_assign */
} options;

/* A usage error of this program: one line, a hint; returns 2. */
#define usage(...) bench_usage_error(PROG, __VA_ARGS__)

/* Reads integers in lo..hi separated by single commas, the whole string,
 * at most MAX_LIST of them (one when `one`). 0 or -EINVAL. */
static int parse_nums(const char *s, size_t lo, size_t hi, bool one, num_list *out)
{
    out->n = 0;
    for (;;) {
        char *end;
        unsigned long long v;
        if (*s < '0' || *s > '9' || out->n == (one ? 1 : MAX_LIST))
            return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || v < lo || v > hi)
            return -EINVAL;
        out->v[out->n++] = (size_t)v;
        if (*end == '\0')
            return 0;
        if (*end != ',')
            return -EINVAL;
        s = end + 1;
    }
}

/* Reads "hash", "kmeans" or both, comma-separated. 0 or -EINVAL. */
static int parse_assign(const char *s, options *o)
{
    o->assign[BENCH_ASSIGN_HASH] = o->assign[BENCH_ASSIGN_KMEANS] = false;
    while (*s != '\0') {
        size_t len = strcspn(s, ",");
        if (len == 4 && strncmp(s, "hash", 4) == 0)
            o->assign[BENCH_ASSIGN_HASH] = true;
        else if (len == 6 && strncmp(s, "kmeans", 6) == 0)
            o->assign[BENCH_ASSIGN_KMEANS] = true;
        else
            return -EINVAL;
        s += len;
        if (*s == ',' && *++s == '\0')
            return -EINVAL;
    }
    return 0;
}

/* Fills o from argv ("--opt value" pairs). Returns 0, 1 for --help, or 2
 * after printing the reason. */
static int parse_args(int argc, char **argv, options *o)
{
    struct {
        const char *name;
        size_t lo, hi;
        size_t *one;    /* a single number, or */
        num_list *list; /* a list */
    } nums[] = {
        {"--k", 1, MAX_K, &o->k, NULL},
        {"--m", 2, 256, &o->m, NULL},
        {"--efc", 1, 100000, &o->efc, NULL},
        {"--threads", 1, VC_THREADS_MAX, &o->threads, NULL},
        {"--build-threads", 0, VC_THREADS_MAX, &o->build_threads, NULL},
        {"--kmeans-sample", 1, 100000000, &o->kmeans_sample, NULL},
        {"--kmeans-iterations", 0, 1000, &o->kmeans_iterations, NULL},
        {"--seed", 0, SIZE_MAX, &o->seed, NULL},
        {"--repeat", 1, 100, &o->repeat, NULL},
        {"--ef", 1, 100000, NULL, &o->efs},
        {"--shards", 1, MAX_SHARDS, NULL, &o->shards},
        {"--probes", 1, MAX_SHARDS, NULL, &o->probes},
    };
    const options defaults = {.metric = VF_METRIC_L2,
                              .k = 10,
                              .m = 16,
                              .efc = 200,
                              .threads = 1,
                              .kmeans_sample = 20000,
                              .kmeans_iterations = 10,
                              .seed = 1,
                              .repeat = 3,
                              .efs = {{10, 20, 40, 80, 160}, 5},
                              .shards = {{2, 4, 8}, 3},
                              .probes = {{1, 2, 4}, 3},
                              .assign = {true, true}};

    *o = defaults;
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i], *val;
        size_t j = 0;

        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (strncmp(name, "--", 2) != 0)
            return usage("unexpected argument '%s'", name);
        while (j < sizeof(nums) / sizeof(nums[0]) && strcmp(name, nums[j].name) != 0)
            j++;
        if (j == sizeof(nums) / sizeof(nums[0]) && strcmp(name, "--base") != 0 &&
            strcmp(name, "--queries") != 0 && strcmp(name, "--json") != 0 &&
            strcmp(name, "--metric") != 0 && strcmp(name, "--assign") != 0)
            return usage("unknown option '%s'", name);
        if (i + 1 >= argc || argv[i + 1][0] == '\0')
            return usage("%s needs a value", name);
        val = argv[++i];
        if (j < sizeof(nums) / sizeof(nums[0])) {
            num_list l;
            if (parse_nums(val, nums[j].lo, nums[j].hi, nums[j].one != NULL, &l) != 0)
                return usage("%s: '%s' is not %s in %zu..%zu", name, val,
                             nums[j].one != NULL ? "an integer" : "a list of integers", nums[j].lo,
                             nums[j].hi);
            if (nums[j].one != NULL)
                *nums[j].one = l.v[0];
            else
                *nums[j].list = l;
        } else if (strcmp(name, "--base") == 0) {
            o->base = val;
        } else if (strcmp(name, "--queries") == 0) {
            o->queries = val;
        } else if (strcmp(name, "--json") == 0) {
            o->json = val;
        } else if (strcmp(name, "--metric") == 0) {
            if (vf_metric_parse(val, &o->metric) != 0)
                return usage("--metric: '%s' is not l2, cosine or dot", val);
        } else if (parse_assign(val, o) != 0) {
            return usage("--assign: '%s' is not hash, kmeans or hash,kmeans", val);
        }
    }
    if (o->base == NULL || o->queries == NULL)
        return usage("--base and --queries are required");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Measuring one shard set at one ef and probe count                    */
/* ------------------------------------------------------------------ */

/* The queries of one run, shared by its threads. */
typedef struct run_state {
    const bench_shards *s;
    const float *queries;
    size_t dim, nq, k, ef, probes;
    uint32_t *ids;      /* nq x k, UINT32_MAX past a short result */
    double *model_s;    /* nq: slowest shard + routing and merge */
    double *work_s;     /* nq: the shards' times added up */
    double *merge_s;    /* nq: routing and merge */
    double *shard_s;    /* nq x S: each shard's time */
    atomic_size_t next; /* the next query to take */
    atomic_int err;     /* first error, 0 if none */
} run_state;

static void *run_worker(void *arg)
{
    run_state *r = arg;
    bench_fanout f = BENCH_FANOUT_INIT;
    vf_hit *out = vc_malloc(r->k * sizeof(*out));
    int rc = out == NULL ? -ENOMEM : bench_fanout_init(&f, r->s, r->k);

    for (size_t q; rc == 0 && (q = atomic_fetch_add(&r->next, 1)) < r->nq;) {
        bench_fanout_cost cost;
        double *shard_s = r->shard_s + q * r->s->count;
        size_t got = 0;

        if (atomic_load(&r->err) != 0)
            break;
        rc = bench_shards_search(r->s, &f, r->queries + q * r->dim, r->k, r->ef, r->probes, out,
                                 &got, shard_s, &cost);
        if (rc != 0)
            break;
        r->model_s[q] = cost.slowest_seconds + cost.merge_seconds;
        r->work_s[q] = cost.merge_seconds;
        r->merge_s[q] = cost.merge_seconds;
        for (size_t i = 0; i < r->s->count; i++)
            r->work_s[q] += shard_s[i];
        for (size_t i = 0; i < r->k; i++)
            r->ids[q * r->k + i] = i < got ? out[i].id : UINT32_MAX;
    }
    if (rc != 0) {
        int zero = 0;
        atomic_compare_exchange_strong(&r->err, &zero, rc);
    }
    bench_fanout_release(&f);
    free(out);
    return NULL;
}

/* One row of a table. */
typedef struct run_result {
    size_t ef, probes;
    double recall, recall_distance, reach;
    double qps, work_us, merge_us, model_us, model_p50_us, model_p99_us, model_qps;
} run_result;

/* The queries and the truth every run is scored against. */
typedef struct bench {
    options opt;
    bench_matrix base, queries;
    int32_t *gt; /* nq x k exact ids */
    bench_truth truth;
    json_t *configs;
} bench;

/* Runs the first nq queries once on opt.threads threads, filling r's
 * per-query arrays; *wall = the run's wall time. 0 or a negative errno. */
static int run_once(const bench *b, run_state *r, size_t nq, double *wall)
{
    double t0;

    r->nq = nq;
    atomic_init(&r->next, 0);
    atomic_init(&r->err, 0);
    t0 = bench_now_seconds();
    vc_fanout((unsigned)b->opt.threads, run_worker, r);
    *wall = bench_now_seconds() - t0;
    return atomic_load(&r->err);
}

/* The share of the true top-k of every query that lies in the shards it
 * searches (the `reach` of the file comment). */
static double reach_of(const bench *b, const bench_shards *s, const uint32_t *shard_of_row,
                       size_t probes, size_t *order, float *dist)
{
    size_t in = 0, total = 0, k = b->opt.k, dim = b->queries.dim;

    if (s->assign == BENCH_ASSIGN_HASH || probes >= s->count)
        return 1.0;
    for (size_t q = 0; q < b->queries.n; q++) {
        bench_kmeans_rank(&s->km, (const float *)b->queries.data + q * dim, order, dist);
        for (size_t i = 0; i < k; i++) {
            int32_t row = b->gt[q * k + i];
            if (row < 0)
                continue;
            total++;
            for (size_t p = 0; p < probes; p++)
                in += order[p] == shard_of_row[row];
        }
    }
    return total ? (double)in / (double)total : 1.0;
}

/* Measures s at ef and probes: warm-up, opt.repeat timed runs, scoring. */
static int measure(const bench *b, const bench_shards *s, size_t ef, size_t probes, run_result *out)
{
    const options *o = &b->opt;
    size_t nq = b->queries.n, S = s->count;
    run_state r = {.s = s,
                   .queries = b->queries.data,
                   .dim = b->queries.dim,
                   .k = o->k,
                   .ef = ef,
                   .probes = probes};
    double *busy = vc_calloc(S, sizeof(double));
    double wall, best = 0, sum_model = 0, sum_work = 0, sum_merge = 0, busiest = 0;
    bench_score score = {0};
    int rc = -ENOMEM;

    r.ids = vc_malloc(nq * o->k * sizeof(*r.ids));
    r.model_s = vc_malloc(nq * sizeof(double));
    r.work_s = vc_malloc(nq * sizeof(double));
    r.merge_s = vc_malloc(nq * sizeof(double));
    r.shard_s = vc_malloc(nq * S * sizeof(double));
    if (busy == NULL || r.ids == NULL || r.model_s == NULL || r.work_s == NULL ||
        r.merge_s == NULL || r.shard_s == NULL)
        goto out;
    rc = run_once(b, &r, nq < WARMUP_QUERIES ? nq : WARMUP_QUERIES, &wall);
    for (size_t rep = 0; rep < o->repeat && rc == 0; rep++) {
        rc = run_once(b, &r, nq, &wall);
        if (rc != 0 || (rep > 0 && wall >= best))
            continue;
        best = wall;
        sum_model = sum_work = sum_merge = busiest = 0;
        memset(busy, 0, S * sizeof(double));
        for (size_t q = 0; q < nq; q++) {
            sum_model += r.model_s[q];
            sum_work += r.work_s[q];
            sum_merge += r.merge_s[q];
            for (size_t i = 0; i < S; i++)
                busy[i] += r.shard_s[q * S + i];
        }
        for (size_t i = 0; i < S; i++)
            busiest = busy[i] > busiest ? busy[i] : busiest;
        bench_truth_score(&b->truth, nq, r.ids, o->k, NULL, &score);
        qsort(r.model_s, nq, sizeof(double), bench_cmp_double);
        out->model_p50_us = r.model_s[(nq - 1) / 2] * 1e6;
        out->model_p99_us = r.model_s[(nq * 99 + 99) / 100 - 1] * 1e6;
    }
    if (rc != 0)
        goto out;
    out->ef = ef;
    out->probes = probes < S ? probes : S;
    out->recall = score.recall_id;
    out->recall_distance = score.recall_distance;
    out->qps = (double)nq / best;
    out->work_us = sum_work / (double)nq * 1e6;
    out->merge_us = sum_merge / (double)nq * 1e6;
    out->model_us = sum_model / (double)nq * 1e6;
    out->model_qps = busiest > 0 ? (double)nq / busiest : 0;
out:
    free(r.shard_s);
    free(r.work_s);
    free(r.merge_s);
    free(r.model_s);
    free(r.ids);
    free(busy);
    return rc;
}

/* ------------------------------------------------------------------ */
/* One shard set: build, every probe count and ef, table and JSON       */
/* ------------------------------------------------------------------ */

static void print_head(const bench_shards *s, const char *label)
{
    size_t lo = SIZE_MAX, hi = 0;

    for (size_t i = 0; i < s->count; i++) {
        lo = s->size[i] < lo ? s->size[i] : lo;
        hi = s->size[i] > hi ? s->size[i] : hi;
    }
    printf("\n== %s, S = %zu: rows per shard %zu..%zu, assign %.2f s, build %.2f s\n", label,
           s->count, lo, hi, s->assign_seconds, s->build_seconds);
    printf("%6s %6s %8s %11s %7s %10s %9s %8s %9s %9s %9s %10s\n", "ef", "probes", "recall",
           "recall_dist", "reach", "QPS", "work_us", "merge_us", "model_us", "model_p50",
           "model_p99", "model_QPS");
}

static void print_run(const run_result *r)
{
    printf("%6zu %6zu %8.4f %11.4f %7.4f %10.1f %9.1f %8.1f %9.1f %9.1f %9.1f %10.1f\n", r->ef,
           r->probes, r->recall, r->recall_distance, r->reach, r->qps, r->work_us, r->merge_us,
           r->model_us, r->model_p50_us, r->model_p99_us, r->model_qps);
    fflush(stdout);
}

static json_t *run_json(const run_result *r)
{
    return json_pack("{s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "ef", (json_int_t)r->ef,
                     "probes", (json_int_t)r->probes, "recall", r->recall, "recall_distance",
                     r->recall_distance, "reach", r->reach, "qps", r->qps, "work_us", r->work_us,
                     "merge_us", r->merge_us, "model_mean_us", r->model_us, "model_p50_us",
                     r->model_p50_us, "model_p99_us", r->model_p99_us, "model_qps", r->model_qps);
}

/* The probe counts a shard set of S is measured at: S alone for hash;
 * for k-means every --probes value below S, then S. */
static size_t probe_counts(const options *o, bench_assign assign, size_t S, size_t *out)
{
    size_t n = 0;

    for (size_t i = 0; i < o->probes.n && assign == BENCH_ASSIGN_KMEANS; i++) {
        bool seen = o->probes.v[i] >= S;
        for (size_t j = 0; j < n && !seen; j++)
            seen = out[j] == o->probes.v[i];
        if (!seen)
            out[n++] = o->probes.v[i];
    }
    out[n++] = S;
    return n;
}

/* Adds one shard set's object to b->configs. 0 or -ENOMEM. */
static int config_json(bench *b, const bench_shards *s, const char *label, json_t *runs)
{
    json_t *rows = json_array(), *cfg;

    for (size_t i = 0; rows != NULL && i < s->count; i++)
        if (json_array_append_new(rows, json_integer((json_int_t)s->size[i])) != 0)
            break;
    cfg = json_pack("{s:s,s:I,s:f,s:f,s:o*,s:O}", "assign", label, "shards", (json_int_t)s->count,
                    "assign_seconds", s->assign_seconds, "build_seconds", s->build_seconds,
                    "shard_rows", rows, "runs", runs);
    if (cfg == NULL || json_array_append_new(b->configs, cfg) != 0)
        return -ENOMEM;
    return 0;
}

/* Builds the S shards of `assign` (label "single" for the one index),
 * measures every probe count and ef, prints the table, adds the JSON,
 * frees the shards. 0 or a negative errno (message printed). */
static int bench_config(bench *b, bench_assign assign, size_t S, const char *label)
{
    const options *o = &b->opt;
    bench_shards s = BENCH_SHARDS_INIT;
    bench_shard_config cfg = {.shards = S,
                              .assign = assign,
                              .build_threads = (unsigned)o->build_threads,
                              .kmeans_sample = o->kmeans_sample,
                              .kmeans_iterations = (unsigned)o->kmeans_iterations,
                              .seed = o->seed};
    size_t probes[MAX_LIST + 1], n_probes;
    uint32_t *shard_of_row = vc_malloc(b->base.n * sizeof(uint32_t));
    size_t *order = vc_malloc(S * sizeof(size_t));
    float *dist = vc_malloc(S * sizeof(float));
    json_t *runs = json_array();
    int rc = -ENOMEM;

    vf_hnsw_params_default(&cfg.params, (uint32_t)b->base.dim);
    cfg.params.metric = o->metric;
    cfg.params.m = (uint32_t)o->m;
    cfg.params.ef_construction = (uint32_t)o->efc;
    if (shard_of_row == NULL || order == NULL || dist == NULL || runs == NULL)
        goto out;
    rc = bench_shards_build(&s, &b->base, &cfg);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < S; i++)
        for (size_t j = 0; j < s.size[i]; j++)
            shard_of_row[s.global[i][j]] = (uint32_t)i;
    print_head(&s, label);
    n_probes = probe_counts(o, assign, S, probes);
    for (size_t p = 0; p < n_probes && rc == 0; p++) {
        double reach = reach_of(b, &s, shard_of_row, probes[p], order, dist);
        for (size_t e = 0; e < o->efs.n && rc == 0; e++) {
            run_result r = {0};
            rc = measure(b, &s, o->efs.v[e], probes[p], &r);
            if (rc != 0)
                break;
            r.reach = reach;
            print_run(&r);
            if (json_array_append_new(runs, run_json(&r)) != 0)
                rc = -ENOMEM;
        }
    }
    if (rc == 0)
        rc = config_json(b, &s, label, runs);
out:
    if (rc != 0)
        fprintf(stderr, PROG ": %s, S = %zu: %s\n", label, S, strerror(-rc));
    json_decref(runs);
    bench_shards_release(&s);
    free(dist);
    free(order);
    free(shard_of_row);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Input, truth, output                                                 */
/* ------------------------------------------------------------------ */

/* Returns 0, 2 (unusable input or arguments, message printed) or 1. */
static int load_inputs(bench *b)
{
    const options *o = &b->opt;
    const char *which[2] = {"--base", "--queries"};
    const char *path[2] = {o->base, o->queries};
    bench_matrix *into[2] = {&b->base, &b->queries};
    char err[512];
    int rc;

    for (int i = 0; i < 2; i++) {
        rc = bench_fvecs_read(path[i], into[i], err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, PROG ": %s: %s\n", which[i], err);
            return rc == -ENOMEM ? 1 : 2;
        }
    }
    if (b->queries.dim != b->base.dim) {
        fprintf(stderr, PROG ": --queries: dim %zu, but the base has dim %zu\n", b->queries.dim,
                b->base.dim);
        return 2;
    }
    if (b->base.n > INT32_MAX) {
        fprintf(stderr, PROG ": --base: %zu vectors is more than ids can number\n", b->base.n);
        return 2;
    }
    for (size_t i = 0; i < o->shards.n; i++) {
        if (o->shards.v[i] > b->base.n / o->k) {
            fprintf(stderr,
                    PROG ": --shards %zu: the base (%zu vectors) cannot give every shard "
                         "--k %zu rows\n",
                    o->shards.v[i], b->base.n, o->k);
            return 2;
        }
    }
    return o->k > b->base.n ? usage("--k %zu is larger than the base", o->k) : 0;
}

static int write_json(const bench *b)
{
    const options *o = &b->opt;
    json_t *root = json_pack(
        "{s:{s:I,s:I,s:I,s:s},s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:O}", "dataset", "base",
        (json_int_t)b->base.n, "queries", (json_int_t)b->queries.n, "dim", (json_int_t)b->base.dim,
        "metric", vf_metric_name(o->metric), "params", "k", (json_int_t)o->k, "m", (json_int_t)o->m,
        "efc", (json_int_t)o->efc, "threads", (json_int_t)o->threads, "build_threads",
        (json_int_t)o->build_threads, "kmeans_sample", (json_int_t)o->kmeans_sample,
        "kmeans_iterations", (json_int_t)o->kmeans_iterations, "repeat", (json_int_t)o->repeat,
        "configs", b->configs);
    int rc = root == NULL ? -ENOMEM : 0;

    if (rc == 0 && json_dump_file(root, o->json, JSON_INDENT(2) | JSON_REAL_PRECISION(8)) != 0) {
        fprintf(stderr, PROG ": --json: cannot write %s\n", o->json);
        rc = -EIO;
    }
    json_decref(root);
    return rc;
}

int main(int argc, char **argv)
{
    bench b = {0};
    bench_truth init = BENCH_TRUTH_INIT;
    int status, rc;

    b.truth = init;
    status = parse_args(argc, argv, &b.opt);
    if (status != 0)
        return status == 1 ? 0 : status;
    status = 1;
    b.configs = json_array();
    if (b.configs == NULL)
        goto out;
    rc = load_inputs(&b);
    if (rc != 0) {
        status = rc;
        goto out;
    }
    printf("dataset: %zu base x %zu dim (%s), %zu queries (%s), metric %s\n", b.base.n, b.base.dim,
           b.opt.base, b.queries.n, b.opt.queries, vf_metric_name(b.opt.metric));
    printf("params: k %zu, M %zu, efConstruction %zu, search threads %zu, build threads %u, "
           "kernel %s; shards searched one after the other, each timed (a node per shard is "
           "modelled)\n",
           b.opt.k, b.opt.m, b.opt.efc, b.opt.threads,
           vc_threads_resolve((unsigned)b.opt.build_threads), vf_kernels_best()->name);
    rc = bench_truth_exact(&b.base, &b.queries, b.opt.metric, b.opt.k, &b.gt);
    if (rc == 0)
        rc = bench_truth_init(&b.truth, &b.base, &b.queries, b.opt.metric, b.gt, b.opt.k, b.opt.k);
    if (rc != 0) {
        fprintf(stderr, PROG ": ground truth failed: %s\n", strerror(-rc));
        goto out;
    }
    if (bench_config(&b, BENCH_ASSIGN_HASH, 1, "single") != 0)
        goto out;
    for (int a = BENCH_ASSIGN_HASH; a <= BENCH_ASSIGN_KMEANS; a++)
        for (size_t i = 0; i < b.opt.shards.n && b.opt.assign[a]; i++)
            if (b.opt.shards.v[i] > 1 && bench_config(&b, (bench_assign)a, b.opt.shards.v[i],
                                                      bench_assign_name((bench_assign)a)) != 0)
                goto out;
    if (b.opt.json != NULL && write_json(&b) != 0)
        goto out;
    status = 0;
out:
    json_decref(b.configs);
    bench_truth_release(&b.truth);
    free(b.gt);
    bench_matrix_release(&b.queries);
    bench_matrix_release(&b.base);
    return status;
}
