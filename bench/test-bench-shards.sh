#!/usr/bin/env bash
# test-bench-shards.sh — smoke test of vecfs-bench-shards' contract on a
# small random dataset: the JSON lists the single index first, then hash
# and k-means shard sets for every S asked, with the probe counts the usage
# promises; every shard set covers the base; recall never exceeds reach
# (a true neighbour in a shard that was not searched cannot be found), and
# the cost figures are sane. The recall bounds themselves are checked on
# the shard set's code by tests/test_bench_shards.c.
#
# Usage: bench/test-bench-shards.sh PATH/TO/vecfs-bench-shards
set -euo pipefail

exe="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python3 "$here/random-fvecs.py" "$tmp/base.fvecs" 2000 16 7
python3 "$here/random-fvecs.py" "$tmp/queries.fvecs" 50 16 8

"$exe" --base "$tmp/base.fvecs" --queries "$tmp/queries.fvecs" --metric cosine --ef 10,40 \
    --shards 1,2,4 --probes 1,2,8 --threads 2 --repeat 1 --json "$tmp/out.json" >"$tmp/out.txt"
python3 - "$tmp/out.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["dataset"] == {"base": 2000, "queries": 50, "dim": 16, "metric": "cosine"}, doc["dataset"]
assert doc["params"]["k"] == 10 and doc["params"]["threads"] == 2, doc["params"]
got = [(c["assign"], c["shards"], sorted({r["probes"] for r in c["runs"]})) for c in doc["configs"]]
assert got == [("single", 1, [1]), ("hash", 2, [2]), ("hash", 4, [4]),
               ("kmeans", 2, [1, 2]), ("kmeans", 4, [1, 2, 4])], got
for c in doc["configs"]:
    assert len(c["shard_rows"]) == c["shards"] and sum(c["shard_rows"]) == 2000, c["shard_rows"]
    assert c["build_seconds"] > 0 and c["assign_seconds"] >= 0, c
    assert [r["ef"] for r in c["runs"]] == [10, 40] * (len(c["runs"]) // 2), c["runs"]
    for r in c["runs"]:
        assert set(r) == {"ef", "probes", "recall", "recall_distance", "reach", "qps", "work_us",
                          "merge_us", "model_mean_us", "model_p50_us", "model_p99_us",
                          "model_qps"}, r.keys()
        assert 0 <= r["recall"] <= r["recall_distance"] <= 1, r
        assert r["recall"] <= r["reach"] + 1e-9, r
        if c["assign"] != "kmeans" or r["probes"] == c["shards"]:
            assert r["reach"] == 1, r
        assert r["qps"] > 0 and r["model_qps"] > 0 and r["work_us"] > r["merge_us"] > 0, r
        assert 0 < r["model_p50_us"] <= r["model_p99_us"], r
single = doc["configs"][0]["runs"][-1]
assert single["recall"] >= 0.9, single
PY
grep -q '^== single, S = 1' "$tmp/out.txt"
echo "ok"
