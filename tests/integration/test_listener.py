"""The listener's seams (src/listener.c, listener_tls.c, ack.c).

- Acks through the loop: a commit only links its senders on the ack
  module's completion list; one loop callback tells the clients.  A
  sender that half-closes right after its lines must still get the last
  "ok N" before the daemon closes, and senders that vanish while their
  lines are being committed must not trip the daemon (the ref outlives
  the client; the client is freed by the reaper, not by the commit).
- Idle clients hold no big buffers: a client that sent one long JSON
  line does not keep the parser's scratch (about twice that line) while
  it stays connected.
"""

import os
import re
import socket
import struct
import threading

import pytest

import harness
from harness import wait_for

TIMEOUT = harness.DEFAULT_TIMEOUT


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def asan_build():
    with open(harness.logsinkd_path(), "rb") as f:
        return b"__asan_init" in f.read()


@pytest.fixture
def no_asan_quarantine(monkeypatch):
    """ASan keeps freed memory in a quarantine (256 MiB by default): RSS
    would show what was freed as held.  The daemon inherits our
    environment; without a quarantine freed chunks are reused as by
    glibc's malloc."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") +
                       "quarantine_size_mb=0")


def read_acks_to_eof(sock):
    """Reads "ok N" lines until the daemon closes; returns the N's."""
    buf, acks = b"", []
    while True:
        data = sock.recv(4096)
        if not data:
            break
        buf += data
        *full, buf = buf.split(b"\n")
        for a in full:
            assert a.startswith(b"ok "), a
            acks.append(int(a.split()[1]))
    assert buf == b"", "unterminated ack %r" % buf
    return acks


