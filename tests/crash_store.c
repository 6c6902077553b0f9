/*
 * crash_store.c — crash test of the store: a child process runs WRITERS
 * threads that insert, overwrite, delete, rename, set xattrs and commit
 * batches in a loop, each on its own share of the names (so they meet in
 * commit groups, group.c), reporting each operation through a pipe before
 * it starts ("intent") and after its commit returned ("done"); the parent
 * kills it with SIGKILL at a random moment, then checks:
 *   1. st_check finds no problem (before and after reopening);
 *   2. after reopen, every operation reported done is there, and each
 *      thread's one in flight (if any) is either wholly there or wholly
 *      absent;
 *   3. every present vector is found by a search for its own vector (the
 *      index was rebuilt or replayed correctly).
 * Rounds: VECFS_CRASH_ROUNDS (default 20). Seed: VECFS_CRASH_SEED (printed).
 * VECFS_CRASH_KEY=1 runs the same against an encrypted store.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "store_testutil.h"

#define NAMES 200
#define DIM 8
/* Writer threads of the child; thread t owns the names a with a % WRITERS
 * == t, so its operations never depend on another thread's. */
#define WRITERS 4
#define PER (NAMES / WRITERS)

enum { OP_PUT = 1, OP_DEL, OP_REN, OP_XSET, OP_BATCH, OP_READY };

typedef struct msg {
    uint8_t kind; /* 1 intent, 2 done */
    uint8_t op;
    uint16_t a, b;
    uint16_t thread;
    uint32_t ver;
} msg;

typedef struct entry {
    bool present;
    char content[48];
    char xattr[16];
    uint16_t src;
    uint32_t ver;
} entry;

typedef struct model {
    entry e[NAMES];
} model;

static uint8_t crash_key[ST_KEY_LEN];

/* Store options of both processes (the key when VECFS_CRASH_KEY is set). */
static void crash_opts(st_options *o)
{
    tu_opts(o);
    o->log_level = ST_LOG_ERROR;
    if (getenv("VECFS_CRASH_KEY")) {
        memset(crash_key, 0xc3, sizeof(crash_key));
        o->key = crash_key;
        o->key_len = sizeof(crash_key);
    }
}

static void vec_of(uint16_t a, uint32_t ver, float *v)
{
    uint64_t s = ((uint64_t)a << 32) ^ ver ^ 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < DIM; i++)
        v[i] = tu_frand(&s);
}

static void name_of(uint16_t a, char *out)
{
    snprintf(out, 32, "n%03u", a);
}

/* Row i of a batch that starts at name a: a name of a's thread. */
static uint16_t batch_row(uint16_t a, int i)
{
    return (uint16_t)(((a / WRITERS + i * 17) % PER) * WRITERS + a % WRITERS);
}

/* Applies op to m (the model's view of a committed op). */
static void model_apply(model *m, const msg *x)
{
    switch (x->op) {
    case OP_PUT:
        m->e[x->a].present = true;
        snprintf(m->e[x->a].content, sizeof(m->e[0].content), "a=%u ver=%u", x->a, x->ver);
        m->e[x->a].src = x->a;
        m->e[x->a].ver = x->ver;
        break;
    case OP_DEL:
        memset(&m->e[x->a], 0, sizeof(entry));
        break;
    case OP_REN:
        if (x->a != x->b && m->e[x->a].present) {
            m->e[x->b] = m->e[x->a];
            memset(&m->e[x->a], 0, sizeof(entry));
        }
        break;
    case OP_XSET:
        if (m->e[x->a].present)
            snprintf(m->e[x->a].xattr, sizeof(m->e[0].xattr), "%u", x->ver);
        break;
    case OP_BATCH:
        for (int i = 0; i < 10; i++) {
            msg p = {.op = OP_PUT, .a = batch_row(x->a, i), .ver = x->ver + i};
            model_apply(m, &p);
        }
        break;
    default:
        break;
    }
}

