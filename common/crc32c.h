/*
 * crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of engine snapshots and of store records. Part of common/, the
 * level below engine/, store/ and fs/; not part of engine.h.
 *
 * The value is the standard CRC-32C (initial value and final xor
 * 0xFFFFFFFF): vc_crc32c(0, "123456789", 9) == 0xE3069283.
 */
#ifndef VECFS_COMMON_CRC32C_H
#define VECFS_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Returns the CRC-32C of the n bytes at p, continuing from `crc`, which is
 * 0 for the first piece and the previous return value after that:
 * vc_crc32c(vc_crc32c(0, a, n), b, m) is the CRC of a followed by b.
 * p may be NULL when n is 0. Never fails; thread-safe. Uses the SSE4.2
 * crc32 instruction when the CPU has it (chosen once, at the first call),
 * otherwise vc_crc32c_sw.
 */
uint32_t vc_crc32c(uint32_t crc, const void *p, size_t n);

/* The portable table-driven (slicing-by-8) implementation; same contract
 * as vc_crc32c. Exposed so tests can compare it with the hardware path. */
uint32_t vc_crc32c_sw(uint32_t crc, const void *p, size_t n);

/*
 * The hardware implementation, same contract as vc_crc32c, result in *out.
 * Returns 0, or -ENOTSUP (nothing written) when this CPU or build has no
 * CRC-32C instruction. Exposed so tests can compare it with vc_crc32c_sw.
 */
int vc_crc32c_hw(uint32_t crc, const void *p, size_t n, uint32_t *out);

#endif /* VECFS_COMMON_CRC32C_H */
