"""The Fluent forward protocol (listen ... proto=forward) with the real npm
fluent-logger, and raw forward messages from a socket.

fluent-logger is installed with npm into a directory of the test run
(never globally), pinned to FLUENT_LOGGER_VERSION; node and npm come from
scripts/deps.sh --test, the raw messages are built with python3-msgpack.
fluent_send.js sends numbered records with requireAckResponse and sends a
record again when its ack does not come (ackResponseTimeout), so a test
asserts that every record is stored, and counts and reports duplicates
(count(*) against count(distinct message)).  Debian 12 packages neither
fluentd nor fluent-bit, so their forward outputs are not run here.
"""

import gzip
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

import harness
from harness import wait_for
from test_tls import tls_files  # noqa: F401 (fixture)

msgpack = pytest.importorskip("msgpack")

TIMEOUT = harness.DEFAULT_TIMEOUT
LONG = max(TIMEOUT, 300)
FLUENT_LOGGER_VERSION = "3.4.1"
HERE = os.path.dirname(os.path.abspath(__file__))


def report(msg):
    """A measurement or a count for the test log (pytest -s shows it)."""
    print("\n[test_forward] " + msg)


@pytest.fixture(scope="module")
def fluent_logger(tmp_path_factory):
    """A directory holding node_modules/fluent-logger."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        pytest.skip("node/npm not found (scripts/deps.sh --test)")
    d = tmp_path_factory.mktemp("fluent-logger")
    p = subprocess.run([npm, "install", "--prefix", str(d), "--no-audit",
                        "--no-fund", "--no-save",
                        "fluent-logger@" + FLUENT_LOGGER_VERSION],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    assert p.returncode == 0, "npm install fluent-logger failed:\n%s" % (
        p.stdout.decode("utf-8", "replace")[-2000:])
    return d


def fwd_daemon(daemon, pg, *args, opts="", db=True):
    """logsinkd with a forward listener (d.port) and /metrics (d.mport)."""
    port, mport = harness.free_port(), harness.free_port()
    extra = ["--listen", ("127.0.0.1:%d proto=forward %s" % (port, opts))
             .strip(), "--metrics-listen", "127.0.0.1:%d" % mport,
             "--reconnect-min-ms", 50, "--reconnect-max-ms", 500,
             "--flush-interval-ms", 20]
    d = daemon(*(extra + list(args)), db=pg.conninfo if db else None,
               listen=False, ready_ports=[("127.0.0.1", port)])
    d.port, d.mport = port, mport
    return d


class FluentSend:
    """fluent_send.js in the background; progress lines in a file."""

    def __init__(self, modules, tmp_path, port, mode, n, batch=100,
                 ack_timeout_ms=3000, ca=None, shared_key=None):
        self.progress = tmp_path / ("progress-%s.txt" % mode)
        self.progress.write_text("")
        cmd = ["node", os.path.join(HERE, "fluent_send.js"), str(modules),
               str(port), mode, str(n), str(batch), str(ack_timeout_ms),
               str(self.progress)]
        if ca:
            cmd.append(ca)
        env = dict(os.environ)
        if shared_key:
            env["FLUENT_SHARED_KEY"] = shared_key
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=env)

    def lines(self):
        return self.progress.read_text().splitlines()

    def errors(self):
        return [l for l in self.lines() if l.startswith("error")]

    def result(self, timeout=LONG):
        out, _ = self.p.communicate(timeout=timeout)
        text = out.decode("utf-8", "replace")
        assert self.p.returncode == 0, "fluent_send.js failed:\n" + text
        return json.loads(text.strip().splitlines()[-1])

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def check_stored(pg, n, what):
    """Every fl-<i> stored, with the mapping; returns the duplicates."""
    total, distinct = pg.query(
        "SELECT count(*), count(DISTINCT message) FROM logs "
        "WHERE app = 'fl.test'")[0]
    assert distinct == n, "%s: %d of %d records stored" % (what, distinct, n)
    bad = pg.query(
        "SELECT message, host, severity, fields::text, event_time "
        "FROM logs WHERE app = 'fl.test' AND NOT ("
        "message = 'fl-' || (fields->>'seq') AND host = 'nodehost' AND "
        "severity = 6 AND fields->'nested' = '{\"a\": [1, 2]}' AND "
        "fields - 'seq' - 'nested' = '{}' AND "
        "abs(extract(epoch FROM received_at - event_time)) < 3600) "
        "LIMIT 3")
    assert bad == [], "%s: rows not mapped as documented: %r" % (what, bad)
    # EventTime (every third record) keeps sub-second precision
    frac = pg.scalar(
        "SELECT count(*) FROM logs WHERE app = 'fl.test' AND "
        "(fields->>'seq')::int % 3 = 0 AND "
        "event_time <> date_trunc('second', event_time)")
    assert frac > 0, "no EventTime with nanoseconds stored"
    dups = total - distinct
    report("%s: %d records, %d stored twice or more" % (what, n, dups))
    return dups


@pytest.mark.parametrize("mode,n", [("PackedForward", 10000),
                                    ("CompressedPackedForward", 3000),
                                    ("Message", 300)])
def test_fluent_logger_require_ack(pg, daemon, tmp_path, fluent_logger,
                                   mode, n):
    pg.truncate()
    d = fwd_daemon(daemon, pg)
    s = FluentSend(fluent_logger, tmp_path, d.port, mode, n,
                   batch=500 if mode != "Message" else 1)
    try:
        res = s.result()
    finally:
        s.kill()
    assert res["acked"] == n and res["errors"] == 0, res
    # acked means committed: everything is there without waiting
    assert check_stored(pg, n, mode) == 0
    assert harness.metric(d.mport, "forward_messages_total",
                          mode=mode) > 0


def test_fluent_logger_through_pg_outage(fresh_pg, daemon, tmp_path,
                                         fluent_logger):
    """PostgreSQL stops in mid-stream and comes back: every record acked
    is stored, and with the resend on ack timeout nothing is lost."""
    pg, n = fresh_pg, 6000
    d = fwd_daemon(daemon, pg)
    s = FluentSend(fluent_logger, tmp_path, d.port, "PackedForward", n,
                   batch=100, ack_timeout_ms=1500)
    try:
        wait_for(lambda: pg.count() >= 1500, timeout=LONG,
                 what="1500 records stored before the outage")
        pg.stop("fast")
        wait_for(lambda: len(s.errors()) > 0, timeout=LONG,
                 what="fluent-logger to see an ack time out")
        acked_before = [l for l in s.lines() if l.startswith("acked")]
        pg.start()
        res = s.result()
    finally:
        s.kill()
    report("outage: %s; %d batches acked before PostgreSQL came back"
           % (res, len(acked_before)))
    assert res["acked"] == n and res["errors"] > 0 and res["rounds"] > 1
    check_stored(pg, n, "PostgreSQL outage")


def test_fluent_logger_tls(pg, daemon, tmp_path, fluent_logger,
                           tls_files):  # noqa: F811
    pg.truncate()
    t = tls_files
    d = fwd_daemon(daemon, pg, "--tls-cert", t.server, "--tls-key",
                   t.server_key, opts="tls=on")
    s = FluentSend(fluent_logger, tmp_path, d.port, "PackedForward", 1000,
                   batch=250, ca=t.ca)
    try:
        res = s.result()
    finally:
        s.kill()
    assert res["acked"] == 1000 and res["errors"] == 0, res
    check_stored(pg, 1000, "TLS")


def test_fluent_logger_shared_key(pg, daemon, tmp_path, fluent_logger):
    pg.truncate()
    keyfile = tmp_path / "forward.key"
    keyfile.write_text("s3cret-key\n")
    os.chmod(keyfile, 0o644)
    d = fwd_daemon(daemon, pg, opts="shared-key=%s" % keyfile)
    s = FluentSend(fluent_logger, tmp_path, d.port, "PackedForward", 500,
                   batch=250, shared_key="s3cret-key")
    try:
        res = s.result()
    finally:
        s.kill()
    assert res["acked"] == 500 and res["errors"] == 0, res
    check_stored(pg, 500, "shared key")


# --------------------------------------------------------------------------
# raw messages


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def event_time(sec, nsec):
    return msgpack.ExtType(0, sec.to_bytes(4, "big") + nsec.to_bytes(4, "big"))


def entry(i, tag):
    return [event_time(1700000000 + i, 250000000),
            {"log": "%s-%d" % (tag, i), "level": "error", "k": i}]


def packed(tag, first, n):
    return b"".join(pack(entry(i, tag)) for i in range(first, first + n))


def raw_messages(tag):
    """(bytes, chunk or None, entries) for each mode, with and without
    chunk; CompressedPackedForward with two gzip members."""
    out = []
    for chunk in ("a", None):
        opt = {"chunk": "%s-%s-msg" % (tag, chunk)} if chunk else None
        base = 0 if chunk else 100
        m = [tag, event_time(1700000000 + base, 250000000),
             {"log": "%s-%d" % (tag, base), "level": "error", "k": base}]
        out.append((m, opt, 1))
        out.append(([tag, [entry(base + 1 + i, tag) for i in range(3)]],
                    opt and {"chunk": opt["chunk"] + "-fwd"}, 3))
        out.append(([tag, packed(tag, base + 10, 4)],
                     opt and {"chunk": opt["chunk"] + "-packed", "size": 4},
                     4))
        blob = (gzip.compress(packed(tag, base + 20, 3)) +
                gzip.compress(packed(tag, base + 23, 2)))
        copt = {"compressed": "gzip", "size": 5}
        if opt:
            copt["chunk"] = opt["chunk"] + "-gz"
        out.append(([tag, blob], copt, 5))
    msgs = []
    for m, opt, k in out:
        if opt:
            m = m + [opt]
        msgs.append((pack(m), opt.get("chunk") if opt else None, k))
    return msgs


def read_acks(sock, want, timeout=TIMEOUT):
    """Reads {"ack": chunk} answers until want of them came."""
    sock.settimeout(timeout)
    u = msgpack.Unpacker(raw=False)
    acks = []
    while len(acks) < want:
        data = sock.recv(65536)
        if not data:
            break
        u.feed(data)
        acks.extend(u)
    return acks


def test_raw_modes_with_and_without_chunk(pg, daemon):
    pg.truncate()
    d = fwd_daemon(daemon, pg)
    msgs = raw_messages("raw")
    chunks = [c for _, c, _ in msgs if c]
    with harness.connect(d.port) as s:
        # one write, all modes: the answers come in message order
        s.sendall(b"".join(m for m, _, _ in msgs))
        acks = read_acks(s, len(chunks))
        s.shutdown(socket.SHUT_WR)
        harness.wait_peer_close(s)
    assert acks == [{"ack": c} for c in chunks]
    n = sum(k for _, _, k in msgs)
    assert pg.count() == n
    rows = pg.query("SELECT app, message, severity, fields::text, "
                    "extract(epoch FROM event_time) FROM logs "
                    "WHERE message = 'raw-21'")
    assert rows == [("raw", "raw-21", 3, '{"k": 21}', 1700000021.25)]
    for mode in ("Message", "Forward", "PackedForward",
                 "CompressedPackedForward"):
        assert harness.metric(d.mport, "forward_messages_total",
                              mode=mode) == 2


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hostile_cases():
    deep = b"\x92\xa1t" + b"\x91" * 100 + b"\x01"
    bomb = gzip.compress(b"\0" * (64 << 20))
    return [
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "malformed"),
        ("truncated", pack(["t", [entry(1, "t")]])[:-3], "truncated"),
        ("huge str", b"\x93\xa1t\xdb\xff\xff\xff\xf0abc", "too_big"),
        ("huge bin", b"\x93\xa1t\xc6\x7f\xff\xff\xff", "too_big"),
        ("huge array", b"\x92\xa1t\xdd\xff\xff\xff\xff\x01", "too_big"),
        ("huge map", b"\x92\xa1t\x91\x92\x01\xdf\x7f\xff\xff\xff", "too_big"),
        ("deep nesting", deep, "nesting"),
        ("gzip bomb", pack(["t", bomb, {"compressed": "gzip",
                                        "chunk": "bomb"}]),
         "inflated_too_big"),
        ("bad gzip", pack(["t", b"not gzip", {"compressed": "gzip"}]),
         "gzip"),
        ("reserved byte", b"\x92\xa1t\xc1", "malformed"),
    ]


def test_hostile_input_counted_and_closed(pg, daemon):
    """Each case: the good message before it is stored and answered, then
    the connection is closed and the reason counted; a good client on
    another connection is unaffected; memory stays bounded."""
    pg.truncate()
    d = fwd_daemon(daemon, pg, "--forward-max-message-bytes", "4MiB",
                   "--log-level", "info")
    good = socket.create_connection(("127.0.0.1", d.port))
    rss0 = rss_kib(d.pid)
    for i, (name, bad, reason) in enumerate(hostile_cases()):
        before = harness.scrape_metrics(d.mport).get(
            'logsink_forward_errors_total{reason="%s"}' % reason, 0)
        first = pack(["h", [entry(i, "h")], {"chunk": "ok-%d" % i}])
        with harness.connect(d.port) as s:
            s.sendall(first + bad)
            if name != "truncated":
                acks = read_acks(s, 1)
            else:
                s.shutdown(socket.SHUT_WR)
                acks = read_acks(s, 1)
            assert acks == [{"ack": "ok-%d" % i}], name
            harness.wait_peer_close(s)
        assert harness.metric(d.mport, "forward_errors_total",
                              reason=reason) == before + 1, name
        # the other connection still works
        good.sendall(pack(["g", [entry(i, "g")], {"chunk": "g-%d" % i}]))
        assert read_acks(good, 1) == [{"ack": "g-%d" % i}], name
    good.close()
    grown = rss_kib(d.pid) - rss0
    report("hostile: RSS grew by %d KiB over %d cases" % (
        grown, len(hostile_cases())))
    assert grown < 64 * 1024, "RSS grew by %d KiB" % grown
    n = len(hostile_cases())
    assert pg.scalar("SELECT count(*) FROM logs WHERE app = 'h'") == n
    assert pg.scalar("SELECT count(*) FROM logs WHERE app = 'g'") == n
    assert "Fluent forward protocol error reason=malformed" in d.log()


def ping(helo, key, host="raw-client", salt="salty"):
    nonce = helo[1]["nonce"]
    digest = hashlib.sha512(salt.encode() + host.encode() + nonce +
                            key.encode()).hexdigest()
    return pack(["PING", host, salt, digest, "", ""]), nonce


def test_shared_key_handshake_raw(pg, daemon, tmp_path):
    """HELO, PING, PONG with the key's digests; a wrong key gets PONG
    false and the close; a message without PING is refused."""
    pg.truncate()
    keyfile = tmp_path / "forward.key"
    keyfile.write_text("k1\n")
    os.chmod(keyfile, 0o644)
    d = fwd_daemon(daemon, pg, opts="shared-key=%s" % keyfile)
    with harness.connect(d.port) as s:
        helo = read_acks(s, 1)[0]
        assert helo[0] == "HELO" and len(helo[1]["nonce"]) == 16
        assert helo[1]["auth"] == ""
        p, nonce = ping(helo, "k1")
        s.sendall(p + pack(["hs", [entry(1, "hs")], {"chunk": "x"}]))
        pong, ack = read_acks(s, 2)
        assert pong[:3] == ["PONG", True, ""]
        assert pong[4] == hashlib.sha512(b"salty" + pong[3].encode() +
                                         nonce + b"k1").hexdigest()
        assert ack == {"ack": "x"}
    with harness.connect(d.port) as s:
        helo = read_acks(s, 1)[0]
        s.sendall(ping(helo, "wrong")[0])
        pong = read_acks(s, 1)[0]
        assert pong[:3] == ["PONG", False, "shared key mismatch"]
        harness.wait_peer_close(s)
    with harness.connect(d.port) as s:
        read_acks(s, 1)
        s.sendall(pack(["hs", [entry(2, "hs")], {"chunk": "y"}]))
        harness.wait_peer_close(s)
    assert harness.metric(d.mport, "forward_errors_total",
                          reason="handshake") == 2
    assert pg.messages() == ["hs-1"]


def test_shared_key_config_errors(tmp_path):
    empty, good = tmp_path / "empty.key", tmp_path / "good.key"
    empty.write_text("\n")
    good.write_text("k\n")
    for opts, why in (("proto=forward shared-key=/nonexistent/k",
                       "No such file"),
                      ("proto=forward shared-key=%s" % empty,
                       "first line must hold the key"),
                      ("shared-key=%s" % good, "needs proto=forward")):
        p = harness.run_logsinkd("--listen", "127.0.0.1:24224 " + opts,
                                 "--check-config")
        assert p.returncode != 0 and why in p.output, (opts, p.output)


def test_limits_entries_and_odd_entries(pg, daemon):
    pg.truncate()
    d = fwd_daemon(daemon, pg, "--forward-max-entries", "3",
                   "--max-line-bytes", "64")
    with harness.connect(d.port) as s:
        # odd entries are stored whole; a long message is cut
        s.sendall(pack(["o", [["not", "a", "pair"], 7,
                              [1, {"message": "x" * 100}]],
                        {"chunk": "odd"}]))
        assert read_acks(s, 1) == [{"ack": "odd"}]
        s.sendall(pack(["o", [entry(i, "o") for i in range(4)],
                        {"chunk": "four"}]))
        harness.wait_peer_close(s)
    assert sorted(m for (m,) in pg.query(
        "SELECT message FROM logs WHERE app = 'o'")) == sorted(
        ['["not","a","pair"]', "7", "x" * 64])
    assert harness.metric(d.mport, "forward_odd_entries_total") == 2
    assert harness.metric(d.mport, "forward_errors_total",
                          reason="entries") == 1
    assert harness.metric(d.mport, "lines_truncated_total") == 1


def test_slow_message_closed_by_partial_line_timeout(pg, daemon):
    """Half a message, then silence: closed after partial-line-timeout;
    the message before it is stored and answered."""
    pg.truncate()
    d = fwd_daemon(daemon, pg, "--partial-line-timeout", "1s")
    good = pack(["slow", [entry(1, "slow")], {"chunk": "s1"}])
    half = pack(["slow", [entry(2, "slow")], {"chunk": "s2"}])
    with harness.connect(d.port) as s:
        s.sendall(good + half[:len(half) // 2])
        assert read_acks(s, 1) == [{"ack": "s1"}]
        harness.wait_peer_close(s)
    assert harness.metric(d.mport, "connections_timed_out_total") == 1
    assert pg.messages() == ["slow-1"]


def test_sender_that_reads_no_acks_is_closed(pg, daemon):
    """Chunks whose answers are never read: past 4096 held answers the
    connection is closed (reason unanswered), memory bounded."""
    pg.truncate()
    d = fwd_daemon(daemon, pg)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", d.port))
    # The daemon stops reading once it gives up on the sender: a send
    # that blocks must not hang the test.
    s.settimeout(LONG)
    one = b"".join(pack(["u", [entry(i, "u")], {"chunk": "u%07d" % i}])
                   for i in range(1000))
    sent = 0
    try:
        while sent < 2000:  # 2M messages at most
            s.sendall(one)
            sent += 1
            if harness.scrape_metrics(d.mport).get(
                    'logsink_forward_errors_total{reason="unanswered"}'):
                break
    except OSError:
        pass  # closed by the daemon (or the send timed out)
    s.close()
    wait_for(lambda: harness.metric(d.mport, "forward_errors_total",
                                    reason="unanswered") == 1,
             what="the connection closed for unread answers")
    wait_for(lambda: harness.metric(d.mport, "connections_open") == 0,
             what="the unanswered connection closed by the daemon")


def test_backpressure_mid_message(pg, daemon):
    """A message of more entries than the queue holds: reading pauses in
    the middle of it and resumes; every entry stored once, one ack."""
    pg.truncate()
    d = fwd_daemon(daemon, pg, "--queue-bytes", "128KiB",
                   "--max-line-bytes", "1KiB", "--batch-lines", "200")
    n = 20000
    with harness.connect(d.port) as s:
        s.sendall(pack(["bp", packed("bp", 0, n), {"chunk": "big"}]))
        assert read_acks(s, 1, timeout=LONG) == [{"ack": "big"}]
    assert pg.query("SELECT count(*), count(DISTINCT message) FROM logs "
                    "WHERE app = 'bp'") == [(n, n)]
    assert harness.metric(d.mport, "backpressure_events_total") > 0


def test_ack_waits_for_commit(stopped_pg, daemon):
    """With the database down nothing is answered; once it is up, the
    answer comes."""
    d = fwd_daemon(daemon, stopped_pg)
    with harness.connect(d.port) as s:
        s.sendall(pack(["w", [entry(1, "w")], {"chunk": "late"}]))
        s.settimeout(1.0)
        with pytest.raises(socket.timeout):
            s.recv(100)
        stopped_pg.start()
        assert read_acks(s, 1, timeout=LONG) == [{"ack": "late"}]
    assert stopped_pg.scalar(
        "SELECT count(*) FROM logs WHERE app = 'w'") == 1
