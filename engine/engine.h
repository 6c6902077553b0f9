/*
 * engine.h — the vecfs search engine: distance kernels, exact (flat) search
 * and an HNSW index with deletes, filters and snapshots.
 *
 * The engine is pure computation: it does no file, network or FUSE I/O.
 * Callers (store/) own persistence; the engine only turns an index into
 * bytes through a caller-supplied writer and back from a caller's buffer.
 *
 * Conventions
 *   - Functions that can fail return 0 or a negative errno (-ENOMEM,
 *     -EINVAL, -ENOENT, -EFBIG, -EILSEQ for corrupt snapshot bytes).
 *   - Distances follow SPEC §3.3: l2 = squared euclidean, cosine = 1 - cos,
 *     dot = -dot. Smaller is nearer for every metric.
 *   - Ids are dense uint32 slot numbers chosen by the caller (the store
 *     assigns them and reuses the ids of deleted vectors). The index grows
 *     to hold the largest id inserted.
 *   - Free functions accept NULL.
 */
#ifndef VECFS_ENGINE_H
#define VECFS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Metrics and distance kernels                                        */
/* ------------------------------------------------------------------ */

typedef enum vf_metric {
    VF_METRIC_L2 = 0,     /* squared euclidean */
    VF_METRIC_COSINE = 1, /* 1 - cos(a, b) */
    VF_METRIC_DOT = 2,    /* -(a . b) */
} vf_metric;

/* Largest dimension the engine accepts. */
#define VF_MAX_DIM 65536u

/* A distance kernel over two float32 vectors of `dim` elements. Pointers
 * need no particular alignment. */
typedef float (*vf_kernel_fn)(const float *a, const float *b, size_t dim);

/* A distance kernel over two int8 code vectors of `dim` bytes (each byte
 * 0..255, see the quantizer). The result is exact: no rounding, no
 * saturation, for any dim up to VF_MAX_DIM (255^2 * 65536 < 2^32).
 * Pointers need no particular alignment. */
typedef uint32_t (*vf_code_kernel_fn)(const uint8_t *a, const uint8_t *b, size_t dim);

/* The instruction sets a kernel can be built for. */
typedef enum vf_isa {
    VF_ISA_SCALAR = 0,
    VF_ISA_SSE = 1,    /* SSE4.1 */
    VF_ISA_AVX2 = 2,   /* AVX2 + FMA */
    VF_ISA_AVX512 = 3, /* AVX-512 F+DQ+BW */
    VF_ISA_NEON = 4,
    VF_ISA_AVX512_VNNI = 5, /* AVX-512 floats, code kernels on VNNI vpdpbusd */
    VF_ISA_COUNT
} vf_isa;

/* The set of kernels for one instruction set. */
typedef struct vf_kernels {
    vf_isa isa;
    const char *name;          /* "scalar", "sse4.1", "avx2", "avx512", "neon" */
    vf_kernel_fn l2sq;         /* sum (a_i - b_i)^2 */
    vf_kernel_fn dot;          /* sum a_i * b_i */
    vf_code_kernel_fn l2sq_u8; /* sum (a_i - b_i)^2 over codes, exact */
    vf_code_kernel_fn dot_u8;  /* sum a_i * b_i over codes, exact */
} vf_kernels;

/* The kernels chosen for this CPU. Detection runs once, on first call;
 * the call is thread-safe and never fails (scalar is the fallback). The
 * returned pointer is static. */
const vf_kernels *vf_kernels_best(void);

/* Kernels for `isa` if this binary has them AND this CPU can run them,
 * else NULL. Used by tests to check every kernel against the reference. */
const vf_kernels *vf_kernels_for(vf_isa isa);

/* Scalar reference kernels (double accumulation); the tests' yardstick. */
float vf_ref_l2sq(const float *a, const float *b, size_t dim);
float vf_ref_dot(const float *a, const float *b, size_t dim);
uint32_t vf_ref_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t dim);
uint32_t vf_ref_dot_u8(const uint8_t *a, const uint8_t *b, size_t dim);

/* Distance between a and b under `metric` with the best kernels. For
 * cosine this normalizes on the fly (slow path: the index stores unit
 * vectors and uses 1 - dot instead). A zero vector has cosine distance 1. */
