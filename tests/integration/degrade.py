#!/usr/bin/env python3
"""degrade.py — vecfs when something runs out (issue 12 item 3), through
real mounts: a store at its --max-size bound and a DATADIR whose
filesystem is full. Writes must fail with ENOSPC and change nothing, reads
and queries must keep answering, .vecfs/health, /readyz and the metrics
must say why, and writes must work again once space returns, without a
remount; `vecfs check` stays clean.

Usage: tests/integration/degrade.py PATH/TO/vecfs [-k SUBSTRING]

Uses daemon.py's runner (every mount unmounted, every daemon killed by
pid). The full-filesystem case mounts a small tmpfs, so it needs root; it
reports SKIP without it.
"""

import os
import random
import signal
import subprocess
import sys

import daemon
from daemon import eq, free_port, http_get, run, start_fg, stop, write

DIM = 256


def vector_text(rng):
    return " ".join("%.6f" % rng.random() for _ in range(DIM)) + "\n"


def fill(coll, rng):
    """Writes vectors until one fails; returns the names written and the
    error of the one that failed (its name was never listed)."""
    names = []
    while len(names) < 200000:
        name = "v%d" % len(names)
        try:
            write(os.path.join(coll, name), vector_text(rng))
        except OSError as e:
            return names, name, e
        names.append(name)
    raise AssertionError("200,000 vectors fit: the store never filled up")


def tree(coll):
    """Names and bytes of every vector of a collection."""
    out = {}
    for n in os.listdir(coll):
        if n.startswith("."):
            continue
        with open(os.path.join(coll, n)) as f:
            out[n] = f.read()
    return out


def read_admin(m, name):
    with open(os.path.join(m, ".vecfs", name)) as f:
        return f.read()


def assert_full_and_serving(m, coll, before, failed, cause):
    """The state while full: more writes fail with ENOSPC and change
    nothing, queries answer k, health and metrics name the cause."""
    rng = random.Random(7)
    for i in range(3):
        try:
            write(os.path.join(coll, "more%d" % i), vector_text(rng))
            raise AssertionError("a write into a full store succeeded")
        except OSError as e:
            eq(e.errno, 28, "errno of a write into a full store")
    eq(tree(coll), before, "the tree after refused writes")
    if failed in os.listdir(coll):
        raise AssertionError("the refused vector %s is listed" % failed)
    q = os.path.join(coll, ".query", "q")
    write(q, "k = 10\n" + vector_text(rng))
    with open(q) as f:
        hits = [l.split("\t")[0] for l in f.read().splitlines() if l and not l.startswith("#")]
    eq(len(hits), 10, "hits of a query into a full store")
    if not set(hits) <= set(before):
        raise AssertionError("a query named vectors that are not there: %r" % hits)
    health = read_admin(m, "health")
    if not health.startswith(cause):
        raise AssertionError("health of a full store: %r" % health)
    if "\nvecfs_health_ok 0\n" not in read_admin(m, "metrics"):
        raise AssertionError("metrics of a full store do not say health is not ok")


def check_clean(d):
    r = run(["check", d])
    eq(r.returncode, 0, "vecfs check after the test: %s%s" % (r.stdout, r.stderr))


def test_store_at_its_bound(t):
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    port = free_port()
    p = start_fg("--max-size", "1M", "--metrics-listen", "127.0.0.1:%d" % port, d, m)
    try:
        coll = os.path.join(m, "c")
        os.mkdir(coll)
        names, failed, err = fill(coll, random.Random(1))
        eq(err.errno, 28, "errno when the bound is reached")
        before = tree(coll)
        eq(sorted(before), sorted(names), "the tree when the bound is reached")
        assert_full_and_serving(m, coll, before, failed, "store full: ")
        status, body = http_get("http://127.0.0.1:%d/readyz" % port)
        if status != 503 or "store full" not in body:
            raise AssertionError("/readyz of a full store: %d %r" % (status, body))
        # Deletes still work at the bound (LMDB has a reserve above it)
        # and give the room back: writes resume without a remount.
        for n in names[:50]:
            os.unlink(os.path.join(coll, n))
        eq(read_admin(m, "health"), "ok\n", "health after deletes")
        write(os.path.join(coll, "again"), vector_text(random.Random(2)))
        eq(http_get("http://127.0.0.1:%d/readyz" % port)[0], 200, "/readyz after deletes")
    finally:
        stop(p, m)
    check_clean(d)


def test_filesystem_full(t):
    if os.geteuid() != 0:
        print("SKIP test_filesystem_full: mounting a tmpfs needs root")
        return
    fs, m = os.path.join(t, "fs"), os.path.join(t, "m")
    os.makedirs(fs)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", fs], check=True)
    try:
        d = os.path.join(fs, "d")
        p = start_fg(d, m)
        try:
            coll = os.path.join(m, "c")
            os.mkdir(coll)
            names, failed, err = fill(coll, random.Random(1))
            eq(err.errno, 28, "errno when the filesystem is full")
            before = tree(coll)
            eq(sorted(before), sorted(names), "the tree when the filesystem is full")
            assert_full_and_serving(m, coll, before, failed, "disk full: ")
            # An operator frees space (here: grows the tmpfs); the mount
            # notices by itself.
            subprocess.run(["mount", "-o", "remount,size=8m", fs], check=True)
            eq(read_admin(m, "health"), "ok\n", "health once space returned")
            write(os.path.join(coll, "again"), vector_text(random.Random(2)))
            eq(tree(coll), dict(before, again=vector_text(random.Random(2))),
               "the tree after space returned")
        finally:
            stop(p, m)
        check_clean(d)
    finally:
        daemon.unmount(m)
        subprocess.run(["umount", fs])


TESTS = [test_store_at_its_bound, test_filesystem_full]

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(daemon.main(TESTS, __doc__))
