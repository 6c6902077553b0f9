/*
 * vecfs-bench-filter — filtered search at several selectivities: recall@k
 * against exact filtered search, QPS and p99 for vecfs (each plan of
 * vf_filter_plan, or the planner's choice) and, side by side in the same
 * run, hnswlib (post-filtering) and FAISS (an IDSelector).
 *
 *   vecfs-bench-filter --base B.fvecs --queries Q.fvecs [--metric l2|cosine|dot]
 *       [--filter-selectivity 0.001,0.01,0.1,0.5] [--cases random,cluster,and,range]
 *       [--plans auto|auto,exact,walk,expand] [--k 10] [--ef 64[,128,256]] [--m 16]
 *       [--efc 200] [--nq 1000] [--centers 1000] [--seed 1] [--id-list on|off]
 *       [--compare hnswlib,faiss] [--json OUT] [--index-cache FILE]
 *
 * --index-cache FILE loads the vecfs index from FILE (a snapshot,
 * engine.h) when it exists, else builds it and writes it there: the 331k
 * words build once instead of once per run (about 20 s quiet, minutes on
 * a busy machine). The file must come from the same --base, --metric,
 * --m and --efc; nothing checks that.
 *
 * The labels (docs/performance.md, "Filtered search", repeats this):
 *   random   each row draws a category among C = round(1/s) values; the
 *            filter is category = 0.
 *   cluster  each row belongs to the nearest of --centers centers (rows
 *            drawn at random from the base); clusters are taken in a
 *            random order until they hold s of the rows, and the filter is
 *            "the row's cluster is one of those". Out-of-sample queries
 *            mostly lie near clusters that fail: the hard case.
 *   and      two independent keys, uniform 32-bit numbers; the filter is
 *            key1 < t and key2 < t, t = sqrt(s) x 2^32.
 *   range    a number per row, uniform in 0..999999; the filter is an
 *            interval of width s x 10^6 at a random start.
 * The count of passing rows is given to every engine that can use it
 * (vecfs's planner, hnswlib's post-filter size), as a metadata index would
 * give it; the share printed is the real one. vecfs also gets the sorted
 * list of the passing ids (vf_filter.ids), as the store hands it over from
 * its metadata index, unless --id-list off.
 *
 * Per case and engine, the queries (the first --nq) run once, one per call
 * on one thread, after a warm-up of 50. recall = |returned ∩ exact| /
 * min(k, passing), averaged over the queries; short = queries that came
 * back with fewer than min(k, passing) results; wrong = results the filter
 * does not pass (printed when not 0); QPS = queries / wall time;
 * p99_us = per-call latency. Every ef of --ef is run in turn: a row of
 * case "none" gives each engine's figure without a filter at that ef, and
 * p99x (cpux) is a filtered row's p99 (CPU time per query) over it, so a
 * filtered search is compared with an unfiltered one at the same ef.
 * p99m compares it at the same recall instead (issue 13's measure): over
 * the lowest p99 among the same engine's unfiltered rows whose recall is
 * at least the filtered row's, at ef m_ef; when no unfiltered row of the
 * --ef list reaches that recall, over the highest-recall one, and m_ef is
 * marked '+': the ratio is then an upper bound, as an unfiltered search
 * at the higher recall would take longer. After each vecfs row: the searches each
 * plan answered, the walks redone exactly, and the walks whose failing
 * budget ran out (vf_hnsw_stats.walks_capped).
 *
 * Exit status: 0, 1 runtime failure, 2 bad arguments or input — each with
 * one line on stderr.
 */
#include "engine.h"
#include "fvecs.h"
#include "peers.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "vecfs-bench-filter"
#define MAX_LIST 16
#define MAX_K 1024
#define WARMUP 50
#define RANGE_SPAN 1000000u

static const char usage_text[] =
    "usage: " PROG " --base B.fvecs --queries Q.fvecs [--metric l2|cosine|dot]\n"
    "           [--filter-selectivity 0.001,0.01,0.1,0.5] [--cases random,cluster,and,range]\n"
    "           [--plans auto|auto,exact,walk,expand] [--k 10] [--ef 64[,128,256]] [--m 16]\n"
    "           [--efc 200] [--nq 1000] [--centers 1000] [--seed 1] [--id-list on|off]\n"
    "           [--compare hnswlib,faiss] [--json OUT] [--index-cache FILE]\n";

