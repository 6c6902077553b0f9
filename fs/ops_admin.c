/*
 * ops_admin.c — the admin files `.vecfs/health`, `.vecfs/metrics`,
 * `.vecfs/stats` (SPEC §3, §6).
 *
 * Admin files are generated whole at open (direct_io, so every reader gets
 * one consistent document and stat on the handle agrees with it). Their
 * content comes only from calls that never wait for writers or the disk
 * (st_store_metrics, st_store_health, st_coll_list read an MVCC snapshot),
 * so a health probe answers while an import commits.
 *
 * Test builds (meson -Dtest_hooks=true, VECFS_TEST_HOOKS) add
 * `.vecfs/fault`, looked up but never listed: writing a decimal N to it
 * arms vc_alloc_fail_at(N) (0 disarms), reading it returns what that call
 * returned, i.e. how many allocations the arming before still had to go
 * (0: it fired, or none was armed). tests/integration/fault.py sweeps N
 * over real FUSE operations with it (docs/filesystem.md "Test builds").
 *
 * Invariants
 *   1. Metrics carry no per-path or per-user labels: the only label values
 *      are op names, errno names and collection names (SPEC §6).
 *   2. A handle holds the whole document (buf_fh); reads never render.
 *   3. Nothing on the paths of `.vecfs/fault` (lookup, stat, open, read,
 *      write, release) allocates through vc_*: the file must not move the
 *      counter it sets. Its write arms as its last step, and the reply
 *      after it (libfuse) does not count either.
 */
#include "fsd.h"

#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* ------------------------------------------------------------------ */
/* Rendering                                                            */
/* ------------------------------------------------------------------ */

/* The per-collection metric families, one list pass each (Prometheus
 * wants a family's lines together). */
typedef enum coll_family {
    FAM_VECTORS,
    FAM_INDEX_BYTES,
    FAM_BYTES_PER_VECTOR,
    FAM_QUANTIZED,
    FAM_RERANK,
    FAM_CONVERTING,
    FAM_COUNT
} coll_family;

static const char *const family_head[FAM_COUNT] = {
    "# HELP vecfs_vectors Vectors per collection.\n"
    "# TYPE vecfs_vectors gauge\n",
    "# HELP vecfs_index_bytes RAM of a collection's index.\n"
    "# TYPE vecfs_index_bytes gauge\n",
    "# HELP vecfs_index_bytes_per_vector RAM of a collection's index per vector.\n"
    "# TYPE vecfs_index_bytes_per_vector gauge\n",
    "# HELP vecfs_index_quantized 1 when a collection's index holds int8 codes.\n"
    "# TYPE vecfs_index_quantized gauge\n",
    "# HELP vecfs_index_rerank Candidates an int8 search rescores per result.\n"
    "# TYPE vecfs_index_rerank gauge\n",
    "# HELP vecfs_index_converting 1 while a collection's index is converted to a new "
    "quantization.\n"
    "# TYPE vecfs_index_converting gauge\n",
};

/* What the per-collection callbacks of a render write into. */
typedef struct coll_list {
    vc_buf *b;
    st_store *st;
    json_t *arr;
    coll_family family;
    int rc;
} coll_list;

/* Index RAM per vector, 0 for an empty index. */
static double bytes_per_vector(const st_index_info *ii)
{
    return ii->vectors ? (double)ii->index_bytes / (double)ii->vectors : 0.0;
}

