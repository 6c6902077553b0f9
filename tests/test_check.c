/*
 * test_check.c — cmocka tests of st_check (store/check.c). A store damaged
 * in each way a pass looks for gets that pass's problem line and a
 * non-zero result; an LMDB read error or an allocation failure at any
 * point of a check stops one pass with one "stopped" line and a non-zero
 * result, never a clean report.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "store_testutil.h"

#define DIM 4

/* A damage about to be done: the open store, its write txn, and the id of
 * collection "c". */
typedef struct dmg {
    st_store *st;
    MDB_txn *txn;
    uint32_t cid;
    const char *dir;
} dmg;

/* Puts vector name = v into "c" of st. */
static void put(st_store *st, const char *name, float v0)
{
    float v[DIM] = {v0, 1.0f, 2.0f, 3.0f};
    char text[64];
    int n = snprintf(text, sizeof(text), "%g 1 2 3", (double)v0);
    assert_int_equal(st_vec_put(st, "c", name, text, (size_t)n, v, DIM, NULL, 0), 0);
}

/* A store in dir with collection "c" (l2, DIM): vectors a, b, c and e,
 * user.k on a, a snapshot, then d put and e deleted, so the op log holds
 * two entries the check replays. Returned open: closing it would take a
 * snapshot and empty the op log. */
static st_store *build_store(const char *dir, const st_options *o)
{
    st_store *st = NULL;
    assert_int_equal(st_store_open(dir, o, &st), 0);
    st_config cfg;
    st_config_default(&cfg);
    cfg.metric = VF_METRIC_L2;
    cfg.dim = DIM;
    st_attr a = {.mode = 0755};
    assert_int_equal(st_coll_create(st, "c", &a, &cfg), 0);
    put(st, "a", 0.0f);
    put(st, "b", 10.0f);
    put(st, "c", 20.0f);
    put(st, "e", 30.0f);
    assert_int_equal(st_xattr_set(st, "c", "a", "user.k", "v", 1, 0), 0);
    assert_int_equal(st_store_snapshot(st, "c"), 0);
    put(st, "d", 40.0f);
    assert_int_equal(st_vec_delete(st, "c", "e"), 0);
    assert_int_equal(st_store_sync(st), 0);
    return st;
}

/* Runs st_check on dir; returns its result and the report in *rep
 * (malloc'd). */
static int run_check(const char *dir, const st_options *o, char **rep)
{
    size_t len = 0;
    FILE *f = open_memstream(rep, &len);
    assert_non_null(f);
    int rc = st_check(dir, o, f);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Damage helpers: raw LMDB writes in d->txn                            */
/* ------------------------------------------------------------------ */

/* The VEC key of vector name: collection id, name key. Returns its length. */
static size_t vec_key(dmg *d, const char *name, uint8_t *k)
{
    st_be32(k, d->cid);
    return 4 + st_name_key(&d->st->crypto, ST_DB_VECS, name, strlen(name), k + 4);
}

static void vec_rec(dmg *d, const char *name, st_vec_rec *r)
{
    uint8_t k[4 + ST_NAME_MAX];
    size_t kl = vec_key(d, name, k);
    vc_buf s = VC_BUF_INIT;
    const void *body;
    size_t blen;
    assert_int_equal(st_get(d->st, d->txn, ST_DB_VECS, k, kl, &body, &blen, &s), 0);
    const char *kn = d->st->crypto.on ? NULL : name;
    assert_int_equal(st_rec_vec_dec(body, blen, kn, strlen(name), r), 0);
    vc_buf_release(&s);
}

/* The SLOT / CONTENT key of vector name: collection id, engine id. */
static void id_key(dmg *d, const char *name, uint8_t k[8])
{
    st_vec_rec r;
    vec_rec(d, name, &r);
    st_be32(k, d->cid);
    st_be32(k + 4, r.id);
}

/* The ORDER key of vector name: collection id, sequence number. */
static void order_key(dmg *d, const char *name, uint8_t k[12])
{
    st_vec_rec r;
    vec_rec(d, name, &r);
    st_be32(k, d->cid);
    st_be64(k + 4, r.seq);
}

/* Copies the first key of collection "c" in db into k; returns its length. */
static size_t first_key(dmg *d, int db, uint8_t *k, MDB_val *val)
{
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(d->txn, d->st->db[db], &cur), 0);
    uint8_t pre[4];
    st_be32(pre, d->cid);
    MDB_val mk = {4, pre};
    assert_int_equal(mdb_cursor_get(cur, &mk, val, MDB_SET_RANGE), 0);
    assert_memory_equal(mk.mv_data, pre, 4);
    memcpy(k, mk.mv_data, mk.mv_size);
    mdb_cursor_close(cur);
    return mk.mv_size;
}

