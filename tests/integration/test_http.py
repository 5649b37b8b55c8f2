"""HTTP ingest (listen ... proto=http): POST /ingest with the real curl
(NDJSON, a JSON array, text lines, gzip, chunked, 100-continue,
keep-alive), the refusals and their statuses, the answer held until
PostgreSQL is back, and a real npm HTTP log transport (winston's
transports.Http).  Rows are checked in SQL.
"""

import gzip
import json
import os
import shutil
import subprocess
import zlib

import pytest

import harness
from harness import wait_for
from test_tls import tls_files  # noqa: F401 (fixture)

TIMEOUT = harness.DEFAULT_TIMEOUT
LONG = max(TIMEOUT, 180)

pytestmark = pytest.mark.usefixtures("empty_table")


def http_daemon(daemon, pg, *args, opts="", spool=None, db=True):
    """logsinkd with an HTTP listener (d.port) and /metrics (d.mport)."""
    port = harness.free_port()
    mport = harness.free_port()
    extra = ["--listen", ("127.0.0.1:%d proto=http %s" % (port, opts))
             .strip(), "--metrics-listen", "127.0.0.1:%d" % mport,
             "--reconnect-min-ms", 50, "--reconnect-max-ms", 500]
    if spool:
        extra += ["--spool-dir", spool]
    d = daemon(*(extra + list(args)), db=pg.conninfo if db else None,
               listen=False, ready_ports=[("127.0.0.1", port)])
    d.port, d.mport = port, mport
    d.url = "http://127.0.0.1:%d" % port
    if db:
        # Until a database connection is up, requests get 503.
        wait_for(lambda: harness.metric(d, "db_writable") > 0, TIMEOUT,
                 "a database connection")
    return d


def curl(*args, data=None, timeout=TIMEOUT):
    """Runs curl; returns (status, body).  data goes to stdin (@-)."""
    need = harness.need_tool(shutil.which("curl") or "/usr/bin/curl",
                             "curl", "curl")
    cmd = [need, "-sS", "-o", "-", "-w", "\n%{http_code}",
           "--max-time", str(int(timeout))] + [str(a) for a in args]
    r = subprocess.run(cmd, input=data, capture_output=True,
                       timeout=timeout + 10)
    out = r.stdout.decode(errors="replace")
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def post(d, body, ctype="application/x-ndjson", path="/ingest", extra=()):
    return curl("-X", "POST", "-H", "Content-Type: " + ctype,
                "--data-binary", "@-", *extra, d.url + path, data=body)


def rows(pg, tag):
    return pg.query("SELECT message, host, app, severity, fields::text "
                    "FROM logs WHERE message LIKE %s ORDER BY message",
                    ("%" + tag + "%",))


def count(pg, tag):
    return pg.scalar("SELECT count(*) FROM logs WHERE message LIKE %s",
                     ("%" + tag + "%",))


def http_metric(d, code, endpoint="json"):
    return harness.metric(d, "http_requests_total", endpoint=endpoint,
                          code=str(code))


def http_error(d, reason):
    return harness.metric(d, "http_errors_total", reason=reason)


def test_ndjson_stored_after_commit_with_json_mapping(pg, daemon):
    d = http_daemon(daemon, pg)
    lines = [json.dumps({"message": "ndj-%03d" % i, "host": "web1",
                         "app": "shop", "level": "warning", "user": i})
             for i in range(50)]
    status, body = post(d, ("\n".join(lines) + "\n").encode())
    assert status == 200, body
    # 200 only after commit: the rows are there when the answer came.
    got = rows(pg, "ndj-")
    assert len(got) == 50
    assert got[0][0] == "ndj-000" and got[0][1] == "web1"
    # JSON lines map as on TCP: level -> severity, other keys -> fields.
    assert got[0][3] == 4
    fields = json.loads(got[0][4])
    assert fields["app"] == "shop" and fields["user"] == 0
    assert http_metric(d, 200) == 1


