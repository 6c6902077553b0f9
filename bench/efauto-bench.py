#!/usr/bin/env python3
"""efauto-bench.py — ef_search = auto through a vecfs mount: does the tuned
ef meet target_recall on out-of-sample queries? (issue 13, item 5)

Usage: bench/efauto-bench.py --vecfs build/fs/vecfs
           [--base /work/main/data/mnist784-base.fvecs]
           [--queries /work/main/data/mnist784-queries.fvecs]
           [--metric l2|cosine|dot] [--targets 0.90,0.95,0.99]
           [--warmup 300] [--repeat 3] [--settle-timeout 900] [--limit N]
           [--nq N] [--json OUT.json]

The 331k words (cosine): --base /work/main/data/words-base.fvecs
--queries /work/main/data/words-queries.fvecs --metric cosine --nq 1000.

What it does, on a fresh DATADIR it mounts itself (vecfs -f; always
unmounted and the daemon stopped by pid on exit):

  1. mkdir a collection of --metric, import --base through .import/ (one batch).
  2. Ground truth: every query as one batch file with user.ef = the
     collection size, which the engine answers by an exact scan. A query's
     ef is at most 100,000 (docs/filesystem.md), so a larger base is also
     imported in slices of at most 100,000 rows into collections of their
     own (m 4, ef_construction 8: only scanned), each slice is scanned
     exactly the same way, and the nearest 10 of the slices' hits are kept.
  3. Per target (the mount is restarted first, so the in-memory sample of
     users' queries starts empty): set ef_search = auto and target_recall,
     wait for the first tuning (perturbed held-out vectors only), send the
     first --warmup queries as one batch (the warm-up users' queries), wait
     until .vecfs/stats shows a tuning that used min(warmup, 256) of them
     (the sample's size) -- "settled" -- then send all queries as one batch
     file --repeat times.

Prints per target: the ef in use, the tuner's estimate and its lower bound,
recall@10 against the exact truth over all queries and over the queries
not used in the warm-up (held out from the tuner in the first repeat; later
repeats' tunings may have sampled them), QPS of the batch read (all cores),
seconds to the first tuning and to settle after the warm-up. Every repeat's
raw figures go to the JSON.
"""

import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

COLL = "efauto"
SAMPLE_MAX = 256  # store/query_sample.c
EF_MAX = 100000  # FSD_QUERY_MAX_EF: the largest ef a query may ask
K = 10


def read_fvecs(path):
    with open(path, "rb") as f:
        data = f.read()
    (dim,) = struct.unpack_from("<i", data, 0)
    row = 4 + 4 * dim
    if dim <= 0 or len(data) % row:
        sys.exit("efauto-bench: %s is not an .fvecs file" % path)
    return dim, [data[i:i + row] for i in range(0, len(data), row)]


