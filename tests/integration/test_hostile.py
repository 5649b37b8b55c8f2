"""Hostile input: connection floods, slowloris senders, huge lines, random
binary, odd bytes, malformed octet-counting frames and SQL-looking text.

Every case checks that
  (a) logsinkd is alive after the attack and exits 0 on SIGTERM,
  (b) its resident memory (VmRSS of the daemon's pid, sampled every 5 ms
      during the attack) stays under a bound stated in the case, and
  (c) a well-behaved client on 127.0.0.1, streaming lines on its own
      connection (and its own listener) during the attack, gets every line
      stored with its exact text.

Attackers use other loopback source addresses (127.0.0.2, 127.0.0.3, ...:
Linux routes all of 127.0.0.0/8 to lo), so per-address limits hit them and
not the good client, and the peer column tells their rows apart.

The RSS bounds come from measurements on a 2-core machine (see each case:
"measured" is the peak seen there) with a wide margin; they are there to
catch memory that grows with the attack (a buffered 100 MiB line, per
connection buffers that are not freed), not to measure the allocator.
Most are 64 MiB (the random-binary case: 64 MiB + its queue-bytes, the
100 MiB line: 48 MiB); an ASan build gets twice the bound and a 16 MiB
quarantine (small_asan_quarantine).

The last two tests guard against daemon defects this suite found
(partial-line-timeout closing a busy client; a listen backlog of 128
instead of 1024), fixed since.

The TLS cases (garbage before the handshake, expired and foreign client
certificates, handshakes that never finish) are in test_tls.py; the Fluent
forward cases (truncated MessagePack, huge declared lengths, deep nesting,
a gzip bomb, garbage, a slow message, unread answers) in test_forward.py.
"""

import codecs
import collections
import functools
import os
import resource
import selectors
import signal
import socket
import threading
import time

import psycopg2
import pytest

import harness
from harness import Streamer, sanitize, wait_for

TIMEOUT = 60.0
MIB = 1 << 20
MAX_LINE = 65536  # the default max-line-bytes
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h; not exported by socket on all
GOOD = "127.0.0.1"


# --------------------------------------------------------------------------
# file descriptors: 5,000 connections need more than the usual 1024 on both
# ends.  The daemon inherits our limits (harness.Daemon uses Popen).

def _raise_nofile(want=16384, most=65536):
    """Soft limit to the hard one (at most `most`); as root, also raise a
    hard limit below `want` (possible up to fs.nr_open)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            pass
    target = most if hard == resource.RLIM_INFINITY else min(hard, most)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


_raise_nofile()


def nofile_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------
# helpers


# Every test starts from an empty logs table (conftest.empty_table).
pytestmark = pytest.mark.usefixtures("empty_table")


@functools.lru_cache(maxsize=None)
def asan_build():
    """True if the daemon under test is built with AddressSanitizer."""
    with open(harness.logsinkd_path(), "rb") as f:
        return b"__asan_init" in f.read()


ASAN_QUARANTINE_MIB = 16
ASAN_BOUND_FACTOR = 2


@pytest.fixture(autouse=True)
def small_asan_quarantine(monkeypatch):
    """ASan keeps freed memory in a quarantine (256 MiB by default), which
    would make every RSS figure that of the quarantine: the daemon started
    by a test (it inherits our environment) gets a small one instead."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") +
                       "quarantine_size_mb=%d" % ASAN_QUARANTINE_MIB)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


class RssSampler(threading.Thread):
    """Samples the daemon's VmRSS every interval seconds until stopped."""

    def __init__(self, pid, interval=0.005):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.baseline = rss_kib(pid)
        self.peak = self.baseline
        self.samples = 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            try:
                kib = rss_kib(self.pid)
            except (OSError, AssertionError):
                return  # gone: the alive check reports it
            self.peak = max(self.peak, kib)
            self.samples += 1
            self.stop_event.wait(self.interval)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.join(10)

    def check(self, case, bound_mib):
        """bound_mib: for a release build; an ASan build gets twice that
        (shadow memory, redzones and the quarantine: see
        small_asan_quarantine)."""
        if asan_build():
            bound_mib *= ASAN_BOUND_FACTOR
        print("\nRSS %s: baseline %.1f MiB, peak %.1f MiB, bound %d MiB%s, "
              "%d samples" % (case, self.baseline / 1024, self.peak / 1024,
                              bound_mib, " (ASan)" if asan_build() else "",
                              self.samples))
        assert self.samples >= 5, "too few RSS samples (%d)" % self.samples
        assert self.peak < bound_mib * 1024, (
            "%s: logsinkd RSS peaked at %.1f MiB, over the bound of %d MiB"
            % (case, self.peak / 1024, bound_mib))


