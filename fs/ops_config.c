/*
 * ops_config.c — the `.config` file of a collection (SPEC §3.2): its text,
 * its attributes, whether it is listed, and applying a written text.
 *
 * The .config file exists only while the collection's config differs from
 * the defaults (a fresh collection has none) and its name is not unlinked.
 * So `cp -a` and `tar -x`, which create every file with O_CREAT|O_EXCL in
 * a directory they just made, can create it. Its mtime is its own
 * (persisted in the collection record): now when its text changes (a
 * write, the first vector fixing dim), or what utimens sets; before the
 * commit that time waits in the open file's pend_mask like a vector's
 * (vfile.c). rsync's quick check (size + mtime) therefore sees a copied
 * .config as equal and a changed one as different. Its owner and mode are
 * the collection's (chmod and chown on it succeed without effect).
 *
 * An open .config is an open vector file (vfile.c, ops_vec.c) whose load
 * and commit call fsd_config_text and fsd_config_commit here.
 *
 * Invariants
 *   1. d->cfg_hidden holds each collection name at most once: the
 *      collections whose .config was unlinked and not written since
 *      (protected by d->cfg_lock, a leaf lock; nothing is called while it
 *      is held).
 *   2. Unlinking .config never changes the config in force.
 */
#include "fsd.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* true when coll's .config name is unlinked (invariant 1). */
static bool config_hidden(fsd *d, const char *coll)
{
    bool hidden = false;
    pthread_mutex_lock(&d->cfg_lock);
    for (size_t i = 0; i < d->cfg_nhidden && !hidden; i++)
        hidden = strcmp(d->cfg_hidden[i], coll) == 0;
    pthread_mutex_unlock(&d->cfg_lock);
    return hidden;
}

bool fsd_config_visible(fsd *d, const char *coll)
{
    st_config c;
    return !config_hidden(d, coll) && st_coll_config_get(d->store, coll, &c) == 0 &&
           !st_config_is_default(&c);
}

int fsd_config_hide(fsd *d, const char *coll)
{
    if (!fsd_config_visible(d, coll))
        return -ENOENT;
    size_t len = strlen(coll);
    char *copy = vc_malloc(len + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, coll, len + 1);
    pthread_mutex_lock(&d->cfg_lock);
    char **n = vc_realloc(d->cfg_hidden, (d->cfg_nhidden + 1) * sizeof *n);
    if (n != NULL) {
        d->cfg_hidden = n;
        d->cfg_hidden[d->cfg_nhidden++] = copy;
        copy = NULL;
    }
    pthread_mutex_unlock(&d->cfg_lock);
    free(copy);
    return n != NULL ? 0 : -ENOMEM;
}

void fsd_config_unhide(fsd *d, const char *coll)
{
    pthread_mutex_lock(&d->cfg_lock);
    for (size_t i = 0; i < d->cfg_nhidden; i++) {
        if (strcmp(d->cfg_hidden[i], coll) == 0) {
            free(d->cfg_hidden[i]);
            d->cfg_hidden[i] = d->cfg_hidden[--d->cfg_nhidden];
            break;
        }
    }
    pthread_mutex_unlock(&d->cfg_lock);
}

void fsd_config_hidden_free(fsd *d)
{
    for (size_t i = 0; i < d->cfg_nhidden; i++)
        free(d->cfg_hidden[i]);
    free(d->cfg_hidden);
    d->cfg_hidden = NULL;
    d->cfg_nhidden = 0;
}

int fsd_config_text(fsd *d, const char *coll, vc_buf *out, st_attr *attr)
{
    assert(coll != NULL && out != NULL && attr != NULL);
    st_config c;
    struct timespec mtime;
    int rc = st_coll_config_stat(d->store, coll, &c, &mtime);
    if (rc == 0)
        rc = st_coll_stat(d->store, coll, attr);
    if (rc < 0)
        return rc;
    attr->mode = S_IFREG | (attr->mode & 0666);
    attr->ino = 0;
    attr->atime = attr->mtime = attr->ctime = mtime;
    size_t len = 0;
    (void)st_config_format(&c, NULL, 0, &len);
    vc_buf_reset(out);
    rc = vc_buf_grow(out, len + 1);
    if (rc < 0)
        return rc;
    rc = st_config_format(&c, out->p, len + 1, &len);
    if (rc < 0)
        return rc;
    vc_buf_setlen(out, len);
    return 0;
}

int fsd_config_commit(fsd *d, const char *coll, const vc_buf *text, const struct timespec *mtime)
{
    assert(coll != NULL && text != NULL);
    st_config base, next;
    int rc = st_coll_config_get(d->store, coll, &base);
    if (rc < 0)
        return rc;
    char why[200] = "";
    rc = st_config_parse(text->p ? text->p : "", text->len, &base, &next, why, sizeof why);
    if (rc == 0)
        rc = st_coll_config_set(d->store, coll, &next, mtime);
    if (rc < 0) {
        fsd_log(FSD_LOG_INFO, "%s/.config rejected: %s", coll, why[0] ? why : strerror(-rc));
        return rc;
    }
    fsd_config_unhide(d, coll);
    return 0;
}

int fsd_config_stat(fsd *d, const fsd_ref *coll, fuse_ino_t ino, struct stat *st)
{
    vc_buf text = VC_BUF_INIT;
    st_attr a;
    int rc = fsd_config_text(d, coll->coll, &text, &a);
    if (rc == 0) {
        a.size = text.len;
        fsd_attr_to_stat(&a, ino, st);
    }
    vc_buf_release(&text);
    return rc;
}
