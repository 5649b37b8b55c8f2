"""Fault injection: the database crashes, freezes, refuses rows or fails
over while lines stream in; nothing may be lost.

Every case sends uniquely numbered lines and compares what was sent with
what is stored:

    lost       = sent - distinct stored      (must be 0)
    duplicated = stored - distinct stored    (at-least-once allows some)

Duplicates are bounded by what one in-flight batch per database connection
holds (db-connections x batch-lines per fault), and reported: in the
assertion messages, and on the terminal (a "[faults]" line per case, also
with -q).

Crash cases turn synchronous_commit back on for their cluster: the harness
sets it off for speed, and then PostgreSQL itself may forget a commit it
has already confirmed when it is killed (the WAL buffers die with it), which
would be counted here as a line lost by the daemon.
"""

import collections
import os
import re
import signal
import socket
import threading
import time

import psycopg2
import pytest

import harness
from harness import wait_for

TIMEOUT = 120
DB_ERRORS = (psycopg2.Error,)


# --------------------------------------------------------------------------
# helpers


@pytest.fixture
def report(capsys):
    """report(text): one "[faults]" line on the terminal, also under -q."""
    def emit(text):
        with capsys.disabled():
            print("\n[faults] %s" % text, flush=True)
    return emit


def daemon_supports(option):
    return ("--" + option) in harness.run_logsinkd("--help").output


def padded_line(tag, i, pad=0, bad=False):
    return "%s-%07d %s payload %s%s" % (
        tag, i, "BAD" if bad else "ok", tag, " " + "x" * pad if pad else "")


class LineStreamer(threading.Thread):
    """Sends numbered lines on one connection until stopped.

    sent: the lines whose sendall() completed, in order.
    With ack=True a reader thread records every "ok N" the daemon writes
    (acks: [(time.monotonic(), N)]); stop() then half-closes and waits for
    the daemon to close, i.e. for the last acknowledgement.
    """

    def __init__(self, port, tag, line=None, chunk=50, pause=0.01,
                 ack=False, max_lines=10**7):
        super().__init__(daemon=True, name="streamer-" + tag)
        self.port, self.tag = port, tag
        self.line = line or (lambda i: padded_line(tag, i))
        self.chunk, self.pause, self.ack = chunk, pause, ack
        self.max_lines = max_lines
        self.sent = []
        self.acks = []
        self.last_send = time.monotonic()
        self.error = None
        self.ack_error = None
        self.ack_eof = threading.Event()
        self.stop_event = threading.Event()
        self.sock = None
        self.reader = None

    # -- acknowledgements

    @property
    def last_ack(self):
        return self.acks[-1][1] if self.acks else 0

    def _read_acks(self):
        buf = b""
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    text, buf = buf.split(b"\n", 1)
                    m = re.fullmatch(rb"ok (\d+)", text)
                    if m is None:
                        raise AssertionError("unexpected ack line %r" % text)
                    n = int(m.group(1))
                    if n < self.last_ack:
                        raise AssertionError("ack went backwards: ok %d "
                                             "after ok %d" % (n, self.last_ack))
                    self.acks.append((time.monotonic(), n))
            if buf:
                raise AssertionError("unterminated ack data %r" % buf)
        except Exception as e:  # reported by stop()
            self.ack_error = e
        finally:
            self.ack_eof.set()

    # -- sending

    def run(self):
        try:
            self.sock = harness.connect(self.port, timeout=TIMEOUT)
        except OSError as e:
            self.error = e
            return
        if self.ack:
            self.reader = threading.Thread(target=self._read_acks,
                                           daemon=True)
            self.reader.start()
        try:
            i = 0
            while not self.stop_event.is_set() and i < self.max_lines:
                lines = [self.line(j) for j in range(i, i + self.chunk)]
                self.sock.sendall("".join(l + "\n" for l in lines).encode())
                self.sent.extend(lines)
                self.last_send = time.monotonic()
                i += self.chunk
                time.sleep(self.pause)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error = e

    def stop(self, timeout=TIMEOUT):
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), "streamer %s did not stop" % self.tag
        try:
            if self.ack and self.error is None:
                # The daemon closes once every line is acknowledged.
                if not self.ack_eof.wait(timeout):
                    raise AssertionError(
                        "streamer %s: no EOF from the daemon within %.0f s "
                        "of the half-close (last ack %d of %d lines)"
                        % (self.tag, timeout, self.last_ack, len(self.sent)))
        finally:
            if self.sock is not None:
                self.sock.close()
        if self.error is not None:
            raise AssertionError("streamer %s: %r" % (self.tag, self.error))
        if self.ack_error is not None:
            raise AssertionError("streamer %s acks: %r"
                                 % (self.tag, self.ack_error))