/* One line of the family being rendered for a collection. */
static int metrics_coll_cb(void *ctx, const char *name, const st_attr *attr, uint64_t next)
{
    (void)next;
    coll_list *c = ctx;
    st_index_info ii;
    if (c->family == FAM_VECTORS) {
        c->rc = vc_buf_printf(c->b, "vecfs_vectors{collection=\"%s\"} %llu\n", name,
                              (unsigned long long)attr->count);
        return c->rc != 0;
    }
    if (st_coll_index_info(c->st, name, &ii) != 0)
        return 0; /* dropped since the list read it */
    switch (c->family) {
    case FAM_INDEX_BYTES:
        c->rc = vc_buf_printf(c->b, "vecfs_index_bytes{collection=\"%s\"} %llu\n", name,
                              (unsigned long long)ii.index_bytes);
        break;
    case FAM_BYTES_PER_VECTOR:
        c->rc = vc_buf_printf(c->b, "vecfs_index_bytes_per_vector{collection=\"%s\"} %.1f\n", name,
                              bytes_per_vector(&ii));
        break;
    case FAM_QUANTIZED:
        c->rc = vc_buf_printf(c->b, "vecfs_index_quantized{collection=\"%s\"} %d\n", name,
                              ii.quantization == ST_QUANT_INT8);
        break;
    case FAM_RERANK:
        c->rc = vc_buf_printf(c->b, "vecfs_index_rerank{collection=\"%s\"} %u\n", name,
                              (unsigned)ii.rerank);
        break;
    default:
        c->rc = vc_buf_printf(c->b, "vecfs_index_converting{collection=\"%s\"} %d\n", name,
                              ii.converting ? 1 : 0);
        break;
    }
    return c->rc != 0;
}

/* The text of .vecfs/health: "ok\n" or one line per problem. */
static int render_health(fsd *d, vc_buf *b)
{
    char line[4096];
    size_t len = 0;
    int rc = st_store_health(d->store, line, sizeof line, &len);
    if (rc < 0)
        return rc;
    uint64_t lost = fsd_audit_failures();
    if (lost == 0)
        return vc_buf_append(b, line, len);
    /* A lost audit line is a problem to report, not to hide in a log. */
    if (!(len == 3 && memcmp(line, "ok\n", 3) == 0))
        rc = vc_buf_append(b, line, len);
    if (rc == 0)
        rc = vc_buf_printf(b, "audit log: %llu line(s) could not be written\n",
                           (unsigned long long)lost);
    return rc;
}

/* 1 when .vecfs/health says ok, 0 otherwise: the gauge alerts watch. */
static int health_ok(fsd *d, int *ok)
{
    vc_buf h = VC_BUF_INIT;
    int rc = render_health(d, &h);
    if (rc == 0)
        *ok = h.len == 3 && memcmp(h.p, "ok\n", 3) == 0;
    vc_buf_release(&h);
    return rc;
}

/* One sample of a counter family labelled by plan. */
static int plan_sample(vc_buf *b, const char *family, const char *plan, uint64_t value)
{
    return vc_buf_printf(b, "%s{plan=\"%s\"} %llu\n", family, plan, (unsigned long long)value);
}

/* The plan counters of .vecfs/metrics: the store's per query vector (as
 * `explain = 1` names them) and the engine's per filtered index search. */
static int render_plan_metrics(vc_buf *b, const st_metrics *m)
{
    static const char *const index_plans[] = {"exact", "walk", "expand"};
    int rc = vc_buf_printf(b, "# HELP vecfs_query_plans_total Query vectors answered by each plan "
                              "(the plans of explain = 1).\n"
                              "# TYPE vecfs_query_plans_total counter\n");
    for (int k = 0; rc == 0 && k < ST_PLAN_KIND_COUNT; k++)
        rc = plan_sample(b, "vecfs_query_plans_total", st_plan_name((st_plan_kind)k),
                         m->plans_total[k]);
    if (rc == 0)
        rc = vc_buf_printf(b,
                           "# HELP vecfs_query_plans_redone_total Filtered query walks that came "
                           "back short and were redone by exact search.\n"
                           "# TYPE vecfs_query_plans_redone_total counter\n"
                           "vecfs_query_plans_redone_total %llu\n"
                           "# HELP vecfs_index_filter_plans_total Filtered index searches by the "
                           "engine's plan (refills after deletes included).\n"
                           "# TYPE vecfs_index_filter_plans_total counter\n",
                           (unsigned long long)m->plans_redone_total);
    for (size_t k = 0; rc == 0 && k < sizeof index_plans / sizeof index_plans[0]; k++)
        rc = plan_sample(b, "vecfs_index_filter_plans_total", index_plans[k],
                         m->index_plans_total[k]);
    return rc;
}