def free_ports(n):
    """n distinct ports that were free a moment ago (harness.free_port()
    may return the same one twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start(daemon, pg, *args, attack="", extra=()):
    """logsinkd with an attacker listener (d.port, listen options attack),
    one more listener per options string in extra (d.extra_ports), a
    listener for the good client (d.good_port) and /metrics (d.mport)."""
    ports = free_ports(3 + len(extra))
    ap, gp, mp = ports[:3]
    listen = []
    for port, opts in [(ap, attack), (gp, "")] + list(zip(ports[3:],
                                                            extra)):
        listen += ["--listen", ("127.0.0.1:%d %s" % (port, opts)).strip()]
    d = daemon(*args, *listen,
               "--metrics-listen", "127.0.0.1:%d" % mp,
               "--stats-interval", 0,
               db=pg.conninfo, listen=False,
               ready_ports=[("127.0.0.1", p) for p in ports])
    d.port, d.good_port, d.mport = ap, gp, mp
    d.extra_ports = ports[3:]
    return d


def wait_open(d, n):
    """Waits until the daemon has exactly n client connections open."""
    wait_for(lambda: harness.metric(d, "connections_open") == n, TIMEOUT,
             "logsink_connections_open == %d" % n)


def attacker(src, port, timeout=TIMEOUT):
    """A connection to the daemon from loopback address src."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((src, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
    except BaseException:
        s.close()
        raise
    return s


def send_from(src, port, data, chunk=MIB):
    """One connection from src: send data, EOF, wait for the daemon to
    close (it has then read every byte)."""
    with attacker(src, port) as s:
        for i in range(0, len(data), chunk):
            s.sendall(data[i:i + chunk])
        s.shutdown(socket.SHUT_WR)
        harness.wait_peer_close(s, TIMEOUT)


def handled(d):
    """Connections the daemon has taken from its accept queue."""
    m = harness.scrape_metrics(d)
    return (m["logsink_connections_accepted_total"]
            + m["logsink_connections_refused_total"])


def open_many(d, sources, n, batch=64):
    """n connections to the attacker port, round-robin over the source
    addresses.  After each batch, waits until the daemon has accepted (or
    refused) them all.  Pacing: the listen backlog is only 128 (logsinkd
    listen()s with 1024, then evconnlistener_new(..., -1, fd) makes
    libevent listen() again with its default, 128), and a burst that
    overflows it costs a 1 s SYN retransmit per dropped connection."""
    socks = []
    try:
        base = handled(d)
        for i in range(n):
            socks.append(attacker(sources[i % len(sources)], d.port))
            if len(socks) % batch == 0 or len(socks) == n:
                k = len(socks)
                wait_for(lambda: handled(d) >= base + k, TIMEOUT,
                         "logsinkd to take %d connections" % k)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def peer_closed(s, timeout):
    """True if the peer closed s (EOF or reset) within timeout (0: now).
    The daemon never writes to these connections."""
    old = s.gettimeout()
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (socket.timeout, BlockingIOError):
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.settimeout(old)


def messages_from(pg, peer):
    return pg.query("select message from public.logs where host(peer) = %s",
                    (peer,))


def stored_from(pg, peer):
    return collections.Counter(r[0] for r in messages_from(pg, peer))


def wait_rows_from(pg, peer, n):
    wait_for(lambda: pg.scalar("select count(*) from public.logs "
                               "where host(peer) = %s", (peer,)) >= n,
             TIMEOUT, "%d rows from %s" % (n, peer),
             ignore=(psycopg2.Error,))


def wait_queue_empty(d):
    wait_for(lambda: harness.metric(d, "queue_lines") == 0, TIMEOUT,
             "logsink_queue_lines == 0")


class GoodClient:
    """A well-behaved sender on 127.0.0.1: streams numbered lines (about
    500 a second, at most 20,000) on one connection for the whole attack."""

    def __init__(self, d, tag="good"):
        self.d = d
        self.streamer = Streamer(d.good_port, tag, chunk=10, pause=0.02,
                                 max_lines=20000, host=GOOD)

    def __enter__(self):
        self.streamer.start()
        assert self.streamer.first_chunk.wait(TIMEOUT)
        assert self.streamer.error is None, self.streamer.error
        return self

    def __exit__(self, *exc):
        self.streamer.stop()

    def check(self, pg):
        sent = self.streamer.sent
        assert len(sent) > 0
        like = self.streamer.tag + "-%"

        def count():
            return pg.scalar("select count(*) from public.logs where "
                             "host(peer) = %s and message like %s",
                             (GOOD, like))
        wait_for(lambda: count() >= len(sent), TIMEOUT,
                 "%d lines of the good client" % len(sent),
                 ignore=(psycopg2.Error,))
        # Everything the daemon has read is committed: the callers compare
        # the attackers' rows after this.
        wait_queue_empty(self.d)
        got = collections.Counter(r[0] for r in pg.query(
            "select message from public.logs where host(peer) = %s and "
            "message like %s", (GOOD, like)))
        want = collections.Counter(sent)
        assert got == want, (
            "good client: sent %d lines, stored %d; missing %r, "
            "unexpected %r" % (len(sent), sum(got.values()),
                               list(want - got)[:5], list(got - want)[:5]))


