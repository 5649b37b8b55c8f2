"""PROXY protocol listeners (listen ... proxy=CIDR,...): a real haproxy
(send-proxy, send-proxy-v2, health checks with check-send-proxy) in front
of logsinkd for plain TCP and TLS passthrough (mode tcp, logsinkd
tls=on), ack=commit through the proxy, allow= applied to the client the
header names, and hostile headers sent by hand: from a peer that is not a
proxy, malformed v1 and v2, none at all, cut off, too long, too late.

The whole of 127.0.0.0/8 is loopback on Linux: haproxy connects to
logsinkd from 127.0.0.9 (the listener's proxy= address), clients connect
to haproxy from 127.0.0.2 and 127.0.0.3, so the stored peer tells the
client from the proxy.  haproxy runs in the foreground (-db) with a
generated configuration and is stopped by its PID.  Synchronisation
polls rows, /metrics and sockets; no test asserts how long anything took.
"""

import os
import pathlib
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest

import harness
from harness import need_tool, wait_for

TIMEOUT = harness.DEFAULT_TIMEOUT
PROXY_SRC = "127.0.0.9"  # haproxy's address towards logsinkd
CLIENT_A = "127.0.0.2"
CLIENT_B = "127.0.0.3"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
REASONS = ("untrusted", "missing", "v1", "v2", "too-long", "timeout", "eof")




def tcp_listening(port):
    """Whether something listens on 127.0.0.1:port (/proc/net/tcp), found
    without connecting: a probe through haproxy would reach logsinkd."""
    want = ":%04X" % port
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want) and fields[3] == "0A":
                return True
    return False