/* The Prometheus text of .vecfs/metrics (and GET /metrics). */
static int render_metrics(fsd *d, vc_buf *b)
{
    st_metrics m;
    int rc = st_store_metrics(d->store, &m);
    if (rc < 0)
        return rc;
    rc = fsd_metrics_render(b);
    for (int f = 0; f < FAM_COUNT && rc == 0; f++) {
        rc = vc_buf_printf(b, "%s", family_head[f]);
        coll_list c = {.b = b, .st = d->store, .family = (coll_family)f};
        if (rc == 0)
            rc = st_coll_list(d->store, 0, metrics_coll_cb, &c);
        if (rc == 0)
            rc = c.rc;
    }
    if (rc == 0)
        rc = vc_buf_printf(
            b,
            "# HELP vecfs_store_bytes Bytes of DATADIR in use.\n"
            "# TYPE vecfs_store_bytes gauge\n"
            "vecfs_store_bytes %llu\n"
            "# HELP vecfs_store_max_bytes Bytes DATADIR may grow to: --max-size, or the "
            "free space of its filesystem plus what it holds.\n"
            "# TYPE vecfs_store_max_bytes gauge\n"
            "vecfs_store_max_bytes %llu\n"
            "# HELP vecfs_index_memory_bytes Bytes held by the in-memory indexes.\n"
            "# TYPE vecfs_index_memory_bytes gauge\n"
            "vecfs_index_memory_bytes %llu\n"
            "# HELP vecfs_snapshot_age_seconds Age of the oldest snapshot behind its "
            "collection.\n"
            "# TYPE vecfs_snapshot_age_seconds gauge\n"
            "vecfs_snapshot_age_seconds %.3f\n"
            "# HELP vecfs_searches_short_total Graph walks that came back with fewer "
            "than k and were answered by exact search.\n"
            "# TYPE vecfs_searches_short_total counter\n"
            "vecfs_searches_short_total %llu\n"
            "# HELP vecfs_vectors_rehomed_total Vectors given a protected way in by a "
            "search of their own: an insert whose chosen neighbours could not anchor "
            "it, or a delete or update that took its anchor.\n"
            "# TYPE vecfs_vectors_rehomed_total counter\n"
            "vecfs_vectors_rehomed_total %llu\n"
            "# HELP vecfs_vectors_stranded_total Vectors left without a way in "
            "(found by exact search until the next snapshot relinks them).\n"
            "# TYPE vecfs_vectors_stranded_total counter\n"
            "vecfs_vectors_stranded_total %llu\n",
            (unsigned long long)m.store_bytes, (unsigned long long)m.max_bytes,
            (unsigned long long)m.index_memory, m.snapshot_age_seconds,
            (unsigned long long)m.searches_short_total, (unsigned long long)m.vectors_rehomed_total,
            (unsigned long long)m.vectors_stranded_total);
    if (rc == 0)
        rc = vc_buf_printf(b,
                           "# HELP vecfs_audit_failures_total Audit lines that could not be "
                           "written.\n"
                           "# TYPE vecfs_audit_failures_total counter\n"
                           "vecfs_audit_failures_total %llu\n"
                           "# HELP vecfs_query_bytes Bytes of query texts and results held.\n"
                           "# TYPE vecfs_query_bytes gauge\n"
                           "vecfs_query_bytes %llu\n",
                           (unsigned long long)fsd_audit_failures(),
                           (unsigned long long)fsd_queries_bytes(d->queries));
    if (rc == 0)
        rc = vc_buf_printf(
            b,
            "# HELP vecfs_deletes_total Vectors deleted since the mount.\n"
            "# TYPE vecfs_deletes_total counter\n"
            "vecfs_deletes_total %llu\n"
            "# HELP vecfs_snapshots_total Index snapshots written since the mount.\n"
            "# TYPE vecfs_snapshots_total counter\n"
            "vecfs_snapshots_total %llu\n"
            "# HELP vecfs_rebuilds_total Indexes rebuilt from the records since the mount.\n"
            "# TYPE vecfs_rebuilds_total counter\n"
            "vecfs_rebuilds_total %llu\n"
            "# HELP vecfs_background_errors_total Background sync and snapshot failures.\n"
            "# TYPE vecfs_background_errors_total counter\n"
            "vecfs_background_errors_total %llu\n"
            "# HELP vecfs_stale_readers_cleared_total LMDB reader slots of processes that "
            "died inside a read, cleared.\n"
            "# TYPE vecfs_stale_readers_cleared_total counter\n"
            "vecfs_stale_readers_cleared_total %llu\n",
            (unsigned long long)m.deletes_total, (unsigned long long)m.snapshots_total,
            (unsigned long long)m.rebuilds_total, (unsigned long long)m.errors_total,
            (unsigned long long)m.stale_readers_total);
    if (rc == 0)
        rc = render_plan_metrics(b, &m);
    int ok = 0;
    if (rc == 0)
        rc = health_ok(d, &ok);
    if (rc == 0)
        rc = vc_buf_printf(b,
                           "# HELP vecfs_health_ok 1 when .vecfs/health says ok, 0 when it "
                           "names a problem.\n"
                           "# TYPE vecfs_health_ok gauge\n"
                           "vecfs_health_ok %d\n",
                           ok);
    return rc;
}