def finish(d):
    """(a): alive after the attack, exits 0 on SIGTERM."""
    assert d.alive(), "logsinkd died during the attack\n%s" % d.log()
    rc = d.stop()
    assert rc == 0, "logsinkd exited %s on SIGTERM\n%s" % (rc, d.log())


# --------------------------------------------------------------------------
# 1. many idle connections

IDLE_CONNS = 5000
IDLE_SOURCES = ["127.0.0.%d" % i for i in range(2, 12)]  # 500 each


def test_5000_idle_connections(pg, daemon):
    if nofile_limit() < IDLE_CONNS + 1000:
        pytest.fail("RLIMIT_NOFILE is %d: %d connections need more (raise "
                    "the hard limit)" % (nofile_limit(), IDLE_CONNS),
                    pytrace=False)
    d = start(daemon, pg)
    socks = []
    try:
        with GoodClient(d) as good, RssSampler(d.pid) as rss:
            socks = open_many(d, IDLE_SOURCES, IDLE_CONNS)
            wait_for(lambda: harness.metric(d, "connections_open")
                     >= IDLE_CONNS + 1,
                     TIMEOUT, "logsink_connections_open >= %d" % IDLE_CONNS)
            m = harness.scrape_metrics(d)
            assert m["logsink_connections_open"] >= IDLE_CONNS
            assert m["logsink_connections_refused_total"] == 0
            # The idle connections are still open (nothing closed them).
            sel = selectors.DefaultSelector()
            for s in socks:
                sel.register(s, selectors.EVENT_READ)
            closed = sel.select(timeout=0.5)
            sel.close()
            assert closed == [], "%d idle connections were closed" % len(
                closed)
            for s in socks:
                s.close()
            socks = []
            wait_open(d, 1)
        good.check(pg)
        # Measured (2 cores): baseline 9.5 MiB, peak 21-25 MiB with 5,000
        # connections (about 3 KiB each); ASan 63 MiB.
        rss.check("5000 idle connections", 64)
    finally:
        for s in socks:
            s.close()
    assert pg.scalar("select count(*) from public.logs where host(peer) "
                     "<> %s", (GOOD,)) == 0
    finish(d)


# --------------------------------------------------------------------------
# 2. connection floods past max-connections and max-connections-per-ip

FLOOD_MAX = 200
FLOOD_CONNS = 1000
FLOOD_SOURCES = ["127.0.0.%d" % i for i in range(2, 6)]