def stop_all(streamers):
    errors = []
    for s in streamers:
        try:
            s.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


def total_sent(streamers):
    return sum(len(s.sent) for s in streamers)


def stored_counter(cluster, table="public.logs", column="message"):
    return collections.Counter(
        r[0] for r in cluster.query("select %s from %s" % (column, table)))


def distinct_stored(cluster, table="public.logs"):
    return cluster.scalar("select count(distinct message) from %s" % table)


class Tally:
    """Sent vs stored for one table."""

    def __init__(self, sent, stored):
        self.sent = list(sent)
        sent_set = set(self.sent)
        assert len(sent_set) == len(self.sent), "test bug: lines not unique"
        self.stored_rows = sum(stored.values())
        self.distinct = sum(1 for m in stored if m in sent_set)
        self.lost = len(sent_set) - self.distinct
        self.missing = sorted(sent_set - set(stored))
        self.duplicated = sum(n - 1 for m, n in stored.items()
                              if m in sent_set and n > 1)
        self.dup_examples = sorted(m for m, n in stored.items()
                                   if m in sent_set and n > 1)[:3]
        self.unexpected = sorted(m for m in stored if m not in sent_set)

    def summary(self):
        return ("sent=%d stored=%d distinct=%d lost=%d duplicated=%d"
                % (len(self.sent), self.stored_rows, self.distinct,
                   self.lost, self.duplicated))

    def check(self, what, dup_bound):
        detail = ("%s: %s (duplicate bound %d); missing e.g. %r; "
                  "duplicated e.g. %r; unexpected %d e.g. %r"
                  % (what, self.summary(), dup_bound, self.missing[:3],
                     self.dup_examples, len(self.unexpected),
                     self.unexpected[:3]))
        assert self.lost == 0, "lines lost: " + detail
        assert not self.unexpected, "rows nobody sent: " + detail
        assert self.duplicated <= dup_bound, (
            "more duplicates than one in-flight batch per connection: "
            + detail)
        return detail


def log_lines(d, needle):
    return [l for l in d.log().splitlines() if needle in l]


def log_time(line):
    """The wall-clock time (epoch seconds) stamped on a daemon log line."""
    m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) ", line)
    if m is None:
        return None
    return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) \
        + int(m.group(2)) / 1000.0


def sync_commit_on(cluster):
    cluster.query("alter system set synchronous_commit = on")
    cluster.query("select pg_reload_conf()")
    wait_for(lambda: cluster.scalar("show synchronous_commit") == "on", 30,
             "synchronous_commit = on")


def wait_all_stored(cluster, streamers, what, timeout=TIMEOUT):
    want = total_sent(streamers)
    try:
        wait_for(lambda: distinct_stored(cluster) >= want, timeout, what,
                 ignore=DB_ERRORS)
    except AssertionError as e:
        raise AssertionError("%s: %d of %d distinct lines stored"
                             % (e, distinct_stored(cluster), want)) from None


# --------------------------------------------------------------------------
# 1. PostgreSQL crashes (immediate stop) for 20 s mid-stream


