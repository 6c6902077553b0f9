#!/usr/bin/env python3
"""dr-drill.py — a disaster-recovery drill for vecfs, on real mounts.

Takes a hot backup of a mounted store while writer processes change it,
restores the backup into a fresh DATADIR, checks it with `vecfs check`,
mounts it on a second mount point and compares every collection with the
source: names, bytes, xattrs, owner/mode/mtime, .config, and the results of
the same queries on both mounts. Prints the measured RPO (which committed
writes the backup lacks, and over what time window) and RTO (from the start
of the restore to the first correct query on the restored mount).

Usage:
  scripts/dr-drill.py --vecfs PATH/TO/vecfs [--workdir DIR] [--json OUT.json]
      [--source DATADIR --source-mount M1]          use a mounted store
      [--vectors N] [--dim D] [--collections C]     or make and fill one
      [--fvecs FILE]                                 ... from real rows
      [--writers W] [--lead S] [--tail S] [--queries Q] [--k K]
      [--tar] [--key-file F]

Without --source the drill makes a DATADIR under the workdir, mounts it and
fills C collections (default 3) with N vectors (default 3000) of dim D
(default 16; random, or the first N rows of --fvecs), imported through
.import/ as binary .f32 vectors, plus text (.txt) and .json vectors with
user.* xattrs, a .config written before the data (metric l2, m 12) in
even collections and one written after it (ef_search) in odd ones.
With --source the store's own collections are compared, and the writers
work in collections of their own (drill-w0, drill-w1, ...), which the drill
removes again at the end.

Timeline: W writer processes (default 2) create, overwrite, delete vectors
and set xattrs, each logging every operation whose close()/setxattr()/
unlink() returned, with CLOCK_MONOTONIC times around it. --lead seconds
(default 1.0) after each writer has completed three operations, `vecfs
backup` runs; --tail seconds (default 0.5)
after it ends the writers stop. What the backup holds of each writer's work
must be a prefix of that writer's log (operations of one writer are ordered);
every operation that returned before the backup started must be in it, none
that started after it ended may be, and across writers the cut must be
consistent (an operation that started after another one returned is not in
the backup without it). From the cut the drill bounds the backup's point
in time (PIT); the writes the backup misses are those committed after it.

RPO: the number of writes whose close() had returned when the backup ended
but which the backup lacks, and the window from the earliest possible PIT
to the end of the backup. RTO: restore + check + mount + the first query
whose result equals the source's, from the start of `vecfs restore`.

Queries: `like = <name>` for --queries (default 5) stored vectors of each
collection, k = --k (10), ef = the collection's size (capped at 100,000,
the query limit): vecfs searches collections no larger than ef exactly, so
both mounts must give the same result even though the restored mount
rebuilt its index. Before the queries, the writer collections on the
source are rolled back to what the backup holds (only there do the two
sides differ by design). Collections over 100,000 vectors cannot be
searched exactly; their results are compared by overlap, which must be at
least 0.9 (reported).

Exit status: 0 when everything matches, 1 on any mismatch or failure, 2 on
bad arguments, 77 when FUSE is missing. Every daemon the drill started is
stopped by its pid and every mount it made is unmounted, on every exit path.
"""

import argparse
import errno
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

EF_MAX = 100000  # the largest ef a query accepts (docs/filesystem.md)
BATCH_ROWS = 20000  # rows per .import/ batch file while filling
TEXT_PER_COLL = 20
JSON_PER_COLL = 5
MIN_OVERLAP = 0.9  # for collections too large for an exact query


class Mismatch(Exception):
    pass


def now():
    return time.monotonic_ns()


def secs(ns):
    return ns / 1e9


# ---------------------------------------------------------------------------
# Writer processes (run as `dr-drill.py --writer COLLDIR ...`)
# ---------------------------------------------------------------------------

def vector_text(vec):
    return " ".join("%.6g" % x for x in vec) + "\n"


