"""journald upload: the real systemd-journal-upload (Debian package
systemd-journal-remote) POSTing a journal file to /upload of a
proto=http listener, in the Journal Export Format (body_journal.c).

The journal files are written without journald: Journal Export Format
text (and binary fields) piped into systemd-journal-remote --output.
systemd-journal-upload --follow=no sends one chunked POST of every entry
after the cursor in its --save-state file and saves the last entry's
cursor only when the answer is 2xx (journal-upload.c perform_upload());
logsinkd answers only after commit.  So after a SIGKILL of logsinkd or a
PostgreSQL outage in the middle of an upload, a rerun resends from the
saved cursor, and every entry is stored exactly once or counted as a
duplicate (count(*) against count(DISTINCT fields->>'__CURSOR')).
"""

import re
import shutil
import struct
import subprocess
import threading

import pytest

import harness
from harness import wait_for
from test_tls import tls_files  # noqa: F401 (fixture)

TIMEOUT = harness.DEFAULT_TIMEOUT
LONG = max(TIMEOUT, 240)

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
JOURNAL_UPLOAD = "/lib/systemd/systemd-journal-upload"
BOOT_ID = "0123456789abcdef0123456789abcdef"
T0 = 1764640000000000  # 2025-12-02 01:46:40 UTC, microseconds

pytestmark = pytest.mark.usefixtures("empty_table")


def report(msg):
    """A count for the test log (pytest -s shows it)."""
    print("\n[test_journal_upload] " + msg)


@pytest.fixture(scope="module")
def tools():
    return (harness.need_tool(JOURNAL_REMOTE, "systemd-journal-remote",
                              "systemd-journal-remote"),
            harness.need_tool(JOURNAL_UPLOAD, "systemd-journal-upload",
                              "systemd-journal-remote"))


def export_entry(fields):
    """One entry in the Journal Export Format: fields is a list of
    (name, value) with str values as text fields and bytes values as
    binary fields."""
    out = b""
    for name, value in fields:
        if isinstance(value, bytes):
            out += (name.encode() + b"\n" + struct.pack("<Q", len(value))
                    + value + b"\n")
        else:
            out += ("%s=%s\n" % (name, value)).encode()
    return out + b"\n"


def plain_entry(tag, i):
    """A typical entry, as journald stores a service's line."""
    return export_entry([
        ("__REALTIME_TIMESTAMP", str(T0 + i)),
        ("__MONOTONIC_TIMESTAMP", str(1000 + i)),
        ("_BOOT_ID", BOOT_ID),
        ("_TRANSPORT", "journal"), ("PRIORITY", "6"),
        ("SYSLOG_FACILITY", "3"), ("SYSLOG_IDENTIFIER", "jup"),
        ("_PID", "4242"), ("_UID", "1000"), ("_COMM", "jupd"),
        ("_SYSTEMD_UNIT", "jup.service"), ("_HOSTNAME", "jhost"),
        ("MESSAGE", "%s-%06d" % (tag, i))])


def write_journal(tools, path, entries):
    """Appends entries (export-format bytes) to the journal file path with
    systemd-journal-remote, reading them on stdin."""
    r = subprocess.run([tools[0], "--output=%s" % path, "-"],
                       input=b"".join(entries), capture_output=True,
                       timeout=LONG)
    assert r.returncode == 0, r.stderr.decode(errors="replace")


def upload_cmd(tools, journal, url, state):
    return [tools[1], "--follow=no", "--file=%s" % journal, "--url=%s" % url,
            "--save-state=%s" % state]


def upload(tools, journal, url, state):
    """Runs systemd-journal-upload to the end; returns (rc, stderr)."""
    r = subprocess.run(upload_cmd(tools, journal, url, state),
                       capture_output=True, timeout=LONG)
    return r.returncode, r.stderr.decode(errors="replace")


def saved_cursor(state):
    try:
        with open(state) as f:
            m = re.search(r"^LAST_CURSOR=(.*)$", f.read(), re.M)
    except FileNotFoundError:
        return None
    return m.group(1) if m else None


def journal_daemon(daemon, pg, *args, port=None, opts=""):
    """logsinkd with a proto=http listener (d.port, d.url) and /metrics
    (d.mport), once a database connection is up."""
    port = port or harness.free_port()
    mport = harness.free_port()
    extra = ["--listen", ("127.0.0.1:%d proto=http %s" % (port, opts))
             .strip(), "--metrics-listen", "127.0.0.1:%d" % mport,
             "--reconnect-min-ms", 50, "--reconnect-max-ms", 500]
    d = daemon(*(extra + [str(a) for a in args]), db=pg.conninfo,
               listen=False, ready_ports=[("127.0.0.1", port)])
    d.port, d.mport = port, mport
    d.url = "http://127.0.0.1:%d" % port
    wait_for(lambda: harness.metric(d, "db_writable") > 0, TIMEOUT,
             "a database connection")
    return d


