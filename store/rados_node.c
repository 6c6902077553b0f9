/*
 * rados_node.c — one node of the RADOS mode (docs/scale-out.md §4, §5):
 * the local store is a state machine fed by the pool's log. A write is
 * checked against the local state at the log head, appended with a
 * compare-and-set on the head, then applied locally through the store's
 * own write code; a follower thread applies what other nodes append.
 *
 * A node's write (the hooks' write, on the caller's thread), under n->mu:
 *     catch up to head H -> check -> append entry H + 1 guarded by
 *     head == H -> applied locally (seq in the same LMDB txn) -> notify
 * -ECANCELED from the append means another node appended first: catch up
 * and check again, until both ST_NODE_RACES races are lost and the
 * cluster timeout has passed, then -EAGAIN.
 *
 * States of a node
 *   FOLLOWING  the follower runs: it wakes on a notify, a local append
 *              or every ST_NODE_POLL_MS, and applies up to the head.
 *   STOPPED    node_stop joined the follower and disconnected; the store
 *              closes next.
 *
 * Invariants
 *   1. Entries are applied in seq order, each once: n->mu is held by
 *      whoever applies, n->applied is the seq of the last applied entry,
 *      and the local LMDB holds that seq in the transaction that applied
 *      it (log_route.c, txn.c), so a restart resumes after it.
 *   2. A change is appended only if the log head is the H it was checked
 *      against: the writer holds n->mu from the catch-up to H through the
 *      append, so no local apply moves the state in between, and the
 *      append's omap_cmp refuses it if another node moved the head.
 *   3. A call returns 0 only after RADOS acknowledged its entry.
 *
 * Lock order: n->mu -> the store's locks (the apply runs the store's
 * writes) ; n->wake_mu is taken alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "crc32c.h"
#include "internal.h"

/* Lost races before -EAGAIN, if the cluster timeout has passed too. The
 * design's 8 was too few: a node whose catch-up is slow (a loaded
 * machine, ASan) lost 8 in a row against one other node writing back to
 * back, and 64 alone (under a second) failed one write of bench/
 * rados-load.py's two-node phase on a quiet machine (scale-out.md §4). */
#define ST_NODE_RACES 64
#define ST_NODE_RACES_AT_ONCE 2
#define ST_NODE_BACKOFF_MAX_MS 16u
#define ST_NODE_POLL_MS 200

typedef struct st_node {
    st_store *st;
    st_rados r;
    uint64_t id;     /* random, names the writer in its entries */
    unsigned race_s; /* how long a write may keep losing races */
    bool read_only;  /* --read-only: follows and serves, never appends */

    pthread_mutex_t mu; /* the right to apply; writers hold it to the append */
    uint64_t applied;   /* protected by mu */
    uint64_t ckpt_seen; /* protected by mu: the published checkpoint at the last catch-up */
    vc_buf enc;         /* protected by mu: the entry being appended */
    vc_buf opened;      /* protected by mu: an entry of a sealed log, opened */
    /* protected by mu: an entry too large for the log goes to a blob
     * (rados_blob.c); ref_enc is the BLOB entry naming it, staged says its
     * objects are written and not yet named by an appended entry. */
    vc_buf ref_enc;
    st_rados_blob_ref staged_ref;
    uint32_t staged_crc;
    bool staged;

    pthread_t follower;
    bool following;
    pthread_mutex_t wake_mu;
    pthread_cond_t wake_cv;
    bool wake, rewatch, notify, stop; /* protected by wake_mu */

    /* Checkpoints (the follower thread's): the policy, this node's name
     * on the lease, since when entries are not covered, when to try the
     * lease again. */
    unsigned ckpt_entries, ckpt_minutes, lease_s, orphan_age_s;
    char cookie[17];
    struct timespec uncovered_since, ckpt_retry_at;
} st_node;

/* ------------------------------------------------------------------ */
/* Applying                                                             */
/* ------------------------------------------------------------------ */

