"""The seeded, randomized fault soak: the engine shared by
tests/integration/test_soak.py (a short run in the suite) and bench/soak.sh
(the long run, `python3 tests/integration/soak.py --help`).

What runs:

    clients --TCP--> logsinkd --> relay (127.0.0.1) --veth--> PostgreSQL
                       |                                    (own netns)
                   spool-dir on a small tmpfs

- PostgreSQL runs inside a network namespace of its own, reached over a veth
  pair with private addresses 10.213.X.0/30 (X random per run; the names of
  the namespace and veth are unique per run, and both are removed at the
  end, also on failure).
- Network faults are made in that namespace.  Packet LOSS and the
  PARTITION are real kernel drops: nftables rules on the namespace's veth
  (`numgen random mod 100 < 5 drop` in each direction, a drop-all rule for
  the partition), so TCP between logsinkd's side and PostgreSQL really
  retransmits and stalls.  The 200 ms LATENCY is emulated: this kernel has
  no sch_netem (`tc qdisc ... netem` fails with "Specified qdisc kind is
  unknown") and modules cannot be loaded, so a small userspace TCP relay
  on 127.0.0.1, always in the path, holds each chunk it forwards for 200 ms
  per direction while the latency fault is on (0 otherwise).  That delays
  every byte as netem would, but per read chunk rather than per packet,
  and it does not shrink the TCP window the way a long real path would.
- logsinkd runs outside with spool-dir on a tmpfs (the "spool file system
  full" fault fills it with a ballast file), one ack=commit and one
  ack=spooled listener.
- Clients send unique sequenced lines ("TAG SEQ ...") at a fixed rate, read
  "ok N", and on any error reconnect and resend from their last ack (the
  README's resend rule), with at most `window` lines unacknowledged.
- A scheduler seeded from `seed` runs rounds; each round is every fault
  kind once, shuffled, with parameters drawn from the same generator, so a
  seed replays the same schedule (the timing of the daemon's reactions of
  course differs from run to run).

At the end every fault is healed, the clients drain (every line
acknowledged), and per stream: every acknowledged line is stored
(lost_acked = 0), every sent line is stored (lost = 0), duplicates are
counted, the dead-letter table is empty, and RSS and open fds of logsinkd
stayed within bounds derived from the configuration (see Bounds).
"""

import argparse
import asyncio
import collections
import contextlib
import csv
import errno
import os
import pwd
import random
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import wait_for  # noqa: E402

MiB = 1 << 20
KINDS = ("pg_immediate", "pg_freeze", "pg_restart_fast", "pg_terminate",
         "daemon_sigterm", "daemon_sigkill", "spool_full", "network")

# The daemon's settings in the soak (bounds below derive from them).
QUEUE_BYTES = 1 * MiB
BATCH_LINES = 500
DB_CONNECTIONS = 2
SPOOL_FS_BYTES = 16 * MiB
LINE_PAD = 60  # a line is about 90 bytes


def log(msg):
    print("[soak] %s" % msg, flush=True)


# --------------------------------------------------------------------------
# network namespace + veth + nftables


def _run(*cmd, check=True, ns=None):
    if ns is not None:
        cmd = ("ip", "netns", "exec", ns) + cmd
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                                p.stdout.decode().strip()))
    return p.stdout.decode()


class NetNS:
    """A namespace joined to ours by a veth pair on 10.213.X.0/30.

    host: our end's address; peer: the namespace's.  nft table "soak" in
    the namespace filters the veth: partition(), lossy(percent), heal().
    """

    def __init__(self, rng):
        tag = "%d%04x" % (os.getpid() % 10000, rng.randrange(1 << 16))
        self.ns = "lsoak" + tag
        self.veth, self.vpeer = "lsk%sa" % tag, "lsk%sb" % tag  # <= 15
        used = _run("ip", "-o", "-4", "addr")
        free = [x for x in range(256) if "10.213.%d." % x not in used]
        x = rng.choice(free)
        self.host, self.peer = "10.213.%d.1" % x, "10.213.%d.2" % x
        self.created = False

    def create(self):
        _run("ip", "netns", "add", self.ns)
        self.created = True
        _run("ip", "link", "add", self.veth, "type", "veth", "peer", "name",
             self.vpeer)
        _run("ip", "link", "set", self.vpeer, "netns", self.ns)
        _run("ip", "addr", "add", self.host + "/30", "dev", self.veth)
        _run("ip", "link", "set", self.veth, "up")
        _run("ip", "addr", "add", self.peer + "/30", "dev", self.vpeer,
             ns=self.ns)
        _run("ip", "link", "set", self.vpeer, "up", ns=self.ns)
        _run("ip", "link", "set", "lo", "up", ns=self.ns)
        _run("nft", "add table inet soak; "
             "add chain inet soak in { type filter hook input priority 0; }; "
             "add chain inet soak out { type filter hook output priority 0; }",
             ns=self.ns)
        return self

    def _rules(self, expr):
        self.heal()
        _run("nft", "add rule inet soak in iifname %s %s; "
             "add rule inet soak out oifname %s %s"
             % (self.vpeer, expr, self.vpeer, expr), ns=self.ns)

    def partition(self):
        self._rules("drop")

    def lossy(self, percent):
        self._rules("numgen random mod 100 < %d drop" % percent)

    def heal(self):
        _run("nft", "flush chain inet soak in; flush chain inet soak out",
             ns=self.ns)

    def destroy(self):
        # Deleting the namespace removes its veth end and so the pair.
        if self.created:
            _run("ip", "netns", "del", self.ns, check=False)
            _run("ip", "link", "del", self.veth, check=False)
            self.created = False


