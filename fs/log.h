/*
 * log.h — the daemon's leveled log: stderr in the foreground, syslog once
 * daemonized. Thread-safe (one write(2)/syslog(3) call per line).
 */
#ifndef VECFS_FS_LOG_H
#define VECFS_FS_LOG_H

#include <stdbool.h>

typedef enum fsd_log_level {
    FSD_LOG_ERROR = 0,
    FSD_LOG_WARN = 1,
    FSD_LOG_INFO = 2,
    FSD_LOG_DEBUG = 3,
} fsd_log_level;

/* Sets the threshold (messages above it are dropped) and the sink:
 * use_syslog routes lines to syslog(LOG_DAEMON) under "vecfs". */
void fsd_log_setup(fsd_log_level threshold, bool use_syslog);

/* From now on keep lines instead of writing them (start-up). */
void fsd_log_hold(void);
/* Stops keeping lines; writes the kept ones through the current sink if
 * write_them, else drops them. Harmless when not holding. */
void fsd_log_release(bool write_them);

/* Logs one line (no trailing newline needed). */
void fsd_log(fsd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* VECFS_FS_LOG_H */
