#!/usr/bin/env python3
"""uring.py — vecfs --io-uring through real mounts (docs/filesystem.md,
"Requests through io_uring").

Usage: tests/integration/uring.py PATH/TO/vecfs [-k SUBSTRING]

Sets the fuse module's enable_uring parameter to Y for the run and puts
back the value it found on every exit path. Checks that a mount with
--io-uring says its queues are up, serves queries (file and ioctl),
writes, imports, xattrs, rename, unlink, readdir and large reads through
them (vecfs_fuse_ring_requests_total grows with them), that notifications
still reach the kernel, that an interrupted client leaves the queues
working, that a truncate(2) right after close() is still a change of its
own, that a daemon killed with SIGKILL leaves a mount that unmounts,
and that with enable_uring = N the option falls back to /dev/fuse with
one warning. Exits 77 when FUSE is missing or the kernel has no FUSE over
io_uring (no enable_uring parameter, or not root).
"""

import errno
import os
import random
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import run  # noqa: E402  (the Mount class and helpers of the filesystem suite)
from run import Fail, Mount, check, eq, f32, f32_round, fvecs, l2, metric_sum  # noqa: E402
from run import mk_collection, parse_result, query, read_file, write_file  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "../../contrib"))
from vecfs_query import QueryHandle  # noqa: E402

PARAM = "/sys/module/fuse/parameters/enable_uring"
RINGS = "vecfs_fuse_ring_requests_total"


def set_param(value):
    with open(PARAM, "w") as f:
        f.write(value)


def log_text(m):
    with open(m.log_path, errors="replace") as f:
        return f.read()


def rings_mount(ctx, name):
    m = Mount(ctx.vecfs, os.path.join(ctx.tmp, "data-" + name), os.path.join(ctx.tmp, "mnt-" + name),
              ctx.tmp, opts=["--io-uring"])
    m.start()
    deadline = time.time() + 10
    while "queues of" not in log_text(m) and time.time() < deadline:
        time.sleep(0.05)
    check("--io-uring: " in log_text(m) and "queues of" in log_text(m),
          "the daemon did not say its queues are up; log: %s" % m.tail_log())
    return m


def rings_serve_every_kind_of_request(ctx):
    m = rings_mount(ctx, "all")
    try:
        before = metric_sum(m.mnt, RINGS)
        c = mk_collection(m.mnt, "c", "metric = l2\ndim = 8\n")
        rnd = random.Random(7)
        base = {}
        for i in range(40):  # one file each: create, write, flush, release
            v = [f32_round(rnd.gauss(0, 1)) for _ in range(8)]
            base["v%02d" % i] = v
            write_file(os.path.join(c, "v%02d.f32" % i), f32(v))
        eq(read_file(os.path.join(c, "v03.f32")), f32(base["v03"]), "a vector read back")
        os.setxattr(os.path.join(c, "v03.f32"), "user.lang", b"en")
        eq(os.getxattr(os.path.join(c, "v03.f32"), "user.lang"), b"en", "xattr through the rings")
        check("user.lang" in os.listxattr(os.path.join(c, "v03.f32")), "listxattr")
        os.removexattr(os.path.join(c, "v03.f32"), "user.lang")
        os.rename(os.path.join(c, "v04.f32"), os.path.join(c, "w04.f32"))
        base["w04"] = base.pop("v04")
        os.unlink(os.path.join(c, "v05.f32"))
        del base["v05"]
        eq(sorted(n[:-4] for n in os.listdir(c) if n.endswith(".f32")), sorted(base),
           "readdir after rename and unlink")
        q = [f32_round(rnd.gauss(0, 1)) for _ in range(8)]
        want = sorted(base, key=lambda n: l2(base[n], q))[:10]
        text = "k = 10\n" + " ".join(repr(x) for x in q)
        want = [n + ".f32" for n in want]
        eq([n for n, _ in parse_result(query(c, "q1", text))], want, "file query")
        with QueryHandle(os.path.join(c, ".query", "held")) as h:
            for _ in range(20):
                eq([n for n, _ in h.search(q, k=10)], want, "ioctl query")
        # A batch larger than one payload buffer (1 MiB) goes in as several
        # writes; its result, also over 1 MiB, comes back as several reads.
        big = mk_collection(m.mnt, "big", "metric = l2\ndim = 64\n")
        rows = [[f32_round(rnd.gauss(0, 1)) for _ in range(64)] for _ in range(5000)]
        blob = fvecs(rows)
        check(len(blob) > 1 << 20, "the import is larger than a payload buffer")
        write_file(os.path.join(big, ".import", "rows.fvecs"), blob)
        eq(sum(1 for n in os.listdir(big) if n.endswith(".f32")), 5000, "imported rows")
        res = query(big, "batch.fvecs", blob)
        check(len(res) > 1 << 20, "the batch result is larger than a payload buffer (%d)"
              % len(res))
        check(res.count(b"\n") >= 5000 * 10, "the batch result holds every query's hits")
        after = metric_sum(m.mnt, RINGS)
        check(after - before > 40 * 4, "requests through the rings: %d" % (after - before))
        eq(m.stop(), 0, "exit status after fusermount3 -u with the rings up")
    finally:
        m.stop()


