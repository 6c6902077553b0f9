/*
 * peers.h — the engines vecfs-bench-engine compares against, behind one C
 * interface: hnswlib (bench/peer_hnswlib.cpp) and FAISS
 * (bench/peer_faiss.cpp). Both are benchmark-only: bench/meson.build
 * compiles a peer only when its library is installed, defines
 * VECFS_HAVE_HNSWLIB / VECFS_HAVE_FAISS, and links them into the benchmark
 * binary and nothing else.
 *
 * Every peer receives the raw base and query vectors, exactly as vecfs
 * does. For cosine a peer normalizes them itself and searches by inner
 * product (what users of hnswlib and FAISS do); the normalization of a
 * query is part of the timed search, as it is for vecfs. For dot the raw
 * vectors are searched by inner product; for l2 by squared L2.
 *
 * Lifecycle: build() -> (set_ef() -> search() from many threads)* -> free().
 * search() is safe from many threads at once; set_ef() is not safe while
 * searches run (hnswlib keeps ef in the index).
 */
#ifndef VECFS_BENCH_PEERS_H
#define VECFS_BENCH_PEERS_H

#include "engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What every peer is built with. */
typedef struct bench_peer_config {
    size_t dim;
    vf_metric metric;
    unsigned m; /* links per node (level 0 has 2m) */
    unsigned ef_construction;
    unsigned build_threads; /* >= 1: threads used to build */
} bench_peer_config;

typedef struct bench_peer_ops {
    const char *name; /* "hnswlib", "faiss-hnsw", "faiss-flat" */
    bool uses_ef;     /* false for exact search: one run, ef is meaningless */

    /* Builds an index over the n rows of base (row-major n x cfg->dim,
     * copied). *state is the index; err gets one line on failure.
     * Returns 0, -EINVAL, -ENOMEM, -EIO (the library threw). */
    int (*build)(const bench_peer_config *cfg, const float *base, size_t n, void **state, char *err,
                 size_t errlen);

    /* Sets the search-time ef for the following searches. */
    void (*set_ef)(void *state, size_t ef);

    /* Top-k of one query (cfg->dim floats): writes up to k ids, nearest
     * first, to ids and their number to *n_out. Thread-safe. The caller
     * calls it from threads it created; the peer searches each query on
     * the calling thread only. Returns 0, -ENOMEM or -EIO. */
    int (*search)(void *state, const float *query, size_t k, uint32_t *ids, size_t *n_out);

    /* Bytes the index holds, from the library's own containers (see
     * docs/performance.md for how each peer is counted). */
    size_t (*memory)(void *state);

    /* Frees the index; NULL is a no-op. */
    void (*free)(void *state);

    /* Top-k among the rows filter->accept() passes (filter->passing of the
     * n rows), the way the peer's users filter: hnswlib 0.6.2 has no
     * filter, so it searches max(k, 2k n / passing) neighbours (at most
     * BENCH_POSTFILTER_MAX) and keeps the passing ones; FAISS 1.7.3 walks
     * its graph with an IDSelector in SearchParametersHNSW. Uses the ef of
     * the last set_ef(). NULL for a peer without one (faiss-flat).
     * Thread-safe like search(). Returns 0, -ENOMEM or -EIO. */
    int (*search_filtered)(void *state, const float *query, size_t k, const vf_filter *filter,
                           size_t n, uint32_t *ids, size_t *n_out);
} bench_peer_ops;

/* The most neighbours hnswlib's post-filtering asks for. */
#define BENCH_POSTFILTER_MAX 4096u

#ifdef VECFS_HAVE_HNSWLIB
extern const bench_peer_ops bench_peer_hnswlib;
#endif
#ifdef VECFS_HAVE_FAISS
extern const bench_peer_ops bench_peer_faiss_hnsw;
extern const bench_peer_ops bench_peer_faiss_flat;
#endif

#ifdef __cplusplus
}
#endif

#endif /* VECFS_BENCH_PEERS_H */