enum { CASE_RANDOM, CASE_CLUSTER, CASE_AND, CASE_RANGE, CASE_COUNT };
static const char *const case_names[CASE_COUNT] = {"random", "cluster", "and", "range"};

typedef struct options {
    const char *base, *queries, *json, *index_cache;
    vf_metric metric;
    double sel[MAX_LIST];
    size_t n_sel;
    bool cases[CASE_COUNT];
    bool plans[VF_PLAN_EXPAND + 1];
    unsigned long ef[MAX_LIST];
    size_t n_ef;
    unsigned long k, m, efc, nq, centers, seed;
    bool hnswlib, faiss, id_list;
} options;

/* The labels of every row and the filter of one case (see the top). */
typedef struct labels {
    uint32_t *cat, *key2, *num, *cluster;
    uint8_t *cluster_pass; /* per center: its rows pass */
    uint32_t *ids;         /* the passing rows, ascending (labels_filter) */
    int kind;
    uint32_t modulus, below, lo, hi;
} labels;

static bool labels_accept(void *ctx, uint32_t id)
{
    const labels *l = ctx;
    switch (l->kind) {
    case CASE_RANDOM:
        return l->cat[id] % l->modulus == 0;
    case CASE_CLUSTER:
        return l->cluster_pass[l->cluster[id]];
    case CASE_AND:
        return l->cat[id] < l->below && l->key2[id] < l->below;
    default:
        return l->num[id] >= l->lo && l->num[id] < l->hi;
    }
}

static uint64_t rng = 1;

static uint32_t rng_next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_seconds(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

static int usage(const char *fmt, const char *what)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\ntry '" PROG " --help'\n");
    return 2;
}

