#!/usr/bin/env python3
"""rados-seal.py — what sealing the RADOS log with --key-file costs
(docs/scale-out.md §3): starts a throwaway cluster (scripts/ceph-cluster.sh,
memstore, 3 OSDs, pool size 2) and four nodes on it: two without a key on
namespaces `plain0` and `plain1`, two with a passphrase key file on
`sealed0` and `sealed1` (each namespace's vecfs.head lands on its own
placement group, whose primary OSD may be busier than another's: two of
each mode so that this does not pass for the seal's cost). In each of R
rounds, in an order that alternates between the modes, each node writes N
vector files one after the other (write+close time of each) and imports
one .fvecs batch of 1.3 MB (over 64 KiB: a sealed blob on the sealed
nodes). Prints one line per node and, with --json FILE, writes the
figures of every round.

Usage: bench/rados-seal.py VECFS CEPH_CLUSTER_SH [N] [R] [--json FILE]
Everything it started is stopped (bench/rados_nodes.py) on every exit path.
"""
import json
import os
import random
import struct
import sys
import time

from rados_nodes import Nodes, pct

BATCH_ROWS, BATCH_DIM = 1300, 256


def batch():
    rnd = random.Random(7)
    return b"".join(struct.pack("<i", BATCH_DIM) +
                    struct.pack("<%df" % BATCH_DIM, *[rnd.uniform(-1, 1) for _ in range(BATCH_DIM)])
                    for _ in range(BATCH_ROWS))


def one_round(mnt, rnd, n, data):
    """(write+close seconds of each of n files, seconds of one batch import)."""
    c = "%s/c%d" % (mnt, rnd)
    os.mkdir(c)
    times = []
    for i in range(n):
        t0 = time.monotonic()
        with open("%s/v%d" % (c, i), "w") as f:
            f.write("%d 1 2 3\n" % i)
        times.append(time.monotonic() - t0)
    b = "%s/b%d" % (mnt, rnd)
    os.mkdir(b)
    with open(b + "/.config", "w") as f:
        f.write("dim = %d\nmetric = l2\n" % BATCH_DIM)
    t0 = time.monotonic()
    with open(b + "/.import/rows.fvecs", "wb") as f:
        f.write(data)
    return times, time.monotonic() - t0


def main(argv):
    out_json = None
    if "--json" in argv:
        i = argv.index("--json")
        out_json = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) not in (3, 4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    n = int(argv[3]) if len(argv) >= 4 else 300
    rounds = int(argv[4]) if len(argv) == 5 else 4
    data = batch()
    with Nodes(argv[1], argv[2], "seal") as nodes:
        nodes.start_cluster()
        key = nodes.tmp + "/pass.key"
        with open(key, "w") as f:
            f.write("a passphrase for the benchmark\n")
        names = ["plain0", "sealed0", "plain1", "sealed1"]
        mounts = {ns: nodes.mount(ns, ["--rados-namespace", ns] +
                                  (["--key-file", key] if ns.startswith("sealed") else []))
                  for ns in names}
        res = {"n": n, "rounds": rounds, "batch_bytes": len(data)}
        res.update({ns: [] for ns in names})
        for r in range(rounds):
            for ns in (names if r % 2 == 0 else names[1:] + names[:1]):
                times, imp = one_round(mounts[ns], r, n, data)
                res[ns].append({"write_close_ms_p50": pct(times, .5),
                                "write_close_ms_p99": pct(times, .99),
                                "files_per_s": n / sum(times), "import_s": imp})
        for mode in sorted(names):
            print("%-7s N=%d x %d rounds: write+close ms p50 %s; p99 %s; files/s %s; "
                  "%.1f MB import s %s" % (
                      mode, n, rounds,
                      " ".join("%.2f" % x["write_close_ms_p50"] for x in res[mode]),
                      " ".join("%.2f" % x["write_close_ms_p99"] for x in res[mode]),
                      " ".join("%.0f" % x["files_per_s"] for x in res[mode]),
                      len(data) / 1e6, " ".join("%.2f" % x["import_s"] for x in res[mode])))
        if out_json:
            with open(out_json, "w") as f:
                json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