def test_db_crash_20s_mid_stream(fresh_pg, daemon, report):
    pg = fresh_pg
    sync_commit_on(pg)
    nconn, batch, queue = 3, 1000, 1 << 20
    d = daemon("--reconnect-min-ms", 50, "--reconnect-max-ms", 2000,
               "--batch-lines", batch, "--queue-bytes", queue,
               "--db-connections", 2, db=pg.conninfo)
    streamers = [LineStreamer(d.port, "crash%d" % c,
                              line=lambda i, c=c: padded_line(
                                  "crash%d" % c, i, pad=150),
                              chunk=100, pause=0.01)
                 for c in range(nconn)]
    try:
        for s in streamers:
            s.start()
        wait_for(lambda: pg.count() >= 5000, TIMEOUT, "rows flowing")

        pg.stop("immediate")
        t_down = time.monotonic()
        sent_at_crash = total_sent(streamers)
        # The outage lasts 20 s whatever the daemon does: the streamers
        # keep sending, the queue fills, then reading pauses.
        time.sleep(20)
        assert d.alive(), "logsinkd exited during the outage:\n" + d.log()
        sent_during = total_sent(streamers) - sent_at_crash
        stalled = [s.tag for s in streamers
                   if time.monotonic() - s.last_send > 2]
        paused = bool(log_lines(d, "queue full"))
        connected_before = len(log_lines(d, "connected to"))

        wall_start = time.time()
        pg.start()
        t_up = time.monotonic()
        start_s = time.time() - wall_start
        new = wait_for(lambda: log_lines(d, "connected to")[connected_before:],
                       TIMEOUT, "the daemon to reconnect")
        reconnect_s = (log_time(new[0]) or time.time()) - wall_start
        # Streaming continues a little after recovery.
        n = total_sent(streamers)
        wait_for(lambda: total_sent(streamers) >= n + 2000, TIMEOUT,
                 "streamers moving again")
    finally:
        stop_all(streamers)
    wait_all_stored(pg, streamers, "every line after the restart")
    assert d.stop() == 0, d.log()

    sent = [l for s in streamers for l in s.sent]
    t = Tally(sent, stored_counter(pg))
    detail = t.check("crash for 20 s", 2 * batch)
    report("immediate stop 20 s: %s; %d lines sent during the outage, "
           "queue-full pause logged: %s, streamers stalled at the end: %s; "
           "reconnected %.1f s after pg_ctl start was issued (which took "
           "%.1f s; outage %.1f s)"
           % (t.summary(), sent_during, paused, stalled or "none",
              reconnect_s, start_s, t_up - t_down))
    assert paused, ("queue-bytes 1 MiB and %d lines sent during a 20 s "
                    "outage, yet no 'queue full' pause was logged; %s"
                    % (sent_during, detail))


# --------------------------------------------------------------------------
# 2. PostgreSQL frozen (SIGSTOP) for 15 s mid-COPY, db-timeout 5 s


def _children(pid):
    """Descendants of pid, from /proc."""
    kids = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces or parentheses
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids[ppid].append(int(entry))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def postmaster_pid(cluster):
    with open(os.path.join(cluster.datadir, "postmaster.pid")) as f:
        return int(f.readline())


class Freezer:
    """SIGSTOPs a postmaster and all its processes; thaw() SIGCONTs every
    process it stopped (also on failure: use it as a context manager)."""

    def __init__(self, cluster):
        self.pm = postmaster_pid(cluster)
        self.stopped = []

    def _stop(self, pid):
        try:
            os.kill(pid, signal.SIGSTOP)
            self.stopped.append(pid)
        except ProcessLookupError:
            pass

    def freeze(self):
        self._stop(self.pm)  # first: it forks no new child after this
        for _ in range(3):  # a child forked just before is caught here
            for pid in _children(self.pm):
                if pid not in self.stopped:
                    self._stop(pid)
        return self.stopped

    def thaw(self):
        for pid in reversed(self.stopped):  # children first, postmaster last
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.thaw()


