/*
 * le.h — fixed-width little-endian fields, the byte order of every vecfs
 * format on disk (records, snapshots, the envelope) and of .f32/.fvecs
 * files. One definition for all of them; byte by byte, so it holds on any
 * host and for any alignment (compilers turn it into one load or store
 * on a little-endian one).
 */
#ifndef VECFS_COMMON_LE_H
#define VECFS_COMMON_LE_H

#include <stdint.h>
#include <string.h>

static inline void vc_le_put16(void *p, uint16_t v)
{
    unsigned char *b = p;
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
}

static inline void vc_le_put32(void *p, uint32_t v)
{
    unsigned char *b = p;
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static inline void vc_le_put64(void *p, uint64_t v)
{
    unsigned char *b = p;
    vc_le_put32(b, (uint32_t)v);
    vc_le_put32(b + 4, (uint32_t)(v >> 32));
}

static inline uint16_t vc_le_get16(const void *p)
{
    const unsigned char *b = p;
    return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t vc_le_get32(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t vc_le_get64(const void *p)
{
    const unsigned char *b = p;
    return vc_le_get32(b) | (uint64_t)vc_le_get32(b + 4) << 32;
}

/* IEEE float32 fields (.f32 vectors, .fvecs rows). */
static inline float vc_le_getf(const void *p)
{
    uint32_t u = vc_le_get32(p);
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static inline void vc_le_putf(void *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    vc_le_put32(p, u);
}

#endif /* VECFS_COMMON_LE_H */
