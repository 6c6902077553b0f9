#!/usr/bin/env python3
"""filters.py — the filter language, max_distance and explain through a
real mount (docs/filesystem.md, "Filters").

Usage: tests/integration/filters.py PATH/TO/vecfs [-k SUBSTRING]

A collection of 300 seeded vectors (small: searched exactly, so every
result can be compared with a brute-force answer computed here) gets
metadata through a .jsonl import and through setxattr. Every operator and
combination is queried as text, as .json (the structured form) and as a
batch (.fvecs with user.filter / user.max_distance); each result must equal
the brute-force evaluation of the same predicate. Malformed filters fail
close() and read() with EINVAL and say why in the query file's user.error.
A collection of 4,000 (searched through the index) checks that `explain`
(text, JSON and batches: one line per query) names the plan the engine
ran and that .vecfs/stats and .vecfs/metrics count that same plan.

Uses daemon.py's runner: every mount is unmounted and every daemon killed
by pid on every exit path.
"""

import errno
import json
import os
import random
import re
import signal
import struct
import sys

import daemon
from daemon import eq, start_fg, stop, write

N, DIM = 300, 4
LANGS = ["en", "de", "fr", "pt br"]
# Numbers and text under one key: comparisons go numeric only when both
# sides are numbers.
SIZES = ["9", "10", "x1", "-2.5e1", "1e2", "10.0"]


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def meta_of(i):
    m = {"year": str(2000 + i % 30), "lang": LANGS[i % 4], "score": "%g" % (i / 8.0),
         "size": SIZES[i % len(SIZES)]}
    if i % 3 == 0:
        m["tag"] = "t%d" % (i % 5)
    if i % 11 == 0:
        m["title"] = "it's \"x\" (and) or"
    return m


def setup(t):
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    p = start_fg(d, m)
    c = os.path.join(m, "c")
    os.mkdir(c)
    write(os.path.join(c, ".config"), "metric = l2\ndim = %d\n" % DIM)
    rnd = random.Random(13)
    base, lines = {}, []
    for i in range(N):
        v = [f32(rnd.uniform(-1, 1)) for _ in range(DIM)]
        name = "v%03d" % i
        base[name] = (v, meta_of(i))
        lines.append(json.dumps({"name": name, "vector": v, "meta": meta_of(i)}))
    write(os.path.join(c, ".import", "b.jsonl"), "\n".join(lines))
    # Metadata set through setxattr counts the same as imported metadata.
    for i in range(0, N, 7):
        name = "v%03d" % i
        os.setxattr(os.path.join(c, name), "user.note", b"seventh, with comma")
        base[name][1]["note"] = "seventh, with comma"
    return p, m, c, base


def num(s):
    try:
        return float(s) if s.strip() == s and s[:1] in "0123456789-+." else None
    except ValueError:
        return None


def cmp(a, b):
    """The store's order: as numbers when both are numbers, else bytes."""
    x, y = num(a), num(b)
    if x is not None and y is not None:
        return (x > y) - (x < y)
    a, b = a.encode(), b.encode()
    return (a > b) - (a < b)


def has(m, k):
    return k in m


