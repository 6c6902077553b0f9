/*
 * vecfs_query.c — the C client of one-request queries (vecfs_query.h).
 * Standard C and POSIX only, no vecfs headers beyond vecfs_query.h, so it
 * can be copied into another program as it is.
 *
 * Invariants
 *   1. Every field is written and read byte by byte in little-endian
 *      order, so the client works on any host and any alignment.
 *   2. A result is trusted no further than its buffer: every length is
 *      checked against the bytes the daemon could have written.
 */
#include "vecfs_query.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int vecfs_query_open(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    return fd < 0 ? -errno : fd;
}

/* Writes the request for (vector, dim, k) into buf (size bytes). */
static void encode(unsigned char *buf, size_t size, const float *vector, uint32_t dim, uint32_t k)
{
    memset(buf, 0, size);
    put32(buf, VECFS_QREQ_MAGIC);
    put16(buf + 4, VECFS_QWIRE_VERSION);
    put16(buf + 6, k ? VECFS_QREQ_K : 0);
    put32(buf + 8, k);
    put32(buf + 16, dim);
    for (uint32_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &vector[i], sizeof u);
        put32(buf + VECFS_QWIRE_HEADER + 4 * (size_t)i, u);
    }
}

/* Copies the message of an error result into msg (msg_cap bytes). */
static void message(const unsigned char *buf, size_t size, char *msg, size_t msg_cap)
{
    if (msg == NULL || msg_cap == 0)
        return;
    msg[0] = '\0';
    if (get32(buf) != VECFS_QRES_MAGIC)
        return;
    size_t len = get32(buf + 16);
    if (len < VECFS_QWIRE_HEADER || len > size)
        return;
    size_t n = len - VECFS_QWIRE_HEADER < msg_cap - 1 ? len - VECFS_QWIRE_HEADER : msg_cap - 1;
    memcpy(msg, buf + VECFS_QWIRE_HEADER, n);
    msg[n] = '\0';
}

/* Reads the hits of a successful result of count neighbours. */
static int decode(const unsigned char *buf, size_t size, int count, vecfs_query_hit *out,
                  size_t max_hits, size_t *n_out)
{
    size_t len = get32(buf + 16);
    if (get32(buf) != VECFS_QRES_MAGIC || get16(buf + 4) != VECFS_QWIRE_VERSION ||
        get32(buf + 8) != 0 || get32(buf + 12) != (uint32_t)count || len > size ||
        len < VECFS_QWIRE_HEADER)
        return -EPROTO;
    if ((size_t)count > max_hits)
        return -ERANGE;
    size_t at = VECFS_QWIRE_HEADER;
    for (int i = 0; i < count; i++) {
        if (len - at < VECFS_QWIRE_RECORD)
            return -EPROTO;
        uint32_t u = get32(buf + at);
        size_t nlen = get16(buf + at + 4);
        at += VECFS_QWIRE_RECORD;
        if (nlen > VECFS_QWIRE_NAME_MAX || len - at < nlen)
            return -EPROTO;
        memcpy(&out[i].distance, &u, sizeof u);
        memcpy(out[i].name, buf + at, nlen);
        out[i].name[nlen] = '\0';
        at += nlen;
    }
    *n_out = (size_t)count;
    return 0;
}

int vecfs_query_search(int fd, const float *vector, uint32_t dim, uint32_t k, vecfs_query_hit *out,
                       size_t max_hits, size_t *n_out, char *msg, size_t msg_cap)
{
    /* Aligned for the float words, and big enough for either command. */
    static _Thread_local uint32_t words[VECFS_QBUF_16K / 4];
    unsigned char *buf = (unsigned char *)words;
    *n_out = 0;
    if (msg != NULL && msg_cap > 0)
        msg[0] = '\0';
    if (dim > VECFS_QWIRE_MAX_DIM_16K)
        return -E2BIG;
    unsigned long cmd = dim <= VECFS_QWIRE_MAX_DIM_4K ? VECFS_IOC_QUERY_4K : VECFS_IOC_QUERY_16K;
    for (;;) {
        size_t size = cmd == VECFS_IOC_QUERY_4K ? VECFS_QBUF_4K : VECFS_QBUF_16K;
        encode(buf, size, vector, dim, k);
        int count = ioctl(fd, cmd, buf);
        if (count >= 0)
            return decode(buf, size, count, out, max_hits, n_out);
        int err = errno;
        if (err == E2BIG && cmd == VECFS_IOC_QUERY_4K) {
            cmd = VECFS_IOC_QUERY_16K;
            continue;
        }
        if (err != ENOTTY && err != EFAULT)
            message(buf, size, msg, msg_cap);
        return -err;
    }
}