float vf_distance(vf_metric metric, const float *a, const float *b, size_t dim);

/* Writes a / |a| into out (out may equal a). A zero vector stays zero. */
void vf_normalize(const float *a, float *out, size_t dim);

/* Parses "l2", "cosine", "dot"; 0 or -EINVAL. */
int vf_metric_parse(const char *s, vf_metric *out);
/* "l2", "cosine", "dot". */
const char *vf_metric_name(vf_metric metric);

/* ------------------------------------------------------------------ */
/* Results and filters                                                  */
/* ------------------------------------------------------------------ */

typedef struct vf_hit {
    uint32_t id;
    float distance;
} vf_hit;

/* Filter: only ids for which accept() returns true may be returned.
 * accept() must be thread-safe and cheap; it is called from the search
 * thread while the index is read-locked, so it must not call back into
 * the same index. `passing` is the number of ids that pass if the caller
 * knows it (e.g. from a metadata index), or VF_FILTER_UNKNOWN, in which
 * case the engine estimates selectivity by sampling. */
#define VF_FILTER_UNKNOWN SIZE_MAX

/* How an index search answers a filter (docs/engine.md, "Filters").
 *   AUTO    the planner chooses one of the others from the passing count
 *           against the index's size and degree (a request only).
 *   EXACT   an exact scan of the passing set.
 *   WALK    a graph walk through every node that keeps the passing ones.
 *   EXPAND  a graph walk over passing nodes only that crosses a failing
 *           neighbour to the passing nodes it links (two hops, at most 4m
 *           nodes gathered per step), with twice the search's ef: for
 *           passing sets too sparse for WALK to meet them soon.
 * WALK and EXPAND that come back short are redone by EXACT. EXACT over
 * a filter with its id list (vf_filter.ids) scores the listed ids only;
 * without one it checks every slot. */
typedef enum vf_filter_plan {
    VF_PLAN_AUTO = 0,
    VF_PLAN_EXACT = 1,
    VF_PLAN_WALK = 2,
    VF_PLAN_EXPAND = 3,
} vf_filter_plan;

/* "auto", "exact", "walk", "expand"; "?" for a value out of range. */
const char *vf_filter_plan_name(vf_filter_plan plan);

/* What a filtered index search did, for a caller that asks (explain). */
typedef struct vf_filter_explain {
    vf_filter_plan plan; /* the plan chosen (or forced); never AUTO */
    bool redone_exact;   /* a walk came back short and was redone by EXACT */
    size_t passing;      /* the passing count the plan was chosen from: the
                            caller's, or the engine's sampled estimate */
} vf_filter_explain;

typedef struct vf_filter {
    bool (*accept)(void *ctx, uint32_t id);
    void *ctx;
    size_t passing;
    /* NULL, or the ids that pass, ascending, `passing` of them (which
     * must then be known): the exact plan (and a short walk's exact redo)
     * scores these ids only, so its cost follows the passing count rather
     * than the index's size. accept() still decides; ids the index does
     * not hold are skipped. Only index searches read it. */
    const uint32_t *ids;
} vf_filter;

/* ------------------------------------------------------------------ */
/* Exact search over a caller's contiguous array                        */
/* ------------------------------------------------------------------ */

/* Exact k nearest neighbours of `query` among the n rows of `base`
 * (row-major, n x dim). Row i has id i. For cosine, rows and query need
 * not be normalized. Writes up to k hits to `out`, nearest first, and
 * their number to *n_out (min(k, passing rows)). filter may be NULL.
 * Returns 0, or -EINVAL (dim 0 or > VF_MAX_DIM, k 0), -ENOMEM. */
int vf_flat_search(const float *base, size_t n, size_t dim, vf_metric metric, const float *query,
                   size_t k, const vf_filter *filter, vf_hit *out, size_t *n_out);

/* Batch form: nq queries (row-major, nq x dim) on `threads` threads
 * (0 = all cores). out is nq x k hits; n_out[i] the count for query i.
 * Returns 0, -EINVAL, -ENOMEM, or -EAGAIN if threads cannot start. */
