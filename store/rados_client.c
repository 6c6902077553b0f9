/*
 * rados_client.c — the RADOS side of the log (docs/scale-out.md §2):
 * connecting with bounded timeouts, the omap of `vecfs.head` (format,
 * head, trim, ckpt, a sealed log's `seal` record, set when the log is
 * created, and one `e.<20-digit seq>` key per entry), the guarded
 * append, ranged reads of entries, watch and notify. librados only; it
 * knows nothing of LMDB or of what an entry holds.
 *
 * Invariants
 *   1. Every seq in a key or value is 20 zero-padded decimal digits, so
 *      omap's byte order is numeric order and `head == H` is a byte
 *      compare.
 *   2. An append sets `head = H + 1` and `e.<H + 1>` in one write
 *      operation on `vecfs.head` guarded by omap_cmp(head == H): both or
 *      neither (RADOS applies an operation on one object atomically);
 *      -ECANCELED when another writer appended first. A BLOB entry's
 *      `b.<H + 1>` record (its blob's id and length) is set in the same
 *      operation, so every blob an entry names is listed for the trim.
 *   3. Every librados call is bounded by the timeout given at connect
 *      (client_mount_timeout, rados_mon_op_timeout, rados_osd_op_timeout).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "le.h"

#define HEAD_OBJ ST_RADOS_HEAD_OBJ
#define SEQ_DIGITS 20

static void seq_text(uint64_t seq, char out[SEQ_DIGITS + 1])
{
    snprintf(out, SEQ_DIGITS + 1, "%020" PRIu64, seq);
}

static void entry_key(uint64_t seq, char out[ST_RADOS_KEY_LEN])
{
    snprintf(out, ST_RADOS_KEY_LEN, "e.%020" PRIu64, seq);
}

int st_rados_connect(const st_rados_options *ro, st_rados *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    char t[16];
    snprintf(t, sizeof(t), "%u", ro->timeout_s ? ro->timeout_s : ST_RADOS_TIMEOUT_DEFAULT);
    int rc = rados_create(&r->cluster, ro->id);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create a Ceph client '%s': %s", ro->id ? ro->id : "admin",
                 strerror(-rc));
        return rc;
    }
    rc = rados_conf_read_file(r->cluster, ro->conf);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the Ceph config %s: %s", ro->conf, strerror(-rc));
        goto fail;
    }
    const char *keys[] = {"client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && rc == 0; i++)
        rc = rados_conf_set(r->cluster, keys[i], t);
    if (rc == 0)
        rc = rados_connect(r->cluster);
    if (rc < 0) {
        snprintf(err, errlen, "cannot reach the Ceph cluster of %s within %s s: %s", ro->conf, t,
                 strerror(-rc));
        goto fail;
    }
    rc = rados_ioctx_create(r->cluster, ro->pool, &r->io);
    if (rc < 0) {
        snprintf(err, errlen, "cannot open the Ceph pool '%s': %s", ro->pool, strerror(-rc));
        goto fail;
    }
    rados_ioctx_set_namespace(r->io, ro->ns ? ro->ns : "");
    return 0;
fail:
    rados_shutdown(r->cluster);
    memset(r, 0, sizeof(*r));
    return rc;
}

void st_rados_disconnect(st_rados *r)
{
    if (!r->cluster)
        return;
    if (r->watching)
        rados_unwatch2(r->io, r->cookie);
    rados_watch_flush(r->cluster);
    rados_ioctx_destroy(r->io);
    rados_shutdown(r->cluster);
    st_seal_free(r);
    memset(r, 0, sizeof(*r));
}

int st_rados_head_init(st_rados *r, const void *seal, size_t len)
{
    char zero[SEQ_DIGITS + 1], one[SEQ_DIGITS + 1];
    seq_text(0, zero);
    seq_text(1, one);
    const char *keys[] = {"format", "head", "trim", "ckpt", "seal"};
    const char *vals[] = {ST_RADOS_FORMAT, zero, one, zero, seal};
    size_t lens[] = {strlen(ST_RADOS_FORMAT), SEQ_DIGITS, SEQ_DIGITS, SEQ_DIGITS, len};
    rados_write_op_t op = rados_create_write_op();
    if (!op)
        return -ENOMEM;
    rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
    rados_write_op_omap_set(op, keys, vals, lens, seal ? 5 : 4);
    int rc = rados_write_op_operate2(op, r->io, HEAD_OBJ, NULL, 0);
    rados_release_write_op(op);
    return rc == -EEXIST ? 0 : rc;
}

void st_rados_lease_release(st_rados *r, const char *cookie)
{
    (void)rados_unlock(r->io, ST_RADOS_CKPT_LOCK_OBJ, "ckpt", cookie); /* -ENOENT: not ours */
}

