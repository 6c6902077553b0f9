/*
 * vecfs_query.h — one-request queries on a kept-open vecfs query file:
 * the ioctl's wire format (the one definition of it; the daemon includes
 * this header too) and a tiny C client. docs/filesystem.md, "One-request
 * queries", explains the same layout in prose.
 *
 * A client opens `<collection>/.query/<name>` once (O_RDWR | O_CREAT) and
 * then, per query, calls ioctl(fd, VECFS_IOC_QUERY_4K or _16K, buf): the
 * kernel copies the whole buffer to the daemon, the daemon writes the
 * result over it, and the call returns the number of neighbours, or -1
 * with errno set. These are restricted ioctls: their size is in the
 * command number, so the kernel copies exactly that many bytes each way
 * in one FUSE request (FUSE_IOCTL_UNRESTRICTED is never used).
 *
 * Request (every field little-endian; buffer of the command's size)
 *   off  size   field
 *   0    4      magic     VECFS_QREQ_MAGIC ("VQRQ")
 *   4    2      version   VECFS_QWIRE_VERSION (1)
 *   6    2      flags     VECFS_QREQ_K | _EF | _FILTER; other bits 0
 *   8    4      k         with VECFS_QREQ_K: 1..VECFS_QWIRE_MAX_K
 *   12   4      ef        with VECFS_QREQ_EF: 1..100000
 *   16   4      dim       the collection's dim, >= 1
 *   20   4      filter_len  bytes of filter text, with VECFS_QREQ_FILTER
 *   24   4*dim  the query vector, float32, finite
 *   ...  filter_len  filter text (docs/filesystem.md, Filters:
 *                    "year >= 2020 and lang in (en, de)"); with
 *                    VECFS_QREQ_FILTER and length 0: no filter
 *   A field whose flag is clear must be 0 and the query file's setting
 *   applies (user.k, user.ef, user.filter xattrs of the query file, else
 *   k 10, the collection's ef_search, no filter); the metric is the
 *   collection's.
 *
 * Result (written over the same buffer; also for most errors)
 *   0    4      magic     VECFS_QRES_MAGIC ("VQRS")
 *   4    2      version   1
 *   6    2      flags     0
 *   8    4      status    0, or the negative errno the ioctl failed with
 *   12   4      count     neighbours that follow (0 on error)
 *   16   4      length    bytes used from offset 0 (header + records or
 *                         header + message)
 *   20   4      need      on E2BIG: bytes the result would take; else 0
 *   24   ...    count records, nearest first, packed:
 *                 float32 distance, uint16 name_len, name_len bytes of
 *                 the vector's name (no NUL)
 *               or, when status < 0, length - 24 bytes of message text
 *               (one line, no NUL)
 *
 * Errors (errno of the ioctl; the buffer holds a result with the message
 * except for ENOTTY and EFAULT, where the kernel or the daemon could not
 * answer in it)
 *   ENOTTY           not a query file, or an unknown command
 *   EINVAL           bad magic, a bad field (k 0 or too big, ef out of
 *                    range, unknown flag bits, a field set without its
 *                    flag, non-finite values, lengths past the buffer),
 *                    a dim that is not the collection's, a bad filter
 *   EPROTONOSUPPORT  a version this daemon does not speak
 *   E2BIG            the result does not fit the buffer (need says how
 *                    much): use the 16K command or the file path
 *   ENOENT           the collection is gone
 *   ENOMEM, EIO      as for reading the query file
 *
 * Queries too big for VECFS_IOC_QUERY_16K (dim above
 * VECFS_QWIRE_MAX_DIM_16K without a filter) cannot be sent this way: the
 * client writes them to the query file and reads the result instead (the
 * file path of SPEC §3.3); vecfs_query_search returns -E2BIG for them.
 */
#ifndef VECFS_CONTRIB_VECFS_QUERY_H
#define VECFS_CONTRIB_VECFS_QUERY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VECFS_QREQ_MAGIC 0x51525156u /* bytes "VQRQ" */
#define VECFS_QRES_MAGIC 0x53525156u /* bytes "VQRS" */
#define VECFS_QWIRE_VERSION 1u
#define VECFS_QWIRE_HEADER 24u /* request and result headers */
#define VECFS_QWIRE_RECORD 6u  /* result record before the name */
#define VECFS_QWIRE_NAME_MAX 255u
#define VECFS_QWIRE_MAX_K 10000u

#define VECFS_QREQ_K 0x1u
#define VECFS_QREQ_EF 0x2u
#define VECFS_QREQ_FILTER 0x4u

/* Buffer sizes of the two commands. The kernel's ioctl size field has 14
 * bits (at most 16383 bytes); 16380 keeps the vector 4-byte aligned. */
#define VECFS_QBUF_4K 4096u
#define VECFS_QBUF_16K 16380u
#define VECFS_QWIRE_MAX_DIM_4K ((VECFS_QBUF_4K - VECFS_QWIRE_HEADER) / 4u)   /* 1018 */
#define VECFS_QWIRE_MAX_DIM_16K ((VECFS_QBUF_16K - VECFS_QWIRE_HEADER) / 4u) /* 4089 */

/* _IOWR('Q', 0xF0, 4096 bytes) = 0xD00051F0, _IOWR('Q', 0xF1, 16380
 * bytes) = 0xFFFC51F1. */
#define VECFS_IOC_QUERY_4K _IOC(_IOC_READ | _IOC_WRITE, 'Q', 0xF0, VECFS_QBUF_4K)
#define VECFS_IOC_QUERY_16K _IOC(_IOC_READ | _IOC_WRITE, 'Q', 0xF1, VECFS_QBUF_16K)

/* ------------------------------------------------------------------ */
/* The C client (vecfs_query.c)                                         */
/* ------------------------------------------------------------------ */

/* One neighbour. */
typedef struct vecfs_query_hit {
    float distance;
    char name[VECFS_QWIRE_NAME_MAX + 1]; /* NUL-terminated */
} vecfs_query_hit;

/* Opens (creating it if needed) the query file at path for one-request
 * queries. Returns a file descriptor, or a negative errno. Close it with
 * close(2). */
int vecfs_query_open(const char *path);

/* The k nearest neighbours of vector (dim floats) through one ioctl on fd.
 *   k        1..VECFS_QWIRE_MAX_K, or 0 for the query file's setting
 *   out      room for max_hits hits; written nearest first
 *   n_out    the number of hits written
 *   msg      if not NULL, msg_cap bytes that get the daemon's message on
 *            an error (NUL-terminated, "" when there is none)
 * The 4 KiB command is used when the request fits, else the 16 KiB one;
 * an E2BIG result from the 4 KiB command is retried with the 16 KiB one.
 * Returns 0, or a negative errno: those of the ioctl (vecfs_query.h
 * "Errors"), -E2BIG when the request or result exceeds 16 KiB (use the
 * file path), -ERANGE when more than max_hits neighbours came back, -EPROTO
 * for a malformed result. */
int vecfs_query_search(int fd, const float *vector, uint32_t dim, uint32_t k, vecfs_query_hit *out,
                       size_t max_hits, size_t *n_out, char *msg, size_t msg_cap);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_CONTRIB_VECFS_QUERY_H */