# --------------------------------------------------------------------------
# the relay: emulated latency (see the module docstring)


class Relay(threading.Thread):
    """TCP relay 127.0.0.1:port -> upstream, each chunk held `delay` s."""

    def __init__(self, upstream):
        super().__init__(daemon=True, name="relay")
        self.upstream = upstream
        self.delay = 0.0
        self.port = None
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.writers = set()

    def run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(
            self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()
        for w in list(self.writers):
            w.close()

    def start(self):
        super().start()
        self.ready.wait(30)
        return self

    async def _pipe(self, reader, writer, done):
        q = asyncio.Queue()

        async def send():
            try:
                while True:
                    t, data = await q.get()
                    if data is None:
                        break
                    wait = t + self.delay - self.loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(data)
                    await writer.drain()
            finally:
                done.set()

        sender = asyncio.ensure_future(send())
        try:
            while not sender.done():
                data = await reader.read(65536)
                await q.put((self.loop.time(), data or None))
                if not data:
                    break
            await sender
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            sender.cancel()
            done.set()

    async def _client(self, creader, cwriter):
        self.writers.add(cwriter)
        try:
            ureader, uwriter = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), 10)
        except (OSError, asyncio.TimeoutError):
            cwriter.close()
            self.writers.discard(cwriter)
            return
        self.writers.add(uwriter)
        done = asyncio.Event()
        tasks = [asyncio.ensure_future(self._pipe(creader, uwriter, done)),
                 asyncio.ensure_future(self._pipe(ureader, cwriter, done))]
        await done.wait()  # one side ended: end both (no half-close)
        for t in tasks:
            t.cancel()
        for w in (cwriter, uwriter):
            w.close()
            self.writers.discard(w)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.join(30)


# --------------------------------------------------------------------------
# clients


