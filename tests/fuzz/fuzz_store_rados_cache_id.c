/*
 * fuzz_store_rados_cache_id.c — st_cache_id_parse (store/rados_cache_id.c)
 * on arbitrary bytes as a CACHEDIR's rados.id. It must never read outside
 * the text, and what it accepts must format back to the same bytes (the
 * file has one spelling, which its CRC-32C covers).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_cache_id id;
    if (st_cache_id_parse((const char *)data, size, &id) != 0)
        return 0;
    if (id.ident_len >= sizeof(id.ident) || id.boot[0] == '\0' ||
        memchr(id.boot, '\n', strlen(id.boot)))
        abort();
    char again[ST_CACHE_ID_MAX + 64];
    size_t len;
    if (st_cache_id_format(&id, again, sizeof(again), &len) != 0 || len != size ||
        memcmp(again, data, size) != 0)
        abort();
    return 0;
}