class Daemon:
    def __init__(self, vecfs, datadir, mnt, log, timeout):
        self.vecfs, self.datadir, self.mnt, self.log = vecfs, datadir, mnt, log
        self.timeout = timeout  # seconds a start may take: loading 331k words took 133 s
        self.proc = None

    def mounted(self):
        with open("/proc/mounts") as f:
            return any(len(l.split()) > 1 and l.split()[1] == self.mnt for l in f)

    def start(self):
        os.makedirs(self.datadir, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.vecfs, "-f", self.datadir, self.mnt],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.time() + self.timeout
        while not self.mounted():
            if self.proc.poll() is not None or time.time() > deadline:
                with open(self.log, errors="replace") as f:
                    raise RuntimeError("vecfs did not mount: %s" % f.read()[-2000:])
            time.sleep(0.05)

    def stop(self):
        if self.mounted():
            if subprocess.call(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL):
                time.sleep(1)
                if subprocess.call(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL):
                    subprocess.call(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
        if self.proc is not None:
            if not self.mounted() and self.proc.poll() is None:
                # Still opening the store (a start that timed out): SIGTERM
                # stops it without leaving a mount behind.
                self.proc.terminate()
            try:
                self.proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.mounted():  # the daemon is gone; its mount may not be
            subprocess.call(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)


def batch_hits(coll, name, rows, ef=None):
    """One batch query file of rows; returns ([[(distance, name)] per row],
    seconds of the read that runs the searches)."""
    path = os.path.join(coll, ".query", name)
    with open(path, "wb") as f:
        f.write(b"".join(rows))
    if ef is not None:
        os.setxattr(path, "user.ef", str(ef).encode())
    t0 = time.perf_counter()
    with open(path) as f:
        text = f.read()
    secs = time.perf_counter() - t0
    os.unlink(path)
    got = [[] for _ in rows]
    for line in text.splitlines():
        row, vname, dist = line.split("\t")
        got[int(row)].append((float(dist), vname))
    return got, secs


def batch(coll, name, rows, ef=None):
    """batch_hits, as a set of names per row."""
    got, secs = batch_hits(coll, name, rows, ef)
    return [{vname for _, vname in hits} for hits in got], secs


def import_rows(coll, stem, rows, config):
    os.mkdir(coll)
    with open(os.path.join(coll, ".config"), "w") as f:
        f.write(config)
    with open(os.path.join(coll, ".import", stem + ".fvecs"), "wb") as f:
        f.write(b"".join(rows))


def exact_truth(mnt, base, queries, metric):
    """The exact top K of every query, as names of the main collection
    (base-ROW.f32), and the seconds the exact scans took (item 2 of the
    header)."""
    if len(base) <= EF_MAX:
        return batch(os.path.join(mnt, COLL), "truth.fvecs", queries, ef=len(base))
    merged = [[] for _ in queries]
    secs = 0.0
    for s, at in enumerate(range(0, len(base), EF_MAX)):
        part = base[at:at + EF_MAX]
        coll = os.path.join(mnt, "truth%d" % s)
        import_rows(coll, "part", part, "metric = %s\nm = 4\nef_construction = 8\n" % metric)
        got, t = batch_hits(coll, "truth.fvecs", queries, ef=len(part))
        secs += t
        for i, hits in enumerate(got):
            merged[i] += [(d, "base-%d.f32" % (at + int(n[len("part-"):-len(".f32")])))
                          for d, n in hits]
    return [{n for _, n in sorted(hits)[:K]} for hits in merged], secs


def stats(mnt):
    with open(os.path.join(mnt, ".vecfs", "stats")) as f:
        doc = json.load(f)
    return next(c for c in doc["collections"] if c["name"] == COLL)


def wait_for(mnt, cond, timeout, what):
    t0 = time.time()
    while True:
        s = stats(mnt)
        if cond(s):
            return s, time.time() - t0
        if time.time() - t0 > timeout:
            raise RuntimeError("%s not within %d s: %r" % (what, timeout, s))
        time.sleep(0.25)


def set_config(coll, **keys):
    path = os.path.join(coll, ".config")
    with open(path) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        k = line.split("=")[0].strip()
        out.append("%s = %s" % (k, keys.pop(k)) if k in keys else line)
    out += ["%s = %s" % kv for kv in keys.items()]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def recall(got, truth, rows):
    hits = sum(len(got[i] & truth[i]) for i in rows)
    return hits / float(sum(len(truth[i]) for i in rows))


def run_target(d, coll, target, queries, truth, args):
    d.start()
    try:
        set_config(coll, ef_search="auto", target_recall="%g" % target)
        first, t_first = wait_for(d.mnt, lambda s: s["tuned_at"] is not None, args.settle_timeout,
                                  "first tuning")
        warm = min(args.warmup, len(queries))
        batch(coll, "warmup.fvecs", queries[:warm])
        want = min(warm, SAMPLE_MAX)
        settled, t_settle = wait_for(d.mnt, lambda s: s["tuning_user_queries"] >= want,
                                     args.settle_timeout, "tuning on the warm-up queries")
        reps = []
        held = range(warm, len(queries))
        for r in range(args.repeat):
            before = stats(d.mnt)
            got, secs = batch(coll, "all.fvecs", queries)
            after = stats(d.mnt)
            reps.append({"ef_before": before["ef_in_use"], "ef_after": after["ef_in_use"],
                         "estimated_recall": before["estimated_recall"],
                         "estimated_recall_low": before["estimated_recall_low"],
                         "tuning_user_queries": before["tuning_user_queries"],
                         "recall_all": recall(got, truth, range(len(queries))),
                         "recall_not_warmup": recall(got, truth, held) if len(held) else None,
                         "seconds": secs, "qps": len(queries) / secs})
        return {"target": target, "warmup_queries": warm,
                "first_tuning": {"seconds": t_first, "ef": first["ef_in_use"],
                                 "estimated_recall": first["estimated_recall"],
                                 "estimated_recall_low": first["estimated_recall_low"],
                                 "tuning_seconds": first["tuning_seconds"]},
                "settled": {"seconds_after_warmup": t_settle, "ef": settled["ef_in_use"],
                            "estimated_recall": settled["estimated_recall"],
                            "estimated_recall_low": settled["estimated_recall_low"],
                            "tuning_queries": settled["tuning_queries"],
                            "tuning_user_queries": settled["tuning_user_queries"],
                            "tuning_seconds": settled["tuning_seconds"]},
                "repeats": reps}
    finally:
        d.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vecfs", required=True)
    ap.add_argument("--base", default="/work/main/data/mnist784-base.fvecs")
    ap.add_argument("--queries", default="/work/main/data/mnist784-queries.fvecs")
    ap.add_argument("--metric", default="l2", choices=("l2", "cosine", "dot"))
    ap.add_argument("--targets", default="0.90,0.95,0.99")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--settle-timeout", type=int, default=900,
                    help="seconds a mount, the first tuning or the settling may take")
    ap.add_argument("--limit", type=int, default=0,
                    help="only the first N base vectors (a quick run on a busy machine)")
    ap.add_argument("--nq", type=int, default=0, help="only the first N queries")
    ap.add_argument("--json")
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    dim, base = read_fvecs(args.base)
    if args.limit:
        base = base[:args.limit]
    qdim, queries = read_fvecs(args.queries)
    if args.nq:
        queries = queries[:args.nq]
    if qdim != dim:
        sys.exit("efauto-bench: queries have dim %d, base %d" % (qdim, dim))
    tmp = tempfile.mkdtemp(prefix="vecfs-efauto-")
    mnt = os.path.join(tmp, "mnt")
    os.makedirs(mnt)
    d = Daemon(os.path.realpath(args.vecfs), os.path.join(tmp, "data"), mnt,
               os.path.join(tmp, "vecfs.log"), args.settle_timeout)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    result = {"base": args.base, "queries": args.queries, "n": len(base), "dim": dim,
              "nq": len(queries), "k": K, "metric": args.metric, "targets": []}
    try:
        d.start()
        coll = os.path.join(mnt, COLL)
        t0 = time.time()
        import_rows(coll, "base", base, "metric = %s\n" % args.metric)
        result["import_seconds"] = time.time() - t0
        truth, result["truth_seconds"] = exact_truth(mnt, base, queries, args.metric)
        d.stop()
        for t in targets:
            r = run_target(d, coll, t, queries, truth, args)
            result["targets"].append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d x %d %s, %d queries, warm-up %d, %d repeats; import %.1f s, exact truth %.1f s"
          % (len(base), dim, args.metric, len(queries), args.warmup, args.repeat, result["import_seconds"],
             result["truth_seconds"]))
    print("%-6s %-5s %-9s %-9s %-9s %-9s %-9s %-8s %-8s" % (
        "target", "ef", "estimate", "est.low", "recall", "rec.held", "qps", "first_s", "settle_s"))
    for r in result["targets"]:
        for rep in r["repeats"]:
            held = rep["recall_not_warmup"]
            print("%-6.2f %-5s %-9.4f %-9.4f %-9.4f %-9s %-9.0f %-8.1f %-8.1f" % (
                r["target"], rep["ef_before"], rep["estimated_recall"], rep["estimated_recall_low"],
                rep["recall_all"], "%.4f" % held if held is not None else "-", rep["qps"],
                r["first_tuning"]["seconds"], r["settled"]["seconds_after_warmup"]))
    ok = all(rep["recall_all"] >= r["target"] for r in result["targets"] for rep in r["repeats"])
    result["all_meet_target"] = ok
    print("recall >= target in every repeat: %s" % ("yes" if ok else "NO"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
