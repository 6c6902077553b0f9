#!/usr/bin/env bash
# ceph-cluster.sh — a throwaway Ceph cluster on 127.0.0.1 for the RADOS mode
# (issue 10): one mon, one mgr and N OSDs, every file under one directory,
# every daemon stopped by the pid in its pid file. Run with --help for usage.
#
# Layout of DIR: ceph.conf, cluster.env (what start was asked for), monmap,
# mon.a/ mgr.x/ osd.N/ (daemon data; bluestore's sparse block file is
# osd.N/block), run/ (NAME.pid, admin sockets), log/ (daemon logs,
# start.log with the output of the commands start ran).
#
# Auth is none: the cluster listens on 127.0.0.1 only and lives for one test,
# so cephx would add keyrings to create and pass around and protect nothing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Debian's python3-rados is built for the system Python, not for a pyenv one.
CEPH_PY=${CEPH_PY:-/usr/bin/python3}

prog=ceph-cluster
usage() {
    cat <<'EOF'
usage: scripts/ceph-cluster.sh COMMAND DIR [options]
  start DIR [--osds N] [--store memstore|bluestore] [--pool POOL] [--size S]
            [--pgs P] [--timeout SEC]
      Create a new cluster in DIR (absent or empty): mon a, mgr x, N OSDs
      (default 3) on 127.0.0.1, auth none, and pool POOL (default vecfs, P
      PGs, default 32; size S, default min(3, N)). memstore (default) keeps objects in
      the OSDs' memory and loses them when an OSD dies; bluestore keeps them
      in a sparse 10 GiB file per OSD, so an OSD can be killed and restarted.
      Returns when all N OSDs are up and a put + get of a test object in POOL
      succeeds. After SEC seconds (default 120) it stops everything it started
      and exits 1 with one line on stderr.
  add-pool DIR POOL [--size S] [--pgs P]
                      Create another pool on the running cluster in DIR (S
                      defaults to the cluster's size, P to 32) and return
                      when a put + get of a test object in it succeeds: one
                      cluster serves tests that each want a pool of their
                      own (scripts/test.sh starts one for the whole run).
  rm-pool DIR POOL    Delete POOL and every object in it.
  stop DIR            SIGTERM every daemon by its pid file, SIGKILL after 10 s,
                      wait until each pid is gone. Fine on a stopped DIR.
                      Keeps DIR's files; removes nothing outside DIR.
  status DIR          One line per daemon, then the cluster's health.
                      Exit 0 when every daemon runs, 1 otherwise.
  env DIR             Print CEPH_CONF=DIR/ceph.conf and VECFS_RADOS_POOL=POOL
                      for sourcing:  eval "$(scripts/ceph-cluster.sh env DIR)"
  kill-osd DIR ID [--signal KILL|TERM]
                      Stop osd.ID (default SIGKILL, a crash) and wait until
                      its process is gone.
  start-osd DIR ID    Restart osd.ID (bluestore only) and wait until the mon
                      reports it up (60 s bound).
EOF
}

die() { echo "$prog: $*" >&2; exit 1; }
bad_usage() { echo "$prog: $*; see $0 --help" >&2; exit 2; }

# ---- helpers over DIR --------------------------------------------------

set_dir() {
    [ -n "${1:-}" ] || bad_usage "missing DIR"
    case "$1" in *[[:space:]]*) die "DIR must not contain white space: '$1'" ;; esac
    D=$(realpath -m -- "$1")
    CONF=$D/ceph.conf
}

# load_env: POOL, STORE, SIZE and OSD_IDS as start wrote them.
POOL="" STORE="" SIZE="" OSD_IDS=""
load_env() {
    [ -f "$D/cluster.env" ] || die "$D holds no cluster (no cluster.env)"
    # shellcheck source=/dev/null
    . "$D/cluster.env"
}

# cmdline_has_conf PID: true when PID runs with this DIR's ceph.conf in its
# command line (a zombie's command line is empty). No fork: stop polls it.
cmdline_has_conf() {
    local args=()
    mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || return 1
    [[ " ${args[*]} " == *" $CONF "* ]]
}