/* A 20-digit seq value into *out. */
static int seq_parse(const char *v, size_t len, uint64_t *out)
{
    if (len != SEQ_DIGITS)
        return -EPROTO;
    uint64_t s = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9' || s > (UINT64_MAX - 9) / 10)
            return -EPROTO;
        s = s * 10 + (uint64_t)(v[i] - '0');
    }
    *out = s;
    return 0;
}

/* The head fields from an omap iterator over (some of) format, head,
 * trim, ckpt. */
static int head_parse(rados_omap_iter_t it, st_rados_head *h)
{
    memset(h, 0, sizeof(*h));
    unsigned seen = 0;
    int rc = 0;
    while (rc == 0) {
        char *k, *v;
        size_t kl, vl;
        rc = rados_omap_get_next2(it, &k, &v, &kl, &vl);
        if (rc || !k)
            break;
        if (kl == 6 && memcmp(k, "format", 6) == 0) {
            snprintf(h->format, sizeof(h->format), "%.*s", (int)(vl < 15 ? vl : 15), v);
            seen |= 1;
        } else if (kl == 4 && memcmp(k, "head", 4) == 0) {
            rc = seq_parse(v, vl, &h->head);
            seen |= 2;
        } else if (kl == 4 && memcmp(k, "trim", 4) == 0) {
            rc = seq_parse(v, vl, &h->trim);
            seen |= 4;
        } else if (kl == 4 && memcmp(k, "ckpt", 4) == 0) {
            rc = seq_parse(v, vl, &h->ckpt);
            seen |= 8;
        } else if (kl == 4 && memcmp(k, "seal", 4) == 0) {
            h->seal_len = vl < sizeof(h->seal) ? vl : sizeof(h->seal);
            memcpy(h->seal, v, h->seal_len);
        }
    }
    return rc == 0 && seen != 15 ? -EPROTO : rc;
}

/* The head fields; st_rados_head_read reads the optional "seal" too. */
static const char *const head_keys[] = {"format", "head", "trim", "ckpt", "seal"};
static const size_t head_klens[] = {6, 4, 4, 4, 4};

int st_rados_head_read(st_rados *r, st_rados_head *h)
{
    rados_read_op_t op = rados_create_read_op();
    if (!op)
        return -ENOMEM;
    rados_omap_iter_t it = NULL;
    int prval = 0;
    rados_read_op_omap_get_vals_by_keys2(op, head_keys, 5, head_klens, &it, &prval);
    int rc = rados_read_op_operate(op, r->io, HEAD_OBJ, 0);
    if (rc == 0)
        rc = prval;
    if (rc == 0)
        rc = head_parse(it, h);
    if (it)
        rados_omap_get_end(it);
    rados_release_read_op(op);
    return rc;
}

/* One read of up to ST_RADOS_RANGE omap keys of vecfs.head after start
 * with prefix; o->it walks them until omap_range_end (also after an
 * error, which leaves o->it NULL or empty). */