def counts(pg, tag):
    """(rows, distinct cursors) of tag."""
    r = pg.query("SELECT count(*), count(DISTINCT fields->>'__CURSOR') "
                 "FROM logs WHERE message LIKE %s", (tag + "-%",))
    return r[0][0], r[0][1]


def second_rows(pg, tag, n1):
    """Rows of the entries from n1 on (the second upload's new ones)."""
    return pg.scalar("SELECT count(*) FROM logs WHERE message LIKE %s AND "
                     "message >= %s", (tag + "-%", "%s-%06d" % (tag, n1)))


def journal_metric(d, code):
    return harness.metric(d, "http_requests_total", endpoint="journal",
                          code=str(code))


def test_upload_maps_columns_and_fields(pg, daemon, tools, tmp_path):
    journal = str(tmp_path / "x.journal")
    state = str(tmp_path / "state")
    write_journal(tools, journal, [
        export_entry([
            ("__REALTIME_TIMESTAMP", str(T0)),
            ("__MONOTONIC_TIMESTAMP", "1000"), ("_BOOT_ID", BOOT_ID),
            ("MESSAGE", "jmap-0 first"), ("PRIORITY", "3"),
            ("SYSLOG_FACILITY", "4"), ("SYSLOG_IDENTIFIER", "myapp"),
            ("_COMM", "mycomm"), ("_PID", "123"), ("SYSLOG_PID", "456"),
            ("_HOSTNAME", "jhost"),
            ("MESSAGE_ID", "fc2e22bc6ee647b6b90729ab34a250b1"),
            ("TAGS", "a"), ("TAGS", "b"), ("QUOTE", 'say "hi" \\')]),
        # A message with LF and NUL (journal-upload sends it as a
        # binary field), invalid UTF-8 in another field; app from _COMM,
        # procid from SYSLOG_PID.
        export_entry([
            ("__REALTIME_TIMESTAMP", str(T0 + 1)),
            ("__MONOTONIC_TIMESTAMP", "1001"), ("_BOOT_ID", BOOT_ID),
            ("MESSAGE", b"jmap-1 line one\nline two\x00end"),
            ("_COMM", "mycomm"), ("SYSLOG_PID", "456"),
            ("BLOB", b"\xff\xfe ok"), ("PRIORITY", "9")]),
        export_entry([
            ("__REALTIME_TIMESTAMP", str(T0 + 2)),
            ("__MONOTONIC_TIMESTAMP", "1002"), ("_BOOT_ID", BOOT_ID),
            ("MESSAGE", "jmap-2 caf\u00e9")]),
    ])
    d = journal_daemon(daemon, pg)
    rc, err = upload(tools, journal, d.url, state)
    assert rc == 0, err
    # The answer came after the commit: every row is there now.
    got = pg.query(
        "SELECT message, host, app, procid, msgid, severity, facility, "
        "(extract(epoch FROM event_time) * 1000000)::bigint, fields "
        "FROM logs WHERE message LIKE 'jmap-%%' ORDER BY message")
    assert len(got) == 3
    m0, m1, m2 = got
    assert m0[:7] == ("jmap-0 first", "jhost", "myapp", "123",
                      "fc2e22bc6ee647b6b90729ab34a250b1", 3, 4)
    assert m0[7] == T0
    f0 = m0[8]
    # The alternatives not taken and every other field are in fields.
    assert f0["_COMM"] == "mycomm" and f0["SYSLOG_PID"] == "456"
    assert f0["TAGS"] == ["a", "b"]
    assert f0["QUOTE"] == 'say "hi" \\'
    assert f0["_BOOT_ID"] == BOOT_ID
    assert f0["__MONOTONIC_TIMESTAMP"] == "1000"
    assert f0["__CURSOR"].startswith("s=")
    for col in ("MESSAGE", "_HOSTNAME", "SYSLOG_IDENTIFIER", "_PID",
                "PRIORITY", "SYSLOG_FACILITY", "MESSAGE_ID",
                "__REALTIME_TIMESTAMP"):
        assert col not in f0
    # Binary MESSAGE: LF kept, NUL and invalid UTF-8 replaced (U+FFFD).
    assert m1[0] == "jmap-1 line one\nline two\ufffdend"
    assert m1[1:7] == (None, "mycomm", "456", None, None, None)
    assert m1[8]["PRIORITY"] == "9"  # not 0..7: not the severity
    assert m1[8]["BLOB"] == "\ufffd\ufffd ok"
    assert m2[0] == "jmap-2 caf\u00e9" and m2[7] == T0 + 2
    # journal-upload saved the last entry's cursor: it was stored.
    assert saved_cursor(state) == m2[8]["__CURSOR"]
    assert journal_metric(d, 200) == 1
    # A rerun has nothing after the cursor; journal-upload 252 still
    # sends the entry at its saved cursor again (one duplicate per run,
    # found by its __CURSOR).
    rc, err = upload(tools, journal, d.url, state)
    assert rc == 0, err
    again = pg.query("SELECT fields->>'__CURSOR', count(*) FROM logs "
                     "WHERE message LIKE 'jmap-%%' GROUP BY 1 "
                     "HAVING count(*) > 1")
    assert again in ([], [(saved_cursor(state), 2)])
    report("rerun with nothing new: %d entry sent again" % len(again))


