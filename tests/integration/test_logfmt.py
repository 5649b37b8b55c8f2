"""logfmt end to end: logfmt lines over TCP become columns and fields,
ordinary log lines (tests/data/plain_lines.txt) stay plain text, and a
syslog message from util-linux logger whose MSG is logfmt gets its fields
from the MSG while the header keeps its columns.

Tools: logger (bsdutils); without it, its test fails when CI=true and
skips otherwise.
"""

import datetime
import os
import shutil
import subprocess

import psycopg2
import pytest

import harness
from harness import send_lines, wait_for

TIMEOUT = harness.DEFAULT_TIMEOUT
DATA = os.path.join(harness.REPO_ROOT, "tests", "data")

pytestmark = pytest.mark.usefixtures("empty_table")

COLS = ("message", "host", "app", "severity", "facility", "event_time",
        "fields")


def rows(pg, n, order="received_at, message"):
    wait_for(lambda: pg.count() >= n, TIMEOUT, "%d rows" % n,
             ignore=(psycopg2.Error,))
    got = pg.query("select %s from public.logs order by %s"
                   % (", ".join(COLS), order))
    assert len(got) == n, got
    return [dict(zip(COLS, r)) for r in got]


def corpus(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def utc(*a):
    return datetime.datetime(*a, tzinfo=datetime.timezone.utc)


def test_logfmt_lines_to_columns_and_fields(pg, daemon):
    d = daemon(db=pg.conninfo)
    lines = [
        'level=warn msg="disk full" host=db1 dur=12ms',
        'time=2026-11-21T10:00:00.5+01:00 level=ERROR msg="query failed: '
        '\\"timeout\\"" service=billing attempt=3 cached',
        'at=info method=GET path="/" host=myapp.herokuapp.com dyno=web.1 '
        'connect=1ms status=200 bytes=13',
        'ts=1732186800.25 lvl=dbug msg=tick app=cron',
    ]
    send_lines(d.port, lines, wait_close=True)
    got = {r["message"]: r for r in rows(pg, 4)}
    r = got["disk full"]
    assert (r["host"], r["severity"], r["facility"]) == ("db1", 4, None)
    assert r["event_time"] is None
    assert r["fields"] == {"level": "warn", "msg": "disk full",
                           "host": "db1", "dur": "12ms"}
    r = got['query failed: "timeout"']
    assert (r["app"], r["severity"]) == ("billing", 3)
    assert r["event_time"] == utc(2026, 11, 21, 9, 0, 0, 500000)
    assert r["fields"]["attempt"] == "3"
    assert r["fields"]["cached"] is True
    r = got[lines[2]]  # no msg: the whole line is the message
    assert (r["host"], r["severity"]) == ("myapp.herokuapp.com", 6)
    assert r["fields"]["status"] == "200"
    r = got["tick"]
    assert (r["app"], r["severity"]) == ("cron", 7)
    assert r["event_time"] == utc(2024, 11, 21, 11, 0, 0, 250000)
    # The fields are queryable as jsonb.
    assert pg.scalar("select count(*) from public.logs "
                     "where fields @> '{\"dyno\": \"web.1\"}'") == 1


def test_plain_corpus_stays_plain_and_logfmt_corpus_parses(pg, daemon):
    d = daemon(db=pg.conninfo)
    plain, lf = corpus("plain_lines.txt"), corpus("logfmt_lines.txt")
    send_lines(d.port, plain + lf, wait_close=True)
    rows(pg, len(plain) + len(lf), order="received_at")
    with_fields = pg.scalar("select count(*) from public.logs "
                            "where fields is not null")
    assert with_fields == len(lf)
    # Plain lines that are not syslog are stored exactly as sent.
    stored = set(pg.messages())
    not_syslog = [l for l in plain if l[:3] not in (
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
        "Nov", "Dec")]
    missing = [l for l in not_syslog if l not in stored]
    assert not missing, missing[:5]


@pytest.fixture
def logger():
    path = shutil.which("logger")
    if not path:
        msg = "logger not found: install the Debian package bsdutils"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI=true: required)", pytrace=False)
        pytest.skip(msg)
    return path


def test_logger_syslog_with_logfmt_msg(pg, daemon, logger):
    d = daemon(db=pg.conninfo)
    base = [logger, "--tcp", "-n", "127.0.0.1", "-P", str(d.port)]
    msg = 'level=error msg="backup failed" dest=s3 tries=2'
    for args in (["--rfc5424=notq", "-t", "backupd", "-p", "local3.info"],
                 ["--rfc3164", "-t", "backupd", "-p", "local3.info"],
                 ["--rfc5424", "-t", "withsd", "-p", "local3.info"]):
        subprocess.run(base + args + [msg], check=True, timeout=TIMEOUT)
    got = rows(pg, 3)
    lf = [r for r in got if r["app"] == "backupd"]
    assert len(lf) == 2, got
    for r in lf:
        # The header's columns stay (PRI local3.info, not level=error).
        assert (r["facility"], r["severity"]) == (19, 6)
        assert r["message"] == "backup failed"
        assert r["fields"] == {"level": "error", "msg": "backup failed",
                               "dest": "s3", "tries": "2"}
        assert r["event_time"] is not None
    # With structured data ([timeQuality ...]) the MSG stays text.
    [sd] = [r for r in got if r["app"] == "withsd"]
    assert sd["message"] == msg
    assert set(sd["fields"]) == {"timeQuality"}
