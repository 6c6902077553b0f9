#!/usr/bin/env python3
"""make-fixture.py — a small DATADIR made through a real mount, kept as the
upgrade test's fixture (docs/upgrade.md).

Usage: scripts/make-fixture.py PATH/TO/vecfs OUT.tar.gz EXPECT.json

Builds two stores with the given vecfs, each through `vecfs -f` on a
temporary mount point, unmounted cleanly (so each holds its snapshots):

  plain/      no key
  encrypted/  with the raw 32-byte key in key (bytes 0..31: a test key,
              committed on purpose; never use it for data)

and in each the same collections (made in a scratch DATADIR, then copied
compacted by `vecfs backup`, mounted once more and unmounted, so the
fixture holds the compacted LMDB and the snapshots of that stop):

  words    cosine, text vectors of dim 8, user.* xattrs, an .import/ of a
           .jsonl batch with meta, one vector deleted, one renamed
  pixels   .config set before the first vector (metric = l2, m = 8,
           ef_search = 32), binary .f32 vectors of dim 16, then m = 12
           written after they are in (a config change that rebuilds)

The vectors come from a seeded generator, so the content is the same on
every run; the LMDB pages are not (times, uuids). It then reads everything
back through a second mount of each store and writes EXPECT.json: per
store and collection the names, sha256 of each file's bytes, its xattrs,
the .config text, and the results of a few queries. OUT.tar.gz holds
plain/, encrypted/ and key, without LMDB's lock.mdb and vecfs.lock.
tests/integration/upgrade.py mounts a copy and compares.
"""

import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time

KEY = bytes(range(32))

# The queries the expectation records, per collection: (query file name, text).
QUERIES = {
    "words": [
        ("near.txt", None),            # text vector, filled in from the seed
        ("filtered.txt", None),        # same vector, filter = lang=en
        ("like.txt", "k = 4\nlike = w03\n"),
        ("json.json", None),           # JSON query
    ],
    "pixels": [
        ("p.txt", None),
        ("like.txt", "k = 3\nlike = p05.f32\n"),
    ],
}


def mounted(mnt):
    mnt = os.path.realpath(mnt)
    with open("/proc/mounts") as f:
        return any(len(l.split()) > 1 and l.split()[1] == mnt for l in f)