# (filter text, predicate over the metadata dict)
CASES = [
    ("year >= 2020", lambda m: cmp(m["year"], "2020") >= 0),
    ("year > 2005 and year <= 2010 and lang in (en, 'pt br')",
     lambda m: 2005 < int(m["year"]) <= 2010 and m["lang"] in ("en", "pt br")),
    ("year < 2003 or lang = fr", lambda m: int(m["year"]) < 2003 or m["lang"] == "fr"),
    ("not tag = t1", lambda m: m.get("tag") != "t1"),
    ("tag != t1", lambda m: has(m, "tag") and m["tag"] != "t1"),
    ("exists tag and not exists note", lambda m: has(m, "tag") and not has(m, "note")),
    ("score < 10.5", lambda m: float(m["score"]) < 10.5),
    ("lang < en", lambda m: cmp(m["lang"], "en") < 0),
    ("(lang = de or lang = fr) and not (year >= 2010)",
     lambda m: m["lang"] in ("de", "fr") and int(m["year"]) < 2010),
    ('note = "seventh, with comma"', lambda m: m.get("note") == "seventh, with comma"),
    ("year=2003,lang=pt br", lambda m: m["year"] == "2003" and m["lang"] == "pt br"),
    ("user.lang in (de)", lambda m: m["lang"] == "de"),
    # Keywords in any case; and binds tighter than or.
    ("lang IN (de) AND NOT year = 2001 Or lang == fr",
     lambda m: (m["lang"] == "de" and m["year"] != "2001") or m["lang"] == "fr"),
    ("not (lang = de or (year < 2010 and exists tag))",
     lambda m: not (m["lang"] == "de" or (int(m["year"]) < 2010 and has(m, "tag")))),
    ("((year >= 2025))", lambda m: int(m["year"]) >= 2025),
    # = compares bytes (2020.0 is not 2020); a range compares numbers.
    ("year = 2020.0 or lang = fr", lambda m: m["lang"] == "fr"),
    ("year >= 2020.0", lambda m: int(m["year"]) >= 2020),
    ("size < 10", lambda m: cmp(m["size"], "10") < 0),
    ("size >= 10", lambda m: cmp(m["size"], "10") >= 0),
    ("size > 1e1", lambda m: cmp(m["size"], "1e1") > 0),
    ("size != 10", lambda m: m["size"] != "10"),
    ("size in (10, x1)", lambda m: m["size"] in ("10", "x1")),
    ("size <= w", lambda m: cmp(m["size"], "w") <= 0),
    ("title = 'it\\'s \"x\" (and) or'", lambda m: m.get("title") == 'it\'s "x" (and) or'),
    ('"title" != "none" and not exists tag',
     lambda m: has(m, "title") and not has(m, "tag")),
    ("exists title or exists note", lambda m: has(m, "title") or has(m, "note")),
]

# The structured form of some cases (docs/filesystem.md).
JSON_CASES = [
    ({"year": {">=": 2020}}, CASES[0][1]),
    ({"year": {">": 2005, "<=": 2010}, "lang": {"in": ["en", "pt br"]}}, CASES[1][1]),
    ({"$or": [{"year": {"<": 2003}}, {"lang": "fr"}]}, CASES[2][1]),
    ({"$not": {"tag": "t1"}}, CASES[3][1]),
    ({"tag": {"exists": True}, "note": {"exists": False}}, CASES[5][1]),
    ("score < 10.5", CASES[6][1]),
]


def dist(a, b):
    return sum((f32(x) - f32(y)) ** 2 for x, y in zip(a, b))


def query(c, qname, text):
    q = os.path.join(c, ".query", qname)
    write(q, text)
    with open(q, "rb") as f:
        return f.read().decode()


def names_of(text):
    return [line.split("\t")[0] for line in text.splitlines() if line and line[0] != "#"]


def expect(base, pred):
    return sorted(n for n, (_, m) in base.items() if pred(m))


def vec_text(v):
    return " ".join(repr(x) for x in v)


def fvecs_of(rows):
    return b"".join(struct.pack("<i", len(v)) + struct.pack("<%df" % len(v), *v) for v in rows)


def test_text_filters(t):
    p, m, c, base = setup(t)
    try:
        q = base["v001"][0]
        for text, pred in CASES:
            got = names_of(query(c, "q", "k = %d\nfilter = %s\n%s\n" % (N, text, vec_text(q))))
            want = expect(base, pred)
            if not want:
                raise AssertionError("case %r passes nothing: it cannot fail" % text)
            eq(sorted(got), want, "filter %r" % text)
            eq(len(got), len(set(got)), "filter %r: no name twice" % text)
    finally:
        eq(stop(p, m), 0, "exit status after SIGTERM")


