#!/usr/bin/env python3
"""rados-reload.py — how long a running RADOS-mode node behind the log's
trim takes to reload the newest checkpoint (docs/scale-out.md §7), and
whether its readers are served meanwhile.

Starts a throwaway cluster (scripts/ceph-cluster.sh, memstore, 3 OSDs,
pool size 2) and two nodes A and B (--rados-ckpt-entries 500). A imports N
vectors of dimension 16 (.fvecs files of 5,000 rows); B catches up. Then,
ROUNDS times: B is stopped (SIGSTOP), A overwrites CHANGED of the vectors
(and more, 100 at a time, until two checkpoints trimmed the log past B's
place), B is continued (SIGCONT) and timed until an fsync() of a vector
file on it returns (the read barrier waits for the reload and the
catch-up after it) and it shows A's last overwrite. Meanwhile a thread
on B opens and reads one vector file in a loop: the number of reads and
the slowest one are printed. Every figure raw; with --json FILE, written
there too.

Usage: bench/rados-reload.py VECFS CEPH_CLUSTER_SH [N] [CHANGED] [ROUNDS] [--json FILE]
Everything it started is stopped (bench/rados_nodes.py) on every exit path.
"""
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time

from rados_nodes import Nodes

DIM = 16
CKPT_ENTRIES = 500


def fvecs(rnd, count):
    out = bytearray()
    for _ in range(count):
        out += struct.pack("<i", DIM) + struct.pack("<%df" % DIM, *[rnd.gauss(0, 1) for _ in range(DIM)])
    return bytes(out)


def head_trim(nodes):
    r = subprocess.run([nodes.vecfs, "check", "--rados-conf", nodes.conf, "--rados-pool", "vecfs"],
                       capture_output=True, timeout=300)
    w = r.stdout.decode().split()
    return int(w[w.index("head") + 1]), int(w[w.index("trim") + 1])


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reader(path, stop, out):
    """Reads path in a loop until stop is set: out = [reads, slowest s, errors]."""
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            with open(path, "rb") as f:
                f.read()
        except OSError:
            out[2] += 1
        out[0] += 1
        out[1] = max(out[1], time.monotonic() - t0)


def main(argv):
    out_json = None
    if "--json" in argv:
        i = argv.index("--json")
        out_json = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) not in (3, 4, 5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    n = int(argv[3]) if len(argv) >= 4 else 20000
    changed = int(argv[4]) if len(argv) >= 5 else 1000
    rounds = int(argv[5]) if len(argv) == 6 else 2
    opts = ["--rados-ckpt-entries", str(CKPT_ENTRIES)]
    with Nodes(argv[1], argv[2], "reload") as nodes:
        nodes.start_cluster()
        ma = nodes.mount("a", opts)
        os.mkdir(ma + "/c")
        with open(ma + "/c/.config", "w") as f:
            f.write("dim = %d\nm = 8\nef_construction = 32\n" % DIM)
        rnd = random.Random(1)
        for first in range(0, n, 5000):
            with open(ma + "/c/.import/p%d.fvecs" % first, "wb") as f:
                f.write(fvecs(rnd, min(5000, n - first)))
        mb = nodes.mount("b", opts)
        proc_b = [p for p, m in nodes.procs if m == mb][0]
        fsync_dir(mb + "/c")
        names = sorted(x for x in os.listdir(ma + "/c") if x != ".config")
        if len(names) != n or len(os.listdir(mb + "/c")) - 1 != n:
            raise RuntimeError("the import did not reach both nodes")
        res = {"n": n, "changed": changed, "reload_s": [], "reads": [], "slowest_read_s": [],
               "read_errors": [], "overwrites": []}
        for r in range(rounds):
            head, _ = head_trim(nodes)
            proc_b.send_signal(signal.SIGSTOP)
            value = struct.pack("<%df" % DIM, *([0.25 * (r + 1)] * DIM))
            done = 0
            while True:
                for name in names[done % n:][:100]:
                    with open(ma + "/c/" + name, "wb") as f:
                        f.write(value)
                done += 100
                if done >= changed and head_trim(nodes)[1] > head + 1:
                    break
            last = names[(done - 1) % n]
            stop, stats = threading.Event(), [0, 0.0, 0]
            t = threading.Thread(target=reader, args=(mb + "/c/" + names[-1], stop, stats))
            t0 = time.monotonic()
            proc_b.send_signal(signal.SIGCONT)
            t.start()
            # The barrier is fsync() of a vector file, opened only now: a
            # file of B open while B is stopped would hang every subprocess
            # started meanwhile (its close at exec asks B), and fsync() of
            # the directory would hold the directory's inode lock in the
            # kernel, which the reader's lookups would wait for.
            barrier = os.open(mb + "/c/" + names[-2], os.O_RDONLY)
            os.fsync(barrier)
            os.close(barrier)
            with open(mb + "/c/" + last, "rb") as f:
                if f.read() != value:
                    raise RuntimeError("B does not show A's last overwrite after the reload")
            took = time.monotonic() - t0
            stop.set()
            t.join()
            res["reload_s"].append(took)
            res["overwrites"].append(done)
            res["reads"].append(stats[0])
            res["slowest_read_s"].append(stats[1])
            res["read_errors"].append(stats[2])
        print("N=%d CHANGED=%d; SIGCONT to caught up s: %s; overwrites %s; reads on B meanwhile %s, "
              "slowest ms %s, errors %s"
              % (n, changed, " ".join("%.2f" % x for x in res["reload_s"]), res["overwrites"],
                 res["reads"], " ".join("%.1f" % (x * 1000) for x in res["slowest_read_s"]),
                 res["read_errors"]))
        if out_json:
            with open(out_json, "w") as f:
                json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
