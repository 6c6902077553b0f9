#!/usr/bin/env python3
"""rados-join.py — join time of a RADOS-mode node from an empty CACHEDIR
(docs/scale-out.md §7), from a checkpoint against from a full log replay.

Starts a throwaway cluster (scripts/ceph-cluster.sh, memstore, 3 OSDs,
pool size 2). In two namespaces of the pool a writer node A writes N
vector files (dimension 32) one after the other: namespace `ckpt` with
--rados-ckpt-entries N/10 (so a checkpoint covers nearly all of them),
namespace `replay` with checkpoints off in effect (--rados-ckpt-entries
100000000). Then, ROUNDS times and alternating, a node B with an empty
CACHEDIR is started on each namespace and timed from exec to its mount
being served (the mount is served only once caught up to the head). Prints
every figure raw and, with --json FILE, writes them.

Usage: bench/rados-join.py VECFS CEPH_CLUSTER_SH [N] [ROUNDS] [--json FILE]
Everything it started is stopped (daemons by unmount and wait, the cluster
by its pid files) on every exit path.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def mount(vecfs, conf, ns, extra, cache, mnt, procs):
    os.makedirs(cache, exist_ok=True)
    os.makedirs(mnt, exist_ok=True)
    t0 = time.monotonic()
    p = subprocess.Popen([vecfs, "-f", "--rados-conf", conf, "--rados-pool", "vecfs",
                          "--rados-namespace", ns] + extra + [cache, mnt],
                         stderr=subprocess.DEVNULL)
    procs.append((p, mnt))
    while not os.path.ismount(mnt):
        if p.poll() is not None or time.monotonic() - t0 > 300:
            raise RuntimeError("node on %s did not mount" % ns)
        time.sleep(0.005)
    return time.monotonic() - t0


def unmount(procs, p, mnt):
    subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
    p.wait(timeout=60)
    procs.remove((p, mnt))


def ckpt_of(vecfs, conf, ns):
    r = subprocess.run([vecfs, "check", "--rados-conf", conf, "--rados-pool", "vecfs",
                        "--rados-namespace", ns], capture_output=True, timeout=120)
    w = r.stdout.decode().split()
    return int(w[w.index("head") + 1]), int(w[w.index("ckpt") + 1])


def main(argv):
    out_json = None
    if "--json" in argv:
        i = argv.index("--json")
        out_json = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) not in (3, 4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    vecfs, sh = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    n = int(argv[3]) if len(argv) >= 4 else 2000
    rounds = int(argv[4]) if len(argv) == 5 else 3
    tmp = tempfile.mkdtemp(prefix="vecfs-rados-join-")
    procs = []
    modes = {"ckpt": ["--rados-ckpt-entries", str(max(1, n // 10))],
             "replay": ["--rados-ckpt-entries", "100000000"]}
    try:
        subprocess.run(["bash", sh, "start", tmp + "/cl", "--size", "2"], check=True,
                       capture_output=True)
        conf = tmp + "/cl/ceph.conf"
        res = {"n": n, "rounds": rounds}
        for ns, extra in modes.items():
            mount(vecfs, conf, ns, extra, tmp + "/a-" + ns, tmp + "/ma-" + ns, procs)
            os.mkdir(tmp + "/ma-%s/c" % ns)
            t0 = time.monotonic()
            for i in range(n):
                with open(tmp + "/ma-%s/c/v%d" % (ns, i), "w") as f:
                    f.write(" ".join(str((i * 7 + j) % 13 - 6) for j in range(32)) + "\n")
            res["write_s_" + ns] = time.monotonic() - t0
            deadline = time.monotonic() + 60
            while ns == "ckpt" and n + 1 - ckpt_of(vecfs, conf, ns)[1] >= n // 10:
                if time.monotonic() > deadline:
                    raise RuntimeError("no checkpoint near the head in 60 s")
                time.sleep(0.5)
            res["head_ckpt_" + ns] = ckpt_of(vecfs, conf, ns)
        for ns in modes:
            res["join_s_" + ns] = []
        for r in range(rounds):
            for ns, extra in modes.items():
                cache, mnt = tmp + "/b-" + ns, tmp + "/mb-" + ns
                shutil.rmtree(cache, ignore_errors=True)
                took = mount(vecfs, conf, ns, extra, cache, mnt, procs)
                names = [x for x in os.listdir(mnt + "/c") if x.startswith("v")]
                if len(names) != n:
                    raise RuntimeError("joined node on %s lists %d vectors" % (ns, len(names)))
                res["join_s_" + ns].append(took)
                unmount(procs, *procs[-1])
        print("N=%d (head, ckpt) %r / %r; join from empty cache s: checkpoint %s; log replay %s"
              % (n, res["head_ckpt_ckpt"], res["head_ckpt_replay"],
                 " ".join("%.2f" % x for x in res["join_s_ckpt"]),
                 " ".join("%.2f" % x for x in res["join_s_replay"])))
        if out_json:
            with open(out_json, "w") as f:
                json.dump(res, f, indent=1)
    finally:
        for p, m in list(procs):
            subprocess.run(["fusermount3", "-u", m], capture_output=True)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["bash", sh, "stop", tmp + "/cl"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
