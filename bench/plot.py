#!/usr/bin/env python3
"""plot.py — recall–QPS plot (SVG, through gnuplot) of a vecfs-bench-engine
result: one line per engine (vecfs and the peers it ran against), a point
per ef.

Usage: bench/plot.py RESULT.json OUT.svg [--title TEXT]

RESULT.json is a history record (bench/record.py) or the raw --json of
vecfs-bench-engine. QPS is on a log scale (engines differ by 100x);
exact search (ef 0) is drawn as a single point. gnuplot (Debian
gnuplot-nox, scripts/install-deps.sh) must be installed; the data and the
gnuplot script are passed on stdin, nothing is left behind.
"""

import argparse
import json
import shutil
import subprocess
import sys


def main(argv):
    ap = argparse.ArgumentParser(prog="plot.py", description=__doc__.split("\n")[0])
    ap.add_argument("result")
    ap.add_argument("out")
    ap.add_argument("--title")
    o = ap.parse_args(argv)
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        print("plot.py: gnuplot is not installed (apt-get install gnuplot-nox)", file=sys.stderr)
        return 2
    with open(o.result) as f:
        doc = json.load(f)
    result, meta = doc.get("result", doc), doc.get("meta", {})
    if "engines" not in result:
        print("plot.py: %s is not a vecfs-bench-engine result" % o.result, file=sys.stderr)
        return 2
    ds = result["dataset"]
    title = o.title or "%d x %d, %s, k=10, 1 search thread%s" % (
        ds["base"], ds["dim"], ds["metric"],
        ", %s %s" % (meta["commit"], meta["date"][:10]) if meta else "")
    plots, data = [], []
    for e in result["engines"]:
        runs = sorted((r for r in e["runs"] if r["qps"] > 0), key=lambda r: r["recall"])
        if not runs:
            continue
        style = "linespoints" if len(runs) > 1 else "points pointsize 1.5"
        plots.append("'-' using 1:2 with %s title '%s'" % (style, e["name"]))
        data.append("\n".join("%.6f %.3f" % (r["recall"], r["qps"]) for r in runs) + "\ne\n")
    script = "\n".join([
        "set terminal svg size 720,480 dynamic font 'sans,12' background '#ffffff'",
        "set output '%s'" % o.out.replace("'", "''"),
        "set title '%s'" % title.replace("'", "''"),
        "set termoption noenhanced",
        "set xlabel 'recall@10'",
        "set ylabel 'queries per second (log scale)'",
        "set logscale y",
        "set grid",
        "set key left bottom",
        "plot " + ", ".join(plots),
    ]) + "\n" + "".join(data)
    r = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        print("plot.py: gnuplot failed: %s" % r.stderr.strip(), file=sys.stderr)
        return 1
    print(o.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
