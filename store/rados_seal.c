/*
 * rados_seal.c — the RADOS log sealed with --key-file (docs/scale-out.md
 * §3, docs/security.md): the pool's seal record in `vecfs.head`, and the
 * AES-256-GCM seal of every log entry and every blob under a key that
 * every node derives from the same key file.
 *
 * The seal record (omap key `seal` of vecfs.head, set in the operation
 * that creates the log, so a log is sealed or not from its first entry):
 *     "VFSL" u16 version(1) u16 flags(0) | u8 kdf kind, u8 log2_n,
 *     u32 r, u32 p, 16-byte salt (as the FORMAT record's) | 16-byte log
 *     id (random) | key check: the text KEYCHECK_TEXT sealed (below) |
 *     u32 CRC-32C of every byte before it
 * A log without the key is not sealed (every log made before this).
 *
 * A sealed item is ciphertext | 12-byte nonce | 16-byte tag (the nonce and
 * tag after the bytes, so a buffer is sealed in place by growing it). Its
 * AAD is one kind byte, the log's bind (HMAC of the log id and the
 * namespace under the seal's MAC key), then: an entry's seq (u64), a
 * blob's id, nothing for the key check. So an entry does not open under
 * another seq or in another log (another pool's or namespace's has another
 * id), and a blob does not open under another id.
 *
 * Invariants
 *   1. The seal's keys are the pool key's (the kdf of the record, the
 *      secret of --key-file) passed through st_crypto_subkeys: never the
 *      keys of any node's local store.
 *   2. Every seal draws a fresh random nonce; an open that fails its tag
 *      returns -EBADMSG and no plaintext.
 *   3. A node takes a log only if its key state matches the record: no
 *      key and no record, or a key that opens the record's key check.
 *      Every refusal says why in opt's errbuf, before anything is written.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "crc32c.h"
#include "internal.h"
#include "le.h"

#define SEAL_MAGIC "VFSL"
#define SEAL_VERSION 1u
#define SEAL_ID_LEN 16u
#define SEAL_LABEL "vecfs-rados-log-v1"
#define KEYCHECK_TEXT "vecfs pool key check v1"
#define KEYCHECK_LEN (sizeof(KEYCHECK_TEXT) - 1)
#define SEAL_OVERHEAD (ST_NONCE_LEN + ST_TAG_LEN)
/* magic, version, flags, kdf, log id, key check, CRC. */
#define SEAL_REC_LEN                                                                               \
    (4u + 2u + 2u + 1u + 1u + 4u + 4u + ST_SALT_LEN + SEAL_ID_LEN + KEYCHECK_LEN + SEAL_OVERHEAD + \
     4u)

enum { AAD_KEYCHECK = 'K', AAD_ENTRY = 'E', AAD_BLOB = 'B' };

struct st_rados_seal {
    st_crypto c;
    uint8_t bind[ST_HASH_LEN];
};

/* A seal record's fields. */
typedef struct seal_rec {
    st_kdf kdf;
    uint8_t id[SEAL_ID_LEN];
    const uint8_t *keycheck; /* KEYCHECK_LEN + SEAL_OVERHEAD sealed bytes */
} seal_rec;

/* The AAD of one item: kind, bind, then what it is bound to. */
static size_t aad_make(const st_rados_seal *s, uint8_t kind, const void *what, size_t wlen,
                       uint8_t out[1 + ST_HASH_LEN + ST_LOG_BLOB_ID])
{
    out[0] = kind;
    memcpy(out + 1, s->bind, ST_HASH_LEN);
    if (wlen)
        memcpy(out + 1 + ST_HASH_LEN, what, wlen);
    return 1 + ST_HASH_LEN + wlen;
}

/* An entry's AAD: bound to its seq. */
static size_t entry_aad(const st_rados_seal *s, uint64_t seq,
                        uint8_t out[1 + ST_HASH_LEN + ST_LOG_BLOB_ID])
{
    uint8_t s8[8];
    vc_le_put64(s8, seq);
    return aad_make(s, AAD_ENTRY, s8, 8, out);
}

/* Seals the n bytes at p in place and writes nonce and tag after them
 * (p has room for n + SEAL_OVERHEAD). */
static int seal_at(const st_rados_seal *s, const uint8_t *aad, size_t aadlen, uint8_t *p, size_t n)
{
    st_stream *st = NULL; /* NULL still when the nonce cannot be drawn */
    int rc = st_stream_seal_begin(&s->c, aad, aadlen, p + n, &st);
    if (rc == 0)
        rc = st_stream_update(st, p, p, n);
    if (rc == 0)
        return st_stream_final(st, p + n + ST_NONCE_LEN);
    st_stream_free(st);
    return rc;
}

/* Opens the len sealed bytes at in into out (may be in): *n = the
 * plaintext's length. -EBADMSG when too short or the tag fails. */
