"""OpenTelemetry logs over OTLP/HTTP (POST /v1/logs on a proto=http
listener) with the real OpenTelemetry JS SDK: @opentelemetry/sdk-logs'
BatchLogRecordProcessor and both exporters, @opentelemetry/exporter-logs-
otlp-http (OTLP/JSON) and -otlp-proto (protobuf), each plain and gzip;
one run through a PostgreSQL stop and start; curl with hand-made bodies
for the partial-success answer and the refusals.  Rows and fields are
checked in SQL.

The npm packages are installed into a directory of the test run (never
globally), pinned to versions that work together on node 20 (OTEL_*
below; the 3.x SDK wants node 22).  Without node/npm, or when the
registry cannot be reached, the tests fail when CI=true and skip
otherwise.

Through a PostgreSQL outage (without a spool) the exporter's request in
flight is answered only after its commit, once PostgreSQL is back (within
http-answer-timeout); a request that comes while the database is down is
answered 503 with Retry-After, which the exporter's retrying transport
resends (5 times at most, honouring Retry-After).  So every record the
exporter reports exported is stored: the test counts them.
"""

import datetime
import gzip
import json
import os
import shutil
import subprocess

import pytest

import harness
from harness import wait_for
from test_http import curl, http_daemon, http_error, http_metric

TIMEOUT = harness.DEFAULT_TIMEOUT
LONG = max(TIMEOUT, 180)

OTEL_API = "1.9.0"
OTEL_SDK_LOGS = "0.223.1"  # with api-logs and both exporters
OTEL_RESOURCES = "2.12.1"

pytestmark = pytest.mark.usefixtures("empty_table")


need = harness.need


@pytest.fixture(scope="module")
def otel_dir(tmp_path_factory):
    """A directory holding node_modules/@opentelemetry/... and emit.js."""
    node, npm = shutil.which("node"), shutil.which("npm")
    need(node and npm, "node/npm not found: install the Debian packages "
         "nodejs and npm")
    d = tmp_path_factory.mktemp("otel")
    pkgs = ["@opentelemetry/api@" + OTEL_API,
            "@opentelemetry/api-logs@" + OTEL_SDK_LOGS,
            "@opentelemetry/sdk-logs@" + OTEL_SDK_LOGS,
            "@opentelemetry/resources@" + OTEL_RESOURCES,
            "@opentelemetry/exporter-logs-otlp-http@" + OTEL_SDK_LOGS,
            "@opentelemetry/exporter-logs-otlp-proto@" + OTEL_SDK_LOGS]
    p = subprocess.run([npm, "install", "--prefix", str(d), "--no-audit",
                        "--no-fund", "--no-save"] + pkgs,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=600)
    need(p.returncode == 0, "npm install %s failed:\n%s"
         % (" ".join(pkgs), p.stdout.decode("utf-8", "replace")[-2000:]))
    (d / "emit.js").write_text(EMIT_JS)
    return d


