"""SIGHUP reload, key by key.

One daemon (a plain and a tls=on listener, /metrics) runs from a config
file.  For every key the daemon lists in --help, the test writes the file
with that key changed, sends SIGHUP and checks the log: exactly that key
is named, with its old and new values, as applied or as needing a restart
(its running value kept).  For applied keys it then checks the effect
where one can be seen from outside (a refused connection, a closed idle
one, debug lines, a stats: line, smaller batches, a new certificate...);
for restart keys that the old value is still the one in force where that
shows (the old port still accepts, the new one does not...).  The file is
then put back and SIGHUP sent again: an applied key is reported again
(back to its old value), a restart key not at all ("nothing changed"),
which shows the running config kept its value.

The key list comes from the daemon: a key added later without a case
here fails test_every_key_has_a_case.
"""

import datetime
import os
import pathlib
import re
import shutil
import signal
import socket
import ssl
import tempfile

import psycopg2
import pytest

import harness
from harness import metric, metrics_text, wait_for
from test_tls import (CertFactory, OTHER_SUBJECT, s_client, server_subject,
                      tls_context, tls_files, wait_closed)  # noqa: F401 (tls_files is a fixture)

TIMEOUT = harness.DEFAULT_TIMEOUT
HELP_LINE = re.compile(r"^\s+--([a-z][a-z0-9-]*)\s.*\); "
                       r"(SIGHUP applies it|needs a restart)$", re.M)
KEY_LINE = re.compile(
    r"SIGHUP: ([a-z][a-z0-9-]*) (.*) -> (.*?)(?P<how> \(applied\)|: needs a "
    r"restart, running value kept|: not applied \((?P<why>[^)]*)\), running "
    r"value kept)$", re.M)
END_LINE = re.compile(r"SIGHUP: configuration (not )?reloaded.*$", re.M)


def help_classes():
    """{key: "applied" or "restart"} from logsinkd --help."""
    p = harness.run_logsinkd("--help")
    assert p.returncode == 0, p.output
    found = {k: ("applied" if how.startswith("SIGHUP") else "restart")
             for k, how in HELP_LINE.findall(p.stdout)}
    assert "listen" in found and "idle-timeout" in found, p.stdout
    return found


# --------------------------------------------------------------------------
# the daemon, its config file and its log


class Reloader:
    """The running daemon d, its file and what each reload logged."""

    def __init__(self, d, conf, base, pg, t, files):
        self.d, self.conf, self.base = d, conf, base
        self.pg, self.t, self.files = pg, t, files
        self.mark = 0  # log offset of the last reload

    def write(self, settings):
        self.conf.write_text("".join("%s = %s\n" % kv for kv in settings))

    def hup(self, settings):
        """Writes settings, sends SIGHUP; the log lines of that reload."""
        start = len(self.d.log())
        self.write(settings)
        self.d.signal(signal.SIGHUP)
        wait_for(lambda: END_LINE.search(self.d.log(), start), TIMEOUT,
                 "the reload's last log line")
        text = self.d.log()
        end = END_LINE.search(text, start).end()
        self.mark = start
        return text[start:end]

    def since_reload(self):
        return self.d.log()[self.mark:]

    def metric(self, name, **labels):
        return metric(self.d, name, **labels)

    def stored(self, like):
        return self.pg.scalar("select count(*) from public.logs where "
                              "message like %s", (like,))

    def send_and_wait(self, tag, lines, port=None):
        harness.send_lines(port or self.d.port, lines, wait_close=True)
        wait_for(lambda: self.stored(tag + "%") == len(lines), TIMEOUT,
                 "%d %s lines stored" % (len(lines), tag),
                 ignore=(psycopg2.Error,))

    def no_connections(self):
        wait_for(lambda: self.metric("connections_open") == 0, TIMEOUT,
                 "no client connection open")


def with_key(base, key, values):
    """base with every key entry replaced by values (a list)."""
    out, done = [], False
    for k, v in base:
        if k == key:
            if not done:
                out += [(key, x) for x in values]
                done = True
            continue
        out.append((k, v))
    if not done:
        out += [(key, x) for x in values]
    return out


def key_lines(text):
    """[(key, old, new, how, why)] of one reload's log text."""
    out = []
    for m in KEY_LINE.finditer(text):
        how = m.group("how")
        how = ("applied" if how == " (applied)" else
               "restart" if "needs a restart" in how else "kept")
        out.append((m.group(1), m.group(2), m.group(3), how,
                    m.group("why")))
    return out


