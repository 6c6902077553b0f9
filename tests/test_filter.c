/*
 * test_filter.c — the filter language (store/filter.c) and its evaluation
 * (store/filter_eval.c, store/search.c) against a real LMDB store.
 *
 * Covered: every operator, and/or/not/parentheses, quoting and escapes,
 * the old KEY=VALUE form, numeric against byte order, malformed texts
 * (code and message), the depth/term/size limits; then, through searches
 * with k above the collection's size, that the passing set equals a
 * brute-force evaluation of the same predicate over the vectors'
 * metadata, for MIDX-only filters and for those that walk the ordered
 * index (VIDX, with values longer than its keys hold) or, with a key or
 * with the index turned off, the records;
 * max_distance against the exact set within the bound; the plan.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "store_testutil.h"

/* ------------------------------------------------------------------ */
/* Parsing                                                              */
/* ------------------------------------------------------------------ */

/* Parses text; returns the code, *err the message. */
static int parse(const char *text, st_filter **f, char *err)
{
    return st_filter_parse(text, strlen(text), f, err, ST_FILTER_ERR_MAX);
}

static void test_parse_good(void **state)
{
    (void)state;
    static const char *const good[] = {
        "year >= 2020",
        "year>=2020 and lang in (en, de)",
        "not (a = 1 or b != \"x y\")",
        "exists tag",
        "EXISTS tag AND NOT tag = t1",
        "(a < 1) or (a > 5, b <= 3)",
        "user.year == 2020",
        "name = 'it\\'s'",
        "\"key with space\" = \"v,al(ue)\"",
        "a=b,c=d",
        "tag=x=y",
        "cat = my guide",
        "a=",
        "((((a=1))))",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        st_filter *f = NULL;
        char err[ST_FILTER_ERR_MAX];
        int rc = parse(good[i], &f, err);
        if (rc != 0)
            fail_msg("\"%s\" gave %d (%s)", good[i], rc, err);
        assert_non_null(f);
        assert_string_equal(err, "");
        st_filter_free(f);
    }
    st_filter *f = (st_filter *)1;
    char err[ST_FILTER_ERR_MAX];
    assert_int_equal(parse("  \n ", &f, err), 0);
    assert_null(f);
    /* Quoting: the escaped quote is part of the value. */
    assert_int_equal(parse("name = 'it\\'s'", &f, err), 0);
    assert_int_equal(f->nlits, 1);
    assert_string_equal(f->lits[0].p, "it's");
    assert_string_equal(f->keys[0].p, "name");
    st_filter_free(f);
    /* The old form keeps spaces and '=' inside values. */
    assert_int_equal(parse("tag = x=y , cat = my guide", &f, err), 0);
    assert_int_equal(f->nlits, 2);
    assert_string_equal(f->lits[0].p, "x=y");
    assert_string_equal(f->lits[1].p, "my guide");
    st_filter_free(f);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *msg; /* part of the message */
    } bad[] = {
        {"year >", "expected a value"},
        {"year >= ", "expected a value"},
        {"(a = 1", "expected ')'"},
        {"a = 1)", "unexpected text"},
        {"a ! b", "'!'"},
        {"a = \"open", "no closing"},
        {"a in ()", "expected a value"},
        {"a in (1, 2", "expected ',' or ')'"},
        {"a in 1", "expected '('"},
        {"exists", "expected a key"},
        {"not", "expected a key"},
        {"a = 1 and", "expected a key"},
        {"a = 1 or or b = 2", "expected a key"},
        {"= 3", "expected a key"},
        {"user. = 3", "empty key"},
        {"a b", "expected an operator"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st_filter *f = (st_filter *)1;
        char err[ST_FILTER_ERR_MAX];
        int rc = parse(bad[i].text, &f, err);
        if (rc != -EINVAL)
            fail_msg("\"%s\" gave %d, want -EINVAL", bad[i].text, rc);
        assert_null(f);
        if (strstr(err, bad[i].msg) == NULL || strncmp(err, "filter: ", 8) != 0)
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", bad[i].text, err, bad[i].msg);
    }
}