int vf_flat_search_batch(const float *base, size_t n, size_t dim, vf_metric metric,
                         const float *queries, size_t nq, size_t k, const vf_filter *filter,
                         unsigned threads, vf_hit *out, size_t *n_out);

/* ------------------------------------------------------------------ */
/* HNSW index                                                           */
/* ------------------------------------------------------------------ */

typedef struct vf_hnsw vf_hnsw;

/* How the index keeps vectors in RAM (docs/quantization.md).
 *   NONE  float32 vectors in the level-0 records; distances are exact.
 *   INT8  one byte code per dimension (a per-dimension offset and one
 *         shared scale, learned from the data) plus one float correction;
 *         walks rank by code distances, and searches given a vector
 *         source rescore the best rerank x k candidates exactly. */
typedef enum vf_quant_kind {
    VF_QUANT_NONE = 0,
    VF_QUANT_INT8 = 1,
} vf_quant_kind;

/* The default rerank factor of an INT8 index (docs/performance.md,
 * "int8 quantization": the measured choice). */
#define VF_RERANK_DEFAULT 2u
/* The largest rerank factor a search accepts. */
#define VF_RERANK_MAX 64u

/* Parses "none", "int8"; 0 or -EINVAL. */
int vf_quant_parse(const char *s, vf_quant_kind *out);
/* "none", "int8". */
const char *vf_quant_name(vf_quant_kind kind);

/* Where the engine gets the float32 original of a vector it does not keep
 * (an INT8 index's rerank, a snapshot's load). get() returns a pointer to
 * dim floats: either into the caller's own storage (zero-copy) or buf,
 * which it filled (room for dim floats). The pointer need only stay valid
 * until the next get() on the same thread or the end of the engine call
 * that made it. NULL means the original is unavailable (the engine then
 * keeps what it has: a code distance, or fails a load with -ENOENT). For
 * cosine, originals need not be normalized. get() is called from search
 * threads, concurrently when searches are, and must not call back into
 * the index. */
typedef struct vf_vec_source {
    const float *(*get)(void *ctx, uint32_t id, float *buf);
    void *ctx;
} vf_vec_source;

/* The largest ef_construction and ef_search an index takes: a walk's
 * buffers are sized by them (a crafted snapshot header naming 2^32 - 1
 * made a load ask for 34 GB). */
#define VF_HNSW_MAX_EF 65536u

typedef struct vf_hnsw_params {
    uint32_t dim; /* 1..VF_MAX_DIM */
    vf_metric metric;
    uint32_t m;                 /* links per node on upper levels; level 0 has 2m. 2..256 */
    uint32_t ef_construction;   /* 1..VF_HNSW_MAX_EF */
    uint32_t ef_search;         /* default ef for searches, 1..VF_HNSW_MAX_EF */
    uint64_t seed;              /* level generator seed; same seed + same inserts
                                   on one thread = same graph */
    vf_quant_kind quantization; /* VF_QUANT_NONE (default) or VF_QUANT_INT8 */
    uint32_t rerank;            /* INT8: default rerank factor, 1..VF_RERANK_MAX;
                                   0 = VF_RERANK_DEFAULT. Ignored for NONE. */
} vf_hnsw_params;

/* Fills p with the defaults of SPEC §3.2 (m 16, ef_construction 200,
 * ef_search 64, cosine) for `dim`. */
void vf_hnsw_params_default(vf_hnsw_params *p, uint32_t dim);

/* Creates an empty index. *out is NULL on error.
 * Returns 0, -EINVAL (a parameter out of range), -ENOMEM. */
int vf_hnsw_create(const vf_hnsw_params *params, vf_hnsw **out);

/* Frees the index and everything it owns. NULL is a no-op. No other call
 * may be running on it. */
void vf_hnsw_free(vf_hnsw *h);

/* The parameters the index was created with (ef_search as last set). */
void vf_hnsw_params_get(const vf_hnsw *h, vf_hnsw_params *out);

/* Sets the default ef for searches that pass ef = 0 (1..VF_HNSW_MAX_EF;
 * other values are ignored). */
void vf_hnsw_set_ef_search(vf_hnsw *h, uint32_t ef);