static int parse_ulong(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Splits a comma list into at most MAX_LIST non-empty tokens of buf. */
static int split_list(const char *s, char *buf, size_t cap, char **tok, size_t *n)
{
    size_t len = strlen(s);
    if (len == 0 || len >= cap || s[0] == ',' || s[len - 1] == ',' || strstr(s, ",,"))
        return -1;
    memcpy(buf, s, len + 1);
    *n = 0;
    for (char *p = buf; p; *n += 1) {
        if (*n == MAX_LIST)
            return -1;
        tok[*n] = p;
        p = strchr(p, ',');
        if (p)
            *p++ = '\0';
    }
    return 0;
}

/* Returns 0, 1 (--help printed) or 2 (usage error printed). */
static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof(*o));
    o->metric = VF_METRIC_L2;
    const double sel_default[] = {0.001, 0.01, 0.1, 0.5};
    memcpy(o->sel, sel_default, sizeof(sel_default));
    o->n_sel = 4;
    for (int c = 0; c < CASE_COUNT; c++)
        o->cases[c] = true;
    o->plans[VF_PLAN_AUTO] = true;
    o->k = 10, o->m = 16, o->efc = 200, o->nq = 1000, o->centers = 1000, o->seed = 1;
    o->ef[0] = 64, o->n_ef = 1, o->id_list = true;
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (i + 1 >= argc || argv[i + 1][0] == '\0')
            return usage("%s needs a value", name);
        const char *val = argv[++i];
        char buf[512], *tok[MAX_LIST];
        size_t n;
        if (!strcmp(name, "--base")) {
            o->base = val;
        } else if (!strcmp(name, "--queries")) {
            o->queries = val;
        } else if (!strcmp(name, "--json")) {
            o->json = val;
        } else if (!strcmp(name, "--index-cache")) {
            o->index_cache = val;
        } else if (!strcmp(name, "--metric")) {
            if (vf_metric_parse(val, &o->metric))
                return usage("--metric: '%s' is not l2, cosine or dot", val);
        } else if (!strcmp(name, "--filter-selectivity")) {
            if (split_list(val, buf, sizeof(buf), tok, &n))
                return usage("--filter-selectivity: '%s' is not a list of shares", val);
            for (size_t j = 0; j < n; j++) {
                char *end;
                o->sel[j] = strtod(tok[j], &end);
                if (*end || !(o->sel[j] > 0 && o->sel[j] <= 1))
                    return usage("--filter-selectivity: '%s' is not a share in (0, 1]", tok[j]);
            }
            o->n_sel = n;
        } else if (!strcmp(name, "--ef")) {
            if (split_list(val, buf, sizeof(buf), tok, &n))
                return usage("--ef: '%s' is not a list of ef values", val);
            for (size_t j = 0; j < n; j++)
                if (parse_ulong(tok[j], 1, 100000, &o->ef[j]))
                    return usage("--ef: '%s' is not an ef in 1..100000", tok[j]);
            o->n_ef = n;
        } else if (!strcmp(name, "--id-list")) {
            if (strcmp(val, "on") && strcmp(val, "off"))
                return usage("--id-list: '%s' is not on or off", val);
            o->id_list = !strcmp(val, "on");
        } else if (!strcmp(name, "--cases") || !strcmp(name, "--plans")) {
            bool cases = !strcmp(name, "--cases");
            bool *set = cases ? o->cases : o->plans;
            size_t count = cases ? CASE_COUNT : VF_PLAN_EXPAND + 1;
            memset(set, 0, count * sizeof(bool));
            if (split_list(val, buf, sizeof(buf), tok, &n))
                return usage("%s: not a comma-separated list", name);
            for (size_t j = 0; j < n; j++) {
                size_t c = 0;
                while (c < count &&
                       strcmp(tok[j], cases ? case_names[c] : vf_filter_plan_name((int)c)))
                    c++;
                if (c == count)
                    return usage("unknown case or plan '%s'", tok[j]);
                set[c] = true;
            }
        } else if (!strcmp(name, "--compare")) {
            if (split_list(val, buf, sizeof(buf), tok, &n))
                return usage("--compare: '%s' is not a list", val);
            for (size_t j = 0; j < n; j++) {
                if (!strcmp(tok[j], "hnswlib"))
                    o->hnswlib = true;
                else if (!strcmp(tok[j], "faiss"))
                    o->faiss = true;
                else
                    return usage("--compare: unknown peer '%s' (want hnswlib, faiss)", tok[j]);
            }
        } else {
            struct {
                const char *name;
                unsigned long lo, hi, *out;
            } nums[] = {{"--k", 1, MAX_K, &o->k},
                        {"--m", 2, 256, &o->m},
                        {"--efc", 1, 100000, &o->efc},
                        {"--nq", 1, 1000000, &o->nq},
                        {"--centers", 1, 100000, &o->centers},
                        {"--seed", 1, 1UL << 62, &o->seed}};
            size_t j = 0;
            while (j < sizeof(nums) / sizeof(nums[0]) && strcmp(name, nums[j].name))
                j++;
            if (j == sizeof(nums) / sizeof(nums[0]))
                return usage("unknown option '%s'", name);
            if (parse_ulong(val, nums[j].lo, nums[j].hi, nums[j].out))
                return usage("%s: value out of range", name);
        }
    }
    if (!o->base || !o->queries)
        return usage("%s", "--base and --queries are required");
    return 0;
}

/* Draws every row's labels; clusters by the nearest of `centers` rows. */
static int labels_make(labels *l, const bench_matrix *base, const options *o)
{
    size_t n = base->n, nc = o->centers < n ? o->centers : n;
    memset(l, 0, sizeof(*l));
    l->cat = malloc(n * sizeof(uint32_t));
    l->key2 = malloc(n * sizeof(uint32_t));
    l->num = malloc(n * sizeof(uint32_t));
    l->cluster = malloc(n * sizeof(uint32_t));
    l->cluster_pass = calloc(nc, 1);
    l->ids = malloc(n * sizeof(uint32_t));
    float *centers = malloc(nc * base->dim * sizeof(float));
    vf_hit *nearest = malloc(n * sizeof(vf_hit));
    size_t *got = malloc(n * sizeof(size_t));
    int rc = -ENOMEM;
    if (!l->cat || !l->key2 || !l->num || !l->cluster || !l->cluster_pass || !l->ids || !centers ||
        !nearest || !got)
        goto out;
    for (size_t i = 0; i < n; i++) {
        l->cat[i] = rng_next();
        l->key2[i] = rng_next();
        l->num[i] = rng_next() % RANGE_SPAN;
    }
    for (size_t c = 0; c < nc; c++)
        memcpy(centers + c * base->dim, (const float *)base->data + (rng_next() % n) * base->dim,
               base->dim * sizeof(float));
    rc = vf_flat_search_batch(centers, nc, base->dim, o->metric, base->data, n, 1, NULL, 0, nearest,
                              got);
    for (size_t i = 0; rc == 0 && i < n; i++)
        l->cluster[i] = got[i] ? nearest[i].id : 0;
out:
    free(centers);
    free(nearest);
    free(got);
    return rc;
}

