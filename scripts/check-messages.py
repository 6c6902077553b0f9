#!/usr/bin/env python3
"""check-messages.py — every message vecfs prints is in docs/troubleshooting.md.

Usage: scripts/check-messages.py SRCDIR [--doc FILE] [--list]

Reads the C sources under SRCDIR, takes the format string of every call
below (the calls that print a message to an operator or hand one back
through a file), and looks for each in the troubleshooting page (default
SRCDIR/docs/troubleshooting.md). A printf directive (%s, %zu, %" PRIu32,
%.*s ...) matches any text within one line of the page, so a message may
be written there as `DATADIR <path>: not a directory`. Exit 0 when every
message is found, 1 listing each missing one as FILE:LINE: "FORMAT", 2 on
bad usage.

Calls read (comments are skipped; adjacent string literals and the
<inttypes.h> macros between them are joined):

  fs/*.c     fprintf(stderr, FMT, ...)          command-line and start-up errors
  fs/*.c     snprintf(msg, LEN, FMT, ...)       start-up errors handed up as "vecfs: MSG"
  fs/*.c     fsd_log(FSD_LOG_INFO|WARN|ERROR, FMT, ...)   daemon log lines (not DEBUG)
  fs/*.c     rows_fail(S, RC, FMT, ...)         .import/ batch errors (close() fails, logged)
  fs/*.c     fsd_qwire_error(BUF, CAP, ERR, NEED, FMT, ...)   one-request (ioctl) query errors
  fs/query_wire.c  reject(why, ERR, REASON)     why an ioctl request is malformed
  fs/ops_admin.c  vc_buf_printf(b, FMT, ...) whose FMT starts with a lowercase
             letter                             .vecfs/health lines of the daemon
  store/*.c  st_errbuf_set(OPT, FMT, ...)       why a store does not open
  store/*.c  st_log(ST, ST_LOG_INFO|WARN|ERROR, FMT, ...)   store log lines (not DEBUG)
  store/*.c  st_health_set(ST, FMT, ...)        .vecfs/health lines
  store/config.c  seterr(err, errlen, FMT, ...) .config errors
  store/check.c   problem(ck, FMT, ...), note(ck, FMT, ...)   `vecfs check` report lines
  store/check.c   fprintf(report, FMT, ...)     the report's first and last lines

A call whose format is not a string literal (a variable such as "%s" of a
message made elsewhere) is skipped: the message is read where it is made.
A format with no word of two letters once its directives and a leading
"vecfs: " are removed ("%s", "vecfs: %s\\n", "%s: %s") says nothing of its
own and is skipped.

After a passing run the script proves the matcher can fail: it drops the
page's lines that hold the first message and checks that this message is
then reported missing (exit 1 if it is not).
"""

import glob
import os
import re
import sys

RULES = [
    ("fs/*.c", r"\bfprintf\(\s*stderr\s*,"),
    ("fs/*.c", r"\bsnprintf\(\s*msg\s*,[^,]+,"),
    ("fs/*.c", r"\bfsd_log\(\s*FSD_LOG_(?:INFO|WARN|ERROR)\s*,"),
    ("fs/*.c", r"\brows_fail\([^,]+,[^,]+,"),
    ("fs/*.c", r"\bfsd_qwire_error\([^,]+,[^,]+,[^,]+,[^,]+,"),
    ("fs/query_wire.c", r"\breject\(\s*why\s*,[^,]+,"),
    ("fs/ops_admin.c", r"\bvc_buf_printf\(\s*b\s*,(?=\s*\"[a-z])"),
    ("store/*.c", r"\bst_errbuf_set\([^,]+,"),
    ("store/*.c", r"\bst_log\([^,]+,\s*ST_LOG_(?:INFO|WARN|ERROR)\s*,"),
    ("store/*.c", r"\bst_health_set\([^,]+,"),
    ("store/config.c", r"\bseterr\(\s*err\s*,\s*errlen\s*,"),
    ("store/check.c", r"\b(?:problem|note)\(\s*ck\s*,"),
    ("store/check.c", r"\bfprintf\(\s*report\s*,"),
]

# printf directive: flags, width (or *), precision (or .*), length, conversion.
DIRECTIVE = re.compile(r"%[-+ #0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|z|j|t|L)?[diouxXeEfgGcsp]")
ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'", "0": "\0"}


