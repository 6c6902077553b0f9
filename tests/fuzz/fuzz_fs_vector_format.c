/*
 * fuzz_fs_vector_format.c — fuzz target for vector file contents (fs/vector_format.c).
 *
 * Input: byte 0 picks the format (% 3) and whether a dim is expected;
 * the rest is the file content. Checks, beyond "no crash, no over-read":
 *   1. a successful parse returns finite floats and a dim in range;
 *   2. formatting the result and parsing it again in every format gives
 *      back exactly the same floats (vector_format.h invariant);
 *   3. the caller-array text parser agrees with the allocating one.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vector_format.h"

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fsd_vformat fmt = (fsd_vformat)(data[0] % 3);
    uint32_t expect = (data[0] & 0x80) ? (uint32_t)(data[0] & 0x07) : 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;

    float *v = NULL;
    uint32_t dim = 0;
    int rc = fsd_vector_parse(fmt, p, n, expect, &v, &dim);
    if (rc) {
        check(v == NULL && dim == 0);
    } else {
        check(dim >= 1 && dim <= FSD_MAX_DIM && (!expect || dim == expect));
        for (uint32_t i = 0; i < dim; i++)
            check(isfinite(v[i]));
        for (int f = 0; f < 3; f++) {
            char *s = NULL;
            size_t len = 0;
            check(fsd_vector_format((fsd_vformat)f, v, dim, &s, &len) == 0);
            float *back = NULL;
            uint32_t bd = 0;
            check(fsd_vector_parse((fsd_vformat)f, s, len, dim, &back, &bd) == 0);
            check(bd == dim && memcmp(back, v, dim * sizeof(float)) == 0);
            free(back);
            free(s);
        }
    }
    if (fmt == FSD_VFORMAT_TEXT) {
        float buf[64];
        uint32_t d2 = 0;
        int rc2 = fsd_vector_parse_text_into((const char *)p, n, buf, 64, &d2);
        if (rc == 0 && dim <= 64 && !expect)
            check(rc2 == 0 && d2 == dim && memcmp(buf, v, dim * sizeof(float)) == 0);
        if (rc2 == 0 && rc == 0)
            check(d2 == dim);
    }
    free(v);
    return 0;
}
