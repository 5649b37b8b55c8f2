"""A slow spool disk must not stall the event loop (issue 16, item 2).

tests/shim/slowdisk.c (build/libslowdisk.so) is preloaded into logsinkd:
every fsync/fdatasync under the spool directory first sleeps SLOWDISK_MS
and is logged with its thread ("main" or "thread") and its CLOCK_MONOTONIC
start and end.  The properties checked are structural, not timings:

- no sync runs on the main thread, so other clients (an ack=commit
  listener) are served while the spool's disk is slow; the loop-lag
  maximum stays below one sync's delay, which every sync on the loop
  would have added to it;
- an ack=spooled acknowledgement comes only after an fdatasync that began
  after the acknowledged lines were sent and ended before the ack arrived
  (the database is down, so nothing is acknowledged at commit);
- a failing fdatasync (EIO) is counted and logged, and ack=spooled lines
  are then acknowledged only once committed.
"""

import os
import pathlib
import pwd
import re
import shutil
import socket
import tempfile
import threading
import time

import pytest

import harness
from harness import wait_for

TIMEOUT = 120
DELAY_MS = 200  # per fsync/fdatasync on the spool disk


def shim_path():
    path = os.path.join(os.environ.get("LOGSINK_BUILD", "build"),
                        "libslowdisk.so")
    if not os.path.exists(path):
        pytest.fail("%s not found: build the tree (it builds the shim)"
                    % path, pytrace=False)
    return os.path.abspath(path)


@pytest.fixture
def tmp_path():
    """A directory the daemon's user (nobody, when the tests run as root)
    can write: the spool and the shim's log live in it."""
    path = tempfile.mkdtemp(prefix="logsink-slowdisk-")
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    yield pathlib.Path(os.path.realpath(path))
    shutil.rmtree(path, ignore_errors=True)


class Sync:
    """One call the shim logged."""

    def __init__(self, line):
        call, thread, start, end, path = line.split(" ", 4)
        self.call, self.thread = call, thread
        self.start, self.end, self.path = int(start), int(end), path

    @property
    def segment(self):
        # A replayed segment may be deleted: "... .seg (deleted)".
        return self.call == "fdatasync" and ".seg" in self.path


def shim_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [Sync(line.rstrip("\n")) for line in f if line.strip()]


def slow_daemon(daemon, monkeypatch, tmp_path, *args, db, ready_ports,
                eio_after=None):
    """logsinkd with the shim preloaded on tmp_path/spool; returns
    (daemon, metrics port, shim log path)."""
    spool = str(tmp_path / "spool")
    log = str(tmp_path / "slowdisk.log")
    mport = harness.free_port()
    with monkeypatch.context() as m:
        m.setenv("LD_PRELOAD", shim_path())
        m.setenv("SLOWDISK_DIR", spool)
        m.setenv("SLOWDISK_MS", str(DELAY_MS))
        m.setenv("SLOWDISK_LOG", log)
        if eio_after is not None:
            m.setenv("SLOWDISK_EIO_AFTER", str(eio_after))
        # Under ASan the shim comes before the sanitizer's runtime.
        m.setenv("ASAN_OPTIONS", (os.environ.get("ASAN_OPTIONS", "") +
                                  ":verify_asan_link_order=0").lstrip(":"))
        d = daemon("--spool-dir", spool, "--metrics-listen",
                   "127.0.0.1:%d" % mport, "--reconnect-min-ms", 50,
                   "--reconnect-max-ms", 500, *args, db=db, listen=False,
                   ready_ports=ready_ports)
    return d, mport, log


