/*
 * log.c — leveled logging to stderr or syslog.
 *
 * Invariants
 *   1. Each message is formatted into one buffer and emitted with a single
 *      write(2) or syslog(3), so lines from different threads never mix.
 *   2. threshold and to_syslog are set once at start (before any thread)
 *      and only read afterwards; they are atomics so a late change is still
 *      well defined.
 *   3. While `holding`, lines are kept in `held` (protected by hold_lock)
 *      instead of written: a start that fails prints exactly one line
 *      (SPEC §2), a start that succeeds emits them after the mount.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static atomic_int threshold = FSD_LOG_INFO;
static atomic_bool to_syslog = false;
static atomic_bool holding = false;
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static char held[16384]; /* protected by hold_lock: (level byte, text, NUL)* */
static size_t held_len;  /* protected by hold_lock */

static void emit(fsd_log_level level, const char *msg);

void fsd_log_hold(void)
{
    atomic_store(&holding, true);
}

void fsd_log_release(bool write_them)
{
    pthread_mutex_lock(&hold_lock);
    atomic_store(&holding, false);
    for (size_t i = 0; write_them && i < held_len;) {
        fsd_log_level level = (fsd_log_level)held[i];
        const char *msg = held + i + 1;
        emit(level, msg);
        i += 2 + strlen(msg);
    }
    held_len = 0;
    pthread_mutex_unlock(&hold_lock);
}

void fsd_log_setup(fsd_log_level level, bool use_syslog)
{
    atomic_store(&threshold, (int)level);
    atomic_store(&to_syslog, use_syslog);
    if (use_syslog)
        openlog("vecfs", LOG_PID, LOG_DAEMON);
}

void fsd_log(fsd_log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&threshold))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (atomic_load(&holding)) {
        pthread_mutex_lock(&hold_lock);
        size_t n = strlen(msg);
        bool kept = atomic_load(&holding);
        if (kept && held_len + n + 2 <= sizeof held) {
            held[held_len] = (char)level;
            memcpy(held + held_len + 1, msg, n + 1);
            held_len += n + 2;
        }
        pthread_mutex_unlock(&hold_lock);
        if (kept)
            return; /* a full buffer drops the line: start-up logs are short */
    }
    emit(level, msg);
}

/* Writes one formatted line to syslog or stderr. */
static void emit(fsd_log_level level, const char *msg)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    if (atomic_load(&to_syslog)) {
        syslog(prio[level], "%s", msg);
        return;
    }
    char line[1200];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02dZ vecfs %s: %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     names[level], msg);
    if (n > 0) {
        size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        ssize_t w = write(STDERR_FILENO, line, len);
        (void)w;
    }
}
