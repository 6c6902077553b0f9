#!/usr/bin/env python3
"""rados_seal.py — the RADOS mode with --key-file and --read-only
(docs/scale-out.md §3, §11; docs/security.md) on real mounts against a
real local Ceph cluster (scripts/ceph-cluster.sh; never a mock).

Usage: tests/integration/rados_seal.py PATH/TO/vecfs PATH/TO/scripts/ceph-cluster.sh [-k SUBSTRING]

One cluster (memstore, 3 OSDs, pool size 2); each test uses its own
namespace of the pool, so each has its own log:

  * sealed: nodes A and B with a passphrase key file; a vector with a known
    collection name, name, content, float bytes and xattr value, and an
    .fvecs batch over 64 KiB (a blob) written on A are byte-exact on B;
    once a checkpoint and the blob exist, every byte of every object of the
    namespace (object data via `rados get`, every omap key and value of
    vecfs.head via `rados getomapval`) holds none of those needles, while
    the same writes in a log without a key are found by the same search;
    a node C with an empty cache and the key joins from the checkpoint;
  * refused: a wrong passphrase, a raw key, no key on the sealed log, a key
    on the log without one: exit 1, one line on stderr naming the reason,
    the namespace's objects and omap unchanged, no store in the cache;
  * check: `vecfs check --rados-* --key-file` is clean and says the log is
    sealed; without the key it cannot run (exit 2); `vecfs backup` with the
    key copies it; an entry's value copied to another seq of the log, or to
    the same seq of another namespace's log sealed with the same key, does
    not authenticate (exit 1);
  * races: two keyed nodes writing the same and different names at once,
    small entries and sealed blobs, end in one state and the log checks
    clean;
  * read-only: a --read-only node on a namespace with no log refuses to
    start and creates nothing; one on a log serves what A wrote (within the
    promised second), answers the same queries, refuses every write with
    EROFS and appends nothing, takes no checkpoint lease and writes no
    checkpoint (--rados-ckpt-entries 1), and its cache checks clean.

Every mount is unmounted, every daemon and the cluster stopped by pid on
every exit path. Exits 77 without /dev/fuse or the Ceph binaries.
"""

import errno
import hashlib
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the Mount class and helpers of the filesystem suite)
from ceph_env import test_main  # noqa: E402
from run import Fail, check, eq, expect_errno, parse_result, query, read_file, write_file  # noqa: E402

VECFS = CLUSTER_SH = TMP = CONF = None
POOL = "vecfs"
VISIBLE_S = 1.0  # the promised bound (scale-out.md §1)
CKPT_N = 10  # --rados-ckpt-entries of the sealed nodes: a checkpoint comes soon

# What must not be readable anywhere in a sealed namespace.
COLL = "zebracollection"
NAME = "ultrasecretvector"
XVAL = b"magentapayload"
VEC = [3.1415927, -2.7182817, 1.4142135, 0.5772157, 299.792458, -6.6743, 1.6021766, 9.1093837]
TEXT = " ".join("%.7g" % x for x in VEC) + "\n"
BULK_DIM, BULK_ROWS = 64, 600  # 155 KB of .fvecs: over 64 KiB, so a blob


def bulk_rows():
    return [[(i * 131 + j * 17) % 1000 / 7.0 + 0.123 for j in range(BULK_DIM)]
            for i in range(BULK_ROWS)]


def needles():
    """{label: bytes} searched in every byte of the namespace."""
    return {"collection name": COLL.encode(), "vector name": NAME.encode(),
            "xattr value": XVAL, "content text": TEXT.encode(),
            # The vector as the node parses TEXT, in float32.
            "vector float bytes": struct.pack("<%df" % len(VEC), *map(float, TEXT.split())),
            "batch row floats": struct.pack("<%df" % BULK_DIM, *bulk_rows()[7])}


def opts(ns):
    return ["--rados-conf", CONF, "--rados-pool", POOL, "--rados-namespace", ns]


