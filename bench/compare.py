#!/usr/bin/env python3
"""compare.py — a benchmark run against a baseline: fails on a recall drop
or a speed drop beyond the noise band.

Usage: bench/compare.py [--qps-band F] [--recall-band F] [--build-factor F]
                        [--engine NAME]
                        RUN.json [RUN2.json ...] BASELINE.json

Each file is a history record (bench/record.py: {"meta": ..., "result":
...}) or the raw --json output of vecfs-bench-engine or vecfs-bench-fs; the
run and the baseline must be of the same benchmark on the same dataset.
With several RUN files, each figure is the best of them (the benchmark
itself keeps the fastest of three runs per ef for the same reason: a burst
of other work on the machine only ever slows a run down).

vecfs-bench-engine: for --engine (default vecfs) and each ef both hold,
  - recall@10 may fall by at most --recall-band (absolute; default
    RECALL_BAND): recall does not depend on the machine's load, only on
    the graph, and a parallel build makes that vary a little;
  - speed: the geometric mean over the efs of QPS(run)/QPS(baseline) must
    be at least 1 - --qps-band (default QPS_BAND). One figure over all efs,
    because single efs swing far more on a shared machine (see
    docs/performance.md, "Continuous benchmarking");
  - build: the index build time may be at most --build-factor (default
    BUILD_FACTOR) times the baseline's. A build runs on all cores for tens
    of seconds, so it swings less with the machine's load than the short
    query passes do; on a loaded machine it is what catches a slower
    build of the code.
vecfs-bench-fs: the same over its rows (the through-the-mount figure of
  each: rows/s, files/s, QPS), recall through the mount per query row.

The bands are measured, not guessed: docs/performance.md gives the repeated
runs of one build they come from.

Exit status: 0 within the bands, 1 a regression (each on one line), 2 bad
arguments or files that cannot be compared.
"""

import argparse
import json
import math
import sys

# Measured on the 2-core machine kind `c` (docs/performance.md, "Continuous
# benchmarking": ten runs of vecfs-bench-engine on words50k with one
# release build, machine quiet: load average 2.7-5.9). QPS: the slowest
# run's geometric-mean QPS was 0.594 of the median run's; the floor is 0.7
# of that (0.416), rounded down to 0.40, so the band is 0.60. Recall: the
# widest spread at any ef was 0.0038 (0.0072 on a loaded machine); the band
# is 0.01.
QPS_BAND = 0.60
RECALL_BAND = 0.01
# Build time over the same ten runs: 1.91 to 6.14 s, the slowest 2.09
# times the median (2.93 s); the ceiling is that over 0.7, 3.0 times the
# baseline's.
BUILD_FACTOR = 3.0


class Unusable(Exception):
    pass


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise Unusable("%s: %s" % (path, e))
    meta = doc.get("meta") or {}
    load_avg, cores = meta.get("loadavg_at_record"), meta.get("cores")
    if load_avg is not None and cores and load_avg > cores:
        print("compare.py: warning: %s ran on a loaded machine (load average %.1f on %d "
              "cores); its speed figures are not comparable with a quiet run's"
              % (path, load_avg, cores))
    result = doc.get("result", doc)
    if "engines" in result:
        return "engine", result
    if "results" in result and all("work" in r for r in result["results"]):
        return "fs", result
    raise Unusable("%s: neither a vecfs-bench-engine nor a vecfs-bench-fs result" % path)


def engine_of(result, engine, path):
    for e in result["engines"]:
        if e["name"] == engine:
            return e
    raise Unusable("%s: no engine %r (has %s)" % (path, engine,
                                                  [e["name"] for e in result["engines"]]))


def engine_figures(result, engine, path):
    """ef -> (recall, qps) of one engine."""
    return {r["ef"]: (r["recall"], r["qps"]) for r in engine_of(result, engine, path)["runs"]}


def compare_build(runs, base, factor):
    """The fastest build of the runs against the baseline's; a list of
    regressions."""
    best = min(runs)
    print("build: %.2f s, baseline %.2f s, ratio %.2f, ceiling %.2f"
          % (best, base, best / base, factor))
    if best > base * factor:
        return ["build slower: %.2f s > %.2f x %.2f s" % (best, factor, base)]
    return []


