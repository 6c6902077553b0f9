/*
 * shards.h — a collection split into S index shards in one process, the
 * object vecfs-bench-shards measures (docs/scale-out.md §10 is the design
 * it simulates).
 *
 * A shard is one vf_hnsw over the rows assigned to it, with local ids
 * 0..size-1 and a table from local id to the row's number in the base
 * (its "global" id). Two assignments:
 *   HASH    row r goes to shard splitmix64(r) mod S. The name of a vector
 *           is all a hash sees, and a name says nothing about the vector,
 *           so the row number stands for it. Every query searches every
 *           shard.
 *   KMEANS  row r goes to the shard of its nearest of S k-means centroids
 *           (kmeans.h). A query searches the shards of its P nearest
 *           centroids only.
 * A search sends the query to each chosen shard one after the other on
 * the calling thread, timing each shard's search on its own in the
 * thread's CPU time (what a node holding that shard would spend; time the
 * thread waited for a core does not count), then merges the shards' top-k
 * lists into one top-k by distance. Distances of one metric compare
 * across shards, so the merge keeps exactly the k nearest of what the
 * shards returned; a true neighbour is lost only inside a shard's own
 * search or in a shard that was not searched.
 *
 * Lifecycle: BENCH_SHARDS_INIT -> bench_shards_build -> any number of
 * bench_shards_search (from many threads at once, each with its own
 * bench_fanout) -> bench_shards_release.
 */
#ifndef VECFS_BENCH_SHARDS_H
#define VECFS_BENCH_SHARDS_H

#include "engine.h"
#include "fvecs.h"
#include "kmeans.h"

#include <stddef.h>
#include <stdint.h>

typedef enum bench_assign {
    BENCH_ASSIGN_HASH = 0,
    BENCH_ASSIGN_KMEANS = 1,
} bench_assign;

/* "hash", "kmeans". */
const char *bench_assign_name(bench_assign a);

/* How a shard set is made. */
typedef struct bench_shard_config {
    size_t shards; /* S, >= 1 and <= the base's rows */
    bench_assign assign;
    vf_hnsw_params params;      /* every shard's index (dim and metric included) */
    unsigned build_threads;     /* per shard build, 0 = all cores */
    size_t kmeans_sample;       /* KMEANS: rows the centroids are learned on */
    unsigned kmeans_iterations; /* KMEANS: Lloyd rounds */
    uint64_t seed;              /* KMEANS: sample and seeding */
} bench_shard_config;

typedef struct bench_shards {
    size_t count; /* S */
    bench_assign assign;
    size_t dim;
    vf_hnsw **index;       /* S indexes */
    uint32_t **global;     /* per shard: local id -> row of the base */
    size_t *size;          /* per shard: rows it holds */
    bench_kmeans km;       /* KMEANS: the S centroids; empty for HASH */
    double assign_seconds; /* learning the centroids and assigning every row */
    double build_seconds;  /* building the S indexes, one after the other */
} bench_shards;

#define BENCH_SHARDS_INIT                                                                          \
    {                                                                                              \
        0, BENCH_ASSIGN_HASH, 0, NULL, NULL, NULL, BENCH_KMEANS_INIT, 0, 0                         \
    }

/* Assigns every row of base (n x dim floats) to a shard and builds the
 * shards' indexes, shard 0 first; within a shard rows keep their order in
 * the base. With build_threads 1 a shard's index is the one a single
 * thread inserting its rows in that order makes, so S = 1 gives the same
 * index as inserting the whole base (same params) on one thread.
 * Returns 0, -EINVAL (S 0 or > n, a bad parameter), -ENOMEM, or the
 * engine's error; on error *s is left as BENCH_SHARDS_INIT. */
int bench_shards_build(bench_shards *s, const bench_matrix *base, const bench_shard_config *cfg);

/* Frees every index and table; *s is BENCH_SHARDS_INIT again. NULL is a
 * no-op. */
void bench_shards_release(bench_shards *s);

/* One search thread's scratch for queries of up to k results over s. */
typedef struct bench_fanout {
    size_t k, shards;
    vf_hit *hits;  /* shards x k: each probed shard's hits, global ids */
    size_t *got;   /* per probed shard: its hit count */
    size_t *head;  /* per probed shard: the merge's position in its hits */
    size_t *order; /* the shards to search, in probe order */
    float *dist;   /* scratch of bench_kmeans_rank */
} bench_fanout;

#define BENCH_FANOUT_INIT                                                                          \
    {                                                                                              \
        0, 0, NULL, NULL, NULL, NULL, NULL                                                         \
    }

/* Scratch for queries of up to k results over s. 0 or -ENOMEM. */
int bench_fanout_init(bench_fanout *f, const bench_shards *s, size_t k);

/* Frees the scratch; *f is BENCH_FANOUT_INIT again. NULL is a no-op. */
void bench_fanout_release(bench_fanout *f);

/* What one fanned-out query cost. */
typedef struct bench_fanout_cost {
    double slowest_seconds; /* the longest of the probed shards' searches */
    double merge_seconds;   /* choosing the shards and merging their lists */
    /* (both in the calling thread's CPU time) */
    size_t probed; /* shards searched */
} bench_fanout_cost;

/* Searches `query` (dim floats) on the shards it goes to (every shard for
 * HASH, the `probes` nearest centroids' for KMEANS; probes >= S means
 * all), each with k and ef (vf_hnsw_search: effective ef max(ef, k)), and
 * merges: out gets min(k, hits) of them, nearest first, ids of the base;
 * on equal distances the shard searched first wins, so one shard's list
 * comes back exactly as its search returned it. shard_seconds (room for
 * S, may be NULL) gets each shard's search CPU time, 0 for a shard not
 * searched. Allocates nothing. Returns 0 or the engine's error. */
int bench_shards_search(const bench_shards *s, bench_fanout *f, const float *query, size_t k,
                        size_t ef, size_t probes, vf_hit *out, size_t *n_out, double *shard_seconds,
                        bench_fanout_cost *cost);

#endif /* VECFS_BENCH_SHARDS_H */
