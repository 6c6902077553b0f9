/*
 * crypto.c — encryption at rest: key derivation, the value envelope
 * (CRC-32C without a key, AES-256-GCM with one), keyed name hashes and the
 * streaming seal of snapshots. OpenSSL EVP only.
 *
 * Invariants
 *   1. Without a key no OpenSSL cipher runs: an envelope is the body plus a
 *      CRC-32C, and st_env_open returns a pointer into the value (no copy).
 *   2. With a key every seal draws a fresh random 96-bit nonce, and the
 *      AAD is (db tag, record key): a value moved to another key fails to
 *      authenticate. A failed check is -EIO and no plaintext is returned.
 *   3. The master secret (raw key or scrypt output) is never used directly:
 *      the AES key and the MAC key are HMAC-SHA-256(master, label), so the
 *      two uses never share a key.
 *   4. Key material is wiped (OPENSSL_cleanse) when no longer needed.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crc32c.h"
#include "internal.h"
#include "le.h"

#define SCRYPT_LOG2_N 15u
#define SCRYPT_R 8u
#define SCRYPT_P 1u
#define SCRYPT_MAXMEM (256u * 1024u * 1024u)

static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_init(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* HMAC-SHA-256 over the concatenation of n parts. 0 or -EIO. */
static int hmac_parts(const uint8_t key[32], const void *const *parts, const size_t *lens, size_t n,
                      uint8_t out[ST_HASH_LEN])
{
    pthread_once(&hmac_once, hmac_init);
    if (!hmac_alg)
        return -EIO;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
    if (!ctx)
        return -ENOMEM;
    int rc = -EIO;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (!EVP_MAC_init(ctx, key, 32, params))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (lens[i] && !EVP_MAC_update(ctx, parts[i], lens[i]))
            goto out;
    size_t outl = 0;
    if (!EVP_MAC_final(ctx, out, &outl, ST_HASH_LEN) || outl != ST_HASH_LEN)
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

int st_random(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? 0 : -EIO;
}

int st_kdf_new(st_kdf *kdf, bool passphrase)
{
    memset(kdf, 0, sizeof(*kdf));
    kdf->kind = passphrase ? 2 : 1;
    kdf->log2_n = passphrase ? SCRYPT_LOG2_N : 0;
    kdf->r = passphrase ? SCRYPT_R : 0;
    kdf->p = passphrase ? SCRYPT_P : 0;
    return passphrase ? st_random(kdf->salt, sizeof(kdf->salt)) : 0;
}

int st_crypto_derive(st_crypto *c, const st_kdf *kdf, const void *secret, size_t len)
{
    uint8_t master[32];
    int rc = -EINVAL;
    memset(c, 0, sizeof(*c));
    if (kdf->kind == 1) {
        if (len != ST_KEY_LEN)
            goto out;
        memcpy(master, secret, 32);
    } else if (kdf->kind == 2) {
        if (len == 0 || kdf->log2_n < 10 || kdf->log2_n > 22 || kdf->r == 0 || kdf->r > 32 ||
            kdf->p == 0 || kdf->p > 16)
            goto out;
        if (EVP_PBE_scrypt(secret, len, kdf->salt, sizeof(kdf->salt), (uint64_t)1 << kdf->log2_n,
                           kdf->r, kdf->p, SCRYPT_MAXMEM, master, sizeof(master)) != 1) {
            rc = -ENOMEM;
            goto out;
        }
    } else {
        goto out;
    }
    static const char enc_label[] = "vecfs-enc-v1", mac_label[] = "vecfs-mac-v1";
    const void *p1[] = {enc_label};
    size_t l1[] = {sizeof(enc_label) - 1};
    const void *p2[] = {mac_label};
    size_t l2[] = {sizeof(mac_label) - 1};
    rc = hmac_parts(master, p1, l1, 1, c->enc_key);
    if (rc == 0)
        rc = hmac_parts(master, p2, l2, 1, c->mac_key);
    if (rc == 0)
        c->on = true;
out:
    OPENSSL_cleanse(master, sizeof(master));
    if (rc)
        st_crypto_wipe(c);
    return rc;
}

int st_crypto_subkeys(st_crypto *c, const char *label)
{
    static const char enc_part[] = "/enc", mac_part[] = "/mac";
    const void *pe[] = {label, enc_part}, *pm[] = {label, mac_part};
    size_t le[] = {strlen(label), sizeof(enc_part) - 1},
           lm[] = {strlen(label), sizeof(mac_part) - 1};
    st_crypto sub = {.on = c->on};
    int rc = hmac_parts(c->enc_key, pe, le, 2, sub.enc_key);
    if (rc == 0)
        rc = hmac_parts(c->mac_key, pm, lm, 2, sub.mac_key);
    if (rc == 0)
        *c = sub;
    st_crypto_wipe(&sub);
    return rc;
}

void st_crypto_wipe(st_crypto *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

size_t st_env_overhead(const st_crypto *c)
{
    return c->on ? ST_NONCE_LEN + ST_TAG_LEN : 4u;
}

static uint32_t env_crc(uint8_t tag, const void *key, size_t klen, const void *body, size_t blen)
{
    uint32_t crc = vc_crc32c(0, &tag, 1);
    crc = vc_crc32c(crc, key, klen);
    return vc_crc32c(crc, body, blen);
}

/* One-shot GCM with AAD = tag | key. */
static int gcm(const st_crypto *c, bool seal, uint8_t tag, const void *key, size_t klen,
               const uint8_t *nonce, const void *in, size_t n, void *out, uint8_t *mac)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return -ENOMEM;
    int rc = -EIO, outl = 0;
    if (n > (size_t)INT32_MAX)
        goto out;
    if (!EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, c->enc_key, nonce, seal ? 1 : 0))
        goto out;
    if (!EVP_CipherUpdate(ctx, NULL, &outl, &tag, 1))
        goto out;
    if (klen && !EVP_CipherUpdate(ctx, NULL, &outl, key, (int)klen))
        goto out;
    if (n && !EVP_CipherUpdate(ctx, out, &outl, in, (int)n))
        goto out;
    if (!seal && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ST_TAG_LEN, mac))
        goto out;
    uint8_t fin[16];
    if (EVP_CipherFinal_ex(ctx, fin, &outl) != 1)
        goto out;
    if (seal && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ST_TAG_LEN, mac))
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int st_env_seal(const st_crypto *c, uint8_t tag, const void *key, size_t klen, const void *body,
                size_t blen, void *out)
{
    uint8_t *o = out;
    if (!c->on) {
        if (blen)
            memmove(o, body, blen);
        vc_le_put32(o + blen, env_crc(tag, key, klen, o, blen));
        return 0;
    }
    int rc = st_random(o, ST_NONCE_LEN);
    if (rc)
        return rc;
    return gcm(c, true, tag, key, klen, o, body, blen, o + ST_NONCE_LEN, o + ST_NONCE_LEN + blen);
}