/* Flips one bit in the middle of the value of db/k. */
static void flip(dmg *d, int db, const void *k, size_t kl)
{
    MDB_val mk = {kl, (void *)k}, v;
    assert_int_equal(mdb_get(d->txn, d->st->db[db], &mk, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size / 2] ^= 1;
    MDB_val nv = {v.mv_size, copy};
    assert_int_equal(mdb_put(d->txn, d->st->db[db], &mk, &nv, 0), 0);
    free(copy);
}

static void del(dmg *d, int db, const void *k, size_t kl)
{
    MDB_val mk = {kl, (void *)k};
    assert_int_equal(mdb_del(d->txn, d->st->db[db], &mk, NULL), 0);
}

/* Seals body b at db/k (a record that opens but says the wrong thing). */
static void put_body(dmg *d, int db, const void *k, size_t kl, vc_buf *b)
{
    assert_int_equal(b->err, 0);
    assert_int_equal(st_put(d->st, d->txn, db, k, kl, b->p, b->len), 0);
    vc_buf_release(b);
}

/* ------------------------------------------------------------------ */
/* One damage per thing a pass checks                                   */
/* ------------------------------------------------------------------ */

static void dmg_vec_flip(dmg *d)
{
    uint8_t k[4 + ST_NAME_MAX];
    flip(d, ST_DB_VECS, k, vec_key(d, "a", k));
}

static void dmg_vec_key(dmg *d)
{
    st_vec_rec r;
    vec_rec(d, "a", &r);
    uint8_t k[4 + ST_NAME_MAX];
    del(d, ST_DB_VECS, k, vec_key(d, "a", k));
    vc_buf b = VC_BUF_INIT;
    st_rec_vec_enc(&b, &r, false); /* its name in the body, not its key's */
    put_body(d, ST_DB_VECS, k, vec_key(d, "zz", k), &b);
}

static void dmg_vec_id(dmg *d)
{
    st_vec_rec r;
    vec_rec(d, "a", &r);
    r.id = 1000;
    uint8_t k[4 + ST_NAME_MAX];
    vc_buf b = VC_BUF_INIT;
    st_rec_vec_enc(&b, &r, !d->st->crypto.on);
    put_body(d, ST_DB_VECS, k, vec_key(d, "a", k), &b);
}

/* Record "a" moved to key "zz" with its name left to the key: it reads as
 * a vector "zz" whose slot names "a". */
static void dmg_vec_key_named(dmg *d)
{
    st_vec_rec r;
    vec_rec(d, "a", &r);
    uint8_t k[4 + ST_NAME_MAX];
    del(d, ST_DB_VECS, k, vec_key(d, "a", k));
    vc_buf b = VC_BUF_INIT;
    st_rec_vec_enc(&b, &r, true);
    put_body(d, ST_DB_VECS, k, vec_key(d, "zz", k), &b);
}

/* A VEC body (version 2) whose flags byte has a bit no build writes; a
 * valid checksum, so only the decoder can find it. */
static void dmg_vec_flags(dmg *d)
{
    st_vec_rec r;
    vec_rec(d, "a", &r);
    r.id = r.seq = r.mode = r.uid = r.gid = 1; /* one varint byte each */
    uint8_t k[4 + ST_NAME_MAX];
    vc_buf b = VC_BUF_INIT;
    st_rec_vec_enc(&b, &r, true);
    assert_int_equal(b.p[3], 2); /* version 2 */
    b.p[4 + 5] |= 0x80;          /* header, five varints, flags */
    put_body(d, ST_DB_VECS, k, vec_key(d, "a", k), &b);
}

static void dmg_slot_missing(dmg *d)
{
    uint8_t k[8];
    id_key(d, "a", k);
    del(d, ST_DB_SLOTS, k, 8);
}

/* Seals a SLOT record for vector of under name, holding (v0, 1, 2, 3). */
static void put_slot(dmg *d, const char *of, const char *name, float v0)
{
    uint8_t k[8];
    id_key(d, of, k);
    float v[DIM] = {v0, 1, 2, 3};
    vc_buf b = VC_BUF_INIT;
    st_rec_slot_enc(&b, name, strlen(name), v, DIM);
    put_body(d, ST_DB_SLOTS, k, 8, &b);
}

static void dmg_slot_name(dmg *d)
{
    put_slot(d, "a", "x", 0.0f);
}

static void dmg_slot_vector(dmg *d)
{
    put_slot(d, "a", "a", 5.0f);
}

static void dmg_slot_flip(dmg *d)
{
    uint8_t k[8];
    id_key(d, "b", k);
    flip(d, ST_DB_SLOTS, k, 8);
}

static void dmg_content_size(dmg *d)
{
    uint8_t k[8];
    id_key(d, "a", k);
    vc_buf b = VC_BUF_INIT;
    st_rec_blob_enc(&b, ST_REC_CONTENT, "abc", 3);
    put_body(d, ST_DB_CONTENT, k, 8, &b);
}

/* Content stored as the SLOT's vector (content.c), but of another dim. */
static void dmg_content_vec_dim(dmg *d)
{
    uint8_t k[8];
    id_key(d, "a", k);
    vc_buf b = VC_BUF_INIT;
    st_rec_content_vec_enc(&b, "", 0, DIM + 1);
    put_body(d, ST_DB_CONTENT, k, 8, &b);
}

/* Content stored as a prefix and the SLOT's vector, whose length is not
 * the VEC record's size. */
static void dmg_content_vec_size(dmg *d)
{
    uint8_t k[8];
    id_key(d, "b", k);
    vc_buf b = VC_BUF_INIT;
    st_rec_content_vec_enc(&b, "xyz", 3, DIM);
    put_body(d, ST_DB_CONTENT, k, 8, &b);
}

static void dmg_content_flip(dmg *d)
{
    uint8_t k[8];
    id_key(d, "b", k);
    flip(d, ST_DB_CONTENT, k, 8);
}

static void dmg_order_missing(dmg *d)
{
    uint8_t k[12];
    order_key(d, "a", k);
    del(d, ST_DB_ORDER, k, 12);
}

static void dmg_order_flip(dmg *d)
{
    uint8_t k[12];
    order_key(d, "b", k);
    flip(d, ST_DB_ORDER, k, 12);
}

static void dmg_xattr_flip(dmg *d)
{
    uint8_t k[8 + ST_NAME_MAX];
    MDB_val v;
    flip(d, ST_DB_XATTRS, k, first_key(d, ST_DB_XATTRS, k, &v));
}

static void dmg_xattr_unused(dmg *d)
{
    uint8_t k[8 + ST_NAME_MAX];
    MDB_val v;
    size_t kl = first_key(d, ST_DB_XATTRS, k, &v);
    st_be32(k + 4, 77);
    vc_buf b = VC_BUF_INIT;
    st_rec_xattr_enc(&b, "trusted.x", 9, "v", 1);
    put_body(d, ST_DB_XATTRS, k, kl, &b);
}

static void dmg_midx_missing(dmg *d)
{
    uint8_t k[20];
    MDB_val v;
    assert_int_equal(first_key(d, ST_DB_MIDX, k, &v), 20);
    MDB_val mk = {20, k};
    assert_int_equal(mdb_del(d->txn, d->st->db[ST_DB_MIDX], &mk, &v), 0);
}

static void dmg_midx_extra(dmg *d)
{
    uint8_t k[20], id[4];
    MDB_val v;
    assert_int_equal(first_key(d, ST_DB_MIDX, k, &v), 20);
    st_be32(id, 9);
    MDB_val mk = {20, k}, mv = {4, id};
    assert_int_equal(mdb_put(d->txn, d->st->db[ST_DB_MIDX], &mk, &mv, 0), 0);
}

/* The ordered index (store/vidx.c) of user.k = "v": one entry. */
static void dmg_vidx_missing(dmg *d)
{
    uint8_t k[511];
    MDB_val v;
    MDB_val mk = {first_key(d, ST_DB_VIDX, k, &v), k};
    assert_int_equal(mdb_del(d->txn, d->st->db[ST_DB_VIDX], &mk, &v), 0);
}

static void dmg_vidx_extra(dmg *d)
{
    uint8_t k[511], id[4];
    MDB_val v;
    MDB_val mk = {first_key(d, ST_DB_VIDX, k, &v), k}, mv = {4, id};
    st_be32(id, 9);
    assert_int_equal(mdb_put(d->txn, d->st->db[ST_DB_VIDX], &mk, &mv, 0), 0);
}

static void dmg_free_used(dmg *d)
{
    uint8_t k[8];
    id_key(d, "a", k);
    MDB_val mk = {8, k}, mv = {0, ""};
    assert_int_equal(mdb_put(d->txn, d->st->db[ST_DB_FREE], &mk, &mv, 0), 0);
}

static void dmg_oplog_flip(dmg *d)
{
    uint8_t k[8];
    MDB_val v;
    flip(d, ST_DB_DIRTY, k, first_key(d, ST_DB_DIRTY, k, &v));
}

/* The op log names d, whose SLOT now holds another dim: replay fails. */
static void dmg_oplog_replay(dmg *d)
{
    uint8_t k[8];
    id_key(d, "d", k);
    float v[DIM - 1] = {1, 2, 3};
    vc_buf b = VC_BUF_INIT;
    st_rec_slot_enc(&b, "d", 1, v, DIM - 1);
    put_body(d, ST_DB_SLOTS, k, 8, &b);
}

static void coll_rec(dmg *d, st_coll_rec *r, uint8_t *k, size_t *kl)
{
    *kl = st_name_key(&d->st->crypto, ST_DB_COLLS, "c", 1, k);
    vc_buf s = VC_BUF_INIT;
    const void *body;
    size_t blen;
    assert_int_equal(st_get(d->st, d->txn, ST_DB_COLLS, k, *kl, &body, &blen, &s), 0);
    assert_int_equal(st_rec_coll_dec(body, blen, r), 0);
    vc_buf_release(&s);
}

static void dmg_counters(dmg *d)
{
    st_coll_rec r;
    uint8_t k[ST_NAME_MAX];
    size_t kl;
    coll_rec(d, &r, k, &kl);
    r.count += 5;
    vc_buf b = VC_BUF_INIT;
    st_rec_coll_enc(&b, &r);
    put_body(d, ST_DB_COLLS, k, kl, &b);
}

/* Vector b's four records go, the op log is not told: the snapshot holds
 * one more vector than the records. */
static void dmg_vec_gone(dmg *d)
{
    uint8_t ik[8], ok[12], vk[4 + ST_NAME_MAX];
    id_key(d, "b", ik);
    order_key(d, "b", ok);
    size_t vkl = vec_key(d, "b", vk);
    del(d, ST_DB_SLOTS, ik, 8);
    del(d, ST_DB_CONTENT, ik, 8);
    del(d, ST_DB_ORDER, ok, 12);
    del(d, ST_DB_VECS, vk, vkl);
}

static void dmg_snap_flip(dmg *d)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/snap-%" PRIu32 ".vfs", d->dir, d->cid);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    unsigned char byte;
    off_t at = sb.st_size / 2;
    assert_int_equal(pread(fd, &byte, 1, at), 1);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, at), 1);
    close(fd);
}

