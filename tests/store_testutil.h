/*
 * store_testutil.h — helpers shared by the store tests: temporary
 * directories, deterministic random vectors, quiet store options.
 */
#ifndef VECFS_TESTS_STORE_TESTUTIL_H
#define VECFS_TESTS_STORE_TESTUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static inline int tu_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Makes a fresh temp dir; returns a malloc'ed path. */
static inline char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/vecfs-store-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void tu_rmdir(char *d)
{
    if (!d)
        return;
    nftw(d, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

static inline uint64_t tu_rng(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static inline float tu_frand(uint64_t *s)
{
    return (float)((tu_rng(s) >> 40) / (double)(1u << 24)) * 2.0f - 1.0f;
}

static inline void tu_vec(uint64_t *s, float *v, size_t dim)
{
    for (size_t i = 0; i < dim; i++)
        v[i] = tu_frand(s);
}

static inline void tu_quiet_log(void *ctx, st_log_level lvl, const char *msg)
{
    (void)ctx;
    if (lvl <= ST_LOG_WARN || getenv("VECFS_TEST_VERBOSE"))
        fprintf(stderr, "  [store] %s\n", msg);
}

static inline void tu_opts(st_options *o)
{
    st_options_default(o);
    o->log = tu_quiet_log;
    o->sync_mode = ST_SYNC_SAFE;
}

#endif
