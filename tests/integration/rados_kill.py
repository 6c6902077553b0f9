#!/usr/bin/env python3
"""rados_kill.py — the promises of the RADOS mode under failure
(docs/scale-out.md §1, §8, §9) on real mounts against a real local Ceph
cluster (scripts/ceph-cluster.sh: bluestore on sparse files, 3 OSDs, pool
size 2, so that an OSD can be killed and restarted with its data).

Usage: tests/integration/rados_kill.py PATH/TO/vecfs PATH/TO/scripts/ceph-cluster.sh [ROUNDS]

Nodes A and B mount the pool, then:

  * ROUNDS (default 20) kill -9 rounds of A while WRITERS processes write,
    overwrite, delete and setxattr through it: after each, every operation
    whose call returned is on B (content byte-exact, xattrs, deletes), B
    accepts a write, A's killed cache checks clean (`vecfs check
    CACHEDIR`, rounds that keep it), and A restarted on the same cache
    (even rounds) or an emptied one (odd rounds) shows the same tree as B.
    The one operation per writer that was in flight at the kill may be
    there or not (its caller never saw success); which way it went is the
    same on both nodes.
  * an OSD (the primary of the log object's placement group) killed -9 by
    pid and restarted while both nodes write and query: no call fails, the
    longest call (the stall) is measured and bounded, and every write that
    returned is on both nodes and on a node C joined afterwards from an
    empty cache (so from the pool, after the OSD's recovery).
  * `vecfs backup --rados-*` (docs/scale-out.md §9): the copy restores with
    `vecfs restore` (which checks it) and, mounted in the embedded mode,
    shows the tree the nodes show.
  * `vecfs check --rados-*` clean, and `vecfs check CACHEDIR` clean for
    every node once stopped.

The cluster is its own (the `rados` test uses memstore, whose OSDs cannot
restart; meson runs each test alone). Every mount is unmounted, every
daemon, writer and the cluster stopped by pid on every exit path. Exits 77
without /dev/fuse or the Ceph binaries.
"""

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ceph_env  # noqa: E402
import run  # noqa: E402  (the Mount class and helpers of the filesystem suite)
from run import Fail, check, eq, parse_result, query, read_file, write_file  # noqa: E402

VECFS = CLUSTER_SH = TMP = CONF = None
POOL = "vecfs"
COLL = "k"
WRITERS = 3  # writer processes on A in each kill round
NAMES = 25  # names per writer: overwrites, deletes and xattrs find targets
CKPT_N = 50  # --rados-ckpt-entries: checkpoints (and reloads of them) happen in the rounds
LEASE_S = 3  # --rados-ckpt-lease: a killed holder's lease lapses soon
# The longest call allowed while an OSD dies and comes back. The PG
# re-peers in seconds (docs/scale-out.md §8: 1.3-1.4 s measured at a load
# of 14-22); one RADOS call that waits longer than --rados-timeout (10 s)
# fails with EIO, which this test forbids, but a write may first wait for
# the node's other writers (one append at a time), so its whole call may
# take longer: 11.9 s was seen with ASan at a load of 42. The bound catches
# a hang, the figure is printed.
STALL_BOUND_S = 30.0
CALL_TIMEOUT_S = 30  # --rados-timeout of the nodes (rados_opts)
LOST_ERRNOS = (errno.ENOTCONN, errno.ECONNABORTED)  # a call cut by the kill


# ---------------------------------------------------------------------------
# The writer processes
# ---------------------------------------------------------------------------