def key_file(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def node(name, ns, extra=()):
    return run.Mount(VECFS, os.path.join(TMP, "cache-" + name), os.path.join(TMP, "mnt-" + name),
                     TMP, opts=opts(ns) + list(extra))


def rados_cli(ns, *args, check_rc=True):
    r = subprocess.run(["rados", "-c", CONF, "-p", POOL, "-N", ns] + list(args),
                       capture_output=True, timeout=60)
    if check_rc and r.returncode != 0:
        raise Fail("rados %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r


def objects(ns):
    return sorted(rados_cli(ns, "ls").stdout.decode().split())


def omap(ns):
    """{key: value} of vecfs.head's omap, every value read raw."""
    out = {}
    for k in rados_cli(ns, "listomapkeys", "vecfs.head").stdout.decode().split():
        path = os.path.join(TMP, "omapval")
        rados_cli(ns, "getomapval", "vecfs.head", k, path)
        with open(path, "rb") as f:
            out[k] = f.read()
    return out


def pool_bytes(ns):
    """[(what, bytes)]: every object's data and every omap key and value."""
    out = []
    for o in objects(ns):
        path = os.path.join(TMP, "object")
        rados_cli(ns, "get", o, path)
        with open(path, "rb") as f:
            out.append((o, f.read()))
    for k, v in omap(ns).items():
        out.append(("vecfs.head omap " + k, k.encode() + b"\0" + v))
    return out


def found(ns):
    """{needle label: [where]} for every needle found in the namespace."""
    hits = {}
    for what, data in pool_bytes(ns):
        for label, n in needles().items():
            if n in data:
                hits.setdefault(label, []).append(what)
    return hits


def wait_for(fn, what, bound=VISIBLE_S):
    t0 = time.monotonic()
    while True:
        try:
            if fn():
                return time.monotonic() - t0
        except OSError:
            pass
        if time.monotonic() - t0 > bound:
            raise Fail("%s: not within %.1f s" % (what, bound))
        time.sleep(0.005)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def vecfs(*args, timeout=120):
    return subprocess.run([VECFS] + list(args), capture_output=True, timeout=timeout)


def check_log(ns, key=None):
    """(exit status, report + stderr, {head, trim}) of vecfs check --rados-*."""
    r = vecfs("check", *opts(ns), *(["--key-file", key] if key else []))
    out = r.stdout.decode()
    words = out.split()
    fields = {k: int(words[words.index(k) + 1]) for k in ("head", "trim") if k in words}
    return r.returncode, out + r.stderr.decode(), fields


def write_needles(m):
    """The needle writes on node m: a collection, a vector with content and
    xattr, and an .fvecs batch over 64 KiB."""
    c = os.path.join(m.mnt, COLL)
    os.mkdir(c)
    write_file(os.path.join(c, NAME), TEXT)
    os.setxattr(os.path.join(c, NAME), "user.colour", XVAL)
    b = os.path.join(m.mnt, "bulk")
    os.mkdir(b)
    write_file(os.path.join(b, ".config"), "dim = %d\nmetric = l2\n" % BULK_DIM)
    data = b"".join(struct.pack("<i", BULK_DIM) + struct.pack("<%df" % BULK_DIM, *r)
                    for r in bulk_rows())
    write_file(os.path.join(b, ".import", "rows.fvecs"), data)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def sealed(ctx):
    key = ctx["key"]
    extra = ["--key-file", key, "--rados-ckpt-entries", str(CKPT_N), "--rados-ckpt-lease", "3"]
    a, b = node("a", "sealed", extra), node("b", "sealed", extra)
    ctx["a"], ctx["b"] = a, b
    a.start()
    b.start()
    check("seal" in omap("sealed"), "vecfs.head has a seal record")
    write_needles(a)
    pb = os.path.join(b.mnt, COLL, NAME)
    wait_for(lambda: os.getxattr(pb, "user.colour") == XVAL, "the vector and its xattr on B")
    eq(read_file(pb), TEXT.encode(), "content on B")
    # bulk is made after the needle: B may see the needle first.
    wait_for(lambda: os.path.isdir(os.path.join(b.mnt, "bulk")), "the batch's collection on B")
    fsync_dir(os.path.join(b.mnt, "bulk"))
    eq(len(os.listdir(os.path.join(b.mnt, "bulk"))) - 1, BULK_ROWS, "batch rows on B")
    blobs = [o for o in objects("sealed") if o.startswith("vecfs.blob.")]
    check(blobs, "the batch went to a blob: %r" % objects("sealed"))
    # Enough entries for a checkpoint (both the LMDB copy and snapshots).
    for i in range(CKPT_N + 2):
        write_file(os.path.join(a.mnt, COLL, "w%02d" % i), TEXT)
    wait_for(lambda: any(o.startswith("vecfs.ckpt.") for o in objects("sealed")),
             "a checkpoint in the pool", bound=60)
    # The newest checkpoint is published once its manifest is there.
    wait_for(lambda: any(k.startswith("c.") for k in omap("sealed")), "a published checkpoint",
             bound=30)
    objs = objects("sealed")
    check(any(o.startswith("vecfs.blob.") for o in objs), "the blob is still there: %r" % objs)
    entries = [k for k in omap("sealed") if k.startswith("e.")]
    check(entries, "entries in the log")
    hits = found("sealed")
    eq(hits, {}, "needles readable in the sealed namespace")
    print("  searched %d objects and %d entries of the sealed log: no needle found"
          % (len(objs), len(entries)))
    # The same writes in a log without a key: the search finds them.
    p = node("p", "plain")
    p.start()
    try:
        write_needles(p)
    finally:
        eq(p.stop(), 0, "exit status of the plain node")
    hits = found("plain")
    for label in ("collection name", "vector name", "xattr value", "content text",
                  "vector float bytes", "batch row floats"):
        check(label in hits, "the search finds the %s in the plain log: %r" % (label, hits))
    # A node with an empty cache joins from the checkpoint, with the key.
    c = node("c", "sealed", extra)
    c.start()
    try:
        fsync_dir(c.mnt)
        eq(read_file(os.path.join(c.mnt, COLL, NAME)), TEXT.encode(), "content on C")
        eq(os.getxattr(os.path.join(c.mnt, COLL, NAME), "user.colour"), XVAL, "xattr on C")
        eq(len(os.listdir(os.path.join(c.mnt, "bulk"))) - 1, BULK_ROWS, "batch rows on C")
        with open(os.path.join(c.mnt, ".vecfs", "stats")) as f:
            check('"encrypted": true' in f.read().replace('":true', '": true'),
                  "C's stats say encrypted")
    finally:
        eq(c.stop(), 0, "exit status of C")
    with open(c.log_path, errors="replace") as f:
        check("loaded checkpoint" in f.read(), "C joined from a checkpoint")
    for k in ("a", "b"):
        eq(ctx.pop(k).stop(), 0, "exit status of node " + k)
    for cache in ("cache-a", "cache-b", "cache-c"):
        r = vecfs("check", os.path.join(TMP, cache), "--key-file", key)
        eq(r.returncode, 0, "vecfs check %s: %s%s" % (cache, r.stdout.decode(), r.stderr.decode()))


def refused(ctx):
    raw = key_file("raw.key", bytes(range(32)))
    wrong = key_file("wrong.key", b"not the passphrase\n")
    before = {ns: pool_bytes(ns) for ns in ("sealed", "plain")}
    for ns, kf, words in (
            ("sealed", wrong, "wrong key for the log in pool '%s' (it was sealed with a "
                              "passphrase)" % POOL),
            ("sealed", raw, "wrong key for the log in pool '%s'" % POOL),
            ("sealed", None, "is sealed: a key is needed (--key-file)"),
            ("plain", ctx["key"], "is not sealed but a key was given")):
        cache = tempfile.mkdtemp(dir=TMP, prefix="cache-refused-")
        mnt = os.path.join(TMP, "mnt-refused")
        os.makedirs(mnt, exist_ok=True)
        r = vecfs(*opts(ns), *(["--key-file", kf] if kf else []), cache, mnt, timeout=60)
        err = r.stderr.decode().strip()
        eq(r.returncode, 1, "exit status (%s, %s): %s" % (ns, kf, err))
        check(words in err and "\n" not in err, "one line naming the problem: %r" % err)
        eq(os.listdir(cache), [], "files written to the cache")
    for ns in ("sealed", "plain"):
        check(pool_bytes(ns) == before[ns], "the %s namespace changed" % ns)
    print("  wrong passphrase, raw key, no key, key on an unsealed log: refused, nothing written")


def check_and_tamper(ctx):
    key = ctx["key"]
    rc, out, f = check_log("sealed", key)
    eq(rc, 0, "vecfs check of the sealed log: " + out)
    check(" 0 damaged; sealed with the key" in out, "report: " + out)
    rc, out, _ = check_log("sealed")
    eq(rc, 2, "vecfs check of the sealed log without the key: " + out)
    check("is sealed: a key is needed" in out, "says why: " + out)
    # A backup with the key: a read-only node on a temporary cache.
    out_dir = os.path.join(TMP, "backup")
    r = vecfs("backup", *opts("sealed"), "--key-file", key, out_dir)
    eq(r.returncode, 0, "backup: " + r.stderr.decode())
    r = vecfs("check", out_dir, "--key-file", key)
    eq(r.returncode, 0, "check of the backup: " + r.stdout.decode() + r.stderr.decode())
    # One entry's value under the next seq: does not authenticate.
    head = f["head"]
    values = omap("sealed")
    last, before = "e.%020d" % head, "e.%020d" % (head - 1)
    path = os.path.join(TMP, "value")
    with open(path, "wb") as fh:
        fh.write(values[before])
    rados_cli("sealed", "setomapval", "vecfs.head", last, "--input-file", path)
    rc, out, _ = check_log("sealed", key)
    eq(rc, 1, "check with entry %d replayed at %d: %s" % (head - 1, head, out))
    check("entry %d: does not authenticate" % head in out, "report: " + out)
    with open(path, "wb") as fh:
        fh.write(values[last])
    rados_cli("sealed", "setomapval", "vecfs.head", last, "--input-file", path)
    eq(check_log("sealed", key)[0], 0, "check once the entry is back")
    # The same seq of another namespace's log, sealed with the same key.
    d = node("d", "sealed2", ["--key-file", key])
    d.start()
    try:
        os.mkdir(os.path.join(d.mnt, "c"))
        for i in range(f["trim"] + 1):
            write_file(os.path.join(d.mnt, "c", "v%d" % i), "1 2\n")
    finally:
        eq(d.stop(), 0, "exit status of D")
    seq = "e.%020d" % f["trim"]
    with open(path, "wb") as fh:
        fh.write(values[seq])
    rados_cli("sealed2", "setomapval", "vecfs.head", seq, "--input-file", path)
    rc, out, _ = check_log("sealed2", key)
    eq(rc, 1, "check with an entry of another namespace: " + out)
    check("entry %d: does not authenticate" % f["trim"] in out, "report: " + out)
    print("  an entry moved to another seq or another namespace's log does not authenticate")


def sealed_races(ctx):
    """Two keyed nodes writing the same and different names at once, small
    entries and ones over 64 KiB (sealed blobs, re-used by a writer that
    lost the race): both end in one state and every entry and blob of the
    log authenticates."""
    key = ctx["key"]
    a, b = node("sa", "race", ["--key-file", key]), node("sb", "race", ["--key-file", key])
    ctx["a"], ctx["b"] = a, b
    a.start()
    b.start()
    os.mkdir(os.path.join(a.mnt, "c"))
    wait_for(lambda: os.path.isdir(os.path.join(b.mnt, "c")), "mkdir on A seen on B")
    big = [("%d 2 3 4" % i + " " * (80 << 10) + "\n").encode() for i in range(3)]
    errors = []

    def writer(m, tag):
        try:
            for i in range(12):
                write_file(os.path.join(m.mnt, "c", "%s%d" % (tag, i)), "%d 1 2 3\n" % i)
                write_file(os.path.join(m.mnt, "c", "same%d" % (i % 3)), "%d %d 0 0\n" % (i, len(tag)))
                if i % 4 == 0:
                    write_file(os.path.join(m.mnt, "c", "big%d" % (i % 2)), big[(i // 4 + len(tag)) % 3])
        except OSError as e:
            errors.append("%s: %s" % (tag, e))

    ts = [threading.Thread(target=writer, args=(a, "pa")),
          threading.Thread(target=writer, args=(b, "pbb"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    eq(errors, [], "writer errors")
    trees = []
    for m in (a, b):
        c = os.path.join(m.mnt, "c")
        fsync_dir(c)
        trees.append({n: hashlib.sha256(read_file(os.path.join(c, n))).hexdigest()
                      for n in sorted(os.listdir(c))})
    check(all("pa%d" % i in trees[0] and "pbb%d" % i in trees[0] for i in range(12)),
          "every name on A: %r" % sorted(trees[0]))
    eq(trees[0], trees[1], "A and B after concurrent writers")
    blobs = [o for o in objects("race") if o.startswith("vecfs.blob.")]
    check(blobs, "the large files went to blobs")
    for k in ("a", "b"):
        eq(ctx.pop(k).stop(), 0, "exit status of node " + k)
    rc, out, _ = check_log("race", key)
    eq(rc, 0, "vecfs check of the log: " + out)
    check(" 0 damaged; sealed with the key" in out, "report: " + out)
    print("  two keyed nodes racing: one state, %d blob objects, every entry authenticates"
          % len(blobs))


def read_only(ctx):
    ro = ["--read-only"]
    cache = os.path.join(TMP, "cache-ronew")
    os.makedirs(cache)
    os.makedirs(os.path.join(TMP, "mnt-ronew"))
    r = vecfs(*opts("ro"), *ro, cache, os.path.join(TMP, "mnt-ronew"), timeout=60)
    err = r.stderr.decode().strip()
    eq(r.returncode, 1, "exit status of a read-only node with no log: " + err)
    check("a --read-only node does not create one" in err and "\n" not in err, "one line: " + err)
    eq(objects("ro"), [], "objects made by a read-only node")
    a = node("ra", "ro")
    ctx["a"] = a
    a.start()
    c = os.path.join(a.mnt, "c")
    os.mkdir(c)
    for i in range(5):
        write_file(os.path.join(c, "v%d" % i), "%d 1 2 3\n" % i)
        os.setxattr(os.path.join(c, "v%d" % i), "user.n", str(i).encode())
    eq(a.stop(), 0, "exit status of A")
    ctx.pop("a")
    # Alone on a log no checkpoint covers, with a checkpoint due every
    # entry: a read-only node writes none and takes no lease.
    b = node("rb", "ro", ro + ["--rados-ckpt-entries", "1", "--rados-ckpt-lease", "3"])
    ctx["b"] = b
    b.start()
    head = check_log("ro")[2]["head"]
    eq(sorted(os.listdir(os.path.join(b.mnt, "c"))), [".config"] + ["v%d" % i for i in range(5)],
       "A's writes on B")
    time.sleep(2.5)  # several follower rounds, each one a checkpoint if B could
    objs = objects("ro")
    eq(objs, ["vecfs.head"], "objects after the read-only node ran")
    check(not any(k.startswith("c.") for k in omap("ro")), "no checkpoint published")
    with open(os.path.join(b.mnt, ".vecfs", "stats")) as f:
        check('"read_only": true' in f.read().replace('":true', '": true'), "B's stats read_only")
    a.start()
    ctx["a"] = a
    write_file(os.path.join(c, "new"), "9 9 9 9\n")
    took = wait_for(lambda: read_file(os.path.join(b.mnt, "c", "new")) == b"9 9 9 9\n",
                    "a write on A on the read-only B")
    qa = parse_result(query(os.path.join(a.mnt, "c"), "q", "k = 3\n1 1 2 3\n"))
    qb = parse_result(query(os.path.join(b.mnt, "c"), "q", "k = 3\n1 1 2 3\n"))
    eq(len(qa), 3, "query answer on A: %r" % qa)
    eq(qb, qa, "the same query answer on A and B")
    pb = os.path.join(b.mnt, "c")
    head = check_log("ro")[2]["head"]
    expect_errno(errno.EROFS, write_file, os.path.join(pb, "mine"), "1 2 3 4\n")
    expect_errno(errno.EROFS, os.open, os.path.join(pb, "v1"), os.O_WRONLY)
    expect_errno(errno.EROFS, os.unlink, os.path.join(pb, "v1"))
    expect_errno(errno.EROFS, os.rename, os.path.join(pb, "v1"), os.path.join(pb, "v9"))
    expect_errno(errno.EROFS, os.setxattr, os.path.join(pb, "v1"), "user.n", b"x")
    expect_errno(errno.EROFS, os.removexattr, os.path.join(pb, "v1"), "user.n")
    expect_errno(errno.EROFS, os.chmod, os.path.join(pb, "v1"), 0o600)
    expect_errno(errno.EROFS, os.mkdir, os.path.join(b.mnt, "d"))
    expect_errno(errno.EROFS, os.rmdir, pb)
    expect_errno(errno.EROFS, write_file, os.path.join(pb, ".config"), "m = 8\n")
    expect_errno(errno.EROFS, write_file, os.path.join(pb, ".import", "x.jsonl"),
                 '{"name": "j", "vector": [1, 2, 3, 4]}\n')
    eq(check_log("ro")[2]["head"], head, "the log head after B's refused writes")
    fsync_dir(pb)
    eq(read_file(os.path.join(pb, "v1")), b"1 1 2 3\n", "v1 unchanged on B")
    eq(os.getxattr(os.path.join(a.mnt, "c", "v1"), "user.n"), b"1", "v1's xattr on A")
    for k in ("a", "b"):
        eq(ctx.pop(k).stop(), 0, "exit status of node " + k)
    rc, out, _ = check_log("ro")
    eq(rc, 0, "vecfs check of the log: " + out)
    r = vecfs("check", b.datadir)
    eq(r.returncode, 0, "vecfs check of B's cache: " + r.stdout.decode() + r.stderr.decode())
    print("  a write on A on the read-only B after %.3f s; B's writes EROFS, head unchanged" % took)


TESTS = [sealed, refused, check_and_tamper, sealed_races, read_only]


def main():
    def bind(vecfs, cluster_sh, tmp, cl):
        global VECFS, CLUSTER_SH, TMP, CONF, POOL
        VECFS, CLUSTER_SH, TMP, CONF, POOL = vecfs, cluster_sh, tmp, cl.conf, cl.pool

    def after_fail(ctx):
        # A test that failed may leave its nodes up: the next starts its own.
        for k in ("a", "b"):
            m = ctx.pop(k, None)
            if m is not None:
                m.stop()

    return test_main(__doc__, "rados-seal", TESTS, bind,
                     lambda: {"key": key_file("pass.key", b"correct horse battery staple\n")},
                     after_fail=after_fail)

if __name__ == "__main__":
    sys.exit(main())
