/*
 * test_store_content.c — contents stored once (store/content.c): a content
 * that ends with its vector keeps only the bytes before it (CONTENT_VEC),
 * reads back byte for byte (plain and encrypted, after a rename, an
 * overwrite, a reopen), and anything else keeps its bytes; the FORMAT
 * record of a format 1 store is marked 2 at a writable open, left alone
 * read-only.
 */
#include "store_testutil.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

#define DIM 16

static st_store *open_store(const char *dir, const st_options *o)
{
    st_store *st = NULL;
    assert_int_equal(st_store_open(dir, o, &st), 0);
    return st;
}

/* The type byte of the CONTENT record of vector name in collection "c". */
static uint8_t content_type(st_store *st, const char *name)
{
    st_attr a;
    assert_int_equal(st_vec_stat(st, "c", name, &a), 0);
    uint8_t key[8];
    st_key_id((uint32_t)(a.ino >> 32), a.id, key);
    MDB_txn *txn;
    assert_int_equal(st_txn_read(st, &txn), 0);
    vc_buf scratch = VC_BUF_INIT;
    const void *body;
    size_t blen;
    assert_int_equal(st_get(st, txn, ST_DB_CONTENT, key, 8, &body, &blen, &scratch), 0);
    assert_true(blen >= 4);
    uint8_t t = ((const uint8_t *)body)[2];
    mdb_txn_abort(txn);
    vc_buf_release(&scratch);
    return t;
}

/* The content of name reads back as exactly want (n bytes), whole and in
 * pieces. */
static void reads_back(st_store *st, const char *name, const void *want, size_t n)
{
    void *data;
    size_t len;
    assert_int_equal(st_vec_get(st, "c", name, &data, &len, NULL), 0);
    assert_int_equal(len, n);
    assert_memory_equal(data, want, n);
    free(data);
    uint8_t part[7];
    size_t got;
    for (size_t off = 0; off < n; off += 5) {
        assert_int_equal(st_vec_pread(st, "c", name, part, sizeof(part), off, &got), 0);
        assert_int_equal(got, n - off < sizeof(part) ? n - off : sizeof(part));
        assert_memory_equal(part, (const uint8_t *)want + off, got);
    }
}

typedef struct sample {
    const char *name;
    uint8_t bytes[512];
    size_t len;
    uint8_t type; /* the CONTENT record kind it must be stored as */
} sample;

/* Contents of every kind for vector v: raw float32, a .fvecs row (i32 dim
 * first), an .npy-like header, text, float32 with one bit of the last
 * value changed (so not the vector), and a prefix longer than allowed. */
static size_t samples_make(const float *v, sample *s)
{
    size_t vb = DIM * sizeof(float), n = 0;
    s[n] = (sample){.name = "raw.f32", .type = ST_REC_CONTENT_VEC};
    memcpy(s[n].bytes, v, vb);
    s[n++].len = vb;
    s[n] = (sample){.name = "row.fvecs", .type = ST_REC_CONTENT_VEC};
    int32_t d = DIM;
    memcpy(s[n].bytes, &d, 4);
    memcpy(s[n].bytes + 4, v, vb);
    s[n++].len = 4 + vb;
    s[n] = (sample){.name = "one.npy", .type = ST_REC_CONTENT_VEC};
    const char hdr[] =
        "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (16,), }";
    memcpy(s[n].bytes, hdr, sizeof(hdr) - 1);
    memset(s[n].bytes + sizeof(hdr) - 1, ' ', 127 - (sizeof(hdr) - 1));
    s[n].bytes[127] = '\n';
    memcpy(s[n].bytes + 128, v, vb);
    s[n++].len = 128 + vb;
    s[n] = (sample){.name = "text", .type = ST_REC_CONTENT};
    for (int i = 0; i < DIM; i++)
        s[n].len += (size_t)snprintf((char *)s[n].bytes + s[n].len, 512 - s[n].len, "%s%.9g",
                                     i ? " " : "", (double)v[i]);
    n++;
    s[n] = (sample){.name = "flipped.f32", .type = ST_REC_CONTENT};
    memcpy(s[n].bytes, v, vb);
    s[n].bytes[vb - 1] ^= 0x80; /* the sign of the last value */
    s[n++].len = vb;
    s[n] = (sample){.name = "short", .type = ST_REC_CONTENT};
    memcpy(s[n].bytes, v, vb - 4);
    s[n++].len = vb - 4;
    return n;
}