/* Makes room for ids < capacity so that inserts do not have to grow the
 * storage (growing briefly blocks searches). When it must grow, it grows by
 * at least half, as inserts do, so a reserve before each insert stays
 * amortized O(1). Returns 0, -ENOMEM (capacity unchanged), -EFBIG
 * (capacity above UINT32_MAX - 1). */
int vf_hnsw_reserve(vf_hnsw *h, size_t capacity);

/* Inserts `vec` (dim floats, copied) under `id`. If id is present its
 * vector is replaced and its links rebuilt (an update); if id was deleted
 * its slot is reused. Safe to call from many threads at once and
 * concurrently with searches. Non-finite values are the caller's to
 * reject: the engine returns -EINVAL for them.
 * Returns 0, -EINVAL, -ENOMEM, -EFBIG (id == UINT32_MAX). On an error the
 * index holds what it held before (storage it grew stays, unused). */
int vf_hnsw_insert(vf_hnsw *h, uint32_t id, const float *vec);

/* Inserts n vectors (row-major) with ids ids[i] (or first_id + i when ids
 * is NULL) on `threads` threads (0 = all cores). Rows into EMPTY slots run
 * in parallel; rows that replace a vector (an update, a deleted slot's
 * reuse, an id repeated in the batch) then run one at a time in row order,
 * so the last row of an id wins and no insert reads a vector another one
 * is overwriting. On error some rows may have been inserted; the first
 * error is returned. */
int vf_hnsw_insert_batch(vf_hnsw *h, const uint32_t *ids, uint32_t first_id, const float *vecs,
                         size_t n, unsigned threads);

/* Deletes id: it is never returned again, its neighbours' links are
 * repaired around it, and its slot is reused when the id is inserted
 * again. Returns 0, -ENOENT (not present), -EINVAL (h NULL) or -ENOMEM
 * (nothing changed). Thread-safe like insert. */
int vf_hnsw_remove(vf_hnsw *h, uint32_t id);

/* true if id is present (inserted and not deleted). */
bool vf_hnsw_contains(const vf_hnsw *h, uint32_t id);

/* Copies the stored vector of id into out (dim floats). For cosine this
 * is the unit vector the index keeps; for INT8 the decoded codes (within
 * half a quantization step of the original inside the clip range).
 * Returns 0 or -ENOENT. */
int vf_hnsw_get(const vf_hnsw *h, uint32_t id, float *out);

/* What vf_hnsw_get would give for vec if it were inserted now: vec as the
 * index keeps it (unit length for cosine), through the quantizer's codes
 * for INT8 (nothing counted for drift). A checker compares it with
 * vf_hnsw_get to know whether a stored vector is the given original. out
 * may be vec. Not concurrently with vf_hnsw_quant_relearn. Returns 0 or
 * -EINVAL. */
int vf_hnsw_as_stored(const vf_hnsw *h, const float *vec, float *out);

/* Present ids a vf_hnsw_deserialize could not get the original of (its
 * source returned NULL) and that no insert or remove has rewritten since:
 * their vectors are zeros. A caller that replays its log after a load and
 * still sees a nonzero count must rebuild the index. 0 for an index not
 * loaded from a snapshot. */
size_t vf_hnsw_missing(const vf_hnsw *h);

/* Writes up to cap of those ids, ascending, to ids; returns how many it
 * wrote. Not concurrently with writers. */
size_t vf_hnsw_missing_list(const vf_hnsw *h, uint32_t *ids, size_t cap);

/* Number of present vectors. */
size_t vf_hnsw_count(const vf_hnsw *h);

/* Bytes of memory the index holds: level-0 records (float vectors or
 * int8 codes, links), upper lists, per-slot bookkeeping, the table of
 * twins and the pooled search scratch. Not the originals an INT8 index
 * reranks with, which the caller keeps. */
size_t vf_hnsw_memory(const vf_hnsw *h);