/* A collection's ef in use and, with ef_search = auto, its last tuning
 * (docs/tuning.md). Before a tuning the tuning fields are null. */
static void stats_tuning(json_t *o, const st_tuning *t)
{
    json_object_set_new(o, "ef_in_use", json_integer(t->ef_in_use));
    if (!t->tuned) {
        json_object_set_new(o, "estimated_recall", json_null());
        json_object_set_new(o, "estimated_recall_low", json_null());
        json_object_set_new(o, "tuning_queries", json_integer(0));
        json_object_set_new(o, "tuning_user_queries", json_integer(0));
        json_object_set_new(o, "tuned_at", json_null());
        json_object_set_new(o, "tuning_seconds", json_null());
        return;
    }
    char when[32];
    struct tm tm;
    gmtime_r(&t->tuned_at.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(o, "estimated_recall", json_real(t->recall));
    json_object_set_new(o, "estimated_recall_low", json_real(t->recall_low));
    json_object_set_new(o, "tuning_queries", json_integer((json_int_t)t->queries));
    json_object_set_new(o, "tuning_user_queries", json_integer((json_int_t)t->user_queries));
    json_object_set_new(o, "tuned_at", json_string(when));
    json_object_set_new(o, "tuning_seconds", json_real(t->seconds));
}

/* One JSON object per collection in .vecfs/stats. */
static int stats_coll_cb(void *ctx, const char *name, const st_attr *attr, uint64_t next)
{
    (void)next;
    coll_list *c = ctx;
    st_config cfg;
    json_t *o = json_object();
    if (o == NULL) {
        c->rc = -ENOMEM;
        return 1;
    }
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "vectors", json_integer((json_int_t)attr->count));
    json_object_set_new(o, "bytes", json_integer((json_int_t)attr->bytes));
    /* st_coll_config_get is a read; it does not write (list callbacks
     * must not write). */
    if (st_coll_config_get(c->st, name, &cfg) == 0) {
        json_object_set_new(o, "dim", json_integer(cfg.dim));
        json_object_set_new(o, "metric", json_string(vf_metric_name(cfg.metric)));
        json_object_set_new(o, "m", json_integer(cfg.m));
        json_object_set_new(o, "ef_construction", json_integer(cfg.ef_construction));
        if (cfg.ef_auto)
            json_object_set_new(o, "ef_search", json_string("auto"));
        else
            json_object_set_new(o, "ef_search", json_integer(cfg.ef_search));
        json_object_set_new(o, "quantization", json_string(st_quant_name(cfg.quantization)));
        json_object_set_new(o, "rerank", json_integer(cfg.rerank));
        json_object_set_new(o, "index", json_string("hnsw"));
    }
    st_index_info ii;
    if (st_coll_index_info(c->st, name, &ii) == 0) {
        json_object_set_new(o, "index_quantization", json_string(st_quant_name(ii.quantization)));
        json_object_set_new(o, "index_bytes", json_integer((json_int_t)ii.index_bytes));
        json_object_set_new(o, "index_bytes_per_vector", json_real(bytes_per_vector(&ii)));
        json_object_set_new(o, "converting", json_boolean(ii.converting));
        json_object_set_new(o, "quantizer_relearns", json_integer((json_int_t)ii.relearns));
    }
    st_tuning t;
    if (st_coll_tuning(c->st, name, &t) == 0)
        stats_tuning(o, &t);
    json_array_append_new(c->arr, o);
    return 0;
}

