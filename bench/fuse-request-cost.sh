#!/usr/bin/env bash
# fuse-request-cost.sh [PATH/TO/vecfs]: what one FUSE request costs on this
# machine. Mounts a fresh vecfs in a temporary directory, makes one vector
# file and times 20,000 stat() calls on it (each one a GETATTR request: the
# daemon's work is a record lookup of a few µs), with the daemon and the
# caller on one core, on two cores, and where the scheduler puts them.
# Prints µs per request; unmounts and stops the daemon on every exit.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vecfs=${1:-$here/../build/fs/vecfs}
tmp=$(mktemp -d)
mkdir "$tmp/data" "$tmp/mnt"
"$vecfs" -f "$tmp/data" "$tmp/mnt" 2>"$tmp/log" &
pid=$!
cleanup() {
    fusermount3 -u "$tmp/mnt" 2>/dev/null || fusermount3 -uz "$tmp/mnt" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 100); do mountpoint -q "$tmp/mnt" && break; sleep 0.05; done
mountpoint -q "$tmp/mnt" || { echo "fuse-request-cost: mount failed: $(tail -1 "$tmp/log")" >&2; exit 1; }
mkdir "$tmp/mnt/c"
echo '1 2 3' >"$tmp/mnt/c/v"
stat_loop() {
    python3 -c '
import os, sys, time
p, n = sys.argv[1], 20000
os.stat(p)
t = time.perf_counter()
for _ in range(n):
    os.stat(p)
print("%.1f" % ((time.perf_counter() - t) / n * 1e6))' "$tmp/mnt/c/v"
}
cores=$(nproc)
echo "local file stat: $(python3 -c '
import os, time
t = time.perf_counter()
for _ in range(20000): os.stat("/")
print("%.1f" % ((time.perf_counter() - t) / 20000 * 1e6))') us"
echo "FUSE request, scheduler's choice: $(stat_loop) us"
if [ "$cores" -ge 2 ] && command -v taskset >/dev/null; then
    taskset -a -p -c 0 "$pid" >/dev/null
    echo "FUSE request, daemon and caller on one core: $(taskset -c 0 bash -c "$(declare -f stat_loop); tmp=$tmp; stat_loop") us"
    echo "FUSE request, daemon and caller on two cores: $(taskset -c 1 bash -c "$(declare -f stat_loop); tmp=$tmp; stat_loop") us"
fi