# pid_of NAME: the pid in run/NAME.pid when that process is alive and was
# started with this DIR's ceph.conf (so a reused pid is never signalled).
pid_of() {
    local f=$D/run/$1.pid pid
    [ -f "$f" ] || return 1
    read -r pid 2>/dev/null <"$f" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    cmdline_has_conf "$pid" || return 1
    echo "$pid"
}

# Names of the daemons (and mkfs runs) that have pid files.
pid_names() {
    local f
    for f in "$D"/run/*.pid; do
        [ -e "$f" ] || continue
        f=${f##*/}
        echo "${f%.pid}"
    done
}

any_running() {
    local n
    for n in $(pid_names); do
        pid_of "$n" >/dev/null && return 0
    done
    return 1
}

# stop_names SIGNAL BOUND NAME...: signal each live daemon, wait up to BOUND
# seconds for all to exit, SIGKILL the rest and wait until they have exited.
# Adds the pids to signalled_pids (for wait_reaped).
signalled_pids=()
stop_names() {
    local sig=$1 bound=$2 n pid i
    shift 2
    local pids=()
    for n in "$@"; do
        if pid=$(pid_of "$n"); then
            kill "-$sig" "$pid" 2>/dev/null || true
            pids+=("$pid")
        elif read -r pid 2>/dev/null <"$D/run/$n.pid" && [[ "$pid" =~ ^[0-9]+$ ]] &&
            [ -e "/proc/$pid" ] && ! alive_pids "$pid"; then
            # Exited, not yet reaped (a zombie's pid cannot be reused).
            signalled_pids+=("$pid")
        fi
    done
    signalled_pids+=("${pids[@]}")
    for ((i = 0; i < bound * 10; i++)); do
        alive_pids "${pids[@]}" || break
        sleep 0.1
    done
    if alive_pids "${pids[@]}"; then
        for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
        for ((i = 0; i < 100; i++)); do
            alive_pids "${pids[@]}" || break
            sleep 0.1
        done
    fi
    alive_pids "${pids[@]}" && { echo "$prog: pids still alive after SIGKILL: ${pids[*]}" >&2; return 1; }
    for n in "$@"; do rm -f "$D/run/$n.pid"; done
    return 0
}

# wait_reaped: wait up to 5 s until the signalled pids have left the process
# table: a daemon of an earlier start is a child of init, which reaps its
# zombies about 2 s late on this machine.
wait_reaped() {
    local i
    for ((i = 0; i < 50; i++)); do
        existing_pids "${signalled_pids[@]}" || return 0
        sleep 0.1
    done
}

# alive_pids PID...: true when any of them still runs (a zombie has exited).
alive_pids() {
    local pid k v
    for pid in "$@"; do
        while read -r k v; do
            if [ "$k" = State: ]; then
                [ "${v:0:1}" = Z ] || return 0
                break
            fi
        done 2>/dev/null <"/proc/$pid/status"
    done
    return 1
}

# existing_pids PID...: true when any of them is still in the process table.
existing_pids() {
    local pid
    for pid in "$@"; do
        [ -e "/proc/$pid" ] && return 0
    done
    return 1
}

# procs_with_conf: pids of live processes whose command line names $CONF.
procs_with_conf() {
    local p out=()
    for p in /proc/[0-9]*; do
        cmdline_has_conf "${p#/proc/}" && out+=("${p#/proc/}")
    done
    echo "${out[*]}"
}

