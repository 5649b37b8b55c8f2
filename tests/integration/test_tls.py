"""TLS listeners (listen ... tls=on, RFC 5425): real clients over TLS
(openssl s_client, rsyslogd's ossl network stream driver, Python's ssl
module for the well-behaved streaming client), client certificate checks
(tls-verify-client), the tls_subject column, hostile handshakes, SIGHUP
reload of the certificate files and --check-config.

Every certificate is made by the tls_files fixture with the openssl
command line tool in a fresh directory: a CA, a server certificate (and a
second one, for the reload), a client certificate, an expired client
certificate and a client certificate from another CA.  No key is kept in
the repository.  The directory and its files are world-readable, because
a daemon started as root runs as nobody and reads them again on SIGHUP.

Synchronisation polls observable state (rows, /metrics, the daemon's
log, the peer closing a socket); no test asserts how long anything took.
"""

import glob
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile

import psycopg2
import pytest

import harness
from test_hostile import RssSampler, small_asan_quarantine  # noqa: F401
from harness import make_lines, need_tool, wait_for

TIMEOUT = harness.DEFAULT_TIMEOUT
RSYSLOG_UNPACKED = "/opt/logsink-rsyslog"
CLIENT_SUBJECT = "CN=client-1,OU=tests,O=logsink"
OTHER_SUBJECT = "CN=client-other,O=elsewhere"


# --------------------------------------------------------------------------
# certificates




def openssl_path():
    return need_tool(shutil.which("openssl"), "openssl", "openssl")


CA_CNF = """\
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = copy
email_in_dn = no
[ policy_any ]
commonName = supplied
organizationalUnitName = optional
organizationName = optional
"""


