/*
 * crc32c.c — CRC-32C in portable C (slicing-by-8) and with the SSE4.2
 * crc32 instruction on x86, chosen at run time.
 *
 * Slicing-by-8: table[0] is the classic byte-at-a-time table of the
 * reflected polynomial; table[j][b] is the CRC of byte b followed by j zero
 * bytes, so eight input bytes are folded with eight independent lookups
 * instead of eight dependent ones.
 *
 * Invariants
 *   1. The tables are built once (pthread_once) before any software CRC
 *      reads them and are never written again.
 *   2. Every implementation works on the inverted register (~crc) and
 *      inverts it again on return, so chaining through the public value
 *      is the same as one pass over the concatenation.
 *   3. Input is read byte-wise or through memcpy: no alignment or aliasing
 *      assumption, and never a byte outside [p, p + n).
 *   4. The hardware path is called only when __builtin_cpu_supports says
 *      the CPU has SSE4.2; the function carrying the instruction is the
 *      only one compiled for that target.
 */
#include "crc32c.h"
#include "le.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VF_CRC32C_X86 1
#include <nmmintrin.h>
#endif

#define POLY 0x82F63B78u

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static uint32_t table[8][256]; /* written once, in build_tables() */

static void build_tables(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
        table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++) {
        for (int j = 1; j < 8; j++)
            table[j][b] = (table[j - 1][b] >> 8) ^ table[0][table[j - 1][b] & 0xFFu];
    }
}

uint32_t vc_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *s = p;
    pthread_once(&tables_once, build_tables);
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = vc_le_get32(s) ^ crc;
        uint32_t hi = vc_le_get32(s + 4);
        crc = table[7][lo & 0xFFu] ^ table[6][(lo >> 8) & 0xFFu] ^ table[5][(lo >> 16) & 0xFFu] ^
              table[4][lo >> 24] ^ table[3][hi & 0xFFu] ^ table[2][(hi >> 8) & 0xFFu] ^
              table[1][(hi >> 16) & 0xFFu] ^ table[0][hi >> 24];
        s += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = (crc >> 8) ^ table[0][(crc ^ *s++) & 0xFFu];
    return ~crc;
}

#ifdef VF_CRC32C_X86
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *p,
                                                               size_t n)
{
    const unsigned char *s = p;
    uint64_t c = ~crc;
    /* Byte steps up to an 8-byte boundary keep the word loads aligned. */
    while (n > 0 && ((uintptr_t)s & 7u) != 0) {
        c = _mm_crc32_u8((uint32_t)c, *s++);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, sizeof(w));
        c = _mm_crc32_u64(c, w);
        s += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = _mm_crc32_u8((uint32_t)c, *s++);
    return ~(uint32_t)c;
}
#endif

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static bool have_hw; /* written once, in detect() */

static void detect(void)
{
#ifdef VF_CRC32C_X86
    __builtin_cpu_init();
    have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

int vc_crc32c_hw(uint32_t crc, const void *p, size_t n, uint32_t *out)
{
    pthread_once(&detect_once, detect);
    if (!have_hw)
        return -ENOTSUP;
#ifdef VF_CRC32C_X86
    *out = crc32c_sse42(crc, p, n);
    return 0;
#else
    (void)crc;
    (void)p;
    (void)n;
    (void)out;
    return -ENOTSUP;
#endif
}

uint32_t vc_crc32c(uint32_t crc, const void *p, size_t n)
{
    uint32_t r;
    if (vc_crc32c_hw(crc, p, n, &r) == 0)
        return r;
    return vc_crc32c_sw(crc, p, n);
}