def vector_bytes(name, vec):
    if name.endswith(".f32"):
        return struct.pack("<%df" % len(vec), *vec)
    if name.endswith(".json"):
        return ("[" + ", ".join("%.6g" % x for x in vec) + "]").encode()
    return vector_text(vec).encode()


def writer_main(coll, seed, dim, log_path, stop_path):
    """One writer: operation i is chosen by i, its content by the seed. Each
    line of the log is written after the operation returned."""
    rnd = random.Random(seed)
    live = []  # names this writer created and did not delete, oldest first
    i = 0
    with open(log_path, "w", buffering=1) as log:
        while not os.path.exists(stop_path):
            rec = {"i": i}
            if i % 10 == 9 and len(live) > 2:
                name = live.pop(0)
                rec.update(op="delete", name=name)
                t0 = now()
                os.unlink(os.path.join(coll, name))
            elif i % 5 == 4 and live:
                name = live[-1]
                data = vector_bytes(name, [rnd.gauss(0, 1) for _ in range(dim)])
                rec.update(op="overwrite", name=name, data=data.hex())
                t0 = now()
                with open(os.path.join(coll, name), "wb") as f:
                    f.write(data)
            elif i % 3 == 2 and live:
                name = live[-1]
                rec.update(op="setxattr", name=name, key="user.seq", value=str(i))
                t0 = now()
                os.setxattr(os.path.join(coll, name), "user.seq", str(i).encode())
            else:
                name = "v%d.%s" % (i, "txt" if i % 2 == 0 else "f32")
                data = vector_bytes(name, [rnd.gauss(0, 1) for _ in range(dim)])
                rec.update(op="create", name=name, data=data.hex())
                t0 = now()
                with open(os.path.join(coll, name), "xb") as f:
                    f.write(data)
                live.append(name)
            rec["t0"], rec["t1"] = t0, now()
            log.write(json.dumps(rec) + "\n")
            i += 1
    return 0


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def apply_op(state, rec):
    """The model of a writer collection: name -> [bytes, {xattr: value}]."""
    op, name = rec["op"], rec["name"]
    if op == "create":
        state[name] = [bytes.fromhex(rec["data"]), {}]
    elif op == "overwrite":
        state[name][0] = bytes.fromhex(rec["data"])
    elif op == "setxattr":
        state[name][1][rec["key"]] = rec["value"].encode()
    elif op == "delete":
        del state[name]


# ---------------------------------------------------------------------------
# Reading a mounted tree
# ---------------------------------------------------------------------------

def xattrs(path):
    try:
        names = os.listxattr(path)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.ENODATA):
            return {}
        raise
    return {n: os.getxattr(path, n) for n in sorted(names)}


def read_collection(mount, coll, with_stat=True):
    """name -> [bytes, xattrs, (mode, uid, gid, size, mtime_ns)] for every
    entry of the collection, .config included."""
    out = {}
    d = os.path.join(mount, coll)
    for name in os.listdir(d):
        p = os.path.join(d, name)
        with open(p, "rb") as f:
            data = f.read()
        entry = [data, xattrs(p)]
        if with_stat:
            st = os.stat(p)
            entry.append((st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns))
        out[name] = entry
    return out


def query(mount, coll, tag, text):
    """Writes a text query and reads its result (two opens, as a shell does)."""
    q = os.path.join(mount, coll, ".query", "drill-%s" % tag)
    with open(q, "w") as f:
        f.write(text)
    with open(q) as f:
        result = f.read()
    os.unlink(q)
    return result


def like_query(name, n, k):
    return "k = %d\nef = %d\nlike = %s\n" % (k, max(1, min(max(n, k), EF_MAX)), name)


# ---------------------------------------------------------------------------
# The drill
# ---------------------------------------------------------------------------

