#!/usr/bin/env python3
"""check-docs.py — the operator documentation names everything an operator
can set or watch.

Usage: scripts/check-docs.py SRCDIR

Reads from the sources, and fails listing each item missing from its page:

  .config keys   the key_names table of store/config.c: each must be in
                 docs/filesystem.md (the reference) and in docs/tuning.md
                 or docs/limits.md, written `key`
  metrics        every "# TYPE vecfs_NAME" in fs/*.c: in docs/monitoring.md
  pages          every docs/*.md: linked from README.md

Exit 0 when nothing is missing, 1 otherwise, 2 on bad usage. (The options
of `vecfs --help` are checked against the man page by tests/check_manpage.py,
the messages against docs/troubleshooting.md by scripts/check-messages.py.)
"""

import glob
import os
import re
import sys


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def config_keys(src):
    text = read(os.path.join(src, "store", "config.c"))
    m = re.search(r"key_names\[[^\]]*\]\s*=\s*\{([^}]*)\}", text)
    if m is None:
        raise SystemExit("check-docs.py: no key_names table in store/config.c")
    return re.findall(r'"([a-z_]+)"', m.group(1))


def metric_families(src):
    found = set()
    for path in glob.glob(os.path.join(src, "fs", "*.c")):
        found |= set(re.findall(r"# TYPE (vecfs_[a-z_]+)", read(path)))
    return sorted(found)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    src = argv[1]
    docs = os.path.join(src, "docs")
    missing = []
    keys = config_keys(src)
    fs_doc = read(os.path.join(docs, "filesystem.md"))
    tuning = read(os.path.join(docs, "tuning.md")) + read(os.path.join(docs, "limits.md"))
    for k in keys:
        if "`%s`" % k not in fs_doc:
            missing.append(".config key `%s` not in docs/filesystem.md" % k)
        if "`%s`" % k not in tuning:
            missing.append(".config key `%s` not in docs/tuning.md or docs/limits.md" % k)
    metrics = metric_families(src)
    monitoring = read(os.path.join(docs, "monitoring.md"))
    for name in metrics:
        if not re.search(r"\b%s\b" % re.escape(name), monitoring):
            missing.append("metric %s not in docs/monitoring.md" % name)
    readme = read(os.path.join(src, "README.md"))
    pages = sorted(os.path.basename(p) for p in glob.glob(os.path.join(docs, "*.md")))
    for page in pages:
        if "(docs/%s)" % page not in readme:
            missing.append("docs/%s is not linked from README.md" % page)
    if len(keys) < 5 or len(metrics) < 10 or len(pages) < 10:
        missing.append("found only %d .config keys, %d metrics, %d pages: the patterns no longer "
                       "match the sources" % (len(keys), len(metrics), len(pages)))
    for line in missing:
        print(line)
    if missing:
        return 1
    print("%d .config keys, %d metrics, %d pages: all documented"
          % (len(keys), len(metrics), len(pages)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