static void labels_release(labels *l)
{
    free(l->cat);
    free(l->key2);
    free(l->num);
    free(l->cluster);
    free(l->cluster_pass);
    free(l->ids);
}

/* Sets l's filter to case `kind` at share s and lists the passing rows in
 * l->ids; returns their count. */
static size_t labels_filter(labels *l, int kind, double s, size_t n, size_t centers)
{
    l->kind = kind;
    if (kind == CASE_RANDOM) {
        l->modulus = s > 0.67 ? 1 : (uint32_t)(1.0 / s + 0.5);
    } else if (kind == CASE_AND) {
        l->below = (uint32_t)fmin(sqrt(s) * 4294967296.0, 4294967295.0);
    } else if (kind == CASE_RANGE) {
        uint32_t width = (uint32_t)(s * RANGE_SPAN + 0.5);
        l->lo = width >= RANGE_SPAN ? 0 : rng_next() % (RANGE_SPAN - width);
        l->hi = l->lo + (width ? width : 1);
    } else {
        size_t nc = centers < n ? centers : n;
        size_t *size = calloc(nc, sizeof(size_t)), *order = malloc(nc * sizeof(size_t));
        if (!size || !order) {
            free(size);
            free(order);
            return 0;
        }
        for (size_t i = 0; i < n; i++)
            size[l->cluster[i]]++;
        for (size_t c = 0; c < nc; c++) {
            order[c] = c;
            size_t j = rng_next() % (c + 1), t = order[c];
            order[c] = order[j];
            order[j] = t;
        }
        memset(l->cluster_pass, 0, nc);
        size_t taken = 0;
        for (size_t c = 0; c < nc && (double)taken < s * (double)n; c++) {
            l->cluster_pass[order[c]] = 1;
            taken += size[order[c]];
        }
        free(size);
        free(order);
    }
    size_t passing = 0;
    for (size_t i = 0; i < n; i++)
        if (labels_accept(l, (uint32_t)i))
            l->ids[passing++] = (uint32_t)i;
    return passing;
}

/* ------------------------------------------------------------------ */
/* Engines and the query loop                                           */
/* ------------------------------------------------------------------ */

/* One engine as the loop sees it; filter NULL is an unfiltered search. */
typedef struct engine {
    const char *name;
    int (*search)(struct engine *e, const float *q, size_t k, const vf_filter *filter,
                  uint32_t *ids, size_t *n_out);
    vf_hnsw *h; /* vecfs */
    vf_filter_plan plan;
    size_t ef, rows;
    const bench_peer_ops *ops; /* a peer */
    void *state;
} engine;

static int vecfs_search(engine *e, const float *q, size_t k, const vf_filter *filter, uint32_t *ids,
                        size_t *n_out)
{
    static vf_hit hits[MAX_K];
    const vf_search_opts opts = {.plan = e->plan};
    int rc = vf_hnsw_search_with(e->h, q, k, e->ef, filter, &opts, hits, n_out);
    for (size_t i = 0; rc == 0 && i < *n_out; i++)
        ids[i] = hits[i].id;
    return rc;
}

#if defined(VECFS_HAVE_HNSWLIB) || defined(VECFS_HAVE_FAISS)
static int peer_search(engine *e, const float *q, size_t k, const vf_filter *filter, uint32_t *ids,
                       size_t *n_out)
{
    if (filter)
        return e->ops->search_filtered(e->state, q, k, filter, e->rows, ids, n_out);
    return e->ops->search(e->state, q, k, ids, n_out);
}
#endif

