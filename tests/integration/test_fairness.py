"""Fair back-pressure and per-source rate limits (listener_fair.c).

One flooder writing as fast as it can (never reading) and ten clients
sending 100 lines a second each over ack=commit: the ten are never paused
(only the flooder is, for its share of the queue), every one of their
lines is acknowledged and stored, nothing is dropped.  The pressure is
made certain, not hoped for: the test holds a lock on the table so that
nothing commits until the flooder has been paused and the ten have gone
on being read.  With fair-share-percent = 0 the same scenario pauses the
ten too (the assertion can fail).  The ten's ack latencies are reported,
not asserted (bench/fairness.sh measures them).

Rate limits: pause mode stores every line of a burst past the limit and
counts the paused time; drop mode drops exactly the excess (a burst and a
known count sent in one go), counts it and names the source in the log;
on an ack=commit listener drop mode pauses instead; the table of sources
is bounded (rate-limit-sources) and forgets the least recently seen.
"""

import re
import select
import socket
import threading
import time

import psycopg2
import pytest

import harness
from harness import wait_for

TIMEOUT = 120
QUEUE = 4 * 1024 * 1024
TEN = 10
RATE = 100  # lines a second, each of the ten


@pytest.fixture
def report(capsys):
    """report(text): one "[fairness]" line on the terminal, also under
    -q."""
    def emit(text):
        with capsys.disabled():
            print("\n[fairness] %s" % text, flush=True)
    return emit


