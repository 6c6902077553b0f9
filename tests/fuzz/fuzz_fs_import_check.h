/*
 * fuzz_fs_import_check.h — the checks shared by the three import_parse fuzz
 * targets (included by each; not a library).
 */
#ifndef VECFS_FUZZ_FS_IMPORT_CHECK_H
#define VECFS_FUZZ_FS_IMPORT_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "import_parse.h"
#include "vector_format.h"
#include "names.h"

static void batch_check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static void fsd_batch_fuzz_one(fsd_rows_format fmt, const uint8_t *data, size_t size)
{
    fsd_rows *b = NULL;
    char err[96];
    int rc = fsd_rows_parse(fmt, data, size, "f", 1, 0, &b, err, sizeof err);
    if (rc) {
        batch_check(b == NULL && err[0] != '\0');
        return;
    }
    batch_check(b->n >= 1 && b->dim >= 1 && b->dim <= FSD_MAX_DIM);
    for (size_t i = 0; i < b->n; i++) {
        const fsd_row *r = &b->rows[i];
        batch_check(r->vec == b->vectors + i * b->dim);
        for (uint32_t j = 0; j < b->dim; j++)
            batch_check(isfinite(r->vec[j]));
        batch_check(r->name != NULL && strlen(r->name) == r->name_len);
        batch_check(fsd_vecname_check(r->name, r->name_len) == 0);
        for (size_t m = 0; m < r->n_meta; m++)
            batch_check(r->meta[m].key[0] != '\0' && r->meta[m].value_len <= FSD_META_VALUE_MAX);
        if (r->text_len) {
            batch_check(r->text_off <= size && r->text_len <= size - r->text_off);
            for (int f = 0; f < 2; f++) {
                float *v = NULL;
                uint32_t d = 0;
                batch_check(fsd_vector_parse(f ? FSD_VFORMAT_JSON : FSD_VFORMAT_TEXT,
                                             data + r->text_off, r->text_len, b->dim, &v, &d) == 0);
                batch_check(memcmp(v, r->vec, b->dim * sizeof(float)) == 0);
                free(v);
            }
        }
    }
    fsd_rows_free(b);
}

#endif /* VECFS_FUZZ_FS_IMPORT_CHECK_H */