typedef struct omap_range {
    rados_read_op_t op;
    rados_omap_iter_t it;
} omap_range;

static int omap_range_read(st_rados *r, const char *start, const char *prefix, omap_range *o)
{
    o->it = NULL;
    o->op = rados_create_read_op();
    if (!o->op)
        return -ENOMEM;
    unsigned char more = 0;
    int prval = 0;
    rados_read_op_omap_get_vals2(o->op, start, prefix, ST_RADOS_RANGE, &o->it, &more, &prval);
    int rc = rados_read_op_operate(o->op, r->io, HEAD_OBJ, 0);
    return rc ? rc : prval;
}

static void omap_range_end(omap_range *o)
{
    if (o->it)
        rados_omap_get_end(o->it);
    if (o->op)
        rados_release_read_op(o->op);
}

int st_rados_append(st_rados *r, uint64_t head, const void *entry, size_t len,
                    const st_rados_blob_ref *blob)
{
    char cur[SEQ_DIGITS + 1], next[SEQ_DIGITS + 1], key[ST_RADOS_KEY_LEN], bkey[ST_RADOS_KEY_LEN];
    uint8_t ref[ST_LOG_BLOB_ID + 8];
    seq_text(head, cur);
    seq_text(head + 1, next);
    entry_key(head + 1, key);
    snprintf(bkey, sizeof(bkey), "b.%020" PRIu64, head + 1);
    if (blob) {
        memcpy(ref, blob->id, ST_LOG_BLOB_ID);
        vc_le_put64(ref + ST_LOG_BLOB_ID, blob->len);
    }
    const char *keys[] = {"head", key, bkey};
    const char *vals[] = {next, entry, (const char *)ref};
    size_t lens[] = {SEQ_DIGITS, len, sizeof(ref)};
    rados_write_op_t op = rados_create_write_op();
    if (!op)
        return -ENOMEM;
    int cmp = 0;
    rados_write_op_omap_cmp(op, "head", LIBRADOS_CMPXATTR_OP_EQ, cur, SEQ_DIGITS, &cmp);
    rados_write_op_omap_set(op, keys, vals, lens, blob ? 3 : 2);
    int rc = rados_write_op_operate2(op, r->io, HEAD_OBJ, NULL, 0);
    rados_release_write_op(op);
    return rc;
}

int st_rados_blob_refs(st_rados *r, uint64_t below,
                       int (*fn)(void *ctx, uint64_t seq, const st_rados_blob_ref *ref), void *ctx)
{
    char start[ST_RADOS_KEY_LEN] = "b.";
    int rc = 0;
    for (bool more = true; rc == 0 && more;) {
        omap_range o;
        rc = omap_range_read(r, start, "b.", &o);
        rados_omap_iter_t it = o.it;
        unsigned got = 0;
        while (rc == 0) {
            char *k, *v;
            size_t kl, vl;
            uint64_t seq;
            rc = rados_omap_get_next2(it, &k, &v, &kl, &vl);
            if (rc || !k)
                break;
            if (kl != 2 + SEQ_DIGITS || seq_parse(k + 2, SEQ_DIGITS, &seq) ||
                vl != ST_LOG_BLOB_ID + 8) {
                rc = -EPROTO;
                break;
            }
            got++;
            if (seq >= below) {
                got = 0; /* no more wanted */
                break;
            }
            memcpy(start, k, kl);
            start[kl] = '\0';
            st_rados_blob_ref ref;
            memcpy(ref.id, v, ST_LOG_BLOB_ID);
            ref.len = vc_le_get64((const uint8_t *)v + ST_LOG_BLOB_ID);
            rc = fn(ctx, seq, &ref);
        }
        omap_range_end(&o);
        more = got == ST_RADOS_RANGE; /* a full range: there may be more after start */
    }
    return rc;
}

/* Feeds the entries of an omap iterator to fn while they are got + 1,
 * got + 2, ... up to upto; -EPROTO on a key out of place (a gap). */
