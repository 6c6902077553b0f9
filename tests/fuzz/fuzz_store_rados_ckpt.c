/*
 * fuzz_store_rados_ckpt.c — st_ckpt_manifest_walk (store/rados_ckpt.c) on
 * arbitrary bytes as the manifest of checkpoint 1. It must never read
 * outside the text, and what it accepts must hold together: plain file
 * names, pieces of 1..ST_CKPT_PIECE bytes numbered 0, 1, ... that add up
 * to their file's size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct seen {
    uint64_t left;  /* bytes of the current file not yet in a piece */
    uint32_t piece; /* the next piece's number */
} seen;

static int item(void *ctx, const char *name, uint32_t piece, uint64_t len, uint32_t crc)
{
    (void)crc;
    seen *s = ctx;
    if (strchr(name, '/') || name[0] == '.' || name[0] == '\0')
        abort();
    if (piece == UINT32_MAX) {
        if (s->left)
            abort(); /* a file began before the last one was whole */
        s->left = len;
        return 0;
    }
    if (piece != s->piece++ || len == 0 || len > ST_CKPT_PIECE || len > s->left)
        abort();
    s->left -= len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    seen s = {0};
    if (st_ckpt_manifest_walk(text, 1, item, &s) == 0 && s.left)
        abort();
    free(text);
    return 0;
}
