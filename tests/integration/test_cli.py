"""Command line, configuration file, and secrets in the output."""

import re
import signal
import socket

from harness import (connect, free_port, repo_version, run_logsinkd,
                     send_lines, wait_for, wait_peer_close)

TIMEOUT = 60
PASSWORD = "Pw-q8Zt3-s3cr3t"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_help(logsinkd):
    p = run_logsinkd("--help")
    assert p.returncode == 0, p.output
    assert "--listen" in p.output


def test_version(logsinkd):
    p = run_logsinkd("--version")
    assert p.returncode == 0, p.output
    assert re.search(r"\d+\.\d+\.\d+", p.output), p.output
    version = repo_version()
    assert version and version in p.output, (version, p.output)


def test_unknown_option_fails(logsinkd):
    p = run_logsinkd("--no-such-option")
    assert p.returncode != 0, p.output


GOOD_CONFIG = """\
listen = 127.0.0.1:5514
listen = [::1]:5514
db = host=127.0.0.1 port=1 dbname=postgres user=postgres
max-line-bytes = 4096
queue-bytes = 64MiB
db-connections = 3
batch-lines = 1000
flush-interval-ms = 250
shutdown-timeout = 10
reconnect-min-ms = 100
reconnect-max-ms = 5000
table = public.logs
"""


def test_check_config_good(logsinkd, tmp_path):
    cfg = write(tmp_path / "good.conf", GOOD_CONFIG)
    p = run_logsinkd("--check-config", "-c", cfg)
    assert p.returncode == 0, p.output


def test_check_config_comments_and_blank_lines(logsinkd, tmp_path):
    cfg = write(tmp_path / "comments.conf",
                "# logsinkd configuration\n\n" + GOOD_CONFIG.replace(
                    "batch-lines", "\n# batches\nbatch-lines"))
    p = run_logsinkd("--check-config", "-c", cfg)
    assert p.returncode == 0, p.output


def _line_mentions(output, cfg, needle, lineno):
    """Some output line names needle and lineno (path digits removed)."""
    for line in output.replace(cfg, "<cfg>").splitlines():
        if needle in line and re.search(r"(?<!\d)%d(?!\d)" % lineno,
                                        line.replace(needle, "")):
            return True
    return False


def test_check_config_unknown_key(logsinkd, tmp_path):
    lines = GOOD_CONFIG.splitlines()
    lines.insert(6, "frobnicate-level = 3")  # line 7
    cfg = write(tmp_path / "bad.conf", "\n".join(lines) + "\n")
    p = run_logsinkd("--check-config", "-c", cfg)
    assert p.returncode != 0, p.output
    assert _line_mentions(p.output, cfg, "frobnicate-level", 7), (
        "error should name the key and line 7:\n" + p.output)


def test_check_config_bad_value(logsinkd, tmp_path):
    lines = GOOD_CONFIG.splitlines()
    lines[6] = "batch-lines = lots"  # line 7
    cfg = write(tmp_path / "badval.conf", "\n".join(lines) + "\n")
    p = run_logsinkd("--check-config", "-c", cfg)
    assert p.returncode != 0, p.output
    assert "batch-lines" in p.output, p.output


def test_check_config_bad_command_line_value(logsinkd):
    p = run_logsinkd("--check-config", "--listen", "127.0.0.1:5514",
                     "--max-line-bytes", "lots")
    assert p.returncode != 0, p.output
    assert "max-line-bytes" in p.output, p.output


def test_config_file_drives_daemon(pg, daemon, tmp_path):
    pg.truncate()
    port = free_port()
    cfg = write(tmp_path / "run.conf",
                "listen = 127.0.0.1:%d\ndb = %s\nflush-interval-ms = 50\n"
                % (port, pg.conninfo))
    d = daemon("-c", cfg, listen=False, ready_ports=[("127.0.0.1", port)])
    send_lines(port, ["from config file"])
    wait_for(lambda: pg.count() >= 1, TIMEOUT, "1 row")
    assert d.stop() == 0
    assert pg.messages() == ["from config file"]


def test_command_line_overrides_config_file(pg, daemon, tmp_path):
    """A key given on the command line wins over the config file."""
    pg.truncate()
    cfg = write(tmp_path / "small.conf", "max-line-bytes = 50\n")
    d = daemon("-c", cfg, "--max-line-bytes", 20, db=pg.conninfo)
    send_lines(d.port, ["a" * 80])
    wait_for(lambda: pg.count() >= 1, TIMEOUT, "1 row")
    assert d.stop() == 0
    assert pg.messages() == ["a" * 20]


def _assert_no_password(output, what):
    assert PASSWORD not in output, (
        "the password appears in %s:\n%s" % (what, output))


def test_password_not_logged_db_down(logsinkd, daemon):
    conninfo = ("host=127.0.0.1 port=%d dbname=postgres user=postgres "
                "password=%s connect_timeout=5" % (free_port(), PASSWORD))
    d = daemon("--log-level", "debug", "--reconnect-min-ms", 50,
               "--reconnect-max-ms", 200, "--shutdown-timeout", 1,
               db=conninfo)
    with connect(d.port) as s:
        s.sendall(b"a line that cannot be stored\n")
        s.shutdown(socket.SHUT_WR)
        wait_peer_close(s, TIMEOUT)
    # Give it the chance to log the failed connection attempts (bounded;
    # the password check below holds for whatever was logged).
    try:
        wait_for(lambda: re.search(r"refused|fail|error|could not",
                                   open(d.log_path, errors="replace")
                                   .read().split("\n", 1)[-1], re.I),
                 20, "a logged database error")
    except AssertionError:
        pass
    d.signal(signal.SIGTERM)
    d.wait(TIMEOUT)
    _assert_no_password(d.log(), "the daemon's output")


def test_password_not_logged_db_up(pg, daemon):
    pg.truncate()
    # trust authentication: the password is accepted and ignored.
    conninfo = pg.conninfo + " password=" + PASSWORD
    d = daemon("--log-level", "debug", db=conninfo)
    send_lines(d.port, ["with a password"])
    wait_for(lambda: pg.count() >= 1, TIMEOUT, "1 row")
    assert d.stop() == 0
    _assert_no_password(d.log(), "the daemon's output")


def test_password_not_printed_by_check_config_or_init_db(logsinkd, tmp_path):
    conninfo = ("host=127.0.0.1 port=%d dbname=postgres user=postgres "
                "password=%s connect_timeout=5" % (free_port(), PASSWORD))
    cfg = write(tmp_path / "pw.conf", "db = %s\n" % conninfo)
    p = run_logsinkd("--check-config", "-c", cfg, "--listen",
                     "127.0.0.1:5514", "--log-level", "debug")
    assert p.returncode == 0, p.output
    _assert_no_password(p.output, "--check-config output")
    p = run_logsinkd("--check-config", "--db", conninfo, "--listen",
                     "127.0.0.1:5514", "--log-level", "debug")
    assert p.returncode == 0, p.output
    _assert_no_password(p.output, "--check-config output")
    # --init-db against a database that is not there: fails, quietly.
    p = run_logsinkd("--db", conninfo, "--init-db", "--log-level", "debug")
    assert p.returncode != 0, p.output
    _assert_no_password(p.output, "--init-db output")