/* A BATCH through a store batch: one local transaction, all or nothing. */
static int apply_batch(st_store *st, const st_log_op *op)
{
    st_batch *b;
    int rc = st_batch_begin(st, op->coll, &b);
    for (size_t i = 0; rc == 0 && i < op->nrows; i++) {
        const st_log_row *r = &op->rows[i];
        rc = st_batch_put(b, r->name, r->data, r->len, r->vec, op->dim, &r->attr, r->mask, r->nmeta,
                          r->meta_keys, r->meta_vals, r->meta_lens);
    }
    if (rc == 0)
        return st_batch_commit(b);
    st_batch_abort(b);
    return rc;
}

/* One operation through the store's public writes (routed locally, since
 * this thread is applying). */
static int apply_op(st_store *st, const st_log_op *op)
{
    const st_attr *a = &op->attr;
    switch (op->kind) {
    case ST_LOG_PUT:
        return st_vec_put(st, op->coll, op->name, op->data, op->len, op->vec, op->dim, a, op->mask);
    case ST_LOG_DELETE:
        return st_vec_delete(st, op->coll, op->name);
    case ST_LOG_RENAME:
        return st_vec_rename(st, op->coll, op->name, op->to, op->flags);
    case ST_LOG_SETATTR:
        return st_vec_setattr(st, op->coll, op->name, a, op->mask);
    case ST_LOG_XATTR_SET:
        return st_xattr_set(st, op->coll, op->name, op->to, op->data, op->len, (int)op->flags);
    case ST_LOG_XATTR_REMOVE:
        return st_xattr_remove(st, op->coll, op->name, op->to);
    case ST_LOG_COLL_CREATE:
        return st_coll_create(st, op->coll, a, NULL);
    case ST_LOG_COLL_DROP:
        return st_coll_drop(st, op->coll);
    case ST_LOG_COLL_RENAME:
        return st_coll_rename(st, op->coll, op->to, op->flags);
    case ST_LOG_COLL_ATTR:
        return st_coll_attr_update(st, op->coll, a, op->mask,
                                   op->flags & ST_LOG_CFG_MTIME ? &op->cfg_mtime : NULL);
    case ST_LOG_COLL_CONFIG:
        return st_coll_config_set(st, op->coll, &op->cfg,
                                  op->flags & ST_LOG_CFG_MTIME ? &op->cfg_mtime : NULL);
    default: /* ST_LOG_BATCH; a BLOB was replaced by its entry before */
        return apply_batch(st, op);
    }
}

/* Applies entry seq (n->mu held). An operation that fails here fails on
 * every node (same state, same entry): the entry is then a no-op, and its
 * seq is recorded in a transaction of its own. Returns the first
 * operation's error (what the writer's caller sees). */
static int apply_entry(st_node *n, uint64_t seq, const st_log_entry *e)
{
    st_log_apply_begin(seq, &e->written);
    int first = 0;
    bool last_failed = false;
    for (size_t i = 0; i < e->nops; i++) {
        int rc = apply_op(n->st, &e->ops[i]);
        last_failed = rc != 0;
        if (rc && !first)
            first = rc;
        if (rc)
            st_log(n->st, ST_LOG_WARN, "rados: entry %" PRIu64 " does not apply here: %s", seq,
                   strerror(-rc));
    }
    int mrc = last_failed ? st_log_applied_commit(n->st) : 0;
    st_log_apply_end();
    if (mrc)
        return mrc;
    n->applied = seq;
    return first;
}