static void test_parse_limits(void **state)
{
    (void)state;
    static char t[ST_FILTER_TEXT_MAX + 16];
    st_filter *f;
    char err[ST_FILTER_ERR_MAX];
    /* Depth: 32 parentheses are fine, 33 are not. */
    for (int depth = 32; depth <= 33; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            t[n++] = '(';
        n += (size_t)snprintf(t + n, sizeof t - n, "a=1");
        for (int i = 0; i < depth; i++)
            t[n++] = ')';
        t[n] = '\0';
        assert_int_equal(parse(t, &f, err), depth == 32 ? 0 : -EINVAL);
        st_filter_free(f);
    }
    assert_non_null(strstr(err, "nested deeper"));
    /* Terms: 255 comparisons joined by `and` (256 nodes) fit, 256 do not. */
    for (int terms = 255; terms <= 256; terms++) {
        size_t n = 0;
        for (int i = 0; i < terms; i++)
            n += (size_t)snprintf(t + n, sizeof t - n, "%sk%d = %d", i ? " and " : "", i, i);
        assert_int_equal(parse(t, &f, err), terms == 255 ? 0 : -EINVAL);
        st_filter_free(f);
    }
    /* Key and value sizes. */
    memset(t, 'k', ST_XATTR_NAME_MAX - 4);
    strcpy(t + ST_XATTR_NAME_MAX - 4, " = 1");
    assert_int_equal(parse(t, &f, err), -E2BIG);
    assert_non_null(strstr(err, "key"));
    t[0] = '"';
    memset(t + 1, 'v', ST_XATTR_VALUE_MAX + 1);
    strcpy(t + ST_XATTR_VALUE_MAX + 2, "\" = 1");
    assert_int_equal(parse(t, &f, err), -E2BIG);
    memset(t, ' ', ST_FILTER_TEXT_MAX + 1);
    assert_int_equal(st_filter_parse(t, ST_FILTER_TEXT_MAX + 1, &f, err, sizeof err), -E2BIG);
    assert_null(f);
}

static void test_compare(void **state)
{
    (void)state;
    st_flit n2020 = {.p = "2020", .len = 4};
    n2020.is_num = st_filter_number(n2020.p, n2020.len, &n2020.num);
    assert_true(n2020.is_num);
    assert_int_equal(st_filter_cmp("999", 3, &n2020), -1); /* as numbers */
    assert_int_equal(st_filter_cmp("2020.0", 6, &n2020), 0);
    assert_int_equal(st_filter_cmp("1e4", 3, &n2020), 1);
    assert_int_equal(st_filter_cmp("-5", 2, &n2020), -1);
    assert_int_equal(st_filter_cmp("abc", 3, &n2020), 1); /* as bytes: 'a' > '2' */
    st_flit abc = {.p = "abc", .len = 3};
    abc.is_num = st_filter_number(abc.p, abc.len, &abc.num);
    assert_false(abc.is_num);
    assert_int_equal(st_filter_cmp("ab", 2, &abc), -1); /* a prefix first */
    assert_int_equal(st_filter_cmp("abd", 3, &abc), 1);
    assert_int_equal(st_filter_cmp("\xc3\xa9", 2, &abc), 1); /* UTF-8 byte order */
    double d;
    assert_false(st_filter_number("inf", 3, &d));
    assert_false(st_filter_number("nan", 3, &d));
    assert_false(st_filter_number("0x10", 4, &d));
    assert_false(st_filter_number(" 1", 2, &d));
    assert_false(st_filter_number("-", 1, &d));
    assert_true(st_filter_number("-.5", 3, &d) && d == -0.5);
}

/* ------------------------------------------------------------------ */
/* Evaluation against brute force                                       */
/* ------------------------------------------------------------------ */

enum { N = 600, DIM = 8, LONG_LEN = 590 };

/* Vector i's metadata (NULL: the key is absent). */
typedef struct meta {
    char year[8], lang[8], tag[8], score[16];
    char lng[LONG_LEN + 2]; /* over VIDX's key room: compared via the record */
    bool has_tag;
} meta;