class AckClient(threading.Thread):
    """Sends RATE numbered lines a second on an ack=commit connection,
    paced by the clock, and reads "ok N" as they come; keeps each line's
    ack latency (send to the ack covering it)."""

    def __init__(self, port, tag):
        super().__init__(daemon=True)
        self.port, self.tag = port, tag
        self.sent_at = []   # monotonic send time of line i
        self.latencies = []
        self.acked = 0
        self.error = None
        self.stop_event = threading.Event()
        self.sock = None

    def _read_acks(self, buf, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return buf, True
        data = self.sock.recv(65536)
        if not data:
            return buf, False
        buf += data
        now = time.monotonic()
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            n = int(line.split()[1])
            for i in range(self.acked, n):
                self.latencies.append(now - self.sent_at[i])
            self.acked = max(self.acked, n)
        return buf, True

    def run(self):
        buf = b""
        try:
            self.sock = harness.connect(self.port)
            t0 = time.monotonic()
            while not self.stop_event.is_set():
                i = len(self.sent_at)
                due = t0 + i / RATE
                now = time.monotonic()
                if now >= due:
                    self.sock.sendall(b"%s-%07d fair client line\n"
                                      % (self.tag.encode(), i))
                    self.sent_at.append(time.monotonic())
                    continue
                buf, _ = self._read_acks(buf, due - now)
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + TIMEOUT
            open_ = True
            while open_ and time.monotonic() < deadline:
                buf, open_ = self._read_acks(buf, 1.0)
        except OSError as e:
            self.error = e
        finally:
            if self.sock is not None:
                self.sock.close()

    def finish(self):
        self.stop_event.set()
        self.join(TIMEOUT + 10)
        assert not self.is_alive(), "client %s did not finish" % self.tag
        assert self.error is None, "client %s: %r" % (self.tag, self.error)


class Flooder(threading.Thread):
    """Writes a prepared chunk of lines as fast as the daemon reads it,
    never reading its acks (there are none: a plain listener)."""

    LINES_PER_CHUNK = 2000

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.chunk = b"".join(b"flood-%06d %s\n" % (i, b"x" * 100)
                              for i in range(self.LINES_PER_CHUNK))
        self.chunks = 0
        self.local_port = None
        self.error = None
        self.stop_event = threading.Event()
        self.connected = threading.Event()

    @property
    def lines(self):
        return self.chunks * self.LINES_PER_CHUNK

    def run(self):
        try:
            with harness.connect(self.port) as s:
                self.local_port = s.getsockname()[1]
                self.connected.set()
                while not self.stop_event.is_set():
                    s.sendall(self.chunk)
                    self.chunks += 1
                s.shutdown(socket.SHUT_WR)
                harness.wait_peer_close(s, TIMEOUT)
        except OSError as e:
            self.error = e
        finally:
            self.connected.set()

    def finish(self):
        self.stop_event.set()
        self.join(TIMEOUT + 10)
        assert not self.is_alive(), "the flooder did not finish"
        assert self.error is None, "flooder: %r" % (self.error,)


class TableLock:
    """Holds ACCESS EXCLUSIVE on the logs table: every COPY waits."""

    def __init__(self, pg):
        self.conn = psycopg2.connect(pg.conninfo, connect_timeout=10)
        self.conn.cursor().execute(
            "lock table public.logs in access exclusive mode")

    def release(self):
        self.conn.commit()
        self.conn.close()


def paused_ports(d, reason):
    """The client ports of the daemon's "paused reason=..." lines."""
    return [int(p) for p in re.findall(
        r"c\d+ 127\.0\.0\.1:(\d+): paused reason=%s" % reason, d.log())]


def quantile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def stored_like(pg, pattern):
    return pg.scalar("select count(*) from public.logs where message like %s",
                     (pattern,))


def flood_daemon(daemon, pg, *extra):
    mport, ack_port, flood_port = (harness.free_port() for _ in range(3))
    d = daemon("--queue-bytes", str(QUEUE), "--log-level", "debug",
               "--db-timeout", "300s", "--stats-interval", "0",
               "--metrics-listen", "127.0.0.1:%d" % mport,
               "--listen", "127.0.0.1:%d ack=commit" % ack_port,
               "--listen", "127.0.0.1:%d" % flood_port, *extra,
               db=pg.conninfo, listen=False,
               ready_ports=[("127.0.0.1", ack_port),
                            ("127.0.0.1", flood_port)])
    d.mport, d.ack_port, d.flood_port = mport, ack_port, flood_port
    return d


def run_flood(d, pg):
    """The scenario up to the flooder paused with nothing committing and
    the ten read on; then the lock goes, the flood goes on until a queue's
    worth more has been committed, and everyone finishes.  Returns the
    ten and the flooder (finished) and whether the flooder was seen
    fair-paused under the lock."""
    ten = [AckClient(d.ack_port, "fair%02d" % i) for i in range(TEN)]
    for c in ten:
        c.start()
    wait_for(lambda: all(c.acked >= 20 for c in ten), TIMEOUT,
             "the ten acknowledged")
    lock = TableLock(pg)
    flooder = Flooder(d.flood_port)
    try:
        flooder.start()
        flooder.connected.wait(TIMEOUT)
        # Nothing commits: the queue fills up to the fair level and the
        # flooder, holding nearly all of it, is paused...
        fair_paused = wait_for(
            lambda: (harness.metric(d, "clients_paused_total",
                                    reason="fair-share") >= 1 or
                     harness.metric(d, "clients_paused_total",
                                    reason="queue-full") >= 1),
            TIMEOUT, "a pause under the lock") and harness.metric(
                d, "clients_paused_total", reason="fair-share") >= 1
        # ... while the ten are still read: 200 more of their lines.
        base = harness.metric(d, "lines_received_total")
        wait_for(lambda: harness.metric(d, "lines_received_total") >=
                 base + 2 * TEN * 10 or
                 harness.metric(d, "clients_paused_total",
                                reason="queue-full") >= 1,
                 TIMEOUT, "lines of the ten read while the flooder waits")
    finally:
        lock.release()
    committed = harness.metric(d, "lines_committed_total")
    wait_for(lambda: harness.metric(d, "lines_committed_total") >=
             committed + QUEUE // 120, TIMEOUT,
             "a queue's worth committed after the lock")
    flooder.finish()
    for c in ten:
        c.finish()
    return ten, flooder, fair_paused


def test_flooder_paused_ten_clients_keep_flowing(daemon, fresh_pg, report):
    pg = fresh_pg
    d = flood_daemon(daemon, pg)
    ten, flooder, fair_paused = run_flood(d, pg)
    assert fair_paused, "the flooder was not paused for its share:\n" + \
        d.log()[-5000:]

    for c in ten:
        assert c.acked == len(c.sent_at), (c.tag, c.acked, len(c.sent_at))
        assert stored_like(pg, c.tag + "-%") == len(c.sent_at), c.tag
    wait_for(lambda: stored_like(pg, "flood-%") == flooder.lines, TIMEOUT,
             "every line of the flooder stored")
    # Structural facts: nobody waited for a full queue; only the flooder
    # was paused for its share; nothing was dropped.
    assert harness.metric(d, "clients_paused_total", reason="queue-full") == 0
    ports = paused_ports(d, "fair-share")
    assert ports and set(ports) == {flooder.local_port}, (
        ports, flooder.local_port)
    assert harness.metric(d, "lines_dropped_total", reason="rate-limit") == 0
    assert harness.metric(d, "lines_dropped_oom_total") == 0
    assert harness.metric(d, "clients_paused_total", reason="rate-limit") == 0
    assert d.stop() == 0, d.log()[-5000:]

    lat = [x for c in ten for x in c.latencies]
    report("fair share: flooder %d lines, paused %d times; ten clients at "
           "%d lines/s: %d lines, all acknowledged and stored; ack latency "
           "(includes the table lock) p50 %.1f ms p99 %.1f ms max %.1f ms"
           % (flooder.lines, len(ports), RATE, len(lat),
              quantile(lat, 0.5) * 1e3, quantile(lat, 0.99) * 1e3,
              max(lat) * 1e3))


def test_without_fair_share_everyone_waits(daemon, fresh_pg, report):
    """fair-share-percent = 0 (the old behaviour): the flooder fills the
    queue and the ten are paused with it; still nothing is lost."""
    pg = fresh_pg
    d = flood_daemon(daemon, pg, "--fair-share-percent", "0")
    ten, flooder, fair_paused = run_flood(d, pg)
    assert not fair_paused
    full = harness.metric(d, "clients_paused_total", reason="queue-full")
    assert full >= 2, full  # the flooder and at least one of the ten
    assert paused_ports(d, "fair-share") == []
    for c in ten:
        assert c.acked == len(c.sent_at), (c.tag, c.acked, len(c.sent_at))
    wait_for(lambda: stored_like(pg, "flood-%") == flooder.lines, TIMEOUT,
             "every line of the flooder stored")
    assert d.stop() == 0, d.log()[-5000:]
    report("fair-share-percent = 0: %d client pauses for a full queue" % full)


# --------------------------------------------------------------------------
# rate limits


def limited_daemon(daemon, pg, *args, listen_opts=""):
    mport, port = harness.free_port(), harness.free_port()
    d = daemon("--metrics-listen", "127.0.0.1:%d" % mport,
               "--listen", "127.0.0.1:%d %s" % (port, listen_opts), *args,
               db=pg.conninfo, listen=False,
               ready_ports=[("127.0.0.1", port)])
    d.mport, d.port = mport, port
    return d


@pytest.fixture
def pg_empty(pg):
    pg.truncate()
    return pg


def test_rate_limit_pause_stores_every_line(daemon, pg_empty):
    pg = pg_empty
    d = limited_daemon(daemon, pg, "--rate-limit-lines-per-sec", "200",
                       "--rate-limit-burst", "100")
    lines = ["pause-%04d" % i for i in range(1000)]
    harness.send_lines(d.port, lines, wait_close=True, timeout=TIMEOUT)
    wait_for(lambda: stored_like(pg, "pause-%") == len(lines), TIMEOUT,
             "every line stored")
    # 900 lines past the burst at 200/s: the connection waited, counted.
    assert harness.metric(d, "clients_paused_total", reason="rate-limit") >= 1
    wait_for(lambda: harness.metric(
        d, "rate_limit_paused_seconds_total") > 0, TIMEOUT,
        "the paused time counted")
    assert harness.metric(d, "lines_dropped_total", reason="rate-limit") == 0
    assert sorted(pg.messages()) == lines
    assert d.stop() == 0, d.log()


def test_rate_limit_drop_counts_exactly_the_excess(daemon, pg_empty):
    pg = pg_empty
    d = limited_daemon(daemon, pg, "--rate-limit-lines-per-sec", "1",
                       "--rate-limit-burst", "100",
                       "--rate-limit-mode", "drop")
    n = 1000
    t0 = time.monotonic()
    harness.send_lines(d.port, ["drop-%04d" % i for i in range(n)],
                       wait_close=True, timeout=TIMEOUT)
    elapsed = time.monotonic() - t0
    dropped = harness.metric(d, "lines_dropped_total", reason="rate-limit")
    wait_for(lambda: harness.metric(d, "lines_committed_total") +
             dropped >= n, TIMEOUT, "the kept lines committed")
    stored = stored_like(pg, "drop-%")
    # Exactly the excess: the burst (and a token a second since) kept,
    # every other line dropped and counted.
    assert stored + dropped == n, (stored, dropped)
    assert 100 <= stored <= 100 + int(elapsed) + 1, (stored, elapsed)
    assert harness.metric(d, "lines_received_total") == n
    assert harness.metric(d, "clients_paused_total", reason="rate-limit") == 0
    # The kept ones are the first ones, in order.
    assert sorted(pg.messages())[:100] == ["drop-%04d" % i
                                           for i in range(100)]
    assert re.search(r"lines over rate-limit-lines-per-sec=1 "
                     r"\(rate-limit-burst=100\) from source 127\.0\.0\.1 "
                     r"dropped", d.log()), d.log()
    assert d.stop() == 0, d.log()


def test_rate_limit_drop_on_ack_listener_pauses(daemon, pg_empty):
    """Dropping a line of an ack=commit sender would make "ok N" lie: the
    listener pauses instead, every line is acknowledged."""
    pg = pg_empty
    d = limited_daemon(daemon, pg, "--rate-limit-lines-per-sec", "100",
                       "--rate-limit-burst", "50", "--rate-limit-mode",
                       "drop", listen_opts="ack=commit")
    n = 200
    with harness.connect(d.port, timeout=TIMEOUT) as s:
        s.sendall(b"".join(b"ackdrop-%04d\n" % i for i in range(n)))
        s.shutdown(socket.SHUT_WR)
        acks = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            acks += data
    assert acks.split()[-1] == str(n).encode(), acks[-100:]
    assert stored_like(pg, "ackdrop-%") == n
    assert harness.metric(d, "lines_dropped_total", reason="rate-limit") == 0
    assert harness.metric(d, "clients_paused_total", reason="rate-limit") >= 1
    assert d.stop() == 0, d.log()


def test_rate_limit_sources_bounded(daemon, pg_empty):
    """rate-limit-sources = 2 and three source addresses: the least
    recently seen is forgotten (counted), the table stays at two."""
    pg = pg_empty
    d = limited_daemon(daemon, pg, "--rate-limit-lines-per-sec", "1000",
                       "--rate-limit-sources", "2",
                       listen_opts="allow=127.0.0.0/8")
    for i, src in enumerate(["127.0.0.2", "127.0.0.3", "127.0.0.4"]):
        with socket.create_connection(("127.0.0.1", d.port), TIMEOUT,
                                      source_address=(src, 0)) as s:
            s.sendall(b"source-%d\n" % i)
            s.shutdown(socket.SHUT_WR)
            harness.wait_peer_close(s)
    wait_for(lambda: stored_like(pg, "source-%") == 3, TIMEOUT,
             "a line from each source")
    assert harness.metric(d, "rate_limit_sources") == 2
    assert harness.metric(d, "rate_limit_evictions_total") == 1
    assert d.stop() == 0, d.log()
