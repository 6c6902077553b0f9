#!/usr/bin/env python3
"""operator_kit.py — what an operator installs beside vecfs, checked by the
tools that will read it (issue 12): the Prometheus rules, their unit tests
and the scrape configuration (promtool), the metrics page of a real mount
(promtool check metrics, and every metric the dashboard and the alerts
name must be on it), the systemd unit (systemd-analyze verify), and the
logrotate file (real logrotate rotating the audit log of a running daemon,
which reopens it on SIGHUP).

Usage: tests/integration/operator_kit.py PATH/TO/vecfs [-k SUBSTRING]

Uses daemon.py's runner: every mount is unmounted and every daemon killed
by pid on every exit path. The tools are test dependencies
(scripts/install-deps.sh); a missing one fails the test.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import daemon
from daemon import eq, start_fg, stop, write

CONTRIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib")
MONITORING = os.path.join(CONTRIB, "monitoring")


def tool(name):
    path = shutil.which(name)
    if path is None:
        raise AssertionError("%s is not installed (scripts/install-deps.sh installs it)" % name)
    return path


def quiet_ok(cmd, what, stdin=None):
    """Runs cmd; it must exit 0 and print nothing on stderr."""
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or r.stderr.strip():
        raise AssertionError("%s: exit %d\n%s%s" % (what, r.returncode, r.stdout, r.stderr))
    return r.stdout


def metrics_page(m):
    """A real metrics page of a mount that has served writes, a query and
    failed requests, so that every family has samples."""
    os.mkdir(os.path.join(m, "c"))
    write(os.path.join(m, "c", "a"), "1 2\n")
    write(os.path.join(m, "c", "b"), "2 3\n")
    os.unlink(os.path.join(m, "c", "b"))
    q = os.path.join(m, "c", ".query", "q")
    write(q, "1 2\n")
    with open(q) as f:
        eq(f.read().split("\t")[0], "a", "query result")
    if os.path.exists(os.path.join(m, "c", "missing")):
        raise AssertionError("a missing vector exists")
    with open(os.path.join(m, ".vecfs", "metrics")) as f:
        return f.read()


def named_metrics(expr):
    """The vecfs metric families an expression reads (histogram series map
    to their family)."""
    names = set(re.findall(r"\b(vecfs_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.startswith("vecfs_query_duration")
            else n for n in names}


def test_prometheus_rules(t):
    promtool = tool("promtool")
    quiet_ok([promtool, "check", "rules", os.path.join(MONITORING, "vecfs-alerts.yml")],
             "promtool check rules")
    quiet_ok([promtool, "test", "rules", os.path.join(MONITORING, "vecfs-alerts.test.yml")],
             "promtool test rules")
    quiet_ok([promtool, "check", "config", os.path.join(MONITORING, "prometheus.yml")],
             "promtool check config")
    # The unit tests must be able to fail: a raised threshold breaks them.
    for name in ("vecfs-alerts.yml", "vecfs-alerts.test.yml"):
        shutil.copy(os.path.join(MONITORING, name), t)
    rules = os.path.join(t, "vecfs-alerts.yml")
    with open(rules) as f:
        text = f.read()
    write(rules, text.replace("> 0.90", "> 0.95"))
    r = subprocess.run([promtool, "test", "rules", os.path.join(t, "vecfs-alerts.test.yml")],
                       capture_output=True, text=True, timeout=120)
    if r.returncode == 0:
        raise AssertionError("promtool test rules passed with a changed threshold")


def test_metrics_page_and_dashboard(t):
    promtool = tool("promtool")
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    p = start_fg(d, m)
    try:
        page = metrics_page(m)
    finally:
        stop(p, m)
    out = quiet_ok([promtool, "check", "metrics"], "promtool check metrics", stdin=page)
    eq(out.strip(), "", "promtool check metrics findings")
    families = set(re.findall(r"^# TYPE (vecfs_[a-z_]+) ", page, re.M))
    with open(os.path.join(MONITORING, "vecfs-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [tg["expr"] for panel in dash["panels"] for tg in panel["targets"]]
    with open(os.path.join(MONITORING, "vecfs-alerts.yml")) as f:
        exprs += re.findall(r"^\s+expr: (.*)$", f.read(), re.M)
    if len(exprs) < 20:
        raise AssertionError("found only %d expressions" % len(exprs))
    used = set()
    for e in exprs:
        used |= named_metrics(e)
    missing = sorted(used - families)
    if missing:
        raise AssertionError("dashboard/alerts read metrics vecfs does not export: %s" % missing)
    for want in ("vecfs_health_ok", "vecfs_store_max_bytes", "vecfs_snapshot_age_seconds",
                 "vecfs_query_duration_seconds"):
        if want not in used:
            raise AssertionError("nothing watches %s" % want)
    if not re.search(r"^vecfs_health_ok 1$", page, re.M):
        raise AssertionError("a healthy store exports vecfs_health_ok %r"
                             % re.findall(r"^vecfs_health_ok.*$", page, re.M))


def test_systemd_unit(t):
    analyze = tool("systemd-analyze")
    with open(os.path.join(CONTRIB, "vecfs.service")) as f:
        unit = f.read()
    # verify checks that ExecStart's program exists: point it at this build.
    path = os.path.join(t, "vecfs.service")
    write(path, unit.replace("/usr/local/bin/vecfs", daemon.VECFS))
    quiet_ok([analyze, "verify", path], "systemd-analyze verify")
    # The options reach the daemon as systemd splits them: -o allow_other
    # stays one option with its value.
    opts = re.search(r'^Environment="VECFS_OPTIONS=([^"]*)"$', unit, re.M)
    if opts is None:
        raise AssertionError("VECFS_OPTIONS is not one quoted assignment")
    words = opts.group(1).split()
    eq(words[:2], ["-o", "allow_other"], "VECFS_OPTIONS")
    if "Restart=on-failure" not in unit or "ExecReload=/bin/kill -HUP $MAINPID" not in unit:
        raise AssertionError("the unit lacks Restart=on-failure or the SIGHUP reload")


def audit_paths(path):
    with open(path) as f:
        return [json.loads(line)["path"] for line in f]


def test_logrotate_reopens_audit_log(t):
    logrotate = tool("logrotate")
    d, m = os.path.join(t, "d"), os.path.join(t, "m")
    log = os.path.join(t, "audit.jsonl")
    p = start_fg("--audit-log", log, d, m)
    try:
        os.mkdir(os.path.join(m, "before"))
        with open(os.path.join(CONTRIB, "vecfs.logrotate")) as f:
            conf = f.read()
        conf = conf.replace("/var/log/vecfs/audit.jsonl", log)
        conf = conf.replace("systemctl reload vecfs.service", "kill -HUP %d" % p.pid)
        if str(p.pid) not in conf or log not in conf:
            raise AssertionError("vecfs.logrotate no longer has the expected lines")
        conf_path = os.path.join(t, "logrotate.conf")
        write(conf_path, conf)
        r = subprocess.run([logrotate, "-f", "-s", os.path.join(t, "state"), conf_path],
                           capture_output=True, text=True, timeout=60)
        eq((r.returncode, r.stderr), (0, ""), "logrotate")
        os.mkdir(os.path.join(m, "after"))
        # The line of a mkdir is written right after its reply.
        deadline = time.time() + 5
        while not (os.path.exists(log) and "after" in audit_paths(log)):
            if time.time() > deadline:
                raise AssertionError("no new audit log with the mkdir after the rotation")
            time.sleep(0.05)
        if not daemon.mounted(m):
            raise AssertionError("SIGHUP unmounted vecfs")
        with open(os.path.join(m, ".vecfs", "metrics")) as f:
            if "vecfs_audit_failures_total 0" not in f.read():
                raise AssertionError("audit lines were lost across the rotation")
    finally:
        eq(stop(p, m), 0, "exit status after SIGTERM")
    eq(audit_paths(log + ".1"), ["before"], "rotated audit log")
    eq(audit_paths(log), ["after"], "new audit log")
    eq(os.stat(log).st_mode & 0o777, 0o600, "mode of the new audit log")


TESTS = [test_prometheus_rules, test_metrics_page_and_dashboard, test_systemd_unit,
         test_logrotate_reopens_audit_log]

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(daemon.main(TESTS, __doc__))