static void content_kinds(bool encrypted)
{
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    uint8_t key[ST_KEY_LEN];
    for (unsigned i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 5 + 3);
    if (encrypted) {
        o.key = key;
        o.key_len = sizeof(key);
    }
    st_store *st = open_store(dir, &o);
    st_config cfg;
    st_config_default(&cfg);
    cfg.dim = DIM;
    cfg.metric = VF_METRIC_L2;
    assert_int_equal(st_coll_create(st, "c", NULL, &cfg), 0);
    uint64_t seed = 11;
    float v[DIM], w[DIM];
    tu_vec(&seed, v, DIM);
    tu_vec(&seed, w, DIM);
    sample s[8];
    size_t n = samples_make(v, s);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(st_vec_put(st, "c", s[i].name, s[i].bytes, s[i].len, v, DIM, NULL, 0), 0);
        assert_int_equal(content_type(st, s[i].name), s[i].type);
        reads_back(st, s[i].name, s[i].bytes, s[i].len);
    }
    /* A prefix longer than ST_CONTENT_PREFIX_MAX keeps its bytes. */
    size_t big_len = ST_CONTENT_PREFIX_MAX + 1 + sizeof(v);
    uint8_t *big = malloc(big_len);
    memset(big, 'x', big_len - sizeof(v));
    memcpy(big + big_len - sizeof(v), v, sizeof(v));
    assert_int_equal(st_vec_put(st, "c", "big", big, big_len, v, DIM, NULL, 0), 0);
    assert_int_equal(content_type(st, "big"), ST_REC_CONTENT);
    reads_back(st, "big", big, big_len);
    /* Several contents in one read handle: each pointer is the right one
     * when it is read (the handle's buffer is reused). */
    st_read *rd;
    assert_int_equal(st_read_begin(st, &rd), 0);
    for (size_t i = 0; i < n; i++) {
        const void *p;
        size_t len;
        assert_int_equal(st_read_content(rd, "c", s[i].name, &p, &len, NULL), 0);
        assert_int_equal(len, s[i].len);
        assert_memory_equal(p, s[i].bytes, len);
    }
    st_read_end(rd);
    /* A rename rewrites the SLOT with the vector it held: same bytes. */
    assert_int_equal(st_vec_rename(st, "c", "row.fvecs", "moved.fvecs", 0), 0);
    reads_back(st, "moved.fvecs", s[1].bytes, s[1].len);
    /* Overwrites with another vector, both ways round. */
    sample t[8];
    samples_make(w, t);
    assert_int_equal(st_vec_put(st, "c", "raw.f32", t[0].bytes, t[0].len, w, DIM, NULL, 0), 0);
    reads_back(st, "raw.f32", t[0].bytes, t[0].len);
    assert_int_equal(st_vec_put(st, "c", "text", t[0].bytes, t[0].len, w, DIM, NULL, 0), 0);
    assert_int_equal(content_type(st, "text"), ST_REC_CONTENT_VEC);
    assert_int_equal(st_vec_put(st, "c", "one.npy", t[3].bytes, t[3].len, w, DIM, NULL, 0), 0);
    assert_int_equal(content_type(st, "one.npy"), ST_REC_CONTENT);
    reads_back(st, "one.npy", t[3].bytes, t[3].len);
    /* A stat whose three times differ and whose ids need several varint
     * bytes (VEC records of version 2 leave out only what they can). */
    st_attr set = {.mode = 0604, .uid = 70000, .gid = UINT32_MAX - 1};
    set.atime = (struct timespec){.tv_sec = -3, .tv_nsec = 999999999};
    set.mtime = (struct timespec){.tv_sec = 1764580000, .tv_nsec = 1};
    set.ctime = (struct timespec){.tv_sec = INT64_MAX / 2, .tv_nsec = 0};
    assert_int_equal(st_vec_setattr(st, "c", "moved.fvecs", &set, ST_SET_ALL), 0);
    assert_int_equal(st_store_close(st), 0);

    /* After a reopen; and `vecfs check` finds nothing wrong. */
    st = open_store(dir, &o);
    reads_back(st, "raw.f32", t[0].bytes, t[0].len);
    reads_back(st, "text", t[0].bytes, t[0].len);
    reads_back(st, "moved.fvecs", s[1].bytes, s[1].len);
    st_attr got;
    assert_int_equal(st_vec_stat(st, "c", "moved.fvecs", &got), 0);
    assert_int_equal(got.mode & 07777, set.mode);
    assert_int_equal(got.uid, set.uid);
    assert_int_equal(got.gid, set.gid);
    assert_int_equal(got.size, s[1].len);
    assert_true(got.atime.tv_sec == set.atime.tv_sec && got.atime.tv_nsec == set.atime.tv_nsec);
    assert_true(got.mtime.tv_sec == set.mtime.tv_sec && got.mtime.tv_nsec == set.mtime.tv_nsec);
    assert_true(got.ctime.tv_sec == set.ctime.tv_sec && got.ctime.tv_nsec == set.ctime.tv_nsec);
    reads_back(st, "big", big, big_len);
    reads_back(st, "one.npy", t[3].bytes, t[3].len);
    for (size_t i = 4; i < n; i++)
        reads_back(st, s[i].name, s[i].bytes, s[i].len);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, stderr), 0);
    free(big);
    tu_rmdir(dir);
}