static int open_at(const st_rados_seal *s, const uint8_t *aad, size_t aadlen, const uint8_t *in,
                   size_t len, uint8_t *out, size_t *n)
{
    if (len < SEAL_OVERHEAD)
        return -EBADMSG;
    size_t body = len - SEAL_OVERHEAD;
    uint8_t tag[ST_TAG_LEN];
    memcpy(tag, in + body + ST_NONCE_LEN, ST_TAG_LEN);
    st_stream *st;
    int rc = st_stream_open_begin(&s->c, aad, aadlen, in + body, &st);
    if (rc)
        return rc;
    rc = st_stream_update(st, in, out, body);
    if (rc) {
        st_stream_free(st);
        return rc;
    }
    if (st_stream_final(st, tag) != 0) {
        OPENSSL_cleanse(out, body);
        return -EBADMSG;
    }
    *n = body;
    return 0;
}

/* Grows b by the overhead and seals its bytes in place. */
static int seal_buf(const st_rados_seal *s, const uint8_t *aad, size_t aadlen, vc_buf *b)
{
    size_t n = b->len;
    int rc = vc_buf_grow(b, SEAL_OVERHEAD);
    if (rc)
        return rc;
    rc = seal_at(s, aad, aadlen, (uint8_t *)b->p, n);
    if (rc == 0)
        vc_buf_setlen(b, n + SEAL_OVERHEAD);
    return rc;
}

size_t st_seal_overhead(const st_rados *r)
{
    return r->seal ? SEAL_OVERHEAD : 0;
}

int st_seal_entry(const st_rados *r, uint64_t seq, vc_buf *b)
{
    if (!r->seal)
        return 0;
    uint8_t aad[1 + ST_HASH_LEN + ST_LOG_BLOB_ID];
    return seal_buf(r->seal, aad, entry_aad(r->seal, seq, aad), b);
}

int st_seal_entry_open(const st_rados *r, uint64_t seq, const void *v, size_t len, vc_buf *scratch,
                       const void **body, size_t *blen)
{
    if (!r->seal) {
        *body = v;
        *blen = len;
        return 0;
    }
    vc_buf_reset(scratch);
    int rc = vc_buf_grow(scratch, len);
    if (rc)
        return rc;
    uint8_t aad[1 + ST_HASH_LEN + ST_LOG_BLOB_ID];
    rc = open_at(r->seal, aad, entry_aad(r->seal, seq, aad), v, len, (uint8_t *)scratch->p, blen);
    if (rc == 0)
        *body = scratch->p;
    return rc;
}

int st_seal_blob(const st_rados *r, const uint8_t id[ST_LOG_BLOB_ID], vc_buf *b)
{
    if (!r->seal)
        return 0;
    uint8_t aad[1 + ST_HASH_LEN + ST_LOG_BLOB_ID];
    return seal_buf(r->seal, aad, aad_make(r->seal, AAD_BLOB, id, ST_LOG_BLOB_ID, aad), b);
}

int st_seal_blob_open(const st_rados *r, const uint8_t id[ST_LOG_BLOB_ID], void *p, size_t *len)
{
    if (!r->seal)
        return 0;
    uint8_t aad[1 + ST_HASH_LEN + ST_LOG_BLOB_ID];
    return open_at(r->seal, aad, aad_make(r->seal, AAD_BLOB, id, ST_LOG_BLOB_ID, aad), p, *len, p,
                   len);
}

void st_seal_free(st_rados *r)
{
    if (!r->seal)
        return;
    OPENSSL_cleanse(r->seal, sizeof(*r->seal));
    free(r->seal);
    r->seal = NULL;
}

/* ------------------------------------------------------------------ */
/* The seal record                                                      */
/* ------------------------------------------------------------------ */