def test_json_filters(t):
    p, m, c, base = setup(t)
    try:
        q = base["v002"][0]
        for f, pred in JSON_CASES:
            out = query(c, "q.json", json.dumps({"vector": q, "k": N, "filter": f}))
            got = sorted(h["name"] for h in json.loads(out))
            eq(got, expect(base, pred), "json filter %s" % json.dumps(f))
        # The old object form still means AND of equalities.
        out = query(c, "q.json", json.dumps({"vector": q, "k": N,
                                             "filter": {"lang": "de", "year": 2001}}))
        eq(sorted(h["name"] for h in json.loads(out)),
           expect(base, lambda m: m["lang"] == "de" and m["year"] == "2001"), "old json form")
    finally:
        eq(stop(p, m), 0, "exit status after SIGTERM")


def test_max_distance_and_batch(t):
    p, m, c, base = setup(t)
    try:
        q = base["v010"][0]
        dists = sorted((dist(v, q), n) for n, (v, _) in base.items())
        # A bound halfway between two distances, so float rounding cannot move it.
        bound = (dists[40][0] + dists[41][0]) / 2
        out = query(c, "q", "k = %d\nmax_distance = %r\n%s\n" % (N, bound, vec_text(q)))
        eq(names_of(out), [n for _, n in dists[:41]], "max_distance: exact set, nearest first")
        # k bounds it: the nearest k within the distance.
        out = query(c, "q", "k = 5\nmax_distance = %r\n%s\n" % (bound, vec_text(q)))
        eq(names_of(out), [n for _, n in dists[:5]], "max_distance with a smaller k")
        # With a filter.
        pred = CASES[0][1]
        out = query(c, "q", "k = %d\nmax_distance = %r\nfilter = year >= 2020\n%s\n"
                    % (N, bound, vec_text(q)))
        eq(names_of(out), [n for d, n in dists[:41] if pred(base[n][1])],
           "max_distance and a filter")
        # A batch: two queries, filter and bound from the query file's xattrs.
        qs = [q, base["v020"][0]]
        qf = os.path.join(c, ".query", "b.fvecs")
        write(qf, fvecs_of(qs), "wb")
        os.setxattr(qf, "user.k", str(N).encode())
        os.setxattr(qf, "user.filter", b"lang in (de, fr) and year < 2015")
        os.setxattr(qf, "user.max_distance", repr(bound).encode())
        with open(qf, "rb") as f:
            rows = [line.split("\t") for line in f.read().decode().splitlines()]
        bpred = lambda m: m["lang"] in ("de", "fr") and int(m["year"]) < 2015
        for r, qv in enumerate(qs):
            want = [n for d, n in sorted((dist(v, qv), n) for n, (v, _) in base.items())
                    if d <= bound and bpred(base[n][1])]
            if not want:
                raise AssertionError("batch row %d expects nothing: it cannot fail" % r)
            eq([x[1] for x in rows if x[0] == str(r)], want, "batch row %d" % r)
    finally:
        eq(stop(p, m), 0, "exit status after SIGTERM")


def expect_einval(fn, *a):
    try:
        fn(*a)
    except OSError as e:
        eq(e.errno, errno.EINVAL, "errno")
        return
    raise AssertionError("no EINVAL")


def read_query(path):
    with open(path, "rb") as f:
        return f.read()