static void test_content_plain(void **state)
{
    (void)state;
    content_kinds(false);
}

static void test_content_encrypted(void **state)
{
    (void)state;
    content_kinds(true);
}

typedef struct listing {
    char names[2100][16];
    size_t n;
} listing;

static int list_cb(void *ctx, const char *name, const st_attr *attr, uint64_t next)
{
    (void)attr;
    (void)next;
    listing *l = ctx;
    if (l->n < 2100)
        snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
    l->n++;
    return 0;
}

/* Adds rows "r-<i>.f32" for i in [from, to) (raw float32 content, vector
 * i in every value) to a batch of collection "c" and commits it. */
static void batch_rows(st_store *st, int from, int to, bool repeat_first)
{
    st_batch *b;
    assert_int_equal(st_batch_begin(st, "c", &b), 0);
    for (int i = from; i < to; i++) {
        float v[DIM];
        for (int j = 0; j < DIM; j++)
            v[j] = (float)i + (float)j / 100.0f;
        char name[16];
        snprintf(name, sizeof(name), "r-%d.f32", i);
        assert_int_equal(st_batch_put(b, name, v, sizeof(v), v, DIM, NULL, 0, 0, NULL, NULL, NULL),
                         0);
        if (repeat_first && i == from) {
            v[0] = -1;
            assert_int_equal(
                st_batch_put(b, name, v, sizeof(v), v, DIM, NULL, 0, 0, NULL, NULL, NULL), 0);
        }
    }
    assert_int_equal(st_batch_commit(b), 0);
}

/* A batch of distinct names writes its VEC records in key order (full
 * pages); the listing keeps the rows' order, every name finds its own
 * record, and a batch with a repeated name (the later row wins) still
 * works. */
