"""rados_nodes.py — what the RADOS-mode benchmarks share (bench/rados-*.py):
a throwaway cluster (scripts/ceph-cluster.sh), vecfs daemons mounted on
it (or in the embedded mode) and percentiles.

    with Nodes(vecfs, cluster_sh, "delay") as nodes:
        nodes.start_cluster()                 # memstore, 3 OSDs, pool size 2
        ma = nodes.mount("a")                 # CACHEDIR nodes.tmp/c-a, mount point returned
        nodes.unmount(ma)

Leaving the `with` unmounts every daemon it started (and waits for it), stops
the cluster by its pid files and removes the temporary directory, on every
exit path.
"""
import os
import shutil
import subprocess
import tempfile
import time


def pct(xs, p):
    """The p-quantile (0..1) of xs, in milliseconds (xs in seconds)."""
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000


class Nodes:
    def __init__(self, vecfs, cluster_sh, name):
        self.vecfs, self.sh = os.path.abspath(vecfs), os.path.abspath(cluster_sh)
        self.tmp = tempfile.mkdtemp(prefix="vecfs-rados-%s-" % name)
        self.conf = None
        self.procs = []  # (Popen, mount point)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p, m in list(self.procs):
            self.unmount(m)
        if self.conf:
            subprocess.run(["bash", self.sh, "stop", self.tmp + "/cl"], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def start_cluster(self, *args):
        """Starts the cluster (ceph-cluster.sh start options; default
        memstore, 3 OSDs, pool size 2)."""
        self.conf = self.tmp + "/cl/ceph.conf"
        subprocess.run(["bash", self.sh, "start", self.tmp + "/cl", "--size", "2"] + list(args),
                       check=True, capture_output=True)

    def mount(self, name, opts=(), rados=True, bound=300):
        """Mounts a node (rados=False: an embedded DATADIR) with CACHEDIR
        tmp/c-NAME at tmp/m-NAME; returns the mount point once it is
        served (a RADOS node serves once caught up with the log)."""
        cache, mnt = self.tmp + "/c-" + name, self.tmp + "/m-" + name
        os.makedirs(cache, exist_ok=True)
        os.makedirs(mnt, exist_ok=True)
        pre = ["--rados-conf", self.conf, "--rados-pool", "vecfs"] if rados else []
        t0 = time.monotonic()
        p = subprocess.Popen([self.vecfs, "-f"] + pre + list(opts) + [cache, mnt],
                             stderr=subprocess.DEVNULL)
        self.procs.append((p, mnt))
        while not os.path.ismount(mnt):
            if p.poll() is not None or time.monotonic() - t0 > bound:
                raise RuntimeError("node %s did not mount" % name)
            time.sleep(0.005)
        return mnt

    def unmount(self, mnt):
        for p, m in list(self.procs):
            if m != mnt:
                continue
            subprocess.run(["fusermount3", "-u", m], capture_output=True)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            self.procs.remove((p, m))

    def wipe(self, name):
        """Empties node NAME's CACHEDIR (it must be unmounted)."""
        shutil.rmtree(self.tmp + "/c-" + name, ignore_errors=True)
