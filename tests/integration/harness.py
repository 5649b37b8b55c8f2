"""Helpers for the logsinkd integration tests.

Everything here drives real processes: a throwaway PostgreSQL cluster
(initdb + pg_ctl), the logsinkd binary under test, and plain TCP clients.
Synchronisation is done by polling observable state (wait_for), never by
sleeping for a fixed time.
"""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import psycopg2
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Bounds, not speed expectations: generous so a loaded 2-core CI machine
# does not produce false failures.
DEFAULT_TIMEOUT = 60.0
PG_TIMEOUT = 120
LOG_TAIL_CHARS = 20000


# --------------------------------------------------------------------------
# generic helpers


def wait_for(predicate, timeout=DEFAULT_TIMEOUT, what="condition",
             ignore=()):
    """Polls predicate() until it returns a truthy value, which is returned.

    Back-off grows from 10 ms to 500 ms.  Exceptions listed in ignore are
    treated as "not yet" (e.g. the database being briefly unreachable).
    On timeout raises AssertionError naming what and the last value seen.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    last = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except ignore as e:  # noqa: PERF203 - polling loop
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                "timed out after %.0f s waiting for %s (last value: %s)"
                % (timeout, what, _short(repr(last))))
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _short(s, n=500):
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


def tail_text(path, limit=LOG_TAIL_CHARS):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    text = data.decode("utf-8", "replace")
    if size > limit:
        text = "...(%d bytes before)...\n" % (size - limit) + text
    return text


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (bind to port 0 and release it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def need(ok, msg):
    """Nothing if ok; else fail in CI (CI=true: everything a test needs is
    required there), skip elsewhere, saying msg."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(msg + " (CI=true: required)", pytrace=False)
    pytest.skip(msg)


def need_tool(path, what, package):
    """path if it is an executable; else need() fails or skips, naming
    the Debian package."""
    ok = bool(path) and os.access(path, os.X_OK)
    need(ok, "%s not found: install the Debian package %s" % (what, package))
    return path


