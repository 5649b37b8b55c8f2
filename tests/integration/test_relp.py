"""RELP (listen ... proto=relp) with the real rsyslog omrelp, and raw RELP
frames from a socket.

rsyslogd runs as in test_clients.py (unpacked in /opt/logsink-rsyslog by
scripts/deps.sh --test, with rsyslog-relp's omrelp): an imtcp input on a
free loopback port that the test feeds with lines, and an omrelp action
to logsinkd with an in-memory action queue and endless retries, so that
what logsinkd has not answered stays in rsyslog and is resent.  Every
message is distinct; a test asserts each was stored and counts
duplicates (count(*) against count(distinct message)) and reports them.
"""

import os
import re
import signal
import threading

import pytest

import harness
from harness import wait_for
from test_clients import background, rsyslog  # noqa: F401 (fixtures)
from test_tls import tls_files  # noqa: F401 (fixture)

TIMEOUT = harness.DEFAULT_TIMEOUT
LONG = max(TIMEOUT, 180)

RSYSLOG_RELP_CONF = """\
# logsink test_relp: an rsyslogd of the test's own forwarding with omrelp.
global(workDirectory="{work}" maxMessageSize="8k")
module(load="imtcp")
module(load="omrelp"{tlslib})
input(type="imtcp" address="127.0.0.1" port="{in_port}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omrelp" target="127.0.0.1" port="{out_port}"
         template="RSYSLOG_SyslogProtocol23Format" timeout="30"{tls}{window}
         action.resumeRetryCount="-1" action.resumeInterval="1"
         queue.type="LinkedList" queue.size="1000000"
         queue.dequeueBatchSize="256")
}}
"""


def report(msg):
    """A measurement or a count for the test log (pytest -s shows it)."""
    print("\n[test_relp] " + msg)


def relp_daemon(daemon, pg, *args, port=None, opts="", spool=None):
    """logsinkd with a RELP listener (d.port) and /metrics (d.mport)."""
    port = port or harness.free_port()
    mport = harness.free_port()
    extra = ["--listen", ("127.0.0.1:%d proto=relp %s" % (port, opts))
             .strip(), "--metrics-listen", "127.0.0.1:%d" % mport,
             "--reconnect-min-ms", 50, "--reconnect-max-ms", 500]
    if spool:
        extra += ["--spool-dir", spool]
    d = daemon(*(extra + list(args)), db=pg.conninfo, listen=False,
               ready_ports=[("127.0.0.1", port)])
    d.port, d.mport = port, mport
    return d


def start_rsyslog(rsyslog, background, tmp_path, out_port, tls="",
                  window=None):
    rsyslogd, moddir = rsyslog
    work = tmp_path / "rsyslog-work"
    work.mkdir(exist_ok=True)
    in_port = harness.free_port()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_RELP_CONF.format(
        work=work, in_port=in_port, out_port=out_port, tls=tls,
        window=' windowSize="%d"' % window if window else "",
        tlslib=' tls.tlslib="openssl"' if tls else ""))
    cmd = [rsyslogd, "-n", "-f", str(conf),
           "-i", str(tmp_path / "rsyslogd.pid")]
    if moddir:
        cmd += ["-M", moddir]
    rs = background.start("rsyslogd", cmd, str(conf))
    rs.wait_listening(in_port)
    rs.in_port = in_port
    return rs


def syslog_lines(tag, n, start=0):
    return ["<14>Dec  1 10:00:00 relphost relpapp: %s" % l
            for l in harness.make_lines(tag, n, start)]


def feed(port, lines, chunk=2000):
    """Sends lines to rsyslog's imtcp input, chunk by chunk."""
    with harness.connect(port) as s:
        for i in range(0, len(lines), chunk):
            s.sendall("".join(l + "\n" for l in lines[i:i + chunk])
                      .encode())


