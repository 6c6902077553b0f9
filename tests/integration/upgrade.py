#!/usr/bin/env python3
"""upgrade.py — a DATADIR made by an earlier release still opens, reads the
same and checks clean (docs/upgrade.md).

Usage: tests/integration/upgrade.py PATH/TO/vecfs [-k SUBSTRING]

tests/fixtures/store-v1.tar.gz holds two stores (plain, and encrypted
with the committed test key) made by scripts/make-fixture.py through a
real mount of the release that wrote format version 1;
store-v1.expect.json is what that release read back. store-v2.tar.gz and
store-v2.expect.json are the same made by the release that wrote format
version 2 (main at 8212278, VEC records of version 1 next to CONTENT_VEC
records); the current format is 3 (docs/upgrade.md). Each test unpacks a
fresh copy, mounts it with the vecfs under test and compares every
collection's names, bytes (sha256), xattrs, .config text and query results
(names, and distances within 1e-5 relative) with the expectation; then it
writes (a new vector that a query must find, an xattr), unmounts, runs
`vecfs check` (exit 0) and mounts once more to compare again.

The snapshots in the fixture are either loaded or, when a later build no
longer reads their format, rebuilt from the records: the tests compare
results, never whether a snapshot was reused. One test removes the
snapshots first and one marks them with another format version, so the
rebuild path is exercised whatever the format.

Uses daemon.py's runner: every mount is unmounted and every daemon killed
by pid on every exit path.
"""

import importlib.util
import json
import os
import signal
import struct
import subprocess
import sys
import tarfile

import daemon
from daemon import eq, start_fg, stop, write

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
SCRIPTS = os.path.join(HERE, "..", "..", "scripts")

spec = importlib.util.spec_from_file_location("make_fixture",
                                              os.path.join(SCRIPTS, "make-fixture.py"))
make_fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_fixture)


def expectation(fixture):
    with open(os.path.join(FIXTURES, fixture + ".expect.json")) as f:
        return json.load(f)


def unpack(t, fixture):
    with tarfile.open(os.path.join(FIXTURES, fixture + ".tar.gz")) as tar:
        tar.extractall(t)
    return t


def query_texts(colls):
    return {(c, q): v["text"] for c, cv in colls.items() for q, v in cv["queries"].items()}


def close(a, b):
    return abs(a - b) <= 1e-5 * max(1.0, abs(a), abs(b))


def compare(got, want, where):
    eq(sorted(got), sorted(want), "%s: collections" % where)
    for coll in want:
        g, w = got[coll], want[coll]
        eq(sorted(g["files"]), sorted(w["files"]), "%s/%s: names" % (where, coll))
        for name in w["files"]:
            eq(g["files"][name], w["files"][name], "%s/%s/%s: bytes and xattrs" % (where, coll, name))
        eq(g["config"], w["config"], "%s/%s/.config" % (where, coll))
        for qname, q in w["queries"].items():
            gr = g["queries"][qname]["result"]
            eq([h[0] for h in gr], [h[0] for h in q["result"]],
               "%s/%s/.query/%s: names" % (where, coll, qname))
            for (n, gd), (_, wd) in zip(gr, q["result"]):
                if not close(gd, wd):
                    raise AssertionError("%s/%s/.query/%s: distance of %s %r, want %r"
                                         % (where, coll, qname, n, gd, wd))


# 16 float32 (the pixels collection's dim), -0.0 included: read back must
# keep every bit.
ADDED_F32 = struct.pack("<16f", *([-0.0, 1.5, 2.25, -3.125] * 4))


def key_args(t, store, exp):
    return ["--key-file", os.path.join(t, exp["key"])] if store["key_file"] else []