static void test_batch_key_order(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    st_config cfg;
    st_config_default(&cfg);
    cfg.dim = DIM;
    cfg.metric = VF_METRIC_L2;
    assert_int_equal(st_coll_create(st, "c", NULL, &cfg), 0);
    batch_rows(st, 0, 2000, false);
    batch_rows(st, 2000, 2050, true);
    listing *l = calloc(1, sizeof(*l));
    assert_int_equal(st_vec_list(st, "c", 0, list_cb, l), 0);
    assert_int_equal(l->n, 2050);
    for (int i = 0; i < 2050; i++) {
        char name[16];
        snprintf(name, sizeof(name), "r-%d.f32", i);
        assert_string_equal(l->names[i], name);
        float v[DIM], got[DIM];
        uint32_t dim;
        for (int j = 0; j < DIM; j++)
            v[j] = (float)i + (float)j / 100.0f;
        if (i == 2000)
            v[0] = -1;
        assert_int_equal(st_vec_vector(st, "c", name, got, DIM, &dim), 0);
        assert_memory_equal(got, v, sizeof(v));
        reads_back(st, name, v, sizeof(v));
    }
    free(l);
    /* The 2,000 VEC records of the first batch fill their leaf pages:
     * at least 90 % of what the page holds (inserted in the rows' order,
     * "r-10" before "r-2", they filled about half). */
    MDB_txn *txn;
    assert_int_equal(st_txn_read(st, &txn), 0);
    MDB_stat ms;
    assert_int_equal(mdb_stat(txn, st->db[ST_DB_VECS], &ms), 0);
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(txn, st->db[ST_DB_VECS], &cur), 0);
    MDB_val k, v;
    size_t bytes = 0;
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
        bytes += 8 + k.mv_size + v.mv_size + 2; /* node header, key, value, pointer */
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    double fill = (double)bytes / ((double)ms.ms_leaf_pages * (ms.ms_psize - 16));
    printf("VECS: %zu entries in %zu leaf pages, fill %.2f\n", (size_t)ms.ms_entries,
           (size_t)ms.ms_leaf_pages, fill);
    assert_true(fill >= 0.9);
    assert_int_equal(st_store_close(st), 0);
    assert_int_equal(st_check(dir, &o, stderr), 0);
    tu_rmdir(dir);
}

/* Rewrites the FORMAT record of the open store st with version ver. */
static void format_set(st_store *st, uint32_t ver)
{
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
    st_format_rec fr = {.version = ver};
    vc_buf b = VC_BUF_INIT;
    st_rec_format_enc(&b, &fr);
    st_crypto plain = {0};
    MDB_val k = {6, "format"}, v = {b.len + 4, NULL};
    assert_int_equal(mdb_put(txn, st->db[ST_DB_META], &k, &v, MDB_RESERVE), 0);
    assert_int_equal(st_env_seal(&plain, ST_DB_META, "format", 6, b.p, b.len, v.mv_data), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    vc_buf_release(&b);
}

/* The FORMAT version of the open store st. */
static uint32_t format_get(st_store *st)
{
    MDB_txn *txn;
    assert_int_equal(st_txn_read(st, &txn), 0);
    MDB_val k = {6, "format"}, v;
    assert_int_equal(mdb_get(txn, st->db[ST_DB_META], &k, &v), 0);
    st_format_rec fr;
    assert_int_equal(st_rec_format_dec(v.mv_data, v.mv_size - 4, &fr), 0);
    mdb_txn_abort(txn);
    return fr.version;
}

static void test_format_upgrade(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    st_options o;
    tu_opts(&o);
    st_store *st = open_store(dir, &o);
    assert_int_equal(format_get(st), ST_FORMAT_VERSION);
    format_set(st, 1);
    assert_int_equal(st_store_close(st), 0);
    /* Read-only: read, not changed. */
    st_options ro = o;
    ro.read_only = true;
    st = open_store(dir, &ro);
    assert_int_equal(format_get(st), 1);
    assert_int_equal(st_store_close(st), 0);
    /* Writable: marked as the current version. */
    st = open_store(dir, &o);
    assert_int_equal(format_get(st), ST_FORMAT_VERSION);
    /* One past the current version is refused. */
    format_set(st, ST_FORMAT_VERSION + 1);
    assert_int_equal(st_store_close(st), 0);
    char err[256] = "";
    o.errbuf = err;
    o.errbuf_len = sizeof(err);
    assert_int_equal(st_store_open(dir, &o, &st), -EPROTO);
    assert_non_null(strstr(err, "this build reads versions 1 to 3"));
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_plain),
        cmocka_unit_test(test_content_encrypted),
        cmocka_unit_test(test_batch_key_order),
        cmocka_unit_test(test_format_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
