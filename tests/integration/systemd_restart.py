#!/usr/bin/env python3
"""systemd_restart.py — contrib/vecfs.service restarts a killed daemon
(issue 12 item 4).

Usage: tests/integration/systemd_restart.py PATH/TO/vecfs [-k SUBSTRING]

CI containers do not run systemd as PID 1, so this test runs the unit the
way systemd does, from the unit file itself: Environment= assignments
(quoting and C escapes as systemd.syntax(7) gives them, a later assignment
of a variable overriding an earlier one, as a drop-in does), ExecStartPre=,
ExecStart= and ExecStopPost= with systemd's word splitting, `${VAR}`
(one word, exactly the value) and `$VAR` as a word of its own (split at
white space, zero or more words), the `-` prefix (failure ignored), and
Restart=on-failure with RestartSec= as systemd.service(5) defines them: a
non-zero exit or a death by a signal other than SIGHUP, SIGINT, SIGTERM or
SIGPIPE is a failure and restarts the service after ExecStopPost= ran and
RestartSec= passed; exit 0 or those four signals is a clean exit and does
not.

The unit's paths are pointed at this build and a temporary directory (as
operator_kit.py does for systemd-analyze verify); the environment comes
from a drop-in, the way an operator adjusts the unit. Every daemon is
stopped by its pid and every mount removed, on every exit path.
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import daemon
from daemon import eq, write

UNIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib",
                    "vecfs.service")
CLEAN_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)
C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
             "\\": "\\", '"': '"', "'": "'", "s": " "}


# ---------------------------------------------------------------------------
# The unit file, read as systemd reads it
# ---------------------------------------------------------------------------

def split_words(line):
    """systemd's word splitting: white space separates words, "..." and
    '...' quote (also inside a word), backslash starts a C escape. Returns
    [(word, had_quotes)]."""
    words, cur, quoted, i, quote = [], None, False, 0, None
    while i < len(line):
        ch = line[i]
        if quote is None and ch in " \t\n":
            if cur is not None:
                words.append((cur, quoted))
                cur, quoted = None, False
        elif quote is None and ch in "\"'":
            quote, quoted, cur = ch, True, cur or ""
        elif ch == quote:
            quote = None
        elif ch == "\\":
            i += 1
            if i == len(line):
                raise ValueError("trailing backslash in %r" % line)
            if line[i] not in C_ESCAPES:
                raise ValueError("escape \\%s is not supported here" % line[i])
            cur = (cur or "") + C_ESCAPES[line[i]]
        else:
            cur = (cur or "") + ch
        i += 1
    if quote is not None:
        raise ValueError("unbalanced quotes in %r" % line)
    if cur is not None:
        words.append((cur, quoted))
    return words


def read_service(text):
    """The [Service] section: key -> list of values in order."""
    section, out = None, {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]":
            continue
        key, _, value = line.partition("=")
        if "%" in value.replace("%%", ""):
            raise ValueError("specifiers are not emulated: %r" % line)
        out.setdefault(key.strip(), []).append(value.strip().replace("%%", "%"))
    return out


def environment(service):
    env = {}
    for value in service.get("Environment", []):
        if value == "":
            env.clear()  # an empty assignment resets the list
            continue
        for word, _ in split_words(value):
            name, eqs, val = word.partition("=")
            if not eqs or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError("invalid environment assignment %r" % word)
            env[name] = val
    return env


def command(value, env):
    """An Exec*= line -> (ignore_failure, argv) with variables expanded."""
    ignore = False
    while value[:1] in ("-", "@", ":", "+", "!"):
        if value[0] != "-":
            raise ValueError("prefix %r is not emulated" % value[0])
        ignore, value = True, value[1:]
    argv = []
    for word, quoted in split_words(value):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole and not quoted:
            argv += env.get(whole.group(1), "").split()
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$",
                           lambda m: env.get(m.group(1), "") if m.group(1) else "$", word))
    if not argv or not argv[0].startswith("/"):
        raise ValueError("the command must be an absolute path: %r" % value)
    return ignore, argv


def on_failure_restarts(returncode):
    """Restart=on-failure: restart unless the exit was clean."""
    if returncode < 0:
        return -returncode not in CLEAN_SIGNALS
    return returncode != 0


# ---------------------------------------------------------------------------
# A service manager for one unit
# ---------------------------------------------------------------------------

class Service:
    def __init__(self, text, dropin, log):
        self.unit = read_service(text + "\n[Service]\n" + dropin)
        self.env = environment(self.unit)
        self.restart = self.unit["Restart"][-1]
        self.restart_sec = float(self.unit["RestartSec"][-1])
        self.log = log
        self.main = None
        self.history = []  # (event, detail)

    def run(self, key, extra_env=None):
        for value in self.unit.get(key, []):
            ignore, argv = command(value, self.env)
            env = dict(os.environ, **self.env, **(extra_env or {}))
            rc = subprocess.call(argv, env=env, stdin=subprocess.DEVNULL,
                                 stdout=self.log, stderr=self.log, timeout=60)
            self.history.append((key, rc))
            if rc != 0 and not ignore:
                raise AssertionError("%s %r failed with %d" % (key, argv, rc))

    def start(self):
        self.run("ExecStartPre")
        ignore, argv = command(self.unit["ExecStart"][-1], self.env)
        self.main = subprocess.Popen(argv, env=dict(os.environ, **self.env),
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        daemon.DAEMONS.append((self.main, self.env["VECFS_MOUNTPOINT"]))
        self.history.append(("start", self.main.pid))
        return argv

    def wait_exit(self, timeout=60):
        """Waits for the main process to end; then does what systemd does:
        ExecStopPost=, and for a failure under Restart=on-failure,
        RestartSec= and a new start. Returns the exit status."""
        rc = self.main.wait(timeout)
        if rc < 0:
            post_env = {"SERVICE_RESULT": "signal", "EXIT_CODE": "killed",
                        "EXIT_STATUS": signal.Signals(-rc).name[3:]}
        else:
            post_env = {"SERVICE_RESULT": "success" if rc == 0 else "exit-code",
                        "EXIT_CODE": "exited", "EXIT_STATUS": str(rc)}
        self.history.append(("exit", rc))
        self.run("ExecStopPost", post_env)
        if self.restart == "on-failure" and on_failure_restarts(rc):
            time.sleep(self.restart_sec)
            self.history.append(("restart", self.restart_sec))
            self.start()
        return rc


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_systemd_rules(t):
    """The emulation's reading of systemd's rules, on lines the unit uses
    and their neighbours (each can fail)."""
    env = environment({"Environment": ["A=/x", '"B=-o allow_other --z q"', "C=1 D=2",
                                       "A=/y", r'E="a b"\tc']})
    eq(env, {"A": "/y", "B": "-o allow_other --z q", "C": "1", "D": "2", "E": "a b\tc"},
       "Environment= assignments")
    eq(command("/bin/p $B ${A} x${C}y $$D $NONE", env),
       (False, ["/bin/p", "-o", "allow_other", "--z", "q", "/y", "x1y", "$D"]),
       "ExecStart= expansion")
    eq(command('-/bin/p "${B}"', env), (True, ["/bin/p", "-o allow_other --z q"]),
       "quoted ${VAR} and the - prefix")
    # systemd ignores the word "allow_other" with a warning (the defect
    # issue 12 names); the emulation refuses the unit instead.
    try:
        environment({"Environment": ["VECFS_OPTIONS=-o allow_other"]})
        raise AssertionError("an unquoted assignment with a space was accepted")
    except ValueError:
        pass
    eq([on_failure_restarts(rc) for rc in (0, 1, 2, -9, -6, -11, -15, -2, -1, -13)],
       [False, True, True, True, True, True, False, False, False, False],
       "Restart=on-failure by exit status")


def service(t):
    with open(UNIT) as f:
        text = f.read()
    vecfs_path = "/usr/local/bin/vecfs"
    if vecfs_path not in text or "/var/log/vecfs" not in text:
        raise AssertionError("the unit no longer has the paths this test points elsewhere")
    text = text.replace(vecfs_path, daemon.VECFS).replace("/var/log/vecfs",
                                                         os.path.join(t, "log"))
    audit = os.path.join(t, "log", "audit.jsonl")
    dropin = ('Environment=VECFS_DATADIR=%s VECFS_MOUNTPOINT=%s\n'
              'Environment="VECFS_OPTIONS=-o allow_other --audit-log %s"\n'
              % (os.path.join(t, "data"), os.path.join(t, "mnt"), audit))
    log = open(os.path.join(t, "service.log"), "wb")
    return Service(text, dropin, log), audit


def wait_serving(mnt, proc, timeout=30):
    """Mounted and answering (a dead mount left behind answers ENOTCONN)."""
    deadline = time.time() + timeout
    while True:
        try:
            if daemon.mounted(mnt):
                os.statvfs(mnt)
                os.listdir(mnt)
                return
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                raise
        if proc.poll() is not None:
            raise AssertionError("vecfs exited with %d" % proc.returncode)
        if time.time() > deadline:
            raise AssertionError("%s not serving within %d s" % (mnt, timeout))
        time.sleep(0.05)


def query_first(mnt, text):
    q = os.path.join(mnt, "c", ".query", "q")
    write(q, text)
    with open(q) as f:
        return f.read().split("\t")[0]


def test_killed_daemon_restarts(t):
    svc, audit = service(t)
    argv = svc.start()
    mnt = svc.env["VECFS_MOUNTPOINT"]
    eq(argv, [daemon.VECFS, "-f", "-o", "allow_other", "--audit-log", audit,
              svc.env["VECFS_DATADIR"], mnt], "ExecStart= as systemd runs it")
    wait_serving(mnt, svc.main)
    os.mkdir(os.path.join(mnt, "c"))
    for i in range(50):
        write(os.path.join(mnt, "c", "v%d" % i), "%d 1 0\n" % i)
    os.setxattr(os.path.join(mnt, "c", "v7"), "user.tag", b"seven")
    first = svc.main.pid

    svc.main.send_signal(signal.SIGKILL)
    rc = svc.wait_exit()
    eq(rc, -signal.SIGKILL, "exit status of the killed daemon")
    events = [e for e, _ in svc.history]
    eq(events[-4:], ["ExecStopPost", "restart", "ExecStartPre", "start"],
       "what followed the kill")
    if svc.main.pid == first:
        raise AssertionError("no new main process")
    wait_serving(mnt, svc.main)
    eq(sorted(os.listdir(os.path.join(mnt, "c"))),
       sorted([".config"] + ["v%d" % i for i in range(50)]), "vectors after the restart")
    eq(os.getxattr(os.path.join(mnt, "c", "v7"), "user.tag"), b"seven", "xattr after the restart")
    eq(query_first(mnt, "k = 1\n7 1 0\n"), "v7", "a query after the restart")
    write(os.path.join(mnt, "c", "after"), "100 1 0\n")
    with open(audit) as f:
        if not any(json.loads(line)["path"].endswith("c/after") for line in f):
            raise AssertionError("the restarted daemon does not audit with the unit's options")

    # A clean stop (SIGTERM, what `systemctl stop` and KillSignal= send)
    # exits 0 and is not restarted; ExecStopPost= still runs.
    svc.main.send_signal(signal.SIGTERM)
    rc = svc.wait_exit()
    eq(rc, 0, "exit status after SIGTERM")
    eq(svc.history[-1][0], "ExecStopPost", "last event after a clean stop")
    if daemon.mounted(mnt):
        raise AssertionError("still mounted after a clean stop")
    starts = [d for e, d in svc.history if e == "start"]
    eq(len(starts), 2, "starts (the first and the restart)")


def test_failed_start_restarts(t):
    """A start that fails (exit 1: here DATADIR holds a data.mdb that is no
    LMDB file) counts as a failure and is retried after RestartSec; once
    the cause is gone, the retry mounts."""
    svc, _ = service(t)
    bad = os.path.join(svc.env["VECFS_DATADIR"], "data.mdb")
    os.makedirs(svc.env["VECFS_DATADIR"])
    write(bad, "not an LMDB file\n" * 1000)
    svc.start()
    t0 = time.time()
    svc.main.wait(30)
    # The operator clears the damaged DATADIR (vecfs also left its lock
    # files there) before the retry.
    shutil.rmtree(svc.env["VECFS_DATADIR"])
    rc = svc.wait_exit()
    if rc <= 0:
        raise AssertionError("vecfs on a damaged DATADIR exited with %d" % rc)
    if time.time() - t0 < svc.restart_sec:
        raise AssertionError("restarted before RestartSec")
    eq([e for e, _ in svc.history], ["ExecStartPre", "start", "exit", "ExecStopPost",
                                     "restart", "ExecStartPre", "start"], "events")
    wait_serving(svc.env["VECFS_MOUNTPOINT"], svc.main)
    svc.main.send_signal(signal.SIGTERM)
    eq(svc.wait_exit(), 0, "exit status after SIGTERM")


TESTS = [test_systemd_rules, test_killed_daemon_restarts, test_failed_start_restarts]

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(daemon.main(TESTS, __doc__))