def test_malformed_and_explain(t):
    p, m, c, base = setup(t)
    try:
        q = vec_text(base["v003"][0])
        qf = os.path.join(c, ".query", "bad")
        for text, why in [("year >", "expected a value"), ("(a = 1", "expected ')'"),
                          ("a ! b", "'!'"), ("lang in (de", "expected ',' or ')'"),
                          ("a = \"open", "no closing"), ("year >= 1 and", "expected a key"),
                          ("lang in ()", "expected a value"), ("exists", "after 'exists'"),
                          ("not", "expected a key"), ("year = 1)", "unexpected text"),
                          ("or year = 1", "expected a key"), ("lang = en and or", "expected a key"),
                          ("year >> 1", "expected a value"), ("lang in de", "expected '('"),
                          ("size 10", "expected an operator"), ("a = 1 (b = 2)", "unexpected"),
                          ("(" * 40 + "a = 1" + ")" * 40, "nested deeper than 32"),
                          ("not " * 40 + "a = 1", "nested deeper than 32"),
                          ("k" * 300 + " = 1", "key at byte 0 is over 250 bytes")]:
            expect_einval(write, qf, "filter = %s\n%s\n" % (text, q))
            expect_einval(read_query, qf)
            msg = os.getxattr(qf, "user.error").decode()
            if why not in msg or not msg.startswith("filter: "):
                raise AssertionError("%r: user.error %r lacks %r" % (text, msg, why))
        expect_einval(write, qf, "max_distance = x\n%s\n" % q)
        eq(os.getxattr(qf, "user.error").decode(), "max_distance must be a finite number",
           "user.error of a bad max_distance")
        jf = os.path.join(c, ".query", "bad.json")
        for f, why in [({"year": {"~": 1}}, "unknown operator"),
                       ({"year": {"in": 5}}, "\"in\" takes a non-empty array"),
                       ({"year": {"in": []}}, "\"in\" takes a non-empty array"),
                       ({"$or": {"a": 1}}, "\"$or\" takes a non-empty array"),
                       ({"tag": {"exists": 1}}, "\"exists\" takes true or false"),
                       ({"year": {">=": [1]}}, "a value must be a string, number or boolean"),
                       ({"year": {}}, "no operator for key 'year'"),
                       ({"$nor": []}, "unknown operator"), (5, "a non-empty object or a string"),
                       ("year >", "expected a value")]:
            expect_einval(write, jf, json.dumps({"vector": base["v003"][0], "filter": f}))
            msg = os.getxattr(jf, "user.error").decode()
            if why not in msg:
                raise AssertionError("json filter %s: user.error %r lacks %r"
                                     % (json.dumps(f), msg, why))
        # A good query on the same file clears the message.
        write(qf, "filter = year >= 2020\nexplain = 1\n%s\n" % q)
        try:
            os.getxattr(qf, "user.error")
            raise AssertionError("user.error still set after a good query")
        except OSError as e:
            eq(e.errno, errno.ENODATA, "user.error gone")
        out = read_query(qf).decode().splitlines()
        want = expect(base, CASES[0][1])
        eq(out[0], "# plan small, filtered, passing %d of %d, 10 of k 10" % (len(want), N),
           "explain line")
        eq(len(out), 11, "explain adds one line")
        # A batch whose user.filter is malformed fails its read, with a reason.
        bf = os.path.join(c, ".query", "b.fvecs")
        write(bf, struct.pack("<i", DIM) + struct.pack("<%df" % DIM, *base["v003"][0]), "wb")
        os.setxattr(bf, "user.filter", b"year >=")
        expect_einval(read_query, bf)
        if "expected a value" not in os.getxattr(bf, "user.error").decode():
            raise AssertionError("batch: user.error says nothing of the filter")
        with open(os.path.join(m, ".vecfs", "stats")) as f:
            plans = json.load(f)["query_plans"]
        if plans.get("small", 0) < 1 or set(plans) != {"none", "small", "records", "exact",
                                                        "walk", "expand"}:
            raise AssertionError("stats query_plans %r" % plans)
    finally:
        eq(stop(p, m), 0, "exit status after SIGTERM")


def read_stats(m):
    with open(os.path.join(m, ".vecfs", "stats")) as f:
        st = json.load(f)
    return st["query_plans"], st["query_plans_redone_exact"]


