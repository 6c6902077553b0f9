#!/usr/bin/env python3
"""rados-load.py — the RADOS mode under load (issue 10, item 5): write rate
through one node and through two, replication delay and query QPS under a
mixed load on one node and on two, and the same mixed load on an embedded
(LMDB) mount of the same machine.

Starts a throwaway cluster (scripts/ceph-cluster.sh; memstore by default,
3 OSDs, pool size 2), mounts nodes A and B, writes ROWS vectors of DIM
into collection c through A (the preload, not timed), then runs each phase
for SECONDS:

  write_1   WRITERS threads write single files on A             -> writes/s
  write_2   WRITERS threads on A and WRITERS on B                -> writes/s
  mixed_1   WRITERS on A, READERS query threads on A, and a probe that
            writes on A and polls B for the name every 0.5 ms   -> QPS, writes/s,
                                                                   delay p50/p99
  mixed_2   as mixed_1, with READERS more query threads on B    -> QPS (A + B), delay
  import_1  WRITERS threads write `.import/` batches of BATCH rows on A
                                                                -> batches/s, rows/s
  import_2  as import_1, on A and on B                          -> batches/s, rows/s
  lmdb_write  an embedded DATADIR, the same preload, as write_1   -> writes/s
  lmdb_mixed  on it, as mixed_1 (the probe polls the same mount) -> QPS, writes/s
  lmdb_import on it, as import_1                                 -> batches/s, rows/s

Writers overwrite w<thread>-<i % 500> (so the collection stays at ROWS plus
a few thousand); importers write `.import/b<thread>-<i % 20>.fvecs` (one log
entry each, a blob when over 64 KiB: 1,000 rows of 32 are 132 KB), whose
rows overwrite the same names each time round; readers send `k = 10` queries of random vectors. Every
figure is printed raw and, with --json FILE, written. A phase counts only
calls that returned 0; any error is counted and printed.

Usage: bench/rados-load.py VECFS CEPH_CLUSTER_SH [--seconds S] [--rows N]
       [--dim D] [--writers W] [--readers R] [--batch BATCH]
       [--store memstore|bluestore] [--json FILE]
Everything it started is stopped (bench/rados_nodes.py) on every exit path.
"""
import argparse
import json
import os
import random
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from rados_nodes import Nodes, pct


def vec(rnd, dim):
    return " ".join("%.4f" % rnd.uniform(-1, 1) for _ in range(dim)) + "\n"


def put(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def query(coll, text):
    """A query through the mount: written to .query/NAME, the answer read back."""
    q = coll + "/.query/q%d" % threading.get_ident()
    put(q, text)
    with open(q, "rb") as f:
        return f.read()


def fvecs(rnd, rows, dim):
    out = bytearray()
    for _ in range(rows):
        out += struct.pack("<i%df" % dim, dim, *[rnd.gauss(0, 1) for _ in range(dim)])
    return bytes(out)


def phase(args, writers, readers, probe, seconds, batch=0):
    """Runs writer threads on each mount of `writers` (single files, or with
    batch > 0 `.import/` files of that many rows), query threads on each of
    `readers` and, with probe = (A, B), the delay probe; returns the
    figures."""
    stop = threading.Event()
    lock = threading.Lock()
    errors, delays = [], []
    lat = {"write": [], "query": []}  # seconds of each call that returned

    def timed(kind, call):
        """Times call(i) for i = 0, 1, ... until stop or its first error."""
        i = 0
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                call(i)
            except OSError as e:
                with lock:
                    errors.append("%s: %s" % (kind, e))
                return
            with lock:
                lat[kind].append(time.monotonic() - t0)
            i += 1

    def writer(mnt, k):
        rnd = random.Random(k)
        if not batch:
            timed("write", lambda i: put(mnt + "/c/w%d-%d" % (k, i % 500), vec(rnd, args.dim)))
            return
        rows = fvecs(rnd, batch, args.dim)

        def imp(i):
            with open(mnt + "/c/.import/b%d-%d.fvecs" % (k, i % 20), "wb") as f:
                f.write(rows)
        timed("write", imp)

    def reader(mnt, k):
        rnd = random.Random(1000 + k)
        timed("query", lambda i: query(mnt + "/c", "k = 10\n" + vec(rnd, args.dim)))

    def prober(ma, mb):
        rnd, i = random.Random(7), 0
        while not stop.is_set():
            name = "/c/p%d" % (i % 200)
            text = "%d " % i + vec(rnd, args.dim - 1)
            put(ma + name, text)
            t1 = time.monotonic()
            while not stop.is_set():
                try:
                    with open(mb + name) as f:
                        if f.read() == text:
                            break
                except OSError:
                    pass
                time.sleep(0.0005)
            else:
                return
            delays.append(time.monotonic() - t1)
            i += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=writer, args=(m, 100 * n + k))
               for n, m in enumerate(writers) for k in range(args.writers)]
    threads += [threading.Thread(target=reader, args=(m, 100 * n + k))
                for n, m in enumerate(readers) for k in range(args.readers)]
    if probe:
        threads.append(threading.Thread(target=prober, args=probe))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    el = time.monotonic() - t0
    res = {"seconds": el, "writes_per_s": len(lat["write"]) / el,
           "rows_per_s": len(lat["write"]) * (batch or 1) / el,
           "qps": len(lat["query"]) / el, "errors": len(errors), "first_errors": errors[:3]}
    for kind, xs in lat.items():
        if xs:
            res.update({kind + "_ms_p50": pct(xs, .5), kind + "_ms_p99": pct(xs, .99)})
    if delays:
        res.update(delay_n=len(delays), delay_ms_p50=pct(delays, .5),
                   delay_ms_p99=pct(delays, .99), delay_ms_max=max(delays) * 1000)
    return res