/* The JSON document of .vecfs/stats. */
static int render_stats(fsd *d, vc_buf *b)
{
    st_metrics m;
    int rc = st_store_metrics(d->store, &m);
    if (rc < 0)
        return rc;
    json_t *root = json_object();
    json_t *arr = json_array();
    if (root == NULL || arr == NULL) {
        json_decref(root);
        json_decref(arr);
        return -ENOMEM;
    }
    coll_list c = {.b = b, .st = d->store, .arr = arr};
    rc = st_coll_list(d->store, 0, stats_coll_cb, &c);
    if (rc == 0)
        rc = c.rc;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    json_object_set_new(root, "version", json_string(VECFS_VERSION));
    json_object_set_new(root, "uptime_seconds",
                        json_integer((json_int_t)(now.tv_sec - d->started.tv_sec)));
    /* A --read-only RADOS node's cache is writable (it applies the log). */
    json_object_set_new(root, "read_only", json_boolean(m.read_only || d->read_only));
    json_object_set_new(root, "encrypted", json_boolean(m.encrypted));
    json_object_set_new(root, "collections", arr);
    json_t *imports = json_array();
    if (rc == 0)
        rc = imports != NULL ? fsd_imports_stats(d, imports) : -ENOMEM;
    json_object_set_new(root, "imports", imports);
    json_object_set_new(root, "vectors", json_integer((json_int_t)m.vectors));
    json_object_set_new(root, "store_bytes", json_integer((json_int_t)m.store_bytes));
    json_object_set_new(root, "map_bytes", json_integer((json_int_t)m.map_bytes));
    json_object_set_new(root, "max_bytes", json_integer((json_int_t)m.max_bytes));
    json_object_set_new(root, "index_memory_bytes", json_integer((json_int_t)m.index_memory));
    json_object_set_new(root, "inserts_total",
                        json_integer((json_int_t)fsd_metrics_inserts_total()));
    json_object_set_new(root, "queries_total",
                        json_integer((json_int_t)fsd_metrics_queries_total()));
    json_object_set_new(root, "deletes_total", json_integer((json_int_t)m.deletes_total));
    json_object_set_new(root, "snapshots_total", json_integer((json_int_t)m.snapshots_total));
    json_object_set_new(root, "rebuilds_total", json_integer((json_int_t)m.rebuilds_total));
    json_object_set_new(root, "commits_total", json_integer((json_int_t)m.commits_total));
    json_object_set_new(root, "commit_ops_total", json_integer((json_int_t)m.commit_ops_total));
    json_object_set_new(root, "commit_seconds_total", json_real(m.commit_seconds_total));
    json_object_set_new(root, "searches_short_total",
                        json_integer((json_int_t)m.searches_short_total));
    json_object_set_new(root, "vectors_rehomed_total",
                        json_integer((json_int_t)m.vectors_rehomed_total));
    json_object_set_new(root, "vectors_stranded_total",
                        json_integer((json_int_t)m.vectors_stranded_total));
    json_t *plans = json_object();
    for (int k = 0; plans != NULL && k < ST_PLAN_KIND_COUNT; k++)
        json_object_set_new(plans, st_plan_name((st_plan_kind)k),
                            json_integer((json_int_t)m.plans_total[k]));
    json_object_set_new(root, "query_plans", plans);
    json_object_set_new(root, "query_plans_redone_exact",
                        json_integer((json_int_t)m.plans_redone_total));
    json_object_set_new(root, "snapshot_age_seconds", json_real(m.snapshot_age_seconds));
    json_object_set_new(root, "open_seconds", json_real(m.open_seconds));
    json_object_set_new(root, "query_files",
                        json_integer((json_int_t)fsd_queries_count(d->queries)));
    json_object_set_new(root, "inodes", json_integer((json_int_t)fsd_inodes_count(d->inodes)));
    if (rc == 0) {
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text == NULL)
            rc = -ENOMEM;
        else
            rc = vc_buf_printf(b, "%s\n", text);
        free(text);
    }
    json_decref(root);
    return rc;
}

