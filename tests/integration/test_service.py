"""Running as a service: sd_notify protocol, socket activation, SIGHUP
reload, and the /metrics and /healthz endpoint.  All against a real
PostgreSQL; the notify socket is one the test makes itself."""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

import harness


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="logsink-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        # Reachable for a daemon that switched to another user, as
        # systemd's socket is.
        os.chmod(self.dir, 0o755)
        os.chmod(self.path, 0o777)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.extend(data.decode().split("\n"))

    def seen(self, prefix):
        with self.lock:
            return [m for m in self.messages if m.startswith(prefix)]

    def close(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def start_with_env(args, env_extra, workdir, name, port):
    env = dict(os.environ)
    env.pop("WATCHDOG_PID", None)
    env.update(env_extra)
    log_path = os.path.join(workdir, name + ".log")
    log = open(log_path, "ab")
    args = args + harness.root_user_args(args)
    proc = subprocess.Popen([harness.logsinkd_path()] + args, env=env,
                            stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    return proc, log_path


def test_notify_ready_status_watchdog_stopping(pg, tmp_path):
    pg.truncate()
    ns = NotifySocket()
    port = harness.free_port()
    proc, log_path = start_with_env(
        ["--db", pg.conninfo, "--listen", "127.0.0.1:%d" % port],
        {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"},
        str(tmp_path), "notify", port)
    try:
        harness.wait_for(lambda: ns.seen("READY=1"), 30, "READY=1")
        assert harness.can_connect("127.0.0.1", port), \
            "READY=1 came before the listener accepted connections"
        harness.wait_for(lambda: len(ns.seen("WATCHDOG=1")) >= 2, 30,
                         "two WATCHDOG=1 keep-alives")
        harness.send_lines(port, ["notify-1"], wait_close=True)
        harness.wait_for(lambda: pg.count() == 1, 30, "the line stored")
        proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: ns.seen("RELOADING=1"), 30, "RELOADING=1")
        harness.wait_for(lambda: len(ns.seen("READY=1")) >= 2, 30,
                         "READY=1 after the reload")
        harness.wait_for(lambda: any("1 received, 1 stored" in m
                                     for m in ns.seen("STATUS=")),
                         30, "STATUS= with live counts")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert ns.seen("STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ns.close()
    log = open(log_path, errors="replace").read()
    assert "systemd watchdog: keep-alive every 200 ms" in log


def test_ready_when_database_is_down(stopped_pg, tmp_path):
    """With PostgreSQL down, READY=1 still comes (after the first failed
    attempt): lines queue meanwhile, and systemd must not kill us."""
    ns = NotifySocket()
    port = harness.free_port()
    proc, _ = start_with_env(
        ["--db", stopped_pg.conninfo, "--listen", "127.0.0.1:%d" % port],
        {"NOTIFY_SOCKET": ns.path}, str(tmp_path), "notify-down", port)
    try:
        harness.wait_for(lambda: ns.seen("READY=1"), 30, "READY=1")
        harness.send_lines(port, ["down-1", "down-2"], wait_close=True)
        stopped_pg.start()
        harness.wait_for(lambda: stopped_pg.count() == 2, 90,
                         "lines stored once PostgreSQL is up")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ns.close()


def test_socket_activation(pg, tmp_path):
    """systemd-socket-activate passes a bound socket: the daemon uses it
    (and no listen setting), with the options of a listen entry that has
    the same port."""
    pg.truncate()
    port = harness.free_port()
    log_path = os.path.join(str(tmp_path), "activated.log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port,
             harness.logsinkd_path(), "--db", pg.conninfo,
             "--listen", "127.0.0.1:%d format=raw" % port]
            + harness.root_user_args([]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        # systemd-socket-activate starts the program on the first
        # connection, handing it the listening socket.
        harness.wait_for(lambda: harness.can_connect("127.0.0.1", port), 30,
                         "systemd-socket-activate to listen")
        harness.send_lines(port, ["<13>Nov 21 10:00:00 host app: raw"],
                           wait_close=True)
        harness.wait_for(lambda: pg.count() == 1, 30, "the line stored")
        rows = pg.query("select message, app from logs")
        # format=raw from the matching listen entry: no parsing.
        assert rows == [("<13>Nov 21 10:00:00 host app: raw", None)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = open(log_path).read()
    assert "listening on 127.0.0.1:%d (socket from systemd) framing=auto " \
        "format=raw" % port in log


def test_sighup_reload(pg, daemon, tmp_path):
    """SIGHUP applies run-time settings from the file, names the ones that
    need a restart, and keeps the running settings when the file is bad."""
    pg.truncate()
    # The daemon re-reads the file after switching users (as root it runs
    # as nobody): keep it where that user can read it.
    confdir = tempfile.mkdtemp(prefix="logsink-conf-")
    os.chmod(confdir, 0o755)
    conf = pathlib.Path(confdir) / "logsinkd.conf"
    conf.write_text("log-level = info\nbatch-lines = 5000\n")
    d = daemon("-c", str(conf), db=pg.conninfo)
    conf.write_text("log-level = debug\nbatch-lines = 7\n"
                    "queue-bytes = 128MiB\n")
    d.signal(signal.SIGHUP)
    harness.wait_for(lambda: "configuration reloaded" in d.log(), 30,
                     "the reload")
    log = d.log()
    assert "log-level=debug batch-lines=7" in log
    assert "apply only after a restart" in log
    harness.send_lines(d.port, ["reload-%d" % i for i in range(20)],
                       wait_close=True)
    harness.wait_for(lambda: pg.count() == 20, 30, "lines stored")
    # debug level is live: per-batch lines appear, batches of at most 7.
    harness.wait_for(lambda: "committed 7 lines" in d.log(), 30,
                     "debug output with batches of 7")
    conf.write_text("log-level = debug\nno-such-key = 1\n")
    d.signal(signal.SIGHUP)
    harness.wait_for(lambda: "configuration not reloaded" in d.log(), 30,
                     "the failed reload")
    assert "no-such-key" in d.log()
    assert d.alive()
    assert d.stop() == 0
    shutil.rmtree(confdir)


def test_metrics_and_healthz_under_load(fresh_pg, daemon):
    mport = harness.free_port()
    d = daemon("--metrics-listen", "127.0.0.1:%d" % mport,
               db=fresh_pg.conninfo)
    harness.wait_for(lambda: harness.http_get(mport, "/healthz")[0] == 200, 30,
                     "/healthz to report the database writable")
    streamers = [harness.Streamer(d.port, "m%d" % i) for i in range(4)]
    for s in streamers:
        s.start()
    scrapes = []
    harness.wait_for(
        lambda: scrapes.append(harness.scrape_metrics(mport))
        or scrapes[-1]["logsink_lines_committed_total"] > 2000,
        60, "commits visible in /metrics during the load")
    for s in streamers:
        s.stop()
    sent = sum(len(s.sent) for s in streamers)
    harness.wait_for(lambda: fresh_pg.count() == sent, 60, "all lines")
    m = harness.scrape_metrics(mport)
    assert m["logsink_lines_received_total"] == sent
    assert m["logsink_lines_committed_total"] == sent
    assert m["logsink_queue_lines"] == 0
    assert m["logsink_batch_lines_count"] == m["logsink_copy_batches_total"]
    assert m["logsink_batch_lines_sum"] == sent
    assert m['logsink_commit_seconds_bucket{le="+Inf"}'] == \
        m["logsink_copy_batches_total"]
    assert m['logsink_db_connections{state="IDLE"}'] == 2
    # The streamers, plus the harness's readiness probe.
    assert m["logsink_connections_accepted_total"] >= 4
    assert m["logsink_connections_open"] == 0
    # Counters only grow between scrapes.
    firsts = [s["logsink_lines_received_total"] for s in scrapes]
    assert firsts == sorted(firsts)
    # The database goes away: /healthz says so, errors are counted.
    fresh_pg.stop("fast")
    harness.wait_for(lambda: harness.http_get(mport, "/healthz")[0] == 503, 60,
                     "/healthz to report 503 with the database down")
    status, body = harness.http_get(mport, "/healthz")
    assert "no database connection" in body
    assert harness.http_get(mport, "/nope")[0] == 404
    fresh_pg.start()
    harness.wait_for(lambda: harness.http_get(mport, "/healthz")[0] == 200, 90,
                     "/healthz back to 200")
    m = harness.scrape_metrics(mport)
    assert m["logsink_db_reconnects_total"] >= 2
    assert d.stop() == 0