def check_clean(d, args, what):
    r = subprocess.run([daemon.VECFS, "check", d] + args, capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise AssertionError("vecfs check %s: exit %d\n%s%s" % (what, r.returncode, r.stdout,
                                                                r.stderr))


# Filters a store from before the ordered metadata index answers by the
# index its first writable open builds (store/vidx.c; the record walk in
# an encrypted store), each a predicate on the expected xattrs.
FILTERS = [
    ("lang > de and lang <= fr", lambda x: "de" < x.get("user.lang", "") <= "fr"),
    ("exists tags", lambda x: "user.tags" in x),
    ("title >= 'word number 2' and not lang = fr",
     lambda x: x.get("user.title", "") >= "word number 2" and x.get("user.lang") != "fr"),
    ("lang != en", lambda x: "user.lang" in x and x["user.lang"] != "en"),
]


def compare_filters(m, files):
    for text, pred in FILTERS:
        want = sorted(n for n, f in files.items() if pred(f["xattrs"]))
        hits = make_fixture.query(m, "words", "f.txt",
                                  "k = 100\nfilter = %s\n%s\n" % (text, " ".join(["0"] * 8)))
        eq(sorted(h[0] for h in hits), want, "words: filter %s" % text)
        if not want:
            raise AssertionError("filter %s passes nothing: it tests nothing" % text)


def mount_and_compare(t, name, drop_snapshots=False, snapshot_version=None, fixture="store-v1"):
    exp = expectation(fixture)
    store = exp["stores"][name]
    unpack(t, fixture)
    d, m = os.path.join(t, name), os.path.join(t, "m")
    if drop_snapshots:
        snaps = [f for f in os.listdir(d) if f.startswith("snap-")]
        if not snaps:
            raise AssertionError("the fixture holds no snapshot")
        for f in snaps:
            os.unlink(os.path.join(d, f))
    if snapshot_version is not None:
        # A snapshot header names its format version in the u32 at byte 8.
        snaps = [f for f in os.listdir(d) if f.startswith("snap-")]
        for f in snaps:
            with open(os.path.join(d, f), "r+b") as fh:
                fh.seek(8)
                fh.write(snapshot_version.to_bytes(4, "little"))
    args = key_args(t, store, exp)
    want = store["collections"]
    texts = query_texts(want)
    p = start_fg(*(args + [d, m]))
    try:
        compare(make_fixture.snapshot(m, texts), want, name)
        compare_filters(m, want["words"]["files"])
        # The opened store takes writes: a new vector is found by a query,
        # an xattr is kept.
        words = os.path.join(m, "words")
        write(os.path.join(words, "added"), "9 9 9 9 9 9 9 9\n")
        os.setxattr(os.path.join(words, "added"), "user.lang", b"en")
        hits = make_fixture.query(m, "words", "added.txt", "k = 1\n9 9 9 9 9 9 9 9\n")
        eq(hits[0][0], "added", "nearest to the added vector")
        # A binary vector written now is stored the format-2 way (its
        # content is its vector, store/content.c), next to the fixture's
        # format-1 contents, and reads back byte for byte.
        with open(os.path.join(m, "pixels", "added.f32"), "wb") as f:
            f.write(ADDED_F32)
        with open(os.path.join(m, "pixels", "added.f32"), "rb") as f:
            eq(f.read(), ADDED_F32, "pixels/added.f32 read back")
    finally:
        eq(stop(p, m), 0, "exit status after SIGTERM")
    check_clean(d, args, name)
    p = start_fg(*(args + [d, m]))
    try:
        got = make_fixture.snapshot(m, texts)
        eq(got["words"]["files"]["added"]["xattrs"], {"user.lang": "en"}, "xattr after remount")
        del got["words"]["files"]["added"]
        with open(os.path.join(m, "pixels", "added.f32"), "rb") as f:
            eq(f.read(), ADDED_F32, "pixels/added.f32 after remount")
        del got["pixels"]["files"]["added.f32"]
        for q in got["pixels"]["queries"].values():
            q["result"] = [h for h in q["result"] if h[0] != "added.f32"]
        for qname, q in want["pixels"]["queries"].items():
            got["pixels"]["queries"][qname]["result"] = \
                got["pixels"]["queries"][qname]["result"][:len(q["result"])]
        # The added vector may now be among the words queries' neighbours:
        # compare those without it.
        for q in got["words"]["queries"].values():
            q["result"] = [h for h in q["result"] if h[0] != "added"]
        for qname, q in want["words"]["queries"].items():
            got["words"]["queries"][qname]["result"] = \
                got["words"]["queries"][qname]["result"][:len(q["result"])]
        compare(got, want, name + " after a write and a remount")
        added = dict(want["words"]["files"], added={"xattrs": {"user.lang": "en"}})
        compare_filters(m, added)
    finally:
        eq(stop(p, m), 0, "exit status after SIGTERM")


def test_fixture_plain(t):
    mount_and_compare(t, "plain")


def test_fixture_encrypted(t):
    mount_and_compare(t, "encrypted")


def test_fixture_snapshots_removed(t):
    mount_and_compare(t, "plain", drop_snapshots=True)


def checks_clean_as_shipped(t, fixture):
    exp = expectation(fixture)
    unpack(t, fixture)
    for name, store in exp["stores"].items():
        check_clean(os.path.join(t, name), key_args(t, store, exp), name + " as shipped")
    # The expectation is not empty: the comparison has something to fail on.
    colls = exp["stores"]["plain"]["collections"]
    if len(colls["words"]["files"]) < 20 or len(colls["pixels"]["files"]) < 20:
        raise AssertionError("the expectation lists too few vectors")
    if not all(q["result"] for c in colls.values() for q in c["queries"].values()):
        raise AssertionError("a recorded query has no result")


def test_fixture_checks_clean_as_shipped(t):
    checks_clean_as_shipped(t, "store-v1")


def test_fixture_snapshot_of_another_version(t):
    mount_and_compare(t, "encrypted", snapshot_version=99)


def test_fixture_v2_checks_clean_as_shipped(t):
    checks_clean_as_shipped(t, "store-v2")


def test_fixture_v2_plain(t):
    mount_and_compare(t, "plain", fixture="store-v2")


def test_fixture_v2_encrypted(t):
    mount_and_compare(t, "encrypted", fixture="store-v2")


TESTS = [test_fixture_checks_clean_as_shipped, test_fixture_plain, test_fixture_encrypted,
         test_fixture_snapshots_removed, test_fixture_snapshot_of_another_version,
         test_fixture_v2_checks_clean_as_shipped, test_fixture_v2_plain,
         test_fixture_v2_encrypted]

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(daemon.main(TESTS, __doc__))