static int entries_feed(rados_omap_iter_t it, uint64_t *got, uint64_t upto, st_rados_entry_fn fn,
                        void *ctx)
{
    int rc = 0;
    while (rc == 0 && *got < upto) {
        char *k, *v;
        size_t kl, vl;
        rc = rados_omap_get_next2(it, &k, &v, &kl, &vl);
        if (rc || !k)
            break;
        uint64_t seq;
        if (kl != 2 + SEQ_DIGITS || seq_parse(k + 2, SEQ_DIGITS, &seq) || seq != *got + 1)
            rc = -EPROTO;
        else if ((rc = fn(ctx, seq, v, vl)) == 0)
            *got = seq;
    }
    return rc;
}

int st_rados_entries(st_rados *r, uint64_t after, uint64_t upto, st_rados_entry_fn fn, void *ctx)
{
    int rc = 0;
    while (rc == 0 && after < upto) {
        char start[ST_RADOS_KEY_LEN];
        entry_key(after, start);
        omap_range o;
        rc = omap_range_read(r, start, "e.", &o);
        uint64_t got = after;
        if (rc == 0)
            rc = entries_feed(o.it, &got, upto, fn, ctx);
        omap_range_end(&o);
        if (rc == 0 && got == after)
            rc = -EPROTO; /* entries below head are missing */
        after = got;
    }
    return rc;
}