class Client(threading.Thread):
    """One stream: lines "TAG SEQ soak ...", SEQ from 0.

    generated: lines first sent so far (the stream is lines 0..generated-1);
    acked: lines acknowledged (the connection's base + its "ok N").  At most
    `window` lines are unacknowledged; rate lines/s (None: as fast as the
    window allows).  Any error: reconnect, resend from acked.
    """

    def __init__(self, port, tag, rate, window=2000, chunk=None):
        super().__init__(daemon=True, name="client-" + tag)
        self.port, self.tag, self.rate, self.window = port, tag, rate, window
        self.chunk = chunk or (max(1, int(rate / 50)) if rate else 200)
        self.generated = self.acked = 0
        self.resent = self.reconnects = 0
        self.stopping = threading.Event()
        self.quit = threading.Event()
        self.violation = None  # a protocol error of the daemon
        self.lat = collections.deque()  # (last seq + 1, first send time)
        self.latencies = []  # ack latency samples (s), drained by Sampler
        self.lock = threading.Lock()

    def line(self, seq):
        return ("%s %09d soak %s %s\n"
                % (self.tag, seq, self.tag, "x" * LINE_PAD)).encode()

    def _connect(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), 2)
        except OSError:
            return None
        s.setblocking(False)
        return s

    def run(self):
        t0 = time.monotonic()
        credit_t = t0
        credit = 0.0
        sock = None
        while not self.quit.is_set():
            if sock is None:
                sock = self._connect()
                if sock is None:
                    time.sleep(0.1)
                    continue
                base, queued, n_conn, out, rbuf = self.acked, self.acked, 0, \
                    bytearray(), b""
                if self.generated > 0:
                    self.resent += self.generated - base
                    self.reconnects += 1
            now = time.monotonic()
            if self.stopping.is_set() and self.acked >= self.generated:
                break
            # resend, then new lines within rate and window
            while queued < self.generated and len(out) < 1 << 20:
                hi = min(self.generated, queued + 500)
                out += b"".join(self.line(i) for i in range(queued, hi))
                queued = hi
            if self.rate:
                credit = min(credit + (now - credit_t) * self.rate,
                             max(self.rate, self.chunk))
            else:
                credit = self.chunk
            credit_t = now
            room = self.window - (self.generated - self.acked)
            if not self.stopping.is_set() and queued == self.generated:
                n = min(int(credit), room, self.chunk)
                if n > 0:
                    g = self.generated
                    out += b"".join(self.line(i) for i in range(g, g + n))
                    with self.lock:
                        self.lat.append((g + n, now))
                    self.generated = queued = g + n
                    credit -= n
            try:
                r, w, _ = select.select([sock], [sock] if out else [], [],
                                        0.02)
                if w and out:
                    k = sock.send(out)
                    del out[:k]
                if r:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionResetError("EOF from logsinkd")
                    rbuf += data
                    *full, rbuf = rbuf.split(b"\n")
                    for a in full:
                        m = re.fullmatch(rb"ok (\d+)", a)
                        if m is None or int(m.group(1)) < n_conn or \
                                base + int(m.group(1)) > queued:
                            self.violation = ("%s: bad ack %r (connection "
                                              "base %d, last ok %d, %d "
                                              "queued)" % (self.tag, a, base,
                                                           n_conn, queued))
                            raise ConnectionResetError(self.violation)
                        n_conn = int(m.group(1))
                        self._acked(base + n_conn)
            except (OSError, ValueError):
                sock.close()
                sock = None
        if sock is not None:
            sock.close()

    def _acked(self, n):
        now = time.monotonic()
        with self.lock:
            self.acked = max(self.acked, n)
            while self.lat and self.lat[0][0] <= self.acked:
                self.latencies.append(now - self.lat.popleft()[1])

    def take_latencies(self):
        with self.lock:
            out, self.latencies = self.latencies, []
        return out


# --------------------------------------------------------------------------
# the daemon, PostgreSQL, the spool file system


