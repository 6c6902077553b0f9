/*
 * test_rados_seal.c — the seal of a RADOS log (store/rados_seal.c) without
 * a cluster: a new log's seal record is taken with its key and refused
 * with another key, with no key, or damaged; a log without a record is
 * refused to a key; a sealed entry opens only as its own seq of its own
 * log (the namespace is part of it) and a blob only under its own id; a
 * passphrase record works with its passphrase alone.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static const uint8_t raw_key[ST_KEY_LEN] = "0123456789abcdef0123456789abcde";

static st_options key_opts(const void *key, size_t len, bool passphrase, char *err, size_t errlen)
{
    st_options o;
    st_options_default(&o);
    o.key = key;
    o.key_len = len;
    o.key_is_passphrase = passphrase;
    o.errbuf = err;
    o.errbuf_len = errlen;
    err[0] = '\0';
    return o;
}

static void test_entries_bound_to_seq_and_log(void **state)
{
    (void)state;
    char err[256];
    st_options o = key_opts(raw_key, ST_KEY_LEN, false, err, sizeof err);
    st_rados_options ro1 = {.pool = "p", .ns = "one"}, ro2 = {.pool = "p", .ns = "two"};
    vc_buf rec = VC_BUF_INIT;
    assert_int_equal(st_seal_record_new(&o, "one", &rec), 0);
    st_rados r1 = {0}, r2 = {0};
    assert_int_equal(st_seal_take(&r1, rec.p, rec.len, &ro1, &o), 0);
    assert_non_null(r1.seal);
    /* The record copied to another namespace does not open there (its key
     * check is bound to the namespace); that namespace's own log does. */
    assert_int_equal(st_seal_take(&r2, rec.p, rec.len, &ro2, &o), -EKEYREJECTED);
    vc_buf rec2 = VC_BUF_INIT;
    assert_int_equal(st_seal_record_new(&o, "two", &rec2), 0);
    assert_int_equal(st_seal_take(&r2, rec2.p, rec2.len, &ro2, &o), 0);
    vc_buf_release(&rec2);
    const char text[] = "an entry's bytes";
    vc_buf b = VC_BUF_INIT, scratch = VC_BUF_INIT;
    vc_buf_append(&b, text, sizeof text);
    assert_int_equal(st_seal_entry(&r1, 7, &b), 0);
    assert_int_equal(b.len, sizeof text + st_seal_overhead(&r1));
    assert_null(memmem(b.p, b.len, "entry", 5));
    const void *body;
    size_t blen;
    assert_int_equal(st_seal_entry_open(&r1, 7, b.p, b.len, &scratch, &body, &blen), 0);
    assert_int_equal(blen, sizeof text);
    assert_memory_equal(body, text, blen);
    assert_int_equal(st_seal_entry_open(&r1, 8, b.p, b.len, &scratch, &body, &blen), -EBADMSG);
    assert_int_equal(st_seal_entry_open(&r2, 7, b.p, b.len, &scratch, &body, &blen), -EBADMSG);
    b.p[3] ^= 1;
    assert_int_equal(st_seal_entry_open(&r1, 7, b.p, b.len, &scratch, &body, &blen), -EBADMSG);
    assert_int_equal(st_seal_entry_open(&r1, 7, b.p, 10, &scratch, &body, &blen), -EBADMSG);
    /* A blob opens in place under its own id only. */
    uint8_t id[ST_LOG_BLOB_ID] = {1, 2, 3}, other[ST_LOG_BLOB_ID] = {1, 2, 4};
    vc_buf_reset(&b);
    vc_buf_append(&b, text, sizeof text);
    assert_int_equal(st_seal_blob(&r1, id, &b), 0);
    vc_buf copy = VC_BUF_INIT;
    vc_buf_append(&copy, b.p, b.len);
    size_t len = copy.len;
    assert_int_equal(st_seal_blob_open(&r1, other, copy.p, &len), -EBADMSG);
    len = b.len;
    assert_int_equal(st_seal_blob_open(&r1, id, b.p, &len), 0);
    assert_int_equal(len, sizeof text);
    assert_memory_equal(b.p, text, len);
    st_seal_free(&r1);
    st_seal_free(&r2);
    assert_null(r1.seal);
    vc_buf_release(&b);
    vc_buf_release(&copy);
    vc_buf_release(&scratch);
    vc_buf_release(&rec);
}

static void test_refusals(void **state)
{
    (void)state;
    char err[256];
    st_options o = key_opts(raw_key, ST_KEY_LEN, false, err, sizeof err);
    st_rados_options ro = {.pool = "p"};
    vc_buf rec = VC_BUF_INIT;
    assert_int_equal(st_seal_record_new(&o, NULL, &rec), 0);
    st_rados r = {0};
    uint8_t wrong[ST_KEY_LEN];
    memcpy(wrong, raw_key, ST_KEY_LEN);
    wrong[0] ^= 1;
    st_options w = key_opts(wrong, ST_KEY_LEN, false, err, sizeof err);
    assert_int_equal(st_seal_take(&r, rec.p, rec.len, &ro, &w), -EKEYREJECTED);
    assert_non_null(strstr(err, "wrong key for the log in pool 'p'"));
    assert_null(r.seal);
    st_options none = key_opts(NULL, 0, false, err, sizeof err);
    assert_int_equal(st_seal_take(&r, rec.p, rec.len, &ro, &none), -EKEYREJECTED);
    assert_non_null(strstr(err, "is sealed: a key is needed"));
    assert_int_equal(st_seal_take(&r, NULL, 0, &ro, &o), -EKEYREJECTED);
    assert_non_null(strstr(err, "is not sealed but a key was given"));
    assert_int_equal(st_seal_take(&r, NULL, 0, &ro, &none), 0);
    assert_null(r.seal);
    st_options pass = key_opts("a passphrase", 12, true, err, sizeof err);
    assert_int_equal(st_seal_take(&r, rec.p, rec.len, &ro, &pass), -EKEYREJECTED);
    assert_non_null(strstr(err, "raw 32-byte key"));
    for (size_t i = 0; i < rec.len; i += 7) {
        rec.p[i] ^= 0x20;
        err[0] = '\0';
        int rc = st_seal_take(&r, rec.p, rec.len, &ro, &o);
        assert_true(rc == -EIO || rc == -EKEYREJECTED);
        assert_null(r.seal);
        rec.p[i] ^= 0x20;
    }
    assert_int_equal(st_seal_take(&r, rec.p, rec.len - 1, &ro, &o), -EIO);
    assert_non_null(strstr(err, "seal record of the log in pool 'p' is damaged"));
    vc_buf_release(&rec);
}

static void test_passphrase(void **state)
{
    (void)state;
    char err[256];
    st_options o = key_opts("correct horse", 13, true, err, sizeof err);
    st_rados_options ro = {.pool = "p", .ns = "n"};
    vc_buf rec = VC_BUF_INIT;
    assert_int_equal(st_seal_record_new(&o, "n", &rec), 0);
    st_rados r = {0};
    assert_int_equal(st_seal_take(&r, rec.p, rec.len, &ro, &o), 0);
    assert_non_null(r.seal);
    st_seal_free(&r);
    st_options w = key_opts("correct horsf", 13, true, err, sizeof err);
    assert_int_equal(st_seal_take(&r, rec.p, rec.len, &ro, &w), -EKEYREJECTED);
    vc_buf_release(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries_bound_to_seq_and_log),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_passphrase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