def test_json_array_object_and_text(pg, daemon):
    d = http_daemon(daemon, pg)
    arr = json.dumps([{"message": "arr-%d" % i, "host": "h%d" % i}
                      for i in range(10)])
    assert post(d, arr.encode(), "application/json")[0] == 200
    assert count(pg, "arr-") == 10
    one = json.dumps({"message": "single-obj", "app": "x"}, indent=2)
    assert post(d, one.encode(), "application/json; charset=utf-8")[0] \
        == 200
    assert json.loads(rows(pg, "single-obj")[0][4])["app"] == "x"
    text = b"<13>Dec  1 10:00:00 txthost txtapp: text-line-1\r\n" \
           b"plain text-line-2\n\n"
    assert post(d, text, "text/plain")[0] == 200
    got = rows(pg, "text-line-")
    assert [r[0] for r in got] == ["plain text-line-2", "text-line-1"]
    assert got[1][1] == "txthost"


def test_gzip_deflate_chunked_and_100_continue(pg, daemon):
    d = http_daemon(daemon, pg)
    body = "".join(json.dumps({"message": "gz-%05d" % i}) + "\n"
                   for i in range(3000)).encode()
    st, out = post(d, gzip.compress(body), extra=(
        "-H", "Content-Encoding: gzip"))
    assert st == 200, out
    assert count(pg, "gz-") == 3000
    body2 = "".join(json.dumps({"message": "defl-%05d" % i}) + "\n"
                    for i in range(100)).encode()
    st, out = post(d, zlib.compress(body2), extra=(
        "-H", "Content-Encoding: deflate"))
    assert st == 200, out
    assert count(pg, "defl-") == 100
    # Chunked from stdin; curl sends "Expect: 100-continue" for bodies
    # over 1 KiB unless told otherwise, so both paths are taken.
    body3 = "".join(json.dumps({"message": "chunk-%05d" % i}) + "\n"
                    for i in range(2000)).encode()
    st, out = post(d, body3, extra=("-H", "Transfer-Encoding: chunked",
                                    "-H", "Expect: 100-continue"))
    assert st == 200, out
    assert count(pg, "chunk-") == 2000
    st, out = post(d, body3.replace(b"chunk-", b"cont-"), extra=(
        "-H", "Expect: 100-continue"))
    assert st == 200, out
    assert count(pg, "cont-") == 2000