# --------------------------------------------------------------------------
# effects: each gets the Reloader after the reload that changed its key


def refused_second(r, port=None):
    """One connection stays; a second one is refused and closed."""
    r.no_connections()
    before = r.metric("connections_refused_total")
    first = harness.connect(port or r.d.port)
    try:
        wait_for(lambda: r.metric("connections_open") == 1, TIMEOUT,
                 "the first connection accepted")
        with harness.connect(port or r.d.port) as second:
            harness.wait_peer_close(second)
        assert r.metric("connections_refused_total") == before + 1
        first.sendall(b"refused-second-still-served\n")
    finally:
        first.close()
    wait_for(lambda: r.stored("refused-second-still-served") == 1, TIMEOUT,
             "the first connection's line")
    r.pg.query("delete from public.logs where message like 'refused-%%'")


def check_log_level(r):
    r.send_and_wait("log-level-", ["log-level-1"])
    wait_for(lambda: " debug: " in r.since_reload(), TIMEOUT,
             "debug lines after log-level = debug")


def batches_with(r, tag, lines, at_least):
    before = r.metric("copy_batches_total")
    r.send_and_wait(tag, lines)
    got = r.metric("copy_batches_total") - before
    assert got >= at_least, "%d lines in %d batches" % (len(lines), got)


def check_batch_lines(r):
    # Sent at once, 10 lines take 1 batch at batch-lines 5000, here >= 4.
    batches_with(r, "batch-lines-", ["batch-lines-%d" % i
                                     for i in range(10)], 4)


def check_batch_bytes(r):
    # 20 rows of over 1000 bytes, batches of at most 4096 bytes.
    batches_with(r, "batch-bytes-", ["batch-bytes-%02d %s" % (i, "x" * 1000)
                                     for i in range(20)], 4)


def check_lines_stored(r):
    r.send_and_wait("stored-", ["stored-%d" % i for i in range(5)])
    r.pg.query("delete from public.logs where message like 'stored-%%'")


def check_rate_limited(r):
    """5 lines a second (burst 5): 12 lines in one go are all stored, the
    sender paused for the rest."""
    before = r.metric("clients_paused_total", reason="rate-limit")
    r.send_and_wait("rate-limited-",
                    ["rate-limited-%d" % i for i in range(12)])
    assert r.metric("clients_paused_total", reason="rate-limit") > before
    r.pg.query("delete from public.logs where message like 'rate-limited-%%'")


def check_framing_detect(r):
    """A <PRI> sender's first line, undecided (no next "<" yet) and the
    connection left open, is stored once framing-detect-timeout passes."""
    with harness.connect(r.d.port) as s:
        s.sendall(b"<13>framing-detect-held\n")
        wait_for(lambda: r.stored("framing-detect-held") == 1, TIMEOUT,
                 "the held line stored while the connection is open")
    r.pg.query("delete from public.logs where message like "
               "'%%framing-detect-held%%'")


def check_stats(r):
    wait_for(lambda: " stats: " in r.since_reload(), TIMEOUT,
             "a stats: line after stats-interval = 1s")


def check_idle_timeout(r):
    before = r.metric("connections_timed_out_total")
    with harness.connect(r.d.port) as s:
        harness.wait_peer_close(s)
    assert r.metric("connections_timed_out_total") == before + 1
    assert "closing: idle-timeout" in r.since_reload()


def check_partial_line_timeout(r):
    with harness.connect(r.d.port) as s:
        s.sendall(b"partial-line-unfinished")
        harness.wait_peer_close(s)
    assert "closing: partial-line-timeout" in r.since_reload()
    wait_for(lambda: r.stored("partial-line-unfinished") == 1, TIMEOUT,
             "the unfinished line stored")


def utc_today(pg):
    return pg.scalar("select (now() at time zone 'UTC')::date")


def part_exists(pg, day):
    return pg.scalar("select to_regclass(%s) is not null",
                     ("public.logs_p%s" % day.strftime("%Y%m%d"),))


def check_partitions_ahead(r):
    day = utc_today(r.pg) + datetime.timedelta(6)
    wait_for(lambda: part_exists(r.pg, day), TIMEOUT,
             "the partition of today + 6 days")


