"""The daemon starts and accepts lines while PostgreSQL is down; they are
stored once PostgreSQL comes up."""

import collections
import socket
import threading

from harness import (connect, make_lines, send_lines, wait_for,
                     wait_peer_close)

TIMEOUT = 120


def test_lines_queued_while_db_down_arrive_later(stopped_pg, daemon):
    pg = stopped_pg
    d = daemon("--reconnect-min-ms", 50, "--reconnect-max-ms", 1000,
               db=pg.conninfo)

    first = make_lines("down-a", 500)
    second = make_lines("down-b", 500)
    # wait_close: the daemon has read every byte of the connection.
    send_lines(d.port, first, wait_close=True)
    assert d.alive(), "logsinkd exited while the database is down:\n" \
        + d.log()
    # A second connection later on: it is still accepting.
    send_lines(d.port, second, wait_close=True)
    assert d.alive(), "logsinkd exited while the database is down:\n" \
        + d.log()

    pg.start()
    wait_for(lambda: pg.count() >= 1000, TIMEOUT, "1000 rows after the "
             "database came up")
    assert d.stop() == 0

    got = collections.Counter(pg.messages())
    assert set(got) == set(first + second), (
        "missing %r, unexpected %r"
        % (sorted(set(first + second) - set(got))[:5],
           sorted(set(got) - set(first + second))[:5]))
    assert sum(got.values()) == 1000, "duplicates: %r" % [
        m for m, n in got.items() if n > 1][:5]


def test_daemon_survives_db_outage_after_start(fresh_pg, daemon):
    """Database goes away while the daemon runs, lines sent meanwhile
    arrive after it is back."""
    pg = fresh_pg
    d = daemon("--reconnect-min-ms", 50, "--reconnect-max-ms", 1000,
               db=pg.conninfo)
    before = make_lines("up-before", 100)
    send_lines(d.port, before)
    wait_for(lambda: pg.count() >= 100, TIMEOUT, "100 rows")

    pg.stop("fast")
    during = make_lines("while-down", 300)
    send_lines(d.port, during, wait_close=True)
    assert d.alive(), "logsinkd exited while the database is down"
    pg.start()

    wait_for(lambda: pg.scalar("select count(distinct message) from logs")
             >= 400, TIMEOUT, "400 distinct rows")
    assert d.stop() == 0
    got = collections.Counter(pg.messages())
    # At-least-once: duplicates are possible in principle (none expected:
    # no batch was in flight when the database stopped), loss is not.
    assert set(got) == set(before + during), (
        "missing %r" % sorted(set(before + during) - set(got))[:5])


def test_full_queue_applies_back_pressure_without_loss(stopped_pg, daemon):
    """With the database down, far more than queue-bytes is sent: the
    daemon stops reading (TCP back-pressure) instead of dropping lines,
    and everything arrives once the database is up."""
    pg = stopped_pg
    queue = 1 << 20
    d = daemon("--max-line-bytes", 1024, "--queue-bytes", queue,
               "--reconnect-min-ms", 50, "--reconnect-max-ms", 1000,
               db=pg.conninfo)
    total = 40000  # about 2.4 MB, more than twice the queue
    lines = make_lines("bp", total)
    progress = {"bytes": 0, "error": None}

    def sender():
        try:
            with connect(d.port, timeout=TIMEOUT) as s:
                for i in range(0, total, 500):
                    chunk = "".join(l + "\n" for l in lines[i:i + 500])
                    s.sendall(chunk.encode())
                    progress["bytes"] += len(chunk)
                s.shutdown(socket.SHUT_WR)
                wait_peer_close(s, TIMEOUT)
        except Exception as e:  # reported below
            progress["error"] = e

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    # Well past what the queue holds before the database comes up.
    wait_for(lambda: progress["bytes"] >= queue * 3 // 2
             or progress["error"], TIMEOUT, "the sender to get 1.5 MiB out")
    assert progress["error"] is None, progress["error"]
    assert d.alive(), "logsinkd exited while the database is down"
    pg.start()
    try:
        wait_for(lambda: pg.count() >= total, TIMEOUT, "%d rows" % total)
    except AssertionError as e:
        raise AssertionError(
            "%s: only %d of %d lines stored after the database came up "
            "(sender got %d bytes out)"
            % (e, pg.count(), total, progress["bytes"])) from None
    t.join(TIMEOUT)
    assert not t.is_alive(), "sender still blocked after %d bytes" \
        % progress["bytes"]
    assert progress["error"] is None, progress["error"]
    assert d.stop() == 0
    assert pg.count() == total
    got = set(pg.messages())
    assert got == set(lines), "missing %d, e.g. %r" % (
        len(set(lines) - got), sorted(set(lines) - got)[:5])
