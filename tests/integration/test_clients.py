"""Real clients against logsinkd: netcat, util-linux logger, Python's
SysLogHandler, rsyslogd and syslog-ng.

Each test sends through the real program and asserts the stored columns
(host, app, procid, msgid, facility, severity, event_time, message, fields,
peer), not only a row count.

rsyslogd and syslog-ng run in the foreground as children of the test, with
their own configuration, work, pid and control files under tmp_path and
only TCP inputs on free loopback ports: they never touch /dev/log, the
system configuration or the system services.

Tools: nc (netcat-openbsd), logger (bsdutils), syslog-ng (syslog-ng-core)
and rsyslogd (rsyslog).  Debian's rsyslog and syslog-ng-core conflict (both
provide system-log-daemon), so rsyslogd may also be an unpacked copy
(`apt-get download rsyslog && dpkg -x rsyslog_*.deb DIR`): set RSYSLOGD to
DIR/usr/sbin/rsyslogd (its modules are found next to it, or set
RSYSLOG_MODDIR), or unpack it to /opt/logsink-rsyslog.  A missing tool makes
its tests fail when CI=true and skip otherwise.
"""

import datetime
import glob
import json
import logging
import logging.handlers
import os
import shutil
import signal
import socket
import subprocess

import psycopg2
import pytest

import harness
from harness import need_tool, wait_for

TIMEOUT = harness.DEFAULT_TIMEOUT

# Where an unpacked rsyslog package is looked for when rsyslogd is not on
# PATH (see the module docstring).
RSYSLOG_UNPACKED = "/opt/logsink-rsyslog"

COLUMNS = ("host", "app", "procid", "msgid", "facility", "severity",
           "event_time", "message", "fields", "host(peer)")


# --------------------------------------------------------------------------
# helpers




def which(name):
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def rows(pg):
    """All stored rows as dicts, in arrival order."""
    names = [c.replace("host(peer)", "peer") for c in COLUMNS]
    got = pg.query("select %s from public.logs order by received_at, message"
                   % ", ".join(COLUMNS))
    return [dict(zip(names, r)) for r in got]


def wait_rows(pg, n, what="rows"):
    """Polls until n rows are stored; returns them (exactly n)."""
    wait_for(lambda: pg.count() >= n, TIMEOUT,
             "%d %s in public.logs" % (n, what), ignore=(psycopg2.Error,))
    got = rows(pg)
    assert len(got) == n, "expected %d rows, stored %d:\n%s" % (
        n, len(got), "\n".join(repr(r) for r in got))
    return got


def row_with(got, text):
    """The one row whose message contains text."""
    found = [r for r in got if text in r["message"]]
    assert len(found) == 1, "rows with %r: %r (all: %r)" % (text, found, got)
    return found[0]


def local_hostnames():
    """What a client on this machine may send as its host name."""
    name = socket.gethostname()
    names = {name, name.split(".")[0]}
    try:
        names.add(socket.getfqdn())
    except OSError:
        pass
    return names


def assert_recent(ts, what="event_time"):
    assert ts is not None, "%s is NULL" % what
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs(ts - now) < datetime.timedelta(seconds=60), (
        "%s %s is not within a minute of now (%s)" % (what, ts, now))


def assert_time_quality(fields):
    """logger's RFC 5424 messages carry [timeQuality tzKnown isSynced]."""
    assert isinstance(fields, dict), fields
    tq = fields.get("timeQuality")
    assert tq is not None and set(tq) <= {"tzKnown", "isSynced",
                                          "syncAccuracy"}, fields
    assert tq.get("tzKnown") in ("0", "1"), fields


