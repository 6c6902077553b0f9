#!/usr/bin/env python3
"""dr_drill.py — scripts/dr-drill.py on a small store (issue 12 item 5).

Usage: tests/integration/dr_drill.py PATH/TO/vecfs [-k SUBSTRING]

The drill backs up a mounted store while writers run, restores it, checks
it, mounts it and compares both mounts. Here it must pass and report a
plausible RPO and RTO; and a restored mount that lost a vector, whose xattr
changed, or whose .config changed must make it fail, naming what differs
(so the comparison can fail). Uses daemon.py's runner; the drill stops its
own daemons by pid.
"""

import glob
import importlib.util
import json
import os
import signal
import sys

import daemon
from daemon import eq

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                      "dr-drill.py")
spec = importlib.util.spec_from_file_location("dr_drill_script", SCRIPT)
drill = importlib.util.module_from_spec(spec)
spec.loader.exec_module(drill)

SMALL = ["--vectors", "600", "--collections", "2", "--dim", "8", "--lead", "0.3",
         "--tail", "0.3", "--queries", "3"]


def run_drill(t, args, drill_class=drill.Drill):
    """The drill with its workdir in t; its daemons' logs join the ones
    daemon.py scans for sanitizer reports."""
    rc = drill.main(["--vecfs", daemon.VECFS, "--workdir", os.path.join(t, "w"),
                     "--json", os.path.join(t, "drill.json")] + args + SMALL, drill_class)
    daemon.LOGS.extend(glob.glob(os.path.join(t, "w", "m*.log")))
    with open(os.path.join(t, "drill.json")) as f:
        return rc, json.load(f)


def test_drill_passes_and_measures(t):
    rc, r = run_drill(t, [])
    eq((rc, r["ok"], r["mismatches"]), (0, True, []), "drill result")
    eq(r["check"]["exit"], 0, "vecfs check of the restored store")
    eq(r["compared"]["collections"], 4, "collections compared (2 + 2 writers)")
    if r["compared"]["vectors"] < 600 + 2 * 25 or r["compared"]["queries"] < 6:
        raise AssertionError("compared too little: %r" % r["compared"])
    rto = r["rto"]
    parts = rto["restore_s"] + rto["check_s"] + rto["mount_s"] + rto["first_query_s"]
    if not 0 < parts <= rto["total_s"] + 1e-3:
        raise AssertionError("RTO parts do not add up: %r" % rto)
    rpo = r["rpo"]
    lo, hi = rpo["pit_after_backup_start_s"]
    if not 0 <= lo <= hi <= r["backup"]["seconds"] + 1e-6:
        raise AssertionError("the point in time is not inside the backup: %r" % rpo)
    for w in r["writers"]:
        # The writers had done work before the backup; the backup holds at
        # least that, and at most what had returned by its end.
        if w["committed_before_backup_start"] < 3:
            raise AssertionError("writer %s: too little work before the backup" % w)
        if not w["committed_before_backup_start"] <= w["in_backup"] <= w["operations"]:
            raise AssertionError("writer %s: backup holds an impossible amount" % w)
    if daemon.mounted(os.path.join(t, "w", "m2")) or daemon.mounted(os.path.join(t, "w", "m1")):
        raise AssertionError("the drill left a mount behind")


class TamperedDrill(drill.Drill):
    """Changes the restored mount before the comparison."""

    def restore_and_mount(self, backup, ref):
        d2, m2 = super().restore_and_mount(backup, ref)
        c = os.path.join(m2, "c1")
        os.unlink(os.path.join(c, "b0-5.f32"))
        os.setxattr(os.path.join(c, "t3.txt"), "user.label", b"changed")
        with open(os.path.join(m2, "c0", ".config"), "w") as f:
            f.write("ef_search = 99\n")
        return d2, m2


def test_drill_fails_on_a_damaged_restore(t):
    rc, r = run_drill(t, ["--tar"], TamperedDrill)
    eq((rc, r["ok"]), (1, False), "drill result on a damaged restore")
    text = "\n".join(r["mismatches"])
    for want in ("c1: names differ", "b0-5.f32", "c1/t3.txt: xattrs differ",
                 "c0/.config: bytes differ"):
        if want not in text:
            raise AssertionError("mismatch %r not reported in %r" % (want, text))
    if not r["backup"]["path"].endswith("backup.tar"):
        raise AssertionError("--tar did not back up into a tar file: %r" % r["backup"])


TESTS = [test_drill_passes_and_measures, test_drill_fails_on_a_damaged_restore]

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(daemon.main(TESTS, __doc__))
