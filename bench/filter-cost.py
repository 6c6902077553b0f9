#!/usr/bin/env python3
"""filter-cost.py — what a filter costs a single query through the mount,
by how the filter is answered (docs/filesystem.md, Filters): none, `=`
and `in` (the metadata hash index), a range and `exists` (the ordered
metadata index, store/vidx.c; one walk over the collection's metadata
records before it), `not` (also the collection's ids), and what keeping
the indexes costs writes: the import's time and, with --writes W, the
latency of W setxattr calls on stored vectors and of W inserts of a new
vector file with three xattrs.

Usage: bench/filter-cost.py PATH/TO/vecfs [--n 20000] [--dim 16] [--queries 50]
                            [--writes 0]

Mounts a fresh DATADIR in a temporary directory, imports n seeded vectors
with three metadata keys (year: 30 values, lang: 4, tag on a third), then
times the import, then `queries` text queries (k 10) per filter, alternating the filters
query by query so a busy machine slows them alike. Prints one line per
filter (median and p90 ms, passing count) and a JSON line. Unmounts and
removes everything on every exit path.

--writes W, after the queries: W setxattr calls on stored vectors, each
replacing a value (user.year: a number, by another; user.lang: text, by
another; alternately), and W inserts, each a new text vector file
(open, write, close) and then three setxattr calls (year, lang, tag),
timed as one; one line each (median, p90, p99 ms and per second) and
the figures in the JSON. To see what the ordered metadata index (VIDX)
costs, run this against a vecfs built without it, alternately
(docs/performance.md, "What the ordered metadata index costs writes").
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


def summary(what, ms):
    """Median, p90, p99 (ms) and calls per second of ms; printed."""
    t = sorted(ms)
    pct = {p: t[min(len(t) - 1, int(len(t) * p / 100))] for p in (50, 90, 99)}
    per_s = len(t) / (sum(t) / 1000)
    print("%-30s median %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  %7.0f /s"
          % (what, pct[50], pct[90], pct[99], per_s))
    return {"count": len(t), "median_ms": pct[50], "p90_ms": pct[90], "p99_ms": pct[99],
            "per_second": per_s}


def time_writes(c, a, rnd):
    """The --writes part (see the header): setxattr on stored vectors, then
    inserts of new vectors with three xattrs."""
    sets = []
    for w in range(a.writes):
        path = os.path.join(c, "v%d" % rnd.randrange(a.n))
        key, value = (("user.year", str(1950 + w % 100)) if w % 2 == 0
                      else ("user.lang", "l%d" % (w % 50)))
        t0 = time.perf_counter()
        os.setxattr(path, key, value.encode())
        sets.append((time.perf_counter() - t0) * 1000)
    inserts = []
    for w in range(a.writes):
        path = os.path.join(c, "new%d" % w)
        text = " ".join("%.6f" % rnd.uniform(-1, 1) for _ in range(a.dim)) + "\n"
        t0 = time.perf_counter()
        with open(path, "w") as f:
            f.write(text)
        os.setxattr(path, "user.year", str(2000 + w % 30).encode())
        os.setxattr(path, "user.lang", ["en", "de", "fr", "es"][w % 4].encode())
        os.setxattr(path, "user.tag", ("t%d" % (w % 7)).encode())
        inserts.append((time.perf_counter() - t0) * 1000)
    return {"setxattr": summary("setxattr (replace a value)", sets),
            "insert_with_3_xattrs": summary("insert + 3 setxattr", inserts)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vecfs")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--writes", type=int, default=0)
    a = ap.parse_args()
    if a.n < 1 or a.dim < 1 or a.queries < 1 or a.writes < 0:
        print("filter-cost: --n, --dim and --queries must be at least 1, --writes at least 0",
              file=sys.stderr)
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
        if a.writes:
            out["writes"] = time_writes(c, a, rnd)
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