def counts(pg, tag):
    """(rows, distinct messages) of tag."""
    r = pg.query("SELECT count(*), count(DISTINCT message) FROM logs "
                 "WHERE message LIKE %s", ("%" + tag + "-%",))
    return r[0][0], r[0][1]


def wait_all(pg, tag, n, timeout=LONG):
    """Waits until all n distinct messages of tag are stored; returns
    (rows, distinct)."""
    got = [0, 0]

    def done():
        got[:] = counts(pg, tag)
        return got[1] >= n
    wait_for(done, timeout, "%d distinct %s messages stored (have %r)"
             % (n, tag, got))
    return tuple(got)


# --------------------------------------------------------------------------
# raw frames


def frame(txnr, cmd, data=b""):
    if isinstance(data, str):
        data = data.encode()
    return b"%d %s %d%s\n" % (txnr, cmd.encode(), len(data),
                              b" " + data if data else b"")


OPEN = frame(1, "open", "relp_version=0\nrelp_software=test\n"
             "commands=syslog")


class RawRelp:
    """A minimal RELP client on a socket, reading the answers."""

    def __init__(self, port):
        self.s = harness.connect(port)
        self.buf = b""
        self.closed = False

    def send(self, data):
        self.s.sendall(data)

    def frames(self, n):
        """The next n answer frames: [(txnr, command, data)]."""
        out = []
        while len(out) < n:
            m = re.match(rb"(\d+) ([a-z]+) (\d+)", self.buf)
            if m:
                dlen = int(m.group(3))
                hlen = m.end() + (1 if dlen else 0)
                if len(self.buf) >= hlen + dlen + 1:
                    data = self.buf[hlen:hlen + dlen]
                    assert self.buf[hlen + dlen:hlen + dlen + 1] == b"\n"
                    self.buf = self.buf[hlen + dlen + 1:]
                    out.append((int(m.group(1)), m.group(2).decode(),
                                data.decode()))
                    continue
            x = self.s.recv(65536)
            assert x, "closed after %r; buffered %r" % (out, self.buf)
            self.buf += x
        return out

    def wait_closed(self):
        """The rest until the daemon closes the connection."""
        self.s.settimeout(TIMEOUT)
        while True:
            x = self.s.recv(65536)
            if not x:
                break
            self.buf += x
        rest, self.buf = self.buf, b""
        return rest

    def close(self):
        self.s.close()


@pytest.fixture
def relp_sink(pg, daemon):
    pg.truncate()
    return relp_daemon(daemon, pg)


def test_raw_session_answers_after_commit(relp_sink, pg):
    c = RawRelp(relp_sink.port)
    c.send(OPEN)
    (txnr, cmd, data), = c.frames(1)
    assert (txnr, cmd) == (1, "rsp")
    lines = data.split("\n")
    assert lines[0] == "200 OK" and "commands=syslog" in lines, data
    msgs = syslog_lines("raw", 50)
    c.send(b"".join(frame(2 + i, "syslog", m) for i, m in enumerate(msgs)))
    got = c.frames(50)
    assert got == [(2 + i, "rsp", "200 OK") for i in range(50)]
    # Each answered message is committed already: no waiting here.
    assert counts(pg, "raw") == (50, 50)
    c.send(frame(52, "close"))
    assert c.frames(1) == [(52, "rsp", "200 OK")]
    assert c.wait_closed() == b""
    assert harness.metric(relp_sink, "relp_sessions_total") >= 1


BAD_CASES = [
    # (name, bytes after open, metric reason, answer expected)
    ("malformed", b"2 syslog abc <13>x\n", "malformed",
     [(0, "serverclose", "")]),
    ("no-trailer", frame(2, "syslog", "<13>x")[:-1] + b"X", "malformed",
     [(0, "serverclose", "")]),
    ("wrong-txnr", frame(5, "syslog", "<13>x"), "txnr",
     [(0, "serverclose", "")]),
    ("unknown-command", frame(2, "starttls", "x"), "unknown_command",
     [(2, "rsp", "500 unknown command"), (0, "serverclose", "")]),
    ("second-open", frame(2, "open", "x"), "not_open",
     [(2, "rsp", "500 command before open (or a second open)"),
      (0, "serverclose", "")]),
    ("oversized", b"2 syslog 999999999 ", "oversized",
     [(2, "rsp", "500 frame larger than max-line-bytes allows"),
      (0, "serverclose", "")]),
]


