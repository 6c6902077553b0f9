/*
 * fuzz_fs_query_wire.c — fuzz target for one-request query buffers
 * (fs/query_wire.c).
 *
 * Input: the request buffer as the kernel hands it over (any length).
 * Checks that a parse fails or yields fields within their limits (flags
 * known, k and ef set only with their flags and in range, the vector and
 * filter inside the buffer, finite floats), then writes a result of
 * neighbours named by slices of the input into a buffer of a size taken
 * from the input, and checks the result never claims more than its
 * buffer, that need counts every record, and that an error result fits.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query_parse.h"
#include "query_wire.h"

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float vec[VECFS_QWIRE_MAX_DIM_16K];
    fsd_qwire_req req;
    const char *why = NULL;
    int rc = fsd_qwire_parse(data, size, vec, VECFS_QWIRE_MAX_DIM_16K, &req, &why);
    if (rc) {
        check(why != NULL && (rc == -EINVAL || rc == -EPROTONOSUPPORT));
    } else {
        check(!(req.flags & ~7u));
        check((req.flags & VECFS_QREQ_K) ? req.k >= 1 && req.k <= VECFS_QWIRE_MAX_K : req.k == 0);
        check((req.flags & VECFS_QREQ_EF) ? req.ef >= 1 && req.ef <= FSD_QUERY_MAX_EF
                                          : req.ef == 0);
        check(req.dim >= 1 && req.dim <= VECFS_QWIRE_MAX_DIM_16K);
        check(VECFS_QWIRE_HEADER + (uint64_t)req.dim * 4 + req.filter_len <= size);
        check((req.filter != NULL) == (req.filter_len != 0));
        for (uint32_t i = 0; i < req.dim; i++)
            check(isfinite(vec[i]));
    }

    /* A result in a buffer of 24..4119 bytes, names cut from the input. */
    size_t cap = VECFS_QWIRE_HEADER + (size ? data[0] * 16u + size % 16 : 0);
    unsigned char *out = malloc(cap);
    if (out == NULL)
        return 0;
    fsd_qwire_result r;
    fsd_qwire_result_start(&r, out, cap);
    size_t need = VECFS_QWIRE_HEADER, at = 0;
    int add = 0;
    while (at < size) {
        size_t n = data[at] % 40u;
        if (n > size - at)
            n = size - at;
        int a = fsd_qwire_result_add(&r, (const char *)data + at, n, (float)at);
        need += VECFS_QWIRE_RECORD + n;
        check(a == 0 || a == -E2BIG);
        check(a == 0 || r.len <= cap);
        if (a < 0)
            add = a;
        at += n + 1;
    }
    check(r.need == need && r.len <= cap);
    if (add == 0) {
        size_t len = fsd_qwire_result_finish(&r);
        check(len == need && get32(out + 16) == len && get32(out + 12) == r.count);
    }
    size_t elen = fsd_qwire_error(out, cap, -EINVAL, need, "%.*s", (int)(size < 64 ? size : 64),
                                  (const char *)data);
    check(elen <= cap && get32(out + 16) == elen && (int32_t)get32(out + 8) == -EINVAL);
    free(out);
    return 0;
}