def run_client(cmd, data=None, what=None):
    """Runs a client to completion; asserts exit 0; returns (pid, output)."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if data is not None
                         else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(data, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(30)
        raise AssertionError("%s did not finish within %.0f s"
                             % (what or cmd[0], TIMEOUT))
    out = out.decode("utf-8", "replace")
    assert p.returncode == 0, "%s exited %d: %s" % (cmd, p.returncode, out)
    return p.pid, out


class Background:
    """A foreground daemon (rsyslogd, syslog-ng) started by a test."""

    def __init__(self, name, cmd, workdir, config_path=None):
        self.name = name
        self.cmd = cmd
        self.log_path = os.path.join(workdir, name + ".out")
        self.config_path = config_path
        with open(self.log_path, "ab") as log:
            log.write(("$ %s\n" % " ".join(cmd)).encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, cwd=workdir,
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)

    def wait_listening(self, port):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited early with status %s\n%s"
                                     % (self.name, self.proc.returncode,
                                        harness.tail_text(self.log_path)))
            return harness.can_connect("127.0.0.1", port)
        wait_for(ready, TIMEOUT, "%s to accept on port %d" % (self.name, port))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


class Backgrounds:
    """Fixture value: starts daemons, stops them (by PID) at teardown, and
    attaches their output and configuration to a failure report."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, cmd, config_path=None):
        b = Background(name, cmd, self.workdir, config_path)
        self.procs.append(b)
        return b

    def logsink_artifacts(self):
        out = []
        for b in self.procs:
            out.append(("%s output (%s)" % (b.name, b.log_path),
                        harness.tail_text(b.log_path)))
            if b.config_path:
                out.append(("%s config (%s)" % (b.name, b.config_path),
                            harness.tail_text(b.config_path)))
        return out

    def cleanup(self):
        for b in self.procs:
            b.stop()


@pytest.fixture
def background(tmp_path):
    bg = Backgrounds(str(tmp_path))
    yield bg
    bg.cleanup()


@pytest.fixture
def sink(pg, daemon):
    """A logsinkd on a free loopback port writing to an empty table."""
    pg.truncate()
    return daemon(db=pg.conninfo)


# --------------------------------------------------------------------------
# netcat