def test_last_ack_before_close(pg, daemon):
    """50 ack=commit senders send 100 lines each and half-close at once:
    each reads acks until the daemon closes, and the last one must cover
    all its lines: EOF waits in ACKWAIT until the ack drain has told the
    client, now that commits reach it only through the loop.  (The
    narrowest case, a commit landing in the same loop pass as the EOF,
    is not forced here: it cannot be from outside.)"""
    pg.truncate()
    port = harness.free_port()
    d = daemon("--listen", "127.0.0.1:%d ack=commit" % port,
               "--flush-interval-ms", "5", db=pg.conninfo, listen=False,
               ready_ports=[("127.0.0.1", port)])
    nsend, nlines = 50, 100
    results, errors = {}, []

    def sender(i):
        try:
            with harness.connect(port) as s:
                s.sendall(b"".join(b"eofack-%02d-%03d\n" % (i, j)
                                   for j in range(nlines)))
                s.shutdown(socket.SHUT_WR)
                results[i] = read_acks_to_eof(s)
        except Exception as e:  # reported below, with the others
            errors.append("sender %d: %r" % (i, e))

    threads = [threading.Thread(target=sender, args=(i,))
               for i in range(nsend)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors, errors
    short = {i: a[-1:] for i, a in results.items()
             if not a or a[-1] != nlines}
    assert len(results) == nsend and not short, (
        "senders closed without 'ok %d': %r" % (nlines, short))
    for i, a in results.items():
        assert a == sorted(a), "sender %d: acks went backwards %r" % (i, a)
    assert pg.count() == nsend * nlines
    assert d.alive()
    assert d.stop() == 0, "exit status (ASan: a leak or a bad free at exit)"


def test_senders_vanish_while_committing(pg, daemon):
    """ack=commit senders that reset their connection right after sending:
    their lines are still stored (the batches hold the ack ref), the
    daemon stays up, and a well-behaved sender after them is acked."""
    pg.truncate()
    port = harness.free_port()
    d = daemon("--listen", "127.0.0.1:%d ack=commit" % port,
               db=pg.conninfo, listen=False,
               ready_ports=[("127.0.0.1", port)])
    nsend, nlines = 100, 50
    for i in range(nsend):
        s = harness.connect(port)
        s.sendall(b"".join(b"vanish-%03d-%03d\n" % (i, j)
                           for j in range(nlines)))
        # RST instead of FIN: the daemon sees an error, not an EOF.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()
    wait_for(lambda: pg.count() == nsend * nlines, TIMEOUT,
             "%d lines of the vanished senders" % (nsend * nlines))
    with harness.connect(port) as s:
        s.sendall(b"after-1\nafter-2\n")
        s.shutdown(socket.SHUT_WR)
        assert read_acks_to_eof(s)[-1:] == [2]
    assert d.alive()
    assert d.stop() == 0, "exit status (ASan: a leak or a bad free at exit)"


# A JSON line whose message has a \u0000 escape: the parser rewrites the
# object (jsonb rejects \u0000) and unescapes the message into its
# scratch, so the scratch grows to about twice the line (128 KiB for a
# 60 KiB line: buf doubles from 256 bytes).
LONG_LINE_BYTES = 60 * 1024
SCRATCH_BYTES = 128 * 1024
NCONN = 300
GROUP = 20  # long lines in flight at once: bounds the queue's high water


def long_json_line(i):
    head = b'{"host":"h%d","msg":"long \\u0000 ' % i
    tail = b'"}\n'
    return head + b"x" * (LONG_LINE_BYTES - len(head) - len(tail)) + tail


def test_idle_connections_release_parser_scratch(pg, daemon,
                                                 no_asan_quarantine):
    """300 connections each send one 60 KiB JSON line, then stay open and
    idle.  Keeping the parser scratch would hold 300 x 128 KiB = 37.5 MiB
    (measured with the scratch kept: VmRSS grew by 40 MiB).  Released
    after the message (capacity > 16 KiB) it grew by 4.6 MiB, and by
    3.9 MiB with 600 connections: not per connection, but the one-time
    high water of the queue, COPY and read buffers (the warm-up pays most
    of it).  The bound is a third of what keeping the scratch costs."""
    pg.truncate()
    d = daemon(db=pg.conninfo)
    assert len(long_json_line(0)) == LONG_LINE_BYTES
    # Warm-up: the queue, COPY and read buffers for GROUP long lines at
    # once reach their high water here, before the baseline.
    warm = [harness.connect(d.port) for _ in range(GROUP)]
    for i, s in enumerate(warm):
        s.sendall(long_json_line(i))
    wait_for(lambda: pg.count() == GROUP, TIMEOUT, "the warm-up lines")
    for s in warm:
        s.close()
    # Every connection is accepted and has sent a short line.
    socks = [harness.connect(d.port) for _ in range(NCONN)]
    for i, s in enumerate(socks):
        s.sendall(b'{"msg":"short %d"}\n' % i)
    wait_for(lambda: pg.count() == GROUP + NCONN, TIMEOUT, "the short lines")
    before = rss_kib(d.pid)
    for g in range(0, NCONN, GROUP):
        for i in range(g, g + GROUP):
            socks[i].sendall(long_json_line(i))
        want = GROUP + NCONN + g + GROUP
        wait_for(lambda: pg.count() == want, TIMEOUT,
                 "%d long lines stored" % (g + GROUP))
    after = rss_kib(d.pid)
    kept_without_release = NCONN * SCRATCH_BYTES // 1024
    bound = kept_without_release // 3
    print("\nRSS with %d idle connections that each sent a %d KiB JSON "
          "line: %d -> %d KiB (+%d KiB; keeping the scratch would add "
          "%d KiB; bound %d KiB)%s"
          % (NCONN, LONG_LINE_BYTES // 1024, before, after, after - before,
             kept_without_release, bound, " (ASan)" if asan_build() else ""))
    assert after - before < bound, (
        "idle connections hold %d KiB more after one long line each "
        "(bound %d KiB): the parser scratch is kept"
        % (after - before, bound))
    for s in socks:
        s.close()
    assert d.stop() == 0, "exit status (ASan: a leak or a bad free at exit)"


def test_dispatch_trace_and_reap(pg, daemon):
    """At log-level debug each event is traced "cN peer: EVENT in STATE"
    as it enters the dispatch, and a closed client goes through CLOSING.
    The socket is closed only when the reaper frees the client, so the
    daemon closing our side shows that the reaper ran."""
    pg.truncate()
    d = daemon("--log-level", "debug", db=pg.conninfo)
    with harness.connect(d.port) as s:
        s.sendall(b"traced-1\n")
        s.shutdown(socket.SHUT_WR)
        harness.wait_peer_close(s)
    wait_for(lambda: pg.count() == 1, TIMEOUT, "the traced line")
    m = wait_for(lambda: re.search(
        r"(c\d+ 127\.0\.0\.1:\d+): closed reason=eof lines=1 bytes=9",
        d.log()), TIMEOUT, "the close of our connection in the log")
    name, log = re.escape(m.group(1)), d.log()
    for text in ("READ in READING", "EOF in READING", "READING -> CLOSING"):
        assert re.search(name + ": " + text, log), (
            "no %r for %s in the log" % (text, m.group(1)))
    assert d.stop() == 0, "exit status (ASan: a leak or a bad free at exit)"