# Stop everything under D: OSDs and mkfs runs first (they tell the mon they
# are going down), then the mgr, then the mon.
stop_all() {
    local n others=() mgrs=() mons=()
    for n in $(pid_names); do
        case "$n" in
        mon.*) mons+=("$n") ;;
        mgr.*) mgrs+=("$n") ;;
        *) others+=("$n") ;;
        esac
    done
    local rc=0
    [ ${#others[@]} -eq 0 ] || stop_names TERM 10 "${others[@]}" || rc=1
    [ ${#mgrs[@]} -eq 0 ] || stop_names TERM 10 "${mgrs[@]}" || rc=1
    [ ${#mons[@]} -eq 0 ] || stop_names TERM 10 "${mons[@]}" || rc=1
    wait_reaped
    # A check, not a kill: processes still started with this ceph.conf.
    local left
    left=$(procs_with_conf)
    if [ -n "$left" ]; then
        echo "$prog: still running with $CONF (not started by this DIR's pid files?): $left" >&2
        rc=1
    fi
    return $rc
}

# spawn NAME BINARY ARGS...: run a daemon in the foreground of a background
# job (so $! is its pid) and record that pid at once; the daemon writes the
# same pid to the same file (pid file in ceph.conf). The mgr is not on the
# I/O path and loads Python modules for seconds at start: it runs at nice
# 10 so that it does not slow the OSDs' boot on a busy machine (nice execs
# it, so $! is still its pid).
spawn() {
    local name=$1 bin=$2 pre=()
    shift 2
    [[ "$name" != mgr.* ]] || pre=(nice -n 10)
    "${pre[@]}" "$bin" -f -c "$CONF" "$@" </dev/null >>"$D/log/$name.out" 2>&1 &
    echo $! >"$D/run/$name.pid"
}

# A bounded ceph/rados command; its output goes to log/start.log unless the
# caller captures stdout.
remaining() {
    local r=$((deadline - SECONDS))
    [ $r -gt 0 ] || r=1
    [ $r -lt 15 ] || r=15
    echo $r
}
# admin COMMAND ARGS: scripts/ceph-admin.py (mon commands through librados).
admin() {
    local t
    t=$(remaining)
    timeout $((t + 3)) "$CEPH_PY" "$here/ceph-admin.py" "$CONF" "$t" "$@" 2>>"$LOG"
}
rados_cmd() {
    timeout "$(remaining)" rados -c "$CONF" --rados-osd-op-timeout 10 --rados-mon-op-timeout 10 \
        --client-mount-timeout 10 "$@" 2>>"$LOG"
}

check_deadline() {
    [ $SECONDS -lt "$deadline" ] || fail "timed out after $timeout_s s waiting for $1"
}

fail() {
    fail_msg="$*"
    exit 1
}

free_port() {
    "$CEPH_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- commands ----------------------------------------------------------

cmd_start() {
    set_dir "${1:-}"
    shift
    local osds=3 store=memstore pool=vecfs size="" pgs=32
    # 120 s: three bluestore OSDs took 12 s on a quiet machine and 51 s at a
    # load average of 14 on 2 cores.
    timeout_s=120
    while [ $# -gt 0 ]; do
        [ $# -ge 2 ] || bad_usage "$1 needs a value"
        case "$1" in
        --osds) osds=$2 ;;
        --store) store=$2 ;;
        --pool) pool=$2 ;;
        --size) size=$2 ;;
        --pgs) pgs=$2 ;;
        --timeout) timeout_s=$2 ;;
        *) bad_usage "unknown option '$1'" ;;
        esac
        shift 2
    done
    [[ "$osds" =~ ^[1-9][0-9]?$ ]] || bad_usage "--osds wants 1..99, not '$osds'"
    [[ "$pgs" =~ ^[1-9][0-9]*$ ]] || bad_usage "--pgs wants a number, not '$pgs'"
    [[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || bad_usage "--timeout wants seconds, not '$timeout_s'"
    case "$store" in memstore | bluestore) ;; *) bad_usage "--store wants memstore or bluestore, not '$store'" ;; esac
    [[ "$pool" =~ ^[A-Za-z0-9_.-]+$ ]] || bad_usage "bad pool name '$pool'"
    [ -n "$size" ] || size=$((osds < 3 ? osds : 3))
    [[ "$size" =~ ^[1-9][0-9]?$ ]] || bad_usage "--size wants a number, not '$size'"
    [ "$size" -le "$osds" ] || bad_usage "--size $size is more than --osds $osds"
    local b
    for b in ceph ceph-mon ceph-mgr ceph-osd rados monmaptool uuidgen timeout; do
        command -v "$b" >/dev/null || die "$b not found (run scripts/install-deps.sh)"
    done
    "$CEPH_PY" -c 'import rados' 2>/dev/null || die "$CEPH_PY cannot import rados (python3-rados; run scripts/install-deps.sh)"

    if [ -d "$D" ] && any_running; then
        die "a cluster is already running in $D (stop it first: $0 stop $D)"
    fi
    if [ -e "$D" ] && [ -n "$(ls -A "$D" 2>/dev/null)" ]; then
        die "$D is not empty (an earlier cluster's files?); remove it or use another DIR"
    fi
    mkdir -p "$D/run" "$D/log" "$D/crash"
    LOG=$D/log/start.log
    deadline=$((SECONDS + timeout_s))
    fail_msg=""
    started=0
    trap 'start_exit $?' EXIT
    trap 'fail "interrupted"' INT TERM

    local fsid port
    fsid=$(uuidgen)
    port=$(free_port)
    cat >"$D/cluster.env" <<EOF
POOL=$pool
STORE=$store
SIZE=$size
EOF
    cat >"$CONF" <<EOF
# Written by scripts/ceph-cluster.sh: a throwaway cluster on 127.0.0.1.
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
crash dir = $D/crash
keyring = $D/keyring
mon cluster log file = $D/log/cluster.log
osd pool default size = $size
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
# rm-pool: a test that shared the cluster gives its pool back.
mon allow pool delete = true
mon warn on pool no redundancy = false
# cephx's global_id warnings mean nothing with auth none: HEALTH_OK instead.
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
# With 3 OSDs one report of a dead peer is enough to mark it down.
mon osd min down reporters = 1

[mon]
mon data = $D/mon.\$id
# Commit map changes (pool create, OSD boot, OSD down) after 0.1 s, not 1 s.
paxos propose interval = 0.1

[mgr]
mgr data = $D/mgr.\$id
mgr initial modules =

[osd]
osd data = $D/osd.\$id
osd objectstore = $store
# The minimum allowed (the default is 4 GiB). It only steers bluestore's
# cache autotuner, which is off below: a fixed 128 MiB cache keeps a
# bluestore OSD far under 896 MiB (rocksdb's write buffers, up to 4 x 256 MiB
# under heavy writes, are not part of that cache).
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728
memstore device bytes = 1073741824
bluestore block size = 10737418240
bluestore block create = true
# mkfs fscks the store it just made by default: nothing to find in a new one.
bluestore fsck on mkfs = false
# Two cores: fewer worker threads than the SSD default of 8 shards x 2.
osd op num shards = 2
osd op num threads per shard = 1

[client]
log file = /dev/null
EOF

    # mon a
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$D/monmap" >>"$LOG" 2>&1 ||
        fail "monmaptool failed (see $LOG)"
    mkdir -p "$D/mon.a"
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" >>"$LOG" 2>&1 || fail "ceph-mon --mkfs failed (see $LOG)"
    spawn mon.a ceph-mon -i a
    started=1
    until admin num-up >/dev/null; do
        pid_of mon.a >/dev/null || fail "ceph-mon exited (see $D/log/mon.a.log)"
        check_deadline "the mon"
        sleep 0.2
    done

    # mgr x
    mkdir -p "$D/mgr.x"
    spawn mgr.x ceph-mgr -i x

    # OSDs: register, mkfs in parallel, start.
    local i id uuids=() ids=()
    for ((i = 0; i < osds; i++)); do uuids+=("$(uuidgen)"); done
    mapfile -t ids < <(admin osd-new "${uuids[@]}")
    [ ${#ids[@]} -eq "$osds" ] || fail "ceph osd new failed (see $LOG)"
    for ((i = 0; i < osds; i++)); do
        id=${ids[i]}
        mkdir -p "$D/osd.$id"
        ceph-osd -c "$CONF" -i "$id" --mkfs --osd-uuid "${uuids[i]}" >>"$D/log/osd.$id.mkfs.out" 2>&1 &
        echo $! >"$D/run/mkfs.osd.$id.pid"
    done
    for id in "${ids[@]}"; do
        local mpid
        mpid=$(cat "$D/run/mkfs.osd.$id.pid")
        while alive_pids "$mpid"; do
            check_deadline "ceph-osd --mkfs"
            sleep 0.1
        done
        wait "$mpid" || fail "ceph-osd --mkfs of osd.$id failed (see $D/log/osd.$id.mkfs.out)"
        rm -f "$D/run/mkfs.osd.$id.pid"
    done
    for id in "${ids[@]}"; do spawn "osd.$id" ceph-osd -i "$id"; done
    echo "OSD_IDS=\"${ids[*]}\"" >>"$D/cluster.env"

    # The pool, while the OSDs boot.
    admin pool "$pool" "$pgs" "$size" || fail "creating pool $pool failed (see $LOG)"

    local up=0
    while :; do
        up=$(admin num-up) || up=0
        [ "$up" = "$osds" ] && break
        for id in "${ids[@]}"; do
            pid_of "osd.$id" >/dev/null || fail "ceph-osd $id exited (see $D/log/osd.$id.log)"
        done
        check_deadline "$osds OSDs up ($up up)"
        sleep 0.3
    done

    probe_pool "$pool"
    started=2
    echo "$prog: $osds $store OSDs up, pool $pool (size $size) accepts writes after $SECONDS s; CEPH_CONF=$CONF"
}

# probe_pool POOL: waits (until the deadline) for a round trip of a test
# object in POOL.
probe_pool() {
    local pool=$1 probe=$D/run/probe.$1 got=$D/run/probe.$1.got
    head -c 4096 /dev/urandom >"$probe"
    until rados_cmd -p "$pool" put ceph-cluster-probe "$probe" && rados_cmd -p "$pool" get ceph-cluster-probe "$got" &&
        cmp -s "$probe" "$got"; do
        check_deadline "a put + get in pool $pool"
        sleep 0.3
    done
    rados_cmd -p "$pool" rm ceph-cluster-probe || true
    rm -f "$probe" "$got"
}

# EXIT trap of start: on any failure, stop what was started, one line.
start_exit() {
    local rc=$1
    trap - EXIT INT TERM
    [ "${started:-0}" = 2 ] && exit "$rc"
    [ -n "$fail_msg" ] || fail_msg="failed (exit $rc; see $LOG)"
    stop_all >/dev/null 2>&1 || true
    echo "$prog: start $D: $fail_msg; stopped what it started" >&2
    exit 1
}

# pool_cmd_setup DIR POOL: for add-pool and rm-pool, a running cluster in
# DIR and a well-formed POOL; sets LOG and the deadline (60 s).
pool_cmd_setup() {
    set_dir "${1:-}"
    load_env
    [[ "${2:-}" =~ ^[A-Za-z0-9_.-]+$ ]] || bad_usage "missing or bad pool name '${2:-}'"
    pid_of mon.a >/dev/null || die "the mon is not running in $D"
    LOG=$D/log/start.log
    timeout_s=60
    deadline=$((SECONDS + timeout_s))
}

cmd_add_pool() {
    pool_cmd_setup "$@"
    local pool=$2 size=$SIZE pgs=32
    shift 2
    while [ $# -gt 0 ]; do
        [ $# -ge 2 ] || bad_usage "$1 needs a value"
        case "$1" in
        --size) size=$2 ;;
        --pgs) pgs=$2 ;;
        *) bad_usage "unknown option '$1'" ;;
        esac
        shift 2
    done
    [[ "$size" =~ ^[1-9][0-9]?$ ]] || bad_usage "--size wants a number, not '$size'"
    [[ "$pgs" =~ ^[1-9][0-9]*$ ]] || bad_usage "--pgs wants a number, not '$pgs'"
    admin pool "$pool" "$pgs" "$size" || die "creating pool $pool failed (see $LOG)"
    fail_msg=""
    trap '[ -z "$fail_msg" ] || echo "$prog: add-pool $pool: $fail_msg" >&2' EXIT
    probe_pool "$pool"
}

cmd_rm_pool() {
    pool_cmd_setup "$@"
    admin pool-rm "$2" || die "deleting pool $2 failed (see $LOG)"
}

cmd_stop() {
    set_dir "${1:-}"
    [ -d "$D/run" ] || return 0
    stop_all
}

cmd_status() {
    set_dir "${1:-}"
    load_env
    local rc=0 n pid
    for n in mon.a mgr.x $(for i in $OSD_IDS; do echo "osd.$i"; done); do
        if pid=$(pid_of "$n"); then
            echo "$n running pid $pid"
        else
            echo "$n stopped"
            rc=1
        fi
    done
    if pid_of mon.a >/dev/null; then
        timeout 15 ceph -c "$CONF" --connect-timeout 10 health 2>/dev/null || echo "health unknown (mon not answering)"
        timeout 15 ceph -c "$CONF" --connect-timeout 10 osd stat 2>/dev/null || true
    fi
    echo "pool $POOL ($STORE, size $SIZE)"
    return $rc
}

cmd_env() {
    set_dir "${1:-}"
    load_env
    printf 'CEPH_CONF=%q\nVECFS_RADOS_POOL=%q\nexport CEPH_CONF VECFS_RADOS_POOL\n' "$CONF" "$POOL"
}

osd_arg() {
    [[ "${1:-}" =~ ^[0-9]+$ ]] || bad_usage "missing or bad OSD ID '${1:-}'"
    [[ " $OSD_IDS " == *" $1 "* ]] || die "no osd.$1 in $D (OSDs: $OSD_IDS)"
}

cmd_kill_osd() {
    set_dir "${1:-}"
    load_env
    osd_arg "${2:-}"
    local id=$2 sig=KILL
    shift 2
    if [ $# -gt 0 ]; then
        if [ "$1" != --signal ] || [ $# -ne 2 ]; then bad_usage "kill-osd takes only --signal KILL|TERM"; fi
        case "$2" in KILL | TERM) sig=$2 ;; *) bad_usage "--signal wants KILL or TERM" ;; esac
    fi
    pid_of "osd.$id" >/dev/null || die "osd.$id is not running"
    stop_names "$sig" 10 "osd.$id"
}

cmd_start_osd() {
    set_dir "${1:-}"
    load_env
    osd_arg "${2:-}"
    local id=$2
    [ "$STORE" = bluestore ] || die "osd.$id uses memstore, which lost its objects when it stopped; use --store bluestore"
    pid_of "osd.$id" >/dev/null && die "osd.$id is already running"
    pid_of mon.a >/dev/null || die "the mon is not running in $D"
    LOG=$D/log/start.log
    timeout_s=60
    deadline=$((SECONDS + timeout_s))
    spawn "osd.$id" ceph-osd -i "$id"
    local st
    while :; do
        st=$(admin osd-up "$id") || st=0
        [ "$st" = 1 ] && break
        if ! pid_of "osd.$id" >/dev/null; then
            echo "$prog: osd.$id exited (see $D/log/osd.$id.log)" >&2
            return 1
        fi
        if [ $SECONDS -ge "$deadline" ]; then
            stop_names TERM 10 "osd.$id" || true
            echo "$prog: osd.$id not up after $timeout_s s; stopped it" >&2
            return 1
        fi
        sleep 0.3
    done
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
status) shift; cmd_status "$@" ;;
env) shift; cmd_env "$@" ;;
kill-osd) shift; cmd_kill_osd "$@" ;;
start-osd) shift; cmd_start_osd "$@" ;;
add-pool) shift; cmd_add_pool "$@" ;;
rm-pool) shift; cmd_rm_pool "$@" ;;
-h | --help) usage ;;
*) bad_usage "unknown command '${1:-}'" ;;
esac