def test_follow_posts_each_batch(pg, daemon, tools, tmp_path):
    """With --follow (the service's default) journal-upload posts each
    batch of new entries as its own request, on the kept-alive connection,
    and saves the cursor after each answer."""
    journal = str(tmp_path / "x.journal")
    state = str(tmp_path / "state")
    write_journal(tools, journal, [plain_entry("jfol", i) for i in range(3)])
    d = journal_daemon(daemon, pg)
    conns = harness.metric(d, "connections_accepted_total")  # the probe's
    cmd = [c for c in upload_cmd(tools, journal, d.url, state)
           if c != "--follow=no"]
    up = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    try:
        wait_for(lambda: journal_metric(d, 200) == 1, LONG,
                 "the first request answered")
        wait_for(lambda: saved_cursor(state) is not None, TIMEOUT,
                 "the cursor saved")
        write_journal(tools, journal,
                      [plain_entry("jfol", i) for i in range(3, 5)])
        wait_for(lambda: journal_metric(d, 200) == 2, LONG,
                 "the second batch's request answered")
        wait_for(lambda: counts(pg, "jfol")[1] == 5, TIMEOUT,
                 "all five stored")
        up.terminate()
        up.communicate(timeout=TIMEOUT)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert counts(pg, "jfol") == (5, 5)
    last = pg.scalar("SELECT fields->>'__CURSOR' FROM logs WHERE message "
                     "= 'jfol-000004'")
    assert saved_cursor(state) == last
    # Both requests on one connection.
    assert harness.metric(d, "connections_accepted_total") == conns + 1


def test_bad_body_refused_with_reason(pg, daemon, tools):
    """A bad field name (lowercase) gets 400 naming the reason; what came
    before it in the body is stored."""
    d = journal_daemon(daemon, pg)
    body = (export_entry([("MESSAGE", "jbad-0 good")]) +
            export_entry([("message", "jbad-1 bad")]))
    code, out = post_upload(d, body)
    assert code == 400, (code, out)
    assert "bad-field-name" in out
    assert journal_metric(d, 400) == 1
    assert harness.metric(d, "http_errors_total", reason="bad-body") == 1
    wait_for(lambda: pg.scalar("SELECT count(*) FROM logs WHERE message "
                               "= 'jbad-0 good'") == 1, TIMEOUT,
             "the entry before the bad one stored")
    assert pg.scalar("SELECT count(*) FROM logs WHERE message LIKE "
                     "'jbad-1%%'") == 0


def test_https_with_client_certificate(pg, daemon, tools, tmp_path,
                                      tls_files):
    """journal-upload over HTTPS (tls=on) with its client certificate
    (--key/--cert, as ServerKeyFile/ServerCertificateFile): stored with
    the certificate's subject in tls_subject.  --trust=all: the test
    server's certificate names no 127.0.0.1."""
    t = tls_files
    journal = str(tmp_path / "x.journal")
    state = str(tmp_path / "state")
    write_journal(tools, journal, [plain_entry("jtls", i) for i in range(3)])
    d = journal_daemon(daemon, pg, "--tls-cert", t.server, "--tls-key",
                       t.server_key, "--tls-ca", t.ca, "--tls-verify-client",
                       "require", opts="tls=on")
    cmd = upload_cmd(tools, journal, "https://127.0.0.1:%d" % d.port, state)
    r = subprocess.run(cmd + ["--key=%s" % t.client_key,
                              "--cert=%s" % t.client, "--trust=all"],
                       capture_output=True, timeout=LONG)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    got = pg.query("SELECT message, tls_subject FROM logs WHERE message "
                   "LIKE 'jtls-%%' ORDER BY message")
    assert [g[0] for g in got] == ["jtls-%06d" % i for i in range(3)]
    assert all("client-1" in g[1] for g in got)
    assert saved_cursor(state) is not None