@pytest.mark.parametrize("name,bad,reason,answer", BAD_CASES,
                         ids=[c[0] for c in BAD_CASES])
def test_protocol_errors(relp_sink, pg, name, bad, reason, answer):
    """A bad frame after good ones: the good ones are stored and answered,
    then the documented answer, a log line, the metric, the close; a good
    session on another connection is unaffected."""
    before = harness.metric(relp_sink, "relp_errors_total", reason=reason)
    good = RawRelp(relp_sink.port)
    good.send(OPEN)
    good.frames(1)
    good.send(frame(2, "syslog", syslog_lines("good" + name, 1)[0]))
    assert good.frames(1) == [(2, "rsp", "200 OK")]

    c = RawRelp(relp_sink.port)
    c.send(OPEN)
    c.frames(1)
    bad_lines = syslog_lines("bad" + name, 3)
    ok = b"".join(frame(2 + i, "syslog", m) for i, m in enumerate(bad_lines))
    # Renumber the bad frame after the three good ones.
    bad = re.sub(rb"^(\d+)", lambda m: b"%d" % (int(m.group(1)) + 3)
                 if m.group(1) != b"0" else m.group(1), bad)
    c.send(ok + bad)
    got = c.frames(3 + len(answer))
    assert got[:3] == [(2 + i, "rsp", "200 OK") for i in range(3)]
    want = [(t + 3 if t else 0, cmd, d) for t, cmd, d in answer]
    assert got[3:] == want
    assert c.wait_closed() == b""
    assert counts(pg, "bad" + name) == (3, 3)
    wait_for(lambda: "RELP protocol error reason=%s" % reason
             in relp_sink.log(), TIMEOUT, "the error's log line")
    assert harness.metric(relp_sink, "relp_errors_total",
                          reason=reason) == before + 1

    good.send(frame(3, "syslog", syslog_lines("good" + name, 2)[1]))
    assert good.frames(1) == [(3, "rsp", "200 OK")]
    good.send(frame(4, "close"))
    assert good.frames(1) == [(4, "rsp", "200 OK")]
    assert counts(pg, "good" + name) == (2, 2)


def test_shutdown_sends_serverclose(pg, daemon):
    """SIGTERM: what was received is stored and answered, then
    serverclose, then the close."""
    pg.truncate()
    d = relp_daemon(daemon, pg)
    c = RawRelp(d.port)
    c.send(OPEN)
    c.frames(1)
    msgs = syslog_lines("term", 5)
    c.send(b"".join(frame(2 + i, "syslog", m) for i, m in enumerate(msgs)))
    assert c.frames(5) == [(2 + i, "rsp", "200 OK") for i in range(5)]
    d.signal(signal.SIGTERM)
    assert c.frames(1) == [(0, "serverclose", "")]
    assert c.wait_closed() == b""
    assert d.wait() == 0
    assert counts(pg, "term") == (5, 5)


def test_command_before_open(relp_sink, pg):
    c = RawRelp(relp_sink.port)
    c.send(frame(1, "syslog", "<13>x"))
    assert c.frames(2) == [(1, "rsp", "500 command before open (or a "
                            "second open)"), (0, "serverclose", "")]
    assert c.wait_closed() == b""


