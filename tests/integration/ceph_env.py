"""ceph_env.py — the Ceph cluster a RADOS-mode test runs on.

scripts/test.sh starts one throwaway cluster (scripts/ceph-cluster.sh,
memstore, 3 OSDs) for the whole test run and names its directory in
VECFS_TEST_CEPH_DIR; a test then takes a pool of its own there
(`add-pool`, size 2) and deletes it at the end (`rm-pool`), so the tests
that share the cluster never see each other's objects. A test run alone
(`meson test NAME`, or by hand) starts a cluster of its own in its temp
dir, as it always did. rados_kill.py always starts its own: it kills and
restarts OSDs (bluestore), which would disturb the tests sharing one.

test_main() is the whole command line of such a test:
`SCRIPT PATH/TO/vecfs PATH/TO/scripts/ceph-cluster.sh [-k SUBSTRING]...`.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import run  # the Mount class and helpers of the filesystem suite

SHARED_ENV = "VECFS_TEST_CEPH_DIR"


class TestCluster:
    """The cluster of one test: the run's shared one or its own."""

    def __init__(self, cluster_sh, tmp, name):
        shared = os.environ.get(SHARED_ENV)
        self.sh = cluster_sh
        self.shared = bool(shared)
        self.dir = shared or os.path.join(tmp, "cluster")
        self.conf = os.path.join(self.dir, "ceph.conf")
        # A cluster of its own has the default pool; a shared one gets the
        # test's name, which no other test of the run uses.
        self.pool = "vecfs-" + name if self.shared else "vecfs"

    def _script(self, *args):
        return subprocess.run(["bash", self.sh] + list(args), capture_output=True, timeout=180,
                              stdin=subprocess.DEVNULL)

    def start(self):
        """Returns a line saying what was started; raises RuntimeError."""
        if self.shared:
            r = self._script("add-pool", self.dir, self.pool, "--size", "2")
        else:
            r = self._script("start", self.dir, "--size", "2")
        if r.returncode != 0:
            raise RuntimeError("ceph-cluster.sh: %s" % r.stderr.decode(errors="replace").strip())
        return ("pool %s on the shared cluster %s" % (self.pool, self.dir) if self.shared else
                "a cluster of its own in %s" % self.dir)

    def pool_name(self, suffix):
        """A name for another pool the test makes, unique within the run."""
        return "%s-%s" % (self.pool, suffix)

    def stop(self, extra_pools=()):
        """Deletes the test's pools (shared) or stops its cluster; returns
        the error text, or None."""
        if self.shared:
            errs = []
            for pool in [self.pool] + list(extra_pools):
                r = self._script("rm-pool", self.dir, pool)
                if r.returncode != 0:
                    errs.append(r.stderr.decode(errors="replace").strip())
            return "; ".join(errs) or None
        r = self._script("stop", self.dir)
        return r.stderr.decode(errors="replace").strip() if r.returncode != 0 else None


def ready(ceph_tools):
    """Whether FUSE and the given Ceph programs are here; prints the SKIP
    line of the missing one when not."""
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        print("SKIP: no FUSE")
        return False
    if any(shutil.which(b) is None for b in ceph_tools):
        print("SKIP: no Ceph (scripts/install-deps.sh installs it)")
        return False
    return True


def test_main(doc, name, tests, bind, setup, always=(), after_fail=None, extra_pools=()):
    """Runs a RADOS-mode test from its command line; returns its exit
    status (0, 1 when a test failed, 2 bad usage, 77 without FUSE or Ceph).

    bind(vecfs, cluster_sh, tmp, cluster) hands the test module its paths
    and its TestCluster before the cluster starts; setup() returns the
    tests' context once it is up (nodes started). Each test is called with
    that context, unless -k substrings were given and none is in its name
    (those in `always` run anyway); after_fail(ctx), when given, runs after
    a test that failed. extra_pools: pools the tests made besides their
    own (a list they may still append to), deleted with it. Every mount is
    unmounted and the cluster stopped (or the pools deleted) on every exit
    path; the temp dir goes when that succeeded.
    """
    args = sys.argv[1:]
    filters = []
    while "-k" in args:
        i = args.index("-k")
        filters.append(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        print(doc, file=sys.stderr)
        return 2
    if not ready(("ceph-mon", "ceph-mgr", "ceph-osd", "rados")):
        return 77
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    vecfs, cluster_sh = os.path.abspath(args[0]), os.path.abspath(args[1])
    tmp = tempfile.mkdtemp(prefix="vecfs-%s-" % name)
    cl = TestCluster(cluster_sh, tmp, name)
    bind(vecfs, cluster_sh, tmp, cl)
    failed = 0
    t0 = time.monotonic()
    try:
        what = cl.start()
        print("%s, up after %.1f s" % (what, time.monotonic() - t0), flush=True)
        ctx = setup()
        for t in tests:
            if filters and not any(f in t.__name__ for f in filters) and t not in always:
                continue
            t1 = time.monotonic()
            try:
                t(ctx)
                print("PASS %s (%.1f s)" % (t.__name__, time.monotonic() - t1), flush=True)
            except Exception as e:  # noqa: BLE001 — report and go on
                failed += 1
                print("FAIL %s: %s" % (t.__name__, e), flush=True)
                traceback.print_exc()
                for m in list(run.MOUNTS):
                    print("--- log of %s:\n%s" % (m.mnt, m.tail_log()))
                if after_fail is not None:
                    after_fail(ctx)
    finally:
        run.cleanup_all()
        err = cl.stop(extra_pools=extra_pools)
        if err:
            failed += 1
            print("FAIL stopping the cluster: %s" % err)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d failed; %.1f s" % (failed, time.monotonic() - t0))
    return 1 if failed else 0