def post_upload(d, body):
    """POSTs body chunked to /upload with curl; returns (status, text)."""
    curl = harness.need_tool(shutil.which("curl") or "/usr/bin/curl",
                             "curl", "curl")
    r = subprocess.run([curl, "-sS", "-o", "-", "-w", "\n%{http_code}",
                        "-H", "Content-Type: application/vnd.fdo.journal",
                        "-H", "Transfer-Encoding: chunked",
                        "--data-binary", "@-", d.url + "/upload"],
                       input=body, capture_output=True, timeout=TIMEOUT)
    out, _, code = r.stdout.decode(errors="replace").rpartition("\n")
    return int(code or 0), out


def test_hostile_binary_lengths(pg, daemon):
    """A binary length of 2^64 - 1 is refused at once (never allocated);
    one of 700 MiB (under systemd's limit) is counted down as its bytes
    come, and a body ending inside it is truncated-entry; the next request
    is served."""
    d = journal_daemon(daemon, pg)
    huge = b"BLOB\n" + struct.pack("<Q", 2**64 - 1) + b"x\n\n"
    status, text = post_upload(d, huge)
    assert status == 400 and "bad-binary-length" in text, (status, text)
    big = b"BLOB\n" + struct.pack("<Q", 700 << 20) + b"x" * 100000
    status, text = post_upload(d, big)
    assert status == 400 and "truncated-entry" in text, (status, text)
    assert harness.metric(d, "http_errors_total", reason="bad-body") == 2
    status, text = post_upload(d, export_entry([("MESSAGE", "jhost-ok")]))
    assert status == 200, (status, text)
    assert pg.scalar("SELECT count(*) FROM logs WHERE message = "
                     "'jhost-ok'") == 1


def test_oversized_entry_stored_cut(pg, daemon, tools, tmp_path):
    """An entry over max-line-bytes is stored cut, with logsink_cut, counted
    in lines_truncated_total and logged; the column fields after the big
    one survive."""
    journal = str(tmp_path / "x.journal")
    state = str(tmp_path / "state")
    write_journal(tools, journal, [
        export_entry([
            ("__REALTIME_TIMESTAMP", str(T0)), ("_BOOT_ID", BOOT_ID),
            ("__MONOTONIC_TIMESTAMP", "1000"),
            ("BIG", "x" * 40000), ("MESSAGE", "jcut-0 after the big one"),
            ("_HOSTNAME", "jhost")]),
        plain_entry("jcut", 1)])
    d = journal_daemon(daemon, pg, "--max-line-bytes", "16KiB")
    rc, err = upload(tools, journal, d.url, state)
    assert rc == 0, err
    got = pg.query("SELECT message, host, fields FROM logs "
                   "WHERE message LIKE 'jcut-%%' ORDER BY message")
    assert [g[0] for g in got] == ["jcut-0 after the big one",
                                   "jcut-000001"]
    assert got[0][1] == "jhost"
    f = got[0][2]
    assert int(f["logsink_cut"]) > 40000 - 16384
    assert f["BIG"] == "x" * len(f["BIG"]) and len(f["BIG"]) < 16384
    assert "logsink_cut" not in got[1][2]
    # Counted as a cut line, and logged.
    assert harness.metric(d, "lines_truncated_total") == 1
    assert "journal entry longer than max-line-bytes" in d.log()


def lock_copies(pg):
    """Holds SHARE on logs in a session of its own (after COPYs in flight
    commit, no other can) until the returned event is set."""
    import psycopg2
    locked, release = threading.Event(), threading.Event()

    def hold():
        conn = psycopg2.connect(pg.conninfo)
        try:
            cur = conn.cursor()
            cur.execute("LOCK TABLE logs IN SHARE MODE")
            locked.set()
            release.wait(LONG)
            conn.rollback()
        finally:
            conn.close()
    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert locked.wait(TIMEOUT), "LOCK TABLE logs"
    return release, t


def two_phase_journal(tools, tmp_path, tag, n1, n2):
    """A journal of n1 entries uploaded already (returns its path), and
    the function appending n2 more."""
    journal = str(tmp_path / "x.journal")
    write_journal(tools, journal, [plain_entry(tag, i) for i in range(n1)])
    return journal, lambda: write_journal(
        tools, journal, [plain_entry(tag, i) for i in range(n1, n1 + n2)])


