/*
 * fuzz_store_rados_seal.c — st_seal_take (store/rados_seal.c) on
 * arbitrary bytes as a log's seal record, with a fixed raw key. It must
 * never read outside the bytes, and it may accept a record only if the
 * key opens its key check: then an entry sealed under it opens again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[ST_KEY_LEN] = "fuzz key, 32 bytes long, exact";
    st_options o;
    st_options_default(&o);
    o.key = key;
    o.key_len = ST_KEY_LEN;
    st_rados_options ro = {.pool = "p", .ns = "n"};
    st_rados r = {0};
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (st_seal_take(&r, copy, size, &ro, &o) == 0 && size) {
        vc_buf b = VC_BUF_INIT, scratch = VC_BUF_INIT;
        const void *body;
        size_t blen;
        vc_buf_append(&b, "x", 1);
        if (st_seal_entry(&r, 1, &b) != 0 ||
            st_seal_entry_open(&r, 1, b.p, b.len, &scratch, &body, &blen) != 0 || blen != 1)
            abort();
        vc_buf_release(&b);
        vc_buf_release(&scratch);
    }
    st_seal_free(&r);
    free(copy);
    return 0;
}
