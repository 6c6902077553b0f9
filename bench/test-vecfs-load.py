#!/usr/bin/env python3
"""test-vecfs-load.py — the load test's own test (meson suite `bench`).

Usage: bench/test-vecfs-load.py PATH/TO/vecfs-load PATH/TO/vecfs

1. The record comparison finds each kind of damage: on a plain directory
   made to differ from a record in known ways, verify() counts exactly one
   lost, changed (content and tag), resurrected and unexpected name; and
   a query result that is malformed or not nearest first is an error.
2. A short run (3 readers, 2 writers, 3 s, a hot backup) on a small random
   collection through a real mount exits 0, and its JSON shows work of
   every kind and zero errors, short results, lost, changed, resurrected
   and unexpected vectors, a clean `vecfs check` and a backup that
   restores and checks clean.
3. A vecfs that cannot mount makes it exit 1 with one line on stderr.
Every run uses its own --workdir, which must be empty afterwards (nothing
left behind), and no mount of it may remain.

Exits 77 (skip) without /dev/fuse or fusermount3.
"""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile


def load_module(path):
    loader = importlib.machinery.SourceFileLoader("vecfs_load", path)
    spec = importlib.util.spec_from_loader("vecfs_load", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def check_checkers(mod, tmp):
    d = os.path.join(tmp, "tree")
    os.mkdir(d)
    files = {"same": b"A", "edited": b"B", "retagged": b"C", "back": b"D", "stray": b"E"}
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    tagged = True
    try:
        os.setxattr(os.path.join(d, "retagged"), mod.TAG, b"new")
        os.setxattr(os.path.join(d, "same"), mod.TAG, b"t")
    except OSError:  # a tmpfs without user xattrs: content checks only
        tagged = False
    expected = {"same": (b"A", "t" if tagged else None), "edited": (b"b", None),
                "retagged": (b"C", "old" if tagged else None), "gone": (b"F", None)}
    res = mod.verify(d, expected, deleted={"back"}, unknown=set())
    want = {"lost": 1, "changed": 2 if tagged else 1, "resurrected": 1, "unexpected": 1}
    got = {k: res[k] for k in want}
    assert got == want, (got, want, res["examples"])
    print("verify: finds lost, changed, resurrected, unexpected (%s)" % res["examples"])

    assert mod.checked_hits(mod.text_hits(b"a\t0.25\nb\t0.25\nc\t1.5\n")) == 3
    for bad in (b"a\t0.5\nb\t0.25\n", b"a\t0.25", b"\t0.25\n", b"a\tx\n"):
        try:
            mod.checked_hits(mod.text_hits(bad))
        except ValueError:
            continue
        raise AssertionError("result %r passed the result check" % bad)
    print("results: a malformed or unsorted result is an error")


def no_leftovers(workdir):
    left = os.listdir(workdir)
    assert not left, "left behind in the workdir: %s" % left
    with open("/proc/mounts") as f:
        assert workdir not in f.read(), "a mount under the workdir remains"


def main():
    load, vecfs = os.path.realpath(sys.argv[1]), sys.argv[2]
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        print("vecfs-load smoke: no /dev/fuse or fusermount3, skipped")
        return 77
    tmp = tempfile.mkdtemp(prefix="test-vecfs-load-")
    try:
        check_checkers(load_module(load), tmp)

        work = os.path.join(tmp, "work")
        os.mkdir(work)
        out = os.path.join(tmp, "out.json")
        r = subprocess.run([sys.executable, load, "--vecfs", vecfs, "--dim", "16", "--rows", "500",
                            "--readers", "3", "--writers", "2", "--seconds", "3", "--backup",
                            "--seed", "7", "--workdir", work, "--json", out],
                           capture_output=True, text=True, timeout=600)
        print(r.stdout)
        assert r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr)
        no_leftovers(work)
        rep = json.load(open(out))
        assert rep["ok"] is True
        assert rep["config"]["rows"] == 500 and rep["config"]["dim"] == 16
        assert all(v == 0 for v in rep["counts"].values()), rep["counts"]
        ops = {o["kind"]: o for o in rep["ops"]}
        kinds = ["open", "shell", "insert", "overwrite", "delete", "setxattr"]
        if rep["fast_path"] == "available":
            kinds.append("fast")
        else:
            assert rep["fast_path"].startswith("unavailable: "), rep["fast_path"]
            assert ops["fast"]["count"] == 0
        for k in kinds:
            o = ops[k]
            assert o["count"] > 0 and o["errors"] == 0 and o["short"] == 0, o
            assert 0 < o["p50_ms"] <= o["p99_ms"] <= o["max_ms"], o
        assert rep["totals"]["queries"]["short"] == 0
        gc = rep["commits"]  # the writers committed, each commit took time
        assert gc["commits"] > 0 and gc["ops"] >= gc["commits"] and gc["ms_per_commit"] > 0, gc
        v = rep["verify"]
        assert v["names_checked"] >= 10 and v["lost"] == v["changed"] == v["resurrected"] == v["unexpected"] == 0, v
        assert rep["check"]["rc"] == 0 and rep["check"]["daemon_rc"] == 0, rep["check"]
        b = rep["backup"]
        assert b["ok"] and b["backup"]["rc"] == b["restore"]["rc"] == b["check"]["rc"] == 0, b

        r = subprocess.run([sys.executable, load, "--vecfs", "/bin/false", "--dim", "4", "--rows", "20",
                            "--seconds", "1", "--workdir", work], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, (r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vecfs-load: vecfs exited with 1"), lines
        no_leftovers(work)
        print("vecfs-load smoke: ok")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
