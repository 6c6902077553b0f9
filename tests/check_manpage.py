#!/usr/bin/env python3
"""check_manpage.py — the vecfs(1) man page renders without a warning and
names every long option of `vecfs --help`.

Usage: tests/check_manpage.py PATH/TO/vecfs PATH/TO/vecfs.1

Runs `groff -man -ww -z` and `man -l --warnings -E UTF-8` (MANWIDTH=80) on
the page: each must exit 0 and print nothing on stderr. Then every long
option that `vecfs --help` prints must appear in the page's source (with
roff's `\\-` read as `-`), and every section the page promises (NAME,
SYNOPSIS, OPTIONS, FILES, SIGNALS, EXIT STATUS, SEE ALSO) in its rendered
text. The option check proves at each run that it can fail: without the
lines that name the first option, that option must be reported missing.
"""

import os
import re
import shutil
import subprocess
import sys

SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "FILES", "SIGNALS",
            "EXIT STATUS", "SEE ALSO"]


def run_clean(cmd, what, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    if r.returncode != 0 or r.stderr.strip():
        raise AssertionError("%s: exit %d\n%s" % (what, r.returncode, r.stderr))
    return r.stdout


def missing_options(options, source):
    text = source.replace("\\-", "-")
    return [o for o in options if not re.search(re.escape(o) + r"(?![a-z-])", text)]


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: check_manpage.py PATH/TO/vecfs PATH/TO/vecfs.1\n")
        return 2
    vecfs, page = argv[1], argv[2]
    for tool in ("groff", "man"):
        if shutil.which(tool) is None:
            raise AssertionError("%s is not installed (scripts/install-deps.sh installs it)" % tool)
    run_clean(["groff", "-man", "-ww", "-z", page], "groff -man -ww -z")
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    rendered = run_clean(["man", "-l", "--warnings", "-E", "UTF-8", page], "man -l --warnings", env)
    for s in SECTIONS:
        if not re.search(r"^" + re.escape(s) + r"$", rendered, re.M):
            raise AssertionError("section %s is not in the rendered page" % s)
    help_text = subprocess.run([vecfs, "--help"], capture_output=True, text=True,
                               timeout=30, check=True).stdout
    options = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", help_text)))
    if len(options) < 10:
        raise AssertionError("vecfs --help lists only %r" % options)
    with open(page, encoding="utf-8") as f:
        source = f.read()
    lost = missing_options(options, source)
    if lost:
        raise AssertionError("options of vecfs --help missing from %s: %s" % (page, lost))
    first = options[0]
    cut = "\n".join(l for l in source.split("\n")
                    if first not in l.replace("\\-", "-"))
    if missing_options([first], cut) != [first]:
        raise AssertionError("self-check: %s still found after its lines were removed" % first)
    print("%s: no warnings, %d sections, all %d long options" % (page, len(SECTIONS), len(options)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except AssertionError as e:
        print("FAIL: %s" % e)
        sys.exit(1)
