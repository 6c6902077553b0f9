/*
 * log.c — leveled logging to stderr or syslog.
 *
 * Invariants
 *   1. Each message is formatted into one buffer and emitted with a single
 *      write(2) or syslog(3), so lines from different threads never mix.
 *   2. threshold and to_syslog are set once at start (before any thread)
 *      and only read afterwards; they are atomics so a late change is still
 *      well defined.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static atomic_int threshold = FSD_LOG_INFO;
static atomic_bool to_syslog = false;

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
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
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