static const struct damage {
    const char *what;
    void (*apply)(dmg *d);
    const char *expect; /* a problem line holds it */
} damages[] = {
    {"VEC record flipped", dmg_vec_flip, "vector record fails its checksum (vecs/"},
    {"VEC record under another key", dmg_vec_key, "vector 'a' is stored under another name's key"},
    {"VEC id out of range", dmg_vec_id, "vector 'a': id 1000 out of range or used twice"},
    {"VEC record under another key, its name the key's", dmg_vec_key_named,
     "vector 'zz': slot 0 disagrees (name or dim)"},
    {"VEC record of unknown flags", dmg_vec_flags, "vector record fails its checksum (vecs/"},
    {"SLOT missing", dmg_slot_missing, "vector 'a': slot 0 missing"},
    {"SLOT of another name", dmg_slot_name, "vector 'a': slot 0 disagrees (name or dim)"},
    {"SLOT of other values", dmg_slot_vector, "snapshot differs from the records for 1 vectors"},
    {"SLOT flipped", dmg_slot_flip, "slot record fails its check (slots/"},
    {"CONTENT of another size", dmg_content_size, "vector 'a': content is 3 bytes, record says"},
    {"CONTENT_VEC of another dim", dmg_content_vec_dim,
     "vector 'a': content stored as a vector of dim 5, collection has 4"},
    {"CONTENT_VEC of another size", dmg_content_vec_size,
     "vector 'b': content is 19 bytes, record says"},
    {"CONTENT flipped", dmg_content_flip, "content record fails its check (content/"},
    {"ORDER missing", dmg_order_missing, "vector 'a': listing entry 1 missing or wrong"},
    {"ORDER flipped", dmg_order_flip, "listing record fails its check (order/"},
    {"XATTR flipped", dmg_xattr_flip, "xattr record fails its check (xattrs/"},
    {"XATTR of an unused id", dmg_xattr_unused, "xattr of unused id 77"},
    {"MIDX entry missing", dmg_midx_missing, "metadata index lacks an entry of id 0"},
    {"MIDX entry extra", dmg_midx_extra, "metadata index has 2 entries for 1 user xattrs"},
    {"VIDX entry missing", dmg_vidx_missing, "ordered metadata index lacks an entry of id 0"},
    {"VIDX entry extra", dmg_vidx_extra, "ordered metadata index has 2 entries for 1"},
    {"FREE id in use", dmg_free_used, "free id 0 is in use or out of range"},
    {"DIRTY flipped", dmg_oplog_flip, "op log record fails its check (dirty/"},
    {"op log replays a wrong dim", dmg_oplog_replay,
     "snapshot stopped: replaying the op log: Input/output error"},
    {"COLL counters", dmg_counters, "counters say 9 vectors"},
    {"vector gone", dmg_vec_gone, "snapshot + op log hold 4 vectors, records 3"},
    {"snapshot flipped", dmg_snap_flip, "snapshot is damaged"},
};

