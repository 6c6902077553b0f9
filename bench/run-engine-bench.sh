#!/usr/bin/env bash
# run-engine-bench.sh — the engine benchmark of docs/performance.md: vecfs
# against hnswlib and FAISS on real data, in one process run per dataset.
#
# Usage: bench/run-engine-bench.sh [-B BUILDDIR] [SET...]
#   BUILDDIR  meson build directory (default <repo>/build; set up and built
#             here if vecfs-bench-engine is missing or stale)
#   SET       words (331,479 x 100, cosine), mnist (9,000 x 784, l2),
#             words50k (50,000 x 100, cosine: a quick check), dups (the
#             generated duplicate-heavy set of --duplicates 50: 20,000 x 8,
#             l2, half the rows copies of 13 vectors), mnist784 (60,000 x
#             784, l2: the full MNIST), synth384 (100,000 x 384, cosine,
#             SYNTHETIC: see scripts/fetch-data.sh). Default:
#             words mnist dups.
# Data comes from scripts/fetch-data.sh (DATADIR: $VECFS_DATA or
# <repo>/data); dups needs none. For each set the table goes to stdout and to
# BUILDDIR/bench-results/SET.txt, the JSON to BUILDDIR/bench-results/SET.json.
#
# Parameters: M 16, single-thread search (--threads 1), k 10.
#   words: efConstruction 100, as DATA.md's reference hnswlib figures;
#   mnist, mnist784, dups: efConstruction 200, as DATA.md's MNIST reference;
#   synth384: efConstruction 100, as words.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build="$repo/build"
datadir="${VECFS_DATA:-$repo/data}"

die() {
    echo "run-engine-bench: $*" >&2
    exit 1
}
usage() {
    echo "usage: bench/run-engine-bench.sh [-B BUILDDIR] [words|mnist|words50k|dups|mnist784|synth384 ...]" >&2
}

# shellcheck source=../scripts/set-args.sh
. "$repo/scripts/set-args.sh"
opt_value=$build
parse_set_args run-engine-bench -B "words mnist words50k dups mnist784 synth384" "$@"
build=$opt_value
[ ${#sets[@]} -gt 0 ] || sets=(words mnist dups)

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$repo" >/dev/null || die "meson setup $build failed"
fi
ninja -C "$build" bench/vecfs-bench-engine >/dev/null || die "building vecfs-bench-engine failed"
exe="$build/bench/vecfs-bench-engine"
[ -x "$exe" ] || die "$exe was not built"

fetch=()
for set in "${sets[@]}"; do
    [ "$set" = dups ] || fetch+=("$set")
done
if [ ${#fetch[@]} -gt 0 ]; then
    VECFS_DATA="$datadir" "$repo/scripts/fetch-data.sh" "${fetch[@]}" || die "fetching data failed"
fi

out="$build/bench-results"
mkdir -p "$out"

echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1), $(nproc) cores"
for set in "${sets[@]}"; do
    case "$set" in
    words)
        args=(--base "$datadir/words-base.fvecs" --queries "$datadir/words-queries.fvecs"
            --metric cosine --efc 100 --ef 10,20,40,64,80,120,160,320)
        ;;
    words50k)
        args=(--base "$datadir/words50k-base.fvecs" --queries "$datadir/words50k-queries.fvecs"
            --metric cosine --efc 100 --ef 10,20,40,64,80,120,160,320)
        ;;
    mnist)
        args=(--base "$datadir/mnist-base.fvecs" --queries "$datadir/mnist-queries.fvecs"
            --metric l2 --efc 200 --ef 10,20,40,80,160,320)
        ;;
    mnist784)
        args=(--base "$datadir/mnist784-base.fvecs" --queries "$datadir/mnist784-queries.fvecs"
            --metric l2 --efc 200 --ef 10,20,40,80,160,320)
        ;;
    synth384)
        args=(--base "$datadir/synth384-base.fvecs" --queries "$datadir/synth384-queries.fvecs"
            --metric cosine --efc 100 --ef 10,20,40,64,80,120,160,320)
        ;;
    dups)
        args=(--duplicates 50 --metric l2 --efc 200 --ef 10,20,40,80,160,320)
        ;;
    esac
    echo
    echo "### $set"
    echo "\$ vecfs-bench-engine ${args[*]} --k 10 --m 16 --threads 1 --compare hnswlib,faiss --json $out/$set.json"
    if ! "$exe" "${args[@]}" --k 10 --m 16 --threads 1 --compare hnswlib,faiss \
        --json "$out/$set.json" | tee "$out/$set.txt"; then
        die "vecfs-bench-engine failed on $set"
    fi
done
echo
echo "results in $out"