int st_rados_catch_up(st_rados *r, uint64_t after, st_rados_head *h, st_rados_entry_fn fn,
                      void *ctx)
{
    char start[ST_RADOS_KEY_LEN];
    entry_key(after, start);
    rados_read_op_t op = rados_create_read_op();
    if (!op)
        return -ENOMEM;
    rados_omap_iter_t hit = NULL, eit = NULL;
    unsigned char more = 0;
    int hrc = 0, erc = 0;
    rados_read_op_omap_get_vals_by_keys2(op, head_keys, 4, head_klens, &hit, &hrc);
    rados_read_op_omap_get_vals2(op, start, "e.", ST_RADOS_RANGE, &eit, &more, &erc);
    int rc = rados_read_op_operate(op, r->io, HEAD_OBJ, 0);
    if (rc == 0)
        rc = hrc ? hrc : erc;
    if (rc == 0)
        rc = head_parse(hit, h);
    if (rc == 0 && h->trim > after + 1)
        rc = -ESTALE; /* trimmed past `after` */
    uint64_t got = after;
    if (rc == 0)
        rc = entries_feed(eit, &got, h->head, fn, ctx);
    if (hit)
        rados_omap_get_end(hit);
    if (eit)
        rados_omap_get_end(eit);
    rados_release_read_op(op);
    /* More than one range behind: the rest (the head may have moved on;
     * catching up to the head read here is what was asked). */
    if (rc == 0 && got < h->head)
        rc = st_rados_entries(r, got, h->head, fn, ctx);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Checkpoints in vecfs.head: `ckpt`, `trim` and one `c.<seq>` key each  */
/* ------------------------------------------------------------------ */

int st_rados_ckpt_publish(st_rados *r, const st_rados_head *h, uint64_t seq, uint64_t keep)
{
    if (seq <= h->ckpt)
        return -ECANCELED;
    /* Keep `keep` entries below seq, and every entry after the previous
     * checkpoint: a node that finds this one damaged falls back to that
     * one and replays from it (scale-out.md §6). */
    uint64_t trim = seq > keep ? seq - keep + 1 : 1;
    if (trim > h->ckpt + 1)
        trim = h->ckpt + 1;
    if (trim < h->trim)
        trim = h->trim;
    char was_ckpt[SEQ_DIGITS + 1], was_trim[SEQ_DIGITS + 1], now_ckpt[SEQ_DIGITS + 1],
        now_trim[SEQ_DIGITS + 1], ckey[ST_RADOS_KEY_LEN], ekey[ST_RADOS_KEY_LEN];
    seq_text(h->ckpt, was_ckpt);
    seq_text(h->trim, was_trim);
    seq_text(seq, now_ckpt);
    seq_text(trim, now_trim);
    snprintf(ckey, sizeof(ckey), "c.%020" PRIu64, seq);
    entry_key(trim, ekey);
    const char *keys[] = {"ckpt", "trim", ckey};
    const char *vals[] = {now_ckpt, now_trim, ""};
    size_t lens[] = {SEQ_DIGITS, SEQ_DIGITS, 0};
    rados_write_op_t op = rados_create_write_op();
    if (!op)
        return -ENOMEM;
    /* ckpt and trim unchanged since h was read: with seq > h->ckpt this
     * is the design's omap_cmp(ckpt < S), and trim only rises. */
    int c1 = 0, c2 = 0;
    rados_write_op_omap_cmp(op, "ckpt", LIBRADOS_CMPXATTR_OP_EQ, was_ckpt, SEQ_DIGITS, &c1);
    rados_write_op_omap_cmp(op, "trim", LIBRADOS_CMPXATTR_OP_EQ, was_trim, SEQ_DIGITS, &c2);
    rados_write_op_omap_set(op, keys, vals, lens, 3);
    rados_write_op_omap_rm_range2(op, "e.", 2, ekey, strlen(ekey)); /* [e., e.<trim>) */
    int rc = rados_write_op_operate2(op, r->io, HEAD_OBJ, NULL, 0);
    rados_release_write_op(op);
    return rc;
}

int st_rados_ckpt_list(st_rados *r, uint64_t *seqs, size_t cap, size_t *n)
{
    *n = 0;
    rados_read_op_t op = rados_create_read_op();
    if (!op)
        return -ENOMEM;
    rados_omap_iter_t it = NULL;
    unsigned char more = 0;
    int prval = 0;
    rados_read_op_omap_get_keys2(op, "c.", ST_RADOS_RANGE, &it, &more, &prval);
    int rc = rados_read_op_operate(op, r->io, HEAD_OBJ, 0);
    if (rc == 0)
        rc = prval;
    uint64_t all[ST_RADOS_RANGE];
    size_t got = 0;
    while (rc == 0 && got < ST_RADOS_RANGE) {
        char *k, *v;
        size_t kl, vl;
        rc = rados_omap_get_next2(it, &k, &v, &kl, &vl);
        if (rc || !k || kl < 2 || memcmp(k, "c.", 2) != 0)
            break;
        if (seq_parse(k + 2, kl - 2, &all[got]) == 0)
            got++;
    }
    if (it)
        rados_omap_get_end(it);
    rados_release_read_op(op);
    for (size_t i = 0; rc == 0 && i < got && i < cap; i++)
        seqs[(*n)++] = all[got - 1 - i]; /* newest first */
    return rc;
}

/* Removes the omap key prefix + seq ("c.", "b.") of vecfs.head. */
static int seq_key_remove(st_rados *r, const char *prefix, uint64_t seq)
{
    char key[ST_RADOS_KEY_LEN];
    snprintf(key, sizeof(key), "%s%020" PRIu64, prefix, seq);
    const char *keys[] = {key};
    size_t lens[] = {strlen(key)};
    rados_write_op_t op = rados_create_write_op();
    if (!op)
        return -ENOMEM;
    rados_write_op_omap_rm_keys2(op, keys, lens, 1);
    int rc = rados_write_op_operate2(op, r->io, HEAD_OBJ, NULL, 0);
    rados_release_write_op(op);
    return rc;
}

int st_rados_ckpt_forget(st_rados *r, uint64_t seq)
{
    return seq_key_remove(r, "c.", seq);
}

int st_rados_blob_ref_forget(st_rados *r, uint64_t seq)
{
    return seq_key_remove(r, "b.", seq);
}

int st_rados_lease(st_rados *r, const char *cookie, unsigned seconds)
{
    struct timeval tv = {.tv_sec = seconds};
    int rc = rados_lock_exclusive(r->io, ST_RADOS_CKPT_LOCK_OBJ, "ckpt", cookie,
                                  "vecfs checkpoint writer", &tv, LIBRADOS_LOCK_FLAG_MAY_RENEW);
    return rc == -EEXIST ? 0 : rc;
}

/* librados's watch callback: acknowledge at once (the notifier waits for
 * acks), then wake the follower. */
static void watch_cb(void *arg, uint64_t notify_id, uint64_t cookie, uint64_t notifier, void *data,
                     size_t len)
{
    (void)notifier;
    (void)data;
    (void)len;
    st_rados *r = arg;
    rados_notify_ack(r->io, HEAD_OBJ, notify_id, cookie, NULL, 0);
    r->wake(r->wake_ctx, false);
}

static void watch_err_cb(void *arg, uint64_t cookie, int err)
{
    (void)cookie;
    (void)err;
    st_rados *r = arg;
    r->wake(r->wake_ctx, true);
}

int st_rados_watch(st_rados *r, void (*wake)(void *ctx, bool lost), void *ctx)
{
    if (r->watching) {
        rados_unwatch2(r->io, r->cookie);
        r->watching = false;
    }
    r->wake = wake;
    r->wake_ctx = ctx;
    int rc = rados_watch2(r->io, HEAD_OBJ, &r->cookie, watch_cb, watch_err_cb, r);
    r->watching = rc == 0;
    return rc;
}

int st_rados_notify(st_rados *r)
{
    char *reply = NULL;
    size_t rlen = 0;
    int rc = rados_notify2(r->io, HEAD_OBJ, "", 0, ST_RADOS_NOTIFY_MS, &reply, &rlen);
    rados_buffer_free(reply);
    return rc;
}

/* Creates the log, sealed when opt has a key (unless another node just
 * did). */
static int log_create(st_rados *r, const st_rados_options *ro, const st_options *opt)
{
    vc_buf seal = VC_BUF_INIT;
    int rc = opt && opt->key ? st_seal_record_new(opt, ro->ns, &seal) : 0;
    if (rc == 0)
        rc = st_rados_head_init(r, seal.len ? seal.p : NULL, seal.len);
    vc_buf_release(&seal);
    return rc;
}

/* Connects and reads (or creates) the log head and takes its seal;
 * errbuf says why not. */
int st_rados_log_open(const st_rados_options *ro, const st_options *opt, st_rados *r,
                      st_rados_head *h)
{
    char err[512];
    int rc = st_rados_connect(ro, r, err, sizeof(err));
    if (rc) {
        st_errbuf_set(opt, "%s", err);
        return rc;
    }
    memset(h, 0, sizeof(*h));
    rc = st_rados_head_read(r, h);
    if (rc == -ENOENT && opt && opt->read_only) {
        st_errbuf_set(opt, "no vecfs log in pool '%s': a --read-only node does not create one",
                      ro->pool);
        st_rados_disconnect(r);
        return rc;
    }
    if (rc == -ENOENT) {
        rc = log_create(r, ro, opt);
        if (rc == 0)
            rc = st_rados_head_read(r, h);
    }
    if (rc == 0 && strcmp(h->format, ST_RADOS_FORMAT) != 0)
        rc = -EPROTO;
    if (rc) {
        st_errbuf_set(
            opt, "cannot use the vecfs log in pool '%s': %s (format '%s', this build writes %s)",
            ro->pool, strerror(-rc), h->format, ST_RADOS_FORMAT);
        st_rados_disconnect(r);
        return rc;
    }
    rc = st_seal_take(r, h->seal, h->seal_len, ro, opt);
    if (rc)
        st_rados_disconnect(r);
    return rc;
}