def read_plan_metrics(m):
    """{(family, plan): value} of the plan counters in .vecfs/metrics."""
    out = {}
    with open(os.path.join(m, ".vecfs", "metrics")) as f:
        for line in f:
            hit = re.match(r'(vecfs_(?:query_plans|index_filter_plans)_total)\{plan="(\w+)"\} (\d+)$',
                           line.strip())
            if hit:
                out[(hit.group(1), hit.group(2))] = int(hit.group(3))
    return out


EXPLAIN_RE = re.compile(r"# plan (exact|walk|expand)( redone exactly)?, (un)?filtered, "
                        r"passing (\d+) of (\d+), (\d+) of k (\d+)$")
BATCH_EXPLAIN_RE = re.compile(r"# row (\d+): (plan (\w+).*)$")


def check_batch_explain(m, c, qs, filt):
    """A batch of qs with user.filter filt and user.explain = 1: every row
    has one plan line, before its hits, saying what the same query sent
    alone says (plan line and hits), and stats count the plans named."""
    bf = os.path.join(c, ".query", "b.fvecs")
    write(bf, fvecs_of(qs), "wb")
    os.setxattr(bf, "user.filter", filt.encode())
    os.setxattr(bf, "user.explain", b"1")
    plans0, _ = read_stats(m)
    lines = read_query(bf).decode().splitlines()
    plans1, _ = read_stats(m)
    rows, named = [], {}
    for line in lines:
        hit = BATCH_EXPLAIN_RE.match(line)
        if hit:
            eq(int(hit.group(1)), len(rows), "plan lines in row order: %r" % line)
            rows.append((hit.group(2), []))
            named[hit.group(3)] = named.get(hit.group(3), 0) + 1
        else:
            row, name, _ = line.split("\t")
            if not rows or row != str(len(rows) - 1):
                raise AssertionError("hit line %r not after its row's plan line" % line)
            rows[-1][1].append(name)
    eq(len(rows), len(qs), "one plan line per query")
    for r, (plan, names) in enumerate(rows):
        alone = query(c, "q", "k = 10\nexplain = 1\nfilter = %s\n%s\n" % (filt, vec_text(qs[r])))
        eq("# " + plan, alone.splitlines()[0], "row %d: the plan of the query alone" % r)
        eq(names, names_of(alone), "row %d: the hits of the query alone" % r)
    eq({k: plans1[k] - plans0[k] for k in plans1 if plans1[k] != plans0[k]}, named,
       "stats counted the plans the batch named")
    # explain = 0: no plan lines; anything but 0 or 1 is EINVAL, with why.
    os.setxattr(bf, "user.explain", b"0")
    if any(line.startswith("#") for line in read_query(bf).decode().splitlines()):
        raise AssertionError("user.explain = 0 still explains")
    os.setxattr(bf, "user.explain", b"yes")
    expect_einval(read_query, bf)
    eq(os.getxattr(bf, "user.error").decode(), "user.explain must be 0 or 1", "bad user.explain")
    os.unlink(bf)


