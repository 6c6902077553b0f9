/*
 * test_hnsw_fault.c — every engine operation with its 1st, 2nd, ... N-th
 * allocation failing (STYLE rule 9; issue 8 item 6): single and batch
 * inserts (fresh ids, twins that ride on a head, reused slots, ids past
 * the capacity so the index grows), updates and removes of heads, riders,
 * the entry and the node that anchors most others (their dependants are
 * rehomed), searches on a new thread whose scratch is built from nothing,
 * snapshots both ways, ef tuning, the reachability walks and exact search.
 *
 * For each N, on a fresh copy of the same index: the call returns -ENOMEM
 * and the index is exactly as before (vf_hnsw_check, count, every vector
 * present with its value, found by its value under its id, 0 unreachable,
 * nothing stranded), or it returns 0 and the operation is fully done; a
 * failed call then succeeds once the allocator is disarmed. The sweep ends
 * at the first N the call does not reach. Leaks show up under ASan.
 * VECFS_TEST_ONLY=<glob> runs the tests whose names match.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "buf.h"
#include "engine.h"
#include "hnsw_internal.h"
#include "hnsw_source.h"
#include "race_run.h"
#include "test_rng.h"

#define DIM 8
#define BASE_N 1000u
/* Ids 200 .. 219 are GROUPS rings of GROUP_SIZE copies of one vector. */
#define TWIN_FIRST 200u
#define GROUPS 5u
#define GROUP_SIZE 4u
/* Ids 100 .. 109 are deleted in the base: slots to reuse. */
#define DELETED_FIRST 100u
#define DELETED_N 10u
#define MODEL_CAP 8192u
#define MAX_SWEEP 100000u

