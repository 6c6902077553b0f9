#!/usr/bin/env python3
"""test-vecfs-disk-usage.py VECFS_DISK_USAGE VECFS — a short real run of
bench/vecfs-disk-usage: 3,000 seeded random rows of dim 64 imported
through a mount. Passes only if the remount loaded the snapshot, each
vector's content costs the CONTENT database under 64 bytes (a content
kept as written would be over 256: the raw floats alone), and the JSON
adds up (the files' bytes per vector sum to the total)."""

import array
import json
import os
import random
import subprocess
import sys
import tempfile

ROWS, DIM = 3000, 64


def main():
    tool, vecfs = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="vecfs-disk-test-") as t:
        data, out = os.path.join(t, "rows.fvecs"), os.path.join(t, "out.json")
        rng = random.Random(3)
        with open(data, "wb") as f:
            for _ in range(ROWS):
                f.write(array.array("i", [DIM]).tobytes())
                f.write(array.array("f", (rng.uniform(-1, 1) for _ in range(DIM))).tobytes())
        r = subprocess.run([sys.executable, tool, "--vecfs", vecfs, "--data", data, "--metric", "l2",
                            "--json", out], capture_output=True, text=True, timeout=240)
        print(r.stdout + r.stderr)
        if r.returncode != 0:
            print("vecfs-disk-usage exited %d" % r.returncode)
            return 1
        with open(out) as f:
            d = json.load(f)
    content = d["lmdb"]["dbs"]["content"]["bytes_per_vector"]
    total = sum(f["bytes_per_vector"] for f in d["files"].values())
    ok = (d["snapshot_loaded"] and d["rows"] == ROWS and content < 64
          and abs(total - d["bytes_per_vector"]) < 1e-6)
    print("snapshot loaded %s, content %.1f B/vector, total %.1f B/vector: %s"
          % (d["snapshot_loaded"], content, d["bytes_per_vector"], "ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
