#!/usr/bin/env python3
"""test-vecfs-stat-import.py VECFS_STAT_IMPORT VECFS RANDOM_FVECS — a short
real run of bench/vecfs-stat-import: 200 seeded vectors, then 5,000 random
rows of dim 16 imported beside a stat loop. Passes only if it exits 0, the
JSON counts stats (more than one, none failed) and every imported and
seeded row is in the collection afterwards; and a bad option exits 2."""

import json
import os
import subprocess
import sys
import tempfile

ROWS, DIM, SEEDED = 5000, 16, 200


def main():
    tool, vecfs, gen = sys.argv[1], sys.argv[2], sys.argv[3]
    with tempfile.TemporaryDirectory(prefix="vecfs-stat-test-") as t:
        data, out = os.path.join(t, "rows.fvecs"), os.path.join(t, "out.json")
        subprocess.run([sys.executable, gen, data, str(ROWS), str(DIM), "5"], check=True)
        r = subprocess.run([sys.executable, tool, "--vecfs", vecfs, "--data", data, "--metric", "l2",
                            "--seeded", str(SEEDED), "--interval-ms", "0.5", "--json", out],
                           capture_output=True, text=True, timeout=240)
        print(r.stdout + r.stderr)
        if r.returncode != 0:
            print("vecfs-stat-import exited %d" % r.returncode)
            return 1
        with open(out) as f:
            d = json.load(f)
        bad = subprocess.run([sys.executable, tool, "--vecfs", vecfs, "--data", data, "--seeded", "0"],
                             capture_output=True, text=True, timeout=60)
    ok = (d["stats"] > 1 and not d["stat_errors"] and d["names_after"] == ROWS + SEEDED
          and d["stat_p50_ms"] <= d["stat_p99_ms"] <= d["stat_max_ms"])
    if bad.returncode != 2 or len(bad.stderr.strip().splitlines()) != 1:
        print("--seeded 0: exit %d, stderr %r (want 2 and one line)" % (bad.returncode, bad.stderr))
        ok = False
    print("PASS" if ok else "FAIL: %r" % d)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
