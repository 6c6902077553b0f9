/*
 * buf.h — the one growable byte buffer of vecfs: record bodies and
 * scratch in store/, file images, generated text (query results, metrics,
 * stats) and option strings in fs/.
 *
 * Invariants
 *   1. p is NULL exactly when cap is 0; otherwise len < cap and
 *      p[len] == '\0', so text built here is always a C string and
 *      p[0 .. len) the bytes. A zeroed vc_buf is VC_BUF_INIT.
 *   2. err is 0 or the first error an append (vc_buf_append*,
 *      vc_buf_printf) met. While it is set appends do nothing and return
 *      it, so an encoder of many fields checks once, at the end.
 *      vc_buf_reset, vc_buf_release and vc_buf_detach clear it.
 *   3. Every function that fails leaves p, len and cap as they were.
 *      vc_buf_grow, vc_buf_write_at and vc_buf_resize report their error
 *      and leave err alone: a file image stays writable after a write that
 *      did not fit.
 *   4. Memory comes from vc_realloc (alloc.h), so tests can fail it.
 *
 * Ownership: the buffer owns p. vc_buf_detach hands it to the caller ("you
 * now own the storage": free() it) and leaves the buffer empty and
 * reusable; vc_buf_attach is the reverse. vc_buf_release frees the storage
 * and also leaves the buffer reusable. A pointer into p stays valid only
 * until the next call that may grow the buffer.
 *
 * A vc_buf is not locked: its owner serializes access.
 *
 *   vc_buf b = VC_BUF_INIT;
 *   vc_buf_append_le32(&b, id);
 *   vc_buf_append(&b, name, name_len);
 *   if (b.err) ... else use b.p, b.len;
 *   vc_buf_release(&b);
 */
#ifndef VECFS_COMMON_BUF_H
#define VECFS_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct vc_buf {
    char *p;
    size_t len;
    size_t cap;
    int err; /* sticky error of appends (invariant 2) */
} vc_buf;

#define VC_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

/* Makes room for at least `extra` more bytes after len (and the NUL), so
 * the caller may write p[len .. len + extra) directly and then call
 * vc_buf_setlen. 0 or -ENOMEM (also when len + extra overflows). */
int vc_buf_grow(vc_buf *b, size_t extra);

/* Sets len after a direct write into the room vc_buf_grow made, and
 * writes the NUL: len < cap (a programmer error otherwise). */
void vc_buf_setlen(vc_buf *b, size_t len);

/* Appends n bytes of p (p may be NULL when n is 0). 0, or -ENOMEM (or the
 * sticky error, invariant 2). */
int vc_buf_append(vc_buf *b, const void *p, size_t n);

/* Appends v as 1, 2, 4 or 8 bytes, little-endian (le.h). As vc_buf_append. */
int vc_buf_append_u8(vc_buf *b, uint8_t v);
int vc_buf_append_le16(vc_buf *b, uint16_t v);
int vc_buf_append_le32(vc_buf *b, uint32_t v);
int vc_buf_append_le64(vc_buf *b, uint64_t v);

/* Appends printf-formatted text. 0, -ENOMEM or -EINVAL (a format vsnprintf
 * refuses); both stick. */
int vc_buf_printf(vc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes n bytes at offset off, zero-filling any gap past len and growing
 * len to off + n if needed. 0, -EFBIG (off + n > max) or -ENOMEM. */
int vc_buf_write_at(vc_buf *b, size_t off, const void *p, size_t n, size_t max);

/* Sets len to n: shrinks, or zero-fills up to n. 0, -EFBIG (n > max) or
 * -ENOMEM. */
int vc_buf_resize(vc_buf *b, size_t n, size_t max);

/* Hands the storage to the caller, who must free() it (NULL when cap was
 * 0), and stores the length in *len; b is left empty and reusable. */
char *vc_buf_detach(vc_buf *b, size_t *len);

/* Replaces b's storage (freed) by p: the buffer now owns p. p was returned
 * by malloc or realloc with room for at least len + 1 bytes and holds
 * p[len] == '\0'; p may be NULL only with len 0. */
void vc_buf_attach(vc_buf *b, char *p, size_t len);

/* Empties b without freeing its storage and clears err. */
void vc_buf_reset(vc_buf *b);

/* Frees the storage; b is VC_BUF_INIT again and reusable. NULL is a no-op. */
void vc_buf_release(vc_buf *b);

#endif /* VECFS_COMMON_BUF_H */
