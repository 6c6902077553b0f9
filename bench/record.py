#!/usr/bin/env python3
"""record.py — files a benchmark's --json output into the history:
bench/results/<machine-kind>/<date>-<commit>-<bench>.json.

Usage: bench/record.py --bench NAME [--kind KIND] [--build BUILDDIR]
                       [--command "..."] [--note TEXT] RAW.json

The record is {"meta": {...}, "result": <the raw JSON unchanged>}; meta
holds the bench name, the UTC date and time the result was written (the
raw file's mtime), the commit (and whether the
work tree had changes), the machine kind (--kind, default $VECFS_MACHINE_KIND
or "c", this project's machine kind), the CPU model and core count, the
load average when the record was made (right after the run in
bench/run-history.sh), the build's buildtype and optimization
(from BUILDDIR's meson-info), the command and a note. Prints the path it
wrote. bench/compare.py reads records and raw files alike.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def git(*args):
    r = subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def build_options(build):
    """buildtype and optimization of a meson build directory."""
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError):
        return None
    return {k: opts.get(k) for k in ("buildtype", "optimization", "b_sanitize")}


def main(argv):
    ap = argparse.ArgumentParser(prog="record.py", description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="e.g. engine-words50k, fs-words50k")
    ap.add_argument("--kind", default=os.environ.get("VECFS_MACHINE_KIND", "c"))
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--command", default="")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("raw")
    o = ap.parse_args(argv)
    if not o.bench.replace("-", "").replace("_", "").isalnum():
        ap.error("--bench: letters, digits, - and _ only")
    with open(o.raw) as f:
        result = json.load(f)
    when = datetime.datetime.fromtimestamp(os.path.getmtime(o.raw), datetime.timezone.utc)
    commit = git("rev-parse", "--short=10", "HEAD") or "unknown"
    meta = {
        "bench": o.bench, "date": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": commit,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine_kind": o.kind, "cpu": cpu_model(), "cores": os.cpu_count(),
        "loadavg_at_record": os.getloadavg()[0], "build": build_options(o.build),
        "command": o.command, "note": o.note}
    d = os.path.join(o.out, o.kind)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "%s-%s-%s.json" % (when.strftime("%Y%m%dT%H%M%SZ"), commit, o.bench))
    with open(path, "w") as f:
        json.dump({"meta": meta, "result": result}, f, indent=1)
        f.write("\n")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
