/*
 * test_rados_entry.c — the RADOS log entry codec (store/rados_entry.c) for
 * the operations added with the collection and batch kinds: each kind
 * encoded from the store's arguments decodes to the same arguments; an
 * .fvecs row's content is not stored twice and still reads back as the
 * vector's bytes; the layout's canonical rules (a copy of the vector's
 * bytes written as content, a BLOB beside another operation, a config out
 * of range) are refused. No cluster: the bytes only.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"
#include "internal.h"
#include "le.h"

/* e encoded, then decoded into *out (which the caller frees). */
static void round_trip(const st_log_op *ops, size_t nops, st_log_entry *out)
{
    st_log_entry e = {
        .node = 42, .written = {1700000000, 123}, .nops = nops, .ops = (st_log_op *)ops};
    vc_buf b = VC_BUF_INIT;
    assert_int_equal(st_log_entry_encode(&e, &b), 0);
    assert_int_equal(st_log_entry_decode(b.p, b.len, out), 0);
    assert_int_equal(out->nops, nops);
    assert_int_equal(out->node, 42);
    vc_buf_release(&b);
}

static void test_collection_kinds(void **state)
{
    (void)state;
    st_config cfg;
    st_config_default(&cfg);
    cfg.dim = 8;
    cfg.ef_search = 77;
    cfg.quantization = ST_QUANT_INT8;
    cfg.target_recall = 0.9123456789;
    st_log_op ops[] = {
        {.kind = ST_LOG_COLL_RENAME, .coll = "a", .to = "b"},
        {.kind = ST_LOG_COLL_ATTR, .coll = "b", .attr = {.mode = 0750}, .mask = ST_SET_MODE},
        {.kind = ST_LOG_COLL_ATTR,
         .coll = "b",
         .flags = ST_LOG_CFG_MTIME,
         .cfg_mtime = {1500000000, 7}},
        {.kind = ST_LOG_COLL_CONFIG, .coll = "b", .cfg = cfg},
    };
    st_log_entry d;
    round_trip(ops, 4, &d);
    assert_string_equal(d.ops[0].coll, "a");
    assert_string_equal(d.ops[0].to, "b");
    assert_int_equal(d.ops[1].mask, ST_SET_MODE);
    assert_int_equal(d.ops[1].attr.mode, 0750);
    assert_int_equal(d.ops[1].flags, 0);
    assert_int_equal(d.ops[2].flags, ST_LOG_CFG_MTIME);
    assert_int_equal(d.ops[2].cfg_mtime.tv_sec, 1500000000);
    assert_int_equal(d.ops[2].cfg_mtime.tv_nsec, 7);
    assert_int_equal(d.ops[3].flags, 0);
    assert_memory_equal(&d.ops[3].cfg.target_recall, &cfg.target_recall, sizeof(double));
    d.ops[3].cfg.target_recall = cfg.target_recall;
    assert_int_equal(d.ops[3].cfg.dim, 8);
    assert_int_equal(d.ops[3].cfg.ef_search, 77);
    assert_int_equal(d.ops[3].cfg.quantization, ST_QUANT_INT8);
    assert_int_equal(d.ops[3].cfg.rerank, cfg.rerank);
    assert_int_equal(d.ops[3].cfg.m, cfg.m);
    st_log_entry_free(&d);
}

static void test_batch(void **state)
{
    (void)state;
    float v0[3] = {1, 2, 3}, v1[3] = {-1, 0.5f, 4};
    uint8_t raw[12];
    for (int i = 0; i < 3; i++)
        vc_le_putf(raw + 4 * i, v0[i]);
    const char *keys[] = {"user.a", "user.b"};
    const void *vals[] = {"x", ""};
    const size_t lens[] = {1, 0};
    st_log_row rows[] = {
        {.name = "r0.f32",
         .data = raw,
         .len = sizeof(raw),
         .vec = v0,
         .mask = ST_SET_MODE | ST_PUT_NEW,
         .attr = {.mode = 0640}},
        {.name = "r1",
         .data = "-1 0.5 4\n",
         .len = 9,
         .vec = v1,
         .nmeta = 2,
         .meta_keys = keys,
         .meta_vals = vals,
         .meta_lens = lens},
    };
    st_log_op op = {.kind = ST_LOG_BATCH, .coll = "c", .dim = 3, .rows = rows, .nrows = 2};
    st_log_entry d;
    round_trip(&op, 1, &d);
    const st_log_op *o = &d.ops[0];
    assert_int_equal(o->nrows, 2);
    assert_int_equal(o->dim, 3);
    assert_string_equal(o->rows[0].name, "r0.f32");
    /* The content is the vector's bytes, read back from the vector. */
    assert_int_equal(o->rows[0].len, sizeof(raw));
    assert_memory_equal(o->rows[0].data, raw, sizeof(raw));
    /* ST_PUT_NEW is the writer's condition, not the entry's. */
    assert_int_equal(o->rows[0].mask, ST_SET_MODE);
    assert_int_equal(o->rows[0].nmeta, 0);
    assert_memory_equal(o->rows[1].vec, v1, sizeof(v1));
    assert_int_equal(o->rows[1].len, 9);
    assert_memory_equal(o->rows[1].data, "-1 0.5 4\n", 9);
    assert_int_equal(o->rows[1].nmeta, 2);
    assert_string_equal(o->rows[1].meta_keys[1], "user.b");
    assert_int_equal(o->rows[1].meta_lens[0], 1);
    assert_memory_equal(o->rows[1].meta_vals[0], "x", 1);
    assert_int_equal(o->rows[1].meta_lens[1], 0);
    st_log_entry_free(&d);
}

