/*
 * daemon.c — the daemon object (fsd, fsd.h): what one mount holds, made
 * by fsd_create before the FUSE session starts and freed by fsd_destroy
 * after it ended.
 *
 * Invariants
 *   1. Every field fsd.h marks immutable is set here, before any request
 *      can run, and never written again.
 *   2. fsd_destroy runs with no request in flight: it frees the handles
 *      the kernel never released (handle.c) and the open vector files
 *      (vfile.c) before the tables they point into, and closes the store
 *      last but one (queries first: they hold no store state).
 *   3. A failed fsd_create undoes itself through fsd_destroy, which
 *      accepts a partly built daemon.
 */
#include "vfile.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* The store's log lines, into ours. */
static void store_log(void *ctx, st_log_level level, const char *msg)
{
    (void)ctx;
    fsd_log((fsd_log_level)level, "store: %s", msg);
}

/* Progress of the store's long work (a background index rebuild: what is
 * the collection's name) into the log, a line per tenth. The store runs
 * one rebuild at a time, on one thread. */
static void store_progress(void *ctx, const char *what, uint64_t done, uint64_t total)
{
    static char last_what[256];
    static unsigned last_tenth;
    (void)ctx;
    unsigned tenth = total ? (unsigned)(done * 10 / total) : 10;
    if (done == 0 || strcmp(what, last_what) != 0) {
        snprintf(last_what, sizeof last_what, "%s", what);
        last_tenth = 0;
    } else if (tenth <= last_tenth) {
        return;
    }
    last_tenth = tenth;
    fsd_log(FSD_LOG_INFO, "collection '%s': index rebuild %u%% (%llu of %llu vectors)", what,
            tenth * 10, (unsigned long long)done, (unsigned long long)total);
}

int fsd_create(const fsd_open_params *p, fsd **out, char *msg, size_t msglen)
{
    assert(p != NULL && out != NULL && msg != NULL && msglen > 0);
    *out = NULL;
    fsd *d = vc_calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    clock_gettime(CLOCK_REALTIME, &d->started);
    d->read_only = p->read_only;
    d->single_user = p->single_user;
    d->vf_nbuckets = 4096;
    d->vf_buckets = vc_calloc(d->vf_nbuckets, sizeof *d->vf_buckets);
    int rc = d->vf_buckets == NULL ? -ENOMEM : 0;
    if (rc == 0 && pthread_mutex_init(&d->vf_lock, NULL) != 0)
        rc = -ENOMEM;
    if (rc == 0 && pthread_mutex_init(&d->cfg_lock, NULL) != 0)
        rc = -ENOMEM;
    if (rc == 0 && pthread_mutex_init(&d->fh_lock, NULL) != 0)
        rc = -ENOMEM;
    if (rc == 0)
        rc = fsd_inodes_create(&d->inodes);
    if (rc == 0)
        rc = fsd_queries_create(FSD_QUERY_IDLE_SECONDS, &d->queries);
    if (rc == 0)
        rc = fsd_imports_create(&d->imports);
    if (rc < 0) {
        snprintf(msg, msglen, "out of memory");
        goto fail;
    }
    struct stat ds;
    if (stat(p->datadir, &ds) < 0) {
        rc = -errno;
        snprintf(msg, msglen, "DATADIR %s: %s", p->datadir, strerror(errno));
        goto fail;
    }
    d->root.st_ino = FSD_INO_ROOT;
    d->root.st_mode = S_IFDIR | (ds.st_mode & 07777);
    d->root.st_nlink = 2;
    d->root.st_uid = ds.st_uid;
    d->root.st_gid = ds.st_gid;
    d->root.st_atim = ds.st_atim;
    d->root.st_mtim = ds.st_mtim;
    d->root.st_ctim = ds.st_ctim;
    d->root.st_blksize = 4096;

    st_options o;
    st_options_default(&o);
    o.read_only = p->read_only;
    o.max_size = p->max_size;
    o.log = store_log;
    o.progress = store_progress;
    o.log_level = ST_LOG_INFO;
    o.errbuf = msg;
    o.errbuf_len = msglen;
    uint8_t *key = NULL;
    size_t klen = 0;
    bool pass = false;
    if (p->key_file != NULL) {
        rc = st_key_load(p->key_file, &key, &klen, &pass);
        if (rc < 0) {
            snprintf(msg, msglen, "key file %s: %s", p->key_file, strerror(-rc));
            goto fail;
        }
        o.key = key;
        o.key_len = klen;
        o.key_is_passphrase = pass;
    }
    msg[0] = '\0';
    rc = p->rados ? st_rados_open(p->datadir, &o, p->rados, &d->store)
                  : st_store_open(p->datadir, &o, &d->store);
    st_key_free(key, klen);
    if (rc < 0) {
        if (msg[0] == '\0') {
            if (rc == -EBUSY)
                snprintf(msg, msglen, "DATADIR %s is in use by another vecfs", p->datadir);
            else if (rc == -EKEYREJECTED)
                snprintf(msg, msglen, "wrong key for %s", p->datadir);
            else if (rc == -EPROTO)
                snprintf(msg, msglen, "DATADIR %s holds a store of another format version",
                         p->datadir);
            else
                snprintf(msg, msglen, "cannot open the store in %s: %s", p->datadir, strerror(-rc));
        }
        goto fail;
    }
    *out = d;
    return 0;
fail:
    d->store = NULL;
    (void)fsd_destroy(d);
    return rc;
}

int fsd_destroy(fsd *d)
{
    if (d == NULL)
        return 0;
    if (d->vf_buckets != NULL) {
        fsd_fh_discard_all(d);
        fsd_vfiles_discard(d);
    }
    fsd_queries_free(d->queries);
    int rc = st_store_close(d->store);
    fsd_imports_free(d->imports);
    fsd_inodes_free(d->inodes);
    if (d->vf_buckets != NULL) {
        pthread_mutex_destroy(&d->vf_lock);
        pthread_mutex_destroy(&d->cfg_lock);
        pthread_mutex_destroy(&d->fh_lock);
    }
    fsd_config_hidden_free(d);
    free(d->vf_buckets);
    free(d);
    return rc;
}