OLD_DAYS = 10


def prepare_retention(r):
    """A partition OLD_DAYS days old (a row of then, made a partition by
    the upkeep function), which retention-days = 5 drops."""
    r.pg.query("insert into public.logs (received_at, message) values "
               "(now() - interval '%d days', 'retention-old')" % OLD_DAYS)
    wait_for(lambda: not r.pg.scalar(
        "select public.logs_maintain(3, 0)").startswith("skipped:"),
        TIMEOUT, "logs_maintain() to run")
    day = utc_today(r.pg) - datetime.timedelta(OLD_DAYS)
    assert part_exists(r.pg, day)


def check_retention(r):
    day = utc_today(r.pg) - datetime.timedelta(OLD_DAYS)
    wait_for(lambda: not part_exists(r.pg, day), TIMEOUT,
             "the %d-day-old partition dropped" % OLD_DAYS)
    assert r.stored("retention-old") == 0


def check_tls_cert(r):
    assert "CN = server-3" in server_subject(r.d.tls_port, r.t)


def check_tls_works(r, tag="tls-line"):
    s_client(r.d.tls_port, r.t, (tag + "\n").encode())
    wait_for(lambda: r.stored(tag) == 1, TIMEOUT, "the TLS line")
    r.pg.query("delete from public.logs where message = %s", (tag,))


def check_tls_ca(r):
    # A certificate of the other CA now verifies (it would not before).
    s_client(r.d.tls_port, r.t, b"tls-ca-other\n", r.t.other, r.t.other_key)
    wait_for(lambda: r.pg.query("select tls_subject from public.logs where "
                                "message = 'tls-ca-other'")
             == [(OTHER_SUBJECT,)], TIMEOUT, "the line with its subject")


def handshake_failures(r):
    return sum(float(line.split()[-1])
               for line in metrics_text(r.d).splitlines()
               if line.startswith("logsink_tls_handshake_failures_total{"))


def check_verify_require(r):
    before = handshake_failures(r)
    rc, _ = s_client(r.d.tls_port, r.t, b"tls-no-cert\n", check=False)
    wait_for(lambda: handshake_failures(r) > before, TIMEOUT,
             "the client without a certificate refused")
    assert r.metric("tls_handshake_failures_total",
                    reason="no_certificate") >= 1
    assert r.stored("tls-no-cert") == 0


def check_min_version(r):
    ctx = tls_context(r.t)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", r.d.tls_port),
                                   timeout=TIMEOUT)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        ctx.wrap_socket(raw, server_hostname="localhost")
    raw.close()
    check_tls_works(r, "tls-13-line")


def check_handshake_timeout(r):
    # (The failure's log line is rate-limited: the counter tells.)
    before = r.metric("tls_handshake_failures_total", reason="timeout")
    with harness.connect(r.d.tls_port) as s:
        wait_closed(s, "the silent TLS connection")
    assert r.metric("tls_handshake_failures_total",
                    reason="timeout") == before + 1


def check_max_handshakes(r):
    r.no_connections()
    before = r.metric("connections_refused_total")
    with harness.connect(r.d.tls_port):  # silent: stays in its handshake
        wait_for(lambda: r.metric("connections_open") == 1, TIMEOUT,
                 "the first TLS connection accepted")
        with harness.connect(r.d.tls_port) as second:
            wait_closed(second, "the second TLS connection")
        assert r.metric("connections_refused_total") == before + 1
    r.no_connections()


# restart keys: the running value is still in force


def check_listen_kept(r):
    assert harness.can_connect("127.0.0.1", r.d.port)
    assert not harness.can_connect("127.0.0.1", r.files.new_port)


def check_db_secret(r):
    assert "Rel0ad-s3cret" not in r.d.log()
    check_lines_stored(r)


def check_table_kept(r):
    r.send_and_wait("table-kept-", ["table-kept-1"])  # still public.logs


def check_max_line_kept(r):
    line = "max-line-kept-" + "y" * 3000
    r.send_and_wait("max-line-kept-", [line])
    assert r.pg.scalar("select length(message) from public.logs where "
                       "message like 'max-line-kept-%%'") == len(line)


def check_queue_bytes_kept(r):
    assert r.metric("queue_limit_bytes") == 64 * 1024 * 1024