static void test_blob_ref(void **state)
{
    (void)state;
    st_log_op op = {.kind = ST_LOG_BLOB, .blob_len = 5u << 20, .blob_crc = 0xdeadbeef};
    for (unsigned i = 0; i < ST_LOG_BLOB_ID; i++)
        op.blob_id[i] = (uint8_t)(i * 7);
    st_log_entry d;
    round_trip(&op, 1, &d);
    assert_int_equal(d.ops[0].kind, ST_LOG_BLOB);
    assert_memory_equal(d.ops[0].blob_id, op.blob_id, ST_LOG_BLOB_ID);
    assert_int_equal(d.ops[0].blob_len, 5u << 20);
    assert_int_equal(d.ops[0].blob_crc, 0xdeadbeef);
    assert_null(d.ops[0].coll);
    st_log_entry_free(&d);
}

/* Encodes ops, lets edit change the bytes (before the CRC, which is
 * then recomputed) and returns what the decoder says. */
static int decode_edited(const st_log_op *ops, size_t nops, void (*edit)(vc_buf *b))
{
    st_log_entry e = {.node = 1, .nops = nops, .ops = (st_log_op *)ops};
    vc_buf b = VC_BUF_INIT;
    assert_int_equal(st_log_entry_encode(&e, &b), 0);
    vc_buf_setlen(&b, b.len - 4);
    if (edit)
        edit(&b);
    vc_buf_append_le32(&b, vc_crc32c(0, b.p, b.len));
    st_log_entry d;
    int rc = st_log_entry_decode(b.p, b.len, &d);
    if (rc == 0)
        st_log_entry_free(&d);
    vc_buf_release(&b);
    return rc;
}

/* The row flag "content is the vector" of the first row cleared, and the
 * vector's 12 bytes written as the content: the same batch, not canonical. */
static void copy_vector_as_content(vc_buf *b)
{
    /* Layout after the op header: ... u32 flags, attr (52), 3 x f32,
     * u32 nmeta. The flags are the 4 bytes after "r0\0". */
    uint8_t *p = memmem(b->p, b->len, "r0", 3);
    assert_non_null(p);
    uint8_t *flags = p + 3;
    assert_int_equal(vc_le_get32(flags), 1);
    vc_le_put32(flags, 0);
    uint8_t *vec = flags + 4 + 52;
    uint8_t copy[12], tail[4]; /* the appends below may move the bytes */
    memcpy(copy, vec, 12);
    memcpy(tail, vec + 12, 4); /* nmeta */
    vc_buf_setlen(b, (size_t)(vec + 12 - (uint8_t *)b->p));
    vc_buf_append_le32(b, 12);
    vc_buf_append(b, copy, 12);
    vc_buf_append(b, tail, 4);
}

static void test_canonical(void **state)
{
    (void)state;
    float v[3] = {1, 2, 3};
    uint8_t raw[12];
    for (int i = 0; i < 3; i++)
        vc_le_putf(raw + 4 * i, v[i]);
    st_log_row row = {.name = "r0", .data = raw, .len = 12, .vec = v};
    st_log_op batch = {.kind = ST_LOG_BATCH, .coll = "c", .dim = 3, .rows = &row, .nrows = 1};
    assert_int_equal(decode_edited(&batch, 1, NULL), 0);
    assert_int_equal(decode_edited(&batch, 1, copy_vector_as_content), -EPROTO);
    /* A reference stands alone. */
    st_log_op two[] = {{.kind = ST_LOG_BLOB, .blob_len = 1},
                       {.kind = ST_LOG_COLL_DROP, .coll = "c"}};
    assert_int_equal(decode_edited(two, 1, NULL), 0);
    assert_int_equal(decode_edited(two, 2, NULL), -EPROTO);
    /* A config the store would refuse. */
    st_log_op cfg = {.kind = ST_LOG_COLL_CONFIG, .coll = "c"};
    st_config_default(&cfg.cfg);
    cfg.cfg.m = 1;
    assert_int_equal(decode_edited(&cfg, 1, NULL), -EPROTO);
    /* An empty batch is never written. */
    batch.nrows = 0;
    assert_int_equal(decode_edited(&batch, 1, NULL), -EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collection_kinds),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_blob_ref),
        cmocka_unit_test(test_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
