"""The database password stays out of the process list, the log and
--check-config: --db values are blanked in /proc/PID/cmdline, and db-file
reads the connection string from a file of its own."""

import os
import stat
import tempfile

import harness


def test_db_argument_is_hidden_from_the_process_list(pg, daemon):
    secret = "pw-" + os.urandom(6).hex()
    d = daemon(db=pg.conninfo + " password=" + secret)
    with open("/proc/%d/cmdline" % d.pid, "rb") as f:
        cmdline = f.read()
    assert secret.encode() not in cmdline
    assert b"--db\0****" in cmdline
    # The copy it kept still works: lines are stored.
    pg.truncate()
    harness.send_lines(d.port, ["hidden-1"], wait_close=True)
    harness.wait_for(lambda: pg.count() == 1, 60, "the line stored")
    assert d.stop() == 0
    assert secret not in d.log()


def test_db_file(pg, daemon):
    # Readable by the daemon after it switched to nobody (as root).
    dirname = tempfile.mkdtemp(prefix="logsink-dbfile-")
    os.chmod(dirname, 0o755)
    path = os.path.join(dirname, "conninfo")
    with open(path, "w") as f:
        f.write("# the database\n\n" + pg.conninfo + "\n")
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP |
             stat.S_IROTH)
    try:
        r = harness.run_logsinkd("--db-file", path, "--check-config")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "db-file = " + path in r.stdout
        assert pg.conninfo not in r.stdout
        pg.truncate()
        d = daemon("--db-file", path)
        harness.send_lines(d.port, ["from-db-file"], wait_close=True)
        harness.wait_for(lambda: pg.count() == 1, 60, "the line stored")
        assert d.stop() == 0
        r = harness.run_logsinkd("--db-file", path, "--db", pg.conninfo,
                                 "--check-config")
        assert r.returncode == 2
        assert "db and db-file are both set" in r.stderr
        r = harness.run_logsinkd("--db-file", path + ".missing",
                                 "--check-config")
        assert r.returncode == 2
        assert "db-file: %s.missing: No such file" % path in r.stderr
    finally:
        os.unlink(path)
        os.rmdir(dirname)