@pytest.fixture
def nc():
    path = need_tool(which("nc"), "nc", "netcat-openbsd")
    p = subprocess.run([path, "-h"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=TIMEOUT)
    if b"OpenBSD" not in p.stdout:
        need_tool(None, "OpenBSD nc (with -N)", "netcat-openbsd")
    return path


def test_netcat_plain_line(nc, pg, sink):
    line = "plain text from netcat: disk /var 91% full (nc-plain-7f3a)"
    run_client([nc, "-N", "127.0.0.1", str(sink.port)],
               (line + "\n").encode(), "nc")
    [r] = wait_rows(pg, 1)
    assert r == {"host": None, "app": None, "procid": None, "msgid": None,
                 "facility": None, "severity": None, "event_time": None,
                 "message": line, "fields": None, "peer": "127.0.0.1"}


def test_netcat_json_line(nc, pg, sink):
    obj = {"message": "disk almost full (nc-json-51c2)", "level": "warning",
           "host": "web-01", "time": "2024-05-01T12:34:56.789Z",
           "user": "alice", "attrs": {"n": 3, "ok": True, "tags": ["a", "b"]}}
    run_client([nc, "-N", "127.0.0.1", str(sink.port)],
               (json.dumps(obj) + "\n").encode(), "nc")
    [r] = wait_rows(pg, 1)
    assert r["message"] == obj["message"]
    assert r["severity"] == 4
    assert r["host"] == "web-01"
    assert r["event_time"] == datetime.datetime(
        2024, 5, 1, 12, 34, 56, 789000, tzinfo=datetime.timezone.utc)
    assert r["fields"] == obj
    assert (r["app"], r["procid"], r["msgid"], r["facility"], r["peer"]) \
        == (None, None, None, None, "127.0.0.1")


# --------------------------------------------------------------------------
# util-linux logger


@pytest.fixture
def logger_cmd():
    path = need_tool(which("logger"), "logger", "bsdutils")

    def cmd(port, *args):
        return [path, "--tcp", "-n", "127.0.0.1", "-P", str(port)] + \
            list(args)
    return cmd


@pytest.mark.parametrize("framing", ["lf", "octet"])
def test_logger_rfc5424(logger_cmd, pg, sink, framing):
    text = "logger rfc5424 %s framing: backup finished (lg-5424)" % framing
    args = ["--rfc5424", "-t", "backupd", "-p", "local3.warning",
            "--msgid", "BK42"]
    if framing == "octet":
        args += ["--octet-count", "--id=4242"]
    else:
        args += ["-i"]
    pid, _ = run_client(logger_cmd(sink.port, *args, text), what="logger")
    [r] = wait_rows(pg, 1)
    assert r["message"] == text
    assert (r["facility"], r["severity"]) == (19, 4)
    assert r["app"] == "backupd"
    assert r["procid"] == ("4242" if framing == "octet" else str(pid))
    assert r["msgid"] == "BK42"
    assert r["host"] in local_hostnames()
    assert_recent(r["event_time"])
    assert_time_quality(r["fields"])
    assert set(r["fields"]) == {"timeQuality"}
    assert r["peer"] == "127.0.0.1"


def test_logger_rfc3164(logger_cmd, pg, sink):
    text = "logger rfc3164: link eth0 down (lg-3164)"
    pid, _ = run_client(logger_cmd(sink.port, "--rfc3164", "-t", "netmon",
                                   "-p", "local3.warning", "-i", text),
                        what="logger")
    [r] = wait_rows(pg, 1)
    assert r["message"] == text
    assert (r["facility"], r["severity"]) == (19, 4)
    assert r["app"] == "netmon"
    assert r["procid"] == str(pid)
    assert r["host"] in local_hostnames()
    assert_recent(r["event_time"])
    assert (r["msgid"], r["fields"], r["peer"]) == (None, None, "127.0.0.1")


def test_logger_structured_data(logger_cmd, pg, sink):
    text = "logger with structured data (lg-sd)"
    run_client(logger_cmd(
        sink.port, "--rfc5424", "--octet-count", "-t", "shop",
        "-p", "user.notice", "--id=77",
        "--sd-id", "order@32473", "--sd-param", 'id="A-1001"',
        "--sd-param", 'total="12.50 EUR"',
        "--sd-param", r'note="say \"hi\" \] done\\"',
        "--sd-id", "client@32473", "--sd-param", 'ip="192.0.2.7"',
        text), what="logger")
    [r] = wait_rows(pg, 1)
    assert r["message"] == text
    assert (r["facility"], r["severity"]) == (1, 5)
    assert (r["app"], r["procid"], r["msgid"]) == ("shop", "77", None)
    f = r["fields"]
    assert_time_quality(f)
    assert f["order@32473"] == {"id": "A-1001", "total": "12.50 EUR",
                                "note": 'say "hi" ] done\\'}, f
    assert f["client@32473"] == {"ip": "192.0.2.7"}, f
    assert set(f) == {"timeQuality", "order@32473", "client@32473"}, f


def test_logger_multiline_octet_count(logger_cmd, pg, sink):
    """One octet-counted frame holding LFs stays one row."""
    text = ("job failed (lg-multi)\n  step 1: ok\n  step 2: exit 3\n"
            "\tdetails: see /var/log/job.log")
    run_client(logger_cmd(sink.port, "--octet-count", "-t", "cron",
                          "-p", "cron.err", text), what="logger")
    [r] = wait_rows(pg, 1)
    assert r["message"] == text
    assert (r["facility"], r["severity"], r["app"]) == (9, 3, "cron")
    assert_recent(r["event_time"])


@pytest.mark.parametrize("framing", ["lf", "octet"])
def test_logger_file_many_messages(logger_cmd, pg, sink, tmp_path, framing):
    """logger -f: one message per line, several on one connection."""
    lines = ["file line %d of 5 (lg-file-%s)" % (i, framing)
             for i in range(1, 6)]
    path = tmp_path / "input.txt"
    path.write_text("\n".join(lines) + "\n")
    args = ["-t", "filefeed", "-p", "daemon.info", "-f", str(path)]
    if framing == "octet":
        args.append("--octet-count")
    run_client(logger_cmd(sink.port, *args), what="logger")
    got = wait_rows(pg, len(lines))
    assert sorted(r["message"] for r in got) == sorted(lines)
    for r in got:
        assert (r["facility"], r["severity"], r["app"]) == (3, 6, "filefeed")
        assert_recent(r["event_time"])


# --------------------------------------------------------------------------
# Python logging.handlers.SysLogHandler over TCP


class _Formatted(logging.Handler):
    """Keeps what a handler with the same formatter formats."""

    def __init__(self, formatter):
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.texts = []

    def emit(self, record):
        self.texts.append(self.format(record))


def test_python_sysloghandler(pg, sink):
    """SysLogHandler over TCP sends b"<PRI>" + ident + text + b"\\0"."""
    fmt = logging.Formatter("%(message)s")
    log = logging.getLogger("logsink.test_clients.sysloghandler")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    plain = logging.handlers.SysLogHandler(
        address=("127.0.0.1", sink.port), socktype=socket.SOCK_STREAM)
    plain.setFormatter(fmt)
    ref = _Formatted(fmt)
    for h in (plain, ref):
        log.addHandler(h)
    try:
        log.debug("py debug: cache warm (py-1)")
        log.info("py info: started worker 3 (py-2)")
        log.warning("py warning: quota 91% used, ünïcödé ✓ (py-3)")
        try:
            {}["missing"]
        except KeyError:
            log.exception("py error: request failed (py-4)")
        log.critical("py critical: giving up (py-5)")
    finally:
        for h in (plain, ref):
            log.removeHandler(h)
        plain.close()
    expected = ref.texts
    assert "\nTraceback (most recent call last):\n" in expected[3]

    # A second connection whose first message is multi-line, with an ident
    # in the usual "name: " form.
    tagged = logging.handlers.SysLogHandler(
        address=("127.0.0.1", sink.port), socktype=socket.SOCK_STREAM,
        facility=logging.handlers.SysLogHandler.LOG_LOCAL0)
    tagged.ident = "pyapp: "
    tagged.setFormatter(fmt)
    log.addHandler(tagged)
    try:
        log.error("py tagged: first line (py-6)\nsecond line\n  third")
    finally:
        log.removeHandler(tagged)
        tagged.close()

    got = wait_rows(pg, 6)
    for i, (text, sev) in enumerate(zip(expected, (7, 6, 4, 3, 2)), 1):
        r = row_with(got, "(py-%d)" % i)
        assert r["message"] == text
        assert (r["facility"], r["severity"]) == (1, sev), r
        assert (r["host"], r["app"], r["procid"], r["msgid"],
                r["event_time"], r["fields"], r["peer"]) \
            == (None, None, None, None, None, None, "127.0.0.1"), r
    r = row_with(got, "(py-6)")
    assert r["message"] == "py tagged: first line (py-6)\nsecond line\n  third"
    assert (r["facility"], r["severity"], r["app"]) == (16, 3, "pyapp"), r
    assert (r["host"], r["procid"], r["event_time"], r["fields"]) \
        == (None, None, None, None), r


# --------------------------------------------------------------------------
# rsyslogd


@pytest.fixture
def rsyslog():
    """(rsyslogd, module dir or None)."""
    path = os.environ.get("RSYSLOGD") or which("rsyslogd")
    if not path:
        unpacked = os.path.join(RSYSLOG_UNPACKED, "usr/sbin/rsyslogd")
        path = unpacked if os.path.exists(unpacked) else None
    path = need_tool(path, "rsyslogd", "rsyslog (or unpack it and set "
                     "RSYSLOGD, see test_clients.py)")
    moddir = os.environ.get("RSYSLOG_MODDIR")
    if not moddir and os.path.realpath(path) != "/usr/sbin/rsyslogd":
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.realpath(path))))
        found = sorted(glob.glob(os.path.join(root, "usr/lib/*/rsyslog")))
        moddir = found[0] if found else None
    return path, moddir


