#!/usr/bin/env python3
"""daemon.py — the `vecfs` command itself, through real mounts (SPEC §2, §5, §6).

Usage: tests/integration/daemon.py PATH/TO/vecfs [-k SUBSTRING]

Covers what the filesystem suite (run.py) does not: start-up errors (one
line on stderr, non-zero exit), SIGTERM and SIGINT unmounting cleanly with
the data kept, --read-only with working query files, --audit-log lines,
the --metrics-listen endpoint, and check/backup/restore round trips.

Every mount is unmounted (fusermount3 -u, then -uz) and every daemon this
script started is killed by pid on every exit path. Exits 77 when FUSE is
not available.
"""

import array
import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

VECFS = None
TMP = None
DAEMONS = []  # (proc, mountpoint)


def mounted(mnt):
    mnt = os.path.realpath(mnt)
    with open("/proc/mounts") as f:
        return any(len(l.split()) > 1 and l.split()[1] == mnt for l in f)


def wait_mounted(mnt, proc=None, log_path=None, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if mounted(mnt):
            return
        if proc is not None and proc.poll() is not None:
            tail = ""
            if log_path is not None:
                with open(log_path, errors="replace") as f:
                    tail = f.read()[-2000:]
            raise AssertionError("vecfs exited with %d before mounting: %s"
                                 % (proc.returncode, tail))
        time.sleep(0.05)
    raise AssertionError("%s was not mounted within %d s" % (mnt, timeout))


LOGS = []  # daemon logs of the running test


def start_fg(*args):
    """vecfs -f ARGS...; the last two arguments are DATADIR MOUNTPOINT.
    The daemon's stderr goes to a file next to the mount point (a pipe that
    nobody reads could fill up and stall the daemon)."""
    mnt = args[-1]
    os.makedirs(args[-2], exist_ok=True)
    os.makedirs(mnt, exist_ok=True)
    log_path = "%s-%d.log" % (mnt, len(LOGS))
    LOGS.append(log_path)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([VECFS, "-f"] + list(args), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log)
    DAEMONS.append((proc, mnt))
    wait_mounted(mnt, proc, log_path)
    return proc


def sanitizer_reports():
    """Sanitizer reports in the daemon logs of this test (ASan/TSan builds)."""
    found = []
    for path in LOGS:
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "WARNING: ThreadSanitizer"):
            if marker in text:
                found.append("%s in %s" % (marker, path))
    return found