/* Approximate k nearest neighbours of `query` (dim floats). ef = 0 uses
 * the index's ef_search; the effective ef is max(ef, k). filter may be
 * NULL. min(k, present ids that pass) hits are always returned: a filter
 * is answered by one of the plans of vf_filter_plan (chosen by the
 * planner unless the filter forces one; counted in vf_hnsw_stats), and a
 * walk that comes back with fewer is redone by exact search (counted in
 * vf_hnsw_stats.searches_short). Identical
 * stored vectors all come back (k copies are k hits), and a stored vector
 * equal to the query is among the hits (through the index's table of
 * distinct vectors; a vector an allocation failure kept out of it is
 * found only as the walk finds it).
 * Writes hits nearest first to out (room for k) and their count to
 * *n_out. Safe from many threads at once and concurrently with inserts
 * and removes. Allocates nothing once the thread's scratch is warm.
 * Returns 0, -EINVAL (k 0, a non-finite query, or a filter with an id
 * list but no passing count), -ENOMEM. */
int vf_hnsw_search(const vf_hnsw *h, const float *query, size_t k, size_t ef,
                   const vf_filter *filter, vf_hit *out, size_t *n_out);

/* vf_hnsw_search with exact rerank. An INT8 index walks on codes,
 * collects max(ef, rerank x k) candidates, rescores the best rerank x k
 * with the float32 originals from `src` (the exact metric of engine.h;
 * for cosine the engine normalizes them) and returns the k best. rerank 0
 * is the index's default; a candidate whose original src cannot give
 * keeps its code distance. src NULL returns code distances (the ranking
 * of the walk alone). A NONE index keeps float32 vectors, its distances
 * are exact already: src and rerank are not used and this equals
 * vf_hnsw_search. Same thread rules and errors as vf_hnsw_search, plus
 * -EINVAL for rerank > VF_RERANK_MAX. */
int vf_hnsw_search_rerank(const vf_hnsw *h, const float *query, size_t k, size_t ef,
                          uint32_t rerank, const vf_filter *filter, const vf_vec_source *src,
                          vf_hit *out, size_t *n_out);

/* What a search may ask beyond vf_hnsw_search_rerank's arguments. A
 * zeroed struct asks for nothing more. */
typedef struct vf_search_opts {
    uint32_t rerank;            /* as vf_hnsw_search_rerank; 0 = default */
    const vf_vec_source *src;   /* as vf_hnsw_search_rerank; may be NULL */
    vf_filter_plan plan;        /* VF_PLAN_AUTO, or a plan forced (for
                                   benchmarks and tests); ignored without
                                   a filter */
    vf_filter_explain *explain; /* NULL, or where a filtered search writes
                                   what it did (left as it was without a
                                   filter) */
} vf_search_opts;

/* vf_hnsw_search_rerank with the options of `opts` (NULL: none). A
 * forced WALK or EXPAND that comes back short is still redone exactly,
 * so the result count is the same under every plan. Same thread rules and
 * errors as vf_hnsw_search_rerank, plus -EINVAL for a plan out of
 * range. */
int vf_hnsw_search_with(const vf_hnsw *h, const float *query, size_t k, size_t ef,
                        const vf_filter *filter, const vf_search_opts *opts, vf_hit *out,
                        size_t *n_out);

/* Exact k nearest neighbours among present ids (ground truth over the
 * index's own vectors). Same contract as vf_hnsw_search. */
int vf_hnsw_search_exact(const vf_hnsw *h, const float *query, size_t k, const vf_filter *filter,
                         vf_hit *out, size_t *n_out);

/* One-sided z of the lower confidence bound vf_hnsw_tune decides on
 * (95 %). */
#define VF_TUNE_Z 1.645

/* What vf_hnsw_tune calibrates on and aims for. */
typedef struct vf_tune_spec {
    size_t k;             /* recall@k */
    double target_recall; /* in (0, 1] */
    size_t max_ef;        /* largest ef tried (>= k) */
    const float *queries; /* nqueries x dim: queries users sent */
    size_t nqueries;
    size_t held_out; /* perturbed held-out stored vectors added (hnsw_tune.c) */
    uint64_t seed;   /* which stored vectors are held out, and their perturbation */
} vf_tune_spec;