def check_db_connections_kept(r):
    total = sum(float(line.split()[-1])
                for line in metrics_text(r.d).splitlines()
                if line.startswith("logsink_db_connections{"))
    assert total == 2


def check_metrics_listen_kept(r):
    assert harness.can_connect("127.0.0.1", r.d.mport)
    assert not harness.can_connect("127.0.0.1", r.files.new_mport)


def check_spool_dir_kept(r):
    check_lines_stored(r)
    assert not os.path.exists(r.files.spool_dir)


class Case:
    def __init__(self, values, expect, check=None, prepare=None,
                 settings=None, shown=None):
        self.values = values if isinstance(values, list) else [values]
        self.expect = expect  # "applied", "restart" or "kept"
        self.check, self.prepare = check, prepare
        self.settings = settings  # a function of base: the whole file
        self.shown = shown  # (old, new) as the log shows them


def cases(r):
    """key -> Case; values that need the daemon's ports or files use r."""
    f, t = r.files, r.t
    return {
        "listen": Case(None, "restart", check_listen_kept,
                       settings=lambda b: with_key(b, "listen", [
                           "127.0.0.1:%d" % f.new_port,
                           "127.0.0.1:%d tls=on" % r.d.tls_port])),
        "db": Case(r.pg.conninfo + " password=Rel0ad-s3cret", "restart",
                   check_db_secret,
                   shown=("(set, not shown)", "(set, not shown)")),
        "db-file": Case(None, "restart", check_lines_stored,
                        settings=lambda b: with_key(
                            [kv for kv in b if kv[0] != "db"], "db-file",
                            [f.db_file]),
                        shown=("unset", f.db_file)),
        "table": Case("public.logs_other", "restart", check_table_kept),
        "log-level": Case("debug", "applied", check_log_level,
                          shown=("info", "debug")),
        "max-line-bytes": Case("1KiB", "restart", check_max_line_kept,
                               shown=("65536", "1024")),
        "queue-bytes": Case("128MiB", "restart", check_queue_bytes_kept),
        "queue-resume-percent": Case("50", "restart"),
        "db-connections": Case("4", "restart", check_db_connections_kept,
                               shown=("2", "4")),
        "batch-lines": Case("3", "applied", check_batch_lines),
        "batch-bytes": Case("4096", "applied", check_batch_bytes),
        "flush-interval-ms": Case("20", "applied", check_lines_stored,
                                  shown=("100", "20")),
        "shutdown-timeout": Case("7s", "applied", None,
                                 shown=("30000ms", "7000ms")),
        "reconnect-min-ms": Case("250", "applied", check_lines_stored),
        "reconnect-max-ms": Case("5000", "applied", check_lines_stored),
        "stats-interval": Case("1s", "applied", check_stats),
        "db-timeout": Case("45s", "applied", check_lines_stored),
        "maintenance-timeout": Case("2h", "applied", check_lines_stored),
        "metrics-listen": Case("127.0.0.1:%d" % f.new_mport, "restart",
                               check_metrics_listen_kept),
        "partitions-ahead": Case("6", "applied", check_partitions_ahead),
        "retention-days": Case("5", "applied", check_retention,
                               prepare=prepare_retention),
        "max-connections": Case("1", "applied", refused_second),
        "max-connections-per-ip": Case("1", "applied", refused_second),
        "idle-timeout": Case("1s", "applied", check_idle_timeout,
                             shown=("3600000ms", "1000ms")),
        "partial-line-timeout": Case("1s", "applied",
                                     check_partial_line_timeout),
        "framing-detect-timeout": Case("200ms", "applied",
                                       check_framing_detect,
                                       shown=("500ms", "200ms")),
        "user": Case("daemon" if os.geteuid() == 0 else "nobody",
                     "restart"),
        "spool-dir": Case(f.spool_dir, "restart", check_spool_dir_kept),
        "spool-max-bytes": Case("2GiB", "restart"),
        "spool-segment-bytes": Case("1MiB", "restart"),
        "spool-sync-interval-ms": Case("50", "restart"),
        "tls-cert": Case(f.server3, "applied", check_tls_cert),
        "tls-key": Case(f.server_key_copy, "applied", check_tls_works),
        "tls-ca": Case(t.other_ca, "applied", check_tls_ca),
        "tls-verify-client": Case("require", "applied",
                                  check_verify_require),
        "tls-min-version": Case("1.3", "applied", check_min_version),
        "tls-handshake-timeout": Case("1s", "applied",
                                      check_handshake_timeout),
        "tls-max-handshakes": Case("1", "applied", check_max_handshakes),
        # applied to proxy= listeners: test_proxy.py test_reload_applies
        "proxy-header-timeout": Case("1s", "applied", None,
                                     shown=("10000ms", "1000ms")),
        "proxy-max-header-bytes": Case("2KiB", "applied", None,
                                       shown=("1024", "2048")),
        # read by new proto=forward connections: test_forward.py
        "forward-max-message-bytes": Case("16MiB", "applied", None,
                                          shown=("8388608", "16777216")),
        "forward-max-entries": Case("5000", "applied", None,
                                    shown=("1000000", "5000")),
        "udp-rcvbuf": Case("1MiB", "restart", check_lines_stored,
                           shown=("4194304", "1048576")),
        # applied to proto=http listeners: test_http.py
        # test_reload_applies_http_limits
        "http-max-header-bytes": Case("32KiB", "applied", None,
                                      shown=("16384", "32768")),
        "http-max-headers": Case("50", "applied", None,
                                 shown=("100", "50")),
        "http-max-depth": Case("16", "applied", None, shown=("64", "16")),
        "http-max-body-bytes": Case("1MiB", "applied", None,
                                    shown=("16777216", "1048576")),
        "http-header-timeout": Case("5s", "applied", None,
                                    shown=("10000ms", "5000ms")),
        "http-body-timeout": Case("20s", "applied", None,
                                  shown=("30000ms", "20000ms")),
        "http-keepalive-timeout": Case("2m", "applied", None,
                                       shown=("60000ms", "120000ms")),
        "http-answer-timeout": Case("90s", "applied", None,
                                    shown=("60000ms", "90000ms")),
        # fairness itself: test_fairness.py
        "fair-share-percent": Case("0", "applied", check_lines_stored),
        "rate-limit-lines-per-sec": Case("5", "applied", check_rate_limited),
        "rate-limit-burst": Case("3", "applied", check_lines_stored),
        "rate-limit-mode": Case("drop", "applied", check_lines_stored),
        "rate-limit-sources": Case("16", "restart", check_lines_stored),
    }


