#!/usr/bin/env bash
# fuzz.sh — builds every fuzz target with clang + libFuzzer (ASan/UBSan)
# and runs each fuzz-* binary for N seconds, starting from its seed corpus.
#
# Usage: scripts/fuzz.sh [SECONDS] [NAME_FILTER]
#   SECONDS      per target, default 60
#   NAME_FILTER  only targets whose name contains it (e.g. fs_)
# Env: BUILD (build dir, default build-fuzz), JOBS (ninja -j, default 2).
# New inputs go to $BUILD/fuzz-corpus/<name>/ (the checked-in seeds in
# tests/fuzz/corpus/<name>/ are read, never written); crashes are written
# to $BUILD/fuzz-artifacts/. Exit status 1 if any target found a crash.
set -euo pipefail

secs=${1:-60}
filter=${2:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD:-$repo/build-fuzz}
jobs=${JOBS:-2}

if ! command -v clang >/dev/null; then
    echo "fuzz.sh: clang is needed for libFuzzer (apt-get install clang)" >&2
    exit 2
fi
# meson may set up a language again at regeneration, from the environment.
export CC=clang CXX=clang++
# fuzzer-no-link instruments every object for coverage (the engine's and
# the store's parsers, not only the fuzz targets' own files), so libFuzzer
# is guided into the code it tests; the fuzz-* binaries link libFuzzer.
cover=(-Dc_args=-fsanitize=fuzzer-no-link -Dcpp_args=-fsanitize=fuzzer-no-link)
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$repo" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized "${cover[@]}" >/dev/null
else
    meson configure "$build" "${cover[@]}" >/dev/null
fi
ninja -C "$build" -j"$jobs" >/dev/null

mkdir -p "$build/fuzz-artifacts"
failed=0
ran=0
for bin in "$build"/tests/fuzz-*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=${bin##*/fuzz-}
    case "$name" in *"$filter"*) ;; *) continue ;; esac
    corpus="$build/fuzz-corpus/$name"
    mkdir -p "$corpus"
    seeds="$repo/tests/fuzz/corpus/$name"
    log="$build/fuzz-artifacts/$name.log"
    ran=$((ran + 1))
    if "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$build/fuzz-artifacts/$name-" -print_final_stats=1 \
        "$corpus" ${seeds:+$( [ -d "$seeds" ] && echo "$seeds")} >"$log" 2>&1; then
        execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
        echo "fuzz $name: ok (${secs}s, ${execs:-?} runs)"
    else
        echo "fuzz $name: FAILED, see $log"
        grep -m3 -E 'ERROR|SUMMARY|Test unit written' "$log" || true
        failed=1
    fi
done
[ "$ran" -gt 0 ] || { echo "fuzz.sh: no fuzz-* binaries in $build/tests" >&2; exit 2; }
exit $failed