def test_db_frozen_15s_mid_copy(fresh_pg, daemon, report):
    if not daemon_supports("db-timeout"):
        pytest.skip("this logsinkd has no db-timeout option (logsinkd "
                    "--help does not list it): a frozen database is not "
                    "detected")
    pg = fresh_pg
    nconn, batch, db_timeout = 3, 5000, 5.0
    d = daemon("--db-timeout", "5s", "--reconnect-min-ms", 50,
               "--reconnect-max-ms", 2000, "--batch-lines", batch,
               "--queue-bytes", "16MiB", "--db-connections", 2,
               db=pg.conninfo)
    # Large batches: 5000 lines of ~300 bytes, so COPY data is in flight
    # most of the time.
    streamers = [LineStreamer(d.port, "frz%d" % c,
                              line=lambda i, c=c: padded_line(
                                  "frz%d" % c, i, pad=250),
                              chunk=200, pause=0.01)
                 for c in range(nconn)]
    try:
        for s in streamers:
            s.start()
        wait_for(lambda: pg.count() >= 20000, TIMEOUT, "rows flowing")
        assert not log_lines(d, "(db-timeout)"), d.log()
        with Freezer(pg) as fz:
            pids = fz.freeze()
            t_freeze, wall_freeze = time.monotonic(), time.time()
            found = wait_for(lambda: log_lines(d, "(db-timeout)"),
                             db_timeout + 25, "a db-timeout in the daemon "
                             "log while PostgreSQL is frozen")
            detect_poll = time.monotonic() - t_freeze
            stamp = log_time(found[0])
            detect_log = stamp - wall_freeze if stamp else None
            # Stay frozen for 15 s in all.
            time.sleep(max(0.0, 15 - (time.monotonic() - t_freeze)))
            frozen_s = time.monotonic() - t_freeze
            timeouts = log_lines(d, "(db-timeout)")
            assert d.alive(), "logsinkd exited while PostgreSQL was " \
                "frozen:\n" + d.log()
            connected_before = len(log_lines(d, "connected to"))
            fz.thaw()
        wall_thaw = time.time()
        new = wait_for(lambda: log_lines(d, "connected to")[connected_before:],
                       TIMEOUT, "a replacement database connection")
        replaced_s = (log_time(new[0]) or time.time()) - wall_thaw
        n = total_sent(streamers)
        wait_for(lambda: total_sent(streamers) >= n + 5000, TIMEOUT,
                 "streamers moving again")
    finally:
        stop_all(streamers)
    wait_all_stored(pg, streamers, "every line after the thaw")
    assert d.stop() == 0, d.log()

    t = Tally([l for s in streamers for l in s.sent], stored_counter(pg))
    t.check("frozen for 15 s", 2 * batch)
    report("SIGSTOP %d processes for %.1f s: %s; db-timeout (5 s) logged "
           "%.1f s after the freeze (log stamp %s), %d timeout line(s) while "
           "frozen; new connection %.2f s after SIGCONT"
           % (len(pids), frozen_s, t.summary(), detect_poll,
              "%.2f s" % detect_log if detect_log is not None else "?",
              len(timeouts), replaced_s))
    assert detect_poll <= db_timeout + 10, (
        "the freeze was detected after %.1f s, db-timeout is %.0f s: %r"
        % (detect_poll, db_timeout, found[0]))


# --------------------------------------------------------------------------
# 3. Rows refused by a CHECK constraint while streaming


def test_check_constraint_rejects_while_streaming(fresh_pg, daemon, report):
    pg = fresh_pg
    pg.query("ALTER TABLE logs ADD CONSTRAINT faults_no_bad "
             "CHECK (message NOT LIKE '%BAD%')")
    nconn, batch, every = 4, 1000, 499
    d = daemon("--batch-lines", batch, "--db-connections", 2,
               db=pg.conninfo)

    def line_fn(tag):
        return lambda i: padded_line(tag, i, pad=20, bad=i % every == 7)

    streamers = [LineStreamer(d.port, "chk%d" % c, line=line_fn("chk%d" % c),
                              chunk=50, pause=0.01, max_lines=20000)
                 for c in range(nconn)]
    try:
        for s in streamers:
            s.start()
        # Some seconds of mixed traffic.
        wait_for(lambda: total_sent(streamers) >= 50000, TIMEOUT,
                 "50000 lines sent")
    finally:
        stop_all(streamers)
    t_end = time.monotonic()
    sent = [l for s in streamers for l in s.sent]
    good = [l for l in sent if "BAD" not in l]
    bad = [l for l in sent if "BAD" in l]

    def rejected_distinct():
        return pg.scalar("select count(distinct raw) from logs_rejected")

    wait_for(lambda: distinct_stored(pg) >= len(good)
             and rejected_distinct() >= len(bad), TIMEOUT,
             "%d good rows stored and %d bad ones rejected"
             % (len(good), len(bad)))
    drain_s = time.monotonic() - t_end
    # Still flowing afterwards.
    after = ["after-rejects-%d" % i for i in range(100)]
    t0 = time.monotonic()
    harness.send_lines(d.port, after, wait_close=True)
    wait_for(lambda: pg.scalar("select count(*) from logs where message "
                               "like 'after-rejects-%'") >= 100, 30,
             "lines sent after the rejects")
    after_s = time.monotonic() - t0
    assert d.stop() == 0, d.log()

    stored = stored_counter(pg)
    for m in after:
        del stored[m]
    tg = Tally(good, stored)
    rejected = stored_counter(
        pg, "logs_rejected", "convert_from(raw, 'UTF8')")
    tb = Tally(bad, rejected)
    states = pg.query("select sqlstate, count(*) from logs_rejected "
                      "group by 1")
    detail_g = tg.check("good lines in logs", 2 * batch)
    detail_b = tb.check("bad lines in logs_rejected", 2 * batch)
    report("CHECK constraint, %d connections: good %s; bad %s; drained %.1f s "
           "after the last send, 100 later lines stored in %.1f s"
           % (nconn, tg.summary(), tb.summary(), drain_s, after_s))
    assert states == [("23514", tb.stored_rows)], (states, detail_b)
    assert "isolating the rejected rows" in d.log()
    assert detail_g and detail_b