def test_flood_past_max_connections(pg, daemon):
    d = start(daemon, pg, "--max-connections", FLOOD_MAX)
    socks = []
    try:
        with GoodClient(d) as good, RssSampler(d.pid) as rss:
            wait_open(d, 1)  # the good client, connected before the flood
            room = FLOOD_MAX - 1
            latency = []
            for i in range(FLOOD_CONNS):
                s = attacker(FLOOD_SOURCES[i % len(FLOOD_SOURCES)], d.port)
                socks.append(s)
                if i < room:
                    continue
                # Over the limit: accepted by the kernel, closed by the
                # daemon at once (we never sent a byte).
                t0 = time.monotonic()
                assert peer_closed(s, 10), (
                    "connection %d (over max-connections %d) not closed "
                    "within 10 s" % (i + 1, FLOOD_MAX))
                latency.append(time.monotonic() - t0)
            m = harness.scrape_metrics(d)
            assert m["logsink_connections_refused_total"] == FLOOD_CONNS - room
            assert m["logsink_connections_open"] == FLOOD_MAX
            # The first ones (within the limit) are still open.
            sel = selectors.DefaultSelector()
            for s in socks[:room]:
                sel.register(s, selectors.EVENT_READ)
            assert sel.select(timeout=0.5) == []
            sel.close()
            print("\nrefused connections closed after %.1f ms at most "
                  "(median %.2f ms)" % (max(latency) * 1000,
                                        sorted(latency)[len(latency) // 2]
                                        * 1000))
            for s in socks:
                s.close()
            socks = []
            wait_open(d, 1)
            # Room again: a new connection is accepted and kept.
            with attacker(FLOOD_SOURCES[0], d.port) as s:
                s.sendall(b"after the flood\n")
                assert not peer_closed(s, 0.2)
        good.check(pg)
        # Measured: baseline 9.5 MiB, peak 10-10.4 MiB; ASan 21 MiB.
        rss.check("flood past max-connections", 64)
    finally:
        for s in socks:
            s.close()
    wait_rows_from(pg, FLOOD_SOURCES[0], 1)
    assert stored_from(pg, FLOOD_SOURCES[0]) == {"after the flood": 1}
    assert harness.metric(d, "connections_refused_total") == FLOOD_CONNS - room
    finish(d)


PER_IP = 50


def test_flood_past_max_connections_per_ip(pg, daemon):
    d = start(daemon, pg, "--max-connections-per-ip", PER_IP)
    socks = []
    try:
        with GoodClient(d) as good, RssSampler(d.pid) as rss:
            socks = open_many(d, ["127.0.0.2"], PER_IP)
            wait_open(d, PER_IP + 1)
            extra = attacker("127.0.0.2", d.port)
            socks.append(extra)
            assert peer_closed(extra, 10), (
                "connection %d from 127.0.0.2 (over max-connections-per-ip "
                "%d) not closed within 10 s" % (PER_IP + 1, PER_IP))
            assert harness.metric(d, "connections_refused_total") == 1
            sel = selectors.DefaultSelector()
            for s in socks[:PER_IP]:
                sel.register(s, selectors.EVENT_READ)
            assert sel.select(timeout=0.5) == []
            sel.close()
            # Other addresses still get in, 127.0.0.1 (the good client's)
            # and another attacker address.
            send_from("127.0.0.3", d.port, b"other address\n")
            harness.send_lines(d.port, ["from 127.0.0.1 too"],
                               wait_close=True)
            assert harness.metric(d, "connections_refused_total") == 1
        good.check(pg)
        # Measured: baseline 9.5 MiB, peak 9.7 MiB; ASan 19 MiB.
        rss.check("flood past max-connections-per-ip", 64)
    finally:
        for s in socks:
            s.close()
    wait_rows_from(pg, "127.0.0.3", 1)
    assert stored_from(pg, "127.0.0.3") == {"other address": 1}
    assert pg.scalar("select count(*) from public.logs where message = "
                     "'from 127.0.0.1 too'") == 1
    finish(d)


# --------------------------------------------------------------------------
# 3. slowloris: unfinished lines trickled a byte at a time

SLOW_CONNS = 200
SLOW_TIMEOUT = 3  # --partial-line-timeout, seconds
SLOW_SOURCES = ["127.0.0.2", "127.0.0.3"]
SLOW_BODY = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def test_slowloris(pg, daemon):
    d = start(daemon, pg, "--partial-line-timeout", "%ds" % SLOW_TIMEOUT)
    socks, heads, sent, started, closed_after = [], [], [], [], {}
    try:
        with GoodClient(d) as good, RssSampler(d.pid) as rss:
            socks = open_many(d, SLOW_SOURCES, SLOW_CONNS)
            for i, s in enumerate(socks):
                head = b"slow-%03d:" % i  # identifies the row
                s.sendall(head)
                heads.append(head)
                sent.append(len(head))
                started.append(time.monotonic())
            sel = selectors.DefaultSelector()
            for i, s in enumerate(socks):
                sel.register(s, selectors.EVENT_READ, i)
            # One more byte to each open connection every 0.5 s (the
            # attack's own pace), at most len(SLOW_BODY) rounds (31 s).
            for rnd in range(len(SLOW_BODY)):
                if len(closed_after) == SLOW_CONNS:
                    break
                for i, s in enumerate(socks):
                    if i in closed_after:
                        continue
                    try:
                        s.send(SLOW_BODY[rnd:rnd + 1])
                        sent[i] += 1
                    except OSError:  # reset: the daemon closed it
                        closed_after[i] = time.monotonic() - started[i]
                        sel.unregister(s)
                until = time.monotonic() + 0.5
                while time.monotonic() < until:
                    for key, _ in sel.select(until - time.monotonic()):
                        i = key.data
                        closed_after[i] = time.monotonic() - started[i]
                        sel.unregister(key.fileobj)
            sel.close()
        still_open = sorted(set(range(SLOW_CONNS)) - set(closed_after))
        assert still_open == [], (
            "%d slowloris connections still open after %d s: %r"
            % (len(still_open), len(SLOW_BODY) // 2, still_open[:10]))
        print("\nslowloris connections closed %.1f-%.1f s after their "
              "first byte" % (min(closed_after.values()),
                              max(closed_after.values())))
        # Not before partial-line-timeout; at most one sweep period (1 s)
        # after it, plus a generous margin for a loaded machine.
        assert min(closed_after.values()) >= SLOW_TIMEOUT - 0.1
        assert max(closed_after.values()) < SLOW_TIMEOUT + 12
        wait_open(d, 0)
        assert harness.metric(d, "connections_timed_out_total") >= SLOW_CONNS
        good.check(pg)
        # Measured: baseline 9.4 MiB, peak 9.9-10.1 MiB; ASan 21 MiB.
        rss.check("slowloris", 64)
    finally:
        for s in socks:
            s.close()
    # The part received is stored: one row per connection, its head and
    # a prefix of the bytes trickled after it.
    wait_for(lambda: pg.scalar("select count(*) from public.logs where "
                               "message like 'slow-%%'") >= SLOW_CONNS,
             TIMEOUT, "%d slowloris rows" % SLOW_CONNS)
    rows = [r[0] for r in pg.query(
        "select message from public.logs where host(peer) <> %s", (GOOD,))]
    assert len(rows) == SLOW_CONNS, rows[:5]
    by_conn = {}
    for r in rows:
        i = int(r[5:8])
        assert i not in by_conn, "two rows for connection %d" % i
        by_conn[i] = r
        full = (heads[i] + SLOW_BODY).decode()
        assert full.startswith(r) and len(heads[i]) <= len(r) <= sent[i], (
            "connection %d: stored %r, sent %r" % (i, r, full[:sent[i]]))
    assert sorted(by_conn) == list(range(SLOW_CONNS))
    finish(d)


# --------------------------------------------------------------------------
# 4. a 100 MiB line without a newline

HUGE = 100 * MIB


def test_100mib_line_without_newline(pg, daemon):
    d = start(daemon, pg, attack="format=raw")
    pattern = b"0123456789abcdef" * (MIB // 16)
    with GoodClient(d) as good, RssSampler(d.pid) as rss:
        with attacker("127.0.0.2", d.port) as s:
            for _ in range(HUGE // MIB):
                s.sendall(pattern)
            s.shutdown(socket.SHUT_WR)
            harness.wait_peer_close(s, TIMEOUT)
        after = ["after-huge-%03d" % i for i in range(100)]
        send_from("127.0.0.3", d.port,
                  "".join(l + "\n" for l in after).encode())
    wait_rows_from(pg, "127.0.0.2", 1)
    wait_rows_from(pg, "127.0.0.3", len(after))
    good.check(pg)
    # Measured: baseline 9.4 MiB, peak 9.6-9.8 MiB (the line is never
    # buffered whole: a read stops at max-line-bytes + 64 KiB); ASan 38 MiB.
    # Buffering the line would take over 100 MiB.
    rss.check("100 MiB line", 48)
    assert pg.query("select octet_length(message) from public.logs where "
                    "host(peer) = '127.0.0.2'") == [(MAX_LINE,)]
    assert stored_from(pg, "127.0.0.2") == {
        pattern[:MAX_LINE].decode(): 1}
    assert stored_from(pg, "127.0.0.3") == collections.Counter(after)
    assert harness.metric(d, "lines_truncated_total") == 1
    finish(d)


# --------------------------------------------------------------------------
# 5. random binary

RANDOM_BYTES = 20 * MIB
RANDOM_AUTO_BYTES = 4 * MIB
RANDOM_QUEUE_MIB = 16


def _one_fffd_per_byte(err):
    return "\ufffd", err.start + 1


codecs.register_error("logsink-per-byte", _one_fffd_per_byte)


def fast_sanitize_lines(data):
    """harness.sanitize() of every LF-separated piece of data, at C speed
    (sanitize() walks bytes in Python: minutes for 20 MiB).  Python's
    UTF-8 decoder rejects the same sequences (Unicode table 3-7); the
    error handler replaces one byte and resumes at the next, as the daemon
    does; NUL is replaced afterwards.  LF is ASCII, so decoding before
    splitting changes nothing."""
    text = data.decode("utf-8", "logsink-per-byte").replace("\0", "\ufffd")
    return [p[:-1] if p.endswith("\r") else p for p in text.split("\n")]


def expected_lf_rows(data):
    """What LF framing stores for data (then EOF): one row per LF-ended
    piece and the rest, a final CR removed, empty ones skipped, invalid
    UTF-8 and NUL replaced."""
    pieces = data.split(b"\n")
    assert max(len(p) for p in pieces) <= MAX_LINE  # no cut lines here
    texts = fast_sanitize_lines(data)
    # The fast path agrees with the reference on the first 2,000 pieces.
    assert texts[:2000] == [sanitize(p) for p in pieces[:2000]]
    return collections.Counter(t for t in texts if t)


def test_random_binary(pg, daemon):
    # Exact text on a raw LF listener; on an auto one (framing and syslog /
    # JSON parsing) at least one row per line, all accepted by PostgreSQL.
    d = start(daemon, pg, "--queue-bytes", "%dMiB" % RANDOM_QUEUE_MIB,
              attack="framing=lf format=raw", extra=[""])
    data = os.urandom(RANDOM_BYTES)
    auto_data = b"#" + os.urandom(RANDOM_AUTO_BYTES - 1)  # '#': LF framing
    want = expected_lf_rows(data)
    want_auto = sum(expected_lf_rows(auto_data).values())
    with GoodClient(d) as good, RssSampler(d.pid) as rss:
        t = threading.Thread(target=send_from, daemon=True,
                             args=("127.0.0.3", d.extra_ports[0], auto_data))
        t.start()
        send_from("127.0.0.2", d.port, data)
        t.join(TIMEOUT)
        assert not t.is_alive()
        wait_rows_from(pg, "127.0.0.2", sum(want.values()))
        wait_rows_from(pg, "127.0.0.3", want_auto)
    good.check(pg)
    # 64 MiB + queue-bytes.  Measured: baseline 9.6 MiB, peak 20-22 MiB;
    # ASan 48 MiB.
    rss.check("random binary", 64 + RANDOM_QUEUE_MIB)
    got = stored_from(pg, "127.0.0.2")  # psycopg2 decodes: valid UTF-8
    assert got == want, (
        "%d rows stored, %d expected; first differences: missing %r, "
        "unexpected %r" % (sum(got.values()), sum(want.values()),
                           list(want - got)[:3], list(got - want)[:3]))
    auto_rows = messages_from(pg, "127.0.0.3")
    assert len(auto_rows) == want_auto
    assert all(isinstance(r[0], str) for r in auto_rows)
    assert pg.scalar("select max(octet_length(message)) from public.logs") \
        <= MAX_LINE
    m = harness.scrape_metrics(d)
    assert m["logsink_lines_rejected_total"] == 0
    assert m["logsink_lines_dropped_oom_total"] == 0
    assert m["logsink_lines_sanitized_total"] > 0
    finish(d)


# --------------------------------------------------------------------------
# 6. special bytes, one per line

SPECIAL_LINES = [
    b"nul in the \x00 middle",
    b"\x00",
    b"\x00\x00 leading nuls",
    b"cr in the \r middle",
    b"cr at the end\r",
    b"two crs at the end\r\r",
    b"\r",                                   # empty once the CR goes
    b"",                                     # empty: skipped
    b"lone high surrogate \xed\xa0\x80 here",
    b"lone low surrogate \xed\xbf\xbf",
    b"surrogate pair as cesu-8 \xed\xa0\xbd\xed\xb8\x80",
    b"overlong slash \xc0\xaf",
    b"overlong 3-byte slash \xe0\x80\xaf",
    b"overlong 4-byte slash \xf0\x80\x80\xaf",
    b"overlong nul \xc0\x80",
    b"emoji \xf0\x9f\x98\x80 grin",
    b"emoji cut at the end \xf0\x9f\x98",
    b"rtl mark \xe2\x80\x8f here",
    b"rtl override \xe2\x80\xae desrever",
    b"bom \xef\xbb\xbf in the middle",
    b"zero width joiner \xe2\x80\x8d and space \xe2\x80\x8b",
    b"max code point \xf4\x8f\xbf\xbf",
    b"above max \xf4\x90\x80\x80",
    b"5-byte lead \xf8\x88\x80\x80\x80",
    b"fe ff \xfe\xff",
    b"lone continuations \x80\xbf",
    b"c1 controls \xc2\x80\xc2\x9f",
    b"ascii controls \x01\x07\x08\x0b\x0c\x1b[31m\x7f",
    b"tab\tseparated\tvalues",
]


def test_special_bytes(pg, daemon):
    # The default listener (framing and format auto): every line starts
    # with a plain word or a NUL, so none is taken for syslog or JSON.
    d = start(daemon, pg)
    want = collections.Counter(t for t in map(sanitize, SPECIAL_LINES) if t)
    assert sum(want.values()) == len(SPECIAL_LINES) - 2
    with GoodClient(d) as good, RssSampler(d.pid) as rss:
        send_from("127.0.0.2", d.port, b"\n".join(SPECIAL_LINES) + b"\n")
        # And each line on a connection of its own, ended by EOF only.
        for line in SPECIAL_LINES:
            send_from("127.0.0.3", d.port, line)
        wait_rows_from(pg, "127.0.0.2", sum(want.values()))
        wait_rows_from(pg, "127.0.0.3", sum(want.values()))
    good.check(pg)
    # Measured: baseline 9.5 MiB, peak 9.7 MiB; ASan 19 MiB.
    rss.check("special bytes", 64)
    for peer in ("127.0.0.2", "127.0.0.3"):
        got = stored_from(pg, peer)
        assert got == want, (
            "from %s: missing %r, unexpected %r"
            % (peer, sorted(want - got), sorted(got - want)))
    finish(d)


# --------------------------------------------------------------------------
# 7. malformed octet-counting frames

BIG_FRAME = 1000000
BIG_PAYLOAD = (b"<13>" + b"0123456789" * (BIG_FRAME // 10))[:BIG_FRAME]

# (listener, bytes sent then EOF, rows stored, bad frames counted).
# "auto" decides the framing from the first bytes: octet counting needs
# 1-9 digits, a space and '<'; anything else is LF framing from the start.
# After a valid frame, a header that is not a length is a bad frame and the
# connection continues in LF framing from that byte on.
OCTET_CASES = [
    ("auto", b"999999999999 <13>x\n", ["999999999999 <13>x"], 0),
    ("auto", b"-5 <13>x\n", ["-5 <13>x"], 0),
    ("auto", b"0 <13>x\n", ["0 <13>x"], 0),
    ("auto", b"12", ["12"], 0),
    ("auto", b"7 <13>abc999999999999 <13>x\n",
     ["<13>abc", "999999999999 <13>x"], 1),
    ("auto", b"7 <13>abc-5 <13>x\n5 <13>y\n",
     ["<13>abc", "-5 <13>x", "5 <13>y"], 1),
    ("auto", b"7 <13>abc0 <13>x\n", ["<13>abc", "0 <13>x"], 1),
    ("auto", b"4 <1>a12", ["<1>a"], 1),           # header cut by EOF
    ("auto", b"100 <13>short", ["<13>short"], 1),  # frame cut by EOF
    ("auto", b"999999999 <13>x", ["<13>x"], 1),   # 999,999,999 declared
    ("auto", b"%d " % BIG_FRAME + BIG_PAYLOAD + b"9 <13>after",
     [BIG_PAYLOAD[:MAX_LINE].decode(), "<13>after"], 0),
    ("octet", b"999999999999 <13>x\n", ["999999999999 <13>x"], 1),
    ("octet", b"-5 <13>x\n", ["-5 <13>x"], 1),
    ("octet", b"0 <13>x\n", ["0 <13>x"], 1),
    ("octet", b"12", [], 1),
    ("octet", b"9 <13>hello4 <1>a", ["<13>hello", "<1>a"], 0),
]


def test_octet_counting_frames(pg, daemon):
    d = start(daemon, pg, attack="format=raw",
              extra=["framing=octet format=raw"])
    port = {"auto": d.port, "octet": d.extra_ports[0]}
    bad_before = harness.metric(d, "bad_frames_total")
    with GoodClient(d) as good, RssSampler(d.pid) as rss:
        for i, (listener, data, _, _) in enumerate(OCTET_CASES):
            # Each from its own address (the peer column tells them
            # apart); send_from() waits for the daemon to close: no hang.
            send_from("127.0.0.%d" % (10 + i), port[listener], data)
        for i, (_, _, rows, _) in enumerate(OCTET_CASES):
            wait_rows_from(pg, "127.0.0.%d" % (10 + i), len(rows))
        wait_queue_empty(d)
    good.check(pg)
    # Measured: baseline 9.5 MiB, peak 9.8 MiB; ASan 22 MiB.
    rss.check("octet-counting frames", 64)
    for i, (listener, data, rows, _) in enumerate(OCTET_CASES):
        got = stored_from(pg, "127.0.0.%d" % (10 + i))
        assert got == collections.Counter(rows), (
            "%s listener, sent %r: stored %r"
            % (listener, data[:40], [r[:40] for r in got]))
    m = harness.scrape_metrics(d)
    assert m["logsink_bad_frames_total"] - bad_before == sum(
        c[3] for c in OCTET_CASES)
    assert m["logsink_lines_truncated_total"] == 1
    finish(d)


# --------------------------------------------------------------------------
# 8. SQL-looking payloads

SQL_LINES = [
    "'); DROP TABLE logs; --",
    "Robert'); DROP TABLE students;--",
    "'; COPY logs TO PROGRAM 'id'; --",
    "\\copy logs to '/tmp/stolen'",
    "\\.",                       # COPY's end-of-data marker
    "\\.\\.",
    "before \\. after",
    "\\N",                       # COPY's NULL
    "\\\\N",
    "\\x00",
    "\\000 octal nul",
    "$$",
    "$$ language plpgsql; drop table logs; $$",
    "$tag$ body $tag$",
    "E'\\\\x'",
    "E'\\x41'",
    "tab\there\tand\\tback\\\\slash",
    "\\",
    "\\\\",
    "trailing backslash \\",
    "literal \\n and \\r and \\t",
    "\"; select pg_sleep(10); --",
    "1; select 1/0",
    "%s %d %n %% %(x)s",
    "?, ?, $1, :name",
    "/* comment */ -- comment",
    "\u0000 spelled out: \\u0000",
]


def test_sql_looking_payloads(pg, daemon):
    d = start(daemon, pg)
    lines = [l.encode() for l in SQL_LINES] + [b"real nul \x00 '); --"]
    want = collections.Counter(sanitize(l) for l in lines)
    assert want["\\."] == 1 and want["\\N"] == 1
    with GoodClient(d) as good, RssSampler(d.pid) as rss:
        send_from("127.0.0.2", d.port, b"\n".join(lines) + b"\n")
        # And \. as the very first and the very last line of a stream.
        send_from("127.0.0.3", d.port, b"\\.\nmiddle\n\\.")
        wait_rows_from(pg, "127.0.0.2", len(lines))
        wait_rows_from(pg, "127.0.0.3", 3)
    good.check(pg)
    # Measured: baseline 9.4 MiB, peak 9.6 MiB; ASan 19 MiB.
    rss.check("SQL-looking payloads", 64)
    got = stored_from(pg, "127.0.0.2")
    assert got == want, "missing %r, unexpected %r" % (
        sorted(want - got), sorted(got - want))
    assert stored_from(pg, "127.0.0.3") == {"\\.": 2, "middle": 1}
    assert pg.scalar("select to_regclass('public.logs') is not null")
    assert pg.scalar("select to_regclass('public.students')") is None
    assert pg.scalar("select count(*) from public.logs where message is "
                     "null") == 0
    assert harness.metric(d, "lines_rejected_total") == 0
    finish(d)


# --------------------------------------------------------------------------
# Daemon defects found by this suite, fixed since.


def test_partial_line_timeout_spares_a_busy_client(pg, daemon):
    """Each write ends one line and starts the next: no line waits longer
    than 0.2 s, so partial-line-timeout must not close the connection."""
    timeout_s, writes = 2, 25  # 5 s of writes, 2.5 x the timeout
    d = start(daemon, pg, "--partial-line-timeout", "%ds" % timeout_s)
    with attacker("127.0.0.2", d.port) as s:
        s.sendall(b"busy-000 first half ")
        for i in range(1, writes + 1):
            time.sleep(0.2)  # the client's pace, not synchronisation
            assert not peer_closed(s, 0), (
                "closed by the daemon after %d complete lines (%.1f s)"
                % (i - 1, (i - 1) * 0.2))
            s.sendall(b"second half\nbusy-%03d first half " % i)
        s.sendall(b"second half\n")
        s.shutdown(socket.SHUT_WR)
        harness.wait_peer_close(s, TIMEOUT)
    want = {"busy-%03d first half second half" % i: 1
            for i in range(writes + 1)}
    wait_rows_from(pg, "127.0.0.2", len(want))
    assert stored_from(pg, "127.0.0.2") == want
    assert harness.metric(d, "connections_timed_out_total") == 0
    finish(d)


def test_listen_backlog_holds_a_burst(pg, daemon):
    """While the daemon's loop is stalled (SIGSTOP), the kernel completes
    the handshake of up to backlog connections; 400 must fit in 1024."""
    burst = 400
    d = start(daemon, pg)
    socks = []
    d.signal(signal.SIGSTOP)
    try:
        for _ in range(burst):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind(("127.0.0.2", 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", d.port))
        # Loopback handshakes complete in microseconds; a dropped SYN is
        # retried only after 1 s.
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_WRITE)
        done = set()
        until = time.monotonic() + 0.5
        while time.monotonic() < until:
            for key, _ in sel.select(until - time.monotonic()):
                done.add(key.fileobj)
                sel.unregister(key.fileobj)
        sel.close()
        established = sum(1 for s in done if s.getsockopt(
            socket.SOL_SOCKET, socket.SO_ERROR) == 0)
    finally:
        d.signal(signal.SIGCONT)
        for s in socks:
            s.close()
    print("\n%d of %d connections established while logsinkd was stopped"
          % (established, burst))
    assert established == burst
    finish(d)