# --------------------------------------------------------------------------
# fixtures


class Files:
    pass


@pytest.fixture
def reload_files(tls_files):
    """A server certificate for the key of tls_files' server (CN
    server-3), a copy of that key, a db-file, free ports; in a directory
    the daemon (nobody, when started as root) can read."""
    t = tls_files
    d = tempfile.mkdtemp(prefix="logsink-reload-", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        f = Files()
        f.dir = d
        ca = CertFactory(t.dir)
        csr = os.path.join(d, "server3.csr")
        f.server3 = os.path.join(d, "server3.pem")
        ca.run("req", "-new", "-key", t.server_key, "-subj",
               "/O=logsink/CN=server-3", "-out", csr,
               "-addext", "basicConstraints=CA:FALSE",
               "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
               "-addext", "extendedKeyUsage=serverAuth")
        ca.run("ca", "-batch", "-notext", "-preserveDN", "-config",
               os.path.join(t.dir, "ca-db", "ca.cnf"), "-cert", t.ca,
               "-keyfile", ca.path("ca.key"), "-in", csr, "-out", f.server3,
               "-days", "30")
        f.server_key_copy = os.path.join(d, "server-copy.key")
        shutil.copy(t.server_key, f.server_key_copy)
        f.db_file = os.path.join(d, "conninfo")
        f.spool_dir = os.path.join(d, "spool-never-made")
        for p in (f.server3, f.server_key_copy):
            os.chmod(p, 0o644)
        yield f
    finally:
        shutil.rmtree(d, ignore_errors=True)


def distinct_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(harness.free_port())
    return list(ports)


@pytest.fixture
def reloader(pg, daemon, tls_files, reload_files, monkeypatch):
    """The daemon, run from a file that holds every setting the test
    changes (user too: as root it is in the file, not on the command
    line, or the command line would override the file)."""
    monkeypatch.setattr(harness, "root_user_args", lambda args: [])
    pg.truncate()
    t, f = tls_files, reload_files
    port, tls_port, mport, f.new_port, f.new_mport = distinct_ports(5)
    with open(f.db_file, "w") as fp:
        fp.write(pg.conninfo + "\n")
    os.chmod(f.db_file, 0o644)
    base = [("listen", "127.0.0.1:%d" % port),
            ("listen", "127.0.0.1:%d tls=on" % tls_port),
            ("db", pg.conninfo),
            ("metrics-listen", "127.0.0.1:%d" % mport),
            ("stats-interval", "0"),
            ("tls-cert", t.server), ("tls-key", t.server_key),
            ("tls-ca", t.ca), ("tls-verify-client", "optional"),
            ("tls-handshake-timeout", "1h")]
    if os.geteuid() == 0:
        base.append(("user", "nobody"))
    conf = pathlib.Path(f.dir) / "logsinkd.conf"
    conf.write_text("".join("%s = %s\n" % kv for kv in base))
    os.chmod(str(conf), 0o644)
    d = daemon("-c", str(conf), listen=False,
               ready_ports=[("127.0.0.1", port), ("127.0.0.1", mport)])
    d.port, d.tls_port, d.mport = port, tls_port, mport
    return Reloader(d, conf, base, pg, t, f)


# --------------------------------------------------------------------------
# tests


def test_every_key_has_a_case(reloader):
    """The daemon's keys are the test's, each in the class the test
    expects (a new key needs a case here)."""
    classes = help_classes()
    want = {k: c.expect for k, c in cases(reloader).items()}
    assert sorted(classes) == sorted(want), (
        "keys without a case: %s; cases without a key: %s"
        % (sorted(set(classes) - set(want)),
           sorted(set(want) - set(classes))))
    assert classes == want


def check_one_reload(text, key, case, direction):
    lines = key_lines(text)
    assert [ln[0] for ln in lines] == [key], (direction, text)
    _, old, new, how, why = lines[0]
    assert how == case.expect, (direction, text)
    assert old != new or key == "db", text
    if case.shown is not None:
        want = case.shown if direction == "change" else case.shown[::-1]
        assert (old, new) == want, text
    assert "SIGHUP: configuration reloaded;" in text, text
    if how == "applied":
        assert re.search(r"applied:.* %s=" % re.escape(key), text), text
    else:
        assert re.search(r"apply only after a restart:.* %s\b"
                         % re.escape(key), text), text


def test_sighup_every_key(reloader):
    r = reloader
    # Nothing changed; then a file that does not load keeps everything.
    assert "SIGHUP: configuration reloaded, nothing changed" in \
        r.hup(r.base)
    text = r.hup(r.base + [("idle-timeout", "1s"), ("no-such-key", "1")])
    assert "configuration not reloaded, keeping the running one" in text
    assert "no-such-key" in text and not key_lines(text)
    assert "nothing changed" in r.hup(r.base)

    all_cases = cases(r)
    # shutdown-timeout last: its effect shows at the stop.
    order = sorted(all_cases, key=lambda k: k == "shutdown-timeout")
    for key in order:
        case = all_cases[key]
        if case.prepare:
            case.prepare(r)
        settings = (case.settings(r.base) if case.settings
                    else with_key(r.base, key, case.values))
        text = r.hup(settings)
        check_one_reload(text, key, case, "change")
        if case.check:
            case.check(r)
        if key == "shutdown-timeout":
            break
        text = r.hup(r.base)
        if case.expect == "restart":
            # The running value never changed: putting the file back
            # changes nothing.
            assert "SIGHUP: configuration reloaded, nothing changed" \
                in text, (key, text)
        else:
            check_one_reload(text, key, case, "back")
    assert r.d.stop() == 0
    assert "(shutdown-timeout 7000 ms)" in r.d.log()


def test_tls_keys_kept_when_the_files_do_not_load(reloader):
    """A tls-key that does not match the certificate: the TLS reload
    fails, the tls-* keys keep their running values (so putting the file
    back changes nothing) and the running certificate stays."""
    r = reloader
    text = r.hup(with_key(r.base, "tls-key", [r.t.client_key]))
    assert "SIGHUP: TLS files not reloaded" in text
    lines = key_lines(text)
    assert [(ln[0], ln[3], ln[4]) for ln in lines] == [
        ("tls-key", "kept", "the TLS files did not load")], text
    assert "not applied: tls-key" in text
    assert "CN = server-1" in server_subject(r.d.tls_port, r.t)
    check_tls_works(r)
    assert "nothing changed" in r.hup(r.base)
