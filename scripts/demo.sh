#!/usr/bin/env bash
# demo.sh — the README's main job: installs what is missing, builds vecfs,
# fetches the MiniLM documentation embeddings (778 x 384, with title,
# category and tags), mounts a fresh demo store, imports them through
# .import/, runs a `like` query and a filtered query with cat, prints the
# neighbours with their titles, and leaves the filesystem mounted.
#
# Usage: scripts/demo.sh [MOUNTPOINT]
#   MOUNTPOINT  an empty directory (created if missing); default: a new
#               temporary directory under /tmp
# Env: BUILD      build directory (default <repo>/build)
#      DEMO_DATA  the demo's DATADIR (default: a new temporary directory)
#      VECFS_DATA where scripts/fetch-data.sh caches data (default <repo>/data)
#      VECFS_SKIP_INSTALL=1 skips scripts/install-deps.sh
# Exit status 0 with the mount left up; non-zero with one line on stderr
# on any error (the mount is then taken down again).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD:-$repo/build}
data=${VECFS_DATA:-$repo/data}

die() {
    echo "demo: $*" >&2
    exit 1
}

step() {
    printf '\n== %s\n' "$*"
}

if [ "${VECFS_SKIP_INSTALL:-0}" != 1 ]; then
    step "installing dependencies (scripts/install-deps.sh)"
    bash "$repo/scripts/install-deps.sh" || die "installing dependencies failed"
fi

step "building into $build"
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$repo" >/dev/null || die "meson setup failed"
fi
ninja -C "$build" fs/vecfs >/dev/null || die "the build failed (run: ninja -C $build)"
vecfs=$build/fs/vecfs

step "fetching the MiniLM embeddings (scripts/fetch-data.sh minilm)"
VECFS_DATA=$data bash "$repo/scripts/fetch-data.sh" minilm || die "fetching the data failed"
[ -f "$data/minilm.fvecs" ] && [ -f "$data/minilm-meta.jsonl" ] ||
    die "fetch-data.sh did not produce $data/minilm.fvecs and minilm-meta.jsonl"

mnt=${1:-$(mktemp -d /tmp/vecfs-demo.XXXXXX)}
mkdir -p "$mnt"
mnt=$(cd "$mnt" && pwd)
[ -z "$(ls -A "$mnt")" ] || die "$mnt is not empty"
datadir=${DEMO_DATA:-$(mktemp -d /tmp/vecfs-demo-data.XXXXXX)}
mkdir -p "$datadir"

step "mounting $datadir at $mnt"
"$vecfs" "$datadir" "$mnt" || die "vecfs could not mount $mnt"
for _ in $(seq 100); do
    grep -q " $mnt fuse" /proc/mounts && break
    sleep 0.1
done
grep -q " $mnt fuse" /proc/mounts || die "the mount did not appear"
cleanup_on_error() {
    echo "demo: failed; unmounting $mnt" >&2
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
}
trap cleanup_on_error ERR

step "creating the collection docs and importing the embeddings through .import/"
mkdir "$mnt/docs"
printf 'metric = cosine\n' >"$mnt/docs/.config"
# One JSON line per document: name, vector, and title/category/tags as
# metadata (they become the xattrs user.title, user.category, user.tags).
python3 - "$data/minilm.fvecs" "$data/minilm-meta.jsonl" >"$datadir/docs.jsonl" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
metas = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
off = 0
for m in metas:
    (d,) = struct.unpack_from("<i", raw, off)
    vec = struct.unpack_from("<%df" % d, raw, off + 4)
    off += 4 + 4 * d
    meta = {k: m[k] for k in ("title", "category", "tags") if k in m}
    print(json.dumps({"name": m["name"], "vector": [float("%.9g" % x) for x in vec],
                      "meta": meta}, ensure_ascii=False))
PY
time cp "$datadir/docs.jsonl" "$mnt/docs/.import/docs.jsonl"
rm -f "$datadir/docs.jsonl"
n=$(ls "$mnt/docs" | wc -l)
echo "imported: $n vectors ($(grep -o '"dim": [0-9]*' "$mnt/.vecfs/stats" | head -1 || true))"

# Prints "<distance>  <name>  <title>" for each line of a query result.
show() {
    while IFS=$'\t' read -r name dist; do
        title=$(getfattr -n user.title --only-values "$mnt/docs/$name" 2>/dev/null || true)
        printf '  %-8.4f %-44s %s\n' "$dist" "$name" "$title"
    done
}

first=$(head -1 "$data/minilm-meta.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')
step "documents like \"$(getfattr -n user.title --only-values "$mnt/docs/$first" 2>/dev/null)\""
printf 'k = 5\nlike = %s\n' "$first" >"$mnt/docs/.query/similar"
echo "\$ cat $mnt/docs/.query/similar"
cat "$mnt/docs/.query/similar" | show

other=$(python3 - "$data/minilm-meta.jsonl" "$first" <<'PY'
import json, sys
first = None
for line in open(sys.argv[1], encoding="utf-8"):
    m = json.loads(line)
    if m["name"] == sys.argv[2]:
        first = m["category"]
    elif first is not None and m.get("category") and m["category"] != first:
        print(m["category"])
        break
PY
)
step "the same question, only in category \"$other\""
printf 'k = 5\nfilter = category=%s\nlike = %s\n' "$other" "$first" >"$mnt/docs/.query/filtered"
echo "\$ cat $mnt/docs/.query/filtered"
cat "$mnt/docs/.query/filtered" | show

trap - ERR
step "done"
echo "vecfs is mounted at $mnt (store in $datadir). Try:"
echo "  ls $mnt/docs | head; getfattr -d $mnt/docs/$first; cat $mnt/.vecfs/stats"
echo "Unmount with: fusermount3 -u $mnt"