# A node program: argv node_modules dir, exporter (http|proto), url, n,
# compression (none|gzip).  Emits n log records (severities TRACE..FATAL
# in turn, attributes, trace context on even ones, an object body on every
# fifth, timestamps 1700000000000 + i ms) through a BatchLogRecordProcessor
# (batches of 50; OTLP_PACE_MS: a pause after each batch's worth), then
# flushes.  Prints {"exported":k,"failed":f}; exit 0 if all were exported.
EMIT_JS = r"""
const [dir, kind, url, nStr, compression] = process.argv.slice(2);
const req = (m) => require(dir + '/node_modules/' + m);
const api = req('@opentelemetry/api');
const { SeverityNumber } = req('@opentelemetry/api-logs');
const { LoggerProvider, BatchLogRecordProcessor } =
  req('@opentelemetry/sdk-logs');
const { resourceFromAttributes } = req('@opentelemetry/resources');
const { OTLPLogExporter } = req(kind === 'proto'
  ? '@opentelemetry/exporter-logs-otlp-proto'
  : '@opentelemetry/exporter-logs-otlp-http');

const n = Number(nStr);
const pace = Number(process.env.OTLP_PACE_MS || 0);
const inner = new OTLPLogExporter({ url, compression,
                                    timeoutMillis: 60000 });
let exported = 0, failed = 0;
// The exporter, counting what it reports exported (a 200 answer).
const exporter = {
  export(logs, cb) {
    inner.export(logs, (res) => {
      if (res.code === 0)
        exported += logs.length;
      else {
        failed += logs.length;
        console.error('export failed: ' + (res.error && res.error.message));
      }
      cb(res);
    });
  },
  shutdown() { return inner.shutdown(); },
  forceFlush() { return inner.forceFlush(); },
};
const provider = new LoggerProvider({
  resource: resourceFromAttributes({ 'service.name': 'otlp-test',
                                     'host.name': 'node-host',
                                     'deployment.environment': 'test' }),
  // sdk-logs 0.223: one options object, the exporter in it.
  processors: [new BatchLogRecordProcessor({ exporter,
    maxExportBatchSize: 50, scheduledDelayMillis: 20,
    maxQueueSize: 1000000, exportTimeoutMillis: 120000 })],
});
const logger = provider.getLogger('test-scope', '1.2.3');
const sevs = [[SeverityNumber.TRACE, 'TRACE'], [SeverityNumber.DEBUG, 'DEBUG'],
              [SeverityNumber.INFO, 'INFO'], [SeverityNumber.WARN, 'WARN'],
              [SeverityNumber.ERROR, 'ERROR'], [SeverityNumber.FATAL, 'FATAL']];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  for (let i = 0; i < n; i++) {
    const [num, text] = sevs[i % 6];
    let ctx = api.context.active();
    if (i % 2 === 0)
      ctx = api.trace.setSpanContext(ctx, {
        traceId: (i + 1).toString(16).padStart(32, '0'),
        spanId: (i + 1).toString(16).padStart(16, 'a'),
        traceFlags: 1 });
    logger.emit({
      severityNumber: num, severityText: text,
      body: i % 5 === 4 ? { k: i, s: 'obj' } : 'msg ' + i,
      attributes: { i: i, 'http.method': 'GET', ok: i % 2 === 0,
                    ratio: i / 2, tags: ['a', 'b'] },
      timestamp: new Date(1700000000000 + i),
      context: ctx,
    });
    if (pace && i % 50 === 49)
      await sleep(pace);
  }
  await provider.forceFlush();
  await provider.shutdown();
  console.log(JSON.stringify({ exported, failed }));
  process.exit(exported === n ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(2); });
"""


def emit(otel_dir, d, kind, n, compression="none", pace_ms=0, wait=True):
    """Runs emit.js against d; its result, or the Popen if not wait."""
    env = dict(os.environ, OTLP_PACE_MS=str(pace_ms))
    cmd = ["node", str(otel_dir / "emit.js"), str(otel_dir), kind,
           d.url + "/v1/logs", str(n), compression]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    if not wait:
        return p
    out, err = p.communicate(timeout=LONG)
    assert p.returncode == 0, (out + err).decode("utf-8", "replace")
    return json.loads(out.decode().strip().splitlines()[-1])


COLS = "message, host, app, severity, event_time, fields"


def otlp_rows(pg):
    got = pg.query("SELECT %s FROM logs ORDER BY (fields->'attributes'->>"
                   "'i')::int" % COLS)
    names = [c.strip() for c in COLS.split(",")]
    return [dict(zip(names, r)) for r in got]


def check_sdk_rows(pg, n):
    """The rows of emit.js's n records: columns, fields, containment."""
    got = otlp_rows(pg)
    assert len(got) == n
    t0 = datetime.datetime(2023, 11, 14, 22, 13, 20,
                           tzinfo=datetime.timezone.utc)
    want_sev = [7, 7, 6, 4, 3, 2]
    for i, r in enumerate(got):
        f = r["fields"]
        assert r["app"] == "otlp-test" and r["host"] == "node-host"
        assert r["severity"] == want_sev[i % 6], (i, r)
        assert r["event_time"] == t0 + datetime.timedelta(milliseconds=i)
        if i % 5 == 4:
            assert json.loads(r["message"]) == {"k": i, "s": "obj"}
        else:
            assert r["message"] == "msg %d" % i
        assert f["attributes"] == {"i": i, "http.method": "GET",
                                   "ok": i % 2 == 0, "ratio": i / 2,
                                   "tags": ["a", "b"]}
        assert f["resource"] == {"service.name": "otlp-test",
                                 "host.name": "node-host",
                                 "deployment.environment": "test"}
        assert f["scope"] == {"name": "test-scope", "version": "1.2.3"}
        assert f["severity_text"] == ["TRACE", "DEBUG", "INFO", "WARN",
                                      "ERROR", "FATAL"][i % 6]
        if i % 2 == 0:
            assert f["trace_id"] == "%032x" % (i + 1)
            assert f["span_id"] == ("%x" % (i + 1)).rjust(16, "a")
            assert f["flags"] == 1
        else:
            assert "trace_id" not in f and "span_id" not in f
    # The documented queries: containment on resource and attributes.
    assert pg.scalar("SELECT count(*) FROM logs WHERE fields @> "
                     "'{\"resource\":{\"deployment.environment\":\"test\"},"
                     "\"attributes\":{\"ok\":true}}'") == (n + 1) // 2


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("kind", ["http", "proto"])
def test_sdk_exporter(pg, daemon, otel_dir, kind, compression):
    d = http_daemon(daemon, pg)
    n = 230  # five batches, the last one short
    assert emit(otel_dir, d, kind, n, compression) == \
        {"exported": n, "failed": 0}
    # Exported means answered 200, which comes only after the commit.
    check_sdk_rows(pg, n)
    assert http_metric(d, 200, "otlp") == 5
    assert harness.metric(d, "http_records_total") == n