# --------------------------------------------------------------------------
# 4. Failover to a streaming replica, with ack=commit


class Replica(harness.PgCluster):
    """A hot standby made with pg_basebackup -R from a primary."""

    def clone(self, primary):
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p",
                  str(primary.port), "-U", "postgres", "-D", self.datadir,
                  "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
        with open(os.path.join(self.datadir, "postgresql.auto.conf"),
                  "a") as f:
            f.write("unix_socket_directories = '%s'\n" % self.dir)
        self._write_port()
        return self

    def promote(self):
        self._run("pg_ctl", "-D", self.datadir, "-w", "-t",
                  str(harness.PG_TIMEOUT), "promote")


def _hba(cluster):
    return os.path.join(cluster.datadir, "pg_hba.conf")


def test_failover_to_promoted_replica_with_acks(fresh_pg, daemon, report,
                                                tmp_path):
    primary = fresh_pg
    # The daemon logs in as its own role so that the replica can keep it
    # out (pg_hba) until the acknowledged lines have been checked there:
    # no retry can fill a gap before the check.
    primary.query("create role logsink login superuser")
    with open(_hba(primary)) as f:
        hba = f.read()
    if not re.search(r"^host\s+replication\s+all\s+127\.0\.0\.1/32\s+trust",
                     hba, re.M):
        with open(_hba(primary), "a") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")
        primary.query("select pg_reload_conf()")
    assert primary.scalar("show wal_level") in ("replica", "logical")

    replica = Replica()
    try:
        replica.clone(primary)
        with open(_hba(replica)) as f:
            hba = f.read()
        with open(_hba(replica), "w") as f:
            f.write("host all logsink 127.0.0.1/32 reject\n" + hba)
        replica.start()
        wait_for(lambda: primary.query(
            "select 1 from pg_stat_replication where state = 'streaming'"),
            TIMEOUT, "the replica streaming")
        # Synchronous replication: a commit is confirmed only once the
        # replica has it, so an acknowledged line must survive failover.
        primary.query("alter system set synchronous_commit = on")
        primary.query("alter system set synchronous_standby_names = '*'")
        primary.query("select pg_reload_conf()")
        wait_for(lambda: primary.query(
            "select 1 from pg_stat_replication where sync_state = 'sync'"),
            TIMEOUT, "the replica synchronous")

        _failover_case(primary, replica, daemon, report)
    finally:
        replica.destroy()