/* st_rados_entries' callback of a catch-up. */
static int apply_bytes(void *ctx, uint64_t seq, const void *bytes, size_t len)
{
    st_node *n = ctx;
    st_log_entry e;
    int rc = st_seal_entry_open(&n->r, seq, bytes, len, &n->opened, &bytes, &len);
    if (rc) {
        st_health_set(n->st, "rados: log entry %" PRIu64 " does not authenticate: %s", seq,
                      strerror(-rc));
        return rc;
    }
    rc = st_log_entry_decode(bytes, len, &e);
    if (rc) {
        st_health_set(n->st, "rados: log entry %" PRIu64 " does not decode: %s", seq,
                      strerror(-rc));
        return rc;
    }
    vc_buf scratch = VC_BUF_INIT;
    rc = st_blob_entry(&n->r, &e, &scratch);
    if (rc) {
        st_health_set(n->st, "rados: cannot read the blob of log entry %" PRIu64 ": %s", seq,
                      strerror(-rc));
        return rc;
    }
    rc = apply_entry(n, seq, &e);
    st_log_entry_free(&e);
    /* An entry that is a no-op everywhere is applied all the same. */
    return n->applied == seq ? 0 : rc;
}

/* Applies every entry up to the head as read now; *head_out = that head.
 * n->mu held. */