typedef struct row {
    double recall, qps, mean_us, p99_us, cpu_us;
    size_t short_results, wrong; /* results the filter does not pass */
    vf_hnsw_stats before, after; /* vecfs: the plans counted */
} row;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs the first nq queries through e (after a warm-up) and scores them
 * against the exact hits (truth, truth_n per query). */
static int run(engine *e, const bench_matrix *queries, size_t nq, size_t k, const vf_filter *filter,
               const vf_hit *truth, const size_t *truth_n, row *out)
{
    uint32_t ids[MAX_K];
    double *lat = malloc(nq * sizeof(double));
    size_t got, found = 0, want = 0;
    int rc = 0;
    if (!lat)
        return -ENOMEM;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < WARMUP && rc == 0; i++)
        rc = e->search(e, (const float *)queries->data + (i % nq) * queries->dim, k, filter, ids,
                       &got);
    if (e->h)
        vf_hnsw_stats_get(e->h, &out->before);
    double t0 = now_seconds(), c0 = clock_seconds(CLOCK_THREAD_CPUTIME_ID), sum = 0;
    for (size_t i = 0; i < nq && rc == 0; i++) {
        double q0 = now_seconds();
        rc = e->search(e, (const float *)queries->data + i * queries->dim, k, filter, ids, &got);
        lat[i] = (now_seconds() - q0) * 1e6;
        sum += lat[i];
        out->short_results += got < truth_n[i];
        for (size_t b = 0; filter && b < got; b++)
            out->wrong += !filter->accept(filter->ctx, ids[b]);
        want += truth_n[i];
        for (size_t a = 0; a < truth_n[i]; a++)
            for (size_t b = 0; b < got; b++)
                if (ids[b] == truth[i * k + a].id) {
                    found++;
                    break;
                }
    }
    double t1 = now_seconds(), c1 = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
    if (e->h)
        vf_hnsw_stats_get(e->h, &out->after);
    if (rc == 0) {
        qsort(lat, nq, sizeof(double), cmp_double);
        out->recall = want ? (double)found / (double)want : 1.0;
        out->qps = (double)nq / (t1 - t0);
        out->mean_us = sum / (double)nq;
        out->cpu_us = (c1 - c0) * 1e6 / (double)nq;
        out->p99_us = lat[(size_t)ceil(0.99 * (double)nq) - 1];
    }
    free(lat);
    return rc;
}

/* What a filtered row is compared with: the same engine's unfiltered rows. */
typedef struct baseline {
    const row *same_ef; /* at the row's ef */
    const row *matched; /* the cheapest at the row's recall (see the header) */
    size_t matched_ef;  /* its ef */
    bool matched_short; /* no unfiltered row reached the recall */
} baseline;

/* The baseline of a row of recall `recall` at ef index ei, for engine i of
 * n_eng, from the unfiltered rows plain[ef index * n_eng + engine]. */
static baseline baseline_of(const row *plain, const unsigned long *efs, size_t n_ef, size_t n_eng,
                            size_t i, size_t ei, double recall)
{
    baseline b = {.same_ef = &plain[ei * n_eng + i]};
    size_t best = SIZE_MAX, top = 0;
    for (size_t j = 0; j < n_ef; j++) {
        const row *u = &plain[j * n_eng + i];
        if (u->recall > plain[top * n_eng + i].recall)
            top = j;
        if (u->recall >= recall && (best == SIZE_MAX || u->p99_us < plain[best * n_eng + i].p99_us))
            best = j;
    }
    b.matched_short = best == SIZE_MAX;
    if (b.matched_short)
        best = top;
    b.matched = &plain[best * n_eng + i];
    b.matched_ef = efs[best];
    return b;
}

/* Prints r and appends it to rows (NULL: no JSON); base is NULL for an
 * unfiltered row itself. */