def test_long_message_cut_not_refused(pg, daemon):
    """DATALEN over max-line-bytes but within the 1 KiB slack: stored cut,
    counted as truncated, answered."""
    pg.truncate()
    d = relp_daemon(daemon, pg, "--max-line-bytes", 2048)
    c = RawRelp(d.port)
    c.send(OPEN)
    c.frames(1)
    msg = "<13>Dec  1 10:00:00 h app: cut-0000001 " + "x" * 2500
    c.send(frame(2, "syslog", msg))
    assert c.frames(1) == [(2, "rsp", "200 OK")]
    assert harness.metric(d, "lines_truncated_total") == 1
    c.send(frame(3, "syslog", "<13>x" * 1000))  # 5000 > 2048 + 1024
    assert c.frames(2)[0] == (3, "rsp", "500 frame larger than "
                              "max-line-bytes allows")


# --------------------------------------------------------------------------
# rsyslog omrelp


def test_rsyslog_omrelp_many_exactly_once(relp_sink, pg, rsyslog, background,
                                          tmp_path):
    n = 20000
    rs = start_rsyslog(rsyslog, background, tmp_path, relp_sink.port)
    feed(rs.in_port, syslog_lines("once", n))
    rows, distinct = wait_all(pg, "once", n)
    assert (rows, distinct) == (n, n)
    r = pg.query("SELECT host, app, message FROM logs WHERE message LIKE %s",
                 ("%once-0000000 %",))
    assert len(r) == 1 and r[0][:2] == ("relphost", "relpapp"), r
    assert harness.make_lines("once", 1)[0] in r[0][2], r
    assert harness.metric(relp_sink, "relp_sessions_total") >= 1


def test_rsyslog_omrelp_through_db_outage(fresh_pg, daemon, rsyslog,
                                          background, tmp_path):
    pg = fresh_pg
    n = 20000
    d = relp_daemon(daemon, pg)
    # A window wider than the default 128: more in flight at the outage.
    rs = start_rsyslog(rsyslog, background, tmp_path, d.port, window=1024)
    lines = syslog_lines("outage", n)
    feeder = threading.Thread(target=feed, args=(rs.in_port, lines, 200))
    feeder.start()
    try:
        wait_for(lambda: counts(pg, "outage")[1] >= 2000, LONG,
                 "2000 messages stored before the outage")
        pg.stop("fast")
        # Messages are in flight, received but not stored, while the
        # database is down (omrelp's window is not full before that).
        wait_for(lambda: harness.metric(d, "lines_received_total") >
                 harness.metric(d, "lines_committed_total"),
                 TIMEOUT, "messages received during the outage")
        inflight = (harness.metric(d, "lines_received_total") -
                    harness.metric(d, "lines_committed_total"))
        pg.start()
    finally:
        feeder.join(LONG)
    rows, distinct = wait_all(pg, "outage", n)
    report("through a PostgreSQL outage: %d messages, %d in flight at "
           "the outage, %d rows, %d duplicates"
           % (n, inflight, rows, rows - distinct))
    assert distinct == n


def test_rsyslog_omrelp_through_restart_with_spool(pg, daemon, rsyslog,
                                                   background, tmp_path,
                                                   spool_parent):
    pg.truncate()
    n = 20000
    spool = os.path.join(spool_parent, "spool")
    d = relp_daemon(daemon, pg, opts="ack=spooled", spool=spool)
    port = d.port
    rs = start_rsyslog(rsyslog, background, tmp_path, port, window=1024)
    lines = syslog_lines("restart", n)
    feeder = threading.Thread(target=feed, args=(rs.in_port, lines, 200))
    feeder.start()
    try:
        wait_for(lambda: counts(pg, "restart")[1] >= 2000, LONG,
                 "2000 messages stored before the restart")
        inflight = (harness.metric(d, "lines_received_total") -
                    harness.metric(d, "lines_committed_total"))
        assert d.stop() == 0
        d2 = relp_daemon(daemon, pg, port=port, opts="ack=spooled",
                         spool=spool)
    finally:
        feeder.join(LONG)
    rows, distinct = wait_all(pg, "restart", n)
    report("through a logsinkd restart with the spool: %d messages, %d "
           "not yet committed at SIGTERM, %d rows, %d duplicates"
           % (n, inflight, rows, rows - distinct))
    assert distinct == n
    assert d2.alive()


