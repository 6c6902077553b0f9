/*
 * format.c — the META database: the FORMAT record that says what a
 * DATADIR holds, the KEYCHECK record that proves a key, and the counters
 * (next collection id).
 *
 * Invariants
 *   1. The FORMAT record exists in every initialized store and says whether
 *      it is encrypted; it is never sealed (it is needed before the key),
 *      only checksummed.
 *   2. An encrypted store also has a KEYCHECK record, sealed with the key:
 *      st_format_check accepts a key only if it opens that record to the
 *      known text.
 *   3. A store of a format version this build does not read is refused
 *      with -EPROTO (never read as damage); every refusal writes its reason
 *      to opt.errbuf. An older version it reads is marked current at a
 *      writable open (format_upgrade), in the open's transaction.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "internal.h"

static const char keycheck_text[] = "vecfs key check v1";

int st_meta_counter_put(st_store *st, MDB_txn *txn, const char *key, uint64_t v)
{
    vc_buf b = VC_BUF_INIT;
    st_rec_counter_enc(&b, v);
    int rc = b.err ? b.err : st_put(st, txn, ST_DB_META, key, strlen(key), b.p, b.len);
    vc_buf_release(&b);
    return rc;
}

int st_meta_counter_get(st_store *st, MDB_txn *txn, const char *key, uint64_t *v)
{
    vc_buf scratch = VC_BUF_INIT;
    const void *body;
    size_t blen;
    int rc = st_get(st, txn, ST_DB_META, key, strlen(key), &body, &blen, &scratch);
    if (rc == 0)
        rc = st_rec_counter_dec(body, blen, v);
    vc_buf_release(&scratch);
    return rc;
}

/* Writes the FORMAT record f (checksummed, never sealed). */
static int format_put(st_store *st, MDB_txn *txn, const st_format_rec *f)
{
    vc_buf b = VC_BUF_INIT;
    st_rec_format_enc(&b, f);
    st_crypto plain = {0};
    MDB_val k = {6, (void *)"format"};
    MDB_val v = {b.len + st_env_overhead(&plain), NULL};
    int rc = b.err;
    if (rc == 0)
        rc = st_mdb_err(mdb_put(txn, st->db[ST_DB_META], &k, &v, MDB_RESERVE));
    if (rc == 0)
        rc = st_env_seal(&plain, ST_DB_META, "format", 6, b.p, b.len, v.mv_data);
    vc_buf_release(&b);
    return rc;
}

/* A writable open of an older format marks the store with the current
 * version: its records stay as they are (this build reads them), but the
 * records it writes from now on may be of kinds the older build cannot
 * read, which must then refuse the store rather than call it damaged. */
static int format_upgrade(st_store *st, MDB_txn *txn, st_format_rec *f)
{
    if (f->version == ST_FORMAT_VERSION || st->opt.read_only)
        return 0;
    uint32_t from = f->version;
    f->version = ST_FORMAT_VERSION;
    int rc = format_put(st, txn, f);
    if (rc == 0)
        st_log(st, ST_LOG_INFO, "%s: store format %" PRIu32 " marked as format %u", st->dir, from,
               ST_FORMAT_VERSION);
    return rc;
}

int st_format_init(st_store *st, MDB_txn *txn)
{
    st_format_rec f = {.version = ST_FORMAT_VERSION, .flags = st->opt.key ? 1u : 0u};
    int rc = 0;
    if (st->opt.key) {
        rc = st_kdf_new(&f.kdf, st->opt.key_is_passphrase);
        if (rc == 0)
            rc = st_crypto_derive(&st->crypto, &f.kdf, st->opt.key, st->opt.key_len);
        if (rc)
            return rc;
    }
    rc = format_put(st, txn, &f);
    if (rc == 0 && st->crypto.on) {
        vc_buf kc = VC_BUF_INIT;
        st_rec_blob_enc(&kc, ST_REC_KEYCHECK, keycheck_text, sizeof(keycheck_text) - 1);
        rc = kc.err ? kc.err : st_put(st, txn, ST_DB_META, "keycheck", 8, kc.p, kc.len);
        vc_buf_release(&kc);
    }
    if (rc == 0)
        rc = st_meta_counter_put(st, txn, "nextcoll", 1);
    return rc;
}

int st_format_check(st_store *st, MDB_txn *txn, const MDB_val *fv)
{
    st_crypto plain = {0};
    const void *body;
    size_t blen;
    st_format_rec f;
    int rc =
        st_env_open(&plain, ST_DB_META, "format", 6, fv->mv_data, fv->mv_size, NULL, &body, &blen);
    if (rc == 0)
        rc = st_rec_format_dec(body, blen, &f);
    if (rc == -EPROTO) {
        uint32_t ver = 0;
        if (blen >= 8)
            memcpy(&ver, (const uint8_t *)body + 4, 4);
        st_errbuf_set(&st->opt,
                      "%s holds a vecfs store of format version %" PRIu32
                      ", this build reads versions %u to %u",
                      st->dir, ver, ST_FORMAT_VERSION_MIN, ST_FORMAT_VERSION);
        return -EPROTO;
    }
    if (rc) {
        st_errbuf_set(&st->opt, "%s: the store's format record is damaged", st->dir);
        return -EIO;
    }
    bool enc = f.flags & 1u;
    if (enc && !st->opt.key) {
        st_errbuf_set(&st->opt, "%s is encrypted: a key is needed (--key-file)", st->dir);
        return -EKEYREJECTED;
    }
    if (!enc && st->opt.key) {
        st_errbuf_set(&st->opt, "%s is not encrypted but a key was given", st->dir);
        return -EKEYREJECTED;
    }
    if (!enc)
        return format_upgrade(st, txn, &f);
    if (f.kdf.kind == 1 && st->opt.key_is_passphrase) {
        st_errbuf_set(&st->opt, "wrong key for %s (it was created with a raw 32-byte key)",
                      st->dir);
        return -EKEYREJECTED;
    }
    if (f.kdf.kind == 2 && !st->opt.key_is_passphrase) {
        st_errbuf_set(&st->opt, "wrong key for %s (it was created with a passphrase)", st->dir);
        return -EKEYREJECTED;
    }
    rc = st_crypto_derive(&st->crypto, &f.kdf, st->opt.key, st->opt.key_len);
    if (rc) {
        st_errbuf_set(&st->opt, "%s: cannot derive the key (%s)", st->dir, strerror(-rc));
        return rc == -EINVAL ? -EKEYREJECTED : rc;
    }
    vc_buf scratch = VC_BUF_INIT;
    const uint8_t *text;
    size_t tlen;
    rc = st_get(st, txn, ST_DB_META, "keycheck", 8, &body, &blen, &scratch);
    if (rc == 0)
        rc = st_rec_blob_dec(body, blen, ST_REC_KEYCHECK, &text, &tlen);
    if (rc == 0 && (tlen != sizeof(keycheck_text) - 1 || memcmp(text, keycheck_text, tlen) != 0))
        rc = -EIO;
    vc_buf_release(&scratch);
    if (rc) {
        st_errbuf_set(&st->opt, "wrong key for %s", st->dir);
        st_crypto_wipe(&st->crypto);
        return -EKEYREJECTED;
    }
    return format_upgrade(st, txn, &f);
}
