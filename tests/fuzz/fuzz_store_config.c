/*
 * fuzz_store_config.c — st_config_parse on arbitrary bytes: it must never
 * read outside the buffer, and whatever it accepts must validate and must
 * survive st_config_format -> st_config_parse unchanged (except
 * target_recall, printed with 6 significant digits).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_config base, c, back;
    st_config_default(&base);
    char err[128];
    if (st_config_parse((const char *)data, size, &base, &c, err, sizeof(err)) != 0)
        return 0;
    if (st_config_validate(&c) != 0)
        abort();
    char buf[1024];
    size_t len;
    if (st_config_format(&c, buf, sizeof(buf), &len) != 0)
        abort();
    if (st_config_parse(buf, len, &base, &back, NULL, 0) != 0)
        abort();
    if (back.dim != c.dim || back.metric != c.metric || back.m != c.m ||
        back.ef_construction != c.ef_construction || back.ef_auto != c.ef_auto ||
        (!c.ef_auto && back.ef_search != c.ef_search) || back.quantization != c.quantization ||
        back.max_vectors != c.max_vectors || back.max_bytes != c.max_bytes)
        abort();
    return 0;
}