class Mount:
    """vecfs -f ARGS DATADIR MNT, unmounted and stopped on exit."""

    def __init__(self, vecfs, datadir, mnt, args=()):
        self.vecfs, self.datadir, self.mnt, self.args = vecfs, datadir, mnt, list(args)

    def __enter__(self):
        os.makedirs(self.mnt, exist_ok=True)
        self.log = open(self.mnt + ".log", "wb")
        self.proc = subprocess.Popen([self.vecfs, "-f"] + self.args + [self.datadir, self.mnt],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        deadline = time.time() + 60
        while not mounted(self.mnt):
            if self.proc.poll() is not None or time.time() > deadline:
                self.__exit__(None, None, None)
                with open(self.mnt + ".log") as f:
                    raise AssertionError("vecfs did not mount %s: %s" % (self.datadir, f.read()))
            time.sleep(0.05)
        return self.mnt

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = -9
        else:
            rc = self.proc.returncode
        if mounted(self.mnt):
            subprocess.call(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
        self.log.close()
        if exc[0] is None and rc != 0:
            raise AssertionError("vecfs exited %d after SIGTERM" % rc)
        return False


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def text_vec(v):
    return " ".join("%.6g" % x for x in v) + "\n"


def populate(m):
    rng = random.Random(20261201)
    words = os.path.join(m, "words")
    os.mkdir(words)
    langs = ["en", "de", "fr"]
    for i in range(24):
        p = os.path.join(words, "w%02d" % i)
        write(p, text_vec([round(rng.uniform(-1, 1), 4) for _ in range(8)]))
        os.setxattr(p, "user.lang", langs[i % 3].encode())
        os.setxattr(p, "user.title", ("word number %d, ünïcode" % i).encode())
    rows = []
    for i in range(6):
        rows.append(json.dumps({"name": "j%d" % i,
                                "vector": [round(rng.uniform(-1, 1), 4) for _ in range(8)],
                                "meta": {"lang": "en", "tags": ["batch", str(i)]}}))
    write(os.path.join(words, ".import", "batch.jsonl"), "\n".join(rows) + "\n")
    os.unlink(os.path.join(words, "w07"))
    os.rename(os.path.join(words, "w08"), os.path.join(words, "w08-renamed"))

    pixels = os.path.join(m, "pixels")
    os.mkdir(pixels)
    write(os.path.join(pixels, ".config"), "metric = l2\nm = 8\nef_search = 32\n")
    for i in range(20):
        vals = [rng.random() for _ in range(16)]
        write(os.path.join(pixels, "p%02d.f32" % i), struct.pack("<16f", *vals))
    os.setxattr(os.path.join(pixels, "p00.f32"), "user.kind", b"first")
    write(os.path.join(pixels, ".config"), "m = 12\n")

    q = [round(rng.uniform(-1, 1), 4) for _ in range(8)]
    return {
        ("words", "near.txt"): "k = 5\n" + text_vec(q),
        ("words", "filtered.txt"): "k = 5\nfilter = lang=en\n" + text_vec(q),
        ("words", "json.json"): json.dumps({"vector": q, "k": 3, "filter": {"lang": "de"}}),
        ("pixels", "p.txt"): "k = 4\n" + text_vec([rng.random() for _ in range(16)]),
    }


def query(m, coll, name, text):
    p = os.path.join(m, coll, ".query", name)
    write(p, text)
    with open(p) as f:
        out = f.read()
    if name.endswith(".json"):
        return [[h["name"], h["distance"]] for h in json.loads(out)]
    return [[l.split("\t")[0], float(l.split("\t")[1])] for l in out.splitlines()]


def snapshot(m, query_texts):
    """What the expectation records about a mounted store."""
    out = {}
    for coll in sorted(os.listdir(m)):
        if coll.startswith("."):
            continue
        cdir = os.path.join(m, coll)
        files = {}
        for name in sorted(os.listdir(cdir)):
            p = os.path.join(cdir, name)
            if name == ".config":
                continue
            with open(p, "rb") as f:
                data = f.read()
            xattrs = {a: os.getxattr(p, a).decode() for a in sorted(os.listxattr(p))}
            files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                           "xattrs": xattrs}
        with open(os.path.join(cdir, ".config")) as f:
            config = f.read()
        queries = {}
        for qname, fixed in QUERIES[coll]:
            text = fixed if fixed is not None else query_texts[(coll, qname)]
            queries[qname] = {"text": text, "result": query(m, coll, qname, text)}
        out[coll] = {"files": files, "config": config, "queries": queries}
    return out


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    vecfs, out_tar, out_json = os.path.abspath(argv[1]), argv[2], argv[3]
    version = subprocess.run([vecfs, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="vecfs-fixture-")
    try:
        tree = os.path.join(work, "tree")
        os.makedirs(tree)
        write(os.path.join(tree, "key"), KEY)
        expect = {"made_by": version, "key": "key", "stores": {}}
        for store, args in (("plain", []), ("encrypted", ["--key-file", os.path.join(tree, "key")])):
            d0, m = os.path.join(work, "made-" + store), os.path.join(work, "m-" + store)
            os.makedirs(d0)
            with Mount(vecfs, d0, m, args):
                texts = populate(m)
            # A compacted copy keeps the fixture small; its first mount
            # rebuilds the indexes and the clean stop writes the snapshots.
            d = os.path.join(tree, store)
            subprocess.run([vecfs, "backup", d0, d] + args, check=True)
            with Mount(vecfs, d, m, args):
                expect["stores"][store] = {"key_file": bool(args), "collections": snapshot(m, texts)}
            r = subprocess.run([vecfs, "check", d] + args, capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError("vecfs check %s: %d\n%s%s" % (store, r.returncode,
                                                                   r.stdout, r.stderr))
            for junk in ("lock.mdb", "vecfs.lock"):
                if os.path.exists(os.path.join(d, junk)):
                    os.unlink(os.path.join(d, junk))
        if expect["stores"]["plain"]["collections"] != expect["stores"]["encrypted"]["collections"]:
            raise AssertionError("the plain and the encrypted store read back differently")
        with tarfile.open(out_tar, "w:gz") as t:
            for name in ("key", "plain", "encrypted"):
                t.add(os.path.join(tree, name), arcname=name)
        with open(out_json, "w") as f:
            json.dump(expect, f, indent=1, sort_keys=True, ensure_ascii=False)
            f.write("\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("wrote %s (%d bytes) and %s" % (out_tar, os.path.getsize(out_tar), out_json))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
