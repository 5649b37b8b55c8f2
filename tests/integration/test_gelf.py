"""GELF over TCP with a real client: the npm package gelf-pro (its "tcp"
adapter sends each message as JSON + NUL on a connection of its own).

gelf-pro is installed with npm into a directory of the test run (never
globally), pinned to GELF_PRO_VERSION; node and npm come from the Debian
packages nodejs and npm (scripts/deps.sh --test).  Without node/npm, or
when the registry cannot be reached, the tests fail when CI=true and skip
otherwise.

Each test asserts the stored columns (message, host, severity, app,
event_time) and fields, not only a row count.
"""

import datetime
import json
import shutil
import socket
import subprocess

import psycopg2
import pytest

import harness
from harness import wait_for

TIMEOUT = harness.DEFAULT_TIMEOUT
GELF_PRO_VERSION = "1.4.0"

pytestmark = pytest.mark.usefixtures("empty_table")


need = harness.need


@pytest.fixture(scope="module")
def gelf_pro(tmp_path_factory):
    """A directory holding node_modules/gelf-pro."""
    node, npm = shutil.which("node"), shutil.which("npm")
    need(node and npm, "node/npm not found: install the Debian packages "
         "nodejs and npm")
    d = tmp_path_factory.mktemp("gelf-pro")
    p = subprocess.run([npm, "install", "--prefix", str(d), "--no-audit",
                        "--no-fund", "--no-save",
                        "gelf-pro@" + GELF_PRO_VERSION],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    need(p.returncode == 0, "npm install gelf-pro@%s failed:\n%s"
         % (GELF_PRO_VERSION, p.stdout.decode("utf-8", "replace")[-2000:]))
    return d


# A node program: sends the messages of argv[3] (a JSON list of
# [method, message, extra]) with gelf-pro's TCP adapter to 127.0.0.1:argv[2],
# one after the other, and exits 0 once every callback reported success.
SENDER = r"""
const gelf = require(process.argv[2] + '/node_modules/gelf-pro');
gelf.setConfig({
  adapterName: 'tcp',
  adapterOptions: { host: '127.0.0.1', port: Number(process.argv[3]),
                    family: 4, timeout: 30000 },
  fields: { env: 'test' },
});
const msgs = JSON.parse(process.argv[4]);
(async () => {
  for (const [method, message, extra] of msgs) {
    const m = method === 'error-object' ? new Error(message) : message;
    const how = method === 'error-object' ? 'error' : method;
    await new Promise((resolve, reject) => {
      const cb = (err, bytes) => err ? reject(err) : resolve(bytes);
      if (extra === null)
        gelf[how](m, cb);
      else
        gelf[how](m, extra, cb);
    });
  }
})().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
"""


def send_gelf(gelf_pro, tmp_path, port, msgs):
    script = tmp_path / "send.js"
    script.write_text(SENDER)
    p = subprocess.run(["node", str(script), str(gelf_pro), str(port),
                        json.dumps(msgs)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=TIMEOUT)
    assert p.returncode == 0, p.stdout.decode("utf-8", "replace")


COLS = "message, host, app, severity, facility, event_time, fields"


def rows(pg, n):
    wait_for(lambda: pg.count() >= n, TIMEOUT, "%d rows" % n,
             ignore=(psycopg2.Error,))
    got = pg.query("select %s from public.logs order by received_at" % COLS)
    assert len(got) == n, got
    names = [c.strip() for c in COLS.split(",")]
    return [dict(zip(names, r)) for r in got]


def test_gelf_pro_levels_extra_fields_and_timestamp(pg, daemon, tmp_path,
                                                     gelf_pro):
    d = daemon(db=pg.conninfo)
    levels = ["emergency", "alert", "critical", "error", "warning",
              "notice", "info", "debug"]
    msgs = [[lv, "level %s" % lv, None] for lv in levels]
    msgs.append(["info", "with extras",
                 {"host": "web1", "timestamp": 1764583200.125,
                  "facility": "billing", "user_id": 9001,
                  "request": {"path": "/pay", "ms": 12}}])
    send_gelf(gelf_pro, tmp_path, d.port, msgs)
    got = rows(pg, len(msgs))
    by_msg = {r["message"]: r for r in got}
    for sev, lv in enumerate(levels):
        r = by_msg["level %s" % lv]
        assert r["severity"] == sev, r
        assert r["facility"] is None
        assert r["host"] == socket.gethostname()
        assert r["event_time"] is not None
        # gelf-pro's config fields arrive as additional field "_env".
        assert r["fields"] == {"env": "test"}, r
    r = by_msg["with extras"]
    assert r["host"] == "web1"
    assert r["app"] == "billing"
    assert r["severity"] == 6
    assert r["event_time"] == datetime.datetime(
        2025, 12, 1, 10, 0, 0, 125000, tzinfo=datetime.timezone.utc)
    # Underscores stripped; gelf-pro flattens nested objects with "_".
    assert r["fields"] == {"env": "test", "facility": "billing",
                           "user_id": 9001, "request_path": "/pay",
                           "request_ms": 12}, r


def test_gelf_pro_error_full_message_and_large(pg, daemon, tmp_path,
                                               gelf_pro):
    d = daemon(db=pg.conninfo)
    big_short = "s" * 20000
    big_full = "line\n" * 4000  # 24000 bytes escaped: all within 64 KiB
    msgs = [["error-object", "boom", None],
            ["warning", big_short, {"full_message": big_full,
                                    "blob": "x" * 10000}]]
    send_gelf(gelf_pro, tmp_path, d.port, msgs)
    got = rows(pg, 2)
    boom = [r for r in got if r["message"] == "boom"]
    assert len(boom) == 1, got
    r = boom[0]
    assert r["severity"] == 3
    # gelf-pro puts an Error's stack into full_message.
    assert r["fields"]["full_message"].startswith("Error: boom\n    at ")
    big = [r for r in got if r["message"] == big_short]
    assert len(big) == 1, [x["message"][:40] for x in got]
    r = big[0]
    assert r["severity"] == 4
    assert r["fields"]["full_message"] == big_full
    assert r["fields"]["blob"] == "x" * 10000


def test_gelf_persistent_connection_and_bad_payloads(pg, daemon):
    """Several GELF messages on one connection (framing=auto picks NUL
    from '{' + NUL), a NUL-delimited stream on a framing=nul listener, and
    payloads that are not GELF: stored as what they are, nothing lost."""
    port2 = harness.free_port()
    d = daemon("--listen", "127.0.0.1:%d framing=nul" % port2,
               db=pg.conninfo, ready_ports=[("127.0.0.1", port2)])

    def gelf(i, **kw):
        m = {"version": "1.1", "host": "h%d" % i,
             "short_message": "m%d" % i, "level": 5}
        m.update(kw)
        return json.dumps(m).encode() + b"\0"

    stream = gelf(1) + gelf(2, _x="a\u0000b") + gelf(3, full_message="f")
    # Sent in small pieces: detection waits for the first NUL.
    with harness.connect(d.port) as s:
        for i in range(0, len(stream), 7):
            s.sendall(stream[i:i + 7])
        s.shutdown(socket.SHUT_WR)
        harness.wait_peer_close(s)
    bad = (b'{"version":"1.1","short_message":"cut\0'  # broken JSON
           + b'{"version":"1.1","host":"h"}\0'       # no short_message
           + gelf(4))
    harness.send_bytes(port2, bad, wait_close=True)
    got = rows(pg, 6)
    by_msg = {r["message"]: r for r in got}
    assert by_msg["m1"]["host"] == "h1" and by_msg["m1"]["severity"] == 5
    assert by_msg["m1"]["fields"] is None
    assert by_msg["m2"]["fields"] == {"x": "a\ufffdb"}
    assert by_msg["m3"]["fields"] == {"full_message": "f"}
    assert by_msg["m4"]["host"] == "h4"
    cut = '{"version":"1.1","short_message":"cut'
    assert by_msg[cut]["fields"] is None and by_msg[cut]["host"] is None
    plain_json = by_msg['{"version":"1.1","host":"h"}']
    assert plain_json["host"] == "h"
    assert plain_json["fields"] == {"version": "1.1", "host": "h"}


def test_gelf_over_max_line_bytes_is_cut_plain_and_counted(pg, daemon):
    """A GELF message longer than max-line-bytes is cut (no longer JSON):
    stored as plain text of max-line-bytes, counted and logged; the next
    message on the connection is GELF again."""
    mport = harness.free_port()
    d = daemon("--max-line-bytes", "4KiB", "--metrics-listen",
               "127.0.0.1:%d" % mport, db=pg.conninfo)
    big = json.dumps({"version": "1.1", "host": "h",
                      "short_message": "big " + "x" * 10000}).encode()
    small = json.dumps({"version": "1.1", "host": "h2",
                        "short_message": "after"}).encode()
    harness.send_bytes(d.port, big + b"\0" + small + b"\0", wait_close=True)
    got = rows(pg, 2)
    cut = [r for r in got if r["message"].startswith('{"version"')]
    assert len(cut) == 1, [r["message"][:40] for r in got]
    assert len(cut[0]["message"]) == 4096
    assert cut[0]["fields"] is None and cut[0]["host"] is None
    [after] = [r for r in got if r["message"] == "after"]
    assert after["host"] == "h2"
    assert harness.metric(mport, "lines_truncated_total") == 1
    wait_for(lambda: "longer than max-line-bytes" in d.log(), TIMEOUT,
             "the truncation warning")
