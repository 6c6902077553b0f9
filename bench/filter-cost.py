#!/usr/bin/env python3
"""filter-cost.py — what a filter costs a single query through the mount,
by how the filter is answered (docs/filesystem.md, Filters): none, `=`
and `in` (the metadata hash index), a range and `exists` (the ordered
metadata index, store/vidx.c; one walk over the collection's metadata
records before it), `not` (also the collection's ids), and the import's
time (the indexes are kept by every write).

Usage: bench/filter-cost.py PATH/TO/vecfs [--n 20000] [--dim 16] [--queries 50]

Mounts a fresh DATADIR in a temporary directory, imports n seeded vectors
with three metadata keys (year: 30 values, lang: 4, tag on a third), then
times the import, then `queries` text queries (k 10) per filter, alternating the filters
query by query so a busy machine slows them alike. Prints one line per
filter (median and p90 ms, passing count) and a JSON line. Unmounts and
removes everything on every exit path.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FILTERS = [
    ("none", None),
    ("eq", "year = 2020"),
    ("in", "lang in (en, de)"),
    ("range", "year >= 2020"),
    ("exists", "exists tag"),
    ("not", "not lang = en"),
    ("range_and_in", "year >= 2010 and lang in (en, de)"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vecfs")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--queries", type=int, default=50)
    a = ap.parse_args()
    if a.n < 1 or a.dim < 1 or a.queries < 1:
        print("filter-cost: --n, --dim and --queries must be at least 1", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="vecfs-filter-cost-")
    d, m = os.path.join(tmp, "d"), os.path.join(tmp, "m")
    os.makedirs(d)
    os.makedirs(m)
    proc = subprocess.Popen([a.vecfs, "-f", d, m], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.ismount(m):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the mount did not come up")
        c = os.path.join(m, "c")
        os.mkdir(c)
        with open(os.path.join(c, ".config"), "w") as f:
            f.write("metric = l2\ndim = %d\n" % a.dim)
        rnd = random.Random(5)
        rows = []
        for i in range(a.n):
            meta = {"year": str(2000 + i % 30), "lang": ["en", "de", "fr", "es"][i % 4]}
            if i % 3 == 0:
                meta["tag"] = "t%d" % (i % 7)
            rows.append(json.dumps({"name": "v%d" % i,
                                    "vector": [rnd.uniform(-1, 1) for _ in range(a.dim)],
                                    "meta": meta}))
        # The import's time: what keeping the metadata indexes costs writes.
        t0 = time.perf_counter()
        with open(os.path.join(c, ".import", "b.jsonl"), "w") as f:
            f.write("\n".join(rows))
        import_ms = (time.perf_counter() - t0) * 1000
        print("import of %d vectors with metadata: %.0f ms" % (a.n, import_ms))
        times = {name: [] for name, _ in FILTERS}
        passing = {}
        q = os.path.join(c, ".query", "q")
        for _ in range(a.queries):
            vec = " ".join("%.6f" % rnd.uniform(-1, 1) for _ in range(a.dim))
            for name, flt in FILTERS:
                text = "explain = 1\n" + ("filter = %s\n" % flt if flt else "") + vec + "\n"
                t0 = time.perf_counter()
                with open(q, "w") as f:
                    f.write(text)
                with open(q) as f:
                    first = f.readline()
                times[name].append((time.perf_counter() - t0) * 1000)
                passing[name] = first.strip()
        out = {"n": a.n, "dim": a.dim, "queries": a.queries, "import_ms": import_ms,
               "filters": {}}
        for name, flt in FILTERS:
            t = sorted(times[name])
            med, p90 = t[len(t) // 2], t[min(len(t) - 1, int(len(t) * 0.9))]
            print("%-13s %-36s median %7.2f ms  p90 %7.2f ms  %s"
                  % (name, flt or "-", med, p90, passing[name]))
            out["filters"][name] = {"filter": flt, "median_ms": med, "p90_ms": p90,
                                    "plan": passing[name]}
        print(json.dumps(out))
        return 0
    finally:
        subprocess.run(["fusermount3", "-u", m], stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