def writer_main(cdir, k, seed, log_path):
    """Writes, overwrites, deletes and setxattrs names w<k>-<i> of cdir until
    a call fails. Before each call: `B op name arg` in LOG; after it `D`, or
    `E errno` and exit. LOG is opened O_APPEND and written unbuffered, so it
    survives this process and the daemon's death."""
    rnd = random.Random(seed)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    present = {n for n in os.listdir(cdir) if n.startswith("w%d-" % k)}
    n = 0
    while True:
        name = "w%d-%d" % (k, rnd.randrange(NAMES))
        p = os.path.join(cdir, name)
        n += 1
        if name not in present or rnd.random() < 0.4:
            op, arg = "put", "%d %d %d %d" % (k, seed % 1000, n, rnd.randrange(100))
        elif rnd.random() < 0.5:
            op, arg = "xattr", "s%d-%d" % (seed % 1000, n)
        else:
            op, arg = "del", "-"
        os.write(log, ("B %s %s %s\n" % (op, name, arg)).encode())
        try:
            if op == "put":
                write_file(p, arg + "\n")
                present.add(name)
            elif op == "xattr":
                os.setxattr(p, "user.tag", arg.encode())
            else:
                os.unlink(p)
                present.discard(name)
        except OSError as e:
            os.write(log, ("E %d\n" % e.errno).encode())
            return 0
        os.write(log, b"D\n")


