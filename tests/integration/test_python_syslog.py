"""Python's SysLogHandler over TCP (b"<PRI>msg\\0", msg a multi-line
traceback) against framing=auto, however its bytes are split, and LF
senders of "<PRI>" lines on the same kind of listener (issue 12).

framer.h (AUTO) has the rule: a "<PRI>" connection is decided by the first
NUL before a '<' (NUL framing) or LF before "<digit" (LF framing); complete
lines held undecided go as LF lines after framing-detect-timeout without
new bytes.  Every test polls until rows are stored; none measures time.
"""

import datetime
import logging
import logging.handlers
import os
import random
import shutil
import socket
import subprocess
import threading
import zoneinfo

import psycopg2
import pytest

import harness
from harness import connect, wait_for

TIMEOUT = harness.DEFAULT_TIMEOUT

pytestmark = pytest.mark.usefixtures("empty_table")


def messages(pg):
    return [r[0] for r in pg.query("select message from logs order by received_at, message")]


def wait_count(pg, n):
    wait_for(lambda: pg.count() >= n, TIMEOUT, "%d rows in logs" % n,
             ignore=(psycopg2.Error,))


class _Formatted(logging.Handler):
    """Keeps the text a handler with the same formatter sends."""

    def __init__(self, formatter):
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.texts = []

    def emit(self, record):
        self.texts.append(self.format(record))


# Distinct nested functions, so that the traceback has one frame per call
# (Python folds identical repeated frames).
_NS = {}
exec(compile("\n".join(
    ["def f%d(n, m):\n    return f%d(n - 1, m) if n else boom(m)" % (i, i + 1)
     for i in range(200)] +
    ["def f200(n, m):\n    return boom(m)",
     "def boom(m):\n    raise ValueError('\\n'.join(\n"
     "        'detail %d: ' % i + 'x' * (i % 70) for i in range(m)))"]),
    "<nested>", "exec"), _NS)