static int report(json_t *rows, const char *kase, double s, size_t passing, size_t n,
                  const engine *e, const row *r, const baseline *base)
{
    const row *plain = base ? base->same_ef : NULL;
    const double p99x = plain && plain->p99_us > 0 ? r->p99_us / plain->p99_us : 0.0;
    const double cpux = plain && plain->cpu_us > 0 ? r->cpu_us / plain->cpu_us : 0.0;
    const double p99m = base && base->matched->p99_us > 0 ? r->p99_us / base->matched->p99_us : 0.0;
    char m_ef[24] = "-";
    if (base)
        snprintf(m_ef, sizeof(m_ef), "%zu%s", base->matched_ef, base->matched_short ? "+" : "");
    const char *plan = e->h ? vf_filter_plan_name(e->plan) : "-";
    unsigned long long ex = r->after.plans_exact - r->before.plans_exact,
                       wk = r->after.plans_walk - r->before.plans_walk,
                       xp = r->after.plans_expand - r->before.plans_expand,
                       redo = r->after.searches_short - r->before.searches_short,
                       capped = r->after.walks_capped - r->before.walks_capped;
    printf("%-8s %7.4f %7.4f %8zu %5zu %-10s %-6s %7.4f %6zu %10.1f %9.1f %9.1f %9.1f %6.2f %6.2f "
           "%6.2f %6s",
           kase, s, (double)passing / (double)n, passing, e->ef, e->name, plan, r->recall,
           r->short_results, r->qps, r->mean_us, r->cpu_us, r->p99_us, p99x, cpux, p99m, m_ef);
    if (r->wrong)
        printf("  %zu results fail the filter", r->wrong);
    if (e->h)
        printf("  exact %llu walk %llu expand %llu redone %llu capped %llu", ex, wk, xp, redo,
               capped);
    printf("\n");
    fflush(stdout);
    if (!rows)
        return 0;
    json_t *j = json_pack(
        "{s:s,s:f,s:f,s:I,s:I,s:s,s:s,s:f,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:{s:I,s:I,s:I,s:I,s:I}}",
        "case", kase, "selectivity", s, "share", (double)passing / (double)n, "passing",
        (json_int_t)passing, "ef", (json_int_t)e->ef, "engine", e->name, "plan", plan, "recall",
        r->recall, "short", (json_int_t)r->short_results, "wrong", (json_int_t)r->wrong, "qps",
        r->qps, "mean_us", r->mean_us, "cpu_us", r->cpu_us, "p99_us", r->p99_us, "p99x", p99x,
        "cpux", cpux, "plans_run", "exact", (json_int_t)ex, "walk", (json_int_t)wk, "expand",
        (json_int_t)xp, "redone_exact", (json_int_t)redo, "walks_capped", (json_int_t)capped);
    if (j && base &&
        json_object_set_new(j, "matched",
                            json_pack("{s:f,s:I,s:f,s:f,s:b}", "p99x", p99m, "ef",
                                      (json_int_t)base->matched_ef, "recall", base->matched->recall,
                                      "p99_us", base->matched->p99_us, "reached",
                                      !base->matched_short))) {
        json_decref(j);
        return -ENOMEM;
    }
    return j && json_array_append_new(rows, j) == 0 ? 0 : -ENOMEM;
}

static const float *matrix_row(void *ctx, uint32_t id, float *buf)
{
    const bench_matrix *m = ctx;
    (void)buf;
    return id < m->n ? (const float *)m->data + (size_t)id * m->dim : NULL;
}

static int file_write(void *ctx, const void *bytes, size_t len)
{
    return fwrite(bytes, 1, len, ctx) == len ? 0 : -EIO;
}

/* The index of base from the snapshot at path; -ENOENT when there is none. */
static int index_load(const char *path, const bench_matrix *base, vf_hnsw **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -ENOENT;
    int rc = -EIO;
    char *bytes = NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len > 0 && fseek(f, 0, SEEK_SET) == 0 && (bytes = malloc((size_t)len)) &&
        fread(bytes, 1, (size_t)len, f) == (size_t)len) {
        const vf_vec_source src = {.get = matrix_row, .ctx = (void *)base};
        rc = vf_hnsw_deserialize(bytes, (size_t)len, &src, out);
    }
    free(bytes);
    fclose(f);
    return rc;
}

/* Writes h's snapshot to path. */
static int index_save(const char *path, const vf_hnsw *h)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    int rc = vf_hnsw_serialize(h, file_write, f);
    if (fclose(f) && rc == 0)
        rc = -EIO;
    return rc;
}

