/*
 * query_wire.h — the bytes of a one-request query (SPEC §3.3, "One request
 * per query"): parsing the request an ioctl on a query file carries and
 * writing the result over the same buffer. The layout itself is defined
 * once, in contrib/vecfs_query.h (the client's header); docs/filesystem.md
 * "One-request queries" describes it.
 *
 * Pure functions of their arguments: no I/O, no allocation, thread-safe.
 */
#ifndef VECFS_FS_QUERY_WIRE_H
#define VECFS_FS_QUERY_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vecfs_query.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Buffer size of command cmd (VECFS_QBUF_4K or VECFS_QBUF_16K), or 0 for
 * a command that is not a query. */
size_t fsd_qwire_cmd_size(unsigned int cmd);

/* A parsed request. vector is the caller's array; filter points into the
 * request buffer (valid as long as it is). */
typedef struct fsd_qwire_req {
    uint32_t flags; /* VECFS_QREQ_* */
    uint32_t k;     /* 0 unless VECFS_QREQ_K */
    uint32_t ef;    /* 0 unless VECFS_QREQ_EF */
    uint32_t dim;
    const char *filter; /* filter_len bytes, not NUL-terminated; NULL if 0 */
    uint32_t filter_len;
} fsd_qwire_req;

/* Parses a request.
 *   buf, len    the request buffer (len is the command's size; nothing
 *               past len is read, no length field is trusted)
 *   vector      room for vector_cap floats: gets the query vector
 *   out         the other fields
 *   why         on error: a static one-line reason for the reply message
 * Returns 0, -EINVAL (bad magic, flags, k, ef, dim 0, a field set without
 * its flag, a non-finite value, lengths past len or past vector_cap), or
 * -EPROTONOSUPPORT (another version). */
int fsd_qwire_parse(const void *buf, size_t len, float *vector, size_t vector_cap,
                    fsd_qwire_req *out, const char **why);

/* A result being written into a caller's buffer. */
typedef struct fsd_qwire_result {
    unsigned char *p;
    size_t cap;
    size_t len;     /* bytes written so far (header included) */
    size_t need;    /* bytes the whole result takes, even past cap */
    uint32_t count; /* records written */
} fsd_qwire_result;

/* Starts a result in buf (cap >= VECFS_QWIRE_HEADER bytes). */
void fsd_qwire_result_start(fsd_qwire_result *r, void *buf, size_t cap);

/* Adds one neighbour (name of name_len <= VECFS_QWIRE_NAME_MAX bytes).
 * Returns 0, or -E2BIG when it does not fit (r->need keeps counting, so
 * later adds report the full size). -EINVAL for a name too long. */
int fsd_qwire_result_add(fsd_qwire_result *r, const char *name, size_t name_len, float distance);

/* Writes the header of a successful result; returns its length in bytes.
 * Only after every add returned 0. */
size_t fsd_qwire_result_finish(fsd_qwire_result *r);

/* Writes an error result into buf (cap >= VECFS_QWIRE_HEADER): status err
 * (negative errno), need (E2BIG) and the message (printf format), cut to
 * fit. Returns its length in bytes. */
size_t fsd_qwire_error(void *buf, size_t cap, int err, size_t need, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#ifdef __cplusplus
}
#endif

#endif /* VECFS_FS_QUERY_WIRE_H */