/* Each damage, in a fresh store: st_check reports it and is not clean. */
static void test_check_damage(void **state)
{
    (void)state;
    st_options o;
    tu_opts(&o);
    o.log_level = ST_LOG_ERROR;
    for (size_t i = 0; i < sizeof(damages) / sizeof(damages[0]); i++) {
        char *dir = tu_tmpdir();
        st_store *st = build_store(dir, &o);
        char *rep = NULL;
        assert_int_equal(run_check(dir, &o, &rep), 0);
        free(rep);
        st_attr a;
        assert_int_equal(st_vec_stat(st, "c", "a", &a), 0);
        dmg d = {.st = st, .cid = (uint32_t)(a.ino >> 32), .dir = dir};
        assert_int_equal(mdb_txn_begin(st->env, NULL, 0, &d.txn), 0);
        damages[i].apply(&d);
        assert_int_equal(mdb_txn_commit(d.txn), 0);
        int problems = run_check(dir, &o, &rep);
        printf("%s: %d problems\n%s", damages[i].what, problems, rep);
        assert_true(problems > 0);
        assert_non_null(strstr(rep, damages[i].expect));
        assert_null(strstr(rep, " 0 problems"));
        free(rep);
        st_store_close(st);
        tu_rmdir(dir);
    }
}

