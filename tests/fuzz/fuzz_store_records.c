/*
 * fuzz_store_records.c — every decoder of store/record.c (and
 * st_content_dec, which tells CONTENT from CONTENT_VEC) and the envelope
 * opener (CRC and AES-GCM) on arbitrary bytes. The first byte picks the
 * decoder; the rest is the body. Decoders must reject or accept without
 * reading outside the buffer, and an accepted record must re-encode to the
 * same bytes (the layout is canonical; a version 1 or 2 COLL record
 * re-encodes as version 3: its body plus the .config mtime (version 1)
 * plus the default rerank factor; a version 1 CONTENT as version 2, without
 * its length; a VEC record is checked by a round trip, see case 3).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void same(const vc_buf *b, const uint8_t *p, size_t n)
{
    if (b->err)
        return;
    if (b->len != n || memcmp(b->p, p, n) != 0)
        abort();
}

/* A blob body (CONTENT, ORDER, KEYCHECK) re-encodes as version 2: a
 * version 1 body without its u64 length, the version byte 2. */
static void blob_same(const vc_buf *b, const uint8_t *p, size_t n)
{
    if (b->err || p[3] != 1) {
        same(b, p, n);
        return;
    }
    if (b->len != n - 8 || memcmp(b->p, p, 3) != 0 || b->p[3] != 2 ||
        memcmp(b->p + 4, p + 12, n - 12) != 0)
        abort();
}

static bool ts_same(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* Encodes r and decodes it back (its own name as the key's when
 * name_in_key); any difference aborts. */
static void vec_round_trip(const st_vec_rec *r, bool name_in_key)
{
    vc_buf b = VC_BUF_INIT;
    st_rec_vec_enc(&b, r, name_in_key);
    st_vec_rec o;
    if (!b.err) {
        if (st_rec_vec_dec(b.p, b.len, name_in_key ? r->name : NULL, r->name_len, &o) != 0)
            abort();
        if (o.id != r->id || o.seq != r->seq || o.mode != r->mode || o.uid != r->uid ||
            o.gid != r->gid || !ts_same(&o.atime, &r->atime) || !ts_same(&o.mtime, &r->mtime) ||
            !ts_same(&o.ctime, &r->ctime) || o.size != r->size || o.name_len != r->name_len ||
            memcmp(o.name, r->name, r->name_len + 1) != 0)
            abort();
    }
    vc_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t which = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    vc_buf b = VC_BUF_INIT;
    switch (which % 10) {
    case 0: {
        st_format_rec r;
        if (st_rec_format_dec(p, n, &r) == 0) {
            st_rec_format_enc(&b, &r);
            same(&b, p, n);
        }
        break;
    }
    case 1: {
        uint64_t v;
        if (st_rec_counter_dec(p, n, &v) == 0) {
            st_rec_counter_enc(&b, v);
            same(&b, p, n);
        }
        break;
    }
    case 2: {
        st_coll_rec r;
        if (st_rec_coll_dec(p, n, &r) == 0) {
            st_rec_coll_enc(&b, &r);
            if (p[3] < 3) {
                /* Versions 1 and 2 are read, never written: version 2's
                 * body is version 3's without the trailing rerank (decoded
                 * as the default), version 1's also without the .config
                 * mtime (decoded as mtime). */
                size_t grown = (p[3] == 1 ? 12 : 0) + 4;
                uint32_t rerank = 0;
                if (!b.err)
                    memcpy(&rerank, b.p + b.len - 4, 4);
                if (!b.err && (b.len != n + grown || b.p[3] != 3 || memcmp(b.p, p, 3) != 0 ||
                               memcmp(b.p + 4, p + 4, n - 4) != 0 || rerank != VF_RERANK_DEFAULT))
                    abort();
            } else {
                same(&b, p, n);
            }
        }
        break;
    }
    case 3: {
        /* A VEC body is decoded as if its key named "key"; what it decodes
         * to must survive a round trip with the name in the body and with
         * the name in the key (fields left out only when they are equal to
         * atime, so one record has several valid bodies). */
        st_vec_rec r;
        if (st_rec_vec_dec(p, n, "key", 3, &r) == 0) {
            vec_round_trip(&r, false);
            vec_round_trip(&r, true);
        }
        break;
    }
    case 4: {
        const char *name;
        size_t nl;
        const uint8_t *vec;
        uint32_t dim;
        if (st_rec_slot_dec(p, n, &name, &nl, &vec, &dim) == 0) {
            float *f = malloc((size_t)dim * 4);
            if (!f)
                break;
            memcpy(f, vec, (size_t)dim * 4);
            st_rec_slot_enc(&b, name, nl, f, dim);
            free(f);
            same(&b, p, n);
        }
        break;
    }
    case 5: {
        const uint8_t *out;
        size_t len;
        if (st_rec_blob_dec(p, n, ST_REC_CONTENT, &out, &len) == 0) {
            st_rec_blob_enc(&b, ST_REC_CONTENT, out, len);
            blob_same(&b, p, n);
        }
        break;
    }
    case 6: {
        const char *xn;
        size_t xl, vl;
        const uint8_t *val;
        if (st_rec_xattr_dec(p, n, &xn, &xl, &val, &vl) == 0) {
            st_rec_xattr_enc(&b, xn, xl, val, vl);
            same(&b, p, n);
        }
        break;
    }
    case 7: {
        st_crypto plain = {0};
        const void *body;
        size_t blen;
        (void)st_env_open(&plain, ST_DB_VECS, "k", 1, p, n, NULL, &body, &blen);
        break;
    }
    case 8: {
        /* Either kind of CONTENT body (content.c). */
        st_content_rec r;
        if (st_content_dec(p, n, &r) == 0) {
            if (r.of_vec)
                st_rec_content_vec_enc(&b, r.bytes, r.len, r.dim);
            else
                st_rec_blob_enc(&b, ST_REC_CONTENT, r.bytes, r.len);
            if (r.of_vec)
                same(&b, p, n);
            else
                blob_same(&b, p, n);
        }
        break;
    }
    default: {
        st_crypto c;
        memset(&c, 0, sizeof(c));
        c.on = true;
        memset(c.enc_key, 0x42, sizeof(c.enc_key));
        uint8_t *scratch = malloc(n ? n : 1);
        const void *body;
        size_t blen;
        if (scratch && st_env_open(&c, ST_DB_SLOTS, "key", 3, p, n, scratch, &body, &blen) == 0)
            abort(); /* random bytes never authenticate */
        free(scratch);
        break;
    }
    }
    vc_buf_release(&b);
    return 0;
}