int st_env_open(const st_crypto *c, uint8_t tag, const void *key, size_t klen, const void *val,
                size_t vlen, void *scratch, const void **body, size_t *blen)
{
    const uint8_t *v = val;
    if (vlen < st_env_overhead(c))
        return -EIO;
    if (!c->on) {
        size_t n = vlen - 4;
        uint32_t want = vc_le_get32(v + n);
        if (env_crc(tag, key, klen, v, n) != want)
            return -EIO;
        *body = v;
        *blen = n;
        return 0;
    }
    size_t n = vlen - ST_NONCE_LEN - ST_TAG_LEN;
    uint8_t mac[ST_TAG_LEN];
    memcpy(mac, v + ST_NONCE_LEN + n, ST_TAG_LEN);
    int rc = gcm(c, false, tag, key, klen, v, v + ST_NONCE_LEN, n, scratch, mac);
    if (rc) {
        if (n)
            OPENSSL_cleanse(scratch, n);
        return -EIO;
    }
    *body = scratch;
    *blen = n;
    return 0;
}

size_t st_name_key(const st_crypto *c, uint8_t tag, const void *name, size_t len, uint8_t *out)
{
    if (!c->on) {
        memcpy(out, name, len);
        return len;
    }
    const void *parts[] = {&tag, name};
    size_t lens[] = {1, len};
    if (hmac_parts(c->mac_key, parts, lens, 2, out) != 0) {
        /* HMAC cannot fail short of a broken OpenSSL; a zero key would
         * alias names, so make the failure visible instead. */
        memset(out, 0xff, ST_HASH_LEN);
    }
    return ST_HASH_LEN;
}