def test_engine_plans(t):
    """A collection over 2048 vectors is searched through the index: explain
    names the plan the engine really ran (exact, walk or expand), and
    .vecfs/stats and .vecfs/metrics count that same plan."""
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    p = start_fg(d, m)
    try:
        c = os.path.join(m, "big")
        os.mkdir(c)
        write(os.path.join(c, ".config"), "metric = l2\ndim = %d\n" % DIM)
        rnd = random.Random(17)
        n_big = 4000
        base, lines = {}, []
        for i in range(n_big):
            v = [f32(rnd.uniform(-1, 1)) for _ in range(DIM)]
            meta = {"par": str(i % 2)}
            if i % 400 == 0:
                meta["grp"] = "r"
            base["b%04d" % i] = (v, meta)
            lines.append(json.dumps({"name": "b%04d" % i, "vector": v, "meta": meta}))
        write(os.path.join(c, ".import", "b.jsonl"), "\n".join(lines))
        q = [f32(rnd.uniform(-1, 1)) for _ in range(DIM)]
        by_dist = sorted(base, key=lambda n: dist(base[n][0], q))
        for text, pred, filtered in (("grp = r", lambda mt: mt.get("grp") == "r", True),
                                     ("par = 1", lambda mt: mt["par"] == "1", True),
                                     (None, lambda mt: True, False)):
            plans0, _ = read_stats(m)
            metrics0 = read_plan_metrics(m)
            out = query(c, "q", "k = 10\nexplain = 1\n%s%s\n"
                        % ("filter = %s\n" % text if text else "", vec_text(q))).splitlines()
            hit = EXPLAIN_RE.match(out[0])
            if hit is None:
                raise AssertionError("%r: explain line %r" % (text, out[0]))
            plan = hit.group(1)
            passing = sum(1 for n in base if pred(base[n][1]))
            eq((hit.group(3) is None, int(hit.group(4)), int(hit.group(5)), int(hit.group(6))),
               (filtered, passing, n_big, 10), "%r: explain %r" % (text, out[0]))
            want = [n for n in by_dist if pred(base[n][1])][:10]
            got = names_of("\n".join(out))
            if text == "grp = r":
                eq(sorted(got), sorted(want), "all 10 passing vectors")
            elif len(set(got) & set(want)) < 8 or not all(pred(base[n][1]) for n in got):
                raise AssertionError("%r: %r against exact %r" % (text, got, want))
            plans1, _ = read_stats(m)
            delta = {k: plans1[k] - plans0[k] for k in plans1 if plans1[k] != plans0[k]}
            eq(delta, {plan: 1}, "%r: stats counted the plan explain named" % text)
            metrics1 = read_plan_metrics(m)
            key = ("vecfs_query_plans_total", plan)
            eq(metrics1[key] - metrics0.get(key, 0), 1, "%r: metrics query plan" % text)
            ikey = ("vecfs_index_filter_plans_total", plan)
            if filtered and metrics1[ikey] - metrics0[ikey] < 1:
                raise AssertionError("%r: the engine did not count plan %s" % (text, plan))
        # The JSON form: an object with "explain" and the usual results.
        txt = names_of(query(c, "q", "k = 10\nfilter = grp = r\n%s\n" % vec_text(q)))
        res = json.loads(query(c, "q.json", json.dumps({"vector": q, "k": 10, "explain": True,
                                                        "filter": {"grp": "r"}})))
        ex = res["explain"]
        if ex["plan"] not in ("exact", "walk", "expand") or not isinstance(ex["redone_exact"],
                                                                          bool):
            raise AssertionError("json explain %r" % ex)
        eq((ex["filtered"], ex["passing"], ex["count"], ex["hits"], ex["k"]),
           (True, 10, n_big, 10, 10), "json explain %r" % ex)
        eq([h["name"] for h in res["results"]], txt, "json results = text results")
        res = json.loads(query(c, "q.json", json.dumps({"vector": q, "k": 3, "explain": False})))
        eq(len(res), 3, "explain false: the plain array")
        expect_einval(write, os.path.join(c, ".query", "q.json"),
                      json.dumps({"vector": q, "explain": 1}))
        eq(os.getxattr(os.path.join(c, ".query", "q.json"), "user.error").decode(),
           "explain must be true or false", "json explain not a boolean")
        # Batches: a sparse filter (the planner scans exactly) and a half one
        # (it walks), several queries each.
        qs = [q] + [[f32(rnd.uniform(-1, 1)) for _ in range(DIM)] for _ in range(5)]
        check_batch_explain(m, c, qs, "grp = r")
        check_batch_explain(m, c, qs, "par = 1")
    finally:
        eq(stop(p, m), 0, "exit status after SIGTERM")


TESTS = [test_text_filters, test_json_filters, test_max_distance_and_batch,
         test_malformed_and_explain, test_engine_plans]

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(daemon.main(TESTS, __doc__))