def strip_comments(text):
    """The text with C comments blanked (newlines kept, so lines count)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read_format(text, i):
    """The format argument starting at text[i]: adjacent string literals,
    with PRI* macros between them read as the directive's conversion.
    None when the argument is not a string literal."""
    fmt, seen = [], False
    while True:
        m = re.compile(r"\s*").match(text, i)
        i = m.end()
        if i < len(text) and text[i] == '"':
            j, lit = i + 1, []
            while text[j] != '"':
                if text[j] == "\\":
                    lit.append(ESCAPES.get(text[j + 1], text[j + 1]))
                    j += 2
                else:
                    lit.append(text[j])
                    j += 1
            fmt.append("".join(lit))
            seen = True
            i = j + 1
            continue
        m = re.compile(r"PRI[diouxX](?:8|16|32|64|MAX|PTR)").match(text, i)
        if m and seen:
            fmt.append(m.group(0)[3])
            i = m.end()
            continue
        return "".join(fmt) if seen else None


def messages(srcdir):
    """[(path, line, format)] of every rule's calls, in file order."""
    found = []
    for pattern, call in RULES:
        for path in sorted(glob.glob(os.path.join(srcdir, pattern))):
            with open(path, encoding="utf-8") as f:
                text = strip_comments(f.read())
            for m in re.finditer(call, text):
                fmt = read_format(text, m.end())
                if fmt is None:
                    continue
                line = text.count("\n", 0, m.start()) + 1
                found.append((os.path.relpath(path, srcdir), line, fmt.rstrip("\n")))
    return found


def says_something(fmt):
    rest = DIRECTIVE.sub(" ", fmt)
    rest = re.sub(r"^vecfs: ", "", rest)
    return re.search(r"[A-Za-z]{2}", rest) is not None


def matcher(fmt):
    """A regex that finds the message within one line of the page: the
    literal text as it is (white space runs match any white space run),
    each directive any text."""
    parts = []
    for piece in re.split(r"(%%|" + DIRECTIVE.pattern + ")", fmt):
        if piece == "%%":
            parts.append("%")
        elif piece and DIRECTIVE.fullmatch(piece):
            parts.append("[^\n]*?")
        elif piece:
            parts.append(r"\s+".join(re.escape(w) for w in re.split(r"\s+", piece)))
    return re.compile("".join(parts))


def missing(msgs, doc_text):
    return [(p, l, f) for p, l, f in msgs if not matcher(f).search(doc_text)]


def main(argv):
    args = argv[1:]
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(__doc__)
        return 0 if args else 2
    srcdir, doc, listing = args[0], None, False
    rest = args[1:]
    while rest:
        if rest[0] == "--doc" and len(rest) > 1:
            doc, rest = rest[1], rest[2:]
        elif rest[0] == "--list":
            listing, rest = True, rest[1:]
        else:
            sys.stderr.write("check-messages.py: unknown argument '%s'\n" % rest[0])
            return 2
    doc = doc or os.path.join(srcdir, "docs", "troubleshooting.md")
    try:
        with open(doc, encoding="utf-8") as f:
            doc_text = f.read()
    except OSError as e:
        sys.stderr.write("check-messages.py: %s\n" % e)
        return 2
    msgs = [m for m in messages(srcdir) if says_something(m[2])]
    if len(msgs) < 50:
        sys.stderr.write("check-messages.py: only %d messages found under %s; "
                         "the call patterns no longer match the sources\n" % (len(msgs), srcdir))
        return 1
    if listing:
        for p, l, f in msgs:
            print("%s:%d: %r" % (p, l, f))
    lost = missing(msgs, doc_text)
    for p, l, f in lost:
        print("%s:%d: not in %s: %r" % (p, l, os.path.basename(doc), f))
    if lost:
        print("%d of %d messages are not documented" % (len(lost), len(msgs)))
        return 1
    # The matcher can fail: without the lines that hold the first message,
    # that message must be reported.
    first = msgs[0]
    rx = matcher(first[2])
    cut = "\n".join(l for l in doc_text.split("\n") if not rx.search(l))
    if not missing([first], cut):
        print("self-check: %s:%d %r still matched after its lines were removed"
              % (first[0], first[1], first[2]))
        return 1
    print("%d messages, all in %s" % (len(msgs), os.path.basename(doc)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
