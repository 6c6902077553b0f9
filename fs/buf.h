/*
 * buf.h — a growable byte buffer for the daemon's file contents and
 * generated text (query results, metrics, stats).
 *
 * Invariants
 *   1. data is NULL exactly when cap is 0; otherwise len < cap and
 *      data[len] == '\0', so text built here is always a C string.
 *   2. len never exceeds FSD_BUF_MAX; growth past it fails with -EFBIG.
 *
 * Ownership: the buffer owns data. fsd_buf_detach() hands it to the caller
 * ("you now own the storage") and leaves the buffer empty and reusable.
 * fsd_buf_release() frees it and also leaves the buffer reusable.
 */
#ifndef VECFS_FS_BUF_H
#define VECFS_FS_BUF_H

#include <stddef.h>
#include <stdint.h>

/* Largest buffer: 1 GiB. Above it writes fail with EFBIG. */
#define FSD_BUF_MAX ((size_t)1 << 30)

typedef struct fsd_buf {
    char *data;
    size_t len;
    size_t cap;
} fsd_buf;

#define FSD_BUF_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Makes room for at least `extra` more bytes. 0, -ENOMEM or -EFBIG. */
int fsd_buf_grow(fsd_buf *b, size_t extra);

/* Appends n bytes. 0, -ENOMEM or -EFBIG; on error b is unchanged. */
int fsd_buf_append(fsd_buf *b, const void *p, size_t n);

/* Appends printf-formatted text. 0, -ENOMEM, -EFBIG or -EINVAL. */
int fsd_buf_printf(fsd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes n bytes at offset off, zero-filling any gap past len and growing
 * len to off + n if needed. 0, -ENOMEM or -EFBIG (off + n > max). */
int fsd_buf_write_at(fsd_buf *b, size_t off, const void *p, size_t n, size_t max);

/* Sets len to n: shrinks, or zero-fills up to n. 0, -ENOMEM, -EFBIG. */
int fsd_buf_resize(fsd_buf *b, size_t n);

/* Hands the storage to the caller (free() it; NULL if b was empty) and
 * stores its length in *len; b is left empty and reusable. */
char *fsd_buf_detach(fsd_buf *b, size_t *len);

/* Empties b without freeing its storage. */
void fsd_buf_reset(fsd_buf *b);

/* Frees the storage; b is empty and reusable. NULL is a no-op. */
void fsd_buf_release(fsd_buf *b);

#endif /* VECFS_FS_BUF_H */
