#!/usr/bin/env python3
"""rados-delay.py — replication delay of the RADOS mode (docs/scale-out.md
§5): starts a throwaway cluster (scripts/ceph-cluster.sh, memstore, 3 OSDs,
pool size 2), mounts two nodes A and B, writes N vector files on A one
after the other and measures, for each, the time from close() returning on
A to the name appearing on B (polled every 0.5 ms), and the write+close
time on A. Prints one line and, with --json FILE, writes the figures.

Usage: bench/rados-delay.py VECFS CEPH_CLUSTER_SH [N] [--json FILE]
Everything it started is stopped (daemons by unmount and wait, the cluster
by its pid files) on every exit path.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def pct(xs, p):
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000


def main(argv):
    out_json = None
    if "--json" in argv:
        i = argv.index("--json")
        out_json = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    vecfs, sh = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    n = int(argv[3]) if len(argv) == 4 else 300
    tmp = tempfile.mkdtemp(prefix="vecfs-rados-delay-")
    procs, mnts = [], []
    try:
        subprocess.run(["bash", sh, "start", tmp + "/cl", "--size", "2"], check=True,
                       capture_output=True)
        conf = tmp + "/cl/ceph.conf"
        for node in "ab":
            os.makedirs(tmp + "/c" + node)
            os.makedirs(tmp + "/m" + node)
            procs.append(subprocess.Popen(
                [vecfs, "-f", "--rados-conf", conf, "--rados-pool", "vecfs", tmp + "/c" + node,
                 tmp + "/m" + node], stderr=subprocess.DEVNULL))
            mnts.append(tmp + "/m" + node)
        deadline = time.monotonic() + 30
        while not all(os.path.ismount(m) for m in mnts):
            if time.monotonic() > deadline:
                raise RuntimeError("the two nodes did not mount in 30 s")
            time.sleep(0.05)
        os.mkdir(tmp + "/ma/c")
        while not os.path.isdir(tmp + "/mb/c"):
            time.sleep(0.01)
        delay, write = [], []
        for i in range(n):
            t0 = time.monotonic()
            with open(tmp + "/ma/c/v%d" % i, "w") as f:
                f.write("%d 1 2 3\n" % i)
            t1 = time.monotonic()
            while not os.path.exists(tmp + "/mb/c/v%d" % i):
                time.sleep(0.0005)
            delay.append(time.monotonic() - t1)
            write.append(t1 - t0)
        res = {"n": n, "delay_ms_p50": pct(delay, .5), "delay_ms_p99": pct(delay, .99),
               "delay_ms_max": max(delay) * 1000, "write_close_ms_p50": pct(write, .5),
               "write_close_ms_p99": pct(write, .99)}
        print("N=%d close->visible on B ms: p50 %.1f p99 %.1f max %.1f; write+close on A ms: "
              "p50 %.1f p99 %.1f" % (n, res["delay_ms_p50"], res["delay_ms_p99"],
                                     res["delay_ms_max"], res["write_close_ms_p50"],
                                     res["write_close_ms_p99"]))
        if out_json:
            with open(out_json, "w") as f:
                json.dump(res, f, indent=1)
    finally:
        for m in mnts:
            subprocess.run(["fusermount3", "-u", m], capture_output=True)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["bash", sh, "stop", tmp + "/cl"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