class Drill:
    def __init__(self, opt):
        self.opt = opt
        self.vecfs = os.path.realpath(opt.vecfs)
        self.daemons = []  # (Popen, mountpoint) this drill started
        self.writers = []  # Popen of the writer processes
        self.report = {"mismatches": []}
        self.made_workdir = opt.workdir is None
        self.work = opt.workdir or tempfile.mkdtemp(prefix="vecfs-drill-")
        os.makedirs(self.work, exist_ok=True)
        self.key = ["--key-file", opt.key_file] if opt.key_file else []
        self.writer_colls = ["drill-w%d" % i for i in range(opt.writers)]

    # -- processes and mounts ------------------------------------------------

    def log(self, msg):
        print("dr-drill: " + msg, flush=True)

    def mismatch(self, msg):
        self.report["mismatches"].append(msg)
        print("dr-drill: MISMATCH: " + msg, flush=True)

    def vecfs_cmd(self, args, what):
        r = subprocess.run([self.vecfs] + args, capture_output=True, text=True)
        if r.returncode != 0:
            raise Mismatch("%s: exit %d: %s" % (what, r.returncode, r.stderr.strip()))
        return r

    @staticmethod
    def mounted(mnt):
        mnt = os.path.realpath(mnt)
        with open("/proc/mounts") as f:
            return any(len(l.split()) > 1 and l.split()[1] == mnt for l in f)

    def mount(self, datadir, mnt, timeout=3600):
        """vecfs -f DATADIR MNT; returns once the mount point is mounted."""
        os.makedirs(datadir, exist_ok=True)
        os.makedirs(mnt, exist_ok=True)
        log = open(mnt + ".log", "wb")
        p = subprocess.Popen([self.vecfs, "-f"] + self.key + [datadir, mnt],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        self.daemons.append((p, mnt))
        deadline = time.time() + timeout
        while not self.mounted(mnt):
            if p.poll() is not None:
                with open(mnt + ".log", errors="replace") as f:
                    raise Mismatch("vecfs exited with %d before mounting %s: %s"
                                   % (p.returncode, mnt, f.read()[-1000:]))
            if time.time() > deadline:
                raise Mismatch("%s not mounted within %d s" % (mnt, timeout))
            time.sleep(0.02)
        return p

    def cleanup(self):
        for p in self.writers:
            if p.poll() is None:
                p.kill()
                p.wait()
        for p, mnt in reversed(self.daemons):
            if self.mounted(mnt):
                subprocess.call(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
            if self.mounted(mnt):
                subprocess.call(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.daemons.clear()
        if self.made_workdir and not self.opt.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    # -- the source ----------------------------------------------------------

    def rows(self):
        """The vectors to fill the source with: --fvecs rows, or random."""
        o = self.opt
        if o.fvecs:
            with open(o.fvecs, "rb") as f:
                dim = struct.unpack("<i", f.read(4))[0]
                f.seek(0)
                raw = f.read(o.vectors * (4 + 4 * dim))
            n = len(raw) // (4 + 4 * dim)
            return dim, raw[:n * (4 + 4 * dim)], n
        rnd = random.Random(1)
        head = struct.pack("<i", o.dim)
        raw = b"".join(head + struct.pack("<%df" % o.dim, *[rnd.gauss(0, 1) for _ in range(o.dim)])
                       for _ in range(o.vectors))
        return o.dim, raw, o.vectors

    def fill(self, m1):
        o = self.opt
        dim, raw, n = self.rows()
        row = 4 + 4 * dim
        per = -(-n // o.collections)
        t0 = time.time()
        for c in range(o.collections):
            coll = "c%d" % c
            d = os.path.join(m1, coll)
            os.mkdir(d)
            if c % 2 == 0:
                with open(os.path.join(d, ".config"), "w") as f:
                    f.write("metric = l2\nm = 12\n")
            chunk = raw[c * per * row:min(n, (c + 1) * per) * row]
            for b in range(0, len(chunk), BATCH_ROWS * row):
                with open(os.path.join(d, ".import", "b%d.fvecs" % (b // (BATCH_ROWS * row))), "wb") as f:
                    f.write(chunk[b:b + BATCH_ROWS * row])
            rnd = random.Random(100 + c)
            for i in range(TEXT_PER_COLL):
                p = os.path.join(d, "t%d.txt" % i)
                with open(p, "wb") as f:
                    f.write(vector_bytes(p, [rnd.gauss(0, 1) for _ in range(dim)]))
                os.setxattr(p, "user.label", ("text %d" % (i % 4)).encode())
                os.setxattr(p, "user.n", str(i).encode())
            for i in range(JSON_PER_COLL):
                p = os.path.join(d, "j%d.json" % i)
                with open(p, "wb") as f:
                    f.write(vector_bytes(p, [rnd.gauss(0, 1) for _ in range(dim)]))
                os.setxattr(p, "user.kind", b"json")
            for i in range(min(10, per)):
                os.setxattr(os.path.join(d, "b0-%d.f32" % i), "user.row", str(i).encode())
            if c % 2 == 1:
                with open(os.path.join(d, ".config"), "w") as f:
                    f.write("ef_search = 80\n")
        self.log("filled %d collections with %d x %d imported vectors + %d text/json each "
                 "in %.1f s" % (o.collections, n, dim, TEXT_PER_COLL + JSON_PER_COLL,
                                time.time() - t0))
        return dim

    def static_colls(self, m):
        return sorted(c for c in os.listdir(m) if c not in self.writer_colls)

    # -- writers and backup --------------------------------------------------

    def backup_under_writers(self, datadir, m1, dim):
        o = self.opt
        stop = os.path.join(self.work, "writers.stop")
        logs = []
        for i, coll in enumerate(self.writer_colls):
            d = os.path.join(m1, coll)
            if os.path.exists(d):
                raise Mismatch("%s already exists on the source; remove it first" % d)
            os.mkdir(d)
            logs.append(os.path.join(self.work, "%s.log" % coll))
            self.writers.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--writer", d, str(1000 + i),
                 str(dim), logs[-1], stop]))
        # The writers' start-up is not part of the drill: --lead counts from
        # the moment each has completed a few operations.
        deadline = time.time() + 120
        while not all(os.path.exists(p) and len(read_log(p)) >= 3 for p in logs):
            if time.time() > deadline or any(p.poll() is not None for p in self.writers):
                raise Mismatch("the writers did not get going")
            time.sleep(0.02)
        time.sleep(o.lead)
        out = os.path.join(self.work, "backup.tar" if o.tar else "backup")
        if not o.tar:
            os.mkdir(out)
        b0 = now()
        self.vecfs_cmd(["backup", datadir, out] + self.key, "vecfs backup")
        b1 = now()
        time.sleep(o.tail)
        with open(stop, "w"):
            pass
        for p in self.writers:
            if p.wait(120) != 0:
                raise Mismatch("a writer failed with exit %d" % p.returncode)
        self.writers.clear()
        size = os.path.getsize(out) if o.tar else sum(
            os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
        self.report["backup"] = {"seconds": secs(b1 - b0), "bytes": size, "path": out}
        self.log("backup of %d bytes took %.3f s while %d writers ran"
                 % (size, secs(b1 - b0), len(self.writer_colls)))
        return out, b0, b1, [read_log(p) for p in logs]

    # -- restore ------------------------------------------------------------

    def reference_query(self, m1):
        """A query on a collection the writers do not touch, for the RTO."""
        colls = self.static_colls(m1)
        if not colls:
            raise Mismatch("the source has no collection to query")
        coll = colls[0]
        names = sorted(n for n in os.listdir(os.path.join(m1, coll)) if n != ".config")
        text = like_query(names[0], len(names), self.opt.k)
        return coll, text, query(m1, coll, "ref", text)

    def restore_and_mount(self, backup, ref):
        """Restore, check, mount, and query until the result is correct."""
        r0 = now()
        d2 = os.path.join(self.work, "restored")
        os.mkdir(d2)
        self.vecfs_cmd(["restore", backup, d2] + self.key, "vecfs restore")
        r1 = now()
        r = subprocess.run([self.vecfs, "check", d2] + self.key, capture_output=True, text=True)
        r2 = now()
        self.report["check"] = {"exit": r.returncode, "output": r.stdout.strip()[-2000:]}
        if r.returncode != 0:
            self.mismatch("vecfs check of the restored DATADIR: exit %d: %s%s"
                          % (r.returncode, r.stdout[-500:], r.stderr[-500:]))
        m2 = os.path.join(self.work, "m2")
        self.mount(d2, m2)
        r3 = now()
        coll, text, want = ref
        deadline = time.time() + 3600
        while True:
            try:
                got = query(m2, coll, "first", text)
                if got == want:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise Mismatch("no correct query on the restored mount within an hour")
            time.sleep(0.01)
        r4 = now()
        self.report["rto"] = {"restore_s": secs(r1 - r0), "check_s": secs(r2 - r1),
                              "mount_s": secs(r3 - r2), "first_query_s": secs(r4 - r3),
                              "total_s": secs(r4 - r0)}
        return d2, m2

    # -- what the backup holds of the writers' work ---------------------------

    def writer_cut(self, m1, m2, logs, b0, b1):
        """For each writer, the prefix of its log the backup holds; checks the
        cut, rolls the source's writer collection back to it, and computes
        the RPO."""
        included, excluded, per_writer = [], [], []
        for coll, ops in zip(self.writer_colls, logs):
            restored = {n: e[:2] for n, e in read_collection(m2, coll, False).items()
                        if n != ".config"}
            source = {n: e[:2] for n, e in read_collection(m1, coll, False).items()
                      if n != ".config"}
            # Every operation changes the state for good (new names, fresh
            # contents, xattr values that name the operation), so at most
            # one prefix matches.
            state, prefix, target = {}, None, {}
            if restored == state:
                prefix = 0
            for j, rec in enumerate(ops):
                apply_op(state, rec)
                if prefix is None and state == restored:
                    prefix = j + 1
                    target = {n: [e[0], dict(e[1])] for n, e in state.items()}
            if state != source:
                self.mismatch("%s on the source differs from its writer's log of "
                              "completed operations" % coll)
            if prefix is None:
                self.mismatch("%s in the backup is no prefix of its writer's operations "
                              "(not a point-in-time copy)" % coll)
                continue
            included += ops[:prefix]
            excluded += ops[prefix:]
            self.rollback(m1, coll, source, target)
            per_writer.append({
                "collection": coll, "operations": len(ops), "in_backup": prefix,
                "committed_before_backup_start": sum(1 for r in ops if r["t1"] < b0),
                "committed_by_backup_end": sum(1 for r in ops if r["t1"] <= b1)})
        for r in included:
            if r["t0"] > b1:
                self.mismatch("operation %s %s started after the backup ended but is in it"
                              % (r["op"], r["name"]))
        for r in excluded:
            if r["t1"] < b0:
                self.mismatch("operation %s %s returned before the backup started but is "
                              "missing from it" % (r["op"], r["name"]))
        # A consistent cut: nothing in the backup began after something
        # missing from it had returned.
        if included and excluded:
            first_missing = min(r["t1"] for r in excluded)
            late = [r for r in included if r["t0"] > first_missing]
            if late:
                self.mismatch("%d operations in the backup started after a missing one had "
                              "returned (inconsistent cut)" % len(late))
        pit_lo = max([b0] + [r["t0"] for r in included])
        pit_hi = min([b1] + [r["t1"] for r in excluded])
        missed = [r for r in excluded if r["t1"] <= b1]
        self.report["writers"] = per_writer
        self.report["rpo"] = {
            "pit_after_backup_start_s": [secs(pit_lo - b0), secs(pit_hi - b0)],
            "missed_committed_writes": len(missed),
            "missed_first_committed_after_start_s": (secs(min(r["t1"] for r in missed) - b0)
                                                     if missed else None),
            "window_s": secs(b1 - pit_lo),
            "writes_during_backup_in_backup": sum(1 for r in included if r["t1"] >= b0)}

    def rollback(self, m1, coll, source, target):
        """Brings the source's writer collection to the state the backup holds."""
        d = os.path.join(m1, coll)
        for name in source:
            if name not in target:
                os.unlink(os.path.join(d, name))
        for name, (data, xa) in target.items():
            p = os.path.join(d, name)
            if name not in source or source[name][0] != data:
                with open(p, "wb") as f:
                    f.write(data)
            have = xattrs(p)
            for k in have:
                if k not in xa:
                    os.removexattr(p, k)
            for k, v in xa.items():
                if have.get(k) != v:
                    os.setxattr(p, k, v)

    # -- comparing the two mounts -------------------------------------------

    def compare(self, m1, m2):
        c1, c2 = sorted(os.listdir(m1)), sorted(os.listdir(m2))
        if c1 != c2:
            self.mismatch("collections differ: source %s, restored %s" % (c1, c2))
        vectors = queries = 0
        overlaps = []
        for coll in sorted(set(c1) & set(c2)):
            static = coll not in self.writer_colls
            a = read_collection(m1, coll, static)
            b = read_collection(m2, coll, static)
            if static:
                s1 = os.stat(os.path.join(m1, coll))
                s2 = os.stat(os.path.join(m2, coll))
                if (s1.st_mode, s1.st_uid, s1.st_gid) != (s2.st_mode, s2.st_uid, s2.st_gid):
                    self.mismatch("%s: owner or mode of the collection differ" % coll)
            if sorted(a) != sorted(b):
                only1, only2 = sorted(set(a) - set(b)), sorted(set(b) - set(a))
                self.mismatch("%s: names differ (only on the source: %s; only restored: %s)"
                              % (coll, only1[:5], only2[:5]))
            for name in sorted(set(a) & set(b)):
                for i, what in enumerate(("bytes", "xattrs", "owner/mode/size/mtime")):
                    if i < len(a[name]) and a[name][i] != b[name][i]:
                        self.mismatch("%s/%s: %s differ" % (coll, name, what))
            names = sorted(n for n in set(a) & set(b) if n != ".config")
            vectors += len(names)
            n = len(names)
            for name in random.Random(coll).sample(names, min(self.opt.queries, n)):
                text = like_query(name, n, self.opt.k)
                r1, r2 = query(m1, coll, "cmp", text), query(m2, coll, "cmp", text)
                queries += 1
                if n <= EF_MAX:
                    if r1 != r2:
                        self.mismatch("%s: query like %s: results differ:\n%s---\n%s"
                                      % (coll, name, r1, r2))
                else:
                    s1 = {ln.split("\t")[0] for ln in r1.splitlines()}
                    s2 = {ln.split("\t")[0] for ln in r2.splitlines()}
                    overlaps.append(len(s1 & s2) / max(1, len(s1)))
        if overlaps and sum(overlaps) / len(overlaps) < MIN_OVERLAP:
            self.mismatch("collections over %d vectors: mean result overlap %.3f < %.2f"
                          % (EF_MAX, sum(overlaps) / len(overlaps), MIN_OVERLAP))
        self.report["compared"] = {"collections": len(c2), "vectors": vectors,
                                   "queries": queries,
                                   "approximate_overlap": (sum(overlaps) / len(overlaps)
                                                           if overlaps else None)}

    # -- main ------------------------------------------------------------------

    def remove_writer_colls(self, m1):
        for coll in self.writer_colls:
            d = os.path.join(m1, coll)
            if os.path.isdir(d):
                for name in os.listdir(d):
                    if name != ".config":
                        os.unlink(os.path.join(d, name))
                os.rmdir(d)

    def run(self):
        o = self.opt
        if o.source:
            datadir, m1 = o.source, o.source_mount
            if not self.mounted(m1):
                raise Mismatch("%s is not mounted" % m1)
            dim = o.dim
        else:
            datadir, m1 = os.path.join(self.work, "source"), os.path.join(self.work, "m1")
            self.mount(datadir, m1)
            dim = self.fill(m1)
        try:
            backup, b0, b1, logs = self.backup_under_writers(datadir, m1, dim)
            ref = self.reference_query(m1)
            d2, m2 = self.restore_and_mount(backup, ref)
            self.writer_cut(m1, m2, logs, b0, b1)
            self.compare(m1, m2)
        finally:
            if o.source and self.mounted(m1):
                self.remove_writer_colls(m1)

    def print_report(self):
        r = self.report
        if "rpo" in r:
            p = r["rpo"]
            self.log("RPO: the backup is the store as of a point %.3f..%.3f s after `vecfs "
                     "backup` started; %d write(s) committed before it ended are not in it "
                     "(window %.3f s); %d write(s) committed during the backup are in it"
                     % (p["pit_after_backup_start_s"][0], p["pit_after_backup_start_s"][1],
                        p["missed_committed_writes"], p["window_s"],
                        p["writes_during_backup_in_backup"]))
            for w in r["writers"]:
                self.log("  %s: %d ops, %d returned before the backup started, %d by its end, "
                         "%d in the backup" % (w["collection"], w["operations"],
                                               w["committed_before_backup_start"],
                                               w["committed_by_backup_end"], w["in_backup"]))
        if "rto" in r:
            t = r["rto"]
            self.log("RTO: %.3f s (restore %.3f s, check %.3f s, mount %.3f s, first correct "
                     "query %.3f s)" % (t["total_s"], t["restore_s"], t["check_s"],
                                        t["mount_s"], t["first_query_s"]))
        if "compared" in r:
            c = r["compared"]
            self.log("compared %d collections, %d vectors, %d queries"
                     % (c["collections"], c["vectors"], c["queries"]))
        self.log("%s: %d mismatch(es)" % ("PASS" if r["ok"] else "FAIL", len(r["mismatches"])))


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="dr-drill.py", description=__doc__.split("\n")[0])
    ap.add_argument("--vecfs", required=True)
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    ap.add_argument("--source")
    ap.add_argument("--source-mount")
    ap.add_argument("--vectors", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--collections", type=int, default=3)
    ap.add_argument("--fvecs")
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--lead", type=float, default=1.0)
    ap.add_argument("--tail", type=float, default=0.5)
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tar", action="store_true")
    ap.add_argument("--key-file")
    ap.add_argument("--keep", action="store_true", help="keep the workdir (for a post-mortem)")
    o = ap.parse_args(argv)
    if bool(o.source) != bool(o.source_mount):
        ap.error("--source and --source-mount go together")
    if o.vectors < 1 or o.dim < 1 or o.collections < 1 or o.writers < 1 or o.queries < 0:
        ap.error("--vectors, --dim, --collections, --writers must be positive")
    return o


def main(argv, drill_class=Drill):
    if argv[:1] == ["--writer"]:
        coll, seed, dim, log, stop = argv[1:6]
        return writer_main(coll, int(seed), int(dim), log, stop)
    o = parse_args(argv)
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        print("dr-drill: SKIP: no FUSE here")
        return 77
    drill = drill_class(o)
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        drill.run()
    except (Mismatch, OSError) as e:
        drill.mismatch("drill stopped: %s" % e)
    finally:
        drill.cleanup()
        signal.signal(signal.SIGTERM, old)
    drill.report["ok"] = not drill.report["mismatches"]
    drill.print_report()
    if o.json:
        with open(o.json, "w") as f:
            json.dump(drill.report, f, indent=2)
            f.write("\n")
    return 0 if drill.report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