def unmount(mnt):
    if mounted(mnt):
        subprocess.call(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
    if mounted(mnt):
        subprocess.call(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)


def stop(proc, mnt, sig=signal.SIGTERM, timeout=20):
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("vecfs did not exit within %d s of signal %d" % (timeout, sig))
    return rc


def cleanup():
    for proc, mnt in DAEMONS:
        unmount(mnt)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Daemonized mounts (no -f) are found by their mount points.
    if TMP is not None:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 1 and parts[1].startswith(TMP):
                    unmount(parts[1])


def run(args, **kw):
    return subprocess.run([VECFS] + args, capture_output=True, text=True, timeout=60, **kw)


def eq(a, b, what):
    if a != b:
        raise AssertionError("%s: got %r, want %r" % (what, a, b))


def one_error_line(r, what):
    if r.returncode == 0:
        raise AssertionError("%s: exit 0, want an error" % what)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    if len(lines) != 1 or not lines[0].startswith("vecfs: "):
        raise AssertionError("%s: want one 'vecfs: ...' line on stderr, got %r" % (what, r.stderr))


def write(path, data, mode="w"):
    with open(path, mode) as f:
        f.write(data)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_cli_errors(t):
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    os.makedirs(d)
    os.makedirs(m)
    one_error_line(run([os.path.join(t, "missing"), m]), "missing DATADIR")
    one_error_line(run(["--no-such-option", d, m]), "bad option")
    one_error_line(run(["-o", "no_such_fuse_option", d, m]), "bad -o option")
    one_error_line(run([d]), "one argument")
    write(os.path.join(t, "file"), "x")
    one_error_line(run([d, os.path.join(t, "file")]), "mount point not a directory")
    eq(run(["--help"]).returncode, 0, "--help exit")
    if "vecfs" not in run(["--version"]).stdout:
        raise AssertionError("--version prints no version")
    # A busy mount point, a busy DATADIR, a wrong key.
    eq(run([d, m]).returncode, 0, "daemonized mount")
    wait_mounted(m)
    try:
        one_error_line(run([d, m]), "mount point in use")
        m2 = os.path.join(t, "m2")
        os.makedirs(m2)
        one_error_line(run([d, m2]), "DATADIR in use")
    finally:
        unmount(m)
    kd, km = os.path.join(t, "kd"), os.path.join(t, "km")
    key, wrong = os.path.join(t, "key"), os.path.join(t, "wrong")
    write(key, os.urandom(32), "wb")
    write(wrong, os.urandom(32), "wb")
    p = start_fg("--key-file", key, kd, km)
    os.mkdir(os.path.join(km, "c"))
    eq(stop(p, km), 0, "exit after SIGTERM")
    one_error_line(run(["--key-file", wrong, kd, km]), "wrong key")
    one_error_line(run([kd, km]), "no key for an encrypted store")
    if mounted(km):
        raise AssertionError("a refused start left a mount behind")
    # In the foreground too, a failed start is exactly one line: no info
    # line before it.
    e, em = os.path.join(t, "e"), os.path.join(t, "em")
    os.makedirs(e)
    os.makedirs(em)
    one_error_line(run(["-f", "-o", "bogusopt", e, em]), "-f with a bad -o option")
    one_error_line(run(["-f", "--metrics-listen", "nohostport", e, em]), "-f, no port")
    for bad in ("127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:80x", "127.0.0.1: 80"):
        one_error_line(run(["-f", "--metrics-listen", bad, e, em]), "--metrics-listen " + bad)
    for bad in ("1000", "1K", "1023K"):
        one_error_line(run(["--max-size", bad, e, em]), "--max-size " + bad)
    # A DATADIR with other files in it is not made into a store.
    junk = os.path.join(t, "junk")
    os.makedirs(junk)
    write(os.path.join(junk, "notes.txt"), "mine\n")
    r = run(["-f", junk, em])
    one_error_line(r, "non-empty DATADIR")
    if "not empty and is not a vecfs store" not in r.stderr:
        raise AssertionError("non-empty DATADIR message: %r" % r.stderr)
    eq(sorted(os.listdir(junk)), ["notes.txt"], "files in a refused DATADIR")
    # check of a missing DATADIR: one line on stderr, nothing on stdout.
    for path in (os.path.join(t, "nonexistent"), junk):
        r = run(["check", path])
        one_error_line(r, "check " + path)
        eq(r.stdout, "", "stdout of check " + path)
    if mounted(em):
        raise AssertionError("a refused start left a mount behind")


def test_signals_keep_data(t):
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    for sig in (signal.SIGTERM, signal.SIGINT):
        p = start_fg(d, m)
        c = os.path.join(m, "c%d" % sig)
        os.mkdir(c)
        write(os.path.join(c, "v"), "1 2 3\n")
        eq(stop(p, m, sig), 0, "exit status after signal %d" % sig)
        if mounted(m):
            raise AssertionError("still mounted after signal %d" % sig)
    p = start_fg(d, m)
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with open(os.path.join(m, "c%d" % sig, "v")) as f:
                eq(f.read(), "1 2 3\n", "vector after restart")
    finally:
        stop(p, m)


def test_dead_mount_cleared(t):
    """A mount point left by a daemon killed with SIGKILL answers ENOTCONN;
    the next start detaches it with one line on stderr and mounts, data kept."""
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    p = start_fg(d, m)
    os.mkdir(os.path.join(m, "c"))
    write(os.path.join(m, "c", "v"), "1 2 3\n")
    p.send_signal(signal.SIGKILL)
    p.wait()
    try:
        os.statvfs(m)
        raise AssertionError("the dead mount still answers statfs")
    except OSError as e:
        eq(e.errno, errno.ENOTCONN, "statfs of a dead mount")
    # The dead mount is still in /proc/mounts, so start_fg returns at once:
    # wait for the new daemon to say it mounted.
    p = start_fg(d, m)
    try:
        deadline = time.time() + 20
        while True:
            with open(LOGS[-1], errors="replace") as f:
                log = f.read()
            if "vecfs info: mounted" in log or p.poll() is not None or time.time() > deadline:
                break
            time.sleep(0.05)
        lines = [ln for ln in log.splitlines() if "left by a daemon that died" in ln]
        eq(len(lines), 1, "lines about the dead mount on stderr (log: %r)" % log[-300:])
        with open(os.path.join(m, "c", "v")) as f:
            eq(f.read(), "1 2 3\n", "vector after the dead mount was cleared")
    finally:
        stop(p, m)


def test_read_only_queries(t):
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    p = start_fg(d, m)
    os.mkdir(os.path.join(m, "c"))
    write(os.path.join(m, "c", "a"), "1 0\n")
    write(os.path.join(m, "c", "b"), "0 1\n")
    stop(p, m)
    p = start_fg("--read-only", d, m)
    try:
        for what, fn in (("write", lambda: write(os.path.join(m, "c", "z"), "1 1\n")),
                         ("mkdir", lambda: os.mkdir(os.path.join(m, "x"))),
                         ("unlink", lambda: os.unlink(os.path.join(m, "c", "a")))):
            try:
                fn()
                raise AssertionError("%s on a read-only mount succeeded" % what)
            except OSError as e:
                eq(e.errno, 30, "%s errno (EROFS)" % what)
        q = os.path.join(m, "c", ".query", "q")
        write(q, "k = 1\n1 0\n")
        with open(q) as f:
            eq(f.read().split("\t")[0], "a", "nearest on a read-only mount")
    finally:
        stop(p, m)


def test_audit_log(t):
    d, m, log = os.path.join(t, "d"), os.path.join(t, "m"), os.path.join(t, "audit.jsonl")
    p = start_fg("--audit-log", log, d, m)
    try:
        os.mkdir(os.path.join(m, "c"))
        write(os.path.join(m, "c", "v"), "1 2\n")
        os.rename(os.path.join(m, "c", "v"), os.path.join(m, "c", "w"))
        os.setxattr(os.path.join(m, "c", "w"), "user.k", b"v")
        try:
            os.mkdir(os.path.join(m, "c", "sub"))
        except OSError:
            pass
        write(os.path.join(m, "c", ".query", "q"), "1 2\n")
        os.unlink(os.path.join(m, "c", "w"))
        # A shell redirect closes its first descriptor of the new file
        # before writing: that is no failed commit (no audit line, no
        # error counted), and the file is committed once.
        r = subprocess.run(["bash", "-c", "echo 3 4 > %s/c/e && cat %s/c/e" % (m, m)],
                           capture_output=True, text=True, timeout=30)
        eq((r.returncode, r.stdout), (0, "3 4\n"), "echo > vector: %s" % r.stderr)
        # An empty new file still fails close() with EINVAL and is not there.
        try:
            fd = os.open(os.path.join(m, "c", "empty"), os.O_WRONLY | os.O_CREAT, 0o644)
            os.close(fd)
            raise AssertionError("close of an empty new vector succeeded")
        except OSError as e:
            eq(e.errno, 22, "close of an empty new vector")
        if "empty" in os.listdir(os.path.join(m, "c")):
            raise AssertionError("an empty vector file appeared")
        with open(os.path.join(m, ".vecfs", "metrics")) as f:
            metrics = f.read()
        if 'vecfs_errors_total{op="flush",errno="EINVAL"}' in metrics:
            raise AssertionError("a shell redirect counted a failed flush")
        if "vecfs_audit_failures_total 0" not in metrics:
            raise AssertionError("metrics lack vecfs_audit_failures_total 0")
    finally:
        stop(p, m)
    with open(log) as f:
        lines = [json.loads(l) for l in f]
    got = [(l["op"], l["path"], l["result"]) for l in lines]
    for want in (("mkdir", "c", 0), ("write", "c/v", 0), ("setxattr", "c/w", 0),
                 ("mkdir", "c/sub", 1), ("unlink", "c/w", 0)):
        if want not in got:
            raise AssertionError("audit log lacks %r: %r" % (want, got))
    if ("write", "c/e", 0) not in got or ("write", "c/e", 22) in got:
        raise AssertionError("audit of echo > c/e: %r" % [g for g in got if g[1] == "c/e"])
    if not any(l["op"] == "rename" and l.get("new_path") == "c/w" for l in lines):
        raise AssertionError("audit log lacks the rename: %r" % got)
    if any(".query" in l["path"] for l in lines):
        raise AssertionError("query files were audited: %r" % got)
    for l in lines:
        for k in ("time", "uid", "gid", "pid", "op", "path", "result"):
            if k not in l:
                raise AssertionError("audit line without %s: %r" % (k, l))


def test_audit_failures_reported(t):
    """Audit lines that cannot be written (a full disk) show in the
    metrics and in .vecfs/health."""
    if not os.path.exists("/dev/full"):
        return
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    p = start_fg("--audit-log", "/dev/full", d, m)
    try:
        os.mkdir(os.path.join(m, "c"))
        # The audit line is written right after the reply, so mkdir() can
        # return before the failure is counted: poll briefly.
        deadline = time.time() + 5
        while True:
            with open(os.path.join(m, ".vecfs", "metrics")) as f:
                lines = [l for l in f.read().splitlines()
                         if l.startswith("vecfs_audit_failures_total ")]
            if lines and int(float(lines[0].split()[1])) >= 1:
                break
            if time.time() > deadline:
                raise AssertionError("vecfs_audit_failures_total: %r" % lines)
            time.sleep(0.05)
        with open(os.path.join(m, ".vecfs", "health")) as f:
            health = f.read()
        if "audit log" not in health or health == "ok\n":
            raise AssertionError("health with lost audit lines: %r" % health)
        with open(os.path.join(m, ".vecfs", "metrics")) as f:
            if "\nvecfs_health_ok 0\n" not in f.read():
                raise AssertionError("metrics do not say health is not ok")
    finally:
        stop(p, m)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_metrics_endpoint(t):
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    p = start_fg("--metrics-listen", "127.0.0.1:%d" % port, d, m)
    try:
        os.mkdir(os.path.join(m, "c"))
        write(os.path.join(m, "c", "v"), "1 2\n")
        eq(http_get(base + "/livez"), (200, "ok\n"), "/livez")
        eq(http_get(base + "/readyz"), (200, "ok\n"), "/readyz")
        status, text = http_get(base + "/metrics")
        eq(status, 200, "/metrics status")
        for name in ("vecfs_build_info", 'vecfs_vectors{collection="c"} 1', "vecfs_inserts_total",
                     "vecfs_query_duration_seconds_bucket", "vecfs_fuse_ops_total",
                     "vecfs_store_bytes", "vecfs_index_memory_bytes",
                     "vecfs_snapshot_age_seconds"):
            if name not in text:
                raise AssertionError("/metrics lacks %s" % name)
        eq(http_get(base + "/nope")[0], 404, "unknown path")
    finally:
        stop(p, m)
    # Port 0: any free port, and the log says which.
    p = start_fg("--metrics-listen", "127.0.0.1:0", d, m)
    try:
        port0 = None
        for _ in range(50):
            with open(LOGS[-1]) as f:
                for line in f:
                    if "metrics endpoint on 127.0.0.1:" in line:
                        port0 = int(line.rsplit(":", 1)[1].split()[0])
            if port0:
                break
            time.sleep(0.1)
        if not port0:
            raise AssertionError("no 'metrics endpoint on' line in the log")
        eq(http_get("http://127.0.0.1:%d/livez" % port0), (200, "ok\n"), "/livez on port 0")
    finally:
        stop(p, m)


def test_backup_restore_check(t):
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    p = start_fg(d, m)
    try:
        os.mkdir(os.path.join(m, "c"))
        for i in range(20):
            write(os.path.join(m, "c", "v%d" % i), "%d 1 2\n" % i)
        os.setxattr(os.path.join(m, "c", "v3"), "user.tag", b"three")
        # Hot backups while mounted, into a directory and into a tar file.
        eq(run(["backup", d, os.path.join(t, "bk")]).returncode, 0, "backup to a directory")
        eq(run(["backup", d, os.path.join(t, "bk.tar")]).returncode, 0, "backup to a tar file")
        r = run(["check", d])
        eq(r.returncode, 0, "check while mounted")
        # Off a terminal, short work prints no progress lines.
        eq(r.stderr, "", "stderr of a quick check off a terminal")
    finally:
        stop(p, m)
    # On a terminal (script(1) gives it one) check shows its progress on
    # one line rewritten in place, ending at all of the vectors.
    r = subprocess.run(["script", "-qec", "%s check %s >/dev/null" % (VECFS, d), "/dev/null"],
                       capture_output=True, timeout=60)
    eq(r.returncode, 0, "check under script(1): %r" % r.stdout)
    # Bytes: text mode would turn the carriage returns into newlines.
    shown = [s.strip("\x1b[K\n") for s in r.stdout.decode().split("\r") if s.strip()]
    if not re.fullmatch(r"vecfs check: checking 100% \(20 of 20 vectors, \d+/s\)", shown[-1]):
        raise AssertionError("the last progress line: %r" % shown)
    one_error_line(run(["restore", os.path.join(t, "bk"), d]), "restore into a non-empty DATADIR")
    for src, name in ((os.path.join(t, "bk"), "r1"), (os.path.join(t, "bk.tar"), "r2")):
        rd = os.path.join(t, name)
        eq(run(["restore", src, rd]).returncode, 0, "restore from %s" % src)
        eq(run(["check", rd]).returncode, 0, "check of the restored %s" % name)
        rm = os.path.join(t, name + "-m")
        p = start_fg(rd, rm)
        try:
            eq(len(os.listdir(os.path.join(rm, "c"))), 21, "entries after restore (20 + .config)")
            eq(os.getxattr(os.path.join(rm, "c", "v3"), "user.tag"), b"three", "xattr restored")
        finally:
            stop(p, rm)


def test_import_progress(t):
    """A large .import/ shows where it stands in .vecfs/stats while it
    runs, and is gone from there once done."""
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    rows, dim = 40000, 32
    rng = random.Random(5)
    data = os.path.join(t, "rows.fvecs")
    with open(data, "wb") as f:
        for _ in range(rows):
            f.write(array.array("i", [dim]).tobytes())
            f.write(array.array("f", (rng.random() for _ in range(dim))).tobytes())
    p = start_fg(d, m)
    try:
        os.mkdir(os.path.join(m, "c"))
        write(os.path.join(m, "c", ".config"), "dim = %d\nmetric = l2\n" % dim)
        seen = []
        done = threading.Event()

        def watch():
            while not done.is_set():
                with open(os.path.join(m, ".vecfs", "stats")) as f:
                    seen.extend(json.load(f)["imports"])
                time.sleep(0.01)

        w = threading.Thread(target=watch)
        w.start()
        try:
            shutil.copyfile(data, os.path.join(m, "c", ".import", "rows.fvecs"))
        finally:
            done.set()
            w.join()
        phases = {s["phase"] for s in seen}
        if not phases & {"parsing", "storing", "committing"}:
            raise AssertionError("no import progress seen in stats: %r" % sorted(phases))
        for s in seen:
            eq((s["collection"], s["file"]), ("c", "rows.fvecs"), "import in stats")
            if s["phase"] in ("storing", "committing"):
                eq(s["rows_total"], rows, "rows_total")
                if not 0 <= s["rows_done"] <= rows:
                    raise AssertionError("rows_done %r" % s)
        with open(os.path.join(m, ".vecfs", "stats")) as f:
            eq(json.load(f)["imports"], [], "imports in stats after the import")
        eq(len(os.listdir(os.path.join(m, "c"))), rows + 1, "entries after the import (+ .config)")
    finally:
        stop(p, m)


TESTS = [test_cli_errors, test_signals_keep_data, test_dead_mount_cleared, test_read_only_queries, test_audit_log,
         test_audit_failures_reported, test_metrics_endpoint, test_backup_restore_check, test_import_progress]


def main(tests=None, doc=__doc__):
    """Runs tests (default: this file's TESTS) with the command line's
    vecfs; other suites (operator_kit.py) reuse it with their own list."""
    global VECFS, TMP
    tests = TESTS if tests is None else tests
    args = sys.argv[1:]
    if not args:
        print(doc)
        return 2
    VECFS = os.path.realpath(args[0])
    only = args[args.index("-k") + 1] if "-k" in args else None
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        print("SKIP: no FUSE here")
        return 77
    TMP = tempfile.mkdtemp(prefix="vecfs-daemon-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    passed = failed = 0
    try:
        for test in tests:
            if only and only not in test.__name__:
                continue
            t = os.path.join(TMP, test.__name__)
            os.makedirs(t)
            t0 = time.time()
            LOGS.clear()
            try:
                test(t)
                cleanup()
                reports = sanitizer_reports()
                if reports:
                    raise AssertionError("; ".join(reports))
                passed += 1
                print("PASS %s (%.1f s)" % (test.__name__, time.time() - t0), flush=True)
            except Exception as e:
                failed += 1
                print("FAIL %s: %s" % (test.__name__, e), flush=True)
                for line in traceback.format_exc().splitlines():
                    print("#   " + line)
            finally:
                cleanup()
                DAEMONS.clear()
    finally:
        cleanup()
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