def notifications_reach_the_kernel(ctx):
    """A query's result size changes after a write on a single-user mount:
    the daemon drops the kernel's cached attributes with a notification
    (unique 0), which must go to /dev/fuse, not into a ring entry."""
    m = rings_mount(ctx, "notify")
    try:
        c = mk_collection(m.mnt, "n", "metric = l2\ndim = 2\n")
        for i in range(12):
            write_file(os.path.join(c, "p%d.f32" % i), f32([float(i), 0.0]))
        q = os.path.join(c, ".query", "sz")
        sizes = []
        for k in (10, 1, 10, 1):
            write_file(q, "k = %d\n0 0" % k)
            os.stat(q)  # the kernel caches the size of the query text
            fd = os.open(q, os.O_RDONLY)  # generates the result, drops that size
            try:
                sizes.append(os.fstat(fd).st_size)
                data = os.read(fd, 1 << 16)
            finally:
                os.close(fd)
            eq(sizes[-1], len(data), "fstat size = bytes read (k %d)" % k)
        check(sizes[0] > sizes[1], "result sizes follow k: %r" % sizes)
        check("notify through fuse-io-uring" not in log_text(m), "no notification in a ring")
    finally:
        m.stop()


def interrupted_client_leaves_rings_working(ctx):
    """A client killed while its batch query runs: the queues keep serving."""
    m = rings_mount(ctx, "intr")
    try:
        c = mk_collection(m.mnt, "i", "metric = l2\ndim = 32\n")
        rnd = random.Random(3)
        rows = [[f32_round(rnd.gauss(0, 1)) for _ in range(32)] for _ in range(4000)]
        batch = fvecs(rows)
        write_file(os.path.join(c, ".import", "r.fvecs"), batch)
        qfile = os.path.join(c, ".query", "slow.fvecs")
        write_file(qfile, batch)
        for delay in (0.01, 0.05, 0.2):
            p = subprocess.Popen(["cat", qfile], stdout=subprocess.DEVNULL)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        with QueryHandle(os.path.join(c, ".query", "after")) as h:
            want = sorted(range(4000), key=lambda i: l2(rows[i], rows[9]))[0]
            got = h.search(rows[9], k=1)
        eq(len(got), 1, "a query after the killed clients")
        check(got[0][1] <= l2(rows[want], rows[9]) + 1e-4, "nearest after the killed clients")
    finally:
        m.stop()


def truncate_right_after_close(ctx):
    """close() returns before its RELEASE is handled, and another ring
    thread may take the next request first: truncate(2) by path to a wrong
    dim right after close() must still fail and keep the vector (5-6 of
    1000 were accepted before ops_vec.c committed it at once)."""
    m = rings_mount(ctx, "trunc")
    try:
        c = mk_collection(m.mnt, "t", "dim = 4\n")
        q = os.path.join(c, "w.f32")
        accepted = 0
        for i in range(1000):
            write_file(q, f32([1, 2, 3, i]))
            try:
                os.truncate(q, 8)
                accepted += 1
            except OSError as e:
                eq(e.errno, errno.EINVAL, "errno of a wrong-dim truncate")
        eq(accepted, 0, "wrong-dim truncates accepted right after close()")
        eq(read_file(q), f32([1, 2, 3, 999]), "the vector after the refused truncates")
    finally:
        m.stop()