/* Sets every engine's search ef. */
static void engines_set_ef(engine *engines, size_t n_eng, size_t ef)
{
    for (size_t i = 0; i < n_eng; i++) {
        engines[i].ef = ef;
        if (engines[i].ops)
            engines[i].ops->set_ef(engines[i].state, ef);
    }
}

/* ------------------------------------------------------------------ */
/* main                                                                 */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    rng = o.seed * 0x9E3779B97F4A7C15ULL | 1;
    bench_matrix base = {0}, queries = {0};
    char err[512];
    if (bench_fvecs_read(o.base, &base, err, sizeof(err)) ||
        bench_fvecs_read(o.queries, &queries, err, sizeof(err))) {
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }
    if (base.dim != queries.dim || base.n == 0) {
        fprintf(stderr, PROG ": base and queries differ in dim, or the base is empty\n");
        return 2;
    }
    size_t nq = o.nq < queries.n ? o.nq : queries.n, k = o.k, n = base.n;
    engine engines[VF_PLAN_EXPAND + 3];
    size_t n_eng = 0;
    labels l = {0};
    vf_hit *truth = malloc(nq * k * sizeof(vf_hit));
    size_t *truth_n = malloc(nq * sizeof(size_t));
    json_t *doc = json_object(), *rows = json_array();
    vf_hnsw *h = NULL;
    row *plain = NULL;
    int status = 1;
    if (!truth || !truth_n || !doc || !rows || labels_make(&l, &base, &o)) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }

    vf_hnsw_params p;
    vf_hnsw_params_default(&p, (uint32_t)base.dim);
    p.metric = o.metric;
    p.m = (uint32_t)o.m;
    p.ef_construction = (uint32_t)o.efc;
    double t0 = now_seconds();
    rc = o.index_cache ? index_load(o.index_cache, &base, &h) : -ENOENT;
    if (rc && rc != -ENOENT) {
        fprintf(stderr, PROG ": --index-cache: cannot load %s\n", o.index_cache);
        goto out;
    }
    if (rc && (vf_hnsw_create(&p, &h) || vf_hnsw_reserve(h, n) ||
               vf_hnsw_insert_batch(h, NULL, 0, base.data, n, 0))) {
        fprintf(stderr, PROG ": vecfs: build failed\n");
        goto out;
    }
    if (rc && o.index_cache && index_save(o.index_cache, h)) {
        fprintf(stderr, PROG ": --index-cache: cannot write %s\n", o.index_cache);
        goto out;
    }
    printf("# vecfs: %zu x %zu %s, m %lu, efc %lu, ready in %.1f s; k %zu, %zu queries\n", n,
           base.dim, vf_metric_name(o.metric), o.m, o.efc, now_seconds() - t0, k, nq);
    for (int pl = VF_PLAN_AUTO; pl <= VF_PLAN_EXPAND; pl++)
        if (o.plans[pl])
            engines[n_eng++] = (engine){.name = "vecfs",
                                        .search = vecfs_search,
                                        .h = h,
                                        .plan = (vf_filter_plan)pl,
                                        .rows = n};
    const bench_peer_ops *peers[2] = {NULL, NULL};
#ifdef VECFS_HAVE_HNSWLIB
    if (o.hnswlib)
        peers[0] = &bench_peer_hnswlib;
#endif
#ifdef VECFS_HAVE_FAISS
    if (o.faiss)
        peers[1] = &bench_peer_faiss_hnsw;
#endif
    if ((o.hnswlib && !peers[0]) || (o.faiss && !peers[1]))
        fprintf(stderr, PROG ": a peer asked for with --compare was not built; skipped\n");
#if defined(VECFS_HAVE_HNSWLIB) || defined(VECFS_HAVE_FAISS)
    for (int i = 0; i < 2; i++) {
        if (!peers[i])
            continue;
        bench_peer_config cfg = {base.dim, o.metric, (unsigned)o.m, (unsigned)o.efc, 2};
        engine *e = &engines[n_eng];
        *e = (engine){.name = peers[i]->name, .search = peer_search, .ops = peers[i], .rows = n};
        t0 = now_seconds();
        if (peers[i]->build(&cfg, base.data, n, &e->state, err, sizeof(err))) {
            fprintf(stderr, PROG ": %s: %s\n", peers[i]->name, err);
            goto out;
        }
        printf("# %s built in %.1f s\n", peers[i]->name, now_seconds() - t0);
        n_eng++;
    }