def preload(mnt, rows, dim):
    os.mkdir(mnt + "/c")
    rnd = random.Random(1)
    texts = [vec(rnd, dim) for _ in range(rows)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: put(mnt + "/c/v%d" % i, texts[i]), range(rows)))


def show(name, r):
    parts = ["%s: %.0f writes/s" % (name, r["writes_per_s"])]
    if r["rows_per_s"] != r["writes_per_s"]:
        parts.append("%.0f rows/s" % r["rows_per_s"])
    if r["qps"]:
        parts.append("%.0f queries/s" % r["qps"])
    if "write_ms_p50" in r:
        parts.append("write p50/p99 %.1f/%.1f ms" % (r["write_ms_p50"], r["write_ms_p99"]))
    if "query_ms_p50" in r:
        parts.append("query p50/p99 %.1f/%.1f ms" % (r["query_ms_p50"], r["query_ms_p99"]))
    if "delay_ms_p50" in r:
        parts.append("delay A->B p50/p99/max %.1f/%.1f/%.1f ms (n=%d)" % (
            r["delay_ms_p50"], r["delay_ms_p99"], r["delay_ms_max"], r["delay_n"]))
    parts.append("%d errors %s" % (r["errors"], r["first_errors"] if r["errors"] else ""))
    print(", ".join(parts), flush=True)


def main(argv):
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("vecfs")
    ap.add_argument("cluster_sh")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--store", default="memstore")
    ap.add_argument("--json")
    args = ap.parse_args(argv[1:])
    res = {"args": vars(args)}
    with Nodes(args.vecfs, args.cluster_sh, "load") as nodes:
        nodes.start_cluster("--store", args.store)
        ma = nodes.mount("a")
        t0 = time.monotonic()
        preload(ma, args.rows, args.dim)
        res["preload_s"] = time.monotonic() - t0
        mb = nodes.mount("b")
        print("preloaded %d x %d through A in %.1f s; B joined" % (
            args.rows, args.dim, res["preload_s"]), flush=True)
        for name, w, r, probe in (("write_1", [ma], [], None), ("write_2", [ma, mb], [], None),
                                  ("mixed_1", [ma], [ma], (ma, mb)),
                                  ("mixed_2", [ma], [ma, mb], (ma, mb))):
            res[name] = phase(args, w, r, probe, args.seconds)
            show(name, res[name])
        for name, w in (("import_1", [ma]), ("import_2", [ma, mb])):
            res[name] = phase(args, w, [], None, args.seconds, args.batch)
            show(name, res[name])
        nodes.unmount(mb)
        nodes.unmount(ma)
        ml = nodes.mount("lmdb", rados=False)
        preload(ml, args.rows, args.dim)
        for name, w, r, probe in (("lmdb_write", [ml], [], None),
                                  ("lmdb_mixed", [ml], [ml], (ml, ml))):
            res[name] = phase(args, w, r, probe, args.seconds)
            show(name, res[name])
        res["lmdb_import"] = phase(args, [ml], [], None, args.seconds, args.batch)
        show("lmdb_import", res["lmdb_import"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
