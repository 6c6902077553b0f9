/*
 * fuzz_fs_import_jsonl.c — fuzz target for .jsonl files of rows (fs/import_parse.c).
 *
 * Input: the whole file. Checks import_parse.h's guarantees on success: n >= 1,
 * dim in range, finite floats, rows pointing into the vector block, names
 * valid and NUL-terminated; for .jsonl also that each row's text span lies
 * inside the input and parses back to exactly the row's vector. On error:
 * nothing returned and a reason written.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "import_parse.h"
#include "fuzz_fs_import_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fsd_batch_fuzz_one(FSD_ROWS_JSONL, data, size);
    return 0;
}