class CertFactory:
    """Makes keys and certificates with `openssl` in directory d."""

    def __init__(self, d):
        self.d = d
        self.openssl = openssl_path()

    def path(self, name):
        return os.path.join(self.d, name)

    def run(self, *args):
        p = subprocess.run([self.openssl] + list(args), cwd=self.d,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT)
        assert p.returncode == 0, "openssl %s: %s" % (
            " ".join(args), p.stdout.decode("utf-8", "replace"))
        return p.stdout.decode("utf-8", "replace")

    def key(self, name):
        self.run("genpkey", "-algorithm", "EC", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-out", self.path(name + ".key"))
        return self.path(name + ".key")

    def ca(self, name, cn):
        """A self-signed CA with its own `openssl ca` database."""
        cadir = self.path(name + "-db")
        os.makedirs(os.path.join(cadir, "issued"))
        open(os.path.join(cadir, "index.txt"), "w").close()
        with open(os.path.join(cadir, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(cadir, "ca.cnf"), "w") as f:
            f.write(CA_CNF.format(dir=cadir))
        key = self.key(name)
        self.run("req", "-x509", "-new", "-key", key, "-sha256",
                 "-days", "30", "-subj", "/CN=%s" % cn,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-out", self.path(name + ".pem"))
        return name

    def cert(self, ca, name, subj, server=False, start=None, end=None):
        """A certificate for a new key, issued by ca; start/end as
        YYYYMMDDHHMMSSZ for one outside the present (expired)."""
        key = self.key(name)
        ext = ["-addext", "basicConstraints=CA:FALSE"]
        if server:
            ext += ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-addext", "extendedKeyUsage=serverAuth"]
        else:
            ext += ["-addext", "extendedKeyUsage=clientAuth"]
        csr = self.path(name + ".csr")
        self.run("req", "-new", "-key", key, "-subj", subj, "-out", csr,
                 *ext)
        dates = ["-startdate", start, "-enddate", end] if start else \
            ["-days", "30"]
        cadir = self.path(ca + "-db")
        self.run("ca", "-batch", "-notext", "-preserveDN", "-config",
                 os.path.join(cadir, "ca.cnf"), "-cert",
                 self.path(ca + ".pem"), "-keyfile", self.path(ca + ".key"),
                 "-in", csr, "-out", self.path(name + ".pem"), *dates)
        return self.path(name + ".pem"), key


class TlsFiles:
    pass


@pytest.fixture(scope="module")
def tls_files():
    d = tempfile.mkdtemp(prefix="logsink-tls-", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        f = CertFactory(d)
        t = TlsFiles()
        t.dir = d
        f.ca("ca", "logsink test CA")
        f.ca("other-ca", "another CA")
        t.ca = f.path("ca.pem")
        t.other_ca = f.path("other-ca.pem")
        t.server, t.server_key = f.cert("ca", "server", "/O=logsink/"
                                        "CN=server-1", server=True)
        t.server2, t.server2_key = f.cert("ca", "server2", "/O=logsink/"
                                          "CN=server-2", server=True)
        t.client, t.client_key = f.cert(
            "ca", "client", "/O=logsink/OU=tests/CN=client-1")
        t.expired, t.expired_key = f.cert(
            "ca", "expired", "/O=logsink/CN=client-expired",
            start="20200101000000Z", end="20200201000000Z")
        t.other, t.other_key = f.cert(
            "other-ca", "other", "/O=elsewhere/CN=client-other")
        for root, dirs, files in os.walk(d):
            for n in dirs:
                os.chmod(os.path.join(root, n), 0o755)
            for n in files:
                os.chmod(os.path.join(root, n), 0o644)
        yield t
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# the daemon and its clients


# Every test starts from an empty logs table (conftest.empty_table).
pytestmark = pytest.mark.usefixtures("empty_table")


def start_tls(daemon, pg, t, *args, verify="optional", cert=None, key=None,
              listen_opts=""):
    """logsinkd with a TLS listener (d.port), a plain one (d.plain_port:
    polled for readiness, so that no probe touches the TLS port) and
    /metrics (d.mport)."""
    tp, pp, mp = (harness.free_port() for _ in range(3))
    while len({tp, pp, mp}) < 3:
        pp, mp = harness.free_port(), harness.free_port()
    d = daemon("--listen", ("127.0.0.1:%d tls=on %s" % (tp, listen_opts))
               .strip(),
               "--listen", "127.0.0.1:%d" % pp,
               "--metrics-listen", "127.0.0.1:%d" % mp,
               "--tls-cert", cert or t.server,
               "--tls-key", key or t.server_key,
               "--tls-ca", t.ca, "--tls-verify-client", verify,
               "--stats-interval", 0, *args,
               db=pg.conninfo, listen=False,
               ready_ports=[("127.0.0.1", pp), ("127.0.0.1", mp)])
    d.port, d.plain_port, d.mport = tp, pp, mp
    return d


def failures(d, reason):
    return harness.metric(d, "tls_handshake_failures_total", reason=reason)


def tls_context(t, cert=None, key=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(t.ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def tls_connect(port, t, cert=None, key=None):
    """A Python TLS client socket (the server certificate is verified)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return tls_context(t, cert, key).wrap_socket(raw,
                                                 server_hostname="localhost")


def tls_close(s):
    """Ends a Python TLS client as a careful sender does: half-closes the
    TCP connection (no close_notify: most syslog senders send none) and
    reads until the daemon closes its side, which proves it read all.
    (Closing with the server's session tickets unread would make the
    kernel reset the connection and drop what is still unsent.)"""
    s.shutdown(socket.SHUT_WR)  # drops the TLS layer; raw reads below
    wait_closed(s, "the TLS client's connection")
    s.close()


def s_client(port, t, data, cert=None, key=None, check=True):
    """openssl s_client: verifies the server, sends data, closes at the
    end of its input (close_notify).  Returns (exit status, output)."""
    cmd = [openssl_path(), "s_client", "-connect", "127.0.0.1:%d" % port,
           "-servername", "localhost", "-CAfile", t.ca,
           "-verify_return_error", "-quiet", "-no_ign_eof", "-nocommands"]
    if cert:
        cmd += ["-cert", cert, "-key", key]
    p = subprocess.run(cmd, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=TIMEOUT)
    out = p.stdout.decode("utf-8", "replace")
    if check:
        assert p.returncode == 0, "s_client exited %d: %s" % (
            p.returncode, out)
    return p.returncode, out


def server_subject(port, t):
    """The subject line of the certificate a new s_client connection
    is shown."""
    p = subprocess.run([openssl_path(), "s_client", "-connect",
                        "127.0.0.1:%d" % port, "-CAfile", t.ca,
                        "-verify_return_error", "-nocommands"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=TIMEOUT)
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"^subject=(.*)$", out, re.M)
    assert m, "no subject in s_client output (exit %d):\n%s" % (
        p.returncode, out)
    return m.group(1)


def rows(pg, like):
    return pg.query("select message, tls_subject, host(peer) from "
                    "public.logs where message like %s order by message",
                    (like,))


def wait_rows(pg, like, n, what):
    def enough():
        got = rows(pg, like)
        return got if len(got) >= n else None
    try:
        wait_for(enough, TIMEOUT, what, ignore=(psycopg2.Error,))
    except AssertionError as e:
        raise AssertionError("%s; stored: %r" % (e, rows(pg, like)))
    got = rows(pg, like)
    assert len(got) == n, "%s: %d rows, want %d" % (what, len(got), n)
    return got


def wait_closed(sock, what):
    """Reads until the daemon closes the connection (EOF or reset)."""
    sock.settimeout(TIMEOUT)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    except socket.timeout:
        raise AssertionError("logsinkd did not close %s" % what)


# --------------------------------------------------------------------------
# clients that should get in


def test_s_client_lines_stored_with_subject(daemon, pg, tls_files):
    t = tls_files
    d = start_tls(daemon, pg, t)
    anon = make_lines("anon", 20)
    s_client(d.port, t, "".join(l + "\n" for l in anon).encode())
    # Octet counting inside TLS (RFC 5425: "LEN SP SYSLOG-MSG"), from a
    # client with a certificate.
    signed = make_lines("signed", 20)
    frames = [("<13>1 - - app - - - %s" % l).encode() for l in signed]
    s_client(d.port, t, b"".join(b"%d %s" % (len(f), f) for f in frames),
             t.client, t.client_key)
    got = wait_rows(pg, "anon-%", 20, "anonymous TLS rows")
    assert [r[0] for r in got] == anon
    assert {(r[1], r[2]) for r in got} == {(None, "127.0.0.1")}
    got = wait_rows(pg, "signed-%", 20, "TLS rows with a client certificate")
    assert [r[0] for r in got] == signed
    assert {(r[1], r[2]) for r in got} == {(CLIENT_SUBJECT, "127.0.0.1")}
    assert harness.metric(d, "tls_handshakes_total") >= 2
    # A plain listener's rows have no subject.
    harness.send_lines(d.plain_port, ["plain-1"], wait_close=True)
    assert wait_rows(pg, "plain-%", 1, "plain row") == [
        ("plain-1", None, "127.0.0.1")]


def test_tls_min_version_13(daemon, pg, tls_files):
    t = tls_files
    d = start_tls(daemon, pg, t, "--tls-min-version", "1.3")
    ctx = tls_context(t)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=TIMEOUT)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        ctx.wrap_socket(raw, server_hostname="localhost")
    raw.close()
    wait_for(lambda: failures(d, "protocol") >= 1, TIMEOUT,
             "the TLS 1.2 client counted as a protocol failure")
    s = tls_connect(d.port, t)
    assert s.version() == "TLSv1.3"
    s.sendall(b"v13-1\n")
    tls_close(s)
    wait_rows(pg, "v13-%", 1, "TLS 1.3 row")


def test_ack_commit_over_tls(daemon, pg, tls_files):
    """ack=commit inside TLS: the "ok N" acknowledgements come back over
    the same TLS connection."""
    t = tls_files
    d = start_tls(daemon, pg, t, listen_opts="ack=commit")
    s = tls_connect(d.port, t)
    lines = make_lines("acked", 200)
    s.sendall("".join(l + "\n" for l in lines).encode())
    buf, acked = b"", 0
    while acked < len(lines):
        chunk = s.recv(4096)
        assert chunk, "connection closed after ok %d" % acked
        buf += chunk
        *full, buf = buf.split(b"\n")
        for a in full:
            assert a.startswith(b"ok "), a
            acked = int(a.split()[1])
    assert acked == len(lines)
    assert len(rows(pg, "acked-%")) == len(lines)  # acked means stored
    tls_close(s)


def test_backpressure_over_tls(daemon, fresh_pg, tls_files):
    """A full queue pauses reading from TLS clients as from plain ones;
    once the database is back, every line is stored and acknowledged
    (what OpenSSL had decrypted before the pause included)."""
    t = tls_files
    fresh_pg.stop()
    d = start_tls(daemon, fresh_pg, t, "--queue-bytes", "64KiB",
                  "--max-line-bytes", "1KiB", "--reconnect-max-ms", "500",
                  listen_opts="ack=commit")
    s = tls_connect(d.port, t)
    lines = make_lines("bp", 3000)  # ~190 KB: three times the queue
    s.sendall("".join(l + "\n" for l in lines).encode())
    wait_for(lambda: harness.metric(d, "backpressure_events_total") >= 1,
             TIMEOUT, "reading paused (queue full)")
    fresh_pg.start()
    buf, acked = b"", 0
    while acked < len(lines):
        chunk = s.recv(4096)
        assert chunk, "connection closed after ok %d" % acked
        buf += chunk
        *full, buf = buf.split(b"\n")
        acked = int(full[-1].split()[1]) if full else acked
    tls_close(s)
    got = [r[0] for r in rows(fresh_pg, "bp-%")]
    assert got == lines


@pytest.fixture
def rsyslog():
    path = os.environ.get("RSYSLOGD") or shutil.which("rsyslogd") or \
        shutil.which("rsyslogd", path="/usr/sbin:/sbin")
    if not path:
        unpacked = os.path.join(RSYSLOG_UNPACKED, "usr/sbin/rsyslogd")
        path = unpacked if os.path.exists(unpacked) else None
    path = need_tool(path, "rsyslogd", "rsyslog (scripts/deps.sh --test "
                     "unpacks it)")
    moddir = os.environ.get("RSYSLOG_MODDIR")
    if not moddir and os.path.realpath(path) != "/usr/sbin/rsyslogd":
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.realpath(path))))
        found = sorted(glob.glob(os.path.join(root, "usr/lib/*/rsyslog")))
        moddir = found[0] if found else None
    drivers = glob.glob(os.path.join(moddir or "/usr/lib/*/rsyslog",
                                     "lmnsd_ossl.so"))
    if not drivers:
        need_tool(None, "rsyslog's OpenSSL driver lmnsd_ossl.so",
                  "rsyslog-openssl (scripts/deps.sh --test unpacks it)")
    return path, moddir


RSYSLOG_TLS_CONF = """\
# logsink test_tls: an rsyslogd of the test's own forwarding over TLS.
global(workDirectory="{work}"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{in_port}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{out_port}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
         StreamDriver="ossl" StreamDriverMode="1"
         StreamDriverAuthMode="x509/certvalid")
}}
"""


def test_rsyslog_forwards_over_tls(daemon, pg, tls_files, rsyslog,
                                   tmp_path):
    """rsyslogd's omfwd with the ossl driver, octet-counted framing and a
    client certificate: rows stored with their syslog fields and the
    client's subject."""
    t = tls_files
    rsyslogd, moddir = rsyslog
    d = start_tls(daemon, pg, t, verify="require")
    work = tmp_path / "rsyslog-work"
    work.mkdir()
    in_port = harness.free_port()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_TLS_CONF.format(
        work=work, ca=t.ca, cert=t.client, key=t.client_key,
        in_port=in_port, out_port=d.port))
    cmd = [rsyslogd, "-n", "-f", str(conf),
           "-i", str(tmp_path / "rsyslogd.pid")]
    if moddir:
        cmd += ["-M", moddir]
    log_path = tmp_path / "rsyslogd.out"
    with open(log_path, "wb") as log:
        rs = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        def listening():
            assert rs.poll() is None, "rsyslogd exited:\n%s" % \
                log_path.read_text()
            return harness.can_connect("127.0.0.1", in_port)
        wait_for(listening, TIMEOUT, "rsyslogd to accept on %d" % in_port)
        texts = ["via rsyslog over TLS %d (rs-tls)" % i for i in range(3)]
        harness.send_lines(in_port, ["<155>1 - - rsapp 42 - - %s" % x
                                     for x in texts], wait_close=True)
        got = wait_rows(pg, "via rsyslog over TLS %", 3,
                        "rows forwarded by rsyslogd over TLS (its output: %s)"
                        % log_path)
    finally:
        rs.send_signal(signal.SIGTERM)
        try:
            rs.wait(30)
        except subprocess.TimeoutExpired:
            rs.kill()
            rs.wait(30)
    assert [r[0] for r in got] == texts
    assert {(r[1], r[2]) for r in got} == {(CLIENT_SUBJECT, "127.0.0.1")}
    assert pg.query("select distinct app, procid, facility, severity from "
                    "public.logs where message like 'via rsyslog%%'") == [
        ("rsapp", "42", 19, 3)]


def test_refused_row_keeps_subject(daemon, pg, tls_files):
    """A row PostgreSQL refuses goes to logs_rejected with the client's
    subject, as the other rows of the batch are stored with it."""
    t = tls_files
    pg.query("ALTER TABLE logs ADD CONSTRAINT tls_no_bad "
             "CHECK (message NOT LIKE '%BAD%')")
    try:
        d = start_tls(daemon, pg, t)
        s_client(d.port, t, b"dl-1 ok\ndl-2 BAD\ndl-3 ok\n", t.client,
                 t.client_key)
        wait_for(lambda: pg.scalar("select count(*) from logs_rejected")
                 == 1, TIMEOUT, "the refused row", ignore=(psycopg2.Error,))
        got = wait_rows(pg, "dl-%", 2, "the other rows")
        assert [(r[0], r[1]) for r in got] == [
            ("dl-1 ok", CLIENT_SUBJECT), ("dl-3 ok", CLIENT_SUBJECT)]
        assert pg.query("select convert_from(raw, 'UTF8'), tls_subject, "
                        "peer from logs_rejected") == [
            ("dl-2 BAD", CLIENT_SUBJECT, "127.0.0.1")]
    finally:
        pg.query("ALTER TABLE logs DROP CONSTRAINT tls_no_bad")
        pg.query("TRUNCATE logs_rejected")


# --------------------------------------------------------------------------
# tls-verify-client = require: who is refused


def test_require_refuses_bad_clients(daemon, pg, tls_files):
    """Without a certificate, with one from another CA, with an expired
    one: refused and counted by reason; none of their lines is stored,
    while a good client's connection, open all along, gets every line
    in."""
    t = tls_files
    d = start_tls(daemon, pg, t, verify="require")
    good = tls_connect(d.port, t, t.client, t.client_key)
    first = make_lines("good", 50)
    good.sendall("".join(l + "\n" for l in first).encode())

    cases = [("no_certificate", None, None),
             ("bad_certificate", t.other, t.other_key),
             ("expired_certificate", t.expired, t.expired_key)]
    for reason, cert, key in cases:
        s_client(d.port, t, b"bad-%s\n" % reason.encode(), cert, key,
                 check=False)
        wait_for(lambda: failures(d, reason) >= 1, TIMEOUT,
                 "a %s handshake failure in /metrics" % reason)
    second = make_lines("good", 50, 50)
    good.sendall("".join(l + "\n" for l in second).encode())
    tls_close(good)
    got = wait_rows(pg, "good-%", 100, "the good client's lines")
    assert [r[0] for r in got] == first + second
    assert {r[1] for r in got} == {CLIENT_SUBJECT}
    assert rows(pg, "bad-%") == []
    assert d.alive()
    log = d.log()
    assert "TLS handshake failed (no_certificate): the client sent no " \
        "certificate" in log, log
    # Each refused client counted once, under its own reason.
    assert harness.metric(d, "tls_handshake_failures_total",
                          reason="bad_certificate") == 1
    assert harness.metric(d, "tls_handshake_failures_total",
                          reason="expired_certificate") == 1


def test_require_failures_logged_with_reason(daemon, pg, tls_files):
    """The log line names the peer and the certificate check's reason."""
    t = tls_files
    d = start_tls(daemon, pg, t, verify="require")
    s_client(d.port, t, b"bad-expired\n", t.expired, t.expired_key,
             check=False)
    wait_for(lambda: "TLS handshake failed" in d.log(), TIMEOUT,
             "the handshake failure in the log")
    assert re.search(r"c\d+ 127\.0\.0\.1:\d+: TLS handshake failed "
                     r"\(expired_certificate\): the client certificate did "
                     r"not verify against tls-ca: certificate has expired",
                     d.log()), d.log()


# --------------------------------------------------------------------------
# hostile handshakes


def test_plaintext_to_tls_port(daemon, pg, tls_files):
    """Plain syslog to a TLS port: the connection is closed, nothing of it
    is stored, TLS clients go on."""
    t = tls_files
    d = start_tls(daemon, pg, t)
    with harness.connect(d.port) as s:
        s.sendall(b"<13>Jan  1 00:00:00 host app: plaintext-1\n" * 3)
        wait_closed(s, "the plaintext connection")
    with harness.connect(d.port) as s:
        s.sendall(os.urandom(4096))
        wait_closed(s, "the random-bytes connection")
    wait_for(lambda: failures(d, "protocol") >= 2, TIMEOUT,
             "2 protocol failures in /metrics")
    assert d.alive()
    s_client(d.port, t, b"after-garbage-1\n")
    wait_rows(pg, "after-garbage-%", 1, "a TLS line after the garbage")
    assert rows(pg, "%plaintext-1%") == []


def test_unfinished_handshakes_time_out(daemon, pg, tls_files):
    """A client that connects and sends nothing, and one that sends half a
    ClientHello, are closed after tls-handshake-timeout."""
    t = tls_files
    d = start_tls(daemon, pg, t, "--tls-handshake-timeout", "1s")
    silent = harness.connect(d.port)
    half = harness.connect(d.port)
    # A handshake record announcing 512 bytes, of which 11 arrive.
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    good = tls_connect(d.port, t)
    good.sendall(b"during-stall-1\n")
    try:
        wait_closed(silent, "the silent connection")
        wait_closed(half, "the half-handshake connection")
    finally:
        silent.close()
        half.close()
    assert failures(d, "timeout") == 2
    assert harness.metric(d, "connections_timed_out_total") == 2
    good.sendall(b"during-stall-2\n")
    tls_close(good)
    wait_rows(pg, "during-stall-%", 2, "the good client's lines")
    assert d.alive()
    assert "not finished within tls-handshake-timeout" in d.log()


# --------------------------------------------------------------------------
# SIGHUP reload


def test_sighup_reloads_certificate(daemon, pg, tls_files, tmp_path):
    t = tls_files
    live = tempfile.mkdtemp(prefix="logsink-tls-live-", dir="/tmp")
    try:
        os.chmod(live, 0o755)
        cert, key = os.path.join(live, "srv.pem"), os.path.join(live,
                                                                 "srv.key")
        shutil.copy(t.server, cert)
        shutil.copy(t.server_key, key)
        for p in (cert, key):
            os.chmod(p, 0o644)
        d = start_tls(daemon, pg, t, cert=cert, key=key)
        assert "CN = server-1" in server_subject(d.port, t)
        before = tls_connect(d.port, t, t.client, t.client_key)
        before.sendall(b"reload-1\n")

        # A new certificate and key: new connections get them.
        shutil.copy(t.server2, cert)
        shutil.copy(t.server2_key, key)
        d.signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: TLS files reloaded" in d.log(), TIMEOUT,
                 "the reload in the log")
        assert "CN = server-2" in server_subject(d.port, t)
        before.sendall(b"reload-2\n")  # the old connection goes on

        # A broken certificate file: logged, the running context stays.
        with open(cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n"
                    "-----END CERTIFICATE-----\n")
        d.signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: TLS files not reloaded" in d.log(),
                 TIMEOUT, "the failed reload in the log")
        assert re.search(r"SIGHUP: TLS files not reloaded, new connections "
                         r"keep the previous certificate: tls-cert %s: no "
                         r"usable PEM certificate \(OpenSSL: [^)]+\)"
                         % re.escape(cert), d.log()), d.log()
        assert "CN = server-2" in server_subject(d.port, t)
        s_client(d.port, t, b"reload-3\n", t.client, t.client_key)
        before.sendall(b"reload-4\n")
        tls_close(before)
        got = wait_rows(pg, "reload-%", 4, "lines across the reloads")
        assert {r[1] for r in got} == {CLIENT_SUBJECT}
        assert d.alive()
    finally:
        shutil.rmtree(live, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (user = nobody)")
def test_unreadable_key_after_privilege_drop(daemon, pg, tls_files):
    """Started as root, the files are read before the switch to the
    unprivileged user; a key only root can read is named at start-up
    (reloads would fail) and in the failed reload."""
    t = tls_files
    live = tempfile.mkdtemp(prefix="logsink-tls-root-", dir="/tmp")
    try:
        os.chmod(live, 0o755)
        key = os.path.join(live, "srv.key")
        shutil.copy(t.server_key, key)
        os.chmod(key, 0o600)
        d = start_tls(daemon, pg, t, key=key)
        want = ("tls-key %s: Permission denied (it must be readable by "
                "the user logsinkd runs as, nobody" % key)
        wait_for(lambda: "a SIGHUP reload of the TLS files would fail: "
                 + want in d.log(), TIMEOUT, "the start-up warning")
        d.signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: TLS files not reloaded, new connections "
                 "keep the previous certificate: " + want in d.log(),
                 TIMEOUT, "the failed reload")
        s_client(d.port, t, b"root-1\n")
        wait_rows(pg, "root-%", 1, "a line after the failed reload")
    finally:
        shutil.rmtree(live, ignore_errors=True)


# --------------------------------------------------------------------------
# --check-config


def test_check_config_validates_tls_files(tls_files, tmp_path):
    t = tls_files
    base = ["--check-config", "--listen", "127.0.0.1:6514 tls=on",
            "--tls-cert", t.server, "--tls-ca", t.ca]
    p = harness.run_logsinkd(*base, "--tls-key", t.server_key)
    assert p.returncode == 0, p.output
    assert "# tls: subject=CN=server-1,O=logsink expires=" in p.stdout
    assert "tls-cert = %s" % t.server in p.stdout

    p = harness.run_logsinkd(*base, "--tls-key", t.client_key)
    assert p.returncode != 0, p.output
    assert ("tls-key %s does not match the certificate in tls-cert %s"
            % (t.client_key, t.server)) in p.stderr, p.output
    assert "# configuration OK" not in p.stdout

    missing = str(tmp_path / "nope.pem")
    p = harness.run_logsinkd("--check-config", "--listen",
                             "127.0.0.1:6514 tls=on", "--tls-cert", missing,
                             "--tls-key", t.server_key)
    assert p.returncode != 0
    assert "tls-cert %s: No such file or directory" % missing in p.stderr

    p = harness.run_logsinkd("--check-config", "--listen",
                             "127.0.0.1:6514 tls=on")
    assert p.returncode != 0
    assert "tls=on but tls-cert and tls-key are not set" in p.stderr

    p = harness.run_logsinkd(*base, "--tls-key", t.server_key,
                             "--tls-ca", t.server_key)
    assert p.returncode != 0
    assert "tls-ca %s: no usable PEM CA certificate" % t.server_key \
        in p.stderr, p.output


def test_handshake_flood_memory_bounded(daemon, pg, tls_files):
    """800 connections that start a TLS handshake and never finish it, and
    200 that send garbage, against tls-max-handshakes 500: 500 are held
    (about 48 KiB each), the rest refused at once; the daemon stays up, its
    memory within the bound below, and a good TLS client's lines sent
    meanwhile all arrive."""
    t = tls_files
    nhalf, ngarbage, cap = 800, 200, 500
    d = start_tls(daemon, pg, t, "--tls-handshake-timeout", "10m",
                  "--tls-max-handshakes", cap, "--max-connections-per-ip", 0)
    socks = []
    with RssSampler(d.pid) as rss:
        try:
            good = tls_connect(d.port, t)
            for i in range(nhalf):
                s = harness.connect(d.port)
                try:
                    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"
                              b"\x03\x03")
                except OSError:
                    pass  # refused: closed at once
                socks.append(s)
                if i % 100 == 0:
                    good.sendall(b"flood-%04d\n" % i)
            wait_for(lambda: harness.metric(d, "connections_refused_total")
                     >= nhalf - cap, TIMEOUT,
                     "the handshakes past tls-max-handshakes refused")
            for i in range(ngarbage):
                with harness.connect(d.port) as s:
                    try:
                        s.sendall(os.urandom(512))
                    except OSError:
                        pass
            good.sendall(b"flood-last\n")
            tls_close(good)
            wait_rows(pg, "flood-%", nhalf // 100 + 1,
                      "the good client's lines")
            assert harness.metric(d, "connections_open") <= cap + 1
        finally:
            for s in socks:
                s.close()
    assert d.alive(), d.log()
    assert "tls-max-handshakes reached" in d.log()
    rss.check("%d unfinished TLS handshakes (%d held) + %d garbage senders"
              % (nhalf, cap, ngarbage), 64)