/* ------------------------------------------------------------------ */
/* Faults                                                               */
/* ------------------------------------------------------------------ */

/* Counts the lines of rep that hold s. */
static int lines_with(const char *rep, const char *s)
{
    int n = 0;
    for (const char *p = rep; (p = strstr(p, s)) != NULL; p += strlen(s))
        n++;
    return n;
}

/* Arms fault f at the n-th call for n = 1, 2, ... over a check of an
 * undamaged store until a check no longer reaches it. Each check that
 * reached it must be either an open failure (negative) or exactly one
 * problem: the one "stopped" line naming why (or, when not NULL, also,
 * for errors that reach check as an errno), with no false problem after
 * it. Returns how many checks stopped a pass. */
static int fault_sweep(const char *dir, const st_options *o, st_fault f, const char *why,
                       const char *also)
{
    int stops = 0;
    for (uint64_t n = 1;; n++) {
        char *rep = NULL;
        st_fault_set(f, n);
        int rc = run_check(dir, o, &rep);
        uint64_t left = st_fault_set(f, 0);
        if (left != 0) {
            assert_int_equal(rc, 0);
            free(rep);
            break;
        }
        if (rc > 0) {
            printf("fault at call %" PRIu64 ": %s", n, rep);
            assert_int_equal(rc, 1);
            assert_int_equal(lines_with(rep, "stopped: "), 1);
            assert_true(strstr(rep, why) || (also && strstr(rep, also)));
            stops++;
        } else {
            assert_true(rc < 0);
        }
        free(rep);
    }
    return stops;
}

