#!/usr/bin/env python3
"""rados-join.py — join time of a RADOS-mode node from an empty CACHEDIR
(docs/scale-out.md §7), from a checkpoint against from a full log replay.

Starts a throwaway cluster (scripts/ceph-cluster.sh, memstore, 3 OSDs,
pool size 2). In two namespaces of the pool a writer node A writes N
vector files (dimension 32), four writers at a time: namespace `ckpt` with
--rados-ckpt-entries N/10 (so a checkpoint covers nearly all of them),
namespace `replay` with checkpoints off in effect (--rados-ckpt-entries
100000000). Then, ROUNDS times and alternating, a node B with an empty
CACHEDIR is started on each namespace and timed from exec to its mount
being served (the mount is served only once caught up to the head). Prints
every figure raw and, with --json FILE, writes them.

With --import-batch R, A writes the N vectors instead as .fvecs files of
R rows into `.import/` (one log entry, or one blob, per file; rows named
v<file>-<row>.f32), which makes N = 100,000 or 1,000,000 quick to prepare;
checkpoints then come every (N / R) / 10 entries.

Usage: bench/rados-join.py VECFS CEPH_CLUSTER_SH [N] [ROUNDS] [--store memstore|bluestore]
       [--import-batch R] [--json FILE]
Everything it started is stopped (bench/rados_nodes.py) on every exit path.
"""
import json
import os
import random
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from rados_nodes import Nodes


def write_vec(mnt, i):
    with open(mnt + "/c/v%d" % i, "w") as f:
        f.write(" ".join(str((i * 7 + j) % 13 - 6) for j in range(32)) + "\n")


def import_rows(mnt, first, count):
    """Seeded gaussian rows: the single files' pattern repeats 13 vectors,
    which at 100,000 rows would time an index of twins."""
    rnd = random.Random(first)
    rows = bytearray()
    for _ in range(count):
        rows += struct.pack("<i", 32)
        rows += struct.pack("<32f", *[rnd.gauss(0, 1) for _ in range(32)])
    with open(mnt + "/c/.import/v%d.fvecs" % first, "wb") as f:
        f.write(rows)


def ckpt_of(nodes, ns):
    r = subprocess.run([nodes.vecfs, "check", "--rados-conf", nodes.conf, "--rados-pool", "vecfs",
                        "--rados-namespace", ns], capture_output=True, timeout=120)
    w = r.stdout.decode().split()
    return int(w[w.index("head") + 1]), int(w[w.index("ckpt") + 1])


def main(argv):
    out_json = None
    if "--json" in argv:
        i = argv.index("--json")
        out_json = argv[i + 1]
        del argv[i:i + 2]
    store = "memstore"
    if "--store" in argv:
        i = argv.index("--store")
        store = argv[i + 1]
        del argv[i:i + 2]
    batch = 0
    if "--import-batch" in argv:
        i = argv.index("--import-batch")
        batch = int(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) not in (3, 4, 5) or batch < 0:
        print(__doc__, file=sys.stderr)
        return 2
    n = int(argv[3]) if len(argv) >= 4 else 2000
    rounds = int(argv[4]) if len(argv) == 5 else 3
    entries = -(-n // batch) if batch else n
    modes = {"ckpt": ["--rados-ckpt-entries", str(max(1, entries // 10))],
             "replay": ["--rados-ckpt-entries", "100000000"]}
    with Nodes(argv[1], argv[2], "join") as nodes:
        nodes.start_cluster("--store", store)
        res = {"n": n, "rounds": rounds, "import_batch": batch}
        for ns, extra in modes.items():
            ma = nodes.mount("a-" + ns, ["--rados-namespace", ns] + extra)
            os.mkdir(ma + "/c")
            t0 = time.monotonic()
            if batch:
                for first in range(0, n, batch):
                    import_rows(ma, first, min(batch, n - first))
            else:
                with ThreadPoolExecutor(4) as pool:  # the load only; not what is timed
                    list(pool.map(lambda i: write_vec(ma, i), range(n)))
            res["write_s_" + ns] = time.monotonic() - t0
            deadline = time.monotonic() + 60
            while ns == "ckpt" and entries + 1 - ckpt_of(nodes, ns)[1] >= max(1, entries // 10):
                if time.monotonic() > deadline:
                    raise RuntimeError("no checkpoint near the head in 60 s")
                time.sleep(0.5)
            res["head_ckpt_" + ns] = ckpt_of(nodes, ns)
        for ns in modes:
            res["join_s_" + ns] = []
        for r in range(rounds):
            for ns, extra in modes.items():
                nodes.wipe("b-" + ns)
                t0 = time.monotonic()
                mb = nodes.mount("b-" + ns, ["--rados-namespace", ns] + extra)
                took = time.monotonic() - t0
                names = [x for x in os.listdir(mb + "/c") if x.startswith("v")]
                if len(names) != n:
                    raise RuntimeError("joined node on %s lists %d vectors" % (ns, len(names)))
                res["join_s_" + ns].append(took)
                nodes.unmount(mb)
        print("N=%d (head, ckpt) %r / %r; join from empty cache s: checkpoint %s; log replay %s"
              % (n, res["head_ckpt_ckpt"], res["head_ckpt_replay"],
                 " ".join("%.2f" % x for x in res["join_s_ckpt"]),
                 " ".join("%.2f" % x for x in res["join_s_replay"])))
        if out_json:
            with open(out_json, "w") as f:
                json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