def _failover_case(primary, replica, daemon, report):
    nconn, batch = 3, 1000
    port = harness.free_port()
    d = daemon("--listen", "127.0.0.1:%d ack=commit" % port,
               "--reconnect-min-ms", 50, "--reconnect-max-ms", 2000,
               "--batch-lines", batch, "--db-connections", 2,
               listen=False, ready_ports=[("127.0.0.1", port)],
               db="host=127.0.0.1,127.0.0.1 port=%d,%d dbname=postgres "
                  "user=logsink target_session_attrs=read-write"
                  % (primary.port, replica.port))
    streamers = [LineStreamer(port, "fo%d" % c, chunk=50, pause=0.01,
                              ack=True)
                 for c in range(nconn)]
    try:
        for s in streamers:
            s.start()
        wait_for(lambda: all(s.last_ack >= 2000 for s in streamers),
                 TIMEOUT, "2000 lines acknowledged on each connection")

        primary.stop("immediate")
        t_kill = time.monotonic()
        replica.promote()
        wait_for(lambda: replica.scalar("select not pg_is_in_recovery()"),
                 TIMEOUT, "the replica promoted")
        # Nothing can commit now (the old primary is gone, the new one
        # keeps the daemon out): every ack seen so far was for a commit on
        # the old primary.  Let acks still in the sockets arrive.
        time.sleep(0.5)
        acked = {s.tag: s.last_ack for s in streamers}
        sent_then = {s.tag: list(s.sent) for s in streamers}
        present = collections.Counter(replica.messages())
        problems = []
        for s in streamers:
            n = acked[s.tag]
            mine = [l for l in sent_then[s.tag] if l in present]
            if len(mine) < n:
                problems.append("%s: ok %d but only %d of its lines on the "
                                "new primary" % (s.tag, n, len(mine)))
            gap = [l for l in sent_then[s.tag][:n] if l not in present]
            if gap:
                problems.append(
                    "%s: ok %d but %d of its first %d lines are not on the "
                    "new primary (e.g. %r); ok N counts committed lines "
                    "and does not say which" % (s.tag, n, len(gap), n,
                                                gap[:3]))
        assert not problems, ("acknowledged lines missing after failover: "
                              + "; ".join(problems))
        acked_total = sum(acked.values())
        unacked = {t: len(sent_then[t]) - acked[t] for t in acked}

        # Let the daemon in.
        with open(_hba(replica)) as f:
            hba = f.read()
        with open(_hba(replica), "w") as f:
            f.write(hba.replace("host all logsink 127.0.0.1/32 reject\n",
                                ""))
        replica.query("select pg_reload_conf()")
        t_open = time.monotonic()
        base = {s.tag: s.last_ack for s in streamers}
        wait_for(lambda: all(s.last_ack > base[s.tag] for s in streamers),
                 TIMEOUT, "acks from the new primary")
        resumed_s = time.monotonic() - t_open
        n = total_sent(streamers)
        wait_for(lambda: total_sent(streamers) >= n + 1500, TIMEOUT,
                 "streamers moving after failover")
    finally:
        stop_all(streamers)

    final = {s.tag: (s.last_ack, len(s.sent)) for s in streamers}
    bad = {t: v for t, v in final.items() if v[0] != v[1]}
    assert not bad, "final ack != lines sent (tag: (ack, sent)): %r" % bad
    wait_all_stored(replica, streamers, "every line on the new primary")
    assert d.stop() == 0, d.log()

    t = Tally([l for s in streamers for l in s.sent],
              stored_counter(replica))
    t.check("failover", 2 * batch)
    report("failover with ack=commit: %s; acks at the failover %r, all on "
           "the new primary (%d lines); sent but unacknowledged then %r; "
           "acks resumed %.1f s after the daemon was let in (%.1f s after "
           "the kill)"
           % (t.summary(), acked, acked_total, unacked, resumed_s,
              time.monotonic() - t_kill))


# --------------------------------------------------------------------------
# ack=commit when batches commit out of order