def kill9_leaves_no_stuck_mount(ctx):
    m = rings_mount(ctx, "kill")
    try:
        c = mk_collection(m.mnt, "k", "metric = l2\ndim = 4\n")
        write_file(os.path.join(c, "a.f32"), f32([1, 2, 3, 4]))
        loop = subprocess.Popen([sys.executable, "-c", (
            "import os,sys\n"
            "while True:\n"
            "    try: os.stat(sys.argv[1])\n"
            "    except OSError: sys.exit(0)\n"), os.path.join(c, "a.f32")])
        time.sleep(0.3)
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=10)
        eq(loop.wait(timeout=20), 0, "a client's stat loop ends with an error once the daemon died")
        # Until the kernel has torn the queues down (milliseconds) requests
        # fail with ECANCELED or ECONNABORTED; then ENOTCONN, as without
        # the rings (docs/tuning.md).
        seen, t0 = [], time.time()
        while time.time() - t0 < 5:
            try:
                os.statvfs(m.mnt)
                seen.append(0)
            except OSError as e:
                seen.append(e.errno)
            if seen[-1] == errno.ENOTCONN:
                break
        eq(seen[-1], errno.ENOTCONN, "statfs of the dead mount within 5 s (%r)" % sorted(set(seen)))
        check(set(seen) <= {errno.ECANCELED, errno.ECONNABORTED, errno.ENOTCONN},
              "errors of the dead mount: %r" % sorted(set(seen)))
        r = subprocess.run(["fusermount3", "-u", m.mnt], capture_output=True, timeout=20)
        eq(r.returncode, 0, "fusermount3 -u of the dead mount: %s" % r.stderr.decode())
        check(not m.mounted(), "the dead mount is gone")
        # A new daemon started at once on a mount left by a killed one
        # waits the teardown out and clears it (cli.c).
        m.start()
        write_file(os.path.join(c, "b.f32"), f32([4, 3, 2, 1]))
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=10)
        logdir = os.path.join(ctx.tmp, "restart-log")  # a log of its own
        os.makedirs(logdir, exist_ok=True)
        m2 = Mount(ctx.vecfs, m.datadir, m.mnt, logdir, opts=["--io-uring"])
        m2.start()
        try:
            deadline = time.time() + 20
            while "vecfs info: mounted" not in log_text(m2) and time.time() < deadline:
                time.sleep(0.05)
            check("left by a daemon that died" in log_text(m2),
                  "the restart cleared the dead mount; log: %s" % m2.tail_log())
            eq(read_file(os.path.join(c, "b.f32")), f32([4, 3, 2, 1]), "data after the restart")
        finally:
            m2.stop()
    finally:
        m.stop()


def fallback_without_kernel_support(ctx):
    set_param("N")
    try:
        m = Mount(ctx.vecfs, os.path.join(ctx.tmp, "data-fb"), os.path.join(ctx.tmp, "mnt-fb"),
                  ctx.tmp, opts=["--io-uring"])
        m.start()
        try:
            c = mk_collection(m.mnt, "f", "metric = l2\ndim = 2\n")
            write_file(os.path.join(c, "a.f32"), f32([1, 0]))
            eq([n for n, _ in parse_result(query(c, "q", "k = 1\n1 0"))], ["a.f32"], "query")
            eq(metric_sum(m.mnt, RINGS), 0, "no request through rings")
            warn = [l for l in log_text(m).splitlines() if "does not offer FUSE over io_uring" in l]
            eq(len(warn), 1, "one warning line")
        finally:
            m.stop()
    finally:
        set_param("Y")


TESTS = [rings_serve_every_kind_of_request, notifications_reach_the_kernel,
         interrupted_client_leaves_rings_working, truncate_right_after_close,
         kill9_leaves_no_stuck_mount,
         fallback_without_kernel_support]


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    if not os.path.exists("/dev/fuse"):
        print("SKIP: no /dev/fuse")
        return 77
    if not os.path.exists(PARAM):
        print("SKIP: the kernel has no FUSE over io_uring (no %s)" % PARAM)
        return 77
    if not os.access(PARAM, os.W_OK):
        print("SKIP: %s is not writable (needs root)" % PARAM)
        return 77
    only = [a for flag, a in zip(args, args[1:]) if flag == "-k"]
    import tempfile
    ctx = run.Ctx()
    ctx.vecfs = os.path.realpath(args[0])
    ctx.tmp = tempfile.mkdtemp(prefix="vecfs-uring-")
    with open(PARAM) as f:
        old = f.read().strip()
    passed = failed = 0
    try:
        set_param("Y")
        for t in TESTS:
            if only and not any(s in t.__name__ for s in only):
                continue
            t0 = time.time()
            try:
                t(ctx)
                print("PASS %s (%.1f s)" % (t.__name__, time.time() - t0))
                passed += 1
            except Exception as e:
                print("FAIL %s: %s: %s" % (t.__name__, type(e).__name__, e))
                for line in traceback.format_exc().splitlines()[-4:]:
                    print("#   " + line)
                failed += 1
            sys.stdout.flush()
        run.cleanup_all()
        # A sanitizer build reports into the daemons' logs (and a leak
        # changes only the exit status of a daemon that was not checked).
        for top, _, files in os.walk(ctx.tmp):
            for name in sorted(n for n in files if n.endswith(".log")):
                text = open(os.path.join(top, name), errors="replace").read()
                for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                    if mark in text:
                        print("FAIL sanitizer: %s in %s" % (mark, name))
                        failed += 1
                        break
    finally:
        run.cleanup_all()
        set_param(old)
        import shutil
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