class Haproxy:
    """haproxy -db with one frontend per (name, server options) pair,
    each forwarding to logsinkd's port from PROXY_SRC."""

    def __init__(self, workdir, backend_port, servers):
        self.path = need_tool(shutil.which("haproxy") or "/usr/sbin/haproxy",
                              "haproxy", "haproxy")
        self.ports = {}
        cfg = ["global", "    maxconn 200", "defaults", "    mode tcp",
               "    timeout connect 10s", "    timeout client 120s",
               "    timeout server 120s"]
        for name, opts in servers:
            port = harness.free_port()
            while port in self.ports.values() or port == backend_port:
                port = harness.free_port()
            self.ports[name] = port
            cfg += ["frontend f_%s" % name,
                    "    bind 127.0.0.1:%d" % port,
                    "    default_backend b_%s" % name,
                    "backend b_%s" % name,
                    "    server s_%s 127.0.0.1:%d source %s %s"
                    % (name, backend_port, PROXY_SRC, opts)]
        self.cfg = os.path.join(workdir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.log_path = os.path.join(workdir, "haproxy.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.path, "-f", self.cfg, "-db"],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is None and
                 all(tcp_listening(p) for p in self.ports.values()),
                 what="haproxy listening (%s)" % self.log_path)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(TIMEOUT)
        self.log.close()

    def logsink_artifacts(self):
        return [("haproxy output", harness.tail_text(self.log_path))]


@pytest.fixture
def haproxy(tmp_path):
    made = []

    def make(backend_port, servers):
        h = Haproxy(str(tmp_path), backend_port, servers)
        made.append(h)
        return h

    make.logsink_artifacts = lambda: [a for h in made
                                      for a in h.logsink_artifacts()]
    yield make
    for h in made:
        h.stop()


def start(daemon, pg, opts, *args):
    """logsinkd with the proxy listener (d.port), a plain one for the
    readiness probe (so that no probe touches the proxy port) and
    /metrics (d.mport)."""
    ports = set()
    while len(ports) < 3:
        ports.add(harness.free_port())
    lp, pp, mp = sorted(ports)
    d = daemon("--listen", "127.0.0.1:%d %s" % (lp, opts),
               "--listen", "127.0.0.1:%d" % pp,
               "--metrics-listen", "127.0.0.1:%d" % mp,
               "--stats-interval", 0, "--log-level", "debug", *args,
               db=pg.conninfo, listen=False,
               ready_ports=[("127.0.0.1", pp), ("127.0.0.1", mp)])
    d.port, d.mport = lp, mp
    return d


def failures(d):
    return {r: harness.metric(d, "proxy_failures_total", reason=r)
            for r in REASONS}


def headers(d, version):
    return harness.metric(d, "proxy_headers_total", version=str(version))


def connect_from(src, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def send_until_closed(s, data):
    """Sends data, half-closes and reads until the daemon closes; a
    refused connection may be closed before any of that."""
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        harness.wait_peer_close(s)
    except (BrokenPipeError, ConnectionResetError):
        pass
    except OSError as e:
        if e.errno != 107:  # ENOTCONN: closed already
            raise


def send_acked(s, lines):
    """ack=commit: sends lines, half-closes, reads "ok N" until N is all
    of them; returns the acks read."""
    s.sendall(b"".join(l.encode() + b"\n" for l in lines))
    s.shutdown(socket.SHUT_WR)
    got, buf = [], b""
    while not got or got[-1] < len(lines):
        data = s.recv(4096)
        assert data, "closed after acks %r of %d lines" % (got, len(lines))
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            assert line.startswith(b"ok "), line
            got.append(int(line[3:]))
    return got


def peers_of(pg, tag):
    return sorted(set(r[0] for r in pg.query(
        "select host(peer) from logs where message like %s", (tag + "-%",))))


def test_send_proxy_v1_v2_peer_and_ack_commit(daemon, pg, haproxy):
    """Through haproxy send-proxy (v1) and send-proxy-v2, on an ack=commit
    listener: every line stored with the client's address as peer, every
    line acknowledged, no header refused."""
    pg.truncate()
    d = start(daemon, pg, "proxy=%s ack=commit" % PROXY_SRC)
    h = haproxy(d.port, [("v1", "send-proxy"), ("v2", "send-proxy-v2")])
    lines1 = harness.make_lines("pv1", 300)
    lines2 = harness.make_lines("pv2", 300)
    with connect_from(CLIENT_A, h.ports["v1"]) as s:
        acks1 = send_acked(s, lines1)
    with connect_from(CLIENT_B, h.ports["v2"]) as s:
        acks2 = send_acked(s, lines2)
    assert acks1[-1] == 300 and acks2[-1] == 300
    assert pg.count() == 600
    assert peers_of(pg, "pv1") == [CLIENT_A]
    assert peers_of(pg, "pv2") == [CLIENT_B]
    assert headers(d, 1) == 1 and headers(d, 2) == 1
    assert failures(d) == {r: 0 for r in REASONS}
    log = d.log()
    assert "PROXY v1 header from" in log and "PROXY v2 header from" in log


def test_health_checks_send_local(daemon, pg, haproxy):
    """haproxy's health checks with check-send-proxy on a send-proxy-v2
    server send the LOCAL command: accepted (the proxy's own address),
    never counted as failures, not judged by allow= (the proxy is in
    proxy=), no row."""
    pg.truncate()
    d = start(daemon, pg, "proxy=%s allow=%s/32" % (PROXY_SRC, CLIENT_A))
    haproxy(d.port, [("chk", "send-proxy-v2 check check-send-proxy "
                             "inter 100ms")])
    wait_for(lambda: headers(d, 2) >= 3, what="3 health checks")
    assert failures(d) == {r: 0 for r in REASONS}
    assert harness.metric(d, "connections_refused_total") == 0
    assert pg.count() == 0
    assert "LOCAL or UNKNOWN" in d.log()


def test_allow_applies_to_the_original_client(daemon, pg, haproxy):
    """allow= judges the client the header names: through the proxy
    127.0.0.2 is stored, 127.0.0.3 refused; connecting directly, even
    127.0.0.2 is refused (not a proxy)."""
    pg.truncate()
    d = start(daemon, pg, "proxy=%s allow=%s/32" % (PROXY_SRC, CLIENT_A))
    h = haproxy(d.port, [("v2", "send-proxy-v2")])
    refused = harness.metric(d, "connections_refused_total")
    with connect_from(CLIENT_B, h.ports["v2"]) as s:
        send_until_closed(s, b"from-b-0 must not be stored\n")
    wait_for(lambda: harness.metric(d, "connections_refused_total")
             == refused + 1, what="the client refused")
    with connect_from(CLIENT_A, d.port) as s:
        send_until_closed(s, b"direct-a-0 must not be stored\n")
    with connect_from(CLIENT_A, h.ports["v2"]) as s:
        send_until_closed(s, b"from-a-0 stored\n")
    wait_for(lambda: pg.count() == 1, what="the allowed line")
    assert peers_of(pg, "from-a") == [CLIENT_A]
    assert harness.metric(d, "connections_refused_total") == refused + 2
    assert failures(d)["untrusted"] == 1
    assert "not in the listener's allow list (the client the PROXY header " \
        "names)" in d.log()


def test_max_connections_per_ip_counts_the_client(daemon, pg, haproxy):
    """max-connections-per-ip counts the original clients: two clients
    behind one proxy each get their connection; a second one from the
    same client is refused."""
    pg.truncate()
    d = start(daemon, pg, "proxy=%s" % PROXY_SRC,
              "--max-connections-per-ip", 1)
    h = haproxy(d.port, [("v1", "send-proxy")])
    a = connect_from(CLIENT_A, h.ports["v1"])
    b = connect_from(CLIENT_B, h.ports["v1"])
    a.sendall(b"perip-a-0\n")
    b.sendall(b"perip-b-0\n")
    wait_for(lambda: pg.count() == 2, what="both clients' lines")
    refused = harness.metric(d, "connections_refused_total")
    with connect_from(CLIENT_A, h.ports["v1"]) as a2:
        send_until_closed(a2, b"perip-a-1 refused\n")
    assert harness.metric(d, "connections_refused_total") == refused + 1
    for s in (a, b):
        s.shutdown(socket.SHUT_WR)
        harness.wait_peer_close(s)
        s.close()
    assert sorted(r[0] for r in pg.query(
        "select host(peer) from logs")) == [CLIENT_A, CLIENT_B]


def v2_inet(src, sport, dst, dport, tlvs=b"", cmd=0x21):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + \
        struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([cmd, 0x11]) + struct.pack("!H", len(body)) + body


BAD_HEADERS = [
    ("missing", b"<13>Dec  1 10:00:00 h app: no header\n"),
    ("v1", b"PROXY TCP4 10.1.1.1 10.1.1.2 99999 5140\r\nbad-v1 line\n"),
    ("v1", b"PROXY TCP4 10.1.1.1 10.1.1.2 1 2\nbad-v1 line\n"),
    ("v1", b"PROXY " + b"A" * 120 + b"\r\n"),
    ("v2", V2_SIG + b"\x21\x11\x00\x0b" + b"\x00" * 11 + b"bad-v2 line\n"),
    ("v2", v2_inet("10.1.1.1", 1, "10.1.1.2", 2, b"\x01\x00\x09ab") +
     b"bad-v2 line\n"),
    ("v2", V2_SIG + b"\x23\x11\x00\x0c" + b"\x00" * 12),
    ("too-long", V2_SIG + b"\x21\x11\x10\x00" + b"\x00" * 200),
    ("eof", b"PROXY TCP4 10.1.1.1"),
    ("eof", V2_SIG[:7]),
]


def test_hostile_headers_closed_and_counted(daemon, pg):
    """From the trusted address itself (the test binds 127.0.0.9): a
    missing, malformed, cut off or too long header closes the connection
    and is counted by reason; nothing of it is stored, and a good header
    after them still works, split into single bytes."""
    pg.truncate()
    d = start(daemon, pg, "proxy=%s" % PROXY_SRC)
    want = {r: 0 for r in REASONS}
    for reason, data in BAD_HEADERS:
        with connect_from(PROXY_SRC, d.port) as s:
            send_until_closed(s, data)
        want[reason] += 1
        wait_for(lambda: failures(d) == want,
                 what="failures %r" % want)
    # A direct connection from a non-proxy address, with a header.
    with connect_from("127.0.0.1", d.port) as s:
        send_until_closed(
            s, b"PROXY TCP4 10.9.9.9 10.1.1.2 1 2\r\nforged-0\n")
    want["untrusted"] += 1
    wait_for(lambda: failures(d) == want, what="the forged header counted")
    # A good v2 header, with TLVs, one byte per send.
    data = v2_inet("10.7.7.7", 4242, "127.0.0.1", d.port,
                   b"\x04\x00\x03abc\x05\x00\x00") + b"split-0 good\n"
    with connect_from(PROXY_SRC, d.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            s.send(data[i:i + 1])
            time.sleep(0.002)  # separate segments, not synchronisation
        s.shutdown(socket.SHUT_WR)
        harness.wait_peer_close(s)
    wait_for(lambda: pg.count() == 1, what="the split header's line")
    assert pg.query("select host(peer), message from logs") == \
        [("10.7.7.7", "split-0 good")]
    assert failures(d) == want
    assert "bad PROXY header (missing)" in d.log()


def test_header_timeout(daemon, pg):
    """A proxy that connects and sends half a header is closed after
    proxy-header-timeout, counted as timeout."""
    d = start(daemon, pg, "proxy=%s" % PROXY_SRC,
              "--proxy-header-timeout", "1s")
    with connect_from(PROXY_SRC, d.port) as s:
        s.sendall(b"PROXY TCP4 ")
        harness.wait_peer_close(s)
    assert failures(d)["timeout"] == 1
    assert harness.metric(d, "connections_timed_out_total") == 1
    assert "within proxy-header-timeout" in d.log()


@pytest.fixture
def server_cert(tmp_path):
    openssl = need_tool(shutil.which("openssl"), "openssl", "openssl")
    key, crt = str(tmp_path / "server.key"), str(tmp_path / "server.pem")
    p = subprocess.run([openssl, "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", crt, "-days", "2",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=TIMEOUT)
    assert p.returncode == 0, p.stdout
    os.chmod(str(tmp_path), 0o755)
    os.chmod(key, 0o644)
    return crt, key


def test_tls_passthrough(daemon, pg, haproxy, server_cert):
    """haproxy in TCP mode forwards the TLS stream after its PROXY header
    (v1 and v2); logsinkd reads the header, then does the handshake on
    the same socket: lines stored with the client's address, acked."""
    pg.truncate()
    crt, key = server_cert
    d = start(daemon, pg, "tls=on ack=commit proxy=%s" % PROXY_SRC,
              "--tls-cert", crt, "--tls-key", key)
    h = haproxy(d.port, [("v1", "send-proxy"), ("v2", "send-proxy-v2")])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(crt)
    for name, src in (("v1", CLIENT_A), ("v2", CLIENT_B)):
        lines = harness.make_lines("tls" + name, 200)
        with ctx.wrap_socket(connect_from(src, h.ports[name]),
                             server_hostname="127.0.0.1") as s:
            s.sendall(b"".join(l.encode() + b"\n" for l in lines))
            buf = b""
            while not buf.endswith(b"ok 200\n"):
                data = s.recv(4096)
                assert data, "closed before ok 200: %r" % buf
                buf += data
    assert pg.count() == 400
    assert peers_of(pg, "tlsv1") == [CLIENT_A]
    assert peers_of(pg, "tlsv2") == [CLIENT_B]
    assert headers(d, 1) == 1 and headers(d, 2) == 1
    assert harness.metric(d, "tls_handshakes_total") == 2
    assert failures(d) == {r: 0 for r in REASONS}


@pytest.fixture
def conf_dir():
    """A world-readable directory: a daemon started as root reads its
    configuration again as nobody on SIGHUP (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="logsink-proxy-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_reload_applies(daemon, pg, conf_dir):
    """SIGHUP applies proxy-max-header-bytes and proxy-header-timeout to
    the next connections of a proxy= listener."""
    pg.truncate()
    cfg = pathlib.Path(conf_dir) / "logsinkd.conf"
    cfg.write_text("proxy-max-header-bytes = 1KiB\n"
                   "proxy-header-timeout = 1h\n")
    os.chmod(str(cfg), 0o644)
    d = start(daemon, pg, "proxy=%s" % PROXY_SRC, "-c", str(cfg))
    big = v2_inet("10.4.4.4", 1, "127.0.0.1", 2,
                  b"\x04" + struct.pack("!H", 1500) + b"\x00" * 1500)
    with connect_from(PROXY_SRC, d.port) as s:
        send_until_closed(s, big + b"big-0 refused\n")
    assert failures(d)["too-long"] == 1
    cfg.write_text("proxy-max-header-bytes = 2KiB\n"
                   "proxy-header-timeout = 1s\n")
    os.chmod(str(cfg), 0o644)
    d.signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: configuration reloaded" in d.log(),
             what="the reload")
    with connect_from(PROXY_SRC, d.port) as s:
        send_until_closed(s, big + b"big-1 stored\n")
    wait_for(lambda: pg.count() == 1, what="the line after the big header")
    assert pg.query("select host(peer), message from logs") == \
        [("10.4.4.4", "big-1 stored")]
    with connect_from(PROXY_SRC, d.port) as s:
        harness.wait_peer_close(s)  # silent: closed by the new timeout
    assert failures(d)["timeout"] == 1


def test_sigterm_during_header(daemon, pg):
    """SIGTERM while a proxy connection is still in its header: closed,
    and the daemon exits 0 (under ASan: nothing leaked)."""
    d = start(daemon, pg, "proxy=%s" % PROXY_SRC)
    with connect_from(PROXY_SRC, d.port) as s:
        s.sendall(V2_SIG[:5])
        wait_for(lambda: "READ in PROXY" in d.log(), what="the first read")
        assert d.stop() == 0
        harness.wait_peer_close(s)
    assert "Sanitizer" not in d.log()
