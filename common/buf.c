/*
 * buf.c — the growable byte buffer (see buf.h for the invariants).
 *
 * Growth doubles the capacity, so appending n bytes one at a time costs
 * O(n); every size computation is checked before it can overflow.
 */
#include "buf.h"
#include "alloc.h"
#include "le.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vc_buf_grow(vc_buf *b, size_t extra)
{
    if (extra >= SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = vc_realloc(b->p, cap);
    if (p == NULL)
        return -ENOMEM;
    if (b->p == NULL)
        p[0] = '\0';
    b->p = p;
    b->cap = cap;
    return 0;
}

void vc_buf_setlen(vc_buf *b, size_t len)
{
    assert(len < b->cap);
    b->len = len;
    b->p[len] = '\0';
}

int vc_buf_append(vc_buf *b, const void *p, size_t n)
{
    if (b->err)
        return b->err;
    int rc = vc_buf_grow(b, n);
    if (rc < 0)
        return b->err = rc;
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    vc_buf_setlen(b, b->len + n);
    return 0;
}

int vc_buf_append_u8(vc_buf *b, uint8_t v)
{
    return vc_buf_append(b, &v, 1);
}

int vc_buf_append_le16(vc_buf *b, uint16_t v)
{
    unsigned char f[2];
    vc_le_put16(f, v);
    return vc_buf_append(b, f, sizeof f);
}

int vc_buf_append_le32(vc_buf *b, uint32_t v)
{
    unsigned char f[4];
    vc_le_put32(f, v);
    return vc_buf_append(b, f, sizeof f);
}

int vc_buf_append_le64(vc_buf *b, uint64_t v)
{
    unsigned char f[8];
    vc_le_put64(f, v);
    return vc_buf_append(b, f, sizeof f);
}

int vc_buf_printf(vc_buf *b, const char *fmt, ...)
{
    if (b->err)
        return b->err;
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return b->err = -EINVAL;
    if ((size_t)n < sizeof small)
        return vc_buf_append(b, small, (size_t)n);
    int rc = vc_buf_grow(b, (size_t)n);
    if (rc < 0)
        return b->err = rc;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int vc_buf_write_at(vc_buf *b, size_t off, const void *p, size_t n, size_t max)
{
    if (off > max || n > max - off)
        return -EFBIG;
    size_t end = off + n;
    if (end > b->len) {
        int rc = vc_buf_grow(b, end - b->len);
        if (rc < 0)
            return rc;
        if (off > b->len)
            memset(b->p + b->len, 0, off - b->len);
        vc_buf_setlen(b, end);
    }
    if (n > 0)
        memcpy(b->p + off, p, n);
    return 0;
}

int vc_buf_resize(vc_buf *b, size_t n, size_t max)
{
    if (n > max)
        return -EFBIG;
    if (n > b->len) {
        int rc = vc_buf_grow(b, n - b->len);
        if (rc < 0)
            return rc;
        memset(b->p + b->len, 0, n - b->len);
    }
    if (b->p != NULL)
        vc_buf_setlen(b, n);
    return 0;
}

char *vc_buf_detach(vc_buf *b, size_t *len)
{
    char *p = b->p;
    *len = b->len;
    *b = (vc_buf)VC_BUF_INIT;
    return p;
}

void vc_buf_attach(vc_buf *b, char *p, size_t len)
{
    assert(p != NULL || len == 0);
    vc_buf_release(b);
    if (p == NULL)
        return;
    b->p = p;
    b->len = len;
    b->cap = len + 1;
}

void vc_buf_reset(vc_buf *b)
{
    b->len = 0;
    b->err = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

void vc_buf_release(vc_buf *b)
{
    if (b == NULL)
        return;
    free(b->p);
    *b = (vc_buf)VC_BUF_INIT;
}