static void rng_vector(float *v)
{
    for (size_t j = 0; j < DIM; j++)
        v[j] = (float)((double)(rng_next() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/* ------------------------------------------------------------------ */
/* What the index should hold                                           */
/* ------------------------------------------------------------------ */

/* The ids an index holds and their vectors as given to insert. */
typedef struct model {
    vf_metric metric;
    bool present[MODEL_CAP];
    float vec[MODEL_CAP][DIM];
} model;

static void model_set(model *m, uint32_t id, const float *v)
{
    assert_true(id < MODEL_CAP);
    m->present[id] = true;
    memcpy(m->vec[id], v, sizeof(m->vec[id]));
}

static size_t model_count(const model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < MODEL_CAP; i++)
        n += m->present[i];
    return n;
}

/* Whether the index holds v under id, in the form it stores (unit length
 * for cosine), bit for bit. */
static bool holds(const vf_hnsw *h, vf_metric metric, uint32_t id, const float *v)
{
    float want[DIM], got[DIM];
    if (metric == VF_METRIC_COSINE)
        vf_normalize(v, want, DIM);
    else
        memcpy(want, v, sizeof(want));
    return vf_hnsw_get(h, id, got) == 0 && memcmp(want, got, sizeof(got)) == 0;
}

/* What the sweep is at, for failure messages. */
static const char *at_what = "setup";
static unsigned at_n;
static int at_rc;

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("%s, allocation %u failing (rc %d): %s", at_what, at_n, at_rc, #cond);        \
    } while (0)

/* The index holds exactly m: its invariants hold, nothing is unreachable
 * or stranded, and every vector is found by its own value under its id. */
static void verify(const vf_hnsw *h, const model *m)
{
    EXPECT(vf_hnsw_check(h) == 0);
    EXPECT(vf_hnsw_unreachable(h) == 0);
    vf_hnsw_stats st;
    vf_hnsw_stats_get(h, &st);
    EXPECT(st.stranded == 0);
    EXPECT(vf_hnsw_count(h) == model_count(m));
    for (uint32_t id = 0; id < MODEL_CAP; id++) {
        EXPECT(vf_hnsw_contains(h, id) == m->present[id]);
        if (!m->present[id])
            continue;
        EXPECT(holds(h, m->metric, id, m->vec[id]));
        /* -dot ranks a vector below larger ones in its direction, so under
         * dot it need not find itself; its reachability is checked above. */
        if (m->metric == VF_METRIC_DOT)
            continue;
        /* k = the copies of the vector, so the id must be among them. */
        size_t copies = 0;
        for (uint32_t o = 0; o < MODEL_CAP; o++)
            copies += m->present[o] && memcmp(m->vec[o], m->vec[id], sizeof(m->vec[o])) == 0;
        assert_true(copies <= 16);
        vf_hit hits[16];
        size_t n = 0;
        EXPECT(vf_hnsw_search(h, m->vec[id], copies, 0, NULL, hits, &n) == 0);
        EXPECT(n == copies);
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found |= hits[i].id == id;
        EXPECT(found);
        EXPECT(fabsf(hits[0].distance) <= 1e-6f);
    }
}

/* ------------------------------------------------------------------ */
/* The index every sweep starts from                                    */
/* ------------------------------------------------------------------ */

/* The snapshot writer: appends to a vc_buf. */
static int buf_write(void *ctx, const void *src, size_t len)
{
    return vc_buf_append(ctx, src, len);
}

/* A base index of `metric` as snapshot bytes, and its model: BASE_N ids,
 * rings of twins at TWIN_FIRST, deleted slots at DELETED_FIRST. m is 4 so
 * that many nodes have upper lists. */
/* The vectors of the last base snapshot as inserted: the originals its
 * loads read through base_source (a NONE snapshot holds no vectors). */
static float base_vectors[MODEL_CAP][DIM];
static array_source base_rows;
static vf_vec_source base_source;

static vc_buf base_snapshot(vf_metric metric, model *m)
{
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, DIM);
    p.metric = metric;
    p.m = 16;
    p.ef_construction = 300;
    p.ef_search = 32;
    vf_hnsw *h = NULL;
    assert_int_equal(vf_hnsw_create(&p, &h), 0);
    memset(m, 0, sizeof(*m));
    m->metric = metric;
    rng_state = 8 + (uint64_t)metric;
    float group[GROUPS][DIM];
    for (size_t g = 0; g < GROUPS; g++)
        rng_vector(group[g]);
    for (uint32_t id = 0; id < BASE_N; id++) {
        float v[DIM];
        if (id >= TWIN_FIRST && id < TWIN_FIRST + GROUPS * GROUP_SIZE)
            memcpy(v, group[(id - TWIN_FIRST) / GROUP_SIZE], sizeof(v));
        else
            rng_vector(v);
        assert_int_equal(vf_hnsw_insert(h, id, v), 0);
        model_set(m, id, v);
    }
    for (uint32_t id = DELETED_FIRST; id < DELETED_FIRST + DELETED_N; id++) {
        assert_int_equal(vf_hnsw_remove(h, id), 0);
        m->present[id] = false;
    }
    /* The rings are as planned: the first copy heads, the others ride. */
    for (size_t g = 0; g < GROUPS; g++)
        for (uint32_t c = 0; c < GROUP_SIZE; c++)
            assert_int_equal(ring_role(h, TWIN_FIRST + (uint32_t)g * GROUP_SIZE + c),
                             c ? VF_TWIN_RIDER : VF_TWIN_HEAD);
    verify(h, m);
    vc_buf b = VC_BUF_INIT;
    assert_int_equal(vf_hnsw_serialize(h, buf_write, &b), 0);
    vf_hnsw_free(h);
    memcpy(base_vectors, m->vec, sizeof(base_vectors));
    base_source = array_source_of(&base_rows, &base_vectors[0][0], MODEL_CAP, DIM);
    return b;
}

/* Frees the index's idle scratch, so that the next call builds its own
 * from nothing, as the first call on a new index or a new thread does. */
static void pool_drain(vf_hnsw *h)
{
    while (h->pool) {
        vf_scratch *next = h->pool->next;
        vf_scratch_free(h->pool);
        h->pool = next;
    }
}

/* The base index loaded, with room for `reserve` ids and a cold pool. */
static vf_hnsw *base_load(const vc_buf *b, size_t reserve)
{
    vf_hnsw *h = NULL;
    assert_int_equal(vf_hnsw_deserialize(b->p, b->len, &base_source, &h), 0);
    if (reserve)
        assert_int_equal(vf_hnsw_reserve(h, reserve), 0);
    pool_drain(h);
    return h;
}

/* The graph node that anchors the most others: removing or moving it
 * rehomes them all. */
static uint32_t most_anchoring(const vf_hnsw *h)
{
    static uint32_t dependants[MODEL_CAP];
    memset(dependants, 0, sizeof(dependants));
    uint32_t best = 0;
    for (size_t i = 0; i < h->capacity; i++) {
        uint32_t a = anchor_get(h, (uint32_t)i);
        if (graph_node(h, (uint32_t)i) && a < MODEL_CAP && ++dependants[a] > dependants[best])
            best = a;
    }
    assert_true(dependants[best] >= 2);
    return best;
}

static uint32_t entry_of(const vf_hnsw *h)
{
    return (uint32_t)atomic_load(&h->entry);
}

/* ------------------------------------------------------------------ */
/* The sweep                                                            */
/* ------------------------------------------------------------------ */

enum { OP_INSERT, OP_REMOVE, OP_BATCH };

/* One write: an insert or update of id to vec, a remove of id, or a
 * batch of n rows. */
typedef struct op {
    int kind;
    uint32_t id;
    float vec[DIM];
    const uint32_t *ids;
    const float *vecs;
    size_t n;
} op;

static int op_run(vf_hnsw *h, const op *o)
{
    switch (o->kind) {
    case OP_INSERT:
        return vf_hnsw_insert(h, o->id, o->vec);
    case OP_REMOVE:
        return vf_hnsw_remove(h, o->id);
    default:
        return vf_hnsw_insert_batch(h, o->ids, 0, o->vecs, o->n, 2);
    }
}

static void op_apply(model *m, const op *o)
{
    switch (o->kind) {
    case OP_INSERT:
        model_set(m, o->id, o->vec);
        break;
    case OP_REMOVE:
        m->present[o->id] = false;
        break;
    default:
        for (size_t i = 0; i < o->n; i++)
            model_set(m, o->ids[i], o->vecs + i * DIM);
    }
}

/* After a failed batch, each row is in or not (engine.h: "some rows may
 * have been inserted"): builds the model of what the index holds, every
 * id as before or as one of its rows, and checks it. */
static void verify_batch_rows(const vf_hnsw *h, const model *before, const op *o)
{
    static model seen;
    seen = *before;
    for (size_t i = 0; i < o->n; i++) {
        uint32_t id = o->ids[i];
        if (before->present[id] ? holds(h, before->metric, id, before->vec[id])
                                : !vf_hnsw_contains(h, id))
            continue;
        bool row = false;
        for (size_t r = 0; r < o->n && !row; r++) {
            if (o->ids[r] == id && holds(h, before->metric, id, o->vecs + r * DIM)) {
                model_set(&seen, id, o->vecs + r * DIM);
                row = true;
            }
        }
        if (!row)
            fail_msg("batch row %zu (id %u) is neither as before nor as a row", i, id);
    }
    verify(h, &seen);
}

typedef struct sweep_stats {
    unsigned failed;    /* N whose failure the call returned as -ENOMEM */
    unsigned tolerated; /* N whose failure the call absorbed and still succeeded */
    unsigned calls;     /* the allocations the call makes when none fails */
} sweep_stats;

/* Runs o on a fresh load of `base` with the N-th allocation failing, for
 * every N until o makes fewer than N allocations. */
static sweep_stats sweep_op(const char *what, const vc_buf *base, size_t reserve,
                            const model *before, const op *o)
{
    static model after;
    after = *before;
    op_apply(&after, o);
    sweep_stats st = {0};
    for (unsigned n = 1; n < MAX_SWEEP; n++) {
        vf_hnsw *h = base_load(base, reserve);
        vc_alloc_fail_at(n);
        int rc = op_run(h, o);
        bool fired = vc_alloc_fail_at(0) == 0;
        at_what = what, at_n = n, at_rc = rc;
        if (!fired) {
            if (rc != 0)
                fail_msg("%s: %d with no allocation failing", what, rc);
            verify(h, &after);
            vf_hnsw_free(h);
            st.calls = n - 1;
            break;
        }
        if (rc == 0) {
            st.tolerated++;
            verify(h, &after);
        } else {
            if (rc != -ENOMEM)
                fail_msg("%s, allocation %u failing: %d, not -ENOMEM", what, n, rc);
            st.failed++;
            if (o->kind == OP_BATCH)
                verify_batch_rows(h, before, o);
            else
                verify(h, before);
            assert_int_equal(op_run(h, o), 0);
            verify(h, &after);
        }
        vf_hnsw_free(h);
    }
    print_message("%-44s %3u allocations: %3u failed cleanly, %u absorbed\n", what, st.calls,
                  st.failed, st.tolerated);
    assert_true(st.calls > 0);
    assert_true(st.failed > 0);
    return st;
}

/* ------------------------------------------------------------------ */
/* Writes                                                               */
/* ------------------------------------------------------------------ */

static op op_insert(uint32_t id, const float *v)
{
    op o = {.kind = OP_INSERT, .id = id};
    memcpy(o.vec, v, sizeof(o.vec));
    return o;
}

static op op_insert_random(uint32_t id)
{
    float v[DIM];
    rng_vector(v);
    return op_insert(id, v);
}

static op op_remove(uint32_t id)
{
    return (op){.kind = OP_REMOVE, .id = id};
}

/* Inserts and updates of every kind on a `metric` index. */
static void sweep_writes(vf_metric metric, bool all)
{
    static model m;
    vc_buf base = base_snapshot(metric, &m);
    vf_hnsw *h = base_load(&base, 0);
    uint32_t entry = entry_of(h), anchor = most_anchoring(h);
    vf_hnsw_free(h);
    const uint32_t head0 = TWIN_FIRST, head1 = TWIN_FIRST + GROUP_SIZE;
    char what[96];
    op o;

    snprintf(what, sizeof(what), "%s: insert, fresh id", vf_metric_name(metric));
    o = op_insert_random(BASE_N);
    sweep_op(what, &base, 1024, &m, &o);
    snprintf(what, sizeof(what), "%s: insert, index grows", vf_metric_name(metric));
    sweep_op(what, &base, 0, &m, &o);
    snprintf(what, sizeof(what), "%s: update, node anchoring most (%u)", vf_metric_name(metric),
             anchor);
    o = op_insert_random(anchor);
    sweep_op(what, &base, 0, &m, &o);
    snprintf(what, sizeof(what), "%s: update, head of twins", vf_metric_name(metric));
    o = op_insert_random(head1);
    sweep_op(what, &base, 0, &m, &o);
    if (!all) {
        vc_buf_release(&base);
        return;
    }

    o = op_insert_random(4000);
    sweep_op("l2: insert, index grows far", &base, 0, &m, &o);
    o = op_insert(BASE_N + 1, m.vec[head0]);
    sweep_op("l2: insert, twin rides on a head", &base, 1024, &m, &o);
    o = op_insert_random(DELETED_FIRST + 3);
    sweep_op("l2: insert, deleted slot reused", &base, 0, &m, &o);
    o = op_insert(DELETED_FIRST + 4, m.vec[head1]);
    sweep_op("l2: insert, deleted slot reused as a twin", &base, 0, &m, &o);
    snprintf(what, sizeof(what), "l2: update, the entry (%u)", entry);
    o = op_insert_random(entry);
    sweep_op(what, &base, 0, &m, &o);
    o = op_insert_random(head0 + 1);
    sweep_op("l2: update, a rider", &base, 0, &m, &o);
    o = op_insert(7, m.vec[head0]);
    sweep_op("l2: update, a node becomes a twin", &base, 0, &m, &o);
    o = op_insert(head1, m.vec[head0]);
    sweep_op("l2: update, a head joins another ring", &base, 0, &m, &o);
    vc_buf_release(&base);
}

static void test_insert_update(void **state)
{
    (void)state;
    skip_in_race_run();
    sweep_writes(VF_METRIC_L2, true);
}

static void test_insert_update_cosine_dot(void **state)
{
    (void)state;
    skip_in_race_run();
    sweep_writes(VF_METRIC_COSINE, false);
    sweep_writes(VF_METRIC_DOT, false);
}

static void test_remove(void **state)
{
    (void)state;
    skip_in_race_run();
    static model m;
    vc_buf base = base_snapshot(VF_METRIC_L2, &m);
    vf_hnsw *h = base_load(&base, 0);
    uint32_t entry = entry_of(h), anchor = most_anchoring(h);
    vf_hnsw_free(h);
    char what[96];
    op o;

    snprintf(what, sizeof(what), "l2: remove, the entry (%u)", entry);
    o = op_remove(entry);
    sweep_op(what, &base, 0, &m, &o);
    snprintf(what, sizeof(what), "l2: remove, node anchoring most (%u)", anchor);
    o = op_remove(anchor);
    sweep_op(what, &base, 0, &m, &o);
    o = op_remove(TWIN_FIRST);
    sweep_op("l2: remove, head of twins", &base, 0, &m, &o);
    o = op_remove(TWIN_FIRST + 2);
    sweep_op("l2: remove, a rider", &base, 0, &m, &o);
    o = op_remove(11);
    sweep_op("l2: remove, a plain node", &base, 0, &m, &o);
    vc_buf_release(&base);

    static model md;
    base = base_snapshot(VF_METRIC_DOT, &md);
    h = base_load(&base, 0);
    anchor = most_anchoring(h);
    vf_hnsw_free(h);
    o = op_remove(anchor);
    sweep_op("dot: remove, node anchoring most", &base, 0, &md, &o);
    vc_buf_release(&base);
}

static void test_batch(void **state)
{
    (void)state;
    skip_in_race_run();
    static model m;
    vc_buf base = base_snapshot(VF_METRIC_L2, &m);
    /* Fresh rows (two are twins of a head and of each other), an update,
     * a reused slot, an id repeated in the batch and one past the
     * capacity, so the index grows. */
    enum { ROWS = 12 };
    uint32_t ids[ROWS] = {BASE_N,     BASE_N + 1, BASE_N + 2,     BASE_N + 3,
                          BASE_N + 4, 3,          TWIN_FIRST + 1, DELETED_FIRST,
                          BASE_N + 5, BASE_N + 1, 1500,           BASE_N + 6};
    float vecs[ROWS][DIM];
    for (size_t i = 0; i < ROWS; i++)
        rng_vector(vecs[i]);
    memcpy(vecs[2], m.vec[TWIN_FIRST], sizeof(vecs[2]));
    memcpy(vecs[11], m.vec[TWIN_FIRST], sizeof(vecs[11]));
    op o = {.kind = OP_BATCH, .ids = ids, .vecs = &vecs[0][0], .n = ROWS};
    sweep_op("l2: batch insert, index grows", &base, 0, &m, &o);
    sweep_op("l2: batch insert, room reserved", &base, 2048, &m, &o);
    vc_buf_release(&base);
}

/* ------------------------------------------------------------------ */
/* Reads                                                                */
/* ------------------------------------------------------------------ */

typedef struct search_job {
    const vf_hnsw *h;
    const float *q;
    size_t k, ef;
    const vf_filter *filter;
    vf_hit out[64];
    size_t n;
    int rc;
} search_job;

static void *search_thread(void *arg)
{
    search_job *j = arg;
    j->rc = vf_hnsw_search(j->h, j->q, j->k, j->ef, j->filter, j->out, &j->n);
    return NULL;
}

static bool even_ids(void *ctx, uint32_t id)
{
    (void)ctx;
    return id % 2 == 0;
}

/* A search on a thread of its own and a cold pool (the scratch's first
 * use), against the same search with nothing failing. */
static void sweep_search(const char *what, const vf_hnsw *h, size_t k, size_t ef,
                         const vf_filter *filter, const model *m)
{
    float q[DIM];
    rng_vector(q);
    search_job want = {.h = h, .q = q, .k = k, .ef = ef, .filter = filter};
    search_thread(&want);
    assert_int_equal(want.rc, 0);
    assert_int_equal(want.n, k);
    unsigned n, failed = 0;
    for (n = 1; n < MAX_SWEEP; n++) {
        search_job got = want;
        pthread_t t;
        pool_drain((vf_hnsw *)h);
        vc_alloc_fail_at(n);
        assert_int_equal(pthread_create(&t, NULL, search_thread, &got), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        bool fired = vc_alloc_fail_at(0) == 0;
        at_what = what, at_n = n, at_rc = got.rc;
        if (got.rc == 0) {
            assert_int_equal(got.n, want.n);
            assert_memory_equal(got.out, want.out, want.n * sizeof(vf_hit));
        } else {
            assert_int_equal(got.rc, -ENOMEM);
            assert_int_equal(got.n, 0);
            failed++;
        }
        verify(h, m);
        if (!fired)
            break;
    }
    print_message("%-44s %3u allocations: %3u failed cleanly\n", what, n - 1, failed);
    assert_true(failed > 0);
}

static void test_search(void **state)
{
    (void)state;
    static model m;
    vc_buf base = base_snapshot(VF_METRIC_L2, &m);
    vf_hnsw *h = base_load(&base, 0);
    /* ef above the scratch's ef_construction: its result arrays grow, and
     * the walk's candidate queue outgrows its first 256 entries. */
    sweep_search("l2: search, ef 300", h, 10, 300, NULL, &m);
    vf_filter half = {.accept = even_ids, .passing = VF_FILTER_UNKNOWN};
    sweep_search("l2: search, filtered, ef 290", h, 10, 290, &half, &m);
    vf_hit out[10];
    size_t n;
    vc_alloc_fail_at(1);
    int rc = vf_hnsw_search_exact(h, m.vec[3], 10, NULL, out, &n);
    bool fired = vc_alloc_fail_at(0) == 0;
    assert_true(rc == 0 || (rc == -ENOMEM && fired));
    vf_hnsw_free(h);
    vc_buf_release(&base);
}

static void test_snapshot(void **state)
{
    (void)state;
    static model m;
    vc_buf base = base_snapshot(VF_METRIC_L2, &m);
    vf_hnsw *h = base_load(&base, 0);
    /* Serializing allocates nothing. */
    vc_buf again = VC_BUF_INIT;
    assert_int_equal(vc_buf_grow(&again, base.len), 0);
    vc_alloc_fail_at(1);
    assert_int_equal(vf_hnsw_serialize(h, buf_write, &again), 0);
    assert_int_equal(vc_alloc_fail_at(0), 1);
    assert_int_equal(again.len, base.len);
    assert_memory_equal(again.p, base.p, base.len);
    vc_buf_release(&again);
    vf_hnsw_free(h);

    unsigned n, failed = 0;
    for (n = 1; n < MAX_SWEEP; n++) {
        vf_hnsw *back = (vf_hnsw *)&back; /* must come back NULL on error */
        vc_alloc_fail_at(n);
        int rc = vf_hnsw_deserialize(base.p, base.len, &base_source, &back);
        bool fired = vc_alloc_fail_at(0) == 0;
        at_what = "l2: deserialize", at_n = n, at_rc = rc;
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            assert_null(back);
            failed++;
            continue;
        }
        verify(back, &m);
        vf_hnsw_free(back);
        if (!fired)
            break;
    }
    print_message("%-44s %3u allocations: %3u failed cleanly\n", "l2: deserialize", n - 1, failed);
    assert_true(failed > 0);
    vc_buf_release(&base);
}

/* ef tuning, the reachability count and the relink: each fails cleanly
 * or answers as it does with nothing failing. */
static void test_maintenance(void **state)
{
    (void)state;
    static model m;
    vc_buf base = base_snapshot(VF_METRIC_L2, &m);
    vf_hnsw *h = base_load(&base, 0);
    vf_tune_spec spec = {.k = 10, .target_recall = 0.99, .max_ef = 300, .held_out = 50};
    vf_tune_result want, got;
    assert_int_equal(vf_hnsw_tune(h, &spec, &want), 0);
    unsigned n, failed = 0;
    for (n = 1; n < MAX_SWEEP; n++) {
        vc_alloc_fail_at(n);
        int rc = vf_hnsw_tune(h, &spec, &got);
        bool fired = vc_alloc_fail_at(0) == 0;
        at_what = "l2: tune ef", at_n = n, at_rc = rc;
        if (rc == 0) {
            assert_int_equal(got.ef, want.ef);
        } else {
            assert_int_equal(rc, -ENOMEM);
            failed++;
        }
        verify(h, &m);
        if (!fired)
            break;
    }
    print_message("%-44s %3u allocations: %3u failed cleanly\n", "l2: tune ef", n - 1, failed);
    assert_true(failed > 0);

    for (n = 1; n < MAX_SWEEP; n++) {
        vc_alloc_fail_at(n);
        size_t lost = vf_hnsw_unreachable(h);
        bool fired = vc_alloc_fail_at(0) == 0;
        assert_true(lost == 0 || (lost == SIZE_MAX && fired));
        if (!fired)
            break;
    }
    for (n = 1; n < MAX_SWEEP; n++) {
        size_t fixed = 1;
        vc_alloc_fail_at(n);
        int rc = vf_hnsw_reconnect(h, &fixed);
        bool fired = vc_alloc_fail_at(0) == 0;
        at_what = "l2: reconnect", at_n = n, at_rc = rc;
        assert_true(rc == 0 || (rc == -ENOMEM && fired));
        assert_int_equal(fixed, 0);
        verify(h, &m);
        if (!fired)
            break;
    }
    vf_hnsw_free(h);
    vc_buf_release(&base);
}

/* Creating an index, and making room in one: a failed reserve leaves
 * the index as it was (arrays that grew stay grown, unused). */
static void test_create_reserve(void **state)
{
    (void)state;
    vf_hnsw_params p;
    vf_hnsw_params_default(&p, DIM);
    unsigned n;
    for (n = 1; n < MAX_SWEEP; n++) {
        vf_hnsw *h = (vf_hnsw *)&h; /* must come back NULL on error */
        vc_alloc_fail_at(n);
        int rc = vf_hnsw_create(&p, &h);
        bool fired = vc_alloc_fail_at(0) == 0;
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            assert_null(h);
            continue;
        }
        vf_hnsw_free(h);
        if (!fired)
            break;
    }
    assert_true(n > 1);

    static model m;
    vc_buf base = base_snapshot(VF_METRIC_DOT, &m);
    vf_hnsw *h = base_load(&base, 0);
    unsigned failed = 0;
    for (n = 1; n < MAX_SWEEP; n++) {
        size_t cap = h->capacity;
        vc_alloc_fail_at(n);
        int rc = vf_hnsw_reserve(h, cap + 100);
        bool fired = vc_alloc_fail_at(0) == 0;
        at_what = "dot: reserve", at_n = n, at_rc = rc;
        if (rc != 0) {
            EXPECT(rc == -ENOMEM);
            EXPECT(h->capacity == cap);
            failed++;
        } else {
            EXPECT(h->capacity >= cap + 100);
        }
        verify(h, &m);
        if (!fired)
            break;
    }
    print_message("%-44s %3u allocations: %3u failed cleanly\n", "dot: reserve", n - 1, failed);
    assert_true(failed > 0);
    vf_hnsw_free(h);
    vc_buf_release(&base);
}

