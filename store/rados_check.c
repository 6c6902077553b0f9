/*
 * rados_check.c — `vecfs check --rados-*`: the cluster side of the log
 * (docs/scale-out.md §9). It reads vecfs.head's fields and every entry
 * from trim to head (and the blob of each BLOB entry), and reports each
 * one that is missing, out of place, does not decode or whose blob is
 * missing or fails its length or CRC-32C; then the newest checkpoint's manifest and pieces
 * (their lengths and CRC-32C). Blob objects that no entry names
 * (rados_orphans.c) are listed as a warning, not damage: a writer killed
 * between its upload and its append leaves them, and they harm nothing.
 * Read-only: it never creates the log. A sealed log needs its key (opt's):
 * every entry and blob must open.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "internal.h"

typedef struct check_state {
    st_rados *r;
    FILE *report;
    uint64_t entries, ops, bad, blobs, orphans;
    vc_buf opened; /* an entry of a sealed log, opened */
} check_state;

static int check_entry(void *ctx, uint64_t seq, const void *bytes, size_t len)
{
    check_state *cs = ctx;
    st_log_entry e;
    int rc = st_seal_entry_open(cs->r, seq, bytes, len, &cs->opened, &bytes, &len);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        cs->entries++;
        cs->bad++;
        fprintf(cs->report, "entry %" PRIu64 ": does not authenticate (%zu bytes)\n", seq, len);
        return 0;
    }
    rc = st_log_entry_decode(bytes, len, &e);
    if (rc == -ENOMEM)
        return rc;
    cs->entries++;
    if (rc) {
        cs->bad++;
        fprintf(cs->report, "entry %" PRIu64 ": does not decode (%zu bytes)\n", seq, len);
        return 0;
    }
    bool blob = e.ops[0].kind == ST_LOG_BLOB;
    vc_buf scratch = VC_BUF_INIT;
    rc = st_blob_entry(cs->r, &e, &scratch);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        cs->bad++;
        fprintf(cs->report, "entry %" PRIu64 ": its blob is unreadable (%s)\n", seq, strerror(-rc));
        return 0;
    }
    cs->blobs += blob;
    cs->ops += e.nops;
    st_log_entry_free(&e);
    return 0;
}

/* st_orphans_walk's callback: one warning line per orphan object. */
static int report_orphan(void *ctx, const char *oid, time_t mtime)
{
    check_state *cs = ctx;
    cs->orphans++;
    fprintf(cs->report,
            "warning: blob object %s is named by no entry (an orphan, %lld s old; the "
            "checkpoint writer removes it after --rados-orphan-age)\n",
            oid, (long long)(time(NULL) - mtime));
    return 0;
}

/* The newest published checkpoint: listed, at h->ckpt, and sound. */
static int check_ckpt(st_rados *r, const st_rados_head *h, FILE *report, uint64_t *bad)
{
    uint64_t newest;
    size_t n;
    int rc = st_rados_ckpt_list(r, &newest, 1, &n);
    if (rc)
        return rc;
    if (n == 0 || newest != h->ckpt) {
        fprintf(report, "checkpoint %" PRIu64 ": published but not listed\n", h->ckpt);
        *bad = 1;
        return 0;
    }
    return st_ckpt_verify(r, newest, report, bad);
}

int st_rados_check(const st_rados_options *ro, const st_options *opt, FILE *report)
{
    char err[512];
    st_rados r;
    int rc = st_rados_connect(ro, &r, err, sizeof(err));
    if (rc) {
        st_errbuf_set(opt, "%s", err);
        return rc;
    }
    st_rados_head h;
    rc = st_rados_head_read(&r, &h);
    if (rc) {
        st_errbuf_set(opt, "no readable vecfs log in pool '%s': %s", ro->pool, strerror(-rc));
        st_rados_disconnect(&r);
        return rc;
    }
    rc = st_seal_take(&r, h.seal, h.seal_len, ro, opt);
    if (rc) {
        st_rados_disconnect(&r);
        return rc;
    }
    fprintf(report,
            "log: pool %s namespace '%s' format %s head %" PRIu64 " trim %" PRIu64 " ckpt %" PRIu64
            "\n",
            ro->pool, ro->ns ? ro->ns : "", h.format, h.head, h.trim, h.ckpt);
    check_state cs = {.r = &r, .report = report};
    bool damaged = strcmp(h.format, ST_RADOS_FORMAT) != 0 || h.trim == 0 || h.trim > h.head + 1;
    if (damaged)
        fprintf(report, "head fields: format must be %s and 1 <= trim <= head + 1\n",
                ST_RADOS_FORMAT);
    else if (h.head >= h.trim)
        rc = st_rados_entries(&r, h.trim - 1, h.head, check_entry, &cs);
    if (rc == -EPROTO) {
        fprintf(report, "entries: one is missing or out of place after entry %" PRIu64 "\n",
                h.trim - 1 + cs.entries);
        damaged = true;
        rc = 0;
    }
    uint64_t ckpt_bad = 0;
    if (rc == 0 && !damaged && h.ckpt > 0)
        rc = check_ckpt(&r, &h, report, &ckpt_bad);
    if (rc == 0 && !damaged)
        rc = st_orphans_walk(&r, report_orphan, &cs);
    bool sealed = r.seal != NULL;
    vc_buf_release(&cs.opened);
    st_rados_disconnect(&r);
    if (rc) {
        st_errbuf_set(opt, "cannot read the vecfs log in pool '%s': %s", ro->pool, strerror(-rc));
        return rc;
    }
    fprintf(report,
            "entries: %" PRIu64 " read (%" PRIu64 " in blobs), %" PRIu64 " operations, %" PRIu64
            " damaged%s\n",
            cs.entries, cs.blobs, cs.ops, cs.bad, sealed ? "; sealed with the key" : "");
    if (cs.orphans)
        fprintf(report, "warning: %" PRIu64 " orphan blob objects (not damage)\n", cs.orphans);
    return damaged || cs.bad || ckpt_bad ? 1 : 0;
}