class Writer:
    """A writer_main in a child forked from this process (no threads run
    during the rounds): no interpreter start-up per writer."""

    def __init__(self, cdir, k, seed, log_path):
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                code = writer_main(cdir, k, seed, log_path)
            finally:
                os._exit(code)
        self.status = None

    def alive(self):
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
        return self.status is None

    def wait(self, bound):
        """Exit status within bound seconds, else killed and -9."""
        t0 = time.monotonic()
        while self.alive() and time.monotonic() - t0 < bound:
            time.sleep(0.01)
        if self.alive():
            self.kill()
        return self.status

    def kill(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


def read_writer_log(path):
    """[(op, name, arg, outcome)] of one writer log; outcome None = in flight."""
    ops = []
    with open(path) as f:
        for line in f:
            w = line.split()
            if w[0] == "B":
                ops.append([w[1], w[2], " ".join(w[3:]), None])
            elif w[0] == "D":
                ops[-1][3] = 0
            else:
                ops[-1][3] = int(w[1])
    return ops


def apply_op(state, op, name, arg):
    """state {name: (content, tag or None)} after one writer operation."""
    if op == "put":
        tag = state[name][1] if name in state else None
        state[name] = ((arg + "\n").encode(), tag)
    elif op == "xattr":
        state[name] = (state[name][0], arg.encode())
    else:
        state.pop(name, None)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def cluster(*args, timeout=180, check_rc=True):
    r = subprocess.run(["bash", CLUSTER_SH] + list(args), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check_rc and r.returncode != 0:
        raise Fail("ceph-cluster.sh %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r


def rados_opts():
    # A bound on each cluster call above the default 10 s: after an OSD's
    # restart the PG recovers vecfs.head (thousands of omap keys) while
    # the load goes on, and in one suite run beside other tests a read
    # barrier's catch-up waited longer than 10 s (fsync: EIO).
    return ["--rados-conf", CONF, "--rados-pool", POOL, "--rados-timeout", str(CALL_TIMEOUT_S)]


def node(name):
    return run.Mount(VECFS, os.path.join(TMP, "cache-" + name), os.path.join(TMP, "mnt-" + name),
                     TMP, opts=rados_opts() + ["--rados-ckpt-entries", str(CKPT_N),
                                               "--rados-ckpt-lease", str(LEASE_S)])


def barrier(m):
    """The read barrier (scale-out.md §1): fsync() of the collection."""
    fd = os.open(os.path.join(m.mnt, COLL), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def state_of(m):
    """{name: (content, user.tag or None)} of the collection on m."""
    out = {}
    cdir = os.path.join(m.mnt, COLL)
    for name in os.listdir(cdir):
        if name == ".config":
            continue
        p = os.path.join(cdir, name)
        tag = os.getxattr(p, "user.tag") if "user.tag" in os.listxattr(p) else None
        out[name] = (read_file(p), tag)
    return out


def tree(m):
    """Everything stat and getxattr show of the collection, for node equality."""
    out = {}
    cdir = os.path.join(m.mnt, COLL)
    for name in sorted(os.listdir(cdir)):
        if name == ".config":
            continue
        p = os.path.join(cdir, name)
        st = os.stat(p)
        out[name] = (read_file(p), st.st_mode, st.st_mtime_ns,
                     {x: os.getxattr(p, x) for x in sorted(os.listxattr(p))})
    return out


def vecfs_check(*args):
    r = subprocess.run([VECFS, "check"] + list(args), capture_output=True, timeout=120)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def kill_node(m):
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait()
    m.stop()  # detaches the dead mount


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def kill_rounds(ctx, rounds):
    a, b = ctx["a"], ctx["b"]
    os.mkdir(os.path.join(a.mnt, COLL))
    barrier_ok = False
    while not barrier_ok:
        try:
            barrier(b)
            barrier_ok = True
        except FileNotFoundError:
            time.sleep(0.01)
    rnd = random.Random(10)
    state = {}  # the agreed state at the start of the round
    total_ok = total_uncertain = 0
    for r in range(rounds):
        logs = [os.path.join(TMP, "w-%d-%d.log" % (r, k)) for k in range(WRITERS)]
        procs = [Writer(os.path.join(a.mnt, COLL), k, r * 100 + k, logs[k])
                 for k in range(WRITERS)]
        ctx["writers"] = procs
        # Python's start-up is slow on a loaded machine: the kill lands a
        # random time after every writer has had a call return.
        t_wait = time.monotonic()
        while not all(os.path.exists(p) and b"\nD\n" in b"\n" + open(p, "rb").read()
                      for p in logs):
            check(time.monotonic() - t_wait < 30, "round %d: writers did not start" % r)
            check(all(p.alive() for p in procs), "round %d: a writer exited" % r)
            time.sleep(0.01)
        time.sleep(rnd.uniform(0.1, 0.6))
        kill_node(a)
        for p in procs:
            eq(p.wait(30), 0, "round %d: exit status of a writer on the killed node" % r)
        # What every node must show: the returned operations applied to the
        # round's start; the one in flight per writer either way.
        want = dict(state)
        uncertain = {}
        for k, path in enumerate(logs):
            for op, name, arg, outcome in read_writer_log(path):
                if outcome is None or outcome != 0:
                    check(outcome is None or outcome in LOST_ERRNOS,
                          "round %d writer %d: %s %s failed with %s before the kill"
                          % (r, k, op, name, errno.errorcode.get(outcome, outcome)))
                    before = want.get(name)
                    after = dict(want)
                    apply_op(after, op, name, arg)
                    uncertain[name] = (before, after.get(name))
                    break
                apply_op(want, op, name, arg)
                total_ok += 1
        total_uncertain += len(uncertain)
        barrier(b)
        got = state_of(b)
        for name in set(want) | set(got) | set(uncertain):
            if name in uncertain:
                check(got.get(name) in uncertain[name], "round %d: %s on B is %r, neither %r"
                      % (r, name, got.get(name), uncertain[name]))
            else:
                eq(got.get(name), want.get(name), "round %d: %s on B" % (r, name))
        # B keeps accepting writes while A is down.
        bname = "b-%d" % (r % 5)
        write_file(os.path.join(b.mnt, COLL, bname), "9 9 9 %d\n" % r)
        if r % 2 == 0:
            rc, out = vecfs_check(a.datadir)
            eq(rc, 0, "round %d: vecfs check of A's killed cache: %s" % (r, out))
        else:
            shutil.rmtree(a.datadir)
        a.start()
        barrier(a)
        barrier(b)
        ta, tb = tree(a), tree(b)
        if ta != tb:
            diff = sorted(n for n in set(ta) | set(tb) if ta.get(n) != tb.get(n))
            raise Fail("round %d: restarted A (%s cache) and B differ on %s" % (
                r, "same" if r % 2 == 0 else "emptied", diff[:5]))
        state = {n: (v[0], v[3].get("user.tag")) for n, v in tb.items()}
        ctx.pop("writers", None)
    check(total_uncertain > 0, "no kill landed while a call was in flight")
    rc, out = vecfs_check(*rados_opts())
    eq(rc, 0, "vecfs check --rados-* after the rounds: " + out)
    loaded = log_of(a).count("rados: loaded checkpoint")
    print("  %d kill -9 rounds: %d operations returned, all on B and on the restarted A; "
          "%d in flight at the kills; A reloaded a checkpoint %d times" % (
              rounds, total_ok, total_uncertain, loaded))
    ctx["kill_stats"] = {"rounds": rounds, "returned": total_ok, "in_flight": total_uncertain}


def log_of(m):
    with open(m.log_path, errors="replace") as f:
        return f.read()


def head_primary():
    """The OSD id of the acting primary of vecfs.head's placement group."""
    r = subprocess.run(["ceph", "-c", CONF, "osd", "map", POOL, "vecfs.head", "--format",
                        "json"], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise Fail("ceph osd map: " + r.stderr.decode(errors="replace"))
    return json.loads(r.stdout)["acting_primary"]


def osd_killed_under_load(ctx):
    a, b = ctx["a"], ctx["b"]
    stop = threading.Event()
    lock = threading.Lock()
    returned, errors = {}, []
    lat = {"write": [], "query": []}

    def writer(m, tag):
        i = 0
        while not stop.is_set():
            name = "o%s%04d" % (tag, i)
            data = "%d 1 %d 2\n" % (i, len(tag))
            t0 = time.monotonic()
            try:
                write_file(os.path.join(m.mnt, COLL, name), data)
            except OSError as e:
                with lock:
                    errors.append("write %s on %s: %s" % (name, tag, e))
                return
            with lock:
                lat["write"].append((t0, time.monotonic() - t0))
                returned[name] = data.encode()
            i += 1

    def querier(m):
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                parse_result(query(os.path.join(m.mnt, COLL), "q", "k = 5\n1 1 1 1\n"))
            except OSError as e:
                with lock:
                    errors.append("query on %s: %s" % (m.mnt, e))
                return
            with lock:
                lat["query"].append((t0, time.monotonic() - t0))
            time.sleep(0.005)

    threads = [threading.Thread(target=writer, args=(a, "a")),
               threading.Thread(target=writer, args=(a, "a2")),
               threading.Thread(target=writer, args=(b, "b")),
               threading.Thread(target=querier, args=(a,)),
               threading.Thread(target=querier, args=(b,))]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        osd = head_primary()
        t_kill = time.monotonic()
        cluster("kill-osd", ctx["cdir"], str(osd))
        time.sleep(3.0)
        t_start = time.monotonic()
        cluster("start-osd", ctx["cdir"], str(osd), timeout=120)
        t_up = time.monotonic()
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    check(not any(t.is_alive() for t in threads), "a load thread is stuck")
    w, q = lat["write"], lat["query"]
    srt = sorted(d for _, d in w)
    stall = srt[-1]
    print("  osd.%d killed -9 under load (%d writes, %d queries, %d errors); restart took %.1f s;"
          " longest write %.2f s (p50 %.1f ms, p99 %.1f ms), longest query %.3f s" % (
              osd, len(w), len(q), len(errors), t_up - t_start, stall, srt[len(srt) // 2] * 1000,
              srt[int(len(srt) * 0.99)] * 1000, max(d for _, d in q)), flush=True)
    eq(errors, [], "errors seen by clients while osd.%d died and came back" % osd)
    during = [d for t0, d in w if t0 >= t_kill - 0.5]
    before = [d for t0, d in w if t0 < t_kill]
    check(len(before) > 10 and len(during) > 10,
          "too few writes around the kill: %d before, %d after" % (len(before), len(during)))
    check(stall < STALL_BOUND_S, "the longest write took %.2f s" % stall)
    for m in (a, b):
        barrier(m)
        got = state_of(m)
        for name, data in returned.items():
            eq(got.get(name, (None,))[0], data, name + " on " + m.mnt)
    # The pool itself holds them: a node joining from an empty cache, after
    # the OSD's restart, reads them from the checkpoint and the log.
    c = node("c")
    c.start()
    ctx["c"] = c
    barrier(c)
    eq(tree(c), tree(b), "C (joined from an empty cache after the OSD came back) and B")


def backup_restores(ctx):
    b = ctx["b"]
    out = os.path.join(TMP, "backup")
    r = subprocess.run([VECFS, "backup"] + rados_opts() + [out], capture_output=True, timeout=120)
    eq(r.returncode, 0, "vecfs backup --rados-*: " + r.stderr.decode())
    check(not any(n.startswith("backup.cache") for n in os.listdir(TMP)),
          "the backup's temporary cache is removed")
    data = os.path.join(TMP, "restored")
    r = subprocess.run([VECFS, "restore", out, data], capture_output=True, timeout=120)
    eq(r.returncode, 0, "vecfs restore of the RADOS backup: " + r.stderr.decode())
    # A bad command line is one line and exit 2.
    r = subprocess.run([VECFS, "backup"] + rados_opts() + [data, out], capture_output=True,
                       timeout=60)
    err = r.stderr.decode().strip()
    eq(r.returncode, 2, "vecfs backup --rados-* with a DATADIR too")
    check(err.startswith("usage: vecfs backup") and "\n" not in err, "one usage line: %r" % err)
    # The backup is an embedded DATADIR with the nodes' tree (nobody wrote
    # since the load stopped).
    e = run.Mount(VECFS, data, os.path.join(TMP, "mnt-restored"), TMP)
    e.start()
    try:
        barrier(b)
        eq(tree(e), tree(b), "the restored backup mounted in the embedded mode, and B")
        n = len(os.listdir(os.path.join(e.mnt, COLL)))
    finally:
        eq(e.stop(), 0, "exit status of the embedded mount of the backup")
    print("  backup of the pool: %d vectors, restored and checked, same tree as B" % n)


def check_clean(ctx):
    rc, out = vecfs_check(*rados_opts())
    eq(rc, 0, "vecfs check --rados-*: " + out)
    check(" 0 damaged" in out, "check report: " + out)
    caches = []
    for key in ("a", "b", "c"):
        m = ctx.pop(key, None)
        if m is not None:
            eq(m.stop(), 0, "exit status of node " + key)
            caches.append(m.datadir)
    eq(len(caches), 3, "nodes stopped")
    for cache in caches:
        rc, out = vecfs_check(cache)
        eq(rc, 0, "vecfs check %s: %s" % (cache, out))
        rc, out = vecfs_check(*rados_opts() + [cache])
        eq(rc, 0, "vecfs check --rados-* %s: %s" % (cache, out))


def main():
    global VECFS, CLUSTER_SH, TMP, CONF
    args = sys.argv[1:]
    if len(args) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    VECFS, CLUSTER_SH = os.path.abspath(args[0]), os.path.abspath(args[1])
    rounds = int(args[2]) if len(args) == 3 else 20
    if not ceph_env.ready(("ceph-mon", "ceph-mgr", "ceph-osd", "ceph")):
        return 77
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    TMP = tempfile.mkdtemp(prefix="vecfs-rados-kill-")
    cdir = os.path.join(TMP, "cluster")
    ctx = {"cdir": cdir}
    failed = 0
    t0 = time.monotonic()
    try:
        cluster("start", cdir, "--store", "bluestore", "--size", "2")
        CONF = os.path.join(cdir, "ceph.conf")
        print("cluster up after %.1f s" % (time.monotonic() - t0), flush=True)
        ctx["a"], ctx["b"] = node("a"), node("b")
        ctx["a"].start()
        ctx["b"].start()
        for name, fn in (("kill_rounds", lambda c: kill_rounds(c, rounds)),
                         ("osd_killed_under_load", osd_killed_under_load),
                         ("backup_restores", backup_restores), ("check_clean", check_clean)):
            t1 = time.monotonic()
            try:
                fn(ctx)
                print("PASS %s (%.1f s)" % (name, time.monotonic() - t1), flush=True)
            except Exception as e:  # noqa: BLE001 — report, then stop: later steps need it
                failed += 1
                print("FAIL %s: %s" % (name, e), flush=True)
                traceback.print_exc()
                for m in list(run.MOUNTS):
                    print("--- log of %s:\n%s" % (m.mnt, m.tail_log()))
                break
    finally:
        for p in ctx.get("writers", []):
            p.kill()
        run.cleanup_all()
        r = cluster("stop", cdir, check_rc=False)
        if r.returncode != 0:
            failed += 1
            print("FAIL stopping the cluster: %s" % r.stderr.decode(errors="replace"))
        else:
            shutil.rmtree(TMP, ignore_errors=True)
    print("%d failed; %.1f s" % (failed, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