/* Exact search over a caller's array allocates nothing. */
static void test_flat(void **state)
{
    (void)state;
    enum { N = 500, NQ = 20, KF = 10 };
    static float rows[N][DIM], queries[NQ][DIM];
    for (size_t i = 0; i < N; i++)
        rng_vector(rows[i]);
    for (size_t i = 0; i < NQ; i++)
        rng_vector(queries[i]);
    static vf_hit want[NQ][KF], got[NQ][KF];
    size_t want_n[NQ], got_n[NQ];
    for (int metric = VF_METRIC_L2; metric <= VF_METRIC_DOT; metric++) {
        assert_int_equal(vf_flat_search_batch(&rows[0][0], N, DIM, (vf_metric)metric,
                                              &queries[0][0], NQ, KF, NULL, 2, &want[0][0], want_n),
                         0);
        vc_alloc_fail_at(1);
        assert_int_equal(vf_flat_search_batch(&rows[0][0], N, DIM, (vf_metric)metric,
                                              &queries[0][0], NQ, KF, NULL, 2, &got[0][0], got_n),
                         0);
        assert_int_equal(vc_alloc_fail_at(0), 1);
        assert_memory_equal(got, want, sizeof(got));
        for (size_t q = 0; q < NQ; q++) {
            vc_alloc_fail_at(1);
            assert_int_equal(vf_flat_search(&rows[0][0], N, DIM, (vf_metric)metric, queries[q], KF,
                                            NULL, got[q], &got_n[q]),
                             0);
            assert_int_equal(vc_alloc_fail_at(0), 1);
            assert_int_equal(got_n[q], want_n[q]);
            assert_memory_equal(got[q], want[q], sizeof(got[q]));
        }
    }
}

int main(void)
{
    rng_state = 8; /* the stream every figure of this file was drawn from */
    const char *only = getenv("VECFS_TEST_ONLY");
    if (only)
        cmocka_set_test_filter(only);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_update), cmocka_unit_test(test_insert_update_cosine_dot),
        cmocka_unit_test(test_remove),        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_search),        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_maintenance),   cmocka_unit_test(test_create_reserve),
        cmocka_unit_test(test_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