def fs_figures(result, path):
    """work -> (recall through the mount or None, figure through the mount)."""
    out = {r["work"]: (r.get("recall_mount"), r["mount"]) for r in result["results"]}
    if not out:
        raise Unusable("%s: no rows" % path)
    return out


def best_of(figures):
    """Per key: the highest recall and the highest speed over the runs."""
    keys = set(figures[0])
    for f in figures[1:]:
        keys &= set(f)
    out = {}
    for k in keys:
        recalls = [f[k][0] for f in figures if f[k][0] is not None]
        out[k] = (max(recalls) if recalls else None, max(f[k][1] for f in figures))
    return out


def compare(run, base, qps_band, recall_band, label):
    """Prints the table; returns the list of regressions."""
    keys = sorted(set(run) & set(base), key=lambda k: (isinstance(k, str), k))
    if not keys:
        raise Unusable("the run and the baseline have no %s in common" % label)
    bad, logs = [], []
    print("%-30s %9s %9s %12s %12s %7s" % (label, "recall", "base", "speed", "base", "ratio"))
    for k in keys:
        (r_rec, r_qps), (b_rec, b_qps) = run[k], base[k]
        if b_qps <= 0 or r_qps <= 0:
            raise Unusable("%s %s: speed figure is not positive" % (label, k))
        ratio = r_qps / b_qps
        logs.append(math.log(ratio))
        print("%-30s %9s %9s %12.1f %12.1f %6.3f" % (
            k, "-" if r_rec is None else "%.4f" % r_rec, "-" if b_rec is None else "%.4f" % b_rec,
            r_qps, b_qps, ratio))
        if r_rec is not None and b_rec is not None and b_rec - r_rec > recall_band:
            bad.append("recall drop at %s %s: %.4f -> %.4f (band %.4f)"
                       % (label, k, b_rec, r_rec, recall_band))
    geo = math.exp(sum(logs) / len(logs))
    print("speed: geometric mean of the ratios %.3f over %d %s(s); floor %.3f (band %.0f %%)"
          % (geo, len(keys), label, 1 - qps_band, 100 * qps_band))
    if geo < 1 - qps_band:
        bad.append("speed drop: geometric mean ratio %.3f < %.3f (band %.0f %%)"
                   % (geo, 1 - qps_band, 100 * qps_band))
    return bad


def main(argv):
    ap = argparse.ArgumentParser(prog="compare.py", description=__doc__.split("\n")[0])
    ap.add_argument("--qps-band", type=float, default=QPS_BAND)
    ap.add_argument("--recall-band", type=float, default=RECALL_BAND)
    ap.add_argument("--build-factor", type=float, default=BUILD_FACTOR)
    ap.add_argument("--engine", default="vecfs")
    ap.add_argument("files", nargs="+", metavar="RUN.json ... BASELINE.json")
    o = ap.parse_args(argv)
    if len(o.files) < 2:
        ap.error("need at least one RUN.json and a BASELINE.json")
    if not 0 <= o.qps_band < 1 or not 0 <= o.recall_band < 1 or o.build_factor < 1:
        ap.error("bands are fractions in [0, 1), the build factor at least 1")
    try:
        loaded = [load(p) for p in o.files]
        kinds = {k for k, _ in loaded}
        if len(kinds) != 1:
            raise Unusable("mixing vecfs-bench-engine and vecfs-bench-fs results")
        datasets = {json.dumps(r["dataset"], sort_keys=True) for _, r in loaded}
        if len(datasets) != 1:
            raise Unusable("different datasets: %s" % sorted(datasets))
        kind = kinds.pop()
        if kind == "engine":
            figs = [engine_figures(r, o.engine, p) for (_, r), p in zip(loaded, o.files)]
            label = "ef"
        else:
            figs = [fs_figures(r, p) for (_, r), p in zip(loaded, o.files)]
            label = "work"
        bad = compare(best_of(figs[:-1]), figs[-1], o.qps_band, o.recall_band, label)
        if kind == "engine":
            builds = [engine_of(r, o.engine, p)["build_seconds"]
                      for (_, r), p in zip(loaded, o.files)]
            bad += compare_build(builds[:-1], builds[-1], o.build_factor)
    except Unusable as e:
        print("compare.py: %s" % e, file=sys.stderr)
        return 2
    for line in bad:
        print("REGRESSION: " + line)
    print("FAIL" if bad else "PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
