/*
 * fuzz_store_snapshot.c — st_snap_read (the snapshot file reader: header,
 * lengths, optional AES-GCM, then the engine's deserializer) on arbitrary
 * file contents. The collection id and uuid are taken from the input's
 * header so the fuzzer gets past the identity check; odd first bytes of
 * the uuid field select the sealed (keyed) reader.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static char dir[64];
static st_crypto sealed_key; /* what a store opened with 32 bytes of 0x11 uses */

/* Each input's file is unlinked after it, so the dir is empty at exit. */
static void remove_dir(void)
{
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/vecfs-fuzz-snap-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        atexit(remove_dir);
        uint8_t raw[ST_KEY_LEN];
        memset(raw, 0x11, sizeof(raw));
        st_kdf kdf = {.kind = 1};
        if (st_crypto_derive(&sealed_key, &kdf, raw, sizeof(raw)) != 0)
            abort();
    }
    st_store st;
    memset(&st, 0, sizeof(st));
    st.dir = dir;
    st_coll_rec rec;
    memset(&rec, 0, sizeof(rec));
    rec.coll_id = 1;
    if (size >= 32) {
        memcpy(&rec.coll_id, data + 16, 4);
        memcpy(&rec.uuid, data + 24, 8);
    }
    if (size >= 13 && (data[12] & 1)) {
        st.crypto = sealed_key;
    }
    char path[4096];
    st_snap_path(&st, rec.coll_id, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    vf_hnsw *h = NULL;
    uint64_t gen, txnid;
    /* No LMDB here: a float32 engine snapshot (version 2) cannot get its
     * vectors and stops at -ENOENT; fuzz_engine_snapshot covers its body. */
    if (st_snap_read(&st, &rec, NULL, &h, &gen, &txnid) == 0) {
        if (!h || vf_hnsw_check(h) != 0)
            abort();
    }
    vf_hnsw_free(h);
    unlink(path);
    return 0;
}
