/*
 * fuzz_store_rados_entry.c — st_log_entry_decode (store/rados_entry.c) on
 * arbitrary bytes, twice: as given, and with the CRC-32C appended so that
 * mutations reach the field parsers behind the checksum. It must never
 * read outside the buffer, and an entry it accepts must re-encode to the
 * same bytes (the layout is canonical).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "internal.h"
#include "le.h"

static void decode_reencode(const uint8_t *p, size_t n)
{
    st_log_entry e;
    if (st_log_entry_decode(p, n, &e) != 0)
        return;
    vc_buf b = VC_BUF_INIT;
    if (st_log_entry_encode(&e, &b) == 0 && (b.len != n || memcmp(b.p, p, n) != 0))
        abort();
    vc_buf_release(&b);
    st_log_entry_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_reencode(data, size);
    uint8_t *sealed = malloc(size + 4);
    if (!sealed)
        return 0;
    memcpy(sealed, data, size);
    vc_le_put32(sealed + size, vc_crc32c(0, data, size));
    decode_reencode(sealed, size + 4);
    free(sealed);
    return 0;
}