static void meta_of(int i, meta *m)
{
    static const char *const langs[] = {"en", "de", "fr", "pt br"};
    snprintf(m->year, sizeof m->year, "%d", 2000 + i % 30);
    snprintf(m->lang, sizeof m->lang, "%s", langs[i % 4]);
    m->has_tag = i % 3 == 0;
    snprintf(m->tag, sizeof m->tag, "t%d", i % 5);
    snprintf(m->score, sizeof m->score, "%g", (double)i / 8.0);
    size_t n = i % 4 == 0 ? 100 : LONG_LEN;
    memset(m->lng, 'x', n);
    m->lng[n] = (char)('0' + i % 10);
    m->lng[n + 1] = 0;
}

/* The literal the lng cases compare with: LONG_LEN x's then digit d. */
static const char *long_lit(int d)
{
    static char lit[LONG_LEN + 2];
    memset(lit, 'x', LONG_LEN);
    lit[LONG_LEN] = (char)('0' + d % 10);
    lit[LONG_LEN + 1] = 0;
    return lit;
}

typedef bool (*pred)(const meta *m);
static bool p_year_ge(const meta *m)
{
    return atoi(m->year) >= 2020;
}
static bool p_range_lang(const meta *m)
{
    return atoi(m->year) > 2005 && atoi(m->year) <= 2010 &&
           (strcmp(m->lang, "en") == 0 || strcmp(m->lang, "pt br") == 0);
}
static bool p_not_tag(const meta *m)
{
    return !(m->has_tag && strcmp(m->tag, "t1") == 0);
}
static bool p_ne_tag(const meta *m)
{
    return m->has_tag && strcmp(m->tag, "t1") != 0;
}
static bool p_exists_or(const meta *m)
{
    return m->has_tag || strcmp(m->lang, "de") == 0;
}
static bool p_score(const meta *m)
{
    return atof(m->score) < 10.5; /* as numbers: "9.5" < "10.5" */
}
static bool p_lang_lt(const meta *m)
{
    return strcmp(m->lang, "en") < 0; /* as bytes: "de" */
}
static bool p_in_eq(const meta *m)
{
    return (strcmp(m->lang, "fr") == 0 || strcmp(m->lang, "de") == 0) &&
           strcmp(m->year, "2003") == 0;
}
static bool p_not_in(const meta *m)
{
    return !(strcmp(m->lang, "fr") == 0 || strcmp(m->lang, "de") == 0);
}
static bool p_long_ge(const meta *m)
{
    return strcmp(m->lng, long_lit(5)) >= 0;
}
static bool p_long_lt(const meta *m)
{
    return strcmp(m->lng, long_lit(5)) < 0;
}
static bool p_long_ne(const meta *m)
{
    return strcmp(m->lng, long_lit(3)) != 0;
}
static bool p_none(const meta *m)
{
    (void)m;
    return false;
}

static const struct {
    const char *text;
    pred p;
} cases[] = {
    {"year >= 2020", p_year_ge},
    {"year > 2005 and year <= 2010 and lang in (en, 'pt br')", p_range_lang},
    {"not tag = t1", p_not_tag},
    {"tag != t1", p_ne_tag},
    {"exists tag or lang = de", p_exists_or},
    {"score < 10.5", p_score},
    {"lang < en", p_lang_lt},
    {"lang in (fr, de) and year = 2003", p_in_eq}, /* MIDX only */
    {"not (lang = fr or lang = de)", p_not_in},    /* MIDX and not */
    {"year=2003,lang=de,lang=fr", p_none},         /* old form */
    {"year = 2003.0", p_none},                     /* = compares bytes */
    {"lng >= '@5'", p_long_ge},                    /* @: long_lit */
    {"lng < '@5'", p_long_lt},
    {"lng != '@3'", p_long_ne},
};

/* cases[c].text with @d replaced by long_lit(d), into out. */
static void case_text(const char *text, char *out, size_t cap)
{
    const char *at = strchr(text, '@');
    if (at)
        snprintf(out, cap, "%.*s%s%s", (int)(at - text), text, long_lit(at[1] - '0'), at + 2);
    else
        snprintf(out, cap, "%s", text);
}