RSYSLOG_CONF = """\
# logsink test_clients: an rsyslogd of the test's own (no imuxsock/imklog).
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{in_port}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{out_port}" protocol="tcp"
         TCP_Framing="{framing}"{template})
}}
"""


@pytest.mark.parametrize("framing,template", [
    ("traditional", "RSYSLOG_SyslogProtocol23Format"),
    ("octet-counted", "RSYSLOG_SyslogProtocol23Format"),
    ("traditional", None),
    ("octet-counted", None),
], ids=["lf-rfc5424", "octet-rfc5424", "lf-default", "octet-default"])
def test_rsyslog_forward(rsyslog, logger_cmd, pg, sink, background, tmp_path,
                         framing, template):
    rsyslogd, moddir = rsyslog
    work = tmp_path / "rsyslog-work"
    work.mkdir()
    in_port = harness.free_port()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(
        work=work, in_port=in_port, out_port=sink.port, framing=framing,
        template=' template="%s"' % template if template else ""))
    cmd = [rsyslogd, "-n", "-f", str(conf),
           "-i", str(tmp_path / "rsyslogd.pid")]
    if moddir:
        cmd += ["-M", moddir]
    rs = background.start("rsyslogd", cmd, str(conf))
    rs.wait_listening(in_port)

    texts = ["via rsyslog %s: first (rs-1)" % framing,
             "via rsyslog %s: second (rs-2)" % framing]
    pids = []
    for text in texts:
        pid, _ = run_client(logger_cmd(
            in_port, "--octet-count", "-t", "rsapp", "-i",
            "-p", "local3.warning", "--sd-id", "ex@32473",
            "--sd-param", 'k="v 1"', text), what="logger")
        pids.append(pid)
    got = wait_rows(pg, 2)
    for text, pid in zip(texts, pids):
        r = row_with(got, text)
        assert r["message"] == text, r
        assert (r["facility"], r["severity"]) == (19, 4), r
        assert (r["app"], r["procid"]) == ("rsapp", str(pid)), r
        assert r["host"] in local_hostnames(), r
        assert_recent(r["event_time"])
        assert r["peer"] == "127.0.0.1"
        if template == "RSYSLOG_SyslogProtocol23Format":
            assert_time_quality(r["fields"])
            assert r["fields"]["ex@32473"] == {"k": "v 1"}, r
        else:  # RSYSLOG_TraditionalForwardFormat: BSD, no SD
            assert (r["msgid"], r["fields"]) == (None, None), r