def test_rsyslog_omrelp_over_tls(pg, daemon, rsyslog, background, tmp_path,
                                 tls_files):
    t = tls_files
    pg.truncate()
    n = 2000
    d = relp_daemon(daemon, pg, "--tls-cert", t.server, "--tls-key",
                    t.server_key, "--tls-ca", t.ca,
                    "--tls-verify-client", "optional", opts="tls=on")
    tls = (' tls="on" tls.caCert="%s" tls.myCert="%s" tls.myPrivKey="%s" '
           'tls.authMode="certvalid"' % (t.ca, t.client, t.client_key))
    rs = start_rsyslog(rsyslog, background, tmp_path, d.port, tls=tls)
    feed(rs.in_port, syslog_lines("tls", n))
    rows, distinct = wait_all(pg, "tls", n)
    assert (rows, distinct) == (n, n)
    assert harness.metric(d, "tls_handshakes_total") >= 1


@pytest.mark.skipif(os.environ.get("LOGSINK_RELP_BENCH") is None,
                    reason="a measurement: set LOGSINK_RELP_BENCH=N (and "
                    "LOGSINK_RELP_WINDOW, omrelp's windowSize)")
def test_rsyslog_omrelp_rate(relp_sink, pg, rsyslog, background, tmp_path):
    """Messages/s from rsyslog: bound by omrelp's window, since each
    message is answered only after its commit (window / (flush-interval +
    commit) at most)."""
    import time
    n = int(os.environ["LOGSINK_RELP_BENCH"])
    window = int(os.environ.get("LOGSINK_RELP_WINDOW", "0")) or None
    rs = start_rsyslog(rsyslog, background, tmp_path, relp_sink.port,
                       window=window)
    lines = syslog_lines("bench", n)
    t0 = time.monotonic()
    feed(rs.in_port, lines, 20000)
    wait_all(pg, "bench", n, timeout=600)
    dt = time.monotonic() - t0
    report("RELP from rsyslog omrelp (windowSize %s): %d messages stored "
           "in %.1f s: %.0f messages/s" % (window or "128, the default", n,
                                          dt, n / dt))


def test_rsyslog_omrelp_restart_while_db_down(fresh_pg, daemon, rsyslog,
                                              background, tmp_path,
                                              spool_parent):
    """ack=spooled with the database down: messages are answered once
    durable in the spool, so rsyslog forgets them; a restart (database
    still down) and the database's return must still store every one."""
    pg = fresh_pg
    n = 20000
    spool = os.path.join(spool_parent, "spool")
    args = ("--shutdown-timeout", "2s")
    d = relp_daemon(daemon, pg, *args, opts="ack=spooled", spool=spool)
    port = d.port
    rs = start_rsyslog(rsyslog, background, tmp_path, port, window=1024)
    lines = syslog_lines("spooldown", n)
    feeder = threading.Thread(target=feed, args=(rs.in_port, lines, 200))
    feeder.start()
    try:
        wait_for(lambda: counts(pg, "spooldown")[1] >= 2000, LONG,
                 "2000 messages stored before the outage")
        pg.stop("fast")
        wait_for(lambda: harness.metric(d, "lines_spooled_total") >= 1000,
                 LONG, "messages answered from the spool")
        spooled = harness.metric(d, "lines_spooled_total")
        assert d.stop() == 0
        d2 = relp_daemon(daemon, pg, *args, port=port, opts="ack=spooled",
                         spool=spool)
        wait_for(lambda: harness.metric(d2, "lines_received_total") > 0,
                 LONG, "rsyslog sending to the restarted logsinkd")
        pg.start()
    finally:
        feeder.join(LONG)
    rows, distinct = wait_all(pg, "spooldown", n)
    report("restart with the database down (ack=spooled): %d messages, %d "
           "spooled before SIGTERM, %d rows, %d duplicates"
           % (n, spooled, rows, rows - distinct))
    assert distinct == n