static int catch_up(st_node *n, uint64_t *head_out)
{
    st_rados_head h;
    int rc = st_rados_catch_up(&n->r, n->applied, &h, apply_bytes, n);
    if (rc == -ESTALE) {
        /* Trimmed past us: become the newest checkpoint, then follow. */
        uint64_t seq;
        rc = st_resync(n->st, &n->r, n->applied, &seq);
        if (rc == 0) {
            n->applied = seq;
            rc = st_rados_catch_up(&n->r, n->applied, &h, apply_bytes, n);
        }
    }
    if (rc) {
        st_health_set(n->st, "rados: cannot follow the log: %s", strerror(-rc));
        return rc;
    }
    st_health_clear(n->st, "rados: cannot follow");
    *head_out = h.head;
    n->ckpt_seen = h.ckpt;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                              */
/* ------------------------------------------------------------------ */

/* A vector (or batch row) of dimension dim may go into coll, and when
 * mask asks for a new name (O_EXCL), name is not there. */
static int check_new(st_store *st, const char *coll, uint32_t dim, const char *name, unsigned mask)
{
    st_config cfg;
    st_attr a;
    int rc = st_coll_config_get(st, coll, &cfg);
    if (rc == 0 && cfg.dim && cfg.dim != dim)
        rc = -EINVAL;
    if (rc == 0 && (mask & ST_PUT_NEW) && st_vec_stat(st, coll, name, &a) == 0)
        rc = -EEXIST;
    return rc;
}

/* st_coll_rename's conditions: the source exists; a target that exists
 * is empty and may be replaced. 1 = the same name, nothing to do. */
static int check_coll_rename(st_store *st, const st_log_op *op)
{
    st_attr a, t;
    int rc = st_coll_stat(st, op->coll, &a);
    if (rc || strcmp(op->coll, op->to) == 0)
        return rc ? rc : 1;
    if (st_coll_stat(st, op->to, &t) != 0)
        return 0;
    if (op->flags & ST_RENAME_NOREPLACE)
        return -EEXIST;
    return t.count > 0 ? -ENOTEMPTY : 0;
}

/* Checks op against the local state (at the head just caught up to) and
 * resolves what the check decided: the entry carries no O_EXCL, NOREPLACE
 * or xattr CREATE/REPLACE condition, only what to do. 1 = nothing to do. */
static int check(st_store *st, const st_log_op *op, st_log_op *out)
{
    *out = *op;
    st_attr a;
    int rc = 0;
    switch (op->kind) {
    case ST_LOG_PUT:
        rc = check_new(st, op->coll, op->dim, op->name, op->mask);
        out->flags = op->mask & ST_PUT_NEW ? ST_LOG_PUT_NEW : 0;
        out->mask = op->mask & ~ST_PUT_NEW;
        return rc;
    case ST_LOG_BATCH:
        for (size_t i = 0; rc == 0 && i < op->nrows; i++)
            rc = check_new(st, op->coll, op->dim, op->rows[i].name, op->rows[i].mask);
        return rc;
    case ST_LOG_COLL_RENAME:
        out->flags = 0;
        return check_coll_rename(st, op);
    case ST_LOG_COLL_CONFIG: {
        st_coll_rec r;
        rc = st_coll_rec_read(st, op->coll, &r);
        return rc ? rc : st_coll_config_change_check(&r, &op->cfg);
    }
    case ST_LOG_COLL_ATTR:
        return st_coll_stat(st, op->coll, &a);
    case ST_LOG_RENAME:
        rc = st_vec_stat(st, op->coll, op->name, &a);
        if (rc == 0 && (op->flags & ST_RENAME_NOREPLACE) &&
            st_vec_stat(st, op->coll, op->to, &a) == 0)
            rc = -EEXIST;
        out->flags = 0;
        return rc == 0 && strcmp(op->name, op->to) == 0 ? 1 : rc;
    case ST_LOG_XATTR_SET:
    case ST_LOG_XATTR_REMOVE: {
        size_t len;
        rc = st_vec_stat(st, op->coll, op->name, &a);
        int x = rc ? rc : st_xattr_get(st, op->coll, op->name, op->to, NULL, 0, &len);
        if (rc == 0 && x == 0 && (op->flags & ST_XATTR_CREATE))
            rc = -EEXIST;
        else if (rc == 0 && x == -ENODATA &&
                 ((op->flags & ST_XATTR_REPLACE) || op->kind == ST_LOG_XATTR_REMOVE))
            rc = -ENODATA;
        out->flags = 0;
        return rc;
    }
    case ST_LOG_COLL_CREATE:
        return st_coll_stat(st, op->coll, &a) == 0 ? -EEXIST : 0;
    case ST_LOG_COLL_DROP:
        rc = st_coll_stat(st, op->coll, &a);
        return rc == 0 && a.count > 0 ? -ENOTEMPTY : rc;
    default: /* DELETE, SETATTR: the vector exists */
        return st_vec_stat(st, op->coll, op->name, &a);
    }
}

static void wake_follower(st_node *n, bool notify)
{
    pthread_mutex_lock(&n->wake_mu);
    n->wake = true;
    n->notify |= notify;
    pthread_cond_signal(&n->wake_cv);
    pthread_mutex_unlock(&n->wake_mu);
}

/* An append's error as the caller sees it: a cluster that did not answer
 * within the timeout is an I/O error. */
static int append_err(int rc)
{
    return rc == -ETIMEDOUT || rc == -ENOTCONN || rc == -ESHUTDOWN ? -EIO : rc;
}

/* After losing race number `race` (0 = the first): from the third on,
 * sleep a random time below 2^race ms (at most ST_NODE_BACKOFF_MAX_MS) (n->mu held: this node's
 * other writers would lose to the same winner), so that many writers that keep colliding spread
 * out. The first two retry at once: against one busy writer a sleep only makes the loser's next try
 * later. */
static void race_backoff(st_node *n, int race)
{
    if (race < ST_NODE_RACES_AT_ONCE)
        return;
    uint32_t r;
    if (st_random(&r, sizeof(r)) != 0)
        r = (uint32_t)n->id;
    unsigned ms = race < 5 ? 1u << race : ST_NODE_BACKOFF_MAX_MS;
    long us = (long)(r % (1000u * ms));
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Takes away the objects of a staged blob that no entry names (its
 * entry was not appended, or another try's bytes differ). */
static void unstage(st_node *n)
{
    if (n->staged)
        (void)st_blob_remove(&n->r, n->staged_ref.id, n->staged_ref.len); /* else left over */
    n->staged = false;
}

/* What to append for the entry in n->enc (n->mu held): itself, or when it
 * is over ST_LOG_INLINE_MAX a BLOB entry naming a blob of it (*blob set),
 * written first unless the blob of the last try holds the same bytes. */
static int stage(st_node *n, const st_log_entry *e, vc_buf **wire, const st_rados_blob_ref **blob)
{
    *wire = &n->enc;
    *blob = NULL;
    if (n->enc.len <= ST_LOG_INLINE_MAX)
        return 0;
    /* The blob's length is the stored one: sealed, the entry's plus the
     * seal's overhead. */
    size_t stored = n->enc.len + st_seal_overhead(&n->r);
    if (stored > ST_LOG_BLOB_MAX)
        return -EFBIG;
    uint32_t crc = vc_crc32c(0, n->enc.p, n->enc.len);
    int rc = 0;
    if (!n->staged || n->staged_ref.len != stored || n->staged_crc != crc) {
        unstage(n);
        rc = st_random(n->staged_ref.id, ST_LOG_BLOB_ID);
        if (rc == 0)
            rc = st_seal_blob(&n->r, n->staged_ref.id, &n->enc); /* in place */
        n->staged_ref.len = stored;
        n->staged_crc = crc;
        n->staged = rc == 0;
        if (rc == 0)
            rc = st_blob_put(&n->r, n->staged_ref.id, n->enc.p, n->enc.len);
#ifdef VECFS_TEST_HOOKS
        /* A writer killed between its upload and its append: the orphan
         * blob of tests/integration/rados_cache.py (test builds only). */
        if (rc == 0 && getenv("VECFS_TEST_KILL_AFTER_BLOB"))
            raise(SIGKILL);
#endif
        if (rc)
            return rc;
    }
    st_log_op ref = {.kind = ST_LOG_BLOB, .blob_len = stored, .blob_crc = crc};
    memcpy(ref.blob_id, n->staged_ref.id, ST_LOG_BLOB_ID);
    st_log_entry re = {.node = e->node, .written = e->written, .nops = 1, .ops = &ref};
    rc = st_log_entry_encode(&re, &n->ref_enc);
    *wire = &n->ref_enc;
    *blob = &n->staged_ref;
    return rc;
}

static int node_write(void *ctx, const st_log_op *op)
{
    st_node *n = ctx;
    if (n->read_only)
        return -EROFS; /* the filesystem refuses first; nothing gets here */
    st_log_entry e = {.node = n->id, .nops = 1};
    st_log_op checked;
    e.ops = &checked;
    /* One time for every try: a retry of a blob's entry then has the
     * same bytes and reuses the blob. */
    st_now(&e.written);
    struct timespec began, now;
    st_mono_now(&began);
    pthread_mutex_lock(&n->mu);
    int rc = -EAGAIN, cause = 0;
    const char *step = "catching up";
    bool appended = false;
    for (int race = 0;; race++) {
        uint64_t head;
        cause = catch_up(n, &head);
        rc = cause ? -EIO : check(n->st, op, &checked);
        if (rc)
            break;
        vc_buf *wire;
        const st_rados_blob_ref *blob;
        rc = st_log_entry_encode(&e, &n->enc);
        if (rc == 0)
            rc = stage(n, &e, &wire, &blob);
        if (rc == 0)
            rc = st_seal_entry(&n->r, head + 1, wire); /* in place: encoded again next try */
        if (rc)
            break;
        rc = st_rados_append(&n->r, head, wire->p, wire->len, blob);
        if (rc == -ECANCELED) {
            rc = -EAGAIN; /* lost the race: catch up and check again */
            st_mono_now(&now);
            if (race + 1 >= ST_NODE_RACES && st_ts_diff(&now, &began) >= n->race_s)
                break;
            race_backoff(n, race);
            continue;
        }
        if (rc) {
            /* Maybe appended (a lost acknowledgement): the blob stays. */
            n->staged = false;
            cause = rc;
            step = "appending";
            rc = append_err(rc);
            break;
        }
        appended = true;
        n->staged = false; /* the log names it now */
        rc = apply_entry(n, head + 1, &e);
        wake_follower(n, true);
        break;
    }
    if (!appended)
        unstage(n);
    if (cause)
        st_log(n->st, ST_LOG_WARN, "rados: a write to '%s' failed (%s): %s", op->coll, step,
               strerror(-cause));
    if (n->enc.len > ST_LOG_INLINE_MAX) {
        vc_buf_release(&n->enc); /* as large as the batch: not kept */
        vc_buf_release(&n->ref_enc);
    }
    pthread_mutex_unlock(&n->mu);
    return rc == 1 ? 0 : rc;
}

static int node_barrier(void *ctx)
{
    st_node *n = ctx;
    uint64_t head;
    pthread_mutex_lock(&n->mu);
    int rc = catch_up(n, &head);
    pthread_mutex_unlock(&n->mu);
    if (rc)
        st_log(n->st, ST_LOG_WARN, "rados: a read barrier failed (catching up): %s", strerror(-rc));
    return rc ? -EIO : 0;
}

/* ------------------------------------------------------------------ */
/* Following                                                            */
/* ------------------------------------------------------------------ */

static void on_watch(void *ctx, bool lost)
{
    st_node *n = ctx;
    pthread_mutex_lock(&n->wake_mu);
    n->wake = true;
    n->rewatch |= lost;
    pthread_cond_signal(&n->wake_cv);
    pthread_mutex_unlock(&n->wake_mu);
}

/* Writes a checkpoint when one is due (docs/scale-out.md §6) and this
 * node holds the lease; the follower's thread, n->mu not held. */
static void ckpt_maybe(st_node *n)
{
    pthread_mutex_lock(&n->mu);
    uint64_t applied = n->applied, ckpt = n->ckpt_seen;
    pthread_mutex_unlock(&n->mu);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (applied <= ckpt || n->read_only) {
        n->uncovered_since.tv_sec = 0;
        return;
    }
    if (n->uncovered_since.tv_sec == 0)
        n->uncovered_since = now;
    bool due = applied - ckpt >= n->ckpt_entries ||
               now.tv_sec - n->uncovered_since.tv_sec >= 60 * (time_t)n->ckpt_minutes;
    if (!due || now.tv_sec < n->ckpt_retry_at.tv_sec)
        return;
    st_ckpt_take_args a = {.mu = &n->mu,
                           .applied = &n->applied,
                           .keep = n->ckpt_entries,
                           .cookie = n->cookie,
                           .lease_s = n->lease_s,
                           .orphan_age_s = n->orphan_age_s};
    int rc = st_ckpt_take(n->st, &n->r, &a);
    if (rc && rc != -EBUSY && rc != -ECANCELED)
        st_log(n->st, ST_LOG_WARN, "rados: cannot write checkpoint %" PRIu64 ": %s", applied,
               strerror(-rc));
    /* Not due again before the next catch-up has seen the new ckpt; a
     * held lease or a failure is tried again a second later. */
    n->ckpt_retry_at.tv_sec = now.tv_sec + (rc ? 1 : 0);
}

static void *follow(void *arg)
{
    st_node *n = arg;
    for (;;) {
        pthread_mutex_lock(&n->wake_mu);
        if (!n->wake && !n->stop) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += ST_NODE_POLL_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&n->wake_cv, &n->wake_mu, &until);
        }
        bool stop = n->stop, notify = n->notify, rewatch = n->rewatch;
        n->wake = n->notify = n->rewatch = false;
        pthread_mutex_unlock(&n->wake_mu);
        if (stop)
            return NULL;
        if (notify)
            (void)st_rados_notify(&n->r); /* a missed notify costs one poll */
        if (rewatch && st_rados_watch(&n->r, on_watch, n) != 0)
            st_log(n->st, ST_LOG_WARN, "rados: lost the watch on the log; polling");
        uint64_t head;
        pthread_mutex_lock(&n->mu);
        int rc = catch_up(n, &head); /* an error is in health; the next round retries */
        pthread_mutex_unlock(&n->mu);
        if (rc == 0)
            ckpt_maybe(n);
    }
}

static void node_stop(void *ctx)
{
    st_node *n = ctx;
    if (n->following) {
        pthread_mutex_lock(&n->wake_mu);
        n->stop = true;
        pthread_cond_signal(&n->wake_cv);
        pthread_mutex_unlock(&n->wake_mu);
        pthread_join(n->follower, NULL);
    }
    n->st->log_hooks = NULL;
    if (!n->read_only)
        st_rados_lease_release(&n->r, n->cookie);
    st_rados_disconnect(&n->r);
    vc_buf_release(&n->enc);
    vc_buf_release(&n->opened);
    vc_buf_release(&n->ref_enc);
    pthread_mutex_destroy(&n->mu);
    pthread_mutex_destroy(&n->wake_mu);
    pthread_cond_destroy(&n->wake_cv);
    free(n);
}

static const st_log_hooks node_hooks = {
    .write = node_write,
    .barrier = node_barrier,
    .stop = node_stop,
};

/* ------------------------------------------------------------------ */
/* Opening                                                              */
/* ------------------------------------------------------------------ */

/* Fetches a checkpoint into cachedir (docs/scale-out.md §7): `why` says
 * why, for the error message. */
static int fetch(st_node *n, const char *cachedir, const st_options *opt, const char *why,
                 char *note, size_t notelen)
{
    uint64_t seq;
    int rc = st_ckpt_fetch(&n->r, cachedir, &seq, note, notelen);
    if (rc)
        st_errbuf_set(opt, "cannot load a checkpoint into %s (%s): %s%s%s", cachedir, why,
                      strerror(-rc), note[0] ? "; " : "", note);
    return rc;
}

/* Opens the local store, from the newest checkpoint when the cache is
 * empty or behind the log's trim; n->applied = its applied seq. */
static int local_open(st_node *n, const char *cachedir, const st_options *local,
                      const st_rados_head *h, char *note, size_t notelen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/data.mdb", cachedir);
    int rc = 0;
    if (h->ckpt > 0 && access(path, F_OK) != 0)
        rc = fetch(n, cachedir, local, "empty cache", note, notelen);
    if (rc == 0)
        rc = st_store_open(cachedir, local, &n->st);
    if (rc == 0)
        rc = st_log_applied_get(n->st, &n->applied);
    if (rc == 0 && h->ckpt > 0 && n->applied + 1 < h->trim) {
        /* The entries after applied are gone: this cache is only good
         * for a checkpoint's place. */
        st_store_close(n->st);
        n->st = NULL;
        st_ckpt_local_remove(cachedir);
        rc = fetch(n, cachedir, local, "cache behind the log's trim", note, notelen);
        if (rc == 0)
            rc = st_store_open(cachedir, local, &n->st);
        if (rc == 0)
            rc = st_log_applied_get(n->st, &n->applied);
    }
    return rc;
}

/* Discards the cache in cachedir unless it is this log's and was not
 * torn (scale-out.md §7; `dropped` says why it was), then marks it open
 * under this boot before anything writes to it. */
static int cache_admit(st_node *n, const char *cachedir, const st_rados_options *ro,
                       const st_rados_head *h, st_cache_id *id, char *dropped, size_t droplen)
{
    int rc = st_cache_id_of(&n->r, ro, h->format, id);
    if (rc)
        return rc;
    char why[512];
    if (st_cache_id_judge(cachedir, id, why, sizeof(why))) {
        st_ckpt_local_remove(cachedir);
        snprintf(dropped, droplen,
                 "rados: discarded the cache in %s: %s; joining from the checkpoint", cachedir,
                 why);
    }
    return st_cache_id_write(cachedir, id, false);
}

int st_rados_open(const char *cachedir, const st_options *opt, const st_rados_options *ro,
                  st_store **out)
{
    *out = NULL;
    st_node *n = vc_calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    st_rados_head h;
    int rc = st_rados_log_open(ro, opt, &n->r, &h);
    if (rc) {
        free(n);
        return rc;
    }
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->wake_mu, NULL);
    pthread_cond_init(&n->wake_cv, NULL);
    rc = st_random(&n->id, sizeof(n->id));
    snprintf(n->cookie, sizeof(n->cookie), "%016" PRIx64, n->id);
    n->race_s = ro->timeout_s ? ro->timeout_s : ST_RADOS_TIMEOUT_DEFAULT;
    n->ckpt_entries = ro->ckpt_entries ? ro->ckpt_entries : ST_RADOS_CKPT_ENTRIES_DEFAULT;
    n->ckpt_minutes = ro->ckpt_minutes ? ro->ckpt_minutes : ST_RADOS_CKPT_MINUTES_DEFAULT;
    n->lease_s = ro->ckpt_lease_s ? ro->ckpt_lease_s : ST_RADOS_CKPT_LEASE_DEFAULT;
    n->orphan_age_s = ro->orphan_age_s ? ro->orphan_age_s : ST_RADOS_ORPHAN_AGE_DEFAULT;
    /* The pool holds the durable copy: local commits need not wait for
     * the disk (docs/scale-out.md §7). */
    st_options local;
    if (opt)
        local = *opt;
    else
        st_options_default(&local);
    local.sync_mode = ST_SYNC_FAST;
    /* A read-only node still applies the log to its cache: it refuses its
     * callers' writes instead (node_write; the filesystem first). */
    n->read_only = local.read_only;
    local.read_only = false;
    char note[1024] = "", dropped[1024] = "";
    st_cache_id *id = vc_calloc(1, sizeof(*id));
    if (rc == 0) {
        rc = id ? cache_admit(n, cachedir, ro, &h, id, dropped, sizeof(dropped)) : -ENOMEM;
        if (rc)
            st_errbuf_set(opt, "cannot record the identity of the cache %s: %s", cachedir,
                          strerror(-rc));
    }
    if (rc == 0)
        rc = local_open(n, cachedir, &local, &h, note, sizeof(note));
    if (rc == 0 && n->applied > h.head) {
        st_errbuf_set(opt,
                      "%s has applied entry %" PRIu64 " but the log in pool '%s' ends at %" PRIu64
                      ": it is the cache of another log; empty it",
                      cachedir, n->applied, ro->pool, h.head);
        rc = -ESTALE;
    }
    if (rc) {
        st_store *st = n->st;
        n->st = NULL;
        st_store_close(st);
        st_rados_disconnect(&n->r);
        free(id);
        free(n);
        return rc;
    }
    n->st->cache_id = id; /* closed cleanly by st_store_close's last sync */
    if (dropped[0])
        st_log(n->st, ST_LOG_WARN, "%s", dropped);
    if (note[0])
        st_log(n->st, ST_LOG_INFO, "%s", note);
    n->st->log_hooks = &node_hooks;
    n->st->log_ctx = n;
    uint64_t head;
    pthread_mutex_lock(&n->mu);
    rc = catch_up(n, &head);
    pthread_mutex_unlock(&n->mu);
    if (rc == 0 && st_rados_watch(&n->r, on_watch, n) != 0)
        st_log(n->st, ST_LOG_WARN, "rados: lost the watch on the log; polling");
    if (rc == 0) {
        rc = -pthread_create(&n->follower, NULL, follow, n);
        n->following = rc == 0;
    }
    if (rc) {
        st_errbuf_set(opt, "cannot catch up with the log in pool '%s': %s", ro->pool,
                      strerror(-rc));
        st_store_close(n->st); /* stops the node too */
        return rc;
    }
    *out = n->st;
    return 0;
}
