/*
 * query_ioctl.c — one-request queries from C (contrib/vecfs_query.h).
 *
 * Build: meson builds it as contrib/vecfs-query-ioctl, or
 *        cc -std=c11 -O2 -Icontrib -o vecfs-query-ioctl \
 *           contrib/examples/query_ioctl.c contrib/vecfs_query.c
 * Usage: vecfs-query-ioctl QUERY_FILE K VALUE...
 *
 * Opens QUERY_FILE (a name under <collection>/.query/) once and asks for
 * the K nearest neighbours of the vector VALUE... in one ioctl (K 0: the
 * query file's user.k, else 10). Prints one "<name>\t<distance>\n" line
 * per neighbour, nearest first, distances with 9 significant digits (they
 * read back to the same float32). On failure prints
 * "vecfs-query-ioctl: <errno name>: <message>" on stderr and exits 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerrorname_np */
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vecfs_query.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: vecfs-query-ioctl QUERY_FILE K VALUE...\n");
        return 2;
    }
    char *end;
    unsigned long k = strtoul(argv[2], &end, 10);
    uint32_t dim = (uint32_t)(argc - 3);
    float *vec = malloc(dim * sizeof *vec);
    vecfs_query_hit *hits = malloc((k ? k : VECFS_QWIRE_MAX_K) * sizeof *hits);
    if (*end || k > VECFS_QWIRE_MAX_K || vec == NULL || hits == NULL) {
        fprintf(stderr, "vecfs-query-ioctl: bad K or out of memory\n");
        return 2;
    }
    for (uint32_t i = 0; i < dim; i++) {
        vec[i] = strtof(argv[3 + i], &end);
        if (*end) {
            fprintf(stderr, "vecfs-query-ioctl: bad value %s\n", argv[3 + i]);
            return 2;
        }
    }
    int fd = vecfs_query_open(argv[1]);
    if (fd < 0) {
        fprintf(stderr, "vecfs-query-ioctl: %s: %s\n", argv[1], strerror(-fd));
        return 1;
    }
    char msg[512];
    size_t n = 0;
    int rc = vecfs_query_search(fd, vec, dim, (uint32_t)k, hits, k ? k : VECFS_QWIRE_MAX_K, &n, msg,
                                sizeof msg);
    close(fd);
    if (rc < 0) {
        fprintf(stderr, "vecfs-query-ioctl: %s: %s\n", strerrorname_np(-rc),
                msg[0] ? msg : strerror(-rc));
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s\t%.9g\n", hits[i].name, (double)hits[i].distance);
    free(vec);
    free(hits);
    return 0;
}
