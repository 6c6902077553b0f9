#!/usr/bin/env python3
"""rados_cache.py — a node's cache in the RADOS mode (docs/scale-out.md §6,
§7) on real mounts against a real local Ceph cluster (its own, memstore, 3
OSDs, pool size 2; scripts/ceph-cluster.sh).

Usage: tests/integration/rados_cache.py PATH/TO/vecfs PATH/TO/scripts/ceph-cluster.sh [-k SUBSTRING]

  * identity: node A's cache of the default namespace, remounted on
    namespace "other" (written by node X), is discarded (one log line) and
    serves only the other namespace's tree; then on a second pool "p2"
    (created by the test), the same; checks clean.
  * boot id: A killed -9 (no clean close) restarts on its cache and keeps
    it; killed again, with the boot id in CACHEDIR/rados.id changed to
    another (what a reboot looks like: the test edits the file and
    recomputes its CRC-32C), its cache is discarded and it rejoins from
    the checkpoint with B's tree.
  * behind the trim: B stopped (SIGSTOP) while A writes, deletes,
    renames, sets xattrs, drops and makes collections and checkpoints
    until the trim passes B's place; after SIGCONT, B reloads the newest
    checkpoint while running (its log says so), has A's tree, and follows
    the log again.
  * orphans: blob objects that no entry names (left by a node that the
    test hook VECFS_TEST_KILL_AFTER_BLOB kills between its upload and its
    append, in -Dtest_hooks builds; written with the rados CLI as such a
    writer leaves them otherwise) are a warning of `vecfs check
    --rados-*`, not damage; the checkpoint writer removes those older than
    --rados-orphan-age and leaves a younger one and the blob of a real
    large import (named by its entry) alone.

Every mount is unmounted, every daemon and the cluster stopped by pid on
every exit path. Exits 77 without /dev/fuse or the Ceph binaries.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rados as R  # noqa: E402  (the helpers of the RADOS suite)
import run  # noqa: E402
from run import Fail, check, eq, read_file, write_file  # noqa: E402
from ceph_env import test_main  # noqa: E402

ORPHAN_AGE_S = 20  # --rados-orphan-age of the nodes
ROWS = 40  # rows of dimension R.BIG_DIM: 164 KB, one blob object
CLUSTER = [None]  # the test's ceph_env.TestCluster
OTHER_POOLS = []  # pools it made besides its own, deleted with it


def node(name, cache=None, ns=None):
    cache = cache or os.path.join(R.TMP, "cache-" + name)
    opts = R.rados_opts() + ["--rados-ckpt-entries", str(R.CKPT_N), "--rados-ckpt-lease",
                             str(R.LEASE_S), "--rados-orphan-age", str(ORPHAN_AGE_S)]
    if ns:
        opts += ["--rados-namespace", ns]
    return run.Mount(R.VECFS, cache, os.path.join(R.TMP, "mnt-" + name), R.TMP, opts=opts)


def check_cache(cache):
    r = subprocess.run([R.VECFS, "check", cache], capture_output=True, timeout=60)
    eq(r.returncode, 0, "vecfs check %s: %s%s" % (cache, r.stdout.decode(), r.stderr.decode()))


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def set_boot_id(cache, boot):
    """Rewrites CACHEDIR/rados.id with another boot id and its CRC."""
    path = os.path.join(cache, "rados.id")
    with open(path, "rb") as f:
        text = f.read()
    body = re.sub(rb"\nboot [^\n]*\n", b"\nboot " + boot.encode() + b"\n", text[:-13])
    check(body != text[:-13], "rados.id has a boot line: %r" % text)
    with open(path, "wb") as f:
        f.write(body + b"crc %08x\n" % crc32c(body))


def fill(m, coll, n, tag):
    os.makedirs(os.path.join(m.mnt, coll), exist_ok=True)
    for i in range(n):
        write_file(os.path.join(m.mnt, coll, "%s%d" % (tag, i)), R.vec(i))


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def other_pool(suffix):
    """Creates another pool (8 PGs, size 2) that takes writes; returns its name."""
    name = CLUSTER[0].pool_name(suffix)
    r = subprocess.run(["bash", R.CLUSTER_SH, "add-pool", CLUSTER[0].dir, name, "--pgs", "8",
                        "--size", "2"], capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
    eq(r.returncode, 0, "creating pool %s: %s" % (name, r.stderr.decode(errors="replace")))
    OTHER_POOLS.append(name)
    return name


def identity_other_namespace(ctx):
    a = ctx["a"]
    fill(a, "mine", 5, "v")
    eq(a.stop(), 0, "A stopped cleanly")
    x = node("x", ns="other")
    x.start()
    try:
        fill(x, "theirs", 3, "t")
        want = R.tree(x.mnt)
        a2 = node("a", cache=a.datadir, ns="other")
        a2.start()
        try:
            R.fsync_dir(a2.mnt)
            eq(R.tree(a2.mnt), want, "A's cache on namespace 'other' serves its tree only")
            log = R.log_of(a2)
            check(log.count("discarded the cache") == 1 and "another cluster, pool, namespace"
                  in log, "one line says why the cache went: %s" % a2.tail_log())
        finally:
            eq(a2.stop(), 0, "A on 'other' stopped")
    finally:
        eq(x.stop(), 0, "X stopped")
    check_cache(a.datadir)
    # The same cache on another pool of the cluster: discarded too.
    p2 = other_pool("p2")
    before = len(R.log_of(a))
    a3 = run.Mount(R.VECFS, a.datadir, a.mnt, R.TMP, opts=["--rados-conf", R.CONF,
                                                            "--rados-pool", p2])
    a3.start()
    try:
        fill(a3, "inp2", 2, "p")
        eq(sorted(os.listdir(a3.mnt)), ["inp2"], "A's cache on pool p2 serves p2's tree only")
        check("discarded the cache" in R.log_of(a)[before:], "on p2: %s" % a3.tail_log())
    finally:
        eq(a3.stop(), 0, "A on p2 stopped")
    check_cache(a.datadir)
    # Back on its own namespace the cache (now the other namespace's) is
    # discarded again and A has its own tree back.
    a.start()
    R.fsync_dir(a.mnt)
    check("theirs" not in os.listdir(a.mnt) and len(os.listdir(os.path.join(a.mnt, "mine"))) == 6,
          "A back on its namespace: %r" % os.listdir(a.mnt))
    print("  cache of the default namespace discarded on 'other', on pool p2 and back")


def boot_id_torn_cache(ctx):
    a, b = ctx["a"], ctx["b"]
    fill(a, "boot", 4, "k")
    # A crash under the same boot: the page cache kept every commit.
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    a.stop()
    before = len(R.log_of(a))
    a.start()
    check("discarded the cache" not in R.log_of(a)[before:],
          "a cache killed under this boot is kept: %s" % a.tail_log())
    fill(a, "boot", 3, "m")
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    a.stop()
    set_boot_id(a.datadir, "00000000-0000-4000-8000-000000000000")
    before = len(R.log_of(a))
    a.start()
    log = R.log_of(a)[before:]
    check("discarded the cache" in log and "not closed cleanly before the machine restarted" in log,
          "a cache of another boot, not closed cleanly, is discarded: %s" % a.tail_log())
    R.fsync_dir(a.mnt)
    R.fsync_dir(b.mnt)
    eq(R.tree(a.mnt), R.tree(b.mnt), "A rejoined has B's tree")
    # A clean close under another boot is kept.
    eq(a.stop(), 0, "A stopped cleanly")
    set_boot_id(a.datadir, "00000000-0000-4000-8000-000000000001")
    before = len(R.log_of(a))
    a.start()
    check("discarded the cache" not in R.log_of(a)[before:],
          "a cache closed cleanly is kept after a reboot: %s" % a.tail_log())
    print("  killed under this boot: kept; under another boot: discarded; clean: kept")


def behind_trim_reloads(ctx):
    a, b = ctx["a"], ctx["b"]
    fill(a, "keep", 6, "v")
    fill(a, "gone", 2, "g")
    os.setxattr(os.path.join(a.mnt, "keep", "v0"), "user.tag", b"old")
    R.fsync_dir(b.mnt)
    R.fsync_dir(os.path.join(b.mnt, "keep"))
    eq(R.tree(b.mnt), R.tree(a.mnt), "B caught up before its pause")
    applied = R.rados_check()[2]["head"]
    before = len(R.log_of(b))
    b.proc.send_signal(signal.SIGSTOP)
    try:
        # While B sleeps: overwrites, deletes, a rename, xattrs, a collection
        # dropped and one made, and enough entries for two checkpoints past
        # B's place.
        ka = os.path.join(a.mnt, "keep")
        write_file(os.path.join(ka, "v1"), R.vec(11))
        os.unlink(os.path.join(ka, "v2"))
        os.rename(os.path.join(ka, "v3"), os.path.join(ka, "v3b"))
        os.setxattr(os.path.join(ka, "v0"), "user.tag", b"new")
        os.setxattr(os.path.join(ka, "v4"), "user.more", b"x")
        os.chmod(os.path.join(ka, "v5"), 0o600)
        for name in os.listdir(os.path.join(a.mnt, "gone")):
            if name != ".config":
                os.unlink(os.path.join(a.mnt, "gone", name))
        os.rmdir(os.path.join(a.mnt, "gone"))
        n = [0]

        def trimmed():
            fill(a, "late", 10, "l%d_" % n[0])
            n[0] += 1
            return R.rados_check()[2]["trim"] > applied + 1

        R.wait_for(trimmed, "trim past B's place %d" % applied, bound=120)
    finally:
        b.proc.send_signal(signal.SIGCONT)
    want = R.tree(a.mnt)
    took = R.wait_for(lambda: R.tree(b.mnt) == want, "B has A's tree after the reload", bound=60)
    log = R.log_of(b)[before:]
    check("is behind the log's trim: reloading checkpoint" in log and "rados: reloaded checkpoint"
          in log, "B's log says it reloaded: %s" % b.tail_log())
    check("cannot follow" not in log, "B kept following: %s" % b.tail_log())
    # And follows the log again.
    write_file(os.path.join(a.mnt, "late", "after"), R.vec(3))
    R.wait_for(lambda: os.path.exists(os.path.join(b.mnt, "late", "after")), "a write after it")
    eq(b.proc.poll(), None, "B still runs")
    print("  B paused at %d, trim passed it (%d writes); same tree %.1f s after SIGCONT: %s"
          % (applied, n[0] * 10, took, [l for l in log.splitlines() if "reloaded" in l][0][-90:]))


def killed_writer_orphan():
    """With the test hook, a node killed between its blob upload and its
    append: its blob objects (the real path). Without, objects written as
    that leaves them."""
    with open(R.VECFS, "rb") as f:
        hook = b"VECFS_TEST_KILL_AFTER_BLOB" in f.read()
    if not hook:
        old = ["vecfs.blob.%s.%d" % ("ab" * 16, i) for i in range(2)]
        for oid in old:
            R.rados_cli("put", oid, "-", data=os.urandom(1000))
        return old, "written with the rados CLI (no test hook in this build)"
    objs0, refs0 = set(R.blob_objects()), R.blob_refs()
    k = node("k")
    os.environ["VECFS_TEST_KILL_AFTER_BLOB"] = "1"
    try:
        k.start()
    finally:
        del os.environ["VECFS_TEST_KILL_AFTER_BLOB"]
    try:
        os.makedirs(os.path.join(k.mnt, "kill"), exist_ok=True)
        write_file(os.path.join(k.mnt, "kill", ".config"), R.BIG_CONFIG)
        rows = R.big_rows(4)[:ROWS]
        try:
            write_file(os.path.join(k.mnt, "kill", ".import", "base.fvecs"),
                       R.fvecs(rows, R.BIG_DIM))
        except OSError:
            pass
        k.proc.wait(timeout=60)
        eq(k.proc.returncode, -signal.SIGKILL, "the writer killed itself after its upload")
    finally:
        k.stop()
    old = sorted(set(R.blob_objects()) - objs0)
    check(old and R.blob_refs() == refs0, "blob objects %r and no new b. record" % old)
    return old, "left by a writer killed between upload and append"


def orphans_swept(ctx):
    a, b = ctx["a"], ctx["b"]
    objs0 = set(R.blob_objects())
    old, how = killed_writer_orphan()
    rc, out, _ = R.rados_check()
    eq(rc, 0, "check with orphans exits 0: " + out)
    check(" 0 damaged" in out and "warning: blob object %s is named by no entry" % old[0] in out
          and "%d orphan blob objects" % len(old) in out,
          "check reports the orphans as a warning: " + out)
    # A real large entry: its blob is named by its entry, never an orphan.
    os.mkdir(os.path.join(a.mnt, "big"))
    write_file(os.path.join(a.mnt, "big", ".config"), R.BIG_CONFIG)
    rows = R.big_rows(3)[:ROWS]
    write_file(os.path.join(a.mnt, "big", ".import", "base.fvecs"), R.fvecs(rows, R.BIG_DIM))
    named = sorted(set(R.blob_objects()) - objs0 - set(old))
    check(named, "the import wrote blob objects")
    time.sleep(ORPHAN_AGE_S + 1)
    young = "vecfs.blob.%s.0" % ("cd" * 16)
    R.rados_cli("put", young, "-", data=os.urandom(100))
    ckpt0 = R.rados_check()[2]["ckpt"]
    t0 = time.monotonic()
    n = [0]

    def swept():
        for i in range(5):
            write_file(os.path.join(a.mnt, "big", "o%d" % (n[0] + i)), " ".join(["1"] * R.BIG_DIM))
        n[0] += 5
        fields = R.rados_check()[2]
        return fields["ckpt"] > ckpt0 and not set(old) & set(R.blob_objects())

    R.wait_for(swept, "orphans removed after a checkpoint", bound=ORPHAN_AGE_S - 5)
    left = set(R.blob_objects())
    check(young in left, "an orphan younger than the bound stays: %r" % sorted(left))
    check(set(named) <= left, "the import's blob objects stay: %r" % sorted(set(named) - left))
    R.fsync_dir(os.path.join(b.mnt, "big"))
    eq(len(os.listdir(os.path.join(b.mnt, "big"))) - 1, ROWS + n[0], "rows on B")
    logs = R.log_of(a) + R.log_of(b)
    check("removed %d orphan blob objects" % len(old) in logs, "the holder logs the sweep")
    print("  %d old orphan objects (%s) removed %.1f s into writing; the young one and %d named "
          "objects stay" % (len(old), how, time.monotonic() - t0, len(named)))


def check_clean(ctx):
    rc, out, _ = R.rados_check()
    eq(rc, 0, "vecfs check --rados-* exit status (%s)" % out)
    check(" 0 damaged" in out, "check report: " + out)
    caches = []
    for key in ("a", "b"):
        m = ctx.pop(key, None)
        if m is not None:
            eq(m.stop(), 0, "exit status of node " + key)
            caches.append(m.datadir)
    for cache in caches:
        check_cache(cache)


TESTS = [identity_other_namespace, boot_id_torn_cache, behind_trim_reloads, orphans_swept,
         check_clean]


def main():
    def bind(vecfs, cluster_sh, tmp, cl):
        R.VECFS, R.CLUSTER_SH, R.TMP, R.CONF, R.POOL = vecfs, cluster_sh, tmp, cl.conf, cl.pool
        CLUSTER[0] = cl

    def setup():
        ctx = {"a": node("a"), "b": node("b")}
        ctx["a"].start()
        ctx["b"].start()
        return ctx

    return test_main(__doc__, "rados-cache", TESTS, bind, setup, always=(check_clean,),
                     extra_pools=OTHER_POOLS)

if __name__ == "__main__":
    sys.exit(main())
