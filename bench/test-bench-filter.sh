#!/usr/bin/env bash
# test-bench-filter.sh — smoke test of vecfs-bench-filter on a small random
# set (no network): every case at four selectivities, every vecfs plan and
# the peers that were built. Checks the JSON shape, that every vecfs row
# returns min(k, passing) results that all pass the filter, that the
# planner's rows reach recall 0.95 and exact's 1.0, that each forced
# plan is the one counted, and that every ef of the --ef list has its own
# unfiltered row and filtered rows compared with it (p99x, cpux) and with
# the cheapest unfiltered row at their recall (matched), and that
# --index-cache answers the same from the snapshot it wrote.
#
# Usage: bench/test-bench-filter.sh PATH/TO/vecfs-bench-filter
set -euo pipefail

exe="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python3 "$here/random-fvecs.py" "$tmp/base.fvecs" 3000 16 7
python3 "$here/random-fvecs.py" "$tmp/queries.fvecs" 40 16 8

"$exe" --base "$tmp/base.fvecs" --queries "$tmp/queries.fvecs" --metric l2 --ef 24,32 \
    --centers 30 --plans auto,exact,walk,expand --compare hnswlib,faiss \
    --json "$tmp/out.json" >"$tmp/out.txt"
python3 - "$tmp/out.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert set(doc) == {"dataset", "rows"}, doc.keys()
assert doc["dataset"]["rows"] == 3000 and doc["dataset"]["queries"] == 40, doc["dataset"]
cases = {(r["case"], r["selectivity"]) for r in doc["rows"]}
for c in ("random", "cluster", "and", "range"):
    for s in (0.001, 0.01, 0.1, 0.5):
        assert (c, s) in cases, (c, s)
assert doc["dataset"]["ef"] == [24, 32], doc["dataset"]
for ef in (24, 32):
    assert any(r["case"] == "none" and r["engine"] == "vecfs" and r["ef"] == ef
               for r in doc["rows"]), ef
for r in doc["rows"]:
    assert r["wrong"] == 0, r
    assert r["ef"] in (24, 32), r
    if r["case"] != "none":
        assert r["cpux"] > 0, r
        # p99m: over the cheapest unfiltered row of the same engine that
        # reaches the row's recall, or the best one flagged as not reached.
        m = r["matched"]
        plain = [u for u in doc["rows"] if u["case"] == "none" and u["engine"] == r["engine"]]
        reach = [u for u in plain if u["recall"] >= r["recall"]]
        assert m["reached"] == bool(reach), r
        if reach:
            cheapest = min(reach, key=lambda u: u["p99_us"])
            assert (m["ef"], m["p99_us"]) == (cheapest["ef"], cheapest["p99_us"]), (r, cheapest)
        else:
            assert m["recall"] == max(u["recall"] for u in plain), r
        assert abs(m["p99x"] - r["p99_us"] / m["p99_us"]) < 1e-9 * max(1, m["p99x"]), r
    else:
        assert "matched" not in r, r
    if r["engine"] != "vecfs":
        continue
    assert r["short"] == 0, r
    runs = r["plans_run"]
    if r["case"] == "none":
        assert runs == {"exact": 0, "walk": 0, "expand": 0, "redone_exact": 0,
                        "walks_capped": 0}, r
        continue
    if r["plan"] == "auto":
        assert r["recall"] >= 0.95, r
    else:
        assert runs[r["plan"]] == 40 and sum(runs[p] for p in ("exact", "walk", "expand")) == 40, r
    if r["plan"] == "exact":
        assert r["recall"] == 1.0, r
print("ok:", len(doc["rows"]), "rows")
PY

# --index-cache: the first run builds and writes the snapshot, the second
# loads it; the same graph gives the same recall row for row.
for run in 1 2; do
    "$exe" --base "$tmp/base.fvecs" --queries "$tmp/queries.fvecs" --metric l2 --ef 24 \
        --cases cluster --plans walk --index-cache "$tmp/index.snap" --json "$tmp/cache$run.json" \
        >/dev/null
    test -s "$tmp/index.snap"
done
python3 - "$tmp/cache1.json" "$tmp/cache2.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["rows"] for p in sys.argv[1:])
assert [r["recall"] for r in a] == [r["recall"] for r in b], (a, b)
print("ok: --index-cache")
PY

