#!/usr/bin/env bash
# test-compare.sh — bench/compare.py on the committed fixtures of
# bench/fixtures/ (made from a real words50k run by scaling its figures):
# equal runs pass; a uniform QPS drop inside the band (-15 %) passes; one
# beyond it (-80 %) fails; a recall drop of 0.03 at one ef fails; a build
# four times slower fails, and so does the real run of a -O0 build
# (engine-words50k-O0-build.json, docs/performance.md); the best of two
# runs (a slow one and an equal one) passes; a vecfs-bench-fs result and
# its -80 % copy behave the same way; different datasets or kinds are
# refused (exit 2).
#
# Usage: bench/test-compare.sh PATH/TO/compare.py
set -uo pipefail

compare="$1"
fx=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fixtures
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

expect() {
    local want=$1 grep_for=$2
    shift 2
    python3 "$compare" "$@" >"$out" 2>&1
    local rc=$?
    if [ $rc -ne "$want" ]; then
        echo "FAIL: compare.py $* exited $rc, want $want"
        cat "$out"
        failed=1
    elif [ -n "$grep_for" ] && ! grep -q -- "$grep_for" "$out"; then
        echo "FAIL: compare.py $* did not print '$grep_for'"
        cat "$out"
        failed=1
    else
        echo "ok: compare.py $* -> $rc"
    fi
}

e=$fx/engine-words50k
expect 0 PASS "$e-baseline.json" "$e-baseline.json"
expect 0 PASS "$e-qps-minus15.json" "$e-baseline.json"
expect 1 "REGRESSION: speed drop" "$e-qps-minus80.json" "$e-baseline.json"
expect 1 "REGRESSION: recall drop at ef 64" "$e-recall-minus003.json" "$e-baseline.json"
expect 0 PASS "$e-qps-minus80.json" "$e-baseline.json" "$e-baseline.json"
expect 0 PASS --engine hnswlib "$e-qps-minus80.json" "$e-baseline.json"
expect 1 "REGRESSION: build slower" "$e-build-x4.json" "$e-baseline.json"
expect 1 "REGRESSION: build slower" "$e-O0-build.json" "$e-baseline.json"
f=$fx/fs-small
expect 0 PASS "$f-baseline.json" "$f-baseline.json"
expect 1 "REGRESSION: speed drop" "$f-minus80.json" "$f-baseline.json"
expect 2 "different datasets" "$e-other-dataset.json" "$e-baseline.json"
expect 2 "mixing" "$f-baseline.json" "$e-baseline.json"
exit $failed
