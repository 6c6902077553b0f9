/*
 * store_reopen_bench.c — measures how long st_store_open takes for a
 * collection of N random vectors of dimension D: loading the snapshot
 * (clean stop) versus rebuilding the index from the LMDB records (snapshot
 * missing), plus the time of the initial build and of the final snapshot.
 *
 *   store_reopen_bench N D DATADIR [build|reopen|rebuild|all]
 *
 * build    creates DATADIR's store, inserts N vectors (batches of 50000),
 *          closes (final snapshot)
 * reopen   opens (snapshot load), runs 100 queries, closes
 * rebuild  deletes the snapshot, opens (rebuild), compares the 100 queries'
 *          neighbours with the reopen run, closes
 * all      the three in order (default)
 * With VECFS_BENCH_KEY=1 the store is encrypted (a fixed raw test key).
 * Prints one line per phase; results go to docs/performance.md by hand.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_testutil.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static st_store *open_or_die(const char *dir, double *secs)
{
    st_options o;
    tu_opts(&o);
    o.log_level = ST_LOG_INFO;
    static uint8_t key[ST_KEY_LEN];
    if (getenv("VECFS_BENCH_KEY")) {
        memset(key, 0x5a, sizeof(key));
        o.key = key;
        o.key_len = sizeof(key);
    }
    st_store *st;
    double t0 = now_s();
    int rc = st_store_open(dir, &o, &st);
    *secs = now_s() - t0;
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, strerror(-rc));
        exit(1);
    }
    return st;
}

static void queries(st_store *st, uint32_t dim, const char *save)
{
    uint64_t seed = 4242;
    float *q = malloc(dim * sizeof(float));
    FILE *f = fopen(save, "a");
    for (int i = 0; i < 100; i++) {
        tu_vec(&seed, q, dim);
        st_hit hits[10];
        size_t n;
        if (st_search_opt(st, "bench", q, dim, 10, 0, NULL, hits, &n) != 0) {
            fprintf(stderr, "search failed\n");
            exit(1);
        }
        for (size_t j = 0; j < n; j++)
            fprintf(f, "%s%c", hits[j].name, j + 1 == n ? '\n' : ' ');
    }
    fclose(f);
    free(q);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s N DIM DATADIR [build|reopen|rebuild|all]\n", argv[0]);
        return 2;
    }
    size_t n = strtoull(argv[1], NULL, 10);
    uint32_t dim = (uint32_t)atoi(argv[2]);
    const char *dir = argv[3];
    const char *phase = argc > 4 ? argv[4] : "all";
    bool all = strcmp(phase, "all") == 0;
    char path[4096], res1[4200], res2[4200];
    snprintf(res1, sizeof(res1), "%s.reopen.txt", dir);
    snprintf(res2, sizeof(res2), "%s.rebuild.txt", dir);
    double secs;
    if (all || strcmp(phase, "build") == 0) {
        mkdir(dir, 0700);
        st_store *st = open_or_die(dir, &secs);
        st_config cfg;
        st_config_default(&cfg);
        cfg.dim = dim;
        cfg.metric = VF_METRIC_L2;
        if (st_coll_create(st, "bench", NULL, &cfg) != 0) {
            fprintf(stderr, "create failed (is %s fresh?)\n", dir);
            return 1;
        }
        uint64_t seed = 1;
        float *v = malloc(dim * sizeof(float));
        double t0 = now_s();
        st_batch *b = NULL;
        for (size_t i = 0; i < n; i++) {
            if (!b && st_batch_begin(st, "bench", &b) != 0)
                return 1;
            tu_vec(&seed, v, dim);
            char name[32];
            snprintf(name, sizeof(name), "v%zu.f32", i);
            if (st_batch_put(b, name, v, dim * 4, v, dim, NULL, 0, 0, NULL, NULL, NULL) != 0)
                return 1;
            if (st_batch_count(b) == 50000 || i + 1 == n) {
                int rc = st_batch_commit(b);
                b = NULL;
                if (rc) {
                    fprintf(stderr, "commit: %s\n", strerror(-rc));
                    return 1;
                }
            }
        }
        double t1 = now_s();
        int rc = st_store_close(st);
        double t2 = now_s();
        printf("build:   %zu x %u inserted in %.2f s (%.0f vectors/s); close with snapshot "
               "%.2f s (rc %d)\n",
               n, dim, t1 - t0, (double)n / (t1 - t0), t2 - t1, rc);
        free(v);
    }
    if (all || strcmp(phase, "reopen") == 0) {
        st_store *st = open_or_die(dir, &secs);
        st_metrics m;
        st_store_metrics(st, &m);
        unlink(res1);
        queries(st, dim, res1);
        printf("reopen:  %.3f s (snapshot load, %llu rebuilds, %llu vectors)\n", secs,
               (unsigned long long)m.rebuilds_total, (unsigned long long)m.vectors);
        double t0 = now_s();
        st_store_close(st);
        printf("close:   %.3f s (nothing changed: no snapshot written)\n", now_s() - t0);
    }
    if (all || strcmp(phase, "rebuild") == 0) {
        snprintf(path, sizeof(path), "%s/snap-1.vfs", dir);
        unlink(path);
        st_store *st = open_or_die(dir, &secs);
        st_metrics m;
        st_store_metrics(st, &m);
        unlink(res2);
        queries(st, dim, res2);
        printf("rebuild: %.3f s (snapshot deleted, %llu rebuilds, %llu vectors)\n", secs,
               (unsigned long long)m.rebuilds_total, (unsigned long long)m.vectors);
        double t0 = now_s();
        st_store_close(st);
        printf("close:   %.3f s (writes the snapshot)\n", now_s() - t0);
        /* Agreement of the two indexes' neighbours. */
        FILE *a = fopen(res1, "r"), *b = fopen(res2, "r");
        if (a && b) {
            char la[4096], lb[4096];
            size_t same = 0, total = 0;
            while (fgets(la, sizeof(la), a) && fgets(lb, sizeof(lb), b)) {
                char *save = NULL;
                for (char *t = strtok_r(la, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
                    total++;
                    char pad[64];
                    snprintf(pad, sizeof(pad), " %s ", t);
                    char lbp[4200];
                    snprintf(lbp, sizeof(lbp), " %s", lb);
                    for (char *c = lbp; *c; c++)
                        if (*c == '\n')
                            *c = ' ';
                    if (strstr(lbp, pad))
                        same++;
                }
            }
            printf("agreement of the snapshot and rebuilt indexes: %zu of %zu neighbours\n", same,
                   total);
        }
        if (a)
            fclose(a);
        if (b)
            fclose(b);
    }
    return 0;
}
