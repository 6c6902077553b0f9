/*
 * audit.h — the audit log (SPEC §5): one JSON line per mutating operation,
 * appended to the file given with --audit-log:
 *
 *   {"time":"2026-11-24T10:00:00.123Z","uid":1000,"gid":1000,"pid":4242,
 *    "op":"unlink","path":"c1/doc-7.f32","result":0}
 *
 * `result` is 0 or the positive errno the caller got; `new_path` is added
 * for renames, `rows` for imports. Query files are not logged (they are
 * private scratch space and change nothing). Each line is written with
 * one write(2) on an O_APPEND descriptor, so lines from concurrent
 * requests never interleave and the file is only ever appended to.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef VECFS_FS_AUDIT_H
#define VECFS_FS_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Opens (creating with mode 0600) the audit log at path for appending.
 * Must be called before any request is served. Returns 0, or a negative
 * errno from open(2). */
int fsd_audit_open(const char *path);

/* Opens the log's path again in place of the open one, for logrotate:
 * after a rename of the file, lines go to a new file at the old path.
 * Async-signal-safe (the SIGHUP handler calls it); a failure keeps the old
 * file and counts in fsd_audit_failures. Does nothing without a log. */
void fsd_audit_reopen(void);

/* Closes the audit log; later fsd_audit_log calls do nothing. */
void fsd_audit_close(void);

/* true when an audit log is open. */
int fsd_audit_enabled(void);

/* Appends one line. new_path may be NULL; rows < 0 omits "rows".
 * result is 0 or an errno (either sign). Failures to write are counted in
 * the log's own error counter and otherwise ignored: a full disk must not
 * fail the user's operation. */
void fsd_audit_log(uid_t uid, gid_t gid, pid_t pid, const char *op, const char *path,
                   const char *new_path, int result, long long rows);

/* Number of audit lines that could not be written (for stats/metrics). */
uint64_t fsd_audit_failures(void);

#endif /* VECFS_FS_AUDIT_H */