def test_ack_covers_a_prefix_of_the_lines(fresh_pg, daemon, report):
    """A client that reads "ok N" can only act on it as "my first N lines
    are stored".  One slow row (a trigger sleeps on it) holds the first
    batch on one pool connection while later lines commit on the other."""
    pg = fresh_pg
    pg.query("""
        CREATE FUNCTION faults_slow() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN
            IF NEW.message LIKE '%SLOW%' THEN PERFORM pg_sleep(4); END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER faults_slow BEFORE INSERT ON logs
            FOR EACH ROW EXECUTE FUNCTION faults_slow();
    """)
    port = harness.free_port()
    d = daemon("--listen", "127.0.0.1:%d ack=commit" % port,
               "--db-connections", 2, "--flush-interval-ms", 20,
               listen=False, ready_ports=[("127.0.0.1", port)],
               db=pg.conninfo)
    s = LineStreamer(port, "ack", ack=True)  # only for its ack reader
    s.sock = harness.connect(port, timeout=TIMEOUT)
    s.reader = threading.Thread(target=s._read_acks, daemon=True)
    s.reader.start()
    try:
        s.sock.sendall(b"ack-0 SLOW\n")
        wait_for(lambda: pg.query("select 1 from pg_stat_activity "
                                  "where wait_event = 'PgSleep'"),
                 30, "the first batch sleeping in the trigger")
        later = ["ack-%d fast" % i for i in range(1, 11)]
        s.sock.sendall("".join(l + "\n" for l in later).encode())
        wait_for(lambda: s.last_ack > 0, 30, "an ack")
        n = s.last_ack
        committed = set(pg.messages())
        first_n = (["ack-0 SLOW"] + later)[:n]
        s.sock.shutdown(socket.SHUT_WR)
        assert s.ack_eof.wait(TIMEOUT), "no EOF after the last ack"
        assert s.last_ack == 11 and s.ack_error is None, (s.acks,
                                                          s.ack_error)
    finally:
        s.sock.close()
    report("ack order: first ack 'ok %d' while %d of the first %d lines "
           "were committed (%r not yet)"
           % (n, sum(l in committed for l in first_n), n,
              [l for l in first_n if l not in committed]))
    assert all(l in committed for l in first_n), (
        "'ok %d' read while %r were not committed"
        % (n, [l for l in first_n if l not in committed]))
    assert d.stop() == 0


# --------------------------------------------------------------------------
# Found by the fault soak (test_soak.py): an ack=spooled batch replayed from
# the spool before the spool's next sync held its lines' acknowledgement
# until its commit, so a frozen database stopped ack=spooled acks although
# the lines were on disk (README: they "keep coming while the database is
# down, and stop only when the spool is full").


def test_spooled_ack_not_held_by_a_stuck_replay(fresh_pg, daemon,
                                                spool_parent, report):
    pg = fresh_pg
    path = os.path.join(spool_parent, "spool")
    port = harness.free_port()
    # batch-lines 10: the batches are sealed (and spooled) as the lines
    # arrive, so idle writers replay them before the sync; db-timeout
    # 120 s: the stuck writers keep them for the whole test.
    d = daemon("--spool-dir", path, "--batch-lines", 10, "--db-timeout",
               "120s", "--db-connections", 2,
               "--listen", "127.0.0.1:%d ack=spooled" % port,
               listen=False, ready_ports=[("127.0.0.1", port)],
               db=pg.conninfo)
    wait_for(lambda: len(log_lines(d, "connected to")) >= 2, TIMEOUT,
             "both database connections up")
    lines = ["stuck-%03d spooled while frozen" % i for i in range(100)]
    s = LineStreamer(port, "stuck", ack=True)  # only for its ack reader
    s.sock = harness.connect(port, timeout=TIMEOUT)
    s.reader = threading.Thread(target=s._read_acks, daemon=True)
    s.reader.start()
    try:
        with Freezer(pg) as fr:
            fr.freeze()
            s.sock.sendall("".join(l + "\n" for l in lines).encode())
            try:
                wait_for(lambda: s.last_ack == len(lines), 30,
                         "ok %d while the database is frozen" % len(lines))
            except AssertionError as e:
                raise AssertionError("%s: acks %r" % (e, s.acks)) from None
            frozen_ack = s.last_ack
        s.sock.shutdown(socket.SHUT_WR)
        assert s.ack_eof.wait(TIMEOUT), "no EOF after the last ack"
        assert s.ack_error is None, s.ack_error
    finally:
        s.sock.close()
    wait_for(lambda: distinct_stored(pg) >= len(lines), TIMEOUT,
             "every line stored after the thaw")
    assert d.stop() == 0, d.log()
    t = Tally(lines, stored_counter(pg))
    t.check("stuck replay", 2 * 10)
    report("database frozen with both writers holding replayed ack=spooled "
           "batches: 'ok %d' while frozen; after the thaw %s"
           % (frozen_ack, t.summary()))