# --------------------------------------------------------------------------
# syslog-ng


SYSLOG_NG_CONF = """\
@version: {version}
# logsink test_clients: a syslog-ng of the test's own.
options {{ keep-hostname(yes); chain-hostnames(no); use-dns(no);
          dns-cache(no); stats-freq(0); }};
source s_in {{ syslog(ip("127.0.0.1") port({in_port}) transport("tcp")); }};
destination d_sink {{ {driver}("127.0.0.1" port({out_port}) transport("tcp")
                       persist-name("logsink_{driver}")); }};
log {{ source(s_in); destination(d_sink); }};
"""


@pytest.fixture
def syslog_ng():
    return need_tool(which("syslog-ng"), "syslog-ng", "syslog-ng-core")


def syslog_ng_version(path):
    p = subprocess.run([path, "--version"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=TIMEOUT)
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        # "syslog-ng 3 (3.38.1)"
        if line.startswith("syslog-ng ") and "(" in line:
            full = line.split("(", 1)[1].split(")", 1)[0]
            return ".".join(full.split(".")[:2])
    raise AssertionError("cannot read syslog-ng --version:\n%s" % p.stdout)


@pytest.mark.parametrize("driver", ["network", "syslog"],
                         ids=["network-rfc3164-lf", "syslog-rfc5424-octet"])
def test_syslog_ng_forward(syslog_ng, logger_cmd, pg, sink, background,
                           tmp_path, driver):
    path = syslog_ng
    in_port = harness.free_port()
    conf = tmp_path / "syslog-ng.conf"
    conf.write_text(SYSLOG_NG_CONF.format(
        version=syslog_ng_version(path), in_port=in_port,
        out_port=sink.port, driver=driver))
    ng = background.start("syslog-ng", [
        path, "-F", "-e", "-f", str(conf),
        "--persist-file=%s" % (tmp_path / "syslog-ng.persist"),
        "--pidfile=%s" % (tmp_path / "syslog-ng.pid"),
        "--control=%s" % (tmp_path / "syslog-ng.ctl")], str(conf))
    ng.wait_listening(in_port)

    texts = ["via syslog-ng %s: first (ng-1)" % driver,
             "via syslog-ng %s: second (ng-2)" % driver]
    pids = []
    for text in texts:
        pid, _ = run_client(logger_cmd(
            in_port, "--octet-count", "-t", "ngapp", "-i",
            "-p", "local3.warning", "--sd-id", "ex@32473",
            "--sd-param", 'k="v 1"', text), what="logger")
        pids.append(pid)
    got = wait_rows(pg, 2)
    for text, pid in zip(texts, pids):
        r = row_with(got, text)
        assert r["message"] == text, r
        assert (r["facility"], r["severity"]) == (19, 4), r
        assert (r["app"], r["procid"]) == ("ngapp", str(pid)), r
        assert r["host"] in local_hostnames(), r
        assert_recent(r["event_time"])
        assert r["peer"] == "127.0.0.1"
        if driver == "syslog":
            assert_time_quality(r["fields"])
            assert r["fields"]["ex@32473"] == {"k": "v 1"}, r
        else:
            assert (r["msgid"], r["fields"]) == (None, None), r
