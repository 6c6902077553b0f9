#!/usr/bin/env bash
# test-bench-fs.sh — smoke test of vecfs-bench-fs on a small random dataset:
# it mounts a real vecfs, does every kind of work through the mount and
# directly, and the JSON must hold every row with positive figures, and
# recall@10 through the mount must match direct (both at least 0.9, the
# int8 collection's rows included), and recall by distance is never below
# recall by id.
#
# Usage: bench/test-bench-fs.sh PATH/TO/vecfs-bench-fs PATH/TO/vecfs
set -euo pipefail

exe="$1"
vecfs="$2"
# Without FUSE there is nothing to mount: skip (meson's exit code 77).
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
    echo "bench-fs smoke: no /dev/fuse or fusermount3, skipped"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python3 "$here/random-fvecs.py" "$tmp/base.fvecs" 3000 16 5
python3 "$here/random-fvecs.py" "$tmp/queries.fvecs" 200 16 6

"$exe" --base "$tmp/base.fvecs" --queries "$tmp/queries.fvecs" --metric l2 --clients 1,2 \
    --singles 50 --repeat 2 --vecfs "$vecfs" --json "$tmp/out.json" >"$tmp/out.txt"
python3 - "$tmp/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["dataset"] == {"base": 3000, "queries": 200, "dim": 16, "metric": "l2"}, r["dataset"]
assert r["repeat"] == 2
works = [x["work"] for x in r["results"]]
want = ["batch import (.fvecs)", "single insert (1 file each)",
        "query, file each, 1 client", "query, file each, 2 clients",
        "query, open handle, 1 client", "query, open handle, 2 clients",
        "query, ioctl, 1 client", "query, ioctl, 2 clients",
        "batch query (.fvecs file)", "batch import, int8 (.fvecs)",
        "batch query, int8 (.fvecs)"]
assert works == want, works
for x in r["results"]:
    assert x["quantization"] == ("int8" if "int8" in x["work"] else "none"), x
for x in r["results"]:
    assert x["direct"] > 0 and x["mount"] > 0, x
    if x["unit"] == "QPS":
        assert x["recall_direct"] >= 0.9 and x["recall_mount"] >= 0.9, x
        assert abs(x["recall_direct"] - x["recall_mount"]) <= 0.02, x
        for side in ("direct", "mount"):
            assert x["recall_" + side] <= x["recall_distance_" + side] <= 1, x
print("bench-fs smoke: %d rows ok" % len(works))
PY
