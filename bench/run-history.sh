#!/usr/bin/env bash
# run-history.sh — continuous benchmarking: runs the benchmarks on a build,
# files each result into the history (bench/record.py:
# bench/results/<machine-kind>/<date>-<commit>-<bench>.json) and compares
# it with the committed baseline of this machine kind (bench/compare.py).
#
# Usage: bench/run-history.sh [-B BUILDDIR] [SET...]
#   SET  as bench/run-engine-bench.sh takes them (default words50k); for
#        each, vecfs-bench-engine against hnswlib and FAISS (history name
#        engine-SET), then vecfs-bench-fs through a mount (fs-SET, the sets
#        with files: not dups).
# The baseline of a bench is bench/results/<kind>/baseline-<bench>.json
# (kind: $VECFS_MACHINE_KIND or c). Exit status: 0 when every compare
# passed or had no baseline, 1 on a regression, 2 on a failure to run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build="$repo/build"
datadir="${VECFS_DATA:-$repo/data}"
kind="${VECFS_MACHINE_KIND:-c}"

usage() {
    echo "usage: bench/run-history.sh [-B BUILDDIR] [words|mnist|words50k|dups ...]" >&2
}
# shellcheck source=../scripts/set-args.sh
. "$repo/scripts/set-args.sh"
opt_value=$build
parse_set_args run-history -B "words mnist words50k dups" "$@"
build=$(cd "$opt_value" && pwd)
[ ${#sets[@]} -gt 0 ] || sets=(words50k)

status=0
compare_with_baseline() {
    local bench=$1 record=$2
    local baseline="$here/results/$kind/baseline-$bench.json"
    if [ ! -f "$baseline" ]; then
        echo "run-history: no baseline for $bench on machine kind $kind ($baseline)"
        return
    fi
    local rc=0
    python3 "$here/compare.py" "$record" "$baseline" || rc=$?
    [ $rc -le 1 ] || exit 2
    [ $rc -eq 0 ] || status=1
}

for set in "${sets[@]}"; do
    "$here/run-engine-bench.sh" -B "$build" "$set" || exit 2
    record=$(python3 "$here/record.py" --bench "engine-$set" --kind "$kind" --build "$build" \
        --command "bench/run-engine-bench.sh $set" "$build/bench-results/$set.json")
    echo "recorded $record"
    compare_with_baseline "engine-$set" "$record"
    [ "$set" != dups ] || continue
    ninja -C "$build" bench/vecfs-bench-fs fs/vecfs >/dev/null || exit 2
    metric=cosine
    [ "$set" != mnist ] || metric=l2
    fs_json="$build/bench-results/fs-$set.json"
    "$build/bench/vecfs-bench-fs" --base "$datadir/$set-base.fvecs" \
        --queries "$datadir/$set-queries.fvecs" --metric "$metric" --vecfs "$build/fs/vecfs" \
        --json "$fs_json" || exit 2
    record=$(python3 "$here/record.py" --bench "fs-$set" --kind "$kind" --build "$build" \
        --command "vecfs-bench-fs --base $set-base.fvecs --queries $set-queries.fvecs --metric $metric" \
        "$fs_json")
    echo "recorded $record"
    compare_with_baseline "fs-$set" "$record"
done
exit $status
