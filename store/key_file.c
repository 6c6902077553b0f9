/*
 * key_file.c — the --key-file: reading a raw key or a passphrase from a
 * file, and wiping it when done.
 *
 * Invariants
 *   1. Exactly ST_KEY_LEN bytes is a raw key; anything else (1..1024
 *      bytes, one trailing "\n" or "\r\n" removed) is a passphrase.
 *   2. The buffer that held key bytes is wiped (OPENSSL_cleanse) before it
 *      is freed, on every path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "internal.h"

int st_key_load(const char *path, uint8_t **key, size_t *len, bool *is_passphrase)
{
    if (!path || !key || !len || !is_passphrase)
        return -EINVAL;
    *key = NULL;
    int fd = st_io_open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    uint8_t *buf = vc_malloc(1026);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, 1026 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            close(fd);
            st_key_free(buf, 1026);
            return e;
        }
        if (r == 0 || (n += (size_t)r) == 1026)
            break;
    }
    close(fd);
    if (n == ST_KEY_LEN) {
        *is_passphrase = false;
    } else {
        if (n > 0 && buf[n - 1] == '\n')
            n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
        if (n == 0 || n > 1024) {
            st_key_free(buf, 1026);
            return -EINVAL;
        }
        *is_passphrase = true;
    }
    *key = buf;
    *len = n;
    return 0;
}

void st_key_free(uint8_t *key, size_t len)
{
    if (!key)
        return;
    OPENSSL_cleanse(key, len < 1026 ? 1026 : len);
    free(key);
}