def test_sdk_through_postgresql_stop_and_start(pg, daemon, otel_dir):
    """PostgreSQL stops while the exporter sends: the request in flight is
    held until its commit, a new one gets 503 with Retry-After (which the
    exporter would resend); once PostgreSQL is back every record the
    exporter reports exported is stored, none twice."""
    d = http_daemon(daemon, pg, "--http-answer-timeout", "120s")
    n = 3000
    p = emit(otel_dir, d, "proto", n, pace_ms=20, wait=False)
    try:
        wait_for(lambda: pg.count() >= 300, TIMEOUT, "the first rows")
        pg.stop()
        wait_for(lambda: harness.metric(d, "db_writable") == 0, TIMEOUT,
                 "the pool to notice")
        # The exporter's request (it sends one at a time) is held with
        # its records read, not committed; or, sent after the pool
        # noticed, it was refused 503 and waits to be resent.
        wait_for(lambda: harness.metric(d, "lines_received_total") >
                 harness.metric(d, "lines_committed_total") or
                 http_metric(d, 503, "otlp") >= 1, TIMEOUT,
                 "a request held or refused")
        assert p.poll() is None
        # A request that comes now is refused, retryably.
        refused = http_error(d, "db-down")
        status, _ = curl("-X", "POST", "-H", "Content-Type: "
                         "application/x-protobuf", "--data-binary", "@-",
                         d.url + "/v1/logs", data=nested_body(1))
        assert status == 503
        assert http_error(d, "db-down") >= refused + 1
    finally:
        pg.start()
    out, err = p.communicate(timeout=LONG)
    assert p.returncode == 0, (out + err).decode("utf-8", "replace")
    assert json.loads(out.decode().strip().splitlines()[-1]) == \
        {"exported": n, "failed": 0}
    r = pg.query("SELECT count(*), count(DISTINCT fields->'attributes'->"
                 "'i') FROM logs")
    assert r[0] == (n, n)


PARTIAL = {"resourceLogs": [{
    "resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "curl-svc"}}]},
    "scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "partial-ok-1"}, "severityNumber": 17,
         "timeUnixNano": "1700000000000000000"},
        {"body": {"stringValue": "partial-bad"}, "traceId": "abc"},
        {"body": {"stringValue": "partial-ok-2"}, "severityText": "warn",
         "observedTimeUnixNano": 1700000001000000000,
         "spanId": "00F067AA0BA902B7"}]}]}]}


def pb_len(field, payload):
    """A length-delimited protobuf field."""
    n, v = len(payload), b""
    while n >= 0x80:
        v += bytes([n & 0x7f | 0x80])
        n >>= 7
    return bytes([field << 3 | 2]) + v + bytes([n]) + payload


def nested_body(depth):
    """A request whose record body is an AnyValue array nested depth
    times (each level two messages: AnyValue, ArrayValue)."""
    v = b""
    for _ in range(depth):
        v = pb_len(5, pb_len(1, v))
    return pb_len(1, pb_len(2, pb_len(2, pb_len(5, v))))


def post_otlp(d, body, ctype, extra=()):
    return curl("-X", "POST", "-H", "Content-Type: " + ctype,
                "--data-binary", "@-", *extra, d.url + "/v1/logs",
                data=body)


