"""ceph_env.py — the Ceph cluster a RADOS-mode test runs on.

scripts/test.sh starts one throwaway cluster (scripts/ceph-cluster.sh,
memstore, 3 OSDs) for the whole test run and names its directory in
VECFS_TEST_CEPH_DIR; a test then takes a pool of its own there
(`add-pool`, size 2) and deletes it at the end (`rm-pool`), so the tests
that share the cluster never see each other's objects. A test run alone
(`meson test NAME`, or by hand) starts a cluster of its own in its temp
dir, as it always did. rados_kill.py always starts its own: it kills and
restarts OSDs (bluestore), which would disturb the tests sharing one.
"""
import os
import subprocess

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
