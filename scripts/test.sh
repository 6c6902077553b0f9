#!/usr/bin/env bash
# Installs what the tests need, builds vecfs twice (release with -Werror,
# and AddressSanitizer + UBSan) and runs every test in both builds.
# Usage: scripts/test.sh [--no-install] [--quick]   (--quick: release build only)
set -uo pipefail
cd "$(dirname "$0")/.."
install=1 quick=0
for a in "$@"; do
  case "$a" in
    --no-install) install=0 ;;
    --quick) quick=1 ;;
    *) echo "test.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
if [ "$install" = 1 ]; then
  bash scripts/install-deps.sh || { echo "test.sh: installing dependencies failed" >&2; exit 1; }
fi
# Real data for the recall tests; the tests skip a set that is missing.
bash scripts/fetch-data.sh minilm words50k || echo "test.sh: warning: test data not fetched; data tests will skip" >&2

passed=0 failed=0

# One throwaway Ceph cluster for the run's RADOS-mode tests (suite ceph,
# release build only): each takes a pool of its own there
# (tests/integration/ceph_env.py). It starts in the background while the
# release build compiles and is stopped by its pid files right after that
# suite, or at any exit.
ceph_dir="" ceph_pid=""
stop_shared_ceph() {
  [ -n "$ceph_dir" ] || return 0
  [ -z "$ceph_pid" ] || wait "$ceph_pid" 2>/dev/null
  bash scripts/ceph-cluster.sh stop "$ceph_dir/c" >/dev/null 2>&1 ||
    echo "test.sh: warning: stopping the shared Ceph cluster in $ceph_dir failed" >&2
  rm -rf "$ceph_dir"
  ceph_dir="" ceph_pid=""
  unset VECFS_TEST_CEPH_DIR
}
trap stop_shared_ceph EXIT
trap 'exit 130' INT TERM
if command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null; then
  ceph_dir=$(mktemp -d /tmp/vecfs-test-ceph.XXXXXX)
  bash scripts/ceph-cluster.sh start "$ceph_dir/c" --size 2 >"$ceph_dir/start.log" 2>&1 &
  ceph_pid=$!
fi
# shared_ceph_ready: waits for that start; on failure the tests start
# clusters of their own, as they do when run alone.
shared_ceph_ready() {
  [ -n "$ceph_pid" ] || return 0
  if wait "$ceph_pid"; then
    export VECFS_TEST_CEPH_DIR=$ceph_dir/c
  else
    echo "test.sh: warning: the shared Ceph cluster did not start ($(tail -1 "$ceph_dir/start.log")); each RADOS test starts its own" >&2
  fi
  ceph_pid=""
}
# run_suite DIR "TARGETS" "SUITES" SETUP-ARGS...: builds TARGETS (all when
# empty) in DIR and runs the tests of SUITES (all when empty; a suite
# written !NAME is left out).
run_suite() {
  local dir=$1 targets=$2 suites=$3; shift 3
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null || { echo "test.sh: meson setup $dir failed" >&2; failed=$((failed + 1)); return; }
  else
    # A directory made before an option was added here gets it too.
    meson configure "$dir" "$@" >/dev/null || { echo "test.sh: meson configure $dir failed" >&2; failed=$((failed + 1)); return; }
  fi
  # shellcheck disable=SC2086
  if ! ninja -C "$dir" $targets >"$dir.ninja.log" 2>&1; then
    tail -40 "$dir.ninja.log"
    echo "test.sh: build $dir failed" >&2
    failed=$((failed + 1))
    return
  fi
  local suite_args=()
  for s in $suites; do
    case "$s" in
      !*) suite_args+=(--no-suite "${s#!}") ;;
      *) suite_args+=(--suite "$s") ;;
    esac
  done
  shared_ceph_ready
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 "${suite_args[@]}" 2>&1 | tee "$dir.test.log"
  local ok fail
  ok=$(grep -E '^Ok:' "$dir.test.log" | awk '{print $2}')
  fail=$(grep -E '^(Fail|Timeout|Unexpected Pass):' "$dir.test.log" | awk '{s += $NF} END {print s + 0}')
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${fail:-0}))
  [ -n "$ok" ] || failed=$((failed + 1))
}

run_suite build "" "" -Dwerror=true -Dbuildtype=release
stop_shared_ceph
if [ "$quick" = 0 ]; then
  export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The Ceph cluster's test runs no code of ours; once (release) is enough.
  # test_hooks: .vecfs/fault, so tests/integration/fault.py sweeps allocation
  # failures through the mount here, where a leak in an error path is
  # reported. The release build above stays what users build (no hooks;
  # fault.py skips there).
  run_suite build-asan "" "!ceph" -Dwerror=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dtest_hooks=true
  # ThreadSanitizer over the engine, whose tests race searches, inserts and
  # deletes on one index (list every engine test binary here; the emulated
  # NEON one exists on x86 only).
  neon_emulated=""
  case "$(uname -m)" in x86_64 | i?86) neon_emulated=tests/test_code_kernels_neon_emulated ;; esac
  VECFS_TEST_SKIP_LARGE=1 CC=clang CXX=clang++ run_suite build-tsan "tests/test_hnsw tests/test_hnsw_filter tests/test_hnsw_quant tests/test_hnsw_reach tests/test_hnsw_fault tests/test_quantizer tests/test_flat tests/test_distance tests/test_code_kernels $neon_emulated tests/test_crc32c tests/test_elias_fano" engine \
    -Dwerror=true -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
