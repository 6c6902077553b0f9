/*
 * health.c — what the store tells its operator: log lines (through the
 * caller's sink or stderr), the health text behind .vecfs/health, and the
 * one-line reason of a failed open (st_options.errbuf).
 *
 * Invariants
 *   1. The health text is a set of lines, each at most once; a problem is
 *      added by st_health_set and removed, once fixed, by st_health_clear
 *      with its prefix ("sync failed").
 *   2. Nothing here blocks on I/O other than the log sink: st_store_health
 *      copies the text under health_mu and formats outside it, then adds
 *      the space state (space.c: a statvfs and, near a bound, a read of
 *      LMDB's free list; neither waits for writers).
 *
 * Lock: st->health_mu protects st->health; it is the innermost lock of the
 * store (taken with c->mu held, never the other way round).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void st_log(st_store *st, st_log_level lvl, const char *fmt, ...)
{
    if (st && lvl > st->opt.log_level)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (st && st->opt.log) {
        st->opt.log(st->opt.log_ctx, lvl, msg);
        return;
    }
    static const char *const names[] = {"error", "warn", "info", "debug"};
    fprintf(stderr, "vecfs store %s: %s\n", names[lvl <= ST_LOG_DEBUG ? lvl : 0], msg);
}

void st_health_set(st_store *st, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&st->health_mu);
    if (!strstr(st->health, line) && strlen(st->health) + strlen(line) + 2 < sizeof(st->health)) {
        strcat(st->health, line);
        strcat(st->health, "\n");
    }
    pthread_mutex_unlock(&st->health_mu);
}

void st_health_clear(st_store *st, const char *prefix)
{
    pthread_mutex_lock(&st->health_mu);
    char out[sizeof(st->health)] = "";
    char *save = NULL, *line = strtok_r(st->health, "\n", &save);
    while (line) {
        if (strncmp(line, prefix, strlen(prefix)) != 0) {
            strcat(out, line);
            strcat(out, "\n");
        }
        line = strtok_r(NULL, "\n", &save);
    }
    memcpy(st->health, out, sizeof(out));
    pthread_mutex_unlock(&st->health_mu);
}

void st_errbuf_set(const st_options *o, const char *fmt, ...)
{
    if (!o || !o->errbuf || o->errbuf_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->errbuf, o->errbuf_len, fmt, ap);
    va_end(ap);
}

int st_store_health(st_store *st, char *buf, size_t cap, size_t *len_out)
{
    if (!st || (!buf && cap))
        return -EINVAL;
    char tmp[sizeof(st->health) + 256];
    pthread_mutex_lock(&st->health_mu);
    memcpy(tmp, st->health, sizeof(st->health));
    pthread_mutex_unlock(&st->health_mu);
    /* Fullness is a state, looked at now: it clears itself when space
     * returns. */
    if (!st->opt.read_only) {
        size_t used = strlen(tmp);
        st_space_problem(st, tmp + used, sizeof(tmp) - used);
    }
    int bad = tmp[0] != 0;
    if (!bad)
        snprintf(tmp, sizeof(tmp), "ok\n");
    size_t n = strlen(tmp);
    if (cap) {
        size_t c = n < cap ? n : cap - 1;
        memcpy(buf, tmp, c);
        buf[c] = 0;
        n = c;
    }
    if (len_out)
        *len_out = n;
    return bad;
}