static st_store *filled_store(char *dir, float (*vecs)[DIM], bool encrypted)
{
    static const uint8_t key[ST_KEY_LEN] = {7, 1, 3};
    st_options o;
    tu_opts(&o);
    if (encrypted) {
        o.key = key;
        o.key_len = sizeof key;
    }
    st_store *st = NULL;
    assert_int_equal(st_store_open(dir, &o, &st), 0);
    st_config cfg;
    st_config_default(&cfg);
    cfg.dim = DIM;
    cfg.metric = VF_METRIC_L2;
    assert_int_equal(st_coll_create(st, "c", NULL, &cfg), 0);
    st_batch *b;
    assert_int_equal(st_batch_begin(st, "c", &b), 0);
    uint64_t seed = 7;
    for (int i = 0; i < N; i++) {
        tu_vec(&seed, vecs[i], DIM);
        char name[16];
        snprintf(name, sizeof name, "v%d", i);
        meta m;
        meta_of(i, &m);
        const char *keys[] = {"user.year", "user.lang", "user.score", "user.lng", "user.tag"};
        const void *vals[] = {m.year, m.lang, m.score, m.lng, m.tag};
        size_t lens[] = {strlen(m.year), strlen(m.lang), strlen(m.score), strlen(m.lng),
                         strlen(m.tag)};
        assert_int_equal(st_batch_put(b, name, name, strlen(name), vecs[i], DIM, NULL, 0,
                                      m.has_tag ? 5 : 4, keys, vals, lens),
                         0);
    }
    assert_int_equal(st_batch_commit(b), 0);
    return st;
}

/* Every case on a store with or without a key: without one through VIDX
 * or, vidx_off, the record walk (which passes over other keys' records
 * unopened); with one (no VIDX) the walk opens them all. */
static void eval_brute_force(bool encrypted, bool vidx_off)
{
    char *dir = tu_tmpdir();
    static float vecs[N][DIM];
    st_store *st = filled_store(dir, vecs, encrypted);
    assert_true(st->vidx_on == !encrypted);
    if (vidx_off)
        st->vidx_on = false;
    st_hit *hits = calloc(N + 1, sizeof *hits);
    assert_non_null(hits);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        st_filter *f;
        char err[ST_FILTER_ERR_MAX], text[LONG_LEN + 64];
        case_text(cases[c].text, text, sizeof text);
        assert_int_equal(parse(text, &f, err), 0);
        st_plan plan;
        st_search_opts o = {.filter = f, .plan = &plan};
        size_t n = 0;
        assert_int_equal(st_search_opt(st, "c", vecs[0], DIM, N + 1, 0, &o, hits, &n), 0);
        bool got[N] = {false};
        for (size_t j = 0; j < n; j++)
            got[atoi(hits[j].name + 1)] = true;
        size_t want = 0;
        for (int i = 0; i < N; i++) {
            meta m;
            meta_of(i, &m);
            bool pass = cases[c].p(&m);
            want += pass;
            if (pass != got[i])
                fail_msg("\"%s\": v%d %s", cases[c].text, i, pass ? "missing" : "extra");
        }
        assert_int_equal(n, want);
        assert_true(plan.filtered);
        assert_int_equal(plan.passing, want);
        assert_int_equal(plan.kind, want ? ST_PLAN_SMALL : ST_PLAN_NONE);
        st_filter_free(f);
    }
    free(hits);
    st_store_close(st);
    tu_rmdir(dir);
}

static void test_eval_brute_force(void **state)
{
    (void)state;
    eval_brute_force(false, false);
}

static void test_eval_brute_force_walk(void **state)
{
    (void)state;
    eval_brute_force(false, true);
}

static void test_eval_brute_force_encrypted(void **state)
{
    (void)state;
    eval_brute_force(true, false);
}