class AckClient(threading.Thread):
    """Sends chunks of numbered lines on one connection and reads "ok N".

    chunks: [(monotonic ns before sendall, lines sent after it)];
    acks: [(monotonic ns, N)].
    """

    def __init__(self, port, tag, chunk=20, pause=0.02, max_lines=10**6):
        super().__init__(daemon=True, name="ack-" + tag)
        self.sock = harness.connect(port)
        self.tag, self.chunk, self.pause = tag, chunk, pause
        self.max_lines = max_lines
        self.sent = 0
        self.chunks, self.acks = [], []
        self.error = None
        self.stop_event = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @property
    def last_ack(self):
        return self.acks[-1][1] if self.acks else 0

    def _read(self):
        buf = b""
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    text, buf = buf.split(b"\n", 1)
                    m = re.fullmatch(rb"ok (\d+)", text)
                    assert m is not None, "unexpected ack %r" % text
                    self.acks.append((time.monotonic_ns(), int(m.group(1))))
        except OSError:
            pass
        except Exception as e:  # reported by the test
            self.error = e

    def run(self):
        try:
            while not self.stop_event.is_set() and \
                    self.sent < self.max_lines:
                lines = harness.make_lines(self.tag, self.chunk, self.sent)
                t = time.monotonic_ns()
                self.sock.sendall("".join(x + "\n" for x in lines).encode())
                self.sent += len(lines)
                self.chunks.append((t, self.sent))
                time.sleep(self.pause)
        except OSError as e:
            self.error = e

    def sent_before(self, n):
        """When the chunk holding line n - 1 started to be sent."""
        for t, upto in self.chunks:
            if upto >= n:
                return t
        raise AssertionError("ack ok %d: only %d lines sent" % (n, self.sent))

    def close(self):
        self.stop_event.set()
        self.join(TIMEOUT)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def test_slow_spool_disk_does_not_stall_other_clients(pg, daemon, monkeypatch,
                                                      tmp_path):
    pg.truncate()
    pspool, pcommit = harness.free_port(), harness.free_port()
    d, mport, log = slow_daemon(
        daemon, monkeypatch, tmp_path,
        "--listen", "127.0.0.1:%d ack=spooled" % pspool,
        "--listen", "127.0.0.1:%d ack=commit" % pcommit,
        db=pg.conninfo,
        ready_ports=[("127.0.0.1", pspool), ("127.0.0.1", pcommit)])
    spooled = AckClient(pspool, "spooled")
    commit = AckClient(pcommit, "commit", max_lines=2000)
    spooled.start()
    commit.start()
    try:
        # Both kinds of acks flow while the spool's disk syncs slowly.
        wait_for(lambda: commit.last_ack >= 2000, TIMEOUT,
                 "every ack=commit line acknowledged")
        wait_for(lambda: sum(s.segment for s in shim_log(log)) >= 10,
                 TIMEOUT, "ten slow fdatasyncs of spool segments")
        wait_for(lambda: spooled.last_ack >= 1000, TIMEOUT,
                 "ack=spooled acknowledgements")
    finally:
        spooled.close()
        commit.close()
    assert spooled.error is None and commit.error is None, (
        spooled.error, commit.error)
    syncs = shim_log(log)
    on_main = [s for s in syncs if s.thread == "main"]
    assert not on_main, (
        "%d of %d syncs ran on the event loop's thread, e.g. %s %s"
        % (len(on_main), len(syncs), on_main[0].call, on_main[0].path))
    m = harness.scrape_metrics(mport)
    lag = m["logsink_loop_lag_max_seconds"]
    # A sync on the loop would have made it late by at least DELAY_MS.
    assert lag < DELAY_MS / 1000, (
        "loop lag %.3f s with %d ms syncs off the loop" % (lag, DELAY_MS))
    assert m["logsink_loop_lag_seconds_count"] > 0, m
    assert m["logsink_spool_syncs_total"] >= 10, m
    assert m["logsink_spool_sync_errors_total"] == 0, m
    wait_for(lambda: pg.count() >= 2000 + spooled.last_ack, TIMEOUT,
             "the acknowledged lines stored")
    assert d.stop() == 0, d.log()


def test_spooled_ack_only_after_its_fdatasync(stopped_pg, daemon,
                                              monkeypatch, tmp_path):
    pspool = harness.free_port()
    d, mport, log = slow_daemon(
        daemon, monkeypatch, tmp_path,
        "--listen", "127.0.0.1:%d ack=spooled" % pspool,
        "--spool-segment-bytes", "64KiB",
        db=stopped_pg.conninfo, ready_ports=[("127.0.0.1", pspool)])
    c = AckClient(pspool, "order", chunk=50, pause=0.01, max_lines=6000)
    c.start()
    try:
        wait_for(lambda: c.last_ack >= 6000, TIMEOUT,
                 "every line acknowledged from the spool")
    finally:
        c.close()
    assert c.error is None, c.error
    syncs = [s for s in shim_log(log) if s.segment]
    assert len(syncs) >= 2, syncs
    for t_ack, n in c.acks:
        t_sent = c.sent_before(n)
        covering = [s for s in syncs if s.start > t_sent and s.end <= t_ack]
        assert covering, (
            "ok %d at %d ns: no fdatasync began after its lines were sent "
            "(%d ns) and ended before it" % (n, t_ack, t_sent))
    m = harness.scrape_metrics(mport)
    assert m["logsink_loop_lag_max_seconds"] < DELAY_MS / 1000, m
    assert m["logsink_spool_segments"] >= 2, m  # rotation was exercised
    assert d.stop() == 0, d.log()


def test_fdatasync_eio_is_counted_and_acks_wait_for_commit(stopped_pg,
                                                           daemon, monkeypatch,
                                                           tmp_path):
    pg, pspool = stopped_pg, harness.free_port()
    d, mport, log = slow_daemon(
        daemon, monkeypatch, tmp_path,
        "--listen", "127.0.0.1:%d ack=spooled" % pspool,
        db=pg.conninfo, ready_ports=[("127.0.0.1", pspool)], eio_after=0)
    c = AckClient(pspool, "eio", max_lines=500)
    c.start()
    try:
        wait_for(lambda: harness.scrape_metrics(mport)[
            "logsink_spool_sync_errors_total"] >= 1, TIMEOUT,
            "the failed fdatasync counted")
        wait_for(lambda: c.sent >= 500, TIMEOUT, "every line sent")
        wait_for(lambda: "fdatasync" in d.log() and
                 "acknowledged only once committed" in d.log(), TIMEOUT,
                 "the failed fdatasync logged")
        # Nothing is durable in the spool now, and the database is down.
        m = harness.scrape_metrics(mport)
        assert c.last_ack == 0, (c.acks, m)
        pg.start()
        wait_for(lambda: c.last_ack >= 500, TIMEOUT,
                 "the lines acknowledged once committed")
    finally:
        c.close()
    assert pg.count() >= 500
    assert d.stop() == 0, d.log()