#endif
    printf("%-8s %7s %7s %8s %5s %-10s %-6s %7s %6s %10s %9s %9s %9s %6s %6s %6s %6s\n", "case",
           "sel", "share", "passing", "ef", "engine", "plan", "recall", "short", "QPS", "mean_us",
           "cpu_us", "p99_us", "p99x", "cpux", "p99m", "m_ef");

    /* Unfiltered at every ef, for the ratios: the first vecfs engine's row
     * stands for every vecfs plan (a plan means nothing without a filter). */
    plain = calloc(o.n_ef * n_eng, sizeof(row));
    if (!plain || vf_flat_search_batch(base.data, n, base.dim, o.metric, queries.data, nq, k, NULL,
                                       0, truth, truth_n))
        goto out;
    for (size_t ei = 0; ei < o.n_ef; ei++) {
        engines_set_ef(engines, n_eng, o.ef[ei]);
        row *at = plain + ei * n_eng;
        for (size_t i = 0; i < n_eng; i++) {
            if (engines[i].h && i > 0) {
                at[i] = at[0];
                continue;
            }
            if (run(&engines[i], &queries, nq, k, NULL, truth, truth_n, &at[i]) ||
                report(rows, "none", 1.0, n, n, &engines[i], &at[i], NULL))
                goto out;
        }
    }
    for (int c = 0; c < CASE_COUNT; c++) {
        for (size_t si = 0; o.cases[c] && si < o.n_sel; si++) {
            size_t passing = labels_filter(&l, c, o.sel[si], n, o.centers);
            vf_filter f = {.accept = labels_accept,
                           .ctx = &l,
                           .passing = passing,
                           .ids = o.id_list ? l.ids : NULL};
            if (vf_flat_search_batch(base.data, n, base.dim, o.metric, queries.data, nq, k, &f, 0,
                                     truth, truth_n))
                goto out;
            for (size_t ei = 0; ei < o.n_ef; ei++) {
                engines_set_ef(engines, n_eng, o.ef[ei]);
                for (size_t i = 0; i < n_eng; i++) {
                    row r;
                    if (run(&engines[i], &queries, nq, k, &f, truth, truth_n, &r)) {
                        fprintf(stderr, PROG ": %s: search failed\n", engines[i].name);
                        goto out;
                    }
                    baseline b = baseline_of(plain, o.ef, o.n_ef, n_eng, i, ei, r.recall);
                    if (report(rows, case_names[c], o.sel[si], passing, n, &engines[i], &r, &b)) {
                        fprintf(stderr, PROG ": out of memory\n");
                        goto out;
                    }
                }
            }
        }
    }
    if (o.json) {
        json_t *efs = json_array();
        for (size_t ei = 0; efs && ei < o.n_ef; ei++)
            if (json_array_append_new(efs, json_integer((json_int_t)o.ef[ei])))
                break;
        json_t *ds = json_pack("{s:s,s:I,s:I,s:I,s:s,s:I,s:o,s:b,s:I,s:I,s:I}", "base", o.base,
                               "rows", (json_int_t)n, "queries", (json_int_t)nq, "dim",
                               (json_int_t)base.dim, "metric", vf_metric_name(o.metric), "k",
                               (json_int_t)k, "ef", efs, "id_list", o.id_list, "m", (json_int_t)o.m,
                               "efc", (json_int_t)o.efc, "centers", (json_int_t)o.centers);
        if (!ds || json_object_set_new(doc, "dataset", ds) || json_object_set(doc, "rows", rows) ||
            json_dump_file(doc, o.json, JSON_INDENT(1))) {
            fprintf(stderr, PROG ": --json: cannot write %s\n", o.json);
            goto out;
        }
    }
    status = 0;
out:
    for (size_t i = 0; i < n_eng; i++)
        if (engines[i].ops)
            engines[i].ops->free(engines[i].state);
    vf_hnsw_free(h);
    free(plain);
    labels_release(&l);
    free(truth);
    free(truth_n);
    json_decref(rows);
    json_decref(doc);
    bench_matrix_release(&base);
    bench_matrix_release(&queries);
    return status;
}
