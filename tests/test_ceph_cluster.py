#!/usr/bin/env python3
"""test_ceph_cluster.py — scripts/ceph-cluster.sh, the throwaway Ceph cluster
of the RADOS mode (issue 10), against real daemons.

Usage: tests/test_ceph_cluster.py PATH/TO/scripts/ceph-cluster.sh

1. memstore, 3 OSDs: start (a second start on the same DIR fails with one
   line), env, rados put/get byte-exact, omap set/list/get, add-pool (a
   second pool takes objects apart from the first; a bad name is refused
   with one line), rm-pool (the pool and its objects are gone), status, stop;
   then no pid from the pid files runs and no process has DIR in its
   command line; stop again is fine.
2. bluestore, 3 OSDs, pool size 2: put objects, kill-osd 0 (SIGKILL), every
   object reads back byte-exact while osd.0 is down, start-osd 0, again
   after it is back, stop, same checks.

Prints start times and the daemons' RSS. Every cluster it started is stopped
in a finally block. Exits 77 when the Ceph binaries are absent.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SCRIPT = None
CLUSTERS = []  # DIRs whose clusters may be running


def run(*args, timeout=120, check=True, env=None):
    r = subprocess.run(list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (" ".join(args), r.returncode,
                                                   r.stderr.decode(errors="replace")[-2000:]))
    return r


def cluster(*args, **kw):
    return run("bash", SCRIPT, *args, **kw)


def start(d, *opts):
    t0 = time.monotonic()
    CLUSTERS.append(d)
    cluster("start", d, *opts)
    took = time.monotonic() - t0
    print("start %s: %.1f s" % (" ".join(opts) or "(memstore, 3 OSDs)", took), flush=True)
    return took


def cluster_env(d):
    out = cluster("env", d).stdout.decode()
    env = dict(os.environ)
    for line in out.splitlines():
        if "=" in line and not line.startswith("export "):
            k, v = line.split("=", 1)
            env[k] = v
    assert env["CEPH_CONF"] == os.path.join(d, "ceph.conf"), out
    return env


def rados(env, *args, timeout=60):
    return run("rados", "-p", env["VECFS_RADOS_POOL"], *args, timeout=timeout, env=env)


def pids(d):
    """{name: pid} from DIR/run/*.pid."""
    out = {}
    run_dir = os.path.join(d, "run")
    for f in sorted(os.listdir(run_dir)):
        if f.endswith(".pid"):
            with open(os.path.join(run_dir, f)) as fh:
                out[f[:-4]] = int(fh.read().strip())
    return out


def alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1] != "Z"
    except OSError:
        return False
    return False


def procs_mentioning(d):
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if d in cmd:
            found.append("%s: %s" % (p, cmd))
    return found


def rss_report(d):
    by_name = pids(d)
    parts = []
    for name, pid in by_name.items():
        try:
            with open("/proc/%d/status" % pid) as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            parts.append("%s %d MB" % (name, rss // 1024))
        except (OSError, StopIteration):
            parts.append("%s ?" % name)
    print("RSS: " + ", ".join(parts), flush=True)


def stop_and_check(d):
    before = pids(d)
    assert before, "no pid files in %s/run" % d
    t0 = time.monotonic()
    cluster("stop", d, timeout=120)
    print("stop: %.1f s" % (time.monotonic() - t0), flush=True)
    CLUSTERS.remove(d)
    left = [n for n, p in before.items() if alive(p)]
    assert not left, "still alive after stop: %s" % left
    procs = procs_mentioning(d)
    assert not procs, "processes left naming %s: %s" % (d, procs)
    r = cluster("status", d, check=False)
    assert r.returncode != 0, "status of a stopped cluster exited 0"
    cluster("stop", d)  # stopping a stopped cluster is fine


def put_get(env, name, data, tmp):
    src = os.path.join(tmp, name + ".in")
    with open(src, "wb") as f:
        f.write(data)
    rados(env, "put", name, src)
    check_get(env, name, data, tmp)


def check_get(env, name, data, tmp):
    dst = os.path.join(tmp, name + ".out")
    rados(env, "get", name, dst)
    with open(dst, "rb") as f:
        got = f.read()
    assert got == data, "%s: got %d bytes, wrote %d (or contents differ)" % (name, len(got), len(data))


def test_memstore(tmp):
    d = os.path.join(tmp, "mem")
    start(d)
    # A second start on a running DIR: refused, one line, nothing changed.
    r = cluster("start", d, check=False)
    err = r.stderr.decode().strip()
    assert r.returncode != 0 and "already running" in err and "\n" not in err, (r.returncode, err)
    env = cluster_env(d)
    assert env["VECFS_RADOS_POOL"] == "vecfs"

    data = bytes(range(256)) * 4096 + os.urandom(12345)  # 1 MiB + 12345 bytes
    put_get(env, "blob", data, tmp)
    put_get(env, "empty", b"", tmp)

    # omap: what the RADOS-mode design keeps its log and tables in.
    rados(env, "setomapval", "log", "00000001", "first")
    rados(env, "setomapval", "log", "00000002", "second")
    keys = rados(env, "listomapkeys", "log").stdout.decode().split()
    assert keys == ["00000001", "00000002"], keys
    out = os.path.join(tmp, "omapval")
    rados(env, "getomapval", "log", "00000002", out)
    with open(out, "rb") as f:
        assert f.read() == b"second"

    # Another pool on the running cluster, as the test run's shared cluster
    # gives each RADOS test (tests/integration/ceph_env.py).
    cluster("add-pool", d, "second", "--size", "2", "--pgs", "8")
    other = dict(env, VECFS_RADOS_POOL="second")
    put_get(other, "blob", b"second pool", tmp)
    check_get(env, "blob", data, tmp)
    r = cluster("add-pool", d, "bad/name", check=False)
    err = r.stderr.decode().strip()
    assert r.returncode == 2 and "bad pool name" in err and "\n" not in err, (r.returncode, err)
    cluster("rm-pool", d, "second")
    pools = run("rados", "lspools", env=env).stdout.decode().split()
    assert "second" not in pools and "vecfs" in pools, pools
    check_get(env, "blob", data, tmp)

    r = cluster("status", d)
    lines = r.stdout.decode()
    for name in ("mon.a", "mgr.x", "osd.0", "osd.1", "osd.2"):
        assert "%s running" % name in lines, lines
    rss_report(d)
    stop_and_check(d)


def test_bluestore_kill_osd(tmp):
    d = os.path.join(tmp, "blue")
    start(d, "--store", "bluestore", "--size", "2")
    env = cluster_env(d)
    # 8 objects over 32 PGs: osd.0 holds about 2/3 of the PGs (size 2 of 3
    # OSDs), so all 8 miss it with a chance of (1/3)^8 = 0.00015; about a
    # third of them have it as primary, whose reads wait for it to be marked
    # down.
    objs = {"obj%02d" % i: os.urandom(65536 + i) for i in range(8)}
    for name, data in objs.items():
        put_get(env, name, data, tmp)
    rados(env, "setomapval", "obj00", "k", "v")

    osd0 = pids(d)["osd.0"]
    cluster("kill-osd", d, "0")
    assert not alive(osd0), "osd.0 (pid %d) still alive after kill-osd" % osd0
    t0 = time.monotonic()
    for name, data in objs.items():
        check_get(env, name, data, tmp)
    assert rados(env, "listomapkeys", "obj00").stdout.decode().split() == ["k"]
    print("reads with osd.0 killed: %.1f s (includes the mon marking it down)"
          % (time.monotonic() - t0), flush=True)

    t0 = time.monotonic()
    cluster("start-osd", d, "0")
    print("start-osd 0: %.1f s" % (time.monotonic() - t0), flush=True)
    assert alive(pids(d)["osd.0"])
    for name, data in objs.items():
        check_get(env, name, data, tmp)
    rss_report(d)
    stop_and_check(d)


def main():
    global SCRIPT
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    SCRIPT = os.path.abspath(sys.argv[1])
    missing = [b for b in ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "rados", "monmaptool")
               if shutil.which(b) is None]
    if missing:
        print("SKIP: no %s (scripts/install-deps.sh installs Ceph)" % ", ".join(missing))
        return 77
    # SIGTERM (a runner's timeout) unwinds through the finally below, which
    # stops every cluster this test started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="vecfs-ceph-")
    failed = 0
    try:
        for t in (test_memstore, test_bluestore_kill_osd):
            try:
                t(tmp)
                print("PASS %s" % t.__name__, flush=True)
            except Exception as e:  # noqa: BLE001 — report and go on
                failed += 1
                print("FAIL %s: %s" % (t.__name__, e), flush=True)
    finally:
        for d in list(CLUSTERS):
            r = cluster("stop", d, check=False, timeout=120)
            if r.returncode != 0:
                failed += 1
                print("FAIL stop %s: %s" % (d, r.stderr.decode(errors="replace")), flush=True)
        left = procs_mentioning(tmp)
        if left:
            failed += 1
            print("FAIL processes left naming %s: %s" % (tmp, left), flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d failed; %.1f s" % (failed, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