def proc_rss_fds(pid):
    """(RSS bytes, open fds) of pid, or (None, None) if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))
        return rss * 1024, len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, AttributeError):
        return None, None


def sanitized_build():
    build = os.environ.get("LOGSINK_BUILD", os.path.join(harness.REPO_ROOT,
                                                         "build"))
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            return "LOGSINK_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


class Soak:
    """One run: set up, run clients + schedule, heal, drain, check."""

    def __init__(self, seed, seconds, rate, workdir, clients_per_listener=2,
                 sample_interval=1.0, csv_path=None, drain_timeout=300,
                 window=2000, batch_lines=BATCH_LINES):
        self.seed, self.seconds, self.rate = seed, seconds, rate
        self.workdir = workdir
        self.nclients = clients_per_listener
        self.sample_interval, self.csv_path = sample_interval, csv_path
        self.drain_timeout, self.window = drain_timeout, window
        self.batch_lines = batch_lines
        self.rng = random.Random(seed)
        self.schedule = []  # (t, kind, params, outcome)
        self.spooled_progress = []  # (t, kind, {tag: (acked, acked)})
        self.samples = []
        self.errors = []
        self.t0 = None
        self.netns = self.pg = self.relay = self.d = None
        self.mnt = None
        self.ballast = None
        self.frozen = None
        self.clients = []
        self.restarts = 0
        self.fd_base = None
        self.rss_base = None

    # -- setup / teardown

    def replay_hint(self):
        return ("replay with LOGSINK_SOAK_SEED=%d LOGSINK_SOAK_SECONDS=%g"
                % (self.seed, self.seconds))

    def schedule_text(self):
        return "\n".join("  t=%7.1fs %-16s %s%s" % (
            t, k, " ".join("%s=%s" % kv for kv in p.items()),
            (" -> " + o) if o else "") for t, k, p, o in self.schedule)

    def setup(self):
        self.netns = NetNS(self.rng).create()
        log("netns %s veth %s (%s) <-> %s (%s)"
            % (self.netns.ns, self.netns.veth, self.netns.host,
               self.netns.vpeer, self.netns.peer))
        self.pg = harness.PgCluster(netns=self.netns.ns,
                                    host=self.netns.peer)
        self.pg.init()
        with open(os.path.join(self.pg.datadir, "pg_hba.conf"), "a") as f:
            f.write("host all all %s/32 trust\n" % self.netns.host)
        self.pg.start()
        harness.init_db(self.pg.conninfo)
        # A crash must not forget a confirmed commit (the harness turns
        # synchronous_commit off for speed); keepalives end the backends of
        # connections cut by a partition.
        for sql in ("alter system set synchronous_commit = on",
                    "alter system set tcp_keepalives_idle = 5",
                    "alter system set tcp_keepalives_interval = 2",
                    "alter system set tcp_keepalives_count = 3",
                    "select pg_reload_conf()"):
            self.query(sql)
        self.relay = Relay((self.netns.peer, self.pg.port)).start()
        self.mnt = os.path.join(self.workdir, "spoolfs")
        os.makedirs(self.mnt, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", "size=%d,mode=0755"
             % SPOOL_FS_BYTES, "logsink-soak", self.mnt)
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.mnt, nobody.pw_uid, nobody.pw_gid)
        self.pcommit, self.pspool = harness.free_port(), harness.free_port()
        self.mport = harness.free_port()
        args = ["--db", "host=127.0.0.1 port=%d dbname=postgres user=postgres"
                % self.relay.port,
                "--listen", "127.0.0.1:%d ack=commit format=raw"
                % self.pcommit,
                "--listen", "127.0.0.1:%d ack=spooled format=raw"
                % self.pspool,
                "--metrics-listen", "127.0.0.1:%d" % self.mport,
                "--spool-dir", os.path.join(self.mnt, "spool"),
                "--spool-max-bytes", "64MiB", "--spool-segment-bytes", "1MiB",
                "--queue-bytes", QUEUE_BYTES,
                "--batch-lines", self.batch_lines,
                "--db-connections", DB_CONNECTIONS, "--db-timeout", "5s",
                "--reconnect-min-ms", 50, "--reconnect-max-ms", 1000,
                "--shutdown-timeout", "5s", "--stats-interval", "10s"]
        self.d = harness.Daemon(args, self.workdir, "logsinkd",
                                [("127.0.0.1", self.pcommit),
                                 ("127.0.0.1", self.pspool)])
        self.d.start()
        wait_for(lambda: harness.http_get(self.mport, "/metrics")[0] == 200,
                 what="/metrics")
        self.rss_base, self.fd_base = proc_rss_fds(self.d.pid)

    def teardown(self):
        for c in self.clients:
            c.quit.set()
        for c in self.clients:
            c.join(10)
        with contextlib.suppress(Exception):
            self.heal_all(daemon=False)
        if self.d is not None:
            with contextlib.suppress(Exception):
                self.d.stop(30)
            self.d.kill()
        if self.relay is not None:
            self.relay.stop()
        if self.pg is not None:
            self.pg.destroy()
        if self.mnt is not None:
            _run("umount", "-l", self.mnt, check=False)
        if self.netns is not None:
            self.netns.destroy()

    def query(self, sql, params=None):
        """sql over the cluster's unix socket (not through the network
        under test)."""
        conn = psycopg2.connect(host=self.pg.dir, port=self.pg.port,
                                dbname="postgres", user="postgres",
                                connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    # -- faults

    def _pg_pids(self):
        from test_faults import _children, postmaster_pid
        pm = postmaster_pid(self.pg)
        return [pm] + _children(pm)

    def fault_pg_immediate(self, p):
        self.pg.stop("immediate")
        self._hold("pg_immediate", p["down_s"], p)
        self.pg.start()

    def fault_pg_freeze(self, p):
        from test_faults import Freezer
        with Freezer(self.pg) as fr:
            self.frozen = fr
            n = len(fr.freeze())
            self._hold("pg_freeze", p["frozen_s"], p)
        self.frozen = None
        return "%d processes" % n

    def fault_pg_restart_fast(self, p):
        self.pg.restart("fast")

    def fault_pg_terminate(self, p):
        # Only when connected: else there is nothing to terminate.
        wait_for(lambda: self.query(
            "select count(*) from pg_stat_activity "
            "where application_name = 'logsinkd'")[0][0] > 0, 60,
            "logsinkd connected", ignore=(psycopg2.Error,))
        rows = self.query("select pg_terminate_backend(pid) from "
                          "pg_stat_activity where application_name = "
                          "'logsinkd'")
        return "%d backends" % len(rows)

    def _restart_daemon(self):
        self.d.start()
        self.restarts += 1

    def fault_daemon_sigterm(self, p):
        rc = self.d.stop(60)
        if rc != 0:
            self.errors.append("logsinkd exited %s on SIGTERM" % rc)
        time.sleep(p["down_s"])
        self._restart_daemon()
        return "exit %s" % rc

    def fault_daemon_sigkill(self, p):
        self.d.kill()
        time.sleep(p["down_s"])
        self._restart_daemon()

    def fault_spool_full(self, p):
        self.ballast = os.path.join(self.mnt, "ballast")
        n = 0
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        chunk = b"\0" * (64 * 1024)
        try:
            while True:  # unbuffered: ENOSPC comes here, not at close
                n += os.write(fd, chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
        time.sleep(p["full_s"])
        os.unlink(self.ballast)
        self.ballast = None
        return "ballast %d KiB" % (n // 1024)

    def fault_network(self, p):
        self.netns.partition()
        self._hold("network", p["partition_s"], p)
        self.relay.delay = p["latency_ms"] / 1000.0
        self.netns.lossy(p["loss_pct"])
        time.sleep(p["lossy_s"])
        self.netns.heal()
        self.relay.delay = 0.0

    def _hold(self, kind, seconds, p):
        """Sleeps through a fault that keeps the database away; records
        whether each ack=spooled stream was acknowledged meanwhile (README:
        those acks "keep coming while the database is down", the spool
        having room), from 1 s in (what was in flight at the start is
        settled by then) to the end.  With p["and_daemon"] the daemon is
        SIGTERMed or SIGKILLed halfway and restarted instead (the database
        away while the collector restarts; no progress check then)."""
        also = p.get("and_daemon")
        if also:
            start = time.monotonic()
            time.sleep(seconds / 2)
            log("t=%.1fs   and logsinkd %s" % (start - self.t0 + seconds / 2,
                                               also))
            if also == "sigterm":
                rc = self.d.stop(60)
                if rc != 0:
                    self.errors.append("logsinkd exited %s on SIGTERM "
                                       "during %s" % (rc, kind))
            else:
                self.d.kill()
            self._restart_daemon()
            rest = seconds - (time.monotonic() - start)
            if rest > 0:
                time.sleep(rest)
            return
        lead = min(1.0, seconds / 2)
        time.sleep(lead)
        spooled = [c for c in self.clients if c.tag.startswith("s")]
        before = {c.tag: c.acked for c in spooled}
        refused = self._refused()
        time.sleep(seconds - lead)
        # Only while the spool takes every write (a full spool stops
        # them, as documented; at high rates the 16 MiB tmpfs fills).
        if seconds - lead >= 1.0 and refused is not None and \
                self._refused() == refused:
            self.spooled_progress.append((
                round(time.monotonic() - self.t0, 1), kind,
                {c.tag: (before[c.tag], c.acked) for c in spooled}))

    def _refused(self):
        """logsink_spool_refused_total, None if /metrics is not there."""
        status, body = harness.http_get(self.mport, "/metrics", 5)
        if status != 200:
            return None
        return harness.parse_metrics(body).get(
            "logsink_spool_refused_total")

    def params(self, kind):
        """The fault's parameters, drawn from the seeded generator."""
        p = self._params(kind)
        if kind in ("pg_immediate", "pg_freeze", "network"):
            also = self.rng.choice((None, None, "sigterm", "sigkill"))
            if also:
                p["and_daemon"] = also
        return p

    def _params(self, kind):
        u = lambda a, b: round(self.rng.uniform(a, b), 1)  # noqa: E731
        return {
            "pg_immediate": lambda: {"down_s": u(2, 6)},
            "pg_freeze": lambda: {"frozen_s": u(3, 8)},
            "pg_restart_fast": lambda: {},
            "pg_terminate": lambda: {},
            "daemon_sigterm": lambda: {"down_s": u(0, 2)},
            "daemon_sigkill": lambda: {"down_s": u(0, 2)},
            "spool_full": lambda: {"full_s": u(3, 8)},
            "network": lambda: {"partition_s": u(3, 6), "latency_ms": 200,
                                "loss_pct": 5, "lossy_s": u(5, 10)},
        }[kind]()

    def heal_all(self, daemon=True):
        if self.frozen is not None:
            self.frozen.thaw()
        self.netns.heal()
        self.relay.delay = 0.0
        if self.ballast and os.path.exists(self.ballast):
            os.unlink(self.ballast)
        if not os.path.exists(os.path.join(self.pg.datadir,
                                           "postmaster.pid")):
            self.pg.start()
        if daemon and not self.d.alive():
            self._restart_daemon()

    # -- sampling

    def sample(self):
        t = time.monotonic() - self.t0
        rss, fds = proc_rss_fds(self.d.pid) if self.d.alive() else (None,
                                                                    None)
        m = {}
        if rss is not None:
            status, body = harness.http_get(self.mport, "/metrics", 5)
            if status == 200:
                m = harness.parse_metrics(body)
        lats = sorted(x for c in self.clients for x in c.take_latencies())
        row = {
            "t_s": round(t, 1),
            "rss_kib": rss // 1024 if rss else "",
            "fds": fds if fds is not None else "",
            "queue_bytes": int(m.get("logsink_queue_bytes", 0)) if m else "",
            "spool_bytes": int(m.get("logsink_spool_bytes", 0)) if m else "",
            "sent": sum(c.generated for c in self.clients),
            "acked": sum(c.acked for c in self.clients),
            "ack_p50_ms": round(lats[len(lats) // 2] * 1000, 1)
            if lats else "",
            "ack_p99_ms": round(lats[int(len(lats) * 0.99)] * 1000, 1)
            if lats else "",
            "ack_max_ms": round(lats[-1] * 1000, 1) if lats else "",
            "fault": self.current or "",
        }
        self.samples.append(row)
        if self.csv_file is not None:
            self.csv_writer.writerow(row)
            self.csv_file.flush()

    def _sampler(self):
        while not self.sampler_stop.wait(self.sample_interval):
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 - keep sampling
                log("sample failed: %r" % e)

    # -- bounds

    def bounds(self):
        """RSS: the baseline after start-up + 4 x queue-bytes (the queue,
        batches in flight on db-connections, spool replay, client input
        buffers are each bounded by or well below queue-bytes here) + 16
        MiB for libevent/libpq/heap slack.  FDs: the baseline (listeners,
        metrics, stdio, spool, event loop) + one per client + two per
        database connection (the old one closing, the new one connecting)
        + 4 spool segments + 4 metrics scrapes."""
        return (self.rss_base + 4 * QUEUE_BYTES + 16 * MiB,
                self.fd_base + len(self.clients) + 2 * DB_CONNECTIONS + 8)

    # -- the run

    def run(self):
        self.current = None
        self.csv_file = open(self.csv_path, "w", newline="") \
            if self.csv_path else None
        self.t0 = time.monotonic()
        for i in range(self.nclients):
            self.clients.append(Client(self.pcommit, "c%d" % i, self.rate,
                                       self.window))
            self.clients.append(Client(self.pspool, "s%d" % i, self.rate,
                                       self.window))
        if self.csv_file is not None:
            self.csv_writer = csv.DictWriter(self.csv_file, fieldnames=[
                "t_s", "rss_kib", "fds", "queue_bytes", "spool_bytes", "sent",
                "acked", "ack_p50_ms", "ack_p99_ms", "ack_max_ms", "fault"])
            self.csv_writer.writeheader()
        self.sampler_stop = threading.Event()
        sampler = threading.Thread(target=self._sampler, daemon=True)
        sampler.start()
        for c in self.clients:
            c.start()
        try:
            self._faults()
            self.heal_all()
            self.current = "drain"
            for c in self.clients:
                c.stopping.set()
            self._drain()
            rc = self.d.stop(60)
            if rc != 0:
                self.errors.append("logsinkd exited %s on the final SIGTERM"
                                   % rc)
        finally:
            self.sampler_stop.set()
            sampler.join(30)
            if self.csv_file is not None:
                self.csv_file.close()
        return self.check()

    def _faults(self):
        wait_for(lambda: all(c.acked > 0 for c in self.clients), 60,
                 "every client acknowledged once before the first fault")
        rnd = 0
        while rnd == 0 or time.monotonic() - self.t0 < self.seconds:
            kinds = list(KINDS)
            self.rng.shuffle(kinds)
            for kind in kinds:
                gap = round(self.rng.uniform(1, 4), 1)
                p = self.params(kind)
                time.sleep(gap)
                t = time.monotonic() - self.t0
                log("t=%.1fs round %d fault %s %s" % (
                    t, rnd, kind, " ".join("%s=%s" % kv for kv in p.items())))
                self.current = kind
                outcome = getattr(self, "fault_" + kind)(p) or ""
                self.current = None
                self.schedule.append((t, kind, p, outcome))
                if not self.d.alive():
                    raise AssertionError("logsinkd died after %s:\n%s"
                                         % (kind, harness.tail_text(
                                             self.d.log_path, 4000)))
                for c in self.clients:
                    if c.violation:
                        raise AssertionError(c.violation)
            rnd += 1
            if self.seconds <= 0:
                break
        self.rounds = rnd

    def _drain(self):
        def drained():
            return all(c.acked >= c.generated for c in self.clients)
        try:
            wait_for(drained, self.drain_timeout, "every line acknowledged")
        except AssertionError as e:
            self.errors.append("%s: %s" % (e, ", ".join(
                "%s %d/%d" % (c.tag, c.acked, c.generated)
                for c in self.clients)))
            return
        for c in self.clients:
            c.join(30)
        want = sum(c.generated for c in self.clients)
        try:
            wait_for(lambda: self.query("select count(*) from public.logs")
                     [0][0] >= want and not self.lost_lines(),
                     self.drain_timeout, "every line stored",
                     ignore=(psycopg2.Error,))
        except AssertionError as e:
            self.errors.append(str(e))

    def stream_stats(self):
        """{tag: (rows, distinct seq, min seq, max seq)} from the table."""
        rows = self.query(
            "select split_part(message, ' ', 1), count(*), "
            "count(distinct split_part(message, ' ', 2)), "
            "min(split_part(message, ' ', 2)::bigint), "
            "max(split_part(message, ' ', 2)::bigint) "
            "from public.logs group by 1")
        return {r[0]: r[1:] for r in rows}

    def lost_lines(self):
        st = self.stream_stats()
        return [c.tag for c in self.clients
                if st.get(c.tag, (0, 0, 0, 0))[1] < c.generated]

    def lost_acked(self, tag, acked):
        return self.query(
            "select count(*) from generate_series(0, %s) g left join "
            "(select distinct split_part(message, ' ', 2)::bigint s "
            "from public.logs where split_part(message, ' ', 1) = %s) x "
            "on x.s = g where x.s is null", (acked - 1, tag))[0][0]

    def check(self):
        self.rss_bound, self.fd_bound = self.bounds()
        result = {"seed": self.seed, "seconds": self.seconds,
                  "elapsed_s": round(time.monotonic() - self.t0, 1),
                  "rounds": self.rounds,
                  "faults": dict(collections.Counter(
                      k for _, k, _, _ in self.schedule)),
                  "streams": {}, "errors": list(self.errors)}
        st = self.stream_stats()
        unexpected = set(st) - {c.tag for c in self.clients}
        if unexpected:
            result["errors"].append("rows of unknown streams: %s"
                                    % sorted(unexpected))
        for c in self.clients:
            rows, distinct, lo, hi = st.get(c.tag, (0, 0, None, None))
            s = {"sent": c.generated, "acked": c.acked, "rows": rows,
                 "stored": distinct, "lost": c.generated - distinct,
                 "duplicates": rows - distinct, "resent": c.resent,
                 "reconnects": c.reconnects}
            if hi is not None and hi >= c.generated:
                result["errors"].append("%s: stored seq %d never sent"
                                        % (c.tag, hi))
            s["lost_acked"] = self.lost_acked(c.tag, c.acked) \
                if s["lost"] else 0
            for k in ("lost", "lost_acked"):
                if s[k]:
                    result["errors"].append("%s: %s = %d" % (c.tag, k, s[k]))
            result["streams"][c.tag] = s
        for t, kind, acks in self.spooled_progress:
            stalled = sorted(tag for tag, (a0, a1) in acks.items()
                             if a1 == a0)
            if stalled:
                result["errors"].append(
                    "ack=spooled acks stalled during %s at t=%.1fs (the "
                    "spool had room): %s" % (kind, t, ", ".join(
                        "%s at %d" % (tag, acks[tag][0]) for tag in stalled)))
        rejected = self.query(
            "select count(*) from public.logs_rejected")[0][0]
        result["rejected"] = rejected
        if rejected:
            result["errors"].append("%d rows in public.logs_rejected"
                                    % rejected)
        rss = [r["rss_kib"] for r in self.samples if r["rss_kib"] != ""]
        fds = [r["fds"] for r in self.samples if r["fds"] != ""]
        result["max_rss_kib"] = max(rss) if rss else None
        result["max_fds"] = max(fds) if fds else None
        result["rss_bound_kib"] = self.rss_bound // 1024
        result["fd_bound"] = self.fd_bound
        result["rss_checked"] = not sanitized_build()
        if rss and result["rss_checked"] and \
                max(rss) * 1024 > self.rss_bound:
            result["errors"].append("RSS %d KiB above the bound %d KiB"
                                    % (max(rss), self.rss_bound // 1024))
        if fds and max(fds) > self.fd_bound:
            result["errors"].append("%d open fds above the bound %d"
                                    % (max(fds), self.fd_bound))
        for pat in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            if pat in self.d.log():
                result["errors"].append("sanitizer report in the daemon "
                                        "log (%s)" % pat)
        tot = lambda k: sum(s[k] for s in result["streams"].values())  # noqa
        result["totals"] = {k: tot(k) for k in (
            "sent", "acked", "stored", "rows", "lost", "lost_acked",
            "duplicates", "resent")}
        lat = [r["ack_max_ms"] for r in self.samples if r["ack_max_ms"] != ""]
        result["ack_max_ms"] = max(lat) if lat else None
        return result


def summary(result):
    t = result["totals"]
    return ("seed=%d seconds=%g elapsed=%.0fs rounds=%d faults=%s "
            "sent=%d acked=%d stored=%d rows=%d lost=%d lost_acked=%d "
            "duplicates=%d resent=%d rejected=%d max_rss=%s KiB (bound %d%s) "
            "max_fds=%s (bound %d) ack_max=%s ms"
            % (result["seed"], result["seconds"], result["elapsed_s"],
               result["rounds"],
               ",".join("%s:%d" % kv for kv in sorted(
                   result["faults"].items())),
               t["sent"], t["acked"], t["stored"], t["rows"], t["lost"],
               t["lost_acked"], t["duplicates"], t["resent"],
               result["rejected"], result["max_rss_kib"],
               result["rss_bound_kib"],
               "" if result["rss_checked"] else ", not checked under ASan",
               result["max_fds"], result["fd_bound"], result["ack_max_ms"]))


def run(seed, seconds, rate, workdir, **kw):
    """Runs a soak; returns (soak, result).  Always cleans up."""
    s = Soak(seed, seconds, rate, workdir, **kw)
    log("seed %d (%s), %g s of faults, %s lines/s per client"
        % (seed, s.replay_hint(), seconds, rate or "max"))
    try:
        s.setup()
        result = s.run()
    except BaseException:
        log("FAILED; %s; schedule so far:\n%s"
            % (s.replay_hint(), s.schedule_text()))
        s.teardown()
        raise
    s.teardown()
    return s, result


def measure_max_rate(workdir, seconds=20, clients_per_listener=2):
    """Lines/s acknowledged by the same clients unpaced, without faults."""
    s = Soak(0, 0, None, workdir, clients_per_listener, window=5000)
    try:
        s.setup()
        s.t0 = time.monotonic()
        for i in range(clients_per_listener):
            s.clients.append(Client(s.pcommit, "c%d" % i, None, 5000))
            s.clients.append(Client(s.pspool, "s%d" % i, None, 5000))
        for c in s.clients:
            c.start()
        time.sleep(3)  # warm-up (this is a measurement, not a test)
        a0, t0 = sum(c.acked for c in s.clients), time.monotonic()
        time.sleep(seconds)
        a1, t1 = sum(c.acked for c in s.clients), time.monotonic()
        return (a1 - a0) / (t1 - t0)
    finally:
        s.teardown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--rate", type=float, default=None,
                    help="lines/s per client (default: half the measured "
                    "maximum)")
    ap.add_argument("--clients", type=int, default=2,
                    help="clients per listener (ack=commit, ack=spooled)")
    ap.add_argument("--interval", type=float, default=5.0,
                    help="sampling interval (s)")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    # SIGTERM (or SIGINT): unwind, so that teardown removes the namespace,
    # the tmpfs, PostgreSQL and the daemon.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = a.workdir or tempfile.mkdtemp(prefix="logsink-soak-",
                                            dir="/var/tmp")
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)
    rate = a.rate
    if rate is None:
        mx = measure_max_rate(os.path.join(workdir, "max"),
                              clients_per_listener=a.clients)
        rate = mx / 2 / (2 * a.clients)
        log("max rate %.0f lines/s (all clients); soak at half: %.0f "
            "lines/s per client" % (mx, rate))
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(
        1 << 31)
    s, result = run(seed, a.seconds, rate, os.path.join(workdir, "soak"),
                    clients_per_listener=a.clients,
                    sample_interval=a.interval, csv_path=a.csv,
                    drain_timeout=900)
    log("schedule:\n" + s.schedule_text())
    for tag, st in sorted(result["streams"].items()):
        log("stream %s: %s" % (tag, " ".join("%s=%s" % kv
                                             for kv in st.items())))
    log("RESULT " + summary(result))
    for e in result["errors"]:
        log("ERROR " + e)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
