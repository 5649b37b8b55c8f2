"""The disk spool (spool-dir): what the daemon does when PostgreSQL cannot
take its lines, when it is stopped or killed, when the spool's files are
damaged and when the spool's disk is full.

Every case sends uniquely numbered lines and counts lost and duplicated
ones from what is stored (see test_faults.Tally).  Segment files are read
and damaged by the test itself, following the format documented in
include/logsink/spool.h.
"""

import glob
import os
import pathlib
import pwd
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time

import pytest

import harness
from harness import wait_for
from test_faults import (LineStreamer, Tally, distinct_stored, padded_line,
                         report, stored_counter, sync_commit_on,
                         total_sent)  # noqa: F401

TIMEOUT = 120
HEADER = 32         # segment header bytes
RECORD_HEADER = 16  # record header bytes
RECORD_MAGIC = 0x4c53524b


@pytest.fixture
def tmp_path():
    """A directory the daemon's user (nobody, when the tests run as root)
    can reach: pytest's own tmp_path is private to root."""
    path = tempfile.mkdtemp(prefix="logsink-spool-")
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    yield pathlib.Path(path)
    subprocess.run(["umount", "-q", os.path.join(path, "fs")],
                   stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(path, ignore_errors=True)


def spool_dir(tmp_path, name="spool"):
    """Where the daemon creates its spool (it makes the directory)."""
    return str(tmp_path / name)


def segments(path, suffix=".seg"):
    return sorted(glob.glob(os.path.join(path, "*" + suffix)))


def records(seg_path):
    """[(offset, length, lines)] of the records in a segment file."""
    with open(seg_path, "rb") as f:
        data = f.read()
    assert data[:8] == b"LSSPOOL\0", "not a segment: %s" % seg_path
    out, off = [], HEADER
    while off + RECORD_HEADER <= len(data):
        magic, length, lines, _crc = struct.unpack_from("<IIII", data, off)
        assert magic == RECORD_MAGIC, "bad record at %d in %s" % (off,
                                                                 seg_path)
        out.append((off, length, lines))
        off += RECORD_HEADER + length
    return out


def record_messages(seg_path, rec):
    """The messages of one record's rows (COPY binary rows: an int16
    field count, then per field an int32 length, -1 for NULL, and the
    bytes; the message is field 9)."""
    off, length, _ = rec
    with open(seg_path, "rb") as f:
        f.seek(off + RECORD_HEADER)
        payload = f.read(length)
    out, p = [], 0
    while p < len(payload):
        (nfields,) = struct.unpack_from(">h", payload, p)
        p += 2
        for i in range(nfields):
            (n,) = struct.unpack_from(">i", payload, p)
            p += 4
            if n < 0:
                continue
            if i == 9:
                out.append(payload[p:p + n].decode())
            p += n
    return out


def spool_daemon(daemon, path, *args, db, metrics_port=None, **kw):
    extra = ["--spool-dir", path, "--reconnect-min-ms", 50,
             "--reconnect-max-ms", 500]
    if metrics_port is not None:
        extra += ["--metrics-listen", "127.0.0.1:%d" % metrics_port]
    return daemon(*(extra + list(args)), db=db, **kw)


# --------------------------------------------------------------------------
# SIGTERM while PostgreSQL is down: spooled, stored after a restart


def test_sigterm_with_db_down_spools_and_restart_stores(stopped_pg, daemon,
                                                        tmp_path, report):
    pg, path = stopped_pg, spool_dir(tmp_path)
    d = spool_daemon(daemon, path, db=pg.conninfo)
    sent = harness.make_lines("term", 20000)
    harness.send_lines(d.port, sent, wait_close=True)
    assert d.stop() == 0, d.log()
    log = d.log()
    assert "lines are in the spool" in log, log
    assert segments(path), "no spool segment after SIGTERM:\n" + log
    spooled = sum(r[2] for s in segments(path) for r in records(s))
    assert spooled == len(sent), (
        "the spool holds %d lines, %d were sent" % (spooled, len(sent)))

    pg.start()
    d2 = spool_daemon(daemon, path, db=pg.conninfo)
    wait_for(lambda: distinct_stored(pg) >= len(sent), TIMEOUT,
             "every spooled line stored after the restart")
    assert d2.stop() == 0, d2.log()
    t = Tally(sent, stored_counter(pg))
    t.check("SIGTERM with the database down", 0)
    assert segments(path) == [], (
        "replayed segments were not deleted: %r" % segments(path))
    report("SIGTERM with the database down: %d lines spooled; after the "
           "restart %s" % (spooled, t.summary()))


# --------------------------------------------------------------------------
# A full memory queue spills to the spool instead of stopping the senders


def test_full_queue_spills_instead_of_backpressure(stopped_pg, daemon,
                                                   tmp_path, report):
    pg, path = stopped_pg, spool_dir(tmp_path)
    mport = harness.free_port()
    d = spool_daemon(daemon, path, "--queue-bytes", "256KiB",
                     "--max-line-bytes", "4KiB", "--batch-lines", 500,
                     db=pg.conninfo, metrics_port=mport)
    sent = harness.make_lines("spill", 100000)
    # 100,000 lines (about 6 MiB) through a 256 KiB queue with the database
    # down: the daemon reads them all (wait_close) only if it spills.
    harness.send_lines(d.port, sent, wait_close=True, timeout=TIMEOUT)
    m = harness.scrape_metrics(mport)
    assert m["logsink_lines_spooled_total"] > 0, m
    assert m["logsink_queue_bytes"] <= 256 * 1024 + 64 * 1024, m
    assert m["logsink_spool_bytes"] > 0, m

    pg.start()
    wait_for(lambda: distinct_stored(pg) >= len(sent), TIMEOUT,
             "every line stored once the database is back")
    m = harness.scrape_metrics(mport)
    assert d.stop() == 0, d.log()
    t = Tally(sent, stored_counter(pg))
    t.check("memory full, spilled to disk", 0)
    report("queue 256 KiB, database down: %d lines spooled, %d replayed; "
           "%s" % (m["logsink_lines_spooled_total"],
                   m["logsink_lines_replayed_total"], t.summary()))


# --------------------------------------------------------------------------
# SIGKILL mid-stream: every acknowledged line (ack=spooled, ack=commit) is
# present after the restart


def test_sigkill_keeps_every_acknowledged_line(fresh_pg, daemon, tmp_path,
                                               report):
    pg, path = fresh_pg, spool_dir(tmp_path)
    sync_commit_on(pg)  # else PostgreSQL may forget confirmed commits
    pspool, pcommit = harness.free_port(), harness.free_port()
    d = spool_daemon(
        daemon, path,
        "--listen", "127.0.0.1:%d ack=spooled" % pspool,
        "--listen", "127.0.0.1:%d ack=commit" % pcommit,
        db=pg.conninfo, listen=False,
        ready_ports=[("127.0.0.1", pspool), ("127.0.0.1", pcommit)])
    streamers = [
        LineStreamer(pspool, "spooled", ack=True,
                     line=lambda i: padded_line("spooled", i, pad=60)),
        LineStreamer(pcommit, "commit", ack=True,
                     line=lambda i: padded_line("commit", i, pad=60)),
    ]
    for s in streamers:
        s.start()
    wait_for(lambda: all(s.last_ack >= 2000 for s in streamers), TIMEOUT,
             "acknowledgements on both listeners")
    # The database goes away: ack=spooled acks go on (the lines reach the
    # disk), ack=commit acks stop.
    pg.stop("immediate")
    commit_ack_at_stop = streamers[1].last_ack
    n = streamers[0].last_ack
    wait_for(lambda: streamers[0].last_ack >= n + 2000, TIMEOUT,
             "ack=spooled acknowledgements while the database is down")
    d.proc.send_signal(signal.SIGKILL)
    d.wait()
    for s in streamers:
        s.stop_event.set()
        s.join(TIMEOUT)
        if s.sock is not None:
            s.sock.close()
    acked = {s.tag: s.last_ack for s in streamers}
    assert acked["commit"] == commit_ack_at_stop or \
        acked["commit"] >= commit_ack_at_stop

    pg.start()
    d2 = spool_daemon(daemon, path, db=pg.conninfo)
    want = [s.sent[:acked[s.tag]] for s in streamers]
    want = [line for w in want for line in w]

    def acked_stored():
        stored = stored_counter(pg)
        return all(line in stored for line in want)
    try:
        wait_for(acked_stored, TIMEOUT, "every acknowledged line stored",
                 ignore=(Exception,))
    finally:
        stored = stored_counter(pg)
        missing = [line for line in want if line not in stored]
        assert not missing, (
            "acknowledged lines lost: %d (acked: %r), e.g. %r"
            % (len(missing), acked, missing[:3]))
    assert d2.stop() == 0, d2.log()
    sent = [line for s in streamers for line in s.sent]
    t = Tally(sent, stored)
    report("SIGKILL: acked ack=spooled %d, ack=commit %d, all present; "
           "of everything sent: %s (unacknowledged lines may be lost)"
           % (acked["spooled"], acked["commit"], t.summary()))


# --------------------------------------------------------------------------
# A damaged spool: one record corrupted, the last one truncated


def test_corrupt_and_truncated_segment(stopped_pg, daemon, tmp_path, report):
    pg, path = stopped_pg, spool_dir(tmp_path)
    d = spool_daemon(daemon, path, "--batch-lines", 100, db=pg.conninfo)
    sent = harness.make_lines("dmg", 3000)
    harness.send_lines(d.port, sent, wait_close=True)
    assert d.stop() == 0, d.log()
    segs = segments(path)
    assert len(segs) == 1, segs
    seg = segs[0]
    recs = records(seg)
    assert len(recs) >= 10, recs

    # Record 3: one byte of its payload flipped.  The last record: cut in
    # the middle.
    bad = recs[3]
    lost = set(record_messages(seg, bad)) | set(record_messages(seg,
                                                                recs[-1]))
    with open(seg, "r+b") as f:
        f.seek(bad[0] + RECORD_HEADER + bad[1] // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x55]))
        f.truncate(recs[-1][0] + RECORD_HEADER + recs[-1][1] // 2)

    pg.start()
    d2 = spool_daemon(daemon, path, db=pg.conninfo)
    good = [line for line in sent if line not in lost]
    wait_for(lambda: distinct_stored(pg) >= len(good), TIMEOUT,
             "the good records stored")
    wait_for(lambda: segments(path, ".seg.corrupt"), TIMEOUT,
             "the damaged segment kept as .corrupt")
    assert d2.alive(), d2.log()
    log = d2.log()
    skipped = [line for line in log.splitlines() if "skipped" in line]
    assert any("corrupt record" in line for line in skipped), log
    assert any("torn tail" in line for line in skipped), log
    assert d2.stop() == 0, d2.log()
    stored = stored_counter(pg)
    assert not [line for line in good if line not in stored]
    assert not [line for line in stored if line not in set(good)], (
        "damaged records were stored")
    assert all(n == 1 for n in stored.values()), "duplicates"
    report("damaged spool: %d of %d lines stored, %d in the two damaged "
           "records skipped and logged: %s"
           % (len(good), len(sent), len(lost), " | ".join(
               re.sub(r"^.*spool: ", "", line) for line in skipped)))


# --------------------------------------------------------------------------
# The spool's file system fills up: back-pressure, then recovery


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_spool_disk_full_backpressure_and_recovery(stopped_pg, daemon,
                                                   tmp_path, report):
    pg = stopped_pg
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755",
                    "logsink-test", str(mnt)], check=True)
    try:
        nobody = pwd.getpwnam("nobody")
        os.chown(mnt, nobody.pw_uid, nobody.pw_gid)
        filler = mnt / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * (1536 * 1024))
        mport = harness.free_port()
        path = str(mnt / "spool")
        d = spool_daemon(daemon, path, "--queue-bytes", "256KiB",
                         "--max-line-bytes", "4KiB", "--batch-lines", 200,
                         db=pg.conninfo, metrics_port=mport)
        s = LineStreamer(d.port, "full", chunk=200, pause=0.002,
                         line=lambda i: padded_line("full", i, pad=100))
        s.start()
        wait_for(lambda: harness.metric(mport, "spool_refused_total") > 0,
                 TIMEOUT, "the spool refusing writes (disk full)")
        # Memory and spool full: the daemon stops reading, the sender
        # blocks.
        wait_for(lambda: time.monotonic() - s.last_send > 2, TIMEOUT,
                 "the sender blocked by back-pressure")
        assert d.alive(), d.log()
        m_full = harness.scrape_metrics(mport)
        blocked_at = total_sent([s])
        os.unlink(filler)  # space returns
        wait_for(lambda: total_sent([s]) > blocked_at + 2000, TIMEOUT,
                 "the sender moving again once there is space")
        assert harness.scrape_metrics(mport)["logsink_lines_spooled_total"] > \
            m_full["logsink_lines_spooled_total"]
        # The database returns before the tmpfs fills up again.
        pg.start()
        s.stop()
        wait_for(lambda: distinct_stored(pg) >= len(s.sent), TIMEOUT,
                 "every line stored")
        assert d.stop() == 0, d.log()
        t = Tally(s.sent, stored_counter(pg))
        t.check("spool disk full", 0)
        assert "no space left" in d.log() or "full" in d.log()
        report("spool on a 2 MiB tmpfs filled up: %d refused spool "
               "writes, sender blocked at %d lines, then %s"
               % (m_full["logsink_spool_refused_total"], blocked_at,
                  t.summary()))
    finally:
        for dd in daemon.daemons:
            dd.kill()