def check_exactly_once_or_duplicate(pg, tag, n, n1):
    rows, distinct = counts(pg, tag)
    dup = rows - distinct
    report("%s: %d entries, %d rows, %d distinct cursors, %d duplicates"
           % (tag, n, rows, distinct, dup))
    assert distinct == n
    # Only what came after the saved cursor (entry n1 - 1, which
    # journal-upload 252 sends again) was sent again.
    before = pg.scalar("SELECT count(*) FROM logs WHERE message LIKE %s "
                       "AND message < %s",
                       (tag + "-%", "%s-%06d" % (tag, n1 - 1)))
    assert before == n1 - 1
    assert pg.scalar("SELECT count(DISTINCT message) FROM logs WHERE "
                     "message LIKE %s", (tag + "-%",)) == n
    return dup


def test_sigkill_mid_upload_resumes_from_state(pg, daemon, tools, tmp_path):
    n1, n2 = 2000, 50000
    tag = "jkill"
    state = str(tmp_path / "state")
    journal, append = two_phase_journal(tools, tmp_path, tag, n1, n2)
    d = journal_daemon(daemon, pg)
    rc, err = upload(tools, journal, d.url, state)
    assert rc == 0, err
    cursor1 = saved_cursor(state)
    assert cursor1 is not None and counts(pg, tag) == (n1, n1)
    append()
    up = subprocess.Popen(upload_cmd(tools, journal, d.url, state),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Part of the second upload is committed, then no more is.
        wait_for(lambda: counts(pg, tag)[0] > n1, LONG,
                 "the second upload's first commit")
        release, holder = lock_copies(pg)
        committed = second_rows(pg, tag, n1)
        d.kill()
        release.set()
        holder.join(TIMEOUT)
        _, err = up.communicate(timeout=LONG)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode != 0, "the upload ended before the kill"
    assert committed < n2
    # It failed: the cursor is still that of the first upload.
    assert saved_cursor(state) == cursor1
    d2 = journal_daemon(daemon, pg, port=d.port)
    rc, err = upload(tools, journal, d2.url, state)
    assert rc == 0, err
    dup = check_exactly_once_or_duplicate(pg, tag, n1 + n2, n1)
    report("SIGKILL after %d of %d entries of the second upload were "
           "committed" % (committed, n2))
    # The duplicates: what was stored of the failed upload, and the entry
    # at the saved cursor, which both runs sent again.
    assert dup <= committed + 2
    assert saved_cursor(state) != cursor1


def test_postgres_down_mid_upload_resumes(fresh_pg, daemon, tools,
                                          tmp_path):
    """PostgreSQL stops in the middle of an upload.  The queue (64 MiB)
    holds the rest of the body, so the body ends, and the answer, held for
    the commit, is 503 after http-answer-timeout: journal-upload fails
    without saving its cursor.  Once PostgreSQL is back the queue is
    stored, and a rerun from the saved cursor sends it all again: every
    entry stored once or counted as a duplicate."""
    pg = fresh_pg
    n1, n2 = 2000, 50000
    tag = "jpgdown"
    state = str(tmp_path / "state")
    journal, append = two_phase_journal(tools, tmp_path, tag, n1, n2)
    d = journal_daemon(daemon, pg, "--http-answer-timeout", "3s")
    rc, err = upload(tools, journal, d.url, state)
    assert rc == 0, err
    cursor1 = saved_cursor(state)
    append()
    up = subprocess.Popen(upload_cmd(tools, journal, d.url, state),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: counts(pg, tag)[0] > n1, LONG,
                 "the second upload's first commit")
        pg.stop("immediate")
        _, err = up.communicate(timeout=LONG)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    err = err.decode(errors="replace").strip()
    assert up.returncode != 0, "the upload ended before the outage"
    assert saved_cursor(state) == cursor1
    assert "503" in err, err
    assert journal_metric(d, 503) == 1
    pg.start()
    # What the queue held is stored once the database is back (the
    # upload was answered 503, but its entries were not thrown away).
    wait_for(lambda: harness.metric(d, "db_writable") > 0 and
             harness.metric(d, "queue_lines") == 0, LONG,
             "the database back and the queue empty")
    committed = second_rows(pg, tag, n1)
    rc, err = upload(tools, journal, d.url, state)
    assert rc == 0, err
    dup = check_exactly_once_or_duplicate(pg, tag, n1 + n2, n1)
    report("PostgreSQL stopped during the second upload; %d of its %d "
           "entries were stored before the rerun" % (committed, n2))
    # The duplicates: what was stored of the failed upload, and the entry
    # at the saved cursor, which both runs sent again.
    assert dup <= committed + 2