typedef struct vf_tune_result {
    uint32_t ef;         /* smallest ef whose recall_low meets the target, else max_ef */
    double recall;       /* mean recall@k of the calibration queries at ef */
    double recall_low;   /* its lower confidence bound (VF_TUNE_Z) */
    size_t queries;      /* calibration queries measured */
    size_t user_queries; /* of which the caller's */
} vf_tune_result;

/* Picks ef for `ef_search = auto`: the smallest ef in [k, max_ef] whose
 * lower confidence bound of the mean per-query recall@k against exact
 * search reaches target_recall, over the caller's queries plus up to
 * held_out perturbed held-out stored vectors (hnsw_tune.c says how they
 * are made). Costs one exact scan per query (three per held-out one) plus
 * some ten searches per query: run it in the background, not per query.
 * Safe alongside searches and inserts. With no vector stored, *out says ef
 * k, recall 1 over 0 queries.
 * Returns 0, -EINVAL (k 0, max_ef < k, target outside (0, 1], no query
 * asked for, a non-finite query), -ENOMEM. */
int vf_hnsw_tune(const vf_hnsw *h, const vf_tune_spec *spec, vf_tune_result *out);

/* The lower confidence bound (mean - VF_TUNE_Z x standard error) of n
 * per-query recalls, 0 for a single one, 1 for none; the mean in *mean
 * when not NULL. The decision rule of vf_hnsw_tune. */
double vf_recall_lower_bound(const float *recall, size_t n, double *mean);

/* Number of present vectors that no walk from the entry point over
 * level-0 links can reach, or SIZE_MAX when memory for the walk cannot be
 * had. Inserts, updates and removes keep this at 0 by construction (every
 * present vector keeps a way in, and one that loses its last is linked in
 * again from its nearest reachable neighbours); a nonzero count means
 * damage or a stranded vector (vf_hnsw_stats.stranded), and `vecfs check`
 * reports it as a problem. O(n) time and memory; safe alongside searches
 * and writers. */
size_t vf_hnsw_unreachable(const vf_hnsw *h);

/* Links every unreachable present vector back into the graph (a link in
 * from its nearest reachable node, replacing a link whose target has
 * another way in) until all are reachable. The safety net for graphs
 * loaded from older snapshots or stranded vectors. Run it where writers
 * are quiesced, e.g. before a snapshot; searches may run. *fixed is the
 * number of vectors relinked. Returns 0, -EINVAL, -ENOMEM. */
int vf_hnsw_reconnect(vf_hnsw *h, size_t *fixed);

/* Counters since the index was created or loaded. */
typedef struct vf_hnsw_stats {
    uint64_t searches_short; /* walks that returned fewer than min(k, passing)
                                and were answered by exact search instead */
    uint64_t rehomed;        /* vectors given an anchor (protected way in)
                                by a search of their own: an insert whose
                                chosen neighbours could not anchor it (none
                                older), or a delete or update that took its
                                anchor */
    uint64_t stranded;       /* vectors no nearby list could take in; left
                                for vf_hnsw_reconnect */
    uint64_t plans_exact;    /* filtered searches answered by each plan */
    uint64_t plans_walk;     /*   (vf_filter_plan), as chosen or forced; a */
    uint64_t plans_expand;   /*   walk redone exactly still counts as a walk */
    uint64_t walks_capped;   /* WALKs that expanded their budget of failing
                                nodes in full and went on through passing
                                ones only (labels that follow the data) */
} vf_hnsw_stats;

/* Reads the counters. Safe alongside every other call. */
void vf_hnsw_stats_get(const vf_hnsw *h, vf_hnsw_stats *out);

/* ------------------------------------------------------------------ */
/* Quantization (INT8 indexes; docs/quantization.md)                    */
/* ------------------------------------------------------------------ */

/* The quantizer's state and its drift figures. A "share" is clipped
 * values over all values encoded; an "error" is the mean over vectors of
 * |x - decode(encode(x))|^2 / |x|^2. */