int fsd_admin_render(fsd *d, fsd_kind kind, vc_buf *b)
{
    switch (kind) {
    case FSD_K_ADMIN_HEALTH:
        return render_health(d, b);
    case FSD_K_ADMIN_METRICS:
        return render_metrics(d, b);
    case FSD_K_ADMIN_STATS:
        return render_stats(d, b);
    default:
        return -ENOENT;
    }
}

/* ------------------------------------------------------------------ */
/* .vecfs/fault (test builds only)                                      */
/* ------------------------------------------------------------------ */

#ifdef VECFS_TEST_HOOKS
/* What the last write got back from vc_alloc_fail_at. */
static _Atomic uint64_t fault_left;

/* The file's text, "<fault_left>\n", into buf; its length. */
static size_t fault_text(char *buf, size_t len)
{
    int n = snprintf(buf, len, "%llu\n", (unsigned long long)atomic_load(&fault_left));
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* Attributes: the root's owner, 0600 (arming fails every allocation of
 * the daemon, so only the owner of DATADIR may). */
static int fault_stat(fsd *d, fuse_ino_t ino, struct stat *st)
{
    char text[32];
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = S_IFREG | 0600;
    st->st_uid = d->root.st_uid;
    st->st_gid = d->root.st_gid;
    st->st_nlink = 1;
    st->st_size = (off_t)fault_text(text, sizeof text);
    st->st_blksize = 4096;
    clock_gettime(CLOCK_REALTIME, &st->st_mtim);
    st->st_atim = st->st_ctim = st->st_mtim;
    return 0;
}

/* fsd_fh_ops.read: the text at the time of the read. The copy is made
 * with malloc, not vc_malloc (invariant 3); op_read frees it. */
static int fault_fh_read(fsd *d, fsd_fh *fh, size_t size, off_t off, char **out, size_t *n)
{
    (void)d;
    (void)fh;
    char text[32];
    size_t len = fault_text(text, sizeof text);
    *out = NULL;
    *n = 0;
    if ((uint64_t)off >= len)
        return 0;
    size_t k = len - (size_t)off < size ? len - (size_t)off : size;
    *out = malloc(k ? k : 1);
    if (*out == NULL)
        return -ENOMEM;
    memcpy(*out, text + off, k);
    *n = k;
    return 0;
}

/* fsd_fh_ops.write: each write(2) is one command, a decimal count with an
 * optional newline, at any offset. -EINVAL for anything else. Arming is
 * the last step (invariant 3). */