def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def can_connect(host, port, timeout=1.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
        return True
    except OSError:
        return False


def logsinkd_path():
    path = os.environ.get("LOGSINKD")
    if not path:
        build = os.environ.get("LOGSINK_BUILD",
                               os.path.join(REPO_ROOT, "build"))
        path = os.path.join(build, "logsinkd")
    return path


def repo_version():
    """The project version declared in the top-level CMakeLists.txt."""
    with open(os.path.join(REPO_ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*logsink\s+VERSION\s+([0-9][0-9.]*)",
                      f.read())
    return m.group(1) if m else None


def root_user_args(args):
    """logsinkd refuses to run as root: as root (CI), tests make it switch
    to 'nobody' after binding, unless they chose a user themselves."""
    if os.geteuid() == 0 and "--user" not in args:
        return ["--user", "nobody"]
    return []


def run_logsinkd(*args, timeout=DEFAULT_TIMEOUT):
    """Runs logsinkd to completion (for --help, --init-db, ...).

    Returns CompletedProcess with stdout/stderr as text (invalid UTF-8
    replaced) and .output = stdout + stderr.
    """
    p = subprocess.run([logsinkd_path()] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    p.stdout = p.stdout.decode("utf-8", "replace")
    p.stderr = p.stderr.decode("utf-8", "replace")
    p.output = p.stdout + p.stderr
    return p


def init_db(conninfo):
    p = run_logsinkd("--db", conninfo, "--init-db", timeout=PG_TIMEOUT)
    assert p.returncode == 0, (
        "logsinkd --init-db exited %d\n%s" % (p.returncode, p.output))
    return p


# --------------------------------------------------------------------------
# expected text after the daemon's sanitising


def _utf8_seq_len(data, i):
    """Length of the valid UTF-8 sequence starting at data[i], or 0.

    Follows Unicode table 3-7 (well-formed byte sequences): no overlongs,
    no surrogates, nothing above U+10FFFF, no truncated sequences.
    """
    b0 = data[i]
    n = len(data)

    def cont(j, lo=0x80, hi=0xBF):
        return j < n and lo <= data[j] <= hi

    if b0 < 0x80:
        return 1
    if 0xC2 <= b0 <= 0xDF:
        return 2 if cont(i + 1) else 0
    if 0xE0 <= b0 <= 0xEF:
        lo, hi = 0x80, 0xBF
        if b0 == 0xE0:
            lo = 0xA0
        elif b0 == 0xED:
            hi = 0x9F
        return 3 if cont(i + 1, lo, hi) and cont(i + 2) else 0
    if 0xF0 <= b0 <= 0xF4:
        lo, hi = 0x80, 0xBF
        if b0 == 0xF0:
            lo = 0x90
        elif b0 == 0xF4:
            hi = 0x8F
        return (4 if cont(i + 1, lo, hi) and cont(i + 2) and cont(i + 3)
                else 0)
    return 0


def sanitize(line):
    """Expected stored text for one line (bytes, without its LF).

    Per the daemon contract: a single trailing CR is stripped, NUL and every
    byte that is not part of a well-formed UTF-8 sequence become one U+FFFD
    each, everything else is kept byte-exact.  (This differs from
    bytes.decode('utf-8', 'replace'), which replaces a truncated sequence
    with a single U+FFFD.)
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    out = []
    i = 0
    while i < len(line):
        if line[i] == 0:
            out.append("\ufffd")
            i += 1
            continue
        k = _utf8_seq_len(line, i)
        if k == 0:
            out.append("\ufffd")
            i += 1
        else:
            out.append(line[i:i + k].decode("utf-8"))
            i += k
    return "".join(out)


# --------------------------------------------------------------------------
# PostgreSQL


def pg_bindir():
    env = os.environ.get("PG_BINDIR")
    if env:
        return env
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        ver = os.path.basename(os.path.dirname(d))
        try:
            key = tuple(int(x) for x in ver.split("."))
        except ValueError:
            continue
        if os.path.exists(os.path.join(d, "pg_ctl")):
            found.append((key, d))
    if not found:
        raise RuntimeError("no PostgreSQL found under /usr/lib/postgresql "
                           "(install postgresql) and PG_BINDIR not set")
    return max(found)[1]


class PgCluster:
    """A throwaway PostgreSQL cluster in a fresh temporary directory.

    netns: run initdb/pg_ctl (so the postmaster) with `ip netns exec
    NETNS`; host: the address it listens on and conninfo names (with a
    netns: an address inside it, e.g. the namespace's end of a veth pair).
    """

    def __init__(self, netns=None, host="127.0.0.1"):
        self.netns, self.host = netns, host
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix="logsink-pg-", dir="/tmp")
        self.datadir = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.cmdlog = os.path.join(self.dir, "pg_ctl.out")
        self.as_root = os.geteuid() == 0
        self.port = None
        self.running = False
        if self.as_root:
            # PostgreSQL refuses to run as root.
            shutil.chown(self.dir, user="postgres", group="postgres")

    # -- process plumbing

    def _cmd(self, prog, *args):
        cmd = [os.path.join(self.bindir, prog)] + list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        return cmd

    def _run(self, prog, *args, check=True, timeout=PG_TIMEOUT):
        # Output goes to a file, not a pipe: the postmaster started by
        # pg_ctl must not hold our pipe open.
        with open(self.cmdlog, "ab") as out:
            out.write(("$ %s %s\n" % (prog, " ".join(args))).encode())
            out.flush()
            p = subprocess.run(self._cmd(prog, *args), cwd=self.dir,
                               stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("%s %s failed (exit %d)\n--- pg_ctl output\n%s"
                               "\n--- server log\n%s"
                               % (prog, " ".join(args), p.returncode,
                                  tail_text(self.cmdlog, 4000),
                                  tail_text(self.logfile, 4000)))
        return p.returncode

    def _write_port(self):
        self.port = free_port()
        with open(os.path.join(self.datadir, "postgresql.auto.conf"),
                  "a") as f:
            f.write("port = %d\n" % self.port)

    # -- public API

    def init(self):
        self._run("initdb", "-D", self.datadir, "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# logsink integration tests\n"
                    "listen_addresses = '%s'\n"
                    "unix_socket_directories = '%s'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "max_connections = 50\n"
                    "shared_buffers = 32MB\n"
                    "logging_collector = off\n"
                    "log_min_messages = warning\n" % (self.host, self.dir))
        self._write_port()
        return self

    def start(self):
        for attempt in range(3):
            rc = self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile,
                           "-w", "-t", str(PG_TIMEOUT), "start", check=False)
            if rc == 0:
                self.running = True
                return self
            # The random port may have been taken in the meantime.
            if "Address already in use" in tail_text(self.logfile, 4000) \
                    and attempt < 2:
                self._write_port()
                continue
            break
        raise RuntimeError("pg_ctl start failed\n--- pg_ctl output\n%s\n"
                           "--- server log\n%s"
                           % (tail_text(self.cmdlog, 4000),
                              tail_text(self.logfile, 4000)))

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", self.datadir, "-m", mode, "-w",
                  "-t", str(PG_TIMEOUT), "stop")
        self.running = False

    def restart(self, mode="fast"):
        self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile,
                  "-m", mode, "-w", "-t", str(PG_TIMEOUT), "restart")
        self.running = True

    def destroy(self):
        if self.running or os.path.exists(
                os.path.join(self.datadir, "postmaster.pid")):
            self._run("pg_ctl", "-D", self.datadir, "-m", "immediate", "-w",
                      "stop", check=False)
            self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def conninfo(self):
        return ("host=%s port=%d dbname=postgres user=postgres"
                % (self.host, self.port))

    def query(self, sql, params=None):
        """Runs sql on a new short connection (autocommit).

        Returns the rows for statements that produce rows, else None.
        """
        conn = psycopg2.connect(self.conninfo, connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                if cur.description is not None:
                    return cur.fetchall()
                return None
        finally:
            conn.close()

    def scalar(self, sql, params=None):
        return self.query(sql, params)[0][0]

    def count(self, table="public.logs"):
        return self.scalar("select count(*) from %s" % table)

    def messages(self, table="public.logs"):
        return [r[0] for r in self.query("select message from %s" % table)]

    def truncate(self, table="public.logs"):
        self.query("truncate %s" % table)

    def logsink_artifacts(self):
        return [("postgres log (%s)" % self.logfile,
                 tail_text(self.logfile, 8000)),
                ("pg_ctl output", tail_text(self.cmdlog, 4000))]


# --------------------------------------------------------------------------
# the daemon under test


class Daemon:
    """One logsinkd process started by the tests."""

    def __init__(self, args, workdir, name, ready_ports):
        self.args = [str(a) for a in args]
        self.log_path = os.path.join(workdir, name + ".log")
        self.workdir = workdir
        self.ready_ports = ready_ports  # [(host, port)] to poll
        self.proc = None
        self.returncode = None

    def start(self, timeout=DEFAULT_TIMEOUT):
        cmd = [logsinkd_path()] + self.args + root_user_args(self.args)
        with open(self.log_path, "ab") as log:
            # Our record of the command line, with any password masked
            # (the tests check that the daemon never prints one).
            log.write(("$ %s\n" % re.sub(r"password=\S+", "password=***",
                                          " ".join(cmd))).encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, cwd=self.workdir,
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        for host, port in self.ready_ports:
            def ready(host=host, port=port):
                if self.proc.poll() is not None:
                    raise AssertionError(
                        "logsinkd exited early with status %s\n%s"
                        % (self.proc.returncode, self.log()))
                return can_connect(host, port)
            wait_for(ready, timeout,
                     "logsinkd to accept connections on %s port %d"
                     % (host, port))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return tail_text(self.log_path, 1 << 30)

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout=DEFAULT_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("logsinkd (pid %d) did not exit within %.0f s"
                                 % (self.proc.pid, timeout))
        return self.returncode

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """SIGTERM and wait for exit; returns the exit status (negative:
        killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


# --------------------------------------------------------------------------
# the metrics endpoint (--metrics-listen)


def http_get(port, path, timeout=30):
    """GET http://127.0.0.1:port/path: (status, body text); (0, the reason)
    when nothing listens there (yet)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError as e:
        return 0, str(e)


def _metrics_port(where):
    """A port number, or a daemon whose test set d.mport."""
    return getattr(where, "mport", where)


def metrics_text(where, timeout=30):
    """The /metrics page (Prometheus text) of where (a port, or a daemon
    with d.mport); AssertionError unless 200."""
    port = _metrics_port(where)
    status, body = http_get(port, "/metrics", timeout)
    assert status == 200, "GET /metrics on port %d: %d %s" % (
        port, status, _short(body))
    return body


def parse_metrics(text):
    """{sample: value} of a Prometheus text page.  A sample is named as on
    the page, labels included: "logsink_lines_received_total",
    'logsink_tls_handshake_failures_total{reason="closed"}'."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def scrape_metrics(where):
    """parse_metrics() of the /metrics page of where (see metrics_text)."""
    return parse_metrics(metrics_text(where))


def metric(where, name, **labels):
    """The value of logsink_NAME{labels} on the /metrics page of where (see
    metrics_text); AssertionError naming the sample if the page lacks it."""
    key = "logsink_" + name
    if labels:
        key += "{%s}" % ",".join('%s="%s"' % kv for kv in labels.items())
    text = metrics_text(where)
    values = parse_metrics(text)
    if key not in values:
        raise AssertionError("no %s in /metrics:\n%s" % (key, text))
    return values[key]


# --------------------------------------------------------------------------
# clients


def connect(port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def wait_peer_close(sock, timeout=DEFAULT_TIMEOUT):
    """After our shutdown(SHUT_WR): reads until the daemon closes its side.

    The daemon closes a connection once it has read the client's EOF, so
    this proves every byte we sent has been read by it.
    """
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        raise AssertionError("logsinkd did not close the connection within "
                             "%.0f s after the client's EOF" % timeout)
    except ConnectionResetError:
        pass


def send_bytes(port, data, host="127.0.0.1", wait_close=False,
               timeout=DEFAULT_TIMEOUT):
    """One connection: send data, half-close, optionally wait for the
    daemon to close, close."""
    with connect(port, host, timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        if wait_close:
            wait_peer_close(s, timeout)


def send_lines(port, lines, host="127.0.0.1", wait_close=False,
               timeout=DEFAULT_TIMEOUT):
    data = b"".join((l.encode() if isinstance(l, str) else l) + b"\n"
                    for l in lines)
    send_bytes(port, data, host, wait_close, timeout)


def make_lines(tag, n, start=0):
    """Distinct plain-text lines: '<tag>-<nnnnnn> some text ...'."""
    return ["%s-%07d payload %s lorem ipsum dolor %d" % (tag, i, tag, i * 7919)
            for i in range(start, start + n)]


class Streamer(threading.Thread):
    """Sends numbered lines on one connection until stopped.

    sent: the lines whose sendall() completed (delivered to the kernel).
    Lines are sent in chunks; a short pause between chunks keeps the total
    volume bounded (it is rate limiting, not synchronisation).
    """

    def __init__(self, port, tag, chunk=50, pause=0.01, max_lines=10**6,
                 host="127.0.0.1", tolerate_errors=False):
        super().__init__(daemon=True)
        self.port, self.host, self.tag = port, host, tag
        self.chunk, self.pause, self.max_lines = chunk, pause, max_lines
        self.tolerate_errors = tolerate_errors
        self.sent = []
        self.error = None
        self.stop_event = threading.Event()
        self.first_chunk = threading.Event()

    def run(self):
        try:
            s = connect(self.port, self.host)
        except OSError as e:
            self.error = e
            self.first_chunk.set()
            return
        try:
            i = 0
            while not self.stop_event.is_set() and i < self.max_lines:
                lines = make_lines(self.tag, self.chunk, i)
                s.sendall("".join(l + "\n" for l in lines).encode())
                self.sent.extend(lines)
                i += self.chunk
                self.first_chunk.set()
                time.sleep(self.pause)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error = e
        finally:
            self.first_chunk.set()
            s.close()

    def stop(self, timeout=DEFAULT_TIMEOUT):
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), "streamer %s did not stop" % self.tag
        if self.error is not None and not self.tolerate_errors:
            raise AssertionError("streamer %s: %r" % (self.tag, self.error))