static void fault_test(bool encrypted)
{
    st_options o;
    tu_opts(&o);
    o.log_level = ST_LOG_ERROR;
    uint8_t key[ST_KEY_LEN];
    for (unsigned i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 5 + 3);
    if (encrypted) {
        o.key = key;
        o.key_len = sizeof(key);
    }
    char *dir = tu_tmpdir();
    st_store *st = build_store(dir, &o);
    assert_int_equal(st_store_close(st), 0);
    char *rep = NULL;
    assert_int_equal(run_check(dir, &o, &rep), 0);
    free(rep);
    int alloc = fault_sweep(dir, &o, ST_FAULT_ALLOC, "Cannot allocate memory", NULL);
    int reads = fault_sweep(dir, &o, ST_FAULT_MDB, "MDB_CORRUPTED",
                            "snapshot stopped: replaying the op log: Input/output error");
    printf("%s: %d allocation faults and %d read faults stopped a pass\n",
           encrypted ? "encrypted" : "plain", alloc, reads);
    /* The id set, the compare buffers and the replay's buffers at least. */
    assert_true(alloc >= 3);
    /* A read of every table, the lookups of each vector, the replay. */
    assert_true(reads >= 20);
    tu_rmdir(dir);
}

static void test_check_faults_plain(void **state)
{
    (void)state;
    fault_test(false);
}

static void test_check_faults_encrypted(void **state)
{
    (void)state;
    fault_test(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_damage),
        cmocka_unit_test(test_check_faults_plain),
        cmocka_unit_test(test_check_faults_encrypted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
