#!/usr/bin/env python3
"""query.py — search a vecfs collection from Python with nothing but files.

Usage:
  query.py COLLECTION_DIR [-k K] [--ef EF] [--filter KEY=VALUE ...] VALUE...
  query.py COLLECTION_DIR [-k K] --like NAME
  query.py COLLECTION_DIR --insert NAME VALUE... [--meta KEY=VALUE ...]

COLLECTION_DIR is a collection of a mounted vecfs, e.g. /mnt/vec/docs.
Prints one line per neighbour: distance, name and, when the vector has one,
its user.title attribute.

As a library: search(), insert() and neighbours_batch() below are all a
client needs; they use only open/read/write and xattrs.
"""

import json
import os
import struct
import sys


def search(coll, vector=None, k=10, ef=None, filters=None, like=None, qname=None):
    """Nearest neighbours of `vector` (a list of floats) or of the stored
    vector `like`; returns [(name, distance)], nearest first.

    The query is written to COLL/.query/<qname>.json and read back on the
    same file descriptor: the daemon runs the search when the file is read.
    A malformed query raises OSError(EINVAL) at close or read time."""
    q = {"k": k}
    if vector is not None:
        q["vector"] = list(vector)
    if like is not None:
        q["like"] = like
    if ef is not None:
        q["ef"] = ef
    if filters:
        q["filter"] = dict(filters)
    path = os.path.join(coll, ".query", (qname or "py-%d" % os.getpid()) + ".json")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(q).encode())
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return [(e["name"], e["distance"]) for e in json.loads(b"".join(chunks))]


def insert(coll, name, vector, meta=None):
    """Writes `vector` as NAME (raw float32 when NAME ends in .f32, else
    text) and sets its metadata as user.* xattrs. close() reports bad
    content as OSError(EINVAL)."""
    path = os.path.join(coll, name)
    if name.endswith(".f32"):
        data = struct.pack("<%df" % len(vector), *vector)
    else:
        data = (" ".join(repr(float(x)) for x in vector) + "\n").encode()
    with open(path, "wb") as f:
        f.write(data)
    for k, v in (meta or {}).items():
        os.setxattr(path, "user." + k, str(v).encode())


def neighbours_batch(coll, vectors, k=10, qname="py-batch"):
    """Many queries in one file (.fvecs): returns a list, per query, of
    [(name, distance)]. k goes in the user.k xattr of the query file."""
    path = os.path.join(coll, ".query", qname + ".fvecs")
    blob = b"".join(struct.pack("<i%df" % len(v), len(v), *v) for v in vectors)
    with open(path, "wb") as f:
        f.write(blob)
    os.setxattr(path, "user.k", str(k).encode())
    out = [[] for _ in vectors]
    with open(path, "rb") as f:
        for line in f.read().decode().splitlines():
            row, name, dist = line.split("\t")
            out[int(row)].append((name, float(dist)))
    return out


def title(coll, name):
    try:
        return os.getxattr(os.path.join(coll, name), "user.title").decode()
    except OSError:
        return ""


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    coll = argv[1]
    k, ef, like, filters, values, meta, insert_name = 10, None, None, {}, [], {}, None
    i = 2
    while i < len(argv):
        a = argv[i]
        if a == "-k":
            k, i = int(argv[i + 1]), i + 2
        elif a == "--ef":
            ef, i = int(argv[i + 1]), i + 2
        elif a == "--like":
            like, i = argv[i + 1], i + 2
        elif a == "--filter":
            key, _, val = argv[i + 1].partition("=")
            filters[key], i = val, i + 2
        elif a == "--meta":
            key, _, val = argv[i + 1].partition("=")
            meta[key], i = val, i + 2
        elif a == "--insert":
            insert_name, i = argv[i + 1], i + 2
        else:
            values.append(float(a))
            i += 1
    try:
        if insert_name:
            insert(coll, insert_name, values, meta)
            return 0
        hits = search(coll, values or None, k=k, ef=ef, filters=filters, like=like)
    except OSError as e:
        print("query.py: %s" % e, file=sys.stderr)
        return 1
    for name, dist in hits:
        print("%10.6f  %s  %s" % (dist, name, title(coll, name)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