/* The ids of "c" that pass text, through VIDX (vidx) or the record walk. */
static void eval_ids(st_store *st, const char *text, bool vidx, st_idset *out)
{
    st_filter *f;
    char err[ST_FILTER_ERR_MAX], t[LONG_LEN + 64];
    case_text(text, t, sizeof t);
    assert_int_equal(parse(t, &f, err), 0);
    st_coll *c = st_coll_find(st, "c");
    assert_non_null(c);
    MDB_txn *txn;
    assert_int_equal(st_txn_read(st, &txn), 0);
    bool was = st->vidx_on;
    st->vidx_on = vidx;
    assert_int_equal(st_filter_eval(st, txn, c->id, f, out), 0);
    st->vidx_on = was;
    mdb_txn_abort(txn);
    st_filter_free(f);
}

/* Every path that changes metadata keeps VIDX equal to the records: set
 * over a value (number to text and back), remove, vector delete, rename
 * over another vector, overwrite, a collection emptied and dropped; then
 * every case
 * gives the same ids through VIDX and through the record walk, and
 * `vecfs check` is clean. */
static void test_vidx_kept(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    static float vecs[N][DIM];
    st_store *st = filled_store(dir, vecs, false);
    for (int i = 0; i < N; i += 7) {
        char name[16], v[16];
        snprintf(name, sizeof name, "v%d", i);
        snprintf(v, sizeof v, i % 2 ? "%d" : "y%d", 1990 + i % 50);
        assert_int_equal(st_xattr_set(st, "c", name, "user.year", v, strlen(v), 0), 0);
        if (i % 3 == 0)
            assert_int_equal(st_xattr_remove(st, "c", name, "user.tag"), 0);
        if (i % 5 == 0)
            assert_int_equal(st_xattr_remove(st, "c", name, "user.lng"), 0);
    }
    for (int i = 1; i < N; i += 11) {
        char name[16], to[16];
        snprintf(name, sizeof name, "v%d", i);
        snprintf(to, sizeof to, "v%d", i + 1);
        if (i % 2)
            assert_int_equal(st_vec_delete(st, "c", name), 0);
        else
            assert_int_equal(st_vec_rename(st, "c", name, to, 0), 0);
    }
    assert_int_equal(st_vec_put(st, "c", "v4", vecs[4], sizeof vecs[4], vecs[4], DIM, NULL, 0), 0);
    st_config cfg;
    st_config_default(&cfg);
    cfg.dim = DIM;
    assert_int_equal(st_coll_create(st, "d", NULL, &cfg), 0);
    assert_int_equal(st_vec_put(st, "d", "a", vecs[0], sizeof vecs[0], vecs[0], DIM, NULL, 0), 0);
    assert_int_equal(st_xattr_set(st, "d", "a", "user.year", "5", 1, 0), 0);
    uint32_t did = st_coll_find(st, "d")->id;
    assert_int_equal(st_vec_delete(st, "d", "a"), 0); /* a drop needs it empty */
    assert_int_equal(st_coll_drop(st, "d"), 0);
    MDB_txn *txn;
    uint64_t left = 1;
    assert_int_equal(st_txn_read(st, &txn), 0);
    assert_int_equal(st_vidx_count(st, txn, did, &left), 0);
    mdb_txn_abort(txn);
    assert_int_equal(left, 0);
    size_t passing = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        st_idset a, b;
        eval_ids(st, cases[c].text, true, &a);
        eval_ids(st, cases[c].text, false, &b);
        size_t n = st_idset_count(&a);
        assert_int_equal(n, st_idset_count(&b));
        for (size_t w = 0; w < a.nw; w++)
            assert_true(a.w[w] == (w < b.nw ? b.w[w] : 0));
        /* The engine's id list: n distinct ids of the set, ascending, so
         * the whole set. */
        uint32_t *ids = st_idset_list(&a, n);
        assert_non_null(ids);
        for (size_t i = 0; i < n; i++) {
            assert_true(a.w[ids[i] >> 6] >> (ids[i] & 63) & 1u);
            assert_true(i == 0 || ids[i - 1] < ids[i]);
        }
        free(ids);
        passing += n;
        st_idset_release(&a);
        st_idset_release(&b);
    }
    assert_true(passing > N);
    assert_int_equal(st_store_close(st), 0);
    st_options o;
    tu_opts(&o);
    assert_int_equal(st_check(dir, &o, NULL), 0);
    tu_rmdir(dir);
}