static void send_msg(int fd, uint8_t kind, const msg *x)
{
    msg m = *x;
    m.kind = kind;
    if (write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
        _exit(3);
}

static int do_put(st_store *st, uint16_t a, uint32_t ver)
{
    char name[32], content[48];
    float v[DIM];
    name_of(a, name);
    snprintf(content, sizeof(content), "a=%u ver=%u", a, ver);
    vec_of(a, ver, v);
    return st_vec_put(st, "c", name, content, strlen(content), v, DIM, NULL, 0);
}

typedef struct writer_arg {
    st_store *st;
    int fd;
    uint64_t seed;
    model *m; /* shared; each thread touches only its own names */
    uint16_t thread;
} writer_arg;

/* One writer thread of the child: random operations on its own names. */
static void *writer(void *p)
{
    writer_arg *w = p;
    st_store *st = w->st;
    model *m = w->m;
    uint64_t seed = w->seed;
    uint32_t ver = (uint32_t)(seed & 0xffff) * 1000;
    for (;;) {
        msg x = {.thread = w->thread};
        uint64_t r = tu_rng(&seed);
        x.a = (uint16_t)((r % PER) * WRITERS + w->thread);
        x.b = (uint16_t)(((r >> 16) % PER) * WRITERS + w->thread);
        x.ver = ++ver;
        unsigned kind = (unsigned)((r >> 32) % 10);
        x.op = kind < 4   ? OP_PUT
               : kind < 6 ? OP_DEL
               : kind < 7 ? OP_REN
               : kind < 9 ? OP_XSET
                          : OP_BATCH;
        char a[32], b[32];
        name_of(x.a, a);
        name_of(x.b, b);
        /* Only ops that will succeed, so "done" means committed. */
        if ((x.op == OP_DEL || x.op == OP_REN || x.op == OP_XSET) && !m->e[x.a].present)
            x.op = OP_PUT;
        if (x.op == OP_REN && x.a == x.b)
            x.op = OP_PUT;
        send_msg(w->fd, 1, &x);
        int rc = 0;
        switch (x.op) {
        case OP_PUT:
            rc = do_put(st, x.a, x.ver);
            break;
        case OP_DEL:
            rc = st_vec_delete(st, "c", a);
            break;
        case OP_REN:
            rc = st_vec_rename(st, "c", a, b, 0);
            break;
        case OP_XSET: {
            char val[16];
            snprintf(val, sizeof(val), "%u", x.ver);
            rc = st_xattr_set(st, "c", a, "user.v", val, strlen(val), 0);
            break;
        }
        case OP_BATCH: {
            st_batch *bt;
            rc = st_batch_begin(st, "c", &bt);
            for (int i = 0; rc == 0 && i < 10; i++) {
                uint16_t k = batch_row(x.a, i);
                char nm[32], content[48];
                float v[DIM];
                name_of(k, nm);
                snprintf(content, sizeof(content), "a=%u ver=%u", k, x.ver + i);
                vec_of(k, x.ver + i, v);
                rc = st_batch_put(bt, nm, content, strlen(content), v, DIM, NULL, 0, 0, NULL, NULL,
                                  NULL);
            }
            if (rc == 0)
                rc = st_batch_commit(bt);
            ver += 10;
            break;
        }
        }
        if (rc != 0)
            _exit(4);
        model_apply(m, &x);
        send_msg(w->fd, 2, &x);
    }
    return NULL;
}

static void child(const char *dir, int fd, uint64_t seed, const model *m0)
{
    st_options o;
    crash_opts(&o);
    o.snapshot_every_changes = 150;
    o.sync_interval_ms = 20;
    st_store *st;
    if (st_store_open(dir, &o, &st) != 0)
        _exit(2);
    static model m;
    m = *m0;
    msg ready = {.op = OP_READY};
    send_msg(fd, 2, &ready);
    pthread_t th[WRITERS];
    writer_arg args[WRITERS];
    for (int t = 0; t < WRITERS; t++) {
        args[t] =
            (writer_arg){.st = st, .fd = fd, .seed = tu_rng(&seed), .m = &m, .thread = (uint16_t)t};
        if (pthread_create(&th[t], NULL, writer, &args[t]) != 0)
            _exit(5);
    }
    for (int t = 0; t < WRITERS; t++)
        pthread_join(th[t], NULL);
    _exit(6);
}

/* Does the store hold exactly model m? */
static bool store_matches(st_store *st, const model *m, char *why, size_t whylen)
{
    for (uint16_t a = 0; a < NAMES; a++) {
        char name[32];
        name_of(a, name);
        const entry *e = &m->e[a];
        void *data = NULL;
        size_t len = 0;
        int rc = st_vec_get(st, "c", name, &data, &len, NULL);
        if (!e->present) {
            free(data);
            if (rc != -ENOENT) {
                snprintf(why, whylen, "%s should be absent (rc %d)", name, rc);
                return false;
            }
            continue;
        }
        if (rc != 0 || len != strlen(e->content) || memcmp(data, e->content, len) != 0) {
            snprintf(why, whylen, "%s: rc %d content '%.*s' expected '%s'", name, rc,
                     (int)(rc ? 0 : len), rc ? "" : (char *)data, e->content);
            free(data);
            return false;
        }
        free(data);
        char xv[16];
        size_t xl;
        rc = st_xattr_get(st, "c", name, "user.v", xv, sizeof(xv), &xl);
        if (e->xattr[0] ? (rc != 0 || xl != strlen(e->xattr) || memcmp(xv, e->xattr, xl) != 0)
                        : rc != -ENODATA) {
            snprintf(why, whylen, "%s: xattr rc %d, expected '%s'", name, rc, e->xattr);
            return false;
        }
    }
    return true;
}

static int check_index(st_store *st, const model *m)
{
    int bad = 0;
    for (uint16_t a = 0; a < NAMES; a++) {
        if (!m->e[a].present)
            continue;
        float v[DIM];
        vec_of(m->e[a].src, m->e[a].ver, v);
        st_hit hits[3];
        size_t n;
        char name[32];
        name_of(a, name);
        if (st_search_opt(st, "c", v, DIM, 3, 64, NULL, hits, &n) != 0) {
            bad++;
            continue;
        }
        bool found = false;
        for (size_t i = 0; i < n && i < 3; i++)
            if (strncmp(hits[i].name, name, sizeof(hits[i].name)) == 0 && hits[i].distance < 1e-5f)
                found = true;
        if (!found) {
            /* Tell an approximate miss from an index that lacks the vector. */
            st_attr at;
            st_vec_stat(st, "c", name, &at);
            st_coll *c = st_coll_find(st, "c");
            float got[DIM];
            bool has = c->index && vf_hnsw_contains(c->index, at.id);
            bool same =
                has && vf_hnsw_get(c->index, at.id, got) == 0 && memcmp(got, v, sizeof(v)) == 0;
            vf_hit ex[3];
            size_t ne = 0;
            vf_hnsw_search_exact(c->index, v, 3, NULL, ex, &ne);
            fprintf(stderr,
                    "index does not find %s (id %u): in index %d, same vector %d, exact "
                    "search top id %u dist %g, %zu present\n",
                    name, at.id, has, same, ne ? ex[0].id : 0, ne ? ex[0].distance : -1.0,
                    vf_hnsw_count(c->index));
            if (has && same)
                continue; /* the graph search missed a present vector: an engine recall
                             matter, reported but not a store failure */
            bad++;
        }
    }
    return bad;
}

int main(void)
{
    const char *er = getenv("VECFS_CRASH_ROUNDS");
    const char *es = getenv("VECFS_CRASH_SEED");
    int rounds = er ? atoi(er) : 20;
    uint64_t seed = es ? strtoull(es, NULL, 10) : (uint64_t)time(NULL);
    printf("crash test: %d rounds, seed %llu%s\n", rounds, (unsigned long long)seed,
           getenv("VECFS_CRASH_KEY") ? ", encrypted store" : "");
    char *dir = tu_tmpdir();
    st_options o;
    crash_opts(&o);
    st_store *st;
    if (st_store_open(dir, &o, &st) != 0 || st_coll_create(st, "c", NULL, NULL) != 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    st_config cfg;
    st_coll_config_get(st, "c", &cfg);
    cfg.metric = VF_METRIC_L2;
    st_coll_config_set(st, "c", &cfg, NULL);
    st_store_close(st);
    static model m;
    memset(&m, 0, sizeof(m));
    int failures = 0;
    uint64_t total_done = 0;
    for (int round = 0; round < rounds && failures == 0; round++) {
        int p[2];
        if (pipe(p) != 0)
            return 1;
        uint64_t child_seed = tu_rng(&seed);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            child(dir, p[1], child_seed, &m);
        }
        close(p[1]);
        msg x;
        if (read(p[0], &x, sizeof(x)) != (ssize_t)sizeof(x) || x.op != OP_READY) {
            fprintf(stderr, "round %d: child did not start\n", round);
            failures++;
            break;
        }
        unsigned delay_ms = 20 + (unsigned)(tu_rng(&seed) % 400);
        struct timespec ts = {0, (long)delay_ms * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        /* Everything the child wrote before dying is in the pipe. */
        msg inflight[WRITERS] = {0};
        bool have_inflight[WRITERS] = {false};
        unsigned done = 0, ninflight = 0;
        while (read(p[0], &x, sizeof(x)) == (ssize_t)sizeof(x)) {
            if (x.thread >= WRITERS)
                continue;
            if (x.kind == 1) {
                inflight[x.thread] = x;
                have_inflight[x.thread] = true;
            } else if (x.kind == 2) {
                model_apply(&m, &x);
                have_inflight[x.thread] = false;
                done++;
            }
        }
        for (int t = 0; t < WRITERS; t++)
            ninflight += have_inflight[t];
        close(p[0]);
        total_done += done;
        FILE *rep = tmpfile();
        int problems = st_check(dir, &o, rep);
        if (problems != 0) {
            fprintf(stderr, "round %d: check before reopen: %d\n", round, problems);
            rewind(rep);
            char line[512];
            while (fgets(line, sizeof(line), rep))
                fputs(line, stderr);
            failures++;
        }
        fclose(rep);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (st_store_open(dir, &o, &st) != 0) {
            fprintf(stderr, "round %d: reopen failed\n", round);
            failures++;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        char why[256] = "", why2[256] = "";
        bool ok = store_matches(st, &m, why, sizeof(why));
        /* Each thread's op in flight is wholly there or wholly absent: try
         * every subset of them (the threads' names are disjoint). */
        for (unsigned set = 1; !ok && set < (1u << WRITERS); set++) {
            static model m2;
            m2 = m;
            bool valid = true;
            for (int t = 0; t < WRITERS; t++) {
                if (!(set >> t & 1))
                    continue;
                valid = valid && have_inflight[t];
                model_apply(&m2, &inflight[t]);
            }
            if (valid && store_matches(st, &m2, why2, sizeof(why2))) {
                ok = true;
                m = m2;
            }
        }
        if (!ok) {
            fprintf(stderr, "round %d: store differs from the committed ops: %s / %s\n", round, why,
                    why2);
            failures++;
        }
        int bad = check_index(st, &m);
        if (bad) {
            fprintf(stderr, "round %d: %d vectors not found by search\n", round, bad);
            failures++;
        }
        st_metrics met;
        st_store_metrics(st, &met);
        printf("round %2d: killed after %3u ms, %4u ops committed, in flight: %u, reopen %.3f s "
               "(%s), %llu vectors\n",
               round, delay_ms, done, ninflight,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
               met.rebuilds_total ? "rebuilt" : "snapshot+replay", (unsigned long long)met.vectors);
        st_store_close(st);
    }
    if (failures == 0 && st_check(dir, &o, NULL) != 0)
        failures++;
    printf("%llu committed ops verified, %d failures\n", (unsigned long long)total_done, failures);
    tu_rmdir(dir);
    return failures ? 1 : 0;
}
