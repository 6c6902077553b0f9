/*
 * query_parse.h — what is written into `<collection>/.query/<qname>` and
 * what reading it returns (SPEC §3.3).
 *
 * Query kinds, by the query file's name:
 *   text (default)  optional parameter lines, then the vector in the text
 *                   form of vector_format.h, possibly over several lines:
 *                       k = 10
 *                       ef = 128
 *                       filter = year >= 2020 and lang in (en, de)
 *                       like = doc-42.f32
 *                       max_distance = 0.5
 *                       explain = 1
 *                       0.1 0.2 0.3
 *                   A parameter line is "<key> = <value>" with key one of
 *                   k, ef, filter, like, max_distance, explain (spaces
 *                   around '=' optional). explain is 0 or 1: 1 adds a
 *                   first line "# plan ..." to the result (text queries
 *                   only: a JSON result has no room for a comment). Lines
 *                   that are empty or start with '#' are skipped. The first
 *                   other line starts the vector; parameters after it are
 *                   -EINVAL. A key given twice is -EINVAL. The like value
 *                   is the rest of the line without surrounding white
 *                   space.
 *   ".json"         {"vector": [...], "k": 10, "ef": 128,
 *                    "filter": {...}, "like": "name",
 *                    "max_distance": 0.5}
 *                   every key optional except that one of vector/like is
 *                   needed; unknown keys are -EINVAL; k and ef are integers;
 *                   filter is the structured form of filter_json.h, or a
 *                   string in the text grammar.
 *   ".f32"          raw little-endian float32, one vector.
 *   ".fvecs", ".npy"  a batch of query vectors (import_parse.h); k, ef,
 *                   filter, max_distance and explain come from the xattrs
 *                   user.k, user.ef, user.filter, user.max_distance and
 *                   user.explain, applied with fsd_query_param_set.
 *
 * A query has exactly one of: a vector, or like (the name of a vector of
 * the collection whose stored vector is the query). Both or neither is
 * -EINVAL.
 *
 * Filters: the grammar of st_filter_parse (store.h): comparisons, in,
 * exists, not, and, or, parentheses, quoting; the old
 * "KEY=VALUE[,KEY=VALUE...]" still means an AND of equalities.
 *
 * max_distance: a decimal number (finite); the result holds the neighbours
 * within it, nearest first, at most k of them (k is then the bound: up to
 * FSD_QUERY_MAX_K; with more within the distance, the nearest k).
 *
 * Limits: k in 1..FSD_QUERY_MAX_K (default FSD_QUERY_DEFAULT_K), ef in
 * 1..FSD_QUERY_MAX_EF (0 = the collection's ef_search), filters within
 * st_filter_parse's limits.
 *
 * Results are written by query_result.h.
 *
 * All functions are thread-safe on distinct objects.
 */
#ifndef VECFS_FS_QUERY_PARSE_H
#define VECFS_FS_QUERY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"
#include "vector_format.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FSD_QUERY_DEFAULT_K 10u
#define FSD_QUERY_MAX_K 10000u
#define FSD_QUERY_MAX_EF 100000u

typedef enum fsd_qkind {
    FSD_QKIND_TEXT = 0,
    FSD_QKIND_JSON = 1,  /* "*.json" */
    FSD_QKIND_F32 = 2,   /* "*.f32" */
    FSD_QKIND_FVECS = 3, /* "*.fvecs", batch */
    FSD_QKIND_NPY = 4,   /* "*.npy", batch */
} fsd_qkind;

/* A parsed query. Owns every pointer in it; release with
 * fsd_query_release. Zero-initialize (or use FSD_QUERY_INIT) before the
 * first parse. */
/* Room for a query's error message, bytes with the NUL. */
#define FSD_QUERY_ERROR_MAX ST_FILTER_ERR_MAX

typedef struct fsd_query {
    fsd_qkind kind;
    uint32_t k;         /* 1..FSD_QUERY_MAX_K; FSD_QUERY_DEFAULT_K if not given */
    uint32_t ef;        /* 0 = not given (use the collection's), else 1..MAX_EF */
    bool k_set;         /* k was given explicitly */
    char *like;         /* NUL-terminated vector name, or NULL */
    size_t like_len;    /* bytes of like */
    float *vectors;     /* nq * dim floats, row-major; NULL when like is set */
    uint32_t dim;       /* 0 when like is set */
    size_t nq;          /* 1 for a single query, >= 1 for a batch, 0 with like */
    st_filter *filter;  /* compiled filter, or NULL for none */
    bool within;        /* max_distance was given */
    float max_distance; /* only neighbours at most this far (finite, >= 0 unless dot) */
    bool explain;       /* add a comment line saying the plan (a batch: one per query) */
    char error[FSD_QUERY_ERROR_MAX]; /* after a failed parse: one line saying why */
} fsd_query;

#define FSD_QUERY_INIT                                                                             \
    {                                                                                              \
        .kind = FSD_QKIND_TEXT, .k = FSD_QUERY_DEFAULT_K                                           \
    }

/* The kind of a query file called name (len bytes). Never fails. */
fsd_qkind fsd_qkind_from_name(const char *name, size_t len);

/* true for FSD_QKIND_FVECS and FSD_QKIND_NPY. */
bool fsd_qkind_is_batch(fsd_qkind kind);

/* Parses a query file's content.
 *   kind        fsd_qkind_from_name of the query file
 *   data, len   the bytes written, not necessarily NUL-terminated, never
 *               read past len; data may be NULL only if len is 0
 *   out         filled on success (the caller releases it); on error it is
 *               left released (FSD_QUERY_INIT state). Any previous content
 *               is released first.
 * Returns 0, or
 *   -EINVAL  malformed (bad syntax, bad number, NaN/Inf, k or ef out of
 *            range, both or neither of vector and like, bad like name,
 *            bad filter, empty)
 *   -EFBIG   a vector over FSD_MAX_DIM
 *   -E2BIG   a filter key or value over its limit
 *   -ENOMEM
 * On -EINVAL / -E2BIG out->error holds one line saying why. */
int fsd_query_parse(fsd_qkind kind, const void *data, size_t len, fsd_query *out);

/* Sets one parameter from its text value, as the batch xattrs do
 * (user.k, user.ef, user.filter, user.max_distance, user.explain; key
 * without "user.").
 *   key    "k", "ef", "filter", "max_distance" or "explain" (0 or 1)
 *   value  len bytes, not NUL-terminated; surrounding white space (also a
 *          trailing newline, as `setfattr -v` or `echo` leave) is ignored
 * Replaces the current value in q. Returns 0, -EINVAL (unknown key, bad
 * value), -E2BIG, -ENOMEM. On error q is unchanged but for q->error,
 * which says why. */
int fsd_query_param_set(fsd_query *q, const char *key, const char *value, size_t len);

/* Releases everything q holds and resets it to FSD_QUERY_INIT.
 * NULL is a no-op. */
void fsd_query_release(fsd_query *q);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_FS_QUERY_PARSE_H */