static int fault_fh_write(fsd *d, fsd_fh *fh, const char *buf, size_t size, off_t off)
{
    (void)d;
    (void)fh;
    (void)off;
    char text[24];
    if (size > 0 && buf[size - 1] == '\n')
        size--;
    if (size == 0 || size >= sizeof text)
        return -EINVAL;
    for (size_t i = 0; i < size; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return -EINVAL;
    memcpy(text, buf, size);
    text[size] = '\0';
    errno = 0;
    unsigned long long n = strtoull(text, NULL, 10);
    if (errno != 0)
        return -EINVAL;
    atomic_store(&fault_left, vc_alloc_fail_at(n));
    return 0;
}

/* fsd_fh_ops.release and .discard. */
static void fault_fh_discard(fsd *d, fsd_fh *fh)
{
    (void)d;
    free(fh);
}

static void fault_fh_release(fsd *d, fsd_fh *fh, const fsd_caller *who)
{
    (void)who;
    fault_fh_discard(d, fh);
}

static const fsd_fh_ops fault_fh_ops = {
    .read = fault_fh_read,
    .write = fault_fh_write,
    .release = fault_fh_release,
    .discard = fault_fh_discard,
};

/* Open: a handle from calloc, not vc_calloc (invariant 3). */
static void fault_open(fuse_req_t req, struct fuse_file_info *fi)
{
    fsd_fh *h = calloc(1, sizeof *h);
    if (h == NULL) {
        fsd_reply_err(req, FSD_OP_OPEN, ENOMEM);
        return;
    }
    h->ops = &fault_fh_ops;
    fi->direct_io = 1;
    fsd_fh_reply_open(req, fi, h);
}
#endif /* VECFS_TEST_HOOKS */

int fsd_admin_stat(fsd *d, fsd_kind kind, fuse_ino_t ino, struct stat *st)
{
#ifdef VECFS_TEST_HOOKS
    if (kind == FSD_K_ADMIN_FAULT)
        return fault_stat(d, ino, st);
#endif
    vc_buf b = VC_BUF_INIT;
    int rc = fsd_admin_render(d, kind, &b);
    if (rc == 0) {
        memset(st, 0, sizeof *st);
        st->st_ino = ino;
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t)b.len;
        st->st_blksize = 4096;
        clock_gettime(CLOCK_REALTIME, &st->st_mtim);
        st->st_atim = st->st_ctim = st->st_mtim;
    }
    vc_buf_release(&b);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Handles                                                              */
/* ------------------------------------------------------------------ */

/* A generated read-only file: the whole content made at open. */
typedef struct buf_fh {
    fsd_fh h;
    vc_buf content;
} buf_fh;

/* fsd_fh_ops.read: from a copy (see fsd_copy_range): the kernel may
 * complete the read, let the reader close and deliver the release before
 * the reply returns. */
static int buf_fh_read(fsd *d, fsd_fh *fh, size_t size, off_t off, char **out, size_t *n)
{
    (void)d;
    return fsd_copy_range(&((buf_fh *)fh)->content, size, off, out, n);
}

/* fsd_fh_ops.discard and, as nothing is pending, release. */
static void buf_fh_discard(fsd *d, fsd_fh *fh)
{
    (void)d;
    buf_fh *b = (buf_fh *)fh;
    vc_buf_release(&b->content);
    free(b);
}

/* fsd_fh_ops.release: see buf_fh_discard. */
static void buf_fh_release(fsd *d, fsd_fh *fh, const fsd_caller *who)
{
    (void)who;
    buf_fh_discard(d, fh);
}

static const fsd_fh_ops buf_fh_ops = {
    .read = buf_fh_read,
    .release = buf_fh_release,
    .discard = buf_fh_discard,
};

void fsd_admin_open(fuse_req_t req, const fsd_ref *r, struct fuse_file_info *fi)
{
#ifdef VECFS_TEST_HOOKS
    if (r->kind == FSD_K_ADMIN_FAULT) {
        fault_open(req, fi);
        return;
    }
#endif
    fsd *d = fsd_of(req);
    int rc = (fi->flags & O_ACCMODE) != O_RDONLY ? -EACCES : 0;
    buf_fh *h = rc == 0 ? vc_calloc(1, sizeof *h) : NULL;
    if (rc == 0 && h == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        h->h.ops = &buf_fh_ops;
        rc = fsd_admin_render(d, r->kind, &h->content);
    }
    if (rc < 0) {
        if (h != NULL)
            buf_fh_discard(d, &h->h);
        fsd_reply_err(req, FSD_OP_OPEN, rc);
        return;
    }
    fi->direct_io = 1;
    fsd_fh_reply_open(req, fi, &h->h);
}