def test_curl_partial_success_and_refusals(pg, daemon):
    d = http_daemon(daemon, pg)
    status, body = post_otlp(d, json.dumps(PARTIAL).encode(),
                             "application/json")
    assert status == 200, body
    ans = json.loads(body)
    assert ans["partialSuccess"]["rejectedLogRecords"] == "1"
    assert "logRecords[1]: traceId is not a hex string" in \
        ans["partialSuccess"]["errorMessage"]
    assert harness.metric(d, "http_records_refused_total") == 1
    assert "HTTP request partly refused: 1 record(s)" in d.log()
    got = pg.query("SELECT message, app, severity, fields->>'span_id' "
                   "FROM logs ORDER BY message")
    assert got == [("partial-ok-1", "curl-svc", 3, None),
                   ("partial-ok-2", "curl-svc", 4, "00f067aa0ba902b7")]
    # Full success: {} in JSON, an empty protobuf answer; gzip too.
    ok = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "gz-json"}}]}]}]}
    status, body = post_otlp(d, gzip.compress(json.dumps(ok).encode()),
                             "application/json",
                             ("-H", "Content-Encoding: gzip"))
    assert (status, body) == (200, "{}")
    # LogRecord{body: AnyValue{string_value: "pb-1"}} in ScopeLogs, ...
    rec = b"\x2a\x06\x0a\x04pb-1"
    pb = b"\x0a" + bytes([len(rec) + 4]) + b"\x12" + bytes([len(rec) + 2]) \
        + b"\x12" + bytes([len(rec)]) + rec
    assert post_otlp(d, pb, "application/x-protobuf") == (200, "")
    assert harness.metric(d, "http_records_refused_total") == 1
    assert pg.scalar("SELECT count(*) FROM logs WHERE message IN "
                     "('gz-json', 'pb-1')") == 2
    # A body that does not parse: 400, counted; nothing stored.
    assert post_otlp(d, b"{\"resourceLogs\":", "application/json")[0] == 400
    assert post_otlp(d, b"\x0a\x05\x12", "application/x-protobuf")[0] == 400
    assert http_error(d, "bad-body") == 2
    assert post_otlp(d, nested_body(40), "application/x-protobuf")[0] \
        == 400  # deeper than 64 messages: refused before unpacking
    assert http_error(d, "bad-body") == 3
    assert post_otlp(d, b"x", "text/plain")[0] == 415
    assert http_metric(d, 200, "otlp") == 3
    assert pg.count() == 4


BENCH_PB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "bench", "otlp", "logs-100.pb")


def test_hostile_otlp_bodies(pg, daemon):
    """Truncated protobuf, deep nesting, bodies that would decode to far
    more than their size, a body over http-max-body-bytes and a gzip
    bomb: each refused with its status and counted, nothing stored, and
    a good request served after them on the same listener."""
    d = http_daemon(daemon, pg, "--http-max-body-bytes", "512KiB")
    with open(BENCH_PB, "rb") as f:
        sdk = f.read()  # one request of 100 SDK records
    pb = "application/x-protobuf"
    for cut in (1, 2, 7, len(sdk) // 3, len(sdk) // 2, len(sdk) - 1):
        assert post_otlp(d, sdk[:cut], pb)[0] == 400, cut
    status, body = post_otlp(d, nested_body(100), pb)
    assert status == 400 and "too-deep" in body
    deep = ('{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":'
            + '{"arrayValue":{"values":[' * 1000 + "{}"
            + "]}}" * 1000 + "}]}]}]}")
    status, body = post_otlp(d, deep.encode(), "application/json")
    assert status == 400 and "too-deep" in body
    # 100,000 empty ResourceLogs (2 bytes each) and 100,000 {}.
    status, body = post_otlp(d, b"\x0a\x00" * 100000, pb)
    assert status == 400 and "too-complex" in body
    many = '{"resourceLogs":[' + ",".join(["{}"] * 100000) + "]}"
    status, body = post_otlp(d, many.encode(), "application/json")
    assert status == 400 and "too-complex" in body
    assert http_error(d, "bad-body") == 10
    # Over http-max-body-bytes: as Content-Length, and as a gzip bomb.
    assert post_otlp(d, sdk * 40, pb)[0] == 413
    bomb = gzip.compress(b"\x0a\x00" * (4 << 20))
    assert post_otlp(d, bomb, pb, ("-H", "Content-Encoding: gzip"))[0] \
        == 413
    assert pg.count() == 0
    assert post_otlp(d, sdk, pb) == (200, "")
    assert pg.count() == 100
