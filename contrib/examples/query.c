/*
 * query.c — search a vecfs collection from C with open/write/read.
 *
 * Build: cc -std=c11 -Wall -Wextra -O2 -o vecfs-query contrib/examples/query.c
 * Usage: vecfs-query COLLECTION_DIR K VALUE...
 *        vecfs-query COLLECTION_DIR K like=NAME
 *
 * Writes a text query ("k = K", then the vector or "like = NAME") into
 * COLLECTION_DIR/.query/c-<pid> on one read-write descriptor, seeks back to
 * 0 and reads the result: one "<name>\t<distance>\n" line per neighbour,
 * nearest first. The daemon validates the query when the file is read (or
 * closed): EINVAL means malformed, ENOENT a name that does not exist.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s COLLECTION_DIR K VALUE... | like=NAME\n", argv[0]);
        return 2;
    }
    char query[65536];
    int len = snprintf(query, sizeof query, "k = %s\n", argv[2]);
    for (int i = 3; i < argc && len > 0 && (size_t)len < sizeof query; i++) {
        if (strncmp(argv[i], "like=", 5) == 0)
            len += snprintf(query + len, sizeof query - (size_t)len, "like = %s\n", argv[i] + 5);
        else
            len += snprintf(query + len, sizeof query - (size_t)len, "%s%s", argv[i],
                            i + 1 < argc ? " " : "\n");
    }
    if (len < 0 || (size_t)len >= sizeof query) {
        fprintf(stderr, "query too long\n");
        return 2;
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/.query/c-%ld", argv[1], (long)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (write_all(fd, query, (size_t)len) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        fprintf(stderr, "write %s: %s\n", path, strerror(errno));
        close(fd);
        return 1;
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    int err = n < 0 ? errno : 0;
    if (close(fd) < 0 && !err)
        err = errno;
    if (err) {
        fprintf(stderr, "query %s: %s\n", path, strerror(err));
        return 1;
    }
    unlink(path); /* optional: query files are dropped when idle anyway */
    return 0;
}