def test_keep_alive_several_requests_one_connection(pg, daemon):
    d = http_daemon(daemon, pg)
    before = harness.metric(d, "connections_accepted_total")
    n = 5
    args = []
    for i in range(n):
        if i:
            args.append("--next")
        args += ["-X", "POST", "-H", "Content-Type: application/x-ndjson",
                 "--data-binary", '{"message":"ka-%d"}' % i,
                 d.url + "/ingest"]
    r = subprocess.run(["curl", "-sS", "-v", "-o", "/dev/null"] + args,
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert err.count("Re-using existing connection") >= n - 1 or \
        err.count("Connected to") == 1, err
    assert count(pg, "ka-") == n
    assert harness.metric(d, "connections_accepted_total") == before + 1


def test_pipelined_requests_answered_in_order(pg, daemon):
    d = http_daemon(daemon, pg)
    reqs = b""
    for i in range(6):
        body = b'{"message":"pipe-%d"}\n' % i
        reqs += (b"POST /ingest HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/x-ndjson\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    reqs += b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
    with harness.connect(d.port) as s:
        s.sendall(reqs)
        data = b""
        while data.count(b"HTTP/1.1 ") < 7:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    codes = [int(x.split(b" ")[1]) for x in data.split(b"\r\n")
             if x.startswith(b"HTTP/1.1 ")]
    assert codes == [200] * 6 + [404], data
    assert count(pg, "pipe-") == 6


def test_refusals_statuses_and_metrics(pg, daemon, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# senders\nsecret-token-1\n  secret-token-2  \n")
    d = http_daemon(daemon, pg, "--http-max-body-bytes", "64KiB",
                    "--max-line-bytes", "1KiB",
                    opts="tokens=%s path=/logs" % tokens)
    auth = ("-H", "Authorization: Bearer secret-token-2")
    ok = b'{"message":"ref-ok"}\n'
    assert post(d, ok, path="/logs", extra=auth)[0] == 200
    st, _ = post(d, ok, path="/logs")
    assert st == 401
    r = subprocess.run(["curl", "-sS", "-i", "-X", "POST", "--data-binary",
                        "x", d.url + "/logs"], capture_output=True)
    assert b"WWW-Authenticate: Bearer" in r.stdout
    assert post(d, ok, path="/logs",
                extra=("-H", "Authorization: Bearer wrong"))[0] == 401
    assert post(d, ok, path="/ingest", extra=auth)[0] == 404
    assert curl("-H", "Authorization: Bearer secret-token-1",
                d.url + "/logs")[0] == 405
    assert post(d, ok, "image/png", "/logs", extra=auth)[0] == 415
    assert post(d, ok, path="/logs", extra=auth + (
        "-H", "Content-Encoding: br"))[0] == 415
    assert post(d, b"x" * 70000, path="/logs", extra=auth)[0] == 413
    assert post(d, b'{"message":"' + b"y" * 2000 + b'"}\n', path="/logs",
                extra=auth)[0] == 413
    assert post(d, b"[{]", "application/json", "/logs", extra=auth)[0] \
        == 400
    st, body = post(d, b'[{"a":1},]', "application/json", "/logs",
                    extra=auth)
    assert st == 400 and "bad-json" in body
    with harness.connect(d.port) as s:
        s.sendall(b"POST /logs HTTP/1.1\r\nHost: x\r\nAuthorization: "
                  b"Bearer secret-token-1\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 411 ")
    assert count(pg, "ref-ok") == 1
    assert http_error(d, "unauthorized") == 3
    assert http_error(d, "no-route") == 1
    assert http_error(d, "method") == 1
    assert http_error(d, "media-type") == 1
    assert http_error(d, "content-encoding") == 1
    assert http_error(d, "body-too-large") == 1
    assert http_error(d, "entry-too-large") == 1
    assert http_error(d, "bad-body") == 2
    assert http_error(d, "no-length") == 1
    assert http_metric(d, 401) == 3
    assert http_metric(d, 200) == 1
    assert "HTTP request refused" in d.log()


def test_answer_held_until_postgresql_is_back(pg, daemon, spool_parent):
    """With a spool, a request is taken while PostgreSQL is down and
    answered 200 only once its rows are committed."""
    d = http_daemon(daemon, pg, spool=os.path.join(spool_parent, "spool"))
    pg.stop()
    try:
        p = subprocess.Popen(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
             "--max-time", str(LONG), "-X", "POST", "-H",
             "Content-Type: application/x-ndjson", "--data-binary",
             '{"message":"held-1"}\n{"message":"held-2"}\n',
             d.url + "/ingest"], stdout=subprocess.PIPE)
        wait_for(lambda: harness.metric(d, "http_records_total") == 2,
                 TIMEOUT, "the records read")
        assert p.poll() is None  # not answered while the database is down
    finally:
        pg.start()
    out, _ = p.communicate(timeout=LONG)
    assert out == b"200"
    assert count(pg, "held-") == 2


def test_back_pressure_pauses_a_big_body_and_resumes(pg, daemon,
                                                     spool_parent):
    """A body larger than the queue and the spool together: reading it
    pauses while both are full (PostgreSQL down), resumes once PostgreSQL
    is back, and every record is stored exactly once before the 200."""
    d = http_daemon(daemon, pg, "--queue-bytes", "256KiB",
                    "--max-line-bytes", "1KiB",
                    "--spool-max-bytes", "1MiB", "--batch-lines", "200",
                    "--http-answer-timeout", "10m",
                    "--http-body-timeout", "10m",
                    spool=os.path.join(spool_parent, "spool"))
    n = 60000
    body = "".join('{"message":"bp-%06d","n":%d}\n' % (i, i)
                   for i in range(n)).encode()
    path = os.path.join(spool_parent, "body.ndjson")
    with open(path, "wb") as f:
        f.write(body)
    pg.stop()
    try:
        p = subprocess.Popen(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
             "--max-time", str(LONG), "-X", "POST", "-H",
             "Content-Type: application/x-ndjson", "-H",
             "Transfer-Encoding: chunked", "--data-binary", "@" + path,
             d.url + "/ingest"], stdout=subprocess.PIPE)
        wait_for(lambda: harness.metric(d, "backpressure_events_total")
                 >= 1, TIMEOUT, "the queue and the spool to fill")
        got = harness.metric(d, "http_records_total")
        assert 0 < got < n  # paused in the middle of the body
        assert p.poll() is None
    finally:
        pg.start()
    out, _ = p.communicate(timeout=LONG)
    assert out == b"200"
    r = pg.query("SELECT count(*), count(DISTINCT message) FROM logs "
                 "WHERE message LIKE 'bp-%'")
    assert r[0] == (n, n)


def test_503_when_database_down_without_spool(pg, daemon):
    d = http_daemon(daemon, pg)
    pg.stop()
    try:
        wait_for(lambda: harness.metric(d, "db_writable") == 0, TIMEOUT,
                 "the pool to notice")
        r = subprocess.run(
            ["curl", "-sS", "-i", "-X", "POST", "-H",
             "Content-Type: application/x-ndjson", "--data-binary",
             '{"message":"down-1"}\n', d.url + "/ingest"],
            capture_output=True, timeout=TIMEOUT)
        assert r.stdout.startswith(b"HTTP/1.1 503 "), r.stdout
        assert b"Retry-After: " in r.stdout
        assert http_error(d, "db-down") == 1
    finally:
        pg.start()
    wait_for(lambda: harness.metric(d, "db_writable") > 0, TIMEOUT,
             "the pool to reconnect")
    assert post(d, b'{"message":"down-2"}\n')[0] == 200
    assert count(pg, "down-") == 1


def test_answer_timeout_gives_503_and_close(pg, daemon, spool_parent):
    d = http_daemon(daemon, pg, "--http-answer-timeout", "1s",
                    spool=os.path.join(spool_parent, "spool"))
    pg.stop()
    try:
        r = subprocess.run(
            ["curl", "-sS", "-i", "-X", "POST", "-H",
             "Content-Type: application/x-ndjson", "--data-binary",
             '{"message":"late-1"}\n', d.url + "/ingest"],
            capture_output=True, timeout=TIMEOUT)
        assert r.stdout.startswith(b"HTTP/1.1 503 "), r.stdout
        assert b"Retry-After: " in r.stdout
        assert b"Connection: close" in r.stdout
        assert http_error(d, "answer-timeout") == 1
    finally:
        pg.start()
    # At-least-once: the record is stored all the same.
    wait_for(lambda: count(pg, "late-1") == 1, TIMEOUT, "the late row")


def test_https_with_client_certificate(pg, daemon, tls_files):
    """tls=on works as for TCP: HTTPS, the verified client certificate in
    tls_subject."""
    t = tls_files
    d = http_daemon(daemon, pg, "--tls-cert", t.server, "--tls-key",
                    t.server_key, "--tls-ca", t.ca, "--tls-verify-client",
                    "optional", opts="tls=on")
    url = "https://127.0.0.1:%d/ingest" % d.port
    st, body = curl("-k", "--cert", t.client, "--key", t.client_key,
                    "-H", "Content-Type: application/x-ndjson",
                    "--data-binary", '{"message":"tls-1"}\n', url)
    assert st == 200, body
    st, body = curl("-k", "-H", "Content-Type: text/plain",
                    "--data-binary", "tls-2 without a certificate", url)
    assert st == 200, body
    got = pg.query("SELECT message, tls_subject FROM logs WHERE message "
                   "LIKE 'tls-%' ORDER BY message")
    assert got[0][0] == "tls-1" and "client-1" in got[0][1]
    assert got[1] == ("tls-2 without a certificate", None)


def test_behind_a_proxy_protocol_sender(pg, daemon):
    """proxy= works as for TCP: the PROXY header names the peer."""
    d = http_daemon(daemon, pg, opts="proxy=127.0.0.1")
    body = b'{"message":"proxied-1"}\n'
    with harness.connect(d.port) as s:
        s.sendall(b"PROXY TCP4 10.9.8.7 127.0.0.1 4321 80\r\n"
                  b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/x-ndjson\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n%s" % (len(body), body))
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 "), data
    assert pg.query("SELECT host(peer) FROM logs WHERE message = "
                    "'proxied-1'") == [("10.9.8.7",)]


# --------------------------------------------------------------------------
# winston's transports.Http, installed from npm into the test's directory

WINSTON_JS = """
const winston = require('winston');
const port = parseInt(process.argv[2], 10);
const n = parseInt(process.argv[3], 10);
const logger = winston.createLogger({
  level: 'info',
  transports: [new winston.transports.Http({
    host: '127.0.0.1', port: port, path: '/ingest', batch: %s,
    batchCount: 20, batchInterval: 200})],
});
let answered = 0, failed = 0;
const t = logger.transports[0];
t.on('warn', (e) => { failed++; console.error('warn', e && e.message); });
for (let i = 0; i < n; i++)
  logger.info('winston-%s-' + String(i).padStart(4, '0'),
              {service: 'npmtest', i: i});
logger.on('finish', () => {});
setTimeout(() => logger.end(), 1500);
setTimeout(() => process.exit(failed ? 1 : 0), 5000);
"""


@pytest.fixture(scope="module")
def winston_dir(tmp_path_factory):
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("npm is missing (scripts/deps.sh --test)")
        pytest.skip("npm not installed")
    d = tmp_path_factory.mktemp("winston")
    r = subprocess.run([npm, "install", "--prefix", str(d), "--no-audit",
                        "--no-fund", "--silent", "winston@3"],
                       capture_output=True, timeout=600)
    if r.returncode != 0:
        pytest.fail("npm install winston: %s" % r.stderr.decode()[-2000:])
    return d


@pytest.mark.parametrize("batch", ["false", "true"])
def test_winston_http_transport(pg, daemon, winston_dir, batch):
    d = http_daemon(daemon, pg)
    tag = "b" if batch == "true" else "s"
    script = winston_dir / ("send-%s.js" % tag)
    script.write_text(WINSTON_JS % (batch, tag))
    n = 60
    r = subprocess.run(["node", str(script), str(d.port), str(n)],
                       cwd=str(winston_dir), capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()
    wait_for(lambda: count(pg, "winston-%s-" % tag) == n, TIMEOUT,
             "winston's %d rows" % n)
    got = pg.query("SELECT severity, fields->>'service' FROM logs "
                   "WHERE message LIKE %s LIMIT 1",
                   ("winston-%s-%%" % tag,))
    assert got[0] == (6, "npmtest")
    assert harness.metric(d, "http_errors_total", reason="bad-body") == 0


def test_reload_applies_http_limits(pg, daemon, spool_parent):
    """SIGHUP applies http-max-body-bytes and http-max-headers to the next
    requests (spool_parent: a directory nobody can read the file in)."""
    import signal
    cfg = os.path.join(spool_parent, "logsinkd.conf")
    with open(cfg, "w") as f:
        f.write("http-max-body-bytes = 1MiB\nhttp-max-headers = 100\n")
    os.chmod(cfg, 0o644)
    d = http_daemon(daemon, pg, "-c", cfg)
    body = b"".join(b'{"message":"hup-%05d"}\n' % i for i in range(200))
    assert post(d, body)[0] == 200
    with open(cfg, "w") as f:
        f.write("http-max-body-bytes = 2KiB\nhttp-max-headers = 6\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: configuration reloaded" in d.log(),
             what="the reload")
    assert post(d, body)[0] == 413
    assert post(d, b'{"message":"hup-small"}\n', extra=(
        "-H", "X-A: 1", "-H", "X-B: 2"))[0] == 431
    assert count(pg, "hup-") == 200