typedef struct vf_quant_stats {
    vf_quant_kind kind;
    uint32_t rerank;              /* the index's default rerank factor */
    uint64_t trained_on;          /* vectors the quantizer was learned from;
                                     0 while untrained */
    double scale;                 /* the shared step between codes */
    double train_clip_share;      /* clipped share on the training vectors */
    double train_error;           /* error on the training vectors */
    double recent_clip_share;     /* over the last full window of inserts */
    double recent_error;          /*   (VF_QUANT_WINDOW vectors); 0 before */
    uint64_t encoded_since_train; /* inserts encoded since (re)learning */
    uint64_t relearns;            /* vf_hnsw_quant_relearn calls that swapped */
    bool drifted;                 /* the rule of docs/quantization.md fired:
                                     call vf_hnsw_quant_relearn */
} vf_quant_stats;

/* Inserts per drift window. */
#define VF_QUANT_WINDOW 1024u

/* Reads the quantizer's figures. For a NONE index only kind is set. Safe
 * alongside every other call. */
void vf_hnsw_quant_stats(const vf_hnsw *h, vf_quant_stats *out);

/* Learns the quantizer of an empty INT8 index from n sample vectors (row
 * major, n x dim, need not be normalized for cosine); otherwise the first
 * insert (or insert batch) trains it from its own rows, which for a single
 * vector is provisional and reported as drifted once the index holds
 * more. Returns 0, -EINVAL (NONE index, n 0, a non-finite value),
 * -EEXIST (the index holds vectors: use relearn), -ENOMEM. */
int vf_hnsw_quant_train(vf_hnsw *h, const float *vecs, size_t n);

/* Re-learns the quantizer from the originals of the present vectors
 * (a sample of them), re-encodes every present vector from its original
 * and swaps codes and quantizer at once. Writers (insert, remove) must be
 * quiesced by the caller for the whole call; searches may run: they wait
 * only for the swap (a copy of the codes and a pass over the slots) and
 * see either the old codes and quantizer or the new ones. Vectors whose
 * original src cannot give keep their codes re-encoded from the old
 * decoded values. Links are kept. Returns 0, -EINVAL (NONE index, src
 * NULL), -ENOMEM (nothing changed). */
int vf_hnsw_quant_relearn(vf_hnsw *h, const vf_vec_source *src);

/* Checks the index's invariants (links in range, no self links, degrees
 * within bounds, entry point valid, counts consistent). 0 or -EILSEQ. For
 * tests; must not run concurrently with writers. */
int vf_hnsw_check(const vf_hnsw *h);

/* ------------------------------------------------------------------ */
/* Snapshots                                                            */
/* ------------------------------------------------------------------ */

/* Receives the serialized bytes in order. Returns 0 or a negative errno,
 * which aborts the serialization and is returned by vf_hnsw_serialize. */
typedef int (*vf_write_fn)(void *ctx, const void *bytes, size_t len);

/* Writes the index (parameters, graph, deleted slots, and for INT8 the
 * quantizer and the codes; never float32 vectors) as a versioned
 * little-endian byte stream ending in a CRC-32C of everything before it.
 * Searches may run meanwhile; inserts and removes must not (the caller
 * quiesces its writers). Returns 0, -ENOMEM, or the writer's error. The
 * layout is documented in engine/snapshot.c. */
int vf_hnsw_serialize(const vf_hnsw *h, vf_write_fn write, void *ctx);

/* Rebuilds an index from `len` bytes at `bytes` (the buffer is read, not
 * kept). Every length, count, id and link is validated: malformed,
 * truncated or tampered bytes give -EILSEQ and never read out of bounds.
 * A NONE index of the current version takes its vectors from src (called
 * once per present slot on this thread; src may be NULL for an INT8
 * snapshot or one of version 1, which holds its vectors); a slot whose
 * original src does not have loads as missing (vf_hnsw_missing).
 * Returns 0, -EILSEQ (also for a non-finite original), -ENOMEM, -ENOENT
 * (src NULL while the snapshot has present vectors). *out is NULL on
 * error. */
int vf_hnsw_deserialize(const void *bytes, size_t len, const vf_vec_source *src, vf_hnsw **out);

/* The dim a snapshot's header names (magic and version checked, nothing
 * else: vf_hnsw_deserialize validates), so a caller can size the vectors
 * its source hands out. 0 or -EILSEQ. */
int vf_hnsw_snapshot_dim(const void *bytes, size_t len, uint32_t *dim);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_ENGINE_H */
