#!/usr/bin/env python3
"""Which source file calls which, from the objects of a build, and whether any
calls run in a circle.

usage: scripts/calls.py BUILDDIR [--graph]

Reads every object of the libraries and programs under common/, engine/,
store/ and fs/ with nm: a file calls another when it uses a global symbol the
other defines. Prints each circle (a strongly connected set of files) and
exits 1 if there is one; with --graph also prints each file's callees, lowest
level first (a file's level is one more than its highest callee's)."""
import json
import os
import subprocess
import sys

FOLDERS = ("common", "engine", "store", "fs")
MAX_LINES = 800


def objects(build):
    """(source relative to the source root, object) of every current source
    of the four folders, from the build's compile_commands.json (stale
    objects of removed files are never read)."""
    with open(os.path.join(build, "compile_commands.json"), encoding="utf-8") as f:
        commands = json.load(f)
    for c in commands:
        src = os.path.normpath(os.path.join(c["directory"], c["file"]))
        parts = src.split(os.sep)
        for i in range(len(parts) - 1, -1, -1):
            if parts[i] in FOLDERS:
                rel = "/".join(parts[i:])
                break
        else:
            continue
        yield rel, os.path.join(c["directory"], c["output"])


def symbols(obj):
    out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True,
                         check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            used.add(name)
        elif kind in "TDBRVWGS":
            defined.add(name)
    return defined, used


def circles(edges):
    """Tarjan's strongly connected components with more than one file."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    build = sys.argv[1]
    files = {}
    for src, obj in objects(build):
        files.setdefault(src, (set(), set()))
        d, u = symbols(obj)
        files[src][0].update(d)
        files[src][1].update(u)
    owner = {}
    for src, (defined, _) in files.items():
        for s in defined:
            owner.setdefault(s, src)
    edges = {src: set() for src in files}
    for src, (_, used) in files.items():
        for s in used:
            o = owner.get(s)
            if o and o != src:
                edges[src].add(o)
    bad = circles(edges)
    ups = sorted((a, b) for a in edges for b in edges[a]
                 if FOLDERS.index(b.split("/")[0]) > FOLDERS.index(a.split("/")[0]))
    args = [a for a in sys.argv[2:] if not a.startswith("--")]
    long_files = []
    if args:
        for src in sorted(files):
            with open(os.path.join(args[0], src), encoding="utf-8") as f:
                n = sum(1 for _ in f)
            if n > MAX_LINES:
                long_files.append((src, n))
    if "--graph" in sys.argv:
        level = {}

        def lv(v, seen=()):
            if v in level:
                return level[v]
            if v in seen:
                return 0
            level[v] = 1 + max((lv(w, seen + (v,)) for w in edges[v]
                                if w.split("/")[0] == v.split("/")[0]),
                               default=-1)
            return level[v]

        for v in files:
            lv(v)
        for v in sorted(files, key=lambda f: (FOLDERS.index(f.split("/")[0]),
                                               level[f], f)):
            print(f"{level[v]:2d} {v}: {' '.join(sorted(edges[v]))}")
    for comp in bad:
        print("circle: " + " <-> ".join(comp))
    for a, b in ups:
        print(f"call up: {a} -> {b}")
    for src, n in long_files:
        print(f"too long: {src} has {n} lines (at most {MAX_LINES})")
    return 1 if bad or ups or long_files else 0


if __name__ == "__main__":
    sys.exit(main())