/* The VIDX entries of collection "c". */
static uint64_t vidx_entries(st_store *st)
{
    MDB_txn *txn;
    uint64_t n = 0;
    assert_int_equal(st_txn_read(st, &txn), 0);
    assert_int_equal(st_vidx_count(st, txn, st_coll_find(st, "c")->id, &n), 0);
    mdb_txn_abort(txn);
    return n;
}

/* A store from before VIDX (its db emptied, META "vidx" gone), with one
 * damaged XATTR record, gets VIDX at its next writable open: the store
 * opens, the damaged record is passed over, the rest indexed. */
static void test_vidx_built_at_open(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    static float vecs[N][DIM];
    st_store *st = filled_store(dir, vecs, false);
    uint64_t before = vidx_entries(st);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_drop(txn, st->db[ST_DB_VIDX], 0), 0);
    MDB_val mk = {4, "vidx"}, k = {0, NULL}, v;
    assert_int_equal(mdb_del(txn, st->db[ST_DB_META], &mk, NULL), 0);
    /* The first XATTR record: v0's user.lang ("en", one entry). */
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(txn, st->db[ST_DB_XATTRS], &cur), 0);
    assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
    uint8_t *bad = malloc(v.mv_size);
    assert_non_null(bad);
    memcpy(bad, v.mv_data, v.mv_size);
    bad[v.mv_size / 2] ^= 0x10;
    MDB_val bv = {v.mv_size, bad};
    assert_int_equal(mdb_cursor_put(cur, &k, &bv, MDB_CURRENT), 0);
    free(bad);
    mdb_cursor_close(cur);
    assert_int_equal(mdb_txn_commit(txn), 0);
    assert_int_equal(st_store_close(st), 0);
    st_options o;
    tu_opts(&o);
    assert_int_equal(st_store_open(dir, &o, &st), 0);
    assert_true(st->vidx_on);
    assert_int_equal(vidx_entries(st), before - 1);
    st_idset s;
    eval_ids(st, "lang < fr", true, &s); /* de and en, v0's en left out */
    assert_int_equal(st_idset_count(&s), N / 2 - 1);
    st_idset_release(&s);
    assert_int_equal(st_store_close(st), 0);
    tu_rmdir(dir);
}

static void test_max_distance(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    static float vecs[N][DIM];
    st_store *st = filled_store(dir, vecs, false);
    st_hit hits[N];
    const float *q = vecs[3];
    st_filter *f;
    char err[ST_FILTER_ERR_MAX];
    assert_int_equal(parse("year >= 2010", &f, err), 0);
    for (int filtered = 0; filtered <= 1; filtered++) {
        st_search_opts o = {.filter = filtered ? f : NULL, .within = true, .max_distance = 3.0f};
        size_t n = 0;
        assert_int_equal(st_search_opt(st, "c", q, DIM, N, 0, &o, hits, &n), 0);
        size_t want = 0;
        for (int i = 0; i < N; i++) {
            float d = 0;
            for (int j = 0; j < DIM; j++)
                d += (vecs[i][j] - q[j]) * (vecs[i][j] - q[j]);
            meta m;
            meta_of(i, &m);
            want += d <= 3.0f && (!filtered || p_year_ge(&m) || atoi(m.year) >= 2010);
        }
        assert_true(want > 5 && want < N);
        assert_int_equal(n, want);
        for (size_t j = 0; j < n; j++) {
            assert_true(hits[j].distance <= 3.0f);
            assert_true(j == 0 || hits[j - 1].distance <= hits[j].distance);
        }
        /* A k below the count within gives the nearest k. */
        size_t n3 = 0;
        assert_int_equal(st_search_opt(st, "c", q, DIM, 3, 0, &o, hits, &n3), 0);
        assert_int_equal(n3, 3);
    }
    st_filter_free(f);
    st_store_close(st);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_eval_brute_force),
        cmocka_unit_test(test_eval_brute_force_encrypted),
        cmocka_unit_test(test_eval_brute_force_walk),
        cmocka_unit_test(test_vidx_kept),
        cmocka_unit_test(test_vidx_built_at_open),
        cmocka_unit_test(test_max_distance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