def log_tracebacks(log, sizes, tag):
    """logger.exception() with tracebacks of about sizes[i] bytes each,
    a plain record between two."""
    for i, size in enumerate(sizes):
        depth = min(200, size // 400)
        lines = max(1, (size - depth * 40) // 45)
        try:
            _NS["f0"](depth, lines)
        except ValueError:
            log.exception("%s %d: request failed (~%d bytes)", tag, i, size)
        log.info("%s plain %d: after the traceback", tag, i)


def sysloghandler_run(port, sizes, tag):
    """Sends through a real SysLogHandler(socktype=SOCK_STREAM); returns
    the texts it sent (each must be one row)."""
    fmt = logging.Formatter("%(message)s")
    log = logging.getLogger("logsink.test_python_syslog." + tag)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    h = logging.handlers.SysLogHandler(address=("127.0.0.1", port),
                                       socktype=socket.SOCK_STREAM)
    h.setFormatter(fmt)
    ref = _Formatted(fmt)
    log.addHandler(h)
    log.addHandler(ref)
    try:
        log_tracebacks(log, sizes, tag)
    finally:
        log.removeHandler(h)
        log.removeHandler(ref)
        h.close()
    return ref.texts


SIZES = [60000, 1000, 6000, 3000, 33000, 4500, 16000, 9000]


def assert_stored_exactly(pg, texts):
    wait_count(pg, len(texts))
    got = messages(pg)
    assert sorted(got) == sorted(texts), (
        "%d rows for %d records; first differing: %r" % (
            len(got), len(texts),
            next((m[:200] for m in got if m not in texts), None)))
    assert all("\nTraceback (most recent call last):\n" in t
               for t in texts if "request failed" in t)


def test_tracebacks_direct(pg, daemon):
    d = daemon(db=pg.conninfo)
    texts = sysloghandler_run(d.port, SIZES, "direct")
    assert max(len(t) for t in texts) > 55000
    assert_stored_exactly(pg, texts)


class Relay(threading.Thread):
    """A TCP proxy that forwards what the client sends in small segments
    (1..200 bytes, TCP_NODELAY), often cut right after a LF, with pauses
    of tens of ms (below framing-detect-timeout)."""

    def __init__(self, target_port, seed):
        super().__init__(daemon=True)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.target = target_port
        self.rnd = random.Random(seed)
        self.segments = self.lf_cuts = 0
        self.error = None

    def pump(self, src, dst):
        buf = b""
        while True:
            data = src.recv(65536)
            if data:
                buf += data
            while buf and (len(buf) > 400 or not data):
                n = self.rnd.randint(1, 200)
                lf = buf.find(b"\n", 0, n)
                if lf >= 0 and self.rnd.random() < 0.5:
                    n = lf + 1  # end the segment right after a LF
                    self.lf_cuts += 1
                dst.sendall(buf[:n])
                buf = buf[n:]
                self.segments += 1
                if self.rnd.random() < 0.2:
                    threading.Event().wait(self.rnd.uniform(0.01, 0.06))
            if not data:
                dst.shutdown(socket.SHUT_WR)
                return

    def run(self):
        try:
            while True:
                c, _ = self.lsock.accept()
                with c, socket.create_connection(
                        ("127.0.0.1", self.target)) as s:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.pump(c, s)
                    s.recv(1)  # the daemon's close
        except OSError as e:
            if self.lsock.fileno() != -1:
                self.error = e

    def close(self):
        self.lsock.close()


def test_tracebacks_through_slow_relay(pg, daemon):
    d = daemon(db=pg.conninfo)
    relay = Relay(d.port, seed=12)
    relay.start()
    try:
        texts = sysloghandler_run(relay.port, SIZES, "relay")
        assert_stored_exactly(pg, texts)
    finally:
        relay.close()
    assert relay.error is None, relay.error
    assert relay.segments > 1000 and relay.lf_cuts > 100


def test_issue_reproduction_two_writes(pg, daemon):
    """The issue's two writes 300 ms apart (the timeout made long, so a
    busy machine cannot turn the pause into one longer than it)."""
    d = daemon("--framing-detect-timeout", "10s", db=pg.conninfo)
    with connect(d.port) as s:
        s.sendall(b"<11>Dec  1 10:00:00 app[1]: first line\nse")
        threading.Event().wait(0.3)
        s.sendall(b"cond line\n\0<11>Dec  1 10:00:00 app[1]: "
                  b"next message\n\0")
        s.shutdown(socket.SHUT_WR)
        harness.wait_peer_close(s)
    wait_count(pg, 2)
    assert messages(pg) == ["first line\nsecond line", "next message"]


def test_lf_sender_one_line_then_idle(pg, daemon):
    """A "<PRI>" LF line and then silence, the connection left open: the
    line is stored after framing-detect-timeout, and the next lines at
    once as LF lines."""
    d = daemon(db=pg.conninfo)
    with connect(d.port) as s:
        s.sendall(b"<13>Dec  1 10:00:00 host app: idle one\n")
        wait_count(pg, 1)
        assert messages(pg) == ["idle one"]
        s.sendall(b"<13>Dec  1 10:00:01 host app: two\n"
                  b"<13>Dec  1 10:00:02 host app: three\n")
        wait_count(pg, 3)
        assert sorted(messages(pg)) == ["idle one", "three", "two"]
        # Still open: framed as LF from the line after the first on.
        s.sendall(b"<13>Dec  1 10:00:03 host app: four\0nul inside\n")
        wait_count(pg, 4)
    assert "four\ufffdnul inside" in messages(pg)


def test_lf_sender_lines_one_write_each(pg, daemon):
    """nc-style: "<13>..." lines in separate writes, the connection kept
    open; each is stored while the connection stays open."""
    d = daemon(db=pg.conninfo)
    with connect(d.port) as s:
        for i in range(5):
            s.sendall(b"<13>Dec  1 10:00:00 host app: line %d\n" % i)
            wait_count(pg, i + 1)
    assert messages(pg) == ["line %d" % i for i in range(5)]


def test_logger_tcp(pg, daemon):
    d = daemon(db=pg.conninfo)
    logger = shutil.which("logger")
    if logger is None:
        if os.environ.get("CI") == "true":
            pytest.fail("logger (bsdutils) not installed")
        pytest.skip("logger (bsdutils) not installed")
    for i in range(3):
        subprocess.run([logger, "--tcp", "-n", "127.0.0.1", "-P",
                        str(d.port), "--rfc3164", "-t", "lgr",
                        "logger line %d" % i], check=True, timeout=TIMEOUT)
    wait_count(pg, 3)
    assert sorted(messages(pg)) == ["logger line %d" % i for i in range(3)]


# --------------------------------------------------------------------------
# RFC 3164 time zones (tz= listen option)


def bsd_expected(stamp_local, zone, now_utc):
    """The UTC instant of a year-less wall-clock stamp in zone: the year
    that puts it closest to now_utc (what the daemon must choose)."""
    best = None
    for year in (now_utc.year - 1, now_utc.year, now_utc.year + 1):
        try:
            cand = stamp_local.replace(year=year, tzinfo=zone)
        except ValueError:  # Feb 29
            continue
        cand = cand.astimezone(datetime.timezone.utc)
        if best is None or abs(cand - now_utc) < abs(best - now_utc):
            best = cand
    return best


def test_tz_listener_stores_event_time(pg, daemon):
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    p_berlin, p_fixed = harness.free_port(), harness.free_port()
    d = daemon("--listen", "127.0.0.1:%d tz=Europe/Berlin" % p_berlin,
               "--listen", "127.0.0.1:%d tz=+05:30" % p_fixed,
               db=pg.conninfo,
               ready_ports=[("127.0.0.1", p_berlin), ("127.0.0.1", p_fixed)])
    now = datetime.datetime.now(datetime.timezone.utc)
    recent = (now - datetime.timedelta(hours=1)).astimezone(berlin) \
        .replace(microsecond=0, tzinfo=None)
    stamps = {"recent": recent,
              "july": datetime.datetime(2000, 7, 1, 12, 0, 0),
              "january": datetime.datetime(2000, 1, 15, 12, 0, 0)}
    want = {}
    for port, zone, tag in ((p_berlin, berlin, "berlin"),
                            (p_fixed, datetime.timezone(
                                datetime.timedelta(hours=5, minutes=30)),
                             "fixed")):
        with connect(port) as s:
            for name, st in stamps.items():
                text = "%s %s" % (tag, name)
                s.sendall(b"<13>%s h app: %s\n" % (
                    st.strftime("%b %e %H:%M:%S").encode(), text.encode()))
                want[text] = bsd_expected(st, zone, now)
            s.shutdown(socket.SHUT_WR)
            harness.wait_peer_close(s)
    wait_count(pg, len(want))
    got = dict(pg.query("select message, event_time from logs"))
    assert got == want
    assert want["berlin july"].utcoffset() == datetime.timedelta(0)
    assert want["berlin july"].hour == 10  # CEST
    assert want["berlin january"].hour == 11  # CET
