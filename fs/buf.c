/*
 * buf.c — growable byte buffer (see buf.h for the invariants).
 *
 * Growth doubles the capacity so appending n bytes one at a time costs
 * O(n); every size computation is checked against FSD_BUF_MAX before it
 * can overflow.
 */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fsd_buf_grow(fsd_buf *b, size_t extra)
{
    if (extra > FSD_BUF_MAX || b->len > FSD_BUF_MAX - extra)
        return -EFBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return -ENOMEM;
    if (b->data == NULL)
        p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int fsd_buf_append(fsd_buf *b, const void *p, size_t n)
{
    int rc = fsd_buf_grow(b, n);
    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int fsd_buf_printf(fsd_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof small)
        return fsd_buf_append(b, small, (size_t)n);
    int rc = fsd_buf_grow(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int fsd_buf_write_at(fsd_buf *b, size_t off, const void *p, size_t n, size_t max)
{
    if (max > FSD_BUF_MAX)
        max = FSD_BUF_MAX;
    if (off > max || n > max - off)
        return -EFBIG;
    size_t end = off + n;
    if (end > b->len) {
        int rc = fsd_buf_grow(b, end - b->len);
        if (rc < 0)
            return rc;
        if (off > b->len)
            memset(b->data + b->len, 0, off - b->len);
        b->len = end;
        b->data[end] = '\0';
    }
    if (n > 0)
        memcpy(b->data + off, p, n);
    return 0;
}

int fsd_buf_resize(fsd_buf *b, size_t n)
{
    if (n > FSD_BUF_MAX)
        return -EFBIG;
    if (n > b->len) {
        int rc = fsd_buf_grow(b, n - b->len);
        if (rc < 0)
            return rc;
        memset(b->data + b->len, 0, n - b->len);
    }
    b->len = n;
    if (b->data != NULL)
        b->data[n] = '\0';
    return 0;
}

char *fsd_buf_detach(fsd_buf *b, size_t *len)
{
    char *p = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void fsd_buf_reset(fsd_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void fsd_buf_release(fsd_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