/* Derives the seal's keys and bind for the log rec describes. */
static int seal_derive(const seal_rec *rec, const st_options *opt, const char *ns,
                       st_rados_seal **out)
{
    st_rados_seal *s = vc_calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int rc = st_crypto_derive(&s->c, &rec->kdf, opt->key, opt->key_len);
    if (rc == 0)
        rc = st_crypto_subkeys(&s->c, SEAL_LABEL);
    if (rc == 0) {
        /* The bind is a name key over id | namespace: the same on every
         * node of this log, different for every other log. */
        size_t nl = ns ? strlen(ns) : 0;
        uint8_t *what = vc_malloc(SEAL_ID_LEN + nl + 1);
        if (!what) {
            rc = -ENOMEM;
        } else {
            memcpy(what, rec->id, SEAL_ID_LEN);
            if (nl)
                memcpy(what + SEAL_ID_LEN, ns, nl);
            st_name_key(&s->c, AAD_KEYCHECK, what, SEAL_ID_LEN + nl, s->bind);
            free(what);
        }
    }
    if (rc) {
        OPENSSL_cleanse(s, sizeof(*s));
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int st_seal_record_new(const st_options *opt, const char *ns, vc_buf *out)
{
    vc_buf_reset(out);
    seal_rec rec;
    int rc = st_kdf_new(&rec.kdf, opt->key_is_passphrase);
    if (rc == 0)
        rc = st_random(rec.id, SEAL_ID_LEN);
    st_rados_seal *s = NULL;
    if (rc == 0)
        rc = seal_derive(&rec, opt, ns, &s);
    if (rc)
        return rc;
    vc_buf_append(out, SEAL_MAGIC, 4);
    vc_buf_append_le16(out, SEAL_VERSION);
    vc_buf_append_le16(out, 0);
    vc_buf_append_u8(out, rec.kdf.kind);
    vc_buf_append_u8(out, rec.kdf.log2_n);
    vc_buf_append_le32(out, rec.kdf.r);
    vc_buf_append_le32(out, rec.kdf.p);
    vc_buf_append(out, rec.kdf.salt, ST_SALT_LEN);
    vc_buf_append(out, rec.id, SEAL_ID_LEN);
    size_t at = out->len;
    vc_buf_append(out, KEYCHECK_TEXT, KEYCHECK_LEN);
    rc = out->err ? out->err : vc_buf_grow(out, SEAL_OVERHEAD);
    uint8_t aad[1 + ST_HASH_LEN + ST_LOG_BLOB_ID];
    size_t alen = aad_make(s, AAD_KEYCHECK, NULL, 0, aad);
    if (rc == 0)
        rc = seal_at(s, aad, alen, (uint8_t *)out->p + at, KEYCHECK_LEN);
    if (rc == 0) {
        vc_buf_setlen(out, at + KEYCHECK_LEN + SEAL_OVERHEAD);
        rc = vc_buf_append_le32(out, vc_crc32c(0, out->p, out->len));
    }
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
    return rc;
}

/* Parses a seal record: 0 or -EBADMSG. */
static int rec_parse(const void *p, size_t len, seal_rec *rec)
{
    const uint8_t *b = p;
    if (len != SEAL_REC_LEN || memcmp(b, SEAL_MAGIC, 4) != 0 ||
        vc_crc32c(0, b, len - 4) != vc_le_get32(b + len - 4))
        return -EBADMSG;
    st_rd rd = {.p = b, .len = len - 4, .off = 4};
    if (st_rd_u16(&rd) != SEAL_VERSION || st_rd_u16(&rd) != 0)
        return -EBADMSG;
    rec->kdf.kind = st_rd_u8(&rd);
    rec->kdf.log2_n = st_rd_u8(&rd);
    rec->kdf.r = st_rd_u32(&rd);
    rec->kdf.p = st_rd_u32(&rd);
    memcpy(rec->kdf.salt, st_rd_bytes(&rd, ST_SALT_LEN), ST_SALT_LEN);
    memcpy(rec->id, st_rd_bytes(&rd, SEAL_ID_LEN), SEAL_ID_LEN);
    rec->keycheck = st_rd_bytes(&rd, KEYCHECK_LEN + SEAL_OVERHEAD);
    return rd.err || rd.off != rd.len || (rec->kdf.kind != 1 && rec->kdf.kind != 2) ? -EBADMSG : 0;
}

int st_seal_take(st_rados *r, const void *raw, size_t len, const st_rados_options *ro,
                 const st_options *opt)
{
    bool key = opt && opt->key;
    seal_rec rec;
    if (len == 0 && !key)
        return 0;
    if (len == 0) {
        st_errbuf_set(opt, "the log in pool '%s' is not sealed but a key was given (--key-file)",
                      ro->pool);
        return -EKEYREJECTED;
    }
    if (!key) {
        st_errbuf_set(opt, "the log in pool '%s' is sealed: a key is needed (--key-file)",
                      ro->pool);
        return -EKEYREJECTED;
    }
    if (rec_parse(raw, len, &rec) != 0) {
        st_errbuf_set(opt, "the seal record of the log in pool '%s' is damaged", ro->pool);
        return -EIO;
    }
    int rc = rec.kdf.kind == (opt->key_is_passphrase ? 2 : 1) ? 0 : -EKEYREJECTED;
    st_rados_seal *s = NULL;
    if (rc == 0)
        rc = seal_derive(&rec, opt, ro->ns, &s);
    uint8_t aad[1 + ST_HASH_LEN + ST_LOG_BLOB_ID], text[KEYCHECK_LEN + SEAL_OVERHEAD];
    size_t n = 0;
    if (rc == 0)
        rc = open_at(s, aad, aad_make(s, AAD_KEYCHECK, NULL, 0, aad), rec.keycheck,
                     KEYCHECK_LEN + SEAL_OVERHEAD, text, &n);
    if (rc == 0 && (n != KEYCHECK_LEN || memcmp(text, KEYCHECK_TEXT, n) != 0))
        rc = -EBADMSG;
    if (rc == 0) {
        st_seal_free(r);
        r->seal = s;
        return 0;
    }
    if (s)
        OPENSSL_cleanse(s, sizeof(*s));
    free(s);
    if (rc == -ENOMEM)
        return rc;
    st_errbuf_set(opt, "wrong key for the log in pool '%s' (%s)", ro->pool,
                  rec.kdf.kind == 2 ? "it was sealed with a passphrase"
                                    : "it was sealed with a raw 32-byte key");
    return -EKEYREJECTED;
}
