"""pgpool's connection machine (src/pgpool.c): timers that belong to a
state, upkeep that cannot build its SQL, connection attempts the server
never answers.

The out-of-memory cases use the fault-injection hook LOGSINKD_FAULTS
(include/logsink/fault.h): "maintain-sql-oom" makes every build of the
partition upkeep SQL fail, "maintain-sql-oom:N" the first N.
"""

import re
import socket
import threading
import time

from harness import make_lines, send_lines, wait_for

TIMEOUT = 60
DB_TIMEOUT_S = 1.0  # the smallest db-timeout config.c accepts
OOM = "partition upkeep: out of memory"


def log_lines(d, text):
    return [l for l in d.log().splitlines() if text in l]


def retry_delays(d):
    """The delays of the upkeep retries, in the order logged."""
    return [int(m) for m in re.findall(r"%s; retried in (\d+) ms" % OOM,
                                       d.log())]


def assert_alive(d):
    if not d.alive():
        raise AssertionError("logsinkd exited (status %s):\n%s"
                             % (d.proc.returncode, d.log()))


def test_upkeep_sql_oom_is_retried_and_writing_goes_on(pg, daemon,
                                                       monkeypatch):
    """The SQL of the start-up upkeep cannot be built.  Before, the
    db-timeout timer armed for the schema check stayed armed, fired in
    IDLE and ended the daemon ("event TIMER in state IDLE")."""
    pg.truncate()
    monkeypatch.setenv("LOGSINKD_FAULTS", "maintain-sql-oom")
    # One connection: it is the one that tried the upkeep.
    d = daemon("--db-timeout", "1s", "--db-connections", 1,
               "--reconnect-min-ms", 100, "--reconnect-max-ms", 400,
               db=pg.conninfo)
    wait_for(lambda: log_lines(d, OOM), TIMEOUT,
             "the upkeep's out-of-memory warning")
    seen_oom = time.monotonic()

    # Nothing is sent until db-timeout has passed twice since the warning
    # (so since the schema check): a batch taken earlier re-arms the timer
    # and would hide a stale one.
    first = make_lines("first", 300)
    sent = []

    def first_stored_after_db_timeout():
        assert_alive(d)
        if not sent:
            if time.monotonic() - seen_oom <= 2 * DB_TIMEOUT_S:
                return False
            send_lines(d.port, first)
            sent.append(True)
        return pg.count() >= len(first)

    wait_for(first_stored_after_db_timeout, TIMEOUT,
             "%d lines stored, sent after 2 x db-timeout" % len(first))

    # The upkeep keeps being retried, with a doubling delay (no hot loop),
    # while lines keep being written.
    wait_for(lambda: assert_alive(d) or len(retry_delays(d)) >= 4, TIMEOUT,
             "four upkeep retries")
    second = make_lines("second", 300)
    send_lines(d.port, second)
    wait_for(lambda: assert_alive(d) or pg.count() >= 600, TIMEOUT,
             "all 600 lines stored")
    assert sorted(pg.messages()) == sorted(first + second)
    delays = retry_delays(d)
    assert delays[:4] == [100, 200, 400, 400], delays
    assert set(delays[4:]) <= {400}, delays
    assert not log_lines(d, "in state"), d.log()
    assert d.stop() == 0


def test_upkeep_runs_once_its_sql_can_be_built(pg, daemon, monkeypatch):
    pg.truncate()
    monkeypatch.setenv("LOGSINKD_FAULTS", "maintain-sql-oom:2")
    d = daemon("--log-level", "debug", "--db-connections", 1,
               "--reconnect-min-ms", 50, db=pg.conninfo)
    done = wait_for(
        lambda: assert_alive(d) or [l for l in log_lines(
            d, "pg1: partition upkeep: ") if OOM not in l],
        TIMEOUT, "the upkeep's summary")
    assert retry_delays(d) == [50, 100], d.log()
    assert "failed" not in done[0], done
    lines = make_lines("after", 50)
    send_lines(d.port, lines)
    wait_for(lambda: pg.count() >= len(lines), TIMEOUT, "50 lines stored")
    assert sorted(pg.messages()) == sorted(lines)
    # The debug trace names each event and the state it arrived in.
    for text in ("pg1: TIMER in BACKOFF", "pg1: WRITABLE in CONNECTING",
                 "pg1: READABLE in CHECKING", "pg1: WORK in IDLE",
                 "pg1: WRITABLE in COPY_SEND", "pg1: READABLE in "
                 "AWAIT_RESULT", "pg1: IDLE -> MAINTAIN"):
        assert log_lines(d, text), text
    assert d.stop() == 0


class Gate(threading.Thread):
    """A TCP front for PostgreSQL.  While shut it accepts connections and
    never answers them; once opened it forwards new ones to the server."""

    def __init__(self, target_port):
        super().__init__(daemon=True)
        self.target_port = target_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.opened = threading.Event()
        self.stopping = threading.Event()
        self.accepted = 0
        self.conns = []

    @property
    def conninfo(self):
        return ("host=127.0.0.1 port=%d dbname=postgres user=postgres"
                % self.port)

    def run(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)
            if not self.opened.is_set():
                continue  # held open, never answered
            u = socket.create_connection(("127.0.0.1", self.target_port))
            self.conns.append(u)
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b),
                                 daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.join(10)
        self.sock.close()
        for c in self.conns:
            c.close()


def test_unanswered_connect_times_out_then_connects(pg, daemon):
    """CONNECTING has a deadline (db-timeout) of its own; each attempt
    gets a new socket, and the connection's one I/O event follows it."""
    pg.truncate()
    with Gate(pg.port) as gate:
        d = daemon("--db-timeout", "1s", "--db-connections", 1,
                   "--reconnect-min-ms", 50, "--reconnect-max-ms", 200,
                   db=gate.conninfo)
        wait_for(lambda: assert_alive(d) or len(log_lines(
            d, "no progress in CONNECTING for 1000 ms (db-timeout)")) >= 2,
            TIMEOUT, "two connection attempts given up")
        assert gate.accepted >= 2
        assert not log_lines(d, "connected to")
        lines = make_lines("gate", 100)
        send_lines(d.port, lines)
        gate.opened.set()
        wait_for(lambda: assert_alive(d) or pg.count() >= len(lines),
                 TIMEOUT, "100 lines stored once the server answers")
        assert sorted(pg.messages()) == sorted(lines)
        assert log_lines(d, "pg1: connected to")
        assert d.stop() == 0
