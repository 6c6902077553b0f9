#!/usr/bin/env python3
"""rados-delay.py — replication delay of the RADOS mode (docs/scale-out.md
§5): starts a throwaway cluster (scripts/ceph-cluster.sh, memstore, 3 OSDs,
pool size 2), mounts two nodes A and B, writes N vector files on A one
after the other and measures, for each, the time from close() returning on
A to the name appearing on B (polled every 0.5 ms), and the write+close
time on A. Prints one line and, with --json FILE, writes the figures.

Usage: bench/rados-delay.py VECFS CEPH_CLUSTER_SH [N] [--json FILE]
Everything it started is stopped (bench/rados_nodes.py) on every exit path.
"""
import json
import os
import sys
import time

from rados_nodes import Nodes, pct


def main(argv):
    out_json = None
    if "--json" in argv:
        i = argv.index("--json")
        out_json = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    n = int(argv[3]) if len(argv) == 4 else 300
    with Nodes(argv[1], argv[2], "delay") as nodes:
        nodes.start_cluster()
        ma, mb = nodes.mount("a"), nodes.mount("b")
        os.mkdir(ma + "/c")
        while not os.path.isdir(mb + "/c"):
            time.sleep(0.01)
        delay, write = [], []
        for i in range(n):
            t0 = time.monotonic()
            with open(ma + "/c/v%d" % i, "w") as f:
                f.write("%d 1 2 3\n" % i)
            t1 = time.monotonic()
            while not os.path.exists(mb + "/c/v%d" % i):
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