void st_meta_hash(const st_crypto *c, const char *xname, const void *val, size_t len,
                  uint8_t out[16])
{
    uint8_t h[ST_HASH_LEN];
    static const uint8_t zero = 0;
    const void *parts[] = {xname, &zero, val};
    size_t lens[] = {strlen(xname), 1, len};
    int rc = -EIO;
    if (c->on) {
        rc = hmac_parts(c->mac_key, parts, lens, 3, h);
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned outl = 0;
        if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
            EVP_DigestUpdate(md, parts[0], lens[0]) && EVP_DigestUpdate(md, parts[1], lens[1]) &&
            (!len || EVP_DigestUpdate(md, val, len)) && EVP_DigestFinal_ex(md, h, &outl))
            rc = 0;
        EVP_MD_CTX_free(md);
    }
    if (rc)
        memset(h, 0xff, sizeof(h));
    memcpy(out, h, 16);
}

struct st_stream {
    EVP_CIPHER_CTX *ctx;
    bool seal;
};

static int stream_begin(const st_crypto *c, bool seal, const void *aad, size_t aadlen,
                        const uint8_t *nonce, st_stream **out)
{
    *out = NULL;
    st_stream *s = vc_calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->seal = seal;
    s->ctx = EVP_CIPHER_CTX_new();
    int outl = 0;
    if (!s->ctx || !EVP_CipherInit_ex(s->ctx, EVP_aes_256_gcm(), NULL, c->enc_key, nonce, seal) ||
        !EVP_CipherUpdate(s->ctx, NULL, &outl, aad, (int)aadlen)) {
        st_stream_free(s);
        return -EIO;
    }
    *out = s;
    return 0;
}

int st_stream_seal_begin(const st_crypto *c, const void *aad, size_t aadlen, uint8_t *nonce_out,
                         st_stream **out)
{
    int rc = st_random(nonce_out, ST_NONCE_LEN);
    return rc ? rc : stream_begin(c, true, aad, aadlen, nonce_out, out);
}

int st_stream_open_begin(const st_crypto *c, const void *aad, size_t aadlen, const uint8_t *nonce,
                         st_stream **out)
{
    return stream_begin(c, false, aad, aadlen, nonce, out);
}

int st_stream_update(st_stream *s, const void *in, void *out, size_t n)
{
    const uint8_t *i = in;
    uint8_t *o = out;
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n, outl = 0;
        if (!EVP_CipherUpdate(s->ctx, o, &outl, i, chunk) || outl != chunk)
            return -EIO;
        i += chunk;
        o += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

int st_stream_final(st_stream *s, uint8_t tag[ST_TAG_LEN])
{
    int rc = -EIO, outl = 0;
    uint8_t fin[16];
    if (!s->seal && !EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_SET_TAG, ST_TAG_LEN, tag))
        goto out;
    if (EVP_CipherFinal_ex(s->ctx, fin, &outl) != 1)
        goto out;
    if (s->seal && !EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_GET_TAG, ST_TAG_LEN, tag))
        goto out;
    rc = 0;
out:
    st_stream_free(s);
    return rc;
}

void st_stream_free(st_stream *s)
{
    if (!s)
        return;
    EVP_CIPHER_CTX_free(s->ctx);
    free(s);
}

int st_env_open_buf(const st_crypto *c, uint8_t tag, const void *key, size_t klen, const void *val,
                    size_t vlen, vc_buf *scratch, const void **body, size_t *blen)
{
    if (c->on) {
        vc_buf_reset(scratch);
        int rc = vc_buf_grow(scratch, vlen);
        if (rc < 0)
            return rc;
    }
    return st_env_open(c, tag, key, klen, val, vlen, c->on ? scratch->p : NULL, body, blen);
}
