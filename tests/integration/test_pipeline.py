"""End-to-end pipeline: TCP clients -> logsinkd -> PostgreSQL."""

import collections
import socket
import subprocess
import threading

import pytest

from harness import (connect, ipv6_loopback_available, make_lines,
                     send_bytes, send_lines, wait_for)

TIMEOUT = 120


# Every test starts from an empty logs table (conftest.empty_table).
pytestmark = pytest.mark.usefixtures("empty_table")


def stored(pg):
    return collections.Counter(pg.messages())


def test_concurrent_connections_store_every_line_once(pg, daemon):
    nconn, per_conn = 50, 2000
    total = nconn * per_conn
    d = daemon(db=pg.conninfo)

    expected = {}
    errors = []
    start = threading.Barrier(nconn)

    def client(c):
        lines = make_lines("c%02d" % c, per_conn)
        expected[c] = lines
        try:
            with connect(d.port) as s:
                start.wait(60)
                # Several writes per connection so connections interleave.
                for i in range(0, per_conn, 250):
                    s.sendall("".join(l + "\n" for l in lines[i:i + 250])
                              .encode())
                s.shutdown(socket.SHUT_WR)
        except Exception as e:  # reported below
            errors.append((c, e))

    threads = [threading.Thread(target=client, args=(c,))
               for c in range(nconn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)

    wait_for(lambda: pg.count() >= total, TIMEOUT,
             "%d rows in logs" % total)
    # Flush and exit, so that any late duplicate would be visible too.
    assert d.stop() == 0

    sent = set(l for lines in expected.values() for l in lines)
    assert len(sent) == total
    assert pg.count() == total
    assert pg.scalar("select count(distinct message) from logs") == total
    got = stored(pg)
    missing = sent - set(got)
    extra = set(got) - sent
    dups = [m for m, n in got.items() if n > 1]
    assert not missing and not extra and not dups, (
        "missing %d (e.g. %r), unexpected %d (e.g. %r), duplicated %d "
        "(e.g. %r)" % (len(missing), sorted(missing)[:3], len(extra),
                       sorted(extra)[:3], len(dups), dups[:3]))
    assert pg.query("select host(peer), count(*) from logs group by 1") \
        == [("127.0.0.1", total)]
    assert pg.scalar("select count(*) from logs where received_at is null "
                     "or received_at > now() "
                     "or received_at < now() - interval '1 hour'") == 0


def test_small_queue_bytes_still_flows(pg, daemon):
    """queue-bytes = 64 KiB is accepted by the configuration (it holds many
    lines of max-line-bytes 1024), so lines must keep flowing at a normal
    pace: the bound only sizes the memory, it must not serialise the
    pipeline down to a line per flush interval."""
    d = daemon("--max-line-bytes", 1024, "--queue-bytes", 65536,
               db=pg.conninfo)
    lines = make_lines("smallq", 3000)
    send_lines(d.port, lines)
    # 3000 lines of 50 bytes: well under a second normally; 60 s is only a
    # bound (a pipeline that moves one line per 100 ms flush interval
    # needs 300 s).
    try:
        wait_for(lambda: pg.count() >= len(lines), 60, "3000 rows")
    except AssertionError as e:
        raise AssertionError("%s: only %d of %d lines stored"
                             % (e, pg.count(), len(lines))) from None
    assert d.stop() == 0
    assert stored(pg) == collections.Counter(lines)


def run_nc(args, data):
    try:
        return subprocess.run(["nc"] + args, input=data,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("nc %s did not finish within 60 s (does "
                             "logsinkd close the connection at EOF?)"
                             % " ".join(args))


def test_netcat_with_N(pg, daemon):
    d = daemon(db=pg.conninfo)
    # echo hello | nc -N 127.0.0.1 PORT
    p = run_nc(["-N", "127.0.0.1", str(d.port)], b"hello\n")
    assert p.returncode == 0, p.stderr
    wait_for(lambda: pg.count() >= 1, TIMEOUT, "the nc line")
    assert d.stop() == 0
    assert stored(pg) == {"hello": 1}
    assert pg.query("select host(peer) from logs") == [("127.0.0.1",)]


def test_netcat_last_line_without_newline(pg, daemon):
    d = daemon(db=pg.conninfo)
    # printf 'nc-a\nnc-b' | nc -q0 127.0.0.1 PORT  (no -N: plain close)
    p = run_nc(["-q0", "127.0.0.1", str(d.port)], b"nc-line-a\nnc-line-b")
    assert p.returncode == 0, p.stderr
    wait_for(lambda: pg.count() >= 2, TIMEOUT, "both nc lines")
    assert d.stop() == 0
    assert stored(pg) == {"nc-line-a": 1, "nc-line-b": 1}


def test_crlf_and_empty_lines(pg, daemon):
    d = daemon(db=pg.conninfo)
    data = (b"\n\n"
            b"crlf-one\r\n"
            b"\n"
            b"lf-two\n"
            b"\n\n\n"
            b"crlf-three\r\n"
            b"cr inside\rthe line\n"
            b"\n"
            b"last-no-newline")
    send_bytes(d.port, data)
    expected = {"crlf-one": 1, "lf-two": 1, "crlf-three": 1,
                "cr inside\rthe line": 1, "last-no-newline": 1}
    wait_for(lambda: pg.count() >= len(expected), TIMEOUT,
             "%d rows" % len(expected))
    assert d.stop() == 0
    assert stored(pg) == expected
    assert pg.scalar("select count(*) from logs where message = ''") == 0


def test_lines_split_across_writes(pg, daemon):
    d = daemon(db=pg.conninfo)
    with connect(d.port) as s:
        for piece in (b"split-", b"one", b"\r", b"\nsplit-two\n", b"spl",
                      b"it-three\n"):
            s.sendall(piece)
        s.shutdown(socket.SHUT_WR)
    wait_for(lambda: pg.count() >= 3, TIMEOUT, "3 rows")
    assert d.stop() == 0
    assert stored(pg) == {"split-one": 1, "split-two": 1, "split-three": 1}


def test_ipv6_listener(pg, daemon):
    if not ipv6_loopback_available():
        pytest.skip("::1 is not configured on this machine")
    d = daemon(db=pg.conninfo, ipv6=True)
    send_lines(d.port6, ["over-ipv6 line"], host="::1")
    send_lines(d.port, ["over-ipv4 line"])
    wait_for(lambda: pg.count() >= 2, TIMEOUT, "2 rows")
    assert d.stop() == 0
    assert sorted(pg.query("select message, host(peer) from logs")) == [
        ("over-ipv4 line", "127.0.0.1"), ("over-ipv6 line", "::1")]
